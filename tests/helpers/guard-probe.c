/*
 * guard-probe: drives lib/breaker, lib/quota and db_check_health() against
 * a database and prints what they said as one JSON object, so the shell
 * tests can check the guards end to end. Not installed.
 *
 *   guard-probe [options] check KEY              breaker_check()
 *   guard-probe [options] record KEY ok|fail [WHY]  breaker_record()
 *   guard-probe [options] left KEY               quota_left() under daily_limit
 *   guard-probe [options] charge KEY N           quota_charge() in a transaction
 *   guard-probe [options] health                 db_check_health()
 *
 * The limits come from the [guards] section of the settings, as a program
 * would read them. The exit status is the one a program would give: 0, or
 * the error's code (75 for an open breaker, 69 for an unhealthy database).
 */
#include "breaker.h"
#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "log.h"
#include "quota.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool opt_rollback;

static const struct cfg_option options[] = {
	{ NULL, NULL, "rollback", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "charge: roll the transaction back instead of committing", 0, 0, &opt_rollback },
	{ 0 },
};

static const struct cfg_program program = {
	.name = "guard-probe",
	.synopsis = "guard-probe [options] check KEY | record KEY ok|fail [WHY] | left KEY | "
		    "charge KEY N | health",
	.purpose = "exercises the circuit breaker, the daily limit and the health check "
		   "(tests only).",
	.options = options,
	.takes = 0,
};

static json_t *check(struct db *db, const char *key, const struct breaker_settings *s,
		     struct cw_error *err)
{
	bool trial = false;
	char *closes_at = NULL;
	json_t *out;

	if (breaker_check(db, key, s, &trial, &closes_at, err) == 0)
		return json_pack("{s:b, s:b}", "go", 1, "trial", trial);
	out = closes_at ? json_pack("{s:b, s:s}", "go", 0, "closesAt", closes_at) : NULL;
	free(closes_at);
	return out;
}

static json_t *charge(struct db *db, const char *key, const char *count, struct cw_error *err)
{
	char *end;
	long long n = strtoll(count, &end, 10);

	if (end == count || *end) {
		cw_error_set(err, CW_EXIT_USAGE, "charge: \"%s\" is not a count", count);
		return NULL;
	}
	if (db_begin(db, err) < 0)
		return NULL;
	if (quota_charge(db, key, n, err) < 0) {
		db_rollback(db);
		return NULL;
	}
	if (opt_rollback)
		db_rollback(db);
	else if (db_commit(db, err) < 0)
		return NULL;
	return json_pack("{s:I, s:b}", "charged", (json_int_t)n, "committed", !opt_rollback);
}

int main(int argc, char **argv)
{
	struct cw_config cfg;
	struct cw_error err = { 0 };
	struct db *db = NULL;
	json_t *out = NULL;
	int status, nargs;
	char **args;

	cli_init(argc, argv);
	config_init(&cfg);
	status = cli_start(&cfg, &program, argc, argv, true);
	if (status >= 0)
		goto out;

	args = config_rest(&nargs);
	const char *cmd = nargs > 0 ? args[0] : "";
	/* Each command and how many words it takes, itself included. */
	static const struct {
		const char *name;
		int min, max;
	} commands[] = { { "check", 2, 2 },  { "record", 3, 4 }, { "left", 2, 2 },
			 { "charge", 3, 3 }, { "health", 1, 1 } };
	bool usage = true;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name))
			usage = nargs < commands[i].min || nargs > commands[i].max;
	if (usage) {
		log_error("usage: %s", program.synopsis);
		status = CW_EXIT_USAGE;
		goto out;
	}
	db = db_connect(&cfg, program.name, &err);
	if (!db)
		goto fail;
	cw_error_clear(&err); /* a connection that needed retries leaves their error */

	const struct breaker_settings s = { cfg.guard_breaker_errors,
					    (double)cfg.guard_breaker_window,
					    (double)cfg.guard_breaker_cooldown };
	status = CW_EXIT_OK;
	if (!strcmp(cmd, "check")) {
		out = check(db, args[1], &s, &err);
		if (err.code)
			status = err.code;
	} else if (!strcmp(cmd, "record")) {
		bool failed = !strcmp(args[2], "fail");
		if (!failed && strcmp(args[2], "ok")) {
			cw_error_set(&err, CW_EXIT_USAGE, "record: \"%s\" is neither ok nor fail",
				     args[2]);
			goto fail;
		}
		if (breaker_record(db, args[1], &s, failed, nargs == 4 ? args[3] : NULL, &err) == 0)
			out = json_pack("{s:b}", "recorded", 1);
	} else if (!strcmp(cmd, "left")) {
		long long left;
		if (quota_left(db, args[1], cfg.guard_daily_limit, &left, &err) == 0)
			out = json_pack("{s:I}", "left", (json_int_t)left);
	} else if (!strcmp(cmd, "charge")) {
		out = charge(db, args[1], args[2], &err);
	} else {
		double rtt = -1;
		long free_conns = -1;
		int rc = db_check_health(db, cfg.guard_max_db_latency_ms,
					 cfg.guard_min_free_connections, &rtt, &free_conns, &err);
		if (rc < 0 && err.code == CW_EXIT_UNAVAILABLE && rtt >= 0)
			status = err.code; /* unhealthy: still print the figures */
		if (rc == 0 || status != CW_EXIT_OK)
			out = json_pack("{s:f, s:i}", "rttMs", rtt, "freeConnections",
					(int)free_conns);
	}
	if (!out)
		goto fail;
	if (err.code)
		log_cw_error(&err);
	char *text = json_dumps(out, JSON_COMPACT);
	if (!cfg.quiet && cli_write_result(text) < 0)
		status = CW_EXIT_IOERR;
	free(text);
	goto out;
fail:
	log_cw_error(&err);
	status = err.code ? err.code : CW_EXIT_SOFTWARE;
out:
	json_decref(out);
	db_close(db);
	config_release(&cfg);
	return cli_exit(status);
}
