/*
 * fuzz_hf_config.c — libFuzzer target: a Hugging Face config.json through cce_load_hf, on a
 * directory whose model.safetensors is fixed and valid (tiny_models.h). The first input byte
 * picks the directory (even: the tiny Llama, odd: the tiny GPT-2); the rest is config.json.
 * A model that loads must validate and count its parameters; the load estimate runs too.
 */
#include <sys/stat.h>
#include "fuzz_common.h"
#include "model.h"
#include "resource.h"
#include "tiny_models.h"

static char fuzz_hf_dirs[2][640];

static void fuzz_hf_config_init(void) {
    if (fuzz_hf_dirs[0][0]) return;
    tiny_tensor t[TINY_MAX_TENSORS];
    for (int k = 0; k < 2; k++) {
        if (snprintf(fuzz_hf_dirs[k], sizeof fuzz_hf_dirs[k], "%s", fuzz_path(k ? "gpt2" : "llama")) >=
            (int)sizeof fuzz_hf_dirs[k])
            abort();
        if (mkdir(fuzz_hf_dirs[k], 0755) != 0) { perror(fuzz_hf_dirs[k]); abort(); }
        char p[700];
        if (snprintf(p, sizeof p, "%s/model.safetensors", fuzz_hf_dirs[k]) >= (int)sizeof p) abort();
        int n = k ? tiny_gpt2_tensors(t) : tiny_llama_tensors(t);
        if (tiny_st_write(p, t, n, "F32", 4, NULL) != 0) { perror(p); abort(); }
    }
}

static int fuzz_hf_config(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    fuzz_hf_config_init();
    const char *dir = fuzz_hf_dirs[data[0] & 1];
    char p[700];
    if (snprintf(p, sizeof p, "%s/config.json", dir) >= (int)sizeof p) abort();
    fuzz_write(p, data + 1, size - 1);
    cce_model *m = NULL;
    cce_err err = {{0}};
    if (cce_load_hf(dir, &m, &err) == CCE_OK) {
        if (cce_model_validate(m, dir, &err) != CCE_OK) abort();
        cce_param_count c = cce_model_params(m);
        if (c.total <= 0) abort();
        cce_model_free(m);
    } else if (!strstr(err.msg, dir)) {
        abort();
    }
    cce_load_estimate est;
    (void)cce_model_estimate(dir, &est, &err);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_hf_config(data, size); }
#endif
