/*
 * The real photographs the simulator starts from: every .png/.jpg/.jpeg under a folder
 * (any depth, hidden entries skipped, symbolic links followed with loop protection), in
 * bytewise path order, decoded once (src/data's decoder, PIL-equivalent) and reduced with
 * PIL's bilinear filter so that the shorter side is at most max_side; and the augmented
 * square crops ("base" images) that every real and fake image of a data set starts from.
 *
 * Memory: each kept source holds at most about max_side^2 * 4/3 * 3 bytes (for 1:1 to 4:3
 * photos), e.g. 150 KB at max_side 192.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "synth/synth.h"

#define SRC_PATH_MAX 4096
#define SRC_MAX_DEPTH 32
#define SRC_MAX_FILES 100000

typedef struct {
    char *rel;      /* into the path arena of the list */
    uint8_t *px;    /* reduced RGB8 */
    int w, h;       /* reduced size */
    int ow, oh;     /* original size */
    uint64_t sum;   /* checksum of the file bytes */
    size_t bytes;
    int state;      /* 0 ok, 1 too small, 2 bad, 3 duplicate */
} source;

struct cored_sources {
    source *s;
    int n;
};

typedef struct {
    char **paths;
    int n, cap;
    int nomem;
    struct {
        dev_t dev;
        ino_t ino;
    } stack[SRC_MAX_DEPTH];
} lister;

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg");
}

static void list_push(lister *l, const char *path)
{
    if (l->n >= SRC_MAX_FILES) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        char **p = cored_realloc(l->paths, (size_t)cap * sizeof *p);
        if (!p) {
            l->nomem = 1;
            return;
        }
        l->paths = p, l->cap = cap;
    }
    if (!(l->paths[l->n] = cored_strdup(path))) {
        l->nomem = 1;
        return;
    }
    l->n++;
}

static void walk(lister *l, char *path, size_t len, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0 || depth >= SRC_MAX_DEPTH) return;
    for (int i = 0; i < depth; i++)
        if (l->stack[i].dev == st.st_dev && l->stack[i].ino == st.st_ino) {
            cored_log(CORED_LOG_WARN, "%s: symbolic-link loop, not followed", path);
            return;
        }
    l->stack[depth].dev = st.st_dev;
    l->stack[depth].ino = st.st_ino;
    DIR *d = opendir(path);
    if (!d) {
        cored_log(CORED_LOG_WARN, "%s: cannot read folder: %s", path, strerror(errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && !l->nomem) {
        if (e->d_name[0] == '.') continue;
        size_t nl = strlen(e->d_name);
        if (len + 1 + nl >= SRC_PATH_MAX) continue;
        path[len] = '/';
        memcpy(path + len + 1, e->d_name, nl + 1);
        struct stat es;
        if (stat(path, &es) == 0) {
            if (S_ISDIR(es.st_mode))
                walk(l, path, len + 1 + nl, depth + 1);
            else if (S_ISREG(es.st_mode) && is_image_name(e->d_name))
                list_push(l, path);
        }
        path[len] = '\0';
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void cored_sources_free(cored_sources *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        cored_free(s->s[i].px);
        cored_free(s->s[i].rel);
    }
    cored_free(s->s);
    cored_free(s);
}

/* Decodes one file and reduces it; fills the source or sets its state (0 ok, 1 too small,
   2 unreadable or undecodable, 4 out of memory). */
static void load_one(source *src, const char *path, int min_side, int max_side, cored_resizer *rz,
                     cored_image *img)
{
    unsigned char *data = NULL;
    size_t len = 0;
    cored_error e = {0};
    src->state = 2;
    if (cored_read_file(path, CORED_MAX_FILE_BYTES, &data, &len, &e) ||
        cored_image_decode(img, data, len, path, 0, &e)) {
        if (e.code == CORED_E_NOMEM)
            src->state = 4;
        else
            cored_log(CORED_LOG_WARN, "skipped %s", e.msg);
        cored_free(data);
        return;
    }
    src->sum = cored_checksum64(data, len, 0x5eed);
    src->bytes = len;
    cored_free(data);
    src->ow = img->w, src->oh = img->h;
    int shorter = img->w < img->h ? img->w : img->h;
    if (shorter < min_side) {
        src->state = 1;
        cored_log(CORED_LOG_WARN, "skipped %s: %dx%d is smaller than %d px", path, img->w, img->h, min_side);
        return;
    }
    int w = img->w, h = img->h;
    if (shorter > max_side) {
        double f = (double)max_side / shorter;
        w = img->w < img->h ? max_side : (int)lround(img->w * f);
        h = img->w < img->h ? (int)lround(img->h * f) : max_side;
    }
    src->px = cored_alloc((size_t)w * h * 3);
    if (!src->px) {
        src->state = 4;
        return;
    }
    if (cored_resize_rgb8(src->px, w, h, img->px, img->w, img->h, rz, &e)) {
        src->state = e.code == CORED_E_NOMEM ? 4 : 2;
        if (src->state == 2) cored_log(CORED_LOG_WARN, "skipped %s", e.msg);
        cored_free(src->px);
        src->px = NULL;
        return;
    }
    src->w = w, src->h = h;
    src->state = 0;
}

int cored_sources_load(cored_sources **out, cored_sources_stats *stats, const char *dir, int min_side,
                       int max_side, int threads, cored_error *err)
{
    struct stat st;
    if (!out || !dir || min_side < 1 || max_side < min_side)
        return CORED_FAIL(err, CORED_E_ARG, "synth: invalid arguments to cored_sources_load");
    if (stat(dir, &st) != 0) {
        CORED_FAIL(err, CORED_E_IO, "%s: real-image folder not found: %s", dir, strerror(errno));
        cored_error_hint(err, "fetch the default photographs with tools/fetch_real.sh CACHE_DIR and pass "
                              "--real CACHE_DIR/real, or point --real at a folder of your own photos");
        return CORED_E_IO;
    }
    if (!S_ISDIR(st.st_mode)) return CORED_FAIL(err, CORED_E_ARG, "%s: not a folder", dir);
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    if (dl >= SRC_PATH_MAX) return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", dir);

    lister l = {0};
    char path[SRC_PATH_MAX];
    memcpy(path, dir, dl);
    path[dl] = '\0';
    walk(&l, path, dl, 0);
    cored_sources *s = NULL;
    int rc = CORED_OK;
    if (l.nomem) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory while listing images", dir);
        goto fail;
    }
    if (l.n == 0) {
        rc = CORED_FAIL(err, CORED_E_ARG, "%s: no .png/.jpg/.jpeg images found (at any depth)", dir);
        cored_error_hint(err, "fetch the default photographs with tools/fetch_real.sh CACHE and pass "
                              "--real CACHE/real, or point --real at a folder of your own photos");
        goto fail;
    }
    qsort(l.paths, (size_t)l.n, sizeof *l.paths, cmp_str);
    s = cored_calloc(1, sizeof *s);
    source *all = cored_calloc((size_t)l.n, sizeof *all);
    if (!s || !all) {
        cored_free(all);
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", dir);
        goto fail;
    }
    s->s = all;
    if (threads <= 0) threads = cored_get_threads();
    int nomem = 0;
#pragma omp parallel num_threads(threads) reduction(| : nomem)
    {
        cored_resizer rz = {0};
        cored_image img = {0};
#pragma omp for schedule(dynamic)
        for (int i = 0; i < l.n; i++) {
            load_one(&all[i], l.paths[i], min_side, max_side, &rz, &img);
            if (all[i].state == 4) nomem = 1;
        }
        cored_resizer_release(&rz);
        cored_image_release(&img);
    }
    cored_sources_stats stt = {l.n, 0, 0, 0};
    /* keep the usable ones, dropping later exact duplicates of earlier files */
    for (int i = 0; i < l.n; i++) {
        source *a = &all[i];
        if (a->state == 0)
            for (int j = 0; j < s->n; j++)
                if (all[j].sum == a->sum && all[j].bytes == a->bytes) {
                    cored_log(CORED_LOG_WARN, "%s: the same file as %s, used once", l.paths[i],
                              all[j].rel);
                    a->state = 3;
                    break;
                }
        if (a->state != 0) {
            stt.too_small += a->state == 1;
            stt.bad += a->state == 2;
            stt.duplicates += a->state == 3;
            cored_free(a->px);
            a->px = NULL;
            continue;
        }
        const char *rel = l.paths[i] + dl + (l.paths[i][dl] == '/');
        a->rel = cored_strdup(rel);
        if (!a->rel) nomem = 1;
        all[s->n++] = *a;
        if (s->n - 1 != i) a->px = NULL, a->rel = NULL;
    }
    if (stats) *stats = stt;
    if (nomem) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory while decoding the images", dir);
        goto fail;
    }
    if (s->n == 0) {
        rc = CORED_FAIL(err, CORED_E_ARG, "%s: none of the %d images is usable (%d smaller than %d px, %d undecodable)",
                        dir, l.n, stt.too_small, min_side, stt.bad);
        goto fail;
    }
    for (int i = 0; i < l.n; i++) cored_free(l.paths[i]);
    cored_free(l.paths);
    *out = s;
    return CORED_OK;
fail:
    for (int i = 0; i < l.n; i++) cored_free(l.paths[i]);
    cored_free(l.paths);
    cored_sources_free(s);
    return rc;
}

int cored_sources_count(const cored_sources *s) { return s ? s->n : 0; }

const char *cored_sources_relpath(const cored_sources *s, int i) { return s->s[i].rel; }

void cored_sources_dims(const cored_sources *s, int i, int *w, int *h)
{
    *w = s->s[i].ow;
    *h = s->s[i].oh;
}

int cored_sources_crop(uint8_t *out, const cored_sources *s, int i, int size, cored_rng *rng,
                       cored_resizer *rz, cored_synth_scratch *scr, cored_error *err)
{
    if (!s || i < 0 || i >= s->n || !out || size < 8)
        return CORED_FAIL(err, CORED_E_ARG, "synth: invalid arguments to cored_sources_crop");
    const source *src = &s->s[i];
    int shorter = src->w < src->h ? src->w : src->h;
    float lo = 0.5f * shorter, floor_side = 0.75f * size;
    if (lo < floor_side) lo = floor_side < shorter ? floor_side : (float)shorter;
    int side = (int)lroundf(lo + (shorter - lo) * cored_rng_uniform(rng));
    side = side < 1 ? 1 : side > shorter ? shorter : side;
    int x0 = (int)cored_rng_below(rng, (uint32_t)(src->w - side + 1));
    int y0 = (int)cored_rng_below(rng, (uint32_t)(src->h - side + 1));
    int flip = (int)cored_rng_below(rng, 2);
    float contrast = 0.9f + 0.2f * cored_rng_uniform(rng);
    float bright = -8.0f + 16.0f * cored_rng_uniform(rng);
    float sat = 0.85f + 0.3f * cored_rng_uniform(rng);
    int blur = cored_rng_uniform(rng) < 0.25f;
    float sigma = (0.3f + 0.4f * cored_rng_uniform(rng)) * size / 64.0f;

    size_t n = (size_t)size * size, crop_bytes = (size_t)side * side * 3;
    size_t need = 3 * n * 3 + (crop_bytes + 3) / 4 + 1;
    if (scr->cap < need) {
        cored_free(scr->buf);
        scr->buf = cored_alloc(need * sizeof(float));
        scr->cap = scr->buf ? need : 0;
        if (!scr->buf) return CORED_FAIL(err, CORED_E_NOMEM, "synth: cannot allocate crop scratch");
    }
    float *f = scr->buf, *g = f + 3 * n, *tmp = g + 3 * n;
    uint8_t *crop = (uint8_t *)(tmp + 3 * n);
    for (int y = 0; y < side; y++)
        memcpy(crop + (size_t)y * side * 3, src->px + ((size_t)(y0 + y) * src->w + x0) * 3, (size_t)side * 3);
    int rc = cored_resize_rgb8(out, size, size, crop, side, side, rz, err);
    if (rc) return rc;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            const uint8_t *p = out + ((size_t)y * size + (flip ? size - 1 - x : x)) * 3;
            float *q = f + ((size_t)y * size + x) * 3;
            float luma = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
            for (int c = 0; c < 3; c++) {
                float v = luma + sat * (p[c] - luma);
                q[c] = (v - 128.0f) * contrast + 128.0f + bright;
            }
        }
    if (blur) {
        cored_synth_blur(g, f, tmp, size, sigma);
        f = g;
    }
    for (size_t k = 0; k < 3 * n; k++) {
        float v = f[k];
        out[k] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)(int)(v + 0.5f);
    }
    return CORED_OK;
}
