/* test_config: spinupd's key=value configuration (reconciler/config.c) and /metrics text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reconciler/config.h"
#include "reconciler/loop.h"
#include "reconciler/metrics.h"
#include "model/strbuf.h"
#include "model/banned.h"

static char path[64];

static void write_file(const char *text, mode_t mode)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/spinupd-cfg-%d.conf", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void test_config__parses_keys_and_defaults(void **state)
{
	struct config c;
	struct err e = ERR_INIT;

	(void)state;
	write_file("# comment\n\nperiod_ms = 2500\n  cloud=sim \nlease_key = spinup:x\n"
		   "plan_destructive_budget = 3\ndebug = yes\nsim_seed = 18446744073709551615\n",
		   0644);
	if (config_load(path, &c, &e))
		fail_msg("config_load: %s", e.msg);
	assert_int_equal(c.period_ms, 2500);
	assert_string_equal(c.cloud, "sim");
	assert_string_equal(c.lease_key, "spinup:x");
	assert_int_equal(c.plan.destructive_budget, 3);
	assert_int_equal(c.debug, 1);
	assert_true(c.sim_seed == UINT64_MAX);
	assert_int_equal(c.lease_ttl_ms, 15000);           /* a default */
	assert_int_equal(c.history_days, 14);
	assert_true(c.holder[0] != '\0');                  /* host:pid */
}

static void test_config__errors_name_file_line_col(void **state)
{
	struct config c;
	struct err e = ERR_INIT;

	(void)state;
	config_defaults(&c);
	c.period_ms = 777;
	write_file("period_ms = 10\n   bogus = 1\n", 0644);
	assert_int_equal(config_load(path, &c, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, ":2:4: unknown key 'bogus'"));
	assert_int_equal(c.period_ms, 777);                /* untouched on failure */
	write_file("period_ms = 5\n", 0644);
	assert_int_equal(config_load(path, &c, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, ":1:13: period_ms: 5 is out of range"));
	write_file("lease_ttl_ms = soon\n", 0644);
	assert_int_equal(config_load(path, &c, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "not a number"));
	write_file("no equals sign\n", 0644);
	assert_int_equal(config_load(path, &c, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, ":1:1: expected key = value"));
}

static void test_config__secret_file_readable_by_others_refused(void **state)
{
	struct config c;
	struct err e = ERR_INIT;

	(void)state;
	write_file("database_url = postgresql://op:hunter2@db/spinup\n", 0644);
	assert_int_equal(config_load(path, &c, &e), SP_EDENIED);
	assert_null(strstr(e.msg, "hunter2"));             /* the secret is not echoed */
	write_file("database_url = postgresql://op:hunter2@db/spinup\n", 0600);
	assert_int_equal(config_load(path, &c, &e), 0);
	write_file("database_url = postgresql://op@db/spinup\n", 0644);  /* no password */
	assert_int_equal(config_load(path, &c, &e), 0);
}

static void test_config__environment_fills_what_the_file_leaves(void **state)
{
	struct config c;
	struct err e = ERR_INIT;

	(void)state;
	setenv("DATABASE_URL", "postgresql://env/db", 1);
	setenv("REDIS_URL", "redis://127.0.0.1:1/0", 1);
	write_file("redis_url = redis://file:6379/0\ncloud = sim\nagent = sim\n", 0600);
	assert_int_equal(config_load(path, &c, &e), 0);
	assert_string_equal(c.database_url, "postgresql://env/db");
	assert_string_equal(c.redis_url, "redis://file:6379/0");
	assert_int_equal(config_validate(&c, &e), 0);
}

static void test_config__validate_refuses_bad_combinations(void **state)
{
	struct config c;
	struct err e = ERR_INIT;

	(void)state;
	config_defaults(&c);
	/* The defaults are the production drivers: never the simulator by accident. */
	assert_string_equal(c.cloud, "aws");
	assert_string_equal(c.agent, "http");
	str_copy(c.cloud, sizeof(c.cloud), "sim");
	str_copy(c.agent, sizeof(c.agent), "sim");
	str_copy(c.database_url, sizeof(c.database_url), "postgresql://x/y");
	str_copy(c.redis_url, sizeof(c.redis_url), "redis://x:1/0");
	assert_int_equal(config_validate(&c, &e), 0);
	str_copy(c.cloud, sizeof(c.cloud), "gcp");
	assert_int_equal(config_validate(&c, &e), SP_EINVAL);
	str_copy(c.cloud, sizeof(c.cloud), "aws");
	assert_int_equal(config_validate(&c, &e), SP_EINVAL);   /* aws with sim agents */
	str_copy(c.agent, sizeof(c.agent), "http");
	assert_int_equal(config_validate(&c, &e), SP_EINVAL);   /* no secret file */
	assert_non_null(strstr(e.msg, "agent_secret_file"));
	str_copy(c.agent_secret_file, sizeof(c.agent_secret_file), "/etc/spinup/secret");
	assert_int_equal(config_validate(&c, &e), 0);
	str_copy(c.metrics_addr, sizeof(c.metrics_addr), "0.0.0.0:9100");
	assert_int_equal(config_validate(&c, &e), SP_EINVAL);   /* loopback only */
}

static void test_config__metrics_text_is_prometheus(void **state)
{
	struct loop_metrics m;
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.passes = 7;
	m.leader = 1;
	m.epoch = 3;
	m.notify_wakeups = 2;
	m.actions[ACT_ENSURE_CONTAINER] = 4;
	m.actions[ACT_MAX] = 1;
	m.pass_ms_buckets[0] = 5;
	m.pass_ms_buckets[7] = 2;
	assert_int_equal(metrics_format(&m, &sb), 0);
	assert_non_null(strstr(sb.buf, "# TYPE spinup_passes_total counter\nspinup_passes_total 7\n"));
	assert_non_null(strstr(sb.buf, "spinup_leader 1\n"));
	assert_non_null(strstr(sb.buf, "spinup_epoch 3\n"));
	assert_non_null(strstr(sb.buf, "spinup_notify_wakeups_total 2\n"));
	assert_non_null(strstr(sb.buf, "spinup_actions_total{type=\"ensure_container\"} 4\n"));
	assert_non_null(strstr(sb.buf, "spinup_actions_total{type=\"failed\"} 1\n"));
	/* cumulative buckets */
	assert_non_null(strstr(sb.buf, "spinup_pass_duration_ms_bucket{le=\"10\"} 5\n"));
	assert_non_null(strstr(sb.buf, "spinup_pass_duration_ms_bucket{le=\"5000\"} 5\n"));
	assert_non_null(strstr(sb.buf, "spinup_pass_duration_ms_bucket{le=\"+Inf\"} 7\n"));
	assert_non_null(strstr(sb.buf, "spinup_pass_duration_ms_count 7\n"));
	assert_null(strstr(sb.buf, "spinup_sim_containers"));    /* sim gauges only with sim */
	strbuf_release(&sb);
}

/* Workspaces by phase and drift after the last pass: in /metrics and the /status text. */
static void test_config__metrics_phases_and_status(void **state)
{
	struct loop_metrics m;
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.leader = 1;
	m.epoch = 4;
	m.passes = 10;
	m.healthy = 1;
	m.last_pass_ms = 12;
	m.last_pass_at = 1000000;
	m.workspaces = 3;
	m.phases[PHASE_READY] = 2;
	m.phases[PHASE_STOPPED] = 1;
	m.drift_findings = 5;
	m.actions_planned = 1;
	str_copy(m.last_outcome, sizeof(m.last_outcome), "acted");
	assert_int_equal(metrics_format(&m, &sb), 0);
	assert_non_null(strstr(sb.buf, "spinup_workspaces{phase=\"READY\"} 2\n"));
	assert_non_null(strstr(sb.buf, "spinup_workspaces{phase=\"STOPPED\"} 1\n"));
	assert_non_null(strstr(sb.buf, "spinup_workspaces{phase=\"PENDING\"} 0\n"));
	assert_non_null(strstr(sb.buf, "spinup_drift_findings 5\n"));
	strbuf_reset(&sb);
	assert_int_equal(metrics_status(&m, 1030000, &sb), 0);
	assert_non_null(strstr(sb.buf, "leader:      yes (fencing epoch 4)\n"));
	assert_non_null(strstr(sb.buf, "last pass:   acted, 12 ms, 30 s ago, 1 actions planned\n"));
	assert_non_null(strstr(sb.buf, "workspaces:  3 (READY 2, STOPPED 1)\n"));
	assert_non_null(strstr(sb.buf, "drift:       5 findings"));
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config__metrics_phases_and_status),
		cmocka_unit_test_teardown(test_config__parses_keys_and_defaults, teardown),
		cmocka_unit_test_teardown(test_config__errors_name_file_line_col, teardown),
		cmocka_unit_test_teardown(test_config__secret_file_readable_by_others_refused, teardown),
		cmocka_unit_test_teardown(test_config__environment_fills_what_the_file_leaves, teardown),
		cmocka_unit_test(test_config__validate_refuses_bad_combinations),
		cmocka_unit_test(test_config__metrics_text_is_prometheus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
