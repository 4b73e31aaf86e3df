"""gen_fnuz_tables.py -- exhaustive float8_e4m3fnuz / float8_e5m2fnuz tables from torch.

Writes test/fixtures/fp8_fnuz_tables.json, the fnuz counterpart of fp8_tables.json,
made with PyTorch's own conversions:

- decode[fmt][byte]: the value torch gives each of the 256 bytes, as a string
  ("nan", "-0.125", ...);
- encode_bf16_saturating[fmt]: base64 of 65536 bytes, the fp8 byte torch gives
  for each bfloat16 bit pattern under the saturating cast
  x.float().clamp(-max, max).to(fmt) (NaN stays NaN: 0x80).

Used by test/fp8_fnuz.test.ts on every ISA path.

    PYTHONPATH=<torch install> python3 scripts/gen_fnuz_tables.py
"""
import base64
import json
import os

import torch

FORMATS = {"e4m3fnuz": torch.float8_e4m3fnuz, "e5m2fnuz": torch.float8_e5m2fnuz}


def main():
    out = {
        "about": "torch %s: decode[fmt][byte] = fp8 value; encode_bf16_saturating[fmt] = base64 of the 65536 "
        "fp8 bytes of x.float().clamp(-max, max).to(fmt) for each bfloat16 bit pattern" % torch.__version__,
        "decode": {},
        "encode_bf16_saturating": {},
    }
    bits = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    for key, dt in FORMATS.items():
        values = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(dt).float()
        out["decode"][key] = [repr(float(v)) for v in values.tolist()]
        m = torch.finfo(dt).max
        enc = bits.float().clamp(min=-m, max=m).to(dt).view(torch.uint8)
        out["encode_bf16_saturating"][key] = base64.b64encode(bytes(enc.tolist())).decode()
    path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "fp8_fnuz_tables.json")
    with open(path, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
