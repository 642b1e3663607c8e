/*
 * Pooling, NHWC. Max pool as torch.nn.MaxPool2d (floor mode, -inf padding, first
 * maximum wins, NaN propagates); global average pool as adaptive_avg_pool2d(1).
 */
#include <math.h>
#include <string.h>

#include "ops.h"

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

void cored_maxpool_forward(float *y, int32_t *argmax, const float *x, const cored_pool_shape *s)
{
    const int C = s->c;
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int n = r / s->oh, oh = r % s->oh;
        const float *xn = x + (size_t)n * s->h * s->w * C;
        for (int ow = 0; ow < s->ow; ow++) {
            float *yp = y + ((size_t)r * s->ow + ow) * C;
            int32_t *ap = argmax + ((size_t)r * s->ow + ow) * C;
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
                    for (int c = 0; c < C; c++) {
                        float v = xp[c];
                        if (v > yp[c] || (isnan(v) && !isnan(yp[c]))) {
                            yp[c] = v;
                            ap[c] = idx;
                        }
                    }
                }
            }
        }
    }
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

void cored_gap_forward(float *y, const float *x, int n, int hw, int c)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * c;
        memset(yi, 0, sizeof(float) * (size_t)c);
        for (int p = 0; p < hw; p++) {
            const float *xp = x + ((size_t)i * hw + p) * c;
            #pragma omp simd
            for (int j = 0; j < c; j++) yi[j] += xp[j];
        }
        float inv = 1.0f / (float)hw;
        for (int j = 0; j < c; j++) yi[j] *= inv;
    }
}

void cored_gap_backward(float *dx, const float *dy, int n, int hw, int c)
{
    float inv = 1.0f / (float)hw;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *g = dy + (size_t)i * c;
        for (int p = 0; p < hw; p++) {
            float *d = dx + ((size_t)i * hw + p) * c;
            #pragma omp simd
            for (int j = 0; j < c; j++) d[j] = g[j] * inv;
        }
    }
}
