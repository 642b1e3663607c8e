/* Progress display and stop signals; see progress.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "progress.h"

volatile sig_atomic_t cli_stop;

static void on_signal(int sig)
{
    if (cli_stop) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    cli_stop = 1;
}

void cli_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_progress_init(cli_progress *p, int quiet, int every, const char *label)
{
    memset(p, 0, sizeof *p);
    p->quiet = quiet;
    p->tty = isatty(2);
    p->every = every > 0 ? every : 50;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

void cli_progress_done(cli_progress *p)
{
    if (p->drawn) fputc('\n', stderr);
    p->drawn = 0;
}

void cli_progress_clear(cli_progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = 0;
}

void cli_progress_count(cli_progress *p, const char *what, long done, long total)
{
    double now = cored_now();
    if (done == 0) p->start = now;
    if (p->quiet || !p->tty || (now - p->last_draw < 0.1 && done != total)) return;
    double dt = now - p->start, rate = dt > 0 ? done / dt : 0;
    char eta[32], bar[32];
    fmt_time(eta, sizeof eta, rate > 0 ? (total - done) / rate : -1);
    int width = 20, fill = total > 0 ? (int)((double)width * done / total) : 0;
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%s%s [%s] %ld/%ld %.0f/s ETA %s\033[K", p->label, what, bar, done, total, rate, eta);
    fflush(stderr);
    p->drawn = 1;
    p->last_draw = now;
}

static void losses(char *buf, size_t n, const cored_progress *p)
{
    /* the terms as they sum to the loss: the cross-entropy with its weight */
    size_t k = p->ce_weight != 1
                   ? (size_t)snprintf(buf, n, "loss %.4f = %g*ce %.4f", p->loss, p->ce_weight, p->ce_weight * p->ce)
                   : (size_t)snprintf(buf, n, "loss %.4f = ce %.4f", p->loss, p->ce);
    if (p->kd != 0 && k < n) k += (size_t)snprintf(buf + k, n - k, " + kd %.4f", p->kd);
    if (p->rep != 0 && k < n) k += (size_t)snprintf(buf + k, n - k, " + rep %.4f", p->rep);
    if (p->reg != 0 && k < n) snprintf(buf + k, n - k, " + reg %.4f", p->reg);
}

void cli_progress_fn(const cored_progress *p, void *user)
{
    cli_progress *c = user;
    if (c->quiet) return;
    char eta[32], el[32], ls[160];
    double now = cored_now();
    switch (p->phase) {
    case CORED_PHASE_PREPARE:
        if (!p->batches) {
            cli_progress_done(c);
            fprintf(stderr, "%s%s\n", c->label, p->what);
        } else if (c->tty && (now - c->last_draw > 0.2 || p->batch == p->batches)) {
            fmt_time(eta, sizeof eta, p->eta);
            fprintf(stderr, "\r%s%s %d/%d batches  ETA %s   ", c->label, p->what, p->batch, p->batches, eta);
            c->drawn = 1;
            c->last_draw = now;
            if (p->batch == p->batches) cli_progress_done(c);
        }
        break;
    case CORED_PHASE_BATCH:
        fmt_time(eta, sizeof eta, p->eta);
        losses(ls, sizeof ls, p);
        if (c->tty) {
            if (now - c->last_draw < 0.1 && p->batch != p->batches) return;
            int width = 20, fill = p->batches ? (int)((double)width * p->batch / p->batches) : 0;
            char bar[64];
            for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
            bar[width] = 0;
            fprintf(stderr, "\r%sepoch %d/%d [%s] %d/%d %.1f img/s %s acc %.3f ETA %s\033[K", c->label,
                    p->epoch + 1, p->epochs, bar, p->batch, p->batches, p->images_per_s, ls, p->train_acc, eta);
            c->drawn = 1;
            c->last_draw = now;
        } else if (p->batch % c->every == 0) {
            fprintf(stderr, "%sepoch %d/%d batch %d/%d %.1f img/s %s acc %.3f ETA %s\n", c->label, p->epoch + 1,
                    p->epochs, p->batch, p->batches, p->images_per_s, ls, p->train_acc, eta);
        }
        break;
    case CORED_PHASE_EPOCH: {
        cli_progress_done(c);
        fmt_time(el, sizeof el, p->elapsed);
        losses(ls, sizeof ls, p);
        char val[1024] = "";
        size_t k = 0;
        for (int i = 0; i < p->n_tasks && k < sizeof val; i++) {
            char auc[16];
            if (isnan(p->val_auc[i]))
                snprintf(auc, sizeof auc, "n/a");
            else
                snprintf(auc, sizeof auc, "%.1f", 100 * p->val_auc[i]);
            k += (size_t)snprintf(val + k, sizeof val - k, " %s %.1f/%s", p->tasks[i], 100 * p->val_acc[i], auc);
        }
        fprintf(stderr, "%sepoch %d/%d %s train acc %.3f | val acc/AUC %%:%s%s | %.1f img/s, %s\n", c->label,
                p->epoch + 1, p->epochs, ls, p->train_acc, val, p->selected ? "  [selected]" : "",
                p->images_per_s, el);
        break;
    }
    }
    fflush(stderr);
}
