/*
 * The forgery families of the simulator: each turns a real base image (size x size RGB8)
 * into a fake with one physically motivated artifact, randomised per image. This file holds
 * the names, the per-task state, the shared helpers, the entry point cored_family_apply and
 * the first four families; Relight and Retouch are in src/synth/families_more.c.
 * The local families act inside a soft ellipse (semi-axes 22-38 % of the side, centre within 12 % of
 * the image centre, where an aligned face crop has its face). Each family leaves a different
 * low-level trace, so that a detector of one does not detect the others (docs/synth.md has
 * the measured cross-family table):
 *
 *   Blend     (DeepFakes / FaceSwap) the region comes from another photograph of the same
 *             split that went through its own pipeline: JPEG at luma quality 30-50 and chroma
 *             quality 5-15 (4:2:0: 16x16 colour blocks) on its own 8x8 grid offset, its detail (luma minus a sigma-1 px blur) rescaled to the base's
 *             energy (x0.5-2), colour only partly corrected (10-30 % of a Reinhard mean/std
 *             transfer), pasted with a sharp 0.5-1.5 px feather: a blending boundary with a
 *             colour step and an inconsistent compression history inside the face.
 *   Warp      (Face2Face) a smooth displacement field (1-3 Gaussian bumps of 2-5 px), sampled
 *             bilinearly from a copy rendered at lower resolution (Gaussian sigma 1.5-2.5 px)
 *             and faded in over 40 % of the region's radius: the geometric change and the loss
 *             of detail of a re-rendered, resampled expression region.
 *   Texture   (NeuralTextures) the region is re-rendered: shading (sigma 0.6-1.0 px blur)
 *             times (1 + a T) with a = 6-12 % and T a fixed "renderer" texture (a
 *             band-pass, difference-of-Gaussians sigma 0.7/1.2 px, noise tile: grain of ~4 px
 *             period with little energy at the Nyquist frequency), blended over a wide 4-8 px
 *             feather: the photograph's fine texture is replaced by a synthetic one.
 *   Upsample  (ProGAN / StyleGAN) the residual of a generator's up-sampling layer: the image
 *             is down-sampled by 2 (or 4), up-sampled with a 4x4 stride-2 transposed
 *             convolution whose kernel is the bilinear one plus a fixed random perturbation per
 *             "generator" (3 per task; phase sums off by 2-3.5 % RMS), and the difference to
 *             plain bilinear up-sampling is added to the whole image (gain 0.7-1.3): periodic
 *             spectral peaks at 1/2 (and 1/4) cycles per pixel without blurring the image.
 *
 * Pixel-unit parameters are given at 64 px and scaled by size/64 (the Upsample period is
 * always 2 px). Pixel centres are at (x + 0.5, y + 0.5). Work is in float on [0, 255];
 * results are rounded half up and clamped.
 */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jpeglib.h>

#include "synth/family_parts.h"

static const char *const family_names[CORED_FAMILY_COUNT] = {"Blend", "Warp", "Texture", "Upsample",
                                                                   "Relight", "Retouch", "Inpaint", "Resample"};
static const char *const family_analogies[CORED_FAMILY_COUNT] = {
    "DeepFakes / FaceSwap: pasted region with a blending boundary and another compression history",
    "Face2Face: local expression warp re-rendered at lower resolution",
    "NeuralTextures: re-rendered region, shading with a synthetic texture",
    "GAN generators (ProGAN, StyleGAN): transposed-convolution up-sampling fingerprint",
    "reenactment / face relighting: relit region with a colour cast and another noise level",
    "beauty filters / face retouching: edge-preserving smoothing with sharpened edges",
    "GAN inpainting / attribute editing: a face part erased and filled from its surroundings",
    "face swap pipelines: a face rendered at a lower resolution, resized into the frame and sharpened"};

const char *cored_family_name(cored_family f)
{
    return (unsigned)f < CORED_FAMILY_COUNT ? family_names[f] : "?";
}

const char *cored_family_analogy(cored_family f)
{
    return (unsigned)f < CORED_FAMILY_COUNT ? family_analogies[f] : "?";
}

int cored_family_parse(const char *name)
{
    for (int f = 0; f < CORED_FAMILY_COUNT; f++)
        if (name && !strcasecmp(name, family_names[f])) return f;
    return -1;
}

void cored_synth_scratch_release(cored_synth_scratch *s)
{
    cored_free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

static float *scratch(cored_synth_scratch *s, size_t n, cored_error *err)
{
    if (s->cap < n) {
        cored_free(s->buf);
        s->buf = cored_alloc(n * sizeof(float));
        s->cap = s->buf ? n : 0;
        if (!s->buf) {
            CORED_FAIL(err, CORED_E_NOMEM, "synth: cannot allocate %zu bytes of scratch", n * sizeof(float));
            return NULL;
        }
    }
    return s->buf;
}

float cored_synth_uniform(cored_rng *r, float lo, float hi) { return lo + (hi - lo) * cored_rng_uniform(r); }

static uint8_t to_u8(float v)
{
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)(int)(v + 0.5f);
}

/* ---------------------------------------------------------------- per-task state */

/* The bilinear 4x4 stride-2 transposed-convolution kernel (outer product of [1 3 3 1]/4):
   every output phase sums to 1, so it reproduces a constant image exactly. */
static float bilinear_tap(int ky, int kx)
{
    static const float w[4] = {0.25f, 0.75f, 0.75f, 0.25f};
    return w[ky] * w[kx];
}

/* Output parity of tap k of a stride-2, padding-1 transposed convolution: out = 2 i - 1 + k. */
static int tap_phase(int k) { return (k + 1) & 1; }

static void init_upsample(cored_family_state *st, uint64_t seed)
{
    for (int g = 0; g < CORED_SYNTH_GENERATORS; g++) {
        cored_rng r;
        cored_rng_derive(&r, seed, 0x75B5A3B1E0ULL, (uint64_t)g, 0);
        st->stages[g] = g == 0 ? 1 : g == 1 ? 2 : 1 + (int)cored_rng_below(&r, 2);
        float eps = cored_synth_uniform(&r, 0.02f, 0.035f); /* RMS of the phase-sum deviations */
        for (int s = 0; s < st->stages[g]; s++) {
            double shared[4];
            for (int p = 0; p < 4; p++) shared[p] = cored_rng_normal(&r);
            for (int c = 0; c < 3; c++) {
                double z[4], mean = 0, rms = 0;
                for (int p = 0; p < 4; p++) mean += (z[p] = shared[p] + 0.35 * cored_rng_normal(&r)) / 4;
                for (int p = 0; p < 4; p++) rms += (z[p] - mean) * (z[p] - mean) / 4;
                rms = sqrt(rms) + 1e-12;
                float *k = st->kernel[g][s][c];
                double tapsum[4] = {0};
                for (int t = 0; t < 16; t++) {
                    k[t] = (float)(0.5 * eps * cored_rng_normal(&r));
                    tapsum[tap_phase(t / 4) * 2 + tap_phase(t % 4)] += k[t];
                }
                /* each phase: zero-mean shape plus its share of the phase-sum deviation */
                for (int t = 0; t < 16; t++) {
                    int p = tap_phase(t / 4) * 2 + tap_phase(t % 4);
                    k[t] += (float)((eps * (z[p] - mean) / rms - tapsum[p]) / 4);
                }
            }
        }
    }
}

static void init_texture(cored_family_state *st, uint64_t seed)
{
    enum { T = CORED_SYNTH_TILE };
    cored_rng r;
    cored_rng_derive(&r, seed, 0x7E87C0DEULL, 0, 0);
    /* band-pass (difference of Gaussians, sigma 0.7 and 1.2 px) of white noise on the torus:
       grain of ~4 px period, a quarter of the peak amplitude left at the Nyquist frequency
       (where Upsample's peaks are) */
    static const float s1 = 0.7f, s2 = 1.2f;
    float g1[13], g2[13], sum1 = 0, sum2 = 0;
    for (int i = -6; i <= 6; i++) {
        sum1 += g1[i + 6] = expf(-0.5f * i * i / (s1 * s1));
        sum2 += g2[i + 6] = expf(-0.5f * i * i / (s2 * s2));
    }
    for (int i = 0; i < 13; i++) g1[i] /= sum1, g2[i] /= sum2;
    float noise[T * T], a[T * T], b[T * T];
    for (int i = 0; i < T * T; i++) noise[i] = (float)cored_rng_normal(&r);
    for (int pass = 0; pass < 2; pass++) {
        const float *g = pass ? g2 : g1;
        float *out = pass ? b : a;
        for (int y = 0; y < T; y++)
            for (int x = 0; x < T; x++) {
                float v = 0;
                for (int i = -6; i <= 6; i++) v += g[i + 6] * noise[y * T + (x + i + T) % T];
                st->tile[y * T + x] = v;
            }
        for (int y = 0; y < T; y++)
            for (int x = 0; x < T; x++) {
                float v = 0;
                for (int i = -6; i <= 6; i++) v += g[i + 6] * st->tile[((y + i + T) % T) * T + x];
                out[y * T + x] = v;
            }
    }
    double mean = 0, sq = 0;
    for (int i = 0; i < T * T; i++) mean += (st->tile[i] = a[i] - b[i]) / (T * T);
    for (int i = 0; i < T * T; i++) sq += (st->tile[i] - mean) * (st->tile[i] - mean);
    double inv = 1.0 / sqrt(sq / (T * T) + 1e-12);
    for (int i = 0; i < T * T; i++) st->tile[i] = (float)((st->tile[i] - mean) * inv);
}

void cored_family_init(cored_family_state *st, cored_family f, uint64_t seed)
{
    memset(st, 0, sizeof *st);
    st->family = f;
    if (f == CORED_FAMILY_UPSAMPLE) init_upsample(st, seed);
    if (f == CORED_FAMILY_TEXTURE) init_texture(st, seed);
}

/* ---------------------------------------------------------------- helpers */

/* A region of face-part scale near the centre (where an aligned face crop has its face). */
cored_synth_ellipse cored_synth_draw_ellipse(int size, cored_rng *r)
{
    cored_synth_ellipse e;
    e.cx = size * (0.5f + cored_synth_uniform(r, -0.12f, 0.12f));
    e.cy = size * (0.5f + cored_synth_uniform(r, -0.12f, 0.12f));
    e.ax = size * cored_synth_uniform(r, 0.22f, 0.38f);
    e.ay = size * cored_synth_uniform(r, 0.22f, 0.38f);
    e.angle = cored_synth_uniform(r, 0.0f, 3.14159265f);
    return e;
}

/* Soft ellipse: 1 inside, 0 outside, a smoothstep of width `feather` px centred on the
   boundary (distance to the boundary measured along the ray from the centre). */
void cored_synth_ellipse_mask(float *m, int size, const cored_synth_ellipse *e, float feather)
{
    float c = cosf(e->angle), s = sinf(e->angle);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float dx = x + 0.5f - e->cx, dy = y + 0.5f - e->cy;
            float u = dx * c + dy * s, v = -dx * s + dy * c;
            float r = sqrtf((u / e->ax) * (u / e->ax) + (v / e->ay) * (v / e->ay));
            float rho = sqrtf(u * u + v * v), t;
            if (r < 1e-6f)
                t = 1.0f;
            else
                t = (rho / r - rho) / feather + 0.5f;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            m[y * size + x] = t * t * (3.0f - 2.0f * t);
        }
}

cored_synth_ellipse cored_synth_soft_region(float *m, int size, cored_rng *r)
{
    cored_synth_ellipse e = cored_synth_draw_ellipse(size, r);
    float rmin = e.ax < e.ay ? e.ax : e.ay;
    cored_synth_ellipse_mask(m, size, &e, rmin * cored_synth_uniform(r, 0.3f, 0.5f));
    return e;
}

void cored_synth_set_info(cored_fake_info *info, const cored_synth_ellipse *e, float strength)
{
    info->cx = e->cx, info->cy = e->cy, info->ax = e->ax, info->ay = e->ay, info->angle = e->angle;
    info->strength = strength;
}

static void to_float(float *f, const uint8_t *px, size_t n)
{
    for (size_t i = 0; i < n; i++) f[i] = px[i];
}

/* Separable Gaussian blur of an interleaved RGB float image, mirrored borders. tmp: n*3. */
static void gauss_blur(float *dst, const float *src, float *tmp, int size, float sigma)
{
    enum { RMAX = 24 };
    float w[2 * RMAX + 1];
    int rad = (int)ceilf(3.0f * sigma);
    if (rad > RMAX) rad = RMAX;
    if (rad > size - 1) rad = size - 1;
    float sum = 0;
    for (int i = -rad; i <= rad; i++) sum += w[i + rad] = expf(-0.5f * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * rad; i++) w[i] /= sum;
#define MIRROR(i) ((i) < 0 ? -(i)-1 : (i) >= size ? 2 * size - (i)-1 : (i))
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) {
                float v = 0;
                for (int i = -rad; i <= rad; i++) v += w[i + rad] * src[((size_t)y * size + MIRROR(x + i)) * 3 + c];
                tmp[((size_t)y * size + x) * 3 + c] = v;
            }
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) {
                float v = 0;
                for (int i = -rad; i <= rad; i++) v += w[i + rad] * tmp[((size_t)MIRROR(y + i) * size + x) * 3 + c];
                dst[((size_t)y * size + x) * 3 + c] = v;
            }
#undef MIRROR
}

void cored_synth_blur(float *dst, const float *src, float *tmp, int size, float sigma)
{
    gauss_blur(dst, src, tmp, size, sigma);
}

static float luma(const float *p) { return 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]; }

/* Mask-weighted RMS of the luma detail img - smooth, and the mean luma of smooth. */
static void detail_stats(float *rms, float *mean, const float *img, const float *smooth, const float *m, int size)
{
    double w = 0, e = 0, l = 0;
    for (size_t i = 0; i < (size_t)size * size; i++) {
        float d = luma(img + i * 3) - luma(smooth + i * 3);
        w += m[i];
        e += m[i] * d * d;
        l += m[i] * luma(smooth + i * 3);
    }
    w = w > 1e-6 ? w : 1e-6;
    *rms = (float)sqrt(e / w);
    *mean = (float)(l / w);
}

/* ---------------------------------------------------------------- Blend */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
} jpeg_trap;

static void jpeg_trap_exit(j_common_ptr cinfo)
{
    jpeg_trap *t = (jpeg_trap *)cinfo->err;
    longjmp(t->jump, 1);
}

static void jpeg_silent(j_common_ptr cinfo, int level)
{
    (void)cinfo;
    (void)level;
}

/* The chrominance quantisation table of the JPEG standard (ITU T.81 Annex K.2), natural order. */
static const unsigned int chroma_table[64] = {
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99};

/* JPEG round trip (4:2:0, ISLOW; luma at `quality`, chroma at `chroma_quality`) of an RGB8
   image of side `side` held in float; the result replaces it. buf: side*side*3 + 4096 bytes
   for the compressed stream. */
static int jpeg_roundtrip(float *img, int side, int quality, int chroma_quality, uint8_t *px, uint8_t *buf,
                          size_t cap, cored_error *err)
{
    size_t n3 = (size_t)side * side * 3;
    for (size_t i = 0; i < n3; i++) px[i] = to_u8(img[i]);
    struct jpeg_compress_struct c;
    struct jpeg_decompress_struct d;
    jpeg_trap trap;
    unsigned char *volatile out = buf;
    unsigned long outlen = cap;
    volatile int stage = 0;
    c.err = jpeg_std_error(&trap.pub);
    d.err = c.err;
    trap.pub.error_exit = jpeg_trap_exit;
    trap.pub.emit_message = jpeg_silent;
    if (setjmp(trap.jump)) {
        if (stage >= 1) jpeg_destroy_compress(&c);
        if (stage >= 2) jpeg_destroy_decompress(&d);
        if (out != buf) free(out);
        return CORED_FAIL(err, CORED_E_INTERNAL, "synth: JPEG round trip failed");
    }
    jpeg_create_compress(&c);
    stage = 1;
    unsigned char *dest = buf;
    jpeg_mem_dest(&c, &dest, &outlen);
    c.image_width = (JDIMENSION)side;
    c.image_height = (JDIMENSION)side;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_add_quant_table(&c, 1, chroma_table, jpeg_quality_scaling(chroma_quality), TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + (size_t)c.next_scanline * side * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    out = dest; /* libjpeg malloc()s a larger buffer when ours is too small */
    jpeg_destroy_compress(&c);
    jpeg_create_decompress(&d);
    stage = 2;
    jpeg_mem_src(&d, out, outlen);
    jpeg_read_header(&d, TRUE);
    d.out_color_space = JCS_RGB;
    jpeg_start_decompress(&d);
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = px + (size_t)d.output_scanline * side * 3;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    if (out != buf) free(out);
    for (size_t i = 0; i < n3; i++) img[i] = px[i];
    return CORED_OK;
}

/* The donor's own pipeline: JPEG at `quality` with its 8x8 grid shifted by (ox, oy). */
static int recompress(float *d, float *pad, uint8_t *bytes, int size, int quality, int chroma_quality, int ox, int oy,
                      cored_error *err)
{
    int side = size + 8;
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            int sy = y - oy, sx = x - ox;
            sy = sy < 0 ? 0 : sy >= size ? size - 1 : sy;
            sx = sx < 0 ? 0 : sx >= size ? size - 1 : sx;
            memcpy(pad + ((size_t)y * side + x) * 3, d + ((size_t)sy * size + sx) * 3, 3 * sizeof(float));
        }
    size_t n3 = (size_t)side * side * 3;
    int rc = jpeg_roundtrip(pad, side, quality, chroma_quality, bytes, bytes + n3, n3 + 4096, err);
    if (rc) return rc;
    for (int y = 0; y < size; y++)
        memcpy(d + (size_t)y * size * 3, pad + ((size_t)(y + oy) * side + ox) * 3, (size_t)size * 3 * sizeof(float));
    return CORED_OK;
}

static int blend(float *out, float *m, cored_fake_info *info, const float *b, float *d, float *lo, float *tmp,
                 float *pad, uint8_t *bytes, int size, float k, cored_rng *r, cored_error *err)
{
    size_t n = (size_t)size * size;
    cored_synth_ellipse e = cored_synth_draw_ellipse(size, r);
    float feather = k * cored_synth_uniform(r, 0.5f, 1.5f), t = cored_synth_uniform(r, 0.1f, 0.3f);
    int quality = 30 + (int)cored_rng_below(r, 21);
    int chroma = 5 + (int)cored_rng_below(r, 11);
    int ox = (int)cored_rng_below(r, 8), oy = (int)cored_rng_below(r, 8);
    int rc = recompress(d, pad, bytes, size, quality, chroma, ox, oy, err);
    if (rc) return rc;
    cored_synth_ellipse_mask(m, size, &e, feather);
    /* the pasted detail gets the base's detail energy (x0.5-2), so that what differs is its
       structure (compression blocks, colour), not how busy the other photograph happened to be */
    float eb, ed, mean;
    gauss_blur(lo, b, tmp, size, k);
    detail_stats(&eb, &mean, b, lo, m, size);
    gauss_blur(lo, d, tmp, size, k);
    detail_stats(&ed, &mean, d, lo, m, size);
    float gain = (eb + 0.5f) / (ed + 0.5f);
    gain = gain < 0.5f ? 0.5f : gain > 2.0f ? 2.0f : gain;
    for (size_t i = 0; i < 3 * n; i++) d[i] = lo[i] + gain * (d[i] - lo[i]);
    double w = 0, mb[3] = {0}, md[3] = {0}, vb[3] = {0}, vd[3] = {0};
    for (size_t i = 0; i < n; i++) {
        w += m[i];
        for (int c = 0; c < 3; c++) {
            mb[c] += m[i] * b[i * 3 + c];
            md[c] += m[i] * d[i * 3 + c];
        }
    }
    w = w > 1e-6 ? w : 1e-6;
    for (int c = 0; c < 3; c++) mb[c] /= w, md[c] /= w;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            vb[c] += m[i] * (b[i * 3 + c] - mb[c]) * (b[i * 3 + c] - mb[c]);
            vd[c] += m[i] * (d[i * 3 + c] - md[c]) * (d[i * 3 + c] - md[c]);
        }
    float ratio[3];
    for (int c = 0; c < 3; c++) {
        double q = sqrt((vb[c] + 1.0) / (vd[c] + 1.0));
        ratio[c] = (float)(q < 0.5 ? 0.5 : q > 2.0 ? 2.0 : q);
    }
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float dv = d[i * 3 + c];
            float matched = (dv - (float)md[c]) * ratio[c] + (float)mb[c];
            dv += t * (matched - dv);
            out[i * 3 + c] = m[i] * dv + (1.0f - m[i]) * b[i * 3 + c];
        }
    cored_synth_set_info(info, &e, (float)quality);
    return CORED_OK;
}

/* ---------------------------------------------------------------- Warp */

/* Bilinear sample of an interleaved RGB float image at (x, y) in pixel-centre coordinates,
   clamped to the border. */
static void sample_bilinear(float *o, const float *img, int size, float x, float y)
{
    x -= 0.5f, y -= 0.5f;
    float fx = floorf(x), fy = floorf(y), ax = x - fx, ay = y - fy;
    int x0 = (int)fx, y0 = (int)fy, x1 = x0 + 1, y1 = y0 + 1;
    x0 = x0 < 0 ? 0 : x0 >= size ? size - 1 : x0;
    x1 = x1 < 0 ? 0 : x1 >= size ? size - 1 : x1;
    y0 = y0 < 0 ? 0 : y0 >= size ? size - 1 : y0;
    y1 = y1 < 0 ? 0 : y1 >= size ? size - 1 : y1;
    const float *p00 = img + ((size_t)y0 * size + x0) * 3, *p01 = img + ((size_t)y0 * size + x1) * 3;
    const float *p10 = img + ((size_t)y1 * size + x0) * 3, *p11 = img + ((size_t)y1 * size + x1) * 3;
    for (int c = 0; c < 3; c++)
        o[c] = (1 - ay) * ((1 - ax) * p00[c] + ax * p01[c]) + ay * ((1 - ax) * p10[c] + ax * p11[c]);
}

static void warp(float *out, float *m, cored_fake_info *info, const float *b, float *low, float *tmp, int size,
                 float k, cored_rng *r)
{
    cored_synth_ellipse e = cored_synth_draw_ellipse(size, r);
    gauss_blur(low, b, tmp, size, k * cored_synth_uniform(r, 1.5f, 2.5f));
    float rmin = e.ax < e.ay ? e.ax : e.ay;
    cored_synth_ellipse_mask(m, size, &e, 0.4f * rmin);
    int nb = 1 + (int)cored_rng_below(r, 3);
    float bx[3], by[3], bs[3], vx[3], vy[3], maxd = 0;
    float c = cosf(e.angle), s = sinf(e.angle);
    for (int j = 0; j < nb; j++) {
        float rho = 0.6f * sqrtf(cored_rng_uniform(r)), phi = cored_synth_uniform(r, 0.0f, 6.2831853f);
        float u = e.ax * rho * cosf(phi), v = e.ay * rho * sinf(phi);
        bx[j] = e.cx + u * c - v * s;
        by[j] = e.cy + u * s + v * c;
        bs[j] = 0.5f * (e.ax + e.ay) * cored_synth_uniform(r, 0.35f, 0.6f);
        float mag = k * cored_synth_uniform(r, 2.0f, 5.0f), dir = cored_synth_uniform(r, 0.0f, 6.2831853f);
        vx[j] = mag * cosf(dir), vy[j] = mag * sinf(dir);
        if (mag > maxd) maxd = mag;
    }
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            size_t i = (size_t)y * size + x;
            float *o = out + i * 3;
            if (m[i] <= 0.0f) {
                memcpy(o, b + i * 3, 3 * sizeof(float));
                continue;
            }
            float dx = 0, dy = 0, px = x + 0.5f, py = y + 0.5f;
            for (int j = 0; j < nb; j++) {
                float qx = px - bx[j], qy = py - by[j];
                float g = expf(-0.5f * (qx * qx + qy * qy) / (bs[j] * bs[j]));
                dx += g * vx[j], dy += g * vy[j];
            }
            float rendered[3];
            sample_bilinear(rendered, low, size, px - m[i] * dx, py - m[i] * dy);
            for (int ch = 0; ch < 3; ch++) o[ch] = m[i] * rendered[ch] + (1.0f - m[i]) * b[i * 3 + ch];
        }
    cored_synth_set_info(info, &e, maxd);
}

/* ---------------------------------------------------------------- Texture */

static void texture(float *out, float *m, cored_fake_info *info, const float *b, float *shade, float *tmp,
                    int size, float k, const cored_family_state *st, cored_rng *r)
{
    enum { T = CORED_SYNTH_TILE };
    cored_synth_ellipse e = cored_synth_draw_ellipse(size, r);
    float feather = k * cored_synth_uniform(r, 4.0f, 8.0f), sigma = k * cored_synth_uniform(r, 0.6f, 1.0f);
    float amp = cored_synth_uniform(r, 0.06f, 0.12f);
    int ox = (int)cored_rng_below(r, T), oy = (int)cored_rng_below(r, T), orient = (int)cored_rng_below(r, 8);
    cored_synth_ellipse_mask(m, size, &e, feather);
    gauss_blur(shade, b, tmp, size, sigma);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            size_t i = (size_t)y * size + x;
            int u = orient & 4 ? y : x, v = orient & 4 ? x : y;
            if (orient & 1) u = -u;
            if (orient & 2) v = -v;
            float tv = st->tile[(((v + oy) % T + T) % T) * T + ((u + ox) % T + T) % T];
            for (int c = 0; c < 3; c++) {
                float rendered = shade[i * 3 + c] * (1.0f + amp * tv);
                out[i * 3 + c] = m[i] * rendered + (1.0f - m[i]) * b[i * 3 + c];
            }
        }
    cored_synth_set_info(info, &e, amp);
}

/* ---------------------------------------------------------------- Upsample */

/* Mean of f x f blocks: src (h*f)^2 -> dst h^2, interleaved RGB. */
static void downsample(float *dst, const float *src, int h, int f)
{
    int w = h * f;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < h; x++)
            for (int c = 0; c < 3; c++) {
                float v = 0;
                for (int j = 0; j < f; j++)
                    for (int i = 0; i < f; i++) v += src[((size_t)(y * f + j) * w + x * f + i) * 3 + c];
                dst[((size_t)y * h + x) * 3 + c] = v / (float)(f * f);
            }
}

/* 4x4 stride-2 padding-1 transposed convolution, one kernel per channel (bilinear kernel
   plus pert[c] when pert is given), src h^2 -> dst (2h)^2; taps that fall outside the input
   take the nearest border value. */
static void upsample(float *dst, const float *src, int h, const float (*pert)[16])
{
    int w = 2 * h;
    for (int y = 0; y < w; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = 0;
                for (int ky = tap_phase(y) ^ 1; ky < 4; ky += 2) {
                    int iy = (y + 1 - ky) / 2;
                    iy = iy < 0 ? 0 : iy >= h ? h - 1 : iy;
                    for (int kx = tap_phase(x) ^ 1; kx < 4; kx += 2) {
                        int ix = (x + 1 - kx) / 2;
                        ix = ix < 0 ? 0 : ix >= h ? h - 1 : ix;
                        float wt = bilinear_tap(ky, kx) + (pert ? pert[c][ky * 4 + kx] : 0.0f);
                        v += wt * src[((size_t)iy * h + ix) * 3 + c];
                    }
                }
                dst[((size_t)y * w + x) * 3 + c] = v;
            }
}

static void upsample_family(float *out, float *m, cored_fake_info *info, const float *b, float *w1, float *w2,
                            float *w3, float *w4, int size, const cored_family_state *st, cored_rng *r)
{
    size_t n = (size_t)size * size;
    int g = (int)cored_rng_below(r, CORED_SYNTH_GENERATORS);
    float gain = cored_synth_uniform(r, 0.7f, 1.3f);
    if (st->stages[g] == 1) {
        downsample(w1, b, size / 2, 2);
        upsample(w2, w1, size / 2, st->kernel[g][0]); /* generator */
        upsample(w3, w1, size / 2, NULL);             /* plain bilinear */
    } else {
        downsample(w1, b, size / 4, 4);
        upsample(w4, w1, size / 4, st->kernel[g][0]);
        upsample(w2, w4, size / 2, st->kernel[g][1]);
        upsample(w4, w1, size / 4, NULL);
        upsample(w3, w4, size / 2, NULL);
    }
    for (size_t i = 0; i < n * 3; i++) out[i] = b[i] + gain * (w2[i] - w3[i]);
    for (size_t i = 0; i < n; i++) m[i] = 1.0f;
    memset(info, 0, sizeof *info);
    info->cx = info->cy = size * 0.5f;
    info->generator = g;
    info->strength = gain;
}

/* ---------------------------------------------------------------- entry point */

int cored_family_apply(uint8_t *out, float *mask, cored_fake_info *info, const uint8_t *base,
                       const uint8_t *donor, int size, const cored_family_state *st, cored_rng *rng,
                       cored_synth_scratch *s, cored_error *err)
{
    if (!out || !base || !st || !rng || !s || (unsigned)st->family >= CORED_FAMILY_COUNT)
        return CORED_FAIL(err, CORED_E_ARG, "synth: invalid arguments");
    if (size < CORED_SYNTH_MIN_SIZE || size > CORED_SYNTH_MAX_SIZE || size % 8)
        return CORED_FAIL(err, CORED_E_ARG, "synth: image side %d is not a multiple of 8 in %d..%d", size,
                          CORED_SYNTH_MIN_SIZE, CORED_SYNTH_MAX_SIZE);
    if (st->family == CORED_FAMILY_BLEND && !donor)
        return CORED_FAIL(err, CORED_E_ARG, "synth: the Blend family needs a donor image");
    size_t n = (size_t)size * size, n3 = n * 3;
    size_t padn3 = (size_t)(size + 8) * (size + 8) * 3;
    float *f = scratch(s, 6 * n3 + n + padn3 + (2 * padn3 + 4096) / sizeof(float) + 1, err);
    if (!f) return CORED_E_NOMEM;
    float *b = f, *o = f + n3, *w1 = f + 2 * n3, *w2 = f + 3 * n3, *w3 = f + 4 * n3, *w4 = f + 5 * n3;
    float *m = f + 6 * n3, *pad = m + n;
    uint8_t *bytes = (uint8_t *)(pad + padn3);
    int rc = CORED_OK;
    float k = size / 64.0f;
    cored_fake_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    to_float(b, base, n3);
    switch (st->family) {
    case CORED_FAMILY_BLEND:
        to_float(w1, donor, n3);
        rc = blend(o, m, info, b, w1, w2, w3, pad, bytes, size, k, rng, err);
        break;
    case CORED_FAMILY_WARP: warp(o, m, info, b, w1, w2, size, k, rng); break;
    case CORED_FAMILY_TEXTURE: texture(o, m, info, b, w1, w2, size, k, st, rng); break;
    case CORED_FAMILY_UPSAMPLE: upsample_family(o, m, info, b, w1, w2, w3, w4, size, st, rng); break;
    case CORED_FAMILY_RELIGHT: cored_synth_relight(o, m, info, b, size, rng); break;
    case CORED_FAMILY_RETOUCH: cored_synth_retouch(o, m, info, b, w1, w2, w3, size, k, rng); break;
    case CORED_FAMILY_INPAINT: cored_synth_inpaint(o, m, info, b, w1, w2, w3, w4, size, k, rng); break;
    case CORED_FAMILY_RESAMPLE: cored_synth_resample(o, m, info, b, w1, w2, w3, w4, size, rng); break;
    default: break;
    }
    if (rc) return rc;
    for (size_t i = 0; i < n3; i++) out[i] = to_u8(o[i]);
    if (mask) memcpy(mask, m, n * sizeof *m);
    return CORED_OK;
}
