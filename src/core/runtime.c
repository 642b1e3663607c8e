/*
 * Process-wide runtime settings: thread count (cored's OpenMP kernels and OpenBLAS use
 * the same number so they never oversubscribe the cores), the floating-point mode of those
 * threads, the log sink and the clock.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <omp.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "core.h"

static int n_threads, deterministic;
static cored_log_fn log_fn;
static void *log_user;

/* Flush-to-zero and denormals-are-zero (MXCSR bits 15 and 6) on the calling thread. */
static void flush_subnormals_here(void)
{
#if defined(__SSE__)
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

void cored_fp_mode_apply(void)
{
    flush_subnormals_here();
    #pragma omp parallel
    flush_subnormals_here();
}

int cored_set_threads(int n)
{
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    n_threads = n;
    /* with OpenMP OpenBLAS this also sets OpenMP's count; BLAS itself runs serially inside
       the kernels' fixed partitions (src/ops/gemm.c) */
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
    cored_fp_mode_apply();
    return n;
}

void cored_set_deterministic(int on) { deterministic = on; }

int cored_get_deterministic(void) { return deterministic; }

int cored_get_threads(void)
{
    if (n_threads == 0) cored_set_threads(0);
    return n_threads;
}

void cored_set_log(cored_log_fn fn, void *user)
{
    log_fn = fn;
    log_user = user;
}

void cored_log(cored_log_level level, const char *fmt, ...)
{
    if (!log_fn) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}

void cored_sb_printf(cored_sb *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->len + (size_t)w < b->cap) {
            b->len += (size_t)w;
            return;
        }
        size_t cap = (b->cap ? 2 * b->cap : 256) + (size_t)w;
        char *s = cored_realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

void cored_sb_csv(cored_sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *f = w >= 0 ? cored_alloc((size_t)w + 1) : NULL;
    if (!f) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(f, (size_t)w + 1, fmt, ap);
    va_end(ap);
    if (!strpbrk(f, ",\"\r\n")) {
        cored_sb_printf(b, "%s", f);
    } else {
        cored_sb_printf(b, "\"");
        for (const char *c = f; *c; c++) cored_sb_printf(b, *c == '"' ? "\"\"" : "%c", *c);
        cored_sb_printf(b, "\"");
    }
    cored_free(f);
}

void cored_sb_release(cored_sb *b)
{
    cored_free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

double cored_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
