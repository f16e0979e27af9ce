/* Worker processes under one supervisor: fork, forward signals, gather. */
#include "workerpool.h"
#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 64
/* A child's report: "C what parent index start end\n" per chunk, then
 * "S end {figures}\n" (worker_stats_json), or "E code message\n" on an
 * error. */
#define LINE_MAX_LEN 1024

static pid_t children[MAX_WORKERS];
static volatile sig_atomic_t nchildren;

static void forward_signal(int signo)
{
	int saved = errno;
	for (int i = 0; i < nchildren; i++)
		if (children[i] > 0)
			kill(children[i], signo);
	errno = saved;
}

/* ---- in the child ---- */

static void child_on_chunk(void *arg, const char *what, const struct queue_chunk *c)
{
	dprintf(*(int *)arg, "C %s %lld %d %lld %lld\n", what, c->parent_id, c->chunk_index,
		c->start_offset, c->end_offset);
}

static void child_main(const struct cw_config *cfg, const struct worker_options *o, int fd)
{
	struct worker_options mine = *o;
	struct worker_stats st;
	struct cw_error err = { 0 };
	enum worker_end end;

	mine.on_chunk = child_on_chunk;
	mine.arg = &fd;
	if (worker_run(cfg, &mine, &st, &end, &err) < 0) {
		log_cw_error(&err);
		/* One line: newlines of the message would break the report. */
		for (char *p = err.msg; *p; p++)
			if (*p == '\n')
				*p = ' ';
		dprintf(fd, "E %d %s\n", err.code ? err.code : CW_EXIT_SOFTWARE, err.msg);
		_exit(1);
	}
	json_t *figures = worker_stats_json(&st);
	char *text = json_dumps(figures, JSON_COMPACT);
	dprintf(fd, "S %d %s\n", (int)end, text ? text : "{}");
	free(text);
	json_decref(figures);
	_exit(0);
}

/* ---- in the supervisor ---- */

/* The worst of two ends: a stop outranks a deadline, a deadline an empty queue. */
static enum worker_end worse_end(enum worker_end a, enum worker_end b)
{
	if (a == WORKER_STOPPED || b == WORKER_STOPPED)
		return WORKER_STOPPED;
	return a == WORKER_DEADLINE || b == WORKER_DEADLINE ? WORKER_DEADLINE : WORKER_EMPTY;
}

struct child {
	int fd;
	bool reported;
	char buf[LINE_MAX_LEN];
	size_t len;
};

static void take_line(const struct worker_options *o, struct pool_stats *ps, struct child *ch,
		      char *line, struct cw_error *err)
{
	if (line[0] == 'C' && o->on_chunk) {
		char what[16];
		struct queue_chunk c = { 0 };
		if (sscanf(line, "C %15s %lld %d %lld %lld", what, &c.parent_id, &c.chunk_index,
			   &c.start_offset, &c.end_offset) == 5)
			o->on_chunk(o->arg, what, &c);
	} else if (line[0] == 'S') {
		struct worker_stats s;
		int end = 0, at = 0;
		json_t *figures = NULL;
		if (sscanf(line, "S %d %n", &end, &at) >= 1 && at > 0 &&
		    (figures = json_loads(line + at, 0, NULL))) {
			worker_stats_from_json(figures, &s);
			json_decref(figures);
			worker_stats_add(&ps->sum, &s);
			ps->end = worse_end(ps->end, (enum worker_end)end);
			ch->reported = true;
		}
	} else if (line[0] == 'E') {
		int code = CW_EXIT_SOFTWARE, at = 0;
		if (sscanf(line, "E %d %n", &code, &at) >= 1 && !ps->workers_failed)
			cw_error_set(err, code, "%s", line + at);
		ps->workers_failed++;
		ch->reported = true;
	}
}

/* Read what a child wrote; false at its end. */
static bool read_child(const struct worker_options *o, struct pool_stats *ps, struct child *ch,
		       struct cw_error *err)
{
	ssize_t got = read(ch->fd, ch->buf + ch->len, sizeof(ch->buf) - 1 - ch->len);
	if (got < 0 && errno == EINTR)
		return true;
	if (got <= 0)
		return false;
	ch->len += (size_t)got;
	ch->buf[ch->len] = '\0';
	char *start = ch->buf, *nl;
	while ((nl = strchr(start, '\n'))) {
		*nl = '\0';
		take_line(o, ps, ch, start, err);
		start = nl + 1;
	}
	ch->len -= (size_t)(start - ch->buf);
	memmove(ch->buf, start, ch->len);
	if (ch->len == sizeof(ch->buf) - 1)
		ch->len = 0; /* a line this long is no report of ours */
	return true;
}

static int supervise(const struct worker_options *o, struct child *kids, int n,
		     struct pool_stats *ps, struct cw_error *err)
{
	int open_pipes = n;

	while (open_pipes > 0) {
		struct pollfd fds[MAX_WORKERS];
		for (int i = 0; i < n; i++)
			fds[i] = (struct pollfd){ kids[i].fd, POLLIN, 0 };
		if (poll(fds, (nfds_t)n, 1000) < 0 && errno != EINTR)
			return cw_error_set(err, CW_EXIT_SOFTWARE, "poll: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			if (kids[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (!read_child(o, ps, &kids[i], err)) {
				close(kids[i].fd);
				kids[i].fd = -1;
				open_pipes--;
				if (!kids[i].reported)
					ps->workers_killed++;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		int status = 0;
		while (waitpid(children[i], &status, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(status))
			log_warning("worker %ld was ended by signal %d%s", (long)children[i],
				    WTERMSIG(status), kids[i].reported ? "" : ", without its report");
	}
	return 0;
}

int pool_run(const struct cw_config *cfg, const struct worker_options *o, int n,
	     struct pool_stats *ps, struct cw_error *err)
{
	struct child kids[MAX_WORKERS];
	struct sigaction sa, old_int, old_term;

	memset(ps, 0, sizeof(*ps));
	ps->end = WORKER_EMPTY;
	if (n <= 1) {
		ps->workers = 1;
		if (worker_run(cfg, o, &ps->sum, &ps->end, err) < 0) {
			ps->workers_failed = 1;
			return -1;
		}
		return 0;
	}
	if (n > MAX_WORKERS)
		return cw_error_set(err, CW_EXIT_USAGE, "at most %d workers per process",
				    MAX_WORKERS);
	fflush(NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	for (int i = 0; i < n; i++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0) {
			cw_error_set(err, CW_EXIT_SOFTWARE, "pipe: %s", strerror(errno));
			n = i;
			break;
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			/* The child's signals come from the supervisor, and its
			 * end from the supervisor's. */
			sigaction(SIGINT, &old_int, NULL);
			sigaction(SIGTERM, &old_term, NULL);
			setpgid(0, 0);
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			for (int j = 0; j < i; j++)
				close(kids[j].fd);
			child_main(cfg, o, p[1]);
		}
		close(p[1]);
		if (pid < 0) {
			close(p[0]);
			cw_error_set(err, CW_EXIT_SOFTWARE, "fork: %s", strerror(errno));
			n = i;
			break;
		}
		children[i] = pid;
		nchildren = i + 1;
		kids[i] = (struct child){ .fd = p[0] };
	}
	ps->workers = n;
	int rc = supervise(o, kids, n, ps, err);
	nchildren = 0;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (rc < 0)
		return -1;
	if (ps->workers_failed == n)
		return -1;
	if (ps->workers_killed)
		ps->end = WORKER_STOPPED;
	return 0;
}
