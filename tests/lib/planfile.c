/* planfile.c - test-only planner scenario loader and runner (see planfile.h). */
#include "planfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/banned.h"

#define PF_POOLS 16
#define PF_INST 64      /* per group */
#define PF_AGENTS 128
#define PF_CONT 16      /* per agent */
#define PF_WS 256
#define PF_RECS 256
#define PF_KV 32

struct pf_agent {
	struct obs_agent a;
	int64_t pool;
	struct obs_container c[PF_CONT];
};

struct planfile {
	int64_t now;
	uint64_t seed;
	struct plan_config cfg;
	int gobs;
	int64_t gpause;
	struct pool_spec pools[PF_POOLS];
	struct obs_group groups[PF_POOLS];
	struct obs_instance ginst[PF_POOLS][PF_INST];
	unsigned char has_group[PF_POOLS];
	size_t npools;
	struct pool_record precs[PF_POOLS];
	size_t nprecs;
	struct pf_agent agents[PF_AGENTS];
	size_t nagents;
	struct workspace_spec ws[PF_WS];
	struct workspace_status st[PF_WS];
	unsigned char has_st[PF_WS];
	size_t nws;
	struct instance_record recs[PF_RECS];
	size_t nrecs;
	/* planner input, rebuilt by planfile_input */
	struct plan_pool_obs obs[PF_POOLS];
	struct obs_agent flat[PF_AGENTS];
	int pass;
};

struct kv {
	const char *k, *v;
};

static int fail(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return -1;
}

struct planfile *planfile_new(void)
{
	struct planfile *pf = calloc(1, sizeof(*pf));

	if (pf) {
		plan_config_defaults(&pf->cfg);
		pf->now = 1000000;
	}
	return pf;
}

void planfile_free(struct planfile *pf)
{
	free(pf);
}

static int num(const char *v, int64_t *out)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || end == v || *end)
		return -1;
	*out = n;
	return 0;
}

/* Field setters: 0 set, -1 bad value or unknown key. */
#define INT_FIELD(name, dst)                                                       \
	if (!strcmp(k, name)) {                                                    \
		int64_t n_;                                                        \
		if (num(v, &n_))                                                   \
			return -1;                                                 \
		(dst) = n_;                                                        \
		return 0;                                                          \
	}
#define STR_FIELD(name, dst)                                                       \
	if (!strcmp(k, name))                                                      \
		return str_copy((dst), sizeof(dst), v) ? -1 : 0;

static int set_pool(struct pool_spec *p, const char *k, const char *v)
{
	INT_FIELD("id", p->id)
	STR_FIELD("name", p->name)
	STR_FIELD("asg", p->asg_name)
	INT_FIELD("slots", p->slots_per_instance)
	INT_FIELD("warm", p->warm_instances)
	INT_FIELD("min", p->min_instances)
	INT_FIELD("max", p->max_instances)
	INT_FIELD("port", p->agent_port)
	STR_FIELD("image", p->default_image)
	INT_FIELD("gen", p->generation)
	INT_FIELD("paused_until", p->paused_until)
	INT_FIELD("observe_only", p->observe_only)
	INT_FIELD("safety_clear", p->safety_clear_requested_at)
	return -1;
}

static int set_group(struct obs_group *g, const char *k, const char *v)
{
	INT_FIELD("found", g->found)
	INT_FIELD("complete", g->complete)
	INT_FIELD("desired", g->desired_capacity)
	INT_FIELD("min", g->min_size)
	INT_FIELD("max", g->max_size)
	return -1;
}

static int set_instance(struct obs_instance *i, const char *k, const char *v)
{
	STR_FIELD("ip", i->private_ip)
	INT_FIELD("healthy", i->healthy)
	INT_FIELD("protected", i->protected_from_scale_in)
	INT_FIELD("launch", i->launch_time)
	if (!strcmp(k, "lc")) {
		i->lifecycle = inst_lifecycle_parse(v);
		return 0;
	}
	return -1;
}

static int set_agent(struct obs_agent *a, const char *k, const char *v)
{
	INT_FIELD("observed", a->observed)
	INT_FIELD("healthy", a->healthy)
	INT_FIELD("capacity", a->capacity)
	STR_FIELD("error", a->error)
	return -1;
}

static int set_container(struct obs_container *c, const char *k, const char *v)
{
	STR_FIELD("name", c->name)
	INT_FIELD("ready", c->ready)
	INT_FIELD("port", c->port)
	STR_FIELD("image", c->image)
	INT_FIELD("sync_at", c->last_sync_at)
	INT_FIELD("restore_failed", c->restore_failed)
	INT_FIELD("restarts", c->restarts)
	INT_FIELD("started", c->started_at)
	STR_FIELD("msg", c->message)
	if (!strcmp(k, "state"))
		return container_state_parse(v, &c->state) ? -1 : 0;
	if (!strcmp(k, "sync"))
		return sync_result_parse(v, &c->last_sync) ? -1 : 0;
	if (!strcmp(k, "pending"))
		return container_op_parse(v, &c->pending) ? -1 : 0;
	return -1;
}

static int set_workspace(struct workspace_spec *w, const char *k, const char *v)
{
	STR_FIELD("name", w->name)
	STR_FIELD("owner", w->owner)
	STR_FIELD("pool", w->pool)
	STR_FIELD("image", w->image)
	STR_FIELD("bucket", w->bucket)
	STR_FIELD("prefix", w->prefix)
	INT_FIELD("cpu", w->cpu_milli)
	INT_FIELD("mem", w->memory_mib)
	INT_FIELD("gen", w->generation)
	INT_FIELD("delete", w->deletion_requested_at)
	INT_FIELD("paused_until", w->paused_until)
	INT_FIELD("reconcile", w->reconcile_requested_at)
	if (!strcmp(k, "state"))
		return ws_state_parse(v, &w->state) ? -1 : 0;
	return -1;
}

static int set_status(struct workspace_status *s, const char *k, const char *v)
{
	INT_FIELD("gen", s->observed_generation)
	STR_FIELD("instance", s->instance_id)
	STR_FIELD("addr", s->address)
	STR_FIELD("url", s->url)
	INT_FIELD("attempts", s->attempts)
	INT_FIELD("next", s->next_attempt_at)
	INT_FIELD("since", s->phase_since)
	INT_FIELD("handled", s->reconcile_handled_at)
	INT_FIELD("last_sync", s->last_sync_at)
	INT_FIELD("restore_failed", s->restore_failed)
	INT_FIELD("snapshot", s->has_snapshot)
	if (!strcmp(k, "phase"))
		return ws_phase_parse(v, &s->phase) ? -1 : 0;
	if (!strcmp(k, "class")) {
		int c;

		for (c = 0; c < SP_CLASS_MAX; c++)
			if (!strcmp(v, sp_class_name((enum sp_class)c))) {
				s->error_class = (enum sp_class)c;
				return 0;
			}
		return -1;
	}
	return -1;
}

static int set_record(struct instance_record *r, const char *k, const char *v)
{
	INT_FIELD("pool", r->pool_id)
	INT_FIELD("first_seen", r->first_seen)
	INT_FIELD("idle_since", r->idle_since)
	INT_FIELD("passes", r->unhealthy_passes)
	INT_FIELD("marked", r->marked_unhealthy)
	INT_FIELD("orphan", r->orphan_seen)
	INT_FIELD("ever_healthy", r->ever_healthy)
	return -1;
}

static int set_poolrec(struct pool_record *r, const char *k, const char *v)
{
	INT_FIELD("window_start", r->window_start)
	INT_FIELD("destructive", r->destructive_in_window)
	INT_FIELD("safety_stopped", r->safety_stopped)
	INT_FIELD("stopped_at", r->stopped_at)
	INT_FIELD("clear_handled", r->clear_handled_at)
	return -1;
}

static int set_config(struct plan_config *c, const char *k, const char *v)
{
	INT_FIELD("launch_grace_ms", c->launch_grace_ms)
	INT_FIELD("register_timeout_ms", c->register_timeout_ms)
	INT_FIELD("launch_timeout_ms", c->launch_timeout_ms)
	INT_FIELD("unhealthy_after_passes", c->unhealthy_after_passes)
	INT_FIELD("idle_cooldown_ms", c->idle_cooldown_ms)
	INT_FIELD("orphan_grace_ms", c->orphan_grace_ms)
	INT_FIELD("backoff_base_ms", c->backoff_base_ms)
	INT_FIELD("backoff_max_ms", c->backoff_max_ms)
	INT_FIELD("destructive_budget", c->destructive_budget)
	INT_FIELD("budget_window_ms", c->budget_window_ms)
	return -1;
}

static const char *kv_get(const struct kv *kv, int n, const char *k)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(kv[i].k, k))
			return kv[i].v;
	return NULL;
}

/* ---- lookups ---- */

static int pool_by_id(struct planfile *pf, int64_t id)
{
	size_t i;

	for (i = 0; i < pf->npools; i++)
		if (pf->pools[i].id == id)
			return (int)i;
	return -1;
}

static struct obs_instance *inst_find(struct planfile *pf, const char *id, int *pool)
{
	size_t i, j;

	for (i = 0; i < pf->npools; i++)
		for (j = 0; j < pf->groups[i].ninstances; j++)
			if (!strcmp(pf->ginst[i][j].id, id)) {
				if (pool)
					*pool = (int)i;
				return &pf->ginst[i][j];
			}
	return NULL;
}

static int agent_find(struct planfile *pf, const char *inst)
{
	size_t i;

	for (i = 0; i < pf->nagents; i++)
		if (!strcmp(pf->agents[i].a.instance_id, inst))
			return (int)i;
	return -1;
}

static int ws_find(struct planfile *pf, int64_t id)
{
	size_t i;

	for (i = 0; i < pf->nws; i++)
		if (pf->ws[i].id == id)
			return (int)i;
	return -1;
}

static int rec_find(struct planfile *pf, const char *id)
{
	size_t i;

	for (i = 0; i < pf->nrecs; i++)
		if (!strcmp(pf->recs[i].instance_id, id))
			return (int)i;
	return -1;
}

static int poolrec_find(struct planfile *pf, int64_t pool)
{
	size_t i;

	for (i = 0; i < pf->nprecs; i++)
		if (pf->precs[i].pool_id == pool)
			return (int)i;
	return -1;
}

static int container_find(struct pf_agent *a, int64_t ws, const char *name)
{
	size_t i;

	for (i = 0; i < a->a.ncontainers; i++)
		if ((name && !strcmp(a->c[i].name, name)) || (!name && a->c[i].workspace_id == ws))
			return (int)i;
	return -1;
}

/* ---- verbs ---- */

static int apply(int (*set)(void *, const char *, const char *), void *obj, const struct kv *kv,
		 int n, const char *skip1, const char *skip2, char *err, size_t errsz)
{
	int i;

	for (i = 0; i < n; i++) {
		if ((skip1 && !strcmp(kv[i].k, skip1)) || (skip2 && !strcmp(kv[i].k, skip2)))
			continue;
		if (set(obj, kv[i].k, kv[i].v))
			return fail(err, errsz, "bad field %s=%s", kv[i].k, kv[i].v);
	}
	return 0;
}

#define APPLY(fn, obj, kv, n, s1, s2) \
	apply((int (*)(void *, const char *, const char *))(fn), (obj), (kv), (n), (s1), (s2), err, errsz)

static int need_num(const struct kv *kv, int n, const char *k, int64_t *out, char *err,
		    size_t errsz)
{
	const char *v = kv_get(kv, n, k);

	if (!v || num(v, out))
		return fail(err, errsz, "missing or bad %s=", k);
	return 0;
}

static int verb_pool(struct planfile *pf, const struct kv *kv, int n, char *err, size_t errsz)
{
	int64_t id;
	int i;

	if (need_num(kv, n, "id", &id, err, errsz))
		return -1;
	i = pool_by_id(pf, id);
	if (i < 0) {
		if (pf->npools == PF_POOLS)
			return fail(err, errsz, "too many pools");
		i = (int)pf->npools++;
		pool_spec_defaults(&pf->pools[i]);
		pf->pools[i].id = id;
		snprintf(pf->pools[i].name, sizeof(pf->pools[i].name), "pool%lld", (long long)id);
		snprintf(pf->pools[i].asg_name, sizeof(pf->pools[i].asg_name), "asg-%lld",
			 (long long)id);
		str_copy(pf->pools[i].region, sizeof(pf->pools[i].region), "local");
		str_copy(pf->pools[i].default_image, sizeof(pf->pools[i].default_image),
			 "code-server:1");
		obs_group_init(&pf->groups[i]);
		pf->has_group[i] = 0;
	}
	return APPLY(set_pool, &pf->pools[i], kv, n, NULL, NULL);
}

static int verb_group(struct planfile *pf, const struct kv *kv, int n, char *err, size_t errsz)
{
	int64_t id;
	int i;

	if (need_num(kv, n, "pool", &id, err, errsz))
		return -1;
	if ((i = pool_by_id(pf, id)) < 0)
		return fail(err, errsz, "no pool %lld", (long long)id);
	if (!pf->has_group[i]) {
		pf->has_group[i] = 1;
		pf->groups[i].found = pf->groups[i].complete = 1;
		pf->groups[i].min_size = pf->pools[i].min_instances;
		pf->groups[i].max_size = pf->pools[i].max_instances;
		str_copy(pf->groups[i].name, sizeof(pf->groups[i].name), pf->pools[i].asg_name);
	}
	return APPLY(set_group, &pf->groups[i], kv, n, "pool", NULL);
}

static int verb_instance(struct planfile *pf, const struct kv *kv, int n, char *err,
			 size_t errsz)
{
	const char *id = kv_get(kv, n, "id");
	struct obs_instance *oi;
	int64_t pid;
	int p;

	if (!id)
		return fail(err, errsz, "instance needs id=");
	oi = inst_find(pf, id, &p);
	if (!oi) {
		if (need_num(kv, n, "pool", &pid, err, errsz))
			return -1;
		if ((p = pool_by_id(pf, pid)) < 0 || !pf->has_group[p])
			return fail(err, errsz, "no pool or group %lld", (long long)pid);
		if (pf->groups[p].ninstances == PF_INST)
			return fail(err, errsz, "too many instances");
		oi = &pf->ginst[p][pf->groups[p].ninstances++];
		memset(oi, 0, sizeof(*oi));
		str_copy(oi->id, sizeof(oi->id), id);
		oi->lifecycle = LC_IN_SERVICE;
		oi->healthy = 1;
		oi->ec2_seen = 1;
		str_copy(oi->ec2_state, sizeof(oi->ec2_state), "running");
	}
	return APPLY(set_instance, oi, kv, n, "id", "pool");
}

static int verb_agent(struct planfile *pf, const struct kv *kv, int n, char *err, size_t errsz)
{
	const char *id = kv_get(kv, n, "instance");
	int a, p = 0;
	int64_t pid;

	if (!id)
		return fail(err, errsz, "agent needs instance=");
	a = agent_find(pf, id);
	if (a < 0) {
		if (pf->nagents == PF_AGENTS)
			return fail(err, errsz, "too many agents");
		if (kv_get(kv, n, "pool")) {
			if (need_num(kv, n, "pool", &pid, err, errsz))
				return -1;
		} else if (inst_find(pf, id, &p)) {
			pid = pf->pools[p].id;
		} else {
			return fail(err, errsz, "agent %s: no instance, give pool=", id);
		}
		a = (int)pf->nagents++;
		memset(&pf->agents[a], 0, sizeof(pf->agents[a]));
		str_copy(pf->agents[a].a.instance_id, sizeof(pf->agents[a].a.instance_id), id);
		pf->agents[a].a.observed = pf->agents[a].a.healthy = 1;
		pf->agents[a].a.capacity = 4;
		pf->agents[a].pool = pid;
	}
	return APPLY(set_agent, &pf->agents[a].a, kv, n, "instance", "pool");
}

static int verb_container(struct planfile *pf, const struct kv *kv, int n, char *err,
			  size_t errsz)
{
	const char *id = kv_get(kv, n, "instance"), *name = kv_get(kv, n, "name");
	struct pf_agent *ag;
	struct obs_container *c;
	int64_t ws = 0;
	int a, i;

	if (!id || (a = agent_find(pf, id)) < 0)
		return fail(err, errsz, "container needs instance= of a known agent");
	if (kv_get(kv, n, "ws") && need_num(kv, n, "ws", &ws, err, errsz))
		return -1;
	ag = &pf->agents[a];
	i = container_find(ag, ws, name);
	if (i < 0) {
		if (ag->a.ncontainers == PF_CONT)
			return fail(err, errsz, "too many containers");
		i = (int)ag->a.ncontainers++;
		c = &ag->c[i];
		memset(c, 0, sizeof(*c));
		c->workspace_id = ws;
		if (ws)
			container_name_for(ws, c->name, sizeof(c->name));
		c->state = CS_RUNNING;
		c->ready = 1;
		c->port = 8080;
	}
	return APPLY(set_container, &ag->c[i], kv, n, "instance", "ws");
}

static int verb_workspace(struct planfile *pf, const struct kv *kv, int n, char *err,
			  size_t errsz)
{
	struct workspace_spec *w;
	int64_t id;
	int i;

	if (need_num(kv, n, "id", &id, err, errsz))
		return -1;
	i = ws_find(pf, id);
	if (i < 0) {
		if (pf->nws == PF_WS)
			return fail(err, errsz, "too many workspaces");
		i = (int)pf->nws++;
		w = &pf->ws[i];
		workspace_spec_defaults(w);
		w->id = id;
		w->generation = 1;
		snprintf(w->name, sizeof(w->name), "ws%lld", (long long)id);
		str_copy(w->owner, sizeof(w->owner), "alice");
		if (pf->npools)
			str_copy(w->pool, sizeof(w->pool), pf->pools[0].name);
		str_copy(w->bucket, sizeof(w->bucket), "bucket");
		snprintf(w->prefix, sizeof(w->prefix), "ws/%lld", (long long)id);
		pf->has_st[i] = 0;
	}
	return APPLY(set_workspace, &pf->ws[i], kv, n, "id", NULL);
}

static int status_of(struct planfile *pf, const struct kv *kv, int n, char *err, size_t errsz)
{
	int64_t id;
	int i;

	if (need_num(kv, n, "ws", &id, err, errsz))
		return -1;
	if ((i = ws_find(pf, id)) < 0)
		return fail(err, errsz, "no workspace %lld", (long long)id);
	if (!pf->has_st[i]) {
		workspace_status_init(&pf->st[i], id, pf->now);
		pf->has_st[i] = 1;
	}
	return i;
}

static int verb_cond(struct planfile *pf, const struct kv *kv, int n, char *err, size_t errsz)
{
	const char *t = kv_get(kv, n, "type"), *s = kv_get(kv, n, "status");
	const char *r = kv_get(kv, n, "reason");
	enum cond_type ct;
	enum cond_status cs;
	int64_t at = pf->now;
	int i = status_of(pf, kv, n, err, errsz);

	if (i < 0)
		return -1;
	if (!t || cond_type_parse(t, &ct) || !s || cond_status_parse(s, &cs) || !r)
		return fail(err, errsz, "cond needs type= status= reason=");
	if (kv_get(kv, n, "at") && need_num(kv, n, "at", &at, err, errsz))
		return -1;
	pf->st[i].conds[ct].status = cs;
	str_copy(pf->st[i].conds[ct].reason, sizeof(pf->st[i].conds[ct].reason), r);
	pf->st[i].conds[ct].message[0] = '\0';
	pf->st[i].conds[ct].last_transition = at;
	return 0;
}

static int verb_record(struct planfile *pf, const struct kv *kv, int n, char *err, size_t errsz)
{
	const char *id = kv_get(kv, n, "id");
	int i;

	if (!id)
		return fail(err, errsz, "record needs id=");
	i = rec_find(pf, id);
	if (i < 0) {
		if (pf->nrecs == PF_RECS)
			return fail(err, errsz, "too many records");
		i = (int)pf->nrecs++;
		memset(&pf->recs[i], 0, sizeof(pf->recs[i]));
		str_copy(pf->recs[i].instance_id, sizeof(pf->recs[i].instance_id), id);
		pf->recs[i].pool_id = pf->npools ? pf->pools[0].id : 0;
	}
	return APPLY(set_record, &pf->recs[i], kv, n, "id", NULL);
}

static int verb_poolrec(struct planfile *pf, const struct kv *kv, int n, char *err,
			size_t errsz)
{
	int64_t id;
	int i;

	if (need_num(kv, n, "pool", &id, err, errsz))
		return -1;
	i = poolrec_find(pf, id);
	if (i < 0) {
		if (pf->nprecs == PF_POOLS)
			return fail(err, errsz, "too many pool records");
		i = (int)pf->nprecs++;
		memset(&pf->precs[i], 0, sizeof(pf->precs[i]));
		pf->precs[i].pool_id = id;
	}
	return APPLY(set_poolrec, &pf->precs[i], kv, n, "pool", NULL);
}

static int verb_global(struct planfile *pf, const struct kv *kv, int n, char *err, size_t errsz)
{
	int i;
	int64_t v;

	for (i = 0; i < n; i++) {
		if (num(kv[i].v, &v))
			return fail(err, errsz, "bad %s", kv[i].k);
		if (!strcmp(kv[i].k, "observe_only"))
			pf->gobs = (int)v;
		else if (!strcmp(kv[i].k, "paused_until"))
			pf->gpause = v;
		else
			return fail(err, errsz, "unknown global %s", kv[i].k);
	}
	return 0;
}

#define REMOVE_AT(arr, n, i) memmove(&(arr)[i], &(arr)[(i) + 1], ((n) - (i) - 1) * sizeof(*(arr)))

static void ws_remove(struct planfile *pf, size_t i)
{
	REMOVE_AT(pf->ws, pf->nws, i);
	REMOVE_AT(pf->st, pf->nws, i);
	REMOVE_AT(pf->has_st, pf->nws, i);
	pf->nws--;
}

static int verb_remove(struct planfile *pf, const char *what, const struct kv *kv, int n,
		       char *err, size_t errsz)
{
	const char *id = kv_get(kv, n, "id"), *inst = kv_get(kv, n, "instance");
	int64_t v;
	int i, p;

	if (!strcmp(what, "instance") && id) {
		struct obs_instance *oi = inst_find(pf, id, &p);

		if (!oi)
			return fail(err, errsz, "no instance %s", id);
		i = (int)(oi - pf->ginst[p]);
		REMOVE_AT(pf->ginst[p], pf->groups[p].ninstances, (size_t)i);
		pf->groups[p].ninstances--;
		return 0;
	}
	if (!strcmp(what, "agent") && inst && (i = agent_find(pf, inst)) >= 0) {
		REMOVE_AT(pf->agents, pf->nagents, (size_t)i);
		pf->nagents--;
		return 0;
	}
	if (!strcmp(what, "container") && inst && (i = agent_find(pf, inst)) >= 0) {
		struct pf_agent *a = &pf->agents[i];
		int c;

		if (need_num(kv, n, "ws", &v, err, errsz))
			return -1;
		if ((c = container_find(a, v, NULL)) < 0)
			return fail(err, errsz, "no container of %lld on %s", (long long)v, inst);
		REMOVE_AT(a->c, a->a.ncontainers, (size_t)c);
		a->a.ncontainers--;
		return 0;
	}
	if (!strcmp(what, "workspace") && id && !num(id, &v) && (i = ws_find(pf, v)) >= 0) {
		ws_remove(pf, (size_t)i);
		return 0;
	}
	if (!strcmp(what, "nogroup")) {
		if (need_num(kv, n, "pool", &v, err, errsz) || (p = pool_by_id(pf, v)) < 0)
			return fail(err, errsz, "nogroup needs pool=");
		pf->has_group[p] = 0;
		pf->groups[p].ninstances = 0;
		return 0;
	}
	return fail(err, errsz, "cannot remove %s", what);
}

void planfile_input(struct planfile *pf, struct plan_input *in)
{
	size_t i, j, k = 0;

	memset(in, 0, sizeof(*in));
	for (i = 0; i < pf->npools; i++) {
		pf->groups[i].instances = pf->ginst[i];
		pf->groups[i].alloc = PF_INST;
		pf->obs[i].pool_id = pf->pools[i].id;
		pf->obs[i].group = pf->has_group[i] ? &pf->groups[i] : NULL;
		pf->obs[i].agents = &pf->flat[k];
		for (j = 0; j < pf->nagents; j++) {
			if (pf->agents[j].pool != pf->pools[i].id)
				continue;
			pf->flat[k] = pf->agents[j].a;
			pf->flat[k].containers = pf->agents[j].c;
			pf->flat[k].alloc = PF_CONT;
			k++;
		}
		pf->obs[i].nagents = (size_t)(&pf->flat[k] - pf->obs[i].agents);
	}
	in->now = pf->now;
	in->seed = pf->seed;
	in->cfg = &pf->cfg;
	in->global_observe_only = pf->gobs;
	in->global_paused_until = pf->gpause;
	in->pools = pf->pools;
	in->npools = pf->npools;
	in->pool_records = pf->precs;
	in->npool_records = pf->nprecs;
	in->workspaces = pf->ws;
	in->nworkspaces = pf->nws;
	in->status = pf->st;
	in->has_status = pf->has_st;
	in->obs = pf->obs;
	in->instances = pf->recs;
	in->ninstances = pf->nrecs;
}

/* Feed a plan forward as the loop's record step would. */
static void feed(struct planfile *pf, const struct plan_output *o)
{
	size_t i;
	int w;

	for (i = 0; i < o->nchanges; i++) {
		w = ws_find(pf, o->changes[i].status.workspace_id);
		if (w >= 0) {
			pf->st[w] = o->changes[i].status;
			pf->has_st[w] = 1;
		}
	}
	for (i = 0; i < o->nactions; i++)
		if (o->actions[i].type == ACT_DELETE_ROW &&
		    (w = ws_find(pf, o->actions[i].workspace_id)) >= 0)
			ws_remove(pf, (size_t)w);
	pf->nrecs = o->ninstances < PF_RECS ? o->ninstances : PF_RECS;
	if (pf->nrecs)
		memcpy(pf->recs, o->instances, pf->nrecs * sizeof(*pf->recs));
	pf->nprecs = o->npool_records < PF_POOLS ? o->npool_records : PF_POOLS;
	if (pf->nprecs)
		memcpy(pf->precs, o->pool_records, pf->nprecs * sizeof(*pf->precs));
}

static int verb_run(struct planfile *pf, int do_feed, struct strbuf *actual, char *err,
		    size_t errsz)
{
	struct plan_output out;
	struct plan_input in;
	struct err e = ERR_INIT;
	int rc;

	planfile_input(pf, &in);
	if (plan_compute(&in, &out, &e))
		return fail(err, errsz, "plan_compute: %s", e.msg);
	rc = strbuf_addf(actual, "== pass %d\n", ++pf->pass);
	if (!rc)
		rc = plan_output_format(&out, actual);
	if (!rc && do_feed)
		feed(pf, &out);
	plan_output_release(&out);
	return rc ? fail(err, errsz, "format failed") : 0;
}

int planfile_line(struct planfile *pf, const char *line, struct strbuf *actual, char *err,
		  size_t errsz)
{
	char buf[1024], *save = NULL, *tok, *verb;
	struct kv kv[PF_KV];
	int n = 0, rc;
	int64_t v;

	if (str_copy(buf, sizeof(buf), line))
		return fail(err, errsz, "line too long");
	verb = strtok_r(buf, " \t", &save);
	if (!verb || verb[0] == '#')
		return 0;
	if (!strcmp(verb, "now") || !strcmp(verb, "seed")) {
		tok = strtok_r(NULL, " \t", &save);
		if (!tok || num(tok, &v))
			return fail(err, errsz, "%s needs a number", verb);
		if (verb[0] == 'n')
			pf->now = v;
		else
			pf->seed = (uint64_t)v;
		return 0;
	}
	while ((tok = strtok_r(NULL, " \t", &save))) {
		char *eq = strchr(tok, '=');

		if (n == PF_KV || !eq)
			return fail(err, errsz, "bad token '%s'", tok);
		*eq = '\0';
		kv[n].k = tok;
		kv[n].v = eq + 1;
		n++;
	}
	if (!strcmp(verb, "run")) {
		const char *f = kv_get(kv, n, "record");

		return verb_run(pf, !f || strcmp(f, "0"), actual, err, errsz);
	}
	if (!strcmp(verb, "pool"))
		return verb_pool(pf, kv, n, err, errsz);
	if (!strcmp(verb, "group"))
		return verb_group(pf, kv, n, err, errsz);
	if (!strcmp(verb, "instance"))
		return verb_instance(pf, kv, n, err, errsz);
	if (!strcmp(verb, "agent"))
		return verb_agent(pf, kv, n, err, errsz);
	if (!strcmp(verb, "container"))
		return verb_container(pf, kv, n, err, errsz);
	if (!strcmp(verb, "workspace"))
		return verb_workspace(pf, kv, n, err, errsz);
	if (!strcmp(verb, "status")) {
		rc = status_of(pf, kv, n, err, errsz);
		return rc < 0 ? -1 : APPLY(set_status, &pf->st[rc], kv, n, "ws", NULL);
	}
	if (!strcmp(verb, "cond"))
		return verb_cond(pf, kv, n, err, errsz);
	if (!strcmp(verb, "record"))
		return verb_record(pf, kv, n, err, errsz);
	if (!strcmp(verb, "poolrec"))
		return verb_poolrec(pf, kv, n, err, errsz);
	if (!strcmp(verb, "global"))
		return verb_global(pf, kv, n, err, errsz);
	if (!strcmp(verb, "config"))
		return APPLY(set_config, &pf->cfg, kv, n, NULL, NULL);
	if (!strcmp(verb, "time")) {
		if (need_num(kv, n, "now", &v, err, errsz))
			return -1;
		pf->now = v;
		if (kv_get(kv, n, "seed") && need_num(kv, n, "seed", &v, err, errsz))
			return -1;
		if (kv_get(kv, n, "seed"))
			pf->seed = (uint64_t)v;
		return 0;
	}
	if (verb[0] == '-')
		return verb_remove(pf, verb + 1, kv, n, err, errsz);
	if (!strcmp(verb, "nogroup"))
		return verb_remove(pf, "nogroup", kv, n, err, errsz);
	return fail(err, errsz, "unknown verb '%s'", verb);
}

int planfile_exec(const char *path, struct planfile *pf, struct strbuf *head,
		  struct strbuf *expected, struct strbuf *actual, char *err, size_t errsz)
{
	char *line = NULL, msg[256];
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, in_expect = 0, rc = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return fail(err, errsz, "%s: %s", path, strerror(errno));
	while (!rc && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (in_expect) {
			rc = strbuf_addf(expected, "%s\n", line);
			continue;
		}
		if (!strcmp(line, "--- expect")) {
			in_expect = 1;
			continue;
		}
		rc = strbuf_addf(head, "%s\n", line);
		if (!rc && planfile_line(pf, line, actual, msg, sizeof(msg)))
			rc = fail(err, errsz, "%s:%d: %s", path, lineno, msg);
	}
	free(line);
	fclose(f);
	return rc ? -1 : 0;
}

/* ---- shuffle ---- */

static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void swap_bytes(void *a, void *b, size_t n)
{
	unsigned char *x = a, *y = b, t;

	while (n--) {
		t = *x;
		*x++ = *y;
		*y++ = t;
	}
}

#define SHUFFLE(arr, n, rnd, extra)                                              \
	do {                                                                     \
		size_t i_, j_;                                                   \
		for (i_ = (n); i_ > 1; i_--) {                                   \
			j_ = (size_t)(next_rand(rnd) % i_);                      \
			swap_bytes(&(arr)[i_ - 1], &(arr)[j_], sizeof(*(arr)));  \
			extra;                                                   \
		}                                                                \
	} while (0)

void planfile_shuffle(struct planfile *pf, uint64_t seed)
{
	uint64_t r = seed;
	size_t i;

	SHUFFLE(pf->pools, pf->npools, &r, {
		swap_bytes(&pf->groups[i_ - 1], &pf->groups[j_], sizeof(pf->groups[0]));
		swap_bytes(pf->ginst[i_ - 1], pf->ginst[j_], sizeof(pf->ginst[0]));
		swap_bytes(&pf->has_group[i_ - 1], &pf->has_group[j_], 1);
	});
	for (i = 0; i < pf->npools; i++)
		SHUFFLE(pf->ginst[i], pf->groups[i].ninstances, &r, (void)0);
	SHUFFLE(pf->ws, pf->nws, &r, {
		swap_bytes(&pf->st[i_ - 1], &pf->st[j_], sizeof(pf->st[0]));
		swap_bytes(&pf->has_st[i_ - 1], &pf->has_st[j_], 1);
	});
	SHUFFLE(pf->agents, pf->nagents, &r, (void)0);
	for (i = 0; i < pf->nagents; i++)
		SHUFFLE(pf->agents[i].c, pf->agents[i].a.ncontainers, &r, (void)0);
	SHUFFLE(pf->recs, pf->nrecs, &r, (void)0);
	SHUFFLE(pf->precs, pf->nprecs, &r, (void)0);
}
