// common.ts — models and helpers shared by the distributed test workers
// (run under mpirun by test/distributed.test.ts).
import { nn, distributed as dist, manualSeed, randn, Tensor, type HighPrecisionDType } from "../../src/index.ts";

/** SwiGLU feed-forward w2(silu(w1 x) * w3 x), the tensor-parallel example of torchao's tests. */
export class FeedForward extends nn.Module {
  w1: nn.Linear;
  w2: nn.Linear;
  w3: nn.Linear;
  constructor(dim: number, hidden: number, dtype: HighPrecisionDType = "float32") {
    super();
    this.w1 = this.registerModule("w1", new nn.Linear(dim, hidden, { bias: false, dtype }));
    this.w2 = this.registerModule("w2", new nn.Linear(hidden, dim, { bias: false, dtype }));
    this.w3 = this.registerModule("w3", new nn.Linear(dim, hidden, { bias: false, dtype }));
  }
  forward(x: Tensor): Tensor {
    return this.w2.forward(this.w1.forward(x).silu().mul(this.w3.forward(x)));
  }
}

/** SQNR in dB of y against the reference x over flat values: 20 log10(|x| / |x - y|). */
export function sqnr(x: Float32Array, y: Float32Array): number {
  if (x.length !== y.length) throw new Error(`sqnr: lengths differ (${x.length} vs ${y.length})`);
  let num = 0, den = 0;
  for (let i = 0; i < x.length; i++) {
    num += x[i] * x[i];
    den += (x[i] - y[i]) ** 2;
  }
  return den === 0 ? Infinity : 10 * Math.log10(num / den);
}

/** Rows [start, end) of dim `dim` of a tensor's values. */
export function sliceValues(t: Tensor, dim: number, start: number, end: number): Float32Array {
  return t.slice(dim, start, end).toArray();
}

/** Prints one result line the test parses: RESULT <name> <json>. */
export function report(name: string, value: unknown): void {
  console.log(`RESULT ${name} ${JSON.stringify(value)}`);
}

/** The styles of a FeedForward's tensor-parallel plan: plain or float8 column-wise, row-wise and input preparation. */
export interface TpStyles {
  Colwise: new () => dist.ParallelStyle;
  Rowwise: new (o?: { outputLayouts?: dist.Placement }) => dist.ParallelStyle;
  Prepare: new (o: { inputLayouts: dist.Placement; desiredInputLayouts: dist.Placement }) => dist.ParallelStyle;
}

/** Parallelizes a FeedForward as torchao's tests do: w1 / w3 column-wise, w2 row-wise; sequence parallel shards the input and output along dim 1. */
export function parallelizeFeedForward(m: FeedForward, sequenceParallel: boolean, st: TpStyles): void {
  dist.parallelize(m, {
    ...(sequenceParallel ? { "": new st.Prepare({ inputLayouts: dist.Shard(1), desiredInputLayouts: dist.Replicate() }) } : {}),
    w1: new st.Colwise(),
    w3: new st.Colwise(),
    w2: new st.Rowwise(sequenceParallel ? { outputLayouts: dist.Shard(1) } : {}),
  });
}

/** What tpStepVsOneProcess returns: the batch, both outputs, and this rank's part of each compared value. */
export interface TpStep {
  x: Tensor;
  outRef: Tensor;
  out: Tensor;
  /** name, one process's values (this rank's part), the parallel module's values */
  pairs: [string, Float32Array, Float32Array][];
  /** bytes all-gathered during the parallel forward */
  forwardAllGatherBytes: number;
}

/**
 * One forward + backward of a tensor-parallel FeedForward `tp` (w1 / w3 column-wise, w2 row-wise) against
 * the same model `ref` in one process: ref takes the whole (B, S, D) batch, tp this rank's share (its
 * S / worldSize slice under sequence parallelism), both the same output gradient. Returns, for output,
 * grad_input and the three weight gradients, this rank's part of ref's values beside tp's.
 */
export function tpStepVsOneProcess(ref: FeedForward, tp: FeedForward, o: { B: number; S: number; D: number; sequenceParallel: boolean }): TpStep {
  const rank = dist.getRank(), worldSize = dist.getWorldSize();
  manualSeed(4);
  const x = randn([o.B, o.S, o.D], { dtype: "bfloat16" });
  const gOut = randn([o.B, o.S, o.D], { dtype: "bfloat16" });
  const mine = (t: Tensor, dim: number) => t.slice(dim, rank * (t.shape[dim]! / worldSize), (rank + 1) * (t.shape[dim]! / worldSize));
  const local = (t: Tensor) => (o.sequenceParallel ? mine(t, 1) : t);

  const xr = x.detach();
  xr.requiresGrad = true;
  const outRef = ref.forward(xr);
  outRef.backward(gOut);

  const xl = local(x).detach();
  xl.requiresGrad = true;
  dist.resetCollectiveStats();
  const out = tp.forward(xl);
  const forwardAllGatherBytes = dist.collectiveStats().allGather.bytes;
  out.backward(local(gOut));

  const pairs: [string, Float32Array, Float32Array][] = [
    ["output", local(outRef).toArray(), out.toArray()],
    ["gradInput", local(xr.grad!).toArray(), xl.grad!.toArray()],
    ["w1.grad", mine(ref.w1.weight.grad!, 0).toArray(), tp.w1.weight.grad!.toArray()],
    ["w3.grad", mine(ref.w3.weight.grad!, 0).toArray(), tp.w3.weight.grad!.toArray()],
    ["w2.grad", mine(ref.w2.weight.grad!, 1).toArray(), tp.w2.weight.grad!.toArray()],
  ];
  return { x, outRef, out, pairs, forwardAllGatherBytes };
}
