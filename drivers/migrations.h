/*
 * migrations.h - the versioned SQL migrations embedded in every binary.
 *
 * Source: drivers/migrations/NNN_description.sql, embedded at build time by
 * scripts/embed-sql.sh into spinup_migrations[], sorted by version.
 * Applied by pgstore_migrate() (drivers/pgstore.h), one transaction each.
 */
#ifndef SPINUP_MIGRATIONS_H
#define SPINUP_MIGRATIONS_H

#include <stddef.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration spinup_migrations[];
extern const size_t spinup_nmigrations;

#endif
