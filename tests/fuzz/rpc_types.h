/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the RPC fuzz targets share: the services the RPC layer serves, and the message types their
 * methods take and return, taken from protoc-c's descriptors so that a method added to
 * proto/bulkhead.proto is fuzzed without touching the targets.
 */
#ifndef BH_FUZZ_RPC_TYPES_H
#define BH_FUZZ_RPC_TYPES_H

#include <stdio.h>
#include <stdlib.h>

#include "bulkhead/rpc.h"

#define FUZZ_BODY_MAX (1u << 20) /* the receive limit the targets give bh_rpc_body_unpack() */

#define FUZZ_REQUESTS  1u /* fuzz_rpc_types(): the methods' input types */
#define FUZZ_RESPONSES 2u /* and/or their output types */

/* Every service of proto/bulkhead.proto, NULL-terminated as bh_rpc_method_find() wants them. */
static const ProtobufCServiceDescriptor *const fuzz_services[] = {
	&bulkhead__enrollment__descriptor,
	&bulkhead__agent__descriptor,
	&bulkhead__operator__descriptor,
	NULL,
};

/* Fills out with the distinct message types that which (FUZZ_REQUESTS | FUZZ_RESPONSES) selects
 * over every method of fuzz_services, and returns how many. Aborts if more than max: a target
 * that silently skipped types would report nothing wrong. */
static inline size_t fuzz_rpc_types(unsigned int which, const ProtobufCMessageDescriptor **out,
				    size_t max)
{
	size_t n = 0;

	for (const ProtobufCServiceDescriptor *const *s = fuzz_services; *s; s++) {
		for (unsigned int i = 0; i < (*s)->n_methods; i++) {
			const ProtobufCMessageDescriptor *t[2] = {
				which & FUZZ_REQUESTS ? (*s)->methods[i].input : NULL,
				which & FUZZ_RESPONSES ? (*s)->methods[i].output : NULL,
			};

			for (int k = 0; k < 2; k++) {
				size_t j = 0;

				while (t[k] && j < n && out[j] != t[k])
					j++;
				if (!t[k] || j < n)
					continue;
				if (n == max) {
					fprintf(stderr, "fuzz: more than %zu message types\n", max);
					abort();
				}
				out[n++] = t[k];
			}
		}
	}
	return n;
}

/* Stops the run with a message: libFuzzer and the replay driver both report it as a crash. */
#define FUZZ_FAIL(...)                                                                             \
	do {                                                                                       \
		fprintf(stderr, "fuzz: " __VA_ARGS__);                                             \
		fputc('\n', stderr);                                                               \
		abort();                                                                           \
	} while (0)

#endif
