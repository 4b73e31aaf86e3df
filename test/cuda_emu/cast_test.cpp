/*
 * cast_test.cpp — cast_kernels.cu against libfp8/src/cpu (cast.c, rowwise.c),
 * bit for bit: amax and scales, quantize (vector, unrolled, scalar and tail
 * paths), the fused quantize + transpose (full and edge tiles), row-wise
 * quantize (a warp or a block per row), dequantize, convert between every
 * pair of dtypes, the power-of-2 rounding of scales, delayed scaling.
 */
#include "harness.h"

namespace harness {

namespace {

const int32_t kHp[] = {FP8_DTYPE_F32, FP8_DTYPE_BF16};
const int32_t kFp8[] = {FP8_DTYPE_E4M3FN, FP8_DTYPE_E5M2};

/* Both cast encoders: the emulator runs the reference encoder for HARDWARE
 * too (its cvt is device assembly), but every launch site runs. */
template <class F>
void for_each_cast_kernel(F &&body) {
    for (int32_t k : {FP8_CUDA_CAST_REFERENCE, FP8_CUDA_CAST_HARDWARE}) {
        CUDA_OK(fp8_cuda_set_cast_kernel(ctx, k));
        body(k);
    }
    CUDA_OK(fp8_cuda_set_cast_kernel(ctx, FP8_CUDA_CAST_REFERENCE));
}

/* Values near the fp8 grids' rounding points, after a multiply by `scale`. */
void fill_cast_inputs(Buf &x, float scale) {
    fill_random(x, 300.0f / (scale > 0 && std::isfinite(scale) ? scale : 1.0f), true);
    for (int64_t i = (int64_t)special_values().size(); i < x.n(); i += 7) {
        /* m * 2^e with a mantissa at or next to a tie of e4m3 (3 bits) or e5m2 (2 bits) */
        const float m = 1.0f + (float)(rng() % 16) / 16.0f + (rng() % 2 ? 1.0f / 32.0f : 0.0f);
        const int e = (int)(rng() % 30) - 20;
        const float v = std::ldexp(m, e) / (scale > 0 && std::isfinite(scale) ? scale : 1.0f);
        x.set(i, rng() % 2 ? v : -v);
    }
}

void amax_and_scales() {
    section("cast: amax");
    for (int32_t dt : kHp)
        for (int64_t n : {0, 1, 5, 33, 1000, 4099, 70001}) {
            for (int misalign : {0, 4}) {
                Buf x(dt, n, dt == FP8_DTYPE_BF16 ? misalign / 2 : misalign);
                fill_random(x, 10.0f, n > 40);
                if (n > 200 && misalign == 0) x.set(n / 2, rng() % 2 ? NAN : -INFINITY);
                for (int rep = 0; rep < 2; rep++) { /* the second launch checks that scratch was reset */
                    Buf amax(FP8_DTYPE_F32, 1), cpu(FP8_DTYPE_F32, 1);
                    CUDA_OK(fp8_cuda_amax(ctx, amax.as<float>(), x.p(), dt, n));
                    CPU_OK(fp8_cpu_amax(cpu.as<float>(), x.p(), dt, n));
                    char what[96];
                    snprintf(what, sizeof what, "amax %s n %lld misalign %d launch %d", dt_name(dt), (long long)n, misalign, rep);
                    same_bytes(what, amax, cpu);
                }
                for (int32_t f8 : kFp8)
                    for (int clamp : {0, 1}) {
                        Buf amax(FP8_DTYPE_F32, 1), scale(FP8_DTYPE_F32, 1), ca(FP8_DTYPE_F32, 1), cs(FP8_DTYPE_F32, 1);
                        CUDA_OK(fp8_cuda_amax_to_scale(ctx, amax.as<float>(), scale.as<float>(), x.p(), dt, n, f8, clamp));
                        CPU_OK(fp8_cpu_amax_to_scale(ca.as<float>(), cs.as<float>(), x.p(), dt, n, f8, clamp));
                        same_bytes("amax_to_scale amax", amax, ca);
                        same_bytes("amax_to_scale scale", scale, cs);
                        Buf alone(FP8_DTYPE_F32, 1); /* no amax out: the scale alone, the same bits */
                        CUDA_OK(fp8_cuda_amax_to_scale(ctx, nullptr, alone.as<float>(), x.p(), dt, n, f8, clamp));
                        same_bytes("amax_to_scale scale (no amax out)", alone, cs);
                    }
            }
        }
    /* A big input on a 1-SM device: the unrolled loop, several blocks meeting in scratch. */
    with_device_shape(1, (size_t)-1, [] {
        for (int32_t dt : kHp) {
            Buf x(dt, 150001);
            fill_random(x, 2.0f);
            x.set(140000, -77.0f);
            Buf amax(FP8_DTYPE_F32, 1), cpu(FP8_DTYPE_F32, 1);
            CUDA_OK(fp8_cuda_amax(ctx, amax.as<float>(), x.p(), dt, x.n()));
            CPU_OK(fp8_cpu_amax(cpu.as<float>(), x.p(), dt, x.n()));
            same_bytes("amax (unrolled)", amax, cpu);
        }
    });

    section("cast: scale_from_amax");
    const float amaxes[] = {0.0f, 1e-13f, 1e-12f, 1e-40f, 1.0f, 3.0f, 448.0f, 1e-3f, 0.007f, 57344.0f, 3e38f, INFINITY, NAN};
    for (float a : amaxes)
        for (int32_t f8 : kFp8)
            for (int clamp : {0, 1}) {
                Buf amax(FP8_DTYPE_F32, 1), scale(FP8_DTYPE_F32, 1), ca(FP8_DTYPE_F32, 1), cs(FP8_DTYPE_F32, 1);
                amax.set(0, a);
                CUDA_OK(fp8_cuda_scale_from_amax(ctx, scale.as<float>(), amax.as<float>(), f8, clamp));
                CPU_OK(fp8_cpu_amax_to_scale(ca.as<float>(), cs.as<float>(), amax.p(), FP8_DTYPE_F32, 1, f8, clamp));
                same_bytes("scale_from_amax", scale, cs);
            }

    section("cast: round_scales_pow2");
    for (int64_t n : {0, 1, 13, 5000}) {
        Buf s(FP8_DTYPE_F32, n), ref(FP8_DTYPE_F32, n);
        const float specials[] = {0.0f, -0.0f, 1.0f, 0.75f, 3.0f, 1e-40f, -2.5f, INFINITY, NAN, 448.0f, 3.4e38f, 1.17549435e-38f, 2.0f};
        for (int64_t i = 0; i < n; i++) s.set(i, i < 13 ? specials[i] : std::fabs(randn()) * 1000.0f);
        for (int64_t i = 0; i < n; i++) {
            const float v = s.get(i);
            /* 2^floor(log2 v) for finite positive normals; everything else as it was */
            ref.set(i, std::isfinite(v) && v >= 1.17549435e-38f ? std::ldexp(1.0f, std::ilogb(v)) : v);
        }
        CUDA_OK(fp8_cuda_round_scales_pow2(ctx, s.as<float>(), n));
        same_bytes("round_scales_pow2", s, ref);
    }

    section("cast: scale errors");
    float f = 0;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_amax", fp8_cuda_amax(ctx, nullptr, &f, FP8_DTYPE_F32, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "src_dtype", fp8_cuda_amax(ctx, &f, &f, FP8_DTYPE_E4M3FN, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "n must be >= 0", fp8_cuda_amax(ctx, &f, &f, FP8_DTYPE_F32, -1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_src is NULL", fp8_cuda_amax(ctx, &f, nullptr, FP8_DTYPE_F32, 3));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ctx is NULL", fp8_cuda_amax(nullptr, &f, &f, FP8_DTYPE_F32, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "fp8_dtype", fp8_cuda_amax_to_scale(ctx, &f, &f, &f, FP8_DTYPE_F32, 1, FP8_DTYPE_BF16, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_scale", fp8_cuda_amax_to_scale(ctx, &f, nullptr, &f, FP8_DTYPE_F32, 1, FP8_DTYPE_E5M2, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "fp8_dtype", fp8_cuda_scale_from_amax(ctx, &f, &f, 7, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_amax", fp8_cuda_scale_from_amax(ctx, &f, nullptr, FP8_DTYPE_E4M3FN, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "n must be >= 0", fp8_cuda_round_scales_pow2(ctx, &f, -2));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_scale is NULL", fp8_cuda_round_scales_pow2(ctx, nullptr, 2));
}

void quantize() {
    section("cast: quantize");
    const float scales[] = {1.0f, 0.37109375f, 144.5f, 1e30f, 1e-30f, 3.0e-41f, INFINITY, 0.0f, -2.0f, NAN, -NAN};
    for_each_cast_kernel([&](int) {
        for (int32_t dt : kHp)
            for (int32_t f8 : kFp8)
                for (float sc : scales)
                    for (int64_t n : {0, 1, 3, 37, 4100, 9003}) {
                        for (int mis : {0, 1}) {
                            if (mis && n < 100) continue;
                            /* a misaligned src or dst takes the scalar path */
                            Buf x(dt, n, mis ? dtype_size(dt) : 0), q(f8, n), ref(f8, n);
                            Buf q_unaligned(f8, n, 1);
                            Buf s(FP8_DTYPE_F32, 1);
                            s.set(0, sc);
                            fill_cast_inputs(x, sc);
                            CUDA_OK(fp8_cuda_quantize(ctx, q.p(), f8, x.p(), dt, n, s.as<float>()));
                            CPU_OK(fp8_cpu_quantize(ref.p(), f8, x.p(), dt, n, s.as<float>()));
                            /* x NaN times a NaN scale: the device keeps the scale's NaN, as the
                             * CPU's vector kernels do (vmulps, scale first); the CPU's scalar
                             * code (small n, tails) keeps x's, so the CPU is not the oracle here. */
                            if (std::isnan(sc))
                                for (int64_t i = 0; i < n; i++)
                                    if (std::isnan(x.get(i))) ref.as<uint8_t>()[i] = std::signbit(sc) ? 0xff : 0x7f;
                            char what[96];
                            snprintf(what, sizeof what, "quantize %s -> %s, scale %g, n %lld%s", dt_name(dt), dt_name(f8), sc,
                                     (long long)n, mis ? ", src misaligned" : "");
                            same_bytes(what, q, ref);
                            if (n > 100 && !mis) {
                                CUDA_OK(fp8_cuda_quantize(ctx, q_unaligned.p(), f8, x.p(), dt, n, s.as<float>()));
                                same_bytes("quantize (dst unaligned)", q_unaligned, ref);
                            }
                        }
                    }
    });
    with_device_shape(1, (size_t)-1, [] {
        for (int32_t dt : kHp) {
            Buf x(dt, 70007), q(FP8_DTYPE_E4M3FN, 70007), ref(FP8_DTYPE_E4M3FN, 70007), s(FP8_DTYPE_F32, 1);
            s.set(0, 37.0f);
            fill_cast_inputs(x, 37.0f);
            CUDA_OK(fp8_cuda_quantize(ctx, q.p(), FP8_DTYPE_E4M3FN, x.p(), dt, x.n(), s.as<float>()));
            CPU_OK(fp8_cpu_quantize(ref.p(), FP8_DTYPE_E4M3FN, x.p(), dt, x.n(), s.as<float>()));
            same_bytes("quantize (unrolled)", q, ref);
        }
    });

    section("cast: quantize errors");
    float f = 1;
    uint8_t b[4];
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "fp8_dtype", fp8_cuda_quantize(ctx, b, FP8_DTYPE_F32, &f, FP8_DTYPE_F32, 1, &f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "src_dtype", fp8_cuda_quantize(ctx, b, FP8_DTYPE_E5M2, &f, FP8_DTYPE_E5M2, 1, &f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_scale", fp8_cuda_quantize(ctx, b, FP8_DTYPE_E5M2, &f, FP8_DTYPE_F32, 1, nullptr));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_dst_fp8 is NULL", fp8_cuda_quantize(ctx, nullptr, FP8_DTYPE_E5M2, &f, FP8_DTYPE_F32, 1, &f));
}

void quantize_transpose() {
    section("cast: quantize_transpose");
    const int64_t shapes[][2] = {{64, 64}, {128, 192}, {65, 67}, {3, 5}, {1, 1}, {4, 8}, {100, 4}, {0, 5}, {5, 0}, {192, 68}, {128, 70}, {66, 64}};
    for_each_cast_kernel([&](int) {
        for (int32_t dt : kHp)
            for (int32_t f8 : kFp8)
                for (const auto &sh : shapes)
                    for (int variant = 0; variant < 4; variant++) {
                        /* 0: both outputs; 1: only dst; 2: only dst_t; 3: misaligned src (no vectors) */
                        const int64_t rows = sh[0], cols = sh[1], n = rows * cols;
                        Buf x(dt, n, variant == 3 ? dtype_size(dt) : 0), q(f8, n), qt(f8, n), ref(f8, n), ref_t(f8, n), s(FP8_DTYPE_F32, 1);
                        s.set(0, 11.0f);
                        fill_cast_inputs(x, 11.0f);
                        CUDA_OK(fp8_cuda_quantize_transpose(ctx, variant == 2 ? nullptr : q.p(), variant == 1 ? nullptr : qt.p(),
                                                            f8, x.p(), dt, rows, cols, s.as<float>()));
                        CPU_OK(fp8_cpu_quantize(ref.p(), f8, x.p(), dt, n, s.as<float>()));
                        for (int64_t r = 0; r < rows; r++)
                            for (int64_t c = 0; c < cols; c++) ref_t.as<uint8_t>()[c * rows + r] = ref.as<uint8_t>()[r * cols + c];
                        char what[128];
                        snprintf(what, sizeof what, "quantize_transpose (%lld, %lld) %s -> %s variant %d", (long long)rows,
                                 (long long)cols, dt_name(dt), dt_name(f8), variant);
                        if (variant != 2) same_bytes(what, q, ref);
                        if (variant != 1) same_bytes(what, qt, ref_t);
                    }
    });
    float f = 1;
    uint8_t b[4];
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "both NULL",
               fp8_cuda_quantize_transpose(ctx, nullptr, nullptr, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, 1, &f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "rows and cols", fp8_cuda_quantize_transpose(ctx, b, b, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, -1, 1, &f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "too many", fp8_cuda_quantize_transpose(ctx, b, b, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32,
                                                                            (int64_t)1 << 40, (int64_t)1 << 20, &f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_scale", fp8_cuda_quantize_transpose(ctx, b, b, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, 1, nullptr));
}

void quantize_rowwise() {
    section("cast: quantize_rowwise");
    const int64_t shapes[][2] = {{0, 5}, {5, 0}, {1, 1}, {9, 33}, {17, 1024}, {8, 1025}, {3, 4096}, {2, 1500}, {40, 8}, {11, 24}};
    for_each_cast_kernel([&](int) {
        for (int32_t dt : kHp)
            for (int32_t f8 : kFp8)
                for (const auto &sh : shapes)
                    for (int pow2 : {0, 1})
                        for (int mis : {0, 1}) {
                            const int64_t rows = sh[0], cols = sh[1], n = rows * cols;
                            Buf x(dt, n, mis ? dtype_size(dt) : 0), q(f8, n), ref(f8, n), s(FP8_DTYPE_F32, rows), rs(FP8_DTYPE_F32, rows);
                            fill_random(x, 5.0f);
                            for (int64_t r = 0; r < rows; r++) {
                                const int kind = (int)(r % 5);
                                const float row_scale = std::ldexp(1.0f, (int)(rng() % 40) - 20);
                                for (int64_t c = 0; c < cols; c++) {
                                    float v = x.get(r * cols + c) * row_scale;
                                    if (kind == 1) v = 0.0f;
                                    x.set(r * cols + c, v);
                                }
                                if (cols > 0 && kind == 2) x.set(r * cols + (int64_t)(rng() % (uint64_t)cols), NAN);
                                if (cols > 0 && kind == 3) x.set(r * cols + (int64_t)(rng() % (uint64_t)cols), -INFINITY);
                            }
                            CUDA_OK(fp8_cuda_quantize_rowwise(ctx, q.p(), s.as<float>(), f8, x.p(), dt, rows, cols, pow2));
                            CPU_OK(fp8_cpu_quantize_rowwise(ref.p(), rs.as<float>(), f8, x.p(), dt, rows, cols, pow2));
                            char what[128];
                            snprintf(what, sizeof what, "quantize_rowwise (%lld, %lld) %s -> %s pow2 %d%s", (long long)rows,
                                     (long long)cols, dt_name(dt), dt_name(f8), pow2, mis ? " misaligned" : "");
                            same_bytes(what, s, rs);
                            same_bytes(what, q, ref);
                        }
    });
    float f = 1;
    uint8_t b[4];
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "exceeds", fp8_cuda_quantize_rowwise(ctx, b, &f, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32,
                                                                         (int64_t)1 << 32, 0, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_scale", fp8_cuda_quantize_rowwise(ctx, b, nullptr, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, 1, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "rows and cols", fp8_cuda_quantize_rowwise(ctx, b, &f, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, -1, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "src_dtype", fp8_cuda_quantize_rowwise(ctx, b, &f, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_I32, 1, 1, 0));
}

void dequantize_and_convert() {
    section("cast: dequantize");
    const float scales[] = {1.0f, 0.37109375f, 1e-30f, 3e30f, 0.0f, NAN, INFINITY, -2.0f};
    for (int32_t f8 : kFp8)
        for (int32_t dt : kHp)
            for (float sc : scales) {
                const int64_t n = 256 * 3 + 5;
                Buf q(f8, n), y(dt, n), ref(dt, n), s(FP8_DTYPE_F32, 1);
                for (int64_t i = 0; i < n; i++) q.as<uint8_t>()[i] = (uint8_t)(i < 768 ? i : rng());
                s.set(0, sc);
                CUDA_OK(fp8_cuda_dequantize(ctx, y.p(), dt, q.p(), f8, n, s.as<float>()));
                CPU_OK(fp8_cpu_dequantize(ref.p(), dt, q.p(), f8, n, s.as<float>()));
                char what[96];
                snprintf(what, sizeof what, "dequantize %s -> %s scale %g", dt_name(f8), dt_name(dt), sc);
                same_bytes(what, y, ref);
            }
    float f = 1;
    uint8_t b[4];
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dst_dtype", fp8_cuda_dequantize(ctx, &f, FP8_DTYPE_E4M3FN, b, FP8_DTYPE_E4M3FN, 1, &f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "fp8_dtype", fp8_cuda_dequantize(ctx, &f, FP8_DTYPE_F32, b, FP8_DTYPE_BF16, 1, &f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_scale", fp8_cuda_dequantize(ctx, &f, FP8_DTYPE_F32, b, FP8_DTYPE_E5M2, 1, nullptr));

    section("cast: convert");
    const int32_t all[] = {FP8_DTYPE_F32, FP8_DTYPE_BF16, FP8_DTYPE_E4M3FN, FP8_DTYPE_E5M2};
    for_each_cast_kernel([&](int) {
        for (int32_t src_dt : all)
            for (int32_t dst_dt : all) {
                const int64_t n = src_dt == FP8_DTYPE_BF16 ? 65536 + 3 : src_dt == FP8_DTYPE_F32 ? 5001 : 256 * 2 + 1;
                Buf x(src_dt, n), y(dst_dt, n), ref(dst_dt, n);
                if (src_dt == FP8_DTYPE_F32) {
                    fill_cast_inputs(x, 1.0f);
                } else if (src_dt == FP8_DTYPE_BF16) {
                    for (int64_t i = 0; i < n; i++) x.as<uint16_t>()[i] = (uint16_t)i; /* every bf16 */
                } else {
                    for (int64_t i = 0; i < n; i++) x.as<uint8_t>()[i] = (uint8_t)i; /* every fp8 byte */
                }
                CUDA_OK(fp8_cuda_convert(ctx, y.p(), dst_dt, x.p(), src_dt, n));
                CPU_OK(fp8_cpu_convert(ref.p(), dst_dt, x.p(), src_dt, n));
                char what[96];
                snprintf(what, sizeof what, "convert %s -> %s", dt_name(src_dt), dt_name(dst_dt));
                same_bytes(what, y, ref);
            }
    });
    CUDA_OK(fp8_cuda_convert(ctx, nullptr, FP8_DTYPE_F32, nullptr, FP8_DTYPE_BF16, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dst_dtype", fp8_cuda_convert(ctx, &f, FP8_DTYPE_I32, &f, FP8_DTYPE_F32, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "src_dtype", fp8_cuda_convert(ctx, &f, FP8_DTYPE_F32, &f, 99, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "n must be >= 0", fp8_cuda_convert(ctx, &f, FP8_DTYPE_F32, &f, FP8_DTYPE_BF16, -1));
}

void delayed_scaling() {
    section("cast: sync_amax_history");
    for (int64_t count : {0, 1, 5, 300})
        for (int64_t len : {1, 4, 16}) {
            /* one block of histories per side, amax and scale slots after them */
            const int64_t per = len + 2;
            std::vector<float> dev((size_t)(count * per)), cpu;
            std::vector<int32_t> dtypes((size_t)count), clamps((size_t)count);
            for (int64_t i = 0; i < count; i++) {
                for (int64_t j = 0; j < per; j++) dev[(size_t)(i * per + j)] = std::fabs(randn()) * std::ldexp(1.0f, (int)(rng() % 60) - 30);
                if (i % 7 == 3) dev[(size_t)(i * per + rng() % (uint64_t)len)] = NAN;
                if (i % 11 == 5) dev[(size_t)(i * per + len)] = NAN; /* the new amax */
                if (i % 13 == 6) dev[(size_t)(i * per + len)] = 0.0f;
                dtypes[(size_t)i] = rng() % 2 ? FP8_DTYPE_E4M3FN : FP8_DTYPE_E5M2;
                clamps[(size_t)i] = (int32_t)(rng() % 2);
            }
            cpu = dev;
            auto tables = [&](std::vector<float> &v, std::vector<float *> &amax, std::vector<float *> &hist,
                              std::vector<float *> &scale) {
                for (int64_t i = 0; i < count; i++) {
                    float *h = v.data() + i * per;
                    hist.push_back(h);
                    /* every fourth tensor's amax aliases its own history's last slot */
                    amax.push_back(i % 4 == 1 ? h + len - 1 : h + len);
                    scale.push_back(h + len + 1);
                }
            };
            std::vector<float *> da, dh, ds, ca, ch, cs;
            tables(dev, da, dh, ds);
            tables(cpu, ca, ch, cs);
            CUDA_OK(fp8_cuda_sync_amax_history(ctx, da.data(), dh.data(), ds.data(), dtypes.data(), clamps.data(), count, len));
            CPU_OK(fp8_cpu_sync_amax_history(ca.data(), ch.data(), cs.data(), dtypes.data(), clamps.data(), count, len));
            char what[96];
            snprintf(what, sizeof what, "sync_amax_history count %lld history_len %lld", (long long)count, (long long)len);
            same_bytes(what, dev.data(), cpu.data(), dev.size() * 4, FP8_DTYPE_F32);
        }
    float *p = nullptr;
    int32_t i = 0;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "history_len", fp8_cuda_sync_amax_history(ctx, &p, &p, &p, &i, &i, 1, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "count", fp8_cuda_sync_amax_history(ctx, &p, &p, &p, &i, &i, -1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_scale is NULL", fp8_cuda_sync_amax_history(ctx, &p, &p, nullptr, &i, &i, 1, 1));
}

/* The grids an H200 (132 SMs) gets: more blocks meeting in amax's scratch,
 * shorter grid-stride loops. */
void on_a_full_size_device() {
    section("cast: 132 SMs");
    with_device_shape(132, (size_t)-1, [] {
        for (int32_t dt : kHp) {
            Buf x(dt, 300001), q(FP8_DTYPE_E5M2, 300001), ref(FP8_DTYPE_E5M2, 300001);
            fill_cast_inputs(x, 1.0f);
            Buf amax(FP8_DTYPE_F32, 1), scale(FP8_DTYPE_F32, 1), ca(FP8_DTYPE_F32, 1), cs(FP8_DTYPE_F32, 1);
            CUDA_OK(fp8_cuda_amax_to_scale(ctx, amax.as<float>(), scale.as<float>(), x.p(), dt, x.n(), FP8_DTYPE_E5M2, 0));
            CPU_OK(fp8_cpu_amax_to_scale(ca.as<float>(), cs.as<float>(), x.p(), dt, x.n(), FP8_DTYPE_E5M2, 0));
            same_bytes("amax_to_scale on 132 SMs", amax, ca);
            same_bytes("amax_to_scale on 132 SMs", scale, cs);
            CUDA_OK(fp8_cuda_quantize(ctx, q.p(), FP8_DTYPE_E5M2, x.p(), dt, x.n(), scale.as<float>()));
            CPU_OK(fp8_cpu_quantize(ref.p(), FP8_DTYPE_E5M2, x.p(), dt, x.n(), cs.as<float>()));
            same_bytes("quantize on 132 SMs", q, ref);
            const int64_t rows = 150, cols = 2000;
            Buf r(FP8_DTYPE_E4M3FN, rows * cols), rref(FP8_DTYPE_E4M3FN, rows * cols), s(FP8_DTYPE_F32, rows), sref(FP8_DTYPE_F32, rows);
            CUDA_OK(fp8_cuda_quantize_rowwise(ctx, r.p(), s.as<float>(), FP8_DTYPE_E4M3FN, x.p(), dt, rows, cols, 1));
            CPU_OK(fp8_cpu_quantize_rowwise(rref.p(), sref.as<float>(), FP8_DTYPE_E4M3FN, x.p(), dt, rows, cols, 1));
            same_bytes("quantize_rowwise on 132 SMs", s, sref);
            same_bytes("quantize_rowwise on 132 SMs", r, rref);
        }
    });
}

}  // namespace

/* fp8_cuda_encoder_check and the default encoder (issue 16): on the emulator both
 * encoders are the reference, so every sampled pattern agrees; the default is the
 * reference here, and $FP8_CUDA_CAST_KERNEL overrides it for new contexts. */
void encoders() {
    section("cast: encoder check and default");
    uint32_t res[2] = {7, 7};
    for (int32_t f8 : {FP8_DTYPE_E4M3FN, FP8_DTYPE_E5M2}) {
        CUDA_OK(fp8_cuda_encoder_check(ctx, f8, FP8_DTYPE_F32, 448.0f / 3.0f, 65537, res));
        CHECK(res[0] == 0 && res[1] == 0xffffffffu, "encoder_check f32 -> %s: %u differ, first 0x%x", dt_name(f8), res[0], res[1]);
        CUDA_OK(fp8_cuda_encoder_check(ctx, f8, FP8_DTYPE_BF16, 1.0f, 1, res));
        CHECK(res[0] == 0 && res[1] == 0xffffffffu, "encoder_check bf16 -> %s: %u differ, first 0x%x", dt_name(f8), res[0], res[1]);
    }
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "step", fp8_cuda_encoder_check(ctx, FP8_DTYPE_E4M3FN, FP8_DTYPE_F32, 1.0f, 0, res));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "src_dtype", fp8_cuda_encoder_check(ctx, FP8_DTYPE_E4M3FN, FP8_DTYPE_E5M2, 1.0f, 1, res));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "fp8_dtype", fp8_cuda_encoder_check(ctx, FP8_DTYPE_F32, FP8_DTYPE_F32, 1.0f, 1, res));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "result", fp8_cuda_encoder_check(ctx, FP8_DTYPE_E4M3FN, FP8_DTYPE_F32, 1.0f, 1, nullptr));
    int32_t k = -1;
    const char *saved = getenv("FP8_CUDA_CAST_KERNEL");
    unsetenv("FP8_CUDA_CAST_KERNEL");
    for (const char *env : {(const char *)nullptr, "hardware", "reference"}) {
        if (env) setenv("FP8_CUDA_CAST_KERNEL", env, 1);
        fp8_cuda_ctx_t c2 = nullptr;
        CUDA_OK(fp8_cuda_ctx_create(0, &c2));
        CUDA_OK(fp8_cuda_get_cast_kernel(c2, &k));
        const int32_t want = env && strcmp(env, "hardware") == 0 ? FP8_CUDA_CAST_HARDWARE : FP8_CUDA_CAST_REFERENCE;
        CHECK(k == want, "new context with FP8_CUDA_CAST_KERNEL=%s: cast kernel %d, want %d", env ? env : "(unset)", k, want);
        CUDA_OK(fp8_cuda_ctx_destroy(c2));
    }
    if (saved) setenv("FP8_CUDA_CAST_KERNEL", saved, 1);
    else unsetenv("FP8_CUDA_CAST_KERNEL");
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "kernel", fp8_cuda_get_cast_kernel(ctx, nullptr));
}

void test_cast() {
    encoders();
    amax_and_scales();
    quantize();
    quantize_transpose();
    quantize_rowwise();
    dequantize_and_convert();
    delayed_scaling();
    on_a_full_size_device();
}

}  // namespace harness
