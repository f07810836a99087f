/*
 * pgstate.c - the reconciler's store (see pgstate.h): one-round-trip load,
 * fenced batched writes, the action journal, row finalisation, LISTEN.
 */
#include "drivers/pgstate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "model/strbuf.h"
#include "model/banned.h"

#define JOURNAL_MAX 100000        /* actions one pass journals */

struct jslot {
	char key[ACTION_KEY_MAX + 1];
	int64_t id;
	int discard;          /* never ran and planned again: the entry goes */
	int has_result;
	int rc;
	char msg[256];
};

struct pgstate {
	struct pgstore *store;
	char *lease;
	char holder[PGSTATE_HOLDER_MAX + 1];
	int64_t epoch;
	int listening;
	int broken;          /* a pipeline could not be finished: reconnect before use */
	unsigned long trips;
	/* per pass journal state */
	struct jslot *slots;
	size_t nslots, slots_alloc;
	int64_t *finalize;
	size_t nfinalize, finalize_alloc;
};

/* The observation columns kept beside an instance record. */
struct inst_obs {
	char private_ip[OBS_ADDR_MAX + 1];
	char lifecycle[16];
	int healthy, protected_;
};

/* ------------------------------------------------------------ columns */

/* Column readers are pgstore_col_*() (drivers/pgstore.h), shared with spinctl. */

/* ------------------------------------------------------------ connection */

/* Several statements without parameters, in one simple-protocol message. */
static int run_simple(struct pgstate *p, const char *what, const char *sql, struct err *e)
{
	PGconn *c = pgstore_conn(p->store);
	PGresult *r;
	int rc = 0;

	p->trips++;
	if (!PQsendQuery(c, sql))
		return err_set(e, SP_EIO, "%s: %s", what, PQerrorMessage(c));
	while ((r = PQgetResult(c))) {
		if (!rc)
			rc = pgstore_result_err(r, what, e);
		PQclear(r);
	}
	return rc;
}

static int session_setup(struct pgstate *p, struct err *e)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
		 "SET idle_in_transaction_session_timeout = %d; SET lock_timeout = %d;"
		 " SET spinup.writer = 'spinupd'",
		 PGSTATE_IDLE_TX_TIMEOUT_MS, PGSTATE_LOCK_TIMEOUT_MS);
	return run_simple(p, "set session timeouts", sql, e);
}

int pgstate_open(const char *conninfo, const char *lease, const char *holder,
		 struct pgstate **out, struct err *e)
{
	struct pgstate *p = calloc(1, sizeof(*p));
	int rc = p ? 0 : err_set(e, SP_ENOMEM, "out of memory");

	if (!rc && !(p->lease = strdup(lease ? lease : PGSTATE_LEASE_DEFAULT)))
		rc = err_set(e, SP_ENOMEM, "out of memory");
	if (!rc && str_copy(p->holder, sizeof(p->holder), holder ? holder : ""))
		rc = err_set(e, SP_EINVAL, "holder name longer than %d bytes", PGSTATE_HOLDER_MAX);
	if (!rc)
		rc = pgstore_open(conninfo, "spinupd", &p->store, e);
	if (!rc)
		rc = pgstore_check_schema(p->store, e);
	if (!rc)
		rc = session_setup(p, e);
	if (rc) {
		pgstate_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void pgstate_free(struct pgstate *p)
{
	if (!p)
		return;
	pgstore_free(p->store);
	free(p->lease);
	free(p->slots);
	free(p->finalize);
	free(p);
}

int pgstate_ok(struct pgstate *p)
{
	return p && p->store && !p->broken && PQstatus(pgstore_conn(p->store)) == CONNECTION_OK;
}

int pgstate_reconnect(struct pgstate *p, struct err *e)
{
	PGconn *c = pgstore_conn(p->store);
	int rc;

	p->trips++;
	PQreset(c);
	p->broken = 0;
	if (PQstatus(c) != CONNECTION_OK)
		return err_set(e, SP_EUNAVAIL, "could not reconnect to the database: %s",
			       PQerrorMessage(c));
	rc = session_setup(p, e);
	if (!rc && p->listening)
		rc = pgstate_listen(p, e);
	return rc;
}

struct pgstore *pgstate_store(struct pgstate *p)
{
	return p->store;
}

unsigned long pgstate_round_trips(const struct pgstate *p)
{
	return p->trips;
}

/* One checked statement; counts the round trip. */
static int run(struct pgstate *p, const char *what, const char *sql, int n,
	       const char *const *params, PGresult **out, struct err *e)
{
	p->trips++;
	return pgstore_exec(p->store, what, sql, n, params, out, e);
}

int pgstate_listen(struct pgstate *p, struct err *e)
{
	int rc = run(p, "listen", "LISTEN " PGSTORE_CHANNEL_DESIRED, 0, NULL, NULL, e);

	if (!rc)
		p->listening = 1;
	return rc;
}

int pgstate_socket(struct pgstate *p)
{
	if (!pgstate_ok(p))
		return -1;
	return PQsocket(pgstore_conn(p->store));
}

int pgstate_notifications(struct pgstate *p, struct err *e)
{
	PGconn *c = pgstore_conn(p->store);
	PGnotify *n;
	int count = 0;

	if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
		return err_set(e, SP_EIO, "database connection lost: %s", PQerrorMessage(c));
	while ((n = PQnotifies(c))) {
		count++;
		PQfreemem(n);
	}
	return count;
}

/* ------------------------------------------------------------ epoch */

int pgstate_acquire_epoch(struct pgstate *p, int64_t *epoch, struct err *e)
{
	const char *params[2] = { p->lease, p->holder };
	PGresult *res = NULL;
	int64_t v = 0;
	int rc;

	rc = run(p, "acquire fencing epoch",
		 "INSERT INTO operator_leases (name, epoch, holder, acquired_at)"
		 " VALUES ($1, 1, $2, now())"
		 " ON CONFLICT (name) DO UPDATE SET epoch = operator_leases.epoch + 1,"
		 " holder = EXCLUDED.holder, acquired_at = now() RETURNING epoch",
		 2, params, &res, e);
	if (!rc && PQntuples(res) != 1)
		rc = err_set(e, SP_EINTERNAL, "acquire fencing epoch: no row returned");
	if (!rc)
		rc = pgstore_col_i64(res, 0, "epoch", &v, e);
	PQclear(res);
	if (rc)
		return rc;
	p->epoch = v;
	*epoch = v;
	return 0;
}

int64_t pgstate_epoch(const struct pgstate *p)
{
	return p->epoch;
}

void pgstate_drop_epoch(struct pgstate *p)
{
	p->epoch = 0;
}

static void epoch_text(const struct pgstate *p, char *buf, size_t n)
{
	snprintf(buf, n, "%" PRId64, p->epoch);
}

/* ------------------------------------------------------------ load */

void pgstate_snapshot_init(struct pgstate_snapshot *s)
{
	memset(s, 0, sizeof(*s));
}

void pgstate_snapshot_release(struct pgstate_snapshot *s)
{
	if (!s)
		return;
	free(s->pools);
	free(s->workspaces);
	free(s->status);
	free(s->has_status);
	free(s->instances);
	free(s->pool_records);
	free(s->drift);
	free(s->pending);
	memset(s, 0, sizeof(*s));
}

/* The load, as one simple-protocol message; %s is the quoted lease name. */
static const char LOAD_SQL[] =
	"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
	"SELECT * FROM pool_specs ORDER BY id LIMIT 100001;"
	"SELECT w.*, st.* FROM workspace_specs w"
	" LEFT JOIN workspace_status_view st ON st.workspace_id = w.id"
	" ORDER BY w.pool_id, w.id LIMIT 100001;"
	"SELECT instance_id, pool_id, spinup_ms(first_seen) AS first_seen,"
	" spinup_ms(idle_since) AS idle_since, unhealthy_passes, marked_unhealthy,"
	" spinup_ms(orphan_seen) AS orphan_seen, ever_healthy, private_ip, lifecycle, healthy,"
	" protected FROM instances ORDER BY instance_id LIMIT 100001;"
	"SELECT pool_id, spinup_ms(window_start) AS window_start, destructive_in_window,"
	" safety_stopped, spinup_ms(safety_stopped_at) AS safety_stopped_at,"
	" spinup_ms(safety_clear_handled_at) AS safety_clear_handled_at"
	" FROM pool_status ORDER BY pool_id LIMIT 100001;"
	"SELECT spinup_ms(paused_until) AS paused_until, observe_only FROM operator_controls;"
	"SELECT id, subject, workspace_id, pool_id, cls::text AS cls, reason, desired, observed,"
	" remedy, spinup_ms(first_seen) AS first_seen, spinup_ms(last_seen) AS last_seen,"
	" flap_count, spinup_ms(silenced_until) AS silenced_until"
	" FROM drift WHERE resolved_at IS NULL ORDER BY id LIMIT 100001;"
	"SELECT id, key, type, coalesce(pool_id, 0) AS pool_id,"
	" coalesce(workspace_id, 0) AS workspace_id, instance_id,"
	" coalesce(payload->>'asg', '') AS asg_name,"
	" coalesce((payload->>'capacity')::int, 0) AS capacity,"
	" coalesce((payload->>'flag')::int, 0) AS flag, epoch,"
	" spinup_ms(created_at) AS created_at"
	" FROM actions WHERE state = 'pending' ORDER BY id LIMIT 100001;"
	"SELECT coalesce((SELECT epoch FROM operator_leases WHERE name = %s), 0) AS epoch;"
	"COMMIT";

enum { R_BEGIN, R_POOLS, R_WS, R_INST, R_POOLREC, R_CTL, R_DRIFT, R_PENDING, R_EPOCH,
       R_COMMIT, R_MAX };

static int alloc_rows(void **v, int n, size_t sz, struct err *e)
{
	if (n > PGSTORE_ROWS_MAX)
		return err_set(e, SP_ELIMIT, "load: more than %d rows in one table",
			       PGSTORE_ROWS_MAX);
	*v = calloc((size_t)n + 1, sz);
	return *v ? 0 : err_set(e, SP_ENOMEM, "out of memory");
}

static int load_pools(const PGresult *r, struct pgstate_snapshot *s, struct err *e)
{
	int n = PQntuples(r), i, rc = alloc_rows((void **)&s->pools, n, sizeof(*s->pools), e);

	for (i = 0; !rc && i < n; i++)
		rc = pgstore_decode_pool(r, i, &s->pools[i], e);
	s->npools = rc ? 0 : (size_t)n;
	return rc;
}

static int load_workspaces(const PGresult *r, struct pgstate_snapshot *s, struct err *e)
{
	int n = PQntuples(r), i, rc, c = PQfnumber(r, "workspace_id");

	rc = alloc_rows((void **)&s->workspaces, n, sizeof(*s->workspaces), e);
	if (!rc)
		rc = alloc_rows((void **)&s->status, n, sizeof(*s->status), e);
	if (!rc)
		rc = alloc_rows((void **)&s->has_status, n, 1, e);
	for (i = 0; !rc && i < n; i++) {
		rc = pgstore_decode_workspace(r, i, &s->workspaces[i], e);
		s->has_status[i] = c >= 0 && !PQgetisnull(r, i, c);
		if (!rc && s->has_status[i])
			rc = pgstore_decode_status(r, i, &s->status[i], e);
	}
	s->nworkspaces = rc ? 0 : (size_t)n;
	return rc;
}

static int load_instances(const PGresult *r, struct pgstate_snapshot *s, struct err *e)
{
	int n = PQntuples(r), i, rc;

	rc = alloc_rows((void **)&s->instances, n, sizeof(*s->instances), e);
	for (i = 0; !rc && i < n; i++) {
		struct instance_record *x = &s->instances[i];
		rc = pgstore_col_str(r, i, "instance_id", x->instance_id, sizeof(x->instance_id), e);
		if (!rc)
			rc = pgstore_col_i64(r, i, "pool_id", &x->pool_id, e);
		if (!rc)
			rc = pgstore_col_i64(r, i, "first_seen", &x->first_seen, e);
		if (!rc)
			rc = pgstore_col_i64(r, i, "idle_since", &x->idle_since, e);
		if (!rc)
			rc = pgstore_col_int(r, i, "unhealthy_passes", &x->unhealthy_passes, e);
		if (!rc)
			rc = pgstore_col_i64(r, i, "orphan_seen", &x->orphan_seen, e);
		x->marked_unhealthy = pgstore_col_bool(r, i, "marked_unhealthy");
		x->ever_healthy = pgstore_col_bool(r, i, "ever_healthy");
	}
	s->ninstances = rc ? 0 : (size_t)n;
	return rc;
}

static int load_pool_records(const PGresult *r, struct pgstate_snapshot *s, struct err *e)
{
	int n = PQntuples(r), i, rc;

	rc = alloc_rows((void **)&s->pool_records, n, sizeof(*s->pool_records), e);
	for (i = 0; !rc && i < n; i++) {
		struct pool_record *x = &s->pool_records[i];
		rc = pgstore_col_i64(r, i, "pool_id", &x->pool_id, e);
		if (!rc)
			rc = pgstore_col_i64(r, i, "window_start", &x->window_start, e);
		if (!rc)
			rc = pgstore_col_int(r, i, "destructive_in_window", &x->destructive_in_window, e);
		if (!rc)
			rc = pgstore_col_i64(r, i, "safety_stopped_at", &x->stopped_at, e);
		if (!rc)
			rc = pgstore_col_i64(r, i, "safety_clear_handled_at", &x->clear_handled_at, e);
		x->safety_stopped = pgstore_col_bool(r, i, "safety_stopped");
	}
	s->npool_records = rc ? 0 : (size_t)n;
	return rc;
}

/*
 * Names as stored (the drift_class enum of the schema, the journal's type
 * column); kept here so the store does not depend on the planner's code.
 */
static const char *const drift_names[DRIFT_MAX] = { "missing", "unmanaged", "changed",
						    "unobservable" };
static const char *const action_names[ACT_MAX] = {
	"set_capacity", "protect", "terminate", "set_unhealthy", "ensure_container", "sync",
	"stop_container", "remove_container", "delete_row"
};

static const char *drift_name(enum drift_class c)
{
	return (unsigned)c < DRIFT_MAX ? drift_names[c] : "changed";
}

static const char *action_name(enum action_type t)
{
	return (unsigned)t < ACT_MAX ? action_names[t] : "unknown";
}

static int drift_class_parse(const char *s, enum drift_class *out)
{
	int i;

	for (i = 0; i < DRIFT_MAX; i++) {
		const char *n = drift_names[i];
		if (n && !strcmp(n, s)) {
			*out = (enum drift_class)i;
			return 0;
		}
	}
	return SP_EINVAL;
}

static int load_drift_row(const PGresult *r, int i, struct pgstate_drift *x, struct err *e)
{
	char cls[32];
	int rc = pgstore_col_i64(r, i, "id", &x->id, e);

	if (!rc)
		rc = pgstore_col_str(r, i, "subject", x->f.subject, sizeof(x->f.subject), e);
	if (!rc)
		rc = pgstore_col_i64(r, i, "workspace_id", &x->f.workspace_id, e);
	if (!rc)
		rc = pgstore_col_i64(r, i, "pool_id", &x->f.pool_id, e);
	if (!rc)
		rc = pgstore_col_str(r, i, "cls", cls, sizeof(cls), e);
	if (!rc && drift_class_parse(cls, &x->f.cls))
		rc = err_set(e, SP_EINVAL, "row violates the contract: drift class '%s'", cls);
	if (!rc)
		rc = pgstore_col_str(r, i, "reason", x->f.reason, sizeof(x->f.reason), e);
	if (!rc)
		rc = pgstore_col_str(r, i, "desired", x->f.desired, sizeof(x->f.desired), e);
	if (!rc)
		rc = pgstore_col_str(r, i, "observed", x->f.observed, sizeof(x->f.observed), e);
	if (!rc)
		rc = pgstore_col_str(r, i, "remedy", x->f.remedy, sizeof(x->f.remedy), e);
	if (!rc)
		rc = pgstore_col_i64(r, i, "first_seen", &x->first_seen, e);
	if (!rc)
		rc = pgstore_col_i64(r, i, "last_seen", &x->last_seen, e);
	if (!rc)
		rc = pgstore_col_int(r, i, "flap_count", &x->flap_count, e);
	if (!rc)
		rc = pgstore_col_i64(r, i, "silenced_until", &x->silenced_until, e);
	return rc;
}

static int load_drift(const PGresult *r, struct pgstate_snapshot *s, struct err *e)
{
	int n = PQntuples(r), i, rc;

	rc = alloc_rows((void **)&s->drift, n, sizeof(*s->drift), e);
	for (i = 0; !rc && i < n; i++)
		rc = load_drift_row(r, i, &s->drift[i], e);
	s->ndrift = rc ? 0 : (size_t)n;
	return rc;
}

static int action_type_parse(const char *s, enum action_type *out)
{
	int i;

	for (i = 0; i < ACT_MAX; i++) {
		const char *n = action_names[i];
		if (n && !strcmp(n, s)) {
			*out = (enum action_type)i;
			return 0;
		}
	}
	return SP_EINVAL;
}

static int load_pending_row(const PGresult *r, int i, struct pgstate_pending *x, struct err *e)
{
	char type[40];
	int rc = pgstore_col_i64(r, i, "id", &x->id, e);

	if (!rc)
		rc = pgstore_col_str(r, i, "key", x->key, sizeof(x->key), e);
	if (!rc)
		rc = pgstore_col_str(r, i, "type", type, sizeof(type), e);
	if (!rc && action_type_parse(type, &x->type))
		rc = err_set(e, SP_EINVAL, "row violates the contract: action type '%s'", type);
	if (!rc)
		rc = pgstore_col_i64(r, i, "pool_id", &x->pool_id, e);
	if (!rc)
		rc = pgstore_col_i64(r, i, "workspace_id", &x->workspace_id, e);
	if (!rc)
		rc = pgstore_col_str(r, i, "instance_id", x->instance_id, sizeof(x->instance_id), e);
	if (!rc)
		rc = pgstore_col_str(r, i, "asg_name", x->asg_name, sizeof(x->asg_name), e);
	if (!rc)
		rc = pgstore_col_int(r, i, "capacity", &x->capacity, e);
	if (!rc)
		rc = pgstore_col_int(r, i, "flag", &x->flag, e);
	if (!rc)
		rc = pgstore_col_i64(r, i, "epoch", &x->epoch, e);
	if (!rc)
		rc = pgstore_col_i64(r, i, "created_at", &x->created_at, e);
	return rc;
}

static int load_pending(const PGresult *r, struct pgstate_snapshot *s, struct err *e)
{
	int n = PQntuples(r), i, rc;

	rc = alloc_rows((void **)&s->pending, n, sizeof(*s->pending), e);
	for (i = 0; !rc && i < n; i++)
		rc = load_pending_row(r, i, &s->pending[i], e);
	s->npending = rc ? 0 : (size_t)n;
	return rc;
}

static int load_one(int idx, const PGresult *r, struct pgstate_snapshot *s, struct err *e)
{
	int rc = 0;

	switch (idx) {
	case R_POOLS:
		return load_pools(r, s, e);
	case R_WS:
		return load_workspaces(r, s, e);
	case R_INST:
		return load_instances(r, s, e);
	case R_POOLREC:
		return load_pool_records(r, s, e);
	case R_CTL:
		if (PQntuples(r) > 0) {
			rc = pgstore_col_i64(r, 0, "paused_until", &s->global_paused_until, e);
			s->global_observe_only = pgstore_col_bool(r, 0, "observe_only");
		}
		return rc;
	case R_DRIFT:
		return load_drift(r, s, e);
	case R_PENDING:
		return load_pending(r, s, e);
	case R_EPOCH:
		return PQntuples(r) == 1 ? pgstore_col_i64(r, 0, "epoch", &s->epoch, e) : 0;
	default:
		return 0;
	}
}

/* Send the load and read every result, decoding as they come. */
static int load_exchange(struct pgstate *p, const char *sql, struct pgstate_snapshot *s,
			 struct err *e)
{
	PGconn *c = pgstore_conn(p->store);
	PGresult *r;
	int idx = 0, rc = 0;

	p->trips++;
	if (!PQsendQuery(c, sql))
		return err_set(e, SP_EIO, "load: %s", PQerrorMessage(c));
	while ((r = PQgetResult(c))) {
		if (!rc)
			rc = pgstore_result_err(r, "load", e);
		if (!rc && idx < R_MAX)
			rc = load_one(idx, r, s, e);
		idx++;
		PQclear(r);
	}
	if (!rc && idx != R_MAX)
		rc = err_set(e, SP_EINTERNAL, "load: %d results, expected %d", idx, R_MAX);
	if (rc && PQtransactionStatus(c) != PQTRANS_IDLE)
		pgstore_rollback(p->store);
	if (rc && PQstatus(c) != CONNECTION_OK)
		rc = err_set(e, SP_EIO, "load: database connection lost");
	return rc;
}

int pgstate_load(struct pgstate *p, struct pgstate_snapshot *s, struct err *e)
{
	struct pgstate_snapshot n;
	struct strbuf sql = STRBUF_INIT;
	char *lit;
	int rc;

	pgstate_snapshot_init(&n);
	lit = PQescapeLiteral(pgstore_conn(p->store), p->lease, strlen(p->lease));
	if (!lit)
		return err_set(e, SP_ENOMEM, "load: could not quote the lease name");
	rc = strbuf_addf(&sql, LOAD_SQL, lit);
	PQfreemem(lit);
	if (rc)
		return err_set(e, rc, "load: query too long");
	rc = load_exchange(p, sql.buf, &n, e);
	strbuf_release(&sql);
	if (rc) {
		pgstate_snapshot_release(&n);
		return rc;
	}
	pgstate_snapshot_release(s);
	*s = n;
	return 0;
}

/* ------------------------------------------------------------ json helpers */

static int jset(json_t *o, const char *k, json_t *v)
{
	return v ? json_object_set_new(o, k, v) : -1;
}

static int jstr(json_t *o, const char *k, const char *v)
{
	return jset(o, k, json_string(v ? v : ""));
}

static int jint(json_t *o, const char *k, int64_t v)
{
	return jset(o, k, json_integer((json_int_t)v));
}

/* Dump a JSON array to a malloc'd string; NULL on failure. Takes arr. */
static char *jdump(json_t *arr)
{
	char *s = arr ? json_dumps(arr, JSON_COMPACT) : NULL;

	json_decref(arr);
	return s;
}

/* Fenced single statement: the statement's first column is the lease epoch seen. */
static int fenced_result(struct pgstate *p, const PGresult *r, const char *what, struct err *e)
{
	int64_t ep = 0;
	int rc = PQntuples(r) >= 1 ? pgstore_col_i64(r, 0, "lease_epoch", &ep, e) : 0;

	if (!rc && (ep != p->epoch || p->epoch == 0))
		rc = err_set(e, SP_EFENCED, "%s: fencing epoch %" PRId64 " is stale (current %" PRId64
			     "): another operator leads", what, p->epoch, ep);
	return rc;
}

/* ------------------------------------------------------------ settle */

int pgstate_settle(struct pgstate *p, const struct pgstate_settlement *v, size_t n,
		   struct err *e)
{
	json_t *arr = json_array();
	char ep[24], *js;
	PGresult *r = NULL;
	size_t i;
	int rc = 0;

	if (!n) {
		json_decref(arr);
		return 0;
	}
	for (i = 0; arr && i < n; i++) {
		json_t *o = json_object();
		if (!o || jint(o, "id", v[i].id) || jset(o, "done", json_boolean(v[i].done)) ||
		    jstr(o, "note", v[i].note) || json_array_append_new(arr, o))
			rc = SP_ENOMEM;
	}
	js = rc ? (json_decref(arr), NULL) : jdump(arr);
	if (!js)
		return err_set(e, SP_ENOMEM, "settle: out of memory");
	epoch_text(p, ep, sizeof(ep));
	{
		const char *params[3] = { p->lease, ep, js };
		rc = run(p, "settle journal",
			 "WITH l AS (SELECT epoch FROM operator_leases WHERE name = $1 FOR SHARE),"
			 " u AS (UPDATE actions a SET state = (CASE WHEN x.done THEN 'done'"
			 " ELSE 'failed' END)::action_state, finished_at = now(), error = x.note"
			 " FROM jsonb_to_recordset($3::jsonb) AS x(id bigint, done boolean, note text)"
			 " WHERE a.id = x.id AND a.state = 'pending'"
			 " AND (SELECT epoch FROM l) = $2::bigint RETURNING a.id)"
			 " SELECT coalesce((SELECT epoch FROM l), 0) AS lease_epoch,"
			 " (SELECT count(*) FROM u) AS n", 3, params, &r, e);
	}
	if (!rc)
		rc = fenced_result(p, r, "settle journal", e);
	PQclear(r);
	free(js);
	return rc;
}

/* ------------------------------------------------------------ journal */

static json_t *action_json(const struct action *a)
{
	json_t *o = json_object(), *pl = json_object();
	int bad = !o || !pl;

	bad = bad || jstr(o, "key", a->key) || jstr(o, "type", action_name(a->type));
	bad = bad || jint(o, "pool_id", a->pool_id) || jint(o, "workspace_id", a->workspace_id);
	bad = bad || jstr(o, "instance_id", a->instance_id);
	bad = bad || jstr(pl, "asg", a->asg_name) || jint(pl, "capacity", a->capacity);
	bad = bad || jint(pl, "flag", a->flag) || jstr(pl, "reason", a->reason);
	bad = bad || jstr(pl, "address", a->address) || jint(pl, "port", a->port);
	if (!bad && a->type == ACT_ENSURE_CONTAINER)
		bad = jstr(pl, "image", a->req.image) || jint(pl, "expect_snapshot",
							      a->req.expect_snapshot);
	if (!bad) {
		bad = json_object_set_new(o, "payload", pl);
		pl = NULL;
	}
	json_decref(pl);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static const char JOURNAL_SQL[] =
	"WITH l AS (SELECT epoch FROM operator_leases WHERE name = $1 FOR SHARE),"
	" ins AS (INSERT INTO actions (key, type, pool_id, workspace_id, instance_id, payload,"
	" state, epoch)"
	" SELECT x.key, x.type, nullif(x.pool_id, 0), nullif(x.workspace_id, 0), x.instance_id,"
	" x.payload, 'pending', $2::bigint"
	" FROM jsonb_to_recordset($3::jsonb) AS x(key text, type text, pool_id bigint,"
	" workspace_id bigint, instance_id text, payload jsonb)"
	" WHERE (SELECT epoch FROM l) = $2::bigint RETURNING id, key)"
	" SELECT coalesce((SELECT epoch FROM l), 0) AS lease_epoch, ins.id, ins.key"
	" FROM (SELECT 1) one LEFT JOIN ins ON true";

static int slot_add(struct pgstate *p, const char *key, int64_t id)
{
	struct jslot *s;

	if (p->nslots == JOURNAL_MAX)
		return SP_ELIMIT;
	if (p->nslots == p->slots_alloc) {
		size_t na = p->slots_alloc ? p->slots_alloc * 2 : 64;
		void *nv = realloc(p->slots, na * sizeof(*p->slots));
		if (!nv)
			return SP_ENOMEM;
		p->slots = nv;
		p->slots_alloc = na;
	}
	s = &p->slots[p->nslots++];
	memset(s, 0, sizeof(*s));
	str_copy(s->key, sizeof(s->key), key);
	s->id = id;
	return 0;
}

static int cmp_slot(const void *a, const void *b)
{
	return strcmp(((const struct jslot *)a)->key, ((const struct jslot *)b)->key);
}

/* Slots are kept sorted by key (after each insert), so lookups are binary searches. */
static struct jslot *slot_find(const struct pgstate *p, const char *key)
{
	struct jslot k;

	if (str_copy(k.key, sizeof(k.key), key))
		return NULL;
	return bsearch(&k, p->slots, p->nslots, sizeof(*p->slots), cmp_slot);
}

/* Insert actions pending (fenced); remember each id by key. */
static int journal_insert(struct pgstate *p, const struct action *a, size_t n, struct err *e)
{
	json_t *arr = json_array();
	char ep[24], *js;
	PGresult *r = NULL;
	size_t i;
	int rc = 0, k;

	for (i = 0; arr && !rc && i < n; i++)
		if (json_array_append_new(arr, action_json(&a[i])))
			rc = SP_ENOMEM;
	js = rc ? (json_decref(arr), NULL) : jdump(arr);
	if (!js)
		return err_set(e, SP_ENOMEM, "journal: out of memory");
	epoch_text(p, ep, sizeof(ep));
	{
		const char *params[3] = { p->lease, ep, js };
		rc = run(p, "journal actions", JOURNAL_SQL, 3, params, &r, e);
	}
	free(js);
	if (!rc)
		rc = fenced_result(p, r, "journal actions", e);
	for (k = 0; !rc && k < PQntuples(r); k++) {
		int64_t id = 0;
		if (PQgetisnull(r, k, 1))
			continue;
		rc = pgstore_col_i64(r, k, "id", &id, e);
		if (!rc && slot_add(p, PQgetvalue(r, k, 2), id))
			rc = err_set(e, SP_ENOMEM, "journal: out of memory");
	}
	PQclear(r);
	if (p->nslots > 1)
		qsort(p->slots, p->nslots, sizeof(*p->slots), cmp_slot);
	return rc;
}

int pgstate_journal(struct pgstate *p, const struct action *a, size_t n, struct err *e)
{
	p->nslots = 0;
	p->nfinalize = 0;
	if (n > JOURNAL_MAX)
		return err_set(e, SP_ELIMIT, "journal: more than %d actions in one pass",
			       JOURNAL_MAX);
	if (!n)
		return 0;
	return journal_insert(p, a, n, e);
}

int pgstate_journal_has(const struct pgstate *p, const char *key)
{
	return slot_find(p, key) != NULL;
}

int pgstate_journal_one(struct pgstate *p, const struct action *a, struct err *e)
{
	return journal_insert(p, a, 1, e);
}

int pgstate_journal_result(struct pgstate *p, const struct action *a, int rc, const char *msg)
{
	struct jslot *s = slot_find(p, a->key);

	if (!s)
		return SP_ENOTFOUND;
	s->has_result = 1;
	s->rc = rc;
	str_copy(s->msg, sizeof(s->msg), msg ? msg : "");
	return 0;
}

int pgstate_journal_discard(struct pgstate *p, const struct action *a)
{
	struct jslot *s = slot_find(p, a->key);

	if (!s)
		return SP_ENOTFOUND;
	s->discard = 1;
	return 0;
}

int pgstate_finalize_row(struct pgstate *p, int64_t workspace_id)
{
	if (p->nfinalize == p->finalize_alloc) {
		size_t na = p->finalize_alloc ? p->finalize_alloc * 2 : 16;
		void *nv = realloc(p->finalize, na * sizeof(*p->finalize));
		if (!nv)
			return SP_ENOMEM;
		p->finalize = nv;
		p->finalize_alloc = na;
	}
	p->finalize[p->nfinalize++] = workspace_id;
	return 0;
}

/* ------------------------------------------------------------ record: lookups */

/*
 * Sorted views of the snapshot and the plan, built once per record so every
 * lookup is a binary search (a pass over N rows stays O(N log N)).
 */
struct index {
	const struct workspace_spec **ws;      /* by id */
	const struct instance_record **inst;   /* snapshot records, by instance id */
	const struct instance_record **planinst; /* the plan's records, by instance id */
	const struct pgstate_drift **open;     /* open findings, by (subject, reason) */
	const struct drift_finding **find;     /* the plan's findings, by (subject, reason) */
	unsigned char *first;                  /* parallel to plan drift: first of its key */
	const struct obs_instance **seen;      /* this pass's observed instances, by id */
	size_t nws, ninst, nplaninst, nopen, nfind, nseen;
};

static int cmp_seen(const void *a, const void *b)
{
	return strcmp((*(const struct obs_instance *const *)a)->id,
		      (*(const struct obs_instance *const *)b)->id);
}

static int cmp_ws(const void *a, const void *b)
{
	int64_t x = (*(const struct workspace_spec *const *)a)->id;
	int64_t y = (*(const struct workspace_spec *const *)b)->id;

	return x < y ? -1 : x > y;
}

static int cmp_inst(const void *a, const void *b)
{
	return strcmp((*(const struct instance_record *const *)a)->instance_id,
		      (*(const struct instance_record *const *)b)->instance_id);
}

static int key_cmp(const char *s1, const char *r1, const char *s2, const char *r2)
{
	int c = strcmp(s1, s2);

	return c ? c : strcmp(r1, r2);
}

static int cmp_open(const void *a, const void *b)
{
	const struct pgstate_drift *x = *(const struct pgstate_drift *const *)a;
	const struct pgstate_drift *y = *(const struct pgstate_drift *const *)b;

	return key_cmp(x->f.subject, x->f.reason, y->f.subject, y->f.reason);
}

/* By key, then by position, so the first of equal keys sorts first. */
static int cmp_find(const void *a, const void *b)
{
	const struct drift_finding *x = *(const struct drift_finding *const *)a;
	const struct drift_finding *y = *(const struct drift_finding *const *)b;
	int c = key_cmp(x->subject, x->reason, y->subject, y->reason);

	return c ? c : (x < y ? -1 : x > y);
}

static void index_release(struct index *ix)
{
	free(ix->ws);
	free(ix->inst);
	free(ix->planinst);
	free(ix->open);
	free(ix->find);
	free(ix->first);
	free(ix->seen);
	memset(ix, 0, sizeof(*ix));
}

/* The observed instances of every described group of the pass, sorted by id. */
static int index_seen(struct index *ix, const struct pgstate_snapshot *s,
		      const struct pgstate_pass *pass)
{
	size_t i, k, n = 0;

	for (i = 0; pass->obs && i < s->npools; i++)
		n += pass->obs[i].group ? pass->obs[i].group->ninstances : 0;
	ix->seen = calloc(n + 1, sizeof(*ix->seen));
	if (!ix->seen)
		return SP_ENOMEM;
	for (i = 0; pass->obs && i < s->npools; i++)
		for (k = 0; pass->obs[i].group && k < pass->obs[i].group->ninstances; k++)
			ix->seen[ix->nseen++] = &pass->obs[i].group->instances[k];
	qsort(ix->seen, ix->nseen, sizeof(*ix->seen), cmp_seen);
	return 0;
}

static int index_build(struct index *ix, const struct pgstate_snapshot *s,
		       const struct plan_output *o)
{
	size_t i, nd = o ? o->ndrift : 0, ni = o ? o->ninstances : 0;

	memset(ix, 0, sizeof(*ix));
	ix->ws = calloc(s->nworkspaces + 1, sizeof(*ix->ws));
	ix->inst = calloc(s->ninstances + 1, sizeof(*ix->inst));
	ix->planinst = calloc(ni + 1, sizeof(*ix->planinst));
	ix->open = calloc(s->ndrift + 1, sizeof(*ix->open));
	ix->find = calloc(nd + 1, sizeof(*ix->find));
	ix->first = calloc(nd + 1, 1);
	if (!ix->ws || !ix->inst || !ix->planinst || !ix->open || !ix->find || !ix->first) {
		index_release(ix);
		return SP_ENOMEM;
	}
	for (i = 0; i < s->nworkspaces; i++)
		ix->ws[ix->nws++] = &s->workspaces[i];
	for (i = 0; i < s->ninstances; i++)
		ix->inst[ix->ninst++] = &s->instances[i];
	for (i = 0; i < ni; i++)
		ix->planinst[ix->nplaninst++] = &o->instances[i];
	for (i = 0; i < s->ndrift; i++)
		ix->open[ix->nopen++] = &s->drift[i];
	for (i = 0; i < nd; i++)
		ix->find[ix->nfind++] = &o->drift[i];
	qsort(ix->ws, ix->nws, sizeof(*ix->ws), cmp_ws);
	qsort(ix->inst, ix->ninst, sizeof(*ix->inst), cmp_inst);
	qsort(ix->planinst, ix->nplaninst, sizeof(*ix->planinst), cmp_inst);
	qsort(ix->open, ix->nopen, sizeof(*ix->open), cmp_open);
	qsort(ix->find, ix->nfind, sizeof(*ix->find), cmp_find);
	for (i = 0; i < ix->nfind; i++)
		if (i == 0 || key_cmp(ix->find[i]->subject, ix->find[i]->reason,
				      ix->find[i - 1]->subject, ix->find[i - 1]->reason))
			ix->first[ix->find[i] - o->drift] = 1;
	return 0;
}

static const struct workspace_spec *find_ws(const struct index *ix, int64_t id)
{
	struct workspace_spec key, *kp = &key;
	const struct workspace_spec **r;

	key.id = id;
	r = bsearch(&kp, ix->ws, ix->nws, sizeof(*ix->ws), cmp_ws);
	return r ? *r : NULL;
}

static const struct instance_record *find_in(const struct instance_record **v, size_t n,
					     const char *id)
{
	struct instance_record key, *kp = &key;
	const struct instance_record **r;

	if (str_copy(key.instance_id, sizeof(key.instance_id), id))
		return NULL;
	r = bsearch(&kp, v, n, sizeof(*v), cmp_inst);
	return r ? *r : NULL;
}

static const struct pgstate_drift *open_drift(const struct index *ix, const struct drift_finding *f)
{
	struct pgstate_drift key, *kp = &key;
	const struct pgstate_drift **r;

	memset(&key, 0, sizeof(key));
	key.f = *f;
	r = bsearch(&kp, ix->open, ix->nopen, sizeof(*ix->open), cmp_open);
	return r ? *r : NULL;
}

static int by_key(const void *k, const void *e)
{
	const struct drift_finding *x = k, *y = *(const struct drift_finding *const *)e;

	return key_cmp(x->subject, x->reason, y->subject, y->reason);
}

static int in_findings(const struct index *ix, const struct pgstate_drift *d)
{
	return bsearch(&d->f, ix->find, ix->nfind, sizeof(*ix->find), by_key) != NULL;
}

/* ------------------------------------------------------------ record: builders */

static json_t *cond_json(const struct condition *c)
{
	json_t *o = json_object();

	if (!o || jstr(o, "status", cond_status_name(c->status)) || jstr(o, "reason", c->reason) ||
	    jstr(o, "message", c->message) || jint(o, "last_transition", c->last_transition)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *status_json(const struct workspace_status *st)
{
	json_t *o = json_object(), *conds = json_object();
	int bad = !o || !conds, i;

	for (i = 0; !bad && i < COND_MAX; i++)
		bad = jset(conds, cond_type_name((enum cond_type)i), cond_json(&st->conds[i]));
	if (bad || !o) {
		json_decref(conds);
		json_decref(o);
		return NULL;
	}
	bad = jset(o, "conditions", conds);  /* steals conds */
	bad = bad || jint(o, "workspace_id", st->workspace_id);
	bad = bad || jint(o, "observed_generation", st->observed_generation);
	bad = bad || jstr(o, "phase", ws_phase_name(st->phase));
	bad = bad || jstr(o, "instance_id", st->instance_id) || jstr(o, "address", st->address);
	bad = bad || jstr(o, "url", st->url) || jstr(o, "error_class", sp_class_name(st->error_class));
	bad = bad || jint(o, "attempts", st->attempts);
	bad = bad || jint(o, "next_attempt_at", st->next_attempt_at);
	bad = bad || jint(o, "phase_since", st->phase_since);
	bad = bad || jint(o, "reconcile_handled_at", st->reconcile_handled_at);
	bad = bad || jint(o, "last_sync_at", st->last_sync_at);
	bad = bad || jset(o, "restore_failed", json_boolean(st->restore_failed));
	bad = bad || jset(o, "has_snapshot", json_boolean(st->has_snapshot));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}


static int finalizing(const struct pgstate *p, int64_t id)
{
	size_t i;

	for (i = 0; i < p->nfinalize; i++)
		if (p->finalize[i] == id)
			return 1;
	return 0;
}

static json_t *event_json(const struct index *ix, const struct ws_event *ev)
{
	const struct workspace_spec *w = find_ws(ix, ev->workspace_id);
	json_t *o = json_object();
	int bad = !o;

	bad = bad || jint(o, "workspace_id", ev->workspace_id);
	bad = bad || jstr(o, "workspace_name", w ? w->name : "");
	bad = bad || jstr(o, "type", ev->type);
	bad = bad || jstr(o, "from_phase", ws_phase_name(ev->from));
	bad = bad || jstr(o, "to_phase", ws_phase_name(ev->to));
	bad = bad || jstr(o, "reason", ev->reason) || jstr(o, "message", ev->message);
	bad = bad || jint(o, "at", ev->at);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *drift_json(const struct drift_finding *f, int64_t id)
{
	json_t *o = json_object();
	int bad = !o;

	bad = bad || (id && jint(o, "id", id));
	bad = bad || jstr(o, "subject", f->subject) || jstr(o, "reason", f->reason);
	bad = bad || jstr(o, "cls", drift_name(f->cls));
	bad = bad || jint(o, "workspace_id", f->workspace_id) || jint(o, "pool_id", f->pool_id);
	bad = bad || jstr(o, "desired", f->desired) || jstr(o, "observed", f->observed);
	bad = bad || jstr(o, "remedy", f->remedy);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * The observation of an instance in this pass, when there is one: a binary
 * search (a first pass over 10,000 instances records them all; a scan of
 * every group for each took most of its time).
 */
static const struct obs_instance *inst_seen(const struct index *ix, const char *id)
{
	struct obs_instance key;
	const struct obs_instance *kp = &key, **r;

	if (str_copy(key.id, sizeof(key.id), id))
		return NULL;
	r = bsearch(&kp, ix->seen, ix->nseen, sizeof(*ix->seen), cmp_seen);
	return r ? *r : NULL;
}

static json_t *instance_json(const struct instance_record *r, const struct obs_instance *o)
{
	json_t *j = json_object();
	int bad = !j;

	bad = bad || jstr(j, "instance_id", r->instance_id) || jint(j, "pool_id", r->pool_id);
	bad = bad || jint(j, "first_seen", r->first_seen) || jint(j, "idle_since", r->idle_since);
	bad = bad || jint(j, "unhealthy_passes", r->unhealthy_passes);
	bad = bad || jset(j, "marked_unhealthy", json_boolean(r->marked_unhealthy));
	bad = bad || jint(j, "orphan_seen", r->orphan_seen);
	bad = bad || jset(j, "ever_healthy", json_boolean(r->ever_healthy));
	bad = bad || jset(j, "observed", json_boolean(o != NULL));
	if (o) {
		bad = bad || jstr(j, "private_ip", o->private_ip);
		bad = bad || jstr(j, "lifecycle", inst_lifecycle_name(o->lifecycle));
		bad = bad || jset(j, "healthy", json_boolean(o->healthy));
		bad = bad || jset(j, "protected", json_boolean(o->protected_from_scale_in));
	}
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return j;
}


static int inst_differs(const struct instance_record *a, const struct instance_record *b)
{
	return a->pool_id != b->pool_id || a->first_seen != b->first_seen ||
	       a->idle_since != b->idle_since || a->unhealthy_passes != b->unhealthy_passes ||
	       !a->marked_unhealthy != !b->marked_unhealthy || a->orphan_seen != b->orphan_seen ||
	       !a->ever_healthy != !b->ever_healthy;
}

static const struct pool_record *find_poolrec(const struct pgstate_snapshot *s, int64_t id)
{
	size_t i;

	for (i = 0; i < s->npool_records; i++)
		if (s->pool_records[i].pool_id == id)
			return &s->pool_records[i];
	return NULL;
}

static int drift_same(const struct drift_finding *a, const struct drift_finding *b)
{
	return a->cls == b->cls && a->workspace_id == b->workspace_id && a->pool_id == b->pool_id &&
	       !strcmp(a->desired, b->desired) && !strcmp(a->observed, b->observed) &&
	       !strcmp(a->remedy, b->remedy);
}

/* ------------------------------------------------------------ record: statements */

/* How a statement's answer is read. */
enum rec_kind { K_ROWS, K_FENCE, K_DRIFT_NEW, K_COUNT };

/* A statement sent in the pipeline, waiting for its result. */
struct sent {
	const char *what;
	int *count;
	enum rec_kind kind;
};

/*
 * The record is one pipeline (one round trip): every statement is sent,
 * then one Sync, then the results are read in order. Without BEGIN, the
 * statements up to the Sync form one implicit transaction: the first error
 * (a stale fence included) rolls back the ones before and skips the rest.
 * Every statement answers at most one row, so the pipeline never fills the
 * server's output while we are still sending.
 */
struct rec {
	struct pgstate *p;
	const struct pgstate_snapshot *s;
	const struct pgstate_pass *pass;
	struct pgstate_record_stats *st;
	char ep[24], now[24];
	struct index ix;
	struct sent sent[PGSTATE_RECORD_STMTS];
	int nsent;
	struct err *e;
};

/* Queue one statement in the pipeline. */
static int rec_send(struct rec *x, const char *what, const char *sql, int n,
		    const char *const *params, int *count, enum rec_kind kind)
{
	PGconn *c = pgstore_conn(x->p->store);

	if (x->nsent == PGSTATE_RECORD_STMTS)
		return err_set(x->e, SP_EINTERNAL, "%s: more than %d statements in a record", what,
			       PGSTATE_RECORD_STMTS);
	if (!PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0))
		return err_set(x->e, SP_EIO, "%s: %s", what, PQerrorMessage(c));
	x->sent[x->nsent++] = (struct sent){ what, count, kind };
	x->st->statements++;
	return 0;
}

/*
 * Queue one statement with ($1 epoch, $2 now, $3 the json array); an empty
 * array sends nothing. count gets the rows it wrote (a one-row answer "n").
 */
static int rec_exec_kind(struct rec *x, const char *what, const char *sql, json_t *arr,
			 int *count, enum rec_kind kind)
{
	const char *params[3] = { x->ep, x->now, NULL };
	char *js;
	int rc;

	if (!arr)
		return err_set(x->e, SP_ENOMEM, "%s: out of memory", what);
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return 0;
	}
	js = jdump(arr);
	if (!js)
		return err_set(x->e, SP_ENOMEM, "%s: out of memory", what);
	params[2] = js;
	rc = rec_send(x, what, sql, 3, params, count, kind);
	free(js);
	return rc;
}

static int rec_exec(struct rec *x, const char *what, const char *sql, json_t *arr, int *count)
{
	return rec_exec_kind(x, what, sql, arr, count, K_ROWS);
}

static int append(json_t *arr, json_t *o)
{
	return (!arr || !o) ? (json_decref(o), -1) : json_array_append_new(arr, o);
}

static int rec_status(struct rec *x)
{
	const struct plan_output *o = x->pass->plan;
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < o->nchanges; i++)
		if (append(arr, status_json(&o->changes[i].status)))
			return json_decref(arr), err_set(x->e, SP_ENOMEM, "status: out of memory");
	return rec_exec(x, "write status",
		"INSERT INTO workspace_status AS s (workspace_id, observed_generation, phase,"
		" conditions, instance_id, address, url, error_class, attempts, next_attempt_at,"
		" phase_since, reconcile_handled_at, last_sync_at, restore_failed, has_snapshot,"
		" epoch, updated_at)"
		" SELECT x.workspace_id, x.observed_generation, x.phase::ws_phase, x.conditions,"
		" x.instance_id, x.address, x.url, x.error_class, x.attempts,"
		" spinup_ts(x.next_attempt_at), spinup_ts(x.phase_since),"
		" spinup_ts(x.reconcile_handled_at), spinup_ts(x.last_sync_at), x.restore_failed,"
		" x.has_snapshot, $1::bigint, now()"
		" FROM jsonb_to_recordset($3::jsonb) AS x(workspace_id bigint,"
		" observed_generation bigint, phase text, conditions jsonb, instance_id text,"
		" address text, url text, error_class text, attempts int, next_attempt_at bigint,"
		" phase_since bigint, reconcile_handled_at bigint, last_sync_at bigint,"
		" restore_failed boolean, has_snapshot boolean)"
		" WHERE $2::text <> '' AND EXISTS (SELECT 1 FROM workspaces w WHERE w.id = x.workspace_id)"
		" ON CONFLICT (workspace_id) DO UPDATE SET"
		" observed_generation = EXCLUDED.observed_generation, phase = EXCLUDED.phase,"
		" conditions = EXCLUDED.conditions, instance_id = EXCLUDED.instance_id,"
		" address = EXCLUDED.address, url = EXCLUDED.url, error_class = EXCLUDED.error_class,"
		" attempts = EXCLUDED.attempts, next_attempt_at = EXCLUDED.next_attempt_at,"
		" phase_since = EXCLUDED.phase_since,"
		" reconcile_handled_at = EXCLUDED.reconcile_handled_at,"
		" last_sync_at = EXCLUDED.last_sync_at, restore_failed = EXCLUDED.restore_failed,"
		" has_snapshot = EXCLUDED.has_snapshot, epoch = EXCLUDED.epoch, updated_at = now()",
		arr, &x->st->status);
}

static int rec_events(struct rec *x)
{
	const struct plan_output *o = x->pass->plan;
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < o->nevents; i++) {
		const struct ws_event *ev = &o->events[i];
		/* the finalisation statement writes DELETE_COMPLETED itself, atomically */
		if (!strcmp(ev->type, "DELETE_COMPLETED") && finalizing(x->p, ev->workspace_id))
			continue;
		if (append(arr, event_json(&x->ix, ev)))
			return json_decref(arr), err_set(x->e, SP_ENOMEM, "events: out of memory");
	}
	return rec_exec(x, "write events",
		"INSERT INTO workspace_events (workspace_id, workspace_name, type, from_phase,"
		" to_phase, reason, message, at, epoch)"
		" SELECT x.workspace_id, x.workspace_name, x.type, x.from_phase::ws_phase,"
		" x.to_phase::ws_phase, x.reason, x.message, coalesce(spinup_ts(x.at), now()),"
		" $1::bigint FROM jsonb_to_recordset($3::jsonb) AS x(workspace_id bigint,"
		" workspace_name text, type text, from_phase text, to_phase text, reason text,"
		" message text, at bigint) WHERE $2::text <> ''",
		arr, &x->st->events);
}




static const char DRIFT_NEW_SQL[] =
	"WITH j AS (SELECT * FROM jsonb_to_recordset($3::jsonb) AS x(subject text, reason text,"
	" cls text, workspace_id bigint, pool_id bigint, desired text, observed text,"
	" remedy text)),"
	" prev AS (SELECT DISTINCT ON (d.subject, d.reason) d.id, d.subject, d.reason"
	" FROM drift d JOIN j ON j.subject = d.subject AND j.reason = d.reason"
	" WHERE d.resolved_at IS NOT NULL ORDER BY d.subject, d.reason, d.id DESC),"
	" reopened AS (UPDATE drift d SET resolved_at = NULL, flap_count = d.flap_count + 1,"
	" last_seen = spinup_ts($2::bigint), cls = j.cls::drift_class,"
	" workspace_id = nullif(j.workspace_id, 0), pool_id = nullif(j.pool_id, 0),"
	" desired = j.desired, observed = j.observed, remedy = j.remedy"
	" FROM prev JOIN j ON j.subject = prev.subject AND j.reason = prev.reason"
	" WHERE d.id = prev.id AND $1::bigint > 0 RETURNING d.id),"
	" ins AS (INSERT INTO drift (subject, reason, cls, workspace_id, pool_id, desired,"
	" observed, remedy, first_seen, last_seen)"
	" SELECT j.subject, j.reason, j.cls::drift_class, nullif(j.workspace_id, 0),"
	" nullif(j.pool_id, 0), j.desired, j.observed, j.remedy, spinup_ts($2::bigint),"
	" spinup_ts($2::bigint) FROM j WHERE NOT EXISTS (SELECT 1 FROM prev"
	" WHERE prev.subject = j.subject AND prev.reason = j.reason) RETURNING id)"
	" SELECT (SELECT count(*) FROM reopened) AS r, (SELECT count(*) FROM ins) AS n";

static int rec_drift_new(struct rec *x)
{
	const struct plan_output *o = x->pass->plan;
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < o->ndrift; i++)
		if (x->ix.first[i] && !open_drift(&x->ix, &o->drift[i]) &&
		    append(arr, drift_json(&o->drift[i], 0)))
			return json_decref(arr), err_set(x->e, SP_ENOMEM, "drift: out of memory");
	return rec_exec_kind(x, "write new drift", DRIFT_NEW_SQL, arr, NULL, K_DRIFT_NEW);
}

static int rec_drift_touch(struct rec *x)
{
	const struct plan_output *o = x->pass->plan;
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < o->ndrift; i++) {
		const struct pgstate_drift *d = open_drift(&x->ix, &o->drift[i]);
		if (!d || !x->ix.first[i])
			continue;
		if (drift_same(&d->f, &o->drift[i]) &&
		    x->pass->now - d->last_seen < PGSTATE_DRIFT_TOUCH_MS)
			continue;
		if (append(arr, drift_json(&o->drift[i], d->id)))
			return json_decref(arr), err_set(x->e, SP_ENOMEM, "drift: out of memory");
	}
	return rec_exec(x, "update drift",
		"UPDATE drift d SET last_seen = spinup_ts($2::bigint), cls = x.cls::drift_class,"
		" workspace_id = nullif(x.workspace_id, 0), pool_id = nullif(x.pool_id, 0),"
		" desired = x.desired, observed = x.observed, remedy = x.remedy"
		" FROM jsonb_to_recordset($3::jsonb) AS x(id bigint, cls text, workspace_id bigint,"
		" pool_id bigint, desired text, observed text, remedy text)"
		" WHERE d.id = x.id AND d.resolved_at IS NULL AND $1::bigint > 0",
		arr, &x->st->drift_touched);
}

static int rec_drift_resolve(struct rec *x)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < x->s->ndrift; i++)
		if (!in_findings(&x->ix, &x->s->drift[i]) &&
		    append(arr, json_integer((json_int_t)x->s->drift[i].id)))
			return json_decref(arr), err_set(x->e, SP_ENOMEM, "drift: out of memory");
	return rec_exec(x, "resolve drift",
		"UPDATE drift SET resolved_at = spinup_ts($2::bigint)"
		" WHERE id IN (SELECT (jsonb_array_elements_text($3::jsonb))::bigint)"
		" AND resolved_at IS NULL AND $1::bigint > 0",
		arr, &x->st->drift_resolved);
}

static int rec_instances(struct rec *x)
{
	const struct plan_output *o = x->pass->plan;
	json_t *up = json_array(), *del = json_array();
	size_t i;
	int rc;

	for (i = 0; up && i < o->ninstances; i++) {
		const struct instance_record *n = &o->instances[i];
		const struct instance_record *old = find_in(x->ix.inst, x->ix.ninst, n->instance_id);
		if (old && !inst_differs(old, n))
			continue;
		if (append(up, instance_json(n, inst_seen(&x->ix, n->instance_id))))
			break;
	}
	for (i = 0; del && i < x->s->ninstances; i++) {
		const char *id = x->s->instances[i].instance_id;
		if (!find_in(x->ix.planinst, x->ix.nplaninst, id) && append(del, json_string(id)))
			break;
	}
	rc = rec_exec(x, "write instances",
		"INSERT INTO instances (instance_id, pool_id, first_seen, idle_since,"
		" unhealthy_passes, marked_unhealthy, orphan_seen, ever_healthy, private_ip,"
		" lifecycle, healthy, protected, last_seen)"
		" SELECT x.instance_id, x.pool_id, coalesce(spinup_ts(x.first_seen), now()),"
		" spinup_ts(x.idle_since), x.unhealthy_passes, x.marked_unhealthy,"
		" spinup_ts(x.orphan_seen), coalesce(x.ever_healthy, false), coalesce(x.private_ip, ''),"
		" coalesce(x.lifecycle, 'Other'), coalesce(x.healthy, false),"
		" coalesce(x.protected, false), CASE WHEN x.observed THEN spinup_ts($2::bigint) END"
		" FROM jsonb_to_recordset($3::jsonb) AS x(instance_id text, pool_id bigint,"
		" first_seen bigint, idle_since bigint, unhealthy_passes int,"
		" marked_unhealthy boolean, orphan_seen bigint, ever_healthy boolean,"
		" observed boolean, private_ip text, lifecycle text, healthy boolean,"
		" protected boolean)"
		" WHERE $1::bigint > 0 AND EXISTS (SELECT 1 FROM pools p WHERE p.id = x.pool_id)"
		" ON CONFLICT (instance_id) DO UPDATE SET pool_id = EXCLUDED.pool_id,"
		" first_seen = EXCLUDED.first_seen, idle_since = EXCLUDED.idle_since,"
		" unhealthy_passes = EXCLUDED.unhealthy_passes,"
		" marked_unhealthy = EXCLUDED.marked_unhealthy, orphan_seen = EXCLUDED.orphan_seen,"
		" ever_healthy = EXCLUDED.ever_healthy,"
		" private_ip = CASE WHEN EXCLUDED.last_seen IS NULL THEN instances.private_ip"
		" ELSE EXCLUDED.private_ip END,"
		" lifecycle = CASE WHEN EXCLUDED.last_seen IS NULL THEN instances.lifecycle"
		" ELSE EXCLUDED.lifecycle END,"
		" healthy = CASE WHEN EXCLUDED.last_seen IS NULL THEN instances.healthy"
		" ELSE EXCLUDED.healthy END,"
		" protected = CASE WHEN EXCLUDED.last_seen IS NULL THEN instances.protected"
		" ELSE EXCLUDED.protected END,"
		" last_seen = coalesce(EXCLUDED.last_seen, instances.last_seen)",
		up, &x->st->instances_written);
	if (!rc)
		rc = rec_exec(x, "delete instances",
			"DELETE FROM instances WHERE instance_id IN"
			" (SELECT jsonb_array_elements_text($3::jsonb)) AND $1::bigint > 0"
			" AND $2::text <> ''", del, &x->st->instances_deleted);
	else
		json_decref(del);
	return rc;
}

static int rec_pools(struct rec *x)
{
	const struct plan_output *o = x->pass->plan;
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < o->npool_records; i++) {
		const struct pool_record *n = &o->pool_records[i], *old = find_poolrec(x->s, n->pool_id);
		json_t *j;
		if (old && old->window_start == n->window_start &&
		    old->destructive_in_window == n->destructive_in_window &&
		    !old->safety_stopped == !n->safety_stopped &&
		    old->stopped_at == n->stopped_at && old->clear_handled_at == n->clear_handled_at)
			continue;
		j = json_object();
		if (!j || jint(j, "pool_id", n->pool_id) || jint(j, "window_start", n->window_start) ||
		    jint(j, "destructive_in_window", n->destructive_in_window) ||
		    jset(j, "safety_stopped", json_boolean(n->safety_stopped)) ||
		    jint(j, "stopped_at", n->stopped_at) ||
		    jint(j, "clear_handled_at", n->clear_handled_at) || append(arr, j))
			return json_decref(arr), err_set(x->e, SP_ENOMEM, "pools: out of memory");
	}
	return rec_exec(x, "write pool records",
		"INSERT INTO pool_status (pool_id, window_start, destructive_in_window,"
		" safety_stopped, safety_stopped_at, safety_clear_handled_at, updated_at)"
		" SELECT x.pool_id, spinup_ts(x.window_start), x.destructive_in_window,"
		" x.safety_stopped, spinup_ts(x.stopped_at), spinup_ts(x.clear_handled_at), now()"
		" FROM jsonb_to_recordset($3::jsonb) AS x(pool_id bigint, window_start bigint,"
		" destructive_in_window int, safety_stopped boolean, stopped_at bigint,"
		" clear_handled_at bigint)"
		" WHERE $1::bigint > 0 AND $2::text <> ''"
		" AND EXISTS (SELECT 1 FROM pools p WHERE p.id = x.pool_id)"
		" ON CONFLICT (pool_id) DO UPDATE SET window_start = EXCLUDED.window_start,"
		" destructive_in_window = EXCLUDED.destructive_in_window,"
		" safety_stopped = EXCLUDED.safety_stopped,"
		" safety_stopped_at = EXCLUDED.safety_stopped_at,"
		" safety_clear_handled_at = EXCLUDED.safety_clear_handled_at, updated_at = now()",
		arr, &x->st->pools_written);
}

static int rec_journal(struct rec *x)
{
	json_t *arr = json_array(), *gone = json_array();
	size_t i;
	int rc;

	for (i = 0; arr && gone && i < x->p->nslots; i++) {
		const struct jslot *s = &x->p->slots[i];
		json_t *j;
		int ok = s->has_result && s->rc == 0;
		if (s->discard) {
			if (append(gone, json_integer((json_int_t)s->id)))
				break;
			continue;
		}
		j = json_object();
		if (!j || jint(j, "id", s->id) || jstr(j, "state", ok ? "done" : "failed") ||
		    jstr(j, "error", ok ? "" : s->has_result ? s->msg : "not run this pass") ||
		    append(arr, j))
			break;
	}
	if (i < x->p->nslots) {
		json_decref(arr);
		json_decref(gone);
		return err_set(x->e, SP_ENOMEM, "journal: out of memory");
	}
	rc = rec_exec(x, "close journal entries",
		"UPDATE actions a SET state = x.state::action_state, finished_at = now(),"
		" error = x.error FROM jsonb_to_recordset($3::jsonb) AS x(id bigint, state text,"
		" error text) WHERE a.id = x.id AND a.state = 'pending' AND $1::bigint > 0"
		" AND $2::text <> ''",
		arr, &x->st->journal_done);
	if (!rc)
		rc = rec_exec(x, "discard journal entries never run",
			"DELETE FROM actions WHERE id IN (SELECT (jsonb_array_elements_text($3::jsonb))::bigint)"
			" AND state = 'pending' AND $1::bigint > 0 AND $2::text <> ''",
			gone, &x->st->journal_discarded);
	else
		json_decref(gone);
	return rc;
}

static int rec_finalize(struct rec *x)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < x->p->nfinalize; i++)
		if (append(arr, json_integer((json_int_t)x->p->finalize[i])))
			return json_decref(arr), err_set(x->e, SP_ENOMEM, "finalize: out of memory");
	return rec_exec(x, "finalize deleted workspaces",
		"WITH d AS (DELETE FROM workspaces w WHERE w.id IN"
		" (SELECT (jsonb_array_elements_text($3::jsonb))::bigint)"
		" AND w.deletion_requested_at IS NOT NULL RETURNING w.id, w.name)"
		" INSERT INTO workspace_events (workspace_id, workspace_name, type, from_phase,"
		" to_phase, reason, message, at, epoch)"
		" SELECT d.id, d.name, 'DELETE_COMPLETED', 'DELETING', 'DELETED', 'Finalized',"
		" 'files synced, container removed, row deleted', spinup_ts($2::bigint), $1::bigint"
		" FROM d",
		arr, &x->st->rows_deleted);
}

static int rec_pass_row(struct rec *x)
{
	const struct pgstate_pass *ps = x->pass;
	const struct plan_output *o = ps->plan;
	char a[24], b[24], nw[16], na[16], nc[16], ne[16], nd[16];
	const char *params[11];

	snprintf(a, sizeof(a), "%" PRId64, ps->started_at);
	snprintf(b, sizeof(b), "%" PRId64, ps->finished_at);
	snprintf(nw, sizeof(nw), "%zu", x->s->nworkspaces);
	snprintf(na, sizeof(na), "%d", ps->nactions);
	snprintf(nc, sizeof(nc), "%zu", o ? o->nchanges : 0);
	snprintf(ne, sizeof(ne), "%zu", o ? o->nevents : 0);
	snprintf(nd, sizeof(nd), "%zu", o ? o->ndrift : 0);
	params[0] = x->ep;
	params[1] = x->p->holder;
	params[2] = a;
	params[3] = b;
	params[4] = nw;
	params[5] = na;
	params[6] = nc;
	params[7] = ne;
	params[8] = nd;
	params[9] = ps->outcome ? ps->outcome : "";
	params[10] = ps->error ? ps->error : "";
	return rec_send(x, "record pass",
		   "INSERT INTO reconcile_passes (epoch, holder, started_at, finished_at,"
		   " nworkspaces, nactions, nchanges, nevents, ndrift, outcome, error)"
		   " VALUES ($1, $2, coalesce(spinup_ts($3), now()), spinup_ts($4), $5, $6, $7, $8,"
		   " $9, $10, left($11, 1000))", 11, params, NULL, K_ROWS);
}

/*
 * The first statement: lock the lease row FOR SHARE when it still holds our
 * epoch. When it does not (a bump committed, or one we waited for), no row
 * qualifies and the division fails: the whole pipeline rolls back.
 */
static int rec_fence(struct rec *x)
{
	const char *params[2] = { x->p->lease, x->ep };

	return rec_send(x, "check fencing epoch",
			"SELECT 1 / count(*)::int AS ok FROM (SELECT 1 FROM operator_leases"
			" WHERE name = $1 AND epoch = $2::bigint FOR SHARE) l", 2, params, NULL,
			K_FENCE);
}

/* Read one statement's result into the stats; the first failure wins. */
static int rec_result(struct rec *x, const struct sent *st, const PGresult *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *t;
	int rc;

	if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED)
		return 0;
	if (st->kind == K_FENCE && state && !strcmp(state, "22012"))
		return err_set(x->e, SP_EFENCED, "record pass: fencing epoch %" PRId64 " is stale:"
			       " another operator leads; nothing written", x->p->epoch);
	rc = pgstore_result_err(r, st->what, x->e);
	if (rc)
		return rc;
	if (st->kind == K_COUNT && PQntuples(r) == 1) {
		*st->count += (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	} else if (st->kind == K_DRIFT_NEW && PQntuples(r) == 1) {
		x->st->drift_reopened += (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
		x->st->drift_new += (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
	} else if (st->count) {
		t = PQcmdTuples((PGresult *)r);
		*st->count += t[0] ? (int)strtol(t, NULL, 10) : 0;
	}
	return 0;
}

/* Sync, then read every queued result in order and the Sync. */
static int rec_collect(struct rec *x, int rc)
{
	PGconn *c = pgstore_conn(x->p->store);
	PGresult *r;
	int i;

	/* a failure while queueing: make the implicit transaction fail, so nothing commits */
	if (rc && !PQsendQueryParams(c, "SELECT 1 / 0 AS abort_record", 0, NULL, NULL, NULL, NULL, 0))
		return rc;      /* cannot even send: the connection is gone, nothing commits */
	if (!PQpipelineSync(c))
		return rc ? rc : err_set(x->e, SP_EIO, "record pass: %s", PQerrorMessage(c));
	for (i = 0; i < x->nsent + (rc ? 1 : 0); i++) {
		while ((r = PQgetResult(c))) {
			if (!rc)
				rc = rec_result(x, &x->sent[i], r);
			PQclear(r);
		}
	}
	r = PQgetResult(c);
	if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
		if (!rc)
			rc = err_set(x->e, SP_EIO, "record pass: database connection lost");
		while (r) {     /* drain what is left of a broken pipeline */
			PQclear(r);
			r = PQstatus(c) == CONNECTION_OK ? PQgetResult(c) : NULL;
		}
	}
	PQclear(r);
	return rc;
}

/* Retention: old pass rows, finished journal entries and resolved drift go. */
static int rec_prune(struct rec *x)
{
	char before[24];
	const char *params[2] = { x->ep, before };

	if (x->pass->prune_before <= 0)
		return 0;
	snprintf(before, sizeof(before), "%" PRId64, x->pass->prune_before);
	return rec_send(x, "prune history",
			"WITH p AS (DELETE FROM reconcile_passes WHERE started_at < spinup_ts($2::bigint)"
			" AND $1::bigint > 0 RETURNING 1),"
			" a AS (DELETE FROM actions WHERE state <> 'pending'"
			" AND finished_at < spinup_ts($2::bigint) RETURNING 1),"
			" d AS (DELETE FROM drift WHERE resolved_at < spinup_ts($2::bigint) RETURNING 1)"
			" SELECT (SELECT count(*) FROM p) + (SELECT count(*) FROM a)"
			" + (SELECT count(*) FROM d) AS n", 2, params, &x->st->pruned, K_COUNT);
}

static int rec_all(struct rec *x)
{
	int rc = rec_fence(x);

	if (!rc && x->pass->plan)
		rc = rec_status(x);
	if (!rc && x->pass->plan)
		rc = rec_events(x);
	if (!rc && x->pass->plan)
		rc = rec_drift_resolve(x);
	if (!rc && x->pass->plan)
		rc = rec_drift_touch(x);
	if (!rc && x->pass->plan)
		rc = rec_drift_new(x);
	if (!rc && x->pass->plan)
		rc = rec_instances(x);
	if (!rc && x->pass->plan)
		rc = rec_pools(x);
	if (!rc)
		rc = rec_journal(x);
	if (!rc)
		rc = rec_finalize(x);
	if (!rc)
		rc = rec_prune(x);
	if (!rc)
		rc = rec_pass_row(x);
	return rc;
}

int pgstate_record(struct pgstate *p, const struct pgstate_snapshot *snap,
		   const struct pgstate_pass *pass, struct pgstate_record_stats *stats,
		   struct err *e)
{
	struct pgstate_record_stats local;
	struct rec x;
	int rc;

	memset(&x, 0, sizeof(x));
	x.p = p;
	x.s = snap;
	x.pass = pass;
	x.st = stats ? stats : &local;
	x.e = e;
	memset(x.st, 0, sizeof(*x.st));
	epoch_text(p, x.ep, sizeof(x.ep));
	snprintf(x.now, sizeof(x.now), "%" PRId64, pass->now);
	if (!p->epoch)
		return err_set(e, SP_EFENCED, "record pass: no fencing epoch held");
	if (index_build(&x.ix, snap, pass->plan) || index_seen(&x.ix, snap, pass)) {
		index_release(&x.ix);
		return err_set(e, SP_ENOMEM, "record pass: out of memory");
	}
	if (!PQenterPipelineMode(pgstore_conn(p->store))) {
		index_release(&x.ix);
		return err_set(e, SP_EIO, "record pass: cannot enter pipeline mode: %s",
			       PQerrorMessage(pgstore_conn(p->store)));
	}
	p->trips++;
	rc = rec_all(&x);
	rc = rec_collect(&x, rc);
	if (!PQexitPipelineMode(pgstore_conn(p->store)))
		p->broken = 1;  /* results left unread: the next pass reconnects first */
	index_release(&x.ix);
	if (!rc) {
		p->nslots = 0;
		p->nfinalize = 0;
	}
	return rc;
}
