/* Settings: one option table read from argv, the environment and an INI file. */
#include "config.h"
#include "exitcode.h"
#include "strbuf.h"
#include "xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CW_SYSCONFDIR
#define CW_SYSCONFDIR "/etc"
#endif
/* Read when neither --config nor $CROSSWALK_CONFIG names a file. */
#define CONFIG_SYSTEM_FILE CW_SYSCONFDIR "/crosswalk.conf"

#define OFF(f) offsetof(struct cw_config, f)
#define HELP_COLUMN 30
#define HELP_WIDTH 80

/* Options every program takes, or takes when its cfg_program says so. */
static const struct cfg_option shared_options[] = {
	{ NULL, NULL, "config", 'c', "CROSSWALK_CONFIG", CFG_STRING, 0, 0, NULL, NULL, "FILE",
	  "read settings from FILE", 0, OFF(config_file), NULL },
	{ "database", "url", "db", 'd', "DATABASE_URL", CFG_STRING, 0, 0, NULL, NULL, "CONNINFO",
	  "PostgreSQL connection string or URI", 0, OFF(db_conninfo), NULL },
	{ "database", "schema", "schema", 0, "CROSSWALK_SCHEMA", CFG_STRING, 0, 0, "sync", NULL,
	  "NAME", "schema of crosswalk's own tables (default sync)", 0, OFF(schema), NULL },
	{ "database", "connect_timeout", NULL, 0, NULL, CFG_DURATION, 1, 3600, "10", NULL, NULL,
	  NULL, 0, OFF(db_connect_timeout), NULL },
	{ "database", "retries", NULL, 0, NULL, CFG_INT, 0, 100, "5", NULL, NULL, NULL, 0,
	  OFF(db_retries), NULL },
	{ "sync", "namespace", "namespace", 0, "CROSSWALK_NAMESPACE", CFG_STRING, 0, 0, "default",
	  NULL, "NAME", "keep state and cursors apart under NAME", 0, OFF(namespace), NULL },
	{ "sync", "batch_size", "batch-size", 'b', NULL, CFG_INT, 1, 100000, "500", NULL, "N",
	  "records per batch (default 500)", 0, OFF(batch_size), NULL },
	{ NULL, NULL, "max-duration", 0, NULL, CFG_DURATION, 0, 7 * 24 * 3600, "0", NULL,
	  "SECONDS", "stop after this long and exit 3 (resumable)", 0, OFF(max_duration), NULL },
	{ NULL, NULL, "dry-run", 'n', NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "compute and report everything, write nothing", 0, OFF(dry_run), NULL },
	{ NULL, NULL, "check-config", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "validate the settings and the database, then exit", 0, OFF(check_config), NULL },
	{ NULL, NULL, "quiet", 'q', NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "print nothing on success (for cron)", 0, OFF(quiet), NULL },
	{ NULL, NULL, "verbose", 'v', NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "log more detail", 0, OFF(verbose), NULL },

	{ "mailerlite", "api_url", NULL, 0, "MAILERLITE_API_URL", CFG_STRING, 0, 0,
	  "https://connect.mailerlite.com/api", NULL, NULL, NULL, 0, OFF(api_url), NULL },
	{ NULL, NULL, NULL, 0, "MAILERLITE_API_KEY", CFG_STRING, 0, 0, NULL, NULL, NULL, NULL, 0,
	  OFF(api_key), NULL },
	{ "mailerlite", "api_key_file", NULL, 0, NULL, CFG_STRING, 0, 0, NULL, NULL, NULL, NULL,
	  0, OFF(api_key_file), NULL },
	{ "mailerlite", "api_version", NULL, 0, NULL, CFG_STRING, 0, 0, NULL, NULL, NULL, NULL, 0,
	  OFF(api_version), NULL },
	{ "mailerlite", "page_size", NULL, 0, NULL, CFG_INT, 1, 5000, "1000", NULL, NULL, NULL, 0,
	  OFF(page_size), NULL },
	{ "mailerlite", "timeout", NULL, 0, NULL, CFG_DURATION, 1, 3600, "30", NULL, NULL, NULL,
	  0, OFF(http_timeout), NULL },
	{ "mailerlite", "connect_timeout", NULL, 0, NULL, CFG_DURATION, 1, 600, "10", NULL, NULL,
	  NULL, 0, OFF(http_connect_timeout), NULL },
	{ "mailerlite", "max_response_bytes", NULL, 0, NULL, CFG_LONG, 4096, 1L << 30, "32M",
	  NULL, NULL, NULL, 0, OFF(max_response_bytes), NULL },
	{ "mailerlite", "retries", NULL, 0, NULL, CFG_INT, 0, 100, "5", NULL, NULL, NULL, 0,
	  OFF(http_retries), NULL },
	{ "mailerlite", "rate_limit", NULL, 0, NULL, CFG_INT, 0, 100000, "120", NULL, NULL, NULL,
	  0, OFF(rate_limit), NULL },
	{ "mailerlite", "import_rate_limit", NULL, 0, NULL, CFG_INT, 0, 10000, "5", NULL, NULL,
	  NULL, 0, OFF(import_rate_limit), NULL },

	{ "table", "name", NULL, 0, NULL, CFG_STRING, 0, 0, "public.clients", NULL, NULL, NULL, 0,
	  OFF(a_table), NULL },
	{ "table", "key", NULL, 0, NULL, CFG_STRING, 0, 0, "id", NULL, NULL, NULL, 0, OFF(a_key),
	  NULL },
	{ "table", "email", NULL, 0, NULL, CFG_STRING, 0, 0, "email", NULL, NULL, NULL, 0,
	  OFF(a_email), NULL },
	{ "table", "updated_at", NULL, 0, NULL, CFG_STRING, 0, 0, "updated_at", NULL, NULL, NULL,
	  0, OFF(a_updated_at), NULL },
	{ "table", "status", NULL, 0, NULL, CFG_STRING, 0, 0, NULL, NULL, NULL, NULL, 0,
	  OFF(a_status), NULL },
	{ "table", "groups", NULL, 0, NULL, CFG_STRING, 0, 0, NULL, NULL, NULL, NULL, 0,
	  OFF(a_groups), NULL },

	{ "groups", "managed", NULL, 0, NULL, CFG_LIST, 0, 0, NULL, NULL, NULL, NULL, 0,
	  OFF(managed_groups), NULL },
	{ "groups", "create_missing", NULL, 0, NULL, CFG_BOOL, 0, 0, "false", NULL, NULL, NULL, 0,
	  OFF(create_groups), NULL },

	{ "sync", "conflict_policy", NULL, 0, NULL, CFG_POLICY, 0, 0, "newest", NULL, NULL, NULL,
	  0, OFF(conflict_policy), NULL },
	{ "sync", "initial_policy", NULL, 0, NULL, CFG_POLICY, 0, 0, "newest", NULL, NULL, NULL,
	  0, OFF(initial_policy), NULL },
	{ "sync", "import_new", NULL, 0, NULL, CFG_BOOL, 0, 0, "false", NULL, NULL, NULL, 0,
	  OFF(import_new), NULL },

	{ "guards", "breaker_errors", NULL, 0, NULL, CFG_INT, 1, 1000, "3", NULL, NULL, NULL, 0,
	  OFF(guard_breaker_errors), NULL },
	{ "guards", "breaker_window", NULL, 0, NULL, CFG_DURATION, 1, 7 * 24 * 3600, "10m", NULL,
	  NULL, NULL, 0, OFF(guard_breaker_window), NULL },
	{ "guards", "breaker_cooldown", NULL, 0, NULL, CFG_DURATION, 1, 7 * 24 * 3600, "5m", NULL,
	  NULL, NULL, 0, OFF(guard_breaker_cooldown), NULL },
	{ "guards", "daily_limit", NULL, 0, NULL, CFG_INT, 0, 1000000000, "5000", NULL, NULL, NULL,
	  0, OFF(guard_daily_limit), NULL },
	{ "guards", "max_db_latency_ms", NULL, 0, NULL, CFG_INT, 1, 600000, "500", NULL, NULL,
	  NULL, 0, OFF(guard_max_db_latency_ms), NULL },
	{ "guards", "min_free_connections", NULL, 0, NULL, CFG_INT, 0, 100000, "3", NULL, NULL,
	  NULL, 0, OFF(guard_min_free_connections), NULL },

	/* Secrets on argv end up in shell history and ps(1): refuse them. */
	{ NULL, NULL, "api-key", 0, NULL, CFG_STRING, 0, 0, NULL, NULL, "KEY", NULL,
	  CFG_SECRET_REFUSED | CFG_NO_HELP, 0, NULL },
	{ NULL, NULL, "token", 0, NULL, CFG_STRING, 0, 0, NULL, NULL, "KEY", NULL,
	  CFG_SECRET_REFUSED | CFG_NO_HELP, 0, NULL },
	{ NULL, NULL, "mailerlite-api-key", 0, NULL, CFG_STRING, 0, 0, NULL, NULL, "KEY", NULL,
	  CFG_SECRET_REFUSED | CFG_NO_HELP, 0, NULL },
};

#define NSHARED (sizeof(shared_options) / sizeof(shared_options[0]))

static char **rest_argv;
static int rest_count;

static bool option_is_end(const struct cfg_option *o)
{
	return !o->key && !o->long_opt && !o->env;
}

static bool shared_option_applies(const struct cfg_option *o, const struct cfg_program *prog)
{
	if (!o->long_opt)
		return true;
	if (!strcmp(o->long_opt, "dry-run"))
		return prog->takes & CFG_TAKES_DRY_RUN;
	if (!strcmp(o->long_opt, "batch-size"))
		return prog->takes & CFG_TAKES_BATCH;
	if (!strcmp(o->long_opt, "max-duration"))
		return prog->takes & CFG_TAKES_DURATION;
	return true;
}

/* Iterate over the shared options that apply, then the program's own. */
static const struct cfg_option *option_at(const struct cfg_program *prog, size_t i)
{
	if (i < NSHARED)
		return &shared_options[i];
	i -= NSHARED;
	if (!prog || !prog->options)
		return NULL;
	for (size_t j = 0; !option_is_end(&prog->options[j]); j++)
		if (j == i)
			return &prog->options[j];
	return NULL;
}

static bool option_active(const struct cfg_program *prog, size_t i)
{
	const struct cfg_option *o = option_at(prog, i);

	return o && (i >= NSHARED || !prog || shared_option_applies(o, prog));
}

static void *option_dest(struct cw_config *cfg, const struct cfg_option *o)
{
	return o->dest ? o->dest : (char *)cfg + o->offset;
}

/* ---------- value parsing ---------- */

static char *trimmed(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return xstrndup(s, n);
}

static int parse_long_value(const char *text, long min, long max, bool size_units,
			    bool duration_units, long *out, char *why, size_t whylen)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (end == text || errno) {
		snprintf(why, whylen, "\"%s\" is not a number", text);
		return -1;
	}
	long long mult = 1;
	if (*end && size_units && !end[1]) {
		switch (*end) {
		case 'k': case 'K': mult = 1024; break;
		case 'M': mult = 1024 * 1024; break;
		case 'G': mult = 1024LL * 1024 * 1024; break;
		default: mult = 0;
		}
		end++;
	} else if (*end && duration_units && !end[1]) {
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: mult = 0;
		}
		end++;
	}
	if (*end || !mult) {
		snprintf(why, whylen, "\"%s\" is not a valid %s", text,
			 duration_units ? "duration (like 90, 90s, 2m, 1h)"
			 : size_units	? "size (like 4096, 64k, 32M)"
					: "number");
		return -1;
	}
	if (v > LLONG_MAX / mult || v < LLONG_MIN / mult) {
		snprintf(why, whylen, "\"%s\" is out of range", text);
		return -1;
	}
	v *= mult;
	if (v < min || v > max) {
		snprintf(why, whylen, "%s is out of range (%ld to %ld)", text, min, max);
		return -1;
	}
	*out = (long)v;
	return 0;
}

static int parse_bool(const char *t, bool *out)
{
	static const char *yes[] = { "true", "yes", "on", "1" };
	static const char *no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(t, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(t, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static void free_list(char ***list, size_t *count)
{
	for (size_t i = 0; i < *count; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*count = 0;
}

/* Convert text and store it; on a bad value fill why and return -1. */
static int assign(struct cw_config *cfg, const struct cfg_option *o, const char *text, char *why,
		  size_t whylen)
{
	void *dest = option_dest(cfg, o);
	long v;

	switch (o->type) {
	case CFG_STRING:
	case CFG_ENUM: {
		char *val = trimmed(text);
		if (o->type == CFG_ENUM) {
			bool ok = false;
			const char *c = o->choices;
			size_t n = strlen(val);
			while (c && *c && !ok) {
				size_t len = strcspn(c, "|");
				ok = len == n && !strncmp(c, val, n);
				c += len + (c[len] == '|');
			}
			if (!ok) {
				snprintf(why, whylen, "\"%s\" is not one of %s", val, o->choices);
				free(val);
				return -1;
			}
		}
		free(*(char **)dest);
		*(char **)dest = val;
		return 0;
	}
	case CFG_INT:
	case CFG_LONG:
	case CFG_DURATION:
		if (parse_long_value(text, o->min, o->max, o->type == CFG_LONG,
				     o->type == CFG_DURATION, &v, why, whylen) < 0)
			return -1;
		if (o->type == CFG_INT)
			*(int *)dest = (int)v;
		else
			*(long *)dest = v;
		return 0;
	case CFG_BOOL:
	case CFG_FLAG: {
		bool b = true;
		if (text && parse_bool(text, &b) < 0) {
			snprintf(why, whylen, "\"%s\" is not a boolean (true or false)", text);
			return -1;
		}
		*(bool *)dest = b;
		return 0;
	}
	case CFG_POLICY: {
		char *val = trimmed(text);
		int p = config_parse_policy(val);
		if (p < 0) {
			snprintf(why, whylen, "\"%s\" is not a policy (skip, a-wins, b-wins, newest)",
				 val);
			free(val);
			return -1;
		}
		free(val);
		*(int *)dest = p;
		return 0;
	}
	case CFG_LIST: {
		char ***list = dest;
		size_t *count = (size_t *)((char *)dest + sizeof(char **));
		const char *p = text;
		free_list(list, count);
		while (*p) {
			size_t len = strcspn(p, ",");
			char *piece = xstrndup(p, len);
			char *item = trimmed(piece);
			free(piece);
			if (*item) {
				*list = xreallocarray(*list, *count + 1, sizeof(char *));
				(*list)[(*count)++] = item;
			} else {
				free(item);
			}
			p += len + (p[len] == ',');
		}
		return 0;
	}
	}
	snprintf(why, whylen, "unsupported setting type");
	return -1;
}

/* ---------- the INI file ---------- */

/* Debian's libinih sizes its line buffer from ini_max_line at run time (200
 * bytes by default: too short for a conninfo with certificate paths). A line
 * that still does not fit is refused: inih would split it silently. */
#define CONFIG_MAX_LINE 4096

/* A [conflicts] entry waits until the whole file is read: [fields] may follow. */
struct pending_policy {
	char *field;
	int policy;
	int line;
};

struct ini_ctx {
	struct cw_config *cfg;
	const struct cfg_program *prog;
	FILE *file;
	char *buf; /* getline's buffer */
	size_t bufsize;
	int line;	/* the line being parsed, from 1 */
	int error_line; /* the earliest error's line, or 0 */
	char why[512];	/* and its reason */
	struct pending_policy *pending;
	size_t npending;
};

/* Keep the earliest error: with several mistakes, the first is the one to fix. */
static void remember_error(struct ini_ctx *ctx, int line, const char *why)
{
	if (ctx->error_line && ctx->error_line <= line)
		return;
	ctx->error_line = line;
	snprintf(ctx->why, sizeof(ctx->why), "%s", why);
}

/* A line that does not fit inih's buffer, named by its key when it has one. */
static void refuse_long_line(struct ini_ctx *ctx, int limit)
{
	char why[160];
	const char *key = ctx->buf + strspn(ctx->buf, " \t");
	int keylen = (int)strcspn(key, "=:");
	bool has_key = key[keylen] == '=' || key[keylen] == ':';

	while (keylen > 0 && isspace((unsigned char)key[keylen - 1]))
		keylen--;
	if (has_key && keylen > 0 && keylen <= 64)
		snprintf(why, sizeof(why), "line longer than %d characters (key \"%.*s\")", limit,
			 keylen, key);
	else
		snprintf(why, sizeof(why), "line longer than %d characters", limit);
	remember_error(ctx, ctx->line, why);
}

/* inih's reader: one whole line per call, so that ctx->line is the line
 * inih is parsing when it calls on_ini_entry(). */
static char *read_line(char *str, int num, void *user)
{
	struct ini_ctx *ctx = user;
	ssize_t len = getline(&ctx->buf, &ctx->bufsize, ctx->file);

	if (len < 0)
		return NULL;
	ctx->line++;
	if (len > 0 && ctx->buf[len - 1] == '\n')
		len--;
	if (len > num - 1) {
		refuse_long_line(ctx, num - 1);
		len = 0; /* inih sees an empty line */
	}
	memcpy(str, ctx->buf, (size_t)len);
	str[len] = '\0';
	return str;
}

static int add_field(struct cw_config *cfg, const char *a_column, const char *value, char *why,
		     size_t whylen)
{
	char *v = trimmed(value);
	char *b = v, *dir = v + strcspn(v, " \t,");
	int direction = CW_DIR_BOTH;

	if (*dir) {
		*dir++ = '\0';
		dir += strspn(dir, " \t,");
		direction = config_parse_direction(dir);
		if (direction < 0) {
			snprintf(why, whylen,
				 "field %s: \"%s\" is not a direction (both, a-to-b, b-to-a)",
				 a_column, dir);
			free(v);
			return -1;
		}
	}
	if (!*b || strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(b)) {
		snprintf(why, whylen,
			 "field %s: \"%s\" is not a MailerLite field name (lowercase letters, "
			 "digits and _)",
			 a_column, b);
		free(v);
		return -1;
	}
	for (size_t i = 0; i < cfg->nfields; i++) {
		if (!strcmp(cfg->fields[i].a_column, a_column) ||
		    !strcmp(cfg->fields[i].b_field, b)) {
			snprintf(why, whylen, "field %s = %s is mapped twice", a_column, b);
			free(v);
			return -1;
		}
	}
	cfg->fields = xreallocarray(cfg->fields, cfg->nfields + 1, sizeof(*cfg->fields));
	cfg->fields[cfg->nfields].a_column = xstrdup(a_column);
	cfg->fields[cfg->nfields].b_field = xstrdup(b);
	cfg->fields[cfg->nfields].direction = direction;
	cfg->fields[cfg->nfields].policy = CW_POLICY_DEFAULT;
	cfg->nfields++;
	free(v);
	return 0;
}

static int add_pending_policy(struct ini_ctx *ctx, const char *field, const char *value,
			      char *why, size_t whylen)
{
	char *v = trimmed(value);
	int p = config_parse_policy(v);

	if (p < 0) {
		snprintf(why, whylen,
			 "conflicts.%s: \"%s\" is not a policy (skip, a-wins, b-wins, newest)",
			 field, v);
		free(v);
		return -1;
	}
	free(v);
	ctx->pending = xreallocarray(ctx->pending, ctx->npending + 1, sizeof(*ctx->pending));
	ctx->pending[ctx->npending].field = xstrdup(field);
	ctx->pending[ctx->npending].policy = p;
	ctx->pending[ctx->npending].line = ctx->line;
	ctx->npending++;
	return 0;
}

/* Apply each [conflicts] entry to its field (by B field or A column name),
 * and free the list. */
static void resolve_pending_policies(struct ini_ctx *ctx)
{
	struct cw_config *cfg = ctx->cfg;

	for (size_t i = 0; i < ctx->npending; i++) {
		struct pending_policy *p = &ctx->pending[i];
		bool found = false;
		for (size_t f = 0; f < cfg->nfields; f++) {
			if (!strcmp(cfg->fields[f].b_field, p->field) ||
			    !strcmp(cfg->fields[f].a_column, p->field)) {
				cfg->fields[f].policy = p->policy;
				found = true;
			}
		}
		if (!found) {
			char why[400];
			snprintf(why, sizeof(why),
				 "[conflicts] names \"%s\", which is not a field in [fields]",
				 p->field);
			remember_error(ctx, p->line, why);
		}
		free(p->field);
	}
	free(ctx->pending);
	ctx->pending = NULL;
	ctx->npending = 0;
}

static const struct cfg_option *file_option(const struct cfg_program *prog, const char *section,
					    const char *key)
{
	for (size_t i = 0;; i++) {
		const struct cfg_option *o = option_at(prog, i);
		if (!o)
			return NULL;
		if (o->section && !strcmp(o->section, section) && !strcmp(o->key, key))
			return o;
	}
}

static bool known_section(const struct cfg_program *prog, const char *section)
{
	for (size_t i = 0;; i++) {
		const struct cfg_option *o = option_at(prog, i);
		if (!o)
			return false;
		if (o->section && !strcmp(o->section, section))
			return true;
	}
}

/* The one section that has this key, or NULL (none, or several). */
static const char *section_of_key(const struct cfg_program *prog, const char *key)
{
	const char *section = NULL;

	for (size_t i = 0;; i++) {
		const struct cfg_option *o = option_at(prog, i);
		if (!o)
			return section;
		if (!o->section || strcmp(o->key, key))
			continue;
		if (section && strcmp(section, o->section))
			return NULL;
		section = o->section;
	}
}

/* One key = value of the file; on a mistake fill why and return -1. */
static int ini_entry(struct ini_ctx *ctx, const char *section, const char *name,
		     const char *value, char *why, size_t whylen)
{
	if (!*section) {
		const char *home = section_of_key(ctx->prog, name);
		if (home)
			snprintf(why, whylen,
				 "key \"%s\" is outside any section (it belongs in [%s])", name,
				 home);
		else
			snprintf(why, whylen, "key \"%s\" is outside any section", name);
		return -1;
	}
	if (!strcmp(section, "fields"))
		return add_field(ctx->cfg, name, value, why, whylen);
	if (!strcmp(section, "conflicts"))
		return add_pending_policy(ctx, name, value, why, whylen);
	if (!strcmp(section, "mailerlite") &&
	    (!strcmp(name, "api_key") || !strcmp(name, "token") || !strcmp(name, "api_token"))) {
		snprintf(why, whylen,
			 "%s.%s: the API token is not accepted in the config file; name a file "
			 "readable only by its owner in api_key_file, or set MAILERLITE_API_KEY",
			 section, name);
		return -1;
	}
	const struct cfg_option *o = file_option(ctx->prog, section, name);
	if (o) {
		char reason[400];
		if (assign(ctx->cfg, o, value, reason, sizeof(reason)) == 0)
			return 0;
		snprintf(why, whylen, "%s.%s: %s", section, name, reason);
		return -1;
	}
	if (known_section(ctx->prog, section))
		snprintf(why, whylen, "unknown key \"%s\" in section [%s]", name, section);
	else
		snprintf(why, whylen, "unknown section [%s] (key \"%s\")", section, name);
	return -1;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *ctx = user;
	char why[512];

	if (ini_entry(ctx, section, name, value, why, sizeof(why)) == 0)
		return 1;
	remember_error(ctx, ctx->line, why);
	return 0;
}

int config_load_file(struct cw_config *cfg, const struct cfg_program *prog, const char *path,
		     struct cw_error *err)
{
	struct ini_ctx ctx = { .cfg = cfg, .prog = prog };

	ctx.file = fopen(path, "r");
	if (!ctx.file)
		return cw_error_set(err, CW_EXIT_CONFIG, "could not open config file \"%s\": %s",
				    path, strerror(errno));
	int saved_max_line = ini_max_line;
	ini_max_line = CONFIG_MAX_LINE;
	/* 0, or the first line inih could not parse or on_ini_entry refused */
	int rc = ini_parse_stream(read_line, &ctx, on_ini_entry, &ctx);
	ini_max_line = saved_max_line;
	bool read_error = ferror(ctx.file);
	fclose(ctx.file);
	free(ctx.buf);

	if (rc > 0)
		remember_error(&ctx, rc, "syntax error (expected [section] or key = value)");
	resolve_pending_policies(&ctx);
	if (read_error || rc < 0)
		return cw_error_set(err, CW_EXIT_CONFIG, "could not read config file \"%s\"", path);
	if (ctx.error_line)
		return cw_error_set(err, CW_EXIT_CONFIG, "%s:%d: %s", path, ctx.error_line,
				    ctx.why);
	return 0;
}

/* ---------- the API token ---------- */

/* A token file others can read is a leak whether or not this run uses it. */
static int refuse_exposed_key_file(const char *path, const struct stat *st, struct cw_error *err)
{
	if (!(st->st_mode & (S_IRWXG | S_IRWXO)))
		return 0;
	cw_error_set(err, CW_EXIT_CONFIG,
		     "API key file \"%s\" is readable by group or others (mode %04o)", path,
		     (unsigned)(st->st_mode & 07777));
	cw_error_hint(err, "Run: chmod 600 %s", path);
	return -1;
}

static int read_key_file(struct cw_config *cfg, struct cw_error *err)
{
	struct stat st;
	const char *path = cfg->api_key_file;
	FILE *f = fopen(path, "r");

	if (!f)
		return cw_error_set(err, CW_EXIT_CONFIG, "could not open API key file \"%s\": %s",
				    path, strerror(errno));
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return cw_error_set(err, CW_EXIT_CONFIG, "API key file \"%s\" is not a regular file",
				    path);
	}
	if (refuse_exposed_key_file(path, &st, err) < 0) {
		fclose(f);
		return -1;
	}
	char line[4096];
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return cw_error_set(err, CW_EXIT_CONFIG, "API key file \"%s\" is empty", path);
	}
	fclose(f);
	char *key = trimmed(line);
	explicit_bzero(line, sizeof(line));
	if (!*key) {
		free(key);
		return cw_error_set(err, CW_EXIT_CONFIG, "API key file \"%s\" is empty", path);
	}
	free(cfg->api_key);
	cfg->api_key = key;
	return 0;
}

/* ---------- argv ---------- */

static void print_version(const struct cfg_program *prog)
{
	printf("%s (crosswalk) %s\n", prog->name, CW_VERSION);
}

/* Append len bytes of text and a newline, the text starting at column col
 * and broken at spaces so that no line passes HELP_WIDTH; continuation
 * lines start at column indent. groups: break only before a "[", as a man
 * page's SYNOPSIS does, so that "[-c file]" stays whole. */
static void add_wrapped(struct strbuf *sb, const char *text, size_t len, size_t col,
			size_t indent, bool groups)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		/* The next piece runs up to a space where a break is allowed. */
		const char *q = p + 1;
		while (q < end && !(*q == ' ' && (!groups || (q + 1 < end && q[1] == '['))))
			q++;
		size_t n = (size_t)(q - p);
		if (p != text && col + n > HELP_WIDTH && col > indent) {
			strbuf_addf(sb, "\n%*s", (int)indent, "");
			col = indent;
			p++; /* the space becomes the line break */
			n--;
		}
		strbuf_add(sb, p, n);
		col += n;
		p = q;
	}
	strbuf_addch(sb, '\n');
}

char *config_help_text(const struct cfg_program *prog)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s %s\n\nUsage:\n", prog->name, prog->purpose);
	for (const char *p = prog->synopsis; *p;) {
		size_t len = strcspn(p, "\n");
		strbuf_addstr(&sb, "  ");
		/* continuation lines go under the first argument */
		add_wrapped(&sb, p, len, 2, 2 + strcspn(p, " \n") + 1, true);
		p += len + (p[len] == '\n');
	}
	strbuf_addstr(&sb, "\nOptions:\n");
	for (size_t i = 0;; i++) {
		const struct cfg_option *o = option_at(prog, i);
		if (!o)
			break;
		if (!option_active(prog, i) || !o->long_opt || (o->flags & CFG_NO_HELP))
			continue;
		size_t start = sb.len;
		if (o->short_opt)
			strbuf_addf(&sb, "  -%c, --%s", o->short_opt, o->long_opt);
		else
			strbuf_addf(&sb, "      --%s", o->long_opt);
		if (o->type != CFG_FLAG)
			strbuf_addf(&sb, "=%s", o->argname ? o->argname : "VALUE");
		size_t width = sb.len - start;
		if (width + 2 > HELP_COLUMN) {
			strbuf_addch(&sb, '\n');
			width = 0;
		}
		strbuf_addf(&sb, "%*s", (int)(HELP_COLUMN - width), "");
		if (o->help)
			add_wrapped(&sb, o->help, strlen(o->help), HELP_COLUMN, HELP_COLUMN, false);
		else
			strbuf_addch(&sb, '\n');
	}
	strbuf_addf(&sb, "  -V, --version%*sprint the version and exit\n", HELP_COLUMN - 15, "");
	strbuf_addf(&sb, "  -h, --help%*sshow this help and exit\n", HELP_COLUMN - 12, "");
	strbuf_addf(&sb,
		    "\nThe API token comes from MAILERLITE_API_KEY or api_key_file, never from\n"
		    "the command line. Settings: option > environment > file > default.\n"
		    "See %s(1) and crosswalk(7).\n",
		    prog->name);
	return strbuf_detach(&sb, NULL);
}

char **config_rest(int *count)
{
	*count = rest_count;
	return rest_argv;
}

static bool is_config_option(const struct cfg_option *o)
{
	return o->long_opt && !strcmp(o->long_opt, "config");
}

struct argv_value {
	size_t index;
	const char *value;
};

/* getopt_long returns 1000 + the option's index for a long option. */
#define LONG_OPT_VAL 1000

static enum config_outcome usage_error(struct cw_error *err, const char *prog, const char *fmt,
				       ...) CW_PRINTF(3, 4);

static enum config_outcome usage_error(struct cw_error *err, const char *prog, const char *fmt,
				       ...)
{
	va_list ap;

	va_start(ap, fmt);
	cw_error_vset(err, CW_EXIT_USAGE, fmt, ap);
	va_end(ap);
	cw_error_hint(err, "Try \"%s --help\" for more information.", prog);
	return CONFIG_ERROR;
}

/* The option as written, without any "=value" (which may be a secret). */
static void option_as_written(const char *arg, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s", (int)strcspn(arg, "="), arg);
}

static int apply_environment(struct cw_config *cfg, const struct cfg_program *prog,
			     struct cw_error *err)
{
	for (size_t i = 0;; i++) {
		const struct cfg_option *o = option_at(prog, i);
		if (!o)
			break;
		if (!o->env || !option_active(prog, i) || !strcmp(o->env, "CROSSWALK_CONFIG"))
			continue;
		const char *v = getenv(o->env);
		if (!v || !*v)
			continue;
		char why[400];
		if (assign(cfg, o, v, why, sizeof(why)) < 0)
			return cw_error_set(err, CW_EXIT_CONFIG, "environment variable %s: %s",
					    o->env, why);
	}
	return 0;
}

static int apply_defaults(struct cw_config *cfg, const struct cfg_program *prog)
{
	for (size_t i = 0;; i++) {
		const struct cfg_option *o = option_at(prog, i);
		if (!o)
			break;
		char why[400];
		if (o->def && assign(cfg, o, o->def, why, sizeof(why)) < 0)
			return -1; /* a bad built-in default is a bug; tests catch it */
	}
	return 0;
}

static int validate(struct cw_config *cfg, struct cw_error *err)
{
	const char *required[][2] = {
		{ "table.name", cfg->a_table },	      { "table.key", cfg->a_key },
		{ "table.email", cfg->a_email },      { "table.updated_at", cfg->a_updated_at },
		{ "database.schema", cfg->schema },   { "sync.namespace", cfg->namespace },
		{ "mailerlite.api_url", cfg->api_url },
	};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!required[i][1] || !*required[i][1])
			return cw_error_set(err, CW_EXIT_CONFIG, "setting %s must not be empty",
					    required[i][0]);
	if (strncmp(cfg->api_url, "http://", 7) && strncmp(cfg->api_url, "https://", 8))
		return cw_error_set(err, CW_EXIT_CONFIG,
				    "mailerlite.api_url \"%s\" is not an http(s) URL", cfg->api_url);
	if (strlen(cfg->namespace) > 64 ||
	    strspn(cfg->namespace, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
		    strlen(cfg->namespace))
		return cw_error_set(err, CW_EXIT_CONFIG,
				    "namespace \"%s\" must be up to 64 letters, digits, _ - or .",
				    cfg->namespace);
	return 0;
}

enum config_outcome config_parse_args(struct cw_config *cfg, const struct cfg_program *prog,
				      int argc, char **argv, struct cw_error *err)
{
	struct option *longopts = NULL;
	size_t nlong = 0;
	struct strbuf shortopts = STRBUF_INIT;
	struct argv_value *values = NULL;
	size_t nvalues = 0;
	enum config_outcome outcome = CONFIG_OK;

	cw_error_clear(err);
	strbuf_addstr(&shortopts, ":hV");
	for (size_t i = 0;; i++) {
		const struct cfg_option *o = option_at(prog, i);
		if (!o)
			break;
		if (!o->long_opt || !option_active(prog, i))
			continue;
		longopts = xreallocarray(longopts, nlong + 1, sizeof(*longopts));
		longopts[nlong].name = o->long_opt;
		longopts[nlong].has_arg = o->type == CFG_FLAG ? no_argument : required_argument;
		longopts[nlong].flag = NULL;
		longopts[nlong].val = LONG_OPT_VAL + (int)i;
		nlong++;
		if (o->short_opt) {
			strbuf_addch(&shortopts, (char)o->short_opt);
			if (o->type != CFG_FLAG)
				strbuf_addch(&shortopts, ':');
		}
	}
	struct option tail[] = { { "help", no_argument, NULL, 'h' },
				 { "version", no_argument, NULL, 'V' },
				 { NULL, 0, NULL, 0 } };
	longopts = xreallocarray(longopts, nlong + 3, sizeof(*longopts));
	memcpy(longopts + nlong, tail, sizeof(tail));

	optind = 0; /* glibc: a full reset, also of a half-read "-hq" from the last call */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, shortopts.buf, longopts, NULL)) != -1) {
		size_t index = (size_t)-1;
		if (c == 'h') {
			char *help = config_help_text(prog);
			fputs(help, stdout);
			free(help);
			outcome = CONFIG_EXIT_OK;
			goto done;
		}
		if (c == 'V') {
			print_version(prog);
			outcome = CONFIG_EXIT_OK;
			goto done;
		}
		if (c == '?') {
			/* optopt is 0 for an unknown long option, the letter for an
			 * unknown short one, and a valid option's val for a long
			 * option that takes no value but was given one (--quiet=yes);
			 * getopt has then moved optind past it. */
			char opt[64];
			if (optopt >= LONG_OPT_VAL || optopt == 'h' || optopt == 'V') {
				option_as_written(argv[optind - 1], opt, sizeof(opt));
				outcome = usage_error(err, prog->name,
						      "option \"%s\" does not take a value", opt);
			} else if (optopt) {
				outcome = usage_error(err, prog->name,
						      "unrecognized option \"-%c\"", optopt);
			} else {
				option_as_written(argv[optind - 1], opt, sizeof(opt));
				outcome = usage_error(err, prog->name, "unrecognized option \"%s\"",
						      opt);
			}
			goto done;
		}
		if (c == ':') {
			char opt[64];
			if (optopt < LONG_OPT_VAL)
				snprintf(opt, sizeof(opt), "-%c", optopt);
			else
				option_as_written(argv[optind - 1], opt, sizeof(opt));
			outcome = usage_error(err, prog->name, "missing argument for option \"%s\"",
					      opt);
			goto done;
		}
		if (c >= LONG_OPT_VAL) {
			index = (size_t)(c - LONG_OPT_VAL);
		} else {
			for (size_t i = 0;; i++) {
				const struct cfg_option *o = option_at(prog, i);
				if (!o)
					break;
				if (o->short_opt == c && option_active(prog, i)) {
					index = i;
					break;
				}
			}
		}
		const struct cfg_option *o = option_at(prog, index);
		if (!o) {
			outcome = usage_error(err, prog->name, "unrecognized option \"%s\"",
					      argv[optind - 1]);
			goto done;
		}
		if (o->flags & CFG_SECRET_REFUSED) {
			cw_error_set(err, CW_EXIT_USAGE,
				     "the API token cannot be given on the command line (--%s)",
				     o->long_opt);
			cw_error_detail(err, "Command lines are visible to other users in ps(1) "
					     "and are kept in shell history.");
			cw_error_hint(err, "Set MAILERLITE_API_KEY in the environment, or name a "
					   "file readable only by its owner in api_key_file.");
			outcome = CONFIG_ERROR;
			goto done;
		}
		values = xreallocarray(values, nvalues + 1, sizeof(*values));
		values[nvalues].index = index;
		values[nvalues].value = o->type == CFG_FLAG ? NULL : optarg;
		nvalues++;
	}
	rest_argv = argv + optind;
	rest_count = argc - optind;

	/* Defaults, then the file, then the environment, then argv. */
	if (apply_defaults(cfg, prog) < 0) {
		cw_error_set(err, CW_EXIT_SOFTWARE, "a built-in default does not parse");
		outcome = CONFIG_ERROR;
		goto done;
	}
	/* --config, else $CROSSWALK_CONFIG, else the system file when present.
	 * A file named explicitly must exist. */
	const char *file = NULL;
	for (size_t i = 0; i < nvalues; i++)
		if (is_config_option(option_at(prog, values[i].index)))
			file = values[i].value;
	if (file && !*file) {
		cw_error_set(err, CW_EXIT_USAGE, "option \"--config\" needs a file name, not \"\"");
		cw_error_hint(err, "Try \"%s --help\" for more information.", prog->name);
		outcome = CONFIG_ERROR;
		goto done;
	}
	if (!file)
		file = getenv("CROSSWALK_CONFIG");
	if (!file || !*file)
		file = access(CONFIG_SYSTEM_FILE, F_OK) == 0 ? CONFIG_SYSTEM_FILE : NULL;
	if (file) {
		free(cfg->config_file);
		cfg->config_file = xstrdup(file);
		if (config_load_file(cfg, prog, file, err) < 0) {
			outcome = CONFIG_ERROR;
			goto done;
		}
	}
	if (apply_environment(cfg, prog, err) < 0) {
		outcome = CONFIG_ERROR;
		goto done;
	}
	for (size_t i = 0; i < nvalues; i++) {
		const struct cfg_option *o = option_at(prog, values[i].index);
		char why[400];
		if (is_config_option(o))
			continue;
		if (assign(cfg, o, values[i].value, why, sizeof(why)) < 0) {
			cw_error_set(err, CW_EXIT_USAGE, "option --%s: %s", o->long_opt, why);
			cw_error_hint(err, "Try \"%s --help\" for more information.", prog->name);
			outcome = CONFIG_ERROR;
			goto done;
		}
	}
	if (cfg->api_key_file && *cfg->api_key_file) {
		/* The environment's token wins, but the file is still checked. */
		struct stat st;
		bool from_env = getenv("MAILERLITE_API_KEY") && *getenv("MAILERLITE_API_KEY");
		int rc = !from_env ? read_key_file(cfg, err)
			 : stat(cfg->api_key_file, &st) == 0
			     ? refuse_exposed_key_file(cfg->api_key_file, &st, err)
			     : 0;
		if (rc < 0) {
			outcome = CONFIG_ERROR;
			goto done;
		}
	}
	if (validate(cfg, err) < 0)
		outcome = CONFIG_ERROR;
done:
	free(longopts);
	free(values);
	strbuf_release(&shortopts);
	return outcome;
}

/* ---------- lifecycle and names ---------- */

void config_init(struct cw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

void config_release(struct cw_config *cfg)
{
	char **strings[] = { &cfg->db_conninfo,	 &cfg->schema,	     &cfg->api_url,
			     &cfg->api_key_file, &cfg->api_version,  &cfg->a_table,
			     &cfg->a_key,	 &cfg->a_email,	     &cfg->a_updated_at,
			     &cfg->a_status,	 &cfg->a_groups,     &cfg->namespace,
			     &cfg->config_file };
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
	if (cfg->api_key) {
		explicit_bzero(cfg->api_key, strlen(cfg->api_key));
		free(cfg->api_key);
	}
	for (size_t i = 0; i < cfg->nfields; i++) {
		free(cfg->fields[i].a_column);
		free(cfg->fields[i].b_field);
	}
	free(cfg->fields);
	free_list(&cfg->managed_groups, &cfg->nmanaged_groups);
	memset(cfg, 0, sizeof(*cfg));
}

static const char *const policy_names[] = { "skip", "a-wins", "b-wins", "newest" };
static const char *const direction_names[] = { "both", "a-to-b", "b-to-a" };

const char *config_policy_name(int policy)
{
	if (policy >= 0 && policy < 4)
		return policy_names[policy];
	return "default";
}

const char *config_direction_name(enum cw_direction dir)
{
	return (unsigned)dir < 3 ? direction_names[dir] : "both";
}

int config_parse_policy(const char *text)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(text, policy_names[i]))
			return i;
	return -1;
}

int config_parse_direction(const char *text)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(text, direction_names[i]))
			return i;
	return -1;
}

/* One part of a table name as PostgreSQL reads it (new string): "Quoted"
 * keeps its case and loses its quotes ("" stands for one "); unquoted folds
 * to lower case (ASCII, as PostgreSQL does for multibyte encodings). */
static char *identifier_part(const char *text, size_t len)
{
	char *out = xstrndup(text, len);

	if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
		size_t w = 0;
		for (size_t r = 1; r + 1 < len; r++) {
			out[w++] = text[r];
			if (text[r] == '"' && text[r + 1] == '"')
				r++;
		}
		out[w] = '\0';
	} else {
		for (char *p = out; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	return out;
}

void config_a_table_parts(const struct cw_config *cfg, char **schema, char **table)
{
	const char *name = cfg->a_table;
	const char *dot = NULL;
	bool quoted = false;

	for (const char *p = name; *p && !dot; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '.' && !quoted)
			dot = p;
	}
	if (dot) {
		*schema = identifier_part(name, (size_t)(dot - name));
		*table = identifier_part(dot + 1, strlen(dot + 1));
	} else {
		*schema = xstrdup("public");
		*table = identifier_part(name, strlen(name));
	}
}
