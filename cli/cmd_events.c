/* cmd_events.c - spinctl events: the event history, newest last. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cmd.h"
#include "model/banned.h"

static const char usage[] =
	"usage: spinctl events [NAME] [--limit N] [-o table|json]\n\n"
	"The events the operator wrote (one per phase change), oldest first, newest\n"
	"last; of one workspace when NAME is given (also after it was deleted).\n\n"
	"  -n, --limit N        the newest N events (default 100, at most 10000)\n"
	"  -o, --output FORMAT  table (default) or json\n"
	"      --db URL         the database (default $DATABASE_URL)\n";

static const char *phase_or_dash(enum ws_phase p)
{
	return p == PHASE_MAX ? "-" : ws_phase_name(p);
}

static void events_table(const struct pgstore_event_row *v, size_t n, int with_name)
{
	struct cli_table t;
	char at[40];
	size_t i;

	cli_table_init(&t, with_name ? 7 : 6);
	cli_table_add(&t, "TIME");
	if (with_name)
		cli_table_add(&t, "WORKSPACE");
	cli_table_add(&t, "TYPE");
	cli_table_add(&t, "FROM");
	cli_table_add(&t, "TO");
	cli_table_add(&t, "REASON");
	cli_table_add(&t, "MESSAGE");
	for (i = 0; i < n; i++) {
		cli_format_time(v[i].ev.at, at, sizeof(at));
		cli_table_add(&t, at);
		if (with_name)
			cli_table_add(&t, v[i].workspace_name[0] ? v[i].workspace_name : "-");
		cli_table_add(&t, v[i].ev.type);
		cli_table_add(&t, phase_or_dash(v[i].ev.from));
		cli_table_add(&t, phase_or_dash(v[i].ev.to));
		cli_table_add(&t, v[i].ev.reason[0] ? v[i].ev.reason : "-");
		cli_table_add(&t, v[i].ev.message);
	}
	cli_table_print(&t, stdout);
	cli_table_release(&t);
}

static void events_json(const struct pgstore_event_row *v, size_t n)
{
	json_t *a = json_array();
	char at[40], *s;
	size_t i;

	for (i = 0; i < n; i++) {
		cli_format_time(v[i].ev.at, at, sizeof(at));
		json_array_append_new(a, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
			"id", (json_int_t)v[i].id, "workspaceId", (json_int_t)v[i].ev.workspace_id,
			"workspace", v[i].workspace_name, "type", v[i].ev.type,
			"from", phase_or_dash(v[i].ev.from), "to", phase_or_dash(v[i].ev.to),
			"reason", v[i].ev.reason, "message", v[i].ev.message, "at", at));
	}
	s = json_dumps(a, JSON_INDENT(2));
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(a);
}

int cmd_events(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "limit", required_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pgstore_event_row *rows = NULL;
	struct pgstore *s = NULL;
	struct err e = ERR_INIT;
	const char *name = NULL;
	long limit = 100;
	size_t n = 0;
	int c, json = 0, rc = CLI_EXIT_OK;
	char *end;

	optind = 0;
	while ((c = getopt_long(argc, argv, "n:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			limit = strtol(optarg, &end, 10);
			if (*end || end == optarg || limit < 1 || limit > PGSTORE_EVENTS_MAX)
				return cli_usage_error("events", "--limit wants 1..%d", PGSTORE_EVENTS_MAX);
			break;
		case 'o':
			if (strcmp(optarg, "table") && strcmp(optarg, "json"))
				return cli_usage_error("events", "unknown output format '%s'", optarg);
			json = !strcmp(optarg, "json");
			break;
		case 'h':
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("events", "unknown option");
		}
	}
	if (optind < argc)
		name = argv[optind++];
	if (optind < argc)
		return cli_usage_error("events", "unexpected argument '%s'", argv[optind]);
	if (cli_open_store(g, 1, &s))
		return CLI_EXIT_ERROR;
	if (pgstore_list_events(s, name, (size_t)limit, &rows, &n, &e)) {
		cli_error("%s", e.msg);
		rc = CLI_EXIT_ERROR;
	} else if (json) {
		events_json(rows, n);
	} else if (n) {
		events_table(rows, n, name == NULL);
	} else {
		fprintf(stderr, "no events%s%s\n", name ? " for workspace " : "", name ? name : "");
	}
	free(rows);
	pgstore_free(s);
	return rc;
}
