/* The option system of every command; see opts.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"

#define HELP_COL 28
#define HELP_WIDTH 100

int opts_choice_index(const char *const *choices, const char *name)
{
    for (int i = 0; choices && choices[i]; i++)
        if (!strcmp(choices[i], name)) return i;
    return -1;
}

static void join_choices(char *buf, size_t n, const char *const *choices, const char *sep)
{
    buf[0] = 0;
    for (int i = 0; choices && choices[i]; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, n - used, "%s%s", i ? sep : "", choices[i]);
    }
}

/* The default as --help states it, "" for none. */
static void default_text(char *buf, size_t n, const opt_def *d)
{
    buf[0] = 0;
    if (d->flags & OPT_REQUIRED) {
        snprintf(buf, n, "required");
        return;
    }
    if (d->def) {
        snprintf(buf, n, "%s", d->def);
        return;
    }
    switch (d->type) {
    case OPT_INT: snprintf(buf, n, "%d", *(int *)d->dst); break;
    case OPT_U64: snprintf(buf, n, "%llu", (unsigned long long)*(uint64_t *)d->dst); break;
    case OPT_FLOAT: snprintf(buf, n, "%g", *(float *)d->dst); break;
    case OPT_DOUBLE: snprintf(buf, n, "%g", *(double *)d->dst); break;
    case OPT_STR:
        if (*(const char **)d->dst) snprintf(buf, n, "%s", *(const char **)d->dst);
        break;
    case OPT_CHOICE: {
        int k = *(int *)d->dst;
        if (k >= 0 && d->choices[k]) snprintf(buf, n, "%s", d->choices[k]);
        break;
    }
    case OPT_FLAG: break;
    }
}

/* Prints text from column HELP_COL on, wrapped at HELP_WIDTH; the cursor is at column col. */
static void wrap(const char *text, int col)
{
    if (col > HELP_COL - 1) {
        printf("\n");
        col = 0;
    }
    printf("%*s", HELP_COL - col, "");
    col = HELP_COL;
    const char *p = text;
    while (*p) {
        const char *sp = strchr(p, ' ');
        int len = sp ? (int)(sp - p) : (int)strlen(p);
        if (col > HELP_COL && col + 1 + len > HELP_WIDTH) {
            printf("\n%*s", HELP_COL, "");
            col = HELP_COL;
        } else if (col > HELP_COL) {
            printf(" ");
            col++;
        }
        printf("%.*s", len, p);
        col += len;
        p += len;
        while (*p == ' ') p++;
    }
    printf("\n");
}

static void print_lines(const char *prefix, const char *first, const char *text)
{
    const char *p = text;
    for (int i = 0; *p; i++) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        printf("%s%.*s\n", i ? prefix : first, len, p);
        p += len + (nl != NULL);
    }
}

void opts_help(const cli_doc *doc, const opt_def *defs, int n)
{
    char first[64], prefix[64];
    snprintf(first, sizeof first, "usage: cored %s ", doc->name);
    snprintf(prefix, sizeof prefix, "       cored %s ", doc->name);
    print_lines(prefix, first, doc->usage);
    printf("\n%s\n\noptions:\n", doc->about);
    for (int i = 0; i < n; i++) {
        const opt_def *d = &defs[i];
        char left[160], def[160], choices[256], text[1024];
        join_choices(choices, sizeof choices, d->choices, "|");
        const char *arg = d->type == OPT_CHOICE ? choices : d->arg ? d->arg : "X";
        int col = d->type == OPT_FLAG ? snprintf(left, sizeof left, "  --%s", d->name)
                                      : snprintf(left, sizeof left, "  --%s %s", d->name, arg);
        default_text(def, sizeof def, d);
        if (def[0] && !strcmp(def, "required"))
            snprintf(text, sizeof text, "%s (required)", d->help);
        else if (def[0])
            snprintf(text, sizeof text, "%s (default %s)", d->help, def);
        else
            snprintf(text, sizeof text, "%s", d->help);
        printf("%s", left);
        wrap(text, col);
    }
    printf("  -h, --help");
    wrap("this help", 12);
    if (doc->examples) {
        printf("\nexamples:\n");
        print_lines("  ", "  ", doc->examples);
    }
}

static int set_value(const char *cmd, const opt_def *d, const char *v)
{
    switch (d->type) {
    case OPT_FLAG: *(int *)d->dst = 1; return 0;
    case OPT_INT: return cli_int(cmd, d->name, v, (long)d->lo, (long)d->hi, d->dst) ? EXIT_USAGE : 0;
    case OPT_U64: return cli_u64(cmd, d->name, v, d->dst) ? EXIT_USAGE : 0;
    case OPT_FLOAT: return cli_float(cmd, d->name, v, d->lo, d->hi, d->dst) ? EXIT_USAGE : 0;
    case OPT_DOUBLE: {
        float f;
        if (cli_float(cmd, d->name, v, d->lo, d->hi, &f)) return EXIT_USAGE;
        *(double *)d->dst = strtod(v, NULL);
        return 0;
    }
    case OPT_STR:
        if (!v[0]) return cli_usage_error(cmd, "--%s needs a non-empty value", d->name);
        *(const char **)d->dst = v;
        return 0;
    case OPT_CHOICE: {
        int k = opts_choice_index(d->choices, v);
        if (k < 0) {
            char list[256];
            join_choices(list, sizeof list, d->choices, ", ");
            return cli_usage_error(cmd, "--%s must be one of %s, got '%s'", d->name, list, v);
        }
        *(int *)d->dst = k;
        return 0;
    }
    }
    return EXIT_USAGE;
}

int opts_parse(const cli_doc *doc, int argc, char **argv, const opt_def *defs, int n, char **pos, int max_pos,
               int *npos, unsigned char *given)
{
    const char *cmd = doc->name;
    struct option *lo = calloc((size_t)n + 2, sizeof *lo);
    unsigned char *seen = calloc((size_t)n + 1, 1);
    if (!lo || !seen) {
        free(lo);
        free(seen);
        fprintf(stderr, "cored %s: out of memory\n", cmd);
        return EXIT_USAGE;
    }
    for (int i = 0; i < n; i++)
        lo[i] = (struct option){defs[i].name, defs[i].type == OPT_FLAG ? no_argument : required_argument, 0, 1000 + i};
    lo[n] = (struct option){"help", no_argument, 0, 'h'};
    int c, rc = 0;
    if (npos) *npos = 0;
    while (!rc && (c = cli_getopt(cmd, argc, argv, "h", lo)) != -1) {
        if (c == 'h') {
            opts_help(doc, defs, n);
            rc = 1;
        } else if (c < 1000 || c >= 1000 + n) {
            rc = EXIT_USAGE;
        } else {
            seen[c - 1000] = 1;
            rc = set_value(cmd, &defs[c - 1000], optarg);
        }
    }
    for (int i = optind; !rc && i < argc; i++) {
        if (!pos || !npos)
            rc = cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        else if (*npos >= max_pos)
            rc = cli_usage_error(cmd, "too many arguments");
        else
            pos[(*npos)++] = argv[i];
    }
    int alone = 0;
    char instead[256] = "";
    for (int i = 0; i < n; i++) {
        alone |= seen[i] && (defs[i].flags & OPT_ALONE);
        if (defs[i].flags & OPT_ALONE) {
            size_t k = strlen(instead);
            snprintf(instead + k, sizeof instead - k, "%s--%s", k ? " or " : " (or ", defs[i].name);
        }
    }
    if (instead[0]) strncat(instead, ")", sizeof instead - strlen(instead) - 1);
    for (int i = 0; !rc && !alone && i < n; i++)
        if ((defs[i].flags & OPT_REQUIRED) && !seen[i])
            rc = cli_usage_error(cmd, "--%s is required%s", defs[i].name, instead);
    if (given) memcpy(given, seen, (size_t)n);
    free(lo);
    free(seen);
    return rc;
}

int opts_parse_one(const cli_doc *doc, int argc, char **argv, const opt_def *defs, int n, const char *what,
                   const char **arg)
{
    char **pos = malloc(sizeof *pos * (size_t)(argc > 0 ? argc : 1));
    if (!pos) {
        fprintf(stderr, "cored %s: out of memory\n", doc->name);
        return EXIT_USAGE;
    }
    int npos = 0, rc = opts_parse(doc, argc, argv, defs, n, pos, argc, &npos, NULL);
    if (!rc && npos != 1)
        rc = npos ? cli_usage_error(doc->name, "unexpected argument '%s'", pos[1])
                  : cli_usage_error(doc->name, "%s is required", what);
    if (!rc) *arg = pos[0];
    free(pos);
    return rc;
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
