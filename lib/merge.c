/* The 3-way merge of one contact: A, B and the shadow in, one decision per item out. */
#include "merge.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

/* One contact being planned. */
struct merge_run {
	const struct merge_spec *spec;
	const json_t *a, *b;		   /* current snapshots; an absent side's is empty */
	bool a_absent, b_absent;
	const json_t *shadow_a, *shadow_b; /* NULL when there is no shadow */
	struct merge_plan *plan;
	bool *a_member, *b_member;	   /* per item: group membership afterwards */
};

/* "No value": an absent member, null, "", and for a group not being a member. */
static bool no_value(const json_t *v)
{
	return !v || json_is_null(v) || json_is_false(v) ||
	       (json_is_string(v) && json_string_length(v) == 0);
}

bool merge_values_equal(const json_t *x, const json_t *y)
{
	if (no_value(x) || no_value(y))
		return no_value(x) && no_value(y);
	if (json_is_string(x) && json_is_string(y)) {
		size_t len = json_string_length(x);
		return len == json_string_length(y) &&
		       memcmp(json_string_value(x), json_string_value(y), len) == 0;
	}
	return json_equal(x, y);
}

bool merge_status_sticky(const char *status)
{
	return status && (!strcmp(status, "unsubscribed") || !strcmp(status, "bounced") ||
			  !strcmp(status, "junk"));
}

/* The statuses that only a resubscribe can put over a sticky one. */
static bool status_revives(const json_t *v)
{
	const char *s = json_string_value(v);

	return s && (!strcmp(s, "active") || !strcmp(s, "unconfirmed"));
}

const char *merge_action_name(enum merge_action action)
{
	switch (action) {
	case MERGE_NONE:
		return "none";
	case MERGE_AGREE:
		return "agree";
	case MERGE_PUSH:
		return "push";
	case MERGE_PULL:
		return "pull";
	case MERGE_KEEP:
		return "keep";
	}
	return "unknown";
}

static bool is_member(const json_t *snap, const char *group)
{
	const json_t *groups = json_object_get(snap, "groups");
	size_t i;

	for (i = 0; i < json_array_size(groups); i++) {
		const char *name = json_string_value(json_array_get(groups, i));
		if (name && !strcmp(name, group))
			return true;
	}
	return false;
}

/* An item's value in a snapshot: borrowed, NULL when absent; a group's is
 * true or false. */
static const json_t *value_in(const json_t *snap, enum merge_kind kind, const char *name)
{
	if (!snap)
		return NULL;
	switch (kind) {
	case MERGE_FIELD:
		return json_object_get(json_object_get(snap, "fields"), name);
	case MERGE_GROUP:
		return is_member(snap, name) ? json_true() : json_false();
	case MERGE_EMAIL:
	case MERGE_STATUS:
		break;
	}
	return json_object_get(snap, name);
}

static json_t *copy_or_null(const json_t *v)
{
	return v ? json_deep_copy(v) : json_null();
}

/* Put an item's value into an after-snapshot. NULL removes the member, so
 * that a kept base which was absent stays absent and compares equal to the
 * shadow. Groups are collected in a_member/b_member and written at the end. */
static void put_value(json_t *snap, enum merge_kind kind, const char *name, const json_t *value)
{
	json_t *holder = snap;

	if (kind == MERGE_FIELD) {
		holder = json_object_get(snap, "fields");
		if (!json_is_object(holder)) {
			holder = json_object();
			json_object_set_new(snap, "fields", holder);
		}
	}
	if (value)
		json_object_set_new(holder, name, json_deep_copy(value));
	else
		json_object_del(holder, name);
}

static int compare_names(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* "groups" as shadow.c writes it: the managed groups held, sorted, once each. */
static void put_groups(json_t *snap, const struct merge_plan *plan, const bool *member)
{
	const char **names = xcalloc(plan->n + 1, sizeof(char *));
	json_t *groups = json_array();
	size_t n = 0, i;

	for (i = 0; i < plan->n; i++)
		if (plan->items[i].kind == MERGE_GROUP && member[i])
			names[n++] = plan->items[i].name;
	qsort(names, n, sizeof(char *), compare_names);
	for (i = 0; i < n; i++)
		json_array_append_new(groups, json_string(names[i]));
	json_object_set_new(snap, "groups", groups);
	free(names);
}

/* The snapshot of a side where the contact does not exist yet: every item
 * without a value, and no time. */
static json_t *empty_snapshot(const struct cw_config *cfg, bool with_status, bool with_groups)
{
	json_t *snap = json_object(), *fields = json_object();

	json_object_set_new(snap, "email", json_null());
	for (size_t i = 0; i < cfg->nfields; i++)
		json_object_set_new(fields, cfg->fields[i].b_field, json_null());
	json_object_set_new(snap, "fields", fields);
	if (with_status)
		json_object_set_new(snap, "status", json_null());
	if (with_groups)
		json_object_set_new(snap, "groups", json_array());
	json_object_set_new(snap, "updated_at", json_null());
	return snap;
}

/* 'a' or 'b': whose snapshot is later by "updated_at". The texts are
 * "YYYY-MM-DD HH:MM:SS" in UTC, so strcmp orders them. A missing time
 * loses; a tie, two missing ones included, goes to A. */
static char newer_side(const json_t *a, const json_t *b)
{
	const char *at = json_string_value(json_object_get(a, "updated_at"));
	const char *bt = json_string_value(json_object_get(b, "updated_at"));

	if (!at || !*at)
		return bt && *bt ? 'b' : 'a';
	if (!bt || !*bt)
		return 'a';
	return strcmp(at, bt) >= 0 ? 'a' : 'b';
}

/* A conflict settled by a policy: who wins, and the action that follows. */
static enum merge_action settle(const struct merge_run *run, struct merge_item *it, int policy)
{
	switch (policy) {
	case CW_POLICY_A_WINS:
		it->winner = 'a';
		break;
	case CW_POLICY_B_WINS:
		it->winner = 'b';
		break;
	case CW_POLICY_NEWEST:
		it->winner = newer_side(run->a, run->b);
		break;
	default:
		/* skip, or a value no config holds: write nothing. */
		policy = CW_POLICY_SKIP;
		it->winner = 'n';
		break;
	}
	it->policy = policy;
	return it->winner == 'a' ? MERGE_PUSH : it->winner == 'b' ? MERGE_PULL : MERGE_KEEP;
}

/* One item's values now and in the shadow (borrowed; NULL when absent). */
struct item_values {
	const json_t *a, *b, *sa, *sb;
};

/* The decision the values call for, before sticky statuses and the run's
 * direction have their say. */
static enum merge_action decide(const struct merge_run *run, struct merge_item *it,
				const struct item_values *v, enum cw_direction dir, int policy)
{
	bool shadow = run->shadow_a != NULL;
	bool a_moved = shadow && !merge_values_equal(v->a, v->sa);
	bool b_moved = shadow && !merge_values_equal(v->b, v->sb);

	if (merge_values_equal(v->a, v->b))
		return shadow && !a_moved && !b_moved ? MERGE_NONE : MERGE_AGREE;
	/* A contact to create: the new side starts from every value the
	 * present side holds, whatever each field's direction; the direction
	 * decides from then on. Leaving a B-owned field empty in a new
	 * subscriber would make the next run pull that emptiness back over
	 * A's value. */
	if (run->b_absent)
		return MERGE_PUSH;
	if (run->a_absent)
		return MERGE_PULL;
	if (dir == CW_DIR_A_TO_B)
		return MERGE_PUSH;
	if (dir == CW_DIR_B_TO_A)
		return MERGE_PULL;
	if (a_moved && b_moved)
		return settle(run, it, policy);
	if (a_moved)
		return MERGE_PUSH;
	if (b_moved)
		return MERGE_PULL;
	/* No shadow, or they disagreed from the start: fill an empty side,
	 * else the initial policy decides. */
	if (no_value(v->a))
		return MERGE_PULL;
	if (no_value(v->b))
		return MERGE_PUSH;
	return settle(run, it, run->spec->cfg->initial_policy);
}

static void merge_one(struct merge_run *run, size_t index, enum cw_direction dir, int policy)
{
	struct merge_plan *plan = run->plan;
	struct merge_item *it = &plan->items[index];
	const struct item_values v = {
		value_in(run->a, it->kind, it->name),
		value_in(run->b, it->kind, it->name),
		value_in(run->shadow_a, it->kind, it->name),
		value_in(run->shadow_b, it->kind, it->name),
	};
	const json_t *fa = v.a, *fb = v.b; /* what each side holds afterwards */
	bool revive = false;

	it->policy = CW_POLICY_DEFAULT;
	it->action = decide(run, it, &v, dir, policy);

	/* The API cannot put active or unconfirmed over a sticky status; only
	 * a resubscribe can, so without one B's status stands. */
	if (it->kind == MERGE_STATUS && it->action == MERGE_PUSH &&
	    merge_status_sticky(json_string_value(v.b)) && status_revives(v.a)) {
		if (run->spec->resubscribe) {
			revive = true;
		} else {
			it->action = MERGE_PULL;
			it->policy = CW_POLICY_B_WINS;
			it->winner = 'b';
		}
	}

	if ((it->action == MERGE_PUSH && run->spec->run_direction == CW_DIR_B_TO_A) ||
	    (it->action == MERGE_PULL && run->spec->run_direction == CW_DIR_A_TO_B)) {
		it->action = MERGE_KEEP;
		it->deferred = true;
	}
	/* A deferred conflict is decided again by the run that may write it. */
	it->conflict = it->winner && !it->deferred;

	switch (it->action) {
	case MERGE_NONE:
	case MERGE_AGREE:
		/* Two forms of "no value" are reported as null (false for a
		 * group); the snapshots keep each side's own form. */
		if (!no_value(v.a))
			it->value = json_deep_copy(v.a);
		else
			it->value = it->kind == MERGE_GROUP ? json_false() : json_null();
		break;
	case MERGE_PUSH:
		it->value = copy_or_null(v.a);
		fb = it->value;
		plan->pushes++;
		plan->resubscribe |= revive;
		break;
	case MERGE_PULL:
		it->value = copy_or_null(v.b);
		fa = it->value;
		plan->pulls++;
		break;
	case MERGE_KEEP:
		/* The base stays, so the next run still sees who moved. */
		if (run->shadow_a) {
			fa = v.sa;
			fb = v.sb;
		}
		break;
	}
	if (it->conflict) {
		it->a_value = copy_or_null(v.a);
		it->b_value = copy_or_null(v.b);
		/* Two shadows that disagree have no common base to report. */
		it->base_value = run->shadow_a && merge_values_equal(v.sa, v.sb)
					 ? copy_or_null(v.sa)
					 : json_null();
		plan->conflicts++;
	}

	if (it->kind == MERGE_GROUP) {
		run->a_member[index] = !no_value(fa);
		run->b_member[index] = !no_value(fb);
	} else {
		if (fa != v.a)
			put_value(plan->a_after, it->kind, it->name, fa);
		if (fb != v.b)
			put_value(plan->b_after, it->kind, it->name, fb);
	}
}

static bool seen_before(char *const *names, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (!strcmp(names[k], names[i]))
			return true;
	return false;
}

int merge_plan(const struct merge_spec *spec, const json_t *a, const json_t *b,
	       const json_t *shadow_a, const json_t *shadow_b, struct merge_plan *plan)
{
	const struct cw_config *cfg = spec->cfg;
	bool with_status = cfg->a_status && *cfg->a_status;
	bool with_groups = cfg->a_groups && *cfg->a_groups && cfg->nmanaged_groups > 0;
	struct merge_run run = { .spec = spec, .a_absent = !a, .b_absent = !b, .plan = plan };
	size_t most = 2 + cfg->nfields + cfg->nmanaged_groups; /* email, status */
	json_t *empty = NULL;
	size_t n = 0, i;

	memset(plan, 0, sizeof(*plan));
	if (!a && !b)
		return -1;
	/* A shadow is both halves or none. */
	if (shadow_a && shadow_b) {
		run.shadow_a = shadow_a;
		run.shadow_b = shadow_b;
	}
	if (!a || !b)
		empty = empty_snapshot(cfg, with_status, with_groups);
	run.a = a ? a : empty;
	run.b = b ? b : empty;
	plan->a_after = json_deep_copy(run.a);
	plan->b_after = json_deep_copy(run.b);

	plan->items = xcalloc(most, sizeof(struct merge_item));
	run.a_member = xcalloc(most, sizeof(bool));
	run.b_member = xcalloc(most, sizeof(bool));

	plan->items[n] = (struct merge_item){ .kind = MERGE_EMAIL, .name = "email" };
	merge_one(&run, n++, CW_DIR_BOTH, cfg->conflict_policy);
	for (i = 0; i < cfg->nfields; i++) {
		const struct cw_field *f = &cfg->fields[i];
		plan->items[n] = (struct merge_item){ .kind = MERGE_FIELD, .name = f->b_field };
		merge_one(&run, n++, f->direction,
			  f->policy != CW_POLICY_DEFAULT ? (int)f->policy : cfg->conflict_policy);
	}
	if (with_status) {
		plan->items[n] = (struct merge_item){ .kind = MERGE_STATUS, .name = "status" };
		merge_one(&run, n++, CW_DIR_BOTH, cfg->conflict_policy);
	}
	for (i = 0; with_groups && i < cfg->nmanaged_groups; i++) {
		if (seen_before(cfg->managed_groups, i))
			continue;
		plan->items[n] = (struct merge_item){ .kind = MERGE_GROUP,
						      .name = cfg->managed_groups[i] };
		merge_one(&run, n++, CW_DIR_BOTH, cfg->conflict_policy);
	}
	plan->n = n;
	if (with_groups) {
		put_groups(plan->a_after, plan, run.a_member);
		put_groups(plan->b_after, plan, run.b_member);
	}

	plan->create_b = !b && spec->run_direction != CW_DIR_B_TO_A;
	plan->create_a = !a && spec->run_direction != CW_DIR_A_TO_B;
	plan->shadow_changed = !run.shadow_a || !json_equal(plan->a_after, run.shadow_a) ||
			       !json_equal(plan->b_after, run.shadow_b);

	free(run.a_member);
	free(run.b_member);
	json_decref(empty);
	return 0;
}

bool merge_snapshots_agree(const struct merge_spec *spec, const json_t *x, const json_t *y)
{
	const struct cw_config *cfg = spec->cfg;
	bool with_status = cfg->a_status && *cfg->a_status;
	bool with_groups = cfg->a_groups && *cfg->a_groups;

	if (!merge_values_equal(value_in(x, MERGE_EMAIL, "email"), value_in(y, MERGE_EMAIL, "email")))
		return false;
	for (size_t i = 0; i < cfg->nfields; i++) {
		const char *name = cfg->fields[i].b_field;
		if (!merge_values_equal(value_in(x, MERGE_FIELD, name), value_in(y, MERGE_FIELD, name)))
			return false;
	}
	if (with_status &&
	    !merge_values_equal(value_in(x, MERGE_STATUS, "status"), value_in(y, MERGE_STATUS, "status")))
		return false;
	for (size_t i = 0; with_groups && i < cfg->nmanaged_groups; i++) {
		const char *name = cfg->managed_groups[i];
		if (!merge_values_equal(value_in(x, MERGE_GROUP, name), value_in(y, MERGE_GROUP, name)))
			return false;
	}
	return true;
}

void merge_plan_release(struct merge_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++) {
		json_decref(plan->items[i].value);
		json_decref(plan->items[i].a_value);
		json_decref(plan->items[i].b_value);
		json_decref(plan->items[i].base_value);
	}
	free(plan->items);
	json_decref(plan->a_after);
	json_decref(plan->b_after);
	memset(plan, 0, sizeof(*plan));
}
