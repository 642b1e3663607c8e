/*
 * From media files to faces (extract.h): photos and videos by extension, the faces of each
 * sampled frame with a simple IoU tracker, and face crops written as complete folders.
 */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data.h"
#include "faces/extract.h"
#include "io/json.h"
#include "synth/synth.h"

cored_media_kind cored_media_kind_of(const char *name)
{
    static const char *const images[] = {".png", ".jpg", ".jpeg", NULL};
    static const char *const videos[] = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg",
                                         ".ts",  ".mts", ".flv", ".wmv", ".3gp", ".ogv", ".y4m", NULL};
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash + 1 : name, '.');
    if (!dot) return CORED_MEDIA_OTHER;
    for (int i = 0; images[i]; i++)
        if (!strcasecmp(dot, images[i])) return CORED_MEDIA_IMAGE;
    for (int i = 0; videos[i]; i++)
        if (!strcasecmp(dot, videos[i])) return CORED_MEDIA_VIDEO;
    return CORED_MEDIA_OTHER;
}

/* ---------------------------------------------------------------- tracking */

static double area(const cored_face *f) { return ((double)f->x1 - f->x0) * ((double)f->y1 - f->y0); }

static double iou(const cored_face *a, const cored_face *b)
{
    double ix = fmin(a->x1, b->x1) - fmax(a->x0, b->x0), iy = fmin(a->y1, b->y1) - fmax(a->y0, b->y0);
    if (ix <= 0 || iy <= 0) return 0;
    double inter = ix * iy, u = area(a) + area(b) - inter;
    return u > 0 ? inter / u : 0;
}

int cored_face_track_pick(cored_face_track *t, const cored_face *faces, int n)
{
    if (n <= 0) return -1;
    int best = -1;
    if (t->active) {
        double bi = 0.1;
        for (int i = 0; i < n; i++) {
            double v = iou(&faces[i], &t->last);
            if (v >= bi) bi = v, best = i;
        }
        if (best < 0) {
            double side = fmax((double)t->last.x1 - t->last.x0, (double)t->last.y1 - t->last.y0);
            double cx = 0.5 * ((double)t->last.x0 + t->last.x1), cy = 0.5 * ((double)t->last.y0 + t->last.y1);
            double bd = side;
            for (int i = 0; i < n; i++) {
                double dx = 0.5 * ((double)faces[i].x0 + faces[i].x1) - cx;
                double dy = 0.5 * ((double)faces[i].y0 + faces[i].y1) - cy;
                double d = sqrt(dx * dx + dy * dy);
                if (d < bd) bd = d, best = i;
            }
        }
        if (best < 0 && ++t->lost < 3) return -1;
    }
    if (best < 0) { /* a new track: the largest face (the better score on a tie: listed first) */
        best = 0;
        for (int i = 1; i < n; i++)
            if (area(&faces[i]) > area(&faces[best])) best = i;
    }
    t->active = 1;
    t->lost = 0;
    t->last = faces[best];
    return best;
}

/* ---------------------------------------------------------------- scanning */

static int scan_frame(cored_face_detector *det, const uint8_t *px, int w, int h, int64_t index, double time,
                      const cored_face_scan_opts *o, cored_face_track *track, cored_face *faces,
                      cored_face_frame_fn fn, void *user, cored_face_scan_stats *st, cored_error *err)
{
    int n = 0;
    int rc = cored_faces_detect(det, px, w, h, 3 * w, o->min_score, faces, CORED_FACES_MAX_PER_FRAME, &n, err);
    if (rc) return rc;
    cored_face_frame f = {px, w, h, index, time, faces, n, n};
    if (!o->all_faces) {
        int k = cored_face_track_pick(track, faces, n);
        f.faces = k >= 0 ? &faces[k] : NULL;
        f.n_faces = k >= 0;
    }
    st->frames++;
    st->faces += f.n_faces;
    if (!f.n_faces) st->frames_without_face++;
    return fn(&f, user, err);
}

int cored_faces_scan_video(cored_face_detector *det, const char *path, const cored_face_scan_opts *o,
                           cored_face_frame_fn fn, void *user, cored_face_scan_stats *st, cored_error *err)
{
    memset(st, 0, sizeof *st);
    cored_video *v = NULL;
    int rc = cored_video_open(&v, path, NULL, err);
    if (rc) return rc;
    cored_face *faces = cored_alloc(sizeof *faces * CORED_FACES_MAX_PER_FRAME);
    if (!faces) rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    if (!rc) rc = cored_video_start(v, &o->how, err);
    cored_face_track track = {0};
    cored_video_frame fr;
    int r;
    while (!rc && (r = cored_video_next(v, &fr, err)) == 1)
        rc = scan_frame(det, fr.px, fr.w, fr.h, fr.index, fr.time, o, &track, faces, fn, user, st, err);
    if (!rc && r < 0) rc = r;
    if (!rc) st->damaged = cored_video_get_stats(v)->damaged;
    cored_free(faces);
    cored_video_close(v);
    return rc;
}

int cored_faces_scan_image(cored_face_detector *det, const char *path, const cored_face_scan_opts *o,
                           cored_face_frame_fn fn, void *user, cored_face_scan_stats *st, cored_error *err)
{
    memset(st, 0, sizeof *st);
    cored_image img = {0};
    uint8_t *data = NULL;
    size_t len = 0;
    cored_face *faces = cored_alloc(sizeof *faces * CORED_FACES_MAX_PER_FRAME);
    int rc = faces ? 0 : CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    if (!rc) rc = cored_read_file(path, CORED_MAX_FILE_BYTES, &data, &len, err);
    if (!rc) rc = cored_image_decode(&img, data, len, path, 0, err);
    cored_face_track track = {0};
    if (!rc) rc = scan_frame(det, img.px, img.w, img.h, 0, 0, o, &track, faces, fn, user, st, err);
    cored_free(data);
    cored_free(faces);
    cored_image_release(&img);
    return rc;
}

/* ---------------------------------------------------------------- writing crops */

typedef struct {
    const char *src, *dir, *final_dir; /* dir: where the crops go now (the temporary folder) */
    int as_file;
    const cored_face_extract_opts *o;
    uint8_t *crop;
    cored_sb lines;
    char (*written)[4096]; /* photo crops: temporary names and their final names */
    int n_written, cap_written;
} extract_ctx;

static void add_line(extract_ctx *c, const char *crop, const cored_face_frame *f, const cored_face *face)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "source", c->src);
    cJSON_AddStringToObject(j, "crop", crop);
    cJSON_AddNumberToObject(j, "frame", (double)f->index);
    cJSON_AddNumberToObject(j, "time", round(f->time * 1e6) / 1e6);
    cJSON *box = cJSON_AddArrayToObject(j, "box");
    const float b[4] = {face->x0, face->y0, face->x1, face->y1};
    for (int i = 0; i < 4; i++) cJSON_AddItemToArray(box, cJSON_CreateNumber(round(b[i] * 100.0) / 100.0));
    cJSON_AddNumberToObject(j, "score", round(face->score * 1e5) / 1e5);
    char *s = cored_json_line(j);
    if (s)
        cored_sb_printf(&c->lines, "%s", s);
    else
        c->lines.oom = 1;
    cored_free(s);
    cJSON_Delete(j);
}

static int on_frame(const cored_face_frame *f, void *user, cored_error *err)
{
    extract_ctx *c = user;
    for (int k = 0; k < f->n_faces; k++) {
        int rc = cored_face_crop(c->crop, c->o->size, f->px, f->w, f->h, 3 * f->w, &f->faces[k], c->o->margin, err);
        if (rc) return rc;
        char path[4096], final[4096];
        int n;
        if (c->as_file) {
            if (c->n_written == c->cap_written) {
                int cap = c->cap_written ? 2 * c->cap_written : 4;
                void *p = cored_realloc(c->written, sizeof *c->written * 2 * (size_t)cap);
                if (!p) return CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
                c->written = p;
                c->cap_written = cap;
            }
            if (c->o->scan.all_faces)
                n = snprintf(final, sizeof final, "%s_%d.png", c->final_dir, k);
            else
                n = snprintf(final, sizeof final, "%s.png", c->final_dir);
            if (n < (int)sizeof final) n = snprintf(path, sizeof path, "%s.cored-part", final);
        } else {
            if (c->o->scan.all_faces)
                n = snprintf(path, sizeof path, "%s/%06lld_%d.png", c->dir, (long long)f->index, k);
            else
                n = snprintf(path, sizeof path, "%s/%06lld.png", c->dir, (long long)f->index);
            if (n < (int)sizeof path) {
                const char *name = strrchr(path, '/') + 1;
                n = snprintf(final, sizeof final, "%s/%s", c->final_dir, name);
            }
        }
        if (n >= (int)sizeof final) return CORED_FAIL(err, CORED_E_ARG, "%s: the output path is too long", c->dir);
        if ((rc = cored_png_write(path, c->crop, c->o->size, c->o->size, err))) return rc;
        if (c->as_file) {
            memcpy(c->written[2 * c->n_written], path, sizeof path);
            memcpy(c->written[2 * c->n_written + 1], final, sizeof final);
            c->n_written++;
        }
        add_line(c, final, f, &f->faces[k]);
    }
    return 0;
}

/* Removes a temporary folder of ours: its files (crops), then the folder. */
static void remove_part_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p) unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int fsync_dir(const char *dir)
{
    FILE *f = fopen(dir, "r");
    if (!f) return -1;
    int rc = fsync(fileno(f));
    fclose(f);
    return rc;
}

int cored_faces_extract(cored_face_detector *det, const char *src, cored_media_kind kind, const char *dir,
                        const cored_face_extract_opts *o, cored_sb *index, cored_face_scan_stats *st,
                        cored_error *err)
{
    extract_ctx c = {.src = src, .final_dir = dir, .as_file = kind == CORED_MEDIA_IMAGE, .o = o};
    char part[4096];
    const char *slash = strrchr(dir, '/');
    int n = slash ? snprintf(part, sizeof part, "%.*s/.%s.cored-part", (int)(slash - dir), dir, slash + 1)
                  : snprintf(part, sizeof part, ".%s.cored-part", dir);
    if (n >= (int)sizeof part) return CORED_FAIL(err, CORED_E_ARG, "%s: the output path is too long", dir);
    if (!(c.crop = cored_alloc((size_t)o->size * o->size * 3))) return CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    int rc = 0;
    if (!c.as_file) {
        remove_part_dir(part);
        if (mkdir(part, 0777) != 0) rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot create: %s", part, strerror(errno));
        c.dir = part;
    }
    if (!rc)
        rc = kind == CORED_MEDIA_VIDEO ? cored_faces_scan_video(det, src, &o->scan, on_frame, &c, st, err)
                                       : cored_faces_scan_image(det, src, &o->scan, on_frame, &c, st, err);
    if (!rc && c.lines.oom) rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    if (!rc && st->faces > 0) {
        if (c.as_file) {
            for (int i = 0; i < c.n_written && !rc; i++)
                if (rename(c.written[2 * i], c.written[2 * i + 1]) != 0)
                    rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot rename to %s: %s", c.written[2 * i],
                                    c.written[2 * i + 1], strerror(errno));
        } else if (fsync_dir(part) != 0 || rename(part, dir) != 0) {
            rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot rename to %s: %s", part, dir, strerror(errno));
        }
        if (!rc) {
            char parent[4096];
            snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash == dir ? 1 : slash - dir) : 1, slash ? dir : ".");
            fsync_dir(parent);
        }
    }
    if (c.as_file) {
        if (rc || st->faces == 0)
            for (int i = 0; i < c.n_written; i++) unlink(c.written[2 * i]);
    } else if (rc || st->faces == 0) {
        remove_part_dir(part);
    }
    if (!rc && index && c.lines.len) cored_sb_printf(index, "%s", c.lines.s);
    if (!rc && index && index->oom) rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    cored_free(c.crop);
    cored_free(c.written);
    cored_sb_release(&c.lines);
    return rc;
}
