/*
 * safetensors reader, following the format and the validation of the
 * reference crate (https://github.com/huggingface/safetensors, safetensors/src/tensor.rs):
 *
 *   [8 bytes: little-endian u64 N][N bytes: UTF-8 JSON object, space padded][data section]
 *
 * The header is parsed by a small strict JSON parser written for this schema (integers are
 * read exactly as u64, as serde reads usize; no doubles, no 2^53 limit, precise byte
 * positions in messages, every allocation through cored_alloc). Validation order: header
 * length, UTF-8, JSON syntax and types, then per tensor begin <= end, shape x dtype size
 * == end - begin (with overflow checks, like the crate's checked_mul fold), offsets inside
 * the data section, duplicate names, and finally the tensors sorted by (begin, end) must
 * tile the data section exactly from 0 to its end. Unknown keys inside a tensor entry are
 * ignored, as serde does for TensorInfo. All multi-byte values are read byte by byte, so
 * the data section may sit at any alignment.
 *
 * The writer is in safetensors_write.c, conversions of tensor data in safetensors_convert.c.
 */
#include "io/safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/st_internal.h"

#define ST_MAX_DEPTH 64   /* nesting accepted inside ignored values */
/* Largest shape entry: it must fit int64_t (the API) and size_t (the size computation). */
#define ST_MAX_DIM ((uint64_t)INT64_MAX < SIZE_MAX ? (uint64_t)INT64_MAX : (uint64_t)SIZE_MAX)

static const char *const dtype_names[CORED_DT_COUNT] = {
    "BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "BF16", "F32", "F64"};
static const unsigned char dtype_sizes[CORED_DT_COUNT] = {1, 1, 1, 2, 2, 4, 4, 8, 8, 2, 2, 4, 8};

const char *cored_dtype_name(cored_dtype dt)
{
    return (unsigned)dt < CORED_DT_COUNT ? dtype_names[dt] : "?";
}

size_t cored_dtype_size(cored_dtype dt) { return (unsigned)dt < CORED_DT_COUNT ? dtype_sizes[dt] : 0; }

const char *cored_st_shown(const char *name, char buf[ST_NAME_SHOW + 16])
{
    size_t o = 0;
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        if (o >= ST_NAME_SHOW && (*s & 0xC0) != 0x80) {
            memcpy(buf + o, "...", 4);
            return buf;
        }
        if (*s < 0x20 || *s == 0x7F) o += (size_t)snprintf(buf + o, 5, "\\x%02x", *s);
        else buf[o++] = (char)*s;
    }
    buf[o] = '\0';
    return buf;
}

size_t cored_st_utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, min;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; min = 0x80; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; min = 0x800; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; min = 0x10000; cp = c & 0x07; }
        else return i;
        if (n - i <= need) return i;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += need + 1;
    }
    return n;
}

/* ---------------------------------------------------------------- header JSON */

typedef struct {
    uint64_t begin, end;
    int idx;
} st_span;

typedef struct {
    const char *label;
    cored_error *err;
    const unsigned char *s; /* header text */
    size_t n, i;            /* its length, the read position */
    cored_st_file *f;
    st_span *spans;         /* data_offsets, one per tensor */
    int cap, cap_meta;
    int has_meta;
} st_parser;

static int jerr(st_parser *P, const char *what)
{
    char found[32];
    if (P->i >= P->n) snprintf(found, sizeof found, "the end of the header");
    else if (P->s[P->i] >= 0x20 && P->s[P->i] < 0x7F) snprintf(found, sizeof found, "'%c'", P->s[P->i]);
    else snprintf(found, sizeof found, "byte 0x%02x", P->s[P->i]);
    return CORED_FAIL(P->err, CORED_E_FORMAT,
                      "%s: header is not valid JSON: %s at header byte %zu, found %s", P->label, what,
                      P->i, found);
}

static void ws(st_parser *P)
{
    while (P->i < P->n &&
           (P->s[P->i] == ' ' || P->s[P->i] == '\t' || P->s[P->i] == '\n' || P->s[P->i] == '\r'))
        P->i++;
}

/* Skips whitespace, then consumes c or fails. */
static int expect(st_parser *P, char c, const char *what)
{
    ws(P);
    if (P->i < P->n && P->s[P->i] == (unsigned char)c) {
        P->i++;
        return CORED_OK;
    }
    return jerr(P, what);
}

/* Skips whitespace; 1 when the next byte is c (not consumed). */
static int peek(st_parser *P, char c)
{
    ws(P);
    return P->i < P->n && P->s[P->i] == (unsigned char)c;
}

/* After a member or element: consumes a ',' and returns 1, or returns 0 (end of list). */
static int comma(st_parser *P)
{
    ws(P);
    if (P->i < P->n && P->s[P->i] == ',') {
        P->i++;
        return 1;
    }
    return 0;
}

static int hex4(const unsigned char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = s[k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') d = (c | 0x20) - 'a' + 10;
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* A JSON string at the read position. Decoded into a fresh buffer when out is not NULL,
   only validated otherwise. \u0000 is refused: names are C strings. */
static int parse_string(st_parser *P, char **out)
{
    int rc = CORED_OK;
    char *dst = NULL;
    size_t o = 0, q, i;
    ws(P);
    if (P->i >= P->n || P->s[P->i] != '"') return jerr(P, "expected a string");
    for (q = P->i + 1; q < P->n && P->s[q] != '"'; q++)
        if (P->s[q] == '\\') q++;
    if (q >= P->n) return jerr(P, "unterminated string");
    if (out && !(dst = cored_alloc(q - P->i))) {
        rc = CORED_FAIL(P->err, CORED_E_NOMEM, "%s: out of memory reading the header", P->label);
        goto fail;
    }
    for (i = P->i + 1; i < q;) {
        unsigned char c = P->s[i];
        uint32_t cp, lo;
        P->i = i;
        if (c < 0x20) {
            rc = jerr(P, "control character inside a string");
            goto fail;
        }
        if (c != '\\') {
            if (dst) dst[o++] = (char)c;
            i++;
            continue;
        }
        const char *simple = strchr("\"\\/bfnrt", P->s[i + 1]);
        if (simple && P->s[i + 1]) {
            if (dst) dst[o++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            i += 2;
            continue;
        }
        if (P->s[i + 1] != 'u' || q - i < 6 || hex4(P->s + i + 2, &cp)) {
            rc = jerr(P, "invalid escape in a string");
            goto fail;
        }
        i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            rc = jerr(P, "lone low surrogate escape in a string");
            goto fail;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (q - i < 6 || P->s[i] != '\\' || P->s[i + 1] != 'u' || hex4(P->s + i + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF) {
                rc = jerr(P, "unpaired surrogate escape in a string");
                goto fail;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        if (cp == 0) {
            rc = jerr(P, "\\u0000 inside a string is not supported");
            goto fail;
        }
        if (!dst) continue;
        if (cp < 0x80) dst[o++] = (char)cp;
        else if (cp < 0x800) {
            dst[o++] = (char)(0xC0 | cp >> 6);
            dst[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            dst[o++] = (char)(0xE0 | cp >> 12);
            dst[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
            dst[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            dst[o++] = (char)(0xF0 | cp >> 18);
            dst[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
            dst[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
            dst[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    P->i = q + 1;
    if (dst) {
        dst[o] = '\0';
        *out = dst;
    }
    return CORED_OK;
fail:
    cored_free(dst);
    return rc;
}

/* A JSON number token (RFC 8259 grammar); reports its span, sign and integrality. */
static int number_token(st_parser *P, size_t *start, int *neg, int *integral)
{
    const unsigned char *s = P->s;
    size_t i;
    ws(P);
    i = *start = P->i;
    *neg = i < P->n && s[i] == '-';
    *integral = 1;
    if (*neg) i++;
    if (i >= P->n || s[i] < '0' || s[i] > '9')
        return P->i = i, jerr(P, *neg ? "expected a digit" : "expected a number");
    if (s[i] == '0') i++;
    else
        while (i < P->n && s[i] >= '0' && s[i] <= '9') i++;
    if (i < P->n && s[i] == '.') {
        *integral = 0;
        if (++i >= P->n || s[i] < '0' || s[i] > '9') return P->i = i, jerr(P, "expected a digit");
        while (i < P->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < P->n && (s[i] == 'e' || s[i] == 'E')) {
        *integral = 0;
        if (++i < P->n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= P->n || s[i] < '0' || s[i] > '9') return P->i = i, jerr(P, "expected a digit");
        while (i < P->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    P->i = i;
    return CORED_OK;
}

/* A non-negative integer of at most `max`; `what` says which value it is. */
static int parse_uint(st_parser *P, const char *what, uint64_t max, uint64_t *out)
{
    size_t start;
    int neg, integral, rc = number_token(P, &start, &neg, &integral);
    if (rc) return rc;
    int len = (int)(P->i - start < 40 ? P->i - start : 40);
    const char *tok = (const char *)P->s + start;
    if (neg || !integral)
        return CORED_FAIL(P->err, CORED_E_FORMAT, "%s: %s must be a non-negative integer, found %.*s%s",
                          P->label, what, len, tok, P->i - start > 40 ? "..." : "");
    uint64_t v = 0;
    for (size_t i = start; i < P->i; i++) {
        unsigned d = P->s[i] - '0';
        if (v > (max - d) / 10)
            return CORED_FAIL(P->err, CORED_E_FORMAT, "%s: %s is too large: %.*s%s (at most %llu)",
                              P->label, what, len, tok, P->i - start > 40 ? "..." : "",
                              (unsigned long long)max);
        v = v * 10 + d;
    }
    *out = v;
    return CORED_OK;
}

/* Any JSON value, validated and ignored. */
static int skip_value(st_parser *P, int depth)
{
    size_t start;
    int neg, integral, rc;
    if (depth > ST_MAX_DEPTH) return jerr(P, "values nested more than 64 deep");
    ws(P);
    if (P->i >= P->n) return jerr(P, "expected a value");
    unsigned char c = P->s[P->i];
    if (c == '"') return parse_string(P, NULL);
    if (c == '-' || (c >= '0' && c <= '9')) return number_token(P, &start, &neg, &integral);
    static const char *const lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (P->n - P->i >= l && memcmp(P->s + P->i, lits[k], l) == 0) {
            P->i += l;
            return CORED_OK;
        }
    }
    if (c != '{' && c != '[') return jerr(P, "expected a value");
    unsigned char close = c == '{' ? '}' : ']';
    P->i++;
    ws(P);
    if (P->i < P->n && P->s[P->i] == close) {
        P->i++;
        return CORED_OK;
    }
    for (;;) {
        if (c == '{' && ((rc = parse_string(P, NULL)) || (rc = expect(P, ':', "expected ':'"))))
            return rc;
        if ((rc = skip_value(P, depth + 1))) return rc;
        if (!comma(P))
            return expect(P, (char)close, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

/* '[' uint, uint, ... ']' into vals (at most maxn; more is reported with `what`). */
static int parse_uint_array(st_parser *P, const char *tname, const char *what, uint64_t max,
                            uint64_t *vals, int maxn, int *count)
{
    char sb[ST_NAME_SHOW + 16], ctx[ST_NAME_SHOW + 64];
    int rc, n = 0;
    ws(P);
    if (P->i >= P->n || P->s[P->i] != '[')
        return CORED_FAIL(P->err, CORED_E_FORMAT, "%s: tensor '%s': \"%s\" must be an array of integers",
                          P->label, cored_st_shown(tname, sb), what);
    P->i++;
    ws(P);
    if (P->i < P->n && P->s[P->i] == ']') {
        P->i++;
        *count = 0;
        return CORED_OK;
    }
    for (;;) {
        if (n == maxn)
            return CORED_FAIL(P->err, CORED_E_FORMAT, "%s: tensor '%s': \"%s\" has more than %d entries",
                              P->label, cored_st_shown(tname, sb), what, maxn);
        snprintf(ctx, sizeof ctx, "tensor '%s': %s entry %d", cored_st_shown(tname, sb), what, n);
        if ((rc = parse_uint(P, ctx, max, &vals[n]))) return rc;
        n++;
        if (!comma(P)) break;
    }
    *count = n;
    return expect(P, ']', "expected ',' or ']'");
}

/* {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} into tensor k. */
static int parse_tensor(st_parser *P, int k)
{
    cored_st_tensor *t = &P->f->tensors[k];
    char sb[ST_NAME_SHOW + 16], *key = NULL, *dt = NULL;
    int rc, seen[3] = {0, 0, 0}, count;
    uint64_t vals[CORED_ST_MAX_DIMS + 1];
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    ws(P);
    if (P->i >= P->n || P->s[P->i] != '{') {
        rc = CORED_FAIL(P->err, CORED_E_FORMAT, "%s: tensor '%s': entry must be a JSON object",
                        P->label, cored_st_shown(t->name, sb));
        goto fail;
    }
    P->i++;
    for (int more = !peek(P, '}'); more; more = comma(P)) {
        if ((rc = parse_string(P, &key)) || (rc = expect(P, ':', "expected ':'"))) goto fail;
        int which = -1;
        for (int j = 0; j < 3; j++)
            if (strcmp(key, keys[j]) == 0) which = j;
        if (which >= 0 && seen[which]++) {
            rc = CORED_FAIL(P->err, CORED_E_FORMAT, "%s: tensor '%s': key \"%s\" appears twice",
                            P->label, cored_st_shown(t->name, sb), key);
            goto fail;
        }
        cored_free(key);
        key = NULL;
        if (which == 0) {
            ws(P);
            if (P->i >= P->n || P->s[P->i] != '"') {
                rc = CORED_FAIL(P->err, CORED_E_FORMAT, "%s: tensor '%s': \"dtype\" must be a string",
                                P->label, cored_st_shown(t->name, sb));
                goto fail;
            }
            if ((rc = parse_string(P, &dt))) goto fail;
            int d = 0;
            while (d < CORED_DT_COUNT && strcmp(dt, dtype_names[d]) != 0) d++;
            if (d == CORED_DT_COUNT) {
                char db[ST_NAME_SHOW + 16];
                rc = CORED_FAIL(P->err, CORED_E_FORMAT,
                                "%s: tensor '%s': dtype '%s' is not supported (expected BOOL, U8, I8, "
                                "I16, U16, I32, U32, I64, U64, F16, BF16, F32 or F64)",
                                P->label, cored_st_shown(t->name, sb), cored_st_shown(dt, db));
                goto fail;
            }
            t->dtype = (cored_dtype)d;
            cored_free(dt);
            dt = NULL;
        } else if (which == 1) {
            if ((rc = parse_uint_array(P, t->name, "shape", ST_MAX_DIM, vals, CORED_ST_MAX_DIMS, &count)))
                goto fail;
            t->ndim = count;
            for (int j = 0; j < count; j++) t->shape[j] = (int64_t)vals[j];
        } else if (which == 2) {
            if ((rc = parse_uint_array(P, t->name, "data_offsets", SIZE_MAX, vals, 2, &count))) goto fail;
            if (count != 2) {
                rc = CORED_FAIL(
                    P->err, CORED_E_FORMAT,
                    "%s: tensor '%s': \"data_offsets\" must be [begin, end], found %d entries", P->label,
                    cored_st_shown(t->name, sb), count);
                goto fail;
            }
            P->spans[k].begin = vals[0];
            P->spans[k].end = vals[1];
        } else if ((rc = skip_value(P, 1))) {
            goto fail;
        }
    }
    if ((rc = expect(P, '}', "expected ',' or '}'"))) goto fail;
    for (int j = 0; j < 3; j++) {
        if (!seen[j]) {
            rc = CORED_FAIL(P->err, CORED_E_FORMAT, "%s: tensor '%s': missing \"%s\"", P->label,
                            cored_st_shown(t->name, sb), keys[j]);
            goto fail;
        }
    }
    return CORED_OK;
fail:
    cored_free(key);
    cored_free(dt);
    return rc;
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    if (*cap > (1 << 28)) return -1;
    int nc = *cap ? *cap * 2 : 16;
    void *p = cored_realloc(*arr, (size_t)nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* "__metadata__": {"key": "value", ...} */
static int parse_meta(st_parser *P)
{
    cored_st_file *f = P->f;
    char *k = NULL, *v = NULL;
    int rc = CORED_OK;
    ws(P);
    if (P->i >= P->n || P->s[P->i] != '{')
        return CORED_FAIL(P->err, CORED_E_FORMAT, "%s: \"__metadata__\" must be an object of strings",
                          P->label);
    P->i++;
    for (int more = !peek(P, '}'); more; more = comma(P)) {
        if ((rc = parse_string(P, &k)) || (rc = expect(P, ':', "expected ':'"))) goto fail;
        ws(P);
        if (P->i >= P->n || P->s[P->i] != '"') {
            char sb[ST_NAME_SHOW + 16];
            rc = CORED_FAIL(P->err, CORED_E_FORMAT,
                            "%s: \"__metadata__\" entry '%s' must be a string", P->label, cored_st_shown(k, sb));
            goto fail;
        }
        if ((rc = parse_string(P, &v))) goto fail;
        int ck = P->cap_meta, cv = P->cap_meta;
        if (grow((void **)&f->meta_keys, &ck, f->n_meta + 1, sizeof(char *)) ||
            grow((void **)&f->meta_vals, &cv, f->n_meta + 1, sizeof(char *))) {
            rc = CORED_FAIL(P->err, CORED_E_NOMEM, "%s: out of memory reading the header", P->label);
            goto fail;
        }
        P->cap_meta = ck;
        f->meta_keys[f->n_meta] = k;
        f->meta_vals[f->n_meta++] = v;
        k = v = NULL;
    }
    rc = expect(P, '}', "expected ',' or '}'");
fail:
    cored_free(k);
    cored_free(v);
    return rc;
}

static int parse_header(st_parser *P)
{
    cored_st_file *f = P->f;
    char *key = NULL;
    int rc;
    if (P->s[0] != '{') return jerr(P, "the header must start with '{'");
    P->i = 1;
    for (int more = !peek(P, '}'); more; more = comma(P)) {
        if ((rc = parse_string(P, &key)) || (rc = expect(P, ':', "expected ':'"))) goto fail;
        if (strcmp(key, "__metadata__") == 0) {
            if (P->has_meta++) {
                rc = CORED_FAIL(P->err, CORED_E_FORMAT, "%s: \"__metadata__\" appears twice", P->label);
                goto fail;
            }
            cored_free(key);
            key = NULL;
            if ((rc = parse_meta(P))) goto fail;
        } else {
            int ct = P->cap, cs = P->cap;
            if (grow((void **)&f->tensors, &ct, f->n_tensors + 1, sizeof *f->tensors) ||
                grow((void **)&P->spans, &cs, f->n_tensors + 1, sizeof *P->spans)) {
                rc = CORED_FAIL(P->err, CORED_E_NOMEM, "%s: out of memory reading the header", P->label);
                goto fail;
            }
            P->cap = ct;
            int k = f->n_tensors++;
            memset(&f->tensors[k], 0, sizeof f->tensors[k]);
            f->tensors[k].name = key;
            key = NULL;
            P->spans[k].idx = k;
            if ((rc = parse_tensor(P, k))) goto fail;
        }
    }
    if ((rc = expect(P, '}', "expected ',' or '}'"))) goto fail;
    ws(P);
    if (P->i < P->n) {
        rc = jerr(P, "trailing bytes after the header object (only whitespace may pad it)");
        goto fail;
    }
    return CORED_OK;
fail:
    cored_free(key);
    return rc;
}

/* ---------------------------------------------------------------- layout checks */

static int cmp_span(const void *a, const void *b)
{
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

typedef struct {
    const char *name;
    int idx;
} st_named;

static int cmp_named(const void *a, const void *b)
{
    const st_named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->idx - y->idx;
}

int cored_st_find_duplicate(const void *base, size_t stride, int n, int *order, int *dup)
{
    st_named *v = cored_alloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) return -1;
    for (int k = 0; k < n; k++) {
        const char *name;
        memcpy(&name, (const char *)base + (size_t)k * stride, sizeof name);
        v[k] = (st_named){name, k};
    }
    qsort(v, (size_t)n, sizeof *v, cmp_named);
    *dup = n;
    for (int k = 1; k < n && *dup == n; k++)
        if (strcmp(v[k - 1].name, v[k].name) == 0) *dup = v[k].idx;
    for (int k = 0; order && k < n; k++) order[k] = v[k].idx;
    cored_free(v);
    return 0;
}

static int check_layout(st_parser *P, size_t data_len)
{
    cored_st_file *f = P->f;
    char sb[ST_NAME_SHOW + 16], sb2[ST_NAME_SHOW + 16], shape[8 * 22 + 4];
    const unsigned char *data = f->buf + (f->len - data_len);
    int n = f->n_tensors, dup;
    for (int k = 0; k < n; k++) {
        cored_st_tensor *t = &f->tensors[k];
        uint64_t b = P->spans[k].begin, e = P->spans[k].end;
        size_t numel = 1, nbytes, o = 0;
        int over = 0;
        o += (size_t)snprintf(shape + o, sizeof shape - o, "[");
        for (int j = 0; j < t->ndim; j++) {
            o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%lld", j ? "," : "",
                                  (long long)t->shape[j]);
            over |= cored_mul_ok(numel, (size_t)t->shape[j], &numel);
        }
        snprintf(shape + o, sizeof shape - o, "]");
        if (b > e) {
            return CORED_FAIL(P->err, CORED_E_FORMAT,
                              "%s: tensor '%s': data_offsets [%llu,%llu] end before they begin",
                              P->label, cored_st_shown(t->name, sb), (unsigned long long)b,
                              (unsigned long long)e);
        }
        if (over || cored_mul_ok(numel, cored_dtype_size(t->dtype), &nbytes)) {
            return CORED_FAIL(P->err, CORED_E_FORMAT,
                              "%s: tensor '%s': shape %s x %s overflows the size computation", P->label,
                              cored_st_shown(t->name, sb), shape, cored_dtype_name(t->dtype));
        }
        if (nbytes != e - b) {
            return CORED_FAIL(
                P->err, CORED_E_FORMAT,
                "%s: tensor '%s': shape %s x %s needs %zu bytes but data_offsets [%llu,%llu] span %llu",
                P->label, cored_st_shown(t->name, sb), shape, cored_dtype_name(t->dtype), nbytes,
                (unsigned long long)b, (unsigned long long)e, (unsigned long long)(e - b));
        }
        if (e > data_len) {
            return CORED_FAIL(
                P->err, CORED_E_FORMAT,
                "%s: tensor '%s': data_offsets [%llu,%llu] reach beyond the %zu-byte data section",
                P->label, cored_st_shown(t->name, sb), (unsigned long long)b, (unsigned long long)e, data_len);
        }
        t->numel = numel;
        t->nbytes = nbytes;
        t->data = data + b;
    }
    if (!(f->sorted = cored_alloc((size_t)(n ? n : 1) * sizeof *f->sorted)) ||
        cored_st_find_duplicate(n ? (const void *)&f->tensors[0].name : NULL, sizeof *f->tensors, n, f->sorted,
                       &dup))
        goto nomem;
    if (dup < n) {
        return CORED_FAIL(P->err, CORED_E_FORMAT, "%s: tensor name '%s' appears twice", P->label,
                          cored_st_shown(f->tensors[dup].name, sb));
    }
    if (cored_st_find_duplicate(f->meta_keys, sizeof *f->meta_keys, f->n_meta, NULL, &dup)) goto nomem;
    if (dup < f->n_meta) {
        return CORED_FAIL(P->err, CORED_E_FORMAT, "%s: \"__metadata__\" key '%s' appears twice",
                          P->label, cored_st_shown(f->meta_keys[dup], sb));
    }
    if (n) qsort(P->spans, (size_t)n, sizeof *P->spans, cmp_span);
    uint64_t pos = 0;
    for (int k = 0; k < n; k++) {
        const st_span *s = &P->spans[k];
        if (s->begin != pos && k == 0) {
            return CORED_FAIL(
                P->err, CORED_E_FORMAT,
                "%s: tensor '%s': data begins at byte %llu, expected 0 (a gap at the start)", P->label,
                cored_st_shown(f->tensors[s->idx].name, sb), (unsigned long long)s->begin);
        }
        if (s->begin != pos) {
            return CORED_FAIL(
                P->err, CORED_E_FORMAT,
                "%s: tensor '%s': data begins at byte %llu but the previous tensor '%s' ends "
                "at byte %llu (%s)",
                P->label, cored_st_shown(f->tensors[s->idx].name, sb), (unsigned long long)s->begin,
                cored_st_shown(f->tensors[P->spans[k - 1].idx].name, sb2), (unsigned long long)pos,
                s->begin > pos ? "a gap" : "they overlap");
        }
        pos = s->end;
    }
    if (pos != data_len) {
        return CORED_FAIL(
            P->err, CORED_E_FORMAT,
            "%s: the data section is %zu bytes but the tensors cover %llu (%zu trailing bytes)",
            P->label, data_len, (unsigned long long)pos, data_len - (size_t)pos);
    }
    return CORED_OK;
nomem:
    return CORED_FAIL(P->err, CORED_E_NOMEM, "%s: out of memory reading the header", P->label);
}

/* ---------------------------------------------------------------- open / close */

/* Validates buf (taking ownership of it, freed on failure). */
static int parse_owned(cored_st_file **out, unsigned char *buf, size_t len, const char *label,
                       cored_error *err)
{
    st_parser P = {.label = label, .err = err};
    cored_st_file *f = cored_calloc(1, sizeof *f);
    int rc;
    if (!f || !(f->path = cored_strdup(label))) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", label);
        goto fail;
    }
    f->buf = buf;
    f->len = len;
    buf = NULL;
    if (len < 8) {
        rc = CORED_FAIL(err, CORED_E_FORMAT,
                        "%s: file is %zu bytes, too short for the 8-byte header length", label, len);
        goto fail;
    }
    uint64_t hn = cored_st_le64(f->buf);
    if (hn > CORED_ST_MAX_HEADER) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: header length %llu is above the limit of %u bytes",
                        label, (unsigned long long)hn, CORED_ST_MAX_HEADER);
        goto fail;
    }
    if (hn > len - 8) {
        rc = CORED_FAIL(err, CORED_E_FORMAT,
                        "%s: header length %llu runs past the end of the %zu-byte file", label,
                        (unsigned long long)hn, len);
        goto fail;
    }
    if (hn < 2) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: header length %llu is too small for a JSON object",
                        label, (unsigned long long)hn);
        goto fail;
    }
    P.s = f->buf + 8;
    P.n = (size_t)hn;
    P.f = f;
    size_t bad = cored_st_utf8_check(P.s, P.n);
    if (bad < P.n) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: header is not valid UTF-8 at header byte %zu (0x%02x)",
                        label, bad, P.s[bad]);
        goto fail;
    }
    if ((rc = parse_header(&P)) || (rc = check_layout(&P, len - 8 - P.n))) goto fail;
    cored_free(P.spans);
    *out = f;
    return CORED_OK;
fail:
    cored_free(buf);
    cored_free(P.spans);
    cored_st_close(f);
    return rc;
}

int cored_st_parse(cored_st_file **out, const unsigned char *buf, size_t len, const char *label,
                   cored_error *err)
{
    unsigned char *copy;
    if (!out) return CORED_FAIL(err, CORED_E_ARG, "cored_st_parse: out is NULL");
    *out = NULL;
    if (!label) label = "<memory>";
    if (!buf && len) return CORED_FAIL(err, CORED_E_ARG, "%s: buffer is NULL", label);
    if (!(copy = cored_alloc(len)))
        return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate %zu bytes", label, len);
    if (len) memcpy(copy, buf, len);
    return parse_owned(out, copy, len, label, err);
}

int cored_st_open(cored_st_file **out, const char *path, cored_error *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc;
    if (!out) return CORED_FAIL(err, CORED_E_ARG, "cored_st_open: out is NULL");
    *out = NULL;
    if (!path) return CORED_FAIL(err, CORED_E_ARG, "cored_st_open: path is NULL");
    if ((rc = cored_read_file(path, SIZE_MAX / 2, &buf, &len, err))) return rc;
    return parse_owned(out, buf, len, path, err);
}

void cored_st_close(cored_st_file *f)
{
    if (!f) return;
    for (int k = 0; k < f->n_tensors; k++) cored_free(f->tensors[k].name);
    for (int k = 0; k < f->n_meta; k++) {
        cored_free(f->meta_keys[k]);
        cored_free(f->meta_vals[k]);
    }
    cored_free(f->tensors);
    cored_free(f->meta_keys);
    cored_free(f->meta_vals);
    cored_free(f->sorted);
    cored_free(f->buf);
    cored_free(f->path);
    cored_free(f);
}

const cored_st_tensor *cored_st_find(const cored_st_file *f, const char *name)
{
    if (!f || !name || !f->sorted) return NULL;
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const cored_st_tensor *t = &f->tensors[f->sorted[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *cored_st_meta(const cored_st_file *f, const char *key)
{
    if (!f || !key) return NULL;
    for (int k = 0; k < f->n_meta; k++)
        if (strcmp(f->meta_keys[k], key) == 0) return f->meta_vals[k];
    return NULL;
}
