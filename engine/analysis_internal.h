/*
 * analysis_internal.h — what engine/analysis_io.c needs of the job beyond the public API: a
 * job built from a file (no calibration batch, every step done) and write access to its results
 * while it is being filled. Not for other modules.
 */
#ifndef CCE_ANALYSIS_INTERNAL_H
#define CCE_ANALYSIS_INTERNAL_H

#include "analysis.h"

/* A job with L = m->cfg.n_layers empty results, zeroed layer CKA, the given options and
 * calibration facts, and no calibration batch. Mark it finished once filled. */
cce_status cce_analysis_new_loaded(const cce_model *m, const cce_analysis_opts *opts, size_t stream_tokens,
                                   int n_seq, int seq_len, cce_analysis **out, cce_err *err);
cce_block_result *cce_analysis_result_slot(cce_analysis *job, int l);
float *cce_analysis_layer_cka_slot(cce_analysis *job);
void cce_analysis_mark_finished(cce_analysis *job);

#endif
