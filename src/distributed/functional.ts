// functional.ts — collectives along any dim, and the differentiable
// collectives tensor and sequence parallelism are built from (Megatron-LM's
// mappings). Each autograd Function states its forward and its backward:
//
//   copyToParallelRegion          x -> x               g -> allReduce(g)
//   reduceFromParallelRegion      x -> allReduce(x)    g -> g
//   gatherFromSequenceParallel    x -> gather(x, d)    g -> reduceScatter(g, d)
//   reduceScatterToSequenceParallel x -> reduceScatter(x, d)  g -> gather(g, d)
//   gatherFromParallelRegion      x -> gather(x, d)    g -> own chunk of g along d
//   splitToParallelRegion         x -> own chunk       g -> gather(g, d)
import { Float8Error } from "../errors.ts";
import { Function, noGrad, type FunctionCtx } from "../autograd/graph.ts";
import { fmtShape } from "../tensor/shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { permute, reshape, slice } from "../tensor/ops/movement.ts";
import { allGather, allReduce, getRank, getWorldSize, reduceScatter } from "./process_group.ts";

function normDim(dim: number, ndim: number, op: string): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= ndim) throw new Float8Error(op, `dim ${dim} is out of range for ${ndim} dims`);
  return d;
}

/** Concatenation of t over ranks along `dim` (rank order). Not differentiable. */
export function gatherAlongDim(t: Tensor, dim: number, key?: string): Tensor {
  return noGrad(() => {
    const ws = getWorldSize();
    const d = normDim(dim, t.ndim, "gatherAlongDim");
    const gathered = allGather(t, { key });
    if (d === 0) return gathered;
    // [ws * a0, ...] viewed as [ws, a0, ..., an-1]; move the rank axis in front of dim d
    const order = [...Array(t.ndim + 1).keys()].slice(1);
    order.splice(d, 0, 0);
    const stacked = view(gathered, [ws, ...t.shape]);
    const moved = permute(stacked, order);
    stacked.dispose();
    const shape = [...t.shape];
    shape[d] *= ws;
    return view(moved, shape);
  });
}

/** reshape that gives up the caller's reference to an intermediate `t`. */
function view(t: Tensor, shape: readonly number[]): Tensor {
  const v = reshape(t, shape);
  t.dispose();
  return v;
}

/** Sum (or avg) over ranks of t, keeping this rank's chunk along `dim`. Not differentiable. */
export function reduceScatterAlongDim(t: Tensor, dim: number, key?: string, op: "sum" | "avg" = "sum"): Tensor {
  return noGrad(() => {
    const ws = getWorldSize();
    const d = normDim(dim, t.ndim, "reduceScatterAlongDim");
    if (t.shape[d] % ws !== 0) {
      throw new Float8Error("reduceScatterAlongDim", `dim ${d} of shape ${fmtShape(t.shape)} must divide by the world size ${ws}`);
    }
    const chunk = t.shape[d] / ws;
    const outShape = [...t.shape];
    outShape[d] = chunk;
    // [..., ws * chunk, ...] -> [ws, ..., chunk, ...] so each rank's block is contiguous
    const order = [...Array(t.ndim + 1).keys()];
    order.splice(d, 1);
    let front: Tensor;
    if (d === 0) {
      front = reshape(t, t.shape);
    } else {
      const split = reshape(t, [...t.shape.slice(0, d), ws, chunk, ...t.shape.slice(d + 1)]);
      front = permute(split, [d, ...order]);
      split.dispose();
    }
    const flat = view(front, [ws, t.numel / ws]);
    const out = reduceScatter(flat, op, { key });
    flat.dispose();
    return view(out, outShape);
  });
}

/** This rank's chunk of t along `dim`. */
export function chunkAlongDim(t: Tensor, dim: number): Tensor {
  return noGrad(() => {
    const ws = getWorldSize();
    const d = normDim(dim, t.ndim, "chunkAlongDim");
    if (t.shape[d] % ws !== 0) throw new Float8Error("chunkAlongDim", `dim ${d} of shape ${fmtShape(t.shape)} must divide by the world size ${ws}`);
    const c = t.shape[d] / ws;
    return slice(t, d, getRank() * c, (getRank() + 1) * c);
  });
}

/** A new tensor object over the same storage (autograd needs a distinct output). */
function alias(x: Tensor): Tensor {
  return reshape(x, x.shape);
}

class CopyToParallelRegion extends Function {
  forward(ctx: FunctionCtx, x: Tensor, key: string): Tensor {
    ctx.data.key = key;
    return alias(x);
  }
  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    return [allReduce(g.detach(), "sum", { key: `${ctx.data.key}.bwd` }), null];
  }
}

class ReduceFromParallelRegion extends Function {
  forward(_ctx: FunctionCtx, x: Tensor, key: string): Tensor {
    return allReduce(x.detach(), "sum", { key });
  }
  backward(_ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    return [alias(g), null];
  }
}

class GatherFromSequenceParallel extends Function {
  forward(ctx: FunctionCtx, x: Tensor, dim: number, key: string): Tensor {
    Object.assign(ctx.data, { dim, key });
    return gatherAlongDim(x, dim, key);
  }
  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    return [reduceScatterAlongDim(g, ctx.data.dim as number, `${ctx.data.key}.bwd`), null, null];
  }
}

class ReduceScatterToSequenceParallel extends Function {
  forward(ctx: FunctionCtx, x: Tensor, dim: number, key: string): Tensor {
    Object.assign(ctx.data, { dim, key });
    return reduceScatterAlongDim(x, dim, key);
  }
  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    return [gatherAlongDim(g, ctx.data.dim as number, `${ctx.data.key}.bwd`), null, null];
  }
}

class GatherFromParallelRegion extends Function {
  forward(ctx: FunctionCtx, x: Tensor, dim: number, key: string): Tensor {
    ctx.data.dim = dim;
    return gatherAlongDim(x, dim, key);
  }
  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    return [chunkAlongDim(g, ctx.data.dim as number), null, null];
  }
}

class SplitToParallelRegion extends Function {
  forward(ctx: FunctionCtx, x: Tensor, dim: number, key: string): Tensor {
    Object.assign(ctx.data, { dim, key });
    return chunkAlongDim(x, dim);
  }
  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    return [gatherAlongDim(g, ctx.data.dim as number, `${ctx.data.key}.bwd`), null, null];
  }
}

/** Identity forward; all-reduces the gradient (a replicated input of a column-parallel layer). */
export function copyToParallelRegion(x: Tensor, key = "tp.copy"): Tensor {
  return CopyToParallelRegion.apply(x, key);
}

/** All-reduces partial sums forward (a row-parallel layer's output); identity backward. */
export function reduceFromParallelRegion(x: Tensor, key = "tp.reduce"): Tensor {
  return ReduceFromParallelRegion.apply(x, key);
}

/** Gathers a sequence-sharded activation along dim; reduce-scatters its gradient. */
export function gatherFromSequenceParallel(x: Tensor, dim = 1, key = "sp.gather"): Tensor {
  return GatherFromSequenceParallel.apply(x, dim, key);
}

/** Reduce-scatters partial sums along dim (sequence parallel output); gathers the gradient. */
export function reduceScatterToSequenceParallel(x: Tensor, dim = 1, key = "sp.reduceScatter"): Tensor {
  return ReduceScatterToSequenceParallel.apply(x, dim, key);
}

/** Gathers a sharded output into a replicated one; the gradient keeps this rank's chunk. */
export function gatherFromParallelRegion(x: Tensor, dim = -1, key = "tp.gather"): Tensor {
  return GatherFromParallelRegion.apply(x, dim, key);
}

/** Keeps this rank's chunk of a replicated input; gathers the gradient. */
export function splitToParallelRegion(x: Tensor, dim = -1, key = "tp.split"): Tensor {
  return SplitToParallelRegion.apply(x, dim, key);
}
