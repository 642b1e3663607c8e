/*
 * The method's pieces against PyTorch and scikit-learn (tests/fixtures/method.safetensors,
 * written by tools/make_method_fixtures.py): the KD term at T = 20 and DL's gradient, the
 * CoReD representation loss and its gradient through the features (scalar and vector),
 * TG's gamma-weighted L2-SP, EWC's penalty, ROC-AUC with ties. Plus the band edges, AUC
 * corner cases and hand-computed task matrices (mean seen, BWT, forgetting).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "eval/metrics.h"
#include "harness.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "train/methods.h"
#include "train/represent.h"

#ifndef FIXTURE
#define FIXTURE "tests/fixtures/method.safetensors"
#endif

static cored_st_file *fx;

static float *get(const char *name, size_t *n)
{
    const cored_st_tensor *t = cored_st_find(fx, name);
    if (!t) {
        fprintf(stderr, "fixture lacks %s\n", name);
        exit(2);
    }
    float *v = malloc(sizeof(float) * (t->numel ? t->numel : 1));
    if (cored_st_to_f32(fx, t, v, t->numel, 1, NULL)) exit(2);
    if (n) *n = t->numel;
    return v;
}

static int *get_int(const char *name, size_t *n)
{
    const cored_st_tensor *t = cored_st_find(fx, name);
    if (!t) exit(2);
    int64_t *v = malloc(sizeof(int64_t) * t->numel);
    int *w = malloc(sizeof(int) * t->numel);
    if (cored_st_to_i64(fx, t, v, t->numel, NULL)) exit(2);
    for (size_t i = 0; i < t->numel; i++) w[i] = (int)v[i];
    free(v);
    if (n) *n = t->numel;
    return w;
}

static double scalar(const char *name)
{
    float *v = get(name, NULL);
    double d = v[0];
    free(v);
    return d;
}

static cored_train_cfg cfg_for(cored_method m)
{
    cored_train_cfg c;
    cored_train_defaults(&c);
    c.method = m;
    return c;
}

static void test_kd_dl(void)
{
    size_t n2;
    float *s = get("kd.s", &n2), *t = get("kd.t", NULL), *want = get("kd.grad_s", NULL);
    int *y = get_int("kd.y", NULL);
    int n = (int)n2 / 2;
    float *g = malloc(sizeof(float) * n2), *ws = malloc(sizeof(float) * n2);
    cored_loss_terms terms;
    cored_train_cfg c = cfg_for(CORED_METHOD_DL);
    cored_method_logit_loss(&terms, g, NULL, &c, s, t, y, n, NULL, 0, 0, NULL, NULL, ws);
    CHECK_MSG(fabs(terms.ce - scalar("kd.ce")) < 1e-5, "CE %.8g want %.8g", terms.ce, scalar("kd.ce"));
    CHECK_MSG(fabs(terms.kd - scalar("kd.kd")) < 1e-4 * fabs(scalar("kd.kd")) + 1e-6, "KD %.8g want %.8g",
              terms.kd, scalar("kd.kd"));
    check_close_ff("DL gradient wrt the student logits", g, want, n2, 1e-6, 1e-4);
    /* the official code's value is ours plus alpha*T^2*ln(alpha*T^2) = 200 ln 200 */
    double official = scalar("kd.official");
    CHECK_MSG(fabs(terms.kd + 200.0 * log(200.0) - official) < 1e-3, "official %.6f vs ours + offset %.6f",
              official, terms.kd + 200.0 * log(200.0));
    CHECK(fabs(terms.total - (1.5 * terms.ce + terms.kd)) < 1e-9);
    free(s), free(t), free(want), free(y), free(g), free(ws);
}

static void test_lwf(void)
{
    size_t n2;
    float *s = get("kd.s", &n2), *t = get("kd.t", NULL), *want = get("lwf.grad_s", NULL);
    int *y = get_int("kd.y", NULL);
    float *g = malloc(sizeof(float) * n2), *ws = malloc(sizeof(float) * n2);
    cored_loss_terms terms;
    cored_train_cfg c = cfg_for(CORED_METHOD_LWF);
    cored_method_logit_loss(&terms, g, NULL, &c, s, t, y, (int)n2 / 2, NULL, 0, 0, NULL, NULL, ws);
    CHECK_MSG(fabs(terms.kd - scalar("lwf.kd")) < 1e-5 * fabs(scalar("lwf.kd")) + 1e-7, "LwF KD %.8g want %.8g",
              terms.kd, scalar("lwf.kd"));
    check_close_ff("LwF gradient (CE + KD at T = 2)", g, want, n2, 1e-6, 1e-4);
    free(s), free(t), free(want), free(y), free(g), free(ws);
}

/* The teacher's statistics: the same reduction, accumulated over batches. */
static void test_teacher_statistics(void)
{
    size_t nf, nl;
    float *feat_nchw = get("rep.features", &nf), *ze = get("rep.eval_logits", NULL);
    float *want_s = get("rep.teacher.scalar", NULL), *want_v = get("rep.teacher.vector", NULL);
    float *want_c = get("rep.teacher.count", NULL);
    int *labels = get_int("rep.labels", &nl);
    const int n = (int)nl, c = 6, h = 3;
    float *feat = malloc(sizeof(float) * nf);
    int *cells = malloc(sizeof(int) * (size_t)n);
    cored_nchw_to_nhwc(feat, feat_nchw, n, c, h, h);
    cored_cells_from_logits(cells, ze, labels, n);
    for (int mode = 0; mode < 2; mode++) {
        cored_rep_stats st;
        CHECK(cored_rep_init(&st, mode ? CORED_REP_VECTOR : CORED_REP_SCALAR, c, NULL) == 0);
        int half = n / 2; /* two batches */
        cored_rep_accumulate(&st, feat, cells, half, h * h, c);
        cored_rep_accumulate(&st, feat + (size_t)half * h * h * c, cells + half, n - half, h * h, c);
        cored_rep_finish(&st);
        float *want_var = get(mode ? "rep.teacher.var.vector" : "rep.teacher.var.scalar", NULL);
        for (int d = 0; d < st.dim; d++)
            CHECK_MSG(fabsf(st.var[d] - want_var[d]) < 1e-5f * want_var[d], "%s dim %d: var %.7g want %.7g",
                      mode ? "vector" : "scalar", d, st.var[d], want_var[d]);
        free(want_var);
        for (int k = 0; k < CORED_CELLS; k++) {
            CHECK(st.count[k] == want_c[k] && st.present[k] == (want_c[k] > 0));
            for (int d = 0; d < st.dim; d++) {
                float w = mode ? want_v[k * c + d] : want_s[k];
                CHECK_MSG(fabsf(st.mu[k * st.dim + d] - w) < 1e-6f, "%s cell %d: mu %.7g want %.7g",
                          mode ? "vector" : "scalar", k, st.mu[k * st.dim + d], w);
            }
        }
        cored_rep_release(&st);
    }
    /* a statistic that does not vary over the images: the variance is floored at 1 % of
       its mean square (a teacher whose tap ignores the image must not divide by zero) */
    {
        cored_rep_stats st;
        CHECK(cored_rep_init(&st, CORED_REP_SCALAR, c, NULL) == 0);
        float *flat = malloc(sizeof(float) * (size_t)n * h * h * c);
        for (size_t i = 0; i < (size_t)n * h * h * c; i++) flat[i] = 2.0f;
        cored_rep_accumulate(&st, flat, cells, n, h * h, c);
        cored_rep_finish(&st);
        CHECK_MSG(fabsf(st.var[0] - 0.04f) < 1e-6f, "constant statistic 2: var %.7g want 0.04", st.var[0]);
        free(flat);
        cored_rep_release(&st);
    }
    /* one batch's cell means (the --trace diagnostics): the same scalar statistic */
    float mu[CORED_CELLS];
    int count[CORED_CELLS];
    cored_rep_cell_scalars(mu, count, feat, cells, n, h * h, c);
    for (int k = 0; k < CORED_CELLS; k++) {
        CHECK(count[k] == want_c[k]);
        CHECK_MSG(want_c[k] > 0 ? fabsf(mu[k] - want_s[k]) < 1e-6f : isnan(mu[k]), "cell %d: batch mean %.7g want %.7g",
                  k, mu[k], want_s[k]);
    }
    free(feat_nchw), free(ze), free(want_s), free(want_v), free(want_c), free(labels), free(feat), free(cells);
}

static void test_representation(void)
{
    size_t nf, nl;
    float *feat_nchw = get("rep.features", &nf), *ze = get("rep.eval_logits", NULL), *present = get("rep.present", NULL);
    int *labels = get_int("rep.labels", &nl), *cells_want = get_int("rep.cells", NULL);
    const int n = (int)nl, c = 6, hw = 9, h = 3;
    float *feat = malloc(sizeof(float) * nf), *dfeat = malloc(sizeof(float) * nf), *dfeat_nchw = malloc(sizeof(float) * nf);
    cored_nchw_to_nhwc(feat, feat_nchw, n, c, h, h);
    int *cells = malloc(sizeof(int) * (size_t)n);
    cored_cells_from_logits(cells, ze, labels, n);
    for (int i = 0; i < n; i++) CHECK_MSG(cells[i] == cells_want[i], "image %d: cell %d want %d", i, cells[i], cells_want[i]);
    const char *modes[2] = {"scalar", "vector"};
    for (int mode = 0; mode < 2; mode++) {
        char name[64];
        snprintf(name, sizeof name, "rep.%s.mu", modes[mode]);
        float *mu = get(name, NULL);
        cored_rep_stats teacher;
        CHECK(cored_rep_init(&teacher, mode ? CORED_REP_VECTOR : CORED_REP_SCALAR, c, NULL) == 0);
        for (int k = 0; k < CORED_CELLS; k++) {
            teacher.present[k] = present[k] > 0;
            for (int d = 0; d < teacher.dim; d++) teacher.mu[k * teacher.dim + d] = mu[k * teacher.dim + d];
        }
        float *ws = malloc(sizeof(float) * cored_rep_ws_floats(n, c));
        int used = 0;
        const cored_rep_loss_cfg paper = {CORED_REP_NORM_NONE, 0, 1.0}, paper_u = {CORED_REP_NORM_NONE, 1, 1.0};
        double loss = cored_rep_loss(dfeat, &used, &teacher, cells, feat, n, hw, c, &paper, ws);
        snprintf(name, sizeof name, "rep.%s.loss", modes[mode]);
        double want = scalar(name);
        CHECK_MSG(fabs(loss - want) < 1e-5 * fabs(want) + 1e-7, "%s L_Rep %.8g want %.8g", modes[mode], loss, want);
        CHECK_MSG(used == 8, "%s: %d cells used, want 8 (all ten occupied, two absent for the teacher)", modes[mode], used);
        cored_nhwc_to_nchw(dfeat_nchw, dfeat, n, c, h, h);
        snprintf(name, sizeof name, "rep.%s.grad", modes[mode]);
        float *g = get(name, NULL);
        char what[96];
        snprintf(what, sizeof what, "%s L_Rep gradient wrt the features", modes[mode]);
        check_close_ff(what, dfeat_nchw, g, nf, 1e-7, 1e-4);
        /* the unbiased estimate: cells with two images at least, minus the mean's sample variance */
        snprintf(name, sizeof name, "rep.%s.unbiased.loss", modes[mode]);
        double want_u = scalar(name);
        double loss_u = cored_rep_loss(dfeat, &used, &teacher, cells, feat, n, hw, c, &paper_u, ws);
        CHECK_MSG(fabs(loss_u - want_u) < 1e-5 * fabs(want_u) + 1e-7, "%s unbiased L_Rep %.8g want %.8g", modes[mode],
                  loss_u, want_u);
        CHECK_MSG(used == 3, "%s unbiased: %d cells used, want 3 (those with two images or more)", modes[mode], used);
        cored_nhwc_to_nchw(dfeat_nchw, dfeat, n, c, h, h);
        snprintf(name, sizeof name, "rep.%s.unbiased.grad", modes[mode]);
        float *gu = get(name, NULL);
        snprintf(what, sizeof what, "%s unbiased L_Rep gradient wrt the features", modes[mode]);
        check_close_ff(what, dfeat_nchw, gu, nf, 1e-7, 1e-4);
        free(gu);
        /* --rep-norm batch, weighted, with either estimate, against the teacher's variance */
        snprintf(name, sizeof name, "rep.%s.var", modes[mode]);
        float *var = get(name, NULL);
        memcpy(teacher.var, var, sizeof(float) * teacher.dim);
        for (int u = 0; u < 2; u++) {
            const cored_rep_loss_cfg how = {CORED_REP_NORM_BATCH, u, scalar("rep.batch.weight")};
            double lb = cored_rep_loss(dfeat, &used, &teacher, cells, feat, n, hw, c, &how, ws);
            snprintf(name, sizeof name, "rep.%s.batch.%s.loss", modes[mode], u ? "unbiased" : "plain");
            double want_b = scalar(name);
            CHECK_MSG(fabs(lb - want_b) < 1e-5 * fabs(want_b) + 1e-7, "%s batch-normalised L_Rep %.8g want %.8g",
                      name, lb, want_b);
            cored_nhwc_to_nchw(dfeat_nchw, dfeat, n, c, h, h);
            snprintf(name, sizeof name, "rep.%s.batch.%s.grad", modes[mode], u ? "unbiased" : "plain");
            float *gb = get(name, NULL);
            check_close_ff(name, dfeat_nchw, gb, nf, 1e-7, 1e-4);
            free(gb);
        }
        free(var);
        /* the full CoReD loss adds it to DL's, with the configured norm and weight */
        cored_train_cfg cfgc = cfg_for(CORED_METHOD_CORED);
        cfgc.rep = mode ? CORED_REP_VECTOR : CORED_REP_SCALAR;
        cfgc.rep_norm = CORED_REP_NORM_NONE;
        loss = cored_rep_loss(dfeat, &used, &teacher, cells, feat, n, hw, c, &paper, ws);
        float *dl = malloc(sizeof(float) * 2 * (size_t)n), *ws2 = malloc(sizeof(float) * cored_rep_ws_floats(n, c));
        cored_loss_terms terms;
        cored_method_logit_loss(&terms, dl, dfeat, &cfgc, ze, ze, labels, n, feat, hw, c, cells, &teacher, ws2);
        CHECK(fabs(terms.rep - loss) < 1e-9 && fabs(terms.kd) < 1e-9);
        CHECK(fabs(terms.total - (1.5 * terms.ce + terms.rep)) < 1e-9);
        cfgc.rep_norm = CORED_REP_NORM_BATCH; /* the default weight */
        const cored_rep_loss_cfg dflt = {CORED_REP_NORM_BATCH, 0, CORED_REP_WEIGHT_BATCH};
        loss = cored_rep_loss(dfeat, &used, &teacher, cells, feat, n, hw, c, &dflt, ws);
        cored_method_logit_loss(&terms, dl, dfeat, &cfgc, ze, ze, labels, n, feat, hw, c, cells, &teacher, ws2);
        CHECK(fabs(terms.rep - loss) < 1e-9 && loss > 0);
        cfgc.rep_weight = 2.0f;
        cored_method_logit_loss(&terms, dl, dfeat, &cfgc, ze, ze, labels, n, feat, hw, c, cells, &teacher, ws2);
        CHECK(fabs(terms.rep - loss * 2.0 / CORED_REP_WEIGHT_BATCH) < 1e-9 * loss);
        free(dl), free(ws2), free(g), free(ws), free(mu);
        cored_rep_release(&teacher);
    }
    /* no cell present on both sides: zero loss, zero gradient */
    cored_rep_stats empty;
    CHECK(cored_rep_init(&empty, CORED_REP_SCALAR, c, NULL) == 0);
    float *ws = malloc(sizeof(float) * cored_rep_ws_floats(n, c));
    int used = -1;
    const cored_rep_loss_cfg paper = {CORED_REP_NORM_NONE, 0, 1.0};
    CHECK(cored_rep_loss(dfeat, &used, &empty, cells, feat, n, hw, c, &paper, ws) == 0.0 && used == 0);
    for (size_t i = 0; i < nf; i++) CHECK(dfeat[i] == 0.0f);
    cored_rep_release(&empty);
    free(ws), free(feat_nchw), free(feat), free(dfeat), free(dfeat_nchw), free(ze), free(present), free(labels),
        free(cells_want), free(cells);
}

static void test_weight_penalties(void)
{
    size_t n;
    float *w = get("tg.w", &n), *anchor = get("tg.anchor", NULL), *head = get("tg.head", NULL), *t = get("tg.t", NULL);
    float *want = get("tg.grad", NULL), *g = calloc(n, sizeof(float));
    int *y = get_int("tg.y", NULL);
    uint8_t *is_head = malloc(n);
    for (size_t i = 0; i < n; i++) is_head[i] = head[i] > 0;
    cored_reg_ctx reg = {.anchor = anchor, .is_head = is_head, .n = n};
    cored_train_cfg c = cfg_for(CORED_METHOD_TG);
    cored_loss_terms terms = {0};
    cored_method_weight_loss(&terms, g, w, &reg, &c, t, y, 8);
    CHECK_MSG(fabs(terms.reg - scalar("tg.value")) < 1e-5 * fabs(scalar("tg.value")), "TG %.8g want %.8g", terms.reg,
              scalar("tg.value"));
    check_close_ff("TG gradient (added to g)", g, want, n, 1e-7, 1e-5);
    free(w), free(anchor), free(head), free(t), free(want), free(g), free(y), free(is_head);

    float *we = get("ewc.w", &n), *an = get("ewc.anchor", NULL), *fi = get("ewc.fisher", NULL);
    float *wg = get("ewc.grad", NULL), *ge = calloc(n, sizeof(float));
    cored_reg_ctx r2 = {.anchor = an, .fisher = fi, .n = n};
    cored_train_cfg ce = cfg_for(CORED_METHOD_EWC);
    ce.ewc_lambda = (float)scalar("ewc.lambda");
    cored_loss_terms t2 = {0};
    cored_method_weight_loss(&t2, ge, we, &r2, &ce, NULL, NULL, 0);
    CHECK_MSG(fabs(t2.reg - scalar("ewc.value")) < 1e-5 * fabs(scalar("ewc.value")), "EWC %.8g want %.8g", t2.reg,
              scalar("ewc.value"));
    check_close_ff("EWC gradient", ge, wg, n, 1e-6, 1e-5);
    free(we), free(an), free(fi), free(wg), free(ge);
}

static void test_bands(void)
{
    CHECK(cored_band(0.5f) == -1);
    CHECK(cored_band(nextafterf(0.5f, 1.0f)) == 0);
    CHECK(cored_band(0.6f) == 0);
    CHECK(cored_band(nextafterf(0.6f, 1.0f)) == 1);
    CHECK(cored_band(0.7f) == 1);
    CHECK(cored_band(0.8f) == 2);
    CHECK(cored_band(0.9f) == 3);
    CHECK(cored_band(nextafterf(0.9f, 1.0f)) == 4);
    CHECK(cored_band(1.0f) == 4);
    CHECK(cored_band(0.0f) == -1 && cored_band(0.3f) == -1 && cored_band(NAN) == -1);
    CHECK(cored_cell(0, 0.95f) == 4 && cored_cell(1, 0.55f) == 5 && cored_cell(1, 1.0f) == 9);
    CHECK(cored_cell(1, 0.5f) == -1);
    float z[4] = {0, 0, 3, -3};
    int lab[2] = {1, 0}, cells[2];
    cored_cells_from_logits(cells, z, lab, 2);
    CHECK(cells[0] == -1); /* p = 0.5 exactly: no cell */
    CHECK(cells[1] == 4);  /* p = sigmoid(6) > 0.9, real */
}

static void test_auc(void)
{
    for (int k = 0; k < 4; k++) {
        char a[32], b[32], c[32];
        snprintf(a, sizeof a, "auc.%d.scores", k);
        snprintf(b, sizeof b, "auc.%d.labels", k);
        snprintf(c, sizeof c, "auc.%d.value", k);
        size_t n;
        float *s = get(a, &n);
        int *l = get_int(b, NULL);
        double got = cored_auc(s, l, (int)n), want = scalar(c);
        CHECK_MSG(fabs(got - want) < 1e-9 + 1e-7 * want, "set %d: AUC %.10f, sklearn %.10f", k, got, want);
        free(s), free(l);
    }
    float s[6] = {0.1f, 0.4f, 0.35f, 0.8f, 0.5f, 0.5f};
    int one_class[6] = {1, 1, 1, 1, 1, 1}, lab[6] = {0, 0, 1, 1, 0, 1};
    CHECK(isnan(cored_auc(s, one_class, 6))); /* n/a, not 0.5 */
    /* hand-computed: pairs (fake, real) = 9; fake > real: 0.35>0.1; 0.8>all; 0.5>0.1,0.4; tie 0.5=0.5 half
       -> (1 + 3 + 2 + 0.5) / 9 */
    CHECK_MSG(fabs(cored_auc(s, lab, 6) - 6.5 / 9) < 1e-12, "AUC %.12f", cored_auc(s, lab, 6));
    cored_metrics m;
    CHECK(cored_metrics_compute(&m, s, lab, 6, NULL) == 0);
    CHECK(m.n_real == 3 && m.n_fake == 3 && fabs(m.acc_fake - 1.0 / 3) < 1e-12 && fabs(m.acc_real - 1.0) < 1e-12);
    double *fpr, *tpr;
    int np;
    CHECK(cored_roc_curve(&fpr, &tpr, &np, s, lab, 6, NULL) == 0);
    CHECK(np >= 2 && fpr[0] == 0 && tpr[0] == 0 && fpr[np - 1] == 1 && tpr[np - 1] == 1);
    double area = 0;
    for (int i = 1; i < np; i++) area += (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2;
    CHECK_MSG(fabs(area - 6.5 / 9) < 1e-12, "trapezoid area of the ROC %.12f", area);
    cored_free(fpr), cored_free(tpr);
}

static void test_task_matrix(void)
{
    /* R[i][j], 3 tasks, hand-computed expectations */
    const double r[9] = {90, 55, 50,   /* after task 1 */
                         70, 95, 52,   /* after task 2 */
                         80, 60, 85};  /* after task 3 */
    double mean[3];
    cored_matrix_mean_seen(mean, r, 3);
    CHECK(fabs(mean[0] - 90) < 1e-12 && fabs(mean[1] - 82.5) < 1e-12 && fabs(mean[2] - 75) < 1e-12);
    /* BWT = ((80-90) + (60-95)) / 2 = -22.5 */
    CHECK(fabs(cored_matrix_bwt(r, 3) + 22.5) < 1e-12);
    /* forgetting: task 1 best before the end max(90, 70) = 90 -> 10; task 2: 95 -> 35; mean 22.5 */
    CHECK(fabs(cored_matrix_forgetting(r, 3) - 22.5) < 1e-12);
    const double r2[9] = {90, 50, 50, 95, 90, 50, 80, 60, 85};
    /* forgetting takes the best earlier value (95 after task 2) for task 1: (95-80 + 90-60)/2 */
    CHECK(fabs(cored_matrix_forgetting(r2, 3) - 22.5) < 1e-12);
    CHECK(fabs(cored_matrix_bwt(r2, 3) - ((80 - 90) + (60 - 90)) / 2.0) < 1e-12);
    CHECK(isnan(cored_matrix_bwt(r, 1)) && isnan(cored_matrix_forgetting(r, 1)));
}

int main(void)
{
    cored_error err = {0};
    if (cored_st_open(&fx, FIXTURE, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    RUN(test_kd_dl);
    RUN(test_lwf);
    RUN(test_representation);
    RUN(test_teacher_statistics);
    RUN(test_weight_penalties);
    RUN(test_bands);
    RUN(test_auc);
    RUN(test_task_matrix);
    cored_st_close(fx);
    return test_finish();
}
