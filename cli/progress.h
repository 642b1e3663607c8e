/*
 * Progress of long commands: a redrawn bar with ETA, images/s and the loss terms on a
 * terminal; one plain line every N batches otherwise; only results with --quiet.
 * SIGINT/SIGTERM ask the training loop to save and stop.
 */
#ifndef CORED_CLI_PROGRESS_H
#define CORED_CLI_PROGRESS_H

#include <signal.h>

#include "train/train.h"

typedef struct {
    int quiet, tty, every;
    double last_draw;
    int drawn;           /* a bar is on screen (terminal) */
    char label[128];
    double start;        /* cli_progress_count: when the count started (done == 0) */
} cli_progress;

void cli_progress_init(cli_progress *p, int quiet, int every, const char *label);
void cli_progress_fn(const cored_progress *p, void *user);
/* Ends a bar line still on screen. */
void cli_progress_done(cli_progress *p);
/* A bar for work that is counted in items (images decoded): "<label><what> [####....]
   done/total items/s ETA", redrawn at most ten times a second, on a terminal only (and not
   with quiet); done == 0 starts the clock. Without a terminal it prints nothing. */
void cli_progress_count(cli_progress *p, const char *what, long done, long total);
/* Erases a bar still on screen, so that the next line takes its place. */
void cli_progress_clear(cli_progress *p);

extern volatile sig_atomic_t cli_stop;
/* The first SIGINT/SIGTERM sets cli_stop; the second one kills the process. */
void cli_install_signals(void);

#endif
