// tidy_cost.ts — step time with and without tidy(), in the same run (issue 14, item 3).
//   bun bench/tidy_cost.ts [--steps 12] [--threads 2] [--quick]
// Two loops, each run once inside tidy (every intermediate freed at the end of the step) and once
// written as torch users write it (no tidy: tensors are freed only when the garbage collector
// finalises them):
//   readme   the README's loop: Linear(2048,4096) -> Linear(4096,128), the first in float8
//            (dynamic), bf16, SGD, x (4096, 2048), m.forward(x).sum().backward()
//   f8       Float8Linear (dynamic) with bias, fwd+bwd at M,K,N = 1024,2048,1024
// For each it prints the median and last step's ms and the native live bytes after the loop.
// Each variant runs in a process of its own (this script with --child), the two taking turns
// (tidy, plain, plain, tidy, ...) so both see the same machine load: in one process, the garbage
// that the loop without tidy leaves is finalised during whichever step runs next, so its cost
// lands on the tidy step (an earlier version alternated in one process and showed that).
import { nn, optim, float8, randn, tidy, noGrad, memoryStats, manualSeed } from "../src/index.ts";
import { check, lib } from "../src/ffi/index.ts";
import { argValue, cpuInfo, forwardBackward, hasFlag } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log("usage: bun bench/tidy_cost.ts [--steps S] [--threads T] [--runs R] [--quick]");
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
const loops: Record<string, () => Loop> = { readme: readmeLoop, f8: f8Loop };
const child = argValue("child"); // "readme:tidy", "f8:plain", ...

if (child) {
  // one variant, one process: warm-up, then the timed steps; one JSON line
  const [which, how] = child.split(":");
  const loop = loops[which]();
  const inTidy = how === "tidy";
  const run = () => (inTidy ? tidy(() => loop.step()) : loop.step());
  run(); // warm-up: primitives, allocator cache
  const live0 = memoryStats().liveBytes;
  const t: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    run();
    t.push(performance.now() - t0);
  }
  console.log(JSON.stringify({ name: loop.name, ms: t, grew: memoryStats().liveBytes - live0 }));
  process.exit(0);
}

const runs = Number(argValue("runs", quick ? "1" : "2"));
const spawnChild = (variant: string) => {
  const args = [process.execPath, import.meta.path, "--child", variant, "--steps", String(steps), "--threads", String(threads), ...(quick ? ["--quick"] : [])];
  const p = Bun.spawnSync(args, { stdout: "pipe", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`tidy_cost: child ${variant} exited with ${p.exitCode}`);
  const line = p.stdout.toString().trim().split("\n").pop()!;
  return JSON.parse(line) as { name: string; ms: number[]; grew: number };
};
for (const which of Object.keys(loops)) {
  const t: number[] = [], u: number[] = [];
  let name = "", grewTidy = 0, grewWithout = 0, lastT = 0, lastU = 0;
  for (let r = 0; r < runs; r++) {
    for (const how of r % 2 ? ["plain", "tidy"] : ["tidy", "plain"]) {
      const res = spawnChild(`${which}:${how}`);
      name = res.name;
      if (how === "tidy") {
        t.push(...res.ms);
        grewTidy = res.grew;
        lastT = res.ms[res.ms.length - 1];
      } else {
        u.push(...res.ms);
        grewWithout = res.grew;
        lastU = res.ms[res.ms.length - 1];
      }
    }
  }
  console.log(`\n${name}`);
  console.log(`  inside tidy   median ${median(t).toFixed(1).padStart(8)} ms   last ${lastT.toFixed(1).padStart(8)} ms`);
  console.log(`  without tidy  median ${median(u).toFixed(1).padStart(8)} ms   last ${lastU.toFixed(1).padStart(8)} ms   (${(median(u) / median(t)).toFixed(2)}x the time of a step inside tidy)`);
  const mib = (b: number) => `${b >= 0 ? "+" : ""}${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log(`  native live bytes left by ${steps} steps: inside tidy ${mib(grewTidy)}, without tidy ${mib(grewWithout)} (freed later only by the garbage collector)`);
}
