/* Sliding-window request counters: the account's rate limit and the import limit. */
#ifndef FAKE_RATELIMIT_H
#define FAKE_RATELIMIT_H

#include <stdint.h>

#define RATE_WINDOW_SECONDS 60.0

/*
 * Times (monotonic seconds) of the requests counted in the last 60 s, in
 * a ring as large as the limit. A limit of 0 or less turns the window off.
 */
struct ratewin {
	double *t;
	uint32_t cap;
	uint32_t head;
	uint32_t n;
};

void ratewin_init(struct ratewin *w, int limit);
void ratewin_release(struct ratewin *w);
void ratewin_clear(struct ratewin *w);
/* Adapts to a new limit, keeping the newest requests. */
void ratewin_set_limit(struct ratewin *w, int limit);
/*
 * 0 when one more request may be counted at now; else the whole seconds
 * until the oldest counted request leaves the window (at least 1).
 */
int ratewin_check(struct ratewin *w, int limit, double now);
void ratewin_add(struct ratewin *w, int limit, double now);
/* Requests still allowed in the window at now. */
int ratewin_remaining(struct ratewin *w, int limit, double now);

#endif
