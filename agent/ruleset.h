/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The readable text form of a node's rule set and of a delta, for `bulkhead-agent dataplane apply`
 * and for tests. deploy/ruleset-format.md documents it; in short:
 *
 *   revision 7
 *   endpoint db if=veth-db id=1003 mode=enforce attach=host ingress=deny:100 egress=allow:101
 *   ipcache 198.18.0.10/32 1001
 *   rule 1003 ingress 1001 tcp/5432 allow 17
 *   rule 1003 ingress any tcp/6000-6100 deny 18
 *
 * and a delta:
 *
 *   delta 7 8
 *   -rule 1003 ingress 1001 tcp/5432 allow 17
 *   +rule 1003 ingress 1002 tcp/5432 allow 19
 */
#ifndef AGENT_RULESET_H
#define AGENT_RULESET_H

#include <stddef.h>

#include "bulkhead/error.h"
#include "bulkhead.pb-c.h"

/* Largest rule-set file accepted. */
#define AGENT_RULESET_MAX_BYTES (256u << 20)

/*
 * Parses text (len bytes, need not be NUL-terminated) as a rule set or a delta. On success returns
 * 0 and sets exactly one of *np and *delta (the other NULL); the caller owns it and frees it with
 * agent_ruleset_free_*(). On failure returns -EINVAL and err says "NAME:LINE: what is wrong"
 * (name is used only in messages); nothing is allocated.
 */
int agent_ruleset_parse(const char *text, size_t len, const char *name, Bulkhead__NodePolicy **np,
			Bulkhead__NodePolicyDelta **delta, struct bh_error *err);

/* Free what agent_ruleset_parse() returned. Take NULL. */
void agent_ruleset_free_policy(Bulkhead__NodePolicy *np);
void agent_ruleset_free_delta(Bulkhead__NodePolicyDelta *d);

#endif
