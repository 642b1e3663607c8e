/* Reading the tensor files of the interop commands (forward, grad). */
#include <stdio.h>
#include <string.h>

#include "cli_tensors.h"
#include "core/core.h"

int cli_load_input(const char *path, float **out, int *n, int *size, cored_error *err)
{
    cored_st_file *f = NULL;
    float *x = NULL;
    int rc = cored_st_open(&f, path, err);
    if (rc) return rc;
    const cored_st_tensor *t = cored_st_find(f, "input");
    if (!t) {
        rc = CORED_FAIL(err, CORED_E_SHAPE, "%s: no tensor named 'input'", path);
        cored_error_hint(err, "the input file must hold 'input', float32 [N,3,H,W] (NCHW)");
        goto done;
    }
    if (t->ndim != 4 || t->shape[1] != 3 || t->shape[2] != t->shape[3] || t->shape[0] < 1 ||
        t->shape[2] < 1 || t->shape[0] > 65536 || t->shape[2] > 4096) {
        rc = CORED_FAIL(err, CORED_E_SHAPE,
                        "%s: tensor 'input' must be [N,3,S,S] with 1 <= N <= 65536 and square images "
                        "of up to 4096 px, got %d dimensions [%lld,%lld,%lld,%lld]",
                        path, t->ndim, (long long)t->shape[0], t->ndim > 1 ? (long long)t->shape[1] : 0,
                        t->ndim > 2 ? (long long)t->shape[2] : 0, t->ndim > 3 ? (long long)t->shape[3] : 0);
        goto done;
    }
    x = cored_alloc(sizeof(float) * t->numel);
    if (!x) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate the input", path);
        goto done;
    }
    rc = cored_st_to_f32(f, t, x, t->numel, 0, err);
    if (rc) goto done;
    *out = x;
    x = NULL;
    *n = (int)t->shape[0];
    *size = (int)t->shape[2];
done:
    cored_free(x);
    cored_st_close(f);
    return rc;
}

int cli_load_ints(const char *path, const char *name, int n, int lo, int hi, int required, int **out,
                  cored_error *err)
{
    cored_st_file *f = NULL;
    int64_t *v = NULL;
    int *vals = NULL;
    *out = NULL;
    int rc = cored_st_open(&f, path, err);
    if (rc) return rc;
    const cored_st_tensor *t = cored_st_find(f, name);
    if (!t) {
        if (required) {
            rc = CORED_FAIL(err, CORED_E_SHAPE, "%s: no tensor named '%s'", path, name);
            if (!strcmp(name, "labels")) cored_error_hint(err, "the labels file must hold 'labels' [N] (0 real, 1 fake)");
        }
        goto done;
    }
    if (t->ndim != 1 || t->shape[0] != n) {
        rc = CORED_FAIL(err, CORED_E_SHAPE, "%s: tensor '%s' must be [%d] to match the input, got %d dimensions%s%lld",
                        path, name, n, t->ndim, t->ndim == 1 ? " of " : "", t->ndim == 1 ? (long long)t->shape[0] : 0LL);
        goto done;
    }
    v = cored_alloc(sizeof(int64_t) * (size_t)n);
    vals = cored_alloc(sizeof(int) * (size_t)n);
    if (!v || !vals) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate '%s'", path, name);
        goto done;
    }
    rc = cored_st_to_i64(f, t, v, (size_t)n, err);
    if (rc) goto done;
    for (int i = 0; i < n; i++) {
        if (v[i] < lo || v[i] > hi) {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: %s[%d] = %lld; values must be %d..%d%s", path, name, i,
                            (long long)v[i], lo, hi, !strcmp(name, "labels") ? " (0 real, 1 fake)" : "");
            goto done;
        }
        vals[i] = (int)v[i];
    }
    *out = vals;
    vals = NULL;
done:
    cored_free(v);
    cored_free(vals);
    cored_st_close(f);
    return rc;
}

int cli_load_labels(const char *path, int n, int **out, cored_error *err)
{
    return cli_load_ints(path, "labels", n, 0, 1, 1, out, err);
}
