// device_worker.ts — run by test/distributed.test.ts under `mpirun -n 2`: DDP,
// FSDP with the float8 all-gather, and float8 tensor/sequence parallel on
// device tensors, against the same programs on CPU tensors. The device is the
// emulated one (src/tensor/backend/emulated.ts: host memory JS cannot view,
// kernels that refuse host pointers), so the distributed code's device paths
// run here; its results must equal the CPU's bit for bit. Rank 0 prints RESULT lines.
import { nn, optim, float8, distributed as dist, manualSeed, randn, tidy, type Device, type Tensor } from "../../src/index.ts";
import { emulatedDeviceBackend, setBackend } from "../../src/tensor/backend/index.ts";
import { FeedForward, report } from "./common.ts";

setBackend("cuda", emulatedDeviceBackend("cuda"));
const { rank, worldSize } = dist.initProcessGroup({ backend: "mpi", timeoutMs: 60000 });

/** Every tensor's bytes, for a bit-for-bit comparison. */
const bytesOf = (ts: Tensor[]) => ts.map((t) => [...t.bytes()]);

function batch(step: number, device: Device): [Tensor, Tensor] {
  manualSeed(1000 + step);
  const x = randn([8, 32]), y = randn([8, 16]);
  const rows = (t: Tensor) => t.slice(0, (rank * 8) / worldSize, ((rank + 1) * 8) / worldSize).to({ device });
  return [rows(x), rows(y)];
}

function mlp(f8: boolean, fsdpFloat8: boolean): nn.Module {
  manualSeed(0);
  const m = new nn.Sequential(new nn.Linear(32, 64), new nn.ReLU(), new nn.Linear(64, 16));
  // padInnerDim: 4 rows per rank are the inner dim of the grad_weight GEMM (the GPU's fp8 GEMM needs 16)
  return f8 ? float8.convertToFloat8Training(m, { config: new float8.Float8LinearConfig({ enableFsdpFloat8AllGather: fsdpFloat8, padInnerDim: true }) }) : m;
}

function train(kind: "ddp" | "fsdp", device: Device): number[][] {
  const model = mlp(kind === "fsdp", kind === "fsdp").to({ device });
  const wrapped = kind === "ddp" ? new dist.DistributedDataParallel(model, { bucketCapMB: 0.005 }) : dist.fullyShard(model);
  const opt = new optim.SGD(wrapped.parameters(), { lr: 0.05, momentum: 0.9 });
  for (let s = 0; s < 4; s++) {
    const [x, y] = batch(s, device);
    tidy(() => {
      opt.zeroGrad();
      nn.mseLoss(wrapped.forward(x), y).backward();
      opt.step();
      if (kind === "fsdp" && s >= 1) dist.precomputeFloat8DynamicScaleForFsdp(wrapped);
    });
  }
  for (const p of wrapped.parameters()) if (p.device !== device) throw new Error(`${kind}: a parameter moved to ${p.device}`);
  return bytesOf(wrapped.parameters());
}

function tensorParallel(sequenceParallel: boolean, device: Device): number[][] {
  manualSeed(3);
  const config = new float8.Float8LinearConfig({ padInnerDim: true });
  const tp = float8.convertToFloat8Training(new FeedForward(32, 64, "bfloat16"), { config }) as FeedForward;
  tp.to({ device });
  dist.parallelize(tp, {
    ...(sequenceParallel ? { "": new dist.PrepareFloat8ModuleInput({ inputLayouts: dist.Shard(1), desiredInputLayouts: dist.Replicate() }) } : {}),
    w1: new dist.Float8ColwiseParallel(),
    w3: new dist.Float8ColwiseParallel(),
    w2: new dist.Float8RowwiseParallel(sequenceParallel ? { outputLayouts: dist.Shard(1) } : {}),
  });
  manualSeed(4);
  const x = randn([2, 8, 32], { dtype: "bfloat16" }), g = randn([2, 8, 32], { dtype: "bfloat16" });
  const s = 8 / worldSize;
  const mine = (t: Tensor) => (sequenceParallel ? t.slice(1, rank * s, (rank + 1) * s) : t).to({ device });
  const xl = mine(x).detach();
  xl.requiresGrad = true;
  const out = tp.forward(xl);
  out.backward(mine(g));
  return bytesOf([out, xl.grad!, tp.w1.weight.grad!, tp.w2.weight.grad!, tp.w3.weight.grad!]);
}

const same = (a: number[][], b: number[][]) => JSON.stringify(a) === JSON.stringify(b);
const results: Record<string, boolean> = {};
for (const kind of ["ddp", "fsdp"] as const) results[kind] = same(train(kind, "cpu"), train(kind, "cuda"));
for (const sp of [false, true]) results[sp ? "tp_float8_sp" : "tp_float8"] = same(tensorParallel(sp, "cpu"), tensorParallel(sp, "cuda"));
if (rank === 0) report("device", results);
dist.destroyProcessGroup();
