/*
 * Helpers of the data-path tests: encode small JPEG and PNG images in memory with
 * libjpeg-turbo and libpng (every colour type the decoder must handle), write files and
 * build data folders in the official layout.
 */
#ifndef CORED_TEST_DATA_UTIL_H
#define CORED_TEST_DATA_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "data/data.h"

typedef struct {
    unsigned char *data;
    size_t len, cap;
} tbuf;

/* A smooth, colourful test pattern; `seed` shifts it so images differ. */
static inline uint8_t tpix(int x, int y, int c, int seed)
{
    return (uint8_t)((x * (3 + c) + y * (5 - c) + seed * 37 + ((x * y) >> 3)) & 0xFF);
}

/* Encodes a w x h JPEG from pixels of tpix: cs = JCS_RGB, JCS_GRAYSCALE, JCS_CMYK (stored
   as CMYK) or JCS_YCCK (CMYK input stored as YCCK); CMYK samples are the stored values, as
   Adobe writes them (inverted). */
static inline tbuf make_jpeg(int w, int h, J_COLOR_SPACE cs, int progressive, int quality, int seed)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    int ycck = cs == JCS_YCCK;
    if (ycck) cs = JCS_CMYK;
    int comps = cs == JCS_GRAYSCALE ? 1 : cs == JCS_CMYK ? 4 : 3;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &outlen);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    if (ycck) jpeg_set_colorspace(&c, JCS_YCCK);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc((size_t)w * comps);
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < w; x++)
            for (int k = 0; k < comps; k++) row[x * comps + k] = tpix(x, y, k, seed);
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    tbuf b = {out, outlen, outlen};
    return b;
}

static inline void tbuf_png_write(png_structp png, png_bytep data, size_t n)
{
    tbuf *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

static inline void tbuf_png_flush(png_structp png) { (void)png; }

/* Encodes a PNG of colour type `ct` and bit depth `depth`; samples from tpix (scaled to the
   bit depth). Palette images use a 16-colour palette and tRNS. */
static inline tbuf make_png(int w, int h, int ct, int depth, int interlace, int seed)
{
    tbuf b = {NULL, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_set_write_fn(png, &b, tbuf_png_write, tbuf_png_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ct,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[16];
        png_byte trans[16];
        for (int i = 0; i < 16; i++) {
            pal[i].red = (png_byte)(i * 16);
            pal[i].green = (png_byte)(255 - i * 16);
            pal[i].blue = (png_byte)(i * 7);
            trans[i] = (png_byte)(i * 10);
        }
        png_set_PLTE(png, info, pal, 16);
        png_set_tRNS(png, info, trans, 16, NULL);
    }
    png_write_info(png, info);
    int ch = ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_PALETTE ? 1
             : ct == PNG_COLOR_TYPE_GRAY_ALPHA                        ? 2
             : ct == PNG_COLOR_TYPE_RGB                               ? 3
                                                                      : 4;
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) {
        rows[y] = calloc(1, rowbytes);
        for (int x = 0; x < w; x++)
            for (int k = 0; k < ch; k++) {
                int v = tpix(x, y, k, seed);
                size_t s = (size_t)x * ch + k;
                if (ct == PNG_COLOR_TYPE_PALETTE) v &= 15;
                if (depth == 16) {
                    rows[y][2 * s] = (png_byte)v;
                    rows[y][2 * s + 1] = (png_byte)(255 - v);
                } else if (depth == 8) {
                    rows[y][s] = (png_byte)v;
                } else {
                    int vals = 8 / depth, shift = 8 - depth * (int)(s % (size_t)vals + 1);
                    int q = v >> (8 - depth);
                    if (ct == PNG_COLOR_TYPE_PALETTE) q = v & ((1 << depth) - 1);
                    rows[y][s / (size_t)vals] |= (png_byte)(q << shift);
                }
            }
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    for (int y = 0; y < h; y++) free(rows[y]);
    free(rows);
    return b;
}

static inline int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t k = n ? fwrite(data, 1, n, f) : 0;
    fclose(f);
    return k == n ? 0 : -1;
}

/* mkdir -p of dirname(path). */
static inline void make_parent(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0777);
            *p = '/';
        }
}

/* Writes a small JPEG (seed-dependent) at dir/rel, creating folders. */
static inline void put_jpeg(const char *dir, const char *rel, int w, int h, int seed)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    make_parent(path);
    tbuf b = make_jpeg(w, h, JCS_RGB, 0, 90, seed);
    write_bytes(path, b.data, b.len);
    free(b.data);
}

static inline void put_png(const char *dir, const char *rel, int w, int h, int seed)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    make_parent(path);
    tbuf b = make_png(w, h, PNG_COLOR_TYPE_RGB, 8, 0, seed);
    write_bytes(path, b.data, b.len);
    free(b.data);
}

static inline void put_text(const char *dir, const char *rel, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    make_parent(path);
    write_bytes(path, text, strlen(text));
}

/* A fresh sub-folder of the test's temporary folder. */
static inline const char *fresh_dir(const char *name)
{
    static char buf[8][1024];
    static int k;
    char *d = buf[k++ % 8];
    snprintf(d, 1024, "%s/%s", test_tmpdir(), name);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) return d;
    mkdir(d, 0777);
    return d;
}

#endif
