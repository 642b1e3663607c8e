/*
 * faces_tool: runs cored's face detector (cored_faces_detect) on image files, for the
 * measurements of docs/faces.md (tools/face_eval.py) and the parity test
 * (tests/parity_faces.py). Built by `make build/faces_tool`; not installed.
 *
 *   faces_tool detect [--model F] [--min-score S] [--threads N] [--repeat K] IMAGE...
 *       one JSON line per image: file, width, height, decode_ms, detect_ms (the fastest of
 *       K runs), cpu_ms (the least process CPU time of the K runs: all threads, spinning
 *       included, time waiting for a core excluded), faces [[x0, y0, x1, y1, score], ...]
 *   faces_tool dump [--model F] [--min-score S] [--threads N] IMAGE OUT.safetensors
 *       the decoded pixels (rgb, U8 [h, w, 3]), the network's input (input, F32
 *       [512, 512, 3]), every anchor's box (boxes, F32 [5118, 4], ymin xmin ymax xmax of the
 *       padded square) and score (scores, F32 [5118]) and the faces (faces, F32 [n, 5])
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "data/data.h"
#include "faces/faces.h"
#include "io/safetensors.h"

#define MAX_FACES 256

static void usage(FILE *f)
{
    fprintf(f, "usage: faces_tool detect [--model F] [--min-score S] [--threads N] [--repeat K] IMAGE...\n"
               "       faces_tool dump [--model F] [--min-score S] [--threads N] IMAGE OUT.safetensors\n"
               "--model defaults to " CORED_FACE_MODEL_DEFAULT " (make faces-model), --min-score to %g.\n",
            (double)CORED_FACE_MIN_SCORE);
}

/* CPU seconds of the whole process (every thread; time spent waiting for a core while
   other jobs run is not counted). */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const cored_error *e)
{
    fprintf(stderr, "faces_tool: error: %s\n", e->msg);
    if (e->hint[0]) fprintf(stderr, "  hint: %s\n", e->hint);
    return 1;
}

static int decode(cored_image *img, const char *path, cored_error *err)
{
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = cored_read_file(path, CORED_MAX_FILE_BYTES, &data, &len, err);
    if (!rc) rc = cored_image_decode(img, data, len, path, 0, err);
    cored_free(data);
    return rc;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int dump(cored_face_detector *det, const cored_image *img, const cored_face *faces, int n, const char *out,
                cored_error *err)
{
    float *fx = cored_alloc(sizeof(float) * 5 * (size_t)(n ? n : 1));
    if (!fx) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate");
    for (int i = 0; i < n; i++) {
        fx[5 * i] = faces[i].x0, fx[5 * i + 1] = faces[i].y0, fx[5 * i + 2] = faces[i].x1;
        fx[5 * i + 3] = faces[i].y1, fx[5 * i + 4] = faces[i].score;
    }
    char w[16], h[16], s[16];
    snprintf(w, sizeof w, "%d", img->w);
    snprintf(h, sizeof h, "%d", img->h);
    snprintf(s, sizeof s, "%d", cored_face_detector_square(det));
    const char *meta[] = {"width", w, "height", h, "square", s};
    cored_st_out t[5] = {
        {.name = "rgb", .ndim = 3, .shape = {img->h, img->w, 3}, .raw = img->px, .raw_dtype = CORED_DT_U8},
        {.name = "input", .ndim = 3, .shape = {CORED_FACE_INPUT_SIZE, CORED_FACE_INPUT_SIZE, 3},
         .data = cored_face_detector_input(det)},
        {.name = "boxes", .ndim = 2, .shape = {CORED_FACE_ANCHORS, 4}, .data = cored_face_detector_boxes(det)},
        {.name = "scores", .ndim = 1, .shape = {CORED_FACE_ANCHORS}, .data = cored_face_detector_scores(det)},
        {.name = "faces", .ndim = 2, .shape = {n, 5}, .data = fx},
    };
    int rc = cored_st_write(out, t, 5, meta, 3, err);
    cored_free(fx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1], *model = CORED_FACE_MODEL_DEFAULT;
    if (strcmp(cmd, "detect") && strcmp(cmd, "dump")) {
        usage(stderr);
        return 2;
    }
    float min_score = CORED_FACE_MIN_SCORE;
    int threads = 0, repeat = 1, first = argc;
    for (int i = 2; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--model")) model = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--min-score")) min_score = strtof(argv[++i], NULL);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--repeat")) repeat = atoi(argv[++i]);
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "faces_tool: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    int nfiles = argc - first;
    if (nfiles < 1 || (!strcmp(cmd, "dump") && nfiles != 2) || repeat < 1) {
        usage(stderr);
        return 2;
    }
    cored_set_threads(threads);
    cored_error err = {0};
    cored_face_detector *det = NULL;
    if (cored_face_detector_open(&det, model, &err)) return fail(&err);
    cored_image img = {0};
    cored_face faces[MAX_FACES];
    int status = 0;
    for (int f = first; f < argc; f++) {
        const char *path = argv[f];
        double t0 = cored_now();
        if (decode(&img, path, &err)) {
            status = fail(&err);
            continue;
        }
        double t1 = cored_now(), best = 1e30, best_cpu = 1e30;
        int n = 0;
        for (int r = 0; r < repeat; r++) {
            double s = cored_now(), c = cpu_now();
            if (cored_faces_detect(det, img.px, img.w, img.h, img.w * 3, min_score, faces, MAX_FACES, &n, &err)) {
                status = fail(&err);
                break;
            }
            double e = cored_now() - s, ec = cpu_now() - c;
            if (e < best) best = e;
            if (ec < best_cpu) best_cpu = ec;
        }
        if (!strcmp(cmd, "dump")) {
            if (dump(det, &img, faces, n, argv[f + 1], &err)) status = fail(&err);
            break;
        }
        printf("{\"file\": ");
        json_string(path);
        printf(", \"width\": %d, \"height\": %d, \"decode_ms\": %.3f, \"detect_ms\": %.3f, \"cpu_ms\": %.3f, "
               "\"faces\": [", img.w, img.h, (t1 - t0) * 1e3, best * 1e3, best_cpu * 1e3);
        for (int i = 0; i < n; i++)
            printf("%s[%.3f, %.3f, %.3f, %.3f, %.6f]", i ? ", " : "", (double)faces[i].x0, (double)faces[i].y0,
                   (double)faces[i].x1, (double)faces[i].y1, (double)faces[i].score);
        printf("]}\n");
        fflush(stdout);
    }
    cored_image_release(&img);
    cored_face_detector_free(det);
    return status;
}
