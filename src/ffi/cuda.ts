// cuda.ts — loads libfp8_cuda (our fp8 kernels and the cuBLASLt GEMMs on
// NVIDIA GPUs) lazily: only a program that asks for a "cuda" device opens it,
// so a CPU-only run never touches CUDA. Its errors come from fp8_cuda_last_error.
//
// The library is found at $FLOAT8_CUDA_LIB, else next to libfp8 (same folder
// as $FLOAT8_LIB or build/libfp8.so); cuBLASLt as runtime_deps.ts describes.
import { dlopen, FFIType } from "bun:ffi";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { Float8Error } from "../errors.ts";
import { libraryPath } from "./library.ts";
import { openWithRuntimeDeps } from "./runtime_deps.ts";

const { ptr: P, i32, i64_fast: I64, f32, f64, cstring } = FFIType;

/** Symbol table of the "CUDA backend" section of fp8.h. */
export const symbols = {
  fp8_cuda_last_error: { args: [], returns: cstring },
  fp8_cuda_probe: { args: [P, P, P, P], returns: i32 },
  fp8_cuda_device_info: { args: [i32, P, P, P, P, P, I64], returns: i32 },
  fp8_cuda_ctx_create: { args: [i32, P], returns: i32 },
  fp8_cuda_ctx_destroy: { args: [P], returns: i32 },
  fp8_cuda_ctx_stream: { args: [P, P], returns: i32 },
  fp8_cuda_gemm_plans: { args: [P, P], returns: i32 },
  fp8_cuda_set_cast_kernel: { args: [P, i32], returns: i32 },
  fp8_cuda_get_cast_kernel: { args: [P, P], returns: i32 },
  fp8_cuda_encoder_check: { args: [P, i32, i32, f32, I64, P], returns: i32 },
  fp8_cuda_synchronize: { args: [P], returns: i32 },
  fp8_cuda_take_index_error: { args: [P, P, P, P], returns: i32 },
  fp8_cuda_malloc: { args: [P, I64, P], returns: i32 },
  fp8_cuda_free: { args: [P, P], returns: i32 },
  fp8_cuda_memory_stats: { args: [P, P, P], returns: i32 },
  fp8_cuda_memcpy_h2d: { args: [P, P, P, I64], returns: i32 },
  fp8_cuda_memcpy_h2d_async: { args: [P, P, P, I64], returns: i32 },
  fp8_cuda_memcpy_d2h: { args: [P, P, P, I64], returns: i32 },
  fp8_cuda_memcpy_d2d: { args: [P, P, P, I64], returns: i32 },
  fp8_cuda_memset: { args: [P, P, i32, I64], returns: i32 },
  fp8_cuda_timer_start: { args: [P], returns: i32 },
  fp8_cuda_timer_stop: { args: [P, P], returns: i32 },
  fp8_cuda_graph_begin: { args: [P], returns: i32 },
  fp8_cuda_graph_end: { args: [P, P], returns: i32 },
  fp8_cuda_graph_launch: { args: [P, P], returns: i32 },
  fp8_cuda_graph_destroy: { args: [P], returns: i32 },

  fp8_cuda_convert: { args: [P, P, i32, P, i32, I64], returns: i32 },
  fp8_cuda_quantize: { args: [P, P, i32, P, i32, I64, P], returns: i32 },
  fp8_cuda_dequantize: { args: [P, P, i32, P, i32, I64, P], returns: i32 },
  fp8_cuda_quantize_transpose: { args: [P, P, P, i32, P, i32, I64, I64, P], returns: i32 },
  fp8_cuda_amax: { args: [P, P, P, i32, I64], returns: i32 },
  fp8_cuda_amax_to_scale: { args: [P, P, P, P, i32, I64, i32, i32], returns: i32 },
  fp8_cuda_scale_from_amax: { args: [P, P, P, i32, i32], returns: i32 },
  fp8_cuda_sync_amax_history: { args: [P, P, P, P, P, P, I64, I64], returns: i32 },
  fp8_cuda_round_scales_pow2: { args: [P, P, I64], returns: i32 },

  fp8_cuda_fill: { args: [P, P, i32, I64, f64], returns: i32 },
  fp8_cuda_randn: { args: [P, P, i32, I64, I64, f32, f32], returns: i32 },
  fp8_cuda_bias_add: { args: [P, P, i32, P, i32, I64, I64], returns: i32 },
  fp8_cuda_bias_grad: { args: [P, P, i32, P, i32, I64, I64], returns: i32 },

  fp8_cuda_scaled_mm: {
    args: [P, P, i32, P, i32, P, i32, P, P, P, i32, I64, I64, I64, i32],
    returns: i32,
  },
  fp8_cuda_matmul: {
    args: [P, P, i32, P, P, i32, P, i32, I64, I64, I64, I64, I64, i32, i32, f32, f32],
    returns: i32,
  },

  fp8_cuda_quantize_rowwise: { args: [P, P, P, i32, P, i32, I64, I64, i32], returns: i32 },
  fp8_cuda_scaled_mm_rowwise: {
    args: [P, P, i32, P, i32, P, i32, P, P, P, i32, I64, I64, I64, i32],
    returns: i32,
  },
  fp8_cuda_set_rowwise_gemm: { args: [P, i32], returns: i32 },

  // [block scaling on the device]
  fp8_cuda_quantize_blockwise: { args: [P, P, P, i32, P, i32, I64, I64, I64, I64], returns: i32 },
  fp8_cuda_dequantize_blockwise: { args: [P, P, i32, P, i32, P, I64, I64, I64, I64], returns: i32 },
  fp8_cuda_quantize_mx: { args: [P, P, P, i32, P, i32, I64, I64, I64, i32], returns: i32 },
  fp8_cuda_dequantize_mx: { args: [P, P, i32, P, i32, P, I64, I64, I64], returns: i32 },
  fp8_cuda_set_block_gemm: { args: [P, i32], returns: i32 },
  fp8_cuda_block_gemm_info: { args: [P, P, P, I64], returns: i32 },
  fp8_cuda_scaled_mm_blockwise: {
    args: [P, P, i32, P, i32, P, i32, P, P, I64, P, i32, I64, I64, I64, i32],
    returns: i32,
  },
  fp8_cuda_scaled_mm_mx: { args: [P, P, i32, P, i32, P, i32, P, P, P, i32, I64, I64, I64], returns: i32 },
  fp8_cuda_block_scales_layout_size: { args: [i32, I64, I64, P], returns: i32 },
  fp8_cuda_block_scales_layout: { args: [P, P, P, i32, I64, I64], returns: i32 },

  // [tensor-kernels]
  fp8_cuda_binary: { args: [P, P, P, P, P, P, P, i32, i32, i32], returns: i32 },
  fp8_cuda_eltwise: { args: [P, P, P, i32, I64, i32, f32, f32], returns: i32 },
  fp8_cuda_eltwise_backward: { args: [P, P, P, P, i32, I64, i32, f32, f32], returns: i32 },
  fp8_cuda_reduce: { args: [P, P, P, P, P, i32, i32, i32], returns: i32 },
  fp8_cuda_copy_strided: { args: [P, P, P, P, P, P, i32, i32], returns: i32 },
  fp8_cuda_masked_fill: { args: [P, P, P, P, i32, I64, I64, f32], returns: i32 },
  fp8_cuda_argmax: { args: [P, P, P, i32, I64, I64], returns: i32 },
  // [end tensor-kernels]
  // [nn-kernels]
  fp8_cuda_softmax: { args: [P, P, P, i32, I64, I64, i32], returns: i32 },
  fp8_cuda_softmax_backward: { args: [P, P, P, P, i32, I64, I64, i32], returns: i32 },
  fp8_cuda_layer_norm: { args: [P, P, P, P, P, P, P, i32, I64, I64, f32], returns: i32 },
  fp8_cuda_layer_norm_backward: { args: [P, P, P, P, P, P, P, P, P, i32, I64, I64], returns: i32 },
  fp8_cuda_rms_norm: { args: [P, P, P, P, P, i32, I64, I64, f32], returns: i32 },
  fp8_cuda_rms_norm_backward: { args: [P, P, P, P, P, P, P, i32, I64, I64], returns: i32 },
  fp8_cuda_embedding: { args: [P, P, P, P, i32, I64, I64, I64], returns: i32 },
  fp8_cuda_embedding_backward: { args: [P, P, P, P, i32, I64, I64, I64], returns: i32 },
  fp8_cuda_cross_entropy: { args: [P, P, P, P, P, i32, I64, I64, i32], returns: i32 },
  fp8_cuda_cross_entropy_backward: { args: [P, P, P, P, P, i32, I64, I64, i32], returns: i32 },
  fp8_cuda_sgd_step: { args: [P, P, P, P, i32, I64, f32, f32, f32, f32, i32, i32], returns: i32 },
  fp8_cuda_adamw_step: { args: [P, P, P, P, P, i32, I64, f32, f32, f32, f32, f32, I64], returns: i32 },
  fp8_cuda_adamw_constants: { args: [P, f32, f32, f32, f32, f32, I64], returns: i32 },
  fp8_cuda_adamw_step_dev: { args: [P, P, P, P, P, i32, I64, P, f32, f32], returns: i32 },
  // [end nn-kernels]
} as const;

/** Path of libfp8_cuda this process loads (or would load). */
export const cudaLibraryPath: string =
  process.env.FLOAT8_CUDA_LIB ?? join(dirname(libraryPath), "libfp8_cuda.so");

type CudaSymbols = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let loaded: CudaSymbols | null = null;
let loadFailure: string | null = null;

const NOT_BUILT =
  "it is built with libfp8 when CMake finds nvcc and cuBLASLt " +
  "(pip install --no-deps --target .deps/cuda nvidia-cublas nvidia-cuda-runtime, then 'bun run build'), " +
  "or set FLOAT8_CUDA_LIB";

/** Why libfp8_cuda cannot be opened, or null when it can (opens it on first call). */
function tryLoad(): string | null {
  if (loaded) return null;
  if (loadFailure) return loadFailure;
  if (!existsSync(cudaLibraryPath)) {
    loadFailure = `library not built: libfp8_cuda not found at ${cudaLibraryPath}; ${NOT_BUILT}`;
    return loadFailure;
  }
  try {
    // cuBLASLt (and the CUDA runtime) through libfp8_cuda's $ORIGIN-relative run paths,
    // then $FP8_CUBLASLT_ROOT, then a Python environment's nvidia/*/lib (runtime_deps.ts).
    loaded = openWithRuntimeDeps(cudaLibraryPath, "cublasLt", () => dlopen(cudaLibraryPath, symbols).symbols);
    return null;
  } catch (e) {
    loadFailure = `library not loadable: ${(e as Error).message}`;
    return loadFailure;
  }
}

/** The native fp8_cuda_* functions, opened on first use. Throws Float8Error("cuda", why) when missing. */
export function cudaLib(): CudaSymbols {
  const why = tryLoad();
  if (why !== null || loaded === null) throw new Float8Error("cuda", why ?? "libfp8_cuda failed to load");
  return loaded;
}

/** Throws Float8Error(op, message) when a fp8_cuda_* call returned a non-zero status. */
export function checkCuda(status: number, op: string): void {
  if (status !== 0) {
    const msg = String(cudaLib().fp8_cuda_last_error() ?? "");
    throw new Float8Error(op, msg || `native call failed with status ${status}`);
  }
}

/** fp8_cuda_probe states, by name. */
export type CudaState = "ready" | "library-missing" | "no-driver" | "driver-too-old" | "no-device" | "error";
const STATES: readonly CudaState[] = ["ready", "no-driver", "driver-too-old", "no-device", "error"];

/** What this machine can do with CUDA; `reason` names the missing piece when not available. */
export interface CudaProbe {
  readonly available: boolean;
  readonly state: CudaState;
  readonly reason: string;
  readonly deviceCount: number;
  /** 1000 * major + 10 * minor, 0 when there is none. */
  readonly driverVersion: number;
  readonly runtimeVersion: number;
  readonly libraryPath: string;
}

/** Probes the library, the driver and the GPUs. Never throws. */
export function cudaProbe(): CudaProbe {
  const base = { libraryPath: cudaLibraryPath, deviceCount: 0, driverVersion: 0, runtimeVersion: 0 };
  const why = tryLoad();
  if (why !== null || loaded === null) {
    return { ...base, available: false, state: "library-missing", reason: why ?? "libfp8_cuda failed to load" };
  }
  const [st, count, drv, rt] = [new Int32Array(1), new Int32Array(1), new Int32Array(1), new Int32Array(1)];
  if (loaded.fp8_cuda_probe(st, count, drv, rt) !== 0) {
    return { ...base, available: false, state: "error", reason: String(loaded.fp8_cuda_last_error() ?? "") };
  }
  const state = STATES[st[0]] ?? "error";
  const reason = state === "ready" ? `${count[0]} GPU(s)` : `${state.replace(/-/g, " ")}: ${String(loaded.fp8_cuda_last_error() ?? "")}`;
  return { ...base, available: state === "ready", state, reason, deviceCount: count[0], driverVersion: drv[0], runtimeVersion: rt[0] };
}
