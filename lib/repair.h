/*
 * Repairing links (smart-sync --repair): before a contact is reconciled,
 * its crosswalk row and shadow are checked against what both sides hold
 * now, and whatever does not fit is removed so that the reconcile that
 * follows links the contact afresh and re-derives its shadow from both
 * sides (the merge's rules for a contact without a shadow: an empty side
 * is filled, a disagreement goes to initial_policy).
 *
 * What is repaired, each with one sync_log row (action "repaired"):
 *   - several crosswalk rows claim the contact (its email, A key and B id
 *     point at different rows): all of them are removed;
 *   - the link's B id is not the subscriber's (deleted and re-created in
 *     MailerLite, say), or B has no subscriber at all: the link is removed;
 *   - the link's A row no longer exists: the link is removed;
 *   - the shadow is not a pair of snapshot documents: it is removed;
 *   - the shadow is missing: only logged (the reconcile writes one).
 *
 * Everything happens in the caller's transaction, under the contacts'
 * email locks (taken here), so a repair commits together with the
 * reconcile or not at all.
 */
#ifndef CW_REPAIR_H
#define CW_REPAIR_H

#include <stdbool.h>

#include "config.h"
#include "db.h"
#include "error.h"
#include "store.h"

/* One contact to check. The strings are borrowed. */
struct repair_contact {
	const char *email;	/* normalized */
	const char *a_key;	/* A's key as found for the email, or NULL */
	const char *b_id;	/* the subscriber B holds for it now, or NULL */
	bool unlinked;		/* out: its link was removed; reconcile it without
				 * the a_key above, found again by email */
	int repairs;		/* out: how many things were repaired */
};

/* db, cfg and store borrowed; program and run_id for sync_log. *repaired
 * gets the number of contacts repaired. */
int repair_contacts(struct db *db, const struct cw_config *cfg, struct store *store,
		    const char *program, const char *run_id, struct repair_contact *contacts,
		    size_t n, long long *repaired, struct cw_error *err);

#endif
