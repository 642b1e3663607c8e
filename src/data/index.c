/*
 * Data-set index over the official CoReD layout:
 *   DATA/<Task>/{train,val,test}/{real,fake}/.../<image>.{png,jpg,jpeg}
 *   DATA/TransferLearning/<Task>/train/{real,fake}/...
 * Class folders may also be spelled 0_real/1_fake or 0/1 (the authors' GAN data); labels
 * are 0 = real, 1 = fake whatever the spelling. Images may sit in nested (per-video)
 * sub-folders; symbolic links are followed (as torchvision's ImageFolder does), but every
 * folder is indexed once per split: a set of the (device, inode) of the folders visited
 * stops loops and fan-out (several links to one folder), each reported; a link to the
 * split folder or above it is a loop too, and a link from one class folder into the other
 * is not followed (its images would take the wrong label). Samples are
 * sorted by path, bytewise, so an index is the same everywhere. A folder that cannot be
 * read, also part-way (readdir failing), is an error, never a silently shorter list.
 * Every problem of a split can be reported (cored_dataset_scan) or only the first
 * (cored_dataset_open).
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/data.h"

#define PATH_MAX_LEN 4096
#define MAX_DEPTH 64

typedef struct {
    const char *p;   /* valid only while sorting */
    size_t off;      /* into the arena */
    uint32_t rel;    /* offset of the root-relative part within the path */
    uint8_t label;
} sample;

struct cored_dataset {
    char *describe;
    char *arena;
    size_t arena_len, arena_cap;
    sample *s;
    int n, cap;
    int count[2];
};

static const char *const class_names[2][3] = {{"real", "0_real", "0"}, {"fake", "1_fake", "1"}};

const char *const cored_split_names[] = {"train", "val", "test", "transfer", NULL};

const char *cored_split_name(cored_split split)
{
    return (unsigned)split <= CORED_SPLIT_TRANSFER ? cored_split_names[split] : "?";
}

void cored_dataset_free(cored_dataset *ds)
{
    if (!ds) return;
    cored_free(ds->describe);
    cored_free(ds->arena);
    cored_free(ds->s);
    cored_free(ds);
}

static cored_dataset *dataset_new(const char *describe)
{
    cored_dataset *ds = cored_calloc(1, sizeof *ds);
    if (!ds) return NULL;
    ds->describe = cored_strdup(describe);
    if (!ds->describe) {
        cored_free(ds);
        return NULL;
    }
    return ds;
}

/* Appends one sample; -1 when out of memory. */
static int dataset_push(cored_dataset *ds, const char *path, size_t rel, int label)
{
    size_t len = strlen(path) + 1;
    if (ds->n == ds->cap) {
        if (ds->cap >= (1 << 30)) return -1;
        int ncap = ds->cap ? 2 * ds->cap : 256;
        sample *ns = cored_alloc((size_t)ncap * sizeof *ns);
        if (!ns) return -1;
        if (ds->n) memcpy(ns, ds->s, (size_t)ds->n * sizeof *ns);
        cored_free(ds->s);
        ds->s = ns;
        ds->cap = ncap;
    }
    if (ds->arena_len + len > ds->arena_cap) {
        size_t ncap = ds->arena_cap ? 2 * ds->arena_cap : 16384;
        while (ncap < ds->arena_len + len) ncap *= 2;
        char *na = cored_alloc(ncap);
        if (!na) return -1;
        if (ds->arena_len) memcpy(na, ds->arena, ds->arena_len);
        cored_free(ds->arena);
        ds->arena = na;
        ds->arena_cap = ncap;
    }
    memcpy(ds->arena + ds->arena_len, path, len);
    ds->s[ds->n].off = ds->arena_len;
    ds->s[ds->n].rel = (uint32_t)rel;
    ds->s[ds->n].label = (uint8_t)label;
    ds->arena_len += len;
    ds->count[label]++;
    ds->n++;
    return 0;
}

static int cmp_sample(const void *a, const void *b)
{
    return strcmp(((const sample *)a)->p, ((const sample *)b)->p);
}

static void dataset_sort(cored_dataset *ds)
{
    for (int i = 0; i < ds->n; i++) ds->s[i].p = ds->arena + ds->s[i].off;
    if (ds->n > 1) qsort(ds->s, (size_t)ds->n, sizeof *ds->s, cmp_sample);
}

/* ---------------------------------------------------------------- scanning */

typedef struct {
    cored_problem_fn fn;
    void *user;
    int errors;
    int nomem;        /* an error was an allocation failure */
    int one_class_ok; /* a class without images is a warning (scoring: AUC n/a), not an error */
} reporter;

static void report(reporter *r, cored_problem_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(reporter *r, cored_problem_kind kind, const char *fmt, ...)
{
    char msg[PATH_MAX_LEN + 512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (kind == CORED_PROBLEM_ERROR) r->errors++;
    if (r->fn) r->fn(kind, msg, r->user);
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg");
}

typedef struct {
    dev_t dev;
    ino_t ino;
} dir_id;

/* The folders visited while indexing one split: open addressing on (dev, ino). */
typedef struct {
    dir_id *slot;
    uint8_t *used;
    size_t n, cap;
} dir_set;

static void dir_set_free(dir_set *s)
{
    cored_free(s->slot);
    cored_free(s->used);
    memset(s, 0, sizeof *s);
}

static size_t dir_hash(dir_id id, size_t mask)
{
    return (size_t)cored_hash64((uint64_t)id.dev, (uint64_t)id.ino) & mask;
}

/* 1 when added, 0 when already there, -1 when out of memory. */
static int dir_set_add(dir_set *s, dir_id id)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 64;
        dir_set g = {cored_alloc(ncap * sizeof *g.slot), cored_calloc(ncap, 1), 0, ncap};
        if (!g.slot || !g.used) {
            dir_set_free(&g);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->used[i]) {
                size_t h = dir_hash(s->slot[i], ncap - 1);
                while (g.used[h]) h = (h + 1) & (ncap - 1);
                g.slot[h] = s->slot[i];
                g.used[h] = 1;
                g.n++;
            }
        dir_set_free(s);
        *s = g;
    }
    size_t h = dir_hash(id, s->cap - 1);
    for (; s->used[h]; h = (h + 1) & (s->cap - 1))
        if (s->slot[h].dev == id.dev && s->slot[h].ino == id.ino) return 0;
    s->slot[h] = id;
    s->used[h] = 1;
    s->n++;
    return 1;
}

typedef struct {
    cored_dataset *ds;
    reporter *rep;
    dir_set *seen;         /* every folder of the split visited so far */
    const dir_id *above;   /* the split and class folders and every folder above them (resolved):
                              a link to one of them is a loop */
    int n_above;
    dir_id other;          /* the other class's folder, whose images must not take this label */
    int have_other;
    size_t rel;
    int label;
    int nomem;
    int skipped;           /* non-image files */
    char first_skipped[PATH_MAX_LEN];
    dir_id stack[MAX_DEPTH];
} walker;

static void walk(walker *w, char *path, size_t len, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) return;
    dir_id id = {st.st_dev, st.st_ino};
    int loop = 0;
    for (int i = 0; i < depth; i++) loop |= w->stack[i].dev == id.dev && w->stack[i].ino == id.ino;
    for (int i = 0; i < w->n_above && depth > 0; i++) loop |= w->above[i].dev == id.dev && w->above[i].ino == id.ino;
    if (loop) {
        report(w->rep, CORED_PROBLEM_WARNING, "%s: symbolic-link loop, not followed", path);
        return;
    }
    if (depth > 0 && w->have_other && w->other.dev == id.dev && w->other.ino == id.ino) {
        report(w->rep, CORED_PROBLEM_WARNING, "%s: a link into the other class's folder, not followed", path);
        return;
    }
    if (depth >= MAX_DEPTH) {
        report(w->rep, CORED_PROBLEM_WARNING, "%s: folders nested deeper than %d levels, ignored", path,
               MAX_DEPTH);
        return;
    }
    int added = dir_set_add(w->seen, id);
    if (added < 0) {
        w->nomem = 1;
        return;
    }
    if (added == 0) {
        report(w->rep, CORED_PROBLEM_WARNING,
               "%s: the same folder as one already indexed in this split (reached again through a "
               "symbolic link), not indexed twice",
               path);
        return;
    }
    w->stack[depth] = id;
    DIR *d = opendir(path);
    if (!d) {
        report(w->rep, CORED_PROBLEM_ERROR, "%s: cannot read folder: %s", path, strerror(errno));
        return;
    }
    while (!w->nomem) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                report(w->rep, CORED_PROBLEM_ERROR, "%s: cannot read folder (listing incomplete): %s", path,
                       strerror(errno));
            break;
        }
        if (e->d_name[0] == '.') continue; /* hidden files, ".", ".." */
        size_t nl = strlen(e->d_name);
        if (len + 1 + nl >= PATH_MAX_LEN) {
            report(w->rep, CORED_PROBLEM_WARNING, "%s/%s: path too long, ignored", path, e->d_name);
            continue;
        }
        path[len] = '/';
        memcpy(path + len + 1, e->d_name, nl + 1);
        struct stat es;
        if (stat(path, &es) != 0) {
            report(w->rep, CORED_PROBLEM_WARNING, "%s: cannot stat (broken link?), ignored", path);
        } else if (S_ISDIR(es.st_mode)) {
            walk(w, path, len + 1 + nl, depth + 1);
        } else if (S_ISREG(es.st_mode) && is_image_name(e->d_name)) {
            if (dataset_push(w->ds, path, w->rel, w->label)) w->nomem = 1;
        } else if (is_image_name(e->d_name)) {
            report(w->rep, CORED_PROBLEM_WARNING, "%s: not a regular file (a FIFO or device?), ignored", path);
        } else {
            if (!w->skipped++) snprintf(w->first_skipped, sizeof w->first_skipped, "%s", path);
        }
        path[len] = '\0';
    }
    closedir(d);
}

/* "dir" exists and is a folder: 1; missing: 0; something else: -1. */
static int dir_state(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) return 0;
    return S_ISDIR(st.st_mode) ? 1 : -1;
}

static int is_class_name(const char *name)
{
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 3; k++)
            if (!strcmp(name, class_names[c][k])) return 1;
    return 0;
}

/* The folders from dir (resolved) up to "/", at most max; their count. */
static int folders_above(dir_id *out, int max, const char *dir)
{
    char real[PATH_MAX_LEN];
    if (!realpath(dir, real)) return 0;
    int n = 0;
    for (size_t len = strlen(real); n < max;) {
        struct stat st;
        if (stat(real, &st) == 0) out[n++] = (dir_id){st.st_dev, st.st_ino};
        if (len <= 1) break;
        while (len > 1 && real[len - 1] != '/') len--;
        real[len > 1 ? len - 1 : len] = '\0';
        len = strlen(real);
    }
    return n;
}

/* Indexes one split folder; problems go to rep. */
static void scan_split(cored_dataset *ds, reporter *rep, const char *split_dir, size_t rel)
{
    char path[PATH_MAX_LEN + 16];
    dir_set seen = {0};
    dir_id above[2 * MAX_DEPTH], class_id[2];
    int n_split = folders_above(above, MAX_DEPTH, split_dir), found[2] = {-1, -1};
    DIR *d = opendir(split_dir);
    if (!d) {
        report(rep, CORED_PROBLEM_ERROR, "%s: cannot read folder: %s", split_dir, strerror(errno));
        return;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                report(rep, CORED_PROBLEM_ERROR, "%s: cannot read folder (listing incomplete): %s", split_dir,
                       strerror(errno));
            break;
        }
        if (e->d_name[0] == '.' || is_class_name(e->d_name)) continue;
        report(rep, CORED_PROBLEM_WARNING, "%s/%s: ignored (class folders are real/fake, 0_real/1_fake or 0/1)",
               split_dir, e->d_name);
    }
    closedir(d);
    const cored_problem_kind absent = rep->one_class_ok ? CORED_PROBLEM_WARNING : CORED_PROBLEM_ERROR;
    for (int label = 0; label < 2; label++) {
        int state[3];
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s", split_dir, class_names[label][k]);
            state[k] = dir_state(path);
            if (state[k] < 0)
                report(rep, CORED_PROBLEM_ERROR, "%s: is not a folder", path);
            else if (state[k] > 0) {
                if (found[label] >= 0)
                    report(rep, CORED_PROBLEM_ERROR, "%s: ambiguous class folders %s and %s (both mean %s)",
                           split_dir, class_names[label][found[label]], class_names[label][k],
                           label ? "fake" : "real");
                else
                    found[label] = k;
            }
        }
        if (found[label] < 0 && state[0] == 0 && state[1] == 0 && state[2] == 0)
            report(rep, absent, "%s/%s: class folder not found (also looked for %s and %s)", split_dir,
                   class_names[label][0], class_names[label][1], class_names[label][2]);
        struct stat st;
        if (found[label] < 0) continue;
        snprintf(path, sizeof path, "%s/%s", split_dir, class_names[label][found[label]]);
        if (stat(path, &st) == 0)
            class_id[label] = (dir_id){st.st_dev, st.st_ino};
        else
            found[label] = -1;
    }
    for (int label = 0; label < 2; label++) {
        if (found[label] < 0) continue;
        size_t len = (size_t)snprintf(path, sizeof path, "%s/%s", split_dir, class_names[label][found[label]]);
        walker w;
        memset(&w, 0, sizeof w);
        w.ds = ds;
        w.rep = rep;
        w.seen = &seen;
        w.above = above;
        w.n_above = n_split + folders_above(above + n_split, MAX_DEPTH, path);
        w.other = class_id[1 - label];
        w.have_other = found[1 - label] >= 0;
        w.rel = rel;
        w.label = label;
        int before = ds->count[label];
        walk(&w, path, len, 0);
        if (w.nomem) {
            rep->nomem = 1;
            report(rep, CORED_PROBLEM_ERROR, "%s: out of memory while indexing", path);
            break;
        }
        if (w.skipped)
            report(rep, CORED_PROBLEM_WARNING,
                   "%s: %d file(s) without a .png/.jpg/.jpeg extension ignored (e.g. %s)", path,
                   w.skipped, w.first_skipped);
        if (ds->count[label] == before)
            report(rep, absent, "%s: no images (.png, .jpg, .jpeg) in this class folder", path);
    }
    if (rep->one_class_ok && !rep->errors && ds->n == 0)
        report(rep, CORED_PROBLEM_ERROR, "%s: no images (.png, .jpg, .jpeg) in either class", split_dir);
    dir_set_free(&seen);
}

/* Strips trailing slashes (keeps "/"). */
static void clean_root(char *out, size_t n, const char *root)
{
    snprintf(out, n, "%s", root);
    size_t l = strlen(out);
    while (l > 1 && out[l - 1] == '/') out[--l] = '\0';
}

/* stat of path: 1 folder, -1 something else, 0 missing (ENOENT, ENOTDIR), -2 stat failed
   otherwise (errno kept). */
static int path_state(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return errno == ENOENT || errno == ENOTDIR ? 0 : -2;
    return S_ISDIR(st.st_mode) ? 1 : -1;
}

int cored_data_transfer_dir(cored_transfer_source *src, char *dir, size_t n, const char *root_in,
                            const char *task, cored_error *err)
{
    if (!src || !dir || !root_in || !task)
        return CORED_FAIL(err, CORED_E_ARG, "cored_data_transfer_dir: NULL argument");
    char root[PATH_MAX_LEN], p[3][PATH_MAX_LEN + 32];
    clean_root(root, sizeof root, root_in);
    int w0 = snprintf(p[0], sizeof p[0], "%s/TransferLearning", root);
    int w1 = snprintf(p[1], sizeof p[1], "%s/TransferLearning/%s", root, task);
    int w2 = snprintf(p[2], sizeof p[2], "%s/TransferLearning/%s/train", root, task);
    if (w0 < 0 || w1 < 0 || w2 < 0 || (size_t)w2 >= sizeof p[2] || strlen(root_in) >= sizeof root)
        return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", root_in);
    cored_transfer_source kind = CORED_TRANSFER_SUBSET;
    for (int k = 0; k < 3; k++) {
        int st = path_state(p[k]);
        if (st == -2)
            return CORED_FAIL(err, CORED_E_IO, "%s: cannot examine: %s", p[k], strerror(errno));
        if (st == -1)
            return CORED_FAIL(err, CORED_E_IO, "%s: is not a folder (expected %s/TransferLearning/%s/train/{real,fake}/...)",
                              p[k], root, task);
        if (st == 0) {
            kind = k < 2 ? CORED_TRANSFER_NONE : CORED_TRANSFER_NO_TRAIN;
            break;
        }
    }
    int w = kind == CORED_TRANSFER_SUBSET ? snprintf(dir, n, "%s", p[2]) : snprintf(dir, n, "%s/%s/train", root, task);
    if (w < 0 || (size_t)w >= n) return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", root_in);
    *src = kind;
    return CORED_OK;
}

static int scan_impl(cored_dataset **out, const char *root_in, const char *task, cored_split split,
                     reporter *rp)
{
    char root[PATH_MAX_LEN], task_dir[PATH_MAX_LEN], split_dir[PATH_MAX_LEN];
    cored_dataset *ds = NULL;
    if (!root_in || !root_in[0] || !task || !task[0] || strchr(task, '/') || !strcmp(task, ".") ||
        !strcmp(task, "..") || split < CORED_SPLIT_TRAIN || split > CORED_SPLIT_TRANSFER) {
        report(rp, CORED_PROBLEM_ERROR, "invalid data root or task name ('%s', '%s')",
               root_in ? root_in : "(null)", task ? task : "(null)");
        return rp->errors;
    }
    if (strlen(root_in) + strlen(task) + 64 >= PATH_MAX_LEN) {
        report(rp, CORED_PROBLEM_ERROR, "%s: path too long", root_in);
        return rp->errors;
    }
    clean_root(root, sizeof root, root_in);
    int st = dir_state(root);
    if (st <= 0) {
        report(rp, CORED_PROBLEM_ERROR, "%s: %s", root, st ? "is not a folder" : "data folder does not exist");
        return rp->errors;
    }
    const char *sub = split == CORED_SPLIT_VAL ? "val" : split == CORED_SPLIT_TEST ? "test" : "train";
    snprintf(task_dir, sizeof task_dir, "%s/%s", root, task);
    int in_task_dir = 1; /* the split is a folder of root/<task> (not the TransferLearning subset) */
    if (split == CORED_SPLIT_TRANSFER) {
        cored_transfer_source src;
        cored_error e;
        if (cored_data_transfer_dir(&src, split_dir, sizeof split_dir, root, task, &e)) {
            report(rp, CORED_PROBLEM_ERROR, "%s", e.msg);
            return rp->errors;
        }
        if (src == CORED_TRANSFER_NO_TRAIN)
            report(rp, CORED_PROBLEM_WARNING, "%s/TransferLearning/%s/train: not found; using %s/%s/train instead",
                   root, task, root, task);
        in_task_dir = src != CORED_TRANSFER_SUBSET;
    } else {
        snprintf(split_dir, sizeof split_dir, "%s/%s/%s", root, task, sub);
    }
    st = dir_state(task_dir);
    if (in_task_dir && st <= 0) {
        report(rp, CORED_PROBLEM_ERROR, "%s: %s (expected %s/%s/{train,val,test}/{real,fake}/...)",
               task_dir, st ? "is not a folder" : "task folder not found", root, task);
        return rp->errors;
    }
    st = dir_state(split_dir);
    if (st <= 0) {
        report(rp, CORED_PROBLEM_ERROR, "%s: %s", split_dir,
               st ? "is not a folder" : "split folder not found");
        return rp->errors;
    }
    ds = dataset_new(split_dir);
    if (!ds) {
        rp->nomem = 1;
        report(rp, CORED_PROBLEM_ERROR, "%s: out of memory", split_dir);
        return rp->errors;
    }
    scan_split(ds, rp, split_dir, strlen(root) + 1);
    if (rp->errors) {
        cored_dataset_free(ds);
        return rp->errors;
    }
    dataset_sort(ds);
    if (out)
        *out = ds;
    else
        cored_dataset_free(ds);
    return 0;
}

int cored_dataset_scan(cored_dataset **out, const char *root, const char *task, cored_split split,
                       cored_problem_fn fn, void *user)
{
    reporter rep = {fn, user, 0, 0, 0};
    return scan_impl(out, root, task, split, &rep);
}

typedef struct {
    cored_error *err;
    int have;
} first_error;

static void keep_first(cored_problem_kind kind, const char *msg, void *user)
{
    first_error *fe = user;
    if (kind == CORED_PROBLEM_WARNING) {
        cored_log(CORED_LOG_WARN, "%s", msg);
        return;
    }
    if (fe->have++) return;
    CORED_FAIL(fe->err, CORED_E_IO, "%s", msg);
}

static int open_split(cored_dataset **out, const char *root, const char *task, cored_split split,
                      int one_class_ok, cored_error *err)
{
    if (!out) return CORED_FAIL(err, CORED_E_ARG, "cored_dataset_open: out is NULL");
    first_error fe = {err, 0};
    reporter rep = {keep_first, &fe, 0, 0, one_class_ok};
    cored_dataset *ds = NULL;
    if (scan_impl(&ds, root, task, split, &rep) || !ds) {
        if (rep.nomem && err) err->code = CORED_E_NOMEM;
        return rep.nomem ? CORED_E_NOMEM : CORED_E_IO;
    }
    *out = ds;
    return CORED_OK;
}

int cored_dataset_open(cored_dataset **out, const char *root, const char *task, cored_split split,
                       cored_error *err)
{
    return open_split(out, root, task, split, 0, err);
}

int cored_dataset_open_scoring(cored_dataset **out, const char *root, const char *task, cored_split split,
                               cored_error *err)
{
    return open_split(out, root, task, split, 1, err);
}

/* ---------------------------------------------------------------- derived sets */

static int copy_sample(cored_dataset *dst, const cored_dataset *src, int i)
{
    return dataset_push(dst, src->arena + src->s[i].off, src->s[i].rel, src->s[i].label);
}

int cored_dataset_concat(cored_dataset **out, cored_dataset *const *parts, int n, cored_error *err)
{
    if (!out || !parts || n <= 0) return CORED_FAIL(err, CORED_E_ARG, "cored_dataset_concat: no parts");
    char desc[2048] = "";
    size_t dl = 0;
    for (int p = 0; p < n; p++) {
        if (!parts[p]) return CORED_FAIL(err, CORED_E_ARG, "cored_dataset_concat: part %d is NULL", p);
        if (dl < sizeof desc)
            dl += (size_t)snprintf(desc + dl, sizeof desc - dl, "%s%s", p ? " + " : "", parts[p]->describe);
    }
    cored_dataset *ds = dataset_new(desc);
    if (!ds) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate a data set");
    for (int p = 0; p < n; p++)
        for (int i = 0; i < parts[p]->n; i++)
            if (copy_sample(ds, parts[p], i)) {
                cored_dataset_free(ds);
                return CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", desc);
            }
    *out = ds;
    return CORED_OK;
}

int cored_dataset_subset(cored_dataset **out, const cored_dataset *src, const int *indices, int n,
                         cored_error *err)
{
    if (!out || !src || n < 0 || (n > 0 && !indices))
        return CORED_FAIL(err, CORED_E_ARG, "cored_dataset_subset: invalid arguments");
    for (int k = 0; k < n; k++)
        if (indices[k] < 0 || indices[k] >= src->n)
            return CORED_FAIL(err, CORED_E_ARG, "%s: subset index %d out of range 0..%d", src->describe,
                              indices[k], src->n - 1);
    char desc[2048];
    snprintf(desc, sizeof desc, "%s (subset of %d)", src->describe, n);
    cored_dataset *ds = dataset_new(desc);
    if (!ds) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate a data set");
    for (int k = 0; k < n; k++)
        if (copy_sample(ds, src, indices[k])) {
            cored_dataset_free(ds);
            return CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", desc);
        }
    *out = ds;
    return CORED_OK;
}

int cored_dataset_cap_per_class(cored_dataset **out, const cored_dataset *src, int max_per_class,
                                uint64_t seed, cored_error *err)
{
    if (!out || !src || max_per_class <= 0)
        return CORED_FAIL(err, CORED_E_ARG, "cored_dataset_cap_per_class: max_per_class must be >= 1");
    int rc = CORED_OK;
    int *members = cored_alloc((size_t)(src->n ? src->n : 1) * sizeof *members);
    uint8_t *keep = cored_calloc((size_t)(src->n ? src->n : 1), 1);
    uint32_t *perm = cored_alloc((size_t)(src->n ? src->n : 1) * sizeof *perm);
    int *idx = cored_alloc((size_t)(src->n ? src->n : 1) * sizeof *idx);
    if (!members || !keep || !perm || !idx) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", src->describe);
        goto fail;
    }
    for (int label = 0; label < 2; label++) {
        int m = 0;
        for (int i = 0; i < src->n; i++)
            if (src->s[i].label == label) members[m++] = i;
        if (m <= max_per_class) {
            for (int k = 0; k < m; k++) keep[members[k]] = 1;
            continue;
        }
        cored_rng r;
        cored_rng_derive(&r, seed, 0x43415050u /* "CAPP" */, (uint64_t)label, 0);
        cored_rng_permutation(&r, perm, (uint32_t)m);
        for (int k = 0; k < max_per_class; k++) keep[members[perm[k]]] = 1;
    }
    int n = 0;
    for (int i = 0; i < src->n; i++)
        if (keep[i]) idx[n++] = i;
    cored_dataset *sub = NULL;
    rc = cored_dataset_subset(&sub, src, idx, n, err);
    if (rc == CORED_OK) {
        char desc[2048];
        snprintf(desc, sizeof desc, "%s (at most %d per class)", src->describe, max_per_class);
        char *d = cored_strdup(desc);
        if (d) {
            cored_free(sub->describe);
            sub->describe = d;
            *out = sub;
        } else {
            cored_dataset_free(sub);
            rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", src->describe);
        }
    }
fail:
    cored_free(members);
    cored_free(keep);
    cored_free(perm);
    cored_free(idx);
    return rc;
}

/* ---------------------------------------------------------------- accessors */

int cored_dataset_count(const cored_dataset *ds) { return ds ? ds->n : 0; }

int cored_dataset_label(const cored_dataset *ds, int i)
{
    return ds && i >= 0 && i < ds->n ? ds->s[i].label : -1;
}

const char *cored_dataset_path(const cored_dataset *ds, int i)
{
    return ds && i >= 0 && i < ds->n ? ds->arena + ds->s[i].off : NULL;
}

const char *cored_dataset_relpath(const cored_dataset *ds, int i)
{
    return ds && i >= 0 && i < ds->n ? ds->arena + ds->s[i].off + ds->s[i].rel : NULL;
}

int cored_dataset_class_count(const cored_dataset *ds, int label)
{
    return ds && (label == 0 || label == 1) ? ds->count[label] : 0;
}

const char *cored_dataset_describe(const cored_dataset *ds) { return ds ? ds->describe : "(none)"; }

/* ---------------------------------------------------------------- task list */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* One block: (n + 1) pointers, then the n strings of `chars` (NUL-separated, `bytes` long);
   the pointers are sorted when `sort`. */
static char **string_block(const char *chars, size_t bytes, int n, int sort)
{
    char **list = cored_alloc(((size_t)n + 1) * sizeof(char *) + bytes + 1);
    if (!list) return NULL;
    char *strs = (char *)(list + n + 1);
    if (bytes) memcpy(strs, chars, bytes);
    for (int k = 0; k < n; k++) {
        list[k] = strs;
        strs += strlen(strs) + 1;
    }
    list[n] = NULL;
    if (sort && n > 1) qsort(list, (size_t)n, sizeof *list, cmp_str);
    return list;
}

int cored_data_list_tasks(char ***names, int *n, const char *root, cored_error *err)
{
    if (!names || !n || !root) return CORED_FAIL(err, CORED_E_ARG, "cored_data_list_tasks: NULL argument");
    int st = dir_state(root);
    if (st <= 0)
        return CORED_FAIL(err, CORED_E_IO, "%s: %s", root, st ? "is not a folder" : "data folder does not exist");
    DIR *d = opendir(root);
    if (!d) return CORED_FAIL(err, CORED_E_IO, "%s: cannot read folder: %s", root, strerror(errno));
    /* One pass into a growing buffer of NUL-separated names (no second pass that could see
       a folder that changed in between). */
    cored_sb names_sb = {0};
    int count = 0, rc = CORED_OK;
    char path[PATH_MAX_LEN];
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot read folder: %s", root, strerror(errno));
            break;
        }
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "TransferLearning")) continue;
        if (cored_path_join(path, sizeof path, root, e->d_name) || dir_state(path) <= 0) continue;
        cored_sb_printf(&names_sb, "%s%c", e->d_name, '\0');
        count++;
    }
    closedir(d);
    if (rc == CORED_OK && names_sb.oom) rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", root);
    char **list = NULL;
    if (rc == CORED_OK) {
        list = string_block(names_sb.s, names_sb.len, count, 1);
        if (!list) rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", root);
    }
    cored_sb_release(&names_sb);
    if (rc) return rc;
    *names = list;
    *n = count;
    return CORED_OK;
}

int cored_data_parse_tasks(char ***names, int *n, const char *list, cored_error *err)
{
    if (!names || !n || !list) return CORED_FAIL(err, CORED_E_ARG, "cored_data_parse_tasks: NULL argument");
    size_t len = strlen(list);
    int count = 1;
    for (size_t i = 0; i < len; i++) count += list[i] == ',';
    if (len == 0) return CORED_FAIL(err, CORED_E_ARG, "--tasks needs at least one task name");
    if (count > CORED_DATA_MAX_TASKS)
        return CORED_FAIL(err, CORED_E_ARG, "--tasks lists %d names, more than the %d allowed", count,
                          CORED_DATA_MAX_TASKS);
    char *buf = cored_alloc(len + 1);
    if (!buf) return CORED_FAIL(err, CORED_E_NOMEM, "--tasks: out of memory");
    for (size_t i = 0; i <= len; i++) buf[i] = list[i] == ',' ? '\0' : list[i];
    char **out = string_block(buf, len + 1, count, 0);
    cored_free(buf);
    if (!out) return CORED_FAIL(err, CORED_E_NOMEM, "--tasks: out of memory");
    int rc = CORED_OK;
    for (int k = 0; k < count && !rc; k++) {
        const char *t = out[k];
        if (!t[0])
            rc = CORED_FAIL(err, CORED_E_ARG, "--tasks '%.200s': empty task name", list);
        else if (strchr(t, '/') || !strcmp(t, ".") || !strcmp(t, "..") || strlen(t) > 255)
            rc = CORED_FAIL(err, CORED_E_ARG, "--tasks: '%.200s' is not a task folder name", t);
        for (int j = 0; j < k && !rc; j++)
            if (!strcmp(out[j], t)) rc = CORED_FAIL(err, CORED_E_ARG, "--tasks: task '%.200s' is listed twice", t);
    }
    if (rc) {
        cored_free(out);
        return rc;
    }
    *names = out;
    *n = count;
    return CORED_OK;
}
