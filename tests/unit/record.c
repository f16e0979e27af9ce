/* Email and value normalization: the rules both sides are compared by. */
#include "record.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static void normalizes(const char *raw, const char *want)
{
	char *got = record_normalize_email(raw);
	is_str(got, want, "normalize \"%s\"", raw);
	free(got);
}

static void validity(const char *email, const char *problem)
{
	is_str(record_email_problem(email), problem, "problem of \"%s\"", email);
}

static void value(json_t *in, const char *want)
{
	json_t *out = record_value_normalize(in);
	if (!want)
		ok(out == NULL, "objects and arrays are not field values");
	else if (!strcmp(want, "null"))
		ok(out && json_is_null(out), "null stays null");
	else
		is_str(json_is_string(out) ? json_string_value(out) : "(not a string)", want,
		       "value normalizes to \"%s\"", want);
	json_decref(out);
	json_decref(in);
}

int main(void)
{
	normalizes("Ann@Example.COM", "ann@example.com");
	normalizes("  bob@example.com\t\r\n", "bob@example.com");
	normalizes("", "");
	normalizes("   ", "");
	normalizes("ÉLodie@Example.com", "Élodie@example.com"); /* ASCII only, like SQL's C collation */
	normalizes("MiXeD.Case+Tag@Sub.Example.ORG", "mixed.case+tag@sub.example.org");

	validity("ann@example.com", NULL);
	validity("a.b+c@sub.example.co.uk", NULL);
	validity("", "empty email");
	validity("no-at-sign.example.com", "invalid email");
	validity("two@@example.com", "invalid email");
	validity("a@b@example.com", "invalid email");
	validity("@example.com", "invalid email");
	validity("ann@", "invalid email");
	validity("ann@localhost", "invalid email");
	validity("ann@example.", "invalid email");
	validity("ann@.example.com", "invalid email");
	validity("ann@example..com", "invalid email");
	validity("an n@example.com", "invalid email");
	validity("ann@exa\tmple.com", "invalid email");
	validity("ann\x01@example.com", "invalid email");

	char long_local[300];
	memset(long_local, 'a', 250);
	strcpy(long_local + 250, "@x.io"); /* 255 bytes */
	validity(long_local, "email longer than 254 characters");
	long_local[249] = '\0';
	strcat(long_local, "@x.io"); /* 254 bytes */
	validity(long_local, NULL);

	value(json_string("Ann"), "Ann");
	value(json_string(""), "");
	value(json_string("  spaced  "), "  spaced  ");
	value(json_null(), "null");
	value(json_integer(42), "42");
	value(json_integer(-7), "-7");
	value(json_integer(9007199254740993LL), "9007199254740993");
	value(json_real(42.5), "42.5");
	value(json_real(0.1), "0.1");
	value(json_real(1e21), "1e+21");
	value(json_true(), "true");
	value(json_false(), "false");
	value(json_object(), NULL);
	value(json_array(), NULL);

	ok(record_id_valid("136429837182734337"), "18-digit id is valid");
	ok(record_id_valid("1"), "1-digit id is valid");
	ok(!record_id_valid(""), "empty id is not");
	ok(!record_id_valid("123456789012345678901"), "21 digits is not");
	ok(!record_id_valid("12a"), "letters are not");
	ok(!record_id_valid("-1"), "signs are not");
	ok(!record_id_valid("1.5e17"), "a double's text is not");
	ok(record_id_cmp("136429837182734337", "136429837182734338") < 0, "ids compare as numbers");
	ok(record_id_cmp("99", "100") < 0, "shorter is smaller");
	ok(record_id_cmp("0099", "99") == 0, "leading zeros do not count");
	ok(record_id_cmp("200", "100") > 0, "larger is larger");
	return done_testing();
}
