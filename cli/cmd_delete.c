/* cmd_delete.c - spinctl delete: mark workspaces or pools for deletion. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "model/banned.h"

static const char usage[] =
	"usage: spinctl delete workspace NAME [--pool POOL]\n"
	"       spinctl delete pool NAME\n"
	"       spinctl delete -f FILE|DIR|- [-f ...]\n\n"
	"Deletion is declarative: this marks the objects (deletion_requested_at);\n"
	"the operator syncs files, removes the container, releases capacity and\n"
	"only then removes the row. With -f, every document named in the files is\n"
	"marked in one transaction; if one does not exist, nothing is marked.\n\n"
	"  -f, --filename PATH   manifests naming what to delete; repeatable\n"
	"      --pool POOL       the pool of the workspace (needed when the name is\n"
	"                        used in several pools)\n"
	"      --db URL          the database (default $DATABASE_URL)\n";

static const char *mark_text(enum pgstore_mark m)
{
	return m == PGSTORE_MARKED ? "deletion requested" : "already marked for deletion";
}

static int delete_files(struct pgstore *s, char *const *sources, size_t n)
{
	struct manifest_set set;
	enum pgstore_mark *marks = NULL;
	struct err e = ERR_INIT;
	size_t i;
	int rc;

	manifest_set_init(&set);
	rc = cli_load_manifests(sources, n, &set);
	if (!rc && !(marks = calloc(set.n, sizeof(*marks)))) {
		cli_error("out of memory");
		rc = CLI_EXIT_ERROR;
	}
	if (!rc && pgstore_mark_set_deletion(s, &set, marks, &e)) {
		cli_error("%s; nothing was marked", e.msg);
		rc = CLI_EXIT_ERROR;
	}
	for (i = 0; !rc && i < set.n; i++)
		printf("%s/%s %s\n", cli_doc_kind(&set.docs[i]), cli_doc_name(&set.docs[i]),
		       mark_text(marks[i]));
	free(marks);
	manifest_set_release(&set);
	return rc;
}

static int delete_named(struct pgstore *s, const char *kind, const char *name, const char *pool)
{
	enum pgstore_mark m = PGSTORE_MARKED;
	struct err e = ERR_INIT;
	int rc, is_pool = !strcmp(kind, "pool") || !strcmp(kind, "pools");

	if (is_pool)
		rc = pgstore_mark_pool_deletion(s, name, &m, &e);
	else
		rc = pgstore_mark_workspace_deletion(s, pool, name, &m, &e);
	if (rc) {
		cli_error("%s", e.msg);
		return CLI_EXIT_ERROR;
	}
	printf("%s/%s %s\n", is_pool ? "pool" : "workspace", name, mark_text(m));
	return CLI_EXIT_OK;
}

static int known_kind(const char *k)
{
	return !strcmp(k, "workspace") || !strcmp(k, "workspaces") || !strcmp(k, "ws") ||
	       !strcmp(k, "pool") || !strcmp(k, "pools");
}

int cmd_delete(int argc, char **argv, const struct cli *g)
{
	static const struct option opts[] = {
		{ "filename", required_argument, NULL, 'f' },
		{ "pool", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *sources[CLI_MAX_SOURCES];
	struct pgstore *s = NULL;
	const char *pool = NULL;
	size_t nsources = 0;
	int c, rc, nargs;

	optind = 0;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (nsources == CLI_MAX_SOURCES)
				return cli_usage_error("delete", "more than %d -f options", CLI_MAX_SOURCES);
			sources[nsources++] = optarg;
			break;
		case 'p':
			pool = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("delete", "unknown option");
		}
	}
	nargs = argc - optind;
	if (nsources && nargs)
		return cli_usage_error("delete", "give either -f FILE or KIND NAME, not both");
	if (!nsources && nargs != 2)
		return cli_usage_error("delete", "what to delete: workspace NAME, pool NAME or -f FILE");
	if (!nsources && !known_kind(argv[optind]))
		return cli_usage_error("delete", "cannot delete '%s': workspace or pool", argv[optind]);
	if (cli_open_store(g, 1, &s))
		return CLI_EXIT_ERROR;
	if (nsources)
		rc = delete_files(s, sources, nsources);
	else
		rc = delete_named(s, argv[optind], argv[optind + 1], pool);
	pgstore_free(s);
	return rc;
}
