/*
 * cloud.h - the cloud driver interface: one Auto Scaling group and its
 * EC2 instances.
 *
 * A driver is a table of function pointers plus opaque state (Redis's
 * ConnectionType). Implementations live side by side in drivers/:
 *   "sim"  drivers/sim.c      in-memory world, virtual clock, fault knobs
 *   "aws"  drivers/awscloud.c Query API over SigV4 (AWS or the local provider)
 * and are chosen by name with cloud_new(). Callers use the inline wrappers.
 *
 * Every call blocks for at most the driver's configured timeout (network
 * drivers) and returns 0 or a negative SP_E* code with detail in e.
 * describe() fills g and sets g->complete only when every page of every
 * underlying call succeeded: on failure it still returns what it got, with
 * complete = 0, so the planner can treat the rest as unknown, not absent.
 *
 * Mutations are idempotent: capacity is absolute, protection and health are
 * set to a value, terminating a gone instance is SP_ENOTFOUND (the caller
 * treats that as done).
 */
#ifndef SPINUP_CLOUD_H
#define SPINUP_CLOUD_H

#include <stddef.h>

#include "../model/err.h"
#include "../model/observed.h"

/* SetInstanceProtection takes at most this many ids per call. */
#define CLOUD_PROTECT_BATCH 50

struct cloud_ops {
	const char *name;
	int (*describe)(void *st, const char *asg, struct obs_group *g, struct err *e);
	int (*set_capacity)(void *st, const char *asg, int desired, struct err *e);
	int (*set_protection)(void *st, const char *asg, const char *const *ids, size_t n,
			      int protect, struct err *e);
	int (*terminate)(void *st, const char *instance_id, int decrement_capacity,
			 struct err *e);
	int (*set_health)(void *st, const char *instance_id, int healthy, struct err *e);
	void (*free)(void *st);
};

struct cloud {
	const struct cloud_ops *ops;
	void *state;
	unsigned long calls;   /* API calls issued (for metrics and benchmarks) */
};

static inline int cloud_describe(struct cloud *c, const char *asg, struct obs_group *g,
				 struct err *e)
{
	c->calls++;
	return c->ops->describe(c->state, asg, g, e);
}

static inline int cloud_set_capacity(struct cloud *c, const char *asg, int desired,
				     struct err *e)
{
	c->calls++;
	return c->ops->set_capacity(c->state, asg, desired, e);
}

/* Splits ids into batches of CLOUD_PROTECT_BATCH; the driver sees one batch a call. */
int cloud_set_protection(struct cloud *c, const char *asg, const char *const *ids, size_t n,
			 int protect, struct err *e);

static inline int cloud_terminate(struct cloud *c, const char *id, int decrement,
				  struct err *e)
{
	c->calls++;
	return c->ops->terminate(c->state, id, decrement, e);
}

static inline int cloud_set_health(struct cloud *c, const char *id, int healthy,
				   struct err *e)
{
	c->calls++;
	return c->ops->set_health(c->state, id, healthy, e);
}

/* Free the driver and its state; accepts NULL. */
void cloud_free(struct cloud *c);

#endif
