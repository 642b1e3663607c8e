/*
 * SGD (momentum, dampening 0, optional Nesterov, L2 weight decay) and Adam/AdamW, written
 * element by element exactly as torch.optim (1.13, single-tensor path) does:
 *   SGD:  d = g + wd*w; buf = d on the first step, else buf = mu*buf + d;
 *         d = nesterov ? d + mu*buf : buf; w -= lr*d
 *   Adam: g += wd*w (AdamW instead: w *= 1 - lr*wd); m = b1*m + (1-b1)*g;
 *         v = b2*v + (1-b2)*g^2; w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "optim.h"

const char *const cored_optim_names[] = {"sgd", "adam", "adamw", NULL};

int cored_optim_kind_parse(const char *s)
{
    for (int i = 0; cored_optim_names[i]; i++)
        if (!strcmp(s, cored_optim_names[i])) return i;
    return -1;
}

const char *cored_optim_kind_name(cored_opt_kind k)
{
    return (unsigned)k <= CORED_OPT_ADAMW ? cored_optim_names[k] : "?";
}

cored_optim_cfg cored_optim_defaults(cored_opt_kind kind)
{
    cored_optim_cfg c = {.kind = kind, .lr = 0.05f, .momentum = 0.1f, .beta1 = 0.9f,
                         .beta2 = 0.999f, .eps = 1e-8f};
    if (kind != CORED_OPT_SGD) {
        c.lr = 1e-3f;
        c.momentum = 0.0f;
        if (kind == CORED_OPT_ADAMW) c.weight_decay = 1e-2f;
    }
    return c;
}

int cored_optim_create(cored_optim **out, const cored_optim_cfg *cfg, size_t n, cored_error *err)
{
    *out = NULL;
    if (!(cfg->lr >= 0) || !(cfg->momentum >= 0) || !(cfg->weight_decay >= 0) ||
        (cfg->nesterov && cfg->momentum <= 0) || !(cfg->beta1 >= 0 && cfg->beta1 < 1) ||
        !(cfg->beta2 >= 0 && cfg->beta2 < 1) || !(cfg->eps >= 0))
        return CORED_FAIL(err, CORED_E_ARG,
                          "invalid optimiser settings (lr %g, momentum %g, weight decay %g%s)",
                          cfg->lr, cfg->momentum, cfg->weight_decay,
                          cfg->nesterov && cfg->momentum <= 0 ? ", Nesterov needs momentum > 0" : "");
    cored_optim *o = cored_calloc(1, sizeof *o);
    if (!o) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the optimiser");
    o->cfg = *cfg;
    o->n = n;
    int need_m = cfg->kind != CORED_OPT_SGD || cfg->momentum > 0;
    o->m = need_m ? cored_calloc(n ? n : 1, sizeof(float)) : NULL;
    o->v = cfg->kind != CORED_OPT_SGD ? cored_calloc(n ? n : 1, sizeof(float)) : NULL;
    if ((need_m && !o->m) || (cfg->kind != CORED_OPT_SGD && !o->v)) {
        cored_optim_free(o);
        return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate optimiser state for %zu parameters", n);
    }
    *out = o;
    return CORED_OK;
}

void cored_optim_free(cored_optim *o)
{
    if (!o) return;
    cored_free(o->m);
    cored_free(o->v);
    cored_free(o);
}

static void sgd_step(cored_optim *o, float *w, const float *g)
{
    const float lr = o->cfg.lr, mu = o->cfg.momentum, wd = o->cfg.weight_decay;
    const int first = o->steps == 0, nesterov = o->cfg.nesterov;
    float *buf = o->m;
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < o->n; i++) {
        float d = g[i];
        if (wd != 0.0f) d += wd * w[i];
        if (buf) {
            buf[i] = first ? d : mu * buf[i] + d;
            d = nesterov ? d + mu * buf[i] : buf[i];
        }
        w[i] -= lr * d;
    }
}

static void adam_step(cored_optim *o, float *w, const float *g)
{
    const float lr = o->cfg.lr, b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const float wd = o->cfg.weight_decay;
    const int decoupled = o->cfg.kind == CORED_OPT_ADAMW;
    double t = (double)(o->steps + 1);
    float bc1 = (float)(1.0 - pow(b1, t)), bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
    float step_size = lr / bc1;
    float *m = o->m, *v = o->v;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < o->n; i++) {
        float gi = g[i];
        if (decoupled)
            w[i] *= 1.0f - lr * wd;
        else if (wd != 0.0f)
            gi += wd * w[i];
        m[i] += (gi - m[i]) * (1.0f - b1);
        v[i] = v[i] * b2 + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        w[i] -= step_size * (m[i] / denom);
    }
}

void cored_optim_step(cored_optim *o, float *w, const float *g)
{
    if (o->cfg.kind == CORED_OPT_SGD)
        sgd_step(o, w, g);
    else
        adam_step(o, w, g);
    o->steps++;
}
