/*
 * loop.c - spinupd's reconcile loop (see loop.h): leadership, one pass,
 * the poll() loop.
 */
#include "reconciler/loop.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drivers/agenthttp.h"
#include "drivers/awscloud.h"
#include "drivers/coord.h"
#include "drivers/log.h"
#include "drivers/pgstate.h"
#include "drivers/sim.h"
#include "model/plan.h"
#include "model/strbuf.h"
#include "reconciler/exec.h"
#include "reconciler/metrics.h"
#include "model/banned.h"

#define SIM_GROUPS_KNOWN SIM_GROUPS_MAX

struct loop {
	struct config cfg;
	enum loop_mode mode;
	struct pgstate *pg;
	struct coord *rd;
	struct cloud *cloud;
	struct agentc *agents;
	struct sim_world *sim;
	char sim_groups[SIM_GROUPS_KNOWN][SPEC_ASG_MAX + 1];
	int nsim_groups;
	int leader;
	int64_t epoch;
	int64_t renewed_at;           /* monotonic ms of the last lease attempt (the renewal timer) */
	struct exec_lease lease;      /* lease.renewed_at: when the last success STARTED */
	int redis_down_logged;
	int db_down_logged;
	int stopped_once;
	int64_t next_prune;           /* ms (wall clock) of the next history pruning */
	int progressing;              /* the last pass acted, changed status, or left work on its way */
	int stuck;                    /* the last pass made no progress and waits for a person */
	int blind;                    /* the last pass could not describe some pool's group */
	char blind_why[ERR_MSG_MAX];  /* the first such pool and why, for --once */
	char stuck_why[ERR_MSG_MAX];  /* what waits, for --once */
	int64_t retry_at;             /* ms (wall clock): earliest next_attempt_at ahead, 0 none */
	uint64_t rng;
	struct pgstate_snapshot snap;
	struct loop_metrics m;
	struct metrics_srv *http;
};

/* ------------------------------------------------------------ clocks */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next_rand(struct loop *l)
{
	/* xorshift64*: jitter and plan seeds, not security */
	l->rng ^= l->rng >> 12;
	l->rng ^= l->rng << 25;
	l->rng ^= l->rng >> 27;
	return l->rng * 2685821657736338717ULL;
}

/* ------------------------------------------------------------ lease guard */

static int64_t lease_now(void *ctx)
{
	(void)ctx;
	return mono_ms();
}

/* The executor's renewal before a mutation (exec.h, struct exec_lease). */
static int lease_renew(void *ctx, int *held, struct err *e)
{
	struct loop *l = ctx;

	return coord_lease_renew(l->rd, l->cfg.lease_key, l->cfg.lease_ttl_ms, held, e);
}

/* The guard follows the configuration (a reload may change the TTL). */
static struct exec_lease *lease_guard(struct loop *l)
{
	l->lease.ctx = l;
	l->lease.now = lease_now;
	l->lease.renew = lease_renew;
	l->lease.ttl_ms = l->cfg.lease_ttl_ms;
	l->lease.margin_ms = l->cfg.lease_ttl_ms / LOOP_LEASE_MARGIN_DIV;
	return &l->lease;
}

/* ------------------------------------------------------------ setup */

static int make_sim(struct loop *l, struct err *e)
{
	struct sim_config sc;

	sim_config_defaults(&sc);
	sc.start_ms = now_ms();
	sc.tick_ms = l->cfg.sim_tick_ms;
	sc.launch_ms = l->cfg.sim_launch_ms;
	sc.launch_jitter_ms = l->cfg.sim_launch_ms / 4 + 1;
	sc.terminate_ms = l->cfg.sim_terminate_ms;
	sc.agent_boot_ms = l->cfg.sim_agent_boot_ms;
	sc.container_start_ms = l->cfg.sim_container_start_ms;
	sc.container_ready_ms = l->cfg.sim_container_ready_ms;
	l->sim = sim_world_new(l->cfg.sim_seed, &sc);
	if (l->sim) {
		l->cloud = sim_cloud(l->sim);
		l->agents = sim_agentc(l->sim);
	}
	if (!l->sim || !l->cloud || !l->agents)
		return err_set(e, SP_ENOMEM, "out of memory building the sim world");
	return 0;
}

static int make_drivers(struct loop *l, struct err *e)
{
	struct awscloud_config ac;
	struct agenthttp_opts ao;

	if (!strcmp(l->cfg.cloud, "sim"))
		return make_sim(l, e);
	memset(&ac, 0, sizeof(ac));
	ac.region = l->cfg.aws_region[0] ? l->cfg.aws_region : NULL;
	ac.endpoint = l->cfg.aws_endpoint[0] ? l->cfg.aws_endpoint : NULL;
	if (awscloud_new(&ac, &l->cloud, e))
		return e->code;
	memset(&ao, 0, sizeof(ao));
	ao.secret_file = l->cfg.agent_secret_file;
	ao.call_timeout_ms = (long)l->cfg.lease_ttl_ms * LOOP_CALL_TIMEOUT_PCT / 100;   /* loop.h */
	if (ao.call_timeout_ms > AGENTHTTP_CALL_TIMEOUT_MS)
		ao.call_timeout_ms = AGENTHTTP_CALL_TIMEOUT_MS;
	l->agents = agenthttp_new(&ao, e);
	return l->agents ? 0 : e->code;
}

int loop_new(const struct config *cfg, enum loop_mode mode, struct loop **out, struct err *e)
{
	struct loop *l = calloc(1, sizeof(*l));
	int rc = l ? 0 : err_set(e, SP_ENOMEM, "out of memory");

	if (rc)
		return rc;
	l->cfg = *cfg;
	l->mode = mode;
	l->rng = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
	pgstate_snapshot_init(&l->snap);
	rc = pgstate_open(cfg->database_url, cfg->lease_name, cfg->holder, &l->pg, e);
	if (!rc && mode != LOOP_DRY_RUN)
		rc = pgstate_listen(l->pg, e);
	if (!rc)
		rc = coord_new(cfg->redis_url, cfg->holder, cfg->redis_timeout_ms, &l->rd, e);
	if (!rc)
		rc = make_drivers(l, e);
	if (!rc && cfg->metrics_addr[0] && mode == LOOP_RUN)
		rc = metrics_srv_new(cfg->metrics_addr, &l->m, &l->http, e);
	if (rc) {
		loop_free(l);
		return rc;
	}
	*out = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	metrics_srv_free(l->http);
	cloud_free(l->cloud);
	agentc_free(l->agents);
	sim_world_free(l->sim);
	coord_free(l->rd);
	pgstate_free(l->pg);
	pgstate_snapshot_release(&l->snap);
	free(l);
}

const struct loop_metrics *loop_metrics_get(const struct loop *l)
{
	return &l->m;
}

/* ------------------------------------------------------------ leadership */

static void step_down(struct loop *l, const char *why)
{
	if (l->leader) {
		l->m.lease_lost++;
		log_warnx("leadership lost epoch=%" PRId64 " reason=\"%s\"", l->epoch, why);
	}
	l->leader = 0;
	l->m.leader = 0;
	l->m.epoch = 0;
	l->epoch = 0;
	pgstate_drop_epoch(l->pg);
}

static int acquire(struct loop *l, struct err *e)
{
	int64_t t0 = mono_ms();
	int held = 0, rc = coord_lease_acquire(l->rd, l->cfg.lease_key, l->cfg.lease_ttl_ms, &held, e);

	if (rc)
		return rc;
	if (!held)
		return err_set(e, SP_EBUSY, "lease %s is held by another operator", l->cfg.lease_key);
	rc = pgstate_acquire_epoch(l->pg, &l->epoch, e);
	if (rc) {
		coord_lease_release(l->rd, l->cfg.lease_key, NULL, NULL);
		return rc;
	}
	l->lease.renewed_at = t0;
	l->leader = 1;
	l->m.leader = 1;
	l->m.epoch = l->epoch;
	l->m.lease_acquired++;
	log_info("leadership acquired epoch=%" PRId64 " holder=%s", l->epoch, l->cfg.holder);
	return 0;
}

/* Hold the lease: acquire it, or renew it. 0 when we lead after the call. */
static int lead(struct loop *l, struct err *e)
{
	int64_t t0 = mono_ms();
	int held = 0, rc;

	if (!l->leader) {
		rc = acquire(l, e);
	} else {
		rc = coord_lease_renew(l->rd, l->cfg.lease_key, l->cfg.lease_ttl_ms, &held, e);
		if (!rc && !held)
			rc = err_set(e, SP_EBUSY, "lease %s expired or was taken", l->cfg.lease_key);
		if (rc)
			step_down(l, e->msg);
		else
			l->lease.renewed_at = t0;
	}
	if (rc == SP_EBUSY || !rc) {
		if (l->redis_down_logged)
			log_info("leadership possible again (lease and database reachable)");
		l->redis_down_logged = 0;
	} else if (!l->redis_down_logged && rc != SP_EBUSY) {
		log_warnx("cannot lead, not acting: %s", e->msg);
		l->redis_down_logged = 1;
	}
	if (!rc)
		l->renewed_at = mono_ms();
	return rc;
}

/* ------------------------------------------------------------ observe */

struct observation {
	struct obs_group *groups;          /* parallel to pools */
	int *described;
	struct obs_agent **agents;         /* per pool */
	size_t *nagents;
	struct plan_pool_obs *obs;
	size_t n;
	size_t blind;                      /* pools whose group could not be described */
	char blind_why[ERR_MSG_MAX];       /* the first of them: pool and cause */
};

static void observation_release(struct observation *o)
{
	size_t i, k;

	for (i = 0; i < o->n; i++) {
		obs_group_release(&o->groups[i]);
		for (k = 0; o->agents && k < o->nagents[i]; k++)
			obs_agent_release(&o->agents[i][k]);
		if (o->agents)
			free(o->agents[i]);
	}
	free(o->groups);
	free(o->described);
	free(o->agents);
	free(o->nagents);
	free(o->obs);
	memset(o, 0, sizeof(*o));
}

/* In the sim, groups are created from the pools we load; its clock follows ours. */
static void sim_follow(struct loop *l, const struct pgstate_snapshot *s, int64_t now)
{
	size_t i;
	int k;

	if (!l->sim)
		return;
	for (i = 0; i < s->npools; i++) {
		const struct pool_spec *p = &s->pools[i];
		struct sim_group_config g = { p->asg_name, p->min_instances, p->max_instances,
					      p->min_instances, p->slots_per_instance, 0 };
		struct err e = ERR_INIT;
		for (k = 0; k < l->nsim_groups; k++)
			if (!strcmp(l->sim_groups[k], p->asg_name))
				break;
		if (k < l->nsim_groups || l->nsim_groups == SIM_GROUPS_KNOWN)
			continue;
		if (sim_add_group(l->sim, &g, &e) && e.code != SP_ECONFLICT)
			log_warnx("sim: could not create group '%s': %s", p->asg_name, e.msg);
		str_copy(l->sim_groups[l->nsim_groups++], sizeof(l->sim_groups[0]), p->asg_name);
	}
	if (now > sim_now(l->sim))
		sim_tick(l->sim, now - sim_now(l->sim));
}

/* epoch: what agents see with our requests (they refuse one lower than any seen). */
static int observe_agents(struct loop *l, struct observation *o, size_t i,
			  const struct pool_spec *p, int64_t epoch)
{
	const struct obs_group *g = &o->groups[i];
	struct agent_target *t;
	struct err e = ERR_INIT;
	size_t k, n = 0;
	int rc;

	t = calloc(g->ninstances + 1, sizeof(*t));
	o->agents[i] = calloc(g->ninstances + 1, sizeof(**o->agents));
	if (!t || !o->agents[i]) {
		free(t);
		return SP_ENOMEM;
	}
	for (k = 0; k < g->ninstances; k++) {
		const struct obs_instance *x = &g->instances[k];
		if (!x->private_ip[0] || x->lifecycle != LC_IN_SERVICE)
			continue;
		str_copy(t[n].instance_id, sizeof(t[n].instance_id), x->id);
		str_copy(t[n].address, sizeof(t[n].address), x->private_ip);
		t[n].port = p->agent_port;
		obs_agent_init(&o->agents[i][n]);
		n++;
	}
	o->nagents[i] = n;
	rc = n ? agentc_observe(l->agents, t, n, epoch, o->agents[i], &e) : 0;
	if (rc)
		log_debug("observe agents of pool %s: %s", p->name, e.msg);
	free(t);
	return rc == SP_EFENCED ? rc : 0;
}

static int observe(struct loop *l, const struct pgstate_snapshot *s, int64_t epoch,
		   struct observation *o)
{
	size_t i;
	int rc = 0;

	memset(o, 0, sizeof(*o));
	o->n = s->npools;
	o->groups = calloc(s->npools + 1, sizeof(*o->groups));
	o->described = calloc(s->npools + 1, sizeof(*o->described));
	o->agents = calloc(s->npools + 1, sizeof(*o->agents));
	o->nagents = calloc(s->npools + 1, sizeof(*o->nagents));
	o->obs = calloc(s->npools + 1, sizeof(*o->obs));
	if (!o->groups || !o->described || !o->agents || !o->nagents || !o->obs) {
		o->n = 0;
		return SP_ENOMEM;
	}
	for (i = 0; i < s->npools; i++)
		obs_group_init(&o->groups[i]);
	for (i = 0; !rc && i < s->npools; i++) {
		struct err e = ERR_INIT;
		int drc = cloud_describe(l->cloud, s->pools[i].asg_name, &o->groups[i], &e);
		o->described[i] = !drc || o->groups[i].ninstances > 0;
		if (drc && !o->described[i]) {
			/* handled here, logged once a pass: the group is unknown, not empty */
			log_warnx("could not observe pool %s (group %s), its instances are unknown"
				  " this pass: %s", s->pools[i].name, s->pools[i].asg_name, e.msg);
			if (!o->blind++)
				snprintf(o->blind_why, sizeof(o->blind_why),
					 "could not observe pool '%s': %s", s->pools[i].name, e.msg);
		} else if (drc) {
			log_debug("describe %s: %s", s->pools[i].asg_name, e.msg);
		}
		if (o->described[i])
			rc = observe_agents(l, o, i, &s->pools[i], epoch);
		o->obs[i].pool_id = s->pools[i].id;
		o->obs[i].group = o->described[i] ? &o->groups[i] : NULL;
		o->obs[i].agents = o->agents[i];
		o->obs[i].nagents = o->nagents[i];
	}
	return rc;
}

/* ------------------------------------------------------------ settle */

static const struct obs_instance *obs_find(const struct observation *o, const char *id,
					   int *complete)
{
	size_t i;

	*complete = o->n > 0;
	for (i = 0; i < o->n; i++) {
		const struct obs_instance *x = o->obs[i].group ? obs_group_find(o->obs[i].group, id) : NULL;
		if (!o->obs[i].group || !o->obs[i].group->complete)
			*complete = 0;
		if (x)
			return x;
	}
	return NULL;
}

static const struct obs_agent *agent_find(const struct observation *o, const char *id)
{
	size_t i, k;

	for (i = 0; i < o->n; i++)
		for (k = 0; k < o->nagents[i]; k++)
			if (!strcmp(o->agents[i][k].instance_id, id))
				return &o->agents[i][k];
	return NULL;
}

/* The container of a workspace an agent reports, or NULL. */
static const struct obs_container *container_of(const struct obs_agent *a, int64_t ws)
{
	size_t i;

	for (i = 0; a && i < a->ncontainers; i++)
		if (a->containers[i].workspace_id == ws)
			return &a->containers[i];
	return NULL;
}

static int ws_present(const struct pgstate_snapshot *s, int64_t id)
{
	size_t i;

	for (i = 0; i < s->nworkspaces; i++)
		if (s->workspaces[i].id == id)
			return 1;
	return 0;
}

static const struct obs_group *group_named(const struct observation *o,
					   const struct pgstate_snapshot *s, const char *asg)
{
	size_t i;

	for (i = 0; i < o->n && i < s->npools; i++)
		if (!strcmp(s->pools[i].asg_name, asg))
			return o->obs[i].group;
	return NULL;
}

/* Did a pending action of a crashed pass take effect? Decided from this pass's observation. */
static int settle_one(const struct pgstate_pending *p, const struct observation *o,
		      const struct pgstate_snapshot *s, int64_t epoch, char *note, size_t nsz)
{
	const struct obs_group *g;
	const struct obs_instance *x;
	const struct obs_agent *a = agent_find(o, p->instance_id);
	const struct obs_container *c = container_of(a, p->workspace_id);
	int complete = 0, done = 0;

	x = obs_find(o, p->instance_id, &complete);
	switch (p->type) {
	case ACT_SET_CAPACITY:
		g = group_named(o, s, p->asg_name);
		done = g && g->desired_capacity == p->capacity;
		break;
	case ACT_PROTECT:
		done = x && !x->protected_from_scale_in == !p->flag;
		break;
	case ACT_TERMINATE:
		done = (x && (x->lifecycle == LC_TERMINATING || x->lifecycle == LC_TERMINATED)) ||
		       (!x && complete);
		break;
	case ACT_SET_UNHEALTHY:
		done = (x && !x->healthy) || (!x && complete);
		break;
	case ACT_ENSURE_CONTAINER:
		done = c && (c->state == CS_RUNNING || c->state == CS_CREATED);
		break;
	case ACT_STOP_CONTAINER:   /* stopped, or accepted and still syncing */
		done = a && a->observed && (!c || c->state == CS_STOPPED || c->pending >= COP_STOP);
		break;
	case ACT_REMOVE_CONTAINER:
		done = a && a->observed && (!c || c->pending == COP_REMOVE);
		break;
	case ACT_DELETE_ROW:
		done = !ws_present(s, p->workspace_id);
		break;
	default:
		done = 0;
		break;
	}
	snprintf(note, nsz, "settled by epoch %" PRId64 " (left pending by epoch %" PRId64 "): %s",
		 epoch, p->epoch, done ? "its effect is observed" :
		 "its effect is not observed; the planner decides again");
	return done;
}

static int settle(struct loop *l, const struct observation *o, struct err *e)
{
	const struct pgstate_snapshot *s = &l->snap;
	struct pgstate_settlement *v;
	size_t i;
	int rc;

	if (!s->npending)
		return 0;
	v = calloc(s->npending, sizeof(*v));
	if (!v)
		return err_set(e, SP_ENOMEM, "out of memory");
	for (i = 0; i < s->npending; i++) {
		v[i].id = s->pending[i].id;
		v[i].done = settle_one(&s->pending[i], o, s, l->epoch, v[i].note, sizeof(v[i].note));
	}
	rc = pgstate_settle(l->pg, v, s->npending, e);
	if (!rc)
		log_info("journal settled entries=%zu from_epoch=%" PRId64, s->npending,
			 s->pending[0].epoch);
	free(v);
	return rc;
}

/* ------------------------------------------------------------ journal adapter */

static void debug_stop(struct loop *l, const char *where)
{
	if (l->stopped_once || strcmp(l->cfg.debug_stop_at, where))
		return;
	l->stopped_once = 1;
	log_warnx("debug_stop_at=%s: stopping myself (SIGSTOP)", where);
	raise(SIGSTOP);
	log_warnx("debug_stop_at=%s: resumed", where);
}

static int j_pending(void *ctx, const struct action *a, struct err *e)
{
	struct loop *l = ctx;
	int rc = 0;

	if (!pgstate_journal_has(l->pg, a->key))
		rc = pgstate_journal_one(l->pg, a, e);
	if (!rc)
		debug_stop(l, "pending");
	return rc;
}

static void j_done(void *ctx, const struct action *a, int rc, const struct err *e)
{
	struct loop *l = ctx;

	pgstate_journal_result(l->pg, a, rc, e ? e->msg : "");
}

static int j_delete_row(void *ctx, const struct action *a, struct err *e)
{
	struct loop *l = ctx;

	if (pgstate_finalize_row(l->pg, a->workspace_id))
		return err_set(e, SP_ENOMEM, "out of memory");
	pgstate_journal_result(l->pg, a, 0, "");
	return 0;
}

/* ------------------------------------------------------------ the pass */

/*
 * How the world stands after a pass (world_after): workspaces still on
 * their way, workspaces blocked on someone (NeedsUser, NeedsOperator), and
 * pools safety-stopped. What an operator holds (pause, observe-only) is
 * settled by choice.
 */
struct world {
	size_t moving, blocked, stopped_pools;
	char first[SPEC_NAME_MAX + 1];    /* the first blocked workspace or stopped pool */
};

struct pass {
	int64_t started_at, now, t0;
	unsigned long trips0;     /* database round trips before the pass */
	struct observation obs;
	struct plan_output plan;
	struct exec_report rep;
	unsigned char *has_status;
	struct world world;
	const char *outcome;
	int rc;
	struct err e;
};

static int build_plan(struct loop *l, struct pass *p)
{
	const struct pgstate_snapshot *s = &l->snap;
	struct plan_input in;

	memset(&in, 0, sizeof(in));
	in.now = p->now;
	in.seed = next_rand(l);
	in.cfg = &l->cfg.plan;
	in.global_observe_only = s->global_observe_only;
	in.global_paused_until = s->global_paused_until;
	in.pools = s->pools;
	in.npools = s->npools;
	in.pool_records = s->pool_records;
	in.npool_records = s->npool_records;
	in.workspaces = s->workspaces;
	in.nworkspaces = s->nworkspaces;
	in.status = s->status;
	in.has_status = s->has_status;
	in.obs = p->obs.obs;
	in.instances = s->instances;
	in.ninstances = s->ninstances;
	return plan_compute(&in, &p->plan, &p->e);
}

static void count_actions(struct loop *l, const struct pass *p)
{
	size_t i;

	for (i = 0; i < p->rep.n && i < p->plan.nactions; i++) {
		const struct exec_result *r = &p->rep.results[i];
		if (r->outcome == EXEC_OK)
			l->m.actions[p->plan.actions[i].type]++;
		else if (r->outcome == EXEC_FAILED)
			l->m.actions[ACT_MAX]++;
		if (r->outcome == EXEC_SKIPPED && r->rc == SP_ELIMIT)
			pgstate_journal_discard(l->pg, &p->plan.actions[i]);
		else if (r->outcome == EXEC_SKIPPED)
			pgstate_journal_result(l->pg, &p->plan.actions[i], r->rc, r->msg);
	}
}

static int act(struct loop *l, struct pass *p)
{
	struct exec_config ec = { l->epoch, l->cfg.max_mutations, lease_guard(l) };
	struct exec_journal j = { l, j_pending, j_done, j_delete_row };
	int rc = pgstate_journal(l->pg, p->plan.actions, p->plan.nactions, &p->e);

	if (rc)
		return rc;
	rc = exec_run(&ec, l->cloud, l->agents, &j, p->plan.actions, p->plan.nactions, &p->rep,
		      &p->e);
	count_actions(l, p);
	if (!rc && p->rep.fenced)
		rc = err_set(&p->e, SP_EFENCED, "an agent or the journal refused our epoch %" PRId64,
			     l->epoch);
	return rc;
}

static int record(struct loop *l, struct pass *p)
{
	struct pgstate_pass ps;
	struct pgstate_record_stats st;
	int rc;

	debug_stop(l, "record");
	memset(&ps, 0, sizeof(ps));
	ps.started_at = p->started_at;
	ps.finished_at = now_ms();
	ps.now = p->now;
	ps.plan = &p->plan;
	ps.obs = p->obs.obs;
	ps.nactions = (int)p->plan.nactions;
	ps.outcome = p->outcome;
	ps.error = p->rc ? p->e.msg : "";
	if (l->cfg.history_days > 0 && p->now >= l->next_prune)
		ps.prune_before = p->now - (int64_t)l->cfg.history_days * 86400000;
	rc = pgstate_record(l->pg, &l->snap, &ps, &st, &p->e);
	if (!rc && ps.prune_before) {
		l->next_prune = p->now + 3600000;
		if (st.pruned)
			log_info("history pruned rows=%d older_than_days=%d", st.pruned,
				 l->cfg.history_days);
	}
	return rc;
}

/* ------------------------------------------------------------ mirror */

/* updated: when this status was written (a rebuild uses when its phase began). */
static void mirror_entry(struct coord_ws *w, const struct workspace_status *st, int changed,
			 int64_t updated)
{
	w->workspace_id = st->workspace_id;
	w->phase = ws_phase_name(st->phase);
	w->instance = st->instance_id;
	w->ip = st->address;
	w->url = st->url;
	w->updated = updated;
	w->phase_changed = changed;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_change(const void *a, const void *b)
{
	int64_t x = (*(const struct status_change *const *)a)->status.workspace_id;
	int64_t y = (*(const struct status_change *const *)b)->status.workspace_id;

	return x < y ? -1 : x > y;
}

/* The plan's new status for id via a sorted view of the changes; NULL if unchanged. */
static const struct workspace_status *new_status(const struct status_change **v, size_t n,
						 int64_t id)
{
	struct status_change key, *kp = &key;
	const struct status_change **r;

	key.status.workspace_id = id;
	r = bsearch(&kp, v, n, sizeof(*v), cmp_change);
	return r ? &(*r)->status : NULL;
}

/* Ids whose row this pass finalized, sorted. */
static size_t deleted_ids(const struct pass *p, int64_t *out)
{
	size_t i, n = 0;

	for (i = 0; i < p->plan.nactions && i < p->rep.n; i++)
		if (p->plan.actions[i].type == ACT_DELETE_ROW && p->rep.results[i].outcome == EXEC_OK)
			out[n++] = p->plan.actions[i].workspace_id;
	qsort(out, n, sizeof(*out), cmp_id);
	return n;
}

static void mirror(struct loop *l, const struct pass *p)
{
	const struct pgstate_snapshot *s = &l->snap;
	struct coord_ws *v = calloc(s->nworkspaces + 1, sizeof(*v));
	int64_t *gone = calloc(p->plan.nactions + 1, sizeof(*gone));
	const struct status_change **ch = calloc(p->plan.nchanges + 1, sizeof(*ch));
	struct err e = ERR_INIT;
	size_t i, n = 0, ng = 0;
	int full = coord_needs_rebuild(l->rd), rc;

	if (v && gone && ch) {
		for (i = 0; i < p->plan.nchanges; i++)
			ch[i] = &p->plan.changes[i];
		qsort(ch, p->plan.nchanges, sizeof(*ch), cmp_change);
		ng = deleted_ids(p, gone);
	}
	for (i = 0; v && gone && ch && i < s->nworkspaces; i++) {
		int64_t id = s->workspaces[i].id;
		const struct workspace_status *old = s->has_status[i] ? &s->status[i] : NULL;
		const struct workspace_status *nw = new_status(ch, p->plan.nchanges, id);
		if (bsearch(&id, gone, ng, sizeof(*gone), cmp_id))
			continue;
		if (nw)
			mirror_entry(&v[n++], nw, !old || old->phase != nw->phase, p->now);
		else if (full && old)
			mirror_entry(&v[n++], old, 0, old->phase_since);
	}
	rc = (!v || !gone || !ch) ? err_set(&e, SP_ENOMEM, "out of memory") :
	     full ? coord_mirror_rebuild(l->rd, v, n, &e) : coord_mirror_put(l->rd, v, n, &e);
	if (!rc)
		rc = coord_mirror_del(l->rd, gone, ng, &e);
	if (!rc && full)
		log_info("redis mirror rebuilt workspaces=%zu", n);
	if (rc)
		log_warnx("redis mirror not updated (rebuilt when redis is back): %s", e.msg);
	free(v);
	free(gone);
	free(ch);
}

/* ------------------------------------------------------------ pass body */

static void pass_release(struct pass *p)
{
	observation_release(&p->obs);
	plan_output_release(&p->plan);
	exec_report_release(&p->rep);
}

static void print_dry_run(const struct pass *p)
{
	struct strbuf sb = STRBUF_INIT;

	if (plan_output_format(&p->plan, &sb) == 0)
		fputs(sb.buf, stdout);
	fflush(stdout);
	strbuf_release(&sb);
}

static void pass_metrics(struct loop *l, struct pass *p)
{
	static const double bounds[7] = { 10, 50, 100, 250, 500, 1000, 5000 };
	double ms = (double)(mono_ms() - p->t0);
	int b;

	l->m.passes++;
	if (p->rc)
		l->m.passes_failed++;
	if (p->rc == SP_EFENCED)
		l->m.fenced++;
	l->m.last_pass_ms = ms;
	l->m.pass_ms_sum += ms;
	str_copy(l->m.last_outcome, sizeof(l->m.last_outcome), p->outcome ? p->outcome : "");
	for (b = 0; b < 7 && ms > bounds[b]; b++)
		;
	l->m.pass_ms_buckets[b]++;
	l->m.last_pass_at = now_ms();
	l->m.db_trips = pgstate_round_trips(l->pg);
}

/* Sim only: count containers per workspace in the world (invariant 1, for tests). */
static void sim_truth(struct loop *l)
{
	struct sim_container_info ci[4];
	unsigned long total = 0, dup = 0;
	size_t i, k;

	if (!l->sim)
		return;
	for (i = 0; i < l->snap.nworkspaces; i++) {
		k = sim_containers_of(l->sim, l->snap.workspaces[i].id, ci, 4);
		total += k;
		dup += k > 1;
	}
	l->m.sim = 1;
	l->m.sim_containers = total;
	l->m.sim_duplicates = dup;
}

static void pass_log(struct loop *l, struct pass *p)
{
	if (p->rc && p->rc != SP_EBUSY)
		log_warnx("pass outcome=%s epoch=%" PRId64 " error=SP_%s ms=%.0f msg=\"%s\"",
			  p->outcome, l->epoch, sp_code_name(p->rc), l->m.last_pass_ms, p->e.msg);
	else
		log_info("pass outcome=%s epoch=%" PRId64 " pools=%zu workspaces=%zu actions=%zu"
			 " ok=%d failed=%d skipped=%d changes=%zu events=%zu drift=%zu db_trips=%lu"
			 " ms=%.0f", p->outcome, l->epoch, l->snap.npools, l->snap.nworkspaces,
			 p->plan.nactions, p->rep.ok, p->rep.failed, p->rep.skipped, p->plan.nchanges,
			 p->plan.nevents, p->plan.ndrift, pgstate_round_trips(l->pg) - p->trips0,
			 l->m.last_pass_ms);
}

/* The earliest backoff deadline ahead of now among the statuses after this pass. */
static int64_t earliest_retry(const struct loop *l, const struct pass *p)
{
	int64_t best = 0, t;
	size_t i;

	for (i = 0; i < l->snap.nworkspaces; i++) {
		t = l->snap.has_status[i] ? l->snap.status[i].next_attempt_at : 0;
		if (t > p->now && (!best || t < best))
			best = t;
	}
	for (i = 0; i < p->plan.nchanges; i++) {
		t = p->plan.changes[i].status.next_attempt_at;
		if (t > p->now && (!best || t < best))
			best = t;
	}
	return best;
}

/* Held by an operator control (pause, observe-only): settled by choice. */
static int pool_held(const struct pool_spec *p, int64_t now)
{
	return p->observe_only || p->paused_until > now;
}

/* The pool's safety stop after the pass: the plan's record, else the loaded one. */
static int pool_stopped(const struct loop *l, const struct pass *p, size_t k)
{
	const struct pgstate_snapshot *s = &l->snap;
	size_t i;

	if (k < p->plan.npool_records)
		return p->plan.pool_records[k].safety_stopped;
	for (i = 0; i < s->npool_records; i++)
		if (s->pool_records[i].pool_id == s->pools[k].id)
			return s->pool_records[i].safety_stopped;
	return 0;
}

/*
 * One workspace after the pass: 0 settled, 1 on its way, 2 blocked. A
 * FAILED one that spinupd retries itself (Retryable) is settled until its
 * backoff time (retry_at): no busy period for it.
 */
static int ws_state(const struct workspace_spec *w, const struct workspace_status *st)
{
	enum ws_phase want = w->state == WS_STATE_RUNNING ? PHASE_READY : PHASE_STOPPED;

	if (!st)
		return 1;
	if (!w->deletion_requested_at && st->phase == want)
		return 0;
	if (st->error_class == SP_CLASS_NEEDS_USER || st->error_class == SP_CLASS_NEEDS_OPERATOR)
		return 2;
	return st->phase == PHASE_FAILED && !w->deletion_requested_at ? 0 : 1;
}

static void world_blocked(struct world *wd, size_t *count, const char *name)
{
	if (!wd->blocked && !wd->stopped_pools)
		str_copy(wd->first, sizeof(wd->first), name);
	(*count)++;
}

/*
 * Classify the world after the pass, from each workspace's new status (the
 * plan's change, else the loaded one), and count the workspaces by phase
 * for the metrics. Paused and observe-only parts are settled; a
 * safety-stopped pool and its workspaces are blocked. A pass that issues
 * nothing while the world is on its way (an instance booting, say) is
 * "waiting", not "converged", and the next one comes after the busy
 * period: no NOTIFY will announce that the instance came up.
 */
static void world_after(struct loop *l, const struct pass *p, struct world *wd)
{
	const struct pgstate_snapshot *s = &l->snap;
	const struct status_change **ch = calloc(p->plan.nchanges + 1, sizeof(*ch));
	int all_held = s->global_observe_only || s->global_paused_until > p->now;
	size_t i, k;

	memset(wd, 0, sizeof(*wd));
	if (!ch) {
		wd->moving = 1;      /* unknown: never call it stuck; the gauges keep their values */
		return;
	}
	for (i = 0; i < p->plan.nchanges; i++)
		ch[i] = &p->plan.changes[i];
	qsort(ch, p->plan.nchanges, sizeof(*ch), cmp_change);
	memset(l->m.phases, 0, sizeof(l->m.phases));
	for (k = 0; !all_held && k < s->npools; k++)
		if (!pool_held(&s->pools[k], p->now) && pool_stopped(l, p, k))
			world_blocked(wd, &wd->stopped_pools, s->pools[k].name);
	for (i = 0; i < s->nworkspaces; i++) {
		const struct workspace_spec *w = &s->workspaces[i];
		const struct workspace_status *st = new_status(ch, p->plan.nchanges, w->id);
		int held = w->paused_until > p->now, stopped = 0, how;

		if (!st && s->has_status[i])
			st = &s->status[i];
		if (st && (int)st->phase >= 0 && st->phase < PHASE_MAX)
			l->m.phases[st->phase]++;
		else if (!st)
			l->m.phases[PHASE_PENDING]++;
		if (all_held)
			continue;
		for (k = 0; k < s->npools; k++)
			if (!strcmp(s->pools[k].name, w->pool)) {
				held = held || pool_held(&s->pools[k], p->now);
				stopped = pool_stopped(l, p, k);
			}
		if (held || stopped)
			continue;    /* a stopped pool is counted above */
		how = ws_state(w, st);
		if (how == 1)
			wd->moving++;
		else if (how == 2)
			world_blocked(wd, &wd->blocked, w->name);
	}
	l->m.workspaces = s->nworkspaces;
	l->m.drift_findings = p->plan.ndrift;
	l->m.actions_planned = p->plan.nactions;
	free(ch);
}

/* --once: no progress this pass, and something waits for a person. */
static int world_stuck(const struct loop *l, const struct pass *p)
{
	int progress = l->mode == LOOP_DRY_RUN ? p->plan.nactions > 0 :
		       p->rep.ok + p->rep.handed_off > 0;

	return !progress && !p->world.moving && (p->world.blocked || p->world.stopped_pools);
}

static void note_stuck(struct loop *l, const struct pass *p)
{
	l->blind = !p->rc && p->obs.blind;
	str_copy(l->blind_why, sizeof(l->blind_why), l->blind ? p->obs.blind_why : "");
	l->stuck = !p->rc && world_stuck(l, p);
	if (!l->stuck)
		l->stuck_why[0] = '\0';
	else
		snprintf(l->stuck_why, sizeof(l->stuck_why), "no progress: %zu workspace(s) wait for"
			 " the user or an operator, %zu pool(s) safety-stopped (first: '%s';"
			 " spinctl why NAME)", p->world.blocked, p->world.stopped_pools,
			 p->world.first);
}

/*
 * The epoch a pass observes with: ours when leading; in a dry run, which
 * never leads, the current one as loaded (operator_leases, read and not
 * bumped): agents accept an epoch equal to the highest they have seen, and
 * refuse 0 once any leader reached them.
 */
static int64_t observe_epoch(const struct loop *l)
{
	return l->mode == LOOP_DRY_RUN ? l->snap.epoch : l->epoch;
}

/* Steps after load; rc and outcome land in p. */
static void pass_body(struct loop *l, struct pass *p)
{
	int dry = l->mode == LOOP_DRY_RUN;
	int64_t ep = observe_epoch(l);

	if (dry)
		log_info("dry-run observes with the current fencing epoch=%" PRId64
			 " (read, not bumped)", ep);
	sim_follow(l, &l->snap, p->now);
	p->rc = observe(l, &l->snap, ep, &p->obs);
	if (p->rc == SP_ENOMEM)
		err_set(&p->e, SP_ENOMEM, "out of memory observing");
	else if (p->rc)
		err_set(&p->e, p->rc, "an agent refused our epoch %" PRId64 " as stale", ep);
	if (!p->rc && !dry)
		p->rc = settle(l, &p->obs, &p->e);
	if (!p->rc)
		p->rc = build_plan(l, p);
	if (!p->rc && dry) {
		world_after(l, p, &p->world);
		print_dry_run(p);
		p->outcome = "dry-run";
		return;
	}
	if (!p->rc)
		p->rc = act(l, p);
	if (!p->rc)
		world_after(l, p, &p->world);
	p->outcome = p->rc == SP_EFENCED ? "fenced" : p->rc ? "error" :
		     (p->plan.nactions || p->plan.nchanges) ? "acted" :
		     p->obs.blind ? "blind" :
		     p->world.moving ? "waiting" :
		     p->world.blocked || p->world.stopped_pools ? "stuck" : "converged";
	if (p->rc != SP_EFENCED) {
		int rrc = record(l, p);
		if (rrc) {
			p->rc = rrc;
			p->outcome = rrc == SP_EFENCED ? "fenced" : "error";
		} else {
			mirror(l, p);
		}
	}
	if (p->rc == SP_EFENCED)
		step_down(l, p->rep.lease_lost ? "lease not renewed before a mutation" :
			  "fencing epoch is stale");
}

static int ensure_db(struct loop *l, struct err *e)
{
	if (pgstate_ok(l->pg))
		return 0;
	return pgstate_reconnect(l->pg, e);
}

/* One pass. Returns 0 or the error (SP_EBUSY: not the leader, nothing done). */
static int pass_run(struct loop *l)
{
	struct pass p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.t0 = mono_ms();
	p.trips0 = pgstate_round_trips(l->pg);
	p.started_at = now_ms();
	p.now = p.started_at;
	p.outcome = "error";
	plan_output_init(&p.plan);
	exec_report_init(&p.rep);
	p.rc = ensure_db(l, &p.e);
	if (!p.rc && l->mode != LOOP_DRY_RUN)
		p.rc = lead(l, &p.e);
	if (p.rc == SP_EBUSY || (p.rc && l->mode != LOOP_DRY_RUN && !l->leader)) {
		rc = p.rc;
		pass_release(&p);
		return rc;        /* a follower does nothing; no summary line */
	}
	if (!p.rc)
		p.rc = pgstate_load(l->pg, &l->snap, &p.e);
	l->m.healthy = p.rc == 0 || p.rc == SP_EFENCED;
	if (!p.rc)
		pass_body(l, &p);
	l->progressing = !p.rc && (p.plan.nactions || p.plan.nchanges || p.world.moving);
	note_stuck(l, &p);
	l->retry_at = p.rc ? 0 : earliest_retry(l, &p);
	pass_metrics(l, &p);
	sim_truth(l);
	pass_log(l, &p);
	rc = p.rc;
	pass_release(&p);
	return rc;
}

int loop_once(struct loop *l, struct err *e)
{
	int64_t deadline = mono_ms() + 2 * (int64_t)l->cfg.lease_ttl_ms;
	int rc;

	for (;;) {
		rc = pass_run(l);
		if (rc != SP_EBUSY || mono_ms() > deadline)
			break;
		poll(NULL, 0, 100);
	}
	if (l->leader)
		coord_lease_release(l->rd, l->cfg.lease_key, NULL, NULL);
	if (rc) {
		err_set(e, rc, "pass did not complete: %s", rc == SP_EBUSY ?
			"the lease is held by another operator" : sp_code_name(rc));
		return LOOP_EXIT_ERROR;
	}
	if (l->blind) {
		err_set(e, SP_EUNAVAIL, "%s", l->blind_why);
		return LOOP_EXIT_ERROR;
	}
	if (l->stuck) {
		err_set(e, SP_OK, "%s", l->stuck_why);
		return LOOP_EXIT_STUCK;
	}
	return LOOP_EXIT_OK;
}

/* ------------------------------------------------------------ poll loop */

static int64_t jitter(struct loop *l, int64_t base)
{
	int64_t span = base * l->cfg.jitter_pct / 100;

	if (span <= 0)
		return base;
	return base - span + (int64_t)(next_rand(l) % (uint64_t)(2 * span + 1));
}

/*
 * Time to the next pass: the busy period while the world is changing (a
 * pass acted or changed status), else the period, and never past the
 * earliest backoff deadline a status waits for.
 */
static int64_t next_delay(struct loop *l)
{
	int64_t d = jitter(l, l->progressing && l->cfg.busy_period_ms < l->cfg.period_ms ?
			   l->cfg.busy_period_ms : l->cfg.period_ms);
	int64_t until = l->retry_at ? l->retry_at - now_ms() : 0;

	if (l->leader && until > 0 && until < d)
		d = until;
	return d;
}

static void reload_config(struct loop *l, const char *path)
{
	struct config c;
	struct err e = ERR_INIT;
	int rc = config_load(path, &c, &e);

	if (!rc) {
		/* drivers and connections stay: only the knobs change */
		str_copy(c.cloud, sizeof(c.cloud), l->cfg.cloud);
		str_copy(c.agent, sizeof(c.agent), l->cfg.agent);
		rc = config_validate(&c, &e);
	}
	if (rc) {
		log_warnx("configuration reload failed, keeping the old one: %s", e.msg);
		return;
	}
	l->cfg = c;
	log_setlevel(c.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	log_info("configuration reloaded period_ms=%" PRId64, c.period_ms);
}

static void drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/*
 * The database connection is gone: try to get it back (LISTEN included).
 * 1 when it is back, so a pass runs at once (notifications may have been missed).
 */
static int reconnect_db(struct loop *l)
{
	struct err e = ERR_INIT;

	if (pgstate_reconnect(l->pg, &e)) {
		if (!l->db_down_logged)
			log_warnx("database unreachable, retrying every second: %s", e.msg);
		l->db_down_logged = 1;
		l->m.healthy = 0;
		return 0;
	}
	log_info("database reconnected");
	l->db_down_logged = 0;
	return 1;
}

static int notified(struct loop *l)
{
	struct err e = ERR_INIT;
	int n = pgstate_notifications(l->pg, &e);

	if (n < 0) {
		log_warnx("database: %s", e.msg);
		return 0;
	}
	l->m.notify_wakeups += n > 0;
	return n;
}

int loop_run(struct loop *l, const char *config_path, volatile sig_atomic_t *stop,
	     volatile sig_atomic_t *reload, int sigfd)
{
	int64_t next_pass = mono_ms();

	log_info("spinupd running cloud=%s agent=%s holder=%s period_ms=%" PRId64
		 " lease_ttl_ms=%d", l->cfg.cloud, l->cfg.agent, l->cfg.holder, l->cfg.period_ms,
		 l->cfg.lease_ttl_ms);
	while (!*stop) {
		struct pollfd pfd[3];
		int64_t now = mono_ms(), renew_at = l->renewed_at + l->cfg.lease_ttl_ms / 3;
		int64_t wake = next_pass < renew_at ? next_pass : renew_at;
		int n = 0, timeout = wake > now ? (int)(wake - now) : 0;
		int db = pgstate_socket(l->pg);

		pfd[n++] = (struct pollfd){ sigfd, POLLIN, 0 };
		if (db >= 0)
			pfd[n++] = (struct pollfd){ db, POLLIN, 0 };
		if (l->http)
			pfd[n++] = (struct pollfd){ metrics_srv_fd(l->http), POLLIN, 0 };
		if (l->http && metrics_srv_timeout(l->http) >= 0 && metrics_srv_timeout(l->http) < timeout)
			timeout = metrics_srv_timeout(l->http);
		if (db < 0 && timeout > 1000)
			timeout = 1000;        /* reconnect soon */
		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
			log_warn("poll");
		drain(sigfd);
		if (l->http)
			metrics_srv_run(l->http);
		if (*reload) {
			*reload = 0;
			reload_config(l, config_path);
		}
		if (*stop)
			break;
		if (db >= 0 && notified(l) > 0)
			next_pass = 0;                         /* fresh changes first */
		if (pgstate_socket(l->pg) < 0 && reconnect_db(l))
			next_pass = 0;
		now = mono_ms();
		if (now >= next_pass) {
			pass_run(l);
			l->renewed_at = mono_ms();
			/* notifications that arrived during the pass are in libpq's queue */
			next_pass = notified(l) > 0 ? mono_ms() : mono_ms() + next_delay(l);
		} else if (now >= renew_at) {
			struct err e = ERR_INIT;
			int was = l->leader;
			lead(l, &e);
			l->renewed_at = mono_ms();
			if (!was && l->leader)
				next_pass = 0;                 /* a new leader acts at once */
		}
	}
	if (l->leader) {
		int released = 0;
		coord_lease_release(l->rd, l->cfg.lease_key, &released, NULL);
		log_info("lease released=%d epoch=%" PRId64, released, l->epoch);
	}
	log_info("spinupd stopped");
	return 0;
}
