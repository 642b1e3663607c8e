/*
 * Data-set index: the official layout and its variants (real/fake, 0_real/1_fake, 0/1,
 * nested per-video folders, TransferLearning with fallback), deterministic sorted order,
 * every folder error with a message naming the expected path (a TransferLearning path in
 * the way is one), symbolic-link loops (to any folder above, too) and fan-out (each folder
 * indexed once), links across classes, one-class splits for scoring, FIFOs named like
 * images, the task list and the --tasks parser, derived sets (concat, subset,
 * class-balanced cap), and out-of-memory at every allocation.
 */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "test_data_util.h"

static const char *make_layout(const char *name, const char *real, const char *fake)
{
    const char *root = fresh_dir(name);
    char rel[512];
    const char *splits[3] = {"train", "val", "test"};
    for (int s = 0; s < 3; s++) {
        for (int v = 0; v < 2; v++)
            for (int f = 0; f < 3; f++) {
                snprintf(rel, sizeof rel, "DeepFake/%s/%s/video%d/%04d.png", splits[s], real, v, f);
                put_png(root, rel, 8, 8, v * 10 + f);
            }
        snprintf(rel, sizeof rel, "DeepFake/%s/%s/b.JPG", splits[s], fake);
        put_jpeg(root, rel, 8, 8, 1);
        snprintf(rel, sizeof rel, "DeepFake/%s/%s/a.jpeg", splits[s], fake);
        put_jpeg(root, rel, 8, 8, 2);
        snprintf(rel, sizeof rel, "DeepFake/%s/%s/deep/er/c.Png", splits[s], fake);
        put_png(root, rel, 8, 8, 3);
        snprintf(rel, sizeof rel, "DeepFake/%s/%s/notes.txt", splits[s], fake);
        put_text(root, rel, "not an image");
        snprintf(rel, sizeof rel, "DeepFake/%s/%s/.hidden.png", splits[s], fake);
        put_text(root, rel, "hidden");
    }
    return root;
}

static void test_layouts(void)
{
    const char *names[3][2] = {{"real", "fake"}, {"0_real", "1_fake"}, {"0", "1"}};
    for (int k = 0; k < 3; k++) {
        char dname[64];
        snprintf(dname, sizeof dname, "layout%d", k);
        const char *root = make_layout(dname, names[k][0], names[k][1]);
        cored_dataset *ds = NULL;
        cored_error err;
        int rc = cored_dataset_open(&ds, root, "DeepFake", CORED_SPLIT_VAL, &err);
        CHECK_MSG(rc == 0, "%s/%s: %s", names[k][0], names[k][1], err.msg);
        if (rc) continue;
        CHECK(cored_dataset_count(ds) == 9);
        CHECK(cored_dataset_class_count(ds, 0) == 6 && cored_dataset_class_count(ds, 1) == 3);
        int sorted = 1;
        for (int i = 1; i < cored_dataset_count(ds); i++)
            sorted &= strcmp(cored_dataset_path(ds, i - 1), cored_dataset_path(ds, i)) < 0;
        CHECK_MSG(sorted, "samples sorted by path");
        for (int i = 0; i < cored_dataset_count(ds); i++) {
            const char *p = cored_dataset_path(ds, i);
            int want = strstr(p, "/video") ? 0 : 1;
            CHECK_MSG(cored_dataset_label(ds, i) == want, "label of %s", p);
            CHECK(strstr(p, ".txt") == NULL && strstr(p, ".hidden") == NULL);
            CHECK(!strncmp(cored_dataset_relpath(ds, i), "DeepFake/val/", 13));
            CHECK(!strcmp(p + strlen(root) + 1, cored_dataset_relpath(ds, i)));
        }
        char want[1100];
        snprintf(want, sizeof want, "%s/DeepFake/val", root);
        CHECK(!strcmp(cored_dataset_describe(ds), want));
        cored_dataset_free(ds);
    }
}

static void test_transfer(void)
{
    const char *root = make_layout("transfer", "real", "fake");
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "DeepFake", CORED_SPLIT_TRANSFER, &err) == 0);
    CHECK_MSG(ds && strstr(cored_dataset_describe(ds), "DeepFake/train") &&
                  !strstr(cored_dataset_describe(ds), "TransferLearning"),
              "no TransferLearning folder: falls back to DeepFake/train");
    cored_dataset_free(ds);
    put_png(root, "TransferLearning/DeepFake/train/real/v/1.png", 8, 8, 1);
    put_png(root, "TransferLearning/DeepFake/train/fake/v/1.png", 8, 8, 2);
    ds = NULL;
    CHECK(cored_dataset_open(&ds, root, "DeepFake", CORED_SPLIT_TRANSFER, &err) == 0);
    CHECK(ds && cored_dataset_count(ds) == 2 && strstr(cored_dataset_describe(ds), "TransferLearning/DeepFake/train"));
    CHECK(ds && !strcmp(cored_dataset_relpath(ds, 0), "TransferLearning/DeepFake/train/fake/v/1.png"));
    cored_dataset_free(ds);
    /* The task list leaves TransferLearning out. */
    char **tasks = NULL;
    int nt = 0;
    CHECK(cored_data_list_tasks(&tasks, &nt, root, &err) == 0);
    CHECK(nt == 1 && tasks && !strcmp(tasks[0], "DeepFake"));
    cored_free(tasks);
}

static int open_fails(const char *root, const char *task, cored_split split, const char *want1,
                      const char *want2)
{
    cored_dataset *ds = NULL;
    cored_error err;
    memset(&err, 0, sizeof err);
    int rc = cored_dataset_open(&ds, root, task, split, &err);
    int ok = rc < 0 && ds == NULL && strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2));
    if (!ok) fprintf(stderr, "  got rc %d: '%s' (wanted '%s' and '%s')\n", rc, err.msg, want1, want2 ? want2 : "");
    cored_dataset_free(ds);
    return ok;
}

static void test_folder_errors(void)
{
    const char *root = make_layout("errors", "real", "fake");
    char p[1200];
    snprintf(p, sizeof p, "%s/nope", root);
    CHECK(open_fails(p, "DeepFake", CORED_SPLIT_TRAIN, "nope", "does not exist"));
    snprintf(p, sizeof p, "%s/DeepFake/val/real/video0/0000.png", root);
    CHECK(open_fails(p, "DeepFake", CORED_SPLIT_TRAIN, "0000.png", "not a folder"));
    CHECK(open_fails(root, "Face2Face", CORED_SPLIT_TRAIN, "Face2Face", "task folder not found"));
    /* missing split */
    snprintf(p, sizeof p, "rm -rf '%s/DeepFake/test'", root);
    CHECK(system(p) == 0);
    CHECK(open_fails(root, "DeepFake", CORED_SPLIT_TEST, "DeepFake/test", "split folder not found"));
    /* a split that is a file */
    put_text(root, "DeepFake/test", "x");
    CHECK(open_fails(root, "DeepFake", CORED_SPLIT_TEST, "DeepFake/test", "not a folder"));
    /* missing class: names the expected path */
    snprintf(p, sizeof p, "rm -rf '%s/DeepFake/val/fake'", root);
    CHECK(system(p) == 0);
    CHECK(open_fails(root, "DeepFake", CORED_SPLIT_VAL, "DeepFake/val/fake", "class folder not found"));
    /* empty class (only a non-image inside) */
    put_text(root, "DeepFake/val/fake/readme.md", "empty");
    CHECK(open_fails(root, "DeepFake", CORED_SPLIT_VAL, "DeepFake/val/fake", "no images"));
    /* ambiguous spellings */
    put_png(root, "DeepFake/train/0_real/x.png", 8, 8, 1);
    CHECK(open_fails(root, "DeepFake", CORED_SPLIT_TRAIN, "ambiguous", "0_real"));
    /* a class that is a file */
    snprintf(p, sizeof p, "rm -rf '%s/DeepFake/train/0_real' '%s/DeepFake/train/real'", root, root);
    CHECK(system(p) == 0);
    put_text(root, "DeepFake/train/real", "x");
    CHECK(open_fails(root, "DeepFake", CORED_SPLIT_TRAIN, "DeepFake/train/real", "not a folder"));
}

typedef struct {
    int errors, warnings;
    char all[4096];
} collected;

static void collect(cored_problem_kind kind, const char *msg, void *user)
{
    collected *c = user;
    if (kind == CORED_PROBLEM_ERROR)
        c->errors++;
    else
        c->warnings++;
    size_t l = strlen(c->all);
    snprintf(c->all + l, sizeof c->all - l, "%s\n", msg);
}

static void test_scan_reports_everything(void)
{
    const char *root = fresh_dir("scan");
    put_text(root, "GAN/train/stray.txt", "x");
    put_png(root, "GAN/train/other/x.png", 8, 8, 1);
    collected c;
    memset(&c, 0, sizeof c);
    cored_dataset *ds = NULL;
    int n = cored_dataset_scan(&ds, root, "GAN", CORED_SPLIT_TRAIN, collect, &c);
    CHECK_MSG(n == 2 && c.errors == 2, "both missing classes reported (%d errors):\n%s", c.errors, c.all);
    CHECK(strstr(c.all, "GAN/train/real") && strstr(c.all, "GAN/train/fake"));
    CHECK_MSG(c.warnings == 2 && strstr(c.all, "stray.txt") && strstr(c.all, "other"),
              "stray entries warned about:\n%s", c.all);
    CHECK(ds == NULL);
}

static void test_symlink_loop(void)
{
    const char *root = make_layout("links", "real", "fake");
    char target[1200], link[1200];
    snprintf(target, sizeof target, "%s/DeepFake/train/real", root);
    snprintf(link, sizeof link, "%s/DeepFake/train/real/video0/loop", root);
    CHECK(symlink(target, link) == 0);
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "DeepFake", CORED_SPLIT_TRAIN, &err) == 0);
    CHECK_MSG(ds && cored_dataset_class_count(ds, 0) >= 6, "a symbolic-link loop terminates");
    cored_dataset_free(ds);
    /* links up to the split folder and above, and across into the other class: not
       followed, each reported, both classes intact */
    const char *links[][2] = {{"..", "real/up"}, {"../../..", "real/video1/top"}, {"../fake", "real/across"}};
    for (size_t k = 0; k < sizeof links / sizeof links[0]; k++) {
        snprintf(link, sizeof link, "%s/DeepFake/val/%s", root, links[k][1]);
        CHECK(symlink(links[k][0], link) == 0);
    }
    collected c;
    memset(&c, 0, sizeof c);
    ds = NULL;
    CHECK(cored_dataset_scan(&ds, root, "DeepFake", CORED_SPLIT_VAL, collect, &c) == 0);
    CHECK_MSG(ds && cored_dataset_class_count(ds, 0) == 6 && cored_dataset_class_count(ds, 1) == 3,
              "real %d, fake %d:\n%s", cored_dataset_class_count(ds, 0), cored_dataset_class_count(ds, 1), c.all);
    CHECK_MSG(strstr(c.all, "real/up: symbolic-link loop") && strstr(c.all, "real/video1/top: symbolic-link loop") &&
              strstr(c.all, "real/across: a link into the other class"), "%s", c.all);
    cored_dataset_free(ds);
}

/* Scoring a split that holds one class: allowed (AUC n/a), not for training; a split
   without any image is refused either way. */
static void test_one_class(void)
{
    const char *root = make_layout("oneclass", "real", "fake");
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/DeepFake/test/fake'", root);
    CHECK(system(cmd) == 0);
    cored_dataset *ds = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&ds, root, "DeepFake", CORED_SPLIT_TEST, &err) == CORED_E_IO && strstr(err.msg, "fake"));
    CHECK(cored_dataset_open_scoring(&ds, root, "DeepFake", CORED_SPLIT_TEST, &err) == 0);
    CHECK(ds && cored_dataset_class_count(ds, 0) == 6 && cored_dataset_class_count(ds, 1) == 0);
    cored_dataset_free(ds);
    snprintf(cmd, sizeof cmd, "rm -rf '%s/DeepFake/test/real/'* && mkdir '%s/DeepFake/test/fake'", root, root);
    CHECK(system(cmd) == 0);
    ds = NULL;
    CHECK(cored_dataset_open_scoring(&ds, root, "DeepFake", CORED_SPLIT_TEST, &err) == CORED_E_IO && ds == NULL);
    CHECK_MSG(strstr(err.msg, "either class"), "%s", err.msg);
}

static void test_derived(void)
{
    const char *root = make_layout("derived", "real", "fake");
    cored_dataset *a = NULL, *b = NULL, *cat = NULL, *sub = NULL, *cap = NULL, *cap2 = NULL, *cap3 = NULL;
    cored_error err;
    CHECK(cored_dataset_open(&a, root, "DeepFake", CORED_SPLIT_TRAIN, &err) == 0);
    CHECK(cored_dataset_open(&b, root, "DeepFake", CORED_SPLIT_VAL, &err) == 0);
    cored_dataset *parts[2] = {a, b};
    CHECK(cored_dataset_concat(&cat, parts, 2, &err) == 0);
    CHECK(cat && cored_dataset_count(cat) == 18 && cored_dataset_class_count(cat, 0) == 12);
    CHECK(cat && !strcmp(cored_dataset_path(cat, 9), cored_dataset_path(b, 0)));
    CHECK(cat && strstr(cored_dataset_describe(cat), " + "));
    int idx[3] = {4, 0, 17};
    CHECK(cored_dataset_subset(&sub, cat, idx, 3, &err) == 0);
    CHECK(sub && cored_dataset_count(sub) == 3 && !strcmp(cored_dataset_path(sub, 1), cored_dataset_path(cat, 0)));
    int badidx[1] = {18};
    cored_dataset *none = NULL;
    CHECK(cored_dataset_subset(&none, cat, badidx, 1, &err) == CORED_E_ARG && none == NULL);
    CHECK(cored_dataset_cap_per_class(&cap, cat, 4, 7, &err) == 0);
    CHECK(cap && cored_dataset_class_count(cap, 0) == 4 && cored_dataset_class_count(cap, 1) == 4);
    CHECK(cored_dataset_cap_per_class(&cap2, cat, 4, 7, &err) == 0);
    int same = cap && cap2 && cored_dataset_count(cap) == cored_dataset_count(cap2);
    for (int i = 0; same && i < cored_dataset_count(cap); i++)
        same &= !strcmp(cored_dataset_path(cap, i), cored_dataset_path(cap2, i));
    CHECK_MSG(same, "cap per class is deterministic");
    CHECK(cored_dataset_cap_per_class(&cap3, cat, 4, 8, &err) == 0);
    int differs = 0;
    for (int i = 0; cap && cap3 && i < cored_dataset_count(cap); i++)
        differs |= strcmp(cored_dataset_path(cap, i), cored_dataset_path(cap3, i)) != 0;
    CHECK_MSG(differs, "another seed picks other samples");
    cored_dataset_free(a);
    cored_dataset_free(b);
    cored_dataset_free(cat);
    cored_dataset_free(sub);
    cored_dataset_free(cap);
    cored_dataset_free(cap2);
    cored_dataset_free(cap3);
}

/* Every allocation of open/concat/cap failing in turn: a clean error, nothing leaked. */
static void test_out_of_memory(void)
{
    const char *root = make_layout("oom", "real", "fake");
    int failures = 0, leaks = 0;
    for (uint64_t k = 1; k < 200; k++) {
        cored_alloc_stats a0 = cored_alloc_counts();
        cored_dataset *ds = NULL, *cap = NULL;
        cored_error err;
        cored_alloc_fail_at(k);
        int rc = cored_dataset_open(&ds, root, "DeepFake", CORED_SPLIT_TRAIN, &err);
        if (rc == 0) rc = cored_dataset_cap_per_class(&cap, ds, 2, 1, &err);
        cored_alloc_fail_at(0);
        if (rc) {
            failures++;
            if (rc != CORED_E_NOMEM) fprintf(stderr, "  k=%llu: rc %d: %s\n", (unsigned long long)k, rc, err.msg);
            CHECK(rc == CORED_E_NOMEM);
        }
        cored_dataset_free(ds);
        cored_dataset_free(cap);
        cored_alloc_stats a1 = cored_alloc_counts();
        leaks += (a1.allocs - a0.allocs) != (a1.frees - a0.frees);
        if (!rc) break;
    }
    CHECK(failures > 3);
    CHECK_MSG(leaks == 0, "%d leaking failure points", leaks);
}

/* Two links to one folder (fan-out) and a link back up (loop): each folder of the split is
   indexed once and the duplicate is reported; a link from fake/ to real/ is not read as a
   second class. A FIFO named like an image is ignored with a warning (never opened). */
static void test_symlink_fanout_and_fifo(void)
{
    const char *root = make_layout("fanout", "real", "fake");
    char target[1200], link[1200];
    snprintf(target, sizeof target, "%s/DeepFake/train/real/video0", root);
    snprintf(link, sizeof link, "%s/DeepFake/train/real/again", root);
    CHECK(symlink(target, link) == 0);
    snprintf(link, sizeof link, "%s/DeepFake/train/real/video1/again2", root);
    CHECK(symlink(target, link) == 0);
    snprintf(link, sizeof link, "%s/DeepFake/train/real/video1/pipe.png", root);
    CHECK(mkfifo(link, 0644) == 0);
    collected c;
    memset(&c, 0, sizeof c);
    cored_dataset *ds = NULL;
    CHECK(cored_dataset_scan(&ds, root, "DeepFake", CORED_SPLIT_TRAIN, collect, &c) == 0);
    CHECK_MSG(ds && cored_dataset_class_count(ds, 0) == 6, "each real image once (%d)", cored_dataset_class_count(ds, 0));
    int dups = 0;
    for (const char *p = c.all; (p = strstr(p, "already indexed")); p++) dups++;
    CHECK_MSG(dups == 2 && strstr(c.all, "pipe.png: not a regular file"), "fan-out and FIFO reported:\n%s", c.all);
    cored_dataset_free(ds);
    /* fake/ replaced by a link to real/: reported, and fake has no images of its own */
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/DeepFake/val/fake' && ln -s real '%s/DeepFake/val/fake'", root, root);
    CHECK(system(cmd) == 0);
    memset(&c, 0, sizeof c);
    ds = NULL;
    CHECK(cored_dataset_scan(&ds, root, "DeepFake", CORED_SPLIT_VAL, collect, &c) > 0 && ds == NULL);
    CHECK_MSG(strstr(c.all, "val/fake: the same folder") && strstr(c.all, "val/fake: no images"), "%s", c.all);
}

/* TransferLearning: a path in the way is an error naming it, not a fallback; a task whose
   name is a prefix of "TransferLearning" is found like any other. */
static void test_transfer_paths(void)
{
    const char *root = make_layout("tlpaths", "real", "fake");
    cored_transfer_source src;
    char dir[1200];
    cored_error err;
    CHECK(cored_data_transfer_dir(&src, dir, sizeof dir, root, "DeepFake", &err) == 0 && src == CORED_TRANSFER_NONE &&
          strstr(dir, "/DeepFake/train"));
    put_text(root, "TransferLearning/DeepFake/train", "not a folder");
    CHECK(cored_data_transfer_dir(&src, dir, sizeof dir, root, "DeepFake", &err) == CORED_E_IO &&
          strstr(err.msg, "TransferLearning/DeepFake/train: is not a folder"));
    CHECK(open_fails(root, "DeepFake", CORED_SPLIT_TRANSFER, "TransferLearning/DeepFake/train", "not a folder"));
    char p[1200];
    snprintf(p, sizeof p, "rm -rf '%s/TransferLearning'", root);
    CHECK(system(p) == 0);
    put_text(root, "TransferLearning/DeepFake", "x");
    CHECK(open_fails(root, "DeepFake", CORED_SPLIT_TRANSFER, "TransferLearning/DeepFake", "not a folder"));
    CHECK(system(p) == 0);
    put_text(root, "TransferLearning/readme", "x");
    CHECK(cored_data_transfer_dir(&src, dir, sizeof dir, root, "DeepFake", &err) == 0 && src == CORED_TRANSFER_NONE);
    put_text(root, "TransferLearning/DeepFake/notes.txt", "x");
    CHECK(cored_data_transfer_dir(&src, dir, sizeof dir, root, "DeepFake", &err) == 0 &&
          src == CORED_TRANSFER_NO_TRAIN && strstr(dir, "/DeepFake/train") && !strstr(dir, "Transfer"));
    /* task "T": only its subset exists (no DATA/T); "T" is a prefix of "TransferLearning" */
    put_png(root, "TransferLearning/T/train/real/1.png", 8, 8, 1);
    put_png(root, "TransferLearning/T/train/fake/1.png", 8, 8, 2);
    cored_dataset *ds = NULL;
    int rc = cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRANSFER, &err);
    CHECK_MSG(rc == 0 && cored_dataset_count(ds) == 2, "transfer subset of task T: %s", rc ? err.msg : "");
    cored_dataset_free(ds);
    CHECK(open_fails(root, "T", CORED_SPLIT_TRAIN, "/T", "task folder not found"));
}

/* The task list (one pass, every name whole) and the --tasks parser. */
static void test_task_lists(void)
{
    const char *root = fresh_dir("tasklist");
    char name[300], path[1400];
    for (int i = 0; i < 40; i++) {
        memset(name, 'a' + i % 26, 200);
        snprintf(name + 200, sizeof name - 200, "%02d", i);
        snprintf(path, sizeof path, "%s/%s", root, name);
        CHECK(mkdir(path, 0755) == 0);
    }
    put_text(root, "file.txt", "x");
    char **t = NULL;
    int n = 0, sorted = 1, whole = 1;
    cored_error err;
    CHECK(cored_data_list_tasks(&t, &n, root, &err) == 0 && n == 40);
    for (int i = 0; i < n; i++) {
        whole &= strlen(t[i]) == 202;
        if (i) sorted &= strcmp(t[i - 1], t[i]) < 0;
    }
    CHECK(t && t[n] == NULL && sorted && whole);
    cored_free(t);

    CHECK(cored_data_parse_tasks(&t, &n, "DeepFake,Face2Face,FaceSwap", &err) == 0 && n == 3 &&
          !strcmp(t[0], "DeepFake") && !strcmp(t[2], "FaceSwap") && t[3] == NULL);
    cored_free(t);
    const char *bad[][2] = {{"", "at least one"}, {"A,,B", "empty"}, {"A,", "empty"}, {"A,../x", "not a task"},
                            {"A,B,A", "twice"}, {"..", "not a task"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        t = NULL;
        int rc = cored_data_parse_tasks(&t, &n, bad[k][0], &err);
        CHECK_MSG(rc == CORED_E_ARG && t == NULL && strstr(err.msg, bad[k][1]), "'%s': %d %s", bad[k][0], rc, err.msg);
    }
    /* longer lists than the limit are refused, not cut */
    size_t len = 4 * (CORED_DATA_MAX_TASKS + 1);
    char *many = malloc(len + 1), *q = many;
    for (int i = 0; i <= CORED_DATA_MAX_TASKS; i++) q += sprintf(q, "%s%03x", i ? "," : "", i);
    CHECK(cored_data_parse_tasks(&t, &n, many, &err) == CORED_E_ARG && strstr(err.msg, "more than"));
    many[q - many - 4] = '\0'; /* exactly the limit */
    CHECK(cored_data_parse_tasks(&t, &n, many, &err) == 0 && n == CORED_DATA_MAX_TASKS);
    cored_free(t);
    free(many);
}

int main(void)
{
    RUN(test_layouts);
    RUN(test_transfer);
    RUN(test_folder_errors);
    RUN(test_scan_reports_everything);
    RUN(test_symlink_loop);
    RUN(test_one_class);
    RUN(test_symlink_fanout_and_fifo);
    RUN(test_transfer_paths);
    RUN(test_task_lists);
    RUN(test_derived);
    RUN(test_out_of_memory);
    return test_finish();
}
