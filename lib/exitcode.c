/* Names for the exit statuses, for log lines. */
#include "exitcode.h"

const char *cw_exit_name(int status)
{
	switch (status) {
	case CW_EXIT_OK: return "ok";
	case CW_EXIT_RECORDS: return "record failures";
	case CW_EXIT_PARTIAL: return "partial";
	case CW_EXIT_USAGE: return "usage";
	case CW_EXIT_DATAERR: return "bad input";
	case CW_EXIT_UNAVAILABLE: return "unavailable";
	case CW_EXIT_SOFTWARE: return "internal error";
	case CW_EXIT_IOERR: return "output error";
	case CW_EXIT_TEMPFAIL: return "temporary refusal";
	case CW_EXIT_CONFIG: return "configuration";
	default: return "unknown";
	}
}
