/*
 * webhook-probe: calls webhook_deliver_due() once against a database, as a
 * chunk-worker does between chunks, and prints {"attempted": N} on stdout,
 * so the shell tests can drive the completion webhooks end to end. Not
 * installed.
 *
 *   webhook-probe [options] [--limit=N] [--timeout=SECONDS]
 *                 [--max-attempts=N] [--max-response-bytes=N]
 *
 * Connection settings as in every program (option > environment > file >
 * default). The exit status is the one a program would give: 0, or the
 * error's code (69 when the database is gone).
 */
#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "log.h"
#include "webhook.h"

#include <jansson.h>
#include <stdlib.h>

static int opt_limit;
static long opt_timeout;
static int opt_max_attempts;
static long opt_max_response;

static const struct cfg_option options[] = {
	{ NULL, NULL, "limit", 0, NULL, CFG_INT, 0, 1000000, "10", NULL, "N",
	  "deliver at most N due webhooks (default 10)", 0, 0, &opt_limit },
	{ NULL, NULL, "timeout", 0, NULL, CFG_DURATION, 1, 3600, "10", NULL, "SECONDS",
	  "one POST's whole time (default 10)", 0, 0, &opt_timeout },
	{ NULL, NULL, "max-attempts", 0, NULL, CFG_INT, 1, 1000, "8", NULL, "N",
	  "attempts before a webhook is given up (default 8)", 0, 0, &opt_max_attempts },
	{ NULL, NULL, "max-response-bytes", 0, NULL, CFG_LONG, 1, 1L << 30, "64k", NULL, "N",
	  "how much of an answer is read (default 64k)", 0, 0, &opt_max_response },
	{ 0 },
};

static const struct cfg_program program = {
	.name = "webhook-probe",
	.synopsis = "webhook-probe [options] [--limit=N] [--timeout=SECONDS] [--max-attempts=N] "
		    "[--max-response-bytes=N]",
	.purpose = "delivers the due completion webhooks of chunked jobs once (tests only).",
	.options = options,
	.takes = 0,
};

int main(int argc, char **argv)
{
	struct cw_config cfg;
	struct cw_error err = { 0 };
	struct webhook_options o;
	struct db *db = NULL;
	int status, attempted = 0;

	cli_init(argc, argv);
	config_init(&cfg);
	status = cli_start(&cfg, &program, argc, argv, false);
	if (status >= 0)
		goto out;

	db = db_connect(&cfg, program.name, &err);
	if (!db)
		goto fail;
	cw_error_clear(&err); /* a connection that needed retries leaves their error */

	webhook_options_init(&o);
	o.timeout_s = opt_timeout;
	o.max_attempts = opt_max_attempts;
	o.max_response_bytes = opt_max_response;
	if (webhook_deliver_due(db, &o, opt_limit, &attempted, &err) < 0)
		goto fail;

	json_t *out = json_pack("{s:i}", "attempted", attempted);
	char *text = json_dumps(out, JSON_COMPACT);
	status = CW_EXIT_OK;
	if (!cfg.quiet && cli_write_result(text) < 0)
		status = CW_EXIT_IOERR;
	free(text);
	json_decref(out);
	goto out;
fail:
	log_cw_error(&err);
	status = err.code ? err.code : CW_EXIT_SOFTWARE;
out:
	db_close(db);
	config_release(&cfg);
	return cli_exit(status);
}
