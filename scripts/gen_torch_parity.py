"""gen_torch_parity.py -- reference numbers for test/float8_parity.test.ts.

Computes, with PyTorch's own fp8 conversions and arithmetic, what torchao.float8
(October 2024) does in emulate mode for one Linear with dynamic tensorwise
scaling, forward and backward, and writes inputs, weights and results to
test/fixtures/torch_float8_linear.json. It re-states torchao's formulas
(float8_utils.amax_to_scale, to_fp8_saturated, float8_ops' emulated mm); it does
not import torchao, which is not on this machine's package index.

    pip install --no-deps --target .deps/torch <torch cpu wheel>
    PYTHONPATH=.deps/torch python3 scripts/gen_torch_parity.py
"""
import json
import os

import torch

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
EPS = 1e-12


def amax_to_scale(amax, fp8_dtype):
    # torchao: computed in float64, rounded once to float32
    res = torch.finfo(fp8_dtype).max / torch.clamp(amax.to(torch.float64), min=EPS)
    return res.to(torch.float32)


def cast(x, fp8_dtype):
    scale = amax_to_scale(torch.max(torch.abs(x)), fp8_dtype)
    m = torch.finfo(fp8_dtype).max
    data = (x.to(torch.float32) * scale).clamp(min=-m, max=m).to(fp8_dtype)
    return data, scale


def emulated_mm(a, sa, b, sb, out_dtype):
    # torchao's mm_float8_emulated: dequantize each operand in f32, f32 mm
    return torch.mm(a.float() / sa, b.float() / sb).to(out_dtype)


def case(seed, M, K, N, dtype):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, K, generator=g).to(dtype)
    w = (torch.rand(N, K, generator=g) * 2 - 1).div(K ** 0.5).to(dtype)
    b = (torch.rand(N, generator=g) * 2 - 1).div(K ** 0.5).to(dtype)
    go = torch.randn(M, N, generator=g).mul(1e-2).to(dtype)
    x8, sx = cast(x, E4M3)
    w8, sw = cast(w, E4M3)
    y = emulated_mm(x8, sx, w8.t(), sw, dtype) + b
    g8, sg = cast(go, E5M2)
    gx = emulated_mm(g8, sg, w8, sw, dtype)
    gw = emulated_mm(g8.t(), sg, x8, sx, dtype)
    gb = go.float().sum(0).to(dtype)
    f = lambda t: t.float().flatten().tolist()
    u8 = lambda t: t.view(torch.uint8).flatten().tolist()
    return {
        "M": M, "K": K, "N": N, "dtype": "float32" if dtype == torch.float32 else "bfloat16",
        "x": f(x), "w": f(w), "b": f(b), "grad_output": f(go),
        "x_fp8": u8(x8), "w_fp8": u8(w8), "grad_output_fp8": u8(g8),
        "scale_x": sx.item(), "scale_w": sw.item(), "scale_grad_output": sg.item(),
        "y": f(y), "grad_x": f(gx), "grad_w": f(gw), "grad_b": f(gb),
    }


if __name__ == "__main__":
    out = {
        "about": "torchao.float8 (Oct 2024) emulate-mode Float8Linear, dynamic tensorwise scaling, "
                 f"computed by scripts/gen_torch_parity.py with torch {torch.__version__}",
        "cases": [case(1, 16, 48, 24, torch.float32), case(2, 16, 32, 16, torch.bfloat16)],
    }
    path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "torch_float8_linear.json")
    with open(path, "w") as fh:
        json.dump(out, fh)
    print("wrote", os.path.normpath(path))
