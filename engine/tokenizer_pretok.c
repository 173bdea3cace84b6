/*
 * tokenizer_pretok.c — pre-tokenisation for byte-level BPE: the GPT-2, Llama-3 and Qwen2 regexes,
 * written as hand matchers (we recognise the pattern strings exactly and refuse others), and the
 * character classes they use.
 */
#include <stdbool.h>
#include <stdint.h>
#include "tokenizer_int.h"

/* GPT-2 pre-tokeniser character classes. ASCII is exact. Beyond ASCII this is an approximation
 * of \p{L} / \p{N} / \s: the Unicode whitespace set is exact, digits/number forms of common
 * scripts are N, the Latin-1 / general punctuation, currency, arrows, maths, box drawing, CJK
 * punctuation, symbol and emoji blocks, combining marks (generic, Hebrew, Arabic, Thai, the Indic
 * vowel signs), format characters and private use are "other", and every remaining codepoint
 * counts as a letter. Invalid UTF-8 bytes are "other". */

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

/* Byte-level initial symbols: one segment per word, one symbol per byte. With a Digits
 * pre-tokenizer the text is first cut at digits (each digit alone, or digit runs) and the
 * words are found inside each piece. */

/* The Split regexes we implement by hand, as they appear in tokenizer.json (TOK_PT_* order). */
const char *const tok_split_regex[3] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
