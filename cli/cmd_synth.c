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

static void usage(void)
{
    char real[4200];
    default_real(real, sizeof real);
    printf("usage: cored synth --out DATA [options]\n\n"
           "  --out DATA           data set folder to create (DATA/<Task>/{train,val,test}/{real,fake},\n"
           "                       DATA/TransferLearning/<Task>/train, DATA/synth.json)\n"
           "  --real DIR           folder of real photographs, any depth (default: $CORED_CACHE/real or\n"
           "                       ~/.cache/cored/real, filled by tools/fetch_real.sh; now %s)\n"
           "  --tasks A,B,...      forgery families, one task each, in this order (default %s)\n"
           "                       Blend    ~ DeepFakes/FaceSwap   (blending boundary, colour mismatch)\n"
           "                       Warp     ~ Face2Face            (local warp, resampling)\n"
           "                       Texture  ~ NeuralTextures       (re-rendered region)\n"
           "                       Upsample ~ ProGAN/StyleGAN      (up-sampling fingerprint)\n"
           "                       Relight  ~ face relighting      (colour cast, noise level)\n"
           "                       Retouch  ~ beauty filters       (smoothed skin, sharp edges)\n"
           "                       Inpaint  ~ GAN inpainting       (erased part, borrowed texture)\n"
           "                       Resample ~ face swap resizing   (band-limited, sharpened region)\n"
           "  --size PX            image side, a multiple of 8 in %d..%d (default 128); train at this\n"
           "                       size: resizing the images destroys their pixel-level artifacts\n"
           "  --per-class N        train images per class and task (default %d)\n"
           "  --eval-per-class M   val and test images per class and task (default N/4)\n"
           "  --transfer-per-class T  TransferLearning subset per class, the first T train images\n"
           "                       (default N/4; 0: no TransferLearning folder)\n"
           "  --seed S             seed of every random choice (default 1); same seed, same bytes\n"
           "  --plant F            planted cue: in every task after the first, a fraction F (0..1) of\n"
           "                       the train real images and of the TransferLearning subset's carries\n"
           "                       the previous task's manipulation and stays labelled real; val and\n"
           "                       test untouched (default 0)\n"
           "  --sheet FILE.png     also write a contact sheet of examples (without --out: only the sheet)\n"
           "  --sheet-rows R       examples on the sheet (default 4)\n"
           "  --threads N          worker threads (default: all cores)\n"
           "  --force              replace DATA if it was written by cored synth (default: refuse)\n"
           "  --quiet              no progress (default: off)\n\n"
           "Sources are split 70/15/15 %% into train/val/test by photograph (at least 2 each, so at\n"
           "least 6 photographs); every image of a split, real or fake, is a random crop of one of\n"
           "that split's photographs. The set is built in DATA.synth-tmp and renamed when complete.\n",
           real, DEFAULT_TASKS, CORED_SYNTH_MIN_SIZE, CORED_SYNTH_MAX_SIZE, DEFAULT_PER_CLASS);
}

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
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},   {"real", required_argument, 0, 'r'},
        {"tasks", required_argument, 0, 't'}, {"size", required_argument, 0, 'z'},
        {"per-class", required_argument, 0, 'n'}, {"eval-per-class", required_argument, 0, 'e'},
        {"transfer-per-class", required_argument, 0, 'T'}, {"seed", required_argument, 0, 's'},
        {"sheet", required_argument, 0, 'S'}, {"sheet-rows", required_argument, 0, 'R'},
        {"threads", required_argument, 0, 'j'}, {"force", no_argument, 0, 'f'},
        {"quiet", no_argument, 0, 'q'},       {"help", no_argument, 0, 'h'},
        {"plant", required_argument, 0, 'P'},
        {0, 0, 0, 0}};
    cored_synth_opts o = {0};
    cored_family fams[CORED_FAMILY_COUNT];
    char real[4200];
    const char *tasks = DEFAULT_TASKS;
    int eval = -1, transfer = -1, quiet = 0, c;
    default_real(real, sizeof real);
    o.real = real;
    o.size = 128;
    o.per_class = DEFAULT_PER_CLASS;
    o.seed = 1;
    while ((c = cli_getopt("synth", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'o': o.out = optarg; break;
        case 'r': o.real = optarg; break;
        case 't': tasks = optarg; break;
        case 'z':
            if (cli_int("synth", "size", optarg, CORED_SYNTH_MIN_SIZE, CORED_SYNTH_MAX_SIZE, &o.size)) return EXIT_USAGE;
            if (o.size % 8) return cli_usage_error("synth", "--size must be a multiple of 8, got %d", o.size);
            break;
        case 'n':
            if (cli_int("synth", "per-class", optarg, 1, 10000000, &o.per_class)) return EXIT_USAGE;
            break;
        case 'e':
            if (cli_int("synth", "eval-per-class", optarg, 1, 10000000, &eval)) return EXIT_USAGE;
            break;
        case 'T':
            if (cli_int("synth", "transfer-per-class", optarg, 0, 10000000, &transfer)) return EXIT_USAGE;
            break;
        case 's':
            if (cli_u64("synth", "seed", optarg, &o.seed)) return EXIT_USAGE;
            break;
        case 'P':
            if (cli_float("synth", "plant", optarg, 0.0, 1.0, &o.plant)) return EXIT_USAGE;
            break;
        case 'S': o.sheet = optarg; break;
        case 'R':
            if (cli_int("synth", "sheet-rows", optarg, 1, 16, &o.sheet_rows)) return EXIT_USAGE;
            break;
        case 'j':
            if (cli_int("synth", "threads", optarg, 1, 1024, &o.threads)) return EXIT_USAGE;
            break;
        case 'f': o.force = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error("synth", "unexpected argument '%s'", argv[optind]);
    if (!o.out && !o.sheet) return cli_usage_error("synth", "--out DATA is required (or --sheet FILE.png alone)");
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
