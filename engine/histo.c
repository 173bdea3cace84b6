/*
 * histo.c — histograms of a model over calibration windows with a reference's bin edges (the
 * contract is in include/histo.h).
 *
 * The calibration batch (calib.h) applies one block at a time to the hidden states of every
 * chosen window, a chunk of whole sequences per forward call; the tap adds each site's chunk
 * to that block's histogram. Counting is order-independent integer addition, so chunking never
 * changes a count: the same model over the same windows gives the analysis's counts exactly.
 */
#include <math.h>
#include <string.h>
#include "histo.h"
#include "util.h"

typedef struct {
    cce_histo *h;
    cce_err tap_err;
    cce_status tap_st;
} histo_run;

static int histo_tap(void *user, const cce_tap *t) {
    histo_run *r = user;
    if (t->layer < 0 || t->layer >= r->h->n_layers || (int)t->site < 0 || t->site >= CCE_TAP_COUNT) return 0;
    cce_hist *h = &r->h->hist[(size_t)t->layer * CCE_TAP_COUNT + t->site];
    if (h->n_bins <= 0 || t->rows <= 0 || t->cols <= 0) return 0;
    r->tap_st = cce_hist_add(h, t->x, t->rows, t->cols, t->ld, &r->tap_err);
    return r->tap_st != CCE_OK;
}

void cce_histo_free(cce_histo *h) {
    if (!h) return;
    for (int i = 0; h->hist && i < h->n_layers * CCE_TAP_COUNT; i++) cce_hist_free(&h->hist[i]);
    cce_free(h->hist);
    memset(h, 0, sizeof *h);
}

cce_status cce_histo_run(const cce_model *m, const int *ids, size_t n_ids, const cce_calib_opts *opts,
                         const cce_block_result *const *ref, cce_histo_progress_fn progress, void *user,
                         cce_histo *out, cce_err *err) {
    memset(out, 0, sizeof *out);
    int L = m->cfg.n_layers;
    if (!ref) return cce_err_set(err, CCE_EINVAL, "histograms: no reference histograms");
    if (!opts || opts->seq_len < 1 || opts->seq_len > m->cfg.seq_len)
        return cce_err_set(err, CCE_EINVAL, "histograms: seq_len %d outside 1..%d", opts ? opts->seq_len : 0,
                           m->cfg.seq_len);
    out->n_layers = L;
    out->hist = cce_alloc_zero((size_t)L, CCE_TAP_COUNT * sizeof(cce_hist));
    if (!out->hist) {
        out->n_layers = 0;
        return cce_err_set(err, CCE_ENOMEM, "histograms: out of memory for %d x %d histograms", L, CCE_TAP_COUNT);
    }
    cce_status st = CCE_OK;
    for (int l = 0; l < L && !st; l++) {
        const cce_block_result *b = ref[l];
        for (int s = 0; b && s < CCE_TAP_COUNT && !st; s++)
            if (b->hist[s].n_bins > 0 && b->hist[s].counts && b->hist[s].ready)
                st = cce_hist_init_edges(&out->hist[(size_t)l * CCE_TAP_COUNT + s], &b->hist[s], err);
    }
    cce_calib *c = NULL;
    if (!st) st = cce_calib_new(m, ids, n_ids, opts, &c, err);
    histo_run r = {.h = out};
    for (int l = 0; l < L && !st; l++) {
        st = cce_calib_block(c, histo_tap, &r, err);
        if (st == CCE_ECANCEL && r.tap_st) {   // the tap stopped on a counting error, not a cancel
            st = r.tap_st;
            *err = r.tap_err;
        }
        if (!st && progress && progress(user, l + 1, L))
            st = cce_err_set(err, CCE_ECANCEL, "histograms: cancelled after %d of %d blocks", l + 1, L);
    }
    cce_calib_free(c);
    if (st) cce_histo_free(out);
    return st;
}

const cce_hist *cce_histo_get(const cce_histo *h, int l, int s) {
    if (!h || !h->hist || l < 0 || l >= h->n_layers || s < 0 || s >= CCE_TAP_COUNT) return NULL;
    const cce_hist *x = &h->hist[(size_t)l * CCE_TAP_COUNT + s];
    return x->n_bins > 0 && x->counts ? x : NULL;
}

double cce_hist_tv_distance(const cce_hist *a, const cce_hist *b) {
    if (!a || !b || !a->counts || !b->counts || a->n_bins != b->n_bins || a->lo != b->lo || a->hi != b->hi ||
        !a->total || !b->total)
        return -1;
    double d = 0, na = (double)a->total, nb = (double)b->total;
    for (int i = 0; i < a->n_bins + 2; i++) d += fabs((double)a->counts[i] / na - (double)b->counts[i] / nb);
    return 0.5 * d;
}
