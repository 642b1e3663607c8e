/*
 * libFuzzer target: the pack reader (cored_pack_parse, the same code cored_pack_open runs
 * on a memory map) on arbitrary bytes. Each input is parsed as is and once more with its
 * header checksum recomputed, so the checks behind the checksum (entries, paths, labels,
 * duplicate paths, lookups, pixel checksums) are reached too.
 * Seeds: fuzz/corpus/pack/ (small packs written by `cored pack`).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

static void walk(const uint8_t *buf, size_t len)
{
    cored_pack *p = NULL;
    cored_error err;
    if (cored_pack_parse(&p, buf, len, "fuzz", &err) != CORED_OK) return;
    size_t n = (size_t)cored_pack_size(p) * cored_pack_size(p) * 3;
    volatile unsigned sink = (unsigned)cored_pack_pipeline(p);
    for (int i = 0; i < cored_pack_count(p); i++) {
        size_t plen = 0;
        const char *rel = cored_pack_relpath(p, i, &plen);
        if (!rel || strlen(rel) != plen || cored_pack_find(p, rel) != i) abort();
        cored_pack_verify_entry(p, i, &err);
        const uint8_t *px = cored_pack_pixels(p, i);
        sink += px[0] + px[n - 1] + (unsigned)cored_pack_label(p, i) + (unsigned)cored_pack_is_bad(p, i);
    }
    (void)sink;
    cored_pack_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    walk(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (cored_pack_fix_checksum(copy, size) == 0) walk(copy, size);
    free(copy);
    return 0;
}
