/*
 * The loader: batches independent of the thread count, resume mid-epoch equal to an
 * uninterrupted epoch, seed-dependent order, last partial batch kept, flips that are
 * mirror images, CutMix exactly as METHOD.md 3.5 (statistics over many batches, only
 * opposite-label partners, labels unchanged), corrupt files skipped without disturbing
 * the other samples, --strict, every file corrupt (an error, no hang), and shutdown in the
 * middle of an epoch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    float *x;
    int cutmix;
} saved;

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
            out[k].x = malloc((size_t)b->n * IMG * sizeof(float));
            memcpy(out[k].x, b->x, (size_t)b->n * IMG * sizeof(float));
            CHECK(b->epoch == epoch && b->batch_index == first + k);
        }
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
    return a->n == b->n && !memcmp(a->labels, b->labels, (size_t)a->n * sizeof(int)) &&
           !memcmp(a->index, b->index, (size_t)a->n * sizeof(int)) &&
           !memcmp(a->x, b->x, (size_t)a->n * IMG * sizeof(float));
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

/* The draw itself over many batches: METHOD.md's statistics. */
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
    CHECK_MSG(fabs(area / fired - 0.31) < 0.02, "mean pasted area %.3f when it fires (METHOD.md: ~0.31)",
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

int main(void)
{
    cored_alloc_stats before = cored_alloc_counts();
    RUN(test_determinism_and_resume);
    RUN(test_flip_and_plain);
    RUN(test_cutmix_in_batches);
    RUN(test_cutmix_statistics);
    RUN(test_corrupt_files);
    RUN(test_all_corrupt_and_shutdown);
    cored_alloc_stats after = cored_alloc_counts();
    CHECK_MSG(after.allocs - before.allocs == after.frees - before.frees, "every allocation freed");
    return test_finish();
}
