// nn.ts — softmax, losses, normalisation, embedding and masked fill, with gradients.
import { Float8Error } from "../../errors.ts";
import { record } from "../../autograd/graph.ts";
import { hostReadsAllowed } from "../backend/index.ts";
import { fmtShape, normDim } from "../shape.ts";
import { Tensor } from "../tensor.ts";
import * as dev from "../device_ops.ts";
import { describe, floatOperands, indexData } from "./common.ts";
import { mean } from "./reduce.ts";
import { transpose } from "./movement.ts";
import { sub, mul } from "./elementwise.ts";

/** int32 indices as a tensor in `device` memory (what the embedding and loss kernels read). */
function indicesOn(idx: Int32Array, device: Tensor["device"]): Tensor {
  return Tensor.fromBytes(new Uint8Array(idx.buffer, idx.byteOffset, idx.byteLength), { shape: [idx.length], dtype: "int32", device });
}

function lastDimOp(x: Tensor, dim: number, op: string, fn: (x: Tensor) => Tensor): Tensor {
  const d = normDim(dim, x.ndim, op);
  if (d === x.ndim - 1) return fn(x);
  return transpose(fn(transpose(x, d, -1)), d, -1);
}

function softmaxImpl(x: Tensor, log: boolean): Tensor {
  const op = log ? "logSoftmax" : "softmax";
  floatOperands(op, x);
  const cols = x.shape[x.ndim - 1] ?? 1;
  const rows = cols === 0 ? 0 : x.numel / cols;
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  const r = { rows, cols };
  dev.softmaxInto(out, x, r, log, op);
  return record(out, op, [x], (g) => {
    const gx = Tensor.empty(x.shape, x.dtype, x.device);
    const gg = g.dtype === x.dtype ? g : g.to({ dtype: x.dtype });
    dev.softmaxBackwardInto(gx, gg, out, r, log, `${op}.backward`);
    return [gx];
  });
}

/** softmax along dim. */
export function softmax(x: Tensor, dim = -1): Tensor {
  return lastDimOp(x, dim, "softmax", (t) => softmaxImpl(t, false));
}

/** log(softmax(x)) along dim, computed stably. */
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return lastDimOp(x, dim, "logSoftmax", (t) => softmaxImpl(t, true));
}

/**
 * Mean cross entropy of logits (N, C) against int32 class targets (N), like
 * torch.nn.functional.cross_entropy; targets equal to ignoreIndex are skipped.
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor | Int32Array | readonly number[],
  opts: { ignoreIndex?: number } = {},
): Tensor {
  const op = "crossEntropy";
  floatOperands(op, logits);
  const C = logits.shape[logits.ndim - 1];
  const rows = logits.ndim === 0 ? 0 : logits.numel / C;
  const ignore = opts.ignoreIndex ?? -100;
  const be = logits.backend;
  if (!hostReadsAllowed() && targets instanceof Tensor && targets.device === logits.device) {
    // Inside a CUDA-graph capture nothing crosses to the host, so the targets are used where they
    // are: the kernels check them (a target out of range and not ignoreIndex gives a NaN loss and is
    // recorded on the device; the next download or synchronize throws it, see backend/cuda.ts).
    if (targets.dtype !== "int32" || logits.ndim < 1 || targets.numel !== rows) {
      throw new Float8Error(op, `logits ${fmtShape(logits.shape)} (${logits.dtype}) need ${rows} int32 targets, got ${fmtShape(targets.shape)} ${targets.dtype}`);
    }
    return crossEntropyOn(logits, targets, rows, C, ignore, false);
  }
  const tgt = indexData(targets, op);
  if (logits.ndim < 1 || tgt.length !== rows) {
    throw new Float8Error(op, `logits ${fmtShape(logits.shape)} (${logits.dtype}) need ${rows} int32 targets, got ${tgt.length}`);
  }
  if (!be.hostAccessible) {
    // the device kernels skip bad targets silently: refuse them here (the CPU's own check says the same)
    for (let r = 0; r < rows; r++) {
      const t = tgt[r];
      if (t !== ignore && !(t >= 0 && t < C)) {
        throw new Float8Error(op, `target ${t} at row ${r} is out of range [0, ${C}) and is not ignoreIndex (${ignore}); logits ${describe(logits)}`);
      }
    }
  }
  return crossEntropyOn(logits, indicesOn(tgt, logits.device), rows, C, ignore, true);
}

/** crossEntropy's kernels, the targets already int32 on the logits' device. */
function crossEntropyOn(logits: Tensor, targetsOnDevice: Tensor, rows: number, C: number, ignore: number, ownsTargets: boolean): Tensor {
  const op = "crossEntropy";
  const logp = Tensor.empty(logits.shape, logits.dtype, logits.device);
  const out = Tensor.empty([], "float32", logits.device);
  const r = { rows, cols: C };
  dev.crossEntropyInto(out, logp, logits, targetsOnDevice, r, ignore, op);
  const result = logits.dtype === "float32" ? out : out.to({ dtype: logits.dtype });
  return record(result, op, [logits], (g) => {
    // the upstream gradient stays on the device: the kernel reads it there
    const dl = g.dtype === "float32" ? g : g.to({ dtype: "float32" });
    const gx = Tensor.empty(logits.shape, logits.dtype, logits.device);
    dev.crossEntropyBackwardInto(gx, logp, targetsOnDevice, dl, r, ignore, `${op}.backward`);
    return [gx];
  }, () => [logp, ...(out !== result ? [out] : []), ...(ownsTargets ? [targetsOnDevice] : [])]);
}

/** Mean squared error (mean reduction), like torch.nn.functional.mse_loss. */
export function mseLoss(input: Tensor, target: Tensor): Tensor {
  if (input.numel !== target.numel || input.ndim !== target.ndim || input.shape.some((d, i) => d !== target.shape[i])) {
    throw new Float8Error("mseLoss", `input and target shapes differ (${describe(input, target)})`);
  }
  const d = sub(input, target);
  return mean(mul(d, d));
}

function normArgs(op: string, x: Tensor, weight: Tensor | null, bias: Tensor | null): { rows: number; cols: number } {
  const ts = [x, weight, bias].filter((t): t is Tensor => !!t);
  floatOperands(op, ...ts);
  if (x.ndim < 1) throw new Float8Error(op, `input must have at least 1 dim, got ${describe(x)}`);
  const cols = x.shape[x.ndim - 1];
  for (const p of [weight, bias]) {
    if (p && (p.ndim !== 1 || p.shape[0] !== cols)) {
      throw new Float8Error(op, `weight/bias must have shape [${cols}] for input of ${describe(x)}; got ${describe(p)}`);
    }
  }
  // rows from the leading dims: a [2, 0] input has 2 rows of 0 (not 0 / 0)
  return { rows: x.shape.slice(0, -1).reduce((a, b) => a * b, 1), cols };
}

/** Layer norm over the last dim (oneDNN), like F.layer_norm(x, [C], weight, bias, eps). */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const op = "layerNorm";
  const { rows, cols } = normArgs(op, x, weight, bias);
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  const meanBuf = Tensor.empty([rows], "float32", x.device);
  const rstd = Tensor.empty([rows], "float32", x.device);
  const r = { rows, cols };
  dev.layerNormInto({ out, mean: meanBuf, rstd }, x, weight, bias, r, eps, op);
  return record(out, op, [x, weight, bias], (g) => {
    if (x.numel === 0) return [x.zerosLike(), weight?.zerosLike() ?? null, bias?.zerosLike() ?? null];
    const gg = g.dtype === x.dtype ? g : g.to({ dtype: x.dtype });
    const gx = Tensor.empty(x.shape, x.dtype, x.device);
    const gw = weight ? Tensor.empty(weight.shape, weight.dtype, x.device) : null;
    const gb = bias ? Tensor.empty(bias.shape, bias.dtype, x.device) : null;
    dev.layerNormBackwardInto({ dsrc: gx, dgamma: gw, dbeta: gb }, gg, x, meanBuf, rstd, weight, r, `${op}.backward`);
    return [gx, gw, gb];
  }, () => [meanBuf, rstd]);
}

/** RMS norm over the last dim: x / sqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: Tensor, weight: Tensor | null = null, eps = 1e-6): Tensor {
  const op = "rmsNorm";
  const { rows, cols } = normArgs(op, x, weight, null);
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  const rstd = Tensor.empty([rows], "float32", x.device);
  const r = { rows, cols };
  dev.rmsNormInto({ out, rstd }, x, weight, r, eps, op);
  return record(out, op, [x, weight], (g) => {
    if (x.numel === 0) return [x.zerosLike(), weight?.zerosLike() ?? null];
    const gg = g.dtype === x.dtype ? g : g.to({ dtype: x.dtype });
    const gx = Tensor.empty(x.shape, x.dtype, x.device);
    const gw = weight ? Tensor.empty(weight.shape, weight.dtype, x.device) : null;
    dev.rmsNormBackwardInto({ dsrc: gx, dgamma: gw }, gg, x, rstd, weight, r, `${op}.backward`);
    return [gx, gw];
  }, () => [rstd]);
}

/** Rows of weight (num, dim) picked by int32 indices: out (...idx.shape, dim). */
export function embedding(indices: Tensor | Int32Array | readonly number[], weight: Tensor): Tensor {
  const op = "embedding";
  floatOperands(op, weight);
  if (weight.ndim !== 2) throw new Float8Error(op, `weight must be 2-D (num, dim), got ${describe(weight)}`);
  const [num, dim] = weight.shape;
  let idxOnDevice: Tensor;
  if (!hostReadsAllowed() && indices instanceof Tensor && indices.device === weight.device) {
    // Inside a CUDA-graph capture nothing crosses to the host, so the indices are used where they
    // are: the kernels check them (an index out of range reads a zero row, gets no gradient and is
    // recorded on the device; the next download or synchronize throws it, see backend/cuda.ts).
    if (indices.dtype !== "int32") throw new Float8Error(op, `indices must be int32, got dtype ${indices.dtype}`);
    idxOnDevice = indices;
  } else {
    const idx = indexData(indices, op);
    for (let i = 0; i < idx.length; i++) {
      if (!(idx[i] >= 0 && idx[i] < num)) throw new Float8Error(op, `index ${idx[i]} at position ${i} is out of range for weight ${describe(weight)}`);
    }
    idxOnDevice = indicesOn(idx, weight.device);
  }
  const n = idxOnDevice.numel;
  const idxShape = indices instanceof Tensor ? indices.shape : [n];
  const out = Tensor.empty([...idxShape, dim], weight.dtype, weight.device);
  dev.embeddingInto(out, weight, idxOnDevice, op);
  return record(out, op, [weight], (g) => {
    const gg = g.dtype === weight.dtype ? g : g.to({ dtype: weight.dtype });
    const gw = weight.zerosLike();
    dev.embeddingBackwardInto(gw, gg, idxOnDevice, `${op}.backward`);
    return [gw];
  }, () => (idxOnDevice === indices ? [] : [idxOnDevice]));
}

/**
 * A mask's 0/1 bytes in `device` memory, as a 1-byte-per-element tensor. A
 * mask that already lives on a device (a causal mask reused every forward) is
 * converted once and cached with it, so later calls move no data.
 */
const maskCache = new WeakMap<Tensor, { ptr: number; device: string; bytes: Tensor }>();
function maskBytes(mask: Tensor, device: Tensor["device"]): Tensor {
  const cacheable = !mask.backend.hostAccessible;
  const hit = cacheable ? maskCache.get(mask) : undefined;
  if (hit && hit.ptr === mask.ptrFor("maskedFill") && hit.device === device && !hit.bytes.isDisposed) return hit.bytes;
  const m = mask.dtype === "int32" ? mask.toInt32Array() : mask.toArray();
  const bytes = new Uint8Array(m.length);
  for (let i = 0; i < m.length; i++) bytes[i] = m[i] !== 0 ? 1 : 0;
  const t = Tensor.fromBytes(bytes, { shape: [bytes.length], dtype: "float8_e4m3fn", device });
  if (cacheable) {
    t.keep();
    maskCache.set(mask, { ptr: mask.ptrFor("maskedFill"), device, bytes: t });
  }
  return t;
}

/**
 * Where mask is true, value; elsewhere x. The mask (float or int32, nonzero =
 * true) broadcasts over x's leading dims: its shape must equal x's trailing dims.
 */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  const op = "maskedFill";
  floatOperands(op, x);
  const trailing = x.shape.slice(x.ndim - mask.ndim);
  if (mask.ndim > x.ndim || mask.shape.some((d, i) => d !== trailing[i])) {
    throw new Float8Error(op, `mask shape ${fmtShape(mask.shape)} must match the trailing dims of ${describe(x)}`);
  }
  dev.sameDevice(op, x, mask);
  const maskOnDevice = maskBytes(mask, x.device);
  const fill = (src: Tensor, v: number, name: string) => {
    const out = Tensor.empty(src.shape, src.dtype, src.device);
    dev.maskedFillInto(out, src, maskOnDevice, v, name);
    return out;
  };
  const out = fill(x, value, op);
  return record(out, op, [x], (g) => [fill(g.dtype === x.dtype ? g : g.to({ dtype: x.dtype }), 0, `${op}.backward`)]);
}

