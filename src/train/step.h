/*
 * One training step of any method: the only one in cored. `cored train` and `cored adapt`
 * (trainer.c), `cored bench` and `cored grad` (which the PyTorch references check) all
 * run it. From an augmented batch and, for the methods with a teacher, the teacher's
 * logits of that batch, to the updated weights:
 *   1. CoReD with BN in train mode: the student's cells (class x confidence band) from a
 *      no-grad eval-mode pass of an inference build holding a copy of its weights;
 *   2. the student's training forward (BN batch statistics, or running statistics with
 *      freeze_bn) giving the logits and the tap features; with freeze_bn its own logits
 *      give the cells;
 *   3. the method's loss terms and their gradients (methods.c);
 *   4. backward, the weight-space regularisers (TG, EWC), the non-finite guard, the
 *      optimiser's update.
 */
#ifndef CORED_STEP_H
#define CORED_STEP_H

#include "dist/dist.h"
#include "train/methods.h"
#include "train/train.h"

/* Where the gradient of a step comes from (filled when cored_step.trace is set; cored
   adapt --trace). Norms are L2. The weight-gradient split costs two more forward and
   backward passes of the student (the BN running statistics are restored between them, so
   the step's result does not change). */
typedef struct {
    double dlogit_ce, dlogit_kd;  /* the CE and the distillation parts of the logit gradient */
    double tap_rep;               /* the representation loss's gradient at the tap */
    double w_logit, w_rep, w_total; /* weight gradient of the logit terms, of the representation
                                       term, and of everything (weight-space terms included) */
    int count[CORED_CELLS];       /* the student's images per cell */
    /* per cell, the scalar statistic (mean over channels of the spatial maxima, the mean
       over the cell's images): the teacher's, the student's training forward, the student's
       eval-mode pass (NaN where absent) */
    float mu_t[CORED_CELLS], mu_s[CORED_CELLS], mu_s_eval[CORED_CELLS];
} cored_step_trace;

typedef struct {
    const cored_train_cfg *cfg;
    cored_model *student;       /* training build (borrowed) */
    cored_model *eval;          /* inference build for the cells (borrowed; CoReD only) */
    cored_optim *opt;
    int stochastic;             /* dropout and drop-connect in the training forward (default 1) */
    cored_rep_stats rep;        /* CoReD: the teacher's statistics, filled by the caller */
    int have_rep;
    float *anchor;              /* EWC: the weights the step started from (a copy) */
    float *fisher;              /* EWC: Fisher summed over the earlier tasks, filled by the caller */
    uint8_t *is_head;           /* TG: the classifier's elements */
    cored_reg_ctx reg;
    float *dlogits, *dfeat, *ws;
    int *cells;                 /* the cells of the last step (CoReD) */
    cored_step_trace *trace;    /* optional diagnostics of every step */
    float *trace_buf;           /* running statistics and logit scratch of the trace */
    cored_dist_reducer *reducer; /* under mpirun with cfg->bucket_mb > 0: the overlapped gradient sum */
    /* Optional, called right after the training forward (cored grad records the kinks). */
    int (*after_forward)(void *user, const cored_model *student, cored_error *err);
    void *user;
} cored_step;

/* Sets up the step of cfg->method for batches of up to cfg->batch: the optimiser
   (cfg->optim), the buffers, CoReD's statistics (zero, present nowhere), EWC's anchor (the
   student's weights now) and Fisher (zero), TG's anchor (the teacher's weights, borrowed:
   teacher must outlive the step). eval: an inference build of the same model, needed by
   CoReD; teacher: needed by TG. */
int cored_step_init(cored_step *s, const cored_train_cfg *cfg, cored_model *student, cored_model *eval,
                    const cored_model *teacher, cored_error *err);
void cored_step_release(cored_step *s);

typedef struct {
    const float *x;               /* NHWC [n, size, size, 3] */
    const int *labels;            /* [n] */
    int n;
    const float *teacher_logits;  /* [n, 2]: required by DL, CoReD, LwF and TG */
    uint64_t seed;                /* dropout draws */
    int epoch, index;             /* where (0-based), for messages */
    int global_n;                 /* data parallel: images of the whole batch over every rank
                                     (this rank holds n of them, maybe 0); 0: n */
} cored_step_batch;

/* One step. terms: the loss terms; *correct: training predictions that match the labels.
   Under mpirun (cored_dist_size() > 1) every rank calls it for its shard of the same batch:
   its logit gradient is scaled by n / global_n (the losses are means over the batch), the
   weight gradients are summed over the ranks (fixed order), the weight-space terms added
   once, so every rank applies the same update; terms are this rank's means (rep and reg:
   the global batch's). With cfg->sync_bn the BN statistics are the global batch's.
   A non-finite logit, loss term, gradient or updated weight stops with CORED_E_NONFINITE
   naming the term (and the parameter), the task, epoch and step. */
int cored_train_step(cored_step *s, const cored_step_batch *b, cored_loss_terms *terms, int *correct,
                     cored_error *err);

#endif
