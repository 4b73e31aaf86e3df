// block_scaling.ts — block-scaled float8: the recipes' configuration, the
// block-quantised tensor and the Linear function that casts each GEMM's
// operands along that GEMM's reduction dim (docs/architecture.md, block scaling).
//
//   "blockwise" (DeepSeek-V3, torchao's blockwise_fp8_training, Transformer Engine's
//   Float8BlockScaling): 1x128 blocks along K for input and grad_output, 128x128
//   blocks for the weight, f32 scales, e4m3 everywhere.
//   "mxfp8" (OCP MX, torchao's mx_formats MXLinear, TE's MXFP8BlockScaling):
//   1x32 blocks along the reduction dim for every operand, e8m0 (power-of-two)
//   scales, e4m3 everywhere.
//
// On the CPU each GEMM decodes its block-quantised operands to f32 with the block
// scales applied (libfp8's fp8_cpu_dequantize_blockwise / _mx) and runs oneDNN's
// f32 GEMM: an MX decode is exact (power-of-two scales), a blockwise decode rounds
// fp8 * f32 scale to f32 once (where the reference rounds the dot product instead).
// An MX GEMM decodes to bf16 instead, and runs oneDNN's bf16 GEMM, where the CPU
// multiplies bf16 natively and every block's exponent keeps fp8 * 2^k a normal bf16
// (mxDecodeExactInBf16): the operands are then the f32 decode's values exactly, and
// only the GEMM's f32 summation order differs.
// On cuda the same casts run on the device (libfp8/src/cuda/block_kernels.cu, bit for
// bit with the CPU's) and each GEMM is one block-scaled GEMM (fp8_cuda_scaled_mm_blockwise /
// _mx): cuBLASLt's block scale modes where the GPU has them, else the same decode + f32 GEMM
// on the device, said once with a warning (cuda.blockGemmInfo()).
import { Float8Error } from "../errors.ts";
import { Function, type FunctionCtx } from "../autograd/graph.ts";
import { FP8_MAX, type Float8DType, type HighPrecisionDType } from "../tensor/dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import * as dev from "../tensor/device_ops.ts";
import { reshape, reshapeOwned, transpose } from "../tensor/ops/movement.ts";
import { gemm } from "../tensor/ops/linalg.ts";
import { sumTo } from "../tensor/ops/reduce.ts";
import type { CastStats } from "./stats.ts";

/** The two block-scaled recipes. */
export type BlockRecipeKind = "blockwise" | "mxfp8";
/** How an MX block's e8m0 exponent is chosen: OCP's floor(log2(amax)) - emax (torchao's default), or round-up of amax/max. */
export type MxScaleMode = "floor" | "rceil";

/** Configuration of a block-scaled recipe (Float8LinearConfig.blockScaling). */
export class BlockScalingConfig {
  readonly kind: BlockRecipeKind;
  /** block length along the reduction dim: 128 (blockwise) or 32 (mxfp8) by default */
  readonly blockSize: number;
  /** rows of a weight block: 128 for blockwise (128x128 blocks), 1 for mxfp8 */
  readonly weightBlockRows: number;
  /** MX exponent rule (mxfp8 only) */
  readonly mxMode: MxScaleMode;
  /** element dtype of every operand (e4m3, as the references) */
  readonly float8Dtype: Float8DType;

  constructor(opts: { kind: BlockRecipeKind; blockSize?: number; mxMode?: MxScaleMode; float8Dtype?: Float8DType }) {
    const op = "BlockScalingConfig";
    if (opts.kind !== "blockwise" && opts.kind !== "mxfp8") throw new Float8Error(op, `kind must be 'blockwise' or 'mxfp8', got '${String(opts.kind)}'`);
    this.kind = opts.kind;
    this.blockSize = opts.blockSize ?? (opts.kind === "blockwise" ? 128 : 32);
    if (!Number.isInteger(this.blockSize) || this.blockSize < 1) throw new Float8Error(op, `blockSize must be a positive integer, got ${this.blockSize}`);
    this.weightBlockRows = opts.kind === "blockwise" ? this.blockSize : 1;
    this.mxMode = opts.mxMode ?? "floor";
    if (this.mxMode !== "floor" && this.mxMode !== "rceil") throw new Float8Error(op, `mxMode must be 'floor' or 'rceil', got '${String(this.mxMode)}'`);
    this.float8Dtype = opts.float8Dtype ?? "float8_e4m3fn";
    if (this.float8Dtype !== "float8_e4m3fn" && this.float8Dtype !== "float8_e5m2") throw new Float8Error(op, `float8Dtype must be a float8 dtype, got ${String(this.float8Dtype)}`);
    Object.freeze(this);
  }

  /** "blockwise(1x128,w128x128)" or "mxfp8(1x32,floor)". */
  repr(): string {
    return this.kind === "blockwise"
      ? `blockwise(1x${this.blockSize},w${this.weightBlockRows}x${this.blockSize})`
      : `mxfp8(1x${this.blockSize},${this.mxMode})`;
  }
}

/**
 * A 2-D tensor quantised in blocks of blockRows x blockCols: fp8 data (rows, cols)
 * and one scale per block, row-major (ceil(rows/br), ceil(cols/bc)): f32 reciprocal
 * scales (blockwise: value = fp8 * scale) or e8m0 bytes (mx: value = fp8 * 2^(E-127)),
 * the bytes kept in a 1-byte tensor.
 */
export class BlockFloat8Tensor {
  constructor(
    readonly data: Tensor,
    readonly scale: Tensor,
    readonly kind: "blockwise" | "mx",
    readonly blockRows: number,
    readonly blockCols: number,
  ) {}

  get shape(): readonly number[] {
    return this.data.shape;
  }

  /** The dequantised tensor (float32 or bfloat16), block scales applied. */
  dequantize(dtype: HighPrecisionDType = "float32"): Tensor {
    const op = "BlockFloat8Tensor.dequantize";
    const [rows, cols] = this.data.shape;
    const out = Tensor.empty([rows, cols], dtype, this.data.device);
    if (this.kind === "mx") {
      dev.dequantizeMxInto(out, this.data, this.scale, { block: this.blockCols }, op);
    } else {
      dev.dequantizeBlockwiseInto(out, this.data, this.scale, this, op);
    }
    return out;
  }

  dispose(): void {
    this.data.dispose();
    this.scale.dispose();
  }
}

/** The block casts take a 2-D float32 / bfloat16 tensor on a device with block kernels (the CPU, cuda). */
function check2d(x: Tensor, op: string): void {
  dev.requireBlockKernels(x, op);
  if (x.ndim !== 2 || (x.dtype !== "float32" && x.dtype !== "bfloat16")) {
    throw new Float8Error(op, `expects a 2-D float32 or bfloat16 tensor, got shape [${x.shape.join(", ")}] dtype ${x.dtype}`);
  }
}

/** Quantises a 2-D tensor in blockRows x blockCols blocks with f32 scales (amax / fp8 max, torchao's 1e-12 floor). */
export function quantizeBlockwise(x: Tensor, blockRows: number, blockCols: number, float8Dtype: Float8DType = "float8_e4m3fn"): BlockFloat8Tensor {
  const op = "quantizeBlockwise";
  check2d(x, op);
  const [rows, cols] = x.shape;
  const data = Tensor.empty([rows, cols], float8Dtype, x.device);
  const scale = Tensor.empty([Math.ceil(rows / blockRows), Math.ceil(cols / blockCols)], "float32", x.device);
  dev.quantizeBlockwiseInto(data, scale, x, { blockRows, blockCols }, op);
  return new BlockFloat8Tensor(data, scale, "blockwise", blockRows, blockCols);
}

/** Quantises a 2-D tensor in MX blocks of `block` elements along its last dim (e8m0 scales). */
export function quantizeMx(x: Tensor, block = 32, mode: MxScaleMode = "floor", float8Dtype: Float8DType = "float8_e4m3fn"): BlockFloat8Tensor {
  const op = "quantizeMx";
  check2d(x, op);
  const [rows, cols] = x.shape;
  const data = Tensor.empty([rows, cols], float8Dtype, x.device);
  const scale = Tensor.empty([rows, Math.ceil(cols / block)], "float8_e4m3fn", x.device); // e8m0 bytes
  dev.quantizeMxInto(data, scale, x, { block, rceil: mode === "rceil" }, op);
  return new BlockFloat8Tensor(data, scale, "mx", 1, block);
}

/** Quantises x (rows, R) for a GEMM that reduces along R, in `blockRows` x blockSize blocks. */
function quantizeOperand(x: Tensor, cfg: BlockScalingConfig, blockRows: number): BlockFloat8Tensor {
  return cfg.kind === "mxfp8"
    ? quantizeMx(x, cfg.blockSize, cfg.mxMode, cfg.float8Dtype)
    : quantizeBlockwise(x, blockRows, cfg.blockSize, cfg.float8Dtype);
}

/** The f32 value an operand has in its GEMM: quantised along the reduction (last) dim, then decoded. */
function castDecode(x: Tensor, cfg: BlockScalingConfig, blockRows = 1): Tensor {
  const q = quantizeOperand(x, cfg, blockRows);
  try {
    return q.dequantize("float32");
  } finally {
    q.dispose();
  }
}

/**
 * The e8m0 scale bytes E for which fp8 * 2^(E - 127) is a normal bf16 (or zero) for every finite
 * code of the dtype: the smallest subnormal code (e4m3fn 2^-9, e5m2 2^-16) stays >= 2^-126 (bf16
 * GEMMs flush subnormal inputs) and the largest (448 = 1.75 * 2^8, 57344 = 1.75 * 2^15) stays
 * <= bf16's max (1.99 * 2^127). Every fp8 significand (<= 4 bits) fits bf16's 8.
 */
const MX_BF16_EXACT: Partial<Record<Float8DType, readonly [number, number]>> = {
  float8_e4m3fn: [1 + 9, 254 - 8],
  float8_e5m2: [1 + 16, 254 - 15],
};

/**
 * Whether an MX-quantised tensor decodes exactly to normal bf16 values (every scale byte in the
 * range above): then its bf16 decode equals its f32 decode, value for value.
 */
export function mxDecodeExactInBf16(q: BlockFloat8Tensor): boolean {
  const range = MX_BF16_EXACT[q.data.dtype as Float8DType];
  if (q.kind !== "mx" || !range || !q.scale.backend.hostAccessible) return false;
  const [lo, hi] = range;
  const e = new Uint8Array(q.scale.rawView(), 0, q.scale.numel);
  for (let i = 0; i < e.length; i++) if (e[i]! < lo || e[i]! > hi) return false;
  return true;
}

let mxBf16Gemm = true;
/** Turns the bf16 GEMM of exact MX decodes on or off (default on; off: f32 as for blockwise). For benchmarks and tests; returns the previous setting. */
export function setMxBf16Gemm(on: boolean): boolean {
  const was = mxBf16Gemm;
  mxBf16Gemm = on;
  return was;
}

/** Whether the backend of x runs bf16 GEMMs natively (CPU: AVX-512 BF16), asked once per backend. */
const bf16Native = new WeakMap<object, boolean>();
function bf16GemmNative(x: Tensor): boolean {
  if (!mxBf16Gemm) return false;
  let yes = bf16Native.get(x.backend);
  if (yes === undefined) {
    yes = dev.bf16GemmNative(x);
    bf16Native.set(x.backend, yes);
  }
  return yes;
}

/**
 * a (P, R) @ b (Q, R)^T -> (P, Q) with both operands block-quantised along R
 * (a in 1 x bs blocks, b in bRows x bs), decoded (f32; bf16 for MX operands that decode
 * exactly to bf16 on a CPU with native bf16), through oneDNN.
 */
function blockGemmTN(a: Tensor, b: Tensor, cfg: BlockScalingConfig, bRows: number, outDtype: HighPrecisionDType, bias: Tensor | null): Tensor {
  const [P, R] = a.shape, Q = b.shape[0];
  if (deviceBlockGemm(a, cfg, R, Q)) {
    // a device with block-scaled GEMMs (cuda): cuBLASLt's block scale modes, or its own dequantize fallback
    const op = `Float8Linear(${cfg.kind})`;
    const qa = quantizeOperand(a, cfg, 1), qb = quantizeOperand(b, cfg, bRows);
    try {
      const out = Tensor.empty([P, Q], outDtype, a.device);
      try {
        dev.scaledMmBlockInto(out, qa, qb, { mx: cfg.kind === "mxfp8", bBlockRows: bRows, bias }, op);
      } catch (e) {
        out.dispose();
        throw e;
      }
      return out;
    } finally {
      qa.dispose();
      qb.dispose();
    }
  }
  const qa = quantizeOperand(a, cfg, 1);
  let qb: BlockFloat8Tensor | null = null, ad: Tensor | null = null, bd: Tensor | null = null;
  try {
    qb = quantizeOperand(b, cfg, bRows);
    const dt: HighPrecisionDType = cfg.kind === "mxfp8" && bf16GemmNative(a) && mxDecodeExactInBf16(qa) && mxDecodeExactInBf16(qb) ? "bfloat16" : "float32";
    ad = qa.dequantize(dt);
    bd = qb.dequantize(dt);
    return reshapeOwned(gemm(ad, bd, { M: P, K: R, N: Q, transB: true, bias, outDtype, op: `Float8Linear(${cfg.kind})` }), [P, Q]);
  } finally {
    qa.dispose();
    qb?.dispose();
    ad?.dispose();
    bd?.dispose();
  }
}

/**
 * Whether a (rows, R) @ b (Q, R)^T runs as one block-scaled GEMM on a's device: a backend with
 * scaledMmBlock (cuda), the block sizes cuBLASLt scales (128 blockwise, 32 MX), R and Q multiples of 16
 * (its fp8 GEMMs), not e5m2 x e5m2. Elsewhere the operands are decoded and the f32 GEMM runs.
 */
function deviceBlockGemm(a: Tensor, cfg: BlockScalingConfig, R: number, Q: number): boolean {
  if (!dev.hasBlockGemm(a)) return false;
  if (cfg.blockSize !== (cfg.kind === "mxfp8" ? 32 : 128) || cfg.float8Dtype === "float8_e5m2") return false;
  return R % 16 === 0 && Q % 16 === 0;
}

/** Telemetry of a block-scaled cast: CastStats plus the share of blocks that clipped or underflowed anywhere. */
export interface BlockCastStats extends CastStats {
  /** number of blocks */
  blocks: number;
  /** share of blocks with at least one saturated element */
  blocksSaturated: number;
  /** share of blocks with at least one element that underflowed to zero */
  blocksUnderflow: number;
}

/**
 * Per-block telemetry of the cast hp -> q (host-side, for occasional collection): the shares of
 * elements and of blocks that saturated (|x * multiplier| beyond the fp8 max plus half an ulp, so the
 * cast clamped them: MX's FLOOR scales allow up to 511/448 of the max) or underflowed (nonzero -> 0),
 * the SQNR of the cast, the amax and the smallest quantize multiplier ("scale").
 */
export function collectBlockCastStats(hp: Tensor, q: BlockFloat8Tensor, step: number): BlockCastStats {
  const [rows, cols] = q.shape;
  const x = hp.toArray(), v = q.data.toArray(), dq = q.dequantize("float32");
  const d = dq.toArray();
  dq.dispose();
  const fp8 = q.data.dtype as Float8DType;
  const beyond = fp8 === "float8_e4m3fn" ? 448 + 16 : 57344 + 4096;
  const nbc = Math.ceil(cols / q.blockCols), nbr = Math.ceil(rows / q.blockRows);
  const nb = nbr * nbc;
  const mult = new Float64Array(nb);
  if (q.kind === "mx") {
    const bytes = new Uint8Array(q.scale.bytes());
    for (let b = 0; b < nb; b++) mult[b] = bytes[b] === 255 ? NaN : 2 ** (127 - bytes[b]!);
  } else {
    const inv = q.scale.toArray();
    for (let b = 0; b < nb; b++) mult[b] = Math.fround(1 / inv[b]!);
  }
  const satBlock = new Uint8Array(nb), undBlock = new Uint8Array(nb);
  let sat = 0, und = 0, amax = 0, refSq = 0, errSq = 0;
  for (let i = 0; i < x.length; i++) {
    const r = Math.floor(i / cols), c = i - r * cols;
    const b = Math.floor(r / q.blockRows) * nbc + Math.floor(c / q.blockCols);
    const xi = x[i]!;
    amax = Math.max(amax, Math.abs(xi));
    if (Math.abs(v[i]!) === FP8_MAX[fp8] && Math.abs(Math.fround(xi * mult[b]!)) > beyond) sat++, (satBlock[b] = 1);
    if (xi !== 0 && v[i] === 0) und++, (undBlock[b] = 1);
    refSq += xi * xi;
    errSq += (xi - d[i]!) ** 2;
  }
  const n = Math.max(x.length, 1);
  const count = (a: Uint8Array) => a.reduce((p, y) => p + y, 0) / Math.max(nb, 1);
  let minMult = Infinity;
  for (const m of mult) if (m < minMult) minMult = m;
  return {
    step, amax, scale: minMult, saturated: sat / n, underflow: und / n, sqnrDb: 10 * Math.log10(refSq / errSq),
    blocks: nb, blocksSaturated: count(satBlock), blocksUnderflow: count(undBlock),
  };
}

/** What a block-scaled Float8Linear needs from its layer. */
export interface BlockLinearLayer {
  readonly config: { readonly blockScaling: BlockScalingConfig | null };
  /** telemetry: whether this forward collects, the forward count, and where the stats go */
  statsDue(): boolean;
  readonly forwardsSeen: number;
  readonly lastStats: Map<"input" | "weight" | "grad_output", CastStats>;
}

type Ctx = {
  x2: Tensor; w: Tensor; cfg: BlockScalingConfig; M: number; N: number; xShape: readonly number[]; outDtype: HighPrecisionDType; hasBias: boolean;
  layer: BlockLinearLayer; collect: boolean;
};

/** Records the per-block telemetry of casting x (rows, R) as a GEMM operand along R. */
function recordBlockStats(layer: BlockLinearLayer, role: "input" | "weight" | "grad_output", x: Tensor, cfg: BlockScalingConfig, blockRows = 1): void {
  const q = quantizeOperand(x, cfg, blockRows);
  try {
    layer.lastStats.set(role, collectBlockCastStats(x, q, layer.forwardsSeen));
  } finally {
    q.dispose();
  }
}

/**
 * Float8Linear's three GEMMs under a block-scaled recipe. Each GEMM casts its
 * operands along its own reduction dim, so the backward GEMMs re-block
 * transposed operands, as torchao's references do:
 *   output      = x (1 x bs along K)  @ w (wbr x bs along K)^T
 *   grad_input  = g (1 x bs along N)  @ w re-blocked along N (128x128 blocks hold
 *                 the same elements either way, so blockwise reuses w's blocks)
 *   grad_weight = g^T (1 x bs along M) @ x^T (1 x bs along M)
 */
export class BlockFloat8LinearFunction extends Function {
  forward(ctx: FunctionCtx, x: Tensor, w: Tensor, bias: Tensor | null, layer: BlockLinearLayer): Tensor {
    const cfg = layer.config.blockScaling!;
    const K = x.shape[x.ndim - 1], N = w.shape[0];
    const M = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
    const x2 = reshape(x, [M, K]);
    const outDtype = x.dtype as HighPrecisionDType;
    const out = blockGemmTN(x2, w, cfg, cfg.weightBlockRows, outDtype, bias);
    const collect = layer.statsDue();
    if (collect) {
      recordBlockStats(layer, "input", x2, cfg);
      recordBlockStats(layer, "weight", w, cfg, cfg.weightBlockRows);
    }
    ctx.saveForBackward(x2);
    Object.assign(ctx.data, { x2, w, cfg, M, N, xShape: x.shape, outDtype, hasBias: !!bias, layer, collect } satisfies Ctx);
    return reshapeOwned(out, [...x.shape.slice(0, -1), N]);
  }

  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    const c = ctx.data as unknown as Ctx;
    const { cfg, M, N, outDtype, w, x2 } = c;
    const g2 = reshape(g.dtype === outDtype ? g : g.to({ dtype: outDtype }), [M, N]);
    const [needX, needW, needB] = ctx.needsInputGrad;
    let gradInput: Tensor | null = null, gradWeight: Tensor | null = null;
    const op = `Float8Linear(${cfg.kind}).backward`;
    if (c.collect) recordBlockStats(c.layer, "grad_output", g2, cfg); // as cast for the grad_input GEMM
    if (needX) {
      const K = w.shape[1];
      if (cfg.kind === "blockwise" && !deviceBlockGemm(g2, cfg, N, K)) {
        // w's 128x128 blocks are the blocks of w^T too: decode once, GEMM with b not transposed
        const gd = castDecode(g2, cfg), wd = castDecode(w, cfg, cfg.weightBlockRows);
        gradInput = reshapeOwned(gemm(gd, wd, { M, K: N, N: K, outDtype, op }), [M, K]);
        gd.dispose();
        wd.dispose();
      } else {
        // re-blocked along N (blockwise on a device GEMM: w^T in the same 128x128 blocks)
        const wT = transpose(w, 0, 1);
        gradInput = blockGemmTN(g2, wT, cfg, cfg.kind === "blockwise" ? cfg.weightBlockRows : 1, outDtype, null);
        wT.dispose();
      }
    }
    if (needW) {
      const gT = transpose(g2, 0, 1), xT = transpose(x2, 0, 1);
      gradWeight = blockGemmTN(gT, xT, cfg, 1, w.dtype as HighPrecisionDType, null);
      gT.dispose();
      xT.dispose();
    }
    const gradBias = needB && c.hasBias ? sumTo(g2, [N]) : null;
    return [gradInput ? reshapeOwned(gradInput, c.xShape) : null, gradWeight, gradBias, null];
  }
}
