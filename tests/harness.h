/*
 * harness.h — a tiny unit-test harness. Each tests/unit/test_<module>.c is its own program:
 *
 *   TEST(name) { CHECK(cond); CHECK_NEAR(a, b, tol); CHECK_EQ_INT(a, b); ... }
 *   int main(void) { RUN(name); ...; return harness_done(); }
 *
 * Every test prints "PASS name", "FAIL name: file:line: what" or, when it called
 * SKIP_TEST("why") because it cannot run here, "SKIP name: why"; tests/run.sh counts those lines.
 * A test stops at its first failing check. Data files come from $CCE_DATA (default ../shared/data);
 * harness_data() builds a path and harness_have() tells whether it exists.
 */
#ifndef CCE_HARNESS_H
#define CCE_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ftw.h>
#include <sys/stat.h>

static int harness_failed_total, harness_passed_total, harness_skipped_total, harness_cur_failed, harness_cur_skipped;
static char harness_msg[1024];

#define TEST(name) static void test_##name(void)
#define RUN(name) do { \
        harness_cur_failed = harness_cur_skipped = 0; harness_msg[0] = 0; \
        test_##name(); \
        if (harness_cur_failed) { harness_failed_total++; printf("FAIL %s: %s\n", #name, harness_msg); } \
        else if (harness_cur_skipped) { harness_skipped_total++; printf("SKIP %s: %s\n", #name, harness_msg); } \
        else { harness_passed_total++; printf("PASS %s\n", #name); } \
        fflush(stdout); \
    } while (0)

/* Stop the current test and report it as skipped (not passed), with the reason. */
#define SKIP_TEST(...) do { \
        snprintf(harness_msg, sizeof harness_msg, __VA_ARGS__); \
        harness_cur_skipped = 1; return; \
    } while (0)

#define FAILF(...) do { \
        int n_ = snprintf(harness_msg, sizeof harness_msg, "%s:%d: ", __FILE__, __LINE__); \
        snprintf(harness_msg + n_, sizeof harness_msg - (size_t)n_, __VA_ARGS__); \
        harness_cur_failed = 1; return; \
    } while (0)

#define CHECK(c) do { if (!(c)) FAILF("CHECK(%s)", #c); } while (0)
#define CHECK_MSG(c, ...) do { if (!(c)) FAILF(__VA_ARGS__); } while (0)
#define CHECK_EQ_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
        if (a_ != b_) FAILF("%s == %lld, expected %s == %lld", #a, a_, #b, b_); } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (double)(a), b_ = (double)(b); \
        if (!(fabs(a_ - b_) <= (tol))) FAILF("%s = %.9g, expected %.9g (tol %g, diff %.3g)", #a, a_, b_, (double)(tol), fabs(a_ - b_)); } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
        if (!a_ || !b_ || strcmp(a_, b_)) FAILF("%s = \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
#define CHECK_OK(expr) do { cce_err e_ = {{0}}; (void)e_; int s_ = (int)(expr); \
        if (s_ != 0) FAILF("%s failed with status %d", #expr, s_); } while (0)

static inline const char *harness_data(const char *rel) {
    static char buf[8][1024];
    static int k;
    const char *root = getenv("CCE_DATA");
    if (!root || !*root) root = "../shared/data";
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", root, rel);
    return b;
}
static inline int harness_have(const char *path) { return access(path, R_OK) == 0; }

/* A scratch directory unique to this test program, created on first use and removed (with
 * everything in it) by harness_done; CCE_TEST_KEEP=1 keeps it for a look. */
static char harness_tmp[512];
static int harness_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}
static inline const char *harness_tmpdir(void) {
    char *dir = harness_tmp;
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof harness_tmp, "%s/cce-test-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    }
    return dir;
}

static inline int harness_done(void) {
    if (harness_tmp[0] && !getenv("CCE_TEST_KEEP")) nftw(harness_tmp, harness_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed, %d skipped\n", harness_passed_total, harness_failed_total, harness_skipped_total);
    return harness_failed_total ? 1 : 0;
}

#endif
