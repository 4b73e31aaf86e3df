/*
 * eltwise_test.cpp — eltwise_kernels.cu: fill (against fp8_cpu_fill, bit for
 * bit), the counter-based randn (deterministic, normal, bf16 = rounded f32),
 * bias add (one f32 add, rounded once: exact) and the bias gradient (column
 * sums: one slice, several slices summed in a second pass, a workspace too
 * small for slices).
 */
#include "harness.h"

namespace harness {

namespace {

void fill() {
    section("eltwise: fill");
    const double values[] = {1.5, -0.0, 3.3, 1e40, -65504.7, NAN};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16, FP8_DTYPE_I32})
        for (double v : values)
            for (int64_t n : {0, 1, 4, 8, 9, 4097})
                for (int mis : {0, 2}) { /* 16-byte stores (and a tail) when aligned, else one by one */
                    if (dt == FP8_DTYPE_I32 && (std::isnan(v) || std::fabs(v) > 1e9)) continue;
                    Buf y(dt, n, mis), ref(dt, n);
                    CUDA_OK(fp8_cuda_fill(ctx, y.p(), dt, n, v));
                    CPU_OK(fp8_cpu_fill(ref.p(), dt, n, v));
                    char what[80];
                    snprintf(what, sizeof what, "fill %s n %lld value %g misaligned by %d", dt_name(dt), (long long)n,
                             v, mis);
                    same_bytes(what, y, ref);
                }
    float f;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dtype", fp8_cuda_fill(ctx, &f, FP8_DTYPE_E4M3FN, 1, 0.0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "n must be >= 0", fp8_cuda_fill(ctx, &f, FP8_DTYPE_F32, -1, 0.0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_dst is NULL", fp8_cuda_fill(ctx, nullptr, FP8_DTYPE_F32, 1, 0.0));
}

void randn_device() {
    section("eltwise: randn");
    const int64_t n = 200003;
    Buf a(FP8_DTYPE_F32, n), b(FP8_DTYPE_F32, n), c(FP8_DTYPE_F32, n), h(FP8_DTYPE_BF16, n), s(FP8_DTYPE_F32, n);
    CUDA_OK(fp8_cuda_randn(ctx, a.p(), FP8_DTYPE_F32, n, 42, 0.0f, 1.0f));
    CUDA_OK(fp8_cuda_randn(ctx, b.p(), FP8_DTYPE_F32, n, 42, 0.0f, 1.0f));
    CUDA_OK(fp8_cuda_randn(ctx, c.p(), FP8_DTYPE_F32, n, 43, 0.0f, 1.0f));
    CUDA_OK(fp8_cuda_randn(ctx, h.p(), FP8_DTYPE_BF16, n, 42, 0.0f, 1.0f));
    CUDA_OK(fp8_cuda_randn(ctx, s.p(), FP8_DTYPE_F32, n, 42, 3.0f, 2.0f));
    same_bytes("randn with one seed twice", a, b);
    int64_t same = 0;
    double sum = 0, sq = 0;
    bool finite = true, rounded = true, shifted = true;
    for (int64_t i = 0; i < n; i++) {
        const float x = a.get(i);
        same += x == c.get(i);
        sum += x;
        sq += (double)x * x;
        finite &= std::isfinite(x);
        rounded &= h.as<uint16_t>()[i] == fp8_f32_to_bf16(x);
        shifted &= s.get(i) == 3.0f + 2.0f * x;
    }
    const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
    CHECK(same < 10, "randn: seeds 42 and 43 agree in %lld places", (long long)same);
    CHECK(finite && std::fabs(mean) < 0.01 && std::fabs(sd - 1.0) < 0.01, "randn: mean %g, std %g", mean, sd);
    CHECK(rounded, "randn: bf16 output is not the f32 output rounded");
    CHECK(shifted, "randn: mean + std * z differs from mean 0, std 1 shifted and scaled");
    float f;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dtype", fp8_cuda_randn(ctx, &f, FP8_DTYPE_I32, 1, 0, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "n must be >= 0", fp8_cuda_randn(ctx, &f, FP8_DTYPE_F32, -1, 0, 0, 1));
}

void bias() {
    section("eltwise: bias_add");
    /* 16-byte vectors of columns (cols a multiple of 4 f32 / 8 bf16, y aligned),
     * ragged columns, and y one element off alignment: the same bits */
    const int64_t shapes[][2] = {{0, 5}, {5, 0}, {1, 1}, {7, 300}, {300, 7}, {2000, 3}, {9, 64}, {5, 2056}};
    for (int32_t ydt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int32_t bdt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
            for (const auto &sh : shapes)
            for (int off : {0, 1}) {
                const int64_t rows = sh[0], cols = sh[1];
                Buf y(ydt, rows * cols, off * dtype_size(ydt)), ref(ydt, rows * cols), b(bdt, cols);
                fill_random(y, 1.0f, true);
                fill_random(b, 3.0f);
                ref.copy_from(y);
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = 0; c < cols; c++) ref.set(r * cols + c, ref.get(r * cols + c) + b.get(c));
                CUDA_OK(fp8_cuda_bias_add(ctx, y.p(), ydt, b.p(), bdt, rows, cols));
                char what[96];
                snprintf(what, sizeof what, "bias_add (%lld, %lld) %s + %s%s", (long long)rows, (long long)cols, dt_name(ydt),
                         dt_name(bdt), off ? ", y one element off" : "");
                same_bytes(what, y, ref);
            }
    float f;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "y_dtype", fp8_cuda_bias_add(ctx, &f, FP8_DTYPE_I32, &f, FP8_DTYPE_F32, 1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "bias_dtype", fp8_cuda_bias_add(ctx, &f, FP8_DTYPE_F32, &f, FP8_DTYPE_E5M2, 1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "rows and cols", fp8_cuda_bias_add(ctx, &f, FP8_DTYPE_F32, &f, FP8_DTYPE_F32, -1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_bias is NULL", fp8_cuda_bias_add(ctx, &f, FP8_DTYPE_F32, nullptr, FP8_DTYPE_F32, 1, 1));

    section("eltwise: bias_grad");
    /* dy aligned with vectors of columns (40, 300 f32; 40, 264 bf16), ragged, and
     * one element off alignment, which must give the aligned run's bits */
    const int64_t gshapes[][2] = {{0, 5}, {5, 0}, {1, 1}, {50, 33}, {1000, 40}, {3000, 7}, {129, 300}, {700, 264}};
    for (int32_t ddt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int32_t ydt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
            for (const auto &sh : gshapes)
                for (size_t ws : {(size_t)-1, (size_t)64}) { /* 64 bytes: no room for partial sums */
                    const int64_t rows = sh[0], cols = sh[1];
                    Buf dy(ydt, rows * cols), db(ddt, cols), ref(ddt, cols), dy_off(ydt, rows * cols, dtype_size(ydt)),
                        db_off(ddt, cols);
                    fill_random(dy);
                    for (int64_t c = 0; c < cols; c++) {
                        double s = 0;
                        for (int64_t r = 0; r < rows; r++) s += dy.get(r * cols + c);
                        ref.set(c, (float)s);
                    }
                    dy_off.copy_from(dy);
                    with_device_shape(4, ws, [&] {
                        CUDA_OK(fp8_cuda_bias_grad(ctx, db.p(), ddt, dy.p(), ydt, rows, cols));
                        CUDA_OK(fp8_cuda_bias_grad(ctx, db_off.p(), ddt, dy_off.p(), ydt, rows, cols));
                    });
                    char what[96];
                    snprintf(what, sizeof what, "bias_grad (%lld, %lld) %s -> %s workspace %s", (long long)rows,
                             (long long)cols, dt_name(ydt), dt_name(ddt), ws == 64 ? "64 bytes" : "full");
                    close(what, db, ref, rtol_for(ddt), 2e-6 * (double)rows + 1e-6);
                    same_bytes(what, db_off, db); /* dy one element off: element loads, the same sums */
                }
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dbias_dtype", fp8_cuda_bias_grad(ctx, &f, FP8_DTYPE_U8, &f, FP8_DTYPE_F32, 1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dy_dtype", fp8_cuda_bias_grad(ctx, &f, FP8_DTYPE_F32, &f, FP8_DTYPE_I32, 1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_dy is NULL", fp8_cuda_bias_grad(ctx, &f, FP8_DTYPE_F32, nullptr, FP8_DTYPE_F32, 1, 1));
}

}  // namespace

void test_eltwise() {
    fill();
    randn_device();
    bias();
}

}  // namespace harness
