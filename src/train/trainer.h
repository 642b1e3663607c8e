/*
 * Internal state of one training run (trainer.c) and its checkpoint/resume I/O (state.c).
 */
#ifndef CORED_TRAINER_H
#define CORED_TRAINER_H

#include "data/data.h"
#include "train/methods.h"
#include "train/prepare.h"
#include "train/step.h"
#include "train/train.h"

/* Sums over the batches of the current epoch (weighted by images). */
typedef struct {
    double loss, ce, kd, rep, reg;
    double images, correct;
    double seconds;
    int batches;
} cored_epoch_acc;

/* Where a run stands: what last.safetensors saves (metadata "cored.state", numbers with 17
   significant digits so that a resumed run continues bit-exactly) and a resume restores. */
typedef struct {
    int epoch, next_batch;   /* the epoch under way (0-based) and its next batch */
    int best_epoch;          /* the epoch selected so far, -1: none */
    double best_score;
    uint64_t optim_steps;    /* the optimiser's updates so far */
    uint64_t from_checksum;  /* of the --from checkpoint, which must not change under a run */
    double seconds;          /* the run's seconds in earlier sessions */
    cored_epoch_acc acc;     /* the epoch's running sums */
} cored_run_state;

/* The state as a JSON text (cJSON_free it), and back: CORED_E_FORMAT naming path when
   the text is not a run state. */
char *cored_run_state_json(const cored_run_state *s);
int cored_run_state_parse(cored_run_state *s, const char *json, const char *path, cored_error *err);

typedef struct {
    const cored_train_cfg *cfg;
    char path_best[4096], path_last[4096], path_csv[4096], path_jsonl[4096], path_summary[4096],
        path_config[4096];
    const char *tasks[CORED_MAX_TASKS + 1]; /* seen tasks: sources, then the target */
    int n_tasks;

    cored_model *student, *eval, *teacher;
    cored_step step;
    cored_step_trace trace;
    cored_dataset *train, *val[CORED_MAX_TASKS + 1];
    cored_loader *train_loader;
    cored_loader_opts lo;

    cored_teacher_cache cache;
    float *tlogits;
    float *scores;
    int *labels;
    int max_val;

    cored_run_state run;
    cored_st_file *from;      /* the --from checkpoint, read once, until the models are set up */
    uint64_t from_checksum;
    double t_start, last_save;
    uint64_t steps;           /* in this process, for the checks of data-parallel runs */
} cored_trainer;

/* cored_train_resolve with the --from checkpoint already open (NULL for task 1); warn: the
   size warnings too. */
int cored_train_resolve_from(cored_train_cfg *c, const cored_st_file *from, int warn, cored_error *err);

/* Saves the latest state (kind "last", resumable) or the selected epoch (kind "best"). */
int cored_trainer_save(cored_trainer *t, int best, cored_error *err);
/* Restores the state saved by cored_trainer_save(last) (resume). */
int cored_trainer_restore(cored_trainer *t, cored_error *err);
/* After a resume: makes best.safetensors agree with the restored selection (the process
   may have died after saving last and before saving best). */
int cored_trainer_check_best(cored_trainer *t, cored_error *err);
/* Reads the EWC Fisher carried by a checkpoint into t->fisher; 1 when present, 0 when
   absent, < 0 on error. */
int cored_trainer_load_fisher(cored_trainer *t, const char *path, cored_error *err);
/* Keeps the first `epochs` data lines of the run's logs (resume after a crash). */
int cored_trainer_trim_logs(cored_trainer *t, int epochs, cored_error *err);

#endif
