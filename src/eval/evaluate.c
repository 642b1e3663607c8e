/* Scoring data sets; see evaluate.h. */
#include <math.h>
#include <string.h>

#include "core/core.h"
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
