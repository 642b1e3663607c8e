/*
 * Training: task 1 (cross-entropy) and one continual step with CoReD or a baseline
 * (docs/method.md). One call trains one task into a run folder:
 *
 *   RUN/config.json      the resolved configuration
 *   RUN/log.csv, .jsonl  one line per epoch: loss terms, train accuracy, validation
 *                        accuracy and AUC per seen task, images/s, seconds
 *   RUN/best.safetensors the selected epoch (largest sum of validation accuracy, or AUC,
 *                        over the seen tasks; the earlier epoch on ties) — the next
 *                        step's teacher; carries the teacher statistics and method state
 *   RUN/last.safetensors the latest state, enough to resume bit-exactly
 *   RUN/summary.json     written when the step is complete
 */
#ifndef CORED_TRAIN_H
#define CORED_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "cored.h"
#include "data/data.h"
#include "io/checkpoint.h"
#include "train/optim.h"
#include "train/represent.h"

typedef enum {
    CORED_METHOD_CE,     /* task 1: cross-entropy only */
    CORED_METHOD_TL,     /* transfer learning: fine-tuning with CE */
    CORED_METHOD_DL,     /* CE + distillation (CoReD without L_Rep) */
    CORED_METHOD_TG,     /* CE + gamma * (L2-SP towards the teacher + L2 on the classifier) */
    CORED_METHOD_LWF,    /* CE + KD at T = 2 (Learning without Forgetting) */
    CORED_METHOD_EWC,    /* CE + elastic weight consolidation (diagonal Fisher) */
    CORED_METHOD_REPLAY, /* CE on the target plus a small buffer of earlier tasks' images */
    CORED_METHOD_JOINT,  /* CE on the union of every seen task's training data */
    CORED_METHOD_CORED,  /* CE + KD + representation loss */
    CORED_METHOD_COUNT
} cored_method;

int cored_method_parse(const char *s);  /* -1 when unknown; "train" is CE */
const char *cored_method_name(cored_method m);
int cored_method_uses_teacher(cored_method m);  /* needs the previous model's outputs */
int cored_method_uses_old_data(cored_method m); /* reads earlier tasks' training images */

#define CORED_MAX_TASKS 32
#define CORED_MAX_BATCH 4096

typedef enum {
    CORED_PHASE_PREPARE, /* teacher pass, Fisher, ... (what says which) */
    CORED_PHASE_BATCH,   /* after a training batch */
    CORED_PHASE_EPOCH    /* after an epoch's validation */
} cored_phase;

typedef struct {
    cored_phase phase;
    const char *what;
    int epoch, epochs;          /* 0-based epoch */
    int batch, batches;         /* batches done in this epoch / per epoch */
    double images_per_s, elapsed, eta; /* seconds */
    double loss, ce, kd, rep, reg;     /* means over the epoch so far */
    double train_acc;
    int n_tasks;
    const char *const *tasks;
    const double *val_acc, *val_auc;   /* per seen task (EPOCH) */
    int selected;               /* this epoch became the best so far (EPOCH) */
} cored_progress;

typedef void (*cored_progress_fn)(const cored_progress *p, void *user);

typedef struct {
    /* data */
    const char *data;                 /* the DATA root */
    const char *sources[CORED_MAX_TASKS]; /* earlier tasks in order; n_sources == 0: task 1 */
    int n_sources;
    const char *target;
    const char *pack;                 /* NULL: DATA/.cored-pack-<size>.bin when it exists;
                                         "" : never use a pack */
    int max_per_class;                /* cap on the training set, 0 = none */
    int loader_threads;               /* 0 = automatic */
    int strict;                       /* a corrupt image is an error */
    /* model */
    const char *arch;
    int size;
    const char *from;                 /* continual step: the previous step's best checkpoint */
    const char *init;                 /* task 1: optional initial weights */
    cored_init_head init_head;        /* keep: init is a complete checkpoint; reset: a backbone
                                         whose classifier is re-initialised (checkpoint.h) */
    /* optimisation */
    int epochs, batch;
    cored_optim_cfg optim;
    uint64_t seed;
    /* method */
    cored_method method;
    float temperature, alpha;         /* KD: T = 20, alpha = 0.5 */
    int freeze_bn;                    /* BN in eval mode while training (official code) */
    cored_rep_mode rep;
    int rep_unbiased;                 /* L_Rep minus each cell's sample variance (represent.h) */
    cored_rep_norm rep_norm;          /* none: the paper's sum over cells; batch: cells weighted
                                         by their share of the batch, in units of the teacher's
                                         variance of the statistic (represent.h) */
    float rep_weight;                 /* the factor of L_Rep; 0: the norm's (cored_rep_how) */
    int rep_teacher_running;          /* teacher statistics with BN running statistics (the
                                         official code) even when the student trains with batch
                                         statistics; 0: under the student's own BN mode */
    int select_auc;                   /* select by the sum of val AUCs instead of accuracy */
    cored_cutmix_mode cutmix;
    float cutmix_p, cutmix_beta;      /* 0 = the mode's default */
    int flip;
    float lwf_temperature, lwf_lambda;
    float ewc_lambda;
    int ewc_samples;                  /* images per task for the Fisher */
    int replay_size;                  /* images in the replay buffer (class-balanced) */
    /* run */
    const char *out;                  /* the run folder */
    int force;                        /* replace an existing run folder */
    int resume;                       /* continue the run in `out` */
    int threads;
    int deterministic;                /* single-threaded BLAS: bit-identical results */
    float save_every;                 /* seconds between mid-epoch checkpoints, 0 = never */
    const char *trace;                /* optional: one JSON line per step appended to this file
                                         (loss terms, gradient norms per term, cell statistics;
                                         costs two more passes per step) */
    volatile sig_atomic_t *stop;      /* set asynchronously: save and return CORED_E_STOPPED */
    cored_progress_fn progress;
    void *progress_user;
} cored_train_cfg;

/* Task names as the official layout allows them (non-empty, without '_', '/' or ','), none
   listed twice; CORED_E_ARG naming the first that is not. */
int cored_check_task_names(const char *const *tasks, int n, cored_error *err);

/* The paper's defaults: SGD lr 0.05 momentum 0.1, batch 128, 100 epochs, T 20, alpha 0.5,
   opposite-class CutMix, flip, seed 2020, scalar representation, accuracy selection. */
void cored_train_defaults(cored_train_cfg *cfg);

typedef struct {
    int best_epoch;           /* 0-based; -1 when nothing was selected */
    double best_score;        /* sum over seen tasks (accuracy or AUC, in [0, n]) */
    int epochs_done;
    double seconds;
} cored_train_result;

/* Trains one task into cfg->out. Returns CORED_E_STOPPED (after saving last) when
   *cfg->stop was set, CORED_E_NONFINITE (without saving) when a loss or gradient is not
   finite, naming task, epoch, step and term. */
int cored_train_run(const cored_train_cfg *cfg, cored_train_result *res, cored_error *err);

/* The pack a run reads pixels from, into buf ("" for none): pack NULL means
   DATA/.cored-pack-<size>.bin when that file exists, "" means none, else the path given. */
void cored_resolve_pack(char *buf, size_t n, const char *data, const char *pack, int size);
/* Decoding threads: requested when > 0, else half the compute threads (at least 1). */
int cored_loader_threads(int requested);

/* A 64-bit checksum of a file's bytes; 0 for NULL or an unreadable file. */
uint64_t cored_file_checksum(const char *path);

/* Writes the resolved configuration as JSON (config.json of a run). */
int cored_train_cfg_save(const cored_train_cfg *cfg, const char *path, cored_error *err);
/* Reads config.json of a run into cfg (strings are owned by *strings, cored_free it). */
int cored_train_cfg_load(cored_train_cfg *cfg, char **strings, const char *path, cored_error *err);

#endif
