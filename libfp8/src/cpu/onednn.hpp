/*
 * onednn.hpp — shared plumbing for libfp8's oneDNN-backed CPU primitives
 * (matmul.cpp, eltwise.cpp, binary_reduce.cpp, norm_softmax.cpp, copy.cpp).
 *
 *  - one CPU engine and a stream per calling thread, created on first use;
 *  - a process-wide cache of primitives keyed by (op, shapes, dtypes, flags),
 *    so a training loop builds each primitive once and then only executes it;
 *  - grow-only thread-local scratch buffers (freed at thread exit);
 *  - FP8_ONEDNN_ENTRY / FP8_ONEDNN_EXIT, which turn every C++ exception into
 *    a status + fp8_last_error() message (nothing escapes into the host);
 *  - the one place that knows which oneDNN API it compiles against: 2.x
 *    (op desc -> primitive_desc -> primitive) or 3.x (primitive_desc built
 *    directly with the engine), chosen by DNNL_VERSION_MAJOR. The ops call the
 *    *_pd() helpers below and never test the version themselves;
 *  - make_primitive(), which every primitive goes through: it reads the
 *    implementation oneDNN picked (impl_info_str()) and, when it is a
 *    reference one ("ref..."), logs it once and records it for
 *    fp8_cpu_onednn_report (see docs/architecture.md).
 */
#ifndef FP8_CPU_ONEDNN_HPP
#define FP8_CPU_ONEDNN_HPP

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>

#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_version.h>

#if DNNL_VERSION_MAJOR >= 3
#define FP8_ONEDNN_V3 1
#else
#define FP8_ONEDNN_V3 0
#endif
/* f8_e4m3 / f8_e5m2 memory (matmul operands) arrived in oneDNN 3.2 */
#if DNNL_VERSION_MAJOR > 3 || (DNNL_VERSION_MAJOR == 3 && DNNL_VERSION_MINOR >= 2)
#define FP8_ONEDNN_HAS_F8 1
#else
#define FP8_ONEDNN_HAS_F8 0
#endif

#include "dims.hpp"
#include "internal.h"

namespace fp8 {
namespace onednn {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dims_t = dnnl::memory::dims;

inline dnnl::engine &engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

/* One stream per calling thread: CPU execution is synchronous, and a stream
 * of its own spares concurrent callers any question of sharing one. */
inline dnnl::stream &stream() {
    thread_local dnnl::stream s(engine());
    return s;
}

/* Our F32 / BF16 / F16 dtype enum as a oneDNN data type (caller has validated it). */
inline dt hp_dt(int32_t dtype) {
    return dtype == FP8_DTYPE_F32 ? dt::f32 : dtype == FP8_DTYPE_F16 ? dt::f16 : dt::bf16;
}

/* Cache key: the raw bytes of a list of integers, prefixed by the op name. */
class Key {
  public:
    explicit Key(const char *op) : s_(op) { s_.push_back('\0'); }
    Key &add(int64_t v) {
        s_.append(reinterpret_cast<const char *>(&v), sizeof v);
        return *this;
    }
    Key &add(const int64_t *v, int n) {
        for (int i = 0; i < n; ++i) add(v[i]);
        return *this;
    }
    Key &add_float(float f) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        return add(static_cast<int64_t>(u));
    }
    const std::string &str() const { return s_; }

  private:
    std::string s_;
};

/* Returns the cached entry for key, building it with make() (which returns a
 * dnnl::primitive) on a miss. The cache is cleared wholesale when it passes a size cap
 * so that shape-churning callers cannot grow it without bound; entries in use
 * stay alive through their own reference counts. */
inline dnnl::primitive cached(const Key &key, const std::function<dnnl::primitive()> &make) {
    static std::mutex mu;
    static std::unordered_map<std::string, dnnl::primitive> cache;
    constexpr size_t kMaxEntries = 4096;
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key.str());
    if (it != cache.end()) return it->second;
    dnnl::primitive p = make();
    if (cache.size() >= kMaxEntries) cache.clear();
    cache.emplace(key.str(), p);
    return p;
}

/* ---- behaviour that differs between releases ---------------------------
 * oneDNN 3.x's reorder does not move 1- and 2-byte elements as opaque bits:
 * bf16 NaN payloads are quieted and subnormals flushed, and a u8 copy between
 * equal padded layouts can miss elements (seen with 3.7.2). copy.cpp then
 * copies those with its own loop. */
constexpr bool kReorderCopiesNarrowBits = !FP8_ONEDNN_V3;
/* oneDNN 3.x's gelu_erf forward gives NaN at +inf and overflows to inf near
 * FLT_MAX, where gelu(x) = x (3.7.2); eltwise.cpp writes x there. */
constexpr bool kGeluErfOverflowsNearMax = FP8_ONEDNN_V3;

/* ---- reference-implementation check -------------------------------------
 * Records every primitive whose implementation name starts with "ref" (oneDNN's
 * plain C++ loops), keyed by op and implementation; the first of each kind is
 * logged to stderr. Defined in onednn_check.cpp. */
void note_impl(const char *op, const char *impl, const std::string &what);
bool is_ref_impl(const char *impl);
/* Records how an fp8 matmul problem runs ("native" or "decode_bf16"). */
void note_fp8_matmul(const std::string &problem, const std::string &path, const std::string &impl,
                     const std::string &reason);

/* The primitive of pd, after checking its implementation. `what` describes the
 * problem (shapes, dtypes) for the record. */
template <class Prim>
dnnl::primitive make_primitive(const char *op, const typename Prim::primitive_desc &pd,
                               const std::string &what = std::string()) {
    note_impl(op, pd.impl_info_str(), what);
    return dnnl::primitive(Prim(pd));
}

/* ---- version compatibility: one builder per primitive kind ------------- */
inline dnnl::matmul::primitive_desc matmul_pd(const dnnl::memory::desc &a,
                                              const dnnl::memory::desc &b,
                                              const dnnl::memory::desc &c,
                                              const dnnl::primitive_attr &attr) {
#if FP8_ONEDNN_V3
    return dnnl::matmul::primitive_desc(engine(), a, b, c, attr);
#else
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, engine());
#endif
}

/* post-op dst = alpha * dst + beta style eltwise (scale 1 in 2.x) */
inline void append_eltwise(dnnl::post_ops &po, dnnl::algorithm alg, float alpha, float beta) {
#if FP8_ONEDNN_V3
    po.append_eltwise(alg, alpha, beta);
#else
    po.append_eltwise(1.0f, alg, alpha, beta);
#endif
}

inline dnnl::binary::primitive_desc binary_pd(dnnl::algorithm alg, const dnnl::memory::desc &src0,
                                              const dnnl::memory::desc &src1,
                                              const dnnl::memory::desc &dst,
                                              const dnnl::primitive_attr &attr) {
#if FP8_ONEDNN_V3
    return dnnl::binary::primitive_desc(engine(), alg, src0, src1, dst, attr);
#else
    return dnnl::binary::primitive_desc(dnnl::binary::desc(alg, src0, src1, dst), attr, engine());
#endif
}

inline dnnl::reduction::primitive_desc reduction_pd(dnnl::algorithm alg,
                                                    const dnnl::memory::desc &src,
                                                    const dnnl::memory::desc &dst) {
#if FP8_ONEDNN_V3
    return dnnl::reduction::primitive_desc(engine(), alg, src, dst, 0.0f, 0.0f);
#else
    return dnnl::reduction::primitive_desc(dnnl::reduction::desc(alg, src, dst, 0.0f, 0.0f),
                                           engine());
#endif
}

inline dnnl::eltwise_forward::primitive_desc eltwise_fwd_pd(dnnl::algorithm alg,
                                                            const dnnl::memory::desc &md,
                                                            float alpha, float beta) {
#if FP8_ONEDNN_V3
    return dnnl::eltwise_forward::primitive_desc(engine(), dnnl::prop_kind::forward_training, alg,
                                                 md, md, alpha, beta);
#else
    return dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg, md, alpha, beta),
        engine());
#endif
}

/* Backward from the source (every algorithm we use takes src, not dst). */
inline dnnl::eltwise_backward::primitive_desc eltwise_bwd_pd(
    dnnl::algorithm alg, const dnnl::memory::desc &md, float alpha, float beta,
    const dnnl::eltwise_forward::primitive_desc &hint) {
#if FP8_ONEDNN_V3
    return dnnl::eltwise_backward::primitive_desc(engine(), alg, md, md, md, alpha, beta, hint);
#else
    return dnnl::eltwise_backward::primitive_desc(
        dnnl::eltwise_backward::desc(alg, md, md, alpha, beta), engine(), hint);
#endif
}

/* softmax_v2 of oneDNN 2.x is softmax in 3.x */
#if FP8_ONEDNN_V3
using softmax_forward = dnnl::softmax_forward;
using softmax_backward = dnnl::softmax_backward;
#else
using softmax_forward = dnnl::softmax_v2_forward;
using softmax_backward = dnnl::softmax_v2_backward;
#endif

inline softmax_forward::primitive_desc softmax_fwd_pd(dnnl::algorithm alg,
                                                      const dnnl::memory::desc &md, int axis) {
#if FP8_ONEDNN_V3
    return softmax_forward::primitive_desc(engine(), dnnl::prop_kind::forward_training, alg, md,
                                           md, axis);
#else
    return softmax_forward::primitive_desc(
        softmax_forward::desc(dnnl::prop_kind::forward_training, alg, md, md, axis), engine());
#endif
}

inline softmax_backward::primitive_desc softmax_bwd_pd(dnnl::algorithm alg,
                                                       const dnnl::memory::desc &md, int axis,
                                                       const softmax_forward::primitive_desc &hint) {
#if FP8_ONEDNN_V3
    return softmax_backward::primitive_desc(engine(), alg, md, md, md, axis, hint);
#else
    return softmax_backward::primitive_desc(softmax_backward::desc(alg, md, md, md, axis),
                                            engine(), hint);
#endif
}

inline dnnl::layer_normalization_forward::primitive_desc lnorm_fwd_pd(
    const dnnl::memory::desc &data, const dnnl::memory::desc &stat, float eps,
    dnnl::normalization_flags flags) {
#if FP8_ONEDNN_V3
    return dnnl::layer_normalization_forward::primitive_desc(
        engine(), dnnl::prop_kind::forward_training, data, data, stat, eps, flags);
#else
    return dnnl::layer_normalization_forward::primitive_desc(
        dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_training, data, stat, eps,
                                                flags),
        engine());
#endif
}

inline dnnl::layer_normalization_backward::primitive_desc lnorm_bwd_pd(
    const dnnl::memory::desc &data, const dnnl::memory::desc &stat, float eps,
    dnnl::normalization_flags flags,
    const dnnl::layer_normalization_forward::primitive_desc &hint) {
#if FP8_ONEDNN_V3
    return dnnl::layer_normalization_backward::primitive_desc(
        engine(), dnnl::prop_kind::backward, data, data, data, stat, eps, flags, hint);
#else
    return dnnl::layer_normalization_backward::primitive_desc(
        dnnl::layer_normalization_backward::desc(dnnl::prop_kind::backward, data, data, stat, eps,
                                                 flags),
        engine(), hint);
#endif
}

inline dnnl::reorder::primitive_desc reorder_pd(const dnnl::memory::desc &src,
                                                const dnnl::memory::desc &dst) {
    return dnnl::reorder::primitive_desc(engine(), src, engine(), dst);
}

/* A memory object over caller memory (no copy, no ownership). */
inline dnnl::memory wrap(const dnnl::memory::desc &md, const void *p) {
    return dnnl::memory(md, engine(), const_cast<void *>(p));
}

inline void execute(const dnnl::primitive &p, const std::unordered_map<int, dnnl::memory> &args) {
    p.execute(stream(), args);
    stream().wait();
}

/* Grow-only, 64-byte aligned, thread-local scratch. `slot` picks one of a few
 * independent buffers so a function can hold several at once. Freed when the
 * thread exits. */
inline void *scratch(int slot, size_t nbytes) {
    struct Buf {
        void *p = nullptr;
        size_t cap = 0;
        ~Buf() { std::free(p); }
    };
    constexpr int kSlots = 4;
    thread_local Buf bufs[kSlots];
    Buf &b = bufs[slot];
    if (nbytes > b.cap) {
        size_t cap = (nbytes + 63) / 64 * 64;
        void *p = std::aligned_alloc(64, cap);
        if (!p) throw std::bad_alloc();
        std::free(b.p);
        b.p = p;
        b.cap = cap;
    }
    return b.p;
}
template <class T>
T *scratch_as(int slot, size_t count) {
    return static_cast<T *>(scratch(slot, (count ? count : 1) * sizeof(T)));
}

/* a*b with an overflow check; false when the product does not fit. */
inline bool mul_ok(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }

using fp8dims::dims_str; /* shared with the CUDA twins (core/dims.hpp) */
using fp8dims::numel;

}  // namespace onednn
}  // namespace fp8

/* Wrap an entry point's body:
 *   FP8_ONEDNN_ENTRY { ...validate, run...; return FP8_OK; } FP8_ONEDNN_EXIT("fp8_cpu_x")
 * oneDNN errors become FP8_ERR_BACKEND, allocation failures
 * FP8_ERR_OUT_OF_MEMORY, anything else FP8_ERR_INTERNAL. */
#define FP8_ONEDNN_ENTRY try
#define FP8_ONEDNN_EXIT(fn)                                                              \
    catch (dnnl::error & e) {                                                            \
        return fp8_fail(FP8_ERR_BACKEND, fn, "oneDNN: %s (status %d)", e.what(),         \
                        (int)e.status);                                                  \
    }                                                                                    \
    catch (std::bad_alloc &) {                                                           \
        return fp8_fail(FP8_ERR_OUT_OF_MEMORY, fn, "out of memory");                     \
    }                                                                                    \
    catch (std::exception & e) {                                                         \
        return fp8_fail(FP8_ERR_INTERNAL, fn, "internal error: %s", e.what());           \
    }                                                                                    \
    catch (...) {                                                                        \
        return fp8_fail(FP8_ERR_INTERNAL, fn, "internal error: unknown exception");      \
    }

#endif
