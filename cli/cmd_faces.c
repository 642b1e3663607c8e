/*
 * cored faces: videos and photos (or folders of them) -> square face crops, one folder per
 * video, with DIR/index.jsonl; and --ffpp: FaceForensics++'s download layout and official
 * splits -> the CoReD layout, one task per manipulation method. Resumable: a video whose
 * folder exists is done (folders are written under a temporary name and renamed whole).
 */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/core.h"
#include "faces/extract.h"
#include "io/json.h"
#include "opts.h"
#include "progress.h"

static const cli_doc doc = {
    "faces", "IN... --out DIR [options]\n--ffpp ROOT [--compression c23] [--splits DIR] --out DATA [options]",
    "Finds the faces in videos and photos (files, or folders searched recursively) and writes\n"
    "square crops: the detector's box x --margin around its centre, resized to --size, PNG.\n"
    "A video gives a folder DIR/<video>/<frame>.png of --frames frames sampled evenly (or --fps\n"
    "per second); a photo gives DIR/<photo>.png. Inputs inside a folder IN keep their path\n"
    "below IN. One face per frame: the largest, followed through the video by its overlap with\n"
    "the last one kept (one identity per video); --all-faces keeps every face\n"
    "(<frame>_<k>.png, k = 0 the best). DIR/index.jsonl gets one line per crop: source, crop,\n"
    "frame, time, box, score. A folder is written under a hidden temporary name and renamed\n"
    "when complete, so a second run skips the videos done and a kill leaves nothing half-written.\n"
    "\n"
    "--ffpp ROOT reads FaceForensics++ as downloaded (original_sequences/youtube/<c>/videos,\n"
    "manipulated_sequences/<Method>/<c>/videos) with its official split files train.json,\n"
    "val.json and test.json (from ROOT/splits, or --splits DIR) and writes the CoReD layout\n"
    "DATA/<Method>/<split>/{real,fake}/<video>/<frame>.png: one task per method, the original\n"
    "videos of each split cropped once and hard-linked into every task.\n"
    "The face detector comes from `make faces-model`.",
    "cored faces clip.mp4 videos/ --out crops\n"
    "cored faces --ffpp FaceForensics++ --compression c23 --frames 32 --out DATA\n"
    "cored protocol --data DATA --tasks Deepfakes,Face2Face --model xception"};

typedef struct {
    char *src;         /* the video or photo; NULL for a link job */
    cored_media_kind kind;
    char *dst;         /* folder of a video; for a photo the path without ".png" */
    int link_from;     /* >= 0: a copy (hard links) of that job's folder */
    int state;         /* 0 to do, 1 done now, 2 was done, 3 no face, 4 failed, 5 skipped */
    const char *listed; /* --ffpp: the split file naming it */
} job;

typedef struct {
    job *v;
    int n, cap;
} joblist;

static int add_job(joblist *l, const char *src, cored_media_kind kind, const char *dst, int link_from,
                   const char *listed)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        job *v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    job *j = &l->v[l->n];
    *j = (job){src ? strdup(src) : NULL, kind, strdup(dst), link_from, 0, listed};
    if (!j->dst || (src && !j->src)) return -1;
    l->n++;
    return 0;
}

static int is_done(const job *j)
{
    char p[4200];
    if (j->kind == CORED_MEDIA_IMAGE) {
        snprintf(p, sizeof p, "%s.png", j->dst);
        if (cored_is_file(p)) return 1;
        snprintf(p, sizeof p, "%s_0.png", j->dst);
        return cored_is_file(p);
    }
    return cored_is_dir(j->dst);
}

/* The path without its extension. */
static void strip_ext(char *s)
{
    char *slash = strrchr(s, '/'), *dot = strrchr(s, '.');
    if (dot && (!slash || dot > slash + 1)) *dot = 0;
}

static int cmp_dst(const void *a, const void *b)
{
    const job *x = *(const job *const *)a, *y = *(const job *const *)b;
    return strcmp(x->dst, y->dst);
}

/* Plans the jobs of IN... */
static int plan_inputs(joblist *jobs, char **pos, int npos, const char *out, cored_error *err)
{
    cli_strlist files = {0};
    for (int i = 0; i < npos; i++) {
        const char *in = pos[i];
        if (cored_is_dir(in)) {
            cli_media_others others = {0};
            int before = files.n;
            if (cli_media_walk(&files, in, 1u << CORED_MEDIA_IMAGE | 1u << CORED_MEDIA_VIDEO, &others)) {
                cli_strlist_free(&files);
                return CORED_FAIL(err, CORED_E_IO, "%s: cannot read the whole folder: %s", in, strerror(errno));
            }
            if (others.n)
                cored_log(CORED_LOG_WARN, "%s: %d file(s) neither photos nor videos ignored (e.g. %s)", in, others.n,
                          others.example);
            if (files.n == before) {
                cli_strlist_free(&files);
                return CORED_FAIL(err, CORED_E_ARG, "%s: a folder without videos or photos", in);
            }
            size_t len = strlen(in);
            while (len > 1 && in[len - 1] == '/') len--;
            for (int k = before; k < files.n; k++) {
                char dst[4200];
                const char *rel = files.v[k] + len + (files.v[k][len] == '/');
                if (snprintf(dst, sizeof dst, "%s/%s", out, rel) >= 4096) {
                    cli_strlist_free(&files);
                    return CORED_FAIL(err, CORED_E_ARG, "%s: the output path is too long", files.v[k]);
                }
                strip_ext(dst);
                if (add_job(jobs, files.v[k], cored_media_kind_of(files.v[k]), dst, -1, NULL)) goto oom;
            }
        } else {
            struct stat st;
            if (stat(in, &st) != 0) {
                cli_strlist_free(&files);
                return CORED_FAIL(err, CORED_E_IO, "%s: %s", in, strerror(errno));
            }
            const char *base = strrchr(in, '/') ? strrchr(in, '/') + 1 : in;
            char dst[4200];
            if (snprintf(dst, sizeof dst, "%s/%s", out, base) >= 4096)
                return CORED_FAIL(err, CORED_E_ARG, "%s: the output path is too long", in);
            strip_ext(dst);
            /* a file named explicitly is a video unless it is named like a photo: FFmpeg decides */
            cored_media_kind k = cored_media_kind_of(in) == CORED_MEDIA_IMAGE ? CORED_MEDIA_IMAGE : CORED_MEDIA_VIDEO;
            if (add_job(jobs, in, k, dst, -1, NULL)) goto oom;
        }
    }
    cli_strlist_free(&files);
    /* two inputs may not share an output */
    const job **by = malloc(sizeof *by * (size_t)(jobs->n ? jobs->n : 1));
    if (!by) goto oom;
    for (int i = 0; i < jobs->n; i++) by[i] = &jobs->v[i];
    qsort(by, (size_t)jobs->n, sizeof *by, cmp_dst);
    int rc = 0;
    for (int i = 1; i < jobs->n && !rc; i++)
        if (!strcmp(by[i]->dst, by[i - 1]->dst))
            rc = CORED_FAIL(err, CORED_E_ARG, "%s and %s would both be written to %s", by[i - 1]->src, by[i]->src,
                            by[i]->dst);
    if (rc) cored_error_hint(err, "give them in separate runs with different --out folders");
    free(by);
    return rc;
oom:
    cli_strlist_free(&files);
    return CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
}

/* ---------------------------------------------------------------- FaceForensics++ */

static const char *const split_names[] = {"train", "val", "test"};
/* The manipulation methods of FaceForensics++ whose videos are named <target>_<source>.mp4. */
static const char *const ffpp_methods[] = {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", NULL};

/* Reads a split file: a JSON list of [id_a, id_b] pairs. */
static int read_split(const char *path, char ***ids, int *n, cored_error *err)
{
    *ids = NULL;
    *n = 0;
    if (!cored_is_file(path)) {
        int rc = CORED_FAIL(err, CORED_E_IO, "%s: the split file is missing", path);
        cored_error_hint(err, "train.json, val.json and test.json are in FaceForensics++'s repository, "
                              "dataset/splits/ (github.com/ondyari/FaceForensics): copy them to ROOT/splits or "
                              "give --splits DIR");
        return rc;
    }
    cJSON *j = cored_json_load(path, 16 << 20, err);
    if (!j) return err->code ? err->code : CORED_E_FORMAT;
    int rc = 0, count = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
    if (count < 0) rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: not a JSON list of [id, id] pairs", path);
    char **v = count > 0 ? calloc((size_t)count * 2, sizeof *v) : NULL;
    if (!rc && count > 0 && !v) rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    for (int i = 0; i < count && !rc; i++) {
        cJSON *p = cJSON_GetArrayItem(j, i);
        for (int k = 0; k < 2 && !rc; k++) {
            cJSON *s = cJSON_IsArray(p) && cJSON_GetArraySize(p) == 2 ? cJSON_GetArrayItem(p, k) : NULL;
            const char *id = cJSON_IsString(s) ? s->valuestring : NULL;
            int ok = id && id[0] && strlen(id) < 64;
            for (const char *c = id; ok && *c; c++) ok = (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                                                        (*c >= 'A' && *c <= 'Z') || *c == '-';
            if (!ok)
                rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: pair %d is not [id, id] of two video ids (digits, letters)",
                                path, i + 1);
            else if (!(v[2 * i + k] = strdup(id)))
                rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
        }
    }
    cJSON_Delete(j);
    if (rc) {
        for (int i = 0; v && i < 2 * count; i++) free(v[i]);
        free(v);
        return rc;
    }
    *ids = v;
    *n = count;
    return 0;
}

static int plan_ffpp(joblist *jobs, const char *root, const char *comp, const char *splits_dir, const char *methods,
                     const char *out, char split_files[3][4200], cored_error *err)
{
    /* the compression's folder: c0 is "raw" in the download script's layout */
    char orig[4200], buf[4200];
    const char *cdir = comp;
    snprintf(orig, sizeof orig, "%s/original_sequences/youtube/%s/videos", root, cdir);
    if (!strcmp(comp, "c0") && !cored_is_dir(orig)) {
        cdir = "raw";
        snprintf(orig, sizeof orig, "%s/original_sequences/youtube/%s/videos", root, cdir);
    }
    if (!cored_is_dir(root)) return CORED_FAIL(err, CORED_E_IO, "--ffpp %s: not a folder", root);
    if (!cored_is_dir(orig)) {
        int rc = CORED_FAIL(err, CORED_E_IO, "--ffpp %s: %s is missing", root, orig);
        cored_error_hint(err, "FaceForensics++'s download script writes original_sequences/youtube/%s/videos "
                              "(download.py ROOT -d original -c %s -t videos)", comp, comp);
        return rc;
    }
    /* the methods: those asked for, or every one of FaceForensics++'s present */
    const char *names[16];
    int n_methods = 0;
    char *mlist = methods ? strdup(methods) : NULL;
    if (methods) {
        n_methods = mlist ? opts_split(mlist, names, 16) : -1;
        if (n_methods <= 0) {
            free(mlist);
            return CORED_FAIL(err, CORED_E_ARG, "--methods %s: a comma list of methods", methods);
        }
    } else {
        for (int i = 0; ffpp_methods[i]; i++) {
            snprintf(buf, sizeof buf, "%s/manipulated_sequences/%s/%s/videos", root, ffpp_methods[i], cdir);
            if (cored_is_dir(buf)) names[n_methods++] = ffpp_methods[i];
        }
        if (!n_methods) {
            int rc = CORED_FAIL(err, CORED_E_IO, "--ffpp %s: no manipulated_sequences/<Method>/%s/videos folder", root,
                                cdir);
            cored_error_hint(err, "methods looked for: Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter");
            return rc;
        }
    }
    int rc = 0;
    for (int m = 0; m < n_methods && !rc; m++) {
        snprintf(buf, sizeof buf, "%s/manipulated_sequences/%s/%s/videos", root, names[m], cdir);
        if (strchr(names[m], '/') || strchr(names[m], '_') || !names[m][0])
            rc = CORED_FAIL(err, CORED_E_ARG, "--methods: '%s' is not a method name", names[m]);
        else if (!cored_is_dir(buf))
            rc = CORED_FAIL(err, CORED_E_IO, "--ffpp %s: %s is missing", root, buf);
    }
    /* the splits */
    char **ids[3] = {0};
    int n_pairs[3] = {0};
    for (int s = 0; s < 3 && !rc; s++) {
        snprintf(split_files[s], 4200, "%s/%s.json", splits_dir ? splits_dir : root, split_names[s]);
        if (!splits_dir) snprintf(split_files[s], 4200, "%s/splits/%s.json", root, split_names[s]);
        rc = read_split(split_files[s], &ids[s], &n_pairs[s], err);
    }
    /* an id in two splits would leak between training and test */
    for (int s = 0; s < 3 && !rc; s++)
        for (int t = s + 1; t < 3 && !rc; t++)
            for (int i = 0; i < 2 * n_pairs[s] && !rc; i++)
                for (int k = 0; k < 2 * n_pairs[t] && !rc; k++)
                    if (!strcmp(ids[s][i], ids[t][k]))
                        rc = CORED_FAIL(err, CORED_E_FORMAT, "video %s is in both %s and %s", ids[s][i],
                                        split_files[s], split_files[t]);
    /* jobs: per method, per split, the originals (cropped for the first method, hard links
       for the others) then the fakes <a>_<b> and <b>_<a> */
    int first_real[3] = {0};
    for (int m = 0; m < n_methods && !rc; m++)
        for (int s = 0; s < 3 && !rc; s++) {
            if (m == 0) first_real[s] = jobs->n;
            for (int i = 0; i < 2 * n_pairs[s] && !rc; i++) {
                const char *id = ids[s][i];
                char src[4200], dst[4200];
                if (snprintf(src, sizeof src, "%s/%s.mp4", orig, id) >= (int)sizeof src ||
                    snprintf(dst, sizeof dst, "%s/%s/%s/real/%s", out, names[m], split_names[s], id) >= (int)sizeof dst)
                    rc = CORED_FAIL(err, CORED_E_ARG, "%s: the paths are too long", orig);
                else if (add_job(jobs, m == 0 ? src : NULL, CORED_MEDIA_VIDEO, dst, m == 0 ? -1 : first_real[s] + i,
                            split_files[s]))
                    rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
            }
            for (int i = 0; i < n_pairs[s] && !rc; i++)
                for (int k = 0; k < 2 && !rc; k++) {
                    const char *a = ids[s][2 * i + k], *b = ids[s][2 * i + 1 - k];
                    char src[4200], dst[4200];
                    snprintf(src, sizeof src, "%s/manipulated_sequences/%s/%s/videos/%s_%s.mp4", root, names[m], cdir,
                             a, b);
                    snprintf(dst, sizeof dst, "%s/%s/%s/fake/%s_%s", out, names[m], split_names[s], a, b);
                    if (add_job(jobs, src, CORED_MEDIA_VIDEO, dst, -1, split_files[s]))
                        rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
                }
        }
    for (int s = 0; s < 3; s++) {
        for (int i = 0; ids[s] && i < 2 * n_pairs[s]; i++) free(ids[s][i]);
        free(ids[s]);
    }
    free(mlist);
    return rc;
}

/* ---------------------------------------------------------------- hard-linked copies */

static int copy_file(const char *from, const char *to, cored_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = cored_read_file(from, (size_t)1 << 30, &data, &len, err);
    if (rc) return rc;
    FILE *f = fopen(to, "wb");
    if (!f) rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot create: %s", to, strerror(errno));
    if (!rc) rc = cored_fwrite_all(f, data, len, to, err);
    if (f && fclose(f) != 0 && !rc) rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot write: %s", to, strerror(errno));
    cored_free(data);
    return rc;
}

/* dst becomes a folder of hard links (copies across file systems) to the files of from,
   built under a temporary name and renamed when complete. */
static int link_folder(const char *from, const char *dst, cored_error *err)
{
    char part[4200], a[4200], b[4200];
    const char *slash = strrchr(dst, '/');
    snprintf(part, sizeof part, "%.*s/.%s.cored-part", (int)(slash - dst), dst, slash + 1);
    DIR *d = opendir(part);
    if (d) { /* an interrupted run's: our links only */
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.' && snprintf(a, sizeof a, "%s/%s", part, e->d_name) < (int)sizeof a) unlink(a);
        closedir(d);
        rmdir(part);
    }
    if (mkdir(part, 0777) != 0) return CORED_FAIL(err, CORED_E_IO, "%s: cannot create: %s", part, strerror(errno));
    int rc = 0;
    if (!(d = opendir(from))) rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot read: %s", from, strerror(errno));
    struct dirent *e;
    while (!rc && d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (snprintf(a, sizeof a, "%s/%s", from, e->d_name) >= (int)sizeof a ||
            snprintf(b, sizeof b, "%s/%s", part, e->d_name) >= (int)sizeof b)
            rc = CORED_FAIL(err, CORED_E_ARG, "%s: the path is too long", part);
        else if (link(a, b) != 0)
            rc = copy_file(a, b, err);
    }
    if (d) closedir(d);
    if (!rc && rename(part, dst) != 0)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot rename to %s: %s", part, dst, strerror(errno));
    if (rc) {
        if ((d = opendir(part))) {
            while ((e = readdir(d)) != NULL)
                if (e->d_name[0] != '.' && snprintf(a, sizeof a, "%s/%s", part, e->d_name) < (int)sizeof a) unlink(a);
            closedir(d);
        }
        rmdir(part);
    }
    return rc;
}

static int parent_mkdir(const char *path, cored_error *err)
{
    char dir[4200];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    return cored_mkdir_p(dir, err);
}

/* ---------------------------------------------------------------- the command */

int cmd_faces(int argc, char **argv)
{
    const char *out = NULL, *model = cli_face_model_default(), *ffpp = NULL, *splits = NULL, *methods = NULL;
    int frames = 32, size = 256, all_faces = 0, threads = 0, quiet = 0, comp_i = 1;
    double fps = 0;
    float margin = 1.3f, min_score = CORED_FACE_MIN_SCORE;
    static const char *const comps[] = {"c0", "c23", "c40", NULL};
    opt_def defs[] = {
        {"out", OPT_STR, &out, 0, 0, NULL, "DIR", "where the crops go (created when missing)", NULL, OPT_REQUIRED},
        {"frames", OPT_INT, &frames, 1, 100000, NULL, "N", "frames per video, evenly spread"},
        {"fps", OPT_DOUBLE, &fps, 0.001, 1000, NULL, "R", "frames per second of video instead of --frames", ""},
        {"margin", OPT_FLOAT, &margin, 1, 4, NULL, "M", "the crop's side: the box's longer side x M"},
        {"size", OPT_INT, &size, 16, 2048, NULL, "PX", "side of the crops in pixels"},
        {"all-faces", OPT_FLAG, &all_faces, 0, 0, NULL, NULL, "every face of every frame, not one per frame"},
        {"min-score", OPT_FLOAT, &min_score, 0.01, 0.99, NULL, "P", "the face detector's threshold"},
        {"face-model", OPT_STR, &model, 0, 0, NULL, "FILE", "the face detector's weights (make faces-model)"},
        {"ffpp", OPT_STR, &ffpp, 0, 0, NULL, "ROOT", "import FaceForensics++ from its download folder ROOT", ""},
        {"compression", OPT_CHOICE, &comp_i, 0, 0, comps, NULL, "--ffpp: which videos (c0 is the folder raw)"},
        {"splits", OPT_STR, &splits, 0, 0, NULL, "DIR", "--ffpp: folder of train.json, val.json, test.json",
         "ROOT/splits"},
        {"methods", OPT_STR, &methods, 0, 0, NULL, "A,B", "--ffpp: the manipulation methods to import",
         "those present of Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter"},
        {"threads", OPT_INT, &threads, 0, 1024, NULL, "N", "compute threads of the face detector", "all cores"},
        {"quiet", OPT_FLAG, &quiet, 0, 0, NULL, NULL, "no progress bar, no warnings"},
    };
    const int ndefs = sizeof defs / sizeof defs[0];
    unsigned char given[sizeof defs / sizeof defs[0]] = {0};
    char **pos = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!pos) return 1;
    int npos = 0, rc = opts_parse(&doc, argc, argv, defs, ndefs, pos, argc, &npos, given);
    if (rc) {
        free(pos);
        return rc == 1 ? 0 : rc;
    }
    if (given[1] && given[2]) rc = cli_usage_error("faces", "--frames and --fps exclude each other");
    else if (!ffpp && npos == 0) rc = cli_usage_error("faces", "at least one video, photo or folder is required (or --ffpp ROOT)");
    else if (ffpp && npos) rc = cli_usage_error("faces", "--ffpp ROOT takes no other inputs (got '%s')", pos[0]);
    else if (!ffpp && (given[9] || given[10] || given[11]))
        rc = cli_usage_error("faces", "--compression, --splits and --methods go with --ffpp");
    if (rc) {
        free(pos);
        return rc;
    }
    cli_install_logger(quiet);
    cored_set_threads(threads);
    cored_video_init();
    joblist jobs = {0};
    cored_error err = {0};
    cored_face_detector *det = NULL;
    cored_path_use *uses = NULL;
    int lock = -1;
    char split_files[3][4200] = {{0}};
    char index_path[4200];
    cored_sb lines = {0};
    cli_progress bar;
    cli_progress_init(&bar, quiet, 0, "");
    /* the inputs are not written, and the output is not where an input folder is read */
    if (!(uses = calloc((size_t)npos + 3, sizeof *uses))) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
        goto fail;
    }
    int nu = 0;
    uses[nu++] = (cored_path_use){out, "--out", CORED_PATH_OUTPUT_DIR};
    uses[nu++] = (cored_path_use){model, "--face-model", CORED_PATH_INPUT};
    if (ffpp) uses[nu++] = (cored_path_use){ffpp, "--ffpp", CORED_PATH_SOURCES};
    for (int i = 0; i < npos; i++)
        uses[nu++] = (cored_path_use){pos[i], "IN", cored_is_dir(pos[i]) ? CORED_PATH_SOURCES : CORED_PATH_INPUT};
    if ((rc = cored_paths_check(uses, nu, &err))) goto fail;
    if ((rc = cored_face_detector_open(&det, model, &err))) {
        if (err.code == CORED_E_IO && !cored_is_file(model))
            snprintf(err.hint, sizeof err.hint, "make the face detector's weights with `make faces-model` (in cored's "
                                                 "source folder), or give --face-model FILE");
        goto fail;
    }
    if ((rc = cored_mkdir_p(out, &err)) || (rc = cored_dir_lock(out, &lock, &err))) goto fail;
    if (ffpp)
        rc = plan_ffpp(&jobs, ffpp, comps[comp_i], splits, methods, out, split_files, &err);
    else
        rc = plan_inputs(&jobs, pos, npos, out, &err);
    if (rc) goto fail;
    snprintf(index_path, sizeof index_path, "%s/index.jsonl", out);

    cored_face_extract_opts eo = {.scan = {.min_score = min_score, .all_faces = all_faces}, .margin = margin,
                                  .size = size};
    if (fps > 0)
        eo.scan.how.fps = fps;
    else
        eo.scan.how.count = frames;
    int n_done = 0, n_was = 0, n_noface = 0, n_failed = 0, n_skipped = 0, n_linked = 0;
    long crops = 0, n_frames = 0, frames_noface = 0;
    double t0 = cored_now();
    cli_install_signals();
    cli_progress_count(&bar, "videos and photos", 0, jobs.n);
    for (int i = 0; i < jobs.n && !cli_stop; i++) {
        job *j = &jobs.v[i];
        if (is_done(j)) {
            j->state = 2;
            n_was++;
        } else if (j->link_from >= 0) {
            const job *from = &jobs.v[j->link_from];
            if (from->state == 1 || from->state == 2) {
                cored_error e2 = {0};
                if (parent_mkdir(j->dst, &e2) || link_folder(from->dst, j->dst, &e2)) {
                    cli_progress_clear(&bar);
                    cli_print_error(&e2);
                    j->state = 4;
                    n_failed++;
                } else {
                    j->state = 1;
                    n_linked++;
                }
            } else {
                j->state = 5;
                n_skipped++;
            }
        } else if (!cored_is_file(j->src) && j->listed && access(j->src, F_OK) != 0) {
            cli_progress_clear(&bar);
            fprintf(stderr, "cored: error: %s: missing (listed in %s)\n", j->src, j->listed);
            j->state = 4;
            n_failed++;
        } else {
            cored_error e2 = {0};
            cored_face_scan_stats st = {0};
            lines.len = 0;
            int r = parent_mkdir(j->dst, &e2);
            cli_progress_clear(&bar);
            if (!r) r = cored_faces_extract(det, j->src, j->kind, j->dst, &eo, &lines, &st, &e2);
            n_frames += st.frames;
            frames_noface += st.frames_without_face;
            if (r) {
                cli_print_error(&e2);
                j->state = 4;
                n_failed++;
            } else if (st.faces == 0) {
                cored_log(CORED_LOG_WARN, "%s: no face found in %d %s; nothing written", j->src, st.frames,
                          j->kind == CORED_MEDIA_IMAGE ? "photo" : st.frames == 1 ? "frame" : "frames");
                j->state = 3;
                n_noface++;
            } else {
                j->state = 1;
                n_done++;
                crops += st.faces;
                if (lines.len && (rc = cored_append_file(index_path, lines.s, lines.len, &err))) goto fail;
            }
        }
        cli_progress_count(&bar, "videos and photos", i + 1, jobs.n);
    }
    cli_progress_clear(&bar);
    double dt = cored_now() - t0;
    if (cli_stop) fprintf(stderr, "cored faces: interrupted; run the same command again to go on\n");
    printf("cored faces: %d input(s): %d done now (%ld crops from %ld frames, %ld without a face), %d done before, "
           "%d without a face, %d failed",
           jobs.n, n_done + n_linked, crops, n_frames, frames_noface, n_was, n_noface, n_failed);
    if (n_linked) printf(", %d hard-linked", n_linked);
    if (n_skipped) printf(", %d skipped (their source failed)", n_skipped);
    printf("; %.1f s; crops in %s, index %s\n", dt, out, index_path);
    rc = n_failed || cli_stop || (n_done + n_linked + n_was == 0) ? 1 : 0;
    if (n_done + n_linked + n_was == 0 && !n_failed)
        fprintf(stderr, "cored: error: no face found in any input\n");
    goto done;
fail:
    cli_progress_clear(&bar);
    cli_print_error(&err);
    rc = 1;
done:
    for (int i = 0; i < jobs.n; i++) {
        free(jobs.v[i].src);
        free(jobs.v[i].dst);
    }
    free(jobs.v);
    free(uses);
    free(pos);
    cored_sb_release(&lines);
    cored_dir_unlock(lock);
    cored_face_detector_free(det);
    return rc;
}
