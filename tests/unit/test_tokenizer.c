/*
 * test_tokenizer.c — tokenizers against the reference vectors of ../shared/data/SOURCES.md,
 * against a slow llama2.c-style reference encoder, across formats (tokenizer.bin, GGUF-style
 * arrays, tokenizer.json written by us), a hand-worked GPT-2 byte-level tokenizer, malformed
 * files, and allocation failures.
 */
#include <stdint.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "harness.h"
#include "tokenizer.h"
#include "tokenizer_int.h"   /* tok_ucd_flags: the Unicode tables */
#include "util.h"

/* ---- helpers ---- */

/* FNV-1a-64 of the evaluation token stream. SOURCES.md states 38be717c3336a571 for its 291,127
 * ids, but that value is not reproducible: this encoder and an independent Python transcription
 * of llama2.c's encode() both give the same 291,127 ids with hash b60094ec0ee6dbe3 (also tried:
 * FNV-1, byte-wise over u32/i64/u16, without BOS, text forms — none gives 38be...). The stream is
 * right: stories260K scores exactly the documented loss 1.69130 on it (tests/unit/test_eval.c). */
#define EVAL_STREAM_FNV 0xb60094ec0ee6dbe3ull

static uint64_t fnv_ids(const int *ids, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) { h ^= (uint32_t)ids[i]; h *= 1099511628211ull; }
    return h;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = 0; *len = (size_t)n; }
    return b;
}

static int write_bytes(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(d, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

static const char *tmp_path(const char *name) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", harness_tmpdir(), name);
    return b;
}

/* The evaluation protocol of SOURCES.md: CRLF -> LF, split at "\n\n", strip spaces/tabs/newlines,
 * skip empty documents, each document = BOS + encode(doc). Returns malloc'ed ids or NULL. */
static int *eval_stream(const cce_tokenizer *t, const char *path, size_t *n_out) {
    size_t len;
    char *raw = slurp(path, &len);
    if (!raw) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        if (!(raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n')) raw[o++] = raw[i];
    len = o;
    size_t cap = len + 1024, n = 0;
    int *all = malloc(cap * sizeof *all);
    size_t i = 0;
    while (all && i <= len) {
        const char *sep = i < len ? memmem(raw + i, len - i, "\n\n", 2) : NULL;
        size_t e = sep ? (size_t)(sep - raw) : len;
        size_t a = i, b = e;
        while (a < b && (raw[a] == ' ' || raw[a] == '\t' || raw[a] == '\n')) a++;
        while (b > a && (raw[b - 1] == ' ' || raw[b - 1] == '\t' || raw[b - 1] == '\n')) b--;
        if (b > a) {
            int *ids; size_t m; cce_err err;
            if (cce_tokenizer_encode(t, raw + a, b - a, 1, &ids, &m, &err)) { free(all); all = NULL; break; }
            if (n + m > cap) { free(all); all = NULL; cce_free(ids); break; }
            memcpy(all + n, ids, m * sizeof *ids);
            n += m;
            cce_free(ids);
        }
        if (!sep) break;
        i = e + 2;
    }
    free(raw);
    *n_out = n;
    return all;
}

/* Slow reference: llama2.c's encode() loop verbatim in spirit (linear scans, O(n^2) merging),
 * looking pieces up by linear search over the public piece table (mergeable = not a byte,
 * control or unknown token, i.e. not ids 0..258 of a llama2.c vocabulary). */
static int ref_lookup(const cce_tokenizer *t, const char *s, size_t n) {
    int V = cce_tokenizer_vocab_size(t);
    for (int i = 259; i < V; i++) {
        size_t l;
        const char *p = cce_tokenizer_piece(t, i, &l);
        if (l == n && memcmp(p, s, n) == 0) return i;
    }
    return -1;
}

static size_t ref_encode(const cce_tokenizer *t, const char *text, size_t len, int *out) {
    size_t n = 0;
    if (len) out[n++] = ref_lookup(t, " ", 1);
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        while (j < len && (text[j] & 0xC0) == 0x80 && j - i < 4) j++;
        int id = ref_lookup(t, text + i, j - i);
        if (id >= 0) out[n++] = id;
        else for (size_t k = i; k < j; k++) out[n++] = (uint8_t)text[k] + 3;
        i = j;
    }
    char buf[256];
    for (;;) {
        float best = -1e30f;
        int best_id = -1;
        size_t best_i = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            size_t la, lb;
            const char *a = cce_tokenizer_piece(t, out[i], &la), *b = cce_tokenizer_piece(t, out[i + 1], &lb);
            if (out[i] < 259 || out[i + 1] < 259 || la + lb > sizeof buf) continue;
            memcpy(buf, a, la);
            memcpy(buf + la, b, lb);
            int id = ref_lookup(t, buf, la + lb);
            if (id >= 0 && cce_tokenizer_score(t, id) > best) { best = cce_tokenizer_score(t, id); best_id = id; best_i = i; }
        }
        if (best_id < 0) break;
        out[best_i] = best_id;
        memmove(out + best_i + 1, out + best_i + 2, (n - best_i - 2) * sizeof *out);
        n--;
    }
    return n;
}

static int ids_equal(const int *a, size_t na, const int *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* Encode text, compare to want[0..nw). */
#define CHECK_ENCODE(t, text, bos, ...) do { \
        int want_[] = { __VA_ARGS__ }; size_t nw_ = sizeof want_ / sizeof want_[0]; \
        int *ids_ = NULL; size_t nid_ = 0; cce_err e2_; \
        cce_status s2_ = cce_tokenizer_encode((t), (text), strlen(text), (bos), &ids_, &nid_, &e2_); \
        if (s2_) FAILF("encode(\"%s\"): %s", (text), e2_.msg); \
        int same_ = ids_equal(ids_, nid_, want_, nw_); \
        char got_[512] = ""; size_t go_ = 0; \
        for (size_t q_ = 0; q_ < nid_ && go_ + 16 < sizeof got_; q_++) go_ += (size_t)snprintf(got_ + go_, sizeof got_ - go_, " %d", ids_[q_]); \
        cce_free(ids_); \
        if (!same_) FAILF("encode(\"%s\") gave%s", (text), got_); \
    } while (0)

static cce_tokenizer *load_tok512(void) {
    cce_tokenizer *t = NULL;
    cce_err err;
    if (cce_tokenizer_load_llama2c(harness_data("llama2c/tok512.bin"), 512, &t, &err)) {
        fprintf(stderr, "tok512: %s\n", err.msg);
        return NULL;
    }
    return t;
}

/* ---- tok512 / llama2.c ---- */

TEST(tok512_reference_vector) {
    cce_tokenizer *t = load_tok512();
    CHECK(t);
    CHECK_EQ_INT(cce_tokenizer_kind(t), CCE_TOK_SP);
    CHECK_STR(cce_tokenizer_form(t), "SentencePiece-style BPE, merges by score");
    CHECK_EQ_INT(cce_tokenizer_vocab_size(t), 512);
    CHECK_EQ_INT(cce_tokenizer_bos(t), 1);
    CHECK_EQ_INT(cce_tokenizer_eos(t), 2);
    CHECK_ENCODE(t, "Once upon a time", 1, 1, 403, 407, 261, 378);
    CHECK_ENCODE(t, "Once upon a time", 0, 403, 407, 261, 378);
    int *ids; size_t n; cce_err err;
    CHECK_OK(cce_tokenizer_encode(t, "", 0, 1, &ids, &n, &err));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ids[0], 1);
    cce_free(ids);
    CHECK_OK(cce_tokenizer_encode(t, "", 0, 0, &ids, &n, &err));
    CHECK_EQ_INT(n, 0);
    cce_free(ids);
    size_t l;
    const char *p = cce_tokenizer_piece(t, 259, &l);
    CHECK(p && l == 2 && !memcmp(p, " t", 2));
    CHECK_NEAR(cce_tokenizer_score(t, 260), -1.0, 0);
    CHECK(cce_tokenizer_piece(t, 512, &l) == NULL);
    CHECK(cce_tokenizer_piece(t, -1, &l) == NULL);
    cce_tokenizer_free(t);
}

TEST(tok512_decode) {
    cce_tokenizer *t = load_tok512();
    CHECK(t);
    char buf[64];
    CHECK_EQ_INT(cce_tokenizer_decode(t, 1, 403, buf, sizeof buf), 4);
    CHECK_STR(buf, "Once");
    cce_tokenizer_decode(t, 403, 407, buf, sizeof buf);
    CHECK_STR(buf, " upon");
    cce_tokenizer_decode(t, 5, 3 + 'A', buf, sizeof buf);
    CHECK_STR(buf, "A");
    CHECK_EQ_INT(cce_tokenizer_decode(t, 5, 1, buf, sizeof buf), 0);   /* BOS prints nothing */
    CHECK_EQ_INT(cce_tokenizer_decode(t, 5, 9999, buf, sizeof buf), 0);
    CHECK_EQ_INT(cce_tokenizer_decode(t, 403, 407, buf, 3), 2);        /* truncated to cap-1 */
    CHECK_STR(buf, " u");
    /* byte fallback: a character outside the vocab round-trips through <0xXX> tokens */
    const char *text = "Tom saw a \xE2\x98\x83 and \xF0\x9F\x98\x80!";
    int *ids; size_t n; cce_err err;
    CHECK_OK(cce_tokenizer_encode(t, text, strlen(text), 1, &ids, &n, &err));
    char out[256] = "";
    size_t o = 0;
    int saw_byte = 0;
    for (size_t i = 1; i < n; i++) {
        saw_byte |= ids[i] >= 3 && ids[i] < 259;
        o += cce_tokenizer_decode(t, ids[i - 1], ids[i], out + o, sizeof out - o);
    }
    cce_free(ids);
    CHECK(saw_byte);
    CHECK_STR(out, text);
    cce_tokenizer_free(t);
}

TEST(tok512_eval_stream) {
    cce_tokenizer *t = load_tok512();
    CHECK(t);
    size_t n = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int *ids = eval_stream(t, harness_data("text/tinystories_valid_head.txt"), &n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(ids);
    printf("# tok512: %zu ids from tinystories_valid_head.txt in %.1f ms\n", n,
           (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    uint64_t h = fnv_ids(ids, n);
    free(ids);
    CHECK_EQ_INT(n, 291127);
    CHECK_MSG(h == EVAL_STREAM_FNV, "FNV-1a-64 %016llx, expected %016llx", (unsigned long long)h, EVAL_STREAM_FNV);
    cce_tokenizer_free(t);
}

/* The fast encoder equals the O(n^2) llama2.c loop, on real text and on random byte soup. */
TEST(tok512_matches_reference_loop) {
    cce_tokenizer *t = load_tok512();
    CHECK(t);
    size_t len;
    char *text = slurp(harness_data("text/tinystories_valid_head.txt"), &len);
    CHECK(text);
    int *want = malloc(4096 * sizeof *want);
    uint64_t seed = 12345;
    const char *alphabet[] = { "a", "b", "e", " ", "  ", "\n", "th", "he", "\xC3\xA9", "\xE2\x98\x83", "\x80", "\xFF", "!", "'s", "\xF0\x9F\x98\x80" };
    for (int trial = 0; trial < 300; trial++) {
        char buf[1024];
        size_t n = 0;
        if (trial < 150) {   /* a slice of real text */
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(seed >> 20) % (len - 600), L = 1 + (size_t)(seed >> 50) % 500;
            memcpy(buf, text + at, L);
            n = L;
        } else {             /* random pieces, including invalid UTF-8 */
            int k = 1 + trial % 40;
            for (int q = 0; q < k; q++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                const char *a = alphabet[(seed >> 33) % (sizeof alphabet / sizeof *alphabet)];
                memcpy(buf + n, a, strlen(a));
                n += strlen(a);
            }
        }
        size_t nw = ref_encode(t, buf, n, want);
        int *ids; size_t m; cce_err err;
        CHECK_OK(cce_tokenizer_encode(t, buf, n, 0, &ids, &m, &err));
        int same = ids_equal(ids, m, want, nw);
        cce_free(ids);
        CHECK_MSG(same, "trial %d: fast encoder differs from the reference loop (%zu vs %zu ids)", trial, m, nw);
    }
    free(want);
    free(text);
    cce_tokenizer_free(t);
}

TEST(llama2_32k) {
    const char *path = harness_data("llama2c/tokenizer.bin");
    cce_tokenizer *t = NULL;
    cce_err err;
    CHECK_MSG(!cce_tokenizer_load_llama2c(path, 32000, &t, &err), "%s", err.msg);
    CHECK_EQ_INT(cce_tokenizer_vocab_size(t), 32000);
    CHECK_ENCODE(t, "Once upon a time", 1, 1, 9038, 2501, 263, 931);
    const char *texts[] = { "Once upon a time", "Hello, world! Привет, мир. 日本語のテキスト \xF0\x9F\xA6\x99 end.",
                            "  two  spaces\tand a tab\nnew line" };
    for (int k = 0; k < 3; k++) {
        int *ids; size_t n;
        CHECK_OK(cce_tokenizer_encode(t, texts[k], strlen(texts[k]), 1, &ids, &n, &err));
        char out[512] = "";
        size_t o = 0;
        for (size_t i = 1; i < n; i++) o += cce_tokenizer_decode(t, ids[i - 1], ids[i], out + o, sizeof out - o);
        cce_free(ids);
        CHECK_MSG(!strcmp(out, texts[k]), "round trip of \"%s\" gave \"%s\"", texts[k], out);
    }
    cce_tokenizer_free(t);
}

/* ---- GGUF-style arrays (U+2581 pieces, token types) ---- */

static cce_tokenizer *build_from_tok512(const cce_tokenizer *src, int with_types) {
    int n = cce_tokenizer_vocab_size(src);
    char **pieces = calloc((size_t)n, sizeof *pieces);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    for (int i = 0; i < n; i++) {
        size_t l;
        const char *p = cce_tokenizer_piece(src, i, &l);
        char *q = malloc(3 * l + 8);
        size_t o = 0;
        if (i >= 3 && i < 259) o = (size_t)sprintf(q, "<0x%02X>", (uint8_t)p[0]);
        else for (size_t k = 0; k < l; k++) {
            if (p[k] == ' ' && i >= 3) { memcpy(q + o, "\xE2\x96\x81", 3); o += 3; }
            else q[o++] = p[k];
        }
        pieces[i] = q;
        lens[i] = o;
        scores[i] = cce_tokenizer_score(src, i);
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    cce_tokenizer *t = NULL;
    cce_err err;
    if (cce_tokenizer_build_sp(n, (const char *const *)pieces, lens, scores, with_types ? types : NULL,
                               1, 2, 0, "test", &t, &err))
        fprintf(stderr, "build_sp: %s\n", err.msg);
    for (int i = 0; i < n; i++) free(pieces[i]);
    free(pieces); free(lens); free(scores); free(types);
    return t;
}

TEST(build_sp_matches_llama2c) {
    cce_tokenizer *src = load_tok512();
    CHECK(src);
    for (int with_types = 0; with_types < 2; with_types++) {
        cce_tokenizer *t = build_from_tok512(src, with_types);
        CHECK(t);
        size_t l;
        const char *p = cce_tokenizer_piece(t, 259, &l);
        CHECK(l == 2 && !memcmp(p, " t", 2));        /* U+2581 became a space */
        p = cce_tokenizer_piece(t, 3 + 0x41, &l);
        CHECK(l == 1 && p[0] == 'A');                /* <0x41> became its byte */
        CHECK_ENCODE(t, "Once upon a time", 1, 1, 403, 407, 261, 378);
        size_t n;
        int *ids = eval_stream(t, harness_data("text/tinystories_valid_head.txt"), &n);
        CHECK(ids);
        uint64_t h = fnv_ids(ids, n);
        free(ids);
        CHECK_EQ_INT(n, 291127);
        CHECK(h == EVAL_STREAM_FNV);
        cce_tokenizer_free(t);
    }
    cce_tokenizer_free(src);
}

TEST(build_sp_rejects) {
    const char *pieces[4] = { "<unk>", "<s>", "a", "<0x41>" };
    size_t lens[4] = { 5, 3, 1, 6 };
    float scores[4] = { 0, 0, -1, 0 };
    int32_t types[4] = { 2, 3, 1, 6 };
    cce_tokenizer *t = NULL;
    cce_err err;
    CHECK_OK(cce_tokenizer_build_sp(4, pieces, lens, scores, types, 1, -1, 0, "ok", &t, &err));
    cce_tokenizer_free(t);
    t = NULL;
    scores[2] = NAN;
    CHECK_EQ_INT(cce_tokenizer_build_sp(4, pieces, lens, scores, types, 1, -1, 0, "g.gguf", &t, &err), CCE_EFORMAT);
    CHECK(strstr(err.msg, "g.gguf") && strstr(err.msg, "token 2"));
    scores[2] = -1;
    types[2] = 9;
    CHECK_EQ_INT(cce_tokenizer_build_sp(4, pieces, lens, scores, types, 1, -1, 0, "g.gguf", &t, &err), CCE_EFORMAT);
    CHECK(strstr(err.msg, "token_type 9"));
    types[2] = -1;
    CHECK_EQ_INT(cce_tokenizer_build_sp(4, pieces, lens, scores, types, 1, -1, 0, "g.gguf", &t, &err), CCE_EFORMAT);
    types[2] = 6;   /* byte type on a piece that is not <0xXX> */
    CHECK_EQ_INT(cce_tokenizer_build_sp(4, pieces, lens, scores, types, 1, -1, 0, "g.gguf", &t, &err), CCE_EFORMAT);
    types[2] = 1;
    CHECK_EQ_INT(cce_tokenizer_build_sp(4, pieces, lens, scores, types, 7, -1, 0, "g.gguf", &t, &err), CCE_EFORMAT);
    CHECK_EQ_INT(cce_tokenizer_build_sp(0, pieces, lens, scores, types, -1, -1, -1, "g.gguf", &t, &err), CCE_EFORMAT);
    CHECK(t == NULL);
}

/* ---- tokenizer.json, SentencePiece-style ---- */

TEST(hf_sp_roundtrip_tok512) {
    cce_tokenizer *src = load_tok512();
    CHECK(src);
    cce_err err;
    const char *p1 = tmp_path("tok512.json"), *p2 = tmp_path("tok512-again.json");
    CHECK_MSG(!cce_tokenizer_save_hf(src, p1, &err), "%s", err.msg);
    cce_tokenizer *t = NULL;
    CHECK_MSG(!cce_tokenizer_load_hf(p1, &t, &err), "%s", err.msg);
    CHECK_EQ_INT(cce_tokenizer_kind(t), CCE_TOK_SP);
    CHECK_STR(cce_tokenizer_form(t), "SentencePiece-style BPE, Llama-2 normalizer");
    CHECK_EQ_INT(cce_tokenizer_vocab_size(t), 512);
    CHECK_EQ_INT(cce_tokenizer_bos(t), 1);
    CHECK_EQ_INT(cce_tokenizer_eos(t), 2);
    size_t l;
    const char *p = cce_tokenizer_piece(t, 259, &l);
    CHECK(l == 2 && !memcmp(p, " t", 2));
    CHECK_ENCODE(t, "Once upon a time", 1, 1, 403, 407, 261, 378);
    char buf[32];
    cce_tokenizer_decode(t, 1, 403, buf, sizeof buf);
    CHECK_STR(buf, "Once");
    /* added tokens are split out before BPE, and each stretch gets its own U+2581 prefix
     * (ids from Hugging Face tokenizers.js 0.2.0 on the same file); llama2.c does not split */
    CHECK_ENCODE(t, "Hi<s>there </s> x<unk>y", 1, 1, 320, 417, 1, 383, 410, 2, 410, 410, 444, 0, 348);
    CHECK_ENCODE(t, " a <s> b", 1, 1, 410, 261, 410, 1, 410, 268);
    CHECK_ENCODE(src, "<s>", 0, 410, 504, 419, 505);
    size_t n;
    int *ids = eval_stream(t, harness_data("text/tinystories_valid_head.txt"), &n);
    CHECK(ids);
    uint64_t h = fnv_ids(ids, n);
    free(ids);
    CHECK_EQ_INT(n, 291127);
    CHECK_MSG(h == EVAL_STREAM_FNV, "FNV-1a-64 %016llx after tokenizer.json round trip", (unsigned long long)h);
    /* saving the loaded one again gives the same file */
    CHECK_MSG(!cce_tokenizer_save_hf(t, p2, &err), "%s", err.msg);
    size_t l1, l2;
    char *a = slurp(p1, &l1), *b = slurp(p2, &l2);
    CHECK(a && b);
    int same = l1 == l2 && !memcmp(a, b, l1);
    free(a); free(b);
    CHECK_MSG(same, "second save differs (%zu vs %zu bytes)", l1, l2);
    cce_tokenizer_free(t);
    cce_tokenizer_free(src);
}

TEST(hf_sp_roundtrip_llama2_32k) {
    cce_tokenizer *src = NULL, *t = NULL;
    cce_err err;
    CHECK_MSG(!cce_tokenizer_load_llama2c(harness_data("llama2c/tokenizer.bin"), 32000, &src, &err), "%s", err.msg);
    const char *path = tmp_path("llama2.json");
    CHECK_MSG(!cce_tokenizer_save_hf(src, path, &err), "%s", err.msg);
    CHECK_MSG(!cce_tokenizer_load_hf(path, &t, &err), "%s", err.msg);
    CHECK_ENCODE(t, "Once upon a time", 1, 1, 9038, 2501, 263, 931);
    size_t len;
    char *text = slurp(harness_data("text/tinystories_valid_head.txt"), &len);
    CHECK(text);
    size_t chunk = len < 60000 ? len : 60000;
    int *a, *b; size_t na, nb;
    CHECK_OK(cce_tokenizer_encode(src, text, chunk, 1, &a, &na, &err));
    CHECK_OK(cce_tokenizer_encode(t, text, chunk, 1, &b, &nb, &err));
    int same = ids_equal(a, na, b, nb);
    cce_free(a); cce_free(b);
    free(text);
    CHECK_MSG(same, "32k vocab: %zu vs %zu ids after tokenizer.json round trip", na, nb);
    cce_tokenizer_free(t);
    cce_tokenizer_free(src);
}


/* tok512 as a newer-style Llama tokenizer.json: no normalizer, a Metaspace pre-tokenizer. The
 * prefix is added only when the text does not start with a space, and with prepend_scheme
 * "first" not after an added token. Expected ids from Hugging Face tokenizers.js 0.2.0. */
static const char *write_metaspace_json(const char *src, const char *scheme, int split, const char *name) {
    size_t len;
    char *text = slurp(src, &len);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) return NULL;
    cJSON_ReplaceItemInObject(j, "normalizer", cJSON_CreateNull());
    cJSON *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Metaspace");
    cJSON_AddStringToObject(pre, "replacement", "\xE2\x96\x81");
    cJSON_AddStringToObject(pre, "prepend_scheme", scheme);
    cJSON_AddBoolToObject(pre, "split", split);
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", pre);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    const char *path = tmp_path(name);
    int rc = out ? write_bytes(path, out, strlen(out)) : -1;
    free(out);
    return rc ? NULL : path;
}

static void check_metaspace(const cce_tokenizer *t, int first) {
    if (first) {
        CHECK_ENCODE(t, "Hi<s>there </s> x<unk>y", 1, 1, 320, 417, 1, 413, 260, 276, 410, 2, 410, 444, 0, 422);
    } else {
        CHECK_ENCODE(t, "Hi<s>there </s> x<unk>y", 1, 1, 320, 417, 1, 383, 410, 2, 410, 444, 0, 348);
    }
    CHECK_ENCODE(t, " a <s> b", 1, 1, 261, 410, 1, 268);
    CHECK_ENCODE(t, "Once upon a  time", 1, 1, 403, 407, 261, 410, 378);
}

TEST(hf_metaspace_variants) {
    cce_tokenizer *src = load_tok512(), *t = NULL;
    CHECK(src);
    cce_err err;
    const char *base = tmp_path("tok512-base.json");
    CHECK_MSG(!cce_tokenizer_save_hf(src, base, &err), "%s", err.msg);
    cce_tokenizer_free(src);
    for (int v = 0; v < 2; v++) {
        const char *p = write_metaspace_json(base, v ? "always" : "first", !v, v ? "meta-always.json" : "meta-first.json");
        CHECK(p);
        CHECK_MSG(!cce_tokenizer_load_hf(p, &t, &err), "%s", err.msg);
        check_metaspace(t, !v);
        if (harness_cur_failed) break;
        /* written back, the Metaspace form survives */
        const char *p2 = tmp_path("meta-saved.json");
        CHECK_MSG(!cce_tokenizer_save_hf(t, p2, &err), "%s", err.msg);
        cce_tokenizer_free(t);
        t = NULL;
        CHECK_MSG(!cce_tokenizer_load_hf(p2, &t, &err), "%s", err.msg);
        check_metaspace(t, !v);
        cce_tokenizer_free(t);
        t = NULL;
    }
    cce_tokenizer_free(t);
}


/* Without byte fallback, characters outside the vocab become <unk>, fused when fuse_unk is set
 * (ids from Hugging Face tokenizers.js 0.2.0 on the same files). */
TEST(hf_unk_without_byte_fallback) {
    cce_tokenizer *src = load_tok512(), *t = NULL;
    CHECK(src);
    cce_err err;
    const char *base = tmp_path("tok512-unk.json");
    CHECK_MSG(!cce_tokenizer_save_hf(src, base, &err), "%s", err.msg);
    cce_tokenizer_free(src);
    size_t len;
    char *text = slurp(base, &len);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(j);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    cJSON_ReplaceItemInObject(model, "byte_fallback", cJSON_CreateFalse());
    for (int fuse = 1; fuse >= 0; fuse--) {
        cJSON_ReplaceItemInObject(model, "fuse_unk", cJSON_CreateBool(fuse));
        char *out = cJSON_PrintUnformatted(j);
        const char *p = tmp_path(fuse ? "unk-fuse.json" : "unk-nofuse.json");
        int rc = out ? write_bytes(p, out, strlen(out)) : -1;
        free(out);
        CHECK(rc == 0);
        CHECK_MSG(!cce_tokenizer_load_hf(p, &t, &err), "%s", err.msg);
        const char *snow = "Tom saw \xE2\x98\x83\xE2\x98\x83 and \xE6\x97\xA5\xE6\x9C\xAC!";
        if (fuse) { CHECK_ENCODE(t, snow, 1, 1, 274, 287, 394, 410, 0, 269, 410, 0, 443); }
        else { CHECK_ENCODE(t, snow, 1, 1, 274, 287, 394, 410, 0, 0, 269, 410, 0, 0, 443); }
        cce_tokenizer_free(t);
        t = NULL;
    }
    cJSON_Delete(j);
}

/* ---- Unicode classes (tokenizer_ucd.c) ---- */

/* A sample of classifications, each stated from the Unicode 16.0 character database: letters of
 * several kinds (Ll, Lo, Lm; CJK, kana, Devanagari, Thai), marks (letters' vowel signs are Mc/Mn:
 * not L, but \w), numbers of all three kinds (Nd, Nl, No), the White_Space set's edges (NBSP and
 * U+3000 are, U+200B/U+FEFF/U+180E are not), symbols, unassigned and private-use codepoints, and
 * codepoints new in Unicode 15 and 16 (U+1E030, U+11F50; U+1C89, U+10D40). */
TEST(unicode_classes) {
    enum { L = TOK_UCD_L, N = TOK_UCD_N, S = TOK_UCD_S, W = TOK_UCD_W };
    static const struct { int32_t cp; unsigned want; } v[] = {
        { 'a', L | W }, { 'Z', L | W }, { '7', N | W }, { '_', W }, { ' ', S }, { '\t', S }, { '\r', S },
        { '!', 0 }, { '\'', 0 }, { 0x7F, 0 }, { 0x00, 0 },
        { 0xE9, L | W },      /* é  Ll */
        { 0xDF, L | W },      /* ß  Ll */
        { 0xAA, L | W },      /* ª  Lo */
        { 0xB5, L | W },      /* µ  Ll */
        { 0xD7, 0 },          /* ×  Sm */
        { 0x301, W },         /* combining acute: Mn, not a letter */
        { 0x4E2D, L | W },    /* 中 Lo */
        { 0x3042, L | W },    /* あ Lo */
        { 0x30FC, L | W },    /* ー Lm */
        { 0x939, L | W },     /* ह  Devanagari HA, Lo */
        { 0x93E, W },         /* ा  Devanagari vowel sign AA, Mc */
        { 0xE01, L | W },     /* ก  Thai KO KAI, Lo */
        { 0xE31, W },         /* ั  Thai MAI HAN-AKAT, Mn */
        { 0x212A, L | W },    /* K  Kelvin sign, Lu */
        { 0x2118, 0 },        /* ℘  Sm */
        { 0x24B6, W },        /* Ⓐ  So, but Other_Alphabetic */
        { 0x660, N | W },     /* ٠  Arabic-Indic zero, Nd */
        { 0xFF11, N | W },    /* １ fullwidth one, Nd */
        { 0x1D7CE, N | W },   /* 𝟎 mathematical bold zero, Nd */
        { 0x2160, N | W },    /* Ⅰ  Roman numeral one, Nl (and Alphabetic) */
        { 0xBD, N },          /* ½  No */
        { 0xB2, N },          /* ²  No */
        { 0x2070, N },        /* ⁰  No */
        { 0x2460, N },        /* ①  No */
        { 0xF33, N },         /* Tibetan half zero, No */
        { 0xA0, S }, { 0x85, S }, { 0x1680, S }, { 0x2028, S }, { 0x3000, S },
        { 0x200B, 0 },        /* zero width space: Cf, not White_Space */
        { 0xFEFF, 0 },        /* BOM: Cf */
        { 0x180E, 0 },        /* Mongolian vowel separator: Cf since Unicode 6.3 */
        { 0x200D, W },        /* ZWJ: Join_Control */
        { 0x203F, W },        /* ‿  Pc */
        { 0x1F600, 0 },       /* emoji, So */
        { 0xE000, 0 }, { 0x378, 0 }, { 0x10FFFF, 0 }, { 0x110000, 0 }, { -1, 0 },
        { 0x1E030, L | W },   /* Cyrillic modifier letter, Lm, new in 15.0 */
        { 0x11F50, N | W },   /* Kawi digit zero, Nd, new in 15.0 */
        { 0x1C89, L | W },    /* Cyrillic capital TJE, Lu, new in 16.0 */
        { 0x10D40, N | W },   /* Garay digit zero, Nd, new in 16.0 */
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
        CHECK_MSG(tok_ucd_flags(v[k].cp) == v[k].want, "U+%04X: flags %u, expected %u",
                  (unsigned)v[k].cp, tok_ucd_flags(v[k].cp), v[k].want);
    /* whole-table facts: White_Space has exactly 25 codepoints; \p{N} has 1,911 (Unicode 16.0) */
    int ns = 0, nn = 0;
    for (int32_t c = 0; c <= 0x10FFFF; c++) {
        unsigned f = tok_ucd_flags(c);
        ns += !!(f & S);
        nn += !!(f & N);
        if ((f & L) && (f & (N | S))) FAILF("U+%04X is a letter and a number or space", (unsigned)c);
    }
    CHECK_EQ_INT(ns, 25);
    CHECK_EQ_INT(nn, 1911);
}

/* ---- tokenizer.json, GPT-2 byte-level, worked by hand ---- */

static void utf8_put(char **o, unsigned cp) {
    char *p = *o;
    if (cp < 0x80) *p++ = (char)cp;
    else { *p++ = (char)(0xC0 | (cp >> 6)); *p++ = (char)(0x80 | (cp & 0x3F)); }
    *o = p;
}

/* GPT-2 bytes_to_unicode, written out independently for the test. */
static unsigned b2u(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (unsigned)b;
    int k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) k++;
    return 256u + (unsigned)k;
}

/* Vocab: byte b has id b (as its bytes_to_unicode character); then merges (rank order):
 *   0 "Ġ t"->256 "Ġt"   1 "h e"->257 "he"   2 "Ġt he"->258 "Ġthe"   3 "t h"->259 "th"
 *   4 "c a"->260 "ca"   5 "ca t"->261 "cat" 6 "Ġ cat"->262 "Ġcat"   7 "c 1"->264 "c1"
 *   8 "e Ġ"->265 "eĠ"   9 "Ã ©"->266 "é"
 * and <|endoftext|> = 263 (special). Merges 7 and 8 would fire only if pre-tokenisation were
 * wrong (they cross word boundaries). */
static const char *write_bytelevel_json(void) {
    const char *path = tmp_path("gpt2.json");
    char *buf = malloc(65536), *o = buf;
    o += sprintf(o, "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":263,\"content\":\"<|endoftext|>\",\"special\":true}],"
                    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true},"
                    "\"post_processor\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},"
                    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"vocab\":{");
    for (int b = 0; b < 256; b++) {
        *o++ = '"';
        unsigned cp = b2u(b);
        if (cp == '"' || cp == '\\') *o++ = '\\';
        utf8_put(&o, cp);
        o += sprintf(o, "\":%d,", b);
    }
    o += sprintf(o, "\"\xC4\xA0t\":256,\"he\":257,\"\xC4\xA0the\":258,\"th\":259,\"ca\":260,\"cat\":261,"
                    "\"\xC4\xA0" "cat\":262,\"<|endoftext|>\":263,\"c1\":264,\"e\xC4\xA0\":265,\"\xC3\x83\xC2\xA9\":266},"
                    "\"merges\":[\"\xC4\xA0 t\",\"h e\",\"\xC4\xA0t he\",\"t h\",\"c a\",\"ca t\",\"\xC4\xA0 cat\",\"c 1\","
                    "[\"e\",\"\xC4\xA0\"],\"\xC3\x83 \xC2\xA9\"]}}");
    int rc = write_bytes(path, buf, (size_t)(o - buf));
    free(buf);
    return rc ? NULL : path;
}

static void check_bytelevel(cce_tokenizer *t) {
    CHECK_EQ_INT(cce_tokenizer_kind(t), CCE_TOK_BYTELEVEL);
    CHECK_EQ_INT(cce_tokenizer_vocab_size(t), 267);
    CHECK_EQ_INT(cce_tokenizer_bos(t), -1);
    CHECK_EQ_INT(cce_tokenizer_eos(t), 263);
    size_t l;
    const char *p = cce_tokenizer_piece(t, 258, &l);
    CHECK(l == 4 && !memcmp(p, " the", 4));
    CHECK_ENCODE(t, "the cat", 1, 116, 257, 262);        /* t|he  Ġcat; add_bos adds nothing */
    CHECK_ENCODE(t, " the", 0, 258);                      /* Ġt, he, Ġthe */
    CHECK_ENCODE(t, "it's  ok\n", 0, 105, 116, 39, 115, 32, 32, 111, 107, 10);
    CHECK_ENCODE(t, "abc123!!", 0, 97, 98, 99, 49, 50, 51, 33, 33);
    CHECK_ENCODE(t, "the  the", 0, 116, 257, 32, 258);   /* \s+(?!\S) leaves one space to the word */
    CHECK_ENCODE(t, "caf\xC3\xA9 c1", 0, 260, 102, 266, 32, 99, 49);
    CHECK_ENCODE(t, "they'll", 0, 116, 257, 121, 39, 108, 108);
    CHECK_ENCODE(t, "x   ", 0, 120, 32, 32, 32);
    CHECK_ENCODE(t, "the<|endoftext|> the<|endoftext|><|endoftext|>", 0, 116, 257, 263, 258, 263, 263);
    const char *text = "the cat's 99 \xE2\x98\x83 caf\xC3\xA9\n\n  end";
    int *ids; size_t n; cce_err err;
    CHECK_OK(cce_tokenizer_encode(t, text, strlen(text), 0, &ids, &n, &err));
    char out[128] = "";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) o += cce_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], out + o, sizeof out - o);
    cce_free(ids);
    CHECK_STR(out, text);
}

TEST(hf_bytelevel_by_hand) {
    const char *path = write_bytelevel_json();
    CHECK(path);
    cce_tokenizer *t = NULL;
    cce_err err;
    CHECK_MSG(!cce_tokenizer_load_hf(path, &t, &err), "%s", err.msg);
    check_bytelevel(t);
    if (harness_cur_failed) { cce_tokenizer_free(t); return; }
    const char *p2 = tmp_path("gpt2-saved.json");
    CHECK_MSG(!cce_tokenizer_save_hf(t, p2, &err), "%s", err.msg);
    cce_tokenizer_free(t);
    t = NULL;
    CHECK_MSG(!cce_tokenizer_load_hf(p2, &t, &err), "%s", err.msg);
    check_bytelevel(t);
    cce_tokenizer_free(t);
}

/* A byte-level tokenizer.json whose merges are all 65,536 byte pairs in a fixed pseudo-random
 * order: inside a pre-token every adjacent pair can merge, in a rank-dependent pattern, so the
 * ids expose every pre-token boundary the GPT-2 regex draws. */
static const char *write_pairs_json_pre(const char *pre_tokenizer, const char *name) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    static int perm[65536];
    for (int i = 0; i < 65536; i++) perm[i] = i;
    uint64_t x = 7;
    for (int i = 65535; i > 0; i--) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int j = (int)(x % (uint64_t)(i + 1)), tmp = perm[i];
        perm[i] = perm[j]; perm[j] = tmp;
    }
    char ch[256][4];   /* bytes_to_unicode of each byte, JSON-escaped, UTF-8 */
    for (int b = 0; b < 256; b++) {
        char *o = ch[b];
        unsigned cp = b2u(b);
        if (cp == '"' || cp == '\\') *o++ = '\\';
        utf8_put(&o, cp);
        *o = 0;
    }
    fprintf(f, "{\"normalizer\":null,\"decoder\":{\"type\":\"ByteLevel\"},\"post_processor\":null,"
               "\"pre_tokenizer\":%s,", pre_tokenizer);
    fprintf(f, "\"added_tokens\":[{\"id\":65792,\"content\":\"<|endoftext|>\",\"special\":true}],"
               "\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int b = 0; b < 256; b++) fprintf(f, "\"%s\":%d,", ch[b], b);
    for (int i = 0; i < 65536; i++) fprintf(f, "\"%s%s\":%d,", ch[perm[i] >> 8], ch[perm[i] & 255], 256 + i);
    fprintf(f, "\"<|endoftext|>\":65792},\"merges\":[");
    for (int i = 0; i < 65536; i++) fprintf(f, "%s\"%s %s\"", i ? "," : "", ch[perm[i] >> 8], ch[perm[i] & 255]);
    fprintf(f, "]}}");
    return fclose(f) == 0 ? path : NULL;
}

static const char *write_pairs_json(void) {
    return write_pairs_json_pre("{\"type\":\"ByteLevel\",\"add_prefix_space\":false}", "pairs.json");
}

/* Lines (each ending in a newline) and the ids Hugging Face tokenizers.js 0.2.0 gives for them
 * with the write_pairs_json() tokenizer: an independent implementation of the GPT-2 regex. */
static const struct { const char *text; int n; int ids[64]; } pairs_ref[] = {
    { "Hello, world! It's 2024; they'll see   spaces\tand\ttabs.\n", 37,
      { 72, 5674, 18289, 44, 43320, 23425, 20698, 33, 37892, 116, 55699, 11266, 39276, 52, 59, 32, 4836, 313, 39, 14732, 32, 21334, 101, 32610, 32, 2374, 97, 38243, 115, 9, 97, 31632, 9, 59106, 15604, 46, 10 } },
    { "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xe2\x80\x9cquotes\xe2\x80\x9d \xe2\x80\x98x\xe2\x80\x99 \xe2\x80\xa6 \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c \xd9\xa1\xd9\xa2\xd9\xa3 \xc2\xbd \xc2\xb2\xc2\xb3 \xe2\x85\xab \xe2\x91\xa0 \xf0\x9f\x99\x82\xf0\x9f\x99\x82 x\xf0\x9f\x99\x82y\n", 58,
      { 7982, 46744, 37099, 10334, 97, 38026, 169, 26268, 2328, 32, 15830, 156, 28614, 111, 7085, 115, 15830, 157, 26268, 14871, 120, 15830, 153, 32, 15830, 166, 32, 24499, 12076, 165, 19666, 1689, 7664, 140, 24624, 161, 8317, 19267, 11116, 189, 11116, 178, 26432, 26268, 19485, 26268, 12968, 62241, 1571, 18177, 1571, 130, 38744, 240, 1571, 130, 121, 10 } },
    { "  leading and trailing   \n", 15,
      { 32, 2914, 31647, 14576, 64562, 10846, 31632, 32, 15845, 97, 11528, 31831, 103, 32610, 42026 } },
    { "a\xc2\xa0""b\xe2\x80\x89""c\xe3\x80\x80""d\n", 10,
      { 97, 38934, 98, 15830, 137, 99, 3048, 128, 100, 10 } },
    { "it's IT'S 'S 're 've 'm 'll 'd '' 'x\n", 23,
      { 27620, 55699, 32, 34135, 39, 83, 31256, 83, 31256, 45310, 31256, 37099, 31256, 109, 31256, 14732, 31256, 100, 31256, 39, 31256, 120, 10 } },
    { "\xef\xac\x81 \xc7\x85 \xc3\x9f \xce\xa3\xcf\x83\xcf\x82 \xc7\x88 \xca\xb0 \xcb\x86 \xe2\x97\x8c\xcc\x80 \xc3\xa9 e\xcc\x81\n", 25,
      { 38176, 129, 32, 15020, 39253, 159, 5165, 5532, 14535, 130, 30245, 136, 4827, 176, 5723, 134, 32, 6800, 140, 6052, 39253, 169, 16628, 27188, 10 } },
    { "123abc!!!???..., 4.5e10 $100 #tag @user\n", 25,
      { 20837, 51, 97, 1276, 29235, 33, 23567, 9177, 46, 7561, 33051, 46, 53, 101, 15015, 1288, 15015, 48, 10268, 116, 26011, 2721, 12112, 2999, 10 } },
    { "\xe2\x80\x8b zero width \xef\xbb\xbf bom\n", 13,
      { 15830, 139, 22704, 2999, 111, 43320, 20274, 4836, 59829, 28872, 31601, 40848, 10 } },
    { "\xce\xa9mega \xc2\xb5 \xc2\xaa \xc2\xba \xc2\xb9 \xc2\xbc\n", 15,
      { 206, 5266, 466, 97, 11116, 181, 11116, 170, 11116, 186, 11116, 185, 11116, 188, 10 } },
    { "tab\t\tend\t\n", 7,
      { 116, 27377, 9, 9, 22462, 100, 18906 } },
    { "a<|endoftext|> b<|endoftext|><|endoftext|>c\n", 7,
      { 97, 65792, 31601, 65792, 65792, 99, 10 } },
    { "<|endoftext|>\n", 2,
      { 65792, 10 } },
    { "x <|endoftext|> y\n", 5,
      { 120, 32, 65792, 32551, 10 } },
    { "'LL\xd9\x8b\xe2\x98\x83\\n\xe2\x84\x83\n", 10,
      { 39, 55408, 217, 3470, 11344, 92, 110, 226, 42965, 10 } },
    { "\xe2\x80\xa2\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88\xe2\x80\xa6\xe2\x99\xaa\xc3\x97\n", 22,
      { 15830, 162, 195, 1146, 151, 30719, 5435, 25929, 11886, 129, 44646, 13388, 38657, 19467, 130, 16938, 22297, 15830, 28834, 7256, 61796, 10 } },
    { "\xc3\xb7\xe2\x80\xa6\xc3\x9f""abcXYZ\n", 9,
      { 16387, 15830, 166, 195, 24933, 1276, 88, 23298, 10 } },
    { "\\n\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7\xc3\x9f\xc2\xab\xc2\xbb\n", 12,
      { 92, 110, 17723, 29227, 216, 48536, 34744, 18358, 159, 44204, 61456, 10 } },
    { "\xd0\xb0\xd0\xb1\xd0\xb2\xd0\x96\xd0\xaf\xe2\x80\xa2\xc2\xa0\xc2\xbd\xc2\xbc\xc3\x9f\xe2\x80\x93\n", 15,
      { 1382, 32206, 19478, 22765, 49271, 15830, 162, 38934, 194, 25867, 188, 46889, 15830, 147, 10 } },
    { "0123456789\xe2\x82\xac\xe2\x98\x83\xe2\x88\x9a\n", 12,
      { 48, 20837, 38726, 53, 23701, 21235, 11129, 59662, 11344, 226, 23302, 10 } },
    { "\xe2\x84\x95\xe2\x84\x93 \xe2\x84\xaa \xe2\x84\x83 \xe2\x84\x96 x\n", 12,
      { 226, 26045, 226, 10709, 26268, 31699, 26268, 42965, 26268, 17375, 38744, 10 } },
};

TEST(hf_bytelevel_matches_tokenizers_js) {
    const char *path = write_pairs_json();
    CHECK(path);
    cce_tokenizer *t = NULL;
    cce_err err;
    CHECK_MSG(!cce_tokenizer_load_hf(path, &t, &err), "%s", err.msg);
    CHECK_EQ_INT(cce_tokenizer_vocab_size(t), 65793);
    for (size_t k = 0; k < sizeof pairs_ref / sizeof pairs_ref[0]; k++) {
        int *ids; size_t n;
        const char *text = pairs_ref[k].text;
        CHECK_OK(cce_tokenizer_encode(t, text, strlen(text), 1, &ids, &n, &err));
        int same = ids_equal(ids, n, pairs_ref[k].ids, (size_t)pairs_ref[k].n);
        char out[512] = "";
        size_t o = 0;
        for (size_t i = 0; i < n; i++) o += cce_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], out + o, sizeof out - o);
        cce_free(ids);
        CHECK_MSG(same, "line %zu: ids differ from tokenizers.js (%zu vs %d ids)", k, n, pairs_ref[k].n);
        /* control tokens decode to nothing, so only lines without them round-trip */
        CHECK_MSG(strstr(text, "<|") || !strcmp(out, text), "line %zu: decode gave \"%s\"", k, out);
    }
    cce_tokenizer_free(t);
}


/* Llama-3 and Qwen2 Split regexes (then ByteLevel without its regex) and SmolLM's Digits
 * pre-tokenizer, on the pairs vocabulary; ids from tokenizers.js 0.2.0 (which agrees with the
 * Rust library on ASCII digits; for other numerals we follow Rust's char::is_numeric). */
#define SPLIT_L3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define SPLIT_Q2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define BL_NORX "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}"
static const char *const split_text = "I'M HERE 'Re 'LL they're 12345 678901\r\n\r\n  \n\tx\n \n?!\r\nfoo...bar  baz\n\n\n12 a1b2c3 x\n";
static const struct { const char *name, *pre; int n; int ids[64]; } split_ref[] = {
    { "llama3.json", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" SPLIT_L3 "\"},"
      "\"behavior\":\"Isolated\",\"invert\":false}," BL_NORX "]}", 52,
      { 73, 28069, 62093, 69, 1802, 31256, 50963, 31256, 55408, 32, 4836, 313, 9020, 101, 32, 20837, 51, 45207, 32, 23701,
        56, 57, 25722, 10335, 13, 2329, 42026, 30804, 2329, 10, 60494, 10335, 42015, 111, 41966, 46, 98, 19387, 32, 31601,
        12754, 55794, 10, 20837, 10846, 49, 98, 50, 99, 51, 38744, 10 } },
    { "qwen2.json", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" SPLIT_Q2 "\"},"
      "\"behavior\":\"Isolated\",\"invert\":false}," BL_NORX "]}", 57,
      { 73, 28069, 62093, 69, 1802, 31256, 50963, 31256, 55408, 32, 4836, 313, 9020, 101, 32, 49, 50, 51, 52, 53, 32, 54,
        55, 56, 57, 48, 49, 10335, 13, 2329, 42026, 30804, 2329, 10, 60494, 10335, 42015, 111, 41966, 46, 98, 19387, 32,
        31601, 12754, 55794, 10, 49, 50, 10846, 49, 98, 50, 99, 51, 38744, 10 } },
    { "smol.json", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
      "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}]}", 60,
      { 73, 39, 77, 62093, 69, 1802, 31256, 50963, 31256, 55408, 32, 4836, 313, 9020, 101, 32, 49, 50, 51, 52, 53, 32, 54,
        55, 56, 57, 48, 49, 10335, 13, 2329, 42026, 9, 120, 2329, 10, 60494, 13, 10, 42015, 111, 41966, 46, 98, 19387, 32,
        31601, 12754, 55794, 10, 49, 50, 10846, 49, 98, 50, 99, 51, 38744, 10 } },
};

TEST(hf_split_and_digits_pretokenizers) {
    for (size_t k = 0; k < sizeof split_ref / sizeof split_ref[0]; k++) {
        const char *path = write_pairs_json_pre(split_ref[k].pre, split_ref[k].name);
        CHECK(path);
        for (int again = 0; again < 2; again++) {   /* as written, then after save_hf + load_hf */
            cce_tokenizer *t = NULL;
            cce_err err;
            CHECK_MSG(!cce_tokenizer_load_hf(path, &t, &err), "%s", err.msg);
            int *ids; size_t n;
            CHECK_OK(cce_tokenizer_encode(t, split_text, strlen(split_text), 1, &ids, &n, &err));
            int same = ids_equal(ids, n, split_ref[k].ids, (size_t)split_ref[k].n);
            cce_free(ids);
            if (!same) { cce_tokenizer_free(t); FAILF("%s (%s): %zu ids, differ from tokenizers.js", split_ref[k].name, again ? "resaved" : "as written", n); }
            if (!again) {
                path = tmp_path("split-resaved.json");
                cce_status st = cce_tokenizer_save_hf(t, path, &err);
                cce_tokenizer_free(t);
                CHECK_MSG(!st, "%s", err.msg);
            } else {
                cce_tokenizer_free(t);
            }
        }
    }
}


/* The pairs vocabulary as GGUF-style arrays (tokenizer.ggml.model "gpt2"): the same ids as the
 * tokenizer.json forms for each tokenizer.ggml.pre, and the usual refusals. */
TEST(build_bpe_gguf_arrays) {
    enum { N = 65793 };
    static int perm[65536];
    static char store[N][8];
    static const char *pieces[N];
    static size_t lens[N];
    static int32_t types[N];
    static char mstore[65536][10];
    static const char *merges[65536];
    static size_t mlens[65536];
    for (int i = 0; i < 65536; i++) perm[i] = i;
    uint64_t x = 7;
    for (int i = 65535; i > 0; i--) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int j = (int)(x % (uint64_t)(i + 1)), tmp = perm[i];
        perm[i] = perm[j]; perm[j] = tmp;
    }
    char ch[256][3];
    for (int b = 0; b < 256; b++) { char *o = ch[b]; utf8_put(&o, b2u(b)); *o = 0; }
    for (int i = 0; i < N; i++) {
        if (i < 256) strcpy(store[i], ch[i]);
        else if (i < 256 + 65536) snprintf(store[i], sizeof store[i], "%s%s", ch[perm[i - 256] >> 8], ch[perm[i - 256] & 255]);
        else strcpy(store[i], "<|e|>");
        pieces[i] = store[i];
        lens[i] = strlen(store[i]);
        types[i] = i == N - 1 ? 3 : 1;
    }
    for (int k = 0; k < 65536; k++) {
        snprintf(mstore[k], sizeof mstore[k], "%s %s", ch[perm[k] >> 8], ch[perm[k] & 255]);
        merges[k] = mstore[k];
        mlens[k] = strlen(mstore[k]);
    }
    const char *pre[3] = { "llama-bpe", "qwen2", "smollm" };
    cce_err err;
    for (int v = 0; v < 4; v++) {
        cce_tokenizer *t = NULL;
        CHECK_MSG(!cce_tokenizer_build_bpe(N, pieces, lens, types, 65536, merges, mlens, v < 3 ? pre[v] : NULL,
                                           v == 0 ? N - 1 : -1, N - 1, "t.gguf", &t, &err), "%s", err.msg);
        CHECK_EQ_INT(cce_tokenizer_kind(t), CCE_TOK_BYTELEVEL);
        CHECK_EQ_INT(cce_tokenizer_bos(t), v == 0 ? N - 1 : -1);
        CHECK_EQ_INT(cce_tokenizer_eos(t), N - 1);
        int *ids; size_t n;
        const char *text = v < 3 ? split_text : pairs_ref[0].text;
        cce_status st = cce_tokenizer_encode(t, text, strlen(text), 0, &ids, &n, &err);
        int same = !st && (v < 3 ? ids_equal(ids, n, split_ref[v].ids, (size_t)split_ref[v].n)
                                 : ids_equal(ids, n, pairs_ref[0].ids, (size_t)pairs_ref[0].n));
        if (!st) cce_free(ids);
        CHECK_MSG(same, "pre %s: ids differ", v < 3 ? pre[v] : "(default)");
        CHECK_ENCODE(t, "a<|e|>b", 0, 97, N - 1, 98);   /* control tokens are cut out first */
        cce_tokenizer_free(t);
    }
    cce_tokenizer *t = NULL;
    CHECK_EQ_INT(cce_tokenizer_build_bpe(N, pieces, lens, types, 65536, merges, mlens, "falcon", -1, -1, "t.gguf", &t, &err), CCE_EUNSUPPORTED);
    CHECK(strstr(err.msg, "t.gguf") && strstr(err.msg, "falcon"));
    strcpy(mstore[5], "zz qq");
    mlens[5] = 5;
    CHECK_EQ_INT(cce_tokenizer_build_bpe(N, pieces, lens, types, 65536, merges, mlens, NULL, -1, -1, "t.gguf", &t, &err), CCE_EFORMAT);
    CHECK(strstr(err.msg, "t.gguf") && strstr(err.msg, "merges[5]"));
    mlens[5] = 0;
    CHECK_EQ_INT(cce_tokenizer_build_bpe(N, pieces, lens, types, 65536, merges, mlens, NULL, -1, -1, "t.gguf", &t, &err), CCE_EFORMAT);
    types[7] = 11;
    CHECK_EQ_INT(cce_tokenizer_build_bpe(N, pieces, lens, types, 0, merges, mlens, NULL, -1, -1, "t.gguf", &t, &err), CCE_EFORMAT);
    CHECK(strstr(err.msg, "token_type 11"));
    CHECK_EQ_INT(cce_tokenizer_build_bpe(N, pieces, lens, NULL, 0, merges, mlens, NULL, N, -1, "t.gguf", &t, &err), CCE_EFORMAT);
    CHECK(t == NULL);
}

/* ---- malformed files ---- */

static void expect_hf_error(const char *name, const char *json, cce_status want, const char *needle) {
    if (harness_cur_failed) return;
    const char *path = tmp_path(name);
    if (write_bytes(path, json, strlen(json))) FAILF("cannot write %s", path);
    cce_tokenizer *t = NULL;
    cce_err err = {{0}};
    cce_status st = cce_tokenizer_load_hf(path, &t, &err);
    cce_tokenizer_free(t);
    if (st != want) FAILF("%s: status %d (%s), expected %d", name, (int)st, err.msg, (int)want);
    if (!strstr(err.msg, name)) FAILF("%s: message does not name the file: %s", name, err.msg);
    if (needle && !strstr(err.msg, needle)) FAILF("%s: message lacks '%s': %s", name, needle, err.msg);
    if (strchr(err.msg, '\n')) FAILF("%s: message is not one line", name);
}

#define PREB "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},\"model\":{\"type\":\"BPE\","
#define PRE "{" PREB
TEST(hf_rejects_defects) {
    cce_tokenizer *t = NULL;
    cce_err err;
    const char *good = PRE "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}";
    const char *gp = tmp_path("good.json");
    CHECK(!write_bytes(gp, good, strlen(good)));
    CHECK_MSG(!cce_tokenizer_load_hf(gp, &t, &err), "%s", err.msg);
    CHECK_ENCODE(t, "abba", 0, 2, 1, 0);
    cce_tokenizer_free(t);
    expect_hf_error("empty.json", "", CCE_EFORMAT, "JSON");
    expect_hf_error("notjson.json", "this is not json", CCE_EFORMAT, "JSON");
    expect_hf_error("trailing.json", PRE "\"vocab\":{\"a\":0},\"merges\":[]}} garbage", CCE_EFORMAT, "JSON");
    expect_hf_error("truncated.json", PRE "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merg", CCE_EFORMAT, "JSON");
    expect_hf_error("array.json", "[1,2,3]", CCE_EFORMAT, "object");
    expect_hf_error("latin1.json", PRE "\"vocab\":{\"caf\xe9\":0},\"merges\":[]}}", CCE_EFORMAT, "UTF-8");
    expect_hf_error("nomodel.json", "{\"version\":\"1.0\"}", CCE_EFORMAT, "model");
    expect_hf_error("wordpiece.json", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", CCE_EUNSUPPORTED, "WordPiece");
    expect_hf_error("vocabarray.json", PRE "\"vocab\":[\"a\"],\"merges\":[]}}", CCE_EFORMAT, "model.vocab");
    expect_hf_error("idstring.json", PRE "\"vocab\":{\"a\":\"0\"},\"merges\":[]}}", CCE_EFORMAT, "not a number");
    expect_hf_error("negative.json", PRE "\"vocab\":{\"a\":-1},\"merges\":[]}}", CCE_EFORMAT, "negative");
    expect_hf_error("fraction.json", PRE "\"vocab\":{\"a\":1.5},\"merges\":[]}}", CCE_EFORMAT, "integer");
    expect_hf_error("huge.json", PRE "\"vocab\":{\"a\":16777216},\"merges\":[]}}", CCE_EFORMAT, "2^24");
    expect_hf_error("sparse.json", PRE "\"vocab\":{\"a\":0,\"b\":9000000},\"merges\":[]}}", CCE_EFORMAT, "sparse");
    expect_hf_error("dupid.json", PRE "\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", CCE_EFORMAT, "id 0");
    expect_hf_error("duppiece.json", PRE "\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}}", CCE_EFORMAT, "twice");
    expect_hf_error("mergeunknown.json", PRE "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a c\"]}}", CCE_EFORMAT, "merges[0]");
    expect_hf_error("mergeresult.json", PRE "\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", CCE_EFORMAT, "merges[0]");
    expect_hf_error("mergeform.json", PRE "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"ab\"]}}", CCE_EFORMAT, "merges[0]");
    expect_hf_error("mergetype.json", PRE "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[7]}}", CCE_EFORMAT, "merges[0]");
    expect_hf_error("mergesobj.json", PRE "\"vocab\":{\"a\":0},\"merges\":{}}}", CCE_EFORMAT, "merges");
    expect_hf_error("addedrange.json", "{\"added_tokens\":[{\"id\":-3,\"content\":\"<s>\"}]," PREB "\"vocab\":{\"a\":0},\"merges\":[]}}",
                    CCE_EFORMAT, "added_tokens[0]");
    expect_hf_error("addedclash.json", "{\"added_tokens\":[{\"id\":0,\"content\":\"<s>\"}]," PREB "\"vocab\":{\"a\":0},\"merges\":[]}}",
                    CCE_EFORMAT, "added_tokens[0]");
    expect_hf_error("unk.json", PRE "\"unk_token\":\"<unk>\",\"vocab\":{\"a\":0},\"merges\":[]}}", CCE_EFORMAT, "unk_token");
    expect_hf_error("pretok.json", "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                    CCE_EUNSUPPORTED, "Whitespace");
    expect_hf_error("prependonly.json", "{\"normalizer\":{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                    CCE_EUNSUPPORTED, "Prepend");
    CHECK_EQ_INT(cce_tokenizer_load_hf(tmp_path("missing.json"), &t, &err), CCE_EIO);
    CHECK(t == NULL);
}

/* Mutations of tok512.bin. */
TEST(llama2c_rejects_defects) {
    size_t len;
    char *orig = slurp(harness_data("llama2c/tok512.bin"), &len);
    CHECK(orig);
    char *d = malloc(len + 16);
    const char *path = tmp_path("bad.bin");
    cce_tokenizer *t = NULL;
    cce_err err;
    struct { const char *what; size_t cut; long off; int32_t val; int vocab; cce_status want; const char *needle; } cases[] = {
        { "empty", 0, -1, 0, 512, CCE_EFORMAT, "too short" },
        { "truncated mid-token", 3000, -1, 0, 512, CCE_EFORMAT, "past end of file" },
        { "truncated header", 6227 - 9, -1, 0, 512, CCE_EFORMAT, "past end" },
        { "max_token_length 0", 6227, 0, 0, 512, CCE_EFORMAT, "max_token_length" },
        { "max_token_length -5", 6227, 0, -5, 512, CCE_EFORMAT, "max_token_length" },
        { "max_token_length huge", 6227, 0, 1 << 30, 512, CCE_EFORMAT, "max_token_length" },
        { "negative length", 6227, 8, -1, 512, CCE_EFORMAT, "length -1" },
        { "length above max", 6227, 8, 8, 512, CCE_EFORMAT, "length 8" },
        { "misaligned length", 6227, 8, 7, 512, CCE_EFORMAT, NULL },
        { "NaN score", 6227, 4, 0x7fc00000, 512, CCE_EFORMAT, "not finite" },
        { "vocab too small", 6227, -1, 0, 511, CCE_EFORMAT, "bytes left" },
        { "vocab too large", 6227, -1, 0, 513, CCE_EFORMAT, "token 512" },
        { "vocab zero", 6227, -1, 0, 0, CCE_EINVAL, "vocab_size" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(d, orig, len);
        if (cases[k].off >= 0) memcpy(d + cases[k].off, &cases[k].val, 4);
        CHECK(!write_bytes(path, d, cases[k].cut));
        cce_status st = cce_tokenizer_load_llama2c(path, cases[k].vocab, &t, &err);
        cce_tokenizer_free(t);
        CHECK_MSG(st == cases[k].want, "%s: status %d (%s)", cases[k].what, (int)st, st ? err.msg : "ok");
        CHECK_MSG(strstr(err.msg, "bad.bin"), "%s: message does not name the file: %s", cases[k].what, err.msg);
        CHECK_MSG(!cases[k].needle || strstr(err.msg, cases[k].needle), "%s: message: %s", cases[k].what, err.msg);
        t = NULL;
    }
    free(d);
    free(orig);
}

/* The N-th allocation fails, for every N until loading and encoding succeed: clean errors only. */
TEST(alloc_failures) {
    int ok_at = -1;
    for (int k = 1; k < 200 && ok_at < 0; k++) {
        cce_tokenizer *t = NULL;
        cce_err err;
        int *ids = NULL; size_t n = 0;
        cce_alloc_fail_after(k);
        cce_status st = cce_tokenizer_load_llama2c(harness_data("llama2c/tok512.bin"), 512, &t, &err);
        if (!st) st = cce_tokenizer_encode(t, "Once upon a time", 16, 1, &ids, &n, &err);
        cce_alloc_fail_after(0);
        if (st) {
            CHECK_MSG(st == CCE_ENOMEM || st == CCE_EIO, "allocation %d: status %d (%s)", k, (int)st, err.msg);
            CHECK(ids == NULL);
        } else {
            CHECK_EQ_INT(n, 5);
            ok_at = k;
        }
        cce_free(ids);
        cce_tokenizer_free(t);
    }
    CHECK_MSG(ok_at > 3, "succeeded at allocation %d", ok_at);
}


/* The same for tokenizer.json: loading (byte-level, hand-built), encoding and writing. */
TEST(alloc_failures_json) {
    const char *path = write_bytelevel_json();
    CHECK(path);
    const char *out = tmp_path("oom-saved.json");
    int ok_at = -1;
    for (int k = 1; k < 400 && ok_at < 0; k++) {
        cce_tokenizer *t = NULL;
        cce_err err;
        int *ids = NULL; size_t n = 0;
        cce_alloc_fail_after(k);
        cce_status st = cce_tokenizer_load_hf(path, &t, &err);
        if (!st) st = cce_tokenizer_encode(t, "the cat<|endoftext|>", 20, 0, &ids, &n, &err);
        if (!st) st = cce_tokenizer_save_hf(t, out, &err);
        cce_alloc_fail_after(0);
        if (st) {
            CHECK_MSG(st == CCE_ENOMEM || st == CCE_EIO, "allocation %d: status %d (%s)", k, (int)st, err.msg);
        } else {
            CHECK_EQ_INT(n, 4);
            ok_at = k;
        }
        cce_free(ids);
        cce_tokenizer_free(t);
    }
    CHECK_MSG(ok_at > 5, "succeeded at allocation %d", ok_at);
}

int main(void) {
    RUN(tok512_reference_vector);
    RUN(tok512_decode);
    RUN(tok512_eval_stream);
    RUN(tok512_matches_reference_loop);
    RUN(llama2_32k);
    RUN(build_sp_matches_llama2c);
    RUN(build_sp_rejects);
    RUN(hf_sp_roundtrip_tok512);
    RUN(hf_sp_roundtrip_llama2_32k);
    RUN(hf_metaspace_variants);
    RUN(hf_unk_without_byte_fallback);
    RUN(unicode_classes);
    RUN(hf_bytelevel_by_hand);
    RUN(hf_bytelevel_matches_tokenizers_js);
    RUN(hf_split_and_digits_pretokenizers);
    RUN(build_bpe_gguf_arrays);
    RUN(hf_rejects_defects);
    RUN(llama2c_rejects_defects);
    RUN(alloc_failures);
    RUN(alloc_failures_json);
    return harness_done();
}
