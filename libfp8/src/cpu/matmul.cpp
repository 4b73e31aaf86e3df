/*
 * matmul.cpp — fp8_cpu_matmul and fp8_cpu_scaled_mm on oneDNN's matmul.
 *
 * Transposes never move data: op(a) and op(b) are memory descriptors whose
 * strides read the stored matrix the other way round. The epilogue is a chain
 * of post-ops, all in f32 before the one rounding to c's dtype:
 *     c = alpha * acc  [binary mul, runtime scalar]   (only when alpha != 1)
 *         + c_old      [sum]                          (beta == 1)
 *         + bias       [binary add, broadcast over rows]
 * alpha is a runtime scalar operand rather than an oneDNN output scale because
 * oneDNN 2.6 drops from its brgemm kernels to a slower gemm path for runtime
 * output scales, and applies them after the bias argument (scale*(acc+bias)).
 * A runtime alpha lets one cached primitive serve every step of scaled_mm,
 * whose alpha changes whenever the fp8 scales do.
 *
 * scaled_mm decodes fp8 to bf16 (exact) into thread-local scratch and runs the
 * bf16 matmul with alpha = f32(f32(1/scale_a) * f32(1/scale_b)).
 */
#include <cstdint>
#include <cstdio>
#include <string>

#include "fp8_ref.h"
#include "onednn.hpp"

namespace {

using namespace fp8::onednn;

/* op(x) as a (batch, rows, cols) descriptor of a row-major stored matrix:
 * stored (batch, rows, cols), or (batch, cols, rows) when trans. Unbatched
 * problems get plain 2-D descriptors (rows, cols), exactly what a direct
 * oneDNN user would write, so they get the same kernel choice. */
dnnl::memory::desc op_md(bool batched, int64_t batch, int64_t rows, int64_t cols, dt d, bool trans) {
    if (!batched) return dnnl::memory::desc({rows, cols}, d, trans ? dims_t{1, rows} : dims_t{cols, 1});
    const int64_t mat = rows * cols;
    return dnnl::memory::desc({batch, rows, cols}, d,
                              trans ? dims_t{mat, 1, rows} : dims_t{mat, cols, 1});
}

struct Gemm {
    void *c;
    dt c_dt;
    const void *a;
    const void *b;
    dt ab_dt;
    const void *bias; /* NULL or (N) of bias_dt */
    dt bias_dt;
    int64_t batch_a, batch_b, M, K, N;
    bool trans_a, trans_b;
    float alpha;
    bool accumulate; /* beta == 1 */
};

std::string gemm_str(const Gemm &g) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "batch %lld/%lld M %lld K %lld N %lld %s%s ab dt %d c dt %d",
                  (long long)g.batch_a, (long long)g.batch_b, (long long)g.M, (long long)g.K,
                  (long long)g.N, g.trans_a ? "Aᵀ" : "A", g.trans_b ? "Bᵀ" : "B", (int)g.ab_dt,
                  (int)g.c_dt);
    return buf;
}

/* Runs g on oneDNN; c_dt must be a destination oneDNN supports for ab_dt. */
void run_onednn(const Gemm &g) {
    const int64_t batch = g.batch_a > g.batch_b ? g.batch_a : g.batch_b;
    const bool scaled = g.alpha != 1.0f;
    const bool batched = batch > 1;
    const auto a_md = op_md(batched, g.batch_a, g.M, g.K, g.ab_dt, g.trans_a);
    const auto b_md = op_md(batched, g.batch_b, g.K, g.N, g.ab_dt, g.trans_b);
    const auto c_md = op_md(batched, batch, g.M, g.N, g.c_dt, false);
    /* post-op operands: a scalar, and a row broadcast over (batch and) M */
    const dnnl::memory::desc alpha_md = op_md(batched, 1, 1, 1, dt::f32, false);
    const dnnl::memory::desc bias_md = op_md(batched, 1, 1, g.N, g.bias_dt, false);

    Key key("matmul");
    key.add(g.batch_a).add(g.batch_b).add(g.M).add(g.K).add(g.N);
    key.add((int64_t)g.ab_dt).add((int64_t)g.c_dt).add(g.trans_a).add(g.trans_b);
    key.add(scaled).add(g.accumulate).add(g.bias ? (int64_t)g.bias_dt : -1);
    dnnl::primitive prim = cached(key, [&] {
        dnnl::post_ops po;
        if (scaled) po.append_binary(dnnl::algorithm::binary_mul, alpha_md);
        if (g.accumulate) po.append_sum(1.0f);
        if (g.bias) po.append_binary(dnnl::algorithm::binary_add, bias_md);
        dnnl::primitive_attr attr;
        attr.set_post_ops(po);
        return make_primitive<dnnl::matmul>("matmul", matmul_pd(a_md, b_md, c_md, attr),
                                            gemm_str(g));
    });

    float alpha = g.alpha;
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, wrap(a_md, g.a)},
        {DNNL_ARG_WEIGHTS, wrap(b_md, g.b)},
        {DNNL_ARG_DST, wrap(c_md, g.c)},
    };
    int post = 0;
    if (scaled) args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(post) | DNNL_ARG_SRC_1] = wrap(alpha_md, &alpha);
    post += scaled;
    post += g.accumulate;
    if (g.bias) args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(post) | DNNL_ARG_SRC_1] = wrap(bias_md, g.bias);
    execute(prim, args);
}

/* c = alpha * 0 + beta * c + bias: the K == 0 case, which oneDNN rejects. */
void run_empty_k(const Gemm &g, int32_t c_dtype, int32_t bias_dtype) {
    const int64_t batch = g.batch_a > g.batch_b ? g.batch_a : g.batch_b;
    for (int64_t i = 0; i < batch * g.M; ++i)
        for (int64_t n = 0; n < g.N; ++n) {
            const int64_t at = i * g.N + n;
            float v = g.accumulate ? fp8_load_hp(g.c, c_dtype, at) : 0.0f;
            if (g.bias) v += fp8_load_hp(g.bias, bias_dtype, n);
            fp8_store_hp(g.c, c_dtype, at, v);
        }
}

/* f32 x f32 -> bf16 is not a oneDNN 2.6 matmul: compute into f32 scratch
 * (holding c_old when accumulating) and round once to bf16. */
void run_via_f32(Gemm g) {
    const int64_t batch = g.batch_a > g.batch_b ? g.batch_a : g.batch_b;
    const int64_t n = batch * g.M * g.N;
    float *tmp = scratch_as<float>(0, (size_t)n);
    uint16_t *c = static_cast<uint16_t *>(g.c);
    if (g.accumulate)
        for (int64_t i = 0; i < n; ++i) tmp[i] = fp8_bf16_to_f32(c[i]);
    g.c = tmp;
    g.c_dt = dt::f32;
    run_onednn(g);
    for (int64_t i = 0; i < n; ++i) c[i] = fp8_f32_to_bf16(tmp[i]);
}

void run_gemm(const Gemm &g, int32_t c_dtype, int32_t bias_dtype) {
    if (g.M == 0 || g.N == 0) return;
    if (g.K == 0)
        run_empty_k(g, c_dtype, bias_dtype);
    else if (g.ab_dt == dt::f32 && g.c_dt == dt::bf16)
        run_via_f32(g);
    else
        run_onednn(g);
}

/* Shared checks of the (M, K, N) problem; returns FP8_OK or the failure. */
int32_t check_problem(const char *fn, int64_t batch_a, int64_t batch_b, int64_t M, int64_t K,
                      int64_t N) {
    FP8_REQUIRE(M >= 0 && K >= 0 && N >= 0, fn, "M=%lld, K=%lld, N=%lld must be >= 0",
                (long long)M, (long long)K, (long long)N);
    FP8_REQUIRE(batch_a >= 1 && batch_b >= 1, fn, "batch_a=%lld, batch_b=%lld must be >= 1",
                (long long)batch_a, (long long)batch_b);
    FP8_REQUIRE(batch_a == batch_b || batch_a == 1 || batch_b == 1, fn,
                "batch_a=%lld and batch_b=%lld must be equal or one of them 1",
                (long long)batch_a, (long long)batch_b);
    const int64_t batch = batch_a > batch_b ? batch_a : batch_b;
    const int64_t d3[3][3] = {{batch_a, M, K}, {batch_b, K, N}, {batch, M, N}};
    for (const auto &d : d3)
        FP8_REQUIRE(numel(d, 3) >= 0, fn, "size (%lld, %lld, %lld) overflows int64",
                    (long long)d[0], (long long)d[1], (long long)d[2]);
    return FP8_OK;
}

/* bf16 bits of every fp8 byte, from the scalar reference decoder (exact:
 * every fp8 value is a bf16 value; NaN stays NaN, e5m2 inf stays inf). */
struct DecodeTable {
    uint16_t bf16[256];
    explicit DecodeTable(bool e4m3) {
        for (int i = 0; i < 256; ++i) {
            const uint8_t v = (uint8_t)i;
            bf16[i] = fp8_f32_to_bf16(e4m3 ? fp8_ref_e4m3fn_to_f32(v) : fp8_ref_e5m2_to_f32(v));
        }
    }
};

const uint16_t *decode_table(int32_t fp8_dtype) {
    static const DecodeTable e4m3(true), e5m2(false);
    return fp8_dtype == FP8_DTYPE_E4M3FN ? e4m3.bf16 : e5m2.bf16;
}

void decode_to_bf16(uint16_t *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype) {
    const uint16_t *table = decode_table(fp8_dtype);
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; ++i) dst[i] = table[src[i]];
}

}  // namespace

extern "C" FP8_API int32_t fp8_cpu_matmul(void *c, int32_t c_dtype, const void *a,
                                          const void *b, int32_t ab_dtype, const void *bias,
                                          int32_t bias_dtype, int64_t batch_a, int64_t batch_b,
                                          int64_t M, int64_t K, int64_t N, int32_t trans_a,
                                          int32_t trans_b, float alpha, float beta) {
    static const char *fn = "fp8_cpu_matmul";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(c, fn);
        FP8_REQUIRE_PTR(a, fn);
        FP8_REQUIRE_PTR(b, fn);
        FP8_REQUIRE(fp8_is_float_hp(ab_dtype), fn, "ab_dtype %s (%d) must be float32 or bfloat16",
                    fp8_dtype_name(ab_dtype), ab_dtype);
        FP8_REQUIRE(fp8_is_float_hp(c_dtype), fn, "c_dtype %s (%d) must be float32 or bfloat16",
                    fp8_dtype_name(c_dtype), c_dtype);
        FP8_REQUIRE(!bias || fp8_is_float_hp(bias_dtype), fn,
                    "bias_dtype %s (%d) must be float32 or bfloat16", fp8_dtype_name(bias_dtype),
                    bias_dtype);
        FP8_REQUIRE(beta == 0.0f || beta == 1.0f, fn, "beta=%g must be 0 or 1", (double)beta);
        const int32_t st = check_problem(fn, batch_a, batch_b, M, K, N);
        if (st != FP8_OK) return st;

        Gemm g;
        g.c = c; g.c_dt = hp_dt(c_dtype); g.a = a; g.b = b; g.ab_dt = hp_dt(ab_dtype);
        g.bias = bias; g.bias_dt = hp_dt(bias_dtype);
        g.batch_a = batch_a; g.batch_b = batch_b; g.M = M; g.K = K; g.N = N;
        g.trans_a = trans_a != 0; g.trans_b = trans_b != 0;
        g.alpha = alpha; g.accumulate = beta == 1.0f;
        run_gemm(g, c_dtype, bias_dtype);
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}

extern "C" FP8_API int32_t fp8_cpu_scaled_mm(void *c, int32_t c_dtype, const void *a,
                                             int32_t a_dtype, const void *b, int32_t b_dtype,
                                             const float *scale_a, const float *scale_b,
                                             const void *bias, int32_t bias_dtype, int64_t M,
                                             int64_t K, int64_t N, int32_t trans_a,
                                             int32_t trans_b) {
    static const char *fn = "fp8_cpu_scaled_mm";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(c, fn);
        FP8_REQUIRE_PTR(a, fn);
        FP8_REQUIRE_PTR(b, fn);
        FP8_REQUIRE_PTR(scale_a, fn);
        FP8_REQUIRE_PTR(scale_b, fn);
        FP8_REQUIRE(fp8_is_fp8(a_dtype), fn, "a_dtype %s (%d) must be float8_e4m3fn or float8_e5m2",
                    fp8_dtype_name(a_dtype), a_dtype);
        FP8_REQUIRE(fp8_is_fp8(b_dtype), fn, "b_dtype %s (%d) must be float8_e4m3fn or float8_e5m2",
                    fp8_dtype_name(b_dtype), b_dtype);
        FP8_REQUIRE(fp8_is_float_hp(c_dtype), fn, "c_dtype %s (%d) must be float32 or bfloat16",
                    fp8_dtype_name(c_dtype), c_dtype);
        FP8_REQUIRE(!bias || fp8_is_float_hp(bias_dtype), fn,
                    "bias_dtype %s (%d) must be float32 or bfloat16", fp8_dtype_name(bias_dtype),
                    bias_dtype);
        const int32_t st = check_problem(fn, 1, 1, M, K, N);
        if (st != FP8_OK) return st;

        /* torchao hands _scaled_mm reciprocal scales computed in f32. */
        const float inv_a = 1.0f / *scale_a;
        const float inv_b = 1.0f / *scale_b;
        const float alpha = inv_a * inv_b;

        uint16_t *a16 = scratch_as<uint16_t>(1, (size_t)(M * K));
        uint16_t *b16 = scratch_as<uint16_t>(2, (size_t)(K * N));
        decode_to_bf16(a16, static_cast<const uint8_t *>(a), M * K, a_dtype);
        decode_to_bf16(b16, static_cast<const uint8_t *>(b), K * N, b_dtype);

        Gemm g;
        g.c = c; g.c_dt = hp_dt(c_dtype); g.a = a16; g.b = b16; g.ab_dt = dt::bf16;
        g.bias = bias; g.bias_dt = hp_dt(bias_dtype);
        g.batch_a = 1; g.batch_b = 1; g.M = M; g.K = K; g.N = N;
        g.trans_a = trans_a != 0; g.trans_b = trans_b != 0;
        g.alpha = alpha; g.accumulate = false;
        run_gemm(g, c_dtype, bias_dtype);
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}
