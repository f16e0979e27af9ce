/* Settings: precedence, the file's errors, secrets, parsing of values, argv. */
#include "config.h"
#include "exitcode.h"
#include "tap.h"
#include "xalloc.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int own_limit;

static const struct cfg_option own_options[] = {
	{ NULL, NULL, "limit", 0, NULL, CFG_INT, 0, 1000, "10", NULL, "N", "stop after N records",
	  0, 0, &own_limit },
	{ 0 },
};

/* A program that takes every shared option, and one that takes none. */
static const struct cfg_program prog_all = {
	"cw-test",
	"cw-test [OPTION]...",
	"exercises the settings",
	own_options,
	CFG_TAKES_BATCH | CFG_TAKES_DURATION | CFG_TAKES_DRY_RUN,
};

static const struct cfg_option no_options[] = { { 0 } };

/* A program whose synopsis and help text are wider than a terminal. */
static bool long_flag;
static const struct cfg_option long_options[] = {
	{ NULL, NULL, "take-over", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "take over a run that looks alive, even one updated under ninety seconds ago", 0, 0,
	  &long_flag },
	{ 0 },
};

static const struct cfg_program prog_long = {
	"cw-long",
	"cw-long [-nqv] [-c file] [-d conninfo] [--batch-size n] [--max-duration time] "
	"[--restart | --take-over]",
	"has long lines",
	long_options,
	CFG_TAKES_BATCH | CFG_TAKES_DURATION | CFG_TAKES_DRY_RUN,
};

static const struct cfg_program prog_plain = {
	"cw-plain", "cw-plain [OPTION]...", "takes only the common options", no_options, 0,
};

static struct cw_config cfg;
static struct cw_error err;
static char tmpdir[] = "/tmp/cw-config-test-XXXXXX";
static char *paths[64];
static size_t npaths;
static const char *empty_conf;

/* ---------- helpers ---------- */

/* Write a file in the test's directory; the path lives until the end. */
static const char *file(const char *name, mode_t mode, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fchmod(fd, mode) < 0 || close(fd) < 0) {
		diag("could not write %s", path);
		exit(1);
	}
	for (size_t i = 0; i < npaths; i++) {
		if (!strcmp(paths[i], path)) {
			free(path);
			return paths[i];
		}
	}
	if (npaths == sizeof(paths) / sizeof(paths[0])) {
		diag("too many test files");
		exit(1);
	}
	paths[npaths++] = path;
	return path;
}

/* Only what a case sets is in the environment; CROSSWALK_CONFIG points at an
 * empty file so that a machine's /etc/crosswalk.conf stays out of the tests. */
static void clean_env(void)
{
	static const char *vars[] = { "CROSSWALK_CONFIG",   "CROSSWALK_SCHEMA",
				      "CROSSWALK_NAMESPACE", "DATABASE_URL",
				      "MAILERLITE_API_URL", "MAILERLITE_API_KEY" };

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	setenv("CROSSWALK_CONFIG", empty_conf, 1);
}

/* config_parse_args(prog, argv) into the globals cfg and err; the argument
 * list ends with NULL. The previous run's settings are released first. */
static enum config_outcome parse(const struct cfg_program *prog, ...)
{
	static char *argv[32];
	int argc = 0;
	va_list ap;

	config_release(&cfg);
	config_init(&cfg);
	memset(&err, 0, sizeof(err));
	argv[argc++] = (char *)prog->name;
	va_start(ap, prog);
	for (const char *a; (a = va_arg(ap, const char *)) && argc < 31;)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return config_parse_args(&cfg, prog, argc, argv, &err);
}

/* parse() with the config file made of text. */
static enum config_outcome parse_file(const char *text)
{
	setenv("CROSSWALK_CONFIG", file("case.conf", 0600, text), 1);
	return parse(&prog_all, NULL);
}

static bool contains(const char *where, const char *text, const char *what)
{
	bool found = where && strstr(where, text);

	ok(found, "%s names \"%s\"", what, text);
	if (!found)
		diag("    in: %s", where ? where : "(null)");
	return found;
}

static bool fails_with(enum config_outcome out, int code, const char *what)
{
	bool good = out == CONFIG_ERROR && err.code == code;

	ok(good, "%s: error with status %d", what, code);
	if (!good)
		diag("    outcome %d, code %d, message: %s", (int)out, err.code, err.msg);
	return good;
}

/* A config file error: status 78, the message starts with path:line: and
 * names each of the given words. */
static void file_error(const char *what, const char *text, int line, const char *word1,
		       const char *word2)
{
	char where[600];
	enum config_outcome out = parse_file(text);

	fails_with(out, CW_EXIT_CONFIG, what);
	snprintf(where, sizeof(where), "%s/case.conf:%d: ", tmpdir, line);
	ok(!strncmp(err.msg, where, strlen(where)), "%s: message starts with file:%d:", what,
	   line);
	if (strncmp(err.msg, where, strlen(where)))
		diag("    message: %s", err.msg);
	if (word1)
		contains(err.msg, word1, what);
	if (word2)
		contains(err.msg, word2, what);
}

static enum config_outcome quietly(const struct cfg_program *prog, const char *arg)
{
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	int null = open("/dev/null", O_WRONLY);
	dup2(null, STDOUT_FILENO);
	close(null);
	enum config_outcome out = parse(prog, arg, NULL);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	return out;
}

/* ---------- precedence ---------- */

static void precedence(void)
{
	const char *schema_file = file("schema.conf", 0600,
				       "[database]\nschema = from_file\n"
				       "[sync]\nbatch_size = 250\n");

	clean_env();
	is_int(parse(&prog_all, NULL), CONFIG_OK, "no settings anywhere: OK");
	is_str(cfg.schema, "sync", "schema: the built-in default");
	is_int(cfg.batch_size, 500, "batch_size: the built-in default");
	is_str(cfg.namespace, "default", "namespace: the built-in default");
	is_int(cfg.page_size, 1000, "page_size: the built-in default");
	is_int(cfg.max_response_bytes, 32L * 1024 * 1024, "max_response_bytes: default 32M");
	is_str(cfg.a_table, "public.clients", "table.name: the built-in default");
	ok(cfg.db_conninfo == NULL, "no database URL: libpq's PG* variables decide");
	is_int(own_limit, 10, "a program's own option gets its default");

	setenv("CROSSWALK_CONFIG", schema_file, 1);
	is_int(parse(&prog_all, NULL), CONFIG_OK, "file only: OK");
	is_str(cfg.schema, "from_file", "schema: the file beats the default");
	is_int(cfg.batch_size, 250, "batch_size: the file beats the default");
	is_str(cfg.config_file, schema_file, "config_file names the file read");

	setenv("CROSSWALK_SCHEMA", "from_env", 1);
	parse(&prog_all, NULL);
	is_str(cfg.schema, "from_env", "schema: the environment beats the file");
	setenv("CROSSWALK_SCHEMA", "", 1);
	parse(&prog_all, NULL);
	is_str(cfg.schema, "from_file", "schema: an empty environment variable is not set");

	setenv("CROSSWALK_SCHEMA", "from_env", 1);
	is_int(parse(&prog_all, "--schema", "from_opt", "--batch-size", "100", NULL), CONFIG_OK,
	       "options, environment and file: OK");
	is_str(cfg.schema, "from_opt", "schema: the option beats the environment");
	is_int(cfg.batch_size, 100, "batch_size: the option beats the file");
	parse(&prog_all, "--schema=from_opt", "-b", "7", NULL);
	is_str(cfg.schema, "from_opt", "--schema=VALUE form");
	is_int(cfg.batch_size, 7, "-b N form");
	parse(&prog_all, "--batch-size=9", "--batch-size=11", NULL);
	is_int(cfg.batch_size, 11, "the last of a repeated option wins");

	unsetenv("CROSSWALK_SCHEMA");
	fails_with(parse(&prog_plain, "--batch-size", "100", NULL), CW_EXIT_USAGE,
		   "--batch-size on a program without CFG_TAKES_BATCH");
	is_int(parse(&prog_plain, NULL), CONFIG_OK, "the file's batch_size without the option");
	is_int(cfg.batch_size, 250, "batch_size from the file still applies");

	/* The database URL: --db > DATABASE_URL > [database] url. */
	setenv("CROSSWALK_CONFIG", file("db.conf", 0600, "[database]\nurl = dbname=file\n"), 1);
	parse(&prog_all, NULL);
	is_str(cfg.db_conninfo, "dbname=file", "database url from the file");
	setenv("DATABASE_URL", "dbname=env", 1);
	parse(&prog_all, NULL);
	is_str(cfg.db_conninfo, "dbname=env", "DATABASE_URL beats the file");
	parse(&prog_all, "-d", "dbname=opt", NULL);
	is_str(cfg.db_conninfo, "dbname=opt", "-d beats DATABASE_URL");
	unsetenv("DATABASE_URL");

	/* MAILERLITE_API_URL overrides the file. */
	setenv("CROSSWALK_CONFIG",
	       file("url.conf", 0600, "[mailerlite]\napi_url = https://file.example/api\n"), 1);
	parse(&prog_all, NULL);
	is_str(cfg.api_url, "https://file.example/api", "api_url from the file");
	setenv("MAILERLITE_API_URL", "http://127.0.0.1:8080/api", 1);
	parse(&prog_all, NULL);
	is_str(cfg.api_url, "http://127.0.0.1:8080/api", "MAILERLITE_API_URL beats the file");

	/* Flags and a program's own option. */
	clean_env();
	parse(&prog_all, "-q", "--verbose", "--dry-run", "--limit", "42", "--max-duration", "2h",
	      NULL);
	ok(cfg.quiet && cfg.verbose && cfg.dry_run && !cfg.check_config, "flags set");
	is_int(own_limit, 42, "a program's own option is set");
	is_int(cfg.max_duration, 7200, "--max-duration 2h is 7200 s");
	fails_with(parse(&prog_plain, "--dry-run", NULL), CW_EXIT_USAGE,
		   "--dry-run on a program without CFG_TAKES_DRY_RUN");
	fails_with(parse(&prog_all, "--limit", "1001", NULL), CW_EXIT_USAGE,
		   "a program's option out of range");

	/* Arguments that are not options are left for the program. */
	int count = -1;
	parse(&prog_all, "one", "--quiet", "two", NULL);
	char **rest = config_rest(&count);
	is_int(count, 2, "two non-option arguments");
	if (count == 2) {
		is_str(rest[0], "one", "first argument");
		is_str(rest[1], "two", "second argument");
	}
	ok(cfg.quiet, "an option after an argument is still an option");
	parse(&prog_all, "--", "--quiet", NULL);
	rest = config_rest(&count);
	ok(count == 1 && !strcmp(rest[0], "--quiet") && !cfg.quiet,
	   "after --, options are arguments");
}

/* ---------- which file ---------- */

static void which_file(void)
{
	const char *a = file("a.conf", 0600, "[database]\nschema = from_a\n");
	const char *b = file("b.conf", 0600, "[database]\nschema = from_b\n");
	char missing[400];

	snprintf(missing, sizeof(missing), "%s/no-such.conf", tmpdir);
	clean_env();
	setenv("CROSSWALK_CONFIG", a, 1);
	parse(&prog_all, NULL);
	is_str(cfg.schema, "from_a", "CROSSWALK_CONFIG names the file");
	is_str(cfg.config_file, a, "config_file is CROSSWALK_CONFIG's file");
	parse(&prog_all, "--config", b, NULL);
	is_str(cfg.schema, "from_b", "--config beats CROSSWALK_CONFIG");
	is_str(cfg.config_file, b, "config_file is --config's file");
	parse(&prog_all, "-c", b, NULL);
	is_str(cfg.schema, "from_b", "-c FILE");

	fails_with(parse(&prog_all, "--config", missing, NULL), CW_EXIT_CONFIG,
		   "--config naming a missing file");
	contains(err.msg, missing, "the missing --config file's error");
	setenv("CROSSWALK_CONFIG", missing, 1);
	fails_with(parse(&prog_all, NULL), CW_EXIT_CONFIG,
		   "CROSSWALK_CONFIG naming a missing file");
	contains(err.msg, missing, "the missing CROSSWALK_CONFIG file's error");
	is_int(parse(&prog_all, "--config", a, NULL), CONFIG_OK,
	       "--config beats a CROSSWALK_CONFIG that does not exist");

	unsetenv("CROSSWALK_CONFIG");
	if (access("/etc/crosswalk.conf", F_OK) == 0) {
		ok(true, "# SKIP /etc/crosswalk.conf exists on this machine");
		ok(true, "# SKIP /etc/crosswalk.conf exists on this machine");
	} else {
		is_int(parse(&prog_all, NULL), CONFIG_OK, "no file at all: OK");
		ok(cfg.config_file == NULL, "no file at all: config_file is NULL");
	}
	clean_env();
}

/* ---------- errors in the file ---------- */

static void file_errors(void)
{
	clean_env();
	file_error("unknown key", "[database]\nschema = x\nschemaa = y\n", 3, "schemaa", NULL);
	file_error("unknown section", "[database]\nschema = x\n[databse]\nurl = y\n", 4, "databse",
		   NULL);
	file_error("key before any section", "schema = x\n", 1, "schema", NULL);
	file_error("bad integer", "[sync]\nbatch_size = lots\n", 2, "batch_size", "lots");
	file_error("integer with trailing junk", "[sync]\nbatch_size = 12abc\n", 2, "batch_size",
		   "12abc");
	file_error("out of range (low)", "[sync]\nbatch_size = 0\n", 2, "batch_size", "range");
	file_error("out of range (high)", "\n[mailerlite]\npage_size = 5001\n", 3, "page_size",
		   "range");
	file_error("integer overflow", "[sync]\nbatch_size = 99999999999999999999\n", 2,
		   "batch_size", NULL);
	file_error("bad boolean", "[groups]\ncreate_missing = maybe\n", 2, "create_missing",
		   "maybe");
	file_error("bad policy", "[sync]\nconflict_policy = a_wins\n", 2, "conflict_policy",
		   "a_wins");
	file_error("bad policy in [conflicts]",
		   "[fields]\ncompany = company\n[conflicts]\ncompany = sometimes\n", 4, "company",
		   "sometimes");
	file_error("bad direction", "[fields]\nfirst_name = name\nphone = phone sideways\n", 3,
		   "phone", "sideways");
	file_error("bad MailerLite field name", "[fields]\nfirst_name = Name\n", 2, "first_name",
		   "Name");
	file_error("a field mapped twice (same B field)",
		   "[fields]\nfirst_name = name\nfname = name\n", 3, "fname", "name");
	file_error("a column mapped twice", "[fields]\nfirst_name = name\nfirst_name = given\n", 3,
		   "first_name", NULL);
	file_error("[conflicts] names a field not in [fields]",
		   "[fields]\nfirst_name = name\n[conflicts]\ncompany = a-wins\n", 4, "company",
		   "[fields]");
	file_error("syntax error", "[database]\nschema sync\n", 2, NULL, NULL);
	file_error("bad duration", "[mailerlite]\ntimeout = 5x\n", 2, "timeout", "5x");
	file_error("bad size", "[mailerlite]\nmax_response_bytes = 10Q\n", 2, "max_response_bytes",
		   "10Q");
	file_error("size out of range", "[mailerlite]\nmax_response_bytes = 2G\n", 2,
		   "max_response_bytes", "range");

	/* With several mistakes the message is about the first one, whole. */
	file_error("two errors: the first is reported",
		   "[sync]\nbatch_size = lots\n\nnamespace_typo = x\n", 2, "batch_size", "lots");
	file_error("syntax error before a bad value: the syntax error is reported",
		   "[sync]\nthis line has no equals sign\nbatch_size = lots\n", 2, "syntax", NULL);

	/* A line longer than inih's default buffer (200 bytes) is read whole. */
	char text[700], url[500];
	memset(url, 'x', 300);
	memcpy(url, "host=db.example.com dbname=", 27);
	url[300] = '\0';
	snprintf(text, sizeof(text), "[database]\nurl = %s\n", url);
	is_int(parse_file(text), CONFIG_OK, "a 306-character line is accepted");
	if (err.code)
		diag("    message: %s", err.msg);
	is_str(cfg.db_conninfo, url, "a 306-character line is read whole");

	/* A line too long even for the larger buffer is refused, never split. */
	char *huge = xmalloc(5100);
	memset(huge, 'x', 5000);
	huge[5000] = '\0';
	char *huge_text = xasprintf("[database]\nschema = s\nurl = %s\nretries = 1\n", huge);
	file_error("a 5006-character line", huge_text, 3, "longer than", "url");
	free(huge_text);
	free(huge);

	/* Validation after reading. */
	fails_with(parse_file("[table]\nname =\n"), CW_EXIT_CONFIG, "empty table.name");
	contains(err.msg, "table.name", "the empty setting's error");
	fails_with(parse_file("[mailerlite]\napi_url = ftp://x\n"), CW_EXIT_CONFIG,
		   "api_url not http(s)");
	fails_with(parse_file("[sync]\nnamespace = two words\n"), CW_EXIT_CONFIG,
		   "namespace with a space");
	is_int(parse_file("; a comment\n# another\n[sync]\nnamespace = staging ; inline\n"),
	       CONFIG_OK, "comments are allowed");
	is_str(cfg.namespace, "staging", "an inline comment is not part of the value");

	/* config_load_file on its own reports the same way. */
	struct cw_config c;
	config_init(&c);
	memset(&err, 0, sizeof(err));
	is_int(config_load_file(&c, &prog_all, file("direct.conf", 0600, "[sync]\nbogus = 1\n"),
				&err),
	       -1, "config_load_file returns -1 on an unknown key");
	is_int(err.code, CW_EXIT_CONFIG, "config_load_file: status 78");
	config_release(&c);
}

/* ---------- the API token ---------- */

static void secrets(void)
{
	clean_env();
	fails_with(parse_file("[mailerlite]\napi_key = s3cr3t\n"), CW_EXIT_CONFIG,
		   "api_key in the file");
	contains(err.msg, "api_key", "api_key in the file: the error");
	contains(err.msg, "MAILERLITE_API_KEY", "api_key in the file: the error");
	ok(!strstr(err.msg, "s3cr3t"), "the secret is not repeated in the message");
	fails_with(parse_file("[mailerlite]\ntoken = s3cr3t\n"), CW_EXIT_CONFIG,
		   "token in the file");

	const char *argvs[][2] = {
		{ "--api-key", "s3cr3t" },     { "--api-key=s3cr3t", NULL },
		{ "--token", "s3cr3t" },       { "--token=s3cr3t", NULL },
		{ "--mailerlite-api-key=s3cr3t", NULL },
		{ "--api-k=s3cr3t", NULL }, /* getopt_long takes unique abbreviations */
	};
	for (size_t i = 0; i < sizeof(argvs) / sizeof(argvs[0]); i++) {
		enum config_outcome out = parse(&prog_all, argvs[i][0], argvs[i][1], NULL);
		if (fails_with(out, CW_EXIT_USAGE, argvs[i][0]))
			contains(err.hint, "MAILERLITE_API_KEY", "the hint");
		ok(!strstr(err.msg, "s3cr3t") && !strstr(err.detail, "s3cr3t") &&
			   !strstr(err.hint, "s3cr3t"),
		   "%s: the secret is not repeated", argvs[i][0]);
	}
	fails_with(parse(&prog_all, "--api-key", NULL), CW_EXIT_USAGE, "--api-key without value");

	char missing[400];
	snprintf(missing, sizeof(missing), "%s/no-such.key", tmpdir);
	const char *open_key = file("open.key", 0644, "s3cr3t\n");
	const char *group_key = file("group.key", 0640, "s3cr3t\n");
	const char *own_key = file("own.key", 0600, "  key-123 \t\nsecond line\n");
	const char *ro_key = file("ro.key", 0400, "key-ro");
	const char *empty_key = file("empty.key", 0600, " \n");
	char text[600];

	snprintf(text, sizeof(text), "[mailerlite]\napi_key_file = %s\n", open_key);
	fails_with(parse_file(text), CW_EXIT_CONFIG, "a key file with mode 0644");
	contains(err.msg, open_key, "the open key file's error");
	contains(err.hint, "chmod 600", "the open key file's hint");
	ok(cfg.api_key == NULL || !strstr(cfg.api_key, "s3cr3t"), "an open key file is not used");

	snprintf(text, sizeof(text), "[mailerlite]\napi_key_file = %s\n", group_key);
	fails_with(parse_file(text), CW_EXIT_CONFIG, "a key file with mode 0640");

	snprintf(text, sizeof(text), "[mailerlite]\napi_key_file = %s\n", own_key);
	is_int(parse_file(text), CONFIG_OK, "a key file with mode 0600");
	is_str(cfg.api_key, "key-123", "the key is the first line, trimmed");
	is_str(cfg.api_key_file, own_key, "api_key_file is kept");

	snprintf(text, sizeof(text), "[mailerlite]\napi_key_file = %s\n", ro_key);
	is_int(parse_file(text), CONFIG_OK, "a key file with mode 0400, no newline");
	is_str(cfg.api_key, "key-ro", "the read-only key");

	snprintf(text, sizeof(text), "[mailerlite]\napi_key_file = %s\n", empty_key);
	fails_with(parse_file(text), CW_EXIT_CONFIG, "an empty key file");
	snprintf(text, sizeof(text), "[mailerlite]\napi_key_file = %s\n", missing);
	fails_with(parse_file(text), CW_EXIT_CONFIG, "a missing key file");
	contains(err.msg, missing, "the missing key file's error");

	setenv("MAILERLITE_API_KEY", "from-env", 1);
	snprintf(text, sizeof(text), "[mailerlite]\napi_key_file = %s\n", own_key);
	is_int(parse_file(text), CONFIG_OK, "MAILERLITE_API_KEY and a key file");
	is_str(cfg.api_key, "from-env", "MAILERLITE_API_KEY wins over the key file");
	snprintf(text, sizeof(text), "[mailerlite]\napi_key_file = %s\n", open_key);
	fails_with(parse_file(text), CW_EXIT_CONFIG,
		   "with MAILERLITE_API_KEY set, an open key file is still refused");
	is_str(cfg.api_key, "from-env", "the environment's key");
	clean_env();
	is_int(parse(&prog_all, NULL), CONFIG_OK, "no key anywhere is not a config error");
	ok(cfg.api_key == NULL, "no key anywhere: api_key is NULL");
}

/* ---------- values ---------- */

static const struct cw_field *field(const char *a_column)
{
	for (size_t i = 0; i < cfg.nfields; i++)
		if (!strcmp(cfg.fields[i].a_column, a_column))
			return &cfg.fields[i];
	return NULL;
}

static void values(void)
{
	const struct cw_field *f;

	clean_env();
	is_int(parse_file("[conflicts]\nname = a-wins\n"
			  "[fields]\n"
			  "first_name = name\n"
			  "phone = phone a-to-b\n"
			  "city = city, b-to-a\n"
			  "zip =   zip\tboth  \n"
			  "[conflicts]\n"
			  "city = b-wins\n"),
	       CONFIG_OK, "[fields] and [conflicts] parse");
	is_int((long long)cfg.nfields, 4, "four fields");
	f = field("first_name");
	ok(f && !strcmp(f->b_field, "name") && f->direction == CW_DIR_BOTH,
	   "first_name = name: both ways");
	ok(f && f->policy == CW_POLICY_A_WINS,
	   "[conflicts] before [fields], by B field name, applies");
	f = field("phone");
	ok(f && !strcmp(f->b_field, "phone") && f->direction == CW_DIR_A_TO_B,
	   "phone = phone a-to-b");
	ok(f && f->policy == CW_POLICY_DEFAULT, "no [conflicts] entry: the config's policy");
	f = field("city");
	ok(f && !strcmp(f->b_field, "city") && f->direction == CW_DIR_B_TO_A,
	   "city = city, b-to-a");
	ok(f && f->policy == CW_POLICY_B_WINS, "[conflicts] by column name applies");
	f = field("zip");
	ok(f && !strcmp(f->b_field, "zip") && f->direction == CW_DIR_BOTH,
	   "tabs and spaces around the direction");
	is_int(cfg.conflict_policy, CW_POLICY_NEWEST, "conflict_policy default newest");

	is_int(parse_file("[sync]\nconflict_policy = b-wins\ninitial_policy = skip\n"
			  "import_new = YES\n"),
	       CONFIG_OK, "policies and a boolean");
	is_int(cfg.conflict_policy, CW_POLICY_B_WINS, "conflict_policy b-wins");
	is_int(cfg.initial_policy, CW_POLICY_SKIP, "initial_policy skip");
	ok(cfg.import_new, "import_new = YES is true");

	/* [groups] */
	is_int(parse_file("[groups]\nmanaged =  Customers , Newsletter,, ,VIP Club ,\n"
			  "create_missing = on\n"),
	       CONFIG_OK, "[groups] parses");
	is_int((long long)cfg.nmanaged_groups, 3, "three managed groups, empty items dropped");
	if (cfg.nmanaged_groups == 3) {
		is_str(cfg.managed_groups[0], "Customers", "first group trimmed");
		is_str(cfg.managed_groups[1], "Newsletter", "second group");
		is_str(cfg.managed_groups[2], "VIP Club", "inner space kept");
	}
	ok(cfg.create_groups, "create_missing = on is true");
	is_int(parse_file("[groups]\nmanaged =\ncreate_missing = 0\n"), CONFIG_OK,
	       "empty managed list");
	is_int((long long)cfg.nmanaged_groups, 0, "empty managed list: no groups");
	ok(!cfg.create_groups, "create_missing = 0 is false");
	is_int(parse_file("[groups]\nmanaged = A, B\nmanaged = C\n"), CONFIG_OK,
	       "managed given twice");
	ok(cfg.nmanaged_groups == 1 && !strcmp(cfg.managed_groups[0], "C"),
	   "the later managed list replaces the earlier");

	/* Durations and sizes */
	struct {
		const char *text;
		long want;
	} durations[] = { { "90", 90 }, { "90s", 90 }, { "2m", 120 }, { "1h", 3600 } };
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		char text[100];
		snprintf(text, sizeof(text), "[mailerlite]\ntimeout = %s\n", durations[i].text);
		parse_file(text);
		is_int(cfg.http_timeout, durations[i].want, "duration %s", durations[i].text);
	}
	fails_with(parse_file("[mailerlite]\ntimeout = 2h\n"), CW_EXIT_CONFIG,
		   "duration 2h above the 1h maximum");
	fails_with(parse_file("[mailerlite]\ntimeout = -5\n"), CW_EXIT_CONFIG,
		   "negative duration");
	clean_env();
	parse(&prog_all, "--max-duration=1d", NULL);
	is_int(cfg.max_duration, 86400, "--max-duration 1d");
	fails_with(parse(&prog_all, "--max-duration", "5x", NULL), CW_EXIT_USAGE,
		   "--max-duration 5x");
	contains(err.msg, "--max-duration", "the bad option value's error");
	contains(err.hint, "Try \"cw-test --help\"", "the bad option value's hint");
	fails_with(parse(&prog_all, "--batch-size=abc", NULL), CW_EXIT_USAGE, "--batch-size=abc");

	parse_file("[mailerlite]\nmax_response_bytes = 32M\n");
	is_int(cfg.max_response_bytes, 33554432, "size 32M");
	parse_file("[mailerlite]\nmax_response_bytes = 64k\n");
	is_int(cfg.max_response_bytes, 65536, "size 64k");
	parse_file("[mailerlite]\nmax_response_bytes = 1G\n");
	is_int(cfg.max_response_bytes, 1073741824, "size 1G (the maximum)");
	parse_file("[mailerlite]\nmax_response_bytes = 5000\n");
	is_int(cfg.max_response_bytes, 5000, "size without a unit");
	fails_with(parse_file("[mailerlite]\nmax_response_bytes = 4095\n"), CW_EXIT_CONFIG,
		   "size under the minimum");
}

/* ---------- the command line ---------- */

static size_t longest_line(const char *text)
{
	size_t longest = 0;

	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		if (n > longest)
			longest = n;
		p += n + (p[n] == '\n');
	}
	return longest;
}

static void after_cluster(const char *first, const char *arg1, const char *arg2);

static void command_line(void)
{
	clean_env();
	fails_with(parse(&prog_all, "--bogus", NULL), CW_EXIT_USAGE, "unknown long option");
	contains(err.msg, "--bogus", "unknown long option's error");
	contains(err.hint, "Try \"cw-test --help\" for more information.",
		 "unknown long option's hint");
	fails_with(parse(&prog_all, "-Z", NULL), CW_EXIT_USAGE, "unknown short option");
	contains(err.msg, "-Z", "unknown short option's error");
	contains(err.hint, "Try \"cw-test --help\"", "unknown short option's hint");
	fails_with(parse(&prog_all, "--quiet=yes", NULL), CW_EXIT_USAGE,
		   "an argument to a flag");
	contains(err.msg, "--quiet", "an argument to a flag: the error");
	contains(err.msg, "does not take a value", "an argument to a flag: the error");
	fails_with(parse(&prog_all, "--help=yes", NULL), CW_EXIT_USAGE, "an argument to --help");
	contains(err.msg, "--help", "an argument to --help: the error");
	fails_with(parse(&prog_all, "--bogus=s3cr3t", NULL), CW_EXIT_USAGE,
		   "unknown long option with a value");
	ok(!strstr(err.msg, "s3cr3t"), "an unknown option's value is not repeated");
	fails_with(parse(&prog_all, "--schema", NULL), CW_EXIT_USAGE, "missing argument (long)");
	contains(err.msg, "--schema", "missing argument (long): the error");
	contains(err.hint, "Try \"cw-test --help\"", "missing argument's hint");
	fails_with(parse(&prog_all, "-c", NULL), CW_EXIT_USAGE, "missing argument (short)");
	contains(err.msg, "-c", "missing argument (short): the error");

	/* --help and --version come before any file. */
	char missing[400];
	snprintf(missing, sizeof(missing), "%s/no-such.conf", tmpdir);
	setenv("CROSSWALK_CONFIG", missing, 1);
	is_int(quietly(&prog_all, "--help"), CONFIG_EXIT_OK, "--help: exit 0");
	is_int(quietly(&prog_all, "-h"), CONFIG_EXIT_OK, "-h: exit 0");
	is_int(quietly(&prog_all, "--version"), CONFIG_EXIT_OK, "--version: exit 0");
	is_int(quietly(&prog_all, "-V"), CONFIG_EXIT_OK, "-V: exit 0");
	is_int(err.code, 0, "--version sets no error");
	clean_env();

	char *help = config_help_text(&prog_all);
	contains(help, "--batch-size=N", "help of a CFG_TAKES_BATCH program");
	contains(help, "--limit=N", "help lists the program's own options");
	contains(help, "cw-test [OPTION]...", "help shows the synopsis");
	ok(!strstr(help, "api-key") && !strstr(help, "--token"), "help hides refused options");
	size_t longest = longest_line(help);
	ok(longest <= 80, "help fits 80 columns (longest line %zu)", longest);
	free(help);
	help = config_help_text(&prog_long);
	longest = longest_line(help);
	ok(longest <= 80, "long synopsis and help wrapped to 80 columns (longest line %zu)",
	   longest);
	bool wrapped = strstr(help, "\n  cw-long [-nqv] [-c file]") &&
		       strstr(help, "\n          [--restart | --take-over]\n") &&
		       strstr(help, "\n                              under ninety seconds ago\n");
	ok(wrapped, "continuations under the first argument and under the help column, "
		    "a synopsis group kept whole");
	if (longest > 80 || !wrapped)
		diag("%s", help);
	free(help);
	help = config_help_text(&prog_plain);
	ok(!strstr(help, "--batch-size") && !strstr(help, "--dry-run") &&
		   !strstr(help, "--max-duration"),
	   "help of a program without CFG_TAKES_* omits those options");
	free(help);

	/* getopt's state does not leak from one call into the next: stopping in
	 * the middle of a cluster of short options ("-Zq", "-hq") leaves glibc's
	 * getopt pointing into the old argv unless it is fully reset. Each case
	 * runs in a child, so that a crash is a failed test. */
	after_cluster("-Zq", "--schema", "s");
	after_cluster("-hq", NULL, NULL);
	after_cluster("-hq", "--schema", "s");
}

static void after_cluster(const char *first, const char *arg1, const char *arg2)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, STDOUT_FILENO);
		parse(&prog_all, first, NULL);
		enum config_outcome out = parse(&prog_all, arg1, arg2, NULL);
		int code = out != CONFIG_OK ? 1 : cfg.quiet ? 2 : 0;
		config_release(&cfg);
		_exit(code);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "a call after \"%s\" parses its own argv only", first);
	if (WIFSIGNALED(status))
		diag("    the second call died of signal %d", WTERMSIG(status));
	else if (WEXITSTATUS(status) == 1)
		diag("    the second call failed");
	else if (WEXITSTATUS(status) == 2)
		diag("    the q left over from the first call was applied to the second");
}

/* ---------- [guards] ---------- */

static void guards(void)
{
	clean_env();
	is_int(parse(&prog_plain, NULL), CONFIG_OK, "no [guards] anywhere: OK");
	is_int(cfg.guard_breaker_errors, 3, "guards.breaker_errors: default 3");
	is_int(cfg.guard_breaker_window, 600, "guards.breaker_window: default 10m");
	is_int(cfg.guard_breaker_cooldown, 300, "guards.breaker_cooldown: default 5m");
	is_int(cfg.guard_daily_limit, 5000, "guards.daily_limit: default 5000");
	is_int(cfg.guard_max_db_latency_ms, 500, "guards.max_db_latency_ms: default 500");
	is_int(cfg.guard_min_free_connections, 3, "guards.min_free_connections: default 3");

	/* Shared keys: a program with no options of its own reads them too. */
	setenv("CROSSWALK_CONFIG",
	       file("guards.conf", 0600,
		    "[guards]\nbreaker_errors = 1000\nbreaker_window = 7d\n"
		    "breaker_cooldown = 1s\ndaily_limit = 0\nmax_db_latency_ms = 600000\n"
		    "min_free_connections = 0\n"),
	       1);
	is_int(parse(&prog_plain, NULL), CONFIG_OK, "[guards] at its bounds: OK");
	is_int(cfg.guard_breaker_errors, 1000, "breaker_errors 1000");
	is_int(cfg.guard_breaker_window, 7 * 86400, "breaker_window 7d");
	is_int(cfg.guard_breaker_cooldown, 1, "breaker_cooldown 1s");
	is_int(cfg.guard_daily_limit, 0, "daily_limit 0 (no limit)");
	is_int(cfg.guard_max_db_latency_ms, 600000, "max_db_latency_ms 600000");
	is_int(cfg.guard_min_free_connections, 0, "min_free_connections 0");

	static const struct {
		const char *line, *key;
	} bad[] = {
		{ "breaker_errors = 0", "guards.breaker_errors" },
		{ "breaker_errors = 1001", "guards.breaker_errors" },
		{ "breaker_window = 0", "guards.breaker_window" },
		{ "breaker_window = 8d", "guards.breaker_window" },
		{ "breaker_window = 10 minutes", "guards.breaker_window" },
		{ "breaker_cooldown = 0", "guards.breaker_cooldown" },
		{ "breaker_cooldown = 5x", "guards.breaker_cooldown" },
		{ "daily_limit = -1", "guards.daily_limit" },
		{ "daily_limit = 1000000001", "guards.daily_limit" },
		{ "max_db_latency_ms = 0", "guards.max_db_latency_ms" },
		{ "max_db_latency_ms = 600001", "guards.max_db_latency_ms" },
		{ "min_free_connections = -1", "guards.min_free_connections" },
		{ "min_free_connections = many", "guards.min_free_connections" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[200];
		snprintf(text, sizeof(text), "[guards]\n%s\n", bad[i].line);
		file_error(bad[i].line, text, 2, bad[i].key, NULL);
	}
	file_error("a misspelt [guards] key", "[guards]\nbreaker_error = 3\n", 2,
		   "breaker_error", "[guards]");
	clean_env();
}

/* ---------- the A table's name ---------- */

static void table_part(const char *name, const char *schema, const char *table)
{
	struct cw_config c;
	char *s = NULL, *t = NULL;

	config_init(&c);
	c.a_table = xstrdup(name);
	config_a_table_parts(&c, &s, &t);
	is_str(s, schema, "schema of %s", name);
	is_str(t, table, "table of %s", name);
	free(s);
	free(t);
	config_release(&c);
}

static void table_parts(void)
{
	table_part("public.clients", "public", "clients");
	table_part("clients", "public", "clients");
	table_part("\"My Schema\".\"Cli.ents\"", "My Schema", "Cli.ents");
	table_part("a.\"b\"\"c\"", "a", "b\"c");
	table_part("\"a.b\"", "public", "a.b");
	table_part("\"x\"\"y\".t", "x\"y", "t");
	/* Unquoted names fold to lower case, as in SQL. */
	table_part("Sales.Clients", "sales", "clients");
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	empty_conf = file("empty.conf", 0600, "");
	config_init(&cfg);

	precedence();
	which_file();
	file_errors();
	secrets();
	values();
	command_line();
	table_parts();
	guards();

	config_release(&cfg);
	for (size_t i = 0; i < npaths; i++) {
		unlink(paths[i]);
		free(paths[i]);
	}
	rmdir(tmpdir);
	return done_testing();
}
