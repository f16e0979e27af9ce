/* The in-memory account: subscribers, groups and field definitions, with their indexes. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/*
 * Layout choices, for speed at a million subscribers:
 *  - subs[] is sorted by id because ids only grow and a deleted subscriber
 *    stays as a tombstone in its slot, so a cursor position is one binary
 *    search away and a page is a short backwards scan;
 *  - emails are found through an open-addressing table of slots with
 *    linear probing and backward-shift deletion;
 *  - a group keeps its member slots sorted, and counts per status, so its
 *    walk and its counters cost nothing per request;
 *  - field values are one blob per subscriber: entries of
 *    [u16 field index][u16 length][bytes], no terminator.
 */

static const char *const status_names[ST_COUNT] = {"active", "unsubscribed", "unconfirmed",
						   "bounced", "junk"};
static const char *const default_fields[] = {"name",    "last_name", "company", "country",
					     "city",    "phone",     "state",   "z_i_p"};

#define FIRST_SUB_ID   136429837182734337ULL
#define FIRST_GROUP_ID 152389470562817025ULL

const char *status_name(int st)
{
	return st >= 0 && st < ST_COUNT ? status_names[st] : "active";
}

int status_parse(const char *name)
{
	for (int i = 0; i < ST_COUNT; i++)
		if (strcmp(name, status_names[i]) == 0)
			return i;
	return -1;
}

const char *source_name(int src)
{
	switch (src) {
	case SRC_MANUAL:
		return "manual";
	case SRC_IMPORT:
		return "import";
	default:
		return "api";
	}
}

const char *field_type_name(enum field_type t)
{
	switch (t) {
	case FT_NUMBER:
		return "number";
	case FT_DATE:
		return "date";
	default:
		return "text";
	}
}

int field_type_parse(const char *name)
{
	if (strcmp(name, "text") == 0)
		return FT_TEXT;
	if (strcmp(name, "number") == 0)
		return FT_NUMBER;
	if (strcmp(name, "date") == 0)
		return FT_DATE;
	return -1;
}

char *email_normalize(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
			 s[n - 1] == '\r'))
		n--;
	char *e = xstrndup(s, n);
	for (size_t i = 0; i < n; i++)
		if (e[i] >= 'A' && e[i] <= 'Z')
			e[i] = (char)(e[i] - 'A' + 'a');
	return e;
}

static uint64_t next_rand(struct store *s)
{
	/* xorshift64*: deterministic, so runs are reproducible. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ULL;
}

static void add_default_fields(struct store *s)
{
	s->nfields = 0;
	for (size_t i = 0; i < sizeof default_fields / sizeof *default_fields; i++)
		store_field_add(s, default_fields[i], FT_TEXT);
}

void store_init(struct store *s)
{
	memset(s, 0, sizeof *s);
	s->next_sub_id = FIRST_SUB_ID;
	s->next_group_id = FIRST_GROUP_ID;
	s->rng = 0x9E3779B97F4A7C15ULL;
	s->email_cap = 1024;
	s->email_tab = xcalloc(s->email_cap, sizeof(uint64_t));
	add_default_fields(s);
}

static void free_contents(struct store *s)
{
	for (uint32_t i = 0; i < s->nsubs; i++) {
		struct subscriber *sub = &s->subs[i];
		free(sub->email);
		free(sub->fblob);
		free(sub->groups);
		free(sub->ip_address);
		free(sub->optin_ip);
	}
	for (uint32_t i = 0; i < s->ngroups; i++) {
		free(s->groups[i].name);
		free(s->groups[i].members);
	}
	free(s->subs);
	free(s->groups);
	free(s->email_tab);
}

void store_release(struct store *s)
{
	free_contents(s);
	memset(s, 0, sizeof *s);
}

void store_reset(struct store *s)
{
	uint64_t sub_id = s->next_sub_id, group_id = s->next_group_id, rng = s->rng;
	store_release(s);
	store_init(s);
	s->next_sub_id = sub_id;
	s->next_group_id = group_id;
	s->rng = rng;
}

/* FNV-1a, 64 bits, then a final mix so similar emails spread over the table. */
static uint64_t hash_email(const char *e)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *e; e++) {
		h ^= (unsigned char)*e;
		h *= 1099511628211ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

/*
 * An entry keeps the hash's high 32 bits beside the slot, so a probe only
 * touches the (cold) email string when the tags agree.
 */
#define ENTRY(hash, slot) ((hash) >> 32 << 32 | ((uint64_t)(slot) + 1))
#define ENTRY_SLOT(e)	  ((uint32_t)((e) & 0xFFFFFFFFu) - 1)
#define ENTRY_TAG(e)	  ((e) >> 32)

static void email_insert_raw(uint64_t *tab, uint32_t cap, uint64_t h, uint32_t slot)
{
	uint32_t mask = cap - 1, i = (uint32_t)h & mask;
	while (tab[i])
		i = (i + 1) & mask;
	tab[i] = ENTRY(h, slot);
}

static void email_grow(struct store *s)
{
	uint32_t cap = s->email_cap * 2;
	uint64_t *tab = xcalloc(cap, sizeof(uint64_t));
	for (uint32_t i = 0; i < s->email_cap; i++) {
		uint64_t e = s->email_tab[i];
		if (e)
			email_insert_raw(tab, cap, hash_email(s->subs[ENTRY_SLOT(e)].email),
					 ENTRY_SLOT(e));
	}
	free(s->email_tab);
	s->email_tab = tab;
	s->email_cap = cap;
}

static void email_insert(struct store *s, uint32_t slot)
{
	if ((s->email_used + 1) * 2 > s->email_cap)
		email_grow(s);
	email_insert_raw(s->email_tab, s->email_cap, hash_email(s->subs[slot].email), slot);
	s->email_used++;
}

static void email_remove(struct store *s, uint32_t slot)
{
	uint32_t mask = s->email_cap - 1;
	uint32_t i = (uint32_t)hash_email(s->subs[slot].email) & mask;
	while (s->email_tab[i] && ENTRY_SLOT(s->email_tab[i]) != slot)
		i = (i + 1) & mask;
	if (!s->email_tab[i])
		return;
	s->email_tab[i] = 0;
	s->email_used--;
	/* Backward shift: pull later members of the cluster into the hole. */
	uint32_t hole = i, j = i;
	for (;;) {
		j = (j + 1) & mask;
		uint64_t e = s->email_tab[j];
		if (!e)
			break;
		uint32_t home = (uint32_t)hash_email(s->subs[ENTRY_SLOT(e)].email) & mask;
		/* Move e when its home is not cyclically within (hole, j]. */
		int in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!in_range) {
			s->email_tab[hole] = e;
			s->email_tab[j] = 0;
			hole = j;
		}
	}
}

long store_find_email(const struct store *s, const char *email)
{
	uint64_t h = hash_email(email);
	uint32_t mask = s->email_cap - 1, i = (uint32_t)h & mask;
	for (;;) {
		uint64_t e = s->email_tab[i];
		if (!e)
			return -1;
		if (ENTRY_TAG(e) == h >> 32 && strcmp(s->subs[ENTRY_SLOT(e)].email, email) == 0)
			return (long)ENTRY_SLOT(e);
		i = (i + 1) & mask;
	}
}

long store_find_id(const struct store *s, uint64_t id)
{
	size_t lo = 0, hi = s->nsubs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->subs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s->nsubs && s->subs[lo].id == id)
		return (long)lo;
	return -1;
}

long store_lookup(const struct store *s, const char *id_or_email)
{
	uint64_t id;
	long slot;
	if (parse_u64(id_or_email, &id) == 0) {
		slot = store_find_id(s, id);
	} else {
		char *e = email_normalize(id_or_email);
		slot = store_find_email(s, e);
		free(e);
	}
	if (slot >= 0 && s->subs[slot].deleted)
		return -1;
	return slot;
}

void store_reserve(struct store *s, uint32_t n)
{
	if ((uint64_t)s->nsubs + n > s->subs_cap) {
		uint64_t cap = s->subs_cap ? s->subs_cap : 1024;
		while (cap < (uint64_t)s->nsubs + n)
			cap *= 2;
		if (cap > UINT32_MAX - 1)
			cap = UINT32_MAX - 1;
		s->subs = xrealloc(s->subs, cap * sizeof *s->subs);
		s->subs_cap = (uint32_t)cap;
	}
	while ((uint64_t)(s->email_used + n) * 2 > s->email_cap)
		email_grow(s);
}

static void init_fresh(struct subscriber *sub, int64_t now, int source)
{
	sub->fblob = NULL;
	sub->fblob_len = 0;
	sub->groups = NULL;
	sub->ngroups = 0;
	sub->ip_address = NULL;
	sub->optin_ip = NULL;
	sub->updated_at = now;
	sub->subscribed_at = TIME_NULL;
	sub->unsubscribed_at = TIME_NULL;
	sub->opted_in_at = TIME_NULL;
	sub->status = ST_ACTIVE;
	sub->source = (uint8_t)source;
	sub->deleted = 0;
}

uint32_t store_create(struct store *s, const char *email, int64_t now, int source, int *revived)
{
	long old = store_find_email(s, email);
	uint32_t slot;
	if (old >= 0) {
		/* A tombstone: the same id comes back. */
		slot = (uint32_t)old;
		init_fresh(&s->subs[slot], now, source);
		*revived = 1;
	} else {
		store_reserve(s, 1);
		slot = s->nsubs++;
		struct subscriber *sub = &s->subs[slot];
		sub->id = s->next_sub_id;
		s->next_sub_id += 1 + next_rand(s) % 999983;
		sub->email = xstrdup(email);
		sub->created_at = now;
		init_fresh(sub, now, source);
		email_insert(s, slot);
		*revived = 0;
	}
	s->live++;
	s->counts[ST_ACTIVE]++;
	return slot;
}

void store_delete(struct store *s, uint32_t slot)
{
	struct subscriber *sub = &s->subs[slot];
	if (sub->deleted)
		return;
	while (sub->ngroups > 0)
		store_group_remove(s, slot, sub->groups[sub->ngroups - 1]);
	free(sub->groups);
	free(sub->fblob);
	free(sub->ip_address);
	free(sub->optin_ip);
	s->counts[sub->status]--;
	s->live--;
	init_fresh(sub, sub->updated_at, sub->source);
	sub->deleted = 1;
}

void store_set_status(struct store *s, uint32_t slot, int status)
{
	struct subscriber *sub = &s->subs[slot];
	if (sub->status == status)
		return;
	s->counts[sub->status]--;
	s->counts[status]++;
	for (uint16_t i = 0; i < sub->ngroups; i++) {
		struct group *g = &s->groups[sub->groups[i]];
		g->counts[sub->status]--;
		g->counts[status]++;
	}
	sub->status = (uint8_t)status;
}

int store_set_email(struct store *s, uint32_t slot, const char *email)
{
	struct subscriber *sub = &s->subs[slot];
	if (strcmp(sub->email, email) == 0)
		return 0;
	long other = store_find_email(s, email);
	if (other >= 0) {
		if (!s->subs[other].deleted)
			return -1;
		/* The tombstone can no longer be revived by that email. */
		email_remove(s, (uint32_t)other);
		free(s->subs[other].email);
		s->subs[other].email = xstrdup("");
	}
	email_remove(s, slot);
	free(sub->email);
	sub->email = xstrdup(email);
	email_insert(s, slot);
	return 0;
}

void store_set_string(char **member, const char *value)
{
	free(*member);
	*member = value ? xstrdup(value) : NULL;
}

int store_field_find(const struct store *s, const char *name)
{
	for (uint32_t i = 0; i < s->nfields; i++)
		if (strcmp(s->fields[i].name, name) == 0)
			return (int)i;
	return -1;
}

int store_field_add(struct store *s, const char *name, enum field_type type)
{
	if (s->nfields >= FIELDS_MAX || strlen(name) >= FIELD_NAME_MAX)
		return -1;
	struct field_def *f = &s->fields[s->nfields];
	memcpy(f->name, name, strlen(name) + 1);
	f->type = type;
	return (int)s->nfields++;
}

static uint16_t rd16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void wr16(unsigned char *p, size_t v)
{
	p[0] = (unsigned char)(v & 0xFF);
	p[1] = (unsigned char)(v >> 8 & 0xFF);
}

const char *store_field_get(const struct subscriber *sub, int fi, size_t *len)
{
	const unsigned char *p = sub->fblob, *end = p + sub->fblob_len;
	while (p && p < end) {
		uint16_t f = rd16(p), l = rd16(p + 2);
		if (f == fi) {
			*len = l;
			return (const char *)p + 4;
		}
		p += 4 + l;
	}
	return NULL;
}

int store_field_set(struct subscriber *sub, int fi, const char *value, size_t len)
{
	size_t oldlen;
	const char *old = store_field_get(sub, fi, &oldlen);
	if (!old && !value)
		return 0;
	if (old && value && oldlen == len && memcmp(old, value, len) == 0)
		return 0;
	if (len > 0xFFFF)
		len = 0xFFFF;
	size_t keep = sub->fblob_len - (old ? oldlen + 4 : 0);
	size_t total = keep + (value ? len + 4 : 0);
	unsigned char *blob = total ? xmalloc(total) : NULL, *o = blob;
	const unsigned char *p = sub->fblob, *end = p + sub->fblob_len;
	while (p && p < end) {
		uint16_t f = rd16(p), l = rd16(p + 2);
		if (f != fi) {
			memcpy(o, p, 4 + (size_t)l);
			o += 4 + l;
		}
		p += 4 + l;
	}
	if (value) {
		wr16(o, (size_t)fi);
		wr16(o + 2, len);
		memcpy(o + 4, value, len);
	}
	free(sub->fblob);
	sub->fblob = blob;
	sub->fblob_len = (uint32_t)total;
	return 1;
}

long store_group_find_id(const struct store *s, uint64_t id)
{
	size_t lo = 0, hi = s->ngroups;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->groups[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s->ngroups && s->groups[lo].id == id && !s->groups[lo].deleted)
		return (long)lo;
	return -1;
}

long store_group_find_name(const struct store *s, const char *name)
{
	for (uint32_t i = 0; i < s->ngroups; i++)
		if (!s->groups[i].deleted && strcmp(s->groups[i].name, name) == 0)
			return (long)i;
	return -1;
}

uint32_t store_group_create(struct store *s, const char *name, int64_t now)
{
	if (s->ngroups == s->groups_cap) {
		s->groups_cap = s->groups_cap ? s->groups_cap * 2 : 16;
		s->groups = xrealloc(s->groups, s->groups_cap * sizeof *s->groups);
	}
	struct group *g = &s->groups[s->ngroups];
	memset(g, 0, sizeof *g);
	g->id = s->next_group_id;
	s->next_group_id += 1 + next_rand(s) % 99991;
	g->name = xstrdup(name);
	g->created_at = now;
	s->live_groups++;
	return s->ngroups++;
}

void store_group_delete(struct store *s, uint32_t gslot)
{
	struct group *g = &s->groups[gslot];
	while (g->nmembers > 0)
		store_group_remove(s, g->members[g->nmembers - 1], gslot);
	free(g->members);
	g->members = NULL;
	g->cap = 0;
	g->deleted = 1;
	s->live_groups--;
}

/* Position of the first member slot >= slot. */
static uint32_t member_pos(const struct group *g, uint32_t slot)
{
	uint32_t lo = 0, hi = g->nmembers;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (g->members[mid] < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int store_sub_in_group(const struct store *s, uint32_t slot, uint32_t gslot)
{
	const struct subscriber *sub = &s->subs[slot];
	for (uint16_t i = 0; i < sub->ngroups; i++)
		if (sub->groups[i] == gslot)
			return 1;
	return 0;
}

int store_group_add(struct store *s, uint32_t slot, uint32_t gslot)
{
	struct subscriber *sub = &s->subs[slot];
	struct group *g = &s->groups[gslot];
	if (g->deleted || sub->deleted || store_sub_in_group(s, slot, gslot) ||
	    sub->ngroups == UINT16_MAX)
		return 0;
	sub->groups = xrealloc(sub->groups, (sub->ngroups + 1u) * sizeof(uint32_t));
	sub->groups[sub->ngroups++] = gslot;
	if (g->nmembers == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 16;
		g->members = xrealloc(g->members, g->cap * sizeof(uint32_t));
	}
	uint32_t pos = (g->nmembers == 0 || g->members[g->nmembers - 1] < slot)
			       ? g->nmembers
			       : member_pos(g, slot);
	memmove(g->members + pos + 1, g->members + pos, (g->nmembers - pos) * sizeof(uint32_t));
	g->members[pos] = slot;
	g->nmembers++;
	g->counts[sub->status]++;
	return 1;
}

int store_group_remove(struct store *s, uint32_t slot, uint32_t gslot)
{
	struct subscriber *sub = &s->subs[slot];
	struct group *g = &s->groups[gslot];
	uint16_t i;
	for (i = 0; i < sub->ngroups; i++)
		if (sub->groups[i] == gslot)
			break;
	if (i == sub->ngroups)
		return 0;
	memmove(sub->groups + i, sub->groups + i + 1, (sub->ngroups - i - 1u) * sizeof(uint32_t));
	sub->ngroups--;
	if (sub->ngroups == 0) {
		free(sub->groups);
		sub->groups = NULL;
	}
	uint32_t pos = member_pos(g, slot);
	if (pos < g->nmembers && g->members[pos] == slot) {
		memmove(g->members + pos, g->members + pos + 1,
			(g->nmembers - pos - 1) * sizeof(uint32_t));
		g->nmembers--;
		g->counts[sub->status]--;
	}
	return 1;
}

static inline uint32_t seq_slot(const uint32_t *seq, size_t i)
{
	return seq ? seq[i] : (uint32_t)i;
}

/* First position in seq whose id is >= id (strict: > id). */
static size_t seq_bound(const struct store *s, const uint32_t *seq, size_t len, uint64_t id,
			int strict)
{
	size_t lo = 0, hi = len;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t v = s->subs[seq_slot(seq, mid)].id;
		if (strict ? v <= id : v < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static inline int wanted(const struct subscriber *sub, int status)
{
	return !sub->deleted && (status < 0 || sub->status == status);
}

size_t store_walk(const struct store *s, const uint32_t *seq, size_t seqlen, int status,
		  int backward, int has_pivot, uint64_t pivot, size_t limit, uint32_t *out,
		  int *more)
{
	size_t n = 0;
	*more = 0;
	if (!seq)
		seqlen = s->nsubs;
	if (!backward) {
		size_t i = has_pivot ? seq_bound(s, seq, seqlen, pivot, 0) : seqlen;
		while (i > 0) {
			uint32_t slot = seq_slot(seq, --i);
			if (!wanted(&s->subs[slot], status))
				continue;
			if (n == limit) {
				*more = 1;
				break;
			}
			out[n++] = slot;
		}
		return n;
	}
	size_t i = has_pivot ? seq_bound(s, seq, seqlen, pivot, 1) : 0;
	for (; i < seqlen; i++) {
		uint32_t slot = seq_slot(seq, i);
		if (!wanted(&s->subs[slot], status))
			continue;
		if (n == limit) {
			*more = 1;
			break;
		}
		out[n++] = slot;
	}
	for (size_t a = 0, b = n; a + 1 < b; a++, b--) {
		uint32_t t = out[a];
		out[a] = out[b - 1];
		out[b - 1] = t;
	}
	return n;
}
