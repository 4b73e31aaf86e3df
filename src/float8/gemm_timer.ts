// gemm_timer.ts — measured GEMM times for the roofline model's "benchmarks"
// strategy: bf16 GEMM vs scaled fp8 GEMM on this device, one shape at a time.
import { Float8Error } from "../errors.ts";
import { tidy } from "../tensor/storage.ts";
import { Tensor, randn } from "../tensor/tensor.ts";
import { gemm } from "../tensor/ops/linalg.ts";
import { Linear } from "../nn/layers.ts";
import { Float8LinearConfig } from "./config.ts";
import { Float8Linear } from "./float8_linear.ts";
import { hpTensorToFloat8Dynamic, scaledMm } from "./float8_tensor.ts";
import type { GemmShape, GemmTimes, MeasureGemmTimes } from "./roofline.ts";

function median(a: number[]): number {
  return [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
}

function medianSec(fn: () => void, samples: number): number {
  tidy(fn); // warm-up: primitive cache, page faults
  const t: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = Bun.nanoseconds();
    tidy(fn);
    t.push((Bun.nanoseconds() - t0) / 1e9);
  }
  return median(t);
}

/**
 * A timer for predictLinearSpeedup's "benchmarks" strategy: times each gemm
 * (A (M,K) @ B^T with B stored (N,K)) in bf16 and as a scaled e4m3 GEMM on
 * `device`, median of `samples` runs. Results are cached per shape.
 */
export function deviceGemmTimer(device = "cpu", samples = 5): MeasureGemmTimes {
  if (device !== "cpu") throw new Float8Error("deviceGemmTimer", `device '${device}' is not available for measurement in this build`);
  const cache = new Map<string, GemmTimes>();
  return (g: GemmShape) => {
    const key = `${g.M},${g.K},${g.N}`;
    const hit = cache.get(key);
    if (hit) return hit;
    const times = tidy(() => {
      const a = randn([g.M, g.K], { dtype: "bfloat16" });
      const b = randn([g.N, g.K], { dtype: "bfloat16" });
      // with their bf16 decodes, as Float8Linear's casts leave them: the GEMM alone
      // (the casts and decodes are the overhead model's part)
      const af = hpTensorToFloat8Dynamic(a, "float8_e4m3fn", "input", false, true);
      const bf = hpTensorToFloat8Dynamic(b, "float8_e4m3fn", "weight", false, true);
      // alternate the two so that a noisy phase of a shared machine hits both alike
      const bf16 = () => void gemm(a, b, { M: g.M, K: g.K, N: g.N, transB: true });
      const fp8 = () => void scaledMm(af, bf, { transposeB: true, outDtype: "bfloat16" });
      const tb: number[] = [], tf: number[] = [];
      for (let i = 0; i <= samples; i++) {
        const x = medianSec(bf16, 1), y = medianSec(fp8, 1);
        if (i > 0) {
          tb.push(x);
          tf.push(y);
        }
      }
      return { bf16Sec: median(tb), fp8Sec: median(tf) };
    });
    cache.set(key, times);
    return times;
  };
}

/** Measured copy bandwidth of this device in bytes/s (reads + writes), for the overhead model. */
export function measureMemcpyBandwidth(bytes = 64 << 20): number {
  const src = Tensor.empty([bytes], "float8_e4m3fn");
  const dst = Tensor.empty([bytes], "float8_e4m3fn");
  const s = new Uint8Array(src.rawView()), d = new Uint8Array(dst.rawView());
  s.fill(1);
  d.fill(0);
  const sec = medianSec(() => d.set(s), 5);
  src.dispose();
  dst.dispose();
  return (2 * bytes) / sec;
}

/**
 * The actual forward+backward speedup of Float8Linear (given config, default
 * dynamic tensorwise) over a bf16 Linear of shape M,K,N on this CPU: median of
 * `rounds` interleaved timings of each.
 */
export function measureLinearSpeedup(M: number, K: number, N: number, opts: { rounds?: number; config?: Float8LinearConfig } = {}): number {
  const rounds = opts.rounds ?? 3;
  return tidy(() => {
    const base = new Linear(K, N, { dtype: "bfloat16", bias: false });
    const f8 = Float8Linear.fromFloat(new Linear(K, N, { dtype: "bfloat16", bias: false }), opts.config ?? new Float8LinearConfig());
    const x = randn([M, K], { dtype: "bfloat16", requiresGrad: true });
    const g = randn([M, N], { dtype: "bfloat16" });
    const step = (m: Linear) => () => {
      m.zeroGrad();
      x.grad?.dispose();
      x.grad = null;
      m.forward(x).backward(g);
    };
    const tb: number[] = [], tf: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      const b = medianSec(step(base), 1), f = medianSec(step(f8), 1);
      if (r > 0) {
        tb.push(b);
        tf.push(f);
      }
    }
    base.dispose();
    f8.dispose();
    return median(tb) / median(tf);
  });
}
