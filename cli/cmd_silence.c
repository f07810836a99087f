/*
 * spinctl silence / unsilence: drift silences, rows of drift_silences
 * (migration 005). A silence hides matching findings from `spinctl drift`
 * until it expires; the operator keeps acting either way.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cli/cmd.h"
#include "model/banned.h"

static const char silence_usage[] =
	"usage: spinctl silence SUBJECT --for DURATION [--reason REASON] [-m COMMENT]\n"
	"       spinctl silence --list\n\n"
	"Hide the drift findings of SUBJECT from `spinctl drift` and its exit status\n"
	"until the silence expires. SUBJECT is as `spinctl drift` shows it\n"
	"(workspace/NAME, instance/ID, pool/NAME) or a prefix ending in '*'\n"
	"(instance/*). A silence hides findings; the operator still acts on them.\n\n"
	"      --for DURATION   90s, 15m, 2h or 1d (required)\n"
	"      --reason REASON  only findings with this reason code (e.g. AgentUnreachable)\n"
	"  -m, --comment TEXT   why, shown by --list\n"
	"  -l, --list           the silences in force, with how many findings each hides\n"
	"      --db URL         the database (default $DATABASE_URL)\n";

static const char unsilence_usage[] =
	"usage: spinctl unsilence ID\n\n"
	"End the drift silence ID (see `spinctl silence --list`) now.\n\n"
	"      --db URL  the database (default $DATABASE_URL)\n";

static const char LIST_SQL[] =
	"SELECT x.id, x.subject, x.reason, spinup_ms(x.until) AS until, x.created_by, x.comment,"
	" (SELECT count(*) FROM drift d WHERE d.resolved_at IS NULL"
	"  AND (x.reason = '' OR x.reason = d.reason)"
	"  AND spinup_silence_matches(x.subject, d.subject)) AS hides"
	" FROM drift_silences x WHERE x.until > now() ORDER BY x.id DESC LIMIT 1000";

static void list_table(const PGresult *r)
{
	struct cli_table t;
	char until[40];
	int i;

	if (!PQntuples(r)) {
		printf("no silences in force\n");
		return;
	}
	cli_table_init(&t, 7);
	cli_table_add(&t, "ID");
	cli_table_add(&t, "SUBJECT");
	cli_table_add(&t, "REASON");
	cli_table_add(&t, "UNTIL");
	cli_table_add(&t, "BY");
	cli_table_add(&t, "HIDES");
	cli_table_add(&t, "COMMENT");
	for (i = 0; i < PQntuples(r); i++) {
		cli_format_time(strtoll(cli_col(r, i, "until"), NULL, 10), until, sizeof(until));
		cli_table_add(&t, cli_col(r, i, "id"));
		cli_table_add(&t, cli_col(r, i, "subject"));
		cli_table_add(&t, *cli_col(r, i, "reason") ? cli_col(r, i, "reason") : "(any)");
		cli_table_add(&t, until);
		cli_table_add(&t, cli_col(r, i, "created_by"));
		cli_table_add(&t, cli_col(r, i, "hides"));
		cli_table_add(&t, *cli_col(r, i, "comment") ? cli_col(r, i, "comment") : "-");
	}
	cli_table_print(&t, stdout);
	cli_table_release(&t);
}

static int run(const struct cli *g, const char *what, const char *sql, int n,
	       const char *const *params, PGresult **out)
{
	struct pgstore *s = NULL;
	struct err e = ERR_INIT;
	int rc;

	if (cli_open_store(g, 1, &s))
		return CLI_EXIT_ERROR;
	rc = pgstore_exec(s, what, sql, n, params, out, &e);
	if (rc)
		cli_error("%s", e.msg);
	pgstore_free(s);
	return rc ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

int cmd_silence(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "for", required_argument, NULL, 'F' },
		{ "reason", required_argument, NULL, 'r' },
		{ "comment", required_argument, NULL, 'm' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *reason = "", *comment = "", *params[4];
	char interval[64] = "", until[40];
	PGresult *r = NULL;
	int c, list = 0, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "m:lh", opts, NULL)) != -1) {
		switch (c) {
		case 'F':
			if (cli_parse_duration(optarg, interval, sizeof(interval)))
				return cli_usage_error("silence", "--for '%s': expected a duration like"
						       " 90s, 15m, 2h or 1d", optarg);
			break;
		case 'r':
			reason = optarg;
			break;
		case 'm':
			comment = optarg;
			break;
		case 'l':
			list = 1;
			break;
		case 'h':
			fputs(silence_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("silence", "unknown option");
		}
	}
	if (list) {
		if (optind < argc)
			return cli_usage_error("silence", "--list takes no subject");
		rc = run(g, "list silences", LIST_SQL, 0, NULL, &r);
		if (!rc)
			list_table(r);
		PQclear(r);
		return rc;
	}
	if (optind != argc - 1)
		return cli_usage_error("silence", "expected one SUBJECT");
	if (!interval[0])
		return cli_usage_error("silence", "--for is required: a silence always ends");
	params[0] = argv[optind];
	params[1] = reason;
	params[2] = interval;
	params[3] = comment;
	rc = run(g, "add silence", "INSERT INTO drift_silences (subject, reason, until, comment)"
		 " VALUES ($1, $2, now() + $3::interval, $4) RETURNING id, spinup_ms(until) AS until",
		 4, params, &r);
	if (!rc) {
		cli_format_time(strtoll(cli_col(r, 0, "until"), NULL, 10), until, sizeof(until));
		printf("silence/%s %s%s%s until %s\n", cli_col(r, 0, "id"), argv[optind],
		       reason[0] ? " reason " : "", reason, until);
	}
	PQclear(r);
	return rc;
}

int cmd_unsilence(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *params[1];
	PGresult *r = NULL;
	char *end;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(unsilence_usage, stdout);
			return CLI_EXIT_OK;
		}
		return cli_usage_error("unsilence", "unknown option");
	}
	if (optind != argc - 1)
		return cli_usage_error("unsilence", "expected one silence ID");
	if (strtoll(argv[optind], &end, 10) <= 0 || *end)
		return cli_usage_error("unsilence", "'%s' is not a silence ID", argv[optind]);
	params[0] = argv[optind];
	rc = run(g, "end silence", "DELETE FROM drift_silences WHERE id = $1::bigint", 1, params, &r);
	if (!rc && strcmp(PQcmdTuples(r), "1")) {
		cli_error("no silence %s", argv[optind]);
		rc = CLI_EXIT_ERROR;
	} else if (!rc) {
		printf("silence/%s ended\n", argv[optind]);
	}
	PQclear(r);
	return rc;
}
