/*
 * test_plan: the planner. Every scenario in tests/data/plan/NNN-name.plan is run
 * and its output diffed against the expected text (SPINUP_PLAN_UPDATE=1
 * rewrites the expected text: review the diff by hand). Plus determinism
 * (same input twice, shuffled input), the phase table, backoff bounds and a
 * generated placement property check.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/plan.h"
#include "model/strbuf.h"
#include "tests/lib/planfile.h"

#include "model/banned.h"

#define MAX_FILES 256

static const char *data_dir(char *buf, size_t n)
{
	const char *top = getenv("SPINUP_TOP");

	snprintf(buf, n, "%s/tests/data/plan", top && *top ? top : ".");
	return buf;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted scenario paths; returns the count. */
static size_t list_scenarios(char **paths, size_t max)
{
	char dir[1024];
	struct dirent *de;
	size_t n = 0, len;
	DIR *d = opendir(data_dir(dir, sizeof(dir)));

	assert_non_null(d);
	while ((de = readdir(d)) && n < max) {
		len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".plan"))
			continue;
		paths[n] = malloc(strlen(dir) + len + 2);
		assert_non_null(paths[n]);
		snprintf(paths[n], strlen(dir) + len + 2, "%s/%s", dir, de->d_name);
		n++;
	}
	closedir(d);
	qsort(paths, n, sizeof(*paths), cmp_str);
	return n;
}

/* Print expected vs actual, marking the lines that differ (by position). */
static void print_diff(const char *path, const char *exp, const char *act)
{
	const char *e = exp, *a = act;

	fprintf(stderr, "--- %s: expected vs actual (- expected, + actual)\n", path);
	while (*e || *a) {
		size_t le = strcspn(e, "\n"), la = strcspn(a, "\n");

		if (le == la && !memcmp(e, a, le)) {
			fprintf(stderr, "  %.*s\n", (int)le, e);
		} else {
			if (*e)
				fprintf(stderr, "- %.*s\n", (int)le, e);
			if (*a)
				fprintf(stderr, "+ %.*s\n", (int)la, a);
		}
		e += le + (e[le] == '\n');
		a += la + (a[la] == '\n');
	}
}

static int rewrite(const char *path, const struct strbuf *head, const struct strbuf *actual)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -1;
	rc = fprintf(f, "%s--- expect\n%s", head->buf, actual->buf) < 0;
	return (fclose(f) || rc) ? -1 : 0;
}

static void test_plan__scenarios_match_expected_output(void **state)
{
	char *paths[MAX_FILES], err[512];
	const char *upd = getenv("SPINUP_PLAN_UPDATE");
	size_t n = list_scenarios(paths, MAX_FILES), i;
	int failed = 0;

	(void)state;
	for (i = 0; i < n; i++) {
		struct strbuf head = STRBUF_INIT, exp = STRBUF_INIT, act = STRBUF_INIT;
		struct planfile *pf = planfile_new();

		assert_non_null(pf);
		if (planfile_exec(paths[i], pf, &head, &exp, &act, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			failed++;
		} else if (strcmp(exp.buf, act.buf)) {
			if (upd && !strcmp(upd, "1")) {
				assert_int_equal(rewrite(paths[i], &head, &act), 0);
				fprintf(stderr, "updated %s\n", paths[i]);
			} else {
				print_diff(paths[i], exp.buf, act.buf);
				failed++;
			}
		} else if (!strstr(act.buf, "== pass")) {
			fprintf(stderr, "%s: no run line\n", paths[i]);
			failed++;
		}
		planfile_free(pf);
		strbuf_release(&head);
		strbuf_release(&exp);
		strbuf_release(&act);
		free(paths[i]);
	}
	fprintf(stderr, "%zu scenarios, %d failed\n", n, failed);
	assert_int_equal(failed, 0);
	assert_true(n >= 40);
}

static void plan_text(struct planfile *pf, struct strbuf *out)
{
	struct plan_output o;
	struct plan_input in;
	struct err e = ERR_INIT;

	planfile_input(pf, &in);
	assert_int_equal(plan_compute(&in, &o, &e), 0);
	assert_int_equal(plan_output_format(&o, out), 0);
	plan_output_release(&o);
}

/* The end state of every scenario, planned twice and shuffled, gives the same bytes. */
static void test_plan__deterministic_and_order_independent(void **state)
{
	char *paths[MAX_FILES], err[512];
	size_t n = list_scenarios(paths, MAX_FILES), i;
	uint64_t seed;

	(void)state;
	for (i = 0; i < n; i++) {
		struct strbuf head = STRBUF_INIT, exp = STRBUF_INIT, act = STRBUF_INIT;
		struct strbuf a = STRBUF_INIT, b = STRBUF_INIT, c = STRBUF_INIT;
		struct planfile *pf = planfile_new();

		assert_int_equal(planfile_exec(paths[i], pf, &head, &exp, &act, err, sizeof(err)), 0);
		plan_text(pf, &a);
		plan_text(pf, &b);
		assert_string_equal(a.buf, b.buf);
		for (seed = 1; seed <= 3; seed++) {
			planfile_shuffle(pf, seed * 7919 + i);
			strbuf_reset(&c);
			plan_text(pf, &c);
			if (strcmp(a.buf, c.buf))
				print_diff(paths[i], a.buf, c.buf);
			assert_string_equal(a.buf, c.buf);
		}
		planfile_free(pf);
		strbuf_release(&head);
		strbuf_release(&exp);
		strbuf_release(&act);
		strbuf_release(&a);
		strbuf_release(&b);
		strbuf_release(&c);
		free(paths[i]);
	}
}

struct phase_case {
	enum ws_state state;
	int deleting;
	enum cond_status sched, inst, cont, restored, ready;
	const char *sched_reason, *cont_reason, *ready_reason;
	enum ws_phase want;
};

static void test_plan__phase_is_derived_from_conditions(void **state)
{
	const enum cond_status U = CSTAT_UNKNOWN, T = CSTAT_TRUE, F = CSTAT_FALSE;
	const enum ws_state R = WS_STATE_RUNNING, S = WS_STATE_STOPPED;
	static const char *const nyo = "NotYetObserved";
	const struct phase_case cases[] = {
		{ R, 0, U, U, U, U, U, nyo, nyo, nyo, PHASE_PENDING },
		{ R, 0, F, F, F, U, F, "Paused", "NoContainer", "Paused", PHASE_PENDING },
		{ R, 0, F, F, F, U, F, "WaitingForCapacity", "NoContainer", "x", PHASE_ALLOCATING_VM },
		/* unobservable keeps the last phase (PENDING here, as initialised) */
		{ R, 0, U, F, F, U, F, "GroupUnobservable", "NoContainer", "x", PHASE_PENDING },
		{ R, 0, T, U, U, U, U, "InstanceAssigned", "AgentUnobservable", "x", PHASE_PENDING },
		{ R, 0, T, T, F, U, F, "InstanceAssigned", "ContainerMissing", "x", PHASE_BOOTING_CONTAINER },
		{ R, 0, T, T, F, U, F, "InstanceAssigned", "ContainerCrashed", "x", PHASE_BOOTING_CONTAINER },
		{ R, 0, T, T, T, T, T, "InstanceAssigned", "ContainerRunning", "WorkspaceReady", PHASE_READY },
		{ R, 0, T, T, F, U, F, "InstanceAssigned", "ContainerFailed", "x", PHASE_FAILED },
		{ R, 0, T, T, F, F, F, "InstanceAssigned", "RestoreFailed", "x", PHASE_FAILED },
		{ R, 0, F, F, F, U, F, "PoolNotFound", "NoContainer", "PoolNotFound", PHASE_FAILED },
		{ S, 0, F, F, F, U, F, "StopRequested", "ContainerStopping", "Stopping", PHASE_STOPPING },
		{ S, 0, F, F, F, U, F, "StopRequested", "NoContainer", "Stopped", PHASE_STOPPED },
		{ S, 0, F, F, U, U, F, "StopRequested", "Unobservable", "Stopping", PHASE_STOPPING },
		{ R, 1, F, F, F, U, F, "DeleteRequested", "ContainerRemoving", "Deleting", PHASE_DELETING },
		{ S, 1, F, F, F, U, F, "DeleteRequested", "NoContainer", "Deleted", PHASE_DELETED },
		{ R, 1, T, T, T, T, T, "InstanceAssigned", "ContainerRunning", "WorkspaceReady", PHASE_DELETING },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct phase_case *c = &cases[i];
		struct workspace_spec w;
		struct workspace_status st;

		workspace_spec_defaults(&w);
		w.state = c->state;
		w.deletion_requested_at = c->deleting ? 5 : 0;
		workspace_status_init(&st, 1, 0);
		status_set_cond(&st, COND_SCHEDULED, c->sched, c->sched_reason, "", 1);
		status_set_cond(&st, COND_INSTANCE_READY, c->inst, c->cont_reason, "", 1);
		status_set_cond(&st, COND_CONTAINER_READY, c->cont, c->cont_reason, "", 1);
		status_set_cond(&st, COND_FILES_RESTORED, c->restored,
				c->restored == F ? "RestoreFailed" : "x", "", 1);
		status_set_cond(&st, COND_READY, c->ready, c->ready_reason, "", 1);
		if (status_derive_phase(&w, &st) != c->want)
			fail_msg("case %zu: got %s want %s", i,
				 ws_phase_name(status_derive_phase(&w, &st)), ws_phase_name(c->want));
	}
}

static void test_plan__backoff_is_bounded_jittered_and_deterministic(void **state)
{
	struct plan_config cfg;
	int attempt, distinct = 0;
	int64_t ws, d, v, prev = -1;
	uint64_t seed;

	(void)state;
	plan_config_defaults(&cfg);
	for (attempt = 1; attempt <= 30; attempt++) {
		d = cfg.backoff_base_ms;
		for (v = 1; v < attempt && d < cfg.backoff_max_ms; v++)
			d *= 2;
		if (d > cfg.backoff_max_ms)
			d = cfg.backoff_max_ms;
		for (ws = 1; ws <= 50; ws++) {
			for (seed = 0; seed < 4; seed++) {
				v = plan_backoff_ms(&cfg, seed, ws, attempt);
				assert_true(v >= d - d / 2);
				assert_true(v <= d);
				assert_true(v <= cfg.backoff_max_ms);
				assert_int_equal(v, plan_backoff_ms(&cfg, seed, ws, attempt));
				distinct += v != prev;
				prev = v;
			}
		}
	}
	/* jitter actually varies with workspace and seed */
	assert_true(distinct > 30 * 50 * 4 / 2);
	/* grows: the lower bound of attempt 5 is above the cap of attempt 1 */
	assert_true(plan_backoff_ms(&cfg, 1, 1, 5) > cfg.backoff_base_ms);
}

static void line(struct planfile *pf, struct strbuf *act, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void line(struct planfile *pf, struct strbuf *act, const char *fmt, ...)
{
	char buf[512], err[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (planfile_line(pf, buf, act, err, sizeof(err)))
		fail_msg("%s: %s", buf, err);
}

/*
 * Generated world: 200 workspaces onto 60 instances of 4 slots, some
 * containers already placed. Every workspace ends with exactly one
 * placement, no instance over its slots, and desired capacity as computed.
 */
static void test_plan__generated_world_places_each_workspace_once(void **state)
{
	struct strbuf act = STRBUF_INIT;
	struct planfile *pf = planfile_new();
	struct plan_output o;
	struct plan_input in;
	struct err e = ERR_INIT;
	int per_inst[60] = { 0 }, per_ws[201] = { 0 };
	size_t i;
	int k;

	(void)state;
	line(pf, &act, "pool id=1 name=gen slots=4 warm=2 min=1 max=100");
	line(pf, &act, "group pool=1 desired=60");
	for (k = 0; k < 60; k++) {
		line(pf, &act, "instance pool=1 id=i-%03d ip=10.0.%d.%d", k, k / 200, k % 200 + 1);
		line(pf, &act, "agent instance=i-%03d", k);
	}
	for (k = 1; k <= 200; k++)
		line(pf, &act, "workspace id=%d", k);
	for (k = 1; k <= 30; k++)
		line(pf, &act, "container instance=i-%03d ws=%d", (k * 7) % 60, k);
	planfile_input(pf, &in);
	assert_int_equal(plan_compute(&in, &o, &e), 0);
	for (k = 1; k <= 30; k++)
		per_inst[(k * 7) % 60]++, per_ws[k]++;
	for (i = 0; i < o.nactions; i++) {
		const struct action *a = &o.actions[i];

		if (a->type == ACT_ENSURE_CONTAINER) {
			per_ws[a->workspace_id]++;
			per_inst[strtol(a->instance_id + 2, NULL, 10)]++;
		} else if (a->type == ACT_SET_CAPACITY) {
			assert_int_equal(a->capacity, 52); /* 200/4 + 2 warm */
		} else {
			assert_int_equal(a->type, ACT_PROTECT);
		}
	}
	for (k = 1; k <= 200; k++)
		assert_int_equal(per_ws[k], 1);
	for (k = 0; k < 60; k++)
		assert_true(per_inst[k] <= 4);
	assert_int_equal(o.nchanges, 200);
	plan_output_release(&o);
	planfile_free(pf);
	strbuf_release(&act);
}

/*
 * Allocation-failure injection: this binary's malloc family counts down and
 * fails the n-th allocation while armed. plan_compute must fail cleanly with
 * SP_ENOMEM (output released and empty, nothing leaked) for every n, then
 * succeed with the same text as an undisturbed run.
 */
#ifndef __SANITIZE_ADDRESS__ /* under ASan, its own allocator must stay in charge */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static int armed;
static long fail_countdown;        /* fail when it reaches 0 */
static long live_blocks;           /* while armed: allocations minus frees */

static int should_fail(void)
{
	return armed && fail_countdown-- == 0;
}

void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n)
{
	void *p = should_fail() ? NULL : __libc_malloc(n);

	if (p && armed)
		live_blocks++;
	return p;
}

void *calloc(size_t a, size_t b)
{
	void *p = should_fail() ? NULL : __libc_calloc(a, b);

	if (p && armed)
		live_blocks++;
	return p;
}

void *realloc(void *p, size_t n)
{
	void *q = should_fail() ? NULL : __libc_realloc(p, n);

	if (q && !p && armed)
		live_blocks++;
	return q;
}

void free(void *p)
{
	if (p && armed)
		live_blocks--;
	__libc_free(p);
}

#endif

static void test_plan__allocation_failures_fail_cleanly(void **state)
{
#ifdef __SANITIZE_ADDRESS__
	(void)state;
	skip();
#else
	char path[1200], dir[1024], err[512];
	struct strbuf head = STRBUF_INIT, exp = STRBUF_INIT, act = STRBUF_INIT;
	struct strbuf want = STRBUF_INIT, got = STRBUF_INIT;
	struct planfile *pf = planfile_new();
	struct plan_output o;
	struct plan_input in;
	struct err e = ERR_INIT;
	long n;
	int rc, failures = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/053-agent-capacity-and-full-placement.plan",
		 data_dir(dir, sizeof(dir)));
	assert_int_equal(planfile_exec(path, pf, &head, &exp, &act, err, sizeof(err)), 0);
	/* plan the scenario's end state once more, then again under failures */
	plan_text(pf, &want);
	planfile_input(pf, &in);
	for (n = 0; n < 100000; n++) {
		live_blocks = 0;
		fail_countdown = n;
		armed = 1;
		rc = plan_compute(&in, &o, &e);
		armed = 0;
		if (rc == 0)
			break;
		failures++;
		assert_int_equal(rc, SP_ENOMEM);
		assert_null(o.actions);
		assert_int_equal(o.nactions + o.nchanges + o.nevents + o.ndrift, 0);
		if (live_blocks)
			fail_msg("allocation %ld failed: %ld blocks leaked", n, live_blocks);
	}
	assert_true(failures > 10);
	assert_int_equal(plan_output_format(&o, &got), 0);
	plan_output_release(&o);
	assert_string_equal(want.buf, got.buf);
	planfile_free(pf);
	strbuf_release(&head);
	strbuf_release(&exp);
	strbuf_release(&act);
	strbuf_release(&want);
	strbuf_release(&got);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan__scenarios_match_expected_output),
		cmocka_unit_test(test_plan__deterministic_and_order_independent),
		cmocka_unit_test(test_plan__phase_is_derived_from_conditions),
		cmocka_unit_test(test_plan__backoff_is_bounded_jittered_and_deterministic),
		cmocka_unit_test(test_plan__generated_world_places_each_workspace_once),
		cmocka_unit_test(test_plan__allocation_failures_fail_cleanly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
