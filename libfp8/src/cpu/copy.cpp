/*
 * copy.cpp — fp8_cpu_copy_strided: a strided copy (permute, slice, cat) as a
 * oneDNN reorder between two strided memory descriptors of the same type.
 *
 * Elements are moved as opaque bits: 1-byte -> u8, 2-byte -> bf16,
 * 4-byte -> s32, and a same-type reorder converts nothing (bf16 NaN payloads
 * and f32 signalling NaNs come through unchanged). Zero strides (a broadcast
 * source) are outside what oneDNN descriptors accept, so those copies take a
 * plain loop, as do 1- and 2-byte copies on oneDNN 3.x, whose reorder does
 * not keep their bits (onednn.hpp: kReorderCopiesNarrowBits).
 */
#include <cstdint>
#include <cstring>

#include "onednn.hpp"

namespace {

using namespace fp8::onednn;

dt bits_dt(int32_t elem_size) {
    return elem_size == 1 ? dt::u8 : elem_size == 2 ? dt::bf16 : dt::s32;
}

template <class T>
void copy_loop_typed(T *dst, const int64_t *ds, const T *src, const int64_t *ss,
                     const int64_t *dims, int ndim, int64_t n) {
    const int last = ndim - 1;
    const int64_t inner = dims[last];
    const int64_t rows = n / inner;
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
        int64_t rem = r, so = 0, dof = 0;
        for (int d = last - 1; d >= 0; --d) {
            const int64_t i = rem % dims[d];
            rem /= dims[d];
            so += i * ss[d];
            dof += i * ds[d];
        }
        if (ds[last] == 1 && ss[last] == 1)
            std::memcpy(dst + dof, src + so, (size_t)inner * sizeof(T));
        else
            for (int64_t j = 0; j < inner; ++j) dst[dof + j * ds[last]] = src[so + j * ss[last]];
    }
}

void copy_loop(void *dst, const int64_t *ds, const void *src, const int64_t *ss,
               const int64_t *dims, int ndim, int32_t elem_size, int64_t n) {
    switch (elem_size) {
        case 1:
            copy_loop_typed((uint8_t *)dst, ds, (const uint8_t *)src, ss, dims, ndim, n);
            break;
        case 2:
            copy_loop_typed((uint16_t *)dst, ds, (const uint16_t *)src, ss, dims, ndim, n);
            break;
        default:
            copy_loop_typed((uint32_t *)dst, ds, (const uint32_t *)src, ss, dims, ndim, n);
    }
}

}  // namespace

extern "C" FP8_API int32_t fp8_cpu_copy_strided(void *dst, const int64_t *dst_strides,
                                                const void *src, const int64_t *src_strides,
                                                const int64_t *dims, int32_t ndim,
                                                int32_t elem_size) {
    static const char *fn = "fp8_cpu_copy_strided";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(dst, fn);
        FP8_REQUIRE_PTR(dst_strides, fn);
        FP8_REQUIRE_PTR(src, fn);
        FP8_REQUIRE_PTR(src_strides, fn);
        FP8_REQUIRE_PTR(dims, fn);
        FP8_REQUIRE(ndim >= 1 && ndim <= 8, fn, "ndim=%d must be in 1..8", ndim);
        FP8_REQUIRE(elem_size == 1 || elem_size == 2 || elem_size == 4, fn,
                    "elem_size=%d must be 1, 2 or 4", elem_size);
        bool zero_stride = false;
        for (int d = 0; d < ndim; ++d) {
            FP8_REQUIRE(dims[d] >= 0, fn, "dims[%d]=%lld must be >= 0", d, (long long)dims[d]);
            FP8_REQUIRE(dst_strides[d] >= 0 && src_strides[d] >= 0, fn,
                        "strides must be >= 0 (dim %d: dst %lld, src %lld)", d,
                        (long long)dst_strides[d], (long long)src_strides[d]);
            zero_stride |= dims[d] > 1 && (dst_strides[d] == 0 || src_strides[d] == 0);
        }
        const int64_t n = numel(dims, ndim);
        FP8_REQUIRE(n >= 0, fn, "dims %s overflow int64 or have more than 2^46 elements", dims_str(dims, ndim).c_str());
        if (n == 0) return FP8_OK;
        /* The furthest element either side touches must be addressable. */
        int64_t dst_end = 0, src_end = 0;
        for (int d = 0; d < ndim; ++d) {
            int64_t t;
            FP8_REQUIRE(mul_ok(dims[d] - 1, dst_strides[d], &t) && !__builtin_add_overflow(dst_end, t, &dst_end) &&
                            mul_ok(dims[d] - 1, src_strides[d], &t) && !__builtin_add_overflow(src_end, t, &src_end),
                        fn, "strides with dims %s overflow int64", dims_str(dims, ndim).c_str());
        }

        if (n == 1) {
            std::memcpy(dst, src, (size_t)elem_size);
            return FP8_OK;
        }
        if (zero_stride || (!kReorderCopiesNarrowBits && elem_size < 4)) {
            copy_loop(dst, dst_strides, src, src_strides, dims, ndim, elem_size, n);
            return FP8_OK;
        }

        /* A size-1 dim's stride is never used; give it 1 so that oneDNN sees
         * no zero strides and equal copies share one cache entry. */
        const dims_t dd(dims, dims + ndim);
        dims_t ss(src_strides, src_strides + ndim), ds(dst_strides, dst_strides + ndim);
        for (int d = 0; d < ndim; ++d)
            if (dims[d] == 1) ss[d] = ds[d] = 1;
        const dnnl::memory::desc src_md(dd, bits_dt(elem_size), ss);
        const dnnl::memory::desc dst_md(dd, bits_dt(elem_size), ds);
        Key key("copy_strided");
        key.add(ndim).add(dims, ndim).add(ss.data(), ndim).add(ds.data(), ndim).add(elem_size);
        dnnl::primitive prim = cached(key, [&] {
            return make_primitive<dnnl::reorder>("reorder", reorder_pd(src_md, dst_md),
                                                 dims_str(dims, ndim));
        });
        execute(prim, {{DNNL_ARG_FROM, wrap(src_md, src)}, {DNNL_ARG_TO, wrap(dst_md, dst)}});
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}
