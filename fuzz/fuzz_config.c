/*
 * libFuzzer target: the run configurations cored reads back on --resume — a run's
 * config.json (cored_train_cfg_load) and a protocol folder's protocol.json with its
 * base.json (cored_protocol_load) — on arbitrary bytes. The loaders read files, so each
 * input is written into a private folder (removed at exit): all of it as config.json, and
 * split at its first NUL byte into protocol.json (before) and base.json (after; all of it
 * when there is none).
 * Seeds: fuzz/corpus/config/ (a config.json written by cored train, a protocol pair).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/protocol.h"

static char dir[64];

static void cleanup(void)
{
    const char *names[] = {"config.json", "protocol.json", "base.json"};
    char path[128];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void put(const char *name, const uint8_t *data, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) { /* in memory where there is a tmpfs: fifteen times the executions per second */
        snprintf(dir, sizeof dir, "%s/cored-fuzz-config-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
    }
    cored_error err;
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    put("config.json", data, size);
    cored_train_cfg cfg;
    char *strings = NULL;
    if (cored_train_cfg_load(&cfg, &strings, path, &err) == CORED_OK) {
        /* every string the configuration points to lives in `strings` and is terminated */
        volatile size_t sink = strlen(cfg.data ? cfg.data : "") + strlen(cfg.arch ? cfg.arch : "");
        for (int i = 0; i < cfg.n_sources; i++) sink += strlen(cfg.sources[i]);
        (void)sink;
    }
    cored_free(strings);

    const uint8_t *nul = memchr(data, 0, size);
    size_t head = nul ? (size_t)(nul - data) : size;
    put("protocol.json", data, head);
    put("base.json", nul ? nul + 1 : data, nul ? size - head - 1 : size);
    cored_protocol_cfg p;
    char *parts[2] = {NULL, NULL};
    if (cored_protocol_load(&p, parts, dir, &err) == CORED_OK) {
        volatile size_t sink = 0;
        for (int i = 0; i < p.n_tasks; i++) sink += strlen(p.tasks[i]);
        (void)sink;
    }
    cored_free(parts[0]);
    cored_free(parts[1]);
    return 0;
}
