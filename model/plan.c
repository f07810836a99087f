/*
 * plan.c - the planner's driver: builds the pass context (sorted pools,
 * instances, containers, workspaces), then plans each pool: workspaces
 * (plan_ws.c), instances, capacity, and the destructive budget.
 *
 * Action order in the output, per pool: workspace actions by workspace id,
 * then instance actions by instance id (orphan removals, protection, health,
 * termination), then the pool's capacity; at the end the actions of
 * workspaces with a fresh change move ahead of all others (fresh_first).
 * Changes and events follow the workspace order, drift the order in which
 * it is found, records by id.
 */
#include "plan_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* ---- sorting and lookup ---------------------------------------------- */

struct wkey {
	size_t pool;     /* pool position; npools when the pool does not exist */
	int64_t id;
	size_t idx;
};

static int cmp_wkey(const void *a, const void *b)
{
	const struct wkey *x = a, *y = b;

	if (x->pool != y->pool)
		return x->pool < y->pool ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_ppool(const void *a, const void *b)
{
	const struct ppool *x = a, *y = b;

	if (x->spec->id != y->spec->id)
		return x->spec->id < y->spec->id ? -1 : 1;
	return strcmp(x->spec->name, y->spec->name);
}

static int cmp_pinst(const void *a, const void *b)
{
	const struct pinst *x = a, *y = b;

	if (x->pool != y->pool)
		return x->pool < y->pool ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int cmp_pcont(const void *a, const void *b)
{
	const struct pcont *x = a, *y = b;
	int r;

	if (x->ws != y->ws)
		return x->ws < y->ws ? -1 : 1;
	if (x->inst != y->inst)
		return x->inst < y->inst ? -1 : 1;
	r = strcmp(x->c->name, y->c->name);
	return r ? r : (x->c < y->c ? -1 : x->c > y->c);
}

static int cmp_agent_ptr(const void *a, const void *b)
{
	const struct obs_agent *x = *(const struct obs_agent *const *)a;
	const struct obs_agent *y = *(const struct obs_agent *const *)b;

	return strcmp(x->instance_id, y->instance_id);
}

static int cmp_rec_ptr(const void *a, const void *b)
{
	const struct instance_record *x = *(const struct instance_record *const *)a;
	const struct instance_record *y = *(const struct instance_record *const *)b;

	return strcmp(x->instance_id, y->instance_id);
}

/* Sort helper for inst_by_id: qsort has no context, so sort (id, index) pairs. */
struct idref {
	const char *id;
	size_t idx;
};

static int cmp_idref(const void *a, const void *b)
{
	const struct idref *x = a, *y = b;
	int r = strcmp(x->id, y->id);

	return r ? r : (x->idx < y->idx ? -1 : x->idx > y->idx);
}

struct pinst *plan_find_inst(struct plan_ctx *x, const char *id)
{
	size_t lo = 0, hi = x->ninsts;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(x->insts[x->inst_by_id[mid]].id, id);

		if (r == 0)
			return &x->insts[x->inst_by_id[mid]];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static const struct obs_agent *find_agent(const struct obs_agent **v, size_t n, const char *id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(v[mid]->instance_id, id);

		if (r == 0)
			return v[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static const struct instance_record *find_rec(const struct instance_record **v, size_t n,
					      const char *id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(v[mid]->instance_id, id);

		if (r == 0)
			return v[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- actions --------------------------------------------------------- */

static int needs_agent(enum action_type t)
{
	return t == ACT_ENSURE_CONTAINER || t == ACT_SYNC || t == ACT_STOP_CONTAINER ||
	       t == ACT_REMOVE_CONTAINER;
}

static void action_key(struct action *a, const struct container_req *req)
{
	switch (a->type) {
	case ACT_SET_CAPACITY:
		snprintf(a->key, sizeof(a->key), "capacity/%lld/%d", (long long)a->pool_id,
			 a->capacity);
		break;
	case ACT_PROTECT:
		snprintf(a->key, sizeof(a->key), "protect/%s/%d", a->instance_id, a->flag);
		break;
	case ACT_TERMINATE:
	case ACT_SET_UNHEALTHY:
		snprintf(a->key, sizeof(a->key), "%s/%s", action_type_name(a->type),
			 a->instance_id);
		break;
	case ACT_DELETE_ROW:
		snprintf(a->key, sizeof(a->key), "delete/%lld", (long long)a->workspace_id);
		break;
	default:
		snprintf(a->key, sizeof(a->key), "%s/%lld/%s%s", action_type_name(a->type),
			 (long long)a->workspace_id, a->instance_id,
			 req && req->expect_snapshot ? "/s" : "");
		break;
	}
}

/*
 * Emit one action unless it is held. Returns 1 when emitted, 0 when held
 * (not acting, a destructive action without a known group, or an agent we
 * have no address for), SP_ENOMEM.
 */
int plan_act(struct plan_ctx *x, struct ppool *p, int acting, enum action_type t, int64_t ws,
	     const struct pinst *in, int flag, const struct container_req *req,
	     const char *reason)
{
	struct action *a;

	if (!acting || (action_is_destructive(t) && !p->group))
		return 0;
	if (needs_agent(t) && (!in || !in->oi || !in->oi->private_ip[0]))
		return 0;
	a = plan_push_action(x->out);
	if (!a)
		return SP_ENOMEM;
	a->type = t;
	a->pool_id = p->spec->id;
	str_copy(a->asg_name, sizeof(a->asg_name), p->spec->asg_name);
	a->workspace_id = ws;
	if (in)
		str_copy(a->instance_id, sizeof(a->instance_id), in->id);
	if (needs_agent(t)) {
		str_copy(a->address, sizeof(a->address), in->oi->private_ip);
		a->port = p->spec->agent_port;
	}
	a->flag = flag;
	if (req)
		a->req = *req;
	str_copy(a->reason, sizeof(a->reason), reason);
	action_key(a, req);
	return 1;
}

static int set_capacity(struct plan_ctx *x, struct ppool *p, int cap, const char *reason)
{
	int rc = plan_act(x, p, p->acting, ACT_SET_CAPACITY, 0, NULL, 0, NULL, reason);

	if (rc == 1)
		x->out->actions[x->out->nactions - 1].capacity = cap;
	if (rc == 1)
		action_key(&x->out->actions[x->out->nactions - 1], NULL);
	return rc;
}

/* ---- context --------------------------------------------------------- */

static void ctx_release(struct plan_ctx *x)
{
	free(x->pools);
	free(x->insts);
	free(x->inst_by_id);
	free(x->conts);
	free(x->ws);
	free(x->ws_pool);
	free(x->ws_ids);
}


static int build_pools(struct plan_ctx *x)
{
	const struct plan_input *in = x->in;
	size_t i, j;

	x->pools = calloc(in->npools ? in->npools : 1, sizeof(*x->pools));
	if (!x->pools)
		return SP_ENOMEM;
	for (i = 0; i < in->npools; i++) {
		struct ppool *p = &x->pools[i];

		p->spec = &in->pools[i];
		p->obs = in->obs ? &in->obs[i] : NULL;
		for (j = 0; j < in->npool_records; j++)
			if (in->pool_records[j].pool_id == p->spec->id)
				p->rec_in = &in->pool_records[j];
	}
	x->npools = in->npools;
	qsort(x->pools, x->npools, sizeof(*x->pools), cmp_ppool);
	return 0;
}

/* Workspaces by pool position then id; a workspace finds its pool by name. */
struct nameref {
	const char *name;
	size_t pos;
};

static int cmp_nameref(const void *a, const void *b)
{
	const struct nameref *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	return r ? r : (x->pos < y->pos ? -1 : x->pos > y->pos);
}

/* Position of the first pool (in pool order) with this name, or -1. */
static int pool_position(const struct nameref *names, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(names[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && !strcmp(names[lo].name, name) ? (int)names[lo].pos : -1;
}

static int build_workspaces(struct plan_ctx *x)
{
	const struct plan_input *in = x->in;
	struct nameref *names = NULL;
	struct wkey *keys = NULL;
	size_t i, n = in->nworkspaces, k;
	int rc = SP_ENOMEM;

	keys = calloc(n ? n : 1, sizeof(*keys));
	names = calloc(x->npools ? x->npools : 1, sizeof(*names));
	x->ws = calloc(n ? n : 1, sizeof(*x->ws));
	x->ws_pool = calloc(n ? n : 1, sizeof(*x->ws_pool));
	x->ws_ids = calloc(n ? n : 1, sizeof(*x->ws_ids));
	if (!keys || !names || !x->ws || !x->ws_pool || !x->ws_ids)
		goto out;
	for (i = 0; i < x->npools; i++) {
		names[i].name = x->pools[i].spec->name;
		names[i].pos = i;
	}
	qsort(names, x->npools, sizeof(*names), cmp_nameref);
	for (i = 0; i < n; i++) {
		int pos = pool_position(names, x->npools, in->workspaces[i].pool);

		keys[i].pool = pos < 0 ? x->npools : (size_t)pos;
		keys[i].id = in->workspaces[i].id;
		keys[i].idx = i;
		x->ws_ids[i] = in->workspaces[i].id;
	}
	qsort(keys, n, sizeof(*keys), cmp_wkey);
	qsort(x->ws_ids, n, sizeof(*x->ws_ids), cmp_i64);
	x->nws = x->nws_ids = n;
	for (i = 0; i < x->npools; i++)
		x->pools[i].wlo = x->pools[i].whi = 0;
	for (k = 0; k < n; k++) {
		x->ws[k] = keys[k].idx;
		x->ws_pool[keys[k].idx] = keys[k].pool < x->npools ? keys[k].pool : SIZE_MAX;
	}
	for (i = 0, k = 0; i < x->npools; i++) {
		x->pools[i].wlo = k;
		while (k < n && keys[k].pool == i)
			k++;
		x->pools[i].whi = k;
	}
	rc = 0;
out:
	free(keys);
	free(names);
	return rc;
}

static struct pinst *add_inst(struct plan_ctx *x, size_t *alloc)
{
	if (x->ninsts == *alloc) {
		size_t na = *alloc ? *alloc * 2 : 64;
		void *p = realloc(x->insts, na * sizeof(*x->insts));

		if (!p)
			return NULL;
		x->insts = p;
		*alloc = na;
	}
	memset(&x->insts[x->ninsts], 0, sizeof(*x->insts));
	return &x->insts[x->ninsts++];
}

static int inst_in_range(const struct plan_ctx *x, size_t lo, size_t hi, const char *id)
{
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(x->insts[mid].id, id);

		if (r == 0)
			return 1;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* The instances of one pool: listed ones (or agents when the group is unknown), then remembered ones. */
static int build_pool_insts(struct plan_ctx *x, size_t pi, size_t *alloc,
			    const struct instance_record **recs, size_t nrecs)
{
	struct ppool *p = &x->pools[pi];
	const struct plan_pool_obs *o = p->obs;
	const struct obs_agent **agents = NULL;
	size_t i, nag = o ? o->nagents : 0, mid;
	struct pinst *t;

	p->ilo = x->ninsts;
	if (o && o->group && o->group->found && o->group->complete)
		p->group = o->group;
	agents = calloc(nag ? nag : 1, sizeof(*agents));
	if (!agents)
		return SP_ENOMEM;
	for (i = 0; i < nag; i++)
		agents[i] = &o->agents[i];
	qsort(agents, nag, sizeof(*agents), cmp_agent_ptr);
	if (p->group) {
		for (i = 0; i < p->group->ninstances; i++) {
			if (!(t = add_inst(x, alloc)))
				goto nomem;
			t->oi = &p->group->instances[i];
			t->id = t->oi->id;
			t->agent = find_agent(agents, nag, t->id);
		}
	} else {
		for (i = 0; i < nag; i++) {
			if (i && !strcmp(agents[i]->instance_id, agents[i - 1]->instance_id))
				continue;
			if (!(t = add_inst(x, alloc)))
				goto nomem;
			t->agent = agents[i];
			t->id = agents[i]->instance_id;
		}
	}
	for (i = p->ilo; i < x->ninsts; i++) {
		x->insts[i].pool = pi;
		x->insts[i].rec_in = find_rec(recs, nrecs, x->insts[i].id);
	}
	if (x->ninsts - p->ilo > 1)
		qsort(x->insts + p->ilo, x->ninsts - p->ilo, sizeof(*x->insts), cmp_pinst);
	mid = x->ninsts;
	for (i = 0; i < nrecs; i++) {
		if (recs[i]->pool_id != p->spec->id ||
		    inst_in_range(x, p->ilo, mid, recs[i]->instance_id))
			continue;
		if (!(t = add_inst(x, alloc)))
			goto nomem;
		t->id = recs[i]->instance_id;
		t->pool = pi;
		t->rec_in = recs[i];
	}
	if (x->ninsts - p->ilo > 1)
		qsort(x->insts + p->ilo, x->ninsts - p->ilo, sizeof(*x->insts), cmp_pinst);
	p->ihi = x->ninsts;
	free(agents);
	return 0;
nomem:
	free(agents);
	return SP_ENOMEM;
}

static int build_insts(struct plan_ctx *x)
{
	const struct plan_input *in = x->in;
	const struct instance_record **recs;
	struct idref *refs = NULL;
	size_t i, alloc = 0;
	int rc = 0;

	recs = calloc(in->ninstances ? in->ninstances : 1, sizeof(*recs));
	if (!recs)
		return SP_ENOMEM;
	for (i = 0; i < in->ninstances; i++)
		recs[i] = &in->instances[i];
	qsort(recs, in->ninstances, sizeof(*recs), cmp_rec_ptr);
	for (i = 0; !rc && i < x->npools; i++)
		rc = build_pool_insts(x, i, &alloc, recs, in->ninstances);
	if (!rc) {
		refs = calloc(x->ninsts ? x->ninsts : 1, sizeof(*refs));
		x->inst_by_id = calloc(x->ninsts ? x->ninsts : 1, sizeof(*x->inst_by_id));
		if (!refs || !x->inst_by_id)
			rc = SP_ENOMEM;
	}
	if (!rc) {
		for (i = 0; i < x->ninsts; i++) {
			refs[i].id = x->insts[i].id;
			refs[i].idx = i;
		}
		qsort(refs, x->ninsts, sizeof(*refs), cmp_idref);
		for (i = 0; i < x->ninsts; i++)
			x->inst_by_id[i] = refs[i].idx;
	}
	free(refs);
	free(recs);
	return rc;
}

static int build_conts(struct plan_ctx *x)
{
	size_t i, j, n = 0;

	for (i = 0; i < x->ninsts; i++)
		if (x->insts[i].agent && x->insts[i].agent->observed)
			n += x->insts[i].agent->ncontainers;
	x->conts = calloc(n ? n : 1, sizeof(*x->conts));
	if (!x->conts)
		return SP_ENOMEM;
	for (i = 0; i < x->ninsts; i++) {
		const struct obs_agent *a = x->insts[i].agent;

		if (!a || !a->observed)
			continue;
		for (j = 0; j < a->ncontainers; j++) {
			struct pcont *c = &x->conts[x->nconts++];

			c->ws = a->containers[j].workspace_id;
			c->inst = i;
			c->c = &a->containers[j];
		}
	}
	qsort(x->conts, x->nconts, sizeof(*x->conts), cmp_pcont);
	return 0;
}

/* ---- instances ------------------------------------------------------- */

/* When it was launched: EC2's launch time, or first sight if earlier or unknown. */
static int64_t inst_launched(const struct pinst *t)
{
	int64_t lt = t->oi ? t->oi->launch_time : 0;

	return lt > 0 && lt < t->rec.first_seen ? lt : t->rec.first_seen;
}

/* Derive this pass's view of one instance and its new record (before workspaces). */
static void inst_prepare(struct plan_ctx *x, struct ppool *p, struct pinst *t)
{
	const struct plan_config *cfg = x->cfg;
	size_t i;

	memset(&t->rec, 0, sizeof(t->rec));
	if (t->rec_in) {
		t->rec = *t->rec_in;
	} else {
		str_copy(t->rec.instance_id, sizeof(t->rec.instance_id), t->id);
		t->rec.first_seen = x->now;
	}
	t->rec.pool_id = p->spec->id;
	t->known = t->agent && t->agent->observed;
	t->healthy = t->known && t->agent->healthy;
	t->used = t->known ? (int)t->agent->ncontainers : 0;
	t->cap = p->spec->slots_per_instance;
	if (t->known && t->agent->capacity > 0 && t->agent->capacity < t->cap)
		t->cap = t->agent->capacity;
	t->active = 0;
	for (i = 0; t->known && i < t->agent->ncontainers; i++)
		t->active += t->agent->containers[i].state == CS_RUNNING ||
			     t->agent->containers[i].state == CS_CREATED;
	t->mark = t->terminate = 0;
	t->grace = t->gone = 0;
	if (!p->group) {
		/* group unknown: nothing is gone, nothing new is learned */
		t->alive = 1;
		t->in_service = t->healthy;
		t->usable = t->healthy && !t->rec.marked_unhealthy;
		return;
	}
	if (!t->oi) {
		/*
		 * Not listed: gone, unless just launched (EC2 may not list it yet).
		 * One we asked to go (marked or terminated) is expected gone.
		 */
		t->alive = t->in_service = t->usable = 0;
		t->grace = t->rec_in && !t->rec.marked_unhealthy &&
			   x->now - t->rec_in->first_seen < cfg->launch_grace_ms;
		t->gone = !t->grace;
		return;
	}
	t->alive = t->oi->lifecycle == LC_PENDING || t->oi->lifecycle == LC_IN_SERVICE;
	t->in_service = t->oi->lifecycle == LC_IN_SERVICE;
	/*
	 * Marked, but the group still calls it healthy and alive: the mark
	 * never took (the call failed or was lost). Forget it; the rules below
	 * mark it again if the agent is still down or the launch still stuck.
	 */
	if (t->rec.marked_unhealthy && t->alive && t->oi->healthy)
		t->rec.marked_unhealthy = 0;
	/*
	 * Listed leaving: expected gone, as if marked, whoever asked (a mark
	 * whose record a crash or a failed report lost; InstanceLost reports
	 * the ones nobody asked for, from the record as it came in).
	 */
	if (!t->alive)
		t->rec.marked_unhealthy = 1;
	if (t->in_service && t->healthy) {
		t->rec.unhealthy_passes = 0;
		t->rec.ever_healthy = 1;
	}
	else if (t->in_service && t->rec.unhealthy_passes < 1000000)
		t->rec.unhealthy_passes++;
	else if (!t->in_service)
		t->rec.unhealthy_passes = 0;
	/*
	 * An agent down for unhealthy_after_passes passes makes its instance
	 * unhealthy; one that never was healthy is given register_timeout_ms
	 * from first sight to come up (a booting instance).
	 */
	t->mark = t->in_service && !t->rec.marked_unhealthy &&
		  t->rec.unhealthy_passes >= cfg->unhealthy_after_passes &&
		  (t->rec.ever_healthy || x->now - t->rec.first_seen >= cfg->register_timeout_ms);
	/*
	 * Listed Pending for launch_timeout_ms since launch: it will not come
	 * up; marked unhealthy so the group replaces it, unless its agent says
	 * it holds containers (then it is not ours to judge by its state).
	 */
	t->stuck = t->oi->lifecycle == LC_PENDING &&
		   x->now - inst_launched(t) >= cfg->launch_timeout_ms;
	if (t->stuck && !t->rec.marked_unhealthy && !(t->known && t->used))
		t->mark = 1;
	t->usable = t->in_service && t->healthy && !t->rec.marked_unhealthy && !t->mark;
}

static int pool_drift(struct plan_ctx *x, struct ppool *p, enum drift_class cls,
		      const char *reason, const char *desired, const char *observed,
		      const char *remedy)
{
	char subject[96];

	snprintf(subject, sizeof(subject), "pool/%s", p->spec->name);
	return plan_add_drift(x->out, subject, 0, p->spec->id, cls, reason, desired, observed,
			      remedy);
}

static int inst_drift(struct plan_ctx *x, struct ppool *p, const struct pinst *t,
		      enum drift_class cls, const char *reason, const char *desired,
		      const char *observed, const char *remedy)
{
	char subject[96];

	snprintf(subject, sizeof(subject), "instance/%s", t->id);
	return plan_add_drift(x->out, subject, 0, p->spec->id, cls, reason, desired, observed,
			      remedy);
}

static void held_remedy(const struct ppool *p, char *buf, size_t n, const char *what)
{
	if (p->acting)
		snprintf(buf, n, "%s", what);
	else
		snprintf(buf, n, "held (%s): %s", p->held ? p->held : "observe-only", what);
}

static int ws_exists(const struct plan_ctx *x, int64_t id)
{
	return id && bsearch(&id, x->ws_ids, x->nws_ids, sizeof(*x->ws_ids), cmp_i64) != NULL;
}

static int cmp_cont_ptr(const void *a, const void *b)
{
	const struct obs_container *x = *(const struct obs_container *const *)a;
	const struct obs_container *y = *(const struct obs_container *const *)b;

	if (x->workspace_id != y->workspace_id)
		return x->workspace_id < y->workspace_id ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Containers on t that no workspace owns: report; ours are removed after the grace. */
static int inst_orphans(struct plan_ctx *x, struct ppool *p, struct pinst *t)
{
	const struct obs_agent *a = t->agent;
	const struct obs_container **v;
	char desired[128], observed[128], remedy[128];
	int any = 0, rc = 0;
	size_t j;

	if (!t->known)
		return 0;
	for (j = 0; j < a->ncontainers; j++)
		if (!ws_exists(x, a->containers[j].workspace_id))
			break;
	if (j == a->ncontainers) {   /* the usual case: every container owned */
		t->rec.orphan_seen = 0;
		return 0;
	}
	v = calloc(a->ncontainers + 1, sizeof(*v));
	if (!v)
		return SP_ENOMEM;
	for (j = 0; j < a->ncontainers; j++)
		v[j] = &a->containers[j];
	qsort(v, a->ncontainers, sizeof(*v), cmp_cont_ptr);
	for (j = 0; !rc && j < a->ncontainers; j++) {
		const struct obs_container *c = v[j];

		if (c->workspace_id && ws_exists(x, c->workspace_id))
			continue;
		snprintf(observed, sizeof(observed), "container %s %s on %s", c->name,
			 container_state_name(c->state), t->id);
		if (!c->workspace_id) {
			rc = inst_drift(x, p, t, DRIFT_UNMANAGED, "ForeignContainer",
					"no container outside spinup", observed,
					"none: not created by spinup, left alone");
			continue;
		}
		any = 1;
		if (!t->rec.orphan_seen)
			t->rec.orphan_seen = x->now;
		snprintf(desired, sizeof(desired), "no workspace %lld",
			 (long long)c->workspace_id);
		if (x->now - t->rec.orphan_seen < x->cfg->orphan_grace_ms) {
			snprintf(remedy, sizeof(remedy), "remove after grace at %lld",
				 (long long)(t->rec.orphan_seen + x->cfg->orphan_grace_ms));
		} else if (c->pending == COP_REMOVE) {   /* accepted, still syncing */
			snprintf(remedy, sizeof(remedy), "wait for the remove in progress");
		} else {
			rc = plan_act(x, p, p->acting, ACT_REMOVE_CONTAINER, c->workspace_id, t,
				      !c->restore_failed, NULL, "OrphanContainer");
			if (rc >= 0 && !p->group)
				snprintf(remedy, sizeof(remedy), "held (group unobservable): remove");
			else if (rc >= 0)
				held_remedy(p, remedy, sizeof(remedy),
					    c->restore_failed ? "remove" : "sync, then remove");
			if (rc > 0)
				rc = 0;
		}
		if (!rc)
			rc = inst_drift(x, p, t, DRIFT_UNMANAGED, "OrphanContainer", desired,
					observed, remedy);
	}
	if (!any)
		t->rec.orphan_seen = 0;
	free(v);
	return rc;
}

static int inst_health(struct plan_ctx *x, struct ppool *p, struct pinst *t)
{
	char obs[128], remedy[128];
	int rc = 0;

	if (!t->oi || !t->in_service || t->healthy)
		return 0;
	snprintf(obs, sizeof(obs), "agent %s for %d passes%s%s",
		 t->known ? "unhealthy" : "unobserved", t->rec.unhealthy_passes,
		 t->agent && t->agent->error[0] ? ": " : "", t->agent ? t->agent->error : "");
	if (t->mark) {
		rc = plan_act(x, p, p->acting, ACT_SET_UNHEALTHY, 0, t, 0, NULL,
			      t->known ? "AgentUnhealthy" : "AgentUnobservable");
		if (rc == 1)
			t->rec.marked_unhealthy = 1;
		if (rc >= 0)
			held_remedy(p, remedy, sizeof(remedy), "mark instance unhealthy");
		if (rc > 0)
			rc = 0;
	} else if (t->rec.marked_unhealthy) {
		snprintf(remedy, sizeof(remedy), "marked unhealthy, waiting for replacement");
	} else {
		snprintf(remedy, sizeof(remedy), t->rec.ever_healthy ?
			 "mark unhealthy after %d passes" :
			 "mark unhealthy after %d passes and %llds from first sight",
			 x->cfg->unhealthy_after_passes,
			 (long long)(x->cfg->register_timeout_ms / 1000));
	}
	if (!rc)
		rc = inst_drift(x, p, t, t->known ? DRIFT_CHANGED : DRIFT_UNOBSERVABLE,
				t->known ? "AgentUnhealthy" : "AgentUnobservable", "agent healthy",
				obs, remedy);
	return rc;
}

/* Stuck in Pending past the launch timeout: marked unhealthy, the group replaces it. */
static int inst_launch(struct plan_ctx *x, struct ppool *p, struct pinst *t)
{
	char desired[128], obs[128], remedy[128];
	int rc = 0;

	if (!t->stuck)
		return 0;
	snprintf(desired, sizeof(desired), "InService within %llds of launch",
		 (long long)(x->cfg->launch_timeout_ms / 1000));
	snprintf(obs, sizeof(obs), "Pending for %llds",
		 (long long)((x->now - inst_launched(t)) / 1000));
	if (t->mark) {
		rc = plan_act(x, p, p->acting, ACT_SET_UNHEALTHY, 0, t, 0, NULL, "LaunchTimedOut");
		if (rc == 1)
			t->rec.marked_unhealthy = 1;
		if (rc >= 0)
			held_remedy(p, remedy, sizeof(remedy),
				    "mark instance unhealthy, the group replaces it");
		if (rc > 0)
			rc = 0;
	} else if (t->rec.marked_unhealthy) {
		snprintf(remedy, sizeof(remedy), "marked unhealthy, waiting for replacement");
	} else {
		snprintf(remedy, sizeof(remedy), "none: its agent reports containers");
	}
	if (!rc)
		rc = inst_drift(x, p, t, DRIFT_CHANGED, "LaunchTimedOut", desired, obs, remedy);
	return rc;
}

/* Workspaces of p that should run and whose last status places them on t: count, first name. */
static int placed_on(struct plan_ctx *x, const struct ppool *p, const struct pinst *t,
		     const char **first)
{
	const struct plan_input *in = x->in;
	size_t k;
	int n = 0;

	*first = NULL;
	for (k = p->wlo; k < p->whi; k++) {
		size_t wi = x->ws[k];
		const struct workspace_spec *w = &in->workspaces[wi];

		if (w->state != WS_STATE_RUNNING || w->deletion_requested_at || !in->has_status ||
		    !in->has_status[wi] || strcmp(in->status[wi].instance_id, t->id))
			continue;
		if (!n++)
			*first = w->name;
	}
	return n;
}

/*
 * An instance we knew (it has a record) that left without our asking while
 * a workspace that should run was placed on it: missing from a complete
 * listing past the launch grace, or listed Terminating or Terminated though
 * we never marked it (we terminate idle instances only). A `missing`
 * finding; plan_ws.c places its workspaces elsewhere in this same pass.
 */
static int inst_lost(struct plan_ctx *x, struct ppool *p, const struct pinst *t)
{
	char desired[128], obs[128], remedy[128];
	const char *first;
	int n, leaving = t->oi && (t->oi->lifecycle == LC_TERMINATING ||
				   t->oi->lifecycle == LC_TERMINATED);

	if (!p->group || !t->rec_in || t->rec_in->marked_unhealthy || (!t->gone && !leaving))
		return 0;
	n = placed_on(x, p, t, &first);
	if (!n)
		return 0;
	if (n > 1)
		snprintf(desired, sizeof(desired), "InService, holding %s and %d more", first, n - 1);
	else
		snprintf(desired, sizeof(desired), "InService, holding %s", first);
	if (t->gone)
		snprintf(obs, sizeof(obs), "not listed by group %s", p->spec->asg_name);
	else
		snprintf(obs, sizeof(obs), "%s, not asked by spinup",
			 inst_lifecycle_name(t->oi->lifecycle));
	held_remedy(p, remedy, sizeof(remedy),
		    n > 1 ? "place its workspaces elsewhere, files from their last sync" :
			    "place its workspace elsewhere, files from its last sync");
	return inst_drift(x, p, t, DRIFT_MISSING, "InstanceLost", desired, obs, remedy);
}

static int inst_protect(struct plan_ctx *x, struct ppool *p, struct pinst *t)
{
	int want = t->used > 0, rc;
	char remedy[128];

	if (!t->oi || !t->in_service || !t->known || t->rec.marked_unhealthy || t->mark ||
	    want == t->oi->protected_from_scale_in)
		return 0;
	rc = plan_act(x, p, p->acting, ACT_PROTECT, 0, t, want, NULL,
		      want ? "InstanceBusy" : "InstanceIdle");
	if (rc < 0)
		return rc;
	held_remedy(p, remedy, sizeof(remedy), want ? "protect from scale-in" :
						      "allow scale-in");
	return inst_drift(x, p, t, DRIFT_CHANGED, "ProtectionMismatch",
			  want ? "protected (busy)" : "unprotected (idle)",
			  t->oi->protected_from_scale_in ? "protected" : "unprotected", remedy);
}

static int inst_terminate(struct plan_ctx *x, struct ppool *p, struct pinst *t)
{
	char remedy[128], obs[128];
	int rc;

	if (!t->terminate)
		return 0;
	rc = plan_act(x, p, p->acting, ACT_TERMINATE, 0, t, 1, NULL, "IdleBeyondWarmBuffer");
	if (rc < 0)
		return rc;
	/* asked to go, like a mark: a failed call is forgotten once listed healthy again */
	if (rc == 1)
		t->rec.marked_unhealthy = 1;
	held_remedy(p, remedy, sizeof(remedy), "terminate and decrement capacity");
	snprintf(obs, sizeof(obs), "idle since %lld", (long long)t->rec.idle_since);
	return inst_drift(x, p, t, DRIFT_UNMANAGED, "IdleBeyondWarmBuffer",
			  "no idle instance beyond the warm buffer", obs, remedy);
}

static void inst_idle(struct plan_ctx *x, struct pinst *t)
{
	if (!t->known || !t->alive)
		return;
	if (t->used > 0)
		t->rec.idle_since = 0;
	else if (!t->rec.idle_since)
		t->rec.idle_since = x->now;
}

/* ---- capacity -------------------------------------------------------- */

static void pool_target(struct plan_ctx *x, struct ppool *p);

static int cmp_idle(const void *a, const void *b)
{
	const struct pinst *x = *(const struct pinst *const *)a;
	const struct pinst *y = *(const struct pinst *const *)b;

	if (x->rec.idle_since != y->rec.idle_since)
		return x->rec.idle_since < y->rec.idle_since ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Choose up to n idle instances past the cooldown for scale-in; longest idle first. */
static int choose_terminations(struct plan_ctx *x, struct ppool *p, int n)
{
	struct pinst **v;
	size_t i, nv = 0;

	if (n <= 0 || p->unsettled)
		return 0;
	v = calloc(p->ihi - p->ilo + 1, sizeof(*v));
	if (!v)
		return SP_ENOMEM;
	for (i = p->ilo; i < p->ihi; i++) {
		struct pinst *t = &x->insts[i];

		if (t->in_service && t->known && !t->rec.marked_unhealthy && !t->mark &&
		    t->used == 0 && t->rec.idle_since &&
		    x->now - t->rec.idle_since >= x->cfg->idle_cooldown_ms)
			v[nv++] = t;
	}
	qsort(v, nv, sizeof(*v), cmp_idle);
	for (i = 0; i < nv && (int)i < n; i++)
		v[i]->terminate = 1;
	free(v);
	return 0;
}

/*
 * Desired capacity is computed (invariant 3): slots needed plus the warm
 * buffer, clamped, and the only value ever set. Raising is immediate.
 * Lowering needs complete evidence: when the live instances fit in the
 * computed value, SetDesiredCapacity(computed) gives back capacity with
 * nothing behind it and the group has nothing to remove; otherwise idle
 * instances past the cooldown are terminated with
 * ShouldDecrementDesiredCapacity, at most the live ones above the computed
 * value (never both in one pass, so the two cannot double-count), and the
 * rest of the capacity goes once the live ones fit.
 */
static int plan_capacity(struct plan_ctx *x, struct ppool *p, int *newcap)
{
	const struct obs_group *g = p->group;
	int cur, live = 0, surplus;
	size_t i;

	*newcap = -1;
	pool_target(x, p);
	if (!g)
		return 0;
	cur = g->desired_capacity;
	*newcap = cur;
	if (p->target > cur) {
		*newcap = p->target;
		return 0;
	}
	if (p->target == cur || !p->evidence)
		return 0;
	for (i = p->ilo; i < p->ihi; i++)
		if (x->insts[i].oi && x->insts[i].alive)
			live++;
	if (live <= p->target) {
		*newcap = p->target;
		return 0;
	}
	surplus = cur - p->target;
	return choose_terminations(x, p, live - p->target < surplus ? live - p->target : surplus);
}

static int capacity_action(struct plan_ctx *x, struct ppool *p, int newcap)
{
	const struct obs_group *g = p->group;
	char desired[128], observed[128], remedy[128];
	int rc = 0, nterm = 0, idle = 0, live = 0;
	size_t i;

	if (!g)
		return 0;
	if (newcap >= 0 && newcap != g->desired_capacity) {
		rc = set_capacity(x, p, newcap, newcap > g->desired_capacity ? "ScaleOut" :
									 "ScaleIn");
		if (rc == 1 && newcap < g->desired_capacity)
			p->lowering++;
	}
	if (rc < 0 || p->target == g->desired_capacity)
		return rc < 0 ? rc : 0;
	for (i = p->ilo; i < p->ihi; i++) {
		const struct pinst *t = &x->insts[i];

		nterm += t->terminate;
		idle += t->oi && t->in_service && t->known && !t->used &&
			!t->rec.marked_unhealthy && !t->mark;
		live += t->oi && t->alive;
	}
	/* above target only because busy instances hold workspaces: nothing to give back */
	if (p->target < g->desired_capacity && newcap == g->desired_capacity && !idle &&
	    live >= g->desired_capacity && p->evidence)
		return 0;
	snprintf(desired, sizeof(desired), "capacity %d (%d workspaces, %d slots, %d warm)",
		 p->target, p->need, p->spec->slots_per_instance, p->spec->warm_instances);
	snprintf(observed, sizeof(observed), "capacity %d", g->desired_capacity);
	if (newcap != g->desired_capacity) {
		char what[64];

		snprintf(what, sizeof(what), "set capacity %d", newcap);
		held_remedy(p, remedy, sizeof(remedy), what);
	} else if (nterm) {
		char what[64];

		snprintf(what, sizeof(what), "terminate %d idle instances", nterm);
		held_remedy(p, remedy, sizeof(remedy), what);
	} else if (!p->evidence) {
		snprintf(remedy, sizeof(remedy), "wait: evidence incomplete, not scaling in");
	} else if (p->unsettled && p->target < g->desired_capacity) {
		snprintf(remedy, sizeof(remedy), "wait: workspaces need a slot, not scaling in");
	} else {
		snprintf(remedy, sizeof(remedy), "wait for idle cooldown");
	}
	return pool_drift(x, p, DRIFT_CHANGED, "CapacityMismatch", desired, observed, remedy);
}

/* ---- pools ----------------------------------------------------------- */

static void pool_need(struct plan_ctx *x, struct ppool *p)
{
	int slots = p->spec->slots_per_instance > 0 ? p->spec->slots_per_instance : 1;
	int64_t t;
	size_t k;

	p->need = 0;
	for (k = p->wlo; k < p->whi; k++) {
		const struct workspace_spec *w = &x->in->workspaces[x->ws[k]];
		const struct workspace_status *st = x->in->has_status && x->in->has_status[x->ws[k]] ?
			&x->in->status[x->ws[k]] : NULL;

		if (w->state != WS_STATE_RUNNING || w->deletion_requested_at)
			continue;
		/* a paused workspace not yet placed asks for nothing, not even capacity */
		if (w->paused_until > x->now && (!st || !st->instance_id[0]))
			continue;
		p->need++;
	}
	t = (p->need + slots - 1) / slots + p->spec->warm_instances;
	p->exhausted = p->need > 0 && t > p->spec->max_instances;
}

/*
 * The computed desired capacity (invariant 3): the instances the declared
 * workspaces need (ceil(need / slots)) plus the warm buffer, clamped to
 * [min, max]. Placement may spread workspaces over more instances than that
 * (idle instances are reused first); those stay busy and protected, and the
 * capacity above the computed value is given back only by idle instances.
 */
static void pool_target(struct plan_ctx *x, struct ppool *p)
{
	int slots = p->spec->slots_per_instance > 0 ? p->spec->slots_per_instance : 1;
	int64_t t = (p->need + slots - 1) / slots + p->spec->warm_instances;

	(void)x;
	if (t > p->spec->max_instances)
		t = p->spec->max_instances;
	if (t < p->spec->min_instances)
		t = p->spec->min_instances;
	p->target = (int)t;
}

static void pool_evidence(struct plan_ctx *x, struct ppool *p)
{
	size_t i;

	p->evidence = p->group != NULL;
	for (i = p->ilo; p->evidence && i < p->ihi; i++) {
		const struct pinst *t = &x->insts[i];

		if (t->grace || (t->in_service && !t->known))
			p->evidence = 0;
	}
}

static int pool_instances(struct plan_ctx *x, struct ppool *p)
{
	size_t i;
	int rc = 0;

	for (i = p->ilo; !rc && i < p->ihi; i++) {
		struct pinst *t = &x->insts[i];

		inst_idle(x, t);
		rc = inst_orphans(x, p, t);
		if (!rc)
			rc = inst_protect(x, p, t);
		if (!rc)
			rc = inst_health(x, p, t);
		if (!rc)
			rc = inst_launch(x, p, t);
		if (!rc)
			rc = inst_lost(x, p, t);
		if (!rc)
			rc = inst_terminate(x, p, t);
		if (!rc && t->grace)
			rc = inst_drift(x, p, t, DRIFT_UNOBSERVABLE, "InstanceNotYetVisible",
					"instance listed by the group", "not listed yet",
					"wait for launch grace");
	}
	return rc;
}

static int pool_records_out(struct plan_ctx *x, struct ppool *p)
{
	size_t i;
	int rc = 0;

	for (i = p->ilo; !rc && i < p->ihi; i++) {
		const struct pinst *t = &x->insts[i];

		if (!p->group) {
			if (t->rec_in)
				rc = plan_push_instance(x->out, t->rec_in);
		} else if ((t->oi && t->oi->lifecycle != LC_TERMINATED) || t->grace) {
			rc = plan_push_instance(x->out, &t->rec);
		}
	}
	return rc;
}

/* Plan one pool once: workspaces, instances, capacity. */
static int pool_once(struct plan_ctx *x, struct ppool *p)
{
	const struct plan_pool_obs *o = p->obs;
	int rc = 0, newcap = -1;
	size_t i;

	p->lowering = p->unsettled = p->launch_marks = 0;
	p->stuck = NULL;
	for (i = p->ilo; i < p->ihi; i++) {
		struct pinst *t = &x->insts[i];

		inst_prepare(x, p, t);
		if (t->stuck && !p->stuck)
			p->stuck = t;
		p->launch_marks += t->stuck && t->mark && p->acting;
	}
	pool_evidence(x, p);
	pool_need(x, p);
	if (!p->group)
		rc = pool_drift(x, p, DRIFT_UNOBSERVABLE,
				o && o->group && o->group->complete && !o->group->found ?
					"GroupNotFound" : "GroupUnobservable",
				"group observed completely", !o || !o->group ? "describe failed" :
				!o->group->complete ? "partial answer" : "group not found",
				"hold destructive actions, retry next pass");
	if (!rc)
		rc = plan_workspaces(x, p);
	if (!rc)
		rc = plan_capacity(x, p, &newcap);
	if (!rc)
		rc = pool_instances(x, p);
	if (!rc)
		rc = capacity_action(x, p, newcap);
	if (!rc)
		rc = pool_records_out(x, p);
	return rc;
}

struct out_mark {
	size_t nactions, nchanges, nevents, ndrift, ninstances;
};

static void out_save(const struct plan_output *o, struct out_mark *m)
{
	m->nactions = o->nactions;
	m->nchanges = o->nchanges;
	m->nevents = o->nevents;
	m->ndrift = o->ndrift;
	m->ninstances = o->ninstances;
}

static void out_restore(struct plan_output *o, const struct out_mark *m)
{
	o->nactions = m->nactions;
	o->nchanges = m->nchanges;
	o->nevents = m->nevents;
	o->ndrift = m->ndrift;
	o->ninstances = m->ninstances;
}

static void pool_controls(struct plan_ctx *x, struct ppool *p)
{
	const struct plan_input *in = x->in;

	p->acting = 0;
	if (in->global_paused_until > x->now)
		p->held = "global pause";
	else if (in->global_observe_only)
		p->held = "global observe-only";
	else if (p->spec->paused_until > x->now)
		p->held = "pool paused";
	else if (p->spec->observe_only)
		p->held = "pool observe-only";
	else if (p->rec.safety_stopped)
		p->held = "safety stop";
	else
		p->acting = 1, p->held = NULL;
}

/*
 * Entering a safety stop: one SAFETY_STOP event on every workspace of the
 * pool (events belong to workspaces, and these are the ones whose actions
 * are now held), its phase unchanged, after the pool's phase events. The
 * pass after it is already stopped and writes none. A pool with no
 * workspace rows gets the drift finding only.
 */
static int safety_stop_events(struct plan_ctx *x, struct ppool *p, size_t changes_from,
			      int needed)
{
	const struct plan_input *in = x->in;
	const struct plan_output *o = x->out;
	size_t k, c = changes_from;

	for (k = p->wlo; k < p->whi; k++) {
		size_t wi = x->ws[k];
		int64_t id = in->workspaces[wi].id;
		enum ws_phase ph = in->has_status && in->has_status[wi] ? in->status[wi].phase :
									    PHASE_PENDING;
		struct ws_event *ev;

		while (c < o->nchanges && o->changes[c].status.workspace_id < id)
			c++;
		if (c < o->nchanges && o->changes[c].status.workspace_id == id)
			ph = o->changes[c].status.phase;
		ev = plan_push_event(x->out);
		if (!ev)
			return SP_ENOMEM;
		ev->workspace_id = id;
		str_copy(ev->type, sizeof(ev->type), "SAFETY_STOP");
		ev->from = ev->to = ph;
		str_copy(ev->reason, sizeof(ev->reason), "SafetyStop");
		snprintf(ev->message, sizeof(ev->message), "pool %s safety-stopped: the plan "
			 "needed %d destructive actions, %d used, budget %d per %llds; observe-only "
			 "until an operator clears it", p->spec->name, needed,
			 p->rec.destructive_in_window, x->cfg->destructive_budget,
			 (long long)(x->cfg->budget_window_ms / 1000));
		ev->at = x->now;
	}
	return 0;
}

/*
 * A declarative clear of the safety stop (pools.safety_clear_requested_at,
 * `spinctl clear-safety-stop`): a request not seen before is echoed in
 * clear_handled_at; if it is also newer than the stop, the stop is lifted
 * and a fresh budget window starts, so the pool is planned as acting this
 * pass. A request older than the stop was made before anyone could see the
 * stop and clears nothing.
 */
static void safety_clear(struct plan_ctx *x, struct ppool *p)
{
	int64_t req = p->spec->safety_clear_requested_at;

	if (req <= p->rec.clear_handled_at)
		return;
	p->rec.clear_handled_at = req;
	if (!p->rec.safety_stopped || req <= p->rec.stopped_at)
		return;
	p->rec.safety_stopped = 0;
	p->rec.window_start = x->now;
	p->rec.destructive_in_window = 0;
}

/*
 * Plan a pool, then check its destructive budget (invariant 9): over budget,
 * the whole pool plan is discarded and made again with every action held,
 * the pool is safety-stopped (observe-only until an operator clears it),
 * with a SafetyStop finding and SAFETY_STOP events.
 */
static int plan_pool(struct plan_ctx *x, struct ppool *p)
{
	const struct plan_config *cfg = x->cfg;
	struct out_mark m;
	char desired[128], observed[128];
	int rc, n = 0;
	size_t i;

	memset(&p->rec, 0, sizeof(p->rec));
	if (p->rec_in)
		p->rec = *p->rec_in;
	p->rec.pool_id = p->spec->id;
	safety_clear(x, p);
	if (!p->rec.window_start || x->now - p->rec.window_start >= cfg->budget_window_ms) {
		p->rec.window_start = x->now;
		p->rec.destructive_in_window = 0;
	}
	pool_controls(x, p);
	out_save(x->out, &m);
	rc = pool_once(x, p);
	if (rc)
		return rc;
	for (i = m.nactions; i < x->out->nactions; i++)
		n += action_is_destructive(x->out->actions[i].type);
	n += p->lowering;
	if (n && p->rec.destructive_in_window + n > cfg->destructive_budget) {
		out_restore(x->out, &m);
		p->rec.safety_stopped = 1;
		p->rec.stopped_at = x->now;
		pool_controls(x, p);
		rc = pool_once(x, p);
		snprintf(desired, sizeof(desired), "at most %d destructive actions per %llds",
			 cfg->destructive_budget, (long long)(cfg->budget_window_ms / 1000));
		snprintf(observed, sizeof(observed), "plan needs %d, %d used in window", n,
			 p->rec.destructive_in_window);
		if (!rc)
			rc = pool_drift(x, p, DRIFT_UNMANAGED, "SafetyStop", desired, observed,
					"observe-only until an operator clears the safety stop");
		if (!rc)
			rc = safety_stop_events(x, p, m.nchanges, n);
	} else {
		p->rec.destructive_in_window += n;
		if (!rc && p->rec.safety_stopped)
			rc = pool_drift(x, p, DRIFT_UNMANAGED, "SafetyStopped",
					"pool acting", "pool safety-stopped",
					"observe-only until an operator clears the safety stop");
	}
	if (!rc)
		x->out->pool_records[p->spec - x->in->pools] = p->rec;
	return rc;
}

/*
 * Whether workspace i carries a desired-state change not yet acted on: no
 * status yet, a spec newer than its status reflects, or an unhandled
 * reconcile request.
 */
static int ws_fresh(const struct plan_input *in, size_t i)
{
	const struct workspace_spec *w = &in->workspaces[i];
	const struct workspace_status *st;

	if (!in->status || !in->has_status || !in->has_status[i])
		return 1;
	st = &in->status[i];
	return ws_changed(w, st);
}

static int action_fresh(const struct action *a, const int64_t *fresh, size_t nfresh)
{
	return a->workspace_id && a->type != ACT_SET_CAPACITY && a->type != ACT_PROTECT &&
	       a->type != ACT_TERMINATE && a->type != ACT_SET_UNHEALTHY &&
	       bsearch(&a->workspace_id, fresh, nfresh, sizeof(*fresh), cmp_i64);
}

/*
 * Fresh changes first (DESIGN.md "Performance principles"): the executor
 * keeps this order within each of its phases and stops after its mutation
 * limit, so the actions of workspaces with a change not yet acted on move
 * ahead of all others (a stable partition: each part keeps pool, then
 * workspace id order). Orphan removals name no input workspace and stay.
 */
static int fresh_first(struct plan_ctx *x)
{
	const struct plan_input *in = x->in;
	struct plan_output *o = x->out;
	struct action *v = NULL;
	unsigned char *flag = NULL;
	int64_t *fresh;
	size_t i, k, nfresh = 0;
	int rc = SP_ENOMEM, moves = 0;

	fresh = calloc(in->nworkspaces ? in->nworkspaces : 1, sizeof(*fresh));
	flag = malloc(o->nactions + 1);
	if (!fresh || !flag)
		goto out;
	for (i = 0; i < in->nworkspaces; i++)
		if (ws_fresh(in, i))
			fresh[nfresh++] = in->workspaces[i].id;
	qsort(fresh, nfresh, sizeof(*fresh), cmp_i64);
	for (i = 0; i < o->nactions; i++) {
		flag[i] = (unsigned char)!!action_fresh(&o->actions[i], fresh, nfresh);
		moves |= i > 0 && flag[i] && !flag[i - 1];   /* a fresh one after a routine one */
	}
	rc = 0;
	if (!moves)   /* already in order (the usual case): nothing to move */
		goto out;
	rc = SP_ENOMEM;
	v = malloc(o->nactions * sizeof(*v));
	if (!v)
		goto out;
	for (i = 0, k = 0; i < o->nactions; i++)
		if (flag[i])
			v[k++] = o->actions[i];
	for (i = 0; i < o->nactions; i++)
		if (!flag[i])
			v[k++] = o->actions[i];
	memcpy(o->actions, v, o->nactions * sizeof(*v));
	rc = 0;
out:
	free(v);
	free(flag);
	free(fresh);
	return rc;
}

int plan_compute(const struct plan_input *in, struct plan_output *out, struct err *e)
{
	struct plan_config defaults;
	struct plan_ctx x;
	size_t i;
	int rc;

	memset(&x, 0, sizeof(x));
	plan_config_defaults(&defaults);
	x.in = in;
	x.cfg = in->cfg ? in->cfg : &defaults;
	x.out = out;
	x.now = in->now;
	plan_output_init(out);
	out->pool_records = calloc(in->npools ? in->npools : 1, sizeof(*out->pool_records));
	out->npool_records = out->pool_records_alloc = in->npools;
	rc = out->pool_records ? build_pools(&x) : SP_ENOMEM;
	if (!rc)
		rc = build_workspaces(&x);
	if (!rc)
		rc = build_insts(&x);
	if (!rc)
		rc = build_conts(&x);
	for (i = 0; !rc && i < x.npools; i++)
		rc = plan_pool(&x, &x.pools[i]);
	if (!rc)
		rc = plan_workspaces(&x, NULL);
	if (!rc)
		rc = fresh_first(&x);
	ctx_release(&x);
	if (rc) {
		plan_output_release(out);
		return err_set(e, rc, "could not compute plan: out of memory");
	}
	return 0;
}
