/*
 * binary_reduce.cpp — fp8_cpu_binary (broadcasting elementwise a op b) and
 * fp8_cpu_reduce (sum/mean/max/min over dims) on oneDNN.
 *
 * oneDNN 2.6's binary primitive needs src0 shaped like dst and broadcasts only
 * src1. So: a full -> binary(a, b); b full and op commutative -> binary(b, a);
 * b full and op sub -> binary(b, a) then *-1 (exact: rounding is symmetric);
 * otherwise (div with a broadcast, or both broadcast) a plain loop.
 * Both paths compute in f32 and round once to the dtype.
 *
 * Reductions always write an f32 result (oneDNN accumulates in f32) and round
 * once to bf16 afterwards, so a bf16 mean is not a mean of rounded sums.
 * Sum and mean over one contiguous block of dims (a bias gradient: the sum
 * over dim 0) run on our column-sum kernel (colsum.c), not on oneDNN, whose
 * 2.6 release runs them as a reference loop; the mean divides the f32 sum by
 * the count, as oneDNN's reference reduction does.
 */
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fp8_ref.h"
#include "onednn.hpp"

extern "C" void fp8_cpu_colsum_f32(float *dst, const void *src, int32_t dtype, int64_t outer,
                                   int64_t R, int64_t C);

namespace {

using namespace fp8::onednn;

/* When the reduced dims (dst dim 1, src dim > 1) form one contiguous block,
 * src is (outer, R, C) with that block as R: sets those and returns true. */
bool as_colsum(const int64_t *dst_dims, const int64_t *src_dims, int ndim, int64_t *outer,
               int64_t *R, int64_t *C) {
    int first = -1, last = -1;
    for (int d = 0; d < ndim; ++d)
        if (dst_dims[d] != src_dims[d]) {
            if (first < 0) first = d;
            last = d;
        }
    if (first < 0) return false;
    *outer = *R = *C = 1;
    for (int d = 0; d < ndim; ++d) {
        if (d < first) *outer *= src_dims[d];
        else if (d > last) *C *= src_dims[d];
        else if (dst_dims[d] != 1 && src_dims[d] != 1) return false; /* kept dim inside the block */
        else *R *= src_dims[d];
    }
    return true;
}

/* Row-major dense strides of dims. */
dims_t dense_strides(const int64_t *dims, int ndim) {
    dims_t s(ndim);
    int64_t acc = 1;
    for (int d = ndim - 1; d >= 0; --d) {
        s[d] = acc;
        acc *= dims[d] > 0 ? dims[d] : 1;
    }
    return s;
}

dnnl::memory::desc dense_md(const int64_t *dims, int ndim, dt d) {
    return dnnl::memory::desc(dims_t(dims, dims + ndim), d, dense_strides(dims, ndim));
}

using fp8dims::broadcastable;
using fp8dims::check_dims;
using fp8dims::check_reduce_shape;
using fp8dims::same_dims;

dnnl::algorithm binary_alg(int32_t alg) {
    using A = dnnl::algorithm;
    switch (alg) {
        case FP8_BINARY_ADD: return A::binary_add;
        case FP8_BINARY_SUB: return A::binary_sub;
        case FP8_BINARY_MUL: return A::binary_mul;
        case FP8_BINARY_DIV: return A::binary_div;
        case FP8_BINARY_MAX: return A::binary_max;
        default: return A::binary_min;
    }
}

/* dst = src0 op src1 (src0 shaped like dst), optionally negated afterwards. */
void binary_onednn(void *dst, const void *src0, const int64_t *src0_dims, const void *src1,
                   const int64_t *src1_dims, int32_t dtype, int ndim, int32_t alg, bool negate) {
    const dt d = hp_dt(dtype);
    const auto md0 = dense_md(src0_dims, ndim, d);
    const auto md1 = dense_md(src1_dims, ndim, d);
    Key key("binary");
    key.add(ndim).add(src0_dims, ndim).add(src1_dims, ndim).add(dtype).add(alg).add(negate);
    dnnl::primitive prim = cached(key, [&] {
        dnnl::primitive_attr attr;
        if (negate) {
            dnnl::post_ops po;
            append_eltwise(po, dnnl::algorithm::eltwise_linear, -1.0f, 0.0f);
            attr.set_post_ops(po);
        }
        return make_primitive<dnnl::binary>(
            "binary", binary_pd(binary_alg(alg), md0, md1, md0, attr),
            dims_str(src0_dims, ndim) + " op " + dims_str(src1_dims, ndim));
    });
    execute(prim, {{DNNL_ARG_SRC_0, wrap(md0, src0)},
                   {DNNL_ARG_SRC_1, wrap(md1, src1)},
                   {DNNL_ARG_DST, wrap(md0, dst)}});
}

inline float apply(int32_t alg, float x, float y) { return fp8_ref_binary(alg, x, y); }

/* General broadcasting: both operands read through strides that are 0 along
 * their broadcast dims. Rows of the last dim are the unit of work. */
template <int32_t DT>
void binary_loop_typed(void *dst, const int64_t *dst_dims, const void *a, const int64_t *a_dims,
                       const void *b, const int64_t *b_dims, int ndim, int32_t alg) {
    const dims_t ad = dense_strides(a_dims, ndim), bd = dense_strides(b_dims, ndim);
    int64_t as[8], bs[8];
    for (int d = 0; d < ndim; ++d) {
        as[d] = a_dims[d] == 1 ? 0 : ad[d];
        bs[d] = b_dims[d] == 1 ? 0 : bd[d];
    }
    const int last = ndim - 1;
    const int64_t inner = dst_dims[last];
    const int64_t rows = numel(dst_dims, ndim) / inner;
#pragma omp parallel for schedule(static) if (rows * inner >= (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
        int64_t rem = r, ao = 0, bo = 0;
        for (int d = last - 1; d >= 0; --d) {
            const int64_t i = rem % dst_dims[d];
            rem /= dst_dims[d];
            ao += i * as[d];
            bo += i * bs[d];
        }
        for (int64_t j = 0; j < inner; ++j) {
            const float x = fp8_load_hp(a, DT, ao + j * as[last]);
            const float y = fp8_load_hp(b, DT, bo + j * bs[last]);
            fp8_store_hp(dst, DT, r * inner + j, apply(alg, x, y));
        }
    }
}

int32_t reduce_empty(const char *fn, void *dst, int64_t n_dst, int32_t dtype, int32_t alg) {
    FP8_REQUIRE(alg == FP8_REDUCE_SUM || alg == FP8_REDUCE_MEAN, fn,
                "max/min over an empty dim has no value");
    const float v = alg == FP8_REDUCE_SUM ? 0.0f : NAN;
    for (int64_t i = 0; i < n_dst; ++i) fp8_store_hp(dst, dtype, i, v);
    return FP8_OK;
}

/* A sum over trailing dims (C == 1) goes to oneDNN, which has a JIT kernel
 * for it; every other column count is ours (oneDNN 2.6 runs ref:any there). */
constexpr int64_t kColsumMinCols = 2;

/* bf16 dst <- the f32 result, rounded once; an f32 dst already holds it. */
void round_out(void *dst, const float *out, int32_t dtype, int64_t n) {
    if (dtype != FP8_DTYPE_BF16) return;
    uint16_t *d16 = static_cast<uint16_t *>(dst);
    for (int64_t i = 0; i < n; ++i) d16[i] = fp8_f32_to_bf16(out[i]);
}

dnnl::algorithm reduce_alg(int32_t alg) {
    using A = dnnl::algorithm;
    switch (alg) {
        case FP8_REDUCE_SUM: return A::reduction_sum;
        case FP8_REDUCE_MEAN: return A::reduction_mean;
        case FP8_REDUCE_MAX: return A::reduction_max;
        default: return A::reduction_min;
    }
}

}  // namespace

extern "C" FP8_API int32_t fp8_cpu_binary(void *dst, const int64_t *dst_dims, const void *a,
                                          const int64_t *a_dims, const void *b,
                                          const int64_t *b_dims, int32_t dtype, int32_t ndim,
                                          int32_t alg) {
    static const char *fn = "fp8_cpu_binary";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(dst, fn);
        FP8_REQUIRE_PTR(dst_dims, fn);
        FP8_REQUIRE_PTR(a, fn);
        FP8_REQUIRE_PTR(a_dims, fn);
        FP8_REQUIRE_PTR(b, fn);
        FP8_REQUIRE_PTR(b_dims, fn);
        FP8_REQUIRE(fp8_is_float_any(dtype), fn, "dtype %s (%d) must be float32, bfloat16 or float16",
                    fp8_dtype_name(dtype), dtype);
        FP8_REQUIRE(ndim >= 1 && ndim <= 8, fn, "ndim=%d must be in 1..8", ndim);
        FP8_REQUIRE(alg >= FP8_BINARY_ADD && alg <= FP8_BINARY_MIN, fn, "unknown alg %d", alg);
        int32_t st;
        if ((st = check_dims(fn, "dst_dims", dst_dims, ndim)) != FP8_OK) return st;
        if ((st = check_dims(fn, "a_dims", a_dims, ndim)) != FP8_OK) return st;
        if ((st = check_dims(fn, "b_dims", b_dims, ndim)) != FP8_OK) return st;
        FP8_REQUIRE(broadcastable(a_dims, dst_dims, ndim) && broadcastable(b_dims, dst_dims, ndim),
                    fn, "a %s and b %s do not broadcast to dst %s (each dim must equal dst's or be 1)",
                    dims_str(a_dims, ndim).c_str(), dims_str(b_dims, ndim).c_str(),
                    dims_str(dst_dims, ndim).c_str());
        if (numel(dst_dims, ndim) == 0) return FP8_OK;
        if (dtype == FP8_DTYPE_F16) { /* in f32 (exact widening), one rounding to f16 */
            const int64_t na = numel(a_dims, ndim), nb = numel(b_dims, ndim), nd = numel(dst_dims, ndim);
            std::vector<float> va((size_t)na), vb((size_t)nb), vd((size_t)nd);
            float *wa = va.data(), *wb = vb.data(), *wd = vd.data();
            for (int64_t i = 0; i < na; ++i) wa[i] = fp8_f16_to_f32(static_cast<const uint16_t *>(a)[i]);
            for (int64_t i = 0; i < nb; ++i) wb[i] = fp8_f16_to_f32(static_cast<const uint16_t *>(b)[i]);
            const int32_t r = fp8_cpu_binary(wd, dst_dims, wa, a_dims, wb, b_dims, FP8_DTYPE_F32, ndim, alg);
            if (r != FP8_OK) return r;
            for (int64_t i = 0; i < nd; ++i) static_cast<uint16_t *>(dst)[i] = fp8_f32_to_f16(wd[i]);
            return FP8_OK;
        }

        const bool commutative = alg == FP8_BINARY_ADD || alg == FP8_BINARY_MUL ||
                                 alg == FP8_BINARY_MAX || alg == FP8_BINARY_MIN;
        if (same_dims(a_dims, dst_dims, ndim))
            binary_onednn(dst, a, a_dims, b, b_dims, dtype, ndim, alg, false);
        else if (same_dims(b_dims, dst_dims, ndim) && commutative)
            binary_onednn(dst, b, b_dims, a, a_dims, dtype, ndim, alg, false);
        else if (same_dims(b_dims, dst_dims, ndim) && alg == FP8_BINARY_SUB)
            binary_onednn(dst, b, b_dims, a, a_dims, dtype, ndim, alg, true);
        else if (dtype == FP8_DTYPE_F32)
            binary_loop_typed<FP8_DTYPE_F32>(dst, dst_dims, a, a_dims, b, b_dims, ndim, alg);
        else
            binary_loop_typed<FP8_DTYPE_BF16>(dst, dst_dims, a, a_dims, b, b_dims, ndim, alg);
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}

extern "C" FP8_API int32_t fp8_cpu_reduce(void *dst, const int64_t *dst_dims, const void *src,
                                          const int64_t *src_dims, int32_t dtype, int32_t ndim,
                                          int32_t alg) {
    static const char *fn = "fp8_cpu_reduce";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(dst, fn);
        FP8_REQUIRE_PTR(dst_dims, fn);
        FP8_REQUIRE_PTR(src, fn);
        FP8_REQUIRE_PTR(src_dims, fn);
        FP8_REQUIRE(fp8_is_float_any(dtype), fn, "dtype %s (%d) must be float32, bfloat16 or float16",
                    fp8_dtype_name(dtype), dtype);
        const int32_t st = check_reduce_shape(fn, dst_dims, src_dims, ndim, alg);
        if (st != FP8_OK) return st;
        if (dtype == FP8_DTYPE_F16) { /* reduce the exact f32 widening, round once to f16 */
            const int64_t ns = numel(src_dims, ndim), nd = numel(dst_dims, ndim);
            std::vector<float> vs((size_t)ns), vd((size_t)nd);
            float *ws = vs.data(), *wd = vd.data();
            for (int64_t i = 0; i < ns; ++i) ws[i] = fp8_f16_to_f32(static_cast<const uint16_t *>(src)[i]);
            const int32_t r = fp8_cpu_reduce(wd, dst_dims, ws, src_dims, FP8_DTYPE_F32, ndim, alg);
            if (r != FP8_OK) return r;
            for (int64_t i = 0; i < nd; ++i) static_cast<uint16_t *>(dst)[i] = fp8_f32_to_f16(wd[i]);
            return FP8_OK;
        }
        const int64_t n_dst = numel(dst_dims, ndim), n_src = numel(src_dims, ndim);
        if (n_dst == 0) return FP8_OK;
        if (n_src == 0) return reduce_empty(fn, dst, n_dst, dtype, alg);
        if (same_dims(dst_dims, src_dims, ndim)) {
            std::memcpy(dst, src, (size_t)(n_dst * fp8_dtype_size(dtype)));
            return FP8_OK;
        }

        float *out = dtype == FP8_DTYPE_F32 ? static_cast<float *>(dst)
                                            : scratch_as<float>(0, (size_t)n_dst);
        int64_t outer, R, C;
        if ((alg == FP8_REDUCE_SUM || alg == FP8_REDUCE_MEAN) &&
            as_colsum(dst_dims, src_dims, ndim, &outer, &R, &C) && C >= kColsumMinCols) {
            fp8_cpu_colsum_f32(out, src, dtype, outer, R, C);
            if (alg == FP8_REDUCE_MEAN)
                for (int64_t i = 0; i < n_dst; ++i) out[i] /= (float)R;
            round_out(dst, out, dtype, n_dst);
            return FP8_OK;
        }

        const auto src_md = dense_md(src_dims, ndim, hp_dt(dtype));
        const auto dst_md = dense_md(dst_dims, ndim, dt::f32);
        Key key("reduce");
        key.add(ndim).add(src_dims, ndim).add(dst_dims, ndim).add(dtype).add(alg);
        dnnl::primitive prim = cached(key, [&] {
            return make_primitive<dnnl::reduction>(
                "reduction", reduction_pd(reduce_alg(alg), src_md, dst_md),
                dims_str(src_dims, ndim) + " -> " + dims_str(dst_dims, ndim));
        });
        execute(prim, {{DNNL_ARG_SRC, wrap(src_md, src)}, {DNNL_ARG_DST, wrap(dst_md, out)}});
        round_out(dst, out, dtype, n_dst);
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}
