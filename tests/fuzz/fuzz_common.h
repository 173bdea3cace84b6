/*
 * fuzz_common.h — shared plumbing of the libFuzzer targets (tests/fuzz/fuzz_*.c).
 *
 * Every loader takes a path, so each input is written to a file in a scratch directory private
 * to this process (removed at exit) and the loader is run on it; writing a few KB costs far
 * less than the parse. Each target defines `static int fuzz_NAME(const uint8_t *, size_t)` and,
 * unless FUZZ_NO_MAIN is defined, LLVMFuzzerTestOneInput calling it: tests/unit/test_regress.c
 * defines FUZZ_NO_MAIN, includes every target and replays tests/regress/NAME/ through the same
 * functions in the normal (and the ASan) build.
 */
#ifndef CCE_FUZZ_COMMON_H
#define CCE_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir_path[512];

static int fuzz_rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    remove(p);
    return 0;
}

static void fuzz_dir_cleanup(void) {
    if (fuzz_dir_path[0]) nftw(fuzz_dir_path, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The private scratch directory, created on first use. */
static const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/cce-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) { perror("mkdtemp"); abort(); }
        atexit(fuzz_dir_cleanup);
    }
    return fuzz_dir_path;
}

/* dir/name into a static buffer (4 rotating slots). */
static const char *fuzz_path(const char *name) {
    static char buf[4][640];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", fuzz_dir(), name);
    return b;
}

/* Write size bytes to path (truncating). Aborts on I/O failure: that is the harness, not the
 * code under test. */
static void fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) { perror(path); abort(); }
}

/* A tokenizer that loaded must encode and decode a fixed awkward text (UTF-8, an invalid byte,
 * control characters, special-token lookalikes next to words and spaces, digits, marks, CJK,
 * NBSP) with every id inside its vocabulary. */
#include "tokenizer.h"
#include "util.h"
static inline void fuzz_exercise_tokenizer(const cce_tokenizer *tok, int vocab) {
    static const char text[] = "Once upon a time, there was \xc3\xa9\xff\n\t<s> it's 123!"
                               " IT'S x<mask> <mask>  [X] a[X] the\xe2\x96\x81the 12345 \xd9\xa3\xd9\xa4"
                               " e\xcc\x81 \xe6\x97\xa5\xe6\x9c\xac\xc2\xa0\r\n\r\n  <|endoftext|>";
    cce_err err = {{0}};
    int *ids = NULL;
    size_t n = 0;
    if (cce_tokenizer_encode(tok, text, sizeof text - 1, 1, &ids, &n, &err) != CCE_OK) return;
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= vocab) abort();
        cce_tokenizer_decode(tok, ids[i ? i - 1 : 0], ids[i], buf, sizeof buf);
    }
    cce_free(ids);
}

#endif
