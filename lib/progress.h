/*
 * A progress bar for long jobs: one line on stderr, redrawn in place, with a
 * label, a bar sized to the terminal, done/total, percent, a smoothed rate
 * and an ETA. It never writes to stdout.
 *
 *   struct progress *bar = progress_new("backfill", total,
 *                                       log_stderr_is_tty() && !cfg.quiet);
 *   for (...)
 *           progress_update(bar, done);   // as often as you like
 *   progress_free(bar);                   // final draw, newline, free
 *
 * Drawing happens at most 10 times a second (a monotonic clock decides),
 * however often progress_update() is called. While a bar is shown it
 * registers log_set_bar_hooks(): a log line from any thread clears the bar,
 * prints, and the bar is drawn again under it. Updates must come from one
 * thread; log lines may come from others.
 *
 * One bar at a time: a progress_new() while another bar is still shown
 * returns a silent bar (it counts, it does not draw).
 */
#ifndef CW_PROGRESS_H
#define CW_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

struct progress;

/* A new bar (progress_free() it). label is copied. total is the number of
 * items, or 0 when unknown (no bar then: the count and the rate). enabled:
 * stderr is a terminal and the program is not --quiet; the bar checks
 * isatty(2) too and stays silent on a file or a pipe. Nothing is drawn until
 * the first progress_update(). */
struct progress *progress_new(const char *label, long long total, bool enabled);

/* Change the total (0: unknown), for jobs that learn it late. */
void progress_set_total(struct progress *p, long long total);

/* Report the absolute number of items done so far. Cheap: call it per item. */
void progress_update(struct progress *p, long long done);

/* Draw the final state (average rate over the whole run) and end the line
 * with a newline; unregisters the log hooks. Further updates are ignored.
 * Calling it twice is harmless. */
void progress_finish(struct progress *p);

/* Finish if not finished yet, then free. NULL is fine. */
void progress_free(struct progress *p);

/* ---------- pure helpers, exposed for the unit tests ---------- */

/* "h:mm:ss" from one hour on, else "m:ss"; "--:--" when seconds is negative,
 * not finite, or 100 hours or more (a stalled job). Rounded to the nearest
 * second. Always NUL-terminates when len > 0. */
void progress_format_eta(double seconds, char *buf, size_t len);

/* The bar's text (no "\r", no escape sequences) for a terminal width columns
 * wide: at most width - 1 characters, so that the cursor never wraps, and at
 * most len - 1 bytes. total <= 0: unknown (count and rate only). done above
 * total shows 100% and a full bar; negative done counts as 0. rate is items
 * per second, negative or NaN when not known yet. When the line is narrow
 * the bar goes first, then the rate, the ETA, and the label is cut last.
 * Returns the length written. */
int progress_render(char *buf, size_t len, int width, const char *label, long long done,
		    long long total, double rate);

#endif
