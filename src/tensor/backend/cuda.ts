// cuda.ts — the CUDA backend: libfp8_cuda's kernels (ours) and cuBLASLt's
// GEMMs on the current GPU's context (stream, handle, plan cache). Every call
// queues work on the context's stream and returns; only download() and
// synchronize() wait (uploads are staged through pinned memory). Scales, amaxes and losses stay in device memory.
//
// libfp8_cuda is opened on first use, so a CPU-only program never loads it.
import { Float8Error } from "../../errors.ts";
import { checkCuda, cudaLib, type NativePtr } from "../../ffi/index.ts";
import { DTYPE_CODE } from "../dtype.ts";
import { device as cudaDevice, type CudaContext } from "./cuda_device.ts";
import { activeCapture, deferIfHeld, freePoolBlock } from "./capture.ts";
import type { Backend, HostMemory } from "./types.ts";

let currentIndex = 0;
/** The context each live allocation was made on (frees go back to it), and its size. */
const owners = new Map<number, { ctx: CudaContext; nbytes: number }>();
/** Bytes of live allocations per GPU, and their high-water mark since the last resetCudaPeakBytes. */
const liveBytes = new Map<number, number>();
const peakBytes = new Map<number, number>();

/**
 * Device memory of "cuda" tensors on the current GPU: live now, and the most that was live at once
 * since the last resetCudaPeakBytes() (what cuda.captureGraph sizes its pool from).
 */
export function cudaTensorBytes(): { live: number; peak: number } {
  return { live: liveBytes.get(currentIndex) ?? 0, peak: peakBytes.get(currentIndex) ?? 0 };
}

/** Every live allocation of "cuda" tensors on the current GPU (what a captured graph may use). */
export function liveCudaPointers(): number[] {
  const c = ctx();
  return [...owners].filter(([, o]) => o.ctx === c).map(([p]) => p);
}

/** Restarts the high-water mark of cudaTensorBytes() at the bytes live now. */
export function resetCudaPeakBytes(): void {
  peakBytes.set(currentIndex, liveBytes.get(currentIndex) ?? 0);
}

/**
 * Makes GPU `index` the one that "cuda" tensors live on (torch.cuda.set_device).
 * A process drives one GPU at a time: choose it before making cuda tensors.
 */
export function setCudaDevice(index: number): void {
  if (!Number.isInteger(index) || index < 0) throw new Float8Error("cuda.setDevice", `device index must be a non-negative integer, got ${index}`);
  if (index === currentIndex) return;
  const live = [...owners.values()].filter((o) => !o.ctx.isDisposed).length;
  if (live > 0) {
    throw new Float8Error("cuda.setDevice", `${live} cuda allocation(s) still live on device ${currentIndex}: choose the GPU before making cuda tensors (or dispose them first)`);
  }
  currentIndex = index;
}

/** Index of the GPU that new "cuda" tensors live on. */
export function currentCudaDevice(): number {
  return currentIndex;
}

function ctx(): CudaContext {
  return cudaDevice(currentIndex);
}

const h = (): NativePtr => ctx().handle;

/** bun:ffi takes a typed array or a numeric pointer for a host `ptr` argument. */
const hostArg = (m: HostMemory) => m as NativePtr;

/** The op names of fp8.h's FP8_CUDA_INDEX_* codes, as src/tensor/ops/nn.ts names its calls. */
const INDEX_ERROR_OPS: Record<number, { op: string; what: string; rule: string }> = {
  1: { op: "embedding", what: "index", rule: "rows of the weight" },
  2: { op: "embedding.backward", what: "index", rule: "rows of the weight" },
  3: { op: "crossEntropy", what: "target", rule: "classes, and it is not ignoreIndex" },
  4: { op: "crossEntropy.backward", what: "target", rule: "classes, and it is not ignoreIndex" },
};

/**
 * After a synchronisation: throws the out-of-range index or target an embedding / crossEntropy kernel
 * met in device-resident int32 data (inside a captured CUDA graph, where the host cannot check it), and
 * clears it. The kernels record it without a sync, so it surfaces at the next download or synchronize.
 */
function throwIndexError(): void {
  const bad = ctx().takeIndexError();
  if (bad === null) return;
  const k = INDEX_ERROR_OPS[bad.op] ?? { op: "cuda", what: "index", rule: "entries" };
  throw new Float8Error(
    k.op,
    `${k.what} ${bad.index} in device int32 data is out of range [0, ${bad.limit}) (${bad.limit} ${k.rule}); ` +
      `found by the kernel and reported at this synchronisation: results since then are not valid (zero rows / no gradient / NaN loss)`,
  );
}

/** A temporary device copy of a host array, freed (stream-ordered) by the caller. */
function uploadTemp(data: ArrayBufferView): NativePtr {
  const out = new BigUint64Array(1);
  checkCuda(cudaLib().fp8_cuda_malloc(h(), data.byteLength, out), "cuda.upload");
  const p = Number(out[0]) as NativePtr;
  if (data.byteLength > 0) {
    const st = cudaLib().fp8_cuda_memcpy_h2d_async(h(), p, hostArg(data), data.byteLength);
    if (st !== 0) {
      cudaLib().fp8_cuda_free(h(), p);
      checkCuda(st, "cuda.upload");
    }
  }
  return p;
}


/**
 * The device copies of delayed scaling's pointer and dtype tables, which the
 * sync kernel reads. A model's state buffers keep their addresses from step to
 * step, so the tables are uploaded once (an upload from pageable memory waits
 * for the stream) and reused; the key is the tables' content, so it stays right
 * even if a freed address is reused.
 */
const tableCache = new Map<string, { ctx: CudaContext; ptrs: NativePtr[] }>();
const TABLE_CACHE_ENTRIES = 16;

function amaxTables(amax: readonly NativePtr[], history: readonly NativePtr[], scale: readonly NativePtr[], fp8: Int32Array, clamp: Int32Array): NativePtr[] {
  const c = ctx();
  const key = `${c.index}|${amax.join(",")}|${history.join(",")}|${scale.join(",")}|${fp8.join(",")}|${clamp.join(",")}`;
  const hit = tableCache.get(key);
  if (hit && !hit.ctx.isDisposed) return hit.ptrs;
  const table = (ps: readonly NativePtr[]) => BigUint64Array.from(ps.map((p) => BigInt(p)));
  const ptrs: NativePtr[] = [];
  try {
    for (const t of [table(amax), table(history), table(scale), fp8, clamp]) ptrs.push(uploadTemp(t));
  } catch (e) {
    for (const p of ptrs) cudaLib().fp8_cuda_free(c.handle, p);
    throw e;
  }
  if (tableCache.size >= TABLE_CACHE_ENTRIES) {
    const [oldKey, old] = tableCache.entries().next().value!;
    tableCache.delete(oldKey);
    if (!old.ctx.isDisposed) for (const p of old.ptrs) cudaLib().fp8_cuda_free(old.ctx.handle, p);
  }
  tableCache.set(key, { ctx: c, ptrs });
  return ptrs;
}

/** quantizeAmax/quantizeDynamic's refusal: the bf16 decode exists for the CPU's emulated GEMM. */
/** Paths of the block-scaled GEMMs (fp8.h, FP8_CUDA_BLOCK_GEMM_*). */
export type BlockGemmPath = "auto" | "cublaslt" | "dequant";
const BLOCK_GEMM_PATHS: readonly BlockGemmPath[] = ["auto", "cublaslt", "dequant"];

/**
 * How the block-scaled GEMMs (recipes "blockwise", "mxfp8") run on the current cuda device:
 * "auto" (default) uses cuBLASLt's block scale modes where the device has them (1x128 / 128x128 on
 * sm_90, MXFP8 on sm_100+) and otherwise decodes both operands with their block scales and runs
 * the f32 GEMM ("dequant", the CPU's method); "cublaslt" fails where the mode is missing.
 */
export function setBlockGemm(path: BlockGemmPath): void {
  const code = BLOCK_GEMM_PATHS.indexOf(path);
  if (code < 0) throw new Float8Error("cuda.setBlockGemm", `expected "auto", "cublaslt" or "dequant", got ${String(path)}`);
  checkCuda(cudaLib().fp8_cuda_set_block_gemm(h(), code), "cuda.setBlockGemm");
}

/** The path the last block-scaled GEMM on the current cuda device took ("none" before one ran) and why it did not use cuBLASLt's scale modes ("" when it did). */
export function blockGemmInfo(): { path: "none" | "cublaslt" | "dequant"; reason: string } {
  const path = new Int32Array(1), reason = new Uint8Array(320);
  checkCuda(cudaLib().fp8_cuda_block_gemm_info(h(), path, reason, reason.length), "cuda.blockGemmInfo");
  const end = reason.indexOf(0);
  return { path: (["none", "cublaslt", "dequant"] as const)[path[0]] ?? "none", reason: new TextDecoder().decode(reason.subarray(0, end < 0 ? reason.length : end)) };
}

/** Fallback reasons already reported (each is said once per process). */
const warnedBlockFallbacks = new Set<string>();
function warnBlockFallback(mx: boolean): void {
  const { path, reason } = blockGemmInfo();
  if (path !== "dequant" || reason === "" || reason.includes("fp8_cuda_set_block_gemm") || warnedBlockFallbacks.has(reason)) return;
  warnedBlockFallbacks.add(reason);
  console.warn(`float8: ${mx ? "mxfp8" : "blockwise"} GEMMs on cuda run as dequantize + f32 GEMM (slower than cuBLASLt's block scaling): ${reason}. cuda.blockGemmInfo() reports the path.`);
}

const NO_DECODE_ON_CUDA = "a bf16 decode is a CPU GEMM's input; on cuda the cast writes fp8 only";

/** The CUDA backend (device "cuda"). */
export const cudaBackend: Backend = {
  device: "cuda",
  hostAccessible: false,
  nativeMemory: "device",

  alloc: (nbytes) => {
    const capture = activeCapture(); // while a graph is captured: its pool (fixed addresses)
    if (capture) return capture.alloc(nbytes);
    const c = ctx();
    const out = new BigUint64Array(1);
    checkCuda(cudaLib().fp8_cuda_malloc(c.handle, nbytes, out), `cuda alloc of ${nbytes} bytes`);
    const p = Number(out[0]) as NativePtr;
    owners.set(p, { ctx: c, nbytes });
    const live = (liveBytes.get(c.index) ?? 0) + nbytes;
    liveBytes.set(c.index, live);
    if (live > (peakBytes.get(c.index) ?? 0)) peakBytes.set(c.index, live);
    return p;
  },
  // cudaFreeAsync on the stream: work already queued on the buffer finishes first.
  // Memory of a context that was disposed went with it.
  free: (p) => {
    if (freePoolBlock(p)) return;
    const o = owners.get(p);
    const release = () => {
      owners.delete(p);
      if (!o) return;
      liveBytes.set(o.ctx.index, (liveBytes.get(o.ctx.index) ?? 0) - o.nbytes);
      if (!o.ctx.isDisposed) checkCuda(cudaLib().fp8_cuda_free(o.ctx.handle, p), "cuda free");
    };
    if (deferIfHeld(p, release)) return; // a live graph may still use it
    const capture = activeCapture(); // a replay may still use it: held until the graph goes
    if (capture) capture.retain(release);
    else release();
  },
  memoryStats: () => ({ ...ctx().memoryStats(), cachedBytes: 0 }),
  emptyCache: () => {},
  // staged through pinned memory: returns without waiting for the stream (src may be reused at once)
  upload: (dst, src, nbytes) => checkCuda(cudaLib().fp8_cuda_memcpy_h2d_async(h(), dst, hostArg(src), nbytes), "to(cuda)"),
  download: (dst, src, nbytes) => {
    checkCuda(cudaLib().fp8_cuda_memcpy_d2h(h(), hostArg(dst), src, nbytes), "to(cpu)");
    throwIndexError();
  },
  copy: (dst, src, nbytes) => checkCuda(cudaLib().fp8_cuda_memcpy_d2d(h(), dst, src, nbytes), "copy"),
  synchronize: () => {
    ctx().synchronize();
    throwIndexError();
  },

  convert: (dst, dd, src, sd, n, op) => checkCuda(cudaLib().fp8_cuda_convert(h(), dst, dd, src, sd, n), op),
  fill: (dst, dtype, n, value, op) => checkCuda(cudaLib().fp8_cuda_fill(h(), dst, dtype, n, value), op),
  binary: (dst, dd, a, ad, b, bd, dtype, nd, alg, op) => checkCuda(cudaLib().fp8_cuda_binary(h(), dst, dd, a, ad, b, bd, dtype, nd, alg), op),
  eltwise: (dst, src, dtype, n, alg, alpha, beta, op) => checkCuda(cudaLib().fp8_cuda_eltwise(h(), dst, src, dtype, n, alg, alpha, beta), op),
  eltwiseBackward: (dsrc, ddst, src, dtype, n, alg, alpha, beta, op) =>
    checkCuda(cudaLib().fp8_cuda_eltwise_backward(h(), dsrc, ddst, src, dtype, n, alg, alpha, beta), op),
  reduce: (dst, dd, src, sd, dtype, nd, alg, op) => checkCuda(cudaLib().fp8_cuda_reduce(h(), dst, dd, src, sd, dtype, nd, alg), op),
  copyStrided: (dst, ds, src, ss, dims, nd, item, op) => checkCuda(cudaLib().fp8_cuda_copy_strided(h(), dst, ds, src, ss, dims, nd, item), op),
  maskedFill: (dst, src, mask, dtype, n, maskN, value, op) =>
    checkCuda(cudaLib().fp8_cuda_masked_fill(h(), dst, src, mask, dtype, n, maskN, value), op),
  argmax: (dst, src, dtype, rows, cols, op) => checkCuda(cudaLib().fp8_cuda_argmax(h(), dst, src, dtype, rows, cols), op),

  softmax: (dst, src, dtype, rows, cols, log, op) => checkCuda(cudaLib().fp8_cuda_softmax(h(), dst, src, dtype, rows, cols, log), op),
  softmaxBackward: (dsrc, ddst, dst, dtype, rows, cols, log, op) =>
    checkCuda(cudaLib().fp8_cuda_softmax_backward(h(), dsrc, ddst, dst, dtype, rows, cols, log), op),
  layerNorm: (dst, mean, rstd, src, gamma, beta, dtype, rows, cols, eps, op) =>
    checkCuda(cudaLib().fp8_cuda_layer_norm(h(), dst, mean, rstd, src, gamma, beta, dtype, rows, cols, eps), op),
  layerNormBackward: (dsrc, dgamma, dbeta, ddst, src, mean, rstd, gamma, dtype, rows, cols, op) =>
    checkCuda(cudaLib().fp8_cuda_layer_norm_backward(h(), dsrc, dgamma, dbeta, ddst, src, mean, rstd, gamma, dtype, rows, cols), op),
  rmsNorm: (dst, rstd, src, gamma, dtype, rows, cols, eps, op) =>
    checkCuda(cudaLib().fp8_cuda_rms_norm(h(), dst, rstd, src, gamma, dtype, rows, cols, eps), op),
  rmsNormBackward: (dsrc, dgamma, ddst, src, rstd, gamma, dtype, rows, cols, op) =>
    checkCuda(cudaLib().fp8_cuda_rms_norm_backward(h(), dsrc, dgamma, ddst, src, rstd, gamma, dtype, rows, cols), op),
  embedding: (dst, weight, idx, dtype, nIdx, num, dim, op) =>
    checkCuda(cudaLib().fp8_cuda_embedding(h(), dst, weight, idx, dtype, nIdx, num, dim), op),
  embeddingBackward: (dw, ddst, idx, dtype, nIdx, num, dim, op) =>
    checkCuda(cudaLib().fp8_cuda_embedding_backward(h(), dw, ddst, idx, dtype, nIdx, num, dim), op),
  crossEntropy: (loss, logp, logits, targets, dtype, rows, cols, ignore, op) =>
    checkCuda(cudaLib().fp8_cuda_cross_entropy(h(), loss, logp, logits, targets, dtype, rows, cols, ignore), op),
  crossEntropyBackward: (dlogits, logp, targets, dloss, dtype, rows, cols, ignore, op) =>
    checkCuda(cudaLib().fp8_cuda_cross_entropy_backward(h(), dlogits, logp, targets, dloss, dtype, rows, cols, ignore), op),

  matmul: (c, cd, a, b, abd, bias, biasd, batchA, batchB, M, K, N, ta, tb, alpha, beta, op) =>
    checkCuda(cudaLib().fp8_cuda_matmul(h(), c, cd, a, b, abd, bias, biasd, batchA, batchB, M, K, N, ta, tb, alpha, beta), op),
  scaledMm: (c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, fast, op) =>
    checkCuda(cudaLib().fp8_cuda_scaled_mm(h(), c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, fast ? 1 : 0), op),
  scaledMmRowwise: (c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, fast, op) =>
    checkCuda(cudaLib().fp8_cuda_scaled_mm_rowwise(h(), c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, fast ? 1 : 0), op),

  amax: (out, src, dtype, n, op) => checkCuda(cudaLib().fp8_cuda_amax(h(), out, src, dtype, n), op),
  amaxToScale: (amax, scale, src, dtype, n, fp8, clamp, op) =>
    checkCuda(cudaLib().fp8_cuda_amax_to_scale(h(), amax, scale, src, dtype, n, fp8, clamp), op),
  quantize: (dst, fp8, src, sd, n, scale, op) => checkCuda(cudaLib().fp8_cuda_quantize(h(), dst, fp8, src, sd, n, scale), op),
  quantizeAmax: (dst, decoded, fp8, src, sd, n, scale, amax, op) => {
    if (decoded !== null) throw new Float8Error(op, NO_DECODE_ON_CUDA);
    checkCuda(cudaLib().fp8_cuda_amax(h(), amax, src, sd, n), op);
    checkCuda(cudaLib().fp8_cuda_quantize(h(), dst, fp8, src, sd, n, scale), op);
  },
  quantizeDecode: (dst, decoded, fp8, src, sd, n, scale, op) => {
    checkCuda(cudaLib().fp8_cuda_quantize(h(), dst, fp8, src, sd, n, scale), op);
    checkCuda(cudaLib().fp8_cuda_convert(h(), decoded, DTYPE_CODE.bfloat16, dst, fp8, n), op);
  },
  quantizeDynamic: (dst, decoded, fp8, src, sd, n, amax, scale, clamp, p2, op) => {
    if (decoded !== null) throw new Float8Error(op, NO_DECODE_ON_CUDA);
    checkCuda(cudaLib().fp8_cuda_amax_to_scale(h(), amax, scale, src, sd, n, fp8, clamp), op);
    if (p2) checkCuda(cudaLib().fp8_cuda_round_scales_pow2(h(), scale, 1), op);
    checkCuda(cudaLib().fp8_cuda_quantize(h(), dst, fp8, src, sd, n, scale), op);
  },
  quantizeTranspose: (dst, dstT, fp8, src, sd, rows, cols, scale, op) =>
    checkCuda(cudaLib().fp8_cuda_quantize_transpose(h(), dst, dstT, fp8, src, sd, rows, cols, scale), op),
  dequantize: (dst, dd, src, fp8, n, scale, op) => checkCuda(cudaLib().fp8_cuda_dequantize(h(), dst, dd, src, fp8, n, scale), op),
  quantizeRowwise: (dst, scale, fp8, src, sd, rows, cols, p2, op) =>
    checkCuda(cudaLib().fp8_cuda_quantize_rowwise(h(), dst, scale, fp8, src, sd, rows, cols, p2), op),
  roundScalesToPowerOf2: (scale, n, op) => checkCuda(cudaLib().fp8_cuda_round_scales_pow2(h(), scale, n), op),
  // block-scaled casts: libfp8/src/cuda/block_kernels.cu, bit-identical to the CPU's
  blockKernels: {
    quantizeBlockwise: (data, scale, fp8, src, sd, rows, cols, br, bc, op) =>
      checkCuda(cudaLib().fp8_cuda_quantize_blockwise(h(), data, scale, fp8, src, sd, rows, cols, br, bc), op),
    dequantizeBlockwise: (dst, dd, data, fp8, scale, rows, cols, br, bc, op) =>
      checkCuda(cudaLib().fp8_cuda_dequantize_blockwise(h(), dst, dd, data, fp8, scale, rows, cols, br, bc), op),
    quantizeMx: (data, scale, fp8, src, sd, rows, cols, block, rceil, op) =>
      checkCuda(cudaLib().fp8_cuda_quantize_mx(h(), data, scale, fp8, src, sd, rows, cols, block, rceil), op),
    dequantizeMx: (dst, dd, data, fp8, scale, rows, cols, block, op) =>
      checkCuda(cudaLib().fp8_cuda_dequantize_mx(h(), dst, dd, data, fp8, scale, rows, cols, block), op),
    gemvFp8w: (_y, _yd, _x, _xd, M, K, _w, _wd, N, _mode, _ws, _br, _bc, _bias, _biasd, op) => {
      throw new Float8Error(op, `the fp8-weight GEMV (M=${M}, K=${K}, N=${N}) runs on the CPU only; got tensors on cuda (move the inference model to the CPU, or use a float8 training recipe on cuda)`);
    },
    scaledMmBlock: (c, cd, a, ad, b, bd, sa, sb, mx, bRows, bias, biasd, M, K, N, op) => {
      if (mx) checkCuda(cudaLib().fp8_cuda_scaled_mm_mx(h(), c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N), op);
      else checkCuda(cudaLib().fp8_cuda_scaled_mm_blockwise(h(), c, cd, a, ad, b, bd, sa, sb, bRows, bias, biasd, M, K, N, 0), op);
      warnBlockFallback(mx);
    },
  },
  syncAmaxHistory: (amax, history, scale, fp8, clamp, historyLen, op) => {
    const t = amaxTables(amax, history, scale, fp8, clamp);
    checkCuda(cudaLib().fp8_cuda_sync_amax_history(h(), t[0], t[1], t[2], t[3], t[4], amax.length, historyLen), op);
  },

  sgdStep: (p, g, buf, dtype, n, lr, mom, damp, wd, nesterov, first, op) =>
    checkCuda(cudaLib().fp8_cuda_sgd_step(h(), p, g, buf, dtype, n, lr, mom, damp, wd, nesterov, first), op),
  adamwStep: (p, g, m, v, dtype, n, lr, b1, b2, eps, wd, step, op) =>
    checkCuda(cudaLib().fp8_cuda_adamw_step(h(), p, g, m, v, dtype, n, lr, b1, b2, eps, wd, step), op),
  adamwConstants: (out, lr, b1, b2, eps, wd, step, op) => checkCuda(cudaLib().fp8_cuda_adamw_constants(out, lr, b1, b2, eps, wd, step), op),
  adamwStepDeviceConsts: (p, g, m, v, dtype, n, consts, b2, eps, op) =>
    checkCuda(cudaLib().fp8_cuda_adamw_step_dev(h(), p, g, m, v, dtype, n, consts, b2, eps), op),
};
