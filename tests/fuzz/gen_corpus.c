/*
 * gen_corpus.c — writes the seed corpora of the fuzz targets: OUTDIR/<target>/<seed>.
 *
 *   gen_corpus OUTDIR [DATA_DIR]
 *
 * Seeds are tiny valid files of every format (so the fuzzer starts deep inside the parsers,
 * past the checks a random byte string never passes) plus the headers of the real data files
 * in DATA_DIR (default $CCE_DATA, else ../shared/data) cut to a few KB. Plain C, no engine code:
 * the bytes are written by hand here, so a bug in a writer of the engine cannot hide one in a
 * reader. Deterministic: the same command writes the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tiny_models.h"

static const char *out_root;
static const char *data_root;

/* ---- a growable byte buffer ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) { perror("realloc"); exit(1); }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u8(buf *b, uint8_t v) { buf_put(b, &v, 1); }
static void put_u16(buf *b, uint16_t v) { uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; buf_put(b, x, 2); }
static void put_u32(buf *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 4);
}
static void put_u64(buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 8);
}
static void put_f32(buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}
static void put_str(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

/* ---- output ---- */

static void mkdir_p(const char *d) {
    if (mkdir(d, 0755) != 0 && errno != EEXIST) { perror(d); exit(1); }
}

static void emit(const char *target, const char *name, const void *data, size_t n) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", out_root, target);
    mkdir_p(p);
    snprintf(p, sizeof p, "%s/%s/%s", out_root, target, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) { perror(p); exit(1); }
}

/* First max bytes of a real data file, or NULL (size 0) when it is missing. */
static uint8_t *read_head(const char *rel, size_t max, size_t *n) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", data_root, rel);
    *n = 0;
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    uint8_t *d = malloc(max ? max : 1);
    if (d) *n = fread(d, 1, max, f);
    fclose(f);
    return d;
}

/* ---- llama2.c ---- */

static void gen_llama2c(void) {
    /* dim 8, hidden 16, 1 layer, 2 heads, 1 KV head, vocab 16, seq 4 (head 4, kv dim 4) */
    const int dim = 8, hid = 16, L = 1, kvd = 4, vocab = 16, seq = 4, hd = 4;
    for (int variant = 0; variant < 3; variant++) {
        buf b = {0};
        int32_t hdr[7] = {dim, hid, L, 2, 1, variant == 2 ? -vocab : vocab, seq};
        for (int i = 0; i < 7; i++) put_u32(&b, (uint32_t)hdr[i]);
        size_t floats = (size_t)vocab * dim + (size_t)L * dim + 2 * (size_t)L * dim * dim + 2 * (size_t)L * kvd * dim +
                        (size_t)L * dim + 3 * (size_t)L * hid * dim + dim;
        if (variant != 1) floats += 2 * (size_t)seq * hd / 2; /* RoPE tables (variant 1: none) */
        if (variant == 2) floats += (size_t)vocab * dim;     /* untied classifier */
        for (size_t i = 0; i < floats; i++) put_f32(&b, 0.05f * (float)((int)(i % 13) - 6) + (i % 29 == 0));
        static const char *names[] = {"tiny_tied.bin", "tiny_norope.bin", "tiny_untied.bin"};
        emit("llama2c", names[variant], b.p, b.n);
        free(b.p);
    }
    static const char *real[] = {"llama2c/stories260K.bin", "llama2c/tinystories_2m5.bin"};
    for (int i = 0; i < 2; i++) {
        size_t n;
        uint8_t *d = read_head(real[i], 4096, &n);
        if (d && n) emit("llama2c", i ? "real_2m5_head.bin" : "real_260k_head.bin", d, n);
        free(d);
    }
}

/* ---- GGUF ---- */

enum { GV_U32 = 4, GV_I32 = 5, GV_F32 = 6, GV_BOOL = 7, GV_STR = 8, GV_ARR = 9, GV_U64 = 10 };
enum { GT_F32 = 0, GT_F16 = 1, GT_Q8_0 = 8, GT_BF16 = 30 };

static void g_str(buf *b, const char *s) { put_u64(b, strlen(s)); put_str(b, s); }
static void g_kv_str(buf *b, const char *k, const char *v) { g_str(b, k); put_u32(b, GV_STR); g_str(b, v); }
static void g_kv_u32(buf *b, const char *k, uint32_t v) { g_str(b, k); put_u32(b, GV_U32); put_u32(b, v); }
static void g_kv_f32(buf *b, const char *k, float v) { g_str(b, k); put_u32(b, GV_F32); put_f32(b, v); }

typedef struct {
    const char *name;
    int n_dims;
    uint64_t ne[2];
    uint32_t type;
} g_tensor;

static uint64_t g_nbytes(const g_tensor *t) {
    uint64_t n = t->ne[0] * (t->n_dims == 2 ? t->ne[1] : 1);
    switch (t->type) {
    case GT_F32: return n * 4;
    case GT_F16: case GT_BF16: return n * 2;
    default: return n / 32 * 34; /* Q8_0 */
    }
}

/* A tiny llama GGUF: dim 32, 4 heads, 2 KV heads, hidden 32, 1 block, vocab 16, with a
 * tokenizer. arch: general.architecture; alignment: general.alignment (0: key absent). */
static void gen_gguf_one(const char *name, const char *arch, uint32_t alignment, int mixed_types) {
    static const char *toks[16] = {"<unk>", "<s>", "</s>", "<0x0A>", "<0x41>", "\xe2\x96\x81", "a", "b", "c",
                                   "\342\226\201a", "ab", "on", "ce", "\342\226\201t", "he", "e"};
    g_tensor ts[] = {
        {"token_embd.weight", 2, {32, 16}, GT_F32},
        {"output_norm.weight", 1, {32, 0}, GT_F32},
        {"output.weight", 2, {32, 16}, mixed_types ? GT_F16 : GT_F32},
        {"blk.0.attn_norm.weight", 1, {32, 0}, GT_F32},
        {"blk.0.attn_q.weight", 2, {32, 32}, mixed_types ? GT_F16 : GT_F32},
        {"blk.0.attn_k.weight", 2, {32, 16}, mixed_types ? GT_BF16 : GT_F32},
        {"blk.0.attn_v.weight", 2, {32, 16}, GT_F32},
        {"blk.0.attn_output.weight", 2, {32, 32}, GT_F32},
        {"blk.0.ffn_norm.weight", 1, {32, 0}, GT_F32},
        {"blk.0.ffn_gate.weight", 2, {32, 32}, mixed_types ? GT_Q8_0 : GT_F32},
        {"blk.0.ffn_up.weight", 2, {32, 32}, mixed_types ? GT_Q8_0 : GT_F32},
        {"blk.0.ffn_down.weight", 2, {32, 32}, GT_F32},
    };
    int nt = (int)(sizeof ts / sizeof ts[0]);
    uint32_t align = alignment ? alignment : 32;
    buf b = {0};
    put_str(&b, "GGUF");
    put_u32(&b, 3);
    put_u64(&b, (uint64_t)nt);
    put_u64(&b, alignment ? 20 : 19); /* key-value pairs written below */
    g_kv_str(&b, "general.architecture", arch);
    if (alignment) g_kv_u32(&b, "general.alignment", alignment);
    g_kv_str(&b, "general.name", "tiny");
    char k[128];
#define ARCH_KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    g_kv_u32(&b, ARCH_KEY("embedding_length"), 32);
    g_kv_u32(&b, ARCH_KEY("feed_forward_length"), 32);
    g_kv_u32(&b, ARCH_KEY("block_count"), 1);
    g_kv_u32(&b, ARCH_KEY("attention.head_count"), 4);
    g_kv_u32(&b, ARCH_KEY("attention.head_count_kv"), 2);
    g_kv_u32(&b, ARCH_KEY("context_length"), 64);
    g_kv_u32(&b, ARCH_KEY("rope.dimension_count"), 8);
    g_kv_f32(&b, ARCH_KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    g_kv_f32(&b, ARCH_KEY("rope.freq_base"), 10000.0f);
#undef ARCH_KEY
    g_kv_str(&b, "tokenizer.ggml.model", "llama");
    g_str(&b, "tokenizer.ggml.tokens");
    put_u32(&b, GV_ARR);
    put_u32(&b, GV_STR);
    put_u64(&b, 16);
    for (int i = 0; i < 16; i++) g_str(&b, toks[i]);
    g_str(&b, "tokenizer.ggml.scores");
    put_u32(&b, GV_ARR);
    put_u32(&b, GV_F32);
    put_u64(&b, 16);
    for (int i = 0; i < 16; i++) put_f32(&b, i < 5 ? 0.0f : -(float)(i - 5));
    g_str(&b, "tokenizer.ggml.token_type");
    put_u32(&b, GV_ARR);
    put_u32(&b, GV_I32);
    put_u64(&b, 16);
    for (int i = 0; i < 16; i++) put_u32(&b, i == 0 ? 2 : i < 3 ? 3 : i < 5 ? 6 : 1);
    g_kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    g_kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    g_kv_u32(&b, "tokenizer.ggml.unknown_token_id", 0);
    g_str(&b, "tokenizer.ggml.add_bos_token");
    put_u32(&b, GV_BOOL);
    put_u8(&b, 1);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        g_str(&b, ts[i].name);
        put_u32(&b, (uint32_t)ts[i].n_dims);
        for (int d = 0; d < ts[i].n_dims; d++) put_u64(&b, ts[i].ne[d]);
        put_u32(&b, ts[i].type);
        put_u64(&b, off);
        off += g_nbytes(&ts[i]);
        off = (off + align - 1) / align * align;
    }
    while (b.n % align) put_u8(&b, 0);
    for (int i = 0; i < nt; i++) {
        uint64_t nb = g_nbytes(&ts[i]), start = b.n;
        if (ts[i].type == GT_Q8_0) {
            for (uint64_t blk = 0; blk < nb / 34; blk++) {
                put_u16(&b, 0x2000); /* scale 2^-7 in f16 */
                for (int j = 0; j < 32; j++) put_u8(&b, (uint8_t)(int8_t)((j * 7 + (int)blk) % 255 - 127));
            }
        } else if (ts[i].type == GT_F32) {
            for (uint64_t j = 0; j < nb / 4; j++) put_f32(&b, 0.02f * (float)((int)(j % 11) - 5) + (j % 33 == 0));
        } else {
            for (uint64_t j = 0; j < nb / 2; j++) put_u16(&b, (uint16_t)(ts[i].type == GT_F16 ? 0x2c00 + j % 64 : 0x3c00 + j % 64));
        }
        (void)start;
        while (b.n % align) put_u8(&b, 0);
    }
    emit("gguf", name, b.p, b.n);
    free(b.p);
}

static void gen_gguf(void) {
    gen_gguf_one("tiny_f32.gguf", "llama", 0, 0);
    gen_gguf_one("tiny_mixed.gguf", "llama", 0, 1);
    gen_gguf_one("tiny_align64.gguf", "llama", 64, 1);
    gen_gguf_one("tiny_other_arch.gguf", "qwen9", 0, 0);
    gen_gguf_one("tiny_qwen2.gguf", "qwen2", 0, 1);
    gen_gguf_one("tiny_deci.gguf", "deci", 0, 0);
    size_t n;
    uint8_t *d = read_head("gguf/stories260K.gguf", 14176, &n); /* header, metadata, tensor infos */
    if (d && n) emit("gguf", "real_260k_head.gguf", d, n);
    free(d);
}

/* ---- safetensors ---- */

static void gen_st_raw(const char *name, const char *json, size_t data_bytes) {
    buf b = {0};
    put_u64(&b, strlen(json));
    put_str(&b, json);
    for (size_t i = 0; i < data_bytes; i++) put_u8(&b, (uint8_t)(i * 37 + 11));
    emit("safetensors", name, b.p, b.n);
    free(b.p);
}

static void gen_safetensors(void) {
    char p[2048];
    tiny_tensor t[TINY_MAX_TENSORS];
    int n = tiny_llama_tensors(t);
    static const struct { const char *file, *dtype; int esize; const char *meta; } v[] = {
        {"tiny_llama_f32.safetensors", "F32", 4, NULL},
        {"tiny_llama_f16.safetensors", "F16", 2, "{\"format\":\"pt\"}"},
        {"tiny_llama_bf16.safetensors", "BF16", 2, "{\"format\":\"pt\",\"cce\":\"x\"}"},
    };
    snprintf(p, sizeof p, "%s/safetensors", out_root);
    mkdir_p(p);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/safetensors/%s", out_root, v[i].file);
        if (tiny_st_write(p, t, n, v[i].dtype, v[i].esize, v[i].meta)) { perror(p); exit(1); }
    }
    n = tiny_gpt2_tensors(t);
    snprintf(p, sizeof p, "%s/safetensors/tiny_gpt2_f32.safetensors", out_root);
    if (tiny_st_write(p, t, n, "F32", 4, NULL)) { perror(p); exit(1); }
    gen_st_raw("dtypes.safetensors",
               "{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[3,1],\"data_offsets\":[16,19]},"
               "\"c\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[19,20]},"
               "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[20,28]},"
               "\"e\":{\"dtype\":\"F8_E4M3\",\"shape\":[0,5],\"data_offsets\":[28,28]},"
               "\"f\":{\"dtype\":\"I16\",\"shape\":[2,1,1],\"data_offsets\":[28,32]}}",
               32);
    gen_st_raw("empty.safetensors", "{}", 0);
    gen_st_raw("meta_only.safetensors", "{\"__metadata__\":{\"k\":\"v\"}}  ", 0);
}

/* ---- config.json (first byte: 0 = tiny Llama directory, 1 = tiny GPT-2 directory) ---- */

static void gen_config(const char *name, int gpt2, const char *json) {
    buf b = {0};
    put_u8(&b, (uint8_t)gpt2);
    put_str(&b, json);
    emit("hf_config", name, b.p, b.n);
    free(b.p);
}

static void gen_hf_config(void) {
    gen_config("llama.json", 0,
               "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":8,"
               "\"intermediate_size\":16,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
               "\"num_key_value_heads\":1,\"vocab_size\":16,\"max_position_embeddings\":32,"
               "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"tie_word_embeddings\":false,"
               "\"bos_token_id\":1,\"eos_token_id\":2,\"torch_dtype\":\"float32\",\"rope_scaling\":null}");
    gen_config("llama_tied_headdim.json", 0,
               "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8,\"intermediate_size\":16,"
               "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":4,"
               "\"vocab_size\":16,\"max_position_embeddings\":32,\"rms_norm_eps\":1e-6,"
               "\"tie_word_embeddings\":true,\"eos_token_id\":[2,3]}");
    gen_config("qwen2.json", 0,
               "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"hidden_size\":8,"
               "\"intermediate_size\":16,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
               "\"num_key_value_heads\":1,\"vocab_size\":16,\"max_position_embeddings\":32,"
               "\"rms_norm_eps\":1e-06,\"rope_theta\":1000000.0,\"tie_word_embeddings\":false}");
    gen_config("mistral.json", 0,
               "{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":8,\"intermediate_size\":16,"
               "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
               "\"vocab_size\":16,\"max_position_embeddings\":32,\"rms_norm_eps\":1e-05,\"sliding_window\":null}");
    gen_config("llama3_rope.json", 0,
               "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8,\"intermediate_size\":16,"
               "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":16,"
               "\"max_position_embeddings\":64,\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":\"llama3\","
               "\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":16}}");
    gen_config("mistral_window.json", 0,
               "{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":8,\"intermediate_size\":16,"
               "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
               "\"vocab_size\":16,\"max_position_embeddings\":32,\"sliding_window\":8,"
               "\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}");
    gen_config("qwen2_window.json", 0,
               "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":8,\"intermediate_size\":16,"
               "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":16,"
               "\"use_sliding_window\":true,\"sliding_window\":4,\"max_window_layers\":1,\"tie_word_embeddings\":true}");
    gen_config("gpt2.json", 1,
               "{\"architectures\":[\"GPT2LMHeadModel\"],\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":2,"
               "\"n_head\":2,\"n_inner\":null,\"n_positions\":16,\"n_ctx\":16,\"vocab_size\":16,"
               "\"layer_norm_epsilon\":1e-05,\"activation_function\":\"gelu_new\",\"bos_token_id\":0,"
               "\"eos_token_id\":0}");
    gen_config("gpt2_inner.json", 1,
               "{\"architectures\":[\"GPT2LMHeadModel\"],\"n_embd\":8,\"n_layer\":1,\"n_head\":2,"
               "\"n_inner\":32,\"n_positions\":16,\"vocab_size\":16,\"layer_norm_epsilon\":1e-5}");
}

/* ---- tokenizer.json ---- */

/* GPT-2's byte -> printable code point table (bytes that are printable map to themselves, the
 * others to 256, 257, ... in order), written as UTF-8 into out (up to 3 bytes + NUL). */
static void bytelevel_char(int byte, char *out) {
    int cp = byte, extra = 0;
    int printable = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174);
    if (!printable) {
        for (int b = 0; b < byte; b++)
            if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174))) extra++;
        cp = 256 + extra;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xc0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3f)); out[2] = 0; }
}

/* JSON-escape a UTF-8 string into b. */
static void put_json_str(buf *b, const char *s) {
    put_u8(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { put_u8(b, '\\'); put_u8(b, c); }
        else if (c < 0x20) { char e[8]; snprintf(e, sizeof e, "\\u%04x", c); put_str(b, e); }
        else put_u8(b, c);
    }
    put_u8(b, '"');
}

/* The Llama-3 / Qwen2 Split regexes as tokenizer.json spells them (JSON-escaped). */
#define RX_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define RX_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define SPLIT_BL(rx) "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" rx "\"}," \
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}"
/* Added tokens with every option, for the forms below. */
#define ADDED_OPTS ",{\"id\":262,\"content\":\"<mask>\",\"single_word\":false,\"lstrip\":true,\"rstrip\":true,\"normalized\":false,\"special\":false}," \
    "{\"id\":263,\"content\":\"[X]\",\"single_word\":true,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":false}," \
    "{\"id\":264,\"content\":\"the\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":true,\"special\":false}"

static void gen_tok_bytelevel_form(const char *name, int array_merges, const char *normalizer, const char *pre,
                                   const char *model_opts, const char *added) {
    static const char *merges[][2] = {{"\xc4\xa0", "t"}, {"h", "e"}, {"\xc4\xa0t", "he"}, {"o", "n"}, {"\xc4\xa0", "a"}};
    static const char *merged[] = {"\xc4\xa0t", "he", "\xc4\xa0the", "on", "\304\240a"};
    buf b = {0};
    put_str(&b, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[{\"id\":261,"
                "\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                "\"normalized\":false,\"special\":true}");
    put_str(&b, added);
    put_str(&b, "],\"normalizer\":");
    put_str(&b, normalizer);
    put_str(&b, ",\"pre_tokenizer\":");
    put_str(&b, pre);
    put_str(&b, ",\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},"
                "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"byte_fallback\":false,");
    put_str(&b, model_opts);
    put_str(&b, "\"vocab\":{");
    char ch[8], num[32];
    for (int i = 0; i < 256; i++) {
        bytelevel_char(i, ch);
        if (i) put_u8(&b, ',');
        put_json_str(&b, ch);
        snprintf(num, sizeof num, ":%d", i);
        put_str(&b, num);
    }
    for (int i = 0; i < 5; i++) {
        put_u8(&b, ',');
        put_json_str(&b, merged[i]);
        snprintf(num, sizeof num, ":%d", 256 + i);
        put_str(&b, num);
    }
    put_str(&b, ",\"<|endoftext|>\":261},\"merges\":[");
    for (int i = 0; i < 5; i++) {
        if (i) put_u8(&b, ',');
        if (array_merges) {
            put_u8(&b, '[');
            put_json_str(&b, merges[i][0]);
            put_u8(&b, ',');
            put_json_str(&b, merges[i][1]);
            put_u8(&b, ']');
        } else {
            char m[32];
            snprintf(m, sizeof m, "%s %s", merges[i][0], merges[i][1]);
            put_json_str(&b, m);
        }
    }
    put_str(&b, "]}}");
    emit("tokenizer_json", name, b.p, b.n);
    free(b.p);
}

static void gen_tok_bytelevel(const char *name, int array_merges) {
    gen_tok_bytelevel_form(name, array_merges, "null",
                           "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}", "", "");
}

/* The Llama-3, Qwen2 and SmolLM (Digits) forms, with added-token options. */
static void gen_tok_bytelevel_forms(void) {
    gen_tok_bytelevel_form("llama3.json", 0, "null", SPLIT_BL(RX_LLAMA3), "\"ignore_merges\":true,", ADDED_OPTS);
    gen_tok_bytelevel_form("qwen2.json", 1, "{\"type\":\"NFC\"}", SPLIT_BL(RX_QWEN2), "\"ignore_merges\":false,", ADDED_OPTS);
    gen_tok_bytelevel_form("smollm.json", 0, "null",
                           "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
                           "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}]}",
                           "", ADDED_OPTS);
}

static void gen_tok_sp_form(const char *name, const char *normalizer, const char *pre) {
    static const char *extra[] = {"\xe2\x96\x81", "\xe2\x96\x81t", "he", "\xe2\x96\x81the", "on", "\342\226\201a", "ce"};
    static const char *merges[] = {"\xe2\x96\x81 t", "h e", "\xe2\x96\x81t he", "o n", "\xe2\x96\x81 a", "c e"};
    buf b = {0};
    put_str(&b, "{\"version\":\"1.0\",\"added_tokens\":["
                "{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
                "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
                "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false},"
                "{\"id\":300,\"content\":\" <mask>\",\"single_word\":true,\"lstrip\":true,\"rstrip\":false,\"normalized\":true,\"special\":false}],"
                "\"normalizer\":");
    put_str(&b, normalizer);
    put_str(&b, ",\"pre_tokenizer\":");
    put_str(&b, pre);
    put_str(&b, ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
                "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]},"
                "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96\x81\"},"
                "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
                "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,"
                "\"end_of_word_suffix\":null,\"fuse_unk\":true,\"byte_fallback\":true,\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2");
    char e[32];
    for (int i = 0; i < 256; i++) {
        snprintf(e, sizeof e, ",\"<0x%02X>\":%d", i, 3 + i);
        put_str(&b, e);
    }
    for (int i = 0; i < 7; i++) {
        put_u8(&b, ',');
        put_json_str(&b, extra[i]);
        snprintf(e, sizeof e, ":%d", 259 + i);
        put_str(&b, e);
    }
    /* plain letters so merges have their parts */
    for (char c = 'a'; c <= 'z'; c++) {
        snprintf(e, sizeof e, ",\"%c\":%d", c, 266 + (c - 'a'));
        put_str(&b, e);
    }
    put_str(&b, "},\"merges\":[");
    for (int i = 0; i < 6; i++) {
        if (i) put_u8(&b, ',');
        put_json_str(&b, merges[i]);
    }
    put_str(&b, "]}}");
    emit("tokenizer_json", name, b.p, b.n);
    free(b.p);
}

/* Llama-2 (normalizer), Metaspace (pre-tokenizer) and plain (neither) forms of one vocabulary. */
static void gen_tok_sp(void) {
    gen_tok_sp_form("sp_bytefallback.json",
                    "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
                    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]}", "null");
    gen_tok_sp_form("sp_metaspace.json", "null",
                    "{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"first\",\"split\":true}");
    gen_tok_sp_form("sp_plain.json", "null", "null");
}

/* ---- tokenizer.bin (first two bytes: vocab_size - 1, little-endian) ---- */

static void gen_tokenizer_bin(void) {
    static const char *pieces[] = {"<unk>", "\n<s>\n", "\n</s>\n", "<0x41>", " ", " t", "he", " the", "a", "e"};
    int n = (int)(sizeof pieces / sizeof pieces[0]);
    buf b = {0};
    put_u16(&b, (uint16_t)(n - 1));
    put_u32(&b, 6);
    for (int i = 0; i < n; i++) {
        put_f32(&b, i < 4 ? 0.0f : -(float)(i - 4));
        put_u32(&b, (uint32_t)strlen(pieces[i]));
        put_str(&b, pieces[i]);
    }
    emit("tokenizer_bin", "tiny10.bin", b.p, b.n);
    free(b.p);
    size_t len;
    uint8_t *d = read_head("llama2c/tok512.bin", 1 << 16, &len);
    if (d && len) {
        buf r = {0};
        put_u16(&r, 511);
        buf_put(&r, d, len);
        emit("tokenizer_bin", "real_tok512.bin", r.p, r.n);
        free(r.p);
    }
    free(d);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: gen_corpus OUTDIR [DATA_DIR]\n");
        return 2;
    }
    out_root = argv[1];
    const char *env = getenv("CCE_DATA");
    data_root = argc == 3 ? argv[2] : env && *env ? env : "../shared/data";
    mkdir_p(out_root);
    gen_llama2c();
    gen_gguf();
    gen_safetensors();
    gen_hf_config();
    gen_tok_bytelevel("bytelevel_string_merges.json", 0);
    gen_tok_bytelevel("bytelevel_array_merges.json", 1);
    gen_tok_sp();
    gen_tok_bytelevel_forms();
    gen_tokenizer_bin();
    return 0;
}
