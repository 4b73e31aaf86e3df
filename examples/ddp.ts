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
// are averaged over ranks, so all ranks keep identical weights. On CPU ranks
// the model is an nn.Module with Float8Linear layers wrapped in
// DistributedDataParallel (or fullyShard). On GPUs each rank drives
// cuda.Float8LinearCuda and all-reduces its weight gradient on the device
// through NCCL.
import { cuda, distributed as dist, float8, manualSeed, nn, optim, randn, tidy } from "../src/index.ts";
import { parseArgs } from "./common.ts";

const args = parseArgs(process.argv.slice(2));
const steps = Number(args.get("steps") ?? 100);
const backend = (args.get("backend") ?? "mpi") as dist.Backend;
const useFloat8 = !args.has("no-float8");
const { rank, worldSize } = dist.initProcessGroup({ backend });
const say = (msg: string) => rank === 0 && console.log(msg);

/** Mean of a per-rank number over all ranks (one small all-reduce). */
function meanOverRanks(v: number): number {
  return dist.allReduceArray(Float32Array.of(v), "avg", { key: "example.loss" })[0];
}

function trainOnCpuRanks(): void {
  const D = 64, H = 256, B = 32;
  manualSeed(0); // the same teacher and the same initial student on every rank
  const teacher = new nn.Sequential(new nn.Linear(D, H), new nn.GELU(), new nn.Linear(H, D));
  let student: nn.Module = new nn.Sequential(new nn.Linear(D, H), new nn.GELU(), new nn.Linear(H, D));
  if (useFloat8) {
    const config = new float8.Float8LinearConfig({ enableFsdpFloat8AllGather: args.has("fsdp") });
    student = float8.convertToFloat8Training(student, { config });
  }
  const model = args.has("fsdp") ? dist.fullyShard(student) : new dist.DistributedDataParallel(student);
  const opt = new optim.AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0 });
  say(`${worldSize} CPU ranks, ${args.has("fsdp") ? "FSDP" : "DDP"}, ${useFloat8 ? "float8" : "float32"} linears, global batch ${B * worldSize}`);
  for (let step = 1; step <= steps; step++) {
    manualSeed(1000 + step * worldSize + rank); // this rank's slice of the global batch
    const x = randn([B, D]);
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

/** A host float32 copy of a device buffer. */
function toF32(buf: cuda.DeviceBuffer): Float32Array {
  const f = cuda.convert(buf, "float32");
  const host = f.toHost() as Float32Array;
  f.dispose();
  return host;
}

/** A bfloat16 device copy of host float32 values. */
function upload(ctx: cuda.CudaContext, values: Float32Array, shape: number[]): cuda.DeviceBuffer {
  const f = cuda.DeviceBuffer.from(ctx, values, shape, "float32");
  const b = cuda.convert(f, "bfloat16");
  f.dispose();
  return b;
}

function trainOnGpus(): void {
  // NCCL bound this rank to GPU local_rank % count; use the same one
  const ctx = cuda.device(dist.getLocalRank() % cuda.probe().deviceCount);
  const M = 256, K = 512, N = 256; // multiples of 16 for the fp8 GEMMs
  const layer = useFloat8 ? new cuda.Float8LinearCuda(ctx, M, K, N, { fallback: "never" }) : new cuda.HighPrecisionLinearCuda(ctx, M, K, N);
  manualSeed(0);
  const teacherHost = randn([N, K], { std: 1 / Math.sqrt(K) });
  const teacher = upload(ctx, teacherHost.toArray(), [N, K]);
  teacherHost.dispose();
  const w = new Float32Array(N * K); // master weights on the host, identical on every rank
  const lr = N / 4;
  say(`${worldSize} GPUs (NCCL), ${layer}`);
  for (let step = 1; step <= steps; step++) {
    const x = cuda.randn(ctx, [M, K], "bfloat16", 1000 + step * worldSize + rank);
    const target = cuda.matmul(x, teacher, { transB: true });
    const wDev = upload(ctx, w, [N, K]);
    const y = layer.forward(x, wDev);
    const yh = toF32(y), th = toF32(target);
    const dy = new Float32Array(M * N);
    let loss = 0;
    for (let i = 0; i < dy.length; i++) {
      const d = yh[i] - th[i];
      loss += d * d;
      dy[i] = (2 * d) / dy.length;
    }
    const dyDev = upload(ctx, dy, [M, N]);
    const { dx, dw } = layer.backward(dyDev);
    dist.allReduce(dw, "avg", { key: "example.dw" }); // on the GPU, through NCCL
    const g = toF32(dw);
    for (let i = 0; i < w.length; i++) w[i] -= lr * g[i];
    for (const b of [x, target, wDev, y, dyDev, dx, dw]) b.dispose();
    const mean = meanOverRanks(loss / dy.length);
    if (step === 1 || step % 20 === 0 || step === steps) say(`step ${String(step).padStart(4)}  loss ${mean.toFixed(5)}`);
  }
  teacher.dispose();
  layer.dispose();
}

if (backend === "nccl") trainOnGpus();
else trainOnCpuRanks();
dist.destroyProcessGroup();
