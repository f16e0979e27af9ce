/* The list of emails to sync: what is skipped, kept, merged and refused. */
#include "emaillist.h"
#include "exitcode.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Read len bytes as standard input would be; returns the status and leaves
 * the error in err. */
static int read_mem(struct emaillist *l, const char *data, size_t len, struct cw_error *err)
{
	FILE *f = fmemopen((void *)data, len, "r");
	int ret;

	if (!f) {
		diag("fmemopen: %s", strerror(errno));
		return -2;
	}
	cw_error_clear(err);
	ret = emaillist_read(l, f, "standard input", err);
	fclose(f);
	return ret;
}

#define READ(l, lit, err) read_mem(l, lit, sizeof(lit) - 1, err)

/* The entries as "text=email" lines ("text=-" without email), for one
 * comparison that shows everything when it fails. */
static char *dump(const struct emaillist *l)
{
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);

	for (size_t i = 0; i < l->n; i++)
		fprintf(f, "%s=%s\n", l->v[i].text, l->v[i].email ? l->v[i].email : "-");
	fclose(f);
	return out;
}

static void entries(const struct emaillist *l, const char *want, const char *what)
{
	char *got = dump(l);
	is_str(got, want, "%s", what);
	free(got);
}

/* A stream of `prefix` and then `total` bytes of 'a' (no newline), that
 * counts what was taken from it: an over-long line must be refused without
 * being read to its end. */
struct endless {
	const char *prefix;
	size_t prefix_len, total, pos;
	int fail_errno; /* after the prefix: a read error instead of data */
};

static ssize_t endless_read(void *cookie, char *buf, size_t size)
{
	struct endless *g = cookie;
	size_t n = 0;

	while (n < size && g->pos < g->prefix_len)
		buf[n++] = g->prefix[g->pos++];
	if (n)
		return (ssize_t)n;
	if (g->fail_errno) {
		errno = g->fail_errno;
		return -1;
	}
	if (g->pos >= g->prefix_len + g->total)
		return 0;
	n = g->prefix_len + g->total - g->pos;
	if (n > size)
		n = size;
	memset(buf, 'a', n);
	g->pos += n;
	return (ssize_t)n;
}

static void skips_and_trims(void)
{
	struct emaillist l;
	struct cw_error err;

	emaillist_init(&l);
	is_int(READ(&l,
	            "# recent clients\n"
	            "\n"
	            "  Ann@Example.COM  \n"
	            "\t# an indented comment\n"
	            " \t \n"
	            "bob@example.com\n"
	            "#\n",
	            &err),
	       0, "a list with comments and blank lines is read");
	entries(&l, "Ann@Example.COM=ann@example.com\nbob@example.com=bob@example.com\n",
	        "comments and blank lines skipped, text trimmed, email normalized");
	emaillist_release(&l);
	ok(l.n == 0 && l.v == NULL, "release empties the list");
}

static void duplicates(void)
{
	struct emaillist l;
	struct cw_error err;

	emaillist_init(&l);
	is_int(READ(&l,
	            "Carl@X.io\n"
	            "dana@x.io\n"
	            "  carl@x.io\n"
	            "CARL@X.IO\t\n"
	            "erin@x.io\n"
	            "Dana@x.io\n",
	            &err),
	       0, "a list with duplicates is read");
	entries(&l, "Carl@X.io=carl@x.io\ndana@x.io=dana@x.io\nerin@x.io=erin@x.io\n",
	        "case and space variants collapse onto the first, in first-seen order");

	is_int(emaillist_add(&l, " ERIN@x.io ", "argument 1", &err), 0, "an argument is added");
	is_int(emaillist_add(&l, "fay@x.io", "argument 2", &err), 0, "another one");
	entries(&l,
	        "Carl@X.io=carl@x.io\ndana@x.io=dana@x.io\nerin@x.io=erin@x.io\n"
	        "fay@x.io=fay@x.io\n",
	        "arguments and lines share one list");
	emaillist_release(&l);
}

static void invalid_kept(void)
{
	struct emaillist l;
	struct cw_error err;

	emaillist_init(&l);
	is_int(READ(&l,
	            "not an email\n"
	            "ann@localhost\n"
	            "  not an email\n"
	            "Not an email\n"
	            "@example.com\n"
	            "ann@localhost\n",
	            &err),
	       0, "invalid emails are no reason to refuse a list");
	entries(&l, "not an email=-\nann@localhost=-\nNot an email=-\n@example.com=-\n",
	        "invalid emails kept without email, de-duplicated by their text");
	emaillist_release(&l);

	emaillist_init(&l);
	emaillist_add(&l, "", "argument 1", &err);
	emaillist_add(&l, "   ", "argument 2", &err);
	emaillist_add(&l, "# Ann@Example.com", "argument 3", &err);
	entries(&l, "=-\n# Ann@Example.com=-\n",
	        "arguments are literal: an empty one is an entry, '#' starts no comment");
	emaillist_release(&l);
}

static void line_ends(void)
{
	struct emaillist l;
	struct cw_error err;

	emaillist_init(&l);
	is_int(READ(&l, "a@x.io\r\nB@x.io\r\n\r\n# note\r\nc@x.io", &err), 0,
	       "CRLF lines and a last line without newline are read");
	entries(&l, "a@x.io=a@x.io\nB@x.io=b@x.io\nc@x.io=c@x.io\n",
	        "no '\\r' in the texts, the last line counts");
	emaillist_release(&l);

	emaillist_init(&l);
	is_int(READ(&l,
	            "\xEF\xBB\xBF"
	            "d@x.io\n",
	            &err),
	       0, "a file with a byte order mark is read");
	entries(&l, "d@x.io=d@x.io\n", "the byte order mark is not part of the first email");
	emaillist_release(&l);

	emaillist_init(&l);
	is_int(READ(&l, "", &err), 0, "empty input is an empty list");
	is_int((long long)l.n, 0, "with no entries");
	emaillist_release(&l);
}

static void refused_as_a_whole(void)
{
	struct emaillist l;
	struct cw_error err;
	static const char nul[] = "keep@x.io\n"
	                          "# fine so far\n"
	                          "lost@x.io\n"
	                          "bad\0line@x.io\n"
	                          "after@x.io\n";

	emaillist_init(&l);
	emaillist_add(&l, "keep@x.io", "argument 1", &err);
	is_int(read_mem(&l, nul, sizeof(nul) - 1, &err), -1, "a NUL byte refuses the input");
	is_int(err.code, CW_EXIT_DATAERR, "as bad data (65)");
	is_str(err.msg, "standard input: line 4: a NUL byte: the input is not text",
	       "naming the source and the line");
	ok(strstr(err.detail, "UTF-16") != NULL, "the detail names the likely cause");
	entries(&l, "keep@x.io=keep@x.io\n", "the list is as it was before the refused input");

	emaillist_add(&l, "lost@x.io", "argument 2", &err);
	entries(&l, "keep@x.io=keep@x.io\nlost@x.io=lost@x.io\n",
	        "an email of the refused input is no duplicate afterwards");
	emaillist_release(&l);

	emaillist_init(&l);
	is_int(READ(&l, "a@x.io\n\0\n", &err), -1, "a NUL alone on its line is refused too");
	is_str(err.msg, "standard input: line 2: a NUL byte: the input is not text", "on line 2");
	emaillist_release(&l);
}

static void long_lines(void)
{
	struct emaillist l;
	struct cw_error err;
	char *buf = malloc(EMAILLIST_LINE_MAX + 16);

	/* Exactly at the cap, with either line end, then one byte over. */
	memset(buf, 'a', EMAILLIST_LINE_MAX);
	memcpy(buf + EMAILLIST_LINE_MAX, "\r\n", 2);
	emaillist_init(&l);
	is_int(read_mem(&l, buf, EMAILLIST_LINE_MAX + 2, &err), 0,
	       "a line of EMAILLIST_LINE_MAX bytes and CRLF is read");
	ok(l.n == 1 && strlen(l.v[0].text) == EMAILLIST_LINE_MAX && !l.v[0].email,
	   "as one entry, not an email");
	emaillist_release(&l);

	emaillist_init(&l);
	is_int(read_mem(&l, buf, EMAILLIST_LINE_MAX, &err), 0,
	       "a last line of EMAILLIST_LINE_MAX bytes without newline is read");
	emaillist_release(&l);

	buf[EMAILLIST_LINE_MAX] = 'a';
	emaillist_init(&l);
	is_int(read_mem(&l, buf, EMAILLIST_LINE_MAX + 1, &err), -1, "one byte more is refused");
	is_str(err.msg,
	       "standard input: line 1: longer than 65536 bytes: the input is not a list of emails",
	       "as a line too long");
	emaillist_release(&l);

	buf[EMAILLIST_LINE_MAX + 1] = '\n';
	emaillist_init(&l);
	is_int(read_mem(&l, buf, EMAILLIST_LINE_MAX + 2, &err), -1, "also when a newline follows");

	/* 10 MB without a newline: refused after about the cap, not at the end. */
	struct endless g = {.prefix = "ok@x.io\n\n", .prefix_len = 9, .total = 10 << 20};
	FILE *f = fopencookie(&g, "r", (cookie_io_functions_t){.read = endless_read});
	cw_error_clear(&err);
	is_int(emaillist_read(&l, f, "emails.txt", &err), -1, "a 10 MB line is refused");
	fclose(f);
	is_int(err.code, CW_EXIT_DATAERR, "as bad data (65)");
	is_str(err.msg,
	       "emails.txt: line 3: longer than 65536 bytes: the input is not a list of emails",
	       "naming the source and the line");
	if (!ok(g.pos < 1 << 20, "having read less than 1 MiB of it"))
		diag("read %zu bytes", g.pos);
	is_int((long long)l.n, 0, "and keeping nothing of it");
	emaillist_release(&l);

	is_int(emaillist_add(&l, buf, "argument 3", &err), -1,
	       "an argument longer than the cap is refused");
	is_str(err.msg, "argument 3: longer than 65536 bytes: the input is not a list of emails",
	       "naming the argument");
	buf[EMAILLIST_LINE_MAX] = '\0';
	is_int(emaillist_add(&l, buf, "argument 3", &err), 0, "one at the cap is taken");
	emaillist_release(&l);
	free(buf);
}

static void utf8(void)
{
	static const struct {
		const char *bytes, *what;
	} bad[] = {
	        {"\xC0\xAF@x.io", "an overlong '/' in two bytes"},
	        {"\xE0\x80\xAF@x.io", "an overlong '/' in three bytes"},
	        {"\xF0\x80\x80\xAF@x.io", "an overlong '/' in four bytes"},
	        {"\xC1\xBF@x.io", "an overlong DEL"},
	        {"\x80@x.io", "a lone continuation byte"},
	        {"ann\xBF@x.io", "a continuation byte after ASCII"},
	        {"\xED\xA0\x80@x.io", "a surrogate (U+D800)"},
	        {"\xED\xBF\xBF@x.io", "a surrogate (U+DFFF)"},
	        {"\xF4\x90\x80\x80@x.io", "above U+10FFFF"},
	        {"\xF5\x80\x80\x80@x.io", "a lead byte F5"},
	        {"\xFF@x.io", "a byte FF"},
	        {"\xC3(@x.io", "a lead byte without its continuation"},
	        {"\xE2\x82@x.io", "a three-byte sequence cut short"},
	        {"ann@x.io\xC3", "a lead byte at the end of the line"},
	        {"caf\xE9@x.io", "Latin-1"},
	};
	struct emaillist l;
	struct cw_error err;
	char input[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int len = snprintf(input, sizeof(input), "ok@x.io\n%s\n", bad[i].bytes);
		emaillist_init(&l);
		is_int(read_mem(&l, input, (size_t)len, &err), -1, "refused: %s", bad[i].what);
		is_str(err.msg, "standard input: line 2: not valid UTF-8", "  on line 2");
		emaillist_release(&l);
	}

	emaillist_init(&l);
	is_int(emaillist_add(&l, "\xED\xA0\x80@x.io", "argument 3", &err), -1,
	       "an argument that is not UTF-8 is refused");
	is_int(err.code, CW_EXIT_DATAERR, "as bad data (65)");
	is_str(err.msg, "argument 3: not valid UTF-8", "naming the argument");

	is_int(READ(&l,
	            "\xC3\x89lodie@exemple.fr\n"  /* É: two bytes */
	            "\xE2\x82\xAC@x.io\n"         /* €: three */
	            "\xF0\x9F\x98\x80@x.io\n"     /* U+1F600: four */
	            "\xED\x9F\xBF \xEE\x80\x80\n" /* U+D7FF and U+E000, around the surrogates */
	            "\xEF\xBF\xBF \xF4\x8F\xBF\xBF\n", /* U+FFFF and U+10FFFF */
	            &err),
	       0, "valid multi-byte UTF-8 is read");
	is_int((long long)l.n, 5, "every line an entry");
	is_str(l.n ? l.v[0].text : NULL, "\xC3\x89lodie@exemple.fr", "the text as given");
	ok(l.n == 5 && !l.v[3].email && !l.v[4].email, "text that is no email has none");
	emaillist_release(&l);
}

static void many(void)
{
	enum { N = 100000 };
	size_t cap = (size_t)N * 2 * 32, len = 0;
	char *buf = malloc(cap);
	struct emaillist l;
	struct cw_error err;

	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(buf + len, cap - len, "user%d@example.com\n", i);
	for (int i = N - 1; i >= 0; i -= 3)
		len += (size_t)snprintf(buf + len, cap - len, " USER%d@Example.com\r\n", i);
	emaillist_init(&l);
	is_int(read_mem(&l, buf, len, &err), 0, "%d lines and a third again are read", N);
	is_int((long long)l.n, N, "as %d distinct entries", N);
	ok(l.n == N && !strcmp(l.v[0].email, "user0@example.com") &&
	           !strcmp(l.v[N - 1].email, "user99999@example.com"),
	   "in the order given");
	size_t in_order = 0;
	for (size_t i = 0; i < l.n; i++) {
		char want[48];
		snprintf(want, sizeof(want), "user%zu@example.com", i);
		in_order += !strcmp(l.v[i].text, want) && l.v[i].email == l.v[i].text;
	}
	is_int((long long)in_order, N, "each entry the first occurrence, its text its email");
	emaillist_release(&l);
	free(buf);
}

static void files(void)
{
	struct emaillist l;
	struct cw_error err;
	char path[] = "/tmp/emaillist-test.XXXXXX";
	int fd = mkstemp(path);
	static const char text[] = "# exported\nAnn@example.com\nbob@example.com\n";

	if (!ok(fd >= 0, "a temporary file"))
		return;
	if (write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1))
		diag("write: %s", strerror(errno));
	close(fd);

	emaillist_init(&l);
	is_int(emaillist_read_file(&l, path, &err), 0, "a file is read");
	entries(&l, "Ann@example.com=ann@example.com\nbob@example.com=bob@example.com\n",
	        "with its emails");
	emaillist_release(&l);

	/* "-" is standard input, named so in messages. */
	emaillist_init(&l);
	if (ok(freopen(path, "r", stdin) != NULL, "standard input from the file")) {
		is_int(emaillist_read_file(&l, "-", &err), 0, "\"-\" reads standard input");
		is_int((long long)l.n, 2, "with its emails");
	}
	emaillist_release(&l);
	unlink(path);

	emaillist_init(&l);
	is_int(emaillist_read_file(&l, path, &err), -1, "a missing file fails");
	is_int(err.code, CW_EXIT_DATAERR, "as bad data (65)");
	char want[128];
	snprintf(want, sizeof(want), "could not open email list \"%s\": %s", path,
	         strerror(ENOENT));
	is_str(err.msg, want, "with the path and the reason");

	is_int(emaillist_read_file(&l, "/", &err), -1, "a directory fails");
	is_str(err.msg, "could not read / at line 1: Is a directory", "when it is read");

	struct endless g = {.prefix = "a@x.io\nb@x.", .prefix_len = 11, .fail_errno = EIO};
	FILE *f = fopencookie(&g, "r", (cookie_io_functions_t){.read = endless_read});
	is_int(emaillist_read(&l, f, "standard input", &err), -1, "a read error fails");
	fclose(f);
	is_str(err.msg, "could not read standard input at line 2: Input/output error",
	       "with the line reached and the reason");
	is_int((long long)l.n, 0, "and keeps nothing");
	emaillist_release(&l);
}

int main(void)
{
	skips_and_trims();
	duplicates();
	invalid_kept();
	line_ends();
	refused_as_a_whole();
	long_lines();
	utf8();
	many();
	files();
	return done_testing();
}
