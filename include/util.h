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

/* Cancellation that does not latch for the process.
 *
 * A cce_cancel is a flag that long work polls between pieces (a lock-free atomic, so setting it
 * is async-signal-safe). Each thread has a current cancel, its scope: cce_cancel_scope(c) makes
 * c the calling thread's and returns the previous one, to be restored when the job ends.
 * cce_interrupted() polls the calling thread's scope, or the process default when it has none.
 * Its pollers: the safetensors writer behind `cce export` and `cce synth` (between chunks), the
 * forward pass and the decoder (between sublayers and LM-head chunks) and the evaluation's
 * tokenisation (between documents); they fail with CCE_ECANCEL.
 *
 * A one-shot front end (the batch CLI) requests the process default from its SIGINT handler
 * with cce_interrupt(). A front end that runs many jobs in one process (the TUI) gives each
 * job a fresh cce_cancel in the worker thread's scope and requests that one to cancel it;
 * cce_interrupt_reset() clears the default when a cancelled job has been dealt with. */
typedef struct {
    volatile int flag;   // read and written through __atomic builtins only
} cce_cancel;

static inline void cce_cancel_init(cce_cancel *c) { __atomic_store_n(&c->flag, 0, __ATOMIC_RELAXED); }
/* Async-signal-safe. */
static inline void cce_cancel_request(cce_cancel *c) { __atomic_store_n(&c->flag, 1, __ATOMIC_RELEASE); }
static inline void cce_cancel_reset(cce_cancel *c) { __atomic_store_n(&c->flag, 0, __ATOMIC_RELEASE); }
static inline int cce_cancel_requested(const cce_cancel *c) { return __atomic_load_n(&c->flag, __ATOMIC_ACQUIRE) != 0; }

/* Make c (NULL: none, i.e. the process default) the calling thread's current cancel; returns
 * the previous one. */
cce_cancel *cce_cancel_scope(cce_cancel *c);
/* Request / clear the process default cancel (cce_interrupt is async-signal-safe). */
void cce_interrupt(void);
void cce_interrupt_reset(void);
/* 1 when the calling thread's current cancel (its scope, else the process default) is requested. */
int cce_interrupted(void);

/* Is the buffer valid UTF-8? */
bool cce_utf8_valid(const char *s, size_t len);

#endif
