/*
 * test_simulation: hundreds of seeded runs of the whole loop (observe, plan,
 * act, record) over the simulated world, under random desired-state changes
 * and random faults; the harness plays the daemon in memory. After every
 * pass it checks DESIGN.md's invariants that memory can check; after the
 * faults stop it asserts convergence within a bound.
 *
 *   SPINUP_SIM_SEEDS=N   number of seeds (default 1000)
 *   SPINUP_SIM_SEED=N    replay one seed, printing every pass
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/sim.h"
#include "model/plan.h"
#include "model/status.h"
#include "model/strbuf.h"
#include "reconciler/exec.h"

#define NPOOLS 2
#define WS_MAX 16
#define PASS_MS 10000
#define FAULT_PASSES 60
#define CONVERGE_BOUND 90      /* passes after the faults stop */
#define STABLE_PASSES 3        /* converged passes checked for invariant 8 */

/* ---- fault mixes ------------------------------------------------------------------------ */

struct mix {
	const char *name;
	struct sim_faults f;
};

/* api, throttle, partial, consistency, death, flap, flap_ms, timeout, crash, sync_fail,
 * sync_slow, sync_slow_ms, restore_fail */
static const struct mix mixes[] = {
	{ "none", { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 } },
	{ "cloud", { 0.08, 0.08, 0.15, 30000, 0, 0, 0, 0, 0, 0, 0, 0, 0 } },
	{ "agents", { 0, 0, 0, 0, 0.001, 0.01, 25000, 0.08, 0.004, 0, 0, 0, 0 } },
	{ "files", { 0, 0, 0, 0, 0, 0, 0, 0, 0.002, 0.15, 0.1, 15000, 0.1 } },
	{ "all", { 0.04, 0.04, 0.08, 20000, 0.0005, 0.005, 20000, 0.04, 0.002, 0.08, 0.05,
		   15000, 0.05 } },
	{ "storm", { 0.15, 0.15, 0.3, 60000, 0.002, 0.03, 40000, 0.15, 0.01, 0.3, 0.2,
		     30000, 0.2 } },
};
#define NMIXES (sizeof(mixes) / sizeof(mixes[0]))

/* ---- the harness: the daemon's memory between passes ------------------------------------ */

/* One journal entry of this pass: pending until done (invariant 6). */
#define JLOG_MAX 1024
struct jentry {
	char key[ACTION_KEY_MAX + 1];
	int64_t epoch;
	int flag;
	int open;
};

struct harness {
	uint64_t seed, rng;
	int verbose;
	const struct mix *mix;
	struct sim_world *w;
	struct cloud *cloud;            /* the checked drivers below, over raw_* */
	struct agentc *agents;
	struct cloud *raw_cloud, checked_cloud;
	struct agentc *raw_agents, checked_agents;
	/* invariant 6: this pass's journal, and the mutating calls the drivers saw */
	struct jentry *jlog;
	size_t njlog;
	int64_t pass_epoch;
	unsigned long mut_calls;
	struct plan_config pcfg;
	struct pool_spec pools[NPOOLS];
	struct pool_record precs[NPOOLS];
	size_t nprecs;
	struct workspace_spec ws[WS_MAX];
	struct workspace_status st[WS_MAX];
	unsigned char has[WS_MAX];
	size_t nws;
	int64_t deleted[256];           /* workspace ids whose rows are gone */
	size_t ndeleted;
	struct instance_record *irecs;
	size_t nirecs;
	int64_t epoch;                  /* the current leader's */
	int64_t next_id;
	int pass;
	size_t terms_seen, stops_seen;
	/* destructive actions executed: pass time per pool, for the budget check */
	int64_t destr_at[NPOOLS][1024];
	size_t ndestr[NPOOLS];
	char failure[1024];
	/* figures */
	int health_replacements, stale_passes, replays, fragmented, approvals;
	int health_idle, deaths, fast, launch_timeouts, lost_findings;
	int max_mutations;              /* the executor's per-pass limit */
	int blind_checks;               /* passes planned again with less observed */
	int fresh_actions;              /* actions of workspaces with a change not yet acted on */
};

struct pass_stats {
	size_t nactions, nchanges;
	unsigned long mutations;
};

static uint64_t h_rand(struct harness *h)
{
	uint64_t z = (h->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double h_unit(struct harness *h)
{
	return (double)(h_rand(h) >> 11) * (1.0 / 9007199254740992.0);
}

static int h_below(struct harness *h, int n)
{
	return n > 0 ? (int)(h_rand(h) % (uint64_t)n) : 0;
}

static void vlog(struct harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vlog(struct harness *h, const char *fmt, ...)
{
	va_list ap;

	if (!h->verbose)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* Record the first invariant violation of a run. Returns -1 for `return violation(...)`. */
static int violation(struct harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int violation(struct harness *h, const char *fmt, ...)
{
	va_list ap;
	int off;

	if (h->failure[0])
		return -1;
	off = snprintf(h->failure, sizeof(h->failure), "pass %d: ", h->pass);
	va_start(ap, fmt);
	vsnprintf(h->failure + off, sizeof(h->failure) - (size_t)off, fmt, ap);
	va_end(ap);
	vlog(h, "VIOLATION %s\n", h->failure);
	return -1;
}

static int pool_index(const struct harness *h, const char *name)
{
	int i;

	for (i = 0; i < NPOOLS; i++)
		if (!strcmp(h->pools[i].name, name))
			return i;
	return -1;
}

static int pool_index_by_id(const struct harness *h, int64_t id)
{
	int i;

	for (i = 0; i < NPOOLS; i++)
		if (h->pools[i].id == id)
			return i;
	return -1;
}

static int pool_of_asg(const struct harness *h, const char *asg)
{
	int i;

	for (i = 0; i < NPOOLS; i++)
		if (!strcmp(h->pools[i].asg_name, asg))
			return i;
	return -1;
}

static int ws_index(const struct harness *h, int64_t id)
{
	size_t i;

	for (i = 0; i < h->nws; i++)
		if (h->ws[i].id == id)
			return (int)i;
	return -1;
}

static int should_run(const struct workspace_spec *w)
{
	return w->state == WS_STATE_RUNNING && !w->deletion_requested_at;
}

static int running_in_pool(const struct harness *h, int p)
{
	size_t i;
	int n = 0;

	for (i = 0; i < h->nws; i++)
		if (should_run(&h->ws[i]) && !strcmp(h->ws[i].pool, h->pools[p].name))
			n++;
	return n;
}

static int clamp_pool(const struct harness *h, int p, int n)
{
	const struct pool_spec *ps = &h->pools[p];

	if (n > ps->max_instances)
		n = ps->max_instances;
	if (n < ps->min_instances)
		n = ps->min_instances;
	return n;
}

/* Instances the declared workspaces need: ceil(running / slots). */
static int needed_instances(const struct harness *h, int p)
{
	int slots = h->pools[p].slots_per_instance;

	return (running_in_pool(h, p) + slots - 1) / slots;
}

/*
 * Invariant 3: the capacity computed from declared state, slots needed plus
 * the warm buffer, clamped to the pool's min/max (DESIGN.md), computed here
 * without the planner: every SetDesiredCapacity must set exactly this.
 */
static int computed_capacity(const struct harness *h, int p)
{
	return clamp_pool(h, p, needed_instances(h, p) + h->pools[p].warm_instances);
}

/* ---- setup ------------------------------------------------------------------------------ */

static void add_workspace(struct harness *h, int p, enum ws_state s)
{
	struct workspace_spec *w;

	if (h->nws == WS_MAX)
		return;
	w = &h->ws[h->nws];
	workspace_spec_defaults(w);
	w->id = h->next_id++;
	snprintf(w->name, sizeof(w->name), "ws-%lld", (long long)w->id);
	str_copy(w->owner, sizeof(w->owner), "sim");
	str_copy(w->pool, sizeof(w->pool), h->pools[p].name);
	w->state = s;
	w->cpu_milli = 1000;
	w->memory_mib = 1024;
	str_copy(w->bucket, sizeof(w->bucket), "sim-bucket");
	snprintf(w->prefix, sizeof(w->prefix), "ws/%lld", (long long)w->id);
	w->generation = 1;
	h->has[h->nws] = 0;
	memset(&h->st[h->nws], 0, sizeof(h->st[h->nws]));
	h->nws++;
	vlog(h, "  desired: create %s in %s (%s)\n", w->name, h->pools[p].name,
	     ws_state_name(s));
}

static void checked_drivers(struct harness *h);

static int harness_open(struct harness *h, uint64_t seed, int verbose)
{
	struct sim_config cfg;
	int p;

	memset(h, 0, sizeof(*h));
	h->seed = seed;
	h->rng = seed ^ 0x5eedf00dULL;
	h->verbose = verbose;
	h->mix = &mixes[seed % NMIXES];
	h->epoch = 1;
	h->next_id = 1;
	sim_config_defaults(&cfg);
	cfg.faults = h->mix->f;
	h->w = sim_world_new(seed, &cfg);
	h->raw_cloud = sim_cloud(h->w);
	h->raw_agents = sim_agentc(h->w);
	h->jlog = calloc(JLOG_MAX, sizeof(*h->jlog));
	if (!h->w || !h->raw_cloud || !h->raw_agents || !h->jlog)
		return -1;
	checked_drivers(h);
	plan_config_defaults(&h->pcfg);
	h->fast = (seed / NMIXES) % 2;
	h->max_mutations = (seed / (2 * NMIXES)) % 3 == 0 ? 4 : 40;
	if (h->fast) {   /* half the seeds run with short timers: more paths within a run */
		h->pcfg.launch_grace_ms = 60000;
		h->pcfg.register_timeout_ms = 120000;
		/* the sim launches in 30-40 s: some launches time out and are replaced */
		h->pcfg.launch_timeout_ms = 36000;
		h->pcfg.idle_cooldown_ms = 60000;
		h->pcfg.orphan_grace_ms = 60000;
		h->pcfg.budget_window_ms = 300000;
	}
	for (p = 0; p < NPOOLS; p++) {
		struct pool_spec *ps = &h->pools[p];
		struct sim_group_config g = { NULL, 0, 20, 0, 0, 0 };

		pool_spec_defaults(ps);
		ps->id = p + 1;
		snprintf(ps->name, sizeof(ps->name), "pool-%c", 'a' + p);
		snprintf(ps->asg_name, sizeof(ps->asg_name), "asg-%c", 'a' + p);
		str_copy(ps->region, sizeof(ps->region), "sim-1");
		ps->slots_per_instance = 1 + h_below(h, 3);
		ps->warm_instances = h_below(h, 2);
		ps->min_instances = h_below(h, 2);
		ps->max_instances = 6;
		ps->agent_port = 7070;
		str_copy(ps->default_image, sizeof(ps->default_image), "code-server:4");
		ps->generation = 1;
		g.name = ps->asg_name;
		g.slots = ps->slots_per_instance;
		if (sim_add_group(h->w, &g, NULL) < 0)
			return -1;
	}
	for (p = 0; p < 3; p++)
		add_workspace(h, h_below(h, NPOOLS), WS_STATE_RUNNING);
	return 0;
}

static void harness_close(struct harness *h)
{
	cloud_free(h->raw_cloud);
	agentc_free(h->raw_agents);
	free(h->jlog);
	sim_world_free(h->w);
	free(h->irecs);
}

/* ---- random desired-state changes ------------------------------------------------------- */

static int can_run_one_more(const struct harness *h, int p)
{
	return running_in_pool(h, p) <
	       h->pools[p].max_instances * h->pools[p].slots_per_instance;
}

static void change_pool(struct harness *h, int p)
{
	struct pool_spec *ps = &h->pools[p];
	int need = (running_in_pool(h, p) + ps->slots_per_instance - 1) / ps->slots_per_instance;

	switch (h_below(h, 3)) {
	case 0:
		ps->warm_instances = h_below(h, 3);
		break;
	case 1:
		ps->min_instances = h_below(h, 3);
		break;
	default:
		ps->max_instances = 3 + h_below(h, 4);
		if (ps->max_instances < need)
			ps->max_instances = need;
		break;
	}
	if (ps->max_instances < ps->min_instances)
		ps->max_instances = ps->min_instances;
	ps->generation++;
	vlog(h, "  desired: %s warm=%d min=%d max=%d\n", ps->name, ps->warm_instances,
	     ps->min_instances, ps->max_instances);
}

/* Desired rows suddenly gone: every workspace of a pool marked (the budget's case). */
static void mass_delete(struct harness *h, int p)
{
	size_t i;

	vlog(h, "  desired: every workspace of %s marked for deletion\n", h->pools[p].name);
	for (i = 0; i < h->nws; i++)
		if (!h->ws[i].deletion_requested_at && pool_index(h, h->ws[i].pool) == p) {
			h->ws[i].deletion_requested_at = sim_now(h->w);
			h->ws[i].generation++;
		}
}

static void random_change(struct harness *h)
{
	double r = h_unit(h);
	int i, p;

	if (r > 0.35)
		return;
	i = h->nws ? h_below(h, (int)h->nws) : -1;
	r = h_unit(h);
	if (r < 0.3 || i < 0) {
		p = h_below(h, NPOOLS);
		if (can_run_one_more(h, p))
			add_workspace(h, p, WS_STATE_RUNNING);
	} else if (r < 0.65) {
		struct workspace_spec *w = &h->ws[i];

		if (w->deletion_requested_at)
			return;
		if (w->state == WS_STATE_RUNNING) {
			w->state = WS_STATE_STOPPED;
		} else {
			if (!can_run_one_more(h, pool_index(h, w->pool)))
				return;
			w->state = WS_STATE_RUNNING;
		}
		w->generation++;
		vlog(h, "  desired: %s -> %s\n", w->name, ws_state_name(w->state));
	} else if (r < 0.8) {
		if (!h->ws[i].deletion_requested_at) {
			h->ws[i].deletion_requested_at = sim_now(h->w);
			h->ws[i].generation++;
			vlog(h, "  desired: delete %s\n", h->ws[i].name);
		}
	} else if (r < 0.87) {
		struct workspace_spec *w = &h->ws[i];

		str_copy(w->image, sizeof(w->image), w->image[0] ? "" : "code-server:5");
		w->generation++;
		vlog(h, "  desired: %s image '%s'\n", w->name, w->image);
	} else if (r < 0.875) {
		mass_delete(h, h_below(h, NPOOLS));
	} else if (r < 0.92) {
		p = h_below(h, NPOOLS);
		h->pools[p].paused_until = sim_now(h->w) + 30000 + 10000 * h_below(h, 10);
		h->pools[p].generation++;
		vlog(h, "  desired: %s paused for %llds\n", h->pools[p].name,
		     (long long)(h->pools[p].paused_until - sim_now(h->w)) / 1000);
	} else {
		change_pool(h, h_below(h, NPOOLS));
	}
}

/* ---- observe ---------------------------------------------------------------------------- */

struct observation {
	struct obs_group groups[NPOOLS];
	int group_ok[NPOOLS];
	struct obs_agent *agents[NPOOLS];
	size_t nagents[NPOOLS];
	struct plan_pool_obs obs[NPOOLS];
	int fenced;
};

static void observation_release(struct observation *o)
{
	size_t p, i;

	for (p = 0; p < NPOOLS; p++) {
		obs_group_release(&o->groups[p]);
		for (i = 0; i < o->nagents[p]; i++)
			obs_agent_release(&o->agents[p][i]);
		free(o->agents[p]);
	}
}

static void observe_pool(struct harness *h, int p, int64_t epoch, struct observation *o)
{
	struct obs_group *g = &o->groups[p];
	struct agent_target *t;
	size_t i, n = 0;
	int rc;

	obs_group_init(g);
	rc = cloud_describe(h->cloud, h->pools[p].asg_name, g, NULL);
	o->group_ok[p] = rc == 0 || g->found;
	o->obs[p].pool_id = h->pools[p].id;
	o->obs[p].group = o->group_ok[p] ? g : NULL;
	if (!o->group_ok[p])
		return;
	t = calloc(g->ninstances + 1, sizeof(*t));
	o->agents[p] = calloc(g->ninstances + 1, sizeof(*o->agents[p]));
	assert_non_null(t);
	assert_non_null(o->agents[p]);
	for (i = 0; i < g->ninstances; i++) {
		const struct obs_instance *oi = &g->instances[i];

		if (!oi->private_ip[0] || oi->lifecycle != LC_IN_SERVICE)
			continue;
		str_copy(t[n].instance_id, sizeof(t[n].instance_id), oi->id);
		str_copy(t[n].address, sizeof(t[n].address), oi->private_ip);
		t[n].port = h->pools[p].agent_port;
		obs_agent_init(&o->agents[p][n]);
		n++;
	}
	if (n && agentc_observe(h->agents, t, n, epoch, o->agents[p], NULL) == SP_EFENCED)
		o->fenced = 1;
	o->nagents[p] = n;
	o->obs[p].agents = o->agents[p];
	o->obs[p].nagents = n;
	free(t);
}

static const struct obs_agent *agent_of(const struct observation *o, int p, const char *id)
{
	size_t i;

	for (i = 0; i < o->nagents[p]; i++)
		if (!strcmp(o->agents[p][i].instance_id, id))
			return &o->agents[p][i];
	return NULL;
}

/* ---- plan-level checks: invariants 3, 7, 9 and observe-only ------------------------------ */

static int pool_of_action(const struct harness *h, const struct action *a)
{
	int p = pool_index_by_id(h, a->pool_id);

	if (p < 0 && a->asg_name[0])
		p = pool_of_asg(h, a->asg_name);
	if (p < 0 && a->workspace_id) {
		int i = ws_index(h, a->workspace_id);

		if (i >= 0)
			p = pool_index(h, h->ws[i].pool);
	}
	return p;
}

/* Whether the pool's whole observation is complete: group complete, every agent answered. */
static int pool_fully_observed(const struct observation *o, int p)
{
	size_t i;

	if (!o->group_ok[p] || !o->groups[p].complete)
		return 0;
	for (i = 0; i < o->groups[p].ninstances; i++) {
		const struct obs_instance *oi = &o->groups[p].instances[i];
		const struct obs_agent *a;

		if (oi->lifecycle != LC_IN_SERVICE)
			continue;
		a = agent_of(o, p, oi->id);
		if (!a || !a->observed)
			return 0;
	}
	return 1;
}

static int check_destructive(struct harness *h, const struct observation *o, int p,
			     const struct action *a)
{
	const struct obs_group *g = &o->groups[p];
	const struct obs_agent *ag;
	struct sim_instance_info info;

	if (!o->group_ok[p] || !g->complete)
		return violation(h, "invariant 7: %s on %s from an incomplete group observation",
			    action_type_name(a->type), h->pools[p].name);
	switch (a->type) {
	case ACT_REMOVE_CONTAINER:
		ag = agent_of(o, p, a->instance_id);
		if (!ag || !ag->observed)
			return violation(h, "invariant 7: remove of workspace %lld on %s whose agent "
				    "was not observed", (long long)a->workspace_id, a->instance_id);
		break;
	case ACT_SET_UNHEALTHY:
		if (strcmp(a->reason, "LaunchTimedOut"))
			break;
		memset(&info, 0, sizeof(info));
		if (sim_instance_find(h->w, a->instance_id, &info) < 0 ||
		    info.lifecycle != LC_PENDING ||
		    sim_now(h->w) - info.launched_at < h->pcfg.launch_timeout_ms)
			return violation(h, "launch timeout: %s marked, but it is %s, launched %llds "
					 "ago", a->instance_id, inst_lifecycle_name(info.lifecycle),
					 (long long)(sim_now(h->w) - info.launched_at) / 1000);
		break;
	case ACT_DELETE_ROW:
		if (!pool_fully_observed(o, p))
			return violation(h, "invariant 7: delete row of workspace %lld without every "
				    "agent of %s observed", (long long)a->workspace_id,
				    h->pools[p].name);
		break;
	default:
		break;
	}
	return 0;
}

/* Invariant 9: destructive actions executed within the budget window, per pool. */
static int check_budget(struct harness *h, int p, int planned)
{
	int64_t now = sim_now(h->w);
	size_t i;
	int recent = 0;

	for (i = 0; i < h->ndestr[p]; i++)
		if (h->destr_at[p][i] > now - h->pcfg.budget_window_ms)
			recent++;
	/* the planner's windows are fixed, a sliding one may see two of them */
	if (planned > h->pcfg.destructive_budget || recent + planned > 2 * h->pcfg.destructive_budget)
		return violation(h, "invariant 9: pool %s: %d destructive actions planned, %d in the "
			    "last window, budget %d", h->pools[p].name, planned, recent,
			    h->pcfg.destructive_budget);
	return 0;
}

static const struct pool_record *prec_of(const struct pool_record *r, size_t n, int64_t pool)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (r[i].pool_id == pool)
			return &r[i];
	return NULL;
}

/*
 * Held this pass: observe-only, paused, or safety-stopped with no clear
 * request newer than both the stop and the last handled request.
 */
static int observe_only(const struct harness *h, int p, int64_t now)
{
	const struct pool_spec *ps = &h->pools[p];
	const struct pool_record *r = prec_of(h->precs, h->nprecs, ps->id);

	if (ps->observe_only || (ps->paused_until && ps->paused_until > now))
		return 1;
	return r && r->safety_stopped && !(ps->safety_clear_requested_at > r->stopped_at &&
					   ps->safety_clear_requested_at > r->clear_handled_at);
}

/*
 * Invariant 9: entering a safety stop (only then: stopped_at becomes this
 * pass's time, also when a cleared pool stops again) writes one SAFETY_STOP
 * per workspace of the pool; a clear request is echoed once seen.
 */
static int check_safety_events(struct harness *h, const struct plan_output *out, int64_t t)
{
	size_t i, k;
	int p;

	for (p = 0; p < NPOOLS; p++) {
		const struct pool_record *in = prec_of(h->precs, h->nprecs, h->pools[p].id);
		const struct pool_record *o = prec_of(out->pool_records, out->npool_records,
						      h->pools[p].id);
		int64_t req = h->pools[p].safety_clear_requested_at;
		int was = in && in->safety_stopped, now = o && o->safety_stopped, want = 0, got = 0;
		int entered = now && (!was || o->stopped_at != in->stopped_at);

		if (entered && o->stopped_at != t)
			return violation(h, "invariant 9: pool %s entered a safety stop at %lld, "
					 "stopped_at %lld", h->pools[p].name, (long long)t,
					 (long long)o->stopped_at);
		if (o && req > (in ? in->clear_handled_at : 0) && o->clear_handled_at != req)
			return violation(h, "pool %s: clear request %lld not echoed (handled %lld)",
					 h->pools[p].name, (long long)req,
					 (long long)o->clear_handled_at);
		for (k = 0; entered && k < h->nws; k++)
			want += pool_index(h, h->ws[k].pool) == p;
		for (i = 0; i < out->nevents; i++) {
			int w = ws_index(h, out->events[i].workspace_id);

			got += !strcmp(out->events[i].type, "SAFETY_STOP") && w >= 0 &&
			       pool_index(h, h->ws[w].pool) == p;
		}
		if (got != want)
			return violation(h, "invariant 9: pool %s %s: %d SAFETY_STOP events, want %d",
					 h->pools[p].name, entered ? "safety-stopped" :
					 "not entering a safety stop", got, want);
	}
	return 0;
}

/* Invariant 7: an InstanceLost finding names an instance the world has really lost. */
static int check_lost(struct harness *h, const struct plan_output *out)
{
	struct sim_instance_info info;
	size_t i;

	for (i = 0; i < out->ndrift; i++) {
		const char *id = out->drift[i].subject + strlen("instance/");

		if (strcmp(out->drift[i].reason, "InstanceLost"))
			continue;
		h->lost_findings++;
		if (sim_instance_find(h->w, id, &info) == 0 &&
		    (info.lifecycle == LC_PENDING || info.lifecycle == LC_IN_SERVICE))
			return violation(h, "invariant 7: %s reported lost, but it is %s", id,
					 inst_lifecycle_name(info.lifecycle));
	}
	return 0;
}

/*
 * Invariant 7's launch grace is for instances EC2 may not list yet: one we
 * asked to go (terminated, or marked unhealthy and replaced) that left the
 * listing is gone, never InstanceNotYetVisible (which holds scale-in).
 */
static int check_not_yet_visible(struct harness *h, const struct plan_output *out)
{
	const struct sim_term_record *terms;
	size_t i, j, nt = sim_term_log(h->w, &terms);

	for (i = 0; i < out->ndrift; i++) {
		const char *id = out->drift[i].subject + strlen("instance/");

		if (strcmp(out->drift[i].reason, "InstanceNotYetVisible") ||
		    strncmp(out->drift[i].subject, "instance/", 9))
			continue;
		for (j = 0; j < nt; j++)
			if (!strcmp(terms[j].instance_id, id) &&
			    (terms[j].cause == SIM_TERM_API || terms[j].cause == SIM_TERM_HEALTH))
				return violation(h, "invariant 7: %s, which we asked to go (%s), "
						 "reported not yet visible", id,
						 sim_term_cause_name(terms[j].cause));
	}
	return 0;
}

/* An action of a workspace with a change not yet acted on (new, newer spec, reconcile request). */
static int fresh_action(const struct harness *h, const struct action *a)
{
	int k = a->workspace_id ? ws_index(h, a->workspace_id) : -1;

	if (k < 0 || a->type == ACT_SET_CAPACITY || a->type == ACT_PROTECT ||
	    a->type == ACT_TERMINATE || a->type == ACT_SET_UNHEALTHY)
		return 0;
	return !h->has[k] || h->ws[k].generation != h->st[k].observed_generation ||
	       h->ws[k].reconcile_requested_at > h->st[k].reconcile_handled_at;
}

/* "Fresh changes go first" (DESIGN.md): no fresh workspace's action after a routine one. */
static int check_fresh_first(struct harness *h, const struct plan_output *out)
{
	size_t i, routine = out->nactions;

	for (i = 0; i < out->nactions; i++) {
		int fresh = fresh_action(h, &out->actions[i]);

		if (!fresh && routine == out->nactions)
			routine = i;
		else if (fresh && routine < i)
			return violation(h, "fresh changes first: %s planned after %s",
					 out->actions[i].key, out->actions[routine].key);
		h->fresh_actions += fresh;
	}
	return 0;
}

static int check_plan(struct harness *h, const struct observation *o, const struct plan_output *out)
{
	int destr[NPOOLS] = { 0 };
	int64_t now = sim_now(h->w);
	size_t i;
	int p, desired;

	for (i = 0; i < out->nactions; i++) {
		const struct action *a = &out->actions[i];
		int lowers = 0;

		p = pool_of_action(h, a);
		if (p < 0)
			return violation(h, "action %s (%s) names no known pool", action_type_name(a->type),
				    a->key);
		if (observe_only(h, p, now))
			return violation(h, "action %s on observe-only pool %s", a->key, h->pools[p].name);
		if (a->type == ACT_SET_CAPACITY) {
			/* exactly the value computed from declared state, never a step */
			int want = computed_capacity(h, p);

			sim_group_sizes(h->w, h->pools[p].asg_name, NULL, NULL, &desired, NULL);
			lowers = a->capacity < desired;
			if (a->capacity != want)
				return violation(h, "invariant 3: %s capacity %d (was %d), computed "
						 "%d (running %d, slots %d, warm %d, min %d, max %d)",
						 h->pools[p].name, a->capacity, desired, want,
						 running_in_pool(h, p), h->pools[p].slots_per_instance,
						 h->pools[p].warm_instances, h->pools[p].min_instances,
						 h->pools[p].max_instances);
		}
		if (a->type == ACT_ENSURE_CONTAINER && a->req.expect_snapshot &&
		    !sim_bucket_get(h->w, a->workspace_id, NULL))
			return violation(h, "invariant 4: ensure of workspace %lld expects a snapshot "
					 "that was never written", (long long)a->workspace_id);
		if (lowers || action_is_destructive(a->type)) {
			if (check_destructive(h, o, p, a) < 0)
				return -1;
			destr[p]++;
		}
	}
	for (p = 0; p < NPOOLS; p++)
		if (check_budget(h, p, destr[p]) < 0)
			return -1;
	if (check_safety_events(h, out, sim_now(h->w)) < 0 || check_lost(h, out) < 0 ||
	    check_not_yet_visible(h, out) < 0 || check_fresh_first(h, out) < 0)
		return -1;
	for (i = 0; i < out->npool_records; i++)
		if (out->pool_records[i].destructive_in_window > h->pcfg.destructive_budget)
			return violation(h, "invariant 9: pool %lld: %d destructive actions in its "
					 "window, budget %d", (long long)out->pool_records[i].pool_id,
					 out->pool_records[i].destructive_in_window,
					 h->pcfg.destructive_budget);
	return 0;
}

/* ---- act: the in-memory journal (fencing as Postgres would do it) ----------------------- */

struct journal {
	struct harness *h;
	int64_t epoch;
	int pending, done;
};

static int j_pending(void *ctx, const struct action *a, struct err *e)
{
	struct journal *j = ctx;
	struct harness *h = j->h;
	struct jentry *je;

	if (j->epoch < h->epoch)
		return err_set(e, SP_EFENCED, "fencing epoch %lld is stale (current %lld)",
			       (long long)j->epoch, (long long)h->epoch);
	if (h->njlog == JLOG_MAX)
		return err_set(e, SP_ELIMIT, "journal full");
	je = &h->jlog[h->njlog++];
	str_copy(je->key, sizeof(je->key), a->key);
	je->epoch = j->epoch;
	je->flag = a->flag;
	je->open = 1;
	j->pending++;
	return 0;
}

static void j_done(void *ctx, const struct action *a, int rc, const struct err *e)
{
	struct journal *j = ctx;
	size_t i;

	(void)rc;
	(void)e;
	for (i = j->h->njlog; i-- > 0;)
		if (j->h->jlog[i].open && !strcmp(j->h->jlog[i].key, a->key)) {
			j->h->jlog[i].open = 0;
			break;
		}
	j->done++;
}

/*
 * Invariant 6, at the drivers: a mutating call must find, in this pass's
 * journal, an entry still pending, with the key the harness derives from the
 * call itself (the planner's key format) and the pass's epoch, which is also
 * the epoch an agent call carries. flag < 0: the flag is not compared.
 */
static int journaled(struct harness *h, int64_t epoch, int flag, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int journaled(struct harness *h, int64_t epoch, int flag, const char *fmt, ...)
{
	char key[ACTION_KEY_MAX + 1];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	h->mut_calls++;
	for (i = 0; i < h->njlog; i++)
		if (h->jlog[i].open && !strcmp(h->jlog[i].key, key) &&
		    h->jlog[i].epoch == h->pass_epoch && (flag < 0 || h->jlog[i].flag == flag)) {
			if (epoch != h->jlog[i].epoch)
				return violation(h, "invariant 6: %s called with epoch %lld, journaled "
						 "with %lld", key, (long long)epoch,
						 (long long)h->jlog[i].epoch);
			return 0;
		}
	return violation(h, "invariant 6: %s%s called without a pending journal entry of this "
			 "pass (epoch %lld)", key, flag < 0 ? "" : flag ? " (flag 1)" : " (flag 0)",
			 (long long)h->pass_epoch);
}

/* A refused call: the world must not see it (the violation is already recorded). */
static int refused(struct err *e)
{
	return err_set(e, SP_EINTERNAL, "not journaled");
}

static int cc_describe(void *st, const char *asg, struct obs_group *g, struct err *e)
{
	struct harness *h = st;

	return h->raw_cloud->ops->describe(h->raw_cloud->state, asg, g, e);
}

static int cc_set_capacity(void *st, const char *asg, int desired, struct err *e)
{
	struct harness *h = st;
	int p = pool_of_asg(h, asg);

	if (journaled(h, h->pass_epoch, -1, "capacity/%lld/%d",
		      (long long)(p < 0 ? 0 : h->pools[p].id), desired) < 0)
		return refused(e);
	return h->raw_cloud->ops->set_capacity(h->raw_cloud->state, asg, desired, e);
}

static int cc_set_protection(void *st, const char *asg, const char *const *ids, size_t n,
			     int protect, struct err *e)
{
	struct harness *h = st;
	size_t i;

	for (i = 0; i < n; i++)
		if (journaled(h, h->pass_epoch, -1, "protect/%s/%d", ids[i], protect) < 0)
			return refused(e);
	return h->raw_cloud->ops->set_protection(h->raw_cloud->state, asg, ids, n, protect, e);
}

static int cc_terminate(void *st, const char *id, int decrement, struct err *e)
{
	struct harness *h = st;

	if (journaled(h, h->pass_epoch, decrement, "terminate/%s", id) < 0)
		return refused(e);
	return h->raw_cloud->ops->terminate(h->raw_cloud->state, id, decrement, e);
}

static int cc_set_health(void *st, const char *id, int healthy, struct err *e)
{
	struct harness *h = st;

	if (journaled(h, h->pass_epoch, -1, "set_%s/%s", healthy ? "healthy" : "unhealthy",
		      id) < 0)
		return refused(e);
	return h->raw_cloud->ops->set_health(h->raw_cloud->state, id, healthy, e);
}

static int ca_observe(void *st, const struct agent_target *t, size_t n, int64_t epoch,
		      struct obs_agent *out, struct err *e)
{
	struct harness *h = st;

	return h->raw_agents->ops->observe(h->raw_agents->state, t, n, epoch, out, e);
}

static int ca_ensure(void *st, const struct agent_target *t, int64_t epoch,
		     const struct container_req *req, struct err *e)
{
	struct harness *h = st;

	if (journaled(h, epoch, -1, "ensure_container/%lld/%s%s", (long long)req->workspace_id,
		      t->instance_id, req->expect_snapshot ? "/s" : "") < 0)
		return refused(e);
	return h->raw_agents->ops->ensure(h->raw_agents->state, t, epoch, req, e);
}

static int ca_sync(void *st, const struct agent_target *t, int64_t epoch, int64_t ws,
		   struct err *e)
{
	struct harness *h = st;

	if (journaled(h, epoch, -1, "sync/%lld/%s", (long long)ws, t->instance_id) < 0)
		return refused(e);
	return h->raw_agents->ops->sync(h->raw_agents->state, t, epoch, ws, e);
}

static int ca_stop(void *st, const struct agent_target *t, int64_t epoch, int64_t ws,
		   int sync_first, struct err *e)
{
	struct harness *h = st;

	if (journaled(h, epoch, sync_first, "stop_container/%lld/%s", (long long)ws,
		      t->instance_id) < 0)
		return refused(e);
	return h->raw_agents->ops->stop(h->raw_agents->state, t, epoch, ws, sync_first, e);
}

static int ca_remove(void *st, const struct agent_target *t, int64_t epoch, int64_t ws,
		     int sync_first, struct err *e)
{
	struct harness *h = st;

	if (journaled(h, epoch, sync_first, "remove_container/%lld/%s", (long long)ws,
		      t->instance_id) < 0)
		return refused(e);
	return h->raw_agents->ops->remove(h->raw_agents->state, t, epoch, ws, sync_first, e);
}

static void checked_free(void *st)
{
	(void)st;   /* embedded in the harness; the raw drivers are freed by harness_close */
}

static const struct cloud_ops checked_cloud_ops = {
	"checked-sim", cc_describe, cc_set_capacity, cc_set_protection, cc_terminate,
	cc_set_health, checked_free,
};

static const struct agentc_ops checked_agentc_ops = {
	"checked-sim", ca_observe, ca_ensure, ca_sync, ca_stop, ca_remove, checked_free,
};

/* The drivers the loop uses: the sim's, with every mutation checked against the journal. */
static void checked_drivers(struct harness *h)
{
	h->checked_cloud.ops = &checked_cloud_ops;
	h->checked_cloud.state = h;
	h->checked_agents.ops = &checked_agentc_ops;
	h->checked_agents.state = h;
	h->cloud = &h->checked_cloud;
	h->agents = &h->checked_agents;
}

/* ---- record: statuses, records, deleted rows -------------------------------------------- */

static void print_status_diff(const struct workspace_status *a, const struct workspace_status *b)
{
	int c;

	printf("  status ws=%lld %s", (long long)b->workspace_id, ws_phase_name(b->phase));
	for (c = 0; c < COND_MAX; c++)
		if (!a || a->conds[c].status != b->conds[c].status ||
		    strcmp(a->conds[c].reason, b->conds[c].reason) ||
		    strcmp(a->conds[c].message, b->conds[c].message))
			printf(" %s=%s/%s", cond_type_name((enum cond_type)c),
			       cond_status_name(b->conds[c].status), b->conds[c].reason);
	if (a && (a->attempts != b->attempts || a->next_attempt_at != b->next_attempt_at))
		printf(" attempts %d next %lld", b->attempts, (long long)b->next_attempt_at);
	if (a && strcmp(a->instance_id, b->instance_id))
		printf(" instance '%s'", b->instance_id);
	printf("\n");
}

/*
 * The error class says who must act about the current blocker (DESIGN.md
 * "Status"): NeedsOperator only while a condition names an operator's
 * blocker (an exhausted pool, launches that keep failing, a failed restore).
 */
static int check_class(struct harness *h, const struct workspace_status *st)
{
	static const char *const blockers[] = { "PoolExhausted", "LaunchTimedOut", "RestoreFailed" };
	size_t c, b;

	if (st->error_class != SP_CLASS_NEEDS_OPERATOR)
		return 0;
	for (c = 0; c < COND_MAX; c++)
		for (b = 0; b < sizeof(blockers) / sizeof(blockers[0]); b++)
			if (!strcmp(st->conds[c].reason, blockers[b]))
				return 0;
	return violation(h, "workspace %lld says NeedsOperator, but %s is %s/%s",
			 (long long)st->workspace_id, ws_phase_name(st->phase),
			 cond_status_name(st->conds[COND_READY].status),
			 st->conds[COND_READY].reason);
}

static int apply_changes(struct harness *h, const struct plan_output *out)
{
	size_t i;

	for (i = 0; i < out->nchanges; i++) {
		const struct workspace_status *ns = &out->changes[i].status;
		int k = ws_index(h, ns->workspace_id);

		if (k < 0)
			return violation(h, "status change for unknown workspace %lld",
				    (long long)ns->workspace_id);
		if (h->has[k] && !workspace_status_differs(&h->st[k], ns))
			return violation(h, "invariant 8: unchanged status of workspace %lld written",
				    (long long)ns->workspace_id);
		if (check_class(h, ns) < 0)
			return -1;
		if (h->verbose)
			print_status_diff(h->has[k] ? &h->st[k] : NULL, ns);
		h->st[k] = *ns;
		h->has[k] = 1;
	}
	return 0;
}

static int apply_records(struct harness *h, const struct plan_output *out)
{
	struct instance_record *ir = NULL;

	if (out->ninstances) {
		ir = malloc(out->ninstances * sizeof(*ir));
		assert_non_null(ir);
		memcpy(ir, out->instances, out->ninstances * sizeof(*ir));
	}
	free(h->irecs);
	h->irecs = ir;
	h->nirecs = out->ninstances;
	h->nprecs = out->npool_records < NPOOLS ? out->npool_records : NPOOLS;
	memcpy(h->precs, out->pool_records, h->nprecs * sizeof(*h->precs));
	return 0;
}

static size_t live_containers(const struct harness *h, int64_t ws, struct sim_container_info *ci,
			      size_t max)
{
	struct sim_container_info all[8];
	size_t n = sim_containers_of(h->w, ws, all, 8), i, k = 0;

	if (n > 8)
		n = 8;
	for (i = 0; i < n; i++)
		if (all[i].lifecycle == LC_PENDING || all[i].lifecycle == LC_IN_SERVICE) {
			if (k < max)
				ci[k] = all[i];
			k++;
		}
	return k;
}

static int delete_row(struct harness *h, int64_t id)
{
	int k = ws_index(h, id);

	if (k < 0)
		return violation(h, "delete row of unknown workspace %lld", (long long)id);
	if (!h->ws[k].deletion_requested_at)
		return violation(h, "delete row of workspace %lld that was not marked", (long long)id);
	if (live_containers(h, id, NULL, 0))
		return violation(h, "delete row of workspace %lld while its container lives", (long long)id);
	vlog(h, "  row of %s deleted\n", h->ws[k].name);
	if (h->ndeleted < sizeof(h->deleted) / sizeof(h->deleted[0]))
		h->deleted[h->ndeleted++] = id;
	h->nws--;
	memmove(&h->ws[k], &h->ws[k + 1], (h->nws - (size_t)k) * sizeof(h->ws[0]));
	memmove(&h->st[k], &h->st[k + 1], (h->nws - (size_t)k) * sizeof(h->st[0]));
	memmove(&h->has[k], &h->has[k + 1], (h->nws - (size_t)k) * sizeof(h->has[0]));
	return 0;
}

static void note_destructive(struct harness *h, const struct plan_output *out,
			     const struct exec_report *r)
{
	size_t i;

	for (i = 0; i < out->nactions; i++) {
		int p = pool_of_action(h, &out->actions[i]);

		if (p < 0 || !action_is_destructive(out->actions[i].type) ||
		    r->results[i].outcome != EXEC_OK || h->ndestr[p] >= 1024)
			continue;
		h->launch_timeouts += !strcmp(out->actions[i].reason, "LaunchTimedOut");
		h->destr_at[p][h->ndestr[p]++] = sim_now(h->w);
	}
}

/* ---- world checks: invariants 1, 2, 4, 5 ------------------------------------------------ */

static int should_run_id(const struct harness *h, int64_t id)
{
	int k = ws_index(h, id);

	return k >= 0 && should_run(&h->ws[k]);
}

static int check_world(struct harness *h)
{
	const struct sim_term_record *terms;
	const struct sim_stop_record *stops;
	size_t i, nt, ns;

	for (i = 0; i < h->nws; i++)
		if (live_containers(h, h->ws[i].id, NULL, 0) > 1)
			return violation(h, "invariant 1: workspace %s has %zu containers", h->ws[i].name,
				    live_containers(h, h->ws[i].id, NULL, 0));
	nt = sim_term_log(h->w, &terms);
	for (i = h->terms_seen; i < nt; i++) {
		const struct sim_term_record *t = &terms[i];

		vlog(h, "  world: %s terminating (%s)%s\n", t->instance_id,
		     sim_term_cause_name(t->cause), t->workspace_id ? " holding a container" : "");
		if (i == 0 || strcmp(terms[i - 1].instance_id, t->instance_id)) {
			h->health_idle += t->cause == SIM_TERM_HEALTH;
			h->deaths += t->cause == SIM_TERM_DEATH;
		}
		if (!t->workspace_id || !should_run_id(h, t->workspace_id))
			continue;
		if (t->cause == SIM_TERM_HEALTH)
			h->health_replacements++;
		else if (t->cause != SIM_TERM_DEATH)
			return violation(h, "invariant 2: %s terminated (%s) holding workspace %lld "
				    "that should run", t->instance_id, sim_term_cause_name(t->cause),
				    (long long)t->workspace_id);
	}
	h->terms_seen = nt;
	ns = sim_stop_log(h->w, &stops);
	for (i = h->stops_seen; i < ns; i++)
		if (!stops[i].synced && !stops[i].restore_failed)
			return violation(h, "invariant 4: %s of workspace %lld on %s without a sync",
				    stops[i].removed ? "remove" : "stop",
				    (long long)stops[i].workspace_id, stops[i].instance_id);
	h->stops_seen = ns;
	for (i = 0; i < sim_instance_count(h->w); i++) {
		struct sim_instance_info info;

		sim_instance_get(h->w, i, &info);
		if (info.max_epoch > h->epoch)
			return violation(h, "invariant 5: agent %s saw epoch %lld above the leader's %lld",
				    info.id, (long long)info.max_epoch, (long long)h->epoch);
	}
	return 0;
}

/* ---- one pass --------------------------------------------------------------------------- */

static void print_plan(struct harness *h, const struct plan_output *out, const struct exec_report *r)
{
	size_t i;

	if (!h->verbose)
		return;
	for (i = 0; !r && i < out->ndrift; i++)
		printf("  drift %s %s %s: desired %s, observed %s, remedy %s\n",
		       out->drift[i].subject, drift_class_name(out->drift[i].cls),
		       out->drift[i].reason, out->drift[i].desired, out->drift[i].observed,
		       out->drift[i].remedy);
	for (i = 0; i < out->nactions; i++)
		printf("  act %-18s %-28s %s %s %s\n", action_type_name(out->actions[i].type),
		       out->actions[i].key, out->actions[i].reason,
		       r ? exec_outcome_name(r->results[i].outcome) : "planned",
		       r ? r->results[i].msg : "");
	for (i = 0; r && i < out->nevents; i++)
		printf("  event ws=%lld %s %s -> %s %s\n", (long long)out->events[i].workspace_id,
		       out->events[i].type, ws_phase_name(out->events[i].from),
		       ws_phase_name(out->events[i].to), out->events[i].reason);
}

/* Verbose replay: the world as it is (instances and their containers). */
static void print_world(struct harness *h)
{
	struct sim_container_info ci[SIM_CONTAINERS_MAX];
	size_t i, j, n;

	if (!h->verbose)
		return;
	for (i = 0; i < sim_instance_count(h->w); i++) {
		struct sim_instance_info info;

		sim_instance_get(h->w, i, &info);
		if (info.lifecycle == LC_TERMINATED)
			continue;
		printf("  world: %s %s %s%s%s", info.id, info.group,
		       inst_lifecycle_name(info.lifecycle), info.protected_from_scale_in ?
		       " protected" : "", info.agent_up ? "" : " agent-down");
		n = sim_containers_on(h->w, info.id, ci, SIM_CONTAINERS_MAX);
		for (j = 0; j < n && j < SIM_CONTAINERS_MAX; j++)
			printf(" [ws %lld %s%s%s]", (long long)ci[j].workspace_id,
			       container_state_name(ci[j].state), ci[j].ready ? " ready" : "",
			       ci[j].restore_failed ? " restore-failed" : "");
		printf("\n");
	}
}

/*
 * Invariant 6 after the executor: every mutation the world took went through
 * a checked call (so it was journaled first), and every entry journaled as
 * pending was closed as done, unless fencing stopped the pass.
 */
static int check_journal(struct harness *h, unsigned long m0, unsigned long calls0,
			 const struct exec_report *r)
{
	unsigned long muts = sim_mutations(h->w) - m0, calls = h->mut_calls - calls0;
	size_t i;

	if (muts > calls)
		return violation(h, "invariant 6: the world took %lu mutations, the checked drivers "
				 "saw %lu calls", muts, calls);
	for (i = 0; !r->fenced && i < h->njlog; i++)
		if (h->jlog[i].open)
			return violation(h, "invariant 6: %s journaled pending, never done",
					 h->jlog[i].key);
	return 0;
}

/*
 * Invariants 7 and 8, "unknown is not absent": the pass just recorded,
 * planned again at the same time on the same desired state and records but
 * with less observed - no group listing (a partial answer), or nothing at
 * all (every describe failed, no agent answered) - must act on nothing and
 * change no phase. Whatever it would change could only come from missing
 * evidence.
 */
static int check_blind(struct harness *h, int64_t now, uint64_t seed,
		       const struct observation *o, int keep_agents)
{
	struct plan_pool_obs obs[NPOOLS];
	struct plan_output out;
	struct plan_input in;
	struct err e = ERR_INIT;
	size_t i;
	int p, rc = 0;

	memset(obs, 0, sizeof(obs));
	for (p = 0; p < NPOOLS; p++) {
		if (keep_agents)
			obs[p] = o->obs[p];
		obs[p].pool_id = h->pools[p].id;
		obs[p].group = NULL;
	}
	memset(&in, 0, sizeof(in));
	in.now = now;
	in.seed = seed;
	in.cfg = &h->pcfg;
	in.pools = h->pools;
	in.npools = NPOOLS;
	in.pool_records = h->precs;
	in.npool_records = h->nprecs;
	in.workspaces = h->ws;
	in.nworkspaces = h->nws;
	in.status = h->st;
	in.has_status = h->has;
	in.obs = obs;
	in.instances = h->irecs;
	in.ninstances = h->nirecs;
	if (plan_compute(&in, &out, &e) < 0)
		return violation(h, "plan_compute: %s", e.msg);
	h->blind_checks++;
	if (out.nactions)
		rc = violation(h, "invariant 7: with %s the plan still acts: %s",
			       keep_agents ? "no group listing" : "nothing observed",
			       out.actions[0].key);
	for (i = 0; !rc && i < out.nchanges; i++) {
		const struct workspace_status *ns = &out.changes[i].status;
		int k = ws_index(h, ns->workspace_id);

		if (k >= 0 && h->has[k] && !strcmp(h->st[k].instance_id, ns->instance_id) &&
		    strcmp(h->st[k].address, ns->address))
			rc = violation(h, "invariant 7: with %s workspace %lld on %s has address "
				       "'%s', was '%s'", keep_agents ? "no group listing" :
				       "nothing observed", (long long)ns->workspace_id,
				       ns->instance_id, ns->address, h->st[k].address);
	}
	for (i = 0; !rc && i < out.nevents; i++)
		if (out.events[i].from != out.events[i].to)
			rc = violation(h, "invariant 8: with %s workspace %lld moves %s -> %s (%s)",
				       keep_agents ? "no group listing" : "nothing observed",
				       (long long)out.events[i].workspace_id,
				       ws_phase_name(out.events[i].from),
				       ws_phase_name(out.events[i].to), out.events[i].reason);
	plan_output_release(&out);
	return rc;
}

/*
 * Run one pass with the given epoch. A stale pass must change nothing at all.
 * With replay, the executor runs the plan twice, as a leader that crashed
 * after acting and before recording would have it replayed (invariant 6).
 */
static int run_pass(struct harness *h, int64_t epoch, int replay, struct pass_stats *ps)
{
	struct observation o;
	struct plan_input in;
	struct plan_output out;
	struct exec_report r;
	struct journal j = { h, epoch, 0, 0 };
	struct exec_journal ej = { &j, j_pending, j_done, NULL };
	struct exec_config ec = { epoch, h->max_mutations, NULL };
	struct err e = ERR_INIT;
	unsigned long m0 = sim_mutations(h->w), calls0 = h->mut_calls;
	int stale = epoch < h->epoch, rc = 0, p;
	size_t i;

	memset(&o, 0, sizeof(o));
	memset(ps, 0, sizeof(*ps));
	h->njlog = 0;   /* a journal entry counts for the pass that wrote it only */
	h->pass_epoch = epoch;
	print_world(h);
	plan_output_init(&out);
	exec_report_init(&r);
	for (p = 0; p < NPOOLS; p++)
		observe_pool(h, p, epoch, &o);
	if (o.fenced && !stale)
		rc = violation(h, "invariant 5: the current leader (epoch %lld) was refused",
			  (long long)epoch);
	memset(&in, 0, sizeof(in));
	in.now = sim_now(h->w);
	in.seed = h->seed * 1000003u + (uint64_t)h->pass;
	in.cfg = &h->pcfg;
	in.pools = h->pools;
	in.npools = NPOOLS;
	in.pool_records = h->precs;
	in.npool_records = h->nprecs;
	in.workspaces = h->ws;
	in.nworkspaces = h->nws;
	in.status = h->st;
	in.has_status = h->has;
	in.obs = o.obs;
	in.instances = h->irecs;
	in.ninstances = h->nirecs;
	if (!rc && plan_compute(&in, &out, &e) < 0)
		rc = violation(h, "plan_compute: %s", e.msg);
	if (!rc && h->verbose)
		print_plan(h, &out, NULL);
	if (!rc && !stale)
		rc = check_plan(h, &o, &out);
	if (!rc && exec_run(&ec, h->cloud, h->agents, &ej, out.actions, out.nactions, &r, &e) ==
		   SP_ENOMEM)
		rc = violation(h, "exec_run: %s", e.msg);
	if (!rc)
		print_plan(h, &out, &r);
	if (!rc && replay && !stale) {
		vlog(h, "  crash before record: the plan is replayed\n");
		if (exec_run(&ec, h->cloud, h->agents, &ej, out.actions, out.nactions, &r, &e) ==
		    SP_ENOMEM)
			rc = violation(h, "exec_run: %s", e.msg);
		if (!rc)
			print_plan(h, &out, &r);
		h->replays++;
	}
	if (!rc)
		rc = check_journal(h, m0, calls0, &r);
	if (!rc && stale) {
		if (sim_mutations(h->w) != m0 || j.pending)
			rc = violation(h, "invariant 5: a stale leader (epoch %lld < %lld) changed the world",
				  (long long)epoch, (long long)h->epoch);
		goto out;   /* a stale leader's status writes fail: nothing is recorded */
	}
	if (!rc)
		note_destructive(h, &out, &r);
	if (!rc)
		rc = apply_changes(h, &out);
	if (!rc)
		rc = apply_records(h, &out);
	for (i = 0; !rc && i < out.nactions; i++)
		if (out.actions[i].type == ACT_DELETE_ROW &&
		    r.results[i].outcome == EXEC_HANDED_OFF)
			rc = delete_row(h, out.actions[i].workspace_id);
	if (!rc)
		rc = check_world(h);
	if (!rc)
		rc = check_blind(h, in.now, in.seed, &o, 1);
	if (!rc)
		rc = check_blind(h, in.now, in.seed, &o, 0);
	ps->nactions = out.nactions;
	ps->nchanges = out.nchanges;
	ps->mutations = sim_mutations(h->w) - m0;
out:
	exec_report_release(&r);
	plan_output_release(&out);
	observation_release(&o);
	return rc;
}

/* ---- convergence ------------------------------------------------------------------------ */

/* Active instances of pool p that hold a container (of any workspace, in any state). */
static int busy_instances(struct harness *h, int p)
{
	size_t i;
	int n = 0;

	for (i = 0; i < sim_instance_count(h->w); i++) {
		struct sim_instance_info info;

		sim_instance_get(h->w, i, &info);
		if (strcmp(info.group, h->pools[p].asg_name) || info.ncontainers == 0 ||
		    (info.lifecycle != LC_PENDING && info.lifecycle != LC_IN_SERVICE))
			continue;
		n++;
	}
	return n;
}

/*
 * Settled capacity: the computed value; or above it only because running
 * workspaces are spread over more instances than they need (the loop does
 * not move a running workspace to pack them), and then every instance is
 * busy; or, when more instances are busy than the pool's max allows (the max
 * was lowered under running workspaces), anything from max up to the busy
 * count (protected instances cannot be scaled in).
 */
static int capacity_settled(struct harness *h, int p, int desired)
{
	int busy = busy_instances(h, p), want = computed_capacity(h, p);

	if (desired == want || (desired > want && desired == busy))
		return 1;
	return busy > h->pools[p].max_instances && desired >= h->pools[p].max_instances &&
	       desired <= busy;
}

/* Status says what the world is: final phase, placement where the container is. */
static int status_settled(const struct harness *h, size_t i, const char *where)
{
	const struct workspace_status *st = &h->st[i];
	enum ws_phase want = h->ws[i].state == WS_STATE_RUNNING ? PHASE_READY : PHASE_STOPPED;

	if (!h->has[i] || st->phase != want)
		return 0;
	return st->instance_id[0] == '\0' || !strcmp(st->instance_id, where);
}

static int world_matches(struct harness *h, char *why, size_t whysz)
{
	struct sim_container_info ci[4];
	size_t i, n;
	int p, desired, active;

	for (i = 0; i < h->nws; i++) {
		const struct workspace_spec *w = &h->ws[i];

		n = live_containers(h, w->id, ci, 4);
		if (w->deletion_requested_at) {
			snprintf(why, whysz, "%s: deletion not finalized", w->name);
			return 0;
		}
		if (w->state == WS_STATE_RUNNING &&
		    (n != 1 || ci[0].state != CS_RUNNING || !ci[0].ready ||
		     ci[0].lifecycle != LC_IN_SERVICE)) {
			snprintf(why, whysz, "%s: not running and ready (%zu containers)", w->name, n);
			return 0;
		}
		if (w->state == WS_STATE_STOPPED && n > 0 &&
		    (ci[0].state == CS_RUNNING || ci[0].state == CS_CREATED)) {
			snprintf(why, whysz, "%s: still running", w->name);
			return 0;
		}
		if (!status_settled(h, i, n ? ci[0].instance_id : "")) {
			snprintf(why, whysz, "%s: status %s on '%s' not settled", w->name,
				 h->has[i] ? ws_phase_name(h->st[i].phase) : "none", h->st[i].instance_id);
			return 0;
		}
	}
	for (i = 0; i < sim_instance_count(h->w); i++) {   /* nothing in flight */
		struct sim_instance_info info;

		sim_instance_get(h->w, i, &info);
		if (info.lifecycle != LC_TERMINATED && (info.lifecycle != LC_IN_SERVICE ||
							!info.agent_up)) {
			snprintf(why, whysz, "%s: %s%s", info.id, inst_lifecycle_name(info.lifecycle),
				 info.agent_up ? "" : ", agent down");
			return 0;
		}
	}
	for (i = 0; i < h->ndeleted; i++)
		if (live_containers(h, h->deleted[i], NULL, 0)) {
			snprintf(why, whysz, "deleted workspace %lld: container left",
				 (long long)h->deleted[i]);
			return 0;
		}
	for (p = 0; p < NPOOLS; p++) {
		sim_group_sizes(h->w, h->pools[p].asg_name, NULL, NULL, &desired, &active);
		if (!capacity_settled(h, p, desired) || active != desired) {
			snprintf(why, whysz, "%s: desired %d active %d computed %d", h->pools[p].name,
				 desired, active, computed_capacity(h, p));
			return 0;
		}
	}
	return 1;
}

/*
 * The operator clears safety stops the way spinctl clear-safety-stop and the
 * web UI do, with a request in the pool row (a moment after the pass that
 * stopped it), and, having looked, approves the change that tripped them by
 * raising the destructive budget for the rest of the run. The planner lifts
 * the stop on its next pass.
 */
static void operator_clears(struct harness *h)
{
	size_t i;
	int p;

	for (i = 0; i < h->nprecs; i++) {
		if (!h->precs[i].safety_stopped)
			continue;
		p = pool_index_by_id(h, h->precs[i].pool_id);
		if (p < 0 || h->pools[p].safety_clear_requested_at > h->precs[i].stopped_at)
			continue;                        /* asked already, not yet seen */
		vlog(h, "  operator: requests a clear of the safety stop of pool %s, budget 1000\n",
		     h->pools[p].name);
		h->pools[p].safety_clear_requested_at = sim_now(h->w) + 1;
		h->pcfg.destructive_budget = 1000;
		h->approvals++;
	}
}

/* Passes after the faults stop until converged; -1 on a violation or no convergence. */
static int converge(struct harness *h)
{
	struct pass_stats ps;
	char why[256] = "";
	int k, stable;
	size_t p;

	sim_faults_off(h->w);
	operator_clears(h);
	for (p = 0; p < NPOOLS; p++)        /* and lifts pauses */
		if (h->pools[p].paused_until) {
			h->pools[p].paused_until = 0;
			h->pools[p].generation++;
		}
	for (k = 1; k <= CONVERGE_BOUND; k++) {
		h->pass++;
		vlog(h, "pass %d (converging) t=%llds\n", h->pass,
		     (long long)((sim_now(h->w) - 1767225600000LL) / 1000));
		if (run_pass(h, h->epoch, 0, &ps) < 0)
			return -1;
		if (ps.nactions == 0 && ps.nchanges == 0 && world_matches(h, why, sizeof(why)))
			break;
		operator_clears(h);
		sim_tick(h->w, PASS_MS);
		if (check_world(h) < 0)
			return -1;
	}
	for (p = 0; k <= CONVERGE_BOUND && p < h->nws; p++) {
		struct sim_container_info ci[2];
		int64_t v;

		if (h->ws[p].state == WS_STATE_RUNNING && sim_bucket_get(h->w, h->ws[p].id, &v) &&
		    live_containers(h, h->ws[p].id, ci, 2) == 1 && ci[0].files < v)
			return violation(h, "invariant 4: %s runs files version %lld, older than its "
					 "snapshot %lld", h->ws[p].name, (long long)ci[0].files,
					 (long long)v);
	}
	for (p = 0; k <= CONVERGE_BOUND && p < NPOOLS; p++) {
		int desired;

		sim_group_sizes(h->w, h->pools[p].asg_name, NULL, NULL, &desired, NULL);
		if (desired > computed_capacity(h, (int)p))
			h->fragmented = 1;
	}
	if (k > CONVERGE_BOUND)
		return violation(h, "no convergence within %d passes after faults stopped: %s",
			    CONVERGE_BOUND, why[0] ? why : "plan still acting");
	for (stable = 0; stable < STABLE_PASSES; stable++) {
		sim_tick(h->w, PASS_MS);
		h->pass++;
		if (run_pass(h, h->epoch, 0, &ps) < 0)
			return -1;
		if (ps.nactions || ps.nchanges || ps.mutations)
			return violation(h, "invariant 8: converged pass planned %zu actions, %zu status "
				    "changes, %lu mutations", ps.nactions, ps.nchanges, ps.mutations);
	}
	return k;
}

/* One seed: faults and changes for FAULT_PASSES, then convergence. Passes to converge or -1. */
static int run_seed(uint64_t seed, int verbose, struct harness *h)
{
	struct pass_stats ps;
	int k, rc = 0;

	if (harness_open(h, seed, verbose) < 0)
		return violation(h, "could not build the world");
	vlog(h, "seed %llu, fault mix %s, %s timers, %d mutations a pass\n",
	     (unsigned long long)seed, h->mix->name, h->fast ? "short" : "default",
	     h->max_mutations);
	for (k = 0; k < FAULT_PASSES && !rc; k++) {
		h->pass++;
		vlog(h, "pass %d t=%llds epoch %lld\n", h->pass,
		     (long long)((sim_now(h->w) - 1767225600000LL) / 1000), (long long)h->epoch);
		random_change(h);
		if (h_unit(h) < 0.03) {
			h->epoch++;   /* a new leader */
			vlog(h, "  leader change: epoch %lld\n", (long long)h->epoch);
		}
		if (h->epoch > 1 && h_unit(h) < 0.03) {
			h->stale_passes++;
			vlog(h, "  stale leader pass (epoch %lld)\n", (long long)h->epoch - 1);
			rc = run_pass(h, h->epoch - 1, 0, &ps);
		}
		if (!rc)
			rc = run_pass(h, h->epoch, h_unit(h) < 0.03, &ps);
		if (!rc) {
			sim_tick(h->w, PASS_MS);
			rc = check_world(h);
		}
	}
	if (rc)
		return -1;
	return converge(h);
}

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s)
		return dflt;
	v = strtoul(s, &end, 10);
	return *end ? dflt : v;
}

static void test_simulation__seeded_runs_keep_invariants_and_converge(void **state)
{
	unsigned long nseeds = env_ulong("SPINUP_SIM_SEEDS", 1000);
	const char *one = getenv("SPINUP_SIM_SEED");
	unsigned long first = 1, s, failed = 0;
	int max_conv = 0, n_per_mix[NMIXES] = { 0 }, health = 0, stale = 0, replays = 0;
	int fragmented = 0, approvals = 0, health_idle = 0, deaths = 0, launch_timeouts = 0;
	int lost = 0, blind = 0, fresh = 0;
	size_t m;

	(void)state;
	if (one && *one) {
		first = env_ulong("SPINUP_SIM_SEED", 1);
		nseeds = 1;
	}
	for (s = first; s < first + nseeds; s++) {
		struct harness h;
		int k = run_seed(s, one && *one, &h);

		if (k < 0) {
			failed++;
			printf("seed %lu (mix %s) FAILED: %s\n  replay: SPINUP_SIM_SEED=%lu "
			       "build/tests/test_simulation\n", s, h.mix->name, h.failure, s);
		} else if (k > max_conv) {
			max_conv = k;
		}
		n_per_mix[s % NMIXES]++;
		health += h.health_replacements;
		fragmented += h.fragmented > 0;
		approvals += h.approvals;
		health_idle += h.health_idle;
		deaths += h.deaths;
		launch_timeouts += h.launch_timeouts;
		lost += h.lost_findings;
		blind += h.blind_checks;
		fresh += h.fresh_actions;
		stale += h.stale_passes;
		replays += h.replays;
		harness_close(&h);
	}
	printf("simulation: %lu seeds x %d passes (half with short planner timers, a third "
	       "with 4 mutations a pass), fault mixes", nseeds, FAULT_PASSES);
	for (m = 0; m < NMIXES; m++)
		printf(" %s=%d", mixes[m].name, n_per_mix[m]);
	printf("; instance deaths %d, unhealthy replacements %d (containers of running "
	       "workspaces lost with them %d), launches timed out %d, InstanceLost findings %d",
	       deaths, health_idle, health, launch_timeouts, lost);
	printf("; passes planned again with less observed %d, actions of fresh changes (all "
	       "planned first) %d", blind, fresh);
	printf("; stale-leader passes %d, replays %d, safety stops "
	       "cleared by the operator %d, seeds ending with workspaces spread over more "
	       "instances than needed %d; max passes to converge %d (bound %d); failed %lu\n", stale,
	       replays, approvals, fragmented, max_conv, CONVERGE_BOUND, failed);
	assert_int_equal(failed, 0);
}

/* What a run did, as text: equal texts for equal seeds is what makes a replay a replay. */
static void run_digest(uint64_t seed, struct strbuf *out)
{
	const struct sim_term_record *terms;
	const struct sim_stop_record *stops;
	struct harness h;
	size_t i;
	int k = run_seed(seed, 0, &h);

	strbuf_addf(out, "seed %llu passes %d conv %d mutations %lu instances %zu terms %zu "
		    "stops %zu ws %zu:", (unsigned long long)seed, h.pass, k, sim_mutations(h.w),
		    sim_instance_count(h.w), sim_term_log(h.w, &terms), sim_stop_log(h.w, &stops),
		    h.nws);
	for (i = 0; i < h.nws; i++)
		strbuf_addf(out, " %lld/%s/%s", (long long)h.ws[i].id, ws_phase_name(h.st[i].phase),
			    h.st[i].instance_id);
	strbuf_addch(out, '\n');
	harness_close(&h);
}

static void test_simulation__same_seed_same_run(void **state)
{
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	uint64_t seed;

	(void)state;
	for (seed = 1; seed <= 24; seed++) {
		run_digest(seed, &a);
		run_digest(seed, &b);
	}
	assert_true(a.len > 24 * 40);
	assert_string_equal(a.buf, b.buf);
	strbuf_release(&a);
	strbuf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simulation__same_seed_same_run),
		cmocka_unit_test(test_simulation__seeded_runs_keep_invariants_and_converge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
