/* JSON rendering of the API's objects: subscribers, groups, and the cursor pages of them. */
#include "render.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void rate_object(struct jw *w)
{
	jw_obj(w);
	jw_key(w, "float");
	jw_u64(w, 0);
	jw_key(w, "string");
	jw_str(w, "0%");
	jw_obj_end(w);
}

void render_group(struct jw *w, const struct store *s, uint32_t gslot)
{
	const struct group *g = &s->groups[gslot];
	jw_obj(w);
	jw_key(w, "id");
	jw_u64_str(w, g->id);
	jw_key(w, "name");
	jw_str(w, g->name);
	jw_key(w, "active_count");
	jw_u64(w, g->counts[ST_ACTIVE]);
	jw_key(w, "sent");
	jw_u64(w, 0);
	jw_key(w, "opens_count");
	jw_u64(w, 0);
	jw_key(w, "open_rate");
	rate_object(w);
	jw_key(w, "clicks_count");
	jw_u64(w, 0);
	jw_key(w, "click_rate");
	rate_object(w);
	jw_key(w, "unsubscribed_count");
	jw_u64(w, g->counts[ST_UNSUBSCRIBED]);
	jw_key(w, "unconfirmed_count");
	jw_u64(w, g->counts[ST_UNCONFIRMED]);
	jw_key(w, "bounced_count");
	jw_u64(w, g->counts[ST_BOUNCED]);
	jw_key(w, "junk_count");
	jw_u64(w, g->counts[ST_JUNK]);
	jw_key(w, "created_at");
	jw_time(w, g->created_at);
	jw_obj_end(w);
}

void render_subscriber(struct jw *w, const struct store *s, uint32_t slot, int with_groups)
{
	const struct subscriber *sub = &s->subs[slot];
	jw_obj(w);
	jw_key(w, "id");
	jw_u64_str(w, sub->id);
	jw_key(w, "email");
	jw_str(w, sub->email);
	jw_key(w, "status");
	jw_str(w, status_name(sub->status));
	jw_key(w, "source");
	jw_str(w, source_name(sub->source));
	jw_key(w, "sent");
	jw_u64(w, 0);
	jw_key(w, "opens_count");
	jw_u64(w, 0);
	jw_key(w, "clicks_count");
	jw_u64(w, 0);
	jw_key(w, "open_rate");
	jw_u64(w, 0);
	jw_key(w, "click_rate");
	jw_u64(w, 0);
	jw_key(w, "ip_address");
	jw_str_or_null(w, sub->ip_address);
	jw_key(w, "subscribed_at");
	jw_time(w, sub->subscribed_at);
	jw_key(w, "unsubscribed_at");
	jw_time(w, sub->unsubscribed_at);
	jw_key(w, "created_at");
	jw_time(w, sub->created_at);
	jw_key(w, "updated_at");
	jw_time(w, sub->updated_at);
	jw_key(w, "fields");
	jw_obj(w);
	for (uint32_t fi = 0; fi < s->nfields; fi++) {
		size_t len;
		const char *v = store_field_get(sub, (int)fi, &len);
		jw_key(w, s->fields[fi].name);
		if (!v)
			jw_null(w);
		else if (s->fields[fi].type == FT_NUMBER)
			jw_raw(w, v, len);
		else
			jw_strn(w, v, len);
	}
	jw_obj_end(w);
	jw_key(w, "groups");
	jw_arr(w);
	if (with_groups)
		for (uint16_t i = 0; i < sub->ngroups; i++)
			render_group(w, s, sub->groups[i]);
	jw_arr_end(w);
	jw_key(w, "opted_in_at");
	jw_time(w, sub->opted_in_at);
	jw_key(w, "optin_ip");
	jw_str_or_null(w, sub->optin_ip);
	jw_obj_end(w);
}

static void cursor_link(struct jw *w, const char *path, const char *cursor)
{
	if (!cursor) {
		jw_null(w);
		return;
	}
	size_t pl = strlen(path), cl = strlen(cursor);
	char *u = xmalloc(pl + cl + 9);
	memcpy(u, path, pl);
	memcpy(u + pl, "?cursor=", 8);
	memcpy(u + pl + 8, cursor, cl + 1);
	jw_str(w, u);
	free(u);
}

void render_cursor_page(struct jw *w, const struct store *s, const struct cursor_page *p)
{
	jw_reserve(w, p->n * (p->with_groups ? 1200 : 700) + 512);
	jw_obj(w);
	jw_key(w, "data");
	jw_arr(w);
	for (size_t i = 0; i < p->n; i++)
		render_subscriber(w, s, p->slots[i], p->with_groups);
	jw_arr_end(w);
	jw_key(w, "links");
	jw_obj(w);
	jw_key(w, "first");
	jw_null(w);
	jw_key(w, "last");
	jw_null(w);
	jw_key(w, "next");
	cursor_link(w, p->path, p->next_cursor);
	jw_key(w, "prev");
	cursor_link(w, p->path, p->prev_cursor);
	jw_obj_end(w);
	jw_key(w, "meta");
	jw_obj(w);
	jw_key(w, "path");
	jw_str(w, p->path);
	jw_key(w, "per_page");
	jw_u64(w, p->per_page);
	jw_key(w, "next_cursor");
	jw_str_or_null(w, p->next_cursor);
	jw_key(w, "prev_cursor");
	jw_str_or_null(w, p->prev_cursor);
	jw_obj_end(w);
	jw_obj_end(w);
}
