/*
 * tensor_test.cpp — tensor_kernels.cu against libfp8/src/cpu (binary_reduce.cpp,
 * eltwise.cpp, copy.cpp, nn_kernels.c): broadcasting binary ops and masked
 * fill and strided copies bit for bit; oneDNN-formula eltwise forward and
 * backward within f32 / bf16 rounding; reductions along every pattern of dims
 * (rows by a warp or a block, chunked rows, middle axes in slices, the generic
 * kernel), and argmax against Tensor.argmax's rule.
 */
#include <sys/mman.h>

#include "harness.h"

namespace harness {

namespace {

const char *const kEltwiseNames[] = {"relu", "gelu_tanh", "gelu_erf", "silu", "tanh",   "exp",
                                     "log",  "sqrt",      "pow",      "linear", "abs", "sigmoid"};

void eltwise() {
    section("tensor: eltwise");
    const float params[][2] = {{2.0f, 3.0f}, {1.5f, 0.5f}, {0.7f, -1.0f}, {1.0f, 2.0f}, {2.0f, 0.0f}, {-0.5f, 1.0f}};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int alg = FP8_ELTWISE_RELU; alg <= FP8_ELTWISE_SIGMOID; alg++)
            for (const auto &ab : params) {
                if (alg != FP8_ELTWISE_POW && alg != FP8_ELTWISE_LINEAR && &ab != &params[0]) continue;
                const float a = ab[0], b = ab[1];
                const int64_t n = 3001;
                Buf x(dt, n), dd(dt, n), y(dt, n), y_cpu(dt, n), g(dt, n), g_cpu(dt, n);
                /* the special values first; log, sqrt and fractional powers get positive inputs */
                const bool positive = alg == FP8_ELTWISE_LOG || alg == FP8_ELTWISE_SQRT ||
                                      (alg == FP8_ELTWISE_POW && b != std::floor(b));
                /* Special inputs (NaN, inf, +-0, subnormals) only where oneDNN's JIT
                 * agrees with IEEE: its exp(NaN) is +inf, its log and pow flush
                 * subnormals, its pow(+-inf, y) is NaN. */
                const bool specials = alg != FP8_ELTWISE_EXP && alg != FP8_ELTWISE_LOG && alg != FP8_ELTWISE_POW;
                fill_random(x, 3.0f, specials);
                for (int64_t i = specials ? (int64_t)special_values().size() : 0; i < n; i++)
                    if (positive) x.set(i, std::fabs(x.get(i)) + 1e-3f);
                fill_random(dd);
                CUDA_OK(fp8_cuda_eltwise(ctx, y.p(), x.p(), dt, n, alg, a, b));
                CPU_OK(fp8_cpu_eltwise(y_cpu.p(), x.p(), dt, n, alg, a, b));
                CUDA_OK(fp8_cuda_eltwise_backward(ctx, g.p(), dd.p(), x.p(), dt, n, alg, a, b));
                CPU_OK(fp8_cpu_eltwise_backward(g_cpu.p(), dd.p(), x.p(), dt, n, alg, a, b));
                char what[96];
                snprintf(what, sizeof what, "eltwise %s %s (a=%g b=%g)", kEltwiseNames[alg], dt_name(dt), a, b);
                /* glibc's and oneDNN's transcendental functions differ by an ulp or
                 * two (oneDNN's log by up to ~3.5e-6 absolute near 1); a bf16
                 * result may then round to the neighbouring bf16. */
                close(what, y, y_cpu, dt == FP8_DTYPE_F32 ? 3e-6 : 8e-3, dt == FP8_DTYPE_F32 ? 5e-6 : 1e-5);
                snprintf(what, sizeof what, "eltwise_backward %s %s (a=%g b=%g)", kEltwiseNames[alg], dt_name(dt), a, b);
                close(what, g, g_cpu, dt == FP8_DTYPE_F32 ? 1e-5 : 8e-3, dt == FP8_DTYPE_F32 ? 1e-5 : 1e-4);
            }
    /* in place */
    Buf x(FP8_DTYPE_F32, 100), ref(FP8_DTYPE_F32, 100);
    fill_random(x);
    CPU_OK(fp8_cpu_eltwise(ref.p(), x.p(), FP8_DTYPE_F32, 100, FP8_ELTWISE_ABS, 0, 0));
    CUDA_OK(fp8_cuda_eltwise(ctx, x.p(), x.p(), FP8_DTYPE_F32, 100, FP8_ELTWISE_ABS, 0, 0));
    same_bytes("eltwise in place", x, ref);
    float f;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "unknown alg", fp8_cuda_eltwise(ctx, &f, &f, FP8_DTYPE_F32, 1, 12, 0, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "unknown alg", fp8_cuda_eltwise_backward(ctx, &f, &f, &f, FP8_DTYPE_F32, 1, -1, 0, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dtype", fp8_cuda_eltwise(ctx, &f, &f, FP8_DTYPE_E4M3FN, 1, 0, 0, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_ddst is NULL", fp8_cuda_eltwise_backward(ctx, &f, nullptr, &f, FP8_DTYPE_F32, 1, 0, 0, 0));
    CUDA_OK(fp8_cuda_eltwise(ctx, nullptr, nullptr, FP8_DTYPE_F32, 0, 0, 0, 0));
}

void binary() {
    section("tensor: binary");
    for (int t = 0; t < 300; t++) {
        const int ndim = t % 25 == 0 ? 8 : 1 + (int)(rng() % 5); /* 8: the most dims the ops take */
        auto dd = rand_dims(ndim, t % 10 == 0 ? 40 : ndim == 8 ? 3 : 6);
        while (prod(dd) > 60000) *std::max_element(dd.begin(), dd.end()) /= 2; /* keep the run short */
        auto ad = dd, bd = dd;
        for (int d = 0; d < ndim; d++) {
            if (rng() % 3 == 0) ad[(size_t)d] = 1;
            if (rng() % 3 == 0) bd[(size_t)d] = 1;
        }
        if (t % 7 == 0) ad = dd;
        if (t % 5 == 0) bd = dd;
        const int32_t dt = t % 2 ? FP8_DTYPE_BF16 : FP8_DTYPE_F32;
        const int alg = t % 6;
        Buf a(dt, prod(ad)), b(dt, prod(bd)), y(dt, prod(dd)), ref(dt, prod(dd));
        for (int64_t i = 0; i < a.n(); i++) a.set(i, rng() % 17 == 0 ? NAN : rng() % 13 == 0 ? 0.0f : randn());
        for (int64_t i = 0; i < b.n(); i++) b.set(i, rng() % 17 == 0 ? -NAN : rng() % 13 == 0 ? -0.0f : randn());
        CUDA_OK(fp8_cuda_binary(ctx, y.p(), dd.data(), a.p(), ad.data(), b.p(), bd.data(), dt, ndim, alg));
        CPU_OK(fp8_cpu_binary(ref.p(), dd.data(), a.p(), ad.data(), b.p(), bd.data(), dt, ndim, alg));
        char what[160];
        snprintf(what, sizeof what, "binary alg %d %s: a %s b %s -> %s", alg, dt_name(dt), dims_str(ad).c_str(),
                 dims_str(bd).c_str(), dims_str(dd).c_str());
        same_values(what, y, ref);
    }
    /* Broadcasting with an innermost dim of whole 16-byte vectors (binary_broadcast_vec_kernel):
     * (B, T, C) op (C), op (B, T, 1), op (B, 1, C), (1, C) op (R, C), and (n) op (1); ragged
     * innermost dims (12 bf16, 6 f32), and each with the output or an operand one element off
     * 16-byte alignment (the element kernel): the CPU's bits every time. */
    const std::vector<int64_t> cases[][3] = {
        {{3, 5, 64}, {3, 5, 64}, {1, 1, 64}}, {{3, 5, 64}, {3, 5, 1}, {3, 5, 64}}, {{4, 3, 16}, {4, 1, 16}, {4, 3, 16}},
        {{9, 8}, {1, 8}, {9, 8}},             {{1000}, {1000}, {1}},              {{2, 7, 24}, {2, 7, 24}, {24}},
        {{5, 12}, {5, 12}, {1, 12}},          {{5, 6}, {1, 6}, {5, 6}}};
    for (const auto &c : cases)
        for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
            for (int off = 0; off < 3; off++) /* 0: aligned, 1: dst one element off, 2: b one element off */
                for (int alg : {FP8_BINARY_ADD, FP8_BINARY_MUL, FP8_BINARY_DIV, FP8_BINARY_MAX}) {
                    auto dd = c[0], ad = c[1], bd = c[2];
                    const int nd = (int)dd.size();
                    if ((int)ad.size() < nd) ad.insert(ad.begin(), (size_t)(nd - (int)ad.size()), 1);
                    if ((int)bd.size() < nd) bd.insert(bd.begin(), (size_t)(nd - (int)bd.size()), 1);
                    const int es = dtype_size(dt);
                    Buf a(dt, prod(ad)), b(dt, prod(bd), off == 2 ? es : 0), y(dt, prod(dd), off == 1 ? es : 0), ref(dt, prod(dd));
                    for (int64_t i = 0; i < a.n(); i++) a.set(i, i % 11 == 3 ? NAN : i % 7 == 0 ? 0.0f : randn());
                    for (int64_t i = 0; i < b.n(); i++) b.set(i, i % 13 == 5 ? INFINITY : i % 5 == 0 ? -0.0f : randn());
                    CUDA_OK(fp8_cuda_binary(ctx, y.p(), dd.data(), a.p(), ad.data(), b.p(), bd.data(), dt, nd, alg));
                    CPU_OK(fp8_cpu_binary(ref.p(), dd.data(), a.p(), ad.data(), b.p(), bd.data(), dt, nd, alg));
                    char what[160];
                    snprintf(what, sizeof what, "binary alg %d %s: a %s b %s -> %s (%s)", alg, dt_name(dt), dims_str(ad).c_str(),
                             dims_str(bd).c_str(), dims_str(dd).c_str(), off == 0 ? "aligned" : off == 1 ? "dst off" : "b off");
                    same_values(what, y, ref);
                }
    int64_t d3[3] = {2, 3, 4}, bad[3] = {2, 5, 4}, neg[3] = {2, -3, 4}, zero[3] = {2, 0, 4};
    float buf[64];
    CUDA_OK(fp8_cuda_binary(ctx, buf, zero, buf, zero, buf, zero, FP8_DTYPE_F32, 3, FP8_BINARY_ADD));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "do not broadcast", fp8_cuda_binary(ctx, buf, d3, buf, bad, buf, d3, 0, 3, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ndim", fp8_cuda_binary(ctx, buf, d3, buf, d3, buf, d3, 0, 9, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dtype", fp8_cuda_binary(ctx, buf, d3, buf, d3, buf, d3, 2, 3, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "unknown alg", fp8_cuda_binary(ctx, buf, d3, buf, d3, buf, d3, 0, 3, 6));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "must be >= 0", fp8_cuda_binary(ctx, buf, neg, buf, neg, buf, neg, 0, 3, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ctx is NULL", fp8_cuda_binary(nullptr, buf, d3, buf, d3, buf, d3, 0, 3, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "a_dims", fp8_cuda_binary(ctx, buf, d3, buf, nullptr, buf, d3, 0, 3, 0));
}

/* One reduction of random data from src dims to dst dims, against the CPU. */
void reduce_case(const std::vector<int64_t> &sd, const std::vector<int64_t> &dd, int32_t dt, int alg, const char *path) {
    const int ndim = (int)sd.size();
    const int64_t ns = prod(sd), nd = prod(dd);
    Buf s(dt, ns), y(dt, nd), ref(dt, nd);
    for (int64_t i = 0; i < ns; i++) s.set(i, randn() + 0.25f);
    CUDA_OK(fp8_cuda_reduce(ctx, y.p(), dd.data(), s.p(), sd.data(), dt, ndim, alg));
    CPU_OK(fp8_cpu_reduce(ref.p(), dd.data(), s.p(), sd.data(), dt, ndim, alg));
    char what[160];
    snprintf(what, sizeof what, "reduce %s alg %d %s %s -> %s", path, alg, dt_name(dt), dims_str(sd).c_str(),
             dims_str(dd).c_str());
    /* the source one element off 16-byte alignment (element loads where the rows
     * took 16-byte vectors): the same order of combination, the same bits */
    Buf s_off(dt, ns, dtype_size(dt)), y_off(dt, nd);
    s_off.copy_from(s);
    CUDA_OK(fp8_cuda_reduce(ctx, y_off.p(), dd.data(), s_off.p(), sd.data(), dt, ndim, alg));
    same_bytes(what, y_off, y);
    if (alg == FP8_REDUCE_MAX || alg == FP8_REDUCE_MIN) {
        same_bytes(what, y, ref);
        return;
    }
    /* sums in f32 in a different order: the error grows like sqrt(terms) */
    const double per = (double)std::max<int64_t>(1, ns / std::max<int64_t>(nd, 1));
    const double atol = (dt == FP8_DTYPE_F32 ? 4e-7 : 1.6e-2) * std::sqrt(per) * (alg == FP8_REDUCE_MEAN ? 1.0 / per : 1.0);
    close(what, y, ref, dt == FP8_DTYPE_F32 ? 1e-5 : 8e-3, atol);
}

void reduce() {
    section("tensor: reduce");
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int alg = FP8_REDUCE_SUM; alg <= FP8_REDUCE_MIN; alg++) {
            reduce_case({7, 33}, {7, 1}, dt, alg, "rows by a warp");
            reduce_case({5000, 10}, {5000, 1}, dt, alg, "rows by a warp, grid-stride");
            reduce_case({300, 1500}, {300, 1}, dt, alg, "rows by a block, grid-stride");
            reduce_case({3, 3000}, {3, 1}, dt, alg, "rows by a block");
            reduce_case({2, 70000}, {2, 1}, dt, alg, "rows in chunks");
            reduce_case({100000}, {1}, dt, alg, "everything in chunks");
            reduce_case({5, 1, 6}, {1, 1, 6}, dt, alg, "columns");
            reduce_case({700, 45}, {1, 45}, dt, alg, "columns in slices");
            reduce_case({3, 300, 40}, {3, 1, 40}, dt, alg, "middle axis in slices");
            reduce_case({2, 3, 4, 5}, {1, 3, 1, 5}, dt, alg, "generic");
            reduce_case({4, 3, 5}, {1, 3, 1}, dt, alg, "generic (R K R)");
            reduce_case({2, 9000, 1}, {1, 1, 1}, dt, alg, "everything");
            reduce_case({2, 3, 4}, {2, 3, 4}, dt, alg, "nothing (a copy)");
            reduce_case({20000, 2, 3}, {1, 2, 1}, dt, alg, "generic by a block");
        }
    /* An H200's 132 SMs: more chunks and slices, each shorter. */
    with_device_shape(132, (size_t)-1, [] {
        reduce_case({2, 100000}, {2, 1}, FP8_DTYPE_F32, FP8_REDUCE_SUM, "rows in chunks, 132 SMs");
        reduce_case({3, 2000, 40}, {3, 1, 40}, FP8_DTYPE_BF16, FP8_REDUCE_MAX, "middle axis in slices, 132 SMs");
        reduce_case({20000, 2, 3}, {1, 2, 1}, FP8_DTYPE_F32, FP8_REDUCE_MEAN, "generic, 132 SMs");
    });
    /* A workspace too small for partial sums: one chunk, one slice. */
    with_device_shape(4, 64, [] {
        reduce_case({2, 70000}, {2, 1}, FP8_DTYPE_F32, FP8_REDUCE_SUM, "rows, no workspace");
        reduce_case({700, 45}, {1, 45}, FP8_DTYPE_F32, FP8_REDUCE_MEAN, "columns, no workspace");
    });
    for (int t = 0; t < 150; t++) {
        const int ndim = t % 25 == 0 ? 8 : 1 + (int)(rng() % 5);
        auto sd = rand_dims(ndim, ndim == 8 ? 3 : 7);
        auto dd = sd;
        for (int d = 0; d < ndim; d++)
            if (rng() % 2) dd[(size_t)d] = 1;
        reduce_case(sd, dd, t % 2 ? FP8_DTYPE_BF16 : FP8_DTYPE_F32, t % 4, "random");
    }
    /* Empty sources: the sum of nothing is 0, its mean NaN, max/min refused. */
    int64_t sd[2] = {3, 0}, dd[2] = {3, 1};
    Buf y(FP8_DTYPE_F32, 3);
    CUDA_OK(fp8_cuda_reduce(ctx, y.p(), dd, nullptr, sd, FP8_DTYPE_F32, 2, FP8_REDUCE_SUM));
    CHECK(y.get(0) == 0.0f && y.get(2) == 0.0f, "sum over an empty dim: %g", y.get(0));
    CUDA_OK(fp8_cuda_reduce(ctx, y.p(), dd, nullptr, sd, FP8_DTYPE_F32, 2, FP8_REDUCE_MEAN));
    CHECK(std::isnan(y.get(1)), "mean over an empty dim: %g", y.get(1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "no value", fp8_cuda_reduce(ctx, y.p(), dd, nullptr, sd, FP8_DTYPE_F32, 2, FP8_REDUCE_MAX));
    /* NaN: max and min give NaN wherever a reduced slice holds one; sums too. */
    const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> nan_cases = {
        {{4, 50}, {4, 1}}, {{2, 70000}, {2, 1}}, {{300, 40}, {1, 40}}, {{4, 3, 5}, {1, 3, 1}}, {{3, 3000}, {3, 1}}};
    for (const auto &c : nan_cases)
        for (int alg = FP8_REDUCE_SUM; alg <= FP8_REDUCE_MIN; alg++) {
            Buf s(FP8_DTYPE_F32, prod(c.first)), r(FP8_DTYPE_F32, prod(c.second));
            fill_random(s);
            s.set((int64_t)(rng() % (uint64_t)s.n()), NAN);
            CUDA_OK(fp8_cuda_reduce(ctx, r.p(), c.second.data(), s.p(), c.first.data(), FP8_DTYPE_F32, (int)c.first.size(), alg));
            int nans = 0;
            for (int64_t i = 0; i < r.n(); i++) nans += std::isnan(r.get(i));
            CHECK(nans == 1, "reduce alg %d of %s with one NaN: %d NaN outputs", alg, dims_str(c.first).c_str(), nans);
        }
    int64_t d3[3] = {2, 3, 4}, bad[3] = {2, 5, 4};
    float buf[64];
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "not a reduction", fp8_cuda_reduce(ctx, buf, bad, buf, d3, 0, 3, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "unknown alg", fp8_cuda_reduce(ctx, buf, d3, buf, d3, 0, 3, 4));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ndim", fp8_cuda_reduce(ctx, buf, d3, buf, d3, 0, 0, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "src_dims", fp8_cuda_reduce(ctx, buf, d3, buf, nullptr, 0, 3, 0));
}

/* One copy_strided problem on the device and on the CPU, compared bit for bit:
 * a random source buffer of src_n elements, two destination buffers of dst_n
 * elements prefilled with 0xab (bytes the copy must not touch stay so), both
 * pointers shifted by `off` elements. */
void check_copy_strided(const char *what, const int64_t *dims, const int64_t *ds, const int64_t *ss, int nd,
                        int es, int64_t src_n, int64_t dst_n, int64_t off = 0) {
    Buf src = Buf::bytes(src_n * es), y = Buf::bytes(dst_n * es), ref = Buf::bytes(dst_n * es);
    for (int64_t i = 0; i < src_n * es; i++) src.as<uint8_t>()[i] = (uint8_t)rng();
    y.fill_bytes(0xab);
    ref.fill_bytes(0xab);
    uint8_t *yp = (uint8_t *)y.p() + off * es, *rp = (uint8_t *)ref.p() + off * es;
    const uint8_t *sp = (const uint8_t *)src.p() + off * es;
    CUDA_OK(fp8_cuda_copy_strided(ctx, yp, ds, sp, ss, dims, nd, es));
    CPU_OK(fp8_cpu_copy_strided(rp, ds, sp, ss, dims, nd, es));
    same_bytes(what, y, ref);
}

void copy_strided() {
    section("tensor: copy_strided");
    for (int t = 0; t < 200; t++) {
        const int ndim = t % 25 == 0 ? 8 : 1 + (int)(rng() % 5);
        auto dims = rand_dims(ndim, ndim == 8 ? 3 : 6);
        const int es = t % 3 == 0 ? 1 : t % 3 == 1 ? 2 : 4;
        /* src: a permuted view inside a larger buffer (a slice), sometimes a broadcast (stride 0) */
        std::vector<int> perm((size_t)ndim);
        for (int i = 0; i < ndim; i++) perm[(size_t)i] = i;
        std::shuffle(perm.begin(), perm.end(), rng);
        std::vector<int64_t> ss((size_t)ndim), ds((size_t)ndim);
        int64_t acc = 1;
        for (int k = ndim - 1; k >= 0; k--) {
            const int d = perm[(size_t)k];
            ss[(size_t)d] = acc;
            acc *= dims[(size_t)d] + (int64_t)(rng() % 3);
        }
        const int64_t src_n = acc;
        if (t % 9 == 0) ss[rng() % (size_t)ndim] = 0;
        acc = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            ds[(size_t)d] = acc;
            acc *= dims[(size_t)d] + (t % 4 == 0 ? 1 : 0);
        }
        char what[96];
        snprintf(what, sizeof what, "copy_strided %s of %d-byte elements", dims_str(dims).c_str(), es);
        check_copy_strided(what, dims.data(), ds.data(), ss.data(), ndim, es, src_n, acc);
    }
    /* Contiguous innermost runs (slices, cat pieces, a permutation of the outer
     * dims) move in 16/8/4-byte units when their byte length, the outer strides
     * and both pointers allow: every inner length around 16 bytes, a ragged
     * tail, and both pointers shifted by one element (a narrower unit or none). */
    for (int es : {1, 2, 4})
        for (int64_t inner : {1, 2, 3, 4, 5, 8, 12, 16, 17, 31, 32, 48, 64, 100, 256})
            for (int off : {0, 1})
                for (int perm3 : {0, 1}) {
                    /* dims (A, B, inner): src a (B, A, inner + pad) buffer read as its
                     * (A, B) transpose when perm3, else (A, B, inner + pad) sliced */
                    const int64_t A = 3, B = 5, pad = inner % 3, row = inner + pad;
                    const int64_t dims[3] = {A, B, inner};
                    const int64_t ss[3] = {perm3 ? row : B * row, perm3 ? A * row : row, 1};
                    const int64_t ds[3] = {B * inner, inner, 1};
                    const int64_t src_n = A * B * row + off, dst_n = A * B * inner + off;
                    char what[128];
                    snprintf(what, sizeof what, "copy_strided (3, 5, %lld) of %d-byte elements, %s, offset %d",
                             (long long)inner, es, perm3 ? "outer dims transposed" : "sliced", off);
                    check_copy_strided(what, dims, ds, ss, 3, es, src_n, dst_n, off);
                }
    /* Transposes (dst's innermost dim strided in src, another dim contiguous
     * in src) take 32 x 32 shared-memory tiles once both dims are >= 16: 2-D
     * ragged edges, 3-D / 4-D permutations with batch dims, a sliced source and
     * 1/2/4-byte elements, against the CPU bit for bit. */
    struct Perm {
        std::vector<int64_t> dims; /* of the source, row-major in a padded buffer */
        std::vector<int> perm;     /* dst dim i is src dim perm[i] */
    };
    const Perm perms[] = {
        {{16, 16}, {1, 0}},         {{33, 47}, {1, 0}},          {{100, 17}, {1, 0}},
        {{15, 64}, {1, 0}},         {{3, 40, 50}, {0, 2, 1}},    {{40, 3, 50}, {2, 1, 0}},
        {{20, 30, 5}, {2, 0, 1}},   {{5, 20, 33}, {2, 1, 0}},    {{2, 3, 18, 35}, {1, 0, 3, 2}},
        {{2, 17, 3, 40}, {3, 2, 0, 1}}, {{70, 2, 3, 20}, {1, 3, 2, 0}},
    };
    for (const Perm &pc : perms)
        for (int es : {1, 2, 4})
            for (int pad : {0, 3}) {
                const int nd = (int)pc.dims.size();
                std::vector<int64_t> sstr((size_t)nd), dims((size_t)nd), ss((size_t)nd), ds((size_t)nd);
                int64_t acc = 1;
                for (int d = nd - 1; d >= 0; d--) { /* the source's innermost dim padded: a slice */
                    sstr[(size_t)d] = acc;
                    acc *= pc.dims[(size_t)d] + (d == nd - 1 ? pad : 0);
                }
                const int64_t src_n = acc;
                for (int i = 0; i < nd; i++) {
                    dims[(size_t)i] = pc.dims[(size_t)pc.perm[(size_t)i]];
                    ss[(size_t)i] = sstr[(size_t)pc.perm[(size_t)i]];
                }
                acc = 1;
                for (int d = nd - 1; d >= 0; d--) {
                    ds[(size_t)d] = acc;
                    acc *= dims[(size_t)d];
                }
                char what[128];
                snprintf(what, sizeof what, "copy_strided permute of %s of %d-byte elements, pad %d",
                         dims_str(pc.dims).c_str(), es, pad);
                check_copy_strided(what, dims.data(), ds.data(), ss.data(), nd, es, src_n, acc);
            }
    /* Offsets past 2^31 take the 64-bit kernel: 5 GiB of address space reserved
     * inaccessible (no memory committed), the three pages read made readable. */
    const size_t big = ((size_t)5 << 30);
    void *m = mmap(nullptr, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(m != MAP_FAILED, "cannot reserve 5 GiB of address space for the 64-bit copy");
    if (m != MAP_FAILED) {
        uint8_t *src = (uint8_t *)m;
        const int64_t stride = (int64_t)1 << 31, dims[1] = {3}, ss[1] = {stride}, ds[1] = {1};
        for (int k = 0; k < 3; k++) {
            CHECK(mprotect(src + k * stride, 4096, PROT_READ | PROT_WRITE) == 0, "mprotect");
            src[k * stride] = (uint8_t)(10 + k);
        }
        uint8_t y[3] = {0, 0, 0};
        CUDA_OK(fp8_cuda_copy_strided(ctx, y, ds, src, ss, dims, 1, 1));
        CHECK(y[0] == 10 && y[1] == 11 && y[2] == 12, "64-bit strided copy: %d %d %d", y[0], y[1], y[2]);
        munmap(m, big);
    }
    int64_t d3[3] = {2, 3, 4}, s3[3] = {12, 4, 1}, neg[3] = {12, -4, 1}, huge[3] = {12, (int64_t)1 << 62, 1};
    float buf[64];
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "elem_size", fp8_cuda_copy_strided(ctx, buf, s3, buf, s3, d3, 3, 3));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "strides must be >= 0", fp8_cuda_copy_strided(ctx, buf, neg, buf, s3, d3, 3, 4));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "overflow", fp8_cuda_copy_strided(ctx, buf, huge, buf, s3, d3, 3, 4));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ndim", fp8_cuda_copy_strided(ctx, buf, s3, buf, s3, d3, 9, 4));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dims", fp8_cuda_copy_strided(ctx, buf, s3, buf, s3, nullptr, 3, 4));
}

void masked_fill() {
    section("tensor: masked_fill");
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int64_t mask_n : {1, 7, 64, 1000, 24})
            for (int off : {0, 1}) { /* 64, 1000 (and 24 for f32): 16-byte vectors unless y is one element off */
            const int64_t n = mask_n * 37;
            Buf s(dt, n), y(dt, n, off * dtype_size(dt)), ref(dt, n), m = Buf::bytes(mask_n);
            for (int64_t i = 0; i < mask_n; i++) m.as<uint8_t>()[i] = rng() % 3 == 0 ? (uint8_t)(1 + rng() % 200) : 0;
            fill_random(s, 1.0f, true);
            CUDA_OK(fp8_cuda_masked_fill(ctx, y.p(), s.p(), m.as<uint8_t>(), dt, n, mask_n, -1e9f));
            CPU_OK(fp8_cpu_masked_fill(ref.p(), s.p(), m.as<uint8_t>(), dt, n, mask_n, -1e9f));
            char what[64];
            snprintf(what, sizeof what, "masked_fill %s mask_n %lld%s", dt_name(dt), (long long)mask_n, off ? " (dst off)" : "");
            same_bytes(what, y, ref);
            CUDA_OK(fp8_cuda_masked_fill(ctx, s.p(), s.p(), m.as<uint8_t>(), dt, n, mask_n, -1e9f));
            same_bytes("masked_fill in place", s, ref);
        }
    float buf[64];
    uint8_t m[4] = {0};
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "not a multiple", fp8_cuda_masked_fill(ctx, buf, buf, m, 0, 10, 3, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "mask_n", fp8_cuda_masked_fill(ctx, buf, buf, m, 0, 10, 0, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_mask is NULL", fp8_cuda_masked_fill(ctx, buf, buf, nullptr, 0, 10, 5, 0));
}

/* src/tensor/ops/reduce.ts argmax: the first NaN, else the first largest. */
int32_t argmax_ref(const Buf &x, int64_t r, int64_t cols) {
    int32_t best = 0;
    float bv = x.get(r * cols);
    for (int64_t k = 1; k < cols && !std::isnan(bv); k++) {
        const float c = x.get(r * cols + k);
        if (c > bv || std::isnan(c)) best = (int32_t)k, bv = c;
    }
    return best;
}

void argmax() {
    section("tensor: argmax");
    const int64_t shapes[][2] = {{1, 1}, {37, 5}, {300, 100}, {9, 1024}, {5, 1025}, {3, 5000}, {40, 70}, {0, 3}};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (const auto &sh : shapes) {
            const int64_t rows = sh[0], cols = sh[1];
            Buf x(dt, rows * cols);
            for (int64_t r = 0; r < rows; r++) {
                const int kind = (int)(r % 6); /* ties, all -inf, +-0, NaNs, infs, random */
                for (int64_t j = 0; j < cols; j++) {
                    float v = kind == 0 ? (float)(rng() % 4) : kind == 1 ? -INFINITY : kind == 2 ? 0.0f : randn();
                    if (kind == 2 && rng() % 2) v = -0.0f;
                    x.set(r * cols + j, v);
                }
                if (kind == 3) x.set(r * cols + (int64_t)(rng() % (uint64_t)cols), NAN), x.set(r * cols + (int64_t)(rng() % (uint64_t)cols), NAN);
                if (kind == 4) x.set(r * cols + (int64_t)(rng() % (uint64_t)cols), INFINITY), x.set(r * cols + (int64_t)(rng() % (uint64_t)cols), INFINITY);
            }
            Buf y(FP8_DTYPE_I32, rows), ref(FP8_DTYPE_I32, rows);
            for (int64_t r = 0; r < rows; r++) ref.as<int32_t>()[r] = argmax_ref(x, r, cols);
            CUDA_OK(fp8_cuda_argmax(ctx, y.as<int32_t>(), x.p(), dt, rows, cols));
            char what[64];
            snprintf(what, sizeof what, "argmax (%lld, %lld) %s", (long long)rows, (long long)cols, dt_name(dt));
            same_bytes(what, y, ref);
        }
    float buf[4];
    int32_t idx[4];
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "an empty row", fp8_cuda_argmax(ctx, idx, buf, 0, 4, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "overflows", fp8_cuda_argmax(ctx, idx, buf, 0, (int64_t)1 << 40, (int64_t)1 << 30));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dtype", fp8_cuda_argmax(ctx, idx, buf, FP8_DTYPE_I32, 1, 1));
}

}  // namespace

void test_tensor() {
    eltwise();
    binary();
    reduce();
    copy_strided();
    masked_fill();
    argmax();
}

}  // namespace harness
