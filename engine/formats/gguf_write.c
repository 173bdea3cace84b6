/*
 * gguf_write.c — write a (possibly compressed) Llama-family model as a GGUF v3 file that
 * llama.cpp-style readers and cce_load_gguf accept (see export.h for the contract).
 *
 * What is written. general.architecture "llama" when every kept block has the same head count,
 * KV head count and FFN width (and both sublayers); otherwise "deci", llama.cpp's form for
 * models whose layers differ, with attention.head_count / head_count_kv / feed_forward_length
 * as int32 arrays of one entry per block (0 heads: a block without attention, whose attn_*
 * tensors are absent). Dropped blocks (and blocks with neither sublayer) are left out and the
 * rest renumbered. Tensor names and shapes are llama.cpp's: token_embd, output_norm, output
 * (untied heads only), blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
 * ffn_gate, ffn_up, ffn_down}.weight, and llama.cpp's optional biases blk.N.attn_{q,k,v,output}.bias
 * and blk.N.ffn_{gate,up,down}.bias for the biases the model has (encoding biases on ffn_down /
 * attn_output included; llama.cpp reads them for llama and deci, with q biases shaped
 * [embedding_length]). rope_freqs.weight carries RoPE scaling as llama.cpp does for Llama 3
 * (per-pair divisors of the frequency); plain linear scaling is written as rope.scaling.type.
 *
 * Rows are rearranged, never the math: llama.cpp rotates adjacent RoPE pairs, so the q/k rows
 * (and biases) of half-rotation models (Hugging Face: rope_interleaved = 0) are permuted within
 * each head as llama.cpp's converter does (GGUF row 2i + a = HF row a·d_h/2 + i); llama2.c and
 * GGUF models are already in that order. llama.cpp maps query head h to KV head
 * h / (heads / kv_heads): a compressed block whose head -> KV map is another even grouping has
 * its query heads (rows of attn_q and its bias, column blocks of attn_output) reordered into
 * that form, which changes no output; an uneven grouping cannot be expressed and is refused.
 * Low-rank factors are multiplied out (GGUF has no factored linear) and the writer says so.
 *
 * Refused with one line (llama.cpp could not run the file as the model means it): GPT-2 models;
 * a block with attention but no FFN (llama.cpp's deci skips the attention output of FFN-free
 * blocks); uneven head -> KV groups; a q bias whose width is not embedding_length.
 *
 * Types: matrices in the requested type (F32, F16 or Q8_0 with cce_quantize's ggml-reference
 * rounding; Q8_0 matrices whose rows are not a multiple of 32 fall back to F16, as llama.cpp's
 * converter does); vectors (norms, biases, rope_freqs) always F32.
 *
 * Tokenizer metadata comes from the tokenizer's own tokenizer.json form (cce_tokenizer_save_hf
 * into a temporary file beside the output, parsed back): SentencePiece-style vocabularies as
 * tokenizer.ggml.model "llama" with tokens (U+2581 for space, <0xXX> byte tokens), scores and
 * token types; byte-level ones as "gpt2" with tokens, token types, merges and the
 * tokenizer.ggml.pre name of their pre-tokenizer (gpt-2, llama-bpe, qwen2, smollm). Forms GGUF
 * has no name for are written as the nearest one and said in the note.
 *
 * Writing is atomic and streamed: the header is built in memory, then each tensor is produced
 * one row at a time (decoded or multiplied out, permuted, encoded) into a 1 MiB buffer of a
 * temporary file beside the output, which is fsynced and renamed over it (then the directory
 * is fsynced). cce_interrupted() is polled between tensors; on interrupt or any error the
 * temporary file is removed and a previous file at the path is left unchanged.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "export.h"
#include "gguf_file.h"
#include "model.h"
#include "quant.h"
#include "tokenizer.h"
#include "util.h"

#define GW_ALIGN 32
#define GW_BUF (1u << 20)
#define GW_TOK_JSON_MAX ((size_t)512 << 20)

/* ---- a growable byte buffer for the header ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} gw_buf;

static void gw_put(gw_buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = cce_realloc(b->p, cap, 1);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void gw_u32(gw_buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    gw_put(b, x, 4);
}
static void gw_u64(gw_buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    gw_put(b, x, 8);
}
static void gw_f32(gw_buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    gw_u32(b, u);
}
static void gw_strn(gw_buf *b, const char *s, size_t n) {
    gw_u64(b, n);
    gw_put(b, s, n);
}
static void gw_str(gw_buf *b, const char *s) { gw_strn(b, s, strlen(s)); }

/* metadata entries: the key, then the typed value */
static void kv_key(gw_buf *b, int *n, const char *key, uint32_t type) {
    gw_str(b, key);
    gw_u32(b, type);
    (*n)++;
}
static void kv_u32(gw_buf *b, int *n, const char *key, uint32_t v) { kv_key(b, n, key, GG_U32); gw_u32(b, v); }
static void kv_f32(gw_buf *b, int *n, const char *key, float v) { kv_key(b, n, key, GG_F32); gw_f32(b, v); }
static void kv_bool(gw_buf *b, int *n, const char *key, int v) {
    kv_key(b, n, key, GG_BOOL);
    uint8_t x = (uint8_t)(v != 0);
    gw_put(b, &x, 1);
}
static void kv_str(gw_buf *b, int *n, const char *key, const char *s) { kv_key(b, n, key, GG_STRING); gw_str(b, s); }
static void kv_arr(gw_buf *b, int *n, const char *key, uint32_t et, uint64_t count) {
    kv_key(b, n, key, GG_ARRAY);
    gw_u32(b, et);
    gw_u64(b, count);
}

/* ---- the plan: what is written ---- */

typedef struct {
    char name[64];
    int n_dims;
    int64_t ne0, ne1;          // ne0 = row length (in), ne1 = rows (out); vectors: ne1 = 1
    uint32_t type;             // ggml type
    const cce_linear *lin;     // matrix source (any stored type or low-rank), or NULL
    const float *vec;          // vector source (ne0), or NULL
    const int *row_map;        // (ne1 for matrices, ne0 for vectors) source index of each output row, or NULL
    const int *col_map;        // (ne0) source column of each output column, or NULL
    uint64_t offset, nbytes;   // relative to the data section
} gw_tensor;

typedef struct {
    const cce_model *m;
    const char *path;
    cce_wtype dtype;
    int deci;
    int n_blocks;
    int *src;                  // (n_blocks) source layer of each written block
    gw_tensor *t;              // (n_t)
    int n_t, cap_t;
    void **owned;              // allocations to free (row maps, rope_freqs)
    int n_owned, cap_owned;
    int n_lowrank, n_f16;
    char note[512];
} gw_plan;

/* Append one clause to the note ("; "-separated, truncated at its size). */
static void note_add(gw_plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_add(gw_plan *p, const char *fmt, ...) {
    size_t k = strlen(p->note);
    if (k + 3 >= sizeof p->note) return;
    if (k) k += (size_t)snprintf(p->note + k, sizeof p->note - k, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note + k, sizeof p->note - k, fmt, ap);
    va_end(ap);
}

static void *gw_own(gw_plan *p, size_t n, size_t size) {
    if (p->n_owned == p->cap_owned) {
        int cap = p->cap_owned ? 2 * p->cap_owned : 64;
        void **o = cce_realloc(p->owned, (size_t)cap, sizeof *o);
        if (!o) return NULL;
        p->owned = o;
        p->cap_owned = cap;
    }
    void *x = cce_alloc(n ? n : 1, size);
    if (x) p->owned[p->n_owned++] = x;
    return x;
}

static gw_tensor *gw_add(gw_plan *p, cce_err *err) {
    if (p->n_t == p->cap_t) {
        int cap = p->cap_t ? 2 * p->cap_t : 64;
        gw_tensor *t = cce_realloc(p->t, (size_t)cap, sizeof *t);
        if (!t) {
            cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p->path);
            return NULL;
        }
        p->t = t;
        p->cap_t = cap;
    }
    gw_tensor *t = &p->t[p->n_t++];
    memset(t, 0, sizeof *t);
    return t;
}

static cce_status gw_vec(gw_plan *p, const char *name, const float *v, int64_t n, const int *map, cce_err *err) {
    gw_tensor *t = gw_add(p, err);
    if (!t) return CCE_ENOMEM;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = 1;
    t->ne0 = n;
    t->ne1 = 1;
    t->type = GGML_F32;
    t->vec = v;
    t->row_map = map;
    return CCE_OK;
}

static cce_status gw_mat(gw_plan *p, const char *name, const cce_linear *l, const int *row_map, const int *col_map,
                         cce_err *err) {
    gw_tensor *t = gw_add(p, err);
    if (!t) return CCE_ENOMEM;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = 2;
    t->ne0 = l->in;
    t->ne1 = l->out;
    t->lin = l;
    t->row_map = row_map;
    t->col_map = col_map;
    t->type = p->dtype == CCE_WT_F16 ? GGML_F16 : p->dtype == CCE_WT_Q8_0 ? GGML_Q8_0 : GGML_F32;
    if (t->type == GGML_Q8_0 && l->in % 32) {
        t->type = GGML_F16;
        p->n_f16++;
    }
    if (!l->w) p->n_lowrank++;
    return CCE_OK;
}

/* Rows of a q or k projection in GGUF order: output row (h, j) comes from source row
 * (heads[h], j') with j' = j for interleaved models and (j % 2)·hd/2 + j/2 for half-rotation
 * ones. heads NULL: identity head order. Returns (n_heads·hd) indices or NULL when the map is
 * the identity. */
static int *gw_qk_map(gw_plan *p, int n_heads, const int *heads, cce_err *err) {
    int hd = p->m->cfg.head_dim, half = !p->m->cfg.rope_interleaved;
    if (!half && !heads) return NULL;
    int *map = gw_own(p, (size_t)n_heads * hd, sizeof *map);
    if (!map) {
        cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p->path);
        return NULL;
    }
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < hd; j++) {
            int src_h = heads ? heads[h] : h, jj = half ? (j % 2) * (hd / 2) + j / 2 : j;
            map[h * hd + j] = src_h * hd + jj;
        }
    return map;
}

/* Query head order that makes layer L's head -> KV map llama.cpp's h / (heads / kv): the heads
 * of KV head 0 first, then of KV head 1, ... (stable). NULL when the map already is that
 * (*identity = 1) or cannot be made so (*identity = 0: uneven groups). */
static int *gw_head_order(gw_plan *p, const cce_layer *L, int *identity) {
    int H = L->n_heads, G = L->n_kv_heads, per = H / G;
    *identity = 1;
    for (int h = 0; h < H; h++)
        if (cce_layer_kv_of(L, h) != h / per) *identity = 0;
    if (*identity) return NULL;
    if (H % G) return NULL;
    int *count = gw_own(p, (size_t)G, sizeof *count), *order = gw_own(p, (size_t)H, sizeof *order);
    if (!count || !order) return NULL;
    memset(count, 0, (size_t)G * sizeof *count);
    for (int h = 0; h < H; h++) count[cce_layer_kv_of(L, h)]++;
    for (int g = 0; g < G; g++)
        if (count[g] != per) return NULL;
    int k = 0;
    for (int g = 0; g < G; g++)
        for (int h = 0; h < H; h++)
            if (cce_layer_kv_of(L, h) == g) order[k++] = h;
    return order;
}

static const char *const gw_lin_gguf[CCE_LIN_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                       "ffn_gate", "ffn_up", "ffn_down"};

static cce_status gw_plan_build(gw_plan *p, cce_err *err) {
    const cce_model *m = p->m;
    const cce_config *c = &m->cfg;
    cce_status s;
    char name[64];
    if (c->arch != CCE_ARCH_LLAMA)
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: GGUF export writes Llama-family models; this model is %s "
                           "(use --format hf)", p->path, cce_arch_name(c->arch));
    p->src = gw_own(p, (size_t)c->n_layers, sizeof *p->src);
    if (!p->src) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p->path);
    for (int l = 0; l < c->n_layers; l++) {
        const cce_layer *L = &m->layers[l];
        if (L->dropped || (L->n_heads == 0 && L->hidden == 0)) continue;
        if (L->n_heads > 0 && L->hidden == 0)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: block %d has attention but no feed-forward sublayer; llama.cpp's "
                               "deci architecture drops the attention output of such blocks, so GGUF cannot express it "
                               "(use --format hf)", p->path, l);
        if (L->n_heads > 0 && L->wq.b && L->wq.out != c->dim)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: block %d has a q bias of %d rows; llama.cpp reads attn_q.bias "
                               "as embedding_length (%d) rows, so GGUF cannot express it (use --format hf)", p->path, l,
                               L->wq.out, c->dim);
        p->src[p->n_blocks++] = l;
    }
    if (!p->n_blocks)
        return cce_err_set(err, CCE_EINVAL, "%s: every block of the model is dropped; nothing to export", p->path);
    const cce_layer *F = &m->layers[p->src[0]];
    for (int i = 0; i < p->n_blocks; i++) {
        const cce_layer *L = &m->layers[p->src[i]];
        if (L->n_heads != F->n_heads || L->n_kv_heads != F->n_kv_heads || L->hidden != F->hidden || L->n_heads == 0)
            p->deci = 1;
    }

    /* tensors, in llama.cpp's order */
    if ((s = gw_mat(p, "token_embd.weight", &m->tok_emb, NULL, NULL, err))) return s;
    if (!c->tied && (s = gw_mat(p, "output.weight", &m->lm_head, NULL, NULL, err))) return s;
    if ((s = gw_vec(p, "output_norm.weight", m->final_norm, c->dim, NULL, err))) return s;
    /* RoPE scaling other than plain linear: per-pair divisors θ_j / f_j */
    if (c->rope_freq_div || c->rope_scaling == CCE_ROPE_SCALING_LLAMA3) {
        float *div = gw_own(p, (size_t)c->head_dim / 2, sizeof *div);   // (head_dim/2)
        if (!div) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p->path);
        for (int j = 0; j < c->head_dim / 2; j++)
            div[j] = (float)(pow((double)c->rope_theta, -2.0 * j / c->head_dim) / cce_rope_inv_freq(c, j));
        if ((s = gw_vec(p, "rope_freqs.weight", div, c->head_dim / 2, NULL, err))) return s;
    }
    for (int i = 0; i < p->n_blocks; i++) {
        const cce_layer *L = &m->layers[p->src[i]];
        if (L->n_heads > 0) {
            int identity;
            const int *order = gw_head_order(p, L, &identity);
            if (!identity && !order)
                return cce_err_set(err, CCE_EUNSUPPORTED, "%s: block %d maps its %d query heads unevenly onto %d KV heads; "
                                   "llama.cpp groups them evenly (head h reads KV head h / %d), so GGUF cannot express it "
                                   "(use --format hf)", p->path, p->src[i], L->n_heads, L->n_kv_heads,
                                   L->n_heads / L->n_kv_heads);
            int hd = c->head_dim, *wo_cols = NULL;
            const int *qmap = gw_qk_map(p, L->n_heads, order, err), *kmap = gw_qk_map(p, L->n_kv_heads, NULL, err);
            if ((!qmap && (order || !c->rope_interleaved)) || (!kmap && !c->rope_interleaved)) return CCE_ENOMEM;
            if (order) {
                if (!(wo_cols = gw_own(p, (size_t)L->n_heads * hd, sizeof *wo_cols)))
                    return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p->path);
                for (int h = 0; h < L->n_heads; h++)
                    for (int j = 0; j < hd; j++) wo_cols[h * hd + j] = order[h] * hd + j;
            }
            snprintf(name, sizeof name, "blk.%d.attn_norm.weight", i);
            if ((s = gw_vec(p, name, L->attn_norm, c->dim, NULL, err))) return s;
            const int *rows[4] = {qmap, kmap, NULL, NULL}, *cols[4] = {NULL, NULL, NULL, wo_cols};
            for (int k = 0; k < 4; k++) {
                const cce_linear *lin = cce_layer_lin_c(L, k);
                snprintf(name, sizeof name, "blk.%d.%s.weight", i, gw_lin_gguf[k]);
                if ((s = gw_mat(p, name, lin, rows[k], cols[k], err))) return s;
                snprintf(name, sizeof name, "blk.%d.%s.bias", i, gw_lin_gguf[k]);
                if (lin->b && (s = gw_vec(p, name, lin->b, lin->out, rows[k], err))) return s;
            }
        }
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", i);
        if ((s = gw_vec(p, name, L->ffn_norm, c->dim, NULL, err))) return s;
        for (int k = CCE_LIN_W1; k <= CCE_LIN_W2; k++) {
            const cce_linear *lin = cce_layer_lin_c(L, k);
            snprintf(name, sizeof name, "blk.%d.%s.weight", i, gw_lin_gguf[k]);
            if ((s = gw_mat(p, name, lin, NULL, NULL, err))) return s;
            snprintf(name, sizeof name, "blk.%d.%s.bias", i, gw_lin_gguf[k]);
            if (lin->b && (s = gw_vec(p, name, lin->b, lin->out, NULL, err))) return s;
        }
    }
    /* data layout */
    uint64_t off = 0;
    for (int i = 0; i < p->n_t; i++) {
        gw_tensor *t = &p->t[i];
        cce_wtype wt = cce_ggf_wtype(t->type);
        uint64_t rb = cce_wtype_row_bytes(wt, t->ne0);
        if (!rb || !cce_u64_mul(rb, (uint64_t)t->ne1, &t->nbytes) || !cce_u64_add(off, GW_ALIGN - 1, &off))
            return cce_err_set(err, CCE_EINVAL, "%s: tensor '%s': size overflows", p->path, t->name);
        off &= ~(uint64_t)(GW_ALIGN - 1);
        t->offset = off;
        if (!cce_u64_add(off, t->nbytes, &off))
            return cce_err_set(err, CCE_EINVAL, "%s: tensor '%s': size overflows", p->path, t->name);
        if (!t->lin && !t->vec)
            return cce_err_set(err, CCE_EINVAL, "%s: tensor '%s' has no data in the model", p->path, t->name);
    }
    if (p->n_lowrank) note_add(p, "%d low-rank linear(s) multiplied out (GGUF stores dense matrices)", p->n_lowrank);
    if (p->n_f16) note_add(p, "%d matrix(es) with rows not a multiple of 32 written as F16 instead of Q8_0", p->n_f16);
    if (c->sliding_window > 0)
        note_add(p, "the sliding window of %d tokens is recorded as attention.sliding_window, which llama.cpp's "
                    "llama architecture does not apply", c->sliding_window);
    return CCE_OK;
}

/* ---- tokenizer metadata ---- */

/* The tokenizer as its tokenizer.json tree (written by cce_tokenizer_save_hf to a temporary
 * file beside path, read back and removed). */
static cce_status gw_tok_json(const cce_tokenizer *tok, const char *path, cJSON **out, cce_err *err) {
    *out = NULL;
    size_t pl = strlen(path);
    char *tmp = cce_alloc(pl + 24, 1);
    if (!tmp) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, pl + 24, "%s.tok.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cce_status s = cce_err_set(err, CCE_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        cce_free(tmp);
        return s;
    }
    close(fd);
    char *text = NULL;
    size_t len = 0;
    cce_status s = cce_tokenizer_save_hf(tok, tmp, err);
    if (!s) s = cce_read_file(tmp, GW_TOK_JSON_MAX, &text, &len, err);
    unlink(tmp);
    cce_free(tmp);
    if (s) return cce_err_prefix(err, s, path);
    *out = cJSON_ParseWithLength(text, len);
    cce_free(text);
    if (!*out) return cce_err_set(err, CCE_ENOMEM, "%s: cannot parse the tokenizer's tokenizer.json form", path);
    return CCE_OK;
}

static int gw_json_true(const cJSON *o, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key)); }
static const char *gw_json_type(const cJSON *o) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

/* tokenizer.ggml.pre for a byte-level pre_tokenizer tree; notes what GGUF cannot name. */
static const char *gw_pre_name(gw_plan *p, const cJSON *pre, int ignore_merges) {
    int digits = 0, split = 0, prefix = 0;   // digits: 1 individual, 2 runs; split: 1 llama-3, 2 qwen2
    const cJSON *list = !strcmp(gw_json_type(pre), "Sequence") ? cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers") : NULL;
    const cJSON *one = list ? list->child : pre;
    for (; one; one = list ? one->next : NULL) {
        const char *ty = gw_json_type(one);
        if (!strcmp(ty, "Digits")) digits = gw_json_true(one, "individual_digits") ? 1 : 2;
        else if (!strcmp(ty, "ByteLevel")) prefix = gw_json_true(one, "add_prefix_space");
        else if (!strcmp(ty, "Split")) {
            const cJSON *pat = cJSON_GetObjectItemCaseSensitive(one, "pattern");
            const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
            /* the two Split regexes tokenizer.c knows differ in their digit rule */
            split = cJSON_IsString(re) && strstr(re->valuestring, "\\p{N}{1,3}") ? 1 : 2;
        }
        if (!list) break;
    }
    const char *name = split == 1 ? "llama-bpe" : split == 2 ? "qwen2" : digits == 1 ? "smollm" : "gpt-2";
    if (digits == 2 || (digits && split))
        note_add(p, "the tokenizer's Digits pre-tokenizer has no llama.cpp name; written as '%s'", name);
    if (prefix) note_add(p, "the tokenizer's add_prefix_space is not expressible in GGUF and is dropped");
    if (ignore_merges != (split == 1))
        note_add(p, "the tokenizer's ignore_merges (%s) differs from what tokenizer.ggml.pre '%s' implies",
                 ignore_merges ? "true" : "false", name);
    return name;
}

/* Append the tokenizer.ggml.* metadata for tok (vocabulary padded to the model's size). */
static cce_status gw_tokenizer(gw_plan *p, gw_buf *b, int *n_kv, const cce_tokenizer *tok, cce_err *err) {
    const cce_config *c = &p->m->cfg;
    int V = c->vocab_size;
    if (!tok) {
        kv_str(b, n_kv, "tokenizer.ggml.model", "none");
        if (c->bos_id >= 0) kv_u32(b, n_kv, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_id);
        if (c->eos_id >= 0) kv_u32(b, n_kv, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_id);
        return CCE_OK;
    }
    int sp = cce_tokenizer_kind(tok) == CCE_TOK_SP, nt = cce_tokenizer_vocab_size(tok);
    if (nt > V) return cce_err_set(err, CCE_EINVAL, "%s: tokenizer has %d tokens, the model %d", p->path, nt, V);
    cJSON *root = NULL;
    cce_status s = gw_tok_json(tok, p->path, &root, err);
    if (s) return s;
    const char **piece = cce_alloc_zero((size_t)V, sizeof *piece);   // (V) into root
    int32_t *type = cce_alloc((size_t)V, sizeof *type);              // (V)
    if (!piece || !type) {
        s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p->path);
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    int byte_fb = gw_json_true(model, "byte_fallback"), unk_id = -1;
    for (int i = 0; i < V; i++) type[i] = 1;
    for (const cJSON *e = vocab ? vocab->child : NULL; e; e = e->next) {
        int id = cJSON_IsNumber(e) ? (int)e->valuedouble : -1;
        if (id < 0 || id >= nt || !e->string) continue;
        piece[id] = e->string;
        if (cJSON_IsString(unk) && !strcmp(unk->valuestring, e->string)) unk_id = id;
        unsigned byte;
        char tail;
        if (sp && byte_fb && strlen(e->string) == 6 && sscanf(e->string, "<0x%2X%c", &byte, &tail) == 2 && tail == '>')
            type[id] = 6;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= nt) continue;
        type[(int)id->valuedouble] = gw_json_true(a, "special") ? 3 : 4;
    }
    if (unk_id >= 0) type[unk_id] = 2;
    char (*hole)[24] = NULL;   // placeholder names of ids without a piece
    int n_holes = 0;
    for (int i = 0; i < V; i++) n_holes += !piece[i];
    if (n_holes && !(hole = cce_alloc((size_t)n_holes, sizeof *hole))) {
        s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p->path);
        goto done;
    }
    for (int i = 0, k = 0; i < V; i++)
        if (!piece[i]) {
            snprintf(hole[k], sizeof hole[k], "<unused%d>", i);
            piece[i] = hole[k++];
            type[i] = 5;
        }
    kv_str(b, n_kv, "tokenizer.ggml.model", sp ? "llama" : "gpt2");
    if (!sp) {
        const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
        kv_str(b, n_kv, "tokenizer.ggml.pre", gw_pre_name(p, pre, gw_json_true(model, "ignore_merges")));
    }
    kv_arr(b, n_kv, "tokenizer.ggml.tokens", GG_STRING, (uint64_t)V);
    for (int i = 0; i < V; i++) gw_str(b, piece[i]);
    if (sp) {
        kv_arr(b, n_kv, "tokenizer.ggml.scores", GG_F32, (uint64_t)V);
        for (int i = 0; i < V; i++) gw_f32(b, i < nt ? cce_tokenizer_score(tok, i) : 0.0f);
    }
    kv_arr(b, n_kv, "tokenizer.ggml.token_type", GG_I32, (uint64_t)V);
    for (int i = 0; i < V; i++) gw_u32(b, (uint32_t)type[i]);
    if (!sp) {
        int nm = cJSON_GetArraySize(merges);
        kv_arr(b, n_kv, "tokenizer.ggml.merges", GG_STRING, (uint64_t)(nm > 0 ? nm : 0));
        for (const cJSON *mg = merges ? merges->child : NULL; mg; mg = mg->next) {
            if (cJSON_IsString(mg)) {
                gw_str(b, mg->valuestring);
            } else {   /* a ["left", "right"] pair */
                const cJSON *l = cJSON_GetArrayItem(mg, 0), *r = cJSON_GetArrayItem(mg, 1);
                const char *ls = cJSON_IsString(l) ? l->valuestring : "", *rs = cJSON_IsString(r) ? r->valuestring : "";
                size_t nl = strlen(ls), nr = strlen(rs);
                gw_u64(b, nl + 1 + nr);
                gw_put(b, ls, nl);
                gw_put(b, " ", 1);
                gw_put(b, rs, nr);
            }
        }
    } else {
        /* our SentencePiece kind: dummy prefix unless the tokenizer.json form says otherwise */
        const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
        const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
        int prefix = 0, other = 0;
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
        for (const cJSON *x = nl ? nl->child : NULL; x; x = x->next) prefix |= !strcmp(gw_json_type(x), "Prepend");
        if (!strcmp(gw_json_type(pre), "Metaspace")) {
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(pre, "prepend_scheme");
            const char *scheme = cJSON_IsString(ps) ? ps->valuestring : "always";
            prefix = strcmp(scheme, "never") != 0;
            other = !strcmp(scheme, "first") || gw_json_true(pre, "split");
        }
        kv_bool(b, n_kv, "tokenizer.ggml.add_space_prefix", prefix);
        if (!prefix || other)
            note_add(p, "the tokenizer's space-prefix rule (%s) is written as add_space_prefix = %s, which cce reads "
                        "back as an always-added dummy prefix", other ? "Metaspace split / first" : "no prefix",
                     prefix ? "true" : "false");
    }
    int bos = cce_tokenizer_bos(tok), eos = cce_tokenizer_eos(tok);
    if (bos < 0) bos = c->bos_id;
    if (eos < 0) eos = c->eos_id;
    if (bos >= 0 && bos < V) kv_u32(b, n_kv, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0 && eos < V) kv_u32(b, n_kv, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (unk_id >= 0) kv_u32(b, n_kv, "tokenizer.ggml.unknown_token_id", (uint32_t)unk_id);
    kv_bool(b, n_kv, "tokenizer.ggml.add_bos_token", cce_tokenizer_bos(tok) >= 0);
    cce_free(hole);
done:
    cce_free(piece);
    cce_free(type);
    cJSON_Delete(root);
    return s;
}

/* ---- header ---- */

static cce_status gw_header(gw_plan *p, const cce_tokenizer *tok, gw_buf *b, cce_err *err) {
    const cce_config *c = &p->m->cfg;
    gw_buf meta = {0};
    int n_kv = 0;
    const char *A = p->deci ? "deci" : "llama";
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", A, s), k)
    kv_str(&meta, &n_kv, "general.architecture", A);
    kv_str(&meta, &n_kv, "general.name", "cce export");
    kv_u32(&meta, &n_kv, "general.file_type", p->dtype == CCE_WT_F16 ? 1 : p->dtype == CCE_WT_Q8_0 ? 7 : 0);
    if (p->dtype == CCE_WT_Q8_0) kv_u32(&meta, &n_kv, "general.quantization_version", 2);
    kv_u32(&meta, &n_kv, KEY("context_length"), (uint32_t)c->seq_len);
    kv_u32(&meta, &n_kv, KEY("embedding_length"), (uint32_t)c->dim);
    kv_u32(&meta, &n_kv, KEY("block_count"), (uint32_t)p->n_blocks);
    const cce_layer *F = &p->m->layers[p->src[0]];
    if (!p->deci) {
        kv_u32(&meta, &n_kv, KEY("feed_forward_length"), (uint32_t)F->hidden);
        kv_u32(&meta, &n_kv, KEY("attention.head_count"), (uint32_t)F->n_heads);
        kv_u32(&meta, &n_kv, KEY("attention.head_count_kv"), (uint32_t)F->n_kv_heads);
    } else {
        static const char *const keys[3] = {"feed_forward_length", "attention.head_count", "attention.head_count_kv"};
        for (int w = 0; w < 3; w++) {
            kv_arr(&meta, &n_kv, KEY(keys[w]), GG_I32, (uint64_t)p->n_blocks);
            for (int i = 0; i < p->n_blocks; i++) {
                const cce_layer *L = &p->m->layers[p->src[i]];
                gw_u32(&meta, (uint32_t)(w == 0 ? L->hidden : w == 1 ? L->n_heads : L->n_kv_heads));
            }
        }
    }
    kv_u32(&meta, &n_kv, KEY("rope.dimension_count"), (uint32_t)c->head_dim);
    kv_u32(&meta, &n_kv, KEY("attention.key_length"), (uint32_t)c->head_dim);
    kv_u32(&meta, &n_kv, KEY("attention.value_length"), (uint32_t)c->head_dim);
    kv_f32(&meta, &n_kv, KEY("rope.freq_base"), c->rope_theta);
    kv_f32(&meta, &n_kv, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
    kv_u32(&meta, &n_kv, KEY("vocab_size"), (uint32_t)c->vocab_size);
    if (c->rope_scaling == CCE_ROPE_SCALING_LINEAR && !c->rope_freq_div) {
        kv_str(&meta, &n_kv, KEY("rope.scaling.type"), "linear");
        kv_f32(&meta, &n_kv, KEY("rope.scaling.factor"), c->rope_factor);
    }
    if (c->sliding_window > 0) kv_u32(&meta, &n_kv, KEY("attention.sliding_window"), (uint32_t)c->sliding_window);
#undef KEY
    cce_status s = gw_tokenizer(p, &meta, &n_kv, tok, err);
    if (s) {
        cce_free(meta.p);
        return s;
    }
    gw_put(b, "GGUF", 4);
    gw_u32(b, 3);
    gw_u64(b, (uint64_t)p->n_t);
    gw_u64(b, (uint64_t)n_kv);
    gw_put(b, meta.p, meta.n);
    cce_free(meta.p);
    if (meta.oom) b->oom = 1;
    for (int i = 0; i < p->n_t; i++) {
        const gw_tensor *t = &p->t[i];
        gw_str(b, t->name);
        gw_u32(b, (uint32_t)t->n_dims);
        gw_u64(b, (uint64_t)t->ne0);
        if (t->n_dims == 2) gw_u64(b, (uint64_t)t->ne1);
        gw_u32(b, t->type);
        gw_u64(b, t->offset);
    }
    static const uint8_t zeros[GW_ALIGN] = {0};
    if (b->n % GW_ALIGN) gw_put(b, zeros, GW_ALIGN - b->n % GW_ALIGN);
    if (b->oom) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory building the header", p->path);
    return CCE_OK;
}

/* ---- streaming the data ---- */

typedef struct {
    int fd;
    const char *path;
    uint8_t *buf;   // (GW_BUF)
    size_t n;
    uint64_t written;
} gw_out;

static cce_status gw_flush(gw_out *o, cce_err *err) {
    size_t off = 0;
    while (off < o->n) {
        ssize_t w = write(o->fd, o->buf + off, o->n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return cce_err_set(err, CCE_EIO, "%s: write failed: %s", o->path, strerror(errno));
        }
        off += (size_t)w;
    }
    o->written += o->n;
    o->n = 0;
    return CCE_OK;
}

static cce_status gw_write(gw_out *o, const void *p, size_t n, cce_err *err) {
    const uint8_t *s = p;
    while (n) {
        size_t k = GW_BUF - o->n < n ? GW_BUF - o->n : n;
        memcpy(o->buf + o->n, s, k);
        o->n += k;
        s += k;
        n -= k;
        if (o->n == GW_BUF) {
            cce_status st = gw_flush(o, err);
            if (st) return st;
        }
    }
    return CCE_OK;
}

/* One tensor: rows produced in f32 (decoded / multiplied out, permuted), encoded, written.
 * row, tmp: (max row length) floats; enc: encoded row bytes. */
static cce_status gw_tensor_data(gw_plan *p, gw_out *o, const gw_tensor *t, float *row, float *tmp, uint8_t *enc,
                                 cce_err *err) {
    cce_status s;
    if (t->vec) {
        for (int64_t i = 0; i < t->ne0; i++) row[i] = t->vec[t->row_map ? t->row_map[i] : i];
        return gw_write(o, row, (size_t)t->ne0 * sizeof(float), err);
    }
    cce_wtype wt = cce_ggf_wtype(t->type);
    size_t rb = cce_wtype_row_bytes(wt, t->ne0);
    for (int64_t r = 0; r < t->ne1; r++) {
        int src = t->row_map ? t->row_map[r] : (int)r;
        if (t->col_map) {
            cce_linear_rows(t->lin, src, 1, tmp);
            for (int64_t j = 0; j < t->ne0; j++) row[j] = tmp[t->col_map[j]];
        } else {
            cce_linear_rows(t->lin, src, 1, row);
        }
        if ((s = cce_quantize(wt, row, enc, t->ne0, err))) return cce_err_prefix(err, s, p->path);
        if ((s = gw_write(o, enc, rb, err))) return s;
    }
    return CCE_OK;
}

cce_status cce_export_gguf_ex(const cce_model *m, const cce_tokenizer *tok, const char *path, cce_wtype dtype,
                              cce_gguf_export_info *info, cce_err *err) {
    gw_plan p = {.m = m, .path = path, .dtype = dtype};
    gw_buf hdr = {0};
    gw_out o = {.fd = -1, .path = path};
    char *tmp = NULL, *dircopy = NULL;
    float *row = NULL, *rtmp = NULL;
    uint8_t *enc = NULL;
    int created = 0;
    cce_status s;
    if (info) memset(info, 0, sizeof *info);
    if (dtype != CCE_WT_F32 && dtype != CCE_WT_F16 && dtype != CCE_WT_Q8_0) {
        s = cce_err_set(err, CCE_EINVAL, "%s: GGUF export type %s is not supported (f32, f16, q8_0)", path,
                        cce_wtype_name(dtype));
        goto done;
    }
    if ((s = gw_plan_build(&p, err))) goto done;
    if ((s = gw_header(&p, tok, &hdr, err))) goto done;
    int64_t maxrow = 1;
    for (int i = 0; i < p.n_t; i++) maxrow = p.t[i].ne0 > maxrow ? p.t[i].ne0 : maxrow;
    size_t plen = strlen(path);
    tmp = cce_alloc(plen + 16, 1);
    dircopy = cce_strdup(path);
    o.buf = cce_alloc(GW_BUF, 1);
    row = cce_alloc((size_t)maxrow, sizeof *row);
    rtmp = cce_alloc((size_t)maxrow, sizeof *rtmp);
    enc = cce_alloc((size_t)maxrow, sizeof(float));
    if (!tmp || !dircopy || !o.buf || !row || !rtmp || !enc) {
        s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    o.fd = mkstemp(tmp);
    if (o.fd < 0) {
        s = cce_err_set(err, CCE_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        goto done;
    }
    created = 1;
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(o.fd, 0666 & ~um);
    if ((s = gw_write(&o, hdr.p, hdr.n, err))) goto done;
    uint64_t data_start = hdr.n, pos = 0;
    static const uint8_t zeros[GW_ALIGN] = {0};
    for (int i = 0; i < p.n_t; i++) {
        if (cce_interrupted()) {
            s = cce_err_set(err, CCE_ECANCEL, "%s: interrupted; the previous file (if any) is unchanged", path);
            goto done;
        }
        const gw_tensor *t = &p.t[i];
        if (t->offset > pos && (s = gw_write(&o, zeros, (size_t)(t->offset - pos), err))) goto done;
        if ((s = gw_tensor_data(&p, &o, t, row, rtmp, enc, err))) goto done;
        pos = t->offset + t->nbytes;
    }
    if ((s = gw_flush(&o, err))) goto done;
    if (o.written != data_start + pos) {
        s = cce_err_set(err, CCE_EIO, "%s: wrote %llu bytes, expected %llu", path, (unsigned long long)o.written,
                        (unsigned long long)(data_start + pos));
        goto done;
    }
    if (fsync(o.fd) != 0) {
        s = cce_err_set(err, CCE_EIO, "%s: fsync failed: %s", path, strerror(errno));
        goto done;
    }
    int fd = o.fd;
    o.fd = -1;
    if (close(fd) != 0) {
        s = cce_err_set(err, CCE_EIO, "%s: close failed: %s", path, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        s = cce_err_set(err, CCE_EIO, "%s: rename from the temporary file failed: %s", path, strerror(errno));
        goto done;
    }
    created = 0;
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    if (info) {
        snprintf(info->arch, sizeof info->arch, "%s", p.deci ? "deci" : "llama");
        info->n_blocks = p.n_blocks;
        info->n_tensors = p.n_t;
        info->n_lowrank = p.n_lowrank;
        info->n_f16_fallback = p.n_f16;
        info->bytes = o.written;
        snprintf(info->note, sizeof info->note, "%s", p.note);
    }
done:
    if (o.fd >= 0) close(o.fd);
    if (created) unlink(tmp);
    cce_free(tmp);
    cce_free(dircopy);
    cce_free(o.buf);
    cce_free(row);
    cce_free(rtmp);
    cce_free(enc);
    cce_free(hdr.p);
    for (int i = 0; i < p.n_owned; i++) cce_free(p.owned[i]);
    cce_free(p.owned);
    cce_free(p.t);
    return s;
}

cce_status cce_export_gguf(const cce_model *m, const cce_tokenizer *tok, const char *path, cce_wtype dtype,
                           cce_err *err) {
    return cce_export_gguf_ex(m, tok, path, dtype, NULL, err);
}
