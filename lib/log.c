/* Diagnostic lines on stderr, shaped like the PostgreSQL client tools'. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *progname = "crosswalk";
static enum log_level level = LOG_LEVEL_INFO;
static int stderr_tty = -1;
static void (*bar_clear)(void);
static void (*bar_redraw)(void);
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_init(const char *name)
{
	progname = name;
	stderr_tty = isatty(STDERR_FILENO);
}

const char *log_progname(void)
{
	return progname;
}

void log_set_level(enum log_level l)
{
	level = l;
}

enum log_level log_get_level(void)
{
	return level;
}

bool log_stderr_is_tty(void)
{
	if (stderr_tty < 0)
		stderr_tty = isatty(STDERR_FILENO);
	return stderr_tty;
}

void log_set_bar_hooks(void (*clear)(void), void (*redraw)(void))
{
	pthread_mutex_lock(&log_lock);
	bar_clear = clear;
	bar_redraw = redraw;
	pthread_mutex_unlock(&log_lock);
}

static void emit(const char *tag, const char *fmt, va_list ap)
{
	char stamp[64] = "";

	if (!log_stderr_is_tty()) {
		struct timeval tv;
		struct tm tm;

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(stamp + n, sizeof(stamp) - n, ".%03dZ ", (int)(tv.tv_usec / 1000));
	}
	pthread_mutex_lock(&log_lock);
	if (bar_clear)
		bar_clear();
	/* One write per line: lines of several processes sharing stderr
	 * (chunk-worker's workers) never interleave. */
	char line[4096];
	int n = stamp[0] ? snprintf(line, sizeof(line), "%s[%ld] %s: ", stamp, (long)getpid(),
				    progname)
			 : snprintf(line, sizeof(line), "%s: ", progname);
	if (tag && n >= 0 && (size_t)n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", tag);
	if (n >= 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2; /* a longer line is cut */
	line[n++] = '\n';
	line[n] = '\0';
	fputs(line, stderr);
	fflush(stderr);
	if (bar_redraw)
		bar_redraw();
	pthread_mutex_unlock(&log_lock);
}

#define LOG_FN(name, lvl, tag)                  \
	void name(const char *fmt, ...)         \
	{                                       \
		va_list ap;                     \
		if (level < (lvl))              \
			return;                 \
		va_start(ap, fmt);              \
		emit(tag, fmt, ap);             \
		va_end(ap);                     \
	}

LOG_FN(log_error, LOG_LEVEL_ERROR, "error")
LOG_FN(log_warning, LOG_LEVEL_WARNING, "warning")
LOG_FN(log_info, LOG_LEVEL_INFO, NULL)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, "debug")
LOG_FN(log_detail, LOG_LEVEL_ERROR, "detail")
LOG_FN(log_hint, LOG_LEVEL_ERROR, "hint")

void log_cw_error(const struct cw_error *err)
{
	log_error("%s", err->msg[0] ? err->msg : "unknown error");
	if (err->detail[0])
		log_detail("%s", err->detail);
	if (err->hint[0])
		log_hint("%s", err->hint);
}
