/*
 * test_gguf.c — the GGUF reader and writer.
 *
 * Reader: the real stories260K file (and its bit-identity with the llama2.c checkpoint); a
 * test-only GGUF writer that builds valid models with known values in every storage type
 * (F32, F16, BF16 exactly; Q8_0 with power-of-two scales; Q4_0 ... Q6_K encoded by
 * cce_quantize, their expected values read back by the independent decoder of quant_ref.h),
 * each loaded in place and run (fast forward = reference forward); the architectures llama,
 * mistral, qwen2 (checked against the equivalent llama form) and deci (per-layer arrays, blocks
 * without attention, identity blocks); RoPE divisors, linear scaling, sliding windows; both
 * tokenizer kinds from the metadata; and every class of malformed file, each of which must fail
 * cleanly with an error naming the file.
 *
 * Writer (cce_export_gguf): stories260K and tinystories_2m5 -> F32 / F16 / Q8_0 -> reload (F32
 * bit-identical; the others within measured bounds, stated at the tests); a compressed-shape
 * model (per-layer heads, a block without attention, a dropped block, a reordered head -> KV
 * map, a low-rank linear, encoding biases) -> deci -> the same logits; half-rotation models
 * with biases; RoPE scaling; byte-level tokenizers; the one-line refusals; an interrupted write.
 *
 * The test writer records the byte position of every header field under a label ("n_kv",
 * "kv:llama.block_count:value", "t:blk.0.attn_q.weight:offset", ...), so a defect is one
 * patch of one field of an otherwise valid file.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "export.h"
#include "forward.h"
#include "gguf.h"
#include "harness.h"
#include "model.h"
#include "quant.h"
#include "quant_ref.h"
#include "tokenizer.h"
#include "util.h"

/* ---- a byte buffer with labelled positions ---- */

typedef struct { uint8_t *b; size_t n, cap; } tbuf;

#define MAX_LABELS 1024
static struct { char name[128]; size_t pos; } labels[MAX_LABELS];
static int n_labels;

static void lab(const char *a, const char *b, const char *c, size_t pos) {
    if (n_labels >= MAX_LABELS) return;
    snprintf(labels[n_labels].name, sizeof labels[0].name, "%s%s%s", a, b, c);
    labels[n_labels++].pos = pos;
}
static long lab_pos(const char *name) {
    for (int i = 0; i < n_labels; i++) if (!strcmp(labels[i].name, name)) return (long)labels[i].pos;
    return -1;
}

static void tb_put(tbuf *t, const void *p, size_t n) {
    if (t->n + n > t->cap) {
        t->cap = (t->n + n) * 2 + 64;
        t->b = realloc(t->b, t->cap);
    }
    memcpy(t->b + t->n, p, n);
    t->n += n;
}
static void tb_u32(tbuf *t, uint32_t v) { tb_put(t, &v, 4); }
static void tb_u64(tbuf *t, uint64_t v) { tb_put(t, &v, 8); }
static void tb_str(tbuf *t, const char *s) { tb_u64(t, strlen(s)); tb_put(t, s, strlen(s)); }

/* ---- GGUF description ---- */

enum { V_U8 = 0, V_I8, V_U16, V_I16, V_U32, V_I32, V_F32, V_BOOL, V_STR, V_ARR, V_U64, V_I64, V_F64 };
enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8, T_Q4_K = 12,
       T_Q5_K = 13, T_Q6_K = 14, T_I8 = 24, T_BF16 = 30 };

/* our storage type for a ggml type id the engine decodes; CCE_WT_COUNT otherwise */
static cce_wtype wt_of(uint32_t type) {
    switch (type) {
    case T_F32: return CCE_WT_F32;   case T_F16: return CCE_WT_F16;   case T_BF16: return CCE_WT_BF16;
    case T_Q8_0: return CCE_WT_Q8_0; case T_Q4_0: return CCE_WT_Q4_0; case T_Q4_1: return CCE_WT_Q4_1;
    case T_Q5_0: return CCE_WT_Q5_0; case T_Q5_1: return CCE_WT_Q5_1; case T_Q4_K: return CCE_WT_Q4_K;
    case T_Q5_K: return CCE_WT_Q5_K; case T_Q6_K: return CCE_WT_Q6_K;
    default: return CCE_WT_COUNT;
    }
}


typedef struct {
    char key[96];
    uint32_t type;
    uint64_t u;                 // integer / bool values
    double f;                   // float values
    const char *s;              // string value
    uint32_t arr_type;          // arrays
    size_t arr_n;
    const void *arr;            // (arr_n) values; const char ** for strings
} gkv;

typedef struct {
    char name[200];
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
    uint8_t *data;              // owned
    size_t nbytes;
    float *expect;              // owned, (n_elem) what the loader must produce
} gten;

typedef struct {
    uint32_t version;
    uint32_t alignment;         // used for layout; the key is written only if kv has it
    gkv kv[48];
    int n_kv;
    gten t[64];
    int n_t;
} gspec;

static void gs_free(gspec *g) {
    for (int i = 0; i < g->n_t; i++) { free(g->t[i].data); free(g->t[i].expect); }
    g->n_t = 0;
}

static gkv *kv_add(gspec *g, const char *key, uint32_t type) {
    gkv *k = &g->kv[g->n_kv++];
    memset(k, 0, sizeof *k);
    snprintf(k->key, sizeof k->key, "%s", key);
    k->type = type;
    return k;
}
static void kv_u32(gspec *g, const char *key, uint32_t v) { kv_add(g, key, V_U32)->u = v; }
static void kv_f32(gspec *g, const char *key, double v) { kv_add(g, key, V_F32)->f = v; }
static void kv_str(gspec *g, const char *key, const char *s) { kv_add(g, key, V_STR)->s = s; }
static void kv_arr(gspec *g, const char *key, uint32_t et, size_t n, const void *a) {
    gkv *k = kv_add(g, key, V_ARR);
    k->arr_type = et; k->arr_n = n; k->arr = a;
}
static gkv *kv_find(gspec *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++) if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}
static void kv_del(gspec *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) { memmove(&g->kv[i], &g->kv[i + 1], (size_t)(g->n_kv - i - 1) * sizeof g->kv[0]); g->n_kv--; return; }
}

static const uint8_t vsize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static void put_scalar(tbuf *t, uint32_t type, uint64_t u, double f, const char *s) {
    if (type == V_STR) { tb_str(t, s); return; }
    if (type == V_F32) { float x = (float)f; tb_put(t, &x, 4); return; }
    if (type == V_F64) { tb_put(t, &f, 8); return; }
    tb_put(t, &u, vsize[type]);  // little-endian host
}

/* Exact encoders for values with few significant bits (the test's own, independent of util.c). */
static uint16_t enc_f16(float f) {
    if (f == 0) return signbit(f) ? 0x8000 : 0;
    uint16_t s = f < 0 ? 0x8000 : 0;
    int e;
    float m = frexpf(fabsf(f), &e);  // |f| = m 2^e, m in [0.5, 1)
    return (uint16_t)(s | (uint16_t)(e - 1 + 15) << 10 | (uint16_t)((2 * m - 1) * 1024));
}
static uint16_t enc_bf16(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)(u >> 16); }

/* Encode t->expect (n floats, rows of t->ne[0]) with the engine's encoder and replace expect by
 * what the independent decoder of tests/unit/quant_ref.h reads back from those bytes. */
static void encode_quantized(gten *t, size_t n) {
    cce_wtype wt = wt_of(t->type);
    t->nbytes = cce_wtype_row_bytes(wt, (int64_t)n);
    t->data = malloc(t->nbytes);
    cce_err e = {{0}};
    if (cce_quantize(wt, t->expect, t->data, (int64_t)n, &e)) { fprintf(stderr, "quantize: %s\n", e.msg); abort(); }
    qr_decode((int)t->type, t->data, t->expect, (long)n);
}

/* Add a tensor with GGUF dims ne (ne0 first); values multiples of 1/8 in [-2, 2] from seed,
 * encoded exactly in type. */
static gten *ten_add(gspec *g, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1, uint32_t seed) {
    gten *t = &g->t[g->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0; t->ne[1] = ne1 ? ne1 : 1; t->ne[2] = t->ne[3] = 1;
    t->type = type;
    size_t n = (size_t)(ne0 * t->ne[1]);
    t->expect = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) t->expect[i] = (float)((int)((i * 7 + seed * 13 + i / 5) % 33) - 16) / 8.0f;
    if (type == T_F32) {
        t->nbytes = n * 4;
        t->data = malloc(t->nbytes);
        memcpy(t->data, t->expect, t->nbytes);
    } else if (type == T_F16 || type == T_BF16) {
        t->nbytes = n * 2;
        t->data = malloc(t->nbytes);
        for (size_t i = 0; i < n; i++) {
            uint16_t h = type == T_F16 ? enc_f16(t->expect[i]) : enc_bf16(t->expect[i]);
            memcpy(t->data + 2 * i, &h, 2);
        }
    } else if (type == T_Q8_0) {  // d = 1/8 (f16 0x3000), q = 8 v
        t->nbytes = n / 32 * 34;
        t->data = malloc(t->nbytes);
        for (size_t b = 0; b < n / 32; b++) {
            uint16_t d = 0x3000;
            memcpy(t->data + 34 * b, &d, 2);
            for (int i = 0; i < 32; i++) t->data[34 * b + 2 + i] = (uint8_t)(int8_t)lrintf(8 * t->expect[32 * b + i]);
        }
    } else if (wt_of(type) != CCE_WT_COUNT) {  // other block types: the expected values are decoded independently
        encode_quantized(t, n);
    } else {  // I8: only listed or refused, never decoded
        t->nbytes = n;
        t->data = calloc(1, t->nbytes ? t->nbytes : 1);
    }
    return t;
}

/* Replace tensor `name` by one of another shape (F32), keeping its place in the file. */
static void ten_reshape(gspec *g, const char *name, uint64_t ne0, uint64_t ne1) {
    for (int i = 0; i < g->n_t; i++) {
        if (strcmp(g->t[i].name, name)) continue;
        gten *n = ten_add(g, name, T_F32, ne0, ne1, 99);
        free(g->t[i].data);
        free(g->t[i].expect);
        g->t[i] = *n;
        g->n_t--;
        return;
    }
}

static gten *ten_find(gspec *g, const char *name) {
    for (int i = 0; i < g->n_t; i++) if (!strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}
static void ten_del(gspec *g, const char *name) {
    for (int i = 0; i < g->n_t; i++)
        if (!strcmp(g->t[i].name, name)) {
            free(g->t[i].data); free(g->t[i].expect);
            memmove(&g->t[i], &g->t[i + 1], (size_t)(g->n_t - i - 1) * sizeof g->t[0]);
            g->n_t--;
            return;
        }
}

/* Add a tensor holding src (ne0*ne1 floats) encoded in type; expect = what decoding must give.
 * F16/BF16 round with util.c's encoders; Q8_0 uses a power-of-two scale per block, so the
 * decoded value d*q is exact and known without any f16 arithmetic. */
static gten *ten_add_data(gspec *g, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1, const float *src) {
    gten *t = ten_add(g, name, type, ne0, ne1, 0);
    size_t n = (size_t)(ne0 * t->ne[1]);
    for (size_t i = 0; i < n; i++) {
        if (type == T_F32) {
            t->expect[i] = src[i];
            memcpy(t->data + 4 * i, &src[i], 4);
        } else if (type == T_F16 || type == T_BF16) {
            uint16_t h = type == T_F16 ? cce_f32_to_f16(src[i]) : cce_f32_to_bf16(src[i]);
            t->expect[i] = type == T_F16 ? cce_f16_to_f32(h) : cce_bf16_to_f32(h);
            memcpy(t->data + 2 * i, &h, 2);
        }
    }
    if (type != T_F32 && type != T_F16 && type != T_BF16 && type != T_Q8_0) {
        free(t->data);
        memcpy(t->expect, src, n * sizeof(float));
        encode_quantized(t, n);
    }
    if (type == T_Q8_0) {
        for (size_t b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(src[32 * b + i]));
            int e = amax > 0 ? (int)ceil(log2(amax / 127.0)) : -24;
            if (e < -24) e = -24;
            float d = ldexpf(1.0f, e);
            uint16_t h = enc_f16(d);
            if (e < -14) h = (uint16_t)(1u << (e + 24));  // subnormal f16: 2^e = k * 2^-24
            memcpy(t->data + 34 * b, &h, 2);
            for (int i = 0; i < 32; i++) {
                long q = lrintf(src[32 * b + i] / d);
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                t->data[34 * b + 2 + i] = (uint8_t)(int8_t)q;
                t->expect[32 * b + i] = d * (float)q;
            }
        }
    }
    return t;
}

/* A GGUF copy of a loaded llama model with every matrix in type (norms F32). */
static void gs_from_model(gspec *g, const cce_model *m, uint32_t type) {
    const cce_config *c = &m->cfg;
    memset(g, 0, sizeof *g);
    g->version = 3;
    g->alignment = 32;
    kv_str(g, "general.architecture", "llama");
    kv_u32(g, "llama.context_length", (uint32_t)c->seq_len);
    kv_u32(g, "llama.embedding_length", (uint32_t)c->dim);
    kv_u32(g, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    kv_u32(g, "llama.block_count", (uint32_t)c->n_layers);
    kv_u32(g, "llama.attention.head_count", (uint32_t)c->n_heads);
    kv_u32(g, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    kv_f32(g, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    uint64_t D = (uint64_t)c->dim, Q = (uint64_t)(c->n_heads * c->head_dim), KV = (uint64_t)(c->n_kv_heads * c->head_dim),
             H = (uint64_t)c->hidden_dim;
    ten_add_data(g, "token_embd.weight", type, D, (uint64_t)c->vocab_size, m->tok_emb.w);
    ten_add_data(g, "output_norm.weight", T_F32, D, 0, m->final_norm);
    for (int l = 0; l < c->n_layers; l++) {
        const cce_layer *L = &m->layers[l];
        char n[96];
#define T(suffix, ty, a, b, src) do { snprintf(n, sizeof n, "blk.%d.%s.weight", l, suffix); ten_add_data(g, n, ty, a, b, src); } while (0)
        T("attn_norm", T_F32, D, 0, L->attn_norm);
        T("attn_q", type, D, Q, L->wq.w);
        T("attn_k", type, D, KV, L->wk.w);
        T("attn_v", type, D, KV, L->wv.w);
        T("attn_output", type, Q, D, L->wo.w);
        T("ffn_norm", T_F32, D, 0, L->ffn_norm);
        T("ffn_gate", type, D, H, L->w1.w);
        T("ffn_up", type, D, H, L->w3.w);
        T("ffn_down", type, H, D, L->w2.w);
#undef T
    }
}

/* Serialise g into t (fresh), recording labels. */
static void gs_write(const gspec *g, tbuf *t) {
    t->n = 0;
    n_labels = 0;
    tb_put(t, "GGUF", 4);
    lab("version", "", "", t->n); tb_u32(t, g->version);
    lab("n_tensors", "", "", t->n); tb_u64(t, (uint64_t)g->n_t);
    lab("n_kv", "", "", t->n); tb_u64(t, (uint64_t)g->n_kv);
    for (int i = 0; i < g->n_kv; i++) {
        const gkv *k = &g->kv[i];
        lab("kv:", k->key, ":keylen", t->n); tb_str(t, k->key);
        lab("kv:", k->key, ":type", t->n); tb_u32(t, k->type);
        if (k->type == V_ARR) {
            lab("kv:", k->key, ":arrtype", t->n); tb_u32(t, k->arr_type);
            lab("kv:", k->key, ":arrn", t->n); tb_u64(t, k->arr_n);
            for (size_t j = 0; j < k->arr_n; j++) {
                if (k->arr_type == V_STR) tb_str(t, ((const char *const *)k->arr)[j]);
                else tb_put(t, (const uint8_t *)k->arr + j * vsize[k->arr_type], vsize[k->arr_type]);
            }
        } else {
            lab("kv:", k->key, ":value", t->n);
            put_scalar(t, k->type, k->u, k->f, k->s);
        }
    }
    uint64_t a = g->alignment, off = 0;
    for (int i = 0; i < g->n_t; i++) {
        const gten *x = &g->t[i];
        lab("t:", x->name, ":namelen", t->n); tb_str(t, x->name);
        lab("t:", x->name, ":ndims", t->n); tb_u32(t, x->n_dims);
        for (uint32_t d = 0; d < x->n_dims; d++) {
            char s[16];
            snprintf(s, sizeof s, ":ne%u", d);
            lab("t:", x->name, s, t->n); tb_u64(t, x->ne[d]);
        }
        lab("t:", x->name, ":type", t->n); tb_u32(t, x->type);
        lab("t:", x->name, ":offset", t->n); tb_u64(t, off);
        off = (off + x->nbytes + a - 1) / a * a;
    }
    while (t->n % a) tb_put(t, "", 1);
    lab("data", "", "", t->n);
    for (int i = 0; i < g->n_t; i++) {
        size_t start = t->n;
        tb_put(t, g->t[i].data, g->t[i].nbytes);
        while ((t->n - start) % a) tb_put(t, "", 1);
    }
}

static const char *tmp_path(const char *name) {
    static char p[8][600];
    static int k;
    char *r = p[k++ & 7];
    snprintf(r, sizeof p[0], "%s/%s", harness_tmpdir(), name);
    return r;
}
static int file_write(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    if (n && fwrite(p, 1, n, f) != n) { fclose(f); return -1; }
    return fclose(f);
}

/* ---- a small llama model ---- */

typedef struct { int dim, hidden, layers, heads, kv_heads, vocab; } tcfg;
static const tcfg SMALL = {32, 64, 2, 4, 2, 16};

/* A toy SentencePiece vocabulary: " ab" encodes as "▁" "a" "b" -> "▁a" "b" -> "▁ab" (id 7). */
static const char *tok_pieces[16] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a",
                                     "\xe2\x96\x81" "ab", "c", "d", "e", "f", "g", "h", "i", "j"};
static const float tok_scores[16] = {0, 0, 0, -1, -2, -3, -1, -0.5f, -4, -5, -6, -7, -8, -9, -10, -11};
static const int32_t tok_types[16] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

/* mat: type of the weight matrices (embedding included); norms are F32. tok_model: NULL for none. */
static void gs_llama(gspec *g, tcfg c, uint32_t mat, int with_output, const char *tok_model) {
    memset(g, 0, sizeof *g);
    g->version = 3;
    g->alignment = 32;
    int hd = c.dim / c.heads;
    kv_str(g, "general.architecture", "llama");
    kv_str(g, "general.name", "test");
    kv_u32(g, "llama.context_length", 128);
    kv_u32(g, "llama.embedding_length", (uint32_t)c.dim);
    kv_u32(g, "llama.feed_forward_length", (uint32_t)c.hidden);
    kv_u32(g, "llama.block_count", (uint32_t)c.layers);
    kv_u32(g, "llama.attention.head_count", (uint32_t)c.heads);
    kv_u32(g, "llama.attention.head_count_kv", (uint32_t)c.kv_heads);
    kv_u32(g, "llama.rope.dimension_count", (uint32_t)hd);
    kv_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-6);
    kv_f32(g, "llama.rope.freq_base", 500000.0);
    if (tok_model) {
        kv_str(g, "tokenizer.ggml.model", tok_model);
        kv_arr(g, "tokenizer.ggml.tokens", V_STR, (size_t)c.vocab, tok_pieces);
        kv_arr(g, "tokenizer.ggml.scores", V_F32, (size_t)c.vocab, tok_scores);
        kv_arr(g, "tokenizer.ggml.token_type", V_I32, (size_t)c.vocab, tok_types);
        kv_u32(g, "tokenizer.ggml.bos_token_id", 1);
        kv_u32(g, "tokenizer.ggml.eos_token_id", 2);
        kv_u32(g, "tokenizer.ggml.unknown_token_id", 0);
    }
    uint32_t seed = 1;
    uint64_t D = (uint64_t)c.dim, Q = (uint64_t)(c.heads * hd), KV = (uint64_t)(c.kv_heads * hd), H = (uint64_t)c.hidden;
    ten_add(g, "token_embd.weight", mat, D, (uint64_t)c.vocab, seed++);
    ten_add(g, "output_norm.weight", T_F32, D, 0, seed++);
    if (with_output) ten_add(g, "output.weight", mat, D, (uint64_t)c.vocab, seed++);
    for (int l = 0; l < c.layers; l++) {
        char n[96];
#define T(suffix, type, a, b) do { snprintf(n, sizeof n, "blk.%d.%s.weight", l, suffix); ten_add(g, n, type, a, b, seed++); } while (0)
        T("attn_norm", T_F32, D, 0);
        T("attn_q", mat, D, Q);
        T("attn_k", mat, D, KV);
        T("attn_v", mat, D, KV);
        T("attn_output", mat, Q, D);
        T("ffn_norm", T_F32, D, 0);
        T("ffn_gate", mat, D, H);
        T("ffn_up", mat, D, H);
        T("ffn_down", mat, H, D);
#undef T
    }
}

static tbuf TB;  // shared scratch buffer

static const char *gs_file(const gspec *g, const char *name) {
    gs_write(g, &TB);
    const char *p = tmp_path(name);
    return file_write(p, TB.b, TB.n) ? NULL : p;
}

/* A dense weight decoded to f32 into buf (weights stay in their stored type in the model). */
static const float *decoded(const cce_linear *l, float *buf) {
    if (!l->w) return NULL;
    cce_linear_rows(l, 0, l->out, buf);
    return buf;
}

/* The model's tensor for a GGUF name as f32 (weights decoded into buf, which holds the largest
 * tensor), or NULL. */
static const float *model_tensor(const cce_model *m, const char *name, float *buf) {
    int l;
    char s[64];
    if (!strcmp(name, "token_embd.weight")) return decoded(&m->tok_emb, buf);
    if (!strcmp(name, "output_norm.weight")) return m->final_norm;
    if (!strcmp(name, "output.weight")) return decoded(&m->lm_head, buf);
    if (sscanf(name, "blk.%d.%63[a-z_]", &l, s) != 2 || l < 0 || l >= m->cfg.n_layers) return NULL;
    const cce_layer *L = &m->layers[l];
    if (!strcmp(s, "attn_norm")) return L->attn_norm;
    if (!strcmp(s, "ffn_norm")) return L->ffn_norm;
    if (!strcmp(s, "attn_q")) return decoded(&L->wq, buf);
    if (!strcmp(s, "attn_k")) return decoded(&L->wk, buf);
    if (!strcmp(s, "attn_v")) return decoded(&L->wv, buf);
    if (!strcmp(s, "attn_output")) return decoded(&L->wo, buf);
    if (!strcmp(s, "ffn_gate")) return decoded(&L->w1, buf);
    if (!strcmp(s, "ffn_up")) return decoded(&L->w3, buf);
    if (!strcmp(s, "ffn_down")) return decoded(&L->w2, buf);
    return NULL;
}

/* Expect load and list to fail with a message naming the file; list_ok: the listing succeeds
 * (a well-formed file the llama loader refuses). */
static int expect_fail(const char *path, int list_ok, cce_status want, char *why, size_t cap) {
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    cce_err e = {{0}};
    cce_status s = cce_load_gguf(path, &m, &tok, &e);
    if (s == CCE_OK) { snprintf(why, cap, "load succeeded"); cce_model_free(m); if (tok) cce_tokenizer_free(tok); return 0; }
    if (m || tok) { snprintf(why, cap, "outputs set on failure"); return 0; }
    if (!strstr(e.msg, path)) { snprintf(why, cap, "load error does not name the file: %s", e.msg); return 0; }
    if (want != CCE_OK && s != want) { snprintf(why, cap, "status %d, want %d: %s", (int)s, (int)want, e.msg); return 0; }
    cce_gguf_tensor *ts = NULL;
    int n = 0;
    char arch[32];
    cce_err e2 = {{0}};
    s = cce_gguf_list(path, &ts, &n, arch, sizeof arch, &e2);
    cce_free(ts);
    if (list_ok && s != CCE_OK) { snprintf(why, cap, "listing failed: %s", e2.msg); return 0; }
    if (!list_ok && s == CCE_OK) { snprintf(why, cap, "listing succeeded (load said: %s)", e.msg); return 0; }
    if (!list_ok && !strstr(e2.msg, path)) { snprintf(why, cap, "list error does not name the file: %s", e2.msg); return 0; }
    snprintf(why, cap, "%s", e.msg);
    return 1;
}

#define CHECK_FAIL(path, list_ok, want) do { \
        char why_[700]; const char *p_ = (path); \
        CHECK_MSG(p_ != NULL, "could not write the test file"); \
        CHECK_MSG(expect_fail(p_, (list_ok), (want), why_, sizeof why_), "%.300s: %.600s", p_, why_); \
    } while (0)

/* The same, and the message must say what is wrong (so the intended check fired). */
#define CHECK_FAIL_HAS(path, list_ok, want, substr) do { \
        char why_[700]; const char *p_ = (path); \
        CHECK_MSG(p_ != NULL, "could not write the test file"); \
        CHECK_MSG(expect_fail(p_, (list_ok), (want), why_, sizeof why_), "%.300s: %.600s", p_, why_); \
        CHECK_MSG(strstr(why_, (substr)) != NULL, "expected \"%s\" in: %.600s", (substr), why_); \
    } while (0)

/* Patch an n-byte little-endian field at a label of the last written file and write it out. */
static const char *patched(const char *label, int n, uint64_t v) {
    long pos = lab_pos(label);
    if (pos < 0 || (size_t)pos + (size_t)n > TB.n) return NULL;
    uint8_t *copy = malloc(TB.n);
    memcpy(copy, TB.b, TB.n);
    memcpy(copy + pos, &v, (size_t)n);
    const char *p = tmp_path("patched.gguf");
    int rc = file_write(p, copy, TB.n);
    free(copy);
    return rc ? NULL : p;
}

/* ---- tests ---- */

TEST(real_stories260k) {
    const char *gpath = harness_data("gguf/stories260K.gguf");
    const char *lpath = harness_data("llama2c/stories260K.bin");
    if (!harness_have(gpath) || !harness_have(lpath)) FAILF("missing %s or %s", gpath, lpath);
    cce_model *g = NULL, *l = NULL;
    cce_err err = {{0}};
    cce_status st = cce_load_gguf(gpath, &g, NULL, &err);
    CHECK_MSG(st == CCE_OK, "gguf load failed: %s", err.msg);
    st = cce_load_llama2c(lpath, &l, &err);
    CHECK_MSG(st == CCE_OK, "llama2c load failed: %s", err.msg);
    CHECK_EQ_INT(g->format, CCE_FMT_GGUF);
    CHECK_EQ_INT(g->cfg.dim, 64);
    CHECK_EQ_INT(g->cfg.hidden_dim, 172);
    CHECK_EQ_INT(g->cfg.n_layers, 5);
    CHECK_EQ_INT(g->cfg.n_heads, 8);
    CHECK_EQ_INT(g->cfg.n_kv_heads, 4);
    CHECK_EQ_INT(g->cfg.head_dim, 8);
    CHECK_EQ_INT(g->cfg.vocab_size, 512);
    CHECK_EQ_INT(g->cfg.seq_len, 2048);
    CHECK_EQ_INT(g->cfg.rope_interleaved, 1);
    CHECK_EQ_INT(g->cfg.bos_id, 1);
    CHECK_EQ_INT(g->cfg.eos_id, 2);
    CHECK_NEAR(g->cfg.norm_eps, 1e-5, 1e-12);
    CHECK_NEAR(g->cfg.rope_theta, 10000, 0);
    /* output.weight is stored but equals the embedding: the loader recognises it as tied. */
    CHECK_EQ_INT(g->cfg.tied, 1);
    CHECK(g->lm_head.w == g->tok_emb.w);
    CHECK_EQ_INT(cce_model_params(g).total, 260032);
    /* every tensor bit-identical to the llama2.c checkpoint */
    size_t d = 64, h = 172, kv = 32;
    CHECK(memcmp(g->tok_emb.w, l->tok_emb.w, 512 * d * 4) == 0);
    CHECK(memcmp(g->final_norm, l->final_norm, d * 4) == 0);
    for (int i = 0; i < 5; i++) {
        const cce_layer *a = &g->layers[i], *b = &l->layers[i];
        CHECK_MSG(memcmp(a->attn_norm, b->attn_norm, d * 4) == 0 && memcmp(a->ffn_norm, b->ffn_norm, d * 4) == 0,
                  "layer %d norms differ", i);
        CHECK_MSG(memcmp(a->wq.w, b->wq.w, d * d * 4) == 0, "layer %d wq differs", i);
        CHECK_MSG(memcmp(a->wk.w, b->wk.w, kv * d * 4) == 0, "layer %d wk differs", i);
        CHECK_MSG(memcmp(a->wv.w, b->wv.w, kv * d * 4) == 0, "layer %d wv differs", i);
        CHECK_MSG(memcmp(a->wo.w, b->wo.w, d * d * 4) == 0, "layer %d wo differs", i);
        CHECK_MSG(memcmp(a->w1.w, b->w1.w, h * d * 4) == 0, "layer %d w1 differs", i);
        CHECK_MSG(memcmp(a->w2.w, b->w2.w, h * d * 4) == 0, "layer %d w2 differs", i);
        CHECK_MSG(memcmp(a->w3.w, b->w3.w, h * d * 4) == 0, "layer %d w3 differs", i);
    }
    cce_model_free(g);
    cce_model_free(l);
}

/* Same weights, same config where it matters: the reference forward gives identical logits. */
TEST(real_forward_matches_llama2c) {
    cce_model *g = NULL, *l = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_gguf(harness_data("gguf/stories260K.gguf"), &g, NULL, &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_load_llama2c(harness_data("llama2c/stories260K.bin"), &l, &err) == CCE_OK, "%s", err.msg);
    int ids[5] = {1, 403, 407, 261, 378};
    float *a = malloc(5 * 512 * sizeof(float)), *b = malloc(5 * 512 * sizeof(float));  // (T, vocab)
    CHECK(a && b);
    CHECK_MSG(cce_ref_forward(g, ids, 5, a, NULL, NULL, &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_ref_forward(l, ids, 5, b, NULL, NULL, &err) == CCE_OK, "%s", err.msg);
    double maxdiff = 0;
    int argmax = 0;
    for (int i = 0; i < 5 * 512; i++) maxdiff = fmax(maxdiff, fabs((double)a[i] - b[i]));
    for (int i = 1; i < 512; i++) if (a[4 * 512 + i] > a[4 * 512 + argmax]) argmax = i;
    free(a);
    free(b);
    cce_model_free(g);
    cce_model_free(l);
    CHECK_MSG(maxdiff == 0, "max |logit difference| %.3g", maxdiff);
    CHECK_EQ_INT(argmax, 432);  // the documented greedy continuation after "Once upon a time"
}

/* tinystories_2m5 (all widths multiples of 32) re-encoded as F16, BF16 and Q8_0 GGUF: every
 * tensor decodes to exactly the expected values, and the model's predictions barely move. */
static void check_real_requant(uint32_t type, double max_logit_diff, double max_nll_diff) {
    const char *lpath = harness_data("llama2c/tinystories_2m5.bin");
    cce_model *l = NULL, *g = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_llama2c(lpath, &l, &err) == CCE_OK, "%s", err.msg);
    gspec gs;
    gs_from_model(&gs, l, type);
    const char *path = gs_file(&gs, "requant.gguf");
    cce_status st = cce_load_gguf(path, &g, NULL, &err);
    if (st != CCE_OK) { gs_free(&gs); cce_model_free(l); FAILF("load: %s", err.msg); }
    int bad = -1;
    float *buf = malloc(512 * 192 * sizeof(float));   // the largest tensor: the embedding (vocab, dim)
    for (int i = 0; i < gs.n_t && bad < 0; i++) {
        const float *x = model_tensor(g, gs.t[i].name, buf);
        if (!x || memcmp(x, gs.t[i].expect, (size_t)(gs.t[i].ne[0] * gs.t[i].ne[1]) * 4)) bad = i;
    }
    free(buf);
    char badname[200] = "";
    if (bad >= 0) snprintf(badname, sizeof badname, "%s", gs.t[bad].name);
    gs_free(&gs);
    /* the 25 greedy ids from SOURCES.md: logits and mean NLL of the sequence */
    int ids[25] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
                   401, 396, 267, 337, 335, 311, 267, 422};
    float *a = malloc(25 * 512 * sizeof(float)), *b = malloc(25 * 512 * sizeof(float));  // (T, vocab)
    double maxdiff = 0, nll[2] = {0, 0};
    int same_argmax = 1;
    st = cce_ref_forward(l, ids, 25, a, NULL, NULL, &err);
    if (!st) st = cce_ref_forward(g, ids, 25, b, NULL, NULL, &err);
    for (int t = 0; !st && t < 25; t++) {
        const float *rows[2] = {a + t * 512, b + t * 512};
        int am[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            double mx = rows[k][0], z = 0;
            for (int v = 1; v < 512; v++) if (rows[k][v] > rows[k][am[k]]) am[k] = v;
            mx = rows[k][am[k]];
            for (int v = 0; v < 512; v++) z += exp(rows[k][v] - mx);
            if (t < 24) nll[k] += -(rows[k][ids[t + 1]] - mx - log(z)) / 24;
        }
        same_argmax &= am[0] == am[1];
        for (int v = 0; v < 512; v++) maxdiff = fmax(maxdiff, fabs((double)rows[0][v] - rows[1][v]));
    }
    free(a);
    free(b);
    cce_model_free(l);
    cce_model_free(g);
    CHECK_MSG(st == CCE_OK, "forward: %s", err.msg);
    CHECK_MSG(bad < 0, "tensor %s decodes differently from what was written", badname);
    printf("# %s: max |logit diff| %.4g, mean NLL %.5f vs f32 %.5f, same greedy argmax: %s\n",
           type == T_F16 ? "F16" : type == T_BF16 ? "BF16" : "Q8_0", maxdiff, nll[1], nll[0], same_argmax ? "yes" : "no");
    CHECK_MSG(maxdiff <= max_logit_diff, "max |logit diff| %.4g > %.4g", maxdiff, max_logit_diff);
    CHECK_MSG(fabs(nll[1] - nll[0]) <= max_nll_diff, "NLL %.5f vs %.5f", nll[1], nll[0]);
    CHECK_MSG(same_argmax, "greedy predictions changed");
}

/* Measured: F16 0.0029 / 1e-5, BF16 0.024 / 3e-4, Q8_0 0.098 / 8e-4 (logits / NLL); bounds ~5x. */
TEST(real_requant_f16) { check_real_requant(T_F16, 0.015, 1e-4); }
TEST(real_requant_bf16) { check_real_requant(T_BF16, 0.12, 2e-3); }
TEST(real_requant_q8_0) { check_real_requant(T_Q8_0, 0.5, 5e-3); }

TEST(real_stories260k_tokenizer) {
    const char *gpath = harness_data("gguf/stories260K.gguf");
    cce_model *g = NULL;
    cce_tokenizer *tok = NULL;
    cce_err err = {{0}};
    cce_status st = cce_load_gguf(gpath, &g, &tok, &err);
    CHECK_MSG(st == CCE_OK, "gguf load failed: %s", err.msg);
    CHECK(tok != NULL);
    CHECK_EQ_INT(cce_tokenizer_vocab_size(tok), 512);
    CHECK_EQ_INT(cce_tokenizer_bos(tok), 1);
    CHECK_EQ_INT(cce_tokenizer_eos(tok), 2);
    int *ids = NULL;
    size_t n = 0;
    st = cce_tokenizer_encode(tok, "Once upon a time", 16, 1, &ids, &n, &err);
    CHECK_MSG(st == CCE_OK, "encode failed: %s", err.msg);
    int want[] = {1, 403, 407, 261, 378};
    CHECK_EQ_INT(n, 5);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(ids[i], want[i]);
    cce_free(ids);
    cce_tokenizer_free(tok);
    cce_model_free(g);
}

TEST(real_list) {
    const char *gpath = harness_data("gguf/stories260K.gguf");
    cce_gguf_tensor *ts = NULL;
    int n = 0;
    char arch[32];
    cce_err err = {{0}};
    cce_status st = cce_gguf_list(gpath, &ts, &n, arch, sizeof arch, &err);
    CHECK_MSG(st == CCE_OK, "list failed: %s", err.msg);
    CHECK_EQ_INT(n, 48);
    CHECK_STR(arch, "llama");
    uint64_t min_off = UINT64_MAX, total = 0;
    int found = 0;
    for (int i = 0; i < n; i++) {
        CHECK_STR(ts[i].dtype, "F32");
        if (ts[i].offset < min_off) min_off = ts[i].offset;
        total += ts[i].nbytes;
        if (!strcmp(ts[i].name, "token_embd.weight")) {
            found = 1;
            CHECK_EQ_INT(ts[i].n_dims, 2);
            CHECK_EQ_INT(ts[i].shape[0], 64);
            CHECK_EQ_INT(ts[i].shape[1], 512);
            CHECK_EQ_INT(ts[i].nbytes, 64 * 512 * 4);
        }
    }
    CHECK(found);
    CHECK_EQ_INT(min_off, 14176);
    CHECK_EQ_INT(total, (260032 + 32768) * 4);  // output.weight is stored too
    cce_free(ts);
}

/* Max |logit| difference of the fast batched forward pass against cce_ref_forward on T tokens
 * (ids i*7 mod vocab), relative to the largest |logit| when that exceeds 1 (the synthetic
 * weights of the wide k-quant models give logits in the hundreds); INFINITY (message in err)
 * on failure. */
static double fast_vs_ref(const cce_model *m, int T, cce_err *err) {
    int V = m->cfg.vocab_size;
    int *ids = malloc((size_t)T * sizeof *ids);
    float *h = malloc((size_t)T * m->cfg.dim * sizeof(float));   // (T, dim)
    float *lf = malloc((size_t)T * V * sizeof(float)), *lr = malloc((size_t)T * V * sizeof(float));  // (T, V)
    cce_fwd *f = NULL;
    double d = INFINITY;
    for (int i = 0; i < T; i++) ids[i] = (i * 7 + 1) % V;
    if (cce_fwd_new(m, T, T, &f, err) || cce_fwd_embed(f, ids, 1, T, h, err)) goto out;
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (cce_fwd_block(f, l, h, 1, T, NULL, NULL, err)) goto out;
    if (cce_fwd_logits(f, h, T, lf, err) || cce_ref_forward(m, ids, T, lr, NULL, NULL, err)) goto out;
    d = 0;
    double mag = 1;
    for (size_t i = 0; i < (size_t)T * V; i++) {
        double x = fabs((double)lf[i] - lr[i]);
        if (!(x <= d)) d = x;   // NaN propagates
        mag = fmax(mag, fabs(lr[i]));
    }
    d /= mag;
out:
    cce_fwd_free(f);
    free(ids); free(h); free(lf); free(lr);
    return d;
}

/* 1 if every stored (non-F32) weight matrix of m points into its mapped file. */
static int weights_in_map(const cce_model *m) {
    if (m->n_maps != 1) return 0;
    const uint8_t *lo = m->maps[0].data, *hi = lo + m->maps[0].len;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < CCE_LIN_COUNT; k++) {
            const cce_linear *x = cce_layer_lin_c(&m->layers[l], k);
            if (x->w && x->wt != CCE_WT_F32 && ((const uint8_t *)x->w < lo || (const uint8_t *)x->w >= hi)) return 0;
        }
    return m->tok_emb.wt == CCE_WT_F32 || ((const uint8_t *)m->tok_emb.w >= lo && (const uint8_t *)m->tok_emb.w < hi);
}

/* A shape whose rows are whole 256-element super-blocks (k-quants). */
static const tcfg KSMALL = {256, 512, 2, 4, 2, 16};

/* Each dtype loads with exactly the values written (the block types: as decoded by the
 * independent decoder of quant_ref.h from the bytes in the file), stays in the mapping, and
 * runs: fast forward = reference forward; tied when output.weight is absent. */
static void check_dtype(uint32_t type, int with_output, uint32_t alignment) {
    gspec g;
    tcfg c = qr_block((int)type) == 256 ? KSMALL : SMALL;
    gs_llama(&g, c, type, with_output, NULL);
    g.alignment = alignment;
    if (alignment != 32) kv_u32(&g, "general.alignment", alignment);
    const char *path = gs_file(&g, "dtype.gguf");
    CHECK(path != NULL);
    cce_model *m = NULL;
    cce_err err = {{0}};
    cce_status st = cce_load_gguf(path, &m, NULL, &err);
    if (st != CCE_OK) { gs_free(&g); FAILF("load failed: %s", err.msg); }
    int bad = 0;
    char badname[96] = "";
    float *buf = malloc((size_t)c.hidden * c.dim * sizeof(float));   // the largest tensor
    for (int i = 0; i < g.n_t && !bad; i++) {
        const float *x = model_tensor(m, g.t[i].name, buf);
        size_t n = (size_t)(g.t[i].ne[0] * g.t[i].ne[1]);
        if (!x || memcmp(x, g.t[i].expect, n * 4)) { bad = 1; snprintf(badname, sizeof badname, "%s", g.t[i].name); }
    }
    free(buf);
    gs_free(&g);
    double fd = fast_vs_ref(m, 9, &err);
    int mapped = weights_in_map(m);
    CHECK_EQ_INT(m->cfg.tied, !with_output);
    CHECK_EQ_INT(m->cfg.n_kv_heads, 2);
    CHECK_EQ_INT(m->cfg.head_dim, c.dim / c.heads);
    CHECK_EQ_INT(m->cfg.seq_len, 128);
    CHECK_NEAR(m->cfg.rope_theta, 500000, 0);
    CHECK_NEAR(m->cfg.norm_eps, 1e-6, 1e-12);
    CHECK_EQ_INT(m->cfg.bos_id, -1);  // no tokenizer metadata
    CHECK_EQ_INT(m->layers[0].wq.wt, wt_of(type));
    if (!with_output) CHECK(m->lm_head.w == m->tok_emb.w);
    cce_model_free(m);
    CHECK_MSG(!bad, "tensor %s differs from the values written", badname);
    CHECK_MSG(mapped, "a stored weight was copied out of the mapping");
    CHECK_MSG(fd < 1e-4, "fast vs reference forward: max |logit diff| %.3g (%s)", fd, err.msg);
}

TEST(dtype_f32) { check_dtype(T_F32, 1, 32); }
TEST(dtype_f32_tied) { check_dtype(T_F32, 0, 32); }
TEST(dtype_f32_align1) { check_dtype(T_F32, 1, 1); }   // unaligned f32 data is copied
TEST(dtype_f32_align64) { check_dtype(T_F32, 0, 64); }
TEST(dtype_f16) { check_dtype(T_F16, 1, 32); }
TEST(dtype_bf16) { check_dtype(T_BF16, 0, 32); }
TEST(dtype_q8_0) { check_dtype(T_Q8_0, 1, 32); }
TEST(dtype_q4_0) { check_dtype(T_Q4_0, 1, 32); }
TEST(dtype_q4_1) { check_dtype(T_Q4_1, 0, 32); }
TEST(dtype_q5_0) { check_dtype(T_Q5_0, 1, 32); }
TEST(dtype_q5_1) { check_dtype(T_Q5_1, 0, 1); }   // unaligned block data is read in place
TEST(dtype_q4_k) { check_dtype(T_Q4_K, 1, 32); }
TEST(dtype_q5_k) { check_dtype(T_Q5_K, 0, 32); }
TEST(dtype_q6_k) { check_dtype(T_Q6_K, 1, 32); }

/* Hand-encoded bit patterns decode to known values. */
TEST(known_dequant_values) {
    gspec g;
    static const struct { uint32_t type; uint8_t bytes[8]; float want[2]; } cases[] = {
        {T_F16, {0x00, 0x3c, 0x00, 0xc0}, {1.0f, -2.0f}},
        {T_F16, {0x55, 0x35, 0xff, 0x7b}, {0.333251953125f, 65504.0f}},
        {T_F16, {0x01, 0x00, 0x00, 0x80}, {5.9604644775390625e-8f, -0.0f}},
        {T_BF16, {0x80, 0x3f, 0xa0, 0xc0}, {1.0f, -5.0f}},
        {T_BF16, {0x49, 0x40, 0x80, 0x00}, {3.140625f, 1.1754943508222875e-38f}},
        {T_Q8_0, {0x00, 0x38, 0x03, 0x80}, {1.5f, -64.0f}},      // d = 0.5, q = 3, -128
        {T_Q8_0, {0x00, 0xbc, 0x7f, 0x01}, {-127.0f, -1.0f}},    // d = -1
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gs_llama(&g, SMALL, cases[c].type, 0, NULL);
        memcpy(g.t[0].data, cases[c].bytes, 4);  // token_embd's first bytes
        const char *path = gs_file(&g, "known.gguf");
        cce_model *m = NULL;
        cce_err err = {{0}};
        cce_status st = cce_load_gguf(path, &m, NULL, &err);
        gs_free(&g);
        CHECK_MSG(st == CCE_OK, "case %zu: %s", c, err.msg);
        float row[64];
        cce_linear_rows(&m->tok_emb, 0, 1, row);
        float a = row[0], b = row[1];
        cce_model_free(m);
        CHECK_MSG(a == cases[c].want[0] && b == cases[c].want[1] && signbit(b) == signbit(cases[c].want[1]),
                  "case %zu: got %.9g %.9g, want %.9g %.9g", c, a, b, cases[c].want[0], cases[c].want[1]);
    }
}

TEST(tokenizer_from_metadata) {
    gspec g;
    gs_llama(&g, SMALL, T_F32, 0, "llama");
    const char *path = gs_file(&g, "tok.gguf");
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    cce_err err = {{0}};
    cce_status st = cce_load_gguf(path, &m, &tok, &err);
    gs_free(&g);
    CHECK_MSG(st == CCE_OK, "load failed: %s", err.msg);
    CHECK(tok != NULL);
    CHECK_EQ_INT(cce_tokenizer_vocab_size(tok), 16);
    CHECK_EQ_INT(m->cfg.bos_id, 1);
    CHECK_EQ_INT(m->cfg.eos_id, 2);
    size_t len = 0;
    const char *p = cce_tokenizer_piece(tok, 7, &len);  // "\u2581ab" -> " ab"
    CHECK(p && len == 3 && !memcmp(p, " ab", 3));
    int *ids = NULL;
    size_t n = 0;
    st = cce_tokenizer_encode(tok, "ab", 2, 1, &ids, &n, &err);
    CHECK_MSG(st == CCE_OK, "encode: %s", err.msg);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 7);
    cce_free(ids);
    cce_tokenizer_free(tok);
    cce_model_free(m);
}

TEST(tokenizer_other_models) {
    /* vocabularies of other tokenizer models, and absent tokenizers, load the model with tok = NULL */
    const char *models[] = {"bert", NULL};
    for (int i = 0; i < 2; i++) {
        gspec g;
        gs_llama(&g, SMALL, T_F32, 0, models[i]);
        const char *path = gs_file(&g, "tok_other.gguf");
        cce_model *m = NULL;
        cce_tokenizer *tok = (cce_tokenizer *)&g;  // must be overwritten
        cce_err err = {{0}};
        cce_status st = cce_load_gguf(path, &m, &tok, &err);
        gs_free(&g);
        CHECK_MSG(st == CCE_OK, "load failed: %s", err.msg);
        CHECK(tok == NULL);
        cce_model_free(m);
    }
}

TEST(list_other_arch) {
    gspec g;
    memset(&g, 0, sizeof g);
    g.version = 2;
    g.alignment = 32;
    kv_str(&g, "general.architecture", "gpt2");
    uint8_t flags[3] = {1, 0, 1};
    kv_arr(&g, "test.flags", V_BOOL, 3, flags);
    kv_add(&g, "test.i64", V_I64)->u = (uint64_t)-5;
    kv_add(&g, "test.f64", V_F64)->f = 2.5;
    ten_add(&g, "wte", T_Q4_K, 512, 4, 1);
    ten_add(&g, "evil\x1b[2J\x7f", T_F32, 1, 0, 3);
    ten_add(&g, "ln_f.weight", T_F16, 24, 0, 2);
    const char *path = gs_file(&g, "gpt2.gguf");
    gs_free(&g);
    cce_gguf_tensor *ts = NULL;
    int n = 0;
    char arch[8];
    cce_err err = {{0}};
    cce_status st = cce_gguf_list(path, &ts, &n, arch, sizeof arch, &err);
    CHECK_MSG(st == CCE_OK, "list failed: %s", err.msg);
    CHECK_EQ_INT(n, 3);
    CHECK_STR(arch, "gpt2");
    CHECK_STR(ts[1].name, "evil?[2J?");  // control bytes never reach a terminal
    CHECK_STR(ts[0].name, "wte");
    CHECK_STR(ts[0].dtype, "Q4_K");
    CHECK_EQ_INT(ts[0].nbytes, 2 * 4 * 144);
    CHECK_EQ_INT(ts[0].shape[1], 4);
    CHECK_STR(ts[2].dtype, "F16");
    CHECK_EQ_INT(ts[2].n_dims, 1);
    CHECK_EQ_INT(ts[1].offset, ts[0].offset + 2 * 4 * 144);
    CHECK_EQ_INT(ts[2].offset, ts[1].offset + 32);
    cce_free(ts);
    /* the metadata, rendered */
    cce_gguf_meta *meta = NULL;
    int nm = 0;
    st = cce_gguf_list_meta(path, &meta, &nm, &err);
    CHECK_MSG(st == CCE_OK, "metadata listing failed: %s", err.msg);
    CHECK_EQ_INT(nm, 4);
    CHECK_STR(meta[0].key, "general.architecture");
    CHECK_STR(meta[0].type, "string");
    CHECK_STR(meta[0].value, "\"gpt2\"");
    CHECK_STR(meta[1].type, "array[bool]");
    CHECK_STR(meta[1].value, "3 items: true, false, true");
    CHECK_STR(meta[2].type, "int64");
    CHECK_STR(meta[2].value, "-5");
    CHECK_STR(meta[3].value, "2.5");
    cce_free(meta);
    char why[700];
    CHECK_MSG(expect_fail(path, 1, CCE_EUNSUPPORTED, why, sizeof why), "%s", why);
    CHECK_MSG(strstr(why, "unsupported architecture 'gpt2'"), "%s", why);
    /* no tensors, no metadata: a valid empty listing */
    memset(&g, 0, sizeof g);
    g.version = 3;
    g.alignment = 32;
    path = gs_file(&g, "empty.gguf");
    st = cce_gguf_list(path, &ts, &n, arch, sizeof arch, &err);
    CHECK_MSG(st == CCE_OK, "empty list failed: %s", err.msg);
    CHECK(n == 0 && ts == NULL && arch[0] == 0);
    CHECK_FAIL(path, 1, CCE_EFORMAT);  // no architecture to load
}

TEST(zero_byte_and_missing) {
    const char *p = tmp_path("zero.gguf");
    CHECK(file_write(p, "", 0) == 0);
    CHECK_FAIL(p, 0, CCE_EFORMAT);
    CHECK_FAIL(tmp_path("nope.gguf"), 0, CCE_EIO);
    CHECK_FAIL(harness_tmpdir(), 0, CCE_EIO);
}

/* Every prefix of a valid file fails cleanly (and the full file loads). */
TEST(every_prefix) {
    gspec g;
    tcfg tiny = {32, 32, 1, 2, 1, 16};
    gs_llama(&g, tiny, T_Q8_0, 0, "llama");  // tokenizer arrays are parsed even when tok is not wanted
    const char *path = gs_file(&g, "prefix.gguf");
    gs_free(&g);
    CHECK(path != NULL);
    size_t full = TB.n;
    cce_model *m = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_gguf(path, &m, NULL, &err) == CCE_OK, "full file: %s", err.msg);
    cce_model_free(m);
    /* every length through the header and the first bytes of data; then every 61st byte of the
     * data and the last 64 (the data is plain bytes, checked by one bounds test per tensor) */
    size_t data = (size_t)lab_pos("data");
    CHECK(data > 0 && data < full);
    for (size_t len = full; len-- > 0;) {
        if (len > data + 64 && len + 64 < full && len % 61) continue;
        CHECK(truncate(path, (off_t)len) == 0);
        m = NULL;
        cce_status st = cce_load_gguf(path, &m, NULL, &err);
        CHECK_MSG(st != CCE_OK && m == NULL, "prefix of %zu bytes (of %zu) loaded", len, full);
        CHECK_MSG(strstr(err.msg, path), "prefix %zu: error does not name the file: %s", len, err.msg);
        cce_gguf_tensor *ts = NULL;
        int n = 0;
        st = cce_gguf_list(path, &ts, &n, NULL, 0, &err);
        cce_free(ts);
        CHECK_MSG(st != CCE_OK, "prefix of %zu bytes (of %zu) listed", len, full);
    }
}

TEST(bad_header) {
    gspec g;
    gs_llama(&g, SMALL, T_F32, 0, "llama");
    CHECK(gs_file(&g, "base.gguf") != NULL);
    gs_free(&g);
    /* magic */
    uint8_t *copy = malloc(TB.n);
    memcpy(copy, TB.b, TB.n);
    copy[3] = 'G';
    const char *p = tmp_path("magic.gguf");
    CHECK(file_write(p, copy, TB.n) == 0);
    free(copy);
    CHECK_FAIL(p, 0, CCE_EFORMAT);
    p = tmp_path("short.gguf");
    CHECK(file_write(p, "GGU", 3) == 0);
    CHECK_FAIL(p, 0, CCE_EFORMAT);
    /* versions */
    uint64_t versions[] = {0, 1, 4, 0x03000000, 0xffffffff};
    for (size_t i = 0; i < 5; i++) CHECK_FAIL_HAS(patched("version", 4, versions[i]), 0, CCE_EFORMAT, "version");
    /* counts */
    uint64_t counts[] = {1ull << 62, UINT64_MAX, 1ull << 32, 100000};
    for (size_t i = 0; i < 4; i++) {
        CHECK_FAIL_HAS(patched("n_tensors", 8, counts[i]), 0, CCE_EFORMAT, "tensor count");
        CHECK_FAIL_HAS(patched("n_kv", 8, counts[i]), 0, CCE_EFORMAT, "metadata count");
    }
    CHECK_FAIL(patched("n_tensors", 8, 1000), 0, CCE_EFORMAT);  // plausible but wrong
}

TEST(bad_metadata) {
    gspec g;
    gs_llama(&g, SMALL, T_F32, 0, "llama");
    CHECK(gs_file(&g, "base.gguf") != NULL);
    gs_free(&g);
    uint64_t lens[] = {1ull << 40, UINT64_MAX, UINT64_MAX - 7, 0};
    for (size_t i = 0; i < 4; i++) {
        CHECK_FAIL(patched("kv:general.name:keylen", 8, lens[i]), 0, CCE_EFORMAT);   // key length (0: empty key)
        if (lens[i]) CHECK_FAIL(patched("kv:general.name:value", 8, lens[i]), 0, CCE_EFORMAT);  // string value
    }
    CHECK_FAIL(patched("kv:general.name:value", 8, TB.n), 0, CCE_EFORMAT);
    /* value types: unknown, and a known type that desynchronises the stream */
    uint64_t types[] = {13, 100, 0xffffffff};
    for (size_t i = 0; i < 3; i++)
        CHECK_FAIL_HAS(patched("kv:general.name:type", 4, types[i]), 0, CCE_EFORMAT, "unknown value type");
    /* arrays: huge counts, unknown and nested element types */
    uint64_t ns[] = {1ull << 61, UINT64_MAX, 1ull << 32, 17};
    for (size_t i = 0; i < 4; i++) {
        CHECK_FAIL(patched("kv:tokenizer.ggml.tokens:arrn", 8, ns[i]), 0, CCE_EFORMAT);
        CHECK_FAIL(patched("kv:tokenizer.ggml.scores:arrn", 8, ns[i]), 0, CCE_EFORMAT);
    }
    CHECK_FAIL_HAS(patched("kv:tokenizer.ggml.scores:arrtype", 4, 13), 0, CCE_EFORMAT, "unknown array element type");
    CHECK_FAIL_HAS(patched("kv:tokenizer.ggml.scores:arrtype", 4, V_ARR), 0, CCE_EFORMAT, "nested");
    /* bool out of range */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    kv_add(&g, "test.flag", V_BOOL)->u = 2;
    CHECK_FAIL_HAS(gs_file(&g, "bool.gguf"), 0, CCE_EFORMAT, "bool");
    gs_free(&g);
    /* duplicate key */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    kv_u32(&g, "llama.block_count", 2);
    CHECK_FAIL_HAS(gs_file(&g, "dupkey.gguf"), 0, CCE_EFORMAT, "duplicate metadata key 'llama.block_count'");
    gs_free(&g);
}

TEST(bad_alignment) {
    uint64_t aligns[] = {0, 3, 48, 0x80000001};
    for (size_t i = 0; i < 4; i++) {
        gspec g;
        gs_llama(&g, SMALL, T_F32, 0, NULL);
        kv_u32(&g, "general.alignment", 32);
        CHECK(gs_file(&g, "align.gguf") != NULL);
        gs_free(&g);
        CHECK_FAIL_HAS(patched("kv:general.alignment:value", 4, aligns[i]), 0, CCE_EFORMAT, "power of two");
    }
    gspec g;
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    kv_add(&g, "general.alignment", V_U64)->u = 32;  // must be uint32
    CHECK_FAIL_HAS(gs_file(&g, "align64.gguf"), 0, CCE_EFORMAT, "expected uint32");
    gs_free(&g);
}

TEST(bad_tensor_infos) {
    gspec g;
    gs_llama(&g, SMALL, T_Q8_0, 0, NULL);
    CHECK(gs_file(&g, "base.gguf") != NULL);
    gs_free(&g);
    const char *q = "t:blk.0.attn_q.weight";
    char lbl[128];
#define L(suffix) (snprintf(lbl, sizeof lbl, "%s%s", q, suffix), lbl)
    uint64_t ndims[] = {0, 5, 0xffffffff};
    for (size_t i = 0; i < 3; i++) CHECK_FAIL_HAS(patched(L(":ndims"), 4, ndims[i]), 0, CCE_EFORMAT, "n_dims");
    CHECK_FAIL(patched(L(":ne0"), 8, 0), 0, CCE_EFORMAT);
    CHECK_FAIL(patched(L(":ne1"), 8, 0), 0, CCE_EFORMAT);
    CHECK_FAIL(patched(L(":ne1"), 8, 1ull << 63), 0, CCE_EFORMAT);
    CHECK_FAIL(patched(L(":ne1"), 8, 1ull << 62), 0, CCE_EFORMAT);         // count 2^67 overflows
    CHECK_FAIL(patched(L(":ne1"), 8, 1ull << 50), 0, CCE_EFORMAT);         // count fits, bytes past end
    CHECK_FAIL_HAS(patched(L(":ne1"), 8, UINT64_MAX / 2), 0, CCE_EFORMAT, "overflows");
    CHECK_FAIL_HAS(patched(L(":ne0"), 8, 33), 0, CCE_EFORMAT, "block size");  // Q8_0 rows of 32
    uint64_t types[] = {4, 5, 31, 36, 40, 1000, 0xffffffff};
    for (size_t i = 0; i < 7; i++) CHECK_FAIL_HAS(patched(L(":type"), 4, types[i]), 0, CCE_EFORMAT, "unknown ggml type");
    CHECK_FAIL(patched(L(":type"), 4, T_F32), 0, CCE_EFORMAT);             // larger than the data: overlap or past end
    long off = lab_pos(L(":offset"));
    CHECK(off > 0);
    uint64_t cur;
    memcpy(&cur, TB.b + off, 8);
    CHECK_FAIL_HAS(patched(L(":offset"), 8, cur + 1), 0, CCE_EFORMAT, "not a multiple of the alignment");
    CHECK_FAIL_HAS(patched(L(":offset"), 8, cur + 16), 0, CCE_EFORMAT, "not a multiple of the alignment");
    CHECK_FAIL_HAS(patched(L(":offset"), 8, (uint64_t)TB.n), 0, CCE_EFORMAT, "past end of file");
    CHECK_FAIL(patched(L(":offset"), 8, UINT64_MAX - 31), 0, CCE_EFORMAT);  // out of range, wraps if added
    CHECK_FAIL_HAS(patched(L(":offset"), 8, 0), 0, CCE_EFORMAT, "overlaps");  // token_embd's data
    CHECK_FAIL(patched(L(":namelen"), 8, 1ull << 50), 0, CCE_EFORMAT);
    CHECK_FAIL(patched(L(":namelen"), 8, 0), 0, CCE_EFORMAT);
#undef L
    /* tensor count one short: the last info's bytes pass as padding and data, so only the
     * loader can notice (a required tensor is missing) */
    CHECK_FAIL(patched("n_tensors", 8, (uint64_t)(2 + 9 * SMALL.layers - 1)), 1, CCE_EFORMAT);
    /* duplicate names */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    snprintf(g.t[3].name, sizeof g.t[3].name, "%s", g.t[4].name);
    CHECK_FAIL_HAS(gs_file(&g, "dupname.gguf"), 0, CCE_EFORMAT, "duplicate tensor name");
    gs_free(&g);
    /* names: 127 bytes parse (the loader then misses the renamed tensor), 128 do not */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    memset(g.t[2].name, 'x', 127);
    g.t[2].name[127] = 0;
    CHECK_FAIL(gs_file(&g, "name127.gguf"), 1, CCE_EFORMAT);
    g.t[2].name[127] = 'x';
    g.t[2].name[128] = 0;
    CHECK_FAIL(gs_file(&g, "name128.gguf"), 0, CCE_EFORMAT);
    gs_free(&g);
    /* data section starts past the end: a file cut right after the tensor infos */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    gs_write(&g, &TB);
    gs_free(&g);
    long data = lab_pos("data");
    long last = lab_pos("t:blk.1.ffn_down.weight:offset");
    CHECK(data > 0 && last > 0);
    const char *p = tmp_path("nodata.gguf");
    CHECK(file_write(p, TB.b, (size_t)last + 8) == 0);
    CHECK_FAIL(p, 0, CCE_EFORMAT);
}

TEST(bad_llama_metadata) {
    gspec g;
    struct { const char *key; uint32_t type; } wrong[] = {
        {"llama.block_count", V_STR}, {"llama.embedding_length", V_F32}, {"llama.attention.head_count", V_BOOL},
        {"llama.attention.layer_norm_rms_epsilon", V_STR}, {"llama.rope.freq_base", V_U32},
        {"llama.context_length", V_STR}, {"general.architecture", V_U32},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        gs_llama(&g, SMALL, T_F32, 0, NULL);
        gkv *k = kv_find(&g, wrong[i].key);
        CHECK(k != NULL);
        k->type = wrong[i].type;
        k->s = "12";
        k->u = 1;
        k->f = 12;
        const char *p = gs_file(&g, "wrongtype.gguf");
        gs_free(&g);
        char why[700];
        int list_ok = strcmp(wrong[i].key, "general.architecture") != 0;  // the listing reads it too
        CHECK_MSG(expect_fail(p, list_ok, CCE_EFORMAT, why, sizeof why), "%s: %.600s", wrong[i].key, why);
        CHECK_MSG(strstr(why, wrong[i].key), "message does not name the key %s: %.600s", wrong[i].key, why);
    }
    /* head_count_kv as an array (per-layer counts) loads; one of the wrong length does not */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    kv_del(&g, "llama.attention.head_count_kv");
    static const int32_t per_layer[3] = {2, 1, 2};   // the third entry for the too-long variant below
    kv_arr(&g, "llama.attention.head_count_kv", V_I32, 2, per_layer);
    const char *kp = gs_file(&g, "kvarr.gguf");
    cce_model *km = NULL;
    cce_err kerr = {{0}};
    CHECK_MSG(cce_load_gguf(kp, &km, NULL, &kerr) == CCE_EFORMAT, "per-layer KV heads with the wrong tensor shapes loaded");
    CHECK_MSG(strstr(kerr.msg, "blk.1.attn_k.weight"), "%s", kerr.msg);   // block 1 now expects 8 KV rows
    kv_find(&g, "llama.attention.head_count_kv")->arr_n = 3;
    CHECK_FAIL_HAS(gs_file(&g, "kvarr3.gguf"), 1, CCE_EFORMAT, "has 3 entries, expected one per block (2)");
    gs_free(&g);
    /* tokenizer arrays of the wrong element type / length */
    gs_llama(&g, SMALL, T_F32, 0, "llama");
    kv_find(&g, "tokenizer.ggml.tokens")->arr_type = V_I32;
    kv_find(&g, "tokenizer.ggml.tokens")->arr = tok_types;
    CHECK_FAIL(gs_file(&g, "tokint.gguf"), 1, CCE_EFORMAT);
    gs_free(&g);
    gs_llama(&g, SMALL, T_F32, 0, "llama");
    kv_find(&g, "tokenizer.ggml.scores")->arr_n = 15;
    CHECK_FAIL(gs_file(&g, "tok15.gguf"), 1, CCE_EFORMAT);
    gs_free(&g);
    gs_llama(&g, SMALL, T_F32, 0, "llama");
    kv_find(&g, "tokenizer.ggml.bos_token_id")->u = 16;
    CHECK_FAIL(gs_file(&g, "bos16.gguf"), 1, CCE_EFORMAT);
    gs_free(&g);
    /* missing required keys */
    const char *req[] = {"general.architecture", "llama.embedding_length", "llama.feed_forward_length",
                         "llama.block_count", "llama.attention.head_count"};
    for (size_t i = 0; i < 5; i++) {
        gs_llama(&g, SMALL, T_F32, 0, NULL);
        kv_del(&g, req[i]);
        CHECK_FAIL(gs_file(&g, "missingkey.gguf"), 1, CCE_EFORMAT);
        gs_free(&g);
    }
    /* out-of-range values */
    struct { const char *key; uint64_t v; } range[] = {
        {"llama.block_count", 0}, {"llama.block_count", 3}, {"llama.embedding_length", 0},
        {"llama.attention.head_count", 3}, {"llama.attention.head_count_kv", 3},
        {"llama.attention.head_count", 32},  // head size 1: odd
        {"llama.feed_forward_length", 65}, {"llama.embedding_length", 1ull << 31},
    };
    for (size_t i = 0; i < sizeof range / sizeof range[0]; i++) {
        gs_llama(&g, SMALL, T_F32, 0, NULL);
        kv_find(&g, range[i].key)->u = range[i].v;
        const char *p = gs_file(&g, "range.gguf");
        gs_free(&g);
        char why[700];
        CHECK_MSG(expect_fail(p, 1, CCE_OK, why, sizeof why), "%s=%llu: %.600s", range[i].key,
                  (unsigned long long)range[i].v, why);
    }
    /* negative values of a signed type */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    gkv *k = kv_find(&g, "llama.block_count");
    k->type = V_I32;
    k->u = 0xfffffffe;  // -2
    CHECK_FAIL(gs_file(&g, "negative.gguf"), 1, CCE_EFORMAT);
    gs_free(&g);
    /* the same key with a wider integer type is fine */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    kv_find(&g, "llama.block_count")->type = V_U64;
    kv_find(&g, "llama.embedding_length")->type = V_I16;
    const char *p = gs_file(&g, "wide.gguf");
    gs_free(&g);
    cce_model *m = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_gguf(p, &m, NULL, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(m->cfg.n_layers, 2);
    cce_model_free(m);
}

TEST(bad_llama_tensors) {
    gspec g;
    /* each required tensor missing */
    const char *req[] = {"token_embd.weight", "output_norm.weight", "blk.1.ffn_down.weight", "blk.0.attn_norm.weight",
                         "blk.0.attn_k.weight", "blk.1.ffn_up.weight"};
    for (size_t i = 0; i < 6; i++) {
        gs_llama(&g, SMALL, T_F32, 1, NULL);
        ten_del(&g, req[i]);
        const char *p = gs_file(&g, "missing_tensor.gguf");
        gs_free(&g);
        char why[700];
        CHECK_MSG(expect_fail(p, 1, CCE_EFORMAT, why, sizeof why), "%s: %.600s", req[i], why);
        CHECK_MSG(strstr(why, req[i]), "message does not name %s: %.600s", req[i], why);
    }
    /* shapes inconsistent with the config */
    struct { const char *name; uint64_t ne0, ne1; } shapes[] = {
        {"blk.0.attn_k.weight", 32, 32}, {"blk.1.attn_q.weight", 64, 32}, {"blk.0.ffn_down.weight", 32, 64},
        {"output_norm.weight", 64, 0}, {"output.weight", 32, 17}, {"token_embd.weight", 32, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        gs_llama(&g, SMALL, T_F32, 1, NULL);
        CHECK(ten_find(&g, shapes[i].name) != NULL);
        ten_reshape(&g, shapes[i].name, shapes[i].ne0, shapes[i].ne1);
        const char *p = gs_file(&g, "shape.gguf");
        gs_free(&g);
        char why[700];
        CHECK_MSG(expect_fail(p, 1, CCE_EFORMAT, why, sizeof why), "%s: %.600s", shapes[i].name, why);
    }
    /* a 3-d tensor where a matrix belongs */
    gs_llama(&g, SMALL, T_F32, 1, NULL);
    gten *t = ten_find(&g, "blk.0.attn_v.weight");
    t->n_dims = 3; t->ne[1] = 8; t->ne[2] = 2;
    CHECK_FAIL_HAS(gs_file(&g, "threed.gguf"), 1, CCE_EFORMAT, "has shape [32, 8, 2], expected [32, 16]");
    gs_free(&g);
    /* unsupported type for the loader (listing is fine) */
    gs_llama(&g, SMALL, T_F32, 1, NULL);
    ten_del(&g, "blk.0.ffn_gate.weight");
    ten_add(&g, "blk.0.ffn_gate.weight", T_I8, 32, 64, 5);
    CHECK_FAIL_HAS(gs_file(&g, "i8.gguf"), 1, CCE_EUNSUPPORTED, "type I8");
    gs_free(&g);
    /* an extra tensor the llama loader does not understand */
    gs_llama(&g, SMALL, T_F32, 1, NULL);
    ten_add(&g, "blk.0.attn_q_norm.weight", T_F32, 8, 0, 7);
    CHECK_FAIL_HAS(gs_file(&g, "extra.gguf"), 1, CCE_EUNSUPPORTED, "'blk.0.attn_q_norm.weight'");
    gs_free(&g);
    /* a bias of the wrong length */
    gs_llama(&g, SMALL, T_F32, 1, NULL);
    ten_add(&g, "blk.0.attn_k.bias", T_F32, 32, 0, 7);
    CHECK_FAIL_HAS(gs_file(&g, "biaslen.gguf"), 1, CCE_EFORMAT, "'blk.0.attn_k.bias' has shape [32], expected [16]");
    gs_free(&g);
    /* partial RoPE */
    gs_llama(&g, SMALL, T_F32, 1, NULL);
    kv_find(&g, "llama.rope.dimension_count")->u = 4;
    CHECK_FAIL(gs_file(&g, "partialrope.gguf"), 1, CCE_EUNSUPPORTED);
    gs_free(&g);
}

/* ---- architectures and per-layer shapes ---- */

/* Rename every "llama." key of g to "<arch>." and set general.architecture. */
static void gs_set_arch(gspec *g, const char *arch) {
    static char names[8][32];
    static int k;
    char *a = names[k++ & 7];
    snprintf(a, sizeof names[0], "%s", arch);
    for (int i = 0; i < g->n_kv; i++) {
        if (!strcmp(g->kv[i].key, "general.architecture")) g->kv[i].s = a;
        else if (!strncmp(g->kv[i].key, "llama.", 6)) {
            char rest[96];
            snprintf(rest, sizeof rest, "%s", g->kv[i].key + 6);
            snprintf(g->kv[i].key, sizeof g->kv[i].key, "%.8s.%.80s", arch, rest);
        }
    }
}

/* Permute the rows (ne0 values each) of tensor t within heads of hd rows from the interleaved
 * RoPE order to the half-rotation one: new row j < hd/2 = old row 2j, hd/2 + j = old 2j + 1. */
static void ten_perm_half(gten *t, int hd) {
    size_t rows = t->n_dims == 1 ? t->ne[0] : t->ne[1], cols = t->n_dims == 1 ? 1 : t->ne[0];
    float *old = malloc(rows * cols * sizeof(float));
    memcpy(old, t->expect, rows * cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        size_t h = r / (size_t)hd, j = r % (size_t)hd, o = j < (size_t)hd / 2 ? 2 * j : 2 * (j - (size_t)hd / 2) + 1;
        memcpy(t->expect + r * cols, old + (h * (size_t)hd + o) * cols, cols * sizeof(float));
    }
    memcpy(t->data, t->expect, rows * cols * sizeof(float));   // F32 only
    free(old);
}

static int load_ok(const char *path, cce_model **m, cce_tokenizer **tok, cce_err *err) {
    *m = NULL;
    return path && cce_load_gguf(path, m, tok, err) == CCE_OK;
}

/* Qwen2 (half-rotation RoPE, q/k/v biases) and the same model in llama form (q/k rows and
 * biases permuted to adjacent pairs, as llama.cpp's converter does) give the same logits; a
 * llama file may carry the optional biases llama.cpp reads. */
TEST(arch_qwen2_matches_llama) {
    gspec a, b;
    int hd = SMALL.dim / SMALL.heads;
    for (int pass = 0; pass < 2; pass++) {
        gspec *g = pass ? &b : &a;
        gs_llama(g, SMALL, T_F32, 1, NULL);
        for (int l = 0; l < SMALL.layers; l++) {
            char n[64];
            static const char *const sfx[4] = {"attn_q", "attn_k", "attn_v", "attn_output"};
            static const int outs[4] = {32, 16, 16, 32};
            for (int k = 0; k < 4; k++) {
                snprintf(n, sizeof n, "blk.%d.%s.bias", l, sfx[k]);
                if (k < 3 || pass == 0) ten_add(g, n, T_F32, (uint64_t)outs[k], 0, (uint32_t)(40 + 4 * l + k));
            }
        }
    }
    ten_del(&a, "blk.0.attn_output.bias");   // llama form: an o bias in block 1 only
    ten_del(&b, "blk.1.attn_output.bias");
    ten_del(&b, "blk.0.attn_output.bias");
    /* b = the Qwen2 form of a without the o bias of block 1: remove it from a too */
    ten_del(&a, "blk.1.attn_output.bias");
    for (int l = 0; l < SMALL.layers; l++) {
        char n[64];
        static const char *const pm[4] = {"attn_q.weight", "attn_k.weight", "attn_q.bias", "attn_k.bias"};
        for (int k = 0; k < 4; k++) {
            snprintf(n, sizeof n, "blk.%d.%s", l, pm[k]);
            ten_perm_half(ten_find(&b, n), hd);
        }
    }
    gs_set_arch(&b, "qwen2");
    cce_model *ma = NULL, *mb = NULL;
    cce_err err = {{0}};
    int ok_a = load_ok(gs_file(&a, "llama_bias.gguf"), &ma, NULL, &err);
    char ea[512];
    snprintf(ea, sizeof ea, "%s", err.msg);
    int ok_b = load_ok(gs_file(&b, "qwen2.gguf"), &mb, NULL, &err);
    gs_free(&a);
    gs_free(&b);
    if (!ok_a || !ok_b) { cce_model_free(ma); cce_model_free(mb); FAILF("load: %s / %s", ok_a ? "" : ea, ok_b ? "" : err.msg); }
    CHECK_EQ_INT(ma->cfg.rope_interleaved, 1);
    CHECK_EQ_INT(mb->cfg.rope_interleaved, 0);
    CHECK(ma->layers[0].wq.b && ma->layers[1].wv.b && mb->layers[1].wk.b && !mb->layers[0].wo.b);
    int T = 7, V = SMALL.vocab, ids[7] = {1, 5, 9, 2, 14, 3, 8};
    float la[7 * 16], lb[7 * 16];
    CHECK(cce_ref_forward(ma, ids, T, la, NULL, NULL, &err) == CCE_OK);
    CHECK(cce_ref_forward(mb, ids, T, lb, NULL, NULL, &err) == CCE_OK);
    double d = 0;
    for (int i = 0; i < T * V; i++) d = fmax(d, fabs((double)la[i] - lb[i]));
    double fa = fast_vs_ref(ma, 9, &err), fb = fast_vs_ref(mb, 9, &err);
    cce_model_free(ma);
    cce_model_free(mb);
    CHECK_MSG(d < 1e-4, "qwen2 vs llama form: max |logit diff| %.3g", d);
    CHECK_MSG(fa < 1e-4 && fb < 1e-4, "fast vs reference: %.3g / %.3g", fa, fb);
}

/* "mistral" is read as llama. */
TEST(arch_mistral_alias) {
    gspec g;
    gs_llama(&g, SMALL, T_Q8_0, 0, NULL);
    gs_set_arch(&g, "mistral");
    cce_model *m = NULL;
    cce_err err = {{0}};
    int ok = load_ok(gs_file(&g, "mistral.gguf"), &m, NULL, &err);
    gs_free(&g);
    CHECK_MSG(ok, "%s", err.msg);
    CHECK_EQ_INT(m->cfg.rope_interleaved, 1);
    CHECK_EQ_INT(m->cfg.n_layers, 2);
    cce_model_free(m);
}

/* A deci file: per-layer head counts, KV heads and FFN widths as arrays; layer 1 has no
 * attention, layer 3 neither attention nor FFN (an identity block). */
#define DL 4
static const int32_t deci_heads[DL] = {4, 0, 2, 0}, deci_kv[DL] = {2, 0, 1, 0}, deci_ff[DL] = {64, 96, 32, 0};
static void gs_deci(gspec *g, uint32_t mat) {
    memset(g, 0, sizeof *g);
    g->version = 3;
    g->alignment = 32;
    int hd = 16, D = 64;
    kv_str(g, "general.architecture", "deci");
    kv_u32(g, "deci.context_length", 64);
    kv_u32(g, "deci.embedding_length", (uint32_t)D);
    kv_u32(g, "deci.block_count", DL);
    kv_arr(g, "deci.feed_forward_length", V_I32, DL, deci_ff);
    kv_arr(g, "deci.attention.head_count", V_I32, DL, deci_heads);
    kv_arr(g, "deci.attention.head_count_kv", V_I32, DL, deci_kv);
    kv_u32(g, "deci.attention.key_length", (uint32_t)hd);
    kv_u32(g, "deci.attention.value_length", (uint32_t)hd);
    kv_u32(g, "deci.rope.dimension_count", (uint32_t)hd);
    kv_f32(g, "deci.attention.layer_norm_rms_epsilon", 1e-5);
    uint32_t seed = 1;
    ten_add(g, "token_embd.weight", mat, (uint64_t)D, 16, seed++);
    ten_add(g, "output_norm.weight", T_F32, (uint64_t)D, 0, seed++);
    for (int l = 0; l < DL; l++) {
        char n[96];
        uint64_t Q = (uint64_t)deci_heads[l] * hd, KV = (uint64_t)deci_kv[l] * hd, H = (uint64_t)deci_ff[l];
#define T(suffix, type, a, b) do { snprintf(n, sizeof n, "blk.%d.%s.weight", l, suffix); ten_add(g, n, type, a, b, seed++); } while (0)
        if (Q) {
            T("attn_norm", T_F32, (uint64_t)D, 0);
            T("attn_q", mat, (uint64_t)D, Q);
            T("attn_k", mat, (uint64_t)D, KV);
            T("attn_v", mat, (uint64_t)D, KV);
            T("attn_output", mat, Q, (uint64_t)D);
        }
        if (H) {
            T("ffn_norm", T_F32, (uint64_t)D, 0);
            T("ffn_gate", mat, (uint64_t)D, H);
            T("ffn_up", mat, (uint64_t)D, H);
            T("ffn_down", mat, H, (uint64_t)D);
        }
#undef T
    }
}

TEST(arch_deci_per_layer) {
    gspec g;
    gs_deci(&g, T_Q8_0);
    cce_model *m = NULL;
    cce_err err = {{0}};
    int ok = load_ok(gs_file(&g, "deci.gguf"), &m, NULL, &err);
    if (!ok) { gs_free(&g); FAILF("load: %s", err.msg); }
    int bad = -1;
    float *buf = malloc(96 * 64 * sizeof(float));
    for (int i = 0; i < g.n_t && bad < 0; i++) {
        const float *x = model_tensor(m, g.t[i].name, buf);
        if (!x || memcmp(x, g.t[i].expect, (size_t)(g.t[i].ne[0] * g.t[i].ne[1]) * 4)) bad = i;
    }
    free(buf);
    CHECK_MSG(bad < 0, "tensor %s differs", bad >= 0 ? g.t[bad].name : "");
    gs_free(&g);
    CHECK_EQ_INT(m->cfg.n_heads, 4);
    CHECK_EQ_INT(m->cfg.n_kv_heads, 2);
    CHECK_EQ_INT(m->cfg.hidden_dim, 96);   // the widest block
    CHECK_EQ_INT(m->cfg.head_dim, 16);
    for (int l = 0; l < DL; l++) {
        const cce_layer *L = &m->layers[l];
        CHECK_MSG(L->n_heads == deci_heads[l] && L->n_kv_heads == deci_kv[l] && L->hidden == deci_ff[l] &&
                  L->dropped == (l == 3) && (L->attn_norm != NULL) == (deci_heads[l] > 0),
                  "layer %d: heads %d kv %d hidden %d dropped %d", l, L->n_heads, L->n_kv_heads, L->hidden, L->dropped);
    }
    double fd = fast_vs_ref(m, 11, &err);
    CHECK_MSG(fd < 1e-4, "fast vs reference: %.3g (%s)", fd, err.msg);
    cce_model_free(m);
}

TEST(bad_per_layer_metadata) {
    gspec g;
    /* an array one entry short */
    gs_deci(&g, T_F32);
    kv_find(&g, "deci.attention.head_count_kv")->arr_n = DL - 1;
    CHECK_FAIL_HAS(gs_file(&g, "short.gguf"), 1, CCE_EFORMAT, "'deci.attention.head_count_kv' has 3 entries, expected one per block (4)");
    gs_free(&g);
    /* floats where integers belong */
    static const float fl[DL] = {4, 0, 2, 0};
    gs_deci(&g, T_F32);
    kv_del(&g, "deci.attention.head_count");
    kv_arr(&g, "deci.attention.head_count", V_F32, DL, fl);
    CHECK_FAIL_HAS(gs_file(&g, "floats.gguf"), 1, CCE_EFORMAT, "array of float32, expected integers");
    gs_free(&g);
    /* a negative entry */
    static const int32_t neg[DL] = {4, -1, 2, 0};
    gs_deci(&g, T_F32);
    kv_find(&g, "deci.feed_forward_length")->arr = neg;
    CHECK_FAIL_HAS(gs_file(&g, "negative.gguf"), 1, CCE_EFORMAT, "'deci.feed_forward_length'[1] is out of range");
    gs_free(&g);
    /* KV heads that do not divide the heads */
    static const int32_t kv3[DL] = {3, 0, 1, 0};
    gs_deci(&g, T_F32);
    kv_find(&g, "deci.attention.head_count_kv")->arr = kv3;
    CHECK_FAIL_HAS(gs_file(&g, "kv3.gguf"), 1, CCE_EFORMAT, "block 0: head_count_kv 3 does not divide head_count 4");
    gs_free(&g);
    /* linear attention (heads without KV heads) */
    static const int32_t kv0[DL] = {2, 0, 0, 0};
    gs_deci(&g, T_F32);
    kv_find(&g, "deci.attention.head_count_kv")->arr = kv0;
    CHECK_FAIL_HAS(gs_file(&g, "linear.gguf"), 1, CCE_EUNSUPPORTED, "linear attention");
    gs_free(&g);
    /* attention without FFN */
    static const int32_t ff0[DL] = {64, 96, 0, 0};
    gs_deci(&g, T_F32);
    kv_find(&g, "deci.feed_forward_length")->arr = ff0;
    CHECK_FAIL_HAS(gs_file(&g, "noffn.gguf"), 1, CCE_EUNSUPPORTED, "block 2 has attention but feed_forward_length 0");
    gs_free(&g);
    /* tensors of a block declared without attention */
    gs_deci(&g, T_F32);
    ten_add(&g, "blk.1.attn_norm.weight", T_F32, 64, 0, 3);
    CHECK_FAIL_HAS(gs_file(&g, "stray.gguf"), 1, CCE_EUNSUPPORTED, "'blk.1.attn_norm.weight' is not part of the deci layout");
    gs_free(&g);
    /* no key_length and no heads in block 0 */
    static const int32_t h0[DL] = {0, 4, 2, 0}, k0[DL] = {0, 2, 1, 0};
    gs_deci(&g, T_F32);
    kv_del(&g, "deci.attention.key_length");
    kv_find(&g, "deci.attention.head_count")->arr = h0;
    kv_find(&g, "deci.attention.head_count_kv")->arr = k0;
    CHECK_FAIL_HAS(gs_file(&g, "nokeylen.gguf"), 1, CCE_EFORMAT, "'deci.attention.key_length' is missing");
    gs_free(&g);
    /* an unknown architecture is named */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    gs_set_arch(&g, "phi3");
    CHECK_FAIL_HAS(gs_file(&g, "phi3.gguf"), 1, CCE_EUNSUPPORTED, "unsupported architecture 'phi3'");
    gs_free(&g);
}

/* rope_freqs.weight divides the frequencies (llama.cpp's Llama-3 scaling); dividing them all by
 * 4 is linear scaling by 4; other scaling types are refused. Sliding windows are honoured by
 * refusing longer sequences. */
TEST(rope_scaling_and_window) {
    gspec g;
    int hd = SMALL.dim / SMALL.heads;
    float div4[4] = {4, 4, 4, 4};
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    gten *rf = ten_add(&g, "rope_freqs.weight", T_F32, (uint64_t)hd / 2, 0, 0);
    memcpy(rf->data, div4, sizeof div4);
    cce_model *a = NULL, *b = NULL;
    cce_err err = {{0}};
    int ok = load_ok(gs_file(&g, "ropefreqs.gguf"), &a, NULL, &err);
    gs_free(&g);
    CHECK_MSG(ok, "%s", err.msg);
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    kv_str(&g, "llama.rope.scaling.type", "linear");
    kv_f32(&g, "llama.rope.scaling.factor", 4.0);
    ok = load_ok(gs_file(&g, "linear.gguf"), &b, NULL, &err);
    gs_free(&g);
    if (!ok) { cce_model_free(a); FAILF("%s", err.msg); }
    CHECK(a->cfg.rope_freq_div != NULL && a->cfg.rope_freq_div[1] == 4.0f);
    CHECK_EQ_INT(b->cfg.rope_scaling, CCE_ROPE_SCALING_LINEAR);
    CHECK_NEAR(cce_rope_inv_freq(&a->cfg, 1), pow(500000.0, -2.0 / hd) / 4, 1e-15);
    CHECK_NEAR(cce_rope_inv_freq(&b->cfg, 1), pow(500000.0, -2.0 / hd) / 4, 1e-15);
    int ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float la[9 * 16], lb[9 * 16];
    CHECK(cce_ref_forward(a, ids, 9, la, NULL, NULL, &err) == CCE_OK && cce_ref_forward(b, ids, 9, lb, NULL, NULL, &err) == CCE_OK);
    double d = 0;
    for (int i = 0; i < 9 * 16; i++) d = fmax(d, fabs((double)la[i] - lb[i]));
    CHECK_MSG(d < 1e-6, "divisors 4 vs linear factor 4: %.3g", d);
    double fd = fast_vs_ref(a, 9, &err);
    CHECK_MSG(fd < 1e-4, "fast vs reference with rope_freqs: %.3g", fd);
    cce_model_free(a);
    cce_model_free(b);
    /* yarn is refused, naming the key */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    kv_str(&g, "llama.rope.scaling.type", "yarn");
    CHECK_FAIL_HAS(gs_file(&g, "yarn.gguf"), 1, CCE_EUNSUPPORTED, "metadata 'llama.rope.scaling.type' = 'yarn' is not supported");
    gs_free(&g);
    /* rope_freqs of the wrong length */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    ten_add(&g, "rope_freqs.weight", T_F32, 8, 0, 1);
    CHECK_FAIL_HAS(gs_file(&g, "ropelen.gguf"), 1, CCE_EFORMAT, "'rope_freqs.weight' has shape [8], expected [4]");
    gs_free(&g);
    /* sliding window: sequences up to the window run, longer ones are refused in one line */
    gs_llama(&g, SMALL, T_F32, 0, NULL);
    kv_u32(&g, "llama.attention.sliding_window", 8);
    ok = load_ok(gs_file(&g, "window.gguf"), &a, NULL, &err);
    gs_free(&g);
    CHECK_MSG(ok, "%s", err.msg);
    CHECK_EQ_INT(a->cfg.sliding_window, 8);
    cce_fwd *f = NULL;
    CHECK(cce_fwd_new(a, 8, 8, &f, &err) == CCE_OK);
    cce_fwd_free(f);
    f = NULL;
    cce_status st = cce_fwd_new(a, 16, 16, &f, &err);
    CHECK(st == CCE_EUNSUPPORTED && f == NULL);
    CHECK_MSG(strstr(err.msg, "sequences of 16 tokens exceed the model's sliding attention window of 8 tokens") && !strchr(err.msg, '\n'), "%s", err.msg);
    cce_decoder *dec = NULL;
    CHECK(cce_decoder_new(a, 9, &dec, &err) == CCE_EUNSUPPORTED && dec == NULL);
    cce_model_free(a);
}

/* bytes_to_unicode(b) as UTF-8 into out; returns its length. */
static int b2u(int b, char *out) {
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174))) {
        int n = 0;
        for (int x = 0; x < b; x++) n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174));
        cp = 256 + n;
    }
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xc0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 63));
    return 2;
}

/* A byte-level vocabulary: the 256 byte symbols, "he" "ll" "hell" "hello" "Ġw", <|endoftext|>. */
#define BL_VOCAB 262
static char bl_store[BL_VOCAB][16];
static const char *bl_tokens[BL_VOCAB];
static int32_t bl_types[BL_VOCAB];
static const char *bl_merges[5] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w"};
static void bl_vocab(void) {
    for (int b = 0; b < 256; b++) {
        int n = b2u(b, bl_store[b]);
        bl_store[b][n] = 0;
    }
    static const char *const extra[6] = {"he", "ll", "hell", "hello", "\xc4\xa0w", "<|endoftext|>"};
    for (int i = 0; i < 6; i++) snprintf(bl_store[256 + i], sizeof bl_store[0], "%s", extra[i]);
    for (int i = 0; i < BL_VOCAB; i++) {
        bl_tokens[i] = bl_store[i];
        bl_types[i] = i == 261 ? 3 : 1;
    }
}

TEST(tokenizer_byte_level) {
    bl_vocab();
    tcfg c = SMALL;
    c.vocab = BL_VOCAB;
    for (int pass = 0; pass < 2; pass++) {
        gspec g;
        gs_llama(&g, c, T_F32, 0, NULL);
        kv_str(&g, "tokenizer.ggml.model", "gpt2");
        kv_str(&g, "tokenizer.ggml.pre", pass ? "qwen2" : "gpt-2");
        kv_arr(&g, "tokenizer.ggml.tokens", V_STR, BL_VOCAB, bl_tokens);
        kv_arr(&g, "tokenizer.ggml.token_type", V_I32, BL_VOCAB, bl_types);
        kv_arr(&g, "tokenizer.ggml.merges", V_STR, 5, bl_merges);
        kv_u32(&g, "tokenizer.ggml.bos_token_id", 261);
        kv_u32(&g, "tokenizer.ggml.eos_token_id", 261);
        if (pass) kv_add(&g, "tokenizer.ggml.add_bos_token", V_BOOL)->u = 1;
        cce_model *m = NULL;
        cce_tokenizer *tok = NULL;
        cce_err err = {{0}};
        int ok = load_ok(gs_file(&g, "bl.gguf"), &m, &tok, &err);
        gs_free(&g);
        CHECK_MSG(ok && tok, "load: %s", err.msg);
        CHECK_EQ_INT(cce_tokenizer_kind(tok), CCE_TOK_BYTELEVEL);
        CHECK_EQ_INT(m->cfg.eos_id, 261);
        int *ids = NULL;
        size_t n = 0;
        CHECK_MSG(cce_tokenizer_encode(tok, "hello world", 11, 1, &ids, &n, &err) == CCE_OK, "%s", err.msg);
        /* "hello" " w" "o" "r" "l" "d", with BOS only when add_bos_token says so */
        int want[7] = {261, 259, 260, 'o' - 33 + 0, 'r' - 33, 'l' - 33, 'd' - 33};
        for (int k = 3; k < 7; k++) want[k] = 0;
        /* the ids of single printable bytes: their byte value (bytes_to_unicode keeps them in order) */
        want[3] = 'o'; want[4] = 'r'; want[5] = 'l'; want[6] = 'd';
        int off = pass ? 0 : 1;
        CHECK_EQ_INT(n, (size_t)(7 - off));
        for (size_t k = 0; k < n; k++) CHECK_MSG(ids[k] == want[k + (size_t)off], "id %zu: %d, want %d", k, ids[k], want[k + (size_t)off]);
        cce_free(ids);
        cce_tokenizer_free(tok);
        cce_model_free(m);
    }
    /* without merges a byte-level vocabulary cannot encode: refused when a tokenizer is asked for */
    gspec g;
    gs_llama(&g, c, T_F32, 0, NULL);
    kv_str(&g, "tokenizer.ggml.model", "gpt2");
    kv_arr(&g, "tokenizer.ggml.tokens", V_STR, BL_VOCAB, bl_tokens);
    const char *p = gs_file(&g, "bl_nomerges.gguf");
    gs_free(&g);
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    cce_err err = {{0}};
    CHECK(cce_load_gguf(p, &m, &tok, &err) == CCE_EFORMAT && !m && !tok);
    CHECK_MSG(strstr(err.msg, "tokenizer.ggml.merges"), "%s", err.msg);
    CHECK_MSG(cce_load_gguf(p, &m, NULL, &err) == CCE_OK, "%s", err.msg);   // the model alone loads
    cce_model_free(m);
    /* an unknown pre-tokenizer is named */
    gs_llama(&g, c, T_F32, 0, NULL);
    kv_str(&g, "tokenizer.ggml.model", "gpt2");
    kv_str(&g, "tokenizer.ggml.pre", "deepseek-coder");
    kv_arr(&g, "tokenizer.ggml.tokens", V_STR, BL_VOCAB, bl_tokens);
    kv_arr(&g, "tokenizer.ggml.merges", V_STR, 5, bl_merges);
    p = gs_file(&g, "bl_pre.gguf");
    gs_free(&g);
    CHECK(cce_load_gguf(p, &m, &tok, &err) == CCE_EUNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "'deepseek-coder'"), "%s", err.msg);
}

/* ---- the writer (cce_export_gguf) ---- */

/* Max |logit difference| of the reference forward of a and b over T tokens of ids; and, when
 * nll is given, the difference of their mean next-token NLL. */
static double logit_diff(const cce_model *a, const cce_model *b, const int *ids, int T, double *nll) {
    int V = a->cfg.vocab_size;
    float *la = malloc((size_t)T * V * sizeof(float)), *lb = malloc((size_t)T * V * sizeof(float));  // (T, V)
    cce_err err = {{0}};
    double d = INFINITY, s[2] = {0, 0};
    if (cce_ref_forward(a, ids, T, la, NULL, NULL, &err) || cce_ref_forward(b, ids, T, lb, NULL, NULL, &err)) goto out;
    d = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) {
        double x = fabs((double)la[i] - lb[i]);
        if (!(x <= d)) d = x;
    }
    for (int t = 0; t + 1 < T; t++)
        for (int k = 0; k < 2; k++) {
            const float *row = (k ? lb : la) + (size_t)t * V;
            double mx = row[0], z = 0;
            for (int v = 1; v < V; v++) mx = fmax(mx, row[v]);
            for (int v = 0; v < V; v++) z += exp(row[v] - mx);
            s[k] += (log(z) + mx - row[ids[t + 1]]) / (T - 1);
        }
    if (nll) *nll = fabs(s[0] - s[1]);
out:
    free(la);
    free(lb);
    return d;
}

/* 1 if a and b encode every sample text to the same ids (with BOS). */
static int same_encodings(const cce_tokenizer *a, const cce_tokenizer *b, char *why, size_t cap) {
    static const char *const texts[] = {"Once upon a time, there was a little girl named Lily.",
                                        "  two  spaces\tand a tab\nnewline", "hello world", "digits 12345 and 3.14",
                                        "", "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac", "<s> not special </s>"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        cce_err err = {{0}};
        int ok = !cce_tokenizer_encode(a, texts[i], strlen(texts[i]), 1, &x, &nx, &err) &&
                 !cce_tokenizer_encode(b, texts[i], strlen(texts[i]), 1, &y, &ny, &err) && nx == ny &&
                 (nx == 0 || !memcmp(x, y, nx * sizeof *x));
        if (!ok) snprintf(why, cap, "text %zu (\"%.40s\"): %zu vs %zu ids %s", i, texts[i], nx, ny, err.msg);
        cce_free(x);
        cce_free(y);
        if (!ok) return 0;
    }
    return 1;
}

static int ids_25[25] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
                         401, 396, 267, 337, 335, 311, 267, 422};

/* A model (+ tokenizer) -> GGUF of dtype -> reload: config, weights (F32: bit-identical), logits
 * and NLL within the bounds, encodings identical. */
static void check_write_read(const cce_model *m, const cce_tokenizer *tok, cce_wtype dtype, const char *name,
                             double max_logit, double max_nll, const char *want_arch) {
    const char *path = tmp_path(name);
    cce_err err = {{0}};
    cce_gguf_export_info info;
    cce_status st = cce_export_gguf_ex(m, tok, path, dtype, &info, &err);
    CHECK_MSG(st == CCE_OK, "export: %s", err.msg);
    CHECK_STR(info.arch, want_arch);
    cce_model *g = NULL;
    cce_tokenizer *gt = NULL;
    CHECK_MSG(cce_load_gguf(path, &g, tok ? &gt : NULL, &err) == CCE_OK, "reload: %s", err.msg);
    double nll = INFINITY, d = logit_diff(m, g, ids_25, 25, &nll);
    int same_cfg = g->cfg.dim == m->cfg.dim && g->cfg.head_dim == m->cfg.head_dim && g->cfg.tied == m->cfg.tied &&
                   g->cfg.vocab_size == m->cfg.vocab_size && g->cfg.norm_eps == m->cfg.norm_eps &&
                   g->cfg.rope_theta == m->cfg.rope_theta && g->cfg.rope_interleaved == 1 && g->cfg.seq_len == m->cfg.seq_len;
    int bit_same = 1;
    if (dtype == CCE_WT_F32 && m->cfg.rope_interleaved && g->cfg.n_layers == m->cfg.n_layers) {
        float *x = malloc(512 * 512 * sizeof(float)), *y = malloc(512 * 512 * sizeof(float));
        for (int l = 0; l < m->cfg.n_layers && bit_same; l++)
            for (int k = 0; k < CCE_LIN_COUNT && bit_same; k++) {
                const cce_linear *a = cce_layer_lin_c(&m->layers[l], k), *b = cce_layer_lin_c(&g->layers[l], k);
                if (!cce_linear_present(a) || a->out * a->in > 512 * 512) continue;
                cce_linear_rows(a, 0, a->out, x);
                cce_linear_rows(b, 0, b->out, y);
                bit_same = a->out == b->out && a->in == b->in && !memcmp(x, y, (size_t)a->out * a->in * sizeof(float));
            }
        free(x);
        free(y);
    }
    char why[300] = "";
    int enc_same = !tok || (gt && same_encodings(tok, gt, why, sizeof why));
    printf("# %s (%s): max |logit diff| %.3g, NLL diff %.3g, %llu bytes%s%s\n", name, cce_wtype_name(dtype), d, nll,
           (unsigned long long)info.bytes, info.note[0] ? "; note: " : "", info.note);
    cce_tokenizer_free(gt);
    cce_model_free(g);
    CHECK_MSG(same_cfg, "config differs after the round trip");
    CHECK_MSG(bit_same, "an F32 weight differs after the round trip");
    CHECK_MSG(d <= max_logit, "max |logit diff| %.3g > %.3g", d, max_logit);
    CHECK_MSG(nll <= max_nll, "NLL diff %.3g > %.3g", nll, max_nll);
    CHECK_MSG(enc_same, "tokenizer encodes differently after the round trip: %s", why);
}

/* Measured (max |logit diff| / NLL diff over 25 tokens): F32 0 / 0 for both (bit-identical
 * weights, the same sums); F16 0.0113 / 3.5e-5 (stories260K), 0.0029 / 1.5e-5 (tinystories_2m5);
 * Q8_0 0.276 / 5.3e-4 and 0.084 / 7.4e-4 (stories260K keeps its 172-wide down projections in
 * F16). Bounds ~2-3x; the whole-text losses are in tests/e2e/export.sh. */
TEST(write_read_stories260k) {
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_model_open(harness_data("llama2c/stories260K.bin"), NULL, &m, &tok, &err) == CCE_OK, "%s", err.msg);
    check_write_read(m, tok, CCE_WT_F32, "s260k_f32.gguf", 1e-5, 1e-6, "llama");
    check_write_read(m, tok, CCE_WT_F16, "s260k_f16.gguf", 0.03, 1e-4, "llama");
    check_write_read(m, tok, CCE_WT_Q8_0, "s260k_q8_0.gguf", 0.6, 1.5e-3, "llama");
    cce_tokenizer_free(tok);
    cce_model_free(m);
}

TEST(write_read_tinystories_2m5) {
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_model_open(harness_data("llama2c/tinystories_2m5.bin"), NULL, &m, &tok, &err) == CCE_OK, "%s", err.msg);
    check_write_read(m, tok, CCE_WT_F32, "2m5_f32.gguf", 1e-5, 1e-6, "llama");
    check_write_read(m, tok, CCE_WT_F16, "2m5_f16.gguf", 0.01, 5e-5, "llama");
    check_write_read(m, tok, CCE_WT_Q8_0, "2m5_q8_0.gguf", 0.25, 2.5e-3, "llama");
    cce_tokenizer_free(tok);
    cce_model_free(m);
}

/* Random f32 buffer owned by m. */
static float *rnd_buf(cce_model *m, cce_rng *r, size_t n, float scale) {
    float *p = cce_model_alloc(m, n, sizeof(float));
    for (size_t i = 0; p && i < n; i++) p[i] = scale * cce_rng_normal(r);
    return p;
}

/* Rows [rows] (n of them) of the f32 (out, in) matrix of l, into a new dense f32 linear. */
static cce_linear take_rows(cce_model *m, const cce_linear *l, const int *rows, int n) {
    float *w = cce_model_alloc(m, (size_t)n * l->in, sizeof(float));
    for (int i = 0; w && i < n; i++) cce_linear_rows(l, rows[i], 1, w + (size_t)i * l->in);
    return cce_linear_of(n, l->in, w);
}
/* Columns [cols] (n) of l. */
static cce_linear take_cols(cce_model *m, const cce_linear *l, const int *cols, int n) {
    float *w = cce_model_alloc(m, (size_t)l->out * n, sizeof(float)), row[512];
    for (int r = 0; w && r < l->out; r++) {
        cce_linear_rows(l, r, 1, row);
        for (int j = 0; j < n; j++) w[(size_t)r * n + j] = row[cols[j]];
    }
    return cce_linear_of(l->out, n, w);
}

/* A compressed-shape model derived from stories260K (d 64, 8 heads of 8, 4 KV heads, FFN 172):
 * block 0 keeps 6 heads over 3 KV heads and 128 FFN neurons; block 1 has no attention; block 2
 * is dropped; block 3 has its query heads reordered under an explicit (even, non-default) head
 * -> KV map; block 4 has a low-rank down projection and encoding biases on ffn_down and
 * attn_output. */
static cce_model *compressed_model(const cce_model *src) {
    cce_model *d = NULL;
    cce_err err;
    if (cce_model_derive(src, &d, &err)) return NULL;
    cce_rng r;
    cce_rng_seed(&r, 2024);
    int hd = 8;
    cce_layer *L = &d->layers[0];
    static const int heads0[6] = {0, 1, 2, 3, 6, 7}, kv0[3] = {0, 1, 3};
    int qrows[48], kvrows[24], hrows[128];
    for (int h = 0; h < 6; h++) for (int j = 0; j < hd; j++) qrows[h * hd + j] = heads0[h] * hd + j;
    for (int g = 0; g < 3; g++) for (int j = 0; j < hd; j++) kvrows[g * hd + j] = kv0[g] * hd + j;
    for (int i = 0; i < 128; i++) hrows[i] = i + i / 3;   // 128 of the 172 neurons
    L->wq = take_rows(d, &src->layers[0].wq, qrows, 48);
    L->wk = take_rows(d, &src->layers[0].wk, kvrows, 24);
    L->wv = take_rows(d, &src->layers[0].wv, kvrows, 24);
    L->wo = take_cols(d, &src->layers[0].wo, qrows, 48);
    L->w1 = take_rows(d, &src->layers[0].w1, hrows, 128);
    L->w3 = take_rows(d, &src->layers[0].w3, hrows, 128);
    L->w2 = take_cols(d, &src->layers[0].w2, hrows, 128);
    L->n_heads = 6;
    L->n_kv_heads = 3;
    L->hidden = 128;
    L = &d->layers[1];
    memset(&L->wq, 0, sizeof L->wq); memset(&L->wk, 0, sizeof L->wk);
    memset(&L->wv, 0, sizeof L->wv); memset(&L->wo, 0, sizeof L->wo);
    L->n_heads = L->n_kv_heads = 0;
    L->attn_norm = NULL;
    d->layers[2].dropped = 1;
    L = &d->layers[3];
    static const int perm[8] = {2, 0, 3, 1, 4, 5, 6, 7};
    static int head_kv3[8];
    int prows[64];
    for (int h = 0; h < 8; h++) {
        head_kv3[h] = perm[h] / 2;
        for (int j = 0; j < hd; j++) prows[h * hd + j] = perm[h] * hd + j;
    }
    L->wq = take_rows(d, &src->layers[3].wq, prows, 64);
    L->wo = take_cols(d, &src->layers[3].wo, prows, 64);
    L->head_kv = head_kv3;
    L = &d->layers[4];
    int rank = 16;
    memset(&L->w2, 0, sizeof L->w2);
    L->w2 = (cce_linear){.out = 64, .in = 172, .rank = rank, .u = rnd_buf(d, &r, 64 * (size_t)rank, 0.05f),
                         .v = rnd_buf(d, &r, (size_t)rank * 172, 0.05f), .b = rnd_buf(d, &r, 64, 0.05f)};
    L->wo.b = rnd_buf(d, &r, 64, 0.05f);
    if (cce_model_validate(d, "compressed", &err)) {
        fprintf(stderr, "validate: %s\n", err.msg);
        cce_model_free(d);
        return NULL;
    }
    return d;
}

TEST(write_read_compressed_deci) {
    cce_model *src = NULL, *d = NULL, *g = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_llama2c(harness_data("llama2c/stories260K.bin"), &src, &err) == CCE_OK, "%s", err.msg);
    d = compressed_model(src);
    if (!d) { cce_model_free(src); FAILF("could not build the compressed model"); }
    const char *path = tmp_path("compressed.gguf");
    cce_gguf_export_info info;
    cce_status st = cce_export_gguf_ex(d, NULL, path, CCE_WT_F32, &info, &err);
    if (st) { cce_model_free(d); cce_model_free(src); FAILF("export: %s", err.msg); }
    st = cce_load_gguf(path, &g, NULL, &err);
    if (st) { cce_model_free(d); cce_model_free(src); FAILF("reload: %s", err.msg); }
    double nll = 1, diff = logit_diff(d, g, ids_25, 25, &nll);
    CHECK_STR(info.arch, "deci");
    CHECK_EQ_INT(info.n_blocks, 4);
    CHECK_EQ_INT(info.n_lowrank, 1);
    CHECK_MSG(strstr(info.note, "1 low-rank linear(s) multiplied out"), "note: %s", info.note);
    CHECK_EQ_INT(g->cfg.n_layers, 4);
    static const int want[4][3] = {{6, 3, 128}, {0, 0, 172}, {8, 4, 172}, {8, 4, 172}};
    for (int l = 0; l < 4; l++)
        CHECK_MSG(g->layers[l].n_heads == want[l][0] && g->layers[l].n_kv_heads == want[l][1] && g->layers[l].hidden == want[l][2] &&
                  !g->layers[l].head_kv, "block %d: %d heads, %d kv, ffn %d", l, g->layers[l].n_heads,
                  g->layers[l].n_kv_heads, g->layers[l].hidden);
    CHECK(g->layers[3].w2.b && g->layers[3].wo.b && g->layers[3].w2.rank == 0);
    printf("# compressed deci F32 round trip: max |logit diff| %.3g, NLL diff %.3g\n", diff, nll);
    CHECK_MSG(diff < 1e-5, "max |logit diff| %.3g", diff);
    /* and Q8_0 (rows of 128 and 172 neurons: the 172-wide down projections fall back to F16) */
    cce_model_free(g);
    g = NULL;
    CHECK_MSG(cce_export_gguf_ex(d, NULL, path, CCE_WT_Q8_0, &info, &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_load_gguf(path, &g, NULL, &err) == CCE_OK, "%s", err.msg);
    diff = logit_diff(d, g, ids_25, 25, &nll);
    printf("# compressed deci Q8_0 round trip: max |logit diff| %.3g, NLL diff %.3g (%d F16 fallbacks)\n", diff, nll,
           info.n_f16_fallback);
    /* measured 0.35 / 0.0105: the random low-rank factors and biases make this model's logits
     * larger than the trained ones' */
    CHECK_MSG(diff < 0.8 && nll < 0.03, "Q8_0: max |logit diff| %.3g, NLL %.3g", diff, nll);
    CHECK_EQ_INT(g->layers[0].w1.wt, CCE_WT_Q8_0);
    CHECK_EQ_INT(g->layers[0].w2.wt, CCE_WT_Q8_0);   // 128 columns
    CHECK_EQ_INT(g->layers[1].w2.wt, CCE_WT_F16);    // 172 columns
    cce_model_free(g);
    cce_model_free(d);
    cce_model_free(src);
}

/* Half-rotation (Hugging Face) models: q/k rows and biases permuted into llama.cpp's order. */
TEST(write_read_half_rotation_with_biases) {
    cce_model *src = NULL, *d = NULL, *g = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_llama2c(harness_data("llama2c/stories260K.bin"), &src, &err) == CCE_OK, "%s", err.msg);
    CHECK(cce_model_derive(src, &d, &err) == CCE_OK);
    /* the same model in half-rotation order: rows of wq / wk permuted within heads */
    int hd = 8;
    cce_rng r;
    cce_rng_seed(&r, 5);
    d->cfg.rope_interleaved = 0;
    for (int l = 0; l < 5; l++) {
        cce_layer *L = &d->layers[l];
        cce_linear *qk[2] = {&L->wq, &L->wk};
        for (int k = 0; k < 2; k++) {
            int n = qk[k]->out, rows[64];
            for (int j = 0; j < n; j++) {
                int h = j / hd, jj = j % hd;
                rows[j] = h * hd + (jj < hd / 2 ? 2 * jj : 2 * (jj - hd / 2) + 1);
            }
            *qk[k] = take_rows(d, qk[k], rows, n);
            qk[k]->b = rnd_buf(d, &r, (size_t)n, 0.1f);
        }
        L->wv.b = rnd_buf(d, &r, (size_t)L->wv.out, 0.1f);
    }
    const char *path = tmp_path("half.gguf");
    CHECK_MSG(cce_export_gguf(d, NULL, path, CCE_WT_F32, &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_load_gguf(path, &g, NULL, &err) == CCE_OK, "%s", err.msg);
    double diff = logit_diff(d, g, ids_25, 25, NULL);
    CHECK_EQ_INT(g->cfg.rope_interleaved, 1);
    CHECK(g->layers[2].wq.b && g->layers[2].wk.b && g->layers[2].wv.b);
    cce_model_free(g);
    cce_model_free(d);
    cce_model_free(src);
    CHECK_MSG(diff < 1e-5, "half rotation -> GGUF: max |logit diff| %.3g", diff);
}

/* Llama-3 and linear RoPE scaling survive the round trip (as rope_freqs / rope.scaling.type). */
TEST(write_read_rope_scaling) {
    cce_model *src = NULL, *d = NULL, *g = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_llama2c(harness_data("llama2c/stories260K.bin"), &src, &err) == CCE_OK, "%s", err.msg);
    for (int kind = 0; kind < 2; kind++) {
        CHECK(cce_model_derive(src, &d, &err) == CCE_OK);
        d->cfg.rope_scaling = kind ? CCE_ROPE_SCALING_LINEAR : CCE_ROPE_SCALING_LLAMA3;
        d->cfg.rope_factor = 8;
        d->cfg.rope_low_freq_factor = 1;
        d->cfg.rope_high_freq_factor = 4;
        d->cfg.rope_orig_ctx = 64;
        const char *path = tmp_path("rope.gguf");
        CHECK_MSG(cce_export_gguf(d, NULL, path, CCE_WT_F32, &err) == CCE_OK, "%s", err.msg);
        CHECK_MSG(cce_load_gguf(path, &g, NULL, &err) == CCE_OK, "%s", err.msg);
        CHECK_EQ_INT(g->cfg.rope_scaling, kind ? CCE_ROPE_SCALING_LINEAR : CCE_ROPE_SCALING_NONE);
        CHECK((g->cfg.rope_freq_div != NULL) == !kind);
        double worst = 0;
        for (int j = 0; j < 4; j++) worst = fmax(worst, fabs(cce_rope_inv_freq(&g->cfg, j) / cce_rope_inv_freq(&d->cfg, j) - 1));
        double diff = logit_diff(d, g, ids_25, 25, NULL);
        cce_model_free(g);
        cce_model_free(d);
        CHECK_MSG(worst < 1e-6, "frequencies differ by %.3g (relative)", worst);
        CHECK_MSG(diff < 1e-4, "%s: max |logit diff| %.3g", kind ? "linear" : "llama3", diff);
    }
    cce_model_free(src);
}

/* What llama.cpp cannot run is refused in one line naming the block, and nothing is written. */
TEST(write_refusals) {
    cce_model *src = NULL, *d = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_llama2c(harness_data("llama2c/stories260K.bin"), &src, &err) == CCE_OK, "%s", err.msg);
    const char *path = tmp_path("refused.gguf");
    struct { int what; const char *msg; cce_status st; } cases[] = {
        {0, "block 2 has attention but no feed-forward sublayer", CCE_EUNSUPPORTED},
        {1, "block 1 maps its 8 query heads unevenly onto 4 KV heads", CCE_EUNSUPPORTED},
        {2, "block 0 has a q bias of 48 rows", CCE_EUNSUPPORTED},
        {3, "GGUF export writes Llama-family models", CCE_EUNSUPPORTED},
        {4, "every block of the model is dropped", CCE_EINVAL},
        {5, "GGUF export type bf16 is not supported", CCE_EINVAL},
    };
    static const int uneven[8] = {0, 0, 0, 1, 2, 2, 3, 3};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(cce_model_derive(src, &d, &err) == CCE_OK);
        cce_wtype dt = CCE_WT_F32;
        cce_layer *L = &d->layers[cases[i].what == 1 ? 1 : cases[i].what == 2 ? 0 : 2];
        switch (cases[i].what) {
        case 0:
            L->hidden = 0;
            L->ffn_norm = NULL;
            memset(&L->w1, 0, sizeof L->w1); memset(&L->w2, 0, sizeof L->w2); memset(&L->w3, 0, sizeof L->w3);
            break;
        case 1: L->head_kv = uneven; break;
        case 2: {
            int rows[48];
            for (int j = 0; j < 48; j++) rows[j] = j;
            L->wq = take_rows(d, &src->layers[0].wq, rows, 48);
            int cols[48];
            for (int j = 0; j < 48; j++) cols[j] = j;
            L->wo = take_cols(d, &src->layers[0].wo, cols, 48);
            L->n_heads = 6;
            L->n_kv_heads = 3;
            int kvr[24];
            for (int j = 0; j < 24; j++) kvr[j] = j;
            L->wk = take_rows(d, &src->layers[0].wk, kvr, 24);
            L->wv = take_rows(d, &src->layers[0].wv, kvr, 24);
            cce_rng r;
            cce_rng_seed(&r, 1);
            L->wq.b = rnd_buf(d, &r, 48, 0.1f);
            break;
        }
        case 3: d->cfg.arch = CCE_ARCH_GPT2; break;
        case 4: for (int l = 0; l < 5; l++) d->layers[l].dropped = 1; break;
        case 5: dt = CCE_WT_BF16; break;
        }
        unlink(path);
        cce_status st = cce_export_gguf(d, NULL, path, dt, &err);
        CHECK_MSG(st == cases[i].st && strstr(err.msg, cases[i].msg) && strstr(err.msg, path) && !strchr(err.msg, '\n'),
                  "case %d: status %d: %s", cases[i].what, (int)st, err.msg);
        CHECK_MSG(access(path, F_OK) != 0, "case %d: a file was written", cases[i].what);
        cce_model_free(d);
    }
    cce_model_free(src);
}

/* A byte-level tokenizer survives the round trip (tokens, types, merges, pre-tokenizer). */
TEST(write_read_byte_level_tokenizer) {
    bl_vocab();
    tcfg c = SMALL;
    c.vocab = BL_VOCAB;
    const char *pres[4] = {"gpt-2", "qwen2", "llama-bpe", "smollm"};
    for (int k = 0; k < 4; k++) {
        gspec g;
        gs_llama(&g, c, T_F32, 0, NULL);
        kv_str(&g, "tokenizer.ggml.model", "gpt2");
        kv_str(&g, "tokenizer.ggml.pre", pres[k]);
        kv_arr(&g, "tokenizer.ggml.tokens", V_STR, BL_VOCAB, bl_tokens);
        kv_arr(&g, "tokenizer.ggml.token_type", V_I32, BL_VOCAB, bl_types);
        kv_arr(&g, "tokenizer.ggml.merges", V_STR, 5, bl_merges);
        kv_u32(&g, "tokenizer.ggml.eos_token_id", 261);
        cce_model *m = NULL, *m2 = NULL;
        cce_tokenizer *tok = NULL, *tok2 = NULL;
        cce_err err = {{0}};
        int ok = load_ok(gs_file(&g, "bl_src.gguf"), &m, &tok, &err);
        gs_free(&g);
        CHECK_MSG(ok, "%s", err.msg);
        const char *out = tmp_path("bl_out.gguf");
        cce_gguf_export_info info;
        CHECK_MSG(cce_export_gguf_ex(m, tok, out, CCE_WT_F16, &info, &err) == CCE_OK, "%s", err.msg);
        CHECK_MSG(!info.note[0], "note: %s", info.note);
        const char *want_pre = pres[k];
        cce_gguf_meta *meta = NULL;
        int nm = 0, pre_ok = 0;
        CHECK(cce_gguf_list_meta(out, &meta, &nm, &err) == CCE_OK);
        for (int i = 0; i < nm; i++)
            if (!strcmp(meta[i].key, "tokenizer.ggml.pre")) {
                char q[40];
                snprintf(q, sizeof q, "\"%s\"", want_pre);
                pre_ok = !strcmp(meta[i].value, q);
            }
        cce_free(meta);
        CHECK_MSG(pre_ok, "tokenizer.ggml.pre is not '%s'", want_pre);
        CHECK_MSG(cce_load_gguf(out, &m2, &tok2, &err) == CCE_OK && tok2, "%s", err.msg);
        char why[300] = "";
        int same = same_encodings(tok, tok2, why, sizeof why);
        int *ids = NULL;
        size_t n = 0;
        CHECK(cce_tokenizer_encode(tok2, "hello world", 11, 0, &ids, &n, &err) == CCE_OK);
        int first = n ? ids[0] : -1;
        cce_free(ids);
        CHECK_EQ_INT(cce_tokenizer_kind(tok2), CCE_TOK_BYTELEVEL);
        CHECK_EQ_INT(cce_tokenizer_eos(tok2), 261);
        cce_tokenizer_free(tok);
        cce_tokenizer_free(tok2);
        cce_model_free(m);
        cce_model_free(m2);
        CHECK_MSG(same, "%s", why);
        CHECK_EQ_INT(first, 259);   // "hello" still merges
    }
}

/* Atomic writes: an interrupted export (cce_interrupted between tensors) leaves the previous file
 * as it was and no temporary file; run in a child process, as the interrupt flag is one-way. */
TEST(write_interrupted_keeps_previous) {
    cce_model *m = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_llama2c(harness_data("llama2c/stories260K.bin"), &m, &err) == CCE_OK, "%s", err.msg);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/atomic", harness_tmpdir());
    mkdir(dir, 0777);
    char path[800];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    CHECK(file_write(path, "previous contents", 17) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        cce_interrupt();
        cce_err e2 = {{0}};
        cce_status st = cce_export_gguf(m, NULL, path, CCE_WT_F32, &e2);
        _exit(st == CCE_ECANCEL && strstr(e2.msg, "interrupted") ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    cce_model_free(m);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the interrupted export did not fail with ECANCEL");
    char *text = NULL;
    size_t len = 0;
    CHECK(cce_read_file(path, 1 << 20, &text, &len, &err) == CCE_OK);
    int same = len == 17 && !memcmp(text, "previous contents", 17);
    cce_free(text);
    CHECK_MSG(same, "the previous file was changed");
    DIR *dd = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (dd && (de = readdir(dd))) n += de->d_name[0] != '.';
    if (dd) closedir(dd);
    CHECK_MSG(n == 1, "%d files in %s (a temporary file was left)", n, dir);
}

/* Fail the n-th allocation for every n: each load fails with ENOMEM naming the file, or
 * succeeds once n is past the last allocation (ASan builds also check nothing leaks). */
TEST(allocation_failures) {
    gspec g;
    gs_llama(&g, SMALL, T_Q8_0, 1, "llama");
    const char *path = gs_file(&g, "oom.gguf");
    gs_free(&g);
    int loaded = 0;
    for (long n = 1; n < 500 && !loaded; n++) {
        cce_model *m = NULL;
        cce_tokenizer *tok = NULL;
        cce_err err = {{0}};
        cce_alloc_fail_after(n);
        cce_status st = cce_load_gguf(path, &m, &tok, &err);
        cce_alloc_fail_after(0);
        if (st == CCE_OK) {
            loaded = 1;
            CHECK(tok != NULL);
            cce_model_free(m);
            cce_tokenizer_free(tok);
            CHECK_MSG(n > 5, "loaded with allocation %ld failing", n);
            break;
        }
        CHECK_MSG(st == CCE_ENOMEM && m == NULL && tok == NULL, "n=%ld: status %d: %s", n, (int)st, err.msg);
        CHECK_MSG(strstr(err.msg, path) != NULL, "n=%ld: %s", n, err.msg);
    }
    CHECK(loaded);
    /* and the listing */
    loaded = 0;
    for (long n = 1; n < 100 && !loaded; n++) {
        cce_gguf_tensor *ts = NULL;
        int cnt = 0;
        cce_err err = {{0}};
        cce_alloc_fail_after(n);
        cce_status st = cce_gguf_list(path, &ts, &cnt, NULL, 0, &err);
        cce_alloc_fail_after(0);
        if (st == CCE_OK) { loaded = 1; CHECK_EQ_INT(cnt, 21); cce_free(ts); break; }
        CHECK_MSG(st == CCE_ENOMEM && ts == NULL && strstr(err.msg, path), "n=%ld: status %d: %s", n, (int)st, err.msg);
    }
    CHECK(loaded);
    /* and the metadata listing */
    loaded = 0;
    for (long n = 1; n < 100 && !loaded; n++) {
        cce_gguf_meta *mt = NULL;
        int cnt = 0;
        cce_err err = {{0}};
        cce_alloc_fail_after(n);
        cce_status st = cce_gguf_list_meta(path, &mt, &cnt, &err);
        cce_alloc_fail_after(0);
        if (st == CCE_OK) { loaded = 1; CHECK(cnt > 10 && !strcmp(mt[0].key, "general.architecture")); cce_free(mt); break; }
        CHECK_MSG(st == CCE_ENOMEM && mt == NULL && strstr(err.msg, path), "n=%ld: status %d: %s", n, (int)st, err.msg);
    }
    CHECK(loaded);
}

int main(void) {
    RUN(real_stories260k);
    RUN(real_forward_matches_llama2c);
    RUN(real_requant_f16);
    RUN(real_requant_bf16);
    RUN(real_requant_q8_0);
    RUN(real_stories260k_tokenizer);
    RUN(real_list);
    RUN(dtype_f32);
    RUN(dtype_f32_tied);
    RUN(dtype_f32_align1);
    RUN(dtype_f32_align64);
    RUN(dtype_f16);
    RUN(dtype_bf16);
    RUN(dtype_q8_0);
    RUN(dtype_q4_0);
    RUN(dtype_q4_1);
    RUN(dtype_q5_0);
    RUN(dtype_q5_1);
    RUN(dtype_q4_k);
    RUN(dtype_q5_k);
    RUN(dtype_q6_k);
    RUN(known_dequant_values);
    RUN(tokenizer_from_metadata);
    RUN(tokenizer_other_models);
    RUN(list_other_arch);
    RUN(zero_byte_and_missing);
    RUN(every_prefix);
    RUN(bad_header);
    RUN(bad_metadata);
    RUN(bad_alignment);
    RUN(bad_tensor_infos);
    RUN(bad_llama_metadata);
    RUN(bad_llama_tensors);
    RUN(arch_qwen2_matches_llama);
    RUN(arch_mistral_alias);
    RUN(arch_deci_per_layer);
    RUN(bad_per_layer_metadata);
    RUN(rope_scaling_and_window);
    RUN(tokenizer_byte_level);
    RUN(write_read_stories260k);
    RUN(write_read_tinystories_2m5);
    RUN(write_read_compressed_deci);
    RUN(write_read_half_rotation_with_biases);
    RUN(write_read_rope_scaling);
    RUN(write_refusals);
    RUN(write_read_byte_level_tokenizer);
    RUN(write_interrupted_keeps_previous);
    RUN(allocation_failures);
    free(TB.b);
    return harness_done();
}
