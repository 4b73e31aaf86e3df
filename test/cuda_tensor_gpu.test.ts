// cuda_tensor_gpu.test.ts — Tensor, autograd, nn, optim and float8 on a real
// GPU (device "cuda": libfp8_cuda's kernels and cuBLASLt), against the same
// programs on the CPU: every case of test/helpers/device_cases.ts, with its
// tolerance (casts and data movement bit for bit; GEMMs and transcendental
// functions within f32/bf16 rounding; float8 results by SQNR). Without a
// usable GPU every test is skipped, with the reason printed. The same cases
// run without a GPU on the emulated device (device_emulated.test.ts), so a
// failure here that passes there is in libfp8_cuda.
import { describe, expect, test } from "bun:test";
import { cuda, memoryStats, nn, tensor, tidy, zeros } from "../src/index.ts";
import { defineParityTests } from "./helpers/device_cases.ts";

const gpu = cuda.isAvailable();
if (!gpu) console.log(`cuda_tensor_gpu.test.ts: SKIPPED: no usable GPU (${cuda.probe().reason})`);
const gpuDescribe = describe.skipIf(!gpu);

gpuDescribe("cuda tensors match the CPU", () => defineParityTests("cuda"));

gpuDescribe("cuda tensors", () => {
  test("values round-trip through device memory; rawView refuses", () => {
    const x = tensor([1.5, -2, 3], { device: "cuda" });
    expect([...x.toArray()]).toEqual([1.5, -2, 3]);
    expect(() => x.rawView()).toThrow(/in cuda memory/);
  });

  test("a training loop's device memory stays flat over steps", () => {
    const lin = new nn.Linear(256, 256).to({ device: "cuda" });
    const x = zeros([64, 256], { device: "cuda" });
    const step = () => tidy(() => {
      lin.zeroGrad();
      lin.forward(x).sum().backward();
    });
    step();
    const before = memoryStats("cuda").liveBytes;
    for (let i = 0; i < 20; i++) step();
    expect(memoryStats("cuda").liveBytes).toBe(before);
  });
});
