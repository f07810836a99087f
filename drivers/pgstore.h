/*
 * pgstore.h - the Postgres store: connection, migrations, and the desired
 * state as spinctl reads and writes it.
 *
 * The schema is drivers/migrations/001_init.sql (documented at its top).
 * Rows decode into the model/ structs through pgstore_decode_*(), which
 * read columns BY NAME from the views pool_specs, workspace_specs and
 * workspace_status_view, so any query selecting those columns (the
 * reconciler's pgstate.c included) can reuse them.
 *
 * Every query is parameterised (PQexecParams); every PGresult is cleared on
 * every path. All calls block, bounded by connect_timeout (connection) and
 * statement_timeout (each statement), both set by pgstore_open().
 *
 * Errors (struct err carries the detail, PostgreSQL's message included):
 *   SP_EUNAVAIL  the database cannot be reached / failed for a server reason
 *   SP_ESCHEMA   not migrated, or migrated by a newer binary ("run spinctl migrate")
 *   SP_EINVAL    a constraint refused a value (the message names the constraint)
 *   SP_EDENIED   a permission error (SQLSTATE 42501)
 *   SP_ENOTFOUND, SP_ECONFLICT, SP_ETIMEOUT, SP_EBUSY, SP_ENOMEM as usual
 */
#ifndef SPINUP_PGSTORE_H
#define SPINUP_PGSTORE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "model/err.h"
#include "model/manifest.h"
#include "model/plan.h"
#include "model/spec.h"
#include "model/status.h"

#define PGSTORE_CONNECT_TIMEOUT_S 5
#define PGSTORE_STATEMENT_TIMEOUT_MS 30000
#define PGSTORE_EVENTS_MAX 10000          /* rows one pgstore_list_events() returns */
#define PGSTORE_ROWS_MAX 100000           /* rows one list call returns */

/* NOTIFY channels (payloads documented in 001_init.sql). */
#define PGSTORE_CHANNEL_DESIRED "spinup_desired"
#define PGSTORE_CHANNEL_STATUS "spinup_status"

struct pgstore;

/*
 * Connect to conninfo (a "key=value" string or a postgresql:// URL).
 * connect_timeout and statement_timeout get our defaults unless conninfo
 * sets them. application_name (a token; NULL: "spinup") is also the session's
 * spinup.writer, the name field_owners records for its spec and control
 * changes (a spinup_ui member is recorded as 'ui' whatever it says). Does
 * not check the schema (so
 * migrate works on an empty database): call pgstore_check_schema().
 * 0, SP_EINVAL (bad conninfo), SP_EUNAVAIL (unreachable), SP_ENOMEM.
 */
int pgstore_open(const char *conninfo, const char *application_name, struct pgstore **out,
		 struct err *e);
void pgstore_free(struct pgstore *s);

/* The connection, lent (LISTEN, pgstate's own queries). Never NULL. */
PGconn *pgstore_conn(struct pgstore *s);

/* The latest migration version embedded in this binary. */
int pgstore_latest_version(void);

/*
 * Apply every embedded migration not yet recorded in schema_migrations,
 * each in its own transaction under pg_advisory_xact_lock, so concurrent
 * callers are safe and a second run applies nothing. *applied (may be
 * NULL) gets how many ran. 0, or the failing migration's error.
 */
int pgstore_migrate(struct pgstore *s, int *applied, struct err *e);

/* The highest applied version, 0 when never migrated. */
int pgstore_schema_version(struct pgstore *s, int *version, struct err *e);

/* 0 when the schema is exactly this binary's; else SP_ESCHEMA saying what to do. */
int pgstore_check_schema(struct pgstore *s, struct err *e);

/*
 * Map a failed result to an SP_E* code and a message "what: <server
 * message> (constraint NAME)". Returns the code; 0 if res succeeded.
 * Does not clear res.
 */
int pgstore_result_err(const PGresult *res, const char *what, struct err *e);

/*
 * PQexecParams with text parameters, checked. On success *out (when not
 * NULL) gets the result, which the caller clears; on failure nothing is
 * returned and the error is mapped as above.
 */
int pgstore_exec(struct pgstore *s, const char *what, const char *sql, int nparams,
		 const char *const *params, PGresult **out, struct err *e);

/* BEGIN / COMMIT / ROLLBACK (rollback never fails loudly). */
int pgstore_begin(struct pgstore *s, struct err *e);
int pgstore_commit(struct pgstore *s, struct err *e);
void pgstore_rollback(struct pgstore *s);

/*
 * Row decoding, by column name. Pools: the columns of the view pool_specs
 * (id, name, asg_name, region, slots_per_instance, warm_instances,
 * min_instances, max_instances, agent_port, default_image, generation,
 * paused_until, observe_only, safety_clear_requested_at). Workspaces: the view workspace_specs (id,
 * name, owner, pool, state, template_name, image, cpu_milli, memory_mib,
 * bucket, prefix, idle_timeout_s, labels, generation,
 * deletion_requested_at, paused_until, reconcile_requested_at). Status:
 * the view workspace_status_view. Columns missing from res decode as zero
 * / empty, except the required ones (id, name; workspace_id for status).
 * 0 or SP_EINVAL naming the column ("row violates the contract": a value
 * that does not fit the struct). out is untouched on failure.
 */
int pgstore_decode_pool(const PGresult *res, int row, struct pool_spec *out, struct err *e);
int pgstore_decode_workspace(const PGresult *res, int row, struct workspace_spec *out,
			     struct err *e);
int pgstore_decode_status(const PGresult *res, int row, struct workspace_status *out,
			  struct err *e);

/*
 * Column readers by name, for any query: a missing column or NULL reads as
 * "" / 0 / false. SP_EINVAL ("row violates the contract") when a value does
 * not fit: a string longer than dstsz-1, a non-integer, an int out of range.
 */
int pgstore_col_str(const PGresult *res, int row, const char *name, char *dst, size_t dstsz,
		    struct err *e);
int pgstore_col_i64(const PGresult *res, int row, const char *name, int64_t *out, struct err *e);
int pgstore_col_int(const PGresult *res, int row, const char *name, int *out, struct err *e);
int pgstore_col_bool(const PGresult *res, int row, const char *name);

/*
 * Labels <-> the jsonb object stored in workspaces.labels. The encoding is
 * canonical (keys sorted, compact), so two equal label sets encode to the
 * same string. pgstore_labels_encode gives a malloc'd string.
 */
int pgstore_labels_encode(const struct label *labels, int n, char **out, struct err *e);
int pgstore_labels_decode(const char *json, struct label *labels, int *n, struct err *e);

/* ----------------------------------------------------------- apply / diff */

enum pgstore_outcome { PGSTORE_CREATED, PGSTORE_CONFIGURED, PGSTORE_UNCHANGED, PGSTORE_OUTCOME_MAX };
const char *pgstore_outcome_name(enum pgstore_outcome o);  /* "created", ... */

/* One field apply changes (or would change). */
struct pgstore_change {
	size_t doc;              /* index into the manifest_set */
	const char *field;       /* column name: "image", "cpu_milli", ... (static) */
	char *old_value;         /* display form; NULL when the row is new */
	char *new_value;
	char owner[64];          /* who last set the field ("ui", "spinctl", ...), "" if new */
	int conflict;            /* owned by another writer than spinctl */
};

struct pgstore_apply_result {
	enum pgstore_outcome *outcomes;   /* parallel to the set's docs */
	size_t ndocs;
	struct pgstore_change *changes;
	size_t nchanges, alloc;
	size_t nconflicts;
	long failed_doc;                  /* the document an error came from; -1 when none */
};

void pgstore_apply_result_init(struct pgstore_apply_result *r);
void pgstore_apply_result_release(struct pgstore_apply_result *r);

struct pgstore_apply_opts {
	int dry_run;             /* do everything, then roll back */
	int force_conflicts;     /* overwrite fields another writer owns */
};

/*
 * Upsert every document of set (pools first, then workspaces, by name) in
 * ONE transaction, as writer "spinctl". Fills r with each document's
 * outcome and every changed field. Any error rolls everything back:
 * SP_ECONFLICT when a changed field is owned by another writer and
 * force_conflicts is off (r lists them all, e names the first), or when a
 * workspace is marked for deletion; SP_ENOTFOUND for a workspace whose pool
 * exists neither in the database nor in set; SP_EINVAL from a constraint
 * (e names it). r->failed_doc names the document an error came from.
 *
 * Cost: two reads (the touched pools and workspaces, locked FOR UPDATE),
 * then the changed rows written through a libpq pipeline with statements
 * prepared once per connection (named spinup_pool_insert, ..._update,
 * spinup_ws_insert, ..._update), read back every 256: a constant number of
 * round trips for a few hundred documents. Blocks; the connection's
 * statement_timeout bounds each statement.
 */
int pgstore_apply(struct pgstore *s, const struct manifest_set *set,
		  const struct pgstore_apply_opts *opts, struct pgstore_apply_result *r,
		  struct err *e);

/* ----------------------------------------------------------- reads */

struct pgstore_ws_row {
	struct workspace_spec spec;
	struct workspace_status status;
	int has_status;          /* 0: the operator has not written status yet */
	int64_t created_at;      /* ms */
};

struct pgstore_pool_row {
	struct pool_spec spec;
	int64_t created_at;      /* ms */
	int64_t deletion_requested_at;
	int nworkspaces;
	int ninstances;
	/* from pool_status (the operator's), 0 when it has no row yet */
	int safety_stopped;
	int64_t safety_stopped_at;        /* ms */
	int64_t safety_clear_handled_at;  /* ms; the echo of spec.safety_clear_requested_at */
};

/*
 * Workspaces with their latest status, ordered by pool and name. pool and
 * name filter when not NULL. *rows is malloc'd (free()), *n may be 0.
 */
int pgstore_list_workspaces(struct pgstore *s, const char *pool, const char *name,
			    struct pgstore_ws_row **rows, size_t *n, struct err *e);
int pgstore_list_pools(struct pgstore *s, const char *name, struct pgstore_pool_row **rows,
		       size_t *n, struct err *e);

/* An event with the name of its workspace (kept after the row is gone). */
struct pgstore_event_row {
	int64_t id;
	char workspace_name[SPEC_NAME_MAX + 1];
	struct ws_event ev;
};

/* Events, oldest first, the newest `limit` (<= PGSTORE_EVENTS_MAX). */
int pgstore_list_events(struct pgstore *s, const char *name, size_t limit,
			struct pgstore_event_row **rows, size_t *n, struct err *e);

/* ----------------------------------------------------------- deletion */

enum pgstore_mark { PGSTORE_MARKED, PGSTORE_ALREADY_MARKED };

/*
 * Mark a workspace for deletion (deletion_requested_at = now); the operator
 * finalizes. pool may be NULL when the name is unique across pools.
 * SP_ENOTFOUND, SP_ECONFLICT (name in several pools, pool needed).
 */
int pgstore_mark_workspace_deletion(struct pgstore *s, const char *pool, const char *name,
				    enum pgstore_mark *out, struct err *e);
int pgstore_mark_pool_deletion(struct pgstore *s, const char *name, enum pgstore_mark *out,
			       struct err *e);

/*
 * Mark every document of set in ONE transaction; marks[] (parallel to the
 * docs, may be NULL) gets each outcome. Any missing object rolls all back.
 */
int pgstore_mark_set_deletion(struct pgstore *s, const struct manifest_set *set,
			      enum pgstore_mark *marks, struct err *e);

#endif
