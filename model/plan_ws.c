/*
 * plan_ws.c - the planner's workspace rules: placement, containers, stop,
 * delete, conditions and phase, retries with backoff, drift per workspace.
 *
 * Each workspace is planned once per pass, in pool then id order, into a
 * working copy of its status (struct wsx). Every branch sets all six
 * conditions; finish() derives the phase, writes one event per phase change
 * and emits the status only when it differs from the input (invariant 8).
 */
#include "plan_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "banned.h"

struct wsx {
	struct plan_ctx *x;
	struct ppool *p;                  /* NULL: the workspace's pool does not exist */
	const struct workspace_spec *w;
	struct workspace_status old, st;
	int has_old;
	struct pcont *c;                  /* its containers, anywhere */
	size_t nc;
	int acting;                       /* actions for it are emitted */
	const char *held;                 /* why not, when not */
	int retry_now;                    /* spec changed or reconcile requested */
	int64_t now;
};

static void cond(struct wsx *s, enum cond_type t, enum cond_status v, const char *reason,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void cond(struct wsx *s, enum cond_type t, enum cond_status v, const char *reason,
		 const char *fmt, ...)
{
	char msg[COND_MESSAGE_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	status_set_cond(&s->st, t, v, reason, msg, s->now);
}

/* Keep a condition as it is unless it was never set. */
static void cond_default(struct wsx *s, enum cond_type t, enum cond_status v,
			 const char *reason)
{
	if (!strcmp(s->st.conds[t].reason, "NotYetObserved"))
		status_set_cond(&s->st, t, v, reason, "", s->now);
}

static int drift(struct wsx *s, enum drift_class cls, const char *reason, const char *desired,
		 const char *observed, const char *what)
{
	char subject[96], remedy[128];

	snprintf(subject, sizeof(subject), "workspace/%s", s->w->name);
	if (s->acting || !what[0] || !s->held)
		snprintf(remedy, sizeof(remedy), "%s", what);
	else
		snprintf(remedy, sizeof(remedy), "held (%s): %s", s->held, what);
	return plan_add_drift(s->x->out, subject, s->w->id, s->p ? s->p->spec->id : 0, cls,
			      reason, desired, observed, remedy);
}

/*
 * Whether removing or stopping c may sync its files back first (invariant
 * 4): never after a failed restore, never from a container that never ran
 * (created or failed: its files would overwrite the good snapshot).
 */
static int may_sync(const struct wsx *s, const struct obs_container *c)
{
	(void)s; /* the observed container is the truth, not a stale status */
	return !c->restore_failed &&
	       (c->state == CS_RUNNING || c->state == CS_EXITED || c->state == CS_STOPPED);
}

/*
 * Whether the agent still works on a sync, stop or remove it accepted for c
 * (agent/API.md "pending"): asking again would only queue a duplicate, and
 * an ensure would be refused, so nothing is asked until it reports.
 */
static int busy(const struct obs_container *c)
{
	return c->pending != COP_NONE;
}

static struct pinst *inst_of(struct wsx *s, const struct pcont *c)
{
	return &s->x->insts[c->inst];
}

static const char *eff_image(const struct wsx *s)
{
	return s->w->image[0] ? s->w->image : s->p->spec->default_image;
}

static void make_req(const struct wsx *s, struct container_req *r)
{
	memset(r, 0, sizeof(*r));
	r->workspace_id = s->w->id;
	str_copy(r->workspace_name, sizeof(r->workspace_name), s->w->name);
	str_copy(r->image, sizeof(r->image), eff_image(s));
	r->cpu_milli = s->w->cpu_milli;
	r->memory_mib = s->w->memory_mib;
	str_copy(r->bucket, sizeof(r->bucket), s->w->bucket);
	str_copy(r->prefix, sizeof(r->prefix), s->w->prefix);
	r->expect_snapshot = s->st.has_snapshot;
}

static int act(struct wsx *s, enum action_type t, const struct pinst *in, int flag,
	       const char *reason)
{
	struct container_req req;

	if (t == ACT_ENSURE_CONTAINER)
		make_req(s, &req);
	return plan_act(s->x, s->p, s->acting, t, s->w->id, in,
			flag, t == ACT_ENSURE_CONTAINER ? &req : NULL, reason);
}

/* Files synced: from the container's report; the last good sync is remembered. */
static void files_synced(struct wsx *s, const struct obs_container *c)
{
	if (!c) {
		cond_default(s, COND_FILES_SYNCED, s->st.has_snapshot ? CSTAT_TRUE : CSTAT_UNKNOWN,
			     s->st.has_snapshot ? "Synced" : "NeverSynced");
		return;
	}
	switch (c->last_sync) {
	case SYNC_OK:
		if (c->last_sync_at > s->st.last_sync_at)
			s->st.last_sync_at = c->last_sync_at;
		s->st.has_snapshot = 1;
		cond(s, COND_FILES_SYNCED, CSTAT_TRUE, "Synced", "last sync at %lld",
		     (long long)s->st.last_sync_at);
		break;
	case SYNC_FAILED:
		cond(s, COND_FILES_SYNCED, CSTAT_FALSE, "SyncFailed", "%s", c->message);
		break;
	case SYNC_RUNNING:
		cond_default(s, COND_FILES_SYNCED, CSTAT_UNKNOWN, "SyncRunning");
		break;
	default:
		cond_default(s, COND_FILES_SYNCED, s->st.has_snapshot ? CSTAT_TRUE :
					   CSTAT_UNKNOWN,
			     s->st.has_snapshot ? "Synced" : "NeverSynced");
		break;
	}
}

/* Ready follows the others: True when all are, else the first blocker's reason. */
static void ready_from_conds(struct wsx *s)
{
	static const enum cond_type order[] = {
		COND_SCHEDULED, COND_INSTANCE_READY, COND_CONTAINER_READY, COND_FILES_RESTORED,
	};
	size_t i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const struct condition *c = &s->st.conds[order[i]];

		if (c->status != CSTAT_TRUE) {
			cond(s, COND_READY, c->status == CSTAT_UNKNOWN ? CSTAT_UNKNOWN : CSTAT_FALSE,
			     c->reason, "%s", c->message);
			return;
		}
	}
	cond(s, COND_READY, CSTAT_TRUE, "WorkspaceReady", "%s", s->st.url);
}

static void clear_placement(struct wsx *s)
{
	s->st.instance_id[0] = '\0';
	s->st.address[0] = '\0';
	s->st.url[0] = '\0';
}

/*
 * Place status on t. Its address comes from the group's listing; when the
 * group was not seen this pass (t known from its agent only), the address
 * status already holds for t stays: an unknown address is not an empty one.
 */
static void set_placement(struct wsx *s, const struct pinst *t)
{
	if (t->oi)
		str_copy(s->st.address, sizeof(s->st.address), t->oi->private_ip);
	else if (strcmp(s->st.instance_id, t->id))
		s->st.address[0] = '\0';
	str_copy(s->st.instance_id, sizeof(s->st.instance_id), t->id);
}

/*
 * Retry a failed or crashed container with backoff: the first sighting
 * schedules attempt n+1 at now + backoff; when due (or the spec changed, or
 * a reconcile was requested) ensure runs and the schedule clears, so a
 * failure seen again schedules the next attempt.
 */
static int retry(struct wsx *s, const struct pinst *t, int can_act, enum sp_class cls)
{
	int due = s->retry_now || (s->st.next_attempt_at && s->now >= s->st.next_attempt_at);
	int rc = 0;

	s->st.error_class = cls;
	if (!s->acting)
		return 0;
	if (due && can_act) {
		rc = act(s, ACT_ENSURE_CONTAINER, t, 0, "RetryAfterBackoff");
		if (rc == 1)
			s->st.next_attempt_at = 0;
	} else if (!s->st.next_attempt_at) {
		if (s->st.attempts < 1000000)
			s->st.attempts++;
		s->st.next_attempt_at = s->now + plan_backoff_ms(s->x->cfg, s->x->in->seed,
								 s->w->id, s->st.attempts);
	}
	return rc < 0 ? rc : 0;
}

static void clear_retry(struct wsx *s)
{
	s->st.attempts = 0;
	s->st.next_attempt_at = 0;
	s->st.error_class = SP_CLASS_NONE;
}

/*
 * Whether a stop, remove or sync that syncs c back may be asked for now.
 * A sync that failed (the agent kept the container, last_sync failed) is
 * retried with backoff, like a failed start: at once on a new spec or a
 * reconcile request (so the request that asks for the stop goes at once),
 * else when next_attempt_at is due; a failure seen with nothing scheduled
 * schedules the next attempt. *keep is set while a failure is being
 * retried, so the caller keeps the schedule.
 */
static int sync_retry_due(struct wsx *s, const struct obs_container *c, int *keep)
{
	if (c->last_sync != SYNC_FAILED || !may_sync(s, c))
		return 1;
	*keep = 1;
	s->st.error_class = SP_CLASS_RETRYABLE;
	if (s->retry_now || (s->st.next_attempt_at && s->now >= s->st.next_attempt_at))
		return 1;
	if (s->acting && !s->st.next_attempt_at) {
		if (s->st.attempts < 1000000)
			s->st.attempts++;
		s->st.next_attempt_at = s->now + plan_backoff_ms(s->x->cfg, s->x->in->seed,
								 s->w->id, s->st.attempts);
	}
	return 0;
}

/* Ask for an action that syncs c back, if its retry is due (sync_retry_due). */
static int act_sync_back(struct wsx *s, enum action_type t, const struct pinst *in,
			 const struct obs_container *c, int flag, const char *reason, int *keep)
{
	int rc;

	if (flag && !sync_retry_due(s, c, keep))
		return 0;
	rc = act(s, t, in, flag, reason);
	if (rc == 1 && flag && c->last_sync == SYNC_FAILED)
		s->st.next_attempt_at = 0;   /* asked: a failure seen after it schedules the next */
	return rc;
}

/* Running: ready (its URL from the placed address, when one is known) or starting. */
static int container_running(struct wsx *s, const struct obs_container *c)
{
	cond(s, COND_FILES_RESTORED, c->restore_failed ? CSTAT_FALSE : CSTAT_TRUE,
	     c->restore_failed ? "RestoreFailed" : "Restored", "%s",
	     c->restore_failed ? c->message : "");
	if (c->ready && !c->restore_failed) {
		clear_retry(s);
		if (s->st.address[0])
			snprintf(s->st.url, sizeof(s->st.url), "http://%s:%d/", s->st.address,
				 c->port);
		cond(s, COND_CONTAINER_READY, CSTAT_TRUE, "ContainerRunning", "%s", c->name);
	} else if (c->restore_failed) {
		s->st.error_class = SP_CLASS_NEEDS_OPERATOR;
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "RestoreFailed", "%s", c->message);
	} else {
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "ContainerStarting",
		     "waiting for %s to answer", c->name);
	}
	return 0;
}

/* A workspace that should run, with its container on a live instance. */
static int run_on(struct wsx *s, const struct pinst *t, const struct obs_container *c)
{
	int can_act = t->healthy && !busy(c), rc = 0;
	char obs[128];

	set_placement(s, t);
	s->st.url[0] = '\0';
	s->st.restore_failed = c->restore_failed;
	cond(s, COND_SCHEDULED, CSTAT_TRUE, "InstanceAssigned", "on %s", t->id);
	if (t->healthy)
		cond(s, COND_INSTANCE_READY, CSTAT_TRUE, "AgentHealthy", "%s", t->id);
	else
		cond(s, COND_INSTANCE_READY, CSTAT_FALSE, "AgentUnhealthy", "%s: %s", t->id,
		     t->agent ? t->agent->error : "");
	files_synced(s, c);
	if (c->image[0] && strcmp(c->image, eff_image(s))) {
		s->st.error_class = SP_CLASS_NONE;
		if (!busy(c))
			rc = act(s, ACT_REMOVE_CONTAINER, t, may_sync(s, c), "ImageChanged");
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "ImageChanged", "runs %s, spec says %s",
		     c->image, eff_image(s));
		cond_default(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet");
		if (rc >= 0)
			rc = drift(s, DRIFT_CHANGED, "ImageChanged", eff_image(s), c->image,
				   may_sync(s, c) ? "sync and remove, then start with the new image" :
						    "remove, then start with the new image");
		return rc;
	}
	if (c->pending == COP_STOP || c->pending == COP_REMOVE) {
		/* stopped or removed when the spec said so: that finishes first */
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "ContainerBusy",
		     "%s: a %s accepted earlier is in progress", c->name,
		     container_op_name(c->pending));
		cond_default(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet");
		snprintf(obs, sizeof(obs), "container %s on %s, %s pending",
			 container_state_name(c->state), t->id, container_op_name(c->pending));
		return drift(s, DRIFT_CHANGED, "ContainerBusy", "container running", obs,
			     "wait for the agent, then start");
	}
	switch (c->state) {
	case CS_RUNNING:
		return container_running(s, c);
	case CS_CREATED:
	case CS_STOPPED:
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE,
		     c->state == CS_CREATED ? "ContainerCreated" : "ContainerStopped",
		     "%s is %s", c->name, container_state_name(c->state));
		cond_default(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet");
		if (can_act)
			rc = act(s, ACT_ENSURE_CONTAINER, t, 0, "StartContainer");
		break;
	case CS_EXITED:
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "ContainerCrashed", "%s exited: %s",
		     c->name, c->message);
		if (c->restore_failed)
			cond(s, COND_FILES_RESTORED, CSTAT_FALSE, "RestoreFailed", "%s", c->message);
		cond_default(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet");
		rc = retry(s, t, can_act, SP_CLASS_RETRYABLE);
		break;
	default: /* CS_FAILED */
		if (c->restore_failed) {
			cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "RestoreFailed", "%s", c->message);
			cond(s, COND_FILES_RESTORED, CSTAT_FALSE, "RestoreFailed", "%s", c->message);
		} else {
			cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "ContainerFailed", "%s",
			     c->message);
			cond(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet", "%s", "");
		}
		rc = retry(s, t, can_act, c->restore_failed ? SP_CLASS_NEEDS_OPERATOR :
							       SP_CLASS_NEEDS_USER);
		break;
	}
	if (rc < 0)
		return rc;
	snprintf(obs, sizeof(obs), "container %s on %s", container_state_name(c->state), t->id);
	return drift(s, DRIFT_CHANGED, "ContainerNotRunning", "container running", obs,
		     c->state == CS_EXITED || c->state == CS_FAILED ?
			     (s->st.next_attempt_at ? "restart after backoff" : "restart now") :
			     "start container");
}

/* Its container sits on an instance that is going away: sync it off, then place elsewhere. */
static int move_off(struct wsx *s, const struct pinst *t, const struct obs_container *c,
		    const char *why)
{
	int sync = may_sync(s, c);
	int rc = busy(c) ? 0 : act(s, ACT_REMOVE_CONTAINER, t, sync, why);
	char obs[128];

	s->p->unsettled++;
	if (rc < 0)
		return rc;
	set_placement(s, t);
	s->st.url[0] = '\0';
	cond(s, COND_SCHEDULED, CSTAT_TRUE, "Rescheduling", "leaving %s", t->id);
	cond(s, COND_INSTANCE_READY, CSTAT_FALSE, why, "leaving %s", t->id);
	cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "ContainerMoving", "%s", c->name);
	cond_default(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet");
	files_synced(s, c);
	snprintf(obs, sizeof(obs), "container %s on %s", container_state_name(c->state), t->id);
	return drift(s, DRIFT_CHANGED, why, "container on a healthy instance with room", obs,
		     sync ? "sync and remove, then place elsewhere" :
			    "remove, then place elsewhere");
}

/* Pick a slot: an idle instance first, else the fullest with room; lowest id on ties. */
static struct pinst *pick(struct wsx *s)
{
	struct ppool *p = s->p;
	struct pinst *best = NULL;
	size_t i;

	for (i = p->ilo; i < p->ihi; i++) {
		struct pinst *t = &s->x->insts[i];

		if (!t->usable || t->used >= t->cap)
			continue;
		if (t->used == 0)
			return t;
		if (!best || t->used > best->used)
			best = t;
	}
	return best;
}

static int assign(struct wsx *s, struct pinst *t)
{
	int backing_off = s->st.next_attempt_at > s->now && !s->retry_now;
	int rc = 0;

	/* the wait is over: failed launches are not failed container starts */
	if (!strcmp(s->old.conds[COND_SCHEDULED].reason, "LaunchTimedOut"))
		s->st.attempts = 0;
	t->used++;
	set_placement(s, t);
	s->st.url[0] = '\0';
	cond(s, COND_SCHEDULED, CSTAT_TRUE, "InstanceAssigned", "on %s", t->id);
	cond(s, COND_INSTANCE_READY, CSTAT_TRUE, "AgentHealthy", "%s", t->id);
	cond(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet", "%s", "");
	files_synced(s, NULL);
	if (backing_off) {
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "BackingOff", "next attempt at %lld",
		     (long long)s->st.next_attempt_at);
	} else {
		/* a new start: nothing blocks it yet, whatever stopped the last one */
		s->st.error_class = SP_CLASS_NONE;
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "ContainerMissing", "starting on %s",
		     t->id);
		rc = act(s, ACT_ENSURE_CONTAINER, t, 0, "StartContainer");
		if (rc == 1)
			s->st.next_attempt_at = 0;
	}
	if (rc < 0)
		return rc;
	return drift(s, DRIFT_MISSING, "ContainerMissing", "container running", "no container",
		     backing_off ? "start after backoff" : "start container");
}

/*
 * Not on any instance. The error class is then that of the wait alone,
 * none unless the caller sets one after: a class from an earlier blocker
 * (a failed restore on an instance it left, an exhausted pool since
 * enlarged) would tell the wrong party to act.
 */
static void not_placed(struct wsx *s, enum cond_status sched, const char *reason,
		       const char *fmt, const char *arg)
{
	s->st.error_class = SP_CLASS_NONE;
	cond(s, COND_SCHEDULED, sched, reason, fmt, arg);
	cond(s, COND_INSTANCE_READY, CSTAT_FALSE, "NoInstance", "%s", "");
	cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "NoContainer", "%s", "");
	cond(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet", "%s", "");
	files_synced(s, NULL);
}

/* Kept placement we cannot see into: wait, never place twice (invariant 1). */
static int wait_unknown(struct wsx *s, const char *reason)
{
	cond(s, COND_SCHEDULED, CSTAT_TRUE, "InstanceAssigned", "on %s", s->st.instance_id);
	cond(s, COND_INSTANCE_READY, CSTAT_UNKNOWN, reason, "%s", s->st.instance_id);
	cond(s, COND_CONTAINER_READY, CSTAT_UNKNOWN, reason, "%s", s->st.instance_id);
	cond_default(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet");
	files_synced(s, NULL);
	s->st.url[0] = '\0';
	return drift(s, DRIFT_UNOBSERVABLE, reason, "container running",
		     "unknown", "wait for the observation");
}

/*
 * Waiting for a slot while the pool's launches time out: Retryable, and
 * NeedsOperator after PLAN_LAUNCH_FAILURES launches failed during this wait
 * (counted in attempts, one per stuck instance marked while it waited): the
 * launch template, the image or the subnets are likely wrong. The reason
 * stays until the workspace gets a slot.
 */
static void launch_timed_out(struct wsx *s)
{
	const struct ppool *p = s->p;
	int64_t secs = s->x->cfg->launch_timeout_ms / 1000;
	char msg[COND_MESSAGE_MAX + 1];

	if (strcmp(s->old.conds[COND_SCHEDULED].reason, "LaunchTimedOut"))
		s->st.attempts = 0;
	if (p->launch_marks && s->st.attempts < 1000000)
		s->st.attempts += p->launch_marks;
	if (p->stuck)
		snprintf(msg, sizeof(msg), "instance %s not InService %llds after launch, "
			 "replaced; %d launches failed while waiting", p->stuck->id,
			 (long long)secs, s->st.attempts);
	else
		snprintf(msg, sizeof(msg), "%s", s->old.conds[COND_SCHEDULED].message);
	not_placed(s, CSTAT_FALSE, "LaunchTimedOut", "%s", msg);
	s->st.error_class = s->st.attempts >= PLAN_LAUNCH_FAILURES ? SP_CLASS_NEEDS_OPERATOR :
								      SP_CLASS_RETRYABLE;
}

/* No slot for it: the pool is exhausted, its launches time out, or capacity is on the way. */
static int wait_slot(struct wsx *s)
{
	struct ppool *p = s->p;
	char buf[96];

	p->unsettled++;
	if (p->exhausted) {
		snprintf(buf, sizeof(buf), "%d", p->spec->max_instances);
		not_placed(s, CSTAT_FALSE, "PoolExhausted", "pool is at maxInstances %s", buf);
		s->st.error_class = SP_CLASS_NEEDS_OPERATOR;
	} else if (p->stuck || !strcmp(s->old.conds[COND_SCHEDULED].reason, "LaunchTimedOut")) {
		launch_timed_out(s);
	} else {
		not_placed(s, CSTAT_FALSE, "WaitingForCapacity", "%s", "waiting for an instance");
	}
	return drift(s, DRIFT_MISSING, "ContainerMissing", "container running", "no container",
		     p->exhausted ? "wait: pool exhausted, raise maxInstances" :
		     !strcmp(s->st.conds[COND_SCHEDULED].reason, "LaunchTimedOut") ?
				    "wait for a replacement instance (launch timed out)" :
				    "wait for capacity");
}

/*
 * Not placed, and the group not seen this pass: what is still known holds
 * (invariant 7: unknown is no news). Exhaustion is a fact of the spec; a
 * wait for a slot seen last pass goes on, since only this loop places
 * workspaces; otherwise the group is what is missing (the phase then holds,
 * see status_derive_phase).
 */
static int wait_unobserved(struct wsx *s)
{
	const char *was = s->old.conds[COND_SCHEDULED].reason;

	if (s->p->exhausted || !strcmp(was, "WaitingForCapacity") ||
	    !strcmp(was, "LaunchTimedOut"))
		return wait_slot(s);
	not_placed(s, CSTAT_UNKNOWN, "GroupUnobservable", "group %s", s->p->spec->asg_name);
	return drift(s, DRIFT_UNOBSERVABLE, "GroupUnobservable", "container running",
		     "unknown", "wait for the observation");
}

static int place(struct wsx *s)
{
	struct ppool *p = s->p;
	struct pinst *cand = s->st.instance_id[0] ? plan_find_inst(s->x, s->st.instance_id) : NULL;
	struct pinst *t;

	if (cand && cand->pool != (size_t)(p - s->x->pools))
		cand = NULL;
	if (cand && cand->usable && cand->used < cand->cap)
		return assign(s, cand);
	/*
	 * Unknown, not absent: wait where status placed it, on an instance
	 * unlisted inside launch grace or whose agent is unobserved. A marked
	 * one only while the group is unobserved too: the mark may not have
	 * taken, or the instance still runs the container; a complete listing
	 * tells.
	 */
	if (cand && !cand->gone && (cand->grace || (cand->alive && !cand->known)) &&
	    (!p->group || (!cand->rec.marked_unhealthy && !cand->mark)))
		return wait_unknown(s, cand->grace ? "InstanceNotYetVisible" :
					  "AgentUnobservable");
	if (s->st.instance_id[0] && !cand && !p->group)
		return wait_unknown(s, "GroupUnobservable");
	clear_placement(s);
	if (!s->acting) {
		not_placed(s, CSTAT_FALSE, "Paused", "%s", s->held);
		return drift(s, DRIFT_MISSING, "ContainerMissing", "container running",
			     "no container", "place and start");
	}
	if (!p->group)
		return wait_unobserved(s);
	t = pick(s);
	if (t)
		return assign(s, t);
	return wait_slot(s);
}

static int is_gone_inst(const struct pinst *t)
{
	return !t->alive || t->gone || t->rec.marked_unhealthy || t->mark;
}

/* The one container to keep: where status says, else running, else any; on a live instance. */
static size_t choose_keeper(struct wsx *s)
{
	size_t i, best = s->nc;
	int best_score = -1;

	for (i = 0; i < s->nc; i++) {
		const struct pinst *t = inst_of(s, &s->c[i]);
		int score = 0;

		if (!is_gone_inst(t))
			score += 4;
		if (!strcmp(t->id, s->st.instance_id))
			score += 2;
		if (s->c[i].c->state == CS_RUNNING)
			score += 1;
		if (score > best_score) {
			best = i;
			best_score = score;
		}
	}
	return best;
}

/*
 * A container that is not running on an instance whose agent already runs
 * all the slots it has (the pool or the agent shrank): it can never start
 * there, so it moves like one on a failing instance.
 */
static int no_room(const struct pinst *t, const struct obs_container *c)
{
	return t->healthy && c->state != CS_RUNNING && c->state != CS_CREATED &&
	       t->active >= t->cap;
}

static int mode_run(struct wsx *s)
{
	const char *was = s->old.conds[COND_SCHEDULED].reason;
	size_t k = choose_keeper(s), i;
	int rc = 0;

	/*
	 * The class a wait for a slot set (PoolExhausted: the operator;
	 * LaunchTimedOut) is about that wait only: it goes when the wait does,
	 * and wait_slot() sets it again while the wait goes on.
	 */
	if (!strcmp(was, "PoolExhausted") || !strcmp(was, "LaunchTimedOut"))
		s->st.error_class = SP_CLASS_NONE;

	for (i = 0; !rc && i < s->nc; i++) {
		const struct pinst *t = inst_of(s, &s->c[i]);
		char obs[128];

		if (i == k)
			continue;
		if (!busy(s->c[i].c))
			rc = act(s, ACT_REMOVE_CONTAINER, t, 0, "DuplicateContainer");
		snprintf(obs, sizeof(obs), "second container %s on %s", s->c[i].c->name, t->id);
		if (rc >= 0)
			rc = drift(s, DRIFT_UNMANAGED, "DuplicateContainer", "one container", obs,
				   "remove the duplicate");
	}
	if (rc < 0)
		return rc;
	if (k == s->nc)
		return place(s);
	if (is_gone_inst(inst_of(s, &s->c[k])))
		return move_off(s, inst_of(s, &s->c[k]), s->c[k].c, "InstanceUnhealthy");
	if (no_room(inst_of(s, &s->c[k]), s->c[k].c))
		return move_off(s, inst_of(s, &s->c[k]), s->c[k].c, "InstanceFull");
	return run_on(s, inst_of(s, &s->c[k]), s->c[k].c);
}

/* Whether "no container seen" is the truth: every place it could be was observed. */
static int absence_sure(struct wsx *s)
{
	struct pinst *t;

	if (!s->st.instance_id[0])
		return s->p->group != NULL;
	t = plan_find_inst(s->x, s->st.instance_id);
	if (!t)
		return s->p->group != NULL;
	return t->known || t->gone;
}

/*
 * Stop: sync then stop; a stopped, synced container is removed so the slot
 * frees. While the agent works on what it accepted (busy), nothing more is
 * asked: the workspace stays STOPPING until the outcome shows. *keep is set
 * while the retry schedule of a failed sync-back must be kept.
 */
static int stop_one(struct wsx *s, const struct pinst *t, const struct obs_container *c,
		    int *active, int *keep)
{
	int rf = c->restore_failed;   /* the observed container is the truth */
	int rc = 0;

	if (busy(c))
		*keep = 1;
	switch (c->state) {
	case CS_RUNNING:
	case CS_CREATED:
	case CS_EXITED:
		*active = 1;
		if (!busy(c))
			rc = act_sync_back(s, ACT_STOP_CONTAINER, t, c, may_sync(s, c),
					   "StopRequested", keep);
		if (rc >= 0)
			rc = drift(s, DRIFT_CHANGED, "ContainerShouldBeStopped", "stopped",
				   container_state_name(c->state),
				   busy(c) ? "wait for the stop in progress" :
				   c->last_sync == SYNC_FAILED && may_sync(s, c) ?
				   "sync (failed: retry with backoff), then stop" :
				   may_sync(s, c) ? "sync, then stop" :
				   rf ? "stop without sync (restore failed)" : "stop without sync");
		break;
	case CS_STOPPED:
		if (rf || c->last_sync == SYNC_OK) {
			if (!busy(c))   /* else its cleanup is under way */
				rc = act(s, ACT_REMOVE_CONTAINER, t, 0, "StoppedContainerCleanup");
		} else if (busy(c) || c->last_sync == SYNC_RUNNING) {
			*active = 1;
		} else {
			*active = 1;
			rc = act_sync_back(s, ACT_SYNC, t, c, 1, "SyncBeforeRemove", keep);
		}
		break;
	default:
		if (!busy(c))
			rc = act(s, ACT_REMOVE_CONTAINER, t, 0, "FailedContainerCleanup");
		break;
	}
	return rc < 0 ? rc : 0;
}

static void stop_conds(struct wsx *s, const char *why)
{
	size_t i;

	/* while a container remains, status names where it is and what it saw */
	if (s->nc) {
		set_placement(s, inst_of(s, &s->c[0]));
		s->st.restore_failed = 0;
	}
	for (i = 0; i < s->nc; i++)
		if (s->c[i].c->restore_failed)
			s->st.restore_failed = 1;
	cond(s, COND_SCHEDULED, CSTAT_FALSE, why, "%s", "");
	cond(s, COND_INSTANCE_READY, CSTAT_FALSE, "NotRequested", "%s", "");
	cond_default(s, COND_FILES_RESTORED, CSTAT_UNKNOWN, "NotRestoredYet");
	s->st.url[0] = '\0';
	/* who had to act for the start does not for the stop; a sync retry stays (settle_retry) */
	if (s->st.error_class != SP_CLASS_RETRYABLE)
		s->st.error_class = SP_CLASS_NONE;
}

/*
 * After stop or delete planned its containers: the retry schedule goes
 * once evidence shows nothing failing or in progress (keep unset, and a
 * container seen or none anywhere); unknown keeps it.
 */
static void settle_retry(struct wsx *s, int keep)
{
	if (!keep && (s->nc || absence_sure(s)))
		clear_retry(s);
}

/*
 * Whether the last status already said STOPPED: that was decided on
 * evidence, and only a spec change (which moves the workspace out of stop
 * mode) starts its container again, so an observation that sees nothing
 * now is no news (invariants 7 and 8).
 */
static int was_stopped(const struct wsx *s)
{
	return s->has_old && s->old.phase == PHASE_STOPPED;
}

static int mode_stop(struct wsx *s)
{
	int active = 0, keep = 0, rc = 0;
	size_t i;

	stop_conds(s, "StopRequested");
	for (i = 0; !rc && i < s->nc; i++) {
		rc = stop_one(s, inst_of(s, &s->c[i]), s->c[i].c, &active, &keep);
		files_synced(s, s->c[i].c);
	}
	if (rc)
		return rc;
	settle_retry(s, keep);
	if (!s->nc)
		files_synced(s, NULL);
	if (active) {
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "ContainerStopping", "%s", "");
		cond(s, COND_READY, CSTAT_FALSE, "Stopping", "%s", "");
	} else if (s->nc || absence_sure(s)) {
		if (!s->nc)
			clear_placement(s);
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, s->nc ? "ContainerStopped" : "NoContainer",
		     "%s", "");
		cond(s, COND_READY, CSTAT_FALSE, "Stopped", "%s", "");
	} else if (was_stopped(s)) {
		/* nothing starts a stopped workspace's container: no news holds STOPPED */
		s->st.conds[COND_CONTAINER_READY] = s->old.conds[COND_CONTAINER_READY];
		cond(s, COND_READY, CSTAT_FALSE, "Stopped", "%s",
		     !strcmp(s->old.conds[COND_READY].reason, "Stopped") ?
			     s->old.conds[COND_READY].message : "");
		if (s->st.instance_id[0])
			rc = drift(s, DRIFT_UNOBSERVABLE, "AgentUnobservable", "no container",
				   "unknown", "wait for the observation");
	} else {
		cond(s, COND_CONTAINER_READY, CSTAT_UNKNOWN, "Unobservable", "%s",
		     s->st.instance_id);
		cond(s, COND_READY, CSTAT_FALSE, "Stopping", "waiting for observation");
		rc = drift(s, DRIFT_UNOBSERVABLE, "AgentUnobservable", "no running container",
			   "unknown", "wait for the observation");
	}
	return rc;
}

/* Whether the last status said, on complete evidence, that no container is left. */
static int known_gone(const struct wsx *s)
{
	return s->has_old && (s->old.phase == PHASE_DELETING || s->old.phase == PHASE_DELETED) &&
	       !strcmp(s->old.conds[COND_CONTAINER_READY].reason, "NoContainer");
}

/*
 * Delete: sync and remove every container, then, on complete evidence, the
 * row. A container the agent works on (busy: a remove accepted and still
 * syncing) is waited for, so the row goes only once it is gone.
 */
static int mode_delete(struct wsx *s)
{
	int rc = 0, keep = 0;
	size_t i;

	stop_conds(s, "DeleteRequested");
	for (i = 0; rc >= 0 && i < s->nc; i++) {
		const struct obs_container *c = s->c[i].c;
		int sync = may_sync(s, c) && !(c->state == CS_STOPPED && c->last_sync == SYNC_OK);

		if (busy(c))
			keep = 1;
		else
			rc = act_sync_back(s, ACT_REMOVE_CONTAINER, inst_of(s, &s->c[i]), c, sync,
					   "DeleteRequested", &keep);
		files_synced(s, c);
	}
	if (rc < 0)
		return rc;
	settle_retry(s, keep);
	if (s->nc) {
		cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "ContainerRemoving", "%s", "");
		cond(s, COND_READY, CSTAT_FALSE, "Deleting", "%s", "");
		return 0;
	}
	files_synced(s, NULL);
	if (!s->p->evidence || !absence_sure(s)) {
		/*
		 * Known gone once (on complete evidence) stays known: nothing
		 * starts a container of a workspace being deleted. DELETED holds
		 * too (its row outlived the pass that deleted it: the delete is
		 * planned again on complete evidence).
		 */
		if (!known_gone(s))
			cond(s, COND_CONTAINER_READY, CSTAT_UNKNOWN, "Unobservable", "%s", "");
		if (s->old.phase != PHASE_DELETED || !known_gone(s))
			cond(s, COND_READY, CSTAT_FALSE, "Deleting", "%s",
			     s->held ? s->held : "waiting for complete evidence");
		return drift(s, DRIFT_UNOBSERVABLE, "EvidenceIncomplete", "no container anywhere",
			     "unknown", "wait for complete evidence before deleting");
	}
	cond(s, COND_CONTAINER_READY, CSTAT_FALSE, "NoContainer", "%s", "");
	rc = act(s, ACT_DELETE_ROW, NULL, 0, "DeleteCompleted");
	if (rc == 1) {
		clear_placement(s);
		cond(s, COND_READY, CSTAT_FALSE, "Deleted", "%s", "");
	} else {
		cond(s, COND_READY, CSTAT_FALSE, "Deleting", "%s", s->held ? s->held : "");
	}
	return rc < 0 ? rc : 0;
}

static int pool_missing(struct wsx *s)
{
	not_placed(s, CSTAT_FALSE, "PoolNotFound", "pool '%s' does not exist", s->w->pool);
	cond(s, COND_READY, CSTAT_FALSE, "PoolNotFound", "pool '%s' does not exist", s->w->pool);
	s->st.error_class = SP_CLASS_NEEDS_USER;
	if (s->w->deletion_requested_at || s->w->state != WS_STATE_RUNNING)
		return 0;
	return drift(s, DRIFT_MISSING, "PoolNotFound", "container running", "no pool",
		     "none: fix the workspace's pool");
}

/* Phase, one event per phase change, generation and reconcile echo, the change itself. */
static int finish(struct wsx *s)
{
	enum ws_phase ph;
	struct ws_event *ev;

	if (s->p && !s->w->deletion_requested_at && s->w->state == WS_STATE_RUNNING)
		ready_from_conds(s);
	ph = status_derive_phase(s->w, &s->st);
	if (ph != s->old.phase) {
		ev = plan_push_event(s->x->out);
		if (!ev)
			return SP_ENOMEM;
		ev->workspace_id = s->w->id;
		str_copy(ev->type, sizeof(ev->type), plan_event_type(s->old.phase, ph));
		ev->from = s->old.phase;
		ev->to = ph;
		str_copy(ev->reason, sizeof(ev->reason), s->st.conds[COND_READY].reason);
		snprintf(ev->message, sizeof(ev->message), "%s -> %s (%s)",
			 ws_phase_name(s->old.phase), ws_phase_name(ph), ev->reason);
		ev->at = s->now;
		s->st.phase = ph;
		s->st.phase_since = s->now;
	}
	if (s->acting) {
		s->st.observed_generation = s->w->generation;
		if (s->w->reconcile_requested_at > s->st.reconcile_handled_at)
			s->st.reconcile_handled_at = s->w->reconcile_requested_at;
	}
	if (!s->has_old || workspace_status_differs(&s->old, &s->st))
		return plan_push_change(s->x->out, &s->st);
	return 0;
}

static void find_conts(struct plan_ctx *x, int64_t id, struct pcont **first, size_t *n)
{
	size_t lo = 0, hi = x->nconts, i;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (x->conts[mid].ws < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < x->nconts && x->conts[i].ws == id; i++)
		;
	*first = x->conts + lo;
	*n = id ? i - lo : 0;
}

static int plan_one(struct plan_ctx *x, struct ppool *p, size_t wi)
{
	const struct plan_input *in = x->in;
	struct wsx s;
	int rc;

	memset(&s, 0, sizeof(s));
	s.x = x;
	s.p = p;
	s.w = &in->workspaces[wi];
	s.now = x->now;
	s.has_old = in->status && in->has_status && in->has_status[wi];
	if (s.has_old)
		s.old = in->status[wi];
	else
		workspace_status_init(&s.old, s.w->id, x->now);
	s.old.workspace_id = s.w->id;
	s.st = s.old;
	find_conts(x, s.w->id, &s.c, &s.nc);
	if (p && p->acting && s.w->paused_until > x->now)
		s.held = "workspace paused";
	else if (p)
		s.held = p->held;
	s.acting = p && p->acting && !(s.w->paused_until > x->now);
	s.retry_now = s.has_old && ws_changed(s.w, &s.old);
	if (s.has_old && s.acting && s.w->generation != s.old.observed_generation) {
		/* a new spec starts afresh: no backoff inherited from the old one */
		s.st.attempts = 0;
		s.st.next_attempt_at = 0;
	}
	if (!p)
		rc = pool_missing(&s);
	else if (s.w->deletion_requested_at)
		rc = mode_delete(&s);
	else if (s.w->state == WS_STATE_STOPPED)
		rc = mode_stop(&s);
	else
		rc = mode_run(&s);
	if (!rc)
		rc = finish(&s);
	return rc;
}

int plan_workspaces(struct plan_ctx *x, struct ppool *p)
{
	size_t k, lo, hi;
	int rc = 0;

	if (p) {
		lo = p->wlo;
		hi = p->whi;
	} else {
		lo = x->npools ? x->pools[x->npools - 1].whi : 0;
		hi = x->nws;
	}
	for (k = lo; !rc && k < hi; k++)
		rc = plan_one(x, p, x->ws[k]);
	return rc;
}
