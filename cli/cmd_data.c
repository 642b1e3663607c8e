/*
 * cored data: checks a data folder in the CoReD layout: decodes every image (--fast: only
 * indexes them) and prints, per task, split (TransferLearning subsets included) and class,
 * how many images are usable next to how many are not, then every problem found: missing
 * or misspelled folders, empty classes, stray entries, images that cannot be decoded or
 * read.
 *
 * Output: the table goes to stdout (flushed row by row; on a terminal a progress bar on
 * stderr while a row's images are decoded); the problems found meanwhile are collected and
 * printed after it, to stderr, after a blank line; the counts (the result) go to stdout
 * after another blank line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "cli.h"
#include "core/core.h"
#include "data/data.h"
#include "opts.h"
#include "progress.h"

static const cli_doc doc = {
    "data", "DIR [options]",
    "Checks the data folder DIR: DIR/<Task>/{train,val,test}/{real,fake}/... and optionally\n"
    "DIR/TransferLearning/<Task>/train/{real,fake}/.... Decodes every image (in parallel; a\n"
    "progress bar on a terminal) and prints one row per task and split: the real, fake and\n"
    "total images that decode, and the bad ones, which do not (undecodable or unreadable);\n"
    "then every problem found. --fast only indexes (no decoding, the bad column shows -).\n"
    "Class folders may be named real/fake, 0_real/1_fake or 0/1 (0 = real, 1 = fake);\n"
    "images (.png .jpg .jpeg) may sit in nested per-video folders. The table and the counts\n"
    "go to stdout, the problems to stderr. Exit status: 0 when no error was found, 1\n"
    "otherwise (with --strict also when there were warnings or undecodable images).",
    "cored data FF\n"
    "cored data FF --tasks DeepFakes,Face2Face --fast\n"
    "cored data SYNTH --strict --quiet --threads 4"};

/* Problems seen while the table is printed, kept for after it. */
typedef struct {
    int errors, warnings, quiet, strict;
    cored_sb text; /* the lines to print, in order */
} tally;

static void on_problem(cored_problem_kind kind, const char *msg, void *user)
{
    tally *t = user;
    if (kind == CORED_PROBLEM_ERROR) {
        t->errors++;
        cored_sb_printf(&t->text, "cored: error: %s\n", msg);
    } else {
        t->warnings++;
        /* --strict turns warnings into failures, so they are never hidden then */
        if (!t->quiet || t->strict) cored_sb_printf(&t->text, "cored: warning: %s\n", msg);
    }
}

/* What decoding one image gave: nothing (it decodes) or a problem. */
typedef struct {
    int rc;
    char *msg;
} check_result;

/* What decoding a split's images found. */
typedef struct {
    int good[2];      /* images that decode, per class (0 real, 1 fake) */
    int undecodable;  /* not a usable image (CORED_E_FORMAT) */
    int unreadable;   /* could not be read (I/O errors) */
} check_counts;

/* Decodes every image of ds with one cored_decoder per thread (thread 0 draws the bar) and
   reports, in the index's order, every image that fails: undecodable ones (warnings, errors
   under --strict) and unreadable ones (always errors: the data set is not fully usable). */
static void check_images(const cored_dataset *ds, int threads, tally *t, cli_progress *bar, const char *what,
                         check_counts *cc)
{
    int n = cored_dataset_count(ds), done = 0;
    memset(cc, 0, sizeof *cc);
    check_result *res = cored_calloc((size_t)(n ? n : 1), sizeof *res);
    if (!res) {
        on_problem(CORED_PROBLEM_ERROR, "out of memory checking the images", t);
        cc->unreadable = n;
        return;
    }
    cli_progress_count(bar, what, 0, n);
#pragma omp parallel num_threads(threads)
    {
        cored_decoder dec;
        cored_decoder_init(&dec);
        uint8_t px[3];
        int draws = omp_get_thread_num() == 0;
#pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < n; i++) {
            cored_error err;
            res[i].rc = cored_decoder_read_rgb8(&dec, px, 1, cored_dataset_path(ds, i), &err);
            if (res[i].rc) res[i].msg = cored_strdup(err.msg);
            int now;
#pragma omp atomic capture
            now = ++done;
            if (draws) cli_progress_count(bar, what, now, n);
        }
        cored_decoder_release(&dec);
    }
    cli_progress_clear(bar);
    for (int i = 0; i < n; i++) {
        if (res[i].rc == CORED_OK) {
            cc->good[cored_dataset_label(ds, i) ? 1 : 0]++;
            continue;
        }
        char fallback[4200];
        if (!res[i].msg)
            snprintf(fallback, sizeof fallback, "%s: could not be %s (%s; out of memory for the details)",
                     cored_dataset_path(ds, i), res[i].rc == CORED_E_FORMAT ? "decoded" : "read",
                     cored_status_str(res[i].rc));
        const char *msg = res[i].msg ? res[i].msg : fallback;
        if (res[i].rc == CORED_E_FORMAT) {
            cc->undecodable++;
            on_problem(t->strict ? CORED_PROBLEM_ERROR : CORED_PROBLEM_WARNING, msg, t);
        } else {
            cc->unreadable++;
            on_problem(CORED_PROBLEM_ERROR, msg, t);
        }
        cored_free(res[i].msg);
    }
    cored_free(res);
}

/* One row: the images that decode per class and in all, and the bad ones (NULL cc: only
   indexed, every image counted and the bad column "-"; NULL ds: the split is unusable). */
static void print_row(const char *task, const char *split, const cored_dataset *ds, const check_counts *cc)
{
    if (!ds) {
        printf("%-28s %-6s %9s %9s %9s %6s\n", task, split, "error", "-", "-", "-");
    } else if (cc) {
        printf("%-28s %-6s %9d %9d %9d %6d\n", task, split, cc->good[0], cc->good[1], cc->good[0] + cc->good[1],
               cc->undecodable + cc->unreadable);
    } else {
        printf("%-28s %-6s %9d %9d %9d %6s\n", task, split, cored_dataset_class_count(ds, 0),
               cored_dataset_class_count(ds, 1), cored_dataset_count(ds), "-");
    }
    cli_flush_stdout();
}

/* Warns about TransferLearning subsets of tasks that are not in the list (never used). */
static void check_orphan_subsets(const char *root, char *const *tasks, int ntasks, tally *t)
{
    char tl[4200], **sub = NULL, msg[4500];
    int nsub = 0;
    cored_error err;
    if (cored_path_join(tl, sizeof tl, root, "TransferLearning") || !cored_is_dir(tl)) return;
    if (cored_data_list_tasks(&sub, &nsub, tl, &err) != CORED_OK) {
        on_problem(CORED_PROBLEM_ERROR, err.msg, t);
        return;
    }
    for (int i = 0; i < nsub; i++) {
        int known = 0;
        for (int k = 0; k < ntasks; k++) known |= !strcmp(sub[i], tasks[k]);
        if (known) continue;
        snprintf(msg, sizeof msg, "%s/%s: no task folder %s/%s, so this subset is never used", tl, sub[i], root,
                 sub[i]);
        on_problem(CORED_PROBLEM_WARNING, msg, t);
    }
    cored_free(sub);
}

int cmd_data(int argc, char **argv)
{
    const char *tasks_arg = NULL;
    int fast = 0, check = 0, strict = 0, threads = 0, quiet = 0;
    opt_def defs[] = {
        {"tasks", OPT_STR, &tasks_arg, 0, 0, NULL, "A,B", "tasks to check", "every folder of DIR but TransferLearning"},
        {"fast", OPT_FLAG, &fast, 0, 0, NULL, NULL, "only index the images: decode none (the bad column shows -)"},
        {"check", OPT_FLAG, &check, 0, 0, NULL, NULL, "decode every image: what the command does without --fast"},
        {"strict", OPT_FLAG, &strict, 0, 0, NULL, NULL, "undecodable images and warnings fail the command"},
        {"threads", OPT_INT, &threads, 1, 1024, NULL, "N", "decoding threads", "all cores"},
        {"quiet", OPT_FLAG, &quiet, 0, 0, NULL, NULL,
         "print only the table, errors and the counts (no progress bar); with --strict the warnings are errors "
         "and still printed"},
    };
    const char *root = NULL;
    int c = opts_parse_one(&doc, argc, argv, defs, sizeof defs / sizeof defs[0], "the data folder DIR", &root);
    if (c) return c == 1 ? 0 : c;
    if (fast && check) return cli_usage_error("data", "--fast decodes nothing and --check decodes every image: give one");
    int decode = !fast;
    cli_install_logger(quiet);
    if (threads <= 0) threads = cored_get_threads();

    cored_error err = {0};
    char **tasks = NULL;
    int ntasks = 0;
    if (tasks_arg) {
        if (cored_data_parse_tasks(&tasks, &ntasks, tasks_arg, &err)) {
            if (err.code == CORED_E_ARG) return cli_usage_error("data", "%s", err.msg);
            cli_print_error(&err);
            return 1;
        }
    } else {
        if (cored_data_list_tasks(&tasks, &ntasks, root, &err)) {
            cli_print_error(&err);
            return 1;
        }
        if (!ntasks) {
            fprintf(stderr, "cored: error: %s: no task folders (expected %s/<Task>/{train,val,test}/...)\n",
                    root, root);
            cored_free(tasks);
            return 1;
        }
    }

    tally t = {0, 0, quiet, strict, {0}};
    if (!tasks_arg) check_orphan_subsets(root, tasks, ntasks, &t);
    const cored_split splits[3] = {CORED_SPLIT_TRAIN, CORED_SPLIT_VAL, CORED_SPLIT_TEST};
    long total = 0, undecodable = 0, unreadable = 0;
    cli_progress bar;
    cli_progress_init(&bar, quiet, 0, "");
    printf("%-28s %-6s %9s %9s %9s %6s\n", "task", "split", "real", "fake", "total", "bad");
    for (int k = 0; k < ntasks; k++) {
        if (strchr(tasks[k], '_')) {
            char msg[400];
            snprintf(msg, sizeof msg,
                     "task '%.256s': task names should not contain '_' (the official code joins them with '_')",
                     tasks[k]);
            on_problem(CORED_PROBLEM_WARNING, msg, &t);
        }
        for (int s = 0; s < 4; s++) {
            cored_split split = s < 3 ? splits[s] : CORED_SPLIT_TRANSFER;
            char label[300];
            snprintf(label, sizeof label, "%s", tasks[k]);
            if (split == CORED_SPLIT_TRANSFER) {
                cored_transfer_source src;
                char dir[4200];
                snprintf(label, sizeof label, "TransferLearning/%.256s", tasks[k]);
                if (cored_data_transfer_dir(&src, dir, sizeof dir, root, tasks[k], &err)) {
                    on_problem(CORED_PROBLEM_ERROR, err.msg, &t);
                    print_row(label, "train", NULL, NULL);
                    continue;
                }
                if (src == CORED_TRANSFER_NO_TRAIN) {
                    char msg[4500];
                    snprintf(msg, sizeof msg, "%s/TransferLearning/%s/train: not found; continual steps on %s use %s",
                             root, tasks[k], tasks[k], dir);
                    on_problem(CORED_PROBLEM_WARNING, msg, &t);
                }
                if (src != CORED_TRANSFER_SUBSET) continue;
            }
            const char *split_name = split == CORED_SPLIT_TRANSFER ? "train" : cored_split_name(split);
            cored_dataset *ds = NULL;
            check_counts cc;
            cored_dataset_scan(&ds, root, tasks[k], split, on_problem, &t);
            if (ds && decode) {
                char what[400];
                snprintf(what, sizeof what, "decoding %s/%s", label, split_name);
                check_images(ds, threads, &t, &bar, what, &cc);
                undecodable += cc.undecodable;
                unreadable += cc.unreadable;
            }
            print_row(label, split_name, ds, ds && decode ? &cc : NULL);
            if (ds) total += cored_dataset_count(ds);
            cored_dataset_free(ds);
        }
    }
    cli_flush_stdout();
    if (t.text.oom) {
        t.errors++;
        fprintf(stderr, "cored: error: out of memory while collecting the problems found\n");
    }
    if (t.text.len) {
        fprintf(stderr, "\n%s", t.text.s);
        fflush(stderr);
    }
    int failed = t.errors > 0 || (strict && (t.warnings > 0 || undecodable > 0));
    char decoded[160];
    if (decode)
        snprintf(decoded, sizeof decoded, ", %ld decoded, %ld undecodable, %ld unreadable",
                 total - undecodable - unreadable, undecodable, unreadable);
    else
        snprintf(decoded, sizeof decoded, " (not decoded: --fast)");
    printf("\n%ld images indexed%s; %d error(s), %d warning(s)%s\n", total, decoded, t.errors, t.warnings,
           quiet && !strict && t.warnings ? " (warnings not shown: --quiet)" : "");
    cli_flush_stdout();
    cored_sb_release(&t.text);
    cored_free(tasks);
    return failed ? 1 : 0;
}
