/*
 * test_localcloud.c - spinup-localcloud driven by the real aws cloud driver:
 * SigV4 checked, group sizes and lifecycle, instances as processes on their
 * own loopback addresses, protection on scale-in, health replacement,
 * termination, the admin endpoint and fault injection.
 *
 * Each test starts the binary ($SPINUP_BIN_DIR/spinup-localcloud) on a free
 * loopback port with an instance command that writes a marker file and
 * sleeps; the teardown always stops it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "drivers/awscloud.h"
#include "drivers/cloud.h"
#include "model/strbuf.h"
#include "model/banned.h"

struct fx {
	char dir[64];
	pid_t pid;
	int port;
	struct cloud *c;
	char url[64];
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int read_int_file(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static const char *bin_dir(void)
{
	const char *d = getenv("SPINUP_BIN_DIR");
	return d && *d ? d : "bin";
}

/* Start the provider with extra arguments (NULL-terminated). */
static void start(struct fx *f, const char *secret, ...)
{
	char exe[512], creds[128], portf[128], cmd[512], stopcmd[256];
	const char *argv[40];
	struct awscloud_config cfg;
	struct err e = ERR_INIT;
	va_list ap;
	int n = 0, i;
	const char *a;

	snprintf(exe, sizeof(exe), "%s/spinup-localcloud", bin_dir());
	snprintf(creds, sizeof(creds), "%s/credentials", f->dir);
	snprintf(portf, sizeof(portf), "%s/port", f->dir);
	write_file(creds, "[default]\naws_access_key_id = AKIDLOCALTEST\n"
			  "aws_secret_access_key = local-secret-key-0123456789\n", 0600);
	snprintf(cmd, sizeof(cmd), "echo {addr} > %s/{id}.addr; exec sleep 60", f->dir);
	snprintf(stopcmd, sizeof(stopcmd), "touch %s/{id}.stopped", f->dir);
	argv[n++] = exe;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--port-file";
	argv[n++] = portf;
	argv[n++] = "--credentials-file";
	argv[n++] = creds;
	argv[n++] = "--group";
	argv[n++] = "g1";
	argv[n++] = "--boot-delay-ms";
	argv[n++] = "100";
	argv[n++] = "--max-size";
	argv[n++] = "5";
	argv[n++] = "--instance-cmd";
	argv[n++] = cmd;
	argv[n++] = "--stop-cmd";
	argv[n++] = stopcmd;
	va_start(ap, secret);
	while ((a = va_arg(ap, const char *)) && n < 38)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 100 && (f->port = read_int_file(portf)) <= 0; i++)
		sleep_ms(50);
	assert_true(f->port > 0);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
	memset(&cfg, 0, sizeof(cfg));
	cfg.region = "us-east-1";
	cfg.endpoint = f->url;
	cfg.creds.access_key_id = "AKIDLOCALTEST";
	cfg.creds.secret_access_key = secret;
	cfg.max_attempts = 2;
	cfg.backoff_base_ms = 1;
	cfg.backoff_cap_ms = 5;
	assert_int_equal(awscloud_new(&cfg, &f->c, &e), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/spinup-lc-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	int st, i;

	cloud_free(f->c);
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		for (i = 0; i < 100 && waitpid(f->pid, &st, WNOHANG) == 0; i++)
			sleep_ms(50);
		if (i == 100) {
			kill(f->pid, SIGKILL);
			waitpid(f->pid, &st, 0);
		}
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return 0;
}

/* Describe until pred(g) holds or ~5 s pass; leaves the last answer in g. */
static int wait_group(struct fx *f, struct obs_group *g, int (*pred)(const struct obs_group *))
{
	struct err e = ERR_INIT;
	int i;

	for (i = 0; i < 100; i++) {
		obs_group_release(g);
		obs_group_init(g);
		if (!cloud_describe(f->c, "g1", g, &e) && g->complete && pred(g))
			return 1;
		sleep_ms(50);
	}
	return 0;
}

static int n_running(const struct obs_group *g)
{
	size_t i;
	int n = 0;

	for (i = 0; i < g->ninstances; i++)
		n += g->instances[i].lifecycle == LC_IN_SERVICE && g->instances[i].ec2_seen &&
		     !strcmp(g->instances[i].ec2_state, "running") && g->instances[i].private_ip[0];
	return n;
}

static int two_running(const struct obs_group *g) { return n_running(g) == 2 && g->ninstances == 2; }
static int one_running(const struct obs_group *g) { return n_running(g) == 1 && g->ninstances == 1; }

static void test_localcloud__launches_instances_as_processes_on_their_addresses(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;
	char path[256], line[64];
	FILE *fp;
	size_t i;

	start(f, "local-secret-key-0123456789", NULL);
	obs_group_init(&g);
	assert_int_equal(cloud_describe(f->c, "g1", &g, &e), 0);
	assert_true(g.found && g.complete);
	assert_int_equal(g.desired_capacity, 0);
	assert_int_equal(g.max_size, 5);
	assert_int_equal(g.ninstances, 0);
	assert_int_equal(cloud_set_capacity(f->c, "g1", 2, &e), 0);
	assert_true(wait_group(f, &g, two_running));
	assert_int_equal(g.desired_capacity, 2);
	assert_string_not_equal(g.instances[0].private_ip, g.instances[1].private_ip);
	for (i = 0; i < 2; i++) {
		assert_int_equal(strncmp(g.instances[i].private_ip, "127.", 4), 0);
		snprintf(path, sizeof(path), "%s/%s.addr", f->dir, g.instances[i].id);
		fp = fopen(path, "r");
		assert_non_null(fp);
		assert_non_null(fgets(line, sizeof(line), fp));
		fclose(fp);
		line[strcspn(line, "\n")] = '\0';
		assert_string_equal(line, g.instances[i].private_ip);
	}
	/* above the group's max: the documented ValidationError */
	assert_int_equal(cloud_set_capacity(f->c, "g1", 6, &e), SP_EINVAL);
	obs_group_release(&g);
}

static void test_localcloud__scale_in_spares_protected_and_stops_processes(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;
	char keep[32], gone[32], path[256];
	const char *ids[1];

	start(f, "local-secret-key-0123456789", "--desired", "2", NULL);
	obs_group_init(&g);
	assert_true(wait_group(f, &g, two_running));
	snprintf(keep, sizeof(keep), "%s", g.instances[1].id);
	snprintf(gone, sizeof(gone), "%s", g.instances[0].id);
	ids[0] = keep;
	assert_int_equal(cloud_set_protection(f->c, "g1", ids, 1, 1, &e), 0);
	assert_int_equal(cloud_set_capacity(f->c, "g1", 1, &e), 0);
	assert_true(wait_group(f, &g, one_running));
	assert_string_equal(g.instances[0].id, keep);
	assert_true(g.instances[0].protected_from_scale_in);
	snprintf(path, sizeof(path), "%s/%s.stopped", f->dir, gone);
	assert_int_equal(access(path, F_OK), 0);
	obs_group_release(&g);
}

static void test_localcloud__unhealthy_and_terminated_instances_are_handled(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;
	char first[32];

	start(f, "local-secret-key-0123456789", "--desired", "1", NULL);
	obs_group_init(&g);
	assert_true(wait_group(f, &g, one_running));
	snprintf(first, sizeof(first), "%s", g.instances[0].id);
	/* unhealthy: replaced, desired unchanged */
	assert_int_equal(cloud_set_health(f->c, first, 0, &e), 0);
	assert_true(wait_group(f, &g, one_running));
	assert_string_not_equal(g.instances[0].id, first);
	assert_int_equal(g.desired_capacity, 1);
	/* terminate with decrement: gone, desired 0 */
	snprintf(first, sizeof(first), "%s", g.instances[0].id);
	assert_int_equal(cloud_terminate(f->c, first, 1, &e), 0);
	obs_group_release(&g);
	obs_group_init(&g);
	assert_int_equal(cloud_describe(f->c, "g1", &g, &e), 0);
	assert_int_equal(g.desired_capacity, 0);
	assert_int_equal(cloud_terminate(f->c, "i-00000000000000000", 0, &e), SP_ENOTFOUND);
	obs_group_release(&g);
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
	struct strbuf *b = ud;
	(void)p;
	strbuf_add(b, p, sz * n);
	return sz * n;
}

/* POST to the admin endpoint; returns the HTTP status. */
static long admin_post(struct fx *f, const char *path)
{
	CURL *h = curl_easy_init();
	struct strbuf b = STRBUF_INIT;
	char url[256];
	long status = 0;

	assert_non_null(h);
	snprintf(url, sizeof(url), "%s%s", f->url, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	strbuf_release(&b);
	return status;
}

static void test_localcloud__admin_terminate_replaces_and_faults_inject(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;
	char first[32], path[96];

	start(f, "local-secret-key-0123456789", "--desired", "1", NULL);
	obs_group_init(&g);
	assert_true(wait_group(f, &g, one_running));
	snprintf(first, sizeof(first), "%s", g.instances[0].id);
	snprintf(path, sizeof(path), "/_admin/instances/%s/terminate", first);
	assert_int_equal(admin_post(f, path), 200);
	assert_true(wait_group(f, &g, one_running));
	assert_string_not_equal(g.instances[0].id, first);
	assert_int_equal(admin_post(f, "/_admin/instances/i-nope/terminate"), 404);
	/* every call fails: the driver retries, then reports the outage */
	assert_int_equal(admin_post(f, "/_admin/faults?error=100"), 200);
	obs_group_release(&g);
	obs_group_init(&g);
	assert_int_equal(cloud_describe(f->c, "g1", &g, &e), SP_EUNAVAIL);
	assert_false(g.complete);
	assert_int_equal(admin_post(f, "/_admin/faults?error=0&throttle=100"), 200);
	assert_int_equal(cloud_set_capacity(f->c, "g1", 1, &e), SP_ETHROTTLED);
	assert_int_equal(admin_post(f, "/_admin/faults?throttle=0"), 200);
	assert_int_equal(cloud_set_capacity(f->c, "g1", 1, &e), 0);
	obs_group_release(&g);
}

static void test_localcloud__refuses_a_wrong_signature(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;

	start(f, "not-the-secret-key-0123456789", NULL);
	obs_group_init(&g);
	assert_int_equal(cloud_describe(f->c, "g1", &g, &e), SP_EDENIED);
	assert_false(g.complete);
	assert_int_equal(cloud_set_capacity(f->c, "g1", 1, &e), SP_EDENIED);
	obs_group_release(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_localcloud__launches_instances_as_processes_on_their_addresses, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_localcloud__scale_in_spares_protected_and_stops_processes, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_localcloud__unhealthy_and_terminated_instances_are_handled, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_localcloud__admin_terminate_replaces_and_faults_inject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__refuses_a_wrong_signature, setup,
						teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
