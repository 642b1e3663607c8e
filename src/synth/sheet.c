/*
 * PNG output of the simulator (libpng, deterministic bytes) and the contact sheet of
 * `cored synth --sheet`: one row per example, columns "REAL" (a base crop of a test-split
 * photograph) and, per family, the fake made from that base and |fake - real| per channel,
 * magnified by the gain printed above the column (chosen so the 99th percentile of the
 * non-zero differences of that family becomes ~200). Tiles are enlarged with nearest
 * neighbour to at least 128 px so single-pixel artifacts stay visible. Labels use a built-in
 * 5x7 bitmap font.
 */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "synth/synth.h"

/* ---------------------------------------------------------------- PNG */

/* libpng's error state and output: the message of png_error, the stream and the errno of
   the first failed write (libpng's own writer reports only "Write Error"). */
typedef struct {
    char msg[256];
    FILE *f;
    int errnum;
} png_err;

static void png_error_fn(png_structp png, png_const_charp msg)
{
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_write_fn(png_structp png, png_bytep data, size_t length)
{
    png_err *e = png_get_io_ptr(png);
    errno = 0;
    if (fwrite(data, 1, length, e->f) == length) return;
    e->errnum = errno ? errno : EIO;
    png_error(png, "write failed");
}

static void png_flush_fn(png_structp png) { (void)png; }

int cored_png_write(const char *path, const uint8_t *rgb, int w, int h, cored_error *err)
{
    if (!path || !rgb || w < 1 || h < 1) return CORED_FAIL(err, CORED_E_ARG, "png: invalid arguments");
    FILE *f = fopen(path, "wb");
    if (!f) return CORED_FAIL(err, CORED_E_IO, "%s: cannot create: %s", path, strerror(errno));
    png_err pe = {"", f, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &pe, png_error_fn, png_warning_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot start the PNG encoder", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(path);
        return CORED_FAIL(err, CORED_E_IO, "%s: cannot write PNG: %s", path, pe.errnum ? strerror(pe.errnum) : pe.msg);
    }
    png_set_write_fn(png, &pe, png_write_fn, png_flush_fn);
    png_set_compression_level(png, 6);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) {
        remove(path);
        return CORED_FAIL(err, CORED_E_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return CORED_OK;
}

/* ---------------------------------------------------------------- 5x7 font */

static const char font_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -.:/()*=|";
static const uint8_t font_rows[][7] = {
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}, /* A B */
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}, /* C D */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}, /* E F */
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, /* G H */
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}, /* I J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}, /* K L */
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* M N */
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}, /* O P */
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}, /* Q R */
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* S T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}, /* U V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}, /* W X */
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}, /* Y Z */
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* 0 1 */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}, /* 2 3 */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}, /* 4 5 */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 6 7 */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}, /* 8 9 */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}, /* space - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}, /* . : */
    {0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10}, {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* / ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}, /* ) * (a times sign) */
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}, {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* = | */
};

/* Draws text (upper-cased letters, digits and the symbols above) at (x, y), scale s. */
static void draw_text(uint8_t *img, int w, int h, int x, int y, int s, const char *text, uint8_t v)
{
    for (; *text; text++, x += 6 * s) {
        char ch = *text >= 'a' && *text <= 'z' ? (char)(*text - 'a' + 'A') : *text;
        const char *at = strchr(font_chars, ch);
        if (!at || !ch) continue;
        const uint8_t *g = font_rows[at - font_chars];
        for (int r = 0; r < 7 * s; r++)
            for (int c = 0; c < 5 * s; c++) {
                int px = x + c, py = y + r;
                if (px < 0 || py < 0 || px >= w || py >= h || !(g[r / s] & (0x10 >> (c / s)))) continue;
                memset(img + ((size_t)py * w + px) * 3, v, 3);
            }
    }
}

/* ---------------------------------------------------------------- sheet */

static void blit(uint8_t *img, int w, int x0, int y0, const uint8_t *tile, int size, int zoom)
{
    for (int y = 0; y < size * zoom; y++)
        for (int x = 0; x < size * zoom; x++)
            memcpy(img + ((size_t)(y0 + y) * w + x0 + x) * 3, tile + ((size_t)(y / zoom) * size + x / zoom) * 3, 3);
}

int cored_synth_sheet(const char *path, const cored_sources *src, const int *split, const cored_family *fams,
                      int nfams, int size, int rows, uint64_t seed, cored_error *err)
{
    if (!path || !src || !split || !fams || nfams < 1 || nfams > CORED_FAMILY_COUNT)
        return CORED_FAIL(err, CORED_E_ARG, "synth sheet: invalid arguments");
    if (rows <= 0) rows = 4;
    if (rows > 16) rows = 16;
    int n = cored_sources_count(src), ntest = 0;
    int test[64];
    for (int i = 0; i < n && ntest < 64; i++)
        if (split[i] == CORED_SYNTH_TEST) test[ntest++] = i;
    if (ntest < 2) return CORED_FAIL(err, CORED_E_ARG, "synth sheet: fewer than 2 test-split sources");

    int zoom = size >= 128 ? 1 : (128 + size - 1) / size, tile = size * zoom, pad = 6, ts = tile >= 128 ? 2 : 1;
    int cols = 1 + 2 * nfams, head = 7 * ts + 2 * pad;
    int W = cols * tile + (cols + 1) * pad, H = head + rows * (tile + pad);
    size_t n3 = (size_t)size * size * 3;
    uint8_t *img = cored_alloc((size_t)W * H * 3);
    uint8_t *tiles = cored_alloc(n3 * (size_t)rows * (2 + nfams));
    cored_family_state *st = cored_alloc(sizeof *st * (size_t)nfams);
    cored_synth_scratch crop = {0}, fam = {0};
    cored_resizer rz = {0};
    int rc = img && tiles && st ? CORED_OK : CORED_FAIL(err, CORED_E_NOMEM, "synth sheet: out of memory");
    for (int f = 0; !rc && f < nfams; f++) cored_family_init(&st[f], fams[f], seed);
    /* tiles: per row, base, donor, then one fake per family */
    for (int r = 0; !rc && r < rows; r++) {
        uint8_t *row = tiles + n3 * (size_t)r * (2 + nfams);
        cored_rng g;
        cored_rng_derive(&g, seed, 0x5EE7ULL, (uint64_t)r, 0);
        rc = cored_sources_crop(row, src, test[r % ntest], size, &g, &rz, &crop, err);
        cored_rng_derive(&g, seed, 0x5EE7ULL, (uint64_t)r, 100);
        if (!rc) rc = cored_sources_crop(row + n3, src, test[(r + 1) % ntest], size, &g, &rz, &crop, err);
        for (int f = 0; !rc && f < nfams; f++) {
            cored_rng_derive(&g, seed, 0x5EE7ULL, (uint64_t)r, 1 + (uint64_t)f);
            rc = cored_family_apply(row + n3 * (2 + f), NULL, NULL, row, row + n3, size, &st[f], &g, &fam, err);
        }
    }
    if (!rc) {
        memset(img, 24, (size_t)W * H * 3);
        draw_text(img, W, H, pad, pad, ts, "REAL", 235);
        uint8_t *diff = cored_alloc(n3);
        if (!diff) rc = CORED_FAIL(err, CORED_E_NOMEM, "synth sheet: out of memory");
        for (int f = 0; !rc && f < nfams; f++) {
            /* gain from the 99th percentile of the non-zero differences of this family */
            long hist[256] = {0}, total = 0;
            for (int r = 0; r < rows; r++) {
                const uint8_t *row = tiles + n3 * (size_t)r * (2 + nfams), *fk = row + n3 * (2 + f);
                for (size_t i = 0; i < n3; i++) {
                    int d = fk[i] > row[i] ? fk[i] - row[i] : row[i] - fk[i];
                    if (d) hist[d]++, total++;
                }
            }
            int p99 = 1;
            for (long acc = 0; p99 < 255 && (acc += hist[p99]) < total * 99 / 100;) p99++;
            int gain = 200 / p99;
            gain = gain < 1 ? 1 : gain > 64 ? 64 : gain;
            char label[32];
            int x = pad + (1 + 2 * f) * (tile + pad);
            draw_text(img, W, H, x, pad, ts, cored_family_name(fams[f]), 235);
            snprintf(label, sizeof label, "DIFF *%d", gain);
            draw_text(img, W, H, x + tile + pad, pad, ts, label, 235);
            for (int r = 0; r < rows; r++) {
                const uint8_t *row = tiles + n3 * (size_t)r * (2 + nfams), *fk = row + n3 * (2 + f);
                for (size_t i = 0; i < n3; i++) {
                    int d = (fk[i] > row[i] ? fk[i] - row[i] : row[i] - fk[i]) * gain;
                    diff[i] = (uint8_t)(d > 255 ? 255 : d);
                }
                int y = head + r * (tile + pad);
                blit(img, W, x, y, fk, size, zoom);
                blit(img, W, x + tile + pad, y, diff, size, zoom);
            }
        }
        for (int r = 0; !rc && r < rows; r++)
            blit(img, W, pad, head + r * (tile + pad), tiles + n3 * (size_t)r * (2 + nfams), size, zoom);
        cored_free(diff);
    }
    if (!rc) rc = cored_png_write(path, img, W, H, err);
    cored_free(img);
    cored_free(tiles);
    cored_free(st);
    cored_synth_scratch_release(&crop);
    cored_synth_scratch_release(&fam);
    cored_resizer_release(&rz);
    return rc;
}
