/* The exit statuses every crosswalk program uses (DESIGN §3), one named enum. */
#ifndef CW_EXITCODE_H
#define CW_EXITCODE_H

enum cw_exit {
	CW_EXIT_OK = 0,		  /* done, nothing failed */
	CW_EXIT_RECORDS = 1,	  /* done, with record-level failures listed in the result */
	CW_EXIT_PARTIAL = 3,	  /* stopped by a time or record budget or a signal; re-run to resume */
	CW_EXIT_USAGE = 64,	  /* bad command line */
	CW_EXIT_DATAERR = 65,	  /* bad input data (a cursor, a file of emails) */
	CW_EXIT_UNAVAILABLE = 69, /* remote API or database unavailable after retries */
	CW_EXIT_SOFTWARE = 70,	  /* internal error: a bug or out of memory */
	CW_EXIT_IOERR = 74,	  /* the result could not be written to stdout */
	CW_EXIT_TEMPFAIL = 75,	  /* temporary refusal: lock held, breaker open, live run */
	CW_EXIT_CONFIG = 78,	  /* configuration or schema error */
};

/* A short lowercase name for a status ("partial", "config"), for logs. */
const char *cw_exit_name(int status);

#endif
