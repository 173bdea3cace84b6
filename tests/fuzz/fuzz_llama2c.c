/*
 * fuzz_llama2c.c — libFuzzer target: a llama2.c checkpoint (header + body) through
 * cce_load_llama2c and the load estimate. A model that loads must pass cce_model_validate and
 * its parameter count must be computable.
 */
#include "fuzz_common.h"
#include "model.h"
#include "resource.h"

static int fuzz_llama2c(const uint8_t *data, size_t size) {
    const char *p = fuzz_path("model.bin");
    fuzz_write(p, data, size);
    cce_model *m = NULL;
    cce_err err = {{0}};
    if (cce_load_llama2c(p, &m, &err) == CCE_OK) {
        if (cce_model_validate(m, p, &err) != CCE_OK) abort();
        cce_param_count c = cce_model_params(m);
        if (c.total <= 0) abort();
        cce_model_free(m);
    } else if (!strstr(err.msg, p)) {
        abort(); /* every error names the file */
    }
    cce_load_estimate est;
    (void)cce_model_estimate(p, &est, &err);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_llama2c(data, size); }
#endif
