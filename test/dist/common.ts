// common.ts — models and helpers shared by the distributed test workers
// (run under mpirun by test/distributed.test.ts).
import { nn, Tensor, type HighPrecisionDType } from "../../src/index.ts";

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
