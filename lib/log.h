/*
 * Messages on stderr in the PostgreSQL tools' grammar:
 *   prog: error: could not connect to "db": ...
 *   prog: detail: Full sentence.
 *   prog: hint: Full sentence.
 * When stderr is not a terminal every line starts with a UTC timestamp and
 * the pid, for logs collected from cron or systemd. Thread-safe per line.
 */
#ifndef CW_LOG_H
#define CW_LOG_H

#include <stdbool.h>

#include "error.h"

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* progname is borrowed and must outlive logging (argv[0]'s basename is fine). */
void log_init(const char *progname);
const char *log_progname(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* True when stderr is a terminal (decides the line prefix and the bar). */
bool log_stderr_is_tty(void);

void log_error(const char *fmt, ...) CW_PRINTF(1, 2);
void log_warning(const char *fmt, ...) CW_PRINTF(1, 2);
void log_info(const char *fmt, ...) CW_PRINTF(1, 2);
void log_debug(const char *fmt, ...) CW_PRINTF(1, 2);
void log_detail(const char *fmt, ...) CW_PRINTF(1, 2);
void log_hint(const char *fmt, ...) CW_PRINTF(1, 2);

/* error: msg, then detail: and hint: lines when the error has them. */
void log_cw_error(const struct cw_error *err);

/* A progress bar owns the last terminal line: log lines call clear() before
 * they print and redraw() after. Either may be NULL. */
void log_set_bar_hooks(void (*clear)(void), void (*redraw)(void));

#endif
