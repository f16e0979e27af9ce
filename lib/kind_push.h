/*
 * The push kind: the A rows of a key range each chunk, created or updated
 * in B (through /batch) where they are new or changed since their shadow,
 * by the same three-way reconcile as enterprise-sync's A phase, direction
 * a-to-b. A chunk's links, shadows and log rows commit with its completion.
 *
 * Parameters: resubscribe (let A revive unsubscribed subscribers); bounds
 * (set at enqueue: the first key of chunks 1..n-1, as text).
 */
#ifndef CW_KIND_PUSH_H
#define CW_KIND_PUSH_H

#include "chunkkind.h"

extern const struct chunk_kind kind_push;

#endif
