/*
 * cored bench: speed of a model on random data, and of the data loader.
 *
 *  - train: task 1's training step (cored_train_step, the library's one step): train-mode
 *    forward (dropout on) + cross-entropy + backward + the non-finite guard + SGD.
 *  - cored: CoReD's step as `cored adapt` runs it: the teacher's forward on the images
 *    CutMix modified (a tenth of the batch on average; cored adapt takes the others from
 *    its teacher cache), then cored_train_step: the student's weights copied into an
 *    inference build and its eval forward (the cells), the student's train-mode forward,
 *    CE + KD + the representation loss, backward with a gradient at the tap, SGD.
 *  - infer: eval-mode forward of a batch.
 *  - infer1: one image at a time through one model, the threads inside each layer.
 *  - serve1: one image at a time, one model instance per thread (each single-threaded),
 *    the way a detector serves single-image requests: throughput over all instances.
 * Each measurement is the median over repetitions after warm-up; every repetition runs
 * enough steps to last about --min-time seconds. With --data it measures the loader
 * instead (cored_bench_loader): images per second from JPEG files or a pack. With --faces
 * VIDEO, the face pipeline that `cored faces` runs: decode N evenly sampled frames
 * (cored_video_*), detect the faces (cored_faces_detect), crop the largest face as
 * FaceForensics++ does (cored_face_crop); frames per second of the three together, each
 * round a whole pass over the video, the median round reported with each stage's share
 * (tools/bench_faces.py runs it next to face-api's own JavaScript).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BENCH_X86 1
#endif

#include "cli.h"
#include "opts.h"
#include "train_cli.h"
#include "core/core.h"
#include "data/data.h"
#include "dist/dist.h"
#include "media/video.h"
#include "models/model.h"
#include "ops/ops.h"
#include "train/step.h"

static const cli_doc doc = {
    "bench", "--model NAME [options]\n--data DIR [--task NAME] [--pack FILE] [options]",
    "Speed of a model on random data, in images/s (medians over repetitions):\n"
    "  train   task 1's step: forward (train mode, dropout on) + cross-entropy + backward +\n"
    "          optimiser step\n"
    "  cored   CoReD's step as cored adapt runs it: student eval forward, teacher forward on the\n"
    "          CutMix-modified tenth of the batch, student train-mode forward + CE + KD + the\n"
    "          representation term, backward with a gradient at the tap, optimiser step\n"
    "  infer   eval forward of a batch\n"
    "  infer1  eval forward of one image, the threads inside the layers\n"
    "  serve1  eval forward of one image per request, one model per thread\n"
    "and the FMA peak of the threads (independent vector multiply-adds at the widest vector the\n"
    "CPU has), against which the GFLOP/s of the training step and of inference are given.\n\n"
    "The steps are the library's, set as cored train and cored adapt set them: --optimizer acts\n"
    "in both, --freeze-bn and --rep in CoReD's.\n\n"
    "With --data, the speed of the data loader instead: images/s from DIR/<task>/train with\n"
    "flip, opposite-class CutMix and shuffling, at --batch, --size and --threads.\n\n"
    "With --faces VIDEO, the speed of the face pipeline of cored faces instead, in frames/s:\n"
    "decode --frames frames evenly sampled from VIDEO, detect the faces (SSD-MobileNetV1,\n"
    "make faces-model), crop the largest face (box x --margin as a square, resized to --crop\n"
    "px); each repetition is one pass over the video, the median pass is reported with the\n"
    "time per frame of each stage. tools/bench_faces.py (make bench-faces) runs it next to the\n"
    "detector's reference implementation (face-api's JavaScript under Node).",
    "cored bench --model xception --batch 32 --size 128 --threads 2\n"
    "cored bench --model tiny --only cored --rep vector --profile --json\n"
    "cored bench --data data --task Blend --pack data/.cored-pack-128.bin --seconds 2\n"
    "cored bench --faces clip.mp4 --frames 32 --threads 2 --json"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int reps, warmup;
    double min_time;
} bench_cfg;

/* ---------------------------------------------------------------- FMA peak */

/* The float32 multiply-add peak of the threads: ten independent chains of vector FMAs per
   thread (more than the latency times the FMA ports of these CPUs), at the widest vector
   the CPU has; GFLOP/s counts a multiply-add as two. */
#ifdef BENCH_X86
#define FMA_CHAINS 10
__attribute__((target("avx2,fma"))) static float fma_chains_256(long iters)
{
    __m256 a[FMA_CHAINS];
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    for (int j = 0; j < FMA_CHAINS; j++) a[j] = _mm256_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
        #pragma GCC unroll 10
        for (int j = 0; j < FMA_CHAINS; j++) a[j] = _mm256_fmadd_ps(a[j], m, c);
    }
    __m256 s = a[0];
    for (int j = 1; j < FMA_CHAINS; j++) s = _mm256_add_ps(s, a[j]);
    return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"))) static float fma_chains_512(long iters)
{
    __m512 a[FMA_CHAINS];
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    for (int j = 0; j < FMA_CHAINS; j++) a[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
        #pragma GCC unroll 10
        for (int j = 0; j < FMA_CHAINS; j++) a[j] = _mm512_fmadd_ps(a[j], m, c);
    }
    __m512 s = a[0];
    for (int j = 1; j < FMA_CHAINS; j++) s = _mm512_add_ps(s, a[j]);
    return _mm512_reduce_add_ps(s);
}
#endif

/* Best of three runs of about 0.1 s; 0 where the CPU has no FMA. */
static double fma_peak_gflops(int threads)
{
#ifdef BENCH_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    const int wide = __builtin_cpu_supports("avx512f"), lanes = wide ? 16 : 8;
    const long iters = 4000000;
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = cored_now();
        #pragma omp parallel num_threads(threads)
        {
            float v = wide ? fma_chains_512(iters) : fma_chains_256(iters);
            #pragma omp atomic
            sink += v;
        }
        double g = (double)threads * iters * FMA_CHAINS * lanes * 2 / (cored_now() - t0) * 1e-9;
        if (g > best) best = g;
    }
    (void)sink;
    return best;
#else
    (void)threads;
    return 0;
#endif
}

typedef int (*step_fn)(void *ctx, cored_error *err);

/* Median seconds per call of fn. Under mpirun the ranks agree on the number of calls (each
   training step is a collective). */
static int measure(step_fn fn, void *ctx, const bench_cfg *b, double *median, cored_error *err)
{
    int rc;
    double t0 = cored_now();
    for (int i = 0; i < b->warmup; i++)
        if ((rc = fn(ctx, err))) return rc;
    double per = b->warmup ? (cored_now() - t0) / b->warmup : 0;
    int inner = per > 0 ? (int)(b->min_time / per) + 1 : 1;
    cored_dist_max_i(&inner, 1);
    double *times = malloc(sizeof(double) * (size_t)b->reps);
    if (!times) return CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    for (int r = 0; r < b->reps; r++) {
        double s = cored_now();
        for (int i = 0; i < inner; i++)
            if ((rc = fn(ctx, err))) {
                free(times);
                return rc;
            }
        times[r] = (cored_now() - s) / inner;
    }
    qsort(times, (size_t)b->reps, sizeof(double), cmp_double);
    *median = times[b->reps / 2];
    free(times);
    return CORED_OK;
}

typedef struct {
    cored_model *m;
    int n;
} infer_ctx;

/* A training step of a method through the library's cored_train_step, as cored train and
   cored adapt run it. CoReD's teacher logits come from the teacher cache in cored adapt, so
   here only the CutMix-modified tenth of the batch goes through the teacher. */
typedef struct {
    cored_train_cfg cfg;
    cored_step step;
    cored_model *teacher;
    float *x, *tlogits;
    int *labels;
    int n, global_n, mixed; /* under mpirun: this rank's shard of a batch of global_n */
    uint64_t calls;
} step_ctx;

static int method_step(void *p, cored_error *err)
{
    step_ctx *s = p;
    int rc;
    if (s->teacher && s->mixed > 0) {
        size_t px = (size_t)cored_model_size(s->teacher) * cored_model_size(s->teacher) * 3;
        memcpy(cored_model_input(s->teacher), s->x, sizeof(float) * px * (size_t)s->mixed);
        if ((rc = cored_model_forward(s->teacher, s->mixed, CORED_FWD_EVAL, 0, err))) return rc;
        memcpy(s->tlogits, cored_model_logits(s->teacher), sizeof(float) * 2 * (size_t)s->mixed);
    }
    cored_step_batch b = {.x = s->x, .labels = s->labels, .n = s->n, .teacher_logits = s->teacher ? s->tlogits : NULL,
                          .seed = s->calls, .index = (int)s->calls, .global_n = s->global_n};
    s->calls++;
    cored_loss_terms terms;
    int correct;
    return cored_train_step(&s->step, &b, &terms, &correct, err);
}

static int infer_step(void *p, cored_error *err)
{
    infer_ctx *t = p;
    return cored_model_forward(t->m, t->n, CORED_FWD_EVAL, 0, err);
}

/* One model per thread, each running single-image forwards on one thread (nested
   parallel regions are inactive and OpenMP BLAS runs serially inside a parallel region). */
typedef struct {
    cored_model **inst;
    int n_inst, per_thread;
} serve_ctx;

static int serve_step(void *p, cored_error *err)
{
    serve_ctx *s = p;
    int failed = 0;
    #pragma omp parallel num_threads(s->n_inst) reduction(| : failed)
    {
        cored_model *m = s->inst[omp_get_thread_num()];
        for (int i = 0; i < s->per_thread; i++) failed |= cored_model_forward(m, 1, CORED_FWD_EVAL, 0, NULL) != 0;
    }
    return failed ? CORED_FAIL(err, CORED_E_INTERNAL, "a served forward failed") : CORED_OK;
}

static void fill_random(float *x, int n, int size, uint64_t seed)
{
    cored_rng r;
    cored_rng_seed(&r, seed, 3);
    for (size_t i = 0; i < (size_t)n * size * size * 3; i++) x[i] = 2.0f * cored_rng_uniform(&r) - 1.0f;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static int wants(const char *only, const char *what) { return !only || strcmp(only, what) == 0; }

typedef struct {
    double train_s, cored_s, infer_s, infer1_s, serve1_s, macs;
    double comm_s;    /* under mpirun: seconds per training step inside the collectives (rank 0) */
    size_t grad_bytes; /* bytes of the gradients summed per step */
    long rss_train;
    double prof_f[CORED_PROF_SLOTS], prof_b[CORED_PROF_SLOTS];
    double prof_step; /* seconds of the profiled steps, whole */
} bench_result;

/* The train and CoReD-step measurements: task 1's step and CoReD's, with a teacher, the
   inference build for the cells and the teacher's statistics from its pass over the batch. */
static int bench_training(const cored_train_cfg *base, const char *only, int profile, const bench_cfg *b,
                          bench_result *res, cored_error *err)
{
    const char *arch = base->arch;
    const int batch = base->batch, size = base->size;
    cored_model *m = NULL, *eval = NULL, *teacher = NULL;
    step_ctx s[2] = {0};
    float *x = malloc(sizeof(float) * (size_t)batch * size * size * 3);
    int *labels = malloc(sizeof(int) * (size_t)batch);
    float *tlogits = malloc(sizeof(float) * 2 * (size_t)batch);
    int *cells = malloc(sizeof(int) * (size_t)batch);
    int rc = CORED_OK;
    if (!x || !labels || !tlogits || !cells) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < batch; i++) labels[i] = i & 1;
    fill_random(x, batch, size, 7);
    if ((rc = cored_model_create(&m, arch, size, batch, CORED_BUILD_TRAIN, err))) goto done;
    cored_model_init_params(m, 1);
    /* running statistics as a trained model's, so that the eval-mode passes (CoReD's band
       pass, the teacher) see activations of the training forward's scale: with the fresh
       0/1 statistics EfficientNet-B0's activations grow layer after layer, its squeeze-and-
       excitation gates saturate and half the gradients come out zero */
    cored_copy(cored_model_input(m), x, (size_t)batch * size * size * 3);
    if ((rc = cored_model_calibrate_bn(m, batch, err))) goto done;
    res->macs = cored_model_forward_macs(m);
    /* under mpirun: this rank's shard of the batch, as cored train cuts it */
    int lo, hi;
    cored_shard_range(batch, cored_dist_rank(), cored_dist_size(), &lo, &hi);
    size_t px = (size_t)size * size * 3;
    for (int k = 0; k < 2; k++) {
        s[k].cfg = *base;
        s[k].cfg.method = k ? CORED_METHOD_CORED : CORED_METHOD_CE;
        if (!k) s[k].cfg.freeze_bn = 0; /* a continual step's setting */
        s[k].cfg.optim.lr = 1e-4f;      /* keep random-data training numerically tame over many steps */
        s[k].x = x + lo * px, s[k].labels = labels + lo, s[k].n = hi - lo, s[k].global_n = batch;
        s[k].tlogits = tlogits;
    }
    cored_model_grads(m, &res->grad_bytes);
    res->grad_bytes *= sizeof(float);
    if (wants(only, "train")) {
        if ((rc = cored_step_init(&s[0].step, &s[0].cfg, m, NULL, NULL, err))) goto done;
        cored_dist_stats c0 = cored_dist_counters();
        uint64_t calls0 = s[0].calls;
        if ((rc = measure(method_step, &s[0], b, &res->train_s, err))) goto done;
        cored_dist_stats c1 = cored_dist_counters();
        res->comm_s = (c1.seconds - c0.seconds) / (double)(s[0].calls - calls0);
        if (profile) {
            cored_model_set_profile(m, 1);
            double t0 = cored_now();
            for (int i = 0; i < b->reps; i++)
                if ((rc = method_step(&s[0], err))) goto done;
            res->prof_step = cored_now() - t0;
            memcpy(res->prof_f, m->prof_fwd, sizeof res->prof_f);
            memcpy(res->prof_b, m->prof_bwd, sizeof res->prof_b);
            cored_model_set_profile(m, 0);
        }
        res->rss_train = peak_rss_kib();
    }
    if (wants(only, "cored")) {
        if ((rc = cored_model_create(&teacher, arch, size, batch, CORED_BUILD_INFER, err)) ||
            (rc = cored_model_create(&eval, arch, size, batch, CORED_BUILD_INFER, err)) ||
            (rc = cored_model_copy_params(teacher, m, err)) ||
            (rc = cored_step_init(&s[1].step, &s[1].cfg, m, eval, teacher, err)))
            goto done;
        memcpy(cored_model_input(teacher), x, sizeof(float) * (size_t)batch * size * size * 3);
        if ((rc = cored_model_forward(teacher, batch, CORED_FWD_EVAL, 0, err))) goto done;
        memcpy(tlogits, cored_model_logits(teacher), sizeof(float) * 2 * (size_t)batch);
        cored_cells_from_logits(cells, tlogits, labels, batch);
        int fh, fw, fc;
        const float *f = cored_model_features(teacher, &fh, &fw, &fc);
        cored_rep_accumulate(&s[1].step.rep, f, cells, batch, fh * fw, fc);
        cored_rep_finish(&s[1].step.rep);
        s[1].teacher = teacher;
        s[1].x = x + lo * px, s[1].tlogits = tlogits + 2 * lo;
        s[1].mixed = (hi - lo) / 10 > 0 ? (hi - lo) / 10 : hi > lo;
        if ((rc = measure(method_step, &s[1], b, &res->cored_s, err))) goto done;
    }
done:
    for (int k = 0; k < 2; k++) cored_step_release(&s[k].step);
    cored_model_free(m);
    cored_model_free(teacher);
    cored_model_free(eval);
    free(x);
    free(labels);
    free(tlogits);
    free(cells);
    return rc;
}

static int bench_inference(const char *arch, int batch, int size, int threads, const char *only,
                           const bench_cfg *b, bench_result *res, cored_error *err)
{
    int rc = CORED_OK;
    for (int pass = 0; pass < 2 && rc == CORED_OK; pass++) {
        if (!wants(only, pass == 0 ? "infer" : "infer1")) continue;
        infer_ctx t = {0};
        int nb = pass == 0 ? batch : 1;
        if ((rc = cored_model_create(&t.m, arch, size, nb, CORED_BUILD_INFER, err))) break;
        cored_model_init_params(t.m, 1);
        res->macs = cored_model_forward_macs(t.m);
        t.n = nb;
        fill_random(cored_model_input(t.m), nb, size, 7);
        rc = measure(infer_step, &t, b, pass == 0 ? &res->infer_s : &res->infer1_s, err);
        cored_model_free(t.m);
    }
    if (rc || !wants(only, "serve1")) return rc;
    serve_ctx s = {.n_inst = threads, .per_thread = 1};
    s.inst = calloc((size_t)threads, sizeof *s.inst);
    if (!s.inst) return CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    for (int i = 0; i < threads && rc == CORED_OK; i++) {
        if ((rc = cored_model_create(&s.inst[i], arch, size, 1, CORED_BUILD_INFER, err))) break;
        if (i == 0)
            cored_model_init_params(s.inst[0], 1);
        else
            rc = cored_model_copy_params(s.inst[i], s.inst[0], err);
        fill_random(cored_model_input(s.inst[i]), 1, size, 7 + (uint64_t)i);
    }
    if (rc == CORED_OK) {
        rc = measure(serve_step, &s, b, &res->serve1_s, err);
        res->serve1_s /= threads; /* seconds per image over all instances */
    }
    for (int i = 0; i < threads; i++) cored_model_free(s.inst[i]);
    free(s.inst);
    return rc;
}

static void print_profile(const bench_result *r, int reps, int json)
{
    double total = 0;
    for (int k = 0; k < CORED_PROF_SLOTS; k++) total += r->prof_f[k] + r->prof_b[k];
    if (json) {
        printf(",\"profile_step_s\":%.4f,\"profile\":{", r->prof_step / reps);
        int first = 1;
        for (int k = 0; k < CORED_PROF_SLOTS; k++) {
            if (r->prof_f[k] + r->prof_b[k] <= 0) continue;
            printf("%s\"%s\":{\"forward_s\":%.4f,\"backward_s\":%.4f}", first ? "" : ",",
                   cored_prof_slot_name(k), r->prof_f[k] / reps, r->prof_b[k] / reps);
            first = 0;
        }
        printf("}");
        return;
    }
    printf("  training-step profile (per step; a BN fused with its activation counts as batchnorm):\n");
    for (int k = 0; k < CORED_PROF_SLOTS; k++) {
        double s = r->prof_f[k] + r->prof_b[k];
        if (s <= 0) continue;
        printf("    %-12s fwd %8.2f ms  bwd %8.2f ms  %5.1f%%\n", cored_prof_slot_name(k),
               1e3 * r->prof_f[k] / reps, 1e3 * r->prof_b[k] / reps, 100 * s / r->prof_step);
    }
    printf("    %-12s %35.2f ms  %5.1f%%  (loss, optimiser, copies, checks)\n", "rest",
           1e3 * (r->prof_step - total) / reps, 100 * (r->prof_step - total) / r->prof_step);
}

static int bench_loader(const char *root, const char *task, const char *pack, int threads,
                        int batch, int size, double seconds, int reps, int json, cored_error *err)
{
    char **tasks = NULL;
    int n_tasks = 0, rc = CORED_OK;
    if (!task) {
        if ((rc = cored_data_list_tasks(&tasks, &n_tasks, root, err))) return rc;
        if (n_tasks == 0) {
            rc = CORED_FAIL(err, CORED_E_ARG, "%s: no task folders found", root);
            goto done;
        }
        task = tasks[0];
    }
    double *runs = calloc((size_t)reps, sizeof *runs);
    if (!runs) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
        goto done;
    }
    if (!json)
        fprintf(stderr, "bench: loader on %s/%s/train from %s, batch %d, %d px, %d threads, %d x %.1f s\n",
                root, task, pack ? pack : "image files", batch, size, threads, reps, seconds);
    for (int r = 0; r < reps && rc == CORED_OK; r++)
        rc = cored_bench_loader(root, task, pack, threads, batch, size, seconds, &runs[r], err);
    if (rc == CORED_OK) {
        qsort(runs, (size_t)reps, sizeof *runs, cmp_double);
        if (json)
            printf("{\"task\":\"%s\",\"source\":\"%s\",\"batch\":%d,\"size\":%d,\"threads\":%d,"
                   "\"reps\":%d,\"loader_img_s\":%.1f,\"loader_min_img_s\":%.1f,\"loader_max_img_s\":%.1f}\n",
                   task, pack ? "pack" : "files", batch, size, threads, reps, runs[reps / 2], runs[0],
                   runs[reps - 1]);
        else
            printf("loader (%s)  %9.0f img/s  (median of %d; %0.f..%0.f)\n", pack ? "pack" : "image files",
                   runs[reps / 2], reps, runs[0], runs[reps - 1]);
    }
    free(runs);
done:
    cored_free(tasks);
    return rc;
}

/* ---------------------------------------------------------------- --faces */

typedef struct {
    double total_s, detect_s, crop_s; /* decode: total - detect - crop (open and seeks included) */
    int frames, with_face, faces;
} faces_pass;

typedef struct {
    const char *video;
    int frames, crop;
    float margin;
    cored_face_detector *det;
    uint8_t *out;             /* crop x crop x 3 */
    cored_video_info info;
} faces_bench;

/* One pass: open the video, sample fb->frames frames, detect, crop the largest face. */
static int faces_pass_run(faces_bench *fb, faces_pass *r, cored_error *err)
{
    memset(r, 0, sizeof *r);
    cored_face faces[64];
    cored_video *v = NULL;
    const cored_video_options vo = {.threads = 1};
    double t0 = cored_now();
    int rc = cored_video_open(&v, fb->video, &vo, err);
    cored_video_sampling how = {.count = fb->frames};
    if (!rc) rc = cored_video_start(v, &how, err);
    cored_video_frame f;
    while (!rc && (rc = cored_video_next(v, &f, err)) == 1) {
        rc = 0;
        int n = 0;
        double t1 = cored_now();
        rc = cored_faces_detect(fb->det, f.px, f.w, f.h, 3 * f.w, CORED_FACE_MIN_SCORE, faces, 64, &n, err);
        double t2 = cored_now();
        r->detect_s += t2 - t1;
        r->frames++;
        if (rc || !n) continue;
        int best = 0;
        for (int k = 1; k < n; k++)
            if ((faces[k].x1 - faces[k].x0) * (faces[k].y1 - faces[k].y0) >
                (faces[best].x1 - faces[best].x0) * (faces[best].y1 - faces[best].y0))
                best = k;
        rc = cored_face_crop(fb->out, fb->crop, f.px, f.w, f.h, 3 * f.w, &faces[best], fb->margin, err);
        r->crop_s += cored_now() - t2;
        r->with_face++;
        r->faces += n;
    }
    if (rc > 0) rc = 0;
    if (!rc && v) fb->info = *cored_video_get_info(v);
    cored_video_close(v);
    r->total_s = cored_now() - t0;
    if (!rc && r->frames == 0) rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: no frame could be decoded", fb->video);
    return rc;
}

static int cmp_pass(const void *a, const void *b)
{
    const faces_pass *x = a, *y = b;
    double u = x->frames / x->total_s, w = y->frames / y->total_s;
    return u < w ? -1 : u > w;
}

static int bench_faces(const char *video, const char *model, int frames, int crop, float margin, int threads,
                       int reps, int warmup, int json, cored_error *err)
{
    faces_bench fb = {.video = video, .frames = frames, .crop = crop, .margin = margin};
    faces_pass *runs = calloc((size_t)reps, sizeof *runs), tmp;
    fb.out = malloc((size_t)crop * crop * 3);
    int rc = runs && fb.out ? CORED_OK : CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    if (!rc) rc = cored_face_detector_open(&fb.det, model, err);
    if (!rc && !json)
        fprintf(stderr, "bench: faces in %s, %d frames per pass, %d threads, %d passes after %d warm-up\n", video, frames,
                threads, reps, warmup);
    for (int i = 0; i < warmup && !rc; i++) rc = faces_pass_run(&fb, &tmp, err);
    for (int i = 0; i < reps && !rc; i++) rc = faces_pass_run(&fb, &runs[i], err);
    if (!rc) {
        qsort(runs, (size_t)reps, sizeof *runs, cmp_pass);
        const faces_pass *m = &runs[reps / 2];
        double fps = m->frames / m->total_s, lo = runs[0].frames / runs[0].total_s;
        double hi = runs[reps - 1].frames / runs[reps - 1].total_s;
        double ms = 1e3 / m->frames, dec = (m->total_s - m->detect_s - m->crop_s) * ms;
        const cored_video_info *in = &fb.info;
        if (json)
            printf("{\"video\":\"%s\",\"width\":%d,\"height\":%d,\"codec\":\"%s\",\"video_frames\":%lld,"
                   "\"frames\":%d,\"threads\":%d,\"reps\":%d,\"frames_per_s\":%.3f,\"min_frames_per_s\":%.3f,"
                   "\"max_frames_per_s\":%.3f,\"ms_per_frame\":%.3f,\"decode_ms\":%.3f,\"detect_ms\":%.3f,"
                   "\"crop_ms\":%.3f,\"frames_with_face\":%d,\"faces\":%d,\"crop\":%d,\"margin\":%g}\n",
                   video, in->width, in->height, in->codec, (long long)in->frame_count, m->frames, threads, reps, fps,
                   lo, hi, m->total_s * ms, dec, m->detect_s * ms, m->crop_s * ms, m->with_face, m->faces, crop,
                   margin);
        else {
            printf("faces: %s (%dx%d %s, %lld frames), %d sampled, %d threads\n", video, in->width, in->height,
                   in->codec, (long long)in->frame_count, m->frames, threads);
            printf("  decode + detect + crop  %8.2f frames/s  (median of %d; %.2f..%.2f)\n", fps, reps, lo, hi);
            printf("  per frame               %8.1f ms = decode %.1f + detect %.1f + crop %.2f\n", m->total_s * ms, dec,
                   m->detect_s * ms, m->crop_s * ms);
            printf("  faces                   %d found, a face in %d of %d frames, crops of %d px\n", m->faces,
                   m->with_face, m->frames, crop);
        }
    }
    cored_face_detector_free(fb.det);
    free(fb.out);
    free(runs);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    static const char *const whats[] = {"train", "cored", "infer", "infer1", "serve1", NULL};
    const char *data = NULL, *task = NULL, *pack = NULL, *faces = NULL, *face_model = CORED_FACE_MODEL_DEFAULT;
    int only_i = -1, profile = 0, json = 0, frames = 32, crop = 256;
    float margin = 1.3f;
    bench_cfg b = {.reps = 5, .warmup = 2, .min_time = 0.5};
    float seconds = 3.0f;
    cored_train_cfg cfg; /* the steps' settings: the training defaults, then the options */
    cored_train_defaults(&cfg);
    cfg.batch = 32, cfg.size = 128;
    opt_def batch_opt = train_cli_opt("batch", &cfg.batch, 0), threads_opt = train_cli_opt("threads", &cfg.threads, 0);
    batch_opt.lo = 1; /* a benchmark may time single images */
    threads_opt.help = "compute threads; serve1 runs one model on each";
    const opt_def defs[] = {
        train_cli_opt("model", &cfg.arch, OPT_REQUIRED),
        batch_opt,
        {"size", OPT_INT, &cfg.size, 16, 4096, NULL, "PX", "input size"},
        threads_opt,
        {"only", OPT_CHOICE, &only_i, 0, 0, whats, NULL, "measure one of the five only", "all five"},
        train_cli_opt("optimizer", &cfg.optim.kind, 0),
        train_cli_opt("freeze_bn", &cfg.freeze_bn, 0),
        train_cli_opt("rep", &cfg.rep, 0),
        train_cli_opt("bucket_mb", &cfg.bucket_mb, 0),
        {"reps", OPT_INT, &b.reps, 1, 1000, NULL, "N", "timed repetitions, the median reported"},
        {"warmup", OPT_INT, &b.warmup, 0, 1000, NULL, "N", "untimed steps first (with --faces: passes, default 1)"},
        {"min-time", OPT_DOUBLE, &b.min_time, 0, 3600, NULL, "S", "seconds per repetition at least"},
        {"profile", OPT_FLAG, &profile, 0, 0, NULL, NULL, "per-op share of the training step (forward and backward)"},
        {"json", OPT_FLAG, &json, 0, 0, NULL, NULL, "one JSON object on standard output instead of the table"},
        {"data", OPT_STR, &data, 0, 0, NULL, "DIR", "measure the loader on DIR/<task>/train instead of a model",
         NULL, OPT_ALONE},
        {"task", OPT_STR, &task, 0, 0, NULL, "NAME", "with --data: the task folder", "the first task under DIR"},
        {"pack", OPT_STR, &pack, 0, 0, NULL, "FILE", "with --data: read this pack instead of decoding the image files"},
        {"seconds", OPT_FLOAT, &seconds, 0.1, 3600, NULL, "S", "with --data: seconds per repetition"},
        {"faces", OPT_STR, &faces, 0, 0, NULL, "VIDEO",
         "measure decoding + face detection + cropping on VIDEO instead of a model", NULL, OPT_ALONE},
        {"frames", OPT_INT, &frames, 1, 100000, NULL, "N", "with --faces: frames sampled evenly per pass"},
        {"face-model", OPT_STR, &face_model, 0, 0, NULL, "FILE", "with --faces: the face detector (make faces-model)"},
        {"crop", OPT_INT, &crop, 16, 4096, NULL, "PX", "with --faces: side of the face crops"},
        {"margin", OPT_FLOAT, &margin, 1, 10, NULL, "F", "with --faces: the crop's side over the box's longer side"},
    };
    enum { N_DEFS = sizeof defs / sizeof defs[0] };
    unsigned char given[N_DEFS];
    int rc = opts_parse(&doc, argc, argv, defs, N_DEFS, NULL, 0, NULL, given);
    if (rc) return rc == 1 ? 0 : rc;
    for (int i = 0; i < N_DEFS; i++) {
        const char *n = defs[i].name;
        int faces_opt = !strcmp(n, "frames") || !strcmp(n, "face-model") || !strcmp(n, "crop") || !strcmp(n, "margin");
        if (given[i] && faces_opt && !faces) return cli_usage_error("bench", "--%s goes with --faces", n);
        if (given[i] && faces && !faces_opt && strcmp(n, "faces") && strcmp(n, "threads") && strcmp(n, "reps") &&
            strcmp(n, "warmup") && strcmp(n, "json"))
            return cli_usage_error("bench", "--%s does not go with --faces", n);
    }
    if (faces) {
        if (cfg.arch || data) return cli_usage_error("bench", "--faces measures the face pipeline alone; drop --model/--data");
        int threads = cored_set_threads(cfg.threads);
        cored_error err = {0};
        /* one untimed pass unless told otherwise: a pass is a whole video */
        int warm = 1;
        for (int i = 0; i < N_DEFS; i++)
            if (given[i] && !strcmp(defs[i].name, "warmup")) warm = b.warmup;
        if (bench_faces(faces, face_model, frames, crop, margin, threads, b.reps, warm, json, &err)) {
            cli_print_error(&err);
            return 1;
        }
        return 0;
    }
    const char *arch = cfg.arch, *only = only_i >= 0 ? whats[only_i] : NULL;
    if (arch && data) return cli_usage_error("bench", "--model and --data measure different things; give one");
    if (!data && (task || pack))
        return cli_usage_error("bench", "--task and --pack go with --data");
    cored_cfg_finish(&cfg, 0); /* the optimiser's momentum and weight decay */
    int batch = cfg.batch, size = cfg.size;
    int threads = cored_set_threads(cfg.threads);
    cored_error err = {0};
    if (data) {
        if (bench_loader(data, task, pack, threads, batch, size, seconds, b.reps, json, &err)) {
            cli_print_error(&err);
            return 1;
        }
        return 0;
    }

    const int ranks = cored_dist_size(), root = cored_dist_rank() == 0;
    if (ranks > 1 && (!only || (strcmp(only, "train") && strcmp(only, "cored"))))
        return cli_usage_error("bench", "under mpirun bench measures one data-parallel training step: "
                                        "--only train or --only cored");
    bench_result r = {.rss_train = -1};
    int steps = wants(only, "train") || wants(only, "cored");
    if (!json && root)
        fprintf(stderr, "bench: model %s, batch %d, %d px, %d threads, %d reps after %d warm-up%s%s%s%s\n", arch,
                batch, size, threads, b.reps, b.warmup, steps ? ", " : "",
                steps ? cored_optim_kind_name(cfg.optim.kind) : "", steps && cfg.freeze_bn ? ", frozen BN" : "",
                steps && cfg.rep == CORED_REP_VECTOR ? ", vector statistic" : "");
    if (steps && bench_training(&cfg, only, profile, &b, &r, &err)) goto fail;
    if (bench_inference(arch, batch, size, threads, only, &b, &r, &err)) goto fail;
    if (!root) return 0; /* rank 0 reports */
    const double peak = ranks > 1 ? 0 : fma_peak_gflops(threads);

    double tr = r.train_s > 0 ? batch / r.train_s : 0, co = r.cored_s > 0 ? batch / r.cored_s : 0;
    double inf = r.infer_s > 0 ? batch / r.infer_s : 0, inf1 = r.infer1_s > 0 ? 1.0 / r.infer1_s : 0;
    double srv = r.serve1_s > 0 ? 1.0 / r.serve1_s : 0;
    /* a training step costs about three forward passes (forward, input and weight grads) */
    double gflops_train = tr * 3 * 2 * r.macs * 1e-9, gflops_inf = inf * 2 * r.macs * 1e-9;
    if (json) {
        printf("{\"model\":\"%s\",\"batch\":%d,\"size\":%d,\"threads\":%d,\"reps\":%d,"
               "\"train_img_s\":%.3f,\"cored_img_s\":%.3f,\"infer_img_s\":%.3f,\"infer1_img_s\":%.3f,"
               "\"serve1_img_s\":%.3f,\"forward_gmacs_per_image\":%.4f,\"train_gflops\":%.2f,"
               "\"infer_gflops\":%.2f,\"train_peak_rss_mib\":%.1f,\"optimizer\":\"%s\",\"freeze_bn\":%s,"
               "\"rep\":\"%s\"",
               arch, batch, size, threads, b.reps, tr, co, inf, inf1, srv, r.macs * 1e-9,
               gflops_train, gflops_inf, r.rss_train > 0 ? r.rss_train / 1024.0 : 0.0,
               cored_optim_kind_name(cfg.optim.kind), cfg.freeze_bn ? "true" : "false",
               cfg.rep == CORED_REP_VECTOR ? "vector" : "scalar");
        printf(",\"ranks\":%d,\"bucket_mb\":%g,\"comm_ms_per_step\":%.3f,\"grad_bytes_per_step\":%zu", ranks,
               ranks > 1 ? cfg.bucket_mb : 0.0, r.comm_s * 1e3, r.grad_bytes);
        printf(",\"fma_peak_gflops\":%.1f", peak);
        if (profile) print_profile(&r, b.reps, 1);
        printf("}\n");
    } else {
        printf("model %s  batch %d  %d px  %d threads  (%.3f GMAC/image forward)\n", arch, batch,
               size, threads, r.macs * 1e-9);
        if (peak > 0) printf("  FMA peak of %d threads %.0f GFLOP/s (measured)\n", threads, peak);
        if (ranks > 1)
            printf("  %d ranks (the batch split across them), %.1f MB of gradients summed per step%s\n", ranks,
                   r.grad_bytes / 1e6, cfg.bucket_mb > 0 ? " in buckets during the backward pass" : " after the backward pass");
        if (tr > 0)
            printf("  train step       %9.2f img/s  (%.1f GFLOP/s = %.0f%% of the FMA peak, peak RSS %.0f MiB)\n",
                   tr, gflops_train, peak > 0 ? 100 * gflops_train / peak : 0.0, r.rss_train / 1024.0);
        if (tr > 0 && ranks > 1)
            printf("  in collectives   %9.2f ms per step, rank 0 (%.0f%% of the step)\n", r.comm_s * 1e3,
                   100 * r.comm_s * tr / batch);
        if (co > 0 && tr > 0)
            printf("  CoReD step       %9.2f img/s  (%.2fx the train step's time)\n", co, tr / co);
        else if (co > 0)
            printf("  CoReD step       %9.2f img/s\n", co);
        if (inf > 0)
            printf("  inference b%-4d  %9.2f img/s  (%.1f GFLOP/s = %.0f%% of the FMA peak)\n", batch, inf, gflops_inf,
                   peak > 0 ? 100 * gflops_inf / peak : 0.0);
        if (inf1 > 0)
            printf("  inference b1     %9.2f img/s  (latency %.2f ms; one model, %d threads inside)\n", inf1,
                   1e3 / inf1, threads);
        if (srv > 0) printf("  served b1        %9.2f img/s  (%d models, one thread each)\n", srv, threads);
        if (profile) print_profile(&r, b.reps, 0);
    }
    return 0;
fail:
    cli_print_error(&err);
    return 1;
}
