/*
 * bench_agent: observe N real spinup-agent processes concurrently with the
 * HTTP driver, and time single signed calls. Prints markdown table rows
 * "| name | value | unit |". N = $BENCH_AGENTS (default 50).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "drivers/agenthttp.h"
#include "model/strbuf.h"
#include "tests/lib/agentfx.h"

#define ROUNDS 30
#define AGENTS_MAX 200
#define READY_ROUNDS 8

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	static struct agentfx *f[AGENTS_MAX];
	static struct agent_target t[AGENTS_MAX];
	static struct obs_agent out[AGENTS_MAX];
	double obs[ROUNDS], one[ROUNDS], ready[READY_ROUNDS], t0;
	struct strbuf secret = STRBUF_INIT, resp = STRBUF_INIT;
	struct agentc *c = NULL;
	const char *env = getenv("BENCH_AGENTS");
	int n = env ? (int)strtol(env, NULL, 10) : 50, i, r, rc = 1, bad = 0;
	char addr[32];

	if (n < 1 || n > AGENTS_MAX)
		n = 50;
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (i = 0; i < n; i++) {
		snprintf(addr, sizeof(addr), "127.0.%d.%d", 3 + i / 250, 1 + i % 250);
		f[i] = agentfx_new(addr);
		if (!f[i])
			goto out;
		if (i == 0)
			agentfx_read(f[0]->secret, &secret);
		else
			agentfx_write(f[i]->secret, secret.buf, 0600);
		if (agentfx_start(f[i], NULL) < 0) {
			fprintf(stderr, "bench_agent: agent %d did not start\n", i);
			goto out;
		}
		t[i] = f[i]->target;
		obs_agent_init(&out[i]);
	}
	c = agentfx_client(f[0]);
	if (!c)
		goto out;
	for (r = 0; r < ROUNDS; r++) {
		t0 = now_ms();
		agentc_observe(c, t, (size_t)n, 0, out, NULL);
		obs[r] = now_ms() - t0;
		for (i = 0; i < n; i++)
			bad += !out[i].observed;
		t0 = now_ms();
		agentfx_call(c, f[0], 0, "GET", "/v1/health", NULL, &resp);
		one[r] = now_ms() - t0;
	}
	for (r = 0; r < READY_ROUNDS; r++) {
		char path[64], body[128];
		int k;

		snprintf(path, sizeof(path), "/v1/containers/%d", 1000 + r);
		snprintf(body, sizeof(body), "{\"workspace_id\":%d}", 1000 + r);
		t0 = now_ms();
		agentfx_call(c, f[0], 0, "PUT", path, body, &resp);
		for (k = 0; k < 4000; k++) {
			agentfx_call(c, f[0], 0, "GET", path, NULL, &resp);
			if (strstr(resp.buf, "\"ready\":true"))
				break;
			agentfx_sleep_ms(2);
		}
		ready[r] = now_ms() - t0;
		agentfx_call(c, f[0], 0, "DELETE", path, "{\"sync\":false}", &resp);
	}
	qsort(ready, READY_ROUNDS, sizeof(double), cmp);
	qsort(obs, ROUNDS, sizeof(double), cmp);
	qsort(one, ROUNDS, sizeof(double), cmp);
	printf("| agent: observe %d agents concurrently (health+list), median | %.1f | ms |\n", n,
	       obs[ROUNDS / 2]);
	printf("| agent: observe %d agents concurrently, p95 | %.1f | ms |\n", n,
	       obs[ROUNDS * 95 / 100]);
	printf("| agent: observations that failed | %d | of %d |\n", bad, n * ROUNDS);
	printf("| agent: one signed call round trip, median | %.2f | ms |\n", one[ROUNDS / 2]);
	printf("| agent: ensure to ready, built-in workspace (process runtime), median | %.0f | ms |\n",
	       ready[READY_ROUNDS / 2]);
	rc = 0;
out:
	for (i = 0; i < n; i++) {
		obs_agent_release(&out[i]);
		agentfx_free(f[i]);
	}
	agentc_free(c);
	strbuf_release(&secret);
	strbuf_release(&resp);
	return rc;
}
