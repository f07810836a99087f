/*
 * cmd.h - spinctl's commands and the helpers they share.
 *
 * spinctl is a command table (cli/main.c, git's builtin style): one
 * `int cmd_<name>(int argc, char **argv, const struct cli *g)` per
 * subcommand, in cli/cmd_<name>.c. argv[0] is the command name; the
 * function parses its own options (getopt_long, --help on each) and
 * returns the process exit code. To add a command: write cli/cmd_foo.c,
 * declare cmd_foo() below, add one row to the table in cli/main.c.
 *
 * Exit codes: 0 success, 1 error (bad input, database refused, conflict),
 * 2 usage error (unknown option, missing argument). `diff` uses 0/1/2 as
 * kubectl does (no change / changes / error).
 *
 * Messages go to stderr as "spinctl: error: ...", results to stdout.
 */
#ifndef SPINUP_CLI_CMD_H
#define SPINUP_CLI_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "drivers/pgstore.h"
#include "model/manifest.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_ERROR 1
#define CLI_EXIT_USAGE 2

#define CLI_MAX_FILES 10000      /* manifest files one apply reads */
#define CLI_MAX_DEPTH 16         /* directory recursion */
#define CLI_MAX_SOURCES 256      /* -f options */

/* Global options, parsed by main before the command runs. */
struct cli {
	const char *db;          /* --db URL, else DATABASE_URL; NULL when neither */
};

int cmd_migrate(int argc, char **argv, const struct cli *g);
int cmd_apply(int argc, char **argv, const struct cli *g);
int cmd_diff(int argc, char **argv, const struct cli *g);
int cmd_get(int argc, char **argv, const struct cli *g);
int cmd_delete(int argc, char **argv, const struct cli *g);
int cmd_events(int argc, char **argv, const struct cli *g);
int cmd_why(int argc, char **argv, const struct cli *g);
int cmd_drift(int argc, char **argv, const struct cli *g);
int cmd_pause(int argc, char **argv, const struct cli *g);
int cmd_resume(int argc, char **argv, const struct cli *g);
int cmd_observe_only(int argc, char **argv, const struct cli *g);
int cmd_reconcile(int argc, char **argv, const struct cli *g);
int cmd_clear_safety_stop(int argc, char **argv, const struct cli *g);
int cmd_silence(int argc, char **argv, const struct cli *g);
int cmd_unsilence(int argc, char **argv, const struct cli *g);

/*
 * "90s", "15m", "2h", "1d" (a bare number is seconds; at most 100,000,000 s)
 * into a Postgres interval text "N seconds" in out. 0, or -1 when s is not
 * such a duration (out untouched).
 */
int cli_parse_duration(const char *s, char *out, size_t outsz);

/* Row i's value of column name in r, "" when NULL or no such column (lent by r). */
const char *cli_col(const PGresult *r, int i, const char *name);

/* "spinctl: error: <msg>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Usage error: message, then "try 'spinctl CMD --help'"; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Connect to g->db; with check_schema, also insist the schema is current.
 * Prints the error (naming the cause: unreachable, not migrated) and
 * returns non-zero on failure.
 */
int cli_open_store(const struct cli *g, int check_schema, struct pgstore **out);

/*
 * Read and decode every manifest named by sources ("-" = stdin, a file, or
 * a directory read recursively for *.yaml and *.yml in name order), then
 * run manifest_check_set over all of them. On any problem, every
 * diagnostic is printed to stderr as FILE:LINE:COL: FIELD: message and
 * CLI_EXIT_ERROR returned; set then holds nothing to write.
 */
int cli_load_manifests(char *const *sources, size_t nsources, struct manifest_set *set);

/*
 * Report a failed pgstore_apply: positioned at the document it came from
 * ("FILE:LINE:COL: message") when r names one, else as cli_error.
 */
void cli_apply_error(const struct manifest_set *set, const struct pgstore_apply_result *r,
		     const struct err *e);

/* Print s as a double-quoted string with control characters escaped. */
void cli_print_quoted(FILE *f, const char *s);

/* "5m", "3h", "2d" since ms; "-" when ms is 0. now_ms from the wall clock. */
void cli_format_age(int64_t ms, int64_t now_ms, char *out, size_t outsz);
/* "2026-11-23T01:02:03Z"; "-" when ms is 0. */
void cli_format_time(int64_t ms, char *out, size_t outsz);
int64_t cli_now_ms(void);

/* "  field: "old" -> "new"  (owner: ui, conflict)" */
void cli_print_change(FILE *f, const struct pgstore_change *c);

/* A text table: cells added row by row, columns padded to fit when printed. */
struct cli_table {
	size_t ncols;
	char **cells;
	size_t ncells, alloc;
};
void cli_table_init(struct cli_table *t, size_t ncols);
void cli_table_release(struct cli_table *t);
int cli_table_add(struct cli_table *t, const char *cell);
void cli_table_print(const struct cli_table *t, FILE *f);

/* "pool" or "workspace" and the name of a document. */
const char *cli_doc_kind(const struct manifest_doc *d);
const char *cli_doc_name(const struct manifest_doc *d);

#endif
