"""gen_torch_parity.py -- reference numbers for test/float8_parity.test.ts.

Computes, with PyTorch's own fp8 conversions and arithmetic, what torchao.float8
(October 2024) does in emulate mode for one Linear with dynamic tensorwise
scaling, forward and backward, and writes inputs, weights and results to
test/fixtures/torch_float8_linear.json. It re-states torchao's formulas
(float8_utils.amax_to_scale, to_fp8_saturated, float8_ops' emulated mm); it does
not import torchao, which is not on this machine's package index.

    pip install --no-deps --target .deps/torch <torch cpu wheel>
    PYTHONPATH=.deps/torch python3 scripts/gen_torch_parity.py

It then runs scripts/gen_torchao_checkpoint.py (torchao_delayed.safetensors and
torchao_checkpoint.json, which need Python's safetensors).
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


def delayed_case(seed, M, K, N, steps, history_len):
    """torchao's delayed scaling for input, weight and grad_output over `steps`
    forward/backward/sync steps with fixed weights: the first forward seeds each
    history from the live tensor (enable_amax_init), each cast uses the current
    scale and records the amax, and each sync rolls the history and sets
    scale = amax_to_scale(max(history))."""
    g = torch.Generator().manual_seed(seed)
    w = (torch.rand(N, K, generator=g) * 2 - 1).div(K ** 0.5)
    state = {r: {"amax": None, "hist": torch.zeros(history_len), "scale": torch.tensor(1.0)} for r in ("x", "w", "go")}
    fp8 = {"x": E4M3, "w": E4M3, "go": E5M2}

    def delayed_cast(t, role, initialized):
        st = state[role]
        d = fp8[role]
        if not initialized:
            a = torch.max(torch.abs(t))
            st["hist"][0] = a
            st["scale"] = amax_to_scale(torch.max(st["hist"]), d)
        st["amax"] = torch.max(torch.abs(t))
        m = torch.finfo(d).max
        return (t * st["scale"]).clamp(-m, m).to(d), st["scale"]

    out = {"M": M, "K": K, "N": N, "history_len": history_len, "w": w.flatten().tolist(), "steps": []}
    initialized = False
    for _ in range(steps):
        x = torch.randn(M, K, generator=g)
        go = torch.randn(M, N, generator=g).mul(1e-2)
        x8, sx = delayed_cast(x, "x", initialized)
        w8, sw = delayed_cast(w, "w", initialized)
        y = emulated_mm(x8, sx, w8.t(), sw, torch.float32)
        g8, sg = delayed_cast(go, "go", initialized)
        gx = emulated_mm(g8, sg, w8, sw, torch.float32)
        gw = emulated_mm(g8.t(), sg, x8, sx, torch.float32)
        initialized = True
        for st in state.values():  # sync_float8_amax_and_scale_history
            st["hist"] = torch.roll(st["hist"], 1)
            st["hist"][0] = st["amax"]
        for role, st in state.items():
            st["scale"] = amax_to_scale(torch.max(st["hist"]), fp8[role])
        out["steps"].append({
            "x": x.flatten().tolist(), "grad_output": go.flatten().tolist(),
            "y": y.flatten().tolist(), "grad_x": gx.flatten().tolist(), "grad_w": gw.flatten().tolist(),
            "scales_after_sync": [state[r]["scale"].item() for r in ("x", "w", "go")],
            "history_x": state["x"]["hist"].tolist(),
        })
    return out


if __name__ == "__main__":
    out = {
        "about": "torchao.float8 (Oct 2024) emulate-mode Float8Linear, dynamic tensorwise scaling, "
                 f"computed by scripts/gen_torch_parity.py with torch {torch.__version__}",
        "cases": [case(1, 16, 48, 24, torch.float32), case(2, 16, 32, 16, torch.bfloat16)],
        "delayed": delayed_case(3, 8, 32, 16, steps=4, history_len=3),
    }
    path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "torch_float8_linear.json")
    with open(path, "w") as fh:
        json.dump(out, fh)
    print("wrote", os.path.normpath(path))
    # the torchao checkpoint-interop fixtures (test/checkpoint_torchao.test.ts); needs Python's safetensors
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    import gen_torchao_checkpoint
    gen_torchao_checkpoint.main()
