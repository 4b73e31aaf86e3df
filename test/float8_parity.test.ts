// Float8Linear against PyTorch: the numbers torchao.float8 (October 2024)
// computes in emulate mode for the same weights and data (dynamic tensorwise),
// from test/fixtures/torch_float8_linear.json (scripts/gen_torch_parity.py,
// torch's own fp8 conversions). Scales and fp8 bytes must match bit for bit;
// GEMM results to f32 rounding (torchao dequantizes each operand before an f32
// mm, this library scales the exact fp8 product sum once in the epilogue).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { float8, nn, tensor, type HighPrecisionDType, type Tensor } from "../src/index.ts";

interface Case {
  M: number; K: number; N: number; dtype: HighPrecisionDType;
  x: number[]; w: number[]; b: number[]; grad_output: number[];
  x_fp8: number[]; w_fp8: number[]; grad_output_fp8: number[];
  scale_x: number; scale_w: number; scale_grad_output: number;
  y: number[]; grad_x: number[]; grad_w: number[]; grad_b: number[];
}
interface DelayedCase {
  M: number; K: number; N: number; history_len: number; w: number[];
  steps: { x: number[]; grad_output: number[]; y: number[]; grad_x: number[]; grad_w: number[]; scales_after_sync: number[]; history_x: number[] }[];
}
const fixture = JSON.parse(readFileSync(join(import.meta.dir, "fixtures", "torch_float8_linear.json"), "utf8")) as { cases: Case[]; delayed: DelayedCase };

/** |got - ref| <= tol * max|ref| elementwise (tol: f32 rounding, or one bf16 rounding of the output). */
function expectClose(got: Float32Array, ref: number[], tol: number): void {
  const scale = Math.max(...ref.map(Math.abs));
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i] - ref[i]) / scale);
  expect(worst).toBeLessThanOrEqual(tol);
}

for (const c of fixture.cases) {
  describe(`Float8Linear vs torch, ${c.dtype} (${c.M}x${c.K} @ ${c.N}x${c.K}^T)`, () => {
    const x = tensor(c.x, { shape: [c.M, c.K], dtype: c.dtype });
    const w = tensor(c.w, { shape: [c.N, c.K], dtype: c.dtype });
    const go = tensor(c.grad_output, { shape: [c.M, c.N], dtype: c.dtype });
    // bf16 outputs may differ by one bf16 rounding (torch adds the bias after rounding the GEMM)
    const tol = c.dtype === "float32" ? 1e-5 : 2 ** -7;

    test("dynamic scales are bit-identical", () => {
      const s = (t: Tensor, d: "float8_e4m3fn" | "float8_e5m2") => float8.tensorToScale(t, d)[0].item();
      expect(s(x, "float8_e4m3fn")).toBe(c.scale_x);
      expect(s(w, "float8_e4m3fn")).toBe(c.scale_w);
      expect(s(go, "float8_e5m2")).toBe(c.scale_grad_output);
    });

    test("fp8 bytes of input, weight and grad_output are bit-identical", () => {
      const bytes = (t: Tensor, s: number, d: "float8_e4m3fn" | "float8_e5m2") => [...float8.toFloat8Saturated(t, s, d).bytes()];
      expect(bytes(x, c.scale_x, "float8_e4m3fn")).toEqual(c.x_fp8);
      expect(bytes(w, c.scale_w, "float8_e4m3fn")).toEqual(c.w_fp8);
      expect(bytes(go, c.scale_grad_output, "float8_e5m2")).toEqual(c.grad_output_fp8);
    });

    test("output, input grad, weight grad and bias grad match", () => {
      const lin = new nn.Linear(c.K, c.N, { dtype: c.dtype, weight: w.detach(), biasTensor: tensor(c.b, { dtype: c.dtype }) });
      const f8 = float8.Float8Linear.fromFloat(lin);
      const xin = x.detach();
      xin.requiresGrad = true;
      const y = f8.forward(xin);
      y.backward(go);
      expectClose(y.toArray(), c.y, tol);
      expectClose(xin.grad!.toArray(), c.grad_x, tol);
      expectClose(f8.weight.grad!.toArray(), c.grad_w, tol);
      expectClose(f8.bias!.grad!.toArray(), c.grad_b, tol);
    });
  });
}

describe("delayed scaling vs torch over several steps (float32)", () => {
  const d = fixture.delayed;
  test("outputs and gradients match every step; scales and the amax history match bit for bit after every sync", () => {
    const cast = new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED });
    const cfg = new float8.Float8LinearConfig({
      castConfigInput: cast, castConfigWeight: cast, castConfigGradOutput: cast,
      delayedScalingConfig: new float8.DelayedScalingConfig({ historyLen: d.history_len }),
    });
    const lin = new nn.Linear(d.K, d.N, { bias: false, weight: tensor(d.w, { shape: [d.N, d.K] }) });
    const f8 = float8.Float8Linear.fromFloat(lin, cfg);
    for (const s of d.steps) {
      f8.zeroGrad();
      const x = tensor(s.x, { shape: [d.M, d.K], requiresGrad: true });
      const y = f8.forward(x);
      y.backward(tensor(s.grad_output, { shape: [d.M, d.N] }));
      expectClose(y.toArray(), s.y, 1e-5);
      expectClose(x.grad!.toArray(), s.grad_x, 1e-5);
      expectClose(f8.weight.grad!.toArray(), s.grad_w, 1e-5);
      float8.syncFloat8AmaxAndScaleHistory(f8);
      const scales = [f8.scaling.input, f8.scaling.weight, f8.scaling.grad_output].map((st) => st.scale!.item());
      expect(scales).toEqual(s.scales_after_sync);
      expect([...f8.scaling.input.history!.toArray()]).toEqual(s.history_x.map(Math.fround));
    }
  });
});
