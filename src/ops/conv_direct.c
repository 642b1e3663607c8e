/*
 * Direct convolution for few channels (groups 1, a KxK kernel), NHWC, without im2col.
 *
 * Register tiles of up to TP pixels x 16 channels (two 8-float vectors) are accumulated
 * over the taps and written once. The channel vectors run over the output channels in
 * forward and the weight gradient, over the input channels in the input gradient; the
 * weight is repacked so that those channels are contiguous, with the count rounded up to
 * 16 (zeros), so every tile is full width and only the store is cut.
 *
 *  - forward: y[pix][co] = sum over kh, then over (kw, ci) of x * w, then + bias. For one
 *    kernel row the taps of a pixel are adjacent in NHWC: one span of KW*Cin floats.
 *  - input gradient: for each input pixel, the sum over (kh, kw, co) of dy * w across the
 *    output pixels that read it; the pixels of a tile share a phase (iw mod stride), so
 *    they read the same taps.
 *  - weight gradient: tiles of 6 (kw, ci) entries x 16 output channels accumulated over
 *    the pixels of an output row; rows are summed over CORED_PARTS fixed partitions and
 *    the partitions are added in a fixed order.
 *
 * Every element is one sum in a fixed order (taps, then channels, as listed above) that
 * depends neither on the tile sizes nor on the vector width nor on the thread count;
 * border pixels take the same order with the taps that fall in the padding left out.
 */
#include <string.h>

#include "conv_direct.h"
#include "internal.h"
#include "simd.h"

typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));

#define CB 16      /* channels per tile: two vectors */
#define TP 6       /* pixels per tile */
#define TQ 6       /* (kw, ci) entries per weight-gradient tile */
#define MAX_TAPS 64

static inline int round16(int c) { return (c + CB - 1) / CB * CB; }

size_t cored_conv_direct_ws_floats(const cored_conv_shape *s)
{
    size_t khw = (size_t)s->kh * s->kw;
    size_t fwd = khw * s->cin * round16(s->cout) + round16(s->cout);
    size_t dx = khw * s->cout * round16(s->cin);
    size_t dw = (size_t)CORED_PARTS * khw * s->cin * round16(s->cout);
    size_t m = fwd > dx ? fwd : dx;
    return m > dw ? m : dw;
}

/* ---------------------------------------------------------------- shared tile */

/* out[p][c] = init[c] + sum over taps t, then j < len[t], of src[t][p*ps + j] *
   wt[t][j*wstride + c], for p < np pixels (out stride ostride) and c < nc <= 16; init
   NULL is 0. */
__attribute__((always_inline)) static inline void tile(float *out, int ostride, int nc,
                                                      const float *init, const float *const *src,
                                                      const float *const *wt, const int *len,
                                                      int nt, int ps, int wstride, const int np)
{
    v8f acc[TP][2];
    #pragma GCC unroll 6
    for (int p = 0; p < np; p++) acc[p][0] = acc[p][1] = (v8f){0};
    for (int t = 0; t < nt; t++) {
        const float *x = src[t], *w = wt[t];
        for (int j = 0; j < len[t]; j++) {
            v8f w0 = *(const v8f *)(w + (size_t)j * wstride);
            v8f w1 = *(const v8f *)(w + (size_t)j * wstride + 8);
            #pragma GCC unroll 6
            for (int p = 0; p < np; p++) {
                float xv = x[(size_t)p * ps + j];
                acc[p][0] += xv * w0;
                acc[p][1] += xv * w1;
            }
        }
    }
    #pragma GCC unroll 6
    for (int p = 0; p < np; p++) {
        float *o = out + (size_t)p * ostride;
        v8f a0 = acc[p][0], a1 = acc[p][1];
        if (init) a0 += *(const v8f *)init, a1 += *(const v8f *)(init + 8);
        if (nc == CB) {
            *(v8f *)o = a0;
            *(v8f *)(o + 8) = a1;
        } else {
            float tmp[CB];
            memcpy(tmp, &a0, sizeof a0);
            memcpy(tmp + 8, &a1, sizeof a1);
            memcpy(o, tmp, sizeof(float) * (size_t)nc);
        }
    }
}

/* One tile of np pixels, np a run-time count dispatched to constant instances. */
__attribute__((always_inline)) static inline void tile_n(float *out, int ostride, int nc, const float *init,
                          const float *const *src, const float *const *wt, const int *len, int nt,
                          int ps, int wstride, int np)
{
    switch (np) {
    case 6: tile(out, ostride, nc, init, src, wt, len, nt, ps, wstride, 6); break;
    case 5: tile(out, ostride, nc, init, src, wt, len, nt, ps, wstride, 5); break;
    case 4: tile(out, ostride, nc, init, src, wt, len, nt, ps, wstride, 4); break;
    case 3: tile(out, ostride, nc, init, src, wt, len, nt, ps, wstride, 3); break;
    case 2: tile(out, ostride, nc, init, src, wt, len, nt, ps, wstride, 2); break;
    default: tile(out, ostride, nc, init, src, wt, len, nt, ps, wstride, 1); break;
    }
}

/* ---------------------------------------------------------------- forward */

/* OIHW -> (KH, KW, Cin, Cop), Cop = Cout rounded up to 16, zeros beyond Cout. */
static void repack_fwd(float *wf, const float *w, const cored_conv_shape *s)
{
    int cop = round16(s->cout), khw = s->kh * s->kw;
    memset(wf, 0, sizeof(float) * (size_t)khw * s->cin * cop);
    for (int co = 0; co < s->cout; co++)
        for (int ci = 0; ci < s->cin; ci++)
            for (int k = 0; k < khw; k++)
                wf[((size_t)k * s->cin + ci) * cop + co] = w[((size_t)co * s->cin + ci) * khw + k];
}

/* Output row r = (n, oh). */
CORED_CLONES static void fwd_row(float *y, const float *x, const float *wf, const float *bp,
                                 int r, const cored_conv_shape *s)
{
    const int cin = s->cin, cout = s->cout, cop = round16(cout), st = s->stride;
    int n = r / s->oh, oh = r % s->oh;
    int kh0 = s->pad_t - oh * st, kh1 = s->h + s->pad_t - oh * st;
    kh0 = kh0 < 0 ? 0 : kh0;
    kh1 = kh1 > s->kh ? s->kh : kh1;
    int nt = kh1 - kh0 > 0 ? kh1 - kh0 : 0;
    const float *xr = nt ? x + ((size_t)n * s->h + (oh * st - s->pad_t + kh0)) * s->w * cin : x;
    float *yr = y + (size_t)r * s->ow * cout;
    /* interior pixels: every kw inside the row */
    int oa = (s->pad_l + st - 1) / st;
    int ob = s->w - s->kw + s->pad_l >= 0 ? (s->w - s->kw + s->pad_l) / st + 1 : 0;
    if (oa > s->ow) oa = s->ow;
    if (ob > s->ow) ob = s->ow;
    if (ob < oa) ob = oa;
    const float *src[MAX_TAPS], *wt[MAX_TAPS];
    int len[MAX_TAPS];
    for (int cb = 0; cb < cop; cb += CB) {
        int nc = cout - cb < CB ? cout - cb : CB;
        const float *init = bp ? bp + cb : NULL;
        if (ob > oa) { /* the interior, in tiles */
            for (int t = 0; t < nt; t++) {
                src[t] = xr + ((size_t)t * s->w + (oa * st - s->pad_l)) * cin;
                wt[t] = wf + (size_t)(kh0 + t) * s->kw * cin * cop + cb;
                len[t] = s->kw * cin;
            }
            int o = oa;
            for (; o + TP <= ob; o += TP) {
                tile(yr + (size_t)o * cout + cb, cout, nc, init, src, wt, len, nt, st * cin, cop, TP);
                for (int t = 0; t < nt; t++) src[t] += (size_t)TP * st * cin;
            }
            if (o < ob)
                tile_n(yr + (size_t)o * cout + cb, cout, nc, init, src, wt, len, nt, st * cin, cop,
                       ob - o);
        }
        for (int ow = 0; ow < s->ow; ow++) { /* the border pixels, one at a time */
            if (ow == oa && ob > oa) ow = ob;
            if (ow >= s->ow) break;
            int iw = ow * st - s->pad_l;
            int lo = iw < 0 ? -iw : 0, hi = s->w - iw < s->kw ? s->w - iw : s->kw;
            int nb = 0;
            if (hi > lo)
                for (int t = 0; t < nt; t++, nb++) {
                    src[t] = xr + ((size_t)t * s->w + (iw + lo)) * cin;
                    wt[t] = wf + ((size_t)(kh0 + t) * s->kw + lo) * cin * cop + cb;
                    len[t] = (hi - lo) * cin;
                }
            tile(yr + (size_t)ow * cout + cb, cout, nc, init, src, wt, len, nb, 0, cop, 1);
        }
    }
}

void cored_conv_direct_forward(float *y, const float *x, const float *w, const float *b,
                               const cored_conv_shape *s, float *ws)
{
    int cop = round16(s->cout);
    float *wf = ws, *bp = ws + (size_t)s->kh * s->kw * s->cin * cop;
    repack_fwd(wf, w, s);
    if (b) {
        memset(bp, 0, sizeof(float) * (size_t)cop);
        memcpy(bp, b, sizeof(float) * (size_t)s->cout);
    }
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) fwd_row(y, x, wf, b ? bp : NULL, r, s);
}

/* ---------------------------------------------------------------- input gradient */

/* OIHW -> (KH, KW, Cout, Cip), Cip = Cin rounded up to 16, zeros beyond Cin. */
static void repack_dx(float *wb, const float *w, const cored_conv_shape *s)
{
    int cip = round16(s->cin), khw = s->kh * s->kw;
    memset(wb, 0, sizeof(float) * (size_t)khw * s->cout * cip);
    for (int co = 0; co < s->cout; co++)
        for (int ci = 0; ci < s->cin; ci++)
            for (int k = 0; k < khw; k++)
                wb[((size_t)k * s->cout + co) * cip + ci] = w[((size_t)co * s->cin + ci) * khw + k];
}

/* Input row r = (n, ih): each pixel gathers the output pixels that read it. */
CORED_CLONES static void dx_row(float *dx, const float *dy, const float *wb, int r,
                                const cored_conv_shape *s)
{
    const int cin = s->cin, cout = s->cout, cip = round16(cin), st = s->stride;
    int n = r / s->h, ih = r % s->h;
    const float *dyn = dy + (size_t)n * s->oh * s->ow * cout;
    float *dxr = dx + (size_t)r * s->w * cin;
    int khs[MAX_TAPS], ohs[MAX_TAPS], nkh = 0;
    for (int kh = 0; kh < s->kh; kh++) {
        int t = ih + s->pad_t - kh;
        if (t < 0 || t % st) continue;
        if (t / st >= s->oh) continue;
        khs[nkh] = kh, ohs[nkh++] = t / st;
    }
    const float *src[MAX_TAPS], *wt[MAX_TAPS];
    int len[MAX_TAPS];
    for (int cb = 0; cb < cip; cb += CB) {
        int nc = cin - cb < CB ? cin - cb : CB;
        for (int ph = 0; ph < st && ph < s->w; ph++) {
            /* pixels iw = ph + i*st; taps kw = kw0, kw0 + st, ...; ow = (iw + pad_l - kw)/st */
            int kw0 = ((ph + s->pad_l) % st);
            int npix = (s->w - ph + st - 1) / st;
            /* interior i: for every tap, 0 <= ow < OW. ow = i + (ph + pad_l - kw)/st. */
            int lo = 0, hi = npix, nkw = 0;
            for (int kw = kw0; kw < s->kw; kw += st, nkw++) {
                int d = (ph + s->pad_l - kw) / st; /* exact: ph + pad_l - kw = 0 mod st */
                if (-d > lo) lo = -d;
                if (s->ow - d < hi) hi = s->ow - d;
            }
            if (hi < lo) hi = lo;
            if (lo > npix) lo = hi = npix;
            if (hi > lo && nkw) {
                int nt = 0;
                for (int a = 0; a < nkh; a++)
                    for (int kw = kw0; kw < s->kw; kw += st, nt++) {
                        int ow = lo + (ph + s->pad_l - kw) / st;
                        src[nt] = dyn + ((size_t)ohs[a] * s->ow + ow) * cout;
                        wt[nt] = wb + ((size_t)khs[a] * s->kw + kw) * cout * cip + cb;
                        len[nt] = cout;
                    }
                int i = lo;
                for (; i + TP <= hi; i += TP) {
                    tile(dxr + (size_t)(ph + i * st) * cin + cb, st * cin, nc, NULL, src, wt, len, nt,
                         cout, cip, TP);
                    for (int t = 0; t < nt; t++) src[t] += (size_t)TP * cout;
                }
                if (i < hi)
                    tile_n(dxr + (size_t)(ph + i * st) * cin + cb, st * cin, nc, NULL, src, wt, len,
                           nt, cout, cip, hi - i);
            } else {
                hi = lo;
            }
            for (int i = 0; i < npix; i++) { /* the border pixels, one at a time */
                if (i == lo && hi > lo) i = hi;
                if (i >= npix) break;
                int iw = ph + i * st, nt = 0;
                for (int a = 0; a < nkh; a++)
                    for (int kw = kw0; kw < s->kw; kw += st) {
                        int ow = (iw + s->pad_l - kw) / st;
                        if (iw + s->pad_l - kw < 0 || ow >= s->ow) continue;
                        src[nt] = dyn + ((size_t)ohs[a] * s->ow + ow) * cout;
                        wt[nt] = wb + ((size_t)khs[a] * s->kw + kw) * cout * cip + cb;
                        len[nt++] = cout;
                    }
                tile(dxr + (size_t)iw * cin + cb, cin, nc, NULL, src, wt, len, nt, 0, cip, 1);
            }
        }
    }
}

void cored_conv_direct_backward_data(float *dx, const float *dy, const float *w,
                                     const cored_conv_shape *s, float *ws)
{
    repack_dx(ws, w, s);
    int rows = s->n * s->h;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) dx_row(dx, dy, ws, r, s);
}

/* ---------------------------------------------------------------- weight gradient */

/* acc[q*cop + c] += sum over np pixels of xs[p*xps + q] * g[p*gps + c], q < nq, c < 16. */
__attribute__((always_inline)) static inline void dw_tile(float *acc, int cop, const float *xs,
                                                         int xps, const float *g, int gps,
                                                         int np, const int nq)
{
    v8f a[TQ][2];
    #pragma GCC unroll 6
    for (int q = 0; q < nq; q++) {
        a[q][0] = *(const v8f *)(acc + (size_t)q * cop);
        a[q][1] = *(const v8f *)(acc + (size_t)q * cop + 8);
    }
    for (int p = 0; p < np; p++) {
        v8f g0 = *(const v8f *)(g + (size_t)p * gps), g1 = *(const v8f *)(g + (size_t)p * gps + 8);
        #pragma GCC unroll 6
        for (int q = 0; q < nq; q++) {
            float xv = xs[(size_t)p * xps + q];
            a[q][0] += xv * g0;
            a[q][1] += xv * g1;
        }
    }
    #pragma GCC unroll 6
    for (int q = 0; q < nq; q++) {
        *(v8f *)(acc + (size_t)q * cop) = a[q][0];
        *(v8f *)(acc + (size_t)q * cop + 8) = a[q][1];
    }
}

/* The entries [0, len) of one kernel row, in tiles of TQ. */
__attribute__((always_inline)) static inline void dw_span(float *acc, int cop, const float *xs, int xps, const float *g,
                           int gps, int np, int len)
{
    int j = 0;
    for (; j + TQ <= len; j += TQ) dw_tile(acc + (size_t)j * cop, cop, xs + j, xps, g, gps, np, TQ);
    switch (len - j) {
    case 5: dw_tile(acc + (size_t)j * cop, cop, xs + j, xps, g, gps, np, 5); break;
    case 4: dw_tile(acc + (size_t)j * cop, cop, xs + j, xps, g, gps, np, 4); break;
    case 3: dw_tile(acc + (size_t)j * cop, cop, xs + j, xps, g, gps, np, 3); break;
    case 2: dw_tile(acc + (size_t)j * cop, cop, xs + j, xps, g, gps, np, 2); break;
    case 1: dw_tile(acc + (size_t)j * cop, cop, xs + j, xps, g, gps, np, 1); break;
    default: break;
    }
}

/* Weight-gradient sums of output rows [lo, hi) into acc (KH, KW, Cin, Cout). */
CORED_CLONES static void dw_rows(float *acc, const float *dy, const float *x, int lo, int hi,
                                 const cored_conv_shape *s)
{
    const int cin = s->cin, cout = s->cout, st = s->stride;
    int oa = (s->pad_l + st - 1) / st;
    int ob = s->w - s->kw + s->pad_l >= 0 ? (s->w - s->kw + s->pad_l) / st + 1 : 0;
    if (oa > s->ow) oa = s->ow;
    if (ob > s->ow) ob = s->ow;
    if (ob < oa) ob = oa;
    for (int r = lo; r < hi; r++) {
        int n = r / s->oh, oh = r % s->oh;
        const float *g = dy + (size_t)r * s->ow * cout;
        for (int kh = 0; kh < s->kh; kh++) {
            int ih = oh * st - s->pad_t + kh;
            if (ih < 0 || ih >= s->h) continue;
            const float *xr = x + ((size_t)n * s->h + ih) * s->w * cin;
            float *ak = acc + (size_t)kh * s->kw * cin * cout;
            for (int cb = 0; cb < cout; cb += CB) {
                if (ob > oa)
                    dw_span(ak + cb, cout, xr + (size_t)(oa * st - s->pad_l) * cin, st * cin,
                            g + (size_t)oa * cout + cb, cout, ob - oa, s->kw * cin);
                for (int ow = 0; ow < s->ow; ow++) {
                    if (ow == oa && ob > oa) ow = ob;
                    if (ow >= s->ow) break;
                    int iw = ow * st - s->pad_l;
                    int a = iw < 0 ? -iw : 0, b = s->w - iw < s->kw ? s->w - iw : s->kw;
                    if (b > a)
                        dw_span(ak + (size_t)a * cin * cout + cb, cout, xr + (size_t)(iw + a) * cin,
                                0, g + (size_t)ow * cout + cb, cout, 1, (b - a) * cin);
                }
            }
        }
    }
}

void cored_conv_direct_backward_weight(float *dw, const float *dy, const float *x,
                                       const cored_conv_shape *s, float *ws)
{
    const int khw = s->kh * s->kw, cin = s->cin, cout = s->cout;
    const size_t taps = (size_t)khw * cin * cout;
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        float *acc = ws + (size_t)p * taps;
        memset(acc, 0, sizeof(float) * taps);
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        dw_rows(acc, dy, x, lo, hi, s);
    }
    #pragma omp parallel for schedule(static)
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int k = 0; k < khw; k++) {
                size_t e = ((size_t)k * cin + ci) * cout + co;
                float sum = 0.0f;
                for (int p = 0; p < CORED_PARTS; p++) sum += ws[(size_t)p * taps + e];
                dw[((size_t)co * cin + ci) * khw + k] += sum;
            }
}
