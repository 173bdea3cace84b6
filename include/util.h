/*
 * util.h — overflow-checked allocation (with fault injection), mapped files, small helpers.
 *
 * Every size that a file decides goes through cce_size_mul/cce_size_add before it is used to
 * allocate or index. cce_alloc is the one allocation entry point of the engine; setting the
 * environment variable CCE_FAIL_ALLOC=N (or calling cce_alloc_fail_after) makes the N-th
 * allocation from then on fail, for out-of-memory tests.
 */
#ifndef CCE_UTIL_H
#define CCE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "status.h"

/* *out = a*b / a+b; return false on overflow of size_t. */
bool cce_size_mul(size_t a, size_t b, size_t *out);
bool cce_size_add(size_t a, size_t b, size_t *out);
bool cce_u64_mul(uint64_t a, uint64_t b, uint64_t *out);
bool cce_u64_add(uint64_t a, uint64_t b, uint64_t *out);

/* malloc(n*size) with overflow check, 64-byte aligned; NULL on overflow or failure.
 * Free with cce_free. zeroed variant clears the memory. */
void *cce_alloc(size_t n, size_t size);
void *cce_alloc_zero(size_t n, size_t size);
void *cce_realloc(void *p, size_t n, size_t size); /* plain realloc semantics, not aligned */
void cce_free(void *p);
char *cce_strdup(const char *s);
/* Does s end with suffix suf? */
bool cce_str_ends_with(const char *s, const char *suf);
/* Fault injection: the n-th allocation from now fails (n>=1); 0 disables. */
void cce_alloc_fail_after(long n);

/* Upper bound for any single allocation a file header may cause (bytes); default 1/2 of
 * physical memory + swap-free, override with CCE_MAX_ALLOC (bytes). */
size_t cce_alloc_limit(void);
/* Physical memory currently available (MemAvailable), bytes; 0 if unknown. */
size_t cce_mem_available(void);

/* A read-only memory-mapped file. Zero-length files map to data=NULL, len=0. */
typedef struct {
    const uint8_t *data;
    size_t len;
    char *path;      /* owned copy */
} cce_mapped;

cce_status cce_map_file(const char *path, cce_mapped *out, cce_err *err);
void cce_unmap(cce_mapped *m);

/* Read a whole (small) file into a NUL-terminated buffer; refuses files above max_len. */
cce_status cce_read_file(const char *path, size_t max_len, char **out, size_t *out_len, cce_err *err);

/* Write a file atomically: temp file in the same directory, fsync, rename, fsync directory. */
cce_status cce_write_file_atomic(const char *path, const void *data, size_t len, cce_err *err);

/* Half-precision conversions. */
float cce_f16_to_f32(uint16_t h);
float cce_bf16_to_f32(uint16_t h);
uint16_t cce_f32_to_f16(float f);
uint16_t cce_f32_to_bf16(float f);

/* SHA-256 of a buffer / of a file, as 64 lowercase hex chars + NUL. */
void cce_sha256_hex(const void *data, size_t len, char out[65]);
cce_status cce_sha256_file(const char *path, char out[65], cce_err *err);

/* Monotonic seconds. */
double cce_now(void);
/* Peak resident set size of this process in MB (from /proc/self/status VmHWM). */
double cce_peak_rss_mb(void);

/* Deterministic RNG (xorshift64*), for synth models, sampling windows and tests. */
typedef struct { uint64_t s; } cce_rng;
void cce_rng_seed(cce_rng *r, uint64_t seed);
uint64_t cce_rng_u64(cce_rng *r);
float cce_rng_uniform(cce_rng *r);   /* [0,1) */
float cce_rng_normal(cce_rng *r);    /* N(0,1) */

/* Process-wide interrupt for long writers that have no job object to cancel (the safetensors
 * writer behind `cce export` and `cce synth`): a front end calls cce_interrupt() from its SIGINT
 * handler (async-signal-safe); the writer polls cce_interrupted() between chunks and fails with
 * CCE_ECANCEL, removing its temporary file, so the previous output stays in place. Jobs with a
 * handle (analysis, eval) cancel through it instead. */
void cce_interrupt(void);
int cce_interrupted(void);

/* Is the buffer valid UTF-8? */
bool cce_utf8_valid(const char *s, size_t len);

#endif
