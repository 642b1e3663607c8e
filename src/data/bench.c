/*
 * Loader throughput (images per second) on a data root's training split, with the
 * augmentation of a CoReD continual step (shuffle, flip, opposite-class CutMix), reading
 * either the image files or a pack. Used by `cored bench --data` and tools/bench_data.py.
 */
#include "data/data.h"

int cored_bench_loader(const char *data_root, const char *task, const char *pack, int threads,
                       int batch, int size, double seconds, double *images_per_s, cored_error *err)
{
    if (!images_per_s || seconds <= 0)
        return CORED_FAIL(err, CORED_E_ARG, "cored_bench_loader: seconds must be > 0");
    cored_dataset *ds = NULL;
    cored_loader *l = NULL;
    int rc = cored_dataset_open(&ds, data_root, task, CORED_SPLIT_TRAIN, err);
    if (rc) goto fail;
    cored_loader_opts o = {0};
    o.batch = batch;
    o.size = size;
    o.threads = threads;
    o.seed = 1;
    o.shuffle = 1;
    o.flip = 1;
    o.cutmix = CORED_CUTMIX_OPPOSITE;
    o.pack = pack;
    rc = cored_loader_create(&l, ds, &o, err);
    if (rc) goto fail;
    int epoch = 0;
    rc = cored_loader_start(l, epoch, 0, err);
    if (rc) goto fail;
    long images = 0;
    double t0 = 0, now = 0;
    int warm = 0;
    for (;;) {
        cored_batch *b = NULL;
        rc = cored_loader_next(l, &b, err);
        if (rc < 0) goto fail;
        if (rc == 0) {
            rc = cored_loader_start(l, ++epoch, 0, err);
            if (rc) goto fail;
            continue;
        }
        int n = b->n;
        cored_loader_release(l, b);
        now = cored_now();
        if (!warm) { /* the first batch pays for thread start and cold caches */
            warm = 1;
            t0 = now;
            continue;
        }
        images += n;
        if (now - t0 >= seconds) break;
    }
    *images_per_s = images / (now - t0);
    rc = CORED_OK;
fail:
    cored_loader_free(l);
    cored_dataset_free(ds);
    return rc;
}
