/*
 * Several workers of one `chunk-worker run`: each a process of its own
 * (its own connections, signals and clients, as if started by hand), in a
 * process group of its own so that a terminal's Ctrl-C reaches them once,
 * through the supervisor; each dies with SIGTERM should the supervisor
 * die. The supervisor forwards SIGINT/SIGTERM (the first: stop gracefully;
 * the second: at once), passes each child's per-chunk events to on_chunk,
 * and adds up their figures.
 */
#ifndef CW_WORKERPOOL_H
#define CW_WORKERPOOL_H

#include "worker.h"

/* What the pool's workers did together. */
struct pool_stats {
	struct worker_stats sum;
	int workers;	      /* started */
	int workers_failed;   /* ended with an error (the first one is in err) */
	int workers_killed;   /* ended by a signal without a report */
	enum worker_end end;  /* WORKER_STOPPED if any stopped so, else DEADLINE, else EMPTY */
};

/* Run n workers with options o (n == 1: in this process). on_chunk in o is
 * called in this process, with a chunk holding only parent_id,
 * chunk_index, start_offset and end_offset. Returns 0, or -1 with err set
 * when no worker could do its work. */
int pool_run(const struct cw_config *cfg, const struct worker_options *o, int n,
	     struct pool_stats *stats, struct cw_error *err);

#endif
