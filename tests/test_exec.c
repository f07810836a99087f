/* test_exec: the executor (reconciler/exec.c) over the sim drivers, with an in-memory journal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/sim.h"
#include "model/plan.h"
#include "model/strbuf.h"
#include "reconciler/exec.h"

#define JMAX 512

/* The in-memory journal: what was journaled, in order, and the world's mutation count then. */
struct jentry {
	char what;              /* 'P' pending, 'D' done, 'X' delete_row */
	enum action_type type;
	char key[ACTION_KEY_MAX + 1];
	int rc;
	unsigned long mutations;
};

struct journal {
	struct sim_world *w;
	struct jentry e[JMAX];
	size_t n;
	int fail_pending_at;    /* 1-based pending call that fails; 0 never */
	int npending;
	int64_t *clock;         /* a fake monotonic clock each pending call advances: */
	int64_t step_ms;        /*   by this (a long pass), */
	int pause_at;           /*   and, at this 1-based pending call, */
	int64_t pause_ms;       /*   by this (SIGSTOPped between journaling and acting) */
};

static void jadd(struct journal *j, char what, const struct action *a, int rc)
{
	struct jentry *x;

	assert_true(j->n < JMAX);
	x = &j->e[j->n++];
	x->what = what;
	x->type = a->type;
	str_copy(x->key, sizeof(x->key), a->key);
	x->rc = rc;
	x->mutations = sim_mutations(j->w);
}

static int j_pending(void *ctx, const struct action *a, struct err *e)
{
	struct journal *j = ctx;

	if (++j->npending == j->fail_pending_at)
		return err_set(e, SP_EUNAVAIL, "database unavailable");
	jadd(j, 'P', a, 0);
	if (j->clock)
		*j->clock += j->step_ms + (j->npending == j->pause_at ? j->pause_ms : 0);
	return 0;
}

static void j_done(void *ctx, const struct action *a, int rc, const struct err *e)
{
	assert_non_null(e);
	jadd(ctx, 'D', a, rc);
}

static int j_delete(void *ctx, const struct action *a, struct err *e)
{
	(void)e;
	jadd(ctx, 'X', a, 0);
	return 0;
}

struct fx {
	struct sim_world *w;
	struct cloud *c;
	struct agentc *a;
	struct journal j;
	struct exec_journal ej;
	struct exec_report r;
	struct action acts[256];
	size_t n;
};

static void fx_open(struct fx *f, int desired)
{
	struct sim_group_config ga = { "asg-a", 0, 100, desired, 4, 0 };
	struct sim_group_config gb = { "asg-b", 0, 10, 2, 4, 0 };

	memset(f, 0, sizeof(*f));
	f->w = sim_world_new(77, NULL);
	assert_non_null(f->w);
	assert_int_equal(sim_add_group(f->w, &ga, NULL), 0);
	assert_int_equal(sim_add_group(f->w, &gb, NULL), 0);
	f->c = sim_cloud(f->w);
	f->a = sim_agentc(f->w);
	f->j.w = f->w;
	f->ej.ctx = &f->j;
	f->ej.pending = j_pending;
	f->ej.done = j_done;
	exec_report_init(&f->r);
	sim_tick(f->w, 60000);   /* everything InService, agents up */
}

static void fx_close(struct fx *f)
{
	exec_report_release(&f->r);
	cloud_free(f->c);
	agentc_free(f->a);
	sim_world_free(f->w);
}

static struct sim_instance_info inst(struct fx *f, size_t i)
{
	struct sim_instance_info info;

	assert_int_equal(sim_instance_get(f->w, i, &info), 0);
	return info;
}

static struct action *add(struct fx *f, enum action_type t, const char *asg, size_t inst_i,
			  int64_t ws, int flag)
{
	struct action *a = &f->acts[f->n++];
	struct sim_instance_info info = inst(f, inst_i);

	memset(a, 0, sizeof(*a));
	a->type = t;
	str_copy(a->asg_name, sizeof(a->asg_name), asg);
	a->workspace_id = ws;
	str_copy(a->instance_id, sizeof(a->instance_id), info.id);
	str_copy(a->address, sizeof(a->address), info.private_ip);
	a->port = 7070;
	a->flag = flag;
	a->req.workspace_id = ws;
	str_copy(a->req.image, sizeof(a->req.image), "code-server:4");
	snprintf(a->key, sizeof(a->key), "%d/%lld/%s/%zu", (int)t, (long long)ws, info.id, f->n);
	return a;
}

static int run(struct fx *f, int64_t epoch, int max)
{
	struct exec_config cfg = { epoch, max, NULL };

	return exec_run(&cfg, f->c, f->a, &f->ej, f->acts, f->n, &f->r, NULL);
}

static void test_exec__journals_pending_before_and_done_after(void **state)
{
	struct fx f;
	unsigned long m0;
	int desired;

	(void)state;
	fx_open(&f, 2);
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 0, 5, 0);
	add(&f, ACT_SET_CAPACITY, "asg-a", 0, 0, 0)->capacity = 3;
	m0 = sim_mutations(f.w);
	assert_int_equal(run(&f, 1, 0), 0);
	assert_int_equal(f.j.n, 4);
	/* capacity first: pending before its mutation, done after it */
	assert_int_equal(f.j.e[0].what, 'P');
	assert_int_equal(f.j.e[0].type, ACT_SET_CAPACITY);
	assert_int_equal(f.j.e[0].mutations, m0);
	assert_int_equal(f.j.e[1].what, 'D');
	assert_int_equal(f.j.e[1].mutations, m0 + 1);
	assert_int_equal(f.j.e[2].what, 'P');
	assert_int_equal(f.j.e[2].type, ACT_ENSURE_CONTAINER);
	assert_int_equal(f.j.e[2].mutations, m0 + 1);
	assert_int_equal(f.j.e[3].what, 'D');
	assert_int_equal(f.j.e[3].rc, 0);
	assert_int_equal(f.j.e[3].mutations, m0 + 2);
	assert_int_equal(f.r.ok, 2);
	assert_int_equal(f.r.results[0].outcome, EXEC_OK);   /* results follow the input order */
	assert_int_equal(f.r.results[1].outcome, EXEC_OK);
	assert_int_equal(sim_group_sizes(f.w, "asg-a", NULL, NULL, &desired, NULL), 0);
	assert_int_equal(desired, 3);
	assert_int_equal(sim_containers_of(f.w, 5, NULL, 0), 1);
	fx_close(&f);
}

static void test_exec__orders_phases_whatever_the_input(void **state)
{
	static const enum action_type want[] = {
		ACT_PROTECT, ACT_SET_CAPACITY, ACT_PROTECT, ACT_TERMINATE, ACT_ENSURE_CONTAINER,
		ACT_SYNC, ACT_REMOVE_CONTAINER, ACT_STOP_CONTAINER,  /* one phase: input order */
	};
	struct fx f;
	size_t i, k = 0;

	(void)state;
	fx_open(&f, 4);
	add(&f, ACT_REMOVE_CONTAINER, "asg-a", 1, 3, 1);
	add(&f, ACT_STOP_CONTAINER, "asg-a", 1, 2, 1);
	add(&f, ACT_SYNC, "asg-a", 1, 2, 0);
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 0, 1, 0);
	add(&f, ACT_TERMINATE, "asg-a", 3, 0, 0);
	add(&f, ACT_PROTECT, "asg-a", 2, 0, 0);
	add(&f, ACT_SET_CAPACITY, "asg-a", 0, 0, 0)->capacity = 4;
	add(&f, ACT_PROTECT, "asg-a", 0, 0, 1);
	assert_int_equal(run(&f, 1, 0), 0);
	for (i = 0; i < f.j.n; i++) {
		if (f.j.e[i].what != 'P')
			continue;
		assert_true(k < sizeof(want) / sizeof(want[0]));
		assert_int_equal(f.j.e[i].type, want[k]);
		k++;
	}
	assert_int_equal(k, 8);
	/* the protect that came first is the one with flag 1 (index 7 in the input) */
	assert_string_equal(f.j.e[0].key, f.acts[7].key);
	assert_int_equal(f.r.results[4].outcome, EXEC_OK);   /* terminate */
	fx_close(&f);
}

static void test_exec__batches_protection_by_group_and_flag(void **state)
{
	struct fx f;
	size_t i;
	unsigned long calls0;

	(void)state;
	fx_open(&f, 60);
	for (i = 0; i < 60; i++)
		if (!strcmp(inst(&f, i).group, "asg-a"))
			add(&f, ACT_PROTECT, "asg-a", i, 0, 1);
	assert_int_equal(f.n, 60);
	for (i = 0; i < sim_instance_count(f.w); i++)
		if (!strcmp(inst(&f, i).group, "asg-b"))
			add(&f, ACT_PROTECT, "asg-b", i, 0, 1);
	assert_int_equal(f.n, 62);
	add(&f, ACT_PROTECT, "asg-a", 0, 0, 0);    /* unprotect: a batch of its own, later */
	calls0 = f.c->calls;
	assert_int_equal(run(&f, 1, 0), 0);
	assert_int_equal(f.c->calls - calls0, 4);  /* 50 + 10 in asg-a, 2 in asg-b, 1 unprotect */
	assert_int_equal(f.r.calls, 4);
	assert_int_equal(f.r.ok, 63);
	for (i = 1; i < 60; i++)
		assert_true(inst(&f, i).protected_from_scale_in);
	assert_false(inst(&f, 0).protected_from_scale_in);
	/* pending for all of a batch before its call: 50 P entries, then 50 D entries */
	for (i = 0; i < 50; i++)
		assert_int_equal(f.j.e[i].what, 'P');
	assert_int_equal(f.j.e[50].what, 'D');
	fx_close(&f);
}

static void test_exec__fencing_stops_the_pass(void **state)
{
	struct fx f;
	struct agent_target t;
	struct container_req req = { 0 };
	struct sim_instance_info i0 = { 0 };
	struct err e = ERR_INIT;
	const struct sim_stop_record *stops;
	unsigned long m0;
	int rc;

	(void)state;
	fx_open(&f, 2);
	i0 = inst(&f, 0);
	memset(&t, 0, sizeof(t));
	str_copy(t.instance_id, sizeof(t.instance_id), i0.id);
	str_copy(t.address, sizeof(t.address), i0.private_ip);
	req.workspace_id = 2;
	assert_int_equal(agentc_ensure(f.a, &t, 9, &req, NULL), 0);  /* a newer leader was here */
	sim_tick(f.w, 10000);
	add(&f, ACT_SET_CAPACITY, "asg-a", 0, 0, 0)->capacity = 2;
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 0, 1, 0);
	add(&f, ACT_STOP_CONTAINER, "asg-a", 0, 2, 1);
	add(&f, ACT_REMOVE_CONTAINER, "asg-a", 1, 3, 1);
	add(&f, ACT_DELETE_ROW, "asg-a", 1, 3, 0);
	m0 = sim_mutations(f.w);
	rc = exec_run(&(struct exec_config){ 3, 0, NULL }, f.c, f.a, &f.ej, f.acts, f.n, &f.r, &e);
	assert_int_equal(rc, SP_EFENCED);
	assert_true(f.r.fenced);
	assert_int_equal(f.r.results[0].outcome, EXEC_OK);
	assert_int_equal(f.r.results[1].outcome, EXEC_FAILED);
	assert_int_equal(f.r.results[1].rc, SP_EFENCED);
	assert_int_equal(f.r.results[2].outcome, EXEC_SKIPPED);
	assert_int_equal(f.r.results[2].rc, SP_EFENCED);
	assert_int_equal(f.r.results[3].outcome, EXEC_SKIPPED);
	assert_int_equal(f.r.results[4].outcome, EXEC_SKIPPED);
	assert_int_equal(f.r.skipped, 3);
	assert_int_equal(sim_mutations(f.w), m0 + 1);
	assert_int_equal(sim_stop_log(f.w, &stops), 0);
	assert_int_equal(f.a->calls, 2);             /* our ensure above, the refused one */
	fx_close(&f);
}

/* A lease whose renewal answers as told, on the journal's fake clock. */
struct fake_lease {
	int64_t now;
	int renew_rc;           /* 0, or the error renew() returns (Redis unreachable) */
	int held;               /* what a successful renew() says */
	int64_t renew_ms;       /* how long a renewal takes */
	int renewals;
};

static int64_t fl_now(void *ctx)
{
	return ((struct fake_lease *)ctx)->now;
}

static int fl_renew(void *ctx, int *held, struct err *e)
{
	struct fake_lease *fl = ctx;

	fl->renewals++;
	fl->now += fl->renew_ms;
	if (fl->renew_rc)
		return err_set(e, fl->renew_rc, "redis 127.0.0.1:6379: connection refused");
	*held = fl->held;
	return 0;
}

/* A 3 s lease taken at 0, the pass starting at 100 ms. */
static struct exec_lease lease_of(struct fake_lease *fl)
{
	fl->now = 100;
	return (struct exec_lease){ fl, fl_now, fl_renew, 3000, 600, 0 };
}

/*
 * Protect, capacity, ensure journaled; the process stops for 6.3 s at the
 * pause_at-th pending call (the audit's reproduction: lease TTL 3 s), then
 * its renewal fails as told. Nothing is issued from there on.
 */
static void lease_lost_case(int pause_at, int renew_rc, int held, int64_t renew_ms)
{
	struct fake_lease fl = { 0, renew_rc, held, renew_ms, 0 };
	struct exec_lease lease = lease_of(&fl);
	struct exec_config cfg = { 1, 0, &lease };
	struct err e = ERR_INIT;
	unsigned long m0, cloud0;
	size_t i, ran = (size_t)pause_at - 1;
	int desired;
	struct fx f;

	fx_open(&f, 2);
	f.j.clock = &fl.now;
	f.j.pause_at = pause_at;
	f.j.pause_ms = 6300;
	add(&f, ACT_PROTECT, "asg-a", 0, 0, 1);
	add(&f, ACT_SET_CAPACITY, "asg-a", 0, 0, 0)->capacity = 3;
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 1, 5, 0);
	m0 = sim_mutations(f.w);
	cloud0 = f.c->calls;
	assert_int_equal(exec_run(&cfg, f.c, f.a, &f.ej, f.acts, f.n, &f.r, &e), SP_EFENCED);
	assert_true(f.r.fenced);
	assert_true(f.r.lease_lost);
	assert_int_equal(fl.renewals, 1);
	assert_int_equal(lease.renewed_at, 0);            /* not moved by a failed renewal */
	assert_non_null(strstr(e.msg, "lease"));
	/* what ran before the pause ran; nothing after it was issued */
	assert_int_equal(sim_mutations(f.w), m0 + ran);
	assert_int_equal(f.c->calls, cloud0 + ran);
	assert_int_equal(f.a->calls, 0);
	for (i = 0; i < f.n; i++) {
		assert_int_equal(f.r.results[i].outcome, i < ran ? EXEC_OK : EXEC_SKIPPED);
		if (i >= ran) {
			assert_int_equal(f.r.results[i].rc, SP_EFENCED);
			assert_non_null(strstr(f.r.results[i].msg, "lease"));
		}
	}
	assert_int_equal(sim_group_sizes(f.w, "asg-a", NULL, NULL, &desired, NULL), 0);
	assert_int_equal(desired, ran >= 2 ? 3 : 2);   /* capacity is the 2nd */
	assert_int_equal(sim_containers_of(f.w, 5, NULL, 0), 0);
	/* the journal: the paused action is pending, with no done entry */
	assert_int_equal(f.j.e[f.j.n - 1].what, 'P');
	assert_string_equal(f.j.e[f.j.n - 1].key, f.acts[ran].key);
	fx_close(&f);
}

static void test_exec__no_mutation_once_the_lease_is_lost(void **state)
{
	(void)state;
	lease_lost_case(1, 0, 0, 10);               /* taken by another: the protect batch */
	lease_lost_case(2, 0, 0, 10);               /* ... the set_capacity */
	lease_lost_case(3, SP_EUNAVAIL, 0, 10);     /* Redis unreachable: the ensure */
	lease_lost_case(2, 0, 1, 2500);             /* renewed, but past the deadline */
}

static void test_exec__renews_the_lease_in_a_long_pass(void **state)
{
	struct fake_lease fl = { 0, 0, 1, 50, 0 };
	struct exec_lease lease = lease_of(&fl);
	struct exec_config cfg = { 1, 0, &lease };
	struct fx f;
	int64_t ws;

	(void)state;
	fx_open(&f, 2);
	f.j.clock = &fl.now;
	f.j.step_ms = 1500;    /* each call takes half the TTL */
	add(&f, ACT_SET_CAPACITY, "asg-a", 0, 0, 0)->capacity = 3;
	for (ws = 1; ws <= 4; ws++)
		add(&f, ACT_ENSURE_CONTAINER, "asg-a", (size_t)(ws % 2), ws, 0);
	assert_int_equal(exec_run(&cfg, f.c, f.a, &f.ej, f.acts, f.n, &f.r, NULL), 0);
	assert_int_equal(f.r.ok, 5);
	assert_false(f.r.lease_lost);
	assert_int_equal(fl.renewals, 5);
	assert_int_equal(f.r.renewals, 5);
	/* the lease runs from when the last renewal started */
	assert_int_equal(lease.renewed_at, fl.now - fl.renew_ms);
	fx_close(&f);

	/* a fresh lease is not renewed: a third of the TTL has not passed */
	fl = (struct fake_lease){ 0, 0, 1, 50, 0 };
	lease = lease_of(&fl);
	fx_open(&f, 2);
	f.j.clock = &fl.now;
	f.j.step_ms = 100;
	add(&f, ACT_SET_CAPACITY, "asg-a", 0, 0, 0)->capacity = 3;
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 0, 1, 0);
	assert_int_equal(exec_run(&cfg, f.c, f.a, &f.ej, f.acts, f.n, &f.r, NULL), 0);
	assert_int_equal(f.r.ok, 2);
	assert_int_equal(fl.renewals, 0);
	fx_close(&f);
}

static void test_exec__rate_limit_skips_the_rest(void **state)
{
	struct fx f;
	int64_t ws;

	(void)state;
	fx_open(&f, 2);
	for (ws = 1; ws <= 4; ws++)
		add(&f, ACT_ENSURE_CONTAINER, "asg-a", (size_t)(ws % 2), ws, 0);
	assert_int_equal(run(&f, 1, 2), 0);
	assert_true(f.r.limited);
	assert_int_equal(f.r.calls, 2);
	assert_int_equal(f.r.ok, 2);
	assert_int_equal(f.r.skipped, 2);
	assert_int_equal(f.r.results[2].rc, SP_ELIMIT);
	assert_int_equal(f.r.results[3].rc, SP_ELIMIT);
	assert_int_equal(sim_containers_of(f.w, 3, NULL, 0), 0);
	assert_int_equal(f.j.n, 4);                  /* skipped actions are not journaled */
	fx_close(&f);
}

static void test_exec__failed_protect_blocks_ensure_on_that_instance(void **state)
{
	struct fx f;
	struct sim_faults fl = { 0 };

	(void)state;
	fx_open(&f, 2);
	add(&f, ACT_PROTECT, "asg-a", 0, 0, 1);
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 0, 1, 0);
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 1, 2, 0);
	fl.throttle = 1;                              /* cloud calls fail, agents answer */
	sim_set_faults(f.w, &fl);
	assert_int_equal(run(&f, 1, 0), 0);
	assert_int_equal(f.r.results[0].outcome, EXEC_FAILED);
	assert_int_equal(f.r.results[0].rc, SP_ETHROTTLED);
	assert_int_equal(f.r.results[0].cls, SP_CLASS_RETRYABLE);
	assert_int_equal(f.r.results[1].outcome, EXEC_SKIPPED);
	assert_int_equal(f.r.results[1].rc, SP_EBUSY);
	assert_int_equal(f.r.results[2].outcome, EXEC_OK);
	assert_int_equal(sim_containers_of(f.w, 1, NULL, 0), 0);
	assert_int_equal(sim_containers_of(f.w, 2, NULL, 0), 1);
	fx_close(&f);
}

static void test_exec__failed_mark_holds_ensures(void **state)
{
	struct fx f;
	struct sim_faults fl = { 0 };

	(void)state;
	fx_open(&f, 2);
	add(&f, ACT_SET_UNHEALTHY, "asg-a", 0, 0, 0)->pool_id = 1;
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 1, 4, 0)->pool_id = 1;
	add(&f, ACT_ENSURE_CONTAINER, "asg-b", 2, 5, 0)->pool_id = 2;
	fl.api_error = 1;                             /* SetInstanceHealth fails */
	sim_set_faults(f.w, &fl);
	assert_int_equal(run(&f, 1, 0), 0);
	assert_int_equal(f.r.results[0].outcome, EXEC_FAILED);
	assert_int_equal(f.r.results[1].outcome, EXEC_SKIPPED);  /* same pool: held */
	assert_int_equal(f.r.results[1].rc, SP_EBUSY);
	assert_int_equal(f.r.results[2].outcome, EXEC_OK);       /* other pool: runs */
	assert_int_equal(sim_containers_of(f.w, 4, NULL, 0), 0);
	fx_close(&f);
}

static void test_exec__delete_row_goes_to_the_caller(void **state)
{
	struct fx f;

	(void)state;
	fx_open(&f, 2);
	add(&f, ACT_DELETE_ROW, "asg-a", 0, 7, 0);
	add(&f, ACT_REMOVE_CONTAINER, "asg-a", 0, 7, 1);     /* missing container: fine */
	add(&f, ACT_DELETE_ROW, "asg-a", 0, 8, 0);
	add(&f, ACT_REMOVE_CONTAINER, "asg-a", 0, 8, 1);
	str_copy(f.acts[3].address, sizeof(f.acts[3].address), "10.99.0.1"); /* unreachable */
	assert_int_equal(run(&f, 1, 0), 0);
	assert_int_equal(f.r.results[0].outcome, EXEC_HANDED_OFF);
	assert_int_equal(f.r.results[1].outcome, EXEC_OK);
	assert_int_equal(f.r.results[3].outcome, EXEC_FAILED);
	assert_int_equal(f.r.results[3].rc, SP_EIO);
	assert_int_equal(f.r.results[2].outcome, EXEC_SKIPPED);  /* its remove failed */
	assert_int_equal(f.r.handed_off, 1);
	/* with a delete_row callback the executor calls it, after the removals */
	f.ej.delete_row = j_delete;
	f.j.n = 0;
	str_copy(f.acts[3].address, sizeof(f.acts[3].address), f.acts[1].address);
	assert_int_equal(run(&f, 1, 0), 0);
	assert_int_equal(f.r.results[0].outcome, EXEC_OK);
	assert_int_equal(f.r.results[2].outcome, EXEC_OK);
	assert_int_equal(f.j.e[f.j.n - 1].what, 'X');
	assert_int_equal(f.j.e[f.j.n - 2].what, 'X');
	fx_close(&f);
}

static void test_exec__gone_is_done(void **state)
{
	struct fx f;

	(void)state;
	fx_open(&f, 2);
	add(&f, ACT_TERMINATE, "asg-a", 0, 0, 0);
	add(&f, ACT_STOP_CONTAINER, "asg-a", 1, 9, 1);       /* no such container */
	assert_int_equal(run(&f, 1, 0), 0);
	assert_int_equal(f.r.ok, 2);
	sim_tick(f.w, 30000);                                /* terminated */
	assert_int_equal(run(&f, 1, 0), 0);
	assert_int_equal(f.r.results[0].outcome, EXEC_OK);   /* terminating a gone one */
	fx_close(&f);
}

static void test_exec__journal_failure_stops_the_pass(void **state)
{
	struct fx f;

	(void)state;
	fx_open(&f, 2);
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 0, 1, 0);
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 0, 2, 0);
	add(&f, ACT_ENSURE_CONTAINER, "asg-a", 1, 3, 0);
	f.j.fail_pending_at = 2;
	assert_int_equal(run(&f, 1, 0), 0);
	assert_int_equal(f.r.results[0].outcome, EXEC_OK);
	assert_int_equal(f.r.results[1].outcome, EXEC_FAILED);
	assert_int_equal(f.r.results[1].rc, SP_EUNAVAIL);
	assert_int_equal(f.r.results[2].outcome, EXEC_SKIPPED);
	assert_int_equal(sim_containers_of(f.w, 2, NULL, 0), 0);  /* not journaled: not run */
	assert_int_equal(sim_containers_of(f.w, 3, NULL, 0), 0);
	assert_int_equal(f.r.calls, 1);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec__journals_pending_before_and_done_after),
		cmocka_unit_test(test_exec__orders_phases_whatever_the_input),
		cmocka_unit_test(test_exec__batches_protection_by_group_and_flag),
		cmocka_unit_test(test_exec__fencing_stops_the_pass),
		cmocka_unit_test(test_exec__no_mutation_once_the_lease_is_lost),
		cmocka_unit_test(test_exec__renews_the_lease_in_a_long_pass),
		cmocka_unit_test(test_exec__rate_limit_skips_the_rest),
		cmocka_unit_test(test_exec__failed_protect_blocks_ensure_on_that_instance),
		cmocka_unit_test(test_exec__failed_mark_holds_ensures),
		cmocka_unit_test(test_exec__delete_row_goes_to_the_caller),
		cmocka_unit_test(test_exec__gone_is_done),
		cmocka_unit_test(test_exec__journal_failure_stops_the_pass),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
