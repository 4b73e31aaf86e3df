/* status.c — thread-local last error, dtype names and sizes, version, threads. */
#include <stdarg.h>
#include <stdio.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

FP8_DEFINE_LAST_ERROR(last_error, fp8_last_error, fp8_fail)

int32_t fp8_dtype_size(int32_t dtype) {
    switch (dtype) {
    case FP8_DTYPE_F32: return 4;
    case FP8_DTYPE_BF16: return 2;
    case FP8_DTYPE_E4M3FN: return 1;
    case FP8_DTYPE_E5M2: return 1;
    case FP8_DTYPE_I32: return 4;
    case FP8_DTYPE_U8: return 1;
    case FP8_DTYPE_E4M3FNUZ: return 1;
    case FP8_DTYPE_E5M2FNUZ: return 1;
    case FP8_DTYPE_F16: return 2;
    default: return 0;
    }
}

const char *fp8_dtype_name(int32_t dtype) {
    switch (dtype) {
    case FP8_DTYPE_F32: return "float32";
    case FP8_DTYPE_BF16: return "bfloat16";
    case FP8_DTYPE_E4M3FN: return "float8_e4m3fn";
    case FP8_DTYPE_E5M2: return "float8_e5m2";
    case FP8_DTYPE_I32: return "int32";
    case FP8_DTYPE_U8: return "uint8";
    case FP8_DTYPE_E4M3FNUZ: return "float8_e4m3fnuz";
    case FP8_DTYPE_E5M2FNUZ: return "float8_e5m2fnuz";
    case FP8_DTYPE_F16: return "float16";
    default: return "unknown";
    }
}

int32_t fp8_version(int32_t *out) {
    FP8_REQUIRE_PTR(out, "fp8_version");
    *out = 0 * 10000 + 1 * 100 + 0;
    return FP8_OK;
}

int32_t fp8_set_num_threads(int32_t n) {
    FP8_REQUIRE(n >= 1, "fp8_set_num_threads", "n must be >= 1, got %d", n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    return FP8_OK;
}

int32_t fp8_get_num_threads(int32_t *out) {
    FP8_REQUIRE_PTR(out, "fp8_get_num_threads");
#ifdef _OPENMP
    *out = omp_get_max_threads();
#else
    *out = 1;
#endif
    return FP8_OK;
}
