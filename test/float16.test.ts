// float16.test.ts — torch.float16 as a high-precision dtype (issue 17, item 8): tensor
// conversions (exhaustive against JavaScript's own Float16Array / Math.f16round), fp8
// casts from float16 with the 65504 scale clamp, Linear and Float8Linear forward and
// backward in float16, an optimizer step, safetensors F16, and clean errors where an op
// does not take float16.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nn, float8, optim, io, randn, manualSeed, tensor, Tensor, Float8Error } from "../src/index.ts";
import { lib } from "../src/ffi/index.ts";
import { uniformStream } from "../src/tensor/random.ts";

const F32 = 0, E4M3 = 2, E5M2 = 3, F16 = 11;

describe("float16 conversions", () => {
  test("every float16 bit pattern decodes to the float32 Float16Array gives (NaN payload aside)", () => {
    const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const out = new Float32Array(65536);
    expect(lib.fp8_cpu_convert(out, F32, bits, F16, 65536)).toBe(0);
    const want = new Float16Array(bits.buffer);
    for (let i = 0; i < 65536; i++) {
      if (Number.isNaN(want[i])) expect(Number.isNaN(out[i])).toBe(true);
      else expect([i, out[i]]).toEqual([i, want[i]]);
    }
  });

  test("float32 -> float16 rounds to nearest even like Math.f16round (random bit patterns, overflow to inf, subnormals)", () => {
    const u = uniformStream(11);
    const n = 200_003;
    const src = new Float32Array(Uint32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? (u() * 4294967296) >>> 0 : (0x30000000 + u() * 0x18000000) >>> 0)).buffer);
    const out = new Uint16Array(n);
    expect(lib.fp8_cpu_convert(out, F16, src, F32, n)).toBe(0);
    const got = new Float16Array(out.buffer);
    for (let i = 0; i < n; i++) {
      const w = Math.f16round(src[i]);
      if (Number.isNaN(w)) expect(Number.isNaN(got[i])).toBe(true);
      else if (!Object.is(got[i], w)) throw new Error(`element ${i}: ${src[i]} -> ${got[i]}, want ${w}`);
    }
  });

  test("tensor round trips: float16 <-> bfloat16 <-> float32 and to/from fp8", () => {
    const x = tensor([1, -2.5, 65504, 70000, 1e-8, 6e-8, 0.1]).to({ dtype: "float16" });
    expect(x.dtype).toBe("float16");
    expect(Array.from(x.toArray())).toEqual([1, -2.5, 65504, Infinity, 0, Math.f16round(6e-8), Math.f16round(0.1)]);
    // 65504 is not a bfloat16: it rounds to 65536, which overflows float16 on the way back
    expect(Array.from(x.to({ dtype: "bfloat16" }).to({ dtype: "float16" }).toArray()).slice(0, 3)).toEqual([1, -2.5, Infinity]);
    const back = new Uint16Array(4);
    expect(lib.fp8_cpu_convert(back, F16, Uint8Array.of(0x38, 0x7e, 0x3c, 0xfb), E4M3, 4)).toBe(0);
    expect(Array.from(new Float16Array(back.buffer))).toEqual([1, 448, 1.5, -352]);
    expect(lib.fp8_cpu_convert(back, F16, Uint8Array.of(0x7b, 0x7c, 0x3c, 0x01), E5M2, 4)).toBe(0);
    expect(Array.from(new Float16Array(back.buffer))).toEqual([57344, Infinity, 1, 2 ** -16]);
  });
});

describe("fp8 casts from float16", () => {
  test("a float16 tensor casts to the same fp8 bytes as its exact float32 widening (both formats, threaded size)", () => {
    manualSeed(4);
    const x32 = randn([300, 400]).mul(tensor([30]));
    const x16 = x32.to({ dtype: "float16" });
    const w = x16.to({ dtype: "float32" });
    for (const d of ["float8_e4m3fn", "float8_e5m2"] as const) {
      const a = float8.toFloat8Saturated(x16, 2.5, d).bytes(), b = float8.toFloat8Saturated(w, 2.5, d).bytes();
      expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
      const fa = float8.hpTensorToFloat8Dynamic(x16, d, "input"), fb = float8.hpTensorToFloat8Dynamic(w, d, "input");
      expect(fa.scale.item()).toBe(fb.scale.item());
      expect(Buffer.from(fa.data.bytes()).equals(Buffer.from(fb.data.bytes()))).toBe(true);
      expect(fa.toOriginalPrecision().dtype).toBe("float16");
    }
  });

  test("dynamic scales of float16 tensors are clamped to 65504 (torchao's amax_to_scale)", () => {
    const tiny = tensor([1e-3, -2e-3]).to({ dtype: "float16" });
    expect(float8.hpTensorToFloat8Dynamic(tiny, "float8_e5m2", "grad_output").scale.item()).toBe(65504);
    expect(float8.tensorToScale(tiny, "float8_e5m2")[0].item()).toBe(65504);
    expect(float8.tensorToScale(tiny.to({ dtype: "float32" }), "float8_e5m2")[0].item()).toBeGreaterThan(65504);
    expect(float8.amaxToScale(Math.fround(2e-3), "float8_e5m2", "float16")).toBe(65504);
  });
});

describe("Linear and Float8Linear in float16", () => {
  test("Linear forward in float16 is float32's rounded (>= 60 dB), bias included", () => {
    manualSeed(5);
    const ref = new nn.Linear(64, 32);
    const h = new nn.Linear(64, 32, { weight: ref.weight.detach().to({ dtype: "float16" }), biasTensor: ref.bias!.detach().to({ dtype: "float16" }) });
    const x = randn([16, 64]);
    const y = h.forward(x.to({ dtype: "float16" }));
    expect(y.dtype).toBe("float16");
    expect(float8.computeError(ref.forward(x), y.to({ dtype: "float32" }))).toBeGreaterThanOrEqual(60);
  });

  for (const scaling of ["dynamic", "delayed"] as const) {
    test(`Float8Linear (${scaling}) trains in float16: outputs and gradients float16, within the float8 SQNR bars, an SGD step moves the weights`, () => {
      manualSeed(6);
      const ref = new nn.Linear(64, 32);
      const h = new nn.Linear(64, 32, { weight: ref.weight.detach().to({ dtype: "float16" }), biasTensor: ref.bias!.detach().to({ dtype: "float16" }) });
      const cc = () => new float8.CastConfig({ scalingType: scaling });
      const f8 = float8.Float8Linear.fromFloat(h, new float8.Float8LinearConfig({ castConfigInput: cc(), castConfigWeight: cc(), castConfigGradOutput: cc() }));
      const x = randn([16, 64]), g = randn([16, 32]);
      const yRef = ref.forward(x);
      yRef.backward(g);
      const y = f8.forward(x.to({ dtype: "float16" }));
      y.backward(g.to({ dtype: "float16" }));
      expect([y.dtype, f8.weight.grad!.dtype, f8.bias!.grad!.dtype]).toEqual(["float16", "float16", "float16"]);
      expect(float8.computeError(yRef, y.to({ dtype: "float32" }))).toBeGreaterThanOrEqual(18);
      expect(float8.computeError(ref.weight.grad!, f8.weight.grad!.to({ dtype: "float32" }))).toBeGreaterThanOrEqual(17);
      expect(float8.computeError(ref.bias!.grad!, f8.bias!.grad!.to({ dtype: "float32" }))).toBeGreaterThanOrEqual(17);
      if (scaling === "delayed") float8.syncFloat8AmaxAndScaleHistory(f8);
      const before = Array.from(f8.weight.toArray());
      new optim.SGD(f8.parameters(), { lr: 0.1 }).step();
      const after = Array.from(f8.weight.toArray());
      expect(after).not.toEqual(before);
      // w - 0.1 * grad, rounded to float16
      const gw = f8.weight.grad!.toArray();
      for (let i = 0; i < 50; i++) expect(after[i]).toBe(Math.f16round(Math.fround(before[i] + Math.fround(-0.1 * gw[i]))));
    });
  }

  test("an MLP (Float8Linear, ReLU, MSE) trains in float16 with SGD: the loss falls, as in float32", () => {
    const run = (dtype: "float16" | "float32") => {
      manualSeed(9);
      const m = new nn.Sequential(new nn.Linear(32, 64), new nn.ReLU(), new nn.Linear(64, 8)).to({ dtype });
      float8.convertToFloat8Training(m);
      const opt = new optim.SGD(m.parameters(), { lr: 0.05 });
      const x = randn([64, 32]).to({ dtype }), y = randn([64, 8]).mul(tensor([0.5])).to({ dtype });
      const losses: number[] = [];
      for (let s = 0; s < 20; s++) {
        opt.zeroGrad();
        const loss = nn.mseLoss(m.forward(x), y);
        losses.push(loss.item());
        loss.backward();
        opt.step();
      }
      return losses;
    };
    const h = run("float16"), f = run("float32");
    expect(h[19]).toBeLessThan(h[0] * 0.9);
    for (let s = 0; s < 20; s++) expect(Math.abs(h[s] - f[s]) / f[s]).toBeLessThan(0.05);
  }, 120000); // tens of ms on an idle machine; OpenMP threads spinning on a loaded one take seconds

  test("an op without a float16 kernel is a clear Float8Error naming float16", () => {
    const x = tensor([[1, -1]]).to({ dtype: "float16" });
    expect(() => x.softmax(-1)).toThrow(Float8Error);
    expect(() => x.softmax(-1)).toThrow(/float16/);
    expect(Array.from(x.relu().toArray())).toEqual([1, 0]);
  });
});

describe("safetensors F16", () => {
  test("float16 tensors round trip through a file as F16", () => {
    const dir = mkdtempSync(join(tmpdir(), "f16-"));
    try {
      const t = Tensor.fromBytes(new Uint8Array(Uint16Array.from({ length: 64 }, (_, i) => i * 997).buffer), { shape: [8, 8], dtype: "float16" });
      const path = join(dir, "h.safetensors");
      io.saveFile({ t }, path);
      const { tensors } = io.loadFile(path);
      expect(tensors.t.dtype).toBe("float16");
      expect(Buffer.from(tensors.t.bytes()).equals(Buffer.from(t.bytes()))).toBe(true);
      expect(Bun.file(path).size).toBeGreaterThan(128);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
