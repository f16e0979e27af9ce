/* The opaque pagination cursor: base64url of a small JSON naming an id, Laravel style. */
#include "cursor.h"

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "util.h"

char *cursor_encode(uint64_t id, int next)
{
	char json[96];
	int n = snprintf(json, sizeof json, "{\"id\":%llu,\"_pointsToNextItems\":%s}",
			 (unsigned long long)id, next ? "true" : "false");
	return b64url_encode((const unsigned char *)json, (size_t)n);
}

int cursor_decode(const char *text, uint64_t *id, int *next)
{
	size_t len;
	unsigned char *raw = b64url_decode(text, &len);
	if (!raw)
		return -1;
	json_t *v = json_loadb((const char *)raw, len, 0, NULL);
	free(raw);
	int rc = -1;
	if (!json_is_object(v))
		goto out;
	json_t *i = json_object_get(v, "id"), *p = json_object_get(v, "_pointsToNextItems");
	if (json_is_integer(i) && json_integer_value(i) >= 0)
		*id = (uint64_t)json_integer_value(i);
	else if (!json_is_string(i) || parse_u64(json_string_value(i), id))
		goto out;
	if (p && !json_is_boolean(p))
		goto out;
	*next = p ? json_is_true(p) : 1;
	rc = 0;
out:
	json_decref(v);
	return rc;
}
