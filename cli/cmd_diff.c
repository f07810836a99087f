/* cmd_diff.c - spinctl diff: what apply would change, field by field. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "model/banned.h"

#define DIFF_EXIT_CHANGES 1
#define DIFF_EXIT_ERROR 2

static const char usage[] =
	"usage: spinctl diff -f FILE|DIR|- [-f ...]\n\n"
	"Show what 'spinctl apply' would change, field by field, with the writer\n"
	"who last set each changed field (a field owned by another writer than\n"
	"spinctl is a conflict apply refuses without --force-conflicts).\n"
	"Nothing is written.\n\n"
	"  -f, --filename PATH   a manifest, a directory, or - for stdin; repeatable\n"
	"      --db URL          the database (default $DATABASE_URL)\n\n"
	"exit status: 0 no change, 1 changes, 2 error\n";

static void print_diff(const struct manifest_set *set, const struct pgstore_apply_result *r)
{
	size_t i, j;

	for (i = 0; i < set->n; i++) {
		const struct manifest_doc *d = &set->docs[i];
		if (r->outcomes[i] == PGSTORE_UNCHANGED)
			continue;
		printf("%s/%s", cli_doc_kind(d), cli_doc_name(d));
		if (d->kind == MANIFEST_WORKSPACE)
			printf(" (pool %s)", d->ws.pool);
		printf(": %s\n", r->outcomes[i] == PGSTORE_CREATED ? "would be created"
								    : "would be configured");
		for (j = 0; j < r->nchanges; j++)
			if (r->changes[j].doc == i)
				cli_print_change(stdout, &r->changes[j]);
	}
}

int cmd_diff(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "filename", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pgstore_apply_opts o = { 1, 1 };
	struct pgstore_apply_result r;
	char *sources[CLI_MAX_SOURCES];
	struct manifest_set set;
	struct pgstore *s = NULL;
	struct err e = ERR_INIT;
	size_t nsources = 0;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (nsources == CLI_MAX_SOURCES)
				return cli_usage_error("diff", "more than %d -f options", CLI_MAX_SOURCES);
			sources[nsources++] = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		default:
			cli_usage_error("diff", "unknown option");
			return DIFF_EXIT_ERROR;
		}
	}
	if (optind < argc || !nsources) {
		cli_usage_error("diff", optind < argc ? "unexpected argument" : "give -f FILE|DIR|-");
		return DIFF_EXIT_ERROR;
	}
	manifest_set_init(&set);
	pgstore_apply_result_init(&r);
	rc = cli_load_manifests(sources, nsources, &set) ? DIFF_EXIT_ERROR : 0;
	if (!rc && cli_open_store(g, 1, &s))
		rc = DIFF_EXIT_ERROR;
	if (!rc && pgstore_apply(s, &set, &o, &r, &e)) {
		cli_error("%s", e.msg);
		rc = DIFF_EXIT_ERROR;
	}
	if (!rc) {
		print_diff(&set, &r);
		rc = r.nchanges ? DIFF_EXIT_CHANGES : 0;
	}
	pgstore_apply_result_release(&r);
	pgstore_free(s);
	manifest_set_release(&set);
	return rc;
}
