/*
 * sim.c - the in-memory world behind the "sim" cloud and agent drivers
 * (see sim.h for what is modelled and why).
 */
#include "sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/strbuf.h"
#include "../model/banned.h"

struct sim_ct {
	int64_t ws;
	enum container_state state;
	int ready;
	int restoring;            /* CS_CREATED: files are being restored */
	int64_t running_at;       /* CS_CREATED -> CS_RUNNING at this time */
	int64_t ready_at;
	int64_t started_at;
	int64_t last_sync_at;
	enum sync_result last_sync;
	int64_t sync_done_at;     /* a slow sync completes then; 0: none running */
	int sync_fails;           /* ... and fails then */
	enum container_op pending;/* the op accepted behind that sync (agent/API.md) */
	int restore_failed, restarts, dirty;
	int64_t files;
	int port;
	struct container_req req;
	char message[OBS_MSG_MAX + 1];
};

struct sim_inst {
	char id[OBS_INSTANCE_ID_MAX + 1];
	char ip[OBS_ADDR_MAX + 1];
	int group;
	enum inst_lifecycle lc;
	int healthy, protect;
	int64_t launched_at, inservice_at, terminate_at, terminated_at;
	int64_t asg_visible_at, ec2_visible_at;
	int64_t agent_up_at, agent_down_until;
	int64_t max_epoch;
	struct sim_ct *cts;
	size_t ncts, cts_alloc;
};

struct sim_group {
	char name[64];
	int min_size, max_size, desired, slots, new_protected;
};

struct sim_snap {
	int64_t ws, version;
};

struct sim_world {
	struct sim_config cfg;
	uint64_t rng;
	uint64_t id_tag;
	int64_t now;
	struct sim_group groups[SIM_GROUPS_MAX];
	size_t ngroups;
	struct sim_inst **insts;
	size_t ninsts, insts_alloc;
	struct sim_snap *snaps;
	size_t nsnaps, snaps_alloc;
	struct sim_term_record *terms;
	size_t nterms, terms_alloc;
	struct sim_stop_record *stops;
	size_t nstops, stops_alloc;
	unsigned long fence_refusals, mutations;
	int oom;                  /* an inspection log could not grow (entries dropped) */
};

/* ---- PRNG: splitmix64, seeded explicitly ------------------------------------------------ */

uint64_t sim_random_u64(struct sim_world *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double sim_random(struct sim_world *w)
{
	return (double)(sim_random_u64(w) >> 11) * (1.0 / 9007199254740992.0);
}

/* Whether an event of probability p happens; draws nothing when p <= 0. */
static int chance(struct sim_world *w, double p)
{
	if (p <= 0)
		return 0;
	return sim_random(w) < p;
}

/* Uniform in [0, n); 0 when n <= 0. */
static int64_t below(struct sim_world *w, int64_t n)
{
	if (n <= 0)
		return 0;
	return (int64_t)(sim_random_u64(w) % (uint64_t)n);
}

/* ---- world ------------------------------------------------------------------------------ */

void sim_config_defaults(struct sim_config *c)
{
	memset(c, 0, sizeof(*c));
	c->start_ms = INT64_C(1767225600000);   /* 2026-01-01T00:00:00Z */
	c->tick_ms = 1000;
	c->launch_ms = 30000;
	c->launch_jitter_ms = 10000;
	c->terminate_ms = 20000;
	c->agent_boot_ms = 5000;
	c->container_start_ms = 4000;
	c->container_ready_ms = 2000;
	c->agent_port = 7070;
	c->workspace_port_base = 8000;
}

struct sim_world *sim_world_new(uint64_t seed, const struct sim_config *cfg)
{
	struct sim_world *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	if (cfg)
		w->cfg = *cfg;
	else
		sim_config_defaults(&w->cfg);
	if (w->cfg.tick_ms <= 0)
		w->cfg.tick_ms = 1000;
	w->rng = seed;
	w->id_tag = sim_random_u64(w) & 0xffffffffffff0000ULL;
	w->now = w->cfg.start_ms;
	return w;
}

void sim_world_free(struct sim_world *w)
{
	size_t i;

	if (!w)
		return;
	for (i = 0; i < w->ninsts; i++) {
		free(w->insts[i]->cts);
		free(w->insts[i]);
	}
	free(w->insts);
	free(w->snaps);
	free(w->terms);
	free(w->stops);
	free(w);
}

int64_t sim_now(const struct sim_world *w)
{
	return w->now;
}

void sim_set_faults(struct sim_world *w, const struct sim_faults *f)
{
	w->cfg.faults = *f;
}

void sim_faults_off(struct sim_world *w)
{
	size_t i;

	memset(&w->cfg.faults, 0, sizeof(w->cfg.faults));
	for (i = 0; i < w->ninsts; i++)   /* agent outages in progress end now */
		w->insts[i]->agent_down_until = 0;
}

/* Grow a dynamic array by one slot; 0 or SP_ENOMEM. */
static int grow(void **arr, size_t *alloc, size_t n, size_t size)
{
	size_t na;
	void *p;

	if (n < *alloc)
		return 0;
	na = *alloc ? *alloc * 2 : 16;
	p = realloc(*arr, na * size);
	if (!p)
		return SP_ENOMEM;
	*arr = p;
	*alloc = na;
	return 0;
}

static int group_index(const struct sim_world *w, const char *name)
{
	size_t i;

	for (i = 0; i < w->ngroups; i++)
		if (!strcmp(w->groups[i].name, name))
			return (int)i;
	return -1;
}

int sim_add_group(struct sim_world *w, const struct sim_group_config *g, struct err *e)
{
	struct sim_group *sg;

	if (!g->name || !g->name[0] || strlen(g->name) >= sizeof(sg->name))
		return err_set(e, SP_EINVAL, "sim group: bad name");
	if (g->min_size < 0 || g->max_size < g->min_size || g->desired < g->min_size ||
	    g->desired > g->max_size || g->slots < 1 || g->slots > SIM_CONTAINERS_MAX)
		return err_set(e, SP_EINVAL, "sim group '%s': sizes or slots out of range",
			       g->name);
	if (group_index(w, g->name) >= 0)
		return err_set(e, SP_ECONFLICT, "sim group '%s' exists already", g->name);
	if (w->ngroups == SIM_GROUPS_MAX)
		return err_set(e, SP_ELIMIT, "sim: more than %d groups", SIM_GROUPS_MAX);
	sg = &w->groups[w->ngroups++];
	memset(sg, 0, sizeof(*sg));
	str_copy(sg->name, sizeof(sg->name), g->name);
	sg->min_size = g->min_size;
	sg->max_size = g->max_size;
	sg->desired = g->desired;
	sg->slots = g->slots;
	sg->new_protected = g->new_instances_protected;
	return 0;
}

int sim_update_group(struct sim_world *w, const struct sim_group_config *g, struct err *e)
{
	int gi = g->name ? group_index(w, g->name) : -1;
	struct sim_group *sg;

	if (gi < 0)
		return err_set(e, SP_ENOTFOUND, "sim group '%s' not found", g->name ? g->name : "");
	if (g->min_size < 0 || g->max_size < g->min_size || g->slots < 1 ||
	    g->slots > SIM_CONTAINERS_MAX)
		return err_set(e, SP_EINVAL, "sim group '%s': sizes or slots out of range",
			       g->name);
	sg = &w->groups[gi];
	sg->min_size = g->min_size;
	sg->max_size = g->max_size;
	sg->slots = g->slots;
	sg->new_protected = g->new_instances_protected;
	if (sg->desired < sg->min_size)
		sg->desired = sg->min_size;
	if (sg->desired > sg->max_size)
		sg->desired = sg->max_size;
	return 0;
}

static struct sim_inst *inst_by_id(struct sim_world *w, const char *id)
{
	size_t i;

	for (i = 0; i < w->ninsts; i++)
		if (!strcmp(w->insts[i]->id, id))
			return w->insts[i];
	return NULL;
}

/* The instance an agent address belongs to (live ones only); NULL if none. */
static struct sim_inst *inst_by_addr(struct sim_world *w, const char *addr)
{
	size_t i;

	for (i = 0; i < w->ninsts; i++)
		if (w->insts[i]->lc != LC_TERMINATED && !strcmp(w->insts[i]->ip, addr))
			return w->insts[i];
	return NULL;
}

static struct sim_snap *snap_find(struct sim_world *w, int64_t ws)
{
	size_t i;

	for (i = 0; i < w->nsnaps; i++)
		if (w->snaps[i].ws == ws)
			return &w->snaps[i];
	return NULL;
}

static void log_term(struct sim_world *w, const struct sim_inst *in, enum sim_term_cause cause,
		     int64_t ws, enum container_state st)
{
	struct sim_term_record *r;

	if (w->nterms >= SIM_LOG_MAX ||
	    grow((void **)&w->terms, &w->terms_alloc, w->nterms, sizeof(*w->terms)) < 0) {
		w->oom = 1;
		return;
	}
	r = &w->terms[w->nterms++];
	memset(r, 0, sizeof(*r));
	str_copy(r->instance_id, sizeof(r->instance_id), in->id);
	r->cause = cause;
	r->at = w->now;
	r->workspace_id = ws;
	r->state = st;
}

static void log_stop(struct sim_world *w, const struct sim_inst *in, const struct sim_ct *c,
		     int removed)
{
	struct sim_stop_record *r;

	if (w->nstops >= SIM_LOG_MAX ||
	    grow((void **)&w->stops, &w->stops_alloc, w->nstops, sizeof(*w->stops)) < 0) {
		w->oom = 1;
		return;
	}
	r = &w->stops[w->nstops++];
	memset(r, 0, sizeof(*r));
	str_copy(r->instance_id, sizeof(r->instance_id), in->id);
	r->workspace_id = c->ws;
	r->removed = removed;
	r->synced = !c->dirty;
	r->restore_failed = c->restore_failed;
	r->at = w->now;
}

/* Begin terminating an instance: record what it held, stop its agent. */
static void inst_terminate(struct sim_world *w, struct sim_inst *in, enum sim_term_cause cause)
{
	size_t i;

	if (in->lc == LC_TERMINATING || in->lc == LC_TERMINATED)
		return;
	if (in->ncts == 0)
		log_term(w, in, cause, 0, CS_MAX);
	for (i = 0; i < in->ncts; i++)
		log_term(w, in, cause, in->cts[i].ws, in->cts[i].state);
	in->lc = LC_TERMINATING;
	in->healthy = cause == SIM_TERM_HEALTH || cause == SIM_TERM_DEATH ? 0 : in->healthy;
	in->terminate_at = w->now + w->cfg.terminate_ms;
}

static int inst_launch(struct sim_world *w, int g)
{
	struct sim_inst *in;
	int64_t seq = (int64_t)w->ninsts;
	int64_t hide = w->cfg.faults.consistency_ms;

	if (w->ninsts >= SIM_INSTANCES_MAX)
		return SP_ELIMIT;
	if (grow((void **)&w->insts, &w->insts_alloc, w->ninsts, sizeof(*w->insts)) < 0)
		return SP_ENOMEM;
	in = calloc(1, sizeof(*in));
	if (!in)
		return SP_ENOMEM;
	snprintf(in->id, sizeof(in->id), "i-0%016" PRIx64, w->id_tag | (uint64_t)seq);
	snprintf(in->ip, sizeof(in->ip), "10.%d.%d.%d", g + 1, (int)(seq / 200) % 256,
		 (int)(seq % 200) + 10);
	in->group = g;
	in->lc = LC_PENDING;
	in->healthy = 1;
	in->protect = w->groups[g].new_protected;
	in->launched_at = w->now;
	in->inservice_at = w->now + w->cfg.launch_ms + below(w, w->cfg.launch_jitter_ms);
	in->asg_visible_at = w->now + below(w, hide);
	in->ec2_visible_at = in->asg_visible_at + below(w, hide);
	w->insts[w->ninsts++] = in;
	return 0;
}

/* ---- the clock: timed transitions, the groups' controllers, per-step faults -------------- */

static void sync_complete(struct sim_world *w, struct sim_ct *c)
{
	struct sim_snap *s = snap_find(w, c->ws);

	if (!s) {
		if (grow((void **)&w->snaps, &w->snaps_alloc, w->nsnaps, sizeof(*w->snaps)) < 0) {
			c->last_sync = SYNC_FAILED;
			str_copy(c->message, sizeof(c->message), "sync failed: out of memory");
			return;
		}
		s = &w->snaps[w->nsnaps++];
		s->ws = c->ws;
	}
	s->version = c->files;
	c->dirty = 0;
	c->last_sync = SYNC_OK;
	c->last_sync_at = w->now;
}

/* A restore (or a plain start) finished: the container runs or fails. */
static void ct_start_done(struct sim_world *w, struct sim_ct *c)
{
	struct sim_snap *s = snap_find(w, c->ws);

	if (c->restoring) {
		if (chance(w, w->cfg.faults.restore_fail) || (c->req.expect_snapshot && !s)) {
			c->restore_failed = 1;
			c->state = CS_FAILED;
			c->restoring = 0;
			snprintf(c->message, sizeof(c->message), "restore from '%s/%s' failed: %s",
				 c->req.bucket, c->req.prefix, s ? "copy failed" :
				 "expected a snapshot but none was found");
			return;
		}
		c->files = s ? s->version : 0;
		c->restore_failed = 0;
		c->restoring = 0;
	}
	c->state = CS_RUNNING;
	c->ready = 0;
	c->ready_at = w->now + w->cfg.container_ready_ms;
	c->started_at = w->now;
	c->message[0] = '\0';
}

static void sync_failed(struct sim_ct *c, int64_t now)
{
	c->last_sync = SYNC_FAILED;
	c->last_sync_at = now;
	snprintf(c->message, sizeof(c->message), "sync to '%s/%s' failed: exit status 1",
		 c->req.bucket, c->req.prefix);
}

/* Stop c on in now (its files synced or not, as the caller decided). */
static void ct_stop_now(struct sim_world *w, struct sim_inst *in, struct sim_ct *c)
{
	if (c->state == CS_STOPPED)
		return;
	log_stop(w, in, c, 0);
	c->state = CS_STOPPED;
	c->ready = 0;
	c->restoring = 0;
}

/*
 * A slow sync finished: the op accepted behind it happens after a good one
 * (a stop, or a remove: 1, the caller drops c); a failed one drops the op
 * and leaves c as it was, like the agent.
 */
static int ct_sync_done(struct sim_world *w, struct sim_inst *in, struct sim_ct *c)
{
	enum container_op op = c->pending;

	c->sync_done_at = 0;
	c->pending = COP_NONE;
	if (c->sync_fails) {
		c->sync_fails = 0;
		sync_failed(c, w->now);
		return 0;
	}
	sync_complete(w, c);
	if (op == COP_STOP)
		ct_stop_now(w, in, c);
	if (op != COP_REMOVE)
		return 0;
	log_stop(w, in, c, 1);
	return 1;
}

/* One step of c; 1 when c was removed (the caller drops it). */
static int step_container(struct sim_world *w, struct sim_inst *in, struct sim_ct *c)
{
	if (c->sync_done_at && w->now >= c->sync_done_at && ct_sync_done(w, in, c))
		return 1;
	if (c->state == CS_CREATED && w->now >= c->running_at)
		ct_start_done(w, c);
	if (c->state != CS_RUNNING)
		return 0;
	if (!c->ready && w->now >= c->ready_at)
		c->ready = 1;
	if (!c->dirty && !c->sync_done_at) {  /* the user keeps writing */
		c->dirty = 1;
		c->files++;
	}
	if (chance(w, w->cfg.faults.container_crash)) {
		c->state = CS_EXITED;
		c->ready = 0;
		c->restarts++;
		str_copy(c->message, sizeof(c->message), "container exited with status 137");
	}
	return 0;
}

static void step_instance(struct sim_world *w, struct sim_inst *in)
{
	size_t i;

	if (in->lc == LC_PENDING && w->now >= in->inservice_at) {
		in->lc = LC_IN_SERVICE;
		in->agent_up_at = w->now + w->cfg.agent_boot_ms;
	}
	if (in->lc == LC_TERMINATING && w->now >= in->terminate_at) {
		in->lc = LC_TERMINATED;
		in->terminated_at = w->now;
		free(in->cts);   /* its containers went with it */
		in->cts = NULL;
		in->ncts = in->cts_alloc = 0;
		return;
	}
	if ((in->lc == LC_PENDING || in->lc == LC_IN_SERVICE) &&
	    chance(w, w->cfg.faults.instance_death)) {
		inst_terminate(w, in, SIM_TERM_DEATH);
		return;
	}
	if (in->lc != LC_IN_SERVICE)
		return;
	if (w->now >= in->agent_up_at && w->now >= in->agent_down_until &&
	    chance(w, w->cfg.faults.agent_flap))
		in->agent_down_until = w->now + w->cfg.faults.agent_flap_ms;
	for (i = 0; i < in->ncts;) {
		if (step_container(w, in, &in->cts[i]))
			in->cts[i] = in->cts[--in->ncts];
		else
			i++;
	}
}

static int is_active(const struct sim_inst *in)
{
	return in->lc == LC_PENDING || in->lc == LC_IN_SERVICE;
}

static int scale_in_candidate(const struct sim_inst *in, int g)
{
	return in->group == g && is_active(in) && !in->protect;
}

/* The group's controller: launch up to desired, scale in unprotected instances above it. */
static void step_group(struct sim_world *w, int g)
{
	const struct sim_group *sg = &w->groups[g];
	size_t i, ncand = 0, k;
	int active = 0;

	for (i = 0; i < w->ninsts; i++) {
		active += w->insts[i]->group == g && is_active(w->insts[i]);
		ncand += scale_in_candidate(w->insts[i], g);
	}
	while (active < sg->desired && inst_launch(w, g) == 0)
		active++;
	for (; active > sg->desired && ncand > 0; active--, ncand--) {
		k = (size_t)below(w, (int64_t)ncand);   /* the k-th candidate, at random */
		for (i = 0; i < w->ninsts; i++)
			if (scale_in_candidate(w->insts[i], g) && k-- == 0)
				break;
		inst_terminate(w, w->insts[i], SIM_TERM_SCALE_IN);
	}
}

static void step(struct sim_world *w)
{
	size_t i, n = w->ninsts;

	w->now += w->cfg.tick_ms;
	for (i = 0; i < n; i++)
		if (w->insts[i]->lc != LC_TERMINATED)
			step_instance(w, w->insts[i]);
	for (i = 0; i < w->ngroups; i++)
		step_group(w, (int)i);
}

void sim_tick(struct sim_world *w, int64_t ms)
{
	int64_t done;

	for (done = 0; done < ms; done += w->cfg.tick_ms)
		step(w);
}

/* ---- cloud driver ----------------------------------------------------------------------- */

/* Faults every cloud call may meet. 0, or the code (nothing happened). */
static int cloud_fault(struct sim_world *w, const char *what, struct err *e)
{
	if (chance(w, w->cfg.faults.throttle))
		return err_set(e, SP_ETHROTTLED, "%s: Throttling: Rate exceeded", what);
	if (chance(w, w->cfg.faults.api_error))
		return err_set(e, SP_EUNAVAIL, "%s: InternalFailure (HTTP 500)", what);
	return 0;
}

static const char *ec2_state_of(enum inst_lifecycle lc)
{
	switch (lc) {
	case LC_PENDING:
		return "pending";
	case LC_IN_SERVICE:
		return "running";
	case LC_TERMINATING:
		return "shutting-down";
	default:
		return "terminated";
	}
}

static int describe_fill(struct sim_world *w, int g, struct obs_group *out, struct err *e)
{
	size_t i;

	for (i = 0; i < w->ninsts; i++) {
		const struct sim_inst *in = w->insts[i];
		struct obs_instance *oi;

		if (in->group != g || in->lc == LC_TERMINATED || w->now < in->asg_visible_at)
			continue;
		oi = obs_group_add(out);
		if (!oi)
			return err_set(e, SP_ENOMEM, "describe: out of memory");
		str_copy(oi->id, sizeof(oi->id), in->id);
		oi->lifecycle = in->lc;
		oi->healthy = in->healthy;
		oi->protected_from_scale_in = in->protect;
		oi->ec2_seen = w->now >= in->ec2_visible_at;
		if (!oi->ec2_seen)
			continue;
		str_copy(oi->private_ip, sizeof(oi->private_ip), in->ip);
		snprintf(oi->az, sizeof(oi->az), "sim-%da", 1 + (int)(i % 3));
		str_copy(oi->ec2_state, sizeof(oi->ec2_state), ec2_state_of(in->lc));
		oi->launch_time = in->launched_at;
	}
	return 0;
}

/* Fault: a later page failed. Drop the tail, or the EC2 half of it. */
static int describe_partial(struct sim_world *w, struct obs_group *g, struct err *e)
{
	size_t keep = (size_t)below(w, (int64_t)g->ninstances + 1), i;

	if (sim_random(w) < 0.5) {
		g->ninstances = keep;
	} else {
		for (i = keep; i < g->ninstances; i++) {
			g->instances[i].ec2_seen = 0;
			g->instances[i].private_ip[0] = '\0';
			g->instances[i].ec2_state[0] = '\0';
		}
	}
	g->complete = 0;
	return err_set(e, SP_EUNAVAIL, "describe '%s': DescribeInstances page 2 failed: "
		       "InternalFailure (HTTP 500)", g->name);
}

static int sim_describe(void *st, const char *asg, struct obs_group *g, struct err *e)
{
	struct sim_world *w = st;
	int gi = group_index(w, asg), rc;
	const struct sim_group *sg;

	obs_group_release(g);
	str_copy(g->name, sizeof(g->name), asg);
	rc = cloud_fault(w, "DescribeAutoScalingGroups", e);
	if (rc < 0)
		return rc;
	g->complete = 1;
	if (gi < 0)
		return 0;
	sg = &w->groups[gi];
	g->found = 1;
	g->min_size = sg->min_size;
	g->max_size = sg->max_size;
	g->desired_capacity = sg->desired;
	rc = describe_fill(w, gi, g, e);
	if (rc < 0) {
		g->complete = 0;
		return rc;
	}
	if (chance(w, w->cfg.faults.partial_describe))
		return describe_partial(w, g, e);
	return 0;
}

static int sim_set_capacity(void *st, const char *asg, int desired, struct err *e)
{
	struct sim_world *w = st;
	int gi = group_index(w, asg), rc;

	rc = cloud_fault(w, "SetDesiredCapacity", e);
	if (rc < 0)
		return rc;
	if (gi < 0)
		return err_set(e, SP_ENOTFOUND, "SetDesiredCapacity: group '%s' not found", asg);
	if (desired < w->groups[gi].min_size || desired > w->groups[gi].max_size)
		return err_set(e, SP_EINVAL, "SetDesiredCapacity '%s': ValidationError: desired "
			       "%d outside [%d, %d]", asg, desired, w->groups[gi].min_size,
			       w->groups[gi].max_size);
	w->groups[gi].desired = desired;
	w->mutations++;
	return 0;
}

static int sim_set_protection(void *st, const char *asg, const char *const *ids, size_t n,
			      int protect, struct err *e)
{
	struct sim_world *w = st;
	int gi = group_index(w, asg), rc;
	size_t i;
	struct sim_inst *in;

	rc = cloud_fault(w, "SetInstanceProtection", e);
	if (rc < 0)
		return rc;
	if (gi < 0)
		return err_set(e, SP_ENOTFOUND, "SetInstanceProtection: group '%s' not found", asg);
	if (n > CLOUD_PROTECT_BATCH)
		return err_set(e, SP_EINVAL, "SetInstanceProtection: %zu ids, at most %d", n,
			       CLOUD_PROTECT_BATCH);
	for (i = 0; i < n; i++) {   /* all or nothing, like the API */
		in = inst_by_id(w, ids[i]);
		if (!in || in->group != gi || in->lc == LC_TERMINATED)
			return err_set(e, SP_ENOTFOUND, "SetInstanceProtection: ValidationError: "
				       "instance %s is not part of '%s'", ids[i], asg);
	}
	for (i = 0; i < n; i++)
		inst_by_id(w, ids[i])->protect = !!protect;
	w->mutations++;
	return 0;
}

static int sim_terminate(void *st, const char *id, int decrement, struct err *e)
{
	struct sim_world *w = st;
	struct sim_inst *in;
	struct sim_group *sg;
	int rc;

	rc = cloud_fault(w, "TerminateInstanceInAutoScalingGroup", e);
	if (rc < 0)
		return rc;
	in = inst_by_id(w, id);
	if (!in || in->lc == LC_TERMINATED)
		return err_set(e, SP_ENOTFOUND, "terminate %s: instance not found", id);
	if (in->lc == LC_TERMINATING)
		return 0;
	sg = &w->groups[in->group];
	if (decrement && sg->desired - 1 < sg->min_size)
		return err_set(e, SP_EINVAL, "terminate %s: ValidationError: desired capacity "
			       "would go below min size %d", id, sg->min_size);
	if (decrement)
		sg->desired--;
	inst_terminate(w, in, SIM_TERM_API);
	w->mutations++;
	return 0;
}

static int sim_set_health(void *st, const char *id, int healthy, struct err *e)
{
	struct sim_world *w = st;
	struct sim_inst *in;
	int rc;

	rc = cloud_fault(w, "SetInstanceHealth", e);
	if (rc < 0)
		return rc;
	in = inst_by_id(w, id);
	if (!in || in->lc == LC_TERMINATED)
		return err_set(e, SP_ENOTFOUND, "set health %s: instance not found", id);
	if (!healthy)
		inst_terminate(w, in, SIM_TERM_HEALTH);
	else if (in->lc != LC_TERMINATING)
		in->healthy = 1;
	w->mutations++;
	return 0;
}

static void sim_driver_free(void *st)
{
	(void)st;   /* the world is owned by the caller */
}

static const struct cloud_ops sim_cloud_ops = {
	.name = "sim",
	.describe = sim_describe,
	.set_capacity = sim_set_capacity,
	.set_protection = sim_set_protection,
	.terminate = sim_terminate,
	.set_health = sim_set_health,
	.free = sim_driver_free,
};

struct cloud *sim_cloud(struct sim_world *w)
{
	struct cloud *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->ops = &sim_cloud_ops;
	c->state = w;
	return c;
}

/* ---- agent driver ----------------------------------------------------------------------- */

static int agent_up(const struct sim_world *w, const struct sim_inst *in)
{
	return in->lc == LC_IN_SERVICE && w->now >= in->agent_up_at &&
	       w->now >= in->agent_down_until;
}

/*
 * Reach the agent of t and check the epoch. 0 with *out set; or the code:
 * SP_EIO (nothing answers), SP_ETIMEOUT (a timeout fault; *late is set when
 * the call should still take effect), SP_EFENCED (stale epoch).
 */
static int agent_reach(struct sim_world *w, const struct agent_target *t, int64_t epoch,
		       struct sim_inst **out, int *late, struct err *e)
{
	struct sim_inst *in = inst_by_addr(w, t->address);

	*late = 0;
	if (!in || !agent_up(w, in))
		return err_set(e, SP_EIO, "agent %s:%d: connection refused", t->address, t->port);
	if (chance(w, w->cfg.faults.agent_timeout)) {
		*late = sim_random(w) < 0.5;
		if (!*late)
			return err_set(e, SP_ETIMEOUT, "agent %s:%d: timed out", t->address,
				       t->port);
	}
	if (epoch < in->max_epoch) {
		w->fence_refusals++;
		return err_set(e, SP_EFENCED, "agent %s: fencing epoch %" PRId64 " is older "
			       "than %" PRId64 ", seen already", t->address, epoch, in->max_epoch);
	}
	in->max_epoch = epoch;
	*out = in;
	return 0;
}

/* The answer of a call that took effect, unless a timeout hid it. */
static int agent_answer(const struct agent_target *t, int rc, int late, struct err *e)
{
	if (rc == 0 && late)
		return err_set(e, SP_ETIMEOUT, "agent %s:%d: timed out", t->address, t->port);
	return rc;
}

static struct sim_ct *ct_find(struct sim_inst *in, int64_t ws)
{
	size_t i;

	for (i = 0; i < in->ncts; i++)
		if (in->cts[i].ws == ws)
			return &in->cts[i];
	return NULL;
}

static void fill_container(const struct sim_ct *c, struct obs_container *oc)
{
	container_name_for(c->ws, oc->name, sizeof(oc->name));
	oc->workspace_id = c->ws;
	oc->state = c->state;
	oc->ready = c->state == CS_RUNNING && c->ready;
	oc->port = c->port;
	oc->started_at = c->started_at;
	oc->last_sync_at = c->last_sync_at;
	oc->last_sync = c->sync_done_at ? SYNC_RUNNING : c->last_sync;
	oc->pending = c->pending;
	oc->restore_failed = c->restore_failed;
	oc->restarts = c->restarts;
	str_copy(oc->message, sizeof(oc->message), c->message);
	str_copy(oc->image, sizeof(oc->image), c->req.image);
}

static int observe_one(struct sim_world *w, const struct agent_target *t, int64_t epoch,
		       struct obs_agent *a)
{
	struct err e = ERR_INIT;
	struct sim_inst *in = NULL;
	struct obs_container *oc;
	int late, rc;
	size_t i;

	obs_agent_release(a);
	obs_agent_init(a);
	str_copy(a->instance_id, sizeof(a->instance_id), t->instance_id);
	rc = agent_reach(w, t, epoch, &in, &late, &e);
	if (rc == 0 && late)
		rc = err_set(&e, SP_ETIMEOUT, "agent %s:%d: timed out", t->address, t->port);
	if (rc == 0 && strcmp(in->id, t->instance_id))
		rc = err_set(&e, SP_ECONFLICT, "agent %s is instance %s, not %s", t->address,
			     in->id, t->instance_id);
	if (rc < 0) {
		str_copy(a->error, sizeof(a->error), e.msg);
		return rc;
	}
	a->healthy = 1;
	a->capacity = w->groups[in->group].slots;
	a->max_epoch_seen = in->max_epoch;
	for (i = 0; i < in->ncts; i++) {
		oc = obs_agent_add(a);
		if (!oc) {
			obs_agent_release(a);
			obs_agent_init(a);
			str_copy(a->instance_id, sizeof(a->instance_id), t->instance_id);
			str_copy(a->error, sizeof(a->error), "out of memory");
			return SP_ENOMEM;
		}
		fill_container(&in->cts[i], oc);
	}
	a->observed = 1;
	return 0;
}

static int sim_observe(void *st, const struct agent_target *targets, size_t n, int64_t epoch,
		       struct obs_agent *out, struct err *e)
{
	struct sim_world *w = st;
	size_t i;
	int fenced = 0;

	for (i = 0; i < n; i++)
		if (observe_one(w, &targets[i], epoch, &out[i]) == SP_EFENCED)
			fenced = 1;
	if (fenced)
		return err_set(e, SP_EFENCED, "an agent refused fencing epoch %" PRId64, epoch);
	return 0;
}

/* Containers holding a slot: all but stopped and failed ones (a crashed one keeps it). */
static size_t active_count(const struct sim_inst *in)
{
	size_t i, n = 0;

	for (i = 0; i < in->ncts; i++)
		if (in->cts[i].state != CS_STOPPED && in->cts[i].state != CS_FAILED)
			n++;
	return n;
}

/* Start (or restart) c: restore first when files are not in place. */
static void ct_begin(struct sim_world *w, struct sim_ct *c, const struct container_req *req,
		     int restore)
{
	c->req = *req;
	c->state = CS_CREATED;
	c->ready = 0;
	c->restoring = restore;
	c->running_at = w->now + (restore ? w->cfg.container_start_ms :
				  w->cfg.container_start_ms / 2);
	c->message[0] = '\0';
}

static int ensure_apply(struct sim_world *w, struct sim_inst *in, const struct container_req *req,
			struct err *e)
{
	struct sim_ct *c = ct_find(in, req->workspace_id);
	int slots = w->groups[in->group].slots;

	if (c && c->pending)   /* the agent's 409 busy */
		return err_set(e, SP_EBUSY, "container spinup-%" PRId64 " has a %s in progress",
			       c->ws, container_op_name(c->pending));
	if (c && (c->state == CS_CREATED || c->state == CS_RUNNING))
		return 0;
	if (c && c->state == CS_EXITED) {   /* it holds its slot: restart in place */
		ct_begin(w, c, req, 0);
		w->mutations++;
		return 0;
	}
	if ((int)active_count(in) >= slots)
		return err_set(e, SP_EBUSY, "agent %s runs %zu of %d workspaces", in->ip,
			       active_count(in), slots);
	if (!c) {
		if (in->ncts >= SIM_CONTAINERS_MAX ||
		    grow((void **)&in->cts, &in->cts_alloc, in->ncts, sizeof(*in->cts)) < 0)
			return err_set(e, SP_ENOMEM, "agent %s: too many containers", in->ip);
		c = &in->cts[in->ncts++];
		memset(c, 0, sizeof(*c));
		c->ws = req->workspace_id;
		c->port = w->cfg.workspace_port_base + (int)(in->ncts - 1);
		ct_begin(w, c, req, 1);
	} else {
		ct_begin(w, c, req, c->restore_failed);
	}
	w->mutations++;
	return 0;
}

static int sim_ensure(void *st, const struct agent_target *t, int64_t epoch,
		      const struct container_req *req, struct err *e)
{
	struct sim_world *w = st;
	struct sim_inst *in = NULL;
	int late, rc;

	rc = agent_reach(w, t, epoch, &in, &late, e);
	if (rc == 0)
		rc = ensure_apply(w, in, req, e);
	return agent_answer(t, rc, late, e);
}

/* Accept op behind the sync in progress on c: the strongest one waits (agent/API.md). */
static void ct_accept(struct sim_ct *c, enum container_op op)
{
	if (op > c->pending)
		c->pending = op;
}

/*
 * Sync c now for op (the sync op, or the first half of stop/remove), as an
 * agent asked with {"wait": false}: 0 when the files are in the bucket
 * afterwards; 1 when accepted (a slow sync, or one already running: op
 * waits behind it, pending, and happens when it succeeds, in sim_tick);
 * SP_ECONFLICT after a failed restore, SP_EBUSY while restoring,
 * SP_EUNAVAIL (failed at once).
 */
static int ct_sync(struct sim_world *w, struct sim_ct *c, enum container_op op, struct err *e)
{
	int fail, slow;

	if (c->restore_failed)
		return err_set(e, SP_ECONFLICT, "container spinup-%" PRId64 ": restore failed, "
			       "sync-back is forbidden (it would overwrite the good copy)", c->ws);
	if (c->state == CS_CREATED && c->restoring)
		return err_set(e, SP_EBUSY, "container spinup-%" PRId64 ": restore in progress",
			       c->ws);
	if (c->sync_done_at) {
		ct_accept(c, op);
		return 1;
	}
	fail = chance(w, w->cfg.faults.sync_fail);
	slow = chance(w, w->cfg.faults.sync_slow);
	if (slow) {
		c->sync_done_at = w->now + (w->cfg.faults.sync_slow_ms > 0 ?
					    w->cfg.faults.sync_slow_ms : w->cfg.tick_ms);
		c->sync_fails = fail;
		ct_accept(c, op);
		return 1;
	}
	if (fail) {
		sync_failed(c, w->now);
		return err_set(e, SP_EUNAVAIL, "container spinup-%" PRId64 ": %s", c->ws,
			       c->message);
	}
	sync_complete(w, c);
	return 0;
}

static int sync_apply(struct sim_world *w, struct sim_inst *in, int64_t ws, struct err *e)
{
	struct sim_ct *c = ct_find(in, ws);
	int rc;

	if (!c)
		return err_set(e, SP_ENOTFOUND, "no container for workspace %" PRId64, ws);
	rc = ct_sync(w, c, COP_SYNC, e);
	if (rc >= 0)
		w->mutations++;
	return rc < 0 ? rc : 0;
}

static int sim_sync(void *st, const struct agent_target *t, int64_t epoch, int64_t ws,
		    struct err *e)
{
	struct sim_world *w = st;
	struct sim_inst *in = NULL;
	int late, rc;

	rc = agent_reach(w, t, epoch, &in, &late, e);
	if (rc == 0)
		rc = sync_apply(w, in, ws, e);
	return agent_answer(t, rc, late, e);
}

/* Stop or remove c on in (sync first when asked and files changed). */
static int stop_apply(struct sim_world *w, struct sim_inst *in, int64_t ws, int sync_first,
		      int remove, struct err *e)
{
	struct sim_ct *c = ct_find(in, ws);
	int rc = 0;

	if (!c)
		return remove ? 0 : err_set(e, SP_ENOTFOUND, "no container for workspace %"
					    PRId64, ws);
	if (c->sync_done_at || (sync_first && c->dirty))
		rc = ct_sync(w, c, remove ? COP_REMOVE : COP_STOP, e);
	if (rc < 0)
		return rc;
	w->mutations++;
	if (rc == 1)   /* accepted: it happens after the sync, in sim_tick */
		return 0;
	if (remove) {
		log_stop(w, in, c, 1);
		*c = in->cts[--in->ncts];
	} else {
		ct_stop_now(w, in, c);
	}
	return 0;
}

static int sim_stop(void *st, const struct agent_target *t, int64_t epoch, int64_t ws,
		    int sync_first, struct err *e)
{
	struct sim_world *w = st;
	struct sim_inst *in = NULL;
	int late, rc;

	rc = agent_reach(w, t, epoch, &in, &late, e);
	if (rc == 0)
		rc = stop_apply(w, in, ws, sync_first, 0, e);
	return agent_answer(t, rc, late, e);
}

static int sim_remove(void *st, const struct agent_target *t, int64_t epoch, int64_t ws,
		      int sync_first, struct err *e)
{
	struct sim_world *w = st;
	struct sim_inst *in = NULL;
	int late, rc;

	rc = agent_reach(w, t, epoch, &in, &late, e);
	if (rc == 0)
		rc = stop_apply(w, in, ws, sync_first, 1, e);
	return agent_answer(t, rc, late, e);
}

static const struct agentc_ops sim_agentc_ops = {
	.name = "sim",
	.observe = sim_observe,
	.ensure = sim_ensure,
	.sync = sim_sync,
	.stop = sim_stop,
	.remove = sim_remove,
	.free = sim_driver_free,
};

struct agentc *sim_agentc(struct sim_world *w)
{
	struct agentc *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->ops = &sim_agentc_ops;
	a->state = w;
	return a;
}

/* ---- inspection ------------------------------------------------------------------------- */

const char *sim_term_cause_name(enum sim_term_cause c)
{
	static const char *const names[SIM_TERM_MAX] = { "api", "scale-in", "health", "death" };

	if ((int)c < 0 || c >= SIM_TERM_MAX)
		return "unknown";
	return names[c];
}

size_t sim_instance_count(const struct sim_world *w)
{
	return w->ninsts;
}

static void instance_info(const struct sim_world *w, const struct sim_inst *in,
			  struct sim_instance_info *o)
{
	memset(o, 0, sizeof(*o));
	str_copy(o->id, sizeof(o->id), in->id);
	str_copy(o->group, sizeof(o->group), w->groups[in->group].name);
	str_copy(o->private_ip, sizeof(o->private_ip), in->ip);
	o->lifecycle = in->lc;
	o->healthy = in->healthy;
	o->protected_from_scale_in = in->protect;
	o->agent_up = agent_up(w, in);
	o->max_epoch = in->max_epoch;
	o->ncontainers = in->ncts;
	o->launched_at = in->launched_at;
	o->terminated_at = in->terminated_at;
}

int sim_instance_get(const struct sim_world *w, size_t i, struct sim_instance_info *out)
{
	if (i >= w->ninsts)
		return SP_ENOTFOUND;
	instance_info(w, w->insts[i], out);
	return 0;
}

int sim_instance_find(const struct sim_world *w, const char *id, struct sim_instance_info *out)
{
	size_t i;

	for (i = 0; i < w->ninsts; i++)
		if (!strcmp(w->insts[i]->id, id)) {
			instance_info(w, w->insts[i], out);
			return 0;
		}
	return SP_ENOTFOUND;
}

int sim_group_sizes(const struct sim_world *w, const char *name, int *min_size, int *max_size,
		    int *desired, int *active)
{
	int g = group_index(w, name), n = 0;
	size_t i;

	if (g < 0)
		return SP_ENOTFOUND;
	for (i = 0; i < w->ninsts; i++)
		if (w->insts[i]->group == g && is_active(w->insts[i]))
			n++;
	if (min_size)
		*min_size = w->groups[g].min_size;
	if (max_size)
		*max_size = w->groups[g].max_size;
	if (desired)
		*desired = w->groups[g].desired;
	if (active)
		*active = n;
	return 0;
}

static void container_info(const struct sim_inst *in, const struct sim_ct *c,
			   struct sim_container_info *o)
{
	memset(o, 0, sizeof(*o));
	str_copy(o->instance_id, sizeof(o->instance_id), in->id);
	o->lifecycle = in->lc;
	o->workspace_id = c->ws;
	o->state = c->state;
	o->ready = c->state == CS_RUNNING && c->ready;
	o->restore_failed = c->restore_failed;
	o->dirty = c->dirty;
	o->files = c->files;
}

size_t sim_containers_on(const struct sim_world *w, const char *instance_id,
			 struct sim_container_info *out, size_t max)
{
	size_t i, j;

	for (i = 0; i < w->ninsts; i++) {
		const struct sim_inst *in = w->insts[i];

		if (strcmp(in->id, instance_id))
			continue;
		for (j = 0; j < in->ncts && j < max; j++)
			container_info(in, &in->cts[j], &out[j]);
		return in->ncts;
	}
	return 0;
}

size_t sim_containers_of(const struct sim_world *w, int64_t workspace_id,
			 struct sim_container_info *out, size_t max)
{
	size_t i, j, n = 0;

	for (i = 0; i < w->ninsts; i++) {
		const struct sim_inst *in = w->insts[i];

		for (j = 0; j < in->ncts; j++) {
			const struct sim_ct *c = &in->cts[j];

			if (c->ws != workspace_id)
				continue;
			if (n < max)
				container_info(in, c, &out[n]);
			n++;
		}
	}
	return n;
}

int sim_bucket_get(const struct sim_world *w, int64_t workspace_id, int64_t *version)
{
	size_t i;

	for (i = 0; i < w->nsnaps; i++)
		if (w->snaps[i].ws == workspace_id) {
			if (version)
				*version = w->snaps[i].version;
			return 1;
		}
	return 0;
}

int sim_bucket_set(struct sim_world *w, int64_t workspace_id, int present, int64_t version)
{
	struct sim_snap *s = snap_find(w, workspace_id);

	if (!present) {
		if (s)
			*s = w->snaps[--w->nsnaps];
		return 0;
	}
	if (!s) {
		if (grow((void **)&w->snaps, &w->snaps_alloc, w->nsnaps, sizeof(*w->snaps)) < 0)
			return SP_ENOMEM;
		s = &w->snaps[w->nsnaps++];
		s->ws = workspace_id;
	}
	s->version = version;
	return 0;
}

size_t sim_term_log(const struct sim_world *w, const struct sim_term_record **out)
{
	*out = w->terms;
	return w->nterms;
}

size_t sim_stop_log(const struct sim_world *w, const struct sim_stop_record **out)
{
	*out = w->stops;
	return w->nstops;
}

unsigned long sim_fence_refusals(const struct sim_world *w)
{
	return w->fence_refusals;
}

unsigned long sim_mutations(const struct sim_world *w)
{
	return w->mutations;
}
