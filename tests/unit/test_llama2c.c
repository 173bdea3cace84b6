/*
 * test_llama2c.c — the llama2.c checkpoint loader: real files, a synthetic file whose every
 * float is its own index (so each tensor's placement is checked exactly), and every class of
 * malformed header or length, each of which must fail with an error naming the file.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"
#include "model.h"
#include "util.h"

/* A small model: dim 8, hidden 12, 2 layers, 2 heads (hd 4), 1 KV head, vocab 10, seq 4. */
enum { T_DIM = 8, T_HID = 12, T_L = 2, T_NH = 2, T_NKV = 1, T_V = 10, T_SEQ = 4 };
#define T_HD (T_DIM / T_NH)
#define T_KVD (T_NKV * T_HD)

static size_t t_body_floats(int untied, int rope) {
    size_t n = (size_t)T_V * T_DIM + (size_t)T_L * (2 * T_DIM + 2 * T_DIM * T_DIM + 2 * T_KVD * T_DIM + 3 * T_HID * T_DIM)
               + T_DIM;
    if (rope) n += (size_t)T_SEQ * T_HD;
    if (untied) n += (size_t)T_V * T_DIM;
    return n;
}

/* Write header h (7 ints) and n_floats floats with value i at index i; extra trailing bytes. */
static const char *t_write(const char *name, const int32_t h[7], size_t n_floats, size_t extra) {
    static char paths[8][600];
    static int k;
    char *p = paths[k++ & 7];
    snprintf(p, sizeof paths[0], "%s/%s", harness_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    fwrite(h, 4, 7, f);
    for (size_t i = 0; i < n_floats; i++) {
        float v = (float)i;
        fwrite(&v, 4, 1, f);
    }
    for (size_t i = 0; i < extra; i++) fputc(0, f);
    fclose(f);
    return p;
}

static void t_header(int32_t h[7], int untied) {
    int32_t d[7] = {T_DIM, T_HID, T_L, T_NH, T_NKV, untied ? -T_V : T_V, T_SEQ};
    memcpy(h, d, sizeof d);
}

/* Expect a clean failure whose message names the path. */
#define CHECK_FAILS(path) do { \
        cce_model *m_ = NULL; cce_err e_ = {{0}}; \
        cce_status s_ = cce_load_llama2c((path), &m_, &e_); \
        CHECK_MSG(s_ != CCE_OK, "%s loaded but should fail", (path)); \
        CHECK(m_ == NULL); \
        CHECK_MSG(strstr(e_.msg, (path)) != NULL, "error does not name the file: %s", e_.msg); \
    } while (0)

TEST(stories260k_real) {
    const char *path = harness_data("llama2c/stories260K.bin");
    if (!harness_have(path)) FAILF("missing %s", path);
    cce_model *m = NULL;
    cce_err err = {{0}};
    cce_status st = cce_load_llama2c(path, &m, &err);
    CHECK_MSG(st == CCE_OK, "load failed: %s", err.msg);
    CHECK_EQ_INT(m->cfg.dim, 64);
    CHECK_EQ_INT(m->cfg.hidden_dim, 172);
    CHECK_EQ_INT(m->cfg.n_layers, 5);
    CHECK_EQ_INT(m->cfg.n_heads, 8);
    CHECK_EQ_INT(m->cfg.n_kv_heads, 4);
    CHECK_EQ_INT(m->cfg.vocab_size, 512);
    CHECK_EQ_INT(m->cfg.seq_len, 512);
    CHECK_EQ_INT(m->cfg.head_dim, 8);
    CHECK_EQ_INT(m->cfg.tied, 1);
    CHECK_EQ_INT(m->cfg.rope_interleaved, 1);
    CHECK_EQ_INT(m->cfg.bos_id, 1);
    CHECK_EQ_INT(m->cfg.eos_id, 2);
    CHECK_EQ_INT(m->cfg.arch, CCE_ARCH_LLAMA);
    CHECK_EQ_INT(m->format, CCE_FMT_LLAMA2C);
    CHECK(m->lm_head.w == m->tok_emb.w);
    CHECK_EQ_INT(m->layers[4].wk.out, 32);
    CHECK_EQ_INT(m->layers[4].w2.in, 172);
    cce_param_count pc = cce_model_params(m);
    CHECK_EQ_INT(pc.total, 260032);
    CHECK_EQ_INT(pc.embedding, 512 * 64);
    CHECK_EQ_INT(pc.non_embedding, 260032 - 512 * 64);
    /* rms_final is the last 64 floats before the RoPE tables (2 x 512 x 4 floats). */
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    float first[4], fin[2];
    CHECK(fseek(f, 28, SEEK_SET) == 0 && fread(first, 4, 4, f) == 4);
    CHECK(fseek(f, -(long)(4096 + 64) * 4, SEEK_END) == 0 && fread(fin, 4, 2, f) == 2);
    fclose(f);
    CHECK(memcmp(first, m->tok_emb.w, sizeof first) == 0);
    CHECK(memcmp(fin, m->final_norm, sizeof fin) == 0);
    /* Trained RMSNorm gains: rms_final mean ~1.81 per SOURCES.md. */
    double s = 0;
    for (int i = 0; i < 64; i++) s += m->final_norm[i];
    CHECK_NEAR(s / 64, 1.81, 0.02);
    cce_model_free(m);
}

TEST(tinystories_2m5_real) {
    const char *path = harness_data("llama2c/tinystories_2m5.bin");
    if (!harness_have(path)) FAILF("missing %s", path);
    cce_model *m = NULL;
    cce_err err = {{0}};
    cce_status st = cce_load_llama2c(path, &m, &err);
    CHECK_MSG(st == CCE_OK, "load failed: %s", err.msg);
    CHECK_EQ_INT(m->cfg.dim, 192);
    CHECK_EQ_INT(m->cfg.hidden_dim, 512);
    CHECK_EQ_INT(m->cfg.n_layers, 6);
    CHECK_EQ_INT(m->cfg.n_heads, 6);
    CHECK_EQ_INT(m->cfg.n_kv_heads, 2);
    CHECK_EQ_INT(m->cfg.head_dim, 32);
    CHECK_EQ_INT(m->cfg.seq_len, 256);
    CHECK_EQ_INT(m->cfg.tied, 1);
    cce_param_count pc = cce_model_params(m);
    CHECK_EQ_INT(pc.total, 2460096);
    CHECK_EQ_INT(pc.non_embedding, 2361792);
    cce_model_free(m);
}

/* Every tensor lands at its documented float index, tied and untied, with and without RoPE. */
static void t_check_layout(int untied, int rope) {
    int32_t h[7];
    t_header(h, untied);
    char name[64];
    snprintf(name, sizeof name, "layout_%d_%d.bin", untied, rope);
    const char *path = t_write(name, h, t_body_floats(untied, rope), 0);
    CHECK(path != NULL);
    cce_model *m = NULL;
    cce_err err = {{0}};
    cce_status st = cce_load_llama2c(path, &m, &err);
    CHECK_MSG(st == CCE_OK, "load failed: %s", err.msg);
    CHECK_EQ_INT(m->cfg.tied, !untied);
    CHECK_EQ_INT(m->cfg.vocab_size, T_V);
    size_t o = 0;
    CHECK_NEAR(cce_linear_f32(&m->tok_emb)[0], o, 0); o += T_V * T_DIM;
    CHECK_NEAR(m->layers[0].attn_norm[0], o, 0);
    CHECK_NEAR(m->layers[1].attn_norm[0], o + T_DIM, 0); o += T_L * T_DIM;
    CHECK_NEAR(cce_linear_f32(&m->layers[1].wq)[0], o + T_DIM * T_DIM, 0); o += T_L * T_DIM * T_DIM;
    CHECK_NEAR(cce_linear_f32(&m->layers[1].wk)[0], o + T_KVD * T_DIM, 0); o += T_L * T_KVD * T_DIM;
    CHECK_NEAR(cce_linear_f32(&m->layers[0].wv)[0], o, 0); o += T_L * T_KVD * T_DIM;
    CHECK_NEAR(cce_linear_f32(&m->layers[1].wo)[3], o + T_DIM * T_DIM + 3, 0); o += T_L * T_DIM * T_DIM;
    CHECK_NEAR(m->layers[1].ffn_norm[0], o + T_DIM, 0); o += T_L * T_DIM;
    CHECK_NEAR(cce_linear_f32(&m->layers[1].w1)[0], o + T_HID * T_DIM, 0); o += T_L * T_HID * T_DIM;
    CHECK_NEAR(cce_linear_f32(&m->layers[0].w2)[0], o, 0); o += T_L * T_HID * T_DIM;
    CHECK_NEAR(cce_linear_f32(&m->layers[1].w3)[0], o + T_HID * T_DIM, 0); o += T_L * T_HID * T_DIM;
    CHECK_NEAR(m->final_norm[0], o, 0); o += T_DIM;
    if (rope) o += T_SEQ * T_HD;
    if (untied) CHECK_NEAR(cce_linear_f32(&m->lm_head)[0], o, 0);
    else CHECK(m->lm_head.w == m->tok_emb.w);
    CHECK_EQ_INT(m->layers[0].wk.out, T_KVD);
    CHECK_EQ_INT(m->layers[0].w2.in, T_HID);
    CHECK(m->layers[0].wq.b == NULL && m->layers[0].head_kv == NULL);
    cce_param_count pc = cce_model_params(m);
    CHECK_EQ_INT(pc.total, (int64_t)t_body_floats(untied, 0));
    cce_model_free(m);
}

TEST(layout_tied_rope) { t_check_layout(0, 1); }
TEST(layout_untied_rope) { t_check_layout(1, 1); }
TEST(layout_tied_norope) { t_check_layout(0, 0); }
TEST(layout_untied_norope) { t_check_layout(1, 0); }

TEST(bad_header_fields) {
    for (int field = 0; field < 7; field++) {
        for (int bad = 0; bad < 3; bad++) {
            int32_t h[7];
            t_header(h, 0);
            if (field == 5 && bad == 1) continue;  // negative vocab is legal (untied)
            h[field] = bad == 0 ? 0 : bad == 1 ? -3 : INT32_MIN;
            const char *path = t_write("badfield.bin", h, t_body_floats(0, 1), 0);
            CHECK_FAILS(path);
        }
    }
}

TEST(heads_do_not_divide) {
    int32_t h[7];
    t_header(h, 0);
    h[3] = 3;  // 3 does not divide dim 8
    CHECK_FAILS(t_write("heads3.bin", h, t_body_floats(0, 1), 0));
    t_header(h, 0);
    h[4] = 3;  // 3 kv heads do not divide 2 heads
    CHECK_FAILS(t_write("kv3.bin", h, t_body_floats(0, 1), 0));
    t_header(h, 0);
    h[3] = 8; h[4] = 8;  // head size 1: odd, no RoPE pairs
    CHECK_FAILS(t_write("hd1.bin", h, t_body_floats(0, 1), 0));
}

TEST(overflowing_products) {
    int32_t cases[][7] = {
        {INT32_MAX - 1, INT32_MAX, INT32_MAX, 2, 1, INT32_MAX, INT32_MAX},
        {1 << 30, 1 << 30, 1 << 30, 1 << 29, 1 << 29, -(1 << 30), 1 << 30},
        {65536, 65536, 65536, 2, 2, 65536, 65536},
        {8, 12, 2, 2, 1, 10, INT32_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_FAILS(t_write("overflow.bin", cases[i], t_body_floats(0, 1), 0));
}

TEST(truncated_and_extra_bytes) {
    int32_t h[7];
    t_header(h, 1);
    size_t n = t_body_floats(1, 1);
    const char *cut = t_write("cut.bin", h, n, 0);
    CHECK(cut != NULL);
    size_t total = 28 + 4 * n;
    /* shrink the file one byte at a time: every shorter length must be refused */
    for (size_t len = total; len-- > 0;) {
        CHECK(truncate(cut, (off_t)len) == 0);
        if (len == total - (size_t)T_SEQ * T_HD * 4) continue;  // the no-RoPE layout is a legal prefix
        CHECK_FAILS(cut);
    }
    for (size_t extra = 1; extra <= 8; extra++) CHECK_FAILS(t_write("extra.bin", h, n, extra));
    /* untied header over a tied-size file and vice versa */
    CHECK_FAILS(t_write("untied_short.bin", h, t_body_floats(0, 1), 0));
    t_header(h, 0);
    CHECK_FAILS(t_write("tied_long.bin", h, t_body_floats(1, 1), 0));
}

TEST(newer_export_version) {
    int32_t h[7];
    t_header(h, 0);
    h[0] = 0x616b3432;  // "ak42"
    h[1] = 1;
    const char *path = t_write("v1.bin", h, t_body_floats(0, 1), 0);
    CHECK_FAILS(path);
    cce_model *m = NULL;
    cce_err err = {{0}};
    CHECK_EQ_INT(cce_load_llama2c(path, &m, &err), CCE_EUNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "version 1") != NULL, "%s", err.msg);
}

TEST(error_message_format) {
    int32_t h[7];
    t_header(h, 0);
    const char *path = t_write("short.bin", h, 10, 0);
    cce_model *m = NULL;
    cce_err err = {{0}};
    CHECK_EQ_INT(cce_load_llama2c(path, &m, &err), CCE_EFORMAT);
    char want[800];
    snprintf(want, sizeof want, "%s: header says dim=8, hidden_dim=12, n_layers=2, n_heads=2, n_kv_heads=1, "
             "vocab_size=10, seq_len=4; needs %zu bytes, file has 68", path, 28 + 4 * t_body_floats(0, 1));
    CHECK_STR(err.msg, want);
}

TEST(missing_and_directory) {
    char p[600];
    snprintf(p, sizeof p, "%s/does_not_exist.bin", harness_tmpdir());
    CHECK_FAILS(p);
    CHECK_FAILS(harness_tmpdir());
}

TEST(allocation_failures) {
    const char *path = harness_data("llama2c/stories260K.bin");
    int loaded = 0;
    for (long n = 1; n < 50 && !loaded; n++) {
        cce_model *m = NULL;
        cce_err err = {{0}};
        cce_alloc_fail_after(n);
        cce_status st = cce_load_llama2c(path, &m, &err);
        cce_alloc_fail_after(0);
        if (st == CCE_OK) { loaded = 1; cce_model_free(m); break; }
        CHECK_MSG(st == CCE_ENOMEM && m == NULL && strstr(err.msg, path), "n=%ld: status %d: %s", n, (int)st, err.msg);
    }
    CHECK(loaded);
}

int main(void) {
    RUN(stories260k_real);
    RUN(tinystories_2m5_real);
    RUN(layout_tied_rope);
    RUN(layout_untied_rope);
    RUN(layout_tied_norope);
    RUN(layout_untied_norope);
    RUN(bad_header_fields);
    RUN(heads_do_not_divide);
    RUN(overflowing_products);
    RUN(truncated_and_extra_bytes);
    RUN(newer_export_version);
    RUN(error_message_format);
    RUN(missing_and_directory);
    RUN(allocation_failures);
    return harness_done();
}
