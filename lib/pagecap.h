/*
 * The largest list page the server gives, remembered between runs in
 * sync_state ("mailerlite_page_cap": {"cap": N}), so that a program asks
 * for it at once: a 422 on a too-large limit costs a request each run.
 */
#ifndef CW_PAGECAP_H
#define CW_PAGECAP_H

#include "db.h"
#include "error.h"
#include "mailerlite.h"

#define PAGECAP_KEY "mailerlite_page_cap"

/* Give ml the remembered cap, if one is stored and sane. */
int pagecap_restore(struct db *db, struct ml_client *ml, struct cw_error *err);

/* Store the cap ml has seen, if any (in the caller's transaction, if one
 * is open). Best effort: a failure is only logged. */
void pagecap_save(struct db *db, const struct ml_client *ml);

#endif
