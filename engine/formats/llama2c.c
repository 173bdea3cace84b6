/*
 * llama2c.c — loader for llama2.c "legacy" (version 0) checkpoints.
 *
 * The file is a 28-byte header of 7 little-endian int32
 *   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 * followed by fp32 arrays in this order (matrices row-major (out, in), L = n_layers,
 * hd = dim / n_heads, kvd = n_kv_heads * hd):
 *   token_embedding (vocab, dim)   rms_att (L, dim)     wq (L, dim, dim)   wk (L, kvd, dim)
 *   wv (L, kvd, dim)               wo (L, dim, dim)     rms_ffn (L, dim)
 *   w1 (L, hidden, dim)            w2 (L, dim, hidden)  w3 (L, hidden, dim)
 *   rms_final (dim)  freq_cis_real (seq_len, hd/2)  freq_cis_imag (seq_len, hd/2)
 *   wcls (vocab, dim)              only when the header's vocab_size is negative (untied)
 * (llama2.c's newer export versions 1/2 start with the magic "ak42" and are refused by name.)
 * The RoPE tables are what llama2.c's export writes; we recompute RoPE, so we accept the file
 * with or without them, but nothing else: the file length must be exactly one of those two
 * layouts, so a truncated file or one with trailing bytes is refused before anything is read.
 *
 * Nothing is copied: the file is mapped read-only and every tensor points into the mapping,
 * which the model adopts (the body starts at byte 28 of a page-aligned mapping, so every
 * float is 4-byte aligned).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "model.h"
#include "status.h"
#include "util.h"

#define L2C_HEADER_BYTES 28u

static int32_t l2c_i32_read(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t r;
    memcpy(&r, &v, sizeof r);
    return r;
}

/* *acc += a * b floats, overflow-checked. */
static bool l2c_floats_add(uint64_t *acc, uint64_t a, uint64_t b) {
    uint64_t p;
    return cce_u64_mul(a, b, &p) && cce_u64_add(*acc, p, acc);
}

cce_status cce_load_llama2c(const char *path, cce_model **out, cce_err *err) {
    cce_status st = CCE_OK;
    cce_mapped map = {0};
    cce_model *m = NULL;
    *out = NULL;

    st = cce_map_file(path, &map, err);
    if (st) return st;
    if (map.len < L2C_HEADER_BYTES) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: file has %zu bytes, too short for a llama2.c header (28)",
                         path, map.len);
        goto cleanup_map;
    }

    int32_t h[7];
    for (int i = 0; i < 7; i++) h[i] = l2c_i32_read(map.data + 4 * i);
    if ((uint32_t)h[0] == 0x616b3432u) {  // "ak42": llama2.c's export.py version 1/2 header
        st = cce_err_set(err, CCE_EUNSUPPORTED,
                         "%s: llama2.c export version %d (magic \"ak42\") is not supported; "
                         "export with --version 0 (legacy)", path, (int)h[1]);
        goto cleanup_map;
    }
    int32_t dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv = h[4], seq_len = h[6];
    int64_t vocab_signed = h[5];
    int tied = vocab_signed > 0;
    int64_t vocab = vocab_signed < 0 ? -vocab_signed : vocab_signed;

    static const char *names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; i++) {
        if (h[i] == 0 || (i != 5 && h[i] < 0)) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: llama2.c header field %s=%d must be positive",
                             path, names[i], (int)h[i]);
            goto cleanup_map;
        }
    }
    if (vocab > INT32_MAX) {  // vocab_size = INT32_MIN cannot be negated into an int
        st = cce_err_set(err, CCE_EFORMAT, "%s: llama2.c header field vocab_size=%lld out of range",
                         path, (long long)vocab_signed);
        goto cleanup_map;
    }
    if (dim % n_heads) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: llama2.c header: n_heads=%d does not divide dim=%d",
                         path, (int)n_heads, (int)dim);
        goto cleanup_map;
    }
    if (n_heads % n_kv) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: llama2.c header: n_kv_heads=%d does not divide n_heads=%d",
                         path, (int)n_kv, (int)n_heads);
        goto cleanup_map;
    }
    int32_t hd = dim / n_heads;
    if (hd % 2) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: llama2.c header: head size dim/n_heads=%d must be even for RoPE",
                         path, (int)hd);
        goto cleanup_map;
    }
    uint64_t kvd = (uint64_t)n_kv * (uint64_t)hd;  // < 2^62, cannot overflow
    uint64_t D = (uint64_t)dim, H = (uint64_t)hidden, L = (uint64_t)n_layers, V = (uint64_t)vocab;

    /* Count floats with overflow checks; all inputs are < 2^31. */
    uint64_t nf = 0, rope = 0;
    bool ok = l2c_floats_add(&nf, V, D)                       // token_embedding
              && l2c_floats_add(&nf, L, D)                    // rms_att
              && l2c_floats_add(&nf, L, D * D)                // wq
              && l2c_floats_add(&nf, L, 2 * kvd * D)          // wk, wv
              && l2c_floats_add(&nf, L, D * D)                // wo
              && l2c_floats_add(&nf, L, D)                    // rms_ffn
              && l2c_floats_add(&nf, L, 3 * H * D)            // w1, w2, w3
              && cce_u64_add(nf, D, &nf)                      // rms_final
              && l2c_floats_add(&rope, (uint64_t)seq_len, (uint64_t)hd); // real + imag, hd/2 each
    uint64_t wcls = tied ? 0 : V * D;
    uint64_t with_rope = 0, without_rope = 0;
    ok = ok && cce_u64_add(nf, wcls, &without_rope) && cce_u64_add(without_rope, rope, &with_rope)
         && cce_u64_mul(with_rope, 4, &with_rope) && cce_u64_mul(without_rope, 4, &without_rope)
         && cce_u64_add(with_rope, L2C_HEADER_BYTES, &with_rope)
         && cce_u64_add(without_rope, L2C_HEADER_BYTES, &without_rope);
    if (!ok || ((uint64_t)map.len != with_rope && (uint64_t)map.len != without_rope)) {
        char need[64];
        if (ok) snprintf(need, sizeof need, "%llu bytes", (unsigned long long)with_rope);
        else snprintf(need, sizeof need, "more than 2^64 bytes");
        st = cce_err_set(err, CCE_EFORMAT,
                         "%s: header says dim=%d, hidden_dim=%d, n_layers=%d, n_heads=%d, n_kv_heads=%d, "
                         "vocab_size=%lld, seq_len=%d; needs %s, file has %zu",
                         path, (int)dim, (int)hidden, (int)n_layers, (int)n_heads, (int)n_kv,
                         (long long)vocab_signed, (int)seq_len, need, map.len);
        goto cleanup_map;
    }
    int has_rope = (uint64_t)map.len == with_rope;

    cce_config cfg = {
        .arch = CCE_ARCH_LLAMA, .dim = dim, .n_layers = n_layers, .n_heads = n_heads,
        .n_kv_heads = n_kv, .head_dim = hd, .hidden_dim = hidden, .vocab_size = (int)vocab,
        .seq_len = seq_len, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_interleaved = 1,
        .tied = tied, .bos_id = 1, .eos_id = 2,
    };
    st = cce_model_new(&cfg, &m, err);
    if (st) {
        cce_err_prefix(err, st, path);
        goto cleanup_map;
    }
    m->format = CCE_FMT_LLAMA2C;
    if (!m->path) {
        m->path = cce_strdup(path);
        if (!m->path) {
            st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
            goto cleanup_model;
        }
    }

    /* Walk the body; every size below was covered by the length check above. */
    const float *p = (const float *)(map.data + L2C_HEADER_BYTES);  // 4-byte aligned: page + 28
    size_t d = (size_t)dim, hid = (size_t)hidden, kv = (size_t)kvd;
    m->tok_emb = (cce_linear){.out = (int)vocab, .in = dim, .wt = CCE_WT_F32, .w = p};   // (vocab, dim)
    p += (size_t)vocab * d;
    for (int l = 0; l < n_layers; l++) { m->layers[l].attn_norm = p; p += d; }        // (dim)
    for (int l = 0; l < n_layers; l++) { m->layers[l].wq.w = p; p += d * d; }         // (dim, dim)
    for (int l = 0; l < n_layers; l++) { m->layers[l].wk.w = p; p += kv * d; }        // (kvd, dim)
    for (int l = 0; l < n_layers; l++) { m->layers[l].wv.w = p; p += kv * d; }        // (kvd, dim)
    for (int l = 0; l < n_layers; l++) { m->layers[l].wo.w = p; p += d * d; }         // (dim, dim)
    for (int l = 0; l < n_layers; l++) { m->layers[l].ffn_norm = p; p += d; }         // (dim)
    for (int l = 0; l < n_layers; l++) { m->layers[l].w1.w = p; p += hid * d; }       // (hidden, dim)
    for (int l = 0; l < n_layers; l++) { m->layers[l].w2.w = p; p += d * hid; }       // (dim, hidden)
    for (int l = 0; l < n_layers; l++) { m->layers[l].w3.w = p; p += hid * d; }       // (hidden, dim)
    m->final_norm = p;                                                                 // (dim)
    p += d;
    if (has_rope) p += (size_t)rope;   // freq_cis_real, freq_cis_imag: unused, RoPE is recomputed
    m->lm_head = m->tok_emb;                                                           // (vocab, dim)
    if (!tied) m->lm_head.w = p;

    for (int l = 0; l < n_layers; l++) {
        cce_layer *ly = &m->layers[l];
        ly->dropped = 0;
        ly->n_heads = n_heads;
        ly->n_kv_heads = n_kv;
        ly->head_kv = NULL;
        ly->hidden = hidden;
        ly->wq.out = dim;        ly->wq.in = dim;
        ly->wk.out = (int)kvd;   ly->wk.in = dim;
        ly->wv.out = (int)kvd;   ly->wv.in = dim;
        ly->wo.out = dim;        ly->wo.in = dim;
        ly->w1.out = hidden;     ly->w1.in = dim;
        ly->w3.out = hidden;     ly->w3.in = dim;
        ly->w2.out = dim;        ly->w2.in = hidden;
    }

    st = cce_model_adopt_map(m, &map, err);
    if (st) goto cleanup_model;
    st = cce_model_validate(m, path, err);
    if (st) goto cleanup_model;
    *out = m;
    return CCE_OK;

cleanup_model:
    cce_model_free(m);
cleanup_map:
    cce_unmap(&map);  // no-op once adopted (adopt takes ownership and clears *map)
    return st;
}
