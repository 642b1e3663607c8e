/*
 * cored detect: p(fake) of the faces in photos and videos (files, or folders searched
 * recursively), or of whole pictures (face crops: --whole-image, automatic for a picture of
 * the model's input size). One JSON object per line on stdout, in argument order (folders
 * sorted): one per face of a photo (with its box), one per sampled frame of a video (its
 * tracked face) and one per video (the mean p(fake) of its frames, the median and the
 * maximum, the frames without a face); with --out into a file, JSON lines or CSV, written
 * atomically. An input that cannot be read gets a line with "error" and makes the exit
 * status 1, as does a folder without photos or videos, or nothing scored at all; the others
 * are still scored. A summary closes on stderr.
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/core.h"
#include "data/data.h"
#include "eval/evaluate.h"
#include "faces/extract.h"
#include "io/checkpoint.h"
#include "opts.h"

static const cli_doc doc = {
    "detect", "--model CKPT [options] FILE|DIR ...",
    "Scores the faces in photos and videos: each face is found (the detector of `make\n"
    "faces-model`), cropped as in training data (the box x --margin, square) and scored.\n"
    "One JSON line per face of a photo: {\"path\", \"face\", \"box\": [x0, y0, x1, y1],\n"
    "\"face_score\", \"p_fake\", \"label\"}; per sampled frame of a video (--frames, or --fps;\n"
    "the largest face, followed through the video): {\"path\", \"frame\", \"time\", \"box\",\n"
    "\"face_score\", \"p_fake\", \"label\"}, then the video: {\"path\", \"video\": true, \"frames\",\n"
    "\"frames_without_face\", \"p_fake\" (the mean of its frames), \"p_fake_median\",\n"
    "\"p_fake_max\", \"label\"}. A picture of the model's input size (a face crop), or any\n"
    "picture with --whole-image, is scored whole: {\"path\", \"p_fake\", \"label\"}. label is fake\n"
    "when p_fake > --threshold. An input that cannot be read, or has no face: {\"path\",\n"
    "\"error\"}. With --out FILE the lines go to FILE, as JSON lines, or as CSV when FILE ends in\n"
    ".csv (path,p_fake,label,error,kind,frame,time,face,x0,y0,x1,y1,face_score,frames,\n"
    "frames_without_face,p_fake_median,p_fake_max; kind: image, face, frame or video).\n"
    "Folders are searched recursively for photos (.png, .jpg, .jpeg) and videos (.mp4, .mov,\n"
    ".avi, .mkv, .webm...), in sorted order. A summary closes on standard error. Exit status 1\n"
    "when an input could not be read, a folder holds nothing to score, or nothing was scored.",
    "cored detect --model run/best.safetensors clip.mp4 photo.jpg\n"
    "cored detect --model run/best.safetensors --frames 32 --out scores.csv videos/\n"
    "cored detect --model run/best.safetensors --whole-image crops/ > scores.jsonl"};

static int ends_with_csv(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && !strcasecmp(path + n - 4, ".csv");
}

typedef enum { ROW_IMAGE, ROW_FACE, ROW_FRAME, ROW_VIDEO, ROW_ERROR } row_kind;
static const char *const kind_names[] = {"image", "face", "frame", "video", ""};

typedef struct {
    row_kind kind;
    const char *path;
    float p;              /* p(fake); the video's mean */
    int face;             /* ROW_FACE: rank in the photo */
    int64_t frame;        /* ROW_FRAME */
    double time;
    cored_face box;       /* ROW_FACE, ROW_FRAME */
    int frames, no_face;  /* ROW_VIDEO */
    float median, max;
    const char *error;
} row;

static double r6(double v) { return round(v * 1e6) / 1e6; }
static double r2(double v) { return round(v * 100) / 100; }

/* Appends one result to b: a JSON line, or a CSV row. */
static void add_row(cored_sb *b, int csv, const row *r, float threshold)
{
    const int boxed = r->kind == ROW_FACE || r->kind == ROW_FRAME;
    const char *label = r->p > threshold ? "fake" : "real";
    if (csv) {
        cored_sb_csv(b, "%s", r->path);
        if (r->kind == ROW_ERROR) {
            cored_sb_printf(b, ",,,");
            cored_sb_csv(b, "%s", r->error);
            cored_sb_printf(b, ",,,,,,,,,,,,,\n");
            return;
        }
        cored_sb_printf(b, ",%.6f,%s,,%s,", (double)r->p, label, kind_names[r->kind]);
        if (r->kind == ROW_FRAME)
            cored_sb_printf(b, "%lld,%.6f,", (long long)r->frame, r->time);
        else
            cored_sb_printf(b, ",,");
        if (r->kind == ROW_FACE) cored_sb_printf(b, "%d", r->face);
        if (boxed)
            cored_sb_printf(b, ",%.2f,%.2f,%.2f,%.2f,%.5f", (double)r->box.x0, (double)r->box.y0, (double)r->box.x1,
                            (double)r->box.y1, (double)r->box.score);
        else
            cored_sb_printf(b, ",,,,,");
        if (r->kind == ROW_VIDEO)
            cored_sb_printf(b, ",%d,%d,%.6f,%.6f\n", r->frames, r->no_face, (double)r->median, (double)r->max);
        else
            cored_sb_printf(b, ",,,,\n");
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "path", r->path);
    if (r->kind == ROW_ERROR) {
        cJSON_AddStringToObject(j, "error", r->error);
    } else {
        if (r->kind == ROW_FACE) cJSON_AddNumberToObject(j, "face", r->face);
        if (r->kind == ROW_FRAME) {
            cJSON_AddNumberToObject(j, "frame", (double)r->frame);
            cJSON_AddNumberToObject(j, "time", r6(r->time));
        }
        if (boxed) {
            cJSON *box = cJSON_AddArrayToObject(j, "box");
            const float v[4] = {r->box.x0, r->box.y0, r->box.x1, r->box.y1};
            for (int i = 0; i < 4; i++) cJSON_AddItemToArray(box, cJSON_CreateNumber(r2(v[i])));
            cJSON_AddNumberToObject(j, "face_score", round(r->box.score * 1e5) / 1e5);
        }
        if (r->kind == ROW_VIDEO) {
            cJSON_AddTrueToObject(j, "video");
            cJSON_AddNumberToObject(j, "frames", r->frames);
            cJSON_AddNumberToObject(j, "frames_without_face", r->no_face);
        }
        cJSON_AddNumberToObject(j, "p_fake", r6(r->p));
        if (r->kind == ROW_VIDEO) {
            cJSON_AddNumberToObject(j, "p_fake_median", r6(r->median));
            cJSON_AddNumberToObject(j, "p_fake_max", r6(r->max));
        }
        cJSON_AddStringToObject(j, "label", label);
    }
    char *s = cJSON_PrintUnformatted(j);
    if (s)
        cored_sb_printf(b, "%s\n", s);
    else
        b->oom = 1;
    cJSON_free(s);
    cJSON_Delete(j);
}

static int write_rows(FILE *f, const char *path, void *user, cored_error *err)
{
    const cored_sb *b = user;
    return cored_fwrite_all(f, b->s, b->len, path, err);
}

/* The state of a run: the model, the crops waiting for a forward pass (in output order),
   the rows, the counts. */
typedef struct {
    cored_model *m;
    int size, batch, csv, whole;
    float threshold, lut[256], margin;
    const char *face_model;
    cored_face_detector *det;
    cored_face_scan_opts scan;
    uint8_t *crops; /* batch x size x size x 3 */
    row *pending;
    int n_pending;
    float *p;
    cored_sb rows;
    const char *out;
    /* the video being scored: its frames' scores */
    float *vp;
    int vn, vcap;
    /* counts */
    int n_fake, n_real, n_unreadable, n_no_face, n_videos, v_fake, v_real, frames_no_face, failed;
    cored_resizer rz;
} run;

static int emit(run *R, const row *r)
{
    add_row(&R->rows, R->csv, r, R->threshold);
    if (R->rows.oom) return -1;
    if (!R->out && R->rows.len) {
        fwrite(R->rows.s, 1, R->rows.len, stdout);
        R->rows.len = 0;
        cli_flush_stdout();
    }
    return 0;
}

/* Scores the pending crops and writes their rows. */
static int flush(run *R, cored_error *err)
{
    const int k = R->n_pending;
    if (!k) return 0;
    const size_t n_img = (size_t)R->size * R->size * 3;
    float *x = cored_model_input(R->m);
    for (size_t q = 0; q < (size_t)k * n_img; q++) x[q] = R->lut[R->crops[q]];
    int rc = cored_model_forward(R->m, k, CORED_FWD_EVAL, 0, err);
    if (rc) return rc;
    cored_p_fake(R->p, cored_model_logits(R->m), k);
    R->n_pending = 0;
    for (int i = 0; i < k; i++) {
        row *r = &R->pending[i];
        r->p = R->p[i];
        if (r->p > R->threshold)
            R->n_fake++;
        else
            R->n_real++;
        if (r->kind == ROW_FRAME) {
            if (R->vn == R->vcap) {
                int cap = R->vcap ? 2 * R->vcap : 64;
                float *v = realloc(R->vp, sizeof *v * (size_t)cap);
                if (!v) return CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
                R->vp = v;
                R->vcap = cap;
            }
            R->vp[R->vn++] = r->p;
        }
        if (emit(R, r)) return CORED_FAIL(err, CORED_E_NOMEM, "out of memory for the results");
    }
    return 0;
}

/* The next crop slot (scoring the full batch first). */
static uint8_t *slot(run *R, const row *r, cored_error *err)
{
    if (R->n_pending == R->batch && flush(R, err)) return NULL;
    R->pending[R->n_pending] = *r;
    return R->crops + (size_t)R->n_pending++ * R->size * R->size * 3;
}

static int open_detector(run *R, cored_error *err)
{
    if (R->det) return 0;
    int rc = cored_face_detector_open(&R->det, R->face_model, err);
    if (rc && err->code == CORED_E_IO && !cored_is_file(R->face_model))
        snprintf(err->hint, sizeof err->hint, "make the face detector's weights with `make faces-model` (in cored's "
                                              "source folder), give --face-model FILE, or score whole pictures with "
                                              "--whole-image");
    return rc;
}

typedef struct {
    run *R;
    const char *path;
} video_ctx;

static int on_frame(const cored_face_frame *f, void *user, cored_error *err)
{
    video_ctx *c = user;
    run *R = c->R;
    if (!f->n_faces && !R->whole) return 0;
    row r = {.kind = ROW_FRAME, .path = c->path, .frame = f->index, .time = f->time};
    if (!R->whole) r.box = f->faces[0];
    uint8_t *dst = slot(R, &r, err);
    if (!dst) return err->code ? err->code : CORED_E_NOMEM;
    if (R->whole) return cored_resize_rgb8(dst, R->size, R->size, f->px, f->w, f->h, &R->rz, err);
    return cored_face_crop(dst, R->size, f->px, f->w, f->h, 3 * f->w, &f->faces[0], R->margin, err);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static int error_row(run *R, const char *path, const char *msg, cored_error *err)
{
    int rc = flush(R, err);
    if (rc) return rc;
    row r = {.kind = ROW_ERROR, .path = path, .error = msg};
    return emit(R, &r) ? CORED_FAIL(err, CORED_E_NOMEM, "out of memory for the results") : 0;
}

/* A video: its frames, then its row. Fatal errors (the model, memory) are returned; a bad
   file is an error row. */
static int score_video(run *R, const char *path, cored_error *err)
{
    int rc = R->whole ? 0 : open_detector(R, err);
    if (rc) return rc;
    if ((rc = flush(R, err))) return rc;
    R->vn = 0;
    video_ctx c = {R, path};
    cored_face_scan_stats st = {0};
    cored_error e2 = {0};
    cored_face_scan_opts o = R->scan;
    /* with --whole-image no face is looked for: a detector is not needed */
    if (R->whole) {
        cored_video_frames fr = {0};
        rc = cored_video_read(path, &o.how, NULL, &fr, NULL, &e2);
        for (int i = 0; !rc && i < fr.n; i++) {
            cored_face_frame f = {fr.frames[i].px, fr.frames[i].w, fr.frames[i].h, fr.frames[i].index,
                                  fr.frames[i].time, NULL, 0, 0};
            st.frames++;
            rc = on_frame(&f, &c, &e2);
        }
        cored_video_frames_release(&fr);
    } else {
        rc = cored_faces_scan_video(R->det, path, &o, on_frame, &c, &st, &e2);
    }
    if (!rc) rc = flush(R, &e2);
    if (rc) {
        if (rc == CORED_E_NOMEM || (e2.code != CORED_E_FORMAT && e2.code != CORED_E_IO)) {
            *err = e2;
            return rc;
        }
        fprintf(stderr, "cored: error: %s\n", e2.msg);
        if (e2.hint[0]) fprintf(stderr, "  hint: %s\n", e2.hint);
        R->n_unreadable++;
        R->failed++;
        return error_row(R, path, e2.msg, err);
    }
    R->frames_no_face += st.frames_without_face;
    if (R->vn == 0) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: no face found in %d sampled frame(s)%s", path, st.frames,
                 st.frames ? "" : " (no frame could be decoded)");
        fprintf(stderr, "cored: warning: %s\n", msg);
        R->n_no_face++;
        return error_row(R, path, msg, err);
    }
    double sum = 0;
    for (int i = 0; i < R->vn; i++) sum += R->vp[i];
    qsort(R->vp, (size_t)R->vn, sizeof *R->vp, cmp_float);
    row r = {.kind = ROW_VIDEO, .path = path, .p = (float)(sum / R->vn), .frames = R->vn,
             .no_face = st.frames_without_face, .max = R->vp[R->vn - 1]};
    r.median = R->vn % 2 ? R->vp[R->vn / 2] : 0.5f * (R->vp[R->vn / 2 - 1] + R->vp[R->vn / 2]);
    R->n_videos++;
    if (r.p > R->threshold)
        R->v_fake++;
    else
        R->v_real++;
    return emit(R, &r) ? CORED_FAIL(err, CORED_E_NOMEM, "out of memory for the results") : 0;
}

/* A photo: whole (--whole-image, or of the model's input size), else each face. */
static int score_image(run *R, const char *path, cored_image *img, uint8_t **file, size_t *cap, cored_error *err)
{
    cored_error e2 = {0};
    size_t len = 0;
    cored_free(*file); /* cored_read_file allocates a fresh buffer */
    *file = NULL;
    int rc = cored_read_file(path, CORED_MAX_FILE_BYTES, file, &len, &e2);
    if (!rc) rc = cored_image_decode(img, *file, len, path, 0, &e2);
    (void)cap;
    if (rc) {
        if (rc == CORED_E_NOMEM) {
            *err = e2;
            return rc;
        }
        fprintf(stderr, "cored: error: %s\n", e2.msg);
        R->n_unreadable++;
        R->failed++;
        return error_row(R, path, e2.msg, err);
    }
    if (R->whole || (img->w == R->size && img->h == R->size)) {
        row r = {.kind = ROW_IMAGE, .path = path};
        uint8_t *dst = slot(R, &r, err);
        if (!dst) return err->code;
        return cored_resize_rgb8(dst, R->size, R->size, img->px, img->w, img->h, &R->rz, err);
    }
    if ((rc = open_detector(R, err))) return rc;
    cored_face faces[CORED_FACES_MAX_PER_FRAME];
    int n = 0;
    if ((rc = cored_faces_detect(R->det, img->px, img->w, img->h, 3 * img->w, R->scan.min_score, faces,
                                 CORED_FACES_MAX_PER_FRAME, &n, err)))
        return rc;
    if (!n) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: no face found (--whole-image scores the whole picture)", path);
        fprintf(stderr, "cored: warning: %s\n", msg);
        R->n_no_face++;
        return error_row(R, path, msg, err);
    }
    for (int k = 0; k < n; k++) {
        row r = {.kind = ROW_FACE, .path = path, .face = k, .box = faces[k]};
        uint8_t *dst = slot(R, &r, err);
        if (!dst) return err->code;
        if ((rc = cored_face_crop(dst, R->size, img->px, img->w, img->h, 3 * img->w, &faces[k], R->margin, err)))
            return rc;
    }
    return 0;
}

int cmd_detect(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *face_model = cli_face_model_default();
    int batch = 16, threads = 0, whole = 0, frames = 32, csv_flag = 0;
    double fps = 0;
    float threshold = 0.5f, margin = 1.3f, min_face = CORED_FACE_MIN_SCORE;
    opt_def defs[] = {
        {"model", OPT_STR, &ckpt, 0, 0, NULL, "CKPT", "trained checkpoint (safetensors)", NULL, OPT_REQUIRED},
        {"threshold", OPT_FLOAT, &threshold, 0, 1, NULL, "P", "p(fake) above which a face or video is labelled fake"},
        {"whole-image", OPT_FLAG, &whole, 0, 0, NULL, NULL,
         "score whole pictures and frames (face crops) instead of finding faces", "only pictures of the model's size"},
        {"frames", OPT_INT, &frames, 1, 100000, NULL, "N", "frames per video, evenly spread"},
        {"fps", OPT_DOUBLE, &fps, 0.001, 1000, NULL, "R", "frames per second of video instead of --frames", ""},
        {"margin", OPT_FLOAT, &margin, 1, 4, NULL, "M", "face crop: the box's longer side x M, square"},
        {"min-face-score", OPT_FLOAT, &min_face, 0.01, 0.99, NULL, "P", "the face detector's threshold"},
        {"face-model", OPT_STR, &face_model, 0, 0, NULL, "FILE", "the face detector's weights (make faces-model)"},
        {"batch", OPT_INT, &batch, 1, 1024, NULL, "N", "images per forward pass"},
        {"threads", OPT_INT, &threads, 0, 1024, NULL, "N", "compute threads", "all cores"},
        {"out", OPT_STR, &out, 0, 0, NULL, "FILE",
         "write the results to FILE (replaced when complete): CSV when it ends in .csv, else JSON lines; "
         "'-': standard output", "standard output"},
        {"csv", OPT_FLAG, &csv_flag, 0, 0, NULL, NULL, "CSV instead of JSON lines, on standard output or in --out"},
    };
    unsigned char given[sizeof defs / sizeof defs[0]] = {0};
    char **pos = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!pos) return 1;
    int npos = 0, rc = opts_parse(&doc, argc, argv, defs, sizeof defs / sizeof defs[0], pos, argc, &npos, given);
    if (rc) {
        free(pos);
        return rc == 1 ? 0 : rc;
    }
    if (npos == 0) {
        free(pos);
        return cli_usage_error("detect", "at least one FILE or DIR is required");
    }
    if (given[3] && given[4]) {
        free(pos);
        return cli_usage_error("detect", "--frames and --fps exclude each other");
    }
    if (out && !strcmp(out, "-")) out = NULL;
    cored_set_threads(threads);
    cored_video_init();
    cli_install_logger(0);
    cli_strlist files = {0};
    int csv = csv_flag || (out && ends_with_csv(out));
    run R = {.batch = batch, .csv = csv, .whole = whole, .threshold = threshold, .margin = margin,
             .face_model = face_model, .out = out};
    R.scan.min_score = min_face;
    if (fps > 0)
        R.scan.how.fps = fps;
    else
        R.scan.how.count = frames;
    cored_path_use *uses = NULL;
    cored_error err = {0};
    char arch[64];
    uint8_t *file = NULL;
    size_t cap = 0;
    cored_image img = {0};
    cored_normalize_lut(R.lut);
    R.p = malloc(sizeof(float) * (size_t)batch);
    R.pending = calloc((size_t)batch, sizeof *R.pending);
    if (!R.p || !R.pending) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
        goto fail;
    }
    if (out) {
        /* --out must not replace the model or an input given, nor be an image in a folder
           searched (a later run would read it); another file in such a folder is never read */
        if (!(uses = calloc((size_t)npos + 2, sizeof *uses))) {
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
            goto fail;
        }
        uses[0] = (cored_path_use){ckpt, "--model", CORED_PATH_INPUT};
        uses[1] = (cored_path_use){out, "--out", CORED_PATH_OUTPUT};
        int media = cored_media_kind_of(out) != CORED_MEDIA_OTHER;
        for (int i = 0; i < npos; i++)
            uses[i + 2] = cored_is_dir(pos[i])
                              ? (cored_path_use){media ? pos[i] : NULL, "DIR", CORED_PATH_SOURCES}
                              : (cored_path_use){pos[i], "FILE", CORED_PATH_INPUT};
        if ((rc = cored_paths_check(uses, npos + 2, &err))) goto fail;
        /* a folder that is not there is found now, not after every image was scored */
        char dir[4096];
        const char *slash = strrchr(out, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash == out ? 1 : slash - out) : 1, slash ? out : ".");
        if (!cored_is_dir(dir)) {
            rc = CORED_FAIL(&err, CORED_E_ARG, "--out %s: the folder %s does not exist", out, dir);
            goto fail;
        }
    }
    if (csv)
        cored_sb_printf(&R.rows, "path,p_fake,label,error,kind,frame,time,face,x0,y0,x1,y1,face_score,frames,"
                                 "frames_without_face,p_fake_median,p_fake_max\n");
    if ((rc = cored_checkpoint_peek(ckpt, arch, sizeof arch, &R.size, &err))) goto fail;
    if (!arch[0]) {
        rc = CORED_FAIL(&err, CORED_E_FORMAT, "%s: the metadata does not say which model it holds", ckpt);
        goto fail;
    }
    R.size = R.size ? R.size : 128;
    if ((rc = cored_model_create(&R.m, arch, R.size, batch, CORED_BUILD_INFER, &err)) ||
        (rc = cored_model_load(R.m, ckpt, &err)))
        goto fail;
    if (!(R.crops = cored_alloc((size_t)batch * R.size * R.size * 3))) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
        goto fail;
    }
    double t0 = cored_now();
    for (int i = 0; i < npos; i++) {
        if (cored_is_dir(pos[i])) {
            int before = files.n;
            if (cli_media_walk(&files, pos[i], 1u << CORED_MEDIA_IMAGE | 1u << CORED_MEDIA_VIDEO, NULL)) {
                fprintf(stderr, "cored: error: %s: cannot read the whole folder: %s\n", pos[i], strerror(errno));
                R.failed++;
            } else if (files.n == before) {
                fprintf(stderr, "cored: error: %s: a folder without photos or videos (.png, .jpg, .jpeg, .mp4, .mov, "
                                ".avi, .mkv, .webm...)\n", pos[i]);
                R.failed++;
            }
        } else if (cli_strlist_push(&files, pos[i])) {
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
            goto fail;
        }
    }
    for (int i = 0; i < files.n; i++) {
        /* a file named like a photo is decoded as one; anything else is given to FFmpeg */
        if (cored_media_kind_of(files.v[i]) == CORED_MEDIA_IMAGE)
            rc = score_image(&R, files.v[i], &img, &file, &cap, &err);
        else
            rc = score_video(&R, files.v[i], &err);
        if (rc) goto fail;
    }
    if ((rc = flush(&R, &err))) goto fail;
    if (R.rows.oom) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory for the results");
        goto fail;
    }
    if (out && (rc = cored_write_atomic(out, write_rows, &R.rows, &err))) goto fail;
    if (!out && R.rows.len) fwrite(R.rows.s, 1, R.rows.len, stdout); /* a CSV header without rows */
    double dt = cored_now() - t0;
    int scored = R.n_fake + R.n_real;
    if (R.n_videos || R.frames_no_face || R.n_no_face)
        fprintf(stderr, "cored detect: %d video(s) scored: %d fake, %d real (mean p(fake) of their frames); %d frame(s) "
                        "without a face; %d input(s) without any face\n",
                R.n_videos, R.v_fake, R.v_real, R.frames_no_face, R.n_no_face);
    if (!scored)
        fprintf(stderr, "cored: error: nothing could be scored: %s\n",
                R.n_no_face && !R.n_unreadable ? "no face found in any input (--whole-image scores whole pictures)"
                : files.n ? "no input could be read" : "no photo or video found");
    fprintf(stderr,
            "cored detect: %d image(s) scored: %d fake, %d real at threshold %g; %d unreadable; %.2f s, %.1f "
            "images/s%s%s%s\n",
            scored, R.n_fake, R.n_real, (double)threshold, R.n_unreadable, dt, dt > 0 ? scored / dt : 0.0,
            out ? "; results in " : "", out ? out : "", out ? (csv ? " (CSV)" : " (JSON lines)") : "");
    rc = R.failed || !scored ? 1 : 0;
    goto done;
fail:
    cli_print_error(&err);
    rc = 1;
done:
    cli_strlist_free(&files);
    free(pos);
    free(uses);
    cored_sb_release(&R.rows);
    free(R.p);
    free(R.pending);
    free(R.vp);
    cored_free(R.crops);
    cored_free(file);
    cored_image_release(&img);
    cored_resizer_release(&R.rz);
    cored_face_detector_free(R.det);
    cored_model_free(R.m);
    return rc;
}
