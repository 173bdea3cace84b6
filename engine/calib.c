/*
 * calib.c — the calibration batch and its block-by-block forward pass (see include/calib.h).
 *
 * Window choice: the token stream is cut into W = floor(n / seq_len) non-overlapping windows;
 * a partial Fisher-Yates shuffle driven by cce_rng(seed) picks n_seq of them and the picks are
 * sorted by position, so the batch depends only on (stream, seq_len, tokens, seed).
 * The forward pass runs over chunks of chunk_seqs whole sequences so that the forward scratch
 * (attention, FFN intermediates) is sized by the chunk, not by the whole calibration batch.
 */
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include "calib.h"
#include "eval.h"
#include "util.h"

/* End of the first piece of text[start..len) that is at least chunk bytes long and ends right
 * after a blank line, scanning for blank lines exactly as the evaluation protocol does
 * ("\n", optional "\r", "\n"); len when there is none. */
static size_t calib_piece_end(const char *text, size_t start, size_t len, size_t chunk) {
    size_t i = start;
    while (i < len) {
        if (text[i] == '\n') {
            size_t j = i + 1;
            if (j < len && text[j] == '\r' && j + 1 < len && text[j + 1] == '\n') j++;
            if (j < len && text[j] == '\n') {
                if (j + 1 - start >= chunk) return j + 1;
                i = j + 1;
                continue;
            }
        }
        i++;
    }
    return len;
}

cce_status cce_calib_text_tokens(const cce_tokenizer *tok, const char *text, size_t len, size_t chunk_bytes,
                                 int (*stop)(void *user), void *user, int **ids, size_t *n, cce_err *err) {
    *ids = NULL;
    *n = 0;
    if (chunk_bytes == 0) chunk_bytes = (size_t)64 << 10;
    int *all = NULL;
    size_t count = 0, cap = 0, start = 0;
    cce_status st = CCE_OK;
    do {
        if (stop && stop(user)) {
            st = cce_err_set(err, CCE_ECANCEL, "calibration: tokenising cancelled at byte %zu of %zu", start, len);
            goto fail;
        }
        size_t end = calib_piece_end(text, start, len, chunk_bytes);
        int *part = NULL;
        size_t np = 0;
        if ((st = cce_text_tokens(tok, text + start, end - start, &part, &np, err))) goto fail;
        if (count + np > cap) {
            size_t want = cap ? cap : 4096;
            while (want < count + np) want *= 2;
            int *grown = cce_realloc(all, want, sizeof(int));
            if (!grown) {
                cce_free(part);
                st = cce_err_set(err, CCE_ENOMEM, "calibration: cannot hold %zu tokens", count + np);
                goto fail;
            }
            all = grown;
            cap = want;
        }
        if (np) memcpy(all + count, part, np * sizeof(int));
        count += np;
        cce_free(part);
        start = end;
    } while (start < len);
    *ids = all;
    *n = count;
    return CCE_OK;
fail:
    cce_free(all);
    return st;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

cce_status cce_calib_windows(size_t n_ids, int seq_len, int n_seq, uint64_t seed, size_t *starts,
                             cce_err *err) {
    if (seq_len <= 0 || n_seq <= 0)
        return cce_err_set(err, CCE_EINVAL, "calibration: seq_len %d / sequences %d must be positive", seq_len, n_seq);
    size_t w = n_ids / (size_t)seq_len;
    if (w < (size_t)n_seq)
        return cce_err_set(err, CCE_EINVAL, "calibration: %zu tokens give %zu windows of %d, fewer than %d",
                           n_ids, w, seq_len, n_seq);
    size_t *perm = cce_alloc(w, sizeof(size_t));   // (w) window indices
    if (!perm) return cce_err_set(err, CCE_ENOMEM, "calibration: cannot allocate %zu window indices", w);
    for (size_t i = 0; i < w; i++) perm[i] = i;
    cce_rng r;
    cce_rng_seed(&r, seed);
    for (int i = 0; i < n_seq; i++) {
        size_t k = (size_t)i + (size_t)(cce_rng_u64(&r) % (uint64_t)(w - (size_t)i));
        size_t t = perm[i]; perm[i] = perm[k]; perm[k] = t;
    }
    for (int i = 0; i < n_seq; i++) starts[i] = perm[i] * (size_t)seq_len;
    qsort(starts, (size_t)n_seq, sizeof(size_t), cmp_size);
    cce_free(perm);
    return CCE_OK;
}

void cce_calib_free(cce_calib *c) {
    if (!c) return;
    cce_fwd_free(c->fwd);
    cce_free(c->ids);
    cce_free(c->starts);
    cce_free(c->h);
    cce_free(c);
}

cce_status cce_calib_new(const cce_model *m, const int *ids, size_t n_ids, const cce_calib_opts *opts,
                         cce_calib **out, cce_err *err) {
    *out = NULL;
    if (!m || !opts || (n_ids > 0 && !ids)) return cce_err_set(err, CCE_EINVAL, "calibration: missing model or options");
    int seq_len = opts->seq_len;
    if (seq_len < 2 || seq_len > m->cfg.seq_len)
        return cce_err_set(err, CCE_EINVAL, "calibration: seq_len %d out of range 2..%d", seq_len, m->cfg.seq_len);
    if (opts->tokens < seq_len || opts->tokens > (1L << 24))
        return cce_err_set(err, CCE_EINVAL, "calibration: tokens %ld out of range %d..%ld", opts->tokens, seq_len,
                           1L << 24);
    size_t windows = n_ids / (size_t)seq_len;
    if (windows == 0)
        return cce_err_set(err, CCE_EINVAL, "calibration: the text has %zu tokens, less than one sequence of %d",
                           n_ids, seq_len);
    long want = opts->tokens / seq_len;
    int n_seq = (size_t)want < windows ? (int)want : (int)windows;
    cce_calib *c = cce_alloc_zero(1, sizeof *c);
    if (!c) return cce_err_set(err, CCE_ENOMEM, "calibration: cannot allocate the batch");
    cce_status st = CCE_ENOMEM;
    c->model = m;
    c->n_seq = n_seq;
    c->seq_len = seq_len;
    c->rows = n_seq * seq_len;
    c->dim = m->cfg.dim;
    int chunk_rows = opts->chunk_rows > 0 ? opts->chunk_rows : 2048;
    c->chunk_seqs = chunk_rows / seq_len;
    if (c->chunk_seqs < 1) c->chunk_seqs = 1;
    if (c->chunk_seqs > n_seq) c->chunk_seqs = n_seq;
    c->ids = cce_alloc((size_t)c->rows, sizeof(int));
    c->starts = cce_alloc((size_t)n_seq, sizeof(size_t));
    c->h = cce_alloc((size_t)c->rows, (size_t)c->dim * sizeof(float));
    if (!c->ids || !c->starts || !c->h) {
        cce_err_set(err, st, "calibration: cannot allocate %d rows of %d", c->rows, c->dim);
        goto fail;
    }
    if ((st = cce_calib_windows(n_ids, seq_len, n_seq, opts->seed, c->starts, err))) goto fail;
    for (int s = 0; s < n_seq; s++) memcpy(c->ids + (size_t)s * seq_len, ids + c->starts[s], (size_t)seq_len * sizeof(int));
    if ((st = cce_fwd_new(m, c->chunk_seqs * seq_len, seq_len, &c->fwd, err))) goto fail;
    for (int s0 = 0; s0 < n_seq; s0 += c->chunk_seqs) {
        int ns = n_seq - s0 < c->chunk_seqs ? n_seq - s0 : c->chunk_seqs;
        size_t r0 = (size_t)s0 * seq_len;
        if ((st = cce_fwd_embed(c->fwd, c->ids + r0, ns, seq_len, c->h + r0 * c->dim, err))) goto fail;
    }
    *out = c;
    return CCE_OK;
fail:
    cce_calib_free(c);
    return st;
}

cce_status cce_calib_block(cce_calib *c, cce_tap_fn tap, void *user, cce_err *err) {
    if (c->layer >= c->model->cfg.n_layers)
        return cce_err_set(err, CCE_EINVAL, "calibration: all %d blocks already applied", c->model->cfg.n_layers);
    for (int s0 = 0; s0 < c->n_seq; s0 += c->chunk_seqs) {
        int ns = c->n_seq - s0 < c->chunk_seqs ? c->n_seq - s0 : c->chunk_seqs;
        c->chunk_row0 = s0 * c->seq_len;
        cce_status st = cce_fwd_block(c->fwd, c->layer, c->h + (size_t)c->chunk_row0 * c->dim, ns, c->seq_len,
                                      tap, user, err);
        if (st) return st;
    }
    c->layer++;
    return CCE_OK;
}

/* ---- calibration text from a file or a directory ---- */

static int calib_name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

cce_status cce_calib_read_text(const char *path, char **text, size_t *len, char sha[65], cce_err *err) {
    *text = NULL;
    *len = 0;
    struct stat st;
    if (stat(path, &st) != 0) return cce_err_set(err, CCE_EIO, "%s: no such file or directory", path);
    cce_status s;
    if (!S_ISDIR(st.st_mode)) {
        if ((s = cce_read_file(path, (size_t)1 << 32, text, len, err))) return s;
        if (sha) cce_sha256_hex(*text, *len, sha);
        return CCE_OK;
    }
    DIR *dir = opendir(path);
    if (!dir) return cce_err_set(err, CCE_EIO, "%s: cannot read the directory", path);
    char *names[1024];
    int n = 0;
    s = CCE_OK;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        if (n == 1024) {
            s = cce_err_set(err, CCE_EINVAL, "%s: more than 1024 files", path);
            break;
        }
        if (!(names[n] = cce_strdup(e->d_name))) {
            s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
            break;
        }
        n++;
    }
    closedir(dir);
    if (s) goto done;
    qsort(names, (size_t)n, sizeof names[0], calib_name_cmp);
    char *buf = NULL;
    size_t used = 0;
    for (int i = 0; i < n && !s; i++) {
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", path, names[i]) >= (int)sizeof p) {
            s = cce_err_set(err, CCE_EINVAL, "%s: file name too long", path);
            break;
        }
        struct stat fs;
        if (stat(p, &fs) != 0 || !S_ISREG(fs.st_mode)) continue;
        char *part = NULL;
        size_t plen = 0;
        if ((s = cce_read_file(p, (size_t)1 << 32, &part, &plen, err))) break;
        size_t need;
        if (!cce_size_add(used, plen + 3, &need)) s = cce_err_set(err, CCE_ENOMEM, "%s: too large", path);
        char *nb = s ? NULL : cce_realloc(buf, need, 1);
        if (!s && !nb) s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %zu bytes", path, need);
        if (!s) {
            buf = nb;
            if (used) { memcpy(buf + used, "\n\n", 2); used += 2; }   // files never run into each other
            memcpy(buf + used, part, plen);
            used += plen;
            buf[used] = 0;
        }
        cce_free(part);
    }
    if (!s && !used) s = cce_err_set(err, CCE_EINVAL, "%s: the directory holds no text files", path);
    if (s) {
        cce_free(buf);
        goto done;
    }
    *text = buf;   // cce_realloc memory: released by cce_free like any other
    *len = used;
    if (sha) cce_sha256_hex(*text, *len, sha);
done:
    for (int i = 0; i < n; i++) cce_free(names[i]);
    return s;
}
