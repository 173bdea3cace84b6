/*
 * test_resource.c — the memory budget (CCE_MEM_LIMIT, MemAvailable), the refusal message, the
 * load estimate for safetensors / sharded HF / GGUF / llama2.c, and the up-front refusal in
 * cce_model_open. Files are generated in harness_tmpdir(); real files from $CCE_DATA.
 */
#include <stdint.h>
#include <sys/stat.h>
#include "harness.h"
#include "model.h"
#include "resource.h"
#include "tokenizer.h"

/* Write a safetensors file: JSON header padded with spaces to pad_to bytes (0: no padding),
 * then nbytes of zero data. Returns 0 on success. */
static int write_st(const char *path, const char *json, size_t pad_to, size_t nbytes) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = strlen(json), hl = pad_to > n ? pad_to : n;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(json, 1, n, f);
    for (size_t i = n; i < hl; i++) fputc(' ', f);
    for (size_t i = 0; i < nbytes; i++) fputc(0, f);
    return fclose(f);
}

static const char *tmp_path(const char *name) {
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", harness_tmpdir(), name);
    return b;
}

TEST(bytes_fmt) {
    char b[32];
    CHECK_STR(cce_bytes_fmt(0, b, sizeof b), "0 B");
    CHECK_STR(cce_bytes_fmt(1023, b, sizeof b), "1023 B");
    CHECK_STR(cce_bytes_fmt(1536, b, sizeof b), "1.5 KiB");
    CHECK_STR(cce_bytes_fmt(12ull << 30, b, sizeof b), "12.0 GiB");
    CHECK_STR(cce_bytes_fmt((uint64_t)(12.3 * (1ull << 30)), b, sizeof b), "12.3 GiB");
    CHECK_STR(cce_bytes_fmt(UINT64_MAX, b, sizeof b), "16.0 EiB");
}

TEST(budget_env) {
    setenv("CCE_MEM_LIMIT", "123456", 1);
    CHECK_EQ_INT(cce_mem_budget(), 123456);
    setenv("CCE_MEM_LIMIT", "12x", 1); /* malformed: ignored, falls back to MemAvailable */
    uint64_t b = cce_mem_budget();
    unsetenv("CCE_MEM_LIMIT");
    uint64_t avail = cce_mem_available();
    CHECK(avail > 0);
    /* MemAvailable moves a little between reads: compare within 64 MiB */
    uint64_t expect = avail > CCE_MEM_MARGIN ? avail - CCE_MEM_MARGIN : 0;
    CHECK(b + (64u << 20) >= expect && b <= expect + (64u << 20));
}

TEST(check_refuses_with_message) {
    cce_err err = {{0}};
    setenv("CCE_MEM_LIMIT", "8697308774", 1); /* 8.1 GiB */
    cce_status s1 = cce_mem_check("big.gguf", 13207024435ull /* 12.3 GiB */, "use --tokens 1024", &err);
    cce_status s2 = cce_mem_check("ok.gguf", 8697308774ull, "hint", NULL);
    cce_err err2 = {{0}};
    cce_status s3 = cce_mem_check("calib", 8697308775ull, NULL, &err2);
    unsetenv("CCE_MEM_LIMIT");
    CHECK_EQ_INT(s1, CCE_ENOMEM);
    CHECK_STR(err.msg, "big.gguf: needs 12.3 GiB, 8.1 GiB available; use --tokens 1024");
    CHECK_EQ_INT(s2, CCE_OK);
    CHECK_EQ_INT(s3, CCE_ENOMEM);
    CHECK_STR(err2.msg, "calib: needs 8.1 GiB, 8.1 GiB available");
}

TEST(estimate_safetensors) {
    /* a: F32 (2,3) mapped in place; b: F16 (4) converted -> 16 bytes; the Conv1D-named F32
     * weight is transposed into a new buffer -> 8 bytes. Header padded to 120 so data starts at
     * byte 128 (4-aligned). */
    const char *p = tmp_path("est.safetensors");
    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                       "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                       "\"h.0.mlp.c_fc.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[32,40]}}";
    CHECK(strlen(json) <= 248);
    CHECK(write_st(p, json, 248, 40) == 0);
    cce_load_estimate est;
    cce_err err = {{0}};
    cce_status s = cce_model_estimate(p, &est, &err);
    CHECK_MSG(s == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(est.alloc_bytes, 16 + 8);
    CHECK_EQ_INT(est.mapped_bytes, 24);
}

TEST(estimate_gpt2_split_qkv) {
    /* a compressed GPT-2 export: separate dense q_proj (Conv1D layout, transposed at load: 16
     * bytes) and a low-rank k_proj (weight_u/_v used in place: 8 + 8 bytes mapped); in a Llama
     * file (no wte) the same q_proj name is (out, in) and used in place */
    const char *p = tmp_path("gpt2split.safetensors");
    const char *json = "{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"h.0.attn.q_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[4,20]},"
                       "\"h.0.attn.k_proj.weight_u\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[20,28]},"
                       "\"h.0.attn.k_proj.weight_v\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[28,36]}}";
    CHECK(strlen(json) <= 376);
    CHECK(write_st(p, json, 376, 36) == 0);
    cce_load_estimate est;
    cce_err err = {{0}};
    CHECK_MSG(cce_model_estimate(p, &est, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(est.alloc_bytes, 16);
    CHECK_EQ_INT(est.mapped_bytes, 4 + 8 + 8);
    const char *q = tmp_path("llamaq.safetensors");
    CHECK(write_st(q, "{\"model.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],"
                      "\"data_offsets\":[0,16]}}", 120, 16) == 0);
    CHECK_MSG(cce_model_estimate(q, &est, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(est.alloc_bytes, 0);
    CHECK_EQ_INT(est.mapped_bytes, 16);
}

TEST(estimate_unaligned_f32_counts_as_allocated) {
    const char *p = tmp_path("unaligned.safetensors");
    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    CHECK(write_st(p, json, 249, 8) == 0); /* data at byte 257 */
    cce_load_estimate est;
    cce_err err = {{0}};
    CHECK_MSG(cce_model_estimate(p, &est, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(est.alloc_bytes, 8);
    CHECK_EQ_INT(est.mapped_bytes, 0);
}

TEST(estimate_sharded_dir) {
    const char *dir = tmp_path("sharded");
    mkdir(dir, 0755);
    char p[1200];
    /* shard 1: F16 vector (10) -> 40 bytes of f32; shard 2: BF16 matrix (3,2) stays stored
     * (12 bytes mapped), BF16 vector (2) -> 8 bytes */
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(write_st(p, "{\"x\":{\"dtype\":\"F16\",\"shape\":[10],\"data_offsets\":[0,20]}}", 0, 20) == 0);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(write_st(p, "{\"y\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,12]},"
                      "\"z\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}}", 0, 16) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fputs("{\"metadata\":{},\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\","
          "\"y\":\"model-00002-of-00002.safetensors\",\"z\":\"model-00002-of-00002.safetensors\"}}", f);
    fclose(f);
    cce_load_estimate est;
    cce_err err = {{0}};
    CHECK_MSG(cce_model_estimate(dir, &est, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(est.alloc_bytes, 40 + 8); /* shard 2 counted once though named twice */
    CHECK_EQ_INT(est.mapped_bytes, 12);

    /* a shard name that leaves the directory is refused, naming the index */
    f = fopen(p, "w");
    CHECK(f);
    fputs("{\"weight_map\":{\"x\":\"../model-00001-of-00002.safetensors\"}}", f);
    fclose(f);
    cce_status s = cce_model_estimate(dir, &est, &err);
    CHECK_EQ_INT(s, CCE_EFORMAT);
    CHECK(strstr(err.msg, "model.safetensors.index.json") != NULL);
}

TEST(estimate_real_files) {
    const char *gg = harness_data("gguf/stories260K.gguf");
    const char *l2 = harness_data("llama2c/stories260K.bin");
    if (!harness_have(gg) || !harness_have(l2)) FAILF("data files missing under $CCE_DATA");
    cce_load_estimate est;
    cce_err err = {{0}};
    CHECK_MSG(cce_model_estimate(gg, &est, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(est.alloc_bytes, 0); /* all F32, 32-aligned: used in place */
    /* 48 tensors: stories260K has 260,032 parameters + a separate output.weight (512*64) */
    CHECK_EQ_INT(est.mapped_bytes, (260032 + 512 * 64) * 4);
    CHECK_MSG(cce_model_estimate(l2, &est, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(est.alloc_bytes, 0);
    CHECK_EQ_INT(est.mapped_bytes, 1056540);
    CHECK_EQ_INT(cce_model_estimate(tmp_path("missing.gguf"), &est, &err), CCE_EIO);
    CHECK(strstr(err.msg, "missing.gguf") != NULL);
}

TEST(model_open_refuses_up_front) {
    /* An HF directory whose F16 vector would need 4 MiB as f32: refused before the loader
     * runs (there is not even a config.json) when the budget is 1 MiB, and not refused for
     * memory reasons without the limit. (F16 matrices would stay stored and cost nothing.) */
    const char *dir = tmp_path("f16model");
    mkdir(dir, 0755);
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(write_st(p, "{\"model.norm.weight\":{\"dtype\":\"F16\",\"shape\":[1048576],"
                      "\"data_offsets\":[0,2097152]}}", 0, 2097152) == 0);
    cce_model *m = NULL;
    cce_tokenizer *t = NULL;
    cce_err err = {{0}};
    setenv("CCE_MEM_LIMIT", "1048576", 1);
    cce_status s = cce_model_open(dir, NULL, &m, &t, &err);
    unsetenv("CCE_MEM_LIMIT");
    CHECK_EQ_INT(s, CCE_ENOMEM);
    CHECK(m == NULL && t == NULL);
    CHECK_MSG(strstr(err.msg, "f16model: needs 4.0 MiB, 1.0 MiB available; ") != NULL, "%s", err.msg);
    cce_err err2 = {{0}};
    s = cce_model_open(dir, NULL, &m, &t, &err2);
    CHECK(s != CCE_OK && s != CCE_ENOMEM); /* the loader's own complaint (no config.json) */
    CHECK(strstr(err2.msg, "needs") == NULL || strstr(err2.msg, "available") == NULL);

    /* the real GGUF (all F32, mapped) passes even a tiny budget */
    const char *gg = harness_data("gguf/stories260K.gguf");
    if (!harness_have(gg)) FAILF("gguf/stories260K.gguf missing under $CCE_DATA");
    setenv("CCE_MEM_LIMIT", "1", 1);
    s = cce_model_open(gg, NULL, &m, &t, &err);
    unsetenv("CCE_MEM_LIMIT");
    CHECK_MSG(s == CCE_OK, "%s", err.msg);
    cce_tokenizer_free(t);
    cce_model_free(m);
}

int main(void) {
    RUN(bytes_fmt);
    RUN(budget_env);
    RUN(check_refuses_with_message);
    RUN(estimate_safetensors);
    RUN(estimate_gpt2_split_qkv);
    RUN(estimate_unaligned_f32_counts_as_allocated);
    RUN(estimate_sharded_dir);
    RUN(estimate_real_files);
    RUN(model_open_refuses_up_front);
    return harness_done();
}
