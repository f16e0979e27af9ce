/* The progress bar on stderr for long jobs, drawn in place and kept out of the log's way. */
#include "progress.h"
#include "log.h"
#include "xalloc.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_MS 100		/* at most 10 draws a second */
#define RATE_TAU_MS 3000.0	/* the rate forgets with a time constant of 3 s */
#define BAR_MIN 10		/* narrower than this, the bar is left out */
#define DEFAULT_WIDTH 80
#define LINE_BYTES 512

struct progress {
	char *label;
	long long total;
	long long done;
	bool enabled;	/* draws at all */
	bool started;	/* progress_update() was called */
	bool drawn;	/* the line is on the terminal (or was, before a log line) */
	bool suspended;	/* between a log line's clear() and its redraw() */
	bool finished;
	long long first_ms, first_done; /* the first update: the rate counts from there */
	long long sample_ms, sample_done;
	long long last_draw_ms;
	double rate;	/* items per second, smoothed; < 0 until measured */
	/* Guards line, drawn, suspended and finished against the log hooks,
	 * which run on whichever thread logs. */
	pthread_mutex_t lock;
	pthread_cond_t resumed; /* signalled by redraw(): suspended is false again */
	char line[LINE_BYTES];
};

/* The bar that owns the log hooks. Written only before the hooks are set
 * and after they are removed; log_set_bar_hooks() takes the log's mutex,
 * under which the hooks run, so they never see it change. */
static struct progress *active;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int terminal_width(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return DEFAULT_WIDTH;
}

/* ---------- pure formatting ---------- */

/* 1234567 -> "1,234,567": big counts stay readable at a glance. */
static void group_digits(long long v, char *buf, size_t len)
{
	char raw[32];
	int n = snprintf(raw, sizeof(raw), "%lld", v < 0 ? 0 : v);
	size_t o = 0;

	for (int i = 0; i < n && o + 1 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0 && o + 2 < len)
			buf[o++] = ',';
		buf[o++] = raw[i];
	}
	buf[o] = '\0';
}

static void format_rate(double rate, char *buf, size_t len)
{
	if (!(rate >= 0) || !isfinite(rate) || rate >= 1e15) {
		snprintf(buf, len, "--/s");
	} else if (rate < 9.95) {
		snprintf(buf, len, "%.1f/s", rate);
	} else {
		char n[40];
		group_digits(llround(rate), n, sizeof(n));
		snprintf(buf, len, "%s/s", n);
	}
}

void progress_format_eta(double seconds, char *buf, size_t len)
{
	if (!buf || !len)
		return;
	if (!isfinite(seconds) || seconds < 0 || seconds >= 100 * 3600.0 - 0.5) {
		snprintf(buf, len, "--:--");
		return;
	}
	long long s = llround(seconds);
	long long h = s / 3600, m = s / 60 % 60, sec = s % 60;
	if (h)
		snprintf(buf, len, "%lld:%02lld:%02lld", h, m, sec);
	else
		snprintf(buf, len, "%lld:%02lld", m, sec);
}

/* Cut a label to at most n bytes without splitting a UTF-8 sequence. */
static size_t label_cut(const char *label, size_t n)
{
	size_t len = strlen(label);

	if (len <= n)
		return len;
	while (n > 0 && ((unsigned char)label[n] & 0xC0) == 0x80)
		n--;
	return n;
}

int progress_render(char *buf, size_t len, int width, const char *label, long long done,
		    long long total, double rate)
{
	char count[32], tot[32], speed[48], eta[32], stats[160], brief[96], middle[128];

	if (!buf || !len)
		return 0;
	buf[0] = '\0';
	if (width < 2)
		return 0;
	size_t avail = (size_t)width - 1;
	if (avail > len - 1)
		avail = len - 1;
	if (!label)
		label = "";
	if (done < 0)
		done = 0;

	group_digits(done, count, sizeof(count));
	format_rate(rate, speed, sizeof(speed));
	double frac = 0;
	if (total > 0) {
		frac = done >= total ? 1.0 : (double)done / (double)total;
		int pct = done >= total ? 100 : (int)(frac * 100.0);
		double left = done >= total ? 0 : rate > 0 ? (double)(total - done) / rate : -1;
		group_digits(total, tot, sizeof(tot));
		progress_format_eta(left, eta, sizeof(eta));
		/* Fixed widths keep the bar from jittering as the numbers grow. */
		int cw = (int)strlen(tot);
		snprintf(stats, sizeof(stats), "%*s/%s %3d%%  %9s  ETA %5s", cw, count, tot, pct,
			 speed, eta);
		snprintf(brief, sizeof(brief), "%*s/%s %3d%%", cw, count, tot, pct);
		snprintf(middle, sizeof(middle), "%s  ETA %5s", brief, eta);
	} else {
		snprintf(stats, sizeof(stats), "%s  %s", count, speed);
		snprintf(brief, sizeof(brief), "%s", count);
		snprintf(middle, sizeof(middle), "%s", brief);
	}

	size_t llen = strlen(label);
	size_t lpart = llen ? llen + 1 : 0; /* "label " */
	size_t slen = strlen(stats), mlen = strlen(middle), blen = strlen(brief);
	int n;

	if (total > 0 && avail >= lpart + slen + 3 + BAR_MIN) {
		/* label [=====>      ] stats: the bar takes what is left. */
		size_t inner = avail - lpart - slen - 3;
		size_t fill = (size_t)(frac * (double)inner);
		if (fill > inner)
			fill = inner;
		size_t o = 0;
		if (llen) {
			memcpy(buf, label, llen);
			buf[llen] = ' ';
			o = lpart;
		}
		buf[o++] = '[';
		for (size_t i = 0; i < inner; i++)
			buf[o++] = i < fill ? '=' : i == fill ? '>' : ' ';
		buf[o++] = ']';
		buf[o++] = ' ';
		memcpy(buf + o, stats, slen + 1);
		return (int)(o + slen);
	}
	if (lpart + slen <= avail)
		n = snprintf(buf, len, "%s%s%s", label, llen ? " " : "", stats);
	else if (lpart + mlen <= avail)
		n = snprintf(buf, len, "%s%s%s", label, llen ? " " : "", middle);
	else if (lpart + blen <= avail)
		n = snprintf(buf, len, "%s%s%s", label, llen ? " " : "", brief);
	else if (blen + 2 <= avail && llen)
		n = snprintf(buf, len, "%.*s %s", (int)label_cut(label, avail - blen - 1), label,
			     brief);
	else
		n = snprintf(buf, len, "%.*s", (int)avail, brief);
	return n < 0 ? 0 : (size_t)n > avail ? (int)avail : n;
}

/* ---------- the terminal ---------- */

/* Call with p->lock held. One fputs so the line goes out in one write. */
static void put_line(struct progress *p, bool newline)
{
	char out[LINE_BYTES + 16];

	snprintf(out, sizeof(out), "\r%s\033[K%s", p->line, newline ? "\n" : "");
	flockfile(stderr);
	fputs(out, stderr);
	fflush(stderr);
	funlockfile(stderr);
	p->drawn = true;
}

/* The log hooks run under log.c's mutex on the thread that logs: they only
 * take the bar's own lock and write to stderr, never log. */
static void hook_clear(void)
{
	struct progress *p = active;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->drawn && !p->finished && !p->suspended) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->suspended = true;
	pthread_mutex_unlock(&p->lock);
}

static void hook_redraw(void)
{
	struct progress *p = active;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->suspended = false;
	if (p->drawn && !p->finished)
		put_line(p, false);
	pthread_cond_broadcast(&p->resumed);
	pthread_mutex_unlock(&p->lock);
}

/* Render the current state; draw it unless a log line is being printed
 * (its redraw() will show the new text). Call with p->lock held. */
static void draw(struct progress *p, double rate, bool final)
{
	progress_render(p->line, sizeof(p->line), terminal_width(), p->label, p->done, p->total,
			rate);
	if (!p->suspended)
		put_line(p, final);
}

/* Fold the items done since the last sample into the smoothed rate. The
 * weight grows with the time elapsed, so irregular updates (a batch of 500
 * every two seconds) average out the same as steady ones. */
static void sample_rate(struct progress *p, long long now)
{
	long long dt = now - p->sample_ms;

	if (dt < REDRAW_MS)
		return;
	double inst = (double)(p->done - p->sample_done) * 1000.0 / (double)dt;
	if (inst < 0)
		inst = 0;
	if (p->rate < 0)
		p->rate = inst;
	else
		p->rate += (1.0 - exp(-(double)dt / RATE_TAU_MS)) * (inst - p->rate);
	p->sample_ms = now;
	p->sample_done = p->done;
}

/* ---------- the object ---------- */

struct progress *progress_new(const char *label, long long total, bool enabled)
{
	struct progress *p = xcalloc(1, sizeof(*p));

	p->label = xstrdup(label ? label : "");
	p->total = total > 0 ? total : 0;
	p->rate = -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->resumed, NULL);
	p->enabled = enabled && isatty(STDERR_FILENO) && !active;
	if (p->enabled) {
		active = p;
		log_set_bar_hooks(hook_clear, hook_redraw);
	}
	return p;
}

void progress_set_total(struct progress *p, long long total)
{
	if (p)
		p->total = total > 0 ? total : 0;
}

void progress_update(struct progress *p, long long done)
{
	if (!p || p->finished)
		return;
	long long now = now_ms();

	p->done = done;
	if (!p->started) {
		/* A resumed job starts with what earlier runs did: not this run's rate. */
		p->started = true;
		p->first_ms = p->sample_ms = now;
		p->first_done = p->sample_done = done;
	} else if (now - p->last_draw_ms < REDRAW_MS) {
		return;
	}
	if (!p->enabled)
		return;
	sample_rate(p, now);
	pthread_mutex_lock(&p->lock);
	draw(p, p->rate, false);
	pthread_mutex_unlock(&p->lock);
	p->last_draw_ms = now;
}

void progress_finish(struct progress *p)
{
	if (!p || p->finished)
		return;
	if (!p->enabled) {
		p->finished = true;
		return;
	}
	/* The final rate is the average over the whole run: the summary a log
	 * reader wants, not the last few seconds. */
	long long elapsed = now_ms() - p->first_ms;
	double rate = p->rate;
	if (p->started && elapsed >= REDRAW_MS && p->done >= p->first_done)
		rate = (double)(p->done - p->first_done) * 1000.0 / (double)elapsed;

	pthread_mutex_lock(&p->lock);
	/* Another thread is printing a log line: let it finish, so the final
	 * line does not land in the middle of it. */
	while (p->suspended)
		pthread_cond_wait(&p->resumed, &p->lock);
	draw(p, rate, true);
	p->finished = true;
	pthread_mutex_unlock(&p->lock);
	/* Not under p->lock: a logging thread holds the log's mutex and may be
	 * waiting for ours inside a hook. */
	log_set_bar_hooks(NULL, NULL);
	active = NULL;
}

void progress_free(struct progress *p)
{
	if (!p)
		return;
	progress_finish(p);
	pthread_cond_destroy(&p->resumed);
	pthread_mutex_destroy(&p->lock);
	free(p->label);
	free(p);
}
