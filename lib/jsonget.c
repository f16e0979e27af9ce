/* Typed reads of members of untrusted JSON. */
#include "jsonget.h"

const char *jsonget_string(const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);
	return json_is_string(v) ? json_string_value(v) : NULL;
}
