// types.ts — Backend, the kernel table: what a device must provide for Tensor,
// autograd, nn, optim and float8 to run on it (this is the file to implement to
// add a device). One implementation per device: cpu.ts (libfp8's CPU kernels and
// oneDNN) and cuda.ts (libfp8_cuda's kernels and cuBLASLt). Nothing above the
// tensor layer calls it: the tensor-level contract (src/tensor/device_ops.ts)
// takes tensors and named options, checks that they share one device, and calls
// these with raw pointers and dtype codes; every method throws Float8Error(op, why)
// on failure (docs/architecture.md, "The device contract").
//
// Every method mirrors one fp8_cpu_* function of fp8.h, with the same
// arguments (the CUDA twins take the context first; the backend supplies it).
// Data pointers are memory of the backend's device; dims/strides arrays and
// the pointer tables of syncAmaxHistory are host arrays.
import type { NativePtr } from "../../ffi/index.ts";
export type { NativePtr }; // re-exported: layers above the backend name native pointers only through it

/** Where a tensor's storage lives. "cuda" needs libfp8_cuda (see src/cuda). */
export type Device = "cpu" | "cuda";

/** Host memory a transfer reads or writes: a native host pointer or a typed array. */
export type HostMemory = NativePtr | ArrayBufferView;

/** A device's memory, transfers and kernels. */
export interface Backend {
  readonly device: Device;
  /** True when the device's memory is host memory that JS may view directly (the CPU). */
  readonly hostAccessible: boolean;
  /** Where native code finds the memory: "host" (MPI collectives take it) or "device" (GPU: NCCL). */
  readonly nativeMemory: "host" | "device";

  // ---- memory ----
  alloc(nbytes: number): NativePtr;
  free(p: NativePtr): void;
  memoryStats(): { liveBytes: number; liveAllocs: number; cachedBytes: number };
  emptyCache(): void;
  /** host -> device, nbytes */
  upload(dst: NativePtr, src: HostMemory, nbytes: number): void;
  /** device -> host, nbytes (waits for the device's queued work) */
  download(dst: HostMemory, src: NativePtr, nbytes: number): void;
  /** device -> same device, nbytes */
  copy(dst: NativePtr, src: NativePtr, nbytes: number): void;
  /** Waits for all queued work (a no-op on the CPU). */
  synchronize(): void;
  /**
   * Optional, for checking backends (the emulated device): throws a Float8Error from op when p, the storage of
   * the operand described by `what`, is not memory of this device. The tensor-level contract
   * (src/tensor/device_ops.ts) calls it for every tensor operand of every kernel it runs.
   */
  checkOperand?(p: NativePtr, what: string, op: string): void;

  // ---- elementwise, reductions, movement ----
  convert(dst: NativePtr, dstDtype: number, src: NativePtr, srcDtype: number, n: number, op: string): void;
  fill(dst: NativePtr, dtype: number, n: number, value: number, op: string): void;
  binary(dst: NativePtr, dstDims: BigInt64Array, a: NativePtr, aDims: BigInt64Array, b: NativePtr, bDims: BigInt64Array, dtype: number, ndim: number, alg: number, op: string): void;
  eltwise(dst: NativePtr, src: NativePtr, dtype: number, n: number, alg: number, alpha: number, beta: number, op: string): void;
  eltwiseBackward(dsrc: NativePtr, ddst: NativePtr, src: NativePtr, dtype: number, n: number, alg: number, alpha: number, beta: number, op: string): void;
  reduce(dst: NativePtr, dstDims: BigInt64Array, src: NativePtr, srcDims: BigInt64Array, dtype: number, ndim: number, alg: number, op: string): void;
  copyStrided(dst: NativePtr, dstStrides: BigInt64Array, src: NativePtr, srcStrides: BigInt64Array, dims: BigInt64Array, ndim: number, elemSize: number, op: string): void;
  /** mask: u8 (maskN) in device memory */
  maskedFill(dst: NativePtr, src: NativePtr, mask: NativePtr, dtype: number, n: number, maskN: number, value: number, op: string): void;
  /** dst int32 (rows) <- index of the max of each row of src (rows, cols); NaN wins, first on ties */
  argmax(dst: NativePtr, src: NativePtr, dtype: number, rows: number, cols: number, op: string): void;

  // ---- nn ----
  softmax(dst: NativePtr, src: NativePtr, dtype: number, rows: number, cols: number, log: number, op: string): void;
  softmaxBackward(dsrc: NativePtr, ddst: NativePtr, dst: NativePtr, dtype: number, rows: number, cols: number, log: number, op: string): void;
  layerNorm(dst: NativePtr, mean: NativePtr, rstd: NativePtr, src: NativePtr, gamma: NativePtr | null, beta: NativePtr | null, dtype: number, rows: number, cols: number, eps: number, op: string): void;
  layerNormBackward(dsrc: NativePtr, dgamma: NativePtr | null, dbeta: NativePtr | null, ddst: NativePtr, src: NativePtr, mean: NativePtr, rstd: NativePtr, gamma: NativePtr | null, dtype: number, rows: number, cols: number, op: string): void;
  rmsNorm(dst: NativePtr, rstd: NativePtr, src: NativePtr, gamma: NativePtr | null, dtype: number, rows: number, cols: number, eps: number, op: string): void;
  rmsNormBackward(dsrc: NativePtr, dgamma: NativePtr | null, ddst: NativePtr, src: NativePtr, rstd: NativePtr, gamma: NativePtr | null, dtype: number, rows: number, cols: number, op: string): void;
  /** idx: int32 (nIdx) in device memory, validated by the caller */
  embedding(dst: NativePtr, weight: NativePtr, idx: NativePtr, dtype: number, nIdx: number, num: number, dim: number, op: string): void;
  embeddingBackward(dweight: NativePtr, ddst: NativePtr, idx: NativePtr, dtype: number, nIdx: number, num: number, dim: number, op: string): void;
  /** loss: one f32 in device memory; targets: int32 (rows) in device memory */
  crossEntropy(loss: NativePtr, logp: NativePtr, logits: NativePtr, targets: NativePtr, dtype: number, rows: number, cols: number, ignoreIndex: number, op: string): void;
  /** dloss: one f32 in device memory */
  crossEntropyBackward(dlogits: NativePtr, logp: NativePtr, targets: NativePtr, dloss: NativePtr, dtype: number, rows: number, cols: number, ignoreIndex: number, op: string): void;

  // ---- GEMMs ----
  matmul(c: NativePtr, cDtype: number, a: NativePtr, b: NativePtr, abDtype: number, bias: NativePtr | null, biasDtype: number, batchA: number, batchB: number, M: number, K: number, N: number, transA: number, transB: number, alpha: number, beta: number, op: string): void;
  /** Tensorwise scaled fp8 GEMM in TN form: c (M,N) <- a (M,K) @ b (N,K)^T / (scaleA * scaleB) [+ bias]; scales are one f32 each in device memory. */
  scaledMm(c: NativePtr, cDtype: number, a: NativePtr, aDtype: number, b: NativePtr, bDtype: number, scaleA: NativePtr, scaleB: NativePtr, bias: NativePtr | null, biasDtype: number, M: number, K: number, N: number, useFastAccum: boolean, op: string): void;
  /** Row-scaled fp8 GEMM in TN form; scaleA (M), scaleB (N) f32 in device memory. */
  scaledMmRowwise(c: NativePtr, cDtype: number, a: NativePtr, aDtype: number, b: NativePtr, bDtype: number, scaleA: NativePtr, scaleB: NativePtr, bias: NativePtr | null, biasDtype: number, M: number, K: number, N: number, useFastAccum: boolean, op: string): void;

  // ---- fp8 casts and scaling ----
  amax(out: NativePtr, src: NativePtr, dtype: number, n: number, op: string): void;
  amaxToScale(amax: NativePtr, scale: NativePtr, src: NativePtr, dtype: number, n: number, fp8Dtype: number, clampToF16: number, op: string): void;
  quantize(dst: NativePtr, fp8Dtype: number, src: NativePtr, srcDtype: number, n: number, scale: NativePtr, op: string): void;
  /**
   * Delayed scaling's cast: dst <- sat_rne(src * scale), decoded (host backends
   * only; else null) <- its exact bf16 value, and amax <- max |src| for the next
   * sync. The CPU takes the amax in the same pass (fp8_cpu_quantize_amax); a GPU
   * queues amax and quantize.
   */
  quantizeAmax(dst: NativePtr, decoded: NativePtr | null, fp8Dtype: number, src: NativePtr, srcDtype: number, n: number, scale: NativePtr, amax: NativePtr, op: string): void;
  /**
   * Dynamic scaling in one call: amax (may be null) <- max |src|, scale <- its
   * dynamic scale (rounded down to a power of 2 when roundPow2 != 0), dst <-
   * sat_rne(src * scale), and decoded (host backends only; else null) <- the
   * exact bf16 value of each fp8 byte. The CPU reads src once (fp8_cpu_quantize_dynamic);
   * a GPU queues amaxToScale, roundScalesToPowerOf2 and quantize.
   */
  quantizeDynamic(dst: NativePtr, decoded: NativePtr | null, fp8Dtype: number, src: NativePtr, srcDtype: number, n: number, amax: NativePtr | null, scale: NativePtr, clampToF16: number, roundPow2: number, op: string): void;
  /** One pass: dst (rows, cols) and/or dstT (cols, rows) fp8 with one scale (either may be null). */
  quantizeTranspose(dst: NativePtr | null, dstT: NativePtr | null, fp8Dtype: number, src: NativePtr, srcDtype: number, rows: number, cols: number, scale: NativePtr, op: string): void;
  dequantize(dst: NativePtr, dstDtype: number, src: NativePtr, fp8Dtype: number, n: number, scale: NativePtr, op: string): void;
  /**
   * Host backends only (absent elsewhere): one pass writing dst (rows, cols) fp8, decoded (rows, cols) BF16
   * and decodedT (cols, rows) BF16, the exact decode of each fp8 byte (any of dst/decoded may be null), for a
   * GEMM that reads src^T row-major (src/tensor/ops/gemm_layout.ts).
   */
  /**
   * Host backends only: whether libfp8 runs this fp8 GEMM on oneDNN's own fp8 matmul (a JIT kernel measured
   * faster than decode + bf16; decided once per problem and recorded, see onednnInfo().fp8Matmul).
   */
  nativeFp8Matmul?(cDtype: number, aDtype: number, bDtype: number, biasDtype: number, M: number, K: number, N: number, transA: boolean, transB: boolean, op: string): boolean;
  /** Host backends only: scaledMm with any operand transposes (fp8_cpu_scaled_mm). */
  scaledMmStrided?(c: NativePtr, cDtype: number, a: NativePtr, aDtype: number, b: NativePtr, bDtype: number, scaleA: NativePtr, scaleB: NativePtr, bias: NativePtr | null, biasDtype: number, M: number, K: number, N: number, transA: boolean, transB: boolean, op: string): void;
  /** Block-scaled fp8 casts (CPU and cuda) and the fp8-weight GEMV (CPU only; see blockKernelsOf). */
  blockKernels?: BlockKernels;
  quantizeTransposeDecode?(dst: NativePtr | null, decoded: NativePtr | null, decodedT: NativePtr, fp8Dtype: number, src: NativePtr, srcDtype: number, rows: number, cols: number, scale: NativePtr, op: string): void;
  /**
   * dst <- sat_rne(src * scale) and decoded (n) BF16 <- the exact value of each
   * fp8 byte, on any device (the CPU in one pass, fp8_cpu_quantize_decode; a
   * GPU queues quantize then convert).
   */
  quantizeDecode(dst: NativePtr, decoded: NativePtr, fp8Dtype: number, src: NativePtr, srcDtype: number, n: number, scale: NativePtr, op: string): void;
  quantizeRowwise(dst: NativePtr, scale: NativePtr, fp8Dtype: number, src: NativePtr, srcDtype: number, rows: number, cols: number, roundPow2: number, op: string): void;
  /** scale <- 2^floor(log2(scale)) for n f32 scales in place (finite positive normals only). */
  roundScalesToPowerOf2(scale: NativePtr, n: number, op: string): void;
  /**
   * Host backends only (the telemetry kernels read host memory; float8 copies a
   * device's tensors to the CPU and asks the CPU backend): counts of zeros,
   * saturated values and NaNs of fp8 src (n), into out (3 int64).
   */
  fp8Stats?(out: BigInt64Array, src: NativePtr, fp8Dtype: number, n: number, op: string): void;
  /**
   * Host backends only: telemetry of a cast src (rows, cols) -> srcFp8 with one
   * scale, or one per row when perRow: counts (2 int64: clipped, underflowed)
   * and sums (2 f64: sum x^2, sum (x - fp8/scale)^2).
   */
  castStats?(counts: BigInt64Array, sums: Float64Array, src: NativePtr, srcDtype: number, srcFp8: NativePtr, fp8Dtype: number, scale: NativePtr, perRow: boolean, rows: number, cols: number, op: string): void;
  /** Delayed scaling for every tensor in one call (host tables of device pointers). */
  syncAmaxHistory(amax: readonly NativePtr[], history: readonly NativePtr[], scale: readonly NativePtr[], fp8Dtype: Int32Array, clampToF16: Int32Array, historyLen: number, op: string): void;

  // ---- optimizers ----
  sgdStep(param: NativePtr, grad: NativePtr, buf: NativePtr | null, dtype: number, n: number, lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: number, firstStep: number, op: string): void;
  adamwStep(param: NativePtr, grad: NativePtr, expAvg: NativePtr, expAvgSq: NativePtr, dtype: number, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, op: string): void;
  /** Devices with CUDA graphs only: AdamW's 5 per-step constants for `step`, computed on the host as adamwStep computes them. */
  adamwConstants?(out: Float32Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, op: string): void;
  /** Devices with CUDA graphs only: adamwStep reading those constants from device memory (`consts`), which a replayed graph needs. */
  adamwStepDeviceConsts?(param: NativePtr, grad: NativePtr, expAvg: NativePtr, expAvgSq: NativePtr, dtype: number, n: number, consts: NativePtr, beta2: number, eps: number, op: string): void;
}

/**
 * libfp8's block-scaled casts (1x128 / 128x128 with f32 scales, MX with e8m0 scales) and its
 * fp8-weight GEMV, with the C entry points' arguments (libfp8/include/fp8.h) plus the op name.
 * The CPU has all of them; cuda has the casts (fp8_cuda_*, bit-identical) and answers
 * gemvFp8w with a Float8Error (docs/architecture.md, block scaling on the device).
 */
export interface BlockKernels {
  quantizeBlockwise(data: NativePtr, scale: NativePtr, fp8Dtype: number, src: NativePtr, srcDtype: number, rows: number, cols: number, blockRows: number, blockCols: number, op: string): void;
  dequantizeBlockwise(dst: NativePtr, dstDtype: number, data: NativePtr, fp8Dtype: number, scale: NativePtr, rows: number, cols: number, blockRows: number, blockCols: number, op: string): void;
  quantizeMx(data: NativePtr, scale: NativePtr, fp8Dtype: number, src: NativePtr, srcDtype: number, rows: number, cols: number, block: number, rceil: number, op: string): void;
  dequantizeMx(dst: NativePtr, dstDtype: number, data: NativePtr, fp8Dtype: number, scale: NativePtr, rows: number, cols: number, block: number, op: string): void;
  gemvFp8w(
    y: NativePtr, yDtype: number, x: NativePtr, xDtype: number, M: number, K: number, w: NativePtr, wDtype: number, N: number,
    scaleMode: number, wScale: NativePtr, blockRows: number, blockCols: number, bias: NativePtr | null, biasDtype: number, op: string,
  ): void;
  /**
   * Devices with block-scaled GEMMs (cuda: fp8_cuda_scaled_mm_blockwise / _mx): c (M, N) <- a (M, K) @
   * b (N, K)^T from the block-quantised operands (a: 1x128 f32 or 1x32 e8m0 scales; b: bBlockRows x 128
   * or 1x32), K and N multiples of 16. Hosts decode and use their f32 GEMM instead.
   */
  scaledMmBlock?(
    c: NativePtr, cDtype: number, a: NativePtr, aDtype: number, b: NativePtr, bDtype: number, scaleA: NativePtr, scaleB: NativePtr,
    mx: boolean, bBlockRows: number, bias: NativePtr | null, biasDtype: number, M: number, K: number, N: number, op: string,
  ): void;
  /** Whether a bf16 GEMM on this backend is native (CPU: AVX-512 BF16), so exact bf16 decodes of MX operands beat f32 ones (absent: no). */
  bf16GemmNative?(): boolean;
}
