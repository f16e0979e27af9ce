/*
 * bench-walk: reads every subscriber page from the API with crosswalk's own
 * client and nothing else (no database, no client-side pacing), the floor a
 * B-side walk such as backfill-sync's is measured against. Prints
 * {"rows":N,"requests":N,"ms":T,"pageCap":N}.
 */
#include "cli.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "mailerlite.h"
#include "result.h"

#include <jansson.h>
#include <stdlib.h>

static bool opt_include_groups;

static const struct cfg_option options[] = {
	{ NULL, NULL, "include-groups", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "ask for include=groups, as a sync of managed groups does", 0, 0,
	  &opt_include_groups },
	{ 0 },
};

static const struct cfg_program program = {
	.name = "bench-walk",
	.synopsis = "bench-walk [-qv] [-c file] [--include-groups]",
	.purpose = "reads every subscriber page from the API and reports the time it took.",
	.options = options,
	.takes = 0,
};

int main(int argc, char **argv)
{
	struct cw_config cfg;
	struct cw_error err;
	struct ml_client *ml = NULL;
	char *cursor = NULL;
	long long rows = 0;
	int status;

	cli_init(argc, argv);
	config_init(&cfg);
	status = cli_start(&cfg, &program, argc, argv, false);
	if (status >= 0)
		goto out;

	/* No bucket: the walk goes as fast as the server answers. */
	ml = ml_client_new(&cfg, NULL, &err);
	if (!ml)
		goto fail;

	long long start = cli_now_ms();
	do {
		struct ml_page page;

		if (cli_interrupted()) {
			log_error("interrupted after %lld rows", rows);
			status = CW_EXIT_PARTIAL;
			goto out;
		}
		if (ml_list_subscribers(ml, cursor, 0, opt_include_groups, NULL, &page, &err) < 0)
			goto fail;
		rows += (long long)json_array_size(page.data);
		free(cursor);
		cursor = page.next_cursor;
		page.next_cursor = NULL;
		ml_page_release(&page);
	} while (cursor);
	long long ms = cli_now_ms() - start;

	/* The page size the walk used: the one asked for, or the server's
	 * smaller cap when it showed one. */
	int cap = ml_page_cap(ml);
	int used = cap > 0 && cap < cfg.page_size ? cap : cfg.page_size;
	json_t *result = json_pack("{s:I, s:I, s:I, s:i}", "rows", (json_int_t)rows, "requests",
				   (json_int_t)ml_requests(ml), "ms", (json_int_t)ms, "pageCap", used);
	status = result_emit(result, CW_EXIT_OK, cfg.quiet);
	json_decref(result);
	goto out;
fail:
	log_cw_error(&err);
	status = err.code;
out:
	free(cursor);
	ml_client_free(ml);
	config_release(&cfg);
	return cli_exit(status);
}
