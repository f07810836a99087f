/*
 * test_agenthttp: the HTTP agent driver against real spinup-agent
 * processes (concurrent observe, unknown-not-empty, mutations, fencing,
 * error mapping), against a misbehaving agent, and the agent's docker
 * runtime against a recorded Docker Engine API served on loopback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>

#include "drivers/agenthttp.h"
#include "model/observed.h"
#include "model/strbuf.h"
#include "tests/lib/agentfx.h"

#define NAGENTS 3

struct ctx {
	struct agentfx *f[NAGENTS];
	struct agentc *c;
	struct MHD_Daemon *fake;
};

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	struct strbuf secret = STRBUF_INIT;
	static int n;
	char addr[32];
	int i;

	if (!x)
		return -1;
	for (i = 0; i < NAGENTS; i++) {
		snprintf(addr, sizeof(addr), "127.%d.1.%d", 100 + getpid() % 100, 10 + (n++ % 200));
		x->f[i] = agentfx_new(addr);
		if (!x->f[i])
			return -1;
	}
	/* one shared secret, as in a real deployment */
	agentfx_read(x->f[0]->secret, &secret);
	for (i = 1; i < NAGENTS; i++)
		agentfx_write(x->f[i]->secret, secret.buf, 0600);
	strbuf_release(&secret);
	x->c = agentfx_client(x->f[0]);
	*state = x;
	return x->c ? 0 : -1;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	int i;

	if (x->fake)
		MHD_stop_daemon(x->fake);
	agentc_free(x->c);
	for (i = 0; i < NAGENTS; i++)
		agentfx_free(x->f[i]);
	free(x);
	return 0;
}

static void start_agent(struct agentfx *f, const char *const *extra)
{
	const char *argv[24] = { "--port-range", "24000-24999", NULL };
	int n = 2, i;

	for (i = 0; extra && extra[i] && n < 22; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	assert_int_equal(agentfx_start(f, argv), 0);
}

static struct container_req req_for(int64_t id)
{
	struct container_req r;

	memset(&r, 0, sizeof(r));
	r.workspace_id = id;
	snprintf(r.workspace_name, sizeof(r.workspace_name), "ws%lld", (long long)id);
	snprintf(r.image, sizeof(r.image), "codercom/code-server:4.19.0");
	r.cpu_milli = 500;
	r.memory_mib = 512;
	snprintf(r.bucket, sizeof(r.bucket), "bucket");
	snprintf(r.prefix, sizeof(r.prefix), "p%lld", (long long)id);
	return r;
}

/* Observe one agent until its container id has state want (10 s at most). */
static int wait_state(struct ctx *x, const struct agent_target *t, int64_t id,
		      enum container_state want, struct obs_container *out)
{
	struct obs_agent a;
	size_t k;
	int i, found = 0;

	obs_agent_init(&a);
	for (i = 0; i < 200 && !found; i++) {
		if (agentc_observe(x->c, t, 1, 0, &a, NULL) == 0 && a.observed) {
			for (k = 0; k < a.ncontainers; k++) {
				if (a.containers[k].workspace_id == id &&
				    a.containers[k].state == want) {
					found = 1;
					if (out)
						*out = a.containers[k];
				}
			}
		}
		if (!found)
			agentfx_sleep_ms(50);
	}
	obs_agent_release(&a);
	return found;
}

/* One observation of one agent; 1 when it listed container id (copied to out). */
static int observe_ct(struct ctx *x, const struct agent_target *t, int64_t id,
		      struct obs_container *out)
{
	struct obs_agent a;
	size_t k;
	int found = 0;

	obs_agent_init(&a);
	if (agentc_observe(x->c, t, 1, 0, &a, NULL) == 0 && a.observed)
		for (k = 0; k < a.ncontainers; k++)
			if (a.containers[k].workspace_id == id) {
				*out = a.containers[k];
				found = 1;
			}
	obs_agent_release(&a);
	return found;
}

/* ---- real agents ------------------------------------------------------------------------ */

static void test_agenthttp__observes_agents_concurrently_unreachable_is_unknown(void **state)
{
	struct ctx *x = *state;
	struct agent_target t[NAGENTS + 1];
	struct obs_agent out[NAGENTS + 1];
	struct container_req r = req_for(101);
	struct err e = ERR_INIT;
	int i;

	for (i = 0; i < NAGENTS; i++) {
		start_agent(x->f[i], NULL);
		t[i] = x->f[i]->target;
	}
	/* a fourth instance whose agent is not there */
	memset(&t[NAGENTS], 0, sizeof(t[NAGENTS]));
	snprintf(t[NAGENTS].instance_id, sizeof(t[NAGENTS].instance_id), "i-gone");
	snprintf(t[NAGENTS].address, sizeof(t[NAGENTS].address), "127.0.1.250");
	t[NAGENTS].port = agentfx_free_port("127.0.1.250");
	assert_int_equal(agentc_ensure(x->c, &t[1], 0, &r, &e), 0);
	assert_true(wait_state(x, &t[1], 101, CS_RUNNING, NULL));
	for (i = 0; i <= NAGENTS; i++) {
		obs_agent_init(&out[i]);
		out[i].ncontainers = 0;
	}
	assert_int_equal(agentc_observe(x->c, t, NAGENTS + 1, 0, out, &e), 0);
	for (i = 0; i < NAGENTS; i++) {
		assert_int_equal(out[i].observed, 1);
		assert_int_equal(out[i].healthy, 1);
		assert_int_equal(out[i].capacity, 8);
		assert_string_equal(out[i].instance_id, t[i].instance_id);
		assert_int_equal(out[i].ncontainers, i == 1 ? 1 : 0);
	}
	assert_string_equal(out[1].containers[0].name, "spinup-101");
	assert_int_equal(out[1].containers[0].workspace_id, 101);
	/* unknown, not empty */
	assert_int_equal(out[NAGENTS].observed, 0);
	assert_string_equal(out[NAGENTS].instance_id, "i-gone");
	assert_true(strlen(out[NAGENTS].error) > 0);
	assert_non_null(strstr(out[NAGENTS].error, "i-gone"));
	/* a second pass over the same out[] replaces, never appends */
	assert_int_equal(agentc_observe(x->c, t, NAGENTS + 1, 0, out, &e), 0);
	assert_int_equal(out[1].ncontainers, 1);
	for (i = 0; i <= NAGENTS; i++)
		obs_agent_release(&out[i]);
}

static void test_agenthttp__mutations_roundtrip(void **state)
{
	struct ctx *x = *state;
	struct agent_target *t = &x->f[0]->target;
	struct container_req r = req_for(102);
	struct obs_container c;
	struct obs_agent a;
	struct err e = ERR_INIT;

	start_agent(x->f[0], NULL);
	assert_int_equal(agentc_ensure(x->c, t, 0, &r, &e), 0);
	assert_int_equal(agentc_ensure(x->c, t, 0, &r, &e), 0);   /* idempotent */
	assert_true(wait_state(x, t, 102, CS_RUNNING, &c));
	assert_int_equal(agentc_sync(x->c, t, 0, 102, &e), 0);
	assert_int_equal(agentc_stop(x->c, t, 0, 102, 1, &e), 0);
	assert_true(wait_state(x, t, 102, CS_STOPPED, &c));
	assert_int_equal(c.ready, 0);
	assert_int_equal(c.last_sync, SYNC_NONE);   /* no sync command configured */
	assert_int_equal(agentc_ensure(x->c, t, 0, &r, &e), 0);   /* start again */
	assert_true(wait_state(x, t, 102, CS_RUNNING, &c));
	assert_int_equal(agentc_remove(x->c, t, 0, 102, 1, &e), 0);
	assert_int_equal(agentc_remove(x->c, t, 0, 102, 1, &e), 0);   /* missing is success */
	obs_agent_init(&a);
	assert_int_equal(agentc_observe(x->c, t, 1, 0, &a, &e), 0);
	assert_int_equal(a.observed, 1);
	assert_int_equal(a.ncontainers, 0);
	obs_agent_release(&a);
	assert_int_equal(agentc_stop(x->c, t, 0, 102, 1, &e), SP_ENOTFOUND);
	assert_non_null(strstr(e.msg, "not_found"));
}

/*
 * Sync, stop and remove never wait for the agent's sync command: with a
 * sync of 3 s and a call timeout of 1 s each call succeeds (202, accepted)
 * well within the timeout; the observation shows the op pending, then its
 * outcome: stopped after a good sync, still running after a failed one.
 */
static void test_agenthttp__slow_sync_is_accepted_not_waited_for(void **state)
{
	struct ctx *x = *state;
	struct agenthttp_opts o = { x->f[0]->secret, 1000, 3000, 1000, 0 };
	struct agent_target *t = &x->f[0]->target, *t2 = &x->f[1]->target;
	struct container_req r = req_for(106), r2 = req_for(107);
	char sync[PATH_MAX + 128];
	const char *extra[] = { "--sync-cmd", sync, NULL };
	const char *failing[] = { "--sync-cmd", "sleep 1; echo no bucket >&2; exit 3", NULL };
	struct obs_container c;
	struct agentc *d;
	struct err e = ERR_INIT;
	int i;

	snprintf(sync, sizeof(sync), "sleep 3; mkdir -p %s/{prefix} && cp -a {dir}/. %s/{prefix}/",
		 x->f[0]->bucket, x->f[0]->bucket);
	start_agent(x->f[0], extra);
	start_agent(x->f[1], failing);
	d = agenthttp_new(&o, &e);
	assert_non_null(d);
	assert_int_equal(agentc_ensure(d, t, 0, &r, &e), 0);
	assert_true(wait_state(x, t, 106, CS_RUNNING, &c));
	/* answered while the 3 s sync still runs: the stop is pending behind it */
	assert_int_equal(agentc_stop(d, t, 0, 106, 1, &e), 0);
	assert_true(observe_ct(x, t, 106, &c));
	assert_int_equal(c.state, CS_RUNNING);
	assert_int_equal(c.pending, COP_STOP);
	assert_int_equal(c.last_sync, SYNC_RUNNING);
	/* a second sync or stop meanwhile is accepted too, and waits no longer */
	assert_int_equal(agentc_sync(d, t, 0, 106, &e), 0);
	assert_int_equal(agentc_stop(d, t, 0, 106, 1, &e), 0);
	assert_int_equal(agentc_ensure(d, t, 0, &r, &e), SP_EBUSY);   /* still busy, not queued */
	assert_true(wait_state(x, t, 106, CS_STOPPED, &c));
	for (i = 0; i < 200 && observe_ct(x, t, 106, &c) && c.pending != COP_NONE; i++)
		agentfx_sleep_ms(50);   /* the sync queued behind the stop runs after it */
	assert_int_equal(c.pending, COP_NONE);
	assert_int_equal(c.last_sync, SYNC_OK);
	/* remove: accepted, gone once synced */
	assert_int_equal(agentc_ensure(d, t, 0, &r, &e), 0);
	assert_true(wait_state(x, t, 106, CS_RUNNING, &c));
	assert_int_equal(agentc_remove(d, t, 0, 106, 1, &e), 0);
	assert_true(observe_ct(x, t, 106, &c));
	assert_int_equal(c.pending, COP_REMOVE);
	for (i = 0; i < 200 && observe_ct(x, t, 106, &c); i++)
		agentfx_sleep_ms(50);
	assert_false(observe_ct(x, t, 106, &c));
	/* a failing sync: accepted, then the container keeps running, last_sync failed */
	assert_int_equal(agentc_ensure(d, t2, 0, &r2, &e), 0);
	assert_true(wait_state(x, t2, 107, CS_RUNNING, &c));
	assert_int_equal(agentc_stop(d, t2, 0, 107, 1, &e), 0);
	for (i = 0; i < 200 && observe_ct(x, t2, 107, &c) && c.last_sync != SYNC_FAILED; i++)
		agentfx_sleep_ms(50);
	assert_int_equal(c.last_sync, SYNC_FAILED);
	assert_int_equal(c.state, CS_RUNNING);
	assert_int_equal(c.pending, COP_NONE);
	assert_non_null(strstr(c.message, "no bucket"));
	agentc_free(d);
}

static void test_agenthttp__stale_epoch_is_fenced(void **state)
{
	struct ctx *x = *state;
	struct agent_target *t = &x->f[0]->target;
	struct container_req r = req_for(103);
	struct obs_agent a;
	struct err e = ERR_INIT;

	start_agent(x->f[0], NULL);
	obs_agent_init(&a);
	assert_int_equal(agentc_observe(x->c, t, 1, 9, &a, &e), 0);
	assert_int_equal(a.max_epoch_seen, 9);
	assert_int_equal(agentc_ensure(x->c, t, 8, &r, &e), SP_EFENCED);
	assert_non_null(strstr(e.msg, "stale_epoch"));
	assert_int_equal(agentc_remove(x->c, t, 8, 103, 0, &e), SP_EFENCED);
	assert_int_equal(agentc_observe(x->c, t, 1, 8, &a, &e), SP_EFENCED);
	assert_int_equal(a.observed, 0);
	assert_non_null(strstr(a.error, "stale_epoch"));
	assert_int_equal(agentc_ensure(x->c, t, 10, &r, &e), 0);
	obs_agent_release(&a);
}

static void test_agenthttp__agent_errors_map_to_codes(void **state)
{
	struct ctx *x = *state;
	struct agent_target *t = &x->f[0]->target;
	const char *extra[] = { "--capacity", "1", NULL };
	struct container_req r1 = req_for(104), r2 = req_for(105);
	struct err e = ERR_INIT;

	start_agent(x->f[0], extra);
	assert_int_equal(agentc_ensure(x->c, t, 0, &r1, &e), 0);
	assert_int_equal(agentc_ensure(x->c, t, 0, &r2, &e), SP_EBUSY);
	assert_non_null(strstr(e.msg, "at_capacity"));
	assert_int_equal(agentc_sync(x->c, t, 0, 999, &e), SP_ENOTFOUND);
	r2.workspace_id = 0;   /* /v1/containers/0 names no container */
	assert_int_equal(agentc_ensure(x->c, t, 0, &r2, &e), SP_ENOTFOUND);
}

/* ---- a misbehaving agent ---------------------------------------------------------------- */

static enum MHD_Result fake_agent(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	static int marker;
	const char *mode = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *body;

	(void)method;
	(void)version;
	(void)data;
	(void)size;
	if (*con_cls == NULL) {
		*con_cls = &marker;
		return MHD_YES;
	}
	if (!strcmp(url, "/v1/health")) {
		body = strdup(!strcmp(mode, "garbage") ? "<html>not json" :
			      "{\"status\":\"ok\",\"capacity\":4,\"max_epoch_seen\":0}");
	} else if (!strcmp(mode, "huge")) {
		size_t n = 2 * 1024 * 1024, i;

		body = malloc(n + 1);
		for (i = 0; body && i < n; i++)
			body[i] = ' ';
		if (body)
			body[n] = '\0';
	} else {
		body = strdup("{\"containers\":[{\"name\":\"spinup-1\",\"workspace_id\":1,"
			      "\"state\":\"sideways\"}]}");
	}
	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static struct MHD_Daemon *serve(const char *addr, int port, MHD_AccessHandlerCallback cb,
				void *cls)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &sin.sin_addr);
	return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, cb,
				cls, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_END);
}

static void test_agenthttp__bad_answers_are_unknown(void **state)
{
	struct ctx *x = *state;
	static const char *const modes[] = { "garbage", "huge", "badstate" };
	static const char *const want[] = { "health answer", "larger than", "unknown value" };
	struct agent_target t = x->f[0]->target;
	struct obs_agent a;
	struct err e = ERR_INIT;
	size_t i;

	for (i = 0; i < 3; i++) {
		x->fake = serve(t.address, t.port, fake_agent, (void *)modes[i]);
		assert_non_null(x->fake);
		obs_agent_init(&a);
		assert_int_equal(agentc_observe(x->c, &t, 1, 0, &a, &e), 0);
		assert_int_equal(a.observed, 0);
		assert_int_equal(a.ncontainers, 0);
		if (!strstr(a.error, want[i]))
			fail_msg("mode %s: error '%s' lacks '%s'", modes[i], a.error, want[i]);
		obs_agent_release(&a);
		MHD_stop_daemon(x->fake);
		x->fake = NULL;
	}
}

/*
 * More agents than connections: transfers go out in a window of
 * max_connections, every target gets its answer in its own slot, the real
 * agents (spread through the list) observed, the rest unknown.
 */
static void test_agenthttp__observes_more_agents_than_connections(void **state)
{
	enum { N = 300 };
	struct ctx *x = *state;
	struct agenthttp_opts o = { x->f[0]->secret, 1000, 3000, 3000, 4 };
	static struct agent_target t[N];
	static struct obs_agent out[N];
	struct agentc *c;
	struct err e = ERR_INIT;
	int i, port = agentfx_free_port("127.0.2.1");

	for (i = 0; i < NAGENTS; i++)
		start_agent(x->f[i], NULL);
	for (i = 0; i < N; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		snprintf(t[i].instance_id, sizeof(t[i].instance_id), "i-%017x", i);
		snprintf(t[i].address, sizeof(t[i].address), "127.0.2.%d", 1 + i % 250);
		t[i].port = port;
		obs_agent_init(&out[i]);
	}
	t[0] = x->f[0]->target;
	t[N / 2] = x->f[1]->target;
	t[N - 1] = x->f[2]->target;
	c = agenthttp_new(&o, &e);
	assert_non_null(c);
	assert_int_equal(agentc_observe(c, t, N, 0, out, &e), 0);
	for (i = 0; i < N; i++) {
		int real = i == 0 || i == N / 2 || i == N - 1;
		assert_string_equal(out[i].instance_id, t[i].instance_id);
		assert_int_equal(out[i].observed, real);
		if (real)
			assert_int_equal(out[i].healthy, 1);
		else
			assert_non_null(strstr(out[i].error, t[i].instance_id));
	}
	/* again on the same driver: handles and connections reused, same answers */
	assert_int_equal(agentc_observe(c, t, N, 0, out, &e), 0);
	assert_int_equal(out[N / 2].observed, 1);
	assert_int_equal(out[1].observed, 0);
	for (i = 0; i < N; i++)
		obs_agent_release(&out[i]);
	agentc_free(c);
}

static void test_agenthttp__silent_agent_times_out_as_unknown(void **state)
{
	struct ctx *x = *state;
	struct agenthttp_opts o = { x->f[0]->secret, 200, 300, 300, 0 };
	struct agent_target t[2] = { x->f[0]->target, x->f[1]->target };
	struct sockaddr_in sin;
	struct obs_agent a[2];
	struct agentc *c;
	struct err e = ERR_INIT;
	int fd;

	/* t[0]: a socket that accepts connections (backlog) but never answers */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)t[0].port);
	inet_pton(AF_INET, t[0].address, &sin.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	start_agent(x->f[1], NULL);
	c = agenthttp_new(&o, &e);
	assert_non_null(c);
	obs_agent_init(&a[0]);
	obs_agent_init(&a[1]);
	assert_int_equal(agentc_observe(c, t, 2, 0, a, &e), 0);
	assert_int_equal(a[0].observed, 0);
	assert_non_null(strstr(a[0].error, "imeout"));
	assert_int_equal(a[1].observed, 1);   /* the silent one does not hold up the others */
	assert_int_equal(agentc_sync(c, &t[0], 0, 1, &e), SP_ETIMEOUT);
	obs_agent_release(&a[0]);
	obs_agent_release(&a[1]);
	agentc_free(c);
	close(fd);
}

/* ---- docker runtime against a recorded Engine API ---------------------------------------- */

#define CID "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2"

struct engine {
	pthread_mutex_t mu;
	int exists, running, exit_code, foreign, have_image, fail_delete;
	char calls[2048];
	char create_body[4096];
};

struct upload {
	struct strbuf body;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
								 MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Api-Version", "1.43");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* The Engine API's inspect document, trimmed to the fields documented as always present. */
static void inspect_doc(struct engine *en, char *out, size_t n)
{
	snprintf(out, n,
		 "{\"Id\":\"" CID "\",\"Created\":\"2026-11-23T02:00:00.000000000Z\","
		 "\"Name\":\"/spinup-77\",\"RestartCount\":0,"
		 "\"State\":{\"Status\":\"%s\",\"Running\":%s,\"Paused\":false,\"Restarting\":false,"
		 "\"OOMKilled\":false,\"Dead\":false,\"Pid\":%d,\"ExitCode\":%d,\"Error\":\"\","
		 "\"StartedAt\":\"2026-11-23T02:00:01.000000000Z\","
		 "\"FinishedAt\":\"0001-01-01T00:00:00Z\"},"
		 "\"Config\":{\"Image\":\"codercom/code-server:4.19.0\","
		 "\"Labels\":{\"spinup.workspace-id\":\"%s\"}}}",
		 en->running ? "running" : "exited", en->running ? "true" : "false",
		 en->running ? 4242 : 0, en->exit_code, en->foreign ? "999" : "77");
}

static enum MHD_Result engine_route(struct engine *en, struct MHD_Connection *c,
				    const char *url, const char *method, struct upload *u)
{
	const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
	const char *force = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "force");
	const char *from = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fromImage");
	const char *grace = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "t");
	char doc[2048];
	size_t l = strlen(en->calls);

	snprintf(en->calls + l, sizeof(en->calls) - l, "%s %s%s%s%s%s%s%s%s\n", method, url,
		 name ? " name=" : "", name ? name : "", force ? " force" : "",
		 from ? " fromImage=" : "", from ? from : "", grace ? " t=" : "",
		 grace ? grace : "");
	if (!strcmp(url, "/v1.43/images/codercom/code-server:4.19.0/json") &&
	    !strcmp(method, "GET"))
		return en->have_image ? reply(c, 200, "{\"Id\":\"sha256:9a5b\",\"RepoTags\":"
					      "[\"codercom/code-server:4.19.0\"]}")
				      : reply(c, 404, "{\"message\":\"No such image: "
					      "codercom/code-server:4.19.0\"}");
	if (!strcmp(url, "/v1.43/images/create") && !strcmp(method, "POST")) {
		en->have_image = 1;   /* the pull's progress stream, shortened */
		return reply(c, 200, "{\"status\":\"Pulling from codercom/code-server\","
			     "\"id\":\"4.19.0\"}\n{\"status\":\"Status: Downloaded newer image "
			     "for codercom/code-server:4.19.0\"}\n");
	}
	if (!strcmp(url, "/v1.43/containers/create") && !strcmp(method, "POST") &&
	    !en->have_image)
		return reply(c, 404, "{\"message\":\"No such image: codercom/code-server:4.19.0\"}");
	if (!strcmp(url, "/v1.43/containers/create") && !strcmp(method, "POST")) {
		if (en->exists || en->foreign)
			return reply(c, 409, "{\"message\":\"Conflict. The container name "
				     "\\\"/spinup-77\\\" is already in use by container \\\"" CID
				     "\\\". You have to remove (or rename) that container to be "
				     "able to reuse that name.\"}");
		snprintf(en->create_body, sizeof(en->create_body), "%s", u->body.buf);
		en->exists = 1;
		return reply(c, 201, "{\"Id\":\"" CID "\",\"Warnings\":[]}");
	}
	if (strncmp(url, "/v1.43/containers/spinup-77", 27))
		return reply(c, 404, "{\"message\":\"page not found\"}");
	url += 27;
	if (!en->exists && !en->foreign)
		return reply(c, 404, "{\"message\":\"No such container: spinup-77\"}");
	if (!strcmp(url, "/json") && !strcmp(method, "GET")) {
		inspect_doc(en, doc, sizeof(doc));
		return reply(c, 200, doc);
	}
	if (!strcmp(url, "/start")) {
		if (en->running)
			return reply(c, 304, "");
		en->running = 1;
		en->exit_code = 0;
		return reply(c, 204, "");
	}
	if (!strcmp(url, "/stop") || !strcmp(url, "/kill")) {
		if (!en->running)
			return reply(c, !strcmp(url, "/stop") ? 304 : 409,
				     !strcmp(url, "/stop") ? "" :
				     "{\"message\":\"Container " CID " is not running\"}");
		en->running = 0;
		return reply(c, 204, "");
	}
	if (!*url && !strcmp(method, "DELETE")) {
		if (en->fail_delete)
			return reply(c, 500, "{\"message\":\"driver failed removing container\"}");
		en->exists = en->running = 0;
		return reply(c, 204, "");
	}
	return reply(c, 404, "{\"message\":\"page not found\"}");
}

static enum MHD_Result engine(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *data,
			      size_t *size, void **con_cls)
{
	struct engine *en = cls;
	struct upload *u = *con_cls;
	enum MHD_Result ret;

	(void)version;
	if (!u) {
		u = calloc(1, sizeof(*u));
		strbuf_init(&u->body, 65536);
		*con_cls = u;
		return MHD_YES;
	}
	if (*size) {
		strbuf_add(&u->body, data, *size);
		*size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&en->mu);
	ret = engine_route(en, c, url, method, u);
	pthread_mutex_unlock(&en->mu);
	return ret;
}

static void engine_done(void *cls, struct MHD_Connection *c, void **con_cls,
			enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (u) {
		strbuf_release(&u->body);
		free(u);
	}
}

static void engine_calls(struct engine *en, char *out, size_t n)
{
	pthread_mutex_lock(&en->mu);
	snprintf(out, n, "%s", en->calls);
	pthread_mutex_unlock(&en->mu);
}

/* Serve the recorded Engine API on a unix socket at path. */
static struct MHD_Daemon *engine_listen(struct engine *en, const char *path)
{
	struct sockaddr_un sun;
	struct MHD_Daemon *d;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 16) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, engine, en,
			     MHD_OPTION_NOTIFY_COMPLETED, engine_done, NULL,
			     MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_END);
	if (!d)
		close(fd);
	return d;
}

static void test_agenthttp__docker_runtime_against_recorded_engine_api(void **state)
{
	struct ctx *x = *state;
	struct agentfx *f = x->f[0];
	struct agent_target *t = &f->target;
	struct engine en;
	struct container_req r = req_for(77);
	struct obs_container c;
	struct err e = ERR_INIT;
	char url[128], calls[2048], want[256];
	char sock[PATH_MAX + 32];
	const char *extra[] = { "--runtime", "docker", "--docker-socket", sock, "--docker-url",
				url, NULL };
	int i;
	json_t *body;

	memset(&en, 0, sizeof(en));
	pthread_mutex_init(&en.mu, NULL);
	/* the Engine API on a unix socket, as dockerd serves it */
	snprintf(sock, sizeof(sock), "%s/docker.sock", f->tmp);
	x->fake = engine_listen(&en, sock);
	assert_non_null(x->fake);
	snprintf(url, sizeof(url), "http://localhost/v1.43");
	start_agent(f, extra);

	assert_int_equal(agentc_ensure(x->c, t, 0, &r, &e), 0);
	assert_true(wait_state(x, t, 77, CS_RUNNING, &c));
	assert_string_equal(c.name, "spinup-77");
	assert_int_equal(c.ready, 0);   /* nothing answers on the mapped port */
	engine_calls(&en, calls, sizeof(calls));
	/* no image here yet: a docker-pull job pulls it, then create and start */
	assert_non_null(strstr(calls, "GET /v1.43/images/codercom/code-server:4.19.0/json\n"
				      "POST /v1.43/images/create fromImage=codercom/code-server:4.19.0\n"
				      "POST /v1.43/containers/create name=spinup-77\n"
				      "POST /v1.43/containers/spinup-77/start\n"));
	/* the create body carries the label, the port binding and the files */
	body = json_loads(en.create_body, 0, NULL);
	assert_non_null(body);
	assert_string_equal(json_string_value(json_object_get(json_object_get(body, "Labels"),
							      "spinup.workspace-id")), "77");
	assert_string_equal(json_string_value(json_object_get(body, "Image")),
			    "codercom/code-server:4.19.0");
	snprintf(want, sizeof(want), "%d", c.port);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(json_object_get(body, "HostConfig"), "PortBindings"), "8080/tcp"), 0),
		"HostPort")), want);
	assert_non_null(strstr(json_string_value(json_array_get(json_object_get(json_object_get(
		body, "HostConfig"), "Binds"), 0)), "/workspaces/77:/home/coder/project"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(body, "HostConfig"),
							    "NanoCpus")), 500000000);
	json_decref(body);

	/* the container dies: the agent sees it, backs off, adopts the name again, restarts */
	pthread_mutex_lock(&en.mu);
	en.running = 0;
	en.exit_code = 137;
	en.calls[0] = '\0';
	pthread_mutex_unlock(&en.mu);
	for (i = 0; i < 300; i++) {
		if (observe_ct(x, t, 77, &c) && c.state == CS_RUNNING && c.restarts == 1)
			break;
		agentfx_sleep_ms(50);
	}
	assert_int_equal(c.restarts, 1);
	engine_calls(&en, calls, sizeof(calls));
	assert_non_null(strstr(calls, "POST /v1.43/containers/create name=spinup-77\n"
				      "GET /v1.43/containers/spinup-77/json\n"
				      "POST /v1.43/containers/spinup-77/start\n"));

	/* a stop is the graceful one: stop?t=10 (the engine kills after 10 s), never kill */
	pthread_mutex_lock(&en.mu);
	en.calls[0] = '\0';
	pthread_mutex_unlock(&en.mu);
	assert_int_equal(agentc_stop(x->c, t, 0, 77, 0, &e), 0);
	assert_true(wait_state(x, t, 77, CS_STOPPED, &c));
	engine_calls(&en, calls, sizeof(calls));
	assert_non_null(strstr(calls, "POST /v1.43/containers/spinup-77/stop t=10\n"));
	assert_null(strstr(calls, "/kill"));
	assert_int_equal(en.running, 0);

	/* a remove the engine refuses keeps the record: nothing is forgotten */
	pthread_mutex_lock(&en.mu);
	en.fail_delete = 1;
	pthread_mutex_unlock(&en.mu);
	assert_int_equal(agentc_remove(x->c, t, 0, 77, 0, &e), SP_EUNAVAIL);
	assert_non_null(strstr(e.msg, "driver failed removing container"));
	assert_true(observe_ct(x, t, 77, &c));
	pthread_mutex_lock(&en.mu);
	en.fail_delete = 0;
	pthread_mutex_unlock(&en.mu);
	assert_int_equal(agentc_remove(x->c, t, 0, 77, 0, &e), 0);
	assert_false(observe_ct(x, t, 77, &c));
	engine_calls(&en, calls, sizeof(calls));
	assert_non_null(strstr(calls, "DELETE /v1.43/containers/spinup-77 force\n"));
	assert_int_equal(en.exists, 0);

	/* a container of that name that is not ours is never adopted */
	pthread_mutex_lock(&en.mu);
	en.foreign = 1;
	pthread_mutex_unlock(&en.mu);
	assert_int_equal(agentc_ensure(x->c, t, 0, &r, &e), 0);
	assert_true(wait_state(x, t, 77, CS_FAILED, &c));
	assert_non_null(strstr(c.message, "is not workspace 77's"));
	MHD_stop_daemon(x->fake);
	x->fake = NULL;
	pthread_mutex_destroy(&en.mu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_agenthttp__observes_agents_concurrently_unreachable_is_unknown),
		T(test_agenthttp__mutations_roundtrip),
		T(test_agenthttp__slow_sync_is_accepted_not_waited_for),
		T(test_agenthttp__stale_epoch_is_fenced),
		T(test_agenthttp__agent_errors_map_to_codes),
		T(test_agenthttp__bad_answers_are_unknown),
		T(test_agenthttp__observes_more_agents_than_connections),
		T(test_agenthttp__silent_agent_times_out_as_unknown),
		T(test_agenthttp__docker_runtime_against_recorded_engine_api),
#undef T
	};

	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
