/* The progress bar's pure helpers: ETA text and the rendered line. */
#include "progress.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void eta(double seconds, const char *want)
{
	char buf[32];

	memset(buf, 'x', sizeof(buf));
	progress_format_eta(seconds, buf, sizeof(buf));
	is_str(buf, want, "ETA of %g s", seconds);
}

static int render(char *buf, size_t len, int width, const char *label, long long done,
		  long long total, double rate)
{
	memset(buf, 'x', len);
	return progress_render(buf, len, width, label, done, total, rate);
}

static bool has(const char *line, const char *part)
{
	if (strstr(line, part))
		return true;
	diag("\"%s\" not in \"%s\"", part, line);
	return false;
}

/* The bar between [ and ]: how many cells, how many filled. */
static bool bar_cells(const char *line, int *cells, int *filled)
{
	const char *open = strchr(line, '['), *close = strchr(line, ']');

	if (!open || !close || close < open)
		return false;
	*cells = (int)(close - open - 1);
	*filled = 0;
	for (const char *p = open + 1; p < close; p++)
		*filled += *p == '=';
	return true;
}

static void eta_tests(void)
{
	eta(0, "0:00");
	eta(59, "0:59");
	eta(61, "1:01");
	eta(3725, "1:02:05");
	eta(59.4, "0:59");
	eta(59.6, "1:00");
	eta(3599.6, "1:00:00");
	eta(36000, "10:00:00");
	eta(-1, "--:--");
	eta(-0.001, "--:--");
	eta(INFINITY, "--:--");
	eta(-INFINITY, "--:--");
	eta(NAN, "--:--");
	eta(100 * 3600.0, "--:--");
	eta(1e300, "--:--");

	char small[4];
	progress_format_eta(3725, small, sizeof(small));
	is_str(small, "1:0", "ETA is cut to the buffer and NUL-terminated");
	progress_format_eta(3725, small, 0); /* must not write */
	ok(true, "ETA into a zero-length buffer does not crash");
}

static void width_tests(void)
{
	char buf[512];
	const char *labels[] = { "", "backfill",
				 "a very long label for a backfill of the whole table" };
	const long long totals[] = { 24000, 1000000, 0 };
	int bad = 0, checked = 0;

	for (size_t l = 0; l < sizeof(labels) / sizeof(labels[0]); l++)
		for (size_t t = 0; t < sizeof(totals) / sizeof(totals[0]); t++)
			for (int w = 20; w <= 200; w++) {
				long long done = totals[t] ? totals[t] / 3 : 123456789;
				int n = render(buf, sizeof(buf), w, labels[l], done, totals[t],
					       1234.5);
				checked++;
				if (n != (int)strlen(buf) || n > w - 1 || n == 0) {
					if (bad++ < 5)
						diag("width %d label \"%s\" total %lld: %d chars "
						     "\"%s\"",
						     w, labels[l], totals[t], n, buf);
				}
			}
	is_int(bad, 0, "all %d lines fit in width - 1 and the return is the length", checked);

	/* The bar grows with the terminal and the line uses all of it. */
	int n80 = render(buf, sizeof(buf), 80, "backfill", 12000, 24000, 100);
	is_int(n80, 79, "with a bar the line fills 80 columns less one");
	int cells80 = 0, filled = 0;
	ok(bar_cells(buf, &cells80, &filled), "80 columns: a bar is shown");
	int n200 = render(buf, sizeof(buf), 200, "backfill", 12000, 24000, 100);
	is_int(n200, 199, "with a bar the line fills 200 columns less one");
	int cells200 = 0;
	bar_cells(buf, &cells200, &filled);
	is_int(cells200 - cells80, 120, "the bar takes the extra 120 columns");
	is_int(filled, cells200 / 2, "half done: half the cells filled");

	/* The bar keeps its size while the numbers grow. */
	const long long dones[] = { 0, 7, 12345, 999999, 1000000 };
	const double rates[] = { -1, 2.5, 950, 23311, 250000 };
	int first = -1, moved = 0;
	for (size_t i = 0; i < sizeof(dones) / sizeof(dones[0]); i++) {
		render(buf, sizeof(buf), 100, "backfill", dones[i], 1000000, rates[i]);
		int cells = 0;
		bar_cells(buf, &cells, &filled);
		if (first < 0)
			first = cells;
		else if (cells != first && moved++ == 0)
			diag("\"%s\": %d cells, first line had %d", buf, cells, first);
	}
	is_int(moved, 0, "the bar keeps its width from 0 to 1,000,000 done");

	/* Narrow: the bar goes, then the rate, then the label is cut. */
	render(buf, sizeof(buf), 40, "backfill", 12000, 24000, 100);
	ok(!strchr(buf, '[') && has(buf, "backfill 12,000/24,000  50%  ETA  2:00") &&
		   !strstr(buf, "/s"),
	   "40 columns: no bar, no rate, label and ETA kept (\"%s\")", buf);
	render(buf, sizeof(buf), 55, "backfill", 12000, 24000, 100);
	ok(!strchr(buf, '[') && has(buf, "backfill 12,000/24,000  50%      100/s  ETA  2:00"),
	   "55 columns: no room for a 10-cell bar, everything else (\"%s\")", buf);
	render(buf, sizeof(buf), 25, "backfill", 12000, 24000, 100);
	ok(has(buf, "12,000/24,000  50%") && !strstr(buf, "/s"),
	   "25 columns: count and percent, no rate (\"%s\")", buf);
	render(buf, sizeof(buf), 20, "backfill", 12000, 24000, 100);
	ok(has(buf, "12,000/24,000") && strlen(buf) <= 19,
	   "20 columns: the label is cut before the count (\"%s\")", buf);
	render(buf, sizeof(buf), 10, "backfill", 12000, 24000, 100);
	is_int((long long)strlen(buf), 9, "10 columns: cut to 9 characters (\"%s\")", buf);
	is_int(render(buf, sizeof(buf), 1, "backfill", 1, 2, 1), 0, "1 column: nothing");
	is_str(buf, "", "1 column: empty string");
	is_int(render(buf, sizeof(buf), 0, "backfill", 1, 2, 1), 0, "0 columns: nothing");

	/* The buffer is a limit too. */
	char tiny[16];
	int n = render(tiny, sizeof(tiny), 80, "backfill", 12000, 24000, 100);
	ok(n <= 15 && strlen(tiny) == (size_t)n, "a 16-byte buffer holds 15 characters (%d)", n);

	/* UTF-8 labels are not cut in the middle of a character. */
	render(buf, sizeof(buf), 22, "r\xc3\xa9sum\xc3\xa9 \xc3\xa9\xc3\xa9\xc3\xa9", 12000,
	       24000, 100);
	const char *space = strchr(buf, ' ');
	bool whole = true;
	if (space && space > buf)
		whole = ((unsigned char)space[-1] & 0xC0) != 0xC0;
	ok(whole, "a cut label ends on a whole UTF-8 character (\"%s\")", buf);
}

static void content_tests(void)
{
	char buf[512];
	int cells, filled;

	render(buf, sizeof(buf), 100, "backfill", 12345, 24000, 1234.4);
	ok(has(buf, "backfill [") && has(buf, "12,345/24,000") && has(buf, " 51%") &&
		   has(buf, "1,234/s"),
	   "label, bar, grouped counts, percent and rate");
	/* 11,655 left at 1,234.4/s is 9.44 s */
	ok(has(buf, "ETA  0:09"), "ETA from the rate");

	render(buf, sizeof(buf), 100, "x", 1, 3, 1);
	ok(has(buf, " 33%"), "1/3 is 33%%");
	render(buf, sizeof(buf), 100, "x", 2, 3, 1);
	ok(has(buf, " 66%"), "2/3 is 66%% (rounded down: 100%% only when done)");
	render(buf, sizeof(buf), 100, "x", 999999, 1000000, 1);
	ok(has(buf, " 99%"), "999,999 of 1,000,000 is 99%%");
	render(buf, sizeof(buf), 100, "x", 0, 1000000, -1);
	ok(has(buf, "0/1,000,000   0%") && has(buf, "--/s") && has(buf, "ETA --:--"),
	   "nothing done, rate unknown: 0%%, --/s, ETA --:--");
	ok(bar_cells(buf, &cells, &filled) && filled == 0, "nothing done: empty bar");
	render(buf, sizeof(buf), 100, "x", 24000, 24000, 500);
	ok(has(buf, "24,000/24,000 100%") && has(buf, "ETA  0:00"), "all done: 100%%, ETA 0:00");
	ok(bar_cells(buf, &cells, &filled) && filled == cells, "all done: full bar");

	render(buf, sizeof(buf), 100, "x", 30000, 24000, 500);
	ok(has(buf, "100%") && !strstr(buf, "125%"), "done above total clamps to 100%%");
	ok(bar_cells(buf, &cells, &filled) && filled == cells, "done above total: full bar");
	ok(has(buf, "ETA  0:00"), "done above total: ETA 0:00");
	render(buf, sizeof(buf), 100, "x", -5, 24000, 500);
	ok(has(buf, " 0/24,000   0%"), "negative done counts as 0");

	render(buf, sizeof(buf), 100, "scan", 1234567, 0, 2500);
	ok(!strchr(buf, '[') && !strchr(buf, '%') && !strstr(buf, "ETA"),
	   "unknown total: no bar, no percent, no ETA (\"%s\")", buf);
	ok(has(buf, "scan 1,234,567") && has(buf, "2,500/s"), "unknown total: count and rate");
	render(buf, sizeof(buf), 100, "scan", 5, -1, 2.5);
	ok(has(buf, "scan 5  2.5/s"), "negative total is unknown; slow rates keep a decimal");

	render(buf, sizeof(buf), 100, "x", 10, 100, 0);
	ok(has(buf, "0.0/s") && has(buf, "ETA --:--"), "stalled (rate 0): ETA unknown");
	render(buf, sizeof(buf), 100, "x", 10, 100, NAN);
	ok(has(buf, "--/s"), "NaN rate is unknown");
	render(buf, sizeof(buf), 100, "x", 0, 1000000, 0.1);
	ok(has(buf, "ETA --:--"), "an ETA of 100 hours or more is unknown");

	render(buf, sizeof(buf), 100, NULL, 1, 2, 1);
	ok(buf[0] == '[', "no label: the line starts with the bar (\"%s\")", buf);
	ok(strchr(buf, '\r') == NULL && strchr(buf, '\033') == NULL,
	   "no carriage return or escape in the rendered text");
}

int main(void)
{
	eta_tests();
	width_tests();
	content_tests();
	return done_testing();
}
