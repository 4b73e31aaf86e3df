// src/tensor — Tensor, factories, memory scopes.
export { Tensor, tensor, full, zeros, ones, randn, rand, cat, type Device, type TensorOptions } from "./tensor.ts";
export { tidy, keep, memoryStats, emptyCache } from "./storage.ts";
export { manualSeed, randperm, uniformStream } from "./random.ts";
export { FP8_MAX, isFloat8, type DType, type Float8DType, type HighPrecisionDType } from "./dtype.ts";
export { expand, permute, transpose, reshape, slice, squeeze, unsqueeze } from "./ops/movement.ts";
export { argmax } from "./ops/reduce.ts";
export { setGemmLayoutPolicy, gemmLayoutPolicy, gemmLayoutChoices, type GemmLayoutPolicy } from "./ops/gemm_layout.ts";
export { onednnInfo, type OnednnInfo, type OnednnRefPrimitive, type OnednnFp8MatmulChoice } from "./backend/onednn.ts";
