/*
 * Image decoding from memory to 8-bit RGB with libjpeg-turbo and libpng, giving the pixels
 * PIL gives after Image.open(f).convert("RGB") (torchvision's pil_loader):
 *   JPEG: libjpeg defaults (ISLOW DCT, fancy upsampling) as PIL uses them; grayscale is
 *         replicated; CMYK/YCCK is read with Adobe's inverted convention (PIL's "CMYK;I")
 *         and converted as PIL's cmyk2rgb does; progressive and arithmetic-coded files work.
 *   PNG:  palette expanded, 1/2/4-bit gray scaled to 8 bits, 16-bit reduced to the high
 *         byte (PIL's "RGB;16B"), alpha dropped (not composited), gamma/ICC ignored.
 * EXIF orientation is ignored, as by PIL's loader. Hostile input: libjpeg's error_exit and
 * libpng's errors longjmp back here; the pixel count is checked against a limit after the
 * header and before any pixel memory is allocated (decompression bombs); truncated data is
 * an error (libjpeg's "premature end" warning is promoted); progressive JPEGs with absurd
 * scan counts are cut off. A PNG whose pixels are complete but whose trailing chunks (IEND)
 * are missing or damaged is accepted, as PIL accepts it.
 *
 * Files are opened non-blocking and checked with fstat before a byte is read, so a FIFO or
 * device in a data folder is refused instead of hanging the reader. Every buffer (file,
 * pixels, rows, resize) lives in a grow-only cored_decoder that is freed when it grows past
 * CORED_DECODER_KEEP_BYTES.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "data/data.h"

#define MAX_JPEG_SCANS 500
#define MAX_JPEG_MEMORY (1L << 30)
#define MAX_SIDE 65535

void cored_image_release(cored_image *img)
{
    if (!img) return;
    cored_free(img->px);
    cored_free(img->scratch);
    memset(img, 0, sizeof *img);
}

/* Grow-only row scratch of at least `bytes`; NULL when out of memory. */
static uint8_t *scratch(cored_image *img, size_t bytes)
{
    if (bytes > img->scratch_cap) {
        uint8_t *p = cored_alloc(bytes);
        if (!p) return NULL;
        cored_free(img->scratch);
        img->scratch = p;
        img->scratch_cap = bytes;
    }
    return img->scratch;
}

/* Makes room for w*h*channels bytes after checking the pixel limit. */
static int reserve(cored_image *img, int w, int h, int channels, size_t max_pixels, const char *name,
                   cored_error *err)
{
    if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: invalid image size %dx%d", name, w, h);
    size_t pixels = (size_t)w * (size_t)h;
    if (pixels > max_pixels)
        return CORED_FAIL(err, CORED_E_FORMAT,
                          "%s: image of %dx%d = %zu pixels is above the limit of %zu (refused as a "
                          "possible decompression bomb)",
                          name, w, h, pixels, max_pixels);
    size_t bytes = pixels * (size_t)channels;
    if (bytes > img->cap) {
        uint8_t *p = cored_alloc(bytes);
        if (!p) return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate %zu bytes", name, bytes);
        cored_free(img->px);
        img->px = p;
        img->cap = bytes;
    }
    return CORED_OK;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int truncated;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void jpeg_emit(j_common_ptr cinfo, int level)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    /* level -1 is a warning about corrupt data; a premature end means a truncated file,
       which PIL refuses too ("image file is truncated"). Other warnings are tolerated. */
    if (level == -1 && e->pub.msg_code == JWRN_JPEG_EOF) e->truncated = 1;
    if (level == -1) e->pub.num_warnings++;
}

static void jpeg_progress(j_common_ptr cinfo)
{
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MAX_JPEG_SCANS) {
        jpeg_err *e = (jpeg_err *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "more than %d scans", MAX_JPEG_SCANS);
        longjmp(e->jump, 1);
    }
}

/* PIL's MULDIV255 and cmyk2rgb on Adobe-inverted samples: with c' = 255 - stored. */
static inline uint8_t muldiv255(int a, int b)
{
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static int decode_jpeg(cored_image *img, const uint8_t *data, size_t len, const char *name,
                       size_t max_pixels, cored_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    struct jpeg_progress_mgr progress;
    int rc = CORED_OK;

    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit;
    jerr.pub.emit_message = jpeg_emit;
    jerr.truncated = 0;
    jerr.msg[0] = '\0';
    if (setjmp(jerr.jump)) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: corrupt JPEG: %s", name, jerr.msg);
        goto fail;
    }
    jpeg_create_decompress(&cinfo);
    /* Defence in depth behind the pixel limit: progressive images keep every coefficient
       in memory; above this libjpeg-turbo fails instead of allocating. */
    cinfo.mem->max_memory_to_use = MAX_JPEG_MEMORY;
    progress.progress_monitor = jpeg_progress;
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);

    int w = (int)cinfo.image_width, h = (int)cinfo.image_height;
    J_COLOR_SPACE in_cs = cinfo.jpeg_color_space;
    int cmyk = in_cs == JCS_CMYK || in_cs == JCS_YCCK;
    if (cmyk)
        cinfo.out_color_space = JCS_CMYK;
    else if (in_cs == JCS_GRAYSCALE)
        cinfo.out_color_space = JCS_GRAYSCALE;
    else if (in_cs == JCS_YCbCr || in_cs == JCS_RGB)
        cinfo.out_color_space = JCS_RGB;
    else {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: unsupported JPEG colour space (%d components)", name,
                        cinfo.num_components);
        goto fail;
    }
    rc = reserve(img, w, h, 3, max_pixels, name, err);
    if (rc) goto fail;

    jpeg_start_decompress(&cinfo);
    int oc = cinfo.output_components;
    if ((int)cinfo.output_width != w || (int)cinfo.output_height != h || oc < 1 || oc > 4) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: unexpected JPEG output geometry", name);
        goto fail;
    }
    uint8_t *rowv = NULL; /* not volatile: never read after a longjmp */
    if (oc != 3) {
        rowv = scratch(img, (size_t)w * (size_t)oc);
        if (!rowv) {
            rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate a row", name);
            goto fail;
        }
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        uint8_t *out = img->px + (size_t)y * (size_t)w * 3;
        JSAMPROW rp = oc == 3 ? out : rowv;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: truncated JPEG", name);
            goto fail;
        }
        if (oc == 1) {
            for (int x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = rowv[x];
        } else if (oc == 4) {
            for (int x = 0; x < w; x++) {
                const uint8_t *s = rowv + 4 * x;
                int nk = s[3]; /* inverted K: 255 - k */
                for (int c = 0; c < 3; c++) {
                    int v = nk - muldiv255(255 - s[c], nk);
                    out[3 * x + c] = (uint8_t)(v < 0 ? 0 : v);
                }
            }
        }
        if (jerr.truncated) break;
    }
    if (jerr.truncated) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: truncated JPEG (premature end of data)", name);
        goto fail;
    }
    jpeg_finish_decompress(&cinfo);
    if (jerr.truncated) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: truncated JPEG (premature end of data)", name);
        goto fail;
    }
    jpeg_destroy_decompress(&cinfo);
    img->w = w;
    img->h = h;
    return CORED_OK;
fail:
    jpeg_destroy_decompress(&cinfo);
    return rc;
}

/* ---------------------------------------------------------------- PNG */

typedef struct {
    const uint8_t *data;
    size_t len, pos;
    char msg[256];
    jmp_buf jump;
    /* Set once png_read_image has returned (every pixel is in place); read after a longjmp,
       so kept here rather than in locals. */
    int image_done, w, h, channels;
} png_src;

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) png_error(png, "truncated PNG (read past the end of the data)");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    longjmp(s->jump, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Converts `channels`-per-pixel rows (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) in place to RGB. */
static void to_rgb(uint8_t *px, size_t pixels, int channels)
{
    if (channels == 3) return;
    if (channels == 4) {
        for (size_t i = 0; i < pixels; i++) {
            px[3 * i] = px[4 * i];
            px[3 * i + 1] = px[4 * i + 1];
            px[3 * i + 2] = px[4 * i + 2];
        }
        return;
    }
    /* Expanding: walk backwards so no input is overwritten before it is read. */
    for (size_t i = pixels; i-- > 0;) {
        uint8_t g = px[(size_t)channels * i];
        px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = g;
    }
}

static int decode_png(cored_image *img, const uint8_t *data, size_t len, const char *name,
                      size_t max_pixels, cored_error *err)
{
    png_src src;
    memset(&src, 0, sizeof src);
    src.data = data;
    src.len = len;
    png_structp png = NULL;
    png_infop info = NULL;
    int rc = CORED_OK;

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png) return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot create a PNG reader", name);
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot create a PNG reader", name);
    }
    if (setjmp(src.jump)) {
        /* After the last row, only trailing chunks (IEND, text, CRCs) are left: PIL does
           not read them either, so their errors are ignored like libpng's warnings. */
        if (src.image_done) goto done;
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: corrupt PNG: %s", name, src.msg);
        goto fail;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, MAX_SIDE, MAX_SIDE);
    png_set_chunk_malloc_max(png, 64u << 20);
    png_read_info(png, info);

    png_uint_32 w32, h32;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w32, &h32, &depth, &color, &interlace, NULL, NULL);
    rc = reserve(img, (int)w32, (int)h32, 4, max_pixels, name, err);
    if (rc) goto fail;
    src.w = (int)w32;
    src.h = (int)h32;

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);
    src.channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (src.channels < 1 || src.channels > 4 || png_get_bit_depth(png, info) != 8 ||
        rowbytes != (size_t)src.w * (size_t)src.channels) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: unsupported PNG pixel layout", name);
        goto fail;
    }
    png_bytep *rows = (png_bytep *)scratch(img, (size_t)src.h * sizeof *rows);
    if (!rows) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate row pointers", name);
        goto fail;
    }
    for (int y = 0; y < src.h; y++) rows[y] = img->px + (size_t)y * rowbytes;
    png_read_image(png, rows);
    src.image_done = 1;
    png_read_end(png, NULL);
done:
    to_rgb(img->px, (size_t)src.w * (size_t)src.h, src.channels);
    img->w = src.w;
    img->h = src.h;
    rc = CORED_OK;
fail:
    png_destroy_read_struct(&png, &info, NULL);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

int cored_image_decode(cored_image *img, const uint8_t *data, size_t len, const char *name,
                       size_t max_pixels, cored_error *err)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!img || (!data && len)) return CORED_FAIL(err, CORED_E_ARG, "cored_image_decode: NULL argument");
    if (!name) name = "image";
    if (max_pixels == 0) max_pixels = CORED_MAX_PIXELS_DEFAULT;
    if (len == 0) return CORED_FAIL(err, CORED_E_FORMAT, "%s: empty file (0 bytes)", name);
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return decode_jpeg(img, data, len, name, max_pixels, err);
    if (len >= 8 && memcmp(data, png_sig, 8) == 0)
        return decode_png(img, data, len, name, max_pixels, err);
    return CORED_FAIL(err, CORED_E_FORMAT, "%s: not a JPEG or PNG image (unrecognised content)", name);
}

/* ---------------------------------------------------------------- files */

static const char *file_kind(mode_t m)
{
    return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a folder" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* Reads a regular file into a grow-only buffer (*buf, *cap); *len receives its size. Opened
   non-blocking and checked with fstat first, so a FIFO or device is refused, not read. */
static int read_into(uint8_t **buf, size_t *cap, size_t *len, const char *path, cored_error *err)
{
    int rc = CORED_OK, fd;
    do fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return CORED_FAIL(err, CORED_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: %s, not a regular file: refused without reading it", path,
                        file_kind(st.st_mode));
        goto fail;
    }
    if ((uint64_t)st.st_size > CORED_MAX_FILE_BYTES) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: file of %lld bytes is above the limit of %zu", path,
                        (long long)st.st_size, CORED_MAX_FILE_BYTES);
        goto fail;
    }
    /* Blocking reads again (no effect on most file systems, but reads of a regular file
       must not fail with EAGAIN). */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        rc = CORED_FAIL(err, CORED_E_IO, "%s: fcntl: %s", path, strerror(errno));
        goto fail;
    }
    size_t n = (size_t)st.st_size;
    if (n + 1 > *cap) {
        size_t want = n + 1 > 65536 ? n + 1 : 65536;
        uint8_t *p = cored_alloc(want);
        if (!p) {
            rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate %zu bytes", path, want);
            goto fail;
        }
        cored_free(*buf);
        *buf = p;
        *cap = want;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, *buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = CORED_FAIL(err, CORED_E_IO, "%s: read failed after %zu of %zu bytes: %s", path, got, n,
                            strerror(errno));
            goto fail;
        }
        if (r == 0) {
            rc = CORED_FAIL(err, CORED_E_IO, "%s: file shrank while being read (%zu of %zu bytes)", path, got, n);
            goto fail;
        }
        got += (size_t)r;
    }
    *len = n;
fail:
    close(fd);
    return rc;
}

static int read_retry(uint8_t **buf, size_t *cap, size_t *len, const char *path, cored_error *err)
{
    int rc = read_into(buf, cap, len, path, err);
    if (rc != CORED_E_IO) return rc;
    /* Once more after a pause: EMFILE, EINTR, a file being replaced or a network file
       system hiccup may pass; an image must not be written off for a transient error. */
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
    rc = read_into(buf, cap, len, path, err);
    if (rc == CORED_E_IO && err) cored_error_hint(err, "the read failed twice; check the file and its file system");
    return rc;
}

static size_t resizer_bytes(const cored_resizer *rz)
{
    return rz->coef_cap + rz->bounds_cap + rz->pre_cap + rz->tmp_cap;
}

static int read_rgb8(uint8_t *dst, int size, const char *path, uint8_t **file, size_t *file_cap,
                     cored_image *img, cored_resizer *rz, size_t keep, cored_error *err)
{
    if (!dst || !path || !file || !file_cap || !img || !rz || size < 1 || size > CORED_MAX_MODEL_SIDE)
        return CORED_FAIL(err, CORED_E_ARG, "cored_image_read_rgb8: invalid arguments (size %d)", size);
    size_t len = 0;
    int rc = read_retry(file, file_cap, &len, path, err);
    if (rc == CORED_OK) rc = cored_image_decode(img, *file, len, path, 0, err);
    if (rc == CORED_OK) rc = cored_resize_rgb8(dst, size, size, img->px, img->w, img->h, rz, err);
    /* One unusually large image must not pin its buffers for the rest of the run. */
    if (*file_cap + img->cap + img->scratch_cap + resizer_bytes(rz) > keep) {
        cored_free(*file);
        *file = NULL;
        *file_cap = 0;
        cored_image_release(img);
        cored_resizer_release(rz);
    }
    return rc;
}

int cored_image_read_rgb8(uint8_t *dst, int size, const char *path, uint8_t **file, size_t *file_cap,
                          cored_image *img, cored_resizer *rz, cored_error *err)
{
    return read_rgb8(dst, size, path, file, file_cap, img, rz, CORED_DECODER_KEEP_BYTES, err);
}

void cored_decoder_init(cored_decoder *d)
{
    if (d) memset(d, 0, sizeof *d);
}

void cored_decoder_release(cored_decoder *d)
{
    if (!d) return;
    size_t keep = d->keep_bytes;
    cored_free(d->file);
    cored_image_release(&d->img);
    cored_resizer_release(&d->rz);
    memset(d, 0, sizeof *d);
    d->keep_bytes = keep;
}

size_t cored_decoder_bytes(const cored_decoder *d)
{
    return d ? d->file_cap + d->img.cap + d->img.scratch_cap + resizer_bytes(&d->rz) : 0;
}

int cored_decoder_read_rgb8(cored_decoder *d, uint8_t *dst, int size, const char *path, cored_error *err)
{
    if (!d) return CORED_FAIL(err, CORED_E_ARG, "cored_decoder_read_rgb8: NULL decoder");
    return read_rgb8(dst, size, path, &d->file, &d->file_cap, &d->img, &d->rz,
                     d->keep_bytes ? d->keep_bytes : CORED_DECODER_KEEP_BYTES, err);
}

int cored_image_load(float *out, const char *path, int size, cored_error *err)
{
    if (!out || !path || size <= 0 || size > CORED_MAX_MODEL_SIDE)
        return CORED_FAIL(err, CORED_E_ARG, "cored_image_load: invalid arguments (size %d)", size);
    cored_decoder dec;
    cored_decoder_init(&dec);
    float lut[256];
    size_t n = (size_t)size * size * 3;
    uint8_t *px = cored_alloc(n);
    int rc = px ? CORED_OK : CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    if (rc == CORED_OK) rc = cored_decoder_read_rgb8(&dec, px, size, path, err);
    if (rc == CORED_OK) {
        cored_normalize_lut(lut);
        for (size_t i = 0; i < n; i++) out[i] = lut[px[i]];
    }
    cored_free(px);
    cored_decoder_release(&dec);
    return rc;
}
