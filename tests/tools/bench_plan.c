/*
 * bench_plan - planner speed and memory: plan_compute over N workspaces on
 * N/slots instances (4 slots each), for N = 1,000 and 10,000.
 *
 * Two figures per size: a cold pass (every workspace new, placed this pass)
 * and a steady pass (every container running and ready, statuses fed back:
 * the converged pass, which must emit nothing). Peak heap during one pass is
 * measured by counting allocations in this binary (malloc family wrapped
 * around glibc's __libc_* entry points, sizes from malloc_usable_size).
 *
 * Prints "| name | value | unit |" rows for scripts/bench.sh.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/plan.h"

#include "model/banned.h"

/* ---- allocation accounting (this binary only; not under ASan) ---- */

static int counting;
static size_t cur_bytes, peak_bytes, nallocs;

#ifndef __SANITIZE_ADDRESS__
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static void track_add(void *p)
{
	if (!p || !counting)
		return;
	cur_bytes += malloc_usable_size(p);
	nallocs++;
	if (cur_bytes > peak_bytes)
		peak_bytes = cur_bytes;
}

static void track_sub(void *p)
{
	size_t n;

	if (!p || !counting)
		return;
	n = malloc_usable_size(p);
	cur_bytes = cur_bytes > n ? cur_bytes - n : 0;
}

void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n)
{
	void *p = __libc_malloc(n);

	track_add(p);
	return p;
}

void *calloc(size_t a, size_t b)
{
	void *p = __libc_calloc(a, b);

	track_add(p);
	return p;
}

void *realloc(void *p, size_t n)
{
	void *q;

	track_sub(p);
	q = __libc_realloc(p, n);
	track_add(q ? q : (n ? p : NULL));
	return q;
}

void free(void *p)
{
	track_sub(p);
	__libc_free(p);
}
#endif

/* ---- world ---- */

#define SLOTS 4

struct world {
	struct pool_spec pool;
	struct obs_group group;
	struct obs_agent *agents;
	size_t ninst;
	struct workspace_spec *ws;
	struct workspace_status *st;
	unsigned char *has_st;
	size_t nws;
	struct instance_record *recs;
	size_t nrecs;
	struct plan_pool_obs obs;
	struct plan_config cfg;
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);

	if (!p) {
		fprintf(stderr, "bench_plan: out of memory\n");
		exit(1);
	}
	return p;
}

/* N workspaces, N/SLOTS instances; with_containers: every workspace running on its slot. */
static void world_build(struct world *w, size_t n, int with_containers)
{
	size_t i;

	memset(w, 0, sizeof(*w));
	plan_config_defaults(&w->cfg);
	w->cfg.destructive_budget = 1000000;
	pool_spec_defaults(&w->pool);
	w->pool.id = 1;
	snprintf(w->pool.name, sizeof(w->pool.name), "bench");
	snprintf(w->pool.asg_name, sizeof(w->pool.asg_name), "asg-bench");
	snprintf(w->pool.default_image, sizeof(w->pool.default_image), "code-server:1");
	w->pool.slots_per_instance = SLOTS;
	w->pool.max_instances = SPEC_INSTANCES_MAX;
	w->ninst = (n + SLOTS - 1) / SLOTS;
	obs_group_init(&w->group);
	w->group.found = w->group.complete = 1;
	w->group.desired_capacity = (int)w->ninst;
	w->agents = xcalloc(w->ninst, sizeof(*w->agents));
	for (i = 0; i < w->ninst; i++) {
		struct obs_instance *oi = obs_group_add(&w->group);

		snprintf(oi->id, sizeof(oi->id), "i-%017zx", i);
		snprintf(oi->private_ip, sizeof(oi->private_ip), "10.%zu.%zu.%zu", i >> 16,
			 (i >> 8) & 255, i & 255);
		oi->lifecycle = LC_IN_SERVICE;
		oi->healthy = 1;
		oi->protected_from_scale_in = with_containers;
		obs_agent_init(&w->agents[i]);
		snprintf(w->agents[i].instance_id, sizeof(w->agents[i].instance_id), "%s", oi->id);
		w->agents[i].observed = w->agents[i].healthy = 1;
		w->agents[i].capacity = SLOTS;
	}
	w->nws = n;
	w->ws = xcalloc(n, sizeof(*w->ws));
	w->st = xcalloc(n, sizeof(*w->st));
	w->has_st = xcalloc(n, 1);
	for (i = 0; i < n; i++) {
		struct workspace_spec *s = &w->ws[i];

		workspace_spec_defaults(s);
		s->id = (int64_t)i + 1;
		snprintf(s->name, sizeof(s->name), "ws-%zu", i + 1);
		snprintf(s->owner, sizeof(s->owner), "bench");
		snprintf(s->pool, sizeof(s->pool), "bench");
		s->generation = 1;
		if (with_containers) {
			struct obs_container *c = obs_agent_add(&w->agents[i / SLOTS]);

			c->workspace_id = s->id;
			container_name_for(s->id, c->name, sizeof(c->name));
			c->state = CS_RUNNING;
			c->ready = 1;
			c->port = 8080;
		}
	}
	w->obs.pool_id = 1;
	w->obs.group = &w->group;
	w->obs.agents = w->agents;
	w->obs.nagents = w->ninst;
}

static void world_free(struct world *w)
{
	size_t i;

	for (i = 0; i < w->ninst; i++)
		obs_agent_release(&w->agents[i]);
	free(w->agents);
	obs_group_release(&w->group);
	free(w->ws);
	free(w->st);
	free(w->has_st);
	free(w->recs);
}

static void world_input(struct world *w, struct plan_input *in, int64_t now)
{
	memset(in, 0, sizeof(*in));
	in->now = now;
	in->seed = 42;
	in->cfg = &w->cfg;
	in->pools = &w->pool;
	in->npools = 1;
	in->workspaces = w->ws;
	in->nworkspaces = w->nws;
	in->status = w->st;
	in->has_status = w->has_st;
	in->obs = &w->obs;
	in->instances = w->recs;
	in->ninstances = w->nrecs;
}

/* Feed statuses and records forward, as the loop's record step does. */
static void world_feed(struct world *w, const struct plan_output *o)
{
	size_t i;

	for (i = 0; i < o->nchanges; i++) {
		size_t k = (size_t)(o->changes[i].status.workspace_id - 1);

		w->st[k] = o->changes[i].status;
		w->has_st[k] = 1;
	}
	free(w->recs);
	w->recs = xcalloc(o->ninstances, sizeof(*w->recs));
	memcpy(w->recs, o->instances, o->ninstances * sizeof(*w->recs));
	w->nrecs = o->ninstances;
}

struct figures {
	double us;
	size_t peak, allocs, actions, changes;
};

static void run_pass(struct world *w, int64_t now, struct figures *f, int feed)
{
	struct plan_output o;
	struct plan_input in;
	struct err e = ERR_INIT;
	double t0;

	world_input(w, &in, now);
	cur_bytes = peak_bytes = nallocs = 0;
	counting = 1;
	t0 = now_us();
	if (plan_compute(&in, &o, &e)) {
		fprintf(stderr, "bench_plan: %s\n", e.msg);
		exit(1);
	}
	f->us = now_us() - t0;
	counting = 0;
	f->peak = peak_bytes;
	f->allocs = nallocs;
	f->actions = o.nactions;
	f->changes = o.nchanges;
	if (feed)
		world_feed(w, &o);
	plan_output_release(&o);
}

static void bench(size_t n)
{
	struct figures cold, f, best = { 0 };
	struct world w;
	int i, reps = n >= 10000 ? 10 : 50;

	world_build(&w, n, 0);
	run_pass(&w, 1000000, &cold, 0);
	fprintf(stderr, "cold %zu: %.0f us, %zu actions, %zu changes\n", n, cold.us, cold.actions,
		cold.changes);
	world_free(&w);

	world_build(&w, n, 1);
	run_pass(&w, 1000000, &f, 1);         /* first visit writes every status */
	for (i = 0; i < reps; i++) {
		run_pass(&w, 1000000 + 1000 * (i + 1), &f, 1);
		if (f.actions || f.changes) {
			fprintf(stderr, "bench_plan: steady pass %d not converged: %zu actions, "
				"%zu changes\n", i, f.actions, f.changes);
			exit(1);
		}
		if (!i || f.us < best.us)
			best = f;
	}
	printf("| plan %zu workspaces | %.2f | ms/pass |\n", n, best.us / 1000);
	printf("| plan %zu workspaces, cold (all placed) | %.2f | ms/pass |\n", n, cold.us / 1000);
	printf("| plan %zu workspaces, peak heap | %.1f | MiB |\n", n,
	       best.peak / (1024.0 * 1024.0));
	printf("| plan %zu workspaces, allocations | %zu | per pass |\n", n, best.allocs);
	world_free(&w);
}

int main(void)
{
	bench(1000);
	bench(10000);
	return 0;
}
