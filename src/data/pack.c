/*
 * The packed cache: one file of pre-resized uint8 RGB images, so training reads pixels
 * from a memory map instead of decoding (format version 1, little-endian, docs/data.md):
 *
 *   header   128 bytes  magic "CORDPACK", version, header size, side, channels (3), count,
 *                       offsets and sizes of index / strings / pixels, file size, checksum,
 *                       pixel-pipeline revision (CORED_PACK_PIPELINE), zeros
 *   index    count x 40 bytes: source size, source mtime (ns), pixel checksum,
 *                       path offset, path length, label, flags (bit 0: undecodable source)
 *   strings  root-relative source paths, each NUL-terminated
 *   pixels   at the end of the strings rounded up to 4096: count x side x side x 3 bytes, HWC
 *
 * The header checksum covers the header (checksum field zeroed), the index and the
 * strings; each entry's checksum covers its pixels. The reader validates every field
 * against the file before using it (the fuzzer target fuzz/fuzz_pack.c drives it).
 * Writing goes through cored_write_atomic (temporary file, fsync, rename), so a pack is
 * never modified in place; the reader maps it read-only, and only another program
 * truncating the mapped file could make a read fault (SIGBUS).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <omp.h>

#include "data/data.h"

#define PACK_MAGIC "CORDPACK"
#define HEADER_BYTES 128
#define ENTRY_BYTES 40
#define PIXEL_ALIGN 4096
#define MAX_PATH_BYTES 4096 /* a stored relative path is shorter than this */
#define FLAG_BAD 1u
#define MAX_SIDE CORED_MAX_MODEL_SIDE
#define OFF_PIPELINE 88 /* u32; bytes 92..127 are zero */
#define SEED_HEADER 0x434F524450414B31ULL
#define SEED_PIXELS 0x5049584C53ULL

typedef struct {
    uint64_t src_size;
    int64_t src_mtime;
    uint64_t hash;
    uint32_t path_off, path_len, label, flags;
} entry;

struct cored_pack {
    char *name;
    const uint8_t *base;
    size_t len;
    void *map; /* mmap'd region (NULL when parsed from a caller's buffer) */
    size_t map_len;
    int size, count, pipeline;
    const char *strings;
    const uint8_t *pixels;
    entry *e;
    int32_t *table; /* open addressing: entry index or -1 */
    uint32_t table_mask;
};

/* ---------------------------------------------------------------- bytes */

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t round64(uint64_t acc, uint64_t w) { return rotl(acc + w * P2, 31) * P1; }

uint64_t cored_checksum64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    size_t total = len;
    uint64_t a = seed + P1 + P2, b = seed + P2, c = seed, d = seed - P1;
    while (len >= 32) {
        a = round64(a, rd64(p));
        b = round64(b, rd64(p + 8));
        c = round64(c, rd64(p + 16));
        d = round64(d, rd64(p + 24));
        p += 32;
        len -= 32;
    }
    uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18) + total;
    while (len >= 8) {
        h ^= round64(0, rd64(p));
        h = rotl(h, 27) * P1 + P4;
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        h ^= (*p++) * P3;
        h = rotl(h, 11) * P1;
        len--;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    return h ^ (h >> 32);
}

static uint64_t path_hash(const char *s, size_t n) { return cored_checksum64(s, n, 0x50415448ULL); }

/* ---------------------------------------------------------------- reading */

void cored_pack_free(cored_pack *p)
{
    if (!p) return;
    if (p->map) munmap(p->map, p->map_len);
    cored_free(p->name);
    cored_free(p->e);
    cored_free(p->table);
    cored_free(p);
}

/* Header checksum over header (checksum zeroed) + index + strings. */
static uint64_t meta_checksum(const uint8_t *header, const uint8_t *index, size_t index_bytes,
                              const uint8_t *strings, size_t strings_bytes)
{
    uint8_t h[HEADER_BYTES];
    memcpy(h, header, HEADER_BYTES);
    memset(h + 80, 0, 8);
    uint64_t c = cored_checksum64(h, HEADER_BYTES, SEED_HEADER);
    c = cored_checksum64(index, index_bytes, c);
    return cored_checksum64(strings, strings_bytes, c);
}

typedef struct {
    uint64_t count, index_off, strings_off, strings_bytes, pixels_off, pixels_bytes, file_bytes,
        checksum;
    uint32_t version, header_bytes, size, channels, pipeline;
} header;

static void read_header(header *h, const uint8_t *b)
{
    h->version = rd32(b + 8);
    h->header_bytes = rd32(b + 12);
    h->size = rd32(b + 16);
    h->channels = rd32(b + 20);
    h->count = rd64(b + 24);
    h->index_off = rd64(b + 32);
    h->strings_off = rd64(b + 40);
    h->strings_bytes = rd64(b + 48);
    h->pixels_off = rd64(b + 56);
    h->pixels_bytes = rd64(b + 64);
    h->file_bytes = rd64(b + 72);
    h->checksum = rd64(b + 80);
    h->pipeline = rd32(b + OFF_PIPELINE);
}

static void write_header(uint8_t *b, const header *h)
{
    memset(b, 0, HEADER_BYTES);
    memcpy(b, PACK_MAGIC, 8);
    wr32(b + 8, h->version);
    wr32(b + 12, h->header_bytes);
    wr32(b + 16, h->size);
    wr32(b + 20, h->channels);
    wr64(b + 24, h->count);
    wr64(b + 32, h->index_off);
    wr64(b + 40, h->strings_off);
    wr64(b + 48, h->strings_bytes);
    wr64(b + 56, h->pixels_off);
    wr64(b + 64, h->pixels_bytes);
    wr64(b + 72, h->file_bytes);
    wr64(b + 80, h->checksum);
    wr32(b + OFF_PIPELINE, h->pipeline);
}

/* Slots of the path table of a pack of `count` entries: a power of two >= 2 * count
   (count <= CORED_PACK_MAX_COUNT, so no overflow). */
static uint32_t table_slots(uint64_t count)
{
    uint64_t t = 16;
    while (t < 2 * count) t *= 2;
    return (uint32_t)t;
}

static void write_entry(uint8_t *b, const entry *e)
{
    wr64(b, e->src_size);
    wr64(b + 8, (uint64_t)e->src_mtime);
    wr64(b + 16, e->hash);
    wr32(b + 24, e->path_off);
    wr32(b + 28, e->path_len);
    wr32(b + 32, e->label);
    wr32(b + 36, e->flags);
}

/* Checks the header fields against the buffer; fills h. */
static int check_header(header *h, const uint8_t *buf, size_t len, const char *name, cored_error *err)
{
    if (len < HEADER_BYTES)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: truncated pack (%zu bytes, the header alone is %d)",
                          name, len, HEADER_BYTES);
    if (memcmp(buf, PACK_MAGIC, 8) != 0)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: not a cored pack (bad magic)", name);
    read_header(h, buf);
    if (h->version != CORED_PACK_VERSION)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: pack version %u is not supported (this cored reads %d)",
                          name, h->version, CORED_PACK_VERSION);
    int reserved = 0;
    for (int i = OFF_PIPELINE + 4; i < HEADER_BYTES; i++) reserved |= buf[i];
    if (h->header_bytes != HEADER_BYTES || h->channels != 3 || reserved)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: malformed pack header", name);
    if (h->size < 1 || h->size > MAX_SIDE)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: pack image size %u out of range 1..%d", name, h->size,
                          MAX_SIDE);
    if (h->file_bytes != len)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: pack is %zu bytes but its header says %llu (truncated?)",
                          name, len, (unsigned long long)h->file_bytes);
    /* Before anything is sized from it (the path table is 2 x count slots). */
    if (h->count > (uint64_t)CORED_PACK_MAX_COUNT || h->count > len / ENTRY_BYTES)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: pack count %llu does not fit the file (at most %d entries)",
                          name, (unsigned long long)h->count, CORED_PACK_MAX_COUNT);
    uint64_t index_bytes = h->count * ENTRY_BYTES;
    uint64_t image = (uint64_t)h->size * h->size * 3;
    if (h->count && image > UINT64_MAX / h->count)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: pack pixel size overflows", name);
    if (h->index_off != HEADER_BYTES || h->strings_off != h->index_off + index_bytes ||
        h->strings_bytes > len || h->strings_off > len - h->strings_bytes ||
        h->pixels_off != cored_align_up(h->strings_off + h->strings_bytes, PIXEL_ALIGN) ||
        h->pixels_off > len || h->pixels_bytes != h->count * image ||
        h->pixels_bytes != len - h->pixels_off)
        return CORED_FAIL(err, CORED_E_FORMAT,
                          "%s: pack sections do not fit the file (index, strings or pixels out of range)",
                          name);
    return CORED_OK;
}

int cored_pack_parse(cored_pack **out, const uint8_t *buf, size_t len, const char *name,
                     cored_error *err)
{
    header h;
    cored_pack *p = NULL;
    int rc;
    if (!out || (!buf && len)) return CORED_FAIL(err, CORED_E_ARG, "cored_pack_parse: NULL argument");
    if (!name) name = "pack";
    rc = check_header(&h, buf, len, name, err);
    if (rc) return rc;
    p = cored_calloc(1, sizeof *p);
    if (!p) return CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", name);
    p->name = cored_strdup(name);
    p->base = buf;
    p->len = len;
    p->size = (int)h.size;
    p->count = (int)h.count;
    p->pipeline = h.pipeline > INT_MAX ? -1 : (int)h.pipeline;
    p->strings = (const char *)buf + h.strings_off;
    p->pixels = buf + h.pixels_off;
    uint32_t tsize = table_slots(h.count);
    p->e = cored_alloc((size_t)(p->count ? p->count : 1) * sizeof *p->e);
    p->table = cored_alloc((size_t)tsize * sizeof *p->table);
    if (!p->name || !p->e || !p->table) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory reading a pack of %d images", name, p->count);
        goto fail;
    }
    p->table_mask = tsize - 1;
    for (uint32_t i = 0; i < tsize; i++) p->table[i] = -1;
    for (int i = 0; i < p->count; i++) {
        const uint8_t *b = buf + h.index_off + (size_t)i * ENTRY_BYTES;
        entry *e = &p->e[i];
        e->src_size = rd64(b);
        e->src_mtime = (int64_t)rd64(b + 8);
        e->hash = rd64(b + 16);
        e->path_off = rd32(b + 24);
        e->path_len = rd32(b + 28);
        e->label = rd32(b + 32);
        e->flags = rd32(b + 36);
        if (e->label > 1 || (e->flags & ~FLAG_BAD)) {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: entry %d has an invalid label or flags", name, i);
            goto fail;
        }
        if (e->path_len == 0 || e->path_len >= MAX_PATH_BYTES || (uint64_t)e->path_off >= h.strings_bytes ||
            (uint64_t)e->path_len >= h.strings_bytes - e->path_off) {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: entry %d has a path outside the string table", name, i);
            goto fail;
        }
        const char *s = p->strings + e->path_off;
        if (memchr(s, '\0', e->path_len) || s[e->path_len] != '\0') {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: entry %d has a malformed path", name, i);
            goto fail;
        }
        uint32_t slot = (uint32_t)path_hash(s, e->path_len) & p->table_mask;
        while (p->table[slot] >= 0) {
            const entry *o = &p->e[p->table[slot]];
            if (o->path_len == e->path_len && !memcmp(p->strings + o->path_off, s, e->path_len)) {
                rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: path %s appears twice", name, s);
                goto fail;
            }
            slot = (slot + 1) & p->table_mask;
        }
        p->table[slot] = i;
    }
    if (meta_checksum(buf, buf + h.index_off, h.count * ENTRY_BYTES, (const uint8_t *)p->strings,
                      h.strings_bytes) != h.checksum) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: pack checksum mismatch (corrupt file)", name);
        goto fail;
    }
    *out = p;
    return CORED_OK;
fail:
    cored_pack_free(p);
    return rc;
}

int cored_pack_open(cored_pack **out, const char *path, cored_error *err)
{
    if (!out || !path) return CORED_FAIL(err, CORED_E_ARG, "cored_pack_open: NULL argument");
    /* Non-blocking open, then fstat: a FIFO or device is refused instead of hanging. */
    int fd;
    do fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return CORED_FAIL(err, CORED_E_IO, "%s: cannot open pack: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return CORED_FAIL(err, CORED_E_IO, "%s: cannot stat pack: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return CORED_FAIL(err, CORED_E_IO, "%s: not a regular file (%s), refused without reading it", path,
                          S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a folder" : "a device or socket");
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return CORED_FAIL(err, CORED_E_IO, "%s: cannot map pack: %s", path, strerror(e));
        }
    }
    close(fd);
    cored_pack *p = NULL;
    int rc = cored_pack_parse(&p, map, len, path, err);
    if (rc) {
        if (map) munmap(map, len);
        return rc;
    }
    p->map = map;
    p->map_len = len;
    *out = p;
    return CORED_OK;
}

int cored_pack_size(const cored_pack *p) { return p ? p->size : 0; }
int cored_pack_pipeline(const cored_pack *p) { return p ? p->pipeline : -1; }
int cored_pack_count(const cored_pack *p) { return p ? p->count : 0; }
int cored_pack_label(const cored_pack *p, int i) { return p && i >= 0 && i < p->count ? (int)p->e[i].label : -1; }
int cored_pack_is_bad(const cored_pack *p, int i)
{
    return p && i >= 0 && i < p->count ? (p->e[i].flags & FLAG_BAD) != 0 : 1;
}

const char *cored_pack_relpath(const cored_pack *p, int i, size_t *len)
{
    if (!p || i < 0 || i >= p->count) return NULL;
    if (len) *len = p->e[i].path_len;
    return p->strings + p->e[i].path_off;
}

const uint8_t *cored_pack_pixels(const cored_pack *p, int i)
{
    if (!p || i < 0 || i >= p->count) return NULL;
    return p->pixels + (size_t)i * (size_t)p->size * p->size * 3;
}

int cored_pack_verify_entry(const cored_pack *p, int i, cored_error *err)
{
    if (!p || i < 0 || i >= p->count) return CORED_FAIL(err, CORED_E_ARG, "pack entry %d out of range", i);
    size_t n = (size_t)p->size * p->size * 3;
    if (cored_checksum64(cored_pack_pixels(p, i), n, SEED_PIXELS) != p->e[i].hash)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: pixels of %s do not match their checksum (corrupt pack)",
                          p->name, p->strings + p->e[i].path_off);
    return CORED_OK;
}

int cored_pack_find(const cored_pack *p, const char *relpath)
{
    if (!p || !relpath) return -1;
    size_t n = strlen(relpath);
    uint32_t slot = (uint32_t)path_hash(relpath, n) & p->table_mask;
    while (p->table[slot] >= 0) {
        const entry *e = &p->e[p->table[slot]];
        if (e->path_len == n && !memcmp(p->strings + e->path_off, relpath, n)) return p->table[slot];
        slot = (slot + 1) & p->table_mask;
    }
    return -1;
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

int cored_pack_match(int *entry_of, const cored_pack *p, const cored_dataset *ds, int size,
                     cored_error *err)
{
    if (!entry_of || !p || !ds) return CORED_FAIL(err, CORED_E_ARG, "cored_pack_match: NULL argument");
    int rc = CORED_OK;
    if (p->size != size) {
        rc = CORED_FAIL(err, CORED_E_ARG, "%s: pack holds %d px images but %d px are needed", p->name,
                        p->size, size);
        cored_error_hint(err, "rebuild it: cored pack DATA --size %d", size);
        return rc;
    }
    if (p->pipeline != CORED_PACK_PIPELINE) {
        rc = CORED_FAIL(err, CORED_E_ARG,
                        "%s: pack was written by a cored whose decoding/resizing differs (pixel pipeline %d, "
                        "this cored has %d)",
                        p->name, p->pipeline, CORED_PACK_PIPELINE);
        cored_error_hint(err, "rebuild it: cored pack DATA --size %d", size);
        return rc;
    }
    for (int i = 0; i < cored_dataset_count(ds); i++) {
        const char *rel = cored_dataset_relpath(ds, i), *path = cored_dataset_path(ds, i);
        int e = cored_pack_find(p, rel);
        struct stat st;
        if (e < 0)
            rc = CORED_FAIL(err, CORED_E_ARG, "%s: pack does not contain %s (added after the pack was built?)",
                            p->name, path);
        else if ((int)p->e[e].label != cored_dataset_label(ds, i))
            rc = CORED_FAIL(err, CORED_E_ARG, "%s: %s has label %u in the pack but %d in the folder", p->name,
                            path, p->e[e].label, cored_dataset_label(ds, i));
        else if (stat(path, &st) != 0)
            rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        else if ((uint64_t)st.st_size != p->e[e].src_size || mtime_ns(&st) != p->e[e].src_mtime)
            rc = CORED_FAIL(err, CORED_E_ARG, "%s: pack is stale: %s changed since it was packed (%s)", p->name,
                            path, (uint64_t)st.st_size != p->e[e].src_size ? "size" : "modification time");
        if (rc) {
            cored_error_hint(err, "rebuild the pack: cored pack DATA --size %d", size);
            return rc;
        }
        entry_of[i] = e;
    }
    return CORED_OK;
}

void cored_pack_default_path(char *buf, size_t n, const char *root, int size)
{
    size_t l = strlen(root);
    while (l > 1 && root[l - 1] == '/') l--;
    snprintf(buf, n, "%.*s/.cored-pack-%d.bin", (int)l, root, size);
}

/* Rewrites the header checksum of a pack image in memory (tests and the fuzzer use it to
   reach the checks behind the checksum). Returns 0, or -1 when the sections do not fit. */
int cored_pack_fix_checksum(uint8_t *buf, size_t len)
{
    header h;
    if (check_header(&h, buf, len, "pack", NULL)) return -1;
    wr64(buf + 80, meta_checksum(buf, buf + h.index_off, h.count * ENTRY_BYTES, buf + h.strings_off,
                                 h.strings_bytes));
    return 0;
}

/* ---------------------------------------------------------------- writing */

#define BUILD_CHUNK 256                  /* images decoded between two writes, at most */
#define BUILD_CHUNK_BYTES ((size_t)64 << 20) /* ... and about this many bytes of pixels */

typedef enum { ENTRY_DECODED, ENTRY_REUSED, ENTRY_BAD } entry_state;

typedef struct {
    const cored_dataset *ds;
    const cored_pack *old;
    int *sample;  /* data-set index of each entry */
    entry *e;
    uint8_t *state;
    char *strings;
    uint64_t strings_bytes, strings_off, pixels_off, file_bytes;
    int count, size, threads, strict;
    cored_decoder *dec; /* one per thread */
    const char *path;
    cored_error first; /* first fatal error of a worker */
    int failed;
} build_ctx;

static int write_zeros(FILE *f, uint64_t n, const char *path, cored_error *err)
{
    static const uint8_t zeros[4096];
    while (n > 0) {
        size_t k = n > sizeof zeros ? sizeof zeros : (size_t)n;
        if (cored_fwrite_all(f, zeros, k, path, err)) return CORED_E_IO;
        n -= k;
    }
    return CORED_OK;
}

/* Fills entry k's pixels (dst) from the old pack or by decoding its source. */
static void build_one(build_ctx *c, cored_decoder *dec, int k, uint8_t *dst)
{
    entry *e = &c->e[k];
    size_t img = (size_t)c->size * c->size * 3;
    const char *path = cored_dataset_path(c->ds, c->sample[k]);
    if (c->old && c->old->size == c->size && c->old->pipeline == CORED_PACK_PIPELINE) {
        int j = cored_pack_find(c->old, cored_dataset_relpath(c->ds, c->sample[k]));
        if (j >= 0 && !(c->old->e[j].flags & FLAG_BAD) && c->old->e[j].src_size == e->src_size &&
            c->old->e[j].src_mtime == e->src_mtime && c->old->e[j].label == e->label &&
            cored_pack_verify_entry(c->old, j, NULL) == CORED_OK) {
            memcpy(dst, cored_pack_pixels(c->old, j), img);
            e->hash = c->old->e[j].hash;
            c->state[k] = ENTRY_REUSED;
            return;
        }
    }
    cored_error err;
    int rc = cored_decoder_read_rgb8(dec, dst, c->size, path, &err);
    if (rc == CORED_OK) {
        c->state[k] = ENTRY_DECODED;
    } else {
        memset(dst, 0, img);
        e->flags |= FLAG_BAD;
        c->state[k] = ENTRY_BAD;
        /* Only an undecodable source becomes a bad entry; a read error (already retried)
           or memory fails the build rather than writing a good image off. */
        if (rc != CORED_E_FORMAT || c->strict) {
#pragma omp critical(cored_pack_build_error)
            if (!c->failed++) c->first = err;
        } else {
            cored_log(CORED_LOG_WARN, "stored as undecodable (the loader will skip it): %s", err.msg);
        }
    }
    e->hash = cored_checksum64(dst, img, SEED_PIXELS);
}

static int build_write(FILE *f, const char *path, void *user, cored_error *err)
{
    build_ctx *c = user;
    size_t img = (size_t)c->size * c->size * 3;
    /* 256 images at 128 px (12 MiB), fewer at large sizes, but one per thread at least */
    int chunk = (int)(BUILD_CHUNK_BYTES / img);
    if (chunk > BUILD_CHUNK) chunk = BUILD_CHUNK;
    if (chunk < c->threads) chunk = c->threads;
    uint8_t *buf = cored_alloc((size_t)chunk * img);
    if (!buf) return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate %zu bytes", path, (size_t)chunk * img);
    int rc = write_zeros(f, c->strings_off, path, err);
    if (!rc) rc = cored_fwrite_all(f, c->strings, c->strings_bytes, path, err);
    if (!rc) rc = write_zeros(f, c->pixels_off - c->strings_off - c->strings_bytes, path, err);
    double t0 = cored_now(), last = t0;
    for (int c0 = 0; !rc && c0 < c->count; c0 += chunk) {
        int n = c->count - c0 < chunk ? c->count - c0 : chunk;
#pragma omp parallel for num_threads(c->threads) schedule(dynamic, 1)
        for (int k = 0; k < n; k++) build_one(c, &c->dec[omp_get_thread_num()], c0 + k, buf + (size_t)k * img);
        if (c->failed) {
            *err = c->first;
            rc = err->code ? err->code : CORED_E_FORMAT;
            break;
        }
        rc = cored_fwrite_all(f, buf, (size_t)n * img, path, err);
        double now = cored_now();
        if (now - last > 5.0) {
            last = now;
            cored_log(CORED_LOG_INFO, "pack: %d of %d images (%.0f/s)", c0 + n, c->count, (c0 + n) / (now - t0));
        }
    }
    cored_free(buf);
    if (rc) return rc;
    /* Now that every pixel checksum is known: the index and the header. */
    uint8_t *meta = cored_alloc(c->strings_off);
    if (!meta) return CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", path);
    for (int k = 0; k < c->count; k++) write_entry(meta + HEADER_BYTES + (size_t)k * ENTRY_BYTES, &c->e[k]);
    header h = {(uint64_t)c->count, HEADER_BYTES, c->strings_off, c->strings_bytes, c->pixels_off,
                (uint64_t)c->count * img, c->file_bytes, 0, CORED_PACK_VERSION, HEADER_BYTES,
                (uint32_t)c->size, 3, CORED_PACK_PIPELINE};
    write_header(meta, &h);
    h.checksum = meta_checksum(meta, meta + HEADER_BYTES, (size_t)c->count * ENTRY_BYTES,
                               (const uint8_t *)c->strings, c->strings_bytes);
    write_header(meta, &h);
    if (fseek(f, 0, SEEK_SET) != 0)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: seek failed: %s", path, strerror(errno));
    else
        rc = cored_fwrite_all(f, meta, c->strings_off, path, err);
    cored_free(meta);
    return rc;
}

/* Entries: the distinct relative paths of ds, in ds's order, with their source stats. */
static int build_prepare(build_ctx *c, cored_error *err)
{
    int n = cored_dataset_count(c->ds);
    if (n > CORED_PACK_MAX_COUNT)
        return CORED_FAIL(err, CORED_E_ARG, "%s: %d images are more than a pack holds (%d)", c->path, n,
                          CORED_PACK_MAX_COUNT);
    uint32_t tsize = table_slots((uint64_t)n);
    int32_t *table = cored_alloc((size_t)tsize * sizeof *table);
    c->sample = cored_alloc((size_t)n * sizeof *c->sample);
    c->e = cored_calloc((size_t)n, sizeof *c->e);
    c->state = cored_calloc((size_t)n, 1);
    uint64_t chars = 0;
    for (int i = 0; i < n; i++) chars += strlen(cored_dataset_relpath(c->ds, i)) + 1;
    c->strings = cored_alloc(chars ? chars : 1);
    if (!table || !c->sample || !c->e || !c->state || !c->strings || chars > UINT32_MAX) {
        cored_free(table);
        return CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory preparing the pack", c->path);
    }
    for (uint32_t i = 0; i < tsize; i++) table[i] = -1;
    c->count = 0;
    c->strings_bytes = 0;
    for (int i = 0; i < n; i++) {
        const char *rel = cored_dataset_relpath(c->ds, i);
        size_t len = strlen(rel);
        uint32_t slot = (uint32_t)path_hash(rel, len) & (tsize - 1);
        int dup = 0;
        while (table[slot] >= 0) {
            if (!strcmp(cored_dataset_relpath(c->ds, c->sample[table[slot]]), rel)) {
                dup = 1;
                break;
            }
            slot = (slot + 1) & (tsize - 1);
        }
        if (dup) continue;
        if (len == 0 || len >= MAX_PATH_BYTES) {
            cored_free(table);
            return CORED_FAIL(err, CORED_E_ARG, "%s: path length not supported in a pack", rel);
        }
        int k = c->count++;
        table[slot] = k;
        c->sample[k] = i;
        entry *e = &c->e[k];
        e->path_off = (uint32_t)c->strings_bytes;
        e->path_len = (uint32_t)len;
        e->label = (uint32_t)cored_dataset_label(c->ds, i);
        memcpy(c->strings + c->strings_bytes, rel, len + 1);
        c->strings_bytes += len + 1;
        struct stat st;
        if (stat(cored_dataset_path(c->ds, i), &st) != 0) { /* an I/O error: never a bad entry */
            int en = errno;
            cored_free(table);
            return CORED_FAIL(err, CORED_E_IO, "%s: cannot stat: %s", cored_dataset_path(c->ds, i), strerror(en));
        }
        e->src_size = (uint64_t)st.st_size;
        e->src_mtime = mtime_ns(&st);
    }
    cored_free(table);
    c->strings_off = HEADER_BYTES + (uint64_t)c->count * ENTRY_BYTES;
    c->pixels_off = cored_align_up(c->strings_off + c->strings_bytes, PIXEL_ALIGN);
    c->file_bytes = c->pixels_off + (uint64_t)c->count * c->size * c->size * 3;
    return CORED_OK;
}

int cored_pack_build(const char *path, const cored_dataset *ds, int size, int threads,
                     const char *reuse, int strict, cored_pack_stats *stats, cored_error *err)
{
    if (!path || !ds || size < 1 || size > MAX_SIDE)
        return CORED_FAIL(err, CORED_E_ARG, "cored_pack_build: invalid arguments (size %d)", size);
    if (cored_dataset_count(ds) == 0) return CORED_FAIL(err, CORED_E_ARG, "%s: nothing to pack", path);
    if (threads <= 0) threads = cored_get_threads();
    build_ctx c;
    memset(&c, 0, sizeof c);
    c.ds = ds;
    c.size = size;
    c.threads = threads;
    c.strict = strict;
    c.path = path;
    cored_pack *old = NULL;
    int rc = CORED_OK;
    if (reuse && cored_is_file(reuse)) {
        cored_error oerr;
        if (cored_pack_open(&old, reuse, &oerr) != CORED_OK) {
            cored_log(CORED_LOG_WARN, "not reusing the old pack: %s", oerr.msg);
            old = NULL;
        }
    }
    c.old = old;
    c.dec = cored_calloc((size_t)threads, sizeof *c.dec);
    if (!c.dec) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    rc = build_prepare(&c, err);
    if (rc) goto fail;
    rc = cored_write_atomic(path, build_write, &c, err);
    if (rc) goto fail;
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->images = c.count;
        for (int k = 0; k < c.count; k++) {
            stats->reused += c.state[k] == ENTRY_REUSED;
            stats->decoded += c.state[k] == ENTRY_DECODED;
            stats->bad += c.state[k] == ENTRY_BAD;
        }
        stats->bytes = c.file_bytes;
    }
fail:
    if (c.dec)
        for (int t = 0; t < threads; t++) cored_decoder_release(&c.dec[t]);
    cored_free(c.dec);
    cored_free(c.sample);
    cored_free(c.e);
    cored_free(c.state);
    cored_free(c.strings);
    cored_pack_free(old);
    return rc;
}
