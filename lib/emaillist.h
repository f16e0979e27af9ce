/*
 * The contacts a program is asked to sync, by email: from arguments and
 * from files or standard input of one email a line, de-duplicated in the
 * order first given.
 */
#ifndef CW_EMAILLIST_H
#define CW_EMAILLIST_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* The longest line (or argument) taken, in bytes, its line end not
 * counted. A longer one means the input is not a list of emails: it is
 * refused as soon as the cap is passed, never read whole. */
#define EMAILLIST_LINE_MAX 65536

struct emaillist_entry {
	const char *text;  /* as given, whitespace-trimmed; valid UTF-8 */
	const char *email; /* normalized (record_normalize_email), or NULL when
	                    * record_email_problem() finds it unusable */
};

/*
 * Entries in the order first given; the list owns their strings (one
 * allocation an entry, freed by emaillist_release). Two entries never share
 * an email; entries without one never share a text.
 *
 * Memory: an entry kept costs its text's length (twice that when the text
 * is not already normalized) and about 60 bytes for the array, the index
 * and the allocation; a duplicate costs nothing. A million distinct emails
 * of ~25 bytes take 80-100 MB. Lines are not limited in number; reading
 * needs EMAILLIST_LINE_MAX bytes more, whatever the input.
 */
struct emaillist {
	struct emaillist_entry *v;
	size_t n;
	/* private */
	size_t alloc;
	size_t *slots; /* open addressing: 1 + an index into v, 0 when free */
	size_t nslots; /* a power of two, at least twice n */
};

void emaillist_init(struct emaillist *l);
/* Free every entry and the index; l is empty (initialized) afterwards. */
void emaillist_release(struct emaillist *l);

/*
 * Add one email given as an argument, taken literally: trimmed, but no
 * comment or blank skipping (an empty argument is an entry without email).
 * A duplicate is dropped and is no error. Text that is not valid UTF-8 or
 * longer than EMAILLIST_LINE_MAX fails with CW_EXIT_DATAERR and a message
 * that starts with where ("argument 3: not valid UTF-8"). Returns 0 or -1.
 */
int emaillist_add(struct emaillist *l, const char *text, const char *where, struct cw_error *err);

/*
 * Add the emails of a stream, one a line, until EOF: lines that are blank
 * or whose first non-blank character is '#' are skipped; "\n" and "\r\n"
 * both end a line; a last line without one counts; a UTF-8 byte order mark
 * at the start is skipped. The stream is not closed.
 *
 * Input that is not a list of emails (a NUL byte, a line longer than
 * EMAILLIST_LINE_MAX, bytes that are not UTF-8) fails with CW_EXIT_DATAERR
 * and "NAME: line N: ..." ("standard input: line 7: a NUL byte: the input
 * is not text"); a read error too, with "could not read NAME at line N:
 * REASON". The list is then as it was before the call: a source is taken
 * whole or not at all. Returns 0 or -1.
 */
int emaillist_read(struct emaillist *l, FILE *f, const char *name, struct cw_error *err);

/* emaillist_read() on the file at path, named by its path; "-" reads
 * standard input, named "standard input". A file that cannot be opened
 * fails with CW_EXIT_DATAERR and the system's reason. */
int emaillist_read_file(struct emaillist *l, const char *path, struct cw_error *err);

#endif
