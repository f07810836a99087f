/* test_sim: the simulated world alone (drivers/sim.c) through its two driver interfaces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/agentc.h"
#include "drivers/cloud.h"
#include "drivers/sim.h"
#include "model/strbuf.h"

struct fx {
	struct sim_world *w;
	struct cloud *c;
	struct agentc *a;
};

static void fx_open(struct fx *f, uint64_t seed, const struct sim_faults *faults, int desired,
		    int slots)
{
	struct sim_config cfg;
	struct sim_group_config g = { "asg-a", 0, 10, desired, slots, 0 };

	sim_config_defaults(&cfg);
	if (faults)
		cfg.faults = *faults;
	f->w = sim_world_new(seed, &cfg);
	assert_non_null(f->w);
	assert_int_equal(sim_add_group(f->w, &g, NULL), 0);
	f->c = sim_cloud(f->w);
	f->a = sim_agentc(f->w);
	assert_non_null(f->c);
	assert_non_null(f->a);
}

static void fx_close(struct fx *f)
{
	cloud_free(f->c);
	agentc_free(f->a);
	sim_world_free(f->w);
}

static void target_of(struct fx *f, size_t i, struct agent_target *t)
{
	struct sim_instance_info info;

	assert_int_equal(sim_instance_get(f->w, i, &info), 0);
	memset(t, 0, sizeof(*t));
	str_copy(t->instance_id, sizeof(t->instance_id), info.id);
	str_copy(t->address, sizeof(t->address), info.private_ip);
	t->port = 7070;
}

static void req_for(int64_t ws, int expect_snapshot, struct container_req *r)
{
	memset(r, 0, sizeof(*r));
	r->workspace_id = ws;
	snprintf(r->workspace_name, sizeof(r->workspace_name), "ws-%lld", (long long)ws);
	str_copy(r->image, sizeof(r->image), "code-server:4");
	str_copy(r->bucket, sizeof(r->bucket), "bucket");
	snprintf(r->prefix, sizeof(r->prefix), "ws/%lld", (long long)ws);
	r->cpu_milli = 1000;
	r->memory_mib = 1024;
	r->expect_snapshot = expect_snapshot;
}

static struct sim_container_info only_container(struct fx *f, int64_t ws)
{
	struct sim_container_info ci[4];

	assert_int_equal(sim_containers_of(f->w, ws, ci, 4), 1);
	return ci[0];
}

/* The container of ws as its agent reports it (one observation of t). */
static struct obs_container observed_one(struct fx *f, const struct agent_target *t, int64_t ws)
{
	struct obs_container c;
	struct obs_agent a;
	size_t i;

	memset(&c, 0, sizeof(c));
	obs_agent_init(&a);
	assert_int_equal(agentc_observe(f->a, t, 1, 1, &a, NULL), 0);
	for (i = 0; i < a.ncontainers; i++)
		if (a.containers[i].workspace_id == ws)
			c = a.containers[i];
	obs_agent_release(&a);
	assert_int_equal(c.workspace_id, ws);
	return c;
}

static void test_sim__launch_takes_ticks_then_in_service(void **state)
{
	struct fx f;
	struct obs_group g;
	size_t i;

	(void)state;
	fx_open(&f, 1, NULL, 2, 4);
	obs_group_init(&g);
	assert_int_equal(cloud_describe(f.c, "asg-a", &g, NULL), 0);
	assert_true(g.found && g.complete);
	assert_int_equal(g.ninstances, 0);           /* nothing launched before a tick */
	sim_tick(f.w, 1000);
	assert_int_equal(cloud_describe(f.c, "asg-a", &g, NULL), 0);
	assert_int_equal(g.ninstances, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(g.instances[i].lifecycle, LC_PENDING);
		assert_true(g.instances[i].ec2_seen);
		assert_string_equal(g.instances[i].ec2_state, "pending");
	}
	sim_tick(f.w, 20000);                        /* launch takes 30-40 s */
	assert_int_equal(cloud_describe(f.c, "asg-a", &g, NULL), 0);
	assert_int_equal(g.instances[0].lifecycle, LC_PENDING);
	sim_tick(f.w, 20000);
	assert_int_equal(cloud_describe(f.c, "asg-a", &g, NULL), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(g.instances[i].lifecycle, LC_IN_SERVICE);
		assert_string_equal(g.instances[i].ec2_state, "running");
		assert_true(strncmp(g.instances[i].private_ip, "10.", 3) == 0);
	}
	assert_string_not_equal(g.instances[0].id, g.instances[1].id);
	assert_string_not_equal(g.instances[0].private_ip, g.instances[1].private_ip);
	assert_int_equal(g.desired_capacity, 2);
	obs_group_release(&g);
	fx_close(&f);
}

static void test_sim__agent_boots_after_in_service(void **state)
{
	struct fx f;
	struct agent_target t;
	struct obs_agent oa;
	struct sim_instance_info info;

	(void)state;
	fx_open(&f, 2, NULL, 1, 4);
	obs_agent_init(&oa);
	sim_tick(f.w, 1000);
	target_of(&f, 0, &t);
	assert_int_equal(agentc_observe(f.a, &t, 1, 1, &oa, NULL), 0);
	assert_int_equal(oa.observed, 0);            /* pending: nothing answers */
	assert_true(oa.error[0] != '\0');
	do {
		sim_tick(f.w, 1000);
		assert_int_equal(sim_instance_get(f.w, 0, &info), 0);
	} while (info.lifecycle != LC_IN_SERVICE);
	assert_int_equal(agentc_observe(f.a, &t, 1, 1, &oa, NULL), 0);
	assert_int_equal(oa.observed, 0);            /* InService, agent still booting */
	sim_tick(f.w, 5000);
	assert_int_equal(agentc_observe(f.a, &t, 1, 1, &oa, NULL), 0);
	assert_int_equal(oa.observed, 1);
	assert_int_equal(oa.capacity, 4);
	assert_int_equal(oa.ncontainers, 0);
	obs_agent_release(&oa);
	fx_close(&f);
}

static void test_sim__scale_in_spares_protected_instances(void **state)
{
	struct fx f;
	struct sim_instance_info info;
	const struct sim_term_record *terms;
	const char *ids[2];
	char keep[2][OBS_INSTANCE_ID_MAX + 1];
	size_t nt, i;
	int active, desired;

	(void)state;
	fx_open(&f, 3, NULL, 4, 4);
	sim_tick(f.w, 60000);
	for (i = 0; i < 2; i++) {
		assert_int_equal(sim_instance_get(f.w, i + 1, &info), 0);
		str_copy(keep[i], sizeof(keep[i]), info.id);
		ids[i] = keep[i];
	}
	assert_int_equal(cloud_set_protection(f.c, "asg-a", ids, 2, 1, NULL), 0);
	assert_int_equal(cloud_set_capacity(f.c, "asg-a", 0, NULL), 0);
	sim_tick(f.w, 1000);
	assert_int_equal(sim_group_sizes(f.w, "asg-a", NULL, NULL, &desired, &active), 0);
	assert_int_equal(desired, 0);
	assert_int_equal(active, 2);                 /* protected ones cannot go */
	for (i = 0; i < 2; i++) {
		assert_int_equal(sim_instance_find(f.w, keep[i], &info), 0);
		assert_int_equal(info.lifecycle, LC_IN_SERVICE);
	}
	nt = sim_term_log(f.w, &terms);
	assert_int_equal(nt, 2);
	for (i = 0; i < nt; i++) {
		assert_int_equal(terms[i].cause, SIM_TERM_SCALE_IN);
		assert_string_not_equal(terms[i].instance_id, keep[0]);
		assert_string_not_equal(terms[i].instance_id, keep[1]);
	}
	sim_tick(f.w, 30000);                        /* terminating -> terminated, not replaced */
	assert_int_equal(sim_group_sizes(f.w, "asg-a", NULL, NULL, NULL, &active), 0);
	assert_int_equal(active, 2);
	assert_int_equal(sim_instance_count(f.w), 4);
	/* capacity outside [min, max] is refused, not clamped */
	assert_int_equal(cloud_set_capacity(f.c, "asg-a", 11, NULL), SP_EINVAL);
	{
		struct sim_group_config ng = { "asg-a", 1, 12, 0, 4, 0 };

		assert_int_equal(sim_update_group(f.w, &ng, NULL), 0);
		assert_int_equal(sim_group_sizes(f.w, "asg-a", NULL, NULL, &desired, NULL), 0);
		assert_int_equal(desired, 1);              /* moved into the new bounds */
		assert_int_equal(cloud_set_capacity(f.c, "asg-a", 11, NULL), 0);
		ng.name = "nope";
		assert_int_equal(sim_update_group(f.w, &ng, NULL), SP_ENOTFOUND);
	}
	fx_close(&f);
}

static void test_sim__terminate_records_what_the_instance_held(void **state)
{
	struct fx f;
	struct agent_target t;
	struct container_req r;
	struct sim_instance_info info;
	const struct sim_term_record *terms;
	int desired;

	(void)state;
	fx_open(&f, 4, NULL, 2, 4);
	sim_tick(f.w, 60000);
	target_of(&f, 0, &t);
	req_for(11, 0, &r);
	assert_int_equal(agentc_ensure(f.a, &t, 1, &r, NULL), 0);
	assert_int_equal(cloud_terminate(f.c, t.instance_id, 1, NULL), 0);
	assert_int_equal(cloud_terminate(f.c, t.instance_id, 1, NULL), 0);   /* idempotent */
	assert_int_equal(sim_group_sizes(f.w, "asg-a", NULL, NULL, &desired, NULL), 0);
	assert_int_equal(desired, 1);
	assert_int_equal(sim_term_log(f.w, &terms), 1);
	assert_int_equal(terms[0].cause, SIM_TERM_API);
	assert_int_equal(terms[0].workspace_id, 11);
	sim_tick(f.w, 30000);
	assert_int_equal(sim_instance_get(f.w, 0, &info), 0);
	assert_int_equal(info.lifecycle, LC_TERMINATED);
	assert_int_equal(sim_containers_of(f.w, 11, NULL, 0), 0);
	assert_int_equal(cloud_terminate(f.c, t.instance_id, 0, NULL), SP_ENOTFOUND);
	fx_close(&f);
}

static void test_sim__eventual_consistency_hides_new_instances(void **state)
{
	struct sim_faults fl = { 0 };
	struct obs_group g;
	uint64_t seed;
	int hidden_asg = 0, hidden_ec2 = 0;
	size_t i;

	(void)state;
	fl.consistency_ms = 20000;
	obs_group_init(&g);
	for (seed = 1; seed <= 8; seed++) {
		struct fx f;

		fx_open(&f, seed, &fl, 3, 4);
		sim_tick(f.w, 2000);
		assert_int_equal(cloud_describe(f.c, "asg-a", &g, NULL), 0);
		hidden_asg += 3 - (int)g.ninstances;
		for (i = 0; i < g.ninstances; i++)
			if (!g.instances[i].ec2_seen) {
				hidden_ec2++;
				assert_string_equal(g.instances[i].private_ip, "");
			}
		sim_tick(f.w, 40000);
		assert_int_equal(cloud_describe(f.c, "asg-a", &g, NULL), 0);
		assert_int_equal(g.ninstances, 3);      /* visible in the end */
		for (i = 0; i < 3; i++)
			assert_true(g.instances[i].ec2_seen);
		fx_close(&f);
	}
	assert_true(hidden_asg > 0);
	assert_true(hidden_ec2 > 0);
	obs_group_release(&g);
}

static void test_sim__cloud_faults_fail_without_effect(void **state)
{
	struct sim_faults fl = { 0 };
	struct fx f;
	struct obs_group g;
	struct err e = ERR_INIT;
	int desired;

	(void)state;
	fx_open(&f, 5, NULL, 3, 4);
	sim_tick(f.w, 60000);
	fl.throttle = 1;
	sim_set_faults(f.w, &fl);
	assert_int_equal(cloud_set_capacity(f.c, "asg-a", 5, &e), SP_ETHROTTLED);
	assert_int_equal(sim_group_sizes(f.w, "asg-a", NULL, NULL, &desired, NULL), 0);
	assert_int_equal(desired, 3);
	obs_group_init(&g);
	assert_int_equal(cloud_describe(f.c, "asg-a", &g, &e), SP_ETHROTTLED);
	assert_false(g.complete);
	fl.throttle = 0;
	fl.partial_describe = 1;
	sim_set_faults(f.w, &fl);
	assert_int_equal(cloud_describe(f.c, "asg-a", &g, &e), SP_EUNAVAIL);
	assert_true(g.found);
	assert_false(g.complete);                    /* unknown, not absent */
	sim_faults_off(f.w);
	assert_int_equal(cloud_describe(f.c, "asg-a", &g, &e), 0);
	assert_true(g.complete);
	assert_int_equal(g.ninstances, 3);
	obs_group_release(&g);
	fx_close(&f);
}

static void test_sim__agent_refuses_lower_epoch(void **state)
{
	struct fx f;
	struct agent_target t;
	struct container_req r;
	struct obs_agent oa;
	struct sim_instance_info info;
	struct err e = ERR_INIT;

	(void)state;
	fx_open(&f, 6, NULL, 1, 4);
	sim_tick(f.w, 60000);
	target_of(&f, 0, &t);
	req_for(21, 0, &r);
	obs_agent_init(&oa);
	assert_int_equal(agentc_ensure(f.a, &t, 5, &r, NULL), 0);
	assert_int_equal(agentc_sync(f.a, &t, 4, 21, &e), SP_EFENCED);
	assert_non_null(strstr(e.msg, "epoch"));
	assert_int_equal(agentc_observe(f.a, &t, 1, 4, &oa, NULL), SP_EFENCED);
	assert_int_equal(oa.observed, 0);
	assert_int_equal(agentc_stop(f.a, &t, 3, 21, 1, NULL), SP_EFENCED);
	assert_int_equal(sim_fence_refusals(f.w), 3);
	assert_int_equal(only_container(&f, 21).state, CS_CREATED);   /* refused: no effect */
	assert_int_equal(agentc_observe(f.a, &t, 1, 6, &oa, NULL), 0);
	assert_int_equal(oa.observed, 1);
	assert_int_equal(oa.max_epoch_seen, 6);
	assert_int_equal(agentc_ensure(f.a, &t, 5, &r, NULL), SP_EFENCED);
	assert_int_equal(sim_instance_get(f.w, 0, &info), 0);
	assert_int_equal(info.max_epoch, 6);
	obs_agent_release(&oa);
	fx_close(&f);
}

static void test_sim__files_follow_the_workspace_between_instances(void **state)
{
	struct fx f;
	struct agent_target ta, tb;
	struct container_req r;
	struct obs_agent oa;
	struct sim_container_info ci;
	const struct sim_stop_record *stops;
	int64_t v1, v2;

	(void)state;
	fx_open(&f, 7, NULL, 2, 4);
	sim_tick(f.w, 60000);
	target_of(&f, 0, &ta);
	target_of(&f, 1, &tb);
	req_for(31, 0, &r);
	obs_agent_init(&oa);
	assert_int_equal(agentc_ensure(f.a, &ta, 1, &r, NULL), 0);
	assert_int_equal(agentc_ensure(f.a, &ta, 1, &r, NULL), 0);   /* idempotent */
	assert_int_equal(agentc_sync(f.a, &ta, 1, 31, NULL), SP_EBUSY); /* still restoring */
	sim_tick(f.w, 4000);
	assert_int_equal(agentc_observe(f.a, &ta, 1, 1, &oa, NULL), 0);
	assert_int_equal(oa.ncontainers, 1);
	assert_int_equal(oa.containers[0].state, CS_RUNNING);
	assert_false(oa.containers[0].ready);
	assert_string_equal(oa.containers[0].name, "spinup-31");
	sim_tick(f.w, 3000);
	assert_int_equal(agentc_observe(f.a, &ta, 1, 1, &oa, NULL), 0);
	assert_true(oa.containers[0].ready);
	assert_false(sim_bucket_get(f.w, 31, NULL));
	assert_int_equal(agentc_stop(f.a, &ta, 1, 31, 1, NULL), 0);
	assert_true(sim_bucket_get(f.w, 31, &v1));
	assert_int_equal(only_container(&f, 31).state, CS_STOPPED);
	assert_int_equal(agentc_remove(f.a, &ta, 1, 31, 1, NULL), 0);
	assert_int_equal(agentc_remove(f.a, &ta, 1, 31, 1, NULL), 0);  /* missing: fine */
	assert_int_equal(sim_containers_of(f.w, 31, NULL, 0), 0);
	/* start on the other instance: restore brings the same files, the user writes more */
	req_for(31, 1, &r);
	assert_int_equal(agentc_ensure(f.a, &tb, 1, &r, NULL), 0);
	sim_tick(f.w, 5000);
	ci = only_container(&f, 31);
	assert_string_equal(ci.instance_id, tb.instance_id);
	assert_int_equal(ci.state, CS_RUNNING);
	assert_false(ci.restore_failed);
	assert_int_equal(ci.files, v1 + 1);
	assert_int_equal(agentc_sync(f.a, &tb, 1, 31, NULL), 0);
	assert_true(sim_bucket_get(f.w, 31, &v2));
	assert_int_equal(v2, v1 + 1);
	assert_int_equal(sim_stop_log(f.w, &stops), 2);
	assert_true(stops[0].synced && !stops[0].removed);
	assert_true(stops[1].synced && stops[1].removed);
	obs_agent_release(&oa);
	fx_close(&f);
}

static void test_sim__missing_snapshot_fails_restore_and_forbids_sync(void **state)
{
	struct fx f;
	struct agent_target t;
	struct container_req r;
	struct sim_container_info ci;
	const struct sim_stop_record *stops;

	(void)state;
	fx_open(&f, 8, NULL, 1, 4);
	sim_tick(f.w, 60000);
	target_of(&f, 0, &t);
	req_for(41, 1, &r);                          /* expects a snapshot; there is none */
	assert_int_equal(agentc_ensure(f.a, &t, 1, &r, NULL), 0);
	sim_tick(f.w, 5000);
	ci = only_container(&f, 41);
	assert_int_equal(ci.state, CS_FAILED);
	assert_true(ci.restore_failed);
	assert_int_equal(agentc_sync(f.a, &t, 1, 41, NULL), SP_ECONFLICT);
	assert_false(sim_bucket_get(f.w, 41, NULL));
	/* the snapshot shows up; ensure restores again and runs */
	assert_int_equal(sim_bucket_set(f.w, 41, 1, 7), 0);
	assert_int_equal(agentc_ensure(f.a, &t, 1, &r, NULL), 0);
	sim_tick(f.w, 5000);
	ci = only_container(&f, 41);
	assert_int_equal(ci.state, CS_RUNNING);
	assert_false(ci.restore_failed);
	assert_int_equal(ci.files, 8);
	/* a stop without sync loses files: the log says so */
	assert_int_equal(agentc_stop(f.a, &t, 1, 41, 0, NULL), 0);
	assert_int_equal(sim_stop_log(f.w, &stops), 1);
	assert_false(stops[0].synced);
	fx_close(&f);
}

static void test_sim__sync_faults_keep_the_container(void **state)
{
	struct sim_faults fl = { 0 };
	struct fx f;
	struct agent_target t;
	struct container_req r;
	const struct sim_stop_record *stops;
	int64_t v;

	(void)state;
	fx_open(&f, 9, NULL, 1, 4);
	sim_tick(f.w, 60000);
	target_of(&f, 0, &t);
	req_for(51, 0, &r);
	assert_int_equal(agentc_ensure(f.a, &t, 1, &r, NULL), 0);
	sim_tick(f.w, 8000);
	fl.sync_fail = 1;
	sim_set_faults(f.w, &fl);
	assert_int_equal(agentc_stop(f.a, &t, 1, 51, 1, NULL), SP_EUNAVAIL);
	assert_int_equal(only_container(&f, 51).state, CS_RUNNING);
	/* slow and failing: accepted, pending, then the container stays as it was */
	fl.sync_fail = 1;
	fl.sync_slow = 1;
	fl.sync_slow_ms = 3000;
	sim_set_faults(f.w, &fl);
	assert_int_equal(agentc_stop(f.a, &t, 1, 51, 1, NULL), 0);
	assert_int_equal(observed_one(&f, &t, 51).pending, COP_STOP);
	assert_int_equal(observed_one(&f, &t, 51).last_sync, SYNC_RUNNING);
	sim_faults_off(f.w);
	sim_tick(f.w, 3000);
	assert_int_equal(only_container(&f, 51).state, CS_RUNNING);
	assert_int_equal(observed_one(&f, &t, 51).pending, COP_NONE);
	assert_int_equal(observed_one(&f, &t, 51).last_sync, SYNC_FAILED);
	assert_int_equal(sim_stop_log(f.w, &stops), 0);
	/* slow: the remove is accepted; a second one and a sync meanwhile too, an ensure is busy */
	fl.sync_fail = 0;
	sim_set_faults(f.w, &fl);
	assert_int_equal(agentc_remove(f.a, &t, 1, 51, 1, NULL), 0);
	assert_int_equal(agentc_sync(f.a, &t, 1, 51, NULL), 0);
	assert_int_equal(agentc_remove(f.a, &t, 1, 51, 1, NULL), 0);
	assert_int_equal(agentc_ensure(f.a, &t, 1, &r, NULL), SP_EBUSY);
	assert_int_equal(observed_one(&f, &t, 51).pending, COP_REMOVE);
	assert_false(sim_bucket_get(f.w, 51, NULL));
	assert_int_equal(only_container(&f, 51).state, CS_RUNNING);
	sim_faults_off(f.w);
	sim_tick(f.w, 3000);
	assert_true(sim_bucket_get(f.w, 51, &v));
	assert_int_equal(sim_containers_of(f.w, 51, NULL, 0), 0);   /* removed after the sync */
	assert_int_equal(sim_stop_log(f.w, &stops), 1);
	assert_true(stops[0].synced);
	assert_true(stops[0].removed);
	assert_int_equal(agentc_remove(f.a, &t, 1, 51, 1, NULL), 0);   /* missing: success */
	fx_close(&f);
}

static void test_sim__crash_then_ensure_restarts(void **state)
{
	struct sim_faults fl = { 0 };
	struct fx f;
	struct agent_target t;
	struct container_req r;
	struct obs_agent oa;

	(void)state;
	fx_open(&f, 10, NULL, 1, 1);
	sim_tick(f.w, 60000);
	target_of(&f, 0, &t);
	req_for(61, 0, &r);
	assert_int_equal(agentc_ensure(f.a, &t, 1, &r, NULL), 0);
	req_for(62, 0, &r);
	assert_int_equal(agentc_ensure(f.a, &t, 1, &r, NULL), SP_EBUSY);  /* one slot */
	sim_tick(f.w, 8000);
	fl.container_crash = 1;
	sim_set_faults(f.w, &fl);
	sim_tick(f.w, 1000);
	sim_faults_off(f.w);
	obs_agent_init(&oa);
	assert_int_equal(agentc_observe(f.a, &t, 1, 1, &oa, NULL), 0);
	assert_int_equal(oa.containers[0].state, CS_EXITED);
	assert_int_equal(oa.containers[0].restarts, 1);
	req_for(62, 0, &r);                          /* a crashed container keeps its slot */
	assert_int_equal(agentc_ensure(f.a, &t, 1, &r, NULL), SP_EBUSY);
	req_for(61, 0, &r);
	assert_int_equal(agentc_ensure(f.a, &t, 1, &r, NULL), 0);
	sim_tick(f.w, 5000);
	assert_int_equal(only_container(&f, 61).state, CS_RUNNING);
	assert_true(only_container(&f, 61).ready);
	obs_agent_release(&oa);
	fx_close(&f);
}

static void test_sim__agent_flaps_read_as_unknown(void **state)
{
	struct sim_faults fl = { 0 }, none = { 0 };
	struct fx f;
	struct agent_target t;
	struct obs_agent oa;

	(void)state;
	fx_open(&f, 11, NULL, 1, 4);
	sim_tick(f.w, 60000);
	target_of(&f, 0, &t);
	fl.agent_flap = 1;
	fl.agent_flap_ms = 10000;
	sim_set_faults(f.w, &fl);
	sim_tick(f.w, 1000);
	sim_set_faults(f.w, &none);                  /* no new outage; this one runs out */
	obs_agent_init(&oa);
	assert_int_equal(agentc_observe(f.a, &t, 1, 1, &oa, NULL), 0);
	assert_int_equal(oa.observed, 0);
	assert_int_equal(oa.ncontainers, 0);
	assert_true(oa.error[0] != '\0');
	sim_tick(f.w, 5000);
	assert_int_equal(agentc_observe(f.a, &t, 1, 1, &oa, NULL), 0);
	assert_int_equal(oa.observed, 0);
	sim_tick(f.w, 5000);
	assert_int_equal(agentc_observe(f.a, &t, 1, 1, &oa, NULL), 0);
	assert_int_equal(oa.observed, 1);
	/* sim_faults_off ends an outage in progress */
	sim_set_faults(f.w, &fl);
	sim_tick(f.w, 1000);
	sim_faults_off(f.w);
	assert_int_equal(agentc_observe(f.a, &t, 1, 1, &oa, NULL), 0);
	assert_int_equal(oa.observed, 1);
	obs_agent_release(&oa);
	fx_close(&f);
}

/* A scripted run under every fault, summarised as text. */
static void scripted_run(uint64_t seed, struct strbuf *out)
{
	struct sim_faults fl = { 0.05, 0.05, 0.1, 15000, 0.002, 0.01, 8000, 0.05, 0.01,
				 0.1, 0.05, 4000, 0.05 };
	struct fx f;
	struct obs_group g;
	struct container_req r;
	struct agent_target t;
	const struct sim_term_record *terms;
	const struct sim_stop_record *stops;
	size_t i, k, nt, ns;

	fx_open(&f, seed, &fl, 3, 4);
	obs_group_init(&g);
	for (k = 0; k < 40; k++) {
		sim_tick(f.w, 5000);
		if (cloud_describe(f.c, "asg-a", &g, NULL) < 0)
			continue;
		for (i = 0; i < g.ninstances; i++) {
			if (!g.instances[i].ec2_seen)
				continue;
			memset(&t, 0, sizeof(t));
			str_copy(t.instance_id, sizeof(t.instance_id), g.instances[i].id);
			str_copy(t.address, sizeof(t.address), g.instances[i].private_ip);
			req_for((int64_t)(k % 7) + 1, 0, &r);
			if (k % 3)
				agentc_ensure(f.a, &t, 1, &r, NULL);
			else
				agentc_stop(f.a, &t, 1, (int64_t)(k % 5) + 1, 1, NULL);
		}
		cloud_set_capacity(f.c, "asg-a", (int)(k % 5) + 1, NULL);
	}
	for (i = 0; i < sim_instance_count(f.w); i++) {
		struct sim_instance_info info;

		sim_instance_get(f.w, i, &info);
		strbuf_addf(out, "%s %s %d %zu\n", info.id, info.private_ip, info.lifecycle,
			    info.ncontainers);
	}
	nt = sim_term_log(f.w, &terms);
	ns = sim_stop_log(f.w, &stops);
	strbuf_addf(out, "terms %zu stops %zu now %lld mutations %lu\n", nt, ns,
		    (long long)sim_now(f.w), sim_mutations(f.w));
	obs_group_release(&g);
	fx_close(&f);
}

static void test_sim__same_seed_same_world(void **state)
{
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT, c = STRBUF_INIT;

	(void)state;
	scripted_run(42, &a);
	scripted_run(42, &b);
	scripted_run(43, &c);
	assert_true(a.len > 100);
	assert_string_equal(a.buf, b.buf);
	assert_string_not_equal(a.buf, c.buf);
	strbuf_release(&a);
	strbuf_release(&b);
	strbuf_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sim__launch_takes_ticks_then_in_service),
		cmocka_unit_test(test_sim__agent_boots_after_in_service),
		cmocka_unit_test(test_sim__scale_in_spares_protected_instances),
		cmocka_unit_test(test_sim__terminate_records_what_the_instance_held),
		cmocka_unit_test(test_sim__eventual_consistency_hides_new_instances),
		cmocka_unit_test(test_sim__cloud_faults_fail_without_effect),
		cmocka_unit_test(test_sim__agent_refuses_lower_epoch),
		cmocka_unit_test(test_sim__files_follow_the_workspace_between_instances),
		cmocka_unit_test(test_sim__missing_snapshot_fails_restore_and_forbids_sync),
		cmocka_unit_test(test_sim__sync_faults_keep_the_container),
		cmocka_unit_test(test_sim__crash_then_ensure_restarts),
		cmocka_unit_test(test_sim__agent_flaps_read_as_unknown),
		cmocka_unit_test(test_sim__same_seed_same_world),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
