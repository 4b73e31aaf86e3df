"""torch_reference.py -- the same measurements in PyTorch, for comparison runs.

Times, on this machine's CPU and with torch's default threads, (1) torch's bf16
nn.Linear forward+backward, (2) the float8 Linear as torchao's emulate mode
computes it (dynamic casts with torch ops, dequantize, f32 mm; the formulas of
scripts/gen_torch_parity.py), and (3) torch's scaled fp8 cast against a copy.
Run it next to `bun bench/linear_float8.ts` and `bun bench/cast.ts`:

    pip install --no-deps --target .deps/torch <torch cpu wheel>
    PYTHONPATH=.deps/torch python3 bench/torch_reference.py [M K N]

For ours and torch's side by side in one run (Linear with bias, the demo's MLP),
`bun bench/vs_torch.ts` drives bench/torch_serve.py instead.
"""
import sys
import time

import torch

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


def median_ms(fn, reps=5):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return sorted(ts)[len(ts) // 2]


def cast(x, d):
    amax = torch.max(torch.abs(x)).to(torch.float64)
    s = (torch.finfo(d).max / torch.clamp(amax, min=1e-12)).to(torch.float32)
    m = torch.finfo(d).max
    return (x.to(torch.float32) * s).clamp(-m, m).to(d), s


class EmulatedFloat8Mm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        x8, sx = cast(x, E4M3)
        w8, sw = cast(w, E4M3)
        ctx.save_for_backward(x8, sx, w8, sw)
        return torch.mm(x8.float() / sx, w8.float().t() / sw).to(x.dtype)

    @staticmethod
    def backward(ctx, go):
        x8, sx, w8, sw = ctx.saved_tensors
        g8, sg = cast(go, E5M2)
        gx = torch.mm(g8.float() / sg, w8.float() / sw).to(go.dtype)
        gw = torch.mm(g8.float().t() / sg, x8.float() / sx).to(go.dtype)
        return gx, gw


def main():
    M, K, N = (int(a) for a in sys.argv[1:4]) if len(sys.argv) >= 4 else (4096, 2048, 4096)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, M,K,N = {M},{K},{N}, bf16")
    x = torch.randn(M, K, dtype=torch.bfloat16, requires_grad=True)
    lin = torch.nn.Linear(K, N, bias=False, dtype=torch.bfloat16)
    go = torch.randn(M, N, dtype=torch.bfloat16) * 1e-3

    def bf16_step():
        lin.zero_grad(set_to_none=True)
        x.grad = None
        lin(x).backward(go)

    def fp8_step():
        lin.zero_grad(set_to_none=True)
        x.grad = None
        EmulatedFloat8Mm.apply(x, lin.weight).backward(go)

    b = median_ms(bf16_step)
    f = median_ms(fp8_step, reps=3)
    print(f"bf16 nn.Linear fwd+bwd          {b:9.1f} ms")
    print(f"float8 emulated (torchao) f+b   {f:9.1f} ms   speed vs bf16 nn.Linear {b / f:.3f}x")

    n = 16 << 20
    src = torch.randn(n)
    dst = torch.empty_like(src)
    c = median_ms(lambda: dst.copy_(src))
    q = median_ms(lambda: cast(src, E4M3))
    copy_gbs = 2 * 4 * n / c / 1e6
    cast_gbs = 5 * n / q / 1e6
    print(f"copy 64 MiB                     {copy_gbs:9.1f} GB/s")
    print(f"dynamic cast f32->e4m3          {cast_gbs:9.1f} GB/s   {cast_gbs / copy_gbs:.3f}x copy")


if __name__ == "__main__":
    main()
