/*
 * cored synth's data-set writer: assigns every real source photograph to one split, then
 * writes for each task (one forgery family) the official CoReD layout
 *
 *   DATA/<Task>/{train,val,test}/{real,fake}/s<source>/<index>.png
 *   DATA/TransferLearning/<Task>/train/{real,fake}/...   (the first images of train, copied)
 *   DATA/synth.json                                      (settings, sources and their splits)
 *
 * Image i of (task, split, class) is made from source i mod n of that split's n sources
 * (so each source serves both classes equally often). Real image i of a split is the base
 * crop drawn from cored_rng_derive(seed, BASE, split, i), the same in every task; fake i is
 * that base manipulated with the stream cored_rng_derive(seed, FAMILY + family, split, i):
 * real and fake are pairs, as an original and its manipulated video in FaceForensics++.
 * With a planted cue (opts.plant = F > 0), in every task after the first, round(F T) of the
 * first T train real images (the TransferLearning subset) and round(F (N - T)) of the other
 * N - T, drawn from (seed, previous family, family), are their base with the previous task's
 * manipulation, drawn from cored_rng_derive(seed, PLANT + previous family, split, i), and
 * stay labelled real; synth.json lists them. The bytes do not depend on the number of
 * threads. The set is built in "<DATA>.synth-tmp" (marked by a ".cored-synth-partial" file)
 * and renamed to DATA only when complete.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "synth/synth.h"

#define LAYOUT_PATH_MAX 4096
#define CHUNK 256
#define MANIFEST "synth.json"
#define PARTIAL ".cored-synth-partial"

static const char *const split_names[3] = {"train", "val", "test"};
static const char *const class_names[2] = {"real", "fake"};

int cored_synth_assign_splits(int *split, int n, uint64_t seed, cored_error *err)
{
    if (n < 6)
        return CORED_FAIL(err, CORED_E_ARG,
                          "synth: %d distinct real image(s); at least 6 are needed (2 per split: train, val, "
                          "test, disjoint by source)",
                          n);
    uint32_t *perm = cored_alloc((size_t)n * sizeof *perm);
    if (!perm) return CORED_FAIL(err, CORED_E_NOMEM, "synth: out of memory");
    cored_rng r;
    cored_rng_derive(&r, seed, 0x5B117ULL, 0, 0);
    cored_rng_permutation(&r, perm, (uint32_t)n);
    int nval = (int)(0.15 * n + 0.5), ntest;
    if (nval < 2) nval = 2;
    ntest = nval;
    int ntrain = n - nval - ntest;
    for (int k = 0; k < n; k++)
        split[perm[k]] = k < ntrain ? CORED_SYNTH_TRAIN : k < ntrain + nval ? CORED_SYNTH_VAL : CORED_SYNTH_TEST;
    cored_free(perm);
    return CORED_OK;
}

/* ---------------------------------------------------------------- folders */

static int path_exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* 1 when dir is a folder without visible or hidden entries. */
static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

static int dir_has(const char *dir, const char *name)
{
    char p[LAYOUT_PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return cored_is_file(p);
}

/* Removes a folder tree written by cored synth; symbolic links are removed, not followed. */
static int rm_tree(const char *path, cored_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? CORED_OK : CORED_FAIL(err, CORED_E_IO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0) return CORED_FAIL(err, CORED_E_IO, "%s: cannot remove: %s", path, strerror(errno));
        return CORED_OK;
    }
    DIR *d = opendir(path);
    if (!d) return CORED_FAIL(err, CORED_E_IO, "%s: cannot read folder: %s", path, strerror(errno));
    struct dirent *e;
    int rc = CORED_OK;
    char child[LAYOUT_PATH_MAX];
    while (rc == CORED_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if ((size_t)snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= sizeof child) {
            rc = CORED_FAIL(err, CORED_E_IO, "%s/%s: path too long", path, e->d_name);
            break;
        }
        rc = rm_tree(child, err);
    }
    closedir(d);
    if (rc == CORED_OK && rmdir(path) != 0)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot remove folder: %s", path, strerror(errno));
    return rc;
}

static int touch(const char *dir, const char *name, cored_error *err)
{
    char p[LAYOUT_PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f || fclose(f) != 0) return CORED_FAIL(err, CORED_E_IO, "%s: cannot create: %s", p, strerror(errno));
    return CORED_OK;
}

/* Checks that `out` may be (re)placed and clears a stale staging folder. */
static int prepare_output(const char *out, const char *staging, int force, cored_error *err)
{
    if (path_exists(out)) {
        if (!force) {
            CORED_FAIL(err, CORED_E_ARG, "%s already exists", out);
            cored_error_hint(err, "pass --force to replace a data set written by cored synth, or choose another --out");
            return CORED_E_ARG;
        }
        if (!cored_is_dir(out) || !(dir_has(out, MANIFEST) || dir_is_empty(out))) {
            CORED_FAIL(err, CORED_E_ARG, "%s exists and was not written by cored synth (no %s); refusing to replace it",
                       out, MANIFEST);
            cored_error_hint(err, "remove it yourself or choose another --out");
            return CORED_E_ARG;
        }
    }
    if (path_exists(staging)) {
        if (!cored_is_dir(staging) || !dir_has(staging, PARTIAL))
            return CORED_FAIL(err, CORED_E_ARG, "%s exists and is not an interrupted cored synth run; remove it first",
                              staging);
        int rc = rm_tree(staging, err);
        if (rc) return rc;
    }
    return CORED_OK;
}

/* ---------------------------------------------------------------- images */

typedef struct {
    const cored_synth_opts *o;
    const cored_sources *src;
    const char *root;            /* staging folder */
    int *list[3];                /* sources of each split, ascending */
    int nlist[3];
} plan;

typedef struct {
    uint8_t *base, *donor, *fake;
    cored_resizer rz;
    cored_synth_scratch crop, fam;
} worker;

static void worker_release(worker *w)
{
    cored_free(w->base);
    cored_resizer_release(&w->rz);
    cored_synth_scratch_release(&w->crop);
    cored_synth_scratch_release(&w->fam);
}

static int image_path(char *p, size_t n, const char *root, const char *prefix, const char *task, int split,
                      int label, int source, int index)
{
    int k = snprintf(p, n, "%s/%s%s/%s/%s/s%04d/%06d.png", root, prefix, task, split_names[split],
                     class_names[label], source, index);
    return k < 0 || (size_t)k >= n;
}

/* One task being written: its family, and for planting the previous task's family and which
   train real images carry its manipulation (NULL: none). */
typedef struct {
    const cored_family_state *st;
    const cored_family_state *prev;
    const uint8_t *planted;          /* [per_class]: 1 = train real image i is planted */
} task_ctx;

/* Makes and writes image `index` of (task, split, label); TransferLearning copy when asked.
   Real image i of a split is the same base crop in every task (as FaceForensics++ puts the
   same originals in every manipulation's folder) and fake i of every task is made from it,
   so the classes differ only by the manipulation. A planted real image is that base with the
   previous task's manipulation, drawn from its own stream (not a copy of the old fake). */
static int make_image(const plan *pl, worker *w, const task_ctx *tc, int split, int label, int index,
                      int transfer, cored_error *err)
{
    const cored_synth_opts *o = pl->o;
    int size = o->size, n = pl->nlist[split];
    int slot = index % n, source = pl->list[split][slot];
    cored_rng r;
    cored_rng_derive(&r, o->seed, 0xBA5EULL, (uint64_t)split, (uint64_t)index);
    int rc = cored_sources_crop(w->base, pl->src, source, size, &r, &w->rz, &w->crop, err);
    const uint8_t *img = w->base;
    const cored_family_state *fam = NULL;
    uint64_t stream = 0;
    if (label == 1)
        fam = tc->st, stream = 0xFA0000ULL;
    else if (split == CORED_SYNTH_TRAIN && tc->planted && tc->planted[index])
        fam = tc->prev, stream = 0x91A000ULL;
    if (!rc && fam) {
        cored_rng_derive(&r, o->seed, stream + (uint64_t)fam->family, (uint64_t)split, (uint64_t)index);
        if (fam->family == CORED_FAMILY_BLEND) {
            int other = pl->list[split][(slot + 1 + (int)cored_rng_below(&r, (uint32_t)(n - 1))) % n];
            rc = cored_sources_crop(w->donor, pl->src, other, size, &r, &w->rz, &w->crop, err);
        }
        if (!rc) rc = cored_family_apply(w->fake, NULL, NULL, w->base, w->donor, size, fam, &r, &w->fam, err);
        img = w->fake;
    }
    char path[LAYOUT_PATH_MAX];
    const char *task = cored_family_name(tc->st->family);
    if (!rc && image_path(path, sizeof path, pl->root, "", task, split, label, source, index))
        rc = CORED_FAIL(err, CORED_E_ARG, "%s: output path too long", pl->root);
    if (!rc) rc = cored_png_write(path, img, size, size, err);
    if (!rc && transfer) {
        if (image_path(path, sizeof path, pl->root, "TransferLearning/", task, split, label, source, index))
            rc = CORED_FAIL(err, CORED_E_ARG, "%s: output path too long", pl->root);
        if (!rc) rc = cored_png_write(path, img, size, size, err);
    }
    return rc;
}

/* Creates the per-source folders of one (task, split, label) that `count` images use. */
static int make_dirs(const plan *pl, const char *prefix, const char *task, int split, int label, int count,
                     cored_error *err)
{
    char path[LAYOUT_PATH_MAX];
    int n = pl->nlist[split];
    for (int j = 0; j < n && j < count; j++) {
        if (image_path(path, sizeof path, pl->root, prefix, task, split, label, pl->list[split][j], 0))
            return CORED_FAIL(err, CORED_E_ARG, "%s: output path too long", pl->root);
        *strrchr(path, '/') = '\0';
        int rc = cored_mkdir_p(path, err);
        if (rc) return rc;
    }
    return CORED_OK;
}

static int write_split(const plan *pl, const task_ctx *tc, int split, int label, int count, int transfer,
                       long *images, cored_error *err)
{
    const cored_synth_opts *o = pl->o;
    const char *task = cored_family_name(tc->st->family);
    int rc = make_dirs(pl, "", task, split, label, count, err);
    if (!rc && transfer) rc = make_dirs(pl, "TransferLearning/", task, split, label, transfer, err);
    if (rc) return rc;
    int threads = o->threads > 0 ? o->threads : cored_get_threads();
    size_t n3 = (size_t)o->size * o->size * 3;
    for (int c0 = 0; c0 < count && !rc; c0 += CHUNK) {
        int c1 = c0 + CHUNK < count ? c0 + CHUNK : count;
        int bad_index = INT_MAX;
        cored_error first = {0};
#pragma omp parallel num_threads(threads)
        {
            worker w = {0};
            w.base = cored_alloc(3 * n3);
            if (w.base) w.donor = w.base + n3, w.fake = w.base + 2 * n3;
#pragma omp for schedule(dynamic)
            for (int i = c0; i < c1; i++) {
                cored_error e = {0};
                int r = w.base ? make_image(pl, &w, tc, split, label, i, i < transfer, &e)
                               : CORED_FAIL(&e, CORED_E_NOMEM, "synth: out of memory");
                if (r) {
#pragma omp critical(synth_error)
                    if (i < bad_index) bad_index = i, first = e;
                }
            }
            worker_release(&w);
        }
        if (bad_index != INT_MAX) {
            if (err) *err = first;
            rc = first.code ? first.code : CORED_E_INTERNAL;
            break;
        }
        *images += (c1 - c0) + (c0 < transfer ? (transfer < c1 ? transfer : c1) - c0 : 0);
        char what[16];
        snprintf(what, sizeof what, "%s/%s", split_names[split], class_names[label]);
        if (o->progress) o->progress(o->user, task, what, c1, count);
    }
    return rc;
}

/* ---------------------------------------------------------------- planted cue */

/* The planted train real images of task t >= 1 (planted[per_class], 1 = carries task t-1's
   manipulation): round(F T) of the first T images (the TransferLearning subset, so that it
   holds the same fraction) and round(F (N - T)) of the other N - T, uniformly at random
   from (seed, previous family, family). Returns how many. */
static int plant_draw(uint8_t *planted, uint32_t *perm, const cored_synth_opts *o, int t)
{
    int N = o->per_class, T = o->transfer_per_class, count = 0;
    cored_rng r;
    cored_rng_derive(&r, o->seed, 0x91A47ULL, (uint64_t)o->tasks[t - 1], (uint64_t)o->tasks[t]);
    memset(planted, 0, (size_t)N);
    for (int part = 0; part < 2; part++) {
        int lo = part ? T : 0, n = part ? N - T : T;
        int k = (int)((double)o->plant * n + 0.5);
        if (n < 1) continue;
        cored_rng_permutation(&r, perm, (uint32_t)n);
        for (int j = 0; j < k; j++) planted[lo + perm[j]] = 1;
        count += k;
    }
    return count;
}

/* ---------------------------------------------------------------- manifest */

static int write_manifest(const plan *pl, const int *split, const cored_sources_stats *ss, const uint8_t *planted,
                          cored_error *err)
{
    const cored_synth_opts *o = pl->o;
    cJSON *j = cJSON_CreateObject(), *a;
    int ok = j != NULL;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    ok = ok && cJSON_AddStringToObject(j, "generator", "cored synth " CORED_VERSION);
    ok = ok && cJSON_AddStringToObject(j, "seed", seed);
    ok = ok && cJSON_AddNumberToObject(j, "size", o->size);
    ok = ok && cJSON_AddNumberToObject(j, "plant", o->plant);
    ok = ok && cJSON_AddStringToObject(j, "real", o->real);
    ok = ok && (a = cJSON_AddArrayToObject(j, "tasks"));
    for (int t = 0; ok && t < o->ntasks; t++) {
        cJSON *e = cJSON_CreateObject();
        ok = e && cJSON_AddItemToArray(a, e);
        ok = ok && cJSON_AddStringToObject(e, "name", cored_family_name(o->tasks[t]));
        ok = ok && cJSON_AddStringToObject(e, "analogy", cored_family_analogy(o->tasks[t]));
        if (!planted || t == 0) continue;
        const uint8_t *pt = planted + (size_t)t * o->per_class;
        int k = 0, kt = 0;
        for (int i = 0; i < o->per_class; i++) k += pt[i], kt += pt[i] && i < o->transfer_per_class;
        cJSON *pe = ok ? cJSON_AddObjectToObject(e, "planted") : NULL, *idx;
        ok = pe && cJSON_AddStringToObject(pe, "from", cored_family_name(o->tasks[t - 1]));
        ok = ok && cJSON_AddNumberToObject(pe, "train", k);
        ok = ok && cJSON_AddNumberToObject(pe, "transfer", kt);
        ok = ok && (idx = cJSON_AddArrayToObject(pe, "train_real_indices"));
        for (int i = 0; ok && i < o->per_class; i++)
            if (pt[i]) ok = cJSON_AddItemToArray(idx, cJSON_CreateNumber(i));
    }
    cJSON *pc = ok ? cJSON_AddObjectToObject(j, "images_per_class") : NULL;
    ok = ok && pc && cJSON_AddNumberToObject(pc, "train", o->per_class);
    ok = ok && cJSON_AddNumberToObject(pc, "val", o->eval_per_class);
    ok = ok && cJSON_AddNumberToObject(pc, "test", o->eval_per_class);
    ok = ok && cJSON_AddNumberToObject(pc, "transfer", o->transfer_per_class);
    cJSON *sc = ok ? cJSON_AddObjectToObject(j, "sources") : NULL;
    ok = ok && sc && cJSON_AddNumberToObject(sc, "total", cored_sources_count(pl->src));
    for (int s = 0; ok && s < 3; s++) ok = cJSON_AddNumberToObject(sc, split_names[s], pl->nlist[s]) != NULL;
    ok = ok && cJSON_AddNumberToObject(sc, "skipped_too_small", ss->too_small);
    ok = ok && cJSON_AddNumberToObject(sc, "skipped_duplicates", ss->duplicates);
    ok = ok && cJSON_AddNumberToObject(sc, "skipped_undecodable", ss->bad);
    ok = ok && (a = cJSON_AddArrayToObject(j, "source_list"));
    for (int i = 0; ok && i < cored_sources_count(pl->src); i++) {
        cJSON *e = cJSON_CreateObject();
        int w, h;
        char id[16];
        snprintf(id, sizeof id, "s%04d", i);
        cored_sources_dims(pl->src, i, &w, &h);
        ok = e && cJSON_AddItemToArray(a, e);
        ok = ok && cJSON_AddStringToObject(e, "id", id);
        ok = ok && cJSON_AddStringToObject(e, "path", cored_sources_relpath(pl->src, i));
        ok = ok && cJSON_AddStringToObject(e, "split", split_names[split[i]]);
        ok = ok && cJSON_AddNumberToObject(e, "width", w);
        ok = ok && cJSON_AddNumberToObject(e, "height", h);
    }
    char *text = ok ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text) return CORED_FAIL(err, CORED_E_NOMEM, "synth: out of memory writing %s", MANIFEST);
    char p[LAYOUT_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", pl->root, MANIFEST);
    FILE *f = fopen(p, "w");
    int rc = f ? CORED_OK : CORED_FAIL(err, CORED_E_IO, "%s: cannot create: %s", p, strerror(errno));
    if (!rc) rc = cored_fwrite_all(f, text, strlen(text), p, err);
    if (!rc) rc = cored_fwrite_all(f, "\n", 1, p, err);
    if (f && fclose(f) != 0 && !rc) rc = CORED_FAIL(err, CORED_E_IO, "%s: %s", p, strerror(errno));
    cJSON_free(text);
    return rc;
}

/* ---------------------------------------------------------------- run */

static int check_opts(const cored_synth_opts *o, cored_error *err)
{
    if (!o || !o->real) return CORED_FAIL(err, CORED_E_ARG, "synth: no folder of real images given");
    if (!o->out && !o->sheet) return CORED_FAIL(err, CORED_E_ARG, "synth: nothing to write (no output folder, no sheet)");
    if (o->size < CORED_SYNTH_MIN_SIZE || o->size > CORED_SYNTH_MAX_SIZE || o->size % 8)
        return CORED_FAIL(err, CORED_E_ARG, "synth: image size %d is not a multiple of 8 in %d..%d", o->size,
                          CORED_SYNTH_MIN_SIZE, CORED_SYNTH_MAX_SIZE);
    if (o->ntasks < 1 || o->ntasks > CORED_FAMILY_COUNT || !o->tasks)
        return CORED_FAIL(err, CORED_E_ARG, "synth: between 1 and %d tasks are needed", CORED_FAMILY_COUNT);
    for (int t = 0; t < o->ntasks; t++) {
        if ((unsigned)o->tasks[t] >= CORED_FAMILY_COUNT) return CORED_FAIL(err, CORED_E_ARG, "synth: unknown family");
        for (int u = 0; u < t; u++)
            if (o->tasks[u] == o->tasks[t])
                return CORED_FAIL(err, CORED_E_ARG, "synth: task %s is listed twice", cored_family_name(o->tasks[t]));
    }
    if (o->out && (o->per_class < 1 || o->eval_per_class < 1 || o->per_class > 10000000 ||
                   o->eval_per_class > 10000000))
        return CORED_FAIL(err, CORED_E_ARG, "synth: images per class must be at least 1 (train %d, val/test %d)",
                          o->per_class, o->eval_per_class);
    if (o->out && (o->transfer_per_class < 0 || o->transfer_per_class > o->per_class))
        return CORED_FAIL(err, CORED_E_ARG, "synth: the transfer subset (%d per class) must be within 0..%d (the train split)",
                          o->transfer_per_class, o->per_class);
    if (!(o->plant >= 0.0f && o->plant <= 1.0f))
        return CORED_FAIL(err, CORED_E_ARG, "synth: the planted fraction %g is not within 0..1", (double)o->plant);
    if (o->out && (!o->out[0] || strlen(o->out) > LAYOUT_PATH_MAX - 128))
        return CORED_FAIL(err, CORED_E_ARG, "synth: output folder name empty or too long");
    return CORED_OK;
}

int cored_synth_run(const cored_synth_opts *o, cored_synth_report *rep, cored_error *err)
{
    int rc = check_opts(o, err);
    if (rc) return rc;
    double t0 = cored_now();
    char out[LAYOUT_PATH_MAX], staging[LAYOUT_PATH_MAX], old[LAYOUT_PATH_MAX];
    if (o->out) {
        snprintf(out, sizeof out, "%s", o->out);
        size_t l = strlen(out);
        while (l > 1 && out[l - 1] == '/') out[--l] = '\0';
        snprintf(staging, sizeof staging, "%s.synth-tmp", out);
        snprintf(old, sizeof old, "%s.synth-old", out);
    }
    const cored_path_use uses[] = {{o->real, "--real", CORED_PATH_SOURCES},
                                   {o->out ? out : NULL, "--out", CORED_PATH_REPLACED_DIR},
                                   {o->out ? staging : NULL, "staging folder", CORED_PATH_REPLACED_DIR},
                                   {o->out ? old : NULL, "--out's old copy", CORED_PATH_REPLACED_DIR},
                                   {o->sheet, "--sheet", CORED_PATH_OUTPUT}};
    if ((rc = cored_paths_check(uses, 5, err))) return rc;
    if (o->out && (rc = prepare_output(out, staging, o->force, err))) return rc;
    cored_sources *src = NULL;
    cored_sources_stats ss = {0};
    int *split = NULL, *lists = NULL;
    rc = cored_sources_load(&src, &ss, o->real, o->size / 2, 3 * o->size, o->threads, err);
    int n = cored_sources_count(src);
    if (!rc) {
        split = cored_alloc((size_t)n * sizeof *split);
        lists = cored_alloc((size_t)n * sizeof *lists);
        if (!split || !lists) rc = CORED_FAIL(err, CORED_E_NOMEM, "synth: out of memory");
    }
    if (!rc) rc = cored_synth_assign_splits(split, n, o->seed, err);
    plan pl = {o, src, staging, {0}, {0}};
    if (!rc) {
        int k = 0;
        for (int s = 0; s < 3; s++) {
            pl.list[s] = lists + k;
            for (int i = 0; i < n; i++)
                if (split[i] == s) lists[k++] = i;
            pl.nlist[s] = (int)(lists + k - pl.list[s]);
        }
    }
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->sources = ss;
        rep->nsources = n;
        for (int s = 0; s < 3; s++) rep->split_sources[s] = pl.nlist[s];
    }
    if (!rc && o->out) {
        rc = cored_mkdir_p(staging, err);
        if (!rc) rc = touch(staging, PARTIAL, err);
        long images = 0;
        cored_family_state *st = cored_alloc(2 * sizeof *st);
        uint8_t *planted = NULL;
        uint32_t *perm = NULL;
        if (!st) rc = CORED_FAIL(err, CORED_E_NOMEM, "synth: out of memory");
        if (!rc && o->plant > 0.0f && o->ntasks > 1) {
            planted = cored_alloc((size_t)o->ntasks * o->per_class);
            perm = cored_alloc((size_t)o->per_class * sizeof *perm);
            if (!planted || !perm) rc = CORED_FAIL(err, CORED_E_NOMEM, "synth: out of memory");
        }
        for (int t = 0; !rc && t < o->ntasks; t++) {
            task_ctx tc = {&st[t % 2], NULL, NULL};
            cored_family_init(&st[t % 2], o->tasks[t], o->seed);
            if (planted && t > 0) {
                uint8_t *pt = planted + (size_t)t * o->per_class;
                tc.prev = &st[(t + 1) % 2]; /* initialised for task t - 1 */
                tc.planted = pt;
                int k = plant_draw(pt, perm, o, t);
                if (rep) rep->planted += k;
            }
            for (int s = 0; !rc && s < 3; s++)
                for (int label = 0; !rc && label < 2; label++)
                    rc = write_split(&pl, &tc, s, label, s == 0 ? o->per_class : o->eval_per_class,
                                     s == 0 ? o->transfer_per_class : 0, &images, err);
        }
        if (!rc) rc = write_manifest(&pl, split, &ss, planted, err);
        cored_free(st);
        cored_free(planted);
        cored_free(perm);
        if (!rc) {
            char p[LAYOUT_PATH_MAX + 64];
            snprintf(p, sizeof p, "%s/%s", staging, PARTIAL);
            if (unlink(p) != 0) rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot remove: %s", p, strerror(errno));
        }
        if (!rc && path_exists(out)) {
            if (path_exists(old)) rc = dir_has(old, MANIFEST) ? rm_tree(old, err)
                                                              : CORED_FAIL(err, CORED_E_ARG, "%s exists; remove it first", old);
            if (!rc && rename(out, old) != 0)
                rc = CORED_FAIL(err, CORED_E_IO, "cannot move %s aside: %s", out, strerror(errno));
        }
        if (!rc && rename(staging, out) != 0) rc = CORED_FAIL(err, CORED_E_IO, "cannot rename %s to %s: %s", staging, out, strerror(errno));
        if (!rc && path_exists(old)) rc = rm_tree(old, err);
        if (rep) rep->images = images;
    }
    if (!rc && o->sheet)
        rc = cored_synth_sheet(o->sheet, src, split, o->tasks, o->ntasks, o->size, o->sheet_rows, o->seed, err);
    if (rep) rep->seconds = cored_now() - t0;
    cored_free(split);
    cored_free(lists);
    cored_sources_free(src);
    return rc;
}
