"""gen_torchao_checkpoint.py -- a torchao-trained checkpoint for test/checkpoint_torchao.test.ts.

Trains scripts/torchao_emul.py's model (torchao's delayed-scaling Float8Linear, all
three roles delayed, history length 4) for 3 SGD steps (lr 0.05, MSE loss, a sync after
each backward, as torchao's README loop), saves its state_dict() with Python's
safetensors.torch.save_file to test/fixtures/torchao_delayed.safetensors, then keeps
training for 2 steps and records the losses it sees (the "next loss" of a run resumed
from that file) in test/fixtures/torchao_checkpoint.json.

    bash scripts/pip-install.sh safetensors
    PYTHONPATH=<torch install> python3 scripts/gen_torchao_checkpoint.py
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from torchao_emul import batch, mlp, sync_float8_amax_and_scale_history  # noqa: E402

HISTORY_LEN, LR, TRAINED, NEXT = 4, 0.05, 3, 2


def step(model, opt, s):
    x, y = batch(s)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    sync_float8_amax_and_scale_history(model)
    return loss.item()


def main():
    model = mlp(HISTORY_LEN, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    losses = [step(model, opt, s) for s in range(TRAINED)]
    here = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures")
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(here, "torchao_delayed.safetensors"), metadata={"format": "pt"})
    nxt = [step(model, opt, s) for s in range(TRAINED, TRAINED + NEXT)]
    out = {
        "about": "scripts/gen_torchao_checkpoint.py with torch %s: torchao (Oct 2024) delayed-scaling Float8Linear "
        "MLP 32-64-16, history_len %d, SGD lr %g, MSE; state_dict after %d steps in torchao_delayed.safetensors"
        % (torch.__version__, HISTORY_LEN, LR, TRAINED),
        "history_len": HISTORY_LEN, "lr": LR, "trained_steps": TRAINED,
        "keys": list(sd.keys()),
        "losses_before_save": losses,
        "next_losses": nxt,
        "batches": [{"x": batch(s)[0].flatten().tolist(), "y": batch(s)[1].flatten().tolist()} for s in range(TRAINED, TRAINED + NEXT)],
    }
    with open(os.path.join(here, "torchao_checkpoint.json"), "w") as f:
        json.dump(out, f)
        f.write("\n")
    print("losses", losses, "next", nxt)


if __name__ == "__main__":
    main()
