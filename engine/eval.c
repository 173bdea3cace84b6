/*
 * eval.c — the evaluation protocol of eval.h: text -> document token stream -> windows ->
 * mean next-token NLL with the batched forward pass.
 *
 * Documents are found in place (no copy of the text): CRLF is handled by treating "\r\n" as
 * "\n" while scanning for blank lines, and each document is copied once, with its CRLFs folded,
 * into a scratch buffer only when it contains a CR. The token stream grows geometrically.
 * Windows are evaluated in batches of batch_seqs sequences through cce_fwd_sequences_nll; the
 * NLL sum is accumulated in double. Cancellation: the progress callback between batches, and
 * cce_interrupted() (util.h) every 64 KB of tokenised text and inside the forward pass (between
 * sublayers), so a cancel takes effect within one sublayer's work, not one batch's.
 */
#include <math.h>
#include <string.h>
#include "eval.h"
#include "forward.h"
#include "util.h"

static int eval_is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Append ids (k) to the stream (*buf, *n, *cap). */
static cce_status eval_append(int **buf, size_t *n, size_t *cap, const int *ids, size_t k, cce_err *err) {
    size_t need;
    if (!cce_size_add(*n, k, &need)) return cce_err_set(err, CCE_ENOMEM, "eval: token stream too long");
    if (need > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < need) {
            if (!cce_size_mul(nc, 2, &nc)) return cce_err_set(err, CCE_ENOMEM, "eval: token stream too long");
        }
        int *p = cce_realloc(*buf, nc, sizeof(int));
        if (!p) return cce_err_set(err, CCE_ENOMEM, "eval: out of memory for %zu tokens", nc);
        *buf = p;
        *cap = nc;
    }
    memcpy(*buf + *n, ids, k * sizeof(int));
    *n = need;
    return CCE_OK;
}

/* Encode one stripped, CRLF-folded document text[a, b) and append sep + its tokens. */
static cce_status eval_doc(const cce_tokenizer *tok, int sep, const char *text, size_t a, size_t b, char **fold,
                           size_t *fold_cap, int **buf, size_t *n, size_t *cap, cce_err *err) {
    while (a < b && eval_is_space(text[a])) a++;
    while (b > a && eval_is_space(text[b - 1])) b--;
    if (a == b) return CCE_OK;
    const char *doc = text + a;
    size_t len = b - a;
    if (memchr(doc, '\r', len)) {
        if (len > *fold_cap) {
            char *p = cce_realloc(*fold, len, 1);
            if (!p) return cce_err_set(err, CCE_ENOMEM, "eval: out of memory for a %zu-byte document", len);
            *fold = p;
            *fold_cap = len;
        }
        size_t k = 0;
        for (size_t i = 0; i < len; i++)
            if (!(doc[i] == '\r' && i + 1 < len && doc[i + 1] == '\n')) (*fold)[k++] = doc[i];
        doc = *fold;
        len = k;
    }
    int *ids = NULL;
    size_t k = 0;
    cce_status s = cce_tokenizer_encode(tok, doc, len, 0, &ids, &k, err);
    if (!s) s = eval_append(buf, n, cap, &sep, 1, err);
    if (!s) s = eval_append(buf, n, cap, ids, k, err);
    cce_free(ids);
    return s;
}

/* The protocol's stream, stopping once it holds at least limit tokens (0: no limit), so that
 * --max-tokens on a large file does not tokenise all of it. */
static cce_status eval_stream(const cce_tokenizer *tok, const char *text, size_t len, size_t limit,
                              int **ids_out, size_t *n_out, cce_err *err) {
    *ids_out = NULL;
    *n_out = 0;
    int sep = cce_tokenizer_bos(tok) >= 0 ? cce_tokenizer_bos(tok) : cce_tokenizer_eos(tok);
    if (sep < 0)
        return cce_err_set(err, CCE_EINVAL, "eval: the tokenizer has neither BOS nor EOS to start documents with");
    int *buf = NULL;
    size_t n = 0, cap = 0, fold_cap = 0;
    char *fold = NULL;
    cce_status s = CCE_OK;
    size_t start = 0, i = 0, next_check = 0;
    /* A blank line is "\n" followed (after an optional "\r") by "\n". */
    while (i < len && !(limit && n >= limit)) {
        if (i >= next_check) {   // every 64 KB of text
            if (cce_interrupted()) {
                s = cce_err_set(err, CCE_ECANCEL, "interrupted while tokenising (%zu of %zu bytes)", i, len);
                goto cleanup;
            }
            next_check = i + 65536;
        }
        if (text[i] == '\n') {
            size_t j = i + 1;
            if (j < len && text[j] == '\r' && j + 1 < len && text[j + 1] == '\n') j++;
            if (j < len && text[j] == '\n') {
                if ((s = eval_doc(tok, sep, text, start, i, &fold, &fold_cap, &buf, &n, &cap, err))) goto cleanup;
                start = i = j + 1;
                continue;
            }
        }
        i++;
    }
    if (!(limit && n >= limit)) s = eval_doc(tok, sep, text, start, len, &fold, &fold_cap, &buf, &n, &cap, err);
cleanup:
    cce_free(fold);
    if (s) {
        cce_free(buf);
        return s;
    }
    *ids_out = buf;
    *n_out = n;
    return CCE_OK;
}

cce_status cce_text_tokens(const cce_tokenizer *tok, const char *text, size_t len, int **ids,
                           size_t *n, cce_err *err) {
    return eval_stream(tok, text, len, 0, ids, n, err);
}

cce_status cce_eval_ids(const cce_model *m, const int *ids, size_t n, int seq_len, int batch_seqs,
                        cce_eval_progress_fn progress, void *user, cce_eval_result *res, cce_err *err) {
    memset(res, 0, sizeof *res);
    if (seq_len < 2 || (m->cfg.arch == CCE_ARCH_GPT2 && seq_len > m->cfg.seq_len))
        return cce_err_set(err, CCE_EINVAL, "eval: sequence length %d out of range (2..%d)", seq_len,
                           m->cfg.arch == CCE_ARCH_GPT2 ? m->cfg.seq_len : 1 << 20);
    size_t windows = n / (size_t)seq_len;
    if (windows == 0)
        return cce_err_set(err, CCE_EINVAL, "eval: %zu tokens are fewer than one window of %d", n, seq_len);
    if (batch_seqs <= 0) batch_seqs = 2048 / seq_len > 0 ? 2048 / seq_len : 1;
    if ((size_t)batch_seqs > windows) batch_seqs = (int)windows;
    size_t rows;
    if (!cce_size_mul((size_t)batch_seqs, (size_t)seq_len, &rows) || rows > (1u << 30))
        return cce_err_set(err, CCE_EINVAL, "eval: batch of %d x %d tokens too large", batch_seqs, seq_len);
    cce_fwd *f = NULL;
    cce_status s = cce_fwd_new(m, (int)rows, seq_len, &f, err);
    if (s) return s;
    double t0 = cce_now(), sum = 0.0;
    long count = 0, correct = 0;
    for (size_t w = 0; w < windows; w += (size_t)batch_seqs) {
        int nb = windows - w < (size_t)batch_seqs ? (int)(windows - w) : batch_seqs;
        if ((s = cce_fwd_sequences_nll_acc(f, ids + w * (size_t)seq_len, nb, seq_len, &sum, &count, &correct, err)))
            goto cleanup;
        if (progress && progress(user, (long)(w + (size_t)nb), (long)windows)) {
            s = cce_err_set(err, CCE_ECANCEL, "eval: cancelled after %zu of %zu windows", w + (size_t)nb, windows);
            goto cleanup;
        }
    }
    res->seconds = cce_now() - t0;
    res->seq_len = seq_len;
    res->tokens = (long)n;
    res->windows = (long)windows;
    res->predictions = count;
    res->loss = sum / (double)count;
    res->ppl = exp(res->loss);
    res->accuracy = (double)correct / (double)count;
    res->tokens_per_s = res->seconds > 0 ? (double)windows * seq_len / res->seconds : 0.0;
cleanup:
    cce_fwd_free(f);
    return s;
}

cce_status cce_eval_text(const cce_model *m, const cce_tokenizer *tok, const char *text, size_t len,
                         int seq_len, long max_tokens, int batch_seqs, cce_eval_progress_fn progress,
                         void *user, cce_eval_result *res, cce_err *err) {
    int *ids = NULL;
    size_t n = 0;
    cce_status s = eval_stream(tok, text, len, max_tokens > 0 ? (size_t)max_tokens : 0, &ids, &n, err);
    if (s) return s;
    if (max_tokens > 0 && (size_t)max_tokens < n) n = (size_t)max_tokens;
    s = cce_eval_ids(m, ids, n, seq_len, batch_seqs, progress, user, res, err);
    cce_free(ids);
    return s;
}

cce_status cce_decode_speed(const cce_model *m, int n_tokens, int repeats, double *tokens_per_s, cce_err *err) {
    *tokens_per_s = 0;
    if (n_tokens < 2 || repeats < 1) return cce_err_set(err, CCE_EINVAL, "decode speed: %d tokens x %d runs", n_tokens, repeats);
    if (m->cfg.arch == CCE_ARCH_GPT2 && n_tokens > m->cfg.seq_len) n_tokens = m->cfg.seq_len;
    int *ids = cce_alloc((size_t)n_tokens, sizeof(int));   // (n_tokens) greedy continuation from BOS/EOS
    if (!ids) return cce_err_set(err, CCE_ENOMEM, "decode speed: out of memory");
    ids[0] = m->cfg.bos_id >= 0 ? m->cfg.bos_id : m->cfg.eos_id >= 0 ? m->cfg.eos_id : 0;
    cce_status s = CCE_OK;
    double best = 0;
    for (int r = 0; r < repeats && !s; r++) {
        double t0 = cce_now();
        s = cce_greedy_ids(m, ids, n_tokens, err);
        double dt = cce_now() - t0, tps = dt > 0 ? (n_tokens - 1) / dt : 0;
        if (!s && tps > best) best = tps;
    }
    cce_free(ids);
    if (!s) *tokens_per_s = best;
    return s;
}
