// reduce.ts — sum, mean, max over dims (oneDNN reduction), and sumTo, the
// broadcast-undoing reduction that every broadcasting op's gradient uses.
import { Float8Error } from "../../errors.ts";
import { record } from "../../autograd/graph.ts";
import { normDim, padShape, sameShape, type Shape } from "../shape.ts";
import { Tensor, full, tensor } from "../tensor.ts";
import * as dev from "../device_ops.ts";
import { floatOperands } from "./common.ts";
import { expand, permute, reshape } from "./movement.ts";

const SUM = 0, MEAN = 1, MAX = 2;

function reduceDims(x: Tensor, dim: number | number[] | undefined, op: string): Set<number> {
  if (dim === undefined) return new Set(x.shape.keys());
  const dims = Array.isArray(dim) ? dim : [dim];
  return new Set(dims.map((d) => normDim(d, x.ndim, op)));
}

/** Native reduction to keepdim shape. */
function reduceRaw(x: Tensor, dims: Set<number>, alg: number, op: string): Tensor {
  floatOperands(op, x);
  const keepShape = x.shape.map((s, i) => (dims.has(i) ? 1 : s));
  if (x.numel === 0) {
    // torch: the sum of nothing is 0 and the mean NaN; a max has no identity
    if (alg === MAX) throw new Float8Error(op, `cannot take the max of an empty tensor of shape [${x.shape.join(", ")}]`);
    return full(keepShape, alg === SUM ? 0 : NaN, { dtype: x.dtype, device: x.device });
  }
  const out = Tensor.empty(keepShape, x.dtype, x.device);
  if (sameShape(keepShape, x.shape)) {
    out.assign(x.detach());
    return out;
  }
  dev.reduceInto(out, x, alg, op);
  return out;
}

function finish(x: Tensor, out: Tensor, dims: Set<number>, keepdim: boolean): Tensor {
  return keepdim ? out : reshape(out, x.shape.filter((_, i) => !dims.has(i)));
}

/** Sum over dims (all when omitted). */
export function sum(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  const dims = reduceDims(x, dim, "sum");
  const out = reduceRaw(x, dims, SUM, "sum");
  const keepShape = out.shape;
  record(out, "sum", [x], (g) => [expand(reshape(g, keepShape), x.shape)]);
  return finish(x, out, dims, keepdim);
}

/** Mean over dims (all when omitted). */
export function mean(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  const dims = reduceDims(x, dim, "mean");
  const out = reduceRaw(x, dims, MEAN, "mean");
  const count = x.numel / out.numel;
  const keepShape = out.shape;
  record(out, "mean", [x], (g) => [expand(reshape(g, keepShape), x.shape).mul(1 / count)]);
  return finish(x, out, dims, keepdim);
}

/** Max over dims (all when omitted). The gradient is shared evenly between ties. */
export function max(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  const dims = reduceDims(x, dim, "max");
  const out = reduceRaw(x, dims, MAX, "max");
  const keepShape = out.shape;
  record(out, "max", [x], (g) => {
    // mask = (x == max), normalised per reduced group, computed on the host
    const m = expand(out, x.shape).toArray();
    const xv = x.toArray();
    const eq = new Float32Array(x.numel);
    for (let i = 0; i < eq.length; i++) eq[i] = xv[i] === m[i] ? 1 : 0;
    const mask = tensor(eq, { shape: x.shape, device: x.device });
    const counts = reduceRaw(mask, dims, SUM, "max.backward");
    const ge = expand(reshape(g, keepShape), x.shape).to({ dtype: "float32" });
    const gx = ge.mul(mask).div(expand(counts, x.shape));
    return [gx.to({ dtype: x.dtype })];
  });
  return finish(x, out, dims, keepdim);
}

/** Sums g down to `shape` (undoes numpy broadcasting). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const padded = padShape(shape, g.ndim);
  const dims = new Set<number>();
  padded.forEach((s, i) => {
    if (s === 1 && g.shape[i] !== 1) dims.add(i);
  });
  const r = dims.size ? reduceRaw(g, dims, SUM, "sumTo") : g;
  return reshape(r, shape);
}

/**
 * Index of the largest value along dim (first one on ties; NaN counts as
 * largest, as in torch), as an int32 tensor without that dim. Not differentiable.
 */
export function argmax(x: Tensor, dim = -1): Tensor {
  const op = "argmax";
  dev.requireLive(x, op, "x");
  if (x.dtype === "int32") throw new Float8Error(op, `expects a float tensor, got dtype int32`);
  const d = normDim(dim, x.ndim, op);
  const size = x.shape[d] ?? 1;
  if (size === 0) throw new Float8Error(op, `cannot take argmax over an empty dim of shape [${x.shape.join(", ")}]`);
  // argmax along the last dim of a (rows, size) view: move dim d last first
  const last = d === x.ndim - 1 || x.ndim === 0 ? x : permute(x, [...x.shape.keys()].filter((i) => i !== d).concat([d]));
  const t = Tensor.empty(x.shape.filter((_, i) => i !== d), "int32", x.device);
  dev.argmaxInto(t, last, t.numel, size, op);
  if (last !== x) last.dispose();
  return t;
}
