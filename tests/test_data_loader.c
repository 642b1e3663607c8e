/*
 * The loader: batches independent of the thread count, resume mid-epoch equal to an
 * uninterrupted epoch, seed-dependent order, last partial batch kept, flips that are
 * mirror images, CutMix exactly as the official code (statistics over many batches, only
 * opposite-label partners, labels unchanged, `mixed` all zero when it did not fire),
 * corrupt files skipped without disturbing the other samples (also with CutMix, at several
 * thread counts), --strict, every file corrupt (an error, no hang), a resumed epoch whose
 * remaining images are all corrupt (it ends), I/O errors (a run error, never a skip),
 * restarts mid-epoch while workers are busy (equal to a reference), the release order,
 * signals kept out of the workers, the batch cap, and shutdown in the middle of an epoch.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "harness.h"
#include "test_data_util.h"

#define N_REAL 30
#define N_FAKE 21
#define SIZE 12
#define IMG (SIZE * SIZE * 3)

static char root[1024];

static void build_root(const char *name)
{
    snprintf(root, sizeof root, "%s", fresh_dir(name));
    char rel[256];
    for (int i = 0; i < N_REAL; i++) {
        snprintf(rel, sizeof rel, "T/train/real/v%d/%03d.png", i % 4, i);
        put_png(root, rel, 20, 14, i);
    }
    for (int i = 0; i < N_FAKE; i++) {
        snprintf(rel, sizeof rel, "T/train/fake/%03d.png", i);
        put_png(root, rel, 20, 14, 100 + i);
    }
}

typedef struct {
    int n;
    int labels[64], index[64];
    uint8_t flipped[64], mixed[64];
    float *x;
    int cutmix;
} saved;

static int mixed_without_cutmix; /* batches whose `mixed` is not all zero though CutMix did not fire */

static cored_loader_opts opts(int threads, uint64_t seed)
{
    cored_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch = 16;
    o.size = SIZE;
    o.threads = threads;
    o.ring = 3;
    o.seed = seed;
    o.shuffle = 1;
    o.flip = 1;
    o.cutmix = CORED_CUTMIX_OPPOSITE;
    o.cutmix_p = 0.6f; /* fire often in a small test */
    return o;
}

/* Runs epoch `epoch` from `first` and stores every batch; returns the batch count or -1. */
static int run_epoch(saved *out, int max, const cored_dataset *ds, const cored_loader_opts *o, int epoch,
                     int first)
{
    cored_loader *l = NULL;
    cored_error err;
    if (cored_loader_create(&l, ds, o, &err)) {
        fprintf(stderr, "  create: %s\n", err.msg);
        return -1;
    }
    int k = 0, rc;
    cored_batch *b;
    if (cored_loader_start(l, epoch, first, &err)) k = -1;
    while (k >= 0 && (rc = cored_loader_next(l, &b, &err)) == 1) {
        if (k < max) {
            out[k].n = b->n;
            out[k].cutmix = b->cutmix;
            memcpy(out[k].labels, b->labels, (size_t)b->n * sizeof(int));
            memcpy(out[k].index, b->index, (size_t)b->n * sizeof(int));
            memcpy(out[k].flipped, b->flipped, (size_t)b->n);
            memcpy(out[k].mixed, b->mixed, (size_t)b->n);
            out[k].x = malloc((size_t)b->n * IMG * sizeof(float));
            memcpy(out[k].x, b->x, (size_t)b->n * IMG * sizeof(float));
            CHECK(b->epoch == epoch && b->batch_index == first + k);
        }
        for (int i = 0; i < b->n; i++) mixed_without_cutmix += !b->cutmix && b->mixed[i];
        k++;
        cored_loader_release(l, b);
    }
    if (k >= 0 && rc < 0) {
        fprintf(stderr, "  next: %s\n", err.msg);
        k = -1;
    }
    cored_loader_free(l);
    return k;
}

static void free_saved(saved *s, int n)
{
    for (int i = 0; i < n; i++) {
        free(s[i].x);
        s[i].x = NULL;
    }
}

static int same_batch(const saved *a, const saved *b)
{
    return a->n == b->n && a->cutmix == b->cutmix && !memcmp(a->labels, b->labels, (size_t)a->n * sizeof(int)) &&
           !memcmp(a->index, b->index, (size_t)a->n * sizeof(int)) && !memcmp(a->flipped, b->flipped, (size_t)a->n) &&
           !memcmp(a->mixed, b->mixed, (size_t)a->n) && !memcmp(a->x, b->x, (size_t)a->n * IMG * sizeof(float));
}

static void test_determinism_and_resume(void)
{
    build_root("det");
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    saved a[8], b[8], c[8], d[8];
    memset(a, 0, sizeof a), memset(b, 0, sizeof b), memset(c, 0, sizeof c), memset(d, 0, sizeof d);
    cored_loader_opts o1 = opts(1, 42), o2 = opts(2, 42), o3 = opts(3, 42), o4 = opts(2, 43);
    o3.ring = 1;
    int na = run_epoch(a, 8, ds, &o1, 1, 0), nb = run_epoch(b, 8, ds, &o2, 1, 0);
    CHECK(na == 4 && nb == 4);
    CHECK_MSG(a[3].n == (N_REAL + N_FAKE) - 48, "last partial batch kept (%d)", a[3].n);
    int same = na == nb;
    for (int k = 0; same && k < na; k++) same &= same_batch(&a[k], &b[k]);
    CHECK_MSG(same, "1 and 2 threads give identical batches");
    int nc = run_epoch(c, 8, ds, &o3, 1, 2);
    CHECK(nc == 2);
    same = nc == 2;
    for (int k = 0; same && k < nc; k++) same &= same_batch(&a[2 + k], &c[k]);
    CHECK_MSG(same, "resumed at batch 2 (3 threads, ring 1) equals the uninterrupted epoch");
    /* every sample once per epoch */
    int seen[N_REAL + N_FAKE] = {0}, cut = 0;
    for (int k = 0; k < na; k++) {
        cut += a[k].cutmix;
        for (int i = 0; i < a[k].n; i++) {
            seen[a[k].index[i]]++;
            CHECK(a[k].labels[i] == cored_dataset_label(ds, a[k].index[i]));
        }
    }
    int once = 1;
    for (int i = 0; i < N_REAL + N_FAKE; i++) once &= seen[i] == 1;
    CHECK_MSG(once, "each sample exactly once per epoch");
    CHECK_MSG(cut > 0, "CutMix fired in this epoch");
    int nd = run_epoch(d, 8, ds, &o4, 1, 0);
    CHECK(nd == 4 && memcmp(a[0].index, d[0].index, sizeof a[0].index) != 0);
    free_saved(d, 8);
    run_epoch(d, 8, ds, &o1, 2, 0);
    CHECK_MSG(memcmp(a[0].index, d[0].index, 16 * sizeof(int)) != 0, "another epoch, another order");
    free_saved(a, 8), free_saved(b, 8), free_saved(c, 8), free_saved(d, 8);
    cored_dataset_free(ds);
}

/* Without CutMix: every sample is its deterministic transform, or its mirror image. */
static void test_flip_and_plain(void)
{
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    cored_loader_opts o = opts(2, 5);
    o.cutmix = CORED_CUTMIX_NONE;
    o.shuffle = 0;
    saved s[8];
    memset(s, 0, sizeof s);
    int nb = run_epoch(s, 8, ds, &o, 0, 0);
    CHECK(nb == 4);
    int flipped = 0, ok = 1, order = 1;
    float ref[IMG];
    for (int k = 0; k < nb; k++)
        for (int i = 0; i < s[k].n; i++) {
            int idx = s[k].index[i];
            order &= idx == k * 16 + i;
            CHECK(cored_image_load(ref, cored_dataset_path(ds, idx), SIZE, &err) == 0);
            const float *x = s[k].x + (size_t)i * IMG;
            int plain = !memcmp(x, ref, sizeof ref), mirror = 1;
            for (int y = 0; y < SIZE; y++)
                for (int xx = 0; xx < SIZE; xx++)
                    for (int c = 0; c < 3; c++)
                        mirror &= x[(y * SIZE + xx) * 3 + c] == ref[(y * SIZE + SIZE - 1 - xx) * 3 + c];
            ok &= plain || mirror;
            flipped += !plain && mirror;
        }
    CHECK_MSG(order, "no shuffle: samples in index order");
    CHECK_MSG(ok, "every sample is the plain transform or its mirror image");
    CHECK_MSG(flipped > 12 && flipped < 39, "about half flipped (%d of 51)", flipped);
    free_saved(s, 8);
    cored_dataset_free(ds);
}

/* With CutMix (flip off): a modified sample differs from its plain transform only inside
   one box shared by the batch, where it equals a partner of the opposite label. */
static void test_cutmix_in_batches(void)
{
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    float *ref = malloc((size_t)(N_REAL + N_FAKE) * IMG * sizeof(float));
    for (int i = 0; i < N_REAL + N_FAKE; i++)
        CHECK(cored_image_load(ref + (size_t)i * IMG, cored_dataset_path(ds, i), SIZE, &err) == 0);
    int fired = 0, modified = 0, bad = 0;
    for (int epoch = 0; epoch < 6; epoch++) {
        cored_loader_opts o = opts(2, 9);
        o.flip = 0;
        saved s[8];
        memset(s, 0, sizeof s);
        int nb = run_epoch(s, 8, ds, &o, epoch, 0);
        for (int k = 0; k < nb; k++) {
            fired += s[k].cutmix;
            int any = 0;
            for (int i = 0; i < s[k].n; i++) {
                const float *x = s[k].x + (size_t)i * IMG, *r = ref + (size_t)s[k].index[i] * IMG;
                int diff = 0;
                for (int p = 0; p < SIZE * SIZE * 3 && !diff; p++) diff = x[p] != r[p];
                if (!diff) continue;
                any = 1;
                modified++;
                if (s[k].labels[i] != cored_dataset_label(ds, s[k].index[i])) bad++;
                /* a partner of the opposite label explains every changed pixel */
                int explained = 0;
                for (int j = 0; j < s[k].n && !explained; j++) {
                    if (s[k].labels[j] == s[k].labels[i]) continue;
                    const float *q = ref + (size_t)s[k].index[j] * IMG;
                    int ok = 1;
                    for (int p = 0; p < SIZE * SIZE * 3 && ok; p++)
                        if (x[p] != r[p] && x[p] != q[p]) ok = 0;
                    explained = ok;
                }
                bad += !explained;
            }
            if (any && !s[k].cutmix) bad++;
        }
        free_saved(s, 8);
    }
    CHECK_MSG(bad == 0, "%d CutMix violations", bad);
    CHECK_MSG(fired > 3 && modified > 10, "CutMix fired in %d batches, %d samples modified", fired, modified);
    free(ref);
    cored_dataset_free(ds);
}

/* The draw itself over many batches: the official code's statistics. */
static void test_cutmix_statistics(void)
{
    enum { B = 32, TRIALS = 40000 };
    int labels[B], partner[B];
    uint8_t marked[B];
    uint32_t scratch[B];
    for (int i = 0; i < B; i++) labels[i] = i % 2;
    int fired = 0, wrong = 0, over_half = 0;
    double area = 0, marked_frac = 0;
    for (int t = 0; t < TRIALS; t++) {
        cored_rng r;
        cored_rng_derive(&r, 2020, 0x4355544D, 0, (uint64_t)t);
        cored_cutmix_box box;
        cored_cutmix_draw(&box, partner, marked, scratch, labels, B, 128, CORED_CUTMIX_OPPOSITE, 0.2f, 0.5f, &r);
        if (!box.fired) continue;
        fired++;
        double a = (double)(box.x1 - box.x0) * (box.y1 - box.y0) / (128.0 * 128.0);
        area += a;
        over_half += a > 0.5;
        int m = 0;
        for (int i = 0; i < B; i++) {
            m += marked[i];
            wrong += marked[i] != (labels[partner[i]] != labels[i]);
        }
        marked_frac += m / (double)B;
    }
    double rate = fired / (double)TRIALS;
    CHECK_MSG(fabs(rate - 0.2) < 0.01, "OPPOSITE fires in %.3f of batches (want 0.2)", rate);
    CHECK_MSG(wrong == 0, "only opposite-label pairs are marked");
    CHECK_MSG(fabs(area / fired - 0.31) < 0.02, "mean pasted area %.3f when it fires (the official code: about 0.31)",
              area / fired);
    CHECK_MSG(fabs(over_half / (double)fired - 0.2) < 0.03, "area > 50%% in %.3f of firings (~0.2)",
              over_half / (double)fired);
    CHECK_MSG(fabs(marked_frac / fired - 0.5) < 0.03, "about half the batch marked (%.3f)", marked_frac / fired);

    /* SAME mode: p = 0.5, same-label partners only (never itself). */
    fired = wrong = 0;
    for (int t = 0; t < 20000; t++) {
        cored_rng r;
        cored_rng_derive(&r, 1, 2, 3, (uint64_t)t);
        cored_cutmix_box box;
        cored_cutmix_draw(&box, partner, marked, scratch, labels, B, 128, CORED_CUTMIX_SAME, 0.5f, 1.0f, &r);
        if (!box.fired) continue;
        fired++;
        for (int i = 0; i < B; i++)
            wrong += marked[i] != (labels[partner[i]] == labels[i] && partner[i] != i);
    }
    CHECK_MSG(fabs(fired / 20000.0 - 0.5) < 0.02 && wrong == 0, "SAME fires in %.3f, %d wrong marks",
              fired / 20000.0, wrong);
}

static char logged[8192];
static void log_sink(cored_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level != CORED_LOG_WARN) return;
    size_t l = strlen(logged);
    snprintf(logged + l, sizeof logged - l, "%s\n", msg);
}

static void test_corrupt_files(void)
{
    build_root("corrupt");
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    cored_loader_opts o = opts(2, 3);
    o.cutmix = CORED_CUTMIX_NONE;
    saved clean[8], dirty[8];
    memset(clean, 0, sizeof clean), memset(dirty, 0, sizeof dirty);
    int nb = run_epoch(clean, 8, ds, &o, 0, 0);
    /* corrupt three files in place: zero bytes, text, truncated PNG */
    int victims[3] = {2, 17, 40};
    for (int v = 0; v < 3; v++) {
        const char *p = cored_dataset_path(ds, victims[v]);
        if (v == 0) write_bytes(p, "", 0);
        if (v == 1) write_bytes(p, "hello", 5);
        if (v == 2) {
            tbuf b = make_png(20, 14, PNG_COLOR_TYPE_RGB, 8, 0, 1);
            write_bytes(p, b.data, b.len / 2);
            free(b.data);
        }
    }
    logged[0] = '\0';
    cored_set_log(log_sink, NULL);
    cored_loader *l = NULL;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    int k = 0, rc, ok = 1;
    cored_batch *b;
    for (int epoch = 0; epoch < 2; epoch++) {
        CHECK(cored_loader_start(l, epoch, 0, &err) == 0);
        k = 0;
        while ((rc = cored_loader_next(l, &b, &err)) == 1) {
            if (epoch == 0) {
                /* the clean batch without the victims, same order, same pixels */
                int j = 0;
                for (int i = 0; i < clean[k].n; i++) {
                    int idx = clean[k].index[i];
                    if (idx == victims[0] || idx == victims[1] || idx == victims[2]) continue;
                    ok &= j < b->n && b->index[j] == idx &&
                          !memcmp(b->x + (size_t)j * IMG, clean[k].x + (size_t)i * IMG, IMG * sizeof(float));
                    j++;
                }
                ok &= j == b->n;
            }
            k++;
            cored_loader_release(l, b);
        }
        CHECK(rc == 0 && k == nb);
    }
    CHECK_MSG(ok, "corrupt samples dropped; every other sample unchanged");
    CHECK_MSG(cored_loader_skipped(l) == 3, "3 distinct files skipped (got %d)", cored_loader_skipped(l));
    int named = 1;
    for (int v = 0; v < 3; v++) named &= strstr(logged, cored_dataset_path(ds, victims[v])) != NULL;
    CHECK_MSG(named, "each warning names its file:\n%s", logged);
    int lines = 0;
    for (const char *p = logged; (p = strchr(p, '\n')); p++) lines++;
    CHECK_MSG(lines == 3, "one warning per file over two epochs (%d)", lines);
    cored_loader_free(l);
    cored_set_log(NULL, NULL);

    /* strict: an error naming the file, and it stays an error */
    o.strict = 1;
    o.shuffle = 0;
    l = NULL;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    CHECK(cored_loader_start(l, 0, 0, &err) == 0);
    rc = cored_loader_next(l, &b, &err);
    CHECK_MSG(rc == CORED_E_FORMAT && strstr(err.msg, cored_dataset_path(ds, victims[0])), "strict: %d %s", rc,
              err.msg);
    CHECK(cored_loader_next(l, &b, &err) < 0);
    cored_loader_free(l);
    free_saved(clean, 8), free_saved(dirty, 8);
    cored_dataset_free(ds);
}

static void test_all_corrupt_and_shutdown(void)
{
    const char *r = fresh_dir("allbad");
    for (int i = 0; i < 40; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "X/train/%s/%02d.jpg", i % 2 ? "fake" : "real", i);
        put_text(r, rel, "garbage");
    }
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, r, "X", CORED_SPLIT_TRAIN, &err) == 0);
    cored_loader_opts o = opts(2, 1);
    cored_loader *l = NULL;
    cored_batch *b;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    CHECK(cored_loader_next(l, &b, &err) == CORED_E_ARG); /* not started */
    CHECK(cored_loader_start(l, 0, 0, &err) == 0);
    int rc = cored_loader_next(l, &b, &err);
    CHECK_MSG(rc < 0 && strstr(err.msg, "no image"), "every file corrupt: %d %s", rc, err.msg);
    CHECK(cored_loader_skipped(l) == 40);
    cored_loader_free(l);
    cored_dataset_free(ds);

    /* Shutdown mid-epoch, holding batches; more batches held than the ring is an error. */
    build_root("shutdown");
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    o = opts(2, 1);
    o.batch = 4;
    o.ring = 2;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    CHECK(cored_loader_start(l, 0, 0, &err) == 0);
    cored_batch *b1 = NULL, *b2 = NULL;
    CHECK(cored_loader_next(l, &b1, &err) == 1);
    CHECK(cored_loader_next(l, &b2, &err) == 1);
    CHECK(cored_loader_next(l, &b, &err) == CORED_E_ARG);
    CHECK(cored_loader_start(l, 1, 0, &err) == CORED_E_ARG); /* batches still held */
    cored_loader_release(l, b1);
    cored_loader_release(l, b2);
    CHECK(cored_loader_start(l, 1, 3, &err) == 0);
    CHECK(cored_loader_next(l, &b, &err) == 1 && b->batch_index == 3);
    cored_loader_free(l); /* holding b, workers busy: must not hang */
    l = NULL;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    CHECK(cored_loader_start(l, 0, 0, &err) == 0);
    cored_loader_free(l); /* immediately after start */
    o.batch = 0;
    CHECK(cored_loader_create(&l, ds, &o, &err) == CORED_E_ARG);
    cored_dataset_free(ds);
}

/* Three corrupt files with CutMix and flips on: at 1, 2 and 3 threads (rings 1, 3, 2) the
   batches are identical; each is the clean batch without the victims, in the same order;
   a sample CutMix left alone equals its clean (flipped) pixels, a mixed one differs only
   where an opposite-label sample of the same batch has those pixels. */
static void test_corrupt_with_cutmix(void)
{
    build_root("cutbad");
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    cored_loader_opts plain = opts(2, 1);
    plain.cutmix = CORED_CUTMIX_NONE;
    enum { EPOCHS = 3 };
    saved clean[EPOCHS][8], run[3][8];
    memset(clean, 0, sizeof clean);
    for (int e = 0; e < EPOCHS; e++) CHECK(run_epoch(clean[e], 8, ds, &plain, e, 0) == 4);
    int victims[3] = {0, 25, 50};
    write_bytes(cored_dataset_path(ds, victims[0]), "", 0);
    write_bytes(cored_dataset_path(ds, victims[1]), "\xff\xd8\xff\xe0", 4);
    write_bytes(cored_dataset_path(ds, victims[2]), "\x89PNG\r\n\x1a\n", 8);
    cored_set_log(NULL, NULL);
    int fired = 0, violations = 0, order = 1, same = 1;
    for (int e = 0; e < EPOCHS; e++) {
        int threads[3] = {1, 2, 3}, rings[3] = {1, 3, 2}, nb[3];
        memset(run, 0, sizeof run);
        for (int t = 0; t < 3; t++) {
            cored_loader_opts o = opts(threads[t], 1);
            o.ring = rings[t];
            nb[t] = run_epoch(run[t], 8, ds, &o, e, 0);
        }
        same &= nb[0] == 4 && nb[1] == 4 && nb[2] == 4;
        for (int k = 0; same && k < 4; k++) same &= same_batch(&run[0][k], &run[1][k]) && same_batch(&run[0][k], &run[2][k]);
        for (int k = 0; k < nb[0] && k < 4; k++) {
            const saved *c = &clean[e][k], *r = &run[0][k];
            fired += r->cutmix;
            int j = 0;
            for (int i = 0; i < c->n; i++) {
                int idx = c->index[i];
                if (idx == victims[0] || idx == victims[1] || idx == victims[2]) continue;
                if (j >= r->n || r->index[j] != idx || r->flipped[j] != c->flipped[i]) {
                    order = 0;
                    break;
                }
                const float *x = r->x + (size_t)j * IMG, *own = c->x + (size_t)i * IMG;
                if (!r->mixed[j]) {
                    violations += memcmp(x, own, IMG * sizeof(float)) != 0;
                } else {
                    for (int p = 0; p < IMG; p++) {
                        if (x[p] == own[p]) continue;
                        int explained = 0;
                        for (int q = 0; q < c->n && !explained; q++)
                            explained = c->labels[q] != c->labels[i] && c->x[(size_t)q * IMG + p] == x[p];
                        violations += !explained;
                    }
                }
                j++;
            }
            order &= j == r->n;
        }
        for (int t = 0; t < 3; t++) free_saved(run[t], 8);
    }
    CHECK_MSG(same, "1, 2 and 3 threads give identical batches with corrupt files and CutMix");
    CHECK_MSG(order, "each batch is the clean batch without the corrupt samples, flips unchanged");
    CHECK_MSG(violations == 0, "%d pixels not explained by the sample or an opposite-label partner", violations);
    CHECK_MSG(fired > 2, "CutMix fired in %d batches", fired);
    for (int e = 0; e < EPOCHS; e++) free_saved(clean[e], 8);
    cored_dataset_free(ds);
}

/* A resumed epoch whose remaining images are all corrupt ends (0), as the uninterrupted
   epoch does after its good batches; an epoch that started at batch 0 with no good image
   at all is the error. */
static void test_resume_into_bad_tail(void)
{
    const char *r = fresh_dir("badtail");
    char rel[128];
    for (int i = 0; i < 17; i++) {
        snprintf(rel, sizeof rel, "T/train/%s/%02d.png", i < 9 ? "fake" : "real", i);
        put_png(r, rel, 20, 14, i);
    }
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, r, "T", CORED_SPLIT_TRAIN, &err) == 0);
    write_bytes(cored_dataset_path(ds, 16), "junk", 4); /* the last batch holds only sample 16 */
    cored_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch = 8;
    o.size = 8;
    o.threads = 2;
    o.seed = 1;
    cored_loader *l = NULL;
    cored_batch *b;
    int rc, k = 0;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    CHECK(cored_loader_start(l, 0, 0, &err) == 0);
    while ((rc = cored_loader_next(l, &b, &err)) == 1) {
        k++;
        cored_loader_release(l, b);
    }
    CHECK_MSG(rc == 0 && k == 2, "uninterrupted: %d batches, rc %d", k, rc);
    for (int first = 2; first <= 3; first++) {
        CHECK(cored_loader_start(l, 0, first, &err) == 0);
        rc = cored_loader_next(l, &b, &err);
        CHECK_MSG(rc == 0, "resumed at batch %d of 3: rc %d (%s)", first, rc, rc < 0 ? err.msg : "");
    }
    CHECK(cored_loader_start(l, 1, 1, &err) == 0);
    CHECK(cored_loader_next(l, &b, &err) == 1 && b->batch_index == 1);
    cored_loader_release(l, b);
    CHECK(cored_loader_next(l, &b, &err) == 0);
    cored_loader_free(l);
    /* every image corrupt: batch 0 start is an error, a resumed start just ends */
    for (int i = 0; i < 16; i++) write_bytes(cored_dataset_path(ds, i), "", 0);
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    CHECK(cored_loader_start(l, 0, 1, &err) == 0);
    CHECK(cored_loader_next(l, &b, &err) == 0);
    CHECK(cored_loader_start(l, 0, 0, &err) == 0);
    rc = cored_loader_next(l, &b, &err);
    CHECK_MSG(rc == CORED_E_FORMAT && strstr(err.msg, "no image of epoch 0"), "all bad from batch 0: %d %s", rc,
              err.msg);
    cored_loader_free(l);
    cored_dataset_free(ds);
}

/* A file that cannot be read is an error of the run naming it, not a skipped sample; once
   it is readable again the next epoch uses it. Also EMFILE (too many open files). */
static void test_io_errors(void)
{
    build_root("ioerr");
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    const char *victim = cored_dataset_path(ds, 7);
    char moved[1200];
    snprintf(moved, sizeof moved, "%s.away", victim);
    CHECK(rename(victim, moved) == 0);
    cored_loader_opts o = opts(2, 4);
    cored_loader *l = NULL;
    cored_batch *b;
    int rc;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    CHECK(cored_loader_start(l, 0, 0, &err) == 0);
    while ((rc = cored_loader_next(l, &b, &err)) == 1) cored_loader_release(l, b);
    CHECK_MSG(rc == CORED_E_IO && strstr(err.msg, victim), "missing file: %d %s", rc, err.msg);
    CHECK(cored_loader_next(l, &b, &err) == CORED_E_IO); /* the error stays */
    CHECK_MSG(cored_loader_skipped(l) == 0, "an unreadable file is not written off as corrupt");
    CHECK(rename(moved, victim) == 0);
    CHECK(cored_loader_start(l, 1, 0, &err) == 0);
    int n = 0;
    while ((rc = cored_loader_next(l, &b, &err)) == 1) {
        n += b->n;
        cored_loader_release(l, b);
    }
    CHECK_MSG(rc == 0 && n == N_REAL + N_FAKE, "readable again: %d images, rc %d", n, rc);

    /* No file descriptor left: open fails with EMFILE in the workers (retried, then an error). */
    struct rlimit old, low;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    low = old;
    low.rlim_cur = 3;
    /* the limit goes down before the epoch starts: the workers begin decoding at once */
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    rc = cored_loader_start(l, 2, 0, &err);
    if (rc == CORED_OK) rc = cored_loader_next(l, &b, &err);
    setrlimit(RLIMIT_NOFILE, &old);
    CHECK_MSG(rc == CORED_E_IO && strstr(err.msg, root) && strstr(err.msg, "open files"), "EMFILE: %d %s", rc,
              err.msg);
    CHECK(cored_loader_skipped(l) == 0);
    CHECK(cored_loader_start(l, 2, 0, &err) == 0);
    CHECK(cored_loader_next(l, &b, &err) == 1);
    cored_loader_release(l, b);
    cored_loader_free(l);
    cored_dataset_free(ds);
}

/* Batch k needs the ring slot of batch k - ring: holding that one while releasing later
   ones is an error that says which batch to give back. */
static void test_release_order(void)
{
    build_root("order");
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    cored_loader_opts o = opts(2, 1);
    o.batch = 4;
    o.ring = 3;
    cored_loader *l = NULL;
    cored_batch *b0, *b;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    CHECK(cored_loader_start(l, 0, 0, &err) == 0);
    CHECK(cored_loader_next(l, &b0, &err) == 1);
    for (int k = 1; k <= 2; k++) {
        CHECK(cored_loader_next(l, &b, &err) == 1 && b->batch_index == k);
        cored_loader_release(l, b);
    }
    int rc = cored_loader_next(l, &b, &err);
    CHECK_MSG(rc == CORED_E_ARG && strstr(err.msg, "batch 3") && strstr(err.msg, "batch 0") &&
                  strstr(err.msg, "order"),
              "holding batch 0 of a ring of 3: %d %s", rc, err.msg);
    cored_loader_release(l, b0);
    CHECK(cored_loader_next(l, &b, &err) == 1 && b->batch_index == 3);
    cored_loader_release(l, b);
    cored_loader_free(l);
    cored_dataset_free(ds);
}

/* Batch hashes of a reference run, then many restarts at random (epoch, batch) while
   workers are busy and batches are held: every batch equals the reference. */
#define R_EPOCHS 2
static uint64_t ref_hash[R_EPOCHS][8];
static int ref_n[R_EPOCHS][8];

static uint64_t batch_hash(const cored_batch *b)
{
    uint64_t h = cored_checksum64(b->x, (size_t)b->n * IMG * sizeof(float), 1);
    h ^= cored_checksum64(b->index, (size_t)b->n * sizeof(int), 2) * 3;
    h ^= cored_checksum64(b->mixed, (size_t)b->n, 3) * 5;
    return h ^ ((uint64_t)b->cutmix * 7 + (uint64_t)b->batch_index * 1315423911u);
}

static int restarts(const cored_dataset *ds, cored_loader_opts o, unsigned seed, int iters)
{
    cored_loader *l = NULL;
    cored_error err;
    int bad = 0;
    if (cored_loader_create(&l, ds, &o, &err)) return 1000;
    int nb = cored_loader_batches(l);
    uint64_t r = seed * 2654435761u + 1;
#define RND(n) ((int)((r = r * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % (n))
    for (int it = 0; it < iters; it++) {
        int e = RND(R_EPOCHS), first = RND(nb + 1), take = RND(nb + 2), expect = first;
        if (cored_loader_start(l, e, first, &err)) {
            bad++;
            continue;
        }
        cored_batch *held[8];
        int nh = 0;
        for (int t = 0; t < take; t++) {
            cored_batch *b;
            int rc = cored_loader_next(l, &b, &err);
            if (rc <= 0) {
                bad += rc < 0;
                break;
            }
            while (expect < nb && ref_n[e][expect] == 0) expect++;
            bad += b->batch_index != expect || batch_hash(b) != ref_hash[e][b->batch_index];
            expect = b->batch_index + 1;
            held[nh++] = b;
            int keep = RND(o.ring); /* release in order, keeping up to ring - 1 */
            while (nh > keep) {
                cored_loader_release(l, held[0]);
                memmove(held, held + 1, (size_t)(nh - 1) * sizeof *held);
                nh--;
            }
        }
        while (nh > 0) cored_loader_release(l, held[--nh]);
    }
#undef RND
    cored_loader_free(l);
    return bad;
}

static void test_restarts_while_busy(void)
{
    build_root("restarts");
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    write_bytes(cored_dataset_path(ds, 3), "x", 1);
    write_bytes(cored_dataset_path(ds, 33), "", 0);
    cored_loader_opts o = opts(1, 77);
    o.batch = 8;
    o.ring = 1;
    cored_loader *l = NULL;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    for (int e = 0; e < R_EPOCHS; e++) {
        cored_batch *b;
        CHECK(cored_loader_start(l, e, 0, &err) == 0);
        while (cored_loader_next(l, &b, &err) == 1) {
            ref_hash[e][b->batch_index] = batch_hash(b);
            ref_n[e][b->batch_index] = b->n;
            cored_loader_release(l, b);
        }
    }
    cored_loader_free(l);
    int threads[3] = {1, 2, 3}, rings[3] = {1, 2, 4};
    for (int t = 0; t < 3; t++)
        for (int g = 0; g < 3; g++) {
            o.threads = threads[t];
            o.ring = rings[g];
            int bad = restarts(ds, o, (unsigned)(10 * t + g), 25);
            CHECK_MSG(bad == 0, "%d threads, ring %d: %d batches differ from the reference", threads[t], rings[g], bad);
        }
    cored_dataset_free(ds);
}

/* Workers block every signal: one sent while the caller blocks it stays pending until the
   caller unblocks it, and is then handled on the caller's thread, never on a worker. */
static pthread_t caller_thread;
static volatile sig_atomic_t on_worker, handled;
static void on_usr1(int sig)
{
    (void)sig;
    handled++;
    if (!pthread_equal(pthread_self(), caller_thread)) on_worker++;
}

static void test_signals_stay_out_of_workers(void)
{
    build_root("signals");
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    caller_thread = pthread_self();
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, &old_sa) == 0);
    cored_loader_opts o = opts(3, 2);
    cored_loader *l = NULL;
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, &old);
    for (int e = 0; e < 3; e++) {
        cored_batch *b;
        CHECK(cored_loader_start(l, e, 0, &err) == 0);
        while (cored_loader_next(l, &b, &err) == 1) {
            kill(getpid(), SIGUSR1);
            cored_loader_release(l, b);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cored_loader_free(l);
    sigaction(SIGUSR1, &old_sa, NULL);
    CHECK_MSG(handled > 0 && on_worker == 0, "SIGUSR1 handled %d times, %d on a worker", (int)handled, (int)on_worker);
    cored_dataset_free(ds);
}

/* The batch size is capped, and a ring slot holds min(batch, count) images. */
static void test_batch_cap(void)
{
    build_root("cap");
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, &err) == 0);
    cored_loader_opts o = opts(2, 1);
    cored_loader *l = NULL;
    o.batch = CORED_MAX_LOADER_BATCH + 1;
    CHECK(cored_loader_create(&l, ds, &o, &err) == CORED_E_ARG && l == NULL);
    o.batch = CORED_MAX_LOADER_BATCH;
    o.size = 256; /* 65536 images a slot would be 64 GiB: only the 51 of the data set are */
    CHECK(cored_loader_create(&l, ds, &o, &err) == 0);
    cored_batch *b;
    CHECK(l && cored_loader_start(l, 0, 0, &err) == 0);
    CHECK(l && cored_loader_next(l, &b, &err) == 1 && b->n == N_REAL + N_FAKE);
    if (l) cored_loader_release(l, b);
    CHECK(l && cored_loader_next(l, &b, &err) == 0);
    cored_loader_free(l);
    cored_dataset_free(ds);
}

int main(void)
{
    cored_alloc_stats before = cored_alloc_counts();
    RUN(test_determinism_and_resume);
    RUN(test_flip_and_plain);
    RUN(test_cutmix_in_batches);
    RUN(test_cutmix_statistics);
    RUN(test_corrupt_files);
    RUN(test_all_corrupt_and_shutdown);
    RUN(test_corrupt_with_cutmix);
    RUN(test_resume_into_bad_tail);
    RUN(test_io_errors);
    RUN(test_release_order);
    RUN(test_restarts_while_busy);
    RUN(test_signals_stay_out_of_workers);
    RUN(test_batch_cap);
    CHECK_MSG(mixed_without_cutmix == 0, "mixed[] all zero when CutMix did not fire (%d)", mixed_without_cutmix);
    cored_alloc_stats after = cored_alloc_counts();
    CHECK_MSG(after.allocs - before.allocs == after.frees - before.frees, "every allocation freed");
    return test_finish();
}
