/* fake-mailerlite: options, signals and the life of the MailerLite API emulator process. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "server.h"
#include "util.h"

#define EXIT_USAGE 64
#define EXIT_UNAVAILABLE 69

static const char usage_text[] =
	"fake-mailerlite: a MailerLite Connect API emulator for tests, on 127.0.0.1\n"
	"\n"
	"Usage: fake-mailerlite [--port N] [--port-file FILE] [--token TOKEN]\n"
	"                       [--page-cap N] [--page-cap-mode clamp|reject]\n"
	"                       [--rate-limit N] [--import-limit N] [--log-bodies]\n"
	"                       [--quiet]\n"
	"\n"
	"Options:\n"
	"  --port N             port on 127.0.0.1 (default 0: pick a free one)\n"
	"  --port-file FILE     write the port there once listening\n"
	"  --token TOKEN        accepted bearer token (default test-token)\n"
	"  --page-cap N         largest limit for subscriber lists (default 1000)\n"
	"  --page-cap-mode M    clamp (default) or reject a larger limit with 422\n"
	"  --rate-limit N       requests per 60 s (default 120, 0 = off)\n"
	"  --import-limit N     import batches per 60 s (default 5, 0 = off)\n"
	"  --log-bodies         keep each API request's body in the request log\n"
	"  --quiet              print nothing but errors\n"
	"  --help               show this help and exit\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("fake-mailerlite: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nfake-mailerlite: hint: Try \"fake-mailerlite --help\" for more information.\n",
	      stderr);
	exit(EXIT_USAGE);
}

static long num_arg(const char *opt, const char *arg, long min, long max)
{
	long long v;
	if (parse_ll(arg, min, max, &v) != 0)
		usage_error("invalid value for %s: \"%s\" (%ld..%ld)", opt, arg, min, max);
	return (long)v;
}

/* Writes "PORT\n" to a temporary file beside path and renames it into place. */
static int write_port_file(const char *path, int port)
{
	size_t n = strlen(path) + 32;
	char *tmp = xmalloc(n);
	snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "w");
	int rc = -1;
	if (f) {
		int ok = fprintf(f, "%d\n", port) > 0;
		ok &= fclose(f) == 0;
		if (ok && rename(tmp, path) == 0)
			rc = 0;
	}
	if (rc) {
		fprintf(stderr, "fake-mailerlite: error: could not write port file \"%s\": %s\n",
			path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},
		{"port-file", required_argument, NULL, 'f'},
		{"token", required_argument, NULL, 't'},
		{"page-cap", required_argument, NULL, 'c'},
		{"page-cap-mode", required_argument, NULL, 'm'},
		{"rate-limit", required_argument, NULL, 'r'},
		{"import-limit", required_argument, NULL, 'i'},
		{"log-bodies", no_argument, NULL, 'b'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct config cfg;
	memset(&cfg, 0, sizeof cfg);
	snprintf(cfg.token, sizeof cfg.token, "test-token");
	cfg.page_cap = 1000;
	cfg.rate_limit = 120;
	cfg.import_limit = 5;
	int port = 0, quiet = 0, c;
	const char *port_file = NULL;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = (int)num_arg("--port", optarg, 0, 65535);
			break;
		case 'f':
			port_file = optarg;
			break;
		case 't':
			if (!optarg[0] || strlen(optarg) >= TOKEN_MAX)
				usage_error("invalid value for --token: \"%s\"", optarg);
			snprintf(cfg.token, sizeof cfg.token, "%s", optarg);
			break;
		case 'c':
			cfg.page_cap = num_arg("--page-cap", optarg, 1, 1000000);
			break;
		case 'm':
			if (strcmp(optarg, "clamp") == 0)
				cfg.page_cap_reject = 0;
			else if (strcmp(optarg, "reject") == 0)
				cfg.page_cap_reject = 1;
			else
				usage_error("invalid value for --page-cap-mode: \"%s\" "
					    "(clamp or reject)",
					    optarg);
			break;
		case 'r':
			cfg.rate_limit = num_arg("--rate-limit", optarg, 0, 1000000);
			break;
		case 'i':
			cfg.import_limit = num_arg("--import-limit", optarg, 0, 1000000);
			break;
		case 'b':
			cfg.log_bodies = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			usage_error("unknown option or missing value: \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);

	/* Block the stop signals in every thread; the main thread waits for them. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	static struct server srv;
	server_init(&srv, &cfg);
	srv.quiet = quiet;
	struct MHD_Daemon *d = http_start(&srv, port);
	if (!d) {
		server_release(&srv);
		return EXIT_UNAVAILABLE;
	}
	if (port_file && write_port_file(port_file, srv.port)) {
		http_stop(d);
		server_release(&srv);
		return EXIT_UNAVAILABLE;
	}
	if (!quiet)
		fprintf(stderr, "listening on 127.0.0.1:%d\n", srv.port);

	int sig = 0;
	while (sigwait(&stop, &sig) != 0)
		;
	http_stop(d);
	server_release(&srv);
	return 0;
}
