// torchao_parity.test.ts — Float8Linear behaviours that follow torchao.float8 (issue 17):
// amax initialisation from the whole history, the root-Linear rule, the sync check
// only under autograd, FSDP's static weight and precompute rules, the nine delayed
// buffers with torchao's initial values, and torch's extraRepr.
import { describe, expect, test } from "bun:test";
import { nn, float8, distributed as dist, noGrad, ones, tensor, manualSeed, randn } from "../src/index.ts";

const { ScalingType, CastConfig, Float8LinearConfig, DelayedScalingConfig, Float8Linear } = float8;

const delayed = (opts: Partial<float8.Float8LinearConfigOptions> = {}, historyLen = 4) => new Float8LinearConfig({
  castConfigInput: new CastConfig({ scalingType: ScalingType.DELAYED }),
  castConfigWeight: new CastConfig({ scalingType: ScalingType.DELAYED }),
  castConfigGradOutput: new CastConfig({ scalingType: ScalingType.DELAYED }),
  delayedScalingConfig: new DelayedScalingConfig({ historyLen }),
  ...opts,
});

const f32 = (v: number) => Math.fround(v);

describe("amax initialisation uses the whole history (torchao's _maybe_initialize_amaxes_scales_for_float8_cast)", () => {
  test("history preloaded [0, 100, 0, 0], forward ones(2, 16): input scale 448/100 = 4.48, history[0] = 1", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(16, 8), delayed());
    m.scaling.input.history!.copyFrom(tensor([0, 100, 0, 0]));
    const x = ones([2, 16]);
    m.forward(x);
    expect(m.scaling.input.scale!.item()).toBe(f32(448 / 100));
    expect(Array.from(m.scaling.input.history!.toArray())).toEqual([1, 100, 0, 0]);
    expect(m.scaling.input.amax!.item()).toBe(1);
  });

  test("an empty history gives the live tensor's scale (448 / amax), as before", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(16, 8), delayed());
    m.forward(ones([2, 16]));
    expect(m.scaling.input.scale!.item()).toBe(448);
    // weight: amax of the weight itself
    const wAmax = Math.max(...m.weight.toArray().map(Math.abs));
    expect(m.scaling.weight.history!.toArray()[0]).toBe(f32(wAmax));
    expect(m.scaling.weight.scale!.item()).toBeCloseTo(448 / wAmax, 3);
  });

  test("history loaded through loadStateDict into a fresh model counts at the first forward", () => {
    const a = Float8Linear.fromFloat(new nn.Linear(16, 8), delayed());
    const b = Float8Linear.fromFloat(new nn.Linear(16, 8), delayed());
    a.scaling.input.history!.copyFrom(tensor([0, 0, 50, 0]));
    b.loadStateDict(a.stateDict());
    b.forward(ones([2, 16]));
    expect(b.scaling.input.scale!.item()).toBe(f32(448 / 50));
  });

  test("two syncs before the first forward, then the forward's init reads the rolled history", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(16, 8), delayed());
    // amax buffers start at the fp8 max: two syncs put 448 into the history twice
    float8.syncFloat8AmaxAndScaleHistory(m);
    float8.syncFloat8AmaxAndScaleHistory(m);
    expect(Array.from(m.scaling.input.history!.toArray())).toEqual([448, 448, 0, 0]);
    m.forward(ones([2, 16]));
    expect(Array.from(m.scaling.input.history!.toArray())).toEqual([1, 448, 0, 0]);
    expect(m.scaling.input.scale!.item()).toBe(1); // 448 / max(history)
  });

  test("enablePreAndPostForward off with amax init on: every forward re-initialises history[0] and takes max(history)", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(16, 8), delayed({ enablePreAndPostForward: false }));
    m.forward(ones([2, 16]).mul(tensor([4])));
    expect(m.scaling.input.scale!.item()).toBe(112);
    m.forward(ones([2, 16]));
    expect(Array.from(m.scaling.input.history!.toArray())).toEqual([1, 0, 0, 0]); // slot 0 overwritten, no roll
    expect(m.scaling.input.scale!.item()).toBe(448);
    m.scaling.input.history!.copyFrom(tensor([0, 0, 0, 8]));
    m.forward(ones([2, 16]));
    expect(m.scaling.input.scale!.item()).toBe(56);
  });
});

describe("convertToFloat8Training and the forward check", () => {
  test("a root Linear with children raises, as torchao's swap_linear_layers", () => {
    const root = new nn.Linear(3, 3);
    root.registerModule("child", new nn.Sequential(new nn.Linear(3, 3)));
    expect(() => float8.convertToFloat8Training(root)).toThrow(/does not support a root nn\.Linear with children \(child\)/);
    // a plain root Linear still converts; a filtered-out root with children keeps going into them
    expect(float8.convertToFloat8Training(new nn.Linear(3, 3))).toBeInstanceOf(Float8Linear);
    const kept = float8.convertToFloat8Training(root, { moduleFilterFn: (_m, fqn) => fqn !== "" });
    expect(kept).toBe(root);
    expect([...root.namedModules()].find(([f]) => f === "child.0")![1]).toBeInstanceOf(Float8Linear);
  });

  test("'amaxes and scales not synced' is raised only with autograd on: a noGrad evaluation loop needs no sync", () => {
    manualSeed(1);
    const m = Float8Linear.fromFloat(new nn.Linear(16, 8), delayed());
    const x = randn([4, 16]);
    m.forward(x).sum().backward();
    expect(() => m.forward(x)).toThrow(/amaxes and scales not synced/);
    const a = noGrad(() => m.forward(x).toArray());
    const b = noGrad(() => m.forward(x).toArray());
    expect(a).toEqual(b);
    float8.syncFloat8AmaxAndScaleHistory(m);
    expect(() => m.forward(x)).not.toThrow();
  });
});

describe("FSDP rules", () => {
  test("static weight scaling with enableFsdpFloat8AllGather is accepted (torchao gathers it with the static scale)", () => {
    const cfg = new Float8LinearConfig({
      castConfigWeight: new CastConfig({ scalingType: ScalingType.STATIC, staticScale: 4 }),
      enableFsdpFloat8AllGather: true,
    });
    expect(cfg.enableFsdpFloat8AllGather).toBe(true);
    expect(cfg.castConfigWeight.scalingType).toBe("static");
  });

  test("precomputeFloat8DynamicScaleForFsdp raises on a delayed-scaled weight (torchao: NotImplementedError)", () => {
    const model = new nn.Sequential(new nn.Linear(16, 16), new nn.Linear(16, 16));
    float8.convertToFloat8Training(model, { config: delayed({ enableFsdpFloat8AllGather: true }) });
    expect(() => dist.precomputeFloat8DynamicScaleForFsdp(model)).toThrow(/precomputeFloat8DynamicScaleForFsdp: 0: the weight uses delayed scaling/);
    // dynamic weights (and a model with no float8 all-gather at all) are fine
    expect(() => dist.precomputeFloat8DynamicScaleForFsdp(new nn.Sequential(new nn.Linear(4, 4)))).not.toThrow();
  });
});

describe("buffers and repr", () => {
  test("any delayed role registers all nine buffers with torchao's initial values", () => {
    const cfg = new Float8LinearConfig({
      castConfigInput: new CastConfig({ scalingType: ScalingType.DELAYED }),
      delayedScalingConfig: new DelayedScalingConfig({ historyLen: 3 }),
    });
    const m = Float8Linear.fromFloat(new nn.Linear(16, 8), cfg);
    const sd = m.stateDict();
    const want: Record<string, number[]> = {
      fp8_amax_input: [448], fp8_amax_history_input: [0, 0, 0], fp8_scale_input: [1],
      fp8_amax_weight: [448], fp8_amax_history_weight: [0, 0, 0], fp8_scale_weight: [1],
      fp8_amax_grad_output: [57344], fp8_amax_history_grad_output: [0, 0, 0], fp8_scale_grad_output: [1],
    };
    expect(Object.keys(sd).sort()).toEqual(["bias", "weight", ...Object.keys(want)].sort());
    for (const [k, v] of Object.entries(want)) {
      expect(sd[k].dtype).toBe("float32");
      expect(Array.from(sd[k].toArray())).toEqual(v);
    }
    // a non-delayed role's buffers are only state: training with them leaves them as they were
    manualSeed(2);
    m.forward(randn([4, 16])).sum().backward();
    float8.syncFloat8AmaxAndScaleHistory(m);
    expect(Array.from(sd.fp8_amax_weight.toArray())).toEqual([448]);
    expect(Array.from(sd.fp8_amax_history_grad_output.toArray())).toEqual([0, 0, 0]);
    expect(sd.fp8_amax_history_input.toArray()[0]).toBeGreaterThan(0);
    // no delayed role: no buffers
    expect(Object.keys(Float8Linear.fromFloat(new nn.Linear(4, 4)).stateDict()).sort()).toEqual(["bias", "weight"]);
  });

  test("extraRepr reads in_features=, out_features=, bias= as torch, then the scaling", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(64, 96, { bias: false }), delayed());
    expect(m.extraRepr()).toBe('in_features=64, out_features=96, bias=False, scaling="i:del,w:del,go:del"');
    expect(m.toString()).toBe('Float8Linear(in_features=64, out_features=96, bias=False, scaling="i:del,w:del,go:del")');
  });
});

describe("kept on purpose: the amax history rolls (docs/torchao-differences.md)", () => {
  test("the amax history rolls: hand-computed history and scales over six syncs", () => {
    const m = Float8Linear.fromFloat(new nn.Linear(16, 8), delayed());
    const hist = () => Array.from(m.scaling.input.history!.toArray());
    // input amaxes 1, 2, 3, 4, 5, 1 (x = k * ones); history length 4
    const want = [
      [[1, 1, 0, 0], 448],
      [[2, 1, 1, 0], 224],
      [[3, 2, 1, 1], 448 / 3],
      [[4, 3, 2, 1], 112],
      [[5, 4, 3, 2], 448 / 5],
      [[1, 5, 4, 3], 448 / 5], // the max of the history, not the latest amax
    ] as const;
    [1, 2, 3, 4, 5, 1].forEach((k, i) => {
      m.forward(ones([2, 16]).mul(tensor([k])));
      float8.syncFloat8AmaxAndScaleHistory(m);
      expect(hist()).toEqual([...want[i][0]]);
      expect(m.scaling.input.scale!.item()).toBe(f32(want[i][1]));
    });
  });
});
