/* Printing a job's JSON result on stdout. */
#include "result.h"
#include "cli.h"

#include <stdlib.h>

int result_emit(const json_t *result, int status, bool quiet)
{
	if (quiet && status == CW_EXIT_OK)
		return status;
	char *text = json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text || cli_write_result(text) < 0)
		status = CW_EXIT_IOERR;
	free(text);
	return status;
}

void result_set_count(json_t *result, const char *key, long long value)
{
	json_object_set_new(result, key, value < 0 ? json_null() : json_integer(value));
}
