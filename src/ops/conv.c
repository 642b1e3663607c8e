/*
 * 2-D convolution, NHWC activations, PyTorch OIHW weights (torch.nn.functional.conv2d:
 * cross-correlation, zero padding, groups).
 *
 * Three paths, chosen from the shape:
 *  - pointwise (1x1, groups 1, no padding): one GEMM over every pixel of the whole batch,
 *    Y[N*OH*OW, Cout] = X[rows, Cin] * W[Cout, Cin]^T; stride 2 gathers the rows first.
 *  - depthwise (groups == Cin == Cout): a direct kernel in dwconv.c, vectorised over C.
 *  - general: im2col over chunks of images into columns ordered (kh, kw, ci), then a
 *    GEMM against the weight repacked to (Cout, KH, KW, Cin/g). col2im is written as a
 *    gather over input pixels so it parallelises without races.
 *  - direct (conv_direct.c), for groups 1 and few channels: each pass (forward, input
 *    gradient, weight gradient) separately, where it measured faster than the general
 *    path (direct_passes below; docs/engine.md has the measurements).
 */
#include <string.h>

#include "conv_direct.h"
#include "internal.h"
#include "ops.h"

void cored_dwconv_forward(float *y, const float *x, const float *w, const float *b,
                          const cored_conv_shape *s, float *ws);
void cored_dwconv_forward_act(float *y, const float *x, const float *w, const float *b,
                              cored_act act, const cored_conv_shape *s, float *ws);
void cored_dwconv_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, const cored_conv_shape *s, float *ws);
size_t cored_dwconv_ws_floats(const cored_conv_shape *s);

/* Budget for the im2col buffer of one chunk of images (floats). */
#define COL_BUDGET ((size_t)1 << 22)

enum { PATH_POINTWISE, PATH_DEPTHWISE, PATH_GENERAL };

static int conv_path(const cored_conv_shape *s)
{
    if (s->kh == 1 && s->kw == 1 && s->groups == 1 && !s->pad_t && !s->pad_l && !s->pad_b &&
        !s->pad_r)
        return PATH_POINTWISE;
    if (s->groups == s->cin && s->cout == s->cin && s->groups > 1 && s->kh * s->kw <= 64)
        return PATH_DEPTHWISE; /* (dwconv.c gathers at most 64 taps per pixel) */
    return PATH_GENERAL;
}

int cored_conv_shape_init(cored_conv_shape *s)
{
    if (s->n < 1 || s->h < 1 || s->w < 1 || s->cin < 1 || s->cout < 1 || s->kh < 1 ||
        s->kw < 1 || s->stride < 1 || s->groups < 1)
        return -1;
    if (s->pad_t < 0 || s->pad_l < 0 || s->pad_b < 0 || s->pad_r < 0) return -1;
    if (s->cin % s->groups || s->cout % s->groups) return -1;
    int hp = s->h + s->pad_t + s->pad_b, wp = s->w + s->pad_l + s->pad_r;
    if (hp < s->kh || wp < s->kw) return -1;
    s->oh = (hp - s->kh) / s->stride + 1;
    s->ow = (wp - s->kw) / s->stride + 1;
    return 0;
}

/* Which passes of a general-path shape run direct (conv_direct.c): groups 1, Cin and Cout
   up to 64 and at least 8 output columns (a row is one run of pixel tiles; at tiny's last
   layer, 8 columns, the two paths are about even). The input gradient vectorises over
   Cin, rounded up to 16, so it needs Cin >= 16; the weight gradient needs Cout a multiple
   of 16. Measured per pass against im2col + GEMM: docs/engine.md. */
enum { DIRECT_FWD = 1, DIRECT_DX = 2, DIRECT_DW = 4 };

static int direct_passes(const cored_conv_shape *s)
{
    if (conv_path(s) != PATH_GENERAL || s->groups != 1 || s->kh * s->kw > 64) return 0;
    if (s->cin > 64 || s->cout > 64 || s->ow < 8) return 0;
    int p = DIRECT_FWD;
    if (s->cin >= 16) p |= DIRECT_DX;
    if (s->cout % 16 == 0) p |= DIRECT_DW;
    return p;
}

/* Images per im2col chunk and the column length of one group. */
static int chunk_images(const cored_conv_shape *s)
{
    size_t per = (size_t)s->oh * s->ow * s->kh * s->kw * (s->cin / s->groups);
    size_t c = per ? COL_BUDGET / per : 1;
    if (c < 1) c = 1;
    if (c > (size_t)s->n) c = (size_t)s->n;
    return (int)c;
}

size_t cored_conv_ws_floats(const cored_conv_shape *s)
{
    size_t rows = (size_t)s->n * s->oh * s->ow;
    size_t bias = cored_colsum_ws_floats(s->cout);
    switch (conv_path(s)) {
    case PATH_POINTWISE:
        if (s->stride == 1) return bias;
        return 2 * rows * s->cin + bias;
    case PATH_DEPTHWISE: return cored_dwconv_ws_floats(s) + bias;
    default: {
        size_t k = (size_t)s->kh * s->kw * (s->cin / s->groups);
        size_t col = (size_t)chunk_images(s) * s->oh * s->ow * k;
        size_t general = 2 * (size_t)s->cout * k + col + bias;
        size_t direct = direct_passes(s) ? cored_conv_direct_ws_floats(s) + bias : 0;
        return general > direct ? general : direct;
    }
    }
}

/* ---------------------------------------------------------------- pointwise */

/* Gathers the strided input pixels of a 1x1 conv: g (N, OH, OW, Cin). */
static void gather_strided(float *g, const float *x, const cored_conv_shape *s)
{
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int n = r / s->oh, oh = r % s->oh;
        const float *src = x + (((size_t)n * s->h + (size_t)oh * s->stride) * s->w) * s->cin;
        float *dst = g + (size_t)r * s->ow * s->cin;
        for (int ow = 0; ow < s->ow; ow++)
            memcpy(dst + (size_t)ow * s->cin, src + (size_t)ow * s->stride * s->cin,
                   sizeof(float) * (size_t)s->cin);
    }
}

static void scatter_strided(float *dx, const float *g, const cored_conv_shape *s)
{
    memset(dx, 0, sizeof(float) * (size_t)s->n * s->h * s->w * s->cin);
    int rows = s->n * s->oh;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int n = r / s->oh, oh = r % s->oh;
        float *dst = dx + (((size_t)n * s->h + (size_t)oh * s->stride) * s->w) * s->cin;
        const float *src = g + (size_t)r * s->ow * s->cin;
        for (int ow = 0; ow < s->ow; ow++)
            memcpy(dst + (size_t)ow * s->stride * s->cin, src + (size_t)ow * s->cin,
                   sizeof(float) * (size_t)s->cin);
    }
}

static void fill_bias(float *y, const float *b, size_t rows, int c)
{
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) memcpy(y + r * c, b, sizeof(float) * (size_t)c);
}

#define EPI_TILE_FLOATS 786432 /* input and output floats of one tile of a fused pointwise GEMM */

/* Rows per tile of a GEMM with its output pass: at least 8 tiles where there are rows
   enough, at most EPI_TILE_FLOATS floats of input and output per
   tile; a function of the shape alone. */
static int epi_tile(int rows, int k, int n)
{
    int cap = (EPI_TILE_FLOATS / (k + n)) & ~15, eighth = ((rows + 7) / 8 + 15) & ~15;
    int tile = eighth < cap ? eighth : cap;
    return tile < 32 ? 32 : tile;
}

/* y = act(x * w^T + b) over rows x n, x rows x k, w n x k, act ReLU or SiLU. ReLU: one
   product whose micro-kernel adds the bias and clamps in registers. SiLU: tiles of rows,
   each a serial GEMM followed at once by the bias and activation pass while the tile is in
   cache. Either way the bits are those of the product followed by cored_bias_act_rows:
   they depend neither on the tiling (one FMA chain per element) nor on the thread count. */
static void product_act(float *y, const float *x, const float *w, const float *b, cored_act act, int rows, int k,
                        int n)
{
    if (act == CORED_ACT_RELU) {
        cored_gemm_bias_relu(0, 1, rows, n, k, x, k, w, k, y, b, 1);
        return;
    }
    int tile = epi_tile(rows, k, n);
    int tiles = (rows + tile - 1) / tile;
    #pragma omp parallel for schedule(static) /* a team even for one tile: the product stays on its thread */
    for (int t = 0; t < tiles; t++) {
        int lo = t * tile, nr = rows - lo < tile ? rows - lo : tile;
        cored_gemm_serial(0, 1, nr, n, k, 1.0f, x + (size_t)lo * k, k, w, k, 0.0f, y + (size_t)lo * n, n);
        cored_bias_act_serial(y + (size_t)lo * n, b, (size_t)nr, n, act);
    }
}

static void pointwise_forward(float *y, const float *x, const float *w, const float *b,
                              cored_act act, const cored_conv_shape *s, float *ws)
{
    int rows = s->n * s->oh * s->ow;
    const float *in = x;
    if (s->stride != 1) {
        gather_strided(ws, x, s);
        in = ws;
    }
    if (act != CORED_ACT_NONE) {
        product_act(y, in, w, b, act, rows, s->cin, s->cout);
        return;
    }
    if (b) fill_bias(y, b, (size_t)rows, s->cout);
    cored_gemm(0, 1, rows, s->cout, s->cin, 1.0f, in, s->cin, w, s->cin, b ? 1.0f : 0.0f, y,
               s->cout);
}

static void pointwise_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, const cored_conv_shape *s, float *ws)
{
    int rows = s->n * s->oh * s->ow;
    const float *in = x;
    float *gx = ws, *gdx = ws + (size_t)rows * s->cin;
    if (s->stride != 1 && dw) {
        gather_strided(gx, x, s);
        in = gx;
    }
    if (dw) cored_gemm(1, 0, s->cout, s->cin, rows, 1.0f, dy, s->cout, in, s->cin, 1.0f, dw, s->cin);
    if (db) cored_colsum_acc(db, dy, rows, s->cout, ws + (s->stride != 1 ? 2 * (size_t)rows * s->cin : 0));
    if (dx) {
        if (s->stride == 1) {
            cored_gemm(0, 0, rows, s->cin, s->cout, 1.0f, dy, s->cout, w, s->cin, 0.0f, dx, s->cin);
        } else {
            cored_gemm(0, 0, rows, s->cin, s->cout, 1.0f, dy, s->cout, w, s->cin, 0.0f, gdx, s->cin);
            scatter_strided(dx, gdx, s);
        }
    }
}

/* ---------------------------------------------------------------- general (im2col) */

/* Repacks OIHW into (Cout, KH, KW, Cin/g). */
static void repack_weight(float *wr, const float *w, const cored_conv_shape *s)
{
    int cg = s->cin / s->groups, khw = s->kh * s->kw;
    for (int co = 0; co < s->cout; co++)
        for (int ci = 0; ci < cg; ci++)
            for (int k = 0; k < khw; k++)
                wr[((size_t)co * khw + k) * cg + ci] = w[((size_t)co * cg + ci) * khw + k];
}

static void unpack_weight_grad_acc(float *dw, const float *dwr, const cored_conv_shape *s)
{
    int cg = s->cin / s->groups, khw = s->kh * s->kw;
    for (int co = 0; co < s->cout; co++)
        for (int ci = 0; ci < cg; ci++)
            for (int k = 0; k < khw; k++)
                dw[((size_t)co * cg + ci) * khw + k] += dwr[((size_t)co * khw + k) * cg + ci];
}

/* col (nimg*OH*OW, KH*KW*cg) from channels [c0, c0+cg) of images [n0, n0+nimg). */
static void im2col(float *col, const float *x, int n0, int nimg, int c0, int cg,
                   const cored_conv_shape *s)
{
    int k = s->kh * s->kw * cg;
    int rows = nimg * s->oh;
    /* Without groups, the taps of one kernel row read adjacent pixels, which are adjacent in
       NHWC, and land next to each other in the column: one copy per kernel row. */
    int span = cg == s->cin;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int n = n0 + r / s->oh, oh = r % s->oh;
        for (int ow = 0; ow < s->ow; ow++) {
            float *dst = col + ((size_t)r * s->ow + ow) * k;
            int iw0 = ow * s->stride - s->pad_l;
            int lo = iw0 < 0 ? -iw0 : 0;
            int hi = s->w - iw0 < s->kw ? s->w - iw0 : s->kw;
            for (int kh = 0; kh < s->kh; kh++) {
                int ih = oh * s->stride - s->pad_t + kh;
                float *d = dst + (size_t)kh * s->kw * cg;
                if (ih < 0 || ih >= s->h || hi <= lo) {
                    memset(d, 0, sizeof(float) * (size_t)s->kw * cg);
                    continue;
                }
                const float *src = x + (((size_t)n * s->h + ih) * s->w + (iw0 + lo)) * s->cin + c0;
                if (lo > 0) memset(d, 0, sizeof(float) * (size_t)lo * cg);
                if (span) {
                    memcpy(d + (size_t)lo * cg, src, sizeof(float) * (size_t)(hi - lo) * cg);
                } else {
                    for (int kw = lo; kw < hi; kw++)
                        memcpy(d + (size_t)kw * cg, src + (size_t)(kw - lo) * s->cin, sizeof(float) * (size_t)cg);
                }
                if (hi < s->kw) memset(d + (size_t)hi * cg, 0, sizeof(float) * (size_t)(s->kw - hi) * cg);
            }
        }
    }
}

/* dx[channels c0..c0+cg) of images n0.. = sum of the column entries that read each pixel. */
static void col2im(float *dx, const float *col, int n0, int nimg, int c0, int cg,
                   const cored_conv_shape *s)
{
    int k = s->kh * s->kw * cg;
    int rows = nimg * s->h;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int n = r / s->h, ih = r % s->h;
        for (int iw = 0; iw < s->w; iw++) {
            float *d = dx + (((size_t)(n0 + n) * s->h + ih) * s->w + iw) * s->cin + c0;
            memset(d, 0, sizeof(float) * (size_t)cg);
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
                    const float *src = col + (((size_t)n * s->oh + oh) * s->ow + ow) * k +
                                       ((size_t)kh * s->kw + kw) * cg;
                    #pragma omp simd
                    for (int c = 0; c < cg; c++) d[c] += src[c];
                }
            }
        }
    }
}

static void general_forward(float *y, const float *x, const float *w, const float *b,
                            cored_act act, const cored_conv_shape *s, float *ws)
{
    int cg = s->cin / s->groups, og = s->cout / s->groups;
    int k = s->kh * s->kw * cg, pix = s->oh * s->ow;
    float *wr = ws, *col = ws + 2 * (size_t)s->cout * k;
    repack_weight(wr, w, s);
    int chunk = chunk_images(s);
    for (int n0 = 0; n0 < s->n; n0 += chunk) {
        int nimg = s->n - n0 < chunk ? s->n - n0 : chunk;
        float *yc = y + (size_t)n0 * pix * s->cout;
        const int epi = act != CORED_ACT_NONE; /* bias and activation after the GEMMs */
        if (epi && s->groups == 1) {
            im2col(col, x, n0, nimg, 0, cg, s);
            product_act(yc, col, wr, b, act, nimg * pix, k, s->cout);
            continue;
        }
        if (b && !epi) fill_bias(yc, b, (size_t)nimg * pix, s->cout);
        for (int g = 0; g < s->groups; g++) {
            im2col(col, x, n0, nimg, g * cg, cg, s);
            cored_gemm(0, 1, nimg * pix, og, k, 1.0f, col, k, wr + (size_t)g * og * k, k,
                       b && !epi ? 1.0f : 0.0f, yc + (size_t)g * og, s->cout);
        }
        if (epi) cored_bias_act(yc, b, (size_t)nimg * pix, s->cout, act);
    }
}

static void general_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                             const float *w, const cored_conv_shape *s, float *ws)
{
    int cg = s->cin / s->groups, og = s->cout / s->groups;
    int k = s->kh * s->kw * cg, pix = s->oh * s->ow;
    float *wr = ws, *dwr = ws + (size_t)s->cout * k, *col = ws + 2 * (size_t)s->cout * k;
    size_t colsz = (size_t)chunk_images(s) * pix * k;
    if (db) cored_colsum_acc(db, dy, s->n * pix, s->cout, col + colsz);
    if (!dx && !dw) return;
    repack_weight(wr, w, s);
    int chunk = chunk_images(s);
    for (int n0 = 0; n0 < s->n; n0 += chunk) {
        int nimg = s->n - n0 < chunk ? s->n - n0 : chunk;
        const float *dyc = dy + (size_t)n0 * pix * s->cout;
        for (int g = 0; g < s->groups; g++) {
            float *dwg = dwr + (size_t)g * og * k;
            if (dw) {
                im2col(col, x, n0, nimg, g * cg, cg, s);
                cored_gemm(1, 0, og, k, nimg * pix, 1.0f, dyc + (size_t)g * og, s->cout, col, k,
                           n0 == 0 ? 0.0f : 1.0f, dwg, k);
            }
            if (dx) {
                cored_gemm(0, 0, nimg * pix, k, og, 1.0f, dyc + (size_t)g * og, s->cout,
                           wr + (size_t)g * og * k, k, 0.0f, col, k);
                col2im(dx, col, n0, nimg, g * cg, cg, s);
            }
        }
    }
    if (dw) unpack_weight_grad_acc(dw, dwr, s);
}

/* ---------------------------------------------------------------- dispatch */

void cored_conv_forward_act(float *y, const float *x, const float *w, const float *b,
                            cored_act act, const cored_conv_shape *s, float *ws)
{
    switch (conv_path(s)) {
    case PATH_POINTWISE: pointwise_forward(y, x, w, b, act, s, ws); break;
    case PATH_DEPTHWISE: cored_dwconv_forward_act(y, x, w, b, act, s, ws); break;
    default:
        if (direct_passes(s) & DIRECT_FWD)
            cored_conv_direct_forward(y, x, w, b, act, s, ws);
        else
            general_forward(y, x, w, b, act, s, ws);
        break;
    }
}

void cored_conv_forward(float *y, const float *x, const float *w, const float *b,
                        const cored_conv_shape *s, float *ws)
{
    cored_conv_forward_act(y, x, w, b, CORED_ACT_NONE, s, ws);
}

void cored_conv_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, const cored_conv_shape *s, float *ws)
{
    switch (conv_path(s)) {
    case PATH_POINTWISE: pointwise_backward(dx, dw, db, dy, x, w, s, ws); break;
    case PATH_DEPTHWISE: cored_dwconv_backward(dx, dw, db, dy, x, w, s, ws); break;
    default: {
        int d = direct_passes(s);
        if (!d) {
            general_backward(dx, dw, db, dy, x, w, s, ws);
            break;
        }
        /* the passes that stay on the general path first; then the direct ones, which
           reuse the workspace */
        float *gdx = d & DIRECT_DX ? NULL : dx, *gdw = d & DIRECT_DW ? NULL : dw;
        if (gdx || gdw || db) general_backward(gdx, gdw, db, dy, x, w, s, ws);
        if (dx && (d & DIRECT_DX)) cored_conv_direct_backward_data(dx, dy, w, s, ws);
        if (dw && (d & DIRECT_DW)) cored_conv_direct_backward_weight(dw, dy, x, s, ws);
        break;
    }
    }
}
