/* cmd_migrate.c - spinctl migrate: apply pending database migrations. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cmd.h"
#include "model/banned.h"

static const char usage[] =
	"usage: spinctl migrate [--db URL]\n\n"
	"Apply the database migrations embedded in this binary that the database\n"
	"has not seen yet, each in its own transaction. Safe to run twice and from\n"
	"several processes at once (an advisory lock serialises them).\n";

int cmd_migrate(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct err e = ERR_INIT;
	struct pgstore *s = NULL;
	int c, applied = 0, version = 0, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		}
		return cli_usage_error("migrate", "unknown option");
	}
	if (optind < argc)
		return cli_usage_error("migrate", "unexpected argument '%s'", argv[optind]);
	if (cli_open_store(g, 0, &s))
		return CLI_EXIT_ERROR;
	rc = pgstore_migrate(s, &applied, &e);
	if (!rc)
		rc = pgstore_schema_version(s, &version, &e);
	if (rc)
		cli_error("migrate: %s", e.msg);
	else if (applied)
		printf("migrate: applied %d migration%s, schema at version %d\n", applied,
		       applied == 1 ? "" : "s", version);
	else
		printf("migrate: schema at version %d, nothing to do\n", version);
	pgstore_free(s);
	return rc ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
