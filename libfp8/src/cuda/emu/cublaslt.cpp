/*
 * cublaslt.cpp — libfp8_cuda_emu's cuBLASLt (include/cublasLt.h): gemm.cu's
 * plans, layouts and scale pointers run unchanged, and the product itself is
 * computed by libfp8's CPU GEMMs. Never a hand-written GEMM.
 *
 * cuBLASLt is column-major: D (m, n) = op(A) (m, k) @ op(B) (k, n). A
 * column-major (r, c) buffer is a row-major (c, r) one, so D is the row-major
 * (n, m) product op(B)^T @ op(A)^T, which is fp8_cpu_matmul with its a = B
 * (transposed when op_b is N... see to_row_major) and its b = A.
 *
 * fp8 GEMMs: fp8_cpu_scaled_mm with unit scales gives the f32 accumulator;
 * the epilogue here applies cuBLASLt's scales: acc * (scale_a * scale_b)
 * (tensorwise; the CPU's alpha = inv_a * inv_b is the same product), or
 * acc * vec_b[j] * vec_a[i] (outer vectors; fp8_cpu_scaled_mm_rowwise's
 * order), then the bias, rounded once to D's type.
 *
 * Block scale modes (VEC128_32F, BLK128x128_32F, VEC32_UE8M0; docs/architecture.md,
 * block scaling on the device): the product of each K block (128, or 32 for MX)
 * is a CPU fp8 GEMM of that slice, multiplied by A's and B's scale of the block
 * and summed in f32, the scales read from the layouts cuBLASLt reads (see fp8.h,
 * fp8_cuda_block_scales_layout), so a wrong reorder on the device shows here.
 */
#include <cublasLt.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "fp8_cuda_emu.h"
#include "internal.h"

struct cublasLtContext {
    int magic = 0x4c74;
};

struct cublasLtMatmulDescOpaque_t {
    cublasComputeType_t compute;
    cudaDataType_t scale_type;
    int32_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
    int8_t fast_accum = 0;
    const void *a_scale = nullptr, *b_scale = nullptr; /* f32 (scalar, vectors, blocks) or e8m0 bytes */
    int32_t a_scale_mode = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, b_scale_mode = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
    uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = nullptr;
    int32_t bias_type = -1; /* -1: D's type, as cuBLASLt defaults */
};

struct cublasLtMatrixLayoutOpaque_t {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch = 1;
    int64_t batch_stride = 0;
};

struct cublasLtMatmulPreferenceOpaque_t {
    uint64_t workspace = 0;
};

/* An emulated call fails here when a test asked for it (fp8_cuda_emu_fail_call). */
#define FP8_EMU_INJECT(name)                                                        \
    do {                                                                            \
        if (const int e_ = fp8emu::injected_failure(name)) return (cublasStatus_t)e_; \
    } while (0)

namespace {

int outer_vec_mode = 0;   /* fp8_cuda_emu_set_outer_vec */
int block_scale_mode = 0; /* fp8_cuda_emu_set_block_scale */

bool is_block_mode(int32_t m) {
    return m == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F || m == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F ||
           m == CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
}

/* The emulated device's compute capability (major), as cuBLASLt would see it. */
int device_cc_major() {
    int dev = 0;
    cudaDeviceProp prop;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return 0;
    return prop.major;
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* The scale of row `outer` (of outer_n) and K block kb (of nkb) of an operand, read from
 * the layout of its block scale mode. */
float block_scale_at(const void *p, int32_t mode, int64_t outer, int64_t outer_n, int64_t kb, int64_t nkb) {
    if (mode == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F) return ((const float *)p)[kb * outer_n + outer];
    if (mode == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F) return ((const float *)p)[(outer / 128) * round_up(nkb, 4) + kb];
    const int64_t off = ((outer / 128) * (round_up(nkb, 4) / 4) + kb / 4) * 512 + (outer % 32) * 16 + ((outer % 128) / 32) * 4 + kb % 4;
    const uint8_t e = ((const uint8_t *)p)[off];
    if (e == 0xFF) return NAN;
    uint32_t bits = e == 0 ? 0x00400000u : (uint32_t)e << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

bool is_fp8(cudaDataType_t t) { return t == CUDA_R_8F_E4M3 || t == CUDA_R_8F_E5M2; }

int32_t fp8_dtype_of(cudaDataType_t t) {
    switch (t) {
    case CUDA_R_32F: return FP8_DTYPE_F32;
    case CUDA_R_16BF: return FP8_DTYPE_BF16;
    case CUDA_R_8F_E4M3: return FP8_DTYPE_E4M3FN;
    case CUDA_R_8F_E5M2: return FP8_DTYPE_E5M2;
    default: return -1;
    }
}

template <class T>
cublasStatus_t read_attr(T *out, const void *buf, size_t bytes) {
    if (!buf || bytes != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(out, buf, sizeof(T));
    return CUBLAS_STATUS_SUCCESS;
}

/* The problem a descriptor and its layouts describe, checked as cuBLASLt
 * checks it on Hopper; NOT_SUPPORTED where it has no algorithm. */
struct Problem {
    int64_t m, n, k, batch;
    bool batched_a, batched_b;
    bool fp8, outer_vec, block;
};

cublasStatus_t check_problem(const cublasLtMatmulDescOpaque_t *desc, const cublasLtMatrixLayoutOpaque_t *a,
                             const cublasLtMatrixLayoutOpaque_t *b, const cublasLtMatrixLayoutOpaque_t *c,
                             const cublasLtMatrixLayoutOpaque_t *d, Problem *p) {
    if (!desc || !a || !b || !c || !d) return CUBLAS_STATUS_INVALID_VALUE;
    if (desc->compute != CUBLAS_COMPUTE_32F || desc->scale_type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    const bool ta = desc->trans_a == CUBLAS_OP_T, tb = desc->trans_b == CUBLAS_OP_T;
    p->m = (int64_t)d->rows;
    p->n = (int64_t)d->cols;
    p->k = (int64_t)(ta ? a->rows : a->cols);
    if ((int64_t)(ta ? a->cols : a->rows) != p->m || (int64_t)(tb ? b->cols : b->rows) != p->k ||
        (int64_t)(tb ? b->rows : b->cols) != p->n)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (c->rows != d->rows || c->cols != d->cols || c->type != d->type) return CUBLAS_STATUS_INVALID_VALUE;
    for (const auto *l : {a, b, c, d})
        if (l->ld < (int64_t)l->rows || l->rows == 0 || l->cols == 0) return CUBLAS_STATUS_INVALID_VALUE;
    p->batch = d->batch;
    if ((a->batch != 1 && a->batch != p->batch) || (b->batch != 1 && b->batch != p->batch))
        return CUBLAS_STATUS_INVALID_VALUE;
    p->batched_a = p->batch > 1 && a->batch_stride != 0;
    p->batched_b = p->batch > 1 && b->batch_stride != 0;
    if (p->batched_a && a->batch_stride != (int64_t)(a->rows * a->cols)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (p->batched_b && b->batch_stride != (int64_t)(b->rows * b->cols)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (p->batch > 1 && d->batch_stride != (int64_t)(d->rows * d->cols)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (d->type != CUDA_R_32F && d->type != CUDA_R_16BF) return CUBLAS_STATUS_NOT_SUPPORTED;

    p->fp8 = is_fp8(a->type);
    if (p->fp8 != is_fp8(b->type)) return CUBLAS_STATUS_NOT_SUPPORTED;
    const bool scales = desc->a_scale || desc->b_scale;
    p->outer_vec = desc->a_scale_mode == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F ||
                   desc->b_scale_mode == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    p->block = is_block_mode(desc->a_scale_mode) || is_block_mode(desc->b_scale_mode);
    if (p->fp8) {
        /* Hopper: fp8 only as "TN", never e5m2 x e5m2, not batched here. */
        if (!ta || tb) return CUBLAS_STATUS_NOT_SUPPORTED;
        if (a->type == CUDA_R_8F_E5M2 && b->type == CUDA_R_8F_E5M2) return CUBLAS_STATUS_NOT_SUPPORTED;
        if (p->batch != 1) return CUBLAS_STATUS_NOT_SUPPORTED;
        if (p->outer_vec && desc->a_scale_mode != desc->b_scale_mode) return CUBLAS_STATUS_NOT_SUPPORTED;
        if (p->block) {
            const int32_t ma = desc->a_scale_mode, mb = desc->b_scale_mode;
            const bool mx = ma == CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0 || mb == CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
            if (mx) {
                /* MXFP8: both operands, Blackwell (sm_100+) */
                if (ma != mb || device_cc_major() < 10) return CUBLAS_STATUS_NOT_SUPPORTED;
            } else {
                /* 1x128 with 1x128 or 128x128 (not both 128x128), Hopper */
                if (!is_block_mode(ma) || !is_block_mode(mb)) return CUBLAS_STATUS_NOT_SUPPORTED;
                if (ma == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F && mb == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F)
                    return CUBLAS_STATUS_NOT_SUPPORTED;
                if (device_cc_major() != 9) return CUBLAS_STATUS_NOT_SUPPORTED;
            }
        }
    } else {
        if (a->type != b->type || (a->type != CUDA_R_32F && a->type != CUDA_R_16BF)) return CUBLAS_STATUS_NOT_SUPPORTED;
        if (a->type == CUDA_R_32F && d->type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
        if (scales || p->outer_vec || p->block || desc->fast_accum) return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (desc->epilogue == CUBLASLT_EPILOGUE_BIAS) {
        const int32_t bias_type = desc->bias_type < 0 ? (int32_t)d->type : desc->bias_type;
        /* fp8: a bf16 bias; otherwise a bias in D's type. */
        if (p->fp8 ? bias_type != CUDA_R_16BF : bias_type != (int32_t)d->type) return CUBLAS_STATUS_NOT_SUPPORTED;
    } else if (desc->epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    FP8_EMU_INJECT("cublasLtCreate");
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasLtContext();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasLtGetStatusName(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
const char *cublasLtGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "emulated cuBLASLt error";
    }
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute, cudaDataType_t scale) {
    FP8_EMU_INJECT("cublasLtMatmulDescCreate");
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    *desc = new cublasLtMatmulDescOpaque_t();
    (*desc)->compute = compute;
    (*desc)->scale_type = scale;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t bytes) {
    FP8_EMU_INJECT("cublasLtMatmulDescSetAttribute");
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return read_attr(&d->trans_a, buf, bytes);
    case CUBLASLT_MATMUL_DESC_TRANSB: return read_attr(&d->trans_b, buf, bytes);
    case CUBLASLT_MATMUL_DESC_FAST_ACCUM: return read_attr(&d->fast_accum, buf, bytes);
    case CUBLASLT_MATMUL_DESC_A_SCALE_POINTER: return read_attr(&d->a_scale, buf, bytes);
    case CUBLASLT_MATMUL_DESC_B_SCALE_POINTER: return read_attr(&d->b_scale, buf, bytes);
    case CUBLASLT_MATMUL_DESC_A_SCALE_MODE: return read_attr(&d->a_scale_mode, buf, bytes);
    case CUBLASLT_MATMUL_DESC_B_SCALE_MODE: return read_attr(&d->b_scale_mode, buf, bytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return read_attr(&d->epilogue, buf, bytes);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return read_attr(&d->bias, buf, bytes);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return read_attr(&d->bias_type, buf, bytes);
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    FP8_EMU_INJECT("cublasLtMatrixLayoutCreate");
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    *layout = new cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t bytes) {
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return read_attr(&l->batch, buf, bytes);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return read_attr(&l->batch_stride, buf, bytes);
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    FP8_EMU_INJECT("cublasLtMatmulPreferenceCreate");
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new cublasLtMatmulPreferenceOpaque_t();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t bytes) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    uint32_t align;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return read_attr(&pref->workspace, buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return read_attr(&align, buf, bytes);
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t *results, int *returned) {
    FP8_EMU_INJECT("cublasLtMatmulAlgoGetHeuristic");
    if (!handle || !pref || requested < 1 || !results || !returned) return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    Problem p;
    const cublasStatus_t s = check_problem(desc, a, b, c, d, &p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (p.outer_vec && outer_vec_mode == 1) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (p.block && block_scale_mode == 1) return CUBLAS_STATUS_NOT_SUPPORTED;
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = 0x656d75; /* "emu" */
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha_p, const void *A,
                              cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b, const void *beta_p,
                              const void *C, cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t *algo, void *, size_t, cudaStream_t stream) {
    FP8_EMU_INJECT("cublasLtMatmul");
    if (!handle || !algo || algo->data[0] != 0x656d75 || !alpha_p || !beta_p || !A || !B || !D)
        return CUBLAS_STATUS_INVALID_VALUE;
    Problem p;
    const cublasStatus_t s = check_problem(desc, a, b, c, d, &p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (p.outer_vec && outer_vec_mode == 2) return CUBLAS_STATUS_INVALID_VALUE;
    if (p.block && block_scale_mode == 2) return CUBLAS_STATUS_INVALID_VALUE;
    if (p.block && (!desc->a_scale || !desc->b_scale)) return CUBLAS_STATUS_INVALID_VALUE;
    const float alpha = *(const float *)alpha_p, beta = *(const float *)beta_p;
    if (beta != 0.0f && C != D) return CUBLAS_STATUS_NOT_SUPPORTED; /* in-place accumulation only */
    if (beta != 0.0f && beta != 1.0f) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (p.fp8 && beta != 0.0f) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (p.outer_vec && (!desc->a_scale || !desc->b_scale)) return CUBLAS_STATUS_INVALID_VALUE;

    /* Row-major view: D (n, m) = X (n, k) @ Y (k, m), X = op(B)^T read from B,
     * Y = op(A)^T read from A; X is stored transposed when op_b is T, Y when op_a is T. */
    const int32_t trans_x = desc->trans_b == CUBLAS_OP_T, trans_y = desc->trans_a == CUBLAS_OP_T;
    const int32_t d_dt = fp8_dtype_of(d->type), a_dt = fp8_dtype_of(a->type), b_dt = fp8_dtype_of(b->type);
    const bool bias = desc->epilogue == CUBLASLT_EPILOGUE_BIAS;
    const void *bias_p = bias ? desc->bias : nullptr;
    const int32_t bias_dt = bias ? fp8_dtype_of((cudaDataType_t)(desc->bias_type < 0 ? (int32_t)d->type : desc->bias_type))
                                 : FP8_DTYPE_F32;
    if (bias && !bias_p) return CUBLAS_STATUS_INVALID_VALUE;
    const Problem q = p;
    const int outer = p.outer_vec;
    const float *sa = (const float *)desc->a_scale, *sb = (const float *)desc->b_scale; /* device pointers, read when the GEMM runs */
    const int32_t mode_a = desc->a_scale_mode, mode_b = desc->b_scale_mode;
    const int64_t lda = a->ld, ldb = b->ld;

    auto gemm = [=]() {
        int32_t st;
        if (q.fp8 && q.block) {
            /* sum over K blocks of (A slice @ B slice) * A's block scale * B's block scale, in f32 */
            const int64_t kblk = mode_a == CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0 ? 32 : 128;
            const int64_t nkb = (q.k + kblk - 1) / kblk;
            std::vector<float> sum((size_t)(q.n * q.m), 0.0f), part((size_t)(q.n * q.m));
            std::vector<uint8_t> xa((size_t)(q.m * kblk)), xb((size_t)(q.n * kblk));
            const float one = 1.0f;
            st = FP8_OK;
            for (int64_t kb = 0; kb < nkb && st == FP8_OK; kb++) {
                const int64_t k0 = kb * kblk, kl = k0 + kblk < q.k ? kblk : q.k - k0;
                for (int64_t i = 0; i < q.m; i++) memcpy(&xa[(size_t)(i * kl)], (const uint8_t *)A + i * lda + k0, (size_t)kl);
                for (int64_t j = 0; j < q.n; j++) memcpy(&xb[(size_t)(j * kl)], (const uint8_t *)B + j * ldb + k0, (size_t)kl);
                st = fp8_cpu_scaled_mm(part.data(), FP8_DTYPE_F32, xb.data(), b_dt, xa.data(), a_dt, &one, &one, nullptr,
                                       FP8_DTYPE_F32, q.n, kl, q.m, 0, 1);
                for (int64_t j = 0; j < q.n && st == FP8_OK; j++) {
                    const float s_b = block_scale_at(sb, mode_b, j, q.n, kb, nkb);
                    for (int64_t i = 0; i < q.m; i++)
                        sum[(size_t)(j * q.m + i)] += part[(size_t)(j * q.m + i)] * block_scale_at(sa, mode_a, i, q.m, kb, nkb) * s_b;
                }
            }
            if (st == FP8_OK)
                for (int64_t j = 0; j < q.n; j++)
                    for (int64_t i = 0; i < q.m; i++) {
                        float v = sum[(size_t)(j * q.m + i)] * alpha;
                        if (bias_p) v += fp8_load_hp(bias_p, bias_dt, i);
                        fp8_store_hp(D, d_dt, j * q.m + i, v);
                    }
        } else if (!q.fp8) {
            st = fp8_cpu_matmul(D, d_dt, B, A, a_dt, bias_p, bias_dt, q.batched_b ? q.batch : 1, q.batched_a ? q.batch : 1,
                                q.n, q.k, q.m, trans_x, trans_y, alpha, beta);
        } else {
            std::vector<float> acc((size_t)(q.n * q.m));
            const float one = 1.0f;
            st = fp8_cpu_scaled_mm(acc.data(), FP8_DTYPE_F32, B, b_dt, A, a_dt, &one, &one, nullptr, FP8_DTYPE_F32, q.n,
                                   q.k, q.m, trans_x, trans_y);
            if (st == FP8_OK) {
                /* a scale pointer left unset means 1 */
                const float s_scalar = outer ? 0.0f : (sa ? *sa : 1.0f) * (sb ? *sb : 1.0f);
                for (int64_t j = 0; j < q.n; j++)     /* row of the row-major view = column of D */
                    for (int64_t i = 0; i < q.m; i++) { /* column of the view = row of D */
                        float v = acc[(size_t)(j * q.m + i)];
                        v = outer ? v * sb[j] * sa[i] * alpha : v * (alpha * s_scalar);
                        if (bias_p) v += fp8_load_hp(bias_p, bias_dt, i);
                        fp8_store_hp(D, d_dt, j * q.m + i, v);
                    }
            }
        }
        /* Cannot happen after check_problem; libfp8's own message is in its fp8_last_error(). */
        if (st != FP8_OK) fprintf(stderr, "libfp8_cuda_emu: cublasLtMatmul: libfp8 GEMM failed with status %d\n", st);
    };
    fp8emu::submit_host(stream, gemm);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" FP8_API int32_t fp8_cuda_emu_set_block_scale(int32_t mode) {
    if (mode < 0 || mode > 2) return FP8_ERR_INVALID_ARG;
    block_scale_mode = mode;
    return FP8_OK;
}

extern "C" FP8_API int32_t fp8_cuda_emu_set_outer_vec(int32_t mode) {
    if (mode < 0 || mode > 2) return FP8_ERR_INVALID_ARG;
    outer_vec_mode = mode;
    return FP8_OK;
}
