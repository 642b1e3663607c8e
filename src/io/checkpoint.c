/*
 * Model <-> safetensors. Parameters are stored in the PyTorch layouts cored uses
 * internally, so saving and loading copy tensors by name with no reordering. A file
 * that does not fit the model is refused with the full list of names that do not fit, one
 * with a negative BatchNorm running variance (its inverse square root is not a number)
 * naming the value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "core/core.h"

int cored_model_save(cored_model *m, const char *path, const char *const *meta_kv, int n_meta,
                     const cored_extra_tensors *extra, cored_error *err)
{
    int np = cored_model_param_count(m), ne = extra ? extra->n : 0;
    cored_st_out *t = cored_calloc((size_t)(np + ne) ? (size_t)(np + ne) : 1, sizeof *t);
    const char **kv = cored_calloc(2 * (size_t)(n_meta + 4), sizeof *kv);
    int rc = CORED_OK;
    if (!t || !kv) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate the tensor list", path);
        goto done;
    }
    for (int i = 0; i < np; i++) {
        const cored_param *p = cored_model_param(m, i);
        t[i].name = p->name;
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) t[i].shape[d] = p->shape[d];
        t[i].data = cored_model_param_data(m, i);
    }
    for (int i = 0; i < ne; i++) {
        if (strncmp(extra->tensors[i].name, CORED_EXTRA_PREFIX, strlen(CORED_EXTRA_PREFIX)) != 0) {
            rc = CORED_FAIL(err, CORED_E_INTERNAL, "extra tensor '%s' lacks the '%s' prefix",
                            extra->tensors[i].name, CORED_EXTRA_PREFIX);
            goto done;
        }
        t[np + i] = extra->tensors[i];
    }
    char size[16];
    snprintf(size, sizeof size, "%d", cored_model_size(m));
    int k = 0;
    kv[k++] = "format", kv[k++] = "cored";
    kv[k++] = "model", kv[k++] = cored_model_arch(m);
    kv[k++] = "input_size", kv[k++] = size;
    kv[k++] = "cored_version", kv[k++] = CORED_VERSION;
    for (int i = 0; i < 2 * n_meta; i++) kv[k++] = meta_kv[i];
    rc = cored_st_write(path, t, np + ne, kv, k / 2, err);
done:
    cored_free(t);
    cored_free(kv);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void shape_str(char *buf, size_t n, const int64_t *shape, int ndim)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Appends `item` to a comma list in buf, keeping at most `max_items` names. */
static void list_add(char *buf, size_t n, int *count, int max_items, const char *item)
{
    if (*count < max_items) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s", *count ? ", " : "", item);
    } else if (*count == max_items) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, ", ...");
    }
    (*count)++;
}

/* The classifier tensor t of a backbone file may have any number of classes K: the
   weight must be [K, C] and the bias [K] with the model's C. */
static int head_fits(const cored_param *p, const cored_st_tensor *t)
{
    if (t->ndim != p->ndim || t->shape[0] < 1) return 0;
    return p->ndim == 1 || t->shape[1] == p->shape[1];
}

/* skip_head: the classifier's tensors are neither loaded nor required (any class count,
   see head_fits). *head_only (may be NULL) is set when every misfit is a classifier tensor. */
static int load_file(cored_model *m, const cored_st_file *f, int skip_head, int *head_only,
                     cored_error *err)
{
    enum { MAX_LISTED = 6 };
    char missing[512] = "", unexpected[512] = "", misshaped[768] = "";
    int n_missing = 0, n_unexpected = 0, n_misshaped = 0, n_body = 0;
    const int np = cored_model_param_count(m);
    const cored_st_tensor **match = cored_calloc((size_t)np ? (size_t)np : 1, sizeof *match);
    if (!match) return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate", f->path);
    for (int i = 0; i < np; i++) {
        const cored_param *p = cored_model_param(m, i);
        const cored_st_tensor *t = cored_st_find(f, p->name);
        const int head = cored_model_param_is_head(m, p->name);
        if (skip_head && head && (!t || head_fits(p, t))) continue;
        if (!t) {
            list_add(missing, sizeof missing, &n_missing, MAX_LISTED, p->name);
            n_body += !head;
            continue;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            n_body += !head;
            char a[64], b[64], item[256];
            int64_t ps[4];
            for (int d = 0; d < p->ndim; d++) ps[d] = p->shape[d];
            shape_str(a, sizeof a, t->shape, t->ndim);
            shape_str(b, sizeof b, ps, p->ndim);
            snprintf(item, sizeof item, "%s: file %s, model %s", p->name, a, b);
            list_add(misshaped, sizeof misshaped, &n_misshaped, MAX_LISTED, item);
            continue;
        }
        match[i] = t;
    }
    for (int j = 0; j < f->n_tensors; j++) {
        const char *name = f->tensors[j].name;
        if (ends_with(name, "num_batches_tracked")) continue;
        if (strncmp(name, CORED_EXTRA_PREFIX, strlen(CORED_EXTRA_PREFIX)) == 0) continue;
        if (cored_model_param_find(m, name) < 0) {
            list_add(unexpected, sizeof unexpected, &n_unexpected, MAX_LISTED, name);
            n_body++;
        }
    }
    int rc = CORED_OK;
    if (head_only) *head_only = n_body == 0;
    if (n_missing || n_unexpected || n_misshaped) {
        char msg[2048] = "";
        size_t k = 0;
        if (n_missing) k += (size_t)snprintf(msg + k, sizeof msg - k, "; %d missing (%s)", n_missing, missing);
        if (n_unexpected && k < sizeof msg)
            k += (size_t)snprintf(msg + k, sizeof msg - k, "; %d unexpected (%s)", n_unexpected, unexpected);
        if (n_misshaped && k < sizeof msg)
            snprintf(msg + k, sizeof msg - k, "; %d with another shape (%s)", n_misshaped, misshaped);
        rc = CORED_FAIL(err, CORED_E_SHAPE, "%s does not fit model '%s'%s", f->path,
                        cored_model_arch(m), msg);
        const char *arch = cored_st_meta(f, "model");
        if (arch && strcmp(arch, cored_model_arch(m)) != 0)
            cored_error_hint(err, "the file's metadata says it holds a '%s' model; pass --model %s",
                             arch, arch);
        else if (!arch)
            cored_error_hint(err, "is it a checkpoint of another architecture? PyTorch files need "
                                  "tools/pth2safetensors.py first");
        goto done;
    }
    /* Convert everything into a staging copy first, so a bad value leaves m unchanged. */
    size_t nw, nb;
    float *w = cored_model_weights(m, &nw), *b = cored_model_buffers(m, &nb);
    float *sw = cored_alloc(sizeof(float) * (nw ? nw : 1)), *sb = cored_alloc(sizeof(float) * (nb ? nb : 1));
    if (!sw || !sb) {
        cored_free(sw);
        cored_free(sb);
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate", f->path);
        goto done;
    }
    memcpy(sw, w, sizeof(float) * nw);
    memcpy(sb, b, sizeof(float) * nb);
    for (int i = 0; i < np && rc == CORED_OK; i++) {
        const cored_param *p = cored_model_param(m, i);
        if (skip_head && cored_model_param_is_head(m, p->name)) continue;
        float *dst = (cored_param_trainable(p->kind) ? sw : sb) + p->offset;
        rc = cored_st_to_f32(f, match[i], dst, p->numel, 0, err);
        for (size_t k = 0; rc == CORED_OK && p->kind == CORED_PARAM_BN_VAR && k < p->numel; k++)
            if (dst[k] < 0)
                rc = CORED_FAIL(err, CORED_E_FORMAT,
                                "%s: %s[%zu] = %g: a BatchNorm running variance cannot be negative", f->path,
                                p->name, k, (double)dst[k]);
    }
    if (rc == CORED_OK) {
        memcpy(w, sw, sizeof(float) * nw);
        memcpy(b, sb, sizeof(float) * nb);
    }
    cored_free(sw);
    cored_free(sb);
done:
    cored_free(match);
    return rc;
}

int cored_model_load_file(cored_model *m, const cored_st_file *f, cored_error *err)
{
    return load_file(m, f, 0, NULL, err);
}

int cored_model_load(cored_model *m, const char *path, cored_error *err)
{
    cored_st_file *f = NULL;
    int rc = cored_st_open(&f, path, err);
    if (rc == CORED_OK) rc = cored_model_load_file(m, f, err);
    cored_st_close(f);
    return rc;
}

const char *const cored_init_head_names[] = {"keep", "reset", NULL};

const char *cored_init_head_name(cored_init_head h)
{
    return (unsigned)h < 2 ? cored_init_head_names[h] : "?";
}

int cored_init_head_parse(const char *s)
{
    for (int i = 0; i < 2; i++)
        if (s && !strcmp(s, cored_init_head_names[i])) return i;
    return -1;
}

int cored_model_load_init(cored_model *m, const char *path, cored_init_head head, uint64_t seed,
                          cored_error *err)
{
    cored_st_file *f = NULL;
    int rc = cored_st_open(&f, path, err);
    if (rc) return rc;
    int head_only = 0;
    rc = load_file(m, f, head == CORED_INIT_HEAD_RESET, &head_only, err);
    if (rc == CORED_OK && head == CORED_INIT_HEAD_RESET) cored_model_init_head(m, seed);
    if (rc == CORED_E_SHAPE && head == CORED_INIT_HEAD_KEEP && head_only) {
        char w[CORED_NAME_MAX + 8], classes[64] = "another number of";
        snprintf(w, sizeof w, "%s.weight", cored_model_head(m));
        const cored_st_tensor *t = cored_st_find(f, w);
        if (t && t->ndim == 2) snprintf(classes, sizeof classes, "%lld", (long long)t->shape[0]);
        cored_error_hint(err, "only the classifier '%s' differs (%s classes, e.g. an ImageNet backbone): "
                              "pass --init-head reset to load the rest and start a new 2-class classifier",
                         cored_model_head(m), classes);
    }
    cored_st_close(f);
    return rc;
}

void cored_checkpoint_info(const cored_st_file *f, char *arch, size_t n, int *size, char *tasks, size_t tn)
{
    const char *a = cored_st_meta(f, "model"), *s = cored_st_meta(f, "input_size"), *t = cored_st_meta(f, "tasks");
    snprintf(arch, n, "%s", a ? a : "");
    *size = s ? atoi(s) : 0;
    if (tasks) snprintf(tasks, tn, "%s", t ? t : "");
}

int cored_checkpoint_peek(const char *path, char *arch, size_t n, int *size, cored_error *err)
{
    cored_st_file *f = NULL;
    int rc = cored_st_open(&f, path, err);
    if (rc != CORED_OK) return rc;
    cored_checkpoint_info(f, arch, n, size, NULL, 0);
    cored_st_close(f);
    return CORED_OK;
}

int cored_checkpoint_load_slab(float *slab, const cored_st_file *f, cored_model *m, const char *prefix,
                               int required, cored_error *err)
{
    int found = 0;
    for (int i = 0; i < cored_model_param_count(m); i++) {
        const cored_param *p = cored_model_param(m, i);
        if (!cored_param_trainable(p->kind)) continue;
        char name[CORED_NAME_MAX + 32];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const cored_st_tensor *ts = cored_st_find(f, name);
        if (!ts) {
            if (required || found)
                return CORED_FAIL(err, CORED_E_FORMAT, "%s: tensor '%s' is missing", f->path, name);
            return 0;
        }
        found = 1;
        if (ts->numel != p->numel)
            return CORED_FAIL(err, CORED_E_SHAPE, "%s: tensor '%s' has %zu values, the model %zu",
                              f->path, name, ts->numel, p->numel);
        int rc = cored_st_to_f32(f, ts, slab + p->offset, p->numel, 0, err);
        if (rc) return rc;
    }
    return found;
}
