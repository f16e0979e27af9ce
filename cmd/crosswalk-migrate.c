/*
 * crosswalk-migrate: install or upgrade crosswalk's schema (sql/NNN_*.sql,
 * carried inside the binary) in the configured database and schema.
 */
#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "log.h"
#include "migrate.h"
#include "result.h"
#include "xalloc.h"

#include <jansson.h>
#include <stdlib.h>

static bool opt_status;

static const struct cfg_option options[] = {
	{ NULL, NULL, "status", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "report the installed and latest versions only", 0, 0, &opt_status },
	{ 0 },
};

static const struct cfg_program program = {
	.name = "crosswalk-migrate",
	.synopsis = "crosswalk-migrate [-nqv] [-c file] [-d conninfo] [--schema name] [--status]",
	.purpose = "installs or upgrades crosswalk's own tables in the database.",
	.options = options,
	.takes = CFG_TAKES_DRY_RUN,
};

int main(int argc, char **argv)
{
	struct cw_config cfg;
	struct cw_error err;
	struct db *db = NULL;
	int status, from = 0, applied = 0;

	cli_init(argc, argv);
	config_init(&cfg);
	status = cli_start(&cfg, &program, argc, argv, false);
	if (status >= 0)
		goto out;

	db = db_connect(&cfg, program.name, &err);
	if (!db)
		goto fail;
	/* --check-config: connect and report, like --status, changing nothing. */
	if (opt_status || cfg.check_config) {
		if (migrate_current_version(db, &from, &err) < 0)
			goto fail;
	} else if (migrate_apply(db, cfg.dry_run, &from, &applied, &err) < 0) {
		goto fail;
	}

	json_t *result = json_pack("{s:s, s:i, s:i, s:i, s:b}", "schema", cfg.schema, "from", from,
				   "to", opt_status || cfg.check_config ? from : from + applied, "latest",
				   migrate_latest_version(), "dryRun", cfg.dry_run);
	json_object_set_new(result, "applied", json_integer(applied));
	status = result_emit(result, CW_EXIT_OK, cfg.quiet);
	json_decref(result);
	goto out;
fail:
	log_cw_error(&err);
	status = err.code;
out:
	db_close(db);
	config_release(&cfg);
	return cli_exit(status);
}
