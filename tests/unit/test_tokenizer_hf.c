/*
 * test_tokenizer_hf.c — the tokenizer.json forms, each on a small vocabulary built here so that
 * every expected id can be worked out by hand (the reasoning is beside each vector): plain BPE
 * (with byte fallback, with <unk>, with neither), the Llama-2 normalizer form, the Llama-3 and
 * Qwen2 Split + ByteLevel forms (contractions, digit groups, ignore_merges, letters and marks
 * beyond ASCII), added-token options (lstrip, rstrip, single_word, normalized), the refusals,
 * and the UTF-8 check. Every vector was also run through Hugging Face tokenizers 0.22 (the
 * Rust library) on the same file while writing this test, and it gives the same ids.
 */
#include <stdarg.h>
#include <stdint.h>
#include "harness.h"
#include "tokenizer.h"
#include "util.h"

/* ---- helpers ---- */

static const char *tmp_path(const char *name) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", harness_tmpdir(), name);
    return b;
}

static const char *write_text(const char *name, const char *text) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t n = strlen(text), w = fwrite(text, 1, n, f);
    return fclose(f) == 0 && w == n ? path : NULL;
}

static cce_tokenizer *load_json(const char *name, const char *json) {
    const char *path = write_text(name, json);
    cce_tokenizer *t = NULL;
    cce_err err;
    if (!path) return NULL;
    if (cce_tokenizer_load_hf(path, &t, &err)) { fprintf(stderr, "%s: %s\n", name, err.msg); return NULL; }
    return t;
}

/* The same tokenizer after cce_tokenizer_save_hf and a reload (NULL on failure). */
static cce_tokenizer *resave(const cce_tokenizer *t, const char *name) {
    const char *path = tmp_path(name);
    cce_tokenizer *t2 = NULL;
    cce_err err;
    if (cce_tokenizer_save_hf(t, path, &err) || cce_tokenizer_load_hf(path, &t2, &err)) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return NULL;
    }
    return t2;
}

static int ids_equal(const int *a, size_t na, const int *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* Encode text (len bytes, -1: strlen), compare to the listed ids. */
#define CHECK_ENC_N(t, text, len, bos, ...) do { \
        int want_[] = { __VA_ARGS__ }; size_t nw_ = sizeof want_ / sizeof want_[0]; \
        int *ids_ = NULL; size_t nid_ = 0; cce_err e2_; \
        size_t l_ = (len) == (size_t)-1 ? strlen(text) : (len); \
        cce_status s2_ = cce_tokenizer_encode((t), (text), l_, (bos), &ids_, &nid_, &e2_); \
        if (s2_) FAILF("encode(\"%s\"): %s", (text), e2_.msg); \
        int same_ = ids_equal(ids_, nid_, want_, nw_); \
        char got_[512] = ""; size_t go_ = 0; \
        for (size_t q_ = 0; q_ < nid_ && go_ + 16 < sizeof got_; q_++) go_ += (size_t)snprintf(got_ + go_, sizeof got_ - go_, " %d", ids_[q_]); \
        cce_free(ids_); \
        if (!same_) FAILF("encode(\"%s\") gave%s", (text), got_); \
    } while (0)
#define CHECK_ENC(t, text, bos, ...) CHECK_ENC_N(t, text, (size_t)-1, bos, __VA_ARGS__)
/* An empty id list (CHECK_ENC needs at least one id). */
#define CHECK_ENC_NONE(t, text) do { \
        int *ids_ = NULL; size_t nid_ = 9; cce_err e2_; \
        if (cce_tokenizer_encode((t), (text), strlen(text), 0, &ids_, &nid_, &e2_)) FAILF("encode: %s", e2_.msg); \
        cce_free(ids_); \
        if (nid_) FAILF("encode(\"%s\") gave %zu ids, expected none", (text), nid_); \
    } while (0)

/* A growing string. */
typedef struct { char *s; size_t n, cap; } sbuf;

static void sb_put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_put(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        b->cap = 2 * (b->cap + (size_t)k) + 64;
        b->s = realloc(b->s, b->cap);
        if (!b->s) abort();
    }
}

/* GPT-2 bytes_to_unicode, written out independently for the test. */
static unsigned b2u(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (unsigned)b;
    int k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) k++;
    return 256u + (unsigned)k;
}

/* The JSON string body (no quotes) of byte b's byte-level character. */
static const char *b2u_json(int b) {
    static char buf[8][8];
    static int k;
    char *o = buf[k++ & 7], *p = o;
    unsigned cp = b2u(b);
    if (cp == '"' || cp == '\\') *p++ = '\\';
    if (cp < 0x80) *p++ = (char)cp;
    else { *p++ = (char)(0xC0 | (cp >> 6)); *p++ = (char)(0x80 | (cp & 0x3F)); }
    *p = 0;
    return o;
}

/* A byte-level tokenizer.json: id b is byte b (its bytes_to_unicode character), then `extra`
 * vocab entries, `merges`, `added` tokens, and the given pre_tokenizer / normalizer / model
 * options. */
static char *bl_json(const char *normalizer, const char *pre, const char *model_opts, const char *extra,
                     const char *merges, const char *added, const char *post) {
    sbuf b = {0};
    sb_put(&b, "{\"version\":\"1.0\",\"added_tokens\":[%s],\"normalizer\":%s,\"pre_tokenizer\":%s,"
               "\"post_processor\":%s,\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
               "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null%s%s,\"vocab\":{",
           added, normalizer, pre, post, model_opts[0] ? "," : "", model_opts);
    for (int i = 0; i < 256; i++) sb_put(&b, "\"%s\":%d,", b2u_json(i), i);
    sb_put(&b, "%s},\"merges\":[%s]}}", extra, merges);
    return b.s;
}

#define SPLIT_PT(rx) "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" rx "\"}," \
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}"
#define LLAMA3_RX "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define QWEN2_RX "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define GPT2_PT "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}"
#define ADDED(id, content, sw, l, r, norm, special) \
    "{\"id\":" #id ",\"content\":\"" content "\",\"single_word\":" #sw ",\"lstrip\":" #l ",\"rstrip\":" #r \
    ",\"normalized\":" #norm ",\"special\":" #special "}"

/* The special_tokens entry of a TemplateProcessing that adds <s> = 1. */
#define S_SPECIAL "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}"

/* ---- plain BPE: no normalizer, no pre-tokenizer ---- */

/* ids 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte tokens <0x00>..<0xFF> (byte b = id b + 3), then
 *   259 a  260 b  261 c  262 ' '  263 ab  264 abc  265 ' a'  266 é
 * merges by rank: 0 (a, b) -> ab, 1 (ab, c) -> abc, 2 (' ', a) -> ' a'. The whole text is one
 * word: no dummy prefix, spaces are ordinary characters. */
static char *plain_json(const char *model_opts, const char *added, int with_bytes) {
    sbuf b = {0};
    sb_put(&b, "{\"version\":\"1.0\",\"added_tokens\":[%s],\"normalizer\":null,\"pre_tokenizer\":null,"
               "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
               "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[]," S_SPECIAL "},"
               "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]},"
               "\"model\":{\"type\":\"BPE\",\"dropout\":null%s,\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,",
           added, model_opts);
    for (int i = 0; i < 256 && with_bytes; i++) sb_put(&b, "\"<0x%02X>\":%d,", i, i + 3);
    sb_put(&b, "\"a\":259,\"b\":260,\"c\":261,\" \":262,\"ab\":263,\"abc\":264,\" a\":265,\"\xC3\xA9\":266},"
               "\"merges\":[[\"a\",\"b\"],[\"ab\",\"c\"],[\" \",\"a\"]]}}");
    return b.s;
}

#define PLAIN_SPECIALS ADDED(0, "<unk>", false, false, false, false, true) "," \
    ADDED(1, "<s>", false, false, false, false, true) "," ADDED(2, "</s>", false, false, false, false, true)

static void check_plain_bf(const cce_tokenizer *t) {
    CHECK_EQ_INT(cce_tokenizer_bos(t), 1);
    CHECK_EQ_INT(cce_tokenizer_eos(t), 2);
    CHECK_ENC(t, "abc", 0, 264);                 /* a b c -> ab c (rank 0) -> abc (rank 1) */
    CHECK_ENC(t, "abc", 1, 1, 264);              /* BOS from the template */
    CHECK_ENC(t, "a", 0, 259);                   /* no dummy prefix: not ' a' */
    CHECK_ENC(t, "ab ab", 0, 263, 262, 263);     /* both (a, b) merge first; (' ', ab) is no merge */
    CHECK_ENC(t, " a", 0, 265);                  /* (' ', a) rank 2 */
    CHECK_ENC(t, "cab", 0, 261, 263);            /* (a, b) -> ab; (c, ab) is no merge */
    CHECK_ENC(t, "\xC3\xA9", 0, 266);            /* é is a piece */
    CHECK_ENC(t, "\xC3\xAB", 0, 198, 174);       /* ë is not: bytes C3 AB -> ids 0xC3+3, 0xAB+3 */
    CHECK_ENC(t, "a\n", 0, 259, 13);             /* newline -> <0x0A> = 13 */
    CHECK_ENC(t, "<s>ab</s>", 0, 1, 263, 2);     /* specials cut out first */
    CHECK_ENC_N(t, "a\xFF", 2, 0, 259, 258);     /* an invalid byte falls back too */
}

TEST(plain_bpe_byte_fallback) {
    char *json = plain_json(",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true", PLAIN_SPECIALS, 1);
    cce_tokenizer *t = load_json("plain-bf.json", json);
    free(json);
    CHECK(t);
    CHECK_EQ_INT(cce_tokenizer_kind(t), CCE_TOK_SP);
    CHECK_STR(cce_tokenizer_form(t), "BPE over the raw text, byte fallback");
    check_plain_bf(t);
    char buf[16];
    CHECK_EQ_INT(cce_tokenizer_decode(t, 1, 265, buf, sizeof buf), 2);   /* no prefix to strip after BOS */
    CHECK_STR(buf, " a");
    cce_tokenizer *t2 = harness_cur_failed ? NULL : resave(t, "plain-bf-saved.json");
    cce_tokenizer_free(t);
    if (harness_cur_failed) return;
    CHECK(t2);
    check_plain_bf(t2);
    cce_tokenizer_free(t2);
}

/* Without byte fallback: a character that is no piece is <unk> (fused when fuse_unk), or with
 * no unk_token it is dropped, as Hugging Face does. ë ë ' ' a: <unk> <unk> then (' ', a). */
TEST(plain_bpe_unk_and_drop) {
    char *json = plain_json(",\"unk_token\":\"<unk>\",\"byte_fallback\":false,\"fuse_unk\":true", PLAIN_SPECIALS, 0);
    cce_tokenizer *t = load_json("plain-unk.json", json);
    free(json);
    CHECK(t);
    CHECK_ENC(t, "\xC3\xAB\xC3\xAB a", 0, 0, 265);
    cce_tokenizer_free(t);
    json = plain_json(",\"unk_token\":\"<unk>\",\"byte_fallback\":false,\"fuse_unk\":false", PLAIN_SPECIALS, 0);
    t = load_json("plain-unk2.json", json);
    free(json);
    CHECK(t);
    CHECK_ENC(t, "\xC3\xAB\xC3\xAB a", 0, 0, 0, 265);
    cce_tokenizer_free(t);
    json = plain_json(",\"unk_token\":null", "", 0);
    t = load_json("plain-drop.json", json);
    free(json);
    CHECK(t);
    CHECK_ENC(t, "\xC3\xAB\xC3\xAB a", 0, 265);
    CHECK_ENC(t, "a\nb", 0, 263);               /* the newline is dropped, so a and b meet and merge */
    CHECK_ENC_NONE(t, "\n\n");
    CHECK_ENC(t, "<s>a", 0, 259);                /* no added tokens here: "<s>" is text, < s > are dropped */
    cce_tokenizer_free(t);
}

/* ignore_merges on plain BPE: the whole text is one word, taken whole when it is a piece. With
 * it "abc" is still 264, and " a" 265; "ca" is no piece, so it merges as usual. */
TEST(plain_bpe_ignore_merges) {
    char *json = plain_json(",\"unk_token\":null,\"byte_fallback\":true,\"ignore_merges\":true", "", 1);
    cce_tokenizer *t = load_json("plain-im.json", json);
    free(json);
    CHECK(t);
    CHECK_ENC(t, "abc", 0, 264);
    CHECK_ENC(t, " a", 0, 265);
    CHECK_ENC(t, "ca", 0, 261, 259);
    cce_tokenizer_free(t);
}

/* ---- the Llama-2 form ---- */

/* normalizer Sequence[Prepend(▁), Replace(' ', ▁)], no pre-tokenizer, decoder Sequence[Replace,
 * ByteFallback, Fuse, Strip], byte fallback. ids 0 <unk>, 1 <s>, 2 </s>, 3..258 bytes, then
 *   259 ▁  260 h  261 i  262 ▁h  263 ▁hi  264 t  265 ▁t  266 hi
 * merges: 0 (▁, h)  1 (▁h, i)  2 (h, i)  3 (▁, t). Added: 267 "<mask>" (not normalized, lstrip),
 * 268 "hit" (normalized, not in the vocab: HF matches it by its normalised form "▁hit"). */
static const char *llama2_json(void) {
    static char *json;
    if (json) return json;
    sbuf b = {0};
    sb_put(&b, "{\"version\":\"1.0\",\"added_tokens\":[" ADDED(0, "<unk>", false, false, false, false, true) ","
               ADDED(1, "<s>", false, false, false, false, true) "," ADDED(2, "</s>", false, false, false, false, true) ","
               ADDED(267, "<mask>", false, true, false, false, false) "," ADDED(268, "hit", false, false, false, true, false) "],"
               "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
               "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]},\"pre_tokenizer\":null,"
               "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
               "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[]," S_SPECIAL "},"
               "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},\"content\":\" \"},"
               "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
               "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
               "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,");
    for (int i = 0; i < 256; i++) sb_put(&b, "\"<0x%02X>\":%d,", i, i + 3);
    sb_put(&b, "\"\xE2\x96\x81\":259,\"h\":260,\"i\":261,\"\xE2\x96\x81h\":262,\"\xE2\x96\x81hi\":263,\"t\":264,\"\xE2\x96\x81t\":265,\"hi\":266},"
               "\"merges\":[\"\xE2\x96\x81 h\",\"\xE2\x96\x81h i\",\"h i\",\"\xE2\x96\x81 t\"]}}");
    json = b.s;
    return json;
}

static void check_llama2(const cce_tokenizer *t) {
    CHECK_EQ_INT(cce_tokenizer_bos(t), 1);
    CHECK_ENC(t, "hi", 0, 263);                   /* ▁hi: (▁, h) then (▁h, i) */
    CHECK_ENC(t, "hi", 1, 1, 263);
    CHECK_ENC(t, "hi hi", 0, 263, 263);           /* ▁hi▁hi */
    CHECK_ENC(t, " hi", 0, 259, 263);             /* ▁▁hi: the second ▁ merges with h */
    CHECK_ENC(t, "\xE2\x96\x81hi", 0, 259, 263);  /* a literal ▁ is the same as a space */
    CHECK_ENC(t, "ihi", 0, 259, 261, 266);        /* ▁ i h i: only (h, i) merges */
    CHECK_ENC(t, "ti", 0, 265, 261);              /* (▁, t) */
    CHECK_ENC(t, "h\xC3\xA9", 0, 262, 198, 172);  /* ▁h, then é as bytes C3 A9 (+3) */
    CHECK_ENC(t, "<s>hi", 0, 1, 263);             /* each stretch gets its own ▁ (HF's Prepend) */
    CHECK_ENC(t, "hi  <mask>", 0, 263, 267);      /* lstrip takes both spaces into <mask> */
    CHECK_ENC(t, "<mask>hi", 0, 267, 263);
    CHECK_ENC(t, "hit", 0, 268);                  /* ▁hit matches the normalised "hit" */
    CHECK_ENC(t, "ti hit", 0, 265, 261, 268);     /* ▁ti▁hit: "▁ti", then ▁hit */
    CHECK_ENC(t, "thit", 0, 265, 266, 264);       /* ▁thit has no ▁hit: ▁ t h i t -> (h,i) then (▁,t) */
    char buf[16];
    CHECK_EQ_INT(cce_tokenizer_decode(t, 1, 263, buf, sizeof buf), 2);   /* Strip: no leading space after BOS */
    CHECK_STR(buf, "hi");
    cce_tokenizer_decode(t, 263, 263, buf, sizeof buf);
    CHECK_STR(buf, " hi");
    cce_tokenizer_decode(t, 263, 1, buf, sizeof buf);
    CHECK_STR(buf, "");                           /* special: decodes to nothing */
}

TEST(llama2_form) {
    cce_tokenizer *t = load_json("llama2.json", llama2_json());
    CHECK(t);
    CHECK_EQ_INT(cce_tokenizer_kind(t), CCE_TOK_SP);
    CHECK_STR(cce_tokenizer_form(t), "SentencePiece-style BPE, Llama-2 normalizer");
    check_llama2(t);
    cce_tokenizer *t2 = harness_cur_failed ? NULL : resave(t, "llama2-saved.json");
    cce_tokenizer_free(t);
    if (harness_cur_failed) return;
    CHECK(t2);
    check_llama2(t2);
    cce_tokenizer_free(t2);
}

/* ---- the Llama-3 and Qwen2 forms ---- */

/* Split(regex, Isolated) then ByteLevel(use_regex false). ids 0..255 are the bytes; merges:
 *   0 (T, ')->256  1 (', S)->257  2 (3, 4)->258  3 (1, 2)->259  4 (12, 3)->260  5 (4, 5)->261
 *   6 (h, e)->262  7 (l, l)->263  8 (he, ll)->264  9 (0xA9, 0xE6)->265  10 (e, 0xCC)->266
 *   11 (0xA3, 0xD9)->267
 * and "hello" = 268 in the vocab with no merge path to it (hell + o is no merge). Merges 0, 2, 9,
 * 10 and 11 cross the word boundaries the regex should draw, so they fire only if it does not.
 * Added: 269 <|begin_of_text|> (the template's BOS), 270 <|eot_id|>, both special. */
#define L3_EXTRA "\"T'\":256,\"'S\":257,\"34\":258,\"12\":259,\"123\":260,\"45\":261,\"he\":262,\"ll\":263,\"hell\":264," \
    "\"\xC2\xA9\xC3\xA6\":265,\"e\xC3\x8C\":266,\"\xC2\xA3\xC3\x99\":267,\"hello\":268"
#define L3_MERGES "\"T '\",\"' S\",\"3 4\",\"1 2\",\"12 3\",\"4 5\",\"h e\",\"l l\",\"he ll\",\"\xC2\xA9 \xC3\xA6\",\"e \xC3\x8C\",\"\xC2\xA3 \xC3\x99\""
#define L3_ADDED ADDED(269, "<|begin_of_text|>", false, false, false, false, true) "," ADDED(270, "<|eot_id|>", false, false, false, false, true)
#define L3_POST "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true}," \
    "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|begin_of_text|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]," \
    "\"pair\":[],\"special_tokens\":{\"<|begin_of_text|>\":{\"id\":\"<|begin_of_text|>\",\"ids\":[269],\"tokens\":[\"<|begin_of_text|>\"]}}}]}"

static void check_llama3(const cce_tokenizer *t) {
    CHECK_EQ_INT(cce_tokenizer_bos(t), 269);
    CHECK_ENC(t, "IT'S", 0, 73, 84, 257);           /* (?i:'s): "IT" "'S"; one word would give I T' S */
    CHECK_ENC(t, "12345", 0, 260, 261);             /* \p{N}{1,3}: "123" "45"; one word: 12 34 5 */
    CHECK_ENC(t, "hello", 0, 268);                  /* ignore_merges: the word is a piece */
    CHECK_ENC(t, "hellos", 0, 264, 111, 115);       /* not a piece: hell o s */
    /* café日本 is one \p{L}+ word: é = C3 A9 and 日 = E6 97 A5 meet in merge 9 */
    CHECK_ENC(t, "caf\xC3\xA9\xE6\x97\xA5\xE6\x9C\xAC", 0, 99, 97, 102, 195, 265, 151, 165, 230, 156, 172);
    /* e + U+0301 (a mark, not a letter) + x: "e" then "\u0301x" ([^\p{L}\p{N}]?\p{L}+), so
     * merge 10 (e, 0xCC) cannot fire: CC 81 78 */
    CHECK_ENC(t, "e\xCC\x81x", 0, 101, 204, 129, 120);
    /* ٣٤ (Arabic-Indic digits, Nd): one \p{N}{1,3} word D9 A3 D9 A4; merge 11 joins A3 D9 */
    CHECK_ENC(t, "\xD9\xA3\xD9\xA4", 0, 217, 267, 164);
    CHECK_ENC(t, "<|begin_of_text|>hello<|eot_id|>", 0, 269, 268, 270);
    CHECK_ENC(t, "hello", 1, 269, 268);
    /* NBSP is whitespace: "a" then "\u00a0b" (the optional non-letter before \p{L}+) */
    CHECK_ENC(t, "a\xC2\xA0" "b", 0, 97, 194, 160, 98);
}

TEST(llama3_form) {
    char *json = bl_json("null", SPLIT_PT(LLAMA3_RX), "\"ignore_merges\":true", L3_EXTRA, L3_MERGES, L3_ADDED, L3_POST);
    cce_tokenizer *t = load_json("llama3.json", json);
    free(json);
    CHECK(t);
    CHECK_EQ_INT(cce_tokenizer_kind(t), CCE_TOK_BYTELEVEL);
    CHECK_STR(cce_tokenizer_form(t), "byte-level BPE, Llama-3 regex");
    check_llama3(t);
    cce_tokenizer *t2 = harness_cur_failed ? NULL : resave(t, "llama3-saved.json");
    cce_tokenizer_free(t);
    if (harness_cur_failed) return;
    CHECK(t2);
    check_llama3(t2);
    cce_tokenizer_free(t2);
}

/* Qwen2: NFC normalizer, the single-digit regex, no ignore_merges, no BOS. */
TEST(qwen2_form) {
    char *json = bl_json("{\"type\":\"NFC\"}", SPLIT_PT(QWEN2_RX), "\"ignore_merges\":false", L3_EXTRA, L3_MERGES, L3_ADDED, "null");
    cce_tokenizer *t = load_json("qwen2.json", json);
    free(json);
    CHECK(t);
    CHECK_EQ_INT(cce_tokenizer_bos(t), -1);
    CHECK_STR(cce_tokenizer_form(t), "byte-level BPE, Qwen2 regex");
    CHECK_ENC(t, "12345", 0, 49, 50, 51, 52, 53);             /* \p{N}: every digit alone */
    CHECK_ENC(t, "\xD9\xA3\xD9\xA4", 0, 217, 163, 217, 164);  /* so merge 11 cannot fire */
    CHECK_ENC(t, "IT'S", 0, 73, 84, 257);
    CHECK_ENC(t, "hello", 1, 264, 111);                       /* merges only: hell o */
    cce_tokenizer *t2 = resave(t, "qwen2-saved.json");
    cce_tokenizer_free(t);
    CHECK(t2);
    CHECK_ENC(t2, "12345", 0, 49, 50, 51, 52, 53);
    cce_tokenizer_free(t2);
}

/* The GPT-2 regex on the same vocabulary: 's is case-sensitive there, so "IT'S" is I T ' S
 * words "IT", "'", "S"; digits are one \p{N}+ run, so merge 2 (3, 4) fires: 12 34 5. */
TEST(gpt2_regex_same_vocab) {
    char *json = bl_json("null", GPT2_PT, "", L3_EXTRA, L3_MERGES, "", "null");
    cce_tokenizer *t = load_json("gpt2-l3.json", json);
    free(json);
    CHECK(t);
    CHECK_STR(cce_tokenizer_form(t), "byte-level BPE, GPT-2 regex");
    CHECK_ENC(t, "IT'S", 0, 73, 84, 39, 83);
    CHECK_ENC(t, "12345", 0, 259, 258, 53);
    CHECK_ENC(t, "hello", 0, 264, 111);
    cce_tokenizer_free(t);
}

/* ---- added-token options ---- */

/* Byte-level, GPT-2 regex, ids 0..255 the bytes, no merges, so every id is a byte or an added
 * token. Added: 256 <mask> (lstrip, rstrip), 257 [X] (single_word), 258 cat (normalized: matched
 * in the second pass), 259 tdo (not normalized: first pass). */
TEST(added_token_options) {
    char *json = bl_json("null", GPT2_PT, "", "\"<mask>\":256,\"[X]\":257,\"cat\":258,\"tdo\":259", "",
                         ADDED(256, "<mask>", false, true, true, false, false) ","
                         ADDED(257, "[X]", true, false, false, false, false) ","
                         ADDED(258, "cat", false, false, false, true, false) ","
                         ADDED(259, "tdo", false, false, false, false, false), "null");
    cce_tokenizer *t = load_json("added.json", json);
    free(json);
    CHECK(t);
    for (int again = 0; again < 2 && !harness_cur_failed; again++) {
        CHECK_ENC(t, "a <mask> b", 0, 97, 256, 98);           /* both spaces stripped into <mask> */
        CHECK_ENC(t, "a<mask>b", 0, 97, 256, 98);
        CHECK_ENC(t, "<mask>\xC2\xA0\xC2\xA0z", 0, 256, 122); /* rstrip: NBSP is whitespace */
        CHECK_ENC(t, "<mask> <mask>", 0, 256, 256);           /* the second lstrip finds nothing left */
        CHECK_ENC(t, "x[X] y", 0, 120, 91, 88, 93, 32, 121);  /* x before [X]: not a single word */
        CHECK_ENC(t, "x [X] y", 0, 120, 32, 257, 32, 121);
        CHECK_ENC(t, "\xC3\xA9[X]", 0, 195, 169, 91, 88, 93);  /* é is a word character too */
        CHECK_ENC(t, "[X]_", 0, 91, 88, 93, 95);              /* and so is _ */
        CHECK_ENC(t, "catdog", 0, 99, 97, 259, 103);          /* pass 1 takes "tdo" before "cat" */
        CHECK_ENC(t, "cat dog", 0, 258, 32, 100, 111, 103);
        if (!again) {
            cce_tokenizer *t2 = resave(t, "added-saved.json");
            cce_tokenizer_free(t);
            t = t2;
            CHECK(t);
        }
    }
    cce_tokenizer_free(t);
}

/* ---- refusals: one line, naming the file and the component ---- */

static void expect_refusal(const char *name, const char *json, cce_status want, const char *needle) {
    if (harness_cur_failed) return;
    const char *path = write_text(name, json);
    if (!path) FAILF("cannot write %s", name);
    cce_tokenizer *t = NULL;
    cce_err err = {{0}};
    cce_status st = cce_tokenizer_load_hf(path, &t, &err);
    cce_tokenizer_free(t);
    if (st != want) FAILF("%s: status %d (%s), expected %d", name, (int)st, err.msg, (int)want);
    if (!strstr(err.msg, name)) FAILF("%s: message does not name the file: %s", name, err.msg);
    if (needle && !strstr(err.msg, needle)) FAILF("%s: message lacks '%s': %s", name, needle, err.msg);
    if (strchr(err.msg, '\n')) FAILF("%s: message is not one line", name);
}

#define MODEL_A "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}"
#define WITH(field) "{" field "," MODEL_A "}"
#define BL "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}"

TEST(refusals) {
    expect_refusal("metaspace-after-bl.json", WITH("\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[" BL ",{\"type\":\"Metaspace\"}]}"),
                   CCE_EUNSUPPORTED, "'Metaspace' after ByteLevel");
    expect_refusal("split-then-bl-regex.json", WITH("\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                   "\"pattern\":{\"Regex\":\"\\\\p{N}\"},\"behavior\":\"Isolated\"}]}"), CCE_EUNSUPPORTED, "Split regex");
    expect_refusal("split-removed.json", WITH("\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" LLAMA3_RX "\"},\"behavior\":\"Removed\"}"),
                   CCE_EUNSUPPORTED, "Isolated");
    expect_refusal("split-string.json", WITH("\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Isolated\"}"),
                   CCE_EUNSUPPORTED, "Regex");
    expect_refusal("split-alone.json", WITH("\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" LLAMA3_RX "\"},\"behavior\":\"Isolated\"}"),
                   CCE_EUNSUPPORTED, "Split without ByteLevel");
    expect_refusal("digits-alone.json", WITH("\"pre_tokenizer\":{\"type\":\"Digits\",\"individual_digits\":true}"),
                   CCE_EUNSUPPORTED, "Digits without ByteLevel");
    expect_refusal("bl-twice.json", WITH("\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[" BL "," BL "]}"),
                   CCE_EUNSUPPORTED, "after ByteLevel");
    expect_refusal("whitespace.json", WITH("\"pre_tokenizer\":{\"type\":\"Whitespace\"}"), CCE_EUNSUPPORTED, "pre_tokenizer 'Whitespace'");
    expect_refusal("nfkc.json", WITH("\"normalizer\":{\"type\":\"NFKC\"}"), CCE_EUNSUPPORTED, "normalizer 'NFKC'");
    expect_refusal("lowercase.json", WITH("\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Lowercase\"}]}"),
                   CCE_EUNSUPPORTED, "normalizer.normalizers[0]: normalizer 'Lowercase'");
    expect_refusal("replace-other.json", WITH("\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\"x\"},\"content\":\"y\"}"),
                   CCE_EUNSUPPORTED, "'Replace'");
    expect_refusal("prepend-twice.json", WITH("\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
                   "{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"}]}"), CCE_EUNSUPPORTED, "second 'Prepend'");
    expect_refusal("meta-with-replace.json", WITH("\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"},"
                   "\"pre_tokenizer\":{\"type\":\"Metaspace\"}"), CCE_EUNSUPPORTED, "Metaspace");
    expect_refusal("bl-with-prepend.json", WITH("\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
                   "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]},\"pre_tokenizer\":" BL),
                   CCE_EUNSUPPORTED, "ByteLevel");
    expect_refusal("decoder-wp.json", WITH("\"decoder\":{\"type\":\"WordPiece\"}"), CCE_EUNSUPPORTED, "decoder 'WordPiece'");
    expect_refusal("decoder-strip.json", WITH("\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Strip\",\"content\":\"x\"}]}"),
                   CCE_EUNSUPPORTED, "decoder.decoders[0]");
    expect_refusal("unigram.json", "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", CCE_EUNSUPPORTED, "model.type 'Unigram'");
    expect_refusal("dropout.json", "{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{\"a\":0},\"merges\":[]}}", CCE_EUNSUPPORTED, "dropout");
    expect_refusal("suffix.json", "{\"model\":{\"type\":\"BPE\",\"end_of_word_suffix\":\"</w>\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                   CCE_EUNSUPPORTED, "end_of_word_suffix");
    expect_refusal("bl-bytefallback.json", "{\"pre_tokenizer\":" BL ",\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":0},\"merges\":[]}}",
                   CCE_EUNSUPPORTED, "byte_fallback");
    expect_refusal("added-dup.json", "{\"added_tokens\":[{\"id\":1,\"content\":\"<x>\"},{\"id\":2,\"content\":\"<x>\"}]," MODEL_A "}",
                   CCE_EFORMAT, "same content");
    expect_refusal("added-twice.json", "{\"added_tokens\":[{\"id\":1,\"content\":\"<x>\"},{\"id\":1,\"content\":\"<x>\"}]," MODEL_A "}",
                   CCE_EFORMAT, "listed twice");
    expect_refusal("added-flag.json", "{\"added_tokens\":[{\"id\":1,\"content\":\"<x>\",\"lstrip\":\"yes\"}]," MODEL_A "}",
                   CCE_EFORMAT, "lstrip is not a boolean");
    expect_refusal("meta-scheme.json", WITH("\"pre_tokenizer\":{\"type\":\"Metaspace\",\"prepend_scheme\":\"sometimes\"}"),
                   CCE_EFORMAT, "prepend_scheme");
}

/* ---- the UTF-8 check ---- */

TEST(utf8_first_bad) {
    static const struct { const char *s; size_t len, want; } v[] = {
        { "", 0, 0 }, { "abc", 3, 3 }, { "caf\xC3\xA9", 5, 5 }, { "\xE6\x97\xA5\xF0\x9F\x98\x80", 7, 7 },
        { "ab\xFF" "c", 4, 2 },            /* 0xFF is never UTF-8 */
        { "a\xC3", 2, 1 },                 /* truncated sequence at the end */
        { "a\xC3(", 3, 1 },                /* lead byte without continuation */
        { "\x80" "a", 2, 0 },              /* stray continuation byte */
        { "a\xC0\xAF", 3, 1 },             /* overlong '/' */
        { "a\xE0\x80\xAF", 4, 1 },         /* overlong, three bytes */
        { "ok\xED\xA0\x80", 5, 2 },        /* UTF-16 surrogate D800 */
        { "x\xF4\x90\x80\x80", 5, 1 },     /* above U+10FFFF */
        { "\xF4\x8F\xBF\xBF!", 5, 5 },     /* U+10FFFF itself is fine */
        { "a\0b", 3, 3 },                  /* NUL is valid UTF-8 */
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
        CHECK_MSG(cce_tokenizer_utf8_check(v[k].s, v[k].len) == v[k].want, "case %zu: first bad offset %zu, expected %zu",
                  k, cce_tokenizer_utf8_check(v[k].s, v[k].len), v[k].want);
}

int main(void) {
    RUN(plain_bpe_byte_fallback);
    RUN(plain_bpe_unk_and_drop);
    RUN(plain_bpe_ignore_merges);
    RUN(llama2_form);
    RUN(llama3_form);
    RUN(qwen2_form);
    RUN(gpt2_regex_same_vocab);
    RUN(added_token_options);
    RUN(refusals);
    RUN(utf8_first_bad);
    return harness_done();
}
