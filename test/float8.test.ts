// The float8 training API: configs, casts, scaled GEMM, Float8Linear numerics
// against high precision (torchao's SQNR thresholds), delayed scaling, module swap.
import { describe, expect, test } from "bun:test";
import { nn, float8, randn, tensor, manualSeed, Tensor, savedTensorBytes, type HighPrecisionDType } from "../src/index.ts";

const { ScalingType, CastConfig, Float8LinearConfig, DelayedScalingConfig, Float8Linear } = float8;
type ST = (typeof ScalingType)[keyof typeof ScalingType];

function configFor(st: ST): float8.Float8LinearConfig {
  const cast = (scale: number) =>
    st === ScalingType.STATIC ? new CastConfig({ scalingType: st, staticScale: scale }) : new CastConfig({ scalingType: st });
  return new Float8LinearConfig({ castConfigInput: cast(1), castConfigWeight: cast(1), castConfigGradOutput: cast(1) });
}

describe("configs", () => {
  test("defaults follow torchao", () => {
    const c = new Float8LinearConfig();
    expect(c.castConfigInput.scalingType).toBe("dynamic");
    expect(c.gemmConfigOutput.useFastAccum).toBe(true);
    expect(c.gemmConfigGradInput.useFastAccum).toBe(false);
    expect(c.gemmConfigGradWeight.useFastAccum).toBe(false);
    expect(c.enableAmaxInit).toBe(true);
    expect(c.enablePreAndPostForward).toBe(true);
    expect(c.enableFsdpFloat8AllGather).toBe(false);
    expect(c.padInnerDim).toBe(false);
    expect(c.emulate).toBe(false);
    expect(c.forceRecomputeFp8WeightInBwd).toBe(false);
    expect(c.delayedScalingConfig.historyLen).toBe(16);
    expect(Object.isFrozen(c)).toBe(true);
  });

  test("STATIC without staticScale is an error at construction", () => {
    expect(() => new CastConfig({ scalingType: ScalingType.STATIC })).toThrow(/CastConfig: STATIC scaling requires staticScale/);
  });

  test("unknown scaleFnName, bad historyLen and unknown options are clear errors", () => {
    expect(() => new DelayedScalingConfig({ scaleFnName: "mean" })).toThrow(/scaleFnName 'mean' is not supported; only 'max' is/);
    expect(() => new DelayedScalingConfig({ historyLen: 0 })).toThrow(/historyLen must be a positive integer/);
    expect(() => new Float8LinearConfig({ emulated: true } as never)).toThrow(/unknown option 'emulated'/);
    expect(() => new Float8LinearConfig({ padInnerDim: "yes" } as never)).toThrow(/padInnerDim must be a boolean/);
    expect(() => new CastConfig({ scalingType: "weird" as never })).toThrow(/unknown scalingType 'weird'/);
  });

  test("repr shows the scaling of each operand", () => {
    const cfg = new Float8LinearConfig({
      castConfigWeight: new CastConfig({ scalingType: ScalingType.DELAYED }),
      castConfigGradOutput: new CastConfig({ scalingType: ScalingType.STATIC, staticScale: 2 }),
    });
    const m = Float8Linear.fromFloat(new nn.Linear(64, 96), cfg);
    expect(m.toString()).toBe('Float8Linear(in_features=64, out_features=96, bias=True, scaling="i:dyn,w:del,go:sta")');
  });
});

describe("casts and scaled GEMM", () => {
  test("hpTensorAndScaleToFloat8 with amaxOut records max |x| from the cast's pass (bf16 and f32), and rejects a bad amaxOut", () => {
    manualSeed(3);
    for (const dtype of ["bfloat16", "float32"] as const) {
      const x = randn([300, 70], { dtype, std: 5 });
      const scale = tensor([2.5]);
      const amax = tensor([0]);
      const f = float8.hpTensorAndScaleToFloat8(x, scale, "float8_e4m3fn", "input", true, amax);
      expect(amax.item()).toBe(float8.tensorToAmax(x).item());
      const plain = float8.hpTensorAndScaleToFloat8(x, scale, "float8_e4m3fn", "input");
      expect(Buffer.from(f.data.bytes()).equals(Buffer.from(plain.data.bytes()))).toBe(true);
    }
    const x = randn([4, 8]);
    expect(() => float8.hpTensorAndScaleToFloat8(x, tensor([1]), "float8_e5m2", "grad_output", false, tensor([0, 0])))
      .toThrow("hpTensorAndScaleToFloat8: amaxOut must be a one-element float32 tensor on cpu, got shape [2] dtype float32 on cpu");
  });

  test("amaxToScale is fp8_max / max(amax, 1e-12) rounded to f32, clamped for float16", () => {
    expect(float8.amaxToScale(3, "float8_e4m3fn")).toBe(Math.fround(448 / 3));
    expect(float8.amaxToScale(0, "float8_e5m2")).toBe(Math.fround(57344 / 1e-12));
    expect(float8.amaxToScale(1e-9, "float8_e4m3fn", "float16")).toBe(65504);
  });

  test("dynamic cast round-trips randn at >= 25 dB in both fp8 dtypes", () => {
    manualSeed(3);
    const x = randn([64, 64]);
    for (const d of ["float8_e4m3fn", "float8_e5m2"] as const) {
      const f = float8.hpTensorToFloat8Dynamic(x, d, "input");
      expect(float8.computeError(x, f.toOriginalPrecision())).toBeGreaterThanOrEqual(25);
    }
  });

  test("the dynamic scale is amaxToScale of the tensor's amax", () => {
    const x = tensor([0.5, -3, 2]);
    const [scale, amax] = float8.tensorToScale(x, "float8_e4m3fn");
    expect(amax.item()).toBe(3);
    expect(scale.item()).toBe(float8.amaxToScale(3, "float8_e4m3fn"));
  });

  test("the fused cast writes the same fp8 bytes as toFloat8Saturated and their exact bf16 values", () => {
    manualSeed(8);
    for (const dtype of ["float32", "bfloat16"] as const) {
      const x = randn([257, 129], { dtype }).mul(40); // odd sizes, values past e4m3's max once scaled
      const scale = float8.tensorToScale(x, "float8_e4m3fn")[0].mul(2); // 2x: some values clamp
      const [data, decoded] = float8.toFloat8SaturatedWithDecoded(x, scale, "float8_e4m3fn");
      expect([...data.bytes()]).toEqual([...float8.toFloat8Saturated(x, scale, "float8_e4m3fn").bytes()]);
      expect([...decoded.bytes()]).toEqual([...data.to({ dtype: "bfloat16" }).bytes()]);
    }
  });

  test("toFloat8Saturated saturates to +-max", () => {
    const y = float8.toFloat8Saturated(tensor([1, -1, 0.001]), 1000, "float8_e4m3fn");
    expect([...y.toArray()]).toEqual([448, -448, 1]);
  });

  test("fp8TensorStatistics counts zeros and saturated values", () => {
    const y = float8.toFloat8Saturated(tensor([1e-9, 0, 1e6, -1e6, 1]), 1, "float8_e4m3fn");
    const s = float8.fp8TensorStatistics(y);
    expect(s.zeros).toBe(2);
    expect(s.saturated).toBe(2);
  });

  test("scaledMm matches a decode-then-f32 reference to 1e-5 relative", () => {
    manualSeed(4);
    const [M, K, N] = [17, 48, 33];
    const a = float8.hpTensorToFloat8Dynamic(randn([M, K]), "float8_e4m3fn", "input");
    const b = float8.hpTensorToFloat8Dynamic(randn([N, K]), "float8_e4m3fn", "weight");
    const out = float8.scaledMm(a, b, { transposeB: true, outDtype: "float32" }).toArray();
    const av = a.data.toArray(), bv = b.data.toArray();
    const sa = a.scale.item(), sb = b.scale.item();
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += (av[i * K + k] / sa) * (bv[j * K + k] / sb);
        expect(Math.abs(out[i * N + j] - acc)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(acc)));
      }
    }
  });

  test("scaledMm rejects mismatched inner dims naming shapes and dtypes", () => {
    const a = float8.hpTensorToFloat8Dynamic(randn([4, 16]), "float8_e4m3fn", "input");
    const b = float8.hpTensorToFloat8Dynamic(randn([8, 32]), "float8_e4m3fn", "weight");
    expect(() => float8.scaledMm(a, b, { transposeB: true })).toThrow(/scaledMm: inner dims differ: op\(a\) is \[4, 16\], op\(b\) is \[32, 8\] \(float8_e4m3fn, float8_e4m3fn\)/);
  });

  test("K not a multiple of 16 is an error where the fp8 GEMM needs it, unless padInnerDim", () => {
    expect(() => float8.checkInnerDim(24, "cuda", false, "scaledMm")).toThrow(/inner dim K=24 is not a multiple of 16.*padInnerDim/);
    expect(() => float8.checkInnerDim(24, "cuda", true, "scaledMm")).not.toThrow();
    expect(() => float8.checkInnerDim(24, "cpu", false, "scaledMm")).not.toThrow();
  });
});

function linearPair(dtype: HighPrecisionDType, cfg: float8.Float8LinearConfig, bias = true) {
  const ref = new nn.Linear(16, 32, { dtype, bias });
  const copy = new nn.Linear(16, 32, { dtype, bias });
  copy.loadStateDict(ref.stateDict());
  return { ref, f8: Float8Linear.fromFloat(copy, cfg) };
}

describe("Float8Linear against high precision (torchao's thresholds)", () => {
  for (const dtype of ["float32", "bfloat16"] as const) {
    for (const st of [ScalingType.DYNAMIC, ScalingType.DELAYED, ScalingType.STATIC]) {
      test(`${st} scaling, ${dtype}: output >= 18 dB, weight grad >= 17 dB`, () => {
        manualSeed(11);
        const { ref, f8 } = linearPair(dtype, configFor(st));
        for (let it = 0; it < 2; it++) {
          const x = randn([2, 16, 16], { dtype });
          ref.zeroGrad();
          f8.zeroGrad();
          const yRef = ref.forward(x);
          const y = f8.forward(x);
          yRef.sum().backward();
          y.sum().backward();
          expect(y.dtype).toBe(dtype);
          expect(float8.computeError(yRef, y)).toBeGreaterThanOrEqual(18);
          expect(float8.computeError(ref.weight.grad!, f8.weight.grad!)).toBeGreaterThanOrEqual(17);
          expect(float8.computeError(ref.bias!.grad!, f8.bias!.grad!)).toBeGreaterThanOrEqual(17);
          if (st === ScalingType.DELAYED) float8.syncFloat8AmaxAndScaleHistory(f8);
        }
      });
    }
  }
});

class FeedForward extends nn.Module {
  w1: nn.Linear;
  w2: nn.Linear;
  w3: nn.Linear;
  constructor(dim: number, hidden: number) {
    super();
    this.w1 = this.registerModule("w1", new nn.Linear(dim, hidden, { bias: false, dtype: "bfloat16" }));
    this.w2 = this.registerModule("w2", new nn.Linear(hidden, dim, { bias: false, dtype: "bfloat16" }));
    this.w3 = this.registerModule("w3", new nn.Linear(dim, hidden, { bias: false, dtype: "bfloat16" }));
  }
  forward(x: Tensor): Tensor {
    return this.w2.forward(this.w1.forward(x).silu().mul(this.w3.forward(x)));
  }
}

describe("SwiGLU FeedForward (dim 256, hidden 768, bf16)", () => {
  for (const st of [ScalingType.DYNAMIC, ScalingType.DELAYED]) {
    test(`${st}: output and every parameter grad > 20 dB`, () => {
      manualSeed(5);
      const ref = new FeedForward(256, 768);
      const ff = new FeedForward(256, 768);
      ff.loadStateDict(ref.stateDict());
      float8.convertToFloat8Training(ff, { config: configFor(st) });
      const x = randn([4, 32, 256], { dtype: "bfloat16" });
      const yRef = ref.forward(x);
      const y = ff.forward(x);
      yRef.sum().backward();
      y.sum().backward();
      expect(float8.computeError(yRef, y)).toBeGreaterThan(20);
      const refParams = Object.fromEntries(ref.namedParameters());
      for (const [name, p] of ff.namedParameters()) {
        expect(float8.computeError(refParams[name].grad!, p.grad!)).toBeGreaterThan(20);
      }
    });
  }
});

describe("delayed scaling", () => {
  const delayedCfg = (historyLen: number) => {
    const d = new CastConfig({ scalingType: ScalingType.DELAYED });
    return new Float8LinearConfig({
      castConfigInput: d, castConfigWeight: d, castConfigGradOutput: d,
      delayedScalingConfig: new DelayedScalingConfig({ historyLen }),
    });
  };

  test("the history rolls, takes the new amax in slot 0, and scale = amaxToScale(max(history))", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(16, 16, { bias: false }), delayedCfg(3));
    const st = m.scaling.input;
    const hist = () => [...st.history!.toArray()];
    const amaxes = [2, 5, 1, 0.5];
    for (let i = 0; i < amaxes.length; i++) {
      const x = tensor(new Float32Array(16).fill(0.25).map((v, j) => (j === 0 ? amaxes[i] : v)), { shape: [1, 16] });
      m.forward(x).sum().backward();
      expect(st.amax!.item()).toBe(amaxes[i]);
      float8.syncFloat8AmaxAndScaleHistory(m);
    }
    // after 4 syncs with historyLen 3: slot 0 newest; the first amax (2) was also seeded by amax init
    expect(hist()).toEqual([0.5, 1, 5]);
    expect(st.scale!.item()).toBe(float8.amaxToScale(5, "float8_e4m3fn"));
  });

  test("the first forward seeds history and scale from the live tensor (enableAmaxInit)", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(16, 16, { bias: false }), delayedCfg(4));
    const x = tensor(new Float32Array(16).fill(3), { shape: [1, 16] });
    m.forward(x);
    expect(m.scaling.input.history!.toArray()[0]).toBe(3);
    expect(m.scaling.input.scale!.item()).toBe(float8.amaxToScale(3, "float8_e4m3fn"));
  });

  test("a forward after a backward without a sync throws 'amaxes and scales not synced'", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(16, 16), delayedCfg(4));
    const x = randn([2, 16]);
    m.forward(x).sum().backward();
    expect(() => m.forward(x)).toThrow(/amaxes and scales not synced/);
    float8.syncFloat8AmaxAndScaleHistory(m);
    expect(() => m.forward(x)).not.toThrow();
  });

  test("syncFloat8AmaxAndScaleHistory updates every layer of a model", () => {
    const model = new nn.Sequential(new nn.Linear(16, 32), new nn.ReLU(), new nn.Linear(32, 16));
    float8.convertToFloat8Training(model, { config: delayedCfg(2) });
    model.forward(randn([4, 16])).sum().backward();
    float8.syncFloat8AmaxAndScaleHistory(model);
    for (const l of float8.float8Layers(model)) {
      for (const st of Object.values(l.scaling)) {
        expect(st.scale!.item()).toBe(float8.amaxToScale(Math.max(...st.history!.toArray()), st.float8Dtype));
      }
      expect(l.amaxAndScaleSynced).toBe(true);
    }
  });
});

describe("convertToFloat8Training", () => {
  class Inner extends nn.Module {
    proj = this.registerModule("proj", new nn.Linear(32, 32));
    norm = this.registerModule("norm", new nn.LayerNorm(32));
    forward(x: Tensor): Tensor {
      return this.norm.forward(this.proj.forward(x));
    }
  }
  class Outer extends nn.Module {
    blocks = this.registerModule("blocks", new nn.ModuleList([new Inner(), new Inner()]));
    head = this.registerModule("head", new nn.Linear(32, 10));
    forward(x: Tensor): Tensor {
      let y = x;
      for (const b of this.blocks) y = b.forward(y);
      return this.head.forward(y);
    }
  }

  test("the filter sees every Linear's fqn; nested Linears are swapped, others left alone", () => {
    const model = new Outer();
    const seen: string[] = [];
    const weightBefore = (model.head as nn.Linear).weight;
    float8.convertToFloat8Training(model, {
      moduleFilterFn: (m, fqn) => {
        seen.push(fqn);
        return fqn !== "head";
      },
    });
    expect(seen).toEqual(["blocks.0.proj", "blocks.1.proj", "head"]);
    const kinds = Object.fromEntries([...model.namedModules()].map(([n, m]) => [n, m.name]));
    expect(kinds["blocks.0.proj"]).toBe("Float8Linear");
    expect(kinds["blocks.1.proj"]).toBe("Float8Linear");
    expect(kinds["head"]).toBe("Linear");
    expect(kinds["blocks.0.norm"]).toBe("LayerNorm");
    expect(model.head.weight).toBe(weightBefore);
    // the typed field follows the swap
    expect((model.blocks.at(0) as Inner).proj).toBeInstanceOf(Float8Linear);
  });

  test("the swap keeps the weights: outputs stay close to the original", () => {
    manualSeed(9);
    const model = new Outer();
    const x = randn([8, 32]);
    const before = model.forward(x);
    float8.convertToFloat8Training(model);
    expect(float8.computeError(before, model.forward(x))).toBeGreaterThan(15);
  });

  test("a Linear root is converted and returned", () => {
    const out = float8.convertToFloat8Training(new nn.Linear(16, 16));
    expect(out).toBeInstanceOf(Float8Linear);
  });
});

test("emulate: true and false give bit-identical results on the CPU (which always emulates)", () => {
  const run = (emulate: boolean) => {
    manualSeed(13);
    const m = Float8Linear.fromFloat(new nn.Linear(64, 32, { dtype: "bfloat16" }), new Float8LinearConfig({ emulate }));
    const x = randn([8, 64], { dtype: "bfloat16", requiresGrad: true });
    const y = m.forward(x);
    y.backward(randn([8, 32], { dtype: "bfloat16" }));
    return [y.bytes(), x.grad!.bytes(), m.weight.grad!.bytes()].map((b) => [...b]);
  };
  expect(run(true)).toEqual(run(false));
});

test("forceRecomputeFp8WeightInBwd drops the saved fp8 weight and keeps the gradients", () => {
  manualSeed(12);
  const run = (force: boolean) => {
    manualSeed(12);
    const m = Float8Linear.fromFloat(new nn.Linear(256, 512, { bias: false }), new Float8LinearConfig({ forceRecomputeFp8WeightInBwd: force }));
    const y = m.forward(randn([8, 256]));
    const bytes = savedTensorBytes(y);
    y.sum().backward();
    return { bytes, grad: m.weight.grad!.toArray() };
  };
  const kept = run(false);
  const recomputed = run(true);
  // per weight element: its fp8 byte and the exact bf16 decode the CPU GEMM consumes
  expect(kept.bytes - recomputed.bytes).toBe(512 * 256 * (1 + 2));
  expect([...recomputed.grad]).toEqual([...kept.grad]);
});
