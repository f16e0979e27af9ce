/* JSON rendering of the API's objects: subscribers, groups, and the cursor pages of them. */
#ifndef FAKE_RENDER_H
#define FAKE_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"
#include "store.h"

void render_group(struct jw *w, const struct store *s, uint32_t gslot);
/* A subscriber object; "groups" is [] unless with_groups. */
void render_subscriber(struct jw *w, const struct store *s, uint32_t slot, int with_groups);

/* One page of a cursor-paginated list, as the API shows it. */
struct cursor_page {
	const uint32_t *slots; /* newest first */
	size_t n;
	size_t per_page;
	int with_groups;
	const char *path;	 /* meta.path and the base of links */
	const char *next_cursor; /* NULL renders null */
	const char *prev_cursor;
};

void render_cursor_page(struct jw *w, const struct store *s, const struct cursor_page *p);

#endif
