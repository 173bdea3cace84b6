/*
 * test_session.c — session files (include/session.h):
 *  - a session with a real plan (stories260K, pins, forces), analysis options and two commits
 *    saves and loads back to the same session: the same plan (its JSON text, after the predicted
 *    losses are recomputed from the same analysis), knobs, pins, forces, identities, history;
 *  - hostile and malformed files are refused with one line naming the field, never a crash:
 *    wrong types, huge arrays, an unknown major version, indices out of range, another model,
 *    knobs that disagree with the plan, path tricks, truncation, garbage, invalid UTF-8;
 *  - session names cannot leave the directory; a failed save keeps the previous file.
 */
#include <cjson/cJSON.h>
#include "harness.h"
#include "analysis.h"
#include "plan.h"
#include "session.h"
#include "util.h"

static cce_model *model;
static cce_model_id model_id;
static cce_analysis *job;
static char *good_text;          // a valid session file's text

static int *random_ids(size_t n, int vocab, uint64_t seed) {
    int *ids = cce_alloc(n, sizeof(int));
    cce_rng r;
    cce_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) ids[i] = (int)(cce_rng_u64(&r) % (uint64_t)vocab);
    return ids;
}

static int setup(void) {
    const char *mp = harness_data("llama2c/stories260K.bin");
    if (!harness_have(mp)) return 0;
    cce_err err = {{0}};
    cce_open_opts oo = {.no_tokenizer = 1};
    if (cce_model_open(mp, &oo, &model, NULL, &err) || cce_model_id_of(model, &model_id, &err)) return 0;
    size_t n = 64 * 64;
    int *ids = random_ids(n, model->cfg.vocab_size, 5);
    cce_analysis_opts ao;
    cce_analysis_opts_default(&ao);
    ao.tokens = 1024;
    ao.seq_len = 64;
    cce_calib_source src = {.ids = ids, .n_ids = n};
    int ok = !cce_analysis_new(model, &src, &ao, &job, &err) && !cce_analysis_run(job, &err);
    cce_free(ids);
    return ok;
}

static void make_session(cce_session *s) {
    cce_err err = {{0}};
    cce_session_init(s);
    s->created = 1764583445;
    s->model = model_id;
    snprintf(s->calib.path, sizeof s->calib.path, "data/text/train/x.txt");
    cce_sha256_hex("calibration", 11, s->calib.sha256);
    s->calib.tokens = 1024;
    s->calib.seq_len = 64;
    s->calib.seed = 1;
    s->analysis.tokens = 1024;
    s->analysis.seq_len = 64;
    s->analysis.seed = 1;
    snprintf(s->analysis.file, sizeof s->analysis.file, "t.analysis.json");
    cce_sha256_hex("analysis", 8, s->analysis.sha256);
    cce_plan_init(&s->plan, model, &err);
    s->plan.model = model_id;
    s->plan.calib = s->calib;
    s->plan.knobs.target = 0.25;
    s->plan.knobs.beta = 0.5;
    s->plan.n_pins = 2;
    s->plan.pins = cce_alloc(2, sizeof(cce_pin));
    s->plan.pins[0] = (cce_pin){1, CCE_CURVE_HEADS, 3};
    s->plan.pins[1] = (cce_pin){4, CCE_CURVE_DROP_FFN, -1};
    s->plan.n_forces = 1;
    s->plan.forces = cce_alloc(1, sizeof(cce_pin));
    s->plan.forces[0] = (cce_pin){2, CCE_CURVE_NEURONS, 17};
    cce_plan_build(&s->plan, model, job, &err);
    for (int i = 0; i < 2; i++) {
        cce_commit_record r = {0};
        r.time = 1764583500 + i;
        r.knobs = s->plan.knobs;
        r.removed_fraction = s->plan.removed_fraction;
        r.L_rec = s->plan.L_rec, r.L_sim = s->plan.L_sim, r.L_reg = s->plan.L_reg, r.L_cce = s->plan.L_cce;
        snprintf(r.eval_path, sizeof r.eval_path, "data/text/tinystories_valid_head.txt");
        cce_sha256_hex("eval", 4, r.eval_sha256);
        r.eval_tokens = 4096;
        r.eval_seq_len = 256;
        r.before = (cce_measure){2.0776513, 7.985, 0.4281, 227264, 1044000, 51234.5};
        r.after = (cce_measure){2.1415 + i, 8.5122, 0.4172, 178944, 860000, 60000.25};
        cce_session_add_commit(s, &r, &err);
    }
}

static const cce_block_result **blocks_of(void) {
    static const cce_block_result *b[16];
    for (int l = 0; l < model->cfg.n_layers; l++) b[l] = cce_analysis_block(job, l);
    return b;
}

TEST(round_trip_is_exact) {
    if (!model) { printf("  (data missing: skipped)\n"); return; }
    cce_err err = {{0}};
    cce_session s, t;
    make_session(&s);
    CHECK(s.plan.removed_fraction >= 0.25);
    CHECK(s.plan.blocks[2].n_neurons_removed > 0);
    char path[1024];
    CHECK_OK(cce_session_path(harness_tmpdir(), "t", 0, path, sizeof path, &err));
    CHECK_MSG(cce_session_save(&s, path, &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_session_load(path, model, &model_id, &t, &err) == CCE_OK, "%s", err.msg);
    CHECK(strstr(t.program, "cce ") == t.program);
    CHECK_EQ_INT(t.created, s.created);
    CHECK_STR(t.model.sha256, model_id.sha256);
    CHECK_STR(t.calib.sha256, s.calib.sha256);
    CHECK_EQ_INT(t.calib.tokens, 1024);
    CHECK_STR(t.analysis.file, "t.analysis.json");
    CHECK_EQ_INT(t.n_commits, 2);
    CHECK(t.commits[1].after.loss == s.commits[1].after.loss && t.commits[0].before.tokens_per_s == 51234.5);
    CHECK(t.commits[1].after.bytes == 860000 && t.commits[1].eval_seq_len == 256);
    CHECK(!memcmp(&t.plan.knobs, &s.plan.knobs, sizeof t.plan.knobs));
    CHECK_EQ_INT(t.plan.n_pins, 2);
    CHECK_EQ_INT(t.plan.forces[0].index, 17);
    /* the same plan: its file text, once the predictions are recomputed from the analysis */
    cce_plan_losses(&t.plan, blocks_of());
    char *a = NULL, *b = NULL;
    CHECK_OK(cce_plan_to_json(&s.plan, &a, &err));
    CHECK_OK(cce_plan_to_json(&t.plan, &b, &err));
    CHECK_MSG(!strcmp(a, b), "the plan read back differs from the plan written");
    cce_free(a);
    cce_free(b);
    /* and the whole session text */
    CHECK_OK(cce_session_to_json(&s, &a, &err));
    CHECK_OK(cce_session_to_json(&t, &b, &err));
    CHECK(!strcmp(a, b));
    cce_free(a);
    cce_free(b);
    /* re-planning the loaded inputs on the same analysis gives the same decisions again */
    cce_plan q;
    CHECK_OK(cce_plan_copy(&q, &t.plan, &err));
    CHECK_OK(cce_plan_build(&q, model, job, &err));
    CHECK_OK(cce_plan_to_json(&q, &a, &err));
    CHECK_OK(cce_plan_to_json(&s.plan, &b, &err));
    CHECK(!strcmp(a, b));
    cce_free(a);
    cce_free(b);
    cce_plan_free(&q);
    /* without the model the file still reads (no model checks) */
    cce_session_free(&t);
    CHECK_OK(cce_session_load(path, NULL, NULL, &t, &err));
    cce_session_free(&t);
    cce_session_free(&s);
}

/* good_text with one change made through cJSON: the member at path set to the JSON value. */
static char *mutate(const char *path, const char *value) {
    cJSON *root = cJSON_Parse(good_text), *o = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL, *tok = strtok_r(buf, ".", &save), *next;
    while (tok && (next = strtok_r(NULL, ".", &save))) {
        o = (*tok >= '0' && *tok <= '9') ? cJSON_GetArrayItem(o, atoi(tok)) : cJSON_GetObjectItemCaseSensitive(o, tok);
        tok = next;
    }
    cJSON *v = value ? cJSON_Parse(value) : NULL;
    if (!o) return NULL;
    if (cJSON_IsArray(o)) {
        if (v) cJSON_ReplaceItemInArray(o, atoi(tok), v);
    } else if (v) {
        if (cJSON_GetObjectItemCaseSensitive(o, tok)) cJSON_ReplaceItemInObjectCaseSensitive(o, tok, v);
        else cJSON_AddItemToObject(o, tok, v);
    } else cJSON_DeleteItemFromObjectCaseSensitive(o, tok);
    char *t = cJSON_Print(root);
    cJSON_Delete(root);
    return t;
}

/* Refused with status want, one line, mentioning needle. */
static int refused(const char *text, size_t len, cce_status want, const char *needle, char *why, size_t cap) {
    cce_session s;
    cce_err err = {{0}};
    cce_status st = cce_session_from_json(text, len, "bad.json", model, &model_id, &s, &err);
    if (st == CCE_OK) {
        cce_session_free(&s);
        snprintf(why, cap, "accepted");
        return 0;
    }
    if (s.commits || s.plan.blocks) { snprintf(why, cap, "not emptied on failure"); return 0; }
    if (st != want || strchr(err.msg, '\n') || !strstr(err.msg, "bad.json") || (needle && !strstr(err.msg, needle))) {
        snprintf(why, cap, "status %d: %s", (int)st, err.msg);
        return 0;
    }
    return 1;
}

TEST(hostile_files_are_refused_in_one_line) {
    if (!model) { printf("  (data missing: skipped)\n"); return; }
    static const struct { const char *path, *value; cce_status want; const char *needle; } cases[] = {
        /* wrong types */
        {"knobs.eps", "\"0.1\"", CCE_EFORMAT, "knobs.eps"},
        {"commits", "{}", CCE_EFORMAT, "commits"},
        {"commits.0.after.ppl", "true", CCE_EFORMAT, "commits[0].after.ppl"},
        {"model.dim", "64.5", CCE_EFORMAT, "model.dim"},
        {"pins.0.kind", "7", CCE_EFORMAT, "pins[0].kind"},
        {"plan.blocks.1.heads_removed", "\"all\"", CCE_EFORMAT, "heads_removed"},
        {"created", "-5", CCE_EFORMAT, "created"},
        {"analysis", "[]", CCE_EFORMAT, "analysis"},
        {"calibration.sha256", "\"xyz\"", CCE_EFORMAT, "calibration.sha256"},
        /* missing members */
        {"plan", NULL, CCE_EFORMAT, "plan"},
        {"model", NULL, CCE_EFORMAT, "model"},
        {"format_version", NULL, CCE_EFORMAT, "format_version"},
        /* versions and kinds */
        {"format_version", "\"2.0\"", CCE_EUNSUPPORTED, "major version 2"},
        {"format_version", "\"1\"", CCE_EFORMAT, "MAJOR.MINOR"},
        {"kind", "\"cce-plan\"", CCE_EFORMAT, "kind"},
        {"plan.format_version", "\"9.0\"", CCE_EUNSUPPORTED, "plan"},
        /* indices out of range */
        {"plan.blocks.1.heads_removed", "[9]", CCE_EINVAL, "block 1"},
        {"plan.blocks.2.neurons_removed", "[171, 172]", CCE_EINVAL, "neuron"},
        {"plan.blocks.0.ranks.wq", "[1]", CCE_EFORMAT, "ranks.wq"},
        {"plan.blocks.0.ranks.wq", "65", CCE_EINVAL, "rank"},
        {"pins.0.index", "8", CCE_EFORMAT, "pins[0].index"},
        {"pins.0.block", "5", CCE_EFORMAT, "pins[0].block"},
        {"pins.1.index", "0", CCE_EFORMAT, "pins[1].index"},
        {"commits.0.after.accuracy", "1.5", CCE_EFORMAT, "accuracy"},
        {"knobs.target", "0.99", CCE_EINVAL, "target"},
        /* another model */
        {"model.sha256", "\"0000000000000000000000000000000000000000000000000000000000000000\"", CCE_EINVAL, "another model"},
        {"model.dim", "128", CCE_EINVAL, "another model"},
        {"model.n_layers", "6", CCE_EINVAL, "another model"},
        /* inconsistent */
        {"knobs.eps", "0.5", CCE_EFORMAT, "knobs.eps' differs"},
        {"forces", "[]", CCE_EFORMAT, "forces' differs"},
        {"plan.model.sha256", "\"1111111111111111111111111111111111111111111111111111111111111111\"", CCE_EFORMAT, "plan.model.sha256"},
        {"analysis.file", "\"../../etc/passwd\"", CCE_EFORMAT, "analysis.file"},
        {"analysis.file", "\".hidden\"", CCE_EFORMAT, "analysis.file"},
    };
    char why[700];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = mutate(cases[i].path, cases[i].value);
        CHECK_MSG(t, "case %zu: cannot build", i);
        int ok = refused(t, strlen(t), cases[i].want, cases[i].needle, why, sizeof why);
        cJSON_free(t);
        CHECK_MSG(ok, "%s = %s: %s", cases[i].path, cases[i].value ? cases[i].value : "(deleted)", why);
    }
    /* huge arrays: more commits than allowed, more pins than the model has components */
    {
        size_t n = 10001, cap = n * 8 + 64;
        char *arr = cce_alloc(cap, 1), *o = arr;
        o += sprintf(o, "[");
        for (size_t i = 0; i < n; i++) o += sprintf(o, "%s{}", i ? "," : "");
        sprintf(o, "]");
        char *t = mutate("commits", arr);
        CHECK(refused(t, strlen(t), CCE_EFORMAT, "more than 10000", why, sizeof why));
        cJSON_free(t);
        o = arr;
        o += sprintf(o, "[");
        for (size_t i = 0; i < 5000; i++) o += sprintf(o, "%s{}", i ? "," : "");
        sprintf(o, "]");
        t = mutate("pins", arr);
        CHECK_MSG(refused(t, strlen(t), CCE_EFORMAT, "components", why, sizeof why), "pins: %s", why);
        cJSON_free(t);
        cce_free(arr);
    }
    /* not JSON, not an object, garbage after it, truncated, invalid UTF-8, empty, deep nesting */
    size_t len = strlen(good_text);
    CHECK_MSG(refused(good_text, len / 2, CCE_EFORMAT, "not valid JSON", why, sizeof why), "truncated: %s", why);
    CHECK(refused("[1, 2]", 6, CCE_EFORMAT, "not a JSON object", why, sizeof why));
    CHECK(refused("", 0, CCE_EFORMAT, NULL, why, sizeof why));
    char *g = cce_alloc(len + 8, 1);
    memcpy(g, good_text, len);
    memcpy(g + len, " xx", 4);
    CHECK_MSG(refused(g, len + 3, CCE_EFORMAT, "garbage", why, sizeof why), "garbage: %s", why);
    memcpy(g, good_text, len + 1);
    char *q = strstr(g, "data/text");
    q[0] = (char)0xff;
    CHECK_MSG(refused(g, len, CCE_EFORMAT, "UTF-8", why, sizeof why), "utf8: %s", why);
    cce_free(g);
    char deep[8200];
    for (int i = 0; i < 4000; i++) deep[i] = '[';
    for (int i = 0; i < 4000; i++) deep[4000 + i] = ']';
    CHECK(refused(deep, 8000, CCE_EFORMAT, NULL, why, sizeof why));
    /* the file itself: missing, too large is bounded by cce_read_file */
    cce_session s;
    cce_err err = {{0}};
    CHECK(cce_session_load("/nonexistent/x.json", model, &model_id, &s, &err) != CCE_OK);
    CHECK(strstr(err.msg, "/nonexistent/x.json") != NULL);
}

TEST(names_and_atomic_save) {
    cce_err err = {{0}};
    const char *ok[] = {"a", "stories260K", "run-2.b_c", "X9"};
    const char *no[] = {"", ".hidden", "../x", "a/b", "-x", "x.analysis", "x.json", "sp ace", "\xce\xb5",
                        "01234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) CHECK_MSG(cce_session_name_check(ok[i], &err) == CCE_OK, "%s: %s", ok[i], err.msg);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        CHECK_MSG(cce_session_name_check(no[i], &err) == CCE_EINVAL, "'%s' accepted", no[i]);
        CHECK(!strchr(err.msg, '\n'));
    }
    char p[64];
    CHECK_OK(cce_session_path("dir", "n", 1, p, sizeof p, &err));
    CHECK_STR(p, "dir/n.analysis.json");
    CHECK(cce_session_path("dir", "../n", 0, p, sizeof p, &err) == CCE_EINVAL);
    char small[8];
    CHECK(cce_session_path("directory", "name", 0, small, sizeof small, &err) == CCE_EINVAL);
    if (!model) return;
    /* a failed save (no such directory) leaves nothing; a save over a file replaces it whole */
    cce_session s;
    make_session(&s);
    char path[1024];
    snprintf(path, sizeof path, "%s/nodir/s.json", harness_tmpdir());
    CHECK(cce_session_save(&s, path, &err) == CCE_EIO);
    snprintf(path, sizeof path, "%s/s.json", harness_tmpdir());
    CHECK_OK(cce_session_save(&s, path, &err));
    s.plan.knobs.target = 0.3;   // the file keeps the plan it was saved with until the next save
    cce_session t;
    CHECK_OK(cce_session_load(path, model, &model_id, &t, &err));
    CHECK(t.plan.knobs.target == 0.25);
    cce_session_free(&t);
    cce_session_free(&s);
}

int main(void) {
    if (setup()) {
        cce_session s;
        cce_err err = {{0}};
        make_session(&s);
        if (cce_session_to_json(&s, &good_text, &err)) printf("FAIL setup: %s\n", err.msg);
        cce_session_free(&s);
    } else {
        cce_model_free(model);
        model = NULL;
    }
    RUN(round_trip_is_exact);
    RUN(hostile_files_are_refused_in_one_line);
    RUN(names_and_atomic_save);
    cce_free(good_text);
    cce_analysis_free(job);
    cce_model_free(model);
    return harness_done();
}
