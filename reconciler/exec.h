/*
 * exec.h - the executor: step 5 of a reconcile pass ("act").
 *
 * Takes the planner's actions (model/plan.h) and performs them through the
 * cloud and agent drivers, in a safe order, journaling each one before it
 * runs (invariant 6), under a per-pass mutation limit, with the caller's
 * fencing epoch on every agent call (invariant 5).
 *
 * Order, whatever the order of the input (stable within a phase):
 *   1 ACT_PROTECT with flag 1      busy instances protected before any size change
 *   2 ACT_SET_CAPACITY             absolute, as planned
 *   3 ACT_PROTECT with flag 0
 *   4 ACT_SET_UNHEALTHY, ACT_TERMINATE
 *   5 ACT_ENSURE_CONTAINER
 *   6 ACT_SYNC
 *   7 ACT_STOP_CONTAINER, ACT_REMOVE_CONTAINER
 *   8 ACT_DELETE_ROW               handed to the caller, never a driver call
 * ACT_PROTECT actions of one group and one flag go out together, at most
 * CLOUD_PROTECT_BATCH ids a SetInstanceProtection call.
 *
 * Safety rules:
 *   - SP_EFENCED from any call (or from the journal) stops the pass: every
 *     action not yet run is skipped with SP_EFENCED; nothing else is tried.
 *   - A journal pending() failure also stops the pass (an action that
 *     cannot be journaled does not run).
 *   - An ensure on an instance whose protection (flag 1) failed this pass
 *     is skipped (SP_EBUSY): a container never lands on an instance that
 *     scale-in may still pick.
 *   - An ensure in a pool where an ACT_SET_UNHEALTHY failed this pass is
 *     skipped (SP_EBUSY): the workspaces of that instance may be planned
 *     elsewhere while their containers still run there (invariant 1).
 *   - An ACT_DELETE_ROW whose workspace had a failed or skipped action this
 *     pass is skipped (SP_EBUSY).
 *   - Past cfg.max_mutations driver calls the rest is skipped with
 *     SP_ELIMIT (the next pass plans again).
 *   - No driver call is issued unless the lease is known to be held
 *     (struct exec_lease below): a lease that cannot be renewed stops the
 *     pass as fenced (SP_EFENCED), because the cloud API carries no epoch.
 * Idempotent answers count as success: terminating a gone instance
 * (SP_ENOTFOUND) and stopping a missing container (SP_ENOTFOUND).
 * The report does not amend the planner's instance records: a failed
 * ACT_SET_UNHEALTHY or ACT_TERMINATE may have taken all the same (a lost
 * reply, or the first run of a plan a crash before record replayed), so it
 * stays recorded as asked; the planner forgets a mark the group did not
 * take once a complete listing shows the instance alive and healthy.
 *
 * Blocking: as long as the driver calls take (each has its own timeout),
 * plus a lease renewal every ttl/3 of a long pass. The executor keeps no
 * state between passes but the lease's renewed_at, which the caller owns.
 */
#ifndef SPINUP_EXEC_H
#define SPINUP_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "../drivers/agentc.h"
#include "../drivers/cloud.h"
#include "../model/err.h"
#include "../model/plan.h"

/*
 * The journal (the daemon writes it to the `actions` table). pending() is
 * called before an action's driver call and must return 0 for the call to
 * happen; done() after it, with the call's result (rc 0 or SP_E*, e the
 * detail, never NULL). For a protection batch, pending() runs for every
 * action of the batch before the call and done() for each after it.
 * Either pointer may be NULL (nothing journaled).
 */
struct exec_journal {
	void *ctx;
	int (*pending)(void *ctx, const struct action *a, struct err *e);
	void (*done)(void *ctx, const struct action *a, int rc, const struct err *e);
	/*
	 * Optional: finalize an ACT_DELETE_ROW (DELETE_COMPLETED event, then the
	 * row goes). NULL: the action is reported EXEC_HANDED_OFF and the caller
	 * deletes the row itself.
	 */
	int (*delete_row)(void *ctx, const struct action *a, struct err *e);
};

/*
 * The lease guard (invariant 5). Postgres and the agents check our fencing
 * epoch, the cloud API cannot: a leader stopped or cut off after journaling
 * must not act once another may lead. Before every driver call (cloud or
 * agent), on the caller's monotonic clock now():
 *   - before renewed_at + ttl_ms / 3 the call goes;
 *   - later, the lease is renewed first (renew(): compare-and-set on the
 *     lease key); success moves renewed_at to the time the renewal started;
 *   - a renewal that fails (Redis unreachable), finds the lease no longer
 *     ours, or returns past the deadline renewed_at + ttl_ms - margin_ms
 *     stops the pass as fenced: that call and every later one is skipped
 *     with SP_EFENCED, report.lease_lost is set.
 * So a healthy leader renews during a long pass, and a resumed stale one is
 * stopped by its first renewal. renewed_at is in/out: the time the last
 * successful acquire or renew STARTED (the lease runs from there at least).
 */
struct exec_lease {
	void *ctx;
	int64_t (*now)(void *ctx);                          /* monotonic ms */
	int (*renew)(void *ctx, int *held, struct err *e);  /* 0 and *held, or SP_E* */
	int64_t ttl_ms, margin_ms;
	int64_t renewed_at;
};

struct exec_config {
	int64_t epoch;            /* our fencing epoch, sent with every agent call */
	int max_mutations;        /* driver calls allowed this pass; 0 = no limit */
	struct exec_lease *lease; /* NULL: no lease check (tools, tests of the rest) */
};

enum exec_outcome {
	EXEC_NOT_RUN,             /* not reached (internal; never in a finished report) */
	EXEC_OK,                  /* the driver call (or delete_row) succeeded */
	EXEC_FAILED,              /* it was tried and failed: rc, cls, msg say why */
	EXEC_SKIPPED,             /* not tried: rc is SP_EFENCED, SP_ELIMIT or SP_EBUSY */
	EXEC_HANDED_OFF,          /* ACT_DELETE_ROW left to the caller */
	EXEC_OUTCOME_MAX
};

const char *exec_outcome_name(enum exec_outcome o);   /* "ok", "failed", ... */

struct exec_result {
	enum exec_outcome outcome;
	int rc;                   /* 0 or SP_E* */
	enum sp_class cls;        /* sp_code_class(rc) */
	char msg[ERR_MSG_MAX];
};

/* Per pass: results[i] is about actions[i] of the input. */
struct exec_report {
	struct exec_result *results;
	size_t n;
	int calls;                /* driver calls made (what max_mutations limits) */
	int ok, failed, skipped, handed_off;
	int fenced;               /* an SP_EFENCED stopped the pass */
	int lease_lost;           /* ... because the lease could not be renewed */
	int limited;              /* max_mutations stopped the pass */
	int renewals;             /* lease renewals made */
};

void exec_report_init(struct exec_report *r);
void exec_report_release(struct exec_report *r);

/*
 * Perform actions[0..n). The report is (re)filled for every action; the
 * return is 0 when the pass ran (even if actions failed: see the report),
 * SP_EFENCED when fencing stopped it, SP_ENOMEM when it could not start.
 */
int exec_run(const struct exec_config *cfg, struct cloud *cloud, struct agentc *agents,
	     const struct exec_journal *j, const struct action *actions, size_t n,
	     struct exec_report *r, struct err *e);

#endif
