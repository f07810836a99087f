/*
 * agentc.h - the agent client interface: talking to the spinup-agent on
 * each instance (health, list, ensure running, sync, stop, remove).
 *
 * A table of function pointers plus opaque state, like cloud.h:
 *   "sim"  drivers/sim.c     agents of the in-memory world
 *   "http" drivers/agenthttp.c  HTTP+JSON, signed, curl multi
 *
 * observe() polls every target concurrently and fills out[i] for targets[i];
 * a target that did not answer gets out[i].observed = 0 and a reason in
 * out[i].error - never an empty container list (invariant 7). It returns 0
 * even when some agents failed; a negative code only when it could not try,
 * and SP_EFENCED (with out[] filled) when an agent refused the epoch as
 * stale: the caller is no longer leader.
 *
 * Every request carries the caller's fencing epoch; an agent that has seen
 * a higher one refuses with SP_EFENCED (invariant 5). All mutations are
 * idempotent: ensure = make it run if not running, remove of a missing
 * container succeeds.
 */
#ifndef SPINUP_AGENTC_H
#define SPINUP_AGENTC_H

#include <stddef.h>
#include <stdint.h>

#include "../model/err.h"
#include "../model/observed.h"
#include "../model/spec.h"

struct agent_target {
	char instance_id[OBS_INSTANCE_ID_MAX + 1];
	char address[OBS_ADDR_MAX + 1];
	int port;
};


struct agentc_ops {
	const char *name;
	int (*observe)(void *st, const struct agent_target *targets, size_t n, int64_t epoch,
		       struct obs_agent *out, struct err *e);
	int (*ensure)(void *st, const struct agent_target *t, int64_t epoch,
		      const struct container_req *req, struct err *e);
	int (*sync)(void *st, const struct agent_target *t, int64_t epoch, int64_t workspace_id,
		    struct err *e);
	int (*stop)(void *st, const struct agent_target *t, int64_t epoch, int64_t workspace_id,
		    int sync_first, struct err *e);
	int (*remove)(void *st, const struct agent_target *t, int64_t epoch,
		      int64_t workspace_id, int sync_first, struct err *e);
	void (*free)(void *st);
};

struct agentc {
	const struct agentc_ops *ops;
	void *state;
	unsigned long calls;
};

static inline int agentc_observe(struct agentc *a, const struct agent_target *t, size_t n,
				 int64_t epoch, struct obs_agent *out, struct err *e)
{
	a->calls += n;
	return a->ops->observe(a->state, t, n, epoch, out, e);
}

static inline int agentc_ensure(struct agentc *a, const struct agent_target *t, int64_t epoch,
				const struct container_req *req, struct err *e)
{
	a->calls++;
	return a->ops->ensure(a->state, t, epoch, req, e);
}

static inline int agentc_sync(struct agentc *a, const struct agent_target *t, int64_t epoch,
			      int64_t ws, struct err *e)
{
	a->calls++;
	return a->ops->sync(a->state, t, epoch, ws, e);
}

static inline int agentc_stop(struct agentc *a, const struct agent_target *t, int64_t epoch,
			      int64_t ws, int sync_first, struct err *e)
{
	a->calls++;
	return a->ops->stop(a->state, t, epoch, ws, sync_first, e);
}

static inline int agentc_remove(struct agentc *a, const struct agent_target *t, int64_t epoch,
				int64_t ws, int sync_first, struct err *e)
{
	a->calls++;
	return a->ops->remove(a->state, t, epoch, ws, sync_first, e);
}

/* Free the driver and its state; accepts NULL. */
void agentc_free(struct agentc *a);

#endif
