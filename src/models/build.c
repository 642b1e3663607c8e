/*
 * Building a model: layers appended by an architecture's builder, each registering its
 * parameters in the parameter table under PyTorch state_dict names. Failures (out of
 * memory, impossible shapes for the chosen input size) are sticky: the builder keeps
 * calling and cored_model_plan() reports the first one.
 */
#include <stdio.h>
#include <string.h>

#include "model.h"

/* Records the first failure (a cored_status) and returns -1 as the layer index. */
static int fail_build(cored_model *m, int code)
{
    if (!m->build_failed) m->build_failed = code;
    return -1;
}

static cored_layer *new_layer(cored_model *m, cored_layer_kind kind, int in0, int in1)
{
    if (m->build_failed) return NULL;
    if ((in0 >= 0 && in0 >= m->n_layers) || (in1 >= 0 && in1 >= m->n_layers) ||
        (kind != LAYER_INPUT && in0 < 0)) {
        fail_build(m, CORED_E_ARG);
        return NULL;
    }
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 64;
        cored_layer *l = cored_realloc(m->layers, sizeof(cored_layer) * (size_t)cap);
        if (!l) {
            fail_build(m, CORED_E_NOMEM);
            return NULL;
        }
        m->layers = l;
        m->cap_layers = cap;
    }
    cored_layer *l = &m->layers[m->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in[0] = in0;
    l->in[1] = in1;
    l->p_w = l->p_b = l->p_mean = l->p_var = -1;
    l->fuse_with = -1;
    l->fold = -1;
    if (in0 >= 0) {
        const cored_layer *src = &m->layers[in0];
        l->h = src->h;
        l->w = src->w;
        l->c = src->c;
    }
    return l;
}

static int add_param(cored_model *m, const char *module, const char *leaf, cored_param_kind kind,
                     int ndim, const int *shape)
{
    if (m->build_failed) return -1;
    if (m->n_params == m->cap_params) {
        int cap = m->cap_params ? 2 * m->cap_params : 64;
        cored_param *p = cored_realloc(m->params, sizeof(cored_param) * (size_t)cap);
        if (!p) return fail_build(m, CORED_E_NOMEM);
        m->params = p;
        m->cap_params = cap;
    }
    cored_param *p = &m->params[m->n_params];
    memset(p, 0, sizeof *p);
    int w = snprintf(p->name, sizeof p->name, "%s.%s", module, leaf);
    if (w < 0 || (size_t)w >= sizeof p->name) return fail_build(m, CORED_E_ARG);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->kind = kind;
    /* Every tensor starts on a 64-byte boundary of its slab. */
    size_t *top = cored_param_trainable(kind) ? &m->n_weights : &m->n_buffers;
    p->offset = *top;
    *top = cored_align_up(*top + p->numel, 16);
    return m->n_params++;
}

int cored_param_trainable(cored_param_kind kind)
{
    return kind == CORED_PARAM_WEIGHT || kind == CORED_PARAM_BIAS || kind == CORED_PARAM_BN_WEIGHT ||
           kind == CORED_PARAM_BN_BIAS;
}

static void set_name(cored_layer *l, const char *name)
{
    snprintf(l->name, sizeof l->name, "%s", name ? name : "");
}

int cored_add_input(cored_model *m, int size)
{
    cored_layer *l = new_layer(m, LAYER_INPUT, -1, -1);
    if (!l) return -1;
    l->h = l->w = size;
    l->c = 3;
    l->keep = 1;
    set_name(l, "input");
    return m->n_layers - 1;
}

int cored_add_conv(cored_model *m, const char *name, int in, int cout, int k, int stride,
                   int pad_t, int pad_l, int pad_b, int pad_r, int groups, int bias)
{
    cored_layer *l = new_layer(m, LAYER_CONV, in, -1);
    if (!l) return -1;
    set_name(l, name);
    cored_conv_shape *s = &l->u.conv;
    *s = (cored_conv_shape){.n = 1, .h = l->h, .w = l->w, .cin = l->c, .cout = cout, .kh = k,
                            .kw = k, .stride = stride, .pad_t = pad_t, .pad_l = pad_l,
                            .pad_b = pad_b, .pad_r = pad_r, .groups = groups};
    if (cored_conv_shape_init(s)) return fail_build(m, CORED_E_ARG);
    l->h = s->oh;
    l->w = s->ow;
    l->c = cout;
    int wshape[4] = {cout, s->cin / groups, k, k};
    int idx = m->n_layers - 1;
    int pw = add_param(m, name, "weight", CORED_PARAM_WEIGHT, 4, wshape);
    int pb = bias ? add_param(m, name, "bias", CORED_PARAM_BIAS, 1, &cout) : -1;
    m->layers[idx].p_w = pw;
    m->layers[idx].p_b = pb;
    return m->build_failed ? -1 : idx;
}

int cored_add_bn(cored_model *m, const char *name, int in, float eps, float momentum)
{
    cored_layer *l = new_layer(m, LAYER_BN, in, -1);
    if (!l) return -1;
    set_name(l, name);
    l->u.bn.eps = eps;
    l->u.bn.momentum = momentum;
    int c = l->c, idx = m->n_layers - 1;
    int pw = add_param(m, name, "weight", CORED_PARAM_BN_WEIGHT, 1, &c);
    int pb = add_param(m, name, "bias", CORED_PARAM_BN_BIAS, 1, &c);
    int pm = add_param(m, name, "running_mean", CORED_PARAM_BN_MEAN, 1, &c);
    int pv = add_param(m, name, "running_var", CORED_PARAM_BN_VAR, 1, &c);
    cored_layer *L = &m->layers[idx];
    L->p_w = pw;
    L->p_b = pb;
    L->p_mean = pm;
    L->p_var = pv;
    return m->build_failed ? -1 : idx;
}

int cored_add_act(cored_model *m, cored_layer_kind kind, int in)
{
    CORED_ASSERT(kind == LAYER_RELU || kind == LAYER_SILU || kind == LAYER_SIGMOID);
    return new_layer(m, kind, in, -1) ? m->n_layers - 1 : -1;
}

int cored_add_maxpool(cored_model *m, int in, int k, int stride, int pad)
{
    cored_layer *l = new_layer(m, LAYER_MAXPOOL, in, -1);
    if (!l) return -1;
    cored_pool_shape *s = &l->u.pool;
    *s = (cored_pool_shape){.n = 1, .h = l->h, .w = l->w, .c = l->c, .k = k, .stride = stride,
                            .pad = pad};
    if (cored_pool_shape_init(s)) return fail_build(m, CORED_E_ARG);
    l->h = s->oh;
    l->w = s->ow;
    return m->n_layers - 1;
}

int cored_add_gap(cored_model *m, int in)
{
    cored_layer *l = new_layer(m, LAYER_GAP, in, -1);
    if (!l) return -1;
    l->h = l->w = 1;
    return m->n_layers - 1;
}

int cored_add_linear(cored_model *m, const char *name, int in, int out)
{
    cored_layer *l = new_layer(m, LAYER_LINEAR, in, -1);
    if (!l) return -1;
    set_name(l, name);
    int nin = l->h * l->w * l->c, idx = m->n_layers - 1;
    l->u.linear.in = nin;
    l->u.linear.out = out;
    l->h = l->w = 1;
    l->c = out;
    int wshape[2] = {out, nin};
    int pw = add_param(m, name, "weight", CORED_PARAM_WEIGHT, 2, wshape);
    int pb = add_param(m, name, "bias", CORED_PARAM_BIAS, 1, &out);
    m->layers[idx].p_w = pw;
    m->layers[idx].p_b = pb;
    return m->build_failed ? -1 : idx;
}

int cored_add_dropout(cored_model *m, int in, float p)
{
    cored_layer *l = new_layer(m, LAYER_DROPOUT, in, -1);
    if (!l) return -1;
    l->u.drop.p = p;
    return m->n_layers - 1;
}

int cored_add_dropconnect(cored_model *m, int in, float p)
{
    cored_layer *l = new_layer(m, LAYER_DROPCONNECT, in, -1);
    if (!l) return -1;
    l->u.drop.p = p;
    return m->n_layers - 1;
}

int cored_add_add(cored_model *m, int a, int b)
{
    if (m->build_failed) return -1;
    if (a < 0 || b < 0 || a >= m->n_layers || b >= m->n_layers) return fail_build(m, CORED_E_ARG);
    const cored_layer *la = &m->layers[a], *lb = &m->layers[b];
    if (la->h != lb->h || la->w != lb->w || la->c != lb->c) return fail_build(m, CORED_E_ARG);
    return new_layer(m, LAYER_ADD, a, b) ? m->n_layers - 1 : -1;
}

int cored_add_chscale(cored_model *m, int x, int s)
{
    if (m->build_failed) return -1;
    if (x < 0 || s < 0 || x >= m->n_layers || s >= m->n_layers) return fail_build(m, CORED_E_ARG);
    const cored_layer *ls = &m->layers[s];
    if (ls->h != 1 || ls->w != 1 || ls->c != m->layers[x].c) return fail_build(m, CORED_E_ARG);
    return new_layer(m, LAYER_CHSCALE, x, s) ? m->n_layers - 1 : -1;
}

void cored_layer_set_name(cored_model *m, int layer, const char *name)
{
    if (layer >= 0 && layer < m->n_layers) set_name(&m->layers[layer], name);
}

int cored_layer_find(const cored_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, name) == 0) return i;
    return -1;
}

int cored_prof_slot(const cored_layer *l)
{
    if (l->kind != LAYER_CONV) return (int)l->kind;
    const cored_conv_shape *s = &l->u.conv;
    if (s->groups > 1 && s->groups == s->cin) return CORED_PROF_DWCONV;
    if (s->kh == 1 && s->kw == 1) return CORED_PROF_CONV1X1;
    return LAYER_CONV;
}

const char *cored_prof_slot_name(int slot)
{
    if (slot == CORED_PROF_CONV1X1) return "conv 1x1";
    if (slot == CORED_PROF_DWCONV) return "depthwise";
    if (slot == LAYER_CONV) return "conv kxk";
    return cored_layer_kind_name((cored_layer_kind)slot);
}

const char *cored_layer_kind_name(cored_layer_kind k)
{
    static const char *names[LAYER_KIND_COUNT] = {
        "input", "conv", "batchnorm", "relu", "silu", "sigmoid", "maxpool",
        "avgpool", "linear", "dropout", "dropconnect", "add", "chscale"};
    return (unsigned)k < LAYER_KIND_COUNT ? names[k] : "?";
}
