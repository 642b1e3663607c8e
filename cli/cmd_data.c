/*
 * cored data: checks a data folder in the CoReD layout and prints how many images each
 * task, split and class holds (TransferLearning subsets included), then every problem
 * found: missing or misspelled folders, empty classes, stray entries and, with --check or
 * --strict, every image that cannot be decoded or read.
 *
 * Output: the table goes to stdout (flushed row by row); the problems found meanwhile are
 * collected and printed after it, to stderr, after a blank line; the counts (the result)
 * go to stdout after another blank line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "cli.h"
#include "core/core.h"
#include "data/data.h"

static void usage(void)
{
    printf("usage: cored data DIR [options]\n\n"
           "  DIR              data root: DIR/<Task>/{train,val,test}/{real,fake}/... and optionally\n"
           "                   DIR/TransferLearning/<Task>/train/{real,fake}/...\n"
           "  --tasks A,B      tasks to check (default: every folder of DIR but TransferLearning)\n"
           "  --check          decode every image and report the ones that fail (default: off)\n"
           "  --strict         like --check, and undecodable images or warnings fail the command\n"
           "                   (default: off)\n"
           "  --threads N      decoding threads for --check (default: all cores)\n"
           "  --quiet          print only the table, errors and the counts; with --strict the\n"
           "                   warnings are errors and still printed (default: off)\n\n"
           "Class folders may be named real/fake, 0_real/1_fake or 0/1 (0 = real, 1 = fake);\n"
           "images (.png .jpg .jpeg) may sit in nested per-video folders. The table and the counts\n"
           "go to stdout, the problems to stderr. Exit status: 0 when no error was found, 1\n"
           "otherwise (with --strict also when there were warnings or undecodable images).\n");
}

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

/* What decoding one image of the check gave: nothing (it decodes) or a problem. */
typedef struct {
    int rc;
    char *msg;
} check_result;

/* Decodes every image of ds with one cored_decoder per thread and reports, in the index's
   order, every image that fails: undecodable ones (returned count; warnings, errors under
   --strict) and unreadable ones (always errors: the data set is not fully usable). */
static int check_images(const cored_dataset *ds, int threads, tally *t)
{
    int n = cored_dataset_count(ds), bad = 0;
    check_result *res = cored_calloc((size_t)(n ? n : 1), sizeof *res);
    if (!res) {
        on_problem(CORED_PROBLEM_ERROR, "out of memory checking the images", t);
        return 0;
    }
#pragma omp parallel num_threads(threads)
    {
        cored_decoder dec;
        cored_decoder_init(&dec);
        uint8_t px[3];
#pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < n; i++) {
            cored_error err;
            res[i].rc = cored_decoder_read_rgb8(&dec, px, 1, cored_dataset_path(ds, i), &err);
            if (res[i].rc) res[i].msg = cored_strdup(err.msg);
        }
        cored_decoder_release(&dec);
    }
    for (int i = 0; i < n; i++) {
        if (res[i].rc == CORED_OK) continue;
        char fallback[4200];
        if (!res[i].msg)
            snprintf(fallback, sizeof fallback, "%s: could not be %s (%s; out of memory for the details)",
                     cored_dataset_path(ds, i), res[i].rc == CORED_E_FORMAT ? "decoded" : "read",
                     cored_status_str(res[i].rc));
        const char *msg = res[i].msg ? res[i].msg : fallback;
        if (res[i].rc == CORED_E_FORMAT) {
            bad++;
            on_problem(t->strict ? CORED_PROBLEM_ERROR : CORED_PROBLEM_WARNING, msg, t);
        } else {
            on_problem(CORED_PROBLEM_ERROR, msg, t);
        }
        cored_free(res[i].msg);
    }
    cored_free(res);
    return bad;
}

static void print_row(const char *task, const char *split, const cored_dataset *ds, int bad, int checked)
{
    char badcol[16];
    if (checked)
        snprintf(badcol, sizeof badcol, "%d", bad);
    else
        snprintf(badcol, sizeof badcol, "-");
    if (ds)
        printf("%-28s %-6s %9d %9d %9d %6s\n", task, split, cored_dataset_class_count(ds, 0),
               cored_dataset_class_count(ds, 1), cored_dataset_count(ds), badcol);
    else
        printf("%-28s %-6s %9s %9s %9s %6s\n", task, split, "error", "-", "-", "-");
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
    static const struct option opts[] = {
        {"tasks", required_argument, 0, 't'}, {"check", no_argument, 0, 'c'},
        {"strict", no_argument, 0, 's'},      {"threads", required_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *tasks_arg = NULL;
    int check = 0, strict = 0, threads = 0, quiet = 0, c;
    while ((c = cli_getopt("data", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 't': tasks_arg = optarg; break;
        case 'c': check = 1; break;
        case 's': strict = check = 1; break;
        case 'j':
            if (cli_int("data", "threads", optarg, 1, 1024, &threads)) return EXIT_USAGE;
            break;
        case 'q': quiet = 1; break;
        case 'h': usage(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc) return cli_usage_error("data", "the data folder DIR is required");
    if (optind + 1 < argc) return cli_usage_error("data", "unexpected argument '%s'", argv[optind + 1]);
    const char *root = argv[optind];
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
    long total = 0, total_bad = 0;
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
                    print_row(label, "train", NULL, 0, check);
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
            cored_dataset *ds = NULL;
            cored_dataset_scan(&ds, root, tasks[k], split, on_problem, &t);
            int bad = ds && check ? check_images(ds, threads, &t) : 0;
            print_row(label, split == CORED_SPLIT_TRANSFER ? "train" : cored_split_name(split), ds, bad, check);
            if (ds) total += cored_dataset_count(ds);
            total_bad += bad;
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
    int failed = t.errors > 0 || (strict && (t.warnings > 0 || total_bad > 0));
    printf("\n%ld images indexed%s, %d error(s), %d warning(s)%s\n", total,
           check ? "" : " (not decoded; --check decodes them)", t.errors, t.warnings,
           quiet && !strict && t.warnings ? " (warnings not shown: --quiet)" : "");
    if (check) printf("%ld image(s) could not be decoded\n", total_bad);
    cli_flush_stdout();
    cored_sb_release(&t.text);
    cored_free(tasks);
    return failed ? 1 : 0;
}
