/* Test harness implementation; see harness.h. */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int test_failures, test_checks;
static char tmpdir[256];

/* CORED_TEST_ONLY=a,b runs only the tests named there (make test runs the thread-invariance
   tests again under other BLAS kernels that way). */
static int selected(const char *name)
{
    const char *only = getenv("CORED_TEST_ONLY");
    if (!only || !only[0]) return 1;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)); p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

void test_run(const char *name, void (*fn)(void))
{
    if (!selected(name)) return;
    int before = test_failures;
    fn();
    fprintf(stderr, "%s %s\n", test_failures == before ? "  ok  " : "  FAIL", name);
}

const char *test_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/cored-test-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return tmpdir;
}

int test_finish(void)
{
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    }
    fprintf(stderr, "%d checks, %d failed\n", test_checks, test_failures);
    return test_failures ? 1 : 0;
}

static int close_impl(const char *what, const float *got, const double *wd, const float *wf,
                      size_t n, double atol, double rtol)
{
    size_t worst = 0;
    double worst_excess = -1, worst_err = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double w = wd ? wd[i] : (double)wf[i];
        double e = fabs((double)got[i] - w);
        double excess = e - (atol + rtol * fabs(w));
        if (isnan(got[i]) != isnan(w)) excess = INFINITY;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
            worst_err = e;
        }
        if (excess > 0) ok = 0;
    }
    test_checks++;
    if (!ok) {
        test_failures++;
        fprintf(stderr, "  FAIL %s: element %zu of %zu: got %.9g want %.9g (|err| %.3g, atol %.1g rtol %.1g)\n",
                what, worst, n, (double)got[worst], wd ? wd[worst] : (double)wf[worst], worst_err,
                atol, rtol);
    }
    return ok;
}

int check_close_fd(const char *what, const float *got, const double *want, size_t n, double atol,
                   double rtol)
{
    return close_impl(what, got, want, NULL, n, atol, rtol);
}

int check_close_ff(const char *what, const float *got, const float *want, size_t n, double atol,
                   double rtol)
{
    return close_impl(what, got, NULL, want, n, atol, rtol);
}

double max_rel_error_fd(const float *got, const double *want, size_t n, double floor)
{
    double num = 0, den = floor;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (e > num) num = e;
        if (fabs(want[i]) > den) den = fabs(want[i]);
    }
    return num / den;
}
