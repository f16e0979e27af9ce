/* The worker loop: claim, work under a heartbeated lease, complete, finish
 * the parent, rescue, deliver webhooks; graceful stop. */
#include "worker.h"
#include "chunkkind.h"
#include "cli.h"
#include "db.h"
#include "exitcode.h"
#include "job.h"
#include "log.h"
#include "mailerlite.h"
#include "migrate.h"
#include "ratelimit.h"
#include "store.h"
#include "strbuf.h"
#include "webhook.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define PROGRAM "chunk-worker"
/* The parent's progress is rolled up at most this often per worker (its
 * end is checked after every chunk). */
#define ROLL_UP_EVERY_MS 1000LL
/* Webhook deliveries per pass, so that a backlog of them never holds the
 * claiming for long. */
#define WEBHOOKS_PER_PASS 5
/* How often the watch thread looks at the stop request and the time. */
#define WATCH_TICK_MS 200L
/* Database errors in a row (the connection up) before the worker gives up. */
#define MAX_DB_ERRORS 10

/* ---- the figures ---- */

static const struct {
	const char *name;
	size_t offset;
} stat_fields[] = {
#define STAT(name, member) { name, offsetof(struct worker_stats, member) }
	STAT("claimed", claimed),	  STAT("completed", completed),
	STAT("failed", failed),		  STAT("retried", retried),
	STAT("released", released),	  STAT("lost", lost),
	STAT("items", items),		  STAT("recordErrors", record_errors),
	STAT("rescued", rescued),	  STAT("jobsEnded", jobs_ended),
	STAT("webhooks", webhooks),
#undef STAT
};
#define NSTATS (sizeof(stat_fields) / sizeof(stat_fields[0]))

static long long *stat_at(struct worker_stats *s, size_t i)
{
	return (long long *)((char *)s + stat_fields[i].offset);
}

static long long stat_of(const struct worker_stats *s, size_t i)
{
	return *(const long long *)((const char *)s + stat_fields[i].offset);
}

json_t *worker_stats_json(const struct worker_stats *s)
{
	json_t *obj = json_object();
	for (size_t i = 0; i < NSTATS; i++)
		json_object_set_new(obj, stat_fields[i].name,
				    json_integer(stat_of(s, i)));
	return obj;
}

void worker_stats_from_json(const json_t *obj, struct worker_stats *s)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < NSTATS; i++) {
		const json_t *v = json_object_get(obj, stat_fields[i].name);
		if (json_is_integer(v))
			*stat_at(s, i) = json_integer_value(v);
	}
}

void worker_stats_add(struct worker_stats *to, const struct worker_stats *s)
{
	for (size_t i = 0; i < NSTATS; i++)
		*stat_at(to, i) += stat_of(s, i);
}

/* ---- the kinds this worker takes ---- */

static bool kind_capable(const struct cw_config *cfg, const struct chunk_kind *k,
			 const char **missing)
{
	*missing = NULL;
	if (k->needs_api && !(cfg->api_key && *cfg->api_key))
		*missing = "an API key (MAILERLITE_API_KEY or api_key_file)";
	else if (k->needs_table && !(cfg->a_table && *cfg->a_table))
		*missing = "the contacts table ([table] table = ...)";
	return *missing == NULL;
}

/* Append one kind to a text[] literal under construction. */
static void add_kind(struct strbuf *list, const char *name)
{
	strbuf_addstr(list, list->len > 1 ? "," : "");
	strbuf_addstr(list, name);
}

char *worker_kinds(const struct cw_config *cfg, const char *requested, struct cw_error *err)
{
	struct strbuf list;
	const char *missing;

	strbuf_init(&list, 64);
	strbuf_addch(&list, '{');
	if (requested && *requested) {
		char *copy = xstrdup(requested), *save = NULL;
		for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
			const struct chunk_kind *k = chunk_kind_find(name);
			if (!k) {
				cw_error_set(err, CW_EXIT_USAGE, "unknown kind \"%s\"", name);
				cw_error_detail(err, "The kinds: %s.", chunk_kind_names());
			} else if (!kind_capable(cfg, k, &missing)) {
				cw_error_set(err, CW_EXIT_CONFIG, "the %s kind needs %s", name, missing);
			} else {
				add_kind(&list, name);
				continue;
			}
			free(copy);
			strbuf_release(&list);
			return NULL;
		}
		free(copy);
	} else {
		size_t n;
		const struct chunk_kind *const *all = chunk_kinds(&n);
		for (size_t i = 0; i < n; i++) {
			if (kind_capable(cfg, all[i], &missing))
				add_kind(&list, all[i]->name);
			else
				log_info("not taking %s chunks: they need %s", all[i]->name, missing);
		}
	}
	strbuf_addch(&list, '}');
	if (list.len == 2) {
		strbuf_release(&list);
		cw_error_set(err, CW_EXIT_CONFIG, "this configuration can work no kind of chunk");
		return NULL;
	}
	return strbuf_detach(&list, NULL);
}

bool worker_kind_listed(const char *kinds, const char *name)
{
	size_t len = strlen(name);
	/* Names are [a-z0-9_-]: each stands between '{' or ',' and ',' or '}'. */
	for (const char *at = strstr(kinds, name); at; at = strstr(at + 1, name))
		if (at > kinds && (at[-1] == '{' || at[-1] == ',') &&
		    (at[len] == '}' || at[len] == ','))
			return true;
	return false;
}

/* ---- the watch thread: LISTEN and heartbeats on a connection of its own ---- */

struct watch {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int wake[2];		/* the main thread pokes the thread's poll() */
	struct db *db;
	double lease_s;
	long grace_ms;
	/* under mu */
	bool stop, hint, holding;
	struct queue_chunk held; /* id and token of the chunk in hand */
	long long next_beat_ms;
	/* read without the lock */
	atomic_bool lost;
};

static void watch_poke(struct watch *w)
{
	char c = 1;
	if (write(w->wake[1], &c, 1) < 0 && errno != EAGAIN)
		log_debug("could not wake the watch thread: %s", strerror(errno));
}

/* The watch connection's session: short waits, and the channel. Again
 * after every reconnect. */
static int watch_session(struct db *db, struct cw_error *err)
{
	if (db_exec(db, "SET lock_timeout = '5s'", 0, NULL, err) < 0 ||
	    db_exec(db, "SET idle_in_transaction_session_timeout = '60s'", 0, NULL, err) < 0)
		return -1;
	return db_exec(db, "LISTEN " QUEUE_CHANNEL, 0, NULL, err);
}

/* Take what the server sent: notifications are hints of new work. */
static bool drain_notifications(struct watch *w)
{
	PGconn *conn = db_conn(w->db);
	PGnotify *n;
	bool any = false;

	if (!PQconsumeInput(conn))
		return false;
	while ((n = PQnotifies(conn))) {
		any = true;
		PQfreemem(n);
	}
	if (any) {
		pthread_mutex_lock(&w->mu);
		w->hint = true;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->mu);
	}
	return true;
}

static void watch_reconnect(struct watch *w)
{
	struct cw_error err = { 0 };
	if (db_reconnect(w->db, &err) < 0 || watch_session(w->db, &err) < 0)
		log_warning("the watch connection: %s", err.msg);
	/* Anything may have been missed meanwhile. */
	pthread_mutex_lock(&w->mu);
	w->hint = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

static void heartbeat(struct watch *w, const struct queue_chunk *c, long long now)
{
	struct cw_error err = { 0 };
	int held = queue_heartbeat(w->db, c, w->lease_s, &err);

	pthread_mutex_lock(&w->mu);
	if (w->holding && w->held.id == c->id) {
		if (held == 1) {
			w->next_beat_ms = now + (long long)(w->lease_s * 1000 / 3);
		} else if (held == 0) {
			atomic_store(&w->lost, true);
			w->holding = false;
			pthread_cond_broadcast(&w->cond);
		} else {
			/* Try again soon; the lease still runs meanwhile. */
			w->next_beat_ms = now + 1000;
		}
	}
	pthread_mutex_unlock(&w->mu);
	if (held == 0)
		log_warning("chunk %d of job %lld: the lease was lost (the job cancelled, or the chunk"
			    " rescued); its work is discarded",
			    c->chunk_index, c->parent_id);
	else if (held < 0) {
		log_warning("heartbeat of chunk %d of job %lld: %s", c->chunk_index, c->parent_id,
			    err.msg);
		if (db_connection_lost(w->db))
			watch_reconnect(w);
	}
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	long long stop_seen_ms = 0;

	for (;;) {
		long long now = cli_now_ms();
		struct queue_chunk beat = { 0 };
		/* Short enough to notice a stop request soon: signals go to
		 * the main thread and never wake this poll(). */
		long timeout = WATCH_TICK_MS;

		pthread_mutex_lock(&w->mu);
		if (w->stop) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		bool holding = w->holding;
		if (holding && now >= w->next_beat_ms) {
			beat.id = w->held.id;
			beat.lease_token = w->held.lease_token;
			beat.chunk_index = w->held.chunk_index;
			beat.parent_id = w->held.parent_id;
		} else if (holding && w->next_beat_ms - now < timeout) {
			timeout = (long)(w->next_beat_ms - now);
		}
		pthread_mutex_unlock(&w->mu);

		/* The grace period of a stop request runs out here: the
		 * chunk in hand is interrupted, and handed back. */
		if (cli_stop_asked() && !cli_interrupted()) {
			if (!stop_seen_ms)
				stop_seen_ms = now;
			if (!holding || now - stop_seen_ms >= w->grace_ms) {
				if (holding)
					log_info("the grace period is over: handing the chunk back");
				cli_escalate();
			}
		}
		if (beat.id) {
			heartbeat(w, &beat, now);
			continue;
		}
		struct pollfd fds[2] = { { PQsocket(db_conn(w->db)), POLLIN, 0 },
					 { w->wake[0], POLLIN, 0 } };
		int n = poll(fds, fds[0].fd >= 0 ? 2 : 1, timeout < 0 ? 0 : (int)timeout);
		if (n > 0 && (fds[1].revents & POLLIN)) {
			char buf[64];
			while (read(w->wake[0], buf, sizeof(buf)) > 0)
				;
		}
		if (fds[0].fd < 0 || (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))) {
			if (fds[0].fd < 0 || !drain_notifications(w))
				watch_reconnect(w);
		}
	}
	return NULL;
}

/* 1 running; 0 failed with err set (watch_stop() still cleans up). */
static int watch_start(struct watch *w, const struct cw_config *cfg, const struct worker_options *o,
		       struct cw_error *err)
{
	memset(w, 0, sizeof(*w));
	w->lease_s = o->lease_s;
	w->grace_ms = o->grace_ms;
	w->wake[0] = w->wake[1] = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
		cw_error_set(err, CW_EXIT_SOFTWARE, "pipe: %s", strerror(errno));
		return 0;
	}
	if (!(w->db = db_connect(cfg, PROGRAM, err)) || watch_session(w->db, err) < 0)
		return 0;
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		cw_error_set(err, CW_EXIT_SOFTWARE, "could not start the watch thread");
		return 0;
	}
	return 1;
}

static void watch_stop(struct watch *w, bool started)
{
	if (started) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_mutex_unlock(&w->mu);
		watch_poke(w);
		pthread_join(w->thread, NULL);
	}
	db_close(w->db);
	for (int i = 0; i < 2; i++)
		if (w->wake[i] >= 0)
			close(w->wake[i]);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->mu);
}

/* From now on the thread heartbeats c. */
static void watch_hold(struct watch *w, const struct queue_chunk *c)
{
	pthread_mutex_lock(&w->mu);
	w->held = (struct queue_chunk){ .id = c->id,
					.lease_token = c->lease_token,
					.chunk_index = c->chunk_index,
					.parent_id = c->parent_id };
	w->holding = true;
	w->next_beat_ms = cli_now_ms() + (long long)(w->lease_s * 1000 / 3);
	atomic_store(&w->lost, false);
	pthread_mutex_unlock(&w->mu);
	/* No poke: the thread looks every WATCH_TICK_MS, and the first
	 * heartbeat is lease / 3 away. A wake-up per chunk would cost a
	 * context switch per chunk. */
}

static void watch_drop(struct watch *w)
{
	pthread_mutex_lock(&w->mu);
	w->holding = false;
	pthread_mutex_unlock(&w->mu);
}

/* Wait up to ms for a hint of new work (or a stop request). */
static void watch_wait(struct watch *w, long ms)
{
	long long until = cli_now_ms() + ms;

	pthread_mutex_lock(&w->mu);
	while (!w->hint && !cli_stop_asked()) {
		long long left = until - cli_now_ms();
		if (left <= 0)
			break;
		/* Signals do not wake a condition variable: look every 100 ms. */
		long slice = left > 100 ? 100 : (long)left;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += slice * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&w->cond, &w->mu, &ts);
	}
	w->hint = false;
	pthread_mutex_unlock(&w->mu);
}

/* ---- one worker ---- */

struct worker {
	const struct cw_config *cfg;
	const struct worker_options *o;
	struct worker_stats *stats;
	struct db *db;
	struct chunk_tools tools;
	char *run_id;
	struct watch watch;
	struct chunk_env env;
	long long roll_up_parent, roll_up_ms;
	long long next_rescue_ms;
	int db_errors;
};

static bool should_stop(void *arg)
{
	struct worker *wk = arg;
	return atomic_load(&wk->watch.lost) || cli_interrupted();
}

/* Whether a kind of the list needs the API (api), or the A table. */
static bool kinds_need(const char *kinds, bool api)
{
	size_t n;
	const struct chunk_kind *const *all = chunk_kinds(&n);
	for (size_t i = 0; i < n; i++)
		if (worker_kind_listed(kinds, all[i]->name) &&
		    (api ? all[i]->needs_api : all[i]->needs_table))
			return true;
	return false;
}

/* The work connection's session: a chunk's transaction may wait on the
 * API, never for long on a lock. Again after every reconnect. */
static int work_session(struct db *db, struct cw_error *err)
{
	if (db_exec(db, "SET lock_timeout = '30s'", 0, NULL, err) < 0)
		return -1;
	return db_exec(db, "SET idle_in_transaction_session_timeout = '15min'", 0, NULL, err);
}

static int work_reconnect(struct worker *wk, struct cw_error *err)
{
	return db_reconnect(wk->db, err) < 0 || work_session(wk->db, err) < 0 ? -1 : 0;
}

/* Connections, clients and session settings. */
static int worker_open(struct worker *wk, struct cw_error *err)
{
	const struct cw_config *cfg = wk->cfg;

	if (!(wk->db = db_connect(cfg, PROGRAM, err)) || migrate_check(wk->db, err) < 0 ||
	    work_session(wk->db, err) < 0 || !(wk->run_id = job_new_run_id(wk->db, err)))
		return -1;
	if (chunk_tools_open(&wk->tools, cfg, wk->db, kinds_need(wk->o->kinds, true),
			     kinds_need(wk->o->kinds, false), PROGRAM, err) < 0)
		return -1;
	wk->env = (struct chunk_env){
		.cfg = cfg,
		.db = wk->db,
		.ml = wk->tools.ml,
		.store = wk->tools.store,
		.program = PROGRAM,
		.run_id = wk->run_id,
		.should_stop = should_stop,
		.stop_arg = wk,
	};
	return 0;
}

static void worker_close(struct worker *wk)
{
	chunk_tools_close(&wk->tools);
	db_close(wk->db);
	free(wk->run_id);
}

/* After a failed queue statement: reconnect a lost connection, count the
 * others. -1 when the worker should give up. */
static int db_trouble(struct worker *wk, struct cw_error *err)
{
	/* A stop cancels the statement in flight: the loop ends next. */
	if (cli_interrupted())
		return 0;
	if (db_connection_lost(wk->db)) {
		log_warning("%s; reconnecting", err->msg);
		return work_reconnect(wk, err);
	}
	if (++wk->db_errors >= MAX_DB_ERRORS)
		return -1;
	log_warning("%s", err->msg);
	cli_sleep_ms(1000);
	return 0;
}

static void deliver_webhooks(struct worker *wk)
{
	struct webhook_options wo = { 0 };
	struct cw_error err = { 0 };
	int attempted = 0;

	webhook_options_init(&wo);
	if (webhook_deliver_due(wk->db, &wo, WEBHOOKS_PER_PASS, &attempted, &err) < 0)
		log_warning("delivering webhooks: %s", err.msg);
	wk->stats->webhooks += attempted;
}

static long long jitter_ms(long base)
{
	unsigned int r = 0;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned int)cli_now_ms();
	return base + (long long)(r % (unsigned int)(base > 0 ? base : 1));
}

/* The rescue pass, and the webhooks due. One worker rescues per tick. */
static void maintenance(struct worker *wk)
{
	struct cw_error err = { 0 };
	int rescued = 0;

	wk->next_rescue_ms = cli_now_ms() + jitter_ms(wk->o->rescue_ms);
	if (queue_rescue(wk->db, &rescued, &err) < 0) {
		log_warning("rescue: %s", err.msg);
		if (db_connection_lost(wk->db))
			work_reconnect(wk, &err);
		return;
	}
	if (rescued > 0) {
		log_info("rescued %d chunks whose lease had expired", rescued);
		wk->stats->rescued += rescued;
	}
	deliver_webhooks(wk);
}

/* After a chunk ended: the parent finished when it was the last, else its
 * progress now and then. */
static void after_chunk(struct worker *wk, long long parent)
{
	struct cw_error err = { 0 };
	const char *ended = NULL;
	long long now = cli_now_ms();

	if (queue_finish(wk->db, parent, &ended, &err) < 0) {
		log_warning("finishing job %lld: %s", parent, err.msg);
		return;
	}
	if (ended) {
		log_info("job %lld ended: %s", parent, ended);
		wk->stats->jobs_ended++;
		deliver_webhooks(wk);
		return;
	}
	if (parent != wk->roll_up_parent || now - wk->roll_up_ms >= ROLL_UP_EVERY_MS) {
		if (queue_roll_up(wk->db, parent, &err) < 0)
			log_warning("progress of job %lld: %s", parent, err.msg);
		wk->roll_up_parent = parent;
		wk->roll_up_ms = now;
	}
}

/* The worker's start and end in sync_log (best effort). */
static void log_run(struct worker *wk, const char *action, const struct worker_stats *st)
{
	struct cw_error err = { 0 };
	json_t *detail = json_pack("{s:s, s:s}", "worker", queue_worker_id(), "kinds", wk->o->kinds);

	if (st)
		json_object_update_new(detail, worker_stats_json(st));
	if (!db_connection_lost(wk->db) &&
	    job_log(wk->db, PROGRAM, wk->run_id, wk->cfg->namespace, "info", action, detail,
		    &err) < 0)
		log_debug("could not record the worker's %s: %s", action, err.msg);
	json_decref(detail);
}

/* What became of a chunk in a worker's hands. */
enum outcome {
	OUTCOME_NONE, /* not known yet: the chunk's work failed */
	OUTCOME_COMPLETED,
	OUTCOME_FAILED,	  /* for good */
	OUTCOME_RETRY,	  /* back to pending after a backoff */
	OUTCOME_RELEASED, /* handed back, unpenalized */
	OUTCOME_LOST,	  /* the lease was gone: nothing written */
};

/* The names worker_options.on_chunk gets. */
static const char *const outcome_names[] = {
	[OUTCOME_NONE] = "none",	   [OUTCOME_COMPLETED] = "completed",
	[OUTCOME_FAILED] = "failed",	   [OUTCOME_RETRY] = "retry",
	[OUTCOME_RELEASED] = "released", [OUTCOME_LOST] = "lost",
};

static bool retryable(int code)
{
	return code != CW_EXIT_CONFIG && code != CW_EXIT_USAGE && code != CW_EXIT_DATAERR;
}

/* Record a chunk's failure (or hand it back), reconnecting once if the
 * connection went with the failure. */
static enum outcome give_back(struct worker *wk, const struct queue_chunk *c,
			      const struct cw_error *why)
{
	struct cw_error err = { 0 };
	bool release = cli_interrupted();
	const char *status = NULL;

	for (int attempt = 0; attempt < 3; attempt++) {
		int held = release ? queue_release(wk->db, c, &err)
				   : queue_fail(wk->db, c, why->msg, retryable(why->code), &status,
						&err);
		if (held == 1)
			return release			    ? OUTCOME_RELEASED
			       : strcmp(status, "failed") == 0 ? OUTCOME_FAILED
							       : OUTCOME_RETRY;
		if (held == 0)
			return OUTCOME_LOST;
		/* The interrupt's cancel request may land on this statement
		 * rather than the one it was meant for: say it again. */
		if (strcmp(db_sqlstate(wk->db), "57014") == 0)
			continue;
		if (!db_connection_lost(wk->db) || work_reconnect(wk, &err) < 0)
			break;
	}
	log_warning("chunk %d of job %lld: %s (the lease will expire and the chunk be rescued)",
		    c->chunk_index, c->parent_id, err.msg);
	return OUTCOME_LOST;
}

/* Complete the chunk with its writes, in the transaction run() left open;
 * a chunk that wrote nothing completes in a statement of its own. */
static enum outcome complete(struct worker *wk, const struct queue_chunk *c,
			     const json_t *result, long long ms, struct cw_error *err)
{
	const bool writes = db_in_transaction(wk->db);
	int held = queue_complete(wk->db, c, result, ms, err);
	if (held == 1 && (!writes || db_commit(wk->db, err) == 0))
		return OUTCOME_COMPLETED;
	db_rollback(wk->db);
	return held == 0 ? OUTCOME_LOST : OUTCOME_NONE;
}

/* The worker's figures, and the log, for a chunk's outcome. */
static void count_outcome(struct worker *wk, const struct queue_chunk *c, enum outcome what,
			  const json_t *result, const struct cw_error *err)
{
	struct worker_stats *st = wk->stats;
	const json_t *errors = json_object_get(result, "errors");

	switch (what) {
	case OUTCOME_COMPLETED:
		st->completed++;
		st->items += c->end_offset - c->start_offset;
		if (json_is_integer(errors) && json_integer_value(errors) > 0)
			st->record_errors += json_integer_value(errors);
		return;
	case OUTCOME_FAILED:
	case OUTCOME_RETRY:
		if (what == OUTCOME_FAILED)
			st->failed++;
		else
			st->retried++;
		log_warning("chunk %d of job %lld (attempt %d of %d): %s%s", c->chunk_index,
			    c->parent_id, c->attempts, c->max_attempts, err->msg,
			    what == OUTCOME_FAILED ? "; failed for good" : "; will retry");
		return;
	case OUTCOME_RELEASED:
		st->released++;
		log_info("chunk %d of job %lld handed back", c->chunk_index, c->parent_id);
		return;
	case OUTCOME_LOST:
	case OUTCOME_NONE:
		st->lost++;
		return;
	}
}

static void work_chunk(struct worker *wk, struct queue_chunk *c)
{
	const struct chunk_kind *kind = chunk_kind_find(c->kind);
	struct cw_error err = { 0 };
	json_t *result = NULL;
	long long started = cli_now_ms();

	wk->stats->claimed++;
	log_debug("chunk %d/%d of job %lld (%s), attempt %d", c->chunk_index + 1, c->total_chunks,
		  c->parent_id, c->kind, c->attempts);
	/* The job's namespace, not the worker's, for its log and state. */
	struct cw_config job_cfg = *wk->cfg;
	struct chunk_env env = wk->env;
	job_cfg.namespace = c->namespace;
	env.cfg = &job_cfg;
	watch_hold(&wk->watch, c);
	int rc = kind ? kind->run(&env, c, &result, &err)
		      : cw_error_set(&err, CW_EXIT_CONFIG, "no kind \"%s\" in this build", c->kind);
	enum outcome what = atomic_load(&wk->watch.lost) ? OUTCOME_LOST
			    : rc == 0 ? complete(wk, c, result, cli_now_ms() - started, &err)
				      : OUTCOME_NONE;
	watch_drop(&wk->watch);
	if (what == OUTCOME_LOST || what == OUTCOME_NONE)
		db_rollback(wk->db);
	if (what == OUTCOME_NONE)
		what = give_back(wk, c, &err);
	count_outcome(wk, c, what, result, &err);
	if (what != OUTCOME_RELEASED && what != OUTCOME_LOST)
		after_chunk(wk, c->parent_id);
	json_decref(result);
	if (wk->o->on_chunk)
		wk->o->on_chunk(wk->o->arg, outcome_names[what], c);
}

static int backlog_empty(struct worker *wk, bool *empty, struct cw_error *err)
{
	long long left = 0;
	if (queue_backlog(wk->db, wk->o->kinds, &left, err) < 0)
		return -1;
	*empty = left == 0;
	return 0;
}

int worker_run(const struct cw_config *cfg, const struct worker_options *o,
	       struct worker_stats *stats, enum worker_end *end, struct cw_error *err)
{
	struct worker wk = { .cfg = cfg, .o = o, .stats = stats };
	int watching = -1, rc = -1;

	memset(stats, 0, sizeof(*stats));
	*end = WORKER_STOPPED;
	if (worker_open(&wk, err) < 0 || (watching = watch_start(&wk.watch, cfg, o, err)) == 0)
		goto out;
	log_info("worker %s taking %s chunks", queue_worker_id(), o->kinds);
	log_run(&wk, "job_started", NULL);
	for (;;) {
		struct queue_chunk c;

		if (cli_stop_asked()) {
			*end = WORKER_STOPPED;
			break;
		}
		if (o->deadline_ms && cli_now_ms() >= o->deadline_ms) {
			*end = WORKER_DEADLINE;
			break;
		}
		if (cli_now_ms() >= wk.next_rescue_ms)
			maintenance(&wk);
		int got = queue_claim(wk.db, queue_worker_id(), o->lease_s, o->kinds, &c, err);
		if (got < 0) {
			if (db_trouble(&wk, err) < 0)
				goto out;
			continue;
		}
		wk.db_errors = 0;
		if (got == 1) {
			work_chunk(&wk, &c);
			queue_chunk_release(&c);
			continue;
		}
		if (o->until_empty) {
			bool empty = false;
			if (backlog_empty(&wk, &empty, err) < 0) {
				if (db_trouble(&wk, err) < 0)
					goto out;
				continue;
			}
			if (empty) {
				*end = WORKER_EMPTY;
				break;
			}
		}
		watch_wait(&wk.watch, o->poll_ms);
	}
	/* Webhooks of the jobs this worker ended, if the last pass left any. */
	if (*end != WORKER_STOPPED)
		deliver_webhooks(&wk);
	log_run(&wk, "job_completed", stats);
	rc = 0;
out:
	if (watching >= 0)
		watch_stop(&wk.watch, watching > 0);
	worker_close(&wk);
	return rc;
}
