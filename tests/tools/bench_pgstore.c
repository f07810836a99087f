/*
 * bench_pgstore - how long spinctl's store operations take on a real
 * Postgres: apply N workspaces (create, then unchanged, then all changed)
 * in one transaction each, and list them with their status.
 *
 *   DATABASE_URL=... build/tools/bench_pgstore [N]     (default N = 1000)
 *
 * Prints one "store: <operation> <ms> ms" line per measurement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drivers/pgstore.h"
#include "model/strbuf.h"
#include "tests/lib/testdb.h"
#include "model/banned.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int timed_apply(struct pgstore *s, const struct manifest_set *set, const char *what)
{
	struct pgstore_apply_result r;
	struct err e = ERR_INIT;
	double t0 = now_ms();
	int rc;

	pgstore_apply_result_init(&r);
	rc = pgstore_apply(s, set, NULL, &r, &e);
	if (rc)
		fprintf(stderr, "bench_pgstore: apply: %s\n", e.msg);
	else
		printf("store: apply %zu docs (%s) %.1f ms\n", set->n, what, now_ms() - t0);
	pgstore_apply_result_release(&r);
	return rc;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
	struct pgstore_ws_row *rows = NULL;
	struct manifest_set set = { 0 };
	struct pgstore *s = NULL;
	struct err e = ERR_INIT;
	const char *ci = testdb_conninfo();
	size_t nrows = 0;
	double t0;
	long i;
	int rc;

	if (!ci || n < 1 || n > 100000)
		return 1;
	set.docs = calloc((size_t)n + 1, sizeof(*set.docs));
	if (!set.docs)
		return 1;
	set.n = (size_t)n + 1;
	set.docs[0].kind = MANIFEST_POOL;
	pool_spec_defaults(&set.docs[0].pool);
	str_copy(set.docs[0].pool.name, SPEC_NAME_MAX + 1, "bench");
	str_copy(set.docs[0].pool.asg_name, SPEC_ASG_MAX + 1, "asg-bench");
	str_copy(set.docs[0].pool.region, SPEC_REGION_MAX + 1, "eu-west-1");
	for (i = 1; i <= n; i++) {
		struct workspace_spec *w = &set.docs[i].ws;
		set.docs[i].kind = MANIFEST_WORKSPACE;
		workspace_spec_defaults(w);
		snprintf(w->name, sizeof(w->name), "ws-%ld", i);
		str_copy(w->pool, sizeof(w->pool), "bench");
		snprintf(w->owner, sizeof(w->owner), "user%ld", i);
	}
	rc = pgstore_open(ci, "bench_pgstore", &s, &e);
	if (!rc)
		rc = timed_apply(s, &set, "create");
	if (!rc)
		rc = timed_apply(s, &set, "unchanged");
	for (i = 1; i <= n; i++)
		set.docs[i].ws.memory_mib = 4096;
	if (!rc)
		rc = timed_apply(s, &set, "all changed");
	if (!rc) {
		t0 = now_ms();
		rc = pgstore_list_workspaces(s, NULL, NULL, &rows, &nrows, &e);
		if (!rc)
			printf("store: list %zu workspaces with status %.1f ms\n", nrows, now_ms() - t0);
		free(rows);
	}
	if (rc && e.msg[0])
		fprintf(stderr, "bench_pgstore: %s\n", e.msg);
	pgstore_free(s);
	free(set.docs);
	return rc ? 1 : 0;
}
