/*
 * test_eval.c — the evaluation protocol (document splitting, token stream, windows, mean NLL)
 * on small random models against the reference forward pass, and on the real checkpoints
 * against the reference figures in shared/data/SOURCES.md.
 */
#include "harness.h"
#include "eval.h"
#include "forward.h"
#include "model.h"
#include "tokenizer.h"
#include "util.h"

static float *rnd(cce_model *m, cce_rng *r, size_t n, float scale, float offset) {
    float *p = cce_model_alloc(m, n, sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * cce_rng_normal(r);
    return p;
}

/* A small random Llama model (GQA, interleaved RoPE, tied head). */
static cce_model *tiny_model(uint64_t seed, int vocab) {
    cce_config c = {.arch = CCE_ARCH_LLAMA, .dim = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                    .head_dim = 6, .hidden_dim = 40, .vocab_size = vocab, .seq_len = 64,
                    .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_interleaved = 1, .tied = 1,
                    .bos_id = 1, .eos_id = 2};
    cce_model *m = NULL;
    cce_err e;
    if (cce_model_new(&c, &m, &e)) return NULL;
    cce_rng r;
    cce_rng_seed(&r, seed);
    m->tok_emb = cce_linear_of(vocab, 24, rnd(m, &r, (size_t)vocab * 24, 1.0f, 0));
    m->lm_head = m->tok_emb;
    m->final_norm = rnd(m, &r, 24, 0.1f, 1.0f);
    for (int li = 0; li < 2; li++) {
        cce_layer *l = &m->layers[li];
        l->n_heads = 4; l->n_kv_heads = 2; l->hidden = 40;
        l->attn_norm = rnd(m, &r, 24, 0.1f, 1.0f);
        l->ffn_norm = rnd(m, &r, 24, 0.1f, 1.0f);
        cce_linear *ls[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w1, &l->w2, &l->w3};
        int outs[] = {24, 12, 12, 24, 40, 24, 40}, ins[] = {24, 24, 24, 24, 24, 40, 24};
        for (int i = 0; i < 7; i++) {
            ls[i]->out = outs[i]; ls[i]->in = ins[i];
            ls[i]->w = rnd(m, &r, (size_t)outs[i] * ins[i], 1.0f / sqrtf((float)ins[i]), 0);
        }
    }
    return m;
}

static int cancel_at_2(void *user, long done, long total) {
    long *calls = user;
    (*calls)++;
    return done >= 2 * 3 && done < total;  // batches of 3 windows: cancel after the second
}

TEST(eval_matches_reference_nll) {
    cce_model *m = tiny_model(7, 37);
    CHECK(m);
    cce_rng r;
    cce_rng_seed(&r, 8);
    size_t n = 10 * 16 + 5;  // 10 windows of 16 and a partial one that must be dropped
    int *ids = cce_alloc(n, sizeof(int));
    for (size_t i = 0; i < n; i++) ids[i] = (int)(cce_rng_u64(&r) % 37);
    cce_eval_result a, b;
    cce_err e;
    int sa = cce_eval_ids(m, ids, n, 16, 3, NULL, NULL, &a, &e);
    int sb = cce_eval_ids(m, ids, n, 16, 0, NULL, NULL, &b, &e);
    /* reference: mean over windows of the token-by-token forward */
    float *lg = cce_alloc(16 * 37, sizeof(float));
    double sum = 0;
    for (int w = 0; w < 10; w++) {
        cce_ref_forward(m, ids + w * 16, 16, lg, NULL, NULL, &e);
        for (int t = 0; t < 15; t++) {
            double mx = -INFINITY, se = 0;
            for (int j = 0; j < 37; j++) mx = lg[t * 37 + j] > mx ? lg[t * 37 + j] : mx;
            for (int j = 0; j < 37; j++) se += exp(lg[t * 37 + j] - mx);
            sum += log(se) + mx - lg[t * 37 + ids[w * 16 + t + 1]];
        }
    }
    cce_free(lg);
    cce_free(ids);
    cce_model_free(m);
    CHECK_EQ_INT(sa, CCE_OK);
    CHECK_EQ_INT(sb, CCE_OK);
    CHECK_EQ_INT(a.windows, 10);
    CHECK_EQ_INT(a.predictions, 150);
    CHECK_EQ_INT(a.tokens, 165);
    CHECK_EQ_INT(a.seq_len, 16);
    CHECK_NEAR(a.loss, sum / 150, 1e-5);
    CHECK_NEAR(b.loss, a.loss, 1e-6);
    CHECK_NEAR(a.ppl, exp(a.loss), 1e-9);
    CHECK(a.tokens_per_s > 0);
}

TEST(eval_errors_and_cancel) {
    cce_model *m = tiny_model(9, 37);
    CHECK(m);
    int ids[100];
    for (int i = 0; i < 100; i++) ids[i] = i % 37;
    cce_eval_result res;
    cce_err e = {{0}};
    long calls = 0;
    int s_short = cce_eval_ids(m, ids, 15, 16, 1, NULL, NULL, &res, &e);   // no full window
    int has_msg = strstr(e.msg, "15 tokens") != NULL;
    int s_len = cce_eval_ids(m, ids, 100, 1, 1, NULL, NULL, &res, &e);     // seq_len 1 predicts nothing
    int s_cancel = cce_eval_ids(m, ids, 100, 8, 3, cancel_at_2, &calls, &res, &e);  // 12 windows
    /* the thread's cancel (util.h) stops it too, and does not latch */
    cce_interrupt();
    int s_int = cce_eval_ids(m, ids, 100, 8, 3, NULL, NULL, &res, &e);
    int int_msg = strstr(e.msg, "cancelled") != NULL || strstr(e.msg, "interrupted") != NULL;
    cce_interrupt_reset();
    int s_again = cce_eval_ids(m, ids, 100, 8, 3, NULL, NULL, &res, &e);
    ids[50] = 37;
    int s_tok = cce_eval_ids(m, ids, 100, 10, 2, NULL, NULL, &res, &e);
    cce_model_free(m);
    CHECK_EQ_INT(s_short, CCE_EINVAL);
    CHECK(has_msg);
    CHECK_EQ_INT(s_len, CCE_EINVAL);
    CHECK_EQ_INT(s_cancel, CCE_ECANCEL);
    CHECK_EQ_INT(calls, 2);
    CHECK_EQ_INT(s_int, CCE_ECANCEL);
    CHECK(int_msg);
    CHECK_EQ_INT(s_again, CCE_OK);
    CHECK_EQ_INT(s_tok, CCE_EINVAL);
}

/* ---- real data ---- */

static cce_tokenizer *tok512(void) {
    cce_tokenizer *t = NULL;
    cce_err e;
    if (cce_tokenizer_load_llama2c(harness_data("llama2c/tok512.bin"), 512, &t, &e)) {
        fprintf(stderr, "tok512: %s\n", e.msg);
        return NULL;
    }
    return t;
}

static int concat_encode(cce_tokenizer *t, const char *const *docs, int n, int *out, size_t *n_out) {
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        int *ids = NULL;
        size_t m = 0;
        cce_err e;
        if (cce_tokenizer_encode(t, docs[i], strlen(docs[i]), 1, &ids, &m, &e)) return -1;
        memcpy(out + k, ids, m * sizeof(int));
        k += m;
        cce_free(ids);
    }
    *n_out = k;
    return 0;
}

TEST(text_protocol_documents) {
    cce_tokenizer *t = tok512();
    CHECK(t);
    /* CRLF, blank lines with CR, runs of blank lines, whitespace-only documents, stripping;
     * a line of spaces is not a blank line (it stays inside its document) */
    const char *text = "  Once upon a time.\r\n\r\nThe cat sat.\r\nIt slept.\n\n\n\n \t \n\nEnd\tof  \n  \nit\n";
    const char *docs[] = {"Once upon a time.", "The cat sat.\nIt slept.", "End\tof  \n  \nit"};
    int want[256];
    size_t nw = 0, n = 0;
    int *ids = NULL;
    cce_err e;
    int ok = concat_encode(t, docs, 3, want, &nw) == 0;
    int s = cce_text_tokens(t, text, strlen(text), &ids, &n, &e);
    int s_empty = -1;
    size_t n_empty = 99;
    int *ids_empty = NULL;
    s_empty = cce_text_tokens(t, " \r\n\r\n\n", 5, &ids_empty, &n_empty, &e);
    cce_free(ids_empty);
    cce_tokenizer_free(t);
    CHECK(ok);
    CHECK_EQ_INT(s, CCE_OK);
    CHECK_EQ_INT(n, nw);
    int bos = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_MSG(ids[i] == want[i], "token %zu = %d, expected %d", i, ids[i], want[i]);
        bos += ids[i] == 1;
    }
    cce_free(ids);
    CHECK_EQ_INT(bos, 3);
    CHECK_EQ_INT(s_empty, CCE_OK);
    CHECK_EQ_INT(n_empty, 0);
}

TEST(text_protocol_without_bos_uses_eos) {
    /* a byte-fallback tokenizer with EOS (id 2) but no BOS, like GPT-2's <|endoftext|> */
    static char names[259][8];
    const char *pieces[259];
    size_t lens[259];
    float scores[259];
    const char *special[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 259; i++) {
        if (i < 3) snprintf(names[i], sizeof names[i], "%s", special[i]);
        else snprintf(names[i], sizeof names[i], "<0x%02X>", i - 3);
        pieces[i] = names[i];
        lens[i] = strlen(names[i]);
        scores[i] = 0;
    }
    cce_tokenizer *t = NULL;
    cce_err e;
    CHECK_OK(cce_tokenizer_build_sp(259, pieces, lens, scores, NULL, -1, 2, 0, "test", &t, &e));
    int *ids = NULL, *one = NULL;
    size_t n = 0, n1 = 0;
    int s = cce_text_tokens(t, "ab\n\ncd", 6, &ids, &n, &e);
    int s1 = cce_tokenizer_encode(t, "ab", 2, 0, &one, &n1, &e);
    cce_tokenizer_free(t);
    int eos_count = 0, ok = s == CCE_OK && s1 == CCE_OK && n == 2 * (n1 + 1);
    for (size_t i = 0; ok && i < n; i++) eos_count += ids[i] == 2;
    ok = ok && ids[0] == 2 && ids[n1 + 1] == 2 && !memcmp(ids + 1, one, n1 * sizeof(int));
    cce_free(ids);
    cce_free(one);
    CHECK_EQ_INT(s, CCE_OK);
    CHECK(ok);
    CHECK_EQ_INT(eos_count, 2);
}

/* Shared by the real-data tests: the protocol's stream of tinystories_valid_head.txt. */
static int *valid_ids;
static size_t valid_n;

TEST(tinystories_token_stream) {
    cce_tokenizer *t = tok512();
    CHECK(t);
    char *text = NULL;
    size_t len = 0;
    cce_err e;
    CHECK_OK(cce_read_file(harness_data("text/tinystories_valid_head.txt"), 1 << 24, &text, &len, &e));
    int s = cce_text_tokens(t, text, len, &valid_ids, &valid_n, &e);
    cce_free(text);
    cce_tokenizer_free(t);
    CHECK_MSG(s == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(valid_n, 291127);
    /* FNV-1a-64, each id xor-ed in as a u32. SOURCES.md states 38be717c3336a571, which nothing
     * reproduces; an independent Python transcription of llama2.c's encode() over the same
     * protocol gives these 291,127 ids with b60094ec0ee6dbe3 (see test_tokenizer.c), and
     * stories260K scores exactly the reference loss on them (next test). */
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < valid_n; i++) { h ^= (uint32_t)valid_ids[i]; h *= 1099511628211ull; }
    CHECK_MSG(h == 0xb60094ec0ee6dbe3ull, "stream hash %016llx, expected b60094ec0ee6dbe3", (unsigned long long)h);
}

TEST(stories260k_reference_loss) {
    CHECK_MSG(valid_ids, "no token stream (previous test failed)");
    cce_model *m = NULL;
    cce_err e;
    CHECK_OK(cce_load_llama2c(harness_data("llama2c/stories260K.bin"), &m, &e));
    cce_eval_result r;
    int s = cce_eval_ids(m, valid_ids, valid_n, 256, 0, NULL, NULL, &r, &e);
    cce_model_free(m);
    CHECK_MSG(s == CCE_OK, "%s", e.msg);
    printf("# stories260K: loss %.5f ppl %.4f, %ld tokens, %ld windows, %.2f s, %.0f tok/s\n",
           r.loss, r.ppl, r.tokens, r.windows, r.seconds, r.tokens_per_s);
    CHECK_EQ_INT(r.tokens, 291127);
    CHECK_EQ_INT(r.windows, 1137);
    CHECK_EQ_INT(r.predictions, 1137 * 255);
    CHECK_NEAR(r.loss, 1.69130, 1e-4);   // the reference has 5 digits
}

TEST(gguf_copy_gives_same_loss) {
    CHECK_MSG(valid_ids, "no token stream (previous test failed)");
    cce_model *a = NULL, *b = NULL;
    cce_tokenizer *t = NULL;
    cce_err e;
    CHECK_OK(cce_load_llama2c(harness_data("llama2c/stories260K.bin"), &a, &e));
    cce_status s = cce_load_gguf(harness_data("gguf/stories260K.gguf"), &b, &t, &e);
    if (s) cce_model_free(a);
    CHECK_MSG(s == CCE_OK, "%s", e.msg);
    cce_tokenizer_free(t);
    size_t n = 64 * 256;  /* 64 windows: enough to compare the two loaders */
    cce_eval_result ra, rb;
    int sa = cce_eval_ids(a, valid_ids, n, 256, 0, NULL, NULL, &ra, &e);
    int sb = cce_eval_ids(b, valid_ids, n, 256, 0, NULL, NULL, &rb, &e);
    cce_model_free(a);
    cce_model_free(b);
    CHECK_EQ_INT(sa, CCE_OK);
    CHECK_EQ_INT(sb, CCE_OK);
    CHECK_NEAR(rb.loss, ra.loss, 1e-4);
}

TEST(tinystories_2m5_subset) {
    CHECK_MSG(valid_ids, "no token stream (previous test failed)");
    cce_model *m = NULL;
    cce_err e;
    CHECK_OK(cce_load_llama2c(harness_data("llama2c/tinystories_2m5.bin"), &m, &e));
    /* greedy ids from BOS (SOURCES.md) */
    static const int want[25] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421,
                                 395, 317, 426, 338, 401, 396, 267, 337, 335, 311, 267, 422};
    int ids[25] = {1};
    int ok = !cce_greedy_ids(m, ids, 25, &e);
    /* The full-text loss (reference 1.83192, ~15-80 s here) is checked by tests/e2e/eval.sh.
     * Here: the first 32 windows, whose loss 1.59891 was measured with this code once the full
     * text had reproduced the reference to 5 digits; it must not depend on the batch size. */
    cce_eval_result r1, r2;
    int s1 = cce_eval_ids(m, valid_ids, 32 * 256, 256, 8, NULL, NULL, &r1, &e);
    int s2 = cce_eval_ids(m, valid_ids, 32 * 256, 256, 3, NULL, NULL, &r2, &e);
    cce_model_free(m);
    CHECK_MSG(ok, "%s", e.msg);
    for (int t = 0; t < 25; t++)
        CHECK_MSG(ids[t] == want[t], "greedy id %d = %d, expected %d", t, ids[t], want[t]);
    CHECK_EQ_INT(s1, CCE_OK);
    CHECK_EQ_INT(s2, CCE_OK);
    CHECK_NEAR(r2.loss, r1.loss, 1e-6);
    CHECK_NEAR(r1.loss, 1.59891, 1e-4);
}

TEST(eval_text_equals_stream_eval) {
    /* cce_eval_text = cce_text_tokens + max_tokens + cce_eval_ids, on a CRLF copy of a text */
    cce_model *m = NULL;
    cce_tokenizer *t = tok512();
    cce_err e;
    CHECK(t);
    CHECK_OK(cce_load_llama2c(harness_data("llama2c/stories260K.bin"), &m, &e));
    const char *para = "Tom had a red ball. He liked to throw it high.\n\nOne day the ball went over the fence.\n\n";
    char text[4096] = "";
    for (int i = 0; i < 20; i++) strcat(text, para);
    char crlf[8192];
    size_t k = 0;
    for (size_t i = 0; text[i]; i++) {
        if (text[i] == '\n') crlf[k++] = '\r';
        crlf[k++] = text[i];
    }
    int *ids = NULL;
    size_t n = 0;
    cce_eval_result a, b, c;
    int s0 = cce_text_tokens(t, text, strlen(text), &ids, &n, &e);
    int s1 = cce_eval_text(m, t, crlf, k, 64, 300, 2, NULL, NULL, &a, &e);
    int s2 = s0 ? -1 : (int)cce_eval_ids(m, ids, n < 300 ? n : 300, 64, 1, NULL, NULL, &b, &e);
    int s3 = cce_eval_text(m, t, text, strlen(text), 64, 0, 0, NULL, NULL, &c, &e);
    cce_eval_result all;
    int s4 = s0 ? -1 : (int)cce_eval_ids(m, ids, n, 64, 0, NULL, NULL, &all, &e);
    cce_free(ids);
    cce_tokenizer_free(t);
    cce_model_free(m);
    CHECK_EQ_INT(s0, CCE_OK);
    CHECK_EQ_INT(s1, CCE_OK);
    CHECK_EQ_INT(s2, CCE_OK);
    CHECK_EQ_INT(s3, CCE_OK);
    CHECK(n > 300);
    CHECK_EQ_INT(a.tokens, 300);
    CHECK_EQ_INT(a.windows, 4);
    CHECK_NEAR(a.loss, b.loss, 1e-6);
    CHECK_EQ_INT(c.tokens, n);
    CHECK_EQ_INT(c.windows, n / 64);
    CHECK_EQ_INT(s4, CCE_OK);
    CHECK_NEAR(c.loss, all.loss, 1e-9);   /* the same windows in the same batches */
    CHECK(c.loss > 0 && c.loss < 3);      /* a trained model on TinyStories-like text */
}

int main(void) {
    RUN(eval_matches_reference_nll);
    RUN(eval_errors_and_cancel);
    RUN(text_protocol_documents);
    RUN(eval_text_equals_stream_eval);
    RUN(text_protocol_without_bos_uses_eos);
    RUN(tinystories_token_stream);
    RUN(stories260k_reference_loss);
    RUN(gguf_copy_gives_same_loss);
    RUN(tinystories_2m5_subset);
    cce_free(valid_ids);
    return harness_done();
}
