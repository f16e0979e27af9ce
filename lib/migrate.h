/*
 * The schema migrations (sql/NNN_name.sql, embedded at build time) and
 * applying them: each once, in order, in its own transaction, recorded in
 * <schema>.schema_version; and the check every program makes at start.
 */
#ifndef CW_MIGRATE_H
#define CW_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "error.h"

struct migration {
	int version;
	const char *name;	/* "001_base" */
	const char *sql;
};

extern const struct migration cw_migrations[];
extern const size_t cw_nmigrations;

/* The version this build needs: the highest embedded migration. */
int migrate_latest_version(void);

/* The version the database is at; 0 when the schema is not installed. */
int migrate_current_version(struct db *db, int *version, struct cw_error *err);

/* Apply every migration newer than the database's version, under an
 * advisory lock so two installers never interleave. *applied counts them.
 * With dry_run nothing is written and *applied counts what would be. */
int migrate_apply(struct db *db, bool dry_run, int *from, int *applied, struct cw_error *err);

/* Refuse to run against an older (or newer) schema: err code
 * CW_EXIT_CONFIG with a hint naming the command to run. */
int migrate_check(struct db *db, struct cw_error *err);

#endif
