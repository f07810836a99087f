/*
 * test_pgstore: the database contract and the store, on a real Postgres.
 *
 * Each test works in this binary's own database (tests/lib/testdb.h); the
 * migration tests create empty ones of their own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "drivers/migrations.h"
#include "drivers/pgstore.h"
#include "model/manifest.h"
#include "model/spec.h"
#include "tests/lib/testdb.h"
#include "model/banned.h"

static struct pgstore *open_store(const char *conninfo)
{
	struct err e = ERR_INIT;
	struct pgstore *s = NULL;

	assert_non_null(conninfo);
	if (pgstore_open(conninfo, "test_pgstore", &s, &e))
		fail_msg("pgstore_open: %s", e.msg);
	return s;
}

/* A one-shot SQL statement as role (NULL: owner); returns the SQLSTATE ("" = ok). */
static char *sql_as(const char *role, const char *sql, int n, const char *const *p)
{
	static char state[8];
	PGconn *c = testdb_connect();
	PGresult *r;

	assert_non_null(c);
	r = testdb_exec_as(c, role, sql, n, p);
	str_copy(state, sizeof(state), testdb_sqlstate(r));
	PQclear(r);
	PQfinish(c);
	return state;
}

/* The single value of a query run as the owner, copied into a static buffer. */
static const char *sql_value(const char *sql, int n, const char *const *p)
{
	static char v[256];
	PGconn *c = testdb_connect();
	PGresult *r;

	assert_non_null(c);
	r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	assert_int_equal(PQntuples(r), 1);
	str_copy(v, sizeof(v), PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

static void pool_doc(struct manifest_doc *d, const char *name)
{
	memset(d, 0, sizeof(*d));
	d->kind = MANIFEST_POOL;
	pool_spec_defaults(&d->pool);
	str_copy(d->pool.name, sizeof(d->pool.name), name);
	str_copy(d->pool.asg_name, sizeof(d->pool.asg_name), "asg-test");
	str_copy(d->pool.region, sizeof(d->pool.region), "eu-west-1");
	str_copy(d->pool.default_image, sizeof(d->pool.default_image), "codercom/code-server:4");
}

static void ws_doc(struct manifest_doc *d, const char *pool, const char *name)
{
	memset(d, 0, sizeof(*d));
	d->kind = MANIFEST_WORKSPACE;
	workspace_spec_defaults(&d->ws);
	str_copy(d->ws.name, sizeof(d->ws.name), name);
	str_copy(d->ws.pool, sizeof(d->ws.pool), pool);
	str_copy(d->ws.owner, sizeof(d->ws.owner), "alice");
	str_copy(d->ws.bucket, sizeof(d->ws.bucket), "spinup-files");
	str_copy(d->ws.prefix, sizeof(d->ws.prefix), "alice/blog/");
}

static void set_of(struct manifest_set *set, struct manifest_doc *docs, size_t n)
{
	memset(set, 0, sizeof(*set));
	set->docs = docs;
	set->n = n;
}

static int apply(struct pgstore *s, struct manifest_doc *docs, size_t n, int force, int dry,
		 struct pgstore_apply_result *r, struct err *e)
{
	struct pgstore_apply_opts o = { dry, force };
	struct manifest_set set;

	set_of(&set, docs, n);
	return pgstore_apply(s, &set, &o, r, e);
}

static struct pgstore_ws_row *get_ws(struct pgstore *s, const char *pool, const char *name)
{
	struct err e = ERR_INIT;
	struct pgstore_ws_row *rows = NULL;
	size_t n = 0;

	if (pgstore_list_workspaces(s, pool, name, &rows, &n, &e))
		fail_msg("list: %s", e.msg);
	if (n != 1) {
		free(rows);
		return NULL;
	}
	return rows;
}

/* ------------------------------------------------------------ migrations */

static void test_pgstore__migrate_twice_applies_once(void **state)
{
	char ci[1024];
	struct err e = ERR_INIT;
	struct pgstore *s;
	int applied = -1, v = -1;

	(void)state;
	assert_int_equal(testdb_create(0, ci, sizeof(ci)), 0);
	s = open_store(ci);
	assert_int_equal(pgstore_check_schema(s, &e), SP_ESCHEMA);
	assert_non_null(strstr(e.msg, "run spinctl migrate"));
	assert_int_equal(pgstore_migrate(s, &applied, &e), 0);
	assert_int_equal(applied, (int)spinup_nmigrations);
	assert_int_equal(pgstore_migrate(s, &applied, &e), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(pgstore_schema_version(s, &v, &e), 0);
	assert_int_equal(v, pgstore_latest_version());
	assert_int_equal(pgstore_check_schema(s, &e), 0);
	pgstore_free(s);
}

struct migrate_job {
	const char *conninfo;
	int rc;
	int applied;
	char msg[ERR_MSG_MAX];
};

static void *migrate_thread(void *arg)
{
	struct migrate_job *j = arg;
	struct err e = ERR_INIT;
	struct pgstore *s = NULL;

	j->rc = pgstore_open(j->conninfo, "migrate-race", &s, &e);
	if (!j->rc)
		j->rc = pgstore_migrate(s, &j->applied, &e);
	memcpy(j->msg, e.msg, sizeof(j->msg));
	pgstore_free(s);
	return NULL;
}

static void test_pgstore__migrate_concurrently_is_safe(void **state)
{
	char ci[1024];
	struct migrate_job jobs[3];
	pthread_t th[3];
	char count[16];
	int i, total = 0;

	(void)state;
	assert_int_equal(testdb_create(0, ci, sizeof(ci)), 0);
	for (i = 0; i < 3; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].conninfo = ci;
		assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &jobs[i]), 0);
	}
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		if (jobs[i].rc)
			fail_msg("migrate %d: %s", i, jobs[i].msg);
		total += jobs[i].applied;
	}
	assert_int_equal(total, (int)spinup_nmigrations);
	{
		PGconn *c = PQconnectdb(ci);
		PGresult *r = PQexec(c, "SELECT count(*) FROM schema_migrations");
		assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
		snprintf(count, sizeof(count), "%zu", spinup_nmigrations);
		assert_string_equal(PQgetvalue(r, 0, 0), count);
		PQclear(r);
		PQfinish(c);
	}
}

static void test_pgstore__unreachable_database_is_unavailable(void **state)
{
	struct err e = ERR_INIT;
	struct pgstore *s = NULL;

	(void)state;
	assert_int_equal(pgstore_open("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2",
				      NULL, &s, &e), SP_EUNAVAIL);
	assert_null(s);
	assert_non_null(strstr(e.msg, "could not connect to the database"));
	assert_int_equal(pgstore_open("not a conninfo '", NULL, &s, &e), SP_EINVAL);
}

/* ------------------------------------------------------------ apply */

static void test_pgstore__apply_get_round_trip(void **state)
{
	struct pgstore *s = open_store(testdb_conninfo());
	struct pgstore_apply_result r;
	struct manifest_doc docs[3];
	struct pgstore_ws_row *row;
	struct err e = ERR_INIT;
	struct pgstore_pool_row *pools = NULL;
	size_t np = 0;

	(void)state;
	pgstore_apply_result_init(&r);
	pool_doc(&docs[0], "rt-pool");
	docs[0].pool.warm_instances = 2;
	ws_doc(&docs[1], "rt-pool", "rt-a");
	docs[1].ws.state = WS_STATE_STOPPED;
	docs[1].ws.cpu_milli = 1500;
	docs[1].ws.nlabels = 2;
	str_copy(docs[1].ws.labels[0].key, SPEC_LABEL_KEY_MAX + 1, "team");
	str_copy(docs[1].ws.labels[0].value, SPEC_LABEL_VALUE_MAX + 1, "web");
	str_copy(docs[1].ws.labels[1].key, SPEC_LABEL_KEY_MAX + 1, "env");
	str_copy(docs[1].ws.labels[1].value, SPEC_LABEL_VALUE_MAX + 1, "dev");
	ws_doc(&docs[2], "rt-pool", "rt-b");
	/* workspaces first in the file: the pool is still written first */
	{
		struct manifest_doc order[3] = { docs[1], docs[2], docs[0] };
		if (apply(s, order, 3, 0, 0, &r, &e))
			fail_msg("apply: %s", e.msg);
		assert_int_equal(r.outcomes[0], PGSTORE_CREATED);
		assert_int_equal(r.outcomes[2], PGSTORE_CREATED);
	}
	row = get_ws(s, "rt-pool", "rt-a");
	assert_non_null(row);
	assert_string_equal(row->spec.owner, "alice");
	assert_string_equal(row->spec.pool, "rt-pool");
	assert_int_equal(row->spec.state, WS_STATE_STOPPED);
	assert_int_equal(row->spec.cpu_milli, 1500);
	assert_int_equal(row->spec.memory_mib, 2048);
	assert_string_equal(row->spec.prefix, "alice/blog/");
	assert_int_equal(row->spec.nlabels, 2);
	assert_string_equal(row->spec.labels[0].key, "env"); /* sorted */
	assert_string_equal(row->spec.labels[1].value, "web");
	assert_int_equal(row->spec.generation, 1);
	assert_false(row->has_status);
	assert_true(row->created_at > 0);
	free(row);

	assert_int_equal(pgstore_list_pools(s, "rt-pool", &pools, &np, &e), 0);
	assert_int_equal(np, 1);
	assert_int_equal(pools[0].spec.warm_instances, 2);
	assert_int_equal(pools[0].nworkspaces, 2);
	assert_string_equal(pools[0].spec.default_image, "codercom/code-server:4");
	free(pools);

	/* the same set again: unchanged, nothing written */
	assert_int_equal(apply(s, docs, 3, 0, 0, &r, &e), 0);
	assert_int_equal(r.outcomes[0], PGSTORE_UNCHANGED);
	assert_int_equal(r.outcomes[1], PGSTORE_UNCHANGED);
	assert_int_equal(r.nchanges, 0);

	/* one field changes: configured, one change, generation bumps once */
	str_copy(docs[1].ws.image, sizeof(docs[1].ws.image), "ghcr.io/x/ide:2");
	assert_int_equal(apply(s, docs, 3, 0, 0, &r, &e), 0);
	assert_int_equal(r.outcomes[1], PGSTORE_CONFIGURED);
	assert_int_equal(r.outcomes[2], PGSTORE_UNCHANGED);
	assert_int_equal(r.nchanges, 1);
	assert_string_equal(r.changes[0].field, "image");
	assert_string_equal(r.changes[0].old_value, "");
	assert_string_equal(r.changes[0].new_value, "ghcr.io/x/ide:2");
	assert_string_equal(r.changes[0].owner, "spinctl");
	assert_false(r.changes[0].conflict);
	row = get_ws(s, "rt-pool", "rt-a");
	assert_non_null(row);
	assert_int_equal(row->spec.generation, 2);
	assert_string_equal(row->spec.image, "ghcr.io/x/ide:2");
	free(row);
	pgstore_apply_result_release(&r);
	pgstore_free(s);
}

static void test_pgstore__dry_run_writes_nothing(void **state)
{
	struct pgstore *s = open_store(testdb_conninfo());
	struct pgstore_apply_result r;
	struct manifest_doc docs[2];
	struct err e = ERR_INIT;

	(void)state;
	pgstore_apply_result_init(&r);
	pool_doc(&docs[0], "dry-pool");
	ws_doc(&docs[1], "dry-pool", "dry-ws");
	assert_int_equal(apply(s, docs, 2, 0, 1, &r, &e), 0);
	assert_int_equal(r.outcomes[0], PGSTORE_CREATED);
	assert_int_equal(r.outcomes[1], PGSTORE_CREATED);
	assert_true(r.nchanges > 0);
	assert_string_equal(sql_value("SELECT count(*) FROM pools WHERE name = 'dry-pool'", 0, NULL),
			    "0");
	/* the same connection applies for real after a rolled-back one */
	if (apply(s, docs, 2, 0, 0, &r, &e))
		fail_msg("apply after a dry run: %s", e.msg);
	assert_int_equal(r.outcomes[1], PGSTORE_CREATED);
	assert_string_equal(sql_value("SELECT count(*) FROM workspaces WHERE name = 'dry-ws'", 0,
				      NULL), "1");
	pgstore_apply_result_release(&r);
	pgstore_free(s);
}

static void test_pgstore__apply_with_one_bad_document_writes_nothing(void **state)
{
	struct pgstore *s = open_store(testdb_conninfo());
	struct pgstore_apply_result r;
	struct manifest_doc docs[3];
	struct err e = ERR_INIT;

	(void)state;
	pgstore_apply_result_init(&r);
	pool_doc(&docs[0], "bad-pool");
	ws_doc(&docs[1], "bad-pool", "good-ws");
	ws_doc(&docs[2], "bad-pool", "bad-ws");
	docs[2].ws.cpu_milli = 5;   /* the database refuses it */
	assert_int_equal(apply(s, docs, 3, 0, 0, &r, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "workspace/bad-ws"));
	assert_non_null(strstr(e.msg, "workspaces_cpu_milli_range"));
	assert_string_equal(sql_value("SELECT count(*) FROM pools WHERE name = 'bad-pool'", 0, NULL),
			    "0");
	assert_string_equal(sql_value("SELECT count(*) FROM workspaces WHERE name = 'good-ws'", 0,
				      NULL), "0");

	/* a workspace of a pool that exists nowhere */
	ws_doc(&docs[0], "no-such-pool", "orphan");
	assert_int_equal(apply(s, docs, 1, 0, 0, &r, &e), SP_ENOTFOUND);
	assert_non_null(strstr(e.msg, "no-such-pool"));
	assert_int_equal(r.failed_doc, 0);

	/* ... found after writes of the same set are already in flight */
	pool_doc(&docs[0], "bad-pool");
	ws_doc(&docs[1], "bad-pool", "good-ws");
	ws_doc(&docs[2], "no-such-pool", "orphan");
	assert_int_equal(apply(s, docs, 3, 0, 0, &r, &e), SP_ENOTFOUND);
	assert_int_equal(r.failed_doc, 2);
	assert_string_equal(sql_value("SELECT count(*) FROM pools WHERE name = 'bad-pool'", 0, NULL),
			    "0");
	/* and the connection is usable afterwards */
	if (apply(s, docs, 2, 0, 0, &r, &e))
		fail_msg("apply: %s", e.msg);
	assert_string_equal(sql_value("SELECT count(*) FROM workspaces WHERE name = 'good-ws'", 0,
				      NULL), "1");
	pgstore_apply_result_release(&r);
	pgstore_free(s);
}

/*
 * Writes are pipelined and read back in chunks: a refusal after several
 * chunks have already succeeded still rolls everything back, and names its
 * document.
 */
static void test_pgstore__refusal_deep_in_a_large_apply_writes_nothing(void **state)
{
	enum { N = 700, BAD = 611 };
	struct pgstore *s = open_store(testdb_conninfo());
	struct pgstore_apply_result r;
	struct manifest_doc *docs = calloc(N, sizeof(*docs));
	struct err e = ERR_INIT;
	char name[32];
	size_t i;

	(void)state;
	assert_non_null(docs);
	pgstore_apply_result_init(&r);
	pool_doc(&docs[0], "deep-pool");
	for (i = 1; i < N; i++) {
		snprintf(name, sizeof(name), "deep-%zu", i);
		ws_doc(&docs[i], "deep-pool", name);
	}
	docs[BAD].ws.memory_mib = 1;   /* the database refuses it */
	assert_int_equal(apply(s, docs, N, 0, 0, &r, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "workspace/deep-611"));
	assert_non_null(strstr(e.msg, "workspaces_memory_mib_range"));
	assert_int_equal(r.failed_doc, BAD);
	assert_string_equal(sql_value("SELECT count(*) FROM workspaces w JOIN pools p"
				      " ON p.id = w.pool_id WHERE p.name = 'deep-pool'", 0, NULL), "0");
	/* fixed, the same set applies whole on the same connection */
	docs[BAD].ws.memory_mib = 1024;
	if (apply(s, docs, N, 0, 0, &r, &e))
		fail_msg("apply: %s", e.msg);
	assert_int_equal(r.failed_doc, -1);
	snprintf(name, sizeof(name), "%d", N - 1);
	assert_string_equal(sql_value("SELECT count(*) FROM workspaces w JOIN pools p"
				      " ON p.id = w.pool_id WHERE p.name = 'deep-pool'", 0, NULL), name);
	pgstore_apply_result_release(&r);
	pgstore_free(s);
	free(docs);
}

static void test_pgstore__ownership_conflict_needs_force(void **state)
{
	struct pgstore *s = open_store(testdb_conninfo());
	struct pgstore_apply_result r;
	struct manifest_doc docs[2];
	struct pgstore_ws_row *row;
	struct err e = ERR_INIT;
	const char *p[1] = { "ui/image:9" };
	size_t i;
	int found = 0;

	(void)state;
	pgstore_apply_result_init(&r);
	pool_doc(&docs[0], "own-pool");
	ws_doc(&docs[1], "own-pool", "own-ws");
	assert_int_equal(apply(s, docs, 2, 0, 0, &r, &e), 0);
	assert_string_equal(sql_as("spinup_ui", "UPDATE workspaces SET image = $1 WHERE name = 'own-ws'",
				   1, p), "");

	/* apply wants another image: conflict naming field and owner, nothing written */
	str_copy(docs[1].ws.image, sizeof(docs[1].ws.image), "spinctl/image:1");
	docs[1].ws.memory_mib = 4096;
	assert_int_equal(apply(s, docs, 2, 0, 0, &r, &e), SP_ECONFLICT);
	assert_non_null(strstr(e.msg, "image"));
	assert_non_null(strstr(e.msg, "'ui'"));
	assert_int_equal(r.nconflicts, 1);
	for (i = 0; i < r.nchanges; i++) {
		if (!strcmp(r.changes[i].field, "image")) {
			found = 1;
			assert_true(r.changes[i].conflict);
			assert_string_equal(r.changes[i].owner, "ui");
		} else {
			assert_false(r.changes[i].conflict);
		}
	}
	assert_true(found);
	row = get_ws(s, "own-pool", "own-ws");
	assert_non_null(row);
	assert_string_equal(row->spec.image, "ui/image:9");
	assert_int_equal(row->spec.memory_mib, 2048);
	free(row);

	/* with force: written, and spinctl owns the field now */
	assert_int_equal(apply(s, docs, 2, 1, 0, &r, &e), 0);
	row = get_ws(s, "own-pool", "own-ws");
	assert_non_null(row);
	assert_string_equal(row->spec.image, "spinctl/image:1");
	free(row);
	assert_string_equal(sql_value("SELECT field_owners->'image'->>'by' FROM workspaces"
				      " WHERE name = 'own-ws'", 0, NULL), "spinctl");
	str_copy(docs[1].ws.image, sizeof(docs[1].ws.image), "spinctl/image:2");
	assert_int_equal(apply(s, docs, 2, 0, 0, &r, &e), 0);
	pgstore_apply_result_release(&r);
	pgstore_free(s);
}

/* ------------------------------------------------------------ the contract */

static const char *make_pool(const char *name)
{
	static char id[24];
	const char *p[1] = { name };

	str_copy(id, sizeof(id),
		 sql_value("INSERT INTO pools (name, asg_name, region) VALUES ($1, 'asg', 'r1')"
			   " RETURNING id", 1, p));
	return id;
}

static void test_pgstore__ui_role_writes_spec_but_not_status(void **state)
{
	const char *pool = make_pool("ui-pool");
	const char *p[2] = { pool, NULL };
	char wid[24];

	(void)state;
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspaces (name, owner, pool_id)"
				   " VALUES ('ui-ws', 'bob', $1::bigint)", 1, p), "");
	str_copy(wid, sizeof(wid), sql_value("SELECT id FROM workspaces WHERE name = 'ui-ws'", 0, NULL));
	p[0] = wid;
	assert_string_equal(sql_as("spinup_ui", "UPDATE workspaces SET state = 'Stopped',"
				   " paused_until = now(), reconcile_requested_at = now(),"
				   " deletion_requested_at = NULL WHERE id = $1::bigint", 1, p), "");
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspace_status (workspace_id)"
				   " VALUES ($1::bigint)", 1, p), "42501");
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspace_events (workspace_id, type, at)"
				   " VALUES ($1::bigint, 'X', now())", 1, p), "42501");
	assert_string_equal(sql_as("spinup_ui", "UPDATE workspaces SET generation = 99"
				   " WHERE id = $1::bigint", 1, p), "42501");
	assert_string_equal(sql_as("spinup_ui", "UPDATE workspaces SET field_owners = '{}'"
				   " WHERE id = $1::bigint", 1, p), "42501");
	assert_string_equal(sql_as("spinup_ui", "DELETE FROM workspaces WHERE id = $1::bigint", 1, p),
			    "42501");
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO drift (subject, cls, reason, first_seen,"
				   " last_seen) VALUES ('x', 'missing', 'X', now(), now())", 0, NULL),
			    "42501");
	assert_string_equal(sql_as("spinup_ui", "UPDATE operator_leases SET epoch = epoch + 1", 0, NULL),
			    "42501");
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO actions (key, type) VALUES ('k', 'x')",
				   0, NULL), "42501");
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO instances (instance_id, pool_id)"
				   " VALUES ('i-0123456789abcdef0', 1)", 0, NULL), "42501");
	/* drift silences are the UI's to declare (migration 005), findings are not */
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO drift_silences (subject, until, comment)"
				   " VALUES ('instance/*', now() + interval '1 hour', 'ui')", 0, NULL), "");
	assert_string_equal(sql_as("spinup_ui", "UPDATE drift_silences SET created_by = 'spinctl'",
				   0, NULL), "42501");
	assert_string_equal(sql_value("SELECT created_by FROM drift_silences WHERE comment = 'ui'",
				      0, NULL), "ui");
	assert_string_equal(sql_as("spinup_ui", "DELETE FROM drift_silences WHERE comment = 'ui'",
				   0, NULL), "");

	/* the operator: status and events yes, spec no, events never rewritten */
	assert_string_equal(sql_as("spinup_operator", "INSERT INTO workspace_status (workspace_id)"
				   " VALUES ($1::bigint)", 1, p), "");
	assert_string_equal(sql_as("spinup_operator", "INSERT INTO workspace_events (workspace_id,"
				   " type, at) VALUES ($1::bigint, 'X', now())", 1, p), "");
	assert_string_equal(sql_as("spinup_operator", "UPDATE workspace_events SET type = 'Y'", 0, NULL),
			    "42501");
	assert_string_equal(sql_as("spinup_operator", "DELETE FROM workspace_events", 0, NULL), "42501");
	assert_string_equal(sql_as(NULL, "DELETE FROM workspace_events", 0, NULL), "42501");
	assert_string_equal(sql_as("spinup_operator", "UPDATE workspaces SET image = 'x'"
				   " WHERE id = $1::bigint", 1, p), "42501");
	assert_string_equal(sql_as("spinup_operator", "DELETE FROM workspaces WHERE id = $1::bigint",
				   1, p), "");
}

/* The constraint a statement run as spinup_ui violates (or its SQLSTATE), "" if it succeeded. */
static const char *ui_violation(const char *sql, int n, const char *const *p)
{
	static char cname[64];
	PGconn *c = testdb_connect();
	PGresult *r;
	const char *v;

	assert_non_null(c);
	r = testdb_exec_as(c, "spinup_ui", sql, n, p);
	v = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
	str_copy(cname, sizeof(cname), v ? v : testdb_sqlstate(r));
	PQclear(r);
	PQfinish(c);
	return cname;
}

/* The constraint a UI insert violates, "" if it succeeded. */
static const char *ui_insert_violation(const char *pool, const char *name, const char *cpu,
				       const char *state, const char *labels)
{
	const char *p[5] = { pool, name, cpu, state, labels };

	return ui_violation("INSERT INTO workspaces (pool_id, name, owner, cpu_milli, state, labels)"
			    " VALUES ($1::bigint, $2, 'x', $3::int, $4::ws_state, $5::jsonb)", 5, p);
}

static void test_pgstore__ui_constraint_violation_names_the_constraint(void **state)
{
	char pool[24];

	(void)state;
	str_copy(pool, sizeof(pool), make_pool("cons-pool"));
	assert_string_equal(ui_insert_violation(pool, "Bad_Name", "1000", "Running", "{}"),
			    "workspaces_name_dns_label");
	assert_string_equal(ui_insert_violation(pool, "-x", "1000", "Running", "{}"),
			    "workspaces_name_dns_label");
	assert_string_equal(ui_insert_violation(pool, "ok", "99", "Running", "{}"),
			    "workspaces_cpu_milli_range");
	assert_string_equal(ui_insert_violation(pool, "ok", "1000", "Running", "{\"a\": 1}"),
			    "workspaces_labels_valid");
	assert_string_equal(ui_insert_violation("999999", "ok", "1000", "Running", "{}"),
			    "workspaces_pool_id_fkey");
	assert_string_equal(ui_insert_violation(pool, "ok", "1000", "Paused", "{}"), "22P02");
	assert_string_equal(ui_insert_violation(pool, "ok", "1000", "Running", "{}"), "");
	assert_string_equal(ui_insert_violation(pool, "ok", "1000", "Running", "{}"),
			    "workspaces_pool_name_unique");
}

/* The constraint a UI "UPDATE table SET assignment" of row id violates, "" if none. */
static const char *ui_update_violation(const char *table, const char *id, const char *assignment)
{
	char sql[256];
	const char *p[1] = { id };

	snprintf(sql, sizeof(sql), "UPDATE %s SET %s WHERE id = $1::bigint", table, assignment);
	return ui_violation(sql, 1, p);
}

/*
 * Every text rule a manifest is held to, the UI is held to by the schema
 * (migration 003): what `spinctl apply` refuses, an UPDATE refuses too,
 * naming the constraint. Valid values still pass.
 */
static void test_pgstore__ui_text_held_to_manifest_rules(void **state)
{
	static const struct { const char *table, *set, *constraint; } cases[] = {
		{ "workspaces", "template_name = 'Bad Template!'", "workspaces_template_name_dns_label" },
		{ "workspaces", "image = 'has space'", "workspaces_image_token" },
		{ "workspaces", "image = E'img\\t1'", "workspaces_image_token" },
		{ "workspaces", "bucket = 'Not_A_Bucket'", "workspaces_bucket_name" },
		{ "workspaces", "bucket = '-bucket'", "workspaces_bucket_name" },
		{ "workspaces", "owner = E'a\\tb'", "workspaces_owner_text" },
		{ "workspaces", "prefix = E'p\\n'", "workspaces_prefix_text" },
		{ "workspaces", "labels = '{\"bad key\": \"v\"}'", "workspaces_labels_text" },
		{ "workspaces", "labels = '{\"k\": \"line\\nbreak\"}'", "workspaces_labels_text" },
		{ "pools", "asg_name = 'asg with space'", "pools_asg_name_token" },
		{ "pools", "region = 'eu west 1'", "pools_region_token" },
		{ "pools", "default_image = 'a b'", "pools_default_image_token" },
		{ "workspaces", "template_name = 'py-3', image = 'ghcr.io/x/y:1', bucket = 'my.bucket-1',"
		  " owner = 'Zoë O''Brien', prefix = 'a b/ü', labels = '{\"team/x\": \"A b\"}'", "" },
		{ "pools", "asg_name = 'asg-1', region = 'eu-west-1', default_image = ''", "" },
	};
	char pool[24], wid[24];
	const char *p[1];
	size_t i;

	(void)state;
	str_copy(pool, sizeof(pool), make_pool("text-pool"));
	p[0] = pool;
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspaces (name, owner, pool_id)"
				   " VALUES ('text-ws', 'x', $1::bigint)", 1, p), "");
	str_copy(wid, sizeof(wid), sql_value("SELECT id FROM workspaces WHERE name = 'text-ws'", 0, NULL));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *id = !strcmp(cases[i].table, "pools") ? pool : wid;
		const char *got = ui_update_violation(cases[i].table, id, cases[i].set);
		if (strcmp(got, cases[i].constraint))
			fail_msg("SET %s: got '%s', want '%s'", cases[i].set, got, cases[i].constraint);
	}
}

/* A UI session cannot pass its writes off as spinctl's by setting spinup.writer. */
static void test_pgstore__ui_cannot_forge_the_writer(void **state)
{
	char pool[24];
	const char *p[1];
	PGconn *c = testdb_connect();
	PGresult *r;

	(void)state;
	str_copy(pool, sizeof(pool), make_pool("forge-pool"));
	p[0] = pool;
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspaces (name, owner, pool_id)"
				   " VALUES ('forge-ws', 'x', $1::bigint)", 1, p), "");
	assert_non_null(c);
	r = PQexec(c, "SET spinup.writer = 'spinctl'");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	r = testdb_exec_as(c, "spinup_ui", "UPDATE workspaces SET cpu_milli = 4000"
			   " WHERE name = 'forge-ws'", 0, NULL);
	assert_string_equal(testdb_sqlstate(r), "");
	PQclear(r);
	PQfinish(c);
	assert_string_equal(sql_value("SELECT field_owners->'cpu_milli'->>'by' FROM workspaces"
				      " WHERE name = 'forge-ws'", 0, NULL), "ui");
}

static void test_pgstore__generation_bumps_only_on_spec_change(void **state)
{
	const char *pool = make_pool("gen-pool");
	const char *p[1] = { pool };
	const char *q = "SELECT generation FROM workspaces WHERE name = 'gen-ws'";

	(void)state;
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspaces (name, owner, pool_id)"
				   " VALUES ('gen-ws', 'x', $1::bigint)", 1, p), "");
	assert_string_equal(sql_value(q, 0, NULL), "1");
	assert_string_equal(sql_as("spinup_ui", "UPDATE workspaces SET image = '' WHERE name = 'gen-ws'",
				   0, NULL), "");
	assert_string_equal(sql_value(q, 0, NULL), "1");
	assert_string_equal(sql_as("spinup_ui", "UPDATE workspaces SET paused_until = now()"
				   " WHERE name = 'gen-ws'", 0, NULL), "");
	assert_string_equal(sql_value(q, 0, NULL), "1");
	assert_string_equal(sql_as("spinup_ui", "UPDATE workspaces SET image = 'a', memory_mib = 4096"
				   " WHERE name = 'gen-ws'", 0, NULL), "");
	assert_string_equal(sql_value(q, 0, NULL), "2");
	assert_string_equal(sql_as("spinup_ui", "UPDATE workspaces SET image = 'a' WHERE name = 'gen-ws'",
				   0, NULL), "");
	assert_string_equal(sql_value(q, 0, NULL), "2");
	assert_string_equal(sql_value("SELECT field_owners->'memory_mib'->>'by' FROM workspaces"
				      " WHERE name = 'gen-ws'", 0, NULL), "ui");
}

/*
 * The safety stop is the operator's (pool_status); the way out is a control
 * column the UI may write, which is no spec change and wakes the loop.
 */
static void test_pgstore__ui_requests_a_safety_clear(void **state)
{
	const char *pool = make_pool("clear-pool");
	const char *p[1] = { pool };
	const char *gen = "SELECT generation FROM pools WHERE name = 'clear-pool'";
	struct pgstore_pool_row *rows = NULL;
	struct pgstore *s;
	struct err e = ERR_INIT;
	size_t n = 0;

	(void)state;
	assert_string_equal(sql_as(NULL, "INSERT INTO pool_status (pool_id, safety_stopped,"
				   " safety_stopped_at) VALUES ($1::bigint, true, now())", 1, p), "");
	assert_string_equal(sql_as("spinup_ui", "UPDATE pool_status SET safety_stopped = false",
				   0, NULL), "42501");
	assert_string_equal(sql_as("spinup_ui", "UPDATE pool_status SET safety_clear_handled_at"
				   " = now()", 0, NULL), "42501");
	assert_string_equal(sql_value(gen, 0, NULL), "1");
	assert_string_equal(sql_as("spinup_ui", "UPDATE pools SET safety_clear_requested_at ="
				   " spinup_ts(1700000000000) WHERE id = $1::bigint", 1, p), "");
	assert_string_equal(sql_value(gen, 0, NULL), "1");
	assert_string_equal(sql_value("SELECT field_owners->'safety_clear_requested_at'->>'by'"
				      " FROM pools WHERE name = 'clear-pool'", 0, NULL), "ui");
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO pools (name, asg_name, region,"
				   " safety_clear_requested_at) VALUES ('clear-pool-2', 'asg', 'r1',"
				   " now())", 0, NULL), "");
	assert_string_equal(sql_value("SELECT generation FROM pools WHERE name = 'clear-pool-2'",
				      0, NULL), "1");

	/* spinctl reads it as every pool field: through the pool_specs view */
	s = open_store(testdb_conninfo());
	if (pgstore_list_pools(s, "clear-pool", &rows, &n, &e))
		fail_msg("list pools: %s", e.msg);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].spec.safety_clear_requested_at, 1700000000000LL);
	assert_int_equal(rows[0].spec.generation, 1);
	free(rows);
	pgstore_free(s);
}

/* Wait (bounded) for the next notification on c; NULL if none came. */
static PGnotify *next_notify(PGconn *c)
{
	struct pollfd pfd;
	PGnotify *n;
	int tries;

	for (tries = 0; tries < 100; tries++) {
		PQconsumeInput(c);
		n = PQnotifies(c);
		if (n)
			return n;
		pfd.fd = PQsocket(c);
		pfd.events = POLLIN;
		poll(&pfd, 1, 100);
	}
	return NULL;
}

static void test_pgstore__notify_carries_the_workspace_id(void **state)
{
	const char *pool = make_pool("ntf-pool");
	PGconn *l = testdb_connect();
	const char *p[1] = { pool };
	char wid[24], pid[32];
	PGresult *r;
	PGnotify *n;

	(void)state;
	assert_non_null(l);
	r = PQexec(l, "LISTEN " PGSTORE_CHANNEL_DESIRED);
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	str_copy(wid, sizeof(wid), sql_value("INSERT INTO workspaces (name, owner, pool_id)"
					     " VALUES ('ntf-ws', 'x', $1::bigint) RETURNING id", 1, p));
	n = next_notify(l);
	assert_non_null(n);
	assert_string_equal(n->relname, "spinup_desired");
	assert_string_equal(n->extra, wid);
	PQfreemem(n);

	/* a no-op update sends nothing: the next notification is the pool's */
	assert_string_equal(sql_as("spinup_ui", "UPDATE workspaces SET owner = 'x'"
				   " WHERE name = 'ntf-ws'", 0, NULL), "");
	assert_string_equal(sql_as("spinup_ui", "UPDATE pools SET warm_instances = 3"
				   " WHERE name = 'ntf-pool'", 0, NULL), "");
	n = next_notify(l);
	assert_non_null(n);
	snprintf(pid, sizeof(pid), "pool:%s", pool);
	assert_string_equal(n->extra, pid);
	PQfreemem(n);

	/* a safety-stop clear request is a control change: it wakes the loop */
	assert_string_equal(sql_as("spinup_ui", "UPDATE pools SET safety_clear_requested_at = now()"
				   " WHERE name = 'ntf-pool'", 0, NULL), "");
	n = next_notify(l);
	assert_non_null(n);
	assert_string_equal(n->extra, pid);
	PQfreemem(n);

	/* the deletion mark notifies with the workspace id */
	{
		struct pgstore *s = open_store(testdb_conninfo());
		struct err e = ERR_INIT;
		enum pgstore_mark m;
		assert_int_equal(pgstore_mark_workspace_deletion(s, NULL, "ntf-ws", &m, &e), 0);
		assert_int_equal(m, PGSTORE_MARKED);
		assert_int_equal(pgstore_mark_workspace_deletion(s, NULL, "ntf-ws", &m, &e), 0);
		assert_int_equal(m, PGSTORE_ALREADY_MARKED);
		assert_int_equal(pgstore_mark_workspace_deletion(s, NULL, "nope", &m, &e), SP_ENOTFOUND);
		pgstore_free(s);
	}
	n = next_notify(l);
	assert_non_null(n);
	assert_string_equal(n->extra, wid);
	PQfreemem(n);
	PQfinish(l);
}

/* s without its spaces: hostile, but a valid image token (no spaces allowed). */
static void token_of(char *dst, size_t size, const char *s)
{
	size_t n = 0;

	for (; *s && n + 1 < size; s++)
		if (*s != ' ')
			dst[n++] = *s;
	dst[n] = 0;
}

static void test_pgstore__hostile_values_are_refused_or_stored_verbatim(void **state)
{
	static const char *const owners[] = {
		"o'brien", "'; DROP TABLE workspaces; --", "\"quoted\" \\ back", "ünïcödé ✓ 日本",
		"Robert'); DELETE FROM pools;--",
	};
	const char *pool = make_pool("hostile-pool");
	struct pgstore *s = open_store(testdb_conninfo());
	struct pgstore_apply_result r;
	struct manifest_doc docs[1];
	struct pgstore_ws_row *row;
	struct err e = ERR_INIT;
	char name[32], *big;
	const char *p[3];
	size_t i;

	(void)state;
	pgstore_apply_result_init(&r);
	for (i = 0; i < sizeof(owners) / sizeof(*owners); i++) {
		snprintf(name, sizeof(name), "hostile-%zu", i);
		ws_doc(&docs[0], "hostile-pool", name);
		str_copy(docs[0].ws.owner, sizeof(docs[0].ws.owner), owners[i]);
		token_of(docs[0].ws.image, sizeof(docs[0].ws.image), owners[i]);
		if (apply(s, docs, 1, 0, 0, &r, &e))
			fail_msg("apply %s: %s", owners[i], e.msg);
		row = get_ws(s, "hostile-pool", name);
		assert_non_null(row);
		assert_string_equal(row->spec.owner, owners[i]);
		assert_string_equal(row->spec.image, docs[0].ws.image);
		free(row);
	}
	/* hostile names never pass the DNS-label rule */
	p[0] = pool;
	p[1] = "'; DROP TABLE workspaces; --";
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspaces (pool_id, name, owner)"
				   " VALUES ($1::bigint, $2, 'x')", 2, p), "23514");
	p[1] = "ünï";
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspaces (pool_id, name, owner)"
				   " VALUES ($1::bigint, $2, 'x')", 2, p), "23514");
	/* 10 MB values: refused by the length constraints */
	big = malloc((10u << 20) + 1);
	assert_non_null(big);
	memset(big, 'a', 10u << 20);
	big[10u << 20] = '\0';
	p[1] = big;
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspaces (pool_id, name, owner)"
				   " VALUES ($1::bigint, 'big', $2)", 2, p), "23514");
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspaces (pool_id, name, owner, image)"
				   " VALUES ($1::bigint, 'big', 'x', $2)", 2, p), "23514");
	assert_string_equal(sql_as("spinup_ui", "INSERT INTO workspaces (pool_id, name, owner)"
				   " VALUES ($1::bigint, $2, 'x')", 2, p), "23514");
	free(big);
	/* and every table is still there */
	assert_string_equal(sql_value("SELECT count(*) FROM workspaces w JOIN pools p"
				      " ON p.id = w.pool_id WHERE p.name = 'hostile-pool'", 0, NULL),
			    "5");
	pgstore_apply_result_release(&r);
	pgstore_free(s);
}

static void test_pgstore__status_and_events_decode(void **state)
{
	const char *pool = make_pool("st-pool");
	struct pgstore *s = open_store(testdb_conninfo());
	struct pgstore_event_row *ev = NULL;
	struct pgstore_ws_row *row;
	struct err e = ERR_INIT;
	const char *p[2] = { pool, NULL };
	char wid[24];
	size_t n = 0;

	(void)state;
	str_copy(wid, sizeof(wid), sql_value("INSERT INTO workspaces (name, owner, pool_id)"
					     " VALUES ('st-ws', 'x', $1::bigint) RETURNING id", 1, p));
	p[0] = wid;
	assert_string_equal(sql_as("spinup_operator",
				   "INSERT INTO workspace_status (workspace_id, observed_generation, phase,"
				   " conditions, instance_id, url, error_class, attempts, next_attempt_at)"
				   " VALUES ($1::bigint, 1, 'READY', '{\"Ready\": {\"status\": \"True\","
				   " \"reason\": \"ContainerServing\", \"message\": \"ok\","
				   " \"last_transition\": 1700000000123}}', 'i-0abc', 'http://x',"
				   " 'Retryable', 2, spinup_ts(1700000000456))", 1, p), "");
	assert_string_equal(sql_as("spinup_operator",
				   "INSERT INTO workspace_events (workspace_id, workspace_name, type,"
				   " from_phase, to_phase, reason, at) VALUES ($1::bigint, 'st-ws',"
				   " 'ALLOCATION_STARTED', 'PENDING', 'ALLOCATING_VM', 'Scheduled', now()),"
				   " ($1::bigint, 'st-ws', 'INSTANCE_ASSIGNED', 'ALLOCATING_VM',"
				   " 'BOOTING_CONTAINER', 'Placed', now())", 1, p), "");
	row = get_ws(s, NULL, "st-ws");
	assert_non_null(row);
	assert_true(row->has_status);
	assert_int_equal(row->status.phase, PHASE_READY);
	assert_int_equal(row->status.conds[COND_READY].status, CSTAT_TRUE);
	assert_string_equal(row->status.conds[COND_READY].reason, "ContainerServing");
	assert_int_equal(row->status.conds[COND_READY].last_transition, 1700000000123LL);
	assert_int_equal(row->status.conds[COND_SCHEDULED].status, CSTAT_UNKNOWN);
	assert_string_equal(row->status.instance_id, "i-0abc");
	assert_int_equal(row->status.error_class, SP_CLASS_RETRYABLE);
	assert_int_equal(row->status.next_attempt_at, 1700000000456LL);
	assert_int_equal(row->status.attempts, 2);
	free(row);
	assert_int_equal(pgstore_list_events(s, "st-ws", 0, &ev, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ev[0].ev.type, "ALLOCATION_STARTED"); /* newest last */
	assert_int_equal(ev[1].ev.to, PHASE_BOOTING_CONTAINER);
	free(ev);
	assert_int_equal(pgstore_list_events(s, "st-ws", 1, &ev, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].ev.type, "INSTANCE_ASSIGNED");
	free(ev);
	pgstore_free(s);
}

static void test_pgstore__apply_refuses_a_workspace_marked_for_deletion(void **state)
{
	struct pgstore *s = open_store(testdb_conninfo());
	struct pgstore_apply_result r;
	struct manifest_doc docs[2];
	struct manifest_set set;
	enum pgstore_mark marks[2];
	struct err e = ERR_INIT;

	(void)state;
	pgstore_apply_result_init(&r);
	pool_doc(&docs[0], "del-pool");
	ws_doc(&docs[1], "del-pool", "del-ws");
	assert_int_equal(apply(s, docs, 2, 0, 0, &r, &e), 0);
	set_of(&set, &docs[1], 1);
	assert_int_equal(pgstore_mark_set_deletion(s, &set, marks, &e), 0);
	assert_int_equal(marks[0], PGSTORE_MARKED);
	assert_string_equal(sql_value("SELECT deletion_requested_at IS NOT NULL FROM workspaces"
				      " WHERE name = 'del-ws'", 0, NULL), "t");
	assert_int_equal(apply(s, docs, 2, 0, 0, &r, &e), SP_ECONFLICT);
	assert_non_null(strstr(e.msg, "marked for deletion"));
	/* one missing object: nothing is marked */
	ws_doc(&docs[1], "del-pool", "never-there");
	set_of(&set, docs, 2);
	assert_int_equal(pgstore_mark_set_deletion(s, &set, marks, &e), SP_ENOTFOUND);
	assert_string_equal(sql_value("SELECT deletion_requested_at IS NULL FROM pools"
				      " WHERE name = 'del-pool'", 0, NULL), "t");
	pgstore_apply_result_release(&r);
	pgstore_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pgstore__migrate_twice_applies_once),
		cmocka_unit_test(test_pgstore__migrate_concurrently_is_safe),
		cmocka_unit_test(test_pgstore__unreachable_database_is_unavailable),
		cmocka_unit_test(test_pgstore__apply_get_round_trip),
		cmocka_unit_test(test_pgstore__dry_run_writes_nothing),
		cmocka_unit_test(test_pgstore__apply_with_one_bad_document_writes_nothing),
		cmocka_unit_test(test_pgstore__refusal_deep_in_a_large_apply_writes_nothing),
		cmocka_unit_test(test_pgstore__ownership_conflict_needs_force),
		cmocka_unit_test(test_pgstore__ui_role_writes_spec_but_not_status),
		cmocka_unit_test(test_pgstore__ui_constraint_violation_names_the_constraint),
		cmocka_unit_test(test_pgstore__ui_text_held_to_manifest_rules),
		cmocka_unit_test(test_pgstore__ui_cannot_forge_the_writer),
		cmocka_unit_test(test_pgstore__generation_bumps_only_on_spec_change),
		cmocka_unit_test(test_pgstore__ui_requests_a_safety_clear),
		cmocka_unit_test(test_pgstore__notify_carries_the_workspace_id),
		cmocka_unit_test(test_pgstore__hostile_values_are_refused_or_stored_verbatim),
		cmocka_unit_test(test_pgstore__status_and_events_decode),
		cmocka_unit_test(test_pgstore__apply_refuses_a_workspace_marked_for_deletion),
	};
	int rc;

	if (!testdb_conninfo())
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	testdb_drop_all();
	return rc;
}
