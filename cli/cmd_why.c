/* cmd_why.c - spinctl why NAME: what blocks a workspace, who must act, the next attempt. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "model/banned.h"

static const char usage[] =
	"usage: spinctl why NAME [--pool POOL]\n\n"
	"Names the one thing blocking a workspace (a pause, observe-only, its pool's\n"
	"safety stop, or the first condition that is not True), who must act\n"
	"(nobody, the owner, an operator), when the operator tries next (for a\n"
	"pause: when it ends, or that it lasts until resumed), and the last action\n"
	"it journaled.\n\n"
	"  -p, --pool POOL      the pool, when the name exists in several\n"
	"      --db URL         the database (default $DATABASE_URL)\n";

/* Context beside the row: pauses, observe-only, the leader, the last journal entry. */
static const char CTX_SQL[] =
	"SELECT spinup_ms(p.paused_until) AS pool_paused, p.observe_only AS pool_observe,"
	" coalesce(ps.safety_stopped, false) AS safety_stopped,"
	" spinup_ms(ps.safety_stopped_at) AS stopped_at,"
	" spinup_ms(p.safety_clear_requested_at) AS clear_requested,"
	" spinup_ms(ps.safety_clear_handled_at) AS clear_handled,"
	" spinup_ms(c.paused_until) AS global_paused, c.observe_only AS global_observe,"
	" (SELECT spinup_ms(max(finished_at)) FROM reconcile_passes) AS last_pass,"
	" (SELECT holder FROM operator_leases ORDER BY acquired_at DESC NULLS LAST LIMIT 1) AS leader,"
	" a.type AS act_type, a.state::text AS act_state, a.error AS act_error,"
	" spinup_ms(coalesce(a.finished_at, a.created_at)) AS act_at,"
	" (SELECT count(*) FROM drift d WHERE d.workspace_id = $1 AND d.resolved_at IS NULL) AS ndrift"
	" FROM pools p CROSS JOIN operator_controls c"
	" LEFT JOIN pool_status ps ON ps.pool_id = p.id"
	" LEFT JOIN LATERAL (SELECT * FROM actions WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1) a"
	" ON true WHERE p.name = $2";

static const char *v(const PGresult *r, const char *col)
{
	int c = PQfnumber(r, col);

	return !r || c < 0 || PQntuples(r) < 1 || PQgetisnull(r, 0, c) ? "" : PQgetvalue(r, 0, c);
}

static int64_t n(const PGresult *r, const char *col)
{
	return strtoll(v(r, col), NULL, 10);
}

static int t(const PGresult *r, const char *col)
{
	return !strcmp(v(r, col), "t");
}

static const char *who(enum sp_class c)
{
	switch (c) {
	case SP_CLASS_NEEDS_USER:
		return "the workspace owner: fix the spec (image, template, bucket), then apply again";
	case SP_CLASS_NEEDS_OPERATOR:
		return "an operator: the cloud or the pool needs attention (permissions, capacity)";
	case SP_CLASS_RETRYABLE:
		return "nobody yet: spinupd retries with backoff";
	default:
		return "nobody: spinupd is working on it";
	}
}

/*
 * A pause, observe-only or safety stop that keeps the operator from acting:
 * what it is, when it ends (until: ms; CTL_UNTIL_RESUMED for a pause without
 * an end, 0 for a switch that stays until turned off) and what lifts it.
 * A safety stop (stop) is not turned off but cleared; pending then says
 * when a clear was requested that spinupd has not handled yet.
 */
struct control {
	char what[160];
	int64_t until;
	char lift[160];
	int stop;
	char pending[64];
};

#define CTL_UNTIL_RESUMED INT64_MAX    /* paused_until = 'infinity' (spinup_ms) */

/*
 * A safety stop: lifted by spinctl clear-safety-stop; a request spinupd has
 * not handled yet (newer than the stop and the last one handled) lifts it on
 * the next pass.
 */
static void safety_block(const PGresult *ctx, const char *pool, struct control *c)
{
	int64_t req = n(ctx, "clear_requested");
	char at[40];

	c->stop = 1;
	snprintf(c->what, sizeof(c->what), "pool '%s' is safety-stopped: a plan went over"
		 " the destructive budget", pool);
	snprintf(c->lift, sizeof(c->lift), "review the plan (spinctl drift), then"
		 " spinctl clear-safety-stop pool %s", pool);
	if (req > n(ctx, "stopped_at") && req > n(ctx, "clear_handled")) {
		cli_format_time(req, at, sizeof(at));
		snprintf(c->pending, sizeof(c->pending), "%s", at);
	}
}

/* The first control that blocks this workspace; 0 when one does, -1 if none. */
static int control_block(const struct workspace_spec *w, const PGresult *ctx, int64_t now,
			 struct control *c)
{
	const char *pool = w->pool;

	memset(c, 0, sizeof(*c));
	if (n(ctx, "global_paused") > now) {
		c->until = n(ctx, "global_paused");
		snprintf(c->what, sizeof(c->what), "paused globally (operator_controls.paused_until)");
		snprintf(c->lift, sizeof(c->lift), "spinctl resume all");
	} else if (t(ctx, "global_observe")) {
		snprintf(c->what, sizeof(c->what),
			 "observe-only mode is on globally (operator_controls.observe_only)");
		snprintf(c->lift, sizeof(c->lift), "spinctl observe-only all off");
	} else if (n(ctx, "pool_paused") > now) {
		c->until = n(ctx, "pool_paused");
		snprintf(c->what, sizeof(c->what), "pool '%s' is paused", pool);
		snprintf(c->lift, sizeof(c->lift), "spinctl resume pool %s", pool);
	} else if (t(ctx, "pool_observe")) {
		snprintf(c->what, sizeof(c->what), "pool '%s' is observe-only", pool);
		snprintf(c->lift, sizeof(c->lift), "spinctl observe-only pool %s off", pool);
	} else if (t(ctx, "safety_stopped")) {
		safety_block(ctx, pool, c);
	} else if (w->paused_until > now) {
		c->until = w->paused_until;
		snprintf(c->what, sizeof(c->what), "the workspace is paused");
		snprintf(c->lift, sizeof(c->lift), "spinctl resume workspace %s --pool %s",
			 w->name, pool);
	} else {
		return -1;
	}
	return 0;
}

/* blocked by, who must act, next attempt: for an operator control. */
static void print_control(const struct control *c, int64_t now)
{
	char at[40];

	if (c->until == CTL_UNTIL_RESUMED) {
		printf("blocked by:    %s until resumed\n", c->what);
		printf("who must act:  an operator: %s\n", c->lift);
		printf("next attempt:  none until an operator resumes it\n");
	} else if (c->until > 0) {
		cli_format_time(c->until, at, sizeof(at));
		printf("blocked by:    %s until %s\n", c->what, at);
		printf("who must act:  nobody: the pause ends by itself; to end it sooner, an"
		       " operator: %s\n", c->lift);
		printf("next attempt:  %s, when the pause ends (in %llds)\n", at,
		       (long long)((c->until - now + 999) / 1000));
	} else if (c->stop && c->pending[0]) {
		printf("blocked by:    %s; a clear was requested at %s\n", c->what, c->pending);
		printf("who must act:  nobody: spinupd lifts the stop on its next pass (and stops"
		       " the pool again if the same plan still breaks the budget)\n");
		printf("next attempt:  the next pass (the request wakes spinupd)\n");
	} else if (c->stop) {
		printf("blocked by:    %s\n", c->what);
		printf("who must act:  an operator: %s\n", c->lift);
		printf("next attempt:  none until an operator clears the stop\n");
	} else {
		printf("blocked by:    %s until turned off\n", c->what);
		printf("who must act:  an operator: %s\n", c->lift);
		printf("next attempt:  none until an operator turns it off\n");
	}
}

/* The first condition not True: False first, then Unknown; -1 if all True. */
static int blocking_cond(const struct workspace_status *st, int running)
{
	static const enum cond_type order[] = { COND_SCHEDULED, COND_INSTANCE_READY,
						COND_FILES_RESTORED, COND_CONTAINER_READY,
						COND_FILES_SYNCED, COND_READY };
	enum cond_status want;
	size_t i;

	for (want = CSTAT_FALSE;; want = CSTAT_UNKNOWN) {
		for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
			if (!running && order[i] != COND_FILES_SYNCED)
				continue;
			if (running && order[i] == COND_FILES_SYNCED)
				continue;
			if (st->conds[order[i]].status == want)
				return (int)order[i];
		}
		if (want == CSTAT_UNKNOWN)
			return -1;
	}
}

static int settled(const struct pgstore_ws_row *r)
{
	const struct workspace_status *st = &r->status;

	if (r->spec.deletion_requested_at)
		return 0;
	if (st->observed_generation != r->spec.generation)
		return 0;
	return r->spec.state == WS_STATE_RUNNING ? st->phase == PHASE_READY :
	       st->phase == PHASE_STOPPED;
}

static void print_next(const struct workspace_status *st, int64_t now)
{
	char at[40];

	if (!st->next_attempt_at || st->next_attempt_at <= now) {
		printf("next attempt:  the next pass (on any change, or within the period)\n");
		return;
	}
	cli_format_time(st->next_attempt_at, at, sizeof(at));
	printf("next attempt:  %s (in %llds, attempt %d)\n", at,
	       (long long)((st->next_attempt_at - now + 999) / 1000), st->attempts + 1);
}

static void print_context(const PGresult *ctx, int64_t now)
{
	char age[32];

	if (*v(ctx, "act_type")) {
		cli_format_age(n(ctx, "act_at"), now, age, sizeof(age));
		printf("last action:   %s %s %s ago%s%s\n", v(ctx, "act_type"), v(ctx, "act_state"),
		       age, *v(ctx, "act_error") ? ": " : "", v(ctx, "act_error"));
	}
	if (n(ctx, "ndrift"))
		printf("drift:         %lld open finding(s): spinctl drift\n", (long long)n(ctx, "ndrift"));
	cli_format_age(n(ctx, "last_pass"), now, age, sizeof(age));
	printf("operator:      %s, last pass %s ago\n", *v(ctx, "leader") ? v(ctx, "leader") :
	       "no leader yet", age);
}

static void explain(const struct pgstore_ws_row *r, const PGresult *ctx)
{
	const struct workspace_status *st = &r->status;
	int64_t now = cli_now_ms();
	char since[32];
	struct control ctl;
	int blocked = control_block(&r->spec, ctx, now, &ctl) == 0;
	int c;

	printf("workspace:     %s (pool %s, owner %s, wants %s%s)\n", r->spec.name, r->spec.pool,
	       r->spec.owner, ws_state_name(r->spec.state),
	       r->spec.deletion_requested_at ? ", deletion requested" : "");
	if (!r->has_status) {
		printf("phase:         - (not observed yet)\n");
	} else {
		cli_format_age(st->phase_since, now, since, sizeof(since));
		printf("phase:         %s for %s (generation %lld observed %lld)\n",
		       ws_phase_name(st->phase), since, (long long)r->spec.generation,
		       (long long)st->observed_generation);
	}
	if (blocked) {
		print_control(&ctl, now);
	} else if (!r->has_status) {
		printf("blocked by:    NotYetObserved: the operator has not reconciled it yet\n");
		printf("who must act:  nobody if spinupd runs: it picks the row up on its next pass\n");
	} else if (settled(r)) {
		printf("blocked by:    nothing: the workspace is %s%s%s\n", ws_phase_name(st->phase),
		       st->url[0] ? " at " : "", st->url);
	} else {
		c = blocking_cond(st, r->spec.state == WS_STATE_RUNNING && !r->spec.deletion_requested_at);
		if (c >= 0)
			printf("blocked by:    %s=%s %s%s%s\n", cond_type_name((enum cond_type)c),
			       cond_status_name(st->conds[c].status), st->conds[c].reason,
			       st->conds[c].message[0] ? ": " : "", st->conds[c].message);
		else
			printf("blocked by:    status not yet updated to generation %lld\n",
			       (long long)r->spec.generation);
		printf("who must act:  %s\n", who(st->error_class));
		print_next(st, now);
	}
	print_context(ctx, now);
}

/* Not there: say so, and when it was finalized if its history says it was. */
static void explain_gone(struct pgstore *s, const char *name, const char *pool)
{
	const char *params[1] = { name };
	struct err e = ERR_INIT;
	PGresult *r = NULL;
	char at[40];

	if (!pgstore_exec(s, "why", "SELECT spinup_ms(max(at)) AS at FROM workspace_events"
			  " WHERE workspace_name = $1 AND type = 'DELETE_COMPLETED'", 1, params, &r, &e) &&
	    n(r, "at")) {
		cli_format_time(n(r, "at"), at, sizeof(at));
		cli_error("workspace '%s' not found: it was deleted at %s (DELETE_COMPLETED);"
			  " spinctl events %s shows its history", name, at, name);
	} else {
		cli_error("workspace '%s' not found%s%s", name, pool ? " in pool " : "",
			  pool ? pool : "");
	}
	PQclear(r);
}

int cmd_why(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pgstore_ws_row *rows = NULL;
	struct pgstore *s = NULL;
	struct err e = ERR_INIT;
	PGresult *ctx = NULL;
	const char *pool = NULL, *name, *params[2];
	char id[24];
	size_t nrows = 0;
	int c, rc = CLI_EXIT_OK;

	optind = 0;
	while ((c = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pool = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("why", "unknown option");
		}
	}
	if (optind >= argc)
		return cli_usage_error("why", "which workspace? spinctl why NAME");
	name = argv[optind++];
	if (optind < argc)
		return cli_usage_error("why", "unexpected argument '%s'", argv[optind]);
	if (cli_open_store(g, 1, &s))
		return CLI_EXIT_ERROR;
	if (pgstore_list_workspaces(s, pool, name, &rows, &nrows, &e)) {
		cli_error("%s", e.msg);
		rc = CLI_EXIT_ERROR;
	} else if (nrows == 0) {
		explain_gone(s, name, pool);
		rc = CLI_EXIT_ERROR;
	} else if (nrows > 1) {
		cli_error("workspace '%s' exists in %zu pools: name one with --pool", name, nrows);
		rc = CLI_EXIT_ERROR;
	} else {
		snprintf(id, sizeof(id), "%" PRId64, rows[0].spec.id);
		params[0] = id;
		params[1] = rows[0].spec.pool;
		if (pgstore_exec(s, "why", CTX_SQL, 2, params, &ctx, &e)) {
			cli_error("%s", e.msg);
			rc = CLI_EXIT_ERROR;
		} else {
			explain(&rows[0], ctx);
		}
	}
	PQclear(ctx);
	free(rows);
	pgstore_free(s);
	return rc;
}
