// bench/gpu/block_gemm.ts — the block-scaled GEMMs of the "blockwise" and "mxfp8"
// recipes on one GPU (issue 19; docs/architecture.md, block scaling on the device):
// fp8_cuda_scaled_mm_blockwise (1x128 x 128x128) and fp8_cuda_scaled_mm_mx (1x32 e8m0),
// each on its AUTO path (cuBLASLt's block scale modes where this GPU has them) and on
// the dequantize fallback, against the tensorwise fp8 GEMM and the bf16 GEMM of the
// same shape, same run. bench/gpu/check.sh runs it in its bench stage.
//   bun bench/gpu/block_gemm.ts [--smoke]     (--smoke: a tiny shape, one iteration: CI on libfp8_cuda_emu)
// Prints one line per GEMM and a last "block GEMMs:" line for check.sh's summary.
import { cuda } from "../../src/index.ts";
import { checkCuda, cudaLib } from "../../src/ffi/index.ts";
import type { CudaContext, DeviceBuffer } from "../../src/cuda/index.ts";

const smoke = process.argv.includes("--smoke");
if (!cuda.isAvailable()) {
  console.log(`bench/gpu/block_gemm.ts: no usable GPU (${cuda.probe().reason})`);
  process.exit(2);
}
const ctx: CudaContext = cuda.device(0);
const L = cudaLib();
const [F32, BF16, E4M3] = [0, 1, 2];
const S = smoke ? 128 : 4096, flops = 2 * S * S * S;
const iters = smoke ? 1 : 10;
const owned: DeviceBuffer[] = [];
const keep = (b: DeviceBuffer) => (owned.push(b), b);

/** Median GPU milliseconds of one call (2 warm-ups, 5 timed runs of `iters` calls; 1 of 1 with --smoke). */
function timeMs(fn: () => void): number {
  for (let i = 0; i < (smoke ? 1 : 2); i++) fn();
  ctx.synchronize();
  const runs: number[] = [];
  for (let r = 0; r < (smoke ? 1 : 5); r++) runs.push(ctx.timeMs(() => { for (let i = 0; i < iters; i++) fn(); }) / iters);
  runs.sort((x, y) => x - y);
  return runs[Math.floor(runs.length / 2)];
}

const info = ctx.info;
console.log(`device: ${info.name}, cc ${info.computeCapability.join(".")}; GEMMs ${S}^3 -> bf16`);
const a = keep(cuda.randn(ctx, [S, S], "bfloat16", 21)), b = keep(cuda.randn(ctx, [S, S], "bfloat16", 22));
const c = keep(cuda.DeviceBuffer.empty(ctx, [S, S], "bfloat16"));
const a8 = keep(cuda.DeviceBuffer.empty(ctx, [S, S], "float8_e4m3fn")), b8 = keep(cuda.DeviceBuffer.empty(ctx, [S, S], "float8_e4m3fn"));
const kb128 = Math.ceil(S / 128), kb32 = Math.ceil(S / 32);
const sa128 = keep(cuda.DeviceBuffer.empty(ctx, [S, kb128], "float32")), sb128 = keep(cuda.DeviceBuffer.empty(ctx, [Math.ceil(S / 128), kb128], "float32"));
const sa32 = keep(cuda.DeviceBuffer.empty(ctx, [S, kb32], "float8_e4m3fn")), sb32 = keep(cuda.DeviceBuffer.empty(ctx, [S, kb32], "float8_e4m3fn")); // e8m0 bytes

const bfMs = timeMs(() => cuda.matmul(a, b, { transB: true, out: c }));
const line = (name: string, ms: number) =>
  console.log(`${name.padEnd(58)} ${ms.toFixed(3).padStart(9)} ms  ${(flops / (ms * 1e-3) / 1e12).toFixed(1).padStart(7)} TFLOP/s  ${(bfMs / ms).toFixed(2)}x bf16`);
line("bf16 GEMM (cuBLASLt)", bfMs);
{
  const sa = keep(cuda.scalarBuffer(ctx)), sb = keep(cuda.scalarBuffer(ctx)), am = keep(cuda.scalarBuffer(ctx));
  cuda.amaxToScale(a, "float8_e4m3fn", { amax: am, scale: sa });
  cuda.quantize(a, sa, "float8_e4m3fn", a8);
  cuda.amaxToScale(b, "float8_e4m3fn", { amax: am, scale: sb });
  cuda.quantize(b, sb, "float8_e4m3fn", b8);
  line("tensorwise fp8 GEMM", timeMs(() => cuda.scaledMm(a8, b8, sa, sb, { outDtype: "bfloat16", out: c })));
}
const summary: string[] = [];
for (const recipe of ["blockwise", "mxfp8"] as const) {
  const mx = recipe === "mxfp8";
  const [sa, sb] = mx ? [sa32, sb32] : [sa128, sb128];
  if (mx) {
    checkCuda(L.fp8_cuda_quantize_mx(ctx.handle, a8.ptr, sa.ptr, E4M3, a.ptr, BF16, S, S, 32, 0), "quantize_mx");
    checkCuda(L.fp8_cuda_quantize_mx(ctx.handle, b8.ptr, sb.ptr, E4M3, b.ptr, BF16, S, S, 32, 0), "quantize_mx");
  } else {
    checkCuda(L.fp8_cuda_quantize_blockwise(ctx.handle, a8.ptr, sa.ptr, E4M3, a.ptr, BF16, S, S, 1, 128), "quantize_blockwise");
    checkCuda(L.fp8_cuda_quantize_blockwise(ctx.handle, b8.ptr, sb.ptr, E4M3, b.ptr, BF16, S, S, 128, 128), "quantize_blockwise");
  }
  const gemm = () =>
    mx
      ? checkCuda(L.fp8_cuda_scaled_mm_mx(ctx.handle, c.ptr, BF16, a8.ptr, E4M3, b8.ptr, E4M3, sa.ptr, sb.ptr, null, F32, S, S, S), "scaled_mm_mx")
      : checkCuda(L.fp8_cuda_scaled_mm_blockwise(ctx.handle, c.ptr, BF16, a8.ptr, E4M3, b8.ptr, E4M3, sa.ptr, sb.ptr, 128, null, F32, S, S, S, 0), "scaled_mm_blockwise");
  for (const path of ["auto", "dequant"] as const) {
    cuda.setBlockGemm(path);
    const ms = timeMs(gemm);
    const took = cuda.blockGemmInfo();
    line(`${recipe} GEMM, ${path} (took: ${took.path})`, ms);
    if (path === "auto") {
      summary.push(`${recipe} ${took.path} ${(bfMs / ms).toFixed(2)}x bf16`);
      if (took.reason) console.log(`  fallback reason: ${took.reason}`);
    }
  }
  cuda.setBlockGemm("auto");
}
console.log(`block GEMMs: ${summary.join(", ")} (${S}^3)`);
for (const buf of owned) buf.dispose();
