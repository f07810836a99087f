/*
 * spinctl - declare workspaces and pools, and see what the operator did.
 *
 * A command table in git's builtin style: main() takes the global options
 * (--db URL, --help), finds the command and hands it the rest of argv.
 * Each command lives in cli/cmd_<name>.c (see cli/cmd.h).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"

#define SPINCTL_VERSION "0.1.0"
#include "model/banned.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv, const struct cli *g);
	const char *summary;
};

/* One row per command; keep in the order `spinctl --help` should list them. */
static const struct command commands[] = {
	{ "migrate", cmd_migrate, "apply pending database migrations" },
	{ "apply", cmd_apply, "declare pools and workspaces from manifests" },
	{ "diff", cmd_diff, "show what apply would change, field by field" },
	{ "get", cmd_get, "list workspaces or pools with their status" },
	{ "delete", cmd_delete, "mark workspaces or pools for deletion" },
	{ "events", cmd_events, "show the event history of workspaces" },
	{ "why", cmd_why, "name the one thing blocking a workspace" },
	{ "drift", cmd_drift, "list differences between desired and observed state" },
	{ "pause", cmd_pause, "stop acting on a workspace, a pool or everything" },
	{ "resume", cmd_resume, "end a pause" },
	{ "observe-only", cmd_observe_only, "plan and report but change nothing (pool or all)" },
	{ "reconcile", cmd_reconcile, "ask the operator to look at a workspace now" },
	{ "clear-safety-stop", cmd_clear_safety_stop, "let a safety-stopped pool act again" },
	{ "silence", cmd_silence, "hide matching drift findings for a while, or list silences" },
	{ "unsilence", cmd_unsilence, "end a drift silence" },
};

static void usage(FILE *f)
{
	size_t i;

	fputs("usage: spinctl [--db URL] COMMAND [ARGS]\n\n"
	      "SpinUp's command line: declare desired state in Postgres, read status.\n\n"
	      "commands:\n", f);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
	fputs("\noptions:\n"
	      "  --db URL    the database (postgresql://... or key=value); default $DATABASE_URL\n"
	      "  -h, --help  this help; 'spinctl COMMAND --help' for a command\n"
	      "  --version   print the version and the schema version this binary expects\n\n"
	      "exit status: 0 ok, 1 error, 2 usage error ('diff': 0 no change, 1 changes, 2 error)\n",
	      f);
}

/*
 * Take --db URL / --db=URL out of argv, wherever it is (before "--").
 * Returns the new argc, or -1 when --db lacks its value.
 */
static int take_db(int argc, char **argv, const char **db)
{
	int i, j = 1;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			while (i < argc)
				argv[j++] = argv[i++];
			break;
		}
		if (!strcmp(argv[i], "--db")) {
			if (i + 1 >= argc)
				return -1;
			*db = argv[++i];
		} else if (!strncmp(argv[i], "--db=", 5)) {
			*db = argv[i] + 5;
		} else {
			argv[j++] = argv[i];
		}
	}
	argv[j] = NULL;
	return j;
}

int main(int argc, char **argv)
{
	struct cli g = { getenv("DATABASE_URL") };
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	argc = take_db(argc, argv, &g.db);
	if (argc < 0)
		return cli_usage_error("", "--db needs a value");
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("spinctl %s (schema version %d)\n", SPINCTL_VERSION, pgstore_latest_version());
		return CLI_EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1, &g);
	fprintf(stderr, "spinctl: '%s' is not a command\n\n", argv[1]);
	usage(stderr);
	return CLI_EXIT_USAGE;
}
