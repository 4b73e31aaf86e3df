// stats.ts — cost of fp8 telemetry: a float8 MLP training step with
// collection off, every 10 steps, and every step, measured in the same run.
//   bun bench/stats.ts [--rounds 5] [--batch 256] [--quick]
import { nn, optim, float8, randn, tidy, manualSeed } from "../src/index.ts";
import { argValue, hasFlag, machineLine, timeInterleaved } from "./harness.ts";

if (hasFlag("help")) {
  console.log("usage: bun bench/stats.ts [--rounds 5] [--batch 256] [--quick]\nTime per training step (10 steps per sample) of a 784-512-512-10 float8 MLP with telemetry off, every 10 steps, every step.");
  process.exit(0);
}
const quick = hasFlag("quick");
const rounds = Number(argValue("rounds", quick ? "2" : "5"));
const batch = Number(argValue("batch", quick ? "64" : "256"));

function model(every: number) {
  manualSeed(0);
  const m = new nn.Sequential(new nn.Linear(784, 512), new nn.ReLU(), new nn.Linear(512, 512), new nn.ReLU(), new nn.Linear(512, 10));
  m.to({ dtype: "bfloat16" });
  float8.convertToFloat8Training(m);
  if (every > 0) float8.enableStats(m, { every });
  return { m, opt: new optim.AdamW(m.parameters(), { lr: 1e-3 }) };
}
const x = randn([batch, 784], { dtype: "bfloat16" }).keep();
const y = Int32Array.from({ length: batch }, (_, i) => i % 10);
const runs = { off: model(0), "every 10": model(10), "every step": model(1) };
const tenSteps = (r: { m: nn.Module; opt: optim.Optimizer }) => () => {
  for (let i = 0; i < 10; i++) {
    tidy(() => {
      r.opt.zeroGrad();
      nn.crossEntropy(r.m.forward(x), y).backward();
      r.opt.step();
    });
  }
};
const t = await timeInterleaved(Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, tenSteps(r)])), rounds);
console.log(`# telemetry cost on ${machineLine()}, batch ${batch}, ${new Date().toISOString().slice(0, 10)}`);
for (const [k, ms] of Object.entries(t)) {
  console.log(`  stats ${k.padEnd(10)} ${(ms / 10).toFixed(2)} ms/step  (${((ms / t.off - 1) * 100).toFixed(1)}% over off)`);
}
