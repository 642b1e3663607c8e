/* Video-level metrics; see videos.h. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/json.h"
#include "videos.h"

typedef struct {
    const char *key; /* "<class>/<video>" or "<class>/<file>", not terminated */
    int len, sample, loose;
} entry;

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int m = x->len < y->len ? x->len : y->len, c = memcmp(x->key, y->key, (size_t)m);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->sample < y->sample ? -1 : x->sample > y->sample;
}

void cored_video_groups_release(cored_video_groups *g)
{
    if (!g) return;
    if (g->name)
        for (int i = 0; i < g->n_videos; i++) cored_free(g->name[i]);
    cored_free(g->name);
    cored_free(g->video);
    memset(g, 0, sizeof *g);
}

int cored_video_groups_build(cored_video_groups *g, const cored_dataset *ds, cored_error *err)
{
    memset(g, 0, sizeof *g);
    const int n = cored_dataset_count(ds);
    const char *split_dir = cored_dataset_describe(ds);
    const size_t dl = strlen(split_dir);
    entry *e = cored_alloc(sizeof(entry) * (size_t)(n ? n : 1));
    g->video = cored_alloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!e || !g->video) {
        cored_free(e);
        cored_video_groups_release(g);
        return CORED_FAIL(err, CORED_E_NOMEM, "out of memory grouping %d images by video", n);
    }
    g->n_samples = n;
    for (int i = 0; i < n; i++) {
        const char *p = cored_dataset_path(ds, i);
        if (strncmp(p, split_dir, dl) || p[dl] != '/') {
            cored_free(e);
            cored_video_groups_release(g);
            return CORED_FAIL(err, CORED_E_INTERNAL, "%s: not below the split folder %s", p, split_dir);
        }
        const char *rel = p + dl + 1, *cls_end = strchr(rel, '/');
        const char *vid_end = cls_end ? strchr(cls_end + 1, '/') : NULL;
        e[i].key = rel;
        e[i].loose = !vid_end;
        e[i].len = (int)(vid_end ? (size_t)(vid_end - rel) : strlen(rel));
        e[i].sample = i;
    }
    qsort(e, (size_t)n, sizeof *e, cmp_entry);
    int nv = 0;
    for (int i = 0; i < n; i++) {
        int same = i > 0 && !e[i].loose && !e[i - 1].loose && e[i].len == e[i - 1].len &&
                   !memcmp(e[i].key, e[i - 1].key, (size_t)e[i].len);
        if (!same) {
            nv++;
            if (e[i].loose)
                g->n_loose++;
            else
                g->n_folders++;
        }
        g->video[e[i].sample] = nv - 1;
    }
    g->n_videos = nv;
    g->name = cored_calloc((size_t)(nv ? nv : 1), sizeof(char *));
    int rc = g->name ? CORED_OK : CORED_E_NOMEM;
    for (int i = 0, v = -1; i < n && !rc; i++) {
        if (g->video[e[i].sample] == v) continue;
        v = g->video[e[i].sample];
        g->name[v] = cored_alloc((size_t)e[i].len + 1);
        if (!g->name[v]) {
            rc = CORED_E_NOMEM;
            break;
        }
        memcpy(g->name[v], e[i].key, (size_t)e[i].len);
        g->name[v][e[i].len] = '\0';
    }
    cored_free(e);
    if (rc) {
        cored_video_groups_release(g);
        return CORED_FAIL(err, CORED_E_NOMEM, "out of memory naming %d videos", nv);
    }
    return CORED_OK;
}

int cored_video_metrics(cored_metrics *out, const cored_video_groups *g, const float *scores,
                        const int *labels, const int *index, int n, float *video_scores,
                        int *video_labels, int *n_scored, cored_error *err)
{
    const int nv = g->n_videos;
    double *sum = cored_calloc((size_t)(nv ? nv : 1), sizeof(double));
    int *count = cored_calloc((size_t)(nv ? nv : 1), sizeof(int)), *lab = cored_alloc(sizeof(int) * (size_t)(nv ? nv : 1));
    float *vs = cored_alloc(sizeof(float) * (size_t)(nv ? nv : 1));
    int *vl = cored_alloc(sizeof(int) * (size_t)(nv ? nv : 1));
    int rc = CORED_OK;
    if (!sum || !count || !lab || !vs || !vl) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory for the scores of %d videos", nv);
        goto done;
    }
    for (int k = 0; k < n; k++) {
        if (index[k] < 0 || index[k] >= g->n_samples) {
            rc = CORED_FAIL(err, CORED_E_ARG, "sample index %d out of range (%d samples)", index[k], g->n_samples);
            goto done;
        }
        int v = g->video[index[k]];
        if (count[v] && lab[v] != labels[k]) {
            rc = CORED_FAIL(err, CORED_E_ARG, "video %s holds frames of both classes", g->name[v]);
            goto done;
        }
        lab[v] = labels[k];
        sum[v] += scores[k];
        count[v]++;
    }
    int m = 0;
    for (int v = 0; v < nv; v++) {
        if (video_scores) video_scores[v] = count[v] ? (float)(sum[v] / count[v]) : NAN;
        if (video_labels) video_labels[v] = count[v] ? lab[v] : -1;
        if (!count[v]) continue;
        vs[m] = (float)(sum[v] / count[v]);
        vl[m] = lab[v];
        m++;
    }
    if (n_scored) *n_scored = m;
    rc = cored_metrics_compute(out, vs, vl, m, err);
done:
    cored_free(sum);
    cored_free(count);
    cored_free(lab);
    cored_free(vs);
    cored_free(vl);
    return rc;
}

cJSON *cored_video_metrics_json(const cored_metrics *m, const cored_video_groups *g, int frames)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddItemToObject(o, "auc", cored_json_number(m->auc));
    cJSON_AddItemToObject(o, "acc", cored_json_number(m->acc));
    cJSON_AddItemToObject(o, "acc_real", cored_json_number(m->acc_real));
    cJSON_AddItemToObject(o, "acc_fake", cored_json_number(m->acc_fake));
    cJSON_AddNumberToObject(o, "n_real", m->n_real);
    cJSON_AddNumberToObject(o, "n_fake", m->n_fake);
    cJSON_AddNumberToObject(o, "frames", frames);
    cJSON_AddNumberToObject(o, "loose_images", g->n_loose);
    return o;
}
