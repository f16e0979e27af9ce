/* The 3-way merge as a table: A, B and the shadow in, the plan for each item out. */
#include "config.h"
#include "merge.h"
#include "strbuf.h"
#include "tap.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

/*
 * Every row starts from one contact that A, B and both shadows hold alike,
 * and overrides parts of it. JSON is written with single quotes; "-" is an
 * absent record (or no shadow), '<absent>' removes a member.
 */
#define BASE                                                                                      \
	"{'email':'ann@example.com',"                                                             \
	"'fields':{'name':'Ann','city':'Oslo','phone':'555','company':'Acme'},"                   \
	"'status':'active','groups':['Customers'],'updated_at':'2024-05-01 10:00:00'}"

#define NAME(v) "{'fields':{'name':" v "}}"
#define FIELD(k, v) "{'fields':{'" k "':" v "}}"
#define STATUS(v) "{'status':'" v "'}"
#define GROUPS(v) "{'groups':" v "}"
#define NOSHADOW .sa = "-", .sb = "-"

/* name goes both ways; A owns city, B owns phone; company's conflicts are always b-wins. */
static struct cw_field fields[] = {
	{ "full_name", "name", CW_DIR_BOTH, CW_POLICY_DEFAULT },
	{ "town", "city", CW_DIR_A_TO_B, CW_POLICY_DEFAULT },
	{ "tel", "phone", CW_DIR_B_TO_A, CW_POLICY_DEFAULT },
	{ "employer", "company", CW_DIR_BOTH, CW_POLICY_B_WINS },
};
static char *managed[] = { "VIP", "Customers", "Staff" };

struct row {
	const char *what;
	int conflict_policy, initial_policy; /* skip unless given */
	enum cw_direction run;
	bool resubscribe;
	const char *a, *b, *sa, *sb; /* overrides of BASE; NULL: BASE itself */
	const char *item;	     /* the item in focus */
	const char *want;	     /* action [value] [deferred] [conflict] [policy/winner] */
	const char *others;	     /* the other items that are not none or agree, in order */
	const char *details;	     /* the focused conflict's values: a=… b=… base=… */
	const char *after;	     /* the focused item in a_after and b_after, when given */
	const char *groups;	     /* a_after's and b_after's "groups", when given */
	const char *counts;	     /* pushes/pulls/conflicts; NULL: none */
	const char *flags;	     /* create_a create_b resubscribe; "same": no shadow write */
};

static const struct row rows[] = {
	/* Who moved, against the shadow (default policy skip). */
	{ "neither moved", .item = "name", .want = "none 'Ann'", .after = "'Ann' 'Ann'",
	  .flags = "same" },
	{ "A moved", .a = NAME("'Anna'"), .item = "name", .want = "push 'Anna'",
	  .after = "'Anna' 'Anna'", .counts = "1/0/0", .flags = "" },
	{ "B moved", .b = NAME("'Anne'"), .item = "name", .want = "pull 'Anne'",
	  .after = "'Anne' 'Anne'", .counts = "0/1/0", .flags = "" },
	{ "both moved to the same value", .a = NAME("'Anna'"), .b = NAME("'Anna'"), .item = "name",
	  .want = "agree 'Anna'", .after = "'Anna' 'Anna'", .flags = "" },
	{ "both moved apart, skip keeps the base", .a = NAME("'Anna'"), .b = NAME("'Anne'"),
	  .item = "name", .want = "keep conflict skip/n", .details = "a='Anna' b='Anne' base='Ann'",
	  .after = "'Ann' 'Ann'", .counts = "0/0/1", .flags = "same" },
	{ "neither moved but they differ: initial skip", .b = NAME("'Anne'"), .sb = NAME("'Anne'"),
	  .item = "name", .want = "keep conflict skip/n", .details = "a='Ann' b='Anne' base=null",
	  .after = "'Ann' 'Anne'", .counts = "0/0/1", .flags = "same" },
	{ "neither moved but they differ: initial a-wins, not the conflict policy",
	  .conflict_policy = CW_POLICY_B_WINS, .initial_policy = CW_POLICY_A_WINS,
	  .b = NAME("'Anne'"), .sb = NAME("'Anne'"), .item = "name",
	  .want = "push 'Ann' conflict a-wins/a", .details = "a='Ann' b='Anne' base=null",
	  .after = "'Ann' 'Ann'", .counts = "1/0/1", .flags = "" },
	{ "neither moved, B empty: filled without conflict", .b = NAME("null"), .sb = NAME("null"),
	  .item = "name", .want = "push 'Ann'", .after = "'Ann' 'Ann'", .counts = "1/0/0",
	  .flags = "" },
	{ "neither moved, A empty: filled without conflict", .a = NAME("''"), .sa = NAME("''"),
	  .item = "name", .want = "pull 'Ann'", .after = "'Ann' 'Ann'", .counts = "0/1/0",
	  .flags = "" },
	{ "equal but the shadow lags", .sa = NAME("'Old'"), .sb = NAME("'Old'"), .item = "name",
	  .want = "agree 'Ann'", .after = "'Ann' 'Ann'", .flags = "" },

	/* Policies for a conflict. */
	{ "a-wins", .conflict_policy = CW_POLICY_A_WINS, .a = NAME("'Anna'"), .b = NAME("'Anne'"),
	  .item = "name", .want = "push 'Anna' conflict a-wins/a",
	  .details = "a='Anna' b='Anne' base='Ann'", .after = "'Anna' 'Anna'", .counts = "1/0/1",
	  .flags = "" },
	{ "b-wins", .conflict_policy = CW_POLICY_B_WINS, .a = NAME("'Anna'"), .b = NAME("'Anne'"),
	  .item = "name", .want = "pull 'Anne' conflict b-wins/b",
	  .details = "a='Anna' b='Anne' base='Ann'", .after = "'Anne' 'Anne'", .counts = "0/1/1",
	  .flags = "" },
	{ "newest: A later", .conflict_policy = CW_POLICY_NEWEST,
	  .a = "{'fields':{'name':'Anna'},'updated_at':'2024-06-02 08:00:00'}",
	  .b = "{'fields':{'name':'Anne'},'updated_at':'2024-06-01 23:59:59'}", .item = "name",
	  .want = "push 'Anna' conflict newest/a", .details = "a='Anna' b='Anne' base='Ann'",
	  .counts = "1/0/1", .flags = "" },
	{ "newest: B later", .conflict_policy = CW_POLICY_NEWEST,
	  .a = "{'fields':{'name':'Anna'},'updated_at':'2024-06-01 23:59:59'}",
	  .b = "{'fields':{'name':'Anne'},'updated_at':'2024-06-02 08:00:00'}", .item = "name",
	  .want = "pull 'Anne' conflict newest/b", .counts = "0/1/1", .flags = "",
	  .details = "a='Anna' b='Anne' base='Ann'" },
	{ "newest: a tie goes to A", .conflict_policy = CW_POLICY_NEWEST,
	  .a = "{'fields':{'name':'Anna'},'updated_at':'2024-06-02 08:00:00'}",
	  .b = "{'fields':{'name':'Anne'},'updated_at':'2024-06-02 08:00:00'}", .item = "name",
	  .want = "push 'Anna' conflict newest/a", .counts = "1/0/1", .flags = "",
	  .details = "a='Anna' b='Anne' base='Ann'" },
	{ "newest: A's time null loses", .conflict_policy = CW_POLICY_NEWEST,
	  .a = "{'fields':{'name':'Anna'},'updated_at':null}",
	  .b = "{'fields':{'name':'Anne'},'updated_at':'2024-01-01 00:00:00'}", .item = "name",
	  .want = "pull 'Anne' conflict newest/b", .counts = "0/1/1", .flags = "",
	  .details = "a='Anna' b='Anne' base='Ann'" },
	{ "newest: B's time absent loses", .conflict_policy = CW_POLICY_NEWEST,
	  .a = "{'fields':{'name':'Anna'},'updated_at':'2024-01-01 00:00:00'}",
	  .b = "{'fields':{'name':'Anne'},'updated_at':'<absent>'}", .item = "name",
	  .want = "push 'Anna' conflict newest/a", .counts = "1/0/1", .flags = "",
	  .details = "a='Anna' b='Anne' base='Ann'" },
	{ "newest: both times missing is a tie", .conflict_policy = CW_POLICY_NEWEST,
	  .a = "{'fields':{'name':'Anna'},'updated_at':''}",
	  .b = "{'fields':{'name':'Anne'},'updated_at':null}", .item = "name",
	  .want = "push 'Anna' conflict newest/a", .counts = "1/0/1", .flags = "",
	  .details = "a='Anna' b='Anne' base='Ann'" },

	/* A field's own policy beats the default; the initial policy is the config's. */
	{ "field policy b-wins over default a-wins", .conflict_policy = CW_POLICY_A_WINS,
	  .a = FIELD("company", "'Initech'"), .b = FIELD("company", "'Umbrella'"),
	  .item = "company", .want = "pull 'Umbrella' conflict b-wins/b",
	  .details = "a='Initech' b='Umbrella' base='Acme'", .after = "'Umbrella' 'Umbrella'",
	  .counts = "0/1/1", .flags = "" },
	{ "field policy b-wins over default skip", .a = FIELD("company", "'Initech'"),
	  .b = FIELD("company", "'Umbrella'"), .item = "company",
	  .want = "pull 'Umbrella' conflict b-wins/b",
	  .details = "a='Initech' b='Umbrella' base='Acme'", .counts = "0/1/1", .flags = "" },
	{ "the same field with no shadow: initial policy", .conflict_policy = CW_POLICY_A_WINS,
	  NOSHADOW, .a = FIELD("company", "'Initech'"), .b = FIELD("company", "'Umbrella'"),
	  .item = "company", .want = "keep conflict skip/n",
	  .details = "a='Initech' b='Umbrella' base=null", .after = "'Initech' 'Umbrella'",
	  .counts = "0/0/1", .flags = "" },

	/* Field directions: the owner's value is mirrored, never a conflict. */
	{ "a-to-b field, A moved", .a = FIELD("city", "'Bergen'"), .item = "city",
	  .want = "push 'Bergen'", .after = "'Bergen' 'Bergen'", .counts = "1/0/0", .flags = "" },
	{ "a-to-b field, B moved: A's value put back", .b = FIELD("city", "'Bergen'"),
	  .item = "city", .want = "push 'Oslo'", .after = "'Oslo' 'Oslo'", .counts = "1/0/0",
	  .flags = "same" },
	{ "a-to-b field, both moved: no conflict", .conflict_policy = CW_POLICY_B_WINS,
	  .a = FIELD("city", "'Bergen'"), .b = FIELD("city", "'Tromso'"), .item = "city",
	  .want = "push 'Bergen'", .counts = "1/0/0", .flags = "" },
	{ "a-to-b field, no shadow: no conflict", .initial_policy = CW_POLICY_B_WINS, NOSHADOW,
	  .b = FIELD("city", "'Bergen'"), .item = "city", .want = "push 'Oslo'",
	  .counts = "1/0/0", .flags = "" },
	{ "a-to-b field, A cleared it", .a = FIELD("city", "null"), .item = "city",
	  .want = "push null", .after = "null null", .counts = "1/0/0", .flags = "" },
	{ "a-to-b field, equal", .item = "city", .want = "none 'Oslo'", .flags = "same" },
	{ "b-to-a field, A moved: B's value put back", .a = FIELD("phone", "'556'"),
	  .item = "phone", .want = "pull '555'", .after = "'555' '555'", .counts = "0/1/0",
	  .flags = "same" },
	{ "b-to-a field, B moved", .b = FIELD("phone", "'556'"), .item = "phone",
	  .want = "pull '556'", .after = "'556' '556'", .counts = "0/1/0", .flags = "" },
	{ "b-to-a field, both moved: no conflict", .conflict_policy = CW_POLICY_A_WINS,
	  .a = FIELD("phone", "'111'"), .b = FIELD("phone", "'222'"), .item = "phone",
	  .want = "pull '222'", .counts = "0/1/0", .flags = "" },

	/* The run's direction: a forbidden write is deferred, its base kept. */
	{ "a-to-b run, A moved", .run = CW_DIR_A_TO_B, .a = NAME("'Anna'"), .item = "name",
	  .want = "push 'Anna'", .counts = "1/0/0", .flags = "" },
	{ "a-to-b run, B moved: pull deferred", .run = CW_DIR_A_TO_B, .b = NAME("'Anne'"),
	  .item = "name", .want = "keep deferred", .after = "'Ann' 'Ann'", .flags = "same" },
	{ "b-to-a run, A moved: push deferred", .run = CW_DIR_B_TO_A, .a = NAME("'Anna'"),
	  .item = "name", .want = "keep deferred", .after = "'Ann' 'Ann'", .flags = "same" },
	{ "b-to-a run, B moved", .run = CW_DIR_B_TO_A, .b = NAME("'Anne'"), .item = "name",
	  .want = "pull 'Anne'", .counts = "0/1/0", .flags = "" },
	{ "a-to-b run, conflict won by B: deferred, not reported", .run = CW_DIR_A_TO_B,
	  .conflict_policy = CW_POLICY_B_WINS, .a = NAME("'Anna'"), .b = NAME("'Anne'"),
	  .item = "name", .want = "keep deferred b-wins/b", .details = "",
	  .after = "'Ann' 'Ann'", .flags = "same" },
	{ "a-to-b run, conflict won by A", .run = CW_DIR_A_TO_B,
	  .conflict_policy = CW_POLICY_A_WINS, .a = NAME("'Anna'"), .b = NAME("'Anne'"),
	  .item = "name", .want = "push 'Anna' conflict a-wins/a",
	  .details = "a='Anna' b='Anne' base='Ann'", .counts = "1/0/1", .flags = "" },
	{ "b-to-a run, conflict won by A: deferred, not reported", .run = CW_DIR_B_TO_A,
	  .conflict_policy = CW_POLICY_A_WINS, .a = NAME("'Anna'"), .b = NAME("'Anne'"),
	  .item = "name", .want = "keep deferred a-wins/a", .details = "",
	  .after = "'Ann' 'Ann'", .flags = "same" },
	{ "b-to-a run, conflict won by B", .run = CW_DIR_B_TO_A,
	  .conflict_policy = CW_POLICY_B_WINS, .a = NAME("'Anna'"), .b = NAME("'Anne'"),
	  .item = "name", .want = "pull 'Anne' conflict b-wins/b", .counts = "0/1/1",
	  .flags = "", .details = "a='Anna' b='Anne' base='Ann'" },
	{ "a-to-b run, skip: still a conflict", .run = CW_DIR_A_TO_B, .a = NAME("'Anna'"),
	  .b = NAME("'Anne'"), .item = "name", .want = "keep conflict skip/n",
	  .details = "a='Anna' b='Anne' base='Ann'", .counts = "0/0/1", .flags = "same" },
	{ "a-to-b run, newest won by B: deferred", .run = CW_DIR_A_TO_B,
	  .conflict_policy = CW_POLICY_NEWEST,
	  .a = "{'fields':{'name':'Anna'},'updated_at':'2024-06-01 00:00:00'}",
	  .b = "{'fields':{'name':'Anne'},'updated_at':'2024-06-02 00:00:00'}", .item = "name",
	  .want = "keep deferred newest/b", .details = "", .after = "'Ann' 'Ann'", .flags = "" },
	{ "b-to-a run, a-to-b field moved in A: deferred", .run = CW_DIR_B_TO_A,
	  .a = FIELD("city", "'Bergen'"), .item = "city", .want = "keep deferred",
	  .after = "'Oslo' 'Oslo'", .flags = "same" },
	{ "a-to-b run, b-to-a field moved in B: deferred", .run = CW_DIR_A_TO_B,
	  .b = FIELD("phone", "'556'"), .item = "phone", .want = "keep deferred",
	  .after = "'555' '555'", .flags = "same" },

	/* No shadow yet. */
	{ "no shadow, equal", NOSHADOW, .item = "name", .want = "agree 'Ann'", .flags = "" },
	{ "no shadow, A null: filled", NOSHADOW, .a = NAME("null"), .item = "name",
	  .want = "pull 'Ann'", .after = "'Ann' 'Ann'", .counts = "0/1/0", .flags = "" },
	{ "no shadow, B empty: filled", NOSHADOW, .b = NAME("''"), .item = "name",
	  .want = "push 'Ann'", .after = "'Ann' 'Ann'", .counts = "1/0/0", .flags = "" },
	{ "no shadow, B's member absent: filled", NOSHADOW, .b = NAME("'<absent>'"),
	  .item = "name", .want = "push 'Ann'", .after = "'Ann' 'Ann'", .counts = "1/0/0",
	  .flags = "" },
	{ "no shadow, two values, initial skip", NOSHADOW, .a = NAME("'Anna'"),
	  .b = NAME("'Anne'"), .item = "name", .want = "keep conflict skip/n",
	  .details = "a='Anna' b='Anne' base=null", .after = "'Anna' 'Anne'", .counts = "0/0/1",
	  .flags = "" },
	{ "no shadow, two values, initial b-wins", NOSHADOW, .conflict_policy = CW_POLICY_A_WINS,
	  .initial_policy = CW_POLICY_B_WINS, .a = NAME("'Anna'"), .b = NAME("'Anne'"),
	  .item = "name", .want = "pull 'Anne' conflict b-wins/b",
	  .details = "a='Anna' b='Anne' base=null", .after = "'Anne' 'Anne'", .counts = "0/1/1",
	  .flags = "" },
	{ "no shadow, two values, initial newest", NOSHADOW, .initial_policy = CW_POLICY_NEWEST,
	  .a = "{'fields':{'name':'Anna'},'updated_at':'2024-06-01 00:00:00'}",
	  .b = "{'fields':{'name':'Anne'},'updated_at':'2024-06-02 00:00:00'}", .item = "name",
	  .want = "pull 'Anne' conflict newest/b", .details = "a='Anna' b='Anne' base=null",
	  .counts = "0/1/1", .flags = "" },
	{ "half a shadow is no shadow", .sb = "-", .item = "name", .want = "agree 'Ann'",
	  .flags = "" },

	/* null, "" and an absent member are all "no value". */
	{ "null and \"\": each side keeps its form", .a = NAME("null"), .sa = NAME("null"),
	  .b = NAME("''"), .sb = NAME("''"), .item = "name", .want = "none null",
	  .after = "null ''", .flags = "same" },
	{ "absent and null", .a = NAME("'<absent>'"), .sa = NAME("'<absent>'"), .b = NAME("null"),
	  .sb = NAME("''"), .item = "name", .want = "none null", .after = "absent null",
	  .flags = "" },
	{ "A went from \"\" to absent: not a move", .a = NAME("'<absent>'"), .sa = NAME("''"),
	  .b = NAME("null"), .sb = NAME("null"), .item = "name", .want = "none null",
	  .after = "absent null", .flags = "" },

	/* Groups merge as sets. */
	{ "A adds one group, B another: both survive", .a = GROUPS("['Customers','VIP']"),
	  .b = GROUPS("['Customers','Staff']"), .item = "VIP", .want = "push true",
	  .others = "Staff: pull true",
	  .groups = "a=['Customers','Staff','VIP'] b=['Customers','Staff','VIP']",
	  .counts = "1/1/0", .flags = "" },
	{ "A leaves a group", .a = GROUPS("[]"), .item = "Customers", .want = "push false",
	  .after = "false false", .groups = "a=[] b=[]", .counts = "1/0/0", .flags = "" },
	{ "B leaves a group", .b = GROUPS("[]"), .item = "Customers", .want = "pull false",
	  .groups = "a=[] b=[]", .counts = "0/1/0", .flags = "" },
	{ "A leaves one, B joins another", .a = GROUPS("[]"), .b = GROUPS("['Customers','VIP']"),
	  .item = "Customers", .want = "push false", .others = "VIP: pull true",
	  .groups = "a=['VIP'] b=['VIP']", .counts = "1/1/0", .flags = "" },
	{ "no shadow: the union", NOSHADOW, .a = GROUPS("['VIP','Customers']"),
	  .b = GROUPS("['Staff']"), .item = "Customers", .want = "push true",
	  .others = "VIP: push true; Staff: pull true",
	  .groups = "a=['Customers','Staff','VIP'] b=['Customers','Staff','VIP']",
	  .counts = "2/1/0", .flags = "" },
	{ "an unmanaged group is not an item", .a = GROUPS("['Customers','Other']"),
	  .item = "Customers", .want = "none true",
	  .groups = "a=['Customers'] b=['Customers']", .flags = "same" },
	{ "shadows disagree on a group, both moved", .conflict_policy = CW_POLICY_A_WINS,
	  .a = GROUPS("[]"), .b = GROUPS("['Customers']"), .sb = GROUPS("[]"),
	  .item = "Customers", .want = "push false conflict a-wins/a",
	  .details = "a=false b=true base=null", .groups = "a=[] b=[]", .counts = "1/0/1",
	  .flags = "" },
	{ "b-to-a run, A joins a group: deferred", .run = CW_DIR_B_TO_A,
	  .a = GROUPS("['Customers','VIP']"), .item = "VIP", .want = "keep deferred",
	  .after = "false false", .groups = "a=['Customers'] b=['Customers']", .flags = "same" },

	/* Sticky statuses in B. */
	{ "B unsubscribed, A back to active: B wins", .a = STATUS("active"),
	  .b = STATUS("unsubscribed"), .sa = STATUS("unsubscribed"), .sb = STATUS("unsubscribed"),
	  .item = "status", .want = "pull 'unsubscribed' conflict b-wins/b",
	  .details = "a='active' b='unsubscribed' base='unsubscribed'",
	  .after = "'unsubscribed' 'unsubscribed'", .counts = "0/1/1", .flags = "same" },
	{ "B bounced, A back to active: B wins", .a = STATUS("active"), .b = STATUS("bounced"),
	  .sa = STATUS("bounced"), .sb = STATUS("bounced"), .item = "status",
	  .want = "pull 'bounced' conflict b-wins/b",
	  .details = "a='active' b='bounced' base='bounced'", .counts = "0/1/1", .flags = "same" },
	{ "B junk, A to unconfirmed: B wins", .a = STATUS("unconfirmed"), .b = STATUS("junk"),
	  .sa = STATUS("junk"), .sb = STATUS("junk"), .item = "status",
	  .want = "pull 'junk' conflict b-wins/b",
	  .details = "a='unconfirmed' b='junk' base='junk'", .counts = "0/1/1", .flags = "same" },
	{ "resubscribe: the push stands", .resubscribe = true, .a = STATUS("active"),
	  .b = STATUS("unsubscribed"), .sa = STATUS("unsubscribed"), .sb = STATUS("unsubscribed"),
	  .item = "status", .want = "push 'active'", .after = "'active' 'active'",
	  .counts = "1/0/0", .flags = "resubscribe" },
	{ "A unsubscribes: a plain push", .a = STATUS("unsubscribed"), .item = "status",
	  .want = "push 'unsubscribed'", .counts = "1/0/0", .flags = "" },
	{ "B bounced, A unsubscribes: a plain push", .a = STATUS("unsubscribed"),
	  .b = STATUS("bounced"), .sa = STATUS("bounced"), .sb = STATUS("bounced"),
	  .item = "status", .want = "push 'unsubscribed'", .counts = "1/0/0", .flags = "" },
	{ "sticky in an a-to-b run: deferred, not reported", .run = CW_DIR_A_TO_B,
	  .a = STATUS("active"), .b = STATUS("unsubscribed"), .sa = STATUS("unsubscribed"),
	  .sb = STATUS("unsubscribed"), .item = "status", .want = "keep deferred b-wins/b",
	  .details = "", .after = "'unsubscribed' 'unsubscribed'", .flags = "same" },
	{ "resubscribe in a b-to-a run: deferred", .run = CW_DIR_B_TO_A, .resubscribe = true,
	  .a = STATUS("active"), .b = STATUS("unsubscribed"), .sa = STATUS("unsubscribed"),
	  .sb = STATUS("unsubscribed"), .item = "status", .want = "keep deferred",
	  .flags = "same" },
	{ "a conflict won by A cannot revive B", .conflict_policy = CW_POLICY_A_WINS,
	  .a = STATUS("active"), .b = STATUS("bounced"), .sa = STATUS("unsubscribed"),
	  .sb = STATUS("unsubscribed"), .item = "status",
	  .want = "pull 'bounced' conflict b-wins/b",
	  .details = "a='active' b='bounced' base='unsubscribed'", .counts = "0/1/1",
	  .flags = "" },
	{ "B unsubscribed: a plain pull", .b = STATUS("unsubscribed"), .item = "status",
	  .want = "pull 'unsubscribed'", .counts = "0/1/0", .flags = "" },
	{ "no shadow, initial a-wins cannot revive B", NOSHADOW,
	  .initial_policy = CW_POLICY_A_WINS, .b = STATUS("unsubscribed"), .item = "status",
	  .want = "pull 'unsubscribed' conflict b-wins/b",
	  .details = "a='active' b='unsubscribed' base=null", .counts = "0/1/1", .flags = "" },

	/* One side absent: create it there, seeded with every value the
	 * other side holds, whatever the field's direction. */
	{ "B absent: create_b, the b-to-a field seeded too", NOSHADOW, .b = "-", .item = "phone",
	  .want = "push '555'",
	  .others = "email: push 'ann@example.com'; name: push 'Ann'; city: push 'Oslo'; "
		    "company: push 'Acme'; status: push 'active'; Customers: push true",
	  .details = "", .after = "'555' '555'", .groups = "a=['Customers'] b=['Customers']",
	  .counts = "7/0/0", .flags = "create_b" },
	{ "A absent: create_a, the a-to-b field seeded too", NOSHADOW, .a = "-", .item = "city",
	  .want = "pull 'Oslo'",
	  .others = "email: pull 'ann@example.com'; name: pull 'Ann'; phone: pull '555'; "
		    "company: pull 'Acme'; status: pull 'active'; Customers: pull true",
	  .after = "'Oslo' 'Oslo'", .groups = "a=['Customers'] b=['Customers']",
	  .counts = "0/7/0", .flags = "create_a" },
	{ "B absent in a b-to-a run: nothing created", NOSHADOW, .run = CW_DIR_B_TO_A, .b = "-",
	  .item = "email", .want = "keep deferred",
	  .others = "name: keep deferred; city: keep deferred; phone: keep deferred; "
		    "company: keep deferred; status: keep deferred; Customers: keep deferred",
	  .after = "'ann@example.com' null", .groups = "a=['Customers'] b=[]", .flags = "" },
	{ "A absent in an a-to-b run: nothing created", NOSHADOW, .run = CW_DIR_A_TO_B, .a = "-",
	  .item = "email", .want = "keep deferred",
	  .others = "name: keep deferred; city: keep deferred; phone: keep deferred; "
		    "company: keep deferred; status: keep deferred; Customers: keep deferred",
	  .after = "null 'ann@example.com'", .groups = "a=[] b=['Customers']", .flags = "" },
	{ "B absent, A's name empty: nothing to push", NOSHADOW, .b = "-", .a = NAME("null"),
	  .item = "name", .want = "agree null",
	  .others = "email: push 'ann@example.com'; city: push 'Oslo'; phone: push '555'; "
		    "company: push 'Acme'; status: push 'active'; Customers: push true",
	  .after = "null null", .counts = "6/0/0", .flags = "create_b" },
	{ "B absent with a shadow (deleted there): created again", .b = "-", .item = "phone",
	  .want = "push '555'",
	  .others = "email: push 'ann@example.com'; name: push 'Ann'; city: push 'Oslo'; "
		    "company: push 'Acme'; status: push 'active'; Customers: push true",
	  .after = "'555' '555'", .counts = "7/0/0", .flags = "create_b" },

	/* The email is an item like the others. */
	{ "A changed the email", .a = "{'email':'ann@new.example'}", .item = "email",
	  .want = "push 'ann@new.example'", .after = "'ann@new.example' 'ann@new.example'",
	  .counts = "1/0/0", .flags = "" },
	{ "both changed the email, newest", .conflict_policy = CW_POLICY_NEWEST,
	  .a = "{'email':'ann@a.example','updated_at':'2024-06-02 00:00:00'}",
	  .b = "{'email':'ann@b.example','updated_at':'2024-06-01 00:00:00'}", .item = "email",
	  .want = "push 'ann@a.example' conflict newest/a",
	  .details = "a='ann@a.example' b='ann@b.example' base='ann@example.com'",
	  .counts = "1/0/1", .flags = "" },

	/* The shadow carries each side's time. */
	{ "only A's updated_at moved: the shadow is written",
	  .a = "{'updated_at':'2024-06-01 00:00:00'}", .item = "name", .want = "none 'Ann'",
	  .flags = "" },
};

/* Test JSON is written with single quotes; jansson wants double ones. */
static char *swap_quotes(const char *text, char from, char to)
{
	char *s = xstrdup(text);

	for (char *p = s; *p; p++)
		if (*p == from)
			*p = to;
	return s;
}

static json_t *parse(const char *text)
{
	char *doubled = swap_quotes(text, '\'', '"');
	json_error_t error;
	json_t *v = json_loads(doubled, JSON_DECODE_ANY, &error);

	if (!v)
		diag("bad test JSON %s: %s", text, error.text);
	free(doubled);
	return v;
}

static void drop_absent(json_t *obj)
{
	const char *key;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(obj, tmp, key, v) {
		if (json_is_string(v) && !strcmp(json_string_value(v), "<absent>"))
			json_object_del(obj, key);
	}
}

/* BASE with a row's override on top; NULL for "-". */
static json_t *contact(const char *override)
{
	json_t *c, *o;

	if (override && !strcmp(override, "-"))
		return NULL;
	c = parse(BASE);
	if (override && (o = parse(override))) {
		json_object_update_recursive(c, o);
		json_decref(o);
	}
	drop_absent(c);
	drop_absent(json_object_get(c, "fields"));
	return c;
}

/* A value as test text: single-quoted JSON, or "absent". */
static void add_value(struct strbuf *sb, const json_t *v)
{
	char *text, *quoted;

	if (!v) {
		strbuf_addstr(sb, "absent");
		return;
	}
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	quoted = swap_quotes(text, '"', '\'');
	strbuf_addstr(sb, quoted);
	free(quoted);
	free(text);
}

static void describe(struct strbuf *sb, const struct merge_item *it)
{
	strbuf_addstr(sb, merge_action_name(it->action));
	if (it->value) {
		strbuf_addch(sb, ' ');
		add_value(sb, it->value);
	}
	if (it->deferred)
		strbuf_addstr(sb, " deferred");
	if (it->conflict)
		strbuf_addstr(sb, " conflict");
	if (it->winner)
		strbuf_addf(sb, " %s/%c", config_policy_name(it->policy), it->winner);
}

/* The item's value in an after-snapshot; a group's as true/false. */
static void add_after(struct strbuf *sb, const json_t *snap, const struct merge_item *it)
{
	if (it->kind == MERGE_GROUP) {
		const json_t *groups = json_object_get(snap, "groups");
		bool member = false;
		for (size_t i = 0; i < json_array_size(groups); i++)
			member |= !strcmp(json_string_value(json_array_get(groups, i)), it->name);
		strbuf_addstr(sb, member ? "true" : "false");
	} else if (it->kind == MERGE_FIELD) {
		add_value(sb, json_object_get(json_object_get(snap, "fields"), it->name));
	} else {
		add_value(sb, json_object_get(snap, it->name));
	}
}

static void setup(struct cw_config *cfg, int conflict_policy, int initial_policy)
{
	config_init(cfg);
	cfg->fields = fields;
	cfg->nfields = sizeof(fields) / sizeof(fields[0]);
	cfg->a_status = "status";
	cfg->a_groups = "groups";
	cfg->managed_groups = managed;
	cfg->nmanaged_groups = sizeof(managed) / sizeof(managed[0]);
	cfg->conflict_policy = conflict_policy;
	cfg->initial_policy = initial_policy;
}

static void check_row(const struct row *r)
{
	struct cw_config cfg;
	struct merge_spec spec = { &cfg, r->run, r->resubscribe };
	struct merge_plan plan;
	json_t *a = contact(r->a), *b = contact(r->b);
	json_t *sa = contact(r->sa), *sb = contact(r->sb);
	struct strbuf got = STRBUF_INIT;
	const struct merge_item *focus = NULL;

	setup(&cfg, r->conflict_policy, r->initial_policy);
	if (!ok(merge_plan(&spec, a, b, sa, sb, &plan) == 0, "%s: planned", r->what))
		goto out;

	for (size_t i = 0; i < plan.n; i++) {
		const struct merge_item *it = &plan.items[i];
		if (!strcmp(it->name, r->item)) {
			focus = it;
		} else if (it->action != MERGE_NONE && it->action != MERGE_AGREE) {
			strbuf_addf(&got, "%s%s: ", got.len ? "; " : "", it->name);
			describe(&got, it);
		}
	}
	is_str(got.buf, r->others ? r->others : "", "%s: other items", r->what);
	strbuf_reset(&got);
	if (!ok(focus != NULL, "%s: item %s planned", r->what, r->item))
		goto release;

	describe(&got, focus);
	is_str(got.buf, r->want, "%s: %s", r->what, r->item);
	strbuf_reset(&got);

	if (focus->a_value || focus->b_value || focus->base_value) {
		strbuf_addstr(&got, "a=");
		add_value(&got, focus->a_value);
		strbuf_addstr(&got, " b=");
		add_value(&got, focus->b_value);
		strbuf_addstr(&got, " base=");
		add_value(&got, focus->base_value);
	}
	is_str(got.buf, r->details ? r->details : "", "%s: conflict details", r->what);
	strbuf_reset(&got);

	if (r->after) {
		add_after(&got, plan.a_after, focus);
		strbuf_addch(&got, ' ');
		add_after(&got, plan.b_after, focus);
		is_str(got.buf, r->after, "%s: %s afterwards in A and B", r->what, r->item);
		strbuf_reset(&got);
	}
	if (r->groups) {
		strbuf_addstr(&got, "a=");
		add_value(&got, json_object_get(plan.a_after, "groups"));
		strbuf_addstr(&got, " b=");
		add_value(&got, json_object_get(plan.b_after, "groups"));
		is_str(got.buf, r->groups, "%s: groups afterwards", r->what);
		strbuf_reset(&got);
	}

	strbuf_addf(&got, "%zu/%zu/%zu", plan.pushes, plan.pulls, plan.conflicts);
	is_str(got.buf, r->counts ? r->counts : "0/0/0", "%s: pushes/pulls/conflicts", r->what);
	strbuf_reset(&got);

	strbuf_addf(&got, "%s%s%s%s", plan.create_a ? " create_a" : "",
		    plan.create_b ? " create_b" : "", plan.resubscribe ? " resubscribe" : "",
		    plan.shadow_changed ? "" : " same");
	is_str(got.len ? got.buf + 1 : "", r->flags ? r->flags : "", "%s: flags", r->what);

release:
	merge_plan_release(&plan);
out:
	strbuf_release(&got);
	json_decref(a);
	json_decref(b);
	json_decref(sa);
	json_decref(sb);
}

static void values_equal(json_t *x, json_t *y, bool want, const char *what)
{
	ok(merge_values_equal(x, y) == want, "values: %s", what);
	ok(merge_values_equal(y, x) == want, "values: %s (swapped)", what);
	json_decref(x);
	json_decref(y);
}

static void value_rules(void)
{
	values_equal(NULL, json_null(), true, "absent and null");
	values_equal(json_null(), json_string(""), true, "null and \"\"");
	values_equal(NULL, json_string(""), true, "absent and \"\"");
	values_equal(json_string("Ann"), json_string("Ann"), true, "same text");
	values_equal(json_string("Ann"), json_string("ann"), false, "case counts");
	values_equal(json_string("Ann"), json_string("Ann "), false, "spaces count");
	values_equal(json_string("Ann"), json_null(), false, "a value and null");
	values_equal(json_stringn("a\0b", 3), json_stringn("a\0c", 3), false,
		     "bytes after a NUL count");
	values_equal(json_true(), json_true(), true, "member and member");
	values_equal(json_true(), json_false(), false, "member and not");
	values_equal(json_false(), NULL, true, "not a member is no value");

	ok(merge_status_sticky("unsubscribed"), "unsubscribed is sticky");
	ok(merge_status_sticky("bounced"), "bounced is sticky");
	ok(merge_status_sticky("junk"), "junk is sticky");
	ok(!merge_status_sticky("active"), "active is not");
	ok(!merge_status_sticky("unconfirmed"), "unconfirmed is not");
	ok(!merge_status_sticky(""), "\"\" is not");
	ok(!merge_status_sticky(NULL), "NULL is not");

	is_str(merge_action_name(MERGE_NONE), "none", "action name none");
	is_str(merge_action_name(MERGE_AGREE), "agree", "action name agree");
	is_str(merge_action_name(MERGE_PUSH), "push", "action name push");
	is_str(merge_action_name(MERGE_PULL), "pull", "action name pull");
	is_str(merge_action_name(MERGE_KEEP), "keep", "action name keep");
}

/* The items, in order, as "kind:name ...". */
static char *item_list(const struct merge_plan *plan)
{
	static const char *const kinds[] = { "email", "field", "status", "group" };
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < plan->n; i++)
		strbuf_addf(&sb, "%s%s:%s", i ? " " : "", kinds[plan->items[i].kind],
			    plan->items[i].name);
	return strbuf_detach(&sb, NULL);
}

static void items_planned(const char *what, const struct cw_config *cfg, const char *want)
{
	struct merge_spec spec = { cfg, CW_DIR_BOTH, false };
	struct merge_plan plan;
	json_t *a = contact(NULL);
	char *got;

	merge_plan(&spec, a, a, a, a, &plan);
	got = item_list(&plan);
	is_str(got, want, "items: %s", what);
	free(got);
	merge_plan_release(&plan);
	json_decref(a);
}

static void item_sets(void)
{
	struct cw_config cfg;
	char *twice[] = { "VIP", "Staff", "VIP" };

	setup(&cfg, CW_POLICY_SKIP, CW_POLICY_SKIP);
	items_planned("all mapped", &cfg,
		      "email:email field:name field:city field:phone field:company status:status "
		      "group:VIP group:Customers group:Staff");
	cfg.a_status = "";
	cfg.a_groups = NULL;
	items_planned("status and groups not mapped", &cfg,
		      "email:email field:name field:city field:phone field:company");
	cfg.a_status = NULL;
	cfg.a_groups = "groups";
	cfg.nmanaged_groups = 0;
	items_planned("groups mapped, none managed", &cfg,
		      "email:email field:name field:city field:phone field:company");
	cfg.managed_groups = twice;
	cfg.nmanaged_groups = 3;
	items_planned("a group named twice is one item", &cfg,
		      "email:email field:name field:city field:phone field:company group:VIP "
		      "group:Staff");
	cfg.nfields = 0;
	cfg.a_groups = "";
	items_planned("email alone", &cfg, "email:email");
}

static void is_json(const json_t *got, const char *want, const char *what)
{
	json_t *expected = parse(want);
	char *text = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (!ok(got && expected && json_equal(got, expected), "%s", what))
		diag("got %s", text ? text : "NULL");
	free(text);
	json_decref(expected);
}

static void snapshots_after(void)
{
	struct cw_config cfg;
	struct merge_spec spec = { &cfg, CW_DIR_BOTH, false };
	struct merge_plan plan;
	json_t *a = contact(NULL), *b = contact(NAME("'Anne'")), *sa = contact(NULL);

	setup(&cfg, CW_POLICY_SKIP, CW_POLICY_SKIP);

	ok(merge_plan(&spec, NULL, NULL, NULL, NULL, &plan) == -1, "both absent is an error");
	ok(plan.n == 0 && !plan.items && !plan.a_after, "and leaves an empty plan");
	merge_plan_release(&plan);

	merge_plan(&spec, a, NULL, NULL, NULL, &plan);
	is_json(plan.b_after,
		"{'email':'ann@example.com','fields':{'name':'Ann','city':'Oslo','phone':'555',"
		"'company':'Acme'},'status':'active','groups':['Customers'],'updated_at':null}",
		"create_b: b_after is what B will hold, without a time");
	ok(json_equal(plan.a_after, a), "create_b: a_after is A as it is");
	ok(plan.items[0].value && plan.items[2 + 1].value, "every push carries a value");
	merge_plan_release(&plan);

	merge_plan(&spec, NULL, b, NULL, NULL, &plan);
	is_json(plan.a_after,
		"{'email':'ann@example.com','fields':{'name':'Anne','city':'Oslo','phone':'555',"
		"'company':'Acme'},'status':'active','groups':['Customers'],'updated_at':null}",
		"create_a: a_after is what A will hold, without a time");
	merge_plan_release(&plan);

	/* B moved the name; an a-to-b run defers the pull and keeps the base,
	 * while B's own time is still copied. */
	spec.run_direction = CW_DIR_A_TO_B;
	json_object_set_new(b, "updated_at", json_string("2024-07-01 12:00:00"));
	merge_plan(&spec, a, b, sa, sa, &plan);
	ok(json_equal(plan.a_after, sa), "deferred: a_after is the shadow");
	is_json(plan.b_after,
		"{'email':'ann@example.com','fields':{'name':'Ann','city':'Oslo','phone':'555',"
		"'company':'Acme'},'status':'active','groups':['Customers'],"
		"'updated_at':'2024-07-01 12:00:00'}",
		"deferred: b_after holds the base name and B's time");
	ok(plan.shadow_changed, "deferred: B's new time is a shadow change");
	merge_plan_release(&plan);

	json_decref(a);
	json_decref(b);
	json_decref(sa);
}

static void agreement(void)
{
	struct cw_config cfg;
	struct merge_spec spec = { &cfg, CW_DIR_BOTH, false };
	json_t *a = contact(NULL), *same = contact(NULL), *renamed = contact(NAME("'Anne'"));

	setup(&cfg, CW_POLICY_SKIP, CW_POLICY_SKIP);
	ok(merge_snapshots_agree(&spec, a, same), "agree: equal snapshots");
	json_object_set_new(same, "updated_at", json_string("2030-01-01 00:00:00"));
	json_object_set_new(same, "deferred", json_true());
	ok(merge_snapshots_agree(&spec, a, same), "agree: times and marks aside");
	json_object_set_new(json_object_get(a, "fields"), "company", json_null());
	json_object_set_new(json_object_get(same, "fields"), "company", json_string(""));
	ok(merge_snapshots_agree(&spec, a, same), "agree: null and \"\" are both no value");
	json_object_del(json_object_get(same, "fields"), "company");
	ok(merge_snapshots_agree(&spec, a, same), "agree: an absent field is no value");
	ok(!merge_snapshots_agree(&spec, a, renamed), "disagree: a field moved");
	json_object_set_new(same, "groups", json_pack("[s, s]", "Customers", "Other"));
	ok(merge_snapshots_agree(&spec, a, same), "agree: an unmanaged group aside");
	json_object_set_new(same, "groups", json_array());
	ok(!merge_snapshots_agree(&spec, a, same), "disagree: a managed group left");
	json_object_set_new(same, "groups", json_pack("[s]", "Customers"));
	json_object_set_new(same, "status", json_string("unsubscribed"));
	ok(!merge_snapshots_agree(&spec, a, same), "disagree: the status moved");
	ok(!merge_snapshots_agree(&spec, a, NULL), "disagree: a snapshot and none");
	json_decref(a);
	json_decref(same);
	json_decref(renamed);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		check_row(&rows[i]);
	value_rules();
	item_sets();
	snapshots_after();
	agreement();
	return done_testing();
}
