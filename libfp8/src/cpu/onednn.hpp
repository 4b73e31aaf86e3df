/*
 * onednn.hpp — shared plumbing for libfp8's oneDNN-backed CPU primitives
 * (matmul.cpp, eltwise.cpp, binary_reduce.cpp, norm_softmax.cpp, copy.cpp).
 *
 *  - one CPU engine and a stream per calling thread, created on first use;
 *  - a process-wide cache of primitives keyed by (op, shapes, dtypes, flags),
 *    so a training loop builds each primitive once and then only executes it;
 *  - grow-only thread-local scratch buffers (freed at thread exit);
 *  - FP8_ONEDNN_ENTRY / FP8_ONEDNN_EXIT, which turn every C++ exception into
 *    a status + fp8_last_error() message (nothing escapes into the host).
 *
 * oneDNN 2.6 API (op desc -> primitive_desc -> primitive).
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
