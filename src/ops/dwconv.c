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
#include "simd.h"

size_t cored_dwconv_ws_floats(const cored_conv_shape *s);
void cored_dwconv_forward(float *y, const float *x, const float *w, const float *b,
                          const cored_conv_shape *s, float *ws);
void cored_dwconv_forward_act(float *y, const float *x, const float *w, const float *b,
                              cored_act act, const cored_conv_shape *s, float *ws);
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

/* ---------------------------------------------------------------- gather kernel */

/* Eight floats at any alignment (GCC/Clang vector extension; the baseline clone splits
   it into two SSE registers). */
typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));

#define MAX_TAPS 64 /* kernels up to 8 x 8 */

/* out[c] = init[c] + sum_t src[t][c] * wt[t][c] for c < C, init NULL meaning 0. The
   accumulators of 32 channels stay in registers across all taps. */
__attribute__((always_inline)) static inline void gather_pixel(float *out, const float *const *src, const float *const *wt,
                                int nt, const float *init, int C)
{
    int c = 0;
    for (; c + 32 <= C; c += 32) {
        v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        if (init) {
            a0 = *(const v8f *)(init + c), a1 = *(const v8f *)(init + c + 8);
            a2 = *(const v8f *)(init + c + 16), a3 = *(const v8f *)(init + c + 24);
        }
        for (int t = 0; t < nt; t++) {
            const float *x = src[t] + c, *w = wt[t] + c;
            a0 += *(const v8f *)x * *(const v8f *)w;
            a1 += *(const v8f *)(x + 8) * *(const v8f *)(w + 8);
            a2 += *(const v8f *)(x + 16) * *(const v8f *)(w + 16);
            a3 += *(const v8f *)(x + 24) * *(const v8f *)(w + 24);
        }
        *(v8f *)(out + c) = a0, *(v8f *)(out + c + 8) = a1;
        *(v8f *)(out + c + 16) = a2, *(v8f *)(out + c + 24) = a3;
    }
    for (; c + 8 <= C; c += 8) {
        v8f a = {0};
        if (init) a = *(const v8f *)(init + c);
        for (int t = 0; t < nt; t++) a += *(const v8f *)(src[t] + c) * *(const v8f *)(wt[t] + c);
        *(v8f *)(out + c) = a;
    }
    for (; c < C; c++) {
        float a = init ? init[c] : 0.0f;
        for (int t = 0; t < nt; t++) a += src[t][c] * wt[t][c];
        out[c] = a;
    }
}

/* Output row r = (n, oh) of the forward: each output pixel gathers its valid taps. */
CORED_CLONES static void fwd_row(float *y, const float *x, const float *wr, const float *b,
                                 int r, const cored_conv_shape *s, cored_act act)
{
    const int C = s->cin;
    const float *src[MAX_TAPS], *wt[MAX_TAPS];
    int n = r / s->oh, oh = r % s->oh;
    const float *xn = x + (size_t)n * s->h * s->w * C;
    for (int ow = 0; ow < s->ow; ow++) {
        int nt = 0;
        for (int kh = 0; kh < s->kh; kh++) {
            int ih = oh * s->stride - s->pad_t + kh;
            if (ih < 0 || ih >= s->h) continue;
            for (int kw = 0; kw < s->kw; kw++) {
                int iw = ow * s->stride - s->pad_l + kw;
                if (iw < 0 || iw >= s->w) continue;
                src[nt] = xn + ((size_t)ih * s->w + iw) * C;
                wt[nt++] = wr + ((size_t)kh * s->kw + kw) * C;
            }
        }
        gather_pixel(y + ((size_t)r * s->ow + ow) * C, src, wt, nt, b, C);
    }
    if (act != CORED_ACT_NONE) cored_bias_act_rows(y + (size_t)r * s->ow * C, NULL, (size_t)s->ow, C, act);
}

void cored_dwconv_forward_act(float *y, const float *x, const float *w, const float *b,
                              cored_act act, const cored_conv_shape *s, float *ws)
{
    float *wr = ws;
    repack(wr, w, s);
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) fwd_row(y, x, wr, b, r, s, act);
}

void cored_dwconv_forward(float *y, const float *x, const float *w, const float *b,
                          const cored_conv_shape *s, float *ws)
{
    cored_dwconv_forward_act(y, x, w, b, CORED_ACT_NONE, s, ws);
}

/* Input row r = (n, ih) of the input gradient: a gather over the outputs that read it. */
CORED_CLONES static void dx_row(float *dx, const float *dy, const float *wr, int r,
                                const cored_conv_shape *s)
{
    const int C = s->cin;
    const float *src[MAX_TAPS], *wt[MAX_TAPS];
    int n = r / s->h, ih = r % s->h;
    const float *dyn = dy + (size_t)n * s->oh * s->ow * C;
    for (int iw = 0; iw < s->w; iw++) {
        int nt = 0;
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
                src[nt] = dyn + ((size_t)oh * s->ow + ow) * C;
                wt[nt++] = wr + ((size_t)kh * s->kw + kw) * C;
            }
        }
        gather_pixel(dx + ((size_t)r * s->w + iw) * C, src, wt, nt, NULL, C);
    }
}

/* Weight-gradient sums of output rows [lo, hi) into acc (KH, KW, C). */
CORED_CLONES static void dw_rows(float *acc, const float *dy, const float *x, int lo, int hi,
                                 const cored_conv_shape *s)
{
    const int C = s->cin;
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
        for (int r = 0; r < rows; r++) dx_row(dx, dy, wr, r, s);
    }
    if (!dw) return;
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        float *acc = part + (size_t)p * taps;
        memset(acc, 0, sizeof(float) * taps);
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        dw_rows(acc, dy, x, lo, hi, s);
    }
    int khw = s->kh * s->kw;
    for (int k = 0; k < khw; k++)
        for (int c = 0; c < C; c++) {
            float sum = 0.0f;
            for (int p = 0; p < CORED_PARTS; p++) sum += part[(size_t)p * taps + (size_t)k * C + c];
            dw[(size_t)c * khw + k] += sum;
        }
}
