/* TAP output for the C unit tests (read by prove). */
#include "tap.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int planned = -1;
static int run;
static int failed;

void plan(int count)
{
	planned = count;
	printf("1..%d\n", count);
}

static bool report(bool cond, const char *fmt, va_list ap)
{
	run++;
	if (!cond)
		failed++;
	printf("%sok %d - ", cond ? "" : "not ", run);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

bool ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(cond, fmt, ap);
	va_end(ap);
	return cond;
}

bool is_int(long long got, long long want, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(got == want, fmt, ap);
	va_end(ap);
	if (got != want)
		diag("     got: %lld\n#     expected: %lld", got, want);
	return got == want;
}

bool is_str(const char *got, const char *want, const char *fmt, ...)
{
	va_list ap;
	bool same = (!got && !want) || (got && want && !strcmp(got, want));

	va_start(ap, fmt);
	report(same, fmt, ap);
	va_end(ap);
	if (!same)
		diag("     got: %s%s%s\n#     expected: %s%s%s", got ? "'" : "", got ? got : "NULL",
		     got ? "'" : "", want ? "'" : "", want ? want : "NULL", want ? "'" : "");
	return same;
}

bool is_double(double got, double want, double tolerance, const char *fmt, ...)
{
	va_list ap;
	bool same = fabs(got - want) <= tolerance;

	va_start(ap, fmt);
	report(same, fmt, ap);
	va_end(ap);
	if (!same)
		diag("     got: %.9g\n#     expected: %.9g (within %.3g)", got, want, tolerance);
	return same;
}

void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

int done_testing(void)
{
	if (planned < 0)
		printf("1..%d\n", run);
	else if (planned != run)
		diag("planned %d tests but ran %d", planned, run);
	return failed || (planned >= 0 && planned != run) ? 1 : 0;
}
