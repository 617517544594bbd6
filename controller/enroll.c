// SPDX-License-Identifier: Apache-2.0
/*
 * Enrollment and certificate renewal. An agent fetches the CA (over TLS that authenticates the
 * controller only), checks it against the fingerprint in its join token, then sends the token
 * and a CSR for a key it made itself over a connection verified against that CA. The controller
 * consumes one use of the token, records the node and its key, and signs a short-lived agent
 * certificate, all in one store transaction. Renewal happens over the agent's mutual-TLS
 * connection, for the same key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulkhead/log.h"
#include "bulkhead/pki.h"
#include "bulkhead/token.h"
#include "ctl.h"

#define ST(x) BULKHEAD__RPC_STATUS__RPC_##x

static void h_get_ca(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	struct ctl *c = arg;
	Bulkhead__CaResponse r = BULKHEAD__CA_RESPONSE__INIT;

	(void)req;
	r.ca_pem = c->ca_pem;
	bh_rpc_reply(call, ST(OK), &r.base, NULL);
}

/* Signs a certificate for name/role for the key of csr_pem and records it. Store transaction is
 * the caller's. */
static int sign(struct ctl *c, const char *csr_pem, enum bh_role role, const char *name,
		char **cert, struct bh_error *err)
{
	struct bh_issue what = {.role = role, .name = name,
				.lifetime_s = (unsigned int)c->cert_lifetime_s};
	struct bh_identity id;
	char serial[41];
	int rc;

	rc = bh_pki_issue(c->ca_pem, c->ca_key_pem, csr_pem, &what, cert, serial, err);
	if (rc)
		return rc;
	rc = bh_pki_identity(*cert, &id, err);
	if (rc == 0)
		rc = ctl_store_cert_add(c->store, serial, name, bh_role_name(role), id.not_after,
					err);
	if (rc) {
		free(*cert);
		*cert = NULL;
	}
	return rc;
}

static int token_status(int rc)
{
	switch (rc) {
	case -ENOENT:
	case -EACCES:
	case -EKEYEXPIRED:
	case -EKEYREVOKED:
		return ST(UNAUTHENTICATED);
	case -EUSERS:
		return ST(RESOURCE_EXHAUSTED);
	case -EEXIST:
		return ST(ALREADY_EXISTS);
	case -EKEYREJECTED:
	case -EBADMSG:
	case -EINVAL:
		return ST(INVALID_ARGUMENT);
	default:
		return ST(INTERNAL);
	}
}

static void h_enroll(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__EnrollRequest *r = (const void *)req;
	struct ctl *c = arg;
	Bulkhead__EnrollResponse resp = BULKHEAD__ENROLL_RESPONSE__INIT;
	struct bh_error err = {0};
	struct bh_token tok;
	struct ctl_token st;
	char hash[65], keyfp[72], *cert = NULL;
	int rc;

	if (bh_token_parse(r->token, &tok, &err)) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "%s", err.msg);
		return;
	}
	if (strcmp(tok.ca_fingerprint, c->ca_fp) != 0) {
		bh_rpc_reply(call, ST(UNAUTHENTICATED), NULL,
			     "the token names CA %s; this controller's CA is %s",
			     tok.ca_fingerprint, c->ca_fp);
		return;
	}
	if (!bh_name_valid(r->node_name)) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL,
			     "node name \"%.70s\" is not 1-64 of [a-z0-9.-], starting and ending "
			     "with a letter or digit",
			     r->node_name);
		return;
	}
	if (bh_pki_key_fingerprint(r->csr_pem, keyfp, &err)) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "CSR: %s", err.msg);
		return;
	}
	bh_token_secret_hash(tok.secret, hash);
	rc = ctl_store_begin(c->store, &err);
	if (rc == 0)
		rc = ctl_store_token_consume(c->store, tok.id, hash, time(NULL), &st, &err);
	if (rc == 0)
		rc = ctl_store_node_enroll(c->store, r->node_name, keyfp, st.labels, st.mode,
					   time(NULL), &err);
	if (rc == 0)
		rc = sign(c, r->csr_pem, BH_ROLE_AGENT, r->node_name, &cert, &err);
	if (rc == 0)
		rc = ctl_store_commit(c->store, &err);
	if (rc) {
		ctl_store_rollback(c->store);
		bh_log(LOG_NOTICE, "enrollment of %s refused: %s", r->node_name, err.msg);
		bh_rpc_reply(call, token_status(rc), NULL, "enrollment refused: %s", err.msg);
		free(cert);
		return;
	}
	bh_log(LOG_NOTICE, "node %s enrolled with token %s (key %.20s...)", r->node_name, tok.id,
	       keyfp);
	ctl_policy_node_enrolled(c, r->node_name);
	resp.cert_pem = cert;
	resp.ca_pem = c->ca_pem;
	resp.labels = st.labels;
	resp.mode = st.mode;
	resp.agent_port = (uint32_t)c->agent_port;
	bh_rpc_reply(call, ST(OK), &resp.base, NULL);
	free(cert);
}

static void h_renew(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__RenewRequest *r = (const void *)req;
	const struct bh_identity *peer = bh_rpc_call_peer(call);
	struct ctl *c = arg;
	Bulkhead__RenewResponse resp = BULKHEAD__RENEW_RESPONSE__INIT;
	struct bh_error err = {0};
	struct ctl_node node = {0};
	char keyfp[72], *cert = NULL;
	int rc;

	if (bh_pki_key_fingerprint(r->csr_pem, keyfp, &err)) {
		bh_rpc_reply(call, ST(INVALID_ARGUMENT), NULL, "CSR: %s", err.msg);
		return;
	}
	if (ctl_store_node_get(c->store, peer->name, &node) != 0) {
		bh_rpc_reply(call, ST(PERMISSION_DENIED), NULL, "node %s is not enrolled",
			     peer->name);
		return;
	}
	if (node.revoked) {
		bh_rpc_reply(call, ST(PERMISSION_DENIED), NULL, "node %s is revoked", peer->name);
		return;
	}
	/* the key is the node's identity: a renewal keeps it (a new key means a new enrollment) */
	if (strcmp(node.key_sha256, keyfp) != 0) {
		bh_rpc_reply(call, ST(PERMISSION_DENIED), NULL,
			     "the CSR's key is not node %s's enrolled key", peer->name);
		return;
	}
	rc = sign(c, r->csr_pem, BH_ROLE_AGENT, peer->name, &cert, &err);
	if (rc) {
		bh_rpc_reply(call, token_status(rc), NULL, "renewal refused: %s", err.msg);
		return;
	}
	bh_log(LOG_INFO, "node %s renewed its certificate", peer->name);
	resp.cert_pem = cert;
	resp.ca_pem = c->ca_pem;
	bh_rpc_reply(call, ST(OK), &resp.base, NULL);
	free(cert);
}

int ctl_enroll_register(struct ctl *c)
{
	return bh_rpc_server_register(c->rpc, &bulkhead__enrollment__descriptor, "GetCA",
				      BH_RPC_ROLES_NONE, h_get_ca, c) ||
	       bh_rpc_server_register(c->rpc, &bulkhead__enrollment__descriptor, "Enroll",
				      BH_RPC_ROLES_NONE, h_enroll, c) ||
	       bh_rpc_server_register(c->rpc, &bulkhead__agent__descriptor, "Renew",
				      BH_RPC_ROLES_AGENT, h_renew, c)
		       ? -EINVAL
		       : 0;
}
