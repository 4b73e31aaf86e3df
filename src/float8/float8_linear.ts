// float8_linear.ts — Float8Linear: a Linear whose three GEMMs run in float8.
//
// The three GEMMs and their roles (design.md, torchao's float8_linear.py):
//   output      = input_e4m3       @ weight_e4m3^T     (gemmConfigOutput)
//   grad_input  = grad_output_e5m2 @ weight_e4m3       (gemmConfigGradInput)
//   grad_weight = grad_output_e5m2^T @ input_e4m3      (gemmConfigGradWeight)
// all written out in one autograd Function (Float8LinearFunction). The bias is
// added in high precision (f32, in the GEMM epilogue).
//
// Each operand's cast is configured by a CastConfig (dynamic, delayed or
// static); one helper, `castToFloat8`, serves every role.
import { Float8Error } from "../errors.ts";
import { lib, check } from "../ffi/index.ts";
import { Function, type FunctionCtx } from "../autograd/graph.ts";
import { DTYPE_CODE, FP8_MAX, type Float8DType, type HighPrecisionDType } from "../tensor/dtype.ts";
import { Tensor, full, zeros } from "../tensor/tensor.ts";
import { reshape } from "../tensor/ops/movement.ts";
import { sumTo } from "../tensor/ops/reduce.ts";
import { Linear } from "../nn/layers.ts";
import { CastConfig, Float8LinearConfig, ScalingType } from "./config.ts";
import {
  Float8Tensor, hpTensorAndScaleToFloat8, hpTensorToFloat8Dynamic, scaledMm, toFloat8Saturated, type GemmInputRole,
} from "./float8_tensor.ts";

const ROLE_DTYPE: Record<GemmInputRole, Float8DType> = {
  input: "float8_e4m3fn",
  weight: "float8_e4m3fn",
  grad_output: "float8_e5m2",
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

  constructor(readonly role: GemmInputRole, readonly config: CastConfig) {
    this.float8Dtype = ROLE_DTYPE[role];
  }
}

/** Casts x to float8 for `st.role` under its scaling type (the one helper for every role). */
function castToFloat8(x: Tensor, st: RoleScaling, amaxInitialized: boolean): Float8Tensor {
  switch (st.config.scalingType) {
    case ScalingType.DYNAMIC:
      return hpTensorToFloat8Dynamic(x, st.float8Dtype, st.role);
    case ScalingType.STATIC:
      return hpTensorAndScaleToFloat8(x, st.staticScale!, st.float8Dtype, st.role);
    case ScalingType.DELAYED: {
      const op = `Float8Linear.cast(${st.role})`;
      if (!amaxInitialized) {
        // torchao's _maybe_initialize_amaxes_scales_for_float8_cast: seed the
        // history and the scale from this tensor.
        check(lib.fp8_cpu_amax_to_scale(st.amax!.ptrFor(op), st.scale!.ptrFor(op), x.ptrFor(op), DTYPE_CODE[x.dtype], x.numel,
          DTYPE_CODE[st.float8Dtype], 0), op);
        new Float32Array(st.history!.rawView())[0] = new Float32Array(st.amax!.rawView())[0];
      }
      // record this tensor's amax for the next sync; cast with the current scale
      check(lib.fp8_cpu_amax(st.amax!.ptrFor(op), x.ptrFor(op), DTYPE_CODE[x.dtype], x.numel), op);
      return hpTensorAndScaleToFloat8(x, st.scale!, st.float8Dtype, st.role);
    }
  }
}

/** The forward and backward of Float8Linear: three float8 GEMMs. */
class Float8LinearFunction extends Function {
  forward(ctx: FunctionCtx, x: Tensor, w: Tensor, bias: Tensor | null, layer: Float8Linear): Tensor {
    const K = x.shape[x.ndim - 1];
    const N = w.shape[0];
    const M = x.numel / K;
    const cfg = layer.config;
    const xf = castToFloat8(reshape(x, [M, K]), layer.scaling.input, layer.isAmaxInitialized);
    const wf = castToFloat8(w, layer.scaling.weight, layer.isAmaxInitialized);
    const out = scaledMm(xf, wf, {
      transposeB: true, bias, outDtype: x.dtype as HighPrecisionDType,
      useFastAccum: cfg.gemmConfigOutput.useFastAccum, padInnerDim: cfg.padInnerDim,
    });
    if (cfg.forceRecomputeFp8WeightInBwd) {
      // keep only the weight's scale; backward recasts the (live) weight with it
      ctx.saveForBackward(xf.data, xf.scale, wf.scale);
      wf.data.dispose();
    } else {
      ctx.saveForBackward(xf.data, xf.scale, wf.data, wf.scale);
    }
    Object.assign(ctx.data, { xf, wf, w, layer, M, K, N, xShape: x.shape, amaxInitialized: layer.isAmaxInitialized, outDtype: x.dtype, hasBias: !!bias });
    return reshape(out, [...x.shape.slice(0, -1), N]);
  }

  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    const { xf, w, layer, M, N, xShape, amaxInitialized, outDtype, hasBias } = ctx.data as {
      xf: Float8Tensor; w: Tensor; layer: Float8Linear; M: number; N: number; xShape: readonly number[];
      amaxInitialized: boolean; outDtype: HighPrecisionDType; hasBias: boolean;
    };
    let wf = ctx.data.wf as Float8Tensor;
    const cfg = layer.config;
    const g2 = reshape(g.dtype === outDtype ? g : g.to({ dtype: outDtype }), [M, N]);
    const gf = castToFloat8(g2, layer.scaling.grad_output, amaxInitialized);
    if (cfg.forceRecomputeFp8WeightInBwd) {
      wf = new Float8Tensor(toFloat8Saturated(w, wf.scale, wf.dtype), wf.scale, wf.origDtype, "weight");
    }
    const [needX, needW, needB] = ctx.needsInputGrad;
    const gradInput = needX
      ? reshape(scaledMm(gf, wf, { outDtype, useFastAccum: cfg.gemmConfigGradInput.useFastAccum, padInnerDim: cfg.padInnerDim }), xShape)
      : null;
    const gradWeight = needW
      ? scaledMm(gf, xf, { transposeA: true, outDtype: w.dtype as HighPrecisionDType, useFastAccum: cfg.gemmConfigGradWeight.useFastAccum, padInnerDim: cfg.padInnerDim })
      : null;
    const gradBias = needB && hasBias ? sumTo(g2, [N]) : null;
    gf.dispose();
    return [gradInput, gradWeight, gradBias, null];
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
  readonly scaling: Record<GemmInputRole, RoleScaling>;
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
    this.scaling = {
      input: new RoleScaling("input", config.castConfigInput),
      weight: new RoleScaling("weight", config.castConfigWeight),
      grad_output: new RoleScaling("grad_output", config.castConfigGradOutput),
    };
    const historyLen = config.delayedScalingConfig.historyLen;
    for (const st of Object.values(this.scaling)) {
      if (st.config.scalingType === ScalingType.DELAYED) {
        // torchao's initial values: amax = fp8 max, history zeros, scale 1
        st.amax = this.registerBuffer(`fp8_amax_${st.role}`, full([1], FP8_MAX[st.float8Dtype]));
        st.history = this.registerBuffer(`fp8_amax_history_${st.role}`, zeros([historyLen]));
        st.scale = this.registerBuffer(`fp8_scale_${st.role}`, full([1], 1));
      } else if (st.config.scalingType === ScalingType.STATIC) {
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
    if (delayed && this.config.enablePreAndPostForward && this.isAmaxInitialized && !this.amaxAndScaleSynced) {
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
    const out = Float8LinearFunction.apply(x, this.weight, this.bias, this);
    if (delayed && this.config.enablePreAndPostForward) {
      this.isAmaxInitialized = true;
      this.amaxAndScaleSynced = false;
    }
    return out;
  }

  get name(): string {
    return "Float8Linear";
  }

  extraRepr(): string {
    return `in=${this.inFeatures}, out=${this.outFeatures}, bias=${this.bias !== null}, scaling="${this.config.scalingRepr()}"`;
  }
}
