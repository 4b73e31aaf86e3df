// cpu.ts — the CPU backend: libfp8's own fp8 kernels, oneDNN's GEMM and
// primitives, and plain C kernels (fp8_cpu_*), on host memory.
import {
  lib, check, nativeAlloc, nativeEmptyCache, nativeFree, nativeMemoryStats, nativeView, type NativePtr,
} from "../../ffi/index.ts";
import type { Backend, HostMemory } from "./types.ts";

function bytesOf(m: HostMemory, nbytes: number): Uint8Array {
  if (typeof m === "number") return new Uint8Array(nativeView(m as NativePtr, nbytes));
  return new Uint8Array(m.buffer, m.byteOffset, nbytes);
}

/** Host memcpy of nbytes (views both sides; no native call). */
function memcpy(dst: HostMemory, src: HostMemory, nbytes: number): void {
  if (nbytes > 0) bytesOf(dst, nbytes).set(bytesOf(src, nbytes));
}

/** The path answer of fp8_cpu_scaled_mm_path (one int32, reused). */
const pathOut = new Int32Array(1);

/** libfp8's CPU backend. */
export const cpuBackend: Backend = {
  device: "cpu",
  hostAccessible: true,
  nativeMemory: "host",

  alloc: (nbytes) => nativeAlloc(nbytes),
  free: (p) => nativeFree(p),
  memoryStats: () => nativeMemoryStats(),
  emptyCache: () => nativeEmptyCache(),
  upload: (dst, src, nbytes) => memcpy(dst, src, nbytes),
  download: (dst, src, nbytes) => memcpy(dst, src, nbytes),
  copy: (dst, src, nbytes) => memcpy(dst, src, nbytes),
  synchronize: () => {},

  convert: (dst, dd, src, sd, n, op) => check(lib.fp8_cpu_convert(dst, dd, src, sd, n), op),
  fill: (dst, dtype, n, value, op) => check(lib.fp8_cpu_fill(dst, dtype, n, value), op),
  binary: (dst, dd, a, ad, b, bd, dtype, nd, alg, op) => check(lib.fp8_cpu_binary(dst, dd, a, ad, b, bd, dtype, nd, alg), op),
  eltwise: (dst, src, dtype, n, alg, alpha, beta, op) => check(lib.fp8_cpu_eltwise(dst, src, dtype, n, alg, alpha, beta), op),
  eltwiseBackward: (dsrc, ddst, src, dtype, n, alg, alpha, beta, op) =>
    check(lib.fp8_cpu_eltwise_backward(dsrc, ddst, src, dtype, n, alg, alpha, beta), op),
  reduce: (dst, dd, src, sd, dtype, nd, alg, op) => check(lib.fp8_cpu_reduce(dst, dd, src, sd, dtype, nd, alg), op),
  copyStrided: (dst, ds, src, ss, dims, nd, item, op) => check(lib.fp8_cpu_copy_strided(dst, ds, src, ss, dims, nd, item), op),
  maskedFill: (dst, src, mask, dtype, n, maskN, value, op) => check(lib.fp8_cpu_masked_fill(dst, src, mask, dtype, n, maskN, value), op),
  argmax: (dst, src, dtype, rows, cols) => {
    // on the host: decode to f32, then scan each row (NaN counts as largest, as in torch)
    const v = new Float32Array(rows * cols);
    if (v.length) check(lib.fp8_cpu_convert(v, 0, src, dtype, v.length), "argmax");
    const out = new Int32Array(nativeView(dst, rows * 4));
    for (let r = 0; r < rows; r++) {
      let best = 0, bv = v[r * cols];
      for (let k = 1; k < cols && !Number.isNaN(bv); k++) {
        const c = v[r * cols + k];
        if (c > bv || Number.isNaN(c)) { best = k; bv = c; }
      }
      out[r] = best;
    }
  },

  softmax: (dst, src, dtype, rows, cols, log, op) => check(lib.fp8_cpu_softmax(dst, src, dtype, rows, cols, log), op),
  softmaxBackward: (dsrc, ddst, dst, dtype, rows, cols, log, op) =>
    check(lib.fp8_cpu_softmax_backward(dsrc, ddst, dst, dtype, rows, cols, log), op),
  layerNorm: (dst, mean, rstd, src, gamma, beta, dtype, rows, cols, eps, op) =>
    check(lib.fp8_cpu_layer_norm(dst, mean, rstd, src, gamma, beta, dtype, rows, cols, eps), op),
  layerNormBackward: (dsrc, dgamma, dbeta, ddst, src, mean, rstd, gamma, dtype, rows, cols, op) =>
    check(lib.fp8_cpu_layer_norm_backward(dsrc, dgamma, dbeta, ddst, src, mean, rstd, gamma, dtype, rows, cols), op),
  rmsNorm: (dst, rstd, src, gamma, dtype, rows, cols, eps, op) => check(lib.fp8_cpu_rms_norm(dst, rstd, src, gamma, dtype, rows, cols, eps), op),
  rmsNormBackward: (dsrc, dgamma, ddst, src, rstd, gamma, dtype, rows, cols, op) =>
    check(lib.fp8_cpu_rms_norm_backward(dsrc, dgamma, ddst, src, rstd, gamma, dtype, rows, cols), op),
  embedding: (dst, weight, idx, dtype, nIdx, num, dim, op) => check(lib.fp8_cpu_embedding(dst, weight, idx, dtype, nIdx, num, dim), op),
  embeddingBackward: (dw, ddst, idx, dtype, nIdx, num, dim, op) =>
    check(lib.fp8_cpu_embedding_backward(dw, ddst, idx, dtype, nIdx, num, dim), op),
  crossEntropy: (loss, logp, logits, targets, dtype, rows, cols, ignore, op) =>
    check(lib.fp8_cpu_cross_entropy(loss, logp, logits, targets, dtype, rows, cols, ignore), op),
  crossEntropyBackward: (dlogits, logp, targets, dloss, dtype, rows, cols, ignore, op) => {
    const dl = new Float32Array(nativeView(dloss, 4))[0];
    check(lib.fp8_cpu_cross_entropy_backward(dlogits, logp, targets, dl, dtype, rows, cols, ignore), op);
  },

  matmul: (c, cd, a, b, abd, bias, biasd, batchA, batchB, M, K, N, ta, tb, alpha, beta, op) =>
    check(lib.fp8_cpu_matmul(c, cd, a, b, abd, bias, biasd, batchA, batchB, M, K, N, ta, tb, alpha, beta), op),
  scaledMm: (c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, _fast, op) =>
    check(lib.fp8_cpu_scaled_mm(c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, 0, 1), op),
  scaledMmRowwise: (c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, _fast, op) =>
    check(lib.fp8_cpu_scaled_mm_rowwise(c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, 0, 1), op),

  amax: (out, src, dtype, n, op) => check(lib.fp8_cpu_amax(out, src, dtype, n), op),
  amaxToScale: (amax, scale, src, dtype, n, fp8, clamp, op) => check(lib.fp8_cpu_amax_to_scale(amax, scale, src, dtype, n, fp8, clamp), op),
  quantize: (dst, fp8, src, sd, n, scale, op) => check(lib.fp8_cpu_quantize(dst, fp8, src, sd, n, scale), op),
  quantizeAmax: (dst, decoded, fp8, src, sd, n, scale, amax, op) =>
    check(lib.fp8_cpu_quantize_amax(dst, decoded, fp8, src, sd, n, scale, amax), op),
  quantizeDecode: (dst, decoded, fp8, src, sd, n, scale, op) =>
    check(lib.fp8_cpu_quantize_decode(dst, decoded, fp8, src, sd, n, scale), op),
  quantizeDynamic: (dst, decoded, fp8, src, sd, n, amax, scale, clamp, p2, op) =>
    check(lib.fp8_cpu_quantize_dynamic(dst, decoded, fp8, src, sd, n, amax, scale, clamp, p2), op),
  quantizeTranspose: (dst, dstT, fp8, src, sd, rows, cols, scale, op) =>
    check(lib.fp8_cpu_quantize_transpose(dst, dstT, null, null, fp8, src, sd, rows, cols, scale), op),
  nativeFp8Matmul: (cd, ad, bd, biasd, M, K, N, transA, transB, op) => {
    check(lib.fp8_cpu_scaled_mm_path(pathOut, cd, ad, bd, biasd, M, K, N, transA ? 1 : 0, transB ? 1 : 0), op);
    return pathOut[0] !== 0;
  },
  scaledMmStrided: (c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, transA, transB, op) =>
    check(lib.fp8_cpu_scaled_mm(c, cd, a, ad, b, bd, sa, sb, bias, biasd, M, K, N, transA ? 1 : 0, transB ? 1 : 0), op),
  blockKernels: {
    quantizeBlockwise: (data, scale, fp8, src, sd, rows, cols, br, bc, op) =>
      check(lib.fp8_cpu_quantize_blockwise(data, scale, fp8, src, sd, rows, cols, br, bc), op),
    dequantizeBlockwise: (dst, dd, data, fp8, scale, rows, cols, br, bc, op) =>
      check(lib.fp8_cpu_dequantize_blockwise(dst, dd, data, fp8, scale, rows, cols, br, bc), op),
    quantizeMx: (data, scale, fp8, src, sd, rows, cols, block, rceil, op) =>
      check(lib.fp8_cpu_quantize_mx(data, scale, fp8, src, sd, rows, cols, block, rceil), op),
    dequantizeMx: (dst, dd, data, fp8, scale, rows, cols, block, op) =>
      check(lib.fp8_cpu_dequantize_mx(dst, dd, data, fp8, scale, rows, cols, block), op),
    gemvFp8w: (y, yd, x, xd, M, K, w, wd, N, mode, ws, br, bc, bias, biasd, op) =>
      check(lib.fp8_cpu_gemv_fp8w(y, yd, x, xd, M, K, w, wd, N, mode, ws, br, bc, bias, biasd), op),
    bf16GemmNative: () => {
      const out = new Int32Array(1);
      check(lib.fp8_cpu_bf16_native(out), "bf16GemmNative");
      return out[0] === 1;
    },
  },
  quantizeTransposeDecode: (dst, decoded, decodedT, fp8, src, sd, rows, cols, scale, op) =>
    check(lib.fp8_cpu_quantize_transpose(dst, null, decoded, decodedT, fp8, src, sd, rows, cols, scale), op),
  dequantize: (dst, dd, src, fp8, n, scale, op) => check(lib.fp8_cpu_dequantize(dst, dd, src, fp8, n, scale), op),
  quantizeRowwise: (dst, scale, fp8, src, sd, rows, cols, p2, op) => check(lib.fp8_cpu_quantize_rowwise(dst, scale, fp8, src, sd, rows, cols, p2), op),
  roundScalesToPowerOf2: (scale, n) => {
    const bits = new Uint32Array(nativeView(scale, n * 4));
    for (let i = 0; i < n; i++) bits[i] = roundPow2Bits(bits[i]);
  },
  fp8Stats: (out, src, fp8, n, op) => check(lib.fp8_cpu_fp8_stats(out.subarray(0, 1), out.subarray(1, 2), out.subarray(2, 3), src, fp8, n), op),
  castStats: (counts, sums, src, sd, srcFp8, fp8, scale, perRow, rows, cols, op) =>
    check(lib.fp8_cpu_cast_stats(counts.subarray(0, 1), counts.subarray(1, 2), sums.subarray(0, 1), sums.subarray(1, 2), src, sd, srcFp8, fp8, scale, perRow ? 1 : 0, rows, cols), op),
  syncAmaxHistory: (amax, history, scale, fp8, clamp, historyLen, op) => {
    const table = (ps: readonly NativePtr[]) => BigUint64Array.from(ps.map((p) => BigInt(p)));
    check(lib.fp8_cpu_sync_amax_history(table(amax), table(history), table(scale), fp8, clamp, amax.length, historyLen), op);
  },

  sgdStep: (p, g, buf, dtype, n, lr, mom, damp, wd, nesterov, first, op) =>
    check(lib.fp8_cpu_sgd_step(p, g, buf, dtype, n, lr, mom, damp, wd, nesterov, first), op),
  adamwStep: (p, g, m, v, dtype, n, lr, b1, b2, eps, wd, step, op) =>
    check(lib.fp8_cpu_adamw_step(p, g, m, v, dtype, n, lr, b1, b2, eps, wd, step), op),
};

/**
 * The f32 bits of 2^floor(log2(s)) for a finite positive normal s (clears the
 * mantissa: exact); any other value (zero, subnormal, inf, NaN, negative) unchanged.
 */
export function roundPow2Bits(bits: number): number {
  const exp = bits & 0x7f800000;
  if ((bits & 0x80000000) !== 0 || exp === 0 || exp === 0x7f800000) return bits;
  return (bits & 0xff800000) >>> 0;
}
