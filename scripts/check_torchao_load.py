"""check_torchao_load.py -- the reverse interop check: torchao loads a checkpoint written here.

    PYTHONPATH=<torch install> python3 scripts/check_torchao_load.py <model.safetensors> <batch.json>

Loads the file with safetensors.torch.load_file into scripts/torchao_emul.py's torchao
Float8Linear MLP with load_state_dict(strict=True) (every key and shape must match
torchao's layout), marks the layers initialised (torchao does not serialize
is_amax_initialized; a resumed torchao run sets it so that the saved scales are used),
and prints as JSON the MSE loss on the batch ({"x": [...], "y": [...]}) and, after one
SGD step (lr from the batch file) and a sync, the loss on the same batch again.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from torchao_emul import Float8LinearEmu, mlp, sync_float8_amax_and_scale_history  # noqa: E402


def main():
    sd = load_file(sys.argv[1])
    spec = json.load(open(sys.argv[2]))
    model = mlp(spec["history_len"], seed=123)  # values come from the file
    result = model.load_state_dict(sd, strict=True)
    for m in model.modules():
        if isinstance(m, Float8LinearEmu):
            m.is_amax_initialized = True
    x = torch.tensor(spec["x"]).reshape(-1, 32)
    y = torch.tensor(spec["y"]).reshape(-1, 16)
    opt = torch.optim.SGD(model.parameters(), lr=spec["lr"])
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    sync_float8_amax_and_scale_history(model)
    with torch.no_grad():
        after = torch.nn.functional.mse_loss(model(x), y).item()
    print(json.dumps({"loss": loss.item(), "loss_after_step": after, "missing": result.missing_keys,
                      "unexpected": result.unexpected_keys, "keys": len(sd)}))


if __name__ == "__main__":
    main()
