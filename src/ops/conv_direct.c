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
 *    the pixels of a block of output rows; rows are summed over CORED_PARTS fixed
 *    partitions and the partitions are added in a fixed order.
 *
 * The rows the forward and the weight gradient read from x, and the rows the input
 * gradient reads from dy, are first copied with zero columns around them, so that border
 * pixels run in the same tiles: a tap in the padding adds an exact zero.
 *
 * Every element is one sum in a fixed order (taps, then channels, as listed above) that
 * depends neither on the tile sizes nor on the vector width nor on the thread count.
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

static size_t padded_row(const cored_conv_shape *s);
static int dw_block_rows(const cored_conv_shape *s);
static size_t dx_padded_row(const cored_conv_shape *s);

size_t cored_conv_direct_ws_floats(const cored_conv_shape *s)
{
    size_t khw = (size_t)s->kh * s->kw;
    size_t fwd = khw * s->cin * round16(s->cout) + round16(s->cout) +
                 (size_t)CORED_PARTS * s->kh * ((size_t)(s->ow - 1) * s->stride + s->kw) * s->cin;
    size_t dx = khw * s->cout * round16(s->cin) + (size_t)CORED_PARTS * s->kh * dx_padded_row(s);
    size_t dw = (size_t)CORED_PARTS * (khw * s->cin * round16(s->cout) +
                                       (size_t)dw_block_rows(s) * padded_row(s));
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

/* Floats of one padded input row: the columns the output row reads, (OW-1)*stride + KW. */
static size_t padded_row(const cored_conv_shape *s)
{
    return ((size_t)(s->ow - 1) * s->stride + s->kw) * s->cin;
}

/* Tiles of a run of n pixels: six at a time, but a rest between 7 and 11 in two halves, so
   that no tile holds fewer than 4 pixels where it can be avoided (4 pixels are 8
   independent accumulators, enough to hide the FMA latency). */
static inline int tile_len(int n) { return n > TP && n < 2 * TP ? (n + 1) / 2 : n < TP ? n : TP; }

/* Output rows [lo, hi), rows r = (n, oh). The input rows of each output row are copied with
   their padding into xp (KH padded rows), so every pixel of the row is a full tile entry. */
CORED_CLONES static void direct_fwd_rows(float *y, const float *x, const float *wf, const float *bp,
                                         cored_act act, float *xp, int lo, int hi,
                                         const cored_conv_shape *s)
{
    const int cin = s->cin, cout = s->cout, cop = round16(cout), st = s->stride;
    const size_t prow = padded_row(s);
    const int wr = (int)(prow / cin); /* padded columns */
    const float *src[MAX_TAPS], *wt[MAX_TAPS];
    int len[MAX_TAPS];
    for (int r = lo; r < hi; r++) {
        int n = r / s->oh, oh = r % s->oh;
        int kh0 = s->pad_t - oh * st, kh1 = s->h + s->pad_t - oh * st;
        kh0 = kh0 < 0 ? 0 : kh0;
        kh1 = kh1 > s->kh ? s->kh : kh1;
        int nt = kh1 - kh0 > 0 ? kh1 - kh0 : 0;
        for (int t = 0; t < nt; t++) {
            const float *xr = x + ((size_t)n * s->h + (oh * st - s->pad_t + kh0 + t)) * s->w * cin;
            float *d = xp + (size_t)t * prow;
            /* padded column c reads input column c - pad_l */
            int c0 = s->pad_l < wr ? s->pad_l : wr, c1 = s->w + s->pad_l < wr ? s->w + s->pad_l : wr;
            memset(d, 0, sizeof(float) * (size_t)c0 * cin);
            if (c1 > c0) memcpy(d + (size_t)c0 * cin, xr, sizeof(float) * (size_t)(c1 - c0) * cin);
            else c1 = c0;
            memset(d + (size_t)c1 * cin, 0, sizeof(float) * (size_t)(wr - c1) * cin);
            len[t] = s->kw * cin;
        }
        float *yr = y + (size_t)r * s->ow * cout;
        for (int cb = 0; cb < cop; cb += CB) {
            int nc = cout - cb < CB ? cout - cb : CB;
            const float *init = bp ? bp + cb : NULL;
            for (int t = 0; t < nt; t++) {
                src[t] = xp + (size_t)t * prow;
                wt[t] = wf + (size_t)(kh0 + t) * s->kw * cin * cop + cb;
            }
            for (int o = 0; o < s->ow;) {
                int np = tile_len(s->ow - o);
                if (np == TP)
                    tile(yr + (size_t)o * cout + cb, cout, nc, init, src, wt, len, nt, st * cin, cop, TP);
                else
                    tile_n(yr + (size_t)o * cout + cb, cout, nc, init, src, wt, len, nt, st * cin,
                           cop, np);
                for (int t = 0; t < nt; t++) src[t] += (size_t)np * st * cin;
                o += np;
            }
        }
        if (act != CORED_ACT_NONE) cored_bias_act_rows(yr, NULL, (size_t)s->ow, cout, act);
    }
}

void cored_conv_direct_forward(float *y, const float *x, const float *w, const float *b,
                               cored_act act, const cored_conv_shape *s, float *ws)
{
    int cop = round16(s->cout);
    float *wf = ws, *bp = ws + (size_t)s->kh * s->kw * s->cin * cop, *xp = bp + cop;
    repack_fwd(wf, w, s);
    if (b) {
        memset(bp, 0, sizeof(float) * (size_t)cop);
        memcpy(bp, b, sizeof(float) * (size_t)s->cout);
    }
    int rows = s->n * s->oh;
    size_t part = (size_t)s->kh * padded_row(s);
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        direct_fwd_rows(y, x, wf, b ? bp : NULL, act, xp + (size_t)p * part, lo, hi, s);
    }
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

/* Zero columns on each side of a padded output-gradient row: enough that every tap of
   every input pixel lands inside it. */
static int dx_pad_left(const cored_conv_shape *s) { return s->kw; }
static int dx_pad_right(const cored_conv_shape *s)
{
    int r = (s->w - 1 + s->pad_l) / s->stride + 2 - s->ow;
    return r > 0 ? r : 0;
}
static size_t dx_padded_row(const cored_conv_shape *s)
{
    return (size_t)(dx_pad_left(s) + s->ow + dx_pad_right(s)) * s->cout;
}

/* Input rows [lo, hi), r = (n, ih): each pixel gathers the output pixels that read it. The
   output-gradient rows of each input row are copied with zero columns on both sides into
   gp, so that the taps outside the output add exact zeros and every pixel of a phase is a
   full tile entry. */
CORED_CLONES static void direct_dx_rows(float *dx, const float *dy, const float *wb, float *gp, int lo,
                                 int hi, const cored_conv_shape *s)
{
    const int cin = s->cin, cout = s->cout, cip = round16(cin), st = s->stride;
    const int pl = dx_pad_left(s), pr = dx_pad_right(s);
    const size_t prow = dx_padded_row(s);
    const float *src[MAX_TAPS], *wt[MAX_TAPS];
    int len[MAX_TAPS], khs[MAX_TAPS];
    for (int r = lo; r < hi; r++) {
        int n = r / s->h, ih = r % s->h;
        const float *dyn = dy + (size_t)n * s->oh * s->ow * cout;
        float *dxr = dx + (size_t)r * s->w * cin;
        int nkh = 0;
        for (int kh = 0; kh < s->kh; kh++) {
            int t = ih + s->pad_t - kh;
            if (t < 0 || t % st || t / st >= s->oh) continue;
            float *d = gp + (size_t)nkh * prow;
            memset(d, 0, sizeof(float) * (size_t)pl * cout);
            memcpy(d + (size_t)pl * cout, dyn + (size_t)(t / st) * s->ow * cout,
                   sizeof(float) * (size_t)s->ow * cout);
            memset(d + (size_t)(pl + s->ow) * cout, 0, sizeof(float) * (size_t)pr * cout);
            khs[nkh++] = kh;
        }
        for (int cb = 0; cb < cip; cb += CB) {
            int nc = cin - cb < CB ? cin - cb : CB;
            for (int ph = 0; ph < st && ph < s->w; ph++) {
                /* pixels iw = ph + i*st read the taps kw = kw0, kw0 + st, ... at output column
                   ow = i + (ph + pad_l - kw)/st (exact: ph + pad_l - kw = 0 mod st) */
                int kw0 = (ph + s->pad_l) % st;
                int npix = (s->w - ph + st - 1) / st, nt = 0;
                for (int a = 0; a < nkh; a++)
                    for (int kw = kw0; kw < s->kw; kw += st, nt++) {
                        src[nt] = gp + (size_t)a * prow + (size_t)(pl + (ph + s->pad_l - kw) / st) * cout;
                        wt[nt] = wb + ((size_t)khs[a] * s->kw + kw) * cout * cip + cb;
                        len[nt] = cout;
                    }
                for (int i = 0; i < npix;) {
                    int np = tile_len(npix - i);
                    float *o = dxr + (size_t)(ph + i * st) * cin + cb;
                    if (np == TP)
                        tile(o, st * cin, nc, NULL, src, wt, len, nt, cout, cip, TP);
                    else
                        tile_n(o, st * cin, nc, NULL, src, wt, len, nt, cout, cip, np);
                    for (int t = 0; t < nt; t++) src[t] += (size_t)np * cout;
                    i += np;
                }
            }
        }
    }
}

void cored_conv_direct_backward_data(float *dx, const float *dy, const float *w,
                                     const cored_conv_shape *s, float *ws)
{
    repack_dx(ws, w, s);
    float *gp = ws + (size_t)s->kh * s->kw * s->cout * round16(s->cin);
    size_t part = (size_t)s->kh * dx_padded_row(s);
    int rows = s->n * s->h;
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        direct_dx_rows(dx, dy, ws, gp + (size_t)p * part, lo, hi, s);
    }
}

/* ---------------------------------------------------------------- weight gradient */

/* acc[q*cop + c] += sum over the rows i < nr, then over the np pixels p of each, of
   xs[i][xo + p*xps + q] * g[i][go + p*gps + c], for q < nq and c < 16. */
__attribute__((always_inline)) static inline void dw_tile(float *acc, int cop,
                                                         const float *const *xs, size_t xo, int xps,
                                                         const float *const *g, size_t go, int gps,
                                                         int nr, int np, const int nq)
{
    v8f a[TQ][2];
    #pragma GCC unroll 6
    for (int q = 0; q < nq; q++) {
        a[q][0] = *(const v8f *)(acc + (size_t)q * cop);
        a[q][1] = *(const v8f *)(acc + (size_t)q * cop + 8);
    }
    for (int i = 0; i < nr; i++) {
        const float *xr = xs[i] + xo, *gr = g[i] + go;
        for (int p = 0; p < np; p++) {
            v8f g0 = *(const v8f *)(gr + (size_t)p * gps), g1 = *(const v8f *)(gr + (size_t)p * gps + 8);
            #pragma GCC unroll 6
            for (int q = 0; q < nq; q++) {
                float xv = xr[(size_t)p * xps + q];
                a[q][0] += xv * g0;
                a[q][1] += xv * g1;
            }
        }
    }
    #pragma GCC unroll 6
    for (int q = 0; q < nq; q++) {
        *(v8f *)(acc + (size_t)q * cop) = a[q][0];
        *(v8f *)(acc + (size_t)q * cop + 8) = a[q][1];
    }
}

/* The entries [0, len) of one kernel row, in tiles of TQ. */
__attribute__((always_inline)) static inline void dw_span(float *acc, int cop,
                                                         const float *const *xs, size_t xo, int xps,
                                                         const float *const *g, size_t go, int gps,
                                                         int nr, int np, int len)
{
    int j = 0;
    for (; j + TQ <= len; j += TQ)
        dw_tile(acc + (size_t)j * cop, cop, xs, xo + j, xps, g, go, gps, nr, np, TQ);
    float *aj = acc + (size_t)j * cop;
    switch (len - j) {
    case 5: dw_tile(aj, cop, xs, xo + j, xps, g, go, gps, nr, np, 5); break;
    case 4: dw_tile(aj, cop, xs, xo + j, xps, g, go, gps, nr, np, 4); break;
    case 3: dw_tile(aj, cop, xs, xo + j, xps, g, go, gps, nr, np, 3); break;
    case 2: dw_tile(aj, cop, xs, xo + j, xps, g, go, gps, nr, np, 2); break;
    case 1: dw_tile(aj, cop, xs, xo + j, xps, g, go, gps, nr, np, 1); break;
    default: break;
    }
}

/* Output rows per block of the weight gradient: a tile's accumulators stay in registers
   over the interior pixels of every row of a block, at least 64 pixels (a function of the
   shape only). */
#define DW_BLOCK_ROWS_MAX 64
static int dw_block_rows(const cored_conv_shape *s)
{
    int r = (64 + s->ow - 1) / s->ow;
    return r > DW_BLOCK_ROWS_MAX ? DW_BLOCK_ROWS_MAX : r;
}

/* Weight-gradient sums of output rows [lo, hi) into acc (KH, KW, Cin, Cout): blocks of
   rows; in a block, for each kernel row, the pixels of every row in row order. The input
   rows are copied with their padding into xp (a block's rows, one kernel row at a time),
   so that the taps in the padding add exact zeros and every pixel is a full tile entry. */
CORED_CLONES static void direct_dw_rows(float *acc, const float *dy, const float *x, float *xp, int lo,
                                 int hi, const cored_conv_shape *s)
{
    const int cin = s->cin, cout = s->cout, st = s->stride, rb = dw_block_rows(s);
    const size_t prow = padded_row(s);
    const int wr = (int)(prow / cin);
    int c0 = s->pad_l < wr ? s->pad_l : wr, c1 = s->w + s->pad_l < wr ? s->w + s->pad_l : wr;
    if (c1 < c0) c1 = c0;
    const float *xs[DW_BLOCK_ROWS_MAX], *gs[DW_BLOCK_ROWS_MAX];
    for (int r0 = lo; r0 < hi; r0 += rb) {
        int r1 = r0 + rb < hi ? r0 + rb : hi;
        for (int kh = 0; kh < s->kh; kh++) {
            int nr = 0;
            for (int r = r0; r < r1; r++) {
                int n = r / s->oh, oh = r % s->oh;
                int ih = oh * st - s->pad_t + kh;
                if (ih < 0 || ih >= s->h) continue;
                const float *xr = x + ((size_t)n * s->h + ih) * s->w * cin;
                float *d = xp + (size_t)nr * prow;
                memset(d, 0, sizeof(float) * (size_t)c0 * cin);
                memcpy(d + (size_t)c0 * cin, xr, sizeof(float) * (size_t)(c1 - c0) * cin);
                memset(d + (size_t)c1 * cin, 0, sizeof(float) * (size_t)(wr - c1) * cin);
                xs[nr] = d;
                gs[nr++] = dy + (size_t)r * s->ow * cout;
            }
            if (!nr) continue;
            float *ak = acc + (size_t)kh * s->kw * cin * cout;
            for (int cb = 0; cb < cout; cb += CB)
                dw_span(ak + cb, cout, xs, 0, st * cin, gs, (size_t)cb, cout, nr, s->ow, s->kw * cin);
        }
    }
}

void cored_conv_direct_backward_weight(float *dw, const float *dy, const float *x,
                                       const cored_conv_shape *s, float *ws)
{
    const int khw = s->kh * s->kw, cin = s->cin, cout = s->cout;
    const size_t taps = (size_t)khw * cin * cout;
    int rows = s->n * s->oh;
    size_t prows = (size_t)dw_block_rows(s) * padded_row(s);
    float *xp = ws + (size_t)CORED_PARTS * taps;
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        float *acc = ws + (size_t)p * taps;
        memset(acc, 0, sizeof(float) * taps);
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        direct_dw_rows(acc, dy, x, xp + (size_t)p * prows, lo, hi, s);
    }
    /* partition 0 += partitions 1, 2, ... in order, over contiguous slices of the entries */
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < CORED_PARTS; c++) {
        int lo, hi;
        cored_part_range((int)taps, CORED_PARTS, c, &lo, &hi);
        for (int p = 1; p < CORED_PARTS; p++) {
            const float *src = ws + (size_t)p * taps;
            #pragma omp simd
            for (int e = lo; e < hi; e++) ws[e] += src[e];
        }
    }
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int k = 0; k < khw; k++)
                dw[((size_t)co * cin + ci) * khw + k] += ws[((size_t)k * cin + ci) * cout + co];
}
