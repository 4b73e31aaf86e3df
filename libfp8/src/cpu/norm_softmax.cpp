/*
 * norm_softmax.cpp — softmax / log-softmax and layer norm (forward and
 * backward) along the last axis of a (rows, cols) matrix, on oneDNN.
 *
 * Layer norm statistics: our API keeps (mean, rstd) with rstd = 1/sqrt(var+eps),
 * oneDNN keeps (mean, variance). Forward writes oneDNN's variance into the
 * rstd buffer and converts it in place; backward hands oneDNN
 * var = 1/rstd^2 with epsilon 0, so it recovers the same rstd (to ~1 ulp)
 * without being told the forward eps. oneDNN takes gamma/beta and returns
 * dgamma/dbeta in f32; bf16 parameters go through f32 scratch.
 */
#include <cmath>
#include <cstdint>
#include <string>

#include "onednn.hpp"

namespace {

using namespace fp8::onednn;

int32_t check_rows_cols(const char *fn, int64_t rows, int64_t cols, int64_t min_cols) {
    FP8_REQUIRE(rows >= 0 && cols >= min_cols, fn, "rows=%lld must be >= 0 and cols=%lld >= %lld",
                (long long)rows, (long long)cols, (long long)min_cols);
    int64_t n;
    FP8_REQUIRE(mul_ok(rows, cols, &n) && n <= FP8_MAX_ELEMS, fn, "rows=%lld * cols=%lld overflows int64 or is more than 2^46 elements",
                (long long)rows, (long long)cols);
    return FP8_OK;
}

dnnl::algorithm softmax_alg(bool log) {
    return log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate;
}

std::string rc_str(int64_t rows, int64_t cols) {
    return std::to_string(rows) + "x" + std::to_string(cols);
}

/* (cols) params of dtype as f32: the caller's pointer when already f32. */
const float *params_f32(const void *p, int32_t dtype, int64_t cols, int slot) {
    if (dtype == FP8_DTYPE_F32) return static_cast<const float *>(p);
    float *out = scratch_as<float>(slot, (size_t)cols);
    const uint16_t *h = static_cast<const uint16_t *>(p);
    for (int64_t i = 0; i < cols; ++i) out[i] = fp8_bf16_to_f32(h[i]);
    return out;
}

void store_params(void *dst, int32_t dtype, const float *src, int64_t cols) {
    for (int64_t i = 0; i < cols; ++i) fp8_store_hp(dst, dtype, i, src[i]);
}

dnnl::normalization_flags lnorm_flags(bool scale, bool shift) {
    auto f = dnnl::normalization_flags::none;
    if (scale) f |= dnnl::normalization_flags::use_scale;
    if (shift) f |= dnnl::normalization_flags::use_shift;
    return f;
}


}  // namespace

extern "C" FP8_API int32_t fp8_cpu_softmax(void *dst, const void *src, int32_t dtype,
                                           int64_t rows, int64_t cols, int32_t log) {
    static const char *fn = "fp8_cpu_softmax";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(dst, fn);
        FP8_REQUIRE_PTR(src, fn);
        FP8_REQUIRE(fp8_is_float_hp(dtype), fn, "dtype %s (%d) must be float32 or bfloat16",
                    fp8_dtype_name(dtype), dtype);
        int32_t st = check_rows_cols(fn, rows, cols, 0);
        if (st != FP8_OK) return st;
        if (rows == 0 || cols == 0) return FP8_OK;

        const dnnl::memory::desc md({rows, cols}, hp_dt(dtype), tag::ab);
        Key key("softmax");
        key.add(rows).add(cols).add(dtype).add(log != 0);
        dnnl::primitive prim = cached(key, [&] {
            return make_primitive<softmax_forward>(
                "softmax", softmax_fwd_pd(softmax_alg(log != 0), md, 1), rc_str(rows, cols));
        });
        execute(prim, {{DNNL_ARG_SRC, wrap(md, src)}, {DNNL_ARG_DST, wrap(md, dst)}});
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}

extern "C" FP8_API int32_t fp8_cpu_softmax_backward(void *dsrc, const void *ddst, const void *dst,
                                                    int32_t dtype, int64_t rows, int64_t cols,
                                                    int32_t log) {
    static const char *fn = "fp8_cpu_softmax_backward";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(dsrc, fn);
        FP8_REQUIRE_PTR(ddst, fn);
        FP8_REQUIRE_PTR(dst, fn);
        FP8_REQUIRE(fp8_is_float_hp(dtype), fn, "dtype %s (%d) must be float32 or bfloat16",
                    fp8_dtype_name(dtype), dtype);
        int32_t st = check_rows_cols(fn, rows, cols, 0);
        if (st != FP8_OK) return st;
        if (rows == 0 || cols == 0) return FP8_OK;

        const dnnl::memory::desc md({rows, cols}, hp_dt(dtype), tag::ab);
        Key key("softmax_bwd");
        key.add(rows).add(cols).add(dtype).add(log != 0);
        dnnl::primitive prim = cached(key, [&] {
            const auto alg = softmax_alg(log != 0);
            return make_primitive<softmax_backward>(
                "softmax_backward", softmax_bwd_pd(alg, md, 1, softmax_fwd_pd(alg, md, 1)),
                rc_str(rows, cols));
        });
        execute(prim, {{DNNL_ARG_DST, wrap(md, dst)},
                       {DNNL_ARG_DIFF_DST, wrap(md, ddst)},
                       {DNNL_ARG_DIFF_SRC, wrap(md, dsrc)}});
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}

extern "C" FP8_API int32_t fp8_cpu_layer_norm(void *dst, float *mean, float *rstd, const void *src,
                                              const void *gamma, const void *beta, int32_t dtype,
                                              int64_t rows, int64_t cols, float eps) {
    static const char *fn = "fp8_cpu_layer_norm";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(dst, fn);
        FP8_REQUIRE_PTR(mean, fn);
        FP8_REQUIRE_PTR(rstd, fn);
        FP8_REQUIRE_PTR(src, fn);
        FP8_REQUIRE(fp8_is_float_hp(dtype), fn, "dtype %s (%d) must be float32 or bfloat16",
                    fp8_dtype_name(dtype), dtype);
        FP8_REQUIRE(eps >= 0.0f && std::isfinite(eps), fn, "eps=%g must be finite and >= 0",
                    (double)eps);
        int32_t st = check_rows_cols(fn, rows, cols, 1);
        if (st != FP8_OK) return st;
        if (rows == 0) return FP8_OK;

        const dnnl::memory::desc data_md({rows, cols}, hp_dt(dtype), tag::ab);
        const dnnl::memory::desc stat_md({rows}, dt::f32, tag::a);
        const dnnl::memory::desc param_md({cols}, dt::f32, tag::a);
        const auto flags = lnorm_flags(gamma != nullptr, beta != nullptr);
        Key key("layer_norm");
        key.add(rows).add(cols).add(dtype).add_float(eps).add((int64_t)flags);
        dnnl::primitive prim = cached(key, [&] {
            return make_primitive<dnnl::layer_normalization_forward>(
                "layer_norm", lnorm_fwd_pd(data_md, stat_md, eps, flags), rc_str(rows, cols));
        });

        float *var = rstd; /* oneDNN's variance, turned into rstd below */
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(data_md, src)},
                                                   {DNNL_ARG_DST, wrap(data_md, dst)},
                                                   {DNNL_ARG_MEAN, wrap(stat_md, mean)},
                                                   {DNNL_ARG_VARIANCE, wrap(stat_md, var)}};
        if (gamma) args[DNNL_ARG_SCALE] = wrap(param_md, params_f32(gamma, dtype, cols, 0));
        if (beta) args[DNNL_ARG_SHIFT] = wrap(param_md, params_f32(beta, dtype, cols, 1));
        execute(prim, args);
        for (int64_t i = 0; i < rows; ++i) rstd[i] = 1.0f / std::sqrt(var[i] + eps);
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}

extern "C" FP8_API int32_t fp8_cpu_layer_norm_backward(void *dsrc, void *dgamma, void *dbeta,
                                                       const void *ddst, const void *src,
                                                       const float *mean, const float *rstd,
                                                       const void *gamma, int32_t dtype,
                                                       int64_t rows, int64_t cols) {
    static const char *fn = "fp8_cpu_layer_norm_backward";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(dsrc, fn);
        FP8_REQUIRE_PTR(ddst, fn);
        FP8_REQUIRE_PTR(src, fn);
        FP8_REQUIRE_PTR(mean, fn);
        FP8_REQUIRE_PTR(rstd, fn);
        FP8_REQUIRE(fp8_is_float_hp(dtype), fn, "dtype %s (%d) must be float32 or bfloat16",
                    fp8_dtype_name(dtype), dtype);
        int32_t st = check_rows_cols(fn, rows, cols, 1);
        if (st != FP8_OK) return st;
        if (rows == 0) {
            /* no rows: the parameter gradients are zero sums */
            for (int64_t i = 0; i < cols; ++i) {
                if (dgamma) fp8_store_hp(dgamma, dtype, i, 0.0f);
                if (dbeta) fp8_store_hp(dbeta, dtype, i, 0.0f);
            }
            return FP8_OK;
        }

        const dnnl::memory::desc data_md({rows, cols}, hp_dt(dtype), tag::ab);
        const dnnl::memory::desc stat_md({rows}, dt::f32, tag::a);
        const dnnl::memory::desc param_md({cols}, dt::f32, tag::a);
        /* Always the full backward (scale and shift): one code path, and the
         * parameter gradients are a small part of the work. Without gamma
         * the scale is ones. */
        const auto flags = lnorm_flags(true, true);
        Key key("layer_norm_bwd");
        key.add(rows).add(cols).add(dtype);
        dnnl::primitive prim = cached(key, [&] {
            return make_primitive<dnnl::layer_normalization_backward>(
                "layer_norm_backward",
                lnorm_bwd_pd(data_md, stat_md, 0.0f, flags,
                             lnorm_fwd_pd(data_md, stat_md, 0.0f, flags)),
                rc_str(rows, cols));
        });

        const float *g32;
        if (gamma) {
            g32 = params_f32(gamma, dtype, cols, 0);
        } else {
            float *ones = scratch_as<float>(0, (size_t)cols);
            for (int64_t i = 0; i < cols; ++i) ones[i] = 1.0f;
            g32 = ones;
        }
        float *var = scratch_as<float>(1, (size_t)rows);
        for (int64_t i = 0; i < rows; ++i) var[i] = 1.0f / (rstd[i] * rstd[i]);
        float *dparams = scratch_as<float>(2, (size_t)(2 * cols));
        float *dg32 = dtype == FP8_DTYPE_F32 && dgamma ? static_cast<float *>(dgamma) : dparams;
        float *db32 = dtype == FP8_DTYPE_F32 && dbeta ? static_cast<float *>(dbeta) : dparams + cols;

        execute(prim, {{DNNL_ARG_SRC, wrap(data_md, src)},
                       {DNNL_ARG_DIFF_DST, wrap(data_md, ddst)},
                       {DNNL_ARG_MEAN, wrap(stat_md, mean)},
                       {DNNL_ARG_VARIANCE, wrap(stat_md, var)},
                       {DNNL_ARG_SCALE, wrap(param_md, g32)},
                       {DNNL_ARG_SHIFT, wrap(param_md, g32)}, /* unused by backward */
                       {DNNL_ARG_DIFF_SRC, wrap(data_md, dsrc)},
                       {DNNL_ARG_DIFF_SCALE, wrap(param_md, dg32)},
                       {DNNL_ARG_DIFF_SHIFT, wrap(param_md, db32)}});
        if (dgamma && dtype == FP8_DTYPE_BF16) store_params(dgamma, dtype, dg32, cols);
        if (dbeta && dtype == FP8_DTYPE_BF16) store_params(dbeta, dtype, db32, cols);
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}
