/*
 * Batch normalisation over NHWC rows (torch.nn.BatchNorm2d / F.batch_norm).
 *
 * Training: per-channel mean and biased variance of the batch normalise x; the running
 * statistics move by `momentum` towards the batch mean and the UNBIASED batch variance
 * (rows/(rows-1)), PyTorch's convention. Statistics are accumulated in double over fixed
 * row partitions, shifted by the first row to avoid cancellation.
 * Evaluation: running statistics. Both forms save mean and inverse std for backward.
 */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "ops.h"

size_t cored_bn_ws_floats(const cored_bn_shape *s)
{
    /* two double accumulators per channel per partition */
    return (size_t)CORED_PARTS * 2 * 2 * (size_t)s->c;
}

/* part[p][0..c) = sum over partition p of f1, part[p][c..2c) = sum of f2, in double. */
typedef enum { STATS_SHIFTED, STATS_GRAD } stats_kind;

static void partial_sums(double *part, const float *a, const float *b, const float *shift,
                         const float *mean, const float *invstd, int rows, int c,
                         stats_kind kind)
{
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        double *s1 = part + (size_t)p * 2 * c, *s2 = s1 + c;
        memset(s1, 0, sizeof(double) * 2 * (size_t)c);
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        for (int i = lo; i < hi; i++) {
            const float *ra = a + (size_t)i * c;
            if (kind == STATS_SHIFTED) {
                #pragma omp simd
                for (int j = 0; j < c; j++) {
                    double d = (double)ra[j] - shift[j];
                    s1[j] += d;
                    s2[j] += d * d;
                }
            } else { /* a = dy, b = x: sum dy, sum dy * xhat */
                const float *rb = b + (size_t)i * c;
                #pragma omp simd
                for (int j = 0; j < c; j++) {
                    float xh = (rb[j] - mean[j]) * invstd[j];
                    s1[j] += ra[j];
                    s2[j] += (double)(ra[j] * xh);
                }
            }
        }
    }
}

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

/* y = x * scale + bias per channel. */
static void affine(float *y, const float *x, const float *scale, const float *bias, int rows, int c)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        const float *rx = x + (size_t)i * c;
        float *ry = y + (size_t)i * c;
        #pragma omp simd
        for (int j = 0; j < c; j++) ry[j] = rx[j] * scale[j] + bias[j];
    }
}

void cored_bn_forward_train(float *y, float *mean, float *invstd, float *run_mean,
                            float *run_var, const float *x, const float *gamma,
                            const float *beta, const cored_bn_shape *s, float *ws)
{
    const int rows = s->rows, c = s->c;
    double *part = (double *)ws;
    /* The shift (first row) keeps sum((x-k)^2) free of cancellation. mean/invstd are used
       as scratch for shift, scale and bias before they receive their final values. */
    float *shift = mean;
    memcpy(shift, x, sizeof(float) * (size_t)c);
    partial_sums(part, x, NULL, shift, NULL, NULL, rows, c, STATS_SHIFTED);
    double *s1 = part, *s2 = part + c; /* partition 0's slot is reused for the totals */
    reduce_parts(s1, s2, part, c);
    for (int j = 0; j < c; j++) {
        double dm = s1[j] / rows;
        double var = s2[j] / rows - dm * dm;
        if (var < 0) var = 0;
        double m = shift[j] + dm;
        float is = (float)(1.0 / sqrt(var + (double)s->eps));
        mean[j] = (float)m;
        invstd[j] = is;
        if (run_mean) run_mean[j] = (1.0f - s->momentum) * run_mean[j] + s->momentum * (float)m;
        if (run_var) {
            double unbiased = rows > 1 ? var * rows / (rows - 1) : var;
            run_var[j] = (1.0f - s->momentum) * run_var[j] + s->momentum * (float)unbiased;
        }
    }
    float *scale = (float *)(part + 2 * (size_t)c), *bias = scale + c;
    for (int j = 0; j < c; j++) {
        scale[j] = gamma[j] * invstd[j];
        bias[j] = beta[j] - mean[j] * scale[j];
    }
    affine(y, x, scale, bias, rows, c);
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
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < s->rows; i++) {
        const float *rx = x + (size_t)i * c;
        float *ry = y + (size_t)i * c;
        #pragma omp simd
        for (int j = 0; j < c; j++) ry[j] = (rx[j] - mean[j]) * invstd[j] * gamma[j] + beta[j];
    }
}

static void bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *mean, const float *invstd, const float *gamma,
                        const cored_bn_shape *s, float *ws, int train)
{
    const int rows = s->rows, c = s->c;
    double *part = (double *)ws;
    partial_sums(part, dy, x, NULL, mean, invstd, rows, c, STATS_GRAD);
    double *sdy = part, *sdyx = part + c;
    reduce_parts(sdy, sdyx, part, c);
    for (int j = 0; j < c; j++) {
        if (dgamma) dgamma[j] += (float)sdyx[j];
        if (dbeta) dbeta[j] += (float)sdy[j];
    }
    if (!dx) return;
    /* dx = gamma*invstd * (dy - [train] (sum dy + xhat * sum dy*xhat) / rows) */
    float *k = (float *)(part + 2 * (size_t)c), *m1 = k + c, *m2 = m1 + c;
    for (int j = 0; j < c; j++) {
        k[j] = gamma[j] * invstd[j];
        m1[j] = train ? (float)(sdy[j] / rows) : 0.0f;
        m2[j] = train ? (float)(sdyx[j] / rows) : 0.0f;
    }
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        const float *rdy = dy + (size_t)i * c, *rx = x + (size_t)i * c;
        float *rdx = dx + (size_t)i * c;
        #pragma omp simd
        for (int j = 0; j < c; j++) {
            float xh = (rx[j] - mean[j]) * invstd[j];
            rdx[j] = k[j] * (rdy[j] - m1[j] - xh * m2[j]);
        }
    }
}

void cored_bn_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *x, const float *mean, const float *invstd,
                             const float *gamma, const cored_bn_shape *s, float *ws)
{
    bn_backward(dx, dgamma, dbeta, dy, x, mean, invstd, gamma, s, ws, 1);
}

void cored_bn_backward_eval(float *dx, float *dgamma, float *dbeta, const float *dy,
                            const float *x, const float *mean, const float *invstd,
                            const float *gamma, const cored_bn_shape *s, float *ws)
{
    bn_backward(dx, dgamma, dbeta, dy, x, mean, invstd, gamma, s, ws, 0);
}
