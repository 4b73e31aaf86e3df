// Beyond the seed: axiswise (row-wise) scaling and named recipes, per-GEMM cast
// overrides, power-of-2 scales, telemetry, and the automatic per-layer choice.
import { describe, expect, test } from "bun:test";
import { nn, float8, randn, manualSeed, tensor, type HighPrecisionDType } from "../src/index.ts";

const { CastConfig, Float8LinearConfig, ScalingType, ScalingGranularity, Float8Linear } = float8;

describe("axiswise scaling", () => {
  test("AXISWISE requires DYNAMIC", () => {
    expect(() => new CastConfig({ scalingType: ScalingType.DELAYED, scalingGranularity: ScalingGranularity.AXISWISE })).toThrow(/AXISWISE scaling requires DYNAMIC scaling, got delayed/);
    expect(() => new CastConfig({ scalingType: ScalingType.STATIC, staticScale: 1, scalingGranularity: ScalingGranularity.AXISWISE })).toThrow(/requires DYNAMIC/);
  });

  test("the axiswise cast has one scale per row and round-trips at >= 25 dB", () => {
    manualSeed(1);
    // rows with very different magnitudes: per-row scales keep each row precise
    const rows = 32, cols = 64;
    const v = randn([rows, cols]).toArray().map((x, i) => x * 10 ** ((Math.floor(i / cols) % 8) - 4));
    const x = tensor(v, { shape: [rows, cols] });
    const f = float8.hpTensorToFloat8Axiswise(x, "float8_e4m3fn", "input");
    expect(f.scale.numel).toBe(rows);
    expect(float8.computeError(x, f.toOriginalPrecision())).toBeGreaterThanOrEqual(25);
    // the smallest rows (1e-4 scale) keep >= 25 dB too; tensorwise scaling flushes them to zero
    const smallRow = (t: ReturnType<typeof tensor>) => t.slice(0, 0, 1);
    expect(float8.computeError(smallRow(x), smallRow(f.toOriginalPrecision()))).toBeGreaterThanOrEqual(25);
    const t = float8.hpTensorToFloat8Dynamic(x, "float8_e4m3fn", "input");
    expect(float8.computeError(smallRow(x), smallRow(t.toOriginalPrecision()))).toBeLessThan(1);
  });

  test("each row's scale is fp8_max / row amax", () => {
    const x = tensor([[1, -2, 0.5], [0.25, 0.1, -0.2]]);
    const f = float8.hpTensorToFloat8Axiswise(x, "float8_e4m3fn", "input");
    expect([...f.scale.toArray()]).toEqual([float8.amaxToScale(2, "float8_e4m3fn"), float8.amaxToScale(0.25, "float8_e4m3fn")]);
  });

  test("power-of-2 scales are exact powers of two, at most the unrounded scale", () => {
    manualSeed(2);
    const x = randn([16, 48]).mul(3.3);
    const f = float8.hpTensorToFloat8Axiswise(x, "float8_e4m3fn", "input", true);
    const g = float8.hpTensorToFloat8Axiswise(x, "float8_e4m3fn", "input", false);
    const p2 = f.scale.toArray(), raw = g.scale.toArray();
    for (let i = 0; i < p2.length; i++) {
      expect(Number.isInteger(Math.log2(p2[i]))).toBe(true);
      expect(p2[i]).toBeLessThanOrEqual(raw[i]);
      expect(p2[i] * 2).toBeGreaterThan(raw[i]);
    }
    expect(float8.roundScaleDownToPowerOf2(Math.fround(448 / 3))).toBe(128);
  });

  test("the row-scaled GEMM matches a decode-then-f32 reference", () => {
    manualSeed(3);
    const [M, K, N] = [9, 32, 7];
    const a = float8.hpTensorToFloat8Axiswise(randn([M, K]), "float8_e4m3fn", "input");
    const b = float8.hpTensorToFloat8Axiswise(randn([N, K]), "float8_e4m3fn", "weight");
    const out = float8.scaledMm(a, b, { transposeB: true, outDtype: "float32" }).toArray();
    const av = a.data.toArray(), bv = b.data.toArray(), sa = a.scale.toArray(), sb = b.scale.toArray();
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += av[i * K + k] * bv[j * K + k];
        const ref = acc / sa[i] / sb[j];
        expect(Math.abs(out[i * N + j] - ref)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(ref)));
      }
    }
  });
});

describe("recipes", () => {
  test("fromRecipeName builds torchao's recipes", () => {
    const rw = Float8LinearConfig.fromRecipeName("rowwise");
    expect(rw.castConfigInput.scalingGranularity).toBe("axiswise");
    expect(rw.castConfigGradOutput.targetDtype).toBe("float8_e4m3fn");
    expect(rw.roundScalesToPowerOf2).toBe(true);
    const gw = Float8LinearConfig.fromRecipeName("rowwise_with_gw_hp");
    expect(gw.castConfigInputForGradWeight.scalingType).toBe("disabled");
    expect(gw.castConfigWeightForGradInput.scalingGranularity).toBe("tensorwise");
    expect(Float8LinearConfig.fromRecipeName("tensorwise").isSimpleTensorwise).toBe(true);
    expect(() => Float8LinearConfig.fromRecipeName("colwise" as never)).toThrow(/unknown recipe 'colwise'/);
  });

  test("a GEMM with one DISABLED operand is rejected", () => {
    expect(() => new Float8LinearConfig({ castConfigInputForGradWeight: new CastConfig({ scalingType: ScalingType.DISABLED }) })).toThrow(/grad_weight GEMM has one operand DISABLED/);
  });

  test("delayed scaling with a different per-GEMM cast is rejected", () => {
    expect(() => new Float8LinearConfig({
      castConfigInput: new CastConfig({ scalingType: ScalingType.DELAYED }),
      castConfigInputForGradWeight: new CastConfig(),
    })).toThrow(/delayed scaling of input needs the same cast config/);
  });

  for (const recipe of ["rowwise", "rowwise_with_gw_hp"] as const) {
    for (const dtype of ["float32", "bfloat16"] as HighPrecisionDType[]) {
      test(`${recipe}, ${dtype}: output >= 18 dB, weight grad >= 17 dB, input grad >= 17 dB`, () => {
        manualSeed(21);
        const ref = new nn.Linear(64, 48, { dtype });
        const copy = new nn.Linear(64, 48, { dtype });
        copy.loadStateDict(ref.stateDict());
        const f8 = Float8Linear.fromFloat(copy, Float8LinearConfig.fromRecipeName(recipe));
        const x1 = randn([4, 8, 64], { dtype, requiresGrad: true });
        const x2 = x1.detach();
        x2.requiresGrad = true;
        const yRef = ref.forward(x1), y = f8.forward(x2);
        const go = randn(yRef.shape as number[], { dtype });
        yRef.backward(go);
        y.backward(go);
        expect(float8.computeError(yRef, y)).toBeGreaterThanOrEqual(18);
        expect(float8.computeError(ref.weight.grad!, f8.weight.grad!)).toBeGreaterThanOrEqual(17);
        expect(float8.computeError(x1.grad!, x2.grad!)).toBeGreaterThanOrEqual(17);
        expect(float8.computeError(ref.bias!.grad!, f8.bias!.grad!)).toBeGreaterThanOrEqual(17);
      });
    }
  }

  test("rowwise_with_gw_hp computes the weight gradient in high precision", () => {
    manualSeed(22);
    const ref = new nn.Linear(32, 16, { bias: false });
    const copy = new nn.Linear(32, 16, { bias: false });
    copy.loadStateDict(ref.stateDict());
    const f8 = Float8Linear.fromFloat(copy, Float8LinearConfig.fromRecipeName("rowwise_with_gw_hp"));
    const x = randn([8, 32]);
    const go = randn([8, 16]);
    ref.forward(x).backward(go);
    f8.forward(x).backward(go);
    // same x and grad_output in f32: the high-precision grad_weight GEMM is exact to rounding
    expect(float8.computeError(ref.weight.grad!, f8.weight.grad!)).toBeGreaterThan(100);
  });

  test("the repr shows per-GEMM overrides", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(16, 16), Float8LinearConfig.fromRecipeName("rowwise_with_gw_hp"));
    expect(m.toString()).toBe('Float8Linear(in_features=16, out_features=16, bias=True, scaling="i:dyn_axs,w:dyn_axs,go:dyn_axs,i_gw:dis,w_gi:dyn,go_gw:dis")');
  });
});

describe("telemetry", () => {
  test("stats are off by default and cost nothing: nothing is collected", () => {
    const m = new nn.Sequential(new nn.Linear(16, 16));
    float8.convertToFloat8Training(m);
    m.forward(randn([4, 16])).sum().backward();
    expect(float8.stats(m)).toEqual([]);
  });

  test("enabled stats report amax, scale, saturation, underflow and SQNR per layer and role", () => {
    manualSeed(5);
    const m = new nn.Sequential(new nn.Linear(16, 32), new nn.ReLU(), new nn.Linear(32, 8));
    float8.convertToFloat8Training(m);
    float8.enableStats(m);
    const x = randn([4, 16]);
    m.forward(x).sum().backward();
    const rows = float8.stats(m);
    expect(rows.map((r) => `${r.layer}/${r.role}`)).toEqual(["0/input", "0/weight", "0/grad_output", "2/input", "2/weight", "2/grad_output"]);
    const r0 = rows[0];
    expect(r0.amax).toBe(float8.tensorToAmax(x).item());
    expect(r0.scale).toBe(float8.amaxToScale(r0.amax, "float8_e4m3fn"));
    expect(r0.saturated).toBe(0); // dynamic scaling maps the amax to 448 exactly: nothing clamped
    expect(r0.sqnrDb).toBeGreaterThan(25);
    expect(float8.statsTable(m)).toContain("grad_output");
  });

  test("saturation counts clamped values and underflow counts nonzeros flushed to zero", () => {
    // static scale 1: 1000 and -500 exceed 448 (clamped); 1e-4 is below e4m3's smallest subnormal (2^-9)
    const st = new CastConfig({ scalingType: ScalingType.STATIC, staticScale: 1 });
    const m = Float8Linear.fromFloat(new nn.Linear(8, 4, { bias: false }), new Float8LinearConfig({ castConfigInput: st, castConfigWeight: st, castConfigGradOutput: st }));
    float8.enableStats(m);
    m.forward(tensor([[1000, -500, 1e-4, 0, 1, 2, 3, 4]]));
    const input = float8.stats(m).find((r) => r.role === "input")!;
    expect(input.saturated).toBe(2 / 8);
    expect(input.underflow).toBe(1 / 8);
  });

  test("with every = N, stats are collected on every Nth step only", () => {
    const m = new nn.Sequential(new nn.Linear(16, 16));
    float8.convertToFloat8Training(m);
    float8.enableStats(m, { every: 3 });
    const steps: number[] = [];
    for (let i = 0; i < 7; i++) {
      m.forward(randn([2, 16])).sum().backward();
      steps.push(float8.stats(m)[0].step);
    }
    expect(steps).toEqual([1, 1, 1, 4, 4, 4, 7]);
  });
});

describe("automatic per-layer choice", () => {
  /** A Linear of the given shape without allocating its weight (the filter reads only the dims). */
  function shapeOnlyLinear(K: number, N: number): nn.Linear {
    return Object.assign(Object.create(nn.Linear.prototype) as nn.Linear, { inFeatures: K, outFeatures: N });
  }

  test("the seed's worked examples: 1024,2048,1024 stays high precision, 4096,8192,16384 becomes float8", () => {
    const small = float8.autoFilterForRecipe("tensorwise", { M: 1024, device: "h100" });
    const big = float8.autoFilterForRecipe("tensorwise", { M: 4096, device: "h100" });
    expect(small(shapeOnlyLinear(2048, 1024), "small")).toBe(false);
    expect(big(shapeOnlyLinear(8192, 16384), "big")).toBe(true);
    expect(small.decisions[0].reason).toMatch(/keep bf16, predicted 0\.\d+x/);
  });

  test("decisions follow the predicted speedup; filterFqns keeps matching layers in high precision", () => {
    const fn = float8.autoFilterForRecipe("rowwise", { M: 2048, device: "h200", filterFqns: ["output"] });
    const shapes: [string, number, number][] = [["a", 1024, 1024], ["b", 8192, 8192], ["c", 512, 256], ["output", 8192, 8192]];
    const got = shapes.map(([fqn, K, N]) => fn(shapeOnlyLinear(K, N), fqn));
    const expected = shapes.map(([fqn, K, N]) => fqn !== "output" && float8.predictLinearSpeedup(2048, K, N, float8.H200).speedup > 1);
    expect(got).toEqual(expected);
    expect(got[1]).toBe(true);
    expect(fn.decisions.map((d) => d.fqn)).toEqual(["a", "b", "c", "output"]);
    expect(fn.decisions[3].reason).toMatch(/matches filter 'output'/);
  });

  test("non-Linear modules are never converted", () => {
    const fn = float8.autoFilterForRecipe("tensorwise", { M: 4096 });
    expect(fn(new nn.ReLU(), "act")).toBe(false);
    expect(() => float8.autoFilterForRecipe("tensorwise", { M: 0 })).toThrow(/M must be a positive integer/);
  });
});
