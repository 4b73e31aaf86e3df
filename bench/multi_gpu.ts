// multi_gpu.ts — counterpart of torchao's bench_multi_gpu benchmark: the step time
// of a Linear stack under DistributedDataParallel with N ranks, bf16 against float8
// (dynamic tensorwise), each rank on its own batch of the same size (torchao's setup).
// Here the ranks are CPU processes under MPI (mpirun through scripts/launch.ts); on GPUs
// the same script runs one rank per GPU (--device cuda, NCCL).
//   bun bench/multi_gpu.ts [--ranks 1,2] [--M 1024] [--D 1024] [--layers 4] [--steps 5] [--quick]
// (as a worker under mpirun: --worker; rank 0 prints one RESULT line per model)
import { join } from "node:path";
import { argValue, hasFlag, machineLine } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log(`usage: bun bench/multi_gpu.ts [--ranks 1,2] [--M rows per rank] [--D width] [--layers L] [--steps S] [--device cpu|cuda] [--quick]
Runs the worker under mpirun once per rank count and prints ms/step of DDP with bf16 Linear and with Float8Linear.`);
  process.exit(0);
}
const quick = hasFlag("quick");
const M = Number(argValue("M", quick ? "128" : "1024"));
const D = Number(argValue("D", quick ? "128" : "1024"));
const L = Number(argValue("layers", quick ? "2" : "4"));
const steps = Number(argValue("steps", quick ? "2" : "5"));
const device = argValue("device", "cpu")!;

if (hasFlag("worker")) {
  const { nn, float8, distributed: dist, optim, randn, tidy, manualSeed, cuda } = await import("../src/index.ts");
  const { rank, worldSize } = dist.initProcessGroup({ backend: device === "cuda" ? "nccl" : "mpi", timeoutMs: 600000 });
  if (device === "cuda") cuda.setDevice(rank);
  const build = (fp8: boolean) => {
    manualSeed(0);
    const layers: InstanceType<typeof nn.Module>[] = [];
    for (let i = 0; i < L; i++) layers.push(new nn.Linear(D, D, { dtype: "bfloat16", bias: false }), new nn.ReLU());
    const m = new nn.Sequential(...layers).to({ device: device as "cpu" });
    if (fp8) float8.convertToFloat8Training(m);
    return new dist.DistributedDataParallel(m);
  };
  manualSeed(100 + rank); // each rank its own batch
  const x = randn([M, D], { dtype: "bfloat16", device: device as "cpu" }).keep();
  for (const fp8 of [false, true]) {
    const ddp = build(fp8);
    const opt = new optim.SGD(ddp.parameters(), { lr: 1e-3 });
    const step = () => tidy(() => {
      opt.zeroGrad();
      (ddp.forward(x) as ReturnType<typeof randn>).sum().backward();
      opt.step();
    });
    step(); // warm-up
    dist.barrier();
    const times: number[] = [];
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      step();
      dist.barrier(); // the step ends when the slowest rank is done
      times.push(performance.now() - t0);
    }
    const med = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
    if (rank === 0) console.log(`RESULT ${JSON.stringify({ model: fp8 ? "float8" : "bf16", ranks: worldSize, msPerStep: +med.toFixed(3) })}`);
    opt.dispose();
    ddp.dispose();
  }
  dist.destroyProcessGroup();
  process.exit(0);
}

const { mpirunCommand } = await import("../scripts/launch.ts");
const mpirun = Bun.which("mpirun");
if (!mpirun) {
  console.error("multi_gpu: mpirun not found (apt install openmpi-bin libopenmpi-dev)");
  process.exit(2);
}
const rankCounts = argValue("ranks", quick ? "1,2" : "1,2")!.split(",").map(Number);
console.log(`# multi_gpu (bench_multi_gpu counterpart) on ${machineLine()}, DDP over MPI, ${L} x Linear(${D}, ${D}) + ReLU, ${M} rows per rank, bf16, ${new Date().toISOString().slice(0, 10)}`);
const rows: { model: string; ranks: number; msPerStep: number }[] = [];
for (const n of rankCounts) {
  const args = ["--worker", "--M", String(M), "--D", String(D), "--layers", String(L), "--steps", String(steps), "--device", device];
  const cmd = mpirunCommand({ n, script: join(import.meta.dir, "multi_gpu.ts"), scriptArgs: args, mpirun, quiet: true });
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  const out = p.stdout.toString();
  for (const line of out.split("\n")) if (line.startsWith("RESULT ")) rows.push(JSON.parse(line.slice(7)));
  if (p.exitCode !== 0) {
    console.error(`multi_gpu: ${n} ranks failed (exit ${p.exitCode}):\n${out}${p.stderr.toString()}`);
    process.exit(1);
  }
}
const at = (model: string, ranks: number) => rows.find((r) => r.model === model && r.ranks === ranks)?.msPerStep ?? NaN;
for (const n of rankCounts) {
  const bf = at("bf16", n), f8 = at("float8", n);
  console.log(`  ranks ${n}: bf16 ${bf.toFixed(2)} ms/step, float8 ${f8.toFixed(2)} ms/step, float8 speed vs bf16 ${(bf / f8).toFixed(3)}x, ` +
    `float8 step vs 1 rank ${(f8 / at("float8", rankCounts[0])).toFixed(3)}x`);
}
