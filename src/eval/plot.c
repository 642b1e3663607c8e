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

/* Width of s in the canvas' current font (cr may be a measuring context). */
static double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* A context on a 1x1 surface with the body font, to measure labels before the canvas's
   size is known; the caller destroys it with measure_done. */
static cairo_t *measure(void)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *cr = cairo_create(s);
    cairo_surface_destroy(s); /* the context keeps its reference */
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    return cr;
}

static double title_width(cairo_t *cr, const char *s)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 16);
    double w = text_width(cr, s);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    return w;
}

/* The heat map's colour scale, AUC % -> RGB: 50 (chance) white, rising to dark blue at
   100, falling to red at 0. Linear on each side, so a three-stop gradient draws it exactly. */
#define HEAT_LO_RGB 1.0, 0.4, 0.4
#define HEAT_HI_RGB 0.1, 0.35, 0.75
static void heat_colour(double v, double rgb[3])
{
    double t = (v - 50.0) / 50.0;
    t = t < -1 ? -1 : t > 1 ? 1 : t;
    if (t >= 0)
        rgb[0] = 1 - 0.9 * t, rgb[1] = 1 - 0.65 * t, rgb[2] = 1 - 0.25 * t;
    else
        rgb[0] = 1, rgb[1] = 1 + 0.6 * t, rgb[2] = 1 + 0.6 * t;
}

static const double heat_na[3] = {0.85, 0.85, 0.85};

/* The colour bar of the heat map at (x, y), bar_h tall: 0..100 with ticks every 25, chance
   marked; a grey "n/a" swatch under it when the map has missing cells. */
static void colour_bar(cairo_t *cr, double x, double y, double bar_h, int with_na)
{
    const double bw = 16;
    cairo_pattern_t *g = cairo_pattern_create_linear(0, y + bar_h, 0, y);
    cairo_pattern_add_color_stop_rgb(g, 0.0, HEAT_LO_RGB);
    cairo_pattern_add_color_stop_rgb(g, 0.5, 1, 1, 1);
    cairo_pattern_add_color_stop_rgb(g, 1.0, HEAT_HI_RGB);
    cairo_rectangle(cr, x, y, bw, bar_h);
    cairo_set_source(cr, g);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x + 0.5, y + 0.5, bw - 1, bar_h - 1);
    cairo_stroke(cr);
    for (int v = 0; v <= 100; v += 25) {
        double yy = round(y + bar_h * (1 - v / 100.0)) + 0.5;
        cairo_move_to(cr, x + bw, yy);
        cairo_line_to(cr, x + bw + 4, yy);
        cairo_stroke(cr);
        char buf[24];
        snprintf(buf, sizeof buf, v == 50 ? "%d chance" : "%d", v);
        text(cr, x + bw + 7, yy, buf, 0.0, 0.5);
    }
    text(cr, x + bw / 2, y - 12, "AUC %", 0.5, 0.5);
    if (with_na) {
        cairo_set_source_rgb(cr, heat_na[0], heat_na[1], heat_na[2]);
        cairo_rectangle(cr, x, y + bar_h + 12, bw, 12);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text(cr, x + bw + 7, y + bar_h + 18, "n/a", 0.0, 0.5);
    }
}

int cored_plot_heatmap(const char *path, const char *title, const double *m, int n,
                       const char *const *labels, cored_error *err)
{
    const char *caption = "test AUC % on task (dashed: not yet trained)";
    const int cell = 72, top = 60;
    char rowl[CORED_REPORT_MAX][160];
    if (n < 1 || n > CORED_REPORT_MAX)
        return CORED_FAIL(err, CORED_E_ARG, "%s: %d tasks for a heat map (1 to %d)", path, n, CORED_REPORT_MAX);
    int with_na = 0;
    cairo_t *mc = measure();
    double lw = 0;
    for (int i = 0; i < n; i++) {
        snprintf(rowl[i], sizeof rowl[i], "after %d: %s", i + 1, labels[i]);
        lw = fmax(lw, text_width(mc, rowl[i]));
    }
    for (int i = 0; i < n * n; i++) with_na |= isnan(m[i]) != 0;
    /* left: row labels; right of the grid: the colour bar (16 px) and its tick labels */
    /* the caption, centred under the grid, goes under the colour bar too */
    const double cap_w = text_width(mc, caption);
    const double left = fmax(ceil(lw) + 24, cap_w / 2 - n * cell / 2.0 + 16), bar_x = left + n * cell + 22;
    double right = bar_x + 16 + 7 + text_width(mc, "100 chance") + 16;
    double w = fmax(right, fmax(left + n * cell / 2.0 + cap_w / 2 + 16, title_width(mc, title) + 32));
    cairo_destroy(mc);
    const double bar_h = fmax(n * cell - 2, 150), grid_h = fmax(n * cell + 14, bar_h + (with_na ? 26 : 0));
    const int h = (int)(top + grid_h + 50);
    cairo_surface_t *s;
    cairo_t *cr = canvas(&s, (int)ceil(w), h, title);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double v = m[i * n + j], rgb[3];
            double x = left + j * cell, y = top + i * cell;
            if (isnan(v))
                memcpy(rgb, heat_na, sizeof rgb);
            else
                heat_colour(v, rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
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
        text(cr, left - 8, top + i * cell + cell / 2.0, rowl[i], 1.0, 0.5);
        text(cr, left + i * cell + cell / 2.0 - 1, top + n * cell + 14, labels[i], 0.5, 0.5);
    }
    text(cr, left + n * cell / 2.0, top + grid_h + 26, caption, 0.5, 0.5);
    colour_bar(cr, bar_x, top, bar_h, with_na);
    return finish(s, cr, path, err);
}

/* Plot frame: x in [0, nx-1] categorical, inset by pad pixels on both sides so that the
   first and last markers stand clear of the frame; y in [ylo, yhi]. */
typedef struct {
    double x0, y0, w, h, ylo, yhi;
    int nx;
    double pad;
} frame;

static double fx(const frame *f, double i)
{
    return f->nx > 1 ? f->x0 + f->pad + (f->w - 2 * f->pad) * i / (f->nx - 1) : f->x0 + f->w / 2;
}
static double fy(const frame *f, double v) { return f->y0 + f->h * (1 - (v - f->ylo) / (f->yhi - f->ylo)); }

/* Rows the categorical x labels need: 1, or 2 when neighbours would touch. */
static int x_label_rows(cairo_t *cr, const frame *f, const char *const *xl)
{
    for (int i = 0; xl && i + 1 < f->nx; i++)
        if ((text_width(cr, xl[i]) + text_width(cr, xl[i + 1])) / 2 + 8 > fx(f, i + 1) - fx(f, i)) return 2;
    return 1;
}

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
    if (xl)
        for (int i = 0; i < f->nx; i++) { /* a light vertical line at every step */
            cairo_set_source_rgb(cr, 0.93, 0.93, 0.93);
            cairo_move_to(cr, round(fx(f, i)) + 0.5, f->y0);
            cairo_line_to(cr, round(fx(f, i)) + 0.5, f->y0 + f->h);
            cairo_stroke(cr);
        }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, f->x0, f->y0, f->w, f->h);
    cairo_stroke(cr);
    if (xl) /* on two staggered rows when neighbours would touch */
        for (int i = 0; i < f->nx; i++)
            text(cr, fx(f, i), f->y0 + f->h + 14 + (x_label_rows(cr, f, xl) > 1 && i % 2 ? 16 : 0), xl[i], 0.5, 0.5);
    cairo_save(cr);
    cairo_translate(cr, f->x0 - 48, f->y0 + f->h / 2);
    cairo_rotate(cr, -M_PI / 2);
    text(cr, 0, 0, ylabel, 0.5, 0.5);
    cairo_restore(cr);
}

/* Series k's line: its colour and a dash pattern of its own, so that lines which coincide
   still show each other through the gaps, in grey print and for colour-blind readers. */
static const struct {
    int n;
    double d[6];
} dashes[] = {{0, {0}},        {2, {10, 4}},    {2, {2.5, 3}},   {4, {10, 3, 2.5, 3}},
              {2, {18, 5}},    {2, {5, 3}},     {6, {10, 3, 2.5, 3, 2.5, 3}}, {4, {18, 4, 5, 4}}};
#define N_DASHES (int)(sizeof dashes / sizeof dashes[0])

static void series_line(cairo_t *cr, int k, double width)
{
    const double *c = palette[k % N_PALETTE];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_set_line_width(cr, width);
    cairo_set_dash(cr, dashes[k % N_DASHES].d, dashes[k % N_DASHES].n, 0);
}

/* Series k's marker at (x, y), r its radius: circle, square, triangle, diamond, inverted
   triangle, star, pentagon, hexagon; filled in the series' colour with a white rim so that
   markers which touch stay apart. */
static void series_marker(cairo_t *cr, int k, double x, double y, double r)
{
    static const struct {
        int sides;
        double turn, inner; /* first vertex angle (fraction of a turn from the top); star's inner radius */
    } shapes[] = {{0, 0, 0}, {4, 0.125, 0}, {3, 0, 0}, {4, 0, 0}, {3, 0.5, 0}, {5, 0, 0.45}, {5, 0, 0}, {6, 0, 0}};
    const int m = (k / N_PALETTE + k) % (int)(sizeof shapes / sizeof shapes[0]);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_new_path(cr);
    if (!shapes[m].sides) {
        cairo_arc(cr, x, y, r, 0, 2 * M_PI);
    } else {
        const int sides = shapes[m].sides, star = shapes[m].inner > 0;
        const double rr = r * (sides == 3 ? 1.25 : sides == 4 && shapes[m].turn ? 1.15 : 1.15);
        for (int i = 0; i < sides * (1 + star); i++) {
            double a = 2 * M_PI * (shapes[m].turn + (double)i / (sides * (1 + star)));
            double q = star && i % 2 ? rr * shapes[m].inner : rr * (star ? 1.2 : 1);
            if (i)
                cairo_line_to(cr, x + q * sin(a), y - q * cos(a));
            else
                cairo_move_to(cr, x + q * sin(a), y - q * cos(a));
        }
        cairo_close_path(cr);
    }
    const double *c = palette[k % N_PALETTE];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
}

/* Width of the legend's entries (without values). */
static const double LEGEND_SAMPLE = 40;

static double legend_width(cairo_t *cr, const char *const *names, int n)
{
    double w = 0;
    for (int k = 0; k < n; k++) w = fmax(w, text_width(cr, names[k]));
    return LEGEND_SAMPLE + 8 + w;
}

/* One entry per series: a sample of its line (and its marker when markers is set), its name
   and, when values is given, a value. */
static void legend(cairo_t *cr, double x, double y, const char *const *names, int n, const double *values,
                   int markers)
{
    for (int k = 0; k < n; k++) {
        double yy = y + 20 * k;
        series_line(cr, k, 2.5);
        cairo_move_to(cr, x, yy);
        cairo_line_to(cr, x + LEGEND_SAMPLE, yy);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (markers) series_marker(cr, k, x + LEGEND_SAMPLE / 2, yy, 4.5);
        cairo_set_source_rgb(cr, 0, 0, 0);
        char buf[160];
        if (values && !isnan(values[k]))
            snprintf(buf, sizeof buf, "%s (AUC %.1f)", names[k], values[k]);
        else
            snprintf(buf, sizeof buf, "%s", names[k]);
        text(cr, x + LEGEND_SAMPLE + 8, yy, buf, 0.0, 0.5);
    }
}

int cored_plot_lines(const char *path, const char *title, const double *y, int n_series, int n_points,
                     const char *const *series, const char *const *xlabels, const char *ylabel,
                     cored_error *err)
{
    const int w = 760, h = 440;
    const char *xcaption = "after step (task trained); equal values are set side by side";
    cairo_t *mc = measure();
    const double lw = legend_width(mc, series, n_series);
    cairo_destroy(mc);
    cairo_surface_t *s;
    cairo_t *cr = canvas(&s, w, h, title);
    double lo = 100, hi = 50;
    for (int i = 0; i < n_series * n_points; i++)
        if (!isnan(y[i])) lo = fmin(lo, y[i]), hi = fmax(hi, y[i]);
    lo = floor(fmin(lo, 50) / 10) * 10;
    hi = 100;
    /* the frame takes the width the legend leaves; the steps span it, inset by half a
       marker group so the first and last markers clear the frame */
    const double x0 = 70, fw = fmax(w - x0 - 24 - lw - 20, 200);
    const double spacing = n_points > 1 ? (fw - 40) / (n_points - 1) : fw;
    /* series with equal values at a step are drawn side by side, a few pixels apart */
    const double dodge = n_series > 1 ? fmin(5, 0.4 * spacing / n_series) : 0;
    frame f = {x0, 50, fw, h - 120, lo, hi, n_points, 20 + dodge * (n_series - 1) / 2};
    axes(cr, &f, xlabels, ylabel, 10);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    text(cr, f.x0 + f.w / 2, f.y0 + f.h + 22 + 16 * x_label_rows(cr, &f, xlabels), xcaption, 0.5, 0.5);
    cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
    cairo_save(cr);
    cairo_clip(cr);
    for (int k = 0; k < n_series; k++) {
        const double dx = dodge * (k - (n_series - 1) / 2.0);
        series_line(cr, k, 2.5);
        int pen = 0;
        for (int i = 0; i < n_points; i++) {
            double v = y[k * n_points + i];
            if (isnan(v)) {
                pen = 0;
                continue;
            }
            if (pen)
                cairo_line_to(cr, fx(&f, i) + dx, fy(&f, v));
            else
                cairo_move_to(cr, fx(&f, i) + dx, fy(&f, v));
            pen = 1;
        }
        cairo_stroke(cr);
    }
    for (int k = 0; k < n_series; k++) { /* markers over every line */
        const double dx = dodge * (k - (n_series - 1) / 2.0);
        for (int i = 0; i < n_points; i++) {
            double v = y[k * n_points + i];
            if (!isnan(v)) series_marker(cr, k, fx(&f, i) + dx, fy(&f, v), 4.5);
        }
    }
    cairo_restore(cr);
    legend(cr, f.x0 + f.w + 24, f.y0 + 10, series, n_series, NULL, 1);
    return finish(s, cr, path, err);
}

int cored_plot_roc(const char *path, const char *title, const double *const *fpr,
                   const double *const *tpr, const int *npts, const double *auc, int n_series,
                   const char *const *series, cored_error *err)
{
    const int w = 720, h = 520;
    cairo_surface_t *s;
    cairo_t *cr = canvas(&s, w, h, title);
    frame f = {70, 50, 400, 400, 0, 1, 2, 0};
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
        series_line(cr, k, 2);
        for (int i = 0; i < npts[k]; i++) {
            double x = f.x0 + f.w * fpr[k][i], yy = f.y0 + f.h * (1 - tpr[k][i]);
            if (i)
                cairo_line_to(cr, x, yy);
            else
                cairo_move_to(cr, x, yy);
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    legend(cr, 490, 70, series, n_series, auc, 0);
    return finish(s, cr, path, err);
}
