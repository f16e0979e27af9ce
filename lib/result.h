/*
 * The job's result: one JSON object on stdout, nothing else there. With
 * --quiet a successful run prints nothing (cron mails any output); a run
 * that did not succeed still prints its result.
 */
#ifndef CW_RESULT_H
#define CW_RESULT_H

#include <jansson.h>
#include <stdbool.h>

#include "exitcode.h"

/* Write result (borrowed) as one line of compact JSON unless quiet and
 * status is CW_EXIT_OK. Returns status, or CW_EXIT_IOERR when stdout
 * could not be written. */
int result_emit(const json_t *result, int status, bool quiet);

/* Set key to a JSON integer, or to null when value < 0 ("not known"). */
void result_set_count(json_t *result, const char *key, long long value);

#endif
