/*
 * cored data: checks a data folder in the CoReD layout and prints how many images each
 * task, split and class holds (TransferLearning subsets included), then every problem
 * found: missing or misspelled folders, empty classes, stray entries and, with --check or
 * --strict, every image that cannot be decoded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "cli.h"
#include "core/core.h"
#include "data/data.h"

#define MAX_TASKS 256

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
           "  --quiet          print only the table and errors (default: off)\n\n"
           "Class folders may be named real/fake, 0_real/1_fake or 0/1 (0 = real, 1 = fake);\n"
           "images (.png .jpg .jpeg) may sit in nested per-video folders. Exit status: 0 when\n"
           "no error was found, 1 otherwise.\n");
}

typedef struct {
    int errors, warnings, quiet;
} tally;

static void on_problem(cored_problem_kind kind, const char *msg, void *user)
{
    tally *t = user;
    if (kind == CORED_PROBLEM_ERROR) {
        t->errors++;
        fprintf(stderr, "cored: error: %s\n", msg);
    } else {
        t->warnings++;
        if (!t->quiet) fprintf(stderr, "cored: warning: %s\n", msg);
    }
}

/* Decodes every image of ds; returns how many fail (each reported). */
static int check_images(const cored_dataset *ds, int threads, int strict, tally *t)
{
    int n = cored_dataset_count(ds), bad = 0;
#pragma omp parallel num_threads(threads) reduction(+ : bad)
    {
        uint8_t *file = NULL;
        size_t cap = 0;
        cored_image img = {0};
        uint8_t px[3];
        cored_resizer rz = {0};
#pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < n; i++) {
            cored_error err;
            int rc = cored_image_read_rgb8(px, 1, cored_dataset_path(ds, i), &file, &cap, &img, &rz, &err);
            if (rc == CORED_OK) continue;
            bad++;
#pragma omp critical(cored_data_report)
            on_problem(strict ? CORED_PROBLEM_ERROR : CORED_PROBLEM_WARNING, err.msg, t);
        }
        cored_free(file);
        cored_image_release(&img);
        cored_resizer_release(&rz);
    }
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
    char **listed = NULL, *tasks_copy = NULL, *tasks[MAX_TASKS];
    int ntasks = 0;
    if (tasks_arg) {
        tasks_copy = cored_strdup(tasks_arg);
        if (!tasks_copy) return 1;
        for (char *tok = strtok(tasks_copy, ","); tok; tok = strtok(NULL, ","))
            if (*tok && ntasks < MAX_TASKS) tasks[ntasks++] = tok;
        if (!ntasks) {
            cored_free(tasks_copy);
            return cli_usage_error("data", "--tasks needs at least one task name");
        }
    } else {
        int n = 0;
        if (cored_data_list_tasks(&listed, &n, root, &err)) {
            cli_print_error(&err);
            return 1;
        }
        for (int i = 0; i < n && ntasks < MAX_TASKS; i++) tasks[ntasks++] = listed[i];
        if (!ntasks) {
            fprintf(stderr, "cored: error: %s: no task folders (expected %s/<Task>/{train,val,test}/...)\n",
                    root, root);
            cored_free(listed);
            return 1;
        }
    }

    tally t = {0, 0, quiet};
    if (listed) { /* TransferLearning subsets without a task folder are never used */
        char tl[4200], **sub = NULL;
        int nsub = 0;
        snprintf(tl, sizeof tl, "%s/TransferLearning", root);
        if (cored_is_dir(tl) && cored_data_list_tasks(&sub, &nsub, tl, &err) == CORED_OK) {
            for (int i = 0; i < nsub; i++) {
                int known = 0;
                for (int k = 0; k < ntasks; k++) known |= !strcmp(sub[i], tasks[k]);
                if (known) continue;
                char msg[4500];
                snprintf(msg, sizeof msg, "%s/%s: no task folder %s/%s, so this subset is never used", tl, sub[i],
                         root, sub[i]);
                on_problem(CORED_PROBLEM_WARNING, msg, &t);
            }
            cored_free(sub);
        }
    }
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
                char tl[4200];
                snprintf(tl, sizeof tl, "%s/TransferLearning/%s/train", root, tasks[k]);
                if (!cored_is_dir(tl)) {
                    tl[strlen(tl) - 6] = '\0';
                    if (cored_is_dir(tl)) {
                        char msg[4500];
                        snprintf(msg, sizeof msg, "%s/train: not found; continual steps on %s use %s/%s/train",
                                 tl, tasks[k], root, tasks[k]);
                        on_problem(CORED_PROBLEM_WARNING, msg, &t);
                    }
                    continue;
                }
                snprintf(label, sizeof label, "TransferLearning/%s", tasks[k]);
            }
            cored_dataset *ds = NULL;
            cored_dataset_scan(&ds, root, tasks[k], split, on_problem, &t);
            int bad = ds && check ? check_images(ds, threads, strict, &t) : 0;
            print_row(label, split == CORED_SPLIT_TRANSFER ? "train" : cored_split_name(split), ds, bad, check);
            fflush(stdout);
            if (ds) total += cored_dataset_count(ds);
            total_bad += bad;
            cored_dataset_free(ds);
        }
    }
    fflush(stdout);
    int failed = t.errors > 0 || (strict && t.warnings > 0);
    fprintf(stderr, "cored data: %ld images indexed%s, %d error(s), %d warning(s)\n", total,
            check ? "" : " (not decoded; --check decodes them)", t.errors, t.warnings);
    if (check) fprintf(stderr, "cored data: %ld image(s) could not be decoded\n", total_bad);
    cored_free(listed);
    cored_free(tasks_copy);
    return failed ? 1 : 0;
}
