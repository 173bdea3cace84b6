/*
 * histo.h — activation histograms of a whole model over calibration windows, binned exactly
 * like a reference run's, so two models can be compared bin by bin (DESIGN §4: Histograms,
 * original vs committed).
 *
 * The analysis fixes each site's bins from the first calibration batch it sees (stats.h). To
 * compare a compressed model with its original, cce_histo_run runs the compressed model over
 * the same calibration windows (same token stream, tokens, seq_len and seed: calib.h chooses
 * the same windows) block by block with taps, and counts every value a site reports into a
 * histogram whose edges are copied (cce_hist_init_edges) from the reference's histogram of the
 * same block and site. Run on the original model with the analysis's windows, the counts equal
 * the analysis's own, bin for bin (tests/unit/test_histo.c checks it).
 *
 * A site stays empty (n_bins 0) when the reference has no ready histogram for it (block not
 * analysed, site that did not report) or when the model does not run it: a dropped block
 * reports only CCE_TAP_BLOCK_OUT, a dropped sublayer none of its sites. Shapes may differ from
 * the reference's (a pruned block's HEADS and FFN_ACT sites have fewer columns): histograms
 * count values, so they compare all the same.
 *
 * Memory: the calibration batch (ids, hidden states), one chunk of forward scratch, and
 * (n_layers × 6) histograms of (n_bins + 2) counts.
 *
 * Thread-safety: one call per thread; the model and the reference are only read.
 */
#ifndef CCE_HISTO_H
#define CCE_HISTO_H

#include <stddef.h>
#include "analysis.h"
#include "calib.h"

typedef struct {
    int n_layers;
    cce_hist *hist;     // (n_layers, CCE_TAP_COUNT): block l, site s at [l * CCE_TAP_COUNT + s];
                        // n_bins 0 when empty (see above)
} cce_histo;

/* Progress: blocks done / total; return non-zero to cancel (-> CCE_ECANCEL). */
typedef int (*cce_histo_progress_fn)(void *user, int done, int total);

/* Histograms of m over the calibration windows that opts chooses from the token stream ids
 * (n_ids), binned like ref[l]->hist[s] (ref has m->cfg.n_layers entries; an entry may be NULL:
 * that block's sites stay empty). opts->seq_len must be resolved (1..model seq_len), as
 * cce_calib_new wants it. progress may be NULL. On success *out holds the histograms (free
 * with cce_histo_free); on failure *out is empty. Errors: CCE_EINVAL (no window in the stream,
 * ids out of the vocabulary), CCE_ENOMEM, CCE_ECANCEL. */
cce_status cce_histo_run(const cce_model *m, const int *ids, size_t n_ids, const cce_calib_opts *opts,
                         const cce_block_result *const *ref, cce_histo_progress_fn progress, void *user,
                         cce_histo *out, cce_err *err);

/* Block l's histogram at site s, or NULL when empty or out of range. */
const cce_hist *cce_histo_get(const cce_histo *h, int l, int s);

/* Total variation distance between two histograms with the same edges: ½ Σ_i |p_i − q_i| over
 * the n_bins + 2 bins (outside counts included) of the normalised counts, in [0, 1]; -1 when
 * the edges differ or either is empty. */
double cce_hist_tv_distance(const cce_hist *a, const cce_hist *b);

void cce_histo_free(cce_histo *h);

#endif
