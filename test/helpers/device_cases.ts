// device_cases.ts — one program per case, run once on the CPU and once on a
// device ("cuda"), with the same inputs: the results (outputs, gradients,
// parameters after training steps) must agree within each result's tolerance.
// test/device_emulated.test.ts runs them on the emulated device (this
// machine's CPU behind the device code paths); test/cuda_tensor_gpu.test.ts
// on a real GPU.
import { expect, test } from "bun:test";
import { charData, trainGpt } from "../../examples/gpt.ts";
import { cat, expand, float8, manualSeed, nn, optim, randn, tensor, tidy, uniformStream, type Device, type Tensor } from "../../src/index.ts";

/** How closely a device result must match the CPU's. */
export type Tolerance = "exact" | { atol: number; rtol: number } | { sqnrDb: number };

/** A named result of a case, with its tolerance. */
export interface Result {
  name: string;
  value: Tensor;
  tol: Tolerance;
}

export interface DeviceCase {
  name: string;
  run(device: Device): Result[];
}

const F32_TOL = { atol: 1e-5, rtol: 1e-4 };
const BF16_TOL = { atol: 1e-2, rtol: 1.6e-2 };
/** f32 results that went through transcendental functions or different summation orders */
const LOOSE = { atol: 1e-4, rtol: 1e-3 };

/** A seeded normal tensor made on the CPU, then moved: identical inputs on both devices. */
function input(device: Device, shape: number[], seed: number, opts: { dtype?: "float32" | "bfloat16"; grad?: boolean; std?: number } = {}): Tensor {
  manualSeed(seed);
  const cpu = randn(shape, { dtype: opts.dtype ?? "float32", std: opts.std ?? 1 });
  const t = device === "cpu" ? cpu : cpu.to({ device });
  if (t !== cpu) cpu.dispose();
  t.requiresGrad = !!opts.grad;
  return t;
}

const r = (name: string, value: Tensor, tol: Tolerance = F32_TOL): Result => ({ name, value, tol });

/** Gradients of sum(out * weights) for a deterministic weighting (a non-trivial upstream gradient). */
function backwardWeighted(out: Tensor, device: Device): void {
  const w = new Float32Array(out.numel).map((_, i) => Math.sin(0.37 * i + 0.1));
  out.mul(tensor(w, { shape: out.shape, dtype: out.dtype, device })).sum().backward();
}

function unary(name: string, f: (x: Tensor) => Tensor, tol: Tolerance = LOOSE, positive = false): DeviceCase {
  return {
    name,
    run: (d) => {
      let x = input(d, [7, 33], 11, { grad: !positive });
      if (positive) {
        x = x.abs().add(0.5);
        x.requiresGrad = true;
      }
      const y = f(x);
      backwardWeighted(y, d);
      return [r("out", y, tol), r("grad", x.grad!, tol)];
    },
  };
}

function mlpTraining(name: string, makeOpt: (ps: Tensor[]) => optim.Optimizer, config: float8.Float8LinearConfig | null, tol: Tolerance): DeviceCase {
  return {
    name,
    run: (d) => {
      manualSeed(5);
      let model: nn.Module = new nn.Sequential(new nn.Linear(64, 96), new nn.ReLU(), new nn.Linear(96, 32));
      if (config) model = float8.convertToFloat8Training(model, { config });
      model.to({ device: d });
      const opt = makeOpt(model.parameters());
      const x = input(d, [48, 64], 21);
      const targets = Int32Array.from({ length: 48 }, (_, i) => (i * 7) % 32);
      const losses: Tensor[] = [];
      for (let step = 0; step < 3; step++) {
        tidy(() => {
          opt.zeroGrad();
          const loss = nn.crossEntropy(model.forward(x), targets);
          loss.backward();
          opt.step();
          if (config?.hasAnyDelayedScaling) float8.syncFloat8AmaxAndScaleHistory(model);
          losses.push(loss.detach().keep());
        });
      }
      return [
        ...losses.map((l, i) => r(`loss ${i}`, l, tol)),
        ...[...model.namedParameters()].map(([n, p]) => r(`param ${n}`, p, tol)),
      ];
    },
  };
}

/** The cases: every op family, its gradients, float8 and training loops. */
export const DEVICE_CASES: DeviceCase[] = [
  {
    name: "binary ops broadcast, with gradients",
    run: (d) => {
      const a = input(d, [4, 1, 6], 1, { grad: true }), b = input(d, [3, 6], 2, { grad: true });
      const y = a.add(b).mul(b).sub(a).div(b.abs().add(1));
      backwardWeighted(y, d);
      return [r("out", y), r("grad a", a.grad!), r("grad b", b.grad!)];
    },
  },
  {
    name: "bf16 binary ops and scalar arithmetic",
    run: (d) => {
      const a = input(d, [5, 8], 3, { dtype: "bfloat16" }), b = input(d, [8], 4, { dtype: "bfloat16" });
      return [r("out", a.mul(b).add(2).mul(0.5).sub(b), BF16_TOL)];
    },
  },
  unary("exp", (x) => x.exp()),
  unary("log", (x) => x.log(), LOOSE, true),
  unary("sqrt", (x) => x.sqrt(), LOOSE, true),
  unary("pow", (x) => x.pow(3)),
  unary("abs", (x) => x.abs()),
  unary("relu", (x) => x.relu()),
  unary("gelu (erf)", (x) => x.gelu()),
  unary("gelu (tanh)", (x) => x.gelu("tanh")),
  unary("silu", (x) => x.silu()),
  unary("tanh", (x) => x.tanh()),
  unary("sigmoid", (x) => x.sigmoid()),
  {
    name: "sum, mean and max over dims, with gradients",
    run: (d) => {
      const x = input(d, [3, 5, 7], 5, { grad: true });
      const y = x.sum(1).add(x.mean([1], true).sum(1)).add(x.max(2).sum(1, true)).add(x.max([0, 1]).sum()); // (3, 7)
      backwardWeighted(y, d);
      return [r("out", y, LOOSE), r("grad", x.grad!, LOOSE), r("sum all", x.sum(), LOOSE), r("mean last", x.mean(-1), LOOSE)];
    },
  },
  {
    name: "argmax along each dim",
    run: (d) => {
      const x = input(d, [4, 9, 3], 6);
      return [0, 1, 2].map((k) => r(`argmax ${k}`, x.argmax(k), "exact"));
    },
  },
  {
    name: "permute, transpose, slice, cat and expand, with gradients",
    run: (d) => {
      const x = input(d, [2, 3, 4], 7, { grad: true }), z = input(d, [2, 3, 2], 8, { grad: true });
      const y = movementMix(x, z);
      backwardWeighted(y, d);
      return [r("out", y, "exact"), r("grad x", x.grad!), r("grad z", z.grad!)];
    },
  },
  {
    name: "softmax and logSoftmax on every dim, with gradients",
    run: (d) => {
      const x = input(d, [3, 4, 37], 9, { grad: true });
      const y = x.softmax(-1).add(x.logSoftmax(1)).add(x.softmax(0));
      backwardWeighted(y, d);
      return [r("out", y, LOOSE), r("grad", x.grad!, LOOSE)];
    },
  },
  {
    name: "layerNorm and rmsNorm with weight and bias gradients",
    run: (d) => {
      const x = input(d, [6, 40], 10, { grad: true });
      const g = input(d, [40], 11, { grad: true }), b = input(d, [40], 12, { grad: true }), g2 = input(d, [40], 13, { grad: true });
      const y = nn.layerNorm(x, g, b).add(nn.rmsNorm(x, g2));
      backwardWeighted(y, d);
      return [r("out", y, LOOSE), r("grad x", x.grad!, LOOSE), r("grad gamma", g.grad!, LOOSE), r("grad beta", b.grad!, LOOSE), r("grad rms gamma", g2.grad!, LOOSE)];
    },
  },
  {
    name: "embedding and crossEntropy (with ignoreIndex), with gradients",
    run: (d) => {
      const w = input(d, [11, 16], 14, { grad: true });
      const e = nn.embedding([3, 0, 10, 3, 7, 3], w);
      const logits = e.matmul(input(d, [16, 11], 15));
      const loss = nn.crossEntropy(logits, [1, 4, -100, 10, 0, 2]);
      loss.backward();
      return [r("loss", loss, LOOSE), r("grad weight", w.grad!, LOOSE)];
    },
  },
  {
    name: "mseLoss and maskedFill, with gradients",
    run: (d) => {
      const x = input(d, [4, 5], 16, { grad: true }), t = input(d, [4, 5], 17);
      const mask = tensor([1, 0, 0, 1, 0], { device: d });
      const y = nn.maskedFill(x, mask, -3).mul(x);
      const loss = nn.mseLoss(y, t);
      loss.backward();
      return [r("masked", y), r("loss", loss, LOOSE), r("grad", x.grad!, LOOSE)];
    },
  },
  {
    name: "batched matmul and linear with bias, f32 and bf16, with gradients",
    run: (d) => {
      const a = input(d, [2, 8, 16], 18, { grad: true }), b = input(d, [2, 16, 24], 19, { grad: true });
      const y = a.matmul(b);
      backwardWeighted(y, d);
      const x = input(d, [10, 32], 20, { dtype: "bfloat16", grad: true }), w = input(d, [48, 32], 21, { dtype: "bfloat16", grad: true });
      const bias = input(d, [48], 22, { dtype: "bfloat16", grad: true });
      const z = nn.linear(x, w, bias);
      backwardWeighted(z, d);
      return [
        r("matmul", y, LOOSE), r("grad a", a.grad!, LOOSE), r("grad b", b.grad!, LOOSE),
        r("linear bf16", z, BF16_TOL), r("grad x", x.grad!, BF16_TOL), r("grad w", w.grad!, BF16_TOL), r("grad bias", bias.grad!, BF16_TOL),
      ];
    },
  },
  {
    name: "dtype conversions (bf16, fp8) and back",
    run: (d) => {
      const x = input(d, [1000], 23, { std: 100 });
      return [
        r("bf16", x.to({ dtype: "bfloat16" }), "exact"),
        r("e4m3", x.to({ dtype: "float8_e4m3fn" }), "exact"),
        r("e5m2 -> f32", x.to({ dtype: "float8_e5m2" }).to({ dtype: "float32" }), "exact"),
      ];
    },
  },
  {
    name: "float8 casts: tensorwise (plain and power-of-2) and axiswise bytes and scales",
    run: (d) => {
      const x = input(d, [24, 40], 24, { std: 3 });
      const f = float8.hpTensorToFloat8Dynamic(x, "float8_e4m3fn", "input");
      const p = float8.hpTensorToFloat8Dynamic(x, "float8_e5m2", "grad_output", true);
      const a = float8.hpTensorToFloat8Axiswise(x, "float8_e4m3fn", "input", true);
      return [
        r("e4m3 bytes", f.data, "exact"), r("e4m3 scale", f.scale, "exact"),
        r("pow2 e5m2 bytes", p.data, "exact"), r("pow2 scale", p.scale, "exact"),
        r("axiswise bytes", a.data, "exact"), r("axiswise scales", a.scale, "exact"),
        r("dequantized", f.toOriginalPrecision(), "exact"),
      ];
    },
  },
  {
    name: "scaledMm: aligned and unaligned shapes, transposed layouts, bias, rowwise",
    run: (d) => {
      const a = float8.hpTensorToFloat8Dynamic(input(d, [32, 64], 25), "float8_e4m3fn", "input");
      const b = float8.hpTensorToFloat8Dynamic(input(d, [48, 64], 26), "float8_e4m3fn", "weight");
      const bias = input(d, [48], 27, { dtype: "bfloat16" });
      const c = input(d, [20, 24], 28), e = input(d, [24, 20], 29);
      const cf = float8.hpTensorToFloat8Dynamic(c, "float8_e4m3fn", "input"), ef = float8.hpTensorToFloat8Dynamic(e, "float8_e5m2", "grad_output");
      const ra = float8.hpTensorToFloat8Axiswise(input(d, [32, 64], 30), "float8_e4m3fn", "input");
      const rb = float8.hpTensorToFloat8Axiswise(input(d, [48, 64], 31), "float8_e4m3fn", "weight");
      return [
        r("TN bf16 + bias", float8.scaledMm(a, b, { transposeB: true, bias, outDtype: "bfloat16" }), BF16_TOL),
        r("NN f32 (transposed operand)", float8.scaledMm(a, float8.hpTensorToFloat8Dynamic(input(d, [64, 48], 32), "float8_e4m3fn", "weight"), { outDtype: "float32" }), { atol: 3e-3, rtol: 3e-3 }),
        r("TT f32", float8.scaledMm(float8.hpTensorToFloat8Dynamic(input(d, [64, 32], 33), "float8_e4m3fn", "input"), b, { transposeA: true, transposeB: true, outDtype: "float32" }), { atol: 3e-3, rtol: 3e-3 }),
        r("unaligned f32", float8.scaledMm(cf, ef, { outDtype: "float32", padInnerDim: true }), { atol: 3e-3, rtol: 3e-3 }),
        r("rowwise bf16", float8.scaledMm(ra, rb, { transposeB: true, outDtype: "bfloat16" }), BF16_TOL),
      ];
    },
  },
  {
    name: "Float8Linear forward and backward: dynamic, delayed, static, rowwise, recompute",
    run: (d) => {
      const out: Result[] = [];
      const configs: [string, float8.Float8LinearConfig][] = [
        ["dynamic", new float8.Float8LinearConfig()],
        ["delayed", new float8.Float8LinearConfig({
          castConfigInput: new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED }),
          castConfigWeight: new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED }),
          castConfigGradOutput: new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED }),
        })],
        ["static", new float8.Float8LinearConfig({ castConfigInput: new float8.CastConfig({ scalingType: float8.ScalingType.STATIC, staticScale: 4 }) })],
        ["rowwise", float8.Float8LinearConfig.fromRecipeName("rowwise")],
        ["recompute", new float8.Float8LinearConfig({ forceRecomputeFp8WeightInBwd: true })],
      ];
      for (const [name, config] of configs) {
        manualSeed(33);
        const lin = float8.Float8Linear.fromFloat(new nn.Linear(64, 32, { dtype: "bfloat16" }), config);
        lin.to({ device: d });
        for (let step = 0; step < 2; step++) {
          const x = input(d, [16, 64], 34 + step, { dtype: "bfloat16", grad: true });
          const y = lin.forward(x);
          backwardWeighted(y, d);
          if (config.hasAnyDelayedScaling) float8.syncFloat8AmaxAndScaleHistory(lin);
          out.push(r(`${name} out ${step}`, y, { sqnrDb: 30 }), r(`${name} grad x ${step}`, x.grad!, { sqnrDb: 25 }));
        }
        out.push(r(`${name} grad w`, lin.weight.grad!, { sqnrDb: 25 }), r(`${name} grad bias`, lin.bias!.grad!, BF16_TOL));
        // amaxes and scales: exact for input and weight; grad_output's follow the GEMM's rounding
        for (const [n, b] of lin.namedBuffers()) out.push(r(`${name} buffer ${n}`, b, /grad_output/.test(n) ? { atol: 1e-6, rtol: 5e-2 } : "exact"));
      }
      return out;
    },
  },
  {
    // causal attention with rotary tables, RMSNorm, SwiGLU, embedding and cross entropy (examples/gpt.ts)
    name: "tiny GPT, 3 AdamW steps, bf16 and float8 (attention, RMSNorm, SwiGLU, embedding)",
    run: (d) => {
      const data = charData("In the beginning God created the heaven and the earth. And the earth was without form, and void. ".repeat(4));
      const out: Result[] = [];
      for (const recipe of ["bf16", "float8"] as const) {
        const res = trainGpt(recipe, data, { dim: 32, nLayers: 1, nHeads: 2, seqLen: 16, seed: 0, steps: 3, batchSize: 4, lr: 1e-3, evalBatches: 1, device: d });
        out.push(r(`${recipe} losses`, tensor(res.losses, { device: d }), { atol: 1e-2, rtol: 1e-2 }));
        for (const [n, p] of res.model.namedParameters()) out.push(r(`${recipe} param ${n}`, p, { sqnrDb: 30 }));
      }
      return out;
    },
  },
  {
    // seeded random shapes and dims (1 to 5 dims, sizes 1 to 9, with broadcasting and odd sizes)
    name: "random shapes: broadcasting binary ops, reductions, movement, softmax and batched matmul",
    run: (d) => {
      const rand = uniformStream(77);
      const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
      const out: Result[] = [];
      for (let k = 0; k < 12; k++) {
        const nd = int(1, 5);
        const shape = Array.from({ length: nd }, () => int(1, 9));
        const other = shape.map((s) => (rand() < 0.3 ? 1 : s)).slice(int(0, nd - 1)); // broadcasts against shape
        const x = input(d, shape, 100 + k), y = input(d, other, 200 + k);
        const dim = int(0, nd - 1), dims = [...shape.keys()].filter(() => rand() < 0.5);
        const perm = [...shape.keys()].sort(() => rand() - 0.5);
        out.push(r(`${k} binary ${shape}|${other}`, x.mul(y).sub(y).div(y.abs().add(0.5)), F32_TOL));
        out.push(r(`${k} sum ${dims}`, x.sum(dims.length ? dims : undefined, true), LOOSE));
        out.push(r(`${k} max ${dim}`, x.max(dim), "exact"));
        out.push(r(`${k} mean ${dim}`, x.mean(dim), LOOSE));
        out.push(r(`${k} argmax ${dim}`, x.argmax(dim), "exact"));
        out.push(r(`${k} permute ${perm}`, x.permute(perm), "exact"));
        const s0 = int(0, shape[dim] - 1);
        out.push(r(`${k} slice+cat ${dim}`, cat([x.slice(dim, s0), x, x.slice(dim, 0, s0 + 1)], dim), "exact"));
        out.push(r(`${k} softmax ${dim}`, x.softmax(dim), LOOSE));
        const [M, K, N, B] = [int(1, 9), int(1, 9), int(1, 9), int(1, 3)];
        const a = input(d, [B, M, K], 300 + k), b = input(d, rand() < 0.5 ? [K, N] : [B, K, N], 400 + k);
        out.push(r(`${k} matmul ${a.shape}@${b.shape}`, a.matmul(b), LOOSE));
      }
      return out;
    },
  },
  mlpTraining("MLP, AdamW, 3 steps, high precision", (ps) => new optim.AdamW(ps, { lr: 1e-2 }), null, { sqnrDb: 60 }),
  mlpTraining("MLP, SGD with momentum, 3 steps, float8 dynamic", (ps) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9 }), new float8.Float8LinearConfig(), { sqnrDb: 30 }),
  mlpTraining("MLP, AdamW, 3 steps, float8 delayed", (ps) => new optim.AdamW(ps, { lr: 1e-2 }), new float8.Float8LinearConfig({
    castConfigInput: new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED }),
    castConfigWeight: new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED }),
    castConfigGradOutput: new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED }),
  }), { sqnrDb: 30 }),
  {
    name: "block casts: blockwise 1x128 / 128x128 and MX 1x32 (floor, rceil), ragged, inf and zero blocks: bytes, scales and decodes exact",
    run: (d) => {
      const out: Result[] = [];
      for (const dtype of ["float32", "bfloat16"] as const) {
        manualSeed(31);
        const base = randn([130, 300], { dtype: "float32", std: 3 });
        const v = base.toArray();
        for (let c = 0; c < 128; c++) v[c] = 0; // row 0, first 1x128 block: zeros
        v[300 + 5] = -Infinity; // row 1: an inf block
        for (let i = 2 * 300; i < 3 * 300; i++) v[i] *= 2 ** ((i % 40) - 20); // row 2: many exponents
        const x = tensor(v, { shape: [130, 300], dtype, device: d });
        base.dispose();
        for (const [br, bc] of [[1, 128], [128, 128]]) {
          const q = float8.quantizeBlockwise(x, br, bc);
          out.push(r(`${dtype} blockwise ${br}x${bc} data`, q.data, "exact"), r(`${dtype} blockwise ${br}x${bc} scale`, q.scale, "exact"));
          out.push(r(`${dtype} blockwise ${br}x${bc} decode f32`, q.dequantize("float32"), "exact"), r(`${dtype} blockwise ${br}x${bc} decode bf16`, q.dequantize("bfloat16"), "exact"));
        }
        for (const mode of ["floor", "rceil"] as const) {
          const q = float8.quantizeMx(x, 32, mode, mode === "floor" ? "float8_e4m3fn" : "float8_e5m2");
          out.push(r(`${dtype} mx ${mode} data`, q.data, "exact"), r(`${dtype} mx ${mode} scale`, q.scale, "exact"));
          out.push(r(`${dtype} mx ${mode} decode f32`, q.dequantize("float32"), "exact"), r(`${dtype} mx ${mode} decode bf16`, q.dequantize("bfloat16"), "exact"));
        }
      }
      return out;
    },
  },
  mlpTraining("MLP, AdamW, 3 steps, float8 blockwise", (ps) => new optim.AdamW(ps, { lr: 1e-2 }), float8.Float8LinearConfig.fromRecipeName("blockwise"), { sqnrDb: 30 }),
  mlpTraining("MLP, AdamW, 3 steps, float8 mxfp8", (ps) => new optim.AdamW(ps, { lr: 1e-2 }), float8.Float8LinearConfig.fromRecipeName("mxfp8"), { sqnrDb: 30 }),
];

/** Data movement of two tensors x (2, 3, 4) and z (2, 3, 2), plus exact adds. */
function movementMix(x: Tensor, z: Tensor): Tensor {
  const p = x.permute([2, 0, 1]).transpose(0, 2).transpose(0, 1); // back to (2, 3, 4), through two copies
  const joined = cat([x.slice(2, 1, 3), z], 2); // (2, 3, 4)
  return p.add(joined).add(expand(x.slice(0, 0, 1), [2, 3, 4]));
}

/** One test per case: run on the CPU and on `device`, and every result must match. */
export function defineParityTests(device: Device): void {
  for (const c of DEVICE_CASES) {
    test(c.name, () => {
      const cpu = c.run("cpu");
      const dev = c.run(device);
      expect(dev.map((x) => x.name)).toEqual(cpu.map((x) => x.name));
      cpu.forEach((res, i) => expectMatch(c.name, res, dev[i]));
    });
  }
}

/** SQNR of y against ref in dB (Infinity when equal). */
export function sqnr(ref: Float32Array, y: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += ref[i] * ref[i];
    den += (ref[i] - y[i]) ** 2;
  }
  return den === 0 ? Infinity : 10 * Math.log10(num / den);
}

/** Asserts a device result matches the CPU's under its tolerance. */
export function expectMatch(caseName: string, cpu: Result, dev: Result): void {
  const where = `${caseName}: ${cpu.name}`;
  expect(dev.value.device, where).not.toBe("cpu");
  expect([...dev.value.shape], where).toEqual([...cpu.value.shape]);
  expect(dev.value.dtype, where).toBe(cpu.value.dtype);
  if (cpu.tol === "exact") {
    expect(Buffer.from(dev.value.bytes()).equals(Buffer.from(cpu.value.bytes())), `${where}: bytes differ`).toBe(true);
    return;
  }
  const a = cpu.value.dtype === "int32" ? Float32Array.from(cpu.value.toInt32Array()) : cpu.value.toArray();
  const b = dev.value.dtype === "int32" ? Float32Array.from(dev.value.toInt32Array()) : dev.value.toArray();
  if ("sqnrDb" in cpu.tol) {
    const s = sqnr(a, b);
    if (!(s >= cpu.tol.sqnrDb)) throw new Error(`${where}: SQNR ${s.toFixed(1)} dB < ${cpu.tol.sqnrDb} dB`);
    return;
  }
  const { atol, rtol } = cpu.tol;
  for (let i = 0; i < a.length; i++) {
    const ok = Math.abs(a[i] - b[i]) <= atol + rtol * Math.abs(a[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i]));
    if (!ok) throw new Error(`${where}: element ${i}: device ${b[i]} vs cpu ${a[i]} (atol ${atol}, rtol ${rtol})`);
  }
}
