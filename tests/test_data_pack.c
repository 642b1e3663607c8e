/*
 * The packed cache: round trip (pixels equal to decode + resize; loader batches equal with
 * and without the pack, also with corrupt sources at several thread counts), incremental
 * rebuild, stale sources (mtime, size), missing samples, the wrong image size and another
 * pixel pipeline refused with a reason, undecodable sources, unreadable sources (an
 * error, not a bad entry), a FIFO in place of a pack, stale temporaries of dead writers
 * only, and a corruption table for the reader (truncation, magic, version, counts,
 * offsets, alignment, reserved bytes, labels, checksums of metadata and of pixels).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"
#include "test_data_util.h"

#define SIZE 12
#define IMG (SIZE * SIZE * 3)

static char root[1024], packpath[1200];

static void build_root(void)
{
    snprintf(root, sizeof root, "%s", fresh_dir("pack"));
    char rel[256];
    for (int i = 0; i < 14; i++) {
        snprintf(rel, sizeof rel, "A/train/real/v%d/%02d.%s", i % 3, i, i % 2 ? "jpg" : "png");
        if (i % 2)
            put_jpeg(root, rel, 16 + i, 10 + i, i);
        else
            put_png(root, rel, 16 + i, 10 + i, i);
    }
    for (int i = 0; i < 9; i++) {
        snprintf(rel, sizeof rel, "A/train/fake/%02d.png", i);
        put_png(root, rel, 30, 20, 50 + i);
    }
    cored_pack_default_path(packpath, sizeof packpath, root, SIZE);
}

static int build(const cored_dataset *ds, cored_pack_stats *st, cored_error *err)
{
    return cored_pack_build(packpath, ds, SIZE, 2, packpath, 0, st, err);
}

static int loader_epoch_threads(float *x, int *idx, const cored_dataset *ds, const char *pack, int threads,
                                cored_error *err)
{
    cored_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch = 5;
    o.size = SIZE;
    o.threads = threads;
    o.seed = 11;
    o.shuffle = o.flip = 1;
    o.cutmix = CORED_CUTMIX_OPPOSITE;
    o.cutmix_p = 0.7f;
    o.pack = pack;
    cored_loader *l = NULL;
    int rc = cored_loader_create(&l, ds, &o, err), n = 0;
    if (rc) return rc;
    cored_batch *b;
    rc = cored_loader_start(l, 3, 0, err);
    while (!rc && (rc = cored_loader_next(l, &b, err)) == 1) {
        memcpy(x + (size_t)n * IMG, b->x, (size_t)b->n * IMG * sizeof(float));
        memcpy(idx + n, b->index, (size_t)b->n * sizeof(int));
        n += b->n;
        cored_loader_release(l, b);
        rc = 0;
    }
    cored_loader_free(l);
    return rc < 0 ? rc : n;
}

static int loader_epoch(float *x, int *idx, const cored_dataset *ds, const char *pack, cored_error *err)
{
    return loader_epoch_threads(x, idx, ds, pack, 2, err);
}

static void test_round_trip(void)
{
    build_root();
    cored_dataset *ds = NULL;
    cored_error err;
    cored_pack_stats st;
    CHECK(cored_dataset_open(&ds, root, "A", CORED_SPLIT_TRAIN, &err) == 0);
    int rc = build(ds, &st, &err);
    CHECK_MSG(rc == 0, "build: %s", err.msg);
    CHECK(st.images == 23 && st.decoded == 23 && st.reused == 0 && st.bad == 0);
    cored_pack *p = NULL;
    CHECK(cored_pack_open(&p, packpath, &err) == 0);
    CHECK(cored_pack_size(p) == SIZE && cored_pack_count(p) == 23);
    uint8_t px[IMG], *file = NULL;
    size_t cap = 0;
    cored_image img = {0};
    cored_resizer rz = {0};
    int same = 1;
    for (int i = 0; i < cored_dataset_count(ds); i++) {
        int e = cored_pack_find(p, cored_dataset_relpath(ds, i));
        CHECK(cored_image_read_rgb8(px, SIZE, cored_dataset_path(ds, i), &file, &cap, &img, &rz, &err) == 0);
        same &= e >= 0 && !memcmp(px, cored_pack_pixels(p, e), IMG) &&
                cored_pack_label(p, e) == cored_dataset_label(ds, i) && cored_pack_verify_entry(p, e, &err) == 0;
    }
    CHECK_MSG(same, "pack pixels equal decode + resize");
    cored_free(file);
    cored_image_release(&img);
    cored_resizer_release(&rz);
    cored_pack_free(p);

    float *xa = malloc(23 * IMG * sizeof(float)), *xb = malloc(23 * IMG * sizeof(float));
    int ia[23], ib[23];
    CHECK(loader_epoch(xa, ia, ds, NULL, &err) == 23);
    rc = loader_epoch(xb, ib, ds, packpath, &err);
    CHECK_MSG(rc == 23, "loader with pack: %d %s", rc, err.msg);
    CHECK_MSG(!memcmp(ia, ib, sizeof ia) && !memcmp(xa, xb, 23 * IMG * sizeof(float)),
              "loader batches identical from files and from the pack");
    free(xa);
    free(xb);

    /* Rebuilding unchanged reuses everything. */
    CHECK(build(ds, &st, &err) == 0 && st.reused == 23 && st.decoded == 0);
    cored_dataset_free(ds);
}

static void test_stale_and_wrong(void)
{
    cored_dataset *ds = NULL;
    cored_error err;
    cored_loader *l = NULL;
    CHECK(cored_dataset_open(&ds, root, "A", CORED_SPLIT_TRAIN, &err) == 0);
    cored_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch = 4;
    o.size = SIZE + 4;
    o.threads = 1;
    o.pack = packpath;
    CHECK(cored_loader_create(&l, ds, &o, &err) == CORED_E_ARG && l == NULL);
    CHECK_MSG(strstr(err.msg, "12 px") && strstr(err.hint, "--size 16"), "wrong size: %s / %s", err.msg, err.hint);
    o.size = SIZE;

    /* touch one source: stale */
    const char *victim = cored_dataset_path(ds, 3);
    struct timespec ts[2] = {{0, UTIME_NOW}, {1000000000, 0}};
    CHECK(utimensat(AT_FDCWD, victim, ts, 0) == 0);
    CHECK(cored_loader_create(&l, ds, &o, &err) == CORED_E_ARG && l == NULL);
    CHECK_MSG(strstr(err.msg, "stale") && strstr(err.msg, victim) && strstr(err.hint, "cored pack"),
              "stale pack: %s", err.msg);
    cored_pack_stats st;
    CHECK(build(ds, &st, &err) == 0 && st.reused == 22 && st.decoded == 1);
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    cored_loader_free(l);
    l = NULL;

    /* same mtime, other size */
    char rel[256];
    snprintf(rel, sizeof rel, "%s", cored_dataset_relpath(ds, 4));
    put_png(root, rel, 40, 40, 99);
    struct stat sb;
    stat(cored_dataset_path(ds, 4), &sb);
    CHECK(cored_loader_create(&l, ds, &o, &err) == CORED_E_ARG && strstr(err.msg, "size"));
    CHECK(build(ds, &st, &err) == 0 && st.decoded == 1);

    /* a new image not in the pack */
    put_png(root, "A/train/fake/new.png", 10, 10, 3);
    cored_dataset *ds2 = NULL;
    CHECK(cored_dataset_open(&ds2, root, "A", CORED_SPLIT_TRAIN, &err) == 0);
    CHECK(cored_loader_create(&l, ds2, &o, &err) == CORED_E_ARG && strstr(err.msg, "does not contain") &&
          strstr(err.msg, "new.png"));
    CHECK(build(ds2, &st, &err) == 0 && st.images == 24 && st.decoded == 1 && st.reused == 23);
    cored_dataset_free(ds2);
    cored_dataset_free(ds);
}

static char logged[4096];
static void log_sink(cored_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level != CORED_LOG_WARN) return;
    size_t l = strlen(logged);
    snprintf(logged + l, sizeof logged - l, "%s\n", msg);
}

/* An undecodable source becomes a bad entry; the loader skips it like a corrupt file. */
static void test_bad_source(void)
{
    put_text(root, "A/train/fake/broken.png", "not a png");
    cored_dataset *ds = NULL;
    cored_error err;
    cored_pack_stats st;
    CHECK(cored_dataset_open(&ds, root, "A", CORED_SPLIT_TRAIN, &err) == 0);
    logged[0] = '\0';
    cored_set_log(log_sink, NULL);
    CHECK(build(ds, &st, &err) == 0 && st.bad == 1);
    CHECK(strstr(logged, "broken.png") != NULL);
    CHECK(cored_pack_build(packpath, ds, SIZE, 1, NULL, 1, &st, &err) == CORED_E_FORMAT &&
          strstr(err.msg, "broken.png"));
    float *x = malloc(30 * IMG * sizeof(float));
    int idx[30];
    int n = loader_epoch(x, idx, ds, packpath, &err);
    CHECK_MSG(n == cored_dataset_count(ds) - 1, "bad entry skipped (%d of %d)", n, cored_dataset_count(ds));
    cored_set_log(NULL, NULL);
    free(x);
    cored_dataset_free(ds);
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len);
    if (fread(b, 1, *len, f) != *len) *len = 0;
    fclose(f);
    return b;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int parse_fails(const uint8_t *buf, size_t len, const char *want)
{
    cored_pack *p = NULL;
    cored_error err;
    memset(&err, 0, sizeof err);
    int rc = cored_pack_parse(&p, buf, len, "bad.pack", &err);
    cored_pack_free(p);
    int ok = rc == CORED_E_FORMAT && strstr(err.msg, "bad.pack") && (!want || strstr(err.msg, want));
    if (!ok) fprintf(stderr, "  rc %d: %s (wanted %s)\n", rc, err.msg, want ? want : "");
    return ok;
}

static void test_corrupt_packs(void)
{
    size_t len;
    uint8_t *good = read_all(packpath, &len), *b = malloc(len);
    cored_pack *p = NULL;
    cored_error err;
    CHECK(cored_pack_parse(&p, good, len, "good", &err) == 0);
    cored_pack_free(p);
    /* truncation at every byte of the metadata and at a few points in the pixels */
    int accepted = 0;
    size_t meta = 128 + 40 * 24 + 600;
    for (size_t n = 0; n < len; n += n < meta ? 1 : 997) {
        memcpy(b, good, n);
        p = NULL;
        if (cored_pack_parse(&p, b, n, "cut", &err) == 0) accepted++;
        cored_pack_free(p);
    }
    CHECK_MSG(accepted == 0, "%d truncated packs accepted", accepted);
    CHECK(parse_fails(good, 100, "truncated"));
#define VARIANT(code, want)                                                                        \
    do {                                                                                           \
        memcpy(b, good, len);                                                                      \
        code;                                                                                      \
        CHECK(parse_fails(b, len, want));                                                          \
    } while (0)
    VARIANT(b[0] = 'X', "magic");
    VARIANT(b[8] = 2, "version 2");
    VARIANT(b[16] = 0, "size");
    VARIANT(put64(b + 24, 1000000), "count");              /* count that does not fit */
    VARIANT(put64(b + 24, 23), "sections");               /* count != pixels */
    VARIANT(put64(b + 48, len); cored_pack_fix_checksum(b, len), "sections");
    VARIANT(put64(b + 72, len + 1), "header says");
    VARIANT(put64(b + 24, (uint64_t)CORED_PACK_MAX_COUNT + 1), "at most"); /* checked before sizing */
    VARIANT(put64(b + 24, 1ull << 31), "at most");
    VARIANT(put64(b + 56, 4096 + 64); put64(b + 64, len - 4096 - 64); cored_pack_fix_checksum(b, len), "sections");
    VARIANT(b[100] = 1; cored_pack_fix_checksum(b, len), "malformed");    /* reserved bytes */
    /* index entries, with a valid header checksum so the entry checks are reached */
    VARIANT(b[128 + 24] = 0xFF; b[128 + 27] = 0x7F; cored_pack_fix_checksum(b, len), "string table");
    VARIANT(b[128 + 28] = 0; b[128 + 29] = 0; cored_pack_fix_checksum(b, len), "string table");
    VARIANT(b[128 + 32] = 2; cored_pack_fix_checksum(b, len), "label");
    VARIANT(b[128 + 40 + 24] = 0; b[128 + 40 + 28] = b[128 + 28]; cored_pack_fix_checksum(b, len), "twice");
    VARIANT(b[128 + 40 * 24 + 3] ^= 1, "checksum");       /* a flipped byte in the strings */
    VARIANT(b[128 + 17] ^= 1, "checksum");                /* a flipped pixel checksum */
    /* a flipped pixel: the header is fine, the entry fails verification */
    memcpy(b, good, len);
    b[len - 5] ^= 0x55;
    p = NULL;
    CHECK(cored_pack_parse(&p, b, len, "pix", &err) == 0);
    int failed = 0;
    for (int i = 0; p && i < cored_pack_count(p); i++) failed += cored_pack_verify_entry(p, i, &err) != 0;
    CHECK_MSG(failed == 1 && strstr(err.msg, "checksum"), "one entry fails its pixel checksum (%d)", failed);
    cored_pack_free(p);
    /* the same through a file and the loader: the sample is skipped, strict is an error */
    write_bytes(packpath, b, len);
    cored_dataset *ds = NULL;
    CHECK(cored_dataset_open(&ds, root, "A", CORED_SPLIT_TRAIN, &err) == 0);
    float *x = malloc(30 * IMG * sizeof(float));
    int idx[30];
    int n = loader_epoch(x, idx, ds, packpath, &err);
    CHECK_MSG(n == cored_dataset_count(ds) - 2, "corrupt pixels skipped (%d)", n);
    write_bytes(packpath, good, 64);
    cored_loader *l = NULL;
    cored_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch = 4;
    o.size = SIZE;
    o.pack = packpath;
    CHECK(cored_loader_create(&l, ds, &o, &err) == CORED_E_FORMAT && strstr(err.msg, packpath));
    char nopath[1300];
    snprintf(nopath, sizeof nopath, "%s.missing", packpath);
    o.pack = nopath;
    CHECK(cored_loader_create(&l, ds, &o, &err) == CORED_E_IO && strstr(err.msg, "missing"));
    free(x);
    cored_dataset_free(ds);
    free(b);
    free(good);
}

/* The header records the pixel pipeline; a pack of another one is refused by the loader
   and rebuilt (not reused) by cored pack. */
static void test_pipeline_version(void)
{
    cored_dataset *ds = NULL;
    cored_error err;
    cored_pack_stats st;
    CHECK(cored_dataset_open(&ds, root, "A", CORED_SPLIT_TRAIN, &err) == 0);
    CHECK(build(ds, &st, &err) == 0);
    cored_pack *p = NULL;
    CHECK(cored_pack_open(&p, packpath, &err) == 0 && cored_pack_pipeline(p) == CORED_PACK_PIPELINE);
    cored_pack_free(p);
    size_t len;
    uint8_t *b = read_all(packpath, &len);
    b[88] = (uint8_t)(CORED_PACK_PIPELINE + 1);
    CHECK(cored_pack_fix_checksum(b, len) == 0);
    write_bytes(packpath, b, len);
    free(b);
    cored_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch = 4;
    o.size = SIZE;
    o.pack = packpath;
    cored_loader *l = NULL;
    CHECK(cored_loader_create(&l, ds, &o, &err) == CORED_E_ARG && l == NULL);
    CHECK_MSG(strstr(err.msg, "pixel pipeline") && strstr(err.hint, "cored pack"), "pipeline: %s", err.msg);
    CHECK(build(ds, &st, &err) == 0 && st.reused == 0 && st.decoded + st.bad == st.images);
    CHECK(build(ds, &st, &err) == 0 && st.reused + st.bad == st.images);
    cored_dataset_free(ds);
}

/* Corrupt sources: the pack stores them as bad entries, and the loader gives the same
   batches from the pack as from the files, at 1, 2 and 3 threads (pack built with 1 and 3). */
static void test_pack_equals_decode_with_corrupt_files(void)
{
    const char *r = fresh_dir("packbad");
    char rel[256], pk[1200];
    for (int i = 0; i < 30; i++) {
        snprintf(rel, sizeof rel, "B/train/%s/%02d.%s", i % 3 ? "real" : "fake", i, i % 2 ? "jpg" : "png");
        if (i % 2)
            put_jpeg(r, rel, 18 + i, 11 + i, i);
        else
            put_png(r, rel, 18 + i, 11 + i, i);
    }
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, r, "B", CORED_SPLIT_TRAIN, &err) == 0);
    write_bytes(cored_dataset_path(ds, 2), "", 0);
    write_bytes(cored_dataset_path(ds, 11), "\xff\xd8\xff", 3);
    put_text(r, cored_dataset_relpath(ds, 19), "text");
    cored_set_log(log_sink, NULL);
    float *xf = malloc(30 * IMG * sizeof(float)), *xp = malloc(30 * IMG * sizeof(float));
    int idf[30], idp[30];
    snprintf(pk, sizeof pk, "%s/p.bin", r);
    int build_threads[2] = {1, 3};
    for (int bt = 0; bt < 2; bt++) {
        cored_pack_stats st;
        CHECK(cored_pack_build(pk, ds, SIZE, build_threads[bt], NULL, 0, &st, &err) == 0 && st.bad == 3);
        for (int t = 1; t <= 3; t++) {
            int nf = loader_epoch_threads(xf, idf, ds, NULL, t, &err);
            int np = loader_epoch_threads(xp, idp, ds, pk, t, &err);
            int same = nf == 27 && np == 27 && !memcmp(idf, idp, sizeof(int) * 27) &&
                       !memcmp(xf, xp, 27 * IMG * sizeof(float));
            CHECK_MSG(same, "pack built with %d threads, loader %d threads: files %d, pack %d images", build_threads[bt],
                      t, nf, np);
        }
    }
    cored_set_log(NULL, NULL);
    free(xf);
    free(xp);

    /* An unreadable source at build time fails the build instead of becoming a bad entry. */
    const char *victim = cored_dataset_path(ds, 5);
    char moved[1300];
    snprintf(moved, sizeof moved, "%s.away", victim);
    CHECK(rename(victim, moved) == 0);
    cored_pack_stats st;
    int rc = cored_pack_build(pk, ds, SIZE, 2, NULL, 0, &st, &err);
    CHECK_MSG(rc == CORED_E_IO && strstr(err.msg, victim), "unreadable source: %d %s", rc, err.msg);
    CHECK(rename(moved, victim) == 0);
    cored_dataset_free(ds);
}

/* A FIFO where the pack should be is refused at once (a blocking open would hang). */
static void test_fifo_pack(void)
{
    char fifo[1200];
    snprintf(fifo, sizeof fifo, "%s/fifo.pack", root);
    CHECK(mkfifo(fifo, 0644) == 0);
    alarm(20);
    cored_pack *p = NULL;
    cored_error err;
    CHECK(cored_pack_open(&p, fifo, &err) == CORED_E_IO && p == NULL && strstr(err.msg, "FIFO"));
    alarm(0);
}

static int write_text(FILE *f, const char *path, void *user, cored_error *err)
{
    const char *text = user;
    return cored_fwrite_all(f, text, strlen(text), path, err);
}

/* cored_clean_stale_temps removes the temporaries of writers that are gone — a dead pid, or
   a pid whose current process started after the file was written (pid reuse) — and keeps
   those of live writers: another process (a second cored pack) or this one. */
static void test_stale_temps(void)
{
    const char *dir = fresh_dir("temps");
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0); /* a pid that is certainly dead now */
    struct {
        char name[128];
        int old, want_kept;
    } t[] = {
        {"", 0, 0}, /* dead writer */
        {"", 0, 1}, /* this process, being written */
        {"", 1, 0}, /* this pid, but written before this process started: an earlier run */
        {".x.bin.tmp.1.7", 0, 1}, /* pid 1 is alive and may be writing it */
        {".x.bin.tmp.1.8", 1, 0}, /* pid 1 started after the year 2000 */
        {".x.bin.tmp.notapid", 1, 1}, /* not a name cored writes */
        {"", 1, 1}, /* another file's temporary */
    };
    snprintf(t[0].name, sizeof t[0].name, ".x.bin.tmp.%ld.0", (long)child);
    snprintf(t[1].name, sizeof t[1].name, ".x.bin.tmp.%ld.3", (long)getpid());
    snprintf(t[2].name, sizeof t[2].name, ".x.bin.tmp.%ld.4", (long)getpid());
    snprintf(t[6].name, sizeof t[6].name, ".y.bin.tmp.%ld.0", (long)child);
    int n = (int)(sizeof t / sizeof t[0]), ok = 1;
    char p[1300];
    for (int i = 0; i < n; i++) {
        put_text(dir, t[i].name, "t");
        snprintf(p, sizeof p, "%s/%s", dir, t[i].name);
        struct timespec y2000[2] = {{946684800, 0}, {946684800, 0}};
        if (t[i].old) CHECK(utimensat(AT_FDCWD, p, y2000, 0) == 0);
    }
    cored_clean_stale_temps(dir, "x.bin");
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, t[i].name);
        int kept = access(p, F_OK) == 0;
        if (kept != t[i].want_kept) fprintf(stderr, "  %s: %s\n", t[i].name, kept ? "kept" : "removed");
        ok &= kept == t[i].want_kept;
    }
    CHECK_MSG(ok, "only the temporaries of gone writers are removed");

    /* an atomic write of a file clears what a killed writer of the same file left */
    snprintf(p, sizeof p, "%s/.y.bin.tmp.%ld.0", dir, (long)child);
    CHECK(access(p, F_OK) == 0);
    char target[1300];
    snprintf(target, sizeof target, "%s/y.bin", dir);
    cored_error err;
    CHECK(cored_write_atomic(target, write_text, "new", &err) == CORED_OK);
    CHECK_MSG(access(p, F_OK) != 0, "cored_write_atomic removes a dead writer's temporary of its file");
}

int main(void)
{
    cored_alloc_stats before = cored_alloc_counts();
    RUN(test_round_trip);
    RUN(test_stale_and_wrong);
    RUN(test_bad_source);
    RUN(test_corrupt_packs);
    RUN(test_pipeline_version);
    RUN(test_pack_equals_decode_with_corrupt_files);
    RUN(test_fifo_pack);
    RUN(test_stale_temps);
    char want[1100];
    cored_pack_default_path(want, sizeof want, "DATA/", 128);
    CHECK(!strcmp(want, "DATA/.cored-pack-128.bin"));
    cored_alloc_stats after = cored_alloc_counts();
    CHECK_MSG(after.allocs - before.allocs == after.frees - before.frees, "every allocation freed");
    return test_finish();
}
