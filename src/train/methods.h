/*
 * The loss of one training batch for each method (docs/method.md), as values
 * and gradients: with respect to the student's logits and tap features (handed to
 * cored_model_backward) and, for the weight-space regularisers (TG, EWC), added straight
 * into the gradient slab after backward.
 */
#ifndef CORED_METHODS_H
#define CORED_METHODS_H

#include "train/represent.h"
#include "train/train.h"

typedef struct {
    double ce;    /* mean cross-entropy of the student */
    double kd;    /* distillation term (alpha*T^2*KL, or LwF's lambda*T^2*KL) */
    double rep;   /* CoReD representation loss */
    double reg;   /* TG: gamma*(L2-SP + L_cls); EWC: lambda/2 * sum F (w - w*)^2 */
    double total; /* what is minimised */
    int rep_cells;
} cored_loss_terms;

/* Weight-space context of the regularisers. */
typedef struct {
    const float *anchor;   /* teacher (TG) or previous task's (EWC) weights, [n] */
    const float *fisher;   /* EWC: accumulated diagonal Fisher, [n] */
    const uint8_t *is_head;/* [n] 1 for the classifier's elements (TG) */
    size_t n;
    double teacher_ce_sum;  /* TG, data parallel: the teacher's CE summed over the global batch */
    int teacher_ce_n;       /* its images; 0: gamma from t over this batch */
} cored_reg_ctx;

/* The weight of the cross-entropy in the method's loss (2 - alpha for DL and CoReD, else 1). */
float cored_method_ce_weight(const cored_train_cfg *cfg);

/* The default factor of L_Rep with --rep-norm batch (with none it is 1, the paper's); chosen
   on benchmarks described in docs/method.md. */
#define CORED_REP_WEIGHT_BATCH 0.1f
/* How L_Rep is weighed: cfg's norm and estimate, and its weight or the norm's default. */
cored_rep_loss_cfg cored_rep_how(const cored_train_cfg *cfg);

/* Logit- and feature-space part of the loss. s: student logits (n,2); t: teacher logits
   (n,2) or NULL; features: student tap (n,hw,c) (CoReD); cells: the student's cells from
   its eval-mode pass (CoReD); dlogits (n,2) and dfeat (n,hw,c) are written. ws: scratch of
   cored_rep_ws_floats(n, c) floats (at least 2n). Sets ce, kd, rep, total (without reg). */
void cored_method_logit_loss(cored_loss_terms *terms, float *dlogits, float *dfeat,
                             const cored_train_cfg *cfg, const float *s, const float *t,
                             const int *labels, int n, const float *features, int hw, int c,
                             const int *cells, const cored_rep_stats *teacher_rep, float *ws);

/* Weight-space part: adds its gradient to g (n) and its value to terms->reg and
   terms->total. t: teacher logits for TG's gamma. */
void cored_method_weight_loss(cored_loss_terms *terms, float *g, const float *w,
                              const cored_reg_ctx *reg, const cored_train_cfg *cfg, const float *t,
                              const int *labels, int n);

/* mask[i] = 1 for the elements of the weight slab that belong to the classifier (the
   parameters "<head>.*", head = the architecture's classifier module), else 0. */
void cored_head_mask(uint8_t *mask, const cored_model *m);

#endif
