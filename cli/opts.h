/*
 * Table-driven options shared by the training commands: one table gives getopt_long its
 * options, parses and range-checks every value, and prints --help with the defaults.
 */
#ifndef CORED_CLI_OPTS_H
#define CORED_CLI_OPTS_H

#include <stdint.h>

typedef enum { OPT_FLAG, OPT_INT, OPT_U64, OPT_FLOAT, OPT_STR, OPT_CHOICE } opt_type;

typedef struct {
    const char *name;     /* long option, without "--" */
    opt_type type;
    void *dst;            /* int*, uint64_t*, float*, const char**, int* (choice index) */
    double lo, hi;        /* range of numbers */
    const char *choices;  /* OPT_CHOICE: "a|b|c" */
    const char *arg;      /* value name in --help ("N", "DIR") */
    const char *help;
} opt_def;

/* Parses argv against defs (n of them). Positional arguments are stored in pos (up to
   max_pos; their count in *npos, NULL forbids them). Returns 0, 1 after --help was printed
   (usage() first, then the option list), or EXIT_USAGE after a usage error. */
int opts_parse(const char *cmd, int argc, char **argv, const opt_def *defs, int n, void (*usage)(void),
               char **pos, int max_pos, int *npos);
/* The same, also marking given[i] = 1 for every option that appeared (given has n bytes). */
int opts_parse_given(const char *cmd, int argc, char **argv, const opt_def *defs, int n,
                     void (*usage)(void), char **pos, int max_pos, int *npos, unsigned char *given);
/* Prints the option list with the current values of the destinations as defaults. */
void opts_help(const opt_def *defs, int n);

/* Splits a comma list in place into items (at most max); returns the count or -1. */
int opts_split(char *list, const char **items, int max);

#endif
