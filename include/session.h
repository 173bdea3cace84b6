/*
 * session.h — a saved inspector session: what was analysed, the knobs, pins and forces, the
 * plan, and every commit with its predicted and measured results (DESIGN §5).
 *
 * File (JSON, cJSON; written atomically):
 *   {"format_version": "1.0", "kind": "cce-session", "program": "cce X.Y.Z",
 *    "created": UNIX_SECONDS, "created_utc": "YYYY-MM-DDTHH:MM:SSZ",
 *    "model": {path, sha256, arch, dim, n_layers, n_heads, n_kv_heads, head_dim, hidden_dim,
 *              vocab_size, params_non_embedding},
 *    "calibration": {path, sha256, tokens, seq_len, seed},          (what the analysis used)
 *    "analysis": {tokens, seq_len, seed, file, sha256},              (its options; the analysis
 *                                         file saved beside the session, "" when none)
 *    "knobs": {alpha, beta, gamma, eps, tau, target},
 *    "pins": [{block, kind, index}], "forces": [...],
 *    "plan": {the plan object of plan.h's file format},
 *    "commits": [{time, knobs {...}, removed_fraction, predicted {L_rec, L_sim, L_reg, L_CCE},
 *                 evaluation {path, sha256, tokens, seq_len},
 *                 before {loss, ppl, accuracy, params, bytes, tokens_per_s}, after {...}}]}
 * The top-level knobs, pins and forces are the plan's (the reader refuses a file where they
 * differ), written where a reader looks first.
 *
 * Reading trusts nothing (DESIGN §7): valid UTF-8, one JSON object and nothing after it,
 * case-sensitive members of the right types, integers integral and in range, strings bounded,
 * arrays bounded before anything is allocated from them (commits ≤ CCE_SESSION_MAX_COMMITS,
 * pins and forces by the model's component counts), block, kind and component indices in range
 * for the model, an unknown major format_version refused, and — given the model — its shapes
 * and sha256 must be the session's. The plan goes through plan.h's validating reader and
 * cce_plan_finish against the model; its predicted losses are kept as saved (finite numbers
 * only), for the caller to recompute (cce_plan_losses) once the same analysis is there. Every
 * refusal is one line naming the file and the field.
 *
 * Session names (the NAME of `:save NAME`) are file names without a directory: 1..64 of
 * [A-Za-z0-9_.-], starting with a letter or digit, not ending in ".analysis" (the analysis file
 * beside a session is NAME.analysis.json).
 *
 * Thread-safety: sessions are plain data; functions are reentrant.
 */
#ifndef CCE_SESSION_H
#define CCE_SESSION_H

#include <stdint.h>
#include "plan.h"

#define CCE_SESSION_FORMAT_MAJOR 1
#define CCE_SESSION_FORMAT_MINOR 0
#define CCE_SESSION_MAX_COMMITS 10000
#define CCE_SESSION_MAX_BYTES (64u << 20)

/* What one model measured on the evaluation text (eval.h's protocol) and as stored. */
typedef struct {
    double loss, ppl, accuracy;   // mean next-token NLL (nats), exp(loss), argmax accuracy
    int64_t params;               // non-embedding parameters
    uint64_t bytes;               // cce_model_bytes
    double tokens_per_s;          // KV-cached greedy decoding (cce_decode_speed)
} cce_measure;

/* One commit: the plan's prediction and what was measured before and after. */
typedef struct {
    int64_t time;                 // unix seconds
    cce_knobs knobs;
    double removed_fraction;      // of non-embedding parameters, planned
    double L_rec, L_sim, L_reg, L_cce;   // predicted
    char eval_path[1024];
    char eval_sha256[65];
    long eval_tokens;             // tokens evaluated (after the cap)
    int eval_seq_len;
    cce_measure before, after;
} cce_commit_record;

/* How the analysis was run, and the analysis file saved beside the session. */
typedef struct {
    long tokens;                  // requested calibration tokens
    int seq_len;                  // requested window length (0: the default)
    uint64_t seed;
    char file[128];               // analysis file name in the session's directory, "" none
    char sha256[65];              // its SHA-256 ("" when no file)
} cce_session_analysis;

typedef struct {
    char program[64];             // the program that wrote it ("cce 0.4.0"); set by the writer
    int64_t created;              // unix seconds
    cce_model_id model;
    cce_calib_id calib;
    cce_session_analysis analysis;
    cce_plan plan;                // knobs, pins, forces, encoding options and decisions
    int n_commits;
    cce_commit_record *commits;   // (n_commits), oldest first
} cce_session;

/* An empty session (no plan blocks, no commits). */
void cce_session_init(cce_session *s);
void cce_session_free(cce_session *s);
/* Append a copy of *r to the history. CCE_EINVAL past CCE_SESSION_MAX_COMMITS, CCE_ENOMEM. */
cce_status cce_session_add_commit(cce_session *s, const cce_commit_record *r, cce_err *err);

/* JSON text of the session (cce_free it); program and created_utc are filled in by the writer
 * from CCE_VERSION and s->created. */
cce_status cce_session_to_json(const cce_session *s, char **text, cce_err *err);
/* Write the session to path atomically (cce_write_file_atomic: a failed save leaves the
 * previous file intact). */
cce_status cce_session_save(const cce_session *s, const char *path, cce_err *err);

/* Read and validate a session (see the header comment). m (may be NULL: model checks skipped)
 * is the model it must be for; have (may be NULL) is m's identity if already computed, else
 * the reader hashes m->path. Errors: CCE_EFORMAT (malformed), CCE_EUNSUPPORTED (another major
 * version), CCE_EINVAL (another model, or values out of range for it), CCE_EIO, CCE_ENOMEM.
 * On failure *s is empty. */
cce_status cce_session_from_json(const char *text, size_t len, const char *what, const cce_model *m,
                                 const cce_model_id *have, cce_session *s, cce_err *err);
cce_status cce_session_load(const char *path, const cce_model *m, const cce_model_id *have, cce_session *s,
                            cce_err *err);

/* Check a session name; one line saying what is wrong. */
cce_status cce_session_name_check(const char *name, cce_err *err);
/* dir/NAME.json (or dir/NAME.analysis.json when analysis) into out (cap bytes). */
cce_status cce_session_path(const char *dir, const char *name, int analysis, char *out, size_t cap, cce_err *err);

#endif
