// device_ops.ts — the tensor-level device contract (docs/architecture.md, "The
// device contract"). Operations take Tensors and small option objects with named
// fields, allocate their outputs and return Tensors; this file alone turns them
// into the calls of a device's kernel table (Backend, src/tensor/backend/types.ts):
// it picks the backend, checks that every operand lives on that one device (one
// function, one message), and translates tensors to pointers and dtypes to codes.
//
// Written once over any kernel table: a new device implements Backend and is
// registered in backendFor; nothing here changes. float8, nn, optim and
// distributed call these instead of the kernel table (test/import_rules.test.ts
// fails if `ptrFor` or `DTYPE_CODE` reappear there).
import { Float8Error } from "../errors.ts";
import { offsetPtr } from "../ffi/index.ts";
import { DTYPE_CODE, ITEM_SIZE, type DType, type Float8DType, type HighPrecisionDType } from "./dtype.ts";
import { fmtShape } from "./shape.ts";
import { Tensor } from "./tensor.ts";
import { backendFor, blockKernelsOf, type Backend, type NativePtr } from "./backend/index.ts";

// ---- the one device check ----

function describeOperand(t: Tensor): string {
  return `${fmtShape(t.shape)} ${t.dtype} on ${t.device}`;
}

/** The one message of a device disagreement: every operand's shape, dtype and device. */
function deviceMismatch(op: string, ts: readonly (Tensor | null | undefined)[]): Float8Error {
  const all = ts.filter((t): t is Tensor => !!t);
  return new Float8Error(op, `operands must be on one device, got ${all.map(describeOperand).join(", ")}`);
}

/**
 * The kernel table every operand of `op` runs on: all given tensors (null and
 * undefined are skipped) must be alive and on the device of the first one.
 * Throws a Float8Error naming op and every operand's shape, dtype and device.
 * The fixed arity keeps the hot path free of a rest-argument array.
 */
export function sameDevice(op: string, a: Tensor, b?: Tensor | null, c?: Tensor | null, d?: Tensor | null, e?: Tensor | null, f?: Tensor | null): Backend {
  a.ptrFor(op); // alive
  const dev = a.device;
  if ((b && b.device !== dev) || (c && c.device !== dev) || (d && d.device !== dev) || (e && e.device !== dev) || (f && f.device !== dev)) {
    throw deviceMismatch(op, [a, b, c, d, e, f]);
  }
  b?.ptrFor(op);
  c?.ptrFor(op);
  d?.ptrFor(op);
  e?.ptrFor(op);
  f?.ptrFor(op);
  const be = backendFor(dev, op);
  if (be.checkOperand) for (const t of [a, b, c, d, e, f]) if (t) be.checkOperand(t.ptrFor(op), describeOperand(t), op);
  return be;
}

/** sameDevice for any number of operands (a list). */
export function sameDeviceAll(op: string, ts: readonly (Tensor | null | undefined)[]): Backend {
  const live = ts.filter((t): t is Tensor => !!t);
  for (const t of live) t.ptrFor(op);
  const dev = live[0].device;
  if (live.some((t) => t.device !== dev)) throw deviceMismatch(op, live);
  const be = backendFor(dev, op);
  if (be.checkOperand) for (const t of live) be.checkOperand(t.ptrFor(op), describeOperand(t), op);
  return be;
}

/** Throws a Float8Error from `op` when t is not a live Tensor (disposed, or not a Tensor at all). */
export function requireLive(t: unknown, op: string, what = "argument"): asserts t is Tensor {
  if (!(t instanceof Tensor)) throw new Float8Error(op, `${what} must be a Tensor, got ${t === null ? "null" : typeof t}`);
  t.ptrFor(op);
}

const p = (t: Tensor, op: string): NativePtr => t.ptrFor(op);
const pn = (t: Tensor | null | undefined, op: string): NativePtr | null => (t ? t.ptrFor(op) : null);

// ---- memory ----

/** Writes host values into the start of t's storage (host.byteLength bytes, at most t.nbytes), on any device. */
export function uploadInto(t: Tensor, host: ArrayBufferView, op: string): void {
  const be = sameDevice(op, t);
  if (host.byteLength > t.nbytes) throw new Float8Error(op, `${host.byteLength} host bytes do not fit tensor ${describeOperand(t)} (${t.nbytes} bytes)`);
  be.upload(p(t, op), host, host.byteLength);
}

/** Fills elements [from, to) of t with value in place, on its device. */
export function fillRange(t: Tensor, from: number, to: number, value: number, op: string): void {
  if (!(to > from)) return;
  if (from < 0 || to > t.numel) throw new Float8Error(op, `range [${from}, ${to}) is outside tensor ${describeOperand(t)}`);
  const be = sameDevice(op, t);
  be.fill(offsetPtr(p(t, op), from * ITEM_SIZE[t.dtype]), DTYPE_CODE[t.dtype], to - from, value, op);
}

/** dst[dstIndex + i] <- src[srcIndex + i] for i < count, same dtype, same device (a device-to-device copy). */
export function copyElements(dst: Tensor, dstIndex: number, src: Tensor, srcIndex: number, count: number, op: string): void {
  const be = sameDevice(op, dst, src);
  if (dst.dtype !== src.dtype) throw new Float8Error(op, `copy needs one dtype, got ${describeOperand(dst)} and ${describeOperand(src)}`);
  if (count < 0 || dstIndex < 0 || srcIndex < 0 || dstIndex + count > dst.numel || srcIndex + count > src.numel) {
    throw new Float8Error(op, `copy of ${count} elements at ${srcIndex} -> ${dstIndex} is outside ${describeOperand(src)} -> ${describeOperand(dst)}`);
  }
  if (count === 0) return;
  const item = ITEM_SIZE[dst.dtype];
  be.copy(offsetPtr(p(dst, op), dstIndex * item), offsetPtr(p(src, op), srcIndex * item), count * item);
}

// ---- fp8 casts and scaling ----

/** max |x| into a one-element float32 tensor (`out`, or a new one); NaN propagates. */
export function amax(x: Tensor, out: Tensor | null = null, op = "amax"): Tensor {
  const o = out ?? Tensor.empty([1], "float32", x.device);
  const be = sameDevice(op, x, o);
  be.amax(p(o, op), p(x, op), DTYPE_CODE[x.dtype], x.numel, op);
  return o;
}

/** Options of amaxToScale. */
export interface AmaxToScaleOptions {
  /** clamp the scale to 65504 (float16 models) */
  clampToFloat16?: boolean;
  /** where max |src| goes (a one-element float32 tensor; default a new one) */
  amaxOut?: Tensor | null;
  /** where the scale goes (a one-element float32 tensor; default a new one) */
  scaleOut?: Tensor | null;
}

/** Dynamic scale of src for float8Dtype in one pass: returns [scale, amax], each a one-element float32 tensor. */
export function amaxToScale(src: Tensor, float8Dtype: Float8DType, opts: AmaxToScaleOptions = {}, op = "amaxToScale"): [Tensor, Tensor] {
  const scale = opts.scaleOut ?? Tensor.empty([1], "float32", src.device);
  const am = opts.amaxOut ?? Tensor.empty([1], "float32", src.device);
  const be = sameDevice(op, src, scale, am);
  be.amaxToScale(p(am, op), p(scale, op), p(src, op), DTYPE_CODE[src.dtype], src.numel, DTYPE_CODE[float8Dtype], opts.clampToFloat16 ? 1 : 0, op);
  return [scale, am];
}

/** Options of quantize: what the cast writes besides the fp8 bytes, in the same pass where the device can. */
export interface QuantizeOptions {
  /** receives max |x| (delayed scaling's record for the next sync) */
  amaxOut?: Tensor | null;
  /** also write the exact bf16 value of each fp8 byte (row-major) */
  decoded?: boolean;
  /** also write the bf16 decode transposed (cols, rows) of a 2-D x (devices that have the kernel: see canDecodeTransposed) */
  decodedT?: boolean;
  /** also write the fp8 bytes transposed (cols, rows) of a 2-D x */
  transposed?: boolean;
}

/** What quantize wrote: the fp8 bytes and the extra layouts that were asked for (else null). */
export interface Quantized {
  data: Tensor;
  decoded: Tensor | null;
  decodedT: Tensor | null;
  transposed: Tensor | null;
}

/** Whether x's device can write a transposed bf16 decode in the cast (the CPU's GEMM input). */
export function canDecodeTransposed(x: Tensor): boolean {
  return x.backend.quantizeTransposeDecode !== undefined;
}

function need2d(x: Tensor, what: string, op: string): [number, number] {
  if (x.ndim !== 2) throw new Float8Error(op, `${what} needs a 2-D tensor, got shape ${fmtShape(x.shape)} dtype ${x.dtype}`);
  return [x.shape[0], x.shape[1]];
}

/**
 * sat_rne(f32(x) * scale) as fp8 bytes of float8Dtype (scale: one f32 tensor on x's device), plus, in the same
 * call, what opts asks for. One kernel of the backend per combination:
 * decodedT -> quantizeTransposeDecode (with decoded optional; an amax first when amaxOut),
 * transposed -> quantizeTranspose (amax first when amaxOut), amaxOut -> quantizeAmax (decoded optional),
 * decoded -> quantizeDecode, else quantize.
 */
export function quantize(x: Tensor, scale: Tensor, float8Dtype: Float8DType, opts: QuantizeOptions = {}, op = "quantize"): Quantized {
  const amaxOut = opts.amaxOut ?? null;
  const be = sameDevice(op, x, scale, amaxOut);
  const xc = DTYPE_CODE[x.dtype], fc = DTYPE_CODE[float8Dtype];
  const data = Tensor.empty(x.shape, float8Dtype, x.device);
  const decoded = opts.decoded ? Tensor.empty(x.shape, "bfloat16", x.device) : null;
  const out: Quantized = { data, decoded, decodedT: null, transposed: null };
  if (opts.decodedT) {
    if (!be.quantizeTransposeDecode) throw new Float8Error(op, `a transposed bf16 decode is a host GEMM's input; device ${x.device} has none`);
    const [rows, cols] = need2d(x, "a transposed decode", op);
    if (amaxOut) be.amax(p(amaxOut, op), p(x, op), xc, x.numel, op);
    out.decodedT = Tensor.empty([cols, rows], "bfloat16", x.device);
    be.quantizeTransposeDecode(p(data, op), pn(decoded, op), p(out.decodedT, op), fc, p(x, op), xc, rows, cols, p(scale, op), op);
  } else if (opts.transposed) {
    const [rows, cols] = need2d(x, "a transposed cast", op);
    if (decoded) throw new Float8Error(op, "a cast writes the transposed fp8 layout or the bf16 decode, not both");
    if (amaxOut) be.amax(p(amaxOut, op), p(x, op), xc, x.numel, op);
    out.transposed = Tensor.empty([cols, rows], float8Dtype, x.device);
    if (x.numel > 0) be.quantizeTranspose(p(data, op), p(out.transposed, op), fc, p(x, op), xc, rows, cols, p(scale, op), op);
  } else if (amaxOut) {
    be.quantizeAmax(p(data, op), pn(decoded, op), fc, p(x, op), xc, x.numel, p(scale, op), p(amaxOut, op), op);
  } else if (decoded) {
    if (x.numel > 0) be.quantizeDecode(p(data, op), p(decoded, op), fc, p(x, op), xc, x.numel, p(scale, op), op);
  } else if (x.numel > 0) {
    be.quantize(p(data, op), fc, p(x, op), xc, x.numel, p(scale, op), op);
  }
  return out;
}

/** Options of quantizeDynamic. */
export interface QuantizeDynamicOptions {
  /** also write the exact bf16 value of each fp8 byte (host devices) */
  decoded?: boolean;
  /** round the scale down to a power of 2 */
  roundPow2?: boolean;
  /** clamp the scale to 65504 (float16 models) */
  clampToFloat16?: boolean;
}

/** Dynamic scaling in one call: the scale from x's own amax, then the cast. Returns the fp8 bytes, the scale and the decode when asked. */
export function quantizeDynamic(x: Tensor, float8Dtype: Float8DType, opts: QuantizeDynamicOptions = {}, op = "quantizeDynamic"): { data: Tensor; scale: Tensor; decoded: Tensor | null } {
  const be = sameDevice(op, x);
  const data = Tensor.empty(x.shape, float8Dtype, x.device);
  const decoded = opts.decoded ? Tensor.empty(x.shape, "bfloat16", x.device) : null;
  const scale = Tensor.empty([1], "float32", x.device);
  be.quantizeDynamic(p(data, op), pn(decoded, op), DTYPE_CODE[float8Dtype], p(x, op), DTYPE_CODE[x.dtype], x.numel, null, p(scale, op),
    opts.clampToFloat16 ? 1 : 0, opts.roundPow2 ? 1 : 0, op);
  return { data, scale, decoded };
}

/** One scale per row of a 2-D x (optionally rounded down to powers of 2) and the cast: the fp8 bytes and the (rows) f32 scales. */
export function quantizeRowwise(x: Tensor, float8Dtype: Float8DType, opts: { roundPow2?: boolean } = {}, op = "quantizeRowwise"): { data: Tensor; scale: Tensor } {
  const [rows, cols] = need2d(x, "a row-wise cast", op);
  const be = sameDevice(op, x);
  const data = Tensor.empty(x.shape, float8Dtype, x.device);
  const scale = Tensor.empty([rows], "float32", x.device);
  be.quantizeRowwise(p(data, op), p(scale, op), DTYPE_CODE[float8Dtype], p(x, op), DTYPE_CODE[x.dtype], rows, cols, opts.roundPow2 ? 1 : 0, op);
  return { data, scale };
}

/** f32(data) / scale rounded once to outDtype (one scale for the whole tensor). */
export function dequantize(data: Tensor, scale: Tensor, outDtype: HighPrecisionDType, op = "dequantize"): Tensor {
  const be = sameDevice(op, data, scale);
  const out = Tensor.empty(data.shape, outDtype, data.device);
  if (out.numel > 0) be.dequantize(p(out, op), DTYPE_CODE[outDtype], p(data, op), DTYPE_CODE[data.dtype], out.numel, p(scale, op), op);
  return out;
}

/** scale <- 2^floor(log2(scale)) for every f32 element, in place. */
export function roundScalesToPowerOf2(scale: Tensor, op = "roundScalesToPowerOf2"): void {
  const be = sameDevice(op, scale);
  be.roundScalesToPowerOf2(p(scale, op), scale.numel, op);
}

/** Counts of zeros, saturated values and NaNs of fp8 data. A device without the host kernel has its data copied to the CPU first. */
export function fp8Stats(data: Tensor, op = "fp8Stats"): { zeros: number; saturated: number; nans: number } {
  const be = sameDevice(op, data);
  if (!be.fp8Stats) {
    const host = data.to({ device: "cpu" });
    try {
      return fp8Stats(host, op);
    } finally {
      host.dispose();
    }
  }
  const out = new BigInt64Array(3);
  be.fp8Stats(out, p(data, op), DTYPE_CODE[data.dtype], data.numel, op);
  return { zeros: Number(out[0]), saturated: Number(out[1]), nans: Number(out[2]) };
}

/**
 * Telemetry of the cast src (rows, cols) -> fp8 with scale (one, or one per row when perRow): clipped and
 * underflowed counts, sum x^2 and sum (x - fp8/scale)^2. A device without the host kernel has its tensors
 * copied to the CPU first.
 */
export function castStats(src: Tensor, fp8: Tensor, scale: Tensor, perRow: boolean, rows: number, cols: number, op = "castStats"): { clipped: number; underflow: number; sumSq: number; errSq: number } {
  const be = sameDevice(op, src, fp8, scale);
  if (!be.castStats) {
    const h = src.to({ device: "cpu" }), d = fp8.to({ device: "cpu" }), s = scale.to({ device: "cpu" });
    try {
      return castStats(h, d, s, perRow, rows, cols, op);
    } finally {
      for (const t of [h, d, s]) t.dispose();
    }
  }
  const counts = new BigInt64Array(2), sums = new Float64Array(2);
  be.castStats(counts, sums, p(src, op), DTYPE_CODE[src.dtype], p(fp8, op), DTYPE_CODE[fp8.dtype], p(scale, op), perRow, rows, cols, op);
  return { clipped: Number(counts[0]), underflow: Number(counts[1]), sumSq: sums[0], errSq: sums[1] };
}

/** One delayed-scaling state for syncAmaxHistory: one-element f32 amax and scale, an f32 history. */
export interface AmaxHistoryEntry {
  amax: Tensor;
  history: Tensor;
  scale: Tensor;
  float8Dtype: Float8DType;
  clampToFloat16: boolean;
}

/** Delayed scaling's update for every entry in one backend call: history rolls and takes amax, scale <- amaxToScale(max(history)). All entries on one device, histories of historyLen. */
export function syncAmaxHistory(entries: readonly AmaxHistoryEntry[], historyLen: number, op = "syncAmaxHistory"): void {
  if (entries.length === 0) return;
  const first = entries[0].amax;
  let be: Backend | null = null;
  for (const e of entries) {
    be = sameDevice(op, first, e.amax, e.history, e.scale);
    if (e.history.numel !== historyLen) throw new Float8Error(op, `history ${describeOperand(e.history)} is not of length ${historyLen}`);
  }
  be!.syncAmaxHistory(
    entries.map((e) => p(e.amax, op)), entries.map((e) => p(e.history, op)), entries.map((e) => p(e.scale, op)),
    Int32Array.from(entries, (e) => DTYPE_CODE[e.float8Dtype]), Int32Array.from(entries, (e) => (e.clampToFloat16 ? 1 : 0)), historyLen, op,
  );
}

// ---- scaled fp8 GEMMs ----

/** Options of the scaled GEMMs. */
export interface ScaledGemmOptions {
  M: number;
  K: number;
  N: number;
  outDtype: HighPrecisionDType;
  bias?: Tensor | null;
  useFastAccum?: boolean;
}

/**
 * Scaled fp8 GEMM in TN form: (M, N) <- a (M, K) @ b (N, K)^T / (scaleA * scaleB) [+ bias]. Tensorwise: one f32
 * scale each; rowwise: scaleA (M) and scaleB (N).
 */
export function scaledMmTN(a: Tensor, b: Tensor, scaleA: Tensor, scaleB: Tensor, o: ScaledGemmOptions & { rowwise?: boolean }, op = "scaledMm"): Tensor {
  const bias = o.bias ?? null;
  const be = sameDevice(op, a, b, scaleA, scaleB, bias);
  const out = Tensor.empty([o.M, o.N], o.outDtype, a.device);
  const kernel = o.rowwise ? be.scaledMmRowwise : be.scaledMm;
  kernel.call(be, p(out, op), DTYPE_CODE[o.outDtype], p(a, op), DTYPE_CODE[a.dtype], p(b, op), DTYPE_CODE[b.dtype], p(scaleA, op), p(scaleB, op),
    pn(bias, op), bias ? DTYPE_CODE[bias.dtype] : 0, o.M, o.K, o.N, !!o.useFastAccum, op);
  return out;
}

/** Options of the host fp8 GEMM with operand transposes. */
export interface StridedScaledGemmOptions extends ScaledGemmOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * Whether a's device runs this tensorwise fp8 GEMM on a native fp8 kernel with operand transposes
 * (scaledMmStrided; the CPU: oneDNN's own fp8 matmul where libfp8 measured it faster). False elsewhere.
 */
export function hasNativeFp8Gemm(a: Tensor, bDtype: DType, o: StridedScaledGemmOptions, op = "scaledMm"): boolean {
  const be = a.backend;
  if (!be.nativeFp8Matmul || !be.scaledMmStrided) return false;
  const bias = o.bias ?? null;
  return be.nativeFp8Matmul(DTYPE_CODE[o.outDtype], DTYPE_CODE[a.dtype], DTYPE_CODE[bDtype], bias ? DTYPE_CODE[bias.dtype] : -1,
    o.M, o.K, o.N, !!o.transA, !!o.transB, op);
}

/** The tensorwise fp8 GEMM with any operand transposes on devices that have it (see hasNativeFp8Gemm). */
export function scaledMmStrided(a: Tensor, b: Tensor, scaleA: Tensor, scaleB: Tensor, o: StridedScaledGemmOptions, op = "scaledMm"): Tensor {
  const bias = o.bias ?? null;
  const be = sameDevice(op, a, b, scaleA, scaleB, bias);
  if (!be.scaledMmStrided) throw new Float8Error(op, `device ${a.device} has no strided fp8 GEMM`);
  const out = Tensor.empty([o.M, o.N], o.outDtype, a.device);
  be.scaledMmStrided(p(out, op), DTYPE_CODE[o.outDtype], p(a, op), DTYPE_CODE[a.dtype], p(b, op), DTYPE_CODE[b.dtype], p(scaleA, op), p(scaleB, op),
    pn(bias, op), bias ? DTYPE_CODE[bias.dtype] : 0, o.M, o.K, o.N, !!o.transA, !!o.transB, op);
  return out;
}

// ---- optimizers ----

/** SGD's hyperparameters for one step. */
export interface SgdStepOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** the momentum buffer's first step (it takes the gradient as is) */
  firstStep: boolean;
}

/** One SGD step in place on param (and its momentum buffer when given), on their device. */
export function sgdStep(param: Tensor, grad: Tensor, buf: Tensor | null, o: SgdStepOptions, op = "SGD.step"): void {
  const be = sameDevice(op, param, grad, buf);
  be.sgdStep(p(param, op), p(grad, op), pn(buf, op), DTYPE_CODE[param.dtype], param.numel, o.lr, o.momentum, o.dampening, o.weightDecay,
    o.nesterov ? 1 : 0, o.firstStep ? 1 : 0, op);
}

/** AdamW's hyperparameters for one step. */
export interface AdamwStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** the step count, from 1 */
  step: number;
}

/** One AdamW step in place on param and its moments, on their device. */
export function adamwStep(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, o: AdamwStepOptions, op = "AdamW.step"): void {
  const be = sameDevice(op, param, grad, expAvg, expAvgSq);
  be.adamwStep(p(param, op), p(grad, op), p(expAvg, op), p(expAvgSq, op), DTYPE_CODE[param.dtype], param.numel, o.lr, o.beta1, o.beta2, o.eps,
    o.weightDecay, o.step, op);
}

/** Whether `device` can run an AdamW step whose per-step constants are read from device memory (what a CUDA-graph replay needs). */
export function hasAdamwDeviceConsts(t: Tensor): boolean {
  const be = t.backend;
  return be.adamwStepDeviceConsts !== undefined && be.adamwConstants !== undefined;
}

/** AdamW's 5 per-step constants for o.step, computed on the host as adamwStep computes them, into out. */
export function adamwConstants(t: Tensor, out: Float32Array, o: AdamwStepOptions, op = "AdamW.step"): void {
  const be = sameDevice(op, t);
  if (!be.adamwConstants) throw new Float8Error(op, `AdamW cannot be captured in a graph on device ${t.device}`);
  be.adamwConstants(out, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.step, op);
}

/** adamwStep reading its per-step constants from `consts` (5 f32 on the device), for a captured step. */
export function adamwStepDeviceConsts(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, consts: Tensor, o: { beta2: number; eps: number }, op = "AdamW.step"): void {
  const be = sameDevice(op, param, grad, expAvg, expAvgSq, consts);
  if (!be.adamwStepDeviceConsts) throw new Float8Error(op, `AdamW cannot be captured in a graph on device ${param.device}`);
  be.adamwStepDeviceConsts(p(param, op), p(grad, op), p(expAvg, op), p(expAvgSq, op), DTYPE_CODE[param.dtype], param.numel, p(consts, op), o.beta2, o.eps, op);
}

// ---- the tensor layer's kernels (src/tensor/ops): outputs are allocated by the op, which owns their shapes ----

const dimsOf = (s: readonly number[], nd: number): BigInt64Array => {
  const out = new BigInt64Array(nd).fill(1n);
  for (let i = 0; i < s.length; i++) out[nd - s.length + i] = BigInt(s[i]);
  return out;
};

/** out <- src converted to out's dtype (round to nearest even; fp8 saturates), same numel. */
export function convertInto(out: Tensor, src: Tensor, op = "to"): void {
  const be = sameDevice(op, src, out);
  if (src.numel > 0) be.convert(p(out, op), DTYPE_CODE[out.dtype], p(src, op), DTYPE_CODE[src.dtype], src.numel, op);
}

/** Every element of t <- value. */
export function fill(t: Tensor, value: number, op = "fill"): void {
  fillRange(t, 0, t.numel, value, op);
}

/** out <- a (alg) b with numpy broadcasting (alg: 0 add, 1 sub, 2 mul, 3 div); one float dtype. */
export function binaryInto(out: Tensor, a: Tensor, b: Tensor, alg: number, op: string): void {
  const be = sameDevice(op, a, b, out);
  const nd = Math.max(out.ndim, 1);
  be.binary(p(out, op), dimsOf(out.shape, nd), p(a, op), dimsOf(a.shape, nd), p(b, op), dimsOf(b.shape, nd), DTYPE_CODE[out.dtype], nd, alg, op);
}

/** out <- f_alg(src; alpha, beta) elementwise (libfp8's eltwise algorithms). */
export function eltwiseInto(out: Tensor, src: Tensor, alg: number, alpha: number, beta: number, op: string): void {
  const be = sameDevice(op, src, out);
  if (src.numel > 0) be.eltwise(p(out, op), p(src, op), DTYPE_CODE[src.dtype], src.numel, alg, alpha, beta, op);
}

/** dsrc <- ddst * f_alg'(src; alpha, beta) elementwise. */
export function eltwiseBackwardInto(dsrc: Tensor, ddst: Tensor, src: Tensor, alg: number, alpha: number, beta: number, op: string): void {
  const be = sameDevice(op, src, ddst, dsrc);
  if (src.numel > 0) be.eltwiseBackward(p(dsrc, op), p(ddst, op), p(src, op), DTYPE_CODE[src.dtype], src.numel, alg, alpha, beta, op);
}

/** out (keepdim shape) <- reduction of src over the dims where out has 1 (alg: libfp8's reduce algorithms). */
export function reduceInto(out: Tensor, src: Tensor, alg: number, op: string): void {
  const be = sameDevice(op, src, out);
  const nd = Math.max(src.ndim, 1);
  be.reduce(p(out, op), dimsOf(out.shape, nd), p(src, op), dimsOf(src.shape, nd), DTYPE_CODE[src.dtype], nd, alg, op);
}

/** A strided region copy: dst[dstOffset + sum i_k dstStrides_k] <- src[srcOffset + sum i_k srcStrides_k] over dims (elements, one dtype size). */
export function copyStridedInto(
  dst: Tensor, dstOffset: number, dstStrides: readonly number[], src: Tensor, srcOffset: number, srcStrides: readonly number[], dims: readonly number[], op: string,
): void {
  const be = sameDevice(op, dst, src);
  const item = ITEM_SIZE[src.dtype];
  be.copyStrided(offsetPtr(p(dst, op), dstOffset * item), BigInt64Array.from(dstStrides, BigInt), offsetPtr(p(src, op), srcOffset * item),
    BigInt64Array.from(srcStrides, BigInt), BigInt64Array.from(dims, BigInt), dims.length, item, op);
}

/** out <- src, with value where mask (one byte an element, 0/1, repeated over src's leading dims) is 1. */
export function maskedFillInto(out: Tensor, src: Tensor, maskBytes: Tensor, value: number, op: string): void {
  const be = sameDevice(op, src, out, maskBytes);
  if (src.numel > 0) be.maskedFill(p(out, op), p(src, op), p(maskBytes, op), DTYPE_CODE[src.dtype], src.numel, maskBytes.numel, value, op);
}

/** out int32 (rows) <- index of the max of each row of src viewed as (rows, cols); NaN wins, first on ties. */
export function argmaxInto(out: Tensor, src: Tensor, rows: number, cols: number, op = "argmax"): void {
  const be = sameDevice(op, src, out);
  if (rows > 0) be.argmax(p(out, op), p(src, op), DTYPE_CODE[src.dtype], rows, cols, op);
}

/** Row shape of the row-wise nn kernels: src viewed as (rows, cols). */
export interface Rows {
  rows: number;
  cols: number;
}

/** out <- (log)softmax of each row. */
export function softmaxInto(out: Tensor, src: Tensor, r: Rows, log: boolean, op: string): void {
  const be = sameDevice(op, src, out);
  if (src.numel > 0) be.softmax(p(out, op), p(src, op), DTYPE_CODE[src.dtype], r.rows, r.cols, log ? 1 : 0, op);
}

/** dsrc <- the gradient of (log)softmax given its output and the output's gradient. */
export function softmaxBackwardInto(dsrc: Tensor, ddst: Tensor, dst: Tensor, r: Rows, log: boolean, op: string): void {
  const be = sameDevice(op, dst, ddst, dsrc);
  if (dst.numel > 0) be.softmaxBackward(p(dsrc, op), p(ddst, op), p(dst, op), DTYPE_CODE[dst.dtype], r.rows, r.cols, log ? 1 : 0, op);
}

/** Layer norm's outputs and saved statistics. */
export interface NormOutputs {
  out: Tensor;
  /** f32 (rows); layer norm only */
  mean?: Tensor | null;
  /** f32 (rows) */
  rstd: Tensor;
}

/** Layer norm of each row: out, and the saved mean and rstd (f32). */
export function layerNormInto(o: NormOutputs, src: Tensor, gamma: Tensor | null, beta: Tensor | null, r: Rows, eps: number, op = "layerNorm"): void {
  const be = sameDevice(op, src, gamma, beta, o.out, o.mean, o.rstd);
  if (src.numel > 0) be.layerNorm(p(o.out, op), p(o.mean!, op), p(o.rstd, op), p(src, op), pn(gamma, op), pn(beta, op), DTYPE_CODE[src.dtype], r.rows, r.cols, eps, op);
}

/** Layer norm's gradients: dsrc, and dgamma / dbeta where given. */
export function layerNormBackwardInto(
  g: { dsrc: Tensor; dgamma: Tensor | null; dbeta: Tensor | null }, ddst: Tensor, src: Tensor, mean: Tensor, rstd: Tensor, gamma: Tensor | null, r: Rows, op = "layerNorm.backward",
): void {
  sameDevice(op, src, g.dsrc, g.dgamma, g.dbeta, ddst);
  const be = sameDevice(op, src, mean, rstd, gamma);
  be.layerNormBackward(p(g.dsrc, op), pn(g.dgamma, op), pn(g.dbeta, op), p(ddst, op), p(src, op), p(mean, op), p(rstd, op), pn(gamma, op),
    DTYPE_CODE[src.dtype], r.rows, r.cols, op);
}

/** RMS norm of each row: out, and the saved rstd (f32). */
export function rmsNormInto(o: NormOutputs, src: Tensor, gamma: Tensor | null, r: Rows, eps: number, op = "rmsNorm"): void {
  const be = sameDevice(op, src, gamma, o.out, o.rstd);
  if (src.numel > 0) be.rmsNorm(p(o.out, op), p(o.rstd, op), p(src, op), pn(gamma, op), DTYPE_CODE[src.dtype], r.rows, r.cols, eps, op);
}

/** RMS norm's gradients: dsrc, and dgamma where given. */
export function rmsNormBackwardInto(g: { dsrc: Tensor; dgamma: Tensor | null }, ddst: Tensor, src: Tensor, rstd: Tensor, gamma: Tensor | null, r: Rows, op = "rmsNorm.backward"): void {
  const be = sameDevice(op, src, g.dsrc, g.dgamma, ddst, rstd, gamma);
  be.rmsNormBackward(p(g.dsrc, op), pn(g.dgamma, op), p(ddst, op), p(src, op), p(rstd, op), pn(gamma, op), DTYPE_CODE[src.dtype], r.rows, r.cols, op);
}

/** out (n, dim) <- rows of weight (num, dim) picked by the int32 indices idx (n), validated by the caller. */
export function embeddingInto(out: Tensor, weight: Tensor, idx: Tensor, op = "embedding"): void {
  const be = sameDevice(op, weight, idx, out);
  const [num, dim] = weight.shape;
  be.embedding(p(out, op), p(weight, op), p(idx, op), DTYPE_CODE[weight.dtype], idx.numel, num, dim, op);
}

/** dweight (num, dim) += the rows of ddst scattered to idx (dweight zeroed by the caller). */
export function embeddingBackwardInto(dweight: Tensor, ddst: Tensor, idx: Tensor, op = "embedding.backward"): void {
  const be = sameDevice(op, dweight, ddst, idx);
  const [num, dim] = dweight.shape;
  be.embeddingBackward(p(dweight, op), p(ddst, op), p(idx, op), DTYPE_CODE[dweight.dtype], idx.numel, num, dim, op);
}

/** Cross entropy of each row of logits (rows, cols) against int32 targets: loss (one f32, the mean) and logp (log-softmax, saved). */
export function crossEntropyInto(loss: Tensor, logp: Tensor, logits: Tensor, targets: Tensor, r: Rows, ignoreIndex: number, op = "crossEntropy"): void {
  const be = sameDevice(op, logits, targets, loss, logp);
  be.crossEntropy(p(loss, op), p(logp, op), p(logits, op), p(targets, op), DTYPE_CODE[logits.dtype], r.rows, r.cols, ignoreIndex, op);
}

/** dlogits <- the gradient of the mean cross entropy, given logp and dloss (one f32). */
export function crossEntropyBackwardInto(dlogits: Tensor, logp: Tensor, targets: Tensor, dloss: Tensor, r: Rows, ignoreIndex: number, op = "crossEntropy.backward"): void {
  const be = sameDevice(op, logp, targets, dloss, dlogits);
  be.crossEntropyBackward(p(dlogits, op), p(logp, op), p(targets, op), p(dloss, op), DTYPE_CODE[logp.dtype], r.rows, r.cols, ignoreIndex, op);
}

/** Options of matmulInto: the GEMM's sizes and operand forms. */
export interface GemmOptions {
  M: number;
  K: number;
  N: number;
  batchA: number;
  batchB: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  /** add into out's values (beta = 1) instead of overwriting them */
  accumulate: boolean;
  bias: Tensor | null;
}

/** out (batch, M, N) <- alpha * op(a) @ op(b) [+ bias] [+ out]: a and b of one float dtype, out and bias of any float dtype. */
export function matmulInto(out: Tensor, a: Tensor, b: Tensor, g: GemmOptions, op = "matmul"): void {
  const be = sameDevice(op, a, b, out, g.bias);
  be.matmul(p(out, op), DTYPE_CODE[out.dtype], p(a, op), p(b, op), DTYPE_CODE[a.dtype], pn(g.bias, op), g.bias ? DTYPE_CODE[g.bias.dtype] : 0,
    g.batchA, g.batchB, g.M, g.K, g.N, g.transA ? 1 : 0, g.transB ? 1 : 0, g.alpha, g.accumulate ? 1 : 0, op);
}

// ---- block-scaled fp8 and the fp8-weight GEMV (devices with a BlockKernels group: see blockKernelsOf) ----

/** Block sizes of a block-scaled tensor: blockRows x blockCols elements share one scale. */
export interface BlockShape {
  blockRows: number;
  blockCols: number;
}

/** data (rows, cols) fp8 and scale (ceil(rows / blockRows), ceil(cols / blockCols)) f32 <- x quantised per block (amax / fp8 max). */
export function quantizeBlockwiseInto(data: Tensor, scale: Tensor, x: Tensor, b: BlockShape, op = "quantizeBlockwise"): void {
  const be = sameDevice(op, x, data, scale);
  const [rows, cols] = need2d(x, "a block-scaled cast", op);
  blockKernelsOf(be, op).quantizeBlockwise(p(data, op), p(scale, op), DTYPE_CODE[data.dtype], p(x, op), DTYPE_CODE[x.dtype], rows, cols, b.blockRows, b.blockCols, op);
}

/** out (rows, cols) <- data with its block scales applied, in out's dtype. */
export function dequantizeBlockwiseInto(out: Tensor, data: Tensor, scale: Tensor, b: BlockShape, op = "dequantizeBlockwise"): void {
  const be = sameDevice(op, data, scale, out);
  const [rows, cols] = need2d(data, "a block-scaled tensor", op);
  blockKernelsOf(be, op).dequantizeBlockwise(p(out, op), DTYPE_CODE[out.dtype], p(data, op), DTYPE_CODE[data.dtype], p(scale, op), rows, cols, b.blockRows, b.blockCols, op);
}

/** data (rows, cols) fp8 and scale (rows, ceil(cols / block)) e8m0 bytes <- x quantised in MX blocks along its last dim. */
export function quantizeMxInto(data: Tensor, scale: Tensor, x: Tensor, o: { block: number; rceil: boolean }, op = "quantizeMx"): void {
  const be = sameDevice(op, x, data, scale);
  const [rows, cols] = need2d(x, "an MX cast", op);
  blockKernelsOf(be, op).quantizeMx(p(data, op), p(scale, op), DTYPE_CODE[data.dtype], p(x, op), DTYPE_CODE[x.dtype], rows, cols, o.block, o.rceil ? 1 : 0, op);
}

/** out (rows, cols) <- MX data with its e8m0 block scales applied, in out's dtype. */
export function dequantizeMxInto(out: Tensor, data: Tensor, scale: Tensor, o: { block: number }, op = "dequantizeMx"): void {
  const be = sameDevice(op, data, scale, out);
  const [rows, cols] = need2d(data, "an MX tensor", op);
  blockKernelsOf(be, op).dequantizeMx(p(out, op), DTYPE_CODE[out.dtype], p(data, op), DTYPE_CODE[data.dtype], p(scale, op), rows, cols, o.block, op);
}

/** Options of the fp8-weight GEMV: how the weight's scales are laid out (fp8.h's scale modes) and the bias. */
export interface GemvFp8wOptions extends BlockShape {
  scaleMode: number;
  bias?: Tensor | null;
}

/** y (M, N) <- x (M, K) @ w^T with w (N, K) fp8 and its scales wScale (laid out per o.scaleMode) [+ bias]. */
export function gemvFp8wInto(y: Tensor, x: Tensor, w: Tensor, wScale: Tensor, o: GemvFp8wOptions, op = "gemvFp8w"): void {
  const bias = o.bias ?? null;
  const be = sameDevice(op, x, w, wScale, y, bias);
  const [M, K] = need2d(x, "the GEMV's input", op);
  const N = w.shape[0];
  blockKernelsOf(be, op).gemvFp8w(p(y, op), DTYPE_CODE[y.dtype], p(x, op), DTYPE_CODE[x.dtype], M, K, p(w, op), DTYPE_CODE[w.dtype], N,
    o.scaleMode, p(wScale, op), o.blockRows, o.blockCols, pn(bias, op), bias ? DTYPE_CODE[bias.dtype] : 0, op);
}

/** Throws a Float8Error naming op unless t's device has the block-scaled casts (the CPU, cuda). */
export function requireBlockKernels(t: Tensor, op: string): void {
  blockKernelsOf(t.backend, op);
}

/** Whether t's device runs a block-scaled fp8 GEMM as one call (cuda: cuBLASLt's block scale modes or its own fallback); hosts decode instead. */
export function hasBlockGemm(t: Tensor): boolean {
  return !t.backend.hostAccessible && !!t.backend.blockKernels?.scaledMmBlock;
}

/** Whether t's device multiplies bf16 natively (CPU: AVX-512 BF16), so an exact bf16 decode beats an f32 one. */
export function bf16GemmNative(t: Tensor): boolean {
  return t.backend.blockKernels?.bf16GemmNative?.() ?? false;
}

/** Options of a block-scaled GEMM: MX (1x32 e8m0) or blockwise (f32 scales; b in bBlockRows x 128), and the bias. */
export interface ScaledMmBlockOptions {
  mx: boolean;
  bBlockRows: number;
  bias?: Tensor | null;
}

/**
 * out (M, N) <- a (M, K) @ b (N, K)^T from block-quantised operands (data fp8, scales per block) on a
 * device with hasBlockGemm; K and N multiples of 16.
 */
export function scaledMmBlockInto(out: Tensor, a: { data: Tensor; scale: Tensor }, b: { data: Tensor; scale: Tensor }, o: ScaledMmBlockOptions, op = "scaledMmBlock"): void {
  const bias = o.bias ?? null;
  const be = sameDeviceAll(op, [a.data, a.scale, b.data, b.scale, out, bias]);
  const [M, K] = need2d(a.data, "a block GEMM's operand", op);
  const N = b.data.shape[0];
  const k = blockKernelsOf(be, op);
  if (!k.scaledMmBlock) throw new Float8Error(op, `block-scaled GEMMs are not offered on ${be.device}`);
  k.scaledMmBlock(p(out, op), DTYPE_CODE[out.dtype], p(a.data, op), DTYPE_CODE[a.data.dtype], p(b.data, op), DTYPE_CODE[b.data.dtype],
    p(a.scale, op), p(b.scale, op), o.mx, o.bBlockRows, pn(bias, op), bias ? DTYPE_CODE[bias.dtype] : 0, M, K, N, op);
}
