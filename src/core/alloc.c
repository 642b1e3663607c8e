/*
 * Counted allocation. Every heap block of the library comes from here so that tests can
 * prove the training step allocates nothing after warm-up, and can make the k-th
 * allocation fail to exercise every error path (as SQLite's OOM tests do).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static _Atomic uint64_t n_allocs, n_frees, fail_countdown;

static int should_fail(void)
{
    uint64_t k = atomic_load(&fail_countdown);
    while (k > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &k, k - 1)) return k == 1;
    }
    return 0;
}

void *cored_alloc(size_t bytes)
{
    if (bytes == 0) bytes = 1;
    if (should_fail()) return NULL;
    size_t rounded = cored_align_up(bytes, 64);
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(64, rounded);
    if (p) atomic_fetch_add(&n_allocs, 1);
    return p;
}

void *cored_calloc(size_t count, size_t size)
{
    size_t bytes;
    if (cored_mul_ok(count, size, &bytes)) return NULL;
    void *p = cored_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void *cored_realloc(void *p, size_t bytes)
{
    if (bytes == 0) bytes = 1;
    if (should_fail()) return NULL;
    void *q = realloc(p, bytes);
    if (q && !p) atomic_fetch_add(&n_allocs, 1);
    return q;
}

void cored_free(void *p)
{
    if (!p) return;
    atomic_fetch_add(&n_frees, 1);
    free(p);
}

char *cored_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cored_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

cored_alloc_stats cored_alloc_counts(void)
{
    cored_alloc_stats s = {atomic_load(&n_allocs), atomic_load(&n_frees)};
    return s;
}

void cored_alloc_fail_at(uint64_t k) { atomic_store(&fail_countdown, k); }
