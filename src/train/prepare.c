/*
 * Per-task preparation: the teacher pass (logit cache for both flips, CoReD statistics
 * over un-augmented images) and the EWC Fisher. See prepare.h.
 */
#include <string.h>

#include "core/core.h"
#include "dist/dist.h"
#include "eval/evaluate.h"
#include "models/model.h"
#include "ops/ops.h"
#include "prepare.h"

void cored_flip_batch(float *x, int n, int size)
{
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < n * size; r++) {
        float *row = x + (size_t)r * size * 3;
        for (int a = 0, b = size - 1; a < b; a++, b--)
            for (int ch = 0; ch < 3; ch++) {
                float t = row[3 * a + ch];
                row[3 * a + ch] = row[3 * b + ch];
                row[3 * b + ch] = t;
            }
    }
}

void cored_teacher_cache_release(cored_teacher_cache *c)
{
    cored_free(c->logits);
    cored_free(c->have);
    memset(c, 0, sizeof *c);
}

static cored_loader_opts deterministic_opts(const cored_loader_opts *lo, int batch)
{
    cored_loader_opts o = *lo;
    o.batch = batch;
    o.shuffle = 0;
    o.flip = 0;
    o.cutmix = CORED_CUTMIX_NONE;
    return o;
}

/* The cells' counts and sums of every rank, summed in rank order. */
static void sum_rep_over_ranks(cored_rep_stats *rep)
{
    cored_dist_sum_d(rep->count, CORED_CELLS);
    cored_dist_sum_d(rep->sum, (size_t)CORED_CELLS * rep->dim);
    cored_dist_sum_d(rep->sumsq, (size_t)rep->dim);
    cored_dist_max_i(rep->present, CORED_CELLS);
}

int cored_teacher_pass(cored_teacher_cache *cache, cored_rep_stats *rep, cored_model *teacher,
                       const cored_dataset *ds, const cored_loader_opts *lo,
                       cored_progress_fn progress, void *user, volatile sig_atomic_t *stop,
                       cored_error *err)
{
    const int n = cored_dataset_count(ds), size = cored_model_size(teacher);
    cored_loader *l = NULL;
    cored_dataset *slice = NULL;
    int *cells = NULL, rc;
    memset(cache, 0, sizeof *cache);
    cache->n = n;
    cache->logits = cored_calloc((size_t)n * 4, sizeof(float));
    cache->have = cored_calloc((size_t)n, 1);
    cells = cored_alloc(sizeof(int) * (size_t)cored_model_max_batch(teacher));
    if (!cache->logits || !cache->have || !cells) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the teacher cache for %d images", n);
        goto fail;
    }
    cored_loader_opts o = deterministic_opts(lo, cored_model_max_batch(teacher));
    /* data parallel: this rank's slice [base, base + its count) of the images; the cache and
       the statistics are gathered and summed after the pass */
    const int dist = cored_dist_size() > 1;
    int base;
    if ((rc = cored_dist_loader(&l, &slice, &base, ds, &o, err))) goto fail;
    if (l && (rc = cored_loader_start(l, 0, 0, err))) goto fail;
    double t0 = cored_now();
    int done = 0, batches = l ? cored_loader_batches(l) : 0;
    cored_batch *b;
    while ((rc = l ? cored_loader_next(l, &b, err) : 0) == 1) {
        if (stop && *stop) {
            cored_loader_release(l, b);
            rc = CORED_FAIL(err, CORED_E_STOPPED, "stopped during the teacher pass");
            goto fail;
        }
        float *in = cored_model_input(teacher);
        for (int flip = 0; flip < 2; flip++) {
            memcpy(in, b->x, sizeof(float) * (size_t)b->n * size * size * 3);
            if (flip) cored_flip_batch(in, b->n, size);
            if ((rc = cored_model_forward(teacher, b->n, CORED_FWD_EVAL, 0, err))) {
                cored_loader_release(l, b);
                goto fail;
            }
            const float *z = cored_model_logits(teacher);
            for (int i = 0; i < b->n; i++) {
                size_t idx = (size_t)base + (size_t)b->index[i];
                memcpy(cache->logits + (idx * 2 + flip) * 2, z + 2 * i, 2 * sizeof(float));
                cache->have[idx] = 1;
            }
            if (!flip && rep) {
                int h, w, c;
                const float *f = cored_model_features(teacher, &h, &w, &c);
                cored_cells_from_logits(cells, z, b->labels, b->n);
                cored_rep_accumulate(rep, f, cells, b->n, h * w, c);
            }
        }
        cored_loader_release(l, b);
        done++;
        if (progress) {
            double el = cored_now() - t0;
            cored_progress p = {.phase = CORED_PHASE_PREPARE, .what = "teacher pass",
                                .batch = done, .batches = batches, .elapsed = el,
                                .images_per_s = el > 0 ? 2.0 * done * o.batch / el : 0,
                                .eta = el / done * (batches - done)};
            progress(&p, user);
        }
    }
    if (rc < 0) goto fail;
    if (dist) {
        /* every rank's slice of the cache, in rank order (the slices are contiguous) */
        int a, e;
        cored_shard_range(n, cored_dist_rank(), cored_dist_size(), &a, &e);
        cored_dist_allgather(cache->logits, cache->logits + (size_t)a * 4, (size_t)(e - a) * 4, sizeof(float));
        cored_dist_allgather(cache->have, cache->have + a, (size_t)(e - a), 1);
        if (rep) sum_rep_over_ranks(rep);
    }
    if (rep) cored_rep_finish(rep);
    cored_loader_free(l);
    cored_dataset_free(slice);
    cored_free(cells);
    return CORED_OK;
fail:
    cored_loader_free(l);
    cored_dataset_free(slice);
    cored_free(cells);
    cored_teacher_cache_release(cache);
    return rc;
}

int cored_rep_batch_pass(cored_rep_stats *rep, cored_model *m, const cored_teacher_cache *cache,
                         const cored_dataset *ds, const cored_loader_opts *lo, int batch, int sync,
                         volatile sig_atomic_t *stop, cored_error *err)
{
    const int size = cored_model_size(m);
    size_t nb;
    float *buffers = cored_model_buffers(m, &nb);
    float *saved = cored_alloc(sizeof(float) * (nb ? nb : 1)), *z = cored_alloc(sizeof(float) * 2 * (size_t)batch);
    int *cells = cored_alloc(sizeof(int) * (size_t)batch), rc;
    cored_loader *l = NULL;
    if (!saved || !z || !cells) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the representation pass");
        goto done;
    }
    memcpy(saved, buffers, sizeof(float) * nb);
    /* batches like the training batches (shuffled: both classes), without augmentation */
    cored_loader_opts o = deterministic_opts(lo, batch);
    o.shuffle = 1;
    /* data parallel: each rank its shard of every batch, normalised as the student's training
       forward normalises it (the shard's statistics, or the batch's with sync) */
    const int dist = cored_dist_size() > 1;
    sync = sync && dist;
    if (dist) o.shard_rank = cored_dist_rank(), o.shard_count = cored_dist_size();
    if ((rc = cored_loader_create(&l, ds, &o, err)) || (rc = cored_loader_start(l, 0, 0, err))) goto done;
    cored_batch *b;
    while ((rc = cored_loader_next(l, &b, err)) == 1) {
        if (stop && *stop) {
            cored_loader_release(l, b);
            rc = CORED_FAIL(err, CORED_E_STOPPED, "stopped during the teacher pass");
            goto done;
        }
        if (sync && b->n == 0 && b->global_n >= 2)
            cored_model_bn_sync_idle(m, 0);
        else if (sync ? b->global_n >= 2 : b->n >= 2) { /* batch statistics need two images at least */
            memcpy(cored_model_input(m), b->x, sizeof(float) * (size_t)b->n * size * size * 3);
            rc = cored_model_forward(m, b->n, CORED_FWD_BN_BATCH | (sync ? CORED_FWD_BN_SYNC : 0), 0, err);
            if (!rc) {
                for (int i = 0; i < b->n; i++) memcpy(z + 2 * i, cache->logits + (size_t)b->index[i] * 4, 2 * sizeof(float));
                cored_cells_from_logits(cells, z, b->labels, b->n);
                int h, w, c;
                const float *f = cored_model_features(m, &h, &w, &c);
                cored_rep_accumulate(rep, f, cells, b->n, h * w, c);
            }
        }
        cored_loader_release(l, b);
        if (rc) goto done;
    }
    if (rc < 0) goto done;
    if (dist) sum_rep_over_ranks(rep);
    cored_rep_finish(rep);
    rc = CORED_OK;
done:
    if (saved) memcpy(buffers, saved, sizeof(float) * nb);
    cored_loader_free(l);
    cored_free(saved);
    cored_free(z);
    cored_free(cells);
    return rc;
}

int cored_teacher_batch_logits(float *out, const cored_teacher_cache *cache, cored_model *teacher,
                               const cored_batch *b, int size, cored_error *err)
{
    const size_t img = (size_t)size * size * 3;
    float *in = cored_model_input(teacher);
    int rows[CORED_MAX_BATCH], k = 0;
    for (int i = 0; i < b->n; i++) {
        int idx = b->index[i];
        if (!b->mixed[i] && idx < cache->n && cache->have[idx]) {
            memcpy(out + 2 * i, cache->logits + ((size_t)idx * 2 + (b->flipped[i] ? 1 : 0)) * 2,
                   2 * sizeof(float));
        } else {
            memcpy(in + (size_t)k * img, b->x + (size_t)i * img, sizeof(float) * img);
            rows[k++] = i;
        }
    }
    if (k == 0) return CORED_OK;
    int rc = cored_model_forward(teacher, k, CORED_FWD_EVAL, 0, err);
    if (rc) return rc;
    const float *z = cored_model_logits(teacher);
    for (int j = 0; j < k; j++) memcpy(out + 2 * rows[j], z + 2 * j, 2 * sizeof(float));
    return CORED_OK;
}

int cored_ewc_fisher(float *fisher, cored_model *m, const cored_dataset *ds, int max_samples,
                     uint64_t seed, const cored_loader_opts *lo, volatile sig_atomic_t *stop,
                     cored_error *err)
{
    const int size = cored_model_size(m);
    const size_t img = (size_t)size * size * 3;
    cored_dataset *sub = NULL, *slice = NULL;
    cored_loader *l = NULL;
    float *acc = NULL, dl[2];
    size_t nw;
    float *g = cored_model_grads(m, &nw);
    int rc = cored_dataset_cap_per_class(&sub, ds, max_samples / 2 > 0 ? max_samples / 2 : 1, seed, err);
    if (rc) return rc;
    acc = cored_calloc(nw ? nw : 1, sizeof(float));
    if (!acc) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the Fisher");
        goto done;
    }
    cored_loader_opts o = deterministic_opts(lo, cored_model_max_batch(m));
    /* data parallel: this rank's slice of the sampled images; the sums of the squared
       gradients and the count are summed over the ranks after the pass */
    int base;
    if ((rc = cored_dist_loader(&l, &slice, &base, sub, &o, err))) goto done;
    if (l && (rc = cored_loader_start(l, 0, 0, err))) goto done;
    int count = 0;
    cored_batch *b;
    while ((rc = l ? cored_loader_next(l, &b, err) : 0) == 1) {
        for (int i = 0; i < b->n && rc == 1; i++) {
            if (stop && *stop) {
                rc = CORED_FAIL(err, CORED_E_STOPPED, "stopped while computing the Fisher");
                break;
            }
            memcpy(cored_model_input(m), b->x + (size_t)i * img, sizeof(float) * img);
            int r2 = cored_model_forward(m, 1, CORED_FWD_EVAL, 0, err);
            if (!r2) {
                cored_softmax_ce(dl, cored_model_logits(m), &b->labels[i], 1, 2, 1.0f);
                cored_model_zero_grad(m);
                r2 = cored_model_backward(m, dl, NULL, err);
            }
            if (r2) {
                rc = r2;
                break;
            }
            #pragma omp parallel for simd schedule(static)
            for (size_t k = 0; k < nw; k++) acc[k] += g[k] * g[k];
            count++;
        }
        cored_loader_release(l, b);
        if (rc != 1) break;
    }
    if (rc < 0) goto done;
    rc = CORED_OK;
    if (cored_dist_size() > 1) {
        double c = count;
        cored_dist_sum_f(acc, nw);
        cored_dist_sum_d(&c, 1);
        count = (int)c;
    }
    for (size_t k = 0; k < nw; k++) fisher[k] += count ? acc[k] / count : 0.0f;
    cored_model_zero_grad(m);
done:
    cored_loader_free(l);
    cored_dataset_free(slice);
    cored_dataset_free(sub);
    cored_free(acc);
    return rc;
}
