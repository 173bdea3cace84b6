/*
 * test_util.c — the engine's utility layer: SHA-256 against the FIPS 180-2 vectors and the
 * data file's published hash, half-precision conversions, overflow-checked sizes, allocation
 * fault injection and limits, atomic writes, UTF-8 validation, the RNG's determinism.
 */
#include <stdint.h>
#include <sys/stat.h>
#include "harness.h"
#include "util.h"

TEST(sha256_vectors) {
    char h[65];
    cce_sha256_hex("", 0, h);
    CHECK_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cce_sha256_hex("abc", 3, h);
    CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";   // 56 bytes: padding spills a block
    cce_sha256_hex(two, strlen(two), h);
    CHECK_STR(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *a = cce_alloc(1000000, 1);
    CHECK(a);
    memset(a, 'a', 1000000);
    cce_sha256_hex(a, 1000000, h);
    cce_free(a);
    CHECK_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(sha256_file_matches_sources) {
    const char *p = harness_data("llama2c/stories260K.bin");
    CHECK_MSG(harness_have(p), "missing %s", p);
    char h[65];
    cce_err e = {{0}};
    CHECK_OK(cce_sha256_file(p, h, &e));
    CHECK_STR(h, "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696");
    CHECK(cce_sha256_file("/nonexistent/x", h, &e) == CCE_EIO && strstr(e.msg, "/nonexistent/x"));
}

TEST(half_precision) {
    /* exact values, subnormals, infinities, and round-to-nearest-even */
    CHECK_NEAR(cce_f16_to_f32(0x3c00), 1.0, 0);
    CHECK_NEAR(cce_f16_to_f32(0xc000), -2.0, 0);
    CHECK_NEAR(cce_f16_to_f32(0x0001), 5.960464477539063e-08, 0);   // smallest subnormal 2^-24
    CHECK_NEAR(cce_f16_to_f32(0x7bff), 65504.0, 0);
    CHECK(isinf(cce_f16_to_f32(0x7c00)) && isnan(cce_f16_to_f32(0x7e00)));
    CHECK_EQ_INT(cce_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(cce_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(cce_f32_to_f16(1e6f), 0x7c00);                      // overflow to inf
    CHECK_EQ_INT(cce_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);           // tie, to even
    CHECK_EQ_INT(cce_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);       // tie, to even (up)
    CHECK_EQ_INT(cce_f32_to_f16(0x1p-24f), 0x0001);
    for (uint32_t h = 0; h < 0x10000; h++) {                          // every finite half round-trips
        if ((h & 0x7c00) == 0x7c00) continue;
        uint16_t back = cce_f32_to_f16(cce_f16_to_f32((uint16_t)h));
        CHECK_MSG(back == h || (h == 0x8000 && back == 0x8000), "f16 0x%04x -> 0x%04x", h, back);
    }
    CHECK_NEAR(cce_bf16_to_f32(0x3f80), 1.0, 0);
    CHECK_EQ_INT(cce_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(cce_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);            // tie, to even
    CHECK_EQ_INT(cce_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
}

TEST(overflow_checks) {
    size_t z;
    uint64_t u;
    CHECK(cce_size_mul(1u << 20, 1u << 20, &z) && z == (size_t)1 << 40);
    CHECK(!cce_size_mul(SIZE_MAX / 2 + 1, 2, &z));
    CHECK(!cce_size_add(SIZE_MAX, 1, &z));
    CHECK(!cce_u64_mul(UINT64_MAX / 3 + 1, 3, &u));
    CHECK(!cce_u64_add(UINT64_MAX, 1, &u));
    CHECK(cce_alloc(SIZE_MAX / 2, 4) == NULL);                        // wraps
    CHECK(cce_alloc(cce_alloc_limit(), 2) == NULL);                   // above the limit
}

TEST(alloc_fault_injection) {
    cce_alloc_fail_after(3);
    void *a = cce_alloc(8, 1), *b = cce_alloc(8, 1), *c = cce_alloc(8, 1), *d = cce_alloc(8, 1);
    cce_alloc_fail_after(0);
    CHECK(a && b && !c && d);                                         // exactly the third fails
    CHECK(((uintptr_t)a & 63) == 0);                                  // 64-byte aligned
    cce_free(a); cce_free(b); cce_free(d);
}

TEST(atomic_write_replaces_whole_file) {
    char p[600];
    snprintf(p, sizeof p, "%s/out.txt", harness_tmpdir());
    cce_err e = {{0}};
    CHECK_OK(cce_write_file_atomic(p, "first version", 13, &e));
    CHECK_OK(cce_write_file_atomic(p, "second", 6, &e));
    char *buf = NULL;
    size_t n = 0;
    CHECK_OK(cce_read_file(p, 1 << 20, &buf, &n, &e));
    CHECK(n == 6 && !strcmp(buf, "second"));
    cce_free(buf);
    CHECK(cce_read_file(p, 3, &buf, &n, &e) == CCE_EFORMAT && strstr(e.msg, p));   // size cap
    /* a write into a missing directory fails and says where */
    char bad[640];
    snprintf(bad, sizeof bad, "%s/no/such/dir/f", harness_tmpdir());
    CHECK(cce_write_file_atomic(bad, "x", 1, &e) == CCE_EIO && strstr(e.msg, "no/such/dir"));
}

TEST(map_file_errors) {
    cce_mapped m;
    cce_err e = {{0}};
    CHECK(cce_map_file(harness_tmpdir(), &m, &e) == CCE_EIO && strstr(e.msg, "is a directory"));
    char p[600];
    snprintf(p, sizeof p, "%s/empty", harness_tmpdir());
    FILE *f = fopen(p, "w");
    CHECK(f);
    fclose(f);
    CHECK_OK(cce_map_file(p, &m, &e));
    CHECK(m.len == 0 && m.data == NULL);
    cce_unmap(&m);
}

TEST(utf8_validation) {
    static const char ok[] = "plain \xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80";
    CHECK(cce_utf8_valid(ok, sizeof ok - 1));
    CHECK(!cce_utf8_valid(ok, sizeof ok - 2));      // the emoji cut short
    CHECK(!cce_utf8_valid("\xff", 1));
    CHECK(!cce_utf8_valid("\xc0\xaf", 2));          // overlong '/'
    CHECK(!cce_utf8_valid("\xed\xa0\x80", 3));      // surrogate
    CHECK(!cce_utf8_valid("\xe2\x96", 2));          // truncated
    CHECK(!cce_utf8_valid("\xf4\x90\x80\x80", 4));  // above U+10FFFF
}

TEST(rng_deterministic) {
    cce_rng a, b;
    cce_rng_seed(&a, 42);
    cce_rng_seed(&b, 42);
    double mean = 0, var = 0;
    for (int i = 0; i < 20000; i++) {
        CHECK(cce_rng_u64(&a) == cce_rng_u64(&b));
        float x = cce_rng_normal(&a);
        (void)cce_rng_normal(&b);
        mean += x;
        var += (double)x * x;
    }
    mean /= 20000;
    var = var / 20000 - mean * mean;
    CHECK_NEAR(mean, 0.0, 0.03);
    CHECK_NEAR(var, 1.0, 0.05);
}

int main(void) {
    RUN(sha256_vectors);
    RUN(sha256_file_matches_sources);
    RUN(half_precision);
    RUN(overflow_checks);
    RUN(alloc_fault_injection);
    RUN(atomic_write_replaces_whole_file);
    RUN(map_file_errors);
    RUN(utf8_validation);
    RUN(rng_deterministic);
    return harness_done();
}
