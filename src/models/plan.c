/*
 * Static memory plan. Time runs over the forward steps 0..L-1, the start of backward at
 * L, and the backward step of layer i at 2L-i. Every activation and every activation
 * gradient is a buffer with a live interval:
 *   - an activation lives from its forward step until its last forward consumer, and in
 *     a training build until the backward step of each consumer that reads it (conv
 *     reads its input, ReLU its output, ...);
 *   - the gradient of layer i's output lives from the backward step of its last
 *     consumer (the first one to run backward) until its own backward step.
 * Buffers whose intervals overlap never share memory. Placement is greedy, largest
 * first, at the lowest offset that fits (the classic offline approach of inference
 * engines' memory planners).
 *
 * Fusion comes first: a BN whose only consumer is a ReLU or SiLU (and that is not the
 * feature tap) computes the activation in its own pass. The pair then has one buffer, the
 * activation's, written at the BN's forward step and read (with its gradient) until the
 * BN's backward step; the BN's own output and gradient are never materialised.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct {
    size_t size, off;
    int start, end;
    int layer, is_grad;
} plan_buf;

/* Does backward of layer kind k read its input(s) / its own output? */
static int bwd_needs_input(cored_layer_kind k)
{
    return k == LAYER_CONV || k == LAYER_BN || k == LAYER_SILU || k == LAYER_LINEAR ||
           k == LAYER_CHSCALE;
}

static int bwd_needs_output(cored_layer_kind k) { return k == LAYER_RELU || k == LAYER_SIGMOID; }

/* Marks every BN -> ReLU/SiLU pair that can run as one pass (see the top comment). */
static void fuse_bn_act(cored_model *m)
{
    for (int j = 0; j < m->n_layers; j++) {
        cored_layer *a = &m->layers[j];
        a->fuse_with = -1;
        if (a->kind != LAYER_RELU && a->kind != LAYER_SILU) continue;
        int i = a->in[0];
        cored_layer *b = &m->layers[i];
        if (b->kind != LAYER_BN || b->n_consumers != 1 || b->keep || i == m->tap) continue;
        b->fuse_with = j;
        a->fuse_with = i;
    }
}

/* Inference builds: marks every convolution whose only consumer is a BN (the BN is folded
   into it for eval-mode forwards). The convolution's own output must not be needed
   elsewhere: not kept, not the tap. The BN may be the tap: the folded convolution then
   writes the tap's value (the BN output) into the BN's buffer. */
static void fold_conv_bn(cored_model *m)
{
    for (int j = 0; j < m->n_layers; j++) {
        cored_layer *b = &m->layers[j];
        b->fold = -1;
        if (m->build != CORED_BUILD_INFER || b->kind != LAYER_BN) continue;
        int i = b->in[0];
        cored_layer *c = &m->layers[i];
        if (c->kind != LAYER_CONV || c->n_consumers != 1 || c->keep || i == m->tap) continue;
        c->fold = j;
        b->fold = i;
    }
}

/* Folded weights of conv layer c with BN b: W'[o] = W[o] s[o], b'[o] = (bias[o] - mean[o])
   s[o] + beta[o], s = gamma / sqrt(var + eps), computed in double (element by element:
   the same result for any thread count). */
static void fold_one(cored_model *m, const cored_layer *c, const cored_layer *b)
{
    const cored_param *pw = &m->params[c->p_w];
    const float *w = m->weights + pw->offset;
    const float *bias = c->p_b >= 0 ? m->weights + m->params[c->p_b].offset : NULL;
    const float *gamma = m->weights + m->params[b->p_w].offset;
    const float *beta = m->weights + m->params[b->p_b].offset;
    const float *mean = m->buffers + m->params[b->p_mean].offset;
    const float *var = m->buffers + m->params[b->p_var].offset;
    float *fw = m->folded + c->fw_off, *fb = m->folded + c->fb_off;
    const int cout = c->u.conv.cout;
    const size_t per = pw->numel / (size_t)cout;
    #pragma omp parallel for schedule(static) if (pw->numel > 65536)
    for (int o = 0; o < cout; o++) {
        double sc = (double)gamma[o] / sqrt((double)var[o] + (double)b->u.bn.eps);
        for (size_t k = 0; k < per; k++) fw[(size_t)o * per + k] = (float)((double)w[(size_t)o * per + k] * sc);
        fb[o] = (float)(((bias ? (double)bias[o] : 0.0) - (double)mean[o]) * sc + (double)beta[o]);
    }
}

void cored_model_refold(cored_model *m)
{
    for (int i = 0; i < m->n_layers; i++) {
        const cored_layer *c = &m->layers[i];
        if (c->kind == LAYER_CONV && c->fold >= 0) fold_one(m, c, &m->layers[c->fold]);
    }
    m->fold_dirty = 0;
}

static int cmp_size_desc(const void *a, const void *b)
{
    const plan_buf *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->start - y->start;
}

static int cmp_off(const void *a, const void *b)
{
    const plan_buf *x = *(plan_buf *const *)a, *y = *(plan_buf *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static size_t place(plan_buf *bufs, int nb, plan_buf **tmp)
{
    qsort(bufs, (size_t)nb, sizeof *bufs, cmp_size_desc);
    size_t total = 0;
    for (int i = 0; i < nb; i++) {
        int nt = 0;
        for (int j = 0; j < i; j++)
            if (bufs[j].start <= bufs[i].end && bufs[i].start <= bufs[j].end) tmp[nt++] = &bufs[j];
        qsort(tmp, (size_t)nt, sizeof *tmp, cmp_off);
        size_t off = 0;
        for (int j = 0; j < nt; j++) {
            if (tmp[j]->off >= off + bufs[i].size) break;
            size_t e = tmp[j]->off + tmp[j]->size;
            if (e > off) off = e;
        }
        bufs[i].off = off;
        if (off + bufs[i].size > total) total = off + bufs[i].size;
    }
    return total;
}

static size_t aux_floats(const cored_layer *l, int n)
{
    switch (l->kind) {
    case LAYER_BN: return 2 * (size_t)l->c;
    case LAYER_MAXPOOL:
    case LAYER_DROPOUT: return cored_layer_numel(l, n);
    case LAYER_DROPCONNECT: return (size_t)n;
    default: return 0;
    }
}

static size_t ws_floats(const cored_layer *l, int n)
{
    switch (l->kind) {
    case LAYER_CONV: {
        cored_conv_shape s = l->u.conv;
        s.n = n;
        return cored_conv_ws_floats(&s);
    }
    case LAYER_BN: {
        cored_bn_shape s = {.rows = n * l->h * l->w, .c = l->c};
        return cored_bn_ws_floats(&s);
    }
    default: return 0;
    }
}

/* grads_final[i]: the end of the highest trainable tensor whose layer comes before layer i
   (or that belongs to no layer): every gradient from there on is final once the backward,
   which runs the layers in reverse, has passed layer i. */
static void plan_grads_final(cored_model *m, int *owner)
{
    for (int p = 0; p < m->n_params; p++) owner[p] = -1;
    for (int j = 0; j < m->n_layers; j++) {
        if (m->layers[j].p_w >= 0) owner[m->layers[j].p_w] = j;
        if (m->layers[j].p_b >= 0) owner[m->layers[j].p_b] = j;
    }
    for (int i = 0; i < m->n_layers; i++) {
        size_t f = 0;
        for (int p = 0; p < m->n_params; p++) {
            const cored_param *q = &m->params[p];
            if (cored_param_trainable(q->kind) && owner[p] < i && q->offset + q->numel > f) f = q->offset + q->numel;
        }
        m->grads_final[i] = f;
    }
}

int cored_model_plan(cored_model *m, cored_error *err)
{
    const int L = m->n_layers, N = m->max_batch;
    const int train = m->build == CORED_BUILD_TRAIN;
    plan_buf *bufs = NULL;
    plan_buf **tmp = NULL;
    int rc = CORED_OK;

    for (int i = 0; i < L; i++) m->layers[i].n_consumers = 0;
    for (int i = 0; i < L; i++)
        for (int k = 0; k < 2; k++)
            if (m->layers[i].in[k] >= 0) m->layers[m->layers[i].in[k]].n_consumers++;
    m->logits = L - 1;
    m->layers[m->logits].keep = 1;
    if (m->tap >= 0) m->layers[m->tap].keep = 1;
    for (int i = 0; i < L - 1; i++) CORED_ASSERT(m->layers[i].n_consumers > 0);
    for (int i = 0; i < L; i++) m->layers[i].fuse_with = -1;
    fuse_bn_act(m);
    fold_conv_bn(m);

    bufs = cored_calloc(2 * (size_t)L, sizeof *bufs);
    tmp = cored_calloc(2 * (size_t)L, sizeof *tmp);
    if (!bufs || !tmp) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the memory plan");
        goto done;
    }
    const int t_end = 2 * L + 1;
    int nb = 0;
    for (int i = 0; i < L; i++) {
        cored_layer *l = &m->layers[i];
        if (l->kind == LAYER_BN && l->fuse_with >= 0) continue; /* output lives in the act's */
        int end = i, first_bwd = t_end; /* backward step of the last consumer */
        for (int j = i + 1; j < L; j++) {
            const cored_layer *c = &m->layers[j];
            if (c->in[0] != i && c->in[1] != i) continue;
            if (j > end) end = j;
            if (train && bwd_needs_input(c->kind) && 2 * L - j > end) end = 2 * L - j;
            if (2 * L - j < first_bwd) first_bwd = 2 * L - j;
        }
        /* a fused activation is written at its BN's step and read by the BN's backward */
        int start = i, own_bwd = 2 * L - i;
        if (l->fuse_with >= 0) {
            start = l->fuse_with;
            own_bwd = 2 * L - l->fuse_with;
        }
        /* a folded BN's output (or its activation's) is written at its convolution's step */
        if (l->kind == LAYER_BN && l->fold >= 0) start = l->fold;
        if (l->fuse_with >= 0 && m->layers[l->fuse_with].fold >= 0) start = m->layers[l->fuse_with].fold;
        if (train && (bwd_needs_output(l->kind) || l->fuse_with >= 0) && own_bwd > end) end = own_bwd;
        if (l->keep) end = t_end;
        bufs[nb++] = (plan_buf){.size = cored_align_up(cored_layer_numel(l, N), 16), .start = start,
                                .end = end, .layer = i};
        if (train && l->kind != LAYER_INPUT) {
            int gstart = i == m->logits ? L : first_bwd;
            bufs[nb++] = (plan_buf){.size = cored_align_up(cored_layer_numel(l, N), 16),
                                    .start = gstart, .end = own_bwd, .layer = i, .is_grad = 1};
        }
    }
    m->n_arena = place(bufs, nb, tmp);
    for (int b = 0; b < nb; b++) {
        cored_layer *l = &m->layers[bufs[b].layer];
        if (bufs[b].is_grad)
            l->grad_off = bufs[b].off;
        else
            l->out_off = bufs[b].off;
    }

    m->n_folded = 0;
    for (int i = 0; i < L; i++) {
        cored_layer *l = &m->layers[i];
        if (l->kind != LAYER_CONV || l->fold < 0) continue;
        l->fw_off = m->n_folded;
        m->n_folded += cored_align_up(m->params[l->p_w].numel, 16);
        l->fb_off = m->n_folded;
        m->n_folded += cored_align_up((size_t)l->u.conv.cout, 16);
    }

    m->n_aux = m->n_ws = m->n_scratch = 0;
    for (int i = 0; i < L; i++) {
        cored_layer *l = &m->layers[i];
        l->aux_off = m->n_aux;
        l->aux_floats = aux_floats(l, N);
        m->n_aux += cored_align_up(l->aux_floats, 16);
        l->ws_floats = ws_floats(l, N);
        if (l->ws_floats > m->n_ws) m->n_ws = l->ws_floats;
        if (train && l->n_consumers > 1 && cored_layer_numel(l, N) > m->n_scratch)
            m->n_scratch = cored_layer_numel(l, N);
    }

    m->weights = cored_calloc(m->n_weights ? m->n_weights : 1, sizeof(float));
    m->buffers = cored_calloc(m->n_buffers ? m->n_buffers : 1, sizeof(float));
    m->arena = cored_alloc(sizeof(float) * (m->n_arena ? m->n_arena : 1));
    m->aux = cored_alloc(sizeof(float) * (m->n_aux ? m->n_aux : 1));
    m->ws = cored_alloc(sizeof(float) * (m->n_ws ? m->n_ws : 1));
    m->grad_written = cored_calloc((size_t)L, 1);
    if (m->n_folded) m->folded = cored_calloc(m->n_folded, sizeof(float));
    m->fold_dirty = 1;
    if (train) {
        m->grads = cored_calloc(m->n_weights ? m->n_weights : 1, sizeof(float));
        m->scratch = cored_alloc(sizeof(float) * (m->n_scratch ? m->n_scratch : 1));
        int *owner = cored_alloc(sizeof(int) * (size_t)(m->n_params ? m->n_params : 1));
        if (owner && (m->grads_final = cored_alloc(sizeof(size_t) * (size_t)L))) plan_grads_final(m, owner);
        cored_free(owner);
    }
    if (!m->weights || !m->buffers || !m->arena || !m->aux || !m->ws || !m->grad_written ||
        (m->n_folded && !m->folded) ||
        (train && (!m->grads || !m->scratch || !m->grads_final))) {
        rc = CORED_FAIL(err, CORED_E_NOMEM,
                        "cannot allocate %.1f MiB for model '%s' (batch %d, %d px)",
                        (double)(m->n_weights * (train ? 2 : 1) + m->n_buffers + m->n_arena + m->n_folded +
                                 m->n_aux + m->n_ws + m->n_scratch) * 4.0 / 1048576.0,
                        m->arch->name, N, m->size);
        cored_error_hint(err, "use a smaller --batch");
    } else {
        /* The arena starts zeroed so that a forward over fewer images than the last one
           never reads stale values in padding lanes. */
        memset(m->arena, 0, sizeof(float) * m->n_arena);
    }
done:
    cored_free(bufs);
    cored_free(tmp);
    return rc;
}
