/*
 * The 3-way merge of one contact: a pure function from A's record, B's
 * record and the shadow (what each side held at the last sync) to a plan
 * per item. No I/O: every decision here is unit-tested as a table.
 *
 * Records and shadows are snapshots of one shape (lib/shadow.h):
 *   {"email": "...", "fields": {b_field: text-or-null, ...},
 *    "status": "active"|..., "groups": ["Customers", ...], "updated_at": "..."}
 * Values are canonical text or null (record_value_normalize), and null, an
 * absent member and "" all mean "no value" and compare equal.
 *
 * Items: the email, every mapped field (cfg->fields), the status when
 * table.status is mapped, and one item per managed group when table.groups
 * is mapped (membership as true/false, so groups merge as sets and a
 * group added on one side and another added on the other both survive).
 *
 * Per item, against the shadow: A moved when its value differs from
 * shadow_a's, B moved when its value differs from shadow_b's.
 *   equal values              → NONE, or AGREE when the shadow lags behind
 *   only A moved              → PUSH (A's value to B)
 *   only B moved              → PULL (B's value to A)
 *   both moved, differently   → conflict, settled by the field's policy
 *   no shadow, or neither moved while the values differ
 *                             → "initial": an empty side is filled from the
 *                               other (PUSH or PULL, no conflict); two
 *                               different values are a conflict settled by
 *                               cfg->initial_policy
 * Policies: skip (KEEP: nothing written, the base kept so the conflict is
 * seen again), a-wins, b-wins, newest (the later of the two snapshots'
 * "updated_at", compared as text since both are "YYYY-MM-DD HH:MM:SS" UTC;
 * a missing time loses; a tie, two missing times included, goes to A). A
 * field's own policy (cfg->fields[i].policy) beats cfg->conflict_policy; it
 * does not apply to "initial" conflicts, which cfg->initial_policy settles.
 * A shadow is both halves or none: one half alone counts as no shadow.
 *
 * A field's direction from the config says who owns it: a-to-b fields are
 * mirrored from A (PUSH whenever the values differ, never pulled, never a
 * conflict), b-to-a fields from B (PULL whenever they differ). The email,
 * status and groups follow "both".
 *
 * The run's direction (spec->run_direction) says which side this run may
 * write: a PUSH in a b-to-a run, or a PULL in an a-to-b run, becomes KEEP
 * with deferred set, and its base is kept, so a later run still sees who
 * moved. A conflict whose winner's write is not allowed is deferred the
 * same way, and not reported as a conflict.
 *
 * Sticky statuses: unsubscribed, bounced and junk in B are never replaced
 * by a push of active or unconfirmed (the API cannot do it) unless
 * spec->resubscribe; such a push becomes a PULL of B's status, reported as a
 * conflict won by B (policy b-wins). With resubscribe the push stands and
 * plan->resubscribe is set. This comes before the run's direction: in an
 * a-to-b run that PULL is deferred like any other.
 *
 * One side absent (a NULL record): the contact is to be created there.
 * Every item with a value on the present side is planned as PUSH (b
 * absent) or PULL (a absent), whatever the field's direction: the new
 * side starts as a copy, and the direction rules from the next run on
 * (a b-to-a field left empty in a new subscriber would otherwise be
 * pulled back over A's value). plan->create_b or plan->create_a is set,
 * unless the run's direction forbids writing that side (then those items
 * are KEEP, deferred). The absent side's after-snapshot holds every item
 * (null where the present side has none) and "updated_at": null. Both
 * absent is an error.
 *
 * A group named twice in managed_groups is one item.
 */
#ifndef CW_MERGE_H
#define CW_MERGE_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"

enum merge_kind {
	MERGE_EMAIL,
	MERGE_FIELD,
	MERGE_STATUS,
	MERGE_GROUP,
};

enum merge_action {
	MERGE_NONE,  /* equal, and the shadow says so already */
	MERGE_AGREE, /* equal now, the shadow behind: only the shadow moves */
	MERGE_PUSH,  /* write A's value to B */
	MERGE_PULL,  /* write B's value to A */
	MERGE_KEEP,  /* they differ and nothing is written (skip, or deferred) */
};

struct merge_spec {
	const struct cw_config *cfg;	 /* fields, policies, status, groups (borrowed) */
	enum cw_direction run_direction; /* which sides this run may write */
	bool resubscribe;		 /* a push may revive a sticky status */
};

struct merge_item {
	enum merge_kind kind;
	const char *name;	/* B field or group name (borrowed from cfg); "email", "status" */
	enum merge_action action;
	json_t *value;		/* new reference: the value both sides hold afterwards
				 * (PUSH, PULL, AGREE, NONE); NULL for KEEP. Groups:
				 * json true/false. NONE and AGREE without a value:
				 * null (false for a group) */
	bool deferred;		/* KEEP because the run's direction forbade the write */
	bool conflict;		/* report it in sync_conflicts */
	int policy;		/* enum cw_policy that settled the conflict, also when
				 * its write was deferred (conflict false); else
				 * CW_POLICY_DEFAULT */
	char winner;		/* 'a', 'b', or 'n' (skip); '\0' when no policy settled it */
	json_t *a_value, *b_value, *base_value; /* new references, set for conflicts
						 * only: the two values and the base
						 * (null when there is no shadow, or
						 * the two shadows disagree) */
};

struct merge_plan {
	struct merge_item *items; /* owned, n of them, in the order listed above */
	size_t n;
	size_t pushes, pulls, conflicts; /* items with that action / conflict set */
	bool create_a, create_b;  /* the contact is missing on that side and this
				   * run's direction lets it be created there */
	bool resubscribe;	  /* a PUSH of the status must revive the subscriber */
	json_t *a_after;	  /* new reference: A's snapshot once the plan is applied
				   * (the shadow to write); KEEP items hold the base */
	json_t *b_after;	  /* the same for B */
	bool shadow_changed;	  /* a_after or b_after differs from the given shadow,
				   * or there was none */
};

/*
 * Plan one contact. a, b: the current snapshots (borrowed; one may be NULL);
 * shadow_a, shadow_b: the last agreed ones (borrowed; both NULL when there
 * is no shadow). Returns 0 and fills *plan (release with
 * merge_plan_release), or -1 when both records are NULL.
 * The "updated_at" members are copied from a and b into a_after and
 * b_after (the caller replaces them once the writes tell the new times).
 */
int merge_plan(const struct merge_spec *spec, const json_t *a, const json_t *b,
	       const json_t *shadow_a, const json_t *shadow_b, struct merge_plan *plan);
void merge_plan_release(struct merge_plan *plan);

/* Equality of two canonical values as the merge sees it: NULL, JSON null
 * and "" are the same "no value"; strings compare byte for byte; true and
 * false for groups, where false (not a member) is "no value" too. */
bool merge_values_equal(const json_t *x, const json_t *y);

/* Whether two snapshots of a contact hold the same value in every item
 * the merge looks at (times and other members aside). x, y borrowed. */
bool merge_snapshots_agree(const struct merge_spec *spec, const json_t *x, const json_t *y);

/* True for the statuses a push never overwrites: unsubscribed, bounced, junk. */
bool merge_status_sticky(const char *status);

const char *merge_action_name(enum merge_action action);

#endif
