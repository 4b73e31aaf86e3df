/*
 * block_test.cpp — block_kernels.cu against libfp8/src/cpu/block_cast.c, bit
 * for bit: f32-scaled blocks (1x128, 128x128, odd shapes) and MX blocks (32,
 * FLOOR and RCEIL), e4m3 and e5m2, f32 and bf16, ragged matrices (rows and
 * cols not multiples of the block), a first block that is all NaN-poisoned,
 * inf, zero, subnormal or huge, both cast encoders, the warp and the CTA
 * kernels, and the decodes of arbitrary bytes and scales (NaN codes, e8m0 0,
 * 254 and 0xFF); then the argument errors, in the CPU's words.
 */
#include <functional>

#include "harness.h"

namespace harness {

namespace {

const int32_t kHpB[] = {FP8_DTYPE_F32, FP8_DTYPE_BF16};
const int32_t kFp8B[] = {FP8_DTYPE_E4M3FN, FP8_DTYPE_E5M2};

enum Special { kNone, kNan, kInf, kZero, kSubnormal, kHuge, kSpecials };
const char *special_name(int s) {
    static const char *n[] = {"none", "nan", "inf", "zero", "subnormal", "huge"};
    return n[s];
}

/* (rows, cols) with a different power of two per block (so that every block
 * has its own scale), the first block (br x bc, clipped) made `special`. */
void fill_blocks(Buf &x, int64_t rows, int64_t cols, int64_t br, int64_t bc, int special) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const int e = (int)(((r / br) * 7 + (c / bc) * 3) % 40) - 20;
            x.set(r * cols + c, std::ldexp(randn(), e));
        }
    const int64_t r1 = br < rows ? br : rows, c1 = bc < cols ? bc : cols;
    for (int64_t r = 0; r < r1; r++)
        for (int64_t c = 0; c < c1; c++) {
            float v = x.get(r * cols + c);
            switch (special) {
            case kZero: v = (r + c) % 2 ? 0.0f : -0.0f; break;
            case kSubnormal: v = randn() * 1e-40f; break;
            case kHuge: v = randn() * 1e38f; break;
            default: break;
            }
            x.set(r * cols + c, v);
        }
    if (rows * cols == 0) return;
    const int64_t at = (r1 - 1) * cols + (c1 - 1) / 2;
    if (special == kNan) x.set(at, rng() % 2 ? NAN : -NAN);
    if (special == kInf) x.set(at, rng() % 2 ? INFINITY : -INFINITY);
}

struct Shape {
    int64_t rows, cols, br, bc;
};

bool fp8_is_nan_code(uint8_t b, int32_t f8) {
    const uint8_t m = b & 0x7f;
    return f8 == FP8_DTYPE_E5M2 ? m > 0x7c : m == 0x7f;
}

/* A decode compared with the CPU's byte for byte, except where both the fp8
 * code and the block's multiplier are NaN: x86 returns the first operand's
 * NaN, and the CPU's own loop puts the decoded value first in its vector body
 * and the scale first in its scalar tail, so that sign is not a rule. */
void same_decode(const char *what, const Buf &got, const Buf &ref, const Buf &q, int32_t f8, int64_t cols,
                 int64_t br, int64_t bc, const std::function<bool(int64_t)> &scale_is_nan) {
    CHECK(got.canary_ok(), "%s: the device wrote past the end of its output", what);
    const int32_t es = dtype_size(got.dtype());
    const int64_t nbc = (cols + bc - 1) / bc;
    int64_t bad = 0, excused = 0;
    for (int64_t i = 0; i < got.n(); i++) {
        if (memcmp((const char *)got.p() + i * es, (const char *)ref.p() + i * es, (size_t)es) == 0) continue;
        const int64_t r = i / cols, c = i % cols;
        if (std::isnan(got.get(i)) && std::isnan(ref.get(i)) && fp8_is_nan_code(q.as<uint8_t>()[i], f8) &&
            scale_is_nan((r / br) * nbc + c / bc)) {
            excused++;
            continue;
        }
        if (bad < 4) printf("    %s [%lld]: device %.9g, cpu %.9g\n", what, (long long)i, got.get(i), ref.get(i));
        bad++;
    }
    CHECK(bad == 0, "%s: %lld of %lld elements differ from the CPU", what, (long long)bad, (long long)got.n());
}

void blockwise() {
    section("block: blockwise f32 scales");
    const Shape shapes[] = {{1, 1, 1, 128},     {3, 130, 1, 128}, {5, 128, 1, 128},    {129, 257, 128, 128},
                            {256, 256, 128, 128}, {7, 300, 3, 5}, {40, 33, 40, 33},      {0, 5, 1, 128},
                            {33, 40, 1, 7}};
    for (const Shape &s : shapes)
        for (int32_t hp : kHpB)
            for (int32_t f8 : kFp8B)
                for (int special = 0; special < kSpecials; special++)
                    for (int32_t k : {FP8_CUDA_CAST_REFERENCE, FP8_CUDA_CAST_HARDWARE}) {
                        if (k == FP8_CUDA_CAST_HARDWARE && special != kNone && special != kNan) continue;
                        CUDA_OK(fp8_cuda_set_cast_kernel(ctx, k));
                        const int64_t n = s.rows * s.cols;
                        const int64_t ns = ((s.rows + s.br - 1) / s.br) * ((s.cols + s.bc - 1) / s.bc);
                        Buf x(hp, n);
                        fill_blocks(x, s.rows, s.cols, s.br, s.bc, special);
                        Buf q = Buf::bytes(n), cq = Buf::bytes(n);
                        Buf sc(FP8_DTYPE_F32, ns), csc(FP8_DTYPE_F32, ns);
                        CUDA_OK(fp8_cuda_quantize_blockwise(ctx, q.p(), sc.as<float>(), f8, x.p(), hp, s.rows, s.cols,
                                                            s.br, s.bc));
                        CUDA_OK(fp8_cuda_synchronize(ctx));
                        CPU_OK(fp8_cpu_quantize_blockwise(cq.p(), csc.as<float>(), f8, x.p(), hp, s.rows, s.cols, s.br,
                                                          s.bc));
                        char what[160];
                        snprintf(what, sizeof what, "quantize_blockwise %lldx%lld blocks %lldx%lld %s->%s %s kernel %d",
                                 (long long)s.rows, (long long)s.cols, (long long)s.br, (long long)s.bc, dt_name(hp),
                                 dt_name(f8), special_name(special), (int)k);
                        same_bytes(what, q, cq);
                        same_bytes(what, sc, csc);
                        for (int32_t dt : kHpB) {
                            Buf d(dt, n), cd(dt, n);
                            CUDA_OK(fp8_cuda_dequantize_blockwise(ctx, d.p(), dt, cq.p(), f8, csc.as<float>(), s.rows,
                                                                  s.cols, s.br, s.bc));
                            CUDA_OK(fp8_cuda_synchronize(ctx));
                            CPU_OK(fp8_cpu_dequantize_blockwise(cd.p(), dt, cq.p(), f8, csc.as<float>(), s.rows, s.cols,
                                                                s.br, s.bc));
                            snprintf(what, sizeof what, "dequantize_blockwise %lldx%lld %s->%s %s", (long long)s.rows,
                                     (long long)s.cols, dt_name(f8), dt_name(dt), special_name(special));
                            same_decode(what, d, cd, cq, f8, s.cols, s.br, s.bc,
                                        [&](int64_t b) { return std::isnan(csc.as<float>()[b]); });
                        }
                    }
    CUDA_OK(fp8_cuda_set_cast_kernel(ctx, FP8_CUDA_CAST_REFERENCE));
}

void mx() {
    section("block: MX e8m0 scales");
    const Shape shapes[] = {{1, 1, 1, 32}, {3, 70, 1, 32}, {64, 256, 1, 32}, {17, 31, 1, 32}, {9, 100, 1, 16},
                            {4, 2048, 1, 2048}, {0, 3, 1, 32}};
    for (const Shape &s : shapes)
        for (int32_t hp : kHpB)
            for (int32_t f8 : kFp8B)
                for (int32_t mode : {FP8_MX_FLOOR, FP8_MX_RCEIL})
                    for (int special = 0; special < kSpecials; special++) {
                        const int64_t n = s.rows * s.cols, ns = s.rows * ((s.cols + s.bc - 1) / s.bc);
                        Buf x(hp, n);
                        fill_blocks(x, s.rows, s.cols, 1, s.bc, special);
                        Buf q = Buf::bytes(n), cq = Buf::bytes(n), sc = Buf::bytes(ns), csc = Buf::bytes(ns);
                        CUDA_OK(fp8_cuda_quantize_mx(ctx, q.p(), sc.as<uint8_t>(), f8, x.p(), hp, s.rows, s.cols, s.bc,
                                                     mode));
                        CUDA_OK(fp8_cuda_synchronize(ctx));
                        CPU_OK(fp8_cpu_quantize_mx(cq.p(), csc.as<uint8_t>(), f8, x.p(), hp, s.rows, s.cols, s.bc, mode));
                        char what[160];
                        snprintf(what, sizeof what, "quantize_mx %lldx%lld block %lld mode %d %s->%s %s",
                                 (long long)s.rows, (long long)s.cols, (long long)s.bc, (int)mode, dt_name(hp),
                                 dt_name(f8), special_name(special));
                        same_bytes(what, q, cq);
                        same_bytes(what, sc, csc);
                        for (int32_t dt : kHpB) {
                            Buf d(dt, n), cd(dt, n);
                            CUDA_OK(fp8_cuda_dequantize_mx(ctx, d.p(), dt, cq.p(), f8, csc.as<uint8_t>(), s.rows, s.cols,
                                                           s.bc));
                            CUDA_OK(fp8_cuda_synchronize(ctx));
                            CPU_OK(fp8_cpu_dequantize_mx(cd.p(), dt, cq.p(), f8, csc.as<uint8_t>(), s.rows, s.cols, s.bc));
                            snprintf(what, sizeof what, "dequantize_mx %lldx%lld %s->%s %s", (long long)s.rows,
                                     (long long)s.cols, dt_name(f8), dt_name(dt), special_name(special));
                            same_decode(what, d, cd, cq, f8, s.cols, 1, s.bc,
                                        [&](int64_t b) { return csc.as<uint8_t>()[b] == 0xff; });
                        }
                    }
}

/* Every fp8 byte under random scales, the extreme e8m0 exponents and NaN scales. */
void decode_any_bytes() {
    section("block: decode of arbitrary bytes and scales");
    const int64_t rows = 16, cols = 512;
    Buf q = Buf::bytes(rows * cols);
    for (int64_t i = 0; i < rows * cols; i++) q.as<uint8_t>()[i] = (uint8_t)(i * 37 + i / 256);
    Buf e8 = Buf::bytes(rows * (cols / 32));
    for (int64_t i = 0; i < e8.n(); i++) {
        const uint8_t pick[] = {0, 1, 2, 100, 127, 128, 200, 253, 254, 255};
        e8.as<uint8_t>()[i] = i < 10 ? pick[i] : (uint8_t)(rng() % 256);
    }
    Buf fs(FP8_DTYPE_F32, 4 * 4);
    for (int64_t i = 0; i < fs.n(); i++) fs.set(i, std::ldexp(uniform(0.5f, 1.0f), (int)(rng() % 60) - 30));
    fs.set(0, NAN);
    fs.set(1, INFINITY);
    fs.set(2, 0.0f);
    fs.set(3, 1e-40f);
    for (int32_t f8 : kFp8B)
        for (int32_t dt : kHpB) {
            Buf d(dt, rows * cols), cd(dt, rows * cols);
            CUDA_OK(fp8_cuda_dequantize_mx(ctx, d.p(), dt, q.p(), f8, e8.as<uint8_t>(), rows, cols, 32));
            CUDA_OK(fp8_cuda_synchronize(ctx));
            CPU_OK(fp8_cpu_dequantize_mx(cd.p(), dt, q.p(), f8, e8.as<uint8_t>(), rows, cols, 32));
            same_decode("dequantize_mx of every byte", d, cd, q, f8, cols, 1, 32,
                        [&](int64_t b) { return e8.as<uint8_t>()[b] == 0xff; });
            CUDA_OK(fp8_cuda_dequantize_blockwise(ctx, d.p(), dt, q.p(), f8, fs.as<float>(), rows, cols, 4, 128));
            CUDA_OK(fp8_cuda_synchronize(ctx));
            CPU_OK(fp8_cpu_dequantize_blockwise(cd.p(), dt, q.p(), f8, fs.as<float>(), rows, cols, 4, 128));
            same_decode("dequantize_blockwise of every byte", d, cd, q, f8, cols, 4, 128,
                        [&](int64_t b) { return std::isnan(fs.as<float>()[b]); });
        }
}

/* A big matrix on a 1-SM device: the grid-stride loops of both quantize kernels. */
void grid_stride() {
    section("block: grid-stride loops");
    with_device_shape(1, (size_t)-1, [] {
        const Shape shapes[] = {{300, 384, 1, 128}, {300, 384, 128, 128}};
        for (const Shape &s : shapes) {
            const int64_t n = s.rows * s.cols, ns = ((s.rows + s.br - 1) / s.br) * ((s.cols + s.bc - 1) / s.bc);
            Buf x(FP8_DTYPE_BF16, n);
            fill_blocks(x, s.rows, s.cols, s.br, s.bc, kNone);
            Buf q = Buf::bytes(n), cq = Buf::bytes(n), sc(FP8_DTYPE_F32, ns), csc(FP8_DTYPE_F32, ns);
            CUDA_OK(fp8_cuda_quantize_blockwise(ctx, q.p(), sc.as<float>(), FP8_DTYPE_E4M3FN, x.p(), FP8_DTYPE_BF16,
                                                s.rows, s.cols, s.br, s.bc));
            CUDA_OK(fp8_cuda_synchronize(ctx));
            CPU_OK(fp8_cpu_quantize_blockwise(cq.p(), csc.as<float>(), FP8_DTYPE_E4M3FN, x.p(), FP8_DTYPE_BF16, s.rows,
                                              s.cols, s.br, s.bc));
            same_bytes("quantize_blockwise on 1 SM (bytes)", q, cq);
            same_bytes("quantize_blockwise on 1 SM (scales)", sc, csc);
        }
    });
}


/* ---- block-scaled GEMMs (gemm.cu) ------------------------------------------------------------ */

/* The documented layouts, written from fp8.h's formulas (forward: where source (r, kb) goes). */
std::vector<uint8_t> reference_layout(int32_t layout, const Buf &src, int64_t rows, int64_t cols) {
    int64_t bytes = 0;
    CPU_OK(fp8_cuda_block_scales_layout_size(layout, rows, cols, &bytes));
    std::vector<uint8_t> out((size_t)bytes, 0);
    if (layout == FP8_CUDA_BLOCK_LAYOUT_MX)
        for (auto &b : out) b = 127;
    const int64_t cols4 = (cols + 3) / 4 * 4;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t kb = 0; kb < cols; kb++) {
            if (layout == FP8_CUDA_BLOCK_LAYOUT_VEC128) {
                memcpy(&out[(size_t)((kb * rows + r) * 4)], src.as<float>() + r * cols + kb, 4);
            } else if (layout == FP8_CUDA_BLOCK_LAYOUT_BLK128) {
                memcpy(&out[(size_t)((r * cols4 + kb) * 4)], src.as<float>() + r * cols + kb, 4);
            } else {
                const int64_t off = ((r / 128) * (cols4 / 4) + kb / 4) * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4 + kb % 4;
                out[(size_t)off] = src.as<uint8_t>()[r * cols + kb];
            }
        }
    return out;
}

void scale_layouts() {
    section("block: cuBLASLt scale layouts");
    for (int32_t layout : {FP8_CUDA_BLOCK_LAYOUT_VEC128, FP8_CUDA_BLOCK_LAYOUT_BLK128, FP8_CUDA_BLOCK_LAYOUT_MX})
        for (int64_t rows : {1, 5, 128, 130, 257})
            for (int64_t cols : {1, 3, 4, 7, 9}) {
                const bool mx = layout == FP8_CUDA_BLOCK_LAYOUT_MX;
                Buf src = mx ? Buf::bytes(rows * cols) : Buf(FP8_DTYPE_F32, rows * cols);
                for (int64_t i = 0; i < rows * cols; i++) {
                    if (mx) src.as<uint8_t>()[i] = (uint8_t)(rng() % 255);
                    else src.set(i, (float)i + 0.5f);
                }
                const std::vector<uint8_t> ref = reference_layout(layout, src, rows, cols);
                Buf dst = Buf::bytes((int64_t)ref.size());
                dst.fill_bytes(0xAB);
                CUDA_OK(fp8_cuda_block_scales_layout(ctx, dst.p(), src.p(), layout, rows, cols));
                CUDA_OK(fp8_cuda_synchronize(ctx));
                char what[96];
                snprintf(what, sizeof what, "block_scales_layout %d (%lld, %lld)", (int)layout, (long long)rows, (long long)cols);
                same_bytes(what, dst.p(), ref.data(), ref.size(), FP8_DTYPE_U8);
            }
    int64_t bytes = 0;
    CHECK(fp8_cuda_block_scales_layout_size(FP8_CUDA_BLOCK_LAYOUT_MX, 129, 5, &bytes) == FP8_OK && bytes == 256 * 8,
          "MX layout of (129, 5) scales: %lld bytes, want 2048", (long long)bytes);
    CHECK(fp8_cuda_block_scales_layout_size(FP8_CUDA_BLOCK_LAYOUT_BLK128, 3, 5, &bytes) == FP8_OK && bytes == 3 * 8 * 4,
          "BLK128 layout of (3, 5) scales: %lld bytes, want 96", (long long)bytes);
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "layout must be 0 (VEC128), 1 (BLK128) or 2 (MX), got 3",
               fp8_cuda_block_scales_layout(ctx, &bytes, &bytes, 3, 1, 1));
}

/* Emulated device of compute capability cc (the context's and the emulated cuBLASLt's). */
void set_device_cc(int cc) {
    CHECK(fp8_cuda_emu_configure(1, 4, cc) == FP8_OK, "fp8_cuda_emu_configure(1, 4, %d)", cc);
    ctx_internals()->cc_major = cc;
}

struct BlockGemmCase {
    bool mx;
    int64_t b_rows, M, K, N;
    int32_t c_dtype;
    bool bias;
};

/* Runs one block GEMM on the device and checks it against the CPU's method (decode both
 * operands to f32 with their scales, f32 GEMM): |device - cpu| <= K * 2^-22 * sum_k |a_k b_k|
 * (f32 accumulation in another order: each of the K partial sums is off by at most an f32
 * ulp of the running |sum|), plus half a bf16 ulp of |cpu| for a bf16 c. Returns the path. */
int32_t check_block_gemm(const BlockGemmCase &t, int32_t want_path, const char *want_reason) {
    const int64_t M = t.M, K = t.K, N = t.N, bs = t.mx ? 32 : 128, kb = (K + bs - 1) / bs;
    Buf a(FP8_DTYPE_F32, M * K), b(FP8_DTYPE_F32, N * K);
    fill_blocks(a, M, K, 1, bs, kNone);
    fill_blocks(b, N, K, t.b_rows, bs, kNone);
    Buf qa = Buf::bytes(M * K), qb = Buf::bytes(N * K);
    const int64_t nsb = ((N + t.b_rows - 1) / t.b_rows) * kb;
    Buf sa = t.mx ? Buf::bytes(M * kb) : Buf(FP8_DTYPE_F32, M * kb), sb = t.mx ? Buf::bytes(nsb) : Buf(FP8_DTYPE_F32, nsb);
    Buf da(FP8_DTYPE_F32, M * K), db(FP8_DTYPE_F32, N * K);
    if (t.mx) {
        CPU_OK(fp8_cpu_quantize_mx(qa.p(), sa.as<uint8_t>(), FP8_DTYPE_E4M3FN, a.p(), FP8_DTYPE_F32, M, K, 32, FP8_MX_FLOOR));
        CPU_OK(fp8_cpu_quantize_mx(qb.p(), sb.as<uint8_t>(), FP8_DTYPE_E4M3FN, b.p(), FP8_DTYPE_F32, N, K, 32, FP8_MX_FLOOR));
        CPU_OK(fp8_cpu_dequantize_mx(da.p(), FP8_DTYPE_F32, qa.p(), FP8_DTYPE_E4M3FN, sa.as<uint8_t>(), M, K, 32));
        CPU_OK(fp8_cpu_dequantize_mx(db.p(), FP8_DTYPE_F32, qb.p(), FP8_DTYPE_E4M3FN, sb.as<uint8_t>(), N, K, 32));
    } else {
        CPU_OK(fp8_cpu_quantize_blockwise(qa.p(), sa.as<float>(), FP8_DTYPE_E4M3FN, a.p(), FP8_DTYPE_F32, M, K, 1, 128));
        CPU_OK(fp8_cpu_quantize_blockwise(qb.p(), sb.as<float>(), FP8_DTYPE_E4M3FN, b.p(), FP8_DTYPE_F32, N, K, t.b_rows, 128));
        CPU_OK(fp8_cpu_dequantize_blockwise(da.p(), FP8_DTYPE_F32, qa.p(), FP8_DTYPE_E4M3FN, sa.as<float>(), M, K, 1, 128));
        CPU_OK(fp8_cpu_dequantize_blockwise(db.p(), FP8_DTYPE_F32, qb.p(), FP8_DTYPE_E4M3FN, sb.as<float>(), N, K, t.b_rows, 128));
    }
    Buf bias(FP8_DTYPE_BF16, N);
    fill_random(bias, 4.0f);
    Buf ref(FP8_DTYPE_F32, M * N), absref(FP8_DTYPE_F32, M * N), ada(FP8_DTYPE_F32, M * K), adb(FP8_DTYPE_F32, N * K);
    for (int64_t i = 0; i < M * K; i++) ada.set(i, std::fabs(da.get(i)));
    for (int64_t i = 0; i < N * K; i++) adb.set(i, std::fabs(db.get(i)));
    CPU_OK(fp8_cpu_matmul(ref.p(), FP8_DTYPE_F32, da.p(), db.p(), FP8_DTYPE_F32, t.bias ? bias.p() : nullptr, FP8_DTYPE_BF16,
                          1, 1, M, K, N, 0, 1, 1.0f, 0.0f));
    CPU_OK(fp8_cpu_matmul(absref.p(), FP8_DTYPE_F32, ada.p(), adb.p(), FP8_DTYPE_F32, nullptr, FP8_DTYPE_F32, 1, 1, M, K, N,
                          0, 1, 1.0f, 0.0f));
    Buf c(t.c_dtype, M * N);
    if (t.mx)
        CUDA_OK(fp8_cuda_scaled_mm_mx(ctx, c.p(), t.c_dtype, qa.p(), FP8_DTYPE_E4M3FN, qb.p(), FP8_DTYPE_E4M3FN,
                                      sa.as<uint8_t>(), sb.as<uint8_t>(), t.bias ? bias.p() : nullptr, FP8_DTYPE_BF16, M, K, N));
    else
        CUDA_OK(fp8_cuda_scaled_mm_blockwise(ctx, c.p(), t.c_dtype, qa.p(), FP8_DTYPE_E4M3FN, qb.p(), FP8_DTYPE_E4M3FN,
                                             sa.as<float>(), sb.as<float>(), t.b_rows, t.bias ? bias.p() : nullptr,
                                             FP8_DTYPE_BF16, M, K, N, 0));
    CUDA_OK(fp8_cuda_synchronize(ctx));
    int32_t path = -1;
    char reason[320];
    CUDA_OK(fp8_cuda_block_gemm_info(ctx, &path, reason, sizeof reason));
    char what[200];
    snprintf(what, sizeof what, "%s GEMM b %lldx%d (%lld, %lld, %lld) -> %s%s", t.mx ? "MX" : "blockwise",
             (long long)t.b_rows, t.mx ? 32 : 128, (long long)M, (long long)K, (long long)N, dt_name(t.c_dtype),
             t.bias ? " + bias" : "");
    CHECK(path == want_path, "%s: took path %d, want %d (reason: %s)", what, (int)path, (int)want_path, reason);
    CHECK(want_reason ? strstr(reason, want_reason) != nullptr : reason[0] == 0, "%s: reason '%s', want '%s'", what,
          reason, want_reason ? want_reason : "");
    const double bound = (double)K * std::ldexp(1.0, -22);
    int64_t bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < M * N; i++) {
        const double r = ref.get(i), g = c.get(i);
        double tol = bound * absref.get(i) + 1e-30;
        if (t.c_dtype == FP8_DTYPE_BF16) tol += std::ldexp(std::fabs(r), -8);
        worst = std::max(worst, std::fabs(g - r) / tol);
        if (!(std::fabs(g - r) <= tol)) {
            if (bad < 3) printf("    %s [%lld]: device %.9g, cpu %.9g, tolerance %.3g\n", what, (long long)i, g, r, tol);
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %lld of %lld elements outside the bound (worst %.2f of it)", what, (long long)bad,
          (long long)(M * N), worst);
    return path;
}

void block_gemms() {
    section("block: block-scaled GEMMs");
    const BlockGemmCase cases[] = {
        {false, 128, 5, 256, 32, FP8_DTYPE_F32, false},   {false, 128, 130, 384, 144, FP8_DTYPE_BF16, true},
        {false, 1, 64, 208, 48, FP8_DTYPE_F32, true},     {false, 128, 3, 208, 160, FP8_DTYPE_BF16, false},
        {true, 1, 5, 256, 32, FP8_DTYPE_F32, false},      {true, 1, 130, 208, 144, FP8_DTYPE_BF16, true},
    };
    MemoryWatch mem;
    /* sm_90 (the emulator's default): 1x128 / 128x128 on cuBLASLt, MX falls back */
    set_device_cc(9);
    for (const auto &t : cases)
        check_block_gemm(t, t.mx ? FP8_CUDA_BLOCK_GEMM_DEQUANT : FP8_CUDA_BLOCK_GEMM_CUBLASLT, t.mx ? "needs sm_100" : nullptr);
    /* sm_100: MX on cuBLASLt, 1x128 / 128x128 fall back */
    set_device_cc(10);
    for (const auto &t : cases)
        check_block_gemm(t, t.mx ? FP8_CUDA_BLOCK_GEMM_CUBLASLT : FP8_CUDA_BLOCK_GEMM_DEQUANT, t.mx ? nullptr : "Hopper (sm_90)");
    /* the dequantize path on request, on either device */
    CUDA_OK(fp8_cuda_set_block_gemm(ctx, FP8_CUDA_BLOCK_GEMM_DEQUANT));
    for (const auto &t : cases) check_block_gemm(t, FP8_CUDA_BLOCK_GEMM_DEQUANT, "fp8_cuda_set_block_gemm");
    /* CUBLASLT forced where the device lacks the mode: an error, nothing run */
    CUDA_OK(fp8_cuda_set_block_gemm(ctx, FP8_CUDA_BLOCK_GEMM_CUBLASLT));
    {
        Buf c(FP8_DTYPE_F32, 16 * 16), q = Buf::bytes(16 * 128), s(FP8_DTYPE_F32, 16);
        CUDA_FAILS(FP8_ERR_UNSUPPORTED, "Hopper (sm_90) mode of cuBLASLt; device 0 is sm_100",
                   fp8_cuda_scaled_mm_blockwise(ctx, c.p(), FP8_DTYPE_F32, q.p(), FP8_DTYPE_E4M3FN, q.p(), FP8_DTYPE_E4M3FN,
                                                s.as<float>(), s.as<float>(), 1, nullptr, 0, 16, 128, 16, 0));
    }
    /* cuBLASLt without an algorithm (1), or refusing at launch (2): AUTO falls back and says why */
    CUDA_OK(fp8_cuda_set_block_gemm(ctx, FP8_CUDA_BLOCK_GEMM_AUTO));
    set_device_cc(9);
    for (int mode : {1, 2}) {
        CHECK(fp8_cuda_emu_set_block_scale(mode) == FP8_OK, "fp8_cuda_emu_set_block_scale(%d)", mode);
        const BlockGemmCase t = {false, 128, 7 + mode, 256, 32, FP8_DTYPE_F32, false}; /* a shape of its own: no cached plan */
        check_block_gemm(t, FP8_CUDA_BLOCK_GEMM_DEQUANT, mode == 1 ? "no algorithm" : "refused block scaling");
        check_block_gemm(t, FP8_CUDA_BLOCK_GEMM_DEQUANT, "does not take block scaling"); /* the cached refusal */
    }
    fp8_cuda_emu_set_block_scale(0);
    CHECK(fp8_cuda_emu_set_block_scale(3) == FP8_ERR_INVALID_ARG, "fp8_cuda_emu_set_block_scale(3) accepted");
    CUDA_OK(fp8_cuda_synchronize(ctx));
    mem.check("block GEMMs");
    /* argument errors */
    float f = 0;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "b_block_rows must be 1 or 128, got 64",
               fp8_cuda_scaled_mm_blockwise(ctx, &f, FP8_DTYPE_F32, &f, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_E4M3FN, &f, &f, 64,
                                            nullptr, 0, 4, 16, 16, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "fp8 GEMM needs K and N multiples of 16",
               fp8_cuda_scaled_mm_mx(ctx, &f, FP8_DTYPE_F32, &f, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_E4M3FN, (uint8_t *)&f,
                                     (uint8_t *)&f, nullptr, 0, 4, 20, 16));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "path must be 0 (auto), 1 (cuBLASLt scale modes) or 2 (dequantize), got 5",
               fp8_cuda_set_block_gemm(ctx, 5));
}

void errors() {
    section("block: argument errors");
    float f = 0;
    uint8_t b = 0;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "block 0x128 must be at least 1x1",
               fp8_cuda_quantize_blockwise(ctx, &b, &f, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, 1, 0, 128));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "rows -1 and cols 1 must be >= 0",
               fp8_cuda_dequantize_blockwise(ctx, &f, FP8_DTYPE_F32, &b, FP8_DTYPE_E4M3FN, &f, -1, 1, 1, 128));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_inv_scale is NULL",
               fp8_cuda_quantize_blockwise(ctx, &b, nullptr, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, 1, 1, 128));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "src_dtype must be float32 or bfloat16",
               fp8_cuda_quantize_mx(ctx, &b, &b, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_E5M2, 1, 1, 32, FP8_MX_FLOOR));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "mode must be 0 (FLOOR) or 1 (RCEIL), got 7",
               fp8_cuda_quantize_mx(ctx, &b, &b, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, 1, 32, 7));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_src_fp8 is NULL",
               fp8_cuda_dequantize_mx(ctx, &f, FP8_DTYPE_F32, nullptr, FP8_DTYPE_E4M3FN, &b, 1, 1, 32));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "fp8_dtype must be float8_e4m3fn or float8_e5m2",
               fp8_cuda_dequantize_mx(ctx, &f, FP8_DTYPE_F32, &b, FP8_DTYPE_F32, &b, 1, 1, 32));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ctx is NULL",
               fp8_cuda_quantize_mx(nullptr, &b, &b, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, 1, 32, FP8_MX_FLOOR));
    /* the CPU answers the same call in the same words, without the d_ prefix */
    CHECK(fp8_cpu_quantize_blockwise(&b, &f, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, 1, 0, 128) == FP8_ERR_INVALID_ARG &&
              strstr(fp8_last_error(), "block 0x128 must be at least 1x1") != nullptr,
          "CPU block error: %s", fp8_last_error());
    CHECK(fp8_cpu_quantize_blockwise(&b, nullptr, FP8_DTYPE_E4M3FN, &f, FP8_DTYPE_F32, 1, 1, 1, 128) ==
                  FP8_ERR_INVALID_ARG &&
              strstr(fp8_last_error(), "inv_scale is NULL") != nullptr,
          "CPU NULL scale error: %s", fp8_last_error());
}

}  // namespace

void test_block() {
    blockwise();
    mx();
    decode_any_bytes();
    grid_stride();
    errors();
    scale_layouts();
    block_gemms();
}

}  // namespace harness
