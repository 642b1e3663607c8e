/*
 * cored pack: decodes and resizes every image of a data folder once and stores the pixels
 * in one pack file (format in docs/data.md), which the trainer memory-maps instead of
 * decoding. A rebuild reuses the entries of the old pack whose sources did not change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/core.h"
#include "data/data.h"
#include "opts.h"

static const cli_doc doc = {
    "pack", "DIR [options]",
    "Decodes and resizes every image of the data folder DIR (CoReD layout, see cored data\n"
    "--help) once and stores them in one file that training and evaluation memory-map.\n"
    "Images are resized as torchvision's Resize((size, size)) on PIL images (bit-exact) and\n"
    "stored as 8-bit RGB with their labels, paths and source size/mtime. The loader refuses\n"
    "a pack whose sources changed, whose size is not the model's or that an older cored\n"
    "decoded differently; run cored pack again to refresh it (unchanged images are copied,\n"
    "not decoded).",
    "cored pack FF --size 128\n"
    "cored pack SYNTH --size 64 --splits train,val --threads 4\n"
    "cored pack FF --size 299 --tasks DeepFakes,Face2Face --out /fast/ff-299.bin"};

/* Parses "train,val,test,transfer" into want[4]. */
static int parse_splits(int want[4], const char *s)
{
    static const char *const names[4] = {"train", "val", "test", "transfer"};
    memset(want, 0, 4 * sizeof *want);
    char buf[256];
    if (strlen(s) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%s", s);
    int any = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int found = 0;
        for (int k = 0; k < 4; k++)
            if (!strcmp(tok, names[k])) want[k] = found = 1;
        if (!found) return -1;
        any = 1;
    }
    return any ? 0 : -1;
}

int cmd_pack(int argc, char **argv)
{
    const char *out = NULL, *tasks_arg = NULL, *splits_arg = NULL;
    int size = 128, threads = 0, strict = 0, quiet = 0;
    opt_def defs[] = {
        {"size", OPT_INT, &size, 8, CORED_MAX_MODEL_SIDE, NULL, "PX", "side of the stored images, the model's input size"},
        {"out", OPT_STR, &out, 0, 0, NULL, "FILE", "pack file", "DIR/.cored-pack-SIZE.bin"},
        {"tasks", OPT_STR, &tasks_arg, 0, 0, NULL, "A,B", "tasks to pack", "every task folder of DIR"},
        {"splits", OPT_STR, &splits_arg, 0, 0, NULL, "LIST", "splits to pack, of train,val,test,transfer",
         "train,val,test, and transfer where DIR/TransferLearning/<Task>/train exists"},
        {"threads", OPT_INT, &threads, 1, 1024, NULL, "N", "decoding threads", "all cores"},
        {"strict", OPT_FLAG, &strict, 0, 0, NULL, NULL,
         "an undecodable image fails the command (without it: stored as bad, skipped with a warning by the "
         "loader); a file that cannot be read always fails it"},
        {"quiet", OPT_FLAG, &quiet, 0, 0, NULL, NULL, "no progress notes"},
    };
    const char *root = NULL;
    int c = opts_parse_one(&doc, argc, argv, defs, sizeof defs / sizeof defs[0], "the data folder DIR", &root);
    if (c) return c == 1 ? 0 : c;
    int want[4] = {1, 1, 1, 1}, explicit_splits = splits_arg != NULL;
    if (splits_arg && parse_splits(want, splits_arg))
        return cli_usage_error("pack", "--splits takes a list of train, val, test, transfer; got '%s'", splits_arg);
    cored_error err = {0};
    char **tasks = NULL;
    int ntasks = 0, rc = 0;
    if (tasks_arg) {
        rc = cored_data_parse_tasks(&tasks, &ntasks, tasks_arg, &err);
        if (rc == CORED_E_ARG) return cli_usage_error("pack", "%s", err.msg);
    } else {
        rc = cored_data_list_tasks(&tasks, &ntasks, root, &err);
        if (!rc && !ntasks) rc = CORED_FAIL(&err, CORED_E_ARG, "%s: no task folders to pack", root);
    }
    cli_install_logger(quiet);
    if (threads <= 0) threads = cored_get_threads();

    int nparts = 0;
    char path[4400];
    cored_dataset **parts = NULL, *all = NULL;
    if (!rc) {
        parts = cored_calloc((size_t)ntasks * 4, sizeof *parts);
        if (!parts) rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
    }
    const cored_split splits[4] = {CORED_SPLIT_TRAIN, CORED_SPLIT_VAL, CORED_SPLIT_TEST, CORED_SPLIT_TRANSFER};
    for (int k = 0; !rc && k < ntasks; k++)
        for (int s = 0; !rc && s < 4; s++) {
            if (!want[s]) continue;
            cored_split split = splits[s];
            if (split == CORED_SPLIT_TRANSFER) {
                cored_transfer_source src;
                rc = cored_data_transfer_dir(&src, path, sizeof path, root, tasks[k], &err);
                if (rc) break;
                /* without a TransferLearning subset "transfer" is the train split: packed
                   already, unless --splits left train out */
                if (src != CORED_TRANSFER_SUBSET) {
                    if (!explicit_splits || want[0]) continue;
                    split = CORED_SPLIT_TRAIN;
                }
            }
            rc = cored_dataset_open(&parts[nparts], root, tasks[k], split, &err);
            if (!rc) nparts++;
        }
    if (!rc) rc = cored_dataset_concat(&all, parts, nparts, &err);
    char defpath[4400];
    if (!out) {
        cored_pack_default_path(defpath, sizeof defpath, root, size);
        out = defpath;
    }
    const cored_path_use uses[] = {{root, "DIR", CORED_PATH_DATA}, {out, "--out", CORED_PATH_OUTPUT}};
    if (!rc) rc = cored_paths_check(uses, 2, &err);
    if (!rc) {
        if (!quiet)
            fprintf(stderr, "cored pack: %d images of %d task(s) at %d px into %s (%d threads)\n",
                    cored_dataset_count(all), ntasks, size, out, threads);
        /* temporaries of an interrupted run (a running `cored pack` keeps its own) */
        char dir[4400], *slash;
        snprintf(dir, sizeof dir, "%s", out);
        slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            cored_clean_stale_temps(slash == dir ? "/" : dir, slash + 1);
        } else {
            cored_clean_stale_temps(".", out);
        }
        cored_pack_stats st;
        double t0 = cored_now();
        rc = cored_pack_build(out, all, size, threads, out, strict, &st, &err);
        double dt = cored_now() - t0;
        if (!rc)
            printf("packed %d images (%d decoded, %d reused, %d undecodable) at %d px into %s: %.1f MiB "
                   "in %.1f s\n",
                   st.images, st.decoded, st.reused, st.bad, size, out, st.bytes / 1048576.0, dt);
    }
    for (int i = 0; i < nparts; i++) cored_dataset_free(parts[i]);
    cored_free(parts);
    cored_dataset_free(all);
    cored_free(tasks);
    if (rc) {
        cli_print_error(&err);
        return 1;
    }
    return 0;
}
