/*
 * Bilinear resize of 8-bit RGB images, bit-exact with PIL's Image.resize(size, BILINEAR)
 * (Pillow 9, src/libImaging/Resample.c), which is what torchvision's
 * transforms.Resize((h, w)) runs on PIL images:
 *   - separable: horizontal pass into an 8-bit intermediate, then vertical pass;
 *   - triangle filter of support 1 scaled by the downscale factor (antialiasing);
 *     coefficients normalised in double, then rounded to 22-bit fixed point;
 *   - each output = clip8((2^21 + sum(pixel * coef)) >> 22).
 * A pass whose size does not change is skipped (it would be the identity), as in Pillow.
 */
#include <math.h>
#include <string.h>

#include "data/data.h"

#define PRECISION_BITS 22

void cored_resizer_release(cored_resizer *rz)
{
    if (!rz) return;
    cored_free(rz->coef);
    cored_free(rz->bounds);
    cored_free(rz->pre);
    cored_free(rz->tmp);
    memset(rz, 0, sizeof *rz);
}

static int grow(void **p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return 0;
    void *q = cored_alloc(bytes);
    if (!q) return -1;
    cored_free(*p);
    *p = q;
    *cap = bytes;
    return 0;
}

static double triangle(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int ksize_of(int in_size, int out_size)
{
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    return (int)ceil(filterscale) * 2 + 1;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size). */
static void coefficients(int32_t *coef, int *bounds, double *pre, int in_size, int out_size, int ksize)
{
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = pre + (size_t)xx * ksize;
        int x = 0;
        for (; x < xmax; x++) {
            double w = triangle((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++)
        coef[i] = pre[i] < 0 ? (int32_t)(-0.5 + pre[i] * (1 << PRECISION_BITS))
                             : (int32_t)(0.5 + pre[i] * (1 << PRECISION_BITS));
}

static inline uint8_t clip8(int32_t v)
{
    if (v < 0) return 0;
    v >>= PRECISION_BITS;
    return (uint8_t)(v > 255 ? 255 : v);
}

/* rows [y0, y0 + nrows) of src (width sw) -> dst (width dw, nrows rows). */
static void pass_horizontal(uint8_t *dst, int dw, const uint8_t *src, int sw, int y0, int nrows,
                            const int32_t *coef, const int *bounds, int ksize)
{
    for (int y = 0; y < nrows; y++) {
        const uint8_t *in = src + (size_t)(y0 + y) * sw * 3;
        uint8_t *out = dst + (size_t)y * dw * 3;
        for (int xx = 0; xx < dw; xx++) {
            const int32_t *k = coef + (size_t)xx * ksize;
            const uint8_t *p = in + (size_t)bounds[2 * xx] * 3;
            int n = bounds[2 * xx + 1];
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                s0 += p[3 * x] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            out[3 * xx] = clip8(s0);
            out[3 * xx + 1] = clip8(s1);
            out[3 * xx + 2] = clip8(s2);
        }
    }
}

/* src rows are indexed from `first` (the first row the vertical filter reads). acc is a
   scratch row of w*3 int32 sums: integer sums are exact, so accumulating row by row gives
   Pillow's per-pixel result. */
static void pass_vertical(uint8_t *dst, int dh, const uint8_t *src, int w, int first,
                          const int32_t *coef, const int *bounds, int ksize, int32_t *acc)
{
    size_t row = (size_t)w * 3;
    for (int yy = 0; yy < dh; yy++) {
        const int32_t *k = coef + (size_t)yy * ksize;
        int ymin = bounds[2 * yy] - first, n = bounds[2 * yy + 1];
        for (size_t i = 0; i < row; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const uint8_t *in = src + (size_t)(ymin + y) * row;
            int32_t c = k[y];
            for (size_t i = 0; i < row; i++) acc[i] += in[i] * c;
        }
        uint8_t *out = dst + (size_t)yy * row;
        for (size_t i = 0; i < row; i++) out[i] = clip8(acc[i]);
    }
}

int cored_resize_rgb8(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh,
                      cored_resizer *rz, cored_error *err)
{
    if (!dst || !src || !rz || dw <= 0 || dh <= 0 || sw <= 0 || sh <= 0)
        return CORED_FAIL(err, CORED_E_ARG, "resize: invalid arguments (%dx%d -> %dx%d)", sw, sh, dw, dh);
    int need_h = sw != dw, need_v = sh != dh;
    if (!need_h && !need_v) {
        memcpy(dst, src, (size_t)sw * sh * 3);
        return CORED_OK;
    }
    int kh = need_h ? ksize_of(sw, dw) : 0, kv = need_v ? ksize_of(sh, dh) : 0;
    size_t nh = (size_t)dw * kh, nv = (size_t)dh * kv;
    size_t npre = nh > nv ? nh : nv;
    size_t ncoef = nh + nv + (size_t)dw * 3;
    if (grow((void **)&rz->coef, &rz->coef_cap, ncoef * sizeof(int32_t)) ||
        grow((void **)&rz->bounds, &rz->bounds_cap, 2 * ((size_t)dw + dh) * sizeof(int)) ||
        grow((void **)&rz->pre, &rz->pre_cap, npre * sizeof(double)))
        return CORED_FAIL(err, CORED_E_NOMEM, "resize: cannot allocate coefficients");
    int32_t *ch = rz->coef, *cv = rz->coef + nh, *acc = rz->coef + nh + nv;
    int *bh = rz->bounds, *bv = rz->bounds + 2 * (size_t)dw;
    if (need_h) coefficients(ch, bh, rz->pre, sw, dw, kh);
    if (need_v) coefficients(cv, bv, rz->pre, sh, dh, kv);

    if (!need_v) {
        pass_horizontal(dst, dw, src, sw, 0, sh, ch, bh, kh);
        return CORED_OK;
    }
    if (!need_h) {
        pass_vertical(dst, dh, src, dw, 0, cv, bv, kv, acc);
        return CORED_OK;
    }
    /* Only the source rows the vertical filter reads go through the horizontal pass. */
    int first = bv[0];
    int last = bv[2 * (dh - 1)] + bv[2 * (dh - 1) + 1];
    size_t tmp_bytes = (size_t)dw * (size_t)(last - first) * 3;
    if (grow((void **)&rz->tmp, &rz->tmp_cap, tmp_bytes))
        return CORED_FAIL(err, CORED_E_NOMEM, "resize: cannot allocate %zu bytes", tmp_bytes);
    pass_horizontal(rz->tmp, dw, src, sw, first, last - first, ch, bh, kh);
    pass_vertical(dst, dh, rz->tmp, dw, first, cv, bv, kv, acc);
    return CORED_OK;
}

void cored_normalize_lut(float lut[256])
{
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - 0.5f) / 0.5f;
}
