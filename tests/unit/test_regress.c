/*
 * test_regress.c — replays every input under tests/regress/<target>/ through the fuzz target
 * of the same name (tests/fuzz/fuzz_<target>.c, included here with FUZZ_NO_MAIN), in the
 * normal build and, under `make test-asan`, with the sanitizers. Each file is an input that once
 * crashed or misbehaved; the target's own checks abort on a wrong result (an error message that
 * does not name the file, a loaded model that does not validate), so a regression shows up as
 * a FAIL from run.sh. $CCE_REGRESS_DIR overrides the directory (default tests/regress, relative
 * to the repository root where run.sh runs).
 */
#define FUZZ_NO_MAIN 1
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include "harness.h"
#include "fuzz/fuzz_gguf.c"
#include "fuzz/fuzz_hf_config.c"
#include "fuzz/fuzz_llama2c.c"
#include "fuzz/fuzz_safetensors.c"
#include "fuzz/fuzz_tokenizer_bin.c"
#include "fuzz/fuzz_tokenizer_json.c"

typedef struct {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} regress_target;

static const regress_target targets[] = {
    {"gguf", fuzz_gguf},
    {"hf_config", fuzz_hf_config},
    {"llama2c", fuzz_llama2c},
    {"safetensors", fuzz_safetensors},
    {"tokenizer_bin", fuzz_tokenizer_bin},
    {"tokenizer_json", fuzz_tokenizer_json},
};

static const char *regress_root(void) {
    const char *d = getenv("CCE_REGRESS_DIR");
    return d && *d ? d : "tests/regress";
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replay every file of dir through fn; returns the count, -1 when a file cannot be read. */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return 0; /* no inputs for this target (yet) */
    char *names[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    int done = 0;
    for (int i = 0; i < n; i++) {
        char p[4096];
        FILE *f = snprintf(p, sizeof p, "%s/%s", dir, names[i]) < (int)sizeof p ? fopen(p, "rb") : NULL;
        uint8_t *buf = malloc(1 << 20);
        size_t len = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
        if (f) fclose(f);
        if (!f || !buf) done = -1;
        else {
            fn(buf, len);
            if (done >= 0) done++;
        }
        free(buf);
        free(names[i]);
    }
    return done;
}

TEST(regress_dir_present) {
    DIR *d = opendir(regress_root());
    CHECK_MSG(d != NULL, "%s: missing (run from the repository root or set CCE_REGRESS_DIR)", regress_root());
    closedir(d);
}

TEST(regress_replay) {
    int total = 0;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char dir[2048];
        CHECK(snprintf(dir, sizeof dir, "%s/%s", regress_root(), targets[i].name) < (int)sizeof dir);
        int n = replay_dir(dir, targets[i].fn);
        CHECK_MSG(n >= 0, "%.900s: an input could not be read", dir);
        total += n;
    }
    CHECK_MSG(total > 0, "no regression inputs found under %s", regress_root());
    printf("# replayed %d regression inputs\n", total);
}

int main(void) {
    RUN(regress_dir_present);
    RUN(regress_replay);
    return harness_done();
}
