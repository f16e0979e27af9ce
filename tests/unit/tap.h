/* A small TAP producer for the C unit tests: plan, ok, comparisons, done. */
#ifndef CW_TAP_H
#define CW_TAP_H

#include <stdbool.h>

#include "error.h"

/* Announce the number of tests; or call done_testing() at the end instead. */
void plan(int count);
/* Record one test; returns cond so callers can add diagnostics. */
bool ok(bool cond, const char *fmt, ...) CW_PRINTF(2, 3);
bool is_int(long long got, long long want, const char *fmt, ...) CW_PRINTF(3, 4);
bool is_str(const char *got, const char *want, const char *fmt, ...) CW_PRINTF(3, 4);
bool is_double(double got, double want, double tolerance, const char *fmt, ...) CW_PRINTF(4, 5);
/* A "# ..." line. */
void diag(const char *fmt, ...) CW_PRINTF(1, 2);
/* Print the plan if none was given; returns the exit status for main(). */
int done_testing(void);

#endif
