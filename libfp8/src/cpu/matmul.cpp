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
 * With oneDNN >= 3.2 it may instead run oneDNN's own fp8 matmul (f8_e4m3 /
 * f8_e5m2 operands, the same alpha and bias post-ops), but only where that is
 * really fast: the first call of each problem creates the native primitive,
 * rejects it when oneDNN offers a reference implementation (torch's CPU
 * _scaled_mm runs ref:any on a Sapphire Rapids Xeon, ~20000x slower than
 * bf16), and otherwise times both paths once and keeps the faster. Every
 * decision is recorded (fp8_cpu_onednn_report). FP8_CPU_FP8_MATMUL=decode or
 * =native overrides the choice (native: whenever oneDNN can build it, ref or
 * not; for tests). See docs/architecture.md.
 */
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "fp8_ref.h"
#include "onednn.hpp"
extern "C" {
#include "cast_kernels.h"
}

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
    dt b_dt = dt::undef; /* b's type when it differs from a's (native fp8) */
};

struct Descs {
    dnnl::memory::desc a, b, c, alpha, bias;
    bool batched, scaled;
};

Descs describe(const Gemm &g) {
    Descs d;
    const int64_t batch = g.batch_a > g.batch_b ? g.batch_a : g.batch_b;
    d.scaled = g.alpha != 1.0f;
    d.batched = batch > 1;
    const dt b_dt = g.b_dt == dt::undef ? g.ab_dt : g.b_dt;
    d.a = op_md(d.batched, g.batch_a, g.M, g.K, g.ab_dt, g.trans_a);
    d.b = op_md(d.batched, g.batch_b, g.K, g.N, b_dt, g.trans_b);
    d.c = op_md(d.batched, batch, g.M, g.N, g.c_dt, false);
    /* post-op operands: a scalar, and a row broadcast over (batch and) M */
    d.alpha = op_md(d.batched, 1, 1, 1, dt::f32, false);
    d.bias = op_md(d.batched, 1, 1, g.N, g.bias_dt, false);
    return d;
}

dnnl::matmul::primitive_desc describe_pd(const Gemm &g, const Descs &d) {
    dnnl::post_ops po;
    if (d.scaled) po.append_binary(dnnl::algorithm::binary_mul, d.alpha);
    if (g.accumulate) po.append_sum(1.0f);
    if (g.bias) po.append_binary(dnnl::algorithm::binary_add, d.bias);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    return matmul_pd(d.a, d.b, d.c, attr);
}

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
    const Descs d = describe(g);
    const bool scaled = d.scaled;
    const auto &a_md = d.a, &b_md = d.b, &c_md = d.c, &alpha_md = d.alpha, &bias_md = d.bias;

    Key key("matmul");
    key.add(g.batch_a).add(g.batch_b).add(g.M).add(g.K).add(g.N);
    key.add((int64_t)g.ab_dt).add((int64_t)g.c_dt).add(g.trans_a).add(g.trans_b);
    key.add(scaled).add(g.accumulate).add(g.bias ? (int64_t)g.bias_dt : -1).add((int64_t)g.b_dt);
    dnnl::primitive prim = cached(key, [&] {
        return make_primitive<dnnl::matmul>("matmul", describe_pd(g, d), gemm_str(g));
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

void run_gemm_f32_bf16(const Gemm &g, int32_t c_dtype, int32_t bias_dtype);

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

/* f32 / bf16 operands, output and bias */
void run_gemm_f32_bf16(const Gemm &g, int32_t c_dtype, int32_t bias_dtype) {
    if (g.K == 0)
        run_empty_k(g, c_dtype, bias_dtype);
    else if (g.ab_dt == dt::f32 && g.c_dt == dt::bf16)
        run_via_f32(g);
    else
        run_onednn(g);
}

/* float16 operands, bias or output: widened to f32 scratch (exact), the f32 (or,
 * for bf16 operands, bf16) GEMM with f32 accumulation, one rounding to f16 at the
 * end: torch's CPU float16 matmul numerics, without relying on oneDNN f16 kernels. */
void run_via_f16(Gemm g, int32_t ab_dtype, int32_t c_dtype, int32_t bias_dtype) {
    const int64_t batch = g.batch_a > g.batch_b ? g.batch_a : g.batch_b;
    std::vector<float> wide[4]; /* a, b, bias, c (scratch slots 0-2 are taken by the callees) */
    auto widen = [&wide](int slot, const void *src, int64_t n) {
        wide[slot].resize((size_t)n);
        const uint16_t *h = static_cast<const uint16_t *>(src);
        for (int64_t i = 0; i < n; ++i) wide[slot][(size_t)i] = fp8_f16_to_f32(h[i]);
        return wide[slot].data();
    };
    if (ab_dtype == FP8_DTYPE_F16) {
        g.a = widen(0, g.a, g.batch_a * g.M * g.K);
        g.b = widen(1, g.b, g.batch_b * g.K * g.N);
        g.ab_dt = dt::f32;
    }
    if (g.bias && bias_dtype == FP8_DTYPE_F16) {
        g.bias = widen(2, g.bias, g.N);
        g.bias_dt = dt::f32;
    }
    if (c_dtype != FP8_DTYPE_F16) {
        run_gemm_f32_bf16(g, c_dtype, g.bias_dt == dt::f32 ? FP8_DTYPE_F32 : bias_dtype);
        return;
    }
    const int64_t n = batch * g.M * g.N;
    uint16_t *c = static_cast<uint16_t *>(g.c);
    if (!g.accumulate) wide[3].resize((size_t)n);
    float *tmp = g.accumulate ? widen(3, c, n) : wide[3].data();
    g.c = tmp;
    g.c_dt = dt::f32;
    run_gemm_f32_bf16(g, FP8_DTYPE_F32, g.bias_dt == dt::f32 ? FP8_DTYPE_F32 : bias_dtype);
    for (int64_t i = 0; i < n; ++i) c[i] = fp8_f32_to_f16(tmp[i]);
}

void run_gemm(const Gemm &g, int32_t c_dtype, int32_t bias_dtype, int32_t ab_dtype) {
    if (g.M == 0 || g.N == 0) return;
    if (ab_dtype == FP8_DTYPE_F16 || c_dtype == FP8_DTYPE_F16 || (g.bias && bias_dtype == FP8_DTYPE_F16))
        run_via_f16(g, ab_dtype, c_dtype, bias_dtype);
    else
        run_gemm_f32_bf16(g, c_dtype, bias_dtype);
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
        FP8_REQUIRE(numel(d, 3) >= 0, fn, "size (%lld, %lld, %lld) overflows int64 or is more than 2^46 elements",
                    (long long)d[0], (long long)d[1], (long long)d[2]);
    return FP8_OK;
}

/* bf16 bits of every fp8 byte: the cast kernels' table (cast_kernels.h; exact:
 * every fp8 value is a bf16 value; NaN stays NaN, e5m2 inf stays inf). */
const uint16_t *decode_table(int32_t fp8_dtype) {
    return fp8_cast_decode_tables()->bf16[fp8_kernel_fmt(fp8_dtype)];
}

void decode_to_bf16(uint16_t *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype) {
    const uint16_t *table = decode_table(fp8_dtype);
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; ++i) dst[i] = table[src[i]];
}

/* ---- native fp8 matmul or decode + bf16 (see the file comment) ---------- */

#if FP8_ONEDNN_HAS_F8
double time_ms(const std::function<void()> &f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

dt fp8_onednn_dt(int32_t d) { return d == FP8_DTYPE_E4M3FN ? dt::f8_e4m3 : dt::f8_e5m2; }
#endif

/* Whether scaled_mm problem `native` (the Gemm with fp8 operands) runs on
 * oneDNN's fp8 matmul; records the decision. run_decode runs the same problem
 * on the decode path. */
bool use_native_fp8(const Gemm &native, const std::string &problem,
                    const std::function<void()> &run_decode) {
    bool use = false;
    std::string impl, reason;
#if FP8_ONEDNN_HAS_F8
    const char *env = std::getenv("FP8_CPU_FP8_MATMUL");
    const std::string mode = env ? env : "";
    if (mode == "decode") {
        reason = "FP8_CPU_FP8_MATMUL=decode";
    } else if (native.M == 0 || native.N == 0 || native.K == 0) {
        reason = "empty problem";
    } else {
        try {
            impl = describe_pd(native, describe(native)).impl_info_str();
        } catch (dnnl::error &) {
            reason = "oneDNN has no fp8 matmul for this problem on this CPU";
        }
        if (impl.empty()) {
        } else if (mode == "native") {
            use = true;
            reason = "FP8_CPU_FP8_MATMUL=native";
        } else if (is_ref_impl(impl.c_str())) {
            reason = "oneDNN's fp8 matmul here is a reference implementation";
        } else if (impl.find("brg") == std::string::npos && impl.find("jit") == std::string::npos) {
            reason = "oneDNN's fp8 matmul here is not a JIT (brgemm) kernel";
        } else {
            /* warm both (primitive creation, first touch), then one timed run each */
            run_onednn(native);
            run_decode();
            const double t_native = time_ms([&] { run_onednn(native); });
            const double t_decode = time_ms([&] { run_decode(); });
            use = t_native < t_decode;
            char buf[96];
            std::snprintf(buf, sizeof buf, "measured: native %.3f ms, decode + bf16 %.3f ms",
                          t_native, t_decode);
            reason = buf;
        }
    }
#else
    (void)native;
    (void)run_decode;
    reason = "compiled against oneDNN " + std::to_string(DNNL_VERSION_MAJOR) + "." +
             std::to_string(DNNL_VERSION_MINOR) + ", which has no fp8 matmul";
#endif
    note_fp8_matmul(problem, use ? "native" : "decode_bf16", impl, reason);
    return use;
}

/* One tensorwise scaled_mm call (validated). */
struct Fp8Call {
    void *c;
    int32_t c_dtype;
    const void *a;
    int32_t a_dtype;
    const void *b;
    int32_t b_dtype;
    const void *bias;
    int32_t bias_dtype;
    int64_t M, K, N;
    bool trans_a, trans_b;
    float alpha;
};

Gemm base_gemm(const Fp8Call &f) {
    Gemm g;
    g.c = f.c; g.c_dt = hp_dt(f.c_dtype); g.a = f.a; g.b = f.b; g.ab_dt = dt::bf16;
    g.bias = f.bias; g.bias_dt = hp_dt(f.bias_dtype);
    g.batch_a = 1; g.batch_b = 1; g.M = f.M; g.K = f.K; g.N = f.N;
    g.trans_a = f.trans_a; g.trans_b = f.trans_b;
    g.alpha = f.alpha; g.accumulate = false;
    return g;
}

/* The call on oneDNN's fp8 matmul (operands as they are). */
Gemm native_gemm(const Fp8Call &f) {
    Gemm g = base_gemm(f);
#if FP8_ONEDNN_HAS_F8
    g.ab_dt = fp8_onednn_dt(f.a_dtype);
    g.b_dt = fp8_onednn_dt(f.b_dtype);
#endif
    return g;
}

/* The call as exact bf16 decodes (thread-local scratch) and oneDNN's bf16 matmul. */
void run_decode(const Fp8Call &f) {
    uint16_t *a16 = scratch_as<uint16_t>(1, (size_t)(f.M * f.K));
    uint16_t *b16 = scratch_as<uint16_t>(2, (size_t)(f.K * f.N));
    decode_to_bf16(a16, static_cast<const uint8_t *>(f.a), f.M * f.K, f.a_dtype);
    decode_to_bf16(b16, static_cast<const uint8_t *>(f.b), f.K * f.N, f.b_dtype);
    Gemm g = base_gemm(f);
    g.a = a16;
    g.b = b16;
    run_gemm(g, f.c_dtype, f.bias_dtype, FP8_DTYPE_BF16);
}

std::string path_key(const Fp8Call &f) {
    Key key("scaled_mm_path");
    key.add(f.M).add(f.K).add(f.N).add(f.a_dtype).add(f.b_dtype).add(f.c_dtype);
    key.add(f.trans_a).add(f.trans_b).add(f.bias ? f.bias_dtype : -1);
    return key.str();
}

std::mutex path_mu;
std::unordered_map<std::string, bool> paths; /* key -> native */

bool lookup_path(const std::string &key, bool *native) {
    std::lock_guard<std::mutex> lock(path_mu);
    auto it = paths.find(key);
    if (it == paths.end()) return false;
    *native = it->second;
    return true;
}

/* Decides (and records) the path of f's problem, running f to measure when
 * both paths are candidates; returns whether it is native. */
/* The dtype and size checks of fp8_cpu_scaled_mm and its path query (bias_dtype -1: no bias). */
int32_t check_scaled_mm(const char *fn, int32_t a_dtype, int32_t b_dtype, int32_t c_dtype, int32_t bias_dtype,
                        int64_t M, int64_t K, int64_t N) {
    FP8_REQUIRE(fp8_is_fp8_cpu(a_dtype), fn, "a_dtype %s (%d) must be an fp8 dtype", fp8_dtype_name(a_dtype),
                a_dtype);
    FP8_REQUIRE(fp8_is_fp8_cpu(b_dtype), fn, "b_dtype %s (%d) must be an fp8 dtype", fp8_dtype_name(b_dtype),
                b_dtype);
    FP8_REQUIRE(fp8_is_float_any(c_dtype), fn, "c_dtype %s (%d) must be float32, bfloat16 or float16",
                fp8_dtype_name(c_dtype), c_dtype);
    FP8_REQUIRE(bias_dtype == -1 || fp8_is_float_any(bias_dtype), fn,
                "bias_dtype %s (%d) must be float32, bfloat16 or float16", fp8_dtype_name(bias_dtype), bias_dtype);
    return check_problem(fn, 1, 1, M, K, N);
}

/* oneDNN's f8 matmul takes float8_e4m3fn / float8_e5m2 operands with an f32 or
 * bf16 output and bias; float16 and the fnuz formats always decode, and so does
 * an empty inner dimension (bias only). */
bool native_candidate(int32_t a_dtype, int32_t b_dtype, int32_t c_dtype, int32_t bias_dtype, int64_t K) {
    return K > 0 && fp8_is_fp8(a_dtype) && fp8_is_fp8(b_dtype) && fp8_is_float_hp(c_dtype) &&
           (bias_dtype < 0 || fp8_is_float_hp(bias_dtype));
}

bool decide_path(const Fp8Call &f) {
    char problem[160];
    std::snprintf(problem, sizeof problem, "M %lld K %lld N %lld %s%s x %s%s -> %s%s",
                  (long long)f.M, (long long)f.K, (long long)f.N, fp8_dtype_name(f.a_dtype),
                  f.trans_a ? "ᵀ" : "", fp8_dtype_name(f.b_dtype), f.trans_b ? "ᵀ" : "",
                  fp8_dtype_name(f.c_dtype), f.bias ? " + bias" : "");
    const bool native = use_native_fp8(native_gemm(f), problem, [&] { run_decode(f); });
    std::lock_guard<std::mutex> lock(path_mu);
    if (paths.size() >= 4096) paths.clear();
    paths.emplace(path_key(f), native);
    return native;
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
        FP8_REQUIRE(fp8_is_float_any(ab_dtype), fn, "ab_dtype %s (%d) must be float32, bfloat16 or float16",
                    fp8_dtype_name(ab_dtype), ab_dtype);
        FP8_REQUIRE(fp8_is_float_any(c_dtype), fn, "c_dtype %s (%d) must be float32, bfloat16 or float16",
                    fp8_dtype_name(c_dtype), c_dtype);
        FP8_REQUIRE(!bias || fp8_is_float_any(bias_dtype), fn,
                    "bias_dtype %s (%d) must be float32, bfloat16 or float16", fp8_dtype_name(bias_dtype),
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
        run_gemm(g, c_dtype, bias_dtype, ab_dtype);
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
        const int32_t st = check_scaled_mm(fn, a_dtype, b_dtype, c_dtype, bias ? bias_dtype : -1, M, K, N);
        if (st != FP8_OK) return st;

        /* torchao hands _scaled_mm reciprocal scales computed in f32. */
        const float inv_a = 1.0f / *scale_a;
        const float inv_b = 1.0f / *scale_b;
        const Fp8Call call{c, c_dtype, a, a_dtype, b, b_dtype, bias, bias_dtype, M, K, N,
                           trans_a != 0, trans_b != 0, inv_a * inv_b};
        bool native = false;
        if (native_candidate(a_dtype, b_dtype, c_dtype, bias ? bias_dtype : -1, K) &&
            !lookup_path(path_key(call), &native))
            native = decide_path(call);
        if (native)
            run_onednn(native_gemm(call));
        else
            run_decode(call);
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}

extern "C" FP8_API int32_t fp8_cpu_scaled_mm_path(int32_t *native, int32_t c_dtype,
                                                  int32_t a_dtype, int32_t b_dtype,
                                                  int32_t bias_dtype, int64_t M, int64_t K,
                                                  int64_t N, int32_t trans_a, int32_t trans_b) {
    static const char *fn = "fp8_cpu_scaled_mm_path";
    FP8_ONEDNN_ENTRY {
        FP8_REQUIRE_PTR(native, fn);
        FP8_REQUIRE(bias_dtype == -1 || fp8_is_float_any(bias_dtype), fn,
                    "bias_dtype %s (%d) must be -1 (no bias), float32, bfloat16 or float16",
                    fp8_dtype_name(bias_dtype), bias_dtype);
        const int32_t st = check_scaled_mm(fn, a_dtype, b_dtype, c_dtype, bias_dtype, M, K, N);
        if (st != FP8_OK) return st;
        if (!native_candidate(a_dtype, b_dtype, c_dtype, bias_dtype, K)) {
            *native = 0;
            return FP8_OK;
        }
        static const uint8_t dummy = 0;
        /* the key only needs bias set or not */
        Fp8Call call{nullptr, c_dtype, &dummy, a_dtype, &dummy, b_dtype,
                     bias_dtype >= 0 ? &dummy : nullptr, bias_dtype >= 0 ? bias_dtype : 0,
                     M, K, N, trans_a != 0, trans_b != 0, 0.5f};
        bool use;
        if (lookup_path(path_key(call), &use)) {
            *native = use;
            return FP8_OK;
        }
        /* first sight: decide on zero operands of the problem's size (GEMM time
         * does not depend on the values) */
        std::vector<uint8_t> a((size_t)(M * K)), b((size_t)(K * N));
        std::vector<float> c((size_t)(M * N)), bias((size_t)N);
        call.a = a.data();
        call.b = b.data();
        call.c = c.data();
        if (bias_dtype >= 0) call.bias = bias.data();
        *native = decide_path(call);
        return FP8_OK;
    }
    FP8_ONEDNN_EXIT(fn)
}
