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

/* The methods' names by value ("train" is CE), NULL-terminated. */
extern const char *const cored_method_names[];
int cored_method_parse(const char *s);  /* -1 when unknown */
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
    double loss, ce, kd, rep, reg;     /* means over the epoch so far: loss = ce_weight * ce + kd
                                          + rep + reg (kd, rep, reg carry their weights) */
    double ce_weight;
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
    int sync_bn;                      /* under mpirun: BN statistics summed over the ranks */
    float bucket_mb;                  /* under mpirun: gradient buckets summed during backward, 0: after it */
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

/* The defaults of the configuration table (below): the paper's SGD lr 0.05 momentum 0.1,
   batch 128, 100 epochs, T 20, alpha 0.5, opposite-class CutMix, flip, seed 2020, scalar
   representation, accuracy selection; cored's normalised representation term. The model
   and input size are left to cored_train_resolve. */
void cored_train_defaults(cored_train_cfg *cfg);

/* Fills what the defaults leave open and checks a step against its checkpoint: the model
   (a step: --from's; task 1: xception) and the input size (--from's, else the data's
   synth.json size, else 128), warning (cored_log) when a size given differs from those;
   a step's --sources must be the tasks --from has learned, in order. */
int cored_train_resolve(cored_train_cfg *cfg, cored_error *err);

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

/* Continues the interrupted run in dir with the configuration it saved (config.json); only
   how this process runs comes from `how`: threads and loader_threads (-1: the run's),
   progress, progress_user and stop. A complete run returns at once (best_epoch -1). */
int cored_train_resume(const char *dir, const cored_train_cfg *how, cored_train_result *res, cored_error *err);

/* The pack a run reads pixels from, into buf ("" for none): pack NULL means
   DATA/.cored-pack-<size>.bin when that file exists, "" or "none" means none, else the path
   given. */
void cored_resolve_pack(char *buf, size_t n, const char *data, const char *pack, int size);
/* Decoding threads: requested when > 0, else half the compute threads (at least 1). */
int cored_loader_threads(int requested);

/* A 64-bit checksum of a file's bytes; 0 for NULL or an unreadable file. */
uint64_t cored_file_checksum(const char *path);

/* ------------------------------------------------------------ the configuration table
 * One row per setting of cored_train_cfg: its JSON key (the command-line option is the key
 * with '-' for '_'), type, place, range, default, where it acts and its help. The table
 * drives the defaults, every training command's options and --help, config.json (save and
 * load), presets and the printout of a run's settings. */

typedef enum {
    CORED_CFG_INT, CORED_CFG_U64, CORED_CFG_FLOAT, CORED_CFG_BOOL, CORED_CFG_STR,
    CORED_CFG_ENUM,  /* an int whose value indexes `names` */
    CORED_CFG_TASKS  /* sources[] and n_sources: a comma list, a JSON array */
} cored_cfg_type;

enum {
    CORED_CFG_TASK1 = 1,    /* acts in task 1 (cored train) */
    CORED_CFG_STEP = 2,     /* acts in a continual step (cored adapt) */
    CORED_CFG_RUNTIME = 4,  /* how this process runs: may change when a run resumes */
    CORED_CFG_NOSAVE = 8,   /* not part of config.json (where the run goes, what it appends to) */
    CORED_CFG_PATH = 16     /* a path: the command line makes it absolute */
};

typedef struct {
    const char *key;
    cored_cfg_type type;
    size_t offset;              /* in cored_train_cfg */
    double lo, hi;              /* numbers: the accepted range */
    const char *const *names;   /* CORED_CFG_ENUM: the names by value, NULL-terminated */
    const char *def;            /* the default as text (parsed by cored_cfg_parse); NULL: none */
    const char *def_help;       /* the default as --help states it when it is not a value */
    unsigned where;             /* CORED_CFG_* */
    unsigned methods;           /* bit (1u << method) for each method it acts for; 0: all */
    const char *arg;            /* the value's name in --help */
    const char *help;
} cored_cfg_field;

/* A set of fields: bit i stands for row i of the table. */
typedef uint64_t cored_cfg_mask;

/* The table (*n rows). */
const cored_cfg_field *cored_cfg_fields(int *n);
/* The row of a key ("rep_norm") or its option spelling ("rep-norm"); -1 when none. */
int cored_cfg_find(const char *name);
/* Whether a row acts for a method (CORED_METHOD_CE: task 1). */
int cored_cfg_acts(const cored_cfg_field *f, cored_method m);
/* Sets row i from text, range-checked; a string keeps the pointer, so text must outlive
   cfg. CORED_E_ARG naming the setting and what it accepts. */
int cored_cfg_parse(cored_train_cfg *cfg, int i, const char *text, cored_error *err);
/* Row i's value as text. */
void cored_cfg_format(const cored_train_cfg *cfg, int i, char *buf, size_t n);
/* Copies row i's value from src to dst. */
void cored_cfg_copy(cored_train_cfg *dst, const cored_train_cfg *src, int i);

/* Named presets: bundles of settings applied on top of the defaults ("paper", "quick").
   cored_cfg_preset applies one and marks what it set; CORED_E_ARG for an unknown name. */
typedef struct {
    const char *key, *value;
} cored_cfg_setting;
typedef struct {
    const char *name, *help;
    cored_cfg_setting settings[16]; /* ended by a NULL key */
} cored_cfg_preset_def;
extern const cored_cfg_preset_def cored_cfg_presets[];
int cored_cfg_preset(cored_train_cfg *cfg, const char *name, cored_cfg_mask *set, cored_error *err);

/* Settings that depend on others, for those not set: the optimiser's lr, momentum and
   weight decay (cored_optim_defaults). */
void cored_cfg_finish(cored_train_cfg *cfg, cored_cfg_mask set);

/* Writes the resolved configuration as JSON (config.json of a run). */
int cored_train_cfg_save(const cored_train_cfg *cfg, const char *path, cored_error *err);
/* Applies a configuration file (what config.json holds, or a part of it) onto cfg and marks
   the rows it set in *set (may be NULL). Every value is range-checked; an unknown key is an
   error. Strings are owned by *strings (cored_free it). */
int cored_train_cfg_read(cored_train_cfg *cfg, cored_cfg_mask *set, char **strings, const char *path,
                         cored_error *err);
/* The defaults, then config.json of a run (--resume). */
int cored_train_cfg_load(cored_train_cfg *cfg, char **strings, const char *path, cored_error *err);

#endif
