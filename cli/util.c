/* Shared helpers of the subcommands: error printing, strict option parsing, logging. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_print_error(const cored_error *err)
{
    fprintf(stderr, "cored: error: %s\n", err->msg[0] ? err->msg : cored_status_str(err->code));
    if (err->hint[0]) fprintf(stderr, "  hint: %s\n", err->hint);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cored %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nsee 'cored %s --help'\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_usage_error(cmd, "--%s expects an integer in %ld..%ld, got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        cli_usage_error(cmd, "--%s expects a non-negative integer, got '%s'", opt, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_usage_error(cmd, "--%s expects a number in %g..%g, got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    static char **last_argv;
    if (argv != last_argv) {
        last_argv = argv;
        optind = 0; /* glibc: full reinitialisation */
    }
    opterr = 0;
    char fmt[64];
    snprintf(fmt, sizeof fmt, ":%s", shortopts);
    int c = getopt_long(argc, argv, fmt, longopts, NULL);
    if (c == '?') {
        if (optopt)
            cli_usage_error(cmd, "unknown option '-%c'", optopt);
        else
            cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        return '?';
    }
    if (c == ':') {
        cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        return '?';
    }
    return c;
}

static void log_stderr(cored_log_level level, const char *msg, void *user)
{
    int quiet = user != NULL;
    if (quiet && level >= CORED_LOG_INFO) return;
    if (level == CORED_LOG_DEBUG) return;
    const char *tag = level == CORED_LOG_ERROR ? "error: " : level == CORED_LOG_WARN ? "warning: " : "";
    fprintf(stderr, "cored: %s%s\n", tag, msg);
}

void cli_install_logger(int quiet) { cored_set_log(log_stderr, quiet ? (void *)1 : NULL); }

/* errno of the first failed write on standard output; 0 while none failed, -1 when it
   failed without saying why (inside an earlier printf). */
static int stdout_errno;

int cli_flush_stdout(void)
{
    errno = 0;
    int bad = fflush(stdout) != 0 || ferror(stdout);
    if (bad && !stdout_errno) stdout_errno = errno ? errno : -1;
    return bad ? -1 : 0;
}

int cli_exit(int rc)
{
    if (cli_flush_stdout() == 0) return rc;
    if (stdout_errno > 0)
        fprintf(stderr, "cored: error: standard output: write failed: %s\n", strerror(stdout_errno));
    else
        fprintf(stderr, "cored: error: standard output: write failed\n");
    return rc ? rc : 1;
}
