/* The remembered list page cap. */
#include "pagecap.h"
#include "log.h"
#include "state.h"

#include <jansson.h>

int pagecap_restore(struct db *db, struct ml_client *ml, struct cw_error *err)
{
	json_t *doc = NULL;

	if (state_get(db, PAGECAP_KEY, &doc, err) < 0)
		return -1;
	const json_t *cap = json_object_get(doc, "cap");
	if (json_is_integer(cap) && json_integer_value(cap) > 0 &&
	    json_integer_value(cap) <= 1000000)
		ml_set_page_cap(ml, (int)json_integer_value(cap));
	json_decref(doc);
	return 0;
}

void pagecap_save(struct db *db, const struct ml_client *ml)
{
	struct cw_error err;
	int cap = ml ? ml_page_cap(ml) : 0;

	if (cap <= 0 || !db)
		return;
	json_t *doc = json_pack("{s:i}", "cap", cap);
	if (state_put(db, PAGECAP_KEY, doc, &err) < 0)
		log_debug("could not remember the page cap: %s", err.msg);
	json_decref(doc);
}
