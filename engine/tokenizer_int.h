/*
 * tokenizer_int.h — what the tokenizer sources share (not a public header; see tokenizer.h).
 *
 * The tokenizer is one representation (struct cce_tokenizer below) filled by several readers
 * and used by one encoder. The sources split by job:
 *   tokenizer.c          representation, indexes, merge tables, llama2.c tokenizer.bin and
 *                        GGUF SentencePiece arrays, accessors, decoding, the encoder (BPE loop,
 *                        SentencePiece initial symbols, added tokens)
 *   tokenizer_bpe.c      byte-level BPE: bytes_to_unicode, initial symbols per pre-token, the
 *                        GGUF "gpt2" builder
 *   tokenizer_pretok.c   the pre-tokenisation regexes we implement by hand, character classes
 *   tokenizer_ucd.c      Unicode 16.0 tables: letters, numbers, whitespace, word characters
 *   tokenizer_hf.c       tokenizer.json reader (validation, pipeline recognition, build)
 *   tokenizer_hf_write.c tokenizer.json writer
 */
#ifndef CCE_TOKENIZER_INT_H
#define CCE_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tokenizer.h"

struct cJSON;

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

/* Metaspace prepend_scheme (none: no Metaspace pre-tokenizer). */
enum { TOK_META_NONE = 0, TOK_META_ALWAYS = 1, TOK_META_FIRST = 2, TOK_META_NEVER = 3 };

/* A tokenizer.json added token. Pass 0 tokens (normalized false) are matched in the raw text,
 * pass 1 tokens (normalized true) in the normalised text, by their normalised content. */
typedef struct {
    int32_t id;
    uint8_t pass;
    bool special, lstrip, rstrip, single_word;
    bool in_vocab;          /* also in model.vocab (written back there) */
    size_t content, clen;   /* content as in the file: added_arena[content .. content + clen) */
    size_t pat, plen;       /* what is matched: added_arena[pat .. pat + plen) */
} tok_added;

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
    bool norm_prepend;      /* SP: dummy prefix space (llama2.c, GGUF, normalizer Prepend U+2581) */
    bool norm_replace;      /* SP: normalizer Replace(' ' -> U+2581): a space is no whitespace for
                               lstrip/rstrip of normalized added tokens */
    uint8_t meta_scheme;    /* SP: Metaspace pre-tokenizer prefix: TOK_META_* */
    bool split_words;       /* SP: Metaspace split=true, BPE per space-led word */
    bool bl_prefix;         /* byte-level: ByteLevel add_prefix_space */
    bool plain;             /* SP kind with no normalizer or pre-tokenizer: pieces as in the file */
    bool drop_unknown;      /* a character with no token, byte token or <unk> is dropped (HF) */
    bool nfc;               /* normalizer NFC (taken as the identity; written back) */
    bool json_added;        /* built from a tokenizer.json tree: its added tokens are exactly `added` */
    bool fuse_unk;          /* consecutive <unk> symbols become one */
    bool byte_fallback;     /* SP: <0xXX> pieces are byte tokens (always for llama2.c / GGUF) */
    bool ignore_merges;     /* a word that is itself a piece is taken whole */
    uint8_t pretok;         /* byte-level word splitter: TOK_PT_* */
    uint8_t digits;         /* Digits pre-tokenizer first: 0 none, 1 each digit alone, 2 digit runs */
    bool from_scores;       /* merges derived from scores (llama2.c / GGUF) */
    tok_added *added;       /* (n_added) tokenizer.json added tokens, in file order */
    int n_added;
    char *added_arena;      /* contents and patterns of the added tokens */
    uint8_t added_first[2][32]; /* per pass: bitmap of the first bytes of its patterns */
};

static inline bool tok_mergeable(uint8_t ty) { return ty == TT_NORMAL || ty == TT_USER; }

typedef struct { int32_t rank, pos, lid, rid, res; } tok_cand;

/* Scratch for one encode call; every array has cap entries (heap: 3*cap). */
typedef struct {
    int32_t *sym;     /* (cap) symbol ids; -1 once merged into the left neighbour */
    int32_t *next;    /* (cap) */
    int32_t *prev;    /* (cap) */
    int32_t *seg;     /* (cap + 1) start index of each BPE segment (word) */
    uint8_t *scratch; /* (cap) one byte-level unit with its prefix space */
    size_t nseg;
    tok_cand *heap;   /* (hcap) grown to 3x the longest segment seen */
    size_t hn, hcap;
} tok_work;

/* ---- tokenizer.c ---- */

/* Printable, bounded rendering of s[0..n) for error messages (written into buf). */
const char *tok_show(const char *s, size_t n, char *buf, size_t cap);
/* "<0xXX>" (hex, either case) -> byte value, else -1. */
int tok_byte_piece(const char *s, size_t n);
/* Decode one UTF-8 codepoint at s[i]; returns its length (1 for an invalid byte, *cp = -1). */
size_t tok_utf8_next(const uint8_t *s, size_t len, size_t i, int32_t *cp);
/* Encode cp as UTF-8 at out (up to 4 bytes); returns the length. */
size_t tok_utf8_put(uint32_t cp, char *out);
/* String index over ptr[i] (len[i] bytes) for ids with ptr[i] != NULL (and a mergeable type if
 * type != NULL); the first id wins on repeats, reported through dup_a/dup_b (may be NULL). */
cce_status tok_index_build(tok_index *ix, int n, char *const *ptr, const size_t *len,
                           const uint8_t *type, int *dup_a, int *dup_b);
int32_t tok_index_find(const tok_index *ix, char *const *ptr, const size_t *len,
                       const char *key, size_t klen);
/* Mergeable piece key[0..klen) -> id, or -1. */
int32_t tok_find(const cce_tokenizer *t, const char *key, size_t klen);
/* A tokenizer with n (empty) pieces and arena room for arena_len piece bytes. */
cce_status tok_new(int n, size_t arena_len, cce_tokenizer **out);
/* Store piece id at arena offset *used (the caller sized the arena). */
void tok_set_piece(cce_tokenizer *t, size_t *used, int id, const char *s, size_t n,
                   float score, uint8_t type);
/* Piece index, derived merges (derive: score vocabularies), merge index. */
cce_status tok_finish(cce_tokenizer *t, bool derive);
/* Byte tokens for s[0..n), else one <unk>; -1 when neither exists. */
int tok_push_bytes(const cce_tokenizer *t, tok_work *w, size_t *m, size_t seg_start,
                   const uint8_t *s, size_t n);

/* ---- tokenizer_ucd.c ---- */

enum { TOK_UCD_L = 1, TOK_UCD_N = 2, TOK_UCD_S = 4, TOK_UCD_W = 8 };

/* Unicode 16.0 properties of codepoint cp: TOK_UCD_L (General_Category L*), TOK_UCD_N (N*),
 * TOK_UCD_S (White_Space), TOK_UCD_W (regex \w: Alphabetic, M*, Nd, Pc, Join_Control); 0 for
 * anything else, including cp < 0 (an invalid byte). */
unsigned tok_ucd_flags(int32_t cp);

/* ---- tokenizer_pretok.c ---- */

enum { CC_SPACE, CC_LETTER, CC_NUMBER, CC_OTHER };

/* The Split regexes implemented by hand, exactly as tokenizer.json spells them (TOK_PT_* order). */
extern const char *const tok_split_regex[3];
/* Class (CC_*) of the codepoint at s[i]; *clen = its length in bytes. */
int tok_class_at(const uint8_t *s, size_t len, size_t i, size_t *clen);
/* End of the pre-token of t's splitter that starts at s[i] (i < len). */
size_t tok_word_end(const cce_tokenizer *t, const uint8_t *s, size_t len, size_t i);

/* ---- tokenizer_bpe.c ---- */

/* GPT-2 bytes_to_unicode: b2u[byte] = codepoint; u2b[codepoint < 324] = byte or -1. */
void tok_byte_tables(uint16_t b2u[256], int16_t u2b[324]);
/* Byte-level initial symbols of s[0..len): one segment per pre-token, one symbol per byte. */
int tok_bl_symbols(const cce_tokenizer *t, tok_work *w, const uint8_t *s, size_t len,
                   size_t *m, size_t *bad);

/* ---- tokenizer_hf.c ---- */

/* Build a tokenizer from a parsed tokenizer.json tree; errors name path. */
cce_status tok_hf_build(const struct cJSON *root, const char *path, cce_tokenizer **out, cce_err *err);

/* ---- tokenizer_hf_write.c ---- */

/* Add item to parent under key (NULL key: append to an array); clears *ok on failure. */
struct cJSON *tok_jadd(struct cJSON *parent, const char *key, struct cJSON *item, bool *ok);
/* Add {"type": type} under key. */
struct cJSON *tok_jtype(struct cJSON *parent, const char *key, const char *type, bool *ok);

#endif
