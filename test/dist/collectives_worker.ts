// collectives_worker.ts — run by test/distributed.test.ts under `mpirun -n 3`
// (an odd world size takes the reduce-scatter + all-gather path of all-reduce):
// every collective against values computed locally. Each rank prints its checks.
import { distributed as dist, tensor, type Tensor } from "../../src/index.ts";
import { report } from "./common.ts";

const { rank, worldSize: ws } = dist.initProcessGroup({ timeoutMs: 30000 });
const checks: Record<string, boolean> = {};
const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 0) =>
  a.length === b.length && Array.from(a).every((v, i) => Math.abs(v - b[i]) <= tol * Math.max(1, Math.abs(b[i])));
const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

// element i on rank r is r + i / 8 (exact in bf16 for these sizes); 7 elements: not a multiple of 3
for (const dtype of ["float32", "bfloat16"] as const) {
  const mine = () => tensor(range(7, (i) => rank + i / 8), { dtype });
  const sum = dist.allReduce(mine(), "sum", { key: `sum.${dtype}` }).toArray();
  checks[`allReduce sum ${dtype}`] = near(sum, range(7, (i) => (ws * (ws - 1)) / 2 + (ws * i) / 8));
  const avg = dist.allReduce(mine(), "avg", { key: `avg.${dtype}` }).toArray();
  checks[`allReduce avg ${dtype}`] = near(avg, range(7, (i) => (ws - 1) / 2 + i / 8), 1e-2);
  const max = dist.allReduce(mine(), "max", { key: `max.${dtype}` }).toArray();
  checks[`allReduce max ${dtype}`] = near(max, range(7, (i) => ws - 1 + i / 8));
}
const nan = dist.allReduce(tensor([rank === 1 ? NaN : 1, 2]), "max", { key: "max.nan" }).toArray();
checks["allReduce max keeps a NaN from any rank"] = Number.isNaN(nan[0]) && nan[1] === 2;

// all-gather of raw fp8 bytes: rank order, one byte an element
const fp8 = tensor([rank, rank + 0.5], { dtype: "float8_e4m3fn" });
const gathered: Tensor = dist.allGather(fp8, { key: "gather.fp8" });
checks["allGather float8 in rank order"] = gathered.dtype === "float8_e4m3fn" && near(gathered.toArray(), range(2 * ws, (i) => Math.floor(i / 2) + (i % 2) / 2));

// reduce-scatter: every rank holds 0..3ws-1 times (rank + 1); rank r keeps block r of the sum
const rsIn = tensor(range(3 * ws, (i) => i * (rank + 1)), { shape: [ws, 3] });
const rs = dist.reduceScatter(rsIn, "sum", { key: "rs" }).toArray();
const factor = (ws * (ws + 1)) / 2;
checks["reduceScatter keeps this rank's block of the sum"] = near(rs, range(3, (i) => (rank * 3 + i) * factor));

// broadcast from the last rank
const b = dist.broadcast(tensor([rank, rank * 2]), ws - 1, { key: "bcast" }).toArray();
checks["broadcast from the last rank"] = near(b, [ws - 1, 2 * (ws - 1)]);

// gather / reduce-scatter along a middle dim (sequence parallel's layout)
const x = tensor(range(2 * 2 * 3, (i) => i + 100 * rank), { shape: [2, 2, 3] });
const xg = dist.gatherAlongDim(x, 1, "gather.dim1");
const expectG = range(2 * 2 * ws * 3, (i) => {
  const b0 = Math.floor(i / (2 * ws * 3)), s = Math.floor(i / 3) % (2 * ws), c = i % 3;
  return b0 * 6 + (s % 2) * 3 + c + 100 * Math.floor(s / 2);
});
checks["gatherAlongDim(1) concatenates in rank order"] = xg.shape.join() === `2,${2 * ws},3` && near(xg.toArray(), expectG);
const back = dist.reduceScatterAlongDim(xg, 1, "rs.dim1").toArray();
checks["reduceScatterAlongDim(1) inverts the gather up to the sum over ranks"] = near(back, x.toArray().map((v) => v * ws));

const stats = dist.collectiveStats();
checks["byte counters count this rank's payload"] = stats.allGather.bytes === 2 + 2 * 2 * 3 * 4 && stats.broadcast.calls === 1;
report(`collectives_rank${rank}`, checks);
dist.destroyProcessGroup();
