/*
 * The option system of every command: a table of options gives getopt_long its options,
 * parses and range-checks every value, checks the required ones and prints --help in one
 * layout (usage, what the command does, the options with their defaults, examples).
 */
#ifndef CORED_CLI_OPTS_H
#define CORED_CLI_OPTS_H

#include <stdint.h>

typedef enum { OPT_FLAG, OPT_INT, OPT_U64, OPT_FLOAT, OPT_DOUBLE, OPT_STR, OPT_CHOICE } opt_type;

enum {
    OPT_REQUIRED = 1, /* must be given (unless an OPT_ALONE option is) */
    OPT_ALONE = 2     /* stands for the required options (--resume RUN) */
};

typedef struct {
    const char *name;            /* long option, without "--" */
    opt_type type;
    void *dst;                   /* int* (flag, int, choice index), uint64_t*, float*, double*,
                                    const char** */
    double lo, hi;               /* range of numbers */
    const char *const *choices;  /* OPT_CHOICE: the names by index, NULL-terminated */
    const char *arg;             /* value name in --help ("N", "DIR"); choices: their list */
    const char *help;
    const char *def;             /* the default as --help states it when it is not the
                                    destination's value ("all cores"); "" states none */
    unsigned flags;              /* OPT_REQUIRED, OPT_ALONE */
} opt_def;

/* What --help says about a command besides its options. */
typedef struct {
    const char *name;     /* "train" */
    const char *usage;    /* argument synopses, one per line, without "cored <name> " */
    const char *about;    /* what the command does (lines of at most 90 characters) */
    const char *examples; /* example command lines, one per line (two or three) */
} cli_doc;

/* Parses argv against defs (n of them). Positional arguments go to pos (at most max_pos;
   their count in *npos; pos NULL forbids them). given, when not NULL, receives 1 for every
   option that appeared (n bytes). Returns 0, 1 after --help was printed, or EXIT_USAGE
   after a usage error (printed). */
int opts_parse(const cli_doc *doc, int argc, char **argv, const opt_def *defs, int n, char **pos, int max_pos,
               int *npos, unsigned char *given);
/* opts_parse for a command that takes exactly one positional argument (*arg); what names it
   in the usage error when it is missing ("the data folder DIR"). */
int opts_parse_one(const cli_doc *doc, int argc, char **argv, const opt_def *defs, int n, const char *what,
                   const char **arg);
/* Prints --help: usage, about, the options with their defaults, the examples. */
void opts_help(const cli_doc *doc, const opt_def *defs, int n);

/* Index of name in a NULL-terminated list of names, or -1. */
int opts_choice_index(const char *const *choices, const char *name);

/* Splits a comma list in place into items (at most max); returns the count or -1. */
int opts_split(char *list, const char **items, int max);

#endif
