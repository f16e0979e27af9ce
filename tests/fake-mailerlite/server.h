/* The emulator's shared state: settings, the one lock, and the parts each module owns. */
#ifndef FAKE_SERVER_H
#define FAKE_SERVER_H

#include <pthread.h>
#include <stdint.h>

#include "faults.h"
#include "ratelimit.h"
#include "reqlog.h"
#include "store.h"

#define TOKEN_MAX 512

/* What the command line sets and /_control/config changes. */
struct config {
	char token[TOKEN_MAX];
	long page_cap;
	int page_cap_reject; /* 0: clamp, 1: reject */
	long rate_limit;     /* requests per 60 s, 0: off */
	long import_limit;   /* import batches per 60 s, 0: off */
	int log_bodies;	     /* keep request bodies in the log */
};

/*
 * Everything below `lock` is guarded by it; request handlers take it for
 * their whole work except the latency fault's sleep.
 */
struct server {
	pthread_mutex_t lock;
	struct config defaults;
	struct config cfg;
	struct store store;
	struct ratewin rate;
	struct ratewin import;
	struct faults faults;
	struct reqlog log;
	uint64_t requests; /* API requests received since the last reset */
	int port;
	char base[64]; /* "http://127.0.0.1:PORT" */
	int quiet;
};

void server_init(struct server *srv, const struct config *defaults);
void server_release(struct server *srv);
/* Back to an empty account with the command line's settings (lock held). */
void server_reset(struct server *srv);
/* Installs new settings, resizing the rate windows (lock held). */
void server_set_config(struct server *srv, const struct config *cfg);

#endif
