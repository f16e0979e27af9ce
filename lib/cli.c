/* Process start-up, signals, cleanups and the final write of the result. */
#include "cli.h"
#include "exitcode.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLEANUPS 32
#define MAX_HOOKS 8

static const char *progname = "crosswalk";
static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t signal_count;
static volatile sig_atomic_t deferred, stop_asked;

static struct {
	void (*fn)(void *);
	void *arg;
} cleanups[MAX_CLEANUPS];
static int ncleanups;

static struct {
	void (*volatile fn)(void *);
	void *volatile arg;
} hooks[MAX_HOOKS];

/* Async-signal-safe: the hooks only cancel (PQcancel). */
static void run_hooks(void)
{
	for (int i = 0; i < MAX_HOOKS; i++) {
		void (*fn)(void *) = hooks[i].fn;
		if (fn)
			fn(hooks[i].arg);
	}
}

static void on_signal(int signo)
{
	int saved = errno;

	if (++signal_count > 1) {
		/* A second signal: the operator means it. Crash safety makes this
		 * safe; the next run resumes from the last saved cursor. */
		signal(signo, SIG_DFL);
		raise(signo);
		return;
	}
	if (deferred) {
		stop_asked = signo;
		errno = saved;
		return;
	}
	stop_signal = signo;
	run_hooks();
	errno = saved;
}

static void keep_standard_fds_open(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* A closed fd 1 would let the next open() file receive our JSON. */
		int nul = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (nul < 0)
			_exit(CW_EXIT_SOFTWARE);
		if (nul != fd) {
			dup2(nul, fd);
			close(nul);
		}
	}
}

void cli_init(int argc, char **argv)
{
	struct sigaction sa;

	keep_standard_fds_open();
	if (argc > 0 && argv[0] && argv[0][0]) {
		const char *slash = strrchr(argv[0], '/');
		progname = slash ? slash + 1 : argv[0];
	}
	log_init(progname);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: blocking waits return EINTR and notice */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cli_start(struct cw_config *cfg, const struct cfg_program *prog, int argc, char **argv,
	      bool takes_args)
{
	struct cw_error err;
	int nrest;

	switch (config_parse_args(cfg, prog, argc, argv, &err)) {
	case CONFIG_EXIT_OK:
		return CW_EXIT_OK;
	case CONFIG_ERROR:
		log_cw_error(&err);
		return err.code;
	case CONFIG_OK:
		break;
	}
	config_rest(&nrest);
	if (nrest > 0 && !takes_args) {
		/* Not echoed: a token pasted by mistake must not reach a log. */
		log_error("%s takes no arguments, and %d %s given", prog->name, nrest,
			  nrest == 1 ? "was" : "were");
		log_hint("Try \"%s --help\" for more information.", prog->name);
		return CW_EXIT_USAGE;
	}
	if (cfg->quiet)
		log_set_level(LOG_LEVEL_ERROR);
	else if (cfg->verbose)
		log_set_level(LOG_LEVEL_DEBUG);
	return -1;
}

const char *cli_progname(void)
{
	return progname;
}

bool cli_interrupted(void)
{
	return stop_signal != 0;
}

int cli_interrupt_signal(void)
{
	return stop_signal;
}

void cli_request_stop(int signo)
{
	stop_signal = signo ? signo : SIGTERM;
}

void cli_defer_signals(bool on)
{
	deferred = on;
}

bool cli_stop_asked(void)
{
	return stop_asked != 0 || stop_signal != 0;
}

void cli_escalate(void)
{
	if (stop_signal)
		return;
	stop_signal = stop_asked ? stop_asked : SIGTERM;
	run_hooks();
}

int cli_signal_hook_add(void (*fn)(void *), void *arg)
{
	for (int i = 0; i < MAX_HOOKS; i++) {
		if (!hooks[i].fn) {
			hooks[i].arg = arg;
			hooks[i].fn = fn;
			return i;
		}
	}
	return -1;
}

void cli_signal_hook_remove(int handle)
{
	if (handle >= 0 && handle < MAX_HOOKS) {
		hooks[handle].fn = NULL;
		hooks[handle].arg = NULL;
	}
}

bool cli_sleep_ms(long ms)
{
	long long end = cli_now_ms() + ms;

	while (!cli_interrupted()) {
		long long left = end - cli_now_ms();
		if (left <= 0)
			return true;
		/* Slices: in a threaded process the signal may land elsewhere. */
		long slice = left > 100 ? 100 : (long)left;
		struct timespec ts = { slice / 1000, (slice % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	return false;
}

void cli_atexit(void (*fn)(void *), void *arg)
{
	if (ncleanups < MAX_CLEANUPS) {
		cleanups[ncleanups].fn = fn;
		cleanups[ncleanups].arg = arg;
		ncleanups++;
	}
}

int cli_write_result(const char *json_text)
{
	if (fputs(json_text, stdout) == EOF || fputc('\n', stdout) == EOF ||
	    fflush(stdout) == EOF) {
		log_error("could not write the result to standard output: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int cli_exit(int status)
{
	while (ncleanups > 0) {
		ncleanups--;
		cleanups[ncleanups].fn(cleanups[ncleanups].arg);
	}
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF) {
		if (errno != EBADF) {
			log_error("could not write to standard output: %s", strerror(errno));
			return CW_EXIT_IOERR;
		}
	}
	return status;
}

long long cli_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
