// tidy_cost.ts — step time with and without tidy(), in the same run (issue 14, item 3).
//   bun bench/tidy_cost.ts [--steps 12] [--threads 2] [--quick]
// Two loops, each run once inside tidy (every intermediate freed at the end of the step) and once
// written as torch users write it (no tidy: tensors are freed only when the garbage collector
// finalises them):
//   readme   the README's loop: Linear(2048,4096) -> Linear(4096,128), the first in float8
//            (dynamic), bf16, SGD, x (4096, 2048), m.forward(x).sum().backward()
//   f8       Float8Linear (dynamic) with bias, fwd+bwd at M,K,N = 1024,2048,1024
// For each it prints the median and last step's ms and the native live bytes after the loop;
// the two variants alternate step by step so both see the same machine load.
import { nn, optim, float8, randn, tidy, noGrad, memoryStats, manualSeed } from "../src/index.ts";
import { check, lib } from "../src/ffi/index.ts";
import { argValue, cpuInfo, forwardBackward, hasFlag } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log("usage: bun bench/tidy_cost.ts [--steps S] [--threads T] [--quick]");
  process.exit(0);
}
const quick = hasFlag("quick");
const steps = Number(argValue("steps", quick ? "3" : "12"));
const threads = Number(argValue("threads", "2"));
check(lib.fp8_set_num_threads(threads), "fp8_set_num_threads");
const cpu = cpuInfo();
console.log(`# tidy_cost ${new Date().toISOString().slice(0, 16)}Z, ${threads} threads, ${steps} steps per variant`);
console.log(`# CPU: ${cpu.model}; GEMM flags: ${cpu.gemmFlags}; load average ${require("node:os").loadavg().map((v: number) => v.toFixed(1)).join(" ")}`);

type Loop = { name: string; step: () => void; dispose: () => void };

function readmeLoop(): Loop {
  const [M, K, H, O] = quick ? [256, 256, 512, 32] : [4096, 2048, 4096, 128];
  manualSeed(0);
  const m = new nn.Sequential(new nn.Linear(K, H), new nn.Linear(H, O)).to({ dtype: "bfloat16" });
  float8.convertToFloat8Training(m, { moduleFilterFn: (_mod, fqn) => fqn !== "1" });
  const opt = new optim.SGD(m.parameters(), { lr: 0.1 });
  const x = randn([M, K], { dtype: "bfloat16" }).keep();
  return {
    name: `README loop (${M}x${K} -> ${H} float8 -> ${O}, SGD)`,
    step: () => {
      opt.zeroGrad();
      m.forward(x).sum().backward();
      opt.step();
    },
    dispose: () => {
      m.dispose();
      opt.dispose();
      x.dispose();
    },
  };
}

function f8Loop(): Loop {
  const [M, K, N] = quick ? [256, 512, 256] : [1024, 2048, 1024];
  manualSeed(0);
  const f8 = float8.Float8Linear.fromFloat(new nn.Linear(K, N, { dtype: "bfloat16", bias: true }));
  const x = randn([M, K], { dtype: "bfloat16", requiresGrad: true }).keep();
  const g = noGrad(() => randn([M, N], { dtype: "bfloat16", std: 1e-3 })).keep();
  return {
    name: `Float8Linear dynamic with bias, fwd+bwd ${M},${K},${N}`,
    step: () => forwardBackward(f8, x, g),
    dispose: () => {
      f8.dispose();
      x.dispose();
      g.dispose();
    },
  };
}

const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
for (const make of [readmeLoop, f8Loop]) {
  const withTidy = make();
  const without = make();
  withTidy.step(); // warm-up of both: primitives, allocator cache
  tidy(() => without.step());
  Bun.gc(true);
  const t: number[] = [], u: number[] = [];
  let grewTidy = 0, grewWithout = 0; // native live bytes each variant's steps left behind
  for (let s = 0; s < steps; s++) {
    let live = memoryStats().liveBytes;
    let t0 = performance.now();
    tidy(() => withTidy.step());
    t.push(performance.now() - t0);
    grewTidy += memoryStats().liveBytes - live;
    live = memoryStats().liveBytes;
    t0 = performance.now();
    without.step();
    u.push(performance.now() - t0);
    grewWithout += memoryStats().liveBytes - live;
  }
  console.log(`\n${withTidy.name}`);
  console.log(`  inside tidy   median ${median(t).toFixed(1).padStart(8)} ms   last ${t[t.length - 1].toFixed(1).padStart(8)} ms`);
  console.log(`  without tidy  median ${median(u).toFixed(1).padStart(8)} ms   last ${u[u.length - 1].toFixed(1).padStart(8)} ms   (${(median(u) / median(t)).toFixed(2)}x the time of a step inside tidy)`);
  const mib = (b: number) => `${b >= 0 ? "+" : ""}${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log(`  native live bytes left by ${steps} steps: inside tidy ${mib(grewTidy)}, without tidy ${mib(grewWithout)} (freed later only by the garbage collector)`);
  withTidy.dispose();
  without.dispose();
  Bun.gc(true);
}
