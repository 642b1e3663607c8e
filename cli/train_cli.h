/*
 * The training commands' options and their execution: `cored train`, `cored adapt` and
 * `cored protocol` take their settings from the library's configuration table (train.h),
 * layered as defaults < --preset < --config FILE < options on the command line, or from a
 * run's config.json with --resume.
 */
#ifndef CORED_CLI_TRAIN_H
#define CORED_CLI_TRAIN_H

#include "opts.h"
#include "progress.h"
#include "train/train.h"

#define TRAIN_MAX_OPTS 72

typedef enum {
    TRAIN_CMD_TRAIN, TRAIN_CMD_ADAPT, TRAIN_CMD_PROTOCOL,
    TRAIN_CMD_ROWS /* chosen rows only (cored grad) */
} train_cmd;

typedef struct {
    train_cmd cmd;
    const cli_doc *doc;
    cored_train_cfg cfg;     /* the resolved configuration */
    cored_train_cfg line;    /* what the command line set */
    const char *resume, *config, *sources;
    int preset, quiet, log_every;
    opt_def defs[TRAIN_MAX_OPTS];
    int row[TRAIN_MAX_OPTS]; /* option -> row of the table, -1 for the command's own */
    unsigned char given[TRAIN_MAX_OPTS];
    int flag[TRAIN_MAX_OPTS];
    int n_defs;
    char *strings;           /* what a configuration file's strings live in */
    char src_buf[4096], abs[8][4096];
} train_cli;

/* The options of cmd: the table's rows that act in it, then --preset, --config, --resume,
   --quiet and --log-every. */
void train_cli_init(train_cli *t, train_cmd cmd, const cli_doc *doc);
/* Options for the rows named by keys (NULL-terminated) only: what another command (grad)
   shares with the training commands. */
void train_cli_init_rows(train_cli *t, const cli_doc *doc, const char *const *keys);
/* Parses argv for train_cli_init_rows: t->cfg is the defaults with the options given (and
   the optimiser's defaults for what was not). 0, -1 after --help, or the exit code. */
int train_cli_parse_rows(train_cli *t, int argc, char **argv);
/* The option of one setting of the table (key "threads" or "rep-norm") for a command that
   keeps the value itself: the name, range, help and default text of the training commands.
   dst is the setting's type (const char *, int for a switch or a name, float, uint64_t); a
   switch that defaults to on is --no-KEY and dst receives 1 when it is given. */
opt_def train_cli_opt(const char *key, void *dst, unsigned flags);
/* Appends a command's own option (protocol's --tasks ...). */
void train_cli_add(train_cli *t, opt_def d);
/* Parses argv and layers the configuration into t->cfg (or loads a run's with --resume):
   0 to go on, -1 after --help was printed, otherwise the exit code. `own_required` names
   the command's own options that must be given unless --resume is (NULL-terminated). */
int train_cli_parse(train_cli *t, int argc, char **argv, const char *const *own_required);
/* Whether an option was given on the command line. */
int train_cli_given(const train_cli *t, const char *name);
/* path made absolute against the working directory, into buf (so that a run resumed from
   elsewhere still finds its data). */
const char *cli_abspath(char *buf, size_t n, const char *path);
/* Prints the resolved settings of a step to stderr (unless quiet). */
void train_cli_print(const train_cli *t, const char *what);
/* Runs one step with progress and signals; prints the result. Returns the exit code. */
int train_cli_run(train_cli *t, const char *label);
/* A whole training command (train, adapt): parse, print the settings, run. */
int train_cli_command(train_cmd cmd, const cli_doc *doc, int argc, char **argv);
/* Frees what parsing kept. */
void train_cli_free(train_cli *t);

#endif
