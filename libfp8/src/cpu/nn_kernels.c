/*
 * nn_kernels.c — CPU kernels that oneDNN 2.6 has no primitive for: RMS norm,
 * fill / masked fill, embedding and cross entropy, each with its backward.
 * Plain C11 + OpenMP, built into libfp8 by the top-level CMakeLists.txt.
 *
 * Numerics follow PyTorch: values are read from F32 or BF16 buffers as f32,
 * row sums accumulate in double, and each result is rounded once to the
 * destination dtype (bf16 round-to-nearest-even via fp8_store_hp).
 * Index and target arrays are validated in full before anything is written,
 * so a bad index leaves every destination untouched.
 */
#include <stdlib.h>

#include "internal.h"

/* Below these sizes a parallel region costs more than it saves. */
#define PAR_ELEMS 32768

/* a * b is an element count whose byte size cannot overflow (both >= 0). */
static int mul_fits(int64_t a, int64_t b) { return fp8_count_ok(a, b); }

#define REQUIRE_HP_DTYPE(dt, fn)                                                              \
    FP8_REQUIRE(fp8_is_float_hp(dt), fn, "dtype must be float32 or bfloat16, got %s (%d)",  \
                fp8_dtype_name(dt), (int)(dt))

#define REQUIRE_SHAPE(rows, cols, fn)                                                         \
    do {                                                                                      \
        FP8_REQUIRE((rows) >= 0 && (cols) >= 0, fn, "%s and %s must be >= 0, got %lld, %lld", \
                    #rows, #cols, (long long)(rows), (long long)(cols));                      \
        FP8_REQUIRE(mul_fits(rows, cols), fn, "%s * %s overflows (%lld * %lld)", #rows,       \
                    #cols, (long long)(rows), (long long)(cols));                             \
    } while (0)

/* ---- RMS norm ------------------------------------------------------------ */

/* dst (rows, cols) <- round(src * rstd) * gamma; rstd (rows) f32.
 * Like torch.nn.functional.rms_norm, the normalised value is rounded to the
 * input dtype before the gamma multiply (a no-op for f32). */
int32_t fp8_cpu_rms_norm(void *dst, float *rstd, const void *src, const void *gamma,
                         int32_t dtype, int64_t rows, int64_t cols, float eps) {
    const char *fn = "fp8_cpu_rms_norm";
    FP8_REQUIRE_PTR(dst, fn);
    FP8_REQUIRE_PTR(rstd, fn);
    FP8_REQUIRE_PTR(src, fn);
    REQUIRE_HP_DTYPE(dtype, fn);
    REQUIRE_SHAPE(rows, cols, fn);
    FP8_REQUIRE(eps >= 0.0f, fn, "eps must be >= 0, got %g", (double)eps);

#pragma omp parallel for if (rows * cols > PAR_ELEMS)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t base = r * cols;
        double sumsq = 0.0;
        for (int64_t c = 0; c < cols; c++) {
            double x = fp8_load_hp(src, dtype, base + c);
            sumsq += x * x;
        }
        /* cols == 0 gives NaN, as torch's mean over an empty axis does. */
        float rs = (float)(1.0 / sqrt(sumsq / (double)cols + (double)eps));
        rstd[r] = rs;
        for (int64_t c = 0; c < cols; c++) {
            float y = fp8_load_hp(src, dtype, base + c) * rs;
            if (gamma) {
                if (dtype == FP8_DTYPE_BF16) y = fp8_bf16_to_f32(fp8_f32_to_bf16(y));
                y *= fp8_load_hp(gamma, dtype, c);
            }
            fp8_store_hp(dst, dtype, base + c, y);
        }
    }
    return FP8_OK;
}

/* y = x * r * g with r = (mean(x^2) + eps)^-1/2 gives, per row,
 *   dx_j = r * g_j * dy_j - x_j * r^3 / cols * sum_k dy_k * g_k * x_k
 *   dgamma_j = sum_rows dy_j * x_j * r
 * dsrc (rows, cols); dgamma (cols) overwritten, or NULL to skip it (it must be
 * NULL when gamma is). rstd is the forward's. */
int32_t fp8_cpu_rms_norm_backward(void *dsrc, void *dgamma, const void *ddst, const void *src,
                                  const float *rstd, const void *gamma, int32_t dtype,
                                  int64_t rows, int64_t cols) {
    const char *fn = "fp8_cpu_rms_norm_backward";
    FP8_REQUIRE_PTR(dsrc, fn);
    FP8_REQUIRE_PTR(ddst, fn);
    FP8_REQUIRE_PTR(src, fn);
    FP8_REQUIRE_PTR(rstd, fn);
    FP8_REQUIRE(gamma || !dgamma, fn, "dgamma is given but gamma is NULL");
    REQUIRE_HP_DTYPE(dtype, fn);
    REQUIRE_SHAPE(rows, cols, fn);

#pragma omp parallel for if (rows * cols > PAR_ELEMS)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t base = r * cols;
        const double rs = rstd[r];
        double dot = 0.0; /* sum_k dy_k * g_k * x_k */
        for (int64_t c = 0; c < cols; c++) {
            double g = gamma ? fp8_load_hp(gamma, dtype, c) : 1.0;
            dot += (double)fp8_load_hp(ddst, dtype, base + c) * g * fp8_load_hp(src, dtype, base + c);
        }
        const double coef = dot * rs * rs * rs / (double)cols;
        for (int64_t c = 0; c < cols; c++) {
            double g = gamma ? fp8_load_hp(gamma, dtype, c) : 1.0;
            double dx = rs * g * fp8_load_hp(ddst, dtype, base + c) -
                        coef * fp8_load_hp(src, dtype, base + c);
            fp8_store_hp(dsrc, dtype, base + c, (float)dx);
        }
    }

    if (dgamma) {
        /* Column blocks own their dgamma entries, so the sum over rows is
         * race-free; a block spans a cache line or two of each row. */
        enum { BLOCK = 32 };
        const int64_t nblocks = (cols + BLOCK - 1) / BLOCK;
#pragma omp parallel for if (rows * cols > PAR_ELEMS)
        for (int64_t b = 0; b < nblocks; b++) {
            const int64_t c0 = b * BLOCK;
            const int64_t nc = cols - c0 < BLOCK ? cols - c0 : BLOCK;
            double acc[BLOCK] = {0};
            for (int64_t r = 0; r < rows; r++) {
                const int64_t base = r * cols + c0;
                const double rs = rstd[r];
                for (int64_t j = 0; j < nc; j++)
                    acc[j] += (double)fp8_load_hp(ddst, dtype, base + j) *
                              fp8_load_hp(src, dtype, base + j) * rs;
            }
            for (int64_t j = 0; j < nc; j++) fp8_store_hp(dgamma, dtype, c0 + j, (float)acc[j]);
        }
    }
    return FP8_OK;
}

/* ---- fill, masked fill ---------------------------------------------------- */

int32_t fp8_cpu_fill(void *dst, int32_t dtype, int64_t n, double value) {
    const char *fn = "fp8_cpu_fill";
    FP8_REQUIRE_PTR(dst, fn);
    FP8_REQUIRE_N(n, fn);
    if (dtype == FP8_DTYPE_I32) {
        /* torch's int fill truncates toward zero; values it cannot hold are refused. */
        FP8_REQUIRE(value > -2147483649.0 && value < 2147483648.0, fn,
                    "value %g does not fit int32", value);
        const int32_t v = (int32_t)value;
        int32_t *d = dst;
#pragma omp parallel for if (n > PAR_ELEMS)
        for (int64_t i = 0; i < n; i++) d[i] = v;
        return FP8_OK;
    }
    FP8_REQUIRE(fp8_is_float_any(dtype), fn, "dtype must be float32, bfloat16, float16 or int32, got %s (%d)",
                fp8_dtype_name(dtype), (int)dtype);
    const float v = (float)value;
#pragma omp parallel for if (n > PAR_ELEMS)
    for (int64_t i = 0; i < n; i++) fp8_store_hp(dst, dtype, i, v);
    return FP8_OK;
}

/* dst (n) <- mask[i % mask_n] ? value : src[i]: the mask broadcasts over the
 * leading dims of src. dst may equal src. */
int32_t fp8_cpu_masked_fill(void *dst, const void *src, const uint8_t *mask, int32_t dtype,
                            int64_t n, int64_t mask_n, float value) {
    const char *fn = "fp8_cpu_masked_fill";
    FP8_REQUIRE_PTR(dst, fn);
    FP8_REQUIRE_PTR(src, fn);
    FP8_REQUIRE_PTR(mask, fn);
    REQUIRE_HP_DTYPE(dtype, fn);
    FP8_REQUIRE_N(n, fn);
    FP8_REQUIRE(mask_n >= 1, fn, "mask_n must be >= 1, got %lld", (long long)mask_n);
    FP8_REQUIRE(n % mask_n == 0, fn, "n (%lld) is not a multiple of mask_n (%lld)",
                (long long)n, (long long)mask_n);

    const int64_t reps = n / mask_n;
#pragma omp parallel for if (n > PAR_ELEMS)
    for (int64_t r = 0; r < reps; r++)
        for (int64_t j = 0; j < mask_n; j++) {
            const int64_t i = r * mask_n + j;
            fp8_store_hp(dst, dtype, i, mask[j] ? value : fp8_load_hp(src, dtype, i));
        }
    return FP8_OK;
}

/* ---- embedding -------------------------------------------------------------- */

/* Returns the position of the first index outside [0, num), or -1. */
static int64_t first_bad_index(const int32_t *idx, int64_t n_idx, int64_t num) {
    for (int64_t i = 0; i < n_idx; i++)
        if (idx[i] < 0 || idx[i] >= num) return i;
    return -1;
}

/* Checks everything but the two data pointers, which the callers name. */
static int32_t check_embedding_args(const char *fn, const int32_t *idx, int32_t dtype,
                                    int64_t n_idx, int64_t num, int64_t dim) {
    FP8_REQUIRE_PTR(idx, fn);
    REQUIRE_HP_DTYPE(dtype, fn);
    REQUIRE_SHAPE(n_idx, dim, fn);
    REQUIRE_SHAPE(num, dim, fn);
    const int64_t bad = first_bad_index(idx, n_idx, num);
    FP8_REQUIRE(bad < 0, fn, "index %d at position %lld is out of range [0, %lld)",
                bad < 0 ? 0 : idx[bad], (long long)bad, (long long)num);
    return FP8_OK;
}

/* dst (n_idx, dim) <- weight (num, dim) rows picked by idx (n_idx). */
int32_t fp8_cpu_embedding(void *dst, const void *weight, const int32_t *idx, int32_t dtype,
                          int64_t n_idx, int64_t num, int64_t dim) {
    const char *fn = "fp8_cpu_embedding";
    FP8_REQUIRE_PTR(dst, fn);
    FP8_REQUIRE_PTR(weight, fn);
    int32_t st = check_embedding_args(fn, idx, dtype, n_idx, num, dim);
    if (st != FP8_OK) return st;
    const size_t row_bytes = (size_t)dim * (size_t)fp8_dtype_size(dtype);
    char *d = dst;
    const char *w = weight;
#pragma omp parallel for if (n_idx * dim > PAR_ELEMS)
    for (int64_t i = 0; i < n_idx; i++)
        memcpy(d + (size_t)i * row_bytes, w + (size_t)idx[i] * row_bytes, row_bytes);
    return FP8_OK;
}

/* dweight (num, dim) += ddst (n_idx, dim) scattered by idx.
 * The positions of each weight row are grouped first (a counting sort), so
 * every row is summed by one thread in position order: race-free, the same
 * result on any thread count, f32 sums and one rounding per bf16 element. */
int32_t fp8_cpu_embedding_backward(void *dweight, const void *ddst, const int32_t *idx,
                                   int32_t dtype, int64_t n_idx, int64_t num, int64_t dim) {
    const char *fn = "fp8_cpu_embedding_backward";
    FP8_REQUIRE_PTR(dweight, fn);
    FP8_REQUIRE_PTR(ddst, fn);
    int32_t st = check_embedding_args(fn, idx, dtype, n_idx, num, dim);
    if (st != FP8_OK) return st;
    if (n_idx == 0 || dim == 0) return FP8_OK;

    int64_t *start = malloc(((size_t)num + 1) * sizeof *start); /* row r: start[r]..start[r+1] */
    int64_t *pos = malloc((size_t)n_idx * sizeof *pos);
    if (!start || !pos) {
        free(start);
        free(pos);
        return fp8_fail(FP8_ERR_OUT_OF_MEMORY, fn, "out of memory grouping %lld indices",
                        (long long)n_idx);
    }
    memset(start, 0, ((size_t)num + 1) * sizeof *start);
    for (int64_t i = 0; i < n_idx; i++) start[idx[i] + 1]++;
    for (int64_t r = 0; r < num; r++) start[r + 1] += start[r];
    for (int64_t i = 0; i < n_idx; i++) pos[start[idx[i]]++] = i;
    /* start[r] now holds the end of row r; shift back to get the starts. */
    for (int64_t r = num; r > 0; r--) start[r] = start[r - 1];
    start[0] = 0;

    enum { CHUNK = 256 };
#pragma omp parallel for schedule(dynamic, 16) if (n_idx * dim > PAR_ELEMS)
    for (int64_t r = 0; r < num; r++) {
        if (start[r] == start[r + 1]) continue;
        for (int64_t c0 = 0; c0 < dim; c0 += CHUNK) {
            const int64_t nc = dim - c0 < CHUNK ? dim - c0 : CHUNK;
            float acc[CHUNK];
            for (int64_t j = 0; j < nc; j++) acc[j] = fp8_load_hp(dweight, dtype, r * dim + c0 + j);
            for (int64_t k = start[r]; k < start[r + 1]; k++) {
                const int64_t base = pos[k] * dim + c0;
                for (int64_t j = 0; j < nc; j++) acc[j] += fp8_load_hp(ddst, dtype, base + j);
            }
            for (int64_t j = 0; j < nc; j++) fp8_store_hp(dweight, dtype, r * dim + c0 + j, acc[j]);
        }
    }
    free(start);
    free(pos);
    return FP8_OK;
}

/* ---- cross entropy ------------------------------------------------------------ */

/* Validates targets: each in [0, cols) or == ignore_index. *count <- rows kept. */
static int32_t check_targets(const char *fn, const int32_t *targets, int64_t rows, int64_t cols,
                             int32_t ignore_index, int64_t *count) {
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int32_t t = targets[r];
        if (t == ignore_index) continue;
        FP8_REQUIRE(t >= 0 && t < cols, fn,
                    "target %d at row %lld is out of range [0, %lld) and is not ignore_index (%d)",
                    t, (long long)r, (long long)cols, ignore_index);
        kept++;
    }
    *count = kept;
    return FP8_OK;
}

/* Checks everything but the data pointers, which the callers name. */
static int32_t check_cross_entropy_args(const char *fn, const int32_t *targets, int32_t dtype,
                                        int64_t rows, int64_t cols) {
    FP8_REQUIRE_PTR(targets, fn);
    REQUIRE_HP_DTYPE(dtype, fn);
    REQUIRE_SHAPE(rows, cols, fn);
    FP8_REQUIRE(cols >= 1, fn, "cols must be >= 1, got %lld", (long long)cols);
    return FP8_OK;
}

/* logp (rows, cols) <- log_softmax(logits) rounded to dtype;
 * *loss <- -mean of logp[r, targets[r]] over rows not ignored, summed from
 * the stored logp (NaN when every row is ignored, as torch gives). */
int32_t fp8_cpu_cross_entropy(float *loss, void *logp, const void *logits, const int32_t *targets,
                              int32_t dtype, int64_t rows, int64_t cols, int32_t ignore_index) {
    const char *fn = "fp8_cpu_cross_entropy";
    FP8_REQUIRE_PTR(loss, fn);
    FP8_REQUIRE_PTR(logp, fn);
    FP8_REQUIRE_PTR(logits, fn);
    int32_t st = check_cross_entropy_args(fn, targets, dtype, rows, cols);
    if (st != FP8_OK) return st;
    int64_t count = 0;
    st = check_targets(fn, targets, rows, cols, ignore_index, &count);
    if (st != FP8_OK) return st;

    double nll = 0.0;
#pragma omp parallel for reduction(+ : nll) if (rows * cols > PAR_ELEMS)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t base = r * cols;
        float mx = -INFINITY;
        for (int64_t c = 0; c < cols; c++) mx = fmaxf(mx, fp8_load_hp(logits, dtype, base + c));
        double sum = 0.0;
        for (int64_t c = 0; c < cols; c++) sum += exp((double)(fp8_load_hp(logits, dtype, base + c) - mx));
        const float log_sum = (float)log(sum);
        for (int64_t c = 0; c < cols; c++)
            fp8_store_hp(logp, dtype, base + c, (fp8_load_hp(logits, dtype, base + c) - mx) - log_sum);
        if (targets[r] != ignore_index) nll -= fp8_load_hp(logp, dtype, base + targets[r]);
    }
    *loss = (float)(nll / (double)count);
    return FP8_OK;
}

/* dlogits (rows, cols) <- dloss * (exp(logp) - onehot(target)) / count for
 * kept rows, 0 for ignored rows. */
int32_t fp8_cpu_cross_entropy_backward(void *dlogits, const void *logp, const int32_t *targets,
                                       float dloss, int32_t dtype, int64_t rows, int64_t cols,
                                       int32_t ignore_index) {
    const char *fn = "fp8_cpu_cross_entropy_backward";
    FP8_REQUIRE_PTR(dlogits, fn);
    FP8_REQUIRE_PTR(logp, fn);
    int32_t st = check_cross_entropy_args(fn, targets, dtype, rows, cols);
    if (st != FP8_OK) return st;
    int64_t count = 0;
    st = check_targets(fn, targets, rows, cols, ignore_index, &count);
    if (st != FP8_OK) return st;

    const float w = count > 0 ? (float)((double)dloss / (double)count) : 0.0f;
#pragma omp parallel for if (rows * cols > PAR_ELEMS)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t base = r * cols;
        const int32_t t = targets[r];
        if (t == ignore_index) {
            for (int64_t c = 0; c < cols; c++) fp8_store_hp(dlogits, dtype, base + c, 0.0f);
            continue;
        }
        for (int64_t c = 0; c < cols; c++) {
            float p = expf(fp8_load_hp(logp, dtype, base + c));
            fp8_store_hp(dlogits, dtype, base + c, w * (p - (c == t ? 1.0f : 0.0f)));
        }
    }
    return FP8_OK;
}
