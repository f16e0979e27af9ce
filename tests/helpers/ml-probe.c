/*
 * ml-probe: drives lib/mailerlite and lib/ratelimit against an API (the
 * emulator in the tests) and prints what happened as one JSON object, so
 * the shell tests can assert on the client's behaviour. Not installed.
 *
 *   ml-probe [options] walk              every page of GET /subscribers
 *   ml-probe [options] count             GET /subscribers?limit=0
 *   ml-probe [options] get ID|EMAIL      GET /subscribers/{id or email}
 *   ml-probe [options] upsert JSON       POST /subscribers
 *   ml-probe [options] batch FILE|-      POST /batch with FILE's array of requests
 *   ml-probe [options] take N            take N tokens from the shared bucket
 *
 * Settings as in every program (option > environment > file > default);
 * the token only from MAILERLITE_API_KEY or api_key_file. The bucket gets a
 * database connection of its own only when a limit is on: with
 * rate_limit = 0 and import_rate_limit = 0 no database is needed at all.
 */
#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "log.h"
#include "mailerlite.h"
#include "ratelimit.h"
#include "xalloc.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int opt_limit;
static bool opt_groups;
static char *opt_status;
static int opt_rate_limit;
static int opt_import_rate_limit;
static int opt_retries;
static int opt_burst;
static int opt_page_cap;

static const struct cfg_option options[] = {
	{ NULL, NULL, "limit", 0, NULL, CFG_INT, 0, 1000000, "0", NULL, "N",
	  "walk: page size to ask for (default: page_size)", 0, 0, &opt_limit },
	{ NULL, NULL, "include-groups", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "walk: ask for the groups too", 0, 0, &opt_groups },
	{ NULL, NULL, "status", 0, NULL, CFG_STRING, 0, 0, NULL, NULL, "STATUS",
	  "walk, count: only subscribers with this status", 0, 0, &opt_status },
	{ NULL, NULL, "rate-limit", 0, NULL, CFG_INT, -1, 100000, "-1", NULL, "N",
	  "override mailerlite.rate_limit (requests per minute)", 0, 0, &opt_rate_limit },
	{ NULL, NULL, "import-rate-limit", 0, NULL, CFG_INT, -1, 10000, "-1", NULL, "N",
	  "override mailerlite.import_rate_limit", 0, 0, &opt_import_rate_limit },
	{ NULL, NULL, "retries", 0, NULL, CFG_INT, -1, 100, "-1", NULL, "N",
	  "override mailerlite.retries", 0, 0, &opt_retries },
	{ NULL, NULL, "burst", 0, NULL, CFG_INT, 1, 1000, "1", NULL, "N",
	  "burst allowance of the bucket (default 1)", 0, 0, &opt_burst },
	{ NULL, NULL, "page-cap", 0, NULL, CFG_INT, 0, 1000000, "0", NULL, "N",
	  "start with this page cap known (as if restored)", 0, 0, &opt_page_cap },
	{ 0 },
};

static const struct cfg_program program = {
	.name = "ml-probe",
	.synopsis = "ml-probe [options] walk | count | get ID|EMAIL | upsert JSON | batch FILE | "
		    "take N",
	.purpose = "exercises the MailerLite client and the shared rate limit (tests only).",
	.options = options,
	.takes = 0,
};

/* Ids are digit strings: longer is larger, else by their text. */
static int id_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb)
		return la < lb ? -1 : 1;
	return strcmp(a, b);
}

static int id_qsort_cmp(const void *a, const void *b)
{
	return id_cmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *walk(struct ml_client *c, struct ratelimit *rl, struct cw_error *err)
{
	json_t *slots = json_array();
	char **ids = NULL;
	size_t nids = 0, alloc = 0;
	char *cursor = NULL;
	long pages = 0, unmatched = 0;
	bool desc = true;
	json_t *out = NULL;

	for (;;) {
		struct ml_page page;
		struct ratelimit_stats before, after;
		size_t i;
		const json_t *item;

		ratelimit_get_stats(rl, &before);
		if (ml_list_subscribers(c, cursor, opt_limit, opt_groups, opt_status, &page, err) <
		    0)
			goto done;
		ratelimit_get_stats(rl, &after);
		/* One token per page when nothing was retried: its slot is the
		 * page's. A retried page took more, and only the last is known. */
		if (after.grants == before.grants + 1)
			json_array_append_new(slots, json_real(after.last_slot));
		else if (after.grants != before.grants)
			unmatched++;
		pages++;
		json_array_foreach(page.data, i, item)
		{
			const char *id = json_string_value(json_object_get(item, "id"));

			if (nids == alloc) {
				alloc = alloc ? alloc * 2 : 1024;
				ids = xreallocarray(ids, alloc, sizeof *ids);
			}
			if (nids > 0 && id_cmp(ids[nids - 1], id) <= 0)
				desc = false;
			ids[nids++] = xstrdup(id);
		}
		free(cursor);
		cursor = page.next_cursor ? xstrdup(page.next_cursor) : NULL;
		ml_page_release(&page);
		if (!cursor)
			break;
		if (pages >= 1000000) {
			cw_error_set(err, CW_EXIT_SOFTWARE, "the walk never ends");
			goto done;
		}
	}

	long duplicates = 0;
	qsort(ids, nids, sizeof *ids, id_qsort_cmp);
	for (size_t i = 1; i < nids; i++)
		if (!id_cmp(ids[i - 1], ids[i]))
			duplicates++;
	out = json_pack("{s:I, s:I, s:I, s:i, s:b, s:I}", "rows", (json_int_t)nids, "pages",
			(json_int_t)pages, "requests", (json_int_t)ml_requests(c), "pageCap",
			ml_page_cap(c), "ids_sorted_desc", desc, "duplicates",
			(json_int_t)duplicates);
	json_object_set(out, "slots", slots);
	json_object_set_new(out, "slotsUnknown", json_integer(unmatched));
done:
	for (size_t i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	free(cursor);
	json_decref(slots);
	return out;
}

static json_t *result_json(const struct ml_result *res, struct ml_client *c)
{
	json_t *out = json_pack("{s:I, s:b, s:I}", "status", (json_int_t)res->status, "created",
				res->created, "requests", (json_int_t)ml_requests(c));

	json_object_set(out, "data", res->data ? (json_t *)res->data : json_null());
	json_object_set(out, "errors", res->errors ? (json_t *)res->errors : json_null());
	json_object_set_new(out, "message",
			    res->message ? json_string(res->message) : json_null());
	return out;
}

static json_t *batch(struct ml_client *c, const char *file, int *status, struct cw_error *err)
{
	json_error_t jerr;
	json_t *requests = strcmp(file, "-") ? json_load_file(file, 0, &jerr)
					     : json_loadf(stdin, 0, &jerr);
	struct ml_batch_result res;
	json_t *out, *codes;

	if (json_is_object(requests)) {
		json_t *inner = json_incref(json_object_get(requests, "requests"));
		json_decref(requests);
		requests = inner;
	}
	if (!json_is_array(requests)) {
		json_decref(requests);
		cw_error_set(err, CW_EXIT_DATAERR, "%s: not a JSON array of requests", file);
		return NULL;
	}
	if (ml_batch(c, requests, &res, err) < 0) {
		json_decref(requests);
		return NULL;
	}
	codes = json_array();
	for (size_t i = 0; i < res.n; i++)
		json_array_append_new(codes, json_integer(res.items[i].code));
	out = json_pack("{s:I, s:I, s:I, s:I, s:o, s:I}", "status", (json_int_t)res.status, "n",
			(json_int_t)res.n, "successful", (json_int_t)res.successful, "failed",
			(json_int_t)res.failed, "codes", codes, "requests",
			(json_int_t)ml_requests(c));
	json_object_set_new(out, "message", res.message ? json_string(res.message) : json_null());
	if (res.status < 200 || res.status > 299 || res.failed)
		*status = CW_EXIT_RECORDS;
	ml_batch_result_release(&res);
	json_decref(requests);
	return out;
}

static json_t *take(struct ratelimit *rl, long n, struct cw_error *err)
{
	json_t *grants = json_array();
	int limit = ratelimit_limit(rl);

	for (long i = 0; i < n; i++) {
		struct ratelimit_grant g;

		if (ratelimit_take(rl, RATELIMIT_API, &g, err) < 0) {
			json_decref(grants);
			return NULL;
		}
		json_array_append_new(grants, json_pack("{s:f, s:f}", "slot", g.slot, "waited",
							g.waited));
	}
	return json_pack("{s:i, s:f, s:o}", "limit", limit, "interval", ratelimit_interval(limit),
			 "grants", grants);
}

static bool parse_count(const char *s, long *n)
{
	char *end;

	*n = strtol(s, &end, 10);
	return end != s && !*end && *n >= 0 && *n <= 1000000;
}

int main(int argc, char **argv)
{
	struct cw_config cfg;
	struct cw_error err = { 0 };
	struct db *db = NULL;
	struct ratelimit *rl = NULL;
	struct ml_client *c = NULL;
	json_t *out = NULL;
	int status, nargs;
	char **args;

	cli_init(argc, argv);
	config_init(&cfg);
	status = cli_start(&cfg, &program, argc, argv, true);
	if (status >= 0)
		goto out;
	if (opt_rate_limit >= 0)
		cfg.rate_limit = opt_rate_limit;
	if (opt_import_rate_limit >= 0)
		cfg.import_rate_limit = opt_import_rate_limit;
	if (opt_retries >= 0)
		cfg.http_retries = opt_retries;

	args = config_rest(&nargs);
	const char *cmd = nargs > 0 ? args[0] : "";
	int want = !strcmp(cmd, "walk") || !strcmp(cmd, "count") ? 1
		   : !strcmp(cmd, "get") || !strcmp(cmd, "upsert") || !strcmp(cmd, "batch") ||
				   !strcmp(cmd, "take")
			   ? 2
			   : -1;
	if (want < 0 || nargs != want) {
		log_error(want < 0 ? "no such command \"%s\"" : "wrong number of arguments for %s",
			  cmd);
		log_hint("Try \"%s --help\" for more information.", program.name);
		status = CW_EXIT_USAGE;
		goto out;
	}

	/* The bucket's own connection, in autocommit; none when it is off. */
	if (cfg.rate_limit > 0 || cfg.import_rate_limit > 0) {
		db = db_connect(&cfg, program.name, &err);
		if (!db)
			goto fail;
	}
	rl = ratelimit_new(db, cfg.rate_limit, cfg.import_rate_limit, &err);
	if (!rl)
		goto fail;
	ratelimit_set_burst(rl, opt_burst);

	status = CW_EXIT_OK;
	if (!strcmp(cmd, "take")) {
		long n;
		if (!parse_count(args[1], &n)) {
			log_error("take: \"%s\" is not a count", args[1]);
			status = CW_EXIT_USAGE;
			goto out;
		}
		if (!(out = take(rl, n, &err)))
			goto fail;
		goto print;
	}

	c = ml_client_new(&cfg, rl, &err);
	if (!c)
		goto fail;
	if (opt_page_cap > 0)
		ml_set_page_cap(c, opt_page_cap);

	if (!strcmp(cmd, "walk")) {
		out = walk(c, rl, &err);
	} else if (!strcmp(cmd, "count")) {
		long long total;
		if (ml_count_subscribers(c, opt_status, &total, &err) == 0)
			out = json_pack("{s:I, s:I}", "total", (json_int_t)total, "requests",
					(json_int_t)ml_requests(c));
	} else if (!strcmp(cmd, "get")) {
		json_t *sub;
		int rc = ml_get_subscriber(c, args[1], &sub, &err);
		if (rc >= 0)
			out = json_pack("{s:b, s:o, s:I}", "found", rc == 0, "data",
					sub ? sub : json_null(), "requests",
					(json_int_t)ml_requests(c));
	} else if (!strcmp(cmd, "upsert")) {
		json_error_t jerr;
		json_t *body = json_loads(args[1], 0, &jerr);
		struct ml_result res;
		if (!body) {
			cw_error_set(&err, CW_EXIT_DATAERR, "upsert: the argument is not JSON: %s",
				     jerr.text);
			goto fail;
		}
		if (ml_upsert_subscriber(c, body, &res, &err) == 0) {
			out = result_json(&res, c);
			if (!ml_result_ok(&res))
				status = CW_EXIT_RECORDS;
			ml_result_release(&res);
		}
		json_decref(body);
	} else {
		out = batch(c, args[1], &status, &err);
	}
	if (!out)
		goto fail;

print:;
	char *text = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(17));
	if (!cfg.quiet && cli_write_result(text) < 0)
		status = CW_EXIT_IOERR;
	free(text);
	goto out;
fail:
	log_cw_error(&err);
	status = err.code ? err.code : CW_EXIT_SOFTWARE;
out:
	json_decref(out);
	ml_client_free(c);
	ratelimit_free(rl);
	db_close(db);
	free(opt_status);
	config_release(&cfg);
	return cli_exit(status);
}
