/*
 * Options shared by `cored train`, `cored adapt` and `cored protocol`, and running one
 * training step with progress, stop signals and clear errors.
 */
#ifndef CORED_CLI_TRAIN_H
#define CORED_CLI_TRAIN_H

#include "opts.h"
#include "progress.h"
#include "train/train.h"

#define TRAIN_MAX_OPTS 64

typedef struct {
    cored_train_cfg cfg;
    int optim_idx, rep_idx, select_idx, cutmix_idx, rep_estimate_idx, rep_teacher_idx, rep_norm_idx;
    int no_flip, quiet, log_every;
    const char *pack_opt;   /* FILE, or "none" */
    const char *resume;
    opt_def defs[TRAIN_MAX_OPTS];
    unsigned char given[TRAIN_MAX_OPTS];
    int n_defs;
    int n_common;           /* defs[0..n_common) are the options --resume does not allow */
    char abs_data[4096], abs_from[4096], abs_init[4096], abs_pack[4096], abs_out[4096];
} train_cli;

/* The paper's defaults and the common option table. */
void train_cli_init(train_cli *t);
/* Appends a command-specific option. */
void train_cli_add(train_cli *t, opt_def d);
/* Parses argv: 0 to go on, -1 after --help was printed, otherwise the exit code.
   `extra` names command options that --resume does not allow either (NULL-terminated). */
int train_cli_parse(train_cli *t, const char *cmd, int argc, char **argv, void (*usage)(void),
                    const char *const *extra);
/* Whether an option was given on the command line. */
int train_cli_given(const train_cli *t, const char *name);
/* path made absolute against the working directory, into buf (so a run resumed from
   elsewhere still finds its data). */
const char *cli_abspath(char *buf, size_t n, const char *path);
/* Turns choice indices into cfg fields; with --resume loads the run's configuration.
   Returns 0 or EXIT_USAGE / 1 after printing the problem. */
int train_cli_finish(train_cli *t, const char *cmd, char **strings);
/* Prints the resolved settings of a step to stderr (unless quiet). */
void train_cli_print(const train_cli *t, const char *what);
/* Runs one step with progress and signals; prints the result. Returns the exit code. */
int train_cli_run(train_cli *t, const char *label);

#endif
