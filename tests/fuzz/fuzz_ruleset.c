// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target: the rule-set decoders (text form, and protobuf NodePolicy / NodePolicyDelta as
 * `dataplane apply --format pb-*` reads them). Nothing may crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "ruleset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Bulkhead__NodePolicy *np = NULL;
	Bulkhead__NodePolicyDelta *d = NULL;
	struct bh_error err = {0};

	if (agent_ruleset_parse((const char *)data, size, "fuzz", &np, &d, &err) == 0) {
		agent_ruleset_free_policy(np);
		agent_ruleset_free_delta(d);
	}
	np = bulkhead__node_policy__unpack(NULL, size, data);
	if (np)
		bulkhead__node_policy__free_unpacked(np, NULL);
	d = bulkhead__node_policy_delta__unpack(NULL, size, data);
	if (d)
		bulkhead__node_policy_delta__free_unpacked(d, NULL);
	return 0;
}
