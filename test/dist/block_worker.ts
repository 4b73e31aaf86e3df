// block_worker.ts — run by test/distributed_block.test.ts under `mpirun -n 2`: the block-scaled
// recipes (blockwise, mxfp8) under FSDP (high-precision all-gather; the float8 all-gather is a
// tensorwise feature) against DDP of the same recipe, 5 SGD steps; and a tensor / sequence
// parallel SwiGLU FeedForward of block-scaled layers against one process of the same recipe, with
// the refusal of a split that would cut a block. Rank 0 prints RESULT lines.
import { nn, optim, float8, distributed as dist, manualSeed, randn, tidy, Tensor } from "../../src/index.ts";
import { FeedForward, parallelizeFeedForward, report, sqnr, tpStepVsOneProcess } from "./common.ts";

const { rank, worldSize } = dist.initProcessGroup({ backend: "mpi", timeoutMs: 60000 });
const localRows = (t: Tensor) => t.slice(0, rank * (t.shape[0] / worldSize), (rank + 1) * (t.shape[0] / worldSize));

for (const recipe of ["blockwise", "mxfp8"] as const) {
  const build = () => {
    manualSeed(1);
    const m = new nn.Sequential(new nn.Linear(128, 256, { bias: false }), new nn.ReLU(), new nn.Linear(256, 128, { bias: false }));
    return float8.convertToFloat8Training(m, { config: float8.Float8LinearConfig.fromRecipeName(recipe) }) as nn.Sequential;
  };
  const ddp = new dist.DistributedDataParallel(build());
  const fsdp = dist.fullyShard(build());
  const optDdp = new optim.SGD(ddp.parameters(), { lr: 0.05 });
  const opt = new optim.SGD(fsdp.parameters(), { lr: 0.05 });
  let error = "";
  try {
    for (let s = 0; s < 5; s++) {
      manualSeed(2000 + s);
      const x = randn([16, 128]), y = randn([16, 128]);
      tidy(() => {
        optDdp.zeroGrad();
        nn.mseLoss(ddp.forward(localRows(x)), localRows(y)).backward();
        optDdp.step();
        opt.zeroGrad();
        nn.mseLoss(fsdp.forward(localRows(x)), localRows(y)).backward();
        opt.step();
      });
      x.dispose();
      y.dispose();
    }
  } catch (e) {
    error = String(e);
  }
  let worst = Infinity;
  if (!error) {
    const fsdpParams = new Map(fsdp.namedParameters());
    for (const [fqn, p] of ddp.module.namedParameters()) {
      const whole = dist.allGather(fsdpParams.get(fqn)!).toArray().subarray(0, p.numel);
      worst = Math.min(worst, sqnr(p.toArray(), whole));
    }
  }
  if (rank === 0) report(`fsdp_${recipe}`, { sqnrVsDdp: Number.isFinite(worst) ? worst : 999, error });
}
// ---- tensor / sequence parallel FeedForward of block-scaled layers vs one process ----------
// D = 256, H = 512: on 2 ranks w1 / w3 keep 256 output rows and w2 256 input columns, whole
// 128-blocks (and 32-blocks), so each rank quantises exactly the blocks one process does.
const finite = (db: number) => (Number.isFinite(db) ? db : 999);
for (const recipe of ["blockwise", "mxfp8"] as const) {
  const config = float8.Float8LinearConfig.fromRecipeName(recipe);
  for (const sequenceParallel of [false, true]) {
    const B = 2, S = 8, D = 256, H = 512;
    const build = () => {
      manualSeed(3);
      return float8.convertToFloat8Training(new FeedForward(D, H, "bfloat16"), { config }) as FeedForward;
    };
    const ref = build(), tp = build();
    let error = "";
    const sqnrs: Record<string, number> = {};
    try {
      parallelizeFeedForward(tp, sequenceParallel, { Colwise: dist.Float8ColwiseParallel, Rowwise: dist.Float8RowwiseParallel, Prepare: dist.PrepareModuleInput });
      const { x, outRef, pairs } = tpStepVsOneProcess(ref, tp, { B, S, D, sequenceParallel });
      for (const [n, a, b] of pairs) sqnrs[n] = finite(sqnr(a, b));
      if (!sequenceParallel) {
        // the block quantisation is really in use: one process of the recipe against bf16
        manualSeed(3);
        const bf16 = new FeedForward(D, H, "bfloat16");
        sqnrs.refVsBf16 = finite(sqnr(bf16.forward(x).toArray(), outRef.toArray()));
      }
    } catch (e) {
      error = String(e);
    }
    if (rank === 0) report(`tp_${recipe}${sequenceParallel ? "_sp" : ""}`, { sqnrs, error });
  }
}

// A split that would cut blocks is refused on every rank: blockwise w1 with 64 output rows
// (32 per rank, 128-blocks) and w2 with 64 input columns.
for (const [name, plan] of [
  ["colwise", { w1: new dist.Float8ColwiseParallel() }],
  ["rowwise", { w2: new dist.Float8RowwiseParallel() }],
] as const) {
  manualSeed(5);
  const m = float8.convertToFloat8Training(new FeedForward(32, 64), { config: float8.Float8LinearConfig.fromRecipeName("blockwise") }) as FeedForward;
  let error = "", isFloat8Error = false;
  try {
    dist.parallelize(m, plan);
  } catch (e) {
    error = String(e);
    isFloat8Error = e instanceof Error && e.name === "Float8Error";
  }
  report(`tp_refused_${name}_rank${rank}`, { error, isFloat8Error });
}
dist.destroyProcessGroup();
