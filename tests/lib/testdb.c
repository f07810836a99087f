/* testdb.c - a private database per test binary (see testdb.h). */
#include "tests/lib/testdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drivers/pgstore.h"
#include "model/strbuf.h"
#include "model/banned.h"

#define TESTDB_MAX 16

static char created[TESTDB_MAX][64];
static int ncreated;
static int atexit_set;
static char main_conninfo[1024];

/* conninfo of base with dbname replaced: "key='value' ...". */
static int conninfo_for(const char *base, const char *dbname, char *out, size_t outsz)
{
	PQconninfoOption *opts, *o;
	struct strbuf sb = STRBUF_INIT;
	char *err = NULL;
	int rc = 0;

	opts = PQconninfoParse(base, &err);
	if (!opts) {
		fprintf(stderr, "testdb: DATABASE_URL does not parse: %s", err ? err : "out of memory\n");
		PQfreemem(err);
		return -1;
	}
	for (o = opts; !rc && o->keyword; o++) {
		const char *v = strcmp(o->keyword, "dbname") ? o->val : dbname;
		const char *p;
		if (!v || !v[0])
			continue;
		rc |= strbuf_addf(&sb, "%s='", o->keyword);
		for (p = v; !rc && *p; p++) {
			if (*p == '\'' || *p == '\\')
				rc |= strbuf_addch(&sb, '\\');
			rc |= strbuf_addch(&sb, *p);
		}
		rc |= strbuf_addstr(&sb, "' ");
	}
	PQconninfoFree(opts);
	if (!rc && str_copy(out, outsz, sb.buf))
		rc = -1;
	strbuf_release(&sb);
	return rc ? -1 : 0;
}

static PGconn *admin_connect(void)
{
	const char *url = getenv("DATABASE_URL");
	PGconn *c;

	if (!url || !url[0]) {
		fprintf(stderr, "testdb: DATABASE_URL is not set (run through scripts/run-tests.sh)\n");
		return NULL;
	}
	c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "testdb: cannot connect to DATABASE_URL: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

static int admin_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		fprintf(stderr, "testdb: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

void testdb_drop_all(void)
{
	char sql[128];
	PGconn *c;
	int i;

	if (!ncreated)
		return;
	c = admin_connect();
	for (i = 0; c && i < ncreated; i++) {
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", created[i]);
		admin_exec(c, sql);
	}
	PQfinish(c);
	ncreated = 0;
	main_conninfo[0] = '\0';
}

static void drop_at_exit(void)
{
	testdb_drop_all();
}

static int migrate(const char *conninfo)
{
	struct err e = ERR_INIT;
	struct pgstore *s = NULL;
	int rc = pgstore_open(conninfo, "testdb", &s, &e);

	if (!rc)
		rc = pgstore_migrate(s, NULL, &e);
	if (rc)
		fprintf(stderr, "testdb: migrate: %s\n", e.msg);
	pgstore_free(s);
	return rc ? -1 : 0;
}

int testdb_create(int migrated, char *out, size_t outsz)
{
	char name[64], sql[128];
	PGconn *c;
	int rc;

	if (ncreated == TESTDB_MAX) {
		fprintf(stderr, "testdb: more than %d databases in one process\n", TESTDB_MAX);
		return -1;
	}
	snprintf(name, sizeof(name), "spinup_t_%ld_%d_%ld", (long)getpid(), ncreated,
		 (long)time(NULL) % 100000);
	c = admin_connect();
	if (!c)
		return -1;
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	rc = admin_exec(c, sql);
	PQfinish(c);
	if (rc)
		return -1;
	str_copy(created[ncreated++], sizeof(created[0]), name);
	if (!atexit_set) {
		atexit(drop_at_exit);
		atexit_set = 1;
	}
	if (conninfo_for(getenv("DATABASE_URL"), name, out, outsz))
		return -1;
	if (migrated && migrate(out))
		return -1;
	return 0;
}

const char *testdb_conninfo(void)
{
	if (!main_conninfo[0] && testdb_create(1, main_conninfo, sizeof(main_conninfo))) {
		main_conninfo[0] = '\0';
		return NULL;
	}
	return main_conninfo;
}

PGconn *testdb_connect(void)
{
	const char *ci = testdb_conninfo();
	PGconn *c;

	if (!ci)
		return NULL;
	c = PQconnectdb(ci);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "testdb: connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

PGresult *testdb_exec_as(PGconn *c, const char *role, const char *sql, int nparams,
			 const char *const *params)
{
	PGresult *r;

	if (role) {
		const char *p[1] = { role };
		r = PQexecParams(c, "SELECT set_config('role', $1, false)", 1, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			return r;
		PQclear(r);
	}
	r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	if (role) {
		PGresult *reset = PQexec(c, "RESET ROLE");
		PQclear(reset);
	}
	return r;
}

const char *testdb_sqlstate(const PGresult *r)
{
	const char *s;

	if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
		return "";
	s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	return s ? s : "";
}
