/*
 * pgstate.h - the reconciler's store: what one pass reads from Postgres and
 * what it writes back, with fencing (DESIGN.md invariant 5) and the action
 * journal (invariant 6).
 *
 * A pass costs a constant number of round trips whatever the row count:
 *   pgstate_load      ONE round trip: every desired row, last status,
 *                     instance and pool records, operator controls, open
 *                     drift, pending journal entries and the fencing epoch,
 *                     in one read-only repeatable-read transaction (several
 *                     statements in one simple-protocol message)
 *   pgstate_settle    one statement: pending entries left by an earlier pass
 *                     (a crashed leader) closed as done/failed from observation
 *   pgstate_journal   one statement: the pass's actions, pending, before any runs
 *   pgstate_record    ONE round trip: a libpq pipeline of at most
 *                     PGSTATE_RECORD_STMTS statements and one Sync, run as one
 *                     implicit transaction: status changes, events, drift
 *                     (new, reopened with a flap, touched, resolved), instance
 *                     and pool records, journal results, row finalisation,
 *                     the pass row
 * Arrays travel as one jsonb parameter each (jsonb_to_recordset); only rows
 * that differ from the loaded snapshot are sent.
 *
 * Fencing: every write first locks the lease row of operator_leases FOR
 * SHARE if it still holds our epoch (the record's first statement fails
 * otherwise, rolling the whole pipeline back). A stale epoch fails the write
 * with SP_EFENCED and nothing is written. pgstate_acquire_epoch bumps the epoch
 * (leadership acquisition); the bump waits for a writer's record in flight
 * (the server runs a whole pipeline once its Sync arrives, so a stopped client
 * holds no lock), bounded by lock_timeout; idle_in_transaction_session_timeout
 * guards any explicit transaction left open.
 *
 * Errors as pgstore.h (SP_EUNAVAIL, SP_EIO when the connection broke: call
 * pgstate_reconnect), plus SP_EFENCED. All calls block, bounded by the
 * store's connect and statement timeouts.
 *
 * Ownership: struct pgstate owns its connection. A snapshot owns its arrays
 * (pgstate_snapshot_release). The per-pass journal state lives in struct
 * pgstate from pgstate_journal until the next one.
 */
#ifndef SPINUP_PGSTATE_H
#define SPINUP_PGSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/pgstore.h"
#include "model/err.h"
#include "model/plan.h"

#define PGSTATE_LEASE_DEFAULT "spinup"
#define PGSTATE_HOLDER_MAX 127
#define PGSTATE_RECORD_STMTS 14     /* most statements one pgstate_record sends */
#define PGSTATE_IDLE_TX_TIMEOUT_MS 10000
#define PGSTATE_LOCK_TIMEOUT_MS 15000
/* An open drift finding's last_seen is rewritten at most this often when nothing else changed. */
#define PGSTATE_DRIFT_TOUCH_MS 30000

struct pgstate;

/* An open (unresolved) drift finding as stored. */
struct pgstate_drift {
	int64_t id;
	struct drift_finding f;
	int64_t first_seen, last_seen;  /* ms */
	int flap_count;
	int64_t silenced_until;         /* ms, 0 none */
};

/* A journal entry still pending when loaded. */
struct pgstate_pending {
	int64_t id;
	char key[ACTION_KEY_MAX + 1];
	enum action_type type;
	int64_t pool_id, workspace_id;
	char instance_id[OBS_INSTANCE_ID_MAX + 1];
	char asg_name[SPEC_ASG_MAX + 1];
	int capacity, flag;
	int64_t epoch;
	int64_t created_at;             /* ms */
};

/* Everything one pass plans from. Arrays are parallel where said. */
struct pgstate_snapshot {
	struct pool_spec *pools;
	size_t npools;
	struct workspace_spec *workspaces;   /* ordered by pool id, then id */
	struct workspace_status *status;     /* parallel to workspaces */
	unsigned char *has_status;           /* parallel to workspaces */
	size_t nworkspaces;
	struct instance_record *instances;
	size_t ninstances;
	struct pool_record *pool_records;
	size_t npool_records;
	struct pgstate_drift *drift;
	size_t ndrift;
	struct pgstate_pending *pending;
	size_t npending;
	int global_observe_only;
	int64_t global_paused_until;         /* ms */
	int64_t epoch;                       /* the lease row's epoch when loaded (0: none) */
};

void pgstate_snapshot_init(struct pgstate_snapshot *s);
void pgstate_snapshot_release(struct pgstate_snapshot *s);

/*
 * Connect (conninfo as pgstore_open), check the schema, set the session
 * timeouts. lease: the operator_leases row name (NULL: "spinup"); holder:
 * who we are, written with the epoch (e.g. "host:pid").
 */
int pgstate_open(const char *conninfo, const char *lease, const char *holder,
		 struct pgstate **out, struct err *e);
void pgstate_free(struct pgstate *p);

/* Reconnect after SP_EIO (and LISTEN again if we were listening). */
int pgstate_reconnect(struct pgstate *p, struct err *e);
/* Whether the connection is usable. */
int pgstate_ok(struct pgstate *p);
/* The store, lent (for spinctl-style reads). */
struct pgstore *pgstate_store(struct pgstate *p);
/* Network round trips so far (every load, write and LISTEN counts its exchanges). */
unsigned long pgstate_round_trips(const struct pgstate *p);

/* LISTEN spinup_desired. */
int pgstate_listen(struct pgstate *p, struct err *e);
/* The socket to poll() for notifications; -1 when disconnected. */
int pgstate_socket(struct pgstate *p);
/*
 * Read what arrived on the socket and drain queued notifications. Returns
 * how many were drained (0 or more) or SP_EIO when the connection broke.
 */
int pgstate_notifications(struct pgstate *p, struct err *e);

/*
 * Leadership acquired: bump the lease row's epoch (creating it at 1), set
 * holder; *epoch gets the new value, which all later writes are fenced by.
 */
int pgstate_acquire_epoch(struct pgstate *p, int64_t *epoch, struct err *e);
int64_t pgstate_epoch(const struct pgstate *p);
/* Forget the epoch (leadership lost): writes fail with SP_EFENCED until the next acquire. */
void pgstate_drop_epoch(struct pgstate *p);

/* Load everything a pass needs (one round trip). s is replaced on success. */
int pgstate_load(struct pgstate *p, struct pgstate_snapshot *s, struct err *e);

/* Closing a pending entry from observation. */
struct pgstate_settlement {
	int64_t id;
	int done;                 /* 1 done, 0 failed */
	char note[128];           /* why: "observed: container running" */
};
int pgstate_settle(struct pgstate *p, const struct pgstate_settlement *v, size_t n,
		   struct err *e);

/*
 * Journal the pass's actions as pending, in one statement, before any runs.
 * Resets the per-pass journal state the callbacks below fill.
 */
int pgstate_journal(struct pgstate *p, const struct action *a, size_t n, struct err *e);

/*
 * Per-pass journal state, for the executor's journal callbacks
 * (reconciler/journal.c adapts these to struct exec_journal):
 *   pgstate_journal_has     whether pgstate_journal wrote this key this pass
 *   pgstate_journal_one     journal one action alone (fenced, one statement)
 *   pgstate_journal_result  remember an action's result (written by record)
 *   pgstate_journal_discard the action never ran (the pass hit its mutation
 *                           limit) and is planned again: record deletes the entry
 *   pgstate_finalize_row    remember a workspace row to finalize in record:
 *                           DELETE_COMPLETED event, then the row goes
 */
int pgstate_journal_has(const struct pgstate *p, const char *key);
int pgstate_journal_one(struct pgstate *p, const struct action *a, struct err *e);
int pgstate_journal_result(struct pgstate *p, const struct action *a, int rc, const char *msg);
int pgstate_journal_discard(struct pgstate *p, const struct action *a);
int pgstate_finalize_row(struct pgstate *p, int64_t workspace_id);

/* What a pass writes besides the plan. */
struct pgstate_pass {
	int64_t started_at, finished_at;      /* ms */
	int64_t now;                          /* the plan's now: times written */
	const struct plan_output *plan;       /* NULL: only the pass row and journal */
	const struct plan_pool_obs *obs;      /* parallel to snap->pools, may be NULL */
	int nactions;
	const char *outcome;                  /* "converged", "waiting", "stuck", "acted",
					       * "blind" (a group could not be described),
					       * "fenced", "error" */
	const char *error;                    /* "" or the pass's error */
	int64_t prune_before;                 /* ms; > 0: also delete pass rows, finished
					       * journal entries and resolved drift older
					       * than this (events are kept forever) */
};

/* What pgstate_record wrote (rows). */
struct pgstate_record_stats {
	int statements;
	int status, events, drift_new, drift_reopened, drift_touched, drift_resolved;
	int instances_written, instances_deleted, pools_written, journal_done, journal_discarded;
	int rows_deleted, pruned;
};

/*
 * Write one pass's outputs in one fenced transaction, only rows that
 * changed relative to snap. stats may be NULL. SP_EFENCED writes nothing.
 */
int pgstate_record(struct pgstate *p, const struct pgstate_snapshot *snap,
		   const struct pgstate_pass *pass, struct pgstate_record_stats *stats,
		   struct err *e);

#endif
