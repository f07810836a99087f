/*
 * bench_localcloud - figures of the local provider with 10,000 instances,
 * printed as `| name | value | unit |` rows (scripts/bench.d/localcloud.sh).
 *
 * Starts $SPINUP_BIN_DIR/spinup-localcloud on a free loopback port with one
 * group of 10,000 instances (no processes), then measures:
 *   - the aws driver's full describe (DescribeAutoScalingGroups, then
 *     DescribeInstances by the group tag in pages of 1000): calls and ms
 *   - DescribeInstances by the group tag in pages of 1000 alone: calls and ms
 * Each figure is the median of 5 runs. The provider is always stopped.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libxml/tree.h>

#include "drivers/awscloud.h"
#include "drivers/awsq.h"
#include "drivers/cloud.h"
#include "model/banned.h"

#define N_INSTANCES 10000
#define RUNS 5
#define KEY "AKIDBENCHLOCALCLOUD1"
#define SECRET "bench-secret-0123456789"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t median(int64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp64);
	return v[n / 2];
}

static pid_t start(const char *dir, int *port)
{
	char exe[512], creds[256], portf[256], group[64], log[256];
	const char *bin = getenv("SPINUP_BIN_DIR");
	FILE *f;
	pid_t pid;
	int i;

	snprintf(exe, sizeof(exe), "%s/spinup-localcloud", bin && *bin ? bin : "bin");
	snprintf(creds, sizeof(creds), "%s/credentials", dir);
	snprintf(portf, sizeof(portf), "%s/port", dir);
	snprintf(log, sizeof(log), "%s/provider.log", dir);
	snprintf(group, sizeof(group), "bench:0:%d:%d", N_INSTANCES, N_INSTANCES);
	f = fopen(creds, "w");
	if (!f)
		return -1;
	fprintf(f, "[default]\naws_access_key_id=%s\naws_secret_access_key=%s\n", KEY, SECRET);
	fclose(f);
	chmod(creds, 0600);
	pid = fork();
	if (pid == 0) {
		if (!freopen(log, "w", stdout) || !freopen(log, "a", stderr))
			_exit(127);
		execl(exe, exe, "--listen", "127.0.0.1:0", "--port-file", portf, "--credentials",
		      creds, "--group", group, "--boot-delay-ms", "0", "--instance-cmd", "",
		      (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {
		f = fopen(portf, "r");
		if (f) {
			int ok = fscanf(f, "%d", port) == 1;
			fclose(f);
			if (ok)
				return pid;
		}
		sleep_ms(25);
	}
	kill(pid, SIGTERM);
	return -1;
}

static void stop(pid_t pid)
{
	int st, i;

	kill(pid, SIGTERM);
	for (i = 0; i < 100 && waitpid(pid, &st, WNOHANG) == 0; i++)
		sleep_ms(50);
	if (i == 100) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
}

/* DescribeInstances by tag, pages of 1000: instances seen, calls into *calls. */
static int tag_pages(struct awsq *q, int *calls)
{
	char next[256] = "";
	int total = 0;

	*calls = 0;
	do {
		struct awsq_params p;
		struct err e = ERR_INIT;
		xmlDocPtr doc = NULL;
		xmlNodePtr r, it;
		int rc;

		awsq_params_init(&p, "DescribeInstances");
		rc = awsq_params_add(&p, "Version", "2016-11-15");
		rc = rc ? rc : awsq_params_add(&p, "Filter.1.Name", "tag:aws:autoscaling:groupName");
		rc = rc ? rc : awsq_params_add(&p, "Filter.1.Value.1", "bench");
		rc = rc ? rc : awsq_params_add(&p, "MaxResults", "1000");
		if (!rc && next[0])
			rc = awsq_params_add(&p, "NextToken", next);
		rc = rc ? rc : awsq_call(q, &p, 0, &doc, &e);
		awsq_params_release(&p);
		if (rc) {
			fprintf(stderr, "bench localcloud: %s\n", e.msg);
			return -1;
		}
		(*calls)++;
		for (r = awsq_child(awsq_child(xmlDocGetRootElement(doc), "reservationSet"), "item");
		     r; r = awsq_next(r, "item"))
			for (it = awsq_child(awsq_child(r, "instancesSet"), "item"); it;
			     it = awsq_next(it, "item"))
				total++;
		next[0] = '\0';
		awsq_text(xmlDocGetRootElement(doc), "nextToken", next, sizeof(next));
		xmlFreeDoc(doc);
	} while (next[0] && *calls < 100);
	return total;
}

static int run(int port)
{
	char url[64];
	struct awscloud_config cfg;
	struct awscreds_config cc;
	struct awsq_config qc;
	struct awscreds *creds = NULL;
	struct awsq *q = NULL;
	struct cloud *c = NULL;
	struct obs_group g;
	struct err e = ERR_INIT;
	int64_t t_desc[RUNS], t_tag[RUNS], t0;
	unsigned long calls = 0, before;
	int i, tag_calls = 0, rc = 1, n;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	memset(&cfg, 0, sizeof(cfg));
	cfg.region = "us-east-1";
	cfg.endpoint = url;
	cfg.creds.access_key_id = KEY;
	cfg.creds.secret_access_key = SECRET;
	memset(&cc, 0, sizeof(cc));
	cc.access_key_id = KEY;
	cc.secret_access_key = SECRET;
	cc.region = "us-east-1";
	memset(&qc, 0, sizeof(qc));
	qc.service = "ec2";
	qc.version = "2016-11-15";
	qc.region = "us-east-1";
	qc.endpoint = url;
	qc.read_burst = 1000;
	qc.read_rate = 1000;
	obs_group_init(&g);
	if (awscloud_new(&cfg, &c, &e) || awscreds_new(&cc, &creds, &e))
		goto out;
	qc.creds = creds;
	if (awsq_new(&qc, &q, &e))
		goto out;
	/* wait for the group to be launched and InService */
	for (i = 0; i < 200; i++) {
		obs_group_release(&g);
		obs_group_init(&g);
		if (!cloud_describe(c, "bench", &g, &e) && g.complete && g.ninstances == N_INSTANCES)
			break;
		sleep_ms(100);
	}
	if (g.ninstances != N_INSTANCES) {
		fprintf(stderr, "bench localcloud: group has %zu instances: %s\n", g.ninstances, e.msg);
		goto out;
	}
	for (i = 0; i < RUNS; i++) {
		/* a fresh driver each run: its token buckets start full, as in one pass */
		cloud_free(c);
		c = NULL;
		if (awscloud_new(&cfg, &c, &e))
			goto out;
		obs_group_release(&g);
		obs_group_init(&g);
		before = awscloud_requests(c);
		t0 = now_ms();
		if (cloud_describe(c, "bench", &g, &e) || !g.complete ||
		    g.ninstances != N_INSTANCES) {
			fprintf(stderr, "bench localcloud: describe: %s\n", e.msg);
			goto out;
		}
		t_desc[i] = now_ms() - t0;
		calls = awscloud_requests(c) - before;
		t0 = now_ms();
		n = tag_pages(q, &tag_calls);
		if (n != N_INSTANCES) {
			fprintf(stderr, "bench localcloud: tag pages saw %d instances\n", n);
			goto out;
		}
		t_tag[i] = now_ms() - t0;
	}
	printf("| localcloud: driver describe of %d instances (ASG + EC2 by group tag) | %lu | calls |\n",
	       N_INSTANCES, calls);
	printf("| localcloud: driver describe of %d instances, median of %d | %lld | ms |\n",
	       N_INSTANCES, RUNS, (long long)median(t_desc, RUNS));
	printf("| localcloud: DescribeInstances of %d by tag, pages of 1000 | %d | calls |\n",
	       N_INSTANCES, tag_calls);
	printf("| localcloud: DescribeInstances of %d by tag, pages of 1000, median of %d | %lld "
	       "| ms |\n", N_INSTANCES, RUNS, (long long)median(t_tag, RUNS));
	rc = 0;
out:
	if (rc && e.msg[0])
		fprintf(stderr, "bench localcloud: %s\n", e.msg);
	obs_group_release(&g);
	awsq_free(q);
	awscreds_free(creds);
	cloud_free(c);
	return rc;
}

int main(void)
{
	char dir[] = "/tmp/spinup-lc-bench.XXXXXX", cmd[128];
	int port = 0, rc;
	pid_t pid;

	if (!mkdtemp(dir)) {
		perror("bench localcloud: mkdtemp");
		return 1;
	}
	pid = start(dir, &port);
	if (pid < 0) {
		fprintf(stderr, "bench localcloud: the provider did not start (see %s)\n", dir);
		return 1;
	}
	rc = run(port);
	stop(pid);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench localcloud: could not remove %s\n", dir);
	return rc;
}
