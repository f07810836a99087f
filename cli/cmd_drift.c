/* cmd_drift.c - spinctl drift: open drift findings; exit 0 in sync, 1 drift, 2 error. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cmd.h"
#include "model/banned.h"

#define DRIFT_EXIT_IN_SYNC 0
#define DRIFT_EXIT_DRIFT 1
#define DRIFT_EXIT_ERROR 2

static const char usage[] =
	"usage: spinctl drift [-o table|json] [--all]\n\n"
	"Drift the operator found between what is declared and what is there: class\n"
	"(missing, unmanaged, changed, unobservable), reason, desired and observed\n"
	"values, the remedy in progress, first and last seen, flap count. Findings\n"
	"matched by a silence (spinctl silence) are hidden unless --all and never\n"
	"count as drift.\n"
	"Exit status: 0 in sync, 1 drift, 2 error.\n\n"
	"  -o, --output FORMAT  table (default) or json\n"
	"  -a, --all            also silenced and recently resolved findings (last hour)\n"
	"      --db URL         the database (default $DATABASE_URL)\n";

/* drift_view (migration 005) adds the end of the silences matching each finding. */
static const char DRIFT_SQL[] =
	"SELECT id, subject, cls::text AS cls, reason, desired, observed, remedy,"
	" spinup_ms(first_seen) AS first_seen, spinup_ms(last_seen) AS last_seen, flap_count,"
	" spinup_ms(resolved_at) AS resolved_at, spinup_ms(silenced_by_until) AS silenced_until,"
	" (silenced_by_until IS NOT NULL) AS silenced"
	" FROM drift_view WHERE (resolved_at IS NULL AND silenced_by_until IS NULL)"
	" OR ($1::boolean AND (resolved_at IS NULL OR resolved_at > now() - interval '1 hour'))"
	" ORDER BY resolved_at DESC NULLS FIRST, subject, reason LIMIT 10001";

static long long num(const PGresult *r, int i, const char *col)
{
	return strtoll(cli_col(r, i, col), NULL, 10);
}

/* Counts open, unsilenced findings (what makes the exit status 1). */
static int counts(const PGresult *r)
{
	int i, n = 0;

	for (i = 0; i < PQntuples(r); i++)
		if (!num(r, i, "resolved_at") && strcmp(cli_col(r, i, "silenced"), "t"))
			n++;
	return n;
}

static void drift_table(const PGresult *r)
{
	struct cli_table t;
	int64_t now = cli_now_ms();
	char first[32], last[32], flaps[16];
	int i;

	cli_table_init(&t, 9);
	cli_table_add(&t, "SUBJECT");
	cli_table_add(&t, "CLASS");
	cli_table_add(&t, "REASON");
	cli_table_add(&t, "DESIRED");
	cli_table_add(&t, "OBSERVED");
	cli_table_add(&t, "REMEDY");
	cli_table_add(&t, "FIRST-SEEN");
	cli_table_add(&t, "LAST-SEEN");
	cli_table_add(&t, "FLAPS");
	for (i = 0; i < PQntuples(r); i++) {
		int resolved = num(r, i, "resolved_at") != 0, silenced = !strcmp(cli_col(r, i, "silenced"), "t");
		char cls[48];
		cli_format_age(num(r, i, "first_seen"), now, first, sizeof(first));
		cli_format_age(num(r, i, "last_seen"), now, last, sizeof(last));
		snprintf(flaps, sizeof(flaps), "%lld", num(r, i, "flap_count"));
		snprintf(cls, sizeof(cls), "%s%s", cli_col(r, i, "cls"),
			 resolved ? " (resolved)" : silenced ? " (silenced)" : "");
		cli_table_add(&t, cli_col(r, i, "subject"));
		cli_table_add(&t, cls);
		cli_table_add(&t, cli_col(r, i, "reason"));
		cli_table_add(&t, *cli_col(r, i, "desired") ? cli_col(r, i, "desired") : "-");
		cli_table_add(&t, *cli_col(r, i, "observed") ? cli_col(r, i, "observed") : "-");
		cli_table_add(&t, *cli_col(r, i, "remedy") ? cli_col(r, i, "remedy") : "-");
		cli_table_add(&t, first);
		cli_table_add(&t, last);
		cli_table_add(&t, flaps);
	}
	cli_table_print(&t, stdout);
	cli_table_release(&t);
}

static int drift_json(const PGresult *r)
{
	json_t *a = json_array(), *root;
	char first[40], last[40], resolved[40], silenced[40], *s;
	int i, rc = 0;

	for (i = 0; a && i < PQntuples(r); i++) {
		cli_format_time(num(r, i, "first_seen"), first, sizeof(first));
		cli_format_time(num(r, i, "last_seen"), last, sizeof(last));
		cli_format_time(num(r, i, "resolved_at"), resolved, sizeof(resolved));
		cli_format_time(num(r, i, "silenced_until"), silenced, sizeof(silenced));
		if (json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
			" s:I, s:s, s:s, s:b}",
			"id", (json_int_t)num(r, i, "id"), "subject", cli_col(r, i, "subject"),
			"class", cli_col(r, i, "cls"), "reason", cli_col(r, i, "reason"),
			"desired", cli_col(r, i, "desired"), "observed", cli_col(r, i, "observed"),
			"remedy", cli_col(r, i, "remedy"), "firstSeen", first, "lastSeen", last,
			"flapCount", (json_int_t)num(r, i, "flap_count"), "resolvedAt", resolved,
			"silencedUntil", silenced, "silenced", !strcmp(cli_col(r, i, "silenced"), "t"))))
			rc = -1;
	}
	root = a ? json_pack("{s:b, s:i, s:o}", "inSync", counts(r) == 0, "drift", counts(r),
			     "findings", a) : NULL;
	s = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
	if (s)
		printf("%s\n", s);
	else
		rc = -1;
	free(s);
	json_decref(root);
	return rc;
}

int cmd_drift(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pgstore *s = NULL;
	struct err e = ERR_INIT;
	PGresult *r = NULL;
	const char *params[1];
	int c, json = 0, all = 0, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "o:ah", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (strcmp(optarg, "table") && strcmp(optarg, "json"))
				return cli_usage_error("drift", "unknown output format '%s'", optarg);
			json = !strcmp(optarg, "json");
			break;
		case 'a':
			all = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return DRIFT_EXIT_IN_SYNC;
		default:
			return cli_usage_error("drift", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("drift", "unexpected argument '%s'", argv[optind]);
	if (cli_open_store(g, 1, &s))
		return DRIFT_EXIT_ERROR;
	params[0] = all ? "true" : "false";
	if (pgstore_exec(s, "list drift", DRIFT_SQL, 1, params, &r, &e)) {
		cli_error("%s", e.msg);
		pgstore_free(s);
		return DRIFT_EXIT_ERROR;
	}
	rc = counts(r) ? DRIFT_EXIT_DRIFT : DRIFT_EXIT_IN_SYNC;
	if (json) {
		if (drift_json(r))
			rc = DRIFT_EXIT_ERROR;
	} else if (PQntuples(r)) {
		drift_table(r);
	} else {
		printf("in sync: no drift\n");
	}
	PQclear(r);
	pgstore_free(s);
	return rc;
}
