/*
 * Settings from one declarative table: command-line option > environment >
 * INI file (libinih) > built-in default. The same table drives getopt_long,
 * --help, validation and the documentation test.
 *
 * Every program:
 *   struct cw_config cfg;
 *   config_init(&cfg);
 *   switch (config_parse_args(&cfg, &prog, argc, argv, &err)) { ... }
 *   config_release(&cfg);
 */
#ifndef CW_CONFIG_H
#define CW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

enum cw_direction {
	CW_DIR_BOTH,
	CW_DIR_A_TO_B,
	CW_DIR_B_TO_A,
};

enum cw_policy {
	CW_POLICY_DEFAULT = -1, /* per-field override absent: use the config's policy */
	CW_POLICY_SKIP,
	CW_POLICY_A_WINS,
	CW_POLICY_B_WINS,
	CW_POLICY_NEWEST,
};

/* One line of [fields]: a_column = b_field [direction]. */
struct cw_field {
	char *a_column;
	char *b_field;
	enum cw_direction direction;
	enum cw_policy policy; /* from [conflicts], or CW_POLICY_DEFAULT */
};

/* The settings every program shares. Strings are owned by the config. */
struct cw_config {
	/* [database] */
	char *db_conninfo;	/* --db, DATABASE_URL; NULL: libpq's PG* variables */
	char *schema;		/* bookkeeping schema, default "sync" */
	long db_connect_timeout; /* seconds */
	int db_retries;		/* reconnect attempts after a lost connection */

	/* [mailerlite] */
	char *api_url;		/* MAILERLITE_API_URL overrides */
	char *api_key;		/* MAILERLITE_API_KEY or the key file; never from argv */
	char *api_key_file;
	char *api_version;	/* optional X-Version header */
	int page_size;		/* list page size to ask for; the server's cap wins */
	long http_timeout;	/* seconds for a whole request */
	long http_connect_timeout;
	long max_response_bytes;
	int http_retries;
	int rate_limit;		/* requests per minute for the whole account; 0 = off */
	int import_rate_limit;	/* import batches per minute; 0 = off */
	int batch_size;		/* records per batch (backfill), requests per /batch elsewhere */

	/* [table]: the A side, the user's own table (never created or altered) */
	char *a_table;		/* schema-qualified or bare: "public.clients" */
	char *a_key;
	char *a_email;
	char *a_updated_at;
	char *a_status;		/* optional: column mapped to B's status */
	char *a_groups;		/* optional: text[] column of group names */

	/* [fields] and [conflicts] */
	struct cw_field *fields;
	size_t nfields;

	/* [groups] */
	char **managed_groups;
	size_t nmanaged_groups;
	bool create_groups;

	/* [sync] */
	char *namespace;
	int conflict_policy;	/* enum cw_policy */
	int initial_policy;	/* enum cw_policy */
	bool import_new;

	/* [guards]: limits a scheduled job checks before it runs */
	int guard_breaker_errors;	/* failed runs within the window that open the breaker */
	long guard_breaker_window;	/* seconds */
	long guard_breaker_cooldown;	/* seconds the breaker stays open */
	int guard_daily_limit;		/* records per UTC day; 0 = no limit */
	int guard_max_db_latency_ms;
	int guard_min_free_connections;

	/* run options shared by programs */
	char *config_file;	/* the file read, or NULL */
	bool quiet;
	bool verbose;
	bool dry_run;
	bool check_config;
	long max_duration;	/* seconds; 0 = no limit */
};

enum cfg_type {
	CFG_STRING,
	CFG_INT,
	CFG_LONG,	/* integers with an optional size suffix k, M, G; stored as long */
	CFG_BOOL,	/* true/false, yes/no, on/off, 1/0 */
	CFG_FLAG,	/* a command-line switch without argument, sets a bool */
	CFG_DURATION,	/* seconds, or with a unit: 90s, 2m, 1h; stored as long */
	CFG_POLICY,	/* skip, a-wins, b-wins, newest */
	CFG_LIST,	/* comma-separated, stored as char ** + count (next field) */
	CFG_ENUM,	/* one of .choices, stored as char * */
};

#define CFG_SECRET_REFUSED 0x01 /* an option that exists only to refuse a secret on argv */
#define CFG_NO_HELP 0x02	/* not listed in --help (aliases) */

struct cfg_option {
	const char *section;	/* INI section, or NULL: command line only */
	const char *key;	/* INI key */
	const char *long_opt;	/* --long-opt, or NULL: file/environment only */
	int short_opt;		/* 'q', or 0 */
	const char *env;	/* environment variable, or NULL */
	enum cfg_type type;
	long min, max;		/* bounds for CFG_INT, CFG_LONG, CFG_DURATION */
	const char *def;	/* default in the file's syntax, or NULL */
	const char *choices;	/* CFG_ENUM: "a|b|c" */
	const char *argname;	/* --help: --batch-size=N */
	const char *help;	/* one line for --help */
	unsigned flags;
	size_t offset;		/* into struct cw_config, when dest is NULL */
	void *dest;		/* a program's own variable */
};

/* What a program adds to the shared table: its name, usage synopsis (the
 * same text as its man page SYNOPSIS), a one-line purpose, its own options
 * (ended by an entry with key == NULL && long_opt == NULL), and which shared
 * command-line options it takes. */
#define CFG_TAKES_DRY_RUN 0x01
#define CFG_TAKES_BATCH 0x02
#define CFG_TAKES_DURATION 0x04

struct cfg_program {
	const char *name;
	const char *synopsis;
	const char *purpose;
	const struct cfg_option *options;
	unsigned takes;
};

void config_init(struct cw_config *cfg);
void config_release(struct cw_config *cfg);

enum config_outcome {
	CONFIG_OK,		/* run the job */
	CONFIG_EXIT_OK,		/* --help or --version was printed: exit 0 */
	CONFIG_ERROR,		/* err is set: usage (64) or configuration (78) */
};

/* Parse argv, read the config file and the environment, apply defaults and
 * validate. --help and --version are answered before any file is read.
 * Non-option arguments are left in argv[optind..] (see config_rest). */
enum config_outcome config_parse_args(struct cw_config *cfg, const struct cfg_program *prog,
				      int argc, char **argv, struct cw_error *err);
/* The non-option arguments left after config_parse_args(). Borrowed. */
char **config_rest(int *count);

/* Lower-level pieces, for tests: load one INI file. Its errors read
 * "FILE:LINE: reason" (the earliest one when there are several). */
int config_load_file(struct cw_config *cfg, const struct cfg_program *prog, const char *path,
		     struct cw_error *err);

/* The full --help text for the program (new string, caller frees). */
char *config_help_text(const struct cfg_program *prog);

/* Names for the enums (static strings). */
const char *config_policy_name(int policy);
const char *config_direction_name(enum cw_direction dir);
int config_parse_policy(const char *text);
int config_parse_direction(const char *text);

/* The [table] name split into schema and table (new strings), read as
 * PostgreSQL reads identifiers: an unquoted part folds to lower case, a
 * "Quoted" part keeps its case and loses its quotes. schema is "public" when
 * the name is bare. */
void config_a_table_parts(const struct cw_config *cfg, char **schema, char **table);

#endif
