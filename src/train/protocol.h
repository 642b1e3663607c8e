/*
 * The continual protocol: task 1 once, then every method through every step, evaluating
 * every task after every step, then the report (eval/report.h). Folder:
 *
 *   RUN/protocol.json, RUN/base.json     the protocol and the shared training settings
 *   RUN/1-<task1>/                       task 1 (a train run) + eval.json, eval.safetensors
 *   RUN/<method>/<k>-<task k>/           step k of each method (an adapt run) + its eval
 *   RUN/report.{md,csv,json}, RUN/plots/
 *
 * Every part is skipped when already complete and resumed when interrupted, so
 * `--resume RUN` continues a killed protocol and ends with the same result.
 */
#ifndef CORED_PROTOCOL_H
#define CORED_PROTOCOL_H

#include "train/train.h"

typedef struct {
    cored_train_cfg base;   /* data, model, optimisation, method settings, threads, progress */
    const char *tasks[CORED_MAX_TASKS];
    int n_tasks;
    cored_method methods[CORED_METHOD_COUNT];
    int n_methods;
    int task1_epochs;       /* 0: base.epochs */
    const char *out;
    int force, resume;
    cored_split split;      /* evaluation split (test) */
} cored_protocol_cfg;

/* Runs (or resumes) the protocol; summary receives the paper-style table as text. */
int cored_protocol_run(const cored_protocol_cfg *p, char *summary, size_t n, cored_error *err);

/* Writes / reads RUN/protocol.json and RUN/base.json. On load, the strings live in two
   blocks, strings[0] and strings[1] (cored_free both); p->out is dir and p->resume is set. */
int cored_protocol_save(const cored_protocol_cfg *p, cored_error *err);
int cored_protocol_load(cored_protocol_cfg *p, char **strings, const char *dir, cored_error *err);

#endif
