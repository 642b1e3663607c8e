/*
 * The command-line tool: one file per subcommand, each `int cmd_<name>(int argc, char **argv)`
 * returning the process exit code: 0 success, 1 failure, 2 usage error (unknown flag, bad
 * value). Only the CLI prints; the library reports through cored_error.
 */
#ifndef CORED_CLI_H
#define CORED_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "cored.h"

#define EXIT_USAGE 2

int cmd_forward(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_adapt(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_detect(int argc, char **argv);
int cmd_protocol(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_faces(int argc, char **argv);

/* A growing list of strings (cli/media.c). */
typedef struct {
    char **v;
    int n, cap;
} cli_strlist;
int cli_strlist_push(cli_strlist *l, const char *s); /* -1 when out of memory */
void cli_strlist_free(cli_strlist *l);

/* Files that are neither: how many, and the first one met. */
typedef struct {
    int n;
    char example[4096];
} cli_media_others;

/* Appends the files under dir whose kind (cored_media_kind_of: 1u << CORED_MEDIA_IMAGE,
   1u << CORED_MEDIA_VIDEO) is in `kinds`, recursively, each folder's entries in bytewise
   order, hidden entries skipped, a symbolic-link loop entered once; the other files are
   counted in others (may be NULL). -1 (errno set) when a folder cannot be read. */
int cli_media_walk(cli_strlist *out, const char *dir, unsigned kinds, cli_media_others *others);
/* CORED_FACE_MODEL_DEFAULT where it is: relative to the working folder, else to the folder
   of the cored executable (or its parent); the relative path when neither has it. */
const char *cli_face_model_default(void);

/* Prints "cored: error: <msg>" and the hint, if any, to stderr. */
void cli_print_error(const cored_error *err);
/* Prints "cored <cmd>: <msg>" plus "see 'cored <cmd> --help'" and returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing of an option value; on failure prints a usage error naming the
   option and returns -1. */
int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out);
int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
int cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out);

/* getopt_long with the error reporting of this tool: returns the option, -1 at the end,
   or '?' after printing a usage error for an unknown option or a missing value. Resets
   getopt's state on the first call for a new argv. */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* Installs the stderr log sink used by every command (warnings and notes of the library). */
void cli_install_logger(int quiet);

/* Standard output: commands flush it through cli_flush_stdout (-1 when a write failed: the
   disk is full, the pipe or the descriptor closed), and main ends every command with
   cli_exit, which flushes it once more and turns any failed write into exit status 1 with
   a message naming standard output and the system's reason. */
int cli_flush_stdout(void);
int cli_exit(int rc);

#endif
