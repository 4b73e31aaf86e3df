// A long training loop keeps live native memory flat.
import { expect, test } from "bun:test";
import { nn, optim, float8, randn, tidy, memoryStats, manualSeed, type Tensor } from "../src/index.ts";

/** Live native memory after collecting garbage from earlier tests (their finalizers free memory too). */
async function settledStats() {
  for (let i = 0; i < 3; i++) {
    Bun.gc(true);
    await Bun.sleep(1);
  }
  return memoryStats();
}

function trainSteps(model: nn.Module, opt: optim.Optimizer, x: Tensor, y: Int32Array, steps: number, sync: boolean): void {
  for (let i = 0; i < steps; i++) {
    tidy(() => {
      opt.zeroGrad();
      const loss = nn.crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      if (sync) float8.syncFloat8AmaxAndScaleHistory(model);
    });
  }
}

test("1,000 training steps of a small MLP keep live native bytes flat", async () => {
  manualSeed(0);
  const model = new nn.Sequential(new nn.Linear(32, 64), new nn.ReLU(), new nn.Linear(64, 10));
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-3 });
  const x = randn([16, 32]);
  const y = Int32Array.from({ length: 16 }, (_, i) => i % 10);
  trainSteps(model, opt, x, y, 10, false); // warm up: grads and optimizer state exist now
  const before = await settledStats();
  trainSteps(model, opt, x, y, 1000, false);
  const after = await settledStats();
  expect(after.liveBytes).toBe(before.liveBytes);
  expect(after.liveAllocs).toBe(before.liveAllocs);
});

test("float8 delayed-scaling training keeps live native bytes flat", async () => {
  manualSeed(0);
  const model = new nn.Sequential(new nn.Linear(32, 64), new nn.ReLU(), new nn.Linear(64, 16));
  const delayed = new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED });
  float8.convertToFloat8Training(model, {
    config: new float8.Float8LinearConfig({ castConfigInput: delayed, castConfigWeight: delayed, castConfigGradOutput: delayed }),
  });
  const opt = new optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = randn([16, 32]);
  const y = Int32Array.from({ length: 16 }, (_, i) => i % 16);
  trainSteps(model, opt, x, y, 5, true);
  const before = await settledStats();
  trainSteps(model, opt, x, y, 200, true);
  expect((await settledStats()).liveBytes).toBe(before.liveBytes);
});
