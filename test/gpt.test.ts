// The GPT example in miniature: causal attention, float8 conversion that skips
// the output projection, a few steps of training that lower the loss, and the
// same run on a device (the emulated one of device_emulated.test.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { float8, noGrad, tidy } from "../src/index.ts";
import { emulatedDeviceBackend, setBackend } from "../src/tensor/backend/index.ts";
import { buildGpt, charData, sample, trainGpt } from "../examples/gpt.ts";

const text = "In the beginning God created the heaven and the earth. And the earth was without form, and void. ".repeat(20);
const data = charData(text);
const tiny = { dim: 32, nLayers: 2, nHeads: 2, seqLen: 16, seed: 0 };

test("the vocabulary and split cover the text", () => {
  expect(data.chars.join("")).toBe([...new Set(text)].sort().join(""));
  expect(data.train.length + data.val.length).toBe(text.length);
});

test("attention is causal: changing a later token leaves earlier logits unchanged", () => {
  const m = buildGpt("bf16", data.chars.length, tiny);
  const a = Int32Array.from({ length: 16 }, (_, i) => (i * 5) % data.chars.length);
  const b = a.slice();
  b[10] = (b[10] + 1) % data.chars.length;
  const [la, lb] = noGrad(() => tidy(() => [m.forward(a, 1, 16).toArray(), m.forward(b, 1, 16).toArray()]));
  const V = data.chars.length;
  expect(lb.subarray(0, 10 * V)).toEqual(la.subarray(0, 10 * V));
  expect(lb.subarray(10 * V)).not.toEqual(la.subarray(10 * V));
  m.dispose();
});

test("float8 converts every Linear but the output projection", () => {
  const m = buildGpt("float8", data.chars.length, tiny);
  const converted = [...m.namedModules()].filter(([, x]) => x instanceof float8.Float8Linear).map(([fqn]) => fqn);
  expect(converted.length).toBe(2 * 7);
  expect(converted).toContain("layers.0.attention.wq");
  expect(converted).toContain("layers.1.feed_forward.w2");
  expect(converted).not.toContain("output");
  m.dispose();
});

// generous timeouts: on a CPU shared with other jobs, per-op latency can grow many times over
for (const recipe of ["bf16", "float8"] as const) {
  test(`${recipe}: a few steps lower the loss, and sampling yields characters of the vocabulary`, () => {
    const r = trainGpt(recipe, data, { ...tiny, steps: 12, batchSize: 4, lr: 1e-2, evalBatches: 1 });
    const head = (r.losses[0] + r.losses[1]) / 2;
    const tail = (r.losses[10] + r.losses[11]) / 2;
    expect(tail).toBeLessThan(head * 0.85);
    expect(Number.isFinite(r.valLoss)).toBe(true);
    const s = sample(r.model, data, "And ", 20);
    expect(s.length).toBe(20);
    for (const c of s) expect(data.chars).toContain(c);
    r.model.dispose();
  }, 60_000);
}

describe("on the emulated device", () => {
  const emulated = emulatedDeviceBackend("cuda");
  beforeAll(() => setBackend("cuda", emulated));
  afterAll(() => setBackend("cuda", null));

  for (const recipe of ["bf16", "float8"] as const) {
    test(`${recipe}: trainGpt and sample on the device give the CPU's losses and text`, () => {
      // batch 3 x seq 10: grad_weight's inner dim 30 takes the padInnerDim path of the device's fp8 GEMM
      const o = { ...tiny, seqLen: 10, steps: 3, batchSize: 3, lr: 1e-2, evalBatches: 1 };
      const cpu = trainGpt(recipe, data, o);
      const dev = trainGpt(recipe, data, { ...o, device: "cuda" });
      expect(dev.model.parameters().every((p) => p.device === "cuda")).toBe(true);
      expect(dev.losses).toEqual(cpu.losses);
      expect(dev.valLoss).toBe(cpu.valLoss);
      expect(sample(dev.model, data, "And ", 12)).toBe(sample(cpu.model, data, "And ", 12));
      cpu.model.dispose();
      dev.model.dispose();
    }, 60_000);
  }

  test("after the first step, a training step uploads only its token ids and targets and reads back only its loss", () => {
    for (const recipe of ["bf16", "float8"] as const) {
      const seen: { uploads: number; downloads: number }[] = [];
      const r = trainGpt(recipe, data, { ...tiny, steps: 4, batchSize: 4, lr: 1e-2, evalBatches: 0, device: "cuda", progress: () => seen.push(emulated.transfers()) });
      for (let i = 1; i < seen.length; i++) {
        expect({ uploads: seen[i].uploads - seen[i - 1].uploads, downloads: seen[i].downloads - seen[i - 1].downloads }).toEqual({ uploads: 2, downloads: 1 });
      }
      r.model.dispose();
    }
  }, 60_000);
});
