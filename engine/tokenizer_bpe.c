/*
 * tokenizer_bpe.c — byte-level BPE (GPT-2 family): the bytes_to_unicode alphabet, the initial
 * symbols of a text (pre-tokens from tokenizer_pretok.c, one symbol per byte), and the GGUF
 * tokenizer.ggml.model "gpt2" builder, which turns the metadata arrays into the equivalent
 * tokenizer.json tree so that GGUF and tokenizer.json share one validator (tokenizer_hf.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "tokenizer.h"
#include "tokenizer_int.h"
#include "util.h"

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order. b2u[byte] = codepoint; u2b[codepoint < 324] = byte or -1. */
void tok_byte_tables(uint16_t b2u[256], int16_t u2b[324]) {
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        b2u[b] = (uint16_t)(keep ? b : 256 + extra++);
        u2b[b2u[b]] = (int16_t)b;
    }
}


/* One word u[0..n) of a unit: a segment, one symbol per byte (or the whole word with
 * ignore_merges when it is a piece). */
static int tok_bl_word(const cce_tokenizer *t, tok_work *w, const uint8_t *u, size_t n, size_t *m) {
    size_t seg0 = *m;
    w->seg[w->nseg++] = (int32_t)seg0;
    int32_t whole = t->ignore_merges ? tok_find(t, (const char *)u, n) : -1;
    if (whole >= 0) { w->sym[(*m)++] = whole; return 0; }
    for (size_t k = 0; k < n; k++)
        if (tok_push_bytes(t, w, m, seg0, u + k, 1)) return -1;
    return 0;
}

/* A unit u[0..n) as it reaches the ByteLevel pre-tokenizer: with add_prefix_space it gets a
 * space unless it starts with one, then the GPT-2 regex (use_regex) cuts it into words. */
static int tok_bl_unit(const cce_tokenizer *t, tok_work *w, const uint8_t *u, size_t n, size_t *m) {
    if (t->bl_prefix && u[0] != ' ') {
        w->scratch[0] = ' ';
        memcpy(w->scratch + 1, u, n);
        u = w->scratch;
        n++;
    }
    if (t->pretok != TOK_PT_GPT2) return tok_bl_word(t, w, u, n, m);
    for (size_t i = 0; i < n;) {
        size_t j = tok_word_end(t, u, n, i);
        if (tok_bl_word(t, w, u + i, j - i, m)) return -1;
        i = j;
    }
    return 0;
}

/* Byte-level initial symbols of s[0..len), pre-tokenised as Hugging Face's Sequence does: a
 * Digits pre-tokenizer cuts the text at digits (each digit alone, or digit runs), a Split regex
 * cuts each of those pieces into words, and each resulting unit goes through ByteLevel (prefix
 * space, GPT-2 regex when use_regex). Every unit can gain a prefix byte, so w holds 2 * len + 3
 * symbols when a prefix meets Digits or Split (cce_tokenizer_encode sizes it). */
int tok_bl_symbols(const cce_tokenizer *t, tok_work *w, const uint8_t *s, size_t len,
                   size_t *m, size_t *bad) {
    *m = 0;
    w->nseg = 0;
    bool split = t->pretok == TOK_PT_LLAMA3 || t->pretok == TOK_PT_QWEN2;
    size_t c0 = 0;
    while (c0 < len) {
        size_t c1 = len, cl;
        if (t->digits) {   /* piece [c0, c1): a digit (run) or a stretch without digits */
            bool dig = tok_class_at(s, len, c0, &cl) == CC_NUMBER;
            c1 = c0 + cl;
            if (!dig || t->digits == 2)
                while (c1 < len && (tok_class_at(s, len, c1, &cl) == CC_NUMBER) == dig) c1 += cl;
        }
        for (size_t i = c0; i < c1;) {
            size_t j = split ? tok_word_end(t, s, c1, i) : c1;
            if (tok_bl_unit(t, w, s + i, j - i, m)) { *bad = i; return -1; }
            i = j;
        }
        c0 = c1;
    }
    return 0;
}

/* NUL-terminated copy of s[0..n) into a scratch buffer grown as needed; NULL on a NUL byte
 * inside or on allocation failure (*nul_inside tells which). */
static const char *tok_cstr(const char *s, size_t n, char **buf, size_t *cap, bool *nul_inside) {
    *nul_inside = n && memchr(s, 0, n) != NULL;
    if (*nul_inside) return NULL;
    if (n + 1 > *cap) {
        char *nb = cce_alloc(2 * n + 16, 1);
        if (!nb) return NULL;
        cce_free(*buf);
        *buf = nb;
        *cap = 2 * n + 16;
    }
    if (n) memcpy(*buf, s, n);
    (*buf)[n] = 0;
    return *buf;
}

/* The pre-tokenizer JSON for a llama.cpp tokenizer.ggml.pre name; NULL if unknown. */
static cJSON *tok_gguf_pretok(const char *pre) {
    int kind = -1, digits = 0;
    if (!pre || !strcmp(pre, "default") || !strcmp(pre, "gpt-2") || !strcmp(pre, "gpt2")) kind = TOK_PT_GPT2;
    else if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "llama-bpe")) kind = TOK_PT_LLAMA3;
    else if (!strcmp(pre, "qwen2")) kind = TOK_PT_QWEN2;
    else if (!strcmp(pre, "smollm")) { kind = TOK_PT_GPT2; digits = 1; }
    if (kind < 0) return NULL;
    bool ok = true;
    cJSON *seq = cJSON_CreateObject();
    tok_jadd(seq, "type", cJSON_CreateString("Sequence"), &ok);
    cJSON *list = tok_jadd(seq, "pretokenizers", cJSON_CreateArray(), &ok);
    if (digits) {
        cJSON *d = tok_jtype(list, NULL, "Digits", &ok);
        tok_jadd(d, "individual_digits", cJSON_CreateTrue(), &ok);
    }
    if (kind != TOK_PT_GPT2) {
        cJSON *sp = tok_jtype(list, NULL, "Split", &ok);
        cJSON *pat = tok_jadd(sp, "pattern", cJSON_CreateObject(), &ok);
        tok_jadd(pat, "Regex", cJSON_CreateString(tok_split_regex[kind]), &ok);
        tok_jadd(sp, "behavior", cJSON_CreateString("Isolated"), &ok);
    }
    cJSON *bl = tok_jtype(list, NULL, "ByteLevel", &ok);
    tok_jadd(bl, "add_prefix_space", cJSON_CreateFalse(), &ok);
    tok_jadd(bl, "use_regex", cJSON_CreateBool(kind == TOK_PT_GPT2), &ok);
    if (!ok) { cJSON_Delete(seq); return NULL; }
    return seq;
}

/* Builds the equivalent tokenizer.json tree and hands it to tok_hf_build, so GGUF and
 * tokenizer.json share one validator (messages name tokenizer.json fields: model.vocab is
 * tokenizer.ggml.tokens, model.merges is tokenizer.ggml.merges). */
cce_status cce_tokenizer_build_bpe(int n, const char *const *pieces, const size_t *lens,
                                   const int32_t *types, size_t n_merges,
                                   const char *const *merges, const size_t *merge_lens,
                                   const char *pre, int bos_id, int eos_id, const char *what,
                                   cce_tokenizer **out, cce_err *err) {
    *out = NULL;
    if (!what) what = "tokenizer";
    if (n <= 0 || n >= TOK_MAX_VOCAB)
        return cce_err_set(err, CCE_EFORMAT, "%s: token count %d out of range (1..%d)", what, n, TOK_MAX_VOCAB - 1);
    if (!pieces || !lens || (n_merges && (!merges || !merge_lens)))
        return cce_err_set(err, CCE_EINVAL, "%s: tokens or merges missing", what);
    if (n_merges >= (size_t)1 << 26)
        return cce_err_set(err, CCE_EFORMAT, "%s: %zu merges is too many", what, n_merges);
    if (bos_id < -1 || bos_id >= n || eos_id < -1 || eos_id >= n)
        return cce_err_set(err, CCE_EFORMAT, "%s: special ids bos %d / eos %d out of range for %d tokens", what, bos_id, eos_id, n);
    cJSON *pt = tok_gguf_pretok(pre);
    if (!pt) {
        char sa[64];
        return cce_err_set(err, pre ? CCE_EUNSUPPORTED : CCE_ENOMEM, "%s: tokenizer.ggml.pre '%s' is not supported (gpt-2, llama-bpe, qwen2, smollm)",
                           what, pre ? tok_show(pre, strlen(pre), sa, sizeof sa) : "");
    }
    bool ok = true, nul = false;
    char *buf = NULL;
    size_t cap = 0;
    cce_status st = CCE_OK;
    cJSON *root = cJSON_CreateObject();
    tok_jadd(root, "pre_tokenizer", pt, &ok);
    cJSON *added = tok_jadd(root, "added_tokens", cJSON_CreateArray(), &ok);
    cJSON *model = tok_jtype(root, "model", "BPE", &ok);
    tok_jadd(model, "ignore_merges", cJSON_CreateBool(pre && (!strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "llama-bpe"))), &ok);
    cJSON *vocab = tok_jadd(model, "vocab", cJSON_CreateObject(), &ok);
    for (int i = 0; i < n && ok && !nul; i++) {
        if (lens[i] > TOK_MAX_PIECE || (lens[i] && !pieces[i])) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: token %d: length %zu out of range (0..%d)", what, i, lens[i], TOK_MAX_PIECE);
            goto cleanup;
        }
        if (types && (types[i] < 0 || types[i] > 6)) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: token %d: token_type %d out of range (0..6)", what, i, (int)types[i]);
            goto cleanup;
        }
        if (lens[i] == 0 || (types && types[i] == TT_UNUSED)) continue;
        const char *key = tok_cstr(pieces[i], lens[i], &buf, &cap, &nul);
        if (!key) { ok = ok && nul; break; }
        tok_jadd(vocab, key, cJSON_CreateNumber(i), &ok);
        bool control = types ? types[i] == TT_CONTROL : (i == bos_id || i == eos_id);
        if (control || (types && types[i] == TT_USER)) {
            cJSON *a = tok_jadd(added, NULL, cJSON_CreateObject(), &ok);
            tok_jadd(a, "id", cJSON_CreateNumber(i), &ok);
            tok_jadd(a, "content", cJSON_CreateString(key), &ok);
            tok_jadd(a, "special", cJSON_CreateBool(control), &ok);
            tok_jadd(a, "normalized", cJSON_CreateFalse(), &ok);   /* llama.cpp matches both in the raw text */
        }
    }
    cJSON *ml = tok_jadd(model, "merges", cJSON_CreateArray(), &ok);
    for (size_t k = 0; k < n_merges && ok && !nul; k++) {
        if (merge_lens[k] > 2 * (size_t)TOK_MAX_PIECE + 1 || (merge_lens[k] && !merges[k])) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: merge %zu: length %zu out of range", what, k, merge_lens[k]);
            goto cleanup;
        }
        const char *m = tok_cstr(merges[k], merge_lens[k], &buf, &cap, &nul);
        if (!m) { ok = ok && nul; break; }
        tok_jadd(ml, NULL, cJSON_CreateString(m), &ok);
    }
    if (nul) { st = cce_err_set(err, CCE_EFORMAT, "%s: a token or merge holds a NUL byte", what); goto cleanup; }
    if (!ok) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", what); goto cleanup; }
    if ((st = tok_hf_build(root, what, out, err))) goto cleanup;
    (*out)->bos = bos_id;
    (*out)->eos = eos_id;
cleanup:
    cJSON_Delete(root);
    cce_free(buf);
    return st;
}
