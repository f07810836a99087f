/*
 * test_pgstate: the reconciler's store (drivers/pgstate.c) on a real Postgres.
 *
 * Each test gets a fresh migrated database of its own (testdb_create), so
 * row counts are exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "drivers/pgstate.h"
#include "model/plan.h"
#include "tests/lib/testdb.h"
#include "model/banned.h"

struct fx {
	char ci[512];
	PGconn *c;                 /* owner connection for setup and checks */
	struct pgstate *p;
	struct pgstate_snapshot s;
};

static void q(struct fx *f, const char *sql)
{
	PGresult *r = PQexec(f->c, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

/* The single value of a query. */
static long long qv(struct fx *f, const char *sql)
{
	PGresult *r = PQexec(f->c, sql);
	long long v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

static const char *qs(struct fx *f, const char *sql)
{
	static char buf[512];
	PGresult *r = PQexec(f->c, sql);

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	str_copy(buf, sizeof(buf), PQgetvalue(r, 0, 0));
	PQclear(r);
	return buf;
}

static struct pgstate *open_state(struct fx *f, const char *holder)
{
	struct err e = ERR_INIT;
	struct pgstate *p = NULL;

	if (pgstate_open(f->ci, "test", holder, &p, &e))
		fail_msg("pgstate_open: %s", e.msg);
	return p;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(testdb_create(1, f->ci, sizeof(f->ci)), 0);
	f->c = PQconnectdb(f->ci);
	assert_int_equal(PQstatus(f->c), CONNECTION_OK);
	q(f, "INSERT INTO pools (name, asg_name, region) VALUES ('default', 'asg-a', 'eu-west-1')");
	q(f, "INSERT INTO workspaces (name, owner, pool_id) SELECT 'ws' || g, 'alice', id"
	     " FROM pools, generate_series(1, 3) g ORDER BY g");
	f->p = open_state(f, "test-a");
	pgstate_snapshot_init(&f->s);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	pgstate_snapshot_release(&f->s);
	pgstate_free(f->p);
	PQfinish(f->c);
	free(f);
	return 0;
}

static void load(struct fx *f)
{
	struct err e = ERR_INIT;

	if (pgstate_load(f->p, &f->s, &e))
		fail_msg("load: %s", e.msg);
}

static int64_t acquire(struct pgstate *p)
{
	struct err e = ERR_INIT;
	int64_t ep = 0;

	if (pgstate_acquire_epoch(p, &ep, &e))
		fail_msg("acquire: %s", e.msg);
	return ep;
}

static int64_t ws_id(struct fx *f, const char *name)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT id FROM workspaces WHERE name = '%s'", name);
	return qv(f, sql);
}

static struct pgstate_pass pass_of(const struct plan_output *o, int64_t now)
{
	struct pgstate_pass ps;

	memset(&ps, 0, sizeof(ps));
	ps.started_at = now;
	ps.finished_at = now;
	ps.now = now;
	ps.plan = o;
	ps.outcome = "acted";
	ps.error = "";
	return ps;
}

static int record(struct fx *f, struct pgstate *p, const struct plan_output *o, int64_t now,
		  struct pgstate_record_stats *st, struct err *e)
{
	struct pgstate_pass ps = pass_of(o, now);

	return pgstate_record(p, &f->s, &ps, st, e);
}

static void status_for(struct workspace_status *st, int64_t id, enum ws_phase ph, int64_t now)
{
	workspace_status_init(st, id, now);
	st->phase = ph;
	st->observed_generation = 1;
	status_set_cond(st, COND_SCHEDULED, CSTAT_TRUE, "Placed", "on i-1", now);
	str_copy(st->instance_id, sizeof(st->instance_id), "i-1");
}

/* ---------------------------------------------------------------- load */

static void test_pgstate__load_is_one_round_trip(void **state)
{
	struct fx *f = *state;
	unsigned long t0, t1;
	size_t i;

	q(f, "INSERT INTO instances (instance_id, pool_id, first_seen) SELECT 'i-1', id, now() FROM pools");
	q(f, "INSERT INTO pool_status (pool_id, destructive_in_window) SELECT id, 2 FROM pools");
	q(f, "INSERT INTO workspace_status (workspace_id, phase, instance_id)"
	     " SELECT id, 'READY', 'i-1' FROM workspaces WHERE name = 'ws2'");
	q(f, "INSERT INTO drift (subject, reason, cls, first_seen, last_seen)"
	     " VALUES ('pool/default', 'CapacityLow', 'changed', now(), now())");
	q(f, "INSERT INTO actions (key, type, instance_id, payload, epoch)"
	     " VALUES ('cap/1', 'set_capacity', '', '{\"asg\": \"asg-a\", \"capacity\": 3}', 7)");
	q(f, "UPDATE operator_controls SET observe_only = true");
	t0 = pgstate_round_trips(f->p);
	load(f);
	t1 = pgstate_round_trips(f->p);
	assert_int_equal(t1 - t0, 1);
	assert_int_equal(f->s.npools, 1);
	assert_string_equal(f->s.pools[0].asg_name, "asg-a");
	assert_int_equal(f->s.nworkspaces, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(f->s.has_status[i], !strcmp(f->s.workspaces[i].name, "ws2"));
	assert_int_equal(f->s.status[1].phase, PHASE_READY);
	assert_string_equal(f->s.status[1].instance_id, "i-1");
	assert_int_equal(f->s.ninstances, 1);
	assert_string_equal(f->s.instances[0].instance_id, "i-1");
	assert_int_equal(f->s.npool_records, 1);
	assert_int_equal(f->s.pool_records[0].destructive_in_window, 2);
	assert_int_equal(f->s.ndrift, 1);
	assert_string_equal(f->s.drift[0].f.reason, "CapacityLow");
	assert_int_equal(f->s.npending, 1);
	assert_int_equal(f->s.pending[0].type, ACT_SET_CAPACITY);
	assert_int_equal(f->s.pending[0].capacity, 3);
	assert_string_equal(f->s.pending[0].asg_name, "asg-a");
	assert_true(f->s.global_observe_only);

	/* a hundred times the rows: still one round trip */
	q(f, "INSERT INTO workspaces (name, owner, pool_id) SELECT 'more' || g, 'bob', id"
	     " FROM pools, generate_series(1, 300) g");
	t0 = pgstate_round_trips(f->p);
	load(f);
	assert_int_equal(pgstate_round_trips(f->p) - t0, 1);
	assert_int_equal(f->s.nworkspaces, 303);
}

/* ---------------------------------------------------------------- record */

static void test_pgstate__record_writes_only_changed_rows(void **state)
{
	struct fx *f = *state;
	struct status_change ch[1];
	struct ws_event ev[1];
	struct instance_record inst[2];
	struct pool_record pr[1];
	struct plan_output o;
	struct pgstate_record_stats st;
	struct err e = ERR_INIT;
	int64_t id = ws_id(f, "ws1"), now = 1700000000000;
	char xmin_i[32], xmin_s[32], xmin_p[32];

	acquire(f->p);
	load(f);
	memset(&o, 0, sizeof(o));
	status_for(&ch[0].status, id, PHASE_ALLOCATING_VM, now);
	memset(ev, 0, sizeof(ev));
	ev[0].workspace_id = id;
	str_copy(ev[0].type, sizeof(ev[0].type), "ALLOCATION_STARTED");
	ev[0].from = PHASE_PENDING;
	ev[0].to = PHASE_ALLOCATING_VM;
	ev[0].at = now;
	memset(inst, 0, sizeof(inst));
	str_copy(inst[0].instance_id, sizeof(inst[0].instance_id), "i-1");
	inst[0].pool_id = f->s.pools[0].id;
	inst[0].first_seen = now;
	inst[1] = inst[0];
	str_copy(inst[1].instance_id, sizeof(inst[1].instance_id), "i-2");
	memset(pr, 0, sizeof(pr));
	pr[0].pool_id = f->s.pools[0].id;
	pr[0].window_start = now;
	o.changes = ch;
	o.nchanges = 1;
	o.events = ev;
	o.nevents = 1;
	o.instances = inst;
	o.ninstances = 2;
	o.pool_records = pr;
	o.npool_records = 1;
	if (record(f, f->p, &o, now, &st, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(st.status, 1);
	assert_int_equal(st.events, 1);
	assert_int_equal(st.instances_written, 2);
	assert_int_equal(st.pools_written, 1);
	assert_true(st.statements <= PGSTATE_RECORD_STMTS);
	assert_string_equal(qs(f, "SELECT phase FROM workspace_status"), "ALLOCATING_VM");
	assert_int_equal(qv(f, "SELECT count(*) FROM workspace_events WHERE type = 'ALLOCATION_STARTED'"
			      " AND workspace_name = 'ws1' AND to_phase = 'ALLOCATING_VM'"), 1);
	assert_int_equal(qv(f, "SELECT count(*) FROM reconcile_passes WHERE holder = 'test-a'"), 1);
	str_copy(xmin_i, sizeof(xmin_i), qs(f, "SELECT xmin FROM instances WHERE instance_id = 'i-1'"));
	str_copy(xmin_s, sizeof(xmin_s), qs(f, "SELECT xmin FROM workspace_status"));
	str_copy(xmin_p, sizeof(xmin_p), qs(f, "SELECT xmin FROM pool_status"));

	/* the same world again: nothing changed, nothing rewritten; i-2 left the set */
	load(f);
	assert_int_equal(f->s.status[0].phase, PHASE_ALLOCATING_VM);
	o.nchanges = 0;
	o.nevents = 0;
	o.ninstances = 1;
	if (record(f, f->p, &o, now + 1000, &st, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(st.status, 0);
	assert_int_equal(st.events, 0);
	assert_int_equal(st.instances_written, 0);
	assert_int_equal(st.instances_deleted, 1);
	assert_int_equal(st.pools_written, 0);
	assert_string_equal(qs(f, "SELECT xmin FROM instances WHERE instance_id = 'i-1'"), xmin_i);
	assert_string_equal(qs(f, "SELECT xmin FROM workspace_status"), xmin_s);
	assert_string_equal(qs(f, "SELECT xmin FROM pool_status"), xmin_p);
	assert_int_equal(qv(f, "SELECT count(*) FROM instances"), 1);

	/* one field changes: exactly that row is written */
	load(f);
	inst[0].unhealthy_passes = 1;
	if (record(f, f->p, &o, now + 2000, &st, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(st.instances_written, 1);
	assert_int_equal(qv(f, "SELECT unhealthy_passes FROM instances"), 1);
}

/*
 * What the planner remembers comes back as it was written: a restarted
 * spinupd must not give an instance whose agent was healthy the register
 * timeout again (ever_healthy), nor forget when a safety stop began and
 * which clear request it has handled.
 */
static void test_pgstate__records_survive_a_round_trip(void **state)
{
	struct fx *f = *state;
	struct instance_record inst[2];
	struct pool_record pr[1];
	struct plan_output o;
	struct pgstate_record_stats st;
	struct err e = ERR_INIT;
	int64_t now = 1700000000000;

	acquire(f->p);
	load(f);
	memset(&o, 0, sizeof(o));
	memset(inst, 0, sizeof(inst));
	str_copy(inst[0].instance_id, sizeof(inst[0].instance_id), "i-healthy");
	inst[0].pool_id = f->s.pools[0].id;
	inst[0].first_seen = now - 60000;
	inst[0].unhealthy_passes = 2;
	inst[0].orphan_seen = now - 1000;
	inst[0].ever_healthy = 1;
	inst[1] = inst[0];
	str_copy(inst[1].instance_id, sizeof(inst[1].instance_id), "i-booting");
	inst[1].ever_healthy = 0;
	memset(pr, 0, sizeof(pr));
	pr[0].pool_id = f->s.pools[0].id;
	pr[0].window_start = now - 5000;
	pr[0].destructive_in_window = 4;
	pr[0].safety_stopped = 1;
	pr[0].stopped_at = now - 3000;
	pr[0].clear_handled_at = now - 4000;
	o.instances = inst;
	o.ninstances = 2;
	o.pool_records = pr;
	o.npool_records = 1;
	if (record(f, f->p, &o, now, &st, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(st.instances_written, 2);
	assert_int_equal(st.pools_written, 1);
	q(f, "UPDATE pools SET safety_clear_requested_at = spinup_ts(1700000000000)");

	load(f);                                  /* a new spinupd reads them back */
	assert_int_equal(f->s.ninstances, 2);
	assert_string_equal(f->s.instances[0].instance_id, "i-booting");
	assert_int_equal(f->s.instances[0].ever_healthy, 0);
	assert_string_equal(f->s.instances[1].instance_id, "i-healthy");
	assert_int_equal(f->s.instances[1].ever_healthy, 1);
	assert_int_equal(f->s.instances[1].first_seen, inst[0].first_seen);
	assert_int_equal(f->s.instances[1].unhealthy_passes, 2);
	assert_int_equal(f->s.instances[1].orphan_seen, inst[0].orphan_seen);
	assert_int_equal(f->s.npool_records, 1);
	assert_int_equal(f->s.pool_records[0].window_start, pr[0].window_start);
	assert_int_equal(f->s.pool_records[0].destructive_in_window, 4);
	assert_int_equal(f->s.pool_records[0].safety_stopped, 1);
	assert_int_equal(f->s.pool_records[0].stopped_at, pr[0].stopped_at);
	assert_int_equal(f->s.pool_records[0].clear_handled_at, pr[0].clear_handled_at);
	assert_int_equal(f->s.pools[0].safety_clear_requested_at, now);

	/* ever_healthy alone changing is a change, and so is a handled clear */
	inst[1].ever_healthy = 1;
	pr[0].clear_handled_at = now;
	if (record(f, f->p, &o, now + 1000, &st, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(st.instances_written, 1);
	assert_int_equal(st.pools_written, 1);
	assert_int_equal(qv(f, "SELECT count(*) FROM instances WHERE ever_healthy"), 2);
	assert_int_equal(qv(f, "SELECT spinup_ms(safety_clear_handled_at) FROM pool_status"), now);
}

static void test_pgstate__record_is_one_round_trip_and_atomic(void **state)
{
	struct fx *f = *state;
	struct status_change ch[2];
	struct ws_event ev[1];
	struct plan_output o;
	struct pgstate_record_stats st;
	struct err e = ERR_INIT;
	unsigned long t0;

	acquire(f->p);
	load(f);
	memset(&o, 0, sizeof(o));
	status_for(&ch[0].status, ws_id(f, "ws1"), PHASE_ALLOCATING_VM, 1000);
	status_for(&ch[1].status, ws_id(f, "ws2"), PHASE_ALLOCATING_VM, 1000);
	memset(ev, 0, sizeof(ev));
	ev[0].workspace_id = ws_id(f, "ws1");
	str_copy(ev[0].type, sizeof(ev[0].type), "ALLOCATION_STARTED");
	ev[0].at = 1000;
	o.changes = ch;
	o.nchanges = 2;
	o.events = ev;
	o.nevents = 1;
	t0 = pgstate_round_trips(f->p);
	if (record(f, f->p, &o, 1000, &st, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(pgstate_round_trips(f->p) - t0, 1);
	assert_int_equal(st.status, 2);
	assert_int_equal(qv(f, "SELECT count(*) FROM workspace_status"), 2);

	/* a later statement fails (an event without a type): the earlier ones roll back */
	load(f);
	status_for(&ch[0].status, ws_id(f, "ws1"), PHASE_BOOTING_CONTAINER, 2000);
	o.nchanges = 1;
	ev[0].type[0] = '\0';
	assert_int_equal(record(f, f->p, &o, 2000, &st, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "workspace_events_type_length"));
	assert_string_equal(qs(f, "SELECT phase FROM workspace_status s JOIN workspaces w"
			       " ON w.id = s.workspace_id WHERE w.name = 'ws1'"), "ALLOCATING_VM");
	assert_int_equal(qv(f, "SELECT count(*) FROM reconcile_passes"), 1);
	/* and the connection is usable afterwards */
	load(f);
	assert_int_equal(f->s.nworkspaces, 3);
}

static void test_pgstate__stale_epoch_refused(void **state)
{
	struct fx *f = *state;
	struct pgstate *b = open_state(f, "test-b");
	struct status_change ch[1];
	struct action act[1];
	struct plan_output o;
	struct err e = ERR_INIT;
	int64_t id = ws_id(f, "ws1");

	assert_int_equal(acquire(f->p), 1);
	assert_int_equal(acquire(b), 2);
	load(f);
	memset(&o, 0, sizeof(o));
	status_for(&ch[0].status, id, PHASE_READY, 1000);
	o.changes = ch;
	o.nchanges = 1;
	assert_int_equal(record(f, f->p, &o, 1000, NULL, &e), SP_EFENCED);
	assert_non_null(strstr(e.msg, "stale"));
	assert_int_equal(qv(f, "SELECT count(*) FROM workspace_status"), 0);
	assert_int_equal(qv(f, "SELECT count(*) FROM reconcile_passes"), 0);

	memset(act, 0, sizeof(act));
	act[0].type = ACT_SET_CAPACITY;
	str_copy(act[0].key, sizeof(act[0].key), "cap/1");
	assert_int_equal(pgstate_journal(f->p, act, 1, &e), SP_EFENCED);
	assert_int_equal(qv(f, "SELECT count(*) FROM actions"), 0);

	/* the current holder writes */
	if (record(f, b, &o, 1000, NULL, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(qv(f, "SELECT epoch FROM workspace_status"), 2);
	assert_int_equal(qv(f, "SELECT count(*) FROM reconcile_passes WHERE epoch = 2"), 1);
	pgstate_free(b);
}

static void test_pgstate__journal_pending_then_done(void **state)
{
	struct fx *f = *state;
	struct action act[4];
	struct err e = ERR_INIT;
	int64_t ep = acquire(f->p);
	char sql[128];

	load(f);
	memset(act, 0, sizeof(act));
	act[0].type = ACT_SET_CAPACITY;
	act[0].capacity = 2;
	str_copy(act[0].asg_name, sizeof(act[0].asg_name), "asg-a");
	str_copy(act[0].key, sizeof(act[0].key), "capacity/asg-a");
	act[1].type = ACT_ENSURE_CONTAINER;
	act[1].workspace_id = ws_id(f, "ws1");
	str_copy(act[1].instance_id, sizeof(act[1].instance_id), "i-1");
	str_copy(act[1].key, sizeof(act[1].key), "ensure/1/i-1");
	act[2] = act[1];
	str_copy(act[2].key, sizeof(act[2].key), "ensure/2/i-1");
	act[3] = act[1];
	str_copy(act[3].key, sizeof(act[3].key), "ensure/3/i-1");
	if (pgstate_journal(f->p, act, 2, &e))
		fail_msg("journal: %s", e.msg);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM actions WHERE state = 'pending' AND epoch = %lld",
		 (long long)ep);
	assert_int_equal(qv(f, sql), 2);
	assert_true(pgstate_journal_has(f->p, "capacity/asg-a"));
	assert_false(pgstate_journal_has(f->p, "ensure/2/i-1"));
	/* one journaled alone, as the executor's pending() does for a late action */
	if (pgstate_journal_one(f->p, &act[2], &e))
		fail_msg("journal one: %s", e.msg);
	assert_int_equal(qv(f, sql), 3);
	assert_int_equal(qv(f, "SELECT (payload->>'capacity')::int FROM actions WHERE type = 'set_capacity'"), 2);
	/* one more that the pass's mutation limit keeps from running: its entry goes */
	if (pgstate_journal_one(f->p, &act[3], &e))
		fail_msg("journal one: %s", e.msg);
	assert_int_equal(pgstate_journal_discard(f->p, &act[3]), 0);

	assert_int_equal(pgstate_journal_result(f->p, &act[0], 0, ""), 0);
	assert_int_equal(pgstate_journal_result(f->p, &act[1], SP_ETIMEOUT, "agent timed out"), 0);
	if (record(f, f->p, NULL, 5000, NULL, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(qv(f, "SELECT count(*) FROM actions WHERE state = 'pending'"), 0);
	assert_string_equal(qs(f, "SELECT state FROM actions WHERE key = 'capacity/asg-a'"), "done");
	assert_string_equal(qs(f, "SELECT error FROM actions WHERE key = 'ensure/1/i-1'"), "agent timed out");
	assert_string_equal(qs(f, "SELECT state FROM actions WHERE key = 'ensure/2/i-1'"), "failed");
	assert_int_equal(qv(f, "SELECT count(*) FROM actions WHERE key = 'ensure/3/i-1'"), 0);
	assert_int_equal(qv(f, "SELECT count(*) FROM actions WHERE finished_at IS NULL"), 0);
}

static void test_pgstate__settle_closes_stale_pending(void **state)
{
	struct fx *f = *state;
	struct pgstate_settlement v[2];
	struct err e = ERR_INIT;

	q(f, "INSERT INTO actions (key, type, instance_id, epoch) VALUES"
	     " ('a', 'ensure_container', 'i-1', 1), ('b', 'terminate', 'i-2', 1)");
	acquire(f->p);
	acquire(f->p);
	load(f);
	assert_int_equal(f->s.npending, 2);
	memset(v, 0, sizeof(v));
	v[0].id = f->s.pending[0].id;
	v[0].done = 1;
	str_copy(v[0].note, sizeof(v[0].note), "settled: container observed");
	v[1].id = f->s.pending[1].id;
	str_copy(v[1].note, sizeof(v[1].note), "settled: instance still running");
	if (pgstate_settle(f->p, v, 2, &e))
		fail_msg("settle: %s", e.msg);
	assert_string_equal(qs(f, "SELECT state FROM actions WHERE key = 'a'"), "done");
	assert_string_equal(qs(f, "SELECT state FROM actions WHERE key = 'b'"), "failed");
	load(f);
	assert_int_equal(f->s.npending, 0);
}

/* ---------------------------------------------------------------- drift */

static void drift_pass(struct fx *f, struct drift_finding *d, size_t n, int64_t now,
		       struct pgstate_record_stats *st)
{
	struct plan_output o;
	struct err e = ERR_INIT;

	load(f);
	memset(&o, 0, sizeof(o));
	o.drift = d;
	o.ndrift = n;
	if (record(f, f->p, &o, now, st, &e))
		fail_msg("record: %s", e.msg);
}

static void test_pgstate__drift_seen_and_flaps(void **state)
{
	struct fx *f = *state;
	struct pgstate_record_stats st;
	struct drift_finding d[1];
	const int64_t t0 = 1700000000000;

	acquire(f->p);
	memset(d, 0, sizeof(d));
	str_copy(d[0].subject, sizeof(d[0].subject), "workspace/ws1");
	str_copy(d[0].reason, sizeof(d[0].reason), "ContainerMissing");
	d[0].cls = DRIFT_MISSING;
	str_copy(d[0].remedy, sizeof(d[0].remedy), "ensure container");
	drift_pass(f, d, 1, t0, &st);
	assert_int_equal(st.drift_new, 1);
	assert_int_equal(qv(f, "SELECT spinup_ms(first_seen) - spinup_ms(last_seen) FROM drift"), 0);
	assert_int_equal(qv(f, "SELECT spinup_ms(first_seen) FROM drift"), t0);

	/* seen again soon, unchanged: no write */
	drift_pass(f, d, 1, t0 + 1000, &st);
	assert_int_equal(st.drift_new + st.drift_touched, 0);
	/* seen again later: last_seen moves, first_seen stays */
	drift_pass(f, d, 1, t0 + 60000, &st);
	assert_int_equal(st.drift_touched, 1);
	assert_int_equal(qv(f, "SELECT spinup_ms(last_seen) FROM drift"), t0 + 60000);
	assert_int_equal(qv(f, "SELECT spinup_ms(first_seen) FROM drift"), t0);

	/* gone: resolved */
	drift_pass(f, d, 0, t0 + 70000, &st);
	assert_int_equal(st.drift_resolved, 1);
	assert_int_equal(qv(f, "SELECT spinup_ms(resolved_at) FROM drift"), t0 + 70000);
	/* back: the same finding reopens with a flap */
	drift_pass(f, d, 1, t0 + 80000, &st);
	assert_int_equal(st.drift_reopened, 1);
	assert_int_equal(st.drift_new, 0);
	assert_int_equal(qv(f, "SELECT count(*) FROM drift"), 1);
	assert_int_equal(qv(f, "SELECT flap_count FROM drift"), 1);
	assert_int_equal(qv(f, "SELECT count(*) FROM drift WHERE resolved_at IS NULL"), 1);
	assert_int_equal(qv(f, "SELECT spinup_ms(first_seen) FROM drift"), t0);
	drift_pass(f, d, 0, t0 + 90000, &st);
	drift_pass(f, d, 1, t0 + 100000, &st);
	assert_int_equal(qv(f, "SELECT flap_count FROM drift"), 2);
}

/* ---------------------------------------------------------------- deletion */

static void test_pgstate__delete_finalizes_row(void **state)
{
	struct fx *f = *state;
	struct status_change ch[1];
	struct plan_output o;
	struct pgstate_record_stats st;
	struct err e = ERR_INIT;
	int64_t id1 = ws_id(f, "ws1"), id2 = ws_id(f, "ws2");

	q(f, "UPDATE workspaces SET deletion_requested_at = now() WHERE name = 'ws1'");
	acquire(f->p);
	load(f);
	memset(&o, 0, sizeof(o));
	status_for(&ch[0].status, id1, PHASE_DELETING, 1000);
	o.changes = ch;
	o.nchanges = 1;
	if (pgstate_journal(f->p, NULL, 0, &e))
		fail_msg("journal: %s", e.msg);
	assert_int_equal(pgstate_finalize_row(f->p, id1), 0);
	assert_int_equal(pgstate_finalize_row(f->p, id2), 0);   /* not marked: must stay */
	if (record(f, f->p, &o, 2000, &st, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(st.rows_deleted, 1);
	assert_int_equal(qv(f, "SELECT count(*) FROM workspaces WHERE name = 'ws1'"), 0);
	assert_int_equal(qv(f, "SELECT count(*) FROM workspaces WHERE name = 'ws2'"), 1);
	assert_int_equal(qv(f, "SELECT count(*) FROM workspace_status"), 0);
	assert_int_equal(qv(f, "SELECT count(*) FROM workspace_events WHERE type = 'DELETE_COMPLETED'"
			      " AND workspace_name = 'ws1' AND to_phase = 'DELETED'"), 1);
	load(f);
	assert_int_equal(f->s.nworkspaces, 2);
}

/* ---------------------------------------------------------------- retention */

static void test_pgstate__prune_keeps_recent_and_pending(void **state)
{
	struct fx *f = *state;
	struct pgstate_pass ps;
	struct pgstate_record_stats st;
	struct err e = ERR_INIT;

	q(f, "INSERT INTO reconcile_passes (started_at) VALUES (now() - interval '30 days'), (now())");
	q(f, "INSERT INTO actions (key, type, state, finished_at, created_at) VALUES"
	     " ('old-done', 'sync', 'done', now() - interval '30 days', now() - interval '30 days'),"
	     " ('old-pending', 'sync', 'pending', NULL, now() - interval '30 days'),"
	     " ('new-done', 'sync', 'done', now(), now())");
	q(f, "INSERT INTO drift (subject, reason, cls, first_seen, last_seen, resolved_at) VALUES"
	     " ('pool/a', 'Old', 'changed', now(), now(), now() - interval '30 days'),"
	     " ('pool/a', 'Open', 'changed', now() - interval '30 days', now(), NULL)");
	acquire(f->p);
	load(f);
	ps = pass_of(NULL, qv(f, "SELECT spinup_ms(now())"));
	ps.prune_before = ps.now - 14LL * 86400000;
	if (pgstate_record(f->p, &f->s, &ps, &st, &e))
		fail_msg("record: %s", e.msg);
	assert_int_equal(st.pruned, 3);
	assert_int_equal(qv(f, "SELECT count(*) FROM reconcile_passes"), 2);  /* recent + this one */
	assert_int_equal(qv(f, "SELECT count(*) FROM actions WHERE key IN ('old-pending', 'new-done')"), 2);
	assert_int_equal(qv(f, "SELECT count(*) FROM actions"), 2);
	assert_int_equal(qv(f, "SELECT count(*) FROM drift WHERE reason = 'Open'"), 1);
	assert_int_equal(qv(f, "SELECT count(*) FROM drift"), 1);
}

/* ---------------------------------------------------------------- listen */

static void test_pgstate__listen_wakes_on_desired_change(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	struct pollfd pfd;
	int n = 0, i;

	if (pgstate_listen(f->p, &e))
		fail_msg("listen: %s", e.msg);
	assert_int_equal(pgstate_notifications(f->p, &e), 0);
	q(f, "UPDATE workspaces SET state = 'Stopped' WHERE name = 'ws3'");
	for (i = 0; i < 50 && n == 0; i++) {
		pfd.fd = pgstate_socket(f->p);
		pfd.events = POLLIN;
		pfd.revents = 0;
		assert_true(pfd.fd >= 0);
		if (poll(&pfd, 1, 100) > 0)
			n = pgstate_notifications(f->p, &e);
	}
	assert_int_equal(n, 1);
	/* status writes do not wake the loop (a different channel) */
	q(f, "INSERT INTO workspace_status (workspace_id) SELECT id FROM workspaces WHERE name = 'ws3'");
	pfd.revents = 0;
	n = poll(&pfd, 1, 200) > 0 ? pgstate_notifications(f->p, &e) : 0;
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pgstate__load_is_one_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__record_writes_only_changed_rows, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__records_survive_a_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__record_is_one_round_trip_and_atomic, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__stale_epoch_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__journal_pending_then_done, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__settle_closes_stale_pending, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__drift_seen_and_flaps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__delete_finalizes_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__prune_keeps_recent_and_pending, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pgstate__listen_wakes_on_desired_change, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
