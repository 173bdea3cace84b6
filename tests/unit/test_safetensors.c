/*
 * test_safetensors.c — the safetensors reader refuses every defect class cleanly (one-line error
 * naming the file), accepts valid files, and the writer round-trips and is atomic.
 *
 * Files are generated in harness_tmpdir(): an 8-byte length, a header string, and data bytes.
 */
#include <dirent.h>
#include <stdint.h>
#include "harness.h"
#include "safetensors.h"

static char path_buf[1024];

static const char *tmp_path(const char *name) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", harness_tmpdir(), name);
    return path_buf;
}

/* Write [len64][header][data_len bytes of a pattern]; len64 = strlen(header) unless forced. */
static const char *write_raw(const char *name, const char *header, size_t hlen, int force, uint64_t len64,
                             size_t data_len) {
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    if (!f) return p;
    uint64_t n = force ? len64 : hlen;
    for (int i = 0; i < 8; i++) fputc((int)((n >> (8 * i)) & 0xff), f);
    fwrite(header, 1, hlen, f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 7 + 1) & 0xff, f);
    fclose(f);
    return p;
}

static const char *write_hdr(const char *name, const char *header, size_t data_len) {
    return write_raw(name, header, strlen(header), 0, 0, data_len);
}

/* Opening must fail with a one-line message naming the file (and containing `want` if given). */
static int expect_fail(const char *p, const char *want, char *why, size_t cap) {
    cce_safetensors s;
    cce_err err = {{0}};
    cce_status st = cce_st_open(p, &s, &err);
    if (st == CCE_OK) {
        cce_st_close(&s);
        snprintf(why, cap, "%s opened but should have failed", p);
        return 0;
    }
    if (!strstr(err.msg, p) || strchr(err.msg, '\n') || (want && !strstr(err.msg, want))) {
        snprintf(why, cap, "bad message for %s: \"%s\" (want \"%s\")", p, err.msg, want ? want : "");
        return 0;
    }
    if (s.t || s.n || s.map.data) {
        snprintf(why, cap, "%s: output not cleared on failure", p);
        return 0;
    }
    return 1;
}

#define EXPECT_FAIL(p, want) do { char why_[600]; if (!expect_fail((p), (want), why_, sizeof why_)) FAILF("%s", why_); } while (0)

static const char *VALID =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}}";

TEST(valid_file_opens) {
    const char *p = write_hdr("valid.safetensors", VALID, 32);
    cce_safetensors s;
    cce_err err = {{0}};
    cce_status st = cce_st_open(p, &s, &err);
    CHECK_MSG(st == CCE_OK, "open failed: %s", err.msg);
    CHECK_EQ_INT(s.n, 2);
    const cce_st_tensor *a = cce_st_find(&s, "a"), *b = cce_st_find(&s, "b");
    CHECK(a && b && !cce_st_find(&s, "A") && !cce_st_find(&s, "c"));
    CHECK_EQ_INT(a->dtype, CCE_ST_F32);
    CHECK_EQ_INT(a->n_dims, 2);
    CHECK_EQ_INT(a->shape[0], 2);
    CHECK_EQ_INT(a->shape[1], 3);
    CHECK_EQ_INT(cce_st_numel(a), 6);
    CHECK_EQ_INT(b->dtype, CCE_ST_F16);
    CHECK_EQ_INT(b->begin, 24);
    CHECK(a->data == s.map.data + 8 + strlen(VALID));
    CHECK_STR(cce_st_meta(&s, "format"), "pt");
    CHECK(cce_st_meta(&s, "Format") == NULL);
    cce_st_close(&s);
}

TEST(zero_byte_file) {
    const char *p = tmp_path("empty.safetensors");
    FILE *f = fopen(p, "wb");
    CHECK(f);
    fclose(f);
    EXPECT_FAIL(p, "too short");
}

TEST(every_prefix_fails) {
    const char *full = write_hdr("full.safetensors", VALID, 32);
    FILE *f = fopen(full, "rb");
    CHECK(f);
    unsigned char buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK_EQ_INT(n, 8 + strlen(VALID) + 32);
    for (size_t k = 0; k < n; k++) {
        const char *p = tmp_path("prefix.safetensors");
        FILE *g = fopen(p, "wb");
        CHECK(g);
        fwrite(buf, 1, k, g);
        fclose(g);
        char why[600];
        if (!expect_fail(p, NULL, why, sizeof why)) FAILF("prefix %zu: %s", k, why);
    }
}

TEST(header_length_out_of_range) {
    EXPECT_FAIL(write_raw("hl_big.safetensors", VALID, strlen(VALID), 1, 1000, 32), "past end of file");
    EXPECT_FAIL(write_raw("hl_2_64.safetensors", VALID, strlen(VALID), 1, 0xfffffffffffffff0ull, 32), "limit");
    EXPECT_FAIL(write_raw("hl_100m.safetensors", VALID, strlen(VALID), 1, 100000001ull, 32), "100,000,000");
    EXPECT_FAIL(write_raw("hl_short.safetensors", VALID, strlen(VALID), 1, strlen(VALID) - 5, 32), NULL);
}

TEST(not_json_or_not_object) {
    EXPECT_FAIL(write_hdr("notjson.safetensors", "{hello world}   ", 0), "JSON");
    EXPECT_FAIL(write_hdr("array.safetensors", "[1, 2, 3]       ", 0), "'{'");
    EXPECT_FAIL(write_hdr("bom.safetensors", "\xef\xbb\xbf{}     ", 0), "'{'");
    EXPECT_FAIL(write_hdr("trailing.safetensors", "{}  xyz ", 0), "trailing garbage");
    EXPECT_FAIL(write_hdr("two.safetensors", "{} {}   ", 0), "trailing garbage");
    EXPECT_FAIL(write_raw("nul.safetensors", "{}\0     ", 8, 0, 0, 0), "control character");
    EXPECT_FAIL(write_hdr("badutf8.safetensors", "{\"__metadata__\":{\"k\":\"\xc3\x28\"}}", 0), "UTF-8");
}

TEST(empty_object_is_valid) {
    const char *p = write_hdr("emptyobj.safetensors", "{}      ", 0);
    cce_safetensors s;
    cce_err err = {{0}};
    CHECK_MSG(cce_st_open(p, &s, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(s.n, 0);
    cce_st_close(&s);
    /* but then no data bytes may follow */
    EXPECT_FAIL(write_hdr("emptyobj_data.safetensors", "{}      ", 4), "not fully covered");
}

TEST(names) {
    EXPECT_FAIL(write_hdr("badname.safetensors", "{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "UTF-8");
    EXPECT_FAIL(write_hdr("escname.safetensors",
                          "{\"\\udc00x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                NULL);
    EXPECT_FAIL(write_hdr("dup.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                "more than once");
    EXPECT_FAIL(write_hdr("dupmeta.safetensors", "{\"__metadata__\":{},\"__metadata__\":{}}", 0), "duplicate");
}

TEST(dtypes) {
    EXPECT_FAIL(write_hdr("dt_unknown.safetensors", "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "unknown dtype");
    EXPECT_FAIL(write_hdr("dt_lower.safetensors", "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "unknown dtype");
    EXPECT_FAIL(write_hdr("dt_num.safetensors", "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "dtype");
    EXPECT_FAIL(write_hdr("dt_case.safetensors", "{\"a\":{\"DTYPE\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "'dtype' is missing");
    /* a known but unsupported dtype opens (for listing) but does not convert */
    const char *p = write_hdr("dt_i64.safetensors", "{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
    cce_safetensors s;
    cce_err err = {{0}};
    CHECK_MSG(cce_st_open(p, &s, &err) == CCE_OK, "%s", err.msg);
    float out[2];
    CHECK(cce_st_to_f32(&s.t[0], out, p, &err) == CCE_EUNSUPPORTED);
    CHECK(strstr(err.msg, "I64") != NULL);
    cce_st_close(&s);
}

TEST(shapes) {
    EXPECT_FAIL(write_hdr("sh_neg.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4),
                "shape[0]");
    EXPECT_FAIL(write_hdr("sh_float.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4),
                "shape[0]");
    EXPECT_FAIL(write_hdr("sh_str.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4),
                "shape[0]");
    EXPECT_FAIL(write_hdr("sh_huge.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,4]}}", 4),
                "shape[0]");
    EXPECT_FAIL(write_hdr("sh_big.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551617],\"data_offsets\":[0,4]}}", 4),
                "shape[0]");
    /* 2^32 * 2^32 wraps to 0 in 64-bit arithmetic: must be caught as overflow, not accepted as empty */
    EXPECT_FAIL(write_hdr("sh_wrap.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0),
                "overflows");
    EXPECT_FAIL(write_hdr("sh_wrap2.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,1073741824,4],\"data_offsets\":[0,0]}}", 0),
                "overflows");
    EXPECT_FAIL(write_hdr("sh_bytes.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0),
                "shape[0]");
    EXPECT_FAIL(write_hdr("sh_notarr.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16),
                "'shape'");
    EXPECT_FAIL(write_hdr("sh_9d.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4),
                "dimensions");
    /* zero-sized dims are fine */
    const char *p = write_hdr("sh_zero.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]}}", 0);
    cce_safetensors s;
    cce_err err = {{0}};
    CHECK_MSG(cce_st_open(p, &s, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(cce_st_numel(&s.t[0]), 0);
    cce_st_close(&s);
}

TEST(offsets) {
    EXPECT_FAIL(write_hdr("of_overlap.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]},"
                          "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[16,24]}}", 24),
                "overlaps");
    EXPECT_FAIL(write_hdr("of_hole.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]},"
                          "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[28,36]}}", 36),
                "hole");
    EXPECT_FAIL(write_hdr("of_late.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                "hole");
    EXPECT_FAIL(write_hdr("of_rev.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8),
                "< begin");
    EXPECT_FAIL(write_hdr("of_range.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]},"
                          "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}}", 30),
                "past end");
    EXPECT_FAIL(write_hdr("of_cover.safetensors", VALID, 40), "not fully covered");
    EXPECT_FAIL(write_hdr("of_size.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20),
                "needs 24");
    EXPECT_FAIL(write_hdr("of_one.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4),
                "data_offsets");
    EXPECT_FAIL(write_hdr("of_three.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4),
                "data_offsets");
    EXPECT_FAIL(write_hdr("of_neg.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4),
                "data_offsets");
    EXPECT_FAIL(write_hdr("of_float.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 4),
                "data_offsets");
    EXPECT_FAIL(write_hdr("of_huge.safetensors",
                          "{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[18446744073709551600,16]}}", 16),
                "data_offsets");
    /* two zero-length tensors at the same offset are allowed, like the reference */
    const char *p = write_hdr("of_zero2.safetensors",
                              "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                              "\"c\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 4);
    cce_safetensors s;
    cce_err err = {{0}};
    CHECK_MSG(cce_st_open(p, &s, &err) == CCE_OK, "%s", err.msg);
    cce_st_close(&s);
}

TEST(entry_and_metadata_types) {
    EXPECT_FAIL(write_hdr("en_arr.safetensors", "{\"a\":[1,2]}", 0), "expected an object");
    EXPECT_FAIL(write_hdr("md_num.safetensors", "{\"__metadata__\":{\"k\":1}}", 0), "__metadata__");
    EXPECT_FAIL(write_hdr("md_arr.safetensors", "{\"__metadata__\":[\"k\"]}", 0), "__metadata__");
}

TEST(missing_file) {
    cce_safetensors s;
    cce_err err = {{0}};
    CHECK(cce_st_open(tmp_path("does-not-exist.safetensors"), &s, &err) != CCE_OK);
    CHECK(strstr(err.msg, "does-not-exist") != NULL);
}

/* ---- writer ---- */

static cce_status fill_ramp(void *user, int i, uint64_t first, size_t count, float *buf, cce_err *err) {
    int *fail_at = user;
    (void)err;
    if (*fail_at >= 0 && i == *fail_at) return cce_err_set(err, CCE_EIO, "injected failure");
    for (size_t k = 0; k < count; k++) buf[k] = (float)(first + k) * 0.5f + (float)i;
    return CCE_OK;
}

static int count_tmp_files(void) {
    DIR *d = opendir(harness_tmpdir());
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

TEST(writer_round_trip) {
    const char *p = tmp_path("written.safetensors");
    float a[6] = {1, -2, 3.5f, 1e-3f, -7, 65504};
    cce_st_entry e[4] = {
        {.name = "x.weight", .dtype = CCE_ST_F32, .n_dims = 2, .shape = {2, 3}, .data = a},
        {.name = "y \"quoted\"", .dtype = CCE_ST_F16, .n_dims = 1, .shape = {6}, .data = a},
        {.name = "z", .dtype = CCE_ST_BF16, .n_dims = 1, .shape = {6}, .data = a},
        {.name = "ramp", .dtype = CCE_ST_F32, .n_dims = 2, .shape = {1500, 1000}, .data = NULL},
    };
    const char *meta[4] = {"format", "pt", "note", "line\nbreak"};
    int fail_at = -1;
    uint64_t bytes = 0;
    cce_err err = {{0}};
    CHECK_MSG(cce_st_write(p, e, 4, meta, 2, fill_ramp, &fail_at, &bytes, &err) == CCE_OK, "%s", err.msg);
    cce_safetensors s;
    CHECK_MSG(cce_st_open(p, &s, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(bytes, s.map.len);
    CHECK_EQ_INT((8 + s.header_len) % 8, 0);
    CHECK_STR(cce_st_meta(&s, "note"), "line\nbreak");
    float out[6];
    CHECK_OK(cce_st_to_f32(cce_st_find(&s, "x.weight"), out, p, &e_));
    for (int i = 0; i < 6; i++) CHECK(out[i] == a[i]);
    const cce_st_tensor *y = cce_st_find(&s, "y \"quoted\"");
    CHECK(y && y->dtype == CCE_ST_F16);
    CHECK_OK(cce_st_to_f32(y, out, p, &e_));
    for (int i = 0; i < 6; i++) CHECK_NEAR(out[i], a[i], fabs(a[i]) * 1e-3 + 1e-6);
    CHECK_OK(cce_st_to_f32(cce_st_find(&s, "z"), out, p, &e_));
    for (int i = 0; i < 6; i++) CHECK_NEAR(out[i], a[i], fabs(a[i]) * 8e-3);
    const cce_st_tensor *r = cce_st_find(&s, "ramp");
    CHECK(r && cce_st_numel(r) == 1500000);
    float v;
    memcpy(&v, r->data + 4 * 1234567, 4);
    CHECK(v == 1234567 * 0.5f + 3);
    memcpy(&v, r->data + 4 * 1499999, 4);
    CHECK(v == 1499999 * 0.5f + 3);
    cce_st_close(&s);
    CHECK_EQ_INT(count_tmp_files(), 0);
}

TEST(writer_failure_keeps_old_file) {
    const char *p = tmp_path("keep.safetensors");
    float a[2] = {1, 2};
    cce_st_entry e[2] = {
        {.name = "a", .dtype = CCE_ST_F32, .n_dims = 1, .shape = {2}, .data = a},
        {.name = "b", .dtype = CCE_ST_F32, .n_dims = 1, .shape = {3000000}, .data = NULL},
    };
    int fail_at = -1;
    cce_err err = {{0}};
    CHECK_MSG(cce_st_write(p, e, 1, NULL, 0, NULL, NULL, NULL, &err) == CCE_OK, "%s", err.msg);
    FILE *f = fopen(p, "rb");
    CHECK(f);
    char before[256];
    size_t nb = fread(before, 1, sizeof before, f);
    fclose(f);
    fail_at = 1;
    CHECK(cce_st_write(p, e, 2, NULL, 0, fill_ramp, &fail_at, NULL, &err) != CCE_OK);
    CHECK(strstr(err.msg, "injected") != NULL);
    f = fopen(p, "rb");
    CHECK(f);
    char after[256];
    size_t na = fread(after, 1, sizeof after, f);
    fclose(f);
    CHECK_EQ_INT(na, nb);
    CHECK(memcmp(before, after, nb) == 0);
    CHECK_EQ_INT(count_tmp_files(), 0);
    /* an unwritable location fails cleanly */
    CHECK(cce_st_write("/nonexistent-dir/x.safetensors", e, 1, NULL, 0, NULL, NULL, NULL, &err) == CCE_EIO);
    /* unsupported dtype for writing */
    e[0].dtype = CCE_ST_I32;
    CHECK(cce_st_write(p, e, 1, NULL, 0, NULL, NULL, NULL, &err) == CCE_EINVAL);
}

int main(void) {
    RUN(valid_file_opens);
    RUN(zero_byte_file);
    RUN(every_prefix_fails);
    RUN(header_length_out_of_range);
    RUN(not_json_or_not_object);
    RUN(empty_object_is_valid);
    RUN(names);
    RUN(dtypes);
    RUN(shapes);
    RUN(offsets);
    RUN(entry_and_metadata_types);
    RUN(missing_file);
    RUN(writer_round_trip);
    RUN(writer_failure_keeps_old_file);
    return harness_done();
}
