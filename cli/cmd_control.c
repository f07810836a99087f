/*
 * cmd_control.c - spinctl pause, resume, observe-only, reconcile: the
 * operator controls of DESIGN.md, written as rows (never RPCs).
 *
 *   pause     workspaces.paused_until / pools.paused_until /
 *             operator_controls.paused_until ('infinity' = until resumed)
 *   resume    the same set back to NULL
 *   observe-only  pools.observe_only / operator_controls.observe_only
 *   reconcile workspaces.reconcile_requested_at = now(); status echoes it
 *   clear-safety-stop  pools.safety_clear_requested_at = now(); spinupd
 *             lifts the pool's safety stop and pool_status echoes it
 *
 * The schema's triggers NOTIFY spinupd, which reads the rows on its next
 * pass (at once). Each command changes exactly one row or fails naming why.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "model/banned.h"

enum target { T_WORKSPACE, T_POOL, T_ALL, T_BAD };

static enum target target_of(const char *k)
{
	if (!strcmp(k, "workspace") || !strcmp(k, "ws"))
		return T_WORKSPACE;
	if (!strcmp(k, "pool"))
		return T_POOL;
	if (!strcmp(k, "all"))
		return T_ALL;
	return T_BAD;
}

/*
 * Run one UPDATE that must touch exactly one row. sql's $1 is the value
 * expression's parameter (may be unused), $2 the name, $3 the pool (NULL:
 * any). what names the object in messages.
 */
static int update_one(struct pgstore *s, const char *sql, const char *value, const char *name,
		      const char *pool, const char *what, const char *done)
{
	const char *params[3] = { value, name, pool };
	struct err e = ERR_INIT;
	PGresult *res = NULL;
	int rc, n;

	if (pgstore_begin(s, &e)) {
		cli_error("%s", e.msg);
		return CLI_EXIT_ERROR;
	}
	rc = pgstore_exec(s, what, sql, 3, params, &res, &e);
	if (rc) {
		pgstore_rollback(s);
		cli_error("%s", e.msg);
		return CLI_EXIT_ERROR;
	}
	n = PQntuples(res);
	PQclear(res);
	if (n != 1) {
		pgstore_rollback(s);
		if (n == 0)
			cli_error("%s not found", what);
		else
			cli_error("%s: the name is used in %d pools; say which with --pool", what, n);
		return CLI_EXIT_ERROR;
	}
	if (pgstore_commit(s, &e)) {
		cli_error("%s", e.msg);
		return CLI_EXIT_ERROR;
	}
	printf("%s %s\n", what, done);
	return CLI_EXIT_OK;
}

static const char sql_ws_pause[] =
	"UPDATE workspaces SET paused_until = CASE WHEN $1::text IS NULL THEN NULL"
	" WHEN $1 = 'infinity' THEN 'infinity'::timestamptz ELSE now() + $1::interval END"
	" WHERE name = $2 AND ($3::text IS NULL OR pool_id = (SELECT id FROM pools WHERE name = $3))"
	" RETURNING id";
static const char sql_pool_pause[] =
	"UPDATE pools SET paused_until = CASE WHEN $1::text IS NULL THEN NULL"
	" WHEN $1 = 'infinity' THEN 'infinity'::timestamptz ELSE now() + $1::interval END"
	" WHERE name = $2 AND $3::text IS NULL RETURNING id";
static const char sql_all_pause[] =
	"UPDATE operator_controls SET paused_until = CASE WHEN $1::text IS NULL THEN NULL"
	" WHEN $1 = 'infinity' THEN 'infinity'::timestamptz ELSE now() + $1::interval END,"
	" updated_at = now() WHERE $2::text IS NULL AND $3::text IS NULL RETURNING id";
static const char sql_pool_observe[] =
	"UPDATE pools SET observe_only = $1::boolean WHERE name = $2 AND $3::text IS NULL"
	" RETURNING id";
static const char sql_all_observe[] =
	"UPDATE operator_controls SET observe_only = $1::boolean, updated_at = now()"
	" WHERE $2::text IS NULL AND $3::text IS NULL RETURNING id";
static const char sql_pool_clear[] =
	"UPDATE pools SET safety_clear_requested_at = now()"
	" WHERE $1::text IS NULL AND name = $2 AND $3::text IS NULL RETURNING id";
static const char sql_ws_reconcile[] =
	"UPDATE workspaces SET reconcile_requested_at = now()"
	" WHERE $1::text IS NULL AND name = $2"
	" AND ($3::text IS NULL OR pool_id = (SELECT id FROM pools WHERE name = $3)) RETURNING id";

static const char pause_usage[] =
	"usage: spinctl pause workspace NAME [--pool POOL] [--for DURATION]\n"
	"       spinctl pause pool NAME [--for DURATION]\n"
	"       spinctl pause all [--for DURATION]\n"
	"       spinctl resume workspace NAME [--pool POOL] | pool NAME | all\n\n"
	"Pause stops the operator from acting on a workspace, a pool or everything:\n"
	"it still observes and reports drift, but changes nothing. Without --for the\n"
	"pause lasts until `spinctl resume`. Written as a row (paused_until); spinupd\n"
	"sees it at once.\n\n"
	"      --for DURATION  90s, 15m, 2h or 1d; the pause ends by itself\n"
	"      --pool POOL     the pool of the workspace (needed when the name is used\n"
	"                      in several pools)\n"
	"      --db URL        the database (default $DATABASE_URL)\n";

static const char resume_usage[] =
	"usage: spinctl resume workspace NAME [--pool POOL]\n"
	"       spinctl resume pool NAME\n"
	"       spinctl resume all\n\n"
	"End a pause (spinctl pause) now: the operator acts again on its next pass.\n"
	"A safety stop is not a pause: see spinctl clear-safety-stop.\n\n"
	"      --pool POOL  the pool of the workspace (needed when the name is used\n"
	"                   in several pools)\n"
	"      --db URL     the database (default $DATABASE_URL)\n";

static int pause_or_resume(int argc, char **argv, const struct cli *g, int resume)
{
	static const struct option opts[] = {
		{ "for", required_argument, NULL, 'F' },
		{ "pool", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = resume ? "resume" : "pause", *pool = NULL, *name = NULL, *value;
	char interval[64] = "", what[160];
	struct pgstore *s = NULL;
	enum target t;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'F':
			if (resume)
				return cli_usage_error(cmd, "--for applies to pause only");
			if (cli_parse_duration(optarg, interval, sizeof(interval)))
				return cli_usage_error(cmd, "--for '%s': expected a duration like 90s, "
						       "15m, 2h or 1d", optarg);
			break;
		case 'p':
			pool = optarg;
			break;
		case 'h':
			fputs(resume ? resume_usage : pause_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error(cmd, "unknown option");
		}
	}
	if (optind >= argc)
		return cli_usage_error(cmd, "what to %s: workspace NAME, pool NAME or all", cmd);
	t = target_of(argv[optind]);
	if (t == T_BAD)
		return cli_usage_error(cmd, "cannot %s '%s': workspace, pool or all", cmd,
				       argv[optind]);
	if (t != T_ALL && optind + 2 != argc)
		return cli_usage_error(cmd, "%s %s needs exactly one NAME", cmd, argv[optind]);
	if (t == T_ALL && optind + 1 != argc)
		return cli_usage_error(cmd, "%s all takes no name", cmd);
	if (pool && t != T_WORKSPACE)
		return cli_usage_error(cmd, "--pool applies to a workspace only");
	if (t != T_ALL)
		name = argv[optind + 1];
	value = resume ? NULL : interval[0] ? interval : "infinity";
	if (t == T_WORKSPACE)
		snprintf(what, sizeof(what), "workspace/%s", name);
	else if (t == T_POOL)
		snprintf(what, sizeof(what), "pool/%s", name);
	else
		snprintf(what, sizeof(what), "everything");
	if (cli_open_store(g, 1, &s))
		return CLI_EXIT_ERROR;
	rc = update_one(s, t == T_WORKSPACE ? sql_ws_pause : t == T_POOL ? sql_pool_pause :
			sql_all_pause, value, name, pool, what,
			resume ? "resumed" : interval[0] ? "paused for a while" : "paused until resumed");
	pgstore_free(s);
	return rc;
}

int cmd_pause(int argc, char **argv, const struct cli *g)
{
	return pause_or_resume(argc, argv, g, 0);
}

int cmd_resume(int argc, char **argv, const struct cli *g)
{
	return pause_or_resume(argc, argv, g, 1);
}

static const char observe_usage[] =
	"usage: spinctl observe-only pool NAME on|off\n"
	"       spinctl observe-only all on|off\n\n"
	"In observe-only mode the operator plans, reports status and drift, and\n"
	"changes nothing in the cloud or on the agents. This is the switch an\n"
	"operator sets (pools.observe_only, operator_controls.observe_only).\n\n"
	"A pool whose plan breaks its destructive budget holds itself the same way\n"
	"(a safety stop, kept by spinupd in pool_status); `off` here does not lift\n"
	"it: `spinctl clear-safety-stop pool NAME` does.\n\n"
	"      --db URL  the database (default $DATABASE_URL)\n";

int cmd_observe_only(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *onoff;
	struct pgstore *s = NULL;
	char what[160];
	enum target t;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(observe_usage, stdout);
			return CLI_EXIT_OK;
		}
		return cli_usage_error("observe-only", "unknown option");
	}
	if (optind >= argc || (t = target_of(argv[optind])) == T_BAD || t == T_WORKSPACE)
		return cli_usage_error("observe-only", "expected pool NAME on|off or all on|off");
	if (argc - optind != (t == T_ALL ? 2 : 3))
		return cli_usage_error("observe-only", "expected pool NAME on|off or all on|off");
	if (t == T_POOL)
		name = argv[optind + 1];
	onoff = argv[argc - 1];
	if (strcmp(onoff, "on") && strcmp(onoff, "off"))
		return cli_usage_error("observe-only", "'%s': expected on or off", onoff);
	if (t == T_POOL)
		snprintf(what, sizeof(what), "pool/%s", name);
	else
		snprintf(what, sizeof(what), "everything");
	if (cli_open_store(g, 1, &s))
		return CLI_EXIT_ERROR;
	rc = update_one(s, t == T_POOL ? sql_pool_observe : sql_all_observe,
			!strcmp(onoff, "on") ? "true" : "false", name, NULL, what,
			!strcmp(onoff, "on") ? "is observe-only" : "is acted on again");
	pgstore_free(s);
	return rc;
}

static const char reconcile_usage[] =
	"usage: spinctl reconcile workspace NAME [--pool POOL]\n\n"
	"Ask the operator to look at a workspace now (reconcile_requested_at);\n"
	"its status echoes the request once handled. Retries waiting for their\n"
	"backoff are tried at once.\n\n"
	"      --pool POOL  the pool of the workspace\n"
	"      --db URL     the database (default $DATABASE_URL)\n";

int cmd_reconcile(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pool = NULL;
	struct pgstore *s = NULL;
	char what[160];
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pool = optarg;
			break;
		case 'h':
			fputs(reconcile_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("reconcile", "unknown option");
		}
	}
	if (argc - optind != 2 || target_of(argv[optind]) != T_WORKSPACE)
		return cli_usage_error("reconcile", "expected workspace NAME");
	snprintf(what, sizeof(what), "workspace/%s", argv[optind + 1]);
	if (cli_open_store(g, 1, &s))
		return CLI_EXIT_ERROR;
	rc = update_one(s, sql_ws_reconcile, NULL, argv[optind + 1], pool, what,
			"reconcile requested");
	pgstore_free(s);
	return rc;
}

static const char clear_usage[] =
	"usage: spinctl clear-safety-stop pool NAME\n\n"
	"A pool whose plan would destroy more than its budget in a window stops\n"
	"itself: it plans and reports, changes nothing, and `spinctl drift` shows a\n"
	"SafetyStop finding with what the plan needed. Once you have reviewed it,\n"
	"this asks spinupd to lift the stop: it writes\n"
	"pools.safety_clear_requested_at = now() (the web UI may write the same\n"
	"column). On its next pass spinupd clears the stop, starts a fresh budget\n"
	"window and acts again; `spinctl get pools -o wide` shows the stop, and\n"
	"-o json its status (safetyClearHandledAt echoes the request once handled).\n\n"
	"A clear does not approve the plan: if the same plan still needs more\n"
	"destructive actions than the budget, the pool stops again in that pass.\n"
	"Fix the cause first (restore the rows that went missing, or raise\n"
	"plan_destructive_budget in spinupd's configuration if the change is wanted).\n\n"
	"      --db URL  the database (default $DATABASE_URL)\n";

int cmd_clear_safety_stop(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "clear-safety-stop";
	struct pgstore *s = NULL;
	char what[160];
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(clear_usage, stdout);
			return CLI_EXIT_OK;
		}
		return cli_usage_error(cmd, "unknown option");
	}
	if (argc - optind != 2 || target_of(argv[optind]) != T_POOL)
		return cli_usage_error(cmd, "expected pool NAME");
	snprintf(what, sizeof(what), "pool/%s", argv[optind + 1]);
	if (cli_open_store(g, 1, &s))
		return CLI_EXIT_ERROR;
	rc = update_one(s, sql_pool_clear, NULL, argv[optind + 1], NULL, what,
			"safety-stop clear requested: spinupd lifts the stop on its next pass");
	pgstore_free(s);
	return rc;
}
