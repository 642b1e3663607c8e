/*
 * Tensor data of a parsed safetensors file converted to float32 or int64. Floats: F16, BF16
 * and F32 exactly, F64 rounded to nearest; a non-finite value, or one beyond the float32
 * range, is an error unless allowed. Integers: any integer dtype to int64 with range checks,
 * a float to int64 only when integral. Bytes are read one by one (any alignment).
 */
#include "io/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "io/st_internal.h"

static float f32_bits(uint32_t b)
{
    float v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* IEEE binary16 to binary32, exact: subnormals are normalised, inf and NaN payloads kept. */
static float half_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = h >> 10 & 0x1F, mant = h & 0x3FF, e = 0;
    if (exp == 0x1F) return f32_bits(sign | 0x7F800000u | mant << 13);
    if (exp) return f32_bits(sign | (exp + 112) << 23 | mant << 13);
    if (!mant) return f32_bits(sign);
    while (!(mant & 0x400)) { /* value = mant * 2^-24: shift the leading 1 into the hidden bit */
        mant <<= 1;
        e++;
    }
    return f32_bits(sign | (113 - e) << 23 | (mant & 0x3FF) << 13);
}

static int is_float(cored_dtype dt)
{
    return dt == CORED_DT_F16 || dt == CORED_DT_BF16 || dt == CORED_DT_F32 || dt == CORED_DT_F64;
}

/* Element i of a float tensor, exactly, as a double. */
static double load_float(const cored_st_tensor *t, size_t i)
{
    const unsigned char *p = t->data + i * cored_dtype_size(t->dtype);
    uint64_t b;
    double d;
    switch (t->dtype) {
    case CORED_DT_F16: return half_to_f32(cored_st_le16(p));
    case CORED_DT_BF16: return f32_bits((uint32_t)cored_st_le16(p) << 16);
    case CORED_DT_F32: return f32_bits(cored_st_le32(p));
    default:
        b = cored_st_le64(p);
        memcpy(&d, &b, sizeof d);
        return d;
    }
}

static const char *file_label(const cored_st_file *f) { return f && f->path ? f->path : "<safetensors>"; }

/* The checks both conversions share. */
static int check_convert(const cored_st_file *f, const cored_st_tensor *t, const void *out, size_t count,
                         const char *fn, cored_error *err)
{
    char sb[ST_NAME_SHOW + 16];
    if (!t || !t->name || (!out && count))
        return CORED_FAIL(err, CORED_E_ARG, "%s: %s: NULL argument", file_label(f), fn);
    if (count != t->numel)
        return CORED_FAIL(err, CORED_E_SHAPE, "%s: tensor '%s' has %zu elements but %zu were expected",
                          file_label(f), cored_st_shown(t->name, sb), t->numel, count);
    return CORED_OK;
}

int cored_st_to_f32(const cored_st_file *f, const cored_st_tensor *t, float *out, size_t count,
                    int allow_nonfinite, cored_error *err)
{
    char sb[ST_NAME_SHOW + 16];
    int rc = check_convert(f, t, out, count, "cored_st_to_f32", err);
    if (rc) return rc;
    if (!is_float(t->dtype))
        return CORED_FAIL(err, CORED_E_FORMAT,
                          "%s: tensor '%s' is %s, expected a float dtype (F32, F16, BF16 or F64)",
                          file_label(f), cored_st_shown(t->name, sb), cored_dtype_name(t->dtype));
    for (size_t i = 0; i < count; i++) {
        double d = load_float(t, i);
        float v = (float)d; /* round to nearest; beyond the float range gives +-inf (Annex F) */
        if (!allow_nonfinite && !isfinite(v))
            return CORED_FAIL(err, CORED_E_NONFINITE,
                              "%s: tensor '%s': element %zu is %s (%g), expected a finite value",
                              file_label(f), cored_st_shown(t->name, sb), i,
                              isnan(d)   ? "NaN"
                              : isinf(d) ? "infinite"
                                         : "beyond the float32 range",
                              d);
        out[i] = v;
    }
    return CORED_OK;
}

/* Two's complement value of the low `bits` bits of b. */
static int64_t sign_extend(uint64_t b, int bits)
{
    int64_t v;
    if (bits == 64) {
        memcpy(&v, &b, sizeof v);
        return v;
    }
    uint64_t m = (uint64_t)1 << (bits - 1);
    return (int64_t)(b ^ m) - (int64_t)m;
}

int cored_st_to_i64(const cored_st_file *f, const cored_st_tensor *t, int64_t *out, size_t count,
                    cored_error *err)
{
    char sb[ST_NAME_SHOW + 16];
    int rc = check_convert(f, t, out, count, "cored_st_to_i64", err);
    if (rc) return rc;
    size_t sz = cored_dtype_size(t->dtype);
    for (size_t i = 0; i < count; i++) {
        const unsigned char *p = t->data + i * sz;
        uint64_t b = sz == 1 ? p[0] : sz == 2 ? cored_st_le16(p) : sz == 4 ? cored_st_le32(p) : cored_st_le64(p);
        double d;
        switch (t->dtype) {
        case CORED_DT_BOOL:
            if (b > 1)
                return CORED_FAIL(err, CORED_E_FORMAT,
                                  "%s: tensor '%s': BOOL element %zu is %llu, expected 0 or 1",
                                  file_label(f), cored_st_shown(t->name, sb), i, (unsigned long long)b);
            out[i] = (int64_t)b;
            break;
        case CORED_DT_U8:
        case CORED_DT_U16:
        case CORED_DT_U32: out[i] = (int64_t)b; break;
        case CORED_DT_U64:
            if (b > INT64_MAX)
                return CORED_FAIL(err, CORED_E_FORMAT,
                                  "%s: tensor '%s': element %zu is %llu, beyond the int64 range",
                                  file_label(f), cored_st_shown(t->name, sb), i, (unsigned long long)b);
            out[i] = (int64_t)b;
            break;
        case CORED_DT_I8:
        case CORED_DT_I16:
        case CORED_DT_I32:
        case CORED_DT_I64: out[i] = sign_extend(b, (int)sz * 8); break;
        default:
            d = load_float(t, i);
            if (!isfinite(d))
                return CORED_FAIL(err, CORED_E_NONFINITE,
                                  "%s: tensor '%s': element %zu is %g, expected an integer",
                                  file_label(f), cored_st_shown(t->name, sb), i, d);
            if (d != floor(d) || d < -0x1p63 || d >= 0x1p63)
                return CORED_FAIL(
                    err, CORED_E_FORMAT,
                    "%s: tensor '%s' (%s): element %zu is %.17g, expected an integer in the int64 range",
                    file_label(f), cored_st_shown(t->name, sb), cored_dtype_name(t->dtype), i, d);
            out[i] = (int64_t)d;
        }
    }
    return CORED_OK;
}
