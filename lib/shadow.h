/*
 * Shadows: per contact, the mapped values each side held at the last sync,
 * the base of every 3-way decision. This module builds B's side of it from
 * an API subscriber object; A's side is built in SQL (store_snapshot_sql),
 * and both have the same shape:
 *   {"email": "...", "fields": {"name": "Ann", ...}, "status": "active",
 *    "groups": ["Customers"], "updated_at": "YYYY-MM-DD HH:MM:SS"}
 * ("groups" only when table.groups is set; "status" on A only when
 * table.status is set.)
 */
#ifndef CW_SHADOW_H
#define CW_SHADOW_H

#include <jansson.h>

#include "config.h"

/* B's snapshot of a subscriber (borrowed, from a list page or a GET) as a
 * new reference. Values are canonical (record_value_normalize); only the
 * mapped fields and, among groups, only the managed ones are kept. The
 * email is normalized; the caller has checked it. */
json_t *shadow_b_snapshot(const json_t *subscriber, const struct cw_config *cfg);

#endif
