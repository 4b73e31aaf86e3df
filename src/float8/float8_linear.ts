// float8_linear.ts — Float8Linear: a Linear whose three GEMMs run in float8.
//
// The three GEMMs and their roles (docs/architecture.md "Numerics", torchao's float8_linear.py):
//   output      = input_e4m3       @ weight_e4m3^T     (gemmConfigOutput)
//   grad_input  = grad_output_e5m2 @ weight_e4m3       (gemmConfigGradInput)
//   grad_weight = grad_output_e5m2^T @ input_e4m3      (gemmConfigGradWeight)
// all written out in one autograd Function (Float8LinearFunction). The bias is
// added in high precision (f32, in the GEMM epilogue).
//
// Each operand's cast is configured by a CastConfig (dynamic, delayed or
// static); one helper, `castToFloat8`, serves every role.
import { Float8Error } from "../errors.ts";
import { hostReadsAllowed } from "../tensor/backend/index.ts";
import { Function, isGradEnabled, type FunctionCtx } from "../autograd/graph.ts";
import { FP8_MAX, type Float8DType, type HighPrecisionDType } from "../tensor/dtype.ts";
import { Tensor, full, zeros } from "../tensor/tensor.ts";
import * as dev from "../tensor/device_ops.ts";
import { collectCastStats, type CastStats } from "./stats.ts";
import { reshape, reshapeOwned, transpose } from "../tensor/ops/movement.ts";
import { gemm } from "../tensor/ops/linalg.ts";
import { materializeTransposedA, materializeTransposedB } from "../tensor/ops/gemm_layout.ts";
import { sumTo } from "../tensor/ops/reduce.ts";
import { Linear } from "../nn/layers.ts";
import { CastConfig, Float8LinearConfig, ScalingGranularity, ScalingType } from "./config.ts";
import { BlockFloat8LinearFunction } from "./block_scaling.ts";
import {
  Float8Tensor, hpTensorAndScaleToFloat8, hpTensorToFloat8Axiswise, hpTensorToFloat8Dynamic, scaledMm, toFloat8SaturatedWithDecoded,
  toFloat8SaturatedWithTranspose, type GemmInputRole,
} from "./float8_tensor.ts";

const ROLE_DTYPE: Record<GemmInputRole, Float8DType> = {
  input: "float8_e4m3fn",
  weight: "float8_e4m3fn",
  grad_output: "float8_e5m2",
};
/** with useFnuzDtype (AMD MI300's formats) */
const ROLE_DTYPE_FNUZ: Record<GemmInputRole, Float8DType> = {
  input: "float8_e4m3fnuz",
  weight: "float8_e4m3fnuz",
  grad_output: "float8_e5m2fnuz",
};

/** Scaling state of one operand: its config and, for delayed/static scaling, its buffers. */
export class RoleScaling {
  readonly float8Dtype: Float8DType;
  /** delayed: latest amax (1), amax history (historyLen), current scale (1) */
  amax: Tensor | null = null;
  history: Tensor | null = null;
  scale: Tensor | null = null;
  /** static: the fixed scale (1) */
  staticScale: Tensor | null = null;
  /** Hook for src/distributed (FSDP's float8 all-gather, float8 tensor parallel): when set, it
   * casts this operand instead of the config: it returns fp8 bytes that were already gathered,
   * or a cast whose scale is the MAX over ranks. Returning null casts as configured. */
  castOverride: ((x: Tensor) => Float8Tensor | null) | null = null;

  constructor(readonly role: GemmInputRole, readonly config: CastConfig, readonly roundPow2 = false, fnuz = false) {
    this.float8Dtype = config.targetDtype ?? (fnuz ? ROLE_DTYPE_FNUZ : ROLE_DTYPE)[role];
  }
}

/**
 * Casts x to float8 for `st.role` under its scaling type (the one helper for
 * every role). withDecoded keeps the exact bf16 decode for the CPU GEMM (tensorwise).
 */
function castToFloat8(x: Tensor, st: RoleScaling, amaxInitialized: boolean, withDecoded = false, withDecodedT = false): Float8Tensor {
  const distributed = st.castOverride?.(x); // see RoleScaling.castOverride
  if (distributed) return distributed;
  const cfg = st.config;
  if (cfg.scalingType === ScalingType.DISABLED) throw new Float8Error("Float8Linear", `the ${st.role} cast is DISABLED`);
  if (cfg.scalingGranularity === ScalingGranularity.AXISWISE) {
    return hpTensorToFloat8Axiswise(x, st.float8Dtype, st.role, st.roundPow2);
  }
  if (cfg.scalingType === ScalingType.DYNAMIC) return hpTensorToFloat8Dynamic(x, st.float8Dtype, st.role, st.roundPow2, withDecoded, withDecodedT);
  if (cfg.scalingType === ScalingType.STATIC) return hpTensorAndScaleToFloat8(x, st.staticScale!, st.float8Dtype, st.role, withDecoded, null, withDecodedT);
  // DELAYED
  const op = `Float8Linear.cast(${st.role})`;
  if (!amaxInitialized) initializeAmaxHistory(x, st, op);
  // cast with the current scale, recording this tensor's amax for the next sync (one pass on the CPU)
  return hpTensorAndScaleToFloat8(x, st.scale!, st.float8Dtype, st.role, withDecoded, st.amax!, withDecodedT);
}

/**
 * torchao's _maybe_initialize_amaxes_scales_for_float8_cast: amax <- amax(x),
 * history[0] <- amax, and the scale comes from the WHOLE history with
 * scaleFnName ("max"), so a history that already holds values (loaded from a
 * state dict, or synced before the first forward) keeps counting.
 */
export function initializeAmaxHistory(x: Tensor, st: RoleScaling, op: string): void {
  const clampToFloat16 = x.dtype === "float16";
  dev.amaxToScale(x, st.float8Dtype, { clampToFloat16, amaxOut: st.amax, scaleOut: st.scale }, op);
  dev.copyElements(st.history!, 0, st.amax!, 0, 1, op); // history[0] <- amax
  // scale <- amaxToScale(max(history)): the amaxes are >= 0, so max |history| is max(history)
  const scratch = zeros([1], { device: x.device });
  try {
    dev.amaxToScale(st.history!, st.float8Dtype, { clampToFloat16, amaxOut: scratch, scaleOut: st.scale }, op);
  } finally {
    scratch.dispose();
  }
}

/**
 * Casts for one GEMM, recording telemetry when the layer collects it this step. withDecodedT (CPU) also
 * writes the transposed bf16 decode, for a GEMM that reads x^T row-major (src/tensor/ops/gemm_layout.ts).
 */
function castOperand(
  x: Tensor, st: RoleScaling, layer: Float8Linear, amaxInitialized: boolean, collect: boolean, withDecoded = false, withDecodedT = false,
): Float8Tensor {
  const f = castToFloat8(x, st, amaxInitialized, withDecoded, withDecodedT);
  if (collect) layer.recordStats(st.role, x, f);
  return f;
}

/**
 * One GEMM in "TN" form: a (P, R) @ b (Q, R)^T -> (P, Q), both operands stored
 * with the reduced dim last (what axiswise scaling and cuBLASLt's fp8 need).
 * Runs in float8 with each operand's cast, or in high precision when the casts are DISABLED.
 */
function gemmTN(
  a: Tensor, sa: RoleScaling, b: Tensor, sb: RoleScaling, layer: Float8Linear, amaxInit: boolean, collect: boolean,
  outDtype: HighPrecisionDType, bias: Tensor | null, useFastAccum: boolean,
): Tensor {
  const [P, R] = a.shape, Q = b.shape[0];
  if (sa.config.scalingType === ScalingType.DISABLED) {
    return reshapeOwned(gemm(a, b, { M: P, K: R, N: Q, transB: true, bias, outDtype, op: "Float8Linear" }), [P, Q]);
  }
  const fa = castOperand(a, sa, layer, amaxInit, collect);
  const fb = castOperand(b, sb, layer, amaxInit, collect);
  const out = scaledMm(fa, fb, { transposeB: true, bias, outDtype, useFastAccum, padInnerDim: layer.config.padInnerDim });
  fa.dispose();
  fb.dispose();
  return out;
}

type Ctx = {
  x2: Tensor; w: Tensor; layer: Float8Linear; M: number; N: number; xShape: readonly number[];
  amaxInitialized: boolean; collect: boolean; outDtype: HighPrecisionDType; hasBias: boolean;
  xf?: Float8Tensor; wf?: Float8Tensor;
};

/**
 * The forward and backward of Float8Linear: three GEMMs in one Function.
 * Tensorwise configs (torchao's default) cast input and weight once, keep the
 * fp8 tensors for backward and hand transposed layouts to the GEMM as flags.
 * Axiswise, per-GEMM and high-precision configs keep the high-precision input
 * and weight and cast each operand for each GEMM along its reduction dim.
 */
class Float8LinearFunction extends Function {
  static override readonly internal = true; // backward frees its temporaries (issue 15)
  forward(ctx: FunctionCtx, x: Tensor, w: Tensor, bias: Tensor | null, layer: Float8Linear): Tensor {
    const K = x.shape[x.ndim - 1];
    const N = w.shape[0];
    const M = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
    const cfg = layer.config;
    const x2 = reshape(x, [M, K]);
    const outDtype = x.dtype as HighPrecisionDType;
    const amaxInitialized = layer.isAmaxInitialized;
    const collect = layer.statsDue();
    const c: Ctx = { x2, w, layer, M, N, xShape: x.shape, amaxInitialized, collect, outDtype, hasBias: !!bias };
    let out: Tensor;
    if (cfg.isSimpleTensorwise) {
      // The casts also write the exact bf16 decode that the CPU GEMM consumes.
      // The input's decode is dropped after the forward GEMM (saved activations
      // stay 1 byte per element); the weight's is kept for the grad_input GEMM.
      // On a device they write the transposed fp8 layout instead, which the two
      // backward GEMMs read (both are kept: x^T for grad_weight, w^T for grad_input).
      const xf = castOperand(x2, layer.scaling.input, layer, amaxInitialized, collect, true);
      // the forward reads the weight transposed: where the CPU's GEMM wants it row-major, the cast writes that layout too
      const wf = castOperand(w, layer.scaling.weight, layer, amaxInitialized, collect, true,
        M * N > 0 && materializeTransposedB(w.device, { P: M, R: K, Q: N, dtype: "bfloat16" }));
      out = scaledMm(xf, wf, {
        transposeB: true, bias, outDtype, useFastAccum: cfg.gemmConfigOutput.useFastAccum, padInnerDim: cfg.padInnerDim,
      });
      xf.dropDecoded();
      wf.dropDecodedT(); // grad_input reads the row-major decode
      if (cfg.forceRecomputeFp8WeightInBwd) {
        // keep only the weight's scale; backward recasts the (live) weight with it
        ctx.saveForBackward(...[xf.data, xf.transposed, xf.scale, wf.scale].filter((t): t is Tensor => t !== null));
        wf.data.dispose();
        wf.dropDecoded();
        wf.dropTransposed();
      } else {
        // (a cast supplied by src/distributed may come without a decode)
        ctx.saveForBackward(...[xf.data, xf.transposed, xf.scale, wf.data, wf.decoded, wf.transposed, wf.scale].filter((t): t is Tensor => t !== null));
      }
      Object.assign(c, { xf, wf });
    } else {
      out = gemmTN(x2, layer.scaling.input, w, layer.scaling.weight, layer, amaxInitialized, collect, outDtype, bias, cfg.gemmConfigOutput.useFastAccum);
      ctx.saveForBackward(x2);
    }
    Object.assign(ctx.data, c);
    return reshapeOwned(out, [...x.shape.slice(0, -1), N]);
  }

  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    const c = ctx.data as unknown as Ctx;
    const { layer, M, N, outDtype, w } = c;
    const cfg = layer.config;
    const g2 = reshape(g.dtype === outDtype ? g : g.to({ dtype: outDtype }), [M, N]);
    const [needX, needW, needB] = ctx.needsInputGrad;
    let gradInput: Tensor | null = null, gradWeight: Tensor | null = null;
    const wDtype = w.dtype as HighPrecisionDType;
    if (cfg.isSimpleTensorwise) {
      // grad_weight reads grad_output^T: where the CPU's GEMM wants it row-major, the cast writes that layout too
      const gf = castOperand(g2, layer.scaling.grad_output, layer, c.amaxInitialized, c.collect, true, 
        needW && materializeTransposedA(g2.device, { P: N, R: M, Q: w.shape[1], dtype: "bfloat16" }));
      let wf = c.wf!;
      if (cfg.forceRecomputeFp8WeightInBwd) {
        if (w.backend.hostAccessible) {
          const [data, decoded] = toFloat8SaturatedWithDecoded(w, wf.scale, wf.dtype);
          wf = new Float8Tensor(data, wf.scale, wf.origDtype, "weight", false, decoded);
        } else {
          const [data, dataT] = toFloat8SaturatedWithTranspose(w, wf.scale, wf.dtype);
          wf = new Float8Tensor(data, wf.scale, wf.origDtype, "weight", false, null, dataT);
        }
      }
      if (needX) gradInput = scaledMm(gf, wf, { outDtype, useFastAccum: cfg.gemmConfigGradInput.useFastAccum, padInnerDim: cfg.padInnerDim });
      if (needW) {
        gradWeight = scaledMm(gf, c.xf!, { transposeA: true, outDtype: wDtype, useFastAccum: cfg.gemmConfigGradWeight.useFastAccum, padInnerDim: cfg.padInnerDim });
      }
      gf.dispose();
      if (cfg.forceRecomputeFp8WeightInBwd) {
        wf.data.dispose();
        wf.dropDecoded();
        wf.dropTransposed();
      }
    } else {
      const s = layer.scaling;
      if (needX) {
        gradInput = gemmTN(g2, s.grad_output, transpose(w, 0, 1), s.weight_for_grad_input, layer, c.amaxInitialized, c.collect, outDtype, null, cfg.gemmConfigGradInput.useFastAccum);
      }
      if (needW) {
        gradWeight = gemmTN(transpose(g2, 0, 1), s.grad_output_for_grad_weight, transpose(c.x2, 0, 1), s.input_for_grad_weight, layer, c.amaxInitialized, c.collect, wDtype, null, cfg.gemmConfigGradWeight.useFastAccum);
      }
    }
    const gradBias = needB && c.hasBias ? sumTo(g2, [N]) : null;
    return [gradInput ? reshapeOwned(gradInput, c.xShape) : null, gradWeight, gradBias, null];
  }
}

/**
 * A Linear whose GEMMs run in float8 (e4m3 forward, e5m2 gradients), with
 * per-tensor dynamic, delayed or static scaling (torchao's Float8Linear).
 * Create it with Float8Linear.fromFloat(linear, config) or
 * convertToFloat8Training(model).
 */
export class Float8Linear extends Linear {
  readonly config: Float8LinearConfig;
  /** per-operand scaling: the three main casts and the per-GEMM overrides */
  readonly scaling: Record<GemmInputRole | "input_for_grad_weight" | "weight_for_grad_input" | "grad_output_for_grad_weight", RoleScaling>;
  /** telemetry: collect every `statsEvery` forwards (0 = off, the default) */
  statsEvery = 0;
  private forwardCount = 0;
  /** telemetry of the last collecting step, per role */
  readonly lastStats = new Map<GemmInputRole, CastStats>();
  /** delayed scaling: false until the first forward has seeded the amax histories */
  isAmaxInitialized: boolean;
  /** delayed scaling: set by syncFloat8AmaxAndScaleHistory, cleared by each forward */
  amaxAndScaleSynced = true;

  constructor(
    inFeatures: number,
    outFeatures: number,
    opts: { bias?: boolean; dtype?: HighPrecisionDType; config?: Float8LinearConfig; weight?: Tensor; biasTensor?: Tensor | null } = {},
  ) {
    super(inFeatures, outFeatures, opts);
    const config = opts.config ?? new Float8LinearConfig();
    if (!(config instanceof Float8LinearConfig)) throw new Float8Error("Float8Linear", "config must be a Float8LinearConfig");
    this.config = config;
    this.isAmaxInitialized = !config.enableAmaxInit;
    const p2 = config.roundScalesToPowerOf2, fnuz = config.useFnuzDtype;
    const input = new RoleScaling("input", config.castConfigInput, p2, fnuz);
    const weight = new RoleScaling("weight", config.castConfigWeight, p2, fnuz);
    const gradOutput = new RoleScaling("grad_output", config.castConfigGradOutput, p2, fnuz);
    // an override equal to the main cast shares its state (delayed buffers, static scale)
    const override = (main: RoleScaling, cfg: CastConfig) => (cfg.sameAs(main.config) ? main : new RoleScaling(main.role, cfg, p2, fnuz));
    this.scaling = {
      input, weight, grad_output: gradOutput,
      input_for_grad_weight: override(input, config.castConfigInputForGradWeight),
      weight_for_grad_input: override(weight, config.castConfigWeightForGradInput),
      grad_output_for_grad_weight: override(gradOutput, config.castConfigGradOutputForGradWeight),
    };
    const historyLen = config.delayedScalingConfig.historyLen;
    for (const st of [input, weight, gradOutput]) {
      // torchao registers all nine delayed-scaling buffers when any role is delayed (state dicts
      // line up key for key); initial values: amax = the role's fp8 max, history zeros, scale 1
      if (config.hasAnyDelayedScaling) {
        st.amax = this.registerBuffer(`fp8_amax_${st.role}`, full([1], FP8_MAX[st.float8Dtype]));
        st.history = this.registerBuffer(`fp8_amax_history_${st.role}`, zeros([historyLen]));
        st.scale = this.registerBuffer(`fp8_scale_${st.role}`, full([1], 1));
      }
      if (st.config.scalingType === ScalingType.STATIC) {
        st.staticScale = this.registerBuffer(`fp8_static_scale_${st.role}`, full([1], st.config.staticScale!));
      }
    }
  }

  /** Swaps a Linear for a Float8Linear sharing its weight and bias tensors. */
  static fromFloat(linear: Linear, config: Float8LinearConfig = new Float8LinearConfig()): Float8Linear {
    if (!(linear instanceof Linear)) throw new Float8Error("Float8Linear.fromFloat", "expects an nn.Linear");
    const m = new Float8Linear(linear.inFeatures, linear.outFeatures, {
      config, weight: linear.weight, biasTensor: linear.bias,
    });
    m.training = linear.training;
    return m;
  }

  forward(x: Tensor): Tensor {
    const delayed = this.config.hasAnyDelayedScaling;
    // torchao checks only with autograd on, so an evaluation loop under noGrad needs no sync
    if (delayed && this.config.enablePreAndPostForward && this.isAmaxInitialized && !this.amaxAndScaleSynced && isGradEnabled()) {
      throw new Float8Error(
        "Float8Linear.forward",
        "amaxes and scales not synced: call syncFloat8AmaxAndScaleHistory(model) after each backward (before the next forward)",
      );
    }
    if (x.shape[x.ndim - 1] !== this.inFeatures || x.dtype !== this.weight.dtype) {
      throw new Float8Error(
        "Float8Linear.forward",
        `input of shape [${x.shape.join(", ")}] and dtype ${x.dtype} does not fit weight [${this.outFeatures}, ${this.inFeatures}] of dtype ${this.weight.dtype}`,
      );
    }
    this.forwardCount++;
    const out = this.config.blockScaling
      ? BlockFloat8LinearFunction.apply(x, this.weight, this.bias, this) // block-scaled recipes: block_scaling.ts
      : Float8LinearFunction.apply(x, this.weight, this.bias, this);
    if (delayed && this.config.enablePreAndPostForward) {
      this.isAmaxInitialized = true;
      this.amaxAndScaleSynced = false;
    }
    return out;
  }

  get name(): string {
    return "Float8Linear";
  }

  /** Whether this forward collects telemetry (statsEvery > 0 and the step is due). */
  statsDue(): boolean {
    // Never inside a CUDA-graph capture: collecting reads the host, and replays run no JS
    // (telemetry of a graphed run comes from its eager steps).
    return this.statsEvery > 0 && (this.forwardCount - 1) % this.statsEvery === 0 && hostReadsAllowed();
  }

  /** Records telemetry of one cast (called by the casts when statsDue()). */
  /** Forwards run so far (the `step` of telemetry). */
  get forwardsSeen(): number {
    return this.forwardCount;
  }

  recordStats(role: GemmInputRole, hp: Tensor, f: Float8Tensor): void {
    this.lastStats.set(role, collectCastStats(hp, f, this.forwardCount));
  }

  extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null ? "True" : "False"}, scaling="${this.config.scalingRepr()}"`;
  }
}
