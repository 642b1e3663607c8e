/* Scoring data sets; see evaluate.h. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "dist/dist.h"
#include "evaluate.h"

cored_loader_opts cored_eval_loader_opts(const cored_loader_opts *base, int batch)
{
    cored_loader_opts o = *base;
    o.batch = batch;
    o.shuffle = 0;
    o.flip = 0;
    o.cutmix = CORED_CUTMIX_NONE;
    return o;
}

void cored_p_fake(float *p, const float *logits, int n)
{
    for (int i = 0; i < n; i++) {
        float d = logits[2 * i] - logits[2 * i + 1];
        p[i] = 1.0f / (1.0f + expf(d));
    }
}

int cored_eval_scores(float *scores, int *labels, int *index, int *n, cored_model *m,
                      cored_loader *l, cored_error *err)
{
    const int size = cored_model_size(m);
    int rc = cored_loader_start(l, 0, 0, err), k = 0;
    if (rc) return rc;
    cored_batch *b;
    while ((rc = cored_loader_next(l, &b, err)) == 1) {
        memcpy(cored_model_input(m), b->x, sizeof(float) * (size_t)b->n * size * size * 3);
        rc = cored_model_forward(m, b->n, CORED_FWD_EVAL, 0, err);
        if (rc) {
            cored_loader_release(l, b);
            return rc;
        }
        cored_p_fake(scores + k, cored_model_logits(m), b->n);
        for (int i = 0; i < b->n; i++) {
            labels[k + i] = b->labels[i];
            if (index) index[k + i] = b->index[i];
        }
        k += b->n;
        cored_loader_release(l, b);
    }
    if (rc < 0) return rc;
    *n = k;
    return CORED_OK;
}

static int dist_slice(cored_dataset **out, int *lo, const cored_dataset *ds, cored_error *err)
{
    int a, b;
    cored_shard_range(cored_dataset_count(ds), cored_dist_rank(), cored_dist_size(), &a, &b);
    *out = NULL;
    *lo = a;
    if (b <= a) return CORED_OK;
    int *idx = cored_alloc(sizeof(int) * (size_t)(b - a));
    if (!idx) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate a slice of %d images", b - a);
    for (int i = a; i < b; i++) idx[i - a] = i;
    int rc = cored_dataset_subset(out, ds, idx, b - a, err);
    cored_free(idx);
    return rc;
}

int cored_dist_loader(cored_loader **l, cored_dataset **slice, int *lo, const cored_dataset *ds,
                      const cored_loader_opts *o, cored_error *err)
{
    *l = NULL;
    *slice = NULL;
    *lo = 0;
    if (cored_dist_size() > 1) {
        int rc = dist_slice(slice, lo, ds, err);
        if (rc || !*slice) return rc;
    }
    return cored_loader_create(l, *slice ? *slice : ds, o, err);
}

int cored_eval_dataset(float *scores, int *labels, int *index, int *n, cored_model *m, const cored_dataset *ds,
                       const cored_loader_opts *o, cored_error *err)
{
    cored_dataset *slice;
    cored_loader *l;
    int lo, k = 0;
    int rc = cored_dist_loader(&l, &slice, &lo, ds, o, err);
    if (!rc && l) rc = cored_eval_scores(scores, labels, index, &k, m, l, err);
    cored_loader_free(l);
    cored_dataset_free(slice);
    if (rc) return rc; /* under mpirun the failing rank ends the job (cored_dist_abort) */
    if (cored_dist_size() > 1) {
        if (index)
            for (int i = 0; i < k; i++) index[i] += lo;
        cored_dist_allgather(scores, scores, (size_t)k, sizeof(float));
        if (index) cored_dist_allgather(index, index, (size_t)k, sizeof(int));
        k = (int)cored_dist_allgather(labels, labels, (size_t)k, sizeof(int));
    }
    *n = k;
    return CORED_OK;
}
