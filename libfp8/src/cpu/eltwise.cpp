/*
 * eltwise.cpp — fp8_cpu_eltwise / fp8_cpu_eltwise_backward on oneDNN's
 * eltwise primitives. Tensors are viewed as 1-D (n); f32 or bf16 throughout
 * (oneDNN computes in f32 and rounds once to bf16).
 */
#include <cstdint>
#include <cstring>
#include <vector>

#include <vector>

#include "onednn.hpp"

namespace {

using namespace fp8::onednn;

struct EltwiseAlg {
    dnnl::algorithm alg;
    float alpha, beta;
};

/* Our enum -> oneDNN algorithm and its (alpha, beta); only POW and LINEAR
 * take the caller's alpha/beta. */
EltwiseAlg to_onednn(int32_t alg, float alpha, float beta) {
    using A = dnnl::algorithm;
    switch (alg) {
        case FP8_ELTWISE_RELU: return {A::eltwise_relu, 0.0f, 0.0f};
        case FP8_ELTWISE_GELU_TANH: return {A::eltwise_gelu_tanh, 0.0f, 0.0f};
        case FP8_ELTWISE_GELU_ERF: return {A::eltwise_gelu_erf, 0.0f, 0.0f};
        case FP8_ELTWISE_SILU: return {A::eltwise_swish, 1.0f, 0.0f};
        case FP8_ELTWISE_TANH: return {A::eltwise_tanh, 0.0f, 0.0f};
        case FP8_ELTWISE_EXP: return {A::eltwise_exp, 0.0f, 0.0f};
        case FP8_ELTWISE_LOG: return {A::eltwise_log, 0.0f, 0.0f};
        case FP8_ELTWISE_SQRT: return {A::eltwise_sqrt, 0.0f, 0.0f};
        case FP8_ELTWISE_POW: return {A::eltwise_pow, alpha, beta};
        case FP8_ELTWISE_LINEAR: return {A::eltwise_linear, alpha, beta};
        case FP8_ELTWISE_ABS: return {A::eltwise_abs, 0.0f, 0.0f};
        default: return {A::eltwise_logistic, 0.0f, 0.0f}; /* FP8_ELTWISE_SIGMOID */
    }
}

/* Positions and values of src's elements >= 8 (NaN excluded), where
 * gelu(x) = x * Phi(x) rounds to x in f32 (1 - Phi(8) ~ 6e-16); gathered
 * before the primitive runs, so that dst may equal src. Usually empty. */
struct LargeElems {
    std::vector<int64_t> at;
    std::vector<uint32_t> bits;
};

LargeElems gelu_large(const void *src, int32_t dtype, int64_t n) {
    LargeElems l;
    if (dtype == FP8_DTYPE_F32) {
        const float *s = static_cast<const float *>(src);
        for (int64_t i = 0; i < n; ++i)
            if (s[i] >= 8.0f) {
                uint32_t u;
                std::memcpy(&u, &s[i], 4);
                l.at.push_back(i);
                l.bits.push_back(u);
            }
    } else {
        /* bf16 >= 8: sign clear and bits in [0x4100, 0x7F80] (inf in, NaN out) */
        const uint16_t *s = static_cast<const uint16_t *>(src);
        for (int64_t i = 0; i < n; ++i)
            if (s[i] >= 0x4100 && s[i] <= 0x7F80) {
                l.at.push_back(i);
                l.bits.push_back(s[i]);
            }
    }
    return l;
}

void restore_large(void *dst, int32_t dtype, const LargeElems &l) {
    for (size_t k = 0; k < l.at.size(); ++k) {
        if (dtype == FP8_DTYPE_F32)
            std::memcpy(static_cast<float *>(dst) + l.at[k], &l.bits[k], 4);
        else
            static_cast<uint16_t *>(dst)[l.at[k]] = (uint16_t)l.bits[k];
    }
}

bool alg_known(int32_t alg) { return alg >= FP8_ELTWISE_RELU && alg <= FP8_ELTWISE_SIGMOID; }

dnnl::eltwise_forward::primitive_desc forward_pd(const dnnl::memory::desc &md, const EltwiseAlg &e) {
    return eltwise_fwd_pd(e.alg, md, e.alpha, e.beta);
}

Key eltwise_key(const char *op, int64_t n, int32_t dtype, const EltwiseAlg &e) {
    Key key(op);
    key.add(n).add(dtype).add((int64_t)e.alg).add_float(e.alpha).add_float(e.beta);
    return key;
}

/* float16 buffers as f32 (exact) and back (round to nearest even). */
std::vector<float> widen_f16(const void *src, int64_t n) {
    std::vector<float> w((size_t)n);
    const uint16_t *h = static_cast<const uint16_t *>(src);
    for (int64_t i = 0; i < n; ++i) w[(size_t)i] = fp8_f16_to_f32(h[i]);
    return w;
}
void narrow_f16(void *dst, const std::vector<float> &w) {
    uint16_t *h = static_cast<uint16_t *>(dst);
    for (size_t i = 0; i < w.size(); ++i) h[i] = fp8_f32_to_f16(w[i]);
}

}  // namespace

extern "C" FP8_API int32_t fp8_cpu_eltwise(void *dst, const void *src, int32_t dtype, int64_t n,
                                           int32_t alg, float alpha, float beta) {
    static const char *fn = "fp8_cpu_eltwise";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(dst, fn);
        FP8_REQUIRE_PTR(src, fn);
        FP8_REQUIRE(fp8_is_float_any(dtype), fn, "dtype %s (%d) must be float32, bfloat16 or float16",
                    fp8_dtype_name(dtype), dtype);
        FP8_REQUIRE(n >= 0 && n <= FP8_MAX_ELEMS, fn, "n=%lld must be >= 0 and at most 2^46", (long long)n);
        FP8_REQUIRE(alg_known(alg), fn, "unknown alg %d", alg);
        if (n == 0) return FP8_OK;
        if (dtype == FP8_DTYPE_F16) { /* on the exact f32 widening, one rounding to f16 */
            std::vector<float> w = widen_f16(src, n);
            const int32_t r = fp8_cpu_eltwise(w.data(), w.data(), FP8_DTYPE_F32, n, alg, alpha, beta);
            if (r == FP8_OK) narrow_f16(dst, w);
            return r;
        }

        const EltwiseAlg e = to_onednn(alg, alpha, beta);
        const dnnl::memory::desc md({n}, hp_dt(dtype), tag::a);
        dnnl::primitive prim = cached(eltwise_key("eltwise", n, dtype, e), [&] {
            return make_primitive<dnnl::eltwise_forward>("eltwise", forward_pd(md, e),
                                                         "n " + std::to_string(n));
        });
        const bool fix_gelu = kGeluErfOverflowsNearMax && alg == FP8_ELTWISE_GELU_ERF;
        const LargeElems large = fix_gelu ? gelu_large(src, dtype, n) : LargeElems();
        execute(prim, {{DNNL_ARG_SRC, wrap(md, src)}, {DNNL_ARG_DST, wrap(md, dst)}});
        if (fix_gelu) restore_large(dst, dtype, large);
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}

extern "C" FP8_API int32_t fp8_cpu_eltwise_backward(void *dsrc, const void *ddst, const void *src,
                                                    int32_t dtype, int64_t n, int32_t alg,
                                                    float alpha, float beta) {
    static const char *fn = "fp8_cpu_eltwise_backward";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(dsrc, fn);
        FP8_REQUIRE_PTR(ddst, fn);
        FP8_REQUIRE_PTR(src, fn);
        FP8_REQUIRE(fp8_is_float_any(dtype), fn, "dtype %s (%d) must be float32, bfloat16 or float16",
                    fp8_dtype_name(dtype), dtype);
        FP8_REQUIRE(n >= 0 && n <= FP8_MAX_ELEMS, fn, "n=%lld must be >= 0 and at most 2^46", (long long)n);
        FP8_REQUIRE(alg_known(alg), fn, "unknown alg %d", alg);
        if (n == 0) return FP8_OK;
        if (dtype == FP8_DTYPE_F16) { /* on the exact f32 widening, one rounding to f16 */
            std::vector<float> wg = widen_f16(ddst, n), ws = widen_f16(src, n), wd((size_t)n);
            const int32_t r = fp8_cpu_eltwise_backward(wd.data(), wg.data(), ws.data(), FP8_DTYPE_F32, n, alg, alpha, beta);
            if (r == FP8_OK) narrow_f16(dsrc, wd);
            return r;
        }

        const EltwiseAlg e = to_onednn(alg, alpha, beta);
        const dnnl::memory::desc md({n}, hp_dt(dtype), tag::a);
        dnnl::primitive prim = cached(eltwise_key("eltwise_bwd", n, dtype, e), [&] {
            return make_primitive<dnnl::eltwise_backward>(
                "eltwise_backward", eltwise_bwd_pd(e.alg, md, e.alpha, e.beta, forward_pd(md, e)),
                "n " + std::to_string(n));
        });
        execute(prim, {{DNNL_ARG_SRC, wrap(md, src)},
                       {DNNL_ARG_DIFF_DST, wrap(md, ddst)},
                       {DNNL_ARG_DIFF_SRC, wrap(md, dsrc)}});
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}
