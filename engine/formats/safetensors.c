/*
 * safetensors.c — validating reader and atomic streaming writer for .safetensors.
 *
 * Reading is done in two passes over the mapped file. Pass one checks the 8-byte length and
 * the header bytes themselves (bounds, UTF-8, no control bytes, starts with '{'), then cJSON
 * parses them with an explicit length, and we insist nothing but JSON whitespace follows the
 * object (cJSON would otherwise ignore trailing garbage). Pass two walks the object's members:
 * every lookup is case-sensitive, every number must be an integral double in [0, 2^53], the
 * shape product is overflow-checked, and only then is the tensor table allocated (its size is
 * bounded by the header length, itself bounded by the file). Finally the byte ranges are sorted
 * by begin and must tile [0, data_len) exactly, and names (cJSON keeps duplicates) are sorted
 * and compared neighbour to neighbour — the sorted index doubles as the lookup table.
 *
 * Writing builds the JSON header by hand (cJSON prints large integers as 1e+15), pads it with
 * spaces to a multiple of 8 as the reference writer does, and streams each tensor through a
 * fixed-size conversion buffer into a temp file that is fsynced and renamed over the target.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; size_t size; } dtype_info[CCE_ST_N_DTYPES] = {
    [CCE_ST_F32] = {"F32", 4},   [CCE_ST_F16] = {"F16", 2},   [CCE_ST_BF16] = {"BF16", 2},
    [CCE_ST_F64] = {"F64", 8},   [CCE_ST_I64] = {"I64", 8},   [CCE_ST_U64] = {"U64", 8},
    [CCE_ST_I32] = {"I32", 4},   [CCE_ST_U32] = {"U32", 4},   [CCE_ST_I16] = {"I16", 2},
    [CCE_ST_U16] = {"U16", 2},   [CCE_ST_I8] = {"I8", 1},     [CCE_ST_U8] = {"U8", 1},
    [CCE_ST_BOOL] = {"BOOL", 1}, [CCE_ST_F8_E4M3] = {"F8_E4M3", 1},
    [CCE_ST_F8_E5M2] = {"F8_E5M2", 1}, [CCE_ST_F8_E8M0] = {"F8_E8M0", 1},
    [CCE_ST_C64] = {"C64", 8},
};

const char *cce_st_dtype_name(int dtype) {
    return dtype >= 0 && dtype < CCE_ST_N_DTYPES ? dtype_info[dtype].name : "?";
}

size_t cce_st_dtype_size(int dtype) {
    return dtype >= 0 && dtype < CCE_ST_N_DTYPES ? dtype_info[dtype].size : 0;
}

uint64_t cce_st_numel(const cce_st_tensor *t) {
    uint64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
    return n;
}

/* Largest integer a double represents exactly; JSON numbers above it are refused. */
#define JSON_INT_MAX 9007199254740992.0

/* An integral, non-negative JSON number <= 2^53; false otherwise. */
static bool json_u64(const cJSON *it, uint64_t *out) {
    if (!cJSON_IsNumber(it)) return false;
    double v = it->valuedouble;
    if (!isfinite(v) || v < 0 || v > JSON_INT_MAX || floor(v) != v) return false;
    *out = (uint64_t)v;
    return true;
}

/* Describe a JSON value briefly for error messages: its number or its type. */
static const char *json_desc(const cJSON *it, char *buf, size_t cap) {
    if (!it) snprintf(buf, cap, "missing");
    else if (cJSON_IsNumber(it)) snprintf(buf, cap, "%.17g", it->valuedouble);
    else if (cJSON_IsString(it)) snprintf(buf, cap, "string \"%.40s\"", it->valuestring);
    else if (cJSON_IsArray(it)) snprintf(buf, cap, "an array");
    else if (cJSON_IsObject(it)) snprintf(buf, cap, "an object");
    else if (cJSON_IsBool(it)) snprintf(buf, cap, "a boolean");
    else if (cJSON_IsNull(it)) snprintf(buf, cap, "null");
    else snprintf(buf, cap, "invalid");
    return buf;
}

/* Index comparators for qsort_r (GNU): the tensor table is the context argument. */
static int cmp_by_name(const void *a, const void *b, void *ctx) {
    const cce_st_tensor *t = ctx;
    return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

static int cmp_by_begin(const void *a, const void *b, void *ctx) {
    const cce_st_tensor *t = ctx;
    const cce_st_tensor *x = &t[*(const int *)a], *y = &t[*(const int *)b];
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static void sort_idx(int *idx, int n, const cce_st_tensor *t, int (*cmp)(const void *, const void *, void *)) {
    if (n < 2) return; /* idx is NULL for an empty table; qsort(NULL, 0, ...) is undefined */
    qsort_r(idx, (size_t)n, sizeof *idx, cmp, (void *)t);
}

void cce_st_close(cce_safetensors *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) cce_free(s->t[i].name);
    cce_free(s->t);
    cce_free(s->sorted);
    for (int i = 0; i < 2 * s->n_meta; i++) cce_free(s->meta[i]);
    cce_free(s->meta);
    if (s->map.data || s->map.path) cce_unmap(&s->map);
    memset(s, 0, sizeof *s);
}

/* Parse one tensor entry (member `it` of the header object) into *t. */
static cce_status parse_tensor(const char *path, const cJSON *it, cce_st_tensor *t, cce_err *err) {
    char d1[96];
    const char *name = it->string;
    if (!cJSON_IsObject(it))
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': entry is %s, expected an object",
                           path, name, json_desc(it, d1, sizeof d1));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt))
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': field 'dtype' is %s, expected a string",
                           path, name, json_desc(dt, d1, sizeof d1));
    t->dtype = -1;
    for (int k = 0; k < CCE_ST_N_DTYPES; k++)
        if (!strcmp(dt->valuestring, dtype_info[k].name)) t->dtype = k;
    if (t->dtype < 0)
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': unknown dtype \"%.40s\"", path, name,
                           dt->valuestring);
    if (!cJSON_IsArray(sh))
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': field 'shape' is %s, expected an array",
                           path, name, json_desc(sh, d1, sizeof d1));
    int nd = cJSON_GetArraySize(sh);
    if (nd > CCE_ST_MAX_DIMS)
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d supported)",
                           path, name, nd, CCE_ST_MAX_DIMS);
    t->n_dims = nd;
    uint64_t numel = 1;
    int d = 0;
    for (const cJSON *e = sh->child; e; e = e->next, d++) {
        uint64_t v;
        if (!json_u64(e, &v))
            return cce_err_set(err, CCE_EFORMAT,
                               "%s: tensor '%s': shape[%d] is %s, expected a non-negative integer <= 2^53",
                               path, name, d, json_desc(e, d1, sizeof d1));
        t->shape[d] = (int64_t)v;
        if (!cce_u64_mul(numel, v, &numel))
            return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': element count of the shape overflows 64 bits",
                               path, name);
    }
    uint64_t nbytes;
    if (!cce_u64_mul(numel, dtype_info[t->dtype].size, &nbytes))
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': byte size of the shape overflows 64 bits",
                           path, name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return cce_err_set(err, CCE_EFORMAT,
                           "%s: tensor '%s': field 'data_offsets' is %s, expected [begin, end]", path, name,
                           json_desc(off, d1, sizeof d1));
    if (!json_u64(off->child, &t->begin) || !json_u64(off->child->next, &t->end))
        return cce_err_set(err, CCE_EFORMAT,
                           "%s: tensor '%s': data_offsets must be non-negative integers <= 2^53", path, name);
    if (t->end < t->begin)
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': data_offsets end %llu < begin %llu", path,
                           name, (unsigned long long)t->end, (unsigned long long)t->begin);
    if (t->end - t->begin != nbytes)
        return cce_err_set(err, CCE_EFORMAT,
                           "%s: tensor '%s': data_offsets span %llu bytes but %s shape needs %llu", path, name,
                           (unsigned long long)(t->end - t->begin), dtype_info[t->dtype].name,
                           (unsigned long long)nbytes);
    return CCE_OK;
}

static cce_status parse_metadata(const char *path, const cJSON *md, cce_safetensors *s, cce_err *err) {
    char d1[96];
    if (cJSON_IsNull(md)) return CCE_OK;
    if (!cJSON_IsObject(md))
        return cce_err_set(err, CCE_EFORMAT, "%s: '__metadata__' is %s, expected an object", path,
                           json_desc(md, d1, sizeof d1));
    int n = cJSON_GetArraySize(md);
    if (n == 0) return CCE_OK;
    s->meta = cce_alloc_zero((size_t)n * 2, sizeof *s->meta);
    if (!s->meta) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory for metadata", path);
    for (const cJSON *e = md->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return cce_err_set(err, CCE_EFORMAT, "%s: '__metadata__' key '%.60s' is %s, expected a string",
                               path, e->string, json_desc(e, d1, sizeof d1));
        char *k = cce_strdup(e->string), *v = cce_strdup(e->valuestring);
        if (!k || !v) {
            cce_free(k);
            cce_free(v);
            return cce_err_set(err, CCE_ENOMEM, "%s: out of memory for metadata", path);
        }
        s->meta[2 * s->n_meta] = k;
        s->meta[2 * s->n_meta + 1] = v;
        s->n_meta++;
    }
    return CCE_OK;
}

cce_status cce_st_open(const char *path, cce_safetensors *out, cce_err *err) {
    cce_safetensors s = {0};
    cJSON *root = NULL;
    int *by_begin = NULL;
    cce_status st;
    memset(out, 0, sizeof *out);

    if ((st = cce_map_file(path, &s.map, err)) != CCE_OK) return st;
    const uint8_t *p = s.map.data;
    size_t flen = s.map.len;
    if (flen < 8) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: file is %zu bytes, too short for the 8-byte header length",
                         path, flen);
        goto fail;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    if (n > CCE_ST_MAX_HEADER) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: header length %llu exceeds the 100,000,000-byte limit", path,
                         (unsigned long long)n);
        goto fail;
    }
    if (n > flen - 8) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: header length %llu + 8 is past end of file (%zu bytes)", path,
                         (unsigned long long)n, flen);
        goto fail;
    }
    s.header_len = n;
    const char *hdr = (const char *)p + 8;
    if (n < 2 || hdr[0] != '{') {
        st = cce_err_set(err, CCE_EFORMAT, "%s: header does not start with '{' (not a JSON object)", path);
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)hdr[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            st = cce_err_set(err, CCE_EFORMAT, "%s: header byte %llu is control character 0x%02x", path,
                             (unsigned long long)i, c);
            goto fail;
        }
    }
    if (!cce_utf8_valid(hdr, (size_t)n)) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: header is not valid UTF-8", path);
        goto fail;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        st = cce_err_set(err, CCE_EFORMAT, "%s: header is not valid JSON (near byte %zu)", path, at);
        goto fail;
    }
    for (const char *q = end; q < hdr + n; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            st = cce_err_set(err, CCE_EFORMAT, "%s: trailing garbage after the header JSON at byte %zu", path,
                             (size_t)(q - hdr));
            goto fail;
        }
    if (!cJSON_IsObject(root)) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: header JSON is not an object", path);
        goto fail;
    }

    int count = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: header member without a name", path);
            goto fail;
        }
        if (strcmp(e->string, "__metadata__")) count++;
    }
    /* count <= header bytes / 2, so these sizes are bounded by the validated file. */
    if (count > 0) {
        s.t = cce_alloc_zero((size_t)count, sizeof *s.t);
        s.sorted = cce_alloc((size_t)count, sizeof *s.sorted);
        by_begin = cce_alloc((size_t)count, sizeof *by_begin);
        if (!s.t || !s.sorted || !by_begin) {
            st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %d tensor entries", path, count);
            goto fail;
        }
    }
    int seen_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!cce_utf8_valid(e->string, strlen(e->string))) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: a tensor name is not valid UTF-8", path);
            goto fail;
        }
        if (!strcmp(e->string, "__metadata__")) {
            if (seen_meta++) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: duplicate '__metadata__'", path);
                goto fail;
            }
            if ((st = parse_metadata(path, e, &s, err)) != CCE_OK) goto fail;
            continue;
        }
        cce_st_tensor *t = &s.t[s.n];
        if ((st = parse_tensor(path, e, t, err)) != CCE_OK) goto fail;
        if (!(t->name = cce_strdup(e->string))) {
            st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        s.sorted[s.n] = s.n;
        by_begin[s.n] = s.n;
        s.n++;
    }

    /* Unique names. */
    sort_idx(s.sorted, s.n, s.t, cmp_by_name);
    for (int i = 1; i < s.n; i++)
        if (!strcmp(s.t[s.sorted[i - 1]].name, s.t[s.sorted[i]].name)) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' appears more than once", path,
                             s.t[s.sorted[i]].name);
            goto fail;
        }
    /* Byte ranges tile the data buffer exactly. */
    uint64_t data_len = (uint64_t)flen - 8 - n;
    sort_idx(by_begin, s.n, s.t, cmp_by_begin);
    uint64_t pos = 0;
    for (int i = 0; i < s.n; i++) {
        const cce_st_tensor *t = &s.t[by_begin[i]];
        if (t->begin != pos) {
            st = cce_err_set(err, CCE_EFORMAT,
                             "%s: tensor '%s': data_offsets begin %llu, expected %llu (%s)", path, t->name,
                             (unsigned long long)t->begin, (unsigned long long)pos,
                             t->begin > pos ? "hole in the data buffer" : "overlaps the previous tensor");
            goto fail;
        }
        if (t->end > data_len) {
            st = cce_err_set(err, CCE_EFORMAT,
                             "%s: tensor '%s': data_offsets end %llu is past end of the data buffer (%llu bytes)",
                             path, t->name, (unsigned long long)t->end, (unsigned long long)data_len);
            goto fail;
        }
        pos = t->end;
    }
    if (pos != data_len) {
        st = cce_err_set(err, CCE_EFORMAT,
                         "%s: tensors cover %llu bytes of the %llu-byte data buffer (not fully covered)", path,
                         (unsigned long long)pos, (unsigned long long)data_len);
        goto fail;
    }
    for (int i = 0; i < s.n; i++) s.t[i].data = p + 8 + n + s.t[i].begin;

    cJSON_Delete(root);
    cce_free(by_begin);
    *out = s;
    return CCE_OK;
fail:
    cJSON_Delete(root);
    cce_free(by_begin);
    cce_st_close(&s);
    return st;
}

const cce_st_tensor *cce_st_find(const cce_safetensors *s, const char *name) {
    int lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const cce_st_tensor *t = &s->t[s->sorted[mid]];
        int c = strcmp(t->name, name);
        if (!c) return t;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *cce_st_meta(const cce_safetensors *s, const char *key) {
    for (int i = 0; i < s->n_meta; i++)
        if (!strcmp(s->meta[2 * i], key)) return s->meta[2 * i + 1];
    return NULL;
}

cce_status cce_st_to_f32(const cce_st_tensor *t, float *dst, const char *what, cce_err *err) {
    uint64_t n = cce_st_numel(t);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case CCE_ST_F32:
        memcpy(dst, p, (size_t)n * 4);
        return CCE_OK;
    case CCE_ST_F16:
    case CCE_ST_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            dst[i] = t->dtype == CCE_ST_F16 ? cce_f16_to_f32(h) : cce_bf16_to_f32(h);
        }
        return CCE_OK;
    default:
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: tensor '%s': dtype %s is not supported (F32, F16, BF16)",
                           what, t->name, cce_st_dtype_name(t->dtype));
    }
}

/* ---- writer ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = cce_realloc(b->p, cap, 1);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_string(strbuf *b, const char *s) {
    sb_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"') sb_puts(b, "\\\"");
        else if (c == '\\') sb_puts(b, "\\\\");
        else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_puts(b, esc);
        } else sb_put(b, (const char *)&c, 1);
    }
    sb_puts(b, "\"");
}

static cce_status write_all(int fd, const void *buf, size_t n, const char *path, cce_err *err) {
    const uint8_t *q = buf;
    while (n) {
        ssize_t w = write(fd, q, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return cce_err_set(err, CCE_EIO, "%s: write failed: %s", path, strerror(errno));
        }
        q += w;
        n -= (size_t)w;
    }
    return CCE_OK;
}

#define WRITE_CHUNK (1u << 20) /* floats converted per write */

cce_status cce_st_write(const char *path, const cce_st_entry *e, int n,
                        const char *const *meta, int n_meta,
                        cce_st_fill_fn fill, void *user, uint64_t *bytes_out, cce_err *err) {
    strbuf h = {0};
    float *fbuf = NULL;
    uint8_t *obuf = NULL;
    char *tmp = NULL, *dircopy = NULL;
    int fd = -1, created = 0;
    cce_status st = CCE_OK;
    uint64_t off = 0;

    /* Header. */
    sb_puts(&h, "{");
    int first = 1;
    if (n_meta > 0) {
        sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_puts(&h, ",");
            sb_json_string(&h, meta[2 * i]);
            sb_puts(&h, ":");
            sb_json_string(&h, meta[2 * i + 1]);
        }
        sb_puts(&h, "}");
        first = 0;
    }
    for (int i = 0; i < n; i++) {
        if (e[i].dtype != CCE_ST_F32 && e[i].dtype != CCE_ST_F16 && e[i].dtype != CCE_ST_BF16) {
            st = cce_err_set(err, CCE_EINVAL, "%s: tensor '%s': writer supports F32, F16, BF16, not %s", path,
                             e[i].name, cce_st_dtype_name(e[i].dtype));
            goto done;
        }
        if (e[i].n_dims < 0 || e[i].n_dims > CCE_ST_MAX_DIMS) {
            st = cce_err_set(err, CCE_EINVAL, "%s: tensor '%s': %d dimensions", path, e[i].name, e[i].n_dims);
            goto done;
        }
        if (!e[i].data && !fill) {
            st = cce_err_set(err, CCE_EINVAL, "%s: tensor '%s': no data and no fill callback", path, e[i].name);
            goto done;
        }
        uint64_t numel = 1, nbytes;
        char num[64];
        if (!first) sb_puts(&h, ",");
        first = 0;
        sb_json_string(&h, e[i].name);
        sb_puts(&h, ":{\"dtype\":\"");
        sb_puts(&h, cce_st_dtype_name(e[i].dtype));
        sb_puts(&h, "\",\"shape\":[");
        for (int d = 0; d < e[i].n_dims; d++) {
            if (e[i].shape[d] < 0 || !cce_u64_mul(numel, (uint64_t)e[i].shape[d], &numel)) {
                st = cce_err_set(err, CCE_EINVAL, "%s: tensor '%s': bad shape", path, e[i].name);
                goto done;
            }
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e[i].shape[d]);
            sb_puts(&h, num);
        }
        if (!cce_u64_mul(numel, cce_st_dtype_size(e[i].dtype), &nbytes) || !cce_u64_add(off, nbytes, &nbytes)) {
            st = cce_err_set(err, CCE_EINVAL, "%s: tensor '%s': size overflows", path, e[i].name);
            goto done;
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)nbytes);
        sb_puts(&h, num);
        off = nbytes;
    }
    sb_puts(&h, "}");
    while (!h.oom && h.len % 8) sb_puts(&h, " ");
    if (h.oom) {
        st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory building the header", path);
        goto done;
    }

    /* Temp file beside the target. */
    size_t plen = strlen(path);
    tmp = cce_alloc(plen + 16, 1);
    dircopy = cce_strdup(path);
    fbuf = cce_alloc(WRITE_CHUNK, sizeof *fbuf);
    obuf = cce_alloc(WRITE_CHUNK, 4);
    if (!tmp || !dircopy || !fbuf || !obuf) {
        st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        st = cce_err_set(err, CCE_EIO, "%s: cannot create temporary file: %s", path, strerror(errno));
        goto done;
    }
    created = 1;
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);

    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    if ((st = write_all(fd, lenb, 8, path, err)) != CCE_OK) goto done;
    if ((st = write_all(fd, h.p, h.len, path, err)) != CCE_OK) goto done;

    for (int i = 0; i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < e[i].n_dims; d++) numel *= (uint64_t)e[i].shape[d];
        size_t es = cce_st_dtype_size(e[i].dtype);
        for (uint64_t f0 = 0; f0 < numel; f0 += WRITE_CHUNK) {
            size_t cnt = numel - f0 < WRITE_CHUNK ? (size_t)(numel - f0) : WRITE_CHUNK;
            if (cce_interrupted()) {
                st = cce_err_set(err, CCE_ECANCEL, "%s: interrupted; the previous file (if any) is unchanged", path);
                goto done;
            }
            const float *src;
            if (e[i].data) src = e[i].data + f0;
            else {
                if ((st = fill(user, i, f0, cnt, fbuf, err)) != CCE_OK) goto done;
                src = fbuf;
            }
            const void *outp = src;
            if (e[i].dtype != CCE_ST_F32) {
                for (size_t k = 0; k < cnt; k++) {
                    uint16_t v = e[i].dtype == CCE_ST_F16 ? cce_f32_to_f16(src[k]) : cce_f32_to_bf16(src[k]);
                    obuf[2 * k] = (uint8_t)v;
                    obuf[2 * k + 1] = (uint8_t)(v >> 8);
                }
                outp = obuf;
            }
            if ((st = write_all(fd, outp, cnt * es, path, err)) != CCE_OK) goto done;
        }
    }
    if (fsync(fd) != 0) {
        st = cce_err_set(err, CCE_EIO, "%s: fsync failed: %s", path, strerror(errno));
        goto done;
    }
    if (close(fd) != 0) {
        fd = -1;
        st = cce_err_set(err, CCE_EIO, "%s: close failed: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        st = cce_err_set(err, CCE_EIO, "%s: rename from temporary file failed: %s", path, strerror(errno));
        goto done;
    }
    created = 0; /* renamed: nothing to remove */
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    if (bytes_out) *bytes_out = 8 + h.len + off;
done:
    if (fd >= 0) close(fd);
    if (created) unlink(tmp);
    cce_free(tmp);
    cce_free(dircopy);
    cce_free(fbuf);
    cce_free(obuf);
    cce_free(h.p);
    return st;
}
