/*
 * nn_test.cpp — nn_kernels.cu against libfp8/src/cpu (norm_softmax.cpp,
 * nn_kernels.c): softmax and layer norm (oneDNN on the CPU) within f32 / bf16
 * rounding; RMS norm and cross entropy, which repeat the CPU's double
 * arithmetic, to an ulp; embedding and its backward bit for bit, including
 * repeated and out-of-range indices. Rows go to a warp (cols <= 1024) or a
 * block; parameter gradients and the loss are summed in one slice, in
 * several, or with no workspace at all. Out-of-range indices and targets
 * (every buffer ends at a guard page, so an out-of-bounds access would fault)
 * set the context's index-error flag, read by fp8_cuda_take_index_error.
 */
#include "harness.h"

namespace harness {

namespace {

/* After a sync: the flag holds `op` with a value outside [0, limit) and that
 * limit (`bad(index)` says which values the input held that are bad), or
 * nothing when op is 0. Reading it clears it. */
template <class Bad>
void expect_index_error(const char *what, int32_t op, int64_t limit, Bad bad) {
    CUDA_OK(fp8_cuda_synchronize(ctx));
    int32_t got = -1;
    int64_t index = -1, lim = -1;
    CUDA_OK(fp8_cuda_take_index_error(ctx, &got, &index, &lim));
    if (op == 0) {
        CHECK(got == 0 && index == 0 && lim == 0, "%s: index error flag set (op %d, index %lld, limit %lld), expected none",
              what, (int)got, (long long)index, (long long)lim);
        return;
    }
    CHECK(got == op && lim == limit && (index < 0 || index >= limit) && bad(index),
          "%s: index error flag op %d index %lld limit %lld, expected op %d with one of the bad values, limit %lld", what,
          (int)got, (long long)index, (long long)lim, (int)op, (long long)limit);
    CUDA_OK(fp8_cuda_take_index_error(ctx, &got, &index, &lim));
    CHECK(got == 0, "%s: the index error flag is not cleared by reading it", what);
}

const int64_t kRowShapes[][2] = {{1, 1}, {33, 7}, {5, 1024}, {4, 1025}, {2, 3000}, {300, 40}, {0, 5}, {64, 96}};

void softmax() {
    section("nn: softmax");
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int log : {0, 1})
            for (const auto &sh : kRowShapes) {
                const int64_t rows = sh[0], cols = sh[1], n = rows * cols;
                Buf x(dt, n), y(dt, n), ref(dt, n), dy(dt, n), dx(dt, n), dx_ref(dt, n);
                fill_random(x, 3.0f);
                for (int64_t i = 0; i < n; i += 5) x.set(i, -INFINITY); /* masked entries */
                if (n) x.set(0, 0.5f);
                fill_random(dy);
                CUDA_OK(fp8_cuda_softmax(ctx, y.p(), x.p(), dt, rows, cols, log));
                CPU_OK(fp8_cpu_softmax(ref.p(), x.p(), dt, rows, cols, log));
                char what[96];
                snprintf(what, sizeof what, "%s (%lld, %lld) %s", log ? "log_softmax" : "softmax", (long long)rows,
                         (long long)cols, dt_name(dt));
                close(what, y, ref, rtol_for(dt), log ? 1e-5 : 1e-7);
                /* backward from the same forward output on both sides */
                CUDA_OK(fp8_cuda_softmax_backward(ctx, dx.p(), dy.p(), ref.p(), dt, rows, cols, log));
                CPU_OK(fp8_cpu_softmax_backward(dx_ref.p(), dy.p(), ref.p(), dt, rows, cols, log));
                snprintf(what, sizeof what, "%s backward (%lld, %lld) %s", log ? "log_softmax" : "softmax",
                         (long long)rows, (long long)cols, dt_name(dt));
                /* log-softmax: dy - exp(y) * sum(dy), the sum of cols terms in another order */
                const double sum_err = 1e-7 * std::sqrt((double)cols) * 8;
                close(what, dx, dx_ref, dt == FP8_DTYPE_F32 ? 1e-5 : 1.6e-2,
                      dt == FP8_DTYPE_F32 ? 1e-6 + (log ? sum_err : 0) : 1e-3);
            }
    float f;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "must be >= 0", fp8_cuda_softmax(ctx, &f, &f, FP8_DTYPE_F32, -1, 1, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "overflows", fp8_cuda_softmax(ctx, &f, &f, FP8_DTYPE_F32, (int64_t)1 << 40, (int64_t)1 << 40, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dtype", fp8_cuda_softmax(ctx, &f, &f, FP8_DTYPE_E4M3FN, 1, 1, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_dst is NULL", fp8_cuda_softmax_backward(ctx, &f, &f, nullptr, FP8_DTYPE_F32, 1, 1, 0));
}

void layer_norm() {
    section("nn: layer_norm");
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int params = 0; params < 4; params++) /* bit 0: gamma, bit 1: beta */
            for (const auto &sh : kRowShapes) {
                const int64_t rows = sh[0], cols = sh[1], n = rows * cols;
                Buf x(dt, n), y(dt, n), ref(dt, n), g(dt, cols), b(dt, cols);
                Buf mean(FP8_DTYPE_F32, rows), rstd(FP8_DTYPE_F32, rows), mean_ref(FP8_DTYPE_F32, rows), rstd_ref(FP8_DTYPE_F32, rows);
                fill_random(x, 2.0f);
                for (int64_t i = 0; i < n; i++) x.set(i, x.get(i) + 1.5f);
                fill_random(g);
                fill_random(b);
                const void *gp = params & 1 ? g.p() : nullptr, *bp = params & 2 ? b.p() : nullptr;
                CUDA_OK(fp8_cuda_layer_norm(ctx, y.p(), mean.as<float>(), rstd.as<float>(), x.p(), gp, bp, dt, rows, cols, 1e-5f));
                CPU_OK(fp8_cpu_layer_norm(ref.p(), mean_ref.as<float>(), rstd_ref.as<float>(), x.p(), gp, bp, dt, rows, cols, 1e-5f));
                char what[96];
                snprintf(what, sizeof what, "layer_norm (%lld, %lld) %s params %d", (long long)rows, (long long)cols,
                         dt_name(dt), params);
                close(what, y, ref, rtol_for(dt), dt == FP8_DTYPE_F32 ? 1e-5 : 1.6e-2);
                close("layer_norm mean", mean, mean_ref, 1e-5, 1e-6);
                close("layer_norm rstd", rstd, rstd_ref, 1e-5, 0);
            }

    section("nn: layer_norm_backward");
    const int64_t bshapes[][2] = {{1, 1}, {33, 7}, {4, 1025}, {1000, 40}, {0, 5}, {129, 300}};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int grads = 0; grads < 4; grads++) /* bit 0: dgamma, bit 1: dbeta */
            for (const auto &sh : bshapes)
                for (size_t ws : {(size_t)-1, (size_t)64}) {
                    const int64_t rows = sh[0], cols = sh[1], n = rows * cols;
                    Buf x(dt, n), dy(dt, n), y(dt, n), g(dt, cols), dx(dt, n), dx_ref(dt, n);
                    Buf dg(dt, cols), db(dt, cols), dg_ref(dt, cols), db_ref(dt, cols);
                    Buf mean(FP8_DTYPE_F32, rows), rstd(FP8_DTYPE_F32, rows);
                    fill_random(x, 2.0f);
                    fill_random(dy);
                    fill_random(g);
                    const void *gp = grads == 3 ? nullptr : g.p(); /* ones when NULL */
                    CPU_OK(fp8_cpu_layer_norm(y.p(), mean.as<float>(), rstd.as<float>(), x.p(), gp, nullptr, dt, rows, cols, 1e-5f));
                    void *dgp = grads & 1 ? dg.p() : nullptr, *dbp = grads & 2 ? db.p() : nullptr;
                    void *dgr = grads & 1 ? dg_ref.p() : nullptr, *dbr = grads & 2 ? db_ref.p() : nullptr;
                    with_device_shape(4, ws, [&] {
                        CUDA_OK(fp8_cuda_layer_norm_backward(ctx, dx.p(), dgp, dbp, dy.p(), x.p(), mean.as<float>(),
                                                             rstd.as<float>(), gp, dt, rows, cols));
                    });
                    CPU_OK(fp8_cpu_layer_norm_backward(dx_ref.p(), dgr, dbr, dy.p(), x.p(), mean.as<float>(), rstd.as<float>(),
                                                       gp, dt, rows, cols));
                    char what[96];
                    snprintf(what, sizeof what, "layer_norm_backward dx (%lld, %lld) %s", (long long)rows, (long long)cols,
                             dt_name(dt));
                    close(what, dx, dx_ref, dt == FP8_DTYPE_F32 ? 1e-4 : 1.6e-2, dt == FP8_DTYPE_F32 ? 1e-5 : 2e-2);
                    const double atol = (dt == FP8_DTYPE_F32 ? 1e-5 : 1e-2) * std::sqrt((double)rows + 1);
                    if (grads & 1) close("layer_norm_backward dgamma", dg, dg_ref, rtol_for(dt), atol);
                    if (grads & 2) close("layer_norm_backward dbeta", db, db_ref, rtol_for(dt), atol);
                }
    float f;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "eps", fp8_cuda_layer_norm(ctx, &f, &f, &f, &f, nullptr, nullptr, FP8_DTYPE_F32, 1, 1, -1.0f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "eps", fp8_cuda_layer_norm(ctx, &f, &f, &f, &f, nullptr, nullptr, FP8_DTYPE_F32, 1, 1, INFINITY));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, ">= 1", fp8_cuda_layer_norm(ctx, &f, &f, &f, &f, nullptr, nullptr, FP8_DTYPE_F32, 1, 0, 1e-5f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_mean is NULL", fp8_cuda_layer_norm(ctx, &f, nullptr, &f, &f, nullptr, nullptr, FP8_DTYPE_F32, 1, 1, 1e-5f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_rstd is NULL",
               fp8_cuda_layer_norm_backward(ctx, &f, nullptr, nullptr, &f, &f, &f, nullptr, nullptr, FP8_DTYPE_F32, 1, 1));
}

void rms_norm() {
    section("nn: rms_norm");
    const int64_t shapes[][2] = {{1, 1}, {33, 7}, {5, 1024}, {4, 1025}, {2, 3000}, {300, 40}, {0, 5}, {6, 0}, {1000, 40}};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int with_gamma : {0, 1})
            for (const auto &sh : shapes) {
                const int64_t rows = sh[0], cols = sh[1], n = rows * cols;
                Buf x(dt, n), y(dt, n), ref(dt, n), g(dt, cols), rstd(FP8_DTYPE_F32, rows), rstd_ref(FP8_DTYPE_F32, rows);
                fill_random(x, 2.0f);
                fill_random(g);
                const void *gp = with_gamma ? g.p() : nullptr;
                CUDA_OK(fp8_cuda_rms_norm(ctx, y.p(), rstd.as<float>(), x.p(), gp, dt, rows, cols, 1e-6f));
                CPU_OK(fp8_cpu_rms_norm(ref.p(), rstd_ref.as<float>(), x.p(), gp, dt, rows, cols, 1e-6f));
                char what[96];
                snprintf(what, sizeof what, "rms_norm (%lld, %lld) %s gamma %d", (long long)rows, (long long)cols, dt_name(dt),
                         with_gamma);
                /* the same double arithmetic; only the order of the row sum differs */
                close(what, rstd, rstd_ref, 2.4e-7, 0);
                close(what, y, ref, dt == FP8_DTYPE_F32 ? 4.8e-7 : 8e-3, 0);

                Buf dy(dt, n), dx(dt, n), dx_ref(dt, n), dg(dt, cols), dg_ref(dt, cols);
                fill_random(dy);
                for (size_t ws : {(size_t)-1, (size_t)64}) {
                    with_device_shape(4, ws, [&] {
                        CUDA_OK(fp8_cuda_rms_norm_backward(ctx, dx.p(), with_gamma ? dg.p() : nullptr, dy.p(), x.p(),
                                                           rstd_ref.as<float>(), gp, dt, rows, cols));
                    });
                    CPU_OK(fp8_cpu_rms_norm_backward(dx_ref.p(), with_gamma ? dg_ref.p() : nullptr, dy.p(), x.p(),
                                                     rstd_ref.as<float>(), gp, dt, rows, cols));
                    snprintf(what, sizeof what, "rms_norm_backward (%lld, %lld) %s gamma %d", (long long)rows,
                             (long long)cols, dt_name(dt), with_gamma);
                    close(what, dx, dx_ref, dt == FP8_DTYPE_F32 ? 1e-6 : 8e-3, dt == FP8_DTYPE_F32 ? 1e-7 : 1e-4);
                    if (with_gamma) close("rms_norm_backward dgamma", dg, dg_ref, dt == FP8_DTYPE_F32 ? 1e-6 : 8e-3, 1e-7);
                }
            }
    float f;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "eps", fp8_cuda_rms_norm(ctx, &f, &f, &f, nullptr, FP8_DTYPE_F32, 1, 1, -1.0f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_rstd is NULL", fp8_cuda_rms_norm(ctx, &f, nullptr, &f, nullptr, FP8_DTYPE_F32, 1, 1, 0.0f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_gamma is NULL",
               fp8_cuda_rms_norm_backward(ctx, &f, &f, &f, &f, &f, nullptr, FP8_DTYPE_F32, 1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "must be >= 0", fp8_cuda_rms_norm_backward(ctx, &f, nullptr, &f, &f, &f, nullptr, FP8_DTYPE_F32, -1, 1));
}

void embedding() {
    section("nn: embedding");
    const int64_t shapes[][3] = {/* n_idx, num, dim */ {0, 10, 7}, {1, 1, 1}, {50, 10, 7}, {3000, 1000, 8},
                                 {40, 5, 256},   {20, 30, 300}, {17, 3, 1000}, {9, 4, 0}, {6, 0, 3}};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (const auto &sh : shapes)
            for (int invalid : {0, 1}) {
                const int64_t n_idx = sh[0], num = sh[1], dim = sh[2];
                if (invalid && num == 0) continue;
                std::vector<int32_t> idx((size_t)n_idx + 1), valid_idx(1); /* never empty: the CPU refuses NULL */
                valid_idx.clear();
                std::vector<int64_t> valid_pos;
                for (int64_t i = 0; i < n_idx; i++) {
                    int32_t k = num ? (int32_t)(rng() % (uint64_t)num) : 0;
                    if (invalid && i % 7 == 3) k = i % 2 ? -1 - (int32_t)i : (int32_t)(num + i);
                    idx[(size_t)i] = k;
                    if (k >= 0 && k < num) valid_idx.push_back(k), valid_pos.push_back(i);
                }
                Buf w(dt, num * dim), y(dt, n_idx * dim), ref(dt, n_idx * dim);
                fill_random(w, 1.0f, true);
                y.fill_bytes(0x77);
                CUDA_OK(fp8_cuda_embedding(ctx, y.p(), w.p(), idx.data(), dt, n_idx, num, dim));
                const bool any_bad = (int64_t)valid_idx.size() < n_idx && dim > 0;
                auto is_bad_idx = [&](int64_t v) {
                    for (int64_t i = 0; i < n_idx; i++)
                        if (idx[(size_t)i] == v) return true;
                    return false;
                };
                expect_index_error("embedding", any_bad ? FP8_CUDA_INDEX_EMBEDDING : 0, num, is_bad_idx);
                /* rows of valid indices are the weight's bits; an invalid index gives zeros */
                const int32_t es = dtype_size(dt);
                memset(ref.p(), 0, ref.nbytes());
                for (int64_t i = 0; i < n_idx; i++)
                    if (idx[(size_t)i] >= 0 && idx[(size_t)i] < num)
                        memcpy((char *)ref.p() + i * dim * es, (char *)w.p() + idx[(size_t)i] * dim * es, (size_t)(dim * es));
                if ((int64_t)valid_idx.size() == n_idx) {
                    Buf cpu(dt, n_idx * dim);
                    CPU_OK(fp8_cpu_embedding(cpu.p(), w.p(), idx.data(), dt, n_idx, num, dim));
                    same_bytes("embedding: reference", ref, cpu);
                }
                same_bytes("embedding", y, ref);

                /* backward: positions of invalid indices add nothing; the rest as the CPU */
                Buf dy(dt, n_idx * dim), dw(dt, num * dim), dw_ref(dt, num * dim), dy_valid(dt, (int64_t)valid_pos.size() * dim);
                fill_random(dy);
                fill_random(dw);
                dw_ref.copy_from(dw);
                for (size_t k = 0; k < valid_pos.size(); k++)
                    memcpy((char *)dy_valid.p() + k * dim * es, (char *)dy.p() + valid_pos[k] * dim * es, (size_t)(dim * es));
                for (size_t ws : {(size_t)-1, (size_t)0}) { /* no workspace: the sort's temporary is allocated */
                    Buf dw_run(dt, num * dim);
                    dw_run.copy_from(dw);
                    MemoryWatch watch;
                    with_device_shape(4, ws, [&] {
                        CUDA_OK(fp8_cuda_embedding_backward(ctx, dw_run.p(), dy.p(), idx.data(), dt, n_idx, num, dim));
                    });
                    /* num == 0: nothing to add to, so the indices are not read */
                    expect_index_error("embedding_backward", any_bad && num > 0 ? FP8_CUDA_INDEX_EMBEDDING_BACKWARD : 0, num,
                                       is_bad_idx);
                    watch.check("embedding_backward temporaries");
                    if (ws == (size_t)-1) {
                        CPU_OK(fp8_cpu_embedding_backward(dw_ref.p(), dy_valid.p(), valid_idx.data(), dt,
                                                          (int64_t)valid_idx.size(), num, dim));
                    }
                    char what[96];
                    snprintf(what, sizeof what, "embedding_backward (%lld idx, %lld x %lld) %s", (long long)n_idx,
                             (long long)num, (long long)dim, dt_name(dt));
                    same_bytes(what, dw_run, dw_ref);
                }
            }
    float f;
    int32_t i0 = 0;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "must be >= 0", fp8_cuda_embedding(ctx, &f, &f, &i0, FP8_DTYPE_F32, -1, 1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_idx is NULL", fp8_cuda_embedding(ctx, &f, &f, nullptr, FP8_DTYPE_F32, 1, 1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dtype", fp8_cuda_embedding_backward(ctx, &f, &f, &i0, FP8_DTYPE_I32, 1, 1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "2^31", fp8_cuda_embedding_backward(ctx, &f, &f, &i0, FP8_DTYPE_F32, (int64_t)1 << 31, 1, 1));
}

void cross_entropy() {
    section("nn: cross_entropy");
    const int64_t shapes[][2] = {{1, 1}, {64, 10}, {7, 1024}, {3, 1500}, {2000, 5}, {0, 5}};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (const auto &sh : shapes)
            for (int32_t ignore : {-100, 3})
                for (int mode = 0; mode < 3; mode++) { /* 0: some rows ignored, 1: all ignored, 2: out-of-range targets */
                    const int64_t rows = sh[0], cols = sh[1], n = rows * cols;
                    if (mode == 1 && ignore == 3 && cols <= 3) continue;
                    std::vector<int32_t> t((size_t)rows + 1); /* never empty: the CPU refuses a NULL array */
                    for (int64_t r = 0; r < rows; r++) {
                        t[(size_t)r] = (int32_t)(rng() % (uint64_t)cols);
                        if (mode == 1 || r % 5 == 2) t[(size_t)r] = ignore;
                    }
                    int64_t bad_row = -1;
                    if (mode == 2 && rows > 0) bad_row = rows / 2, t[(size_t)bad_row] = (int32_t)cols + 4;
                    Buf x(dt, n), logp(dt, n), logp_ref(dt, n), loss(FP8_DTYPE_F32, 1), dloss(FP8_DTYPE_F32, 1);
                    Buf dx(dt, n), dx_ref(dt, n);
                    fill_random(x, 4.0f);
                    dloss.set(0, 0.75f);
                    for (size_t ws : {(size_t)-1, (size_t)0}) { /* no workspace: temporaries are allocated */
                        MemoryWatch watch;
                        const bool any_bad = mode == 2 && rows > 0;
                        auto is_bad_target = [&](int64_t v) { return bad_row >= 0 && v == t[(size_t)bad_row]; };
                        with_device_shape(4, ws, [&] {
                            CUDA_OK(fp8_cuda_cross_entropy(ctx, loss.as<float>(), logp.p(), x.p(), t.data(), dt, rows, cols, ignore));
                            expect_index_error("cross_entropy", any_bad ? FP8_CUDA_INDEX_CROSS_ENTROPY : 0, cols, is_bad_target);
                            CUDA_OK(fp8_cuda_cross_entropy_backward(ctx, dx.p(), logp.p(), t.data(), dloss.as<float>(), dt, rows,
                                                                    cols, ignore));
                            expect_index_error("cross_entropy_backward", any_bad ? FP8_CUDA_INDEX_CROSS_ENTROPY_BACKWARD : 0,
                                               cols, is_bad_target);
                        });
                        watch.check("cross_entropy temporaries");
                        char what[128];
                        snprintf(what, sizeof what, "cross_entropy (%lld, %lld) %s ignore %d mode %d", (long long)rows,
                                 (long long)cols, dt_name(dt), ignore, mode);
                        if (mode == 2 && rows > 0) {
                            /* the CPU refuses such a target; the device makes the loss and that row NaN */
                            CHECK(std::isnan(loss.get(0)), "%s: loss %g, expected NaN", what, loss.get(0));
                            bool row_nan = true, others_finite = true;
                            for (int64_t r = 0; r < rows; r++)
                                for (int64_t c = 0; c < cols; c++) {
                                    const float v = dx.get(r * cols + c);
                                    if (r == bad_row) row_nan &= std::isnan(v);
                                    else others_finite &= std::isfinite(v);
                                }
                            CHECK(row_nan && others_finite, "%s: dlogits not NaN exactly on the bad row", what);
                            continue;
                        }
                        float cpu_loss;
                        CPU_OK(fp8_cpu_cross_entropy(&cpu_loss, logp_ref.p(), x.p(), t.data(), dt, rows, cols, ignore));
                        CPU_OK(fp8_cpu_cross_entropy_backward(dx_ref.p(), logp_ref.p(), t.data(), 0.75f, dt, rows, cols, ignore));
                        close(what, logp, logp_ref, dt == FP8_DTYPE_F32 ? 2.4e-7 : 8e-3, dt == FP8_DTYPE_F32 ? 5e-7 : 0);
                        const float lg = loss.get(0);
                        close_values(what, &lg, &cpu_loss, 1, 1e-6, 0);
                        close(what, dx, dx_ref, dt == FP8_DTYPE_F32 ? 2.4e-7 : 8e-3, 1e-9);
                    }
                }
    float f;
    int32_t t0 = 0;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_loss", fp8_cuda_cross_entropy(ctx, nullptr, &f, &f, &t0, FP8_DTYPE_F32, 1, 1, -100));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, ">= 1", fp8_cuda_cross_entropy(ctx, &f, &f, &f, &t0, FP8_DTYPE_F32, 1, 0, -100));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_dloss", fp8_cuda_cross_entropy_backward(ctx, &f, &f, &t0, nullptr, FP8_DTYPE_F32, 1, 1, -100));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_targets is NULL",
               fp8_cuda_cross_entropy_backward(ctx, &f, &f, nullptr, &f, FP8_DTYPE_F32, 1, 1, -100));
}

/* The flag at the edges of the range: num and -1 are bad, 0 and num - 1 are
 * not; an ignored target is not checked (even a negative ignore_index); the
 * first bad value recorded stays until the host reads it; the read clears it. */
void index_flag_edges() {
    section("nn: index error flag");
    const int64_t num = 5, dim = 3;
    Buf w(FP8_DTYPE_F32, num * dim), y(FP8_DTYPE_F32, 2 * dim);
    fill_random(w);
    const auto is = [](int64_t want) { return [want](int64_t v) { return v == want; }; };
    for (int32_t bad : {(int32_t)num, -1, INT32_MIN, INT32_MAX}) {
        int32_t idx[2] = {0, bad};
        CUDA_OK(fp8_cuda_embedding(ctx, y.p(), w.p(), idx, FP8_DTYPE_F32, 2, num, dim));
        char what[64];
        snprintf(what, sizeof what, "embedding index %d of %lld", (int)bad, (long long)num);
        expect_index_error(what, FP8_CUDA_INDEX_EMBEDDING, num, is(bad));
        for (int64_t c = 0; c < dim; c++) CHECK(y.get(dim + c) == 0.0f, "%s: row not zero", what);
    }
    int32_t ok_idx[2] = {0, (int32_t)num - 1};
    CUDA_OK(fp8_cuda_embedding(ctx, y.p(), w.p(), ok_idx, FP8_DTYPE_F32, 2, num, dim));
    expect_index_error("embedding indices 0 and num - 1", 0, num, is(0));
    /* the first recorded value stays: a later bad call does not replace it */
    int32_t first[1] = {7}, second[1] = {-3};
    CUDA_OK(fp8_cuda_embedding(ctx, y.p(), w.p(), first, FP8_DTYPE_F32, 1, num, dim));
    CUDA_OK(fp8_cuda_embedding(ctx, y.p(), w.p(), second, FP8_DTYPE_F32, 1, num, dim));
    expect_index_error("embedding: first bad value kept", FP8_CUDA_INDEX_EMBEDDING, num, is(7));
    /* cross entropy: ignore_index -100 is skipped, -1 and cols are not */
    const int64_t rows = 3, cols = 4;
    Buf x(FP8_DTYPE_F32, rows * cols), logp(FP8_DTYPE_F32, rows * cols), loss(FP8_DTYPE_F32, 1);
    fill_random(x);
    int32_t ignored[3] = {-100, 0, 3};
    CUDA_OK(fp8_cuda_cross_entropy(ctx, loss.as<float>(), logp.p(), x.p(), ignored, FP8_DTYPE_F32, rows, cols, -100));
    expect_index_error("cross_entropy with ignore_index -100", 0, cols, is(0));
    for (int32_t bad : {(int32_t)cols, -1}) {
        int32_t t[3] = {0, bad, 1};
        CUDA_OK(fp8_cuda_cross_entropy(ctx, loss.as<float>(), logp.p(), x.p(), t, FP8_DTYPE_F32, rows, cols, -100));
        expect_index_error("cross_entropy target out of range", FP8_CUDA_INDEX_CROSS_ENTROPY, cols, is(bad));
    }
    int32_t op = 0;
    int64_t a = 0, b = 0;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "op is NULL", fp8_cuda_take_index_error(ctx, nullptr, &a, &b));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ctx", fp8_cuda_take_index_error(nullptr, &op, &a, &b));
}

/* Rows of x with the values the chunked walk must carry like any other:
 * (when there are enough rows) row 1 all equal, row 2 zeros, row 3 one +inf,
 * row 4 one NaN, row 5 all -inf. */
void special_rows(Buf &x, int64_t rows, int64_t cols) {
    for (int64_t r = 1; r < rows && r <= 5; r++)
        for (int64_t c = 0; c < cols; c++) {
            const int64_t i = r * cols + c;
            if (r == 1) x.set(i, 1.5f);
            if (r == 2) x.set(i, 0.0f);
            if (r == 3 && c == cols / 2) x.set(i, INFINITY);
            if (r == 4 && c == cols - 1) x.set(i, NAN);
            if (r == 5) x.set(i, -INFINITY);
        }
}

/* close() on copies of got and ref whose rows 3 to 5 (special_rows' +inf,
 * NaN and -inf rows) are zeroed: there oneDNN's softmax on the CPU gives 0 to
 * the finite elements (its exp clamps the NaN of inf - inf, and a NaN max), and
 * its backward +-inf from a NaN forward output, where the device, like torch,
 * gives NaN to the whole row (checked separately for the forward). */
void close_but_inf_nan_rows(const char *what, const Buf &got, const Buf &ref, int64_t cols, double rtol, double atol) {
    Buf a(got.dtype(), got.n()), b(ref.dtype(), ref.n());
    a.copy_from(got);
    b.copy_from(ref);
    for (int64_t i = 3 * cols; i < std::min<int64_t>(6 * cols, got.n()); i++) a.set(i, 0.0f), b.set(i, 0.0f);
    close(what, a, b, rtol, atol);
}

/* The row kernels walk each row in 16-byte chunks (for_row in nn_kernels.cu):
 * one vector per chunk where every pointer is 16-byte aligned, element by
 * element where one is not, in the same order. Row lengths that are whole
 * vectors (64, 8, 2048), ragged (37, 1031: a head and a tail in most rows),
 * shorter than a vector (3), and longer than a warp's 1024 columns (the block
 * path); rows of equal values, zeros, an inf, a NaN, all -inf. Layout 0 has
 * every buffer aligned; layout 1 every row buffer one element off (a view at
 * an odd element offset), gamma / beta too; layout 2 only the outputs off.
 * Layout 0 matches the CPU as the tests above; layouts 1 and 2 give layout
 * 0's bytes exactly. Embedding rows are copied in 16-byte, 4-byte or 2-byte
 * units by alignment; its backward in vectors of columns or one by one. */
void chunked_rows() {
    section("nn: 16-byte chunks");
    const int64_t shapes[][2] = {{6, 64}, {9, 37}, {6, 3}, {6, 8}, {6, 1031}, {6, 2048}, {300, 72}, {200, 45}};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (const auto &sh : shapes) {
            const int64_t rows = sh[0], cols = sh[1], n = rows * cols;
            const int es = dtype_size(dt);
            Buf x0(dt, n), dy0(dt, n), g0(dt, cols), b0(dt, cols);
            fill_random(x0, 2.0f);
            special_rows(x0, rows, cols);
            fill_random(dy0);
            fill_random(g0);
            fill_random(b0);
            std::vector<int32_t> t((size_t)rows);
            for (int64_t r = 0; r < rows; r++) t[(size_t)r] = r == 0 ? -100 : (int32_t)(rng() % (uint64_t)cols);
            /* the backwards' forward inputs, from the CPU, the same for every layout */
            Buf sm_y(dt, n), lsm_y(dt, n), mean(FP8_DTYPE_F32, rows), rstd(FP8_DTYPE_F32, rows), ln_y(dt, n);
            Buf rms_rstd(FP8_DTYPE_F32, rows), rms_y(dt, n), logp_cpu(dt, n), dloss(FP8_DTYPE_F32, 1);
            CPU_OK(fp8_cpu_softmax(sm_y.p(), x0.p(), dt, rows, cols, 0));
            CPU_OK(fp8_cpu_softmax(lsm_y.p(), x0.p(), dt, rows, cols, 1));
            CPU_OK(fp8_cpu_layer_norm(ln_y.p(), mean.as<float>(), rstd.as<float>(), x0.p(), g0.p(), b0.p(), dt, rows, cols, 1e-5f));
            CPU_OK(fp8_cpu_rms_norm(rms_y.p(), rms_rstd.as<float>(), x0.p(), g0.p(), dt, rows, cols, 1e-6f));
            float cpu_loss = 0.0f;
            CPU_OK(fp8_cpu_cross_entropy(&cpu_loss, logp_cpu.p(), x0.p(), t.data(), dt, rows, cols, -100));
            dloss.set(0, 0.5f);
            const char *names[] = {"softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "layer_norm",
                                   "layer_norm_backward", "rms_norm", "rms_norm_backward", "cross_entropy logp",
                                   "cross_entropy_backward", "embedding", "embedding_backward", "layer_norm_backward dgamma",
                                   "layer_norm_backward dbeta", "rms_norm_backward dgamma"};
            constexpr int kOps = 15;
            std::vector<Buf> first; /* layout 0's outputs */
            for (int layout = 0; layout < 3; layout++) {
                const int in_off = layout == 1 ? es : 0, out_off = layout == 0 ? 0 : es;
                auto in = [&](const Buf &src) {
                    Buf b(dt, src.n(), in_off);
                    b.copy_from(src);
                    return b;
                };
                Buf x = in(x0), dy = in(dy0), g = in(g0), b = in(b0), smy = in(sm_y), lsmy = in(lsm_y), logp_in = in(logp_cpu);
                std::vector<Buf> out;
                for (int k = 0; k < kOps; k++) out.emplace_back(dt, k == 11 ? cols * 4 : k >= 12 ? cols : n, out_off);
                Buf m(FP8_DTYPE_F32, rows), rs(FP8_DTYPE_F32, rows), rs_rms(FP8_DTYPE_F32, rows), loss(FP8_DTYPE_F32, 1);
                CUDA_OK(fp8_cuda_softmax(ctx, out[0].p(), x.p(), dt, rows, cols, 0));
                CUDA_OK(fp8_cuda_softmax(ctx, out[1].p(), x.p(), dt, rows, cols, 1));
                CUDA_OK(fp8_cuda_softmax_backward(ctx, out[2].p(), dy.p(), smy.p(), dt, rows, cols, 0));
                CUDA_OK(fp8_cuda_softmax_backward(ctx, out[3].p(), dy.p(), lsmy.p(), dt, rows, cols, 1));
                CUDA_OK(fp8_cuda_layer_norm(ctx, out[4].p(), m.as<float>(), rs.as<float>(), x.p(), g.p(), b.p(), dt, rows, cols, 1e-5f));
                CUDA_OK(fp8_cuda_layer_norm_backward(ctx, out[5].p(), out[12].p(), out[13].p(), dy.p(), x.p(), mean.as<float>(),
                                                     rstd.as<float>(), g.p(), dt, rows, cols));
                CUDA_OK(fp8_cuda_rms_norm(ctx, out[6].p(), rs_rms.as<float>(), x.p(), g.p(), dt, rows, cols, 1e-6f));
                CUDA_OK(fp8_cuda_rms_norm_backward(ctx, out[7].p(), out[14].p(), dy.p(), x.p(), rms_rstd.as<float>(), g.p(), dt,
                                                   rows, cols));
                CUDA_OK(fp8_cuda_cross_entropy(ctx, loss.as<float>(), out[8].p(), x.p(), t.data(), dt, rows, cols, -100));
                CUDA_OK(fp8_cuda_cross_entropy_backward(ctx, out[9].p(), logp_in.p(), t.data(), dloss.as<float>(), dt, rows,
                                                        cols, -100));
                /* embedding: rows of x picked by index (x as the weight: rows x cols) */
                std::vector<int32_t> idx((size_t)rows);
                for (int64_t r = 0; r < rows; r++) idx[(size_t)r] = (int32_t)((r * 5 + 2) % rows);
                CUDA_OK(fp8_cuda_embedding(ctx, out[10].p(), x.p(), idx.data(), dt, rows, rows, cols));
                /* backward into a (4, cols) weight: every row of dy added to row idx % 4 */
                for (auto &k : idx) k %= 4;
                for (int64_t i = 0; i < 4 * cols; i++) out[11].set(i, 0.25f * (float)(i % 7));
                CUDA_OK(fp8_cuda_embedding_backward(ctx, out[11].p(), dy.p(), idx.data(), dt, rows, 4, cols));
                char what[128];
                if (layout == 0) {
                    /* against the CPU, with the tolerances of the tests above */
                    snprintf(what, sizeof what, "chunked softmax (%lld, %lld) %s", (long long)rows, (long long)cols, dt_name(dt));
                    Buf ref(dt, n);
                    close_but_inf_nan_rows(what, out[0], sm_y, cols, rtol_for(dt), 1e-7);
                    close_but_inf_nan_rows(what, out[1], lsm_y, cols, rtol_for(dt), 1e-5);
                    for (int k = 0; k < 2; k++) /* a row with +inf or NaN, or all -inf: NaN throughout, as torch */
                        for (int64_t i = 3 * cols; i < std::min<int64_t>(6 * cols, n); i++)
                            CHECK(std::isnan(out[(size_t)k].get(i)), "%s: %s of a row with +inf, NaN or all -inf: [%lld] = %g, expected NaN",
                                  what, names[k], (long long)i, out[(size_t)k].get(i));
                    CPU_OK(fp8_cpu_softmax_backward(ref.p(), dy0.p(), sm_y.p(), dt, rows, cols, 0));
                    close_but_inf_nan_rows(what, out[2], ref, cols, dt == FP8_DTYPE_F32 ? 1e-5 : 1.6e-2, dt == FP8_DTYPE_F32 ? 1e-6 : 1e-3);
                    CPU_OK(fp8_cpu_softmax_backward(ref.p(), dy0.p(), lsm_y.p(), dt, rows, cols, 1));
                    close_but_inf_nan_rows(what, out[3], ref, cols, dt == FP8_DTYPE_F32 ? 1e-5 : 1.6e-2,
                                           dt == FP8_DTYPE_F32 ? 1e-6 + 8e-7 * std::sqrt((double)cols) : 1e-3);
                    snprintf(what, sizeof what, "chunked layer_norm (%lld, %lld) %s", (long long)rows, (long long)cols, dt_name(dt));
                    close(what, out[4], ln_y, rtol_for(dt), dt == FP8_DTYPE_F32 ? 1e-5 : 1.6e-2);
                    close(what, m, mean, 1e-5, 1e-6);
                    close(what, rs, rstd, 1e-5, 0);
                    Buf dg_ref(dt, cols), db_ref(dt, cols);
                    const double atol = (dt == FP8_DTYPE_F32 ? 1e-5 : 1e-2) * std::sqrt((double)rows + 1);
                    CPU_OK(fp8_cpu_layer_norm_backward(ref.p(), dg_ref.p(), db_ref.p(), dy0.p(), x0.p(), mean.as<float>(),
                                                       rstd.as<float>(), g0.p(), dt, rows, cols));
                    close(what, out[5], ref, dt == FP8_DTYPE_F32 ? 1e-4 : 1.6e-2, dt == FP8_DTYPE_F32 ? 1e-5 : 2e-2);
                    close(what, out[12], dg_ref, rtol_for(dt), atol);
                    close(what, out[13], db_ref, rtol_for(dt), atol);
                    snprintf(what, sizeof what, "chunked rms_norm (%lld, %lld) %s", (long long)rows, (long long)cols, dt_name(dt));
                    close(what, out[6], rms_y, dt == FP8_DTYPE_F32 ? 4.8e-7 : 8e-3, 0);
                    close(what, rs_rms, rms_rstd, 2.4e-7, 0);
                    CPU_OK(fp8_cpu_rms_norm_backward(ref.p(), dg_ref.p(), dy0.p(), x0.p(), rms_rstd.as<float>(), g0.p(), dt, rows, cols));
                    close(what, out[7], ref, dt == FP8_DTYPE_F32 ? 1e-6 : 8e-3, dt == FP8_DTYPE_F32 ? 1e-7 : 1e-4);
                    close(what, out[14], dg_ref, dt == FP8_DTYPE_F32 ? 1e-6 : 8e-3, 1e-7);
                    snprintf(what, sizeof what, "chunked cross_entropy (%lld, %lld) %s", (long long)rows, (long long)cols, dt_name(dt));
                    close(what, out[8], logp_cpu, dt == FP8_DTYPE_F32 ? 2.4e-7 : 8e-3, dt == FP8_DTYPE_F32 ? 5e-7 : 0);
                    const float lg = loss.get(0);
                    close_values(what, &lg, &cpu_loss, 1, 1e-6, 0);
                    CPU_OK(fp8_cpu_cross_entropy_backward(ref.p(), logp_cpu.p(), t.data(), 0.5f, dt, rows, cols, -100));
                    close(what, out[9], ref, dt == FP8_DTYPE_F32 ? 2.4e-7 : 8e-3, 1e-9);
                    snprintf(what, sizeof what, "chunked embedding (%lld, %lld) %s", (long long)rows, (long long)cols, dt_name(dt));
                    std::vector<int32_t> idx_fwd((size_t)rows);
                    for (int64_t r = 0; r < rows; r++) idx_fwd[(size_t)r] = (int32_t)((r * 5 + 2) % rows);
                    CPU_OK(fp8_cpu_embedding(ref.p(), x0.p(), idx_fwd.data(), dt, rows, rows, cols));
                    same_bytes(what, out[10], ref);
                    Buf dw_ref(dt, cols * 4);
                    for (int64_t i = 0; i < 4 * cols; i++) dw_ref.set(i, 0.25f * (float)(i % 7));
                    CPU_OK(fp8_cpu_embedding_backward(dw_ref.p(), dy0.p(), idx.data(), dt, rows, 4, cols));
                    same_bytes(what, out[11], dw_ref);
                    first = std::move(out);
                } else {
                    for (int k = 0; k < kOps; k++) {
                        snprintf(what, sizeof what, "%s (%lld, %lld) %s, %s misaligned by one element", names[k], (long long)rows,
                                 (long long)cols, dt_name(dt), layout == 1 ? "every buffer" : "the output");
                        same_bytes(what, out[(size_t)k], first[(size_t)k]);
                    }
                }
            }
        }
}

/* An H200's 132 SMs: dgamma / dbeta in many slices, the loss over many rows. */
void on_a_full_size_device() {
    section("nn: 132 SMs");
    with_device_shape(132, (size_t)-1, [] {
        const int64_t rows = 4000, cols = 64, n = rows * cols;
        Buf x(FP8_DTYPE_F32, n), dy(FP8_DTYPE_F32, n), y(FP8_DTYPE_F32, n), g(FP8_DTYPE_F32, cols), dx(FP8_DTYPE_F32, n),
            dx_ref(FP8_DTYPE_F32, n), dg(FP8_DTYPE_F32, cols), db(FP8_DTYPE_F32, cols), dg_ref(FP8_DTYPE_F32, cols),
            db_ref(FP8_DTYPE_F32, cols), mean(FP8_DTYPE_F32, rows), rstd(FP8_DTYPE_F32, rows);
        fill_random(x);
        fill_random(dy);
        fill_random(g);
        CPU_OK(fp8_cpu_layer_norm(y.p(), mean.as<float>(), rstd.as<float>(), x.p(), g.p(), nullptr, FP8_DTYPE_F32, rows, cols, 1e-5f));
        CUDA_OK(fp8_cuda_layer_norm_backward(ctx, dx.p(), dg.p(), db.p(), dy.p(), x.p(), mean.as<float>(), rstd.as<float>(), g.p(),
                                             FP8_DTYPE_F32, rows, cols));
        CPU_OK(fp8_cpu_layer_norm_backward(dx_ref.p(), dg_ref.p(), db_ref.p(), dy.p(), x.p(), mean.as<float>(), rstd.as<float>(),
                                           g.p(), FP8_DTYPE_F32, rows, cols));
        close("layer_norm_backward dx on 132 SMs", dx, dx_ref, 1e-4, 1e-5);
        close("layer_norm_backward dgamma on 132 SMs", dg, dg_ref, 2e-5, 1e-3);
        close("layer_norm_backward dbeta on 132 SMs", db, db_ref, 2e-5, 1e-3);
        std::vector<int32_t> t((size_t)rows);
        for (int64_t r = 0; r < rows; r++) t[(size_t)r] = r % 9 == 0 ? -100 : (int32_t)(rng() % (uint64_t)cols);
        Buf logp(FP8_DTYPE_F32, n), logp_ref(FP8_DTYPE_F32, n), loss(FP8_DTYPE_F32, 1);
        float cpu_loss;
        CUDA_OK(fp8_cuda_cross_entropy(ctx, loss.as<float>(), logp.p(), x.p(), t.data(), FP8_DTYPE_F32, rows, cols, -100));
        CPU_OK(fp8_cpu_cross_entropy(&cpu_loss, logp_ref.p(), x.p(), t.data(), FP8_DTYPE_F32, rows, cols, -100));
        const float lg = loss.get(0);
        close_values("cross_entropy loss on 132 SMs", &lg, &cpu_loss, 1, 1e-6, 0);
    });
}

}  // namespace

void test_nn() {
    softmax();
    layer_norm();
    rms_norm();
    embedding();
    cross_entropy();
    index_flag_edges();
    on_a_full_size_device();
    chunked_rows();
}

}  // namespace harness
