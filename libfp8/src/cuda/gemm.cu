/*
 * gemm.cu — the GEMMs of libfp8_cuda, all through cuBLASLt: the scaled fp8
 * GEMM (torch._scaled_mm semantics), the row-scaled fp8 GEMM of axiswise
 * scaling, and the f32/bf16 GEMM of the high-precision path.
 *
 * Layout: the API is row-major, cuBLASLt is column-major. A row-major (R, C)
 * buffer is a column-major (C, R) matrix, so c = op(a) @ op(b) runs as
 * c^T = op(b)^T @ op(a)^T with cuBLASLt's A = our b and B = our a, m = N,
 * n = M. For fp8, c (M,N) = a (M,K) @ b (N,K)^T becomes A = b with op T and
 * B = a with op N: "TN", the only fp8 layout Hopper's cuBLASLt accepts.
 *
 * Plans (descriptors, layouts, the chosen algorithm) are cached on the
 * context per GemmKey; a call after the first only sets the bias pointer and
 * launches. Our scales are "fp8 = x * scale"; cuBLASLt multiplies by its scale
 * pointers, so a one-thread kernel writes 1/scale into context scratch first
 * (stream-ordered, so no host sync), exactly like torchao passing
 * reciprocals to torch._scaled_mm.
 */
#include <tuple>

#include "cast_checks.h"
#include "cuda_common.cuh"

namespace fp8cuda {

bool GemmKey::operator<(const GemmKey &o) const {
    auto t = [](const GemmKey &k) {
        return std::make_tuple(k.m, k.n, k.k, k.batch_a, k.batch_b, k.a_type, k.b_type, k.c_type,
                               k.trans_a, k.trans_b, k.epilogue, k.bias_type, k.fast_accum, k.scaled,
                               k.align_a, k.align_b, k.align_c, k.align_bias);
    };
    return t(*this) < t(o);
}

struct GemmPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool fused_bias = false;
    /* Outer-vector plans only: cuBLASLt refused this GEMM (no algorithm, or
     * an error at launch); cached so that AUTO falls back without asking again. */
    bool refused = false;
    ~GemmPlan() {
        if (d) cublasLtMatrixLayoutDestroy(d);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (desc) cublasLtMatmulDescDestroy(desc);
    }
};

void destroy_plans(Ctx *ctx) {
    for (auto &kv : ctx->plans) delete kv.second;
    ctx->plans.clear();
}

namespace {

/* How a GEMM's operands are scaled (GemmKey::scaled). */
enum Scaling : int32_t {
    kNoScale = 0,    /* f32 / bf16 GEMM */
    kTensorwise = 1, /* fp8; 1/scale scalars written to ctx scratch [2], [3] */
    kOuterVec = 2,   /* fp8; CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F vectors, set per call */
    kUnitScale = 3,  /* fp8 without scales: the raw f32 accumulator of the rowwise epilogue path */
    kBlock = 4,      /* fp8; cuBLASLt block scale modes (mode_a, mode_b), reordered scales set per call */
};

/* One GEMM in cuBLASLt's column-major terms: D (m, n) = alpha * op(A) @ op(B) + beta * D. */
struct LtGemm {
    int64_t m, n, k, batch_a, batch_b; /* batch_a / batch_b: of cuBLASLt's A and B */
    cudaDataType_t a_type, b_type, d_type;
    cublasOperation_t op_a, op_b;
    const void *A, *B;
    void *D;
    float alpha, beta;
    Scaling scaling;
    const float *vec_a, *vec_b; /* kOuterVec: A's (m) and B's (n) scale vectors */
    int32_t mode_a, mode_b;     /* kBlock: cublasLtMatmulMatrixScale_t of A and B */
    const void *blk_a, *blk_b;  /* kBlock: A's and B's scales in cuBLASLt's layout */
    bool fast_accum;            /* fp8 only */
    const void *bias;           /* (m) or NULL */
    cudaDataType_t bias_type;
};

/* cuBLAS 12.9 added the outer-vector scale mode (cublasLtMatmulMatrixScale_t). */
#if CUBLAS_VERSION >= 120900
#define FP8_HAVE_OUTER_VEC 1
#else
#define FP8_HAVE_OUTER_VEC 0
#endif
/* ... and the block scale modes VEC128_32F, BLK128x128_32F (VEC32_UE8M0 came in 12.8). */
#define FP8_HAVE_BLOCK_SCALE FP8_HAVE_OUTER_VEC

/* Plans that may be refused (no algorithm, or an error at launch) and are then
 * cached as refused, so that AUTO falls back without asking cuBLASLt again. */
bool may_refuse(const LtGemm &g) { return g.scaling == kOuterVec || g.scaling == kBlock; }
const char *scaling_words(const LtGemm &g) {
    return g.scaling == kBlock ? "block scaling" : "outer-vector (row-wise) scaling";
}

int32_t align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int32_t al = 256;
    while (al > 1 && (a % (uintptr_t)al) != 0) al /= 2;
    return al;
}

cudaDataType_t lt_type(int32_t dt) {
    switch (dt) {
    case FP8_DTYPE_F32: return CUDA_R_32F;
    case FP8_DTYPE_BF16: return CUDA_R_16BF;
    case FP8_DTYPE_E4M3FN: return CUDA_R_8F_E4M3;
    default: return CUDA_R_8F_E5M2;
    }
}

/* Column-major layout of a (rows, cols) matrix with ld = rows, batched. */
int32_t make_layout(const char *fn, cublasLtMatrixLayout_t *out, cudaDataType_t type, int64_t rows,
                    int64_t cols, int64_t batch, int64_t batch_stride) {
    FP8_CUBLAS_TRY(fn, "cublasLtMatrixLayoutCreate",
                   cublasLtMatrixLayoutCreate(out, type, (uint64_t)rows, (uint64_t)cols, rows));
    if (batch > 1) {
        int32_t count = (int32_t)batch;
        FP8_CUBLAS_TRY(fn, "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)",
                       cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
        FP8_CUBLAS_TRY(fn, "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)",
                       cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                        &batch_stride, sizeof batch_stride));
    }
    return FP8_OK;
}

/* Builds the plan for g (with or without the bias epilogue). *found = false
 * when cuBLASLt has no algorithm for it. */
int32_t build_plan(const char *fn, Ctx *ctx, const LtGemm &g, bool fuse_bias, GemmPlan *p, bool *found) {
    *found = false;
    FP8_CUBLAS_TRY(fn, "cublasLtMatmulDescCreate",
                   cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
#define SET_DESC(attr, value)                                                                      \
    FP8_CUBLAS_TRY(fn, "cublasLtMatmulDescSetAttribute(" #attr ")",                               \
                   cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_##attr, &(value), \
                                                  sizeof(value)))
    SET_DESC(TRANSA, g.op_a);
    SET_DESC(TRANSB, g.op_b);
    if (g.scaling != kNoScale) {
        int8_t fast = g.fast_accum ? 1 : 0;
        SET_DESC(FAST_ACCUM, fast);
    }
    if (g.scaling == kTensorwise) {
        const float *inv_a = (const float *)(ctx->scratch + 2), *inv_b = (const float *)(ctx->scratch + 3);
        SET_DESC(A_SCALE_POINTER, inv_a);
        SET_DESC(B_SCALE_POINTER, inv_b);
    }
    if (g.scaling == kOuterVec) {
#if FP8_HAVE_OUTER_VEC
        /* A libcublasLt older than the headers rejects the attribute: no algorithm. */
        int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        if (cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode) !=
                CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode) !=
                CUBLAS_STATUS_SUCCESS)
            return FP8_OK;
        SET_DESC(A_SCALE_POINTER, g.vec_a);
        SET_DESC(B_SCALE_POINTER, g.vec_b);
#else
        return FP8_OK;
#endif
    }
    if (g.scaling == kBlock) {
#if FP8_HAVE_BLOCK_SCALE
        if (cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &g.mode_a, sizeof g.mode_a) !=
                CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &g.mode_b, sizeof g.mode_b) !=
                CUBLAS_STATUS_SUCCESS)
            return FP8_OK;
        SET_DESC(A_SCALE_POINTER, g.blk_a);
        SET_DESC(B_SCALE_POINTER, g.blk_b);
#else
        return FP8_OK;
#endif
    }
    if (fuse_bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        int32_t bias_type = (int32_t)g.bias_type;
        SET_DESC(EPILOGUE, epi);
        SET_DESC(BIAS_DATA_TYPE, bias_type);
        SET_DESC(BIAS_POINTER, g.bias); /* the heuristic reads its alignment */
    }
#undef SET_DESC
    const int64_t batch = std::max(g.batch_a, g.batch_b);
    const bool ta = g.op_a == CUBLAS_OP_T, tb = g.op_b == CUBLAS_OP_T;
    int32_t st;
    if ((st = make_layout(fn, &p->a, g.a_type, ta ? g.k : g.m, ta ? g.m : g.k, batch,
                          g.batch_a == 1 ? 0 : g.m * g.k)) != FP8_OK ||
        (st = make_layout(fn, &p->b, g.b_type, tb ? g.n : g.k, tb ? g.k : g.n, batch,
                          g.batch_b == 1 ? 0 : g.k * g.n)) != FP8_OK ||
        (st = make_layout(fn, &p->d, g.d_type, g.m, g.n, batch, g.m * g.n)) != FP8_OK)
        return st;

    cublasLtMatmulPreference_t pref = nullptr;
    FP8_CUBLAS_TRY(fn, "cublasLtMatmulPreferenceCreate", cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = ctx->workspace_bytes;
    uint32_t al_a = (uint32_t)align_of(g.A), al_b = (uint32_t)align_of(g.B), al_d = (uint32_t)align_of(g.D);
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d);
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(ctx->lt, p->desc, p->a, p->b, p->d, p->d, pref, 1, &result, &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    /* NOT_SUPPORTED from the heuristic means "no algorithm", not a failure;
     * so does INVALID_VALUE for an outer-vector plan (a scale mode this
     * cuBLASLt does not take for these types). */
    if (s == CUBLAS_STATUS_NOT_SUPPORTED || (s == CUBLAS_STATUS_SUCCESS && returned == 0) ||
        (may_refuse(g) && s == CUBLAS_STATUS_INVALID_VALUE))
        return FP8_OK;
    if (s != CUBLAS_STATUS_SUCCESS) return cublas_fail(fn, "cublasLtMatmulAlgoGetHeuristic", s);
    p->algo = result.algo;
    p->fused_bias = fuse_bias;
    *found = true;
    return FP8_OK;
}

__global__ void inverse_scales_kernel(float *inv, const float *scale_lt_a, const float *scale_lt_b) {
    inv[0] = 1.0f / *scale_lt_a; /* IEEE division (no fast math) */
    inv[1] = 1.0f / *scale_lt_b;
}

/* The cached plan of g, built on first use. FP8_ERR_UNSUPPORTED when
 * cuBLASLt has no algorithm for it (for outer-vector plans: also when it
 * refused one at launch before). `what` describes the GEMM for messages. */
GemmKey key_of(const LtGemm &g) {
    return GemmKey{g.m, g.n, g.k, g.batch_a, g.batch_b, (int32_t)g.a_type, (int32_t)g.b_type, (int32_t)g.d_type,
                   (int32_t)g.op_a, (int32_t)g.op_b, g.bias ? 1 : 0, g.bias ? (int32_t)g.bias_type : -1,
                   g.fast_accum ? 1 : 0, (int32_t)g.scaling | (g.mode_a << 8) | (g.mode_b << 16), align_of(g.A),
                   align_of(g.B), align_of(g.D),
                   g.bias ? align_of(g.bias) : 0};
}

/* True when g's plan is cached as refused (outer-vector plans): the caller can
 * fall back before allocating or launching anything for it. */
bool cached_refusal(const Ctx *ctx, const LtGemm &g) {
    auto it = ctx->plans.find(key_of(g));
    return it != ctx->plans.end() && it->second->refused;
}

int32_t find_plan(const char *fn, Ctx *ctx, const LtGemm &g, const char *what, GemmPlan **out) {
    const GemmKey key = key_of(g);
    GemmPlan *plan = nullptr;
    auto it = ctx->plans.find(key);
    if (it != ctx->plans.end()) {
        plan = it->second;
    } else {
        bool found = false;
        GemmPlan *p = new GemmPlan();
        int32_t st = FP8_OK;
        /* bf16 bias (or a bias in c's dtype) is fused when cuBLASLt allows it;
         * otherwise the plan runs without it and a kernel adds it after. */
        const bool fusable = g.bias && (g.scaling != kNoScale ? g.bias_type == CUDA_R_16BF : g.bias_type == g.d_type);
        if (fusable) st = build_plan(fn, ctx, g, true, p, &found);
        if (st == FP8_OK && !found) {
            delete p;
            p = new GemmPlan();
            st = build_plan(fn, ctx, g, false, p, &found);
        }
        if (st != FP8_OK) {
            delete p;
            return st;
        }
        if (!found && !may_refuse(g)) {
            delete p;
            return fp8_fail(FP8_ERR_UNSUPPORTED, fn, "cuBLASLt has no algorithm for %s", what);
        }
        p->refused = !found;
        try {
            ctx->plans.emplace(key, p);
        } catch (...) {
            delete p;
            throw;
        }
        plan = p;
    }
    if (plan->refused)
        return fp8_fail(FP8_ERR_UNSUPPORTED, fn,
                        "cuBLASLt does not take %s for %s (no algorithm, or refused at launch)", scaling_words(g),
                        what);
    *out = plan;
    return FP8_OK;
}

/* d (rows, cols) BF16 <- bf16(acc (rows, cols) f32 + bias (cols)): the
 * unfused bias of a bf16 GEMM result, added in f32 to the unrounded result
 * and rounded once, as fp8_cpu_matmul / fp8_cpu_scaled_mm do (issue 16). */
__global__ void __launch_bounds__(256)
bias_round_bf16_kernel(uint16_t *d, const float *acc, const void *bias, int bias_dt, int64_t rows, int64_t cols) {
    const int64_t n = rows * cols, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        d[i] = f32_to_bf16_bits(__fadd_rn(acc[i], load_hp(bias, bias_dt, i % cols)));
}
/* acc (n) f32 <- c (n) bf16: the c_old of an accumulating (beta = 1) GEMM. */
__global__ void __launch_bounds__(256) widen_bf16_kernel(float *acc, const uint16_t *c, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) acc[i] = bf16_bits_to_f32(c[i]);
}

int32_t run(const char *fn, fp8_cuda_ctx_t handle, Ctx *ctx, const LtGemm &g, int32_t bias_dtype,
            const float *scale_lt_a, const float *scale_lt_b, const char *what);

/* A bf16 D with a bias cuBLASLt does not fuse (an f32 bias, or no algorithm
 * with the bias epilogue): the GEMM runs into a stream-ordered f32 temporary
 * (holding c_old when beta = 1), then bias_round_bf16_kernel adds the bias and
 * rounds once. Adding it to the already-rounded bf16 D would round twice. */
int32_t run_bias_via_f32(const char *fn, fp8_cuda_ctx_t handle, Ctx *ctx, const LtGemm &g, int32_t bias_dtype,
                         const float *scale_lt_a, const float *scale_lt_b, const char *what) {
    const int64_t batch = std::max(g.batch_a, g.batch_b), n = batch * g.m * g.n;
    void *tmp = nullptr;
    FP8_CUDA_TRY(fn, "cudaMallocFromPoolAsync", pool_alloc(ctx, &tmp, (size_t)n * 4));
    LtGemm f = g;
    f.D = tmp, f.d_type = CUDA_R_32F, f.bias = nullptr, f.bias_type = CUDA_R_32F;
    int32_t st = FP8_OK;
    if (g.beta != 0.0f) {
        widen_bf16_kernel<<<grid_for(ctx, n, 256), 256, 0, ctx->stream>>>((float *)tmp, (const uint16_t *)g.D, n);
        if (cudaGetLastError() != cudaSuccess) st = fp8_fail(FP8_ERR_BACKEND, fn, "launch of widen_bf16_kernel failed");
    }
    if (st == FP8_OK) st = run(fn, handle, ctx, f, bias_dtype, scale_lt_a, scale_lt_b, what);
    if (st == FP8_OK) {
        bias_round_bf16_kernel<<<grid_for(ctx, n, 256), 256, 0, ctx->stream>>>((uint16_t *)g.D, (const float *)tmp,
                                                                                g.bias, bias_dtype, batch * g.n, g.m);
        const cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) st = cuda_fail(fn, "launch of bias_round_bf16_kernel", e);
    }
    const cudaError_t fe = cudaFreeAsync(tmp, ctx->stream);
    if (st == FP8_OK && fe != cudaSuccess) st = cuda_fail(fn, "cudaFreeAsync", fe);
    return st;
}

/* Runs g: finds or builds its plan, writes the inverse scales (tensorwise)
 * or sets the scale vectors (outer vector), launches the matmul, and adds the
 * bias separately when it could not be fused (for a bf16 D through an f32
 * temporary, run_bias_via_f32). FP8_ERR_UNSUPPORTED as find_plan, or an
 * outer-vector GEMM that cublasLtMatmul refused (nothing of the GEMM was
 * queued then). */
int32_t run(const char *fn, fp8_cuda_ctx_t handle, Ctx *ctx, const LtGemm &g, int32_t bias_dtype,
            const float *scale_lt_a, const float *scale_lt_b, const char *what) {
    GemmPlan *plan = nullptr;
    int32_t st = find_plan(fn, ctx, g, what, &plan);
    if (st != FP8_OK) return st;
    if (g.bias && !plan->fused_bias && g.d_type == CUDA_R_16BF)
        return run_bias_via_f32(fn, handle, ctx, g, bias_dtype, scale_lt_a, scale_lt_b, what);
    if (g.scaling == kTensorwise) {
        inverse_scales_kernel<<<1, 1, 0, ctx->stream>>>((float *)(ctx->scratch + 2), scale_lt_a, scale_lt_b);
        FP8_LAUNCH_CHECK(fn, "inverse_scales_kernel");
    }
    if (g.scaling == kOuterVec) {
        FP8_CUBLAS_TRY(fn, "cublasLtMatmulDescSetAttribute(A_SCALE_POINTER)",
                       cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g.vec_a,
                                                      sizeof g.vec_a));
        FP8_CUBLAS_TRY(fn, "cublasLtMatmulDescSetAttribute(B_SCALE_POINTER)",
                       cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g.vec_b,
                                                      sizeof g.vec_b));
    }
    if (g.scaling == kBlock) {
        FP8_CUBLAS_TRY(fn, "cublasLtMatmulDescSetAttribute(A_SCALE_POINTER)",
                       cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g.blk_a,
                                                      sizeof g.blk_a));
        FP8_CUBLAS_TRY(fn, "cublasLtMatmulDescSetAttribute(B_SCALE_POINTER)",
                       cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g.blk_b,
                                                      sizeof g.blk_b));
    }
    if (plan->fused_bias)
        FP8_CUBLAS_TRY(fn, "cublasLtMatmulDescSetAttribute(BIAS_POINTER)",
                       cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias,
                                                      sizeof g.bias));
    const cublasStatus_t ls =
        cublasLtMatmul(ctx->lt, plan->desc, &g.alpha, g.A, plan->a, g.B, plan->b, &g.beta, g.D, plan->d, g.D,
                       plan->d, &plan->algo, ctx->workspace, ctx->workspace_bytes, ctx->stream);
    if (ls != CUBLAS_STATUS_SUCCESS && may_refuse(g) &&
        (ls == CUBLAS_STATUS_NOT_SUPPORTED || ls == CUBLAS_STATUS_INVALID_VALUE)) {
        /* cublasLt.h (A_SCALE_POINTER): "If set for an unsupported matrix
         * data, scale, and compute type combination, calling cublasLtMatmul()
         * will return CUBLAS_INVALID_VALUE" - a refusal, not a fault. */
        plan->refused = true;
        return fp8_fail(FP8_ERR_UNSUPPORTED, fn, "cuBLASLt refused %s for %s: cublasLtMatmul: %s (%s)",
                        scaling_words(g), what, cublasLtGetStatusName(ls), cublasLtGetStatusString(ls));
    }
    if (ls != CUBLAS_STATUS_SUCCESS) return cublas_fail(fn, "cublasLtMatmul", ls);
    if (g.bias && !plan->fused_bias) {
        /* D is (m, n) column-major = row-major (n, m) with bias along m. */
        const int64_t batch = std::max(g.batch_a, g.batch_b);
        return fp8_cuda_bias_add(handle, g.D, g.d_type == CUDA_R_32F ? FP8_DTYPE_F32 : FP8_DTYPE_BF16, g.bias,
                                 bias_dtype, batch * g.n, g.m);
    }
    return FP8_OK;
}

/* ---- row-scaled GEMM (axiswise scaling) ---------------------------------------------------------
 * fp8_cuda_scaled_mm_rowwise has two paths (fp8_cuda_set_rowwise_gemm picks; AUTO is the default):
 *
 * OUTER_VEC: cuBLASLt applies the row scales itself. cublasLt.h (cuBLAS 12.9+,
 *   cublasLtMatmulMatrixScale_t): CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F "Scaling factors are
 *   vectors of CUDA_R_32F values ... expected to have M and N elements respectively, and each
 *   (i, j)-th element of product of A and B is multiplied by i-th element of A scale and j-th
 *   element of B scale". The cuBLAS guide (cublasLtMatmul, "Outer Vector Scaling for FP8 Data
 *   Types") requires both A_SCALE_MODE and B_SCALE_MODE set to it, no D scale, and D in
 *   16F/16BF/32F. It is not Blackwell-only: NVIDIA's cuBLAS 12.9 post ("Previous cuBLAS versions
 *   enabled FP8 tensor-wide scaling ... on NVIDIA Hopper and NVIDIA Ada GPUs. Now, cuBLAS 12.9
 *   enables ... several new scaling schemes on Hopper", developer.nvidia.com/blog/boosting-
 *   matrix-multiplication-speed-and-flexibility-with-nvidia-cublas-12-9) lists channel-wise
 *   (outer-vector) and 128-block FP8 scaling for Hopper. So on Hopper, with the cuBLAS 13 we
 *   build against, this is the path AUTO is expected to take.
 *   Our scales are "fp8 = x * scale", cuBLASLt multiplies, so one small kernel writes 1/scale
 *   vectors into a stream-ordered temporary first (no host sync), as torchao passes reciprocals.
 *   cuBLASLt's A is our b (m = N) and its B our a (n = M): A's vector is 1/scale_b.
 * EPILOGUE: our own epilogue. The fp8 GEMM runs with unit scales into an f32 accumulator (d_c
 *   itself when c is f32, else a stream-ordered temporary), then rowwise_epilogue_kernel
 *   computes c = acc * (1/scale_a[i]) * (1/scale_b[j]) + bias[j] with rowwise.c's operations,
 *   in its order, rounded once to c's dtype.
 * AUTO falls back to EPILOGUE where cuBLASLt does not take OUTER_VEC: headers older than 12.9,
 * an older libcublasLt at run time (the attribute is rejected), no algorithm for the shape and
 * dtypes, or a refusal from cublasLtMatmul. The refusal is cached in the plan, so afterwards
 * the fallback costs a plan look-up and a pooled temporary per call. bench/gpu/check.sh tests
 * both paths against the CPU and prints whether OUTER_VEC is taken on its GPU. */

/* inv_a (M) <- 1 / scale_a, inv_b (N) <- 1 / scale_b (IEEE divisions). */
__global__ void inverse_vectors_kernel(float *inv_a, const float *scale_a, int64_t M, float *inv_b,
                                       const float *scale_b, int64_t N) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < M + N; i += stride) {
        if (i < M)
            inv_a[i] = __fdiv_rn(1.0f, scale_a[i]);
        else
            inv_b[i - M] = __fdiv_rn(1.0f, scale_b[i - M]);
    }
}

/* c (M, N) <- acc (M, N) * (1 / scale_a[i]) * (1 / scale_b[j]) [+ bias[j]], the epilogue of
 * fp8_cpu_scaled_mm_rowwise: the same IEEE f32 operations in the same order (the _rn
 * intrinsics keep nvcc from contracting them into FMAs), rounded once to c's dtype. Four
 * columns per thread: N is a multiple of 16 and acc and c are 16-byte aligned. acc may be c. */
__global__ void __launch_bounds__(256)
rowwise_epilogue_kernel(void *c, int c_dtype, const float *acc, const float *scale_a,
                        const float *scale_b, const void *bias, int bias_dtype, int64_t M, int64_t N) {
    const int64_t quads = M * N / 4;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < quads; q += stride) {
        const int64_t i = (4 * q) / N, j = (4 * q) % N;
        const float4 a4 = ((const float4 *)acc)[q];
        const float ia = __fdiv_rn(1.0f, scale_a[i]);
        float v[4] = {a4.x, a4.y, a4.z, a4.w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            v[k] = __fmul_rn(__fmul_rn(v[k], ia), __fdiv_rn(1.0f, scale_b[j + k]));
            if (bias) {
                const float b = bias_dtype == FP8_DTYPE_F32 ? ((const float *)bias)[j + k]
                                                            : bf16_bits_to_f32(((const uint16_t *)bias)[j + k]);
                v[k] = __fadd_rn(v[k], b);
            }
        }
        if (c_dtype == FP8_DTYPE_F32)
            ((float4 *)c)[q] = make_float4(v[0], v[1], v[2], v[3]);
        else
            ((uint2 *)c)[q] = make_uint2((uint32_t)f32_to_bf16_bits(v[0]) | ((uint32_t)f32_to_bf16_bits(v[1]) << 16),
                                         (uint32_t)f32_to_bf16_bits(v[2]) | ((uint32_t)f32_to_bf16_bits(v[3]) << 16));
    }
}

/* Device memory for the length of one call: cudaMallocFromPoolAsync from the context's pool (kept
 * warm, see fp8_cuda_ctx_create) and cudaFreeAsync queued after the work that reads it, so
 * nothing waits; legal inside graph capture. Freed on every return path. */
struct StreamTemp {
    const Ctx *ctx;
    cudaStream_t stream;
    void *p = nullptr;
    explicit StreamTemp(const Ctx *c) : ctx(c), stream(c->stream) {}
    StreamTemp(const StreamTemp &) = delete;
    StreamTemp &operator=(const StreamTemp &) = delete;
    ~StreamTemp() {
        if (p) cudaFreeAsync(p, stream);
    }
    int32_t alloc(const char *fn, size_t bytes) {
        FP8_CUDA_TRY(fn, "cudaMallocFromPoolAsync", pool_alloc(ctx, &p, bytes));
        return FP8_OK;
    }
    int32_t release(const char *fn) {
        void *q = p;
        p = nullptr;
        FP8_CUDA_TRY(fn, "cudaFreeAsync", cudaFreeAsync(q, stream));
        return FP8_OK;
    }
};

/* The OUTER_VEC path of c = a @ b^T with row scales; g is the unscaled TN GEMM. */
int32_t rowwise_outer_vec(const char *fn, fp8_cuda_ctx_t handle, Ctx *ctx, LtGemm g,
                          const float *scale_a, const float *scale_b, int64_t M, int64_t N,
                          int32_t bias_dtype, const char *what) {
#if !FP8_HAVE_OUTER_VEC
    return fp8_fail(FP8_ERR_UNSUPPORTED, fn, "built against cuBLAS %d.%d, which has no outer-vector scale mode "
                    "(12.9+); %s", CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, what);
#endif
    g.scaling = kOuterVec;
    /* A refusal cached by an earlier call: fall back before allocating anything (issue 16). */
    if (cached_refusal(ctx, g))
        return fp8_fail(FP8_ERR_UNSUPPORTED, fn,
                        "cuBLASLt does not take outer-vector (row-wise) scaling for %s (no algorithm, or "
                        "refused at launch)", what);
    StreamTemp inv(ctx);
    const size_t off_b = ((size_t)M * 4 + 255) / 256 * 256;
    int32_t st = inv.alloc(fn, off_b + (size_t)N * 4);
    if (st != FP8_OK) return st;
    float *inv_a = (float *)inv.p, *inv_b = (float *)((char *)inv.p + off_b);
    g.scaling = kOuterVec, g.vec_a = inv_b, g.vec_b = inv_a;
    GemmPlan *plan = nullptr;
    if ((st = find_plan(fn, ctx, g, what, &plan)) != FP8_OK) return st; /* refused: nothing queued */
    inverse_vectors_kernel<<<grid_for(ctx, M + N, 256), 256, 0, ctx->stream>>>(inv_a, scale_a, M, inv_b, scale_b, N);
    FP8_LAUNCH_CHECK(fn, "inverse_vectors_kernel");
    if ((st = run(fn, handle, ctx, g, bias_dtype, nullptr, nullptr, what)) != FP8_OK) return st;
    return inv.release(fn);
}

/* The EPILOGUE path: unit-scale GEMM into an f32 accumulator, then rowwise_epilogue_kernel. */
int32_t rowwise_epilogue(const char *fn, fp8_cuda_ctx_t handle, Ctx *ctx, LtGemm g, void *d_c,
                         int32_t c_dtype, const float *scale_a, const float *scale_b, const void *bias,
                         int32_t bias_dtype, int64_t M, int64_t N, const char *what) {
    StreamTemp acc(ctx);
    int32_t st;
    if (c_dtype != FP8_DTYPE_F32 && (st = acc.alloc(fn, (size_t)M * (size_t)N * 4)) != FP8_OK) return st;
    float *accp = acc.p ? (float *)acc.p : (float *)d_c;
    g.scaling = kUnitScale, g.D = accp, g.d_type = CUDA_R_32F;
    g.bias = nullptr, g.bias_type = CUDA_R_32F; /* added by our epilogue, in f32, before rounding */
    if ((st = run(fn, handle, ctx, g, bias_dtype, nullptr, nullptr, what)) != FP8_OK) return st;
    rowwise_epilogue_kernel<<<grid_for(ctx, M * N / 4, 256), 256, 0, ctx->stream>>>(
        d_c, c_dtype, accp, scale_a, scale_b, bias, bias_dtype, M, N);
    FP8_LAUNCH_CHECK(fn, "rowwise_epilogue_kernel");
    return acc.p ? acc.release(fn) : FP8_OK;
}

/* ---- block-scale layouts for cuBLASLt (the block-scaled GEMMs below) ---- */

__host__ __device__ inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Bytes of our (rows, cols) block scales in cuBLASLt's layout (see fp8.h). */
int64_t layout_bytes(int32_t layout, int64_t rows, int64_t cols) {
    switch (layout) {
    case FP8_CUDA_BLOCK_LAYOUT_VEC128: return rows * cols * 4;
    case FP8_CUDA_BLOCK_LAYOUT_BLK128: return rows * round_up(cols, 4) * 4;
    default: return round_up(rows, 128) * round_up(cols, 4);
    }
}

/* dst (cuBLASLt's layout) <- src (rows, cols) row-major: one thread per element of dst, which
 * reads the source element it holds (padding: 0 for f32 scales, 127 = 2^0 for e8m0). */
__global__ void __launch_bounds__(256)
block_scales_layout_kernel(void *dst, const void *src, int layout, int64_t rows, int64_t cols, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (layout == FP8_CUDA_BLOCK_LAYOUT_VEC128) {
            const int64_t kb = i / rows, r = i % rows;
            ((float *)dst)[i] = ((const float *)src)[r * cols + kb];
        } else if (layout == FP8_CUDA_BLOCK_LAYOUT_BLK128) {
            const int64_t ld = round_up(cols, 4), r = i / ld, kb = i % ld;
            ((float *)dst)[i] = kb < cols ? ((const float *)src)[r * cols + kb] : 0.0f;
        } else {
            const int64_t tile = i / 512, in = i % 512, tiles_per_row = round_up(cols, 4) / 4;
            const int64_t r = (tile / tiles_per_row) * 128 + ((in % 16) / 4) * 32 + in / 16;
            const int64_t kb = (tile % tiles_per_row) * 4 + in % 4;
            ((uint8_t *)dst)[i] = r < rows && kb < cols ? ((const uint8_t *)src)[r * cols + kb] : (uint8_t)127;
        }
    }
}

int32_t launch_layout(const char *fn, Ctx *ctx, void *dst, const void *src, int32_t layout, int64_t rows,
                      int64_t cols) {
    const int64_t n = layout == FP8_CUDA_BLOCK_LAYOUT_MX ? layout_bytes(layout, rows, cols) : layout_bytes(layout, rows, cols) / 4;
    if (n == 0) return FP8_OK;
    block_scales_layout_kernel<<<grid_for(ctx, n, 256), 256, 0, ctx->stream>>>(dst, src, layout, rows, cols, n);
    FP8_LAUNCH_CHECK(fn, "block_scales_layout_kernel");
    return FP8_OK;
}

}  // namespace
}  // namespace fp8cuda

using namespace fp8cuda;

namespace {

/* Arguments of a scaled fp8 GEMM c (M,N) <- a (M,K) @ b (N,K)^T, shared by the
 * tensorwise and row-wise entry points: checks them, and fills the cuBLASLt TN
 * problem (cuBLASLt is column-major: its A is our b, its B our a) and the text
 * that names the problem in errors. */
struct ScaledProblem {
    LtGemm g{};
    char what[256];
};

int32_t scaled_problem(const char *fn, ScaledProblem *p, void *d_c, int32_t c_dtype, const void *d_a,
                       int32_t a_dtype, const void *d_b, int32_t b_dtype, const float *d_scale_a,
                       const float *d_scale_b, const void *d_bias, int32_t bias_dtype, int64_t M,
                       int64_t K, int64_t N, int32_t use_fast_accum, const char *scales) {
    FP8_REQUIRE_HP(c_dtype, "c_dtype", fn);
    FP8_REQUIRE_FP8(a_dtype, "a_dtype", fn);
    FP8_REQUIRE_FP8(b_dtype, "b_dtype", fn);
    FP8_REQUIRE(!(a_dtype == FP8_DTYPE_E5M2 && b_dtype == FP8_DTYPE_E5M2), fn,
                "a and b cannot both be float8_e5m2 (cuBLASLt has no e5m2 x e5m2 GEMM)");
    FP8_REQUIRE(M >= 1 && K >= 1 && N >= 1, fn, "M, K, N must be >= 1, got %lld, %lld, %lld",
                (long long)M, (long long)K, (long long)N);
    FP8_REQUIRE(K % 16 == 0 && N % 16 == 0, fn,
                "fp8 GEMM needs K and N multiples of 16: a (%lld, %lld) @ b (%lld, %lld)^T",
                (long long)M, (long long)K, (long long)N, (long long)K);
    FP8_REQUIRE_PTR(d_c, fn);
    FP8_REQUIRE_PTR(d_a, fn);
    FP8_REQUIRE_PTR(d_b, fn);
    FP8_REQUIRE_PTR(d_scale_a, fn);
    FP8_REQUIRE_PTR(d_scale_b, fn);
    FP8_REQUIRE(aligned(d_a, 16) && aligned(d_b, 16) && aligned(d_c, 16), fn,
                "a, b and c must be 16-byte aligned");
    if (d_bias) FP8_REQUIRE_HP(bias_dtype, "bias_dtype", fn);
    snprintf(p->what, sizeof p->what, "c (%lld, %lld) %s <- a (%lld, %lld) %s @ b (%lld, %lld)^T %s%s%s%s",
             (long long)M, (long long)N, fp8_dtype_name(c_dtype), (long long)M, (long long)K,
             fp8_dtype_name(a_dtype), (long long)N, (long long)K, fp8_dtype_name(b_dtype), scales,
             d_bias ? " + bias " : "", d_bias ? fp8_dtype_name(bias_dtype) : "");
    LtGemm &g = p->g;
    g.m = N, g.n = M, g.k = K, g.batch_a = 1, g.batch_b = 1;
    g.a_type = lt_type(b_dtype), g.b_type = lt_type(a_dtype), g.d_type = lt_type(c_dtype);
    g.op_a = CUBLAS_OP_T, g.op_b = CUBLAS_OP_N;
    g.A = d_b, g.B = d_a, g.D = d_c, g.alpha = 1.0f, g.beta = 0.0f;
    g.fast_accum = use_fast_accum != 0;
    g.bias = d_bias, g.bias_type = d_bias ? lt_type(bias_dtype) : CUDA_R_32F;
    return FP8_OK;
}

/* ---- block-scaled GEMMs (issue 19; docs/architecture.md, block scaling on the device) ---------------
 * c = a @ b^T where a K block of each operand has its own dequantize multiplier (our
 * quantize_blockwise / quantize_mx scales). Two paths, fp8_cuda_set_block_gemm picks; AUTO:
 *
 * CUBLASLT: cuBLASLt applies the block scales (cublasLt.h, cublasLtMatmulMatrixScale_t):
 *   VEC128_32F "a dedicated CUDA_R_32F scaling factor for each 128-element block in the innermost
 *   dimension", BLK128x128_32F "... for each 128x128-element block", VEC32_UE8M0 "CUDA_R_8F_UE8M0
 *   ... the block size is 32 elements". The header leaves the scale tensors' layouts to the cuBLAS
 *   guide; the ones used here are those PyTorch checks before handing its scales to these modes
 *   (aten/src/ATen/native/cuda/ScaledBlas.cpp: a 1x128 scale (M, K/128) with strides (1, M); a
 *   128x128 scale (round_up(K/128, 4), N/128) with strides (1, round_up(K/128, 4))) and, for MX,
 *   the 128x4 tiles of cuBLAS' 1D block scaling layout that Transformer Engine's
 *   nvte_swizzle_scaling_factors and torchao's to_blocked produce (rows padded to 128, K blocks to
 *   4; within a tile, row r and block c at (r % 32) * 16 + (r / 32) * 4 + c).
 *   block_scales_layout_kernel writes them from our row-major scales (one launch per operand, into
 *   a stream-ordered temporary). Device support: 1x128 / 128x128 on sm_90 (NVIDIA's cuBLAS 12.9
 *   post: Hopper; Transformer Engine emulates the recipe with MXFP8 on Blackwell), MXFP8 on sm_100+.
 *   cuBLASLt's A is our b, so A's mode is b's (BLK128x128 for a 128x128 weight) and B's is a's.
 * DEQUANT: the CPU's method on the device: a and b decoded to f32 with their block scales
 *   (fp8_cuda_dequantize_blockwise / _mx: the CPU's decode bit for bit), then the f32 GEMM; the
 *   accumulation order is cuBLASLt's, so it matches the CPU within f32 rounding.
 * AUTO takes CUBLASLT where this build, this device and this cuBLASLt have the mode and falls back
 * to DEQUANT otherwise (a refusal is cached in the plan); fp8_cuda_block_gemm_info reports the
 * path and the reason. */

namespace {

/* One block GEMM: the problem, and our scales with their block shapes. */
struct BlockProblem {
    ScaledProblem sp;
    bool mx;               /* e8m0 scales, 1x32 blocks; else f32, 1x128 (a) and b_rows x 128 (b) */
    const void *sa, *sb;   /* row-major (M, kb) and (ceil(N / b_rows), kb) */
    int64_t b_rows, M, K, N, kb;
    void *c;
    int32_t c_dtype, a_dtype, b_dtype, bias_dtype;
    const void *a, *b, *bias;
};

/* The CUBLASLT path; FP8_ERR_UNSUPPORTED (nothing queued) where cuBLASLt refuses it. */
int32_t block_cublaslt(const char *fn, fp8_cuda_ctx_t handle, Ctx *ctx, const BlockProblem &bp) {
#if !FP8_HAVE_BLOCK_SCALE
    return fp8_fail(FP8_ERR_UNSUPPORTED, fn, "built against cuBLAS %d.%d, which has no block scale modes (12.9+)",
                    CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR);
#else
    LtGemm g = bp.sp.g;
    g.scaling = kBlock;
    int32_t layout_a, layout_b; /* cuBLASLt's A is our b */
    if (bp.mx) {
        g.mode_a = g.mode_b = CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
        layout_a = layout_b = FP8_CUDA_BLOCK_LAYOUT_MX;
    } else {
        g.mode_a = bp.b_rows == 128 ? CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F : CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
        g.mode_b = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
        layout_a = bp.b_rows == 128 ? FP8_CUDA_BLOCK_LAYOUT_BLK128 : FP8_CUDA_BLOCK_LAYOUT_VEC128;
        layout_b = FP8_CUDA_BLOCK_LAYOUT_VEC128;
    }
    const int64_t b_blocks = (bp.N + bp.b_rows - 1) / bp.b_rows;
    const int64_t bytes_a = layout_bytes(layout_a, b_blocks, bp.kb), bytes_b = layout_bytes(layout_b, bp.M, bp.kb);
    const int64_t off_b = round_up(bytes_a, 256);
    if (cached_refusal(ctx, g)) /* a refusal cached by an earlier call: nothing allocated or queued */
        return fp8_fail(FP8_ERR_UNSUPPORTED, fn, "cuBLASLt does not take block scaling for %s (refused before)",
                        bp.sp.what);
    StreamTemp tmp(ctx);
    int32_t st = tmp.alloc(fn, (size_t)(off_b + bytes_b));
    if (st != FP8_OK) return st;
    g.blk_a = tmp.p, g.blk_b = (const char *)tmp.p + off_b;
    GemmPlan *plan = nullptr;
    if ((st = find_plan(fn, ctx, g, bp.sp.what, &plan)) != FP8_OK) return st; /* refused: nothing queued */
    if ((st = launch_layout(fn, ctx, (void *)g.blk_a, bp.sb, layout_a, b_blocks, bp.kb)) != FP8_OK ||
        (st = launch_layout(fn, ctx, (void *)g.blk_b, bp.sa, layout_b, bp.M, bp.kb)) != FP8_OK)
        return st;
    if ((st = run(fn, handle, ctx, g, bp.bias_dtype, nullptr, nullptr, bp.sp.what)) != FP8_OK) return st;
    return tmp.release(fn);
#endif
}

/* The DEQUANT path: f32 decodes of a and b with their block scales, then the f32 GEMM. */
int32_t block_dequant(const char *fn, fp8_cuda_ctx_t handle, Ctx *ctx, const BlockProblem &bp) {
    const int64_t MK = bp.M * bp.K, NK = bp.N * bp.K, MN = bp.M * bp.N;
    const int64_t off_b = round_up(MK * 4, 256), off_c = off_b + round_up(NK * 4, 256);
    const bool f32_c = bp.c_dtype == FP8_DTYPE_F32;
    StreamTemp tmp(ctx);
    int32_t st = tmp.alloc(fn, (size_t)(off_c + (f32_c ? 0 : MN * 4)));
    if (st != FP8_OK) return st;
    float *ad = (float *)tmp.p, *bd = (float *)((char *)tmp.p + off_b);
    float *cd = f32_c ? (float *)bp.c : (float *)((char *)tmp.p + off_c);
    if (bp.mx) {
        st = fp8_cuda_dequantize_mx(handle, ad, FP8_DTYPE_F32, bp.a, bp.a_dtype, (const uint8_t *)bp.sa, bp.M, bp.K, 32);
        if (st == FP8_OK)
            st = fp8_cuda_dequantize_mx(handle, bd, FP8_DTYPE_F32, bp.b, bp.b_dtype, (const uint8_t *)bp.sb, bp.N, bp.K, 32);
    } else {
        st = fp8_cuda_dequantize_blockwise(handle, ad, FP8_DTYPE_F32, bp.a, bp.a_dtype, (const float *)bp.sa, bp.M, bp.K,
                                           1, 128);
        if (st == FP8_OK)
            st = fp8_cuda_dequantize_blockwise(handle, bd, FP8_DTYPE_F32, bp.b, bp.b_dtype, (const float *)bp.sb, bp.N,
                                               bp.K, bp.b_rows, 128);
    }
    if (st != FP8_OK) return st;
    LtGemm g{};
    g.m = bp.N, g.n = bp.M, g.k = bp.K, g.batch_a = 1, g.batch_b = 1;
    g.a_type = g.b_type = g.d_type = CUDA_R_32F;
    g.op_a = CUBLAS_OP_T, g.op_b = CUBLAS_OP_N;
    g.A = bd, g.B = ad, g.D = cd, g.alpha = 1.0f, g.beta = 0.0f;
    g.scaling = kNoScale, g.fast_accum = false;
    g.bias = bp.bias, g.bias_type = bp.bias ? lt_type(bp.bias_dtype) : CUDA_R_32F; /* added in f32 */
    if ((st = run(fn, handle, ctx, g, bp.bias_dtype, nullptr, nullptr, bp.sp.what)) != FP8_OK) return st;
    if (!f32_c && (st = fp8_cuda_convert(handle, bp.c, bp.c_dtype, cd, FP8_DTYPE_F32, MN)) != FP8_OK) return st;
    return tmp.release(fn);
}

/* AUTO / CUBLASLT / DEQUANT, recording the path taken and the reason for a fallback. */
int32_t block_gemm(const char *fn, fp8_cuda_ctx_t handle, Ctx *ctx, const BlockProblem &bp) {
    char why[sizeof ctx->block_gemm_reason] = "";
    const int path = ctx->block_gemm;
    const char *mode = bp.mx ? "MXFP8 (VEC32_UE8M0)" : bp.b_rows == 128 ? "1x128 x 128x128 (VEC128_32F, BLK128x128_32F)"
                                                                         : "1x128 x 1x128 (VEC128_32F)";
    if (path == FP8_CUDA_BLOCK_GEMM_DEQUANT) {
        snprintf(why, sizeof why, "the dequantize path was chosen with fp8_cuda_set_block_gemm");
    } else {
        if (!FP8_HAVE_BLOCK_SCALE) {
            snprintf(why, sizeof why, "%s block scaling: built against cuBLAS %d.%d, which has no block scale modes (12.9+)",
                     mode, CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR);
        } else if (bp.mx && ctx->cc_major < 10) {
            snprintf(why, sizeof why, "%s block scaling needs sm_100 or later; device %d is sm_%d%d", mode, ctx->device,
                     ctx->cc_major, ctx->cc_minor);
        } else if (!bp.mx && ctx->cc_major != 9) {
            snprintf(why, sizeof why, "%s block scaling is a Hopper (sm_90) mode of cuBLASLt; device %d is sm_%d%d",
                     mode, ctx->device, ctx->cc_major, ctx->cc_minor);
        } else {
            const int32_t st = block_cublaslt(fn, handle, ctx, bp);
            if (st != FP8_ERR_UNSUPPORTED) {
                if (st == FP8_OK) ctx->last_block_gemm = FP8_CUDA_BLOCK_GEMM_CUBLASLT, ctx->block_gemm_reason[0] = 0;
                return st;
            }
            snprintf(why, sizeof why, "%s", fp8_cuda_last_error());
        }
        if (path == FP8_CUDA_BLOCK_GEMM_CUBLASLT) return fp8_fail(FP8_ERR_UNSUPPORTED, fn, "%s; %s", why, bp.sp.what);
    }
    const int32_t st = block_dequant(fn, handle, ctx, bp);
    if (st == FP8_OK) {
        ctx->last_block_gemm = FP8_CUDA_BLOCK_GEMM_DEQUANT;
        snprintf(ctx->block_gemm_reason, sizeof ctx->block_gemm_reason, "%s", why);
    }
    return st;
}

}  // namespace

}  // namespace

extern "C" {

FP8_API int32_t fp8_cuda_scaled_mm(fp8_cuda_ctx_t c, void *d_c, int32_t c_dtype, const void *d_a,
                                   int32_t a_dtype, const void *d_b, int32_t b_dtype,
                                   const float *d_scale_a, const float *d_scale_b, const void *d_bias,
                                   int32_t bias_dtype, int64_t M, int64_t K, int64_t N,
                                   int32_t use_fast_accum) {
    static const char fn[] = "fp8_cuda_scaled_mm";
    return guard(fn, [&]() -> int32_t {
        ScaledProblem p;
        int32_t st = scaled_problem(fn, &p, d_c, c_dtype, d_a, a_dtype, d_b, b_dtype, d_scale_a, d_scale_b,
                                    d_bias, bias_dtype, M, K, N, use_fast_accum, "");
        if (st != FP8_OK) return st;
        Ctx *ctx = nullptr;
        st = enter(fn, c, &ctx);
        if (st != FP8_OK) return st;
        p.g.scaling = kTensorwise;
        /* cuBLASLt's A is our b: its scale pointer gets 1/scale_b. */
        return run(fn, c, ctx, p.g, bias_dtype, d_scale_b, d_scale_a, p.what);
    });
}

FP8_API int32_t fp8_cuda_scaled_mm_rowwise(fp8_cuda_ctx_t c, void *d_c, int32_t c_dtype,
                                           const void *d_a, int32_t a_dtype, const void *d_b,
                                           int32_t b_dtype, const float *d_scale_a,
                                           const float *d_scale_b, const void *d_bias,
                                           int32_t bias_dtype, int64_t M, int64_t K, int64_t N,
                                           int32_t use_fast_accum) {
    static const char fn[] = "fp8_cuda_scaled_mm_rowwise";
    return guard(fn, [&]() -> int32_t {
        ScaledProblem p;
        int32_t st = scaled_problem(fn, &p, d_c, c_dtype, d_a, a_dtype, d_b, b_dtype, d_scale_a, d_scale_b,
                                    d_bias, bias_dtype, M, K, N, use_fast_accum, " with row scales");
        if (st != FP8_OK) return st;
        Ctx *ctx = nullptr;
        st = enter(fn, c, &ctx);
        if (st != FP8_OK) return st;
        const int32_t path = ctx->rowwise_gemm;
        if (path != FP8_CUDA_ROWWISE_EPILOGUE) {
            st = rowwise_outer_vec(fn, c, ctx, p.g, d_scale_a, d_scale_b, M, N, bias_dtype, p.what);
            if (st == FP8_OK || path == FP8_CUDA_ROWWISE_OUTER_VEC || st != FP8_ERR_UNSUPPORTED) return st;
        }
        return rowwise_epilogue(fn, c, ctx, p.g, d_c, c_dtype, d_scale_a, d_scale_b, d_bias, bias_dtype, M, N, p.what);
    });
}

FP8_API int32_t fp8_cuda_set_rowwise_gemm(fp8_cuda_ctx_t c, int32_t path) {
    static const char fn[] = "fp8_cuda_set_rowwise_gemm";
    FP8_REQUIRE(c != NULL, fn, "ctx is NULL");
    FP8_REQUIRE(path == FP8_CUDA_ROWWISE_AUTO || path == FP8_CUDA_ROWWISE_OUTER_VEC ||
                    path == FP8_CUDA_ROWWISE_EPILOGUE,
                fn, "path must be 0 (auto), 1 (outer vector) or 2 (epilogue), got %d", (int)path);
    unwrap(c)->rowwise_gemm = path;
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_matmul(fp8_cuda_ctx_t c, void *d_c, int32_t c_dtype, const void *d_a,
                                const void *d_b, int32_t ab_dtype, const void *d_bias,
                                int32_t bias_dtype, int64_t batch_a, int64_t batch_b, int64_t M,
                                int64_t K, int64_t N, int32_t trans_a, int32_t trans_b, float alpha,
                                float beta) {
    static const char fn[] = "fp8_cuda_matmul";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(c_dtype, "c_dtype", fn);
        FP8_REQUIRE_HP(ab_dtype, "ab_dtype", fn);
        FP8_REQUIRE(!(ab_dtype == FP8_DTYPE_F32 && c_dtype == FP8_DTYPE_BF16), fn,
                    "float32 inputs need a float32 c (cuBLASLt has no f32 x f32 -> bf16 GEMM)");
        FP8_REQUIRE(M >= 1 && K >= 1 && N >= 1, fn, "M, K, N must be >= 1, got %lld, %lld, %lld",
                    (long long)M, (long long)K, (long long)N);
        FP8_REQUIRE(batch_a >= 1 && batch_b >= 1 && (batch_a == batch_b || batch_a == 1 || batch_b == 1), fn,
                    "batch_a and batch_b must be equal or 1, got %lld and %lld", (long long)batch_a,
                    (long long)batch_b);
        FP8_REQUIRE(beta == 0.0f || beta == 1.0f, fn, "beta must be 0 or 1, got %g", (double)beta);
        FP8_REQUIRE_PTR(d_c, fn);
        FP8_REQUIRE_PTR(d_a, fn);
        FP8_REQUIRE_PTR(d_b, fn);
        if (d_bias) FP8_REQUIRE_HP(bias_dtype, "bias_dtype", fn);
        Ctx *ctx = nullptr;
        int32_t st = enter(fn, c, &ctx);
        if (st != FP8_OK) return st;
        char what[256];
        snprintf(what, sizeof what, "c (%lld, %lld, %lld) %s <- a%s (%lld, %lld) @ b%s (%lld, %lld) %s",
                 (long long)std::max(batch_a, batch_b), (long long)M, (long long)N, fp8_dtype_name(c_dtype),
                 trans_a ? "^T" : "", (long long)M, (long long)K, trans_b ? "^T" : "", (long long)K,
                 (long long)N, fp8_dtype_name(ab_dtype));
        LtGemm g{};
        g.m = N, g.n = M, g.k = K, g.batch_a = batch_b, g.batch_b = batch_a;
        g.a_type = g.b_type = lt_type(ab_dtype), g.d_type = lt_type(c_dtype);
        g.op_a = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.op_b = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
        g.A = d_b, g.B = d_a, g.D = d_c, g.alpha = alpha, g.beta = beta;
        g.scaling = kNoScale, g.fast_accum = false;
        g.bias = d_bias, g.bias_type = d_bias ? lt_type(bias_dtype) : CUDA_R_32F;
        return run(fn, c, ctx, g, bias_dtype, nullptr, nullptr, what);
    });
}


FP8_API int32_t fp8_cuda_set_block_gemm(fp8_cuda_ctx_t c, int32_t path) {
    static const char fn[] = "fp8_cuda_set_block_gemm";
    FP8_REQUIRE(c != NULL, fn, "ctx is NULL");
    FP8_REQUIRE(path == FP8_CUDA_BLOCK_GEMM_AUTO || path == FP8_CUDA_BLOCK_GEMM_CUBLASLT ||
                    path == FP8_CUDA_BLOCK_GEMM_DEQUANT,
                fn, "path must be 0 (auto), 1 (cuBLASLt scale modes) or 2 (dequantize), got %d", (int)path);
    unwrap(c)->block_gemm = path;
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_block_gemm_info(fp8_cuda_ctx_t c, int32_t *path, char *reason, int64_t reason_cap) {
    static const char fn[] = "fp8_cuda_block_gemm_info";
    FP8_REQUIRE(c != NULL, fn, "ctx is NULL");
    FP8_REQUIRE_PTR(path, fn);
    FP8_REQUIRE(reason == NULL || reason_cap >= 1, fn, "reason_cap must be >= 1 with a reason buffer, got %lld",
                (long long)reason_cap);
    const Ctx *ctx = unwrap(c);
    *path = ctx->last_block_gemm;
    if (reason) snprintf(reason, (size_t)reason_cap, "%s", ctx->block_gemm_reason);
    return FP8_OK;
}

namespace {
int32_t block_entry(const char *fn, fp8_cuda_ctx_t c, bool mx, void *d_c, int32_t c_dtype, const void *d_a,
                    int32_t a_dtype, const void *d_b, int32_t b_dtype, const void *d_scale_a, const void *d_scale_b,
                    int64_t b_block_rows, const void *d_bias, int32_t bias_dtype, int64_t M, int64_t K, int64_t N,
                    int32_t use_fast_accum) {
    BlockProblem bp;
    /* the scale pointers are checked as scaled_mm's (the float cast only names them) */
    int32_t st = scaled_problem(fn, &bp.sp, d_c, c_dtype, d_a, a_dtype, d_b, b_dtype, (const float *)d_scale_a,
                                (const float *)d_scale_b, d_bias, bias_dtype, M, K, N, use_fast_accum,
                                mx ? " with MX (1x32, e8m0) block scales"
                                   : b_block_rows == 128 ? " with 1x128 and 128x128 block scales"
                                                         : " with 1x128 block scales");
    if (st != FP8_OK) return st;
    FP8_REQUIRE(b_block_rows == 1 || b_block_rows == 128, fn, "b_block_rows must be 1 or 128, got %lld",
                (long long)b_block_rows);
    Ctx *ctx = nullptr;
    if ((st = enter(fn, c, &ctx)) != FP8_OK) return st;
    bp.mx = mx, bp.sa = d_scale_a, bp.sb = d_scale_b, bp.b_rows = b_block_rows;
    bp.M = M, bp.K = K, bp.N = N, bp.kb = (K + (mx ? 31 : 127)) / (mx ? 32 : 128);
    bp.c = d_c, bp.c_dtype = c_dtype, bp.a_dtype = a_dtype, bp.b_dtype = b_dtype, bp.bias_dtype = bias_dtype;
    bp.a = d_a, bp.b = d_b, bp.bias = d_bias;
    return block_gemm(fn, c, ctx, bp);
}
}  // namespace

FP8_API int32_t fp8_cuda_scaled_mm_blockwise(fp8_cuda_ctx_t c, void *d_c, int32_t c_dtype, const void *d_a,
                                             int32_t a_dtype, const void *d_b, int32_t b_dtype,
                                             const float *d_scale_a, const float *d_scale_b, int64_t b_block_rows,
                                             const void *d_bias, int32_t bias_dtype, int64_t M, int64_t K, int64_t N,
                                             int32_t use_fast_accum) {
    static const char fn[] = "fp8_cuda_scaled_mm_blockwise";
    return guard(fn, [&]() -> int32_t {
        return block_entry(fn, c, false, d_c, c_dtype, d_a, a_dtype, d_b, b_dtype, d_scale_a, d_scale_b, b_block_rows,
                           d_bias, bias_dtype, M, K, N, use_fast_accum);
    });
}

FP8_API int32_t fp8_cuda_scaled_mm_mx(fp8_cuda_ctx_t c, void *d_c, int32_t c_dtype, const void *d_a, int32_t a_dtype,
                                      const void *d_b, int32_t b_dtype, const uint8_t *d_scale_a,
                                      const uint8_t *d_scale_b, const void *d_bias, int32_t bias_dtype, int64_t M,
                                      int64_t K, int64_t N) {
    static const char fn[] = "fp8_cuda_scaled_mm_mx";
    return guard(fn, [&]() -> int32_t {
        return block_entry(fn, c, true, d_c, c_dtype, d_a, a_dtype, d_b, b_dtype, d_scale_a, d_scale_b, 1, d_bias,
                           bias_dtype, M, K, N, 0);
    });
}

FP8_API int32_t fp8_cuda_block_scales_layout_size(int32_t layout, int64_t rows, int64_t cols, int64_t *nbytes) {
    static const char fn[] = "fp8_cuda_block_scales_layout_size";
    FP8_REQUIRE(layout >= FP8_CUDA_BLOCK_LAYOUT_VEC128 && layout <= FP8_CUDA_BLOCK_LAYOUT_MX, fn,
                "layout must be 0 (VEC128), 1 (BLK128) or 2 (MX), got %d", (int)layout);
    FP8_REQUIRE(rows >= 0 && cols >= 0 && rows <= ((int64_t)1 << 31) && cols <= ((int64_t)1 << 31), fn,
                "rows %lld and cols %lld must be in [0, 2^31]", (long long)rows, (long long)cols);
    FP8_REQUIRE_PTR(nbytes, fn);
    *nbytes = layout_bytes(layout, rows, cols);
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_block_scales_layout(fp8_cuda_ctx_t c, void *d_dst, const void *d_src, int32_t layout,
                                             int64_t rows, int64_t cols) {
    static const char fn[] = "fp8_cuda_block_scales_layout";
    return guard(fn, [&]() -> int32_t {
        int64_t bytes = 0;
        FP8_CHECK(fp8_cuda_block_scales_layout_size(layout, rows, cols, &bytes));
        FP8_REQUIRE_DATA(d_dst, bytes, fn);
        FP8_REQUIRE_DATA(d_src, rows * cols, fn);
        ENTER(fn, c, ctx);
        return launch_layout(fn, ctx, d_dst, d_src, layout, rows, cols);
    });
}

}  // extern "C"
