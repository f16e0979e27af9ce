/*
 * A contact's values in one canonical form on both sides: emails trimmed
 * and lower-cased (ASCII only, as MailerLite stores them), one validity rule
 * shared with SQL, and field values as JSON text or null.
 */
#ifndef CW_RECORD_H
#define CW_RECORD_H

#include <jansson.h>
#include <stdbool.h>

#define RECORD_EMAIL_MAX 254

/* The email rule as one regular expression that means the same as a POSIX
 * ERE (regcomp) and as a PostgreSQL regular expression (~), so a contact is
 * valid or invalid alike on both sides. Length is checked separately. */
#define RECORD_EMAIL_PATTERN \
	"^[^@[:space:][:cntrl:]]+@[^@.[:space:][:cntrl:]]+(\\.[^@.[:space:][:cntrl:]]+)+$"

/* The same normalization as SQL text, for an expression E of type text:
 * lower(btrim(E, whitespace) COLLATE "C"). RECORD_EMAIL_SQL("t.email"). */
#define RECORD_EMAIL_SQL(e) "lower(pg_catalog.btrim((" e ")::text, E' \\t\\r\\n\\f\\v') COLLATE \"C\")"

/* Trim ASCII whitespace and lower-case ASCII letters: a new string (free()). */
char *record_normalize_email(const char *raw);

/* True when a normalized email is 1..254 bytes and matches the pattern. */
bool record_email_valid(const char *normalized);

/* Why an email is unusable ("empty email", "invalid email"), or NULL. */
const char *record_email_problem(const char *normalized);

/* A field value in canonical form (new reference): JSON null stays null,
 * strings as they are, integers and reals as their decimal text, booleans
 * as "true"/"false"; NULL for objects and arrays (not a field value).
 * A values are cast to text in SQL, which yields the same forms. */
json_t *record_value_normalize(const json_t *value);

/* Compare two ids of decimal digits (MailerLite's 18-digit strings) as
 * numbers without converting them: <0, 0, >0. */
int record_id_cmp(const char *a, const char *b);

/* True when s is 1..20 ASCII digits: an id that is safe to keep as text. */
bool record_id_valid(const char *s);

#endif
