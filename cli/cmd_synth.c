/*
 * cored synth: the forgery simulator. Turns a folder of real photographs into a continual
 * fake-detection data set in the official CoReD layout, one task per forgery family
 * (Blend, Warp, Texture, Upsample, Relight, Retouch, Inpaint, Resample; docs/synth.md),
 * splits disjoint by source photograph, optionally a planted cue (--plant), and a PNG
 * contact sheet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/core.h"
#include "opts.h"
#include "synth/synth.h"

#define DEFAULT_TASKS "Blend,Warp,Texture,Upsample"
#define DEFAULT_PER_CLASS 400

static void default_real(char *buf, size_t n)
{
    const char *cache = getenv("CORED_CACHE"), *home = getenv("HOME");
    if (cache && *cache)
        snprintf(buf, n, "%s/real", cache);
    else
        snprintf(buf, n, "%s/.cache/cored/real", home && *home ? home : ".");
}

static const cli_doc doc = {
    "synth", "--out DATA [options]\n--sheet FILE.png [options]",
    "Makes a continual fake-detection data set from a folder of real photographs: one task per\n"
    "forgery family, in the official CoReD layout (DATA/<Task>/{train,val,test}/{real,fake},\n"
    "DATA/TransferLearning/<Task>/train, DATA/synth.json). The families (docs/synth.md):\n"
    "  Blend    ~ DeepFakes/FaceSwap   (blending boundary, colour mismatch)\n"
    "  Warp     ~ Face2Face            (local warp, resampling)\n"
    "  Texture  ~ NeuralTextures       (re-rendered region)\n"
    "  Upsample ~ ProGAN/StyleGAN      (up-sampling fingerprint)\n"
    "  Relight  ~ face relighting      (colour cast, noise level)\n"
    "  Retouch  ~ beauty filters       (smoothed skin, sharp edges)\n"
    "  Inpaint  ~ GAN inpainting       (erased part, borrowed texture)\n"
    "  Resample ~ face swap resizing   (band-limited, sharpened region)\n"
    "Sources are split 70/15/15 % into train/val/test by photograph (at least 2 each, so at\n"
    "least 6 photographs); every image of a split, real or fake, is a random crop of one of\n"
    "that split's photographs. The set is built in DATA.synth-tmp and renamed when complete;\n"
    "the same seed gives the same bytes. Train at --size: resizing the images destroys their\n"
    "pixel-level artifacts.",
    "cored synth --out SYNTH --size 128 --per-class 1000 --sheet sheet.png\n"
    "cored synth --real my-photos/ --out SYNTH --tasks Relight,Retouch,Inpaint,Resample --size 64\n"
    "cored synth --out PLANTED --tasks Blend,Warp,Texture --plant 0.3 --seed 7"};

typedef struct {
    int tty, quiet;
    double last;
} progress;

static void on_progress(void *user, const char *task, const char *what, int done, int total)
{
    progress *p = user;
    if (p->quiet) return;
    double now = cored_now();
    if (p->tty) {
        fprintf(stderr, "\r  %-9s %-10s %6d / %-6d", task, what, done, total);
        if (done == total) fputc('\n', stderr);
    } else if (done == total || now - p->last > 5.0) {
        fprintf(stderr, "  %s %s: %d / %d\n", task, what, done, total);
        p->last = now;
    }
    fflush(stderr);
}

/* Parses "Blend,Warp" into fams; 0 or a usage error. */
static int parse_tasks(cored_family *fams, int *n, const char *s)
{
    char buf[256];
    if (strlen(s) >= sizeof buf) return cli_usage_error("synth", "--tasks is too long");
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int f = cored_family_parse(tok);
        if (f < 0) {
            char known[128] = "";
            for (int k = 0; k < CORED_FAMILY_COUNT; k++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "",
                         cored_family_name((cored_family)k));
            return cli_usage_error("synth", "unknown task '%s' in --tasks (families: %s)", tok, known);
        }
        for (int k = 0; k < *n; k++)
            if (fams[k] == (cored_family)f) return cli_usage_error("synth", "task '%s' is listed twice in --tasks", tok);
        if (*n >= CORED_FAMILY_COUNT) return cli_usage_error("synth", "too many tasks in --tasks");
        fams[(*n)++] = (cored_family)f;
    }
    if (!*n) return cli_usage_error("synth", "--tasks needs at least one family");
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    cored_synth_opts o = {0};
    cored_family fams[CORED_FAMILY_COUNT];
    char real[4200], real_def[4400];
    const char *tasks = DEFAULT_TASKS;
    int eval = -1, transfer = -1, quiet = 0;
    default_real(real, sizeof real);
    snprintf(real_def, sizeof real_def,
             "$CORED_CACHE/real or ~/.cache/cored/real, filled by tools/fetch_real.sh; now %s", real);
    o.real = real;
    o.size = 128;
    o.per_class = DEFAULT_PER_CLASS;
    o.seed = 1;
    o.sheet_rows = 4;
    char size_help[64];
    snprintf(size_help, sizeof size_help, "image side, a multiple of 8 in %d..%d", CORED_SYNTH_MIN_SIZE,
             CORED_SYNTH_MAX_SIZE);
    opt_def defs[] = {
        {"out", OPT_STR, &o.out, 0, 0, NULL, "DATA", "data set folder to create", NULL, OPT_REQUIRED},
        {"real", OPT_STR, &o.real, 0, 0, NULL, "DIR", "folder of real photographs, any depth", real_def},
        {"tasks", OPT_STR, &tasks, 0, 0, NULL, "A,B,...", "forgery families, one task each, in this order"},
        {"size", OPT_INT, &o.size, CORED_SYNTH_MIN_SIZE, CORED_SYNTH_MAX_SIZE, NULL, "PX", size_help},
        {"per-class", OPT_INT, &o.per_class, 1, 10000000, NULL, "N", "train images per class and task"},
        {"eval-per-class", OPT_INT, &eval, 1, 10000000, NULL, "M", "val and test images per class and task", "N/4"},
        {"transfer-per-class", OPT_INT, &transfer, 0, 10000000, NULL, "T",
         "TransferLearning subset per class, the first T train images; 0: no TransferLearning folder", "N/4"},
        {"seed", OPT_U64, &o.seed, 0, 0, NULL, "S", "seed of every random choice"},
        {"plant", OPT_FLOAT, &o.plant, 0, 1, NULL, "F",
         "planted cue: in every task after the first, a fraction F (0..1) of the train real images and of the "
         "TransferLearning subset's carries the previous task's manipulation and stays labelled real; val and "
         "test untouched"},
        {"sheet", OPT_STR, &o.sheet, 0, 0, NULL, "FILE.png",
         "also write a contact sheet of examples; without --out, only the sheet", NULL, OPT_ALONE},
        {"sheet-rows", OPT_INT, &o.sheet_rows, 1, 16, NULL, "R", "examples on the sheet"},
        {"threads", OPT_INT, &o.threads, 1, 1024, NULL, "N", "worker threads", "all cores"},
        {"force", OPT_FLAG, &o.force, 0, 0, NULL, NULL, "replace DATA if it was written by cored synth"},
        {"quiet", OPT_FLAG, &quiet, 0, 0, NULL, NULL, "no progress"},
    };
    int c = opts_parse(&doc, argc, argv, defs, sizeof defs / sizeof defs[0], NULL, 0, NULL, NULL);
    if (c) return c == 1 ? 0 : c;
    if (o.size % 8) return cli_usage_error("synth", "--size must be a multiple of 8, got %d", o.size);
    if (parse_tasks(fams, &o.ntasks, tasks)) return EXIT_USAGE;
    o.tasks = fams;
    o.eval_per_class = eval > 0 ? eval : (o.per_class + 3) / 4;
    o.transfer_per_class = transfer >= 0 ? transfer : (o.per_class + 3) / 4;
    if (o.transfer_per_class > o.per_class)
        return cli_usage_error("synth", "--transfer-per-class %d exceeds --per-class %d (it is a subset of train)",
                               o.transfer_per_class, o.per_class);
    cli_install_logger(quiet);
    progress pr = {isatty(2), quiet, 0};
    o.progress = on_progress;
    o.user = &pr;
    char names[128] = "";
    for (int t = 0; t < o.ntasks; t++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", t ? "," : "", cored_family_name(fams[t]));
    if (!quiet) {
        fprintf(stderr, "cored synth: real %s -> %s\n", o.real, o.out ? o.out : "(sheet only)");
        fprintf(stderr, "  tasks %s, %d px, seed %llu, per class: train %d, val %d, test %d, transfer %d\n", names,
                o.size, (unsigned long long)o.seed, o.per_class, o.eval_per_class, o.eval_per_class,
                o.transfer_per_class);
        if (o.plant > 0.0f)
            fprintf(stderr, "  planted cue: %g of each later task's train real images carry the previous task's manipulation\n",
                    (double)o.plant);
    }
    cored_synth_report rep;
    cored_error err = {0};
    int rc = cored_synth_run(&o, &rep, &err);
    if (rc) {
        cli_print_error(&err);
        return 1;
    }
    printf("sources: %d photographs (train %d, val %d, test %d; skipped: %d too small, %d duplicates, %d undecodable)\n",
           rep.nsources, rep.split_sources[0], rep.split_sources[1], rep.split_sources[2], rep.sources.too_small,
           rep.sources.duplicates, rep.sources.bad);
    if (o.out && o.plant > 0.0f)
        printf("planted: %ld train real images carry the previous task's manipulation (list in %s/synth.json)\n",
               rep.planted, o.out);
    if (o.out)
        printf("wrote %ld images of %d task(s) at %d px to %s in %.1f s\n", rep.images, o.ntasks, o.size, o.out,
               rep.seconds);
    if (o.sheet) printf("contact sheet: %s\n", o.sheet);
    return 0;
}
