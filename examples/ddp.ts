// ddp.ts — data-parallel float8 training on N processes (one per CPU rank or GPU).
//
//   bun run launch -n 2 examples/ddp.ts                   2 CPU ranks: DDP, float8 linears
//   bun run launch -n 2 examples/ddp.ts --fsdp            FSDP instead, weights gathered as fp8
//   bun run launch -n 8 examples/ddp.ts --backend nccl    8 GPUs on one node (NCCL)
//   bun run launch -n 16 --hostfile hosts examples/ddp.ts --backend nccl
//                                                          2 nodes x 8 GPUs (hosts: "node1 slots=8")
// Options: --steps N (default 100), --no-float8, --fsdp.
//
// Every rank draws its own batch of a teacher-student regression; gradients
// are averaged over ranks, so all ranks keep identical weights. The model is
// an nn.Module with Float8Linear layers wrapped in DistributedDataParallel
// (or fullyShard): on CPU ranks in host memory through MPI; with --backend
// nccl on this rank's GPU (device "cuda"), gradients averaged by NCCL.
import { distributed as dist, float8, manualSeed, nn, optim, randn, tidy, type Device } from "../src/index.ts";
import { parseArgs } from "./common.ts";

const args = parseArgs(process.argv.slice(2));
const steps = Number(args.get("steps") ?? 100);
const backend = (args.get("backend") ?? "mpi") as dist.Backend;
const useFloat8 = !args.has("no-float8");
const { rank, worldSize } = dist.initProcessGroup({ backend });
// NCCL picked this rank's GPU (local_rank % count); "cuda" tensors live there
const device: Device = backend === "nccl" ? "cuda" : "cpu";
const say = (msg: string) => rank === 0 && console.log(msg);

/** Mean of a per-rank number over all ranks (one small all-reduce). */
function meanOverRanks(v: number): number {
  return dist.allReduceArray(Float32Array.of(v), "avg", { key: "example.loss" })[0];
}

function train(): void {
  const D = 64, H = 256, B = 32;
  manualSeed(0); // the same teacher and the same initial student on every rank
  const teacher = new nn.Sequential(new nn.Linear(D, H), new nn.GELU(), new nn.Linear(H, D)).to({ device });
  let student: nn.Module = new nn.Sequential(new nn.Linear(D, H), new nn.GELU(), new nn.Linear(H, D));
  if (useFloat8) {
    const config = new float8.Float8LinearConfig({ enableFsdpFloat8AllGather: args.has("fsdp") });
    student = float8.convertToFloat8Training(student, { config });
  }
  student.to({ device }); // before wrapping: DDP broadcasts and FSDP shards the device tensors
  const model = args.has("fsdp") ? dist.fullyShard(student) : new dist.DistributedDataParallel(student);
  const opt = new optim.AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0 });
  say(`${worldSize} ${device === "cuda" ? "GPUs (NCCL)" : "CPU ranks (MPI)"}, ${args.has("fsdp") ? "FSDP" : "DDP"}, ${useFloat8 ? "float8" : "float32"} linears, global batch ${B * worldSize}`);
  for (let step = 1; step <= steps; step++) {
    manualSeed(1000 + step * worldSize + rank); // this rank's slice of the global batch
    const x = randn([B, D], { device });
    const loss = tidy(() => {
      opt.zeroGrad();
      const target = teacher.forward(x);
      const l = nn.mseLoss(model.forward(x), target);
      l.backward();
      opt.step();
      return l.item();
    });
    x.dispose();
    if (args.has("fsdp") && useFloat8) dist.precomputeFloat8DynamicScaleForFsdp(model);
    const mean = meanOverRanks(loss);
    if (step === 1 || step % 20 === 0 || step === steps) say(`step ${String(step).padStart(4)}  loss ${mean.toFixed(5)}`);
  }
  const s = dist.collectiveStats();
  say(`bytes this rank sent: all-reduce ${s.allReduce.bytes}, all-gather ${s.allGather.bytes}, reduce-scatter ${s.reduceScatter.bytes}`);
}

train();
dist.destroyProcessGroup();
