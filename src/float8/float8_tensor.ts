// float8_tensor.ts — Float8Tensor (fp8 bytes + scale), the casts and the
// scaled GEMM. Numerics follow torchao.float8 and docs/architecture.md ("Numerics"):
//   scale = f32(fp8_max / max(f64(amax), 1e-12))   (clamped to 65504 for float16)
//   fp8   = sat_rne(f32(x) * scale)
//   x    ~= f32(fp8) / scale
import { Float8Error } from "../errors.ts";
import { FP8_MAX, isFloat8, isHighPrecision, type Float8DType, type HighPrecisionDType } from "../tensor/dtype.ts";
import { fmtShape } from "../tensor/shape.ts";
import { Tensor, tensor } from "../tensor/tensor.ts";
import { backendFor, roundPow2Bits, type Device } from "../tensor/backend/index.ts";
import * as dev from "../tensor/device_ops.ts";
import { gemm, transposed2d } from "../tensor/ops/linalg.ts";
import { materializeTransposedA, materializeTransposedB } from "../tensor/ops/gemm_layout.ts";
import { expand, reshapeOwned, transpose } from "../tensor/ops/movement.ts";
import { add, convert, div, mul } from "../tensor/ops/elementwise.ts";

/** Which GEMM operand a Float8Tensor is. */
export type GemmInputRole = "input" | "weight" | "grad_output";

/**
 * fp8 storage plus the f32 scale it was cast with: value ~= data / scale.
 * Tensorwise: one scale. Axiswise: data is 2-D (rows, cols) and scale has one
 * entry per row (the GEMM reduces along cols).
 */
export class Float8Tensor {
  constructor(
    /** raw fp8 tensor (a float8 dtype: e4m3fn, e5m2 or their fnuz forms) */
    readonly data: Tensor,
    /** float32 tensor: one element (tensorwise) or one per row (axiswise) */
    readonly scale: Tensor,
    /** dtype of the tensor this was cast from, and of results computed from it */
    readonly origDtype: HighPrecisionDType,
    readonly role: GemmInputRole,
    readonly axiswise = false,
    /**
     * CPU: the exact bf16 value of each fp8 element (unscaled), written by the
     * cast in the same pass; the emulated GEMM consumes it instead of decoding
     * again. null when not kept.
     */
    public decoded: Tensor | null = null,
    /**
     * Devices: the same fp8 values stored transposed (cols, rows), written by
     * the cast in the same pass (cuBLASLt's fp8 GEMM takes only K-contiguous
     * operands, so the backward GEMMs need this layout). null when not kept.
     */
    public transposed: Tensor | null = null,
    /**
     * CPU: the bf16 decode stored transposed (cols, rows), written by the cast in
     * the same pass where the CPU's GEMM reads a transposed operand fastest from a
     * row-major copy (src/tensor/ops/gemm_layout.ts). null when not kept.
     */
    public decodedT: Tensor | null = null,
  ) {
    if (!isFloat8(data.dtype)) throw new Float8Error("Float8Tensor", `data must be a float8 tensor, got ${data.dtype}`);
    const want = axiswise ? data.shape[0] : 1;
    if (axiswise && data.ndim !== 2) throw new Float8Error("Float8Tensor", `axiswise data must be 2-D, got shape ${fmtShape(data.shape)}`);
    if (scale.numel !== want || scale.dtype !== "float32") {
      throw new Float8Error("Float8Tensor", `scale must be a float32 tensor of ${want} element(s), got shape ${fmtShape(scale.shape)} ${scale.dtype}`);
    }
  }

  get shape(): readonly number[] {
    return this.data.shape;
  }

  get dtype(): Float8DType {
    return this.data.dtype as Float8DType;
  }

  /** Bytes held (fp8 data + scale). */
  get nbytes(): number {
    return this.data.nbytes + 4;
  }

  /** Dequantizes to origDtype: f32(fp8) / scale, rounded once. */
  toOriginalPrecision(): Tensor {
    if (this.axiswise) {
      const v = this.data.toArray(), sc = this.scale.toArray();
      const cols = this.shape[1];
      for (let i = 0; i < v.length; i++) v[i] = v[i] / sc[Math.floor(i / cols)];
      return tensor(v, { shape: this.shape, dtype: this.origDtype, device: this.data.device });
    }
    return dev.dequantize(this.data, this.scale, this.origDtype, "toOriginalPrecision");
  }

  /** Frees the cached bf16 decodes, both layouts (the fp8 bytes stay). */
  dropDecoded(): void {
    this.decoded?.dispose();
    this.decoded = null;
    this.decodedT?.dispose();
    this.decodedT = null;
  }

  /** Frees the cached transposed bf16 decode only (the row-major decode and the fp8 bytes stay). */
  dropDecodedT(): void {
    this.decodedT?.dispose();
    this.decodedT = null;
  }

  /** Frees the cached transposed copy (the fp8 bytes stay). */
  dropTransposed(): void {
    this.transposed?.dispose();
    this.transposed = null;
  }

  /** The bf16 decode: the cached one, or a new one the caller must dispose (second value true). */
  decodedOrTemporary(): [Tensor, boolean] {
    if (this.decoded) return [this.decoded, false];
    return [this.data.to({ dtype: "bfloat16" }), true];
  }

  dispose(): void {
    this.data.dispose();
    this.scale.dispose();
    this.dropDecoded();
    this.dropTransposed();
  }

  toString(): string {
    const scale = this.scale.isDisposed ? "?" : this.axiswise ? `[${this.scale.numel} row scales]` : this.scale.item();
    return `Float8Tensor(shape=${fmtShape(this.shape)}, dtype=${this.dtype}, scale=${scale}, origDtype=${this.origDtype}, role=${this.role})`;
  }
}

function checkHp(x: Tensor, op: string): void {
  dev.requireLive(x, op, "x");
  if (!isHighPrecision(x.dtype)) throw new Float8Error(op, `expects a float32, bfloat16 or float16 tensor, got shape ${fmtShape(x.shape)} dtype ${x.dtype}`);
}

function checkFp8Dtype(d: string, op: string): asserts d is Float8DType {
  if (!isFloat8(d as Float8DType)) throw new Float8Error(op, `expects a float8 dtype (float8_e4m3fn, float8_e5m2, float8_e4m3fnuz or float8_e5m2fnuz), got ${d}`);
}

/**
 * torchao's amax_to_scale: f32(fp8_max / max(f64(amax), 1e-12)), clamped to
 * 65504 when the original dtype is float16.
 */
export function amaxToScale(amax: number, float8Dtype: Float8DType, origDtype: HighPrecisionDType = "float32"): number {
  checkFp8Dtype(float8Dtype, "amaxToScale");
  let s = Math.fround(FP8_MAX[float8Dtype] / Math.max(amax, 1e-12));
  if (origDtype === "float16") s = Math.min(s, 65504);
  return Number.isNaN(amax) ? NaN : s;
}

/** max |x| as a one-element float32 tensor (NaN propagates). */
export function tensorToAmax(x: Tensor): Tensor {
  checkHp(x, "tensorToAmax");
  return dev.amax(x, null, "tensorToAmax");
}

/** Dynamic scale of x for float8Dtype (fused amax + scale); returns [scale, amax] tensors. A float16 x clamps the scale to 65504 by default. */
export function tensorToScale(x: Tensor, float8Dtype: Float8DType, clampToFloat16 = x.dtype === "float16"): [Tensor, Tensor] {
  checkHp(x, "tensorToScale");
  checkFp8Dtype(float8Dtype, "tensorToScale");
  return dev.amaxToScale(x, float8Dtype, { clampToFloat16 }, "tensorToScale");
}

/** A one-element float32 tensor holding `v` (on `device`, default cpu). */
export function scalarTensor(v: number, device: Device = "cpu"): Tensor {
  return tensor([v], { device });
}

/** sat_rne(f32(x) * scale) as raw fp8 storage. `scale` is a number or one-element float32 tensor. */
export function toFloat8Saturated(x: Tensor, scale: number | Tensor, float8Dtype: Float8DType): Tensor {
  checkHp(x, "toFloat8Saturated");
  checkFp8Dtype(float8Dtype, "toFloat8Saturated");
  const s = typeof scale === "number" ? scalarTensor(scale, x.device) : scale;
  if (s.numel !== 1 || s.dtype !== "float32") throw new Float8Error("toFloat8Saturated", `scale must be a one-element float32 tensor, got ${fmtShape(s.shape)} ${s.dtype}`);
  try {
    return dev.quantize(x, s, float8Dtype, NO_EXTRAS, "toFloat8Saturated").data;
  } finally {
    if (typeof scale === "number") s.dispose();
  }
}

/**
 * sat_rne(f32(x) * scale) as fp8 bytes plus, in the same pass, their exact
 * bf16 values (unscaled), which the CPU's emulated GEMM consumes.
 */
export function toFloat8SaturatedWithDecoded(x: Tensor, scale: Tensor, float8Dtype: Float8DType): [Tensor, Tensor] {
  const op = "toFloat8Saturated";
  checkHp(x, op);
  checkFp8Dtype(float8Dtype, op);
  if (!(scale instanceof Tensor) || scale.numel !== 1 || scale.dtype !== "float32") {
    throw new Float8Error(op, `scale must be a one-element float32 tensor, got ${scale instanceof Tensor ? `${fmtShape(scale.shape)} ${scale.dtype}` : typeof scale}`);
  }
  const q = dev.quantize(x, scale, float8Dtype, DECODED, op);
  return [q.data, q.decoded!];
}

/**
 * sat_rne(f32(x) * scale) of a 2-D x as fp8 bytes in both layouts, (rows, cols)
 * and (cols, rows), in one pass: what a device's fp8 GEMMs consume.
 */
export function toFloat8SaturatedWithTranspose(x: Tensor, scale: Tensor, float8Dtype: Float8DType): [Tensor, Tensor] {
  const op = "toFloat8Saturated";
  checkHp(x, op);
  checkFp8Dtype(float8Dtype, op);
  const q = dev.quantize(x, scale, float8Dtype, TRANSPOSED, op);
  return [q.data, q.transposed!];
}

// the option objects of the common casts, made once (the casts are on the training step's hot path)
const NO_EXTRAS: dev.QuantizeOptions = Object.freeze({});
const DECODED: dev.QuantizeOptions = Object.freeze({ decoded: true });
const TRANSPOSED: dev.QuantizeOptions = Object.freeze({ transposed: true });

/**
 * withDecoded asks the cast to prepare the operand for the GEMM in the same
 * pass: on the CPU the exact bf16 decode, on a device the transposed layout.
 * amaxOut (delayed scaling) receives max |x| for the next sync; the CPU takes
 * it in the cast's own pass over x.
 */
function castWithScale(
  x: Tensor, scale: Tensor, float8Dtype: Float8DType, role: GemmInputRole, withDecoded: boolean, amaxOut: Tensor | null = null, withDecodedT = false,
): Float8Tensor {
  const op = "toFloat8Saturated";
  const origDtype = x.dtype as HighPrecisionDType;
  const host = x.backend.hostAccessible;
  if (withDecodedT && x.ndim === 2 && dev.canDecodeTransposed(x)) {
    // the CPU's transposed bf16 decode for a GEMM that reads x^T (and the row-major one when asked), one pass over x
    checkHp(x, op);
    checkFp8Dtype(float8Dtype, op);
    const q = dev.quantize(x, scale, float8Dtype, { amaxOut, decoded: withDecoded && host, decodedT: true }, op);
    return new Float8Tensor(q.data, scale, origDtype, role, false, q.decoded, null, q.decodedT);
  }
  if (withDecoded && !host && x.ndim === 2) {
    // a device's fp8 GEMMs take K-contiguous operands only: the transposed layout in the same pass
    checkHp(x, op);
    checkFp8Dtype(float8Dtype, op);
    const q = dev.quantize(x, scale, float8Dtype, amaxOut ? { amaxOut, transposed: true } : TRANSPOSED, op);
    return new Float8Tensor(q.data, scale, origDtype, role, false, null, q.transposed);
  }
  if (amaxOut) {
    checkHp(x, op);
    checkFp8Dtype(float8Dtype, op);
    const q = dev.quantize(x, scale, float8Dtype, { amaxOut, decoded: withDecoded && host }, op);
    return new Float8Tensor(q.data, scale, origDtype, role, false, q.decoded);
  }
  if (withDecoded && host) {
    const [data, decoded] = toFloat8SaturatedWithDecoded(x, scale, float8Dtype);
    return new Float8Tensor(data, scale, origDtype, role, false, decoded);
  }
  return new Float8Tensor(toFloat8Saturated(x, scale, float8Dtype), scale, origDtype, role);
}

/**
 * Casts x to a Float8Tensor with the given scale (the scale is copied);
 * withDecoded keeps the bf16 decode (CPU) or the transposed layout (device);
 * amaxOut, a one-element float32 tensor, receives max |x| (delayed scaling's record).
 */
export function hpTensorAndScaleToFloat8(
  x: Tensor, scale: Tensor, float8Dtype: Float8DType, role: GemmInputRole, withDecoded = false, amaxOut: Tensor | null = null, withDecodedT = false,
): Float8Tensor {
  if (amaxOut && (amaxOut.dtype !== "float32" || amaxOut.numel !== 1 || amaxOut.device !== x.device)) {
    throw new Float8Error("hpTensorAndScaleToFloat8", `amaxOut must be a one-element float32 tensor on ${x.device}, got shape ${fmtShape(amaxOut.shape)} dtype ${amaxOut.dtype} on ${amaxOut.device}`);
  }
  return castWithScale(x, scale.detach(), float8Dtype, role, withDecoded, amaxOut, withDecodedT);
}

/**
 * 2^floor(log2(s)) for a finite positive f32 s (exact: clears the mantissa bits),
 * by the rule the backends apply to scales in memory (roundPow2Bits).
 */
export function roundScaleDownToPowerOf2(s: number): number {
  if (!(s > 0) || !Number.isFinite(s)) return s;
  const bits = new Uint32Array(new Float32Array([s]).buffer);
  if ((bits[0] & 0x7f800000) === 0) return s; // subnormal: leave
  bits[0] = roundPow2Bits(bits[0]);
  return new Float32Array(bits.buffer)[0];
}

/**
 * Dynamic cast: scale from x's own amax (rounded down to a power of 2 when asked); withDecoded keeps the bf16
 * decode, withDecodedT (CPU, 2-D x) also its transposed layout, written in the same pass.
 */
export function hpTensorToFloat8Dynamic(
  x: Tensor, float8Dtype: Float8DType, role: GemmInputRole, roundPow2 = false, withDecoded = false, withDecodedT = false,
): Float8Tensor {
  const op = "hpTensorToFloat8Dynamic";
  checkHp(x, op);
  checkFp8Dtype(float8Dtype, op);
  const transposedDecode = withDecodedT && x.backend.hostAccessible && x.ndim === 2;
  if (!transposedDecode && !(withDecoded && !x.backend.hostAccessible && x.ndim === 2)) {
    // amax, scale and cast in one call (on the CPU one read of x, plus the bf16 decode when asked)
    const q = dev.quantizeDynamic(x, float8Dtype, { decoded: withDecoded && x.backend.hostAccessible, roundPow2, clampToFloat16: x.dtype === "float16" }, op);
    return new Float8Tensor(q.data, q.scale, x.dtype as HighPrecisionDType, role, false, q.decoded);
  }
  // a device's transposed layout for the backward GEMMs, or the CPU's transposed decode
  const [scale, amax] = tensorToScale(x, float8Dtype);
  amax.dispose();
  if (roundPow2) dev.roundScalesToPowerOf2(scale, op);
  return castWithScale(x, scale, float8Dtype, role, withDecoded, null, transposedDecode);
}

/**
 * Axiswise dynamic cast of a 2-D tensor: one scale per row (the GEMM reduces
 * along the columns), optionally rounded down to powers of 2.
 */
export function hpTensorToFloat8Axiswise(x: Tensor, float8Dtype: Float8DType, role: GemmInputRole, roundPow2 = false): Float8Tensor {
  const op = "hpTensorToFloat8Axiswise";
  checkHp(x, op);
  checkFp8Dtype(float8Dtype, op);
  if (x.ndim !== 2) throw new Float8Error(op, `expects a 2-D tensor, got shape ${fmtShape(x.shape)} dtype ${x.dtype}`);
  const { data, scale } = dev.quantizeRowwise(x, float8Dtype, { roundPow2 }, op);
  return new Float8Tensor(data, scale, x.dtype as HighPrecisionDType, role, true);
}

/** SQNR in dB: 20 log10(||ref|| / ||ref - y||) (Infinity when equal). */
export function computeError(ref: Tensor, y: Tensor): number {
  if (ref.numel !== y.numel) {
    throw new Float8Error("computeError", `shapes differ: ${fmtShape(ref.shape)} and ${fmtShape(y.shape)}`);
  }
  const a = ref.toArray();
  const b = y.toArray();
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += a[i] * a[i];
    const d = a[i] - b[i];
    den += d * d;
  }
  return 20 * Math.log10(Math.sqrt(num) / Math.sqrt(den));
}

/** Counts over fp8 data: zeros (underflow) and values at +-max (saturated). */
export function fp8TensorStatistics(t: Float8Tensor | Tensor): { zeros: number; saturated: number; nans: number; numel: number } {
  const data = t instanceof Float8Tensor ? t.data : t;
  checkFp8Dtype(data.dtype, "fp8TensorStatistics");
  // a host kernel: the contract copies a device's data to the CPU first
  return { ...dev.fp8Stats(data, "fp8TensorStatistics"), numel: data.numel };
}

/** Options of scaledMm. */
export interface ScaledMmOptions {
  outDtype?: HighPrecisionDType;
  bias?: Tensor | null;
  /** fast (reduced-precision) accumulation on Hopper; the CPU always accumulates in f32 */
  useFastAccum?: boolean;
  /** use a^T: a is stored (K, M) */
  transposeA?: boolean;
  /** use b^T: b is stored (N, K) */
  transposeB?: boolean;
  /** pad the inner dim to a multiple of 16 where the device needs it */
  padInnerDim?: boolean;
}

/** Whether the fp8 GEMM of a device needs K % 16 == 0 (cuBLASLt on Hopper does). */
export function fp8GemmNeedsInnerDimMultipleOf16(device: string): boolean {
  return device === "cuda";
}

/** Throws the padInnerDim error where the device needs K % 16 == 0 and padding is off. */
export function checkInnerDim(K: number, device: string, padInnerDim: boolean, op: string): void {
  if (K % 16 !== 0 && fp8GemmNeedsInnerDimMultipleOf16(device) && !padInnerDim) {
    throw new Float8Error(op, `inner dim K=${K} is not a multiple of 16, which the ${device} fp8 GEMM requires; set padInnerDim: true in Float8LinearConfig`);
  }
}

/**
 * Scaled fp8 GEMM (torch._scaled_mm): op(a) @ op(b) / (scale_a * scale_b) + bias,
 * accumulated in f32, output in outDtype (default a.origDtype). a is (M, K)
 * (or (K, M) with transposeA), b is (K, N) (or (N, K) with transposeB).
 * On the CPU: exact decode to bf16, oneDNN bf16 GEMM, scale in the epilogue.
 */
export function scaledMm(a: Float8Tensor, b: Float8Tensor, opts: ScaledMmOptions = {}): Tensor {
  const op = "scaledMm";
  if (!(a instanceof Float8Tensor) || !(b instanceof Float8Tensor)) throw new Float8Error(op, "operands must be Float8Tensors");
  if (a.data.ndim !== 2 || b.data.ndim !== 2) {
    throw new Float8Error(op, `operands must be 2-D, got shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} (${a.dtype}, ${b.dtype})`);
  }
  const [M, K] = opts.transposeA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [K2, N] = opts.transposeB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (K !== K2) {
    throw new Float8Error(op, `inner dims differ: op(a) is [${M}, ${K}], op(b) is [${K2}, ${N}] (${a.dtype}, ${b.dtype})`);
  }
  checkInnerDim(K, a.data.device, !!opts.padInnerDim, op);
  const outDtype = opts.outDtype ?? a.origDtype;
  const bias = opts.bias ?? null;
  if (bias && (bias.numel !== N || !isHighPrecision(bias.dtype))) {
    throw new Float8Error(op, `bias must be a float32/bfloat16 tensor of ${N} elements, got ${fmtShape(bias.shape)} ${bias.dtype}`);
  }
  if (M * N === 0) return Tensor.empty([M, N], outDtype, a.data.device);
  if (a.axiswise || b.axiswise) {
    // row-scaled GEMM: scales must run along the non-reduced dims, i.e. a stored
    // (M, K) and b stored (N, K); a tensorwise operand's scale is broadcast.
    if (opts.transposeA || !opts.transposeB) {
      throw new Float8Error(op, "axiswise operands need a stored (M, K) and b stored (N, K) (transposeB: true)");
    }
    // a tensorwise operand's one scale, repeated on its device (no host round trip)
    const vec = (f: Float8Tensor, n: number) => (f.axiswise ? f.scale : expand(f.scale, [n]));
    const sa = vec(a, M), sb = vec(b, N);
    try {
      return dev.scaledMmTN(a.data, b.data, sa, sb, { M, K, N, outDtype, bias, useFastAccum: opts.useFastAccum, rowwise: true }, op);
    } finally {
      if (sa !== a.scale) sa.dispose();
      if (sb !== b.scale) sb.dispose();
    }
  }
  if (!a.data.backend.hostAccessible) return scaledMmOnDevice(a, b, M, K, N, opts, outDtype, bias);
  // Tensorwise on the CPU: exact bf16 decodes (cached by the cast, or made
  // now), oneDNN's bf16 GEMM with f32 accumulation, and alpha = f32(1/scale_a) *
  // f32(1/scale_b) in the epilogue: what fp8_cpu_scaled_mm computes, without
  // decoding an operand twice. (f64 then f32 rounding of 1/s and of the product
  // equals the f32 operations: binary64 has more than 2 * 24 + 2 bits.)
  const strided = { M, K, N, outDtype, bias, transA: !!opts.transposeA, transB: !!opts.transposeB };
  if (dev.hasNativeFp8Gemm(a.data, b.dtype, strided, op)) {
    // oneDNN's own fp8 matmul, where libfp8 found it a JIT kernel faster than decode + bf16 (onednnInfo().fp8Matmul)
    return dev.scaledMmStrided(a.data, b.data, a.scale, b.scale, strided, op);
  }
  // A transposed operand is read row-major where this CPU's GEMM is faster so (src/tensor/ops/gemm_layout.ts)
  const alpha = Math.fround(Math.fround(1 / a.scale.item()) * Math.fround(1 / b.scale.item()));
  const problem = { P: M, R: K, Q: N, dtype: "bfloat16" as const };
  const [ad, aTemp, transA] = cpuGemmOperand(a, !!opts.transposeA, K, M, () => materializeTransposedA(a.data.device, problem), op);
  const [bd, bTemp, transB] = cpuGemmOperand(b, !!opts.transposeB, N, K, () => materializeTransposedB(b.data.device, problem), op);
  const c = gemm(ad, bd, { M, K, N, transA, transB, alpha, bias, outDtype, op });
  if (aTemp) ad.dispose();
  if (bTemp) bd.dispose();
  return reshapeOwned(c, [M, N]);
}


/**
 * The bf16 operand a CPU GEMM reads for f, stored (rows, cols) and read
 * transposed when `trans`: the transposed decode its cast wrote, else a
 * transpose made now where `materialize()` says the row-major layout is faster,
 * else the decode as stored (read through strides). Returns the tensor, whether
 * the caller must dispose it, and whether the GEMM still reads it transposed.
 */
function cpuGemmOperand(f: Float8Tensor, trans: boolean, rows: number, cols: number, materialize: () => boolean, op: string): [Tensor, boolean, boolean] {
  if (trans && f.decodedT) return [f.decodedT, false, false];
  const [d, temp] = f.decodedOrTemporary();
  if (!trans || !materialize()) return [d, temp, trans];
  const t = transposed2d(d, rows, cols, op);
  if (temp) d.dispose();
  return [t, true, false];
}

/** A kept one-element 1.0 per device backend (made once: no upload per GEMM). */
const ones = new Map<Device, { backend: object; t: Tensor }>();
function oneOn(device: Device): Tensor {
  const hit = ones.get(device);
  if (hit && !hit.t.isDisposed && hit.backend === backendFor(device, "scaledMm")) return hit.t;
  const t = scalarTensor(1, device).keep();
  ones.set(device, { backend: t.backend, t });
  return t;
}

/** An operand in the K-contiguous layout the device GEMM takes: stored as is, its cached transpose, or a new transpose (temporary). */
function kContiguous(f: Float8Tensor, storedKContiguous: boolean): [Tensor, boolean] {
  if (storedKContiguous) return [f.data, false];
  if (f.transposed) return [f.transposed, false];
  return [transpose(f.data, 0, 1), true];
}

/**
 * Tensorwise scaled GEMM on a device: cuBLASLt's fp8 GEMM in TN form, scales
 * read on the device (no host sync). Where a dim is not a multiple of 16 (the
 * fp8 GEMM's rule), the operands are decoded to f32 on the device and the
 * product is scaled afterwards: same values up to f32 summation order.
 */
function scaledMmOnDevice(a: Float8Tensor, b: Float8Tensor, M: number, K: number, N: number, opts: ScaledMmOptions, outDtype: HighPrecisionDType, bias: Tensor | null): Tensor {
  const op = "scaledMm";
  dev.sameDevice(op, a.data, b.data, a.scale, b.scale, bias);
  const [at, aTemp] = kContiguous(a, !opts.transposeA); // (M, K)
  const [bt, bTemp] = kContiguous(b, !!opts.transposeB); // (N, K)
  try {
    if (K % 16 === 0 && N % 16 === 0) {
      return dev.scaledMmTN(at, bt, a.scale, b.scale, { M, K, N, outDtype, bias, useFastAccum: opts.useFastAccum }, op);
    }
    const af = convert(at, "float32"), bf = convert(bt, "float32");
    const raw = reshapeOwned(gemm(af, bf, { M, K, N, transB: true, op }), [M, N]);
    // alpha = f32(1/scale_a) * f32(1/scale_b), as the CPU path and the fp8 GEMM apply it
    const one = oneOn(a.data.device);
    const invA = div(one, a.scale), invB = div(one, b.scale);
    const alpha = mul(invA, invB);
    const scaled = mul(raw, alpha);
    for (const t of [invA, invB, alpha]) t.dispose();
    const withBias = bias ? add(scaled, bias.dtype === "float32" ? bias : convert(bias, "float32")) : scaled;
    const out = outDtype === "float32" ? withBias : convert(withBias, outDtype);
    for (const t of new Set([af, bf, raw, scaled, withBias])) if (t !== out) t.dispose();
    return out;
  } finally {
    if (aTemp) at.dispose();
    if (bTemp) bt.dispose();
  }
}
