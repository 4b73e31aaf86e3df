// ops.ts — typed wrappers of libfp8_cuda's kernels and GEMMs over DeviceBuffers.
// Shapes, dtypes, contexts and disposal are checked here, before any native
// call; errors name the op, the shapes and the dtypes. Every op is queued on
// the context's stream and returns at once (no host-device sync); scales and
// amaxes are one-element float32 DeviceBuffers that never leave the GPU.
import { Float8Error } from "../errors.ts";
import { checkCuda, cudaLib, type NativePtr } from "../ffi/index.ts";
import { DTYPE_CODE, isFloat8, isHighPrecision, type DType, type Float8DType, type HighPrecisionDType } from "../tensor/dtype.ts";
import { code, DeviceBuffer, type CudaContext } from "../tensor/backend/cuda_device.ts";

const NULL = 0 as NativePtr;
const desc = (b: DeviceBuffer) => `(${b.shape.join(", ")}) ${b.dtype}`;

function sameContext(op: string, ctx: CudaContext, ...bufs: (DeviceBuffer | null | undefined)[]): void {
  for (const b of bufs) {
    if (b && b.ctx !== ctx) throw new Float8Error(op, `${b} is on cuda:${b.ctx.index}, expected cuda:${ctx.index}`);
    if (b && b.isDisposed) throw new Float8Error(op, `a ${desc(b)} buffer was used after dispose()`);
  }
}

function requireHp(op: string, b: DeviceBuffer, what: string): void {
  if (!isHighPrecision(b.dtype)) throw new Float8Error(op, `${what} must be float32 or bfloat16, got ${desc(b)}`);
}

function requireFp8(op: string, b: DeviceBuffer, what: string): void {
  if (!isFloat8(b.dtype)) throw new Float8Error(op, `${what} must be float8_e4m3fn or float8_e5m2, got ${desc(b)}`);
}

function requireScalar(op: string, b: DeviceBuffer, what: string): void {
  if (b.dtype !== "float32" || b.numel !== 1) throw new Float8Error(op, `${what} must be one float32, got ${desc(b)}`);
}

/** One float32 per row: (n). */
function requireScaleVector(op: string, b: DeviceBuffer, n: number, what: string): void {
  if (b.dtype !== "float32" || b.shape.length !== 1 || b.shape[0] !== n) {
    throw new Float8Error(op, `${what} must be (${n}) float32, one scale per row, got ${desc(b)}`);
  }
}

function requireShape(op: string, b: DeviceBuffer, shape: readonly number[], what: string): void {
  if (b.shape.length !== shape.length || b.shape.some((d, i) => d !== shape[i])) {
    throw new Float8Error(op, `${what} must be (${shape.join(", ")}), got ${desc(b)}`);
  }
}

function matrix(op: string, b: DeviceBuffer, what: string): [number, number] {
  if (b.shape.length !== 2) throw new Float8Error(op, `${what} must be 2-D, got ${desc(b)}`);
  return [b.shape[0], b.shape[1]];
}

function outOr(ctx: CudaContext, out: DeviceBuffer | undefined, shape: readonly number[], dtype: DType, op: string, what: string): DeviceBuffer {
  if (out === undefined) return DeviceBuffer.empty(ctx, shape, dtype);
  sameContext(op, ctx, out);
  if (out.dtype !== dtype) throw new Float8Error(op, `${what} must be ${dtype}, got ${desc(out)}`);
  requireShape(op, out, shape, what);
  return out;
}

/** A one-element float32 buffer (scale, amax). */
export function scalarBuffer(ctx: CudaContext, value?: number): DeviceBuffer {
  return value === undefined ? DeviceBuffer.empty(ctx, [1], "float32") : DeviceBuffer.from(ctx, new Float32Array([value]), [1], "float32");
}

/** out (1) <- max |x| (NaN propagates). */
export function amax(x: DeviceBuffer, out?: DeviceBuffer): DeviceBuffer {
  const op = "cuda.amax";
  sameContext(op, x.ctx, x);
  requireHp(op, x, "x");
  const o = outOr(x.ctx, out, [1], "float32", op, "out");
  checkCuda(cudaLib().fp8_cuda_amax(x.ctx.handle, o.ptr, x.ptr, code(x), x.numel), op);
  return o;
}

/** One pass: amax (1) <- max |x|, scale (1) <- torchao's amax_to_scale for fp8Dtype. */
export function amaxToScale(
  x: DeviceBuffer, fp8Dtype: Float8DType, out: { amax?: DeviceBuffer; scale?: DeviceBuffer } = {}, clampToFloat16 = false,
): { amax: DeviceBuffer; scale: DeviceBuffer } {
  const op = "cuda.amaxToScale";
  sameContext(op, x.ctx, x);
  requireHp(op, x, "x");
  const a = outOr(x.ctx, out.amax, [1], "float32", op, "amax");
  const s = outOr(x.ctx, out.scale, [1], "float32", op, "scale");
  checkCuda(cudaLib().fp8_cuda_amax_to_scale(x.ctx.handle, a.ptr, s.ptr, x.ptr, code(x), x.numel, DTYPE_CODE[fp8Dtype], clampToFloat16 ? 1 : 0), op);
  return { amax: a, scale: s };
}

/** scale (1) <- amax_to_scale(amax (1)) on the device. */
export function scaleFromAmax(amaxBuf: DeviceBuffer, fp8Dtype: Float8DType, out?: DeviceBuffer, clampToFloat16 = false): DeviceBuffer {
  const op = "cuda.scaleFromAmax";
  sameContext(op, amaxBuf.ctx, amaxBuf);
  requireScalar(op, amaxBuf, "amax");
  const s = outOr(amaxBuf.ctx, out, [1], "float32", op, "scale");
  checkCuda(cudaLib().fp8_cuda_scale_from_amax(amaxBuf.ctx.handle, s.ptr, amaxBuf.ptr, DTYPE_CODE[fp8Dtype], clampToFloat16 ? 1 : 0), op);
  return s;
}

/** fp8 <- sat_rne(f32(x) * scale), bit-identical to the CPU's fp8_cpu_quantize. */
export function quantize(x: DeviceBuffer, scale: DeviceBuffer, fp8Dtype: Float8DType, out?: DeviceBuffer): DeviceBuffer {
  const op = "cuda.quantize";
  sameContext(op, x.ctx, x, scale);
  requireHp(op, x, "x");
  requireScalar(op, scale, "scale");
  const o = outOr(x.ctx, out, x.shape, fp8Dtype, op, "out");
  checkCuda(cudaLib().fp8_cuda_quantize(x.ctx.handle, o.ptr, DTYPE_CODE[fp8Dtype], x.ptr, code(x), x.numel, scale.ptr), op);
  return o;
}

/** One pass over x (rows, cols): the quantized values row-major (rows, cols) and transposed (cols, rows).
 * Pass `null` for an output that is not needed. */
export function quantizeTranspose(
  x: DeviceBuffer, scale: DeviceBuffer, fp8Dtype: Float8DType,
  out: { rowMajor?: DeviceBuffer | null; transposed?: DeviceBuffer | null } = {},
): { rowMajor: DeviceBuffer | null; transposed: DeviceBuffer | null } {
  const op = "cuda.quantizeTranspose";
  sameContext(op, x.ctx, x, scale);
  requireHp(op, x, "x");
  requireScalar(op, scale, "scale");
  const [rows, cols] = matrix(op, x, "x");
  const rm = out.rowMajor === null ? null : outOr(x.ctx, out.rowMajor, [rows, cols], fp8Dtype, op, "rowMajor");
  const tr = out.transposed === null ? null : outOr(x.ctx, out.transposed, [cols, rows], fp8Dtype, op, "transposed");
  if (rm === null && tr === null) throw new Float8Error(op, "both outputs are null");
  checkCuda(cudaLib().fp8_cuda_quantize_transpose(x.ctx.handle, rm ? rm.ptr : NULL, tr ? tr.ptr : NULL, DTYPE_CODE[fp8Dtype],
    x.ptr, code(x), rows, cols, scale.ptr), op);
  return { rowMajor: rm, transposed: tr };
}

/** Options of quantizeRowwise. */
export interface QuantizeRowwiseOptions {
  /** Round each scale down to a power of 2 (then scaling is exact); default false. */
  readonly roundScalesToPowerOf2?: boolean;
  readonly out?: DeviceBuffer;
  readonly scale?: DeviceBuffer;
}

/** Axiswise dynamic cast of x (rows, cols): data (rows, cols) in fp8Dtype and scale (rows) float32,
 * one scale per row (the GEMM reduces along the columns). Bytes and scales bit-identical to
 * fp8_cpu_quantize_rowwise; one launch, the scales stay on the device. */
export function quantizeRowwise(x: DeviceBuffer, fp8Dtype: Float8DType, opts: QuantizeRowwiseOptions = {}): { data: DeviceBuffer; scale: DeviceBuffer } {
  const op = "cuda.quantizeRowwise";
  sameContext(op, x.ctx, x);
  requireHp(op, x, "x");
  if (!isFloat8(fp8Dtype)) throw new Float8Error(op, `fp8Dtype must be float8_e4m3fn or float8_e5m2, got ${String(fp8Dtype)}`);
  const [rows, cols] = matrix(op, x, "x");
  const data = outOr(x.ctx, opts.out, [rows, cols], fp8Dtype, op, "out");
  const scale = outOr(x.ctx, opts.scale, [rows], "float32", op, "scale");
  checkCuda(cudaLib().fp8_cuda_quantize_rowwise(x.ctx.handle, data.ptr, scale.ptr, DTYPE_CODE[fp8Dtype], x.ptr, code(x), rows, cols,
    opts.roundScalesToPowerOf2 ? 1 : 0), op);
  return { data, scale };
}

/** x ~= decode(q) / scale in `dtype`. */
export function dequantize(q: DeviceBuffer, scale: DeviceBuffer, dtype: HighPrecisionDType, out?: DeviceBuffer): DeviceBuffer {
  const op = "cuda.dequantize";
  sameContext(op, q.ctx, q, scale);
  requireFp8(op, q, "q");
  requireScalar(op, scale, "scale");
  const o = outOr(q.ctx, out, q.shape, dtype, op, "out");
  checkCuda(cudaLib().fp8_cuda_dequantize(q.ctx.handle, o.ptr, DTYPE_CODE[dtype], q.ptr, code(q), q.numel, scale.ptr), op);
  return o;
}

/** Unscaled conversion between float32, bfloat16 and the float8 dtypes (as fp8_cpu_convert). */
export function convert(x: DeviceBuffer, dtype: DType, out?: DeviceBuffer): DeviceBuffer {
  const op = "cuda.convert";
  sameContext(op, x.ctx, x);
  if (x.dtype === "int32" || dtype === "int32") throw new Float8Error(op, `cannot convert ${desc(x)} to ${dtype}`);
  const o = outOr(x.ctx, out, x.shape, dtype, op, "out");
  checkCuda(cudaLib().fp8_cuda_convert(x.ctx.handle, o.ptr, DTYPE_CODE[dtype], x.ptr, code(x), x.numel), op);
  return o;
}

/** dst <- src, device to device (same dtype and element count), queued on the stream. */
export function copy(dst: DeviceBuffer, src: DeviceBuffer): DeviceBuffer {
  const op = "cuda.copy";
  sameContext(op, dst.ctx, dst, src);
  if (dst.dtype !== src.dtype || dst.numel !== src.numel) throw new Float8Error(op, `cannot copy ${desc(src)} into ${desc(dst)}`);
  checkCuda(cudaLib().fp8_cuda_memcpy_d2d(dst.ctx.handle, dst.ptr, src.ptr, src.nbytes), op);
  return dst;
}

/** x <- value everywhere (float32, bfloat16 or int32). */
export function fill(x: DeviceBuffer, value: number): DeviceBuffer {
  const op = "cuda.fill";
  sameContext(op, x.ctx, x);
  if (!isHighPrecision(x.dtype) && x.dtype !== "int32") throw new Float8Error(op, `cannot fill ${desc(x)}`);
  checkCuda(cudaLib().fp8_cuda_fill(x.ctx.handle, x.ptr, code(x), x.numel, value), op);
  return x;
}

/** A new buffer of normal samples, deterministic in `seed`. */
export function randn(ctx: CudaContext, shape: readonly number[], dtype: HighPrecisionDType, seed: number, std = 1, mean = 0): DeviceBuffer {
  const op = "cuda.randn";
  const o = DeviceBuffer.empty(ctx, shape, dtype);
  checkCuda(cudaLib().fp8_cuda_randn(ctx.handle, o.ptr, DTYPE_CODE[dtype], o.numel, seed, mean, std), op);
  return o;
}

/** y (rows, cols) += bias (cols), in f32. */
export function biasAdd(y: DeviceBuffer, bias: DeviceBuffer): DeviceBuffer {
  const op = "cuda.biasAdd";
  sameContext(op, y.ctx, y, bias);
  requireHp(op, y, "y");
  requireHp(op, bias, "bias");
  const [rows, cols] = matrix(op, y, "y");
  requireShape(op, bias, [cols], "bias");
  checkCuda(cudaLib().fp8_cuda_bias_add(y.ctx.handle, y.ptr, code(y), bias.ptr, code(bias), rows, cols), op);
  return y;
}

/** dbias (cols) <- sum over rows of dy (rows, cols), f32 accumulation. */
export function biasGrad(dy: DeviceBuffer, dtype: HighPrecisionDType = "float32", out?: DeviceBuffer): DeviceBuffer {
  const op = "cuda.biasGrad";
  sameContext(op, dy.ctx, dy);
  requireHp(op, dy, "dy");
  const [rows, cols] = matrix(op, dy, "dy");
  const o = outOr(dy.ctx, out, [cols], dtype, op, "out");
  checkCuda(cudaLib().fp8_cuda_bias_grad(dy.ctx.handle, o.ptr, DTYPE_CODE[dtype], dy.ptr, code(dy), rows, cols), op);
  return o;
}

/** Options of the device scaledMm. */
export interface ScaledMmOptions {
  /** Output dtype; default bfloat16. */
  readonly outDtype?: HighPrecisionDType;
  /** (N) bfloat16 (fused in the GEMM epilogue) or float32 (added after, in f32). */
  readonly bias?: DeviceBuffer | null;
  readonly useFastAccum?: boolean;
  readonly out?: DeviceBuffer;
}

/** The operand checks every fp8 GEMM shares: a (M,K) and b (N,K) fp8, not both e5m2, K and N
 * multiples of 16, bias (N) float32/bfloat16. Returns [M, K, N]. */
function fp8GemmShape(op: string, a: DeviceBuffer, b: DeviceBuffer, bias: DeviceBuffer | null): [number, number, number] {
  requireFp8(op, a, "a");
  requireFp8(op, b, "b");
  const [M, K] = matrix(op, a, "a");
  const [N, Kb] = matrix(op, b, "b");
  if (K !== Kb) throw new Float8Error(op, `inner dims differ: a ${desc(a)} @ b ${desc(b)}^T`);
  if (K % 16 !== 0 || N % 16 !== 0) throw new Float8Error(op, `fp8 GEMM needs K and N multiples of 16: a ${desc(a)} @ b ${desc(b)}^T`);
  if (a.dtype === "float8_e5m2" && b.dtype === "float8_e5m2") throw new Float8Error(op, "a and b cannot both be float8_e5m2");
  if (bias) {
    requireHp(op, bias, "bias");
    requireShape(op, bias, [N], "bias");
  }
  return [M, K, N];
}

/** c (M,N) <- (a (M,K) @ b (N,K)^T) / (scaleA * scaleB) [+ bias], the fp8 GEMM
 * on the tensor cores. Both operands K-contiguous; K and N multiples of 16. */
export function scaledMm(a: DeviceBuffer, b: DeviceBuffer, scaleA: DeviceBuffer, scaleB: DeviceBuffer, opts: ScaledMmOptions = {}): DeviceBuffer {
  const op = "cuda.scaledMm";
  const ctx = a.ctx;
  const bias = opts.bias ?? null;
  sameContext(op, ctx, a, b, scaleA, scaleB, bias);
  requireScalar(op, scaleA, "scaleA");
  requireScalar(op, scaleB, "scaleB");
  const [M, K, N] = fp8GemmShape(op, a, b, bias);
  const outDtype = opts.outDtype ?? "bfloat16";
  const c = outOr(ctx, opts.out, [M, N], outDtype, op, "out");
  checkCuda(cudaLib().fp8_cuda_scaled_mm(ctx.handle, c.ptr, DTYPE_CODE[outDtype], a.ptr, code(a), b.ptr, code(b), scaleA.ptr, scaleB.ptr,
    bias ? bias.ptr : NULL, bias ? code(bias) : 0, M, K, N, opts.useFastAccum ? 1 : 0), op);
  return c;
}

/** c (M,N) <- (a (M,K) @ b (N,K)^T) * (1 / scaleA[i]) * (1 / scaleB[j]) [+ bias[j]], the row-scaled
 * fp8 GEMM of axiswise scaling (fp8_cpu_scaled_mm_rowwise with b stored (N, K)): scaleA (M) and
 * scaleB (N) float32, one per row of each operand. Operands as scaledMm; bias (N) float32 or
 * bfloat16. The context's rowwiseGemm says how the scales are applied. */
export function scaledMmRowwise(a: DeviceBuffer, b: DeviceBuffer, scaleA: DeviceBuffer, scaleB: DeviceBuffer, opts: ScaledMmOptions = {}): DeviceBuffer {
  const op = "cuda.scaledMmRowwise";
  const ctx = a.ctx;
  const bias = opts.bias ?? null;
  sameContext(op, ctx, a, b, scaleA, scaleB, bias);
  const [M, K, N] = fp8GemmShape(op, a, b, bias);
  requireScaleVector(op, scaleA, M, "scaleA");
  requireScaleVector(op, scaleB, N, "scaleB");
  const outDtype = opts.outDtype ?? "bfloat16";
  const c = outOr(ctx, opts.out, [M, N], outDtype, op, "out");
  checkCuda(cudaLib().fp8_cuda_scaled_mm_rowwise(ctx.handle, c.ptr, DTYPE_CODE[outDtype], a.ptr, code(a), b.ptr, code(b), scaleA.ptr,
    scaleB.ptr, bias ? bias.ptr : NULL, bias ? code(bias) : 0, M, K, N, opts.useFastAccum ? 1 : 0), op);
  return c;
}

/** Options of the device matmul. */
export interface MatmulOptions {
  /** a is stored (K, M) and read transposed. */
  readonly transA?: boolean;
  /** b is stored (N, K) and read transposed. */
  readonly transB?: boolean;
  readonly outDtype?: HighPrecisionDType;
  readonly bias?: DeviceBuffer | null;
  readonly alpha?: number;
  /** 0 (overwrite out) or 1 (accumulate into out). */
  readonly beta?: 0 | 1;
  readonly out?: DeviceBuffer;
}

/** c (M,N) <- alpha * op(a) @ op(b) [+ bias] + beta * c, float32 or bfloat16 operands, f32 accumulation. */
export function matmul(a: DeviceBuffer, b: DeviceBuffer, opts: MatmulOptions = {}): DeviceBuffer {
  const op = "cuda.matmul";
  const ctx = a.ctx;
  const bias = opts.bias ?? null;
  sameContext(op, ctx, a, b, bias);
  requireHp(op, a, "a");
  if (b.dtype !== a.dtype) throw new Float8Error(op, `a and b dtypes differ: ${desc(a)} and ${desc(b)}`);
  const [ar, ac] = matrix(op, a, "a");
  const [br, bc] = matrix(op, b, "b");
  const [M, K] = opts.transA ? [ac, ar] : [ar, ac];
  const [Kb, N] = opts.transB ? [bc, br] : [br, bc];
  if (K !== Kb) {
    throw new Float8Error(op, `inner dims differ: a${opts.transA ? "^T" : ""} ${desc(a)} @ b${opts.transB ? "^T" : ""} ${desc(b)}`);
  }
  if (bias) {
    requireHp(op, bias, "bias");
    requireShape(op, bias, [N], "bias");
  }
  const outDtype = opts.outDtype ?? a.dtype as HighPrecisionDType;
  if (a.dtype === "float32" && outDtype === "bfloat16") throw new Float8Error(op, "float32 operands need a float32 output");
  const beta = opts.beta ?? 0;
  if (beta === 1 && opts.out === undefined) throw new Float8Error(op, "beta = 1 accumulates into opts.out, which is missing");
  const c = outOr(ctx, opts.out, [M, N], outDtype, op, "out");
  checkCuda(cudaLib().fp8_cuda_matmul(ctx.handle, c.ptr, DTYPE_CODE[outDtype], a.ptr, b.ptr, code(a), bias ? bias.ptr : NULL,
    bias ? code(bias) : 0, 1, 1, M, K, N, opts.transA ? 1 : 0, opts.transB ? 1 : 0, opts.alpha ?? 1, beta), op);
  return c;
}

/** One delayed-scaling tensor role: its latest amax (1), amax history (historyLen) and scale (1). */
export interface DelayedScalingEntry {
  readonly amax: DeviceBuffer;
  readonly history: DeviceBuffer;
  readonly scale: DeviceBuffer;
  readonly fp8Dtype: Float8DType;
  readonly clampToFloat16?: boolean;
}

/** All delayed-scaling roles of a model, synced in one launch. The pointer tables are
 * uploaded once at construction; `sync()` then rolls every history and recomputes every
 * scale on the device (syncFloat8AmaxAndScaleHistory). */
export class DelayedScalingGroup {
  readonly historyLen: number;
  readonly count: number;
  #tables: DeviceBuffer[];

  constructor(readonly ctx: CudaContext, entries: readonly DelayedScalingEntry[]) {
    const op = "cuda.DelayedScalingGroup";
    this.count = entries.length;
    this.historyLen = entries.length > 0 ? entries[0].history.numel : 1;
    const ptrs = [new BigUint64Array(this.count), new BigUint64Array(this.count), new BigUint64Array(this.count)];
    const dtypes = new Int32Array(this.count), clamps = new Int32Array(this.count);
    entries.forEach((e, i) => {
      sameContext(op, ctx, e.amax, e.history, e.scale);
      requireScalar(op, e.amax, `entry ${i} amax`);
      requireScalar(op, e.scale, `entry ${i} scale`);
      if (e.history.dtype !== "float32" || e.history.numel !== this.historyLen) {
        throw new Float8Error(op, `entry ${i} history must be (${this.historyLen}) float32, got ${desc(e.history)}`);
      }
      ptrs[0][i] = BigInt(e.amax.ptr), ptrs[1][i] = BigInt(e.history.ptr), ptrs[2][i] = BigInt(e.scale.ptr);
      dtypes[i] = DTYPE_CODE[e.fp8Dtype];
      clamps[i] = e.clampToFloat16 ? 1 : 0;
    });
    this.#tables = [];
    try {
      // a device pointer is 8 bytes: two int32 elements
      for (const p of ptrs) this.#tables.push(DeviceBuffer.from(ctx, new Int32Array(p.buffer), [this.count, 2], "int32"));
      this.#tables.push(DeviceBuffer.from(ctx, dtypes, [this.count], "int32"), DeviceBuffer.from(ctx, clamps, [this.count], "int32"));
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Rolls every history by one, writes each amax into slot 0 and recomputes each scale. */
  sync(): void {
    const [a, h, s, d, c] = this.#tables;
    if (!a) throw new Float8Error("cuda.DelayedScalingGroup.sync", "group used after dispose()");
    checkCuda(cudaLib().fp8_cuda_sync_amax_history(this.ctx.handle, a.ptr, h.ptr, s.ptr, d.ptr, c.ptr, this.count, this.historyLen),
      "cuda.syncAmaxHistory");
  }

  dispose(): void {
    for (const t of this.#tables) t.dispose();
    this.#tables = [];
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
