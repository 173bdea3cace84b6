/*
 * tokenizer_hf.c — Hugging Face tokenizer.json reader.
 *
 * The file is parsed whole with cJSON; every id, piece, merge and added token is validated, and
 * the pipeline is matched against the forms we reproduce exactly. Anything else is refused with
 * one line naming the file and the component. What loads (kind, see tokenizer_int.h):
 *  - plain BPE: no normalizer (or NFC) and no pre-tokenizer: BPE over the raw text, with or
 *    without byte fallback (SP kind, pieces as in the file);
 *  - SentencePiece style (SP kind): normalizer Sequence[Prepend(U+2581), Replace(' ', U+2581)]
 *    with no pre-tokenizer (Llama-2), or a Metaspace pre-tokenizer (prepend_scheme always /
 *    first / never, split or not) with no normalizer;
 *  - byte-level (BYTELEVEL kind): ByteLevel (GPT-2 regex, or use_regex false after a Split of one
 *    of the three regexes of tokenizer_pretok.c: GPT-2, Llama-3, Qwen2), optionally after Digits;
 *    normalizer none or NFC.
 * Model options: byte_fallback, fuse_unk, ignore_merges, unk_token; dropout, continuing_subword_
 * prefix and end_of_word_suffix are refused. Decoders are checked (ByteLevel, Metaspace, Replace
 * U+2581 -> ' ', ByteFallback, Fuse, Strip, Sequence); they do not change encoding.
 * Added tokens keep Hugging Face's semantics for encoding: normalized false ones are cut out of
 * the raw text first, normalized true ones out of the normalised text by their normalised
 * content (tokenizer.c), leftmost-longest, with lstrip / rstrip / single_word. `special` only
 * matters for decoding (a special token decodes to nothing).
 * An NFC normalizer (Qwen2) is taken as the identity: exact for text already in NFC, as nearly
 * all text is; decomposed input may encode differently from Hugging Face.
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


/* What the normalizer / pre_tokenizer / decoder trees say, as far as we reproduce them. */
typedef struct {
    bool prepend, replace, nfc;                   /* normalizers */
    bool bytelevel, bl_regex, bl_prefix;          /* ByteLevel pre-tokenizer */
    bool metaspace, meta_split;                   /* Metaspace pre-tokenizer */
    int meta_scheme;                              /* TOK_META_* */
    int split_pattern;                            /* Split: 0 none, else TOK_PT_* + 1 */
    int digits;                                   /* Digits: 0 none, 1 individual, 2 runs */
    int n_pretok;                                 /* pre-tokenizers seen, in order */
} tok_hf_shape;

/* Read the normalizer into sh; error for anything we cannot reproduce. */
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
    bool *flag = NULL;
    if (!strcmp(ty, "Prepend") && tok_json_is(n, "prepend", METASPACE)) flag = &sh->prepend;
    else if (!strcmp(ty, "NFC")) flag = &sh->nfc;
    else if (!strcmp(ty, "Replace") && tok_json_is(n, "content", METASPACE)) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        if (cJSON_IsObject(pat) && tok_json_is(pat, "String", " ")) flag = &sh->replace;
    }
    if (!flag)
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: normalizer '%s'%s is not supported (only Prepend(U+2581), Replace(' ', U+2581), NFC)",
                           path, field, ty, !strcmp(ty, "Prepend") || !strcmp(ty, "Replace") ? " with these strings" : "");
    if (*flag) return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: a second '%s' normalizer is not supported", path, field, ty);
    *flag = true;
    return CCE_OK;
}

/* Read the pre_tokenizer into sh. Order matters: Digits, then Split, then ByteLevel last;
 * Metaspace alone. */
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
    if (sh->bytelevel || sh->metaspace)
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: pre_tokenizer '%s' after %s is not supported", path, field, ty,
                           sh->bytelevel ? "ByteLevel" : "Metaspace");
    sh->n_pretok++;
    if (!strcmp(ty, "ByteLevel")) {
        int aps = tok_json_bool(p, "add_prefix_space", 1), rx = tok_json_bool(p, "use_regex", 1);
        if (aps < 0 || rx < 0) return cce_err_set(err, CCE_EFORMAT, "%s: %s: add_prefix_space/use_regex is not a boolean", path, field);
        if (rx && sh->split_pattern)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: ByteLevel use_regex true after a Split regex is not supported", path, field);
        sh->bytelevel = true;
        sh->bl_regex = rx;
        sh->bl_prefix = aps;
        return CCE_OK;
    }
    if (!strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        if (sh->split_pattern)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: a second Split pre-tokenizer is not supported", path, field);
        if (!cJSON_IsString(rx))
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Split without a Regex pattern is not supported", path, field);
        if ((beh && !tok_json_is(p, "behavior", "Isolated")) || tok_json_bool(p, "invert", 0) != 0)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Split other than behavior Isolated, invert false is not supported", path, field);
        for (int k = 0; k < 3; k++)
            if (!strcmp(rx->valuestring, tok_split_regex[k])) { sh->split_pattern = k + 1; return CCE_OK; }
        char sa[64];
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Split regex '%s' is not supported (only the GPT-2, Llama-3 and Qwen2 patterns)",
                           path, field, tok_show(rx->valuestring, strlen(rx->valuestring), sa, sizeof sa));
    }
    if (!strcmp(ty, "Digits")) {
        int ind = tok_json_bool(p, "individual_digits", 0);
        if (ind < 0) return cce_err_set(err, CCE_EFORMAT, "%s: %s.individual_digits is not a boolean", path, field);
        if (sh->digits || sh->split_pattern)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Digits after Digits or Split is not supported", path, field);
        sh->digits = ind ? 1 : 2;
        return CCE_OK;
    }
    if (!strcmp(ty, "Metaspace")) {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(p, "replacement");
        if (rep && !tok_json_is(p, "replacement", METASPACE))
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Metaspace replacement other than U+2581 is not supported", path, field);
        if (sh->n_pretok > 1)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: Metaspace after another pre-tokenizer is not supported", path, field);
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme");
        int aps = tok_json_bool(p, "add_prefix_space", 1), split = tok_json_bool(p, "split", 1);
        if (aps < 0 || split < 0) return cce_err_set(err, CCE_EFORMAT, "%s: %s: add_prefix_space/split is not a boolean", path, field);
        sh->meta_scheme = aps ? TOK_META_ALWAYS : TOK_META_NEVER;
        if (scheme && !cJSON_IsNull(scheme)) {
            const char *s = cJSON_IsString(scheme) ? scheme->valuestring : "";
            if (!strcmp(s, "always")) sh->meta_scheme = TOK_META_ALWAYS;
            else if (!strcmp(s, "first")) sh->meta_scheme = TOK_META_FIRST;
            else if (!strcmp(s, "never")) sh->meta_scheme = TOK_META_NEVER;
            else return cce_err_set(err, CCE_EFORMAT, "%s: %s.prepend_scheme is not always, first or never", path, field);
        }
        sh->metaspace = true;
        sh->meta_split = split;
        return CCE_OK;
    }
    return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: pre_tokenizer '%s' is not supported (only ByteLevel, Split, Digits, Metaspace)",
                       path, field, ty);
}

/* Check the decoder: decoding follows from the kind, so only decoders that agree with one of
 * our kinds are accepted. */
static cce_status tok_hf_decoder(const char *path, const cJSON *d, const char *field, cce_err *err) {
    if (!d || cJSON_IsNull(d)) return CCE_OK;
    if (!cJSON_IsObject(d)) return cce_err_set(err, CCE_EFORMAT, "%s: %s is not an object", path, field);
    const char *ty = tok_json_type(d);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(list)) return cce_err_set(err, CCE_EFORMAT, "%s: %s.decoders is not an array", path, field);
        int i = 0;
        for (const cJSON *c = list->child; c; c = c->next, i++) {
            char f[96];
            snprintf(f, sizeof f, "%s.decoders[%d]", field, i);
            cce_status st = tok_hf_decoder(path, c, f, err);
            if (st) return st;
        }
        return CCE_OK;
    }
    if (!strcmp(ty, "ByteLevel") || !strcmp(ty, "Metaspace") || !strcmp(ty, "ByteFallback") || !strcmp(ty, "Fuse"))
        return CCE_OK;
    if (!strcmp(ty, "Strip") && tok_json_is(d, "content", " ")) return CCE_OK;
    if (!strcmp(ty, "Replace") && tok_json_is(d, "content", " ")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(d, "pattern");
        if (cJSON_IsObject(pat) && tok_json_is(pat, "String", METASPACE)) return CCE_OK;
    }
    return cce_err_set(err, CCE_EUNSUPPORTED, "%s: %s: decoder '%s'%s is not supported", path, field, ty,
                       !strcmp(ty, "Strip") || !strcmp(ty, "Replace") ? " with these strings" : "");
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

/* The ids of a tokenizer.json: model.vocab and added_tokens, validated. */
typedef struct {
    int nid;              /* ids 0..nid-1 */
    char **js;            /* (nid) JSON string of each id, NULL for holes (points into cJSON) */
    size_t *jl;           /* (nid) */
    uint8_t *added;       /* (nid) 0 vocab only, 1 added special, 2 added non-special */
    uint8_t *invocab;     /* (nid) */
    tok_index ix;         /* vocab strings -> id */
    size_t maxlen;        /* longest string */
    int n_added;          /* entries of added_tokens */
} tok_hf_ids;

static void tok_hf_ids_free(tok_hf_ids *h) {
    cce_free(h->js);
    cce_free(h->jl);
    cce_free(h->added);
    cce_free(h->invocab);
    cce_free(h->ix.slot);
}

static int32_t tok_hf_lookup(const tok_hf_ids *h, const char *s) {
    size_t n = strlen(s);
    int32_t id = tok_index_find(&h->ix, h->js, h->jl, s, n);
    if (id >= 0) return id;
    for (int i = 0; i < h->nid; i++)
        if (h->added[i] && h->js[i] && h->jl[i] == n && !memcmp(h->js[i], s, n)) return i;
    return -1;
}

/* The boolean options of an added token, HF defaults when absent (normalized: !special). */
static const char *tok_hf_added_flags(const cJSON *c, bool *special, bool *normalized, bool *lstrip,
                                      bool *rstrip, bool *single_word) {
    int sp = tok_json_bool(c, "special", 0);
    int no = tok_json_bool(c, "normalized", sp == 1 ? 0 : 1);
    int ls = tok_json_bool(c, "lstrip", 0), rs = tok_json_bool(c, "rstrip", 0), sw = tok_json_bool(c, "single_word", 0);
    if (sp < 0) return "special";
    if (no < 0) return "normalized";
    if (ls < 0) return "lstrip";
    if (rs < 0) return "rstrip";
    if (sw < 0) return "single_word";
    *special = sp; *normalized = no; *lstrip = ls; *rstrip = rs; *single_word = sw;
    return NULL;
}

/* Validate model.vocab and added_tokens and collect every id's string into h. */
static cce_status tok_hf_ids_read(const char *path, const cJSON *vocab, const cJSON *added,
                                  tok_hf_ids *h, cce_err *err) {
    char sa[64], sb[64];
    /* pass 1: validate ids and find the id range */
    int32_t max_id = -1;
    size_t count = 0;
    for (const cJSON *c = vocab->child; c; c = c->next) {
        if (++count >= TOK_MAX_VOCAB) return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab has more than %d entries", path, TOK_MAX_VOCAB);
        if (!c->string || !c->string[0]) return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: empty piece", path);
        int32_t id;
        const char *why = tok_json_id(c, &id);
        if (why)
            return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab['%s']: id %s", path,
                               tok_show(c->string, strlen(c->string), sa, sizeof sa), why);
        if (id > max_id) max_id = id;
    }
    int k = 0;
    for (const cJSON *c = cJSON_IsArray(added) ? added->child : NULL; c; c = c->next, k++) {
        if (++count >= TOK_MAX_VOCAB) return cce_err_set(err, CCE_EFORMAT, "%s: added_tokens: too many entries", path);
        int32_t id;
        const char *why = cJSON_IsObject(c) ? tok_json_id(cJSON_GetObjectItemCaseSensitive(c, "id"), &id) : "is missing (entry is not an object)";
        if (why) return cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: id %s", path, k, why);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        if (!cJSON_IsString(content) || !content->valuestring[0])
            return cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: content is missing, empty or not a string", path, k);
        bool b[5];
        const char *bad = tok_hf_added_flags(c, &b[0], &b[1], &b[2], &b[3], &b[4]);
        if (bad) return cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: %s is not a boolean", path, k, bad);
        if (id > max_id) max_id = id;
    }
    h->n_added = k;
    if (max_id < 0) return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab is empty", path);
    if ((size_t)max_id + 1 > 2 * count + 1024)
        return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: ids too sparse (max id %d for %zu entries)", path, max_id, count);
    h->nid = max_id + 1;
    h->js = cce_alloc_zero((size_t)h->nid, sizeof *h->js);
    h->jl = cce_alloc_zero((size_t)h->nid, sizeof *h->jl);
    h->added = cce_alloc_zero((size_t)h->nid, 1);
    h->invocab = cce_alloc_zero((size_t)h->nid, 1);
    if (!h->js || !h->jl || !h->added || !h->invocab) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %d ids", path, h->nid);
    /* pass 2: strings by id */
    for (const cJSON *c = vocab->child; c; c = c->next) {
        int32_t id = (int32_t)c->valuedouble;
        size_t n = strlen(c->string);
        if (h->js[id])
            return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: id %d used by both '%s' and '%s'", path, id,
                               tok_show(h->js[id], h->jl[id], sa, sizeof sa), tok_show(c->string, n, sb, sizeof sb));
        if (n > TOK_MAX_PIECE) return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: piece of id %d is %zu bytes (max %d)", path, id, n, TOK_MAX_PIECE);
        h->js[id] = c->string;
        h->jl[id] = n;
        h->invocab[id] = 1;
        if (n > h->maxlen) h->maxlen = n;
    }
    k = 0;
    for (const cJSON *c = cJSON_IsArray(added) ? added->child : NULL; c; c = c->next, k++) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(c, "id")->valuedouble;
        const char *s = cJSON_GetObjectItemCaseSensitive(c, "content")->valuestring;
        size_t n = strlen(s);
        if (n > TOK_MAX_PIECE) return cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: content is %zu bytes (max %d)", path, k, n, TOK_MAX_PIECE);
        if (h->js[id] && (h->jl[id] != n || memcmp(h->js[id], s, n)))
            return cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: id %d is '%s' elsewhere but content is '%s'", path, k, id,
                               tok_show(h->js[id], h->jl[id], sa, sizeof sa), tok_show(s, n, sb, sizeof sb));
        if (h->added[id]) return cce_err_set(err, CCE_EFORMAT, "%s: added_tokens[%d]: id %d is listed twice", path, k, id);
        h->js[id] = (char *)s;
        h->jl[id] = n;
        h->added[id] = tok_json_bool(c, "special", 0) ? 1 : 2;
        if (n > h->maxlen) h->maxlen = n;
    }
    /* vocab strings -> id (only vocab entries; duplicates are a format error) */
    int da, db;
    char **vjs = cce_alloc((size_t)h->nid, sizeof *vjs);
    if (!vjs) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < h->nid; i++) vjs[i] = h->invocab[i] ? h->js[i] : NULL;
    cce_status st = tok_index_build(&h->ix, h->nid, vjs, h->jl, NULL, &da, &db);
    if (st) { cce_free(vjs); return cce_err_set(err, st, "%s: out of memory", path); }
    if (da >= 0) {
        cce_free(vjs);
        return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab: piece '%s' appears twice (ids %d and %d)", path,
                           tok_show(h->js[da], h->jl[da], sa, sizeof sa), da, db);
    }
    /* two added tokens with one content would make matching ambiguous */
    for (int i = 0; i < h->nid; i++) vjs[i] = h->added[i] ? h->js[i] : NULL;
    tok_index aix = {0};
    st = tok_index_build(&aix, h->nid, vjs, h->jl, NULL, &da, &db);
    cce_free(aix.slot);
    cce_free(vjs);
    if (st) return cce_err_set(err, st, "%s: out of memory", path);
    if (da >= 0)
        return cce_err_set(err, CCE_EFORMAT, "%s: added_tokens: ids %d and %d have the same content '%s'", path, da, db,
                           tok_show(h->js[da], h->jl[da], sa, sizeof sa));
    return CCE_OK;
}

/* The kind of tokenizer the pipeline describes (see the top of the file), or a refusal. */
static cce_status tok_hf_kind(const char *path, const tok_hf_shape *sh, bool byte_fallback,
                              cce_tok_kind *kind, bool *plain, cce_err *err) {
    *plain = false;
    if (sh->bytelevel) {
        if (sh->prepend || sh->replace)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: normalizer Prepend/Replace with a ByteLevel pre_tokenizer is not supported", path);
        if (byte_fallback)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: model.byte_fallback with a ByteLevel pre_tokenizer is not supported", path);
        *kind = CCE_TOK_BYTELEVEL;
        return CCE_OK;
    }
    if (sh->split_pattern || sh->digits)
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: pre_tokenizer %s without ByteLevel is not supported", path,
                           sh->split_pattern ? "Split" : "Digits");
    *kind = CCE_TOK_SP;
    if (sh->metaspace) {
        if (sh->prepend || sh->replace)
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: normalizer Prepend/Replace with a Metaspace pre_tokenizer is not supported", path);
        return CCE_OK;
    }
    if (sh->replace) return CCE_OK;
    if (sh->prepend)
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: normalizer Prepend(U+2581) without Replace(' ', U+2581) is not supported", path);
    *plain = true;
    return CCE_OK;
}

/* Fill t's pieces from h: SP kind with U+2581 as ' ' (not plain), byte-level through
 * bytes_to_unicode; special added tokens are control tokens, unk_token the unknown one. */
static cce_status tok_hf_pieces(const char *path, const tok_hf_ids *h, cce_tokenizer *t, int32_t unk,
                                bool byte_fallback, cce_err *err) {
    uint16_t b2u[256];
    int16_t u2b[324];
    tok_byte_tables(b2u, u2b);
    char sa[64];
    size_t used = 0;
    for (int i = 0; i < h->nid; i++) {
        const char *s = h->js[i];
        size_t n = h->jl[i];
        if (!s) { tok_set_piece(t, &used, i, "", 0, 0.0f, TT_UNUSED); t->piece[i] = NULL; continue; }
        if (h->added[i] == 1 || i == unk) {
            tok_set_piece(t, &used, i, s, n, 0.0f, i == unk ? TT_UNKNOWN : TT_CONTROL);
            continue;
        }
        uint8_t ty = h->added[i] ? TT_USER : TT_NORMAL;
        char *p = t->arena + used;
        size_t o = 0;
        if (t->kind == CCE_TOK_SP) {
            int b = byte_fallback ? tok_byte_piece(s, n) : -1;
            if (b >= 0 && ty == TT_NORMAL) {
                char c = (char)b;
                tok_set_piece(t, &used, i, &c, 1, 0.0f, TT_BYTE);
                if (t->byte_id[b] < 0) t->byte_id[b] = i;
                continue;
            }
            for (size_t q = 0; q < n; q++) {
                if (!t->plain && q + 2 < n && !memcmp(s + q, METASPACE, 3)) { p[o++] = ' '; q += 2; }
                else p[o++] = s[q];
            }
        } else {
            /* byte-level: every character must be in the alphabet; an added token that is not
             * in the model vocabulary keeps its text when one is not (as HF's decoder does) */
            for (size_t q = 0; q < n;) {
                int32_t cp;
                size_t cl = tok_utf8_next((const uint8_t *)s, n, q, &cp);
                if (cp < 0 || cp >= 324 || u2b[cp] < 0) {
                    if (ty == TT_USER && !h->invocab[i]) { memcpy(p, s, n); o = n; break; }
                    return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab['%s'] (id %d): character outside the byte-level alphabet",
                                       path, tok_show(s, n, sa, sizeof sa), i);
                }
                p[o++] = (char)u2b[cp];
                q += cl;
            }
            if (o == 1 && ty == TT_NORMAL && t->byte_id[(uint8_t)p[0]] < 0) t->byte_id[(uint8_t)p[0]] = i;
        }
        tok_set_piece(t, &used, i, p, o, 0.0f, ty);
    }
    return CCE_OK;
}

/* model.merges, in rank order, as (left, right) -> result ids. */
static cce_status tok_hf_merges(const char *path, const cJSON *merges, const tok_hf_ids *h, cce_tokenizer *t, cce_err *err) {
    char sa[64], sb[64];
    size_t nm = cJSON_IsArray(merges) ? (size_t)cJSON_GetArraySize(merges) : 0;
    t->merges = cce_alloc(nm ? nm : 1, sizeof *t->merges);
    char *cat = cce_alloc(2 * h->maxlen + 2, 1);
    cce_status st = CCE_OK;
    if (!t->merges || !cat) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %zu merges", path, nm); goto fail_free_cat; }
    int k = 0;
    for (const cJSON *c = nm ? merges->child : NULL; c; c = c->next, k++) {
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if (cJSON_IsString(c)) {
            const char *s = c->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' ')) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: model.merges[%d]: '%s' is not \"left right\"", path, k,
                                 tok_show(s, strlen(s), sa, sizeof sa));
                goto fail_free_cat;
            }
            a = s; al = (size_t)(sp - s); b = sp + 1; bl = strlen(b);
        } else if (cJSON_IsArray(c) && cJSON_GetArraySize(c) == 2 && cJSON_IsString(c->child) &&
                   cJSON_IsString(c->child->next)) {
            a = c->child->valuestring; al = strlen(a);
            b = c->child->next->valuestring; bl = strlen(b);
        } else {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", path, k);
            goto fail_free_cat;
        }
        int32_t l = al <= h->maxlen ? tok_index_find(&h->ix, h->js, h->jl, a, al) : -1;
        int32_t r = bl <= h->maxlen ? tok_index_find(&h->ix, h->js, h->jl, b, bl) : -1;
        if (l < 0 || r < 0) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.merges[%d]: '%s' is not in the vocab", path, k,
                             l < 0 ? tok_show(a, al, sa, sizeof sa) : tok_show(b, bl, sb, sizeof sb));
            goto fail_free_cat;
        }
        memcpy(cat, a, al);
        memcpy(cat + al, b, bl);
        int32_t res = tok_index_find(&h->ix, h->js, h->jl, cat, al + bl);
        if (res < 0) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.merges[%d]: '%s' + '%s' is not in the vocab", path, k,
                             tok_show(a, al, sa, sizeof sa), tok_show(b, bl, sb, sizeof sb));
            goto fail_free_cat;
        }
        t->merges[k] = (tok_merge){ l, r, res, k };
        if (t->score[res] == 0.0f && t->type[res] != TT_UNUSED) t->score[res] = -(float)k - 1.0f;
    }
    t->n_merges = (size_t)k;
fail_free_cat:
    cce_free(cat);
    return st;
}

/* t->added from added_tokens (file order), with each token's matching pattern: its content, or
 * for normalized tokens the content as the normalizer leaves it (Prepend adds a space; after
 * Replace U+2581 and ' ' are both ' ', as in the normalised text the encoder matches). */
static cce_status tok_hf_added(const char *path, const cJSON *added, const tok_hf_ids *h, cce_tokenizer *t, cce_err *err) {
    int n_added = h->n_added;
    if (!n_added) return CCE_OK;
    size_t alen = 0;
    for (const cJSON *c = added->child; c; c = c->next)
        alen += 2 * strlen(cJSON_GetObjectItemCaseSensitive(c, "content")->valuestring) + 3;   /* <= 2 x file size */
    t->added = cce_alloc_zero((size_t)n_added, sizeof *t->added);
    t->added_arena = cce_alloc(alen, 1);
    if (!t->added || !t->added_arena) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %d added tokens", path, n_added);
    size_t used = 0;
    for (const cJSON *c = added->child; c; c = c->next) {
        tok_added *a = &t->added[t->n_added++];
        bool normalized;
        tok_hf_added_flags(c, &a->special, &normalized, &a->lstrip, &a->rstrip, &a->single_word);
        a->id = (int32_t)cJSON_GetObjectItemCaseSensitive(c, "id")->valuedouble;
        a->in_vocab = h->invocab[a->id];
        const char *s = cJSON_GetObjectItemCaseSensitive(c, "content")->valuestring;
        size_t n = strlen(s);
        a->content = used;
        a->clen = n;
        memcpy(t->added_arena + used, s, n + 1);
        used += n + 1;
        a->pass = normalized ? 1 : 0;
        a->pat = used;
        char *p = t->added_arena + used;
        size_t o = 0;
        if (normalized && t->norm_prepend) p[o++] = ' ';
        for (size_t q = 0; q < n; q++) {
            if (normalized && t->norm_replace && q + 2 < n && !memcmp(s + q, METASPACE, 3)) { p[o++] = ' '; q += 2; }
            else p[o++] = s[q];
        }
        p[o] = 0;
        a->plen = o;
        used += o + 1;
        uint8_t f = (uint8_t)p[0];
        t->added_first[a->pass][f >> 3] |= (uint8_t)(1u << (f & 7));
    }
    return CCE_OK;
}

/* The model object's fields: only BPE, without dropout or subword affixes. */
typedef struct {
    const cJSON *vocab, *merges;
    int byte_fallback, fuse_unk, ignore_merges;
} tok_hf_model;

static cce_status tok_hf_model_read(const char *path, const cJSON *model, tok_hf_model *o, cce_err *err) {
    char sa[64];
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (mtype && !(cJSON_IsString(mtype) && !strcmp(mtype->valuestring, "BPE")))
        return cce_err_set(err, cJSON_IsString(mtype) ? CCE_EUNSUPPORTED : CCE_EFORMAT,
                         "%s: model.type %s%s%s is not supported (only BPE)", path,
                         cJSON_IsString(mtype) ? "'" : "", cJSON_IsString(mtype) ? tok_show(mtype->valuestring, strlen(mtype->valuestring), sa, sizeof sa) : "(not a string)",
                         cJSON_IsString(mtype) ? "'" : "");
    const cJSON *vocab = o->vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = o->merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) return cce_err_set(err, CCE_EFORMAT, "%s: model.vocab is missing or not an object", path);
    if (merges && !cJSON_IsNull(merges) && !cJSON_IsArray(merges))
        return cce_err_set(err, CCE_EFORMAT, "%s: model.merges is not an array", path);
    if (!mtype && !cJSON_IsArray(merges)) return cce_err_set(err, CCE_EFORMAT, "%s: model has no type and no merges", path);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: model.dropout is not supported", path);
    const char *affix[2] = { "continuing_subword_prefix", "end_of_word_suffix" };
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, affix[k]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !v->valuestring[0]))
            return cce_err_set(err, CCE_EUNSUPPORTED, "%s: model.%s is not supported", path, affix[k]);
    }
    o->byte_fallback = tok_json_bool(model, "byte_fallback", 0);
    o->fuse_unk = tok_json_bool(model, "fuse_unk", 0);
    o->ignore_merges = tok_json_bool(model, "ignore_merges", 0);
    if (o->byte_fallback < 0 || o->fuse_unk < 0 || o->ignore_merges < 0)
        return cce_err_set(err, CCE_EFORMAT, "%s: model.byte_fallback/fuse_unk/ignore_merges is not a boolean", path);
    return CCE_OK;
}

/* Build a tokenizer from a parsed tokenizer.json object; every error names `path`. */
cce_status tok_hf_build(const cJSON *root, const char *path, cce_tokenizer **out, cce_err *err) {
    *out = NULL;
    cce_tokenizer *t = NULL;
    tok_hf_ids h = {0};
    char sa[64];
    cce_status st = CCE_OK;
    if (!cJSON_IsObject(root)) { st = cce_err_set(err, CCE_EFORMAT, "%s: top level is not a JSON object", path); goto fail_free_ids; }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) { st = cce_err_set(err, CCE_EFORMAT, "%s: 'model' is missing or not an object", path); goto fail_free_ids; }
    tok_hf_model mo = {0};
    if ((st = tok_hf_model_read(path, model, &mo, err))) goto fail_free_ids;
    const cJSON *vocab = mo.vocab, *merges = mo.merges;
    int byte_fallback = mo.byte_fallback, fuse_unk = mo.fuse_unk, ignore_merges = mo.ignore_merges;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) { st = cce_err_set(err, CCE_EFORMAT, "%s: added_tokens is not an array", path); goto fail_free_ids; }
    if ((st = tok_hf_ids_read(path, vocab, added, &h, err))) goto fail_free_ids;

    /* the pipeline */
    tok_hf_shape shape = {0};
    cce_tok_kind kind;
    bool plain;
    if ((st = tok_hf_normalizer(path, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer", &shape, err)) ||
        (st = tok_hf_pretok(path, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pre_tokenizer", &shape, err)) ||
        (st = tok_hf_decoder(path, cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoder", err)) ||
        (st = tok_hf_kind(path, &shape, byte_fallback, &kind, &plain, err)))
        goto fail_free_ids;

    size_t arena = 0;
    for (int i = 0; i < h.nid; i++) arena += h.jl[i];     /* <= file length */
    if ((st = tok_new(h.nid, arena, &t))) { cce_err_set(err, st, "%s: out of memory for %d tokens", path, h.nid); goto fail_free_ids; }
    t->kind = kind;
    t->plain = plain;
    t->map_metaspace = kind == CCE_TOK_SP && !plain;
    t->norm_prepend = shape.prepend;
    t->norm_replace = shape.replace;
    t->meta_scheme = (uint8_t)(shape.metaspace ? shape.meta_scheme : TOK_META_NONE);
    t->split_words = shape.metaspace && shape.meta_split;
    t->bl_prefix = kind == CCE_TOK_BYTELEVEL && shape.bl_prefix;
    t->pretok = (uint8_t)(shape.split_pattern ? shape.split_pattern - 1 : shape.bl_regex ? TOK_PT_GPT2 : TOK_PT_NONE);
    t->digits = (uint8_t)shape.digits;
    t->fuse_unk = fuse_unk;
    t->byte_fallback = kind == CCE_TOK_SP && byte_fallback;
    t->ignore_merges = ignore_merges;
    t->drop_unknown = true;
    t->nfc = shape.nfc;
    t->json_added = true;
    const cJSON *unk_tok = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    int32_t unk = -1;
    if (cJSON_IsString(unk_tok)) {
        unk = tok_hf_lookup(&h, unk_tok->valuestring);
        if (unk < 0) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: model.unk_token '%s' is not in the vocab", path,
                             tok_show(unk_tok->valuestring, strlen(unk_tok->valuestring), sa, sizeof sa));
            goto fail_free_tok;
        }
    } else if (unk_tok && !cJSON_IsNull(unk_tok)) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: model.unk_token is not a string", path);
        goto fail_free_tok;
    }
    t->unk = unk;
    if ((st = tok_hf_pieces(path, &h, t, unk, byte_fallback, err)) ||
        (st = tok_hf_merges(path, merges, &h, t, err)) ||
        (st = tok_hf_added(path, added, &h, t, err)))
        goto fail_free_tok;

    /* special ids: BOS from the post-processor template (the Llama-2 family without one: <s>) */
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    const char *bos_name = tok_hf_bos_name(post);
    if (bos_name) t->bos = tok_hf_lookup(&h, bos_name);
    else if (kind == CCE_TOK_SP && !plain && (!post || cJSON_IsNull(post))) t->bos = tok_hf_lookup(&h, "<s>");
    const char *eos_names[] = { "</s>", "<|endoftext|>", "<|end_of_text|>" };
    for (int q = kind == CCE_TOK_SP ? 0 : 1; q < 3 && t->eos < 0; q++) t->eos = tok_hf_lookup(&h, eos_names[q]);
    if ((st = tok_finish(t, false))) { cce_err_set(err, st, "%s: out of memory building indexes", path); goto fail_free_tok; }
    *out = t;
    t = NULL;
fail_free_tok:
    cce_tokenizer_free(t);
fail_free_ids:
    tok_hf_ids_free(&h);
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

