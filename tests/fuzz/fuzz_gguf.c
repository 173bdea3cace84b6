/*
 * fuzz_gguf.c — libFuzzer target: a GGUF file through cce_gguf_list (any architecture),
 * cce_load_gguf (llama, with its embedded tokenizer) and the load estimate. A tokenizer that
 * loads is exercised with an encode/decode round.
 */
#include "fuzz_common.h"
#include "gguf.h"
#include "model.h"
#include "resource.h"
#include "tokenizer.h"
#include "util.h"

static int fuzz_gguf(const uint8_t *data, size_t size) {
    const char *p = fuzz_path("model.gguf");
    fuzz_write(p, data, size);
    cce_err err = {{0}};
    cce_gguf_tensor *t = NULL;
    int n = 0;
    char arch[64];
    if (cce_gguf_list(p, &t, &n, arch, sizeof arch, &err) == CCE_OK) {
        for (int i = 0; i < n; i++)
            if (t[i].n_dims < 1 || t[i].n_dims > 4 || t[i].offset > size || t[i].nbytes > size - t[i].offset) abort();
        cce_free(t);
    } else if (!strstr(err.msg, p)) {
        abort();
    }
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    if (cce_load_gguf(p, &m, &tok, &err) == CCE_OK) {
        if (cce_model_validate(m, p, &err) != CCE_OK) abort();
        if (tok) {
            int *ids = NULL;
            size_t nid = 0;
            static const char text[] = "Once upon a time, \xe2\x96\x81 \xff<0x41>";
            if (cce_tokenizer_encode(tok, text, sizeof text - 1, 1, &ids, &nid, &err) == CCE_OK) {
                char buf[64];
                for (size_t i = 0; i < nid; i++) cce_tokenizer_decode(tok, ids[i ? i - 1 : 0], ids[i], buf, sizeof buf);
                cce_free(ids);
            }
            cce_tokenizer_free(tok);
        }
        cce_model_free(m);
    }
    cce_load_estimate est;
    (void)cce_model_estimate(p, &est, &err);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_gguf(data, size); }
#endif
