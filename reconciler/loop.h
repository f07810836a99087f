/*
 * loop.h - spinupd's reconcile loop: one thread, one loop (DESIGN.md).
 *
 * loop_run() polls the Postgres socket (LISTEN spinup_desired), the
 * metrics server and a self-pipe for signals, with one timer: the jittered
 * period, or the lease renewal if sooner. A notification runs a pass at
 * once (fresh changes first); the period catches drift the database cannot
 * announce.
 *
 * One pass: lead (Redis lease, then the Postgres fencing epoch on
 * acquisition) -> load -> observe (describe per pool, the agents of its
 * instances) -> settle journal entries an earlier leader left pending ->
 * plan_compute -> journal -> act (reconciler/exec) -> record -> mirror,
 * then one summary line in the log. Without the lease nothing is acted on
 * or written (a Redis outage stops acting, loses nothing).
 *
 * The lease guard (invariant 5; exec.h, struct exec_lease): the loop keeps
 * when its last successful acquire or renewal STARTED, on the monotonic
 * clock; the lease is trusted until then + lease_ttl_ms - lease_ttl_ms /
 * LOOP_LEASE_MARGIN_DIV. Before each cloud or agent mutation, once a third
 * of the TTL has passed, the executor renews it (so a long pass keeps it);
 * a renewal that fails or finds the lease gone ends the pass as fenced:
 * nothing more is issued, nothing recorded, leadership dropped.
 *
 * So no single agent call may outlast the lease: one may start up to a
 * third of the TTL after a renewal and must end before the next renewal
 * finds the lease expired. The HTTP agent driver's per-call timeout is
 * therefore the smaller of AGENTHTTP_CALL_TIMEOUT_MS and
 * LOOP_CALL_TIMEOUT_PCT % of lease_ttl_ms (6 s for the default 15 s TTL,
 * 2.4 s for the local stack's 6 s), and no call waits for a sync command
 * (agents answer 202 and sync in the background: drivers/agenthttp.h), so
 * a sync of minutes costs no leadership change.
 *
 * Ownership: the loop owns its drivers and its config copy.
 */
#ifndef SPINUP_RECONCILER_LOOP_H
#define SPINUP_RECONCILER_LOOP_H

#include <signal.h>
#include <stdint.h>

#include "model/err.h"
#include "model/plan.h"
#include "reconciler/config.h"

#define LOOP_LEASE_MARGIN_DIV 5     /* safety margin: a fifth of the lease TTL */
/* agent call timeout, % of the TTL: below 2/3 - 1/5 (what the guard leaves one call) */
#define LOOP_CALL_TIMEOUT_PCT 40

struct loop;

/* Counters for /metrics and the pass summary. */
struct loop_metrics {
	unsigned long passes, passes_failed, notify_wakeups, fenced, lease_acquired, lease_lost;
	unsigned long actions[ACT_MAX + 1];     /* by type, [ACT_MAX] failed ones */
	double last_pass_ms, pass_ms_sum;
	unsigned long pass_ms_buckets[8];       /* <=10,50,100,250,500,1000,5000,+Inf ms */
	int leader;
	int64_t epoch;
	int healthy;                            /* the database answered the last pass */
	int64_t last_pass_at;                   /* ms */
	unsigned long db_trips;                 /* database round trips so far */
	/* the last pass that reached its plan (leader or dry run) */
	unsigned long phases[PHASE_MAX];        /* workspaces by phase after it */
	unsigned long workspaces, drift_findings, actions_planned;
	char last_outcome[16];                  /* converged, acted, waiting, stuck, error ... */
	/* --cloud sim only: the world's ground truth after the last pass */
	int sim;
	unsigned long sim_containers;           /* containers of loaded workspaces */
	unsigned long sim_duplicates;           /* workspaces with more than one (invariant 1) */
};

enum loop_mode { LOOP_RUN, LOOP_ONCE, LOOP_DRY_RUN };

int loop_new(const struct config *cfg, enum loop_mode mode, struct loop **out, struct err *e);
void loop_free(struct loop *l);

/*
 * Run passes until *stop (SIGTERM: the pass in progress finishes, the lease
 * is released). *reload (SIGHUP) makes the loop call config_load(path) and
 * swap the result in when valid. sigfd: the read end of the self-pipe the
 * signal handlers write to. Returns the process exit code.
 */
int loop_run(struct loop *l, const char *config_path, volatile sig_atomic_t *stop,
	     volatile sig_atomic_t *reload, int sigfd);

/* loop_once's result: spinupd's exit code for --once and --dry-run. */
enum loop_exit {
	LOOP_EXIT_OK = 0,         /* the pass ran; the world is converged or progressing */
	LOOP_EXIT_ERROR = 1,      /* the pass did not run or failed, or could not observe a
				   * pool's group (its instances unknown) (e says why) */
	LOOP_EXIT_STUCK = 3       /* it ran but made no progress, and a workspace waits for
				   * its user or an operator (NeedsUser, NeedsOperator) or a
				   * pool is safety-stopped (e says what; spinctl why NAME) */
};

/*
 * One pass now (--once / --dry-run): waits up to two lease TTLs for the
 * lease. Progress: an action succeeded (a dry run: one is planned), or a
 * workspace is still on its way (an instance booting, a retry with
 * backoff). Paused and observe-only parts count as settled. Returns a
 * LOOP_EXIT_* code; e is filled for ERROR and STUCK.
 */
int loop_once(struct loop *l, struct err *e);

const struct loop_metrics *loop_metrics_get(const struct loop *l);

#endif
