/*
 * Data-parallel runs across processes (docs/distributed.md): the ranks of an MPI job, the
 * collectives the trainer needs, and the job's abort. Built with Open MPI when the Makefile
 * found it (MPI=1, or detected: CORED_MPI defined for dist.c only); otherwise, and whenever
 * the process was not started by mpirun, one process of rank 0 in a job of size 1 where
 * every collective returns at once with the data as it is. So callers never test for MPI:
 * they call these, and a single process pays nothing.
 *
 * Every collective must be called by every rank in the same order with the same count
 * (the usual MPI rule). The sums run in a fixed order (rank 0 + rank 1 + ... per element,
 * whatever algorithm Open MPI would pick), so their result is the same bits on every rank
 * and from one run to the next.
 */
#ifndef CORED_DIST_H
#define CORED_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Joins the MPI job when the process was started by mpirun (Open MPI's environment is
   set); otherwise does nothing. Idempotent. 0, or -1 with a message on stderr. */
int cored_dist_init(int *argc, char ***argv);
void cored_dist_finalize(void);
int cored_dist_rank(void);
int cored_dist_size(void);
/* Whether this build has MPI support (make MPI=1 or detected). */
int cored_dist_built(void);

/* Element-wise sums over the ranks, in place, in rank order. */
void cored_dist_sum_f(float *v, size_t n);
void cored_dist_sum_d(double *v, size_t n);
/* Concatenation in rank order: every rank gives its n_mine elements of elem bytes (mine may
   lie inside out), and out receives every rank's, rank 0's first; returns their total
   number. out needs room for it (the callers know a bound: the data set's count). */
size_t cored_dist_allgather(void *out, const void *mine, size_t n_mine, size_t elem);
/* Element-wise maximum of ints over the ranks, in place. */
void cored_dist_max_i(int *v, size_t n);
/* root's bytes to every rank. */
void cored_dist_bcast(void *buf, size_t bytes, int root);
void cored_dist_barrier(void);
/* Prints "cored: rank R of N: <message>" on stderr and ends the whole job (MPI_Abort with
   code; without MPI: exit(code)). */
_Noreturn void cored_dist_abort(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The sum of a float vector over the ranks (as cored_dist_sum_f, to the same bits) started
   while the vector is still being written: in buckets of bucket_floats elements from its end,
   each one reduced by non-blocking collectives as soon as it is final, so that the traffic
   runs while the caller computes the rest (the gradients during the backward pass).
   begin (v, n) -> ready(from) whenever v[from..n) is final, from falling -> end: v holds the
   sums. Between begin and end the caller must not touch the final part of v. Every rank
   calls them for the same n; the calls to ready may differ between ranks. new: NULL when out
   of memory; begin: -1 when out of memory. */
typedef struct cored_dist_reducer cored_dist_reducer;
cored_dist_reducer *cored_dist_reducer_new(size_t bucket_floats);
int cored_dist_reducer_begin(cored_dist_reducer *r, float *v, size_t n);
void cored_dist_reducer_ready(cored_dist_reducer *r, size_t from);
void cored_dist_reducer_end(cored_dist_reducer *r);
void cored_dist_reducer_free(cored_dist_reducer *r);

/* Time spent in, and payload bytes given to, the collectives so far (bench, docs). */
typedef struct {
    double seconds;
    uint64_t bytes;
    uint64_t calls;
    uint64_t early_bytes; /* of the reducers' bytes, those whose sum started before
                             cored_dist_reducer_end (during the backward pass) */
} cored_dist_stats;
cored_dist_stats cored_dist_counters(void);

#endif
