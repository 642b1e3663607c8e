/*
 * Batch normalisation over NHWC rows (torch.nn.BatchNorm2d / F.batch_norm), optionally
 * followed by a fused activation (ReLU or SiLU) in the same pass over memory.
 *
 * Training: per-channel mean and biased variance of the batch normalise x; the running
 * statistics move by `momentum` towards the batch mean and the UNBIASED batch variance
 * (rows/(rows-1)), PyTorch's convention. Statistics are accumulated in double over fixed
 * row partitions, shifted by the first row to avoid cancellation.
 * Evaluation: running statistics. Both forms save mean and inverse std for backward.
 *
 * Fused activation: y = act(z), z = BN(x). z itself is never stored: backward recomputes
 * it from x (z = x * scale + bias with scale = gamma * invstd, bias = beta - mean * scale)
 * where SiLU needs it, and ReLU takes its mask from y (y > 0 exactly where z > 0). The
 * gradient of z is formed on the fly in the statistics pass of the backward; for SiLU,
 * whose derivative costs an exp and a division, that pass also stores it in dx, and the
 * second pass turns it into the input gradient in place.
 */
#include <math.h>
#include <string.h>

#include "dist/dist.h"
#include "internal.h"
#include "ops.h"
#include "simd.h"

size_t cored_bn_ws_floats(const cored_bn_shape *s)
{
    /* two double accumulators per channel per partition, then 5 per-channel floats */
    return (size_t)CORED_PARTS * 2 * 2 * (size_t)s->c + 5 * (size_t)s->c;
}

/* Rows per parallel task of the row-wise passes. */
static int row_block(int c) { return c >= 4096 ? 1 : 4096 / c; }

/* Runs ROW_CALL (with lo, hi) over row blocks of `rows`, in parallel. */
#define ROWS_PARALLEL(rows, c, ROW_CALL)                                                   \
    do {                                                                                   \
        int rb_ = row_block(c), blocks_ = ((rows) + rb_ - 1) / rb_;                        \
        _Pragma("omp parallel for schedule(static)")                                       \
        for (int b_ = 0; b_ < blocks_; b_++) {                                             \
            int lo = b_ * rb_, hi = lo + rb_ < (rows) ? lo + rb_ : (rows);                 \
            ROW_CALL;                                                                      \
        }                                                                                  \
    } while (0)

/* ---------------------------------------------------------------- leaf kernels */

/* The backward passes read two or three arrays row by row. On arrays beyond the L3 the
   hardware prefetcher kept up with none of them (tiny's first BN, 131072 x 32, two threads:
   4.0-5.1 ms, and 2.6-3.7 ms with each row fetching the row PREFETCH_FLOATS floats ahead in
   every array it reads; the same bits). */
#define PREFETCH_FLOATS 512
static inline int prefetch_ahead(int c) { return PREFETCH_FLOATS / c > 0 ? PREFETCH_FLOATS / c : 1; }

/* Prefetches row i + ahead of each array that is not NULL (arrays of `rows` rows), also
   beyond the caller's block: the next block of the same thread usually follows it. Inlined
   by force: where GCC kept it a function, it found it free of side effects (a prefetch has
   none) and deleted every call. */
__attribute__((always_inline)) static inline void prefetch_rows(int i, int ahead, int rows, int c,
                                                                const float *a, const float *b,
                                                                const float *d)
{
    if (i + ahead >= rows) return;
    size_t off = (size_t)(i + ahead) * c;
    for (int q = 0; q < c; q += 16) {
        if (a) __builtin_prefetch(a + off + q);
        if (b) __builtin_prefetch(b + off + q);
        if (d) __builtin_prefetch(d + off + q);
    }
}

/* Sums of rows [lo, hi) of x - shift and its square. */
CORED_CLONES static void stats_shifted(double *s1, double *s2, const float *x, const float *shift,
                                       int lo, int hi, int c)
{
    for (int i = lo; i < hi; i++) {
        const float *rx = x + (size_t)i * c;
        #pragma omp simd
        for (int j = 0; j < c; j++) {
            double d = (double)rx[j] - shift[j];
            s1[j] += d;
            s2[j] += d * d;
        }
    }
}

/* The gradient of z from the gradient of y = act(z): dz = dy * act'(z). */
#define DZ_NONE(j) (rdy[j])
#define DZ_RELU(j) (ry[j] > 0.0f ? rdy[j] : 0.0f)
#define DZ_SILU(j) silu_grad(rdy[j], rx[j] * scale[j] + bias[j])
#define DZ_STORED(j) (rdx[j])

static inline float silu_grad(float dy, float z)
{
    float sg = cored_sigmoidf_fast(z);
    return dy * (sg + z * sg * (1.0f - sg));
}

/* Sums over rows [lo, hi) of dz and dz * xhat. */
#define GRAD_STATS_LOOP(DZ, MASK)                                                          \
    for (int i = lo; i < hi; i++) {                                                        \
        const float *rdy = dy + (size_t)i * c, *rx = x + (size_t)i * c;                    \
        const float *ry = y ? y + (size_t)i * c : NULL;                                    \
        (void)ry;                                                                          \
        prefetch_rows(i, ahead, rows, c, dy, x, MASK);                                     \
        _Pragma("omp simd")                                                                \
        for (int j = 0; j < c; j++) {                                                      \
            float dz = DZ(j), xh = (rx[j] - mean[j]) * invstd[j];                          \
            s1[j] += dz;                                                                   \
            s2[j] += (double)(dz * xh);                                                    \
        }                                                                                  \
    }

CORED_CLONES static void stats_grad(double *s1, double *s2, float *dz_out, const float *dy,
                                    const float *x, const float *y, const float *mean,
                                    const float *invstd, const float *scale, const float *bias,
                                    cored_act act, int lo, int hi, int rows, int c)
{
    const int ahead = prefetch_ahead(c);
    if (act == CORED_ACT_RELU) {
        GRAD_STATS_LOOP(DZ_RELU, y)
    } else if (act == CORED_ACT_SILU && dz_out) { /* keeps dz for the second pass */
        for (int i = lo; i < hi; i++) {
            const float *rdy = dy + (size_t)i * c, *rx = x + (size_t)i * c;
            float *rdz = dz_out + (size_t)i * c;
            prefetch_rows(i, ahead, rows, c, dy, x, NULL);
            #pragma omp simd
            for (int j = 0; j < c; j++) {
                float dz = DZ_SILU(j), xh = (rx[j] - mean[j]) * invstd[j];
                rdz[j] = dz;
                s1[j] += dz;
                s2[j] += (double)(dz * xh);
            }
        }
    } else if (act == CORED_ACT_SILU) {
        GRAD_STATS_LOOP(DZ_SILU, NULL)
    } else {
        GRAD_STATS_LOOP(DZ_NONE, NULL)
    }
}

/* y = act(x * scale + bias) over rows [lo, hi). */
CORED_CLONES static void affine_rows(float *y, const float *x, const float *scale,
                                     const float *bias, cored_act act, int lo, int hi, int c)
{
    for (int i = lo; i < hi; i++) {
        const float *rx = x + (size_t)i * c;
        float *ry = y + (size_t)i * c;
        if (act == CORED_ACT_RELU) {
            #pragma omp simd
            for (int j = 0; j < c; j++) {
                float z = rx[j] * scale[j] + bias[j];
                ry[j] = z > 0.0f ? z : 0.0f;
            }
        } else if (act == CORED_ACT_SILU) {
            #pragma omp simd
            for (int j = 0; j < c; j++) {
                float z = rx[j] * scale[j] + bias[j];
                ry[j] = z * cored_sigmoidf_fast(z);
            }
        } else {
            #pragma omp simd
            for (int j = 0; j < c; j++) ry[j] = rx[j] * scale[j] + bias[j];
        }
    }
}

/* y = act((x - mean) * invstd * gamma + beta), as PyTorch evaluates BN in eval mode. */
CORED_CLONES static void eval_rows(float *y, const float *x, const float *mean,
                                   const float *invstd, const float *gamma, const float *beta,
                                   cored_act act, int lo, int hi, int c)
{
    for (int i = lo; i < hi; i++) {
        const float *rx = x + (size_t)i * c;
        float *ry = y + (size_t)i * c;
        if (act == CORED_ACT_RELU) {
            #pragma omp simd
            for (int j = 0; j < c; j++) {
                float z = (rx[j] - mean[j]) * invstd[j] * gamma[j] + beta[j];
                ry[j] = z > 0.0f ? z : 0.0f;
            }
        } else if (act == CORED_ACT_SILU) {
            #pragma omp simd
            for (int j = 0; j < c; j++) {
                float z = (rx[j] - mean[j]) * invstd[j] * gamma[j] + beta[j];
                ry[j] = z * cored_sigmoidf_fast(z);
            }
        } else {
            #pragma omp simd
            for (int j = 0; j < c; j++) ry[j] = (rx[j] - mean[j]) * invstd[j] * gamma[j] + beta[j];
        }
    }
}

/* dx = k * (dz - m1 - xhat * m2) over rows [lo, hi). */
#define DX_LOOP(DZ, GRAD, MASK)                                                            \
    for (int i = lo; i < hi; i++) {                                                        \
        const float *rdy = dy + (size_t)i * c, *rx = x + (size_t)i * c;                    \
        const float *ry = y ? y + (size_t)i * c : NULL;                                    \
        float *rdx = dx + (size_t)i * c;                                                   \
        (void)ry, (void)rdy;                                                               \
        prefetch_rows(i, ahead, rows, c, GRAD, x, MASK);                                   \
        _Pragma("omp simd")                                                                \
        for (int j = 0; j < c; j++) {                                                      \
            float xh = (rx[j] - mean[j]) * invstd[j];                                      \
            rdx[j] = k[j] * (DZ(j) - m1[j] - xh * m2[j]);                                  \
        }                                                                                  \
    }

CORED_CLONES static void dx_rows(float *dx, const float *dy, const float *x, const float *y,
                                 const float *mean, const float *invstd, const float *k,
                                 const float *m1, const float *m2, cored_act act, int lo, int hi,
                                 int rows, int c)
{
    const int ahead = prefetch_ahead(c);
    if (act == CORED_ACT_RELU) {
        DX_LOOP(DZ_RELU, dy, y)
    } else if (act == CORED_ACT_SILU) { /* dz was stored in dx by the statistics pass */
        DX_LOOP(DZ_STORED, dx, NULL)
    } else {
        DX_LOOP(DZ_NONE, dy, NULL)
    }
}

/* ---------------------------------------------------------------- reductions */

static void reduce_parts(double *s1, double *s2, const double *part, int c)
{
    for (int j = 0; j < c; j++) {
        double a = 0, b = 0;
        for (int p = 0; p < CORED_PARTS; p++) {
            a += part[(size_t)p * 2 * c + j];
            b += part[(size_t)p * 2 * c + c + j];
        }
        s1[j] = a;
        s2[j] = b;
    }
}

/* scale = gamma * invstd, bias = beta - mean * scale: the affine form of the forward. */
static void affine_coeffs(float *scale, float *bias, const float *mean, const float *invstd,
                          const float *gamma, const float *beta, int c)
{
    for (int j = 0; j < c; j++) {
        scale[j] = gamma[j] * invstd[j];
        bias[j] = beta[j] - mean[j] * scale[j];
    }
}

/* ---------------------------------------------------------------- public */

void cored_bn_forward_train(float *y, float *mean, float *invstd, float *run_mean,
                            float *run_var, const float *x, const float *gamma,
                            const float *beta, const cored_bn_shape *s, float *ws)
{
    const int rows = s->rows, c = s->c;
    double *part = (double *)ws;
    /* The shift (first row) keeps sum((x-k)^2) free of cancellation. mean is used as
       scratch for the shift before it receives its final value. */
    float *shift = mean;
    if (rows > 0) memcpy(shift, x, sizeof(float) * (size_t)c);
    /* sync: the last rank's first row is every rank's shift (the last shard is never empty) */
    if (s->sync) cored_dist_bcast(shift, sizeof(float) * (size_t)c, cored_dist_size() - 1);
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        double *s1 = part + (size_t)p * 2 * c, *s2 = s1 + c;
        memset(s1, 0, sizeof(double) * 2 * (size_t)c);
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        stats_shifted(s1, s2, x, shift, lo, hi, c);
    }
    double *s1 = part, *s2 = part + c; /* partition 0's slot is reused for the totals */
    reduce_parts(s1, s2, part, c);
    double n = rows;
    if (s->sync) { /* partition 1's slot is free again: s1, s2 and the row count in one sum */
        part[2 * (size_t)c] = rows;
        cored_dist_sum_d(part, 2 * (size_t)c + 1);
        n = part[2 * (size_t)c];
    }
    for (int j = 0; j < c; j++) {
        double dm = s1[j] / n;
        double var = s2[j] / n - dm * dm;
        if (var < 0) var = 0;
        double m = shift[j] + dm;
        float is = (float)(1.0 / sqrt(var + (double)s->eps));
        mean[j] = (float)m;
        invstd[j] = is;
        if (run_mean) run_mean[j] = (1.0f - s->momentum) * run_mean[j] + s->momentum * (float)m;
        if (run_var) {
            double unbiased = n > 1 ? var * n / (n - 1) : var;
            run_var[j] = (1.0f - s->momentum) * run_var[j] + s->momentum * (float)unbiased;
        }
    }
    float *scale = (float *)(part + 2 * (size_t)c), *bias = scale + c;
    affine_coeffs(scale, bias, mean, invstd, gamma, beta, c);
    ROWS_PARALLEL(rows, c, affine_rows(y, x, scale, bias, s->act, lo, hi, c));
}

void cored_bn_forward_eval(float *y, float *mean, float *invstd, const float *x,
                           const float *gamma, const float *beta, const float *run_mean,
                           const float *run_var, const cored_bn_shape *s)
{
    const int c = s->c;
    for (int j = 0; j < c; j++) {
        mean[j] = run_mean[j];
        invstd[j] = (float)(1.0 / sqrt((double)run_var[j] + (double)s->eps));
    }
    ROWS_PARALLEL(s->rows, c, eval_rows(y, x, mean, invstd, gamma, beta, s->act, lo, hi, c));
}

static void bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *y, const float *mean, const float *invstd,
                        const float *gamma, const float *beta, const cored_bn_shape *s,
                        float *ws, int train)
{
    const int rows = s->rows, c = s->c;
    double *part = (double *)ws;
    /* after the partial sums of every partition: scale, bias, k, m1, m2 */
    float *coef = (float *)(part + (size_t)CORED_PARTS * 2 * c);
    float *scale = coef, *bias = coef + c, *k = coef + 2 * c, *m1 = coef + 3 * c, *m2 = coef + 4 * c;
    affine_coeffs(scale, bias, mean, invstd, gamma, beta, c);
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        double *s1 = part + (size_t)p * 2 * c, *s2 = s1 + c;
        memset(s1, 0, sizeof(double) * 2 * (size_t)c);
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        stats_grad(s1, s2, dx, dy, x, y, mean, invstd, scale, bias, s->act, lo, hi, rows, c);
    }
    double *sdy = part, *sdyx = part + c;
    reduce_parts(sdy, sdyx, part, c);
    /* the parameter gradients are this rank's share (the trainer sums them over the ranks) */
    for (int j = 0; j < c; j++) {
        if (dgamma) dgamma[j] += (float)sdyx[j];
        if (dbeta) dbeta[j] += (float)sdy[j];
    }
    double n = rows;
    if (train && s->sync) { /* the input gradient needs the global batch's sums */
        part[2 * (size_t)c] = rows;
        cored_dist_sum_d(part, 2 * (size_t)c + 1);
        n = part[2 * (size_t)c];
    }
    if (!dx || rows == 0) return;
    /* dx = gamma*invstd * (dz - [train] (sum dz + xhat * sum dz*xhat) / rows) */
    for (int j = 0; j < c; j++) {
        k[j] = gamma[j] * invstd[j];
        m1[j] = train ? (float)(sdy[j] / n) : 0.0f;
        m2[j] = train ? (float)(sdyx[j] / n) : 0.0f;
    }
    ROWS_PARALLEL(rows, c, dx_rows(dx, dy, x, y, mean, invstd, k, m1, m2, s->act, lo, hi, rows, c));
}

void cored_bn_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *x, const float *y, const float *mean,
                             const float *invstd, const float *gamma, const float *beta,
                             const cored_bn_shape *s, float *ws)
{
    bn_backward(dx, dgamma, dbeta, dy, x, y, mean, invstd, gamma, beta, s, ws, 1);
}

void cored_bn_backward_eval(float *dx, float *dgamma, float *dbeta, const float *dy,
                            const float *x, const float *y, const float *mean,
                            const float *invstd, const float *gamma, const float *beta,
                            const cored_bn_shape *s, float *ws)
{
    bn_backward(dx, dgamma, dbeta, dy, x, y, mean, invstd, gamma, beta, s, ws, 0);
}
