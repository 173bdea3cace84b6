/*
 * tokenizer_hf.c — Hugging Face tokenizer.json reader.
 *
 * The file is parsed whole with cJSON, every id, piece, merge and added token is validated, and
 * the pipeline (normalizer, pre_tokenizer, model options) is matched against the forms we can
 * reproduce exactly; anything else is refused with one line naming the component.
 * Non-special added tokens are matched on the raw text too (HF matches "normalized" ones after
 * normalisation: the same for our normalisers unless the token holds a space). Not implemented:
 * BPE dropout, continuing_subword_prefix / end_of_word_suffix, added-token lstrip/rstrip, other
 * Split regexes and pre-tokenizers, normalizers other than Prepend/Replace/NFC. An NFC
 * normalizer (Qwen2) is taken as the identity.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "tokenizer.h"
#include "tokenizer_int.h"
#include "util.h"

/* Integer id from a JSON number: 0 ok; else a reason for the error message. */
static const char *tok_json_id(const cJSON *v, int32_t *out) {
    if (!cJSON_IsNumber(v)) return "is not a number";
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d)) return "is not an integer";
    if (d < 0) return "is negative";
    if (d >= TOK_MAX_VOCAB) return "is too large (ids must be below 2^24)";
    *out = (int32_t)d;
    return NULL;
}

static bool tok_json_is(const cJSON *obj, const char *key, const char *want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

static const char *tok_json_type(const cJSON *obj) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(v) ? v->valuestring : "(none)";
}

/* Optional boolean: absent/null -> def; a non-boolean -> -1. */
static int tok_json_bool(const cJSON *obj, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsBool(v)) return -1;
    return cJSON_IsTrue(v) ? 1 : 0;
}


typedef struct {
    bool bytelevel, metaspace, prepend, replace, split, add_prefix_space, first_only, meta_prepend;
    bool bl_regex, nfc;
    int split_pattern;   /* 0 none, else TOK_PT_* + 1 */
    int digits;          /* 0 none, 1 individual digits, 2 digit runs */
} tok_hf_shape;

/* Read normalizer / pre_tokenizer into shape; error for anything we cannot reproduce. */
static cce_status tok_hf_normalizer(const char *path, const cJSON *n, const char *field,
                                    tok_hf_shape *sh, cce_err *err) {
    if (!n || cJSON_IsNull(n)) return CCE_OK;
    if (!cJSON_IsObject(n)) return cce_err_set(err, CCE_EFORMAT, "%s: %s is not an object", path, field);
    const char *ty = tok_json_type(n);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list)) return cce_err_set(err, CCE_EFORMAT, "%s: %s.normalizers is not an array", path, field);
        int i = 0;
        for (const cJSON *c = list->child; c; c = c->next, i++) {
            char f[96];
            snprintf(f, sizeof f, "%s.normalizers[%d]", field, i);
            cce_status st = tok_hf_normalizer(path, c, f, sh, err);
            if (st) return st;
        }
        return CCE_OK;
    }
    if (!strcmp(ty, "Prepend") && tok_json_is(n, "prepend", METASPACE)) { sh->prepend = true; return CCE_OK; }
    /* NFC is taken as the identity: exact for text that is already NFC (precomposed), as
     * nearly all text is; decomposed input may then encode differently from HF. */
    if (!strcmp(ty, "NFC")) { sh->nfc = true; return CCE_OK; }
    if (!strcmp(ty, "Replace") && tok_json_is(n, "content", METASPACE)) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        if (cJSON_IsObject(pat) && tok_json_is(pat, "String", " ")) { sh->replace = true; return CCE_OK; }
    }
    return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: normalizer '%s' is not supported (only Prepend/Replace with U+2581)",
                       path, field, ty);
}

static cce_status tok_hf_pretok(const char *path, const cJSON *p, const char *field,
                                tok_hf_shape *sh, cce_err *err) {
    if (!p || cJSON_IsNull(p)) return CCE_OK;
    if (!cJSON_IsObject(p)) return cce_err_set(err, CCE_EFORMAT, "%s: %s is not an object", path, field);
    const char *ty = tok_json_type(p);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list)) return cce_err_set(err, CCE_EFORMAT, "%s: %s.pretokenizers is not an array", path, field);
        int i = 0;
        for (const cJSON *c = list->child; c; c = c->next, i++) {
            char f[96];
            snprintf(f, sizeof f, "%s.pretokenizers[%d]", field, i);
            cce_status st = tok_hf_pretok(path, c, f, sh, err);
            if (st) return st;
        }
        return CCE_OK;
    }
    if (!strcmp(ty, "ByteLevel")) {
        int aps = tok_json_bool(p, "add_prefix_space", 1), rx = tok_json_bool(p, "use_regex", 1);
        if (aps < 0 || rx < 0) return cce_err_set(err, CCE_EFORMAT, "%s: %s: add_prefix_space/use_regex is not a boolean", path, field);
        sh->bytelevel = true;
        sh->bl_regex = rx;
        sh->add_prefix_space = aps;
        return CCE_OK;
    }
    if (!strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        if (!cJSON_IsString(rx))
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Split without a Regex pattern is not supported", path, field);
        if ((beh && !tok_json_is(p, "behavior", "Isolated")) || tok_json_bool(p, "invert", 0) != 0)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Split other than behavior Isolated, invert false", path, field);
        for (int k = 0; k < 3; k++)
            if (!strcmp(rx->valuestring, tok_split_regex[k])) { sh->split_pattern = k + 1; return CCE_OK; }
        char sa[64];
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Split regex '%s' is not one we implement (GPT-2, Llama-3, Qwen2)",
                           path, field, tok_show(rx->valuestring, strlen(rx->valuestring), sa, sizeof sa));
    }
    if (!strcmp(ty, "Digits")) {
        int ind = tok_json_bool(p, "individual_digits", 0);
        if (ind < 0) return cce_err_set(err, CCE_EFORMAT, "%s: %s.individual_digits is not a boolean", path, field);
        sh->digits = ind ? 1 : 2;
        return CCE_OK;
    }
    if (!strcmp(ty, "Metaspace")) {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(p, "replacement");
        if (rep && !tok_json_is(p, "replacement", METASPACE))
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Metaspace replacement other than U+2581", path, field);
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme");
        int aps = tok_json_bool(p, "add_prefix_space", 1), split = tok_json_bool(p, "split", 1);
        if (aps < 0 || split < 0) return cce_err_set(err, CCE_EFORMAT, "%s: %s: add_prefix_space/split is not a boolean", path, field);
        if (cJSON_IsString(scheme)) {
            const char *s = scheme->valuestring;
            sh->first_only = !strcmp(s, "first");
            if (!strcmp(s, "always") || !strcmp(s, "first")) aps = 1;
            else if (!strcmp(s, "never")) aps = 0;
            else return cce_err_set(err, CCE_EFORMAT, "%s: %s.prepend_scheme '%s' unknown", path, field, s);
        }
        sh->metaspace = true;
        sh->meta_prepend = aps;
        sh->split = split;
        return CCE_OK;
    }
    return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: pre_tokenizer '%s' is not supported (only ByteLevel, Metaspace)",
                       path, field, ty);
}

/* BOS from a TemplateProcessing post_processor ("single": [SpecialToken X, Sequence A ...]). */
static const char *tok_hf_bos_name(const cJSON *post) {
    if (!cJSON_IsObject(post)) return NULL;
    const char *ty = tok_json_type(post);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(post, "processors");
        for (const cJSON *c = cJSON_IsArray(list) ? list->child : NULL; c; c = c->next) {
            const char *b = tok_hf_bos_name(c);
            if (b) return b;
        }
        return NULL;
    }
    if (strcmp(ty, "TemplateProcessing")) return NULL;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single");
    if (!cJSON_IsArray(single) || !single->child) return NULL;
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(single->child, "SpecialToken");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(sp, "id");
    return cJSON_IsString(id) ? id->valuestring : NULL;
}

typedef struct {
    int nid;              /* ids 0..nid-1 */
    char **js;            /* (nid) JSON string of each id, NULL for holes (points into cJSON) */
    size_t *jl;           /* (nid) */
    uint8_t *added;       /* (nid) 0 vocab only, 1 added special, 2 added non-special */
    uint8_t *invocab;     /* (nid) */
    tok_index ix;         /* vocab strings -> id */
} tok_hf_ids;

static int32_t tok_hf_lookup(const tok_hf_ids *h, const char *s) {
    size_t n = strlen(s);
    int32_t id = tok_index_find(&h->ix, h->js, h->jl, s, n);
    if (id >= 0) return id;
    for (int i = 0; i < h->nid; i++)
        if (h->added[i] && h->js[i] && h->jl[i] == n && !memcmp(h->js[i], s, n)) return i;
    return -1;
}

/* Build a tokenizer from a parsed tokenizer.json object; every error names `path`. */
cce_status tok_hf_build(const cJSON *root, const char *path, cce_tokenizer **out, cce_err *err) {
    *out = NULL;
    char *cat = NULL;
    cce_tokenizer *t = NULL;
    tok_hf_ids h = {0};
    char sa[64], sb[64];
    cce_status st = CCE_OK;
    if (!cJSON_IsObject(root)) { st = cce_err_set(err, CCE_EFORMAT, "%s: top level is not a JSON object", path); goto cleanup; }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) { st = cce_err_set(err, CCE_EFORMAT, "%s: 'model' is missing or not an object", path); goto cleanup; }
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (mtype && !(cJSON_IsString(mtype) && !strcmp(mtype->valuestring, "BPE"))) {
        st = cce_err_set(err, cJSON_IsString(mtype) ? CCE_EUNSUPPORTED : CCE_EFORMAT,
                         "%s: model.type %s%s%s is not supported (only BPE)", path,
                         cJSON_IsString(mtype) ? "'" : "", cJSON_IsString(mtype) ? mtype->valuestring : "(not a string)",
                         cJSON_IsString(mtype) ? "'" : "");
        goto cleanup;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) { st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab is missing or not an object", path); goto cleanup; }
    if (merges && !cJSON_IsNull(merges) && !cJSON_IsArray(merges)) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: model.merges is not an array", path);
        goto cleanup;
    }
    if (!mtype && !cJSON_IsArray(merges)) { st = cce_err_set(err, CCE_EFORMAT, "%s: model has no type and no merges", path); goto cleanup; }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0)) {
        st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: model.dropout is not supported", path);
        goto cleanup;
    }
    const char *affix[2] = { "continuing_subword_prefix", "end_of_word_suffix" };
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, affix[k]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !v->valuestring[0])) {
            st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: model.%s is not supported", path, affix[k]);
            goto cleanup;
        }
    }
    int byte_fallback = tok_json_bool(model, "byte_fallback", 0);
    int fuse_unk = tok_json_bool(model, "fuse_unk", 0);
    int ignore_merges = tok_json_bool(model, "ignore_merges", 0);
    if (byte_fallback < 0 || fuse_unk < 0 || ignore_merges < 0) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: model.byte_fallback/fuse_unk/ignore_merges is not a boolean", path);
        goto cleanup;
    }

    /* pass 1: validate ids and find the id range */
    int32_t max_id = -1;
    size_t count = 0;
    for (const cJSON *c = vocab->child; c; c = c->next) {
        if (++count >= TOK_MAX_VOCAB) { st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab has more than %d entries", path, TOK_MAX_VOCAB); goto cleanup; }
        if (!c->string || !c->string[0]) { st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: empty piece", path); goto cleanup; }
        int32_t id;
        const char *why = tok_json_id(c, &id);
        if (why) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab['%s']: id %s", path,
                             tok_show(c->string, strlen(c->string), sa, sizeof sa), why);
            goto cleanup;
        }
        if (id > max_id) max_id = id;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) { st = cce_err_set(err, CCE_EFORMAT, "%s: added_tokens is not an array", path); goto cleanup; }
    int k = 0;
    for (const cJSON *c = cJSON_IsArray(added) ? added->child : NULL; c; c = c->next, k++) {
        if (++count >= TOK_MAX_VOCAB) { st = cce_err_set(err, CCE_EFORMAT, "%s: added_tokens: too many entries", path); goto cleanup; }
        int32_t id;
        const char *why = cJSON_IsObject(c) ? tok_json_id(cJSON_GetObjectItemCaseSensitive(c, "id"), &id) : "is missing (entry is not an object)";
        if (why) { st = cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: id %s", path, k, why); goto cleanup; }
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        if (!cJSON_IsString(content) || !content->valuestring[0]) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: content is missing, empty or not a string", path, k);
            goto cleanup;
        }
        if (tok_json_bool(c, "special", 0) < 0) { st = cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: special is not a boolean", path, k); goto cleanup; }
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) { st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab is empty", path); goto cleanup; }
    if ((size_t)max_id + 1 > 2 * count + 1024) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: ids too sparse (max id %d for %zu entries)", path, max_id, count);
        goto cleanup;
    }
    h.nid = max_id + 1;
    h.js = cce_alloc_zero((size_t)h.nid, sizeof *h.js);
    h.jl = cce_alloc_zero((size_t)h.nid, sizeof *h.jl);
    h.added = cce_alloc_zero((size_t)h.nid, 1);
    h.invocab = cce_alloc_zero((size_t)h.nid, 1);
    if (!h.js || !h.jl || !h.added || !h.invocab) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %d ids", path, h.nid); goto cleanup; }
    size_t maxlen = 0;
    for (const cJSON *c = vocab->child; c; c = c->next) {
        int32_t id = (int32_t)c->valuedouble;
        size_t n = strlen(c->string);
        if (h.js[id]) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: id %d used by both '%s' and '%s'", path, id,
                             tok_show(h.js[id], h.jl[id], sa, sizeof sa), tok_show(c->string, n, sb, sizeof sb));
            goto cleanup;
        }
        if (n > TOK_MAX_PIECE) { st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: piece of id %d is %zu bytes (max %d)", path, id, n, TOK_MAX_PIECE); goto cleanup; }
        h.js[id] = c->string;
        h.jl[id] = n;
        h.invocab[id] = 1;
        if (n > maxlen) maxlen = n;
    }
    k = 0;
    for (const cJSON *c = cJSON_IsArray(added) ? added->child : NULL; c; c = c->next, k++) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(c, "id")->valuedouble;
        const char *s = cJSON_GetObjectItemCaseSensitive(c, "content")->valuestring;
        size_t n = strlen(s);
        if (n > TOK_MAX_PIECE) { st = cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: content is %zu bytes (max %d)", path, k, n, TOK_MAX_PIECE); goto cleanup; }
        if (h.js[id] && (h.jl[id] != n || memcmp(h.js[id], s, n))) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: id %d is '%s' elsewhere but content is '%s'", path, k, id,
                             tok_show(h.js[id], h.jl[id], sa, sizeof sa), tok_show(s, n, sb, sizeof sb));
            goto cleanup;
        }
        h.js[id] = (char *)s;
        h.jl[id] = n;
        h.added[id] = tok_json_bool(c, "special", 0) ? 1 : 2;
        if (n > maxlen) maxlen = n;
    }
    /* vocab strings -> id (only vocab entries; duplicates are a format error) */
    {
        int da, db;
        char **vjs = cce_alloc((size_t)h.nid, sizeof *vjs);
        if (!vjs) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path); goto cleanup; }
        for (int i = 0; i < h.nid; i++) vjs[i] = h.invocab[i] ? h.js[i] : NULL;
        st = tok_index_build(&h.ix, h.nid, vjs, h.jl, NULL, &da, &db);
        cce_free(vjs);
        if (st) { cce_err_set(err, st, "%s: out of memory", path); goto cleanup; }
        if (da >= 0) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: piece '%s' appears twice (ids %d and %d)", path,
                             tok_show(h.js[da], h.jl[da], sa, sizeof sa), da, db);
            goto cleanup;
        }
    }

    /* shape: byte-level or SentencePiece-style */
    tok_hf_shape shape = {0};
    if ((st = tok_hf_normalizer(path, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer", &shape, err)) ||
        (st = tok_hf_pretok(path, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pre_tokenizer", &shape, err)))
        goto cleanup;
    cce_tok_kind kind;
    if (shape.bytelevel) {
        if (shape.split_pattern && shape.bl_regex) {
            st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: pre_tokenizer: a Split regex and ByteLevel use_regex together are not supported", path);
            goto cleanup;
        }
        if (shape.metaspace || shape.prepend || shape.replace || byte_fallback) {
            st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: ByteLevel mixed with Metaspace/Prepend/byte_fallback is not supported", path);
            goto cleanup;
        }
        kind = CCE_TOK_BYTELEVEL;
    } else if (shape.metaspace || shape.replace) {
        kind = CCE_TOK_SP;
        if (shape.split_pattern || shape.digits) {
            st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: pre_tokenizer: Split/Digits with a SentencePiece-style model is not supported", path);
            goto cleanup;
        }
    } else {
        st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: pre_tokenizer/normalizer: neither ByteLevel nor SentencePiece-style (Metaspace or Replace ' ' -> U+2581)", path);
        goto cleanup;
    }

    /* pieces */
    size_t arena = 0;
    for (int i = 0; i < h.nid; i++) arena += h.jl[i];     /* <= file length */
    if ((st = tok_new(h.nid, arena, &t))) { cce_err_set(err, st, "%s: out of memory for %d tokens", path, h.nid); goto cleanup; }
    t->kind = kind;
    uint16_t b2u[256];
    int16_t u2b[324];
    tok_byte_tables(b2u, u2b);
    const cJSON *unk_tok = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    int32_t unk = -1;
    if (cJSON_IsString(unk_tok)) {
        unk = tok_hf_lookup(&h, unk_tok->valuestring);
        if (unk < 0) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.unk_token '%s' is not in the vocab", path,
                             tok_show(unk_tok->valuestring, strlen(unk_tok->valuestring), sa, sizeof sa));
            goto cleanup;
        }
    } else if (unk_tok && !cJSON_IsNull(unk_tok)) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: model.unk_token is not a string", path);
        goto cleanup;
    }
    size_t used = 0;
    for (int i = 0; i < h.nid; i++) {
        const char *s = h.js[i];
        size_t n = h.jl[i];
        if (!s) { tok_set_piece(t, &used, i, "", 0, 0.0f, TT_UNUSED); t->piece[i] = NULL; continue; }
        if (h.added[i] == 1 || i == unk) {
            tok_set_piece(t, &used, i, s, n, 0.0f, i == unk ? TT_UNKNOWN : TT_CONTROL);
            continue;
        }
        uint8_t ty = h.added[i] ? TT_USER : TT_NORMAL;
        char *p = t->arena + used;
        size_t o = 0;
        if (kind == CCE_TOK_SP) {
            int b = byte_fallback ? tok_byte_piece(s, n) : -1;
            if (b >= 0) {
                char c = (char)b;
                tok_set_piece(t, &used, i, &c, 1, 0.0f, TT_BYTE);
                if (t->byte_id[b] < 0) t->byte_id[b] = i;
                continue;
            }
            for (size_t q = 0; q < n; q++) {
                if (q + 2 < n && !memcmp(s + q, METASPACE, 3)) { p[o++] = ' '; q += 2; }
                else p[o++] = s[q];
            }
        } else {
            for (size_t q = 0; q < n;) {
                int32_t cp;
                size_t cl = tok_utf8_next((const uint8_t *)s, n, q, &cp);
                if (cp >= 0 && cp < 324 && u2b[cp] >= 0) {
                    p[o++] = (char)u2b[cp];
                } else if (ty == TT_USER) {
                    memcpy(p + o, s + q, cl);
                    o += cl;
                } else {
                    st = cce_err_set(err, CCE_EFORMAT, "%s: model.vocab['%s'] (id %d): character outside the byte-level alphabet",
                                     path, tok_show(s, n, sa, sizeof sa), i);
                    goto cleanup;
                }
                q += cl;
            }
            if (o == 1 && ty == TT_NORMAL && t->byte_id[(uint8_t)p[0]] < 0) t->byte_id[(uint8_t)p[0]] = i;
        }
        tok_set_piece(t, &used, i, p, o, 0.0f, ty);
    }

    /* merges, in rank order */
    size_t nm = cJSON_IsArray(merges) ? (size_t)cJSON_GetArraySize(merges) : 0;
    t->merges = cce_alloc(nm ? nm : 1, sizeof *t->merges);
    cat = cce_alloc(2 * maxlen + 2, 1);
    if (!t->merges || !cat) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %zu merges", path, nm); goto cleanup; }
    k = 0;
    for (const cJSON *c = nm ? merges->child : NULL; c; c = c->next, k++) {
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if (cJSON_IsString(c)) {
            const char *s = c->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' ')) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: model.merges[%d]: '%s' is not \"left right\"", path, k,
                                 tok_show(s, strlen(s), sa, sizeof sa));
                goto cleanup;
            }
            a = s; al = (size_t)(sp - s); b = sp + 1; bl = strlen(b);
        } else if (cJSON_IsArray(c) && cJSON_GetArraySize(c) == 2 && cJSON_IsString(c->child) &&
                   cJSON_IsString(c->child->next)) {
            a = c->child->valuestring; al = strlen(a);
            b = c->child->next->valuestring; bl = strlen(b);
        } else {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", path, k);
            goto cleanup;
        }
        int32_t l = al <= maxlen ? tok_index_find(&h.ix, h.js, h.jl, a, al) : -1;
        int32_t r = bl <= maxlen ? tok_index_find(&h.ix, h.js, h.jl, b, bl) : -1;
        if (l < 0 || r < 0) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.merges[%d]: '%s' is not in the vocab", path, k,
                             l < 0 ? tok_show(a, al, sa, sizeof sa) : tok_show(b, bl, sb, sizeof sb));
            goto cleanup;
        }
        memcpy(cat, a, al);
        memcpy(cat + al, b, bl);
        int32_t res = tok_index_find(&h.ix, h.js, h.jl, cat, al + bl);
        if (res < 0) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.merges[%d]: '%s' + '%s' is not in the vocab", path, k,
                             tok_show(a, al, sa, sizeof sa), tok_show(b, bl, sb, sizeof sb));
            goto cleanup;
        }
        t->merges[k] = (tok_merge){ l, r, res, k };
        if (t->score[res] == 0.0f && t->type[res] != TT_UNUSED) t->score[res] = -(float)k - 1.0f;
    }
    t->n_merges = (size_t)k;

    /* special ids */
    t->unk = unk;
    const char *bos_name = tok_hf_bos_name(cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (bos_name) t->bos = tok_hf_lookup(&h, bos_name);
    else if (kind == CCE_TOK_SP && (!post || cJSON_IsNull(post))) t->bos = tok_hf_lookup(&h, "<s>");
    const char *eos_names[] = { "</s>", "<|endoftext|>", "<|end_of_text|>" };
    for (int q = kind == CCE_TOK_SP ? 0 : 1; q < 3 && t->eos < 0; q++) t->eos = tok_hf_lookup(&h, eos_names[q]);
    t->pretok = (uint8_t)(shape.split_pattern ? shape.split_pattern - 1 : shape.bl_regex ? TOK_PT_GPT2 : TOK_PT_NONE);
    t->digits = (uint8_t)shape.digits;
    t->prefix_space = kind == CCE_TOK_SP ? shape.prepend || shape.meta_prepend : shape.add_prefix_space;
    t->prefix_unless_space = kind == CCE_TOK_SP && shape.meta_prepend && !shape.prepend;
    t->split_words = kind == CCE_TOK_SP && shape.metaspace && shape.split;
    t->map_metaspace = kind == CCE_TOK_SP;
    t->fuse_unk = fuse_unk;
    t->byte_fallback = kind == CCE_TOK_SP && byte_fallback;
    t->ignore_merges = ignore_merges;
    t->prefix_first_only = t->prefix_unless_space && shape.first_only;
    int n_added = 0;
    for (int i = 0; i < h.nid; i++) n_added += h.added[i] && t->plen[i] > 0;
    if (n_added) {
        t->added = cce_alloc((size_t)n_added, sizeof *t->added);
        if (!t->added) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path); goto cleanup; }
        for (int i = 0; i < h.nid; i++) {
            if (!h.added[i] || t->plen[i] == 0) continue;
            t->added[t->n_added++] = i;
            uint8_t c = (uint8_t)t->piece[i][0];
            t->added_first[c >> 3] |= (uint8_t)(1u << (c & 7));
        }
    }
    if ((st = tok_finish(t, false))) { cce_err_set(err, st, "%s: out of memory building indexes", path); goto cleanup; }
    *out = t;
    t = NULL;
cleanup:
    cce_tokenizer_free(t);
    cce_free(h.js);
    cce_free(h.jl);
    cce_free(h.added);
    cce_free(h.invocab);
    cce_free(h.ix.slot);
    cce_free(cat);
    return st;
}

/* Load a Hugging Face tokenizer.json (BPE; byte-level or SentencePiece-style). The file is
 * read whole (at most 512 MB), parsed strictly (no trailing data), and every id, piece, merge
 * and added token is validated before the tokenizer is built. Unsupported pipelines (WordPiece,
 * Split regexes, other normalizers) give CCE_EUNSUPPORTED naming the field. */
cce_status cce_tokenizer_load_hf(const char *path, cce_tokenizer **out, cce_err *err) {
    *out = NULL;
    char *text = NULL;
    size_t tlen = 0;
    cJSON *root = NULL;
    cce_status st = cce_read_file(path, TOK_MAX_JSON, &text, &tlen, err);
    if (st) return st;
    const char *nul = memchr(text, 0, tlen);
    if (nul) { st = cce_err_set(err, CCE_EFORMAT, "%s: NUL byte at offset %zu", path, (size_t)(nul - text)); goto cleanup; }
    for (size_t i = 0; i < tlen;) {   /* JSON text is UTF-8 (as Hugging Face's reader insists) */
        int32_t cp;
        size_t n = tok_utf8_next((const uint8_t *)text, tlen, i, &cp);
        if (cp < 0) { st = cce_err_set(err, CCE_EFORMAT, "%s: invalid UTF-8 at byte %zu", path, i); goto cleanup; }
        i += n;
    }
    const char *end = NULL;
    root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        size_t at = end && end >= text && end <= text + tlen ? (size_t)(end - text) : tlen;
        st = cce_err_set(err, CCE_EFORMAT, "%s: not valid JSON (or trailing data) at byte %zu of %zu", path, at, tlen);
        goto cleanup;
    }
    st = tok_hf_build(root, path, out, err);
cleanup:
    cJSON_Delete(root);
    cce_free(text);
    return st;
}

