/*
 * cored detect: p(fake) and a label for every image given (files, or folders searched
 * recursively for .png/.jpg/.jpeg), one JSON object per line on stdout, in argument
 * order (folders sorted), or with --out into a file, JSON lines or CSV, written atomically.
 * An unreadable image gets a line with "error" and makes the exit status 1, as does a
 * folder without images; the others are still scored. A summary closes on stderr.
 */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/core.h"
#include "data/data.h"
#include "eval/evaluate.h"
#include "io/checkpoint.h"
#include "opts.h"

static const cli_doc doc = {
    "detect", "--model CKPT [options] FILE|DIR ...",
    "Prints one JSON line per image: {\"path\": ..., \"p_fake\": ..., \"label\": \"fake\"|\"real\"}\n"
    "(label fake when p_fake > --threshold; an unreadable image: {\"path\": ..., \"error\": ...}).\n"
    "With --out FILE they go to FILE instead, as JSON lines, or as CSV with the header\n"
    "path,p_fake,label,error when FILE ends in .csv. A summary closes on standard error:\n"
    "images scored, fake and real at the threshold, unreadable images, seconds, images/s.\n"
    "Folders are searched recursively for .png, .jpg and .jpeg files, in sorted order; a\n"
    "folder without any is an error. Images are resized to the model's input size with the\n"
    "same bilinear resize and normalisation as in training.",
    "cored detect --model run/best.safetensors photo.jpg\n"
    "cored detect --model run/best.safetensors --threshold 0.9 crops/ > scores.jsonl\n"
    "cored detect --model run/best.safetensors --out scores.csv crops/ more-crops/"};

typedef struct {
    char **v;
    int n, cap;
} strlist;

static int push(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        char **v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static int is_image(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

#define MAX_DEPTH 64

/* The folders on the path being walked, so that a symbolic-link loop is noticed. */
typedef struct {
    dev_t dev[MAX_DEPTH];
    ino_t ino[MAX_DEPTH];
    int depth;
} walk_path;

/* Appends the images under dir, sorted; folders already on the path are skipped. */
static int walk(strlist *out, const char *dir, walk_path *wp)
{
    struct stat st;
    if (stat(dir, &st) != 0 || wp->depth >= MAX_DEPTH) return -1;
    for (int i = 0; i < wp->depth; i++)
        if (wp->dev[i] == st.st_dev && wp->ino[i] == st.st_ino) return 0; /* a loop */
    DIR *d = opendir(dir);
    if (!d) return -1;
    wp->dev[wp->depth] = st.st_dev;
    wp->ino[wp->depth] = st.st_ino;
    wp->depth++;
    strlist here = {0};
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL && !rc) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        size_t n = strlen(dir);
        snprintf(path, sizeof path, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", e->d_name);
        if (cored_is_dir(path) || is_image(e->d_name)) rc = push(&here, path);
    }
    closedir(d);
    if (here.n > 1) qsort(here.v, (size_t)here.n, sizeof *here.v, cmp_str);
    for (int i = 0; i < here.n && !rc; i++)
        rc = cored_is_dir(here.v[i]) ? walk(out, here.v[i], wp) : push(out, here.v[i]);
    for (int i = 0; i < here.n; i++) free(here.v[i]);
    free(here.v);
    wp->depth--;
    return rc;
}

static int ends_with_csv(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && !strcasecmp(path + n - 4, ".csv");
}

/* Appends the result of one image to b: a JSON line, or a CSV row (path,p_fake,label,error). */
static void add_row(cored_sb *b, int csv, const char *path, float p, float threshold, const char *error)
{
    if (csv) {
        cored_sb_csv(b, "%s", path);
        if (error) {
            cored_sb_printf(b, ",,,");
            cored_sb_csv(b, "%s", error);
        } else {
            cored_sb_printf(b, ",%.6f,%s,", (double)p, p > threshold ? "fake" : "real");
        }
        cored_sb_printf(b, "\n");
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "path", path);
    if (error) {
        cJSON_AddStringToObject(j, "error", error);
    } else {
        cJSON_AddNumberToObject(j, "p_fake", (double)(int)(p * 1e6 + 0.5) / 1e6);
        cJSON_AddStringToObject(j, "label", p > threshold ? "fake" : "real");
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

int cmd_detect(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL;
    int batch = 16, threads = 0;
    float threshold = 0.5f;
    opt_def defs[] = {
        {"model", OPT_STR, &ckpt, 0, 0, NULL, "CKPT", "trained checkpoint (safetensors)", NULL, OPT_REQUIRED},
        {"threshold", OPT_FLOAT, &threshold, 0, 1, NULL, "P", "p(fake) above which an image is labelled fake"},
        {"batch", OPT_INT, &batch, 1, 1024, NULL, "N", "images per forward pass"},
        {"threads", OPT_INT, &threads, 0, 1024, NULL, "N", "compute threads", "all cores"},
        {"out", OPT_STR, &out, 0, 0, NULL, "FILE",
         "write the results to FILE (replaced when complete): CSV when it ends in .csv, else JSON lines; "
         "'-': standard output", "standard output"},
    };
    char **pos = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!pos) return 1;
    int npos = 0, rc = opts_parse(&doc, argc, argv, defs, sizeof defs / sizeof defs[0], pos, argc, &npos, NULL);
    if (rc) {
        free(pos);
        return rc == 1 ? 0 : rc;
    }
    if (npos == 0) {
        free(pos);
        return cli_usage_error("detect", "at least one FILE or DIR is required");
    }
    if (out && !strcmp(out, "-")) out = NULL;
    cored_set_threads(threads);
    strlist files = {0};
    int failed = 0, n_fake = 0, n_real = 0, n_unreadable = 0, csv = out && ends_with_csv(out);
    cored_sb rows = {0};
    cored_path_use *uses = NULL;
    cored_error err = {0};
    cored_model *m = NULL;
    char arch[64];
    int size = 0;
    uint8_t *file = NULL, *rgb = NULL;
    size_t cap = 0;
    cored_image img = {0};
    cored_resizer rz = {0};
    float lut[256], *p = malloc(sizeof(float) * (size_t)batch);
    int *ok = malloc(sizeof(int) * (size_t)batch);
    char (*errors)[256] = malloc(sizeof *errors * (size_t)batch);
    cored_normalize_lut(lut);
    if (!p || !ok || !errors) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
        goto fail;
    }
    if (out) {
        /* --out must not replace the model or an image given, nor be an image in a folder
           searched (a later run would read it); another file in such a folder is never read */
        if (!(uses = calloc((size_t)npos + 2, sizeof *uses))) {
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
            goto fail;
        }
        uses[0] = (cored_path_use){ckpt, "--model", CORED_PATH_INPUT};
        uses[1] = (cored_path_use){out, "--out", CORED_PATH_OUTPUT};
        for (int i = 0; i < npos; i++)
            uses[i + 2] = cored_is_dir(pos[i]) ? (cored_path_use){is_image(out) ? pos[i] : NULL, "DIR",
                                                                  CORED_PATH_SOURCES}
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
        if (csv) cored_sb_printf(&rows, "path,p_fake,label,error\n");
    }
    if ((rc = cored_checkpoint_peek(ckpt, arch, sizeof arch, &size, &err))) goto fail;
    if (!arch[0]) {
        rc = CORED_FAIL(&err, CORED_E_FORMAT, "%s: the metadata does not say which model it holds", ckpt);
        goto fail;
    }
    size = size ? size : 128;
    if ((rc = cored_model_create(&m, arch, size, batch, CORED_BUILD_INFER, &err)) ||
        (rc = cored_model_load(m, ckpt, &err)))
        goto fail;
    double t0 = cored_now();
    for (int i = 0; i < npos; i++) {
        if (cored_is_dir(pos[i])) {
            walk_path wp = {.depth = 0};
            int before = files.n;
            if (walk(&files, pos[i], &wp)) {
                fprintf(stderr, "cored: error: %s: cannot read the whole folder: %s\n", pos[i], strerror(errno));
                failed++;
            } else if (files.n == before) {
                fprintf(stderr, "cored: error: %s: a folder without images (.png, .jpg, .jpeg)\n", pos[i]);
                failed++;
            }
        } else if (push(&files, pos[i])) {
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
            goto fail;
        }
    }
    const size_t n_img = (size_t)size * size * 3;
    if (!(rgb = cored_alloc(n_img))) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
        goto fail;
    }
    for (int b0 = 0; b0 < files.n; b0 += batch) {
        int nb = files.n - b0 < batch ? files.n - b0 : batch, k = 0;
        for (int i = 0; i < nb; i++) {
            cored_error e2 = {0};
            ok[i] = cored_image_read_rgb8(rgb, size, files.v[b0 + i], &file, &cap, &img, &rz, &e2) == 0;
            if (!ok[i]) {
                snprintf(errors[i], sizeof errors[i], "%.250s", e2.msg);
                continue;
            }
            float *x = cored_model_input(m) + (size_t)k++ * n_img;
            for (size_t q = 0; q < n_img; q++) x[q] = lut[rgb[q]];
        }
        if (k && (rc = cored_model_forward(m, k, CORED_FWD_EVAL, 0, &err))) goto fail;
        if (k) cored_p_fake(p, cored_model_logits(m), k);
        for (int i = 0, j = 0; i < nb; i++) {
            if (ok[i]) {
                float pi = p[j++];
                add_row(&rows, csv, files.v[b0 + i], pi, threshold, NULL);
                if (pi > threshold)
                    n_fake++;
                else
                    n_real++;
            } else {
                add_row(&rows, csv, files.v[b0 + i], 0, threshold, errors[i]);
                fprintf(stderr, "cored: error: %s\n", errors[i]);
                n_unreadable++;
                failed++;
            }
        }
        if (rows.oom) {
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory for the results");
            goto fail;
        }
        if (!out && rows.len) {
            fwrite(rows.s, 1, rows.len, stdout);
            rows.len = 0;
            if (cli_flush_stdout()) break; /* cli_exit reports it */
        }
    }
    if (out && (rc = cored_write_atomic(out, write_rows, &rows, &err))) goto fail;
    double dt = cored_now() - t0;
    fprintf(stderr,
            "cored detect: %d image(s) scored: %d fake, %d real at threshold %g; %d unreadable; %.2f s, %.1f "
            "images/s%s%s%s\n",
            n_fake + n_real, n_fake, n_real, (double)threshold, n_unreadable, dt,
            dt > 0 ? (n_fake + n_real) / dt : 0.0, out ? "; results in " : "", out ? out : "",
            out ? (csv ? " (CSV)" : " (JSON lines)") : "");
    rc = failed ? 1 : 0;
    goto done;
fail:
    cli_print_error(&err);
    rc = 1;
done:
    for (int i = 0; i < files.n; i++) free(files.v[i]);
    free(files.v);
    free(pos);
    free(uses);
    cored_sb_release(&rows);
    free(p);
    free(ok);
    free(errors);
    cored_free(file);
    cored_free(rgb);
    cored_image_release(&img);
    cored_resizer_release(&rz);
    cored_model_free(m);
    return rc;
}
