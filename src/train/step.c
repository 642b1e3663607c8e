/* The training step of every method; see step.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "dist/dist.h"
#include "models/model.h"
#include "ops/ops.h"
#include "step.h"

static void grads_ready(void *reducer, size_t from) { cored_dist_reducer_ready(reducer, from); }

int cored_step_init(cored_step *s, const cored_train_cfg *cfg, cored_model *student, cored_model *eval,
                    const cored_model *teacher, cored_error *err)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->student = student;
    s->eval = eval;
    s->stochastic = 1;
    const int B = cfg->batch, cored = cfg->method == CORED_METHOD_CORED;
    if (cored && !cfg->freeze_bn && !eval)
        return CORED_FAIL(err, CORED_E_ARG, "the CoReD step needs an inference build for the cells");
    if (cfg->method == CORED_METHOD_TG && !teacher)
        return CORED_FAIL(err, CORED_E_ARG, "the TG step needs the teacher's weights");
    size_t nw;
    float *w = cored_model_weights(student, &nw);
    int rc = cored_optim_create(&s->opt, &cfg->optim, nw, err);
    if (rc) return rc;
    int fh, fw, ch;
    cored_model_features(student, &fh, &fw, &ch);
    s->dlogits = cored_alloc(sizeof(float) * 2 * B);
    s->cells = cored_alloc(sizeof(int) * B);
    s->ws = cored_alloc(sizeof(float) * cored_rep_ws_floats(B, ch));
    s->dfeat = cored ? cored_alloc(sizeof(float) * (size_t)B * fh * fw * ch) : NULL;
    if (!s->dlogits || !s->cells || !s->ws || (cored && !s->dfeat))
        return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the training buffers");
    for (int i = 0; i < B; i++) s->cells[i] = -1;
    if (cored && (rc = cored_rep_init(&s->rep, cfg->rep, ch, err))) return rc;
    if (cored_dist_size() > 1 && cfg->bucket_mb > 0) {
        if (!(s->reducer = cored_dist_reducer_new((size_t)(cfg->bucket_mb * 1e6 / sizeof(float)))))
            return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the gradient buckets");
    }
    s->have_rep = cored;
    s->reg.n = nw;
    if (cfg->method == CORED_METHOD_TG) {
        s->reg.anchor = cored_model_weights((cored_model *)teacher, NULL);
        s->is_head = cored_calloc(nw ? nw : 1, 1);
        if (!s->is_head) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the classifier mask");
        cored_head_mask(s->is_head, student);
        s->reg.is_head = s->is_head;
    }
    if (cfg->method == CORED_METHOD_EWC) {
        s->anchor = cored_alloc(sizeof(float) * (nw ? nw : 1));
        s->fisher = cored_calloc(nw ? nw : 1, sizeof(float));
        if (!s->anchor || !s->fisher) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the EWC state");
        memcpy(s->anchor, w, sizeof(float) * nw);
        s->reg.anchor = s->anchor;
        s->reg.fisher = s->fisher;
    }
    return CORED_OK;
}

void cored_step_release(cored_step *s)
{
    cored_optim_free(s->opt);
    cored_rep_release(&s->rep);
    cored_free(s->anchor);
    cored_free(s->fisher);
    cored_free(s->is_head);
    cored_free(s->dlogits);
    cored_free(s->dfeat);
    cored_free(s->ws);
    cored_free(s->cells);
    cored_free(s->trace_buf);
    cored_dist_reducer_free(s->reducer);
    memset(s, 0, sizeof *s);
}

static int nonfinite(const cored_step *s, const cored_step_batch *b, const char *term, cored_error *err)
{
    const cored_train_cfg *c = s->cfg;
    int rc = c->target ? CORED_FAIL(err, CORED_E_NONFINITE,
                                    "non-finite %s at task %s, epoch %d, step %d; stopped without saving", term,
                                    c->target, b->epoch + 1, b->index + 1)
                       : CORED_FAIL(err, CORED_E_NONFINITE, "non-finite %s at step %d", term, b->index + 1);
    if (c->freeze_bn)
        cored_error_hint(err, "with --freeze-bn the student normalises with its teacher's running statistics, "
                              "which a model trained from scratch on one task may not fit; train without "
                              "--freeze-bn, or lower --lr (now %g)", c->optim.lr);
    else
        cored_error_hint(err, "lower --lr (now %g)%s", c->optim.lr,
                         c->method == CORED_METHOD_CORED ? ", or look at the terms with --trace FILE" : "");
    return rc;
}

/* Every element of a slab parallel to the weights (gradients, or weights after the
   update) must be finite; the first bad one is reported with its parameter's name. */
static int check_finite(const cored_step *s, const cored_step_batch *b, const float *v, const char *what,
                        cored_error *err)
{
    size_t nw;
    cored_model_weights(s->student, &nw);
    int bad = 0;
    #pragma omp parallel for reduction(| : bad) schedule(static)
    for (size_t i = 0; i < nw; i++) bad |= !isfinite(v[i]);
    if (!bad) return CORED_OK;
    for (int i = 0; i < cored_model_param_count(s->student); i++) {
        const cored_param *p = cored_model_param(s->student, i);
        if (!cored_param_trainable(p->kind)) continue;
        for (size_t k = 0; k < p->numel; k++)
            if (!isfinite(v[p->offset + k])) {
                char term[CORED_NAME_MAX + 48];
                snprintf(term, sizeof term, "%s %s", what, p->name);
                return nonfinite(s, b, term, err);
            }
    }
    return nonfinite(s, b, what, err);
}

static double norm2(const float *v, size_t n)
{
    double a = 0;
    for (size_t i = 0; i < n; i++) a += (double)v[i] * v[i];
    return sqrt(a);
}

/* The diagnostics of cored_step_trace, before the step's own backward: the logit gradient
   split at the logits, and the weight gradient of the logit terms and of the representation
   term from two more forward/backward passes (running statistics and input restored before
   each forward). */
static int trace_step(cored_step *s, const cored_step_batch *b, int flags, cored_error *err)
{
    const cored_train_cfg *c = s->cfg;
    cored_step_trace *tr = s->trace;
    const int n = b->n, size = cored_model_size(s->student);
    const size_t in_bytes = sizeof(float) * (size_t)n * size * size * 3; /* backward may reuse the input */
    size_t nw, nb;
    cored_model_weights(s->student, &nw);
    float *buffers = cored_model_buffers(s->student, &nb), *g = cored_model_grads(s->student, NULL);
    float *saved = s->trace_buf, *dce = s->trace_buf + nb; /* saved: the statistics before the step */
    const float *z = cored_model_logits(s->student);
    cored_softmax_ce(dce, z, b->labels, n, 2, cored_method_ce_weight(c));
    tr->dlogit_ce = norm2(dce, 2 * (size_t)n);
    for (int i = 0; i < 2 * n; i++) dce[i] = s->dlogits[i] - dce[i];
    tr->dlogit_kd = norm2(dce, 2 * (size_t)n);
    int fh, fw, fc;
    const float *feat = cored_model_features(s->student, &fh, &fw, &fc);
    const size_t nf = (size_t)n * fh * fw * fc;
    tr->tap_rep = s->dfeat ? norm2(s->dfeat, nf) : 0;
    for (int k = 0; k < CORED_CELLS; k++) {
        double m = 0;
        for (int d = 0; s->have_rep && d < s->rep.dim; d++) m += s->rep.mu[(size_t)k * s->rep.dim + d];
        tr->mu_t[k] = s->have_rep && s->rep.present[k] ? (float)(m / s->rep.dim) : NAN;
        tr->mu_s[k] = tr->mu_s_eval[k] = NAN;
        tr->count[k] = 0;
    }
    if (c->method == CORED_METHOD_CORED) {
        cored_rep_cell_scalars(tr->mu_s, tr->count, feat, s->cells, n, fh * fw, fc);
        if (!c->freeze_bn)
            cored_rep_cell_scalars(tr->mu_s_eval, NULL, cored_model_features(s->eval, NULL, NULL, NULL), s->cells, n,
                                   fh * fw, fc);
    }
    tr->w_rep = 0;
    int rc;
    cored_model_zero_grad(s->student);
    if ((rc = cored_model_backward(s->student, s->dlogits, NULL, err))) return rc;
    tr->w_logit = norm2(g, nw);
    if (s->dfeat) {
        float *zero = dce;
        memset(zero, 0, sizeof(float) * 2 * (size_t)n);
        memcpy(buffers, saved, sizeof(float) * nb);
        memcpy(cored_model_input(s->student), b->x, in_bytes);
        if ((rc = cored_model_forward(s->student, n, flags, b->seed, err))) return rc;
        cored_model_zero_grad(s->student);
        if ((rc = cored_model_backward(s->student, zero, s->dfeat, err))) return rc;
        tr->w_rep = norm2(g, nw);
    }
    memcpy(buffers, saved, sizeof(float) * nb);
    memcpy(cored_model_input(s->student), b->x, in_bytes);
    return cored_model_forward(s->student, n, flags, b->seed, err);
}

/* Data parallel: every rank ends the step with the same weights, running statistics and
   (TG) teacher CE. n = 0 on a rank whose shard of this batch is empty. */
static void dist_sum_teacher_ce(cored_step *s, const cored_step_batch *b)
{
    double v[2] = {0, b->n};
    if (b->n > 0) v[0] = cored_softmax_ce(NULL, b->teacher_logits, b->labels, b->n, 2, 1.0f) * b->n;
    cored_dist_sum_d(v, 2);
    s->reg.teacher_ce_sum = v[0];
    s->reg.teacher_ce_n = (int)v[1];
}

/* Clears the gradients before the backward pass fills them and, under mpirun with buckets,
   starts their sum. */
static int clear_grads(cored_step *s, cored_error *err)
{
    size_t nw;
    float *g = cored_model_grads(s->student, &nw);
    cored_model_zero_grad(s->student);
    if (s->reducer && cored_dist_reducer_begin(s->reducer, g, nw))
        return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the gradient buckets");
    return CORED_OK;
}

int cored_train_step(cored_step *s, const cored_step_batch *b, cored_loss_terms *terms, int *correct,
                     cored_error *err)
{
    const cored_train_cfg *c = s->cfg;
    const int n = b->n, size = cored_model_size(s->student);
    const size_t bytes = sizeof(float) * (size_t)n * size * size * 3;
    const int cored = c->method == CORED_METHOD_CORED, tg = c->method == CORED_METHOD_TG;
    const int dist = cored_dist_size() > 1, sync = dist && c->sync_bn && !c->freeze_bn;
    const int global_n = b->global_n > 0 ? b->global_n : n;
    int rc;
    if (n < (dist ? 0 : 1) || n > cored_model_max_batch(s->student))
        return CORED_FAIL(err, CORED_E_ARG, "a batch of %d images; the model was built for 1..%d", n,
                          cored_model_max_batch(s->student));
    if (cored_method_uses_teacher(c->method) && !b->teacher_logits)
        return CORED_FAIL(err, CORED_E_ARG, "method '%s' needs the teacher's logits", cored_method_name(c->method));
    *correct = 0;
    memset(terms, 0, sizeof *terms);
    if (n == 0) { /* an empty shard: this rank joins the collectives with nothing */
        if (s->trace) return CORED_FAIL(err, CORED_E_ARG, "--trace is not available under mpirun");
        if (sync) cored_model_bn_sync_idle(s->student, 0);
        if (cored) {
            cored_rep_loss_cfg how = cored_rep_how(c);
            int fh, fw, fc;
            cored_model_features(s->student, &fh, &fw, &fc);
            terms->rep = cored_rep_loss(NULL, &terms->rep_cells, &s->rep, s->cells, NULL, 0, fh * fw, fc, &how, s->ws);
            terms->total = terms->rep;
        }
        if ((rc = clear_grads(s, err))) return rc;
        if (sync) cored_model_bn_sync_idle(s->student, 1);
        goto update;
    }
    if (cored && !c->freeze_bn) {
        if ((rc = cored_model_copy_params(s->eval, s->student, err))) return rc;
        cored_copy(cored_model_input(s->eval), b->x, bytes / sizeof(float));
        if ((rc = cored_model_forward(s->eval, n, CORED_FWD_EVAL, 0, err))) return rc;
        cored_cells_from_logits(s->cells, cored_model_logits(s->eval), b->labels, n);
    }
    if (s->trace) { /* the running statistics as they are before the step, for trace_step */
        if (dist) return CORED_FAIL(err, CORED_E_ARG, "--trace is not available under mpirun");
        size_t nb;
        float *buffers = cored_model_buffers(s->student, &nb);
        if (!s->trace_buf && !(s->trace_buf = cored_alloc(sizeof(float) * (nb + 2 * (size_t)c->batch + 1))))
            return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the trace buffers");
        memcpy(s->trace_buf, buffers, sizeof(float) * nb);
    }
    cored_copy(cored_model_input(s->student), b->x, bytes / sizeof(float));
    if (dist) { /* dropout draws per image of the whole batch: the same masks under any rank count */
        int first, end;
        cored_shard_range(global_n, cored_dist_rank(), cored_dist_size(), &first, &end);
        cored_model_set_first_image(s->student, first);
    }
    int flags = c->freeze_bn ? CORED_FWD_EVAL
                             : CORED_FWD_BN_BATCH | (s->stochastic ? CORED_FWD_STOCHASTIC : 0) |
                                   (sync ? CORED_FWD_BN_SYNC : 0);
    if ((rc = cored_model_forward(s->student, n, flags, b->seed, err))) return rc;
    if (s->after_forward && (rc = s->after_forward(s->user, s->student, err))) return rc;
    const float *z = cored_model_logits(s->student);
    for (int i = 0; i < 2 * n; i++)
        if (!isfinite(z[i])) return nonfinite(s, b, "student logits", err);
    if (cored && c->freeze_bn) cored_cells_from_logits(s->cells, z, b->labels, n);
    int fh, fw, fc;
    const float *feat = cored_model_features(s->student, &fh, &fw, &fc);
    cored_method_logit_loss(terms, s->dlogits, s->dfeat, c, z, b->teacher_logits, b->labels, n, feat, fh * fw, fc,
                            s->cells, s->have_rep ? &s->rep : NULL, s->ws);
    if (!isfinite(terms->ce)) return nonfinite(s, b, "cross-entropy loss", err);
    if (!isfinite(terms->kd)) return nonfinite(s, b, "distillation loss", err);
    if (!isfinite(terms->rep)) return nonfinite(s, b, "representation loss", err);
    for (int i = 0; i < n; i++) *correct += (z[2 * i + 1] > z[2 * i]) == b->labels[i];
    if (global_n != n) { /* the logit terms are means over this shard: weigh it in the batch */
        const float share = (float)((double)n / global_n);
        for (int i = 0; i < 2 * n; i++) s->dlogits[i] *= share;
    }
    if (s->trace && (rc = trace_step(s, b, flags, err))) return rc;
    if ((rc = clear_grads(s, err))) return rc;
    if (s->reducer) cored_model_set_grad_ready(s->student, grads_ready, s->reducer); /* for this backward */
    rc = cored_model_backward(s->student, s->dlogits, cored ? s->dfeat : NULL, err);
    cored_model_set_grad_ready(s->student, NULL, NULL);
    if (rc) return rc;
update:;
    size_t nw;
    float *w = cored_model_weights(s->student, &nw), *g = cored_model_grads(s->student, NULL);
    if (dist) {
        if (s->reducer)
            cored_dist_reducer_end(s->reducer); /* the buckets started during the backward pass */
        else
            cored_dist_sum_f(g, nw);
        if (tg) dist_sum_teacher_ce(s, b);
        if (!sync && !c->freeze_bn) { /* the running statistics: the mean over the ranks */
            size_t nb;
            float *buf = cored_model_buffers(s->student, &nb);
            cored_dist_sum_f(buf, nb);
            const float inv = 1.0f / (float)cored_dist_size();
            for (size_t i = 0; i < nb; i++) buf[i] *= inv;
        }
    }
    if (tg || c->method == CORED_METHOD_EWC) {
        cored_method_weight_loss(terms, g, w, &s->reg, c, b->teacher_logits, b->labels, n);
        if (!isfinite(terms->reg)) return nonfinite(s, b, "regularisation loss", err);
    }
    if ((rc = check_finite(s, b, g, "gradient of", err))) return rc;
    if (s->trace) s->trace->w_total = norm2(g, nw);
    cored_optim_step(s->opt, w, g);
    return check_finite(s, b, w, "updated value of", err);
}
