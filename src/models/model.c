/*
 * Model objects: creation from the architecture registry, accessors of the parameter
 * table and slabs, PyTorch-style initialisation, copying (student -> teacher).
 */
#include <math.h>
#include <string.h>

#include "model.h"

static const cored_arch *const archs[] = {&cored_arch_tiny, &cored_arch_xception,
                                          &cored_arch_efficientnet_b0};

const char *const *cored_arch_names(void)
{
    static const char *names[sizeof archs / sizeof archs[0] + 1];
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) names[i] = archs[i]->name;
    return names;
}

const cored_arch *cored_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i]->name, name) == 0) return archs[i];
    return NULL;
}

int cored_model_create(cored_model **out, const char *arch, int size, int max_batch,
                       cored_build build, cored_error *err)
{
    *out = NULL;
    const cored_arch *a = cored_arch_find(arch ? arch : "");
    if (!a) {
        char list[256] = "";
        for (const char *const *n = cored_arch_names(); *n; n++) {
            strncat(list, *n, sizeof list - strlen(list) - 3);
            if (n[1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return CORED_FAIL(err, CORED_E_ARG, "unknown model '%s' (known: %s)", arch ? arch : "",
                          list);
    }
    cored_fp_mode_apply();
    if (size < a->min_size || size > 4096)
        return CORED_FAIL(err, CORED_E_ARG, "model '%s' needs an input size of %d..4096 px, got %d",
                          a->name, a->min_size, size);
    if (max_batch < 1 || max_batch > 65536)
        return CORED_FAIL(err, CORED_E_ARG, "batch size must be 1..65536, got %d", max_batch);
    cored_model *m = cored_calloc(1, sizeof *m);
    if (!m) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate a model");
    m->arch = a;
    m->size = size;
    m->max_batch = max_batch;
    m->build = build;
    m->tap = -1;
    int rc = a->build(m, err);
    if (rc == CORED_OK && m->build_failed == CORED_E_NOMEM)
        rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory while building model '%s'", a->name);
    else if (rc == CORED_OK && m->build_failed)
        rc = CORED_FAIL(err, CORED_E_ARG, "cannot build model '%s' for %d px inputs", a->name, size);
    if (rc == CORED_OK) {
        m->tap = cored_layer_find(m, a->tap);
        CORED_ASSERT(m->tap >= 0);
        rc = cored_model_plan(m, err);
    }
    if (rc != CORED_OK) {
        cored_model_free(m);
        return rc;
    }
    *out = m;
    return CORED_OK;
}

void cored_model_free(cored_model *m)
{
    if (!m) return;
    cored_free(m->params);
    cored_free(m->layers);
    cored_free(m->weights);
    cored_free(m->grads);
    cored_free(m->buffers);
    cored_free(m->arena);
    cored_free(m->aux);
    cored_free(m->ws);
    cored_free(m->scratch);
    cored_free(m->grad_written);
    cored_free(m->grads_final);
    cored_free(m->folded);
    cored_free(m);
}

const char *cored_model_arch(const cored_model *m) { return m->arch->name; }
int cored_model_size(const cored_model *m) { return m->size; }
int cored_model_max_batch(const cored_model *m) { return m->max_batch; }
cored_build cored_model_build_kind(const cored_model *m) { return m->build; }
int cored_model_param_count(const cored_model *m) { return m->n_params; }
const char *cored_model_tap_name(const cored_model *m) { return m->arch->tap; }
const char *cored_model_head(const cored_model *m) { return m->arch->head; }

void cored_model_set_first_image(cored_model *m, int first) { m->first_image = first; }

void cored_model_set_grad_ready(cored_model *m, void (*fn)(void *user, size_t from), void *user)
{
    m->grad_ready = fn;
    m->grad_ready_user = user;
}

int cored_model_param_is_head(const cored_model *m, const char *name)
{
    size_t n = strlen(m->arch->head);
    return strncmp(name, m->arch->head, n) == 0 && name[n] == '.';
}

const cored_param *cored_model_param(const cored_model *m, int i)
{
    return i >= 0 && i < m->n_params ? &m->params[i] : NULL;
}

int cored_model_param_find(const cored_model *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return i;
    return -1;
}

void cored_model_params_changed(cored_model *m) { m->fold_dirty = 1; }

float *cored_model_param_data(cored_model *m, int i)
{
    m->fold_dirty = 1;
    const cored_param *p = &m->params[i];
    return (cored_param_trainable(p->kind) ? m->weights : m->buffers) + p->offset;
}

float *cored_model_param_grad(cored_model *m, int i)
{
    const cored_param *p = &m->params[i];
    if (!m->grads || !cored_param_trainable(p->kind)) return NULL;
    return m->grads + p->offset;
}

float *cored_model_weights(cored_model *m, size_t *count)
{
    m->fold_dirty = 1;
    if (count) *count = m->n_weights;
    return m->weights;
}

float *cored_model_grads(cored_model *m, size_t *count)
{
    if (count) *count = m->grads ? m->n_weights : 0;
    return m->grads;
}

float *cored_model_buffers(cored_model *m, size_t *count)
{
    m->fold_dirty = 1;
    if (count) *count = m->n_buffers;
    return m->buffers;
}

float *cored_model_input(cored_model *m) { return m->arena + m->layers[0].out_off; }

size_t cored_model_bytes(const cored_model *m)
{
    size_t floats = m->n_weights * (m->grads ? 2 : 1) + m->n_buffers + m->n_arena + m->n_aux +
                    m->n_folded + m->n_ws + (m->scratch ? m->n_scratch : 0);
    return floats * sizeof(float);
}

double cored_model_forward_macs(const cored_model *m)
{
    double macs = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cored_layer *l = &m->layers[i];
        if (l->kind == LAYER_CONV) {
            const cored_conv_shape *s = &l->u.conv;
            macs += (double)s->oh * s->ow * s->cout * (s->cin / s->groups) * s->kh * s->kw;
        } else if (l->kind == LAYER_LINEAR) {
            macs += (double)l->u.linear.in * l->u.linear.out;
        }
    }
    return macs;
}

int cored_model_copy_params(cored_model *dst, const cored_model *src, cored_error *err)
{
    if (dst->arch != src->arch || dst->n_weights != src->n_weights ||
        dst->n_buffers != src->n_buffers)
        return CORED_FAIL(err, CORED_E_SHAPE, "cannot copy parameters of '%s' into '%s'",
                          src->arch->name, dst->arch->name);
    cored_copy(dst->weights, src->weights, src->n_weights);
    cored_copy(dst->buffers, src->buffers, src->n_buffers);
    dst->fold_dirty = 1;
    return CORED_OK;
}

/* fan_in of a weight as torch.nn.init._calculate_fan_in_and_fan_out. */
static double fan_in(const cored_param *p)
{
    double f = p->ndim > 1 ? p->shape[1] : p->shape[0];
    for (int d = 2; d < p->ndim; d++) f *= p->shape[d];
    return f;
}

void cored_init_param_default(cored_model *m, int i, cored_rng *r)
{
    const cored_param *p = &m->params[i];
    float *d = cored_model_param_data(m, i);
    switch (p->kind) {
    case CORED_PARAM_WEIGHT: {
        /* kaiming_uniform_(a=sqrt(5)): bound = sqrt(6/((1+a^2) fan_in)) = 1/sqrt(fan_in) */
        double bound = 1.0 / sqrt(fan_in(p));
        for (size_t k = 0; k < p->numel; k++) d[k] = (float)((2.0 * cored_rng_uniform_d(r) - 1.0) * bound);
        break;
    }
    case CORED_PARAM_BIAS: {
        /* the bias bound uses the fan_in of the weight just before it */
        double bound = i > 0 ? 1.0 / sqrt(fan_in(&m->params[i - 1])) : 1.0;
        for (size_t k = 0; k < p->numel; k++) d[k] = (float)((2.0 * cored_rng_uniform_d(r) - 1.0) * bound);
        break;
    }
    case CORED_PARAM_BN_WEIGHT:
    case CORED_PARAM_BN_VAR:
        for (size_t k = 0; k < p->numel; k++) d[k] = 1.0f;
        break;
    case CORED_PARAM_BN_BIAS:
    case CORED_PARAM_BN_MEAN: memset(d, 0, sizeof(float) * p->numel); break;
    }
}

void cored_model_init_params(cored_model *m, uint64_t seed)
{
    m->fold_dirty = 1;
    if (m->arch->init) {
        m->arch->init(m, seed);
        return;
    }
    for (int i = 0; i < m->n_params; i++) {
        cored_rng r;
        cored_rng_derive(&r, seed, 0x1A17, (uint64_t)i, 0);
        cored_init_param_default(m, i, &r);
    }
}

void cored_model_init_head(cored_model *m, uint64_t seed)
{
    m->fold_dirty = 1;
    /* The same stream per parameter as cored_model_init_params (every architecture's init
       leaves its classifier at the PyTorch default), so the head equals a fresh model's. */
    for (int i = 0; i < m->n_params; i++) {
        if (!cored_model_param_is_head(m, m->params[i].name)) continue;
        cored_rng r;
        cored_rng_derive(&r, seed, 0x1A17, (uint64_t)i, 0);
        cored_init_param_default(m, i, &r);
    }
}

int cored_model_calibrate_bn(cored_model *m, int n, cored_error *err)
{
    float *keep = cored_alloc(sizeof(float) * (size_t)(m->n_layers > 0 ? m->n_layers : 1));
    if (!keep) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate %d floats", m->n_layers);
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == LAYER_BN) keep[i] = m->layers[i].u.bn.momentum, m->layers[i].u.bn.momentum = 1.0f;
    int rc = cored_model_forward(m, n, CORED_FWD_BN_BATCH, 0, err);
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == LAYER_BN) m->layers[i].u.bn.momentum = keep[i];
    cored_free(keep);
    return rc;
}

void cored_model_set_profile(cored_model *m, int on)
{
    m->profile = on;
    memset(m->prof_fwd, 0, sizeof m->prof_fwd);
    memset(m->prof_bwd, 0, sizeof m->prof_bwd);
}
