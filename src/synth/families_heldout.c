/*
 * Two held-out forgery families, added after the first six to judge continual methods on tasks
 * that nothing in this project was tuned on. Their strength was set only so that a tiny
 * single-task detector learns each while the other families' detectors stay near chance on it
 * (docs/synth.md has the cross-family table and what was tried); no continual method was run
 * on them.
 *
 *   Inpaint   (GAN inpainting, attribute editing) a face part, a nearly horizontal ellipse
 *             above or below the face centre (the eyes or the mouth), is erased and filled
 *             from its surroundings: a membrane (the harmonic interpolation of the colours
 *             around the hole, solved coarse to fine) carries what a sigma-2 px blur keeps,
 *             and everything finer is copied (x0.8-1.2) from the same photograph at a shift of
 *             1.2-1.8 times the part's larger semi-axis, as patch-based fills do: a part
 *             without its own structure, with borrowed texture on smooth, interpolated shading.
 *   Resample  (face swap pipelines that render the face at a lower resolution, resize it into
 *             the frame and sharpen it) the region is reduced to x0.55-0.8 (antialiased),
 *             enlarged back with OpenCV's bicubic (a = -0.75) or a Lanczos-3 kernel on a random
 *             sub-pixel grid, and sharpened (unsharp mask, sigma 1 px, amount 1-2): no
 *             frequencies above the reduced Nyquist limit, every pixel a fixed-phase
 *             combination of the coarse grid (a correlation that repeats with the non-integer
 *             period 1/f), and the ringing of a sharpened band-limited image.
 *
 * Inpaint's pixel-unit parameters are given at 64 px and scaled by k = size/64; its shift and
 * gain are relative. Resample acts on the pixel grid (as Upsample does): its scale factor is
 * relative to the pixels and its sharpening radius is 1 px at every size. Work is in float on
 * [0, 255] with pixel centres at (x + 0.5, y + 0.5).
 */
#include <math.h>
#include <string.h>

#include "synth/family_parts.h"

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Reflected index into [0, n): -1 -> 0, n -> n - 1, for any shift below n. */
static int reflect(int i, int n)
{
    if (i < 0) i = -i - 1;
    if (i >= n) i = 2 * n - i - 1;
    return clampi(i, 0, n - 1);
}

/* ---------------------------------------------------------------- Inpaint */

/* Harmonic fill of an interleaved RGB image v (side x side) with per-pixel known weight w in
   [0, 1]: pixels with w = 1 keep their value, the others get the solution of Laplace's
   equation with them as boundary values (reflecting image borders). Coarse to fine: the
   image and its weights are reduced by 2 (weighted 2 x 2 means) down to a side of at most 4
   or an odd side, the coarsest level starts from the mean known colour, and each finer level
   starts its unknown pixels from the bilinear enlargement of the coarser solution (blended
   with their partly known value) before `sweeps` Gauss-Seidel sweeps. work: at least
   side*side*4/3 + 8 floats. */
static void harmonic_fill(float *v, const float *w, int side, float *work, int sweeps)
{
    int half = side / 2;
    float *cv = NULL;
    if (side > 4 && side % 2 == 0) {
        cv = work;
        float *cw = work + (size_t)half * half * 3;
        for (int y = 0; y < half; y++)
            for (int x = 0; x < half; x++) {
                float acc[3] = {0, 0, 0}, ws = 0;
                for (int j = 0; j < 2; j++)
                    for (int i = 0; i < 2; i++) {
                        size_t p = (size_t)(2 * y + j) * side + 2 * x + i;
                        for (int c = 0; c < 3; c++) acc[c] += w[p] * v[p * 3 + c];
                        ws += w[p];
                    }
                size_t q = (size_t)y * half + x;
                for (int c = 0; c < 3; c++) cv[q * 3 + c] = ws > 0 ? acc[c] / ws : 0.0f;
                cw[q] = ws / 4;
            }
        harmonic_fill(cv, cw, half, cw + (size_t)half * half, sweeps);
    }
    double mean[3] = {0, 0, 0}, wsum = 0;
    if (!cv) {
        for (size_t p = 0; p < (size_t)side * side; p++) {
            for (int c = 0; c < 3; c++) mean[c] += w[p] * v[p * 3 + c];
            wsum += w[p];
        }
        for (int c = 0; c < 3; c++) mean[c] = wsum > 0 ? mean[c] / wsum : 128.0;
    }
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            size_t p = (size_t)y * side + x;
            if (w[p] >= 1.0f) continue;
            float init[3];
            if (cv) {
                float u = 0.5f * (x + 0.5f) - 0.5f, t = 0.5f * (y + 0.5f) - 0.5f;
                int x0 = (int)floorf(u), y0 = (int)floorf(t);
                float ax = u - x0, ay = t - y0;
                int xa = clampi(x0, 0, half - 1), xb = clampi(x0 + 1, 0, half - 1);
                int ya = clampi(y0, 0, half - 1), yb = clampi(y0 + 1, 0, half - 1);
                for (int c = 0; c < 3; c++)
                    init[c] = (1 - ay) * ((1 - ax) * cv[((size_t)ya * half + xa) * 3 + c] +
                                          ax * cv[((size_t)ya * half + xb) * 3 + c]) +
                              ay * ((1 - ax) * cv[((size_t)yb * half + xa) * 3 + c] +
                                    ax * cv[((size_t)yb * half + xb) * 3 + c]);
            } else {
                for (int c = 0; c < 3; c++) init[c] = (float)mean[c];
            }
            for (int c = 0; c < 3; c++) v[p * 3 + c] = w[p] * v[p * 3 + c] + (1.0f - w[p]) * init[c];
        }
    for (int s = 0; s < sweeps; s++)
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++) {
                size_t p = (size_t)y * side + x;
                if (w[p] >= 1.0f) continue;
                size_t nb[4] = {(size_t)y * side + reflect(x - 1, side), (size_t)y * side + reflect(x + 1, side),
                                (size_t)reflect(y - 1, side) * side + x, (size_t)reflect(y + 1, side) * side + x};
                for (int c = 0; c < 3; c++)
                    v[p * 3 + c] = 0.25f * (v[nb[0] * 3 + c] + v[nb[1] * 3 + c] + v[nb[2] * 3 + c] + v[nb[3] * 3 + c]);
            }
}

void cored_synth_inpaint(float *out, float *m, cored_fake_info *info, const float *b, float *fill, float *work,
                         float *detail, float *tmp, int size, float k, cored_rng *r)
{
    size_t n = (size_t)size * size;
    /* the part: the eyes (above the centre) or the mouth (below), nearly horizontal */
    cored_synth_ellipse e;
    float part = cored_rng_below(r, 2) ? -1.0f : 1.0f;
    e.cx = size * (0.5f + cored_synth_uniform(r, -0.08f, 0.08f));
    e.cy = size * (0.5f + part * cored_synth_uniform(r, 0.05f, 0.18f));
    e.ax = size * cored_synth_uniform(r, 0.18f, 0.30f);
    e.ay = size * cored_synth_uniform(r, 0.11f, 0.18f);
    e.angle = cored_synth_uniform(r, -0.26f, 0.26f);
    cored_synth_ellipse_mask(m, size, &e, k * cored_synth_uniform(r, 2.0f, 4.0f));
    float gain = cored_synth_uniform(r, 0.8f, 1.2f);
    float phi = cored_synth_uniform(r, 0.0f, 6.2831853f);
    float len = cored_synth_uniform(r, 1.2f, 1.8f) * (e.ax > e.ay ? e.ax : e.ay);
    int ox = (int)lroundf(len * cosf(phi)), oy = (int)lroundf(len * sinf(phi));
    /* the membrane: known (weight 1) wherever the part leaves the photograph untouched */
    float *known = tmp;
    for (size_t i = 0; i < n; i++) known[i] = m[i] > 0.0f ? 0.0f : 1.0f;
    memcpy(fill, b, n * 3 * sizeof(float));
    harmonic_fill(fill, known, size, work, 30);
    /* the detail above the membrane's scale, to be borrowed from (x + ox, y + oy) */
    cored_synth_blur(detail, b, tmp, size, 2.0f * k);
    for (size_t i = 0; i < n * 3; i++) detail[i] = b[i] - detail[i];
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            size_t i = (size_t)y * size + x;
            if (m[i] <= 0.0f) {
                memcpy(out + i * 3, b + i * 3, 3 * sizeof(float));
                continue;
            }
            size_t src = (size_t)reflect(y + oy, size) * size + reflect(x + ox, size);
            for (int c = 0; c < 3; c++) {
                float filled = fill[i * 3 + c] + gain * detail[src * 3 + c];
                out[i * 3 + c] = m[i] * filled + (1.0f - m[i]) * b[i * 3 + c];
            }
        }
    cored_synth_set_info(info, &e, gain);
}

/* ---------------------------------------------------------------- Resample */

/* OpenCV's bicubic (Keys, a = -0.75; PIL's BICUBIC has a = -0.5), support 2. */
static float cubic(float x)
{
    const float a = -0.75f;
    x = fabsf(x);
    if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
    if (x < 2.0f) return (((x - 5.0f) * x + 8.0f) * x - 4.0f) * a;
    return 0.0f;
}

/* Lanczos with 3 lobes, support 3. */
static float lanczos3(float x)
{
    x = fabsf(x);
    if (x < 1e-6f) return 1.0f;
    if (x >= 3.0f) return 0.0f;
    float px = 3.14159265f * x;
    return 3.0f * sinf(px) * sinf(px / 3.0f) / (px * px);
}

typedef struct {
    float (*fn)(float);
    float support;
} resize_kernel;

static const resize_kernel resize_kernels[2] = {{cubic, 2.0f}, {lanczos3, 3.0f}};

/* One axis of a resampling of an interleaved RGB image (w x h): output index j samples the
   input around c = (j + 0.5) / scale + offset (input pixel i has its centre at i + 0.5) with
   the kernel stretched by 1 / scale when reducing (antialiased, as PIL does), weights
   normalised, indices clamped to the border. horizontal: dst is n_out x h; else w x n_out. */
static void resample_axis(float *dst, const float *src, int w, int h, int n_out, int horizontal, float scale,
                          float offset, const resize_kernel *kr)
{
    enum { MAXTAPS = 32 };
    int n_in = horizontal ? w : h, lines = horizontal ? h : w;
    float fs = scale < 1.0f ? scale : 1.0f, rad = kr->support / fs;
    for (int j = 0; j < n_out; j++) {
        float c = (j + 0.5f) / scale + offset, wt[MAXTAPS], sum = 0;
        int i0 = (int)floorf(c - rad), taps = (int)ceilf(c + rad) - i0 + 1;
        taps = taps > MAXTAPS ? MAXTAPS : taps;
        for (int t = 0; t < taps; t++) sum += wt[t] = kr->fn((i0 + t + 0.5f - c) * fs);
        for (int t = 0; t < taps; t++) wt[t] /= sum;
        for (int l = 0; l < lines; l++) {
            float acc[3] = {0, 0, 0};
            for (int t = 0; t < taps; t++) {
                int i = clampi(i0 + t, 0, n_in - 1);
                const float *p = horizontal ? src + ((size_t)l * w + i) * 3 : src + ((size_t)i * w + l) * 3;
                for (int ch = 0; ch < 3; ch++) acc[ch] += wt[t] * p[ch];
            }
            float *q = horizontal ? dst + ((size_t)l * n_out + j) * 3 : dst + ((size_t)j * w + l) * 3;
            for (int ch = 0; ch < 3; ch++) q[ch] = acc[ch];
        }
    }
}

void cored_synth_resample(float *out, float *m, cored_fake_info *info, const float *b, float *small, float *up,
                          float *tmp, float *blur, int size, cored_rng *r)
{
    cored_synth_ellipse e = cored_synth_soft_region(m, size, r);
    float f = cored_synth_uniform(r, 0.55f, 0.8f);
    float phx = cored_synth_uniform(r, 0.0f, 1.0f), phy = cored_synth_uniform(r, 0.0f, 1.0f);
    const resize_kernel *kr = &resize_kernels[cored_rng_below(r, 2)];
    int ns = (int)ceilf(size * f) + 2;
    /* the face rendered at the lower resolution, on a grid shifted by (phx, phy) coarse pixels */
    resample_axis(tmp, b, size, size, ns, 1, f, -phx / f, kr);
    resample_axis(small, tmp, ns, size, ns, 0, f, -phy / f, kr);
    /* and resized back into the frame */
    resample_axis(tmp, small, ns, ns, size, 1, 1.0f / f, phx, kr);
    resample_axis(up, tmp, size, ns, size, 0, 1.0f / f, phy, kr);
    /* sharpened on the frame's pixel grid, where the resizing removed the band: sigma 1 px
       at every size, as the scale is relative to the pixel grid too */
    cored_synth_sharpen_paste(out, m, b, up, blur, tmp, size, 1.0f, cored_synth_uniform(r, 1.0f, 2.0f));
    cored_synth_set_info(info, &e, f);
}

