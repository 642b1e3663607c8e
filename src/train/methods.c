/*
 * Per-batch losses of CoReD and the baselines.
 *
 *  CE, TL, replay, joint: L = CE(z_S, y)
 *  DL:    L = CE + [alpha*T^2*KL(p_T^T || p_S^T) + (1-alpha)*CE]      (= 1.5 CE + 200 KL)
 *  CoReD: L = DL + lambda L_Rep               (docs/method.md; lambda in L_Rep's value)
 *  LwF:   L = CE + lambda*T^2*KL at T = 2 (Li & Hoiem's distillation on the old model's
 *         outputs; lambda = 1 by default)
 *  TG:    L = CE + gamma*(1/2 sum_{not head} (w - w_T)^2 + 1/2 ||head||^2),
 *         gamma = sigmoid(-CE(z_T, y)), a constant per batch (T-GD as the CoReD code has it;
 *         the head is found by the architecture's classifier name, not a fixed prefix)
 *  EWC:   L = CE + lambda/2 * sum F_i (w_i - w*_i)^2 (online EWC: Fisher summed over the
 *         earlier tasks, anchor = the previous task's weights)
 * The official code puts alpha*T^2 inside the KL target; the gradient is the same, the
 * logged value here is the standard KL without its +alpha*T^2*ln(alpha*T^2) offset.
 */
#include <math.h>
#include <string.h>

#include "dist/dist.h"
#include "methods.h"
#include "models/model.h"
#include "ops/ops.h"

float cored_method_ce_weight(const cored_train_cfg *cfg)
{
    return cfg->method == CORED_METHOD_DL || cfg->method == CORED_METHOD_CORED ? 2.0f - cfg->alpha : 1.0f;
}

cored_rep_loss_cfg cored_rep_how(const cored_train_cfg *cfg)
{
    cored_rep_loss_cfg how = {cfg->rep_norm, cfg->rep_unbiased, cfg->rep_weight, cored_dist_size() > 1};
    if (!(cfg->rep_weight > 0)) how.weight = cfg->rep_norm == CORED_REP_NORM_BATCH ? CORED_REP_WEIGHT_BATCH : 1.0;
    return how;
}

void cored_method_logit_loss(cored_loss_terms *terms, float *dlogits, float *dfeat,
                             const cored_train_cfg *cfg, const float *s, const float *t,
                             const int *labels, int n, const float *features, int hw, int c,
                             const int *cells, const cored_rep_stats *teacher_rep, float *ws)
{
    memset(terms, 0, sizeof *terms);
    const cored_method m = cfg->method;
    float *tmp = ws; /* the KD gradient, added to dlogits before ws serves L_Rep */
    const float ce_weight = cored_method_ce_weight(cfg);
    terms->ce = cored_softmax_ce(dlogits, s, labels, n, 2, ce_weight);
    terms->total = ce_weight * terms->ce;
    if ((m == CORED_METHOD_DL || m == CORED_METHOD_CORED || m == CORED_METHOD_LWF) && t) {
        float temp = m == CORED_METHOD_LWF ? cfg->lwf_temperature : cfg->temperature;
        float alpha = m == CORED_METHOD_LWF ? cfg->lwf_lambda : cfg->alpha;
        terms->kd = cored_kd_loss(tmp, s, t, n, 2, temp, alpha, 1.0f);
        for (int i = 0; i < 2 * n; i++) dlogits[i] += tmp[i];
        terms->total += terms->kd;
    }
    if (m == CORED_METHOD_CORED && features && teacher_rep) {
        cored_rep_loss_cfg how = cored_rep_how(cfg);
        terms->rep = cored_rep_loss(dfeat, &terms->rep_cells, teacher_rep, cells, features, n, hw, c, &how, ws);
        terms->total += terms->rep;
    } else if (dfeat) {
        memset(dfeat, 0, sizeof(float) * (size_t)n * hw * c);
    }
}

/* Sum over fixed chunks combined in order, so the logged value does not depend on the
   number of threads. */
#define REG_PARTS 16

void cored_method_weight_loss(cored_loss_terms *terms, float *g, const float *w,
                              const cored_reg_ctx *reg, const cored_train_cfg *cfg, const float *t,
                              const int *labels, int n)
{
    const int tg = cfg->method == CORED_METHOD_TG;
    if (!tg && cfg->method != CORED_METHOD_EWC) return;
    float gamma = 0.0f;
    if (tg) {
        double ce = reg->teacher_ce_n > 0 ? reg->teacher_ce_sum / reg->teacher_ce_n
                                          : cored_softmax_ce(NULL, t, labels, n, 2, 1.0f);
        gamma = (float)(1.0 / (1.0 + exp(ce)));
    }
    const float lambda = cfg->ewc_lambda;
    double part[REG_PARTS];
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < REG_PARTS; p++) {
        size_t lo = reg->n * (size_t)p / REG_PARTS, hi = reg->n * (size_t)(p + 1) / REG_PARTS;
        double v = 0;
        for (size_t i = lo; i < hi; i++) {
            if (tg) {
                /* L2-SP towards the teacher, plain L2 on the classifier */
                float d = reg->is_head[i] ? w[i] : w[i] - reg->anchor[i];
                v += 0.5 * (double)d * d;
                g[i] += gamma * d;
            } else {
                float d = w[i] - reg->anchor[i];
                v += 0.5 * (double)reg->fisher[i] * d * d;
                g[i] += lambda * reg->fisher[i] * d;
            }
        }
        part[p] = v;
    }
    double value = 0;
    for (int p = 0; p < REG_PARTS; p++) value += part[p];
    value *= tg ? gamma : lambda;
    terms->reg = value;
    terms->total += value;
}

void cored_head_mask(uint8_t *mask, const cored_model *m)
{
    size_t nw = m->n_weights, hl = strlen(m->arch->head);
    memset(mask, 0, nw);
    for (int i = 0; i < cored_model_param_count(m); i++) {
        const cored_param *p = cored_model_param(m, i);
        if (cored_param_trainable(p->kind) && !strncmp(p->name, m->arch->head, hl) && p->name[hl] == '.')
            memset(mask + p->offset, 1, p->numel);
    }
}
