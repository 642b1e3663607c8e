/*
 * Executing the layer list: forward in order, backward in reverse.
 *
 * A BN fused with its activation (plan.c) writes the activation layer's buffer in its
 * forward and reads that layer's gradient in its backward; the activation layer itself
 * runs nothing and only passes the "gradient written" mark to the BN.
 *
 * Gradient routing follows the ops' rule (input gradients overwrite): the first consumer
 * of a layer to run backward writes that layer's gradient buffer; every later consumer
 * writes into the scratch slab and the executor adds it in. The tap gradient
 * (dfeatures) is added just before the tap layer's own backward.
 */
#include <math.h>
#include <string.h>

#include "model.h"

static inline float *act(cored_model *m, int i) { return m->arena + m->layers[i].out_off; }
static inline float *grad(cored_model *m, int i) { return m->arena + m->layers[i].grad_off; }
static inline float *aux(cored_model *m, int i) { return m->aux + m->layers[i].aux_off; }
static inline float *pw(cored_model *m, int p)
{
    if (p < 0) return NULL;
    const cored_param *q = &m->params[p];
    return (cored_param_trainable(q->kind) ? m->weights : m->buffers) + q->offset;
}
static inline float *pg(cored_model *m, int p)
{
    if (p < 0 || !m->grads) return NULL;
    return m->grads + m->params[p].offset;
}

static cored_act fused_act(const cored_model *m, const cored_layer *l)
{
    if (l->kind != LAYER_BN || l->fuse_with < 0) return CORED_ACT_NONE;
    return m->layers[l->fuse_with].kind == LAYER_RELU ? CORED_ACT_RELU : CORED_ACT_SILU;
}

static void forward_layer(cored_model *m, int i, int n, int flags, uint64_t seed, int folded)
{
    cored_layer *l = &m->layers[i];
    if (l->kind != LAYER_BN && l->fuse_with >= 0) return; /* computed by its BN */
    if (folded && l->kind == LAYER_BN && l->fold >= 0) return; /* computed by its conv */
    if (folded && l->kind == LAYER_CONV && l->fold >= 0) { /* conv + BN (+ act) in one */
        const cored_layer *b = &m->layers[l->fold];
        cored_conv_shape s = l->u.conv;
        s.n = n;
        cored_conv_forward_act(act(m, b->fuse_with >= 0 ? b->fuse_with : l->fold), act(m, l->in[0]),
                               m->folded + l->fw_off, m->folded + l->fb_off, fused_act(m, b), &s,
                               m->ws);
        return;
    }
    float *y = act(m, l->kind == LAYER_BN && l->fuse_with >= 0 ? l->fuse_with : i);
    const float *x = l->in[0] >= 0 ? act(m, l->in[0]) : NULL;
    size_t cnt = cored_layer_numel(l, n);
    switch (l->kind) {
    case LAYER_INPUT: break;
    case LAYER_CONV: {
        cored_conv_shape s = l->u.conv;
        s.n = n;
        cored_conv_forward(y, x, pw(m, l->p_w), pw(m, l->p_b), &s, m->ws);
        break;
    }
    case LAYER_BN: {
        cored_bn_shape s = {.rows = n * l->h * l->w, .c = l->c, .eps = l->u.bn.eps,
                            .momentum = l->u.bn.momentum, .act = fused_act(m, l),
                            .sync = (flags & CORED_FWD_BN_BATCH) && (flags & CORED_FWD_BN_SYNC)};
        float *mean = aux(m, i), *invstd = mean + l->c;
        if (flags & CORED_FWD_BN_BATCH)
            cored_bn_forward_train(y, mean, invstd, pw(m, l->p_mean), pw(m, l->p_var), x,
                                   pw(m, l->p_w), pw(m, l->p_b), &s, m->ws);
        else
            cored_bn_forward_eval(y, mean, invstd, x, pw(m, l->p_w), pw(m, l->p_b),
                                  pw(m, l->p_mean), pw(m, l->p_var), &s);
        break;
    }
    case LAYER_RELU: cored_relu_forward(y, x, cnt); break;
    case LAYER_SILU: cored_silu_forward(y, x, cnt); break;
    case LAYER_SIGMOID: cored_sigmoid_forward(y, x, cnt); break;
    case LAYER_MAXPOOL: {
        cored_pool_shape s = l->u.pool;
        s.n = n;
        cored_maxpool_forward(y, (int32_t *)aux(m, i), x, &s);
        break;
    }
    case LAYER_GAP: {
        const cored_layer *src = &m->layers[l->in[0]];
        cored_gap_forward(y, x, n, src->h * src->w, src->c);
        break;
    }
    case LAYER_LINEAR:
        cored_linear_forward(y, x, pw(m, l->p_w), pw(m, l->p_b), n, l->u.linear.in,
                             l->u.linear.out);
        break;
    case LAYER_DROPOUT:
        if ((flags & CORED_FWD_STOCHASTIC) && l->u.drop.p > 0.0f)
            cored_dropout_forward(y, aux(m, i), x, n, cnt / (size_t)n, m->first_image, l->u.drop.p, seed,
                                  (uint64_t)i);
        else {
            cored_copy(y, x, cnt);
            for (size_t k = 0; k < cnt; k++) aux(m, i)[k] = 1.0f;
        }
        break;
    case LAYER_DROPCONNECT:
        if ((flags & CORED_FWD_STOCHASTIC) && l->u.drop.p > 0.0f)
            cored_dropconnect_forward(y, aux(m, i), x, n, cnt / (size_t)n, m->first_image, l->u.drop.p,
                                      seed, (uint64_t)i);
        else {
            cored_copy(y, x, cnt);
            for (int k = 0; k < n; k++) aux(m, i)[k] = 1.0f;
        }
        break;
    case LAYER_ADD: cored_add_forward(y, x, act(m, l->in[1]), cnt); break;
    case LAYER_CHSCALE:
        cored_chscale_forward(y, x, act(m, l->in[1]), n, l->h * l->w, l->c);
        break;
    default: CORED_ASSERT(0);
    }
}

int cored_model_forward(cored_model *m, int n, int flags, uint64_t seed, cored_error *err)
{
    if (n < 1 || n > m->max_batch)
        return CORED_FAIL(err, CORED_E_ARG, "batch of %d images; this model was built for 1..%d",
                          n, m->max_batch);
    if ((flags & CORED_FWD_BN_BATCH) && !(flags & CORED_FWD_BN_SYNC))
        for (int i = 0; i < m->n_layers; i++) {
            const cored_layer *l = &m->layers[i];
            if (l->kind == LAYER_BN && n * l->h * l->w < 2)
                return CORED_FAIL(err, CORED_E_ARG,
                                  "batch norm '%s' would see one value per channel with a batch "
                                  "of %d; batch statistics need at least 2",
                                  l->name, n);
        }
    /* inference builds run eval-mode forwards with every BN folded into its convolution */
    const int folded = m->build == CORED_BUILD_INFER && !(flags & CORED_FWD_BN_BATCH) && m->folded;
    if (folded && m->fold_dirty) cored_model_refold(m);
    for (int i = 0; i < m->n_layers; i++) {
        double t0 = m->profile ? cored_now() : 0;
        forward_layer(m, i, n, flags, seed, folded);
        if (m->profile) m->prof_fwd[cored_prof_slot(&m->layers[i])] += cored_now() - t0;
    }
    m->n_cur = n;
    m->last_flags = flags;
    m->backward_ready = m->build == CORED_BUILD_TRAIN;
    return CORED_OK;
}

/* Where the gradient for input k of layer i goes: the producer's buffer if this is the
   first write to it in this backward pass, the scratch slab otherwise (added later). */
static float *input_grad_target(cored_model *m, int i, int k, int *deferred)
{
    int src = m->layers[i].in[k];
    *deferred = 0;
    if (src < 0 || m->layers[src].kind == LAYER_INPUT) return NULL;
    if (!m->grad_written[src]) return grad(m, src);
    *deferred = 1;
    return m->scratch;
}

static void finish_input_grad(cored_model *m, int i, int k, int deferred)
{
    int src = m->layers[i].in[k];
    if (src < 0 || m->layers[src].kind == LAYER_INPUT) return;
    if (deferred) cored_acc(grad(m, src), m->scratch, cored_layer_numel(&m->layers[src], m->n_cur));
    m->grad_written[src] = 1;
}

/* Gradient target of input k of layer i when the op can accumulate (+=) into an existing
   gradient itself: the producer's buffer, *acc telling whether it already holds one. */
static float *input_grad_direct(cored_model *m, int i, int k, int *acc)
{
    int src = m->layers[i].in[k];
    *acc = 0;
    if (src < 0 || m->layers[src].kind == LAYER_INPUT) return NULL;
    *acc = m->grad_written[src];
    return grad(m, src);
}

static void backward_layer(cored_model *m, int i)
{
    cored_layer *l = &m->layers[i];
    const int n = m->n_cur;
    if (l->kind != LAYER_BN && l->fuse_with >= 0) { /* its BN runs the backward */
        m->grad_written[l->fuse_with] = 1;
        return;
    }
    const int out = l->kind == LAYER_BN && l->fuse_with >= 0 ? l->fuse_with : i;
    const float *dy = grad(m, out);
    const float *x = l->in[0] >= 0 ? act(m, l->in[0]) : NULL;
    size_t cnt = cored_layer_numel(l, n);
    int def0 = 0, def1 = 0;
    float *dx = l->in[0] >= 0 ? input_grad_target(m, i, 0, &def0) : NULL;
    /* Two-input layers: the second target is resolved after the first is finished, since
       both may share the scratch slab. */
    switch (l->kind) {
    case LAYER_INPUT: return;
    case LAYER_CONV: {
        cored_conv_shape s = l->u.conv;
        s.n = n;
        cored_conv_backward(dx, pg(m, l->p_w), pg(m, l->p_b), dy, x, pw(m, l->p_w), &s, m->ws);
        break;
    }
    case LAYER_BN: {
        cored_bn_shape s = {.rows = n * l->h * l->w, .c = l->c, .eps = l->u.bn.eps,
                            .momentum = l->u.bn.momentum, .act = fused_act(m, l),
                            .sync = (m->last_flags & CORED_FWD_BN_BATCH) && (m->last_flags & CORED_FWD_BN_SYNC)};
        const float *mean = aux(m, i), *invstd = mean + l->c, *y = act(m, out);
        if (m->last_flags & CORED_FWD_BN_BATCH)
            cored_bn_backward_train(dx, pg(m, l->p_w), pg(m, l->p_b), dy, x, y, mean, invstd,
                                    pw(m, l->p_w), pw(m, l->p_b), &s, m->ws);
        else
            cored_bn_backward_eval(dx, pg(m, l->p_w), pg(m, l->p_b), dy, x, y, mean, invstd,
                                   pw(m, l->p_w), pw(m, l->p_b), &s, m->ws);
        break;
    }
    case LAYER_RELU:
        if (dx) cored_relu_backward(dx, dy, act(m, i), cnt);
        break;
    case LAYER_SILU:
        if (dx) cored_silu_backward(dx, dy, x, cnt);
        break;
    case LAYER_SIGMOID:
        if (dx) cored_sigmoid_backward(dx, dy, act(m, i), cnt);
        break;
    case LAYER_MAXPOOL: {
        cored_pool_shape s = l->u.pool;
        s.n = n;
        if (dx) cored_maxpool_backward(dx, dy, (const int32_t *)aux(m, i), &s);
        break;
    }
    case LAYER_GAP: { /* a second consumer's gradient is added in place, not via scratch */
        const cored_layer *src = &m->layers[l->in[0]];
        int acc;
        float *g = input_grad_direct(m, i, 0, &acc);
        if (g && acc) cored_gap_backward_acc(g, dy, n, src->h * src->w, src->c);
        else if (g) cored_gap_backward(g, dy, n, src->h * src->w, src->c);
        finish_input_grad(m, i, 0, 0);
        return;
    }
    case LAYER_LINEAR:
        cored_linear_backward(dx, pg(m, l->p_w), pg(m, l->p_b), dy, x, pw(m, l->p_w), n,
                              l->u.linear.in, l->u.linear.out);
        break;
    case LAYER_DROPOUT:
        if (dx) cored_dropout_backward(dx, dy, aux(m, i), cnt);
        break;
    case LAYER_DROPCONNECT:
        if (dx) cored_dropconnect_backward(dx, dy, aux(m, i), n, cnt / (size_t)n);
        break;
    case LAYER_ADD: /* both inputs receive dy: copied, or added in place to a gradient */
        for (int k = 0; k < 2; k++) {
            int acc;
            float *g = input_grad_direct(m, i, k, &acc);
            if (g && acc) cored_acc(g, dy, cnt);
            else if (g) cored_add_backward(g, NULL, dy, cnt);
            finish_input_grad(m, i, k, 0);
        }
        return;
    case LAYER_CHSCALE: {
        const float *s = act(m, l->in[1]);
        if (!def0 && !m->grad_written[l->in[1]]) { /* both first writes: one pass */
            float *ds = input_grad_target(m, i, 1, &def1);
            cored_chscale_backward(dx, ds, dy, x, s, n, l->h * l->w, l->c);
            finish_input_grad(m, i, 0, 0);
            finish_input_grad(m, i, 1, 0);
            return;
        }
        if (dx) cored_chscale_backward(dx, NULL, dy, x, s, n, l->h * l->w, l->c);
        finish_input_grad(m, i, 0, def0);
        float *ds = input_grad_target(m, i, 1, &def1);
        if (ds) cored_chscale_backward(NULL, ds, dy, x, s, n, l->h * l->w, l->c);
        finish_input_grad(m, i, 1, def1);
        return;
    }
    default: CORED_ASSERT(0);
    }
    finish_input_grad(m, i, 0, def0);
}

int cored_model_backward(cored_model *m, const float *dlogits, const float *dfeatures,
                         cored_error *err)
{
    if (m->build != CORED_BUILD_TRAIN)
        return CORED_FAIL(err, CORED_E_ARG, "backward on an inference-only model");
    if (m->n_cur < 1 || !m->backward_ready)
        return CORED_FAIL(err, CORED_E_ARG, "backward needs a forward first (one backward per forward)");
    const int n = m->n_cur;
    m->backward_ready = 0; /* backward recycles activation memory for gradients */
    memset(m->grad_written, 0, (size_t)m->n_layers);
    memcpy(grad(m, m->logits), dlogits, sizeof(float) * cored_layer_numel(&m->layers[m->logits], n));
    m->grad_written[m->logits] = 1;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        if (!m->grad_written[i]) continue; /* no gradient reaches it (input) */
        if (i == m->tap && dfeatures) {
            float *g = grad(m, i);
            size_t cnt = cored_layer_numel(&m->layers[i], n);
            #pragma omp parallel for simd schedule(static)
            for (size_t j = 0; j < cnt; j++) g[j] += dfeatures[j];
        }
        double t0 = m->profile ? cored_now() : 0;
        backward_layer(m, i);
        if (m->profile) m->prof_bwd[cored_prof_slot(&m->layers[i])] += cored_now() - t0;
        if (m->grad_ready) m->grad_ready(m->grad_ready_user, m->grads_final[i]);
    }
    if (m->grad_ready) m->grad_ready(m->grad_ready_user, 0);
    return CORED_OK;
}

const float *cored_model_logits(const cored_model *m) { return m->arena + m->layers[m->logits].out_off; }

const float *cored_model_features(const cored_model *m, int *h, int *w, int *c)
{
    const cored_layer *l = &m->layers[m->tap];
    if (h) *h = l->h;
    if (w) *w = l->w;
    if (c) *c = l->c;
    return m->arena + l->out_off;
}

int cored_model_kinks(const cored_model *m, cored_kink *out, int cap)
{
    int k = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cored_layer *l = &m->layers[i];
        if (l->kind != LAYER_RELU && l->kind != LAYER_MAXPOOL) continue;
        if (k < cap) {
            cored_kink *d = &out[k];
            *d = (cored_kink){.kind = l->kind, .n = m->n_cur, .h = l->h, .w = l->w, .c = l->c};
            if (l->kind == LAYER_RELU)
                d->y = m->arena + l->out_off;
            else
                d->argmax = (const int32_t *)(m->aux + l->aux_off);
        }
        k++;
    }
    return k;
}

void cored_model_zero_grad(cored_model *m)
{
    if (m->grads) cored_zero(m->grads, m->n_weights);
}

void cored_model_bn_sync_idle(cored_model *m, int backward)
{
    for (int k = 0; k < m->n_layers; k++) {
        int i = backward ? m->n_layers - 1 - k : k;
        const cored_layer *l = &m->layers[i];
        if (l->kind != LAYER_BN) continue;
        cored_bn_shape s = {.rows = 0, .c = l->c, .eps = l->u.bn.eps, .momentum = l->u.bn.momentum,
                            .act = fused_act(m, l), .sync = 1};
        float *mean = aux(m, i), *invstd = mean + l->c;
        if (!backward)
            cored_bn_forward_train(NULL, mean, invstd, pw(m, l->p_mean), pw(m, l->p_var), NULL, pw(m, l->p_w),
                                   pw(m, l->p_b), &s, m->ws);
        else
            cored_bn_backward_train(NULL, NULL, NULL, NULL, NULL, NULL, mean, invstd, pw(m, l->p_w),
                                    pw(m, l->p_b), &s, m->ws);
    }
}
