/* cmd_apply.c - spinctl apply: declare pools and workspaces from manifests. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "model/banned.h"

static const char usage[] =
	"usage: spinctl apply -f FILE|DIR|- [-f ...] [--dry-run] [--force-conflicts]\n\n"
	"Validate every document of every manifest first (all errors are printed as\n"
	"FILE:LINE:COL: FIELD: message), then write them all in one transaction:\n"
	"pools and workspaces are upserted by name. Any error writes nothing.\n\n"
	"  -f, --filename PATH   a manifest, a directory (read recursively for *.yaml\n"
	"                        and *.yml) or - for stdin; repeatable\n"
	"      --dry-run         print what would happen, write nothing\n"
	"      --force-conflicts overwrite fields last set by another writer (the UI)\n"
	"      --db URL          the database (default $DATABASE_URL)\n";

static void print_conflicts(const struct manifest_set *set, const struct pgstore_apply_result *r)
{
	size_t i;

	for (i = 0; i < r->nchanges; i++) {
		const struct pgstore_change *c = &r->changes[i];
		const struct manifest_doc *d = &set->docs[c->doc];
		if (!c->conflict)
			continue;
		fprintf(stderr, "conflict: %s/%s: field %s was last set by '%s':\n", cli_doc_kind(d),
			cli_doc_name(d), c->field, c->owner);
		cli_print_change(stderr, c);
	}
	fputs("nothing was written; apply with --force-conflicts to take these fields over\n",
	      stderr);
}

static int run(struct pgstore *s, const struct manifest_set *set, int dry, int force)
{
	struct pgstore_apply_opts o = { dry, force };
	struct pgstore_apply_result r;
	struct err e = ERR_INIT;
	size_t i;
	int rc;

	pgstore_apply_result_init(&r);
	rc = pgstore_apply(s, set, &o, &r, &e);
	if (rc == SP_ECONFLICT && r.nconflicts)
		print_conflicts(set, &r);
	if (rc) {
		cli_error("%s", e.msg);
	} else {
		for (i = 0; i < set->n; i++)
			printf("%s/%s %s%s\n", cli_doc_kind(&set->docs[i]), cli_doc_name(&set->docs[i]),
			       pgstore_outcome_name(r.outcomes[i]), dry ? " (dry run)" : "");
	}
	pgstore_apply_result_release(&r);
	return rc ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

int cmd_apply(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "filename", required_argument, NULL, 'f' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "force-conflicts", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *sources[CLI_MAX_SOURCES];
	struct manifest_set set;
	struct pgstore *s = NULL;
	size_t nsources = 0;
	int c, dry = 0, force = 0, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (nsources == CLI_MAX_SOURCES)
				return cli_usage_error("apply", "more than %d -f options", CLI_MAX_SOURCES);
			sources[nsources++] = optarg;
			break;
		case 'n':
			dry = 1;
			break;
		case 'F':
			force = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("apply", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("apply", "unexpected argument '%s'", argv[optind]);
	if (!nsources)
		return cli_usage_error("apply", "nothing to apply: give -f FILE|DIR|-");
	manifest_set_init(&set);
	rc = cli_load_manifests(sources, nsources, &set);
	if (!rc)
		rc = cli_open_store(g, 1, &s) ? CLI_EXIT_ERROR : 0;
	if (!rc)
		rc = run(s, &set, dry, force);
	pgstore_free(s);
	manifest_set_release(&set);
	return rc;
}
