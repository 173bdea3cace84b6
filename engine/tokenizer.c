/*
 * tokenizer.c — BPE tokenizers: llama2.c tokenizer.bin, GGUF-style arrays, Hugging Face
 * tokenizer.json (SentencePiece-style with byte fallback, and GPT-2 byte-level). See tokenizer.h.
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
 * Byte-level kind: a pre-tokenisation regex, hand-written below (GPT-2's; or, from a Split
 * pre-tokenizer, Llama-3's or Qwen2's, recognised by their exact pattern strings), cuts the text
 * into words, after an optional Digits split (SmolLM); each byte is one symbol (the piece of
 * bytes_to_unicode(byte)); BPE runs per word. An NFC normalizer (Qwen2) is taken as the identity.
 *
 * Only "mergeable" pieces (normal and user-defined) take part in lookups and merges: control,
 * unknown, unused and byte tokens never come out of merging, as in SentencePiece.
 * Added tokens of a tokenizer.json ("<s>", "<|endoftext|>", ...) are cut out of the raw text
 * first (leftmost-longest, as Hugging Face does) and the stretches between them are encoded
 * separately, each with its own prefix; llama2.c and GGUF vocabularies encode such strings as
 * ordinary text, as llama2.c does. Non-special added tokens are matched on the raw text too (HF
 * matches "normalized" ones after normalisation: the same for our normalisers unless the token
 * holds a space). Not implemented: BPE dropout, continuing_subword_prefix / end_of_word_suffix,
 * added-token lstrip/rstrip, other Split regexes and pre-tokenizers, normalizers other than
 * Prepend/Replace/NFC.
 * GGUF byte-level vocabularies (cce_tokenizer_build_bpe) are turned into the equivalent
 * tokenizer.json tree and go through the same builder and validator.
 * Numbers are read little-endian (the host order on every supported machine).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "tokenizer.h"
#include "util.h"

#define TOK_MAX_VOCAB (1 << 24)          /* ids must be below this (brief: max id < 2^24) */
#define TOK_MAX_TOKEN_LENGTH 4096        /* llama2.c max_token_length sanity bound */
#define TOK_MAX_PIECE (1 << 16)          /* longest piece accepted from any source, bytes */
#define TOK_MAX_JSON ((size_t)512 << 20) /* largest tokenizer.json read */
#define TOK_MAX_TEXT ((size_t)1 << 28)   /* longest text for one encode call, bytes */

#define METASPACE "\xE2\x96\x81"   /* U+2581, SentencePiece's space */

/* Byte-level word splitters: the GPT-2 regex, the Llama-3 one (digits by threes), the Qwen2 one
 * (single digits), or none (the whole text is one word). */
enum { TOK_PT_GPT2 = 0, TOK_PT_LLAMA3 = 1, TOK_PT_QWEN2 = 2, TOK_PT_NONE = 3 };

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

typedef struct { int32_t left, right, result, rank; } tok_merge;

/* Open-addressing index over strings (ptr[i], len[i]): slot holds an id or -1. */
typedef struct { int32_t *slot; size_t cap; } tok_index;

struct cce_tokenizer {
    cce_tok_kind kind;
    int n;                  /* vocab size */
    int bos, eos, unk;      /* -1 if none */
    char *arena;            /* (arena_len) all piece bytes, each piece followed by a NUL */
    char **piece;           /* (n) piece i = piece[i][0 .. plen[i]) inside arena */
    size_t *plen;           /* (n) */
    float *score;           /* (n) */
    uint8_t *type;          /* (n) TT_* */
    int32_t byte_id[256];   /* token of each byte (byte fallback / byte-level alphabet), -1 none */
    tok_index pidx;         /* mergeable pieces -> id */
    tok_merge *merges;      /* (n_merges) in rank order */
    size_t n_merges;
    int32_t *mslot;         /* (mcap) open addressing over merges: index into merges or -1 */
    uint8_t *in_merge;      /* (n) 1 if the id is the left or right part of some merge */
    size_t mcap;
    bool map_metaspace;     /* SP: U+2581 in the input is a space (HF / GGUF conventions) */
    bool prefix_space;      /* SP: dummy prefix; byte-level: add_prefix_space */
    bool split_words;       /* SP: Metaspace split=true, BPE per space-led word */
    bool prefix_unless_space; /* SP: Metaspace prefix: only when the text does not start with a space */
    bool prefix_first_only; /* SP: Metaspace prepend_scheme "first": prefix only at the text start */
    bool fuse_unk;          /* consecutive <unk> symbols become one */
    bool byte_fallback;     /* SP: <0xXX> pieces are byte tokens (always for llama2.c / GGUF) */
    bool ignore_merges;     /* byte-level: a word that is itself a piece is taken whole */
    uint8_t pretok;         /* byte-level word splitter: TOK_PT_* */
    uint8_t digits;         /* Digits pre-tokenizer first: 0 none, 1 each digit alone, 2 digit runs */
    bool from_scores;       /* merges derived from scores (llama2.c / GGUF) */
    int32_t *added;         /* (n_added) tokenizer.json added tokens, matched in the text first */
    int n_added;
    uint8_t added_first[32];/* bitmap of the first bytes of the added tokens */
};

static inline bool tok_mergeable(uint8_t ty) { return ty == TT_NORMAL || ty == TT_USER; }

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
static const char *tok_show(const char *s, size_t n, char *buf, size_t cap) {
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
static int tok_byte_piece(const char *s, size_t n) {
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
static size_t tok_utf8_next(const uint8_t *s, size_t len, size_t i, int32_t *cp) {
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

static size_t tok_utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order. b2u[byte] = codepoint; u2b[codepoint < 324] = byte or -1. */
static void tok_byte_tables(uint16_t b2u[256], int16_t u2b[324]) {
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        b2u[b] = (uint16_t)(keep ? b : 256 + extra++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

/* ---- string index ---- */

/* Build an index over ids 0..n-1 with ptr[i] != NULL (and, if type, mergeable types only).
 * On a repeated string the first id is kept and dup_a, dup_b (if non-NULL) receive the first
 * pair of ids that collided (-1 if none). */
static cce_status tok_index_build(tok_index *ix, int n, char *const *ptr, const size_t *len,
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

static int32_t tok_index_find(const tok_index *ix, char *const *ptr, const size_t *len,
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

static int32_t tok_find(const cce_tokenizer *t, const char *key, size_t klen) {
    return tok_index_find(&t->pidx, t->piece, t->plen, key, klen);
}

/* ---- construction ---- */

/* Allocate a tokenizer with n pieces and an arena of arena_len bytes (pieces are filled by the
 * caller through tok_set_piece, in id order). */
static cce_status tok_new(int n, size_t arena_len, cce_tokenizer **out) {
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
static void tok_set_piece(cce_tokenizer *t, size_t *used, int id, const char *s, size_t n,
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
static cce_status tok_finish(cce_tokenizer *t, bool derive) {
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
    t->prefix_space = true;
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
    t->prefix_space = true;
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

/* Accessors: read-only, safe from any thread. */
cce_tok_kind cce_tokenizer_kind(const cce_tokenizer *t) { return t->kind; }
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
    if (t->kind == CCE_TOK_SP && prev >= 0 && prev == t->bos && n > 0 && p[0] == ' ') { p++; n--; }
    if (n > cap - 1) n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    return n;
}

/* ---- encoding ---- */

typedef struct { int32_t rank, pos, lid, rid, res; } tok_cand;

/* Scratch for one encode call; every array has cap entries (heap: 3*cap). */
typedef struct {
    int32_t *sym;     /* (cap) symbol ids; -1 once merged into the left neighbour */
    int32_t *next;    /* (cap) */
    int32_t *prev;    /* (cap) */
    int32_t *seg;     /* (cap + 1) start index of each BPE segment (word) */
    size_t nseg;
    tok_cand *heap;   /* (hcap) grown to 3x the longest segment seen */
    size_t hn, hcap;
} tok_work;

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
static int tok_push_bytes(const cce_tokenizer *t, tok_work *w, size_t *m, size_t seg_start,
                          const uint8_t *s, size_t n) {
    bool all = true;
    for (size_t k = 0; k < n; k++) all = all && t->byte_id[s[k]] >= 0;
    if (all) {
        for (size_t k = 0; k < n; k++) tok_push_sym(t, w, m, seg_start, t->byte_id[s[k]]);
        return 0;
    }
    if (t->unk < 0) return -1;
    tok_push_sym(t, w, m, seg_start, t->unk);
    return 0;
}

/* SP initial symbols: dummy prefix, then llama2.c's codepoint groups. */
static int tok_sp_symbols(const cce_tokenizer *t, tok_work *w, const uint8_t *s, size_t len,
                          bool prefix, size_t *m, size_t *bad) {
    *m = 0;
    w->nseg = 0;
    w->seg[w->nseg++] = 0;
    if (prefix) {
        int32_t id = tok_find(t, " ", 1);
        if (id >= 0) tok_push_sym(t, w, m, 0, id);
        else if (tok_push_bytes(t, w, m, 0, (const uint8_t *)" ", 1)) { *bad = 0; return -1; }
    }
    size_t i = 0;
    while (i < len) {
        size_t j = i + 1;
        while (j < len && (s[j] & 0xC0) == 0x80 && j - i < 4) j++;
        const char *key = (const char *)s + i;
        size_t klen = j - i;
        bool space = klen == 1 && s[i] == ' ';
        if (t->map_metaspace && klen == 3 && s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) {
            key = " "; klen = 1; space = true;
        }
        if (t->split_words && space && *m > (size_t)w->seg[w->nseg - 1]) w->seg[w->nseg++] = (int32_t)*m;
        int32_t id = tok_find(t, key, klen);
        if (id >= 0) tok_push_sym(t, w, m, (size_t)w->seg[w->nseg - 1], id);
        else if (tok_push_bytes(t, w, m, (size_t)w->seg[w->nseg - 1], (const uint8_t *)key, klen)) {
            *bad = i;
            return -1;
        }
        i = j;
    }
    return 0;
}

/* GPT-2 pre-tokeniser character classes. ASCII is exact. Beyond ASCII this is an approximation
 * of \p{L} / \p{N} / \s: the Unicode whitespace set is exact, digits/number forms of common
 * scripts are N, the Latin-1 / general punctuation, currency, arrows, maths, box drawing, CJK
 * punctuation, symbol and emoji blocks, combining marks (generic, Hebrew, Arabic, Thai, the Indic
 * vowel signs), format characters and private use are "other", and every remaining codepoint
 * counts as a letter. Invalid UTF-8 bytes are "other". */
enum { CC_SPACE, CC_LETTER, CC_NUMBER, CC_OTHER };

static int tok_cp_class(int32_t c) {
    if (c < 0) return CC_OTHER;
    if (c < 0x80) {
        if (c == ' ' || (c >= 9 && c <= 13)) return CC_SPACE;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CC_LETTER;
        if (c >= '0' && c <= '9') return CC_NUMBER;
        return CC_OTHER;
    }
    if (c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
        c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000)
        return CC_SPACE;
    if (c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE) || (c >= 0x660 && c <= 0x669) ||
        (c >= 0x6F0 && c <= 0x6F9) || (c >= 0x966 && c <= 0x96F) || c == 0x2070 ||
        (c >= 0x2074 && c <= 0x2079) || (c >= 0x2080 && c <= 0x2089) || (c >= 0x2150 && c <= 0x2189) ||
        (c >= 0x2460 && c <= 0x249B) || (c >= 0x24EA && c <= 0x24FF) || (c >= 0x2776 && c <= 0x2793) ||
        (c >= 0xFF10 && c <= 0xFF19))
        return CC_NUMBER;
    if (c == 0xAA || c == 0xB5 || c == 0xBA) return CC_LETTER;
    if ((c >= 0x80 && c <= 0xBF) || c == 0xD7 || c == 0xF7 || (c >= 0x2C2 && c <= 0x2C5) ||
        (c >= 0x2D2 && c <= 0x2DF) || (c >= 0x300 && c <= 0x36F) || (c >= 0x2010 && c <= 0x206F) ||
        (c >= 0x20A0 && c <= 0x20FF) || (c >= 0x2190 && c <= 0x245F) ||
        (c >= 0x2500 && c <= 0x2775) || (c >= 0x2794 && c <= 0x2BFF) || (c >= 0x2E00 && c <= 0x2E7F) ||
        (c >= 0x3001 && c <= 0x303F) || (c >= 0xE000 && c <= 0xF8FF) || (c >= 0xFE00 && c <= 0xFE0F) ||
        (c >= 0xFE30 && c <= 0xFE6F) || (c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
        (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65) || (c >= 0xFFF0 && c <= 0xFFFF) ||
        (c >= 0x1F000 && c <= 0x1FAFF) || (c >= 0x200B && c <= 0x200F) || c == 0xFEFF ||
        (c >= 0x0591 && c <= 0x05C7) || (c >= 0x064B && c <= 0x065F) || c == 0x0670 ||
        (c >= 0x06D6 && c <= 0x06ED) || c == 0x0E31 || (c >= 0x0E34 && c <= 0x0E3A) ||
        (c >= 0x0E47 && c <= 0x0E4E) || (c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x1DC0 && c <= 0x1DFF) ||
        (c >= 0xFE20 && c <= 0xFE2F))
        return CC_OTHER;
    if (c >= 0x2100 && c <= 0x214F) {   /* letterlike symbols: mostly letters (ℕ, ℓ, K), some not */
        static const uint16_t sym[] = { 0x2100, 0x2101, 0x2103, 0x2104, 0x2105, 0x2106, 0x2108, 0x2109,
            0x2114, 0x2116, 0x2117, 0x2118, 0x211E, 0x211F, 0x2120, 0x2121, 0x2122, 0x2123, 0x2125,
            0x2127, 0x2129, 0x212E, 0x213A, 0x213B, 0x2140, 0x2141, 0x2142, 0x2143, 0x2144, 0x214A,
            0x214B, 0x214C, 0x214D, 0x214F };
        for (size_t k = 0; k < sizeof sym / sizeof sym[0]; k++)
            if (c == sym[k]) return CC_OTHER;
        return CC_LETTER;
    }
    if (c >= 0x0900 && c <= 0x0DFF) {   /* Indic blocks share one layout: vowel signs and viramas */
        int o = c & 0x7F;
        if (o <= 0x03 || (o >= 0x3A && o <= 0x4F && o != 0x3D) || (o >= 0x51 && o <= 0x57) ||
            o == 0x62 || o == 0x63)
            return CC_OTHER;
    }
    return CC_LETTER;
}

static int tok_class_at(const uint8_t *s, size_t len, size_t i, size_t *clen) {
    int32_t cp;
    *clen = tok_utf8_next(s, len, i, &cp);
    return tok_cp_class(cp);
}

/* End of the GPT-2 pre-token starting at i:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t tok_gpt2_span(const uint8_t *s, size_t len, size_t i) {
    if (s[i] == '\'' && i + 1 < len) {
        uint8_t a = s[i + 1], b = i + 2 < len ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    size_t p = i + (s[i] == ' ' ? 1 : 0), cl = 1;
    if (p < len) {
        int cls = tok_class_at(s, len, p, &cl);
        if (cls != CC_SPACE) {
            size_t j = p + cl;
            while (j < len && tok_class_at(s, len, j, &cl) == cls) j += cl;
            return j;
        }
    }
    /* whitespace run starting at i (s[i] is whitespace here) */
    size_t j = i, last = i;
    while (j < len && tok_class_at(s, len, j, &cl) == CC_SPACE) { last = j; j += cl; }
    if (j == i) return i + cl;            /* not reached: every class is handled above */
    if (j == len || last == i) return j;  /* \s+ to the end, or a single whitespace char */
    return last;                          /* \s+(?!\S): leave the last one for the next word */
}

static inline bool tok_is_nl(uint8_t c) { return c == '\r' || c == '\n'; }

/* End of the Llama-3 / Qwen2 pre-token starting at i (maxdig 3 / 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxdig}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t tok_llama3_span(const uint8_t *s, size_t len, size_t i, int maxdig) {
    if (s[i] == '\'' && i + 1 < len) {
        uint8_t a = s[i + 1] | 0x20, b = i + 2 < len ? s[i + 2] | 0x20 : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    size_t cl0, cl;
    int c0 = tok_class_at(s, len, i, &cl0);
    size_t p = c0 == CC_LETTER ? i : (c0 != CC_NUMBER && !tok_is_nl(s[i])) ? i + cl0 : len;
    if (p < len && tok_class_at(s, len, p, &cl) == CC_LETTER) {
        size_t j = p + cl;
        while (j < len && tok_class_at(s, len, j, &cl) == CC_LETTER) j += cl;
        return j;
    }
    if (c0 == CC_NUMBER) {
        size_t j = i + cl0;
        for (int k = 1; k < maxdig && j < len && tok_class_at(s, len, j, &cl) == CC_NUMBER; k++) j += cl;
        return j;
    }
    p = i + (s[i] == ' ' ? 1 : 0);
    if (p < len && tok_class_at(s, len, p, &cl) == CC_OTHER) {
        size_t j = p + cl;
        while (j < len && tok_class_at(s, len, j, &cl) == CC_OTHER) j += cl;
        while (j < len && tok_is_nl(s[j])) j++;
        return j;
    }
    /* whitespace run starting at i */
    size_t j = i, last = i, nl_end = 0;
    while (j < len && tok_class_at(s, len, j, &cl) == CC_SPACE) {
        last = j;
        if (tok_is_nl(s[j])) nl_end = j + 1;
        j += cl;
    }
    if (j == i) return i + cl0;             /* not reached: every class is handled above */
    if (nl_end) return nl_end;              /* \s*[\r\n]+ */
    if (j == len || last == i) return j;
    return last;                            /* \s+(?!\S) */
}

static size_t tok_word_end(const cce_tokenizer *t, const uint8_t *s, size_t len, size_t i) {
    switch (t->pretok) {
    case TOK_PT_LLAMA3: return tok_llama3_span(s, len, i, 3);
    case TOK_PT_QWEN2: return tok_llama3_span(s, len, i, 1);
    case TOK_PT_NONE: return len;
    default: return tok_gpt2_span(s, len, i);
    }
}

/* Byte-level initial symbols: one segment per word, one symbol per byte. With a Digits
 * pre-tokenizer the text is first cut at digits (each digit alone, or digit runs) and the
 * words are found inside each piece. */
static int tok_bl_symbols(const cce_tokenizer *t, tok_work *w, const uint8_t *s, size_t len,
                          size_t *m, size_t *bad) {
    *m = 0;
    w->nseg = 0;
    size_t c0 = 0;
    while (c0 < len) {
        size_t c1 = len, cl;
        if (t->digits) {   /* piece [c0, c1): a digit (run) or a stretch without digits */
            bool dig = tok_class_at(s, len, c0, &cl) == CC_NUMBER;
            c1 = c0 + cl;
            if (!dig || t->digits == 2)
                while (c1 < len && (tok_class_at(s, len, c1, &cl) == CC_NUMBER) == dig) c1 += cl;
        }
        size_t i = c0;
        while (i < c1) {
            size_t j = tok_word_end(t, s, c1, i);
            w->seg[w->nseg++] = (int32_t)*m;
            int32_t whole = t->ignore_merges ? tok_find(t, (const char *)s + i, j - i) : -1;
            if (whole >= 0) {
                w->sym[(*m)++] = whole;
            } else {
                for (size_t k = i; k < j; k++) {
                    if (tok_push_bytes(t, w, m, (size_t)w->seg[w->nseg - 1], s + k, 1)) { *bad = k; return -1; }
                }
            }
            i = j;
        }
        c0 = c1;
    }
    return 0;
}

/* Leftmost-longest match of an added token in s[p..len): *at = len when there is none. */
static void tok_find_added(const cce_tokenizer *t, const uint8_t *s, size_t len, size_t p,
                           size_t *at, size_t *mlen, int32_t *mid) {
    *at = len; *mlen = 0; *mid = -1;
    for (size_t i = p; i < len; i++) {
        if (!(t->added_first[s[i] >> 3] & (1u << (s[i] & 7)))) continue;
        for (int k = 0; k < t->n_added; k++) {
            int32_t id = t->added[k];
            size_t n = t->plen[id];
            if (n > *mlen && n <= len - i && !memcmp(t->piece[id], s + i, n)) { *mlen = n; *mid = id; }
        }
        if (*mid >= 0) { *at = i; return; }
    }
}

/* Encode one stretch of text without added tokens, appending ids to res at *o. at_start: the
 * stretch begins the text (for prepend_scheme "first"). tmp has room for len + 1 bytes. */
static cce_status tok_encode_part(const cce_tokenizer *t, tok_work *w, const uint8_t *s, size_t len,
                                  bool at_start, uint8_t *tmp, int *res, size_t *o, cce_err *err) {
    size_t m = 0, bad = 0;
    int rc;
    if (t->kind == CCE_TOK_SP) {
        bool prefix = len > 0 && t->prefix_space && (at_start || !t->prefix_first_only) &&
                      !(t->prefix_unless_space && (s[0] == ' ' || (len >= 3 && !memcmp(s, METASPACE, 3))));
        rc = tok_sp_symbols(t, w, s, len, prefix, &m, &bad);
    } else {
        if (t->prefix_space && len > 0 && s[0] != ' ') {   /* ByteLevel add_prefix_space */
            tmp[0] = ' ';
            memcpy(tmp + 1, s, len);
            s = tmp;
            len++;
        }
        rc = tok_bl_symbols(t, w, s, len, &m, &bad);
    }
    if (rc)
        return cce_err_set(err, CCE_EINVAL, "tokenizer: encode: byte 0x%02x has no token and the vocabulary has no <unk>",
                           bad < len ? s[bad] : 0);
    /* A symbol that is in no merge can never change, so no merge spans it: cut the segments
     * around it. Same result, but the heap stays small (a paragraph, not the whole text). */
    for (size_t k = 0; k < m; k++) w->next[k] = 0;
    for (size_t k = 0; k < w->nseg; k++) w->next[w->seg[k]] = 1;
    w->nseg = 0;
    for (size_t k = 0; k < m; k++)
        if (w->next[k] || !t->in_merge[w->sym[k]] || (k > 0 && !t->in_merge[w->sym[k - 1]]))
            w->seg[w->nseg++] = (int32_t)k;
    if (w->nseg == 0) w->seg[w->nseg++] = 0;
    for (size_t k = 0; k < w->nseg; k++) {
        int32_t s0 = w->seg[k], s1 = k + 1 < w->nseg ? w->seg[k + 1] : (int32_t)m;
        if (tok_bpe(t, w, s0, s1))
            return cce_err_set(err, CCE_ENOMEM, "tokenizer: encode: out of memory for a %d-symbol word", (int)(s1 - s0));
    }
    for (size_t k = 0; k < m; k++)
        if (w->sym[k] >= 0) res[(*o)++] = w->sym[k];
    return CCE_OK;
}

/* Encode len bytes (any bytes; invalid UTF-8 falls back to byte tokens). t is only read and all
 * scratch is per call, so one tokenizer may encode from several threads at once. *ids is
 * allocated with cce_alloc (caller frees with cce_free); EINVAL when a byte has neither a token
 * nor an <unk> to fall back to, ENOMEM on allocation failure (then *ids is NULL). */
cce_status cce_tokenizer_encode(const cce_tokenizer *t, const char *text, size_t len, int add_bos,
                                int **ids, size_t *n, cce_err *err) {
    *ids = NULL;
    *n = 0;
    if (!t || (!text && len))
        return cce_err_set(err, CCE_EINVAL, "tokenizer: encode: no tokenizer or no text");
    if (len > TOK_MAX_TEXT)
        return cce_err_set(err, CCE_EINVAL, "tokenizer: encode: text of %zu bytes is longer than %zu", len, TOK_MAX_TEXT);
    const uint8_t *s = (const uint8_t *)text;
    size_t cap = len + 2;   /* symbols of one stretch: one per byte, plus a prefix */
    tok_work w = {0};
    cce_status st = CCE_OK;
    w.sym = cce_alloc(cap, sizeof *w.sym);
    w.next = cce_alloc(cap, sizeof *w.next);
    w.prev = cce_alloc(cap, sizeof *w.prev);
    w.seg = cce_alloc(cap + 1, sizeof *w.seg);
    uint8_t *tmp = cce_alloc(cap, 1);
    int *res = cce_alloc(cap, 2 * sizeof *res);   /* ids: at most 2 per byte (prefix per stretch) + BOS */
    if (!w.sym || !w.next || !w.prev || !w.seg || !tmp || !res) {
        st = cce_err_set(err, CCE_ENOMEM, "tokenizer: encode: out of memory for %zu bytes of text", len);
        goto cleanup;
    }
    size_t o = 0, p = 0;
    if (add_bos && t->bos >= 0) res[o++] = t->bos;
    while (p < len) {
        size_t at = len, mlen = 0;
        int32_t mid = -1;
        if (t->n_added) tok_find_added(t, s, len, p, &at, &mlen, &mid);
        if (at > p && (st = tok_encode_part(t, &w, s + p, at - p, p == 0, tmp, res, &o, err))) goto cleanup;
        if (mid < 0) break;
        res[o++] = mid;
        p = at + mlen;
    }
    int *fit = cce_realloc(res, o ? o : 1, sizeof *res);   /* give back the worst-case room */
    *ids = fit ? fit : res;
    *n = o;
    res = NULL;
cleanup:
    cce_free(w.sym);
    cce_free(w.next);
    cce_free(w.prev);
    cce_free(w.seg);
    cce_free(w.heap);
    cce_free(res);
    cce_free(tmp);
    return st;
}

/* ---- Hugging Face tokenizer.json ---- */

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

/* The Split regexes we implement by hand, as they appear in tokenizer.json (TOK_PT_* order). */
static const char *const tok_split_regex[3] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

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
static cce_status tok_hf_build(const cJSON *root, const char *path, cce_tokenizer **out, cce_err *err) {
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

/* ---- writing tokenizer.json ---- */

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
static cJSON *tok_jadd(cJSON *parent, const char *key, cJSON *item, bool *ok) {
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

static cJSON *tok_jtype(cJSON *parent, const char *key, const char *type, bool *ok) {
    cJSON *o = tok_jadd(parent, key, cJSON_CreateObject(), ok);
    tok_jadd(o, "type", cJSON_CreateString(type), ok);
    return o;
}

/* Llama-2 style normalizer / decoder / post-processor, or GPT-2 ByteLevel ones. */
static void tok_json_pipeline(const cce_tokenizer *t, cJSON *root, const char *bos_name, bool *ok) {
    if (t->kind == CCE_TOK_SP && (t->prefix_unless_space || t->split_words)) {
        /* newer Llama-family form: Metaspace pre-tokenizer, no normalizer */
        tok_jadd(root, "normalizer", cJSON_CreateNull(), ok);
        cJSON *pre = tok_jtype(root, "pre_tokenizer", "Metaspace", ok);
        tok_jadd(pre, "replacement", cJSON_CreateString(METASPACE), ok);
        tok_jadd(pre, "prepend_scheme", cJSON_CreateString(!t->prefix_space ? "never" : t->prefix_first_only ? "first" : "always"), ok);
        tok_jadd(pre, "split", cJSON_CreateBool(t->split_words), ok);
    } else if (t->kind == CCE_TOK_SP) {
        cJSON *norm = tok_jtype(root, "normalizer", "Sequence", ok);
        cJSON *list = tok_jadd(norm, "normalizers", cJSON_CreateArray(), ok);
        if (t->prefix_space) {
            cJSON *pre = tok_jtype(list, NULL, "Prepend", ok);
            tok_jadd(pre, "prepend", cJSON_CreateString(METASPACE), ok);
        }
        cJSON *rep = tok_jtype(list, NULL, "Replace", ok);
        cJSON *pat = tok_jadd(rep, "pattern", cJSON_CreateObject(), ok);
        tok_jadd(pat, "String", cJSON_CreateString(" "), ok);
        tok_jadd(rep, "content", cJSON_CreateString(METASPACE), ok);
        tok_jadd(root, "pre_tokenizer", cJSON_CreateNull(), ok);
    } else {
        tok_jadd(root, "normalizer", cJSON_CreateNull(), ok);
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
        tok_jadd(pre, "add_prefix_space", cJSON_CreateBool(t->prefix_space), ok);
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
    if (t->kind == CCE_TOK_SP) {
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
    if (!js || !jl || !arena || !buf) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path); goto cleanup; }
    size_t used = 0;
    for (int i = 0; i < t->n; i++) {
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
        if (!js[i] || (t->type[i] != TT_CONTROL && t->type[i] != TT_UNKNOWN && t->type[i] != TT_USER)) continue;
        cJSON *a = tok_jadd(added, NULL, cJSON_CreateObject(), &ok);
        tok_jadd(a, "id", cJSON_CreateNumber(i), &ok);
        tok_jadd(a, "content", cJSON_CreateString(js[i]), &ok);
        tok_jadd(a, "single_word", cJSON_CreateFalse(), &ok);
        tok_jadd(a, "lstrip", cJSON_CreateFalse(), &ok);
        tok_jadd(a, "rstrip", cJSON_CreateFalse(), &ok);
        tok_jadd(a, "normalized", cJSON_CreateBool(t->type[i] == TT_USER), &ok);
        tok_jadd(a, "special", cJSON_CreateBool(t->type[i] != TT_USER), &ok);
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
        if (js[i]) tok_jadd(vocab, js[i], cJSON_CreateNumber(i), &ok);
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
    cce_free(arena);
    cce_free(buf);
    cce_free(ix.slot);
    return st;
}

/* ---- GGUF byte-level (tokenizer.ggml.model "gpt2") ---- */

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
