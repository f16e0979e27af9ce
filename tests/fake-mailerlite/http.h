/* The HTTP front end on libmicrohttpd: connections, bodies, the API's auth/rate/fault flow, replies. */
#ifndef FAKE_HTTP_H
#define FAKE_HTTP_H

#include "server.h"

struct MHD_Daemon;

/*
 * Listens on 127.0.0.1:port (0 picks a free port) with a thread per
 * connection. Returns the daemon and sets srv->port and srv->base, or
 * NULL with a message on stderr.
 */
struct MHD_Daemon *http_start(struct server *srv, int port);
void http_stop(struct MHD_Daemon *d);

#endif
