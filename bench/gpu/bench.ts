// bench/gpu/bench.ts — GPU benchmarks of the CUDA backend (issue 4), each
// quoted against a baseline measured in the same run:
//   1. cast and amax bandwidth vs a device-to-device copy (target >= 85 %),
//      row-wise (axiswise) cast included; then the other memory-bound kernels (eltwise, binary,
//      AdamW, and every row kernel: softmax, layer / RMS norm, cross entropy, embedding, with
//      their backwards) as a fraction of the same copy;
//   2. the fp8 GEMM vs the bf16 GEMM at 8192^3 (target >= 1.8x), and the
//      row-scaled fp8 GEMM on both of its paths (no target: a ratio to quote);
//   3. Float8 Linear fwd+bwd vs the bf16 Linear at M,K,N = 4096,8192,16384
//      (target >= 1.45x) and 1024,2048,1024 (target >= 1.0x, bf16 fallback allowed);
//   4. the same through the Tensor API on device "cuda": Float8Linear (and
//      autoFilterForRecipe's choice) vs nn.Linear in bf16, autograd included.
// Times are GPU time from CUDA events around `iters` back-to-back calls, after
// a warm-up; each number is the median of `repeats` such runs. Inputs are
// random normals (never zeros) and each bandwidth buffer is far larger than L2.
//   bun bench/gpu/bench.ts [--quick]      (writes $OUT/gpu_bench.json and gpu_bench.txt when OUT is set)
//   --smoke: tiny shapes, one timed call each: checks the script end to end (CI runs it on
//            libfp8_cuda_emu, so a GPU session never loses its minutes to a broken benchmark)
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cuda, float8, manualSeed, nn, optim, randn, tidy } from "../../src/index.ts";
import type { CudaContext, DeviceBuffer } from "../../src/cuda/index.ts";
import { cudaBackend } from "../../src/tensor/backend/cuda.ts";
import { DTYPE_CODE } from "../../src/tensor/dtype.ts";

const smoke = process.argv.includes("--smoke");
const quick = smoke || process.argv.includes("--quick");
if (!cuda.isAvailable()) {
  console.log(`bench/gpu/bench.ts: no usable GPU (${cuda.probe().reason})`);
  process.exit(2);
}
const ctx: CudaContext = cuda.device(0);
/** The context's default encoder (hardware unless FP8_CUDA_CAST_KERNEL says otherwise; see bench/gpu/encoders.ts). */
const defaultKernel = ctx.castKernel;
const owned: DeviceBuffer[] = [];
const keep = (b: DeviceBuffer) => (owned.push(b), b);

interface Row {
  section: string;
  name: string;
  ms: number;
  value: number;
  unit: string;
  ratio?: number;
  ratioOf?: string;
  target?: string;
  note?: string;
}
const rows: Row[] = [];

/** Median GPU milliseconds of one call of fn. */
function timeMs(fn: () => void, iters: number, repeats = smoke ? 1 : quick ? 3 : 5, warmup = smoke ? 1 : 2): number {
  if (smoke) iters = 1;
  for (let i = 0; i < warmup; i++) fn();
  ctx.synchronize();
  const runs: number[] = [];
  for (let r = 0; r < repeats; r++) runs.push(ctx.timeMs(() => { for (let i = 0; i < iters; i++) fn(); }) / iters);
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)];
}

const GB = 1e9;
const info = ctx.info;
console.log(`device: ${info.name}, cc ${info.computeCapability.join(".")}, ${info.smCount} SMs, ${(info.totalMemoryBytes / 2 ** 30).toFixed(0)} GiB`);

// ---- 1. bandwidth -----------------------------------------------------------------
{
  const rowsN = smoke ? 64 : 16384, colsN = smoke ? 96 : quick ? 8192 : 16384; // 2^28 elements: 1 GiB of f32
  const n = rowsN * colsN;
  const xf = keep(cuda.randn(ctx, [rowsN, colsN], "float32", 1, 3));
  const xb = keep(cuda.convert(xf, "bfloat16"));
  const dst = keep(cuda.DeviceBuffer.empty(ctx, [rowsN, colsN], "float32"));
  const q = keep(cuda.DeviceBuffer.empty(ctx, [rowsN, colsN], "float8_e4m3fn"));
  const qt = keep(cuda.DeviceBuffer.empty(ctx, [colsN, rowsN], "float8_e4m3fn"));
  const amax = keep(cuda.scalarBuffer(ctx)), scale = keep(cuda.scalarBuffer(ctx));
  const rowScale = keep(cuda.DeviceBuffer.empty(ctx, [rowsN], "float32"));
  const iters = quick ? 5 : 10;

  const copyMs = timeMs(() => cuda.copy(dst, xf), iters);
  const copyBw = (2 * 4 * n) / (copyMs * 1e-3) / GB;
  rows.push({ section: "bandwidth", name: "device-to-device copy (f32, read+write)", ms: copyMs, value: copyBw, unit: "GB/s", note: "baseline" });
  /** A row of GB/s and its fraction of the copy; target: the casts' (issue 4), none for the others. */
  const bw = (name: string, bytes: number, fn: () => void, note?: string, target: string | null = ">= 0.85") => {
    const ms = timeMs(fn, iters);
    const v = bytes / (ms * 1e-3) / GB;
    rows.push({ section: "bandwidth", name, ms, value: v, unit: "GB/s", ratio: v / copyBw, ratioOf: "copy", target: target ?? undefined, note });
  };
  /** The other memory-bound kernels: a fraction of the copy to quote, no target. */
  const frac = (name: string, bytes: number, fn: () => void, note?: string) => bw(name, bytes, fn, note, null);
  bw("amax f32", 4 * n, () => cuda.amax(xf, amax));
  bw("amax bf16", 2 * n, () => cuda.amax(xb, amax));
  cuda.amaxToScale(xf, "float8_e4m3fn", { amax, scale });
  for (const kernel of ["reference", "hardware"] as const) {
    ctx.castKernel = kernel;
    bw(`cast f32 -> e4m3 (${kernel})`, 5 * n, () => cuda.quantize(xf, scale, "float8_e4m3fn", q));
    bw(`cast bf16 -> e4m3 (${kernel})`, 3 * n, () => cuda.quantize(xb, scale, "float8_e4m3fn", q));
    bw(`cast+transpose bf16 -> e4m3 x2 (${kernel})`, 4 * n, () => cuda.quantizeTranspose(xb, scale, "float8_e4m3fn", { rowMajor: q, transposed: qt }));
    bw(`cast+transpose f32 -> e4m3 x2 (${kernel})`, 6 * n, () => cuda.quantizeTranspose(xf, scale, "float8_e4m3fn", { rowMajor: q, transposed: qt }));
    bw(`dynamic cast bf16: amax+scale, cast+transpose (${kernel})`, 6 * n, () => {
      cuda.amaxToScale(xb, "float8_e4m3fn", { amax, scale });
      cuda.quantizeTranspose(xb, scale, "float8_e4m3fn", { rowMajor: q, transposed: qt });
    }, "two passes over the input");
    bw(`row-wise cast bf16 -> e4m3, a scale per row (${kernel})`, 3 * n, () => cuda.quantizeRowwise(xb, "float8_e4m3fn", { out: q, scale: rowScale }),
      "one launch; each row read twice (the second time mostly from L2)");
  }
  ctx.castKernel = defaultKernel;
  for (const b of [xf, xb, dst, q, qt]) b.dispose();

  // The memory-bound kernels a training step runs besides the casts (issue 16 item 6: templated on
  // the dtype, 16-byte vector loads and stores), each against the same device copy. Bytes: what each
  // kernel must read and write once (its compulsory traffic; a second pass over a row comes from L2).
  // Elementwise, binary and AdamW through the Tensor API; the row kernels (nn_kernels.cu) called
  // directly on device buffers, one kernel per timed call.
  const R = smoke ? 64 : quick ? 4096 : 8192, C = smoke ? 96 : 8192, m = R * C;
  const be = cudaBackend;
  for (const dtype of ["bfloat16", "float32"] as const) {
    const es = dtype === "float32" ? 4 : 2, dt = DTYPE_CODE[dtype];
    const x = randn([R, C], { dtype, device: "cuda" }).keep(), y = randn([R, C], { dtype, device: "cuda" }).keep();
    frac(`relu ${dtype}`, 2 * es * m, () => tidy(() => void x.relu()), "eltwise_kernel");
    frac(`add ${dtype} (same shape)`, 3 * es * m, () => tidy(() => void x.add(y)), "binary_dense_kernel");
    const v = randn([C], { dtype, device: "cuda" }).keep();
    frac(`mul ${dtype} (${R} x ${C}) by (${C})`, 2 * es * m, () => tidy(() => void x.mul(v)), "binary_broadcast_vec_kernel");
    frac(`sum ${dtype} over the last dim (${R} x ${C})`, es * m, () => tidy(() => void x.sum(-1)), "reduce_rows_kernel");
    frac(`sum ${dtype} over the first dim (${R} x ${C})`, es * m, () => tidy(() => void x.sum(0)), "reduce_columns_kernel");
    x.dispose();
    y.dispose();
    v.dispose();
    const p = randn([m], { dtype, device: "cuda", requiresGrad: true }).keep();
    p.grad = randn([m], { dtype, device: "cuda" }).keep();
    const opt = new optim.AdamW([p], { lr: 1e-4 });
    opt.step(); // state
    // param + grad read, param written; exp_avg, exp_avg_sq f32 read and written
    frac(`AdamW step ${dtype} params`, 3 * es * m + 16 * m, () => opt.step(), "adamw_kernel");
    p.grad!.dispose();
    p.dispose();

    const buf = (shape: number[], d: typeof dtype | "float32" | "int32" = dtype) => keep(cuda.DeviceBuffer.empty(ctx, shape, d));
    const a = keep(cuda.randn(ctx, [R, C], dtype, 41)), g = keep(cuda.randn(ctx, [R, C], dtype, 42, 0.1));
    const out = buf([R, C]), w = keep(cuda.randn(ctx, [C], dtype, 43)), b = keep(cuda.randn(ctx, [C], dtype, 44));
    const mean = buf([R], "float32"), rstd = buf([R], "float32"), loss = keep(cuda.scalarBuffer(ctx)), dloss = keep(cuda.scalarBuffer(ctx, 1));
    const rowNote = `row kernel, ${C <= 1024 ? "a warp" : "a block"} per row of ${C}`;
    const row = (name: string, moved: number, fn: () => void, note = rowNote) => frac(`${name} ${dtype} (${R} x ${C})`, moved * es * m, fn, note);
    row("softmax", 2, () => be.softmax(out.ptr, a.ptr, dt, R, C, 0, "bench"));
    row("logSoftmax", 2, () => be.softmax(out.ptr, a.ptr, dt, R, C, 1, "bench"));
    be.softmax(out.ptr, a.ptr, dt, R, C, 0, "bench");
    const sm = keep(cuda.copy(buf([R, C]), out)), dx = buf([R, C]);
    row("softmax backward", 3, () => be.softmaxBackward(dx.ptr, g.ptr, sm.ptr, dt, R, C, 0, "bench"));
    row("layerNorm", 2, () => be.layerNorm(out.ptr, mean.ptr, rstd.ptr, a.ptr, w.ptr, b.ptr, dt, R, C, 1e-5, "bench"));
    row("layerNorm backward, dx only", 3, () => be.layerNormBackward(dx.ptr, null, null, g.ptr, a.ptr, mean.ptr, rstd.ptr, w.ptr, dt, R, C, "bench"));
    const dw = buf([C]), db = buf([C]);
    row("layerNorm backward, dx + dgamma + dbeta", 3, () => be.layerNormBackward(dx.ptr, dw.ptr, db.ptr, g.ptr, a.ptr, mean.ptr, rstd.ptr, w.ptr, dt, R, C, "bench"),
      "row kernel, then norm_param_grad_kernel reads dy and x again (counted once)");
    row("rmsNorm", 2, () => be.rmsNorm(out.ptr, rstd.ptr, a.ptr, w.ptr, dt, R, C, 1e-6, "bench"));
    row("rmsNorm backward, dx only", 3, () => be.rmsNormBackward(dx.ptr, null, g.ptr, a.ptr, rstd.ptr, w.ptr, dt, R, C, "bench"));
    const targets = keep(cuda.DeviceBuffer.from(ctx, Int32Array.from({ length: R }, (_, i) => (i * 7919) % C), [R], "int32"));
    row("crossEntropy (logp + loss)", 2, () => be.crossEntropy(loss.ptr, out.ptr, a.ptr, targets.ptr, dt, R, C, -100, "bench"));
    row("crossEntropy backward", 2, () => be.crossEntropyBackward(dx.ptr, out.ptr, targets.ptr, dloss.ptr, dt, R, C, -100, "bench"));
    // embedding: R distinct rows of an (R, C) table (a permutation), so the backward touches each weight row once
    const idx = keep(cuda.DeviceBuffer.from(ctx, Int32Array.from({ length: R }, (_, i) => (i * 7919) % R), [R], "int32"));
    frac(`bias add ${dtype} (${R} x ${C}) + (${C})`, 2 * es * m, () => cuda.biasAdd(out, b), "bias_add_kernel");
    frac(`bias gradient ${dtype} (${R} x ${C}) -> (${C})`, es * m, () => cuda.biasGrad(g, dtype, db), "column_sum_kernel");
    row("embedding", 2, () => be.embedding(out.ptr, a.ptr, idx.ptr, dt, R, R, C, "bench"), "16-byte units per row");
    row("embedding backward", 3, () => be.embeddingBackward(dx.ptr, g.ptr, idx.ptr, dt, R, R, C, "bench"),
      "radix sort of the indices, then 16-byte column groups per row");
    // strided copy (tensor_kernels.cu): a (R, C) transpose (32x32 shared-memory tiles), and a permutation of the outer dims (R/2, 2, C) -> (2, R/2, C) whose innermost rows are
    // contiguous (16-byte units); both read and write each element once.
    const I64 = (...v: number[]) => BigInt64Array.from(v, BigInt);
    frac(`transpose ${dtype} (${R} x ${C}) -> (${C} x ${R})`, 2 * es * m,
      () => be.copyStrided(out.ptr, I64(R, 1), a.ptr, I64(1, C), I64(C, R), 2, es, "bench"), "copy_transpose_kernel");
    frac(`permute ${dtype} (${R / 2}, 2, ${C}) -> (2, ${R / 2}, ${C})`, 2 * es * m,
      () => be.copyStrided(out.ptr, I64((R / 2) * C, C, 1), a.ptr, I64(C, 2 * C, 1), I64(2, R / 2, C), 3, es, "bench"),
      "copy_strided_kernel, innermost rows in 16-byte units");
    for (const t of [a, g, out, w, b, mean, rstd, loss, dloss, sm, dx, dw, db, targets, idx]) t.dispose();
  }
}

// ---- 2. GEMM 8192^3 ------------------------------------------------------------------
{
  const S = smoke ? 64 : quick ? 4096 : 8192;
  const flops = 2 * S * S * S;
  const a = keep(cuda.randn(ctx, [S, S], "bfloat16", 11)), b = keep(cuda.randn(ctx, [S, S], "bfloat16", 12));
  const c = keep(cuda.DeviceBuffer.empty(ctx, [S, S], "bfloat16"));
  const sa = keep(cuda.scalarBuffer(ctx)), sb = keep(cuda.scalarBuffer(ctx)), am = keep(cuda.scalarBuffer(ctx));
  const a8 = keep(cuda.DeviceBuffer.empty(ctx, [S, S], "float8_e4m3fn")), b8 = keep(cuda.DeviceBuffer.empty(ctx, [S, S], "float8_e4m3fn"));
  cuda.amaxToScale(a, "float8_e4m3fn", { amax: am, scale: sa });
  cuda.quantize(a, sa, "float8_e4m3fn", a8);
  cuda.amaxToScale(b, "float8_e4m3fn", { amax: am, scale: sb });
  cuda.quantize(b, sb, "float8_e4m3fn", b8);
  const iters = quick ? 5 : 10;
  const bfMs = timeMs(() => cuda.matmul(a, b, { transB: true, out: c }), iters);
  const bfT = flops / (bfMs * 1e-3) / 1e12;
  rows.push({ section: "gemm", name: `bf16 GEMM ${S}^3 (cuBLASLt)`, ms: bfMs, value: bfT, unit: "TFLOP/s", note: "baseline" });
  for (const fast of [true, false]) {
    const ms = timeMs(() => cuda.scaledMm(a8, b8, sa, sb, { outDtype: "bfloat16", useFastAccum: fast, out: c }), iters);
    rows.push({
      section: "gemm", name: `fp8 e4m3 GEMM ${S}^3 -> bf16, fast accum ${fast ? "on" : "off"}`, ms, value: flops / (ms * 1e-3) / 1e12,
      unit: "TFLOP/s", ratio: bfMs / ms, ratioOf: "bf16", target: ">= 1.8",
    });
  }
  // row-scaled: the same operands cast with a scale per row
  const rsa = keep(cuda.quantizeRowwise(a, "float8_e4m3fn", { out: a8 }).scale), rsb = keep(cuda.quantizeRowwise(b, "float8_e4m3fn", { out: b8 }).scale);
  let outerVector = "taken";
  try {
    ctx.rowwiseGemm = "outer-vector";
    cuda.scaledMmRowwise(a8, b8, rsa, rsb, { out: c, useFastAccum: true });
  } catch (e) {
    outerVector = `not taken (${(e as Error).message})`;
  }
  for (const path of ["auto", "epilogue"] as const) {
    ctx.rowwiseGemm = path;
    const ms = timeMs(() => cuda.scaledMmRowwise(a8, b8, rsa, rsb, { outDtype: "bfloat16", useFastAccum: true, out: c }), iters);
    rows.push({
      section: "gemm", name: `fp8 e4m3 row-scaled GEMM ${S}^3 -> bf16, fast accum on (${path})`, ms, value: flops / (ms * 1e-3) / 1e12,
      unit: "TFLOP/s", ratio: bfMs / ms, ratioOf: "bf16", note: path === "auto" ? `cuBLASLt outer-vector scaling ${outerVector}` : undefined,
    });
  }
  ctx.rowwiseGemm = "auto";
  for (const buf of [a, b, c, a8, b8]) buf.dispose();
}

// ---- 3. Linear fwd+bwd ------------------------------------------------------------------
for (const [M, K, N] of smoke ? [[32, 64, 48]] : quick ? [[1024, 2048, 1024]] : [[4096, 8192, 16384], [1024, 2048, 1024]]) {
  const x = keep(cuda.randn(ctx, [M, K], "bfloat16", 21)), w = keep(cuda.randn(ctx, [N, K], "bfloat16", 22, 0.02));
  const dy = keep(cuda.randn(ctx, [M, N], "bfloat16", 23, 0.1));
  const y = keep(cuda.DeviceBuffer.empty(ctx, [M, N], "bfloat16"));
  const dx = keep(cuda.DeviceBuffer.empty(ctx, [M, K], "bfloat16")), dw = keep(cuda.DeviceBuffer.empty(ctx, [N, K], "bfloat16"));
  const shape = `${M},${K},${N}`;
  const big = M * K * N >= 2 ** 36;
  const iters = big ? (quick ? 3 : 10) : 50;
  const stepOf = (layer: cuda.HighPrecisionLinearCuda | cuda.Float8LinearCuda) => () => {
    layer.forward(x, w, { out: y });
    layer.backward(dy, { dx, dw });
  };
  const measure = (layer: cuda.HighPrecisionLinearCuda | cuda.Float8LinearCuda) => {
    const step = stepOf(layer);
    const eager = timeMs(step, iters);
    step();
    const graph = ctx.capture(step);
    const replay = timeMs(() => graph.launch(), iters);
    graph.dispose();
    return { eager, replay };
  };
  const base = new cuda.HighPrecisionLinearCuda(ctx, M, K, N, "bfloat16");
  const tb = measure(base);
  rows.push({ section: "linear", name: `bf16 Linear fwd+bwd ${shape} (eager | graph)`, ms: tb.eager, value: tb.replay, unit: "ms graph", note: "baseline" });
  const variants: [string, cuda.Float8LinearCuda, "reference" | "hardware"][] = [
    ["float8, dynamic", new cuda.Float8LinearCuda(ctx, M, K, N, { fallback: "never" }), "reference"],
    ["float8, dynamic, hardware cast", new cuda.Float8LinearCuda(ctx, M, K, N, { fallback: "never" }), "hardware"],
    ["Float8LinearCuda auto", new cuda.Float8LinearCuda(ctx, M, K, N), defaultKernel],
  ];
  const target = big ? ">= 1.45" : ">= 1.0";
  for (const [label, layer, kernel] of variants) {
    ctx.castKernel = kernel;
    const t = measure(layer);
    rows.push({ section: "linear", name: `${label} ${shape} eager`, ms: t.eager, value: tb.eager / t.eager, unit: "x", ratio: tb.eager / t.eager, ratioOf: "bf16 eager", target, note: layer.toString() });
    rows.push({ section: "linear", name: `${label} ${shape} graph`, ms: t.replay, value: tb.replay / t.replay, unit: "x", ratio: tb.replay / t.replay, ratioOf: "bf16 graph", target });
    layer.dispose();
  }
  ctx.castKernel = defaultKernel;
  base.dispose();
  for (const b of [x, w, dy, y, dx, dw]) b.dispose();
}

// ---- 4. the user's path: Tensor API on device "cuda" ---------------------------------------
// nn.Linear (bf16, cuBLASLt) vs Float8Linear from convertToFloat8Training, fwd+bwd through
// autograd, as a training step runs it (each step's temporaries freed by tidy); eager, and
// captured once with cuda.captureGraph and replayed (one launch a step).
for (const [M, K, N] of smoke ? [[32, 64, 48]] : quick ? [[1024, 2048, 1024]] : [[4096, 8192, 16384], [1024, 2048, 1024]]) {
  const shape = `${M},${K},${N}`;
  const big = M * K * N >= 2 ** 36;
  const iters = big ? (quick ? 3 : 10) : 30;
  manualSeed(31);
  const x = randn([M, K], { dtype: "bfloat16", device: "cuda" });
  const dy = randn([M, N], { dtype: "bfloat16", std: 0.1, device: "cuda" });
  const stepOf = (model: nn.Module) => () => tidy(() => {
    model.zeroGrad();
    const xi = x.detach();
    xi.requiresGrad = true;
    model.forward(xi).backward(dy);
  });
  const make = (convert: "none" | "always" | "auto") => {
    manualSeed(32);
    const m: nn.Module = new nn.Sequential(new nn.Linear(K, N, { dtype: "bfloat16", bias: false }));
    if (convert === "always") float8.convertToFloat8Training(m);
    if (convert === "auto") float8.convertToFloat8Training(m, { moduleFilterFn: float8.autoFilterForRecipe("tensorwise", { M, device: /H200/i.test(info.name) ? "h200" : "h100" }) });
    return m.to({ device: "cuda" });
  };
  /** The same step captured once with cuda.captureGraph (after the warm-up step) and replayed. */
  const replayMs = (model: nn.Module) => {
    const step = stepOf(model);
    step();
    const g = cuda.captureGraph(step);
    const t = timeMs(() => g.replay(), iters);
    g.dispose();
    model.zeroGrad();
    return t;
  };
  const base = make("none");
  const tb = timeMs(stepOf(base), iters);
  const tbGraph = replayMs(base);
  rows.push({ section: "tensor", name: `nn.Linear bf16 fwd+bwd ${shape} (Tensor API)`, ms: tb, value: 1, unit: "x", note: "baseline" });
  rows.push({ section: "tensor", name: `nn.Linear bf16 fwd+bwd ${shape} (Tensor API, graph)`, ms: tbGraph, value: tb / tbGraph, unit: "x eager", note: "baseline" });
  const target = big ? ">= 1.45" : ">= 1.0";
  for (const [label, mode] of [["Float8Linear, dynamic", "always"], ["autoFilterForRecipe", "auto"]] as const) {
    const m = make(mode);
    const t = timeMs(stepOf(m), iters);
    const layer = [...m.namedModules()].map(([, mm]) => mm).find((mm) => mm instanceof nn.Linear);
    rows.push({ section: "tensor", name: `${label} ${shape} (Tensor API)`, ms: t, value: tb / t, unit: "x", ratio: tb / t, ratioOf: "nn.Linear bf16", target, note: String(layer) });
    if (mode === "always") {
      const tg = replayMs(m);
      rows.push({ section: "tensor", name: `${label} ${shape} (Tensor API, graph)`, ms: tg, value: tbGraph / tg, unit: "x", ratio: tbGraph / tg, ratioOf: "nn.Linear bf16 graph", target });
    }
    m.dispose();
  }
  base.dispose();
  x.dispose();
  dy.dispose();
}

for (const b of owned) b.dispose();
ctx.synchronize();

// ---- report ------------------------------------------------------------------------------
const fmt = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : String(v));
const lines = rows.map((r) => {
  const ratio = r.ratio === undefined ? "" : `${fmt(r.ratio)} of ${r.ratioOf}${r.target ? ` (target ${r.target})` : ""}`;
  return `${r.name.padEnd(62)} ${fmt(r.ms, 3).padStart(9)} ms ${fmt(r.value, 1).padStart(9)} ${r.unit.padEnd(9)} ${ratio}`;
});
const notes = rows.filter((r) => r.note && r.note !== "baseline").map((r) => `  ${r.name}: ${r.note}`);
const table = [
  `GPU benchmarks on ${info.name} (${new Date().toISOString().slice(0, 10)})${smoke ? " [--smoke: not a measurement]" : quick ? " [--quick]" : ""}`,
  ...lines, "notes:", ...notes,
].join("\n");
if (process.env.OUT) {
  writeFileSync(join(process.env.OUT, "gpu_bench.json"), JSON.stringify({ device: info, date: new Date().toISOString(), quick, rows }, null, 2));
  writeFileSync(join(process.env.OUT, "gpu_bench.txt"), table + "\n");
}
console.log(table);
