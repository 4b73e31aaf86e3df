// movement.ts — reshape, permute/transpose, slice, cat, expand: data movement
// through fp8_cpu_copy_strided (oneDNN reorder), each with its gradient rule.
import { Float8Error } from "../../errors.ts";
import { record } from "../../autograd/graph.ts";
import { fmtShape, normDim, numel, padShape, stridesOf, type Shape } from "../shape.ts";
import { Tensor } from "../tensor.ts";
import * as dev from "../device_ops.ts";
import { sumTo } from "./reduce.ts";

/** Copies a strided region of src (starting `srcOffset` elements in) into dst. */
export function copyRegion(
  dst: Tensor, dstOffset: number, dstStrides: readonly number[],
  src: Tensor, srcOffset: number, srcStrides: readonly number[],
  dims: readonly number[], op: string,
): void {
  if (numel(dims) === 0) return;
  const d = dims.length ? dims : [1];
  const ds = dims.length ? dstStrides : [1];
  const ss = dims.length ? srcStrides : [1];
  dev.copyStridedInto(dst, dstOffset, ds, src, srcOffset, ss, d, op);
}

/** Same data, new shape (one dim may be -1). Shares storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(s.filter((_, i) => i !== neg));
    if (rest === 0 || x.numel % rest !== 0) {
      throw new Float8Error("reshape", `cannot reshape ${fmtShape(x.shape)} (${x.numel} elements) to ${fmtShape(shape)}`);
    }
    s[neg] = x.numel / rest;
  }
  if (s.some((d) => !Number.isInteger(d) || d < 0) || numel(s) !== x.numel) {
    throw new Float8Error("reshape", `cannot reshape ${fmtShape(x.shape)} (${x.numel} elements) to ${fmtShape(shape)}`);
  }
  const out = x.shareWith(s);
  return record(out, "reshape", [x], (g) => [reshape(g, x.shape)]);
}

/**
 * reshape for a tensor the caller has just created and does not keep (a raw
 * GEMM output, say): the view takes over its storage, so disposing the view
 * frees the memory at once instead of at the next garbage collection.
 */
export function reshapeOwned(t: Tensor, shape: readonly number[]): Tensor {
  const v = reshape(t, shape);
  t.dispose();
  return v;
}

/** Inserts a size-1 dim at `dim` (torch.unsqueeze; -1 appends). */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim(dim, x.ndim + 1, "unsqueeze");
  return reshape(x, [...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
}

/** Removes size-1 dims: all of them, or only `dim` (torch.squeeze; a dim whose size is not 1 is kept). */
export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((s) => s !== 1));
  const d = normDim(dim, x.ndim, "squeeze");
  return x.shape[d] === 1 ? reshape(x, x.shape.filter((_, i) => i !== d)) : reshape(x, x.shape);
}

/** Collapses dims startDim..endDim into one. */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const a = normDim(startDim, x.ndim, "flatten");
  const b = normDim(endDim, x.ndim, "flatten");
  const shape = [...x.shape.slice(0, a), numel(x.shape.slice(a, b + 1)), ...x.shape.slice(b + 1)];
  return reshape(x, shape);
}

/** Reorders dims: out.shape[i] = x.shape[dims[i]]. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const n = x.ndim;
  const p = dims.map((d) => normDim(d, n, "permute"));
  if (p.length !== n || new Set(p).size !== n) {
    throw new Float8Error("permute", `dims ${fmtShape(dims)} are not a permutation of ${n} dims for shape ${fmtShape(x.shape)}`);
  }
  const outShape = p.map((d) => x.shape[d]);
  const out = Tensor.empty(outShape, x.dtype, x.device);
  const xs = stridesOf(x.shape);
  copyRegion(out, 0, stridesOf(outShape), x, 0, p.map((d) => xs[d]), outShape, "permute");
  const inverse = new Array<number>(n);
  p.forEach((d, i) => (inverse[d] = i));
  return record(out, "permute", [x], (g) => [permute(g, inverse)]);
}

/** Swaps two dims. */
export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  const p = [...x.shape.keys()];
  const a = normDim(d0, x.ndim, "transpose");
  const b = normDim(d1, x.ndim, "transpose");
  [p[a], p[b]] = [p[b], p[a]];
  return permute(x, p);
}

/** Elements start..end-1 along dim (negative indices count from the end). */
export function slice(x: Tensor, dim: number, start: number, end?: number): Tensor {
  const d = normDim(dim, x.ndim, "slice");
  const len = x.shape[d];
  const clampIdx = (i: number) => Math.min(Math.max(i < 0 ? i + len : i, 0), len);
  const s = clampIdx(start);
  const e = Math.max(s, clampIdx(end ?? len));
  if (!Number.isInteger(start) || (end !== undefined && !Number.isInteger(end))) {
    throw new Float8Error("slice", `start/end must be integers, got ${start}, ${end}`);
  }
  const outShape = [...x.shape];
  outShape[d] = e - s;
  const out = Tensor.empty(outShape, x.dtype, x.device);
  const xs = stridesOf(x.shape);
  copyRegion(out, 0, stridesOf(outShape), x, s * xs[d], xs, outShape, "slice");
  return record(out, "slice", [x], (g) => {
    const gx = x.zerosLike().to({ dtype: g.dtype });
    copyRegion(gx, s * xs[d], xs, g, 0, stridesOf(outShape), outShape, "slice.backward");
    return [gx];
  });
}

/** Joins tensors along dim; all other dims must match. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Float8Error("cat", "expects a non-empty list of tensors");
  const first = tensors[0];
  const d = normDim(dim, first.ndim, "cat");
  for (const t of tensors) {
    t.ptrFor("cat");
    const ok = t.ndim === first.ndim && t.dtype === first.dtype && t.shape.every((s, i) => i === d || s === first.shape[i]);
    if (!ok) {
      throw new Float8Error(
        "cat",
        `tensors must match except in dim ${d}: got shapes ${tensors.map((u) => fmtShape(u.shape)).join(", ")} and dtypes ${tensors.map((u) => u.dtype).join(", ")}`,
      );
    }
  }
  const outShape = [...first.shape];
  outShape[d] = tensors.reduce((a, t) => a + t.shape[d], 0);
  const out = Tensor.empty(outShape, first.dtype, first.device);
  const os = stridesOf(outShape);
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    copyRegion(out, offset * os[d], os, t, 0, stridesOf(t.shape), t.shape, "cat");
    offset += t.shape[d];
  }
  return record(out, "cat", tensors, (g) => tensors.map((t, i) => slice(g, d, offsets[i], offsets[i] + t.shape[d])));
}

/** Broadcasts x to `shape` (a copy; size-1 dims repeat). */
export function expand(x: Tensor, shape: Shape): Tensor {
  const target = [...shape];
  if (target.length < x.ndim) throw new Float8Error("expand", `cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  const padded = padShape(x.shape, target.length);
  const xs = stridesOf(padded);
  const srcStrides = padded.map((s, i) => {
    if (s === target[i]) return xs[i];
    if (s === 1) return 0;
    throw new Float8Error("expand", `cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  });
  const out = Tensor.empty(target, x.dtype, x.device);
  copyRegion(out, 0, stridesOf(target), x, 0, srcStrides, target, "expand");
  return record(out, "expand", [x], (g) => [sumTo(g, x.shape)]);
}
