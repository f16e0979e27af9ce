/*
 * The completion webhook of chunked jobs: when a parent job of
 * <schema>.sync_queue with a webhook_url ends, its final report
 * (sync_job_report(id), the JSON `chunk-worker status` prints) is POSTed
 * to that URL, at least once, by whichever worker finds it due.
 *
 * The state is the parent row's, so every worker on every machine sees the
 * same schedule: webhook_status 'pending' (due at webhook_next_at, set to
 * now() by a trigger when the job ends), 'sent' or 'failed' (given up after
 * max_attempts), webhook_attempts, webhook_last_error, webhook_sent_at.
 *
 * One delivery: a short transaction claims one due parent (FOR UPDATE SKIP
 * LOCKED), counts the attempt and moves webhook_next_at forward by the
 * POST's timeout plus a margin, a lease that keeps other workers off it,
 * and reads the report; it commits before the POST, so no transaction and
 * no row lock is held while the receiver answers. The outcome is then
 * written under the attempt number (a fencing token: a later claim by
 * someone else changes it). A worker that dies mid-POST leaves the row
 * pending; it is due again when the lease runs out. Receivers must
 * therefore accept a report twice (X-Crosswalk-Job and the report's id
 * name the job).
 *
 * The request: POST, Content-Type application/json, User-Agent
 * crosswalk/<version>, X-Crosswalk-Job: <id>, X-Crosswalk-Delivery-Attempt:
 * <n> (from 1). Redirects are never followed (a 3xx is a failed attempt),
 * TLS peers are verified, the answer's body is read up to
 * max_response_bytes and no further (the status decides, not the body).
 * A 2xx is delivered; anything else is retried after a backoff (5 s
 * doubling to 10 min, jittered, by the database's clock) until
 * max_attempts.
 *
 * URLs may carry credentials (https://user:token@host/hook?key=...): they
 * are sent, but never logged nor written to webhook_last_error, which
 * holds a short text of its own ("HTTP 500", "connection refused", "timed
 * out after 10 s"). Logs name a URL as webhook_redact_url() gives it.
 *
 * Ownership: nothing is kept between calls; each delivery uses its own
 * libcurl handle, freed before the call returns. Thread-safe as long as
 * each thread has its own struct db.
 */
#ifndef CW_WEBHOOK_H
#define CW_WEBHOOK_H

#include "db.h"
#include "error.h"

#define WEBHOOK_DEFAULT_TIMEOUT 10		/* seconds */
#define WEBHOOK_DEFAULT_MAX_ATTEMPTS 8
#define WEBHOOK_DEFAULT_MAX_RESPONSE (64L << 10) /* bytes */
/* The lease beyond the POST's timeout, for the statements around it. */
#define WEBHOOK_LEASE_MARGIN 60			/* seconds */
/* webhook_last_error is cut to this many bytes. */
#define WEBHOOK_ERROR_MAX 200

struct webhook_options {
	long timeout_s;		  /* one POST's whole time, connection included; 1..3600 */
	int max_attempts;	  /* deliveries tried before 'failed'; 1..1000 */
	long max_response_bytes;  /* how much of the receiver's answer is read; >= 1 */
};

/* The defaults above. A value out of range in a caller's options is
 * clamped (0 or less: the default). */
void webhook_options_init(struct webhook_options *o);

/*
 * Deliver up to limit due webhooks, one after the other, oldest due first.
 * *attempted (may be NULL) gets the number of POSTs made, whatever their
 * outcome. Returns 0 when there was nothing (more) due or limit was
 * reached: a failed POST is recorded on its job (and logged as a warning),
 * it is not an error of the call. Stops early, after handing the claimed
 * delivery back uncounted, when cli_interrupted().
 *
 * -1 with err: a database error, with the code from db_query()
 * (CW_EXIT_UNAVAILABLE when the connection was lost: reconnect and call
 * again later); a delivery already POSTed whose outcome could not be
 * written is posted again once its lease runs out. CW_EXIT_SOFTWARE when
 * libcurl cannot be set up (the claimed delivery is handed back), or when
 * called inside a transaction: call in autocommit.
 *
 * Each POST takes at most o->timeout_s, so a call lasts about limit times
 * that at worst: call it between chunks, never while holding one.
 */
int webhook_deliver_due(struct db *db, const struct webhook_options *o, int limit,
			int *attempted, struct cw_error *err);

/* ---- Pure helpers (no I/O), exported for the tests ---- */

/* url fit for a log line: its origin only, "scheme://host[:port]", then
 * "/..." when it has a path (services put tokens there too); never the
 * user information, query or fragment. "(an invalid URL)" when libcurl
 * cannot parse it. New string. */
char *webhook_redact_url(const char *url);

#endif
