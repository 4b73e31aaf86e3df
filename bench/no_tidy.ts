// no_tidy.ts — the README's training loop with and without tidy() (issue 15): native
// memory growth per step (live bytes and RSS) and time per step, in one run.
//   bun bench/no_tidy.ts [--steps 10] [--batch 4096]
// Run it on a quiet machine for the time ratio; the growth per step does not depend on load.
import { float8, memoryStats, nn, optim, randn, tidy } from "../src/index.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const steps = arg("steps", 10), batch = arg("batch", 4096);
const MiB = 2 ** 20;

function run(withTidy: boolean): { msPerStep: number; liveMiBPerStep: number; rssMiBPerStep: number } {
  // the README loop: a bf16 MLP, float8 on the first Linear, SGD
  const m = new nn.Sequential(new nn.Linear(2048, 4096), new nn.Linear(4096, 128)).to({ dtype: "bfloat16" });
  float8.convertToFloat8Training(m, { moduleFilterFn: (_mod, fqn) => fqn !== "1" });
  const opt = new optim.SGD(m.parameters(), { lr: 0.1 });
  const x = randn([batch, 2048], { dtype: "bfloat16" });
  const step = () => {
    opt.zeroGrad();
    m.forward(x).sum().backward();
    opt.step();
  };
  const one = () => (withTidy ? tidy(step) : step());
  one(); // warm-up: optimizer state, caches
  one();
  const live0 = memoryStats().liveBytes, rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) one();
  const ms = (performance.now() - t0) / steps;
  return {
    msPerStep: Math.round(ms),
    liveMiBPerStep: +((memoryStats().liveBytes - live0) / steps / MiB).toFixed(2),
    rssMiBPerStep: +((process.memoryUsage().rss - rss0) / steps / MiB).toFixed(2),
  };
}

const withTidy = run(true);
const without = run(false);
console.log(JSON.stringify({ steps, batch, withTidy, without, slowdown: +(without.msPerStep / withTidy.msPerStep).toFixed(2) }));
