// block_worker.ts — run by test/distributed_block.test.ts under `mpirun -n 2`: the block-scaled
// recipes (blockwise, mxfp8) under FSDP (high-precision all-gather; the float8 all-gather is a
// tensorwise feature) against DDP of the same recipe, 5 SGD steps. Rank 0 prints RESULT lines.
import { nn, optim, float8, distributed as dist, manualSeed, randn, tidy, Tensor } from "../../src/index.ts";
import { report, sqnr } from "./common.ts";

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
dist.destroyProcessGroup();
