// config.ts — Float8 training configuration, following torchao.float8's
// config.py (October 2024): frozen objects validated on construction, with
// torchao's defaults and short reprs ("i:dyn,w:del,go:sta").
import { Float8Error } from "../errors.ts";

/** How a tensor's scale is chosen. */
export const ScalingType = {
  /** scale from this tensor's own amax, every time (torchao's default) */
  DYNAMIC: "dynamic",
  /** scale from a history of past amaxes, updated by syncFloat8AmaxAndScaleHistory */
  DELAYED: "delayed",
  /** a fixed, user-given scale */
  STATIC: "static",
} as const;
export type ScalingType = (typeof ScalingType)[keyof typeof ScalingType];

const SHORT: Record<ScalingType, string> = { dynamic: "dyn", delayed: "del", static: "sta" };

/** How one GEMM operand (input, weight or grad_output) is cast to float8. */
export class CastConfig {
  readonly scalingType: ScalingType;
  /** Required for STATIC: the scale (fp8 = x * scale). */
  readonly staticScale?: number;

  constructor(opts: { scalingType?: ScalingType; staticScale?: number } = {}) {
    this.scalingType = opts.scalingType ?? ScalingType.DYNAMIC;
    if (!Object.values(ScalingType).includes(this.scalingType)) {
      throw new Float8Error("CastConfig", `unknown scalingType '${String(this.scalingType)}'; expected dynamic, delayed or static`);
    }
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

  /** "dyn", "del" or "sta". */
  shortStr(): string {
    return SHORT[this.scalingType];
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
}

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

  constructor(opts: Float8LinearConfigOptions = {}) {
    const known = new Set([
      "castConfigInput", "castConfigWeight", "castConfigGradOutput", "gemmConfigOutput", "gemmConfigGradInput",
      "gemmConfigGradWeight", "enableAmaxInit", "enablePreAndPostForward", "enableFsdpFloat8AllGather",
      "padInnerDim", "emulate", "delayedScalingConfig", "forceRecomputeFp8WeightInBwd",
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
    if (this.enableFsdpFloat8AllGather && this.castConfigWeight.scalingType === ScalingType.STATIC) {
      throw new Float8Error("Float8LinearConfig", "enableFsdpFloat8AllGather needs dynamic or delayed weight scaling, not static");
    }
    Object.freeze(this);
  }

  /** True when any operand uses delayed scaling. */
  get hasAnyDelayedScaling(): boolean {
    return [this.castConfigInput, this.castConfigWeight, this.castConfigGradOutput].some(
      (c) => c.scalingType === ScalingType.DELAYED,
    );
  }

  /** "i:dyn,w:del,go:sta" */
  scalingRepr(): string {
    return `i:${this.castConfigInput.shortStr()},w:${this.castConfigWeight.shortStr()},go:${this.castConfigGradOutput.shortStr()}`;
  }
}
