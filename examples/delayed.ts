// delayed.ts — torchao's README example with delayed scaling, ported with a loss that has a minimum:
//   bun examples/delayed.ts [--steps 10] [--m 4096]
// Same model, data and loss as dynamic.ts; every operand uses delayed scaling and
// syncFloat8AmaxAndScaleHistory runs every step.
import { nn, optim, float8, randn, tidy, manualSeed, noGrad, type Tensor } from "../src/index.ts";
import { nowMs, parseArgs } from "./common.ts";

const args = parseArgs(process.argv.slice(2));
if (args.has("help")) {
  console.log("usage: bun examples/delayed.ts [--steps 10] [--m 4096]");
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

const { CastConfig, Float8LinearConfig, ScalingType } = float8;
const delayed = new CastConfig({ scalingType: ScalingType.DELAYED });
const config = new Float8LinearConfig({ castConfigInput: delayed, castConfigWeight: delayed, castConfigGradOutput: delayed });
float8.convertToFloat8Training(m, { config });
console.log(m.toString());

for (let step = 0; step < steps; step++) {
  const t0 = nowMs();
  const loss = tidy(() => {
    optimizer.zeroGrad();
    const y: Tensor = m.forward(x);
    const l = nn.mseLoss(y, target);
    l.backward();
    // delayed scaling: roll the amax histories and update the scales of every layer
    float8.syncFloat8AmaxAndScaleHistory(m);
    optimizer.step();
    return l.to({ dtype: "float32" }).item();
  });
  console.log(`step ${step}: loss ${loss.toPrecision(6)}  ${(nowMs() - t0).toFixed(0)} ms/step`);
}
