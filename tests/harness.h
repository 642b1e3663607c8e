/*
 * A small test harness: CHECK records a failure and goes on, every test binary exits
 * non-zero when anything failed. Tolerance checks report the largest error and where.
 */
#ifndef CORED_TEST_HARNESS_H
#define CORED_TEST_HARNESS_H

#include <stddef.h>
#include <stdio.h>

extern int test_failures, test_checks;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        test_checks++;                                                                     \
        if (!(cond)) {                                                                     \
            test_failures++;                                                               \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
        }                                                                                  \
    } while (0)

#define CHECK_MSG(cond, ...)                                                               \
    do {                                                                                   \
        test_checks++;                                                                     \
        if (!(cond)) {                                                                     \
            test_failures++;                                                               \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

/* Runs one test function and prints its name and outcome. */
#define RUN(fn) test_run(#fn, fn)
void test_run(const char *name, void (*fn)(void));
/* Prints the summary; returns the process exit code. */
int test_finish(void);

/* Compares got (float) with want (double): every element must satisfy
   |got - want| <= atol + rtol * |want|. Prints the worst element on failure.
   Returns 1 when close. */
int check_close_fd(const char *what, const float *got, const double *want, size_t n, double atol,
                   double rtol);
int check_close_ff(const char *what, const float *got, const float *want, size_t n, double atol,
                   double rtol);
/* Relative error of the whole tensor: max|got - want| / max(max|want|, floor). */
double max_rel_error_fd(const float *got, const double *want, size_t n, double floor);

/* A fresh temporary folder for the test (removed by test_finish). */
const char *test_tmpdir(void);

#endif
