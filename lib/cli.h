/*
 * One startup and shutdown for every program: the program name, fds 0-2
 * open, SIGPIPE ignored, SIGINT/SIGTERM turned into a flag the job polls
 * (a second signal ends the process at once), cleanups run in reverse order,
 * and the JSON result written to stdout with its write checked.
 */
#ifndef CW_CLI_H
#define CW_CLI_H

#include <stdbool.h>

#include "config.h"

/* Call first in main(). Sets the log's program name to argv[0]'s basename. */
void cli_init(int argc, char **argv);
const char *cli_progname(void);

/* Parse the command line and settings (config_parse_args), answer --help and
 * --version, report errors, and set the log level from --quiet/--verbose.
 * Returns -1 when the job should run, else the exit status for main().
 * takes_args: whether non-option arguments are allowed (config_rest()). */
int cli_start(struct cw_config *cfg, const struct cfg_program *prog, int argc, char **argv,
	      bool takes_args);

/* True once SIGINT or SIGTERM arrived; the job saves its place and exits 3. */
bool cli_interrupted(void);
/* The signal number that interrupted, or 0. */
int cli_interrupt_signal(void);
/* For tests and for jobs that stop themselves: raise the flag by hand. */
void cli_request_stop(int signo);

/* Graceful stops (chunk-worker): while deferred, the first SIGINT or
 * SIGTERM only asks the job to stop (cli_stop_asked()), so that the work in
 * hand can finish; cli_escalate() later turns the request into the
 * interrupt (cli_interrupted(), the hooks run: queries and transfers in
 * flight are cancelled). A second signal still ends the process at once. */
void cli_defer_signals(bool on);
bool cli_stop_asked(void);
void cli_escalate(void);

/* Run fn(arg) inside the signal handler when the first signal arrives: only
 * async-signal-safe work (PQcancel is). At most 8 hooks; returns a handle
 * for cli_signal_hook_remove(), or -1 when full. */
int cli_signal_hook_add(void (*fn)(void *), void *arg);
void cli_signal_hook_remove(int handle);

/* Sleep up to ms milliseconds, waking early when interrupted. Returns false
 * when the sleep was cut short by a signal. */
bool cli_sleep_ms(long ms);

/* Register a cleanup run by cli_exit() in reverse order of registration. */
void cli_atexit(void (*fn)(void *), void *arg);

/* Print the JSON text and a newline on stdout. Returns 0, or -1 (after
 * logging why) when stdout could not be written. */
int cli_write_result(const char *json_text);

/* Run the cleanups, flush and close stdout; a failed write turns status
 * into CW_EXIT_IOERR. Returns the status for main() to return. */
int cli_exit(int status);

/* Monotonic clock in milliseconds, for budgets and rates. */
long long cli_now_ms(void);

#endif
