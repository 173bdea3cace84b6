/*
 * tiny_models.h — byte-level writers of tiny but valid model files, shared by the fuzz targets
 * and the seed-corpus generator (plain C, no engine code, so the generator needs no library).
 *
 * The tiny Llama (HF layout): hidden 8, intermediate 16, 2 layers, 2 heads, 1 KV head,
 * vocab 16, with q/k/v biases present (Qwen2-style configs load too) and an lm_head.
 * The tiny GPT-2: n_embd 8, 2 layers, 2 heads, n_inner 32, n_positions 16, vocab 16, Conv1D
 * layout, no "transformer." prefix. All tensors F32 with small deterministic values.
 */
#ifndef CCE_TINY_MODELS_H
#define CCE_TINY_MODELS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char name[96];
    int n_dims;
    int64_t shape[2];
} tiny_tensor;

#define TINY_MAX_TENSORS 64

static int tiny_add(tiny_tensor *t, int n, const char *name, int64_t a, int64_t b) {
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].n_dims = b ? 2 : 1;
    t[n].shape[0] = a;
    t[n].shape[1] = b;
    return n + 1;
}

/* Tensor list of the tiny Llama; returns the count. */
static int tiny_llama_tensors(tiny_tensor *t) {
    int n = 0;
    char nm[96];
    n = tiny_add(t, n, "model.embed_tokens.weight", 16, 8);
    for (int l = 0; l < 2; l++) {
        static const struct { const char *s; int a, b; } per[] = {
            {"input_layernorm.weight", 8, 0}, {"post_attention_layernorm.weight", 8, 0},
            {"self_attn.q_proj.weight", 8, 8}, {"self_attn.k_proj.weight", 4, 8},
            {"self_attn.v_proj.weight", 4, 8}, {"self_attn.o_proj.weight", 8, 8},
            {"self_attn.q_proj.bias", 8, 0}, {"self_attn.k_proj.bias", 4, 0}, {"self_attn.v_proj.bias", 4, 0},
            {"mlp.gate_proj.weight", 16, 8}, {"mlp.up_proj.weight", 16, 8}, {"mlp.down_proj.weight", 8, 16},
        };
        for (size_t i = 0; i < sizeof per / sizeof per[0]; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, per[i].s);
            n = tiny_add(t, n, nm, per[i].a, per[i].b);
        }
    }
    n = tiny_add(t, n, "model.norm.weight", 8, 0);
    n = tiny_add(t, n, "lm_head.weight", 16, 8);
    return n;
}

/* Tensor list of the tiny GPT-2; returns the count. */
static int tiny_gpt2_tensors(tiny_tensor *t) {
    int n = 0;
    char nm[96];
    n = tiny_add(t, n, "wte.weight", 16, 8);
    n = tiny_add(t, n, "wpe.weight", 16, 8);
    for (int l = 0; l < 2; l++) {
        static const struct { const char *s; int a, b; } per[] = {
            {"ln_1.weight", 8, 0}, {"ln_1.bias", 8, 0}, {"attn.c_attn.weight", 8, 24}, {"attn.c_attn.bias", 24, 0},
            {"attn.c_proj.weight", 8, 8}, {"attn.c_proj.bias", 8, 0}, {"ln_2.weight", 8, 0}, {"ln_2.bias", 8, 0},
            {"mlp.c_fc.weight", 8, 32}, {"mlp.c_fc.bias", 32, 0}, {"mlp.c_proj.weight", 32, 8}, {"mlp.c_proj.bias", 8, 0},
        };
        for (size_t i = 0; i < sizeof per / sizeof per[0]; i++) {
            snprintf(nm, sizeof nm, "h.%d.%s", l, per[i].s);
            n = tiny_add(t, n, nm, per[i].a, per[i].b);
        }
    }
    n = tiny_add(t, n, "ln_f.weight", 8, 0);
    n = tiny_add(t, n, "ln_f.bias", 8, 0);
    return n;
}

/* Write the tensors as a .safetensors file with dtype ("F32", "F16" or "BF16"; element size
 * esize) and, when meta is non-NULL, a "__metadata__" object given as raw JSON. The header is
 * padded with spaces to a multiple of 8 so the data is aligned. Values: 0.01 * ((i % 17) - 8)
 * for F32, raw patterns for the 16-bit types. Returns 0 on success. */
static int tiny_st_write(const char *path, const tiny_tensor *t, int n, const char *dtype, int esize,
                         const char *meta) {
    static char hdr[16384];
    size_t o = 0;
    uint64_t off = 0;
    o += (size_t)snprintf(hdr + o, sizeof hdr - o, "{");
    if (meta) o += (size_t)snprintf(hdr + o, sizeof hdr - o, "\"__metadata__\":%s,", meta);
    for (int i = 0; i < n && o < sizeof hdr; i++) {
        uint64_t numel = (uint64_t)t[i].shape[0] * (uint64_t)(t[i].n_dims == 2 ? t[i].shape[1] : 1);
        uint64_t end = off + numel * (uint64_t)esize;
        if (t[i].n_dims == 2)
            o += (size_t)snprintf(hdr + o, sizeof hdr - o, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
                                  i ? "," : "", t[i].name, dtype, (long long)t[i].shape[0], (long long)t[i].shape[1],
                                  (unsigned long long)off, (unsigned long long)end);
        else
            o += (size_t)snprintf(hdr + o, sizeof hdr - o, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                                  i ? "," : "", t[i].name, dtype, (long long)t[i].shape[0],
                                  (unsigned long long)off, (unsigned long long)end);
        off = end;
    }
    if (o + 9 >= sizeof hdr) return -1;
    hdr[o++] = '}';
    while ((o + 8) % 8) hdr[o++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)o >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, o, f);
    for (uint64_t i = 0; i < off / (uint64_t)esize; i++) {
        if (esize == 4) {
            float v = 0.01f * (float)((int)(i % 17) - 8);
            fwrite(&v, 4, 1, f);
        } else {
            uint16_t v = (uint16_t)(0x3c00 - (i % 7) * 0x100); /* small normal halves / bf16s */
            fwrite(&v, 2, 1, f);
        }
    }
    return fclose(f);
}

#endif
