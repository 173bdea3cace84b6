/*
 * curve.c — the cost-curve record of select.h: names and lifetime. (The curves themselves are
 * computed by the analysis, engine/analysis.c, and read by the planner, engine/planner.c.)
 */
#include <string.h>
#include "select.h"
#include "util.h"

const char *cce_curve_name(cce_curve_kind k) {
    static const char *const names[CCE_CURVE_COUNT] = {
        "neurons", "heads", "rank_wq", "rank_wk", "rank_wv", "rank_wo", "rank_w1", "rank_w3", "rank_w2",
        "drop_attn", "drop_ffn", "drop_block"};
    return (int)k >= 0 && k < CCE_CURVE_COUNT ? names[k] : "?";
}

cce_status cce_curve_alloc(cce_curve *c, int n, int with_order, cce_err *err) {
    memset(c, 0, sizeof *c);
    if (n < 0) return cce_err_set(err, CCE_EINVAL, "curve: %d steps", n);
    c->n = n;
    c->cost = cce_alloc_zero((size_t)n + 1, sizeof(double));
    c->sim = cce_alloc_zero((size_t)n + 1, sizeof(double));
    c->nuc = cce_alloc_zero((size_t)n + 1, sizeof(double));
    c->params = cce_alloc_zero((size_t)n + 1, sizeof(int64_t));
    c->order = with_order && n > 0 ? cce_alloc_zero((size_t)n, sizeof(int)) : NULL;
    if (!c->cost || !c->sim || !c->nuc || !c->params || (with_order && n > 0 && !c->order)) {
        cce_curve_free(c);
        return cce_err_set(err, CCE_ENOMEM, "curve: cannot allocate %d steps", n);
    }
    return CCE_OK;
}

void cce_curve_free(cce_curve *c) {
    cce_free(c->order);
    cce_free(c->cost);
    cce_free(c->sim);
    cce_free(c->nuc);
    cce_free(c->params);
    memset(c, 0, sizeof *c);
}
