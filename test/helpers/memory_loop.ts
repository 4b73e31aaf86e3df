// memory_loop.ts — runs a training loop in a fresh process and prints live
// native memory before and after, as JSON. test/memory.test.ts spawns it so that
// garbage from other test files (freed by finalizers at random times) cannot
// move the numbers.
//   bun test/helpers/memory_loop.ts mlp|float8 STEPS
import { nn, optim, float8, randn, tidy, memoryStats, manualSeed, type Tensor } from "../../src/index.ts";

const [kind, stepsArg] = process.argv.slice(2);
const steps = Number(stepsArg);

function trainSteps(model: nn.Module, opt: optim.Optimizer, x: Tensor, y: Int32Array, n: number, sync: boolean): void {
  for (let i = 0; i < n; i++) {
    tidy(() => {
      opt.zeroGrad();
      nn.crossEntropy(model.forward(x), y).backward();
      opt.step();
      if (sync) float8.syncFloat8AmaxAndScaleHistory(model);
    });
  }
}

manualSeed(0);
const model = new nn.Sequential(new nn.Linear(32, 64), new nn.ReLU(), new nn.Linear(64, 16));
const isFloat8 = kind === "float8";
if (isFloat8) {
  const delayed = new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED });
  float8.convertToFloat8Training(model, {
    config: new float8.Float8LinearConfig({ castConfigInput: delayed, castConfigWeight: delayed, castConfigGradOutput: delayed }),
  });
}
const opt = isFloat8 ? new optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 }) : new optim.AdamW(model.parameters(), { lr: 1e-3 });
const x = randn([16, 32]);
const y = Int32Array.from({ length: 16 }, (_, i) => i % 16);
trainSteps(model, opt, x, y, 10, isFloat8); // warm-up: grads and optimizer state exist now
const before = memoryStats();
trainSteps(model, opt, x, y, steps, isFloat8);
const after = memoryStats();
console.log(JSON.stringify({ before, after }));
