/*
 * main.c — argv to a batch command or the TUI.
 *
 * Built twice: build/cce (with the TUI) and build/cce-batch (-DCCE_BATCH_ONLY, linked without
 * curses and readline, which proves the engine and the batch CLI need no UI library).
 */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#ifndef CCE_BATCH_ONLY
#include "tui_main.h"
#endif

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} command;

static const command commands[] = {
    {"info", cmd_info, "info MODEL [--tokenizer FILE] [--json]   architecture, shapes, parameters; lists tensors of a bare .safetensors/.gguf"},
    {"eval", cmd_eval, "eval MODEL --text FILE [--plan PLAN] [--seq-len N] [--max-tokens N] [--batch N] [--json]   perplexity and accuracy"},
    {"generate", cmd_generate, "generate MODEL [--plan PLAN] [--prompt TEXT] [-n N] [--ids] [--json]   greedy generation"},
    {"export", cmd_export, "export MODEL -o DIR|FILE [--format hf|gguf] [--dtype f32|f16|bf16 (hf), f32|f16|q8_0 (gguf)] [--no-tokenizer] [--json]   write a Hugging Face directory or a GGUF file"},
    {"synth", cmd_synth, "synth --like NAME -o DIR [--seed S] [--json]   random-weight model of a real shape (tiny smollm-135m gpt2 qwen2.5-0.5b llama-3.2-1b)"},
    {"bench", cmd_bench, "bench MODEL [--plan PLAN] [--json]   throughput, utilisation, bandwidth; with --plan the compressed model's decode speed-up"},
    {"plan", cmd_plan, "plan MODEL [--calib FILE|DIR] [--target P | --eps E --tau T] [--alpha A --beta B --gamma G] [--pin/--force B:KIND[:I]] [--redistribute none|lsq|bias] [--search N|auto] [--analysis FILE] -o PLAN [--json]   a compression plan"},
    {"apply", cmd_apply, "apply MODEL --plan PLAN -o DIR [--format hf|gguf] [--dtype f32|f16|bf16] [--calib FILE|DIR] [--json]   write the compressed model"},
    {"compare", cmd_compare, "compare MODEL [--calib FILE|DIR] [--eval FILE[,FILE2]] [--target 0.1,0.2,0.3] [--methods LIST] [--redistribute lsq|none|none,lsq] [--save-plans DIR] [--csv FILE] [--json]   every method at every budget"},
    {"sweep", cmd_sweep, "sweep MODEL [--calib FILE|DIR] [--eval FILE] [--level 0.5] [--redistribute lsq|none] [--csv FILE] [--json]   one block at a time"},
    {"sensitivity", cmd_sensitivity, "sensitivity MODEL [--calib FILE|DIR] [--eval FILE] [--eps LIST] [--tau LIST] [--csv FILE] [--json]   threshold grid and its frontier"},
    {"robustness", cmd_robustness, "robustness MODEL --plan PLAN [--eval FILE] [--noise 0.05,...,0.5] [--seed S] [--csv FILE] [--json]   character noise, dense vs compressed"},
    {"classify", cmd_classify, "classify MODEL [--plan PLAN] --tsv FILE --labels \"negative,positive\" [--template T] [--csv FILE] [--json]   zero-shot classification by likelihood"},
    {"analyze", cmd_analyze, "analyze MODEL --calib FILE -o FILE [--tokens N] [--seq-len N] [--seed S] [--eps E] [--tau T] [--json]   the CCE analysis"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: cce COMMAND [ARGS]   (cce COMMAND --help: all its options)\n\ncommands:\n");
#ifndef CCE_BATCH_ONLY
    fprintf(f, "  tui [MODEL] [--calib FILE] [--eval FILE] [--tokenizer FILE]   the interactive inspector (tui --help;\n"
               "      no command at all opens it on the default model %s)\n", cli_default_model());
#endif
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f, "\nMODEL: a llama2.c .bin (tokenizer.bin/tok512.bin beside it or --tokenizer),\n"
               "a .gguf file, or a Hugging Face directory (config.json, *.safetensors, tokenizer.json).\n"
               "Data directory: $CCE_DATA (default ../shared/data).\n");
}

int main(int argc, char **argv) {
    cli_install_signals();
    if (argc < 2) {
#ifndef CCE_BATCH_ONLY
        char *a[] = {"tui", NULL};
        return tui_main(1, a);
#else
        usage(stderr);
        return 2;
#endif
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "tui")) {
#ifndef CCE_BATCH_ONLY
        return tui_main(argc - 1, argv + 1);
#else
        return cli_fail("this is cce-batch, built without the TUI; use build/cce tui");
#endif
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            cli_usage_line = commands[i].usage;
            return commands[i].fn(argc - 1, argv + 1);
        }
    cli_fail("unknown command '%s' (try: cce help)", argv[1]);
    return 2;
}
