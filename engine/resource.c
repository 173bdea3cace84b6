/*
 * resource.c — the memory budget and the up-front load estimate. See resource.h.
 *
 * The check is deliberately simple: one number (what the job will allocate) against one number
 * (what the machine can give, less a margin). It does not try to account for fragmentation or
 * for other processes growing meanwhile; its job is to turn "killed by the OOM killer after a
 * minute of work" into an immediate, explained refusal in the common case.
 *
 * The estimate reuses the format parsers (cce_gguf_list, cce_st_open), which validate the whole
 * header; it never reads tensor data, so it costs one header parse per file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "gguf.h"
#include "resource.h"
#include "safetensors.h"
#include "util.h"

/* Largest model.safetensors.index.json we read (real ones are well under 1 MB). */
#define RES_INDEX_MAX_BYTES (64u << 20)

uint64_t cce_mem_budget(void) {
    const char *env = getenv("CCE_MEM_LIMIT");
    if (env && *env) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(env, &end, 10);
        if (!errno && end != env && !*end && env[0] != '-') return (uint64_t)v;
    }
    size_t avail = cce_mem_available();
    if (avail == 0) return UINT64_MAX;
    return (uint64_t)avail > CCE_MEM_MARGIN ? (uint64_t)avail - CCE_MEM_MARGIN : 0;
}

char *cce_bytes_fmt(uint64_t bytes, char *buf, size_t cap) {
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, cap, "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}

cce_status cce_mem_check(const char *what, uint64_t need_bytes, const char *hint, cce_err *err) {
    uint64_t budget = cce_mem_budget();
    if (need_bytes <= budget) return CCE_OK;
    char need[32], have[32];
    cce_bytes_fmt(need_bytes, need, sizeof need);
    cce_bytes_fmt(budget, have, sizeof have);
    return cce_err_set(err, CCE_ENOMEM, "%s: needs %s, %s available%s%s", what ? what : "job", need, have,
                       hint && *hint ? "; " : "", hint && *hint ? hint : "");
}

/* ---- load estimate ---- */

/* est += numel * 4 (saturating: an estimate that overflows is as good as "too much"). */
static void res_add_f32(cce_load_estimate *est, uint64_t numel) {
    uint64_t b;
    if (!cce_u64_mul(numel, 4, &b) || !cce_u64_add(est->alloc_bytes, b, &est->alloc_bytes))
        est->alloc_bytes = UINT64_MAX;
}

static void res_add_mapped(cce_load_estimate *est, uint64_t bytes) {
    if (!cce_u64_add(est->mapped_bytes, bytes, &est->mapped_bytes)) est->mapped_bytes = UINT64_MAX;
}

static cce_status res_estimate_gguf(const char *path, cce_load_estimate *est, cce_err *err) {
    cce_gguf_tensor *t = NULL;
    int n = 0;
    cce_status s = cce_gguf_list(path, &t, &n, NULL, 0, err);
    if (s) return s;
    for (int i = 0; i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < t[i].n_dims && d < 4; d++)
            if (t[i].shape[d] < 0 || !cce_u64_mul(numel, (uint64_t)t[i].shape[d], &numel)) numel = UINT64_MAX / 4;
        /* matrices stay in their stored type in the mapping; vectors (norms) and misaligned F32
         * tensors are converted to f32 */
        int matrix = t[i].n_dims >= 2 && strcmp(t[i].dtype, "F32") != 0;
        if ((!strcmp(t[i].dtype, "F32") && t[i].offset % 4 == 0) || matrix) res_add_mapped(est, t[i].nbytes);
        else res_add_f32(est, numel);
    }
    cce_free(t);
    return CCE_OK;
}

/* GPT-2's Conv1D weights are stored (in, out) and transposed into new buffers at load: the
 * fused c_attn, c_proj, c_fc and, in compressed exports, the separate dense "attn.{q,k,v}_proj"
 * (low-rank factors "weight_u"/"weight_v" are already (out, in) and used in place). */
static int res_is_conv1d(const char *name, int gpt2) {
    if (cce_str_ends_with(name, "attn.c_attn.weight") || cce_str_ends_with(name, "attn.c_proj.weight") ||
        cce_str_ends_with(name, "mlp.c_fc.weight") || cce_str_ends_with(name, "mlp.c_proj.weight"))
        return 1;
    return gpt2 && (cce_str_ends_with(name, "attn.q_proj.weight") || cce_str_ends_with(name, "attn.k_proj.weight") ||
                    cce_str_ends_with(name, "attn.v_proj.weight"));
}

static cce_status res_estimate_st(const char *path, cce_load_estimate *est, cce_err *err) {
    cce_safetensors st;
    cce_status s = cce_st_open(path, &st, err);
    if (s) return s;
    int gpt2 = 0; /* a GPT-2 file has wte (with or without the "transformer." prefix) */
    for (int i = 0; i < st.n && !gpt2; i++) gpt2 = !strcmp(st.t[i].name, "wte.weight") || cce_str_ends_with(st.t[i].name, ".wte.weight");
    for (int i = 0; i < st.n; i++) {
        const cce_st_tensor *t = &st.t[i];
        uint64_t numel = cce_st_numel(t);
        /* used in place: aligned F32 tensors, and 2-byte aligned F16/BF16 matrices (the loader keeps
         * them stored); converted: everything else, and GPT-2's transposed Conv1D weights */
        int aligned = ((uintptr_t)t->data % 4) == 0, half = t->dtype == CCE_ST_F16 || t->dtype == CCE_ST_BF16;
        int in_place = !res_is_conv1d(t->name, gpt2) &&
                       ((t->dtype == CCE_ST_F32 && aligned) || (half && t->n_dims == 2 && ((uintptr_t)t->data % 2) == 0));
        if (in_place) res_add_mapped(est, t->end - t->begin);
        else res_add_f32(est, numel);
    }
    cce_st_close(&st);
    return CCE_OK;
}

static int res_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sharded HF model: the distinct shard files named by weight_map. */
static cce_status res_estimate_index(const char *dir, const char *index_path, cce_load_estimate *est,
                                     cce_err *err) {
    char *text = NULL;
    size_t len = 0;
    cce_status s = cce_read_file(index_path, RES_INDEX_MAX_BYTES, &text, &len, err);
    if (s) return s;
    const char **names = NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        s = cce_err_set(err, CCE_EFORMAT, "%s: not valid JSON", index_path);
        goto cleanup;
    }
    cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        s = cce_err_set(err, CCE_EFORMAT, "%s: 'weight_map' missing or not an object", index_path);
        goto cleanup;
    }
    int n = cJSON_GetArraySize(map);
    names = cce_alloc(n > 0 ? (size_t)n : 1, sizeof *names);
    if (!names) {
        s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %d entries", index_path, n);
        goto cleanup;
    }
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/') || e->valuestring[0] == '.') {
            s = cce_err_set(err, CCE_EFORMAT, "%s: weight_map '%s': shard must be a plain file name", index_path,
                            e->string ? e->string : "?");
            goto cleanup;
        }
        if (k < n) names[k++] = e->valuestring;
    }
    qsort(names, (size_t)k, sizeof *names, res_cmp_str);
    for (int i = 0; i < k; i++) {
        if (i && !strcmp(names[i], names[i - 1])) continue;
        char shard[4096];
        if (snprintf(shard, sizeof shard, "%s/%s", dir, names[i]) >= (int)sizeof shard) {
            s = cce_err_set(err, CCE_EFORMAT, "%s: shard name '%.64s...' too long", index_path, names[i]);
            goto cleanup;
        }
        if ((s = res_estimate_st(shard, est, err))) goto cleanup;
    }
cleanup:
    cce_free(names);
    cJSON_Delete(root);
    cce_free(text);
    return s;
}

cce_status cce_model_estimate(const char *path, cce_load_estimate *est, cce_err *err) {
    memset(est, 0, sizeof *est);
    struct stat sb;
    if (stat(path, &sb) != 0) return cce_err_set(err, CCE_EIO, "%s: no such file or directory", path);
    if (S_ISDIR(sb.st_mode)) {
        char p[4096];
        if (snprintf(p, sizeof p, "%s/model.safetensors.index.json", path) >= (int)sizeof p)
            return cce_err_set(err, CCE_EINVAL, "%s: path too long", path);
        struct stat ib;
        if (stat(p, &ib) == 0) return res_estimate_index(path, p, est, err);
        snprintf(p, sizeof p, "%s/model.safetensors", path);
        return res_estimate_st(p, est, err);
    }
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return cce_err_set(err, CCE_EIO, "%s: cannot open", path);
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && !memcmp(magic, "GGUF", 4)) return res_estimate_gguf(path, est, err);
    if (cce_str_ends_with(path, ".safetensors")) return res_estimate_st(path, est, err);
    est->mapped_bytes = (uint64_t)sb.st_size;
    return CCE_OK;
}
