// cuda_tensor_gpu.test.ts — Tensor, autograd, nn, optim and float8 on a real
// GPU (device "cuda": libfp8_cuda's kernels and cuBLASLt), against the same
// programs on the CPU: every case of test/helpers/device_cases.ts, with its
// tolerance (casts and data movement bit for bit; GEMMs and transcendental
// functions within f32/bf16 rounding; float8 results by SQNR). Without a
// usable GPU every test is skipped, with the reason printed. The same cases
// run without a GPU on the emulated device (device_emulated.test.ts), so a
// failure here that passes there is in libfp8_cuda.
import { describe, expect, test } from "bun:test";
import { cuda, float8, manualSeed, memoryStats, nn, optim, randn, tensor, Tensor, tidy, zeros } from "../src/index.ts";
import { defineParityTests } from "./helpers/device_cases.ts";
import { setAmaxReducer } from "../src/float8/convert.ts";

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

gpuDescribe("CUDA graphs of Tensor programs (cuda.captureGraph)", () => {
  const { ScalingType, CastConfig, Float8LinearConfig } = float8;
  const delayed = () => new CastConfig({ scalingType: ScalingType.DELAYED });
  const configs = {
    dynamic: new Float8LinearConfig(),
    delayed: new Float8LinearConfig({ castConfigInput: delayed(), castConfigWeight: delayed(), castConfigGradOutput: delayed() }),
  };
  const B = 16, D = 32, H = 64, C = 16, STEPS = 7;
  const batches = Array.from({ length: STEPS }, (_, i) => {
    manualSeed(100 + i);
    return {
      x: randn([B, D], { dtype: "bfloat16" }).keep(),
      y: Tensor.fromBytes(new Uint8Array(Int32Array.from({ length: B }, (_, r) => (r * 7 + i) % C).buffer), { shape: [B], dtype: "int32" }).keep(),
    };
  });

  /** A float8 MLP on cuda, its AdamW, static inputs, and one training step over them. */
  function setup(recipe: keyof typeof configs) {
    manualSeed(7);
    const model = new nn.Sequential(new nn.Linear(D, H), new nn.ReLU(), new nn.Linear(H, C)).to({ dtype: "bfloat16" });
    float8.convertToFloat8Training(model, { config: configs[recipe] });
    model.to({ device: "cuda" });
    const opt = new optim.AdamW(model.parameters(), { lr: 1e-2 });
    const x = zeros([B, D], { dtype: "bfloat16", device: "cuda" }).keep();
    const y = Tensor.fromBytes(new Uint8Array(4 * B), { shape: [B], dtype: "int32", device: "cuda" }).keep();
    const step = () => {
      opt.zeroGrad();
      const loss = nn.crossEntropy(model.forward(x) as Tensor, y);
      loss.backward();
      opt.step();
      if (recipe === "delayed") float8.syncFloat8AmaxAndScaleHistory(model);
      return loss;
    };
    const load = (i: number) => {
      x.copyFrom(batches[i].x);
      y.copyFrom(batches[i].y);
    };
    return { model, opt, step, load };
  }

  const paramBytes = (m: nn.Module) => m.parameters().map((p) => Buffer.from(p.bytes()).toString("hex"));

  for (const recipe of ["dynamic", "delayed"] as const) {
    test(`replays of a captured float8 ${recipe} training step equal eager steps bit for bit (AdamW, an lr change, crossEntropy)`, () => {
      const eager = setup(recipe);
      let eagerLoss = NaN;
      for (let i = 0; i < STEPS; i++) {
        if (i === 4) eager.opt.lr = 5e-3;
        eager.load(i);
        eagerLoss = tidy(() => eager.step()).item();
      }

      const graphed = setup(recipe);
      float8.enableStats(graphed.model, { every: 1 }); // telemetry on: forwards inside the capture skip it
      graphed.load(0);
      tidy(() => graphed.step()); // one eager step: optimizer state, scales, GEMM plans
      const g = cuda.captureGraph(() => graphed.step());
      expect(graphed.opt.stepCount).toBe(1); // captured, not run
      for (let i = 1; i < STEPS; i++) {
        if (i === 4) graphed.opt.lr = 5e-3;
        graphed.load(i);
        g.replay();
      }
      expect(graphed.opt.stepCount).toBe(STEPS);
      expect(g.replays).toBe(STEPS - 1);
      expect(g.result.item()).toBe(eagerLoss);
      expect(paramBytes(graphed.model)).toEqual(paramBytes(eager.model));
      g.dispose();
      for (const s of [eager, graphed]) {
        s.opt.zeroGrad();
        s.model.dispose();
      }
    });
  }

  test("delayed scaling with a cross-rank amax reducer (as initProcessGroup installs): one packed device tensor, no host read, captured replays equal eager steps bit for bit", () => {
    // The reducer stands in for allReduce(max): it doubles the packed amaxes on the device, so its
    // effect shows in the scales. A host read (.item()) inside the sync would make the capture fail.
    const seen: number[] = [];
    setAmaxReducer((packed) => {
      expect(packed.device).toBe("cuda");
      seen.push(packed.numel);
      packed.copyFrom(packed.mul(2));
    });
    try {
      const eager = setup("delayed");
      let eagerLoss = NaN;
      for (let i = 0; i < STEPS; i++) {
        eager.load(i);
        eagerLoss = tidy(() => eager.step()).item();
      }
      expect(seen).toEqual(Array(STEPS).fill(6)); // 2 layers x (input, weight, grad output), once per step
      const graphed = setup("delayed");
      graphed.load(0);
      tidy(() => graphed.step());
      const g = cuda.captureGraph(() => graphed.step());
      for (let i = 1; i < STEPS; i++) {
        graphed.load(i);
        g.replay();
      }
      expect(g.result.item()).toBe(eagerLoss);
      expect(paramBytes(graphed.model)).toEqual(paramBytes(eager.model));
      const scales = (m: nn.Module) => float8.float8Layers(m).map((l) => Buffer.from(l.scaling.input.scale!.bytes()).toString("hex"));
      expect(scales(graphed.model)).toEqual(scales(eager.model));
      g.dispose();
      for (const s of [eager, graphed]) {
        s.opt.zeroGrad();
        s.model.dispose();
      }
    } finally {
      setAmaxReducer(null);
    }
  });

  test("a captured embedding + float8 model (token indices and targets on the device) replays like eager steps bit for bit", () => {
    const V = 48, T = 32;
    const tokens = Array.from({ length: 4 }, (_, i) => Int32Array.from({ length: T }, (_, t) => (t * 5 + i * 3) % V));
    const run = (graphed: boolean) => {
      manualSeed(11);
      const emb = new nn.Embedding(V, 32, { dtype: "bfloat16" });
      const head = new nn.Sequential(new nn.Linear(32, 64), new nn.SiLU(), new nn.Linear(64, V)).to({ dtype: "bfloat16" });
      float8.convertToFloat8Training(head);
      emb.to({ device: "cuda" });
      head.to({ device: "cuda" });
      const opt = new optim.AdamW([...emb.parameters(), ...head.parameters()], { lr: 3e-3 });
      const idx = Tensor.fromBytes(new Uint8Array(4 * T), { shape: [T], dtype: "int32", device: "cuda" }).keep();
      const tgt = Tensor.fromBytes(new Uint8Array(4 * T), { shape: [T], dtype: "int32", device: "cuda" }).keep();
      const step = () => {
        opt.zeroGrad();
        const l = nn.crossEntropy(head.forward(emb.forward(idx)) as Tensor, tgt);
        l.backward();
        opt.step();
        return l;
      };
      const load = (i: number) => {
        idx.copyFrom(Tensor.fromBytes(new Uint8Array(tokens[i].buffer), { shape: [T], dtype: "int32" }));
        tgt.copyFrom(Tensor.fromBytes(new Uint8Array(tokens[(i + 1) % 4].buffer), { shape: [T], dtype: "int32" }));
      };
      load(0);
      let loss = tidy(step).item();
      let g: ReturnType<typeof cuda.captureGraph<Tensor>> | null = null;
      for (let i = 1; i < 4; i++) {
        load(i);
        if (graphed) {
          g ??= cuda.captureGraph(step);
          g.replay();
          loss = g.result.item();
        } else {
          loss = tidy(step).item();
        }
      }
      const bytes = [...emb.parameters(), ...head.parameters()].map((p) => Buffer.from(p.bytes()).toString("hex"));
      g?.dispose();
      opt.zeroGrad();
      emb.dispose();
      head.dispose();
      return { loss, bytes };
    };
    const eager = run(false), graphed = run(true);
    expect(graphed.loss).toBe(eager.loss);
    expect(graphed.bytes).toEqual(eager.bytes);
  });

  test("host transfers inside the captured function fail with a Float8Error and nothing is captured", () => {
    const s = setup("dynamic");
    s.load(0);
    tidy(() => s.step());
    const liveBefore = memoryStats("cuda").liveBytes;
    expect(() => cuda.captureGraph(() => s.step().item())).toThrow(/cuda.captureGraph: the captured function failed.*not allowed while capturing/);
    expect(() => cuda.captureGraph(() => s.step(), { poolBytes: 4096 })).toThrow(/memory pool of 0.0 MiB is full/);
    s.opt.zeroGrad();
    expect(memoryStats("cuda").liveBytes).toBeLessThanOrEqual(liveBefore);
    // the step still runs eagerly afterwards
    const loss = tidy(() => s.step()).item();
    expect(Number.isFinite(loss)).toBe(true);
    s.model.dispose();
  });

  test("memory made before a capture stays reserved while the graph lives, even if freed (a replay after model.dispose() writes nowhere else)", () => {
    manualSeed(5);
    const lin = new nn.Linear(256, 256).to({ device: "cuda" });
    const x = zeros([8, 256], { device: "cuda" }).keep();
    const step = () => {
      lin.zeroGrad();
      const y = lin.forward(x);
      y.sum().backward();
      return y;
    };
    tidy(step);
    const g = cuda.captureGraph(step);
    lin.zeroGrad();
    const held = memoryStats("cuda").liveBytes;
    lin.dispose(); // weight and bias: the graph reads them, so their memory is kept
    expect(memoryStats("cuda").liveBytes).toBe(held);
    g.replay();
    g.result.dispose();
    g.dispose(); // now they go (and the pool, whose last tensor is gone)
    expect(memoryStats("cuda").liveBytes).toBeLessThan(held - 256 * 256 * 4);
    x.dispose();
  });

  test("a graph that reads an earlier graph's tensors keeps that graph's pool alive until it goes", () => {
    const x = tensor([1, 2, 3, 4], { device: "cuda" }).keep();
    tidy(() => x.mul(2).add(1));
    const a = cuda.captureGraph(() => x.mul(2));
    a.replay();
    tidy(() => a.result.add(1));
    const b = cuda.captureGraph(() => a.result.add(1)); // reads a's pool
    const before = memoryStats("cuda").liveBytes;
    a.dispose();
    a.result.dispose(); // a's pool has no tensor left, but b still reads it
    expect(memoryStats("cuda").liveBytes).toBe(before);
    b.replay();
    expect([...b.result.toArray()]).toEqual([3, 5, 7, 9]);
    b.result.dispose();
    b.dispose();
    expect(memoryStats("cuda").liveBytes).toBeLessThan(before);
    x.dispose();
  });

  test("a graph owns its result: tidy scopes leave it alone and dispose() frees it", () => {
    const x = tensor([1, 2, 3], { device: "cuda" }).keep();
    tidy(() => x.mul(3));
    let g: ReturnType<typeof cuda.captureGraph<Tensor>> | null = null;
    tidy(() => {
      g = cuda.captureGraph(() => x.mul(3));
    });
    const graph = g!;
    expect(graph.result.isDisposed).toBe(false);
    graph.replay();
    expect([...graph.result.toArray()]).toEqual([3, 6, 9]);
    graph.dispose();
    expect(graph.result.isDisposed).toBe(true);
    x.dispose();
  });

  test("SGD refuses a replay after its lr changed; copyFrom checks shape and dtype", () => {
    manualSeed(3);
    const lin = new nn.Linear(16, 16).to({ device: "cuda" });
    const opt = new optim.SGD(lin.parameters(), { lr: 0.1, momentum: 0.9 });
    const x = zeros([4, 16], { device: "cuda" }).keep();
    const step = () => {
      opt.zeroGrad();
      lin.forward(x).sum().backward();
      opt.step();
    };
    tidy(step);
    const g = cuda.captureGraph(step);
    g.replay();
    opt.lr = 0.05;
    expect(() => g.replay()).toThrow(/SGD.step: lr changed from 0.1 to 0.05 since the graph was captured/);
    expect(() => x.copyFrom(zeros([4, 15]))).toThrow(/copyFrom: source of shape \[4, 15\] and dtype float32 does not match \[4, 16\] float32/);
    g.dispose();
    opt.zeroGrad();
    lin.dispose();
  });
});
