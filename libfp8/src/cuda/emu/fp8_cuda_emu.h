/*
 * fp8_cuda_emu.h — the controls of libfp8_cuda_emu, the build of the .cu
 * files of libfp8/src/cuda for the host CPU (see CMakeLists.txt in this folder).
 * The library exports the whole fp8_cuda_* ABI of fp8.h on one emulated
 * device; these extra functions exist only in it, for tests.
 * FP8_CUDA_EMU_TRACE=1 in the environment prints every launch (source line,
 * kernel, grid, block) to stderr.
 */
#ifndef FP8_CUDA_EMU_H
#define FP8_CUDA_EMU_H

#include <stdint.h>

#include "fp8.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The emulated machine: device_count GPUs (0: "no GPU visible"), each with
 * sm_count SMs and compute capability cc_major.0. Contexts read it when
 * created. Default (1, 4, 9): grids sized for 4 SMs keep emulation fast.
 * Also settable before the first call with FP8_CUDA_EMU_SMS=<n>. */
FP8_API int32_t fp8_cuda_emu_configure(int32_t device_count, int32_t sm_count, int32_t cc_major);

/* How the emulated cuBLASLt treats outer-vector (row-wise) scale modes:
 * 0 takes them (default), 1 has no algorithm for them (heuristic returns
 * none), 2 refuses them in cublasLtMatmul (CUBLAS_STATUS_INVALID_VALUE). */
FP8_API int32_t fp8_cuda_emu_set_outer_vec(int32_t mode);

/* The same for the block scale modes (VEC128_32F, BLK128x128_32F, VEC32_UE8M0), which the
 * emulated cuBLASLt otherwise takes as cuBLASLt does: 1x128 / 128x128 on a device of compute
 * capability 9 (fp8_cuda_emu_configure), MXFP8 on 10 and later. */
FP8_API int32_t fp8_cuda_emu_set_block_scale(int32_t mode);

/* Emulated device memory now held (cudaMalloc / cudaMallocAsync, including
 * the contexts' workspaces and temporaries). */
FP8_API int32_t fp8_cuda_emu_memory(int64_t *live_bytes, int64_t *live_allocs);

/* Memory pools created with cudaMemPoolCreate and not destroyed, and the
 * release threshold of the device's default pool (0 unless someone set it). */
FP8_API int32_t fp8_cuda_emu_pools(int64_t *live_pools, uint64_t *default_release_threshold);

/* Launch sites seen so far, i = 0, 1, ... until FP8_ERR_INVALID_ARG: source
 * file and line of the <<<...>>>, the kernel as written there, and how many
 * grids ran from it. Strings stay valid while the library is loaded. */
FP8_API int32_t fp8_cuda_emu_site(int64_t i, const char **file, int32_t *line, const char **kernel,
                                  int64_t *launches);

/* Makes the emulated call `call` fail once, after `skip` calls that succeed,
 * returning `error` (a cudaError_t or cublasStatus_t value; 0 cancels). Calls:
 * the CUDA runtime functions by name ("cudaMalloc", "cudaMallocAsync",
 * "cudaGetDeviceCount", ...), "launch" (any kernel launch), the cuBLASLt
 * functions ("cublasLtCreate", "cublasLtMatmul", ...) and
 * "cub::DeviceRadixSort::SortPairs". For testing the error paths. */
FP8_API int32_t fp8_cuda_emu_fail_call(const char *call, int32_t skip, int32_t error);
/* *count <- failures armed but not yet triggered; cancels them. */
FP8_API int32_t fp8_cuda_emu_take_pending_failures(int64_t *count);

/* The last kernel fault the emulator detected on this thread (a barrier or
 * warp collective not every thread reached, a bad launch configuration),
 * "" if none. Faults also make the launch fail with cudaErrorLaunchFailure. */
FP8_API const char *fp8_cuda_emu_last_fault(void);

#ifdef __cplusplus
}
#endif

#endif
