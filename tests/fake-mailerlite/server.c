/* The emulator's shared state: settings, the one lock, and the parts each module owns. */
#include "server.h"

#include <string.h>

void server_init(struct server *srv, const struct config *defaults)
{
	memset(srv, 0, sizeof *srv);
	pthread_mutex_init(&srv->lock, NULL);
	srv->defaults = *defaults;
	srv->cfg = *defaults;
	store_init(&srv->store);
	ratewin_init(&srv->rate, (int)defaults->rate_limit);
	ratewin_init(&srv->import, (int)defaults->import_limit);
	faults_init(&srv->faults);
	reqlog_init(&srv->log);
}

void server_release(struct server *srv)
{
	store_release(&srv->store);
	ratewin_release(&srv->rate);
	ratewin_release(&srv->import);
	faults_release(&srv->faults);
	reqlog_release(&srv->log);
	pthread_mutex_destroy(&srv->lock);
}

void server_reset(struct server *srv)
{
	store_reset(&srv->store);
	faults_clear(&srv->faults);
	reqlog_clear(&srv->log);
	server_set_config(srv, &srv->defaults);
	ratewin_clear(&srv->rate);
	ratewin_clear(&srv->import);
	srv->requests = 0;
}

void server_set_config(struct server *srv, const struct config *cfg)
{
	srv->cfg = *cfg;
	ratewin_set_limit(&srv->rate, (int)cfg->rate_limit);
	ratewin_set_limit(&srv->import, (int)cfg->import_limit);
}
