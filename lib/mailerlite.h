/*
 * The B-side client: MailerLite's Connect API (DESIGN §9) over lib/http,
 * paced by lib/ratelimit. Every response is treated as untrusted: JSON
 * types are checked before use, ids stay text (strings of 1-20 digits,
 * never doubles), and a 2xx body that lacks what the API documents is
 * "malformed" and retried like a 5xx; when the retries run out it is an
 * error (CW_EXIT_UNAVAILABLE) naming what was missing.
 *
 * Outcomes: functions return -1 with err set when no usable answer came
 * (connection, 5xx, 429 or malformed after the retries: CW_EXIT_UNAVAILABLE;
 * a refused token, HTTP 401: CW_EXIT_CONFIG; a signal: CW_EXIT_PARTIAL).
 * A write answered with a 4xx (422 validation, 404) is a record-level
 * outcome, not an error: the call returns 0 and the caller reads
 * res->status, res->message (the server's, for showing: never match on
 * it) and res->errors.
 *
 * Ownership: ml_client_new() returns a client that ml_client_free()
 * releases; the struct ratelimit is borrowed and must outlive it. Results
 * and pages own a parsed body (new reference) that their _release()
 * drops; every const json_t * and const char * they expose is borrowed
 * from that body. One thread at a time per client.
 *
 * The token is never logged, never in an error message, never in a URL.
 */
#ifndef CW_MAILERLITE_H
#define CW_MAILERLITE_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "error.h"
#include "ratelimit.h"

#define ML_BATCH_MAX 50
/* A page size the API is known to accept, the fallback after a 422 on limit. */
#define ML_SAFE_PAGE 100
#define ML_ID_MAX 20

struct ml_client;

/* From cfg: api_url, api_key (required), api_version, page_size,
 * http_timeout, http_connect_timeout, max_response_bytes, http_retries.
 * rl may be NULL: no client-side pacing. NULL with err set on failure. */
struct ml_client *ml_client_new(const struct cw_config *cfg, struct ratelimit *rl,
				struct cw_error *err);
void ml_client_free(struct ml_client *client);

/* API requests made so far (attempts, retries included). */
long ml_requests(const struct ml_client *client);

/* The largest list page the server has been seen to give (0: not known
 * yet). A program may store it in sync_state and restore it next run. */
int ml_page_cap(const struct ml_client *client);
void ml_set_page_cap(struct ml_client *client, int cap);

/* A string of 1 to ML_ID_MAX digits. */
bool ml_id_valid(const char *s);

/* ---- subscribers ---- */

struct ml_page {
	json_t *root;	    /* new reference: owns the page */
	const json_t *data; /* borrowed: array of subscriber objects, each with a
			     * digit-string "id" and a string "email" */
	char *next_cursor;  /* owned; NULL on the last page */
	int per_page;	    /* meta.per_page, or -1 when absent */
	int asked;	    /* the limit this page was asked for */
};
void ml_page_release(struct ml_page *page);

/*
 * One page of GET /subscribers, newest first. cursor NULL: the first page.
 * limit 0: the configured page size; either way no more than the known
 * cap. include_groups adds include=groups; filter_status (NULL: all) adds
 * filter[status]. Our own parameters are sent every time: links.next is
 * never followed (it drops limit and the filters). A 422 on limit makes the
 * client fall back to ML_SAFE_PAGE, remember it, and ask again once; a
 * smaller meta.per_page than asked is remembered as the cap.
 */
int ml_list_subscribers(struct ml_client *client, const char *cursor, int limit,
			bool include_groups, const char *filter_status, struct ml_page *page,
			struct cw_error *err);

/* GET /subscribers?limit=0: the number of subscribers (with the status). */
int ml_count_subscribers(struct ml_client *client, const char *filter_status, long long *total,
			 struct cw_error *err);

/* GET /subscribers/{id or email}: 0 with *subscriber (new reference, the
 * "data" object), 1 when not found (404, *subscriber NULL), -1 on error. */
int ml_get_subscriber(struct ml_client *client, const char *id_or_email, json_t **subscriber,
		      struct cw_error *err);

/* The outcome of a write. */
struct ml_result {
	long status;	      /* 200, 201, 204, 404, 422, ... */
	bool created;	      /* POST /subscribers answered 201 */
	json_t *body;	      /* new reference: the parsed body, or NULL (204, not JSON) */
	const json_t *data;   /* borrowed: body.data when an object, else NULL */
	const json_t *errors; /* borrowed: body.errors when an object (a 422), else NULL */
	const char *message;  /* borrowed: body.message when a string, else NULL */
};
void ml_result_release(struct ml_result *res);
/* 2xx. */
bool ml_result_ok(const struct ml_result *res);

/* POST /subscribers, an upsert by email (body borrowed, an object with
 * "email"): 201 created (res->created), 200 existed. A 2xx carries
 * res->data with "id" and "email". */
int ml_upsert_subscriber(struct ml_client *client, const json_t *body, struct ml_result *res,
			 struct cw_error *err);
/* PUT /subscribers/{id}: replaces groups, clears fields sent as null. */
int ml_update_subscriber(struct ml_client *client, const char *id, const json_t *body,
			 struct ml_result *res, struct cw_error *err);
/* DELETE /subscribers/{id}: 204, or 404. */
int ml_delete_subscriber(struct ml_client *client, const char *id, struct ml_result *res,
			 struct cw_error *err);

/* ---- groups ---- */

/* Every group (GET /groups, all pages): *groups is a new reference to an
 * array of objects each with a digit-string "id" and a string "name". */
int ml_list_groups(struct ml_client *client, json_t **groups, struct cw_error *err);
/* POST /groups {"name": name}: 201 with res->data {id, name}. */
int ml_create_group(struct ml_client *client, const char *name, struct ml_result *res,
		    struct cw_error *err);
/* POST /subscribers/{sid}/groups/{gid}: 200. */
int ml_assign_group(struct ml_client *client, const char *subscriber_id, const char *group_id,
		    struct ml_result *res, struct cw_error *err);
/* DELETE /subscribers/{sid}/groups/{gid}: 204. */
int ml_unassign_group(struct ml_client *client, const char *subscriber_id, const char *group_id,
		      struct ml_result *res, struct cw_error *err);

/* ---- batch ---- */

/* One request of a batch: {"method", "path", "body"} (new reference; body
 * is stolen and may be NULL). path is relative to the API root with the
 * "api/" prefix the batch endpoint wants: "api/subscribers". */
json_t *ml_batch_request(const char *method, const char *path, json_t *body);

struct ml_batch_item {
	long code;	      /* the inner request's HTTP status */
	const json_t *body;   /* borrowed: its body (any JSON type, may be NULL) */
	const json_t *data;   /* borrowed: body.data when an object */
	const json_t *errors; /* borrowed: body.errors when an object */
	const char *message;  /* borrowed: body.message when a string */
};

struct ml_batch_result {
	long status;		    /* the batch's own status: 200, or a 4xx for the whole */
	json_t *root;		    /* new reference: the parsed body */
	struct ml_batch_item *items; /* owned array, in request order; n of them on a 200 */
	size_t n;
	long successful, failed;    /* counted from the items' codes (2xx or not) */
	const json_t *errors;	    /* borrowed: a 4xx batch's errors object */
	const char *message;	    /* borrowed: a 4xx batch's message */
};
void ml_batch_result_release(struct ml_batch_result *out);

/* POST /batch with 1..ML_BATCH_MAX requests (borrowed array from
 * ml_batch_request). When every request is POST api/subscribers the batch
 * counts as an import and takes an import token too. A 200 must carry
 * "responses" of the same length as requests (else malformed). */
int ml_batch(struct ml_client *client, const json_t *requests, struct ml_batch_result *out,
	     struct cw_error *err);

#endif
