// parity_worker.ts — run by test/torchao_parity_dist.test.ts under `mpirun -n 2`:
// FSDP's float8 all-gather of a STATIC-scaled weight (torchao accepts it and
// gathers the weight as fp8 with its static scale) against DDP with the same config.
import { nn, optim, float8, distributed as dist, manualSeed, randn, tidy, Tensor } from "../../src/index.ts";
import { report, sqnr } from "./common.ts";

const { rank, worldSize } = dist.initProcessGroup({ backend: "mpi", timeoutMs: 60000 });
const localRows = (t: Tensor) => t.slice(0, rank * (t.shape[0] / worldSize), (rank + 1) * (t.shape[0] / worldSize));

const build = (enableFsdpFloat8AllGather: boolean) => {
  manualSeed(1);
  const m = new nn.Sequential(new nn.Linear(64, 128, { bias: false }), new nn.ReLU(), new nn.Linear(128, 64, { bias: false }));
  const config = new float8.Float8LinearConfig({
    castConfigWeight: new float8.CastConfig({ scalingType: float8.ScalingType.STATIC, staticScale: 1024 }),
    enableFsdpFloat8AllGather,
  });
  return float8.convertToFloat8Training(m, { config }) as nn.Sequential;
};
const ddp = new dist.DistributedDataParallel(build(false));
const fsdp = dist.fullyShard(build(true));
const [optDdp, optFsdp] = [ddp, fsdp].map((m) => new optim.SGD(m.parameters(), { lr: 0.05 }));
const losses: [number, number][] = [];
let gatherBytes = 0;
for (let s = 0; s < 4; s++) {
  manualSeed(100 + s);
  const x = randn([8, 64]), y = randn([8, 64]);
  const l = [ddp, fsdp].map((m, i) => tidy(() => {
    const opt = [optDdp, optFsdp][i];
    opt.zeroGrad();
    if (i === 1) dist.resetCollectiveStats();
    const loss = nn.mseLoss(m.forward(localRows(x)), localRows(y));
    loss.backward();
    if (i === 1) gatherBytes = dist.collectiveStats().allGather.bytes;
    opt.step();
    return loss.item();
  }));
  losses.push([l[0], l[1]]);
}
const fsdpParams = new Map(fsdp.namedParameters());
let worst = Infinity;
for (const [fqn, p] of ddp.module.namedParameters()) {
  worst = Math.min(worst, sqnr(p.toArray(), dist.allGather(fsdpParams.get(fqn)!).toArray().subarray(0, p.numel)));
}
if (rank === 0) {
  report("fsdp_static", {
    step0Equal: losses[0][0] === losses[0][1],
    losses,
    weightSqnr: Number.isFinite(worst) ? worst : 999,
    gatherBytes,
    weightElems: 64 * 128 * 2,
  });
}
dist.destroyProcessGroup();
