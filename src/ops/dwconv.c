/*
 * Depthwise convolution (groups == Cin == Cout, PyTorch weight (C, 1, KH, KW)), NHWC.
 *
 * The weight is repacked to (KH, KW, C) so every tap is a vector operation over the
 * channels of one pixel. Forward and the input gradient are computed per output (input)
 * row, independently, so they parallelise without races; the weight gradient is reduced
 * over fixed partitions of the rows and summed in a fixed order.
 */
#include <string.h>

#include "internal.h"
#include "ops.h"

size_t cored_dwconv_ws_floats(const cored_conv_shape *s);
void cored_dwconv_forward(float *y, const float *x, const float *w, const float *b,
                          const cored_conv_shape *s, float *ws);
void cored_dwconv_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, const cored_conv_shape *s, float *ws);

size_t cored_dwconv_ws_floats(const cored_conv_shape *s)
{
    size_t taps = (size_t)s->kh * s->kw * s->cin, bias = cored_colsum_ws_floats(s->cin);
    return taps + (size_t)CORED_PARTS * taps + bias;
}

static void repack(float *wr, const float *w, const cored_conv_shape *s)
{
    int khw = s->kh * s->kw;
    for (int c = 0; c < s->cin; c++)
        for (int k = 0; k < khw; k++) wr[(size_t)k * s->cin + c] = w[(size_t)c * khw + k];
}

void cored_dwconv_forward(float *y, const float *x, const float *w, const float *b,
                          const cored_conv_shape *s, float *ws)
{
    const int C = s->cin;
    float *wr = ws;
    repack(wr, w, s);
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int n = r / s->oh, oh = r % s->oh;
        const float *xn = x + (size_t)n * s->h * s->w * C;
        for (int ow = 0; ow < s->ow; ow++) {
            float *yp = y + ((size_t)r * s->ow + ow) * C;
            if (b)
                memcpy(yp, b, sizeof(float) * (size_t)C);
            else
                memset(yp, 0, sizeof(float) * (size_t)C);
            for (int kh = 0; kh < s->kh; kh++) {
                int ih = oh * s->stride - s->pad_t + kh;
                if (ih < 0 || ih >= s->h) continue;
                for (int kw = 0; kw < s->kw; kw++) {
                    int iw = ow * s->stride - s->pad_l + kw;
                    if (iw < 0 || iw >= s->w) continue;
                    const float *xp = xn + ((size_t)ih * s->w + iw) * C;
                    const float *wp = wr + ((size_t)kh * s->kw + kw) * C;
                    #pragma omp simd
                    for (int c = 0; c < C; c++) yp[c] += xp[c] * wp[c];
                }
            }
        }
    }
}

void cored_dwconv_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, const cored_conv_shape *s, float *ws)
{
    const int C = s->cin;
    const size_t taps = (size_t)s->kh * s->kw * C;
    float *wr = ws, *part = ws + taps;
    if (db) cored_colsum_acc(db, dy, s->n * s->oh * s->ow, C, part + (size_t)CORED_PARTS * taps);
    if (dx) {
        repack(wr, w, s);
        int rows = s->n * s->h;
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            int n = r / s->h, ih = r % s->h;
            const float *dyn = dy + (size_t)n * s->oh * s->ow * C;
            for (int iw = 0; iw < s->w; iw++) {
                float *d = dx + ((size_t)r * s->w + iw) * C;
                memset(d, 0, sizeof(float) * (size_t)C);
                for (int kh = 0; kh < s->kh; kh++) {
                    int t = ih + s->pad_t - kh;
                    if (t < 0 || t % s->stride) continue;
                    int oh = t / s->stride;
                    if (oh >= s->oh) continue;
                    for (int kw = 0; kw < s->kw; kw++) {
                        int u = iw + s->pad_l - kw;
                        if (u < 0 || u % s->stride) continue;
                        int ow = u / s->stride;
                        if (ow >= s->ow) continue;
                        const float *g = dyn + ((size_t)oh * s->ow + ow) * C;
                        const float *wp = wr + ((size_t)kh * s->kw + kw) * C;
                        #pragma omp simd
                        for (int c = 0; c < C; c++) d[c] += g[c] * wp[c];
                    }
                }
            }
        }
    }
    if (!dw) return;
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        float *acc = part + (size_t)p * taps;
        memset(acc, 0, sizeof(float) * taps);
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        for (int r = lo; r < hi; r++) {
            int n = r / s->oh, oh = r % s->oh;
            const float *xn = x + (size_t)n * s->h * s->w * C;
            for (int ow = 0; ow < s->ow; ow++) {
                const float *g = dy + ((size_t)r * s->ow + ow) * C;
                for (int kh = 0; kh < s->kh; kh++) {
                    int ih = oh * s->stride - s->pad_t + kh;
                    if (ih < 0 || ih >= s->h) continue;
                    for (int kw = 0; kw < s->kw; kw++) {
                        int iw = ow * s->stride - s->pad_l + kw;
                        if (iw < 0 || iw >= s->w) continue;
                        const float *xp = xn + ((size_t)ih * s->w + iw) * C;
                        float *a = acc + ((size_t)kh * s->kw + kw) * C;
                        #pragma omp simd
                        for (int c = 0; c < C; c++) a[c] += g[c] * xp[c];
                    }
                }
            }
        }
    }
    int khw = s->kh * s->kw;
    for (int k = 0; k < khw; k++)
        for (int c = 0; c < C; c++) {
            float sum = 0.0f;
            for (int p = 0; p < CORED_PARTS; p++) sum += part[(size_t)p * taps + (size_t)k * C + c];
            dw[(size_t)c * khw + k] += sum;
        }
}
