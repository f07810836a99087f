/*
 * pgstore.c - the Postgres store (see pgstore.h): connection, migrations,
 * row decoding, and spinctl's reads and writes of desired state.
 */
#include "drivers/pgstore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "drivers/migrations.h"
#include "model/strbuf.h"
#include "model/banned.h"

/* pg_advisory_xact_lock key serialising migrations ("SPINUP" + 1). */
#define MIGRATE_LOCK_KEY "91754697201921"
#define WRITER "spinctl"

struct pgstore {
	PGconn *conn;
	int apply_prepared;      /* the apply statements are prepared on conn */
};

static void notice_drop(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* The first line of a libpq message, without its trailing newline. */
static void first_line(const char *msg, char *out, size_t outsz)
{
	size_t n = strcspn(msg ? msg : "", "\n");

	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, msg ? msg : "", n);
	out[n] = '\0';
}

int pgstore_open(const char *conninfo, const char *application_name, struct pgstore **out,
		 struct err *e)
{
	/* Our defaults come first; the keys expanded from conninfo override them. */
	/*
	 * statement_timeout bounds a query the server runs; tcp_user_timeout and
	 * the keepalives bound one whose server or network went away (TCP only):
	 * every call to the database ends within about 30 s.
	 */
	const char *keys[] = { "connect_timeout", "options", "client_encoding", "keepalives_idle",
			       "keepalives_interval", "keepalives_count", "tcp_user_timeout",
			       "application_name", "dbname", NULL };
	const char *app = application_name ? application_name : "spinup";
	char options[128];
	const char *vals[] = { "5", options, "UTF8", "10", "5", "3", "30000", app, conninfo, NULL };
	PQconninfoOption *parsed;
	struct pgstore *s;
	char *perr = NULL;
	char line[256];

	if (!conninfo || !conninfo[0])
		return err_set(e, SP_EINVAL, "no database given: set DATABASE_URL or pass --db");
	/* the writer field_owners records for this session (a spinup_ui member is 'ui' anyway) */
	snprintf(options, sizeof(options), "-c statement_timeout=30000 -c spinup.writer=%s", app);
	parsed = PQconninfoParse(conninfo, &perr);
	if (!parsed) {
		first_line(perr ? perr : "out of memory", line, sizeof(line));
		PQfreemem(perr);
		return err_set(e, SP_EINVAL, "invalid database address: %s", line);
	}
	PQconninfoFree(parsed);
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, SP_ENOMEM, "out of memory");
	s->conn = PQconnectdbParams(keys, vals, 1);
	if (!s->conn) {
		free(s);
		return err_set(e, SP_ENOMEM, "out of memory connecting to the database");
	}
	if (PQstatus(s->conn) != CONNECTION_OK) {
		first_line(PQerrorMessage(s->conn), line, sizeof(line));
		pgstore_free(s);
		return err_set(e, SP_EUNAVAIL, "could not connect to the database: %s", line);
	}
	PQsetNoticeProcessor(s->conn, notice_drop, NULL);
	*out = s;
	return 0;
}

void pgstore_free(struct pgstore *s)
{
	if (!s)
		return;
	if (s->conn)
		PQfinish(s->conn);
	free(s);
}

PGconn *pgstore_conn(struct pgstore *s)
{
	return s->conn;
}

static int sqlstate_code(const char *st)
{
	if (!st)
		return SP_EIO;
	if (!strcmp(st, "42501"))
		return SP_EDENIED;
	if (!strncmp(st, "23", 2) || !strncmp(st, "22", 2))
		return SP_EINVAL;
	if (!strcmp(st, "42P01") || !strcmp(st, "42703") || !strcmp(st, "42883") ||
	    !strcmp(st, "42704"))
		return SP_ESCHEMA;
	if (!strcmp(st, "57014"))
		return SP_ETIMEOUT;
	if (!strcmp(st, "40001") || !strcmp(st, "40P01") || !strcmp(st, "55P03"))
		return SP_EBUSY;
	if (!strncmp(st, "08", 2))
		return SP_EIO;
	if (!strncmp(st, "42", 2))
		return SP_EINTERNAL;
	return SP_EUNAVAIL;
}

int pgstore_result_err(const PGresult *res, const char *what, struct err *e)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	const char *state, *primary, *constraint;
	char line[256];
	int code;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return 0;
	if (!res)
		return err_set(e, SP_ENOMEM, "%s: out of memory", what);
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
	first_line(primary ? primary : PQresultErrorMessage(res), line, sizeof(line));
	code = sqlstate_code(state);
	if (code == SP_ESCHEMA)
		return err_set(e, code, "%s: %s (schema out of date: run spinctl migrate)", what,
			       line);
	if (constraint)
		return err_set(e, code, "%s: %s (constraint %s)", what, line, constraint);
	if (!line[0])
		return err_set(e, code, "%s: connection to the database lost", what);
	return err_set(e, code, "%s: %s", what, line);
}

int pgstore_exec(struct pgstore *s, const char *what, const char *sql, int nparams,
		 const char *const *params, PGresult **out, struct err *e)
{
	PGresult *res = PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	int rc;

	if (!res) {
		char line[256];
		first_line(PQerrorMessage(s->conn), line, sizeof(line));
		return err_set(e, SP_EIO, "%s: %s", what, line[0] ? line : "no result");
	}
	rc = pgstore_result_err(res, what, e);
	if (rc || !out)
		PQclear(res);
	else
		*out = res;
	return rc;
}

int pgstore_begin(struct pgstore *s, struct err *e)
{
	return pgstore_exec(s, "begin transaction", "BEGIN", 0, NULL, NULL, e);
}

int pgstore_commit(struct pgstore *s, struct err *e)
{
	return pgstore_exec(s, "commit", "COMMIT", 0, NULL, NULL, e);
}

void pgstore_rollback(struct pgstore *s)
{
	PGresult *res = PQexec(s->conn, "ROLLBACK");

	PQclear(res);
}

/* ------------------------------------------------------------ migrations */

int pgstore_latest_version(void)
{
	int v = 0;
	size_t i;

	for (i = 0; i < spinup_nmigrations; i++)
		if (spinup_migrations[i].version > v)
			v = spinup_migrations[i].version;
	return v;
}

static int migrate_lock(struct pgstore *s, struct err *e)
{
	const char *p[] = { MIGRATE_LOCK_KEY };
	int rc = pgstore_begin(s, e);

	if (!rc)
		rc = pgstore_exec(s, "lock migrations", "SELECT pg_advisory_xact_lock($1::bigint)",
				  1, p, NULL, e);
	return rc;
}

static int migrate_bootstrap(struct pgstore *s, struct err *e)
{
	int rc = migrate_lock(s, e);

	if (!rc)
		rc = pgstore_exec(s, "create schema_migrations",
				  "CREATE TABLE IF NOT EXISTS schema_migrations ("
				  " version integer PRIMARY KEY, name text NOT NULL,"
				  " applied_at timestamptz NOT NULL DEFAULT now())",
				  0, NULL, NULL, e);
	if (!rc)
		rc = pgstore_commit(s, e);
	if (rc)
		pgstore_rollback(s);
	return rc;
}

/* Apply one migration unless recorded; *ran = 1 when it ran. */
static int migrate_one(struct pgstore *s, const struct migration *m, int *ran, struct err *e)
{
	char ver[16], what[96];
	const char *p[2] = { ver, m->name };
	PGresult *res = NULL;
	int rc;

	snprintf(ver, sizeof(ver), "%d", m->version);
	snprintf(what, sizeof(what), "migration %03d_%s", m->version, m->name);
	*ran = 0;
	rc = migrate_lock(s, e);
	if (!rc)
		rc = pgstore_exec(s, what, "SELECT 1 FROM schema_migrations WHERE version = $1::int",
				  1, p, &res, e);
	if (!rc && PQntuples(res) == 0) {
		PGresult *r = PQexec(s->conn, m->sql);
		rc = pgstore_result_err(r, what, e);
		PQclear(r);
		if (!rc)
			rc = pgstore_exec(s, what,
					  "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
					  2, p, NULL, e);
		*ran = !rc;
	}
	PQclear(res);
	if (!rc)
		rc = pgstore_commit(s, e);
	if (rc) {
		pgstore_rollback(s);
		*ran = 0;
	}
	return rc;
}

int pgstore_migrate(struct pgstore *s, int *applied, struct err *e)
{
	size_t i;
	int rc, n = 0, ran;

	rc = migrate_bootstrap(s, e);
	for (i = 0; !rc && i < spinup_nmigrations; i++) {
		rc = migrate_one(s, &spinup_migrations[i], &ran, e);
		n += ran;
	}
	if (applied)
		*applied = n;
	return rc;
}

int pgstore_schema_version(struct pgstore *s, int *version, struct err *e)
{
	PGresult *res = PQexecParams(s->conn,
				     "SELECT coalesce(max(version), 0) FROM schema_migrations",
				     0, NULL, NULL, NULL, NULL, 0);
	const char *st;
	int rc = 0;

	if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
		*version = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	} else {
		st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		if (st && !strcmp(st, "42P01"))
			*version = 0;
		else
			rc = pgstore_result_err(res, "read schema version", e);
	}
	PQclear(res);
	return rc;
}

int pgstore_check_schema(struct pgstore *s, struct err *e)
{
	int v = 0, latest = pgstore_latest_version();
	int rc = pgstore_schema_version(s, &v, e);

	if (rc)
		return rc;
	if (v == 0)
		return err_set(e, SP_ESCHEMA, "the database is not migrated: run spinctl migrate");
	if (v < latest)
		return err_set(e, SP_ESCHEMA,
			       "the database schema is at version %d, this binary needs %d: run spinctl migrate",
			       v, latest);
	if (v > latest)
		return err_set(e, SP_ESCHEMA,
			       "the database schema version %d is newer than this binary (%d): upgrade spinctl",
			       v, latest);
	return 0;
}

/* ------------------------------------------------------------ decoding */

/* Column index or -1; with required, a missing column is an error. */
static int col(const PGresult *res, const char *name)
{
	return PQfnumber(res, name);
}

int pgstore_col_str(const PGresult *res, int row, const char *name, char *dst, size_t dstsz,
		    struct err *e)
{
	int c = col(res, name);

	if (c < 0 || PQgetisnull(res, row, c)) {
		dst[0] = '\0';
		return 0;
	}
	if (str_copy(dst, dstsz, PQgetvalue(res, row, c)))
		return err_set(e, SP_EINVAL, "row violates the contract: column %s is longer than %zu bytes",
			       name, dstsz - 1);
	return 0;
}

int pgstore_col_i64(const PGresult *res, int row, const char *name, int64_t *out, struct err *e)
{
	int c = col(res, name);
	const char *v;
	char *end;
	long long x;

	if (c < 0 || PQgetisnull(res, row, c)) {
		*out = 0;
		return 0;
	}
	v = PQgetvalue(res, row, c);
	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end)
		return err_set(e, SP_EINVAL, "row violates the contract: column %s is not an integer",
			       name);
	*out = x;
	return 0;
}

int pgstore_col_int(const PGresult *res, int row, const char *name, int *out, struct err *e)
{
	int64_t v;
	int rc = pgstore_col_i64(res, row, name, &v, e);

	if (!rc && (v < INT32_MIN || v > INT32_MAX))
		rc = err_set(e, SP_EINVAL, "row violates the contract: column %s is out of range",
			     name);
	*out = rc ? 0 : (int)v;
	return rc;
}

int pgstore_col_bool(const PGresult *res, int row, const char *name)
{
	int c = col(res, name);

	return c >= 0 && !PQgetisnull(res, row, c) && PQgetvalue(res, row, c)[0] == 't';
}

static int col_bool(const PGresult *res, int row, const char *name, int *out)
{
	*out = pgstore_col_bool(res, row, name);
	return 0;
}

static int col_required(const PGresult *res, const char *name, struct err *e)
{
	if (col(res, name) < 0)
		return err_set(e, SP_EINTERNAL, "query result has no column %s", name);
	return 0;
}

int pgstore_decode_pool(const PGresult *res, int row, struct pool_spec *out, struct err *e)
{
	struct pool_spec p;
	int rc;

	memset(&p, 0, sizeof(p));
	rc = col_required(res, "id", e);
	if (!rc)
		rc = col_required(res, "name", e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "id", &p.id, e);
	if (!rc)
		rc = pgstore_col_str(res, row, "name", p.name, sizeof(p.name), e);
	if (!rc)
		rc = pgstore_col_str(res, row, "asg_name", p.asg_name, sizeof(p.asg_name), e);
	if (!rc)
		rc = pgstore_col_str(res, row, "region", p.region, sizeof(p.region), e);
	if (!rc)
		rc = pgstore_col_int(res, row, "slots_per_instance", &p.slots_per_instance, e);
	if (!rc)
		rc = pgstore_col_int(res, row, "warm_instances", &p.warm_instances, e);
	if (!rc)
		rc = pgstore_col_int(res, row, "min_instances", &p.min_instances, e);
	if (!rc)
		rc = pgstore_col_int(res, row, "max_instances", &p.max_instances, e);
	if (!rc)
		rc = pgstore_col_int(res, row, "agent_port", &p.agent_port, e);
	if (!rc)
		rc = pgstore_col_str(res, row, "default_image", p.default_image, sizeof(p.default_image), e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "generation", &p.generation, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "paused_until", &p.paused_until, e);
	if (!rc)
		rc = col_bool(res, row, "observe_only", &p.observe_only);
	if (!rc)
		rc = pgstore_col_i64(res, row, "safety_clear_requested_at",
				     &p.safety_clear_requested_at, e);
	if (!rc)
		*out = p;
	return rc;
}

static int decode_ws_state(const PGresult *res, int row, enum ws_state *out, struct err *e)
{
	char v[16];
	int rc = pgstore_col_str(res, row, "state", v, sizeof(v), e);

	if (!rc && ws_state_parse(v, out))
		rc = err_set(e, SP_EINVAL, "row violates the contract: state '%s' is not Running or Stopped",
			     v);
	return rc;
}

static int decode_labels(const PGresult *res, int row, struct workspace_spec *w, struct err *e)
{
	int c = col(res, "labels");

	w->nlabels = 0;
	if (c < 0 || PQgetisnull(res, row, c))
		return 0;
	return pgstore_labels_decode(PQgetvalue(res, row, c), w->labels, &w->nlabels, e);
}

int pgstore_decode_workspace(const PGresult *res, int row, struct workspace_spec *out,
			     struct err *e)
{
	struct workspace_spec *w = calloc(1, sizeof(*w));
	int rc = w ? 0 : err_set(e, SP_ENOMEM, "out of memory");

	if (!rc)
		rc = col_required(res, "id", e);
	if (!rc)
		rc = col_required(res, "name", e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "id", &w->id, e);
	if (!rc)
		rc = pgstore_col_str(res, row, "name", w->name, sizeof(w->name), e);
	if (!rc)
		rc = pgstore_col_str(res, row, "owner", w->owner, sizeof(w->owner), e);
	if (!rc)
		rc = pgstore_col_str(res, row, "pool", w->pool, sizeof(w->pool), e);
	if (!rc && col(res, "state") >= 0)
		rc = decode_ws_state(res, row, &w->state, e);
	if (!rc)
		rc = pgstore_col_str(res, row, "template_name", w->template_name, sizeof(w->template_name), e);
	if (!rc)
		rc = pgstore_col_str(res, row, "image", w->image, sizeof(w->image), e);
	if (!rc)
		rc = pgstore_col_int(res, row, "cpu_milli", &w->cpu_milli, e);
	if (!rc)
		rc = pgstore_col_int(res, row, "memory_mib", &w->memory_mib, e);
	if (!rc)
		rc = pgstore_col_str(res, row, "bucket", w->bucket, sizeof(w->bucket), e);
	if (!rc)
		rc = pgstore_col_str(res, row, "prefix", w->prefix, sizeof(w->prefix), e);
	if (!rc)
		rc = pgstore_col_int(res, row, "idle_timeout_s", &w->idle_timeout_s, e);
	if (!rc)
		rc = decode_labels(res, row, w, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "generation", &w->generation, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "deletion_requested_at", &w->deletion_requested_at, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "paused_until", &w->paused_until, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "reconcile_requested_at", &w->reconcile_requested_at, e);
	if (!rc)
		*out = *w;
	free(w);
	return rc;
}

static int decode_cond(json_t *c, struct condition *out, struct err *e)
{
	json_t *v;

	if (!json_is_object(c))
		return err_set(e, SP_EINVAL, "row violates the contract: a condition is not an object");
	v = json_object_get(c, "status");
	if (json_is_string(v) && cond_status_parse(json_string_value(v), &out->status))
		return err_set(e, SP_EINVAL, "row violates the contract: condition status '%s'",
			       json_string_value(v));
	v = json_object_get(c, "reason");
	if (json_is_string(v) && str_copy(out->reason, sizeof(out->reason), json_string_value(v)))
		return err_set(e, SP_EINVAL, "row violates the contract: condition reason too long");
	v = json_object_get(c, "message");
	if (json_is_string(v) && str_copy(out->message, sizeof(out->message), json_string_value(v)))
		return err_set(e, SP_EINVAL, "row violates the contract: condition message too long");
	v = json_object_get(c, "last_transition");
	out->last_transition = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
	return 0;
}

static int decode_conditions(const PGresult *res, int row, struct workspace_status *st,
			     struct err *e)
{
	int c = col(res, "conditions"), i, rc = 0;
	json_error_t jerr;
	json_t *root;

	if (c < 0 || PQgetisnull(res, row, c))
		return 0;
	root = json_loads(PQgetvalue(res, row, c), 0, &jerr);
	if (!json_is_object(root))
		rc = err_set(e, SP_EINVAL, "row violates the contract: conditions is not a JSON object");
	for (i = 0; !rc && i < COND_MAX; i++) {
		json_t *v = json_object_get(root, cond_type_name((enum cond_type)i));
		if (v)
			rc = decode_cond(v, &st->conds[i], e);
	}
	json_decref(root);
	return rc;
}

static int decode_class(const char *s, enum sp_class *out)
{
	int i;

	for (i = 0; i < SP_CLASS_MAX; i++) {
		if (!strcmp(s, sp_class_name((enum sp_class)i))) {
			*out = (enum sp_class)i;
			return 0;
		}
	}
	return SP_EINVAL;
}

int pgstore_decode_status(const PGresult *res, int row, struct workspace_status *out,
			  struct err *e)
{
	struct workspace_status *st = calloc(1, sizeof(*st));
	char phase[32], cls[32];
	int rc = st ? 0 : err_set(e, SP_ENOMEM, "out of memory");

	if (!rc)
		rc = col_required(res, "workspace_id", e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "workspace_id", &st->workspace_id, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "observed_generation", &st->observed_generation, e);
	if (!rc)
		rc = pgstore_col_str(res, row, "phase", phase, sizeof(phase), e);
	if (!rc && phase[0] && ws_phase_parse(phase, &st->phase))
		rc = err_set(e, SP_EINVAL, "row violates the contract: phase '%s'", phase);
	if (!rc)
		rc = decode_conditions(res, row, st, e);
	if (!rc)
		rc = pgstore_col_str(res, row, "instance_id", st->instance_id, sizeof(st->instance_id), e);
	if (!rc)
		rc = pgstore_col_str(res, row, "address", st->address, sizeof(st->address), e);
	if (!rc)
		rc = pgstore_col_str(res, row, "url", st->url, sizeof(st->url), e);
	if (!rc)
		rc = pgstore_col_str(res, row, "error_class", cls, sizeof(cls), e);
	if (!rc && cls[0] && decode_class(cls, &st->error_class))
		rc = err_set(e, SP_EINVAL, "row violates the contract: error_class '%s'", cls);
	if (!rc)
		rc = pgstore_col_int(res, row, "attempts", &st->attempts, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "next_attempt_at", &st->next_attempt_at, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "phase_since", &st->phase_since, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "reconcile_handled_at", &st->reconcile_handled_at, e);
	if (!rc)
		rc = pgstore_col_i64(res, row, "last_sync_at", &st->last_sync_at, e);
	if (!rc)
		rc = col_bool(res, row, "restore_failed", &st->restore_failed);
	if (!rc)
		rc = col_bool(res, row, "has_snapshot", &st->has_snapshot);
	if (!rc)
		*out = *st;
	free(st);
	return rc;
}

/* ------------------------------------------------------------ labels */

int pgstore_labels_encode(const struct label *labels, int n, char **out, struct err *e)
{
	json_t *o = json_object();
	char *s = NULL;
	int i, rc = o ? 0 : err_set(e, SP_ENOMEM, "out of memory");

	for (i = 0; !rc && i < n; i++) {
		json_t *v = json_string(labels[i].value);
		if (!v || json_object_set_new(o, labels[i].key, v))
			rc = err_set(e, SP_EINVAL, "label '%s' is not valid UTF-8", labels[i].key);
	}
	if (!rc) {
		s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
		if (!s)
			rc = err_set(e, SP_ENOMEM, "out of memory");
	}
	json_decref(o);
	if (!rc)
		*out = s;
	return rc;
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->key, ((const struct label *)b)->key);
}

int pgstore_labels_decode(const char *json, struct label *labels, int *n, struct err *e)
{
	struct label tmp[SPEC_LABELS_MAX];
	json_error_t jerr;
	json_t *root = json_loads(json, 0, &jerr), *v;
	const char *key;
	int k = 0, rc = 0;

	if (!json_is_object(root))
		rc = err_set(e, SP_EINVAL, "row violates the contract: labels is not a JSON object");
	else if (json_object_size(root) > SPEC_LABELS_MAX)
		rc = err_set(e, SP_EINVAL, "row violates the contract: more than %d labels",
			     SPEC_LABELS_MAX);
	if (!rc) {
		json_object_foreach(root, key, v) {
			if (!json_is_string(v) || str_copy(tmp[k].key, sizeof(tmp[k].key), key) ||
			    str_copy(tmp[k].value, sizeof(tmp[k].value), json_string_value(v))) {
				rc = err_set(e, SP_EINVAL, "row violates the contract: label '%s'", key);
				break;
			}
			k++;
		}
	}
	json_decref(root);
	if (!rc) {
		qsort(tmp, (size_t)k, sizeof(tmp[0]), label_cmp);
		memcpy(labels, tmp, sizeof(tmp[0]) * (size_t)k);
		*n = k;
	}
	return rc;
}

/* ------------------------------------------------------------ apply */

const char *pgstore_outcome_name(enum pgstore_outcome o)
{
	static const char *const names[PGSTORE_OUTCOME_MAX] = { "created", "configured", "unchanged" };

	return ((int)o >= 0 && o < PGSTORE_OUTCOME_MAX) ? names[o] : "unknown";
}

void pgstore_apply_result_init(struct pgstore_apply_result *r)
{
	memset(r, 0, sizeof(*r));
	r->failed_doc = -1;
}

void pgstore_apply_result_release(struct pgstore_apply_result *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->nchanges; i++) {
		free(r->changes[i].old_value);
		free(r->changes[i].new_value);
	}
	free(r->changes);
	free(r->outcomes);
	pgstore_apply_result_init(r);
}

enum fkind { F_STR, F_INT, F_STATE, F_LABELS };

struct field {
	const char *name;       /* column */
	enum fkind kind;
	size_t off;
};

#define WSF(n, k) { #n, k, offsetof(struct workspace_spec, n) }
static const struct field ws_fields[] = {
	WSF(owner, F_STR), WSF(state, F_STATE), WSF(template_name, F_STR), WSF(image, F_STR),
	WSF(cpu_milli, F_INT), WSF(memory_mib, F_INT), WSF(bucket, F_STR), WSF(prefix, F_STR),
	WSF(idle_timeout_s, F_INT), WSF(labels, F_LABELS),
};
#define PF(n, k) { #n, k, offsetof(struct pool_spec, n) }
static const struct field pool_fields[] = {
	PF(asg_name, F_STR), PF(region, F_STR), PF(slots_per_instance, F_INT),
	PF(warm_instances, F_INT), PF(min_instances, F_INT), PF(max_instances, F_INT),
	PF(agent_port, F_INT), PF(default_image, F_STR),
};
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* The display (and parameter) form of one field: malloc'd string. */
static int field_value(const void *spec, const struct field *f, char **out, struct err *e)
{
	const char *base = spec;
	char buf[32];

	switch (f->kind) {
	case F_STR:
		*out = strdup(base + f->off);
		break;
	case F_INT:
		snprintf(buf, sizeof(buf), "%d", *(const int *)(const void *)(base + f->off));
		*out = strdup(buf);
		break;
	case F_STATE: {
		const char *n = ws_state_name(*(const enum ws_state *)(const void *)(base + f->off));
		*out = strdup(n ? n : "invalid");
		break;
	}
	case F_LABELS: {
		const struct workspace_spec *w = spec;
		return pgstore_labels_encode(w->labels, w->nlabels, out, e);
	}
	}
	return *out ? 0 : err_set(e, SP_ENOMEM, "out of memory");
}

static int add_change(struct pgstore_apply_result *r, size_t doc, const char *field,
		      char *old_value, char *new_value, const char *owner, struct err *e)
{
	struct pgstore_change *c;

	if (r->nchanges == r->alloc) {
		size_t na = r->alloc ? r->alloc * 2 : 16;
		void *p = realloc(r->changes, na * sizeof(*r->changes));
		if (!p) {
			free(old_value);
			free(new_value);
			return err_set(e, SP_ENOMEM, "out of memory");
		}
		r->changes = p;
		r->alloc = na;
	}
	c = &r->changes[r->nchanges++];
	memset(c, 0, sizeof(*c));
	c->doc = doc;
	c->field = field;
	c->old_value = old_value;
	c->new_value = new_value;
	str_copy(c->owner, sizeof(c->owner), owner ? owner : "");
	c->conflict = owner && owner[0] && strcmp(owner, WRITER) != 0;
	if (c->conflict)
		r->nconflicts++;
	return 0;
}

/* The writer who last set field, from a field_owners jsonb text. */
static void field_owner(json_t *owners, const char *field, char *out, size_t outsz)
{
	json_t *by = json_object_get(json_object_get(owners, field), "by");

	str_copy(out, outsz, json_is_string(by) ? json_string_value(by) : "");
}

/*
 * Compare spec (new) with cur (the row) field by field; record changes.
 * cur NULL: the object is new, every field is a change. *nchanged counts.
 */
static int diff_fields(const struct field *fields, size_t nf, const void *spec, const void *cur,
		       const char *owners_json, size_t doc, struct pgstore_apply_result *r,
		       int *nchanged, struct err *e)
{
	json_t *owners = owners_json ? json_loads(owners_json, 0, NULL) : NULL;
	char owner[64];
	size_t i;
	int rc = 0;

	*nchanged = 0;
	for (i = 0; !rc && i < nf; i++) {
		char *nv = NULL, *ov = NULL;
		rc = field_value(spec, &fields[i], &nv, e);
		if (!rc && cur)
			rc = field_value(cur, &fields[i], &ov, e);
		if (!rc && ov && !strcmp(ov, nv)) {
			free(ov);
			free(nv);
			continue;
		}
		if (rc) {
			free(ov);
			free(nv);
			break;
		}
		field_owner(owners, fields[i].name, owner, sizeof(owner));
		rc = add_change(r, doc, fields[i].name, ov, nv, cur ? owner : "", e);
		(*nchanged)++;
	}
	json_decref(owners);
	return rc;
}

static const char *row_owners(const PGresult *res, int row)
{
	int c = PQfnumber(res, "field_owners");

	return (c >= 0 && !PQgetisnull(res, row, c)) ? PQgetvalue(res, row, c) : NULL;
}

static int pool_marked(const PGresult *res, int row)
{
	int c = PQfnumber(res, "deletion_requested_at");

	return c >= 0 && strcmp(PQgetvalue(res, row, c), "0") != 0;
}

/*
 * The rows an apply touches, read (and locked) with two queries up front,
 * so an apply costs two round trips plus one per document that changes.
 */
struct prefetch {
	PGresult *pools;   /* pool_specs rows named by the set (as pools or as a workspace's pool) */
	PGresult *ws;      /* workspace_specs rows named by the set */
};

/* Append s to a Postgres array literal being built ("{" ... "}"). */
static int array_add(struct strbuf *sb, const char *s)
{
	int rc = strbuf_addstr(sb, sb->len > 1 ? ",\"" : "\"");

	for (; !rc && *s; s++) {
		if (*s == '"' || *s == '\\')
			rc = strbuf_addch(sb, '\\');
		if (!rc)
			rc = strbuf_addch(sb, *s);
	}
	return rc ? rc : strbuf_addch(sb, '"');
}

static int prefetch_load(struct pgstore *s, const struct manifest_set *set, struct prefetch *pf,
			 struct err *e)
{
	struct strbuf pn = STRBUF_INIT, wp = STRBUF_INIT, wn = STRBUF_INIT;
	const char *p[2];
	size_t i;
	int rc = strbuf_addch(&pn, '{');

	rc = rc ? rc : strbuf_addch(&wp, '{');
	rc = rc ? rc : strbuf_addch(&wn, '{');
	for (i = 0; !rc && i < set->n; i++) {
		const struct manifest_doc *d = &set->docs[i];
		if (d->kind == MANIFEST_POOL) {
			rc = array_add(&pn, d->pool.name);
		} else {
			rc = array_add(&pn, d->ws.pool);
			if (!rc)
				rc = array_add(&wp, d->ws.pool);
			if (!rc)
				rc = array_add(&wn, d->ws.name);
		}
	}
	rc = rc ? rc : strbuf_addch(&pn, '}');
	rc = rc ? rc : strbuf_addch(&wp, '}');
	rc = rc ? rc : strbuf_addch(&wn, '}');
	if (rc)
		rc = err_set(e, rc, "apply: the set is too large to look up");
	p[0] = pn.buf;
	if (!rc)
		rc = pgstore_exec(s, "read pools", "SELECT p.* FROM pool_specs p"
				  " WHERE p.name = ANY($1::text[]) FOR UPDATE", 1, p, &pf->pools, e);
	p[0] = wp.buf;
	p[1] = wn.buf;
	if (!rc)
		rc = pgstore_exec(s, "read workspaces", "SELECT w.* FROM workspace_specs w"
				  " WHERE (w.pool, w.name) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
				  " FOR UPDATE", 2, p, &pf->ws, e);
	strbuf_release(&pn);
	strbuf_release(&wp);
	strbuf_release(&wn);
	return rc;
}

static void prefetch_release(struct prefetch *pf)
{
	PQclear(pf->pools);
	PQclear(pf->ws);
	pf->pools = pf->ws = NULL;
}

/* The row of res whose name (and pool, when pool is not NULL) match; -1 if none. */
static int prefetch_find(const PGresult *res, const char *pool, const char *name)
{
	int cn = PQfnumber(res, "name"), cp = PQfnumber(res, "pool"), i;

	for (i = 0; i < PQntuples(res); i++)
		if (!strcmp(PQgetvalue(res, i, cn), name) &&
		    (!pool || !strcmp(PQgetvalue(res, i, cp), pool)))
			return i;
	return -1;
}

/*
 * The statements an apply writes with, prepared once per connection
 * (pgstore_prepare_apply) and run by name, so 1000 writes are parsed and
 * planned once, not 1000 times.
 */
enum wstmt { W_POOL_INSERT, W_POOL_UPDATE, W_WS_INSERT, W_WS_UPDATE, W_MAX };

static const struct {
	const char *name;
	const char *sql;
} wstmts[W_MAX] = {
	[W_POOL_INSERT] = { "spinup_pool_insert",
		"INSERT INTO pools (name, asg_name, region, slots_per_instance,"
		" warm_instances, min_instances, max_instances, agent_port,"
		" default_image) VALUES ($1, $2, $3, $4::int, $5::int, $6::int,"
		" $7::int, $8::int, $9)" },
	[W_POOL_UPDATE] = { "spinup_pool_update",
		"UPDATE pools SET asg_name = $2, region = $3,"
		" slots_per_instance = $4::int, warm_instances = $5::int,"
		" min_instances = $6::int, max_instances = $7::int,"
		" agent_port = $8::int, default_image = $9 WHERE name = $1" },
	[W_WS_INSERT] = { "spinup_ws_insert",
		"INSERT INTO workspaces (pool_id, name, owner, state, template_name,"
		" image, cpu_milli, memory_mib, bucket, prefix, idle_timeout_s, labels)"
		" SELECT id, $2, $3, $4::ws_state, $5, $6, $7::int, $8::int, $9, $10,"
		" $11::int, $12::jsonb FROM pools WHERE name = $1" },
	[W_WS_UPDATE] = { "spinup_ws_update",
		"UPDATE workspaces w SET owner = $3, state = $4::ws_state,"
		" template_name = $5, image = $6, cpu_milli = $7::int, memory_mib = $8::int,"
		" bucket = $9, prefix = $10, idle_timeout_s = $11::int, labels = $12::jsonb"
		" FROM pools p WHERE p.id = w.pool_id AND p.name = $1 AND w.name = $2" },
};

/*
 * Prepare wstmts on s's connection, once: prepared statements outlive
 * transactions (a rolled-back apply keeps them), so a flag suffices.
 */
static int prepare_apply(struct pgstore *s, struct err *e)
{
	PGresult *res;
	int i, rc = 0;

	for (i = 0; !rc && !s->apply_prepared && i < W_MAX; i++) {
		res = PQprepare(s->conn, wstmts[i].name, wstmts[i].sql, 0, NULL);
		rc = pgstore_result_err(res, "prepare apply", e);
		PQclear(res);
	}
	if (!rc)
		s->apply_prepared = 1;
	return rc;
}

/*
 * The writes of an apply, pipelined (libpq pipeline mode): each INSERT or
 * UPDATE is sent as it is planned and the results are read back every
 * WRITES_CHUNK statements and at the end, so an apply of N changed
 * documents costs about N / WRITES_CHUNK round trips instead of N. The
 * chunk bounds what sits unread in the socket buffers. The first failing
 * statement aborts the rest of the transaction; its document is recorded
 * in r->failed_doc.
 */
#define WRITES_CHUNK 256

struct writes {
	struct pgstore *s;
	const struct manifest_set *set;
	struct pgstore_apply_result *r;
	size_t docs[WRITES_CHUNK];     /* the document of each statement in flight */
	size_t n;
	int on;                        /* in pipeline mode */
};

static void doc_what(const struct manifest_doc *d, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s/%s", d->kind == MANIFEST_POOL ? "pool" : "workspace",
		 d->kind == MANIFEST_POOL ? d->pool.name : d->ws.name);
}

/* Read back every statement in flight (up to their sync); first error wins. */
static int writes_drain(struct writes *w, struct err *e)
{
	PGconn *c = w->s->conn;
	size_t idx = 0, n = w->n;
	char what[128];
	PGresult *res;
	int rc = 0;

	if (!n)
		return 0;
	w->n = 0;
	if (!PQpipelineSync(c))
		return err_set(e, SP_EIO, "apply: could not send to the database: %s",
			       PQerrorMessage(c));
	for (;;) {
		res = PQgetResult(c);
		if (!res) {
			if (PQstatus(c) != CONNECTION_OK || ++idx > n)
				break;
			continue;
		}
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			break;
		}
		if (!rc && PQresultStatus(res) != PGRES_PIPELINE_ABORTED && idx < n) {
			doc_what(&w->set->docs[w->docs[idx]], what, sizeof(what));
			rc = pgstore_result_err(res, what, e);
			if (rc && w->r->failed_doc < 0)
				w->r->failed_doc = (long)w->docs[idx];
		}
		PQclear(res);
	}
	if (!rc && PQstatus(c) != CONNECTION_OK)
		rc = err_set(e, SP_EIO, "apply: connection to the database lost");
	return rc;
}

static int writes_begin(struct writes *w, struct err *e)
{
	if (!PQenterPipelineMode(w->s->conn))
		return err_set(e, SP_EIO, "apply: could not enter pipeline mode: %s",
			       PQerrorMessage(w->s->conn));
	w->on = 1;
	return 0;
}

/* Drain what is in flight and leave pipeline mode; keeps the first error. */
static int writes_end(struct writes *w, int rc, struct err *e)
{
	struct err ignored = ERR_INIT;
	int drc;

	if (!w->on)
		return rc;
	drc = writes_drain(w, rc ? &ignored : e);
	PQexitPipelineMode(w->s->conn);
	w->on = 0;
	return rc ? rc : drc;
}

static int writes_send(struct writes *w, size_t doc, enum wstmt st, int n,
		       const char *const *p, struct err *e)
{
	char what[128];

	if (!PQsendQueryPrepared(w->s->conn, wstmts[st].name, n, p, NULL, NULL, 0)) {
		doc_what(&w->set->docs[doc], what, sizeof(what));
		return err_set(e, SP_EIO, "%s: could not send to the database: %s", what,
			       PQerrorMessage(w->s->conn));
	}
	w->docs[w->n++] = doc;
	return w->n == WRITES_CHUNK ? writes_drain(w, e) : 0;
}

static int pool_params(const struct pool_spec *p, char ints[5][16], const char *v[10])
{
	snprintf(ints[0], 16, "%d", p->slots_per_instance);
	snprintf(ints[1], 16, "%d", p->warm_instances);
	snprintf(ints[2], 16, "%d", p->min_instances);
	snprintf(ints[3], 16, "%d", p->max_instances);
	snprintf(ints[4], 16, "%d", p->agent_port);
	v[0] = p->name;
	v[1] = p->asg_name;
	v[2] = p->region;
	v[3] = ints[0];
	v[4] = ints[1];
	v[5] = ints[2];
	v[6] = ints[3];
	v[7] = ints[4];
	v[8] = p->default_image;
	return 9;
}

static int apply_pool(struct writes *w, const struct manifest_doc *d, size_t doc,
		      const struct prefetch *pf, struct pgstore_apply_result *r, struct err *e)
{
	int row = prefetch_find(pf->pools, NULL, d->pool.name), rc = 0, n, nchanged = 0;
	const char *p[10];
	char ints[5][16], what[128];
	struct pool_spec cur;

	snprintf(what, sizeof(what), "pool/%s", d->pool.name);
	n = pool_params(&d->pool, ints, p);
	if (row < 0) {
		r->outcomes[doc] = PGSTORE_CREATED;
		rc = diff_fields(pool_fields, NFIELDS(pool_fields), &d->pool, NULL, NULL, doc, r,
				 &nchanged, e);
		if (!rc)
			rc = writes_send(w, doc, W_POOL_INSERT, n, p, e);
		return rc;
	}
	rc = pgstore_decode_pool(pf->pools, row, &cur, e);
	if (!rc && pool_marked(pf->pools, row))
		rc = err_set(e, SP_ECONFLICT,
			     "%s: marked for deletion; wait for the operator to finalize it", what);
	if (!rc)
		rc = diff_fields(pool_fields, NFIELDS(pool_fields), &d->pool, &cur,
				 row_owners(pf->pools, row), doc, r, &nchanged, e);
	r->outcomes[doc] = nchanged ? PGSTORE_CONFIGURED : PGSTORE_UNCHANGED;
	if (!rc && nchanged)
		rc = writes_send(w, doc, W_POOL_UPDATE, n, p, e);
	return rc;
}

static int ws_params(const struct workspace_spec *w, const char *labels, char ints[3][16],
		     const char *v[12])
{
	snprintf(ints[0], 16, "%d", w->cpu_milli);
	snprintf(ints[1], 16, "%d", w->memory_mib);
	snprintf(ints[2], 16, "%d", w->idle_timeout_s);
	v[0] = w->pool;
	v[1] = w->name;
	v[2] = w->owner;
	v[3] = ws_state_name(w->state);
	v[4] = w->template_name;
	v[5] = w->image;
	v[6] = ints[0];
	v[7] = ints[1];
	v[8] = w->bucket;
	v[9] = w->prefix;
	v[10] = ints[2];
	v[11] = labels;
	return 12;
}

static int ws_write(struct writes *w, size_t doc, int create, int n, const char *const *p,
		    struct err *e)
{
	return writes_send(w, doc, create ? W_WS_INSERT : W_WS_UPDATE, n, p, e);
}

/* Whether the pool exists in the database or is declared in set. */
static int pool_known(const struct manifest_set *set, const struct prefetch *pf, const char *name)
{
	size_t i;

	if (prefetch_find(pf->pools, NULL, name) >= 0)
		return 1;
	for (i = 0; i < set->n; i++)
		if (set->docs[i].kind == MANIFEST_POOL && !strcmp(set->docs[i].pool.name, name))
			return 1;
	return 0;
}

static int apply_ws(struct writes *w, const struct manifest_set *set, size_t doc,
		    const struct prefetch *pf, struct pgstore_apply_result *r, struct err *e)
{
	const struct manifest_doc *d = &set->docs[doc];
	int row = prefetch_find(pf->ws, d->ws.pool, d->ws.name), rc, n, nchanged = 0;
	struct workspace_spec *cur = NULL;
	char ints[3][16], what[160], *labels = NULL;
	const char *p[12];

	snprintf(what, sizeof(what), "workspace/%s", d->ws.name);
	rc = pgstore_labels_encode(d->ws.labels, d->ws.nlabels, &labels, e);
	if (rc)
		return rc;
	n = ws_params(&d->ws, labels, ints, p);
	if (row < 0) {
		r->outcomes[doc] = PGSTORE_CREATED;
		if (!pool_known(set, pf, d->ws.pool))
			rc = err_set(e, SP_ENOTFOUND,
				     "%s: pool '%s' does not exist: declare it in a Pool document",
				     what, d->ws.pool);
		if (!rc)
			rc = diff_fields(ws_fields, NFIELDS(ws_fields), &d->ws, NULL, NULL, doc, r,
					 &nchanged, e);
		if (!rc)
			rc = ws_write(w, doc, 1, n, p, e);
		goto out;
	}
	cur = calloc(1, sizeof(*cur));
	rc = cur ? pgstore_decode_workspace(pf->ws, row, cur, e)
		 : err_set(e, SP_ENOMEM, "out of memory");
	if (!rc && cur->deletion_requested_at)
		rc = err_set(e, SP_ECONFLICT,
			     "%s: marked for deletion; wait for the operator to finalize it", what);
	if (!rc)
		rc = diff_fields(ws_fields, NFIELDS(ws_fields), &d->ws, cur, row_owners(pf->ws, row),
				 doc, r, &nchanged, e);
	r->outcomes[doc] = nchanged ? PGSTORE_CONFIGURED : PGSTORE_UNCHANGED;
	if (!rc && nchanged)
		rc = ws_write(w, doc, 0, n, p, e);
out:
	free(cur);
	free(labels);
	return rc;
}

static int first_conflict(const struct manifest_set *set, const struct pgstore_apply_result *r,
			  struct err *e)
{
	size_t i;

	for (i = 0; i < r->nchanges; i++) {
		const struct pgstore_change *c = &r->changes[i];
		const struct manifest_doc *d = &set->docs[c->doc];
		if (!c->conflict)
			continue;
		return err_set(e, SP_ECONFLICT,
			       "%s/%s: field %s was last set by '%s'; use --force-conflicts to overwrite%s",
			       d->kind == MANIFEST_POOL ? "pool" : "workspace",
			       d->kind == MANIFEST_POOL ? d->pool.name : d->ws.name, c->field,
			       c->owner, r->nconflicts > 1 ? " (and more conflicts)" : "");
	}
	return 0;
}

static int apply_docs(struct pgstore *s, const struct manifest_set *set,
		      const struct pgstore_apply_opts *o, struct pgstore_apply_result *r,
		      struct err *e)
{
	static const char *const wp[1] = { WRITER };
	struct prefetch pf = { NULL, NULL };
	struct writes w;
	size_t i;
	int rc, pass;

	memset(&w, 0, sizeof(w));
	w.s = s;
	w.set = set;
	w.r = r;

	rc = pgstore_exec(s, "set writer", "SELECT set_config('spinup.writer', $1, true)", 1, wp,
			  NULL, e);
	if (!rc)
		rc = prefetch_load(s, set, &pf, e);
	if (!rc)
		rc = prepare_apply(s, e);
	if (!rc)
		rc = writes_begin(&w, e);
	/* Pools first, so workspaces of this set find them. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; !rc && i < set->n; i++) {
			const struct manifest_doc *d = &set->docs[i];
			if (d->kind == MANIFEST_POOL && pass == 0)
				rc = apply_pool(&w, d, i, &pf, r, e);
			else if (d->kind == MANIFEST_WORKSPACE && pass == 1)
				rc = apply_ws(&w, set, i, &pf, r, e);
			if (rc && r->failed_doc < 0)
				r->failed_doc = (long)i;
		}
	}
	rc = writes_end(&w, rc, e);
	prefetch_release(&pf);
	if (!rc && r->nconflicts && !o->force_conflicts)
		rc = first_conflict(set, r, e);
	return rc;
}

int pgstore_apply(struct pgstore *s, const struct manifest_set *set,
		  const struct pgstore_apply_opts *opts, struct pgstore_apply_result *r,
		  struct err *e)
{
	static const struct pgstore_apply_opts defaults = { 0, 0 };
	const struct pgstore_apply_opts *o = opts ? opts : &defaults;
	int rc;

	pgstore_apply_result_release(r);
	r->outcomes = calloc(set->n ? set->n : 1, sizeof(*r->outcomes));
	if (!r->outcomes)
		return err_set(e, SP_ENOMEM, "out of memory");
	r->ndocs = set->n;
	rc = pgstore_begin(s, e);
	if (rc)
		return rc;
	rc = apply_docs(s, set, o, r, e);
	if (!rc && !o->dry_run)
		rc = pgstore_commit(s, e);
	else
		pgstore_rollback(s);
	return rc;
}

/* ------------------------------------------------------------ reads */

int pgstore_list_workspaces(struct pgstore *s, const char *pool, const char *name,
			    struct pgstore_ws_row **rows, size_t *n, struct err *e)
{
	const char *p[2] = { pool, name };
	struct pgstore_ws_row *v = NULL;
	PGresult *res = NULL;
	int rc, i, nt = 0;

	rc = pgstore_exec(s, "list workspaces",
			  "SELECT w.*, st.* FROM workspace_specs w"
			  " LEFT JOIN workspace_status_view st ON st.workspace_id = w.id"
			  " WHERE ($1::text IS NULL OR w.pool = $1) AND ($2::text IS NULL OR w.name = $2)"
			  " ORDER BY w.pool, w.name LIMIT 100001", 2, p, &res, e);
	if (!rc) {
		nt = PQntuples(res);
		if (nt > PGSTORE_ROWS_MAX)
			rc = err_set(e, SP_ELIMIT, "list workspaces: more than %d rows",
				     PGSTORE_ROWS_MAX);
	}
	if (!rc && !(v = calloc((size_t)nt + 1, sizeof(*v))))
		rc = err_set(e, SP_ENOMEM, "out of memory");
	for (i = 0; !rc && i < nt; i++) {
		int c = PQfnumber(res, "workspace_id");
		rc = pgstore_decode_workspace(res, i, &v[i].spec, e);
		v[i].has_status = !PQgetisnull(res, i, c);
		if (!rc && v[i].has_status)
			rc = pgstore_decode_status(res, i, &v[i].status, e);
		if (!rc)
			rc = pgstore_col_i64(res, i, "created_at", &v[i].created_at, e);
	}
	PQclear(res);
	if (rc) {
		free(v);
		return rc;
	}
	*rows = v;
	*n = (size_t)nt;
	return 0;
}

int pgstore_list_pools(struct pgstore *s, const char *name, struct pgstore_pool_row **rows,
		       size_t *n, struct err *e)
{
	const char *p[1] = { name };
	struct pgstore_pool_row *v = NULL;
	PGresult *res = NULL;
	int rc, i, nt = 0;

	rc = pgstore_exec(s, "list pools",
			  "SELECT p.*,"
			  " (SELECT count(*) FROM workspaces w WHERE w.pool_id = p.id) AS nworkspaces,"
			  " (SELECT count(*) FROM instances i WHERE i.pool_id = p.id) AS ninstances,"
			  " coalesce(ps.safety_stopped, false) AS safety_stopped,"
			  " spinup_ms(ps.safety_stopped_at) AS safety_stopped_at,"
			  " spinup_ms(ps.safety_clear_handled_at) AS safety_clear_handled_at"
			  " FROM pool_specs p LEFT JOIN pool_status ps ON ps.pool_id = p.id"
			  " WHERE ($1::text IS NULL OR p.name = $1)"
			  " ORDER BY p.name LIMIT 100001", 1, p, &res, e);
	if (!rc) {
		nt = PQntuples(res);
		if (nt > PGSTORE_ROWS_MAX)
			rc = err_set(e, SP_ELIMIT, "list pools: more than %d rows", PGSTORE_ROWS_MAX);
	}
	if (!rc && !(v = calloc((size_t)nt + 1, sizeof(*v))))
		rc = err_set(e, SP_ENOMEM, "out of memory");
	for (i = 0; !rc && i < nt; i++) {
		rc = pgstore_decode_pool(res, i, &v[i].spec, e);
		if (!rc)
			rc = pgstore_col_i64(res, i, "created_at", &v[i].created_at, e);
		if (!rc)
			rc = pgstore_col_i64(res, i, "deletion_requested_at", &v[i].deletion_requested_at, e);
		if (!rc)
			rc = pgstore_col_int(res, i, "nworkspaces", &v[i].nworkspaces, e);
		if (!rc)
			rc = pgstore_col_int(res, i, "ninstances", &v[i].ninstances, e);
		if (!rc)
			rc = pgstore_col_i64(res, i, "safety_stopped_at", &v[i].safety_stopped_at, e);
		if (!rc)
			rc = pgstore_col_i64(res, i, "safety_clear_handled_at",
					     &v[i].safety_clear_handled_at, e);
		v[i].safety_stopped = pgstore_col_bool(res, i, "safety_stopped");
	}
	PQclear(res);
	if (rc) {
		free(v);
		return rc;
	}
	*rows = v;
	*n = (size_t)nt;
	return 0;
}

static int decode_event(const PGresult *res, int i, struct pgstore_event_row *r, struct err *e)
{
	char from[32], to[32];
	int rc = pgstore_col_i64(res, i, "id", &r->id, e);

	if (!rc)
		rc = pgstore_col_i64(res, i, "workspace_id", &r->ev.workspace_id, e);
	if (!rc)
		rc = pgstore_col_str(res, i, "workspace_name", r->workspace_name, sizeof(r->workspace_name), e);
	if (!rc)
		rc = pgstore_col_str(res, i, "type", r->ev.type, sizeof(r->ev.type), e);
	if (!rc)
		rc = pgstore_col_str(res, i, "from_phase", from, sizeof(from), e);
	if (!rc)
		rc = pgstore_col_str(res, i, "to_phase", to, sizeof(to), e);
	if (!rc && (!from[0] || ws_phase_parse(from, &r->ev.from)))
		r->ev.from = PHASE_MAX;
	if (!rc && (!to[0] || ws_phase_parse(to, &r->ev.to)))
		r->ev.to = PHASE_MAX;
	if (!rc)
		rc = pgstore_col_str(res, i, "reason", r->ev.reason, sizeof(r->ev.reason), e);
	if (!rc)
		rc = pgstore_col_str(res, i, "message", r->ev.message, sizeof(r->ev.message), e);
	if (!rc)
		rc = pgstore_col_i64(res, i, "at", &r->ev.at, e);
	return rc;
}

int pgstore_list_events(struct pgstore *s, const char *name, size_t limit,
			struct pgstore_event_row **rows, size_t *n, struct err *e)
{
	char lim[24];
	const char *p[2] = { name, lim };
	struct pgstore_event_row *v = NULL;
	PGresult *res = NULL;
	int rc, i, nt = 0;

	if (limit == 0 || limit > PGSTORE_EVENTS_MAX)
		limit = PGSTORE_EVENTS_MAX;
	snprintf(lim, sizeof(lim), "%zu", limit);
	rc = pgstore_exec(s, "list events",
			  "SELECT * FROM (SELECT id, workspace_id, workspace_name, type,"
			  " from_phase::text AS from_phase, to_phase::text AS to_phase, reason, message,"
			  " spinup_ms(at) AS at FROM workspace_events"
			  " WHERE $1::text IS NULL OR workspace_name = $1"
			  " OR workspace_id IN (SELECT id FROM workspaces WHERE name = $1)"
			  " ORDER BY id DESC LIMIT $2::int) ev ORDER BY id", 2, p, &res, e);
	if (!rc) {
		nt = PQntuples(res);
		if (!(v = calloc((size_t)nt + 1, sizeof(*v))))
			rc = err_set(e, SP_ENOMEM, "out of memory");
	}
	for (i = 0; !rc && i < nt; i++)
		rc = decode_event(res, i, &v[i], e);
	PQclear(res);
	if (rc) {
		free(v);
		return rc;
	}
	*rows = v;
	*n = (size_t)nt;
	return 0;
}

/* ------------------------------------------------------------ deletion */

static int mark_ws(struct pgstore *s, const char *pool, const char *name, enum pgstore_mark *out,
		   struct err *e)
{
	const char *p[2] = { name, pool };
	char what[128], id[24];
	const char *idp[1] = { id };
	PGresult *res = NULL;
	int rc;

	snprintf(what, sizeof(what), "workspace/%s", name);
	rc = pgstore_exec(s, what,
			  "SELECT w.id, w.deletion_requested_at IS NOT NULL FROM workspaces w"
			  " JOIN pools p ON p.id = w.pool_id"
			  " WHERE w.name = $1 AND ($2::text IS NULL OR p.name = $2) FOR UPDATE OF w",
			  2, p, &res, e);
	if (!rc && PQntuples(res) == 0)
		rc = pool ? err_set(e, SP_ENOTFOUND, "%s not found in pool '%s'", what, pool)
			  : err_set(e, SP_ENOTFOUND, "%s not found", what);
	if (!rc && PQntuples(res) > 1)
		rc = err_set(e, SP_ECONFLICT, "%s exists in %d pools: name the pool with --pool", what,
			     PQntuples(res));
	if (!rc && PQgetvalue(res, 0, 1)[0] == 't') {
		*out = PGSTORE_ALREADY_MARKED;
	} else if (!rc) {
		str_copy(id, sizeof(id), PQgetvalue(res, 0, 0));
		rc = pgstore_exec(s, what,
				  "UPDATE workspaces SET deletion_requested_at = now() WHERE id = $1::bigint",
				  1, idp, NULL, e);
		*out = PGSTORE_MARKED;
	}
	PQclear(res);
	return rc;
}

static int mark_pool(struct pgstore *s, const char *name, enum pgstore_mark *out, struct err *e)
{
	const char *p[1] = { name };
	char what[128];
	PGresult *res = NULL;
	int rc;

	snprintf(what, sizeof(what), "pool/%s", name);
	rc = pgstore_exec(s, what,
			  "SELECT deletion_requested_at IS NOT NULL FROM pools WHERE name = $1 FOR UPDATE",
			  1, p, &res, e);
	if (!rc && PQntuples(res) == 0)
		rc = err_set(e, SP_ENOTFOUND, "%s not found", what);
	if (!rc && PQgetvalue(res, 0, 0)[0] == 't') {
		*out = PGSTORE_ALREADY_MARKED;
	} else if (!rc) {
		rc = pgstore_exec(s, what,
				  "UPDATE pools SET deletion_requested_at = now() WHERE name = $1",
				  1, p, NULL, e);
		*out = PGSTORE_MARKED;
	}
	PQclear(res);
	return rc;
}

static int in_tx(struct pgstore *s, struct err *e)
{
	static const char *const wp[1] = { WRITER };
	int rc = pgstore_begin(s, e);

	if (!rc)
		rc = pgstore_exec(s, "set writer", "SELECT set_config('spinup.writer', $1, true)", 1,
				  wp, NULL, e);
	return rc;
}

static int end_tx(struct pgstore *s, int rc, struct err *e)
{
	if (!rc)
		rc = pgstore_commit(s, e);
	if (rc)
		pgstore_rollback(s);
	return rc;
}

int pgstore_mark_workspace_deletion(struct pgstore *s, const char *pool, const char *name,
				    enum pgstore_mark *out, struct err *e)
{
	enum pgstore_mark m = PGSTORE_MARKED;
	int rc = in_tx(s, e);

	if (!rc)
		rc = mark_ws(s, pool, name, &m, e);
	rc = end_tx(s, rc, e);
	if (!rc && out)
		*out = m;
	return rc;
}

int pgstore_mark_pool_deletion(struct pgstore *s, const char *name, enum pgstore_mark *out,
			       struct err *e)
{
	enum pgstore_mark m = PGSTORE_MARKED;
	int rc = in_tx(s, e);

	if (!rc)
		rc = mark_pool(s, name, &m, e);
	rc = end_tx(s, rc, e);
	if (!rc && out)
		*out = m;
	return rc;
}

int pgstore_mark_set_deletion(struct pgstore *s, const struct manifest_set *set,
			      enum pgstore_mark *marks, struct err *e)
{
	enum pgstore_mark m = PGSTORE_MARKED;
	size_t i;
	int rc = in_tx(s, e);

	for (i = 0; !rc && i < set->n; i++) {
		const struct manifest_doc *d = &set->docs[i];
		if (d->kind == MANIFEST_POOL)
			rc = mark_pool(s, d->pool.name, &m, e);
		else
			rc = mark_ws(s, d->ws.pool, d->ws.name, &m, e);
		if (!rc && marks)
			marks[i] = m;
	}
	return end_tx(s, rc, e);
}
