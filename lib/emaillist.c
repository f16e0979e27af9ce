/* The emails a program is asked to sync: checked as text, normalized, de-duplicated. */
#include "emaillist.h"
#include "exitcode.h"
#include "record.h"
#include "xalloc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x)  STR_(x)

static const char too_long[] =
        "longer than " STR(EMAILLIST_LINE_MAX) " bytes: the input is not a list of emails";
static const char has_nul[] = "a NUL byte: the input is not text";
static const char not_utf8[] = "not valid UTF-8";

void emaillist_init(struct emaillist *l)
{
	memset(l, 0, sizeof(*l));
}

/* Free the entries from index `from` on. Only the text is freed: the email
 * lives in the same allocation (add_entry). */
static void drop_entries(struct emaillist *l, size_t from)
{
	for (size_t i = from; i < l->n; i++)
		free((char *)l->v[i].text);
	l->n = from;
}

void emaillist_release(struct emaillist *l)
{
	drop_entries(l, 0);
	free(l->v);
	free(l->slots);
	emaillist_init(l);
}

/* What an entry is known by: its email, or its text when it has none. The
 * two kinds cannot collide: a text equal to a valid normalized email
 * normalizes to itself, so its entry has that email. */
static const char *entry_key(const struct emaillist_entry *e)
{
	return e->email ? e->email : e->text;
}

/* FNV-1a, then a 64-bit finalizer: the table takes the low bits, and
 * emails that differ in a digit or two must still spread. */
static size_t hash_key(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)h;
}

/* The slot that holds key, or the free slot where it would go (linear
 * probing; the table is never more than half full, so one is free). */
static size_t *index_find(const struct emaillist *l, const char *key)
{
	size_t mask = l->nslots - 1;

	for (size_t i = hash_key(key) & mask;; i = (i + 1) & mask) {
		size_t *slot = &l->slots[i];
		if (!*slot || !strcmp(entry_key(&l->v[*slot - 1]), key))
			return slot;
	}
}

static void index_rebuild(struct emaillist *l, size_t nslots)
{
	free(l->slots);
	l->slots = xcalloc(nslots, sizeof(*l->slots));
	l->nslots = nslots;
	for (size_t i = 0; i < l->n; i++)
		*index_find(l, entry_key(&l->v[i])) = i + 1;
}

/* Add text (trimmed, checked as text) unless its key is there already. */
static void add_entry(struct emaillist *l, const char *text)
{
	char *email = record_normalize_email(text);
	bool valid = record_email_problem(email) == NULL;

	if (l->nslots < 2 * (l->n + 1))
		index_rebuild(l, l->nslots ? 2 * l->nslots : 64);
	size_t *slot = index_find(l, valid ? email : text);
	if (*slot) {
		free(email);
		return;
	}

	/* One allocation for both strings, and one string when the text is
	 * already normalized (as a column of a table usually is): a million
	 * entries are a million small blocks, not three million. */
	size_t tlen = strlen(text) + 1;
	size_t elen = valid && strcmp(text, email) ? strlen(email) + 1 : 0;
	char *mem = xmalloc(tlen + elen);
	memcpy(mem, text, tlen);
	memcpy(mem + tlen, email, elen);
	free(email);

	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 64;
		l->v = xreallocarray(l->v, l->alloc, sizeof(*l->v));
	}
	l->v[l->n].text = mem;
	l->v[l->n].email = !valid ? NULL : elen ? mem + tlen : mem;
	*slot = ++l->n;
}

/* Well-formed UTF-8 as RFC 3629 has it: no overlong forms, no surrogates,
 * nothing above U+10FFFF. Texts end up in JSON, which allows no other. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */
		size_t more;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			more = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			more = 2;
			if (c == 0xE0)
				lo = 0xA0; /* else overlong */
			else if (c == 0xED)
				hi = 0x9F; /* else a surrogate */
		} else if (c >= 0xF0 && c <= 0xF4) {
			more = 3;
			if (c == 0xF0)
				lo = 0x90; /* else overlong */
			else if (c == 0xF4)
				hi = 0x8F; /* else above U+10FFFF */
		} else {
			return false; /* a continuation byte, C0, C1 or F5..FF */
		}
		if (len - i <= more || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= more; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
		i += more + 1;
	}
	return true;
}

/* Why len bytes are not a line of text, or NULL. */
static const char *text_problem(const char *s, size_t len)
{
	if (len > EMAILLIST_LINE_MAX)
		return too_long;
	if (memchr(s, '\0', len))
		return has_nul;
	if (!utf8_valid((const unsigned char *)s, len))
		return not_utf8;
	return NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Trim s in place: the first non-blank character, the string cut after
 * the last. */
static char *trim(char *s)
{
	char *end = s + strlen(s);

	while (*s && is_space(*s))
		s++;
	while (end > s && is_space(end[-1]))
		end--;
	*end = '\0';
	return s;
}

int emaillist_add(struct emaillist *l, const char *text, const char *where, struct cw_error *err)
{
	const char *problem = text_problem(text, strnlen(text, EMAILLIST_LINE_MAX + 1));

	if (problem)
		return cw_error_set(err, CW_EXIT_DATAERR, "%s: %s", where, problem);
	char *copy = xstrdup(text);
	add_entry(l, trim(copy));
	free(copy);
	return 0;
}

/* One line of a stream, without its "\n"; the buffer has room for a NUL
 * after it. */
static int take_line(struct emaillist *l, char *line, size_t len, const char *name, size_t lineno,
                     struct cw_error *err)
{
	if (len && line[len - 1] == '\r')
		len--;
	/* Windows editors start UTF-8 files with a byte order mark. */
	if (lineno == 1 && len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) {
		line += 3;
		len -= 3;
	}
	const char *problem = text_problem(line, len);
	if (problem) {
		cw_error_set(err, CW_EXIT_DATAERR, "%s: line %zu: %s", name, lineno, problem);
		if (problem == has_nul)
			cw_error_detail(err, "A list of emails is UTF-8 text, one email a line; "
			                     "a UTF-16 or binary file has NUL bytes.");
		return -1;
	}
	line[len] = '\0';
	char *text = trim(line);
	if (*text && *text != '#')
		add_entry(l, text);
	return 0;
}

int emaillist_read(struct emaillist *l, FILE *f, const char *name, struct cw_error *err)
{
	/* The line is gathered in a buffer of a fixed size, so a line without
	 * end costs EMAILLIST_LINE_MAX bytes, not the size of the input. Room
	 * for a "\r" before the "\n", and the NUL. */
	char *line = xmalloc(EMAILLIST_LINE_MAX + 2);
	char chunk[16384];
	size_t len = 0, lineno = 1, n0 = l->n;
	int read_errno = 0;

	for (;;) {
		size_t got = fread(chunk, 1, sizeof(chunk), f);
		if (got < sizeof(chunk))
			read_errno = errno; /* before anything else can change it */
		if (!got)
			break;
		const char *p = chunk, *end = chunk + got;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t seg = (size_t)((nl ? nl : end) - p);
			if (seg > EMAILLIST_LINE_MAX + 1 - len) {
				cw_error_set(err, CW_EXIT_DATAERR, "%s: line %zu: %s", name, lineno,
				             too_long);
				goto fail;
			}
			memcpy(line + len, p, seg);
			len += seg;
			if (!nl)
				break;
			if (take_line(l, line, len, name, lineno, err) < 0)
				goto fail;
			len = 0;
			lineno++;
			p = nl + 1;
		}
	}
	if (ferror(f)) {
		cw_error_set(err, CW_EXIT_DATAERR, "could not read %s at line %zu: %s", name,
		             lineno, strerror(read_errno));
		goto fail;
	}
	if (len > 0 && take_line(l, line, len, name, lineno, err) < 0)
		goto fail;
	free(line);
	return 0;

fail:
	free(line);
	drop_entries(l, n0);
	if (l->nslots)
		index_rebuild(l, l->nslots);
	return -1;
}

int emaillist_read_file(struct emaillist *l, const char *path, struct cw_error *err)
{
	if (!strcmp(path, "-"))
		return emaillist_read(l, stdin, "standard input", err);

	FILE *f = fopen(path, "r");
	if (!f)
		return cw_error_set(err, CW_EXIT_DATAERR, "could not open email list \"%s\": %s",
		                    path, strerror(errno));
	int ret = emaillist_read(l, f, path, err);
	fclose(f);
	return ret;
}
