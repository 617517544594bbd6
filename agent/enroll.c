// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bulkhead/log.h"
#include "bulkhead/pki.h"
#include "bulkhead/token.h"
#include "bulkhead/util.h"
#include "enroll.h"

static int read_file(const char *dir, const char *name, char **out, struct bh_error *err)
{
	char path[4096];
	size_t len;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	rc = bh_read_file(path, 1 << 20, out, &len);
	if (rc)
		return bh_error_set(err, rc, "reading %s: %s", path, bh_strerror(rc));
	return 0;
}

static int write_file(const char *dir, const char *name, const char *data, bool overwrite,
		      struct bh_error *err)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return bh_file_write_secret(path, data, strlen(data), overwrite, err);
}

/* Splits HOST[:PORT] (or [v6]:PORT) into host and port. */
static int split_hostport(const char *s, char *host, size_t hlen, int *port, int def)
{
	const char *colon;

	*port = def;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || (size_t)(end - s - 1) >= hlen)
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		colon = end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			colon = NULL; /* a bare IPv6 address */
		snprintf(host, hlen, "%.*s", colon ? (int)(colon - s) : (int)strlen(s), s);
	}
	if (colon) {
		uint64_t p;

		if (bh_parse_u64(colon + 1, 65535, &p) || p == 0)
			return -EINVAL;
		*port = (int)p;
	}
	return host[0] ? 0 : -EINVAL;
}

static void url_of(const char *host, int port, char *out, size_t len)
{
	snprintf(out, len, strchr(host, ':') ? "tls+tcp://[%s]:%d" : "tls+tcp://%s:%d", host, port);
}

/* Is the state already an enrollment of this name, key and CA? */
static bool enrolled(const char *dir, const char *name, const char *key, const char *ca_fp)
{
	char *cert = NULL, *ca = NULL, fp[72];
	struct bh_identity id;
	bool yes = false;

	if (read_file(dir, AGENT_CERT, &cert, NULL) || read_file(dir, AGENT_CA, &ca, NULL))
		goto out;
	yes = bh_pki_fingerprint(ca, fp, NULL) == 0 && strcmp(fp, ca_fp) == 0 &&
	      bh_pki_key_matches(key, cert) &&
	      bh_pki_verify(ca, cert, NULL, 0, &id, NULL) == 0 && id.role == BH_ROLE_AGENT &&
	      strcmp(id.name, name) == 0;
out:
	free(cert);
	free(ca);
	return yes;
}

int agent_enroll(const struct agent_enroll_opts *o, bool *already, struct bh_error *err)
{
	struct bh_token tok;
	struct bh_rpc_client *cl = NULL;
	struct bh_tls_opts tls = {0};
	struct bh_rpc_client_opts co = {.expect_controller = true, .connect_wait_ms = 5000};
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	Bulkhead__CaResponse *car = NULL;
	Bulkhead__EnrollRequest rq = BULKHEAD__ENROLL_REQUEST__INIT;
	Bulkhead__EnrollResponse *rs = NULL;
	struct bh_identity id;
	char host[256], url[300], fp[72], msg[512], conf[2048], *key = NULL, *csr = NULL;
	int port, rc, st;

	*already = false;
	if ((rc = bh_token_parse(o->token, &tok, err)))
		return rc;
	if (!bh_name_valid(o->name))
		return bh_error_set(err, -EINVAL,
				    "node name \"%s\": want 1-64 of [a-z0-9.-], starting and ending "
				    "with a letter or digit",
				    o->name);
	if (split_hostport(o->controller, host, sizeof(host), &port, AGENT_DEFAULT_ENROLL_PORT))
		return bh_error_set(err, -EINVAL, "controller \"%s\": want HOST[:PORT]",
				    o->controller);
	if (mkdir(o->state_dir, 0700) < 0 && errno != EEXIST)
		return bh_error_set(err, -errno, "creating %s: %s", o->state_dir, strerror(errno));
	chmod(o->state_dir, 0700);
	/* the key: made here, once, and never sent anywhere */
	if (read_file(o->state_dir, AGENT_KEY, &key, NULL)) {
		if ((rc = bh_pki_key_generate(&key, err)) ||
		    (rc = write_file(o->state_dir, AGENT_KEY, key, false, err)))
			goto out;
	}
	if (enrolled(o->state_dir, o->name, key, tok.ca_fingerprint)) {
		*already = true;
		rc = 0;
		goto out;
	}
	if ((rc = bh_tls_init(err)))
		goto out;
	/* 1. the CA, over TLS we cannot verify yet: it is checked against the token's pin */
	url_of(host, port, url, sizeof(url));
	tls.verify_peer = false;
	co.url = url;
	co.tls = &tls;
	co.expect_controller = false;
	if ((rc = bh_rpc_client_create(&cl, &co, err)))
		goto out;
	st = bh_rpc_call(cl, &bulkhead__enrollment__descriptor, "GetCA", &e.base,
			 (ProtobufCMessage **)&car, 10000, msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	cl = NULL;
	if (st != BULKHEAD__RPC_STATUS__RPC_OK) {
		rc = bh_error_set(err, -ECONNREFUSED, "fetching the controller's CA from %s: %s",
				  url, msg);
		goto out;
	}
	if (bh_pki_fingerprint(car->ca_pem, fp, err) || strcmp(fp, tok.ca_fingerprint) != 0) {
		rc = bh_error_set(err, -EACCES,
				  "the controller at %s presents CA %s, but the token pins %s: "
				  "refusing it (wrong controller, or someone in between)",
				  url, fp, tok.ca_fingerprint);
		goto out;
	}
	/* 2. enroll, over TLS verified against the pinned CA */
	if ((rc = bh_pki_csr_create(key, o->name, &csr, err)))
		goto out;
	tls.verify_peer = true;
	tls.ca_pem = car->ca_pem;
	tls.server_name = host;
	co.expect_controller = true;
	if ((rc = bh_rpc_client_create(&cl, &co, err)))
		goto out;
	rq.token = (char *)o->token;
	rq.node_name = (char *)o->name;
	rq.csr_pem = csr;
	st = bh_rpc_call(cl, &bulkhead__enrollment__descriptor, "Enroll", &rq.base,
			 (ProtobufCMessage **)&rs, 15000, msg, sizeof(msg));
	if (st != BULKHEAD__RPC_STATUS__RPC_OK) {
		rc = bh_error_set(err, st == BULKHEAD__RPC_STATUS__RPC_UNAVAILABLE ? -ECONNREFUSED
										  : -EACCES,
				  "%s", msg);
		goto out;
	}
	/* what came back must be ours: signed by the pinned CA, our key, our name */
	if ((rc = bh_pki_verify(car->ca_pem, rs->cert_pem, NULL, 0, &id, err)))
		goto out;
	if (!bh_pki_key_matches(key, rs->cert_pem) || id.role != BH_ROLE_AGENT ||
	    strcmp(id.name, o->name) != 0) {
		rc = bh_error_set(err, -EBADMSG, "the controller returned a certificate that is not "
						 "this node's");
		goto out;
	}
	/* an IPv6 host in brackets, so that "controller [fd00:b1::1]:7443" reads back */
	if (snprintf(conf, sizeof(conf),
		     "controller %s%s%s:%u\nenroll %s%s%s:%d\nname %s\nlabels %s\nmode %s\n",
		     strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
		     rs->agent_port, strchr(host, ':') ? "[" : "", host,
		     strchr(host, ':') ? "]" : "", port, o->name, rs->labels, rs->mode) >=
	    (int)sizeof(conf)) {
		rc = bh_error_set(err, -EMSGSIZE, "the node's labels are too long to store");
		goto out;
	}
	if ((rc = write_file(o->state_dir, AGENT_CA, car->ca_pem, true, err)) ||
	    (rc = write_file(o->state_dir, AGENT_CERT, rs->cert_pem, true, err)) ||
	    (rc = write_file(o->state_dir, AGENT_CONF, conf, true, err)))
		goto out;
	rc = 0;
out:
	bh_rpc_client_destroy(cl);
	if (car)
		protobuf_c_message_free_unpacked(&car->base, NULL);
	if (rs)
		protobuf_c_message_free_unpacked(&rs->base, NULL);
	free(key);
	free(csr);
	return rc;
}

/* Reads "key value" from agent.conf. */
static int conf_get(const char *dir, const char *key, char *out, size_t len)
{
	char *text = NULL, *line, *save = NULL;
	int rc = -ENOENT;

	if (read_file(dir, AGENT_CONF, &text, NULL))
		return -ENOENT;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t kl = strlen(key);

		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			snprintf(out, len, "%s", line + kl + 1);
			rc = 0;
			break;
		}
	}
	free(text);
	return rc;
}

int agent_client(const char *dir, struct bh_rpc_client **out, struct bh_error *err)
{
	struct bh_tls_opts tls = {.verify_peer = true};
	struct bh_rpc_client_opts co = {.tls = &tls, .expect_controller = true};
	char addr[300], host[256], url[300], *key = NULL, *cert = NULL, *ca = NULL;
	int port, rc;

	if (conf_get(dir, "controller", addr, sizeof(addr)) ||
	    split_hostport(addr, host, sizeof(host), &port, 7443))
		return bh_error_set(err, -ENOENT, "%s/%s: no controller address: enroll first", dir,
				    AGENT_CONF);
	if ((rc = read_file(dir, AGENT_KEY, &key, err)) ||
	    (rc = read_file(dir, AGENT_CERT, &cert, err)) ||
	    (rc = read_file(dir, AGENT_CA, &ca, err)) || (rc = bh_tls_init(err)))
		goto out;
	url_of(host, port, url, sizeof(url));
	tls.ca_pem = ca;
	tls.cert_pem = cert;
	tls.key_pem = key;
	tls.server_name = host;
	co.url = url;
	rc = bh_rpc_client_create(out, &co, err);
out:
	free(key);
	free(cert);
	free(ca);
	return rc;
}

bool agent_renew_due(const char *dir)
{
	struct bh_identity id;
	char *cert = NULL;
	bool due = true;

	if (read_file(dir, AGENT_CERT, &cert, NULL) == 0 && bh_pki_identity(cert, &id, NULL) == 0)
		due = time(NULL) >= id.not_before + (id.not_after - id.not_before) * 2 / 3;
	free(cert);
	return due;
}

int agent_renew(const char *dir, struct bh_rpc_client *c, struct bh_error *err)
{
	Bulkhead__RenewRequest rq = BULKHEAD__RENEW_REQUEST__INIT;
	Bulkhead__RenewResponse *rs = NULL;
	struct bh_rpc_client *own = NULL;
	struct bh_identity id, now_id;
	char name[80], msg[512], *key = NULL, *csr = NULL, *ca = NULL, *cert = NULL;
	int rc, st;

	if (conf_get(dir, "name", name, sizeof(name)))
		return bh_error_set(err, -ENOENT, "%s/%s: not enrolled", dir, AGENT_CONF);
	if ((rc = read_file(dir, AGENT_KEY, &key, err)) || (rc = read_file(dir, AGENT_CA, &ca, err)) ||
	    (rc = read_file(dir, AGENT_CERT, &cert, err)) ||
	    (rc = bh_pki_identity(cert, &now_id, err)) ||
	    (rc = bh_pki_csr_create(key, name, &csr, err)))
		goto out;
	if (!c) {
		if ((rc = agent_client(dir, &own, err)))
			goto out;
		c = own;
	}
	rq.csr_pem = csr;
	st = bh_rpc_call(c, &bulkhead__agent__descriptor, "Renew", &rq.base,
			 (ProtobufCMessage **)&rs, 15000, msg, sizeof(msg));
	if (st != BULKHEAD__RPC_STATUS__RPC_OK) {
		rc = bh_error_set(err, st == BULKHEAD__RPC_STATUS__RPC_UNAVAILABLE ? -ECONNREFUSED
										  : -EACCES,
				  "renewal: %s", msg);
		goto out;
	}
	if ((rc = bh_pki_verify(ca, rs->cert_pem, NULL, 0, &id, err)))
		goto out;
	if (!bh_pki_key_matches(key, rs->cert_pem) || id.role != BH_ROLE_AGENT ||
	    strcmp(id.name, name) != 0 || id.not_after < now_id.not_after) {
		rc = bh_error_set(err, -EBADMSG, "the renewed certificate is not this node's, or "
						 "expires before the current one");
		goto out;
	}
	rc = write_file(dir, AGENT_CERT, rs->cert_pem, true, err);
	if (rc == 0)
		bh_log(LOG_NOTICE, "certificate renewed: valid until %ld (serial %s)",
		       (long)id.not_after, id.serial);
out:
	bh_rpc_client_destroy(own);
	if (rs)
		protobuf_c_message_free_unpacked(&rs->base, NULL);
	free(key);
	free(csr);
	free(ca);
	free(cert);
	return rc;
}
