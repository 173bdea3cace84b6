/*
 * fuzz_tokenizer_json.c — libFuzzer target: a Hugging Face tokenizer.json through
 * cce_tokenizer_load_hf; a tokenizer that loads encodes and decodes a fixed text, and encodes
 * the input bytes themselves.
 */
#include "fuzz_common.h"
#include "tokenizer.h"
#include "util.h"

static int fuzz_tokenizer_json(const uint8_t *data, size_t size) {
    const char *p = fuzz_path("tokenizer.json");
    fuzz_write(p, data, size);
    cce_err err = {{0}};
    cce_tokenizer *tok = NULL;
    if (cce_tokenizer_load_hf(p, &tok, &err) == CCE_OK) {
        int vocab = cce_tokenizer_vocab_size(tok);
        fuzz_exercise_tokenizer(tok, vocab);
        /* and the input itself as a text: arbitrary bytes through the mutated pipeline */
        int *ids = NULL;
        size_t n = 0;
        if (cce_tokenizer_encode(tok, (const char *)data, size < 4096 ? size : 4096, 0, &ids, &n, &err) == CCE_OK) {
            for (size_t i = 0; i < n; i++) if (ids[i] < 0 || ids[i] >= vocab) abort();
            cce_free(ids);
        }
        cce_tokenizer_free(tok);
    } else if (!strstr(err.msg, p)) {
        abort();
    }
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_tokenizer_json(data, size); }
#endif
