/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's identity: enrollment with a join token, and certificate renewal. */
#ifndef AGENT_ENROLL_H
#define AGENT_ENROLL_H

#include <stdbool.h>

#include "bulkhead/error.h"
#include "bulkhead/rpc.h"

#define AGENT_KEY    "node.key"
#define AGENT_CERT   "node.crt"
#define AGENT_CA     "ca.crt"
#define AGENT_CONF   "agent.conf" /* "controller HOST:PORT\nenroll HOST:PORT\nname NODE\n" */
#define AGENT_DEFAULT_ENROLL_PORT 7444

struct agent_enroll_opts {
	const char *controller; /* HOST[:PORT] of the enrollment listener */
	const char *token;
	const char *name;
	const char *state_dir;
};

/*
 * Enrolls this node: makes (or reuses) the key in state_dir, fetches the controller's CA and
 * refuses it unless its fingerprint is the token's, then sends the token and a CSR over TLS
 * verified against that CA. Stores node.crt, ca.crt and agent.conf (0600). Idempotent: a node
 * already enrolled with this name, key and CA says so and succeeds. Prints nothing; err says why
 * on failure.
 */
int agent_enroll(const struct agent_enroll_opts *o, bool *already, struct bh_error *err);

/* The agent's mutual-TLS client to its controller, from state_dir. */
int agent_client(const char *state_dir, struct bh_rpc_client **out, struct bh_error *err);

/* True if the certificate in state_dir has passed two thirds of its lifetime (or is unreadable). */
bool agent_renew_due(const char *state_dir);

/* Renews the certificate over mutual TLS (same key) and replaces node.crt atomically. With c
 * NULL a client is made for the call. */
int agent_renew(const char *state_dir, struct bh_rpc_client *c, struct bh_error *err);

#endif
