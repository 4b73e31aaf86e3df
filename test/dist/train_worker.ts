// train_worker.ts — run by test/distributed.test.ts under `mpirun -n 2`:
//   DDP against one process on the global batch, FSDP (float8 all-gather)
//   against DDP with the byte counts of the gathers, and the tensor/sequence
//   parallel FeedForward against one process. Rank 0 prints RESULT lines.
import { nn, optim, float8, distributed as dist, manualSeed, memoryStats, randn, tidy, Tensor } from "../../src/index.ts";
import { FeedForward, parallelizeFeedForward, report, sqnr, tpStepVsOneProcess } from "./common.ts";

const { rank, worldSize } = dist.initProcessGroup({ backend: "mpi", timeoutMs: 60000 });
const log = (name: string, v: unknown) => rank === 0 && report(name, v);
const finite = (db: number) => (Number.isFinite(db) ? db : 999);

/** Rows of this rank's half of a global batch. */
function localRows(t: Tensor): Tensor {
  const n = t.shape[0] / worldSize;
  return t.slice(0, rank * n, (rank + 1) * n);
}

function minWeightSqnr(ref: nn.Module, got: nn.Module): number {
  const refP = new Map(ref.namedParameters());
  let worst = Infinity;
  for (const [fqn, p] of got.namedParameters()) {
    const r = refP.get(fqn.replace(/^module\./, ""))!;
    worst = Math.min(worst, sqnr(r.toArray(), p.toArray()));
  }
  return finite(worst);
}

function batch(step: number, inDim: number, outDim: number, dtype: "float32" | "bfloat16" = "float32"): [Tensor, Tensor] {
  manualSeed(1000 + step);
  return [randn([8, inDim], { dtype }), randn([8, outDim], { dtype })];
}

// ---- DDP: 2 ranks x 4 rows == 1 process x 8 rows --------------------------
{
  const mlp = () => {
    manualSeed(0);
    return new nn.Sequential(new nn.Linear(32, 64), new nn.ReLU(), new nn.Linear(64, 16));
  };
  const ref = mlp();
  // a different init on rank 1 shows that DDP broadcasts rank 0's parameters
  if (rank === 1) manualSeed(7);
  const model = rank === 1 ? new nn.Sequential(new nn.Linear(32, 64), new nn.ReLU(), new nn.Linear(64, 16)) : mlp();
  const ddp = new dist.DistributedDataParallel(model, { bucketCapMB: 0.005 });
  const optRef = new optim.SGD(ref.parameters(), { lr: 0.1, momentum: 0.9 });
  const opt = new optim.SGD(ddp.parameters(), { lr: 0.1, momentum: 0.9 });
  dist.resetCollectiveStats();
  const live: number[] = [];
  for (let step = 0; step < 5; step++) {
    const [x, y] = batch(step, 32, 16);
    tidy(() => {
      optRef.zeroGrad();
      nn.mseLoss(ref.forward(x), y).backward();
      optRef.step();
      opt.zeroGrad();
      nn.mseLoss(ddp.forward(localRows(x)), localRows(y)).backward();
      opt.step();
    });
    x.dispose();
    y.dispose();
    live.push(memoryStats().liveBytes);
  }
  const stats = dist.collectiveStats();
  log("ddp", { sqnr: minWeightSqnr(ref, ddp), bucketsPerStep: stats.allReduce.calls / 5, liveBytesStep2: live[1], liveBytesStep5: live[4] });
}

// ---- FSDP with float8 all-gather vs DDP (both float8), and gather bytes ----
{
  const build = (enableFsdpFloat8AllGather: boolean) => {
    manualSeed(1);
    const m = new nn.Sequential(
      new nn.Linear(64, 128, { bias: false }), new nn.ReLU(),
      new nn.Linear(128, 128, { bias: false }), new nn.ReLU(),
      new nn.Linear(128, 64, { bias: false }),
    );
    const config = new float8.Float8LinearConfig({ enableFsdpFloat8AllGather });
    return float8.convertToFloat8Training(m, { config }) as nn.Sequential;
  };
  const lossStep = (m: nn.Module, x: Tensor, y: Tensor) => nn.mseLoss(m.forward(x), y).backward();

  const ddp = new dist.DistributedDataParallel(build(false));
  const optDdp = new optim.SGD(ddp.parameters(), { lr: 0.05 });
  const fsdp = dist.fullyShard(build(true));
  const opt = new optim.SGD(fsdp.parameters(), { lr: 0.05 });
  const perStep: { allGatherBytes: number; amaxAllReduces: number; liveBytes: number }[] = [];
  for (let s = 0; s < 5; s++) {
    const [x, y] = batch(s, 64, 64);
    tidy(() => {
      optDdp.zeroGrad();
      lossStep(ddp, localRows(x), localRows(y));
      optDdp.step();
    });
    dist.resetCollectiveStats();
    tidy(() => {
      opt.zeroGrad();
      lossStep(fsdp, localRows(x), localRows(y));
      opt.step();
      // from the second step on, every layer's scale comes from one MAX all-reduce
      if (s >= 1) dist.precomputeFloat8DynamicScaleForFsdp(fsdp);
    });
    const st = dist.collectiveStats();
    perStep.push({ allGatherBytes: st.allGather.bytes, amaxAllReduces: st.allReduce.calls, liveBytes: memoryStats().liveBytes });
    x.dispose();
    y.dispose();
  }
  // gather the shards back into whole weights to compare with DDP
  const fsdpParams = new Map(fsdp.namedParameters());
  let worst = Infinity;
  for (const [fqn, p] of ddp.module.namedParameters()) {
    const whole = dist.allGather(fsdpParams.get(fqn)!).toArray().subarray(0, p.numel);
    worst = Math.min(worst, sqnr(p.toArray(), whole));
  }

  // the same model gathering bf16 parameters (f32 master shards): the byte baseline
  const bf16 = dist.fullyShard(build(false), { mpPolicy: { paramDtype: "bfloat16" } });
  dist.resetCollectiveStats();
  const [x, y] = batch(0, 64, 64, "bfloat16");
  tidy(() => lossStep(bf16, localRows(x), localRows(y)));
  const bf16Bytes = dist.collectiveStats().allGather.bytes;
  log("fsdp", {
    sqnrVsDdp: finite(worst),
    fp8AllGatherBytesPerStep: perStep[2].allGatherBytes,
    bf16AllGatherBytesPerStep: bf16Bytes,
    ratio: perStep[2].allGatherBytes / bf16Bytes,
    amaxAllReducesPerStepWithoutPrecompute: perStep[0].amaxAllReduces,
    amaxAllReducesPerStepWithPrecompute: perStep[2].amaxAllReduces,
    liveBytesStep3: perStep[2].liveBytes,
    liveBytesStep5: perStep[4].liveBytes,
  });
}

// ---- delayed scaling: one cross-rank MAX all-reduce per sync, for all layers ----
{
  const delayed = new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED });
  const config = new float8.Float8LinearConfig({
    castConfigInput: delayed, castConfigWeight: delayed, castConfigGradOutput: delayed, enableFsdpFloat8AllGather: true,
  });
  const build = () => {
    manualSeed(2);
    const m = new nn.Sequential(new nn.Linear(32, 64, { bias: false }), new nn.ReLU(), new nn.Linear(64, 32, { bias: false }));
    return float8.convertToFloat8Training(m, { config }) as nn.Sequential;
  };
  const ref = build();
  const ddp = new dist.DistributedDataParallel(build());
  const fsdp = dist.fullyShard(build());
  const opts = { lr: 0.05 };
  const [optRef, optDdp, optFsdp] = [ref, ddp, fsdp].map((m) => new optim.SGD(m.parameters(), opts));
  let syncAllReduces = 0;
  for (let s = 0; s < 5; s++) {
    const [x, y] = batch(s, 32, 32);
    tidy(() => {
      for (const [m, opt, xs, ys] of [[ref, optRef, x, y], [ddp, optDdp, localRows(x), localRows(y)], [fsdp, optFsdp, localRows(x), localRows(y)]] as const) {
        opt.zeroGrad();
        nn.mseLoss(m.forward(xs), ys).backward();
        opt.step();
        const before = dist.collectiveStats().allReduce.calls;
        float8.syncFloat8AmaxAndScaleHistory(m);
        if (m === ddp) syncAllReduces = dist.collectiveStats().allReduce.calls - before;
      }
    });
    x.dispose();
    y.dispose();
  }
  // every rank holds the same scales after the sync
  const scales = Float32Array.from(float8.float8Layers(ddp).flatMap((l) => [l.scaling.input, l.scaling.weight, l.scaling.grad_output].map((st) => st.scale!.item())));
  const maxScales = dist.allReduceArray(scales.slice(), "max", { key: "delayed.scales" });
  const fsdpParams = new Map(fsdp.namedParameters());
  let fsdpWorst = Infinity;
  for (const [fqn, p] of ref.namedParameters()) {
    fsdpWorst = Math.min(fsdpWorst, sqnr(p.toArray(), dist.allGather(fsdpParams.get(fqn)!).toArray().subarray(0, p.numel)));
  }
  log("delayed", {
    syncAllReduces,
    layers: float8.float8Layers(ddp).length,
    scalesEqualOnAllRanks: scales.every((v, i) => v === maxScales[i]),
    ddpVsSingle: minWeightSqnr(ref, ddp),
    fsdpVsSingle: finite(fsdpWorst),
  });
}

// ---- tensor / sequence parallel SwiGLU FeedForward vs one process ----------
for (const recipe of ["bf16", "float8"] as const) {
  for (const sequenceParallel of [false, true]) {
    const B = 2, S = 8, D = 32, H = 64;
    const build = () => {
      manualSeed(3);
      const ffn = new FeedForward(D, H, "bfloat16");
      return recipe === "float8" ? (float8.convertToFloat8Training(ffn) as FeedForward) : ffn;
    };
    const ref = build();
    const tp = build();
    const f8 = recipe === "float8";
    parallelizeFeedForward(tp, sequenceParallel, f8
      ? { Colwise: dist.Float8ColwiseParallel, Rowwise: dist.Float8RowwiseParallel, Prepare: dist.PrepareFloat8ModuleInput }
      : { Colwise: dist.ColwiseParallel, Rowwise: dist.RowwiseParallel, Prepare: dist.PrepareModuleInput });
    const { x, out, pairs, forwardAllGatherBytes } = tpStepVsOneProcess(ref, tp, { B, S, D, sequenceParallel });
    const sqnrs = Object.fromEntries(pairs.map(([n, a, b]) => [n, finite(sqnr(a, b))]));
    log(`tp_${recipe}${sequenceParallel ? "_sp" : ""}`, { sqnrs, forwardAllGatherBytes });
    if (recipe === "float8" && !sequenceParallel) {
      // float8 is really in use: the output is much closer to one float8 process than to bf16
      manualSeed(3);
      const bf16 = new FeedForward(D, H, "bfloat16");
      log("tp_float8_vs_bf16", { output: sqnr(bf16.forward(x).toArray(), out.toArray()) });
    }
  }
}

dist.destroyProcessGroup();
