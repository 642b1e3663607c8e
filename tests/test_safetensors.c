/*
 * Tests of the safetensors reader and writer (src/io/safetensors.c): the reference crate's
 * documented example and its serialisation test vectors, round trips through a file,
 * exact F16/BF16/F64 and integer conversions, a table of corrupt headers (truncation at
 * every byte included), injected allocation failures with a leak count, atomic writes
 * (disk full simulated with RLIMIT_FSIZE), and a replay of the fuzz corpus and regressions.
 */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "harness.h"
#include "io/safetensors.h"

/* An F32 tensor to write: name, data, number of dimensions, shape. */
#define F32T(nm, dat, nd, ...) {.name = (nm), .ndim = (nd), .shape = {__VA_ARGS__}, .data = (dat)}

#define LABEL "bad.safetensors"

static unsigned char fbuf[1 << 18];

/* A file in fbuf: 8-byte little-endian header length, the header, then data (NULL: a
   byte pattern). Returns its length. Float fixtures are passed in host byte order, so these
   tests assume a little-endian host, as the format does. */
static size_t mk_n(const char *json, size_t jlen, const void *data, size_t dlen)
{
    for (int k = 0; k < 8; k++) fbuf[k] = (unsigned char)((uint64_t)jlen >> 8 * k);
    memcpy(fbuf + 8, json, jlen);
    for (size_t i = 0; i < dlen; i++)
        fbuf[8 + jlen + i] = data ? ((const unsigned char *)data)[i] : (unsigned char)(i * 7 + 1);
    return 8 + jlen + dlen;
}

static size_t mk(const char *json, const void *data, size_t dlen)
{
    return mk_n(json, strlen(json), data, dlen);
}

/* Parsing must fail with `code`, a NULL file and a message naming LABEL and containing want. */
static void expect_fail(const char *what, const unsigned char *buf, size_t len, int code,
                        const char *want)
{
    cored_st_file *f = (cored_st_file *)&f;
    cored_error err = {0};
    cored_alloc_stats before = cored_alloc_counts();
    int rc = cored_st_parse(&f, buf, len, LABEL, &err);
    cored_alloc_stats after = cored_alloc_counts();
    CHECK_MSG(rc == code, "%s: rc %d, expected %d (%s)", what, rc, code, err.msg);
    CHECK_MSG(rc == CORED_OK || after.allocs - before.allocs == after.frees - before.frees,
              "%s: leaked %llu blocks", what,
              (unsigned long long)(after.allocs - before.allocs - (after.frees - before.frees)));
    CHECK_MSG(f == NULL, "%s: file not NULL on failure", what);
    CHECK_MSG(strncmp(err.msg, LABEL ": ", strlen(LABEL) + 2) == 0,
              "%s: message '%s' does not start with the file", what, err.msg);
    CHECK_MSG(!want || strstr(err.msg, want), "%s: message '%s' lacks '%s'", what, err.msg, want);
    if (rc == CORED_OK) cored_st_close(f);
}

static cored_st_file *parse_ok(const char *what, const unsigned char *buf, size_t len)
{
    cored_st_file *f = NULL;
    cored_error err = {0};
    int rc = cored_st_parse(&f, buf, len, "ok.safetensors", &err);
    CHECK_MSG(rc == CORED_OK && f, "%s: %s", what, err.msg);
    return rc == CORED_OK ? f : NULL;
}

static void test_crate_example(void)
{
    /* README of huggingface/safetensors; I32 values 1, -2, 3, 2147483647. */
    static const unsigned char data[16] = {1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF,
                                           3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F};
    size_t len = mk("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"__metadata_"
                    "_\":{\"foo\":\"bar\"}}",
                    data, 16);
    cored_st_file *f = parse_ok("README example", fbuf, len);
    if (!f) return;
    CHECK(f->n_tensors == 1 && f->n_meta == 1);
    const cored_st_tensor *t = cored_st_find(f, "test");
    CHECK(t == &f->tensors[0]);
    CHECK(t && t->dtype == CORED_DT_I32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 2);
    CHECK(t && t->numel == 4 && t->nbytes == 16 && t->data == f->buf + len - 16);
    CHECK(cored_st_meta(f, "foo") && strcmp(cored_st_meta(f, "foo"), "bar") == 0);
    CHECK(cored_st_meta(f, "bar") == NULL && cored_st_find(f, "foo") == NULL);
    int64_t v[4] = {0};
    cored_error err = {0};
    CHECK(t && cored_st_to_i64(f, t, v, 4, &err) == CORED_OK);
    CHECK(v[0] == 1 && v[1] == -2 && v[2] == 3 && v[3] == 2147483647);
    float x[4];
    CHECK(t && cored_st_to_f32(f, t, x, 4, 0, &err) == CORED_E_FORMAT && strstr(err.msg, "I32"));
    CHECK(t && cored_st_to_i64(f, t, v, 3, &err) == CORED_E_SHAPE && strstr(err.msg, "'test'"));
    cored_st_close(f);
    /* The older doc-test bytes: no metadata, 16 zero bytes. */
    static const unsigned char zeros[16] = {0};
    len = mk("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", zeros, 16);
    CHECK(fbuf[0] == 0x3C);
    cored_st_close(parse_ok("doc-test example", fbuf, len));
}

/* The crate's tests test_serialization, test_serialization_forced_alignement and test_empty:
   our writer must produce the same bytes. */
static void test_crate_vectors(void)
{
    static const unsigned char ser[] = {
        64,  0,   0,   0,   0,   0,  0,  0,  123, 34, 97,  116, 116, 110, 46,  48,  34,  58,  123, 34,
        100, 116, 121, 112, 101, 34, 58, 34, 70,  51, 50,  34,  44,  34,  115, 104, 97,  112, 101, 34,
        58,  91,  49,  44,  50,  44, 51, 93, 44,  34, 100, 97,  116, 97,  95,  111, 102, 102, 115, 101,
        116, 115, 34,  58,  91,  48, 44, 50, 52,  93, 125, 125, 0,   0,   0,   0,   0,   0,   128, 63,
        0,   0,   0,   64,  0,   0,  64, 64, 0,   0,  128, 64,  0,   0,   160, 64};
    static const unsigned char aligned[] = {
        72,  0,   0,   0,   0,   0,   0,   0,   123, 34, 97, 116, 116, 110, 48,  34,  58,  123,
        34,  100, 116, 121, 112, 101, 34,  58,  34,  70, 51, 50,  34,  44,  34,  115, 104, 97,
        112, 101, 34,  58,  91,  49,  44,  49,  44,  50, 44, 51,  93,  44,  34,  100, 97,  116,
        97,  95,  111, 102, 102, 115, 101, 116, 115, 34, 58, 91,  48,  44,  50,  52,  93,  125,
        125, 32,  32,  32,  32,  32,  32,  32,  0,   0,  0,  0,   0,   0,   128, 63,  0,   0,
        0,   64,  0,   0,   64,  64,  0,   0,   128, 64, 0,  0,   160, 64};
    static const unsigned char empty[] = {8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32};
    static const unsigned char meta[] = {40,  0,   0,   0,   0,   0,   0,   0,   123, 34,  95,  95,
                                         109, 101, 116, 97,  100, 97,  116, 97,  95,  95,  34,  58,
                                         123, 34,  102, 114, 97,  109, 101, 119, 111, 114, 107, 34,
                                         58,  34,  112, 116, 34,  125, 125, 32,  32,  32,  32,  32};
    static const float vals[6] = {0, 1, 2, 3, 4, 5};
    const char *kv[2] = {"framework", "pt"};
    cored_st_out a = F32T("attn.0", vals, 3, 1, 2, 3), b = F32T("attn0", vals, 4, 1, 1, 2, 3);
    struct {
        const cored_st_out *t;
        int n, n_meta;
        const unsigned char *want;
        size_t len;
    } cases[] = {{&a, 1, 0, ser, sizeof ser}, {&b, 1, 0, aligned, sizeof aligned},
                 {NULL, 0, 0, empty, sizeof empty}, {NULL, 0, 1, meta, sizeof meta}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unsigned char *out = NULL;
        size_t len = 0;
        cored_error err = {0};
        int rc = cored_st_serialize(&out, &len, cases[c].t, cases[c].n, kv, cases[c].n_meta, &err);
        CHECK_MSG(rc == CORED_OK, "case %zu: %s", c, err.msg);
        CHECK_MSG(len == cases[c].len && out && memcmp(out, cases[c].want, len) == 0,
                  "case %zu: bytes differ from the crate's (%zu vs %zu)", c, len, cases[c].len);
        cored_st_close(parse_ok("crate vector", cases[c].want, cases[c].len));
        cored_free(out);
    }
}

static void test_round_trip(void)
{
    static float w[2 * 3 * 3 * 3], bias[2] = {-0.0f, 1e-40f}, sc = 3.25f;
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) w[i] = (float)sin((double)i) * 1e3f;
    const char *odd = "a \"quoted\"\\name\n\t\x01/\xc3\xbc\xf0\x9f\x98\x80";
    cored_st_out t[] = {
        F32T("conv1.weight", w, 4, 2, 3, 3, 3), F32T("bias", bias, 1, 2), F32T("scalar", &sc, 0, 0),
        F32T("empty", NULL, 2, 0, 5), F32T(odd, &sc, 1, 1), F32T("", bias, 1, 2)};
    const int n = (int)(sizeof t / sizeof t[0]);
    const char *kv[] = {"format", "pt", "note", "line\nbreak \"q\" \xc3\xa9", "empty", ""};
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", test_tmpdir());
    cored_error err = {0};
    CHECK_MSG(cored_st_write(path, t, n, kv, 3, &err) == CORED_OK, "%s", err.msg);
    cored_st_file *f = NULL;
    CHECK_MSG(cored_st_open(&f, path, &err) == CORED_OK, "%s", err.msg);
    if (!f) return;
    CHECK(strcmp(f->path, path) == 0);
    CHECK(f->n_tensors == n && f->n_meta == 3);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | f->buf[k];
    CHECK((8 + hlen) % 8 == 0 && f->buf[8] == '{' && memcmp(f->buf + 8, "{\"__metadata__\":{", 17) == 0);
    for (int k = 0; k < n && k < f->n_tensors; k++) {
        const cored_st_tensor *r = &f->tensors[k];
        size_t numel = 1;
        for (int j = 0; j < t[k].ndim; j++) numel *= (size_t)t[k].shape[j];
        CHECK_MSG(strcmp(r->name, t[k].name) == 0, "tensor %d name '%s'", k, r->name);
        CHECK(r->dtype == CORED_DT_F32 && r->ndim == t[k].ndim && r->numel == numel &&
              r->nbytes == 4 * numel);
        CHECK(memcmp(r->shape, t[k].shape, (size_t)r->ndim * sizeof r->shape[0]) == 0);
        CHECK(cored_st_find(f, t[k].name) == r);
        float got[64];
        CHECK(cored_st_to_f32(f, r, got, numel, 0, &err) == CORED_OK);
        CHECK_MSG(numel == 0 || memcmp(got, t[k].data, 4 * numel) == 0, "tensor %d values differ", k);
    }
    for (int k = 0; k < 3 && k < f->n_meta; k++)
        CHECK(strcmp(f->meta_keys[k], kv[2 * k]) == 0 && strcmp(f->meta_vals[k], kv[2 * k + 1]) == 0);
    CHECK(cored_st_find(f, "missing") == NULL && cored_st_meta(f, "missing") == NULL);
    CHECK(cored_st_find(NULL, "bias") == NULL && cored_st_meta(NULL, "format") == NULL);
    CHECK(cored_st_to_f32(f, NULL, NULL, 1, 0, &err) == CORED_E_ARG && strstr(err.msg, path));
    CHECK(cored_st_to_i64(f, &f->tensors[0], NULL, f->tensors[0].numel, &err) == CORED_E_ARG);
    CHECK(cored_st_write(path, t, -1, NULL, 0, &err) == CORED_E_ARG && strstr(err.msg, path));
    /* The file holds exactly what cored_st_serialize produces. */
    unsigned char *mem = NULL;
    size_t len = 0;
    CHECK(cored_st_serialize(&mem, &len, t, n, kv, 3, &err) == CORED_OK);
    CHECK(mem && len == f->len && memcmp(mem, f->buf, len) == 0);
    cored_free(mem);
    cored_st_close(f);
    CHECK(cored_st_open(&f, NULL, &err) == CORED_E_ARG && f == NULL);
    CHECK(cored_st_parse(NULL, fbuf, 0, "x", &err) == CORED_E_ARG);
}

static void f32_from_tensor(const char *json, const void *data, size_t dlen, float *out, size_t n,
                            int allow, int want_rc, const char *want)
{
    size_t len = mk(json, data, dlen);
    cored_st_file *f = parse_ok(json, fbuf, len);
    cored_error err = {0};
    if (!f) return;
    int rc = cored_st_to_f32(f, &f->tensors[0], out, n, allow, &err);
    CHECK_MSG(rc == want_rc, "%s: rc %d (%s)", json, rc, err.msg);
    CHECK_MSG(!want || (strstr(err.msg, want) && strstr(err.msg, "ok.safetensors")), "'%s' lacks '%s'",
              err.msg, want);
    cored_st_close(f);
}

static void test_half_bf16_f64(void)
{
    /* F16 fixtures, then every one of the 65536 half values against ldexp. */
    static const uint16_t h[11] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400,
                                   0x8000, 0x3555, 0x7C00, 0xFC00, 0x7E00};
    const float hw[11] = {1,        -2,    65504,           0x1p-24f, 1023 * 0x1p-24f,
                          0x1p-14f, -0.0f, 0.333251953125f, INFINITY, -INFINITY,
                          NAN};
    static unsigned char d[1 << 17];
    static float got[1 << 16];
    for (int i = 0; i < 11; i++)
        d[2 * i] = (unsigned char)h[i], d[2 * i + 1] = (unsigned char)(h[i] >> 8);
    f32_from_tensor("{\"h\":{\"dtype\":\"F16\",\"shape\":[11],\"data_offsets\":[0,22]}}", d, 22, got, 11,
                    1, 0, NULL);
    check_close_ff("f16 fixtures", got, hw, 11, 0, 0);
    CHECK(signbit(got[6]) && signbit(got[1]));
    f32_from_tensor("{\"h\":{\"dtype\":\"F16\",\"shape\":[11],\"data_offsets\":[0,22]}}", d, 22, got, 11,
                    0, CORED_E_NONFINITE, "tensor 'h': element 8 is infinite");
    for (unsigned v = 0; v < 65536; v++)
        d[2 * v] = (unsigned char)v, d[2 * v + 1] = (unsigned char)(v >> 8);
    f32_from_tensor("{\"all\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[0,131072]}}", d,
                    131072, got, 65536, 1, 0, NULL);
    int bad = 0;
    for (unsigned v = 0; v < 65536; v++) {
        unsigned e = v >> 10 & 31, m = v & 1023;
        double want = e == 31 ? (m ? NAN : INFINITY) : e ? ldexp(1024 + m, (int)e - 25) : ldexp(m, -24);
        if (v & 0x8000) want = -want;
        if (!(isnan(want) ? isnan(got[v]) : (double)got[v] == want && !signbit(got[v]) == !(v & 0x8000)))
            bad++;
    }
    CHECK_MSG(bad == 0, "%d half values convert wrongly", bad);
    /* BF16: 1, -2, largest finite, smallest subnormal, inf. */
    static const uint16_t b[5] = {0x3F80, 0xC000, 0x7F7F, 0x0001, 0x7F80};
    const float bw[5] = {1, -2, 0x1.FEp127f, 0x1p-133f, INFINITY};
    for (int i = 0; i < 5; i++) d[2 * i] = (unsigned char)b[i], d[2 * i + 1] = (unsigned char)(b[i] >> 8);
    f32_from_tensor("{\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[0,10]}}", d, 10, got, 5,
                    1, 0, NULL);
    check_close_ff("bf16 fixtures", got, bw, 5, 0, 0);
    /* F64: round to nearest, ties to even; beyond float32 is refused unless allowed. */
    const double dv[6] = {0.1, 1 + 0x1p-24, 1 + 3 * 0x1p-25, -3, 1e-50, 1e300};
    const float dw[6] = {0.1f, 1, 1 + 0x1p-23f, -3, 0, INFINITY};
    for (int i = 0; i < 6; i++) {
        uint64_t u;
        memcpy(&u, &dv[i], 8);
        for (int k = 0; k < 8; k++) d[8 * i + k] = (unsigned char)(u >> 8 * k);
    }
    f32_from_tensor("{\"d\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]}}", d, 48, got, 6,
                    1, 0, NULL);
    check_close_ff("f64 fixtures", got, dw, 6, 0, 0);
    f32_from_tensor("{\"d\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]}}", d, 48, got, 6,
                    0, CORED_E_NONFINITE, "element 5 is beyond the float32 range");
    /* F32 NaN weights: refused, or passed through when allowed. */
    const float nanw[3] = {1, NAN, 2};
    f32_from_tensor("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", nanw, 12, got,
                    3, 0, CORED_E_NONFINITE, "tensor 'w': element 1 is NaN");
    f32_from_tensor("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", nanw, 12, got,
                    3, 1, 0, NULL);
    CHECK(got[0] == 1 && isnan(got[1]) && got[2] == 2);
}

static void i64_case(const char *dtype, const void *data, size_t dlen, size_t n, const int64_t *want,
                     int want_rc, const char *want_msg)
{
    char json[200];
    snprintf(json, sizeof json, "{\"x\":{\"dtype\":\"%s\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}",
             dtype, n, dlen);
    size_t len = mk(json, data, dlen);
    cored_st_file *f = parse_ok(json, fbuf, len);
    int64_t got[8] = {0};
    cored_error err = {0};
    if (!f) return;
    int rc = cored_st_to_i64(f, &f->tensors[0], got, n, &err);
    CHECK_MSG(rc == want_rc, "%s: rc %d (%s)", dtype, rc, err.msg);
    CHECK_MSG(!want || memcmp(got, want, n * sizeof *got) == 0, "%s: values differ (%lld)", dtype,
              (long long)got[0]);
    CHECK_MSG(!want_msg || strstr(err.msg, want_msg), "%s: '%s' lacks '%s'", dtype, err.msg, want_msg);
    cored_st_close(f);
}

static void test_integers(void)
{
    const unsigned char i8[3] = {0x80, 0x7F, 0xFF}, b01[2] = {0, 1}, b2[2] = {1, 2};
    const unsigned char i16[4] = {0x00, 0x80, 0x39, 0x30}, u16[2] = {0xFF, 0xFF};
    const unsigned char i32[8] = {0, 0, 0, 0x80, 0xFF, 0xFF, 0xFF, 0xFF},
                        u32[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    const unsigned char i64[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    const unsigned char u64ok[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
                        u64bad[8] = {0, 0, 0, 0, 0, 0, 0, 0x80};
    const float lab[3] = {0, 1, -3}, half[1] = {0.5f};
    const double big[2] = {0x1p53, 1e20};
    const int64_t w_i8[3] = {-128, 127, -1}, w_b[2] = {0, 1}, w_i16[2] = {-32768, 12345},
                  w_u16[1] = {65535};
    const int64_t w_i32[2] = {INT32_MIN, -1}, w_u32[1] = {4294967295LL},
                  w_i64[2] = {INT64_MIN, INT64_MAX};
    const int64_t w_u64[1] = {INT64_MAX}, w_lab[3] = {0, 1, -3}, w_big[1] = {1LL << 53},
                  w_u8[3] = {128, 127, 255};
    i64_case("I8", i8, 3, 3, w_i8, 0, NULL);
    i64_case("U8", i8, 3, 3, w_u8, 0, NULL);
    i64_case("BOOL", b01, 2, 2, w_b, 0, NULL);
    i64_case("BOOL", b2, 2, 2, NULL, CORED_E_FORMAT, "element 1 is 2, expected 0 or 1");
    i64_case("I16", i16, 4, 2, w_i16, 0, NULL);
    i64_case("U16", u16, 2, 1, w_u16, 0, NULL);
    i64_case("I32", i32, 8, 2, w_i32, 0, NULL);
    i64_case("U32", u32, 4, 1, w_u32, 0, NULL);
    i64_case("I64", i64, 16, 2, w_i64, 0, NULL);
    i64_case("U64", u64ok, 8, 1, w_u64, 0, NULL);
    i64_case("U64", u64bad, 8, 1, NULL, CORED_E_FORMAT, "beyond the int64 range");
    i64_case("F32", lab, 12, 3, w_lab, 0, NULL);
    i64_case("F32", half, 4, 1, NULL, CORED_E_FORMAT, "element 0 is 0.5");
    i64_case("F64", big, 8, 1, w_big, 0, NULL);
    i64_case("F64", big, 16, 2, NULL, CORED_E_FORMAT, "element 1 is 1e+20");
    const unsigned char hone[2] = {0x00, 0x3C}, hnan[2] = {0x00, 0x7E};
    const int64_t w_one[1] = {1};
    i64_case("F16", hone, 2, 1, w_one, 0, NULL);
    i64_case("BF16", (const unsigned char[]){0x80, 0x3F}, 2, 1, w_one, 0, NULL);
    i64_case("F16", hnan, 2, 1, NULL, CORED_E_NONFINITE, "element 0 is nan");
}

typedef struct {
    const char *what, *json;
    size_t dlen;
    int code;
    const char *want;
} bad_case;

#define T_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define T_B(off) "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":" off "}"
#define FE CORED_E_FORMAT

static const bad_case bad_cases[] = {
    {"not JSON", "hello, world", 0, FE, "must start with '{'"},
    {"JSON array", "[1,2,3]", 0, FE, "must start with '{'"},
    {"leading space", " {}", 0, FE, "must start with '{'"},
    {"unterminated", "{\"a\":{", 0, FE, "not valid JSON"},
    {"trailing comma", "{" T_A ",}", 8, FE, "expected a string"},
    {"garbage after", "{" T_A "}x", 8, FE, "trailing bytes"},
    {"second object", "{" T_A "}{}", 8, FE, "trailing bytes"},
    {"leading zero", "{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, FE,
     "not valid JSON"},
    {"bare minus", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-],\"data_offsets\":[0,8]}}", 8, FE,
     "expected a digit at header byte 30"},
    {"overlap", "{" T_A "," T_B("[4,10]") "}", 10, FE, "they overlap"},
    {"same range", "{" T_A ",\"c\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, FE,
     "overlap"},
    {"gap", "{" T_A "," T_B("[10,16]") "}", 16, FE, "a gap"},
    {"gap at start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, FE,
     "expected 0"},
    {"trailing bytes", "{" T_A "," T_B("[8,14]") "}", 16, FE, "2 trailing bytes"},
    {"beyond buffer", "{" T_A "," T_B("[8,14]") "}", 12, FE, "reach beyond the 12-byte data section"},
    {"begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,2]}}", 8, FE,
     "end before"},
    {"bytes != shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, FE,
     "tensor 'a': shape [3] x F32 needs 12 bytes but data_offsets [0,8] span 8"},
    {"empty needs 0", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[0,4]}}", 4, FE,
     "needs 0 bytes"},
    {"negative shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, FE,
     "shape entry 0 must be a non-negative integer, found -2"},
    {"float shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, FE,
     "found 2.0"},
    {"exponent shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8, FE,
     "found 2e0"},
    {"string shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, FE,
     "expected a number"},
    {"shape overflow",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,0]}}", 0, FE,
     "overflows"},
    {"size overflow",
     "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0, FE,
     "overflows"},
    {"shape too large",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,0]}}", 0, FE,
     "too large"},
    {"offset too large",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,18446744073709551616]}}", 0, FE,
     "too large"},
    {"9 dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, FE,
     "more than 8 entries"},
    {"shape not array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, FE,
     "must be an array"},
    {"3 offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8, FE,
     "more than 2"},
    {"1 offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8, FE,
     "[begin, end]"},
    {"duplicate name", "{" T_A "," T_A "}", 8, FE, "tensor name 'a' appears twice"},
    {"unknown dtype", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, FE,
     "tensor 'w': dtype 'F8_E4M3' is not supported"},
    {"dtype number", "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FE,
     "must be a string"},
    {"dtype twice", "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     8, FE, "appears twice"},
    {"missing offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, FE,
     "tensor 'w': missing \"data_offsets\""},
    {"missing dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FE, "missing \"dtype\""},
    {"entry not object", "{\"w\":[1,2]}", 0, FE, "tensor 'w': entry must be a JSON object"},
    {"meta non-string", "{\"__metadata__\":{\"k\":1}," T_A "}", 8, FE, "entry 'k' must be a string"},
    {"meta array", "{\"__metadata__\":[\"k\"]," T_A "}", 8, FE, "must be an object of strings"},
    {"meta null", "{\"__metadata__\":null}", 0, FE, "must be an object of strings"},
    {"meta twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, FE, "appears twice"},
    {"meta dup key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, FE, "key 'k' appears twice"},
    {"lone surrogate", "{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FE,
     "surrogate"},
    {"low surrogate", "{\"\\udc00x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FE,
     "surrogate"},
    {"u0000", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FE,
     "\\u0000"},
    {"bad escape", "{\"a\\x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FE,
     "invalid escape"},
    {"short \\u", "{\"a\\u12\":{}}", 0, FE, "invalid escape"},
    {"bad hex", "{\"a\\u12g4\":{}}", 0, FE, "invalid escape"},
    {"raw newline", "{\"a\nb\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FE,
     "control character"},
    {"invalid UTF-8", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FE,
     "not valid UTF-8 at header byte 3"},
    {"overlong UTF-8", "{\"\xc0\xaf\":{}}", 0, FE, "not valid UTF-8"},
    {"surrogate UTF-8", "{\"\xed\xa0\x80\":{}}", 0, FE, "not valid UTF-8"},
    {"truncated UTF-8", "{\"\xe2\x82\":{}}", 0, FE, "not valid UTF-8"},
    {"deep nesting",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":"
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
     8, FE, "nested more than 64"},
    {"bad literal", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":nul}}", 8, FE,
     "expected a value"},
    {"no data, 1 byte", "{}", 1, FE, "1 trailing bytes"},
};

static void test_corruption(void)
{
    for (size_t c = 0; c < sizeof bad_cases / sizeof bad_cases[0]; c++) {
        size_t len = mk(bad_cases[c].json, NULL, bad_cases[c].dlen);
        expect_fail(bad_cases[c].what, fbuf, len, bad_cases[c].code, bad_cases[c].want);
    }
    /* NUL bytes: inside the JSON and as padding. */
    static const char nul1[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\0\"data_offsets\":[0,8]}}";
    expect_fail("NUL inside", fbuf, mk_n(nul1, sizeof nul1 - 1, NULL, 8), FE, "byte 0x00");
    static const char nul2[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\0\0\0";
    expect_fail("NUL padding", fbuf, mk_n(nul2, sizeof nul2 - 1, NULL, 8), FE, "trailing bytes");
    static const char nul3[] = "{\"a\0\":{}}";
    expect_fail("NUL in name", fbuf, mk_n(nul3, sizeof nul3 - 1, NULL, 0), FE, "control character");
    /* Header lengths: too small, beyond the file, above 100 MB, 2^63 and 2^64-1. */
    const uint64_t lens[] = {0, 1, 100, 100000001, (uint64_t)1 << 63, UINT64_MAX};
    const char *wants[] = {"too small",       "too small",       "runs past the end",
                           "above the limit", "above the limit", "above the limit"};
    for (int i = 0; i < 6; i++) {
        size_t len = mk("{}      ", NULL, 0);
        for (int k = 0; k < 8; k++) fbuf[k] = (unsigned char)(lens[i] >> 8 * k);
        expect_fail("header length", fbuf, len, FE, wants[i]);
    }
    expect_fail("empty file", fbuf, 0, FE, "too short");
    expect_fail("7 bytes", fbuf, 7, FE, "too short");
    /* Truncation at every byte of a valid file. */
    static const float data[5] = {1, 2, 3, 4, 5};
    size_t full =
        mk("{\"__metadata__\":{\"format\":\"pt\"}," T_A ",\"c\":{\"dtype\":\"F32\",\"shape\":[3],"
           "\"data_offsets\":[8,20]}}   ",
           data, 20);
    static unsigned char copy[1024];
    memcpy(copy, fbuf, full);
    cored_st_close(parse_ok("untruncated", copy, full));
    int fails = 0;
    for (size_t l = 0; l < full; l++) {
        cored_st_file *f = NULL;
        cored_error err = {0};
        int rc = cored_st_parse(&f, copy, l, LABEL, &err);
        if (rc != FE || f || !strstr(err.msg, LABEL)) fails++;
        cored_st_close(f);
    }
    CHECK_MSG(fails == 0, "%d of %zu truncations not refused cleanly", fails, full);
    /* A huge name is cut short in messages, which still say what is wrong. */
    static char json[3000];
    size_t o = (size_t)snprintf(json, sizeof json, "{\"");
    for (int i = 0; i < 2000; i++) json[o++] = (char)('a' + i % 26);
    snprintf(json + o, sizeof json - o, "\\n\":{\"dtype\":\"X\",\"shape\":[2],\"data_offsets\":[0,8]}}");
    expect_fail("long name", fbuf, mk(json, NULL, 8), FE, "...': dtype 'X' is not supported");
    /* Every single-byte change of the header either parses or is refused cleanly. */
    for (size_t i = 0; i < full - 20; i++) {
        unsigned char save = copy[i];
        copy[i] = (unsigned char)(save ^ 0x5A);
        cored_st_file *f = NULL;
        cored_error err = {0};
        int rc = cored_st_parse(&f, copy, full, LABEL, &err);
        CHECK_MSG(rc == CORED_OK || (rc == FE && !f && strstr(err.msg, LABEL)), "byte %zu: rc %d", i, rc);
        cored_st_close(f);
        copy[i] = save;
    }
}

/* Files the crate accepts that a too strict parser might refuse. */
static void test_accepted(void)
{
    const char *good[] = {
        "{}",
        "{ \"a\" : { \"shape\" : [ 2 ] , \"data_offsets\" : [ 0 , 8 ] , \"dtype\" : \"F32\" } }\n\t\r ",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":{\"x\":[1,-2.5e3,true,"
        "null,\"s\",{},[]],"
        "\"y\":false,\"z\":-0.0E+1}}}",
        "{\"\\ud83d\\ude00\\u00e9\\/\\u20AC\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
        "{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},\"e\":{\"dtype\":\"F32\","
        "\"shape\":[3,0],"
        "\"data_offsets\":[8,8]},\"z\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[0,0]}}",
        "{\"b\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[4,8]},\"a\":{\"dtype\":\"I32\","
        "\"shape\":[1],"
        "\"data_offsets\":[0,4]},\"__metadata__\":{}}",
    };
    const size_t dlen[] = {0, 8, 8, 8, 8, 8};
    for (int i = 0; i < 6; i++) {
        size_t len = mk(good[i], NULL, dlen[i]);
        cored_st_file *f = parse_ok(good[i], fbuf, len);
        if (f && i == 3) CHECK(strcmp(f->tensors[0].name, "\xf0\x9f\x98\x80\xc3\xa9/\xe2\x82\xac") == 0);
        if (f && i == 4)
            CHECK(f->tensors[0].ndim == 0 && f->tensors[0].numel == 1 && f->tensors[1].numel == 0);
        if (f && i == 5)
            CHECK(f->tensors[0].data == f->tensors[1].data + 4 && strcmp(f->tensors[0].name, "b") == 0);
        cored_st_close(f);
    }
}

static void test_writer_refusals(void)
{
    const float v[2] = {1, NAN};
    const char *kv_dup[] = {"k", "1", "k", "2"}, *kv_null[] = {"k", NULL};
    struct {
        const char *what;
        cored_st_out t[2];
        int n;
        const char *const *kv;
        int n_meta, code;
    } cases[] = {
        {"duplicate", {F32T("a", v, 1, 1), F32T("a", v, 1, 1)}, 2, NULL, 0, CORED_E_ARG},
        {"reserved name", {F32T("__metadata__", v, 1, 1)}, 1, NULL, 0, CORED_E_ARG},
        {"NULL name", {F32T(NULL, v, 1, 1)}, 1, NULL, 0, CORED_E_ARG},
        {"bad UTF-8", {F32T("a\xff", v, 1, 1)}, 1, NULL, 0, CORED_E_ARG},
        {"negative dim", {F32T("a", v, 1, -1)}, 1, NULL, 0, CORED_E_ARG},
        {"9 dims", {F32T("a", v, 9, 1)}, 1, NULL, 0, CORED_E_ARG},
        {"NULL data", {F32T("a", NULL, 1, 1)}, 1, NULL, 0, CORED_E_ARG},
        {"NaN", {F32T("a", v, 1, 2)}, 1, NULL, 0, CORED_E_NONFINITE},
        {"meta dup", {F32T("a", v, 1, 1)}, 1, kv_dup, 2, CORED_E_ARG},
        {"meta NULL", {F32T("a", v, 1, 1)}, 1, kv_null, 1, CORED_E_ARG},
        {"raw F32", {{.name = "a", .ndim = 1, .shape = {1}, .raw = v, .raw_dtype = CORED_DT_F32}},
         1, NULL, 0, CORED_E_ARG},
        {"raw BOOL 2",
         {{.name = "a", .ndim = 1, .shape = {2}, .raw = "\x01\x02", .raw_dtype = CORED_DT_BOOL}},
         1, NULL, 0, CORED_E_ARG},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unsigned char *buf = NULL;
        size_t len = 0;
        cored_error err = {0};
        int rc =
            cored_st_serialize(&buf, &len, cases[c].t, cases[c].n, cases[c].kv, cases[c].n_meta, &err);
        CHECK_MSG(rc == cases[c].code && !buf, "%s: rc %d (%s)", cases[c].what, rc, err.msg);
        cored_free(buf);
    }
}

/* Integer tensors from raw buffers next to F32 ones: the header names their dtype, the
   bytes are little-endian, the reader gets the values back, and the file is written the
   same way by cored_st_write. */
static void test_raw_integers(void)
{
    const uint8_t mask[6] = {1, 0, 0, 1, 1, 0};
    const int32_t idx[3] = {-1, 7, 65536 + 3};
    const int64_t big[2] = {INT64_MIN, 1LL << 40};
    const uint16_t u16[2] = {1, 65535};
    const float f[2] = {0.5f, -2};
    cored_st_out t[] = {
        {.name = "m", .ndim = 2, .shape = {2, 3}, .raw = mask, .raw_dtype = CORED_DT_U8},
        {.name = "f", .ndim = 1, .shape = {2}, .data = f},
        {.name = "i", .ndim = 1, .shape = {3}, .raw = idx, .raw_dtype = CORED_DT_I32},
        {.name = "b", .ndim = 1, .shape = {2}, .raw = big, .raw_dtype = CORED_DT_I64},
        {.name = "u", .ndim = 1, .shape = {2}, .raw = u16, .raw_dtype = CORED_DT_U16},
        {.name = "z", .ndim = 1, .shape = {6}, .raw = mask, .raw_dtype = CORED_DT_BOOL},
    };
    const int64_t want_m[6] = {1, 0, 0, 1, 1, 0}, want_i[3] = {-1, 7, 65536 + 3},
                  want_u[2] = {1, 65535};
    unsigned char *buf = NULL;
    size_t len = 0;
    cored_error err = {0};
    CHECK(cored_st_serialize(&buf, &len, t, 6, NULL, 0, &err) == CORED_OK);
    if (!buf) return;
    CHECK(strstr((const char *)buf + 8, "\"m\":{\"dtype\":\"U8\",\"shape\":[2,3],\"data_offsets\":[0,6]}") != NULL);
    CHECK(strstr((const char *)buf + 8, "\"i\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[14,26]}") != NULL);
    /* 65539 = 0x00010003, little-endian */
    size_t data = 8 + (size_t)buf[0] + ((size_t)buf[1] << 8);
    CHECK(buf[data + 22] == 3 && buf[data + 23] == 0 && buf[data + 24] == 1 && buf[data + 25] == 0);
    cored_st_file *fl = NULL;
    CHECK(cored_st_parse(&fl, buf, len, "raw", &err) == CORED_OK);
    if (fl) {
        int64_t got[6];
        const cored_st_tensor *m = cored_st_find(fl, "m"), *i = cored_st_find(fl, "i"),
                              *b = cored_st_find(fl, "b"), *u = cored_st_find(fl, "u"),
                              *z = cored_st_find(fl, "z"), *ft = cored_st_find(fl, "f");
        CHECK(m && m->dtype == CORED_DT_U8 && z && z->dtype == CORED_DT_BOOL && ft &&
              ft->dtype == CORED_DT_F32);
        CHECK(m && cored_st_to_i64(fl, m, got, 6, &err) == 0 && memcmp(got, want_m, sizeof want_m) == 0);
        CHECK(i && cored_st_to_i64(fl, i, got, 3, &err) == 0 && memcmp(got, want_i, sizeof want_i) == 0);
        CHECK(b && cored_st_to_i64(fl, b, got, 2, &err) == 0 && memcmp(got, big, sizeof big) == 0);
        CHECK(u && cored_st_to_i64(fl, u, got, 2, &err) == 0 && memcmp(got, want_u, sizeof want_u) == 0);
        float fv[6];
        CHECK(ft && cored_st_to_f32(fl, ft, fv, 2, 0, &err) == 0 && fv[0] == 0.5f && fv[1] == -2);
        CHECK(m && cored_st_to_f32(fl, m, fv, 6, 0, &err) == CORED_E_FORMAT);
    }
    cored_st_close(fl);
    char path[512];
    snprintf(path, sizeof path, "%s/raw.safetensors", test_tmpdir());
    CHECK(cored_st_write(path, t, 6, NULL, 0, &err) == CORED_OK);
    FILE *fp = fopen(path, "rb");
    unsigned char *disk = malloc(len + 1);
    size_t got_len = fp && disk ? fread(disk, 1, len + 1, fp) : 0;
    CHECK(got_len == len && disk && memcmp(disk, buf, len) == 0);
    if (fp) fclose(fp);
    free(disk);
    cored_free(buf);
}

/* cored_st_find on many names (a binary search over the sorted index). */
static void test_many(void)
{
    enum { N = 500 };
    static cored_st_out t[N];
    static char names[N][16];
    static float vals[N];
    for (int k = 0; k < N; k++) {
        snprintf(names[k], sizeof names[k], "t%d", (k * 7919) % N);
        vals[k] = (float)k;
        t[k] = (cored_st_out)F32T(names[k], &vals[k], 0, 0);
    }
    unsigned char *buf = NULL;
    size_t len = 0;
    cored_error err = {0};
    CHECK(cored_st_serialize(&buf, &len, t, N, NULL, 0, &err) == CORED_OK);
    cored_st_file *f = buf ? parse_ok("many", buf, len) : NULL;
    int bad = 0;
    for (int k = 0; f && k < N; k++) {
        const cored_st_tensor *r = cored_st_find(f, names[k]);
        float x = -1;
        if (!r || r != &f->tensors[k] || cored_st_to_f32(f, r, &x, 1, 0, &err) || x != (float)k) bad++;
    }
    CHECK_MSG(bad == 0, "%d lookups wrong", bad);
    CHECK(f && !cored_st_find(f, "t") && !cored_st_find(f, "t500") && !cored_st_find(f, ""));
    cored_st_close(f);
    cored_free(buf);
}

static void test_alloc_failures(void)
{
    static const float w[6] = {1, 2, 3, 4, 5, 6};
    cored_st_out t[] = {F32T("w", w, 2, 2, 3), F32T("b", w, 1, 2), F32T("s", w, 0, 0), F32T("e", NULL, 1, 0)};
    const char *kv[] = {"a", "1", "b", "2"};
    char path[512];
    snprintf(path, sizeof path, "%s/alloc.safetensors", test_tmpdir());
    cored_error err = {0};
    CHECK(cored_st_write(path, t, 4, kv, 2, &err) == CORED_OK);
    int k, phase_ok[3] = {0, 0, 0};
    for (int phase = 0; phase < 3; phase++) {
        for (k = 1; k < 1000; k++) {
            cored_alloc_stats before = cored_alloc_counts();
            cored_st_file *f = NULL;
            unsigned char *buf = NULL;
            size_t len = 0;
            char p2[600];
            snprintf(p2, sizeof p2, "%s.%d", path, k);
            cored_alloc_fail_at((uint64_t)k);
            int rc = phase == 0   ? cored_st_open(&f, path, &err)
                     : phase == 1 ? cored_st_serialize(&buf, &len, t, 4, kv, 2, &err)
                                  : cored_st_write(p2, t, 4, kv, 2, &err);
            cored_alloc_fail_at(0);
            cored_st_close(f);
            cored_free(buf);
            cored_alloc_stats after = cored_alloc_counts();
            CHECK_MSG(after.allocs - before.allocs == after.frees - before.frees,
                      "phase %d k %d: %llu blocks leaked", phase, k,
                      (unsigned long long)(after.allocs - before.allocs - (after.frees - before.frees)));
            /* Success is only right when the k-th allocation never happened: a failed
               allocation that the code swallowed would show up as k or more successes. */
            CHECK_MSG(rc != CORED_OK || after.allocs - before.allocs < (uint64_t)k,
                      "phase %d k %d: succeeded although allocation %d failed", phase, k, k);
            if (rc == CORED_OK) break;
            CHECK_MSG(rc == CORED_E_NOMEM && !f && !buf, "phase %d k %d: rc %d (%s)", phase, k, rc,
                      err.msg);
        }
        phase_ok[phase] = k > 1 && k < 1000;
    }
    CHECK_MSG(phase_ok[0] && phase_ok[1] && phase_ok[2], "an allocation-failure sweep never succeeded");
}

static int count_temps(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void expect_content(const char *path, float first, size_t numel)
{
    cored_st_file *f = NULL;
    cored_error err = {0};
    float x[1000];
    CHECK_MSG(cored_st_open(&f, path, &err) == CORED_OK, "%s", err.msg);
    CHECK(f && f->n_tensors == 1 && f->tensors[0].numel == numel);
    CHECK(f && cored_st_to_f32(f, &f->tensors[0], x, numel, 0, &err) == CORED_OK && x[0] == first);
    cored_st_close(f);
}

static void test_atomic_write(void)
{
    static float big[1000];
    const float v1[2] = {1, 2}, v2[3] = {3, 4, 5}, bad[1] = {INFINITY};
    char dir[512], path[600], missing[700];
    cored_error err = {0};
    snprintf(dir, sizeof dir, "%s/atomic", test_tmpdir());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(missing, sizeof missing, "%s/no/such/folder/model.safetensors", dir);
    CHECK(mkdir(dir, 0755) == 0);
    cored_st_out t1 = F32T("w", v1, 1, 2), t2 = F32T("w", v2, 1, 3), tb = F32T("w", bad, 1, 1),
                 tbig = F32T("w", big, 1, 1000);
    CHECK(cored_st_write(path, &t1, 1, NULL, 0, &err) == CORED_OK);
    CHECK(cored_st_write(path, &t2, 1, NULL, 0, &err) == CORED_OK);
    expect_content(path, 3, 3);
    CHECK(cored_st_write(path, &tb, 1, NULL, 0, &err) == CORED_E_NONFINITE && strstr(err.msg, path));
    expect_content(path, 3, 3);
    CHECK(cored_st_write(missing, &t1, 1, NULL, 0, &err) == CORED_E_IO && strstr(err.msg, missing));
    /* Disk full: a file size limit makes the write fail part way. */
    struct rlimit old, lim;
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        lim = old;
        lim.rlim_cur = 512;
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
            int rc = cored_st_write(path, &tbig, 1, NULL, 0, &err);
            setrlimit(RLIMIT_FSIZE, &old);
            CHECK_MSG(rc == CORED_E_IO && strstr(err.msg, path), "disk full: rc %d (%s)", rc, err.msg);
            expect_content(path, 3, 3);
        }
        signal(SIGXFSZ, prev);
    }
    if (geteuid() != 0) {
        CHECK(chmod(dir, 0555) == 0);
        int rc = cored_st_write(path, &t1, 1, NULL, 0, &err);
        CHECK(chmod(dir, 0755) == 0);
        CHECK_MSG(rc == CORED_E_IO && strstr(err.msg, path), "read-only folder: rc %d (%s)", rc, err.msg);
        expect_content(path, 3, 3);
    }
    CHECK_MSG(count_temps(dir) == 0, "%d temporary files left in %s", count_temps(dir), dir);
}

/* Seeds must parse; regression inputs must be refused or accepted without a crash. */
static void replay(const char *dir, int must_parse)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        char p[1024];
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        cored_st_file *f = NULL;
        cored_error err = {0};
        int rc = cored_st_open(&f, p, &err);
        CHECK_MSG(must_parse ? rc == CORED_OK : (rc == CORED_OK || strstr(err.msg, p)), "%s: %s", p,
                  err.msg);
        for (int k = 0; f && k < f->n_tensors; k++) {
            size_t m = f->tensors[k].numel;
            float *x = cored_alloc(m * sizeof *x);
            int64_t *y = cored_alloc(m * sizeof *y);
            if (x && y) {
                cored_st_to_f32(f, &f->tensors[k], x, m, 1, &err);
                cored_st_to_i64(f, &f->tensors[k], y, m, &err);
            }
            cored_free(x);
            cored_free(y);
        }
        cored_st_close(f);
        n++;
    }
    closedir(d);
    fprintf(stderr, "        %d files in %s\n", n, dir);
}

static void test_fuzz_files(void)
{
    replay("fuzz/corpus/safetensors", 1);
    replay("fuzz/regress/safetensors", 0);
}

int main(void)
{
    RUN(test_crate_example);
    RUN(test_crate_vectors);
    RUN(test_round_trip);
    RUN(test_half_bf16_f64);
    RUN(test_integers);
    RUN(test_corruption);
    RUN(test_accepted);
    RUN(test_writer_refusals);
    RUN(test_raw_integers);
    RUN(test_many);
    RUN(test_alloc_failures);
    RUN(test_atomic_write);
    RUN(test_fuzz_files);
    return test_finish();
}
