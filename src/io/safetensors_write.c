/*
 * safetensors writer: emits what the reference crate emits: `__metadata__` first, then the
 * tensors in the given order with contiguous offsets, JSON without spaces, padded with
 * spaces so that the data section starts at a multiple of 8, F32 (or the raw integer
 * dtype) little-endian. Files are replaced atomically (core/fileio).
 */
#include "io/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "io/st_internal.h"

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} st_buf;

static void put(st_buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) nc *= 2;
        char *q = cored_realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_str(st_buf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string, escaped as serde_json does (so that our headers match the crate's). */
static void put_json(st_buf *b, const char *s)
{
    char esc[8];
    put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        const char *simple = *c == '"'    ? "\\\""
                             : *c == '\\' ? "\\\\"
                             : *c == '\b' ? "\\b"
                             : *c == '\f' ? "\\f"
                             : *c == '\n' ? "\\n"
                             : *c == '\r' ? "\\r"
                             : *c == '\t' ? "\\t"
                                          : NULL;
        if (simple) put_str(b, simple);
        else if (*c < 0x20) put(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", *c));
        else put(b, (const char *)c, 1);
    }
    put(b, "\"", 1);
}

static int valid_text(const char *s)
{
    return s && cored_st_utf8_check((const unsigned char *)s, strlen(s)) == strlen(s);
}

static int raw_dtype_ok(cored_dtype dt)
{
    return dt == CORED_DT_BOOL || dt == CORED_DT_U8 || dt == CORED_DT_I8 || dt == CORED_DT_I16 ||
           dt == CORED_DT_U16 || dt == CORED_DT_I32 || dt == CORED_DT_U32 || dt == CORED_DT_I64 ||
           dt == CORED_DT_U64;
}

/* Validates the tensors and metadata and builds the padded header; *data_len is the size
   of the data section. */
static int prepare(const char *label, const cored_st_out *t, int n, const char *const *meta_kv,
                   int n_meta, st_buf *hdr, size_t *data_len, cored_error *err)
{
    char sb[ST_NAME_SHOW + 16], num[48];
    size_t off = 0;
    int dup;
    if (n < 0 || n_meta < 0 || (n && !t) || (n_meta && !meta_kv))
        return CORED_FAIL(err, CORED_E_ARG, "%s: invalid tensor or metadata list", label);
    for (int k = 0; k < 2 * n_meta; k++)
        if (!valid_text(meta_kv[k]))
            return CORED_FAIL(err, CORED_E_ARG, "%s: metadata %s %d is NULL or not UTF-8", label,
                              k % 2 ? "value" : "key", k / 2);
    put_str(hdr, "{");
    if (n_meta) put_str(hdr, "\"__metadata__\":{");
    for (int k = 0; k < n_meta; k++) {
        if (k) put_str(hdr, ",");
        put_json(hdr, meta_kv[2 * k]);
        put_str(hdr, ":");
        put_json(hdr, meta_kv[2 * k + 1]);
    }
    if (n_meta) put_str(hdr, n ? "}," : "}");
    for (int k = 0; k < n; k++) {
        size_t numel = 1, nbytes;
        if (!valid_text(t[k].name) || strcmp(t[k].name, "__metadata__") == 0)
            return CORED_FAIL(err, CORED_E_ARG,
                              "%s: tensor %d: name is NULL, not UTF-8 or \"__metadata__\"", label, k);
        if (t[k].ndim < 0 || t[k].ndim > CORED_ST_MAX_DIMS)
            return CORED_FAIL(err, CORED_E_ARG, "%s: tensor '%s': %d dimensions, expected 0 to %d", label,
                              cored_st_shown(t[k].name, sb), t[k].ndim, CORED_ST_MAX_DIMS);
        if (t[k].raw && !raw_dtype_ok(t[k].raw_dtype))
            return CORED_FAIL(err, CORED_E_ARG,
                              "%s: tensor '%s': raw dtype %s cannot be written (integer dtypes only)",
                              label, cored_st_shown(t[k].name, sb), cored_dtype_name(t[k].raw_dtype));
        cored_dtype dt = t[k].raw ? t[k].raw_dtype : CORED_DT_F32;
        if (k) put_str(hdr, ",");
        put_json(hdr, t[k].name);
        put_str(hdr, ":{\"dtype\":\"");
        put_str(hdr, cored_dtype_name(dt));
        put_str(hdr, "\",\"shape\":[");
        for (int j = 0; j < t[k].ndim; j++) {
            if (t[k].shape[j] < 0 || cored_mul_ok(numel, (size_t)t[k].shape[j], &numel))
                return CORED_FAIL(err, CORED_E_ARG,
                                  "%s: tensor '%s': shape entry %d (%lld) is negative or too large",
                                  label, cored_st_shown(t[k].name, sb), j, (long long)t[k].shape[j]);
            put(hdr, num,
                (size_t)snprintf(num, sizeof num, "%s%lld", j ? "," : "", (long long)t[k].shape[j]));
        }
        if (cored_mul_ok(numel, cored_dtype_size(dt), &nbytes) || off + nbytes < off)
            return CORED_FAIL(err, CORED_E_ARG, "%s: tensor '%s': too large", label,
                              cored_st_shown(t[k].name, sb));
        if (numel && !t[k].data && !t[k].raw)
            return CORED_FAIL(err, CORED_E_ARG, "%s: tensor '%s': data is NULL", label,
                              cored_st_shown(t[k].name, sb));
        if (dt == CORED_DT_BOOL)
            for (size_t i = 0; i < numel; i++)
                if (((const unsigned char *)t[k].raw)[i] > 1)
                    return CORED_FAIL(err, CORED_E_ARG, "%s: tensor '%s': BOOL element %zu is %u, not 0 or 1",
                                      label, cored_st_shown(t[k].name, sb), i,
                                      ((const unsigned char *)t[k].raw)[i]);
        for (size_t i = 0; !t[k].raw && i < numel; i++)
            if (!isfinite(t[k].data[i]))
                return CORED_FAIL(
                    err, CORED_E_NONFINITE,
                    "%s: tensor '%s': element %zu is %g; non-finite values are never written", label,
                    cored_st_shown(t[k].name, sb), i, (double)t[k].data[i]);
        put(hdr, num,
            (size_t)snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + nbytes));
        off += nbytes;
    }
    put_str(hdr, "}");
    while (!hdr->oom && hdr->len % 8) put_str(hdr, " ");
    if (hdr->oom) return CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory building the header", label);
    if (hdr->len > CORED_ST_MAX_HEADER)
        return CORED_FAIL(err, CORED_E_ARG, "%s: header would be %zu bytes, above the limit of %u", label,
                          hdr->len, CORED_ST_MAX_HEADER);
    if (cored_st_find_duplicate(t, sizeof *t, n, NULL, &dup)) goto nomem;
    if (dup < n)
        return CORED_FAIL(err, CORED_E_ARG, "%s: tensor name '%s' appears twice", label,
                          cored_st_shown(t[dup].name, sb));
    if (cored_st_find_duplicate(meta_kv, 2 * sizeof *meta_kv, n_meta, NULL, &dup)) goto nomem;
    if (dup < n_meta)
        return CORED_FAIL(err, CORED_E_ARG, "%s: metadata key '%s' appears twice", label,
                          cored_st_shown(meta_kv[2 * dup], sb));
    *data_len = off;
    return CORED_OK;
nomem:
    return CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory checking names", label);
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> 8 * k);
}

static void floats_le(unsigned char *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &src[i], 4);
        dst[4 * i] = (unsigned char)b;
        dst[4 * i + 1] = (unsigned char)(b >> 8);
        dst[4 * i + 2] = (unsigned char)(b >> 16);
        dst[4 * i + 3] = (unsigned char)(b >> 24);
    }
}

static size_t out_numel(const cored_st_out *t)
{
    size_t n = 1;
    for (int j = 0; j < t->ndim; j++) n *= (size_t)t->shape[j];
    return n;
}

static size_t out_elem_size(const cored_st_out *t)
{
    return t->raw ? cored_dtype_size(t->raw_dtype) : 4;
}

/* Elements [i0, i0+n) of tensor t, little-endian, into dst. */
static void elems_le(unsigned char *dst, const cored_st_out *t, size_t i0, size_t n)
{
    if (!t->raw) {
        floats_le(dst, t->data + i0, n);
        return;
    }
    size_t sz = cored_dtype_size(t->raw_dtype);
    const unsigned char *src = (const unsigned char *)t->raw + i0 * sz;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        switch (sz) {
        case 1: v = src[i]; break;
        case 2: { uint16_t x; memcpy(&x, src + 2 * i, 2); v = x; break; }
        case 4: { uint32_t x; memcpy(&x, src + 4 * i, 4); v = x; break; }
        default: memcpy(&v, src + 8 * i, 8); break;
        }
        for (size_t b = 0; b < sz; b++) dst[i * sz + b] = (unsigned char)(v >> 8 * b);
    }
}

int cored_st_serialize(unsigned char **buf, size_t *len, const cored_st_out *tensors, int n,
                       const char *const *meta_kv, int n_meta, cored_error *err)
{
    st_buf hdr = {0};
    size_t data_len = 0, total, o;
    unsigned char *out = NULL;
    int rc;
    if (!buf || !len) return CORED_FAIL(err, CORED_E_ARG, "cored_st_serialize: NULL output");
    if ((rc = prepare("<memory>", tensors, n, meta_kv, n_meta, &hdr, &data_len, err))) goto fail;
    total = 8 + hdr.len + data_len;
    if (total < data_len || !(out = cored_alloc(total))) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "<memory>: cannot allocate %zu bytes", total);
        goto fail;
    }
    put_le64(out, hdr.len);
    memcpy(out + 8, hdr.p, hdr.len);
    o = 8 + hdr.len;
    for (int k = 0; k < n; k++) {
        size_t m = out_numel(&tensors[k]);
        elems_le(out + o, &tensors[k], 0, m);
        o += out_elem_size(&tensors[k]) * m;
    }
    *buf = out;
    *len = total;
    out = NULL;
fail:
    cored_free(out);
    cored_free(hdr.p);
    return rc;
}

typedef struct {
    const st_buf *hdr;
    const cored_st_out *t;
    int n;
} st_writer;

static int write_body(FILE *fp, const char *path, void *user, cored_error *err)
{
    const st_writer *w = user;
    unsigned char chunk[1 << 14];
    int rc;
    put_le64(chunk, w->hdr->len);
    if ((rc = cored_fwrite_all(fp, chunk, 8, path, err)) ||
        (rc = cored_fwrite_all(fp, w->hdr->p, w->hdr->len, path, err)))
        return rc;
    for (int k = 0; k < w->n; k++) {
        size_t m = out_numel(&w->t[k]), sz = out_elem_size(&w->t[k]), per = sizeof chunk / sz;
        for (size_t i = 0; i < m; i += per) {
            size_t c = m - i < per ? m - i : per;
            elems_le(chunk, &w->t[k], i, c);
            if ((rc = cored_fwrite_all(fp, chunk, sz * c, path, err))) return rc;
        }
    }
    return CORED_OK;
}

int cored_st_write(const char *path, const cored_st_out *tensors, int n, const char *const *meta_kv,
                   int n_meta, cored_error *err)
{
    st_buf hdr = {0};
    size_t data_len;
    int rc;
    if (!path) return CORED_FAIL(err, CORED_E_ARG, "cored_st_write: path is NULL");
    if ((rc = prepare(path, tensors, n, meta_kv, n_meta, &hdr, &data_len, err))) goto fail;
    st_writer w = {&hdr, tensors, n};
    rc = cored_write_atomic(path, write_body, &w, err);
fail:
    cored_free(hdr.p);
    return rc;
}
