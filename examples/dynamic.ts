// dynamic.ts — torchao's README example with dynamic scaling, ported with a loss that has a minimum:
//   bun examples/dynamic.ts [--steps 10] [--m 4096]
// Sequential(Linear(2048, 4096), Linear(4096, 128)) in bf16, input (4096, 2048),
// SGD lr 0.1, mean squared error against a fixed linear teacher's output (torchao
// minimises y.sum(), which diverges); the module filter skips fqn "1" and dims not divisible by 16.
import { nn, optim, float8, randn, tidy, manualSeed, noGrad, type Tensor } from "../src/index.ts";
import { nowMs, parseArgs } from "./common.ts";

const args = parseArgs(process.argv.slice(2));
if (args.has("help")) {
  console.log("usage: bun examples/dynamic.ts [--steps 10] [--m 4096]");
  process.exit(0);
}
const steps = Number(args.get("steps") ?? 10);
const M = Number(args.get("m") ?? 4096);

manualSeed(0);
const m = new nn.Sequential(new nn.Linear(2048, 4096), new nn.Linear(4096, 128)).to({ dtype: "bfloat16" });
const x = randn([M, 2048], { dtype: "bfloat16" });
// The target: what a fixed random linear "teacher" makes of x (unit variance). torchao's
// README minimises y.sum(), which has no minimum; a regression onto a target does.
const target = noGrad(() => x.matmul(randn([2048, 128], { dtype: "bfloat16" }).mul(1 / Math.sqrt(2048))));
const optimizer = new optim.SGD(m.parameters(), { lr: 0.1 });

// Skip the last layer (fqn "1") and any Linear whose dims are not divisible by 16.
function moduleFilterFn(mod: nn.Module, fqn: string): boolean {
  if (fqn === "1") return false;
  if (mod instanceof nn.Linear && (mod.inFeatures % 16 !== 0 || mod.outFeatures % 16 !== 0)) return false;
  return true;
}

float8.convertToFloat8Training(m, { moduleFilterFn });
console.log(m.toString());

for (let step = 0; step < steps; step++) {
  const t0 = nowMs();
  const loss = tidy(() => {
    optimizer.zeroGrad();
    const y: Tensor = m.forward(x);
    const l = nn.mseLoss(y, target);
    l.backward();
    optimizer.step();
    return l.to({ dtype: "float32" }).item();
  });
  console.log(`step ${step}: loss ${loss.toPrecision(6)}  ${(nowMs() - t0).toFixed(0)} ms/step`);
}
