// src/cuda — float8 on NVIDIA GPUs (libfp8_cuda): availability, device buffers,
// the fp8 kernels and cuBLASLt GEMMs as typed ops, a Float8 Linear driver, and
// CUDA graphs of Tensor programs (captureGraph).
//   import { cuda } from "float8";
//   if (cuda.isAvailable()) { const ctx = cuda.device(0); ... }
// libfp8_cuda is loaded on the first call that needs it, never at import.
export { probe, isAvailable, deviceInfo, device, CudaContext, CudaGraph, DeviceBuffer } from "../tensor/backend/cuda_device.ts";
export type { DeviceInfo, CastKernel, RowwiseGemmPath, HostArray } from "../tensor/backend/cuda_device.ts";
export {
  amax, amaxToScale, scaleFromAmax, quantize, quantizeTranspose, quantizeRowwise, dequantize, convert, copy, fill, randn, biasAdd,
  biasGrad, scaledMm, scaledMmRowwise, matmul, scalarBuffer, DelayedScalingGroup,
} from "./ops.ts";
export type { ScaledMmOptions, QuantizeRowwiseOptions, MatmulOptions, DelayedScalingEntry } from "./ops.ts";
export { Float8LinearCuda, HighPrecisionLinearCuda } from "./linear.ts";
export { captureGraph, TensorGraph } from "./graphs.ts";
export { setCudaDevice as setDevice, currentCudaDevice as currentDevice, setBlockGemm, blockGemmInfo } from "../tensor/backend/cuda.ts";
export type { BlockGemmPath } from "../tensor/backend/cuda.ts";
export type { Float8LinearCudaOptions, LinearGrads } from "./linear.ts";
export type { CudaProbe, CudaState } from "../ffi/index.ts";
