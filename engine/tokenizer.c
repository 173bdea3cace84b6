/*
 * tokenizer.c — the tokenizer representation and its encoder; llama2.c tokenizer.bin and GGUF
 * SentencePiece arrays. See tokenizer.h for the interface and tokenizer_int.h for the file map
 * (byte-level BPE, pre-tokenisers, tokenizer.json reader and writer live beside this file).
 *
 * One representation for every source. Pieces are raw bytes in one arena (spaces as real spaces,
 * byte tokens as their single byte), each with a score and a type (the GGUF token_type values).
 * All merging goes through one table of pair merges (left id, right id) -> (rank, result id):
 *  - for a score vocabulary (llama2.c, GGUF) the table is derived once at load: every way of
 *    splitting a mergeable piece P into two mergeable pieces L+R gives the merge (L, R) -> P with
 *    rank = dense rank of score(P) (higher score = lower rank, equal scores share a rank). Merging
 *    the lowest rank first with ties going to the leftmost pair is then exactly llama2.c's loop
 *    "merge the adjacent pair whose concatenation is in the vocab with the best score, first one
 *    on ties", because a pair's concatenation is in the vocab iff some split of it is listed;
 *  - for tokenizer.json the merges are the file's list, rank = position (first wins on repeats).
 * Merging is the usual priority-queue BPE over a doubly linked list of symbols, O(n log n):
 * candidates (rank, left position, left id, right id) sit in a binary heap; a popped candidate is
 * stale when its left symbol's id changed or its right neighbour no longer has the recorded id
 * (ids only ever get longer pieces, so an id can never come back). Tie-break by left position is
 * "leftmost in the current sequence" since the list keeps the original order.
 *
 * Initial symbols. SP kind: an optional dummy-prefix space, then llama2.c's codepoint grouping
 * (a lead byte plus up to three continuation bytes); a group found in the vocab is one symbol,
 * otherwise each byte becomes its byte-fallback token (llama2.c: id = byte + 3) or <unk>.
 * Byte-level kind: see tokenizer_bpe.c (one symbol per byte, BPE per pre-token).
 *
 * Only "mergeable" pieces (normal and user-defined) take part in lookups and merges: control,
 * unknown, unused and byte tokens never come out of merging, as in SentencePiece.
 * Added tokens of a tokenizer.json ("<s>", "<|endoftext|>", ...) are cut out of the raw text
 * first (leftmost-longest, as Hugging Face does) and the stretches between them are encoded
 * separately, each with its own prefix; llama2.c and GGUF vocabularies encode such strings as
 * ordinary text, as llama2.c does.
 * Numbers are read little-endian (the host order on every supported machine).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tokenizer.h"
#include "tokenizer_int.h"
#include "util.h"

/* ---- small helpers ---- */

static uint64_t tok_hash(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ull; }
    h ^= h >> 29; h *= 0xbf58476d1ce4e5b9ull; h ^= h >> 32;
    return h;
}

static uint64_t tok_pair_hash(int32_t a, int32_t b) {
    uint64_t h = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ull; h ^= h >> 33;
    return h;
}

static size_t tok_cap_for(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2) cap <<= 1;
    return cap;
}

/* Printable, bounded rendering of a piece for error messages. */
const char *tok_show(const char *s, size_t n, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f && c != '\'' && c != '\\') buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        if (i + 1 < n && o + 8 >= cap) { memcpy(buf + o, "...", 3); o += 3; break; }
    }
    buf[o] = 0;
    return buf;
}

/* "<0xXX>" (hex, either case) -> byte value, else -1. */
int tok_byte_piece(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decode one UTF-8 codepoint at s[i]; returns its length (1 for an invalid byte, *cp = -1). */
size_t tok_utf8_next(const uint8_t *s, size_t len, size_t i, int32_t *cp) {
    uint8_t c = s[i];
    size_t n; int32_t v, min;
    if (c < 0x80) { *cp = c; return 1; }
    else if ((c & 0xE0) == 0xC0) { n = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = -1; return 1; }
    if (len - i < n) { *cp = -1; return 1; }
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) { *cp = -1; return 1; }
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = -1; return 1; }
    *cp = v;
    return n;
}

size_t tok_utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* ---- string index ---- */

/* Build an index over ids 0..n-1 with ptr[i] != NULL (and, if type, mergeable types only).
 * On a repeated string the first id is kept and dup_a, dup_b (if non-NULL) receive the first
 * pair of ids that collided (-1 if none). */
cce_status tok_index_build(tok_index *ix, int n, char *const *ptr, const size_t *len,
                                  const uint8_t *type, int *dup_a, int *dup_b) {
    if (dup_a) *dup_a = -1;
    if (dup_b) *dup_b = -1;
    ix->cap = tok_cap_for((size_t)n);
    ix->slot = cce_alloc(ix->cap, sizeof *ix->slot);
    if (!ix->slot) return CCE_ENOMEM;
    memset(ix->slot, 0xff, ix->cap * sizeof *ix->slot);
    size_t mask = ix->cap - 1;
    for (int i = 0; i < n; i++) {
        if (!ptr[i] || (type && !tok_mergeable(type[i]))) continue;
        size_t h = (size_t)tok_hash(ptr[i], len[i]) & mask;
        for (;;) {
            int32_t s = ix->slot[h];
            if (s < 0) { ix->slot[h] = i; break; }
            if (len[s] == len[i] && memcmp(ptr[s], ptr[i], len[i]) == 0) {
                if (dup_a && *dup_a < 0) { *dup_a = s; *dup_b = i; }
                break;
            }
            h = (h + 1) & mask;
        }
    }
    return CCE_OK;
}

int32_t tok_index_find(const tok_index *ix, char *const *ptr, const size_t *len,
                              const char *key, size_t klen) {
    size_t mask = ix->cap - 1;
    size_t h = (size_t)tok_hash(key, klen) & mask;
    for (;;) {
        int32_t s = ix->slot[h];
        if (s < 0) return -1;
        if (len[s] == klen && memcmp(ptr[s], key, klen) == 0) return s;
        h = (h + 1) & mask;
    }
}

int32_t tok_find(const cce_tokenizer *t, const char *key, size_t klen) {
    return tok_index_find(&t->pidx, t->piece, t->plen, key, klen);
}

/* ---- construction ---- */

/* Allocate a tokenizer with n pieces and an arena of arena_len bytes (pieces are filled by the
 * caller through tok_set_piece, in id order). */
cce_status tok_new(int n, size_t arena_len, cce_tokenizer **out) {
    *out = NULL;
    cce_tokenizer *t = cce_alloc_zero(1, sizeof *t);
    if (!t) return CCE_ENOMEM;
    t->n = n;
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    size_t alen;
    if (!cce_size_add(arena_len, (size_t)n + 1, &alen)) { cce_free(t); return CCE_ENOMEM; }
    t->arena = cce_alloc(alen, 1);
    t->piece = cce_alloc_zero((size_t)n, sizeof *t->piece);
    t->plen = cce_alloc_zero((size_t)n, sizeof *t->plen);
    t->score = cce_alloc_zero((size_t)n, sizeof *t->score);
    t->type = cce_alloc_zero((size_t)n, sizeof *t->type);
    if (!t->arena || !t->piece || !t->plen || !t->score || !t->type) {
        cce_tokenizer_free(t);
        return CCE_ENOMEM;
    }
    *out = t;
    return CCE_OK;
}

/* Append piece bytes for id at arena offset *used (caller guarantees room). */
void tok_set_piece(cce_tokenizer *t, size_t *used, int id, const char *s, size_t n,
                          float score, uint8_t type) {
    char *p = t->arena + *used;
    if (n) memmove(p, s, n);
    p[n] = 0;
    t->piece[id] = p;
    t->plen[id] = n;
    t->score[id] = score;
    t->type[id] = type;
    *used += n + 1;
}

typedef struct { float score; int32_t k; tok_merge m; } tok_merge_sort;

static int tok_merge_sort_cmp(const void *pa, const void *pb) {
    const tok_merge_sort *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->m.result != b->m.result) return a->m.result < b->m.result ? -1 : 1;
    return (a->k > b->k) - (a->k < b->k);
}

/* Derive the pair-merge table of a score vocabulary (see the design note at the top). */
static cce_status tok_derive_merges(cce_tokenizer *t) {
    size_t count = 0;
    for (int pass = 0; pass < 2; pass++) {
        tok_merge_sort *ms = NULL;
        if (pass == 1) {
            ms = cce_alloc(count ? count : 1, sizeof *ms);
            if (!ms) return CCE_ENOMEM;
        }
        size_t k = 0;
        for (int p = 0; p < t->n; p++) {
            if (!tok_mergeable(t->type[p]) || t->plen[p] < 2) continue;
            const char *s = t->piece[p];
            size_t len = t->plen[p];
            if (tok_find(t, s, len) != p) continue;          /* a repeated piece: not canonical */
            for (size_t cut = 1; cut < len; cut++) {
                int32_t l = tok_find(t, s, cut);
                if (l < 0) continue;
                int32_t r = tok_find(t, s + cut, len - cut);
                if (r < 0) continue;
                if (pass == 1)
                    ms[k] = (tok_merge_sort){ t->score[p], (int32_t)cut, { l, r, p, 0 } };
                k++;
            }
        }
        if (pass == 0) { count = k; continue; }
        qsort(ms, count, sizeof *ms, tok_merge_sort_cmp);
        t->merges = cce_alloc(count ? count : 1, sizeof *t->merges);
        if (!t->merges) { cce_free(ms); return CCE_ENOMEM; }
        int32_t rank = -1;
        for (size_t i = 0; i < count; i++) {
            if (i == 0 || ms[i].score != ms[i - 1].score) rank++;
            t->merges[i] = ms[i].m;
            t->merges[i].rank = rank;
        }
        t->n_merges = count;
        cce_free(ms);
    }
    return CCE_OK;
}

static int32_t tok_merge_find(const cce_tokenizer *t, int32_t a, int32_t b) {
    size_t mask = t->mcap - 1;
    size_t h = (size_t)tok_pair_hash(a, b) & mask;
    for (;;) {
        int32_t s = t->mslot[h];
        if (s < 0) return -1;
        if (t->merges[s].left == a && t->merges[s].right == b) return s;
        h = (h + 1) & mask;
    }
}

static cce_status tok_merge_index(cce_tokenizer *t) {
    t->mcap = tok_cap_for(t->n_merges);
    t->mslot = cce_alloc(t->mcap, sizeof *t->mslot);
    t->in_merge = cce_alloc_zero((size_t)t->n, 1);
    if (!t->mslot || !t->in_merge) return CCE_ENOMEM;
    for (size_t i = 0; i < t->n_merges; i++) t->in_merge[t->merges[i].left] = t->in_merge[t->merges[i].right] = 1;
    memset(t->mslot, 0xff, t->mcap * sizeof *t->mslot);
    size_t mask = t->mcap - 1;
    for (size_t i = 0; i < t->n_merges; i++) {
        size_t h = (size_t)tok_pair_hash(t->merges[i].left, t->merges[i].right) & mask;
        for (;;) {
            int32_t s = t->mslot[h];
            if (s < 0) { t->mslot[h] = (int32_t)i; break; }
            if (t->merges[s].left == t->merges[i].left && t->merges[s].right == t->merges[i].right)
                break;                                        /* repeated merge: first rank wins */
            h = (h + 1) & mask;
        }
    }
    return CCE_OK;
}

/* Build the piece index and, for score vocabularies, the derived merges; then the merge index. */
cce_status tok_finish(cce_tokenizer *t, bool derive) {
    cce_status st = tok_index_build(&t->pidx, t->n, t->piece, t->plen, t->type, NULL, NULL);
    if (st) return st;
    t->from_scores = derive;
    if (derive && (st = tok_derive_merges(t))) return st;
    return tok_merge_index(t);
}

/* Free t and everything it owns; NULL is a no-op. */
void cce_tokenizer_free(cce_tokenizer *t) {
    if (!t) return;
    cce_free(t->arena);
    cce_free(t->piece);
    cce_free(t->plen);
    cce_free(t->score);
    cce_free(t->type);
    cce_free(t->pidx.slot);
    cce_free(t->merges);
    cce_free(t->mslot);
    cce_free(t->in_merge);
    cce_free(t->added);
    cce_free(t->added_arena);
    cce_free(t);
}

/* ---- llama2.c tokenizer.bin ---- */

/* Load a llama2.c tokenizer.bin of exactly vocab_size records (the model says how many). Every
 * record is checked against the file length before anything is allocated; ids 0/1/2 are <unk>,
 * BOS, EOS. On error *out is NULL and err names the file, the token and the offset. */
cce_status cce_tokenizer_load_llama2c(const char *path, int vocab_size, cce_tokenizer **out, cce_err *err) {
    *out = NULL;
    if (vocab_size < 3 || vocab_size >= TOK_MAX_VOCAB)
        return cce_err_set(err, CCE_EINVAL, "%s: vocab_size %d out of range (3..%d)",
                           path, vocab_size, TOK_MAX_VOCAB - 1);
    cce_mapped m = {0};
    cce_tokenizer *t = NULL;
    cce_status st = cce_map_file(path, &m, err);
    if (st) return st;
    const uint8_t *d = m.data;
    size_t len = m.len;
    if (len < 4) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: file is %zu bytes, too short for max_token_length", path, len);
        goto unmap;
    }
    int32_t max_tl;
    memcpy(&max_tl, d, 4);
    if (max_tl <= 0 || max_tl > TOK_MAX_TOKEN_LENGTH) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: max_token_length %d out of range (1..%d)",
                         path, max_tl, TOK_MAX_TOKEN_LENGTH);
        goto unmap;
    }
    /* pass 1: validate every record against the file length and size the arena */
    size_t pos = 4, arena = 0;
    for (int i = 0; i < vocab_size; i++) {
        if (len - pos < 8) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: token %d: record header at offset %zu is past end of file (%zu bytes; vocab_size %d)",
                             path, i, pos, len, vocab_size);
            goto unmap;
        }
        float score; int32_t plen;
        memcpy(&score, d + pos, 4);
        memcpy(&plen, d + pos + 4, 4);
        if (!isfinite(score)) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: token %d: score at offset %zu is not finite", path, i, pos);
            goto unmap;
        }
        if (plen < 0 || plen > max_tl) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: token %d: length %d at offset %zu out of range (0..max_token_length %d)",
                             path, i, plen, pos + 4, max_tl);
            goto unmap;
        }
        if ((size_t)plen > len - pos - 8) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: token %d: %d bytes at offset %zu are past end of file (%zu bytes)",
                             path, i, plen, pos + 8, len);
            goto unmap;
        }
        pos += 8 + (size_t)plen;
        arena += (size_t)plen;
    }
    if (pos != len) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: %zu bytes left after %d tokens (vocab_size does not match the file)",
                         path, len - pos, vocab_size);
        goto unmap;
    }
    if ((st = tok_new(vocab_size, arena, &t))) {
        cce_err_set(err, st, "%s: out of memory for %d tokens", path, vocab_size);
        goto unmap;
    }
    /* pass 2: copy. Ids 0/1/2 are <unk>, BOS, EOS (llama2.c); "\n<s>\n" is stored as "<s>". */
    pos = 4;
    size_t used = 0;
    for (int i = 0; i < vocab_size; i++) {
        float score; int32_t plen;
        memcpy(&score, d + pos, 4);
        memcpy(&plen, d + pos + 4, 4);
        const char *s = (const char *)d + pos + 8;
        size_t n = (size_t)plen;
        pos += 8 + n;
        uint8_t ty = TT_NORMAL;
        int b = tok_byte_piece(s, n);
        if (i == 0) ty = TT_UNKNOWN;
        else if (i <= 2) {
            ty = TT_CONTROL;
            if (n >= 2 && s[0] == '\n' && s[n - 1] == '\n') { s++; n -= 2; }
        } else if (b >= 0) {
            ty = TT_BYTE;
            char c = (char)b;
            tok_set_piece(t, &used, i, &c, 1, score, ty);
            continue;
        }
        tok_set_piece(t, &used, i, s, n, score, ty);
    }
    if (vocab_size >= 259)
        for (int b = 0; b < 256; b++) t->byte_id[b] = b + 3;      /* llama2.c: byte fallback = byte + 3 */
    else
        for (int i = 0; i < vocab_size; i++)
            if (t->type[i] == TT_BYTE && t->byte_id[(uint8_t)t->piece[i][0]] < 0)
                t->byte_id[(uint8_t)t->piece[i][0]] = i;
    t->kind = CCE_TOK_SP;
    t->unk = 0; t->bos = 1; t->eos = 2;
    t->norm_prepend = true;
    t->byte_fallback = true;
    if ((st = tok_finish(t, true))) {
        cce_err_set(err, st, "%s: out of memory building the merge table", path);
        goto fail;
    }
    *out = t;
    cce_unmap(&m);
    return CCE_OK;
fail:
    cce_tokenizer_free(t);
unmap:
    cce_unmap(&m);
    return st;
}

/* ---- GGUF-style arrays ---- */

/* Build an SP tokenizer from GGUF-style arrays (copied; U+2581 -> ' ', <0xXX> -> byte). types
 * NULL: ids bos/eos are control, unk unknown, <0xXX> pieces bytes. Errors name `what`. */
cce_status cce_tokenizer_build_sp(int n, const char *const *pieces, const size_t *lens,
                                  const float *scores, const int32_t *types,
                                  int bos_id, int eos_id, int unk_id, const char *what,
                                  cce_tokenizer **out, cce_err *err) {
    *out = NULL;
    if (!what) what = "tokenizer";
    if (n <= 0 || n >= TOK_MAX_VOCAB)
        return cce_err_set(err, CCE_EFORMAT, "%s: token count %d out of range (1..%d)", what, n, TOK_MAX_VOCAB - 1);
    if (!pieces || !lens || !scores)
        return cce_err_set(err, CCE_EINVAL, "%s: tokens or scores missing", what);
    if (bos_id < -1 || bos_id >= n || eos_id < -1 || eos_id >= n || unk_id < -1 || unk_id >= n)
        return cce_err_set(err, CCE_EFORMAT, "%s: special ids bos %d / eos %d / unk %d out of range for %d tokens",
                           what, bos_id, eos_id, unk_id, n);
    size_t arena = 0;
    char sh[64];
    for (int i = 0; i < n; i++) {
        if (lens[i] > TOK_MAX_PIECE || (lens[i] && !pieces[i]))
            return cce_err_set(err, CCE_EFORMAT, "%s: token %d: length %zu out of range (0..%d)", what, i, lens[i], TOK_MAX_PIECE);
        if (!isfinite(scores[i]))
            return cce_err_set(err, CCE_EFORMAT, "%s: token %d: score is not finite", what, i);
        if (types && (types[i] < 0 || types[i] > 6))
            return cce_err_set(err, CCE_EFORMAT, "%s: token %d: token_type %d out of range (0..6)", what, i, (int)types[i]);
        if (types && types[i] == TT_BYTE && tok_byte_piece(pieces[i], lens[i]) < 0)
            return cce_err_set(err, CCE_EFORMAT, "%s: token %d: token_type 6 (byte) but piece '%s' is not <0xXX>",
                               what, i, tok_show(pieces[i], lens[i], sh, sizeof sh));
        arena += lens[i];                   /* <= n * 2^16 < 2^40: no overflow */
    }
    cce_tokenizer *t = NULL;
    cce_status st = tok_new(n, arena, &t);
    if (st) return cce_err_set(err, st, "%s: out of memory for %d tokens", what, n);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        const char *s = pieces[i];
        size_t len = lens[i];
        uint8_t ty;
        if (types) ty = types[i] == 0 ? TT_NORMAL : (uint8_t)types[i];   /* 0: llama.cpp "undefined" */
        else if (i == unk_id) ty = TT_UNKNOWN;
        else if (i == bos_id || i == eos_id) ty = TT_CONTROL;
        else ty = tok_byte_piece(s, len) >= 0 ? TT_BYTE : TT_NORMAL;
        if (ty == TT_BYTE) {
            int b = tok_byte_piece(s, len);
            if (b >= 0) {
                char c = (char)b;
                tok_set_piece(t, &used, i, &c, 1, scores[i], ty);
                if (t->byte_id[b] < 0) t->byte_id[b] = i;
                continue;
            }
        }
        /* U+2581 (E2 96 81) -> ' ' in place while copying */
        char *p = t->arena + used;
        size_t o = 0;
        for (size_t k = 0; k < len; k++) {
            if (k + 2 < len && (uint8_t)s[k] == 0xE2 && (uint8_t)s[k + 1] == 0x96 && (uint8_t)s[k + 2] == 0x81) {
                p[o++] = ' ';
                k += 2;
            } else {
                p[o++] = s[k];
            }
        }
        tok_set_piece(t, &used, i, p, o, scores[i], ty);
    }
    t->kind = CCE_TOK_SP;
    t->bos = bos_id; t->eos = eos_id; t->unk = unk_id;
    t->norm_prepend = true;
    t->byte_fallback = true;
    t->map_metaspace = true;
    if ((st = tok_finish(t, true))) {
        cce_tokenizer_free(t);
        return cce_err_set(err, st, "%s: out of memory building the merge table", what);
    }
    *out = t;
    return CCE_OK;
}

/* ---- accessors ---- */

size_t cce_tokenizer_utf8_check(const char *s, size_t len) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t n = tok_utf8_next(u, len, i, &cp);
        if (cp < 0) return i;
        i += n;
    }
    return len;
}

/* Accessors: read-only, safe from any thread. */
cce_tok_kind cce_tokenizer_kind(const cce_tokenizer *t) { return t->kind; }

const char *cce_tokenizer_form(const cce_tokenizer *t) {
    if (t->kind == CCE_TOK_BYTELEVEL) {
        static const char *const bl[4] = { "byte-level BPE, GPT-2 regex", "byte-level BPE, Llama-3 regex",
                                           "byte-level BPE, Qwen2 regex", "byte-level BPE, no regex" };
        if (t->digits && t->pretok == TOK_PT_GPT2) return "byte-level BPE, digits split, GPT-2 regex";
        return bl[t->pretok & 3];
    }
    if (t->plain) return t->byte_fallback ? "BPE over the raw text, byte fallback" : "BPE over the raw text";
    if (t->meta_scheme != TOK_META_NONE) return "SentencePiece-style BPE, Metaspace pre-tokenizer";
    if (t->from_scores) return "SentencePiece-style BPE, merges by score";
    return "SentencePiece-style BPE, Llama-2 normalizer";
}
int cce_tokenizer_vocab_size(const cce_tokenizer *t) { return t->n; }
int cce_tokenizer_bos(const cce_tokenizer *t) { return t->bos; }
int cce_tokenizer_eos(const cce_tokenizer *t) { return t->eos; }

const char *cce_tokenizer_piece(const cce_tokenizer *t, int id, size_t *len) {
    if (!t || id < 0 || id >= t->n) { if (len) *len = 0; return NULL; }
    if (len) *len = t->plen[id];
    return t->piece[id] ? t->piece[id] : "";
}

float cce_tokenizer_score(const cce_tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n) return 0.0f;
    return t->score[id];
}

size_t cce_tokenizer_decode(const cce_tokenizer *t, int prev, int id, char *buf, size_t cap) {
    if (!buf || cap == 0) return 0;
    buf[0] = 0;
    if (!t || id < 0 || id >= t->n) return 0;
    uint8_t ty = t->type[id];
    if (ty == TT_CONTROL || ty == TT_UNUSED) return 0;
    const char *p = t->piece[id];
    size_t n = t->plen[id];
    bool prefixed = t->norm_prepend || t->meta_scheme == TOK_META_ALWAYS || t->meta_scheme == TOK_META_FIRST;
    if (t->kind == CCE_TOK_SP && prefixed && prev >= 0 && prev == t->bos && n > 0 && p[0] == ' ') { p++; n--; }
    if (n > cap - 1) n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    return n;
}

/* ---- encoding ---- */

static inline bool tok_cand_less(const tok_cand *a, const tok_cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void tok_heap_push(tok_work *w, tok_cand c) {
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!tok_cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static tok_cand tok_heap_pop(tok_work *w) {
    tok_cand top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0, n = w->hn;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t c = (l + 1 < n && tok_cand_less(&w->heap[l + 1], &w->heap[l])) ? l + 1 : l;
        if (!tok_cand_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void tok_try_pair(const cce_tokenizer *t, tok_work *w, int32_t l, int32_t r) {
    int32_t a = w->sym[l], b = w->sym[r];
    int32_t m = tok_merge_find(t, a, b);
    if (m < 0) return;
    tok_heap_push(w, (tok_cand){ t->merges[m].rank, l, a, b, t->merges[m].result });
}

/* BPE over symbols [s0, s1): merge the lowest-rank pair, leftmost on ties, until none is left.
 * Merged-away symbols get id -1. Returns -1 if the heap cannot grow. */
static int tok_bpe(const cce_tokenizer *t, tok_work *w, int32_t s0, int32_t s1) {
    if (s1 - s0 < 2 || t->n_merges == 0) return 0;
    size_t need = 3 * (size_t)(s1 - s0);   /* s1-s0-1 first pairs, then at most 2 per merge */
    if (need > w->hcap) {
        tok_cand *nh = cce_realloc(w->heap, need, sizeof *nh);
        if (!nh) return -1;
        w->heap = nh;
        w->hcap = need;
    }
    for (int32_t i = s0; i < s1; i++) {
        w->next[i] = i + 1 < s1 ? i + 1 : -1;
        w->prev[i] = i > s0 ? i - 1 : -1;
    }
    w->hn = 0;
    for (int32_t i = s0; i + 1 < s1; i++) tok_try_pair(t, w, i, i + 1);
    while (w->hn) {
        tok_cand c = tok_heap_pop(w);
        if (w->sym[c.pos] != c.lid) continue;
        int32_t r = w->next[c.pos];
        if (r < 0 || w->sym[r] != c.rid) continue;
        w->sym[c.pos] = c.res;
        w->sym[r] = -1;
        int32_t nr = w->next[r];
        w->next[c.pos] = nr;
        if (nr >= 0) w->prev[nr] = c.pos;
        if (w->prev[c.pos] >= 0) tok_try_pair(t, w, w->prev[c.pos], c.pos);
        if (nr >= 0) tok_try_pair(t, w, c.pos, nr);
    }
    return 0;
}

/* Append symbol id (fusing repeated <unk> when asked). */
static inline void tok_push_sym(const cce_tokenizer *t, tok_work *w, size_t *m, size_t seg_start, int32_t id) {
    if (t->fuse_unk && id == t->unk && *m > seg_start && w->sym[*m - 1] == id) return;
    w->sym[(*m)++] = id;
}

/* Fallback for bytes s[0..n) that are not a piece: byte tokens, else <unk>. 0 or -1 (no unk). */
int tok_push_bytes(const cce_tokenizer *t, tok_work *w, size_t *m, size_t seg_start,
                          const uint8_t *s, size_t n) {
    bool all = true;
    for (size_t k = 0; k < n; k++) all = all && t->byte_id[s[k]] >= 0;
    if (all) {
        for (size_t k = 0; k < n; k++) tok_push_sym(t, w, m, seg_start, t->byte_id[s[k]]);
        return 0;
    }
    if (t->unk < 0) return t->drop_unknown ? 0 : -1;
    tok_push_sym(t, w, m, seg_start, t->unk);
    return 0;
}

/* SP initial symbols of s[0..len) (already normalised: any prefix space is in s, and U+2581 is
 * a space by now). Words: the whole text, or with split_words one word per space (each space
 * starts a word, as Metaspace split does). With ignore_merges a word that is itself a piece is
 * one symbol; otherwise each llama2.c codepoint group (a lead byte and up to three continuation
 * bytes) found in the vocab is one symbol, else its bytes fall back. pre: s[0] is a prefix space,
 * a group of its own (as llama2.c looks up its dummy prefix alone, before the text). */
static int tok_sp_symbols(const cce_tokenizer *t, tok_work *w, const uint8_t *s, size_t len,
                          bool pre, size_t *m, size_t *bad) {
    *m = 0;
    w->nseg = 0;
    size_t i = 0;
    while (i < len) {
        const uint8_t *sp = t->split_words ? memchr(s + i + 1, ' ', len - i - 1) : NULL;
        size_t wend = sp ? (size_t)(sp - s) : len;   /* the word [i, wend) */
        size_t seg0 = *m;
        w->seg[w->nseg++] = (int32_t)seg0;
        if (t->ignore_merges) {
            int32_t whole = tok_find(t, (const char *)s + i, wend - i);
            if (whole >= 0) { w->sym[(*m)++] = whole; i = wend; continue; }
        }
        while (i < wend) {
            size_t j = i + 1;
            while (j < wend && (s[j] & 0xC0) == 0x80 && j - i < 4 && !(pre && i == 0)) j++;
            int32_t id = tok_find(t, (const char *)s + i, j - i);
            if (id >= 0) tok_push_sym(t, w, m, seg0, id);
            else if (tok_push_bytes(t, w, m, seg0, s + i, j - i)) { *bad = i; return -1; }
            i = j;
        }
    }
    return 0;
}

/* ---- added tokens ---- */

/* Is the character ending at s[0..at) / starting at s[at..len) a regex \w? (false at the edges
 * and for invalid bytes) */
static bool tok_word_before(const uint8_t *s, size_t at) {
    if (at == 0) return false;
    size_t b = at - 1;
    while (b > 0 && at - b < 4 && (s[b] & 0xC0) == 0x80) b--;
    int32_t cp;
    if (tok_utf8_next(s, at, b, &cp) != at - b) cp = -1;
    return tok_ucd_flags(cp) & TOK_UCD_W;
}

static bool tok_word_after(const uint8_t *s, size_t len, size_t at) {
    if (at >= len) return false;
    int32_t cp;
    tok_utf8_next(s, len, at, &cp);
    return tok_ucd_flags(cp) & TOK_UCD_W;
}

/* Whitespace for lstrip/rstrip (regex \s: White_Space). After a Replace(' ' -> U+2581)
 * normaliser a space is U+2581, which is not whitespace (space_ws false). */
static size_t tok_ws_len(const uint8_t *s, size_t len, size_t i, bool space_ws) {
    int32_t cp;
    size_t n = tok_utf8_next(s, len, i, &cp);
    if (cp == ' ' && !space_ws) return 0;
    return tok_ucd_flags(cp) & TOK_UCD_S ? n : 0;
}

/* Hugging Face AddedVocabulary::find_matches, one match at a time: the leftmost-longest added
 * token of pass `pass` in s[*scan..len) (the search resumes after every match found, even one
 * that single_word then discards), with single_word checked on the characters around the match
 * inside s, lstrip extending the match over the whitespace before it (not past done, the end of
 * the previous match) and rstrip over the whitespace after it. Returns the id, or -1 with
 * *ms = *me = len when there is none. */
static int32_t tok_next_added(const cce_tokenizer *t, int pass, const uint8_t *s, size_t len,
                              size_t *scan, size_t done, bool space_ws, size_t *ms, size_t *me) {
    for (;;) {
        const tok_added *best = NULL;
        size_t at = len;
        for (size_t i = *scan; i < len && !best; i++) {
            if (!(t->added_first[pass][s[i] >> 3] & (1u << (s[i] & 7)))) continue;
            for (int k = 0; k < t->n_added; k++) {
                const tok_added *a = &t->added[k];
                if (a->pass != pass || a->plen > len - i || (best && a->plen <= best->plen)) continue;
                if (!memcmp(t->added_arena + a->pat, s + i, a->plen)) best = a;
            }
            if (best) at = i;
        }
        if (!best) { *ms = *me = len; return -1; }
        size_t a0 = at, a1 = at + best->plen;
        *scan = a1;
        if (best->single_word && (tok_word_before(s, a0) || tok_word_after(s, len, a1))) continue;
        if (best->lstrip) {
            size_t b = a0;
            while (b > done) {   /* step back one character at a time over whitespace */
                size_t c = b - 1;
                while (c > done && b - c < 4 && (s[c] & 0xC0) == 0x80) c--;
                if (tok_ws_len(s, b, c, space_ws) != b - c) break;
                b = c;
            }
            a0 = b;
        }
        if (best->rstrip)
            for (size_t n; a1 < len && (n = tok_ws_len(s, len, a1, space_ws)) > 0;) a1 += n;
        *ms = a0 < done ? done : a0;   /* a match inside the previous one's rstrip: keep order */
        *me = a1 < *ms ? *ms : a1;
        return best->id;
    }
}

/* ---- encoding ---- */

typedef struct {
    tok_work w;
    uint8_t *nb;   /* (len + 2) one normalised stretch */
    uint8_t *pb;   /* (len + 2) one pre-tokenizer piece with its prefix */
    int *res;      /* (rcap) ids so far */
    size_t o, rcap;
} tok_enc;

static bool tok_res_room(tok_enc *e, size_t more) {
    if (e->o + more <= e->rcap) return true;
    size_t cap = e->rcap * 2 > e->o + more ? e->rcap * 2 : e->o + more + 16;
    int *r = cce_realloc(e->res, cap, sizeof *r);
    if (!r) return false;
    e->res = r;
    e->rcap = cap;
    return true;
}

/* Pre-tokenize and BPE one stretch s[0..len) of normalised text that holds no added token,
 * appending ids. at_start: the stretch begins the text (Metaspace prepend_scheme "first");
 * pre: s[0] is the normaliser's prefix space. */
static cce_status tok_encode_part(const cce_tokenizer *t, tok_enc *e, const uint8_t *s, size_t len,
                                  bool at_start, bool pre, cce_err *err) {
    tok_work *w = &e->w;
    size_t m = 0, bad = 0;
    int rc;
    bool lead_space = s[0] == ' ' || (t->map_metaspace && len >= 3 && !memcmp(s, METASPACE, 3));
    bool prefix = t->kind == CCE_TOK_SP &&   /* byte-level prefixes are per unit, tokenizer_bpe.c */
        (t->meta_scheme == TOK_META_ALWAYS || (t->meta_scheme == TOK_META_FIRST && at_start)) && !lead_space;
    uint8_t *pb = e->pb;   /* the piece with its prefix space (part of the first word) */
    size_t pn = 0;
    if (prefix) pb[pn++] = ' ';
    if (t->kind == CCE_TOK_SP && t->map_metaspace) {
        for (size_t i = 0; i < len; i++) {
            if (i + 2 < len && !memcmp(s + i, METASPACE, 3)) { pb[pn++] = ' '; i += 2; }
            else pb[pn++] = s[i];
        }
    } else {
        memcpy(pb + pn, s, len);
        pn += len;
    }
    s = pb;
    len = pn;
    rc = t->kind == CCE_TOK_SP ? tok_sp_symbols(t, w, s, len, pre || prefix, &m, &bad) : tok_bl_symbols(t, w, s, len, &m, &bad);
    if (rc)
        return cce_err_set(err, CCE_EINVAL, "tokenizer: encode: byte 0x%02x has no token and the vocabulary has no <unk>",
                           bad < len ? s[bad] : 0);
    /* A symbol that is in no merge can never change, so no merge spans it: cut the segments
     * around it. Same result, but the heap stays small (a paragraph, not the whole text). */
    for (size_t k = 0; k < m; k++) w->next[k] = 0;
    for (size_t k = 0; k < w->nseg; k++) if ((size_t)w->seg[k] < m) w->next[w->seg[k]] = 1;
    w->nseg = 0;
    for (size_t k = 0; k < m; k++)
        if (w->next[k] || !t->in_merge[w->sym[k]] || (k > 0 && !t->in_merge[w->sym[k - 1]]))
            w->seg[w->nseg++] = (int32_t)k;
    for (size_t k = 0; k < w->nseg; k++) {
        int32_t s0 = w->seg[k], s1 = k + 1 < w->nseg ? w->seg[k + 1] : (int32_t)m;
        if (tok_bpe(t, w, s0, s1))
            return cce_err_set(err, CCE_ENOMEM, "tokenizer: encode: out of memory for a %d-symbol word", (int)(s1 - s0));
    }
    if (!tok_res_room(e, m)) return cce_err_set(err, CCE_ENOMEM, "tokenizer: encode: out of memory for %zu ids", e->o + m);
    for (size_t k = 0; k < m; k++)
        if (w->sym[k] >= 0) e->res[e->o++] = w->sym[k];
    return CCE_OK;
}

/* One stretch of raw text between pass-1 added tokens: normalise it (Prepend adds the space,
 * after Replace U+2581 and space are one), cut out the pass-2 (normalized) added tokens, and
 * encode the pieces between them. */
static cce_status tok_encode_stretch(const cce_tokenizer *t, tok_enc *e, const uint8_t *s, size_t len,
                                     bool at_start, cce_err *err) {
    uint8_t *nb = e->nb;
    size_t n = 0;
    if (t->norm_prepend) nb[n++] = ' ';
    for (size_t i = 0; i < len; i++) {
        if (t->norm_replace && i + 2 < len && !memcmp(s + i, METASPACE, 3)) { nb[n++] = ' '; i += 2; }
        else nb[n++] = s[i];
    }
    size_t q = 0, scan = 0;
    for (;;) {
        size_t ms = n, me = n;
        int32_t id = t->n_added ? tok_next_added(t, 1, nb, n, &scan, q, !t->norm_replace, &ms, &me) : -1;
        cce_status st;
        if (ms > q && (st = tok_encode_part(t, e, nb + q, ms - q, at_start && q == 0, t->norm_prepend && q == 0, err))) return st;
        if (id < 0) return CCE_OK;
        if (!tok_res_room(e, 1)) return cce_err_set(err, CCE_ENOMEM, "tokenizer: encode: out of memory for %zu ids", e->o + 1);
        e->res[e->o++] = id;
        q = me;
    }
}

/* Encode len bytes (any bytes; invalid UTF-8 falls back to byte tokens). The order is Hugging
 * Face's: pass-1 added tokens (normalized false) are cut out of the raw text, each stretch
 * between them is normalised and cut at the pass-2 added tokens (normalized true, matched in
 * their normalised form), and the pieces left are pre-tokenised and merged. t is only read and
 * all scratch is per call, so one tokenizer may encode from several threads at once. *ids is
 * allocated with cce_alloc (caller frees with cce_free); EINVAL when a byte has neither a token
 * nor an <unk> to fall back to (llama2.c and GGUF vocabularies; a tokenizer.json one drops such
 * a character, as Hugging Face does), ENOMEM on allocation failure (then *ids is NULL). */
cce_status cce_tokenizer_encode(const cce_tokenizer *t, const char *text, size_t len, int add_bos,
                                int **ids, size_t *n, cce_err *err) {
    *ids = NULL;
    *n = 0;
    if (!t || (!text && len))
        return cce_err_set(err, CCE_EINVAL, "tokenizer: encode: no tokenizer or no text");
    if (len > TOK_MAX_TEXT)
        return cce_err_set(err, CCE_EINVAL, "tokenizer: encode: text of %zu bytes is longer than %zu", len, TOK_MAX_TEXT);
    const uint8_t *s = (const uint8_t *)text;
    /* symbols of one piece: one per byte, plus two prefix spaces; byte-level with a prefix per
     * Digits / Split unit: up to one more per byte */
    bool per_unit = t->kind == CCE_TOK_BYTELEVEL && t->bl_prefix && (t->digits || t->pretok != TOK_PT_GPT2);
    size_t cap = (per_unit ? 2 * len : len) + 3;
    tok_enc e = {0};
    cce_status st = CCE_OK;
    e.w.sym = cce_alloc(cap, sizeof *e.w.sym);
    e.w.next = cce_alloc(cap, sizeof *e.w.next);
    e.w.prev = cce_alloc(cap, sizeof *e.w.prev);
    e.w.seg = cce_alloc(cap + 1, sizeof *e.w.seg);
    e.w.scratch = cce_alloc(cap, 1);
    e.nb = cce_alloc(cap, 1);
    e.pb = cce_alloc(cap, 1);
    e.rcap = len + 16;
    e.res = cce_alloc(e.rcap, sizeof *e.res);
    if (!e.w.sym || !e.w.next || !e.w.prev || !e.w.seg || !e.w.scratch || !e.nb || !e.pb || !e.res) {
        st = cce_err_set(err, CCE_ENOMEM, "tokenizer: encode: out of memory for %zu bytes of text", len);
        goto cleanup;
    }
    if (add_bos && t->bos >= 0) e.res[e.o++] = t->bos;
    size_t p = 0, scan = 0;
    for (;;) {
        size_t ms = len, me = len;
        int32_t id = t->n_added ? tok_next_added(t, 0, s, len, &scan, p, true, &ms, &me) : -1;
        if (ms > p && (st = tok_encode_stretch(t, &e, s + p, ms - p, p == 0, err))) goto cleanup;
        if (id < 0) break;
        if (!tok_res_room(&e, 1)) { st = cce_err_set(err, CCE_ENOMEM, "tokenizer: encode: out of memory for %zu ids", e.o + 1); goto cleanup; }
        e.res[e.o++] = id;
        p = me;
    }
    int *fit = cce_realloc(e.res, e.o ? e.o : 1, sizeof *e.res);   /* give back the spare room */
    *ids = fit ? fit : e.res;
    *n = e.o;
    e.res = NULL;
cleanup:
    cce_free(e.w.sym);
    cce_free(e.w.next);
    cce_free(e.w.prev);
    cce_free(e.w.seg);
    cce_free(e.w.scratch);
    cce_free(e.w.heap);
    cce_free(e.res);
    cce_free(e.nb);
    cce_free(e.pb);
    return st;
}
