/*
 * plan_ui.c — the app's side of planning, committing and sessions: what goes to the planner and
 * task threads, what is adopted when they answer, pins and forces, :export, :save, :load and
 * the autosave.
 *
 * The plan's inputs live in the app (the knobs, pins, forces, the block scales of a search);
 * every change asks for a re-plan (R_REPLAN) and the loop sends them to the planner thread.
 * a->plan is the newest plan the thread returned: views draw it, :export and :save write it,
 * :commit encodes it. A plan restored from a session is "frozen": kept exactly as it was saved
 * (its predicted losses recomputed as the analysis fills in) until an input changes, so a
 * reloaded session is the same plan whether or not the analysis has finished again.
 *
 * Safety of what the user made (DESIGN §7): every commit writes the whole session to
 * sessions/autosave.json at once, and a quit by signal with unsaved changes writes it too, so
 * a committed plan is never lost; :save NAME writes sessions/NAME.json and, when the analysis
 * has finished, sessions/NAME.analysis.json beside it, so :load can reload instead of
 * recomputing.
 */
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "tui.h"
#include "util.h"

/* ------------------------------------------------------------------ identities */

static void calib_id_of(const app *a, cce_calib_id *id) {
    memset(id, 0, sizeof *id);
    snprintf(id->path, sizeof id->path, "%s", a->calib_path);
    snprintf(id->sha256, sizeof id->sha256, "%s", a->calib_sha256);
    id->tokens = (long)a->calib_n_seq * a->calib_seq_len;
    id->seq_len = a->calib_seq_len;
    id->seed = a->aopts.seed;
}

/* The identities a plan carries, from what the app knows now. */
static void stamp(const app *a, cce_plan *p) {
    if (a->have_model_id) p->model = a->model_id;
    if (a->calib_seq_len || !p->calib.seq_len) calib_id_of(a, &p->calib);   // a restored plan keeps its own until known
}

static void knobs_of(const app *a, cce_knobs *k) {
    k->alpha = a->knob[KNOB_ALPHA];
    k->beta = a->knob[KNOB_BETA];
    k->gamma = a->knob[KNOB_GAMMA];
    k->eps = a->knob[KNOB_EPS];
    k->tau = a->knob[KNOB_TAU];
    k->target = a->knob[KNOB_TARGET];
}

const cce_plan *tui_plan(const app *a) { return a->plan.n_blocks > 0 ? &a->plan : NULL; }

int tui_task_running(const app *a) { return a->tk && task_state(a->tk) <= JOB_RUNNING; }

/* ------------------------------------------------------------------ re-planning */

void tui_replan(app *a) {
    if (!a->rp || !a->model) return;
    cce_plan req;
    cce_err err = {{0}};
    if (cce_plan_init(&req, a->model, &err)) {
        tui_log(a, LOG_ERROR, "re-plan: %s", err.msg);
        return;
    }
    knobs_of(a, &req.knobs);
    stamp(a, &req);
    req.pins = a->pins, req.n_pins = a->n_pins;            // borrowed: the request copies them
    req.forces = a->forces, req.n_forces = a->n_forces;
    req.block_scale = a->block_scale;
    long gen = replanner_request(a->rp, &req, worker_job(a->wk));
    req.pins = req.forces = NULL;
    req.block_scale = NULL;
    cce_plan_free(&req);
    if (gen < 0) tui_log(a, LOG_ERROR, "re-plan: out of memory");
    else a->plan_want = gen;
}

/* Do the decisions of two plans agree (identities and predictions aside)? */
static int same_decisions(const cce_plan *x, const cce_plan *y) {
    if (!x || !y || x->n_blocks != y->n_blocks) return 0;
    for (int l = 0; l < x->n_blocks; l++) {
        const cce_block_plan *a = &x->blocks[l], *b = &y->blocks[l];
        if (a->drop != b->drop || a->drop_attn != b->drop_attn || a->drop_ffn != b->drop_ffn ||
            a->n_heads_removed != b->n_heads_removed || a->n_neurons_removed != b->n_neurons_removed ||
            memcmp(a->rank, b->rank, sizeof a->rank))
            return 0;
        if (a->n_heads_removed && memcmp(a->heads_removed, b->heads_removed, (size_t)a->n_heads_removed * sizeof(int)))
            return 0;
        if (a->n_neurons_removed &&
            memcmp(a->neurons_removed, b->neurons_removed, (size_t)a->n_neurons_removed * sizeof(int)))
            return 0;
    }
    return 1;
}

static void note_committed_same(app *a) {
    a->committed_same = a->committed && same_decisions(&a->plan, &a->committed->plan);
}

/* The finished results of the current job, as an array (NULL entries: not yet). */
static const cce_block_result **blocks_now(const app *a, int *n_done) {
    int L = tui_n_layers(a);
    const cce_block_result **b = calloc((size_t)L + 1, sizeof *b);
    if (n_done) *n_done = 0;
    for (int l = 0; b && l < L; l++) {
        b[l] = tui_block(a, l);
        if (n_done && b[l]) (*n_done)++;
    }
    return b;
}

/* A frozen plan's predictions are recomputed once the whole analysis is there again (until
 * then they are the ones the session saved). */
static void refresh_losses(app *a) {
    int n;
    const cce_block_result **b = blocks_now(a, &n);
    if (!b) return;
    if (a->plan.n_blocks && n == tui_n_layers(a)) cce_plan_losses(&a->plan, b);
    a->plan_blocks = n;
    free(b);
}

/* ------------------------------------------------------------------ adopting what threads made */

static int adopt_commit(app *a) {
    commit_result *c = calloc(1, sizeof *c);
    if (!c || task_take_commit(a->tk, c)) {
        free(c);
        tui_log(a, LOG_ERROR, "commit: out of memory taking the result");
        return R_REDRAW;
    }
    if (a->committed) {   // the previous compressed model goes first (both borrow the original)
        commit_result_free(a->committed);
        free(a->committed);
    }
    a->committed = c;
    if (a->n_commits < CCE_SESSION_MAX_COMMITS) {
        cce_commit_record *v = realloc(a->commits, ((size_t)a->n_commits + 1) * sizeof *v);
        if (v) {
            v[a->n_commits++] = c->rec;
            a->commits = v;
        }
    }
    a->dirty = 1;
    note_committed_same(a);
    const cce_commit_record *r = &c->rec;
    char t[32];
    fmt_seconds(a, task_elapsed(a->tk), t, sizeof t);
    tui_log(a, LOG_EVENT, "commit #%d in %s: loss %.4f -> %.4f, ppl %.3f -> %.3f, accuracy %.4f -> %.4f, params %lld -> %lld",
            a->n_commits, t, r->before.loss, r->after.loss, r->before.ppl, r->after.ppl, r->before.accuracy,
            r->after.accuracy, (long long)r->before.params, (long long)r->after.params);
    tui_message(a, LOG_INFO, "committed: ppl %.3f -> %.3f (%s)  %.1f%% of parameters removed", r->before.ppl,
                r->after.ppl, a->view == VIEW_PLAN ? "below" : "5: Plan", 100 * r->removed_fraction);
    tui_autosave(a);
    return R_REDRAW;
}

static int adopt_search(app *a) {
    cce_plan p;
    cce_search_result sr;
    if (task_take_search(a->tk, &p, &sr)) return R_REDRAW;
    cce_knobs now;
    knobs_of(a, &now);
    const cce_plan *f = &a->search_from;
    int same = !memcmp(&now, &f->knobs, sizeof now) && f->n_pins == a->n_pins && f->n_forces == a->n_forces &&
               (!a->n_pins || !memcmp(f->pins, a->pins, (size_t)a->n_pins * sizeof(cce_pin))) &&
               (!a->n_forces || !memcmp(f->forces, a->forces, (size_t)a->n_forces * sizeof(cce_pin)));
    if (!same) {
        cce_plan_free(&p);
        tui_log(a, LOG_WARN, "search finished, but the knobs or pins changed while it ran: its plan was not adopted");
        return R_REDRAW;
    }
    free(a->block_scale);
    a->block_scale = NULL;
    if (p.block_scale && (a->block_scale = malloc((size_t)p.n_blocks * 2 * sizeof(double))))
        memcpy(a->block_scale, p.block_scale, (size_t)p.n_blocks * 2 * sizeof(double));
    cce_plan_free(&a->plan);
    a->plan = p;
    a->plan_frozen = 0;
    a->dirty = 1;
    note_committed_same(a);
    tui_log(a, LOG_EVENT, "search: %d candidates on %ld held-out calibration tokens: dev NLL dense %.4f, first plan %.4f, kept %.4f%s",
            sr.evaluated, sr.dev_tokens, sr.dense_nll, sr.first_nll, sr.best_nll,
            a->block_scale ? " (measured block sensitivities now scale the losses)" : "");
    return R_REDRAW;
}

int tui_plan_poll(app *a) {
    int fl = R_NONE;
    if (!a->have_model_id && a->wk && worker_model_id(a->wk, &a->model_id) == 1) {
        a->have_model_id = 1;
        stamp(a, &a->plan);
    }
    const cce_analysis *job = worker_job(a->wk);
    if (job && !a->calib_seq_len) {
        size_t stream;
        cce_analysis_calib_info(job, &stream, &a->calib_n_seq, &a->calib_seq_len);
        if (a->calib_seq_len) stamp(a, &a->plan);
    }
    replan_result res;
    cce_plan got = {0};
    if (a->rp && replanner_take(a->rp, &got, &res)) {
        if (res.gen > a->plan_have && !a->plan_frozen) {
            a->plan_have = res.gen;
            a->plan_ms = res.ms;
            if (res.ok) {
                cce_plan_free(&a->plan);
                a->plan = got;
                memset(&got, 0, sizeof got);
                stamp(a, &a->plan);
                a->plan_blocks = res.blocks;
                a->plan_err[0] = 0;
                note_committed_same(a);
            } else {
                if (strcmp(a->plan_err, res.err)) tui_log(a, LOG_ERROR, "re-plan: %s", res.err);
                snprintf(a->plan_err, sizeof a->plan_err, "%s", res.err);
            }
            fl |= R_REDRAW;
        }
        cce_plan_free(&got);
    }
    if (a->plan_frozen && job) {
        int n = 0;
        for (int l = 0; l < tui_n_layers(a); l++) n += tui_block(a, l) != NULL;
        if (n != a->plan_blocks) {
            refresh_losses(a);
            fl |= R_REDRAW;
        }
    }
    if (a->tk && task_state(a->tk) >= JOB_DONE) {
        job_state s = task_state(a->tk);
        task_kind k = task_kind_of(a->tk);
        const char *what = k == TASK_COMMIT ? "commit" : "search";
        if (s == JOB_DONE) fl |= k == TASK_COMMIT ? adopt_commit(a) : adopt_search(a);
        else if (s == JOB_CANCELLED) tui_log(a, LOG_WARN, "%s cancelled; nothing changed", what);
        else tui_log(a, LOG_ERROR, "%s failed: %s", what, task_error(a->tk));
        task_free(a->tk);
        a->tk = NULL;
        cce_plan_free(&a->search_from);
        fl |= R_REDRAW;
    } else if (a->tk) {
        fl |= R_REDRAW;   // progress
    }
    return fl;
}

/* ------------------------------------------------------------------ pins and forces */

/* How many components of kind k block l has (index range 0..n-1; drop kinds take only -1). */
static int comp_count(const app *a, int l, int k) {
    const cce_layer *L = &a->model->layers[l];
    if (L->dropped) return 0;
    if (k == CCE_CURVE_NEURONS) return L->hidden;
    if (k == CCE_CURVE_HEADS) return L->n_heads;
    return 0;   // ranks and drops: the matrix or sublayer itself (index -1)
}

static int find_pin(const cce_pin *v, int n, int block, int kind, int index) {
    for (int i = 0; i < n; i++)
        if (v[i].block == block && (int)v[i].kind == kind && v[i].index == index) return i;
    return -1;
}

int tui_pin_state(const app *a, int block, int kind, int index) {
    if (find_pin(a->pins, a->n_pins, block, kind, index) >= 0) return 1;
    if (find_pin(a->forces, a->n_forces, block, kind, index) >= 0) return 2;
    return 0;
}

static void remove_at(cce_pin *v, int *n, int i) {
    memmove(v + i, v + i + 1, (size_t)(*n - i - 1) * sizeof *v);
    (*n)--;
}

static int append(cce_pin **v, int *n, cce_pin p) {
    cce_pin *w = realloc(*v, ((size_t)*n + 1) * sizeof *w);
    if (!w) return -1;
    w[(*n)++] = p;
    *v = w;
    return 0;
}

int tui_pin_set(app *a, int block, int kind, int index, int how) {
    int L = tui_n_layers(a);
    if (block < 0 || block >= L || kind < 0 || kind >= CCE_CURVE_COUNT) {
        tui_log(a, LOG_ERROR, "pin: block %d / kind %d out of range", block, kind);
        return R_REDRAW;
    }
    int n = comp_count(a, block, kind);
    if (kind == CCE_CURVE_NEURONS || kind == CCE_CURVE_HEADS ? (index < 0 || index >= n) : index != -1) {
        if (kind == CCE_CURVE_NEURONS || kind == CCE_CURVE_HEADS)
            tui_log(a, LOG_ERROR, "pin: block %d has %s 0..%d, not %d", block, cce_curve_name((cce_curve_kind)kind), n - 1, index);
        else tui_log(a, LOG_ERROR, "pin: %s names the whole %s, without an index", cce_curve_name((cce_curve_kind)kind),
                     kind >= CCE_CURVE_DROP_ATTN ? "sublayer or block" : "matrix (pinned: kept dense)");
        return R_REDRAW;
    }
    if (how == 2 && kind >= CCE_CURVE_RANK_WQ && kind <= CCE_CURVE_RANK_W2) {
        tui_log(a, LOG_ERROR, "force: a rank cannot be forced (pin keeps a matrix dense; the planner picks ranks)");
        return R_REDRAW;
    }
    int was = tui_pin_state(a, block, kind, index);
    if (was == how) return R_REDRAW;
    int i;
    if ((i = find_pin(a->pins, a->n_pins, block, kind, index)) >= 0) remove_at(a->pins, &a->n_pins, i);
    if ((i = find_pin(a->forces, a->n_forces, block, kind, index)) >= 0) remove_at(a->forces, &a->n_forces, i);
    cce_pin p = {block, (cce_curve_kind)kind, index};
    if ((how == 1 && append(&a->pins, &a->n_pins, p)) || (how == 2 && append(&a->forces, &a->n_forces, p))) {
        tui_log(a, LOG_ERROR, "pin: out of memory");
        return R_REDRAW;
    }
    char what[64];
    if (index >= 0) snprintf(what, sizeof what, "block %d %s %d", block, cce_curve_name((cce_curve_kind)kind), index);
    else snprintf(what, sizeof what, "block %d %s", block, cce_curve_name((cce_curve_kind)kind));
    static const char *verb[3] = {"cleared", "pinned (never removed)", "forced (always removed)"};
    tui_log(a, LOG_INFO, "%s %s", what, verb[how]);
    a->plan_frozen = 0;
    a->dirty = 1;
    return R_REDRAW | R_REPLAN;
}

/* ------------------------------------------------------------------ commit and search */

/* Why the current plan cannot be encoded now, or NULL. */
static const char *why_not_encode(const app *a) {
    if (tui_task_running(a)) return "a commit or search is already running (Esc cancels it)";
    if (!a->tok) return "no tokenizer: encoding needs one for the calibration text";
    if (worker_state(a->wk) <= JOB_RUNNING) return "the analysis is still running: wait for it, or cancel it (c) to plan over the blocks done";
    if (!tui_plan(a)) return "there is no plan yet";
    if (a->plan_err[0]) return "the current knobs, pins and forces have no plan (see the last error); change them first";
    if (a->plan_want != a->plan_have && !a->plan_frozen) return "re-planning; try again in a moment";
    if (!a->have_model_id) return "the model's identity (sha256) is still being computed; try again in a moment";
    if (!a->calib_seq_len) return "the calibration windows are not known yet";
    return NULL;
}

static int start_task(app *a, task_kind kind, int evaluations) {
    const char *why = why_not_encode(a);
    const char *what = kind == TASK_COMMIT ? "commit" : "search";
    if (!why && kind == TASK_COMMIT && !a->eval_path[0]) why = "no evaluation text (pass --eval FILE)";
    if (!why && kind == TASK_SEARCH && worker_state(a->wk) != JOB_DONE) why = "the search needs the whole analysis";
    if (why) {
        tui_log(a, LOG_ERROR, "%s: %s", what, why);
        return R_REDRAW;
    }
    const cce_block_result **blocks = blocks_now(a, NULL);
    if (!blocks) {
        tui_log(a, LOG_ERROR, "%s: out of memory", what);
        return R_REDRAW;
    }
    cce_plan p;
    cce_err err = {{0}};
    if (cce_plan_copy(&p, &a->plan, &err)) {
        free(blocks);
        tui_log(a, LOG_ERROR, "%s: %s", what, err.msg);
        return R_REDRAW;
    }
    stamp(a, &p);
    if (kind == TASK_SEARCH) {   // the search starts from the inputs, with the pins and forces
        free(p.block_scale);
        p.block_scale = NULL;
        knobs_of(a, &p.knobs);
        cce_plan_free(&a->search_from);
        cce_plan_copy(&a->search_from, &p, &err);
    }
    task_in in = {
        .kind = kind, .model = a->model, .tok = a->tok, .calib_text = a->calib_text, .calib_len = a->calib_len,
        .eval_path = a->eval_path, .eval_tokens = a->eval_tokens, .plan = &p, .blocks = blocks,
        .hist_opts = {(long)a->calib_n_seq * a->calib_seq_len, a->calib_seq_len, a->aopts.seed, 0},
        .search_evaluations = evaluations, .cache = &a->cache,
    };
    int rc = task_start(&a->tk, &in, a->wake_w, &err);
    free(blocks);
    cce_plan_free(&p);
    if (rc) {
        tui_log(a, LOG_ERROR, "%s: %s", what, err.msg);
        return R_REDRAW;
    }
    if (kind == TASK_COMMIT)
        tui_log(a, LOG_EVENT, "commit started: %.1f%% of non-embedding parameters removed, predicted L_CCE %.4g; evaluating on %s%s",
                100 * a->plan.removed_fraction, a->plan.L_cce, a->eval_path, a->eval_tokens > 0 ? " (capped)" : "");
    else tui_log(a, LOG_EVENT, "search started: %d candidate plans", evaluations);
    return R_REDRAW;
}

int tui_commit_start(app *a) { return start_task(a, TASK_COMMIT, 0); }
int tui_search_start(app *a, int evaluations) { return start_task(a, TASK_SEARCH, evaluations); }

int tui_may_drop_analysis(app *a, const char *what) {
    if (tui_task_running(a)) {
        tui_log(a, LOG_ERROR, "%s: a commit or search is running and reads the analysis (Esc cancels it)", what);
        return -1;
    }
    replanner_wait_idle(a->rp);
    return 0;
}

/* ------------------------------------------------------------------ files */

const char *tui_sessions_dir(void) {
    const char *d = getenv("CCE_SESSIONS");
    return d && *d ? d : "sessions";
}

void tui_default_session_name(const app *a, char *buf, size_t cap) {
    if (a->session_name[0]) {
        snprintf(buf, cap, "%s", a->session_name);
        return;
    }
    /* the model's file name without its extension, in the characters a name allows */
    char base[128];
    snprintf(base, sizeof base, "%.100s", a->model_name);
    char *dot = strrchr(base, '.');
    if (dot && dot != base) *dot = 0;
    size_t o = 0;
    for (const char *p = base; *p && o + 1 < cap && o < 60; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (o && (c == '-' || c == '_' || c == '.'));
        buf[o++] = ok ? c : '_';
    }
    if (!o) buf[o++] = 's';
    buf[o] = 0;
}

/* Make sure the sessions directory exists (one level, like `mkdir`). */
static int ensure_dir(app *a, const char *dir) {
    if (mkdir(dir, 0777) && errno != EEXIST) {
        tui_log(a, LOG_ERROR, "%s: cannot create the sessions directory: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* The plan as it goes to a file, or -1 (logged) when there is none to write. */
static int plan_for_file(app *a, const char *what, cce_plan *out) {
    cce_err err = {{0}};
    if (!tui_plan(a)) return tui_log(a, LOG_ERROR, "%s: there is no plan yet", what), -1;
    if (a->plan_err[0])
        return tui_log(a, LOG_ERROR, "%s: the current knobs, pins and forces have no plan (%s)", what, a->plan_err), -1;
    if (!a->have_model_id) {   // not computed yet (the worker does it first): do it now
        if (cce_model_id_of(a->model, &a->model_id, &err)) return tui_log(a, LOG_ERROR, "%s: %s", what, err.msg), -1;
        a->have_model_id = 1;
    }
    /* a pending re-plan answers the newest inputs: wait for it (milliseconds) */
    for (int i = 0; i < 20000 && a->plan_want != a->plan_have && !a->plan_frozen; i++) {
        struct timespec ts = {0, 500 * 1000};
        nanosleep(&ts, NULL);
        tui_plan_poll(a);
    }
    if (cce_plan_copy(out, &a->plan, &err)) return tui_log(a, LOG_ERROR, "%s: %s", what, err.msg), -1;
    stamp(a, out);
    return 0;
}

int tui_export(app *a, const char *path) {
    cce_plan p;
    cce_err err = {{0}};
    if (!*path) return tui_log(a, LOG_ERROR, "export: which file? (:export plan.json)"), -1;
    if (plan_for_file(a, "export", &p)) return -1;
    if (!p.calib.seq_len) {
        cce_plan_free(&p);
        return tui_log(a, LOG_ERROR, "export: the calibration windows are not known yet (the analysis has not started)"), -1;
    }
    cce_status s = cce_plan_save(&p, path, &err);
    int L = tui_n_layers(a);
    if (s) tui_log(a, LOG_ERROR, "export: %s", err.msg);
    else tui_message(a, LOG_INFO, "exported the plan to %s (cce apply MODEL --plan %s -o DIR)", path, path);
    if (!s)
        tui_log(a, LOG_EVENT, "exported the plan to %s: %.1f%% of non-embedding parameters removed, %d/%d blocks analysed (cce apply MODEL --plan %s -o DIR)",
                path, 100 * p.removed_fraction, a->plan_blocks, L, path);
    cce_plan_free(&p);
    return s ? -1 : 0;
}

/* The session as it would be saved; analysis file name and sha256 given (may be ""). */
static int make_session(app *a, const char *what, const char *afile, const char *asha, cce_session *s) {
    cce_session_init(s);
    if (plan_for_file(a, what, &s->plan)) return -1;
    s->created = (int64_t)time(NULL);
    s->model = a->model_id;
    calib_id_of(a, &s->calib);
    s->analysis.tokens = a->aopts.tokens;
    s->analysis.seq_len = a->aopts.seq_len;
    s->analysis.seed = a->aopts.seed;
    snprintf(s->analysis.file, sizeof s->analysis.file, "%s", afile);
    snprintf(s->analysis.sha256, sizeof s->analysis.sha256, "%s", asha);
    cce_err err = {{0}};
    for (int i = 0; i < a->n_commits; i++)
        if (cce_session_add_commit(s, &a->commits[i], &err)) {
            cce_session_free(s);
            return tui_log(a, LOG_ERROR, "%s: %s", what, err.msg), -1;
        }
    return 0;
}

int tui_autosave(app *a) {
    const char *dir = tui_sessions_dir();
    char path[1200];
    snprintf(path, sizeof path, "%s/autosave.json", dir);
    cce_session s;
    cce_err err = {{0}};
    if (ensure_dir(a, dir) || make_session(a, "autosave", "", "", &s)) return -1;
    cce_status st = cce_session_save(&s, path, &err);
    cce_session_free(&s);
    if (st) return tui_log(a, LOG_ERROR, "autosave: %s", err.msg), -1;
    tui_log(a, LOG_INFO, "session written to %s (:load autosave restores it)", path);
    return 0;
}

int tui_session_save(app *a, const char *name_in) {
    char name[72], path[1200], apath[1200], afile[128] = "", asha[65] = "";
    cce_err err = {{0}};
    if (name_in && *name_in) snprintf(name, sizeof name, "%s", name_in);
    else tui_default_session_name(a, name, sizeof name);
    const char *dir = tui_sessions_dir();
    if (cce_session_path(dir, name, 0, path, sizeof path, &err) || cce_session_path(dir, name, 1, apath, sizeof apath, &err))
        return tui_log(a, LOG_ERROR, "save: %s", err.msg), -1;
    if (ensure_dir(a, dir)) return -1;
    /* the analysis beside the session, when it is complete (so :load need not recompute it) */
    const cce_analysis *job = worker_job(a->wk);
    if (job && worker_state(a->wk) == JOB_DONE && a->have_model_id) {
        int same_file = a->analysis_path[0] && worker_loaded(a->wk) && !strcmp(a->analysis_path, apath);
        cce_analysis_identity id = {a->model_path, a->model_id.sha256, a->calib_path, a->calib_sha256, worker_elapsed(a->wk)};
        if (!same_file && cce_analysis_save(job, a->model, &id, apath, &err))
            tui_log(a, LOG_WARN, "save: the analysis file was not written (%s); :load will recompute it", err.msg);
        else if (cce_sha256_file(apath, asha, &err) == CCE_OK)
            snprintf(afile, sizeof afile, "%s.analysis.json", name);
    }
    cce_session s;
    if (make_session(a, "save", afile, asha, &s)) return -1;
    cce_status st = cce_session_save(&s, path, &err);
    cce_session_free(&s);
    if (st) return tui_log(a, LOG_ERROR, "save: %s", err.msg), -1;
    snprintf(a->session_name, sizeof a->session_name, "%s", name);
    a->dirty = 0;
    tui_log(a, LOG_EVENT, "saved session %s to %s (%d commit%s%s)", name, path, a->n_commits, a->n_commits == 1 ? "" : "s",
            afile[0] ? ", analysis beside it" : "");
    tui_message(a, LOG_INFO, "saved %s", path);
    return 0;
}

/* "a b c" of the sessions in dir, for a message. */
static void list_sessions(char *buf, size_t cap) {
    buf[0] = 0;
    DIR *d = opendir(tui_sessions_dir());
    if (!d) return;
    size_t o = 0;
    struct dirent *e;
    while ((e = readdir(d)) && o + 2 < cap) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json") || cce_str_ends_with(e->d_name, ".analysis.json"))
            continue;
        o += (size_t)snprintf(buf + o, cap - o, "%s%.*s", o ? " " : "", (int)(n - 5), e->d_name);
    }
    closedir(d);
}

int tui_session_load(app *a, const char *name) {
    char path[1200], apath[1200];
    cce_err err = {{0}};
    const char *dir = tui_sessions_dir();
    if (!*name) return tui_log(a, LOG_ERROR, "load: which session? (:load NAME; Tab lists them)"), -1;
    if (cce_session_path(dir, name, 0, path, sizeof path, &err)) return tui_log(a, LOG_ERROR, "load: %s", err.msg), -1;
    if (access(path, R_OK)) {
        char have[400];
        list_sessions(have, sizeof have);
        return tui_log(a, LOG_ERROR, "load: no session '%s' in %s/ (%s%s)", name, dir, have[0] ? "saved: " : "none saved yet",
                       have), -1;
    }
    if (tui_task_running(a)) return tui_log(a, LOG_ERROR, "load: a commit or search is running (Esc cancels it)"), -1;
    if (!a->have_model_id) {
        if (cce_model_id_of(a->model, &a->model_id, &err)) return tui_log(a, LOG_ERROR, "load: %s", err.msg), -1;
        a->have_model_id = 1;
    }
    cce_session s;
    if (cce_session_load(path, a->model, &a->model_id, &s, &err)) return tui_log(a, LOG_ERROR, "load: %s", err.msg), -1;
    if (strcmp(s.calib.sha256, a->calib_sha256)) {
        tui_log(a, LOG_ERROR, "load: %s was made with the calibration text %s (sha256 %.12s...), this run reads %s (%.12s...): start with --calib %s",
                path, s.calib.path, s.calib.sha256, a->calib_path, a->calib_sha256, s.calib.path);
        cce_session_free(&s);
        return -1;
    }
    /* the analysis: keep the one running or done when it is the same, else reload or recompute */
    int same_opts = s.analysis.tokens == a->aopts.tokens && s.analysis.seq_len == a->aopts.seq_len &&
                    s.analysis.seed == a->aopts.seed;
    job_state js = worker_state(a->wk);
    int restart = !(same_opts && a->wk && (js == JOB_DONE || js <= JOB_RUNNING));
    const char *how = "kept";
    if (restart) {
        if (tui_may_drop_analysis(a, "load")) {
            cce_session_free(&s);
            return -1;
        }
        a->aopts.tokens = s.analysis.tokens;
        a->aopts.seq_len = s.analysis.seq_len;
        a->aopts.seed = s.analysis.seed;
        a->analysis_path[0] = 0;
        how = "recomputed";
        char sha[65];
        if (s.analysis.file[0] && snprintf(apath, sizeof apath, "%s/%s", dir, s.analysis.file) < (int)sizeof apath &&
            cce_sha256_file(apath, sha, &err) == CCE_OK && !strcmp(sha, s.analysis.sha256)) {
            snprintf(a->analysis_path, sizeof a->analysis_path, "%.1000s", apath);
            how = "reloaded from its file";
        } else if (s.analysis.file[0]) {
            tui_log(a, LOG_WARN, "load: the analysis file %s is missing or changed; recomputing the analysis", s.analysis.file);
        }
        a->calib_n_seq = a->calib_seq_len = 0;
    }
    /* the inputs and the plan, exactly */
    const cce_knobs *k = &s.plan.knobs;
    a->knob[KNOB_ALPHA] = k->alpha, a->knob[KNOB_BETA] = k->beta, a->knob[KNOB_GAMMA] = k->gamma;
    a->knob[KNOB_EPS] = k->eps, a->knob[KNOB_TAU] = k->tau, a->knob[KNOB_TARGET] = k->target;
    free(a->pins);
    free(a->forces);
    free(a->block_scale);
    a->pins = a->forces = NULL;
    a->block_scale = NULL;
    a->n_pins = a->n_forces = 0;
    for (int i = 0; i < s.plan.n_pins; i++) append(&a->pins, &a->n_pins, s.plan.pins[i]);
    for (int i = 0; i < s.plan.n_forces; i++) append(&a->forces, &a->n_forces, s.plan.forces[i]);
    if (s.plan.block_scale && (a->block_scale = malloc((size_t)s.plan.n_blocks * 2 * sizeof(double))))
        memcpy(a->block_scale, s.plan.block_scale, (size_t)s.plan.n_blocks * 2 * sizeof(double));
    replanner_wait_idle(a->rp);
    a->plan_have = a->plan_want;   // whatever a build in flight answers is older than this plan
    cce_plan_free(&a->plan);
    a->plan = s.plan;
    memset(&s.plan, 0, sizeof s.plan);
    a->plan_frozen = 1;
    a->plan_err[0] = 0;
    a->plan_blocks = -1;
    refresh_losses(a);
    free(a->commits);
    a->commits = s.commits;
    a->n_commits = s.n_commits;
    s.commits = NULL;
    s.n_commits = 0;
    if (a->committed) {   // this run's compressed model was another plan's
        commit_result_free(a->committed);
        free(a->committed);
        a->committed = NULL;
    }
    note_committed_same(a);
    snprintf(a->session_name, sizeof a->session_name, "%s", name);
    a->dirty = 0;
    tui_log(a, LOG_EVENT, "loaded session %s (%s, %s): %.1f%% of parameters removed, %d commit%s; analysis %s", name,
            s.program, path, 100 * a->plan.removed_fraction, a->n_commits, a->n_commits == 1 ? "" : "s", how);
    tui_message(a, LOG_INFO, "loaded session %s: %.1f%% removed, %d commit%s; analysis %s", name,
                100 * a->plan.removed_fraction, a->n_commits, a->n_commits == 1 ? "" : "s", how);
    cce_session_free(&s);
    return restart ? R_RESTART | R_REDRAW : R_REDRAW;
}

void tui_plan_free(app *a) {
    task_free(a->tk);
    a->tk = NULL;
    replanner_free(a->rp);
    a->rp = NULL;
    if (a->committed) {
        commit_result_free(a->committed);
        free(a->committed);
        a->committed = NULL;
    }
    task_cache_free(&a->cache);
    cce_plan_free(&a->plan);
    cce_plan_free(&a->search_from);
    free(a->pins);
    free(a->forces);
    free(a->block_scale);
    free(a->commits);
    a->pins = a->forces = NULL;
    a->block_scale = NULL;
    a->commits = NULL;
}
