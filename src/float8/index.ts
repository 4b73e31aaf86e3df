// src/float8 — float8 training (torchao.float8 for TypeScript).
export { ScalingType, CastConfig, DelayedScalingConfig, Float8GemmConfig, Float8LinearConfig, type Float8LinearConfigOptions } from "./config.ts";
export {
  Float8Tensor, amaxToScale, tensorToAmax, tensorToScale, toFloat8Saturated, hpTensorToFloat8Dynamic, hpTensorAndScaleToFloat8,
  computeError, fp8TensorStatistics, scaledMm, checkInnerDim, type GemmInputRole, type ScaledMmOptions,
} from "./float8_tensor.ts";
export { Float8Linear, RoleScaling } from "./float8_linear.ts";
export { convertToFloat8Training, syncFloat8AmaxAndScaleHistory, float8Layers, type ModuleFilterFn } from "./convert.ts";
