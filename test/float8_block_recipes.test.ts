// Block-scaled training recipes ("blockwise": 1x128 / 128x128 f32 scales, "mxfp8": 1x32 e8m0
// scales) through convertToFloat8Training: config, forward and backward against a high-precision
// reference within torchao's SQNR bars, each GEMM re-blocked along its own reduction dim (checked
// against the public block casts applied by hand), state dict, training, and errors.
import { describe, expect, test } from "bun:test";
import { nn, float8, optim, randn, manualSeed, tensor, tidy, type Tensor } from "../src/index.ts";
import { lib } from "../src/ffi/index.ts";
import { mxDecodeExactInBf16 } from "../src/float8/block_scaling.ts";

const { Float8LinearConfig, Float8Linear, BlockScalingConfig } = float8;
const RECIPES = ["blockwise", "mxfp8", "mxfp8_rceil"] as const;
/** whether this CPU multiplies bf16 natively (then MX GEMMs with exact bf16 decodes run in bf16) */
const bf16Native = (() => {
  const out = new Int32Array(1);
  lib.fp8_cpu_bf16_native(out);
  return out[0] === 1;
})();
/** f32 summation-order differences of dot products of K <= 160 (measured 148-241 dB): above the
 * 106-dB difference of a wrong cast direction that the test also checks */
const MX_BF16_GEMM_DB = 130;

function matmulT(a: Tensor, b: Tensor): Tensor {
  // a (P, R) @ b (Q, R)^T in f32
  return a.to({ dtype: "float32" }).matmul(b.to({ dtype: "float32" }).transpose(0, 1));
}

/** operand decoded the way the recipe casts it for a GEMM reducing along its last dim */
function castDecode(x: Tensor, recipe: string, weightBlocks = false): Tensor {
  const q = recipe === "blockwise"
    ? float8.quantizeBlockwise(x, weightBlocks ? 128 : 1, 128)
    : float8.quantizeMx(x, 32, recipe === "mxfp8_rceil" ? "rceil" : "floor");
  const d = q.dequantize("float32");
  q.dispose();
  return d;
}

describe("block-scaled recipes: config", () => {
  test("fromRecipeName builds the block configs", () => {
    const b = Float8LinearConfig.fromRecipeName("blockwise");
    expect(b.blockScaling?.kind).toBe("blockwise");
    expect(b.blockScaling?.blockSize).toBe(128);
    expect(b.blockScaling?.weightBlockRows).toBe(128);
    expect(b.isSimpleTensorwise).toBe(false);
    expect(b.scalingRepr()).toBe("blockwise(1x128,w128x128)");
    const m = Float8LinearConfig.fromRecipeName("mxfp8");
    expect(m.blockScaling?.blockSize).toBe(32);
    expect(m.blockScaling?.mxMode).toBe("floor");
    expect(m.scalingRepr()).toBe("mxfp8(1x32,floor)");
    expect(Float8LinearConfig.fromRecipeName("mxfp8_rceil").blockScaling?.mxMode).toBe("rceil");
    expect(() => Float8LinearConfig.fromRecipeName("nope" as never)).toThrow(/blockwise, mxfp8/);
    expect(() => new BlockScalingConfig({ kind: "mxfp8", mxMode: "up" as never })).toThrow(/mxMode/);
    expect(() => new BlockScalingConfig({ kind: "blockwise", blockSize: 0 })).toThrow(/blockSize/);
    expect(() => new Float8LinearConfig({ blockScaling: {} as never })).toThrow(/BlockScalingConfig/);
  });
});

for (const recipe of RECIPES) {
  describe(`recipe ${recipe}`, () => {
    test("forward and backward: within torchao's SQNR bars of the high-precision Linear (y >= 18, dW >= 18, dX >= 12 dB)", () => {
      manualSeed(19);
      const [M, K, N] = [64, 256, 192];
      const ref = new nn.Linear(K, N).to({ dtype: "bfloat16" });
      const x = randn([M, K], { dtype: "bfloat16" });
      const g = randn([M, N], { dtype: "bfloat16" });
      const lin = Float8Linear.fromFloat(new nn.Linear(K, N, { dtype: "bfloat16", weight: ref.weight.detach(), biasTensor: ref.bias!.detach() }), Float8LinearConfig.fromRecipeName(recipe));
      const xr = x.detach(), xf = x.detach();
      xr.requiresGrad = true;
      xf.requiresGrad = true;
      const yr = ref.forward(xr), yf = lin.forward(xf);
      yr.backward(g);
      yf.backward(g);
      expect(float8.computeError(yr, yf)).toBeGreaterThanOrEqual(18);
      expect(float8.computeError(ref.weight.grad!, lin.weight.grad!)).toBeGreaterThanOrEqual(18);
      expect(float8.computeError(xr.grad!, xf.grad!)).toBeGreaterThanOrEqual(12);
      // the bias gradient is the high-precision column sum, as in torchao
      expect(float8.computeError(ref.bias!.grad!, lin.bias!.grad!)).toBe(Infinity);
    }, 60000);

    test("each GEMM casts its operands along its own reduction dim (transposed operands re-blocked)", () => {
      manualSeed(20);
      const [M, K, N] = [40, 160, 136]; // partial blocks at the edges too
      const w = randn([N, K]);
      const lin = Float8Linear.fromFloat(new nn.Linear(K, N, { weight: w, bias: false }), Float8LinearConfig.fromRecipeName(recipe));
      // rows of very different magnitudes: block scales must follow the right dim
      const x = randn([M, K]).mul(tensor(Array.from({ length: M }, (_, i) => 2 ** (2 * ((i % 9) - 4))), { shape: [M, 1] }));
      const g = randn([M, N]).mul(tensor(Array.from({ length: N }, (_, j) => 2 ** (2 * ((j % 7) - 3))), { shape: [1, N] }));
      x.requiresGrad = true;
      const y = lin.forward(x);
      y.backward(g);
      const wd = castDecode(w, recipe, true);
      const yRef = matmulT(castDecode(x.detach(), recipe), wd);
      // the same casts and f32 GEMMs: equal. MX GEMMs on a CPU with native bf16 run oneDNN's bf16
      // GEMM on the same operand values (exact bf16 decodes): only the f32 summation order differs
      const exact = recipe === "blockwise" || !bf16Native;
      const same = (ref: Tensor, got: Tensor) => {
        if (exact) expect(float8.computeError(ref, got)).toBe(Infinity);
        else expect(float8.computeError(ref, got)).toBeGreaterThanOrEqual(MX_BF16_GEMM_DB);
      };
      if (exact) expect([...y.toArray()]).toEqual([...yRef.toArray()]);
      same(yRef, y);
      // grad_input = g (blocks along N) @ w (blocks along N)
      const wAlongN = recipe === "blockwise" ? wd.transpose(0, 1) : castDecode(w.transpose(0, 1), recipe);
      const gx = matmulT(castDecode(g, recipe), wAlongN);
      // grad_weight = g^T (blocks along M) @ x^T^T (blocks along M)
      const gw = matmulT(castDecode(g.transpose(0, 1), recipe), castDecode(x.detach().transpose(0, 1), recipe));
      same(gx, x.grad!);
      same(gw, lin.weight.grad!);
      // casting the grad_weight operands along the forward's dim (K, N) instead gives other values
      const gwWrong = matmulT(castDecode(g, recipe).transpose(0, 1), castDecode(x.detach(), recipe).transpose(0, 1));
      expect(float8.computeError(gwWrong, lin.weight.grad!)).toBeLessThan(120);
    }, 60000);

    test("convertToFloat8Training: state dict keys as the plain model; loads into a fresh one; trains", () => {
      manualSeed(21);
      const make = () => new nn.Sequential(new nn.Linear(64, 128), new nn.ReLU(), new nn.Linear(128, 10)).to({ dtype: "bfloat16" });
      const model = make();
      const keys = Object.keys(model.stateDict()).sort();
      float8.convertToFloat8Training(model, { config: Float8LinearConfig.fromRecipeName(recipe) });
      expect(String(model)).toContain(recipe === "blockwise" ? "blockwise(1x128" : "mxfp8(1x32");
      expect(Object.keys(model.stateDict()).sort()).toEqual(keys);
      const other = make();
      float8.convertToFloat8Training(other, { config: Float8LinearConfig.fromRecipeName(recipe) });
      other.loadStateDict(model.stateDict());
      const x = randn([32, 64], { dtype: "bfloat16" });
      expect([...other.forward(x).toArray()]).toEqual([...model.forward(x).toArray()]);
      // a learnable task: loss goes down
      const target = tensor(Array.from({ length: 32 }, (_, i) => i % 10), { dtype: "int32" });
      const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
      const losses: number[] = [];
      for (let s = 0; s < 30; s++) {
        losses.push(tidy(() => {
          opt.zeroGrad();
          const l = nn.crossEntropy(model.forward(x), target);
          l.backward();
          opt.step();
          return l.item();
        }));
      }
      expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.5);
      opt.dispose();
    }, 120000);
  });
}

describe("block-scaled recipes: MX operands decoded to bf16", () => {
  test("mxDecodeExactInBf16 holds exactly for the scale bytes where every code decodes to the same normal value in bf16 as in f32", () => {
    for (const dt of ["float8_e4m3fn", "float8_e5m2"] as const) {
      // one block of 256 codes (NaN / inf codes replaced by zero) per scale byte E = 0..254
      const codes = Uint8Array.from({ length: 256 }, (_, i) => {
        const mag = i & 0x7f;
        return (dt === "float8_e4m3fn" ? mag === 0x7f : mag >= 0x7c) ? 0 : i;
      });
      const exactBytes: number[] = [];
      for (let E = 0; E <= 254; E++) {
        const data = tensor(Array.from(codes), { dtype: "float32" }); // placeholder of the right shape
        const q8 = float8.quantizeMx(data.reshape([1, 256]), 256, "floor", dt);
        data.dispose();
        new Uint8Array(q8.data.rawView()).set(codes);
        new Uint8Array(q8.scale.rawView())[0] = E;
        const f = q8.dequantize("float32").toArray(), b = q8.dequantize("bfloat16").toArray();
        let same = true;
        for (let i = 0; i < 256; i++) {
          const v = f[i]!;
          if (!Number.isFinite(v) || b[i] !== v || (v !== 0 && Math.abs(v) < 2 ** -126) || Math.abs(v) > 3.3895313892515355e38) same = false;
        }
        expect(mxDecodeExactInBf16(q8)).toBe(same);
        if (same) exactBytes.push(E);
        q8.dispose();
      }
      // a contiguous range: e4m3fn 10..246, e5m2 17..239
      expect([exactBytes[0], exactBytes.at(-1), exactBytes.length]).toEqual(dt === "float8_e4m3fn" ? [10, 246, 237] : [17, 239, 223]);
    }
  });

  test("on random operands (activations to weights' scale), the bf16 decode equals the f32 decode value for value", () => {
    manualSeed(23);
    for (const [rows, cols, mag] of [[64, 256, 1], [48, 96, 1e-3], [32, 160, 300]] as const) {
      const x = randn([rows, cols]).mul(tensor([mag]));
      for (const mode of ["floor", "rceil"] as const) {
        const q = float8.quantizeMx(x, 32, mode);
        expect(mxDecodeExactInBf16(q)).toBe(true);
        expect([...q.dequantize("bfloat16").toArray()]).toEqual([...q.dequantize("float32").toArray()]);
        q.dispose();
      }
    }
    // a block with tiny values (scale byte below 10) turns the bf16 decode off
    const tiny = tensor(Array.from({ length: 64 }, (_, i) => (i < 32 ? 1 : 1e-37)), { shape: [1, 64] });
    const q = float8.quantizeMx(tiny, 32);
    expect(new Uint8Array(q.scale.rawView())[1]).toBeLessThan(10);
    expect(mxDecodeExactInBf16(q)).toBe(false);
    q.dispose();
  });
});

describe("block-scaled recipes: telemetry", () => {
  test("float8.stats reports per-block saturation and underflow: MX FLOOR clips blocks whose amax mantissa exceeds 1.75, RCEIL does not", () => {
    manualSeed(22);
    const [M, K, N] = [8, 64, 32];
    // every 32-element block of row 0 has amax 1.9 * 2^k: FLOOR's 2^(k-8) scale puts it at 486 > 448
    const xv = randn([M, K]).mul(0.1).toArray();
    for (let b = 0; b < K / 32; b++) xv[b * 32] = 1.9 * 2 ** b;
    // row 1: one huge value next to tiny ones in one block: the tiny ones underflow
    xv[K] = 1000;
    for (let c = 1; c < 32; c++) xv[K + c] = 1e-6;
    const x = tensor(xv, { shape: [M, K] });
    const results: Record<string, any> = {};
    for (const recipe of ["mxfp8", "mxfp8_rceil", "blockwise"] as const) {
      const model = new nn.Sequential(new nn.Linear(K, N));
      float8.convertToFloat8Training(model, { config: Float8LinearConfig.fromRecipeName(recipe) });
      float8.enableStats(model, { every: 1 });
      model.forward(x).sum().backward();
      const rows = float8.stats(model);
      expect(rows.map((r) => r.role).sort()).toEqual(["grad_output", "input", "weight"]);
      results[recipe] = rows.find((r) => r.role === "input");
    }
    expect(results.mxfp8.blocks).toBe(M * 2);
    // row 0's two blocks at least (a random block clips too when its amax mantissa is above 1.75)
    expect(results.mxfp8.blocksSaturated).toBeGreaterThanOrEqual(2 / 16);
    expect(results.mxfp8.saturated).toBeGreaterThanOrEqual(2 / (M * K));
    expect(results.mxfp8.saturated * M * K).toBeLessThanOrEqual(results.mxfp8.blocksSaturated * 16 * 32);
    expect(results.mxfp8_rceil.saturated).toBe(0);
    expect(results.mxfp8.blocksUnderflow).toBeGreaterThanOrEqual(1 / 16);
    expect(results.mxfp8.underflow).toBeGreaterThanOrEqual(31 / (M * K));
    expect(results.blockwise.blocks).toBe(M); // 1x128 blocks over K = 64: one per row
    expect(results.blockwise.saturated).toBe(0);
    expect(results.mxfp8.sqnrDb).toBeGreaterThan(15); // the clipped amaxes lose up to 5 %
    expect(results.mxfp8_rceil.sqnrDb).toBeGreaterThan(results.mxfp8.sqnrDb);
  }, 60000);
});

describe("block-scaled recipes: errors", () => {
  test("block casts reject non-2-D and non-float inputs with a Float8Error", () => {
    expect(() => float8.quantizeMx(randn([2, 3, 4]))).toThrow(/quantizeMx.*2-D/);
    expect(() => float8.quantizeBlockwise(tensor([1, 2], { dtype: "int32" }), 1, 128)).toThrow(/quantizeBlockwise/);
  });
});
