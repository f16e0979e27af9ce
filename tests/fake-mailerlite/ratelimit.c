/* Sliding-window request counters: the account's rate limit and the import limit. */
#include "ratelimit.h"

#include <stdlib.h>

#include "util.h"

void ratewin_init(struct ratewin *w, int limit)
{
	w->cap = limit > 0 ? (uint32_t)limit : 0;
	w->t = w->cap ? xcalloc(w->cap, sizeof(double)) : NULL;
	w->head = w->n = 0;
}

void ratewin_release(struct ratewin *w)
{
	free(w->t);
	w->t = NULL;
	w->cap = w->head = w->n = 0;
}

void ratewin_clear(struct ratewin *w)
{
	w->head = w->n = 0;
}

void ratewin_set_limit(struct ratewin *w, int limit)
{
	uint32_t cap = limit > 0 ? (uint32_t)limit : 0;
	if (cap == w->cap)
		return;
	double *t = cap ? xcalloc(cap, sizeof(double)) : NULL;
	uint32_t keep = w->n < cap ? w->n : cap;
	for (uint32_t i = 0; i < keep; i++)
		t[i] = w->t[(w->head + w->n - keep + i) % w->cap];
	free(w->t);
	w->t = t;
	w->cap = cap;
	w->head = 0;
	w->n = keep;
}

static void expire(struct ratewin *w, double now)
{
	while (w->n > 0 && w->t[w->head] <= now - RATE_WINDOW_SECONDS) {
		w->head = (w->head + 1) % w->cap;
		w->n--;
	}
}

int ratewin_check(struct ratewin *w, int limit, double now)
{
	if (limit <= 0 || w->cap == 0)
		return 0;
	expire(w, now);
	if (w->n < w->cap)
		return 0;
	double wait = w->t[w->head] + RATE_WINDOW_SECONDS - now;
	int secs = (int)wait; /* ceil without libm */
	if ((double)secs < wait)
		secs++;
	return secs < 1 ? 1 : secs;
}

void ratewin_add(struct ratewin *w, int limit, double now)
{
	if (limit <= 0 || w->cap == 0)
		return;
	expire(w, now);
	if (w->n == w->cap) {
		/* Only reached if a caller skipped the check: drop the oldest. */
		w->head = (w->head + 1) % w->cap;
		w->n--;
	}
	w->t[(w->head + w->n) % w->cap] = now;
	w->n++;
}

int ratewin_remaining(struct ratewin *w, int limit, double now)
{
	if (limit <= 0 || w->cap == 0)
		return 0;
	expire(w, now);
	return (int)(w->cap - w->n);
}
