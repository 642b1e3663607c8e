/* The distributed layer of dist.h: Open MPI when built with CORED_MPI, else one process. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "dist/dist.h"

#ifdef CORED_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
#ifdef CORED_MPI
static int g_mpi = 0;
/* The two stages of the overlapped gradient sum run on their own communicators, so that
   their non-blocking collectives keep one order on every rank whatever else runs. */
static MPI_Comm g_comm_spread = MPI_COMM_NULL, g_comm_gather = MPI_COMM_NULL;
#endif
static cored_dist_stats g_stats;

int cored_dist_built(void)
{
#ifdef CORED_MPI
    return 1;
#else
    return 0;
#endif
}

int cored_dist_rank(void) { return g_rank; }
int cored_dist_size(void) { return g_size; }
cored_dist_stats cored_dist_counters(void) { return g_stats; }

int cored_dist_init(int *argc, char ***argv)
{
#ifdef CORED_MPI
    if (g_mpi) return 0;
    /* only under mpirun: a plain `cored ...` never starts MPI (no singleton start-up) */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK")) return 0;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "cored: cannot join the MPI job (MPI_Init_thread failed)\n");
        return -1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm_dup(MPI_COMM_WORLD, &g_comm_spread);
    MPI_Comm_dup(MPI_COMM_WORLD, &g_comm_gather);
    g_mpi = 1;
#else
    (void)argc, (void)argv;
    if (getenv("OMPI_COMM_WORLD_SIZE") && atoi(getenv("OMPI_COMM_WORLD_SIZE")) > 1 &&
        !getenv("CORED_DIST_QUIET")) {
        fprintf(stderr, "cored: started by mpirun with %s ranks, but this cored was built without MPI "
                        "(every rank would run the whole job alone): rebuild with make MPI=1\n",
                getenv("OMPI_COMM_WORLD_SIZE"));
        return -1;
    }
#endif
    return 0;
}

void cored_dist_finalize(void)
{
#ifdef CORED_MPI
    if (g_mpi) {
        MPI_Comm_free(&g_comm_spread);
        MPI_Comm_free(&g_comm_gather);
        MPI_Finalize();
    }
    g_mpi = 0;
#endif
}

_Noreturn void cored_dist_abort(int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cored: rank %d of %d: %s\n", g_rank, g_size, msg);
    fflush(stderr);
#ifdef CORED_MPI
    if (g_mpi) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
    exit(code ? code : 1);
}

#ifdef CORED_MPI
/* The fixed-order sum: chunk c of the vector goes to rank c (MPI_Alltoallv), which adds the
   ranks' copies in rank order, and every rank gathers the summed chunks (MPI_Allgatherv).
   The traffic per rank is that of a ring all-reduce, 2 (N-1)/N of the vector. */
#define MAX_RANKS 4096

/* The counts of the fixed-order sum of n elements over N ranks: chunk r of the vector
   (cored_shard_range) goes to rank r, which receives its chunk [*lo, *lo + *mine) from every
   rank, in rank order. */
static void chunk_plan(int n, int *sc, int *sd, int *rc, int *rd, int *lo, int *mine)
{
    const int N = g_size;
    int hi;
    cored_shard_range(n, g_rank, N, lo, &hi);
    *mine = hi - *lo;
    for (int r = 0; r < N; r++) {
        int a, b;
        cored_shard_range(n, r, N, &a, &b);
        sc[r] = b - a, sd[r] = a;         /* chunk r of my vector to rank r */
        rc[r] = *mine, rd[r] = r * *mine; /* my chunk from every rank, in rank order */
    }
}

/* out[i] = parts[0][i] + parts[1][i] + ... in rank order. */
static void add_in_rank_order(void *out, const void *parts, int mine, int is_double)
{
    const int N = g_size;
    if (is_double) {
        double *o = out;
        const double *b = parts;
        for (int i = 0; i < mine; i++) {
            double s = b[i];
            for (int r = 1; r < N; r++) s += b[(size_t)r * mine + i];
            o[i] = s;
        }
    } else {
        float *o = out;
        const float *b = parts;
        for (int i = 0; i < mine; i++) {
            float s = b[i];
            for (int r = 1; r < N; r++) s += b[(size_t)r * mine + i];
            o[i] = s;
        }
    }
}

static void sum_fixed(void *v, size_t n, size_t elem, MPI_Datatype type, int is_double)
{
    static int sc[MAX_RANKS], sd[MAX_RANKS], rc[MAX_RANKS], rd[MAX_RANKS];
    if (g_size > MAX_RANKS) cored_dist_abort(70, "at most %d ranks", MAX_RANKS);
    if (n > (size_t)1 << 30) { /* int counts: in pieces */
        size_t half = n / 2;
        sum_fixed(v, half, elem, type, is_double);
        sum_fixed((char *)v + half * elem, n - half, elem, type, is_double);
        return;
    }
    int lo, mine;
    chunk_plan((int)n, sc, sd, rc, rd, &lo, &mine);
    void *buf = malloc((size_t)(mine > 0 ? mine : 1) * g_size * elem);
    if (!buf) cored_dist_abort(71, "cannot allocate %zu bytes for an all-reduce", (size_t)mine * g_size * elem);
    MPI_Alltoallv(v, sc, sd, type, buf, rc, rd, type, MPI_COMM_WORLD);
    add_in_rank_order((char *)v + (size_t)lo * elem, buf, mine, is_double);
    free(buf);
    MPI_Allgatherv(MPI_IN_PLACE, 0, type, v, sc, sd, type, MPI_COMM_WORLD);
}
#endif

static void count(double t0, size_t bytes)
{
    g_stats.seconds += cored_now() - t0;
    g_stats.bytes += bytes;
    g_stats.calls++;
}

void cored_dist_sum_f(float *v, size_t n)
{
#ifdef CORED_MPI
    if (g_size > 1 && n) {
        double t0 = cored_now();
        sum_fixed(v, n, sizeof(float), MPI_FLOAT, 0);
        count(t0, n * sizeof(float));
    }
#else
    (void)v, (void)n, (void)count;
#endif
}

void cored_dist_sum_d(double *v, size_t n)
{
#ifdef CORED_MPI
    if (g_size > 1 && n) {
        double t0 = cored_now();
        sum_fixed(v, n, sizeof(double), MPI_DOUBLE, 1);
        count(t0, n * sizeof(double));
    }
#else
    (void)v, (void)n;
#endif
}

size_t cored_dist_allgather(void *out, const void *mine, size_t n_mine, size_t elem)
{
#ifdef CORED_MPI
    if (g_size > 1) {
        static int counts[MAX_RANKS], displs[MAX_RANKS];
        double t0 = cored_now();
        size_t bytes = n_mine * elem;
        if (bytes > (size_t)1 << 30) cored_dist_abort(70, "allgather of %zu bytes from one rank", bytes);
        int mb = (int)bytes;
        MPI_Allgather(&mb, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
        size_t total = 0;
        for (int r = 0; r < g_size; r++) {
            if (total + (size_t)counts[r] > (size_t)1 << 30) cored_dist_abort(70, "allgather of more than 1 GiB");
            displs[r] = (int)total;
            total += (size_t)counts[r];
        }
        /* a copy: mine may overlap out */
        void *tmp = malloc(bytes ? bytes : 1);
        if (!tmp) cored_dist_abort(71, "cannot allocate %zu bytes for an allgather", bytes);
        if (bytes) memcpy(tmp, mine, bytes);
        MPI_Allgatherv(tmp, mb, MPI_BYTE, out, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
        free(tmp);
        count(t0, total);
        return total / elem;
    }
#endif
    if (out != mine && n_mine) memmove(out, mine, n_mine * elem);
    return n_mine;
}

void cored_dist_max_i(int *v, size_t n)
{
#ifdef CORED_MPI
    if (g_size > 1 && n) {
        double t0 = cored_now();
        MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        count(t0, n * sizeof(int));
    }
#else
    (void)v, (void)n;
#endif
}

void cored_dist_bcast(void *buf, size_t bytes, int root)
{
#ifdef CORED_MPI
    if (g_size > 1 && bytes) {
        double t0 = cored_now();
        MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD);
        count(t0, bytes);
    }
#else
    (void)buf, (void)bytes, (void)root;
#endif
}

void cored_dist_barrier(void)
{
#ifdef CORED_MPI
    if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

/* ---------------------------------------------------------------- overlapped sums */

enum { B_IDLE, B_SPREADING, B_SUMMED, B_GATHERING, B_DONE };

typedef struct {
    size_t lo, n; /* the bucket's elements of the vector */
    int state;
#ifdef CORED_MPI
    int *plan; /* sc, sd, rc, rd of chunk_plan: 4 N counts */
    int clo, mine;
    float *buf;
    MPI_Request spread, gather;
#endif
} bucket;

struct cored_dist_reducer {
    size_t bucket_floats;
    float *v;
    size_t n;
    bucket *b;
    int nb;
    int spread, gathered; /* buckets whose first, second stage has started (in order) */
};

static void free_buckets(cored_dist_reducer *r)
{
#ifdef CORED_MPI
    for (int k = 0; k < r->nb; k++) free(r->b[k].plan), free(r->b[k].buf);
#endif
    free(r->b);
    r->b = NULL;
    r->nb = 0;
}

cored_dist_reducer *cored_dist_reducer_new(size_t bucket_floats)
{
    cored_dist_reducer *r = calloc(1, sizeof *r);
    if (r) r->bucket_floats = bucket_floats < 1024 ? 1024 : bucket_floats > (1u << 28) ? (1u << 28) : bucket_floats;
    return r;
}

void cored_dist_reducer_free(cored_dist_reducer *r)
{
    if (!r) return;
    free_buckets(r);
    free(r);
}

#ifdef CORED_MPI
/* Tests the buckets in flight, sums those whose chunks have all arrived and starts their
   second stage, in bucket order. */
static void progress(cored_dist_reducer *r, int wait)
{
    for (int k = r->gathered; k < r->spread; k++) {
        bucket *b = &r->b[k];
        if (b->state != B_SPREADING) continue;
        int flag = 1;
        if (wait)
            MPI_Wait(&b->spread, MPI_STATUS_IGNORE);
        else
            MPI_Test(&b->spread, &flag, MPI_STATUS_IGNORE);
        if (!flag) continue;
        add_in_rank_order(r->v + b->lo + b->clo, b->buf, b->mine, 0);
        b->state = B_SUMMED;
    }
    while (r->gathered < r->spread && r->b[r->gathered].state == B_SUMMED) {
        bucket *b = &r->b[r->gathered++];
        const int N = g_size;
        MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, r->v + b->lo, b->plan, b->plan + N, MPI_FLOAT, g_comm_gather,
                        &b->gather);
        b->state = B_GATHERING;
    }
    for (int k = 0; k < r->gathered && !wait; k++)
        if (r->b[k].state == B_GATHERING) {
            int flag;
            MPI_Test(&r->b[k].gather, &flag, MPI_STATUS_IGNORE);
            if (flag) r->b[k].state = B_DONE;
        }
}
#endif

int cored_dist_reducer_begin(cored_dist_reducer *r, float *v, size_t n)
{
    r->v = v;
    r->spread = r->gathered = 0;
    if (g_size < 2) return 0;
    if (n != r->n || !r->b) {
        free_buckets(r);
        r->n = n;
        int nb = (int)((n + r->bucket_floats - 1) / r->bucket_floats);
        if (!(r->b = calloc((size_t)(nb ? nb : 1), sizeof *r->b))) return -1;
        r->nb = nb;
        for (int k = 0; k < nb; k++) {
            bucket *b = &r->b[k];
            size_t hi = n - (size_t)k * r->bucket_floats;
            b->lo = hi > r->bucket_floats ? hi - r->bucket_floats : 0;
            b->n = hi - b->lo;
#ifdef CORED_MPI
            const int N = g_size;
            if (!(b->plan = malloc(sizeof(int) * 4 * (size_t)N))) return -1;
            chunk_plan((int)b->n, b->plan, b->plan + N, b->plan + 2 * N, b->plan + 3 * N, &b->clo, &b->mine);
            if (!(b->buf = malloc(sizeof(float) * (size_t)(b->mine > 0 ? b->mine : 1) * N))) return -1;
#endif
        }
    }
    for (int k = 0; k < r->nb; k++) r->b[k].state = B_IDLE;
    return 0;
}

void cored_dist_reducer_ready(cored_dist_reducer *r, size_t from)
{
#ifdef CORED_MPI
    if (g_size < 2 || !r->nb) return;
    double t0 = cored_now();
    const int N = g_size;
    /* the lowest bucket (the first layers' gradients, final when the backward pass ends) is
       summed by the blocking collectives in cored_dist_reducer_end */
    while (r->spread < r->nb - 1 && r->b[r->spread].lo >= from) {
        bucket *b = &r->b[r->spread++];
        MPI_Ialltoallv(r->v + b->lo, b->plan, b->plan + N, MPI_FLOAT, b->buf, b->plan + 2 * N, b->plan + 3 * N,
                       MPI_FLOAT, g_comm_spread, &b->spread);
        b->state = B_SPREADING;
    }
    progress(r, 0);
    g_stats.seconds += cored_now() - t0;
#else
    (void)r, (void)from;
#endif
}

void cored_dist_reducer_end(cored_dist_reducer *r)
{
#ifdef CORED_MPI
    if (g_size < 2 || !r->nb) return;
    for (int k = 0; k < r->spread; k++) g_stats.early_bytes += r->b[k].n * sizeof(float);
    cored_dist_reducer_ready(r, 0);
    double t0 = cored_now();
    const bucket *last = &r->b[r->nb - 1];
    sum_fixed(r->v + last->lo, last->n, sizeof(float), MPI_FLOAT, 0);
    progress(r, 1);
    for (int k = 0; k < r->nb; k++)
        if (r->b[k].state == B_GATHERING) MPI_Wait(&r->b[k].gather, MPI_STATUS_IGNORE);
    for (int k = 0; k < r->nb; k++) r->b[k].state = B_DONE;
    g_stats.seconds += cored_now() - t0;
    g_stats.bytes += r->n * sizeof(float);
    g_stats.calls++;
#else
    (void)r;
#endif
}
