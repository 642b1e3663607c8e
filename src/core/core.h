/*
 * Internal core of libcored: error reporting, counted allocation, random numbers,
 * checked file I/O and logging. Included by every other module.
 */
#ifndef CORED_CORE_H
#define CORED_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cored.h"

/* ---------------------------------------------------------------- errors */

/* Fills err (when not NULL) and returns code, so callers write
   `return CORED_FAIL(err, CORED_E_IO, "%s: cannot open: %s", path, strerror(errno));` */
#define CORED_FAIL(err, code, ...) cored_error_set((err), (code), __FILE__, __LINE__, __VA_ARGS__)
int cored_error_set(cored_error *err, int code, const char *where, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Adds a hint to an error that is already set. */
void cored_error_hint(cored_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to the message of an error that is already set. */
void cored_error_prefix(cored_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A broken invariant of cored itself (never bad user input): prints and aborts. */
#define CORED_ASSERT(cond)                                                                 \
    do {                                                                                   \
        if (!(cond)) cored_assert_fail(#cond, __FILE__, __LINE__);                         \
    } while (0)
_Noreturn void cored_assert_fail(const char *expr, const char *file, int line);

/* ---------------------------------------------------------------- allocation */

/* All heap memory of the library goes through these, so tests can count allocations and
   inject failures. cored_alloc returns 64-byte aligned memory; cored_free is NULL-safe. */
void *cored_alloc(size_t bytes);
void *cored_calloc(size_t count, size_t size); /* zeroed, overflow-checked */
void *cored_realloc(void *p, size_t bytes);    /* not aligned beyond malloc's */
void cored_free(void *p);
char *cored_strdup(const char *s);

typedef struct {
    uint64_t allocs;    /* successful cored_alloc/calloc/realloc calls */
    uint64_t frees;
} cored_alloc_stats;
cored_alloc_stats cored_alloc_counts(void);
/* Test hook: the k-th allocation from now fails (k >= 1); 0 disables. */
void cored_alloc_fail_at(uint64_t k);

/* ---------------------------------------------------------------- random numbers */

/* PCG32 (O'Neill): 64-bit state, 64-bit stream selector. Small, serialisable, and
   streams can be derived from (seed, a, b, c) so that a random decision depends only on
   what it is about (e.g. sample index and epoch), not on how many draws came before. */
typedef struct {
    uint64_t state;
    uint64_t inc;
} cored_rng;

void cored_rng_seed(cored_rng *r, uint64_t seed, uint64_t stream);
/* A stream that is a pure function of (seed, a, b, c). */
void cored_rng_derive(cored_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint32_t cored_rng_u32(cored_rng *r);
uint64_t cored_rng_u64(cored_rng *r);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float cored_rng_uniform(cored_rng *r);
double cored_rng_uniform_d(cored_rng *r);
/* Uniform integer in [0, n), unbiased. n >= 1. */
uint32_t cored_rng_below(cored_rng *r, uint32_t n);
double cored_rng_normal(cored_rng *r);
double cored_rng_gamma(cored_rng *r, double shape); /* shape > 0, scale 1 */
double cored_rng_beta(cored_rng *r, double a, double b);
/* Fisher-Yates permutation of 0..n-1 into perm. */
void cored_rng_permutation(cored_rng *r, uint32_t *perm, uint32_t n);
/* A 64-bit mix of several words (splitmix64 finaliser chain). */
uint64_t cored_hash64(uint64_t a, uint64_t b);

/* ---------------------------------------------------------------- files */

/* Reads a whole regular file of at most max_bytes into a fresh buffer (caller frees with
   cored_free). A NUL byte is appended (not counted in *len). */
int cored_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len,
                    cored_error *err);

/* Atomic replacement of `path`: writes to a temporary file in the same folder, fsyncs it,
   renames it over `path` and fsyncs the folder. On any failure the temporary file is
   removed and `path` is untouched. The writer callback receives the open stream and
   `path`, which its error messages name. */
typedef int (*cored_write_fn)(FILE *f, const char *path, void *user, cored_error *err);
int cored_write_atomic(const char *path, cored_write_fn fn, void *user, cored_error *err);
/* Removes temporaries left in `dir` by an interrupted cored_write_atomic of `basename`. */
void cored_clean_stale_temps(const char *dir, const char *basename);

/* fwrite that reports a failure (disk full, ...) as an error naming path. */
int cored_fwrite_all(FILE *f, const void *data, size_t bytes, const char *path, cored_error *err);
/* Appends bytes to `path` (created when missing) and fsyncs it; a failure names path and
   the system's reason. */
int cored_append_file(const char *path, const void *data, size_t bytes, cored_error *err);

/* out = a + "/" + b; -1 (out holds a truncated path) when it does not fit in n. */
int cored_path_join(char *out, size_t n, const char *a, const char *b);

/* Creates a directory and its parents (mode 0777 & umask); existing ones are fine. */
int cored_mkdir_p(const char *path, cored_error *err);
int cored_is_dir(const char *path);
int cored_is_file(const char *path);

/* ---------------------------------------------------------------- path safety */

/* What a path is to a command (paths.c). */
typedef enum {
    CORED_PATH_INPUT,        /* a file it reads */
    CORED_PATH_DATA,         /* a data root in the CoReD layout: its task folders are read */
    CORED_PATH_SOURCES,      /* a folder every image of which is read (synth --real) */
    CORED_PATH_OUTPUT,       /* a file it writes, replaces or deletes */
    CORED_PATH_OUTPUT_DIR,   /* a folder it writes files into */
    CORED_PATH_REPLACED_DIR  /* a folder it replaces as a whole */
} cored_path_role;

typedef struct {
    const char *path;        /* NULL or "" is skipped */
    const char *what;        /* how the user named it, for messages: "--from", "run file" */
    cored_path_role role;
} cored_path_use;

/* The rule every command applies before it writes anything. Refuses (CORED_E_ARG, naming
   both paths) an output that is the same file as an input (device and inode: --force would
   delete it, a write would replace it), an output inside a data or source folder where
   cored reads (a file directly in a data root is not: the index reads only task folders;
   the pack caches live there), and an input inside a folder the command replaces. Paths
   are compared resolved (links, "..", paths that do not exist yet); a path that cannot be
   resolved is left for the command to report. */
int cored_paths_check(const cored_path_use *uses, int n, cored_error *err);

/* Takes the lock of a folder that one run writes (an advisory flock on DIR/.cored.lock,
   created when missing, which records the holder's pid); *fd receives the lock for
   cored_dir_unlock. Held by another process: CORED_E_BUSY naming the folder and that pid.
   The kernel releases it when the process ends, kill -9 included. A file system without
   locks: a warning (cored_log), *fd = -1 and CORED_OK. */
int cored_dir_lock(const char *dir, int *fd, cored_error *err);
void cored_dir_unlock(int fd); /* -1 is a no-op */

/* ---------------------------------------------------------------- strings */

/* A growing string; a failed allocation makes it sticky-failed (oom) instead of
   truncating. Starts zeroed; cored_sb_release frees it. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} cored_sb;

void cored_sb_printf(cored_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends one CSV field (RFC 4180): the formatted text, in double quotes with every quote
   doubled when it holds a comma, a quote, a CR or a LF. */
void cored_sb_csv(cored_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cored_sb_release(cored_sb *b);

/* ---------------------------------------------------------------- logging */

void cored_log(cored_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic clock in seconds. */
double cored_now(void);

/* ---------------------------------------------------------------- small helpers */

/* Shard [lo, hi) of n items for part r of `parts`: r*n/parts .. (r+1)*n/parts (data
   parallel runs: the images of a batch per rank, a vector per rank in an all-reduce). The
   last part is never empty when n >= 1. */
static inline void cored_shard_range(int n, int r, int parts, int *lo, int *hi)
{
    *lo = (int)((long long)n * r / parts);
    *hi = (int)((long long)n * (r + 1) / parts);
}
static inline size_t cored_align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }
/* a*b with overflow check; returns 0 and sets *out on success, -1 on overflow. */
static inline int cored_mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

#endif
