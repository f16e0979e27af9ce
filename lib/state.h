/*
 * Small JSON documents in <schema>.sync_state, by key: the sync_status
 * sections (backfill, fullSync, lastSync, statistics), cursors, counters.
 * Timestamps that mark progress are taken from the database's clock so
 * every machine agrees on them.
 */
#ifndef CW_STATE_H
#define CW_STATE_H

#include <jansson.h>

#include "db.h"
#include "error.h"

/* The key that sync_status and cursors use in a namespace: the base name
 * itself in namespace "default" (what existing queries read), else
 * "base:namespace". New string. */
char *state_key(const char *base, const char *namespace);

/* The document under key: *value is a new reference, or NULL when absent. */
int state_get(struct db *db, const char *key, json_t **value, struct cw_error *err);

/* Replace the document under key (insert when absent). */
int state_put(struct db *db, const char *key, const json_t *value, struct cw_error *err);

/* Merge patch into one section of the document (value->section), creating
 * both when absent. Each name in now_fields (NULL-terminated, may be NULL)
 * is set to the database's current time as ISO-8601 UTC text
 * ("2026-11-23T10:00:00.123Z"). */
int state_merge_section(struct db *db, const char *key, const char *section, const json_t *patch,
			const char *const *now_fields, struct cw_error *err);

/* Seconds since the ISO-8601 time in value->section->field, by the
 * database's clock; *age is -1 when the document or the field is absent
 * or not a time. */
int state_section_age(struct db *db, const char *key, const char *section, const char *field,
		      double *age, struct cw_error *err);

/* Remove the document under key (absent is fine). */
int state_delete(struct db *db, const char *key, struct cw_error *err);

/* SQL for the database's now() as ISO-8601 UTC text, for other modules. */
#define STATE_NOW_ISO_SQL \
	"pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#endif
