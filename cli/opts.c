/* Table-driven option parsing; see opts.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"

static int choice_index(const char *choices, const char *v)
{
    size_t lv = strlen(v);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == lv && !strncmp(p, v, l)) return i;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

static void choice_name(char *buf, size_t n, const char *choices, int idx)
{
    const char *p = choices;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) {
        snprintf(buf, n, "?");
        return;
    }
    const char *bar = strchr(p, '|');
    snprintf(buf, n, "%.*s", (int)(bar ? (size_t)(bar - p) : strlen(p)), p);
}

void opts_help(const opt_def *defs, int n)
{
    for (int i = 0; i < n; i++) {
        const opt_def *d = &defs[i];
        char left[64], def[96] = "";
        if (d->type == OPT_FLAG)
            snprintf(left, sizeof left, "--%s", d->name);
        else
            snprintf(left, sizeof left, "--%s %s", d->name, d->arg ? d->arg : "X");
        switch (d->type) {
        case OPT_INT: snprintf(def, sizeof def, " (default %d)", *(int *)d->dst); break;
        case OPT_U64: snprintf(def, sizeof def, " (default %llu)", (unsigned long long)*(uint64_t *)d->dst); break;
        case OPT_FLOAT: snprintf(def, sizeof def, " (default %g)", *(float *)d->dst); break;
        case OPT_STR:
            if (*(const char **)d->dst) snprintf(def, sizeof def, " (default %s)", *(const char **)d->dst);
            break;
        case OPT_CHOICE: {
            char c[32];
            choice_name(c, sizeof c, d->choices, *(int *)d->dst);
            snprintf(def, sizeof def, " (%s; default %s)", d->choices, c);
            break;
        }
        case OPT_FLAG: break;
        }
        printf("  %-24s %s%s\n", left, d->help, def);
    }
}

int opts_parse(const char *cmd, int argc, char **argv, const opt_def *defs, int n, void (*usage)(void),
               char **pos, int max_pos, int *npos)
{
    return opts_parse_given(cmd, argc, argv, defs, n, usage, pos, max_pos, npos, NULL);
}

int opts_parse_given(const char *cmd, int argc, char **argv, const opt_def *defs, int n,
                     void (*usage)(void), char **pos, int max_pos, int *npos, unsigned char *given)
{
    struct option *lo = calloc((size_t)n + 2, sizeof *lo);
    if (!lo) {
        fprintf(stderr, "cored %s: out of memory\n", cmd);
        return EXIT_USAGE;
    }
    for (int i = 0; i < n; i++)
        lo[i] = (struct option){defs[i].name, defs[i].type == OPT_FLAG ? no_argument : required_argument, 0, 1000 + i};
    lo[n] = (struct option){"help", no_argument, 0, 'h'};
    int c, rc = 0;
    if (npos) *npos = 0;
    while ((c = cli_getopt(cmd, argc, argv, "h", lo)) != -1) {
        if (c == 'h') {
            usage();
            printf("\noptions:\n");
            opts_help(defs, n);
            free(lo);
            return 1;
        }
        if (c < 1000 || c >= 1000 + n) {
            rc = EXIT_USAGE;
            break;
        }
        const opt_def *d = &defs[c - 1000];
        if (given) given[c - 1000] = 1;
        switch (d->type) {
        case OPT_FLAG: *(int *)d->dst = 1; break;
        case OPT_INT:
            if (cli_int(cmd, d->name, optarg, (long)d->lo, (long)d->hi, d->dst)) rc = EXIT_USAGE;
            break;
        case OPT_U64:
            if (cli_u64(cmd, d->name, optarg, d->dst)) rc = EXIT_USAGE;
            break;
        case OPT_FLOAT:
            if (cli_float(cmd, d->name, optarg, d->lo, d->hi, d->dst)) rc = EXIT_USAGE;
            break;
        case OPT_STR:
            if (!optarg[0]) rc = cli_usage_error(cmd, "--%s needs a non-empty value", d->name);
            *(const char **)d->dst = optarg;
            break;
        case OPT_CHOICE: {
            int k = choice_index(d->choices, optarg);
            if (k < 0)
                rc = cli_usage_error(cmd, "--%s must be one of %s, got '%s'", d->name, d->choices, optarg);
            else
                *(int *)d->dst = k;
            break;
        }
        }
        if (rc) break;
    }
    free(lo);
    if (rc) return rc;
    for (int i = optind; i < argc; i++) {
        if (!pos || !npos) return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        if (*npos >= max_pos) return cli_usage_error(cmd, "too many arguments");
        pos[(*npos)++] = argv[i];
    }
    return 0;
}

int opts_split(char *list, const char **items, int max)
{
    int n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max) return -1;
        items[n++] = tok;
    }
    return n;
}
