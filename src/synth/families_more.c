/*
 * Two more forgery families of the simulator, each with a low-level trace that the first
 * four (src/synth/families.c) lack, so that a detector of one does not detect the others
 * (docs/synth.md has the measured cross-family table). Both act inside the soft face-like
 * ellipse of cored_synth_draw_ellipse, faded in over 30-50 % of its smaller semi-axis.
 *
 *   Relight   (reenactment / face relighting) the region is relit: a smooth gain field (a mean
 *             gain of x0.76-0.89 or x1.13-1.32 with a linear ramp of +-10-30 % across the
 *             region along a random light direction) times a colour cast that keeps the luma
 *             (colour temperature +-3-8 % red against blue, tint +-3 % green), plus fresh
 *             sensor noise of 1.0-2.5 levels RMS (half shared by the channels, half per
 *             channel): a re-rendered, relit region whose illumination and noise level differ
 *             from the rest of the photograph.
 *   Retouch   (beauty filters, face retouching apps) an edge-preserving bilateral filter
 *             (spatial sigma 1.2-2 px, range sigma 15-30 levels of luma) flattens the skin's
 *             fine texture, then an unsharp mask (sigma 1 px, amount 1-2) sharpens what edges
 *             are left: smooth skin with crisp, haloed features.
 *
 * Pixel-unit parameters are given at 64 px and scaled by k = size/64; Relight's are relative
 * to the region and its noise levels are not scaled. Work is in float on [0, 255] with pixel
 * centres at (x + 0.5, y + 0.5).
 */
#include <math.h>
#include <string.h>

#include "synth/family_parts.h"

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

static float random_sign(cored_rng *r) { return cored_rng_below(r, 2) ? 1.0f : -1.0f; }

/* ---------------------------------------------------------------- Relight */

void cored_synth_relight(float *out, float *m, cored_fake_info *info, const float *b, int size, cored_rng *r)
{
    cored_synth_ellipse e = cored_synth_soft_region(m, size, r);
    float rbar = 0.5f * (e.ax + e.ay);
    float gain = expf(random_sign(r) * cored_synth_uniform(r, 0.12f, 0.28f));
    float slope = cored_synth_uniform(r, 0.1f, 0.3f), phi = cored_synth_uniform(r, 0.0f, 6.2831853f);
    float temp = random_sign(r) * cored_synth_uniform(r, 0.03f, 0.08f), tint = cored_synth_uniform(r, -0.03f, 0.03f);
    float noise = cored_synth_uniform(r, 1.0f, 2.5f);
    /* the cast keeps the luma: only the colour of the light changes */
    float cast[3] = {1.0f + temp, 1.0f + tint, 1.0f - temp};
    float norm = 0.299f * cast[0] + 0.587f * cast[1] + 0.114f * cast[2];
    for (int c = 0; c < 3; c++) cast[c] /= norm;
    float lx = cosf(phi), ly = sinf(phi);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            size_t i = (size_t)y * size + x;
            float ramp = clampf(((x + 0.5f - e.cx) * lx + (y + 0.5f - e.cy) * ly) / rbar, -1.0f, 1.0f);
            float g = gain * (1.0f + slope * ramp);
            float shared = (float)cored_rng_normal(r);
            for (int c = 0; c < 3; c++) {
                float z = 0.70710678f * (shared + (float)cored_rng_normal(r));
                out[i * 3 + c] = b[i * 3 + c] + m[i] * (b[i * 3 + c] * (g * cast[c] - 1.0f) + noise * z);
            }
        }
    cored_synth_set_info(info, &e, gain);
}

/* ---------------------------------------------------------------- Retouch */

/* Bilateral filter of the region (m > 0) of an interleaved RGB float image: spatial Gaussian
   sigma ss px, range Gaussian sigma sr levels on the luma difference; pixels outside the
   region are copied. The window (radius 2 ss) is sampled every 1 + floor(ss / 6) px: densely
   up to 128 px, sparsely for larger images so that a 512-px fake costs under ~500 taps per
   pixel instead of 4,000. */
static void bilateral(float *dst, const float *src, const float *m, int size, float ss, float sr)
{
    int rad = (int)ceilf(2.0f * ss), step = 1 + (int)(ss / 6.0f);
    rad -= rad % step;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            size_t i = (size_t)y * size + x;
            const float *p = src + i * 3;
            if (m[i] <= 0.0f) {
                memcpy(dst + i * 3, p, 3 * sizeof(float));
                continue;
            }
            float yp = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
            float acc[3] = {0, 0, 0}, wsum = 0;
            for (int v = -rad; v <= rad; v += step) {
                int yy = y + v;
                if (yy < 0 || yy >= size) continue;
                for (int u = -rad; u <= rad; u += step) {
                    int xx = x + u;
                    if (xx < 0 || xx >= size) continue;
                    const float *q = src + ((size_t)yy * size + xx) * 3;
                    float dl = 0.299f * q[0] + 0.587f * q[1] + 0.114f * q[2] - yp;
                    float w = expf(-0.5f * (float)(u * u + v * v) / (ss * ss) - 0.5f * dl * dl / (sr * sr));
                    acc[0] += w * q[0], acc[1] += w * q[1], acc[2] += w * q[2];
                    wsum += w;
                }
            }
            for (int c = 0; c < 3; c++) dst[i * 3 + c] = acc[c] / wsum;
        }
}

void cored_synth_sharpen_paste(float *out, const float *m, const float *b, const float *s, float *blur, float *tmp,
                               int size, float sigma, float amount)
{
    cored_synth_blur(blur, s, tmp, size, sigma);
    for (size_t i = 0; i < (size_t)size * size; i++)
        for (int c = 0; c < 3; c++) {
            float sharp = s[i * 3 + c] + amount * (s[i * 3 + c] - blur[i * 3 + c]);
            out[i * 3 + c] = m[i] * sharp + (1.0f - m[i]) * b[i * 3 + c];
        }
}

void cored_synth_retouch(float *out, float *m, cored_fake_info *info, const float *b, float *smooth, float *blur,
                         float *tmp, int size, float k, cored_rng *r)
{
    cored_synth_ellipse e = cored_synth_soft_region(m, size, r);
    float ss = k * cored_synth_uniform(r, 1.2f, 2.0f), sr = cored_synth_uniform(r, 15.0f, 30.0f);
    float amount = cored_synth_uniform(r, 1.0f, 2.0f);
    bilateral(smooth, b, m, size, ss, sr);
    cored_synth_sharpen_paste(out, m, b, smooth, blur, tmp, size, k, amount);
    cored_synth_set_info(info, &e, sr);
}
