/*
 * fuzz_tokenizer_bin.c — libFuzzer target: a llama2.c tokenizer.bin through
 * cce_tokenizer_load_llama2c. The vocabulary size comes from the model, not the file, so the
 * first two input bytes choose it (1..1024, little-endian); the rest is the file. A tokenizer
 * that loads encodes and decodes a fixed text.
 */
#include "fuzz_common.h"
#include "tokenizer.h"
#include "util.h"

static int fuzz_tokenizer_bin(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int vocab = (int)((data[0] | data[1] << 8) % 1024) + 1;
    const char *p = fuzz_path("tokenizer.bin");
    fuzz_write(p, data + 2, size - 2);
    cce_err err = {{0}};
    cce_tokenizer *tok = NULL;
    if (cce_tokenizer_load_llama2c(p, vocab, &tok, &err) == CCE_OK) {
        if (cce_tokenizer_vocab_size(tok) != vocab) abort();
        fuzz_exercise_tokenizer(tok, vocab);
        cce_tokenizer_free(tok);
    } else if (!strstr(err.msg, p)) {
        abort();
    }
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_tokenizer_bin(data, size); }
#endif
