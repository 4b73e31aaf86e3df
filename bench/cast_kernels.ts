// cast_kernels.ts — per-call times of libfp8's fp8 cast kernels on each ISA path, and of the fused
// casts against the calls they replace, measured in the same run.
//   bun bench/cast_kernels.ts [--n 393216] [--threads 1] [--samples 300] [--cold] [--help]
// Each call is timed alone, after ~20 µs of JS work (as between the ops of a training step), or
// after a 64 MiB write that evicts the caches (--cold); the median of --samples calls is printed.
// Absolute times move with the machine's load: compare rows of one run (the ratios), not runs.
import { check, lib } from "../src/ffi/index.ts";
import { argValue, hasFlag, machineLine } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log(`usage: bun bench/cast_kernels.ts [options]
  --n N          elements per call (default 393216: the grad_output of a 1024 x 384 layer)
  --threads N    OpenMP threads (default 1: the kernels themselves; 2 shows the threaded split)
  --samples N    calls per median (default 300)
  --cold         evict the caches before each call instead of ~20 us of JS work
  --quick        n = 65536, 40 samples (a smoke test)
Prints, per ISA path this CPU has (portable, AVX2, AVX-512): decode fp8 -> bf16 / f32, quantize
bf16 -> e4m3 / f32 -> e5m2, amax; then, on the best path, the fused casts (quantize_amax,
quantize_dynamic) against the two calls each one replaces, and quantize_transpose (both bf16 decodes,
as the materialize GEMM layout casts grad_output) against quantize_decode.`);
  process.exit(0);
}

const F32 = 0, BF16 = 1, E4M3 = 2, E5M2 = 3;
const ISA_NAMES = ["portable", "AVX2", "AVX-512"];
const quick = hasFlag("quick");
const n = Number(argValue("n", quick ? "65536" : "393216"));
const threads = Number(argValue("threads", "1"));
const samples = Number(argValue("samples", quick ? "40" : "300"));
const cold = hasFlag("cold");
for (const [name, v] of [["n", n], ["threads", threads], ["samples", samples]] as const) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name} needs a positive integer, got ${v}`);
    process.exit(2);
  }
}
check(lib.fp8_set_num_threads(threads), "fp8_set_num_threads");

let sink = 0;
const evict = new Uint8Array(cold ? 64 << 20 : 0);
const before = cold
  ? () => evict.fill(++sink & 0xff)
  : () => {
      const t = performance.now();
      while (performance.now() - t < 0.02) sink++;
    };
/** Median µs of `samples` calls of fn, each after `before`. */
function median(fn: () => number): number {
  const ts: number[] = [];
  for (let i = 0; i < samples; i++) {
    before();
    const t = performance.now();
    const status = fn();
    ts.push(performance.now() - t);
    if (status !== 0) throw new Error(`native call failed: ${String(lib.fp8_last_error())}`);
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1]! * 1000;
}

// inputs: every byte value as codes; bf16 and f32 values spread over several binades
const codes = Uint8Array.from({ length: n }, (_, i) => (i * 37) & 0xff);
const f32 = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 2 ** ((i % 13) - 6));
const bf16 = Uint16Array.from(f32, (x) => new Uint32Array(Float32Array.of(x).buffer)[0]! >>> 16);
const outBf16 = new Uint16Array(n), outF32 = new Float32Array(n), outFp8 = new Uint8Array(n);
const scale = Float32Array.of(1.5), amax = new Float32Array(1), scaleOut = new Float32Array(1);

console.log(`# cast_kernels on ${machineLine()}, n = ${n}, ${threads} thread(s), ${cold ? "cold caches" : "~20 us of JS between calls"}, median of ${samples}`);
const isaOut = new Int32Array(1);
check(lib.fp8_cpu_set_isa(2), "fp8_cpu_set_isa");
check(lib.fp8_cpu_get_isa(isaOut), "fp8_cpu_get_isa");
const best = isaOut[0]!;
const row = (label: string, us: number, ref?: number) =>
  console.log(`  ${label.padEnd(44)} ${us.toFixed(1).padStart(8)} us${ref === undefined ? "" : `   ${(ref / us).toFixed(2)}x`}`);
for (let isa = 0; isa <= best; isa++) {
  check(lib.fp8_cpu_set_isa(isa), "fp8_cpu_set_isa");
  console.log(`\n${ISA_NAMES[isa]}:`);
  row("decode e4m3 -> bf16 (unscaled)", median(() => lib.fp8_cpu_convert(outBf16, BF16, codes, E4M3, n)));
  row("decode e5m2 -> f32 (unscaled)", median(() => lib.fp8_cpu_convert(outF32, F32, codes, E5M2, n)));
  row("quantize bf16 -> e4m3", median(() => lib.fp8_cpu_quantize(outFp8, E4M3, bf16, BF16, n, scale)));
  row("quantize f32 -> e5m2", median(() => lib.fp8_cpu_quantize(outFp8, E5M2, f32, F32, n, scale)));
  row("amax bf16", median(() => lib.fp8_cpu_amax(amax, bf16, BF16, n)));
}
check(lib.fp8_cpu_set_isa(best), "fp8_cpu_set_isa");
console.log(`\nfused casts on ${ISA_NAMES[best]} (bf16 -> e4m3 with the bf16 decode; ratio = two calls / one):`);
const delayedTwo = median(() => lib.fp8_cpu_amax(amax, bf16, BF16, n) || lib.fp8_cpu_quantize_decode(outFp8, outBf16, E4M3, bf16, BF16, n, scale));
row("delayed: amax, then quantize_decode", delayedTwo);
row("delayed: quantize_amax (one pass)", median(() => lib.fp8_cpu_quantize_amax(outFp8, outBf16, E4M3, bf16, BF16, n, scale, amax)), delayedTwo);
const dynamicTwo = median(() =>
  lib.fp8_cpu_amax_to_scale(amax, scaleOut, bf16, BF16, n, E4M3, 0) || lib.fp8_cpu_quantize_decode(outFp8, outBf16, E4M3, bf16, BF16, n, scaleOut));
row("dynamic: amax_to_scale, then quantize_decode", dynamicTwo);
row("dynamic: quantize_dynamic (one call)", median(() => lib.fp8_cpu_quantize_dynamic(outFp8, outBf16, E4M3, bf16, BF16, n, null, scaleOut, 0, 0)), dynamicTwo);
// the grad_output cast of the materialize GEMM layout (src/tensor/ops/gemm_layout.ts): both bf16
// decodes, row-major and transposed, as a near-square (n / cols, cols); ratio = quantize_decode / it
const cols = 2 ** Math.ceil(Math.log2(Math.sqrt(n))), rows = Math.floor(n / cols);
if (rows > 0) {
  const outBf16T = new Uint16Array(rows * cols);
  const plain = median(() => lib.fp8_cpu_quantize_decode(outFp8, outBf16, E5M2, bf16, BF16, rows * cols, scale));
  console.log(`\nthe transposed decode on ${ISA_NAMES[best]} (bf16 -> e5m2, ${rows} x ${cols}; ratio = quantize_decode / the row):`);
  row("quantize_decode (fp8 + bf16 decode)", plain);
  row("quantize_transpose (fp8 + both bf16 decodes)", median(() => lib.fp8_cpu_quantize_transpose(outFp8, null, outBf16, outBf16T, E5M2, bf16, BF16, rows, cols, scale)), plain);
}
if (sink === -1) console.log(sink);
