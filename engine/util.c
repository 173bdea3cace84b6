/*
 * util.c — overflow-checked allocation with fault injection, mapped files, atomic writes,
 * half-precision conversion, SHA-256, timing and a deterministic RNG. See util.h.
 *
 * Allocation: every engine allocation goes through cce_alloc so that (a) n*size can never wrap,
 * (b) a single allocation can never exceed cce_alloc_limit() (a file header cannot make us ask the
 * kernel for 2^60 bytes), and (c) tests can make the N-th allocation fail (CCE_FAIL_ALLOC=N).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "util.h"

bool cce_size_mul(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
bool cce_size_add(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
bool cce_u64_mul(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
bool cce_u64_add(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }

/* ---- allocation ---- */

static atomic_long fail_countdown = -1; /* -1: not yet read from the environment; 0: disabled */

void cce_alloc_fail_after(long n) { atomic_store(&fail_countdown, n > 0 ? n : 0); }

static bool alloc_should_fail(void) {
    long c = atomic_load(&fail_countdown);
    if (c < 0) {
        const char *e = getenv("CCE_FAIL_ALLOC");
        long n = e ? strtol(e, NULL, 10) : 0;
        long expect = -1;
        atomic_compare_exchange_strong(&fail_countdown, &expect, n > 0 ? n : 0);
        c = atomic_load(&fail_countdown);
    }
    if (c == 0) return false;
    long now = atomic_fetch_sub(&fail_countdown, 1);
    if (now == 1) return true;       /* this is the N-th */
    if (now <= 0) atomic_store(&fail_countdown, 0);
    return false;
}

size_t cce_mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1) break;
    fclose(f);
    size_t bytes;
    return cce_size_mul(kb, 1024, &bytes) ? bytes : SIZE_MAX;
}

size_t cce_alloc_limit(void) {
    static size_t limit;
    if (!limit) {
        const char *e = getenv("CCE_MAX_ALLOC");
        size_t l = 0;
        if (e && *e) l = (size_t)strtoull(e, NULL, 10);
        if (!l) {
            /* physical memory: one buffer may not exceed it */
            long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
            if (pages > 0 && psz > 0 && !cce_size_mul((size_t)pages, (size_t)psz, &l)) l = SIZE_MAX;
            if (!l) l = (size_t)1 << 34;
        }
        limit = l;
    }
    return limit;
}

void *cce_alloc(size_t n, size_t size) {
    size_t bytes;
    if (!cce_size_mul(n, size, &bytes) || bytes > cce_alloc_limit()) return NULL;
    if (alloc_should_fail()) return NULL;
    if (bytes == 0) bytes = 1;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    return aligned_alloc(64, rounded);
}

void *cce_alloc_zero(size_t n, size_t size) {
    void *p = cce_alloc(n, size);
    if (p) memset(p, 0, n * size); /* cce_alloc checked n*size */
    return p;
}

void *cce_realloc(void *p, size_t n, size_t size) {
    size_t bytes;
    if (!cce_size_mul(n, size, &bytes) || bytes > cce_alloc_limit()) return NULL;
    if (alloc_should_fail()) return NULL;
    return realloc(p, bytes ? bytes : 1);
}

void cce_free(void *p) { free(p); }

char *cce_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = cce_alloc(n, 1);
    if (d) memcpy(d, s, n);
    return d;
}

bool cce_str_ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !memcmp(s + a - b, suf, b);
}

/* ---- files ---- */

cce_status cce_map_file(const char *path, cce_mapped *out, cce_err *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cce_err_set(err, CCE_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return cce_err_set(err, CCE_EIO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return cce_err_set(err, CCE_EIO, "%s: is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cce_err_set(err, CCE_EIO, "%s: not a regular file", path);
    }
    out->path = cce_strdup(path);
    if (!out->path) {
        close(fd);
        return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
    }
    out->len = (size_t)st.st_size;
    if (out->len > 0) {
        void *p = mmap(NULL, out->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            cce_free(out->path);
            out->path = NULL;
            return cce_err_set(err, CCE_EIO, "%s: cannot map: %s", path, strerror(errno));
        }
        out->data = p;
    }
    close(fd);
    return CCE_OK;
}

void cce_unmap(cce_mapped *m) {
    if (!m) return;
    if (m->data && m->len) munmap((void *)m->data, m->len);
    cce_free(m->path);
    memset(m, 0, sizeof *m);
}

cce_status cce_read_file(const char *path, size_t max_len, char **out, size_t *out_len, cce_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cce_err_set(err, CCE_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return cce_err_set(err, CCE_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_len) {
        fclose(f);
        return cce_err_set(err, CCE_EFORMAT, "%s: file is %lld bytes, more than the %zu allowed",
                           path, (long long)st.st_size, max_len);
    }
    size_t n = (size_t)st.st_size;
    char *buf = cce_alloc(n + 1, 1);
    if (!buf) {
        fclose(f);
        return cce_err_set(err, CCE_ENOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    fclose(f);
    if (got != n) {
        cce_free(buf);
        return cce_err_set(err, CCE_EIO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = 0;
    *out = buf;
    if (out_len) *out_len = n;
    return CCE_OK;
}

cce_status cce_write_file_atomic(const char *path, const void *data, size_t len, cce_err *err) {
    size_t pl = strlen(path);
    char *tmp = cce_alloc(pl + 32, 1);
    char *dcopy = cce_alloc(pl + 1, 1);
    cce_status s = CCE_OK;
    int fd = -1;
    if (!tmp || !dcopy) { s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path); goto done; }
    snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { s = cce_err_set(err, CCE_EIO, "%s: cannot create: %s", tmp, strerror(errno)); goto done; }
    const uint8_t *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            s = cce_err_set(err, CCE_EIO, "%s: write failed: %s", tmp, strerror(errno));
            goto fail_tmp;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) { s = cce_err_set(err, CCE_EIO, "%s: fsync failed: %s", tmp, strerror(errno)); goto fail_tmp; }
    if (close(fd) != 0) { fd = -1; s = cce_err_set(err, CCE_EIO, "%s: close failed: %s", tmp, strerror(errno)); goto fail_tmp; }
    fd = -1;
    if (rename(tmp, path) != 0) { s = cce_err_set(err, CCE_EIO, "%s: cannot rename into place: %s", path, strerror(errno)); goto fail_tmp; }
    memcpy(dcopy, path, pl + 1);
    int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    goto done;
fail_tmp:
    if (fd >= 0) close(fd);
    unlink(tmp);
done:
    cce_free(tmp);
    cce_free(dcopy);
    return s;
}

/* ---- half precision ---- */

float cce_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else { /* subnormal: value = mant * 2^-24 */
            float v = (float)mant * 0x1p-24f;
            return sign ? -v : v;
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
    else bits = sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float cce_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t cce_f32_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40); /* quiet NaN */
    b += 0x7fffu + ((b >> 16) & 1);                                         /* round to nearest even */
    return (uint16_t)(b >> 16);
}

uint16_t cce_f32_to_f16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000, exp = (b >> 23) & 0xff, mant = b & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - e;
        uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exponent: correct */
    return (uint16_t)(sign | half);
}

/* ---- SHA-256 (FIPS 180-4) ---- */

typedef struct { uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t n; } sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->n = 0;
}

static void sha256_update(sha256_ctx *c, const uint8_t *p, size_t n) {
    c->len += n;
    if (c->n) {
        size_t take = 64 - c->n < n ? 64 - c->n : n;
        memcpy(c->buf + c->n, p, take);
        c->n += take; p += take; n -= take;
        if (c->n == 64) { sha256_block(c, c->buf); c->n = 0; }
    }
    while (n >= 64) { sha256_block(c, p); p += 64; n -= 64; }
    if (n) { memcpy(c->buf, p, n); c->n = n; }
}

static void sha256_final(sha256_ctx *c, char out[65]) {
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, zero = 0, lenb[8];
    sha256_update(c, &pad, 1);
    while (c->n != 56) sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, lenb, 8);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", c->h[i]);
}

void cce_sha256_hex(const void *data, size_t len, char out[65]) {
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, out);
}

cce_status cce_sha256_file(const char *path, char out[65], cce_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return cce_err_set(err, CCE_EIO, "%s: cannot open: %s", path, strerror(errno));
    sha256_ctx c;
    sha256_init(&c);
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&c, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return cce_err_set(err, CCE_EIO, "%s: read error", path);
    sha256_final(&c, out);
    return CCE_OK;
}

/* ---- time, memory ---- */

double cce_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cce_peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    fclose(f);
    return (double)kb / 1024.0;
}

/* ---- RNG ---- */

void cce_rng_seed(cce_rng *r, uint64_t seed) {
    /* splitmix64 to spread the seed; never zero */
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    r->s = (z ^ (z >> 31)) | 1;
}

uint64_t cce_rng_u64(cce_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

float cce_rng_uniform(cce_rng *r) { return (float)(cce_rng_u64(r) >> 40) * 0x1p-24f; }

float cce_rng_normal(cce_rng *r) {
    float u1 = cce_rng_uniform(r), u2 = cce_rng_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* ---- interrupt ---- */

static cce_cancel process_cancel;
static _Thread_local cce_cancel *thread_cancel;

cce_cancel *cce_cancel_scope(cce_cancel *c) {
    cce_cancel *prev = thread_cancel;
    thread_cancel = c;
    return prev;
}
void cce_interrupt(void) { cce_cancel_request(&process_cancel); }
void cce_interrupt_reset(void) { cce_cancel_reset(&process_cancel); }
int cce_interrupted(void) { return cce_cancel_requested(thread_cancel ? thread_cancel : &process_cancel); }

/* ---- UTF-8 ---- */

bool cce_utf8_valid(const char *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s, *e = p + len;
    while (p < e) {
        uint8_t c = *p;
        if (c < 0x80) { p++; continue; }
        int n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
        else return false;
        if (e - p <= n) return false;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false; /* overlong */
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        p += n + 1;
    }
    return true;
}
