/*
 * cli.c — plumbing shared by the batch commands. See cli.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "calib.h"

volatile sig_atomic_t cli_interrupted;
const char *cli_usage_line;

static void on_sigint(int sig) {
    (void)sig;
    if (cli_interrupted) _exit(130); /* second Ctrl-C: leave now */
    cli_interrupted = 1;
    cce_interrupt();                 /* writers without a job handle poll this */
}

void cli_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_fail(const char *fmt, ...) {
    cli_progress_end();
    va_list ap;
    va_start(ap, fmt);
    fputs("cce: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* After Ctrl-C whatever step was running stops with an error; the exit code is then 130, the
 * same as when the step noticed the interrupt itself. */
int cli_fail_err(const cce_err *err) {
    int rc = cli_fail("%s", err->msg[0] ? err->msg : "unknown error");
    return cli_interrupted ? 130 : rc;
}

static cli_opt *find_opt(cli_opt *opts, int n_opts, const char *name, size_t len) {
    for (int i = 0; i < n_opts; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len)) return &opts[i];
    return NULL;
}

int cli_parse(int argc, char **argv, cli_opt *opts, int n_opts, const char **pos, int max_pos, int *n_pos) {
    *n_pos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1]) {
            if (*n_pos >= max_pos) {
                cli_fail("%s: unexpected argument '%s'", argv[0], a);
                return -1;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) { only_pos = 1; continue; }
        const char *name = a + 1 + (a[1] == '-');
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = find_opt(opts, n_opts, name, len);
        if (!o && len == 1 && name[0] == 'o') o = find_opt(opts, n_opts, "output", 6);
        if (!o && !eq && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            /* commands without a help of their own: the usage line and every option */
            if (cli_usage_line) printf("usage: cce %s\n\n", cli_usage_line);
            printf("options:\n");
            for (int k = 0; k < n_opts; k++)
                printf("  %s%-16s %s%s\n", opts[k].name[1] ? "--" : " -", opts[k].name,
                       opts[k].has_arg ? "VALUE  " : "       ", opts[k].help ? opts[k].help : "");
            exit(0);
        }
        if (!o) {
            cli_fail("%s: unknown option '%s' (try: cce help)", argv[0], a);
            return -1;
        }
        if (o->has_arg) {
            if (eq) o->value = eq + 1;
            else if (i + 1 < argc) o->value = argv[++i];
            else {
                cli_fail("%s: option --%s needs a value", argv[0], o->name);
                return -1;
            }
        } else {
            if (eq) {
                cli_fail("%s: option --%s takes no value", argv[0], o->name);
                return -1;
            }
            o->value = "1";
        }
    }
    return 0;
}

const char *cli_get(const cli_opt *opts, int n_opts, const char *name) {
    for (int i = 0; i < n_opts; i++)
        if (!strcmp(opts[i].name, name)) return opts[i].value;
    return NULL;
}

int cli_get_long(const cli_opt *opts, int n_opts, const char *name, long lo, long hi, long *out) {
    const char *v = cli_get(opts, n_opts, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        cli_fail("--%s %s: expected an integer in [%ld, %ld]", name, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_get_double(const cli_opt *opts, int n_opts, const char *name, double lo, double hi, double *out) {
    const char *v = cli_get(opts, n_opts, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        cli_fail("--%s %s: expected a number in [%g, %g]", name, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

const char *cli_data_dir(void) {
    const char *d = getenv("CCE_DATA");
    return d && *d ? d : "../shared/data";
}

const char *cli_default_model(void) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/llama2c/stories260K.bin", cli_data_dir());
    return buf;
}

int cli_open_model(const char *path, const char *tok_path, int need_tok, cce_model **model, cce_tokenizer **tok) {
    cce_err err = {{0}};
    if (!path) {
        path = cli_default_model();
        if (access(path, R_OK) != 0)
            return cli_fail("no model given and the default model %s is missing; pass a model path "
                            "(llama2.c .bin, .gguf or a Hugging Face directory) or set CCE_DATA", path);
    }
    cce_open_opts o = {.tokenizer_path = tok_path, .no_tokenizer = tok == NULL};
    if (cce_model_open(path, &o, model, tok, &err)) return cli_fail_err(&err);
    if (need_tok && tok && !*tok) {
        cce_model_free(*model);
        *model = NULL;
        return cli_fail("%s: no tokenizer found beside the model; pass --tokenizer FILE", path);
    }
    return 0;
}

void cli_warn_utf8(const char *what, const char *s, size_t len) {
    size_t bad = cce_tokenizer_utf8_check(s, len);
    if (bad < len)
        fprintf(stderr, "cce: warning: %s: not valid UTF-8 at byte offset %zu (such bytes are encoded as byte tokens)\n",
                what, bad);
}

int cli_read_text(const char *path, char **text, size_t *len) {
    cce_err err = {{0}};
    /* a file, or a directory of files (calibration texts such as text/train/) */
    if (cce_calib_read_text(path, text, len, NULL, &err)) return cli_fail_err(&err);
    cli_warn_utf8(path, *text, *len);
    return 0;
}

void cli_json_print(cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        cJSON_free(s);
    }
    cJSON_Delete(obj);
}

static double prog_start, prog_last;
static int prog_shown;

void cli_progress(const char *phase, long done, long total) {
    double now = cce_now();
    if (prog_start == 0) prog_start = now;
    if (now - prog_start < 1.0 || now - prog_last < 0.1) return;
    prog_last = now;
    if (!isatty(2)) {
        /* log-friendly: one line per phase change or every 2 s */
        static char last_phase[128];
        static double last_line;
        if (strcmp(last_phase, phase) || now - last_line > 2.0) {
            fprintf(stderr, "cce: %s %ld/%ld\n", phase, done, total);
            snprintf(last_phase, sizeof last_phase, "%s", phase);
            last_line = now;
        }
        return;
    }
    fprintf(stderr, "\r\033[Kcce: %s %ld/%ld (%.0f%%)", phase, done, total, total > 0 ? 100.0 * (double)done / (double)total : 0.0);
    prog_shown = 1;
}

void cli_progress_end(void) {
    if (prog_shown) fputs("\r\033[K", stderr);
    prog_shown = 0;
    prog_start = prog_last = 0;
}
