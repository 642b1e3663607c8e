/*
 * The training loader: worker threads fill a ring of batch buffers ahead of the consumer,
 * which receives the batches of an epoch in order. Per epoch, the sample order is a
 * permutation drawn from (seed, epoch); the flip of each sample from (seed, epoch, sample);
 * CutMix from (seed, epoch, batch index). So batches do not depend on the thread count,
 * and cored_loader_start(l, epoch, k) replays from batch k exactly what an uninterrupted
 * epoch gives (resume). Semantics match torchvision's DataLoader(shuffle=True,
 * drop_last=False) over ImageFolder with Resize, RandomHorizontalFlip, ToTensor,
 * Normalize(0.5, 0.5), followed by CoReD's batch CutMix (docs/data.md).
 *
 * A worker claims the next batch whose ring slot is free and fills it completely: read,
 * decode, resize (or take the pixels from a memory-mapped pack), flip, CutMix, normalise.
 * Batch k uses ring slot k % ring, so the consumer must give batches back in the order it
 * received them. Memory: ring x min(batch, n) x size^2 x 3 x (4 + 1) bytes of batches, plus
 * one cored_decoder per worker (bounded by CORED_DECODER_KEEP_BYTES between images).
 * Workers run with every signal blocked.
 *
 * Corrupt images: a sample whose file cannot be decoded (CORED_E_FORMAT) is dropped from its
 * batch (the batch is shorter; the other samples and every random decision stay as they
 * were, because those depend only on indices), warned about once (naming the file),
 * counted, and skipped without re-reading in later epochs. A batch left empty is not
 * returned; an epoch started at batch 0 without a single good image is an error. With
 * opts.strict the first corrupt image is an error instead. A file that cannot be read
 * (CORED_E_IO, already retried once by the decoder) is always an error of the run: a good
 * image must not be dropped for good because of a transient failure.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "data/data.h"

#define TAG_SHUFFLE 0x5348554646ULL
#define TAG_FLIP 0x464C4950ULL
#define TAG_CUTMIX 0x4355544DULL
#define MAX_RING 64
#define MAX_THREADS 256

typedef enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD } slot_state;

typedef struct {
    cored_batch b;          /* first member: a cored_batch * given out is its slot */
    uint8_t *stage;         /* [batch, size, size, 3] decoded pixels (decode path only) */
    const uint8_t **src;    /* [batch] pixels of each kept sample (stage or pack) */
    uint8_t *flip, *marked; /* [batch] */
    int *partner;           /* [batch] */
    uint32_t *perm;         /* [batch] */
    int *gidx;              /* sharded: [batch] sample of each kept position of the whole batch */
    uint8_t *oflip, *omark; /* sharded: [batch] flipped / mixed of the shard's images */
    slot_state state;
    int number; /* batch index it holds or is being filled with */
    int rc;
    cored_error err;
} slot;

typedef struct {
    cored_loader *l;
    cored_decoder dec;
} worker;

struct cored_loader {
    const cored_dataset *ds;
    cored_loader_opts o;
    int n, batch, size, ring, nthreads, nbatches;
    int slot_images; /* min(batch, n): images a ring slot holds */
    size_t img; /* bytes per image: size*size*3 */
    float cut_p, cut_beta;
    float lut[256];
    cored_pack *pack;
    int *entry;               /* pack entry of each sample */
    atomic_uchar *bad;        /* per sample: known to be corrupt */
    atomic_uchar *verified;   /* per sample: pack pixels checked against their checksum */
    atomic_int skipped;
    atomic_int abort;         /* workers stop filling as soon as they can */
    uint32_t *order;
    slot *slots;
    worker *workers;
    pthread_t *threads;
    int nstarted;
    int sync_ready;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_ready;
    /* guarded by mu */
    int running, shutdown, epoch, first_batch, next_claim, next_consume, busy, failed;
    long delivered, attempted;
    cored_error fail_err;
};

/* ---------------------------------------------------------------- filling a batch */

static void mark_bad(cored_loader *l, int idx, const char *why)
{
    if (atomic_exchange(&l->bad[idx], 1) == 0) {
        atomic_fetch_add(&l->skipped, 1);
        cored_log(CORED_LOG_WARN, "skipped corrupt image: %s", why);
    }
}

static int batch_len(const cored_loader *l, int b)
{
    int start = b * l->batch;
    return l->n - start < l->batch ? l->n - start : l->batch;
}

/* The pixels of sample idx: the pack's (verified on first use) or decoded into dst. 0 with
   *px set; 1 when the image is bad and skipped (marked, unless --strict makes it an error:
   only an undecodable file is skipped, I/O errors and memory are the run's); else the error. */
static int sample_pixels(cored_loader *l, worker *w, int idx, uint8_t *dst, const uint8_t **px, cored_error *err)
{
    if (l->pack) {
        int e = l->entry[idx];
        cored_error e2;
        int rc = CORED_OK;
        if (cored_pack_is_bad(l->pack, e))
            rc = CORED_FAIL(&e2, CORED_E_FORMAT, "%s: could not be decoded when the pack was built",
                            cored_dataset_path(l->ds, idx));
        else if (!atomic_load(&l->verified[idx])) {
            rc = cored_pack_verify_entry(l->pack, e, &e2);
            if (rc == CORED_OK) atomic_store(&l->verified[idx], 1);
        }
        if (rc) {
            if (l->o.strict) {
                *err = e2;
                return rc;
            }
            mark_bad(l, idx, e2.msg);
            return 1;
        }
        *px = cored_pack_pixels(l->pack, e);
        return CORED_OK;
    }
    int rc = cored_decoder_read_rgb8(&w->dec, dst, l->size, cored_dataset_path(l->ds, idx), err);
    if (rc) {
        if (rc != CORED_E_FORMAT || l->o.strict) return rc;
        mark_bad(l, idx, err->msg);
        return 1;
    }
    *px = dst;
    return CORED_OK;
}

static int fill(cored_loader *l, worker *w, slot *s, int epoch, int b, cored_error *err)
{
    int n0 = batch_len(l, b), k = 0;
    for (int j = 0; j < n0; j++) {
        if (atomic_load(&l->abort)) return CORED_FAIL(err, CORED_E_STOPPED, "loader stopped");
        int idx = (int)l->order[b * l->batch + j];
        if (atomic_load(&l->bad[idx])) continue;
        const uint8_t *px;
        int rc = sample_pixels(l, w, idx, s->stage + (size_t)k * l->img, &px, err);
        if (rc == 1) continue;
        if (rc) return rc;
        int flip = 0;
        if (l->o.flip) {
            cored_rng r;
            cored_rng_derive(&r, l->o.seed, TAG_FLIP, (uint64_t)epoch, (uint64_t)idx);
            flip = (int)(cored_rng_u32(&r) >> 31);
        }
        s->src[k] = px;
        s->flip[k] = (uint8_t)flip;
        s->b.labels[k] = cored_dataset_label(l->ds, idx);
        s->b.index[k] = idx;
        k++;
    }
    s->b.n = k;
    s->b.global_n = k;
    s->b.epoch = epoch;
    s->b.batch_index = b;
    cored_cutmix_box box;
    cored_rng r;
    cored_rng_derive(&r, l->o.seed, TAG_CUTMIX, (uint64_t)epoch, (uint64_t)b);
    cored_cutmix_draw(&box, s->partner, s->marked, s->perm, s->b.labels, k, l->size, l->o.cutmix, l->cut_p,
                      l->cut_beta, &r);
    s->b.cutmix = box.fired; /* the draw leaves marked[] all zero when it did not fire */
    s->b.flipped = s->flip;
    s->b.mixed = s->marked;
    for (int i = 0; i < k; i++)
        cored_compose_sample(s->b.x + (size_t)i * l->img, i, s->src, s->flip, s->partner, s->marked, &box,
                             l->size, l->lut);
    return CORED_OK;
}

/* One shard of batch b (opts.shard_count > 1): the whole batch's kept samples, flips and
   CutMix draw as fill() makes them, decoding only the shard's images and their partners.
   An image found corrupt here is dropped from this shard only (the other ranks do not know
   it yet): on clean data the shards together are exactly fill()'s batch. */
static int fill_shard(cored_loader *l, worker *w, slot *s, int epoch, int b, cored_error *err)
{
    int n0 = batch_len(l, b), K = 0;
    for (int j = 0; j < n0; j++) {
        int idx = (int)l->order[b * l->batch + j];
        if (atomic_load(&l->bad[idx])) continue;
        s->gidx[K] = idx;
        s->b.labels[K] = cored_dataset_label(l->ds, idx); /* the whole batch's, for the draw */
        s->src[K] = NULL;
        int flip = 0;
        if (l->o.flip) {
            cored_rng r;
            cored_rng_derive(&r, l->o.seed, TAG_FLIP, (uint64_t)epoch, (uint64_t)idx);
            flip = (int)(cored_rng_u32(&r) >> 31);
        }
        s->flip[K] = (uint8_t)flip;
        K++;
    }
    cored_cutmix_box box;
    cored_rng r;
    cored_rng_derive(&r, l->o.seed, TAG_CUTMIX, (uint64_t)epoch, (uint64_t)b);
    cored_cutmix_draw(&box, s->partner, s->marked, s->perm, s->b.labels, K, l->size, l->o.cutmix, l->cut_p,
                      l->cut_beta, &r);
    int lo, hi;
    cored_shard_range(K, l->o.shard_rank, l->o.shard_count, &lo, &hi);
    /* pixels of the shard's images, then of the partners they take a box from */
    for (int pass = 0; pass < 2; pass++)
        for (int i = lo; i < hi; i++) {
            int j = pass == 0 ? i : s->partner[i];
            if (pass == 1 && !(box.fired && s->marked[i] && s->src[i])) continue;
            if (s->src[j]) continue;
            if (atomic_load(&l->abort)) return CORED_FAIL(err, CORED_E_STOPPED, "loader stopped");
            int idx = s->gidx[j];
            const uint8_t *px = NULL;
            int rc = sample_pixels(l, w, idx, s->stage + (size_t)j * l->img, &px, err);
            if (rc == 1) continue;
            if (rc) return rc;
            s->src[j] = px;
        }
    int k = 0;
    for (int i = lo; i < hi; i++) {
        if (!s->src[i]) continue;
        uint8_t mark = box.fired && s->marked[i] && s->src[s->partner[i]];
        uint8_t saved = s->marked[i];
        s->marked[i] = mark;
        cored_compose_sample(s->b.x + (size_t)k * l->img, i, s->src, s->flip, s->partner, s->marked, &box, l->size,
                             l->lut);
        s->marked[i] = saved;
        s->oflip[k] = s->flip[i];
        s->omark[k] = mark;
        s->b.index[k] = s->gidx[i];
        k++;
    }
    /* labels last: the draw above read the whole batch's from the same array */
    for (int i = 0; i < k; i++) s->b.labels[i] = cored_dataset_label(l->ds, s->b.index[i]);
    s->b.n = k;
    s->b.global_n = K;
    s->b.epoch = epoch;
    s->b.batch_index = b;
    s->b.cutmix = box.fired;
    s->b.flipped = s->oflip;
    s->b.mixed = s->omark;
    return CORED_OK;
}

static int claimable(const cored_loader *l)
{
    return l->running && !atomic_load(&l->abort) && l->next_claim < l->nbatches &&
           l->slots[l->next_claim % l->ring].state == SLOT_FREE;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    cored_loader *l = w->l;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->shutdown && !claimable(l)) pthread_cond_wait(&l->cv_work, &l->mu);
        if (l->shutdown) break;
        int b = l->next_claim++, epoch = l->epoch;
        slot *s = &l->slots[b % l->ring];
        s->state = SLOT_FILLING;
        s->number = b;
        l->busy++;
        pthread_mutex_unlock(&l->mu);
        int rc = l->o.shard_count > 1 ? fill_shard(l, w, s, epoch, b, &s->err) : fill(l, w, s, epoch, b, &s->err);
        pthread_mutex_lock(&l->mu);
        s->rc = rc;
        s->state = SLOT_READY;
        l->busy--;
        pthread_cond_broadcast(&l->cv_ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---------------------------------------------------------------- public */

static void stop_threads(cored_loader *l)
{
    if (!l->sync_ready) return;
    pthread_mutex_lock(&l->mu);
    l->shutdown = 1;
    atomic_store(&l->abort, 1);
    pthread_cond_broadcast(&l->cv_work);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->nstarted; t++) pthread_join(l->threads[t], NULL);
    l->nstarted = 0;
}

void cored_loader_free(cored_loader *l)
{
    if (!l) return;
    stop_threads(l);
    if (l->sync_ready) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv_work);
        pthread_cond_destroy(&l->cv_ready);
    }
    if (l->slots)
        for (int i = 0; i < l->ring; i++) {
            slot *s = &l->slots[i];
            cored_free(s->b.x);
            cored_free(s->b.labels);
            cored_free(s->b.index);
            cored_free(s->stage);
            cored_free((void *)s->src);
            cored_free(s->flip);
            cored_free(s->marked);
            cored_free(s->partner);
            cored_free(s->perm);
            cored_free(s->gidx);
            cored_free(s->oflip);
            cored_free(s->omark);
        }
    if (l->workers)
        for (int t = 0; t < l->nthreads; t++) cored_decoder_release(&l->workers[t].dec);
    cored_free(l->slots);
    cored_free(l->workers);
    cored_free(l->threads);
    cored_free(l->order);
    cored_free((void *)l->bad);
    cored_free((void *)l->verified);
    cored_free(l->entry);
    cored_pack_free(l->pack);
    cored_free(l);
}

static int check_opts(const cored_loader_opts *o, cored_error *err)
{
    if (o->batch < 1 || o->batch > CORED_MAX_LOADER_BATCH)
        return CORED_FAIL(err, CORED_E_ARG, "loader: batch must be in 1..%d (got %d)", CORED_MAX_LOADER_BATCH,
                          o->batch);
    if (o->size < 1 || o->size > CORED_MAX_MODEL_SIDE)
        return CORED_FAIL(err, CORED_E_ARG, "loader: size must be in 1..%d (got %d)", CORED_MAX_MODEL_SIDE,
                          o->size);
    if (o->threads < 0 || o->threads > MAX_THREADS)
        return CORED_FAIL(err, CORED_E_ARG, "loader: threads must be in 0..%d (got %d)", MAX_THREADS, o->threads);
    if (o->ring < 0 || o->ring > MAX_RING)
        return CORED_FAIL(err, CORED_E_ARG, "loader: ring must be in 0..%d (got %d)", MAX_RING, o->ring);
    if (o->shard_count < 0 || o->shard_count > 65536 || (o->shard_count > 1 && (o->shard_rank < 0 || o->shard_rank >= o->shard_count)))
        return CORED_FAIL(err, CORED_E_ARG, "loader: shard %d of %d", o->shard_rank, o->shard_count);
    if (o->cutmix != CORED_CUTMIX_NONE && o->cutmix != CORED_CUTMIX_OPPOSITE && o->cutmix != CORED_CUTMIX_SAME)
        return CORED_FAIL(err, CORED_E_ARG, "loader: unknown CutMix mode %d", (int)o->cutmix);
    if (!(o->cutmix_p >= 0.0f && o->cutmix_p <= 1.0f) || !(o->cutmix_beta >= 0.0f))
        return CORED_FAIL(err, CORED_E_ARG, "loader: CutMix probability must be in [0,1] and beta >= 0");
    return CORED_OK;
}

int cored_loader_create(cored_loader **out, const cored_dataset *ds, const cored_loader_opts *o,
                        cored_error *err)
{
    if (!out || !ds || !o) return CORED_FAIL(err, CORED_E_ARG, "cored_loader_create: NULL argument");
    int rc = check_opts(o, err);
    if (rc) return rc;
    if (cored_dataset_count(ds) < 1)
        return CORED_FAIL(err, CORED_E_ARG, "%s: the data set is empty", cored_dataset_describe(ds));
    cored_loader *l = cored_calloc(1, sizeof *l);
    if (!l) return CORED_FAIL(err, CORED_E_NOMEM, "loader: out of memory");
    l->ds = ds;
    l->o = *o;
    l->o.pack = NULL;
    l->n = cored_dataset_count(ds);
    l->batch = o->batch;
    l->size = o->size;
    l->ring = o->ring ? o->ring : 4;
    l->nthreads = o->threads ? o->threads : cored_get_threads();
    if (l->nthreads > MAX_THREADS) l->nthreads = MAX_THREADS;
    l->nbatches = (l->n + l->batch - 1) / l->batch;
    l->slot_images = l->batch < l->n ? l->batch : l->n;
    l->img = (size_t)l->size * l->size * 3;
    int same = o->cutmix == CORED_CUTMIX_SAME;
    l->cut_p = o->cutmix_p > 0.0f ? o->cutmix_p : same ? 0.5f : 0.2f;
    l->cut_beta = o->cutmix_beta > 0.0f ? o->cutmix_beta : same ? 1.0f : 0.5f;
    cored_normalize_lut(l->lut);
    atomic_init(&l->skipped, 0);
    atomic_init(&l->abort, 0);

    if (o->pack) {
        rc = cored_pack_open(&l->pack, o->pack, err);
        if (rc) goto fail;
        l->entry = cored_alloc((size_t)l->n * sizeof *l->entry);
        if (!l->entry) {
            rc = CORED_FAIL(err, CORED_E_NOMEM, "loader: out of memory");
            goto fail;
        }
        rc = cored_pack_match(l->entry, l->pack, ds, l->size, err);
        if (rc) goto fail;
    }
    l->bad = cored_calloc((size_t)l->n, sizeof *l->bad);
    l->verified = cored_calloc((size_t)l->n, sizeof *l->verified);
    l->order = cored_alloc((size_t)l->n * sizeof *l->order);
    l->slots = cored_calloc((size_t)l->ring, sizeof *l->slots);
    l->workers = cored_calloc((size_t)l->nthreads, sizeof *l->workers);
    l->threads = cored_calloc((size_t)l->nthreads, sizeof *l->threads);
    if (!l->bad || !l->verified || !l->order || !l->slots || !l->workers || !l->threads) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "loader: out of memory");
        goto fail;
    }
    size_t bsz = (size_t)l->slot_images;
    for (int i = 0; i < l->ring; i++) {
        slot *s = &l->slots[i];
        s->b.x = cored_alloc(bsz * l->img * sizeof(float));
        s->b.labels = cored_alloc(bsz * sizeof(int));
        s->b.index = cored_alloc(bsz * sizeof(int));
        s->stage = l->pack ? NULL : cored_alloc(bsz * l->img);
        s->src = cored_alloc(bsz * sizeof *s->src);
        s->flip = cored_alloc(bsz);
        s->marked = cored_alloc(bsz);
        s->partner = cored_alloc(bsz * sizeof(int));
        s->perm = cored_alloc(bsz * sizeof(uint32_t));
        if (l->o.shard_count > 1) {
            s->gidx = cored_alloc(bsz * sizeof(int));
            s->oflip = cored_alloc(bsz);
            s->omark = cored_alloc(bsz);
            if (!s->gidx || !s->oflip || !s->omark) {
                rc = CORED_FAIL(err, CORED_E_NOMEM, "loader: out of memory");
                goto fail;
            }
        }
        if (!s->b.x || !s->b.labels || !s->b.index || (!l->pack && !s->stage) || !s->src || !s->flip ||
            !s->marked || !s->partner || !s->perm) {
            rc = CORED_FAIL(err, CORED_E_NOMEM, "loader: cannot allocate a ring of %d batches of %d images",
                            l->ring, l->slot_images);
            goto fail;
        }
        s->state = SLOT_FREE;
    }
    if (pthread_mutex_init(&l->mu, NULL) != 0) {
        rc = CORED_FAIL(err, CORED_E_INTERNAL, "loader: cannot create a mutex");
        goto fail;
    }
    if (pthread_cond_init(&l->cv_work, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        rc = CORED_FAIL(err, CORED_E_INTERNAL, "loader: cannot create a condition variable");
        goto fail;
    }
    if (pthread_cond_init(&l->cv_ready, NULL) != 0) {
        pthread_cond_destroy(&l->cv_work);
        pthread_mutex_destroy(&l->mu);
        rc = CORED_FAIL(err, CORED_E_INTERNAL, "loader: cannot create a condition variable");
        goto fail;
    }
    l->sync_ready = 1;
    /* Workers inherit the signal mask: with every signal blocked there, SIGINT and friends
       reach the caller's threads (the trainer's stop flag) and never interrupt a read. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int t = 0; t < l->nthreads; t++) {
        l->workers[t].l = l;
        cored_decoder_init(&l->workers[t].dec);
        int e = pthread_create(&l->threads[t], NULL, worker_main, &l->workers[t]);
        if (e != 0) {
            rc = CORED_FAIL(err, CORED_E_INTERNAL, "loader: cannot start worker thread %d: %s", t, strerror(e));
            break;
        }
        l->nstarted++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) goto fail;
    *out = l;
    return CORED_OK;
fail:
    cored_loader_free(l);
    return rc;
}

int cored_loader_batches(const cored_loader *l) { return l ? l->nbatches : 0; }

int cored_loader_skipped(const cored_loader *l) { return l ? atomic_load(&l->skipped) : 0; }

int cored_loader_start(cored_loader *l, int epoch, int first_batch, cored_error *err)
{
    if (!l) return CORED_FAIL(err, CORED_E_ARG, "cored_loader_start: NULL loader");
    if (epoch < 0 || first_batch < 0 || first_batch > l->nbatches)
        return CORED_FAIL(err, CORED_E_ARG, "cored_loader_start: epoch %d, batch %d out of range (0..%d)",
                          epoch, first_batch, l->nbatches);
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->ring; i++)
        if (l->slots[i].state == SLOT_HELD) {
            pthread_mutex_unlock(&l->mu);
            return CORED_FAIL(err, CORED_E_ARG, "cored_loader_start: release every batch first");
        }
    /* Let workers drop what they are filling, then reset the ring. */
    atomic_store(&l->abort, 1);
    while (l->busy > 0) pthread_cond_wait(&l->cv_ready, &l->mu);
    atomic_store(&l->abort, 0);
    for (int i = 0; i < l->ring; i++) l->slots[i].state = SLOT_FREE;
    if (l->o.shuffle) {
        cored_rng r;
        cored_rng_derive(&r, l->o.seed, TAG_SHUFFLE, (uint64_t)epoch, 0);
        cored_rng_permutation(&r, l->order, (uint32_t)l->n);
    } else {
        for (int i = 0; i < l->n; i++) l->order[i] = (uint32_t)i;
    }
    l->epoch = epoch;
    l->first_batch = first_batch;
    l->next_claim = l->next_consume = first_batch;
    l->delivered = l->attempted = 0;
    l->failed = 0;
    l->running = 1;
    pthread_cond_broadcast(&l->cv_work);
    pthread_mutex_unlock(&l->mu);
    return CORED_OK;
}

int cored_loader_next(cored_loader *l, cored_batch **b, cored_error *err)
{
    if (!l || !b) return CORED_FAIL(err, CORED_E_ARG, "cored_loader_next: NULL argument");
    int rc = CORED_OK;
    pthread_mutex_lock(&l->mu);
    if (!l->running) {
        pthread_mutex_unlock(&l->mu);
        return CORED_FAIL(err, CORED_E_ARG, "cored_loader_next: call cored_loader_start first");
    }
    if (l->failed) {
        if (err) *err = l->fail_err;
        rc = l->fail_err.code ? l->fail_err.code : CORED_E_INTERNAL;
        goto done;
    }
    for (;;) {
        if (l->next_consume >= l->nbatches) {
            /* Only a whole epoch without one good image is an error: a resumed epoch whose
               remaining images are all bad ends like the uninterrupted one would. */
            if (l->first_batch == 0 && l->delivered == 0 && l->attempted > 0) {
                rc = CORED_FAIL(&l->fail_err, CORED_E_FORMAT,
                                "%s: no image of epoch %d could be decoded (%d corrupt files skipped)",
                                cored_dataset_describe(l->ds), l->epoch, atomic_load(&l->skipped));
                l->failed = 1;
                if (err) *err = l->fail_err;
            }
            goto done;
        }
        slot *s = &l->slots[l->next_consume % l->ring];
        if (s->state == SLOT_HELD) {
            rc = CORED_FAIL(err, CORED_E_ARG,
                            "cored_loader_next: batch %d needs the ring slot that batch %d still holds; "
                            "release batches in the order they were received (ring of %d)",
                            l->next_consume, s->number, l->ring);
            goto done;
        }
        while (!(s->state == SLOT_READY && s->number == l->next_consume))
            pthread_cond_wait(&l->cv_ready, &l->mu);
        l->next_consume++;
        l->attempted += batch_len(l, s->number);
        if (s->rc) {
            l->failed = 1;
            l->fail_err = s->err;
            rc = s->rc;
            if (err) *err = s->err;
            s->state = SLOT_FREE;
            pthread_cond_broadcast(&l->cv_work);
            goto done;
        }
        if (s->b.global_n == 0) { /* a shard may be empty: its rank still takes part */
            s->state = SLOT_FREE;
            pthread_cond_broadcast(&l->cv_work);
            continue;
        }
        s->state = SLOT_HELD;
        l->delivered += s->b.global_n;
        *b = &s->b;
        rc = 1;
        goto done;
    }
done:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void cored_loader_release(cored_loader *l, cored_batch *b)
{
    if (!l || !b) return;
    slot *s = (slot *)b;
    if (s < l->slots || s >= l->slots + l->ring) return;
    pthread_mutex_lock(&l->mu);
    if (s->state == SLOT_HELD) {
        s->state = SLOT_FREE;
        pthread_cond_broadcast(&l->cv_work);
    }
    pthread_mutex_unlock(&l->mu);
}
