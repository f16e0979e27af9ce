/* B's half of a shadow, built from an API subscriber object. */
#include "shadow.h"
#include "record.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

static json_t *string_or_null(const json_t *v)
{
	return json_is_string(v) ? json_stringn(json_string_value(v), json_string_length(v))
				 : json_null();
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Managed groups the subscriber is in, sorted and without repeats. */
static json_t *managed_groups_of(const json_t *subscriber, const struct cw_config *cfg)
{
	const json_t *groups = json_object_get(subscriber, "groups");
	const char **names = xcalloc(cfg->nmanaged_groups + 1, sizeof(char *));
	size_t n = 0, i;
	json_t *g, *out = json_array();

	json_array_foreach(groups, i, g) {
		const json_t *name = json_object_get(g, "name");
		if (!json_is_string(name))
			continue;
		for (size_t m = 0; m < cfg->nmanaged_groups; m++) {
			if (!strcmp(cfg->managed_groups[m], json_string_value(name))) {
				bool seen = false;
				for (size_t k = 0; k < n; k++)
					seen |= !strcmp(names[k], cfg->managed_groups[m]);
				if (!seen)
					names[n++] = cfg->managed_groups[m];
			}
		}
	}
	qsort(names, n, sizeof(char *), compare_names);
	for (i = 0; i < n; i++)
		json_array_append_new(out, json_string(names[i]));
	free(names);
	return out;
}

json_t *shadow_b_snapshot(const json_t *subscriber, const struct cw_config *cfg)
{
	const json_t *email = json_object_get(subscriber, "email");
	const json_t *fields = json_object_get(subscriber, "fields");
	json_t *snap = json_object(), *mapped = json_object();

	char *normalized = record_normalize_email(json_is_string(email) ? json_string_value(email)
									: "");
	json_object_set_new(snap, "email", json_string(normalized));
	free(normalized);
	for (size_t i = 0; i < cfg->nfields; i++) {
		const char *name = cfg->fields[i].b_field;
		json_t *value = json_is_object(fields) ? json_object_get(fields, name) : NULL;
		json_t *canonical = record_value_normalize(value);
		/* An object or array where a field value belongs: keep null
		 * rather than guess; the merge sees it as "no value". */
		json_object_set_new(mapped, name, canonical ? canonical : json_null());
	}
	json_object_set_new(snap, "fields", mapped);
	json_object_set_new(snap, "status", string_or_null(json_object_get(subscriber, "status")));
	if (cfg->a_groups && *cfg->a_groups)
		json_object_set_new(snap, "groups", managed_groups_of(subscriber, cfg));
	json_object_set_new(snap, "updated_at",
			    string_or_null(json_object_get(subscriber, "updated_at")));
	return snap;
}
