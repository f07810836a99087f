/*
 * plan.h - the planner: desired x observed x last status x now -> actions,
 * status changes, events and drift findings.
 *
 * Pure and deterministic (DESIGN.md "Layers"): no I/O, no clock, no
 * randomness. Time (now) and the jitter seed are inputs, so the same inputs
 * give the same plan byte for byte. Outputs are ordered (fresh changes
 * first, then by pool, workspace id, instance id: see "Action order" below)
 * so plans can be compared as text.
 *
 * The planner keeps every invariant in DESIGN.md; in particular it emits a
 * destructive action (ACT_TERMINATE, ACT_REMOVE_CONTAINER, lowering capacity,
 * ACT_DELETE_ROW) only on complete, fresh evidence, and never past a pool's
 * destructive budget (it switches the pool to observe-only instead).
 *
 * The rules, as implemented (model/plan.c, plan_ws.c, plan_status.c):
 *  - Placement: a workspace to run keeps its container, or its status
 *    placement while that instance can hold it; otherwise it takes an idle
 *    usable instance (InService, agent observed and healthy, not marked),
 *    else the fullest with room (slots = the pool's, or fewer if the agent
 *    reports fewer). A placement whose agent is unobserved (marked or not,
 *    when the group is unobserved too), or an instance unlisted inside
 *    launch_grace_ms, is waited for, never duplicated. The
 *    grace is for launches EC2 may not list yet: an instance we asked to go
 *    (marked, terminated) or saw leaving is gone once unlisted.
 *  - Capacity: ceil(workspaces to run / slots) + warm, clamped to
 *    [min, max]; SetDesiredCapacity only ever sets that value. Lowering
 *    needs complete evidence and nobody waiting for a slot: when the live
 *    instances fit in the computed value it is set, else idle instances
 *    past idle_cooldown_ms are terminated with decrement, at most the live
 *    ones above the computed value (never both in a pass).
 *  - Launch timeout: an instance listed Pending launch_timeout_ms after
 *    its launch (EC2's launch time, or first sight) is marked unhealthy so
 *    the group replaces it (a LaunchTimedOut instance finding), never on a
 *    partial group answer. Workspaces waiting for a slot meanwhile say
 *    LaunchTimedOut (Retryable; NeedsOperator once PLAN_LAUNCH_FAILURES
 *    launches failed while they waited) until they get one.
 *  - Lost instances: one we remembered that left without our asking
 *    (missing from a complete listing past launch_grace_ms, or listed
 *    Terminating/Terminated though never marked) while the last status of a
 *    workspace that should run placed it there: a `missing` InstanceLost
 *    finding; the workspace is placed elsewhere in the same pass.
 *  - Error class: who must act about the current blocker only. A workspace
 *    not placed carries its wait's class (PoolExhausted: NeedsOperator;
 *    LaunchTimedOut: see above; WaitingForCapacity, Paused: none), a new
 *    start none; a failed container sets its class again when seen.
 *  - Unknown is no news (invariants 7, 8): a partial or failed observation
 *    changes no phase by itself. What status knows holds: a STOPPED
 *    workspace stays STOPPED, a deletion that found no container keeps
 *    knowing it (DELETING, or DELETED while its row remains), a workspace
 *    not placed keeps its wait (PENDING stays PENDING, a wait for a slot goes
 *    on), a placed one keeps its phase and address; conditions go Unknown
 *    only for what is really unknown now (a container on an unobserved agent).
 *  - Action order: fresh changes first (DESIGN.md "Performance
 *    principles"): the actions of workspaces with a desired-state change
 *    not yet acted on (no status yet, generation newer than the status'
 *    observed_generation, or reconcile_requested_at after
 *    reconcile_handled_at), by pool then workspace id; then, per pool,
 *    the other workspace actions (by id), instance actions (by id: orphan
 *    removals, protection, health, termination), then capacity. The
 *    executor (reconciler/exec.h) runs its phases in its own fixed order
 *    and keeps this order within each phase, so under its per-pass
 *    mutation limit a fresh change is not queued behind routine work.
 *    Changes and events follow pool then workspace id order; pool_records
 *    are parallel to the input pools; plan_output_format prints them by
 *    pool id.
 *  - Every action with flag 0 for sync_first is one whose files must not (or
 *    need not) go back to S3: restore failed, never ran, already synced.
 *  - Destructive budget (invariant 9): a pool whose plan would take its
 *    window past destructive_budget is planned again with every action
 *    held and safety-stopped (stopped_at = now; a SafetyStop finding and
 *    a SAFETY_STOP event per workspace on entry). It stays held until the
 *    spec's safety_clear_requested_at is newer than both stopped_at and
 *    the record's clear_handled_at: then the stop is lifted and a fresh
 *    window starts (count 0) before the pool is planned, so it acts in
 *    that pass; if that same plan breaks the budget again it is stopped
 *    again, at once. Every request seen is echoed in clear_handled_at,
 *    whether or not it found a stop to clear (a request older than the
 *    stop clears nothing).
 *  - Actions are held (not emitted) while paused or observe-only; a held
 *    remedy in a drift finding reads "held (why): ...".
 *
 * Ownership: plan_input only borrows; plan_output owns its arrays and is
 * freed with plan_output_release().
 */
#ifndef SPINUP_PLAN_H
#define SPINUP_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "observed.h"
#include "spec.h"
#include "status.h"
#include "strbuf.h"

/* Launches timed out while a workspace waited before it needs an operator. */
#define PLAN_LAUNCH_FAILURES 3

enum action_type {
	ACT_SET_CAPACITY,      /* pool: SetDesiredCapacity(capacity), absolute */
	ACT_PROTECT,           /* instance: SetInstanceProtection(flag) */
	ACT_TERMINATE,         /* instance: TerminateInstanceInAutoScalingGroup(decrement = flag) */
	ACT_SET_UNHEALTHY,     /* instance: SetInstanceHealth(Unhealthy) */
	ACT_ENSURE_CONTAINER,  /* workspace on instance: start if not running */
	ACT_SYNC,              /* workspace on instance: sync files to S3 now */
	ACT_STOP_CONTAINER,    /* workspace on instance: stop (sync first when flag) */
	ACT_REMOVE_CONTAINER,  /* workspace on instance: remove (sync first when flag) */
	ACT_DELETE_ROW,        /* finalize deletion: DELETE_COMPLETED event, then the row goes */
	ACT_MAX
};

const char *action_type_name(enum action_type t);  /* "set_capacity", ... */
/* Whether the action can destroy something (counts against the budget). */
int action_is_destructive(enum action_type t);

#define ACTION_KEY_MAX 127

struct action {
	enum action_type type;
	int64_t pool_id;
	char asg_name[SPEC_ASG_MAX + 1];
	int64_t workspace_id;                 /* 0 when about an instance or a pool */
	char instance_id[OBS_INSTANCE_ID_MAX + 1];
	char address[OBS_ADDR_MAX + 1];       /* agent address, for container actions */
	int port;                             /* agent port */
	int capacity;                         /* ACT_SET_CAPACITY */
	int flag;                             /* protect / decrement / sync_first */
	struct container_req req;             /* ACT_ENSURE_CONTAINER */
	/* Stable idempotency key, e.g. "ensure/12/i-0abc..." (journal, dedupe). */
	char key[ACTION_KEY_MAX + 1];
	char reason[64];                      /* CamelCase why: "ScaleForWaitingWorkspaces" */
};

/*
 * Events: one per phase change (ALLOCATION_STARTED, INSTANCE_ASSIGNED, ...),
 * plus SAFETY_STOP (from == to, reason SafetyStop) on each workspace of a
 * pool in the pass it enters a safety stop.
 */
struct ws_event {
	int64_t workspace_id;
	char type[48];
	enum ws_phase from, to;
	char reason[64];
	char message[256];
	int64_t at;
};

enum drift_class { DRIFT_MISSING, DRIFT_UNMANAGED, DRIFT_CHANGED, DRIFT_UNOBSERVABLE, DRIFT_MAX };
const char *drift_class_name(enum drift_class c);  /* "missing", ... */

/* A drift finding as seen this pass; the store keeps first/last seen and flaps. */
struct drift_finding {
	char subject[96];       /* "workspace/alice-blog", "instance/i-0abc", "pool/default" */
	int64_t workspace_id;   /* 0 if not about a workspace */
	int64_t pool_id;
	enum drift_class cls;
	char reason[64];        /* CamelCase code: "ContainerMissing" */
	char desired[128];
	char observed[128];
	char remedy[128];       /* what the loop is doing about it */
};

/*
 * What the operator remembers about an instance between passes (the
 * `instances` table): when it was first seen, how many passes its agent has
 * failed, since when it has been idle. The planner returns updated records.
 */
struct instance_record {
	char instance_id[OBS_INSTANCE_ID_MAX + 1];
	int64_t pool_id;
	int64_t first_seen;       /* ms */
	int64_t idle_since;       /* ms; 0 when busy */
	int unhealthy_passes;     /* consecutive passes with the agent down or unhealthy */
	int marked_unhealthy;     /* expected gone: we asked it to go (SetInstanceHealth
				     (Unhealthy) or terminate issued, whatever the call
				     answered), or the group listed it leaving; forgotten
				     when the group lists it alive and healthy again (the
				     call did not take) */
	int64_t orphan_seen;      /* ms; an unowned container first seen (grace period) */
	int ever_healthy;         /* its agent has been healthy at least once; 0 when not
				     remembered: the register timeout then applies */
};

/*
 * Per-pool safety state between passes (destructive budget window, the
 * `pool_status` table).
 */
struct pool_record {
	int64_t pool_id;
	int64_t window_start;     /* ms */
	int destructive_in_window;
	int safety_stopped;       /* observe-only after a budget breach, until cleared */
	int64_t stopped_at;       /* ms; when the current (or last) safety stop began */
	int64_t clear_handled_at; /* ms; the last safety_clear_requested_at seen (echo) */
};

struct plan_config {
	int64_t launch_grace_ms;        /* a new instance may be invisible this long (default 120 s) */
	int64_t register_timeout_ms;    /* launched but agent never healthy (default 600 s) */
	int64_t launch_timeout_ms;      /* Pending this long after launch -> unhealthy (600 s) */
	int unhealthy_after_passes;     /* agent down this many passes -> unhealthy (default 3) */
	int64_t idle_cooldown_ms;       /* idle beyond the warm buffer this long -> terminate (300 s) */
	int64_t orphan_grace_ms;        /* unowned container kept this long (120 s) */
	int64_t backoff_base_ms;        /* first retry delay (2 s) */
	int64_t backoff_max_ms;         /* cap (300 s) */
	int destructive_budget;         /* per pool per window (default 10) */
	int64_t budget_window_ms;       /* (default 600 s) */
};

void plan_config_defaults(struct plan_config *c);

/* Observation of one pool: its group, and agents for the group's instances. */
struct plan_pool_obs {
	int64_t pool_id;
	const struct obs_group *group;   /* NULL: describe failed -> everything unknown */
	const struct obs_agent *agents;  /* one per observed agent; see obs_agent.observed */
	size_t nagents;
};

struct plan_input {
	int64_t now;                     /* ms */
	uint64_t seed;                   /* jitter seed for this pass */
	const struct plan_config *cfg;
	int global_observe_only;
	int64_t global_paused_until;     /* ms; 0 = not paused */

	const struct pool_spec *pools;
	size_t npools;
	const struct pool_record *pool_records;  /* may be fewer than pools (new pools) */
	size_t npool_records;

	const struct workspace_spec *workspaces;
	size_t nworkspaces;
	/* Last status, parallel to workspaces; has_status[i] == 0 for a never-seen workspace. */
	const struct workspace_status *status;
	const unsigned char *has_status;

	const struct plan_pool_obs *obs;  /* parallel to pools */
	const struct instance_record *instances;
	size_t ninstances;
};

struct status_change {
	struct workspace_status status;   /* the complete new status */
};

struct plan_output {
	struct action *actions;
	size_t nactions, actions_alloc;
	struct status_change *changes;    /* only statuses that differ from the input */
	size_t nchanges, changes_alloc;
	struct ws_event *events;
	size_t nevents, events_alloc;
	struct drift_finding *drift;
	size_t ndrift, drift_alloc;
	struct instance_record *instances;   /* complete new set */
	size_t ninstances, instances_alloc;
	struct pool_record *pool_records;    /* complete new set, parallel to pools */
	size_t npool_records, pool_records_alloc;
};

void plan_output_init(struct plan_output *o);
void plan_output_release(struct plan_output *o);

/* Compute one pass's plan. 0, or SP_ENOMEM (output then released). */
int plan_compute(const struct plan_input *in, struct plan_output *out, struct err *e);

/* Derive the phase people see from the conditions and the spec. */
enum ws_phase status_derive_phase(const struct workspace_spec *w,
				  const struct workspace_status *st);

/*
 * Retry delay before attempt number `attempt` (1 = first retry) of a
 * workspace: capped exponential backoff (backoff_base_ms doubling up to
 * backoff_max_ms) with "equal jitter": a value in [d/2, d], chosen by a small
 * deterministic hash of (seed, workspace_id, attempt). Pure.
 */
int64_t plan_backoff_ms(const struct plan_config *c, uint64_t seed, int64_t workspace_id,
			int attempt);

/*
 * Print the plan as stable text (one line per item) for tests and --dry-run.
 * A pool record shows stopped_at and clear_handled only when set.
 */
int plan_output_format(const struct plan_output *o, struct strbuf *out);

#endif
