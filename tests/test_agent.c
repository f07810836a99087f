/*
 * test_agent: real spinup-agent processes on loopback, driven through its
 * signed HTTP API (auth, idempotence, sync ordering, restore guard,
 * readiness, supervision, SIGTERM behaviour, limits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "drivers/agenthttp.h"
#include "drivers/agentsig.h"
#include "model/strbuf.h"
#include "tests/lib/agentfx.h"

struct ctx {
	struct agentfx *f;
	struct agentc *c;
	struct strbuf resp;
	char cmd[3][2048];
};

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	static int n;
	char addr[32];

	if (!x)
		return -1;
	/* an address of our own, so concurrent runs never share workspace ports */
	snprintf(addr, sizeof(addr), "127.%d.0.%d", 100 + getpid() % 100, 20 + (n++ % 200));
	x->f = agentfx_new(addr);
	if (!x->f)
		return -1;
	x->c = agentfx_client(x->f);
	strbuf_init(&x->resp, 0);
	*state = x;
	return x->c ? 0 : -1;
}

static int teardown(void **state)
{
	struct ctx *x = *state;

	agentc_free(x->c);
	agentfx_free(x->f);
	strbuf_release(&x->resp);
	free(x);
	return 0;
}

/* Start the agent with the local-folder sync/restore commands and extra args. */
static void start(struct ctx *x, const char *const *extra)
{
	const char *argv[32];
	int n = 0, i;

	snprintf(x->cmd[0], sizeof(x->cmd[0]),
		 "echo sync >> %s/events && mkdir -p %s/{prefix} && cp -a {dir}/. %s/{prefix}/",
		 x->f->tmp, x->f->bucket, x->f->bucket);
	snprintf(x->cmd[1], sizeof(x->cmd[1]),
		 "test ! -e %s/restore-fails && if [ -d %s/{prefix} ]; then cp -a %s/{prefix}/. {dir}/; fi",
		 x->f->tmp, x->f->bucket, x->f->bucket);
	argv[n++] = "--sync-cmd";
	argv[n++] = x->cmd[0];
	argv[n++] = "--restore-cmd";
	argv[n++] = x->cmd[1];
	argv[n++] = "--port-range";
	argv[n++] = "23000-23999";
	argv[n++] = "--stop-grace";
	argv[n++] = "2";
	for (i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	assert_int_equal(agentfx_start(x->f, argv), 0);
}

static long call(struct ctx *x, int64_t epoch, const char *method, const char *path,
		 const char *body)
{
	return agentfx_call(x->c, x->f, epoch, method, path, body, &x->resp);
}

/* The response's top-level string field (or "" when absent). */
static const char *resp_str(struct ctx *x, const char *field, char *buf, size_t n)
{
	json_t *j = json_loads(x->resp.buf, 0, NULL);
	const char *s = json_string_value(json_object_get(j, field));

	snprintf(buf, n, "%s", s ? s : "");
	json_decref(j);
	return buf;
}

/* A field of container id rendered as text ("true", "42", "running"); "" if absent. */
static void ct_field(struct ctx *x, int64_t id, const char *field, char *out, size_t n)
{
	char path[64];
	json_t *j, *v;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/v1/containers/%lld", (long long)id);
	if (call(x, 0, "GET", path, NULL) != 200)
		return;
	j = json_loads(x->resp.buf, 0, NULL);
	v = json_object_get(json_object_get(j, "container"), field);
	if (json_is_string(v))
		snprintf(out, n, "%s", json_string_value(v));
	else if (json_is_boolean(v))
		snprintf(out, n, "%s", json_is_true(v) ? "true" : "false");
	else if (json_is_integer(v))
		snprintf(out, n, "%lld", (long long)json_integer_value(v));
	json_decref(j);
}

/* Poll until the field equals want (10 s at most); returns 1 when it did. */
static int wait_field(struct ctx *x, int64_t id, const char *field, const char *want)
{
	char got[512];
	int i;

	for (i = 0; i < 200; i++) {
		ct_field(x, id, field, got, sizeof(got));
		if (!strcmp(got, want))
			return 1;
		agentfx_sleep_ms(50);
	}
	fprintf(stderr, "container %lld field %s is '%s', wanted '%s'\n", (long long)id, field,
		got, want);
	return 0;
}

static long ensure(struct ctx *x, int64_t id, const char *prefix, int expect)
{
	char path[64], body[256];

	snprintf(path, sizeof(path), "/v1/containers/%lld", (long long)id);
	snprintf(body, sizeof(body), "{\"workspace_id\":%lld,\"workspace_name\":\"ws%lld\","
		 "\"image\":\"stub\",\"bucket\":\"b\",\"prefix\":\"%s\",\"expect_snapshot\":%s}",
		 (long long)id, (long long)id, prefix, expect ? "true" : "false");
	return call(x, 0, "PUT", path, body);
}

static int file_exists(const char *dir, const char *name)
{
	char p[PATH_MAX + 64];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

/* ---- auth ---------------------------------------------------------------------------- */

static void test_agent__refuses_secret_readable_by_others(void **state)
{
	struct ctx *x = *state;
	struct strbuf log = STRBUF_INIT;

	assert_int_equal(chmod(x->f->secret, 0644), 0);
	assert_int_equal(agentfx_start(x->f, NULL), -1);
	assert_true(WIFEXITED(x->f->exit_status));
	assert_int_equal(WEXITSTATUS(x->f->exit_status), 1);
	assert_int_equal(agentfx_read(x->f->log, &log), 0);
	assert_non_null(strstr(log.buf, "readable by group or others"));
	strbuf_release(&log);
}

static void test_agent__refuses_bad_signature_and_unsigned(void **state)
{
	struct ctx *x = *state;
	struct agenthttp_opts o = { NULL, 1000, 3000, 3000, 0 };
	char other[PATH_MAX + 16], code[64];
	struct agentc *bad;
	struct strbuf log = STRBUF_INIT;

	start(x, NULL);
	snprintf(other, sizeof(other), "%s/other-secret", x->f->tmp);
	assert_int_equal(agentfx_write(other, "a-different-secret-of-enough-length", 0600), 0);
	o.secret_file = other;
	bad = agenthttp_new(&o, NULL);
	assert_non_null(bad);
	assert_int_equal(agentfx_call(bad, x->f, 0, "GET", "/v1/health", NULL, &x->resp), 401);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "bad_signature");
	agentc_free(bad);
	assert_int_equal(agentfx_plain("GET", x->f->addr, x->f->port, "/v1/health", NULL,
				       &x->resp), 401);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "missing_auth");
	assert_int_equal(call(x, 0, "GET", "/v1/health", NULL), 200);
	/* refusals are logged, the secret never is */
	agentfx_read(x->f->secret, &x->resp);
	assert_int_equal(agentfx_read(x->f->log, &log), 0);
	assert_non_null(strstr(log.buf, "reason=bad_signature"));
	assert_null(strstr(log.buf, x->resp.buf));
	strbuf_release(&log);
}

static void test_agent__sighup_rotates_the_secret(void **state)
{
	struct ctx *x = *state;
	struct agentc *fresh;
	char code[64];
	int i;

	start(x, NULL);
	assert_int_equal(call(x, 0, "GET", "/v1/health", NULL), 200);
	assert_int_equal(agentfx_write(x->f->secret, "rotated-secret-0123456789", 0600), 0);
	fresh = agentfx_client(x->f);
	assert_non_null(fresh);
	kill(x->f->pid, SIGHUP);
	for (i = 0; i < 100 && agentfx_call(fresh, x->f, 0, "GET", "/v1/health", NULL,
					    &x->resp) != 200; i++)
		agentfx_sleep_ms(50);
	assert_int_equal(agentfx_call(fresh, x->f, 0, "GET", "/v1/health", NULL, &x->resp), 200);
	assert_int_equal(call(x, 0, "GET", "/v1/health", NULL), 401);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "bad_signature");
	/* a secret file others can read is not taken: the current key stays */
	assert_int_equal(agentfx_write(x->f->secret, "leaked-secret-0123456789", 0644), 0);
	kill(x->f->pid, SIGHUP);
	agentfx_sleep_ms(300);
	assert_int_equal(agentfx_call(fresh, x->f, 0, "GET", "/v1/health", NULL, &x->resp), 200);
	agentc_free(fresh);
}

static long raw_call(struct ctx *x, int64_t ts, const char *nonce, int64_t epoch)
{
	struct agenthttp_raw raw = { ts, nonce };
	long status = -1;

	strbuf_reset(&x->resp);
	if (agenthttp_request(x->c, &x->f->target, epoch, "GET", "/v1/health", NULL, &raw,
			      &status, &x->resp, NULL) < 0)
		return -1;
	return status;
}

static void test_agent__refuses_clock_skew_either_way(void **state)
{
	struct ctx *x = *state;
	int64_t now = (int64_t)time(NULL);
	char code[64];

	start(x, NULL);
	assert_int_equal(raw_call(x, now - AGENTSIG_SKEW_MAX_S - 60, NULL, 0), 401);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "clock_skew");
	assert_int_equal(raw_call(x, now + AGENTSIG_SKEW_MAX_S + 60, NULL, 0), 401);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "clock_skew");
	assert_int_equal(raw_call(x, now - 60, NULL, 0), 200);
}

static void test_agent__refuses_replay(void **state)
{
	struct ctx *x = *state;
	int64_t now = (int64_t)time(NULL);
	const char *nonce = "00112233445566778899aabbccddeeff";
	char code[64];

	start(x, NULL);
	assert_int_equal(raw_call(x, now, nonce, 0), 200);
	assert_int_equal(raw_call(x, now, nonce, 0), 401);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "replay");
	/* a fresh nonce is a fresh request */
	assert_int_equal(raw_call(x, now, "ffeeddccbbaa99887766554433221100", 0), 200);
}

static void test_agent__refuses_stale_epoch_and_remembers_it(void **state)
{
	struct ctx *x = *state;
	char code[64];
	json_t *j;

	start(x, NULL);
	assert_int_equal(call(x, 7, "GET", "/v1/health", NULL), 200);
	assert_int_equal(call(x, 6, "PUT", "/v1/containers/5", "{\"workspace_id\":5}"), 409);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "stale_epoch");
	assert_int_equal(call(x, 6, "GET", "/v1/containers", NULL), 409);
	/* the highest epoch survives a restart (state file) */
	assert_int_equal(agentfx_signal_wait(x->f, SIGTERM), 0);
	start(x, NULL);
	assert_int_equal(call(x, 6, "GET", "/v1/health", NULL), 409);
	assert_int_equal(call(x, 7, "GET", "/v1/health", NULL), 200);
	j = json_loads(x->resp.buf, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(j, "max_epoch_seen")), 7);
	json_decref(j);
}

/* ---- idempotence ------------------------------------------------------------------------ */

static void test_agent__ensure_is_idempotent(void **state)
{
	struct ctx *x = *state;
	char action[32], started[32], started2[32];
	json_t *j;

	start(x, NULL);
	assert_int_equal(ensure(x, 11, "p11", 0), 201);
	assert_string_equal(resp_str(x, "action", action, sizeof(action)), "created");
	assert_true(wait_field(x, 11, "ready", "true"));
	ct_field(x, 11, "started_at", started, sizeof(started));
	assert_int_equal(ensure(x, 11, "p11", 0), 200);
	assert_string_equal(resp_str(x, "action", action, sizeof(action)), "kept");
	ct_field(x, 11, "started_at", started2, sizeof(started2));
	assert_string_equal(started, started2);
	ct_field(x, 11, "restarts", started2, sizeof(started2));
	assert_string_equal(started2, "0");
	assert_int_equal(call(x, 0, "GET", "/v1/containers", NULL), 200);
	j = json_loads(x->resp.buf, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "containers")), 1);
	json_decref(j);
	/* mismatched id in body and path is refused */
	assert_int_equal(call(x, 0, "PUT", "/v1/containers/12", "{\"workspace_id\":13}"), 400);
	assert_string_equal(resp_str(x, "code", action, sizeof(action)), "invalid");
}

static void test_agent__remove_is_idempotent(void **state)
{
	struct ctx *x = *state;
	char dir[PATH_MAX + 32];
	json_t *j;

	start(x, NULL);
	assert_int_equal(call(x, 0, "DELETE", "/v1/containers/21", NULL), 200);
	j = json_loads(x->resp.buf, 0, NULL);
	assert_true(json_is_false(json_object_get(j, "existed")));
	json_decref(j);
	assert_int_equal(ensure(x, 21, "p21", 0), 201);
	assert_true(wait_field(x, 21, "state", "running"));
	assert_int_equal(call(x, 0, "DELETE", "/v1/containers/21", NULL), 200);
	j = json_loads(x->resp.buf, 0, NULL);
	assert_true(json_is_true(json_object_get(j, "existed")));
	assert_true(json_is_true(json_object_get(j, "synced")));
	json_decref(j);
	snprintf(dir, sizeof(dir), "%s/workspaces/21", x->f->data);
	assert_int_not_equal(access(dir, F_OK), 0);
	assert_int_equal(call(x, 0, "DELETE", "/v1/containers/21", NULL), 200);
	assert_int_equal(call(x, 0, "GET", "/v1/containers/21", NULL), 404);
	assert_int_equal(call(x, 0, "POST", "/v1/containers/21/stop", NULL), 404);
}

/* ---- files ------------------------------------------------------------------------------ */

static void test_agent__stop_syncs_before_stopping(void **state)
{
	struct ctx *x = *state;
	char wscmd[1024], bdir[PATH_MAX + 32], ev[PATH_MAX + 32];
	const char *extra[3] = { "--workspace-cmd", wscmd, NULL };
	struct strbuf events = STRBUF_INIT;
	json_t *j;
	int i;

	snprintf(ev, sizeof(ev), "%s/events", x->f->tmp);
	snprintf(wscmd, sizeof(wscmd),
		 "trap 'echo stopped >> %s; exit 0' TERM; echo started >> %s; echo data > notes.txt; "
		 "while :; do sleep 0.05; done", ev, ev);
	start(x, extra);
	assert_int_equal(ensure(x, 31, "p31", 0), 201);
	assert_true(wait_field(x, 31, "state", "running"));
	for (i = 0; i < 500 && (agentfx_read(ev, &events) < 0 || !strstr(events.buf, "started"));
	     i++)
		agentfx_sleep_ms(20);
	assert_non_null(strstr(events.buf, "started"));
	assert_int_equal(call(x, 0, "POST", "/v1/containers/31/stop", NULL), 200);
	j = json_loads(x->resp.buf, 0, NULL);
	assert_true(json_is_true(json_object_get(j, "synced")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "container"),
							      "state")), "stopped");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "container"),
							      "last_sync")), "ok");
	assert_true(json_integer_value(json_object_get(json_object_get(j, "container"),
						       "last_sync_at")) > 0);
	json_decref(j);
	snprintf(bdir, sizeof(bdir), "%s/p31", x->f->bucket);
	assert_true(file_exists(bdir, "notes.txt"));
	assert_true(file_exists(bdir, ".spinup-snapshot"));
	/* order of events: the sync ran while the workspace ran, then it stopped */
	for (i = 0; i < 500 && agentfx_read(ev, &events) == 0 && !strstr(events.buf, "stopped");
	     i++)
		agentfx_sleep_ms(20);
	assert_string_equal(events.buf, "started\nsync\nstopped\n");
	/* a second stop is a no-op: no new sync */
	assert_int_equal(call(x, 0, "POST", "/v1/containers/31/stop", NULL), 200);
	agentfx_read(ev, &events);
	assert_string_equal(events.buf, "started\nsync\nstopped\n");
	strbuf_release(&events);
}

static void test_agent__running_workspaces_sync_periodically(void **state)
{
	struct ctx *x = *state;
	const char *extra[] = { "--sync-interval", "1", NULL };
	char bdir[PATH_MAX + 32];

	start(x, extra);
	assert_int_equal(ensure(x, 33, "p33", 0), 201);
	assert_true(wait_field(x, 33, "state", "running"));
	assert_true(wait_field(x, 33, "last_sync", "ok"));
	snprintf(bdir, sizeof(bdir), "%s/p33", x->f->bucket);
	assert_true(file_exists(bdir, ".spinup-snapshot"));
}

static void test_agent__failed_sync_does_not_stop(void **state)
{
	struct ctx *x = *state;
	char code[64];
	const char *extra[] = { "--sync-cmd", "echo bucket unreachable >&2; exit 4", NULL };

	start(x, extra);   /* the later --sync-cmd wins */
	assert_int_equal(ensure(x, 32, "p32", 0), 201);
	assert_true(wait_field(x, 32, "state", "running"));
	assert_int_equal(call(x, 0, "POST", "/v1/containers/32/stop", NULL), 502);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "sync_failed");
	assert_non_null(strstr(x->resp.buf, "bucket unreachable"));
	assert_true(wait_field(x, 32, "state", "running"));
	assert_true(wait_field(x, 32, "last_sync", "failed"));
	/* the caller may decide to stop without syncing */
	assert_int_equal(call(x, 0, "POST", "/v1/containers/32/stop", "{\"sync\":false}"), 200);
	assert_true(wait_field(x, 32, "state", "stopped"));
}

/* A container field of the last answer ("" when absent). */
static void resp_ct_str(struct ctx *x, const char *field, char *out, size_t n)
{
	json_t *j = json_loads(x->resp.buf, 0, NULL);
	const char *s = json_string_value(json_object_get(json_object_get(j, "container"), field));

	snprintf(out, n, "%s", s ? s : "");
	json_decref(j);
}

/*
 * {"wait": false}: a stop that must sync is answered 202 at once, with the
 * container still running and the stop pending behind the sync; the
 * workspace stops only once the (slow) sync has put its files in the bucket.
 */
static void test_agent__no_wait_stop_answers_at_once_stops_after_sync(void **state)
{
	struct ctx *x = *state;
	char wscmd[1024], sync[2048], bdir[PATH_MAX + 32], ev[PATH_MAX + 32], v[64];
	const char *extra[] = { "--workspace-cmd", wscmd, "--sync-cmd", sync, NULL };
	struct strbuf events = STRBUF_INIT;
	int i;

	snprintf(ev, sizeof(ev), "%s/events", x->f->tmp);
	snprintf(wscmd, sizeof(wscmd),
		 "trap 'echo stopped >> %s; exit 0' TERM; echo started >> %s; echo data > notes.txt; "
		 "while :; do sleep 0.05; done", ev, ev);
	snprintf(sync, sizeof(sync), "sleep 2 && echo sync >> %s && mkdir -p %s/{prefix} && "
		 "cp -a {dir}/. %s/{prefix}/", ev, x->f->bucket, x->f->bucket);
	start(x, extra);
	assert_int_equal(ensure(x, 34, "p34", 0), 201);
	assert_true(wait_field(x, 34, "state", "running"));
	for (i = 0; i < 500 && (agentfx_read(ev, &events) < 0 || !strstr(events.buf, "started"));
	     i++)
		agentfx_sleep_ms(20);
	/* answered while the 2 s sync runs: the record shows the stop pending behind it */
	assert_int_equal(call(x, 0, "POST", "/v1/containers/34/stop",
			      "{\"sync\":true,\"wait\":false}"), 202);
	assert_non_null(strstr(x->resp.buf, "\"accepted\":true"));
	resp_ct_str(x, "state", v, sizeof(v));
	assert_string_equal(v, "running");
	resp_ct_str(x, "pending", v, sizeof(v));
	assert_string_equal(v, "stop");
	resp_ct_str(x, "job", v, sizeof(v));
	assert_string_equal(v, "sync");
	resp_ct_str(x, "last_sync", v, sizeof(v));
	assert_string_equal(v, "running");
	/* the record says the same; a start meanwhile is refused, not queued */
	ct_field(x, 34, "pending", v, sizeof(v));
	assert_string_equal(v, "stop");
	assert_int_equal(ensure(x, 34, "p34", 0), 409);
	assert_string_equal(resp_str(x, "code", v, sizeof(v)), "busy");
	/* a second no-wait stop while the first is pending is accepted too */
	assert_int_equal(call(x, 0, "POST", "/v1/containers/34/stop", "{\"wait\":false}"), 202);
	assert_true(wait_field(x, 34, "state", "stopped"));
	ct_field(x, 34, "last_sync", v, sizeof(v));
	assert_string_equal(v, "ok");
	ct_field(x, 34, "pending", v, sizeof(v));
	assert_string_equal(v, "none");
	snprintf(bdir, sizeof(bdir), "%s/p34", x->f->bucket);
	assert_true(file_exists(bdir, "notes.txt"));
	for (i = 0; i < 500 && agentfx_read(ev, &events) == 0 && !strstr(events.buf, "stopped");
	     i++)
		agentfx_sleep_ms(20);
	assert_string_equal(events.buf, "started\nsync\nstopped\n");   /* one sync, then the stop */
	/* nothing left to sync: a no-wait stop finishes at once, 200 */
	assert_int_equal(call(x, 0, "POST", "/v1/containers/34/stop", "{\"wait\":false}"), 200);
	assert_non_null(strstr(x->resp.buf, "\"synced\":false"));
	strbuf_release(&events);
}

/* A no-wait stop whose sync fails leaves the workspace running and says why. */
static void test_agent__no_wait_stop_with_failing_sync_keeps_running(void **state)
{
	struct ctx *x = *state;
	const char *extra[] = { "--sync-cmd", "sleep 1; echo bucket unreachable >&2; exit 4", NULL };
	char v[512];

	start(x, extra);
	assert_int_equal(ensure(x, 35, "p35", 0), 201);
	assert_true(wait_field(x, 35, "state", "running"));
	assert_int_equal(call(x, 0, "POST", "/v1/containers/35/stop", "{\"wait\":false}"), 202);
	assert_true(wait_field(x, 35, "last_sync", "failed"));
	ct_field(x, 35, "state", v, sizeof(v));
	assert_string_equal(v, "running");
	ct_field(x, 35, "pending", v, sizeof(v));
	assert_string_equal(v, "none");
	ct_field(x, 35, "message", v, sizeof(v));
	assert_non_null(strstr(v, "bucket unreachable"));
	agentfx_sleep_ms(300);
	ct_field(x, 35, "state", v, sizeof(v));
	assert_string_equal(v, "running");
}

/* A no-wait remove: 202, the sync, then the container and its folder are gone. */
static void test_agent__no_wait_remove_syncs_then_removes(void **state)
{
	struct ctx *x = *state;
	char sync[2048], bdir[PATH_MAX + 32], dir[PATH_MAX + 32], v[64];
	const char *extra[] = { "--sync-cmd", sync, NULL };
	int i;

	snprintf(sync, sizeof(sync), "sleep 1 && mkdir -p %s/{prefix} && cp -a {dir}/. %s/{prefix}/",
		 x->f->bucket, x->f->bucket);
	start(x, extra);
	assert_int_equal(ensure(x, 36, "p36", 0), 201);
	assert_true(wait_field(x, 36, "state", "running"));
	assert_int_equal(call(x, 0, "DELETE", "/v1/containers/36", "{\"sync\":true,\"wait\":false}"),
			 202);
	resp_ct_str(x, "pending", v, sizeof(v));
	assert_string_equal(v, "remove");
	/* a sync asked meanwhile does not hide the remove behind it */
	assert_int_equal(call(x, 0, "POST", "/v1/containers/36/sync", "{\"wait\":false}"), 202);
	resp_ct_str(x, "pending", v, sizeof(v));
	assert_string_equal(v, "remove");
	for (i = 0; i < 200 && call(x, 0, "GET", "/v1/containers/36", NULL) == 200; i++)
		agentfx_sleep_ms(50);
	assert_int_equal(call(x, 0, "GET", "/v1/containers/36", NULL), 404);
	snprintf(bdir, sizeof(bdir), "%s/p36", x->f->bucket);
	assert_true(file_exists(bdir, ".spinup-snapshot"));
	snprintf(dir, sizeof(dir), "%s/workspaces/36", x->f->data);
	assert_int_not_equal(access(dir, F_OK), 0);
	assert_int_equal(call(x, 0, "DELETE", "/v1/containers/36", "{\"wait\":false}"), 200);
	assert_int_equal(call(x, 0, "POST", "/v1/containers/36/stop", "{\"wait\":7}"), 400);
}

static void test_agent__failed_restore_forbids_sync_back(void **state)
{
	struct ctx *x = *state;
	char flag[PATH_MAX + 32], bdir[PATH_MAX + 32], msg[512];

	start(x, NULL);
	snprintf(flag, sizeof(flag), "%s/restore-fails", x->f->tmp);
	assert_int_equal(agentfx_write(flag, "1", 0600), 0);
	assert_int_equal(ensure(x, 41, "p41", 0), 201);
	assert_true(wait_field(x, 41, "state", "failed"));
	assert_true(wait_field(x, 41, "restore_failed", "true"));
	ct_field(x, 41, "message", msg, sizeof(msg));
	assert_non_null(strstr(msg, "restore"));
	assert_int_equal(call(x, 0, "POST", "/v1/containers/41/sync", NULL), 409);
	assert_string_equal(resp_str(x, "code", msg, sizeof(msg)), "restore_failed");
	snprintf(bdir, sizeof(bdir), "%s/p41", x->f->bucket);
	assert_int_not_equal(access(bdir, F_OK), 0);   /* nothing was written back */
	/* a good restore lifts the guard */
	unlink(flag);
	assert_int_equal(ensure(x, 41, "p41", 0), 200);
	assert_string_equal(resp_str(x, "action", msg, sizeof(msg)), "restoring");
	assert_true(wait_field(x, 41, "state", "running"));
	assert_true(wait_field(x, 41, "restore_failed", "false"));
	assert_int_equal(call(x, 0, "POST", "/v1/containers/41/sync", NULL), 200);
	assert_true(file_exists(bdir, ".spinup-snapshot"));
}

static void test_agent__expected_snapshot_missing_fails(void **state)
{
	struct ctx *x = *state;
	char msg[512];

	start(x, NULL);
	assert_int_equal(ensure(x, 51, "nothing-here", 1), 201);
	assert_true(wait_field(x, 51, "state", "failed"));
	ct_field(x, 51, "message", msg, sizeof(msg));
	assert_non_null(strstr(msg, "expected a snapshot but none was found"));
	assert_true(wait_field(x, 51, "restore_failed", "true"));
}

static void test_agent__files_survive_remove_and_restore(void **state)
{
	struct ctx *x = *state;
	char port[16];

	start(x, NULL);
	assert_int_equal(ensure(x, 52, "p52", 0), 201);
	assert_true(wait_field(x, 52, "ready", "true"));
	ct_field(x, 52, "port", port, sizeof(port));
	assert_int_equal(agentfx_plain("PUT", x->f->addr, (int)strtol(port, NULL, 10),
				       "/files/hello.txt", "hello world", &x->resp), 201);
	assert_int_equal(call(x, 0, "DELETE", "/v1/containers/52", NULL), 200);
	assert_int_equal(ensure(x, 52, "p52", 1), 201);
	assert_true(wait_field(x, 52, "ready", "true"));
	ct_field(x, 52, "port", port, sizeof(port));
	assert_int_equal(agentfx_plain("GET", x->f->addr, (int)strtol(port, NULL, 10),
				       "/files/hello.txt", NULL, &x->resp), 200);
	assert_string_equal(x->resp.buf, "hello world");
	assert_int_equal(agentfx_plain("GET", x->f->addr, (int)strtol(port, NULL, 10), "/", NULL,
				       &x->resp), 200);
	assert_non_null(strstr(x->resp.buf, "hello.txt"));
}

/* Wait until path exists (5 s at most) and read it into out; 0 or -1. */
static int wait_file(const char *path, struct strbuf *out)
{
	int i;

	for (i = 0; i < 250 && access(path, F_OK) != 0; i++)
		agentfx_sleep_ms(20);
	return agentfx_read(path, out);
}

/* 1 when the output of env(1) in text holds the line "name=value" (value NULL: any value). */
static int env_has(const char *text, const char *name, const char *value)
{
	size_t nl = strlen(name);
	const char *p;

	for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > nl && !strncmp(p, name, nl) && p[nl] == '=' &&
		    (!value || (len - nl - 1 == strlen(value) && !strncmp(p + nl + 1, value,
									   len - nl - 1))))
			return 1;
	}
	return 0;
}

/*
 * A workspace runs user code: it must not inherit the credentials the
 * agent holds for its sync command. The sync command still gets them.
 */
static void test_agent__workspace_gets_a_minimal_environment(void **state)
{
	struct ctx *x = *state;
	char wscmd[2048], sync[2048], wsenv[PATH_MAX + 16], syncenv[PATH_MAX + 16];
	char home[PATH_MAX + 64];
	const char *extra[] = { "--workspace-cmd", wscmd, "--sync-cmd", sync, NULL };
	struct strbuf env = STRBUF_INIT;

	snprintf(wsenv, sizeof(wsenv), "%s/ws-env", x->f->tmp);
	snprintf(syncenv, sizeof(syncenv), "%s/sync-env", x->f->tmp);
	snprintf(wscmd, sizeof(wscmd), "env > %s.tmp && mv %s.tmp %s; "
		 "while :; do sleep 0.05; done", wsenv, wsenv, wsenv);
	snprintf(sync, sizeof(sync), "env > %s.tmp && mv %s.tmp %s", syncenv, syncenv, syncenv);
	setenv("AWS_SECRET_ACCESS_KEY", "agent-only-secret-value", 1);
	setenv("SPINUP_TEST_SECRET_FILE", "/etc/spinup/agent.secret", 1);
	setenv("TZ", "UTC0", 1);
	start(x, extra);
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("SPINUP_TEST_SECRET_FILE");
	unsetenv("TZ");
	assert_int_equal(ensure(x, 35, "p35", 0), 201);
	assert_true(wait_field(x, 35, "state", "running"));
	assert_int_equal(wait_file(wsenv, &env), 0);
	assert_false(env_has(env.buf, "AWS_SECRET_ACCESS_KEY", NULL));
	assert_null(strstr(env.buf, "agent-only-secret-value"));
	assert_false(env_has(env.buf, "SPINUP_TEST_SECRET_FILE", NULL));
	snprintf(home, sizeof(home), "%s/workspaces/35", x->f->data);
	assert_true(env_has(env.buf, "HOME", home));
	assert_true(env_has(env.buf, "PATH", NULL));
	assert_true(env_has(env.buf, "TZ", "UTC0"));
	/* the sync command keeps the agent's environment: it needs the credentials */
	assert_int_equal(call(x, 0, "POST", "/v1/containers/35/sync", NULL), 200);
	assert_int_equal(wait_file(syncenv, &env), 0);
	assert_true(env_has(env.buf, "AWS_SECRET_ACCESS_KEY", "agent-only-secret-value"));
	assert_true(env_has(env.buf, "SPINUP_TEST_SECRET_FILE", NULL));
	strbuf_release(&env);
}

/* ---- supervision ------------------------------------------------------------------------ */

static void test_agent__ready_only_when_endpoint_answers(void **state)
{
	struct ctx *x = *state;
	char wscmd[1024], gate[PATH_MAX + 16];
	const char *extra[3] = { "--workspace-cmd", wscmd, NULL };

	snprintf(gate, sizeof(gate), "%s/gate", x->f->tmp);
	snprintf(wscmd, sizeof(wscmd), "while [ ! -e %s ]; do sleep 0.05; done; "
		 "exec %s workspace --listen {addr}:{port} --dir {dir}", gate, agentfx_bin());
	start(x, extra);
	assert_int_equal(ensure(x, 61, "p61", 0), 201);
	assert_true(wait_field(x, 61, "state", "running"));
	agentfx_sleep_ms(1500);   /* several probe rounds against a closed port */
	assert_true(wait_field(x, 61, "ready", "false"));
	assert_int_equal(agentfx_write(gate, "", 0600), 0);
	assert_true(wait_field(x, 61, "ready", "true"));
}

static void test_agent__crash_is_restarted_with_backoff(void **state)
{
	struct ctx *x = *state;
	char wscmd[1024], count[PATH_MAX + 16], msg[512], restarts[16];
	const char *extra[3] = { "--workspace-cmd", wscmd, NULL };
	struct strbuf runs = STRBUF_INIT;
	int seen_first = 0, seen_second = 0, i;

	snprintf(count, sizeof(count), "%s/runs", x->f->tmp);
	snprintf(wscmd, sizeof(wscmd), "echo run >> %s; exit 3", count);
	start(x, extra);
	assert_int_equal(ensure(x, 71, "p71", 0), 201);
	for (i = 0; i < 200 && !seen_second; i++) {
		ct_field(x, 71, "message", msg, sizeof(msg));
		seen_first |= strstr(msg, "exited with status 3; restart 1 in 1000 ms") != NULL;
		seen_second |= strstr(msg, "exited with status 3; restart 2 in 2000 ms") != NULL;
		agentfx_sleep_ms(50);
	}
	assert_true(seen_first);
	assert_true(seen_second);
	ct_field(x, 71, "restarts", restarts, sizeof(restarts));
	assert_true(strtol(restarts, NULL, 10) >= 2);
	assert_int_equal(agentfx_read(count, &runs), 0);
	assert_non_null(strstr(runs.buf, "run\nrun\n"));
	ct_field(x, 71, "state", msg, sizeof(msg));
	assert_true(!strcmp(msg, "exited") || !strcmp(msg, "running"));
	strbuf_release(&runs);
}

static void test_agent__sigterm_leaves_workspaces_running(void **state)
{
	struct ctx *x = *state;
	char port[16];
	int p;

	start(x, NULL);
	assert_int_equal(ensure(x, 81, "p81", 0), 201);
	assert_true(wait_field(x, 81, "ready", "true"));
	ct_field(x, 81, "port", port, sizeof(port));
	p = (int)strtol(port, NULL, 10);
	assert_int_equal(agentfx_plain("PUT", x->f->addr, p, "/files/keep.txt", "kept", &x->resp),
			 201);
	assert_int_equal(agentfx_signal_wait(x->f, SIGTERM), 0);   /* clean exit */
	/* the workspace still answers without its agent */
	assert_int_equal(agentfx_plain("GET", x->f->addr, p, "/files/keep.txt", NULL, &x->resp),
			 200);
	assert_string_equal(x->resp.buf, "kept");
	/* a restarted agent re-adopts it: same start, no restart */
	start(x, NULL);
	assert_true(wait_field(x, 81, "state", "running"));
	assert_true(wait_field(x, 81, "ready", "true"));
	assert_true(wait_field(x, 81, "restarts", "0"));
	assert_true(wait_field(x, 81, "port", port));
	/* and can still stop it */
	assert_int_equal(call(x, 0, "POST", "/v1/containers/81/stop", "{\"sync\":false}"), 200);
	assert_true(wait_field(x, 81, "state", "stopped"));
	for (int i = 0; i < 100 && agentfx_plain("GET", x->f->addr, p, "/", NULL, &x->resp) > 0;
	     i++)
		agentfx_sleep_ms(50);
	assert_int_equal(agentfx_plain("GET", x->f->addr, p, "/", NULL, &x->resp), -1);
}

struct bg_call {
	struct ctx *x;
	long status;
	struct strbuf resp;
};

static void *bg_stop(void *arg)
{
	struct bg_call *b = arg;
	struct agentc *c = agentfx_client(b->x->f);

	b->status = c ? agentfx_call(c, b->x->f, 0, "POST", "/v1/containers/82/stop", NULL,
				     &b->resp) : -1;
	agentc_free(c);
	return NULL;
}

static void test_agent__sigterm_finishes_inflight_requests(void **state)
{
	struct ctx *x = *state;
	char gate[PATH_MAX + 16], slow[2048];
	const char *extra[3] = { "--sync-cmd", slow, NULL };
	struct bg_call b = { x, 0, STRBUF_INIT };
	pthread_t th;
	int i;

	snprintf(gate, sizeof(gate), "%s/sync-gate", x->f->tmp);
	snprintf(slow, sizeof(slow), "while [ ! -e %s ]; do sleep 0.05; done", gate);
	start(x, extra);
	assert_int_equal(ensure(x, 82, "p82", 0), 201);
	assert_true(wait_field(x, 82, "state", "running"));
	assert_int_equal(pthread_create(&th, NULL, bg_stop, &b), 0);
	/* while the stop waits for its sync, the agent keeps answering */
	assert_true(wait_field(x, 82, "job", "sync"));
	assert_int_equal(call(x, 0, "GET", "/v1/health", NULL), 200);
	kill(x->f->pid, SIGTERM);
	for (i = 0; i < 20 && agentfx_plain("GET", x->f->addr, x->f->port, "/v1/health", NULL,
					    &x->resp) > 0; i++)
		agentfx_sleep_ms(50);
	/* no new connections once draining */
	assert_int_equal(agentfx_plain("GET", x->f->addr, x->f->port, "/v1/health", NULL,
				       &x->resp), -1);
	assert_int_equal(agentfx_write(gate, "", 0600), 0);
	pthread_join(th, NULL);
	assert_int_equal(b.status, 200);
	assert_non_null(strstr(b.resp.buf, "\"synced\":true"));
	assert_int_equal(agentfx_signal_wait(x->f, 0), 0);
	strbuf_release(&b.resp);
}

static void test_agent__drain_deadline_answers_draining(void **state)
{
	struct ctx *x = *state;
	char slow[1024];
	const char *extra[] = { "--sync-cmd", slow, "--drain-timeout", "1", NULL };
	struct bg_call b = { x, 0, STRBUF_INIT };
	pthread_t th;
	char code[64];

	snprintf(slow, sizeof(slow), "while [ ! -e %s/never ]; do sleep 0.05; done", x->f->tmp);
	start(x, extra);
	assert_int_equal(ensure(x, 82, "p82", 0), 201);
	assert_true(wait_field(x, 82, "state", "running"));
	assert_int_equal(pthread_create(&th, NULL, bg_stop, &b), 0);
	assert_true(wait_field(x, 82, "job", "sync"));
	assert_int_equal(agentfx_signal_wait(x->f, SIGTERM), 0);   /* exits despite the stuck sync */
	pthread_join(th, NULL);
	assert_int_equal(b.status, 503);
	strbuf_reset(&x->resp);
	strbuf_addstr(&x->resp, b.resp.buf);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "draining");
	strbuf_release(&b.resp);
}

/*
 * After SIGTERM a request on a connection kept alive from before (spinupd
 * reuses connections) gets 503 draining and starts nothing, while the
 * in-flight stop still finishes; the answer closes the connection.
 */
static void test_agent__draining_refuses_new_requests_on_kept_alive_connections(void **state)
{
	struct ctx *x = *state;
	char gate[PATH_MAX + 16], slow[2048], dir[PATH_MAX + 32], code[64];
	const char *extra[3] = { "--sync-cmd", slow, NULL };
	struct bg_call b = { x, 0, STRBUF_INIT };
	struct strbuf log = STRBUF_INIT;
	pthread_t th;
	int i;

	snprintf(gate, sizeof(gate), "%s/sync-gate", x->f->tmp);
	snprintf(slow, sizeof(slow), "while [ ! -e %s ]; do sleep 0.05; done", gate);
	start(x, extra);
	assert_int_equal(ensure(x, 82, "p82", 0), 201);
	assert_true(wait_field(x, 82, "state", "running"));
	assert_int_equal(pthread_create(&th, NULL, bg_stop, &b), 0);
	assert_true(wait_field(x, 82, "job", "sync"));
	assert_int_equal(call(x, 0, "GET", "/v1/health", NULL), 200);   /* x->c keeps this one */
	kill(x->f->pid, SIGTERM);
	for (i = 0; i < 40 && agentfx_plain("GET", x->f->addr, x->f->port, "/v1/health", NULL,
					    &x->resp) > 0; i++)
		agentfx_sleep_ms(50);
	assert_int_equal(agentfx_plain("GET", x->f->addr, x->f->port, "/v1/health", NULL,
				       &x->resp), -1);   /* draining: the listener is closed */
	/* the kept-alive connection still reaches the agent, which refuses new work */
	assert_int_equal(ensure(x, 84, "p84", 0), 503);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "draining");
	snprintf(dir, sizeof(dir), "%s/workspaces/84", x->f->data);
	assert_int_not_equal(access(dir, F_OK), 0);
	/* Connection: close, and no new connection is accepted: no answer at all */
	assert_int_equal(call(x, 0, "GET", "/v1/health", NULL), -1);
	/* the in-flight stop was not refused */
	assert_int_equal(agentfx_write(gate, "", 0600), 0);
	pthread_join(th, NULL);
	assert_int_equal(b.status, 200);
	assert_int_equal(agentfx_signal_wait(x->f, 0), 0);
	assert_int_not_equal(access(dir, F_OK), 0);
	assert_int_equal(agentfx_read(x->f->log, &log), 0);
	assert_non_null(strstr(log.buf, "path=/v1/containers/84 reason=draining"));
	assert_null(strstr(log.buf, "container spinup-84 created"));
	strbuf_release(&log);
	strbuf_release(&b.resp);
}

static void test_agent__kill_workspaces_ends_what_the_agent_left(void **state)
{
	struct ctx *x = *state;
	char port[2][16], cmd[PATH_MAX * 2];
	struct strbuf out = STRBUF_INIT;
	FILE *p;
	int i;

	start(x, NULL);
	for (i = 0; i < 2; i++) {
		assert_int_equal(ensure(x, 83 + i, "p83", 0), 201);
		assert_true(wait_field(x, 83 + i, "ready", "true"));
		ct_field(x, 83 + i, "port", port[i], sizeof(port[i]));
	}
	assert_int_equal(agentfx_signal_wait(x->f, SIGKILL), SIGKILL);
	assert_int_equal(agentfx_plain("GET", x->f->addr, (int)strtol(port[0], NULL, 10), "/",
				       NULL, &x->resp), 200);
	snprintf(cmd, sizeof(cmd), "%s kill-workspaces --data-dir %s", agentfx_bin(), x->f->data);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(cmd, sizeof(cmd), p))
		strbuf_addstr(&out, cmd);
	assert_int_equal(pclose(p), 0);
	assert_string_equal(out.buf, "killed 2 workspace process groups\n");
	for (i = 0; i < 2; i++) {
		int j, p2 = (int)strtol(port[i], NULL, 10);

		for (j = 0; j < 100 && agentfx_plain("GET", x->f->addr, p2, "/", NULL, &x->resp) > 0;
		     j++)
			agentfx_sleep_ms(50);
		assert_int_equal(agentfx_plain("GET", x->f->addr, p2, "/", NULL, &x->resp), -1);
	}
	strbuf_release(&out);
}

/* ---- limits ------------------------------------------------------------------------------ */

static void test_agent__limits_are_json_errors(void **state)
{
	struct ctx *x = *state;
	const char *extra[] = { "--capacity", "1", NULL };
	struct strbuf big = STRBUF_INIT;
	char code[64];

	start(x, extra);
	assert_int_equal(strbuf_addstr(&big, "{\"workspace_id\":1,\"image\":\""), 0);
	while (big.len < 70 * 1024)
		strbuf_addch(&big, 'x');
	strbuf_addstr(&big, "\"}");
	assert_int_equal(call(x, 0, "PUT", "/v1/containers/1", big.buf), 413);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "too_large");
	assert_int_equal(ensure(x, 91, "p91", 0), 201);
	assert_int_equal(ensure(x, 92, "p92", 0), 409);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "at_capacity");
	assert_int_equal(call(x, 0, "GET", "/v1/nothing", NULL), 404);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "not_found");
	assert_int_equal(call(x, 0, "PUT", "/v1/containers/93", "not json"), 400);
	assert_string_equal(resp_str(x, "code", code, sizeof(code)), "invalid");
	assert_int_equal(call(x, 0, "PUT", "/v1/containers/94",
			      "{\"workspace_id\":94,\"prefix\":\"a/../../etc\"}"), 400);
	assert_non_null(strstr(x->resp.buf, "'..' segment"));
	assert_int_equal(call(x, 0, "PUT", "/v1/containers/94",
			      "{\"workspace_id\":94,\"bucket\":\"Bad Bucket\"}"), 400);
	assert_int_equal(call(x, 0, "PUT", "/v1/containers/94", "{\"workspace_id\":\"94\"}"),
			 400);
	assert_non_null(strstr(x->resp.buf, "not an integer"));
	strbuf_release(&big);
}

/* Send raw bytes to the agent and read its answer until it closes (3 s at most). */
static int raw_exchange(struct ctx *x, const char *req, size_t len, struct strbuf *out)
{
	struct sockaddr_in sin;
	struct timeval tv = { 3, 0 };
	char buf[4096];
	size_t off = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	strbuf_reset(out);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)x->f->port);
	inet_pton(AF_INET, x->f->addr, &sin.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (off < len && (n = send(fd, req + off, len - off, MSG_NOSIGNAL)) > 0)
		off += (size_t)n;
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		strbuf_add(out, buf, (size_t)n);
	close(fd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * The limit API.md documents: libmicrohttpd answers a header section too
 * large for the connection's memory itself, before the agent sees it, with
 * its own HTML body. Pinned here so a library upgrade that changes it shows.
 */
static void test_agent__oversized_header_gets_the_librarys_431(void **state)
{
	struct ctx *x = *state;
	struct strbuf req = STRBUF_INIT;

	start(x, NULL);
	strbuf_addstr(&req, "GET /v1/health HTTP/1.1\r\nHost: agent\r\nX-Big: ");
	while (req.len < 200 * 1024)
		strbuf_addch(&req, 'a');
	strbuf_addstr(&req, "\r\n\r\n");
	assert_int_equal(raw_exchange(x, req.buf, req.len, &x->resp), 0);
	assert_true(!strncmp(x->resp.buf, "HTTP/1.1 431 ", 13));
	assert_non_null(strstr(x->resp.buf, "Connection: close"));
	assert_null(strstr(x->resp.buf, "application/json"));
	/* a request that fits reaches the agent and gets its JSON error */
	strbuf_setlen(&req, 0);
	strbuf_addstr(&req, "GET /v1/health HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
	assert_int_equal(raw_exchange(x, req.buf, req.len, &x->resp), 0);
	assert_true(!strncmp(x->resp.buf, "HTTP/1.1 401 ", 13));
	assert_non_null(strstr(x->resp.buf, "\"code\":\"missing_auth\""));
	strbuf_release(&req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_agent__refuses_secret_readable_by_others),
		T(test_agent__refuses_bad_signature_and_unsigned),
		T(test_agent__sighup_rotates_the_secret),
		T(test_agent__refuses_clock_skew_either_way),
		T(test_agent__refuses_replay),
		T(test_agent__refuses_stale_epoch_and_remembers_it),
		T(test_agent__ensure_is_idempotent),
		T(test_agent__remove_is_idempotent),
		T(test_agent__stop_syncs_before_stopping),
		T(test_agent__running_workspaces_sync_periodically),
		T(test_agent__failed_sync_does_not_stop),
		T(test_agent__no_wait_stop_answers_at_once_stops_after_sync),
		T(test_agent__no_wait_stop_with_failing_sync_keeps_running),
		T(test_agent__no_wait_remove_syncs_then_removes),
		T(test_agent__failed_restore_forbids_sync_back),
		T(test_agent__expected_snapshot_missing_fails),
		T(test_agent__files_survive_remove_and_restore),
		T(test_agent__workspace_gets_a_minimal_environment),
		T(test_agent__ready_only_when_endpoint_answers),
		T(test_agent__crash_is_restarted_with_backoff),
		T(test_agent__sigterm_leaves_workspaces_running),
		T(test_agent__sigterm_finishes_inflight_requests),
		T(test_agent__drain_deadline_answers_draining),
		T(test_agent__draining_refuses_new_requests_on_kept_alive_connections),
		T(test_agent__kill_workspaces_ends_what_the_agent_left),
		T(test_agent__limits_are_json_errors),
		T(test_agent__oversized_header_gets_the_librarys_431),
#undef T
	};

	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
