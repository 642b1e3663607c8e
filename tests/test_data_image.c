/*
 * Decoding and transforms: every JPEG and PNG flavour the decoder promises (built here
 * with libjpeg/libpng), hostile input (truncation at every byte, zero bytes, text, random
 * bytes, decompression bombs refused before allocation), a PNG without IEND (accepted, as
 * by PIL), FIFOs and folders refused without hanging, I/O errors told apart from
 * undecodable files, the decoder's memory (no allocation in steady state, buffers freed
 * after a very large image), and resize invariants. Bit-exact agreement with
 * PIL/torchvision is checked by tests/parity_resize.py.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "test_data_util.h"

static double mad_vs(const cored_image *img, int seed, int gray)
{
    double s = 0;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++)
            for (int c = 0; c < 3; c++)
                s += fabs((double)img->px[(y * img->w + x) * 3 + c] - tpix(x, y, gray ? 0 : c, seed));
    return s / (img->w * img->h * 3.0);
}

static int decode(cored_image *img, tbuf b, cored_error *err)
{
    return cored_image_decode(img, b.data, b.len, "test", 0, err);
}

static void test_jpeg_rgb_gray_progressive(void)
{
    cored_image img = {0}, img2 = {0};
    cored_error err;
    tbuf b = make_jpeg(37, 23, JCS_RGB, 0, 98, 1);
    CHECK(decode(&img, b, &err) == 0);
    CHECK(img.w == 37 && img.h == 23);
    CHECK_MSG(mad_vs(&img, 1, 0) < 8.0, "baseline JPEG MAD %.2f", mad_vs(&img, 1, 0));
    tbuf p = make_jpeg(37, 23, JCS_RGB, 1, 98, 1);
    CHECK(decode(&img2, p, &err) == 0);
    CHECK_MSG(img2.w == 37 && img2.h == 23 && !memcmp(img.px, img2.px, 37 * 23 * 3),
              "progressive JPEG decodes to the same pixels as baseline");
    free(b.data);
    free(p.data);

    tbuf g = make_jpeg(20, 30, JCS_GRAYSCALE, 0, 98, 2);
    CHECK(decode(&img, g, &err) == 0);
    int same = 1;
    for (int i = 0; i < 20 * 30; i++) same &= img.px[3 * i] == img.px[3 * i + 1] && img.px[3 * i] == img.px[3 * i + 2];
    CHECK_MSG(same, "grayscale JPEG replicated to R=G=B");
    CHECK_MSG(mad_vs(&img, 2, 1) < 4.0, "grayscale MAD %.2f", mad_vs(&img, 2, 1));
    free(g.data);
    cored_image_release(&img);
    cored_image_release(&img2);
}

/* PIL reads CMYK JPEGs as Adobe-inverted: RGB = stored_c * stored_k / 255. */
static void test_jpeg_cmyk(void)
{
    J_COLOR_SPACE spaces[2] = {JCS_CMYK, JCS_YCCK};
    for (int k = 0; k < 2; k++) {
        cored_image img = {0};
        cored_error err;
        tbuf b = make_jpeg(24, 16, spaces[k], 0, 100, 3);
        CHECK_MSG(decode(&img, b, &err) == 0, "CMYK decode: %s", err.msg);
        double s = 0;
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 24; x++)
                for (int c = 0; c < 3; c++) {
                    double want = tpix(x, y, c, 3) * tpix(x, y, 3, 3) / 255.0;
                    s += fabs(img.px[(y * 24 + x) * 3 + c] - want);
                }
        s /= 24 * 16 * 3;
        CHECK_MSG(s < 4.0, "%s MAD %.2f", k ? "YCCK" : "CMYK", s);
        free(b.data);
        cored_image_release(&img);
    }
}

static void test_png_flavours(void)
{
    struct {
        int ct, depth, interlace;
        const char *what;
    } cases[] = {
        {PNG_COLOR_TYPE_RGB, 8, 0, "RGB 8"},         {PNG_COLOR_TYPE_RGB, 8, 1, "RGB interlaced"},
        {PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, "RGBA 8"},  {PNG_COLOR_TYPE_RGB, 16, 0, "RGB 16"},
        {PNG_COLOR_TYPE_RGB_ALPHA, 16, 0, "RGBA 16"}, {PNG_COLOR_TYPE_GRAY, 8, 0, "gray 8"},
        {PNG_COLOR_TYPE_GRAY, 16, 0, "gray 16"},     {PNG_COLOR_TYPE_GRAY, 1, 0, "gray 1"},
        {PNG_COLOR_TYPE_GRAY, 2, 0, "gray 2"},       {PNG_COLOR_TYPE_GRAY, 4, 0, "gray 4"},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, "gray+alpha 8"}, {PNG_COLOR_TYPE_PALETTE, 8, 0, "palette 8"},
        {PNG_COLOR_TYPE_PALETTE, 4, 1, "palette 4 interlaced"},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int w = 19, h = 13, seed = (int)t;
        cored_image img = {0};
        cored_error err;
        tbuf b = make_png(w, h, cases[t].ct, cases[t].depth, cases[t].interlace, seed);
        int rc = decode(&img, b, &err);
        CHECK_MSG(rc == 0, "%s: %s", cases[t].what, err.msg);
        if (rc) {
            free(b.data);
            continue;
        }
        int ok = img.w == w && img.h == h;
        for (int y = 0; y < h && ok; y++)
            for (int x = 0; x < w && ok; x++)
                for (int c = 0; c < 3; c++) {
                    int want;
                    int gray = cases[t].ct == PNG_COLOR_TYPE_GRAY || cases[t].ct == PNG_COLOR_TYPE_GRAY_ALPHA;
                    int v = tpix(x, y, gray ? 0 : c, seed);
                    if (cases[t].ct == PNG_COLOR_TYPE_PALETTE) {
                        int i = tpix(x, y, 0, seed) & 15;
                        if (cases[t].depth == 4) i &= 15;
                        want = c == 0 ? i * 16 : c == 1 ? 255 - i * 16 : i * 7;
                    } else if (cases[t].depth < 8) {
                        int q = v >> (8 - cases[t].depth), maxq = (1 << cases[t].depth) - 1;
                        want = q * 255 / maxq;
                    } else {
                        want = v; /* 16-bit: the high byte */
                    }
                    if (img.px[(y * w + x) * 3 + c] != want) {
                        ok = 0;
                        fprintf(stderr, "  %s: pixel (%d,%d,%d) = %d, want %d\n", cases[t].what, x, y, c,
                                img.px[(y * w + x) * 3 + c], want);
                        break;
                    }
                }
        CHECK_MSG(ok, "%s decodes exactly", cases[t].what);
        free(b.data);
        cored_image_release(&img);
    }
}

/* Every strict prefix of a valid file that cuts into its pixel data is refused, never
   crashes. A PNG missing only its trailing IEND chunk (12 bytes; whole or in part) decodes
   to the full image's pixels, as PIL loads it. */
static void test_truncation_everywhere(void)
{
    tbuf files[4] = {make_jpeg(16, 12, JCS_RGB, 0, 90, 4), make_jpeg(16, 12, JCS_RGB, 1, 90, 5),
                     make_png(16, 12, PNG_COLOR_TYPE_RGB, 8, 0, 6), make_png(16, 12, PNG_COLOR_TYPE_PALETTE, 4, 1, 7)};
    const char *names[4] = {"baseline JPEG", "progressive JPEG", "PNG", "interlaced palette PNG"};
    cored_image img = {0}, full = {0};
    for (int f = 0; f < 4; f++) {
        int is_png = f >= 2, accepted = 0, wrong = 0;
        size_t first = 0;
        cored_error err;
        CHECK(cored_image_decode(&full, files[f].data, files[f].len, "full", 0, &err) == 0);
        size_t iend = files[f].len - 12;
        CHECK(!is_png || !memcmp(files[f].data + iend + 4, "IEND", 4));
        for (size_t n = 0; n < files[f].len; n++) {
            int ok = cored_image_decode(&img, files[f].data, n, "cut", 0, &err) == 0;
            if (ok && is_png && n >= iend) {
                wrong += img.w != full.w || img.h != full.h || memcmp(img.px, full.px, (size_t)full.w * full.h * 3);
                continue;
            }
            if (is_png && n >= iend) {
                wrong++;
                fprintf(stderr, "  %s without (part of) IEND, %zu bytes: %s\n", names[f], n, err.msg);
            }
            if (ok) {
                if (!accepted++) first = n;
            } else if (err.code != CORED_E_FORMAT) {
                accepted += 1000;
            }
        }
        CHECK_MSG(accepted == 0, "%s: %d truncated prefixes accepted (first at %zu of %zu bytes)", names[f],
                  accepted, first, files[f].len);
        CHECK_MSG(wrong == 0, "%s: a PNG missing only IEND decodes to the full pixels", names[f]);
        free(files[f].data);
    }
    /* a damaged IEND (bad CRC) is ignored the same way */
    tbuf p = make_png(9, 7, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, 8);
    p.data[p.len - 1] ^= 0xFF;
    cored_error err;
    CHECK(cored_image_decode(&img, p.data, p.len, "bad-iend.png", 0, &err) == 0 && img.w == 9 && img.h == 7);
    free(p.data);
    cored_image_release(&img);
    cored_image_release(&full);
}

static void test_not_images(void)
{
    cored_image img = {0};
    cored_error err;
    CHECK(cored_image_decode(&img, (const uint8_t *)"", 0, "zero.jpg", 0, &err) == CORED_E_FORMAT);
    CHECK(strstr(err.msg, "zero.jpg") && strstr(err.msg, "empty"));
    const char *text = "this is not an image\n";
    CHECK(cored_image_decode(&img, (const uint8_t *)text, strlen(text), "text.jpg", 0, &err) == CORED_E_FORMAT);
    CHECK(strstr(err.msg, "text.jpg") && strstr(err.msg, "not a JPEG or PNG"));
    /* JPEG and PNG signatures followed by garbage. */
    uint8_t junk[512];
    for (int i = 0; i < 512; i++) junk[i] = (uint8_t)(i * 7919 >> 3);
    junk[0] = 0xFF, junk[1] = 0xD8, junk[2] = 0xFF;
    CHECK(cored_image_decode(&img, junk, sizeof junk, "junk.jpg", 0, &err) == CORED_E_FORMAT);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(junk, sig, 8);
    CHECK(cored_image_decode(&img, junk, sizeof junk, "junk.png", 0, &err) == CORED_E_FORMAT);
    cored_image_release(&img);
}

static uint32_t crc32_bytes(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (uint32_t)-(int32_t)(c & 1));
    }
    return ~c;
}

/* Huge declared dimensions in a tiny file: refused before any pixel buffer exists. */
static void test_bombs(void)
{
    cored_image img = {0};
    cored_error err;
    tbuf j = make_jpeg(8, 8, JCS_RGB, 0, 90, 7);
    for (size_t i = 0; i + 9 < j.len; i++)
        if (j.data[i] == 0xFF && j.data[i + 1] == 0xC0) { /* SOF0: len(2) prec(1) h(2) w(2) */
            j.data[i + 5] = 0xEA, j.data[i + 6] = 0x60; /* 60000 */
            j.data[i + 7] = 0xEA, j.data[i + 8] = 0x60;
            break;
        }
    cored_alloc_stats a0 = cored_alloc_counts();
    CHECK(cored_image_decode(&img, j.data, j.len, "bomb.jpg", 0, &err) == CORED_E_FORMAT);
    cored_alloc_stats a1 = cored_alloc_counts();
    CHECK_MSG(strstr(err.msg, "limit") != NULL, "JPEG bomb message: %s", err.msg);
    CHECK_MSG(a1.allocs == a0.allocs && img.px == NULL, "no pixel memory allocated for a JPEG bomb");
    free(j.data);

    tbuf p = make_png(8, 8, PNG_COLOR_TYPE_RGB, 8, 0, 8);
    /* IHDR data at offset 16 (w, h big-endian), CRC over type + data at 29. */
    uint8_t dims[8] = {0, 0, 0xC3, 0x50, 0, 0, 0xC3, 0x50}; /* 50000 x 50000 */
    memcpy(p.data + 16, dims, 8);
    uint32_t crc = crc32_bytes(p.data + 12, 17);
    p.data[29] = (uint8_t)(crc >> 24), p.data[30] = (uint8_t)(crc >> 16);
    p.data[31] = (uint8_t)(crc >> 8), p.data[32] = (uint8_t)crc;
    a0 = cored_alloc_counts();
    CHECK(cored_image_decode(&img, p.data, p.len, "bomb.png", 0, &err) == CORED_E_FORMAT);
    a1 = cored_alloc_counts();
    CHECK_MSG(strstr(err.msg, "limit") != NULL, "PNG bomb message: %s", err.msg);
    CHECK_MSG(a1.allocs == a0.allocs && img.px == NULL, "no pixel memory allocated for a PNG bomb");
    free(p.data);

    /* A caller's lower limit applies too. */
    tbuf s = make_png(20, 20, PNG_COLOR_TYPE_RGB, 8, 0, 9);
    CHECK(cored_image_decode(&img, s.data, s.len, "small.png", 399, &err) == CORED_E_FORMAT);
    CHECK(cored_image_decode(&img, s.data, s.len, "small.png", 400, &err) == 0);
    free(s.data);
    cored_image_release(&img);
}

static void test_resize(void)
{
    cored_resizer rz = {0};
    cored_error err;
    int sizes[][2] = {{1, 1}, {3, 1000}, {1000, 3}, {128, 128}, {300, 200}, {64, 64}, {127, 129}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int sw = sizes[t][0], sh = sizes[t][1];
        uint8_t *src = malloc((size_t)sw * sh * 3), *dst = malloc(128 * 128 * 3);
        for (int i = 0; i < sw * sh; i++) src[3 * i] = 17, src[3 * i + 1] = 200, src[3 * i + 2] = 255;
        CHECK(cored_resize_rgb8(dst, 128, 128, src, sw, sh, &rz, &err) == 0);
        int constant = 1;
        for (int i = 0; i < 128 * 128; i++)
            constant &= dst[3 * i] == 17 && dst[3 * i + 1] == 200 && dst[3 * i + 2] == 255;
        CHECK_MSG(constant, "a constant %dx%d image stays constant at 128x128", sw, sh);
        free(src);
        free(dst);
    }
    /* Same size: the identity. */
    uint8_t a[16 * 16 * 3], b[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++) a[i] = (uint8_t)(i * 31);
    CHECK(cored_resize_rgb8(b, 16, 16, a, 16, 16, &rz, &err) == 0 && !memcmp(a, b, sizeof a));
    /* 2x downscale of a 2x2-block image gives the blocks (triangle filter of support 2 is
       symmetric over each block pair). */
    uint8_t big[8 * 8 * 3], small[4 * 4 * 3];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            for (int c = 0; c < 3; c++) big[(y * 8 + x) * 3 + c] = (uint8_t)(((x / 2) * 4 + (y / 2)) * 10 + c);
    CHECK(cored_resize_rgb8(small, 4, 4, big, 8, 8, &rz, &err) == 0);
    CHECK(small[0] >= 0 && small[(0 * 4 + 1) * 3] > small[0] && small[(1 * 4 + 0) * 3] > small[0]);
    CHECK(cored_resize_rgb8(small, 0, 4, big, 8, 8, &rz, &err) == CORED_E_ARG);
    cored_resizer_release(&rz);
}

static void test_image_load(void)
{
    const char *dir = fresh_dir("load");
    char path[1100];
    snprintf(path, sizeof path, "%s/a.png", dir);
    tbuf p = make_png(40, 30, PNG_COLOR_TYPE_RGB, 8, 0, 11);
    write_bytes(path, p.data, p.len);
    free(p.data);
    float *x = malloc(32 * 32 * 3 * sizeof(float));
    uint8_t *px = malloc(32 * 32 * 3), *file = NULL;
    size_t cap = 0;
    cored_image img = {0};
    cored_resizer rz = {0};
    cored_error err;
    CHECK(cored_image_load(x, path, 32, &err) == 0);
    CHECK(cored_image_read_rgb8(px, 32, path, &file, &cap, &img, &rz, &err) == 0);
    int ok = 1;
    for (int i = 0; i < 32 * 32 * 3; i++) ok &= x[i] == ((float)px[i] / 255.0f - 0.5f) / 0.5f && x[i] >= -1 && x[i] <= 1;
    CHECK_MSG(ok, "cored_image_load = (x/255 - 0.5)/0.5 of the resized pixels");
    snprintf(path, sizeof path, "%s/missing.png", dir);
    CHECK(cored_image_load(x, path, 32, &err) == CORED_E_IO && strstr(err.msg, "missing.png"));
    cored_free(file);
    cored_image_release(&img);
    cored_resizer_release(&rz);
    free(x);
    free(px);
}

/* Special files: a FIFO (no writer: a blocking open or read would hang forever) and a
   folder named like an image are refused at once, as undecodable, naming the file. */
static void test_special_files(void)
{
    const char *dir = fresh_dir("special");
    char fifo[1100], folder[1100], missing[1100];
    snprintf(fifo, sizeof fifo, "%s/pipe.png", dir);
    snprintf(folder, sizeof folder, "%s/folder.jpg", dir);
    snprintf(missing, sizeof missing, "%s/missing.jpg", dir);
    CHECK(mkfifo(fifo, 0644) == 0);
    CHECK(mkdir(folder, 0755) == 0);
    alarm(20); /* a hang fails the test instead of blocking it */
    cored_decoder dec;
    cored_decoder_init(&dec);
    uint8_t px[8 * 8 * 3];
    cored_error err;
    int rc = cored_decoder_read_rgb8(&dec, px, 8, fifo, &err);
    CHECK_MSG(rc == CORED_E_FORMAT && strstr(err.msg, fifo) && strstr(err.msg, "FIFO"), "FIFO: %d %s", rc, err.msg);
    rc = cored_decoder_read_rgb8(&dec, px, 8, folder, &err);
    CHECK_MSG(rc == CORED_E_FORMAT && strstr(err.msg, "folder"), "folder: %d %s", rc, err.msg);
    float x[8 * 8 * 3];
    CHECK(cored_image_load(x, fifo, 8, &err) == CORED_E_FORMAT);
    /* A file that cannot be opened is an I/O error (retried once), not a bad image. */
    rc = cored_decoder_read_rgb8(&dec, px, 8, missing, &err);
    CHECK_MSG(rc == CORED_E_IO && strstr(err.msg, missing) && strstr(err.hint, "twice"), "missing: %d %s / %s", rc,
              err.msg, err.hint);
    CHECK(cored_decoder_read_rgb8(&dec, px, 0, fifo, &err) == CORED_E_ARG);
    CHECK(cored_decoder_read_rgb8(&dec, px, CORED_MAX_MODEL_SIDE + 1, fifo, &err) == CORED_E_ARG);
    alarm(0);
    cored_decoder_release(&dec);
}

/* One decoder reused: no allocation once it has seen the largest image (JPEG and PNG rows
   included); an image that leaves its buffers above keep_bytes frees them afterwards. */
static void test_decoder_memory(void)
{
    const char *dir = fresh_dir("decoder");
    char path[8][1100];
    for (int i = 0; i < 8; i++) {
        snprintf(path[i], sizeof path[i], "%s/%d.%s", dir, i, i % 2 ? "png" : "jpg");
        tbuf b = i % 4 == 0 ? make_jpeg(40, 30, JCS_GRAYSCALE, 0, 90, i)
                 : i % 4 == 2 ? make_jpeg(40, 30, JCS_CMYK, 1, 90, i)
                              : make_png(40, 30, i % 4 == 1 ? PNG_COLOR_TYPE_PALETTE : PNG_COLOR_TYPE_GRAY_ALPHA, 8,
                                         i == 3, i);
        write_bytes(path[i], b.data, b.len);
        free(b.data);
    }
    cored_decoder dec;
    cored_decoder_init(&dec);
    uint8_t px[16 * 16 * 3];
    cored_error err;
    int ok = 1;
    for (int i = 0; i < 8; i++) ok &= cored_decoder_read_rgb8(&dec, px, 16, path[i], &err) == 0;
    cored_alloc_stats a0 = cored_alloc_counts();
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 8; i++) ok &= cored_decoder_read_rgb8(&dec, px, 16, path[i], &err) == 0;
    cored_alloc_stats a1 = cored_alloc_counts();
    CHECK_MSG(ok, "decodes: %s", err.msg);
    CHECK_MSG(a1.allocs == a0.allocs, "steady state: %llu allocations for 24 images",
              (unsigned long long)(a1.allocs - a0.allocs));
    size_t small = cored_decoder_bytes(&dec);
    CHECK(small > 0 && small < (1u << 20));

    /* A 4200 x 4200 PNG (17.6 Mpx: 70 MiB of pixels) is decoded, then its buffers go. */
    char big[1100];
    snprintf(big, sizeof big, "%s/big.png", dir);
    tbuf b = make_png(4200, 4200, PNG_COLOR_TYPE_GRAY, 1, 0, 3);
    write_bytes(big, b.data, b.len);
    free(b.data);
    uint8_t ref[16 * 16 * 3];
    CHECK(cored_decoder_read_rgb8(&dec, ref, 16, big, &err) == 0);
    CHECK_MSG(cored_decoder_bytes(&dec) == 0, "buffers freed after a 17.6 Mpx image (%zu bytes kept)",
              cored_decoder_bytes(&dec));
    /* the same image through the old entry point gives the same pixels and frees too */
    uint8_t *file = NULL;
    size_t cap = 0;
    cored_image img = {0};
    cored_resizer rz = {0};
    CHECK(cored_image_read_rgb8(px, 16, big, &file, &cap, &img, &rz, &err) == 0 && !memcmp(px, ref, sizeof px));
    CHECK(file == NULL && cap == 0 && img.px == NULL && img.scratch == NULL && rz.tmp == NULL);
    /* a lower limit applies to failures too (a corrupt file leaves its buffers) */
    dec.keep_bytes = 1000;
    CHECK(cored_decoder_read_rgb8(&dec, px, 16, path[1], &err) == 0 && cored_decoder_bytes(&dec) == 0);
    cored_decoder_release(&dec);
    CHECK(dec.keep_bytes == 1000 && dec.file == NULL);
}

/* Composition without flip or CutMix is the normalisation table, for every byte value;
   with flip it is the mirror image. */
static void test_compose_normalise(void)
{
    uint8_t px[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++) px[i] = (uint8_t)(i * 7);
    float lut[256], out[16 * 16 * 3], mir[16 * 16 * 3];
    cored_normalize_lut(lut);
    int exact = 1;
    for (int v = 0; v < 256; v++) exact &= lut[v] == ((float)v / 255.0f - 0.5f) / 0.5f;
    CHECK(exact && lut[0] == -1.0f && lut[255] == 1.0f);
    const uint8_t *src[1] = {px};
    uint8_t flip[1] = {0};
    cored_compose_sample(out, 0, src, flip, NULL, NULL, NULL, 16, lut);
    flip[0] = 1;
    cored_compose_sample(mir, 0, src, flip, NULL, NULL, NULL, 16, lut);
    int same = 1, mirrored = 1;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            for (int c = 0; c < 3; c++) {
                same &= out[(y * 16 + x) * 3 + c] == lut[px[(y * 16 + x) * 3 + c]];
                mirrored &= mir[(y * 16 + x) * 3 + c] == lut[px[(y * 16 + 15 - x) * 3 + c]];
            }
    CHECK_MSG(same, "plain composition equals the normalisation table");
    CHECK_MSG(mirrored, "flipped composition is the mirror image");

    /* CutMix: inside the box the (flipped) partner, outside the sample itself. */
    uint8_t other[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++) other[i] = (uint8_t)(255 - i * 3);
    const uint8_t *pair[2] = {px, other};
    uint8_t flips[2] = {0, 1}, marked[2] = {1, 0};
    int partner[2] = {1, 0};
    cored_cutmix_box box = {1, 3, 11, 5, 9, 0.5};
    cored_compose_sample(out, 0, pair, flips, partner, marked, &box, 16, lut);
    int ok = 1;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            for (int c = 0; c < 3; c++) {
                int in = x >= 3 && x < 11 && y >= 5 && y < 9;
                float want = in ? lut[other[(y * 16 + 15 - x) * 3 + c]] : lut[px[(y * 16 + x) * 3 + c]];
                ok &= out[(y * 16 + x) * 3 + c] == want;
            }
    CHECK_MSG(ok, "CutMix box from the flipped partner, the rest unchanged");
}

int main(void)
{
    cored_alloc_stats before = cored_alloc_counts();
    RUN(test_jpeg_rgb_gray_progressive);
    RUN(test_jpeg_cmyk);
    RUN(test_png_flavours);
    RUN(test_truncation_everywhere);
    RUN(test_not_images);
    RUN(test_bombs);
    RUN(test_resize);
    RUN(test_image_load);
    RUN(test_special_files);
    RUN(test_decoder_memory);
    RUN(test_compose_normalise);
    cored_alloc_stats after = cored_alloc_counts();
    CHECK_MSG(after.allocs - before.allocs == after.frees - before.frees, "every allocation freed (%llu vs %llu)",
              (unsigned long long)(after.allocs - before.allocs), (unsigned long long)(after.frees - before.frees));
    return test_finish();
}
