// gemm_timer.ts — measured GEMM times for the roofline model's "benchmarks"
// strategy: bf16 GEMM vs scaled fp8 GEMM on this device, one shape at a time.
import { Float8Error } from "../errors.ts";
import { tidy } from "../tensor/storage.ts";
import { Tensor, randn } from "../tensor/tensor.ts";
import { gemm } from "../tensor/ops/linalg.ts";
import { hpTensorToFloat8Dynamic, scaledMm } from "./float8_tensor.ts";
import type { GemmShape, GemmTimes, MeasureGemmTimes } from "./roofline.ts";

function medianSec(fn: () => void, samples: number): number {
  tidy(fn); // warm-up: primitive cache, page faults
  const t: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = Bun.nanoseconds();
    tidy(fn);
    t.push((Bun.nanoseconds() - t0) / 1e9);
  }
  return t.sort((a, b) => a - b)[Math.floor(samples / 2)];
}

/**
 * A timer for predictLinearSpeedup's "benchmarks" strategy: times each gemm
 * (A (M,K) @ B^T with B stored (N,K)) in bf16 and as a scaled e4m3 GEMM on
 * `device`, median of `samples` runs. Results are cached per shape.
 */
export function deviceGemmTimer(device = "cpu", samples = 3): MeasureGemmTimes {
  if (device !== "cpu") throw new Float8Error("deviceGemmTimer", `device '${device}' is not available for measurement in this build`);
  const cache = new Map<string, GemmTimes>();
  return (g: GemmShape) => {
    const key = `${g.M},${g.K},${g.N}`;
    const hit = cache.get(key);
    if (hit) return hit;
    const times = tidy(() => {
      const a = randn([g.M, g.K], { dtype: "bfloat16" });
      const b = randn([g.N, g.K], { dtype: "bfloat16" });
      const af = hpTensorToFloat8Dynamic(a, "float8_e4m3fn", "input");
      const bf = hpTensorToFloat8Dynamic(b, "float8_e4m3fn", "weight");
      return {
        bf16Sec: medianSec(() => void gemm(a, b, { M: g.M, K: g.K, N: g.N, transB: true }), samples),
        fp8Sec: medianSec(() => void scaledMm(af, bf, { transposeB: true, outDtype: "bfloat16" }), samples),
      };
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
