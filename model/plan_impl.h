/*
 * plan_impl.h - internals shared by the planner's files (model/plan*.c).
 * Not an interface: nothing outside model/plan*.c includes it.
 *
 * One pass works on a context (struct plan_ctx) built from the input:
 *   - pools sorted by id (then name), each with its instances and workspaces
 *     as index ranges into the sorted global arrays;
 *   - instances (struct pinst): the group's instances, plus remembered ones
 *     that the group does not list (launch grace), sorted by pool then id;
 *   - every container of every observed agent (struct pcont), sorted by
 *     workspace id, so "where is workspace 12" is a binary search.
 * Pool planning (plan.c) may run twice: when a pool's plan goes over its
 * destructive budget, its output is truncated and it is planned again with
 * actions held (observe-only).
 */
#ifndef SPINUP_PLAN_IMPL_H
#define SPINUP_PLAN_IMPL_H

#include "plan.h"

struct pinst {
	const char *id;
	size_t pool;                       /* index into ctx->pools */
	const struct obs_instance *oi;     /* NULL: not listed by the group */
	const struct obs_agent *agent;     /* NULL: no agent answer at all */
	const struct instance_record *rec_in;  /* NULL: first seen now */
	struct instance_record rec;        /* the new record */
	int known;      /* agent observed: its container list is the truth */
	int healthy;    /* agent observed and healthy */
	int alive;      /* listed Pending or InService (or group unknown) */
	int in_service;
	int usable;     /* may hold workspaces: in service, agent healthy, not marked */
	int grace;      /* not listed, but remembered and inside launch grace */
	int gone;       /* surely gone: group complete, not listed, grace over */
	int mark;       /* to be marked unhealthy this pass */
	int stuck;      /* listed Pending past launch_timeout_ms (marked or to be) */
	int used;       /* slots taken: containers present + new placements */
	int cap;        /* slots: the pool's, or fewer when the agent reports fewer */
	int active;     /* containers running or created (what the agent counts) */
	int terminate;  /* chosen for scale-in this pass */
};

struct pcont {
	int64_t ws;
	size_t inst;                       /* index into ctx->insts */
	const struct obs_container *c;
};

struct ppool {
	const struct pool_spec *spec;
	const struct plan_pool_obs *obs;
	const struct obs_group *group;     /* NULL unless found and complete */
	const struct pool_record *rec_in;
	struct pool_record rec;
	size_t ilo, ihi;                   /* instances [ilo, ihi) */
	size_t wlo, whi;                   /* ctx->ws [wlo, whi) */
	int evidence;   /* group known, every live agent observed, none in grace */
	int acting;     /* actions are emitted (not paused, not observe-only) */
	const char *held;  /* why actions are held ("paused", "observe-only"), or NULL */
	int need;       /* workspaces that should run */
	int target;     /* computed desired capacity */
	int exhausted;  /* need exceeds what max_instances can hold */
	int lowering;   /* count of destructive capacity decreases emitted */
	int unsettled;  /* workspaces waiting for a slot or moving: no scale-in meanwhile */
	const struct pinst *stuck;  /* the first instance stuck in Pending, or NULL */
	int launch_marks;           /* stuck instances marked unhealthy this pass */
};

struct plan_ctx {
	const struct plan_input *in;
	const struct plan_config *cfg;
	struct plan_output *out;
	int64_t now;
	struct ppool *pools;
	size_t npools;
	struct pinst *insts;
	size_t ninsts;
	size_t *inst_by_id;                /* indices into insts, sorted by id */
	struct pcont *conts;
	size_t nconts;
	size_t *ws;                        /* workspace indices, by pool then id */
	size_t nws;
	size_t *ws_pool;                   /* per input workspace: pool index or SIZE_MAX */
	int64_t *ws_ids;                   /* sorted ids of every workspace */
	size_t nws_ids;
};

/* plan_status.c: output arrays. */
struct action *plan_push_action(struct plan_output *o);
struct ws_event *plan_push_event(struct plan_output *o);
struct drift_finding *plan_push_drift(struct plan_output *o);
int plan_push_change(struct plan_output *o, const struct workspace_status *st);
int plan_push_instance(struct plan_output *o, const struct instance_record *r);
int plan_add_drift(struct plan_output *o, const char *subject, int64_t ws, int64_t pool,
		   enum drift_class cls, const char *reason, const char *desired,
		   const char *observed, const char *remedy);
/* The event type written when a workspace enters phase `to` from `from`. */
const char *plan_event_type(enum ws_phase from, enum ws_phase to);

/* plan_ws.c: every workspace of pool p (or of no pool, p == NULL). */
int plan_workspaces(struct plan_ctx *x, struct ppool *p);
/* plan.c helpers used by plan_ws.c. */
struct pinst *plan_find_inst(struct plan_ctx *x, const char *id);
int plan_act(struct plan_ctx *x, struct ppool *p, int acting, enum action_type t, int64_t ws,
	     const struct pinst *in, int flag, const struct container_req *req,
	     const char *reason);

/*
 * A desired-state change the last status does not reflect yet: a newer spec
 * generation or an unhandled reconcile request. Such a workspace is retried
 * at once (plan_ws.c) and its actions go first (plan.c, fresh_first).
 */
static inline int ws_changed(const struct workspace_spec *w, const struct workspace_status *st)
{
	return w->generation != st->observed_generation ||
	       w->reconcile_requested_at > st->reconcile_handled_at;
}

#endif
