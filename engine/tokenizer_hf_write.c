/*
 * tokenizer_hf_write.c — writing a tokenizer as a Hugging Face tokenizer.json.
 *
 * The file is the one that tokenizer_hf.c (and Hugging Face tokenizers) reads back with the same
 * encodings: the pipeline of the tokenizer's kind (plain, Llama-2 normalizer, Metaspace, or
 * [Digits] [Split] ByteLevel), the pieces in their JSON form, the merges in rank order (for a
 * score vocabulary, the derived pair table), and the added tokens: a tokenizer.json's own with
 * their options, or for llama2.c / GGUF vocabularies the control, unknown and user tokens.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "tokenizer.h"
#include "tokenizer_int.h"
#include "util.h"

/* JSON string of piece id (NUL-terminated, written at out; returns its length). SP: spaces as
 * U+2581, byte tokens as <0xXX>; byte-level: bytes through bytes_to_unicode; control / unknown
 * / user tokens as they are. out needs 6 * plen + 8 bytes. */
static size_t tok_json_piece(const cce_tokenizer *t, const uint16_t b2u[256], int id, char *out) {
    const char *s = t->piece[id];
    size_t n = t->plen[id], o = 0;
    uint8_t ty = t->type[id];
    if (ty == TT_CONTROL || ty == TT_UNKNOWN || (ty == TT_USER && t->kind == CCE_TOK_BYTELEVEL)) {
        memcpy(out, s, n);
        o = n;
    } else if (ty == TT_BYTE) {
        o = (size_t)snprintf(out, 8, "<0x%02X>", (uint8_t)s[0]);
    } else if (t->kind == CCE_TOK_SP && t->plain) {
        memcpy(out, s, n);
        o = n;
    } else if (t->kind == CCE_TOK_SP) {
        for (size_t k = 0; k < n; k++) {
            if (s[k] == ' ') { memcpy(out + o, METASPACE, 3); o += 3; }
            else out[o++] = s[k];
        }
    } else {
        for (size_t k = 0; k < n; k++) o += tok_utf8_put(b2u[(uint8_t)s[k]], out + o);
    }
    out[o] = 0;
    return o;
}

/* Add item under key (object parent) or at the end (array parent, key NULL). A NULL parent or
 * item (failed allocation) clears *ok; the item is then freed. */
cJSON *tok_jadd(cJSON *parent, const char *key, cJSON *item, bool *ok) {
    if (!parent || !item) {
        cJSON_Delete(item);
        *ok = false;
        return NULL;
    }
    if (key ? !cJSON_AddItemToObject(parent, key, item) : !cJSON_AddItemToArray(parent, item)) {
        cJSON_Delete(item);
        *ok = false;
        return NULL;
    }
    return item;
}

cJSON *tok_jtype(cJSON *parent, const char *key, const char *type, bool *ok) {
    cJSON *o = tok_jadd(parent, key, cJSON_CreateObject(), ok);
    tok_jadd(o, "type", cJSON_CreateString(type), ok);
    return o;
}

/* The normalizer, pre-tokenizer, post-processor and decoder of t's kind. */
static void tok_json_pipeline(const cce_tokenizer *t, cJSON *root, const char *bos_name, bool *ok) {
    if (t->kind == CCE_TOK_SP && t->plain) {
        if (t->nfc) tok_jtype(root, "normalizer", "NFC", ok);
        else tok_jadd(root, "normalizer", cJSON_CreateNull(), ok);
        tok_jadd(root, "pre_tokenizer", cJSON_CreateNull(), ok);
    } else if (t->kind == CCE_TOK_SP && t->meta_scheme != TOK_META_NONE) {
        /* newer Llama-family form: Metaspace pre-tokenizer, no normalizer */
        tok_jadd(root, "normalizer", cJSON_CreateNull(), ok);
        cJSON *pre = tok_jtype(root, "pre_tokenizer", "Metaspace", ok);
        tok_jadd(pre, "replacement", cJSON_CreateString(METASPACE), ok);
        static const char *const scheme[4] = { "never", "always", "first", "never" };
        tok_jadd(pre, "prepend_scheme", cJSON_CreateString(scheme[t->meta_scheme & 3]), ok);
        tok_jadd(pre, "split", cJSON_CreateBool(t->split_words), ok);
    } else if (t->kind == CCE_TOK_SP) {
        cJSON *norm = tok_jtype(root, "normalizer", "Sequence", ok);
        cJSON *list = tok_jadd(norm, "normalizers", cJSON_CreateArray(), ok);
        if (t->norm_prepend) {
            cJSON *pre = tok_jtype(list, NULL, "Prepend", ok);
            tok_jadd(pre, "prepend", cJSON_CreateString(METASPACE), ok);
        }
        cJSON *rep = tok_jtype(list, NULL, "Replace", ok);
        cJSON *pat = tok_jadd(rep, "pattern", cJSON_CreateObject(), ok);
        tok_jadd(pat, "String", cJSON_CreateString(" "), ok);
        tok_jadd(rep, "content", cJSON_CreateString(METASPACE), ok);
        if (t->nfc) tok_jtype(list, NULL, "NFC", ok);
        tok_jadd(root, "pre_tokenizer", cJSON_CreateNull(), ok);
    } else {
        if (t->nfc) tok_jtype(root, "normalizer", "NFC", ok);
        else tok_jadd(root, "normalizer", cJSON_CreateNull(), ok);
        /* [Digits] [Split regex] ByteLevel, as a Sequence when there is more than ByteLevel */
        bool split = t->pretok == TOK_PT_LLAMA3 || t->pretok == TOK_PT_QWEN2;
        cJSON *list = NULL;
        if (t->digits || split) {
            cJSON *seq = tok_jtype(root, "pre_tokenizer", "Sequence", ok);
            list = tok_jadd(seq, "pretokenizers", cJSON_CreateArray(), ok);
        }
        if (t->digits) {
            cJSON *d = tok_jtype(list, NULL, "Digits", ok);
            tok_jadd(d, "individual_digits", cJSON_CreateBool(t->digits == 1), ok);
        }
        if (split) {
            cJSON *sp = tok_jtype(list, NULL, "Split", ok);
            cJSON *pat = tok_jadd(sp, "pattern", cJSON_CreateObject(), ok);
            tok_jadd(pat, "Regex", cJSON_CreateString(tok_split_regex[t->pretok]), ok);
            tok_jadd(sp, "behavior", cJSON_CreateString("Isolated"), ok);
            tok_jadd(sp, "invert", cJSON_CreateFalse(), ok);
        }
        cJSON *pre = list ? tok_jtype(list, NULL, "ByteLevel", ok) : tok_jtype(root, "pre_tokenizer", "ByteLevel", ok);
        tok_jadd(pre, "add_prefix_space", cJSON_CreateBool(t->bl_prefix), ok);
        tok_jadd(pre, "trim_offsets", cJSON_CreateTrue(), ok);
        tok_jadd(pre, "use_regex", cJSON_CreateBool(t->pretok == TOK_PT_GPT2), ok);
    }
    if (bos_name) {
        cJSON *post = tok_jtype(root, "post_processor", "TemplateProcessing", ok);
        cJSON *single = tok_jadd(post, "single", cJSON_CreateArray(), ok);
        cJSON *pair = tok_jadd(post, "pair", cJSON_CreateArray(), ok);
        for (int k = 0; k < 4; k++) {
            for (int copy = 0; copy < (k < 2 ? 2 : 1); copy++) {
                cJSON *e = tok_jadd(copy ? single : pair, NULL, cJSON_CreateObject(), ok);
                cJSON *inner = tok_jadd(e, k % 2 == 0 ? "SpecialToken" : "Sequence", cJSON_CreateObject(), ok);
                tok_jadd(inner, "id", cJSON_CreateString(k % 2 == 0 ? bos_name : k == 1 ? "A" : "B"), ok);
                tok_jadd(inner, "type_id", cJSON_CreateNumber(k < 2 ? 0 : 1), ok);
            }
        }
        cJSON *sp = tok_jadd(post, "special_tokens", cJSON_CreateObject(), ok);
        cJSON *b = tok_jadd(sp, bos_name, cJSON_CreateObject(), ok);
        tok_jadd(b, "id", cJSON_CreateString(bos_name), ok);
        tok_jadd(tok_jadd(b, "ids", cJSON_CreateArray(), ok), NULL, cJSON_CreateNumber(t->bos), ok);
        tok_jadd(tok_jadd(b, "tokens", cJSON_CreateArray(), ok), NULL, cJSON_CreateString(bos_name), ok);
    } else if (t->kind == CCE_TOK_BYTELEVEL) {
        cJSON *post = tok_jtype(root, "post_processor", "ByteLevel", ok);
        tok_jadd(post, "add_prefix_space", cJSON_CreateTrue(), ok);
        tok_jadd(post, "trim_offsets", cJSON_CreateFalse(), ok);
        tok_jadd(post, "use_regex", cJSON_CreateTrue(), ok);
    } else {   /* no BOS: say so explicitly (a null post_processor would mean "<s>" on reload) */
        cJSON *post = tok_jtype(root, "post_processor", "TemplateProcessing", ok);
        cJSON *single = tok_jadd(post, "single", cJSON_CreateArray(), ok);
        cJSON *pair = tok_jadd(post, "pair", cJSON_CreateArray(), ok);
        for (int k = 0; k < 3; k++) {
            cJSON *e = tok_jadd(k ? pair : single, NULL, cJSON_CreateObject(), ok);
            cJSON *inner = tok_jadd(e, "Sequence", cJSON_CreateObject(), ok);
            tok_jadd(inner, "id", cJSON_CreateString(k == 2 ? "B" : "A"), ok);
            tok_jadd(inner, "type_id", cJSON_CreateNumber(k == 2 ? 1 : 0), ok);
        }
        tok_jadd(post, "special_tokens", cJSON_CreateObject(), ok);
    }
    if (t->kind == CCE_TOK_SP && t->plain) {
        cJSON *dec = tok_jtype(root, "decoder", "Sequence", ok);
        cJSON *list = tok_jadd(dec, "decoders", cJSON_CreateArray(), ok);
        tok_jtype(list, NULL, "ByteFallback", ok);
        tok_jtype(list, NULL, "Fuse", ok);
    } else if (t->kind == CCE_TOK_SP) {
        cJSON *dec = tok_jtype(root, "decoder", "Sequence", ok);
        cJSON *list = tok_jadd(dec, "decoders", cJSON_CreateArray(), ok);
        cJSON *rep = tok_jtype(list, NULL, "Replace", ok);
        cJSON *pat = tok_jadd(rep, "pattern", cJSON_CreateObject(), ok);
        tok_jadd(pat, "String", cJSON_CreateString(METASPACE), ok);
        tok_jadd(rep, "content", cJSON_CreateString(" "), ok);
        tok_jtype(list, NULL, "ByteFallback", ok);
        tok_jtype(list, NULL, "Fuse", ok);
        cJSON *strip = tok_jtype(list, NULL, "Strip", ok);
        tok_jadd(strip, "content", cJSON_CreateString(" "), ok);
        tok_jadd(strip, "start", cJSON_CreateNumber(1), ok);
        tok_jadd(strip, "stop", cJSON_CreateNumber(0), ok);
    } else {
        cJSON *dec = tok_jtype(root, "decoder", "ByteLevel", ok);
        tok_jadd(dec, "add_prefix_space", cJSON_CreateTrue(), ok);
        tok_jadd(dec, "trim_offsets", cJSON_CreateTrue(), ok);
        tok_jadd(dec, "use_regex", cJSON_CreateTrue(), ok);
    }
}

/* Write t as a tokenizer.json (atomically) that cce_tokenizer_load_hf and the Hugging Face
 * tokenizers libraries read back with the same encodings: for a score vocabulary the merges are
 * the derived pair table in rank order. EUNSUPPORTED when a piece cannot be a JSON string or
 * two pieces would collide in tokenizer.json form. */
cce_status cce_tokenizer_save_hf(const cce_tokenizer *t, const char *path, cce_err *err) {
    if (!t || !path) return cce_err_set(err, CCE_EINVAL, "tokenizer: save: no tokenizer or no path");
    cce_status st = CCE_OK;
    char **js = NULL, *arena = NULL, *buf = NULL, *outs = NULL;
    int32_t *aix = NULL;   /* (n) index into t->added, -1 for others */
    size_t *jl = NULL;
    tok_index ix = {0};
    cJSON *root = NULL;
    char sa[64];
    uint16_t b2u[256];
    int16_t u2b[324];
    tok_byte_tables(b2u, u2b);
    size_t alen = 0, maxl = 0;
    for (int i = 0; i < t->n; i++) {
        alen += 6 * t->plen[i] + 8;
        if (t->plen[i] > maxl) maxl = t->plen[i];
    }
    js = cce_alloc_zero((size_t)t->n, sizeof *js);
    jl = cce_alloc_zero((size_t)t->n, sizeof *jl);
    arena = cce_alloc(alen, 1);
    buf = cce_alloc(12 * maxl + 24, 1);
    aix = cce_alloc((size_t)t->n, sizeof *aix);
    if (!js || !jl || !arena || !buf || !aix) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path); goto cleanup; }
    for (int i = 0; i < t->n; i++) aix[i] = -1;
    for (int k = 0; k < t->n_added; k++) aix[t->added[k].id] = k;
    size_t used = 0;
    for (int i = 0; i < t->n; i++) {
        if (aix[i] >= 0) {   /* a tokenizer.json's added tokens keep their text */
            js[i] = t->added_arena + t->added[aix[i]].content;
            jl[i] = t->added[aix[i]].clen;
            continue;
        }
        if (t->type[i] == TT_UNUSED || !t->piece[i]) continue;
        js[i] = arena + used;
        jl[i] = tok_json_piece(t, b2u, i, js[i]);
        used += jl[i] + 1;
        if (!jl[i]) { js[i] = NULL; continue; }   /* an empty piece is never produced: leave a hole */
        if (!cce_utf8_valid(js[i], jl[i]) || memchr(js[i], 0, jl[i])) {
            st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: token %d: piece '%s' cannot be a tokenizer.json string (not UTF-8)",
                             path, i, tok_show(t->piece[i], t->plen[i], sa, sizeof sa));
            goto cleanup;
        }
    }
    int da, db;
    if ((st = tok_index_build(&ix, t->n, js, jl, NULL, &da, &db))) { cce_err_set(err, st, "%s: out of memory", path); goto cleanup; }
    if (da >= 0) {
        st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: tokens %d and %d are both '%s' in tokenizer.json form", path, da, db,
                         tok_show(js[da], jl[da], sa, sizeof sa));
        goto cleanup;
    }
    root = cJSON_CreateObject();
    if (!root) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path); goto cleanup; }
    bool ok = true;
    tok_jadd(root, "version", cJSON_CreateString("1.0"), &ok);
    tok_jadd(root, "truncation", cJSON_CreateNull(), &ok);
    tok_jadd(root, "padding", cJSON_CreateNull(), &ok);
    cJSON *added = tok_jadd(root, "added_tokens", cJSON_CreateArray(), &ok);
    for (int i = 0; i < t->n && ok; i++) {
        const tok_added *ta = aix[i] >= 0 ? &t->added[aix[i]] : NULL;
        if (!js[i] || (t->json_added ? !ta : t->type[i] != TT_CONTROL && t->type[i] != TT_UNKNOWN && t->type[i] != TT_USER))
            continue;
        bool special = ta ? ta->special : t->type[i] != TT_USER;
        cJSON *a = tok_jadd(added, NULL, cJSON_CreateObject(), &ok);
        tok_jadd(a, "id", cJSON_CreateNumber(i), &ok);
        tok_jadd(a, "content", cJSON_CreateString(js[i]), &ok);
        tok_jadd(a, "single_word", cJSON_CreateBool(ta && ta->single_word), &ok);
        tok_jadd(a, "lstrip", cJSON_CreateBool(ta && ta->lstrip), &ok);
        tok_jadd(a, "rstrip", cJSON_CreateBool(ta && ta->rstrip), &ok);
        tok_jadd(a, "normalized", cJSON_CreateBool(ta ? ta->pass == 1 : !special), &ok);
        tok_jadd(a, "special", cJSON_CreateBool(special), &ok);
    }
    tok_json_pipeline(t, root, t->bos >= 0 && js[t->bos] ? js[t->bos] : NULL, &ok);
    cJSON *model = tok_jtype(root, "model", "BPE", &ok);
    tok_jadd(model, "dropout", cJSON_CreateNull(), &ok);
    tok_jadd(model, "unk_token", t->unk >= 0 && js[t->unk] ? cJSON_CreateString(js[t->unk]) : cJSON_CreateNull(), &ok);
    tok_jadd(model, "continuing_subword_prefix", cJSON_CreateNull(), &ok);
    tok_jadd(model, "end_of_word_suffix", cJSON_CreateNull(), &ok);
    tok_jadd(model, "fuse_unk", cJSON_CreateBool(t->fuse_unk), &ok);
    tok_jadd(model, "byte_fallback", cJSON_CreateBool(t->byte_fallback), &ok);
    tok_jadd(model, "ignore_merges", cJSON_CreateBool(t->ignore_merges), &ok);
    cJSON *vocab = tok_jadd(model, "vocab", cJSON_CreateObject(), &ok);
    for (int i = 0; i < t->n && ok; i++)
        if (js[i] && (aix[i] < 0 || t->added[aix[i]].in_vocab)) tok_jadd(vocab, js[i], cJSON_CreateNumber(i), &ok);
    cJSON *mlist = tok_jadd(model, "merges", cJSON_CreateArray(), &ok);
    for (size_t k = 0; k < t->n_merges; k++)
        if (!js[t->merges[k].left] || !js[t->merges[k].right]) {
            st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: merge %zu uses an empty piece", path, k);
            goto cleanup;
        }
    bool as_pairs = false;   /* "a b" strings unless a piece holds a real space */
    for (size_t k = 0; k < t->n_merges && !as_pairs; k++)
        as_pairs = memchr(js[t->merges[k].left], ' ', jl[t->merges[k].left]) ||
                   memchr(js[t->merges[k].right], ' ', jl[t->merges[k].right]);
    for (size_t k = 0; k < t->n_merges && ok; k++) {
        const tok_merge *mg = &t->merges[k];
        if (as_pairs) {
            cJSON *p = tok_jadd(mlist, NULL, cJSON_CreateArray(), &ok);
            tok_jadd(p, NULL, cJSON_CreateString(js[mg->left]), &ok);
            tok_jadd(p, NULL, cJSON_CreateString(js[mg->right]), &ok);
        } else {
            snprintf(buf, 12 * maxl + 24, "%s %s", js[mg->left], js[mg->right]);
            tok_jadd(mlist, NULL, cJSON_CreateString(buf), &ok);
        }
    }
    if (!ok) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory building JSON", path); goto cleanup; }
    outs = cJSON_Print(root);
    if (!outs) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory printing JSON", path); goto cleanup; }
    st = cce_write_file_atomic(path, outs, strlen(outs), err);
cleanup:
    if (outs) cJSON_free(outs);
    cJSON_Delete(root);
    cce_free(js);
    cce_free(jl);
    cce_free(aix);
    cce_free(arena);
    cce_free(buf);
    cce_free(ix.slot);
    return st;
}

