/*
 * The forgery simulator (src/synth): each family changes the image where it says and
 * leaves the rest untouched and is a pure function of its random stream; the Upsample
 * family has its periodic spectral peaks; Relight changes level, colour and noise, Retouch
 * flattens texture but not edges, each at a scale that follows the image side; Inpaint
 * erases a face part into the membrane of its surroundings with borrowed texture, Resample
 * removes the frequencies above its reduced resolution and sharpens. The data set has the
 * official layout (it opens with cored_dataset_open), balanced classes, splits disjoint by
 * source photograph, real/fake pairs, real images shared by every task but the planted ones
 * (--plant), the same bytes for the same seed whatever the thread count, refusal of
 * existing and foreign folders, recovery from an interrupted run, clear errors for bad
 * options, the contact sheet, and out-of-memory at every allocation. No network: the
 * sources are synthetic PNGs written here.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "harness.h"
#include "synth/synth.h"

#define SIZE 32

/* A textured test photograph: gradients, a few discs, deterministic noise. */
static void make_photo(uint8_t *px, int w, int h, int seed)
{
    cored_rng r;
    cored_rng_seed(&r, (uint64_t)seed, 7);
    float cx[4], cy[4], rad[4], col[4][3];
    for (int k = 0; k < 4; k++) {
        cx[k] = w * cored_rng_uniform(&r), cy[k] = h * cored_rng_uniform(&r);
        rad[k] = 6 + 20 * cored_rng_uniform(&r);
        for (int c = 0; c < 3; c++) col[k][c] = 40 + 180 * cored_rng_uniform(&r);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = 60 + 100.0f * x / w + 40.0f * y / h * (c + 1) / 3 + 12 * sinf(0.7f * x + seed) * cosf(0.5f * y);
                for (int k = 0; k < 4; k++)
                    if ((x - cx[k]) * (x - cx[k]) + (y - cy[k]) * (y - cy[k]) < rad[k] * rad[k]) v = col[k][c];
                v += 10.0f * (cored_rng_uniform(&r) - 0.5f);
                px[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

/* A folder of real photographs: `good` distinct ones of various sizes, plus a byte-identical
   duplicate, one too small, one corrupt PNG and a text file. */
static const char *make_real(const char *name, int good)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), name);
    char path[700];
    snprintf(path, sizeof path, "%s/sub/deeper", dir);
    cored_mkdir_p(path, NULL);
    uint8_t *px = malloc(160 * 120 * 3);
    for (int i = 0; i < good; i++) {
        int w = 60 + 13 * i % 100, h = 50 + 7 * i % 70;
        make_photo(px, w, h, i + 1);
        snprintf(path, sizeof path, "%s/%s%02d.png", dir, i % 3 == 0 ? "sub/deeper/p" : i % 3 == 1 ? "sub/q" : "r", i);
        cored_png_write(path, px, w, h, NULL);
    }
    unsigned char *bytes;
    size_t len;
    snprintf(path, sizeof path, "%s/r02.png", dir);
    if (cored_read_file(path, 1 << 20, &bytes, &len, NULL) == 0) {
        snprintf(path, sizeof path, "%s/zz-duplicate.png", dir);
        write_file(path, bytes, len);
        snprintf(path, sizeof path, "%s/zz-corrupt.png", dir);
        write_file(path, bytes, len / 2);
        cored_free(bytes);
    }
    make_photo(px, 10, 12, 99);
    snprintf(path, sizeof path, "%s/tiny.png", dir);
    cored_png_write(path, px, 10, 12, NULL);
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    write_file(path, "not an image", 12);
    free(px);
    return dir;
}

static const cored_family all_fams[CORED_FAMILY_COUNT] = {
    CORED_FAMILY_BLEND,   CORED_FAMILY_WARP,    CORED_FAMILY_TEXTURE, CORED_FAMILY_UPSAMPLE,
    CORED_FAMILY_RELIGHT, CORED_FAMILY_RETOUCH, CORED_FAMILY_INPAINT, CORED_FAMILY_RESAMPLE};

static cored_synth_opts base_opts(const char *out, const char *real)
{
    cored_synth_opts o = {0};
    o.out = out;
    o.real = real;
    o.tasks = all_fams;
    o.ntasks = CORED_FAMILY_COUNT;
    o.seed = 7;
    o.size = SIZE;
    o.per_class = 6;
    o.eval_per_class = 3;
    o.transfer_per_class = 2;
    o.threads = 2;
    return o;
}

/* ---------------------------------------------------------------- families */

static void test_names(void)
{
    for (int f = 0; f < CORED_FAMILY_COUNT; f++) {
        const char *n = cored_family_name((cored_family)f);
        CHECK_MSG(strchr(n, '_') == NULL, "task name %s has no '_'", n);
        CHECK(cored_family_parse(n) == f);
        char lower[32];
        snprintf(lower, sizeof lower, "%s", n);
        for (char *p = lower; *p; p++) *p = (char)(*p | 0x20);
        CHECK(cored_family_parse(lower) == f);
    }
    CHECK(cored_family_parse("DeepFake") == -1);
    CHECK(cored_family_parse("") == -1);
}

/* Each family changes the pixels its mask says and no others. */
static void test_family_masks(void)
{
    int size = 64;
    size_t n = (size_t)size * size;
    uint8_t base[64 * 64 * 3], donor[64 * 64 * 3], out[64 * 64 * 3];
    float mask[64 * 64];
    make_photo(base, size, size, 3);
    make_photo(donor, size, size, 4);
    cored_synth_scratch s = {0};
    for (int f = 0; f < CORED_FAMILY_COUNT; f++) {
        cored_family_state st;
        cored_family_init(&st, (cored_family)f, 11);
        double inside_sum = 0, inside_n = 0, outside_max = 0, covered = 0;
        for (int rep = 0; rep < 8; rep++) {
            cored_rng r;
            cored_rng_derive(&r, 5, (uint64_t)f, (uint64_t)rep, 0);
            cored_fake_info info;
            cored_error err;
            int rc = cored_family_apply(out, mask, &info, base, donor, size, &st, &r, &s, &err);
            CHECK_MSG(rc == 0, "%s: %s", cored_family_name((cored_family)f), err.msg);
            for (size_t i = 0; i < n; i++) {
                double d = 0;
                for (int c = 0; c < 3; c++) d += fabs((double)out[i * 3 + c] - base[i * 3 + c]) / 3;
                if (mask[i] <= 0.0f && d > outside_max) outside_max = d;
                if (mask[i] > 0.9f) inside_sum += d, inside_n++;
                covered += mask[i] > 0.5f;
            }
        }
        double frac = covered / (8.0 * n), inside = inside_sum / (inside_n > 0 ? inside_n : 1);
        CHECK_MSG(outside_max == 0, "%s changes %g levels outside its mask", cored_family_name((cored_family)f),
                  outside_max);
        CHECK_MSG(inside > 1.5, "%s: mean change inside its region only %.2f levels", cored_family_name((cored_family)f),
                  inside);
        if (f == CORED_FAMILY_UPSAMPLE)
            CHECK_MSG(frac == 1.0, "Upsample is global (covers %.2f)", frac);
        else
            CHECK_MSG(frac > 0.08 && frac < 0.6, "%s region covers %.2f of the image", cored_family_name((cored_family)f),
                      frac);
    }
    cored_synth_scratch_release(&s);
}

/* Share of the energy of a residual (luma, n x n) at the three Nyquist frequencies
   (pi,0), (0,pi), (pi,pi), by Parseval: |R(k)|^2 / (n^2 sum r^2). */
static double nyquist_share(const uint8_t *a, const uint8_t *b, int n)
{
    double sx = 0, sy = 0, sxy = 0, e = 0;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            const uint8_t *p = a + ((size_t)y * n + x) * 3, *q = b + ((size_t)y * n + x) * 3;
            double r = 0.299 * (p[0] - q[0]) + 0.587 * (p[1] - q[1]) + 0.114 * (p[2] - q[2]);
            sx += (x & 1 ? -r : r);
            sy += (y & 1 ? -r : r);
            sxy += ((x + y) & 1 ? -r : r);
            e += r * r;
        }
    return e > 0 ? (sx * sx + sy * sy + sxy * sxy) / ((double)n * n * e) : 0;
}

static void test_upsample_spectrum(void)
{
    int size = 64;
    uint8_t base[64 * 64 * 3], out[64 * 64 * 3], out2[64 * 64 * 3], blur[64 * 64 * 3];
    make_photo(base, size, size, 8);
    cored_family_state st;
    cored_family_init(&st, CORED_FAMILY_UPSAMPLE, 3);
    cored_synth_scratch s = {0};
    double worst = 1;
    int by_gen[CORED_SYNTH_GENERATORS] = {0};
    for (int rep = 0; rep < 12; rep++) {
        cored_rng r;
        cored_rng_derive(&r, 1, 2, (uint64_t)rep, 0);
        cored_fake_info info;
        CHECK(cored_family_apply(out, NULL, &info, base, NULL, size, &st, &r, &s, NULL) == 0);
        by_gen[info.generator]++;
        double share = nyquist_share(out, base, size);
        if (share < worst) worst = share;
    }
    /* the residual's energy sits in three of 4096 frequencies (white noise: 3/4096) */
    CHECK_MSG(worst > 0.25, "Upsample residual: only %.3f of its energy at the Nyquist peaks", worst);
    for (int g = 0; g < CORED_SYNTH_GENERATORS; g++) CHECK_MSG(by_gen[g] > 0, "generator %d never drawn", g);
    /* a local family's residual has no such peaks */
    cored_family_state w;
    cored_family_init(&w, CORED_FAMILY_WARP, 3);
    cored_rng r;
    cored_rng_derive(&r, 1, 3, 0, 0);
    CHECK(cored_family_apply(blur, NULL, NULL, base, NULL, size, &w, &r, &s, NULL) == 0);
    double local = nyquist_share(blur, base, size);
    CHECK_MSG(local < 0.05, "Warp residual has %.3f of its energy at the Nyquist peaks", local);
    /* the generators are fixed per seed: the same seed gives the same kernels */
    cored_family_state st2;
    cored_family_init(&st2, CORED_FAMILY_UPSAMPLE, 3);
    CHECK(memcmp(st.kernel, st2.kernel, sizeof st.kernel) == 0);
    cored_family_init(&st2, CORED_FAMILY_UPSAMPLE, 4);
    CHECK(memcmp(st.kernel, st2.kernel, sizeof st.kernel) != 0);
    /* a constant image: the fingerprint is a checkerboard (phase sums differ), mean kept */
    memset(base, 128, sizeof base);
    cored_rng_derive(&r, 1, 4, 0, 0);
    CHECK(cored_family_apply(out2, NULL, NULL, base, NULL, size, &st, &r, &s, NULL) == 0);
    double mean = 0, dev = 0;
    for (size_t i = 0; i < sizeof base; i++) mean += (double)out2[i] / sizeof base;
    for (size_t i = 0; i < sizeof base; i++) dev += fabs(out2[i] - 128.0) / sizeof base;
    CHECK_MSG(fabs(mean - 128) < 0.6 && dev > 0.5, "flat image: mean %.2f, mean |dev| %.2f", mean, dev);
    cored_synth_scratch_release(&s);
}

/* Every family is a pure function of its rng stream: the same stream gives the same bytes
   and mask, another stream other bytes. */
static void test_family_determinism(void)
{
    int size = 64;
    uint8_t base[64 * 64 * 3], donor[64 * 64 * 3], a[64 * 64 * 3], b[64 * 64 * 3];
    float ma[64 * 64], mb[64 * 64];
    make_photo(base, size, size, 5);
    make_photo(donor, size, size, 6);
    cored_synth_scratch s = {0}, s2 = {0};
    for (int f = 0; f < CORED_FAMILY_COUNT; f++) {
        const char *name = cored_family_name((cored_family)f);
        cored_family_state st;
        cored_family_init(&st, (cored_family)f, 21);
        cored_rng r;
        cored_rng_derive(&r, 3, (uint64_t)f, 1, 0);
        CHECK(cored_family_apply(a, ma, NULL, base, donor, size, &st, &r, &s, NULL) == 0);
        cored_rng_derive(&r, 3, (uint64_t)f, 1, 0);
        CHECK(cored_family_apply(b, mb, NULL, base, donor, size, &st, &r, &s2, NULL) == 0);
        CHECK_MSG(!memcmp(a, b, sizeof a) && !memcmp(ma, mb, sizeof ma), "%s: same stream, other bytes", name);
        cored_rng_derive(&r, 3, (uint64_t)f, 2, 0);
        CHECK(cored_family_apply(b, mb, NULL, base, donor, size, &st, &r, &s2, NULL) == 0);
        CHECK_MSG(memcmp(a, b, sizeof a) != 0, "%s: another stream, the same bytes", name);
    }
    cored_synth_scratch_release(&s);
    cored_synth_scratch_release(&s2);
}

static double luma_d(const uint8_t *p) { return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; }

/* Relight on a flat grey image, where every change is the relighting: the region's level and
   colour change (gain, cast) and it gains noise; its geometry is relative to the image, so
   the same stream gives the same relighting at every size. */
static void test_relight(void)
{
    enum { S = 128 };
    static uint8_t base[S * S * 3], out[S * S * 3];
    static float mask[S * S], mask32[32 * 32];
    cored_family_state st;
    cored_family_init(&st, CORED_FAMILY_RELIGHT, 2);
    cored_synth_scratch s = {0};
    memset(base, 100, sizeof base);
    for (int rep = 0; rep < 8; rep++) {
        double gain64 = 0, cover64 = 0;
        cored_rng r32;
        cored_rng_derive(&r32, 4, 5, (uint64_t)rep, 0);
        CHECK(cored_family_apply(out, mask32, NULL, base, NULL, 32, &st, &r32, &s, NULL) == 0);
        for (int size = 32; size <= 128; size *= 2) {
            int n = size * size;
            cored_rng r;
            cored_rng_derive(&r, 4, 5, (uint64_t)rep, 0);
            cored_fake_info info;
            CHECK(cored_family_apply(out, mask, &info, base, NULL, size, &st, &r, &s, NULL) == 0);
            double sum[3] = {0}, inside = 0, cover = 0, hp = 0, hpn = 0;
            for (int y = 1; y < size - 1; y++)
                for (int x = 1; x < size - 1; x++) {
                    int i = y * size + x;
                    cover += mask[i] > 0.5f;
                    if (mask[i] < 0.999f) continue;
                    for (int c = 0; c < 3; c++) sum[c] += out[i * 3 + c];
                    inside++;
                    /* the pixel minus its 3x3 neighbourhood mean: the noise (the gain field is smooth) */
                    double l = 0;
                    for (int v = -1; v <= 1; v++)
                        for (int u = -1; u <= 1; u++) l += luma_d(out + ((size_t)(y + v) * size + x + u) * 3) / 9;
                    double d = luma_d(out + (size_t)i * 3) - l;
                    hp += d * d, hpn++;
                }
            double mean[3], gain, cast, noise = sqrt(hp / (hpn > 0 ? hpn : 1) * 9 / 8);
            for (int c = 0; c < 3; c++) mean[c] = sum[c] / (inside > 0 ? inside : 1);
            gain = (0.299 * mean[0] + 0.587 * mean[1] + 0.114 * mean[2]) / 100;
            cast = mean[0] / (mean[2] > 1 ? mean[2] : 1);
            if (size == 64) gain64 = gain, cover64 = cover / n;
            CHECK_MSG(fabs(log(gain)) > 0.07 && fabs(log(gain)) < 0.4, "Relight %d px: region gain %.3f", size, gain);
            CHECK_MSG(fabs(log(cast)) > 0.04 && fabs(log(cast)) < 0.2, "Relight %d px: red/blue %.3f", size, cast);
            CHECK_MSG(noise > 0.6 && noise < 3.0, "Relight %d px: noise %.2f levels RMS", size, noise);
            if (size == 128) {
                /* the 128-px region, averaged over 4 x 4 blocks, is the 32-px one */
                double worst = 0;
                for (int y = 0; y < 32; y++)
                    for (int x = 0; x < 32; x++) {
                        double avg = 0;
                        for (int v = 0; v < 4; v++)
                            for (int u = 0; u < 4; u++) avg += mask[(4 * y + v) * size + 4 * x + u] / 16.0;
                        worst = fabs(avg - mask32[y * 32 + x]) > worst ? fabs(avg - mask32[y * 32 + x]) : worst;
                    }
                CHECK_MSG(worst < 0.06, "Relight: the region at 128 px differs from the 32-px one by %.3f", worst);
            }
            if (size != 64 && gain64 > 0) {
                CHECK_MSG(fabs(gain - gain64) < 0.03, "Relight: gain %.3f at %d px, %.3f at 64", gain, size, gain64);
                CHECK_MSG(fabs(cover / n - cover64) < 0.03, "Relight: region covers %.3f at %d px, %.3f at 64",
                          cover / n, size, cover64);
            }
        }
    }
    cored_synth_scratch_release(&s);
}

/* Retouch flattens fine, low-contrast texture inside the region over a window that scales
   with the image side (the same texture, scaled, is flattened as much at 64 and 128 px), and
   keeps a strong edge sharp while adding a halo to it. */
static void test_retouch(void)
{
    enum { S = 128 };
    static uint8_t base[S * S * 3], out[S * S * 3];
    static float mask[S * S];
    cored_family_state st;
    cored_family_init(&st, CORED_FAMILY_RETOUCH, 2);
    cored_synth_scratch s = {0};
    for (int rep = 0; rep < 6; rep++) {
        double kept[2] = {0};
        for (int z = 0, size = 64; size <= 128; z++, size *= 2) {
            double period = 5.0 * size / 64;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) {
                    double v = 128 + 8 * sin(6.2831853 * (x + 0.5) / period) * sin(6.2831853 * (y + 0.5) / period);
                    memset(base + ((size_t)y * size + x) * 3, (int)(v + 0.5), 3);
                }
            cored_rng r;
            cored_rng_derive(&r, 8, 1, (uint64_t)rep, 0);
            CHECK(cored_family_apply(out, mask, NULL, base, NULL, size, &st, &r, &s, NULL) == 0);
            double eb = 0, ef = 0;
            for (int i = 0; i < size * size; i++)
                if (mask[i] >= 0.999f)
                    eb += (base[i * 3] - 128.0) * (base[i * 3] - 128.0), ef += (out[i * 3] - 128.0) * (out[i * 3] - 128.0);
            kept[z] = sqrt(ef / (eb > 0 ? eb : 1));
        }
        CHECK_MSG(kept[0] < 0.6 && kept[1] < 0.6 && fabs(kept[1] - kept[0]) < 0.12,
                  "Retouch keeps %.2f of the texture at 64 px, %.2f of it scaled to 128 px", kept[0], kept[1]);
    }
    /* a vertical step edge through the region: still a step, with over- and undershoot */
    int size = 64;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) memset(base + ((size_t)y * size + x) * 3, x < size / 2 ? 60 : 190, 3);
    cored_rng r;
    cored_rng_derive(&r, 8, 2, 0, 0);
    CHECK(cored_family_apply(out, mask, NULL, base, NULL, size, &st, &r, &s, NULL) == 0);
    int y = size / 2, lo = 255, hi = 0;
    const uint8_t *row = out + (size_t)y * size * 3;
    for (int x = 0; x < size; x++) lo = row[x * 3] < lo ? row[x * 3] : lo, hi = row[x * 3] > hi ? row[x * 3] : hi;
    CHECK_MSG(mask[y * size + size / 2] > 0.99f, "the edge crosses the region");
    CHECK_MSG(lo < 60 - 3 && hi > 190 + 3, "Retouch: no halo at the edge (%d..%d)", lo, hi);
    CHECK_MSG(row[(size / 2 - 2) * 3] <= 70 && row[(size / 2 + 1) * 3] >= 180, "Retouch blurs the edge: %d, %d",
              row[(size / 2 - 2) * 3], row[(size / 2 + 1) * 3]);
    cored_synth_scratch_release(&s);
}

/* Normalised coordinates of pixel (x, y) in the ellipse of info: 1 on its boundary. */
static double ellipse_radius(const cored_fake_info *info, int x, int y)
{
    double dx = x + 0.5 - info->cx, dy = y + 0.5 - info->cy, c = cos(info->angle), s = sin(info->angle);
    double u = (dx * c + dy * s) / info->ax, v = (-dx * s + dy * c) / info->ay;
    return sqrt(u * u + v * v);
}

/* Inpaint: the part is the eyes or the mouth (drawn within its ranges); the fill is the
   harmonic membrane of its surroundings (a flat image stays flat, a linear ramp is
   reproduced), a dark spot inside the part disappears, and fine texture is borrowed at
   x0.8-1.2 of its energy, the same at 64 and 128 px for the same texture scaled. */
static void test_inpaint(void)
{
    enum { S = 128 };
    static uint8_t base[S * S * 3], out[S * S * 3];
    static float mask[S * S];
    cored_family_state st;
    cored_family_init(&st, CORED_FAMILY_INPAINT, 2);
    cored_synth_scratch s = {0};
    int above = 0, below = 0;
    for (int rep = 0; rep < 12; rep++) {
        double ratio[2] = {0};
        for (int z = 0, size = 64; size <= S; z++, size *= 2) {
            int n = size * size;
            cored_rng r;
            cored_fake_info info;
            /* flat: nothing changes, so no brightness cue */
            memset(base, 128, (size_t)n * 3);
            cored_rng_derive(&r, 9, 1, (uint64_t)rep, 0);
            CHECK(cored_family_apply(out, mask, &info, base, NULL, size, &st, &r, &s, NULL) == 0);
            CHECK_MSG(!memcmp(out, base, (size_t)n * 3), "Inpaint changes a flat image");
            double cy = info.cy / size - 0.5;
            CHECK_MSG(fabs(info.cx / size - 0.5) <= 0.081 && fabs(cy) >= 0.049 && fabs(cy) <= 0.181,
                      "Inpaint part centred at (%.3f, %.3f)", info.cx / size, info.cy / size);
            CHECK_MSG(info.ax >= 0.179 * size && info.ax <= 0.301 * size && info.ay >= 0.109 * size &&
                          info.ay <= 0.181 * size && fabs(info.angle) <= 0.261,
                      "Inpaint part %.1f x %.1f px at %.2f rad", info.ax, info.ay, info.angle);
            CHECK_MSG(info.strength >= 0.8f && info.strength <= 1.2f, "Inpaint detail gain %.3f", info.strength);
            if (size == 64) above += cy < 0, below += cy > 0;
            /* a linear ramp (harmonic): the membrane reproduces it */
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    for (int c = 0; c < 3; c++)
                        base[((size_t)y * size + x) * 3 + c] = (uint8_t)(40 + c * 20 + (96.0 * x + 48.0 * y) / size);
            cored_rng_derive(&r, 9, 1, (uint64_t)rep, 0);
            CHECK(cored_family_apply(out, mask, &info, base, NULL, size, &st, &r, &s, NULL) == 0);
            double worst = 0;
            for (int i = 0; i < n * 3; i++) worst = fmax(worst, fabs((double)out[i] - base[i]));
            CHECK_MSG(worst <= 4, "Inpaint %d px: a linear ramp is off by %.0f levels", size, worst);
            /* a dark spot in the part: erased (the surroundings are flat) */
            memset(base, 128, (size_t)n * 3);
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) {
                    double dx = x + 0.5 - info.cx, dy = y + 0.5 - info.cy;
                    if (dx * dx + dy * dy < 0.35 * 0.35 * info.ay * info.ay) memset(base + ((size_t)y * size + x) * 3, 30, 3);
                }
            cored_rng_derive(&r, 9, 1, (uint64_t)rep, 0);
            CHECK(cored_family_apply(out, mask, &info, base, NULL, size, &st, &r, &s, NULL) == 0);
            worst = 0;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    if (ellipse_radius(&info, x, y) < 0.5)
                        for (int c = 0; c < 3; c++) worst = fmax(worst, fabs(out[((size_t)y * size + x) * 3 + c] - 128.0));
            CHECK_MSG(worst < 10, "Inpaint %d px: the spot is still there (%.0f levels)", size, worst);
            /* fine texture: borrowed from elsewhere at about its own energy */
            double period = 5.0 * size / 64;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) {
                    double v = 128 + 10 * sin(6.2831853 * (x + 0.5) / period) * sin(6.2831853 * (y + 0.5) / period);
                    memset(base + ((size_t)y * size + x) * 3, (int)(v + 0.5), 3);
                }
            cored_rng_derive(&r, 9, 1, (uint64_t)rep, 0);
            CHECK(cored_family_apply(out, mask, &info, base, NULL, size, &st, &r, &s, NULL) == 0);
            double eb = 0, ef = 0;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    if (ellipse_radius(&info, x, y) < 0.8) {
                        size_t i = ((size_t)y * size + x) * 3;
                        eb += (base[i] - 128.0) * (base[i] - 128.0), ef += (out[i] - 128.0) * (out[i] - 128.0);
                    }
            ratio[z] = sqrt(ef / (eb > 0 ? eb : 1)) / info.strength;
        }
        CHECK_MSG(ratio[0] > 0.85 && ratio[0] < 1.15 && fabs(ratio[1] - ratio[0]) < 0.05,
                  "Inpaint: texture energy / gain %.3f at 64 px, %.3f at 128", ratio[0], ratio[1]);
    }
    CHECK_MSG(above > 0 && below > 0, "Inpaint parts: %d above the centre, %d below", above, below);
    cored_synth_scratch_release(&s);
}

/* Resample: a flat image stays flat; inside the region the Nyquist frequency (above the
   reduced image's limit) is gone while a slow wave is kept, and a step edge gets the over-
   and undershoot of the sharpening, at 64 and 128 px alike (it acts on the pixel grid); the
   scale is drawn in 0.55-0.8. */
static void test_resample(void)
{
    enum { S = 128 };
    static uint8_t base[S * S * 3], out[S * S * 3];
    static float mask[S * S];
    cored_family_state st;
    cored_family_init(&st, CORED_FAMILY_RESAMPLE, 2);
    cored_synth_scratch s = {0};
    for (int rep = 0; rep < 12; rep++)
        for (int size = 64; size <= S; size *= 2) {
            int n = size * size;
            cored_rng r;
            cored_fake_info info;
            memset(base, 128, (size_t)n * 3);
            cored_rng_derive(&r, 9, 2, (uint64_t)rep, 0);
            CHECK(cored_family_apply(out, mask, &info, base, NULL, size, &st, &r, &s, NULL) == 0);
            CHECK_MSG(!memcmp(out, base, (size_t)n * 3), "Resample changes a flat image");
            CHECK_MSG(info.strength >= 0.55f && info.strength <= 0.8f, "Resample scale %.3f", info.strength);
            /* columns alternating by +-20 (0.5 cycle/px) plus a wave of 0.06 cycle/px */
            double nu = 0.06;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) {
                    double v = 128 + (x & 1 ? 20 : -20) + 30 * cos(6.2831853 * nu * (x + 0.5));
                    memset(base + ((size_t)y * size + x) * 3, (int)(v + 0.5), 3);
                }
            cored_rng_derive(&r, 9, 2, (uint64_t)rep, 0);
            CHECK(cored_family_apply(out, mask, &info, base, NULL, size, &st, &r, &s, NULL) == 0);
            double nyq[2] = {0}, slow[2] = {0};
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) {
                    if (mask[y * size + x] < 0.999f) continue;
                    size_t i = ((size_t)y * size + x) * 3;
                    double w = cos(6.2831853 * nu * (x + 0.5));
                    nyq[0] += (x & 1 ? 1 : -1) * (base[i] - 128.0), nyq[1] += (x & 1 ? 1 : -1) * (out[i] - 128.0);
                    slow[0] += w * (base[i] - 128.0), slow[1] += w * (out[i] - 128.0);
                }
            CHECK_MSG(fabs(nyq[1] / nyq[0]) < 0.15 && slow[1] / slow[0] > 0.95 && slow[1] / slow[0] < 1.3,
                      "Resample %d px, scale %.2f: %.3f of the Nyquist wave and %.3f of the slow one left", size,
                      info.strength, nyq[1] / nyq[0], slow[1] / slow[0]);
            /* a vertical step edge through the region */
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) memset(base + ((size_t)y * size + x) * 3, x < size / 2 ? 60 : 190, 3);
            cored_rng_derive(&r, 9, 2, (uint64_t)rep, 0);
            CHECK(cored_family_apply(out, mask, &info, base, NULL, size, &st, &r, &s, NULL) == 0);
            int y = (int)info.cy, lo = 255, hi = 0;
            for (int x = 0; x < size; x++)
                if (mask[y * size + x] >= 0.999f) {
                    int v = out[((size_t)y * size + x) * 3];
                    lo = v < lo ? v : lo, hi = v > hi ? v : hi;
                }
            CHECK_MSG(lo < 60 - 5 && hi > 190 + 5, "Resample %d px: no over- and undershoot at the edge (%d..%d)", size,
                      lo, hi);
        }
    cored_synth_scratch_release(&s);
}

static void test_family_args(void)
{
    uint8_t a[40 * 40 * 3] = {0}, b[40 * 40 * 3];
    cored_family_state st;
    cored_family_init(&st, CORED_FAMILY_BLEND, 1);
    cored_synth_scratch s = {0};
    cored_rng r;
    cored_rng_seed(&r, 1, 1);
    cored_error err;
    CHECK(cored_family_apply(b, NULL, NULL, a, NULL, 32, &st, &r, &s, &err) == CORED_E_ARG); /* no donor */
    CHECK(cored_family_apply(b, NULL, NULL, a, a, 36, &st, &r, &s, &err) == CORED_E_ARG);   /* not a multiple of 8 */
    CHECK(cored_family_apply(b, NULL, NULL, a, a, 24, &st, &r, &s, &err) == CORED_E_ARG);   /* too small */
    CHECK(cored_family_apply(b, NULL, NULL, a, a, 40, &st, &r, &s, &err) == 0);
    cored_synth_scratch_release(&s);
}

/* ---------------------------------------------------------------- data set */

typedef struct {
    char paths[4096][256];
    int n;
} file_list;

static void list_files(file_list *l, const char *root, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s%.200s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[256];
        snprintf(sub, sizeof sub, "%.120s%s%.120s", rel, rel[0] ? "/" : "", e->d_name);
        char full[1200];
        snprintf(full, sizeof full, "%s/%s", root, sub);
        if (cored_is_dir(full))
            list_files(l, root, sub);
        else if (l->n < 4096)
            snprintf(l->paths[l->n++], sizeof l->paths[0], "%s", sub);
    }
    closedir(d);
}

static int cmp_path(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

/* Whether the file rel has the same bytes under folders a and b. */
static int same_file(const char *a, const char *b, const char *rel)
{
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/%s", a, rel);
    snprintf(pb, sizeof pb, "%s/%s", b, rel);
    unsigned char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = !cored_read_file(pa, 1 << 20, &x, &nx, NULL) && !cored_read_file(pb, 1 << 20, &y, &ny, NULL) &&
               nx == ny && !memcmp(x, y, nx);
    cored_free(x);
    cored_free(y);
    return same;
}

/* 1 when both trees hold the same files with the same bytes. */
static int same_tree(const char *a, const char *b, int *nfiles)
{
    static file_list la, lb;
    la.n = lb.n = 0;
    list_files(&la, a, "");
    list_files(&lb, b, "");
    qsort(la.paths, (size_t)la.n, sizeof la.paths[0], cmp_path);
    qsort(lb.paths, (size_t)lb.n, sizeof lb.paths[0], cmp_path);
    *nfiles = la.n;
    if (la.n != lb.n) return 0;
    for (int i = 0; i < la.n; i++) {
        if (strcmp(la.paths[i], lb.paths[i])) return 0;
        if (!strcmp(la.paths[i], "synth.json")) continue; /* names the output folder */
        int same = same_file(a, b, la.paths[i]);
        if (!same) return 0;
    }
    return 1;
}

static cJSON *read_manifest(const char *root)
{
    char path[700];
    snprintf(path, sizeof path, "%s/synth.json", root);
    unsigned char *text = NULL;
    size_t len;
    if (cored_read_file(path, 1 << 22, &text, &len, NULL)) return NULL;
    cJSON *j = cJSON_Parse((const char *)text);
    cored_free(text);
    return j;
}

static void test_layout(void)
{
    const char *real = make_real("real", 9);
    char out[600];
    snprintf(out, sizeof out, "%s/data", test_tmpdir());
    cored_synth_opts o = base_opts(out, real);
    cored_synth_report rep;
    cored_error err;
    int rc = cored_synth_run(&o, &rep, &err);
    CHECK_MSG(rc == 0, "synth: %s", err.msg);
    if (rc) return;
    CHECK_MSG(rep.nsources == 9, "%d sources", rep.nsources);
    CHECK(rep.sources.duplicates == 1 && rep.sources.too_small == 1 && rep.sources.bad == 1);
    CHECK(rep.split_sources[0] + rep.split_sources[1] + rep.split_sources[2] == 9);
    CHECK(rep.split_sources[1] >= 2 && rep.split_sources[2] >= 2 && rep.split_sources[0] >= 2);
    CHECK_MSG(rep.images == CORED_FAMILY_COUNT * 2L * (6 + 3 + 3 + 2), "%ld images", rep.images);

    /* the official layout, balanced, opened by the data layer */
    const cored_split splits[4] = {CORED_SPLIT_TRAIN, CORED_SPLIT_VAL, CORED_SPLIT_TEST, CORED_SPLIT_TRANSFER};
    const int want[4] = {6, 3, 3, 2};
    for (int t = 0; t < CORED_FAMILY_COUNT; t++)
        for (int s = 0; s < 4; s++) {
            cored_dataset *ds = NULL;
            rc = cored_dataset_open(&ds, out, cored_family_name(all_fams[t]), splits[s], &err);
            CHECK_MSG(rc == 0, "%s %s: %s", cored_family_name(all_fams[t]), cored_split_name(splits[s]), err.msg);
            if (rc) continue;
            CHECK_MSG(cored_dataset_class_count(ds, 0) == want[s] && cored_dataset_class_count(ds, 1) == want[s],
                      "%s %s: %d real, %d fake", cored_family_name(all_fams[t]), cored_split_name(splits[s]),
                      cored_dataset_class_count(ds, 0), cored_dataset_class_count(ds, 1));
            cored_dataset_free(ds);
        }
    char path[700];
    snprintf(path, sizeof path, "%s.synth-tmp", out);
    CHECK_MSG(!cored_is_dir(path), "staging folder removed");
    snprintf(path, sizeof path, "%s/.cored-synth-partial", out);
    CHECK(!cored_is_file(path));

    /* splits disjoint by source: every image's source folder belongs to its split */
    cJSON *j = read_manifest(out);
    CHECK_MSG(j != NULL, "synth.json parses");
    if (!j) return;
    cJSON *list = cJSON_GetObjectItem(j, "source_list");
    CHECK(cJSON_GetArraySize(list) == 9);
    static file_list files;
    files.n = 0;
    list_files(&files, out, "");
    int checked = 0, uses[9][2] = {{0}};
    for (int i = 0; i < files.n; i++) {
        char task[64], split[16], cls[16];
        int src, idx;
        const char *p = files.paths[i];
        if (!strncmp(p, "TransferLearning/", 17)) p += 17;
        if (sscanf(p, "%63[^/]/%15[^/]/%15[^/]/s%d/%d.png", task, split, cls, &src, &idx) != 5) continue;
        CHECK(src >= 0 && src < 9);
        if (src < 0 || src >= 9) continue;
        cJSON *e = cJSON_GetArrayItem(list, src);
        const char *want_split = cJSON_GetStringValue(cJSON_GetObjectItem(e, "split"));
        CHECK_MSG(want_split && !strcmp(want_split, split), "%s: source s%04d belongs to %s", files.paths[i], src,
                  want_split ? want_split : "?");
        if (p == files.paths[i] && !strcmp(task, "Warp") && !strcmp(split, "train")) uses[src][!strcmp(cls, "fake")]++;
        checked++;
    }
    CHECK_MSG(checked == CORED_FAMILY_COUNT * 2 * (6 + 3 + 3 + 2), "%d images checked", checked);
    for (int s = 0; s < 9; s++) CHECK_MSG(uses[s][0] == uses[s][1], "source %d: %d real, %d fake", s, uses[s][0], uses[s][1]);
    cJSON_Delete(j);

    /* pairs: real image i is the same in every task, and fake i is made from it */
    static file_list reals;
    reals.n = 0;
    list_files(&reals, out, "Blend/test/real");
    CHECK(reals.n == 3);
    for (int i = 0; i < reals.n; i++) {
        char a[900], b[900], fake[900];
        const char *rel = reals.paths[i] + strlen("Blend/test/real/");
        snprintf(a, sizeof a, "%s/Blend/test/real/%s", out, rel);
        snprintf(b, sizeof b, "%s/Upsample/test/real/%s", out, rel);
        snprintf(fake, sizeof fake, "%s/Warp/test/fake/%s", out, rel);
        uint8_t pa[SIZE * SIZE * 3], pb[SIZE * SIZE * 3], pf[SIZE * SIZE * 3];
        uint8_t *buf = NULL;
        size_t cap = 0;
        cored_image img = {0};
        cored_resizer rz = {0};
        CHECK(cored_image_read_rgb8(pa, SIZE, a, &buf, &cap, &img, &rz, NULL) == 0);
        CHECK(cored_image_read_rgb8(pb, SIZE, b, &buf, &cap, &img, &rz, NULL) == 0);
        CHECK(cored_image_read_rgb8(pf, SIZE, fake, &buf, &cap, &img, &rz, NULL) == 0);
        CHECK_MSG(!memcmp(pa, pb, sizeof pa), "%s: real images differ between tasks", reals.paths[i]);
        int same = 0;
        for (int k = 0; k < SIZE * SIZE; k++) same += !memcmp(pa + 3 * k, pf + 3 * k, 3);
        CHECK_MSG(same > SIZE * SIZE / 3 && same < SIZE * SIZE, "%s: %d of %d pixels equal in the Warp pair",
                  reals.paths[i], same, SIZE * SIZE);
        cored_free(buf);
        cored_image_release(&img);
        cored_resizer_release(&rz);
    }
}

/* Same seed, same bytes, with 1 or 3 threads; another seed, other bytes. */
static void test_determinism(void)
{
    const char *real = make_real("real-det", 8);
    char a[600], b[600], c[600];
    snprintf(a, sizeof a, "%s/det-a", test_tmpdir());
    snprintf(b, sizeof b, "%s/det-b", test_tmpdir());
    snprintf(c, sizeof c, "%s/det-c", test_tmpdir());
    cored_synth_opts o = base_opts(a, real);
    o.per_class = 4, o.eval_per_class = 2, o.transfer_per_class = 1;
    o.threads = 1;
    cored_error err;
    CHECK_MSG(cored_synth_run(&o, NULL, &err) == 0, "%s", err.msg);
    o.out = b, o.threads = 3;
    CHECK_MSG(cored_synth_run(&o, NULL, &err) == 0, "%s", err.msg);
    int n = 0;
    CHECK_MSG(same_tree(a, b, &n), "1 and 3 threads give the same files (%d)", n);
    CHECK_MSG(n == CORED_FAMILY_COUNT * 2 * (4 + 2 + 2 + 1) + 1, "%d files", n);
    o.out = c, o.seed = 8;
    CHECK_MSG(cored_synth_run(&o, NULL, &err) == 0, "%s", err.msg);
    CHECK_MSG(!same_tree(a, c, &n), "another seed gives other files");
}

/* Files of a and b that differ in bytes (synth.json aside) into diff; -1 when the trees do not
   hold the same paths. */
static int diff_trees(const char *a, const char *b, file_list *diff)
{
    static file_list la, lb;
    la.n = lb.n = diff->n = 0;
    list_files(&la, a, "");
    list_files(&lb, b, "");
    qsort(la.paths, (size_t)la.n, sizeof la.paths[0], cmp_path);
    qsort(lb.paths, (size_t)lb.n, sizeof lb.paths[0], cmp_path);
    if (la.n != lb.n) return -1;
    for (int i = 0; i < la.n; i++) {
        if (strcmp(la.paths[i], lb.paths[i])) return -1;
        if (!strcmp(la.paths[i], "synth.json")) continue;
        int same = same_file(a, b, la.paths[i]);
        if (!same) snprintf(diff->paths[diff->n++], sizeof diff->paths[0], "%s", la.paths[i]);
    }
    return diff->n;
}

static int read_rgb(uint8_t *px, int size, const char *path)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    cored_image img = {0};
    cored_resizer rz = {0};
    int rc = cored_image_read_rgb8(px, size, path, &buf, &cap, &img, &rz, NULL);
    cored_free(buf);
    cored_image_release(&img);
    cored_resizer_release(&rz);
    return rc;
}

/* --plant: in every task after the first, round(F T) of the TransferLearning subset's train
   real images and round(F (N - T)) of the other train real images carry the previous task's
   manipulation and stay labelled real; everything else (fakes, val, test, the first task) is
   what a run without planting writes, byte for byte, whatever the thread count. */
static void test_plant(void)
{
    const char *real = make_real("real-plant", 8);
    char out[600], plain[600], one[600];
    snprintf(out, sizeof out, "%s/plant", test_tmpdir());
    snprintf(plain, sizeof plain, "%s/plant-none", test_tmpdir());
    snprintf(one, sizeof one, "%s/plant-1thread", test_tmpdir());
    /* Blend first: a planted Blend needs its donor, as a Blend fake does */
    const cored_family tasks[3] = {CORED_FAMILY_BLEND, CORED_FAMILY_RETOUCH, CORED_FAMILY_RELIGHT};
    cored_synth_opts o = base_opts(out, real);
    o.tasks = tasks, o.ntasks = 3, o.per_class = 10, o.eval_per_class = 3, o.transfer_per_class = 4;
    o.plant = 0.5f;
    cored_synth_report rep;
    cored_error err;
    int rc = cored_synth_run(&o, &rep, &err);
    CHECK_MSG(rc == 0, "plant: %s", err.msg);
    if (rc) return;
    CHECK_MSG(rep.planted == 2 * (2 + 3), "%ld planted images", rep.planted);
    o.out = one, o.threads = 1;
    CHECK_MSG(cored_synth_run(&o, NULL, &err) == 0, "%s", err.msg);
    int n = 0;
    CHECK_MSG(same_tree(out, one, &n), "planting: 1 and 2 threads give the same files");
    o.out = plain, o.plant = 0.0f, o.threads = 2;
    CHECK_MSG(cored_synth_run(&o, NULL, &err) == 0, "%s", err.msg);

    /* the manifest lists the planted images; exactly those files differ from the plain run */
    cJSON *j = read_manifest(out);
    CHECK(j != NULL);
    if (!j) return;
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "plant")) == 0.5);
    cJSON *jt = cJSON_GetObjectItem(j, "tasks");
    CHECK_MSG(!cJSON_GetObjectItem(cJSON_GetArrayItem(jt, 0), "planted"), "the first task has nothing planted");
    int want[3][10] = {{0}}, planted_files = 0;
    for (int t = 1; t < 3; t++) {
        cJSON *p = cJSON_GetObjectItem(cJSON_GetArrayItem(jt, t), "planted");
        CHECK_MSG(p != NULL, "task %d: planted entry", t);
        if (!p) continue;
        const char *from = cJSON_GetStringValue(cJSON_GetObjectItem(p, "from"));
        CHECK_MSG(from && !strcmp(from, cored_family_name(tasks[t - 1])), "task %d planted from %s", t, from ? from : "?");
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(p, "train")) == 5);
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(p, "transfer")) == 2);
        cJSON *idx;
        int in_transfer = 0, count = 0;
        cJSON_ArrayForEach(idx, cJSON_GetObjectItem(p, "train_real_indices"))
        {
            int i = (int)cJSON_GetNumberValue(idx);
            CHECK(i >= 0 && i < 10);
            if (i < 0 || i >= 10) continue;
            want[t][i] = 1, count++, in_transfer += i < 4;
            planted_files += 1 + (i < 4);
        }
        CHECK_MSG(count == 5 && in_transfer == 2, "task %d: %d planted, %d in the transfer subset", t, count, in_transfer);
    }
    cJSON_Delete(j);
    static file_list diff;
    int nd = diff_trees(out, plain, &diff);
    CHECK_MSG(nd == planted_files, "%d files differ from the run without planting, %d planted", nd, planted_files);
    for (int d = 0; d < diff.n; d++) {
        char task[64], split[16], cls[16];
        int src, idx, t = -1;
        const char *p = diff.paths[d];
        if (!strncmp(p, "TransferLearning/", 17)) p += 17;
        int ok = sscanf(p, "%63[^/]/%15[^/]/%15[^/]/s%d/%d.png", task, split, cls, &src, &idx) == 5;
        for (int k = 0; k < 3; k++)
            if (ok && !strcmp(task, cored_family_name(tasks[k]))) t = k;
        CHECK_MSG(ok && t > 0 && !strcmp(split, "train") && !strcmp(cls, "real") && idx >= 0 && idx < 10 && want[t][idx],
                  "%s differs but is not a planted image", diff.paths[d]);
        if (!(ok && t > 0 && idx >= 0 && idx < 10)) continue;
        /* a planted image is its real base with a local manipulation: some pixels changed,
           not all, and it is a fresh draw, not the previous task's fake of the same index */
        char a[1300], b[1300], fake[1300];
        snprintf(a, sizeof a, "%s/%s", out, diff.paths[d]);
        snprintf(b, sizeof b, "%s/%s", plain, diff.paths[d]);
        snprintf(fake, sizeof fake, "%s/%s/train/fake/s%04d/%06d.png", plain, cored_family_name(tasks[t - 1]), src, idx);
        uint8_t pa[SIZE * SIZE * 3], pb[SIZE * SIZE * 3], pf[SIZE * SIZE * 3];
        CHECK(read_rgb(pa, SIZE, a) == 0 && read_rgb(pb, SIZE, b) == 0 && read_rgb(pf, SIZE, fake) == 0);
        int changed = 0;
        for (int k = 0; k < SIZE * SIZE; k++) changed += memcmp(pa + 3 * k, pb + 3 * k, 3) != 0;
        CHECK_MSG(changed > 0 && changed < SIZE * SIZE * 9 / 10, "%s: %d of %d pixels changed", diff.paths[d], changed,
                  SIZE * SIZE);
        CHECK_MSG(memcmp(pa, pf, sizeof pa) != 0, "%s is a copy of the previous task's fake", diff.paths[d]);
    }
    j = read_manifest(plain);
    CHECK(j && cJSON_GetNumberValue(cJSON_GetObjectItem(j, "plant")) == 0.0);
    CHECK(j && !cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tasks"), 1), "planted"));
    cJSON_Delete(j);
    o = base_opts(out, real), o.plant = 1.5f;
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG && strstr(err.msg, "planted fraction"));
}

/* An existing folder is refused without force; with force only a cored synth folder is
   replaced; an interrupted run's staging folder is cleaned, anything else there refused. */
static void test_refusals(void)
{
    const char *real = make_real("real-ref", 7);
    char out[600], path[700];
    snprintf(out, sizeof out, "%s/ref", test_tmpdir());
    cored_synth_opts o = base_opts(out, real);
    o.ntasks = 1, o.per_class = 2, o.eval_per_class = 1, o.transfer_per_class = 0;
    cored_error err;
    CHECK(cored_synth_run(&o, NULL, &err) == 0);
    snprintf(path, sizeof path, "%s/TransferLearning", out);
    CHECK_MSG(!cored_is_dir(path), "no TransferLearning folder when the subset is 0");
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG);
    CHECK_MSG(strstr(err.msg, "already exists") && strstr(err.hint, "--force"), "%s / %s", err.msg, err.hint);
    o.force = 1;
    o.tasks = all_fams + 1; /* Warp: the old Blend folder must disappear */
    CHECK_MSG(cored_synth_run(&o, NULL, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/Blend", out);
    CHECK_MSG(!cored_is_dir(path), "replaced, not merged");
    snprintf(path, sizeof path, "%s/Warp/train", out);
    CHECK(cored_is_dir(path));

    /* a folder that cored synth did not write survives even --force */
    char foreign[600];
    snprintf(foreign, sizeof foreign, "%s/mine", test_tmpdir());
    cored_mkdir_p(foreign, NULL);
    snprintf(path, sizeof path, "%s/thesis.tex", foreign);
    write_file(path, "precious", 8);
    o.out = foreign;
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG);
    CHECK_MSG(strstr(err.msg, "not written by cored synth"), "%s", err.msg);
    CHECK(cored_is_file(path));

    /* an interrupted run: its staging folder (with the marker) is cleaned and replaced */
    char fresh[600];
    snprintf(fresh, sizeof fresh, "%s/fresh", test_tmpdir());
    snprintf(path, sizeof path, "%s.synth-tmp/Blend/train/real/s0000", fresh);
    cored_mkdir_p(path, NULL);
    snprintf(path, sizeof path, "%s.synth-tmp/.cored-synth-partial", fresh);
    write_file(path, "", 0);
    snprintf(path, sizeof path, "%s.synth-tmp/Blend/train/real/s0000/000000.png", fresh);
    write_file(path, "half", 4);
    o.out = fresh, o.force = 0;
    CHECK_MSG(!cored_is_dir(fresh), "an interrupted run leaves no folder named like the output");
    CHECK_MSG(cored_synth_run(&o, NULL, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/synth.json", fresh);
    CHECK(cored_is_file(path));
    /* a staging-named folder without the marker is not ours */
    char other[600];
    snprintf(other, sizeof other, "%s/other", test_tmpdir());
    snprintf(path, sizeof path, "%s.synth-tmp", other);
    cored_mkdir_p(path, NULL);
    o.out = other;
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG);
    CHECK(cored_is_dir(path));
}

static void test_bad_options(void)
{
    const char *real = make_real("real-bad", 7);
    char out[600];
    snprintf(out, sizeof out, "%s/bad", test_tmpdir());
    cored_error err;
    cored_synth_opts o = base_opts(out, real);
    o.size = 36;
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG && strstr(err.msg, "multiple of 8"));
    o = base_opts(out, real), o.per_class = 0;
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG);
    o = base_opts(out, real), o.transfer_per_class = 7;
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG);
    cored_family twice[2] = {CORED_FAMILY_WARP, CORED_FAMILY_WARP};
    o = base_opts(out, real), o.tasks = twice, o.ntasks = 2;
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG && strstr(err.msg, "twice"));
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-folder", test_tmpdir());
    o = base_opts(out, missing);
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_IO && strstr(err.msg, "no-such-folder"));
    const char *few = make_real("real-few", 5);
    o = base_opts(out, few);
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG && strstr(err.msg, "at least 6"));
    CHECK_MSG(!cored_is_dir(out), "nothing written after a refusal");
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty-real", test_tmpdir());
    cored_mkdir_p(empty, NULL);
    o = base_opts(out, empty);
    CHECK(cored_synth_run(&o, NULL, &err) == CORED_E_ARG && strstr(err.msg, "no .png"));
}

static void test_splits(void)
{
    int split[40];
    for (int n = 6; n <= 40; n++) {
        CHECK(cored_synth_assign_splits(split, n, 3, NULL) == 0);
        int count[3] = {0};
        for (int i = 0; i < n; i++) count[split[i]]++;
        CHECK_MSG(count[1] >= 2 && count[2] >= 2 && count[0] >= 2 && count[0] >= (n < 14 ? n - 4 : n * 6 / 10),
                  "n %d: %d/%d/%d", n, count[0], count[1], count[2]);
    }
    CHECK(cored_synth_assign_splits(split, 5, 3, NULL) == CORED_E_ARG);
}

static void test_sheet(void)
{
    const char *real = make_real("real-sheet", 8);
    char path[600];
    snprintf(path, sizeof path, "%s/sheet.png", test_tmpdir());
    cored_synth_opts o = base_opts(NULL, real);
    o.sheet = path;
    o.sheet_rows = 2;
    cored_error err;
    CHECK_MSG(cored_synth_run(&o, NULL, &err) == 0, "%s", err.msg);
    unsigned char *bytes = NULL;
    size_t len = 0;
    cored_image img = {0};
    CHECK(cored_read_file(path, 1 << 24, &bytes, &len, NULL) == 0);
    CHECK(bytes && cored_image_decode(&img, bytes, len, path, 0, &err) == 0);
    /* 1 + 2 per family columns of 128 px tiles (32 px enlarged 4x), 2 rows, margins */
    int cols = 1 + 2 * CORED_FAMILY_COUNT;
    CHECK_MSG(img.w == cols * 128 + (cols + 1) * 6 && img.h == 14 + 12 + 2 * (128 + 6), "sheet %dx%d", img.w, img.h);
    cored_free(bytes);
    cored_image_release(&img);
}

/* Every allocation may fail: a clean error, nothing leaked (ASan), no half data set. */
static void test_out_of_memory(void)
{
    const char *real = make_real("real-oom", 6);
    char out[600];
    snprintf(out, sizeof out, "%s/oom", test_tmpdir());
    cored_synth_opts o = base_opts(out, real);
    o.ntasks = 2, o.per_class = 2, o.eval_per_class = 1, o.transfer_per_class = 1, o.threads = 1;
    o.plant = 0.5f; /* the planting allocations too */
    cored_error err;
    int failures = 0, k;
    for (k = 1; k < 2000; k++) {
        o.force = 1;
        cored_alloc_fail_at((uint64_t)k);
        int rc = cored_synth_run(&o, NULL, &err);
        cored_alloc_fail_at(0);
        if (rc == 0) break;
        failures++;
        CHECK_MSG(rc == CORED_E_NOMEM, "allocation %d: %s", k, err.msg);
        char partial[700];
        snprintf(partial, sizeof partial, "%s/synth.json", out);
        CHECK(!cored_is_dir(out) || cored_is_file(partial));
    }
    CHECK_MSG(k < 2000 && failures > 10, "%d allocation failures exercised", failures);
}

int main(void)
{
    cored_set_threads(2);
    RUN(test_names);
    RUN(test_family_masks);
    RUN(test_upsample_spectrum);
    RUN(test_family_determinism);
    RUN(test_relight);
    RUN(test_retouch);
    RUN(test_inpaint);
    RUN(test_resample);
    RUN(test_family_args);
    RUN(test_splits);
    RUN(test_layout);
    RUN(test_determinism);
    RUN(test_plant);
    RUN(test_refusals);
    RUN(test_bad_options);
    RUN(test_sheet);
    RUN(test_out_of_memory);
    return test_finish();
}
