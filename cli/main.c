/*
 * spinctl - declare pools and workspaces, and read what the operator did.
 *
 * The command table (git's builtin style, see cli/cmd.h): main() takes the
 * global option --db URL (anywhere before "--"), finds the command named
 * by the first other argument, and hands it argv from that name on.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "../model/banned.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv, const struct cli *g);
	const char *summary;
};

static const struct command commands[] = {
	{ "migrate", cmd_migrate, "apply pending database migrations" },
	{ "apply", cmd_apply, "declare pools and workspaces from manifests" },
	{ "diff", cmd_diff, "show what apply would change" },
	{ "get", cmd_get, "list workspaces or pools with their status" },
	{ "delete", cmd_delete, "mark workspaces or pools for deletion" },
	{ "events", cmd_events, "show the events of workspaces" },
	{ "why", cmd_why, "name what blocks a workspace and who must act" },
	{ "drift", cmd_drift, "list drift findings (exit 0 in sync, 1 drift, 2 error)" },
};

static void usage(FILE *f)
{
	size_t i;

	fputs("usage: spinctl [--db URL] COMMAND [ARGS]\n\ncommands:\n", f);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("\noptions:\n"
	      "  --db URL    the database; default $DATABASE_URL\n"
	      "  -h, --help  this help; 'spinctl COMMAND --help' for one command\n", f);
}

/* Remove --db URL / --db=URL from argv (before "--"); new argc, or -1 without a value. */
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
	if (argc < 0) {
		fputs("spinctl: error: --db needs a URL\n", stderr);
		return CLI_EXIT_USAGE;
	}
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1, &g);
	fprintf(stderr, "spinctl: error: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CLI_EXIT_USAGE;
}
