/*
 * PNG plots of the protocol report, drawn with cairo: a task x task AUC heat map, mean AUC
 * per step for each method, and ROC curves. Files are written atomically.
 */
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "report.h"

/* Colours of the series (Okabe-Ito, readable by colour-blind readers). */
static const double palette[][3] = {{0.00, 0.45, 0.70}, {0.84, 0.37, 0.00}, {0.00, 0.62, 0.45},
                                    {0.80, 0.47, 0.65}, {0.94, 0.89, 0.26}, {0.34, 0.71, 0.91},
                                    {0.90, 0.62, 0.00}, {0.00, 0.00, 0.00}};
#define N_PALETTE (int)(sizeof palette / sizeof palette[0])

/* cairo's PNG stream into the temporary file of cored_write_atomic; the first failed
   write's errno is kept for the message. */
typedef struct {
    FILE *f;
    int errnum;
} png_sink;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int length)
{
    png_sink *k = closure;
    if (fwrite(data, 1, length, k->f) == length) return CAIRO_STATUS_SUCCESS;
    if (!k->errnum) k->errnum = errno ? errno : EIO;
    return CAIRO_STATUS_WRITE_ERROR;
}

static int write_png(FILE *f, const char *path, void *user, cored_error *err)
{
    png_sink k = {f, 0};
    errno = 0;
    cairo_status_t st = cairo_surface_write_to_png_stream(user, png_write, &k);
    if (st == CAIRO_STATUS_SUCCESS) return CORED_OK;
    return CORED_FAIL(err, k.errnum ? CORED_E_IO : CORED_E_NOMEM, "%s: cannot write the PNG: %s", path,
                      k.errnum ? strerror(k.errnum) : cairo_status_to_string(st));
}

static int finish(cairo_surface_t *s, cairo_t *cr, const char *path, cored_error *err)
{
    int rc = cairo_status(cr) == CAIRO_STATUS_SUCCESS
                 ? cored_write_atomic(path, write_png, s, err)
                 : CORED_FAIL(err, CORED_E_NOMEM, "%s: drawing failed: %s", path,
                              cairo_status_to_string(cairo_status(cr)));
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    return rc;
}

static void text(cairo_t *cr, double x, double y, const char *s, double align_x, double align_y)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align_x * e.width - e.x_bearing, y - align_y * e.height - e.y_bearing);
    cairo_show_text(cr, s);
}

static cairo_t *canvas(cairo_surface_t **s, int w, int h, const char *title)
{
    *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(*s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 16);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, w / 2.0, 22, title, 0.5, 0.5);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    return cr;
}

int cored_plot_heatmap(const char *path, const char *title, const double *m, int n,
                       const char *const *labels, cored_error *err)
{
    const int cell = 72, left = 150, top = 60, w = left + n * cell + 90, h = top + n * cell + 70;
    cairo_surface_t *s;
    cairo_t *cr = canvas(&s, w, h, title);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double v = m[i * n + j];
            double x = left + j * cell, y = top + i * cell;
            if (isnan(v)) {
                cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
            } else {
                /* 50 (chance) white -> 100 dark blue; below chance reddish */
                double t = (v - 50.0) / 50.0;
                if (t >= 0)
                    cairo_set_source_rgb(cr, 1 - 0.9 * t, 1 - 0.65 * t, 1 - 0.25 * t);
                else
                    cairo_set_source_rgb(cr, 1, 1 + 0.6 * t, 1 + 0.6 * t);
            }
            cairo_rectangle(cr, x, y, cell - 2, cell - 2);
            cairo_fill(cr);
            char buf[16];
            if (isnan(v))
                snprintf(buf, sizeof buf, "n/a");
            else
                snprintf(buf, sizeof buf, "%.1f", v);
            double t = isnan(v) ? 0 : (v - 50.0) / 50.0;
            cairo_set_source_rgb(cr, t > 0.55 ? 1 : 0, t > 0.55 ? 1 : 0, t > 0.55 ? 1 : 0);
            text(cr, x + cell / 2.0 - 1, y + cell / 2.0 - 1, buf, 0.5, 0.5);
            if (j > i) { /* tasks not yet seen after step i: mark the upper triangle */
                cairo_set_source_rgba(cr, 0, 0, 0, 0.25);
                cairo_set_line_width(cr, 1);
                cairo_rectangle(cr, x + 1.5, y + 1.5, cell - 5, cell - 5);
                cairo_set_dash(cr, (double[]){3, 3}, 2, 0);
                cairo_stroke(cr);
                cairo_set_dash(cr, NULL, 0, 0);
            }
        }
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (int i = 0; i < n; i++) {
        char buf[160];
        snprintf(buf, sizeof buf, "after %s", labels[i]);
        text(cr, left - 8, top + i * cell + cell / 2.0, buf, 1.0, 0.5);
        text(cr, left + i * cell + cell / 2.0 - 1, top + n * cell + 14, labels[i], 0.5, 0.5);
    }
    text(cr, left + n * cell / 2.0, top + n * cell + 40, "test AUC % on task (dashed: not yet trained)", 0.5, 0.5);
    return finish(s, cr, path, err);
}

/* Plot frame: x in [0, nx-1] categorical, y in [ylo, yhi]. */
typedef struct {
    double x0, y0, w, h, ylo, yhi;
    int nx;
} frame;

static double fx(const frame *f, double i) { return f->nx > 1 ? f->x0 + f->w * i / (f->nx - 1) : f->x0 + f->w / 2; }
static double fy(const frame *f, double v) { return f->y0 + f->h * (1 - (v - f->ylo) / (f->yhi - f->ylo)); }

static void axes(cairo_t *cr, const frame *f, const char *const *xl, const char *ylabel, double ystep)
{
    cairo_set_line_width(cr, 1);
    for (double v = f->ylo; v <= f->yhi + 1e-9; v += ystep) {
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, f->x0, fy(f, v));
        cairo_line_to(cr, f->x0 + f->w, fy(f, v));
        cairo_stroke(cr);
        char buf[16];
        snprintf(buf, sizeof buf, ystep < 1 ? "%.1f" : "%.0f", v);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text(cr, f->x0 - 6, fy(f, v), buf, 1.0, 0.5);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, f->x0, f->y0, f->w, f->h);
    cairo_stroke(cr);
    if (xl)
        for (int i = 0; i < f->nx; i++) text(cr, fx(f, i), f->y0 + f->h + 14, xl[i], 0.5, 0.5);
    cairo_save(cr);
    cairo_translate(cr, f->x0 - 48, f->y0 + f->h / 2);
    cairo_rotate(cr, -M_PI / 2);
    text(cr, 0, 0, ylabel, 0.5, 0.5);
    cairo_restore(cr);
}

static void legend(cairo_t *cr, double x, double y, const char *const *names, int n, const double *values)
{
    for (int k = 0; k < n; k++) {
        const double *c = palette[k % N_PALETTE];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 3);
        cairo_move_to(cr, x, y + 18 * k);
        cairo_line_to(cr, x + 22, y + 18 * k);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        char buf[160];
        if (values && !isnan(values[k]))
            snprintf(buf, sizeof buf, "%s (AUC %.1f)", names[k], values[k]);
        else
            snprintf(buf, sizeof buf, "%s", names[k]);
        text(cr, x + 28, y + 18 * k, buf, 0.0, 0.5);
    }
}

int cored_plot_lines(const char *path, const char *title, const double *y, int n_series, int n_points,
                     const char *const *series, const char *const *xlabels, const char *ylabel,
                     cored_error *err)
{
    const int w = 760, h = 440;
    cairo_surface_t *s;
    cairo_t *cr = canvas(&s, w, h, title);
    double lo = 100, hi = 50;
    for (int i = 0; i < n_series * n_points; i++)
        if (!isnan(y[i])) lo = fmin(lo, y[i]), hi = fmax(hi, y[i]);
    lo = floor(fmin(lo, 50) / 10) * 10;
    hi = 100;
    frame f = {70, 50, 480, h - 110, lo, hi, n_points};
    axes(cr, &f, xlabels, ylabel, 10);
    for (int k = 0; k < n_series; k++) {
        const double *c = palette[k % N_PALETTE];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2.5);
        int pen = 0;
        for (int i = 0; i < n_points; i++) {
            double v = y[k * n_points + i];
            if (isnan(v)) {
                pen = 0;
                continue;
            }
            if (pen)
                cairo_line_to(cr, fx(&f, i), fy(&f, v));
            else
                cairo_move_to(cr, fx(&f, i), fy(&f, v));
            pen = 1;
        }
        cairo_stroke(cr);
        for (int i = 0; i < n_points; i++) {
            double v = y[k * n_points + i];
            if (isnan(v)) continue;
            cairo_arc(cr, fx(&f, i), fy(&f, v), 3.5, 0, 2 * M_PI);
            cairo_fill(cr);
        }
    }
    legend(cr, 575, 70, series, n_series, NULL);
    return finish(s, cr, path, err);
}

int cored_plot_roc(const char *path, const char *title, const double *const *fpr,
                   const double *const *tpr, const int *npts, const double *auc, int n_series,
                   const char *const *series, cored_error *err)
{
    const int w = 720, h = 520;
    cairo_surface_t *s;
    cairo_t *cr = canvas(&s, w, h, title);
    frame f = {70, 50, 400, 400, 0, 1, 2};
    axes(cr, &f, NULL, "true positive rate (fake detected)", 0.2);
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (int i = 0; i <= 5; i++) {
        char buf[8];
        snprintf(buf, sizeof buf, "%.1f", i / 5.0);
        text(cr, f.x0 + f.w * i / 5.0, f.y0 + f.h + 14, buf, 0.5, 0.5);
    }
    text(cr, f.x0 + f.w / 2, f.y0 + f.h + 34, "false positive rate (real flagged)", 0.5, 0.5);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_dash(cr, (double[]){4, 4}, 2, 0);
    cairo_move_to(cr, f.x0, f.y0 + f.h);
    cairo_line_to(cr, f.x0 + f.w, f.y0);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int k = 0; k < n_series; k++) {
        if (!npts[k]) continue;
        const double *c = palette[k % N_PALETTE];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2);
        for (int i = 0; i < npts[k]; i++) {
            double x = f.x0 + f.w * fpr[k][i], yy = f.y0 + f.h * (1 - tpr[k][i]);
            if (i)
                cairo_line_to(cr, x, yy);
            else
                cairo_move_to(cr, x, yy);
        }
        cairo_stroke(cr);
    }
    legend(cr, 490, 70, series, n_series, auc);
    return finish(s, cr, path, err);
}
