/*
 * gguf_load.c — a cce_model (and tokenizer) from a parsed GGUF file (see gguf.c for the parser).
 *
 * Architectures (general.architecture; hyperparameters under "<arch>."):
 *   llama, mistral   the Llama layout; llama.cpp's converter permutes q/k rows to rotate adjacent
 *                    RoPE pairs (its "norm" rope), so rope_interleaved = 1 like llama2.c.
 *                    "mistral" is read as an alias of llama (Mistral models convert to "llama").
 *   deci             the same layout with per-layer shapes (llama.cpp's form for models whose
 *                    layers differ, e.g. Llama-3.1-Nemotron-51B and the files cce_export_gguf
 *                    writes): attention.head_count, attention.head_count_kv and
 *                    feed_forward_length may be arrays of block_count integers; head_count 0 is a
 *                    block without attention (no attn_* tensors).
 *   qwen2            the Llama layout with q/k/v biases, RoPE on half rotations (llama.cpp's
 *                    "neox" rope: the converter does not permute), so rope_interleaved = 0.
 * The three per-layer keys may be scalars or arrays for every architecture. Refused with one
 * line each: head_count > 0 with head_count_kv 0 (Nemotron's "linear attention"); a block with
 * attention but feed_forward_length 0 (llama.cpp discards such a block's attention output while
 * the reference model keeps it, so its meaning is ambiguous); partial RoPE / custom value sizes;
 * rope.scaling.type other than none / linear; any tensor the layout does not use.
 * Optional tensors, as llama.cpp reads them: biases attn_{q,k,v,output}.bias and
 * ffn_{gate,up,down}.bias of every block (all-zero ones are dropped), output.weight (absent or
 * byte-identical to token_embd: tied), rope_freqs.weight (head_dim/2 per-pair frequency
 * divisors: llama.cpp's Llama-3 RoPE scaling).
 *
 * Memory: weight matrices stay in their stored type inside the mapping (any type quant.h
 * decodes); only vectors (norms, biases, rope_freqs) and misaligned F32 matrices are converted
 * into the model's arena, so a quantised model occupies about its file size.
 * GGUF dims are ne0 first, so [in, out] is row-major (out, in), our layout as is.
 *
 * Tokenizer (tokenizer.ggml.*): model "llama" -> SentencePiece-style BPE from tokens / scores /
 * token_type; model "gpt2" -> byte-level BPE from tokens / token_type / merges with the
 * pre-tokenizer named by tokenizer.ggml.pre (cce_tokenizer_build_bpe); any other model, or none:
 * no tokenizer (the model still loads). add_bos_token (default: true for "llama", false for
 * "gpt2") decides whether encoding prepends bos_token_id.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf_file.h"
#include "model.h"
#include "quant.h"
#include "status.h"
#include "tokenizer.h"
#include "util.h"

#define GL_MAX_DIM (1 << 24)
#define GL_MAX_LAYERS 100000

/* ---- tensors ---- */

/* Find tensor `name` with GGUF shape [ne0] (ne1 == 0) or [ne0, ne1], convert it to f32 and
 * return a pointer (into the map or the model's arena). optional: absent -> *out NULL, OK. */
static cce_status gl_tensor_f32(gg_file *gf, cce_model *m, const char *name, int64_t ne0, int64_t ne1,
                                bool optional, const float **out, cce_err *err) {
    *out = NULL;
    gg_tensor *t = cce_ggf_tensor_find(gf, name);
    if (!t) {
        if (optional) return CCE_OK;
        return cce_err_set(err, CCE_EFORMAT, "%s: required tensor '%s' is missing", gf->path, name);
    }
    t->used = 1;
    uint32_t want_dims = ne1 ? 2 : 1;
    if (t->n_dims != want_dims || t->ne[0] != ne0 || (ne1 && t->ne[1] != ne1)) {
        char got[96];
        int k = snprintf(got, sizeof got, "[%lld", (long long)t->ne[0]);
        for (uint32_t d = 1; d < t->n_dims && k > 0 && (size_t)k < sizeof got; d++)
            k += snprintf(got + k, sizeof got - (size_t)k, ", %lld", (long long)t->ne[d]);
        if (k > 0 && (size_t)k < sizeof got) snprintf(got + k, sizeof got - (size_t)k, "]");
        if (ne1)
            return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' has shape %s, expected [%lld, %lld] from the metadata",
                               gf->path, name, got, (long long)ne0, (long long)ne1);
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' has shape %s, expected [%lld] from the metadata",
                           gf->path, name, got, (long long)ne0);
    }
    const uint8_t *src = gf->p + t->offset;
    size_t n = (size_t)t->n_elem;  // the tensor's bytes are inside the file, so n fits
    if (t->type == GGML_F32 && ((uintptr_t)src % sizeof(float)) == 0) {
        *out = (const float *)(const void *)src;
        return CCE_OK;
    }
    cce_wtype wt = cce_ggf_wtype(t->type);
    if (wt == CCE_WT_COUNT || !cce_wtype_supported(wt))
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: tensor '%s' has type %s, which this build cannot decode",
                           gf->path, name, cce_ggf_type_name(t->type));
    float *dst = cce_model_alloc(m, n, sizeof(float));  // (n_elem)
    if (!dst)
        return cce_err_set(err, CCE_ENOMEM, "%s: tensor '%s': out of memory for %zu floats", gf->path, name, n);
    cce_dequant(wt, src, dst, (int64_t)n);
    *out = dst;
    return CCE_OK;
}

/* Weight matrix `name` of GGUF shape [in, out] kept in its stored type (pointing into the
 * mapping; only a misaligned F32 tensor is copied). optional: absent -> lin->w NULL, OK. */
static cce_status gl_weight(gg_file *gf, cce_model *m, const char *name, int64_t in, int64_t out, bool optional,
                            cce_linear *lin, cce_err *err) {
    gg_tensor *t = cce_ggf_tensor_find(gf, name);
    memset(lin, 0, sizeof *lin);
    if (!t) {
        if (optional) return CCE_OK;
        return cce_err_set(err, CCE_EFORMAT, "%s: required tensor '%s' is missing", gf->path, name);
    }
    cce_wtype wt = cce_ggf_wtype(t->type);
    if (wt == CCE_WT_COUNT || !cce_wtype_supported(wt))
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: tensor '%s' has type %s, which this build cannot decode",
                           gf->path, name, cce_ggf_type_name(t->type));
    if (t->type == GGML_F32) {   // shape check and alignment handled by the f32 path
        const float *f32 = NULL;
        cce_status st = gl_tensor_f32(gf, m, name, in, out, optional, &f32, err);
        if (st) return st;
        *lin = (cce_linear){.out = (int)out, .in = (int)in, .wt = CCE_WT_F32, .w = f32};
        return CCE_OK;
    }
    t->used = 1;
    if (t->n_dims != 2 || t->ne[0] != in || t->ne[1] != out)
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' has shape [%lld, %lld] (%u dims), expected [%lld, %lld] from the metadata",
                           gf->path, name, (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 1), t->n_dims,
                           (long long)in, (long long)out);
    /* the parser checked ne0 % block == 0 and nbytes = blocks x block bytes inside the file */
    *lin = (cce_linear){.out = (int)out, .in = (int)in, .wt = wt, .w = gf->p + t->offset};
    return CCE_OK;
}

/* The optional bias "<prefix>.bias" of (n) into lin->b; an all-zero bias is no bias. */
static cce_status gl_bias(gg_file *gf, cce_model *m, const char *prefix, int64_t n, cce_linear *lin, cce_err *err) {
    char name[112];
    snprintf(name, sizeof name, "%s.bias", prefix);
    const float *b = NULL;
    cce_status st = gl_tensor_f32(gf, m, name, n, 0, true, &b, err);
    if (st || !b) return st;
    for (int64_t i = 0; i < n; i++)
        if (b[i] != 0.0f) {
            lin->b = b;
            return CCE_OK;
        }
    return CCE_OK;
}

/* ---- metadata ---- */

/* Per-layer integer key: a scalar (every layer) or an array of exactly n integers, each in
 * [lo, hi], into out (n). Absent: *present = 0 and out untouched (an error when required). */
static cce_status gl_layer_ints(const gg_file *gf, const char *key, int n, bool required, int64_t lo, int64_t hi,
                                int64_t *out, int *present, cce_err *err) {
    const gg_kv *kv = cce_ggf_find(gf, key);
    *present = kv != NULL;
    if (!kv) {
        if (required) return cce_err_set(err, CCE_EFORMAT, "%s: required metadata '%s' is missing", gf->path, key);
        return CCE_OK;
    }
    if (kv->type != GG_ARRAY) {
        int64_t v;
        cce_status st = cce_ggf_get_int(gf, key, true, 0, lo, hi, &v, err);
        if (st) return st;
        for (int l = 0; l < n; l++) out[l] = v;
        return CCE_OK;
    }
    if (!cce_ggf_is_int(kv->arr_type))
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' is an array of %s, expected integers", gf->path, key,
                           cce_ggf_vtype_names[kv->arr_type]);
    if (kv->arr_n != (uint64_t)n)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' has %llu entries, expected one per block (%d)", gf->path,
                           key, (unsigned long long)kv->arr_n, n);
    size_t es = cce_ggf_vtype_size[kv->arr_type];
    for (int l = 0; l < n; l++) {
        int64_t v;
        if (!cce_ggf_int_at(gf, kv->arr_type, kv->pos + (size_t)l * es, &v) || v < lo || v > hi)
            return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s'[%d] is out of range %lld..%lld", gf->path, key, l,
                               (long long)lo, (long long)hi);
        out[l] = v;
    }
    return CCE_OK;
}

/* The strings of a string array kv (n entries, validated by the parser) as pointers into the
 * map: pieces (n), lens (n). */
static void gl_strings(const gg_file *gf, const gg_kv *kv, const char **pieces, size_t *lens) {
    size_t pos = kv->pos;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        lens[i] = (size_t)cce_ggf_le(gf->p + pos, 8);
        pieces[i] = (const char *)gf->p + pos + 8;
        pos += 8 + lens[i];
    }
}

static const char *gl_type_desc(const gg_kv *kv) {
    if (!kv) return "missing";
    return cce_ggf_vtype_names[kv->type == GG_ARRAY ? kv->arr_type : kv->type];
}

/* ---- tokenizer ---- */

/* Tokenizer from tokenizer.ggml.* ("llama" and "gpt2" models; others: *tok = NULL); sets
 * cfg->bos_id / eos_id either way. tok NULL: ids only. */
static cce_status gl_tokenizer(gg_file *gf, int vocab, cce_config *cfg, cce_tokenizer **tok, cce_err *err) {
    cce_status st;
    const uint8_t *model;
    size_t model_n;
    if (tok) *tok = NULL;
    if ((st = cce_ggf_get_str(gf, "tokenizer.ggml.model", &model, &model_n, err))) return st;
    int64_t bos, eos, unk;
    int add_bos;
    if ((st = cce_ggf_get_int(gf, "tokenizer.ggml.bos_token_id", false, -1, 0, vocab - 1, &bos, err)) ||
        (st = cce_ggf_get_int(gf, "tokenizer.ggml.eos_token_id", false, -1, 0, vocab - 1, &eos, err)) ||
        (st = cce_ggf_get_int(gf, "tokenizer.ggml.unknown_token_id", false, -1, 0, vocab - 1, &unk, err)) ||
        (st = cce_ggf_get_bool(gf, "tokenizer.ggml.add_bos_token", &add_bos, err)))
        return st;
    bool sp = cce_ggf_str_is(model, model_n, "llama"), bl = cce_ggf_str_is(model, model_n, "gpt2");
    /* SentencePiece vocabularies without explicit ids use llama's <s>=1, </s>=2. */
    cfg->bos_id = bos >= 0 ? (int)bos : sp && vocab > 2 ? 1 : -1;
    cfg->eos_id = eos >= 0 ? (int)eos : sp && vocab > 2 ? 2 : -1;
    if (add_bos < 0) add_bos = sp;
    if ((!sp && !bl) || !tok) return CCE_OK;

    const gg_kv *tokens = cce_ggf_find(gf, "tokenizer.ggml.tokens");
    const gg_kv *scores = cce_ggf_find(gf, "tokenizer.ggml.scores");
    const gg_kv *types = cce_ggf_find(gf, "tokenizer.ggml.token_type");
    const gg_kv *merges = cce_ggf_find(gf, "tokenizer.ggml.merges");
    if (!tokens || tokens->type != GG_ARRAY || tokens->arr_type != GG_STRING)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata 'tokenizer.ggml.tokens' is %s, expected an array of strings",
                           gf->path, gl_type_desc(tokens));
    if (sp && (!scores || scores->type != GG_ARRAY || scores->arr_type != GG_F32))
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata 'tokenizer.ggml.scores' is %s, expected an array of float32",
                           gf->path, gl_type_desc(scores));
    if (types && (types->type != GG_ARRAY || types->arr_type != GG_I32))
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata 'tokenizer.ggml.token_type' has type %s, expected an array of int32",
                           gf->path, gl_type_desc(types));
    if (bl && (!merges || merges->type != GG_ARRAY || merges->arr_type != GG_STRING))
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata 'tokenizer.ggml.merges' is %s, expected an array of strings "
                           "(byte-level vocabularies need their merges)", gf->path, gl_type_desc(merges));
    if (tokens->arr_n != (uint64_t)vocab || (sp && scores->arr_n != (uint64_t)vocab) || (types && types->arr_n != (uint64_t)vocab))
        return cce_err_set(err, CCE_EFORMAT, "%s: tokenizer has %llu tokens, %llu scores, %llu types; the model's vocabulary is %d",
                           gf->path, (unsigned long long)tokens->arr_n, (unsigned long long)(sp ? scores->arr_n : (uint64_t)vocab),
                           (unsigned long long)(types ? types->arr_n : (uint64_t)vocab), vocab);

    size_t n_merges = bl ? (size_t)merges->arr_n : 0;   // bounded by the file size (parser)
    const char **pieces = cce_alloc((size_t)vocab, sizeof *pieces);  // (vocab) into the map
    size_t *lens = cce_alloc((size_t)vocab, sizeof *lens);           // (vocab)
    float *sc = sp ? cce_alloc((size_t)vocab, sizeof *sc) : NULL;    // (vocab)
    int32_t *ty = types ? cce_alloc((size_t)vocab, sizeof *ty) : NULL; // (vocab)
    const char **mg = n_merges ? cce_alloc(n_merges, sizeof *mg) : NULL; // (n_merges) into the map
    size_t *mlen = n_merges ? cce_alloc(n_merges, sizeof *mlen) : NULL;  // (n_merges)
    if (!pieces || !lens || (sp && !sc) || (types && !ty) || (n_merges && (!mg || !mlen))) {
        st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for a %d-token vocabulary", gf->path, vocab);
        goto cleanup;
    }
    gl_strings(gf, tokens, pieces, lens);
    if (n_merges) gl_strings(gf, merges, mg, mlen);
    for (int i = 0; i < vocab; i++) {
        if (sc) {
            uint32_t u = (uint32_t)cce_ggf_le(gf->p + scores->pos + 4 * (size_t)i, 4);
            memcpy(&sc[i], &u, sizeof u);
        }
        if (ty) ty[i] = (int32_t)(uint32_t)cce_ggf_le(gf->p + types->pos + 4 * (size_t)i, 4);
    }
    int bos_enc = add_bos ? cfg->bos_id : -1;
    if (sp) {
        st = cce_tokenizer_build_sp(vocab, pieces, lens, sc, ty, bos_enc, cfg->eos_id, (int)unk, gf->path, tok, err);
    } else {
        const uint8_t *pre;
        size_t pre_n;
        char pre_buf[64];
        if ((st = cce_ggf_get_str(gf, "tokenizer.ggml.pre", &pre, &pre_n, err))) goto cleanup;
        if (pre && (pre_n >= sizeof pre_buf || memchr(pre, 0, pre_n))) {
            char b[80];
            st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: tokenizer.ggml.pre '%s' is not supported", gf->path,
                             cce_ggf_printable(pre, pre_n, b, sizeof b));
            goto cleanup;
        }
        if (pre) {
            memcpy(pre_buf, pre, pre_n);
            pre_buf[pre_n] = 0;
        }
        st = cce_tokenizer_build_bpe(vocab, pieces, lens, ty, n_merges, mg, mlen, pre ? pre_buf : NULL, bos_enc,
                                     cfg->eos_id, gf->path, tok, err);
    }
    if (st) *tok = NULL;

cleanup:
    cce_free(pieces);
    cce_free(lens);
    cce_free(sc);
    cce_free(ty);
    cce_free(mg);
    cce_free(mlen);
    return st;
}

/* ---- the model ---- */

typedef struct {
    const char *name;
    int interleaved;   // 1: llama.cpp "norm" rope (q/k rows permuted by the converter)
} gl_arch;

static const gl_arch gl_archs[] = {{"llama", 1}, {"mistral", 1}, {"deci", 1}, {"qwen2", 0}};

/* Hyperparameters and per-layer shapes read from "<arch>.*". */
typedef struct {
    const char *arch;
    int64_t dim, n_layers, ctx, hd, vocab;
    int64_t *heads, *kv, *hidden;   // (n_layers)
    double theta, eps;
} gl_hparams;

static const char *gl_key(const gl_hparams *h, const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", h->arch, suffix);
    return buf;
}

static cce_status gl_read_hparams(gg_file *gf, gl_hparams *h, cce_config *cfg, cce_err *err) {
    cce_status st;
    char k1[96];
    const char *path = gf->path;
    int64_t rope_dims, key_len, val_len, vocab_meta, window;
    int present;
#define KEY(s) gl_key(h, s, k1, sizeof k1)
    if ((st = cce_ggf_get_int(gf, KEY("embedding_length"), true, 0, 1, GL_MAX_DIM, &h->dim, err)) ||
        (st = cce_ggf_get_int(gf, KEY("block_count"), true, 0, 1, GL_MAX_LAYERS, &h->n_layers, err)) ||
        (st = cce_ggf_get_int(gf, KEY("context_length"), false, 2048, 1, INT32_MAX, &h->ctx, err)) ||
        (st = cce_ggf_get_int(gf, KEY("rope.dimension_count"), false, 0, 0, GL_MAX_DIM, &rope_dims, err)) ||
        (st = cce_ggf_get_int(gf, KEY("attention.key_length"), false, 0, 0, GL_MAX_DIM, &key_len, err)) ||
        (st = cce_ggf_get_int(gf, KEY("attention.value_length"), false, 0, 0, GL_MAX_DIM, &val_len, err)) ||
        (st = cce_ggf_get_int(gf, KEY("vocab_size"), false, 0, 0, GL_MAX_DIM, &vocab_meta, err)) ||
        (st = cce_ggf_get_int(gf, KEY("attention.sliding_window"), false, 0, 0, INT32_MAX, &window, err)) ||
        (st = cce_ggf_get_float(gf, KEY("rope.freq_base"), 10000.0, &h->theta, err)) ||
        (st = cce_ggf_get_float(gf, KEY("attention.layer_norm_rms_epsilon"), 1e-5, &h->eps, err)))
        return st;
    int L = (int)h->n_layers;
    h->heads = cce_alloc((size_t)L, sizeof *h->heads);
    h->kv = cce_alloc((size_t)L, sizeof *h->kv);
    h->hidden = cce_alloc((size_t)L, sizeof *h->hidden);
    if (!h->heads || !h->kv || !h->hidden) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %d layers", path, L);
    if ((st = gl_layer_ints(gf, KEY("feed_forward_length"), L, true, 0, 1 << 26, h->hidden, &present, err)) ||
        (st = gl_layer_ints(gf, KEY("attention.head_count"), L, true, 0, GL_MAX_DIM, h->heads, &present, err)))
        return st;
    memcpy(h->kv, h->heads, (size_t)L * sizeof *h->kv);   // head_count_kv defaults to head_count
    if ((st = gl_layer_ints(gf, KEY("attention.head_count_kv"), L, false, 0, GL_MAX_DIM, h->kv, &present, err)))
        return st;
    /* head size: key_length, else embedding_length / head_count of block 0 (llama.cpp's rule) */
    if (key_len) h->hd = key_len;
    else if (h->heads[0] > 0 && h->dim % h->heads[0] == 0) h->hd = h->dim / h->heads[0];
    else
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' is missing and head_count[0] = %lld does not divide embedding_length %lld",
                           path, KEY("attention.key_length"), (long long)h->heads[0], (long long)h->dim);
    if (h->hd % 2 || (rope_dims && rope_dims != h->hd) || (val_len && val_len != h->hd))
        return cce_err_set(err, CCE_EUNSUPPORTED,
                           "%s: head size %lld with rope.dimension_count=%lld, value_length=%lld: partial RoPE, odd or "
                           "unequal key/value head sizes are not supported", path, (long long)h->hd, (long long)rope_dims,
                           (long long)val_len);
    int64_t max_heads = 0, cfg_kv = 0, max_hidden = 0;
    for (int l = 0; l < L; l++) {
        if (h->heads[l] > 0 && h->kv[l] == 0)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: block %d has head_count %lld and head_count_kv 0 (\"linear "
                               "attention\"), which is not supported", path, l, (long long)h->heads[l]);
        if (h->kv[l] > h->heads[l] || (h->kv[l] && h->heads[l] % h->kv[l]))
            return cce_err_set(err, CCE_EFORMAT, "%s: block %d: head_count_kv %lld does not divide head_count %lld", path, l,
                               (long long)h->kv[l], (long long)h->heads[l]);
        if (h->heads[l] > 0 && h->hidden[l] == 0)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: block %d has attention but feed_forward_length 0; llama.cpp "
                               "drops the attention output of such blocks while the reference model keeps it, so this "
                               "block's meaning is ambiguous and it is refused", path, l);
        if (h->heads[l] > max_heads) {
            max_heads = h->heads[l];
            cfg_kv = h->kv[l];
        }
        if (h->hidden[l] > max_hidden) max_hidden = h->hidden[l];
    }
    if (max_heads == 0 || max_hidden == 0)
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: no block has %s", path, max_heads ? "a feed-forward sublayer" : "attention");
    if (max_heads * h->hd > GL_MAX_DIM)
        return cce_err_set(err, CCE_EFORMAT, "%s: %lld heads of size %lld are too wide", path, (long long)max_heads,
                           (long long)h->hd);
    if (!(h->eps > 0 && h->eps < 1) || !(h->theta > 0 && h->theta < 1e30))
        return cce_err_set(err, CCE_EFORMAT, "%s: layer_norm_rms_epsilon=%g or rope.freq_base=%g out of range", path, h->eps,
                           h->theta);
    /* RoPE scaling */
    const uint8_t *scaling;
    size_t scaling_n;
    double factor = 0;
    if ((st = cce_ggf_get_str(gf, KEY("rope.scaling.type"), &scaling, &scaling_n, err))) return st;
    int linear = scaling && cce_ggf_str_is(scaling, scaling_n, "linear");
    if (scaling && !linear && !cce_ggf_str_is(scaling, scaling_n, "none")) {
        char buf[80];
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: metadata '%s' = '%s' is not supported (none, linear)", path,
                           KEY("rope.scaling.type"), cce_ggf_printable(scaling, scaling_n, buf, sizeof buf));
    }
    if (linear) {
        if ((st = cce_ggf_get_float(gf, KEY("rope.scaling.factor"), 0, &factor, err))) return st;
        if (!(factor > 0 && factor < 1e6))
            return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' = %g must be positive for linear RoPE scaling", path,
                               KEY("rope.scaling.factor"), factor);
        if (factor == 1) linear = 0;
    }
#undef KEY
    memset(cfg, 0, sizeof *cfg);
    cfg->arch = CCE_ARCH_LLAMA;
    cfg->dim = (int)h->dim;
    cfg->n_layers = L;
    cfg->n_heads = (int)max_heads;
    cfg->n_kv_heads = (int)cfg_kv;
    cfg->head_dim = (int)h->hd;
    cfg->hidden_dim = (int)max_hidden;
    cfg->seq_len = (int)h->ctx;
    cfg->norm_eps = (float)h->eps;
    cfg->rope_theta = (float)h->theta;
    cfg->bos_id = 1;
    cfg->eos_id = 2;
    cfg->sliding_window = (int)window;
    if (linear) {
        cfg->rope_scaling = CCE_ROPE_SCALING_LINEAR;
        cfg->rope_factor = (float)factor;
    }
    h->vocab = vocab_meta;
    return CCE_OK;
}

/* Block l's tensors into m->layers[l]: norms and the seven linears (with their optional
 * biases) of the sublayers its head count and FFN width say it has. */
static cce_status gl_layer(gg_file *gf, cce_model *m, const gl_hparams *h, int l, cce_err *err) {
    cce_status st;
    char name[112];
    cce_layer *ly = &m->layers[l];
    int64_t D = h->dim, hd = h->hd, Q = h->heads[l] * hd, KV = h->kv[l] * hd, H = h->hidden[l];
    ly->n_heads = (int)h->heads[l];
    ly->n_kv_heads = (int)h->kv[l];
    ly->hidden = (int)H;
    ly->head_kv = NULL;
    ly->dropped = !Q && !H;
    const struct { const char *suffix; int64_t in, out; cce_linear *dst; int attn; } want[] = {
        {"attn_q", D, Q, &ly->wq, 1},   {"attn_k", D, KV, &ly->wk, 1},    {"attn_v", D, KV, &ly->wv, 1},
        {"attn_output", Q, D, &ly->wo, 1}, {"ffn_gate", D, H, &ly->w1, 0}, {"ffn_up", D, H, &ly->w3, 0},
        {"ffn_down", H, D, &ly->w2, 0},
    };
    if (Q) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        if ((st = gl_tensor_f32(gf, m, name, D, 0, false, &ly->attn_norm, err))) return st;
    }
    if (H) {
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        if ((st = gl_tensor_f32(gf, m, name, D, 0, false, &ly->ffn_norm, err))) return st;
    }
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        if (!(want[k].attn ? Q : H)) continue;   // the sublayer does not exist
        char prefix[96];
        snprintf(prefix, sizeof prefix, "blk.%d.%s", l, want[k].suffix);
        snprintf(name, sizeof name, "%s.weight", prefix);
        if ((st = gl_weight(gf, m, name, want[k].in, want[k].out, false, want[k].dst, err)) ||
            (st = gl_bias(gf, m, prefix, want[k].out, want[k].dst, err)))
            return st;
    }
    return CCE_OK;
}

cce_status cce_load_gguf(const char *path, cce_model **out, struct cce_tokenizer **tok, cce_err *err) {
    cce_status st;
    cce_mapped map;
    gg_file gf;
    cce_model *m = NULL;
    cce_tokenizer *t = NULL;
    gl_hparams h = {0};
    *out = NULL;
    if (tok) *tok = NULL;

    if ((st = cce_map_file(path, &map, err))) return st;
    const uint8_t *data = map.data;
    if ((st = cce_ggf_parse(path, data, map.len, &gf, err))) goto cleanup_map;

    const uint8_t *arch;
    size_t arch_n;
    if ((st = cce_ggf_get_str(&gf, "general.architecture", &arch, &arch_n, err))) goto cleanup_file;
    if (!arch) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: required metadata 'general.architecture' is missing", path);
        goto cleanup_file;
    }
    const gl_arch *ga = NULL;
    for (size_t i = 0; i < sizeof gl_archs / sizeof gl_archs[0]; i++)
        if (cce_ggf_str_is(arch, arch_n, gl_archs[i].name)) ga = &gl_archs[i];
    if (!ga) {
        char buf[80];
        st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: unsupported architecture '%s' (llama, mistral, qwen2 and deci GGUF models load)",
                         path, cce_ggf_printable(arch, arch_n, buf, sizeof buf));
        goto cleanup_file;
    }
    h.arch = ga->name;
    cce_config cfg;
    if ((st = gl_read_hparams(&gf, &h, &cfg, err))) goto cleanup_file;
    cfg.rope_interleaved = ga->interleaved;

    gg_tensor *emb = cce_ggf_tensor_find(&gf, "token_embd.weight");
    if (!emb) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: required tensor 'token_embd.weight' is missing", path);
        goto cleanup_file;
    }
    int64_t vocab = emb->ne[1];
    if (emb->n_dims != 2 || vocab > GL_MAX_DIM || (h.vocab && h.vocab != vocab)) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: tensor 'token_embd.weight' has %u dims, ne1=%lld (%s.vocab_size=%lld)", path,
                         emb->n_dims, (long long)vocab, h.arch, (long long)h.vocab);
        goto cleanup_file;
    }
    cfg.vocab_size = (int)vocab;
    if ((st = gl_tokenizer(&gf, (int)vocab, &cfg, tok ? &t : NULL, err))) goto cleanup_file;
    if ((st = cce_model_new(&cfg, &m, err))) {
        cce_err_prefix(err, st, path);
        goto cleanup_file;
    }
    m->format = CCE_FMT_GGUF;
    m->path = cce_strdup(path);
    if (!m->path) {
        st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
        goto cleanup_model;
    }
    if ((st = cce_model_adopt_map(m, &map, err))) goto cleanup_model;  // gf still points at data

    int64_t D = h.dim, V = vocab, hd = h.hd;
    if ((st = gl_weight(&gf, m, "token_embd.weight", D, V, false, &m->tok_emb, err)) ||
        (st = gl_tensor_f32(&gf, m, "output_norm.weight", D, 0, false, &m->final_norm, err)) ||
        (st = gl_weight(&gf, m, "output.weight", D, V, true, &m->lm_head, err)) ||
        (st = gl_tensor_f32(&gf, m, "rope_freqs.weight", hd / 2, 0, true, &m->cfg.rope_freq_div, err)))
        goto cleanup_model;
    /* Converters often store the head even when it is the embedding (stories260K does):
     * byte-identical data is a tied head, and counts once. */
    const gg_tensor *head = cce_ggf_tensor_find(&gf, "output.weight");
    if (m->lm_head.w && head->type == emb->type && head->nbytes == emb->nbytes &&
        !memcmp(data + head->offset, data + emb->offset, (size_t)emb->nbytes))
        m->lm_head.w = NULL;
    if (!m->lm_head.w) {
        m->lm_head = m->tok_emb;
        m->cfg.tied = 1;
    }
    for (int l = 0; l < (int)h.n_layers; l++)
        if ((st = gl_layer(&gf, m, &h, l, err))) goto cleanup_model;
    /* A tensor we do not use means a variant we would run wrongly (MoE, extra norms, ...). */
    for (size_t i = 0; i < gf.n_t; i++) {
        if (!gf.t[i].used) {
            char buf[160];
            st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: tensor '%s' is not part of the %s layout this loader supports",
                             path, cce_ggf_printable(gf.t[i].name, gf.t[i].name_len, buf, sizeof buf), h.arch);
            goto cleanup_model;
        }
    }
    if ((st = cce_model_validate(m, path, err))) goto cleanup_model;

    cce_ggf_free(&gf);
    cce_free(h.heads);
    cce_free(h.kv);
    cce_free(h.hidden);
    *out = m;
    if (tok) *tok = t;
    return CCE_OK;

cleanup_model:
    cce_model_free(m);
cleanup_file:
    cce_ggf_free(&gf);
    if (t) cce_tokenizer_free(t);
    cce_free(h.heads);
    cce_free(h.kv);
    cce_free(h.hidden);
cleanup_map:
    cce_unmap(&map);  // no-op once adopted
    return st;
}
