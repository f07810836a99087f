/*
 * exec.c - the executor (see exec.h for the order and the safety rules).
 */
#include "exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/strbuf.h"
#include "../model/banned.h"

enum exec_phase {
	PH_PROTECT_ON,
	PH_CAPACITY,
	PH_PROTECT_OFF,
	PH_TERMINATE,
	PH_ENSURE,
	PH_SYNC,
	PH_STOP,
	PH_DELETE,
	PH_MAX
};

struct exec_run {
	const struct exec_config *cfg;
	struct cloud *cloud;
	struct agentc *agents;
	const struct exec_journal *j;
	const struct action *acts;
	size_t n;
	struct exec_report *r;
	int stop_rc;              /* 0, or why the rest of the pass is skipped */
	char why[ERR_MSG_MAX];    /* the lease guard's reason, when it stopped the pass */
};

const char *exec_outcome_name(enum exec_outcome o)
{
	static const char *const names[EXEC_OUTCOME_MAX] = {
		"not_run", "ok", "failed", "skipped", "handed_off",
	};

	if ((int)o < 0 || o >= EXEC_OUTCOME_MAX)
		return "unknown";
	return names[o];
}

void exec_report_init(struct exec_report *r)
{
	memset(r, 0, sizeof(*r));
}

void exec_report_release(struct exec_report *r)
{
	if (!r)
		return;
	free(r->results);
	exec_report_init(r);
}

static enum exec_phase phase_of(const struct action *a)
{
	switch (a->type) {
	case ACT_PROTECT:
		return a->flag ? PH_PROTECT_ON : PH_PROTECT_OFF;
	case ACT_SET_CAPACITY:
		return PH_CAPACITY;
	case ACT_SET_UNHEALTHY:
	case ACT_TERMINATE:
		return PH_TERMINATE;
	case ACT_ENSURE_CONTAINER:
		return PH_ENSURE;
	case ACT_SYNC:
		return PH_SYNC;
	case ACT_STOP_CONTAINER:
	case ACT_REMOVE_CONTAINER:
		return PH_STOP;
	case ACT_DELETE_ROW:
	default:
		return PH_DELETE;
	}
}

static void set_result(struct exec_run *x, size_t i, enum exec_outcome o, int rc,
		       const char *msg)
{
	struct exec_result *res = &x->r->results[i];

	res->outcome = o;
	res->rc = rc;
	res->cls = rc ? sp_code_class(rc) : SP_CLASS_NONE;
	str_copy(res->msg, sizeof(res->msg), msg ? msg : "");
}

static void skip(struct exec_run *x, size_t i, int rc, const char *why)
{
	set_result(x, i, EXEC_SKIPPED, rc, why);
}

/* Whether the pass may make one more driver call; sets stop_rc when not. */
static int may_call(struct exec_run *x)
{
	if (x->stop_rc)
		return 0;
	if (x->cfg->max_mutations > 0 && x->r->calls >= x->cfg->max_mutations) {
		x->r->limited = 1;
		x->stop_rc = SP_ELIMIT;
		return 0;
	}
	return 1;
}

/* The last moment a mutation may start under a lease renewed at `from` (monotonic ms). */
static int64_t lease_deadline(const struct exec_lease *l, int64_t from)
{
	return from + l->ttl_ms - l->margin_ms;
}

/* The lease guard stops the pass: every call from here on is skipped. */
static int lease_lost(struct exec_run *x, const char *why, const char *detail)
{
	snprintf(x->why, sizeof(x->why), "pass stopped before a mutation: %s%s%s", why,
		 detail[0] ? ": " : "", detail);
	x->r->fenced = 1;
	x->r->lease_lost = 1;
	x->stop_rc = SP_EFENCED;
	return SP_EFENCED;
}

/*
 * Whether the lease is known held for a driver call starting now: renewed
 * when a third of its TTL has passed (exec.h). 0, or SP_EFENCED with the
 * pass stopped.
 */
static int lease_check(struct exec_run *x)
{
	struct exec_lease *l = x->cfg->lease;
	struct err e = ERR_INIT;
	int64_t t0;
	int held = 0, rc;

	if (!l)
		return 0;
	t0 = l->now(l->ctx);
	if (t0 < l->renewed_at + l->ttl_ms / 3)
		return 0;
	x->r->renewals++;
	rc = l->renew(l->ctx, &held, &e);
	if (rc)
		return lease_lost(x, "could not renew the lease", e.msg);
	if (!held)
		return lease_lost(x, "the lease is no longer ours (expired or taken)", "");
	if (l->now(l->ctx) >= lease_deadline(l, t0))
		return lease_lost(x, "renewing the lease took longer than its TTL", "");
	l->renewed_at = t0;
	return 0;
}

/* Journal an action before its call. 0, or the pass stops (the action is failed). */
static int journal_pending(struct exec_run *x, size_t i)
{
	struct err e = ERR_INIT;
	int rc;

	if (!x->j || !x->j->pending)
		return 0;
	rc = x->j->pending(x->j->ctx, &x->acts[i], &e);
	if (rc == 0)
		return 0;
	if (rc > 0)
		rc = SP_EINTERNAL;
	err_prefix(&e, "could not journal %s", x->acts[i].key);
	set_result(x, i, EXEC_FAILED, rc, e.msg);
	x->stop_rc = rc;
	if (rc == SP_EFENCED)
		x->r->fenced = 1;
	return rc;
}

/* Record a call's result, journal it, and stop the pass on fencing. */
static void finish(struct exec_run *x, size_t i, int rc, const struct err *e)
{
	set_result(x, i, rc ? EXEC_FAILED : EXEC_OK, rc, rc ? e->msg : "");
	if (x->j && x->j->done)
		x->j->done(x->j->ctx, &x->acts[i], rc, e);
	if (rc == SP_EFENCED) {
		x->r->fenced = 1;
		x->stop_rc = SP_EFENCED;
	}
}

static void target_of(const struct action *a, struct agent_target *t)
{
	memset(t, 0, sizeof(*t));
	str_copy(t->instance_id, sizeof(t->instance_id), a->instance_id);
	str_copy(t->address, sizeof(t->address), a->address);
	t->port = a->port;
}

/* The one driver call of a non-batched action; idempotent "already gone" is success. */
static int call_one(struct exec_run *x, const struct action *a, struct err *e)
{
	struct agent_target t;
	int64_t ep = x->cfg->epoch;
	int rc;

	target_of(a, &t);
	switch (a->type) {
	case ACT_SET_CAPACITY:
		return cloud_set_capacity(x->cloud, a->asg_name, a->capacity, e);
	case ACT_TERMINATE:
		rc = cloud_terminate(x->cloud, a->instance_id, a->flag, e);
		return rc == SP_ENOTFOUND ? 0 : rc;
	case ACT_SET_UNHEALTHY:
		return cloud_set_health(x->cloud, a->instance_id, 0, e);
	case ACT_ENSURE_CONTAINER:
		return agentc_ensure(x->agents, &t, ep, &a->req, e);
	case ACT_SYNC:
		return agentc_sync(x->agents, &t, ep, a->workspace_id, e);
	case ACT_STOP_CONTAINER:
		rc = agentc_stop(x->agents, &t, ep, a->workspace_id, a->flag, e);
		return rc == SP_ENOTFOUND ? 0 : rc;
	case ACT_REMOVE_CONTAINER:
		return agentc_remove(x->agents, &t, ep, a->workspace_id, a->flag, e);
	default:
		return err_set(e, SP_EINTERNAL, "action type %d is not a driver call",
			       (int)a->type);
	}
}

/* Whether a protect(1) of this instance failed or was skipped this pass. */
static int protect_failed(const struct exec_run *x, const char *instance_id)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		const struct action *a = &x->acts[i];
		enum exec_outcome o = x->r->results[i].outcome;

		if (a->type == ACT_PROTECT && a->flag && !strcmp(a->instance_id, instance_id) &&
		    (o == EXEC_FAILED || o == EXEC_SKIPPED))
			return 1;
	}
	return 0;
}

/*
 * Whether an ACT_SET_UNHEALTHY of this pool failed or was skipped this pass:
 * the workspaces it held may be planned elsewhere, and would then run twice.
 */
static int replacement_failed(const struct exec_run *x, int64_t pool_id)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		enum exec_outcome o = x->r->results[i].outcome;

		if (x->acts[i].type == ACT_SET_UNHEALTHY && x->acts[i].pool_id == pool_id &&
		    (o == EXEC_FAILED || o == EXEC_SKIPPED))
			return 1;
	}
	return 0;
}

/* Whether another action on this workspace failed or was skipped this pass. */
static int workspace_failed(const struct exec_run *x, size_t self)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		enum exec_outcome o = x->r->results[i].outcome;

		if (i != self && x->acts[i].workspace_id == x->acts[self].workspace_id &&
		    (o == EXEC_FAILED || o == EXEC_SKIPPED))
			return 1;
	}
	return 0;
}

static void run_delete(struct exec_run *x, size_t i)
{
	struct err e = ERR_INIT;
	int rc;

	if (workspace_failed(x, i)) {
		skip(x, i, SP_EBUSY, "another action on this workspace did not succeed");
		return;
	}
	if (!x->j || !x->j->delete_row) {
		set_result(x, i, EXEC_HANDED_OFF, 0, "");
		return;
	}
	rc = x->j->delete_row(x->j->ctx, &x->acts[i], &e);
	set_result(x, i, rc ? EXEC_FAILED : EXEC_OK, rc, e.msg);
	if (rc == SP_EFENCED) {
		x->r->fenced = 1;
		x->stop_rc = SP_EFENCED;
	}
}

static void run_one(struct exec_run *x, size_t i)
{
	const struct action *a = &x->acts[i];
	struct err e = ERR_INIT;
	int rc;

	if (a->type == ACT_DELETE_ROW) {
		run_delete(x, i);
		return;
	}
	if (a->type == ACT_ENSURE_CONTAINER && protect_failed(x, a->instance_id)) {
		skip(x, i, SP_EBUSY, "instance not protected from scale-in yet");
		return;
	}
	if (a->type == ACT_ENSURE_CONTAINER && replacement_failed(x, a->pool_id)) {
		skip(x, i, SP_EBUSY, "an unhealthy instance of the pool is not replaced yet");
		return;
	}
	if (!may_call(x) || journal_pending(x, i) < 0)
		return;
	if (lease_check(x)) {
		skip(x, i, SP_EFENCED, x->why);
		return;
	}
	x->r->calls++;
	rc = call_one(x, a, &e);
	finish(x, i, rc, &e);
}

/* Same batch: a protect action of the same group and flag, not run yet. */
static int same_batch(const struct exec_run *x, size_t i, size_t k)
{
	const struct action *a = &x->acts[i], *b = &x->acts[k];

	return b->type == ACT_PROTECT && !b->flag == !a->flag &&
	       !strcmp(a->asg_name, b->asg_name) && x->r->results[k].outcome == EXEC_NOT_RUN;
}

/* One SetInstanceProtection call for action i and up to 49 like it. */
static void run_protect_batch(struct exec_run *x, size_t i)
{
	const char *ids[CLOUD_PROTECT_BATCH];
	size_t idx[CLOUD_PROTECT_BATCH], nb = 0, k, m;
	struct err e = ERR_INIT;
	int rc;

	if (!may_call(x))
		return;
	for (k = i; k < x->n && nb < CLOUD_PROTECT_BATCH; k++)
		if (same_batch(x, i, k))
			idx[nb++] = k;
	for (m = 0; m < nb; m++) {
		if (journal_pending(x, idx[m]) < 0) {
			while (m-- > 0)   /* journaled but not run: say so */
				finish(x, idx[m], x->stop_rc, &(struct err){ x->stop_rc,
					"not run: the journal failed" });
			return;
		}
		ids[m] = x->acts[idx[m]].instance_id;
	}
	if (lease_check(x)) {
		for (m = 0; m < nb; m++)
			skip(x, idx[m], SP_EFENCED, x->why);
		return;
	}
	x->r->calls++;
	rc = cloud_set_protection(x->cloud, x->acts[i].asg_name, ids, nb, x->acts[i].flag, &e);
	for (m = 0; m < nb; m++)
		finish(x, idx[m], rc, &e);
}

static void run_phase(struct exec_run *x, enum exec_phase p)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		if (phase_of(&x->acts[i]) != p || x->r->results[i].outcome != EXEC_NOT_RUN)
			continue;
		if (x->stop_rc)
			break;
		if (x->acts[i].type == ACT_PROTECT)
			run_protect_batch(x, i);
		else
			run_one(x, i);
	}
}

static void tally(struct exec_run *x)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		struct exec_result *res = &x->r->results[i];

		if (res->outcome == EXEC_NOT_RUN)
			skip(x, i, x->stop_rc ? x->stop_rc : SP_EINTERNAL, x->why[0] ? x->why :
			     x->stop_rc == SP_EFENCED ?
			     "pass stopped: fencing epoch is stale" : x->stop_rc == SP_ELIMIT ?
			     "pass stopped: mutation limit reached" : "pass stopped");
		switch (res->outcome) {
		case EXEC_OK:
			x->r->ok++;
			break;
		case EXEC_FAILED:
			x->r->failed++;
			break;
		case EXEC_HANDED_OFF:
			x->r->handed_off++;
			break;
		default:
			x->r->skipped++;
			break;
		}
	}
}

int exec_run(const struct exec_config *cfg, struct cloud *cloud, struct agentc *agents,
	     const struct exec_journal *j, const struct action *actions, size_t n,
	     struct exec_report *r, struct err *e)
{
	struct exec_run x = { cfg, cloud, agents, j, actions, n, r, 0, "" };
	int p;

	exec_report_release(r);
	r->results = calloc(n ? n : 1, sizeof(*r->results));
	if (!r->results)
		return err_set(e, SP_ENOMEM, "executor: out of memory for %zu results", n);
	r->n = n;
	for (p = 0; p < PH_MAX; p++)
		run_phase(&x, (enum exec_phase)p);
	tally(&x);
	if (r->lease_lost)
		return err_set(e, SP_EFENCED, "executor: %s", x.why);
	if (r->fenced)
		return err_set(e, SP_EFENCED, "executor: pass stopped, fencing epoch %lld is stale",
			       (long long)cfg->epoch);
	return 0;
}
