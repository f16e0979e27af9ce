/* The shared bucket's arithmetic: GCRA spacing, bursts, the server's limit and its 429s. */
#include "ratelimit.h"
#include "tap.h"

#include <limits.h>
#include <math.h>

#define EPS 1e-9

static void intervals(void)
{
	is_double(ratelimit_interval(120), 0.5 * (1.0 + RATELIMIT_MARGIN), EPS,
		  "120/min: half a second plus the margin");
	is_double(ratelimit_interval(600), 0.1 * (1.0 + RATELIMIT_MARGIN), EPS, "600/min");
	is_double(ratelimit_interval(1), 60.0 * (1.0 + RATELIMIT_MARGIN), EPS, "1/min");
	is_double(ratelimit_interval(0), 0.0, 0.0, "0: off, no interval");
	is_double(ratelimit_interval(-5), 0.0, 0.0, "a negative limit: off");

	/* The reason for the margin: limit + 1 requests paced by the bucket
	 * never fit in one 60 s window, even when the last of them reaches
	 * the server 0.3 s early (send-time jitter). */
	static const int limits[] = { 1, 5, 120, 600, 1200, 100000 };
	for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
		int l = limits[i];
		ok((double)l * ratelimit_interval(l) >= 60.0 + 0.3 - 1e-6,
		   "limit %d: %d intervals span at least 60.3 s", l, l);
		ok((double)l * ratelimit_interval(l) < 60.0 * 1.01,
		   "limit %d: the margin costs under 1%%", l);
	}

	is_double(ratelimit_tolerance(1, 0.5), 0.0, 0.0, "burst 1: no tolerance");
	is_double(ratelimit_tolerance(0, 0.5), 0.0, 0.0, "burst 0 is read as 1");
	is_double(ratelimit_tolerance(-3, 0.5), 0.0, 0.0, "a negative burst is read as 1");
	is_double(ratelimit_tolerance(3, 0.5), 1.0, EPS, "burst 3: two intervals");
	is_double(ratelimit_tolerance(10, 0.1), 0.9, EPS, "burst 10: nine intervals");
}

/* n requests all asking at `now` against state *tat: the slots in out[]. */
static void asks(double *tat, double now, double interval, double tolerance, int n, double *out)
{
	for (int i = 0; i < n; i++) {
		struct ratelimit_step st = ratelimit_gcra(*tat, now, interval, tolerance);
		out[i] = st.slot;
		*tat = st.tat;
	}
}

static void gcra(void)
{
	const double iv = ratelimit_interval(120);
	struct ratelimit_step st;
	double tat, slots[64];

	st = ratelimit_gcra(0.0, 1000.0, iv, 0.0);
	is_double(st.slot, 1000.0, EPS, "a fresh bucket (tat 0): the slot is now");
	is_double(st.wait, 0.0, EPS, "and no wait");
	is_double(st.tat, 1000.0 + iv, EPS, "the next is one interval on");

	st = ratelimit_gcra(100.0, 99.0, iv, 0.0);
	is_double(st.slot, 100.0, EPS, "early by a second: the slot is tat");
	is_double(st.wait, 1.0, EPS, "a second's wait");
	is_double(st.tat, 100.0 + iv, EPS, "tat moves one interval");

	st = ratelimit_gcra(100.0, 150.0, iv, 0.0);
	is_double(st.slot, 150.0, EPS, "late: not penalised, the slot is now");
	is_double(st.wait, 0.0, EPS, "no wait when late");
	is_double(st.tat, 150.0 + iv, EPS, "the next is one interval after now");

	/* A steady stream: 50 processes asking at the same instant get
	 * slots exactly one interval apart. */
	tat = 0.0;
	asks(&tat, 5000.0, iv, 0.0, 50, slots);
	bool spaced = slots[0] == 5000.0;
	for (int i = 1; i < 50; i++)
		spaced &= fabs(slots[i] - slots[i - 1] - iv) < 1e-9;
	ok(spaced, "50 simultaneous requests: slots exactly one interval apart");
	is_double(tat, 5000.0 + 50 * iv, 1e-9, "and tat is 50 intervals on");

	/* Requests that each arrive at their slot keep the same spacing. */
	tat = 0.0;
	double now = 7000.0;
	spaced = true;
	for (int i = 0; i < 30; i++) {
		st = ratelimit_gcra(tat, now, iv, 0.0);
		spaced &= st.wait < 1e-9 && (i == 0 || fabs(st.slot - now) < 1e-9);
		tat = st.tat;
		now = st.slot + iv;
	}
	ok(spaced, "a caller arriving at each next slot never waits");

	/* An idle gap builds no credit with burst 1. */
	tat = 0.0;
	asks(&tat, 8000.0, iv, 0.0, 5, slots);
	double idle = tat + 300.0;
	asks(&tat, idle, iv, 0.0, 3, slots);
	is_double(slots[0], idle, EPS, "after an idle gap the first goes at once");
	is_double(slots[1], idle + iv, EPS, "the second waits a whole interval: no credit");
	is_double(slots[2], idle + 2 * iv, EPS, "the third two");

	/* Burst n: n back to back after an idle spell, then the interval. */
	for (int burst = 2; burst <= 5; burst++) {
		double tol = ratelimit_tolerance(burst, iv);
		tat = 0.0;
		asks(&tat, 9000.0, iv, tol, burst + 3, slots);
		bool together = true;
		for (int i = 0; i < burst; i++)
			together &= fabs(slots[i] - 9000.0) < 1e-6;
		ok(together, "burst %d: %d requests go back to back", burst, burst);
		is_double(slots[burst], 9000.0 + iv, 1e-9, "burst %d: request %d waits one interval",
			  burst, burst + 1);
		is_double(slots[burst + 1], 9000.0 + 2 * iv, 1e-9, "burst %d: then the steady pace",
			  burst);
		/* Within any span t the bucket grants at most burst + t / interval. */
		double span = slots[burst + 2] - slots[0];
		ok(burst + 3 <= burst + span / iv + 1e-6,
		   "burst %d: never more than the burst above the rate", burst);
	}

	/* The slot never lies before now, whatever tat says. */
	bool never_past = true;
	for (double t = 0; t < 20; t += 0.37)
		for (double n = 0; n < 20; n += 0.41)
			never_past &= ratelimit_gcra(t, n, iv, ratelimit_tolerance(3, iv)).slot >= n &&
				      ratelimit_gcra(t, n, iv, 0).wait >= 0;
	ok(never_past, "the slot is never before now and the wait never negative");
}

static void server_limits(void)
{
	is_int(ratelimit_adopt_limit(120, -1), 120, "no header: keep the limit");
	is_int(ratelimit_adopt_limit(120, 100), 100, "the server allows fewer: adopt it");
	is_int(ratelimit_adopt_limit(120, 200), 120, "the server allows more: keep ours");
	is_int(ratelimit_adopt_limit(120, 120), 120, "the same: keep");
	is_int(ratelimit_adopt_limit(120, 0), 120, "a 0 header is garbage, not 'stop'");
	is_int(ratelimit_adopt_limit(0, 100), 0, "off stays off");
	is_int(ratelimit_adopt_limit(100000, 1), 1, "down to 1");
	is_int(ratelimit_adopt_limit(120, LONG_MAX), 120, "a huge header: keep ours");

	const double iv = ratelimit_interval(600);
	is_double(ratelimit_pace_tat(5, 1000.0, iv, 0.0), 0.0, 0.0, "room left: nothing to do");
	is_double(ratelimit_pace_tat(-1, 1000.0, iv, 0.0), 0.0, 0.0, "no header: nothing");
	is_double(ratelimit_pace_tat(RATELIMIT_LOW_REMAINING + 1, 1000.0, iv, 0.0), 0.0, 0.0,
		  "just above the low mark: nothing");
	is_double(ratelimit_pace_tat(0, 1000.0, iv, 0.0), 1000.0 + iv, EPS,
		  "window full: the next slot an interval after ours");
	is_double(ratelimit_pace_tat(RATELIMIT_LOW_REMAINING, 1000.0, iv, 0.0), 1000.0 + iv, EPS,
		  "at the low mark likewise");
	is_double(ratelimit_pace_tat(0, 1000.0, iv, ratelimit_tolerance(4, iv)), 1000.0 + 4 * iv,
		  EPS, "with a burst allowance, tat must also cover the tolerance");
	is_double(ratelimit_pace_tat(0, 0.0, iv, 0.0), 0.0, 0.0, "no slot yet: nothing");
	is_double(ratelimit_pace_tat(0, 1000.0, 0.0, 0.0), 0.0, 0.0, "bucket off: nothing");

	/* Burst 1: what the window-full rule asks is what the grant's own
	 * new tat already holds, so a steady run is never slowed. */
	struct ratelimit_step st = ratelimit_gcra(1000.0, 999.5, iv, 0.0);
	ok(ratelimit_pace_tat(0, st.slot, iv, 0.0) <= st.tat + 1e-9,
	   "burst 1: a full window asks nothing beyond the grant's own tat");

	is_int(ratelimit_429_bucket(false, 0), RATELIMIT_API, "a 429 with nothing left: account");
	is_int(ratelimit_429_bucket(false, 5), RATELIMIT_API, "a plain request's 429: account");
	is_int(ratelimit_429_bucket(false, -1), RATELIMIT_API, "no header: account");
	is_int(ratelimit_429_bucket(true, 0), RATELIMIT_API, "an import, nothing left: account");
	is_int(ratelimit_429_bucket(true, -1), RATELIMIT_API, "an import, no header: account");
	is_int(ratelimit_429_bucket(true, 3), RATELIMIT_IMPORT,
	       "an import refused while the account had room: the import limit");
}

/* Off means off: with no database at all nothing is queried (a NULL
 * connection would crash the first query). */
static void off(void)
{
	struct cw_error err = { 0 };
	struct ratelimit_grant g = { 1, 1 };
	struct ratelimit_stats stats;
	struct ratelimit *rl = ratelimit_new(NULL, 0, 0, &err);

	ok(rl != NULL, "a bucket with both limits 0 needs no database");
	is_int(ratelimit_limit(rl), 0, "its limit is 0");
	is_int(ratelimit_take(rl, RATELIMIT_API, &g, &err), 0, "taking an API token succeeds");
	ok(g.slot == 0 && g.waited == 0, "at once, with slot 0");
	is_int(ratelimit_take(rl, RATELIMIT_IMPORT, &g, &err), 0, "an import token likewise");
	is_int(ratelimit_take(rl, RATELIMIT_API, NULL, &err), 0, "grant may be NULL");
	struct ratelimit_seen seen = { 429, 120, 0, 30, false };
	is_int(ratelimit_observe(rl, &seen, &err), 0, "a 429 changes nothing in an off bucket");
	ratelimit_get_stats(rl, &stats);
	ok(stats.grants == 0 && stats.waited == 0 && stats.last_slot == 0,
	   "an off bucket counts no grants");
	ratelimit_free(rl);

	rl = ratelimit_new(NULL, 120, 5, &err);
	is_int(ratelimit_limit(rl), 0, "limits without a database: off");
	is_int(ratelimit_take(rl, RATELIMIT_API, &g, &err), 0, "so taking is free");
	ratelimit_free(rl);

	is_int(ratelimit_take(NULL, RATELIMIT_API, &g, &err), 0, "a NULL bucket is off");
	is_int(ratelimit_limit(NULL), 0, "with limit 0");
	ratelimit_get_stats(NULL, &stats);
	ok(stats.grants == 0, "and no grants");
	ratelimit_free(NULL);
}

int main(void)
{
	intervals();
	gcra();
	server_limits();
	off();
	return done_testing();
}
