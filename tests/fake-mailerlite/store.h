/* The in-memory account: subscribers, groups and field definitions, with their indexes. */
#ifndef FAKE_STORE_H
#define FAKE_STORE_H

#include <stddef.h>
#include <stdint.h>

enum sub_status {
	ST_ACTIVE,
	ST_UNSUBSCRIBED,
	ST_UNCONFIRMED,
	ST_BOUNCED,
	ST_JUNK,
	ST_COUNT
};

enum sub_source { SRC_API, SRC_MANUAL, SRC_IMPORT };

enum field_type { FT_TEXT, FT_NUMBER, FT_DATE };

#define FIELD_NAME_MAX 64
#define FIELDS_MAX 256

struct field_def {
	char name[FIELD_NAME_MAX];
	enum field_type type;
};

/*
 * One subscriber, kept small: a million of them must fit in a few hundred
 * megabytes. Field values live in one packed blob (see store.c). A deleted
 * subscriber stays in place as a tombstone (deleted = 1) holding its id and
 * email, so that POSTing the email again brings the same id back and the
 * slot array stays sorted by id.
 */
struct subscriber {
	uint64_t id;
	char *email;
	unsigned char *fblob;
	uint32_t *groups; /* group slots, in the order they were added */
	char *ip_address;
	char *optin_ip;
	int64_t created_at;
	int64_t updated_at;
	int64_t subscribed_at;
	int64_t unsubscribed_at;
	int64_t opted_in_at;
	uint32_t fblob_len;
	uint16_t ngroups;
	uint8_t status;
	uint8_t source;
	uint8_t deleted;
};

struct group {
	uint64_t id;
	char *name;
	int64_t created_at;
	uint32_t *members; /* subscriber slots, ascending (so by id) */
	uint32_t nmembers;
	uint32_t cap;
	uint32_t counts[ST_COUNT];
	uint8_t deleted;
};

struct store {
	struct subscriber *subs; /* ascending id; slot = index */
	uint32_t nsubs;
	uint32_t subs_cap;
	uint64_t *email_tab; /* open addressing: hash tag << 32 | (slot + 1), 0 = empty */
	uint32_t email_cap;  /* power of two */
	uint32_t email_used;
	struct group *groups; /* ascending id; slot = index */
	uint32_t ngroups;
	uint32_t groups_cap;
	uint32_t live_groups;
	struct field_def fields[FIELDS_MAX];
	uint32_t nfields;
	uint32_t live;
	uint32_t counts[ST_COUNT];
	uint64_t next_sub_id;
	uint64_t next_group_id;
	uint64_t rng;
};

void store_init(struct store *s);
void store_release(struct store *s);
/* Empties the store but keeps the id counters going: ids are never reused. */
void store_reset(struct store *s);

const char *status_name(int st);
/* Status by name, or -1. */
int status_parse(const char *name);
const char *source_name(int src);
const char *field_type_name(enum field_type t);
int field_type_parse(const char *name);

/* Lower-cases and trims an email into a new string. */
char *email_normalize(const char *s);

/* Slot of a subscriber (tombstones included) by normalized email, or -1. */
long store_find_email(const struct store *s, const char *email);
/* Slot of a subscriber (tombstones included) by id, or -1. */
long store_find_id(const struct store *s, uint64_t id);
/* Slot of a live subscriber by id or by email (not normalized yet), or -1. */
long store_lookup(const struct store *s, const char *id_or_email);

/*
 * A live subscriber for email (already normalized; ownership not taken):
 * revives the tombstone holding that email, else appends a new one with the
 * next id. Status active, all timestamps null except created/updated (now).
 * *revived tells which. The email must not belong to a live subscriber.
 */
uint32_t store_create(struct store *s, const char *email, int64_t now, int source, int *revived);
/* Makes room for n more subscribers (bulk seeding). */
void store_reserve(struct store *s, uint32_t n);
/* Turns a live subscriber into a tombstone. */
void store_delete(struct store *s, uint32_t slot);
void store_set_status(struct store *s, uint32_t slot, int status);
/*
 * Moves a subscriber to a new normalized email. A tombstone holding that
 * email loses it for good. Returns -1 if a live subscriber has it.
 */
int store_set_email(struct store *s, uint32_t slot, const char *email);
/* Replaces a malloc'd string member (ip_address, optin_ip); NULL clears. */
void store_set_string(char **member, const char *value);

/* Field definitions. */
int store_field_find(const struct store *s, const char *name);
/* Index of the new field, -1 when the table is full. */
int store_field_add(struct store *s, const char *name, enum field_type type);

/* Borrowed value of field fi (not NUL-terminated, *len set), or NULL. */
const char *store_field_get(const struct subscriber *sub, int fi, size_t *len);
/* Sets field fi (value NULL clears). Returns 1 when the value changed. */
int store_field_set(struct subscriber *sub, int fi, const char *value, size_t len);

/* Groups. */
long store_group_find_id(const struct store *s, uint64_t id);
/* First live group with exactly this name, or -1. */
long store_group_find_name(const struct store *s, const char *name);
uint32_t store_group_create(struct store *s, const char *name, int64_t now);
void store_group_delete(struct store *s, uint32_t gslot);
/* Membership; each returns 1 when something changed. */
int store_group_add(struct store *s, uint32_t slot, uint32_t gslot);
int store_group_remove(struct store *s, uint32_t slot, uint32_t gslot);
int store_sub_in_group(const struct store *s, uint32_t slot, uint32_t gslot);

/*
 * One page of a cursor walk over seq (subscriber slots ascending by id;
 * NULL means every slot), live subscribers only, optionally with one status
 * (status < 0: any).
 *   forward (pointing to next items): ids below pivot (all when !has_pivot),
 *     newest first;
 *   backward (pointing to previous items): ids above pivot, the limit
 *     closest to it, rendered newest first as well.
 * Writes at most limit slots to out (descending id) and sets *more when a
 * further matching item exists beyond the page in the walking direction.
 */
size_t store_walk(const struct store *s, const uint32_t *seq, size_t seqlen, int status,
		  int backward, int has_pivot, uint64_t pivot, size_t limit, uint32_t *out,
		  int *more);

#endif
