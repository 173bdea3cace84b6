/*
 * cmd_info.c — `cce info MODEL [--tokenizer FILE] [--json]`.
 *
 * For a model (llama2.c .bin, llama .gguf, Hugging Face directory): architecture, shapes,
 * parameter counts (non-embedding separately; a tied head counts once), per-layer shapes.
 * For a bare .safetensors file: the tensor table, after the same full validation the loader does.
 * For a .gguf file that is valid GGUF but not a model the engine can run (another architecture,
 * missing metadata or tensors, an unsupported type): its tensors and metadata, after full
 * validation, and one line "cannot run: <why>" (the loader's own message) — exit 0, since the file
 * itself is fine; --json says "runnable": false and "why". A malformed file is an error as
 * everywhere. --tensors lists any .gguf / .safetensors file without loading it.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "gguf.h"
#include "safetensors.h"

static void fmt_count(int64_t n, char *buf, size_t cap) {
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%lld", (long long)n), o = 0;
    for (int i = 0; i < len && o + 2 < (int)cap; i++) {
        if (i && (len - i) % 3 == 0 && tmp[i - 1] != '-') buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
}

/* One row of a tensor listing, whatever the file format. */
typedef struct {
    const char *name, *dtype;
    int n_dims;
    const int64_t *shape;   // (n_dims), in the file's own order
    uint64_t nbytes;
} tensor_row;

/* Print a validated tensor table (and GGUF metadata, and why a GGUF cannot run: why NULL when not
 * asked): human lines, or one JSON object. */
static void print_tensors(const char *path, const char *format, const char *title, const char *arch,
                          const tensor_row *rows, int n, const cce_gguf_meta *meta, int n_meta, const char *why,
                          int json) {
    int64_t total = 0;
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    if (!json) printf("%s: %s, %d tensors\n", path, title, n);
    for (int i = 0; i < n; i++) {
        const tensor_row *t = &rows[i];
        int64_t el = 1;
        for (int d = 0; d < t->n_dims; d++) el *= t->shape[d];
        total += el;
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "dtype", t->dtype);
            cJSON *sh = cJSON_AddArrayToObject(o, "shape");
            for (int d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
            cJSON_AddNumberToObject(o, "nbytes", (double)t->nbytes);
            cJSON_AddItemToArray(arr, o);
        } else {
            char shape[160] = "";
            int o = 0;
            for (int d = 0; d < t->n_dims && o < (int)sizeof shape; d++)
                o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            printf("  %-48s %-6s [%s]\n", t->name, t->dtype, shape);
        }
    }
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "path", path);
        cJSON_AddStringToObject(root, "format", format);
        if (arch) cJSON_AddStringToObject(root, "gguf_arch", arch);
        cJSON_AddNumberToObject(root, "n_tensors", n);
        cJSON_AddNumberToObject(root, "elements", (double)total);
        cJSON_AddItemToObject(root, "tensors", arr);
        if (meta) {
            cJSON *ma = cJSON_AddArrayToObject(root, "metadata");
            for (int i = 0; ma && i < n_meta; i++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "key", meta[i].key);
                cJSON_AddStringToObject(o, "type", meta[i].type);
                cJSON_AddStringToObject(o, "value", meta[i].value);
                cJSON_AddItemToArray(ma, o);
            }
        }
        if (why) {
            cJSON_AddBoolToObject(root, "runnable", 0);
            cJSON_AddStringToObject(root, "why", why);
        }
        cli_json_print(root);
    } else {
        char c[32];
        fmt_count(total, c, sizeof c);
        printf("  %s elements in all\n", c);
        if (meta) {
            printf("metadata   %d keys\n", n_meta);
            for (int i = 0; i < n_meta; i++) printf("  %-40s %-15s %s\n", meta[i].key, meta[i].type, meta[i].value);
        }
        if (why) printf("cannot run: %s\n", why);
    }
}

/* Tensors and metadata of a GGUF file; why: the reason it cannot run, or NULL. */
static int list_gguf(const char *path, const char *why, int json) {
    cce_err err = {{0}};
    cce_gguf_tensor *t = NULL;
    cce_gguf_meta *meta = NULL;
    int n = 0, n_meta = 0;
    char arch[64] = "", title[128];
    if (cce_gguf_list(path, &t, &n, arch, sizeof arch, &err)) return cli_fail_err(&err);
    if (cce_gguf_list_meta(path, &meta, &n_meta, &err)) {
        cce_free(t);
        return cli_fail_err(&err);
    }
    tensor_row *rows = cce_alloc_zero(n ? (size_t)n : 1, sizeof *rows);
    if (!rows) {
        cce_free(t);
        cce_free(meta);
        return cli_fail("%s: out of memory listing %d tensors", path, n);
    }
    for (int i = 0; i < n; i++)
        rows[i] = (tensor_row){t[i].name, t[i].dtype, t[i].n_dims, t[i].shape, t[i].nbytes};
    snprintf(title, sizeof title, "GGUF, architecture '%s'", arch);
    print_tensors(path, "gguf", title, arch, rows, n, meta, n_meta, why, json);
    cce_free(rows);
    cce_free(t);
    cce_free(meta);
    return 0;
}

static int list_safetensors(const char *path, int json) {
    cce_err err = {{0}};
    cce_safetensors st;
    if (cce_st_open(path, &st, &err)) return cli_fail_err(&err);
    tensor_row *rows = cce_alloc_zero(st.n ? (size_t)st.n : 1, sizeof *rows);
    if (!rows) {
        cce_st_close(&st);
        return cli_fail("%s: out of memory listing %d tensors", path, st.n);
    }
    for (int i = 0; i < st.n; i++)
        rows[i] = (tensor_row){st.t[i].name, cce_st_dtype_name(st.t[i].dtype), st.t[i].n_dims, st.t[i].shape,
                               st.t[i].end - st.t[i].begin};
    print_tensors(path, "safetensors", "safetensors", NULL, rows, st.n, NULL, 0, NULL, json);
    cce_free(rows);
    cce_st_close(&st);
    return 0;
}

static int is_gguf_file(const char *path) {
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    return got == 4 && !memcmp(magic, "GGUF", 4);
}

int cmd_info(int argc, char **argv) {
    cli_opt opts[] = {
        {"tokenizer", 1, "tokenizer file", NULL},
        {"json", 0, "print one JSON object", NULL},
        {"tensors", 0, "list the tensors of a .gguf/.safetensors file", NULL},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    int json = cli_get(opts, n_opts, "json") != NULL;
    const char *path = n_pos ? pos[0] : NULL;
    struct stat st;
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        if (cce_str_ends_with(path, ".safetensors")) return list_safetensors(path, json);
        int gguf = is_gguf_file(path);
        if (gguf && cli_get(opts, n_opts, "tensors")) return list_gguf(path, NULL, json);
        if (gguf) {
            /* a valid GGUF file the engine cannot run is listed, with the loader's reason */
            cce_err err = {{0}};
            cce_open_opts o = {.tokenizer_path = cli_get(opts, n_opts, "tokenizer")};
            cce_status s = cce_model_open(path, &o, &m, &tok, &err);
            if (s == CCE_EFORMAT || s == CCE_EUNSUPPORTED) {
                cce_gguf_tensor *t = NULL;
                int n = 0;
                cce_err lerr = {{0}};
                if (cce_gguf_list(path, &t, &n, NULL, 0, &lerr) == CCE_OK) {
                    cce_free(t);
                    return list_gguf(path, err.msg, json);
                }
            }
            if (s) return cli_fail_err(&err);
        }
    }
    if (!m && cli_open_model(path, cli_get(opts, n_opts, "tokenizer"), 0, &m, &tok)) return 1;
    const cce_config *c = &m->cfg;
    cce_param_count p = cce_model_params(m);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", m->path);
        cJSON_AddStringToObject(o, "format", cce_format_name(m->format));
        cJSON_AddStringToObject(o, "arch", cce_arch_name(c->arch));
        cJSON_AddNumberToObject(o, "dim", c->dim);
        cJSON_AddNumberToObject(o, "n_layers", c->n_layers);
        cJSON_AddNumberToObject(o, "n_heads", c->n_heads);
        cJSON_AddNumberToObject(o, "n_kv_heads", c->n_kv_heads);
        cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(o, "hidden_dim", c->hidden_dim);
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        cJSON_AddNumberToObject(o, "seq_len", c->seq_len);
        cJSON_AddNumberToObject(o, "params", (double)p.total);
        cJSON_AddNumberToObject(o, "params_non_embedding", (double)p.non_embedding);
        cJSON_AddNumberToObject(o, "params_embedding", (double)p.embedding);
        cJSON_AddBoolToObject(o, "tied", c->tied);
        cJSON_AddNumberToObject(o, "norm_eps", c->norm_eps);
        if (c->arch == CCE_ARCH_LLAMA) {
            cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
            cJSON_AddStringToObject(o, "rope", c->rope_interleaved ? "interleaved" : "half");
        }
        if (tok) {
            cJSON *t = cJSON_AddObjectToObject(o, "tokenizer");
            cJSON_AddStringToObject(t, "kind", cce_tokenizer_kind(tok) == CCE_TOK_SP ? "sentencepiece-bpe" : "byte-level-bpe");
            cJSON_AddNumberToObject(t, "vocab_size", cce_tokenizer_vocab_size(tok));
        } else {
            cJSON_AddNullToObject(o, "tokenizer");
        }
        cJSON *layers = cJSON_AddArrayToObject(o, "layers");
        for (int l = 0; l < c->n_layers; l++) {
            const cce_layer *L = &m->layers[l];
            cJSON *lo = cJSON_CreateObject();
            cJSON_AddBoolToObject(lo, "dropped", L->dropped);
            cJSON_AddNumberToObject(lo, "n_heads", L->dropped ? 0 : L->n_heads);
            cJSON_AddNumberToObject(lo, "n_kv_heads", L->dropped ? 0 : L->n_kv_heads);
            cJSON_AddNumberToObject(lo, "hidden", L->dropped ? 0 : L->hidden);
            cJSON_AddNumberToObject(lo, "params", (double)cce_layer_params(m, l));
            cJSON_AddItemToArray(layers, lo);
        }
        cli_json_print(o);
    } else {
        char a[32], b[32], e[32];
        fmt_count(p.total, a, sizeof a);
        fmt_count(p.non_embedding, b, sizeof b);
        fmt_count(p.embedding, e, sizeof e);
        printf("model      %s (%s)\n", m->path, cce_format_name(m->format));
        printf("arch       %s: dim %d, %d layers, %d heads (%d KV, head_dim %d), FFN %d, vocab %d, context %d\n",
               cce_arch_name(c->arch), c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
               c->hidden_dim, c->vocab_size, c->seq_len);
        if (c->arch == CCE_ARCH_LLAMA)
            printf("norm/rope  RMSNorm eps %g; RoPE theta %g, %s\n", (double)c->norm_eps, (double)c->rope_theta,
                   c->rope_interleaved ? "adjacent pairs (llama2.c)" : "half rotation (Hugging Face)");
        else
            printf("norm       LayerNorm eps %g; learned positions; GELU\n", (double)c->norm_eps);
        printf("params     %s total = %s non-embedding + %s embedding (%s head)\n", a, b, e,
               c->tied ? "tied" : "untied");
        if (tok)
            printf("tokenizer  %s, %d tokens\n",
                   cce_tokenizer_kind(tok) == CCE_TOK_SP ? "SentencePiece-style BPE" : "byte-level BPE",
                   cce_tokenizer_vocab_size(tok));
        else
            printf("tokenizer  none found (pass --tokenizer FILE)\n");
        int uniform = 1;
        for (int l = 0; l < c->n_layers; l++) {
            const cce_layer *L = &m->layers[l];
            if (L->dropped || L->n_heads != c->n_heads || L->n_kv_heads != c->n_kv_heads || L->hidden != c->hidden_dim ||
                L->wq.rank || L->wk.rank || L->wv.rank || L->wo.rank || L->w1.rank || L->w2.rank || L->w3.rank)
                uniform = 0;
        }
        if (!uniform) {
            printf("layers     (compressed)\n");
            for (int l = 0; l < c->n_layers; l++) {
                const cce_layer *L = &m->layers[l];
                char pc[32];
                fmt_count(cce_layer_params(m, l), pc, sizeof pc);
                if (L->dropped) printf("  %3d  dropped\n", l);
                else printf("  %3d  heads %d/%d  kv %d/%d  ffn %d/%d  params %s\n", l, L->n_heads, c->n_heads,
                            L->n_kv_heads, c->n_kv_heads, L->hidden, c->hidden_dim, pc);
            }
        }
    }
    cce_tokenizer_free(tok);
    cce_model_free(m);
    return 0;
}
