/*
 * Photos and videos under folders, for `cored faces` and `cored detect`: searched
 * recursively in sorted order (bytewise), hidden entries skipped, a symbolic-link loop
 * visited once.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/core.h"
#include "faces/extract.h"

int cli_strlist_push(cli_strlist *l, const char *s)
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

void cli_strlist_free(cli_strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

#define MAX_DEPTH 64

typedef struct {
    dev_t dev[MAX_DEPTH];
    ino_t ino[MAX_DEPTH];
    int depth;
    unsigned kinds;
    cli_media_others *others;
} walk_path;

static int walk(cli_strlist *out, const char *dir, walk_path *wp)
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
    cli_strlist here = {0};
    struct dirent *e;
    int rc = 0;
    errno = 0;
    while (!rc && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        size_t n = strlen(dir);
        if (snprintf(path, sizeof path, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", e->d_name) >=
            (int)sizeof path)
            continue;
        cored_media_kind k = cored_media_kind_of(e->d_name);
        if (cored_is_dir(path) || (k != CORED_MEDIA_OTHER && (wp->kinds & (1u << k))))
            rc = cli_strlist_push(&here, path);
        else if (wp->others && wp->others->n++ == 0)
            snprintf(wp->others->example, sizeof wp->others->example, "%s", path);
        errno = 0;
    }
    if (!rc && errno) rc = -1;
    closedir(d);
    if (here.n > 1) qsort(here.v, (size_t)here.n, sizeof *here.v, cmp_str);
    for (int i = 0; i < here.n && !rc; i++)
        rc = cored_is_dir(here.v[i]) ? walk(out, here.v[i], wp) : cli_strlist_push(out, here.v[i]);
    cli_strlist_free(&here);
    wp->depth--;
    return rc;
}

int cli_media_walk(cli_strlist *out, const char *dir, unsigned kinds, cli_media_others *others)
{
    walk_path wp = {.depth = 0, .kinds = kinds, .others = others};
    return walk(out, dir, &wp);
}

const char *cli_face_model_default(void)
{
    static char path[4200];
    if (cored_is_file(CORED_FACE_MODEL_DEFAULT)) return CORED_FACE_MODEL_DEFAULT;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            for (int up = 0; up < 2; up++) {
                snprintf(path, sizeof path, "%s%s/%s", exe, up ? "/.." : "", CORED_FACE_MODEL_DEFAULT);
                if (cored_is_file(path)) return path;
            }
        }
    }
    return CORED_FACE_MODEL_DEFAULT;
}
