/* The database health check's judgement: which limit failed, and what the message says. */
#include "db.h"
#include "exitcode.h"
#include "tap.h"

#include <string.h>

static struct cw_error err;

static int judge(double rtt, long free_conns, int max_ms, int min_free)
{
	memset(&err, 0, sizeof(err));
	return db_health_judge(rtt, free_conns, max_ms, min_free, &err);
}

int main(void)
{
	is_int(judge(1.5, 90, 500, 3), 0, "fast, with room: healthy");
	is_int(err.code, 0, "and no error");
	is_int(judge(500.0, 3, 500, 3), 0, "exactly at both limits: healthy");
	is_int(judge(9999, 0, 0, 0), 0, "limits 0: both checks off");

	is_int(judge(812.34, 40, 500, 5), -1, "a slow round trip: unhealthy");
	is_int(err.code, CW_EXIT_UNAVAILABLE, "with status 69");
	is_str(err.msg, "the database is unhealthy: round trip 812.3 ms over max_db_latency_ms 500",
	       "the message names the round trip and the limit");
	ok(strstr(err.detail, "812.3 ms") && strstr(err.detail, "40 connections"),
	   "the detail gives both figures");
	ok(strstr(err.hint, "max_db_latency_ms") != NULL, "the hint names the settings");

	is_int(judge(2.0, 3, 500, 5), -1, "too few free connections: unhealthy");
	is_int(err.code, CW_EXIT_UNAVAILABLE, "with status 69");
	is_str(err.msg,
	       "the database is unhealthy: 3 free connections, under min_free_connections 5",
	       "the message names the count and the limit");
	ok(strstr(err.detail, "2.0 ms") && strstr(err.detail, "3 connections"),
	   "the detail gives both figures");
	judge(2.0, 1, 500, 5);
	is_str(err.msg, "the database is unhealthy: 1 free connection, under min_free_connections 5",
	       "one connection, singular");

	judge(900.0, 0, 500, 5);
	ok(strstr(err.msg, "round trip 900.0 ms") != NULL,
	   "both limits broken: the round trip is named first");
	return done_testing();
}
