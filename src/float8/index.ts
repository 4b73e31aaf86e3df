// src/float8 — float8 training (torchao.float8 for TypeScript).
export { ScalingType, ScalingGranularity, CastConfig, DelayedScalingConfig, Float8GemmConfig, Float8LinearConfig, type Float8LinearConfigOptions, type Float8RecipeName } from "./config.ts";
export {
  Float8Tensor, amaxToScale, tensorToAmax, tensorToScale, toFloat8Saturated, hpTensorToFloat8Dynamic, hpTensorAndScaleToFloat8,
  computeError, fp8TensorStatistics, toFloat8SaturatedWithDecoded, scaledMm, checkInnerDim, hpTensorToFloat8Axiswise, roundScaleDownToPowerOf2, type GemmInputRole, type ScaledMmOptions,
} from "./float8_tensor.ts";
export { Float8Linear, RoleScaling } from "./float8_linear.ts";
export { BlockScalingConfig, BlockFloat8Tensor, quantizeBlockwise, quantizeMx, collectBlockCastStats, type BlockCastStats, type BlockRecipeKind, type MxScaleMode } from "./block_scaling.ts";
export { quantizeForInference, Float8InferenceLinear, GEMV_MAX_M, type InferenceRecipe, type InferenceActivation, type QuantizeForInferenceOptions } from "./inference.ts";
export { convertToFloat8Training, syncFloat8AmaxAndScaleHistory, float8Layers, type ModuleFilterFn } from "./convert.ts";
export { enableStats, disableStats, stats, statsTable, type CastStats, type StatsRow } from "./stats.ts";
export { autoFilterForRecipe, type AutoFilterOptions, type AutoFilterDecision, type AutoFilterFn } from "./auto_filter.ts";
export { predictLinearSpeedup, explainDecision, deviceSpec, H100_SXM, H200 } from "./roofline.ts";
export { deviceGemmTimer, measureMemcpyBandwidth } from "./gemm_timer.ts";
