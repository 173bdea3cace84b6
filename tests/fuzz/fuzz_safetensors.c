/*
 * fuzz_safetensors.c — libFuzzer target: a .safetensors file through cce_st_open, lookups of
 * every tensor, f32 conversion of the small ones, and the load estimate.
 */
#include "fuzz_common.h"
#include "resource.h"
#include "safetensors.h"
#include "util.h"

static int fuzz_safetensors(const uint8_t *data, size_t size) {
    const char *p = fuzz_path("model.safetensors");
    fuzz_write(p, data, size);
    cce_err err = {{0}};
    cce_safetensors st;
    if (cce_st_open(p, &st, &err) == CCE_OK) {
        for (int i = 0; i < st.n; i++) {
            const cce_st_tensor *t = &st.t[i];
            if (cce_st_find(&st, t->name) != t) abort();
            if (t->end < t->begin || t->end > size) abort();
            uint64_t numel = cce_st_numel(t);
            if (numel <= (1u << 16) && (t->dtype == CCE_ST_F32 || t->dtype == CCE_ST_F16 || t->dtype == CCE_ST_BF16)) {
                float *buf = cce_alloc(numel ? numel : 1, sizeof *buf);
                if (buf && cce_st_to_f32(t, buf, p, &err) != CCE_OK) abort();
                cce_free(buf);
            }
        }
        for (int i = 0; i < st.n_meta; i++) (void)cce_st_meta(&st, st.meta[2 * i]);
        cce_st_close(&st);
    } else if (!strstr(err.msg, p)) {
        abort();
    }
    cce_load_estimate est;
    (void)cce_model_estimate(p, &est, &err);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_safetensors(data, size); }
#endif
