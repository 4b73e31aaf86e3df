// vs_torch.ts — this library against torch 2.x on the same CPU, side by side in one run.
//   bun bench/vs_torch.ts [--threads 2] [--rounds 7] [--shapes 1024,2048,1024;4096,2048,4096]
//                         [--no-mlp] [--batch 128] [--quick] [--python python3] [--json]
// Cases (bf16 weights, fwd+bwd, each step of ours inside tidy):
//   Linear with bias at each M,K,N: torch's nn.Linear, our nn.Linear, our Float8Linear (dynamic)
//   the demo's MLP (examples/demo.ts: 784-512-512-10, batch 128, AdamW, cross entropy): torch vs our bf16
// Each Linear row also gives its GEMMs' GFLOP/s (3 GEMMs of 2*M*K*N FLOP a step) as a share of this
// CPU's arithmetic ceiling, which build/fp8_bench_cpu_peak measures first (bench/native/cpu_peak.c:
// AMX-BF16 where the CPU has it, else AVX512-BF16, else f32 FMA), and the run ends with issue 14's
// targets for this kind of CPU, met or not.
// torch runs as a child process (bench/torch_serve.py, PYTHONPATH=.deps/torch) that executes one
// step per request; the two sides take turns within each round (the order swaps every round,
// with a pause between sides so neither shares the cores with the other's spinning OpenMP
// threads), so both see the same machine load. Both sides use --threads threads.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { nn, float8, optim, randn, tensor, tidy, noGrad, manualSeed } from "../src/index.ts";
import { check, lib, libraryPath } from "../src/ffi/index.ts";
import { buildModel } from "../examples/demo.ts";
import { argValue, cpuInfo, forwardBackward, hasFlag, lines } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log(`usage: bun bench/vs_torch.ts [options]
  --threads T     threads for both sides (default 2)
  --rounds R      rounds; each runs every case on both sides (default 7)
  --shapes S      Linear shapes "M,K,N;M,K,N" (default 1024,2048,1024;4096,2048,4096)
  --no-mlp        skip the demo's MLP
  --batch B       the MLP's batch (default 128, the demo's)
  --quick         small shapes, 2 rounds (smoke test)
  --python P      the Python with torch (default python3; PYTHONPATH gets .deps/torch)
  --json          also print one JSON line per case
Prints each case's median ms per step on each side and ours/torch as speed (torch ms / our ms:
above 1 means ours is faster), plus the median of the per-round ratios.`);
  process.exit(0);
}

const quick = hasFlag("quick");
const threads = Number(argValue("threads", "2"));
const rounds = Number(argValue("rounds", quick ? "2" : "7"));
const batch = Number(argValue("batch", "128"));
const withMlp = !hasFlag("no-mlp");
const python = argValue("python", "python3")!;
const asJson = hasFlag("json");
if (!Number.isInteger(threads) || threads < 1 || !Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(batch) || batch < 1) {
  console.error("vs_torch: --threads, --rounds and --batch need positive integers");
  process.exit(2);
}
const shapes: [number, number, number][] = quick
  ? [[256, 512, 256]]
  : argValue("shapes", "1024,2048,1024;4096,2048,4096")!.split(";").map((s) => s.split(",").map(Number) as [number, number, number]);
if (shapes.some((s) => s.length !== 3 || s.some((v) => !Number.isInteger(v) || v < 1))) {
  console.error("vs_torch: --shapes needs M,K,N;M,K,N (positive integers)");
  process.exit(2);
}
check(lib.fp8_set_num_threads(threads), "fp8_set_num_threads");

const PAUSE_MS = 20;
const MIN_ROUND_MS = 25;
const root = join(import.meta.dir, "..");
const torchPath = join(root, ".deps", "torch");
const INSTALL = `torch is not importable. Install torch's CPU wheel next to the repository and re-run:
    pip install --no-deps --target .deps/torch <torch cpu wheel>   (torch 2.13.0+cpu was used; see bench/torch_reference.py)
or pass --python a Python whose torch imports.`;

const cpu = cpuInfo();
console.log(`# vs_torch ${new Date().toISOString().slice(0, 16)}Z, ${threads} threads, ${rounds} rounds, bun ${Bun.version}`);
console.log(`# CPU: ${cpu.model}, ${require("node:os").cpus().length} CPUs; GEMM flags: ${cpu.gemmFlags}`);
console.log(`# flags: ${cpu.flags || "(unknown)"}`);
console.log(`# load average: ${require("node:os").loadavg().map((v: number) => v.toFixed(1)).join(" ")}`);

// ------------------------------------------------------------------ the CPU's arithmetic ceiling

type Ceiling = { gflops: number; what: string };

/** Runs build/fp8_bench_cpu_peak on our thread count; the fastest bf16 (else f32) multiply-add rate it found. */
function cpuCeiling(): Ceiling | null {
  const path = join(dirname(libraryPath), "fp8_bench_cpu_peak");
  if (!existsSync(path)) {
    console.log(`# arithmetic ceiling: ${path} not found (build it with cmake, target fp8_bench_cpu_peak)`);
    return null;
  }
  const p = Bun.spawnSync([path, "--threads", String(threads), "--ms", quick ? "30" : "300"], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) {
    console.log(`# arithmetic ceiling: fp8_bench_cpu_peak failed (${p.stderr.toString().trim()})`);
    return null;
  }
  const r = JSON.parse(p.stdout.toString()) as Record<string, number | string | null>;
  const show = (k: string) => (r[`${k}_gflops`] === null ? `${k} n/a (${r[`${k}_note`]})` : `${k} ${r[`${k}_gflops`]} GFLOP/s`);
  console.log(`# arithmetic ceiling (fp8_bench_cpu_peak, ${threads} threads): ${["amx_bf16", "avx512_bf16", "f32_fma"].map(show).join("; ")}`);
  for (const k of ["amx_bf16", "avx512_bf16", "f32_fma"]) {
    const g = r[`${k}_gflops`];
    if (typeof g === "number") return { gflops: g, what: k };
  }
  return null;
}
const ceiling = cpuCeiling();
const hasAmx = cpu.flags.split(/\s+/).includes("amx_bf16");

// ------------------------------------------------------------------ torch side

type TorchSide = { version: string; threads: number; run(i: number, times: number): Promise<number>; stop(): Promise<void> };

async function startTorch(cases: string[]): Promise<TorchSide | null> {
  const env: Record<string, string | undefined> = {
    ...process.env,
    PYTHONPATH: [existsSync(torchPath) ? torchPath : null, process.env.PYTHONPATH].filter(Boolean).join(":"),
    OMP_NUM_THREADS: String(threads),
  };
  let proc;
  try {
    proc = Bun.spawn([python, join(import.meta.dir, "torch_serve.py"), "--threads", String(threads), ...cases], { env, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  } catch {
    return null;
  }
  const out = lines(proc.stdout);
  const first = await out.next();
  if (first.done) {
    const err = await new Response(proc.stderr).text();
    if (!/No module named 'torch'/.test(err)) console.error(err.trim().split("\n").slice(-3).join("\n"));
    return null;
  }
  const header = JSON.parse(first.value) as { torch: string; threads: number };
  const next = async () => {
    const r = await out.next();
    if (r.done) throw new Error(`torch_serve.py exited early (code ${await proc.exited})`);
    return r.value;
  };
  return {
    version: header.torch,
    threads: header.threads,
    /** Mean ms of `times` consecutive steps of case i. */
    async run(i: number, times: number): Promise<number> {
      let sum = 0;
      for (let k = 0; k < times; k++) {
        proc.stdin.write(`run ${i}\n`);
        proc.stdin.flush();
        sum += Number(await next());
      }
      return sum / times;
    },
    async stop() {
      proc.stdin.write("quit\n");
      proc.stdin.end();
      await proc.exited;
    },
  };
}

// ------------------------------------------------------------------ our side
type Case = { name: string; torchCase: string; ours: Record<string, () => void>; dispose(): void; flop?: number };

function linearCase(M: number, K: number, N: number): Case {
  manualSeed(0);
  const lin = new nn.Linear(K, N, { dtype: "bfloat16", bias: true });
  manualSeed(0);
  const f8 = float8.Float8Linear.fromFloat(new nn.Linear(K, N, { dtype: "bfloat16", bias: true }), new float8.Float8LinearConfig());
  const x = randn([M, K], { dtype: "bfloat16", requiresGrad: true }).keep();
  const g = noGrad(() => randn([M, N], { dtype: "bfloat16", std: 1e-3 })).keep();
  const step = (m: nn.Module) => () =>
    tidy(() => forwardBackward(m, x, g));
  return {
    name: `Linear ${M},${K},${N}`,
    torchCase: `linear:${M},${K},${N}`,
    flop: 3 * 2 * M * K * N, // forward, grad_input, grad_weight
    ours: { "bf16 Linear": step(lin), "Float8Linear dynamic": step(f8) },
    dispose() {
      lin.dispose();
      f8.dispose();
      x.dispose();
      g.dispose();
    },
  };
}

function mlpCase(B: number): Case {
  const model = buildModel("bf16", "bfloat16", 0);
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0 });
  const images = new Float32Array(B * 784);
  for (let i = 0; i < images.length; i++) images[i] = Math.sin(i) * 1.5;
  const labels = Int32Array.from({ length: B }, (_, i) => i % 10);
  // the demo's bf16 step (examples/demo.ts trainStep), on a fixed batch
  const step = () =>
    tidy(() => {
      opt.zeroGrad();
      const x = tensor(images, { shape: [B, 784], dtype: "bfloat16" });
      const l = nn.crossEntropy(model.forward(x).to({ dtype: "float32" }), labels);
      l.backward();
      opt.step();
      return l.item();
    });
  return {
    name: `demo MLP bf16, batch ${B}`,
    torchCase: `mlp:${B}`,
    ours: { "bf16 MLP step": step },
    dispose() {
      model.dispose();
      opt.dispose();
    },
  };
}

const cases: Case[] = shapes.map(([M, K, N]) => linearCase(M, K, N));
if (withMlp) cases.push(mlpCase(quick ? 32 : batch));

const torch = await startTorch(cases.map((c) => c.torchCase));
if (!torch) console.log(`\n${INSTALL}\n(our side only below)`);
else console.log(`# torch ${torch.version}, ${torch.threads} threads (bench/torch_serve.py)`);

const median = (a: number[]) => {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const timeOurs = (fn: () => void, k: number) => {
  const t0 = performance.now();
  for (let i = 0; i < k; i++) fn();
  return (performance.now() - t0) / k;
};

const results = new Map<string, { vsTorch: number; torchMs: number }>();
for (const [ci, c] of cases.entries()) {
  // warm-up and repeat counts: a round of a fast step repeats it to ~MIN_ROUND_MS
  const names = Object.keys(c.ours);
  const repeat: Record<string, number> = {};
  for (const n of names) {
    c.ours[n]();
    repeat[n] = Math.max(1, Math.min(200, Math.ceil(MIN_ROUND_MS / Math.max(timeOurs(c.ours[n], 1), 1e-3))));
  }
  const torchRepeat = Math.max(...Object.values(repeat));
  const ours: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const torchMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const sides = [...names, "torch"];
    if (r % 2) sides.reverse();
    for (const s of sides) {
      await Bun.sleep(PAUSE_MS);
      if (s === "torch") {
        if (torch) torchMs.push(await torch.run(ci, torchRepeat));
      } else {
        ours[s].push(timeOurs(c.ours[s], repeat[s]));
      }
    }
  }
  console.log(`\n${c.name}`);
  const t = torch ? median(torchMs) : NaN;
  // GEMM throughput of a step and its share of the ceiling (Linear cases)
  const rate = (ms: number) => {
    if (!c.flop) return "";
    const g = c.flop / ms / 1e6;
    return `  GEMMs ${g.toFixed(0)} GFLOP/s${ceiling ? ` = ${((100 * g) / ceiling.gflops).toFixed(0)}% of ${ceiling.what}` : ""}`;
  };
  if (torch) console.log(`  ${"torch bf16".padEnd(22)} ${t.toFixed(2).padStart(9)} ms${rate(t)}`);
  for (const n of names) {
    const o = median(ours[n]);
    const perRound = torch ? median(ours[n].map((v, i) => torchMs[i] / v)) : NaN;
    const vs = torch ? `  vs torch ${(t / o).toFixed(2)}x (median per round ${perRound.toFixed(2)}x)` : "";
    console.log(`  ${n.padEnd(22)} ${o.toFixed(2).padStart(9)} ms${vs}${rate(o)}`);
    if (torch) results.set(`${c.name}|${n}`, { vsTorch: t / o, torchMs: t });
    if (asJson) {
      console.log(JSON.stringify({ case: c.name, side: n, ms: +o.toFixed(3), torch_ms: torch ? +t.toFixed(3) : null, vs_torch: torch ? +(t / o).toFixed(3) : null, threads, cpu: cpu.model, gemm_flags: cpu.gemmFlags }));
    }
  }
  c.dispose();
}
await torch?.stop();

// ------------------------------------------------------------------ issue 14's targets
// (benchmarks, not tests: printed for the record, never a failure)
type Target = { case: string; side: string; atLeast: number };
const targets: Target[] = hasAmx
  ? [
      { case: "Linear 4096,2048,4096", side: "bf16 Linear", atLeast: 0.85 },
      { case: "Linear 4096,2048,4096", side: "Float8Linear dynamic", atLeast: 0.75 },
      { case: "Linear 1024,2048,1024", side: "bf16 Linear", atLeast: 0.55 },
      { case: "Linear 1024,2048,1024", side: "Float8Linear dynamic", atLeast: 0.45 },
      { case: `demo MLP bf16, batch 128`, side: "bf16 MLP step", atLeast: 0.9 },
    ]
  : [
      { case: "Linear 4096,2048,4096", side: "Float8Linear dynamic", atLeast: 1.2 },
      { case: `demo MLP bf16, batch 128`, side: "bf16 MLP step", atLeast: 0.9 },
    ];
const verdicts: string[] = [];
if (torch) {
  for (const tg of targets) {
    const r = results.get(`${tg.case}|${tg.side}`);
    if (!r) continue;
    let why = "";
    const flop = cases.find((c) => c.name === tg.case)?.flop;
    if (flop && ceiling) {
      // the GEMM rate a step at the target's speed would need, against the ceiling
      const need = (flop / (r.torchMs / tg.atLeast)) / 1e6;
      why = `; a step at ${tg.atLeast}x torch needs its GEMMs at ${need.toFixed(0)} GFLOP/s = ${((100 * need) / ceiling.gflops).toFixed(0)}% of ${ceiling.what}`;
    }
    verdicts.push(`  ${`${tg.case}, ${tg.side}`.padEnd(46)} >= ${tg.atLeast.toFixed(2)}x: ${r.vsTorch >= tg.atLeast ? "met" : "NOT met"} (${r.vsTorch.toFixed(2)}x${why})`);
  }
}
if (verdicts.length) {
  console.log(`\nissue 14 targets for a CPU ${hasAmx ? "with AMX" : "without AMX (the issue's AMD Zen 4 row)"} (ours vs torch's bf16, same run)`);
  for (const v of verdicts) console.log(v);
}
