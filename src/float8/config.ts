// config.ts — Float8 training configuration, following torchao.float8's
// config.py (October 2024): frozen objects validated on construction, with
// torchao's defaults and short reprs ("i:dyn,w:del,go:sta").
import { Float8Error } from "../errors.ts";
import { isFloat8, type Float8DType } from "../tensor/dtype.ts";
import { BlockScalingConfig } from "./block_scaling.ts";

/** How a tensor's scale is chosen. */
export const ScalingType = {
  /** scale from this tensor's own amax, every time (torchao's default) */
  DYNAMIC: "dynamic",
  /** scale from a history of past amaxes, updated by syncFloat8AmaxAndScaleHistory */
  DELAYED: "delayed",
  /** a fixed, user-given scale */
  STATIC: "static",
  /** no cast: this operand stays in high precision (its GEMM then runs in high precision) */
  DISABLED: "disabled",
} as const;
/** "dynamic" | "delayed" | "static" | "disabled". */
export type ScalingType = (typeof ScalingType)[keyof typeof ScalingType];

const SHORT: Record<ScalingType, string> = { dynamic: "dyn", delayed: "del", static: "sta", disabled: "dis" };

/** How many scales a cast uses. */
export const ScalingGranularity = {
  /** one scale for the whole tensor */
  TENSORWISE: "tensorwise",
  /** one scale per row, along the GEMM's reduction dim (requires DYNAMIC) */
  AXISWISE: "axiswise",
} as const;
/** "tensorwise" | "axiswise". */
export type ScalingGranularity = (typeof ScalingGranularity)[keyof typeof ScalingGranularity];

/** How one GEMM operand (input, weight or grad_output) is cast to float8. */
export class CastConfig {
  readonly scalingType: ScalingType;
  readonly scalingGranularity: ScalingGranularity;
  /** fp8 dtype of the cast; default e4m3 for input and weight, e5m2 for grad_output (their fnuz forms with useFnuzDtype) */
  readonly targetDtype?: Float8DType;
  /** Required for STATIC: the scale (fp8 = x * scale). */
  readonly staticScale?: number;

  constructor(opts: { scalingType?: ScalingType; scalingGranularity?: ScalingGranularity; targetDtype?: Float8DType; staticScale?: number } = {}) {
    this.scalingType = opts.scalingType ?? ScalingType.DYNAMIC;
    if (!Object.values(ScalingType).includes(this.scalingType)) {
      throw new Float8Error("CastConfig", `unknown scalingType '${String(this.scalingType)}'; expected dynamic, delayed, static or disabled`);
    }
    this.scalingGranularity = opts.scalingGranularity ?? ScalingGranularity.TENSORWISE;
    if (!Object.values(ScalingGranularity).includes(this.scalingGranularity)) {
      throw new Float8Error("CastConfig", `unknown scalingGranularity '${String(this.scalingGranularity)}'; expected tensorwise or axiswise`);
    }
    if (this.scalingGranularity === ScalingGranularity.AXISWISE && this.scalingType !== ScalingType.DYNAMIC && this.scalingType !== ScalingType.DISABLED) {
      throw new Float8Error("CastConfig", `AXISWISE scaling requires DYNAMIC scaling, got ${this.scalingType}`);
    }
    if (opts.targetDtype !== undefined && !isFloat8(opts.targetDtype)) {
      throw new Float8Error("CastConfig", `targetDtype must be float8_e4m3fn, float8_e5m2, float8_e4m3fnuz or float8_e5m2fnuz, got ${String(opts.targetDtype)}`);
    }
    if (opts.targetDtype !== undefined) this.targetDtype = opts.targetDtype;
    if (this.scalingType === ScalingType.STATIC) {
      if (opts.staticScale === undefined) throw new Float8Error("CastConfig", "STATIC scaling requires staticScale");
      if (!(opts.staticScale > 0) || !Number.isFinite(opts.staticScale)) {
        throw new Float8Error("CastConfig", `staticScale must be a finite positive number, got ${opts.staticScale}`);
      }
      this.staticScale = opts.staticScale;
    } else if (opts.staticScale !== undefined) {
      throw new Float8Error("CastConfig", `staticScale is only meaningful with STATIC scaling, not ${this.scalingType}`);
    }
    Object.freeze(this);
  }

  /** "dyn", "del", "sta" or "dis", with "_axs" for axiswise. */
  shortStr(): string {
    return SHORT[this.scalingType] + (this.scalingGranularity === ScalingGranularity.AXISWISE ? "_axs" : "");
  }

  /** Same scaling type, granularity and target dtype. */
  sameAs(o: CastConfig): boolean {
    return this.scalingType === o.scalingType && this.scalingGranularity === o.scalingGranularity &&
      this.targetDtype === o.targetDtype && this.staticScale === o.staticScale;
  }
}

/** Delayed scaling: the scale comes from the max of the last historyLen amaxes. */
export class DelayedScalingConfig {
  readonly historyLen: number;
  readonly scaleFnName: "max";

  constructor(opts: { historyLen?: number; scaleFnName?: string } = {}) {
    this.historyLen = opts.historyLen ?? 16;
    if (!Number.isInteger(this.historyLen) || this.historyLen < 1) {
      throw new Float8Error("DelayedScalingConfig", `historyLen must be a positive integer, got ${this.historyLen}`);
    }
    const fn = opts.scaleFnName ?? "max";
    if (fn !== "max") throw new Float8Error("DelayedScalingConfig", `scaleFnName '${fn}' is not supported; only 'max' is`);
    this.scaleFnName = fn;
    Object.freeze(this);
  }
}

/** GEMM options. useFastAccum selects lower-precision accumulation on Hopper (no effect on the CPU, which always accumulates in f32). */
export class Float8GemmConfig {
  readonly useFastAccum: boolean;
  constructor(opts: { useFastAccum?: boolean } = {}) {
    this.useFastAccum = opts.useFastAccum ?? false;
    Object.freeze(this);
  }
}

/** Options of Float8Linear, each with torchao's default. */
export interface Float8LinearConfigOptions {
  /** cast of the input (e4m3); default dynamic */
  castConfigInput?: CastConfig;
  /** cast of the weight (e4m3); default dynamic */
  castConfigWeight?: CastConfig;
  /** cast of the output gradient (e5m2); default dynamic */
  castConfigGradOutput?: CastConfig;
  /** output = input @ weight^T; fast accumulate on by default */
  gemmConfigOutput?: Float8GemmConfig;
  /** grad_input = grad_output @ weight; fast accumulate off */
  gemmConfigGradInput?: Float8GemmConfig;
  /** grad_weight = grad_output^T @ input; fast accumulate off */
  gemmConfigGradWeight?: Float8GemmConfig;
  /** delayed scaling: on the first forward, initialise amax history and scale from the live tensor (default true) */
  enableAmaxInit?: boolean;
  /** delayed scaling: check before each forward that amaxes and scales were synced since the last one (default true) */
  enablePreAndPostForward?: boolean;
  /** FSDP: all-gather weights as float8 bytes (default false; see src/distributed) */
  enableFsdpFloat8AllGather?: boolean;
  /** pad the GEMM inner dim to a multiple of 16 where the device's fp8 GEMM needs it (default false) */
  padInnerDim?: boolean;
  /** run the fp8 GEMMs by exact emulation (decode + high-precision GEMM) on every device (default false; the CPU always emulates) */
  emulate?: boolean;
  /** history length and scale function of delayed scaling */
  delayedScalingConfig?: DelayedScalingConfig;
  /** do not keep the fp8 weight for backward; recast it there (saves memory, costs one cast) */
  forceRecomputeFp8WeightInBwd?: boolean;
  /** cast of the input for the grad_weight GEMM; default castConfigInput */
  castConfigInputForGradWeight?: CastConfig;
  /** cast of the weight for the grad_input GEMM; default castConfigWeight */
  castConfigWeightForGradInput?: CastConfig;
  /** cast of the output gradient for the grad_weight GEMM; default castConfigGradOutput */
  castConfigGradOutputForGradWeight?: CastConfig;
  /** round every dynamic scale down to a power of two, so that scaling is exact (default false) */
  roundScalesToPowerOf2?: boolean;
  /**
   * use AMD MI300's fp8 formats: float8_e4m3fnuz (max 240) for input and weight and
   * float8_e5m2fnuz for grad_output, where a CastConfig names no targetDtype (torchao's
   * use_fnuz_dtype; default false). The CPU runs them; CUDA devices reject them.
   */
  useFnuzDtype?: boolean;
  /** block-scaled recipe (blockwise or mxfp8, see block_scaling.ts); when set it replaces the per-operand casts (default null) */
  blockScaling?: BlockScalingConfig | null;
}

/** Named recipes (torchao's Float8LinearRecipeName). */
export type Float8RecipeName = "tensorwise" | "rowwise" | "rowwise_with_gw_hp" | "blockwise" | "mxfp8" | "mxfp8_rceil";

/** Configuration of Float8Linear (torchao's Float8LinearConfig). */
export class Float8LinearConfig {
  readonly castConfigInput: CastConfig;
  readonly castConfigWeight: CastConfig;
  readonly castConfigGradOutput: CastConfig;
  readonly gemmConfigOutput: Float8GemmConfig;
  readonly gemmConfigGradInput: Float8GemmConfig;
  readonly gemmConfigGradWeight: Float8GemmConfig;
  readonly enableAmaxInit: boolean;
  readonly enablePreAndPostForward: boolean;
  readonly enableFsdpFloat8AllGather: boolean;
  readonly padInnerDim: boolean;
  readonly emulate: boolean;
  readonly delayedScalingConfig: DelayedScalingConfig;
  readonly forceRecomputeFp8WeightInBwd: boolean;
  readonly castConfigInputForGradWeight: CastConfig;
  readonly castConfigWeightForGradInput: CastConfig;
  readonly castConfigGradOutputForGradWeight: CastConfig;
  readonly roundScalesToPowerOf2: boolean;
  readonly useFnuzDtype: boolean;
  readonly blockScaling: BlockScalingConfig | null;

  constructor(opts: Float8LinearConfigOptions = {}) {
    const known = new Set([
      "castConfigInput", "castConfigWeight", "castConfigGradOutput", "gemmConfigOutput", "gemmConfigGradInput",
      "gemmConfigGradWeight", "enableAmaxInit", "enablePreAndPostForward", "enableFsdpFloat8AllGather",
      "padInnerDim", "emulate", "delayedScalingConfig", "forceRecomputeFp8WeightInBwd",
      "castConfigInputForGradWeight", "castConfigWeightForGradInput", "castConfigGradOutputForGradWeight", "roundScalesToPowerOf2",
      "useFnuzDtype", "blockScaling",
    ]);
    for (const k of Object.keys(opts)) {
      if (!known.has(k)) throw new Float8Error("Float8LinearConfig", `unknown option '${k}'`);
    }
    const cast = (v: unknown, name: string) => {
      if (v === undefined) return new CastConfig();
      if (!(v instanceof CastConfig)) throw new Float8Error("Float8LinearConfig", `${name} must be a CastConfig`);
      return v;
    };
    const gemm = (v: unknown, name: string, fast: boolean) => {
      if (v === undefined) return new Float8GemmConfig({ useFastAccum: fast });
      if (!(v instanceof Float8GemmConfig)) throw new Float8Error("Float8LinearConfig", `${name} must be a Float8GemmConfig`);
      return v;
    };
    const flag = (v: unknown, name: string, dflt: boolean) => {
      if (v === undefined) return dflt;
      if (typeof v !== "boolean") throw new Float8Error("Float8LinearConfig", `${name} must be a boolean, got ${typeof v}`);
      return v;
    };
    this.castConfigInput = cast(opts.castConfigInput, "castConfigInput");
    this.castConfigWeight = cast(opts.castConfigWeight, "castConfigWeight");
    this.castConfigGradOutput = cast(opts.castConfigGradOutput, "castConfigGradOutput");
    this.gemmConfigOutput = gemm(opts.gemmConfigOutput, "gemmConfigOutput", true);
    this.gemmConfigGradInput = gemm(opts.gemmConfigGradInput, "gemmConfigGradInput", false);
    this.gemmConfigGradWeight = gemm(opts.gemmConfigGradWeight, "gemmConfigGradWeight", false);
    this.enableAmaxInit = flag(opts.enableAmaxInit, "enableAmaxInit", true);
    this.enablePreAndPostForward = flag(opts.enablePreAndPostForward, "enablePreAndPostForward", true);
    this.enableFsdpFloat8AllGather = flag(opts.enableFsdpFloat8AllGather, "enableFsdpFloat8AllGather", false);
    this.padInnerDim = flag(opts.padInnerDim, "padInnerDim", false);
    this.emulate = flag(opts.emulate, "emulate", false);
    this.forceRecomputeFp8WeightInBwd = flag(opts.forceRecomputeFp8WeightInBwd, "forceRecomputeFp8WeightInBwd", false);
    if (opts.delayedScalingConfig !== undefined && !(opts.delayedScalingConfig instanceof DelayedScalingConfig)) {
      throw new Float8Error("Float8LinearConfig", "delayedScalingConfig must be a DelayedScalingConfig");
    }
    this.delayedScalingConfig = opts.delayedScalingConfig ?? new DelayedScalingConfig();
    this.castConfigInputForGradWeight = opts.castConfigInputForGradWeight === undefined ? this.castConfigInput : cast(opts.castConfigInputForGradWeight, "castConfigInputForGradWeight");
    this.castConfigWeightForGradInput = opts.castConfigWeightForGradInput === undefined ? this.castConfigWeight : cast(opts.castConfigWeightForGradInput, "castConfigWeightForGradInput");
    this.castConfigGradOutputForGradWeight = opts.castConfigGradOutputForGradWeight === undefined ? this.castConfigGradOutput : cast(opts.castConfigGradOutputForGradWeight, "castConfigGradOutputForGradWeight");
    this.roundScalesToPowerOf2 = flag(opts.roundScalesToPowerOf2, "roundScalesToPowerOf2", false);
    this.useFnuzDtype = flag(opts.useFnuzDtype, "useFnuzDtype", false);
    if (opts.blockScaling != null && !(opts.blockScaling instanceof BlockScalingConfig)) {
      throw new Float8Error("Float8LinearConfig", "blockScaling must be a BlockScalingConfig");
    }
    this.blockScaling = opts.blockScaling ?? null;
    // each GEMM runs in float8 or in high precision: both operands cast, or neither (torchao's rule)
    const gemms: [string, CastConfig, CastConfig][] = [
      ["output", this.castConfigInput, this.castConfigWeight],
      ["grad_input", this.castConfigGradOutput, this.castConfigWeightForGradInput],
      ["grad_weight", this.castConfigGradOutputForGradWeight, this.castConfigInputForGradWeight],
    ];
    for (const [name, a, b] of gemms) {
      if ((a.scalingType === ScalingType.DISABLED) !== (b.scalingType === ScalingType.DISABLED)) {
        throw new Float8Error("Float8LinearConfig", `the ${name} GEMM has one operand DISABLED and one not: disable both or neither`);
      }
    }
    // delayed scaling keeps one amax history per tensor, so a tensor cast with delayed scaling
    // must use the same cast in every GEMM
    const pairs: [string, CastConfig, CastConfig][] = [
      ["input", this.castConfigInput, this.castConfigInputForGradWeight],
      ["weight", this.castConfigWeight, this.castConfigWeightForGradInput],
      ["grad_output", this.castConfigGradOutput, this.castConfigGradOutputForGradWeight],
    ];
    for (const [name, a, b] of pairs) {
      if ((a.scalingType === ScalingType.DELAYED || b.scalingType === ScalingType.DELAYED) && !a.sameAs(b)) {
        throw new Float8Error("Float8LinearConfig", `delayed scaling of ${name} needs the same cast config in every GEMM`);
      }
    }
    Object.freeze(this);
  }

  /** True when any operand uses delayed scaling. */
  get hasAnyDelayedScaling(): boolean {
    return [this.castConfigInput, this.castConfigWeight, this.castConfigGradOutput].some(
      (c) => c.scalingType === ScalingType.DELAYED,
    );
  }

  /** True when every cast is tensorwise and each tensor is cast the same way in every GEMM. */
  get isSimpleTensorwise(): boolean {
    const all = [this.castConfigInput, this.castConfigWeight, this.castConfigGradOutput];
    return this.blockScaling === null && all.every((c) => c.scalingGranularity === ScalingGranularity.TENSORWISE && c.scalingType !== ScalingType.DISABLED && c.targetDtype === undefined) &&
      this.castConfigInput.sameAs(this.castConfigInputForGradWeight) &&
      this.castConfigWeight.sameAs(this.castConfigWeightForGradInput) &&
      this.castConfigGradOutput.sameAs(this.castConfigGradOutputForGradWeight);
  }

  /** "i:dyn,w:del,go:sta" (per-GEMM overrides appended as i_gw, w_gi, go_gw where they differ) */
  scalingRepr(): string {
    if (this.blockScaling) return this.blockScaling.repr();
    let s = `i:${this.castConfigInput.shortStr()},w:${this.castConfigWeight.shortStr()},go:${this.castConfigGradOutput.shortStr()}`;
    if (!this.castConfigInputForGradWeight.sameAs(this.castConfigInput)) s += `,i_gw:${this.castConfigInputForGradWeight.shortStr()}`;
    if (!this.castConfigWeightForGradInput.sameAs(this.castConfigWeight)) s += `,w_gi:${this.castConfigWeightForGradInput.shortStr()}`;
    if (!this.castConfigGradOutputForGradWeight.sameAs(this.castConfigGradOutput)) s += `,go_gw:${this.castConfigGradOutputForGradWeight.shortStr()}`;
    return s;
  }

  /**
   * torchao's named recipes:
   * - "tensorwise": dynamic tensorwise scaling everywhere (the default config);
   * - "rowwise": axiswise dynamic scaling of every operand, all in e4m3, power-of-2 scales;
   * - "rowwise_with_gw_hp": rowwise output and grad_input GEMMs (the weight tensorwise for
   *   grad_input) and the grad_weight GEMM in high precision;
   * - "blockwise": 1x128 blocks (input, grad_output) and 128x128 blocks (weight), f32 scales, e4m3
   *   (torchao's blockwise_fp8_training, Transformer Engine's Float8BlockScaling);
   * - "mxfp8" / "mxfp8_rceil": 32-element blocks along each GEMM's reduction dim, e8m0 scales, e4m3
   *   (torchao's MXLinear with FLOOR / RCEIL scales, Transformer Engine's MXFP8BlockScaling).
   */
  static fromRecipeName(name: Float8RecipeName, opts: { useFnuzDtype?: boolean } = {}): Float8LinearConfig {
    const AX = ScalingGranularity.AXISWISE;
    const useFnuzDtype = opts.useFnuzDtype ?? false;
    const e4m3: Float8DType = useFnuzDtype ? "float8_e4m3fnuz" : "float8_e4m3fn";
    switch (name) {
      case "tensorwise":
        return new Float8LinearConfig({ useFnuzDtype });
      case "rowwise":
        return new Float8LinearConfig({
          castConfigInput: new CastConfig({ scalingGranularity: AX }),
          castConfigWeight: new CastConfig({ scalingGranularity: AX }),
          castConfigGradOutput: new CastConfig({ scalingGranularity: AX, targetDtype: e4m3 }),
          roundScalesToPowerOf2: true,
          useFnuzDtype,
        });
      case "rowwise_with_gw_hp":
        return new Float8LinearConfig({
          useFnuzDtype,
          castConfigInput: new CastConfig({ scalingGranularity: AX }),
          castConfigWeight: new CastConfig({ scalingGranularity: AX }),
          castConfigGradOutput: new CastConfig({ scalingGranularity: AX, targetDtype: e4m3 }),
          castConfigWeightForGradInput: new CastConfig(),
          castConfigInputForGradWeight: new CastConfig({ scalingType: ScalingType.DISABLED }),
          castConfigGradOutputForGradWeight: new CastConfig({ scalingType: ScalingType.DISABLED }),
          roundScalesToPowerOf2: true,
        });
      case "blockwise":
        return new Float8LinearConfig({ blockScaling: new BlockScalingConfig({ kind: "blockwise" }) });
      case "mxfp8":
        return new Float8LinearConfig({ blockScaling: new BlockScalingConfig({ kind: "mxfp8" }) });
      case "mxfp8_rceil":
        return new Float8LinearConfig({ blockScaling: new BlockScalingConfig({ kind: "mxfp8", mxMode: "rceil" }) });
      default:
        throw new Float8Error("Float8LinearConfig.fromRecipeName", `unknown recipe '${String(name)}'; expected tensorwise, rowwise, rowwise_with_gw_hp, blockwise, mxfp8 or mxfp8_rceil`);
    }
  }
}
