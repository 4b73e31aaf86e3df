"""torchao_emul.py -- torchao.float8's delayed-scaling Float8Linear (October 2024,
commit e91955800) re-stated with plain torch, for the checkpoint interop fixtures
(scripts/gen_torchao_checkpoint.py) and the reverse check (scripts/check_torchao_load.py).
torchao is not installable on this project's machines, so its formulas are written
out here; nothing is imported from it.

What it keeps from torchao, by name and value:
- the state_dict layout of Float8Linear: weight, bias and, when any role uses delayed
  scaling, all nine buffers fp8_amax_{input,weight,grad_output} (init: the fp8 max),
  fp8_amax_history_* (zeros(history_len)) and fp8_scale_* (1.0), all float32;
- amax initialisation on the first forward (_maybe_initialize_amaxes_scales_for_float8_cast):
  amax <- amax(x), history[0] <- amax, scale <- amax_to_scale(max(history));
- the delayed cast: amax buffer <- amax(x), bits = to_fp8_saturated(x.float() * scale);
- amax_to_scale: f32(fp8_max / clamp(f64(amax), min=1e-12));
- the emulated GEMMs: each operand dequantised (bits.float() / scale), then an f32 mm;
- sync_float8_amax_and_scale_history: roll, history[0] <- amax, scale <- amax_to_scale(max);
  at that commit the rolled history is computed on a vstack copy and NOT written back
  (write_back=False reproduces this; see docs/torchao-differences.md).
"""
import torch
import torch.nn as nn

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
ROLES = {"input": E4M3, "weight": E4M3, "grad_output": E5M2}


def amax_to_scale(amax, fp8_dtype):
    return (torch.finfo(fp8_dtype).max / torch.clamp(amax.to(torch.float64), min=1e-12)).to(torch.float32)


def to_fp8_saturated(x, fp8_dtype):
    m = torch.finfo(fp8_dtype).max
    return x.clamp(min=-m, max=m).to(fp8_dtype)


class _Float8Mm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, mod, initialized):
        x8, sx = mod.cast("input", x, initialized)
        w8, sw = mod.cast("weight", w, initialized)
        ctx.save_for_backward(x8, sx, w8, sw)
        ctx.mod, ctx.initialized = mod, initialized
        return torch.mm(x8.float() / sx, (w8.float() / sw).t()).to(x.dtype)

    @staticmethod
    def backward(ctx, go):
        x8, sx, w8, sw = ctx.saved_tensors
        g8, sg = ctx.mod.cast("grad_output", go, ctx.initialized)
        gd = g8.float() / sg
        gx = torch.mm(gd, w8.float() / sw).to(go.dtype)
        gw = torch.mm(gd.t(), x8.float() / sx).to(go.dtype)
        return gx, gw, None, None


class Float8LinearEmu(nn.Linear):
    """torchao's Float8Linear with delayed scaling for input, weight and grad_output."""

    def __init__(self, in_features, out_features, bias=True, history_len=16):
        super().__init__(in_features, out_features, bias=bias)
        for role, dt in ROLES.items():
            self.register_buffer(f"fp8_amax_{role}", torch.tensor([torch.finfo(dt).max]))
            self.register_buffer(f"fp8_amax_history_{role}", torch.zeros(history_len))
            self.register_buffer(f"fp8_scale_{role}", torch.tensor([1.0]))
        self.is_amax_initialized = False  # not serialized by torchao

    @torch.no_grad()
    def cast(self, role, t, initialized):
        dt = ROLES[role]
        amax, hist, scale = (getattr(self, f"fp8_{k}_{role}") for k in ("amax", "amax_history", "scale"))
        if not initialized:
            a = t.abs().max()
            amax.fill_(a)
            hist[0] = a
            scale.copy_(amax_to_scale(hist.max(), dt))
        amax.fill_(t.abs().max())
        return to_fp8_saturated(t.float() * scale, dt), scale.clone()

    def forward(self, x):
        x2 = x.reshape(-1, x.shape[-1])
        y = _Float8Mm.apply(x2, self.weight, self, self.is_amax_initialized)
        self.is_amax_initialized = True
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y + self.bias if self.bias is not None else y


@torch.no_grad()
def sync_float8_amax_and_scale_history(model, write_back=False):
    for m in model.modules():
        if not isinstance(m, Float8LinearEmu):
            continue
        for role, dt in ROLES.items():
            amax, hist, scale = (getattr(m, f"fp8_{k}_{role}") for k in ("amax", "amax_history", "scale"))
            rolled = torch.roll(hist, 1)
            rolled[0] = amax[0]
            scale.copy_(amax_to_scale(rolled.max(), dt))
            if write_back:
                hist.copy_(rolled)


def mlp(history_len, seed):
    """The fixtures' model: Linear(32, 64) -> ReLU -> Linear(64, 16), converted."""
    torch.manual_seed(seed)
    m = nn.Sequential(Float8LinearEmu(32, 64, history_len=history_len), nn.ReLU(), Float8LinearEmu(64, 16, history_len=history_len))
    for lin in (m[0], m[2]):
        bound = 1 / lin.in_features ** 0.5
        nn.init.uniform_(lin.weight, -bound, bound)
        nn.init.uniform_(lin.bias, -bound, bound)
    return m


def batch(step):
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(8, 32, generator=g), torch.randn(8, 16, generator=g)
