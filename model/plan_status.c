/*
 * plan_status.c - the planner's vocabulary and bookkeeping: names, defaults,
 * output arrays, phase derivation, event types, backoff, text format.
 */
#include "plan_impl.h"

#include <stdlib.h>
#include <string.h>

#include "banned.h"

const char *action_type_name(enum action_type t)
{
	static const char *const names[ACT_MAX] = {
		"set_capacity", "protect", "terminate", "set_unhealthy", "ensure_container",
		"sync", "stop_container", "remove_container", "delete_row",
	};

	if ((int)t < 0 || t >= ACT_MAX)
		return "unknown";
	return names[t];
}

/*
 * Lowering capacity is destructive too, but the type alone cannot tell; the
 * planner counts lowering ACT_SET_CAPACITY actions against the budget itself.
 */
int action_is_destructive(enum action_type t)
{
	return t == ACT_TERMINATE || t == ACT_SET_UNHEALTHY || t == ACT_REMOVE_CONTAINER ||
	       t == ACT_DELETE_ROW;
}

const char *drift_class_name(enum drift_class c)
{
	static const char *const names[DRIFT_MAX] = {
		"missing", "unmanaged", "changed", "unobservable",
	};

	if ((int)c < 0 || c >= DRIFT_MAX)
		return "unknown";
	return names[c];
}

void plan_config_defaults(struct plan_config *c)
{
	memset(c, 0, sizeof(*c));
	c->launch_grace_ms = 120000;
	c->register_timeout_ms = 600000;
	c->launch_timeout_ms = 600000;
	c->unhealthy_after_passes = 3;
	c->idle_cooldown_ms = 300000;
	c->orphan_grace_ms = 120000;
	c->backoff_base_ms = 2000;
	c->backoff_max_ms = 300000;
	c->destructive_budget = 10;
	c->budget_window_ms = 600000;
}

void plan_output_init(struct plan_output *o)
{
	memset(o, 0, sizeof(*o));
}

void plan_output_release(struct plan_output *o)
{
	if (!o)
		return;
	free(o->actions);
	free(o->changes);
	free(o->events);
	free(o->drift);
	free(o->instances);
	free(o->pool_records);
	plan_output_init(o);
}

/* Make room for one more element; 0 or SP_ENOMEM. */
static int grow(void **arr, size_t n, size_t *alloc, size_t elem)
{
	size_t na;
	void *p;

	if (n < *alloc)
		return 0;
	na = *alloc ? *alloc * 2 : 16;
	p = realloc(*arr, na * elem);
	if (!p)
		return SP_ENOMEM;
	*arr = p;
	*alloc = na;
	return 0;
}

#define PUSH(o, arr, n, alloc)                                                          \
	(grow((void **)&(o)->arr, (o)->n, &(o)->alloc, sizeof(*(o)->arr)) ? NULL :       \
	 memset(&(o)->arr[(o)->n++], 0, sizeof(*(o)->arr)))

struct action *plan_push_action(struct plan_output *o)
{
	return PUSH(o, actions, nactions, actions_alloc);
}

struct ws_event *plan_push_event(struct plan_output *o)
{
	return PUSH(o, events, nevents, events_alloc);
}

struct drift_finding *plan_push_drift(struct plan_output *o)
{
	return PUSH(o, drift, ndrift, drift_alloc);
}

int plan_push_change(struct plan_output *o, const struct workspace_status *st)
{
	struct status_change *c = PUSH(o, changes, nchanges, changes_alloc);

	if (!c)
		return SP_ENOMEM;
	c->status = *st;
	return 0;
}

int plan_push_instance(struct plan_output *o, const struct instance_record *r)
{
	struct instance_record *d = PUSH(o, instances, ninstances, instances_alloc);

	if (!d)
		return SP_ENOMEM;
	*d = *r;
	return 0;
}

int plan_add_drift(struct plan_output *o, const char *subject, int64_t ws, int64_t pool,
		   enum drift_class cls, const char *reason, const char *desired,
		   const char *observed, const char *remedy)
{
	struct drift_finding *d = plan_push_drift(o);

	if (!d)
		return SP_ENOMEM;
	str_copy(d->subject, sizeof(d->subject), subject);
	d->workspace_id = ws;
	d->pool_id = pool;
	d->cls = cls;
	str_copy(d->reason, sizeof(d->reason), reason);
	str_copy(d->desired, sizeof(d->desired), desired);
	str_copy(d->observed, sizeof(d->observed), observed);
	str_copy(d->remedy, sizeof(d->remedy), remedy);
	return 0;
}

const char *plan_event_type(enum ws_phase from, enum ws_phase to)
{
	switch (to) {
	case PHASE_PENDING:
		return "PENDING";
	case PHASE_ALLOCATING_VM:
		return "ALLOCATION_STARTED";
	case PHASE_BOOTING_CONTAINER:
		return (from == PHASE_PENDING || from == PHASE_ALLOCATING_VM) ?
			       "INSTANCE_ASSIGNED" : "CONTAINER_BOOT_STARTED";
	case PHASE_READY:
		return "WORKSPACE_READY";
	case PHASE_STOPPING:
		return "STOP_STARTED";
	case PHASE_STOPPED:
		return "STOPPED";
	case PHASE_DELETING:
		return "DELETE_STARTED";
	case PHASE_DELETED:
		return "DELETE_COMPLETED";
	case PHASE_FAILED:
		return "FAILED";
	default:
		return "UNKNOWN";
	}
}

static int cond_is(const struct workspace_status *st, enum cond_type t, enum cond_status s)
{
	return st->conds[t].status == s;
}

static int reason_is(const struct workspace_status *st, enum cond_type t, const char *r)
{
	return !strcmp(st->conds[t].reason, r);
}

/* Unknown because the observation failed (not because it never ran). */
static int unobserved(const struct workspace_status *st, enum cond_type t)
{
	return cond_is(st, t, CSTAT_UNKNOWN) && !reason_is(st, t, "NotYetObserved");
}

/*
 * The phase table (DESIGN.md "Status"). The terminal phases of stop and
 * delete are read from the Ready condition's reason ("Stopped", "Deleted"),
 * which the planner sets only on complete evidence; FAILED means someone
 * other than the loop must act (a failed start or restore, a missing pool).
 * A failed observation keeps the phase in st->phase (the last one seen).
 */
enum ws_phase status_derive_phase(const struct workspace_spec *w,
				  const struct workspace_status *st)
{
	if (w->deletion_requested_at)
		return reason_is(st, COND_READY, "Deleted") ? PHASE_DELETED : PHASE_DELETING;
	if (w->state == WS_STATE_STOPPED)
		return reason_is(st, COND_READY, "Stopped") ? PHASE_STOPPED : PHASE_STOPPING;
	if (cond_is(st, COND_READY, CSTAT_TRUE))
		return PHASE_READY;
	if (unobserved(st, COND_INSTANCE_READY) || unobserved(st, COND_CONTAINER_READY)) {
		/* unknown is not a change: keep the last phase people saw */
		if (st->phase <= PHASE_READY || st->phase == PHASE_FAILED)
			return st->phase;
		return PHASE_ALLOCATING_VM;
	}
	if (cond_is(st, COND_FILES_RESTORED, CSTAT_FALSE) ||
	    (cond_is(st, COND_CONTAINER_READY, CSTAT_FALSE) &&
	     reason_is(st, COND_CONTAINER_READY, "ContainerFailed")) ||
	    (cond_is(st, COND_SCHEDULED, CSTAT_FALSE) &&
	     reason_is(st, COND_SCHEDULED, "PoolNotFound")))
		return PHASE_FAILED;
	/* not placed and the group unknown: no allocation started, none ended */
	if (unobserved(st, COND_SCHEDULED) && st->phase <= PHASE_ALLOCATING_VM)
		return st->phase;
	if (cond_is(st, COND_SCHEDULED, CSTAT_UNKNOWN) &&
	    reason_is(st, COND_SCHEDULED, "NotYetObserved"))
		return PHASE_PENDING;
	if (cond_is(st, COND_SCHEDULED, CSTAT_FALSE) &&
	    reason_is(st, COND_SCHEDULED, "Paused"))
		return PHASE_PENDING;
	if (!cond_is(st, COND_SCHEDULED, CSTAT_TRUE) ||
	    !cond_is(st, COND_INSTANCE_READY, CSTAT_TRUE))
		return PHASE_ALLOCATING_VM;
	return PHASE_BOOTING_CONTAINER;
}

/* splitmix64 finalizer: a small, well-mixed, deterministic hash. */
static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int64_t plan_backoff_ms(const struct plan_config *c, uint64_t seed, int64_t workspace_id,
			int attempt)
{
	int64_t d = c->backoff_base_ms > 0 ? c->backoff_base_ms : 1;
	int64_t cap = c->backoff_max_ms > d ? c->backoff_max_ms : d;
	uint64_t h;

	/* d in [base, cap]; the result in [d - d/2, d] */
	int i;

	for (i = 1; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	h = mix64(seed ^ mix64((uint64_t)workspace_id ^ mix64((uint64_t)(int64_t)attempt)));
	return d - d / 2 + (int64_t)(h % (uint64_t)(d / 2 + 1));
}

static int fmt_action(struct strbuf *sb, const struct action *a)
{
	int rc = strbuf_addf(sb, "action %s pool=%lld", action_type_name(a->type),
			     (long long)a->pool_id);

	if (!rc && a->workspace_id)
		rc = strbuf_addf(sb, " ws=%lld", (long long)a->workspace_id);
	if (!rc && a->instance_id[0])
		rc = strbuf_addf(sb, " instance=%s", a->instance_id);
	if (!rc && a->address[0])
		rc = strbuf_addf(sb, " agent=%s:%d", a->address, a->port);
	if (!rc && a->type == ACT_SET_CAPACITY)
		rc = strbuf_addf(sb, " asg=%s capacity=%d", a->asg_name, a->capacity);
	if (!rc && a->type != ACT_SET_CAPACITY && a->type != ACT_ENSURE_CONTAINER &&
	    a->type != ACT_SET_UNHEALTHY && a->type != ACT_DELETE_ROW && a->type != ACT_SYNC)
		rc = strbuf_addf(sb, " flag=%d", a->flag);
	if (!rc && a->type == ACT_ENSURE_CONTAINER)
		rc = strbuf_addf(sb, " image=%s cpu=%d mem=%d expect_snapshot=%d",
				 a->req.image, a->req.cpu_milli, a->req.memory_mib,
				 a->req.expect_snapshot);
	if (!rc)
		rc = strbuf_addf(sb, " reason=%s key=%s\n", a->reason, a->key);
	return rc;
}

static int fmt_change(struct strbuf *sb, const struct workspace_status *st)
{
	int i, rc;

	rc = strbuf_addf(sb, "change ws=%lld gen=%lld phase=%s since=%lld instance=%s addr=%s "
			 "url=%s class=%s attempts=%d next=%lld handled=%lld sync=%lld "
			 "restore_failed=%d snapshot=%d",
			 (long long)st->workspace_id, (long long)st->observed_generation,
			 ws_phase_name(st->phase), (long long)st->phase_since,
			 st->instance_id[0] ? st->instance_id : "-",
			 st->address[0] ? st->address : "-", st->url[0] ? st->url : "-",
			 sp_class_name(st->error_class), st->attempts,
			 (long long)st->next_attempt_at, (long long)st->reconcile_handled_at,
			 (long long)st->last_sync_at, st->restore_failed, st->has_snapshot);
	for (i = 0; !rc && i < COND_MAX; i++)
		rc = strbuf_addf(sb, " %s=%s/%s@%lld", cond_type_name((enum cond_type)i),
				 cond_status_name(st->conds[i].status), st->conds[i].reason,
				 (long long)st->conds[i].last_transition);
	if (!rc)
		rc = strbuf_addch(sb, '\n');
	return rc;
}

/* Index of the i-th pool record in pool id order (records are parallel to input pools). */
static size_t pool_rank(const struct plan_output *o, size_t i)
{
	size_t j, k, rank;

	for (j = 0; j < o->npool_records; j++) {
		for (rank = 0, k = 0; k < o->npool_records; k++)
			if (o->pool_records[k].pool_id < o->pool_records[j].pool_id ||
			    (o->pool_records[k].pool_id == o->pool_records[j].pool_id && k < j))
				rank++;
		if (rank == i)
			return j;
	}
	return i;
}

/* One line per item: actions, changes, events, drift, instance and pool records. */
int plan_output_format(const struct plan_output *o, struct strbuf *out)
{
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < o->nactions; i++)
		rc = fmt_action(out, &o->actions[i]);
	for (i = 0; !rc && i < o->nchanges; i++)
		rc = fmt_change(out, &o->changes[i].status);
	for (i = 0; !rc && i < o->nevents; i++) {
		const struct ws_event *ev = &o->events[i];

		rc = strbuf_addf(out, "event ws=%lld %s %s->%s reason=%s at=%lld msg=\"%s\"\n",
				 (long long)ev->workspace_id, ev->type, ws_phase_name(ev->from),
				 ws_phase_name(ev->to), ev->reason, (long long)ev->at,
				 ev->message);
	}
	for (i = 0; !rc && i < o->ndrift; i++) {
		const struct drift_finding *d = &o->drift[i];

		rc = strbuf_addf(out, "drift %s pool=%lld %s %s desired=\"%s\" observed=\"%s\" "
				 "remedy=\"%s\"\n", d->subject, (long long)d->pool_id,
				 drift_class_name(d->cls), d->reason, d->desired, d->observed,
				 d->remedy);
	}
	for (i = 0; !rc && i < o->ninstances; i++) {
		const struct instance_record *r = &o->instances[i];

		rc = strbuf_addf(out, "instance %s pool=%lld first_seen=%lld idle_since=%lld "
				 "unhealthy_passes=%d marked=%d orphan_seen=%lld ever_healthy=%d\n",
				 r->instance_id, (long long)r->pool_id, (long long)r->first_seen,
				 (long long)r->idle_since, r->unhealthy_passes,
				 r->marked_unhealthy, (long long)r->orphan_seen, r->ever_healthy);
	}
	for (i = 0; !rc && i < o->npool_records; i++) {
		const struct pool_record *r = &o->pool_records[pool_rank(o, i)];

		rc = strbuf_addf(out, "poolrec pool=%lld window_start=%lld destructive=%d "
				 "safety_stopped=%d", (long long)r->pool_id,
				 (long long)r->window_start, r->destructive_in_window,
				 r->safety_stopped);
		if (!rc && r->stopped_at)
			rc = strbuf_addf(out, " stopped_at=%lld", (long long)r->stopped_at);
		if (!rc && r->clear_handled_at)
			rc = strbuf_addf(out, " clear_handled=%lld", (long long)r->clear_handled_at);
		if (!rc)
			rc = strbuf_addch(out, '\n');
	}
	return rc;
}
