/*
 * tokenizer_pretok.c — pre-tokenisation for byte-level BPE: the GPT-2, Llama-3 and Qwen2 regexes,
 * written as hand matchers (we recognise the pattern strings exactly and refuse others), and the
 * character classes they use.
 */
#include <stdbool.h>
#include <stdint.h>
#include "tokenizer_int.h"

/* Character classes of the regexes: \s, \p{L}, \p{N}, and everything else, by the Unicode 16.0
 * tables of tokenizer_ucd.c (the categories are disjoint). Invalid UTF-8 bytes are "other". */
static int tok_cp_class(int32_t c) {
    unsigned f = tok_ucd_flags(c);
    return f & TOK_UCD_S ? CC_SPACE : f & TOK_UCD_L ? CC_LETTER : f & TOK_UCD_N ? CC_NUMBER : CC_OTHER;
}

int tok_class_at(const uint8_t *s, size_t len, size_t i, size_t *clen) {
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

size_t tok_word_end(const cce_tokenizer *t, const uint8_t *s, size_t len, size_t i) {
    switch (t->pretok) {
    case TOK_PT_LLAMA3: return tok_llama3_span(s, len, i, 3);
    case TOK_PT_QWEN2: return tok_llama3_span(s, len, i, 1);
    case TOK_PT_NONE: return len;
    default: return tok_gpt2_span(s, len, i);
    }
}

/* The Split regexes we implement by hand, as they appear in tokenizer.json (TOK_PT_* order). */
const char *const tok_split_regex[3] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
