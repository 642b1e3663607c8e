/*
 * libFuzzer target for the safetensors reader (src/io/safetensors.c). Any input must be
 * either refused with a message that names the file, or parsed into a file whose tensors
 * all lie inside the buffer, are found by name, and convert (or are refused cleanly) to
 * float32 and int64. A parsed file of float tensors with finite values must survive
 * cored_st_serialize and a second parse bit for bit (as F32), metadata included.
 * Inputs that start with '{' are also tried as a bare header (see LLVMFuzzerTestOneInput).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/safetensors.h"

#define LABEL "fuzz.safetensors"

static void require(int cond)
{
    if (!cond) abort();
}

static int is_float(cored_dtype dt)
{
    return dt == CORED_DT_F16 || dt == CORED_DT_BF16 || dt == CORED_DT_F32 || dt == CORED_DT_F64;
}

/* Writes the float tensors of f back out and checks that they read back the same. */
static void round_trip(const cored_st_file *f, float *const *vals)
{
    cored_st_out *outs = calloc((size_t)f->n_tensors + 1, sizeof *outs);
    const char **kv = calloc(2 * (size_t)f->n_meta + 1, sizeof *kv);
    unsigned char *buf = NULL;
    size_t len = 0;
    cored_st_file *g = NULL;
    cored_error err = {0};
    require(outs && kv);
    for (int k = 0; k < f->n_tensors; k++) {
        const cored_st_tensor *t = &f->tensors[k];
        outs[k].name = t->name;
        outs[k].ndim = t->ndim;
        memcpy(outs[k].shape, t->shape, sizeof t->shape);
        outs[k].data = vals[k];
    }
    for (int k = 0; k < f->n_meta; k++) {
        kv[2 * k] = f->meta_keys[k];
        kv[2 * k + 1] = f->meta_vals[k];
    }
    require(cored_st_serialize(&buf, &len, outs, f->n_tensors, kv, f->n_meta, &err) == CORED_OK);
    require(cored_st_parse(&g, buf, len, "roundtrip", &err) == CORED_OK);
    require(g->n_tensors == f->n_tensors && g->n_meta == f->n_meta);
    for (int k = 0; k < f->n_tensors; k++) {
        const cored_st_tensor *a = &f->tensors[k], *b = &g->tensors[k];
        require(strcmp(a->name, b->name) == 0 && b->dtype == CORED_DT_F32 && a->ndim == b->ndim);
        require(memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0);
        require(b->numel == a->numel && b->nbytes == 4 * a->numel);
        float *x = malloc(4 * b->numel + 4);
        require(x && cored_st_to_f32(g, b, x, b->numel, 0, &err) == CORED_OK);
        require(b->numel == 0 || memcmp(x, vals[k], 4 * b->numel) == 0);
        free(x);
    }
    for (int k = 0; k < f->n_meta; k++)
        require(strcmp(f->meta_keys[k], g->meta_keys[k]) == 0 &&
                strcmp(f->meta_vals[k], g->meta_vals[k]) == 0);
    cored_st_close(g);
    cored_free(buf);
    free(kv);
    free(outs);
}

static void check_one(const uint8_t *data, size_t size)
{
    cored_st_file *f = NULL;
    cored_error err = {0};
    if (cored_st_parse(&f, data, size, LABEL, &err) != CORED_OK) {
        require(f == NULL && strncmp(err.msg, LABEL ": ", sizeof LABEL + 1) == 0);
        return;
    }
    require(f && f->len == size && (size == 0 || memcmp(f->buf, data, size) == 0));
    float **vals = calloc((size_t)f->n_tensors + 1, sizeof *vals);
    int all_float = 1;
    require(vals != NULL);
    for (int k = 0; k < f->n_tensors; k++) {
        const cored_st_tensor *t = &f->tensors[k];
        require(t->data >= f->buf && t->nbytes <= f->len &&
                t->data - f->buf <= (ptrdiff_t)(f->len - t->nbytes));
        require(t->nbytes == t->numel * cored_dtype_size(t->dtype) && t->ndim >= 0 &&
                t->ndim <= CORED_ST_MAX_DIMS);
        require(cored_st_find(f, t->name) == t);
        float *x = malloc(4 * t->numel + 4);
        int64_t *y = malloc(8 * t->numel + 8);
        require(x && y);
        int rf = cored_st_to_f32(f, t, x, t->numel, 0, &err);
        require(rf == CORED_OK || strncmp(err.msg, LABEL ": ", sizeof LABEL + 1) == 0);
        require(rf == CORED_OK || cored_st_to_f32(f, t, x, t->numel, 1, &err) == CORED_OK ||
                !is_float(t->dtype));
        int ri = cored_st_to_i64(f, t, y, t->numel, &err);
        require(ri == CORED_OK || strncmp(err.msg, LABEL ": ", sizeof LABEL + 1) == 0);
        if (t->numel > 0) require(cored_st_to_f32(f, t, x, t->numel - 1, 1, &err) != CORED_OK);
        free(y);
        if (rf == CORED_OK) vals[k] = x;
        else {
            free(x);
            all_float = 0;
        }
    }
    for (int k = 0; k < f->n_meta; k++) {
        const char *v = cored_st_meta(f, f->meta_keys[k]);
        require(v == f->meta_vals[k]);
    }
    require(cored_st_find(f, "\x01not a tensor") == NULL ||
            cored_st_find(f, "\x01not a tensor")->name[0] == 1);
    require(cored_st_meta(f, NULL) == NULL && cored_st_find(f, NULL) == NULL);
    if (all_float) round_trip(f, vals);
    for (int k = 0; k < f->n_tensors; k++) free(vals[k]);
    free(vals);
    cored_st_close(f);
}

/* The input as it is, and, when it starts with '{', as a header (up to its last '}') with
   the right length prefix and the rest as the data section, so that mutations of the
   JSON are not all lost to a wrong header length. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_one(data, size);
    if (size == 0 || data[0] != '{') return 0;
    const uint8_t *end = data + size;
    while (end > data + 1 && end[-1] != '}') end--;
    size_t hlen = (size_t)(end - data);
    uint8_t *buf = malloc(size + 8);
    require(buf != NULL);
    for (int k = 0; k < 8; k++) buf[k] = (uint8_t)((uint64_t)hlen >> 8 * k);
    memcpy(buf + 8, data, size);
    check_one(buf, size + 8);
    free(buf);
    return 0;
}
