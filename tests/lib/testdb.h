/*
 * testdb.h - a private database per test binary.
 *
 * Tests share one Postgres server (DATABASE_URL, from scripts/run-tests.sh
 * or scripts/devenv.sh), so each test binary works in databases of its own:
 *
 *   const char *ci = testdb_conninfo();      // fresh, migrated, created once
 *   PGconn *c = testdb_connect();            // a new connection to it
 *   PGresult *r = testdb_exec_as(c, "spinup_ui", "INSERT ...", 1, params);
 *
 * Databases are named spinup_t_<pid>_<n>, created from DATABASE_URL with
 * CREATE DATABASE and dropped (WITH (FORCE)) at exit by an atexit handler,
 * so binaries running at the same time never see each other's rows. The
 * roles spinup_ui and spinup_operator are cluster-wide (created by the
 * migration, shared by all test databases).
 *
 * Failures print a message to stderr and return NULL: a test asserts the
 * result is not NULL. Not thread-safe: call from the main test thread.
 */
#ifndef SPINUP_TESTDB_H
#define SPINUP_TESTDB_H

#include <stddef.h>

#include <libpq-fe.h>

/* The conninfo of this process's fresh, migrated database (created on first call). */
const char *testdb_conninfo(void);

/*
 * Create one more database, migrated or not, dropped at exit like the
 * first. Writes its conninfo into out. 0 on success, -1 on failure.
 */
int testdb_create(int migrated, char *out, size_t outsz);

/* A new connection to testdb_conninfo()'s database; PQfinish() it. NULL on failure. */
PGconn *testdb_connect(void);

/*
 * Run sql with text params as role (SET ROLE role; query; RESET ROLE), or
 * as the connecting user when role is NULL. Returns the query's result
 * (never NULL on a live connection; check PQresultStatus); PQclear() it.
 */
PGresult *testdb_exec_as(PGconn *c, const char *role, const char *sql, int nparams,
			 const char *const *params);

/* The SQLSTATE of a failed result, "" when it succeeded. */
const char *testdb_sqlstate(const PGresult *r);

/* Drop every database this process created (also done at exit). */
void testdb_drop_all(void);

#endif
