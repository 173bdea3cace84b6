/*
 * fuzz_gguf.c — libFuzzer target: a GGUF file through cce_gguf_list and cce_gguf_list_meta
 * (any architecture), cce_load_gguf (llama / mistral / qwen2 / deci, with its embedded
 * tokenizer) and the load estimate. A tokenizer that loads is exercised with an encode/decode
 * round; a model that loads is written back with cce_export_gguf, which must either refuse it
 * cleanly or write a file that loads again.
 */
#include "fuzz_common.h"
#include "export.h"
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
    cce_gguf_meta *meta = NULL;
    if (cce_gguf_list_meta(p, &meta, &n, &err) == CCE_OK) {
        for (int i = 0; i < n; i++)
            if (!memchr(meta[i].key, 0, sizeof meta[i].key) || !memchr(meta[i].value, 0, sizeof meta[i].value)) abort();
        cce_free(meta);
    } else if (!strstr(err.msg, p)) {
        abort();
    }
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    if (cce_load_gguf(p, &m, &tok, &err) == CCE_OK) {
        if (cce_model_validate(m, p, &err) != CCE_OK) abort();
        const char *out = fuzz_path("written.gguf");
        cce_status ws = cce_export_gguf(m, tok, out, size % 2 ? CCE_WT_Q8_0 : CCE_WT_F32, &err);
        if (ws == CCE_OK) {
            cce_model *back = NULL;
            if (cce_load_gguf(out, &back, NULL, &err) != CCE_OK) abort();   /* what we write, we read */
            cce_model_free(back);
        } else if (!strstr(err.msg, out) || ws == CCE_ECANCEL) {
            abort();
        }
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
