/*
 * Pooling, NHWC. Max pool as torch.nn.MaxPool2d (floor mode, -inf padding, first
 * maximum wins, NaN propagates); global average pool as adaptive_avg_pool2d(1).
 */
#include <math.h>
#include <string.h>

#include "ops.h"
#include "simd.h"

int cored_pool_shape_init(cored_pool_shape *s)
{
    if (s->n < 1 || s->h < 1 || s->w < 1 || s->c < 1 || s->k < 1 || s->stride < 1 || s->pad < 0)
        return -1;
    if (2 * s->pad > s->k) return -1; /* PyTorch: pad should be at most half of kernel size */
    int hp = s->h + 2 * s->pad, wp = s->w + 2 * s->pad;
    if (hp < s->k || wp < s->k) return -1;
    s->oh = (hp - s->k) / s->stride + 1;
    s->ow = (wp - s->k) / s->stride + 1;
    return 0;
}

/* Output row r = (n, oh). A value replaces the running maximum when it is larger, or when
   it is NaN and the maximum is not (PyTorch propagates NaN); ties keep the first. */
CORED_CLONES static void maxpool_row(float *y, int32_t *argmax, const float *x, int r,
                                     const cored_pool_shape *s)
{
    const int C = s->c;
    int n = r / s->oh, oh = r % s->oh;
    const float *xn = x + (size_t)n * s->h * s->w * C;
    for (int ow = 0; ow < s->ow; ow++) {
        float *yp = y + ((size_t)r * s->ow + ow) * C;
        int32_t *ap = argmax + ((size_t)r * s->ow + ow) * C;
        #pragma omp simd
        for (int c = 0; c < C; c++) {
            yp[c] = -INFINITY;
            ap[c] = -1;
        }
        for (int kh = 0; kh < s->k; kh++) {
            int ih = oh * s->stride - s->pad + kh;
            if (ih < 0 || ih >= s->h) continue;
            for (int kw = 0; kw < s->k; kw++) {
                int iw = ow * s->stride - s->pad + kw;
                if (iw < 0 || iw >= s->w) continue;
                int32_t idx = ih * s->w + iw;
                const float *xp = xn + (size_t)idx * C;
                #pragma omp simd
                for (int c = 0; c < C; c++) {
                    float v = xp[c], m = yp[c];
                    int take = (v > m) | ((v != v) & (m == m));
                    yp[c] = take ? v : m;
                    ap[c] = take ? idx : ap[c];
                }
            }
        }
    }
}

void cored_maxpool_forward(float *y, int32_t *argmax, const float *x, const cored_pool_shape *s)
{
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) maxpool_row(y, argmax, x, r, s);
}

void cored_maxpool_backward(float *dx, const float *dy, const int32_t *argmax,
                            const cored_pool_shape *s)
{
    const int C = s->c;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < s->n; n++) {
        float *dxn = dx + (size_t)n * s->h * s->w * C;
        memset(dxn, 0, sizeof(float) * (size_t)s->h * s->w * C);
        size_t base = (size_t)n * s->oh * s->ow * C;
        for (size_t o = 0; o < (size_t)s->oh * s->ow; o++) {
            const float *g = dy + base + o * C;
            const int32_t *a = argmax + base + o * C;
            for (int c = 0; c < C; c++)
                if (a[c] >= 0) dxn[(size_t)a[c] * C + c] += g[c];
        }
    }
}

CORED_CLONES static void gap_image(float *y, const float *x, int hw, int c)
{
    memset(y, 0, sizeof(float) * (size_t)c);
    for (int p = 0; p < hw; p++) {
        const float *xp = x + (size_t)p * c;
        #pragma omp simd
        for (int j = 0; j < c; j++) y[j] += xp[j];
    }
    float inv = 1.0f / (float)hw;
    #pragma omp simd
    for (int j = 0; j < c; j++) y[j] *= inv;
}

CORED_CLONES static void gap_back_image(float *dx, const float *dy, int hw, int c, int acc)
{
    float inv = 1.0f / (float)hw;
    for (int p = 0; p < hw; p++) {
        float *d = dx + (size_t)p * c;
        if (acc) {
            #pragma omp simd
            for (int j = 0; j < c; j++) d[j] += dy[j] * inv;
        } else {
            #pragma omp simd
            for (int j = 0; j < c; j++) d[j] = dy[j] * inv;
        }
    }
}

void cored_gap_forward(float *y, const float *x, int n, int hw, int c)
{
    #pragma omp parallel for schedule(static) if ((size_t)n * hw * c > 16384)
    for (int i = 0; i < n; i++) gap_image(y + (size_t)i * c, x + (size_t)i * hw * c, hw, c);
}

void cored_gap_backward(float *dx, const float *dy, int n, int hw, int c)
{
    #pragma omp parallel for schedule(static) if ((size_t)n * hw * c > 16384)
    for (int i = 0; i < n; i++) gap_back_image(dx + (size_t)i * hw * c, dy + (size_t)i * c, hw, c, 0);
}

void cored_gap_backward_acc(float *dx, const float *dy, int n, int hw, int c)
{
    #pragma omp parallel for schedule(static) if ((size_t)n * hw * c > 16384)
    for (int i = 0; i < n; i++) gap_back_image(dx + (size_t)i * hw * c, dy + (size_t)i * c, hw, c, 1);
}
