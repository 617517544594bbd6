// SPDX-License-Identifier: Apache-2.0
/*
 * The RPC layer over real TLS handshakes on loopback (and a real ipc:// socket): identities from
 * verified certificates, the handshake matrix, bad bytes on the wire, limits, deadlines,
 * concurrent calls on one connection. Runs under ASan/LSan in tests/run.sh.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <zlib.h>

#include "bulkhead/log.h"
#include "bulkhead/pki.h"
#include "bulkhead/rpc.h"
#include "bulkhead/tls.h"
#include "bulkhead/util.h"
#include "tap.h"

/* ---- fixture: a CA, certificates, a server on its own loop thread ------------------------- */

struct cred {
	char *key, *cert;
};

static struct {
	char *ca_key, *ca;
	char *other_ca_key, *other_ca;
	struct cred server, agent_a, agent_b, operator_, foreign, expired, future, revoked,
		agent_as_server, server_wrong_name;
	char revoked_serial[41];
	char dir[64];
	char ipc_url[128];
	char mtls_url[64], enroll_url[64], small_url[64];
	uv_loop_t loop;
	uv_async_t stop;
	uv_timer_t slow_timer;
	pthread_t thread;
	struct bh_rpc_server *srv, *small;
	struct bh_rpc_call *slow_call;
	atomic_int slow_pending;
} F;

static int issue(const char *ca, const char *ca_key, enum bh_role role, const char *name,
		 bool server, time_t nb, time_t na, struct cred *out, char *serial)
{
	static const char *const dns[] = {"localhost", NULL};
	static const char *const ips[] = {"127.0.0.1", NULL};
	struct bh_issue w = {.role = role, .name = name, .lifetime_s = 3600, .server = server,
			     .dns = server ? dns : NULL, .ips = server ? ips : NULL,
			     .not_before_override = nb, .not_after_override = na};
	struct bh_error err = {0};
	char s[41];

	if (bh_pki_key_generate(&out->key, &err) ||
	    bh_pki_issue_for_key(ca, ca_key, out->key, &w, &out->cert, serial ? serial : s, &err)) {
		fprintf(stderr, "issue %s: %s\n", name, err.msg);
		return -1;
	}
	return 0;
}

static struct bh_tls_opts client_tls(const struct cred *c)
{
	return (struct bh_tls_opts){.ca_pem = F.ca, .cert_pem = c ? c->cert : NULL,
				    .key_pem = c ? c->key : NULL, .server_name = "127.0.0.1",
				    .verify_peer = true};
}

/* handlers */

static void h_get_node(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	const Bulkhead__NodeRef *r = (const void *)req;
	const struct bh_identity *peer = bh_rpc_call_peer(call);
	Bulkhead__Node n = BULKHEAD__NODE__INIT;

	(void)arg;
	if (peer->role == BH_ROLE_AGENT && strcmp(r->name, peer->name) != 0) {
		bh_rpc_reply(call, BULKHEAD__RPC_STATUS__RPC_PERMISSION_DENIED, NULL,
			     "agent %s may not read node %s", peer->name, r->name);
		return;
	}
	n.name = (char *)r->name;
	/* a big field, to exercise compression: labels of 64 KiB when asked for "big" */
	if (strcmp(r->name, "big") == 0 || strcmp(peer->name, "big") == 0) {
		static char big[65536 + 1];

		memset(big, 'x', sizeof(big) - 1);
		n.labels = big;
	}
	bh_rpc_reply(call, BULKHEAD__RPC_STATUS__RPC_OK, &n.base, NULL);
}

static void h_list_tokens(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	Bulkhead__TokenList l = BULKHEAD__TOKEN_LIST__INIT;

	(void)req, (void)arg;
	bh_rpc_reply(call, BULKHEAD__RPC_STATUS__RPC_OK, &l.base, NULL);
}

static void slow_done(uv_timer_t *t)
{
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;

	(void)t;
	if (F.slow_call)
		bh_rpc_reply(F.slow_call, BULKHEAD__RPC_STATUS__RPC_OK, &e.base, NULL);
	F.slow_call = NULL;
	atomic_store(&F.slow_pending, 0);
}

/* RevokeToken stands in for a slow method: it answers after 700 ms (a long-poll in miniature). */
static void h_slow(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	(void)req, (void)arg;
	F.slow_call = call;
	atomic_store(&F.slow_pending, 1);
	uv_timer_start(&F.slow_timer, slow_done, 700, 0);
}

static void h_get_ca(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg)
{
	Bulkhead__CaResponse r = BULKHEAD__CA_RESPONSE__INIT;

	(void)req, (void)arg;
	r.ca_pem = F.ca;
	bh_rpc_reply(call, BULKHEAD__RPC_STATUS__RPC_OK, &r.base, NULL);
}

static void stop_cb(uv_async_t *a)
{
	(void)a;
	bh_rpc_server_destroy(F.srv);
	bh_rpc_server_destroy(F.small);
	uv_close((uv_handle_t *)&F.stop, NULL);
	uv_close((uv_handle_t *)&F.slow_timer, NULL);
}

static void *loop_main(void *arg)
{
	(void)arg;
	uv_run(&F.loop, UV_RUN_DEFAULT);
	return NULL;
}

static int register_all(struct bh_rpc_server *s)
{
	return bh_rpc_server_register(s, &bulkhead__agent__descriptor, "GetNode",
				      BH_RPC_ROLES_AGENT | BH_RPC_ROLES_OPERATOR, h_get_node, NULL) ||
	       bh_rpc_server_register(s, &bulkhead__operator__descriptor, "ListTokens",
				      BH_RPC_ROLES_OPERATOR, h_list_tokens, NULL) ||
	       bh_rpc_server_register(s, &bulkhead__operator__descriptor, "RevokeToken",
				      BH_RPC_ROLES_OPERATOR | BH_RPC_ROLES_AGENT, h_slow, NULL) ||
	       bh_rpc_server_register(s, &bulkhead__enrollment__descriptor, "GetCA",
				      BH_RPC_ROLES_NONE, h_get_ca, NULL);
}

static int fixture_up(void)
{
	struct bh_error err = {0};
	struct bh_tls_opts stls;
	struct bh_rpc_server_opts so = {.loop = &F.loop, .receivers = 4};
	struct bh_rpc_server_opts small = {.loop = &F.loop, .receivers = 2, .max_msg = 64 * 1024};
	time_t now = time(NULL);

	if (bh_pki_key_generate(&F.ca_key, &err) ||
	    bh_pki_ca_create(F.ca_key, "test CA", 1, &F.ca, &err) ||
	    bh_pki_key_generate(&F.other_ca_key, &err) ||
	    bh_pki_ca_create(F.other_ca_key, "other CA", 1, &F.other_ca, &err)) {
		fprintf(stderr, "CA: %s\n", err.msg);
		return -1;
	}
	if (issue(F.ca, F.ca_key, BH_ROLE_CONTROLLER, "controller", true, 0, 0, &F.server, NULL) ||
	    issue(F.ca, F.ca_key, BH_ROLE_AGENT, "node-a", false, 0, 0, &F.agent_a, NULL) ||
	    issue(F.ca, F.ca_key, BH_ROLE_AGENT, "node-b", false, 0, 0, &F.agent_b, NULL) ||
	    issue(F.ca, F.ca_key, BH_ROLE_OPERATOR, "alice", false, 0, 0, &F.operator_, NULL) ||
	    issue(F.other_ca, F.other_ca_key, BH_ROLE_AGENT, "node-a", false, 0, 0, &F.foreign,
		  NULL) ||
	    issue(F.ca, F.ca_key, BH_ROLE_AGENT, "node-a", false, now - 7200, now - 3600,
		  &F.expired, NULL) ||
	    issue(F.ca, F.ca_key, BH_ROLE_AGENT, "node-a", false, now + 3600, now + 7200,
		  &F.future, NULL) ||
	    issue(F.ca, F.ca_key, BH_ROLE_AGENT, "node-r", false, 0, 0, &F.revoked,
		  F.revoked_serial) ||
	    issue(F.ca, F.ca_key, BH_ROLE_AGENT, "node-x", true, 0, 0, &F.agent_as_server, NULL))
		return -1;
	{
		/* a controller certificate for another name only */
		static const char *const dns[] = {"elsewhere.invalid", NULL};
		struct bh_issue w = {.role = BH_ROLE_CONTROLLER, .name = "controller",
				     .lifetime_s = 3600, .server = true, .dns = dns};
		char s[41];

		if (bh_pki_key_generate(&F.server_wrong_name.key, &err) ||
		    bh_pki_issue_for_key(F.ca, F.ca_key, F.server_wrong_name.key, &w,
					 &F.server_wrong_name.cert, s, &err))
			return -1;
	}
	snprintf(F.dir, sizeof(F.dir), "/tmp/bh-test-rpc-XXXXXX");
	if (!mkdtemp(F.dir))
		return -1;
	snprintf(F.ipc_url, sizeof(F.ipc_url), "ipc://%s/admin.sock", F.dir);
	uv_loop_init(&F.loop);
	uv_async_init(&F.loop, &F.stop, stop_cb);
	uv_timer_init(&F.loop, &F.slow_timer);
	stls = (struct bh_tls_opts){.ca_pem = F.ca, .cert_pem = F.server.cert,
				    .key_pem = F.server.key};
	if (bh_rpc_server_create(&F.srv, &so, &err) || register_all(F.srv) ||
	    bh_rpc_server_listen(F.srv, "tls+tcp://127.0.0.1:0", BH_RPC_LISTEN_MTLS, &stls, &err) ||
	    bh_rpc_server_listen(F.srv, "tls+tcp://127.0.0.1:0", BH_RPC_LISTEN_ENROLL, &stls,
				 &err) ||
	    bh_rpc_server_listen(F.srv, F.ipc_url, BH_RPC_LISTEN_IPC, NULL, &err)) {
		fprintf(stderr, "server: %s\n", err.msg);
		return -1;
	}
	if (bh_rpc_server_create(&F.small, &small, &err) || register_all(F.small) ||
	    bh_rpc_server_listen(F.small, "tls+tcp://127.0.0.1:0", BH_RPC_LISTEN_MTLS, &stls,
				 &err)) {
		fprintf(stderr, "small server: %s\n", err.msg);
		return -1;
	}
	snprintf(F.mtls_url, sizeof(F.mtls_url), "tls+tcp://127.0.0.1:%d",
		 bh_rpc_server_port(F.srv, 0));
	snprintf(F.enroll_url, sizeof(F.enroll_url), "tls+tcp://127.0.0.1:%d",
		 bh_rpc_server_port(F.srv, 1));
	snprintf(F.small_url, sizeof(F.small_url), "tls+tcp://127.0.0.1:%d",
		 bh_rpc_server_port(F.small, 0));
	{
		const char *rev[] = {F.revoked_serial};

		bh_tls_set_revoked(rev, 1);
	}
	pthread_create(&F.thread, NULL, loop_main, NULL);
	return 0;
}

static void cred_free(struct cred *c)
{
	free(c->key);
	free(c->cert);
}

static void fixture_down(void)
{
	char path[160];

	uv_async_send(&F.stop);
	pthread_join(F.thread, NULL);
	uv_loop_close(&F.loop);
	bh_tls_set_revoked(NULL, 0);
	snprintf(path, sizeof(path), "%s/admin.sock", F.dir);
	unlink(path);
	rmdir(F.dir);
	free(F.ca_key), free(F.ca), free(F.other_ca_key), free(F.other_ca);
	struct cred *all[] = {&F.server, &F.agent_a, &F.agent_b, &F.operator_, &F.foreign,
			      &F.expired, &F.future, &F.revoked, &F.agent_as_server,
			      &F.server_wrong_name};
	for (size_t i = 0; i < BH_ARRAY_SIZE(all); i++)
		cred_free(all[i]);
}

/* ---- helpers ------------------------------------------------------------------------------- */

static struct bh_rpc_client *client(const char *url, const struct cred *c, uint32_t wait_ms)
{
	struct bh_tls_opts t = client_tls(c);
	struct bh_rpc_client_opts o = {.url = url, .tls = &t, .expect_controller = true,
				       .connect_wait_ms = wait_ms, .reconnect_min_ms = 50};
	struct bh_rpc_client *cl = NULL;
	struct bh_error err = {0};

	if (bh_rpc_client_create(&cl, &o, &err))
		fprintf(stderr, "    client: %s\n", err.msg);
	return cl;
}

static int get_node(struct bh_rpc_client *c, const char *name, char *msg, size_t len)
{
	Bulkhead__NodeRef r = BULKHEAD__NODE_REF__INIT;
	ProtobufCMessage *resp = NULL;
	int st;

	r.name = (char *)name;
	st = bh_rpc_call(c, &bulkhead__agent__descriptor, "GetNode", &r.base, &resp, 5000, msg,
			 len);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return st;
}

#define S_OK	      BULKHEAD__RPC_STATUS__RPC_OK
#define S_DENIED      BULKHEAD__RPC_STATUS__RPC_PERMISSION_DENIED
#define S_UNAVAILABLE BULKHEAD__RPC_STATUS__RPC_UNAVAILABLE

/* A credential that must not get through the handshake. */
static int refused(const struct cred *c, const char *what)
{
	struct bh_rpc_client *cl = client(F.mtls_url, c, 1500);
	char msg[256] = "";
	int st;

	T_ASSERT(cl, "client");
	st = get_node(cl, "node-a", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_UNAVAILABLE, "%s: status %s (%s), want UNAVAILABLE", what,
		 bh_rpc_status_name(st), msg);
	/* and the server still serves everyone else */
	cl = client(F.mtls_url, &F.agent_a, 3000);
	st = get_node(cl, "node-a", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_OK, "after %s the server answers %s (%s)", what, bh_rpc_status_name(st),
		 msg);
	return 0;
}

/* A raw TCP connection to the mTLS port that sends bytes and closes. */
static int raw_tcp(const void *bytes, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = bh_rpc_server_port(F.srv, 0);
	char buf[256];

	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	if (len)
		(void)!write(fd, bytes, len);
	shutdown(fd, SHUT_WR);
	/* the server answers with an alert or just closes; either way it closes */
	{
		struct timeval tv = {.tv_sec = 5};

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	}
	close(fd);
	return 0;
}

/* ---- cases --------------------------------------------------------------------------------- */

static int t_agent_reads_own_node(void)
{
	struct bh_rpc_client *cl = client(F.mtls_url, &F.agent_a, 3000);
	char msg[256];
	int st;

	T_ASSERT(cl, "client");
	st = get_node(cl, "node-a", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_OK, "status %s: %s", bh_rpc_status_name(st), msg);
	return 0;
}

static int t_agent_other_node_denied(void)
{
	struct bh_rpc_client *cl = client(F.mtls_url, &F.agent_a, 3000);
	char msg[256];
	int st = get_node(cl, "node-b", msg, sizeof(msg));

	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_DENIED && strstr(msg, "node-a may not read node node-b"), "%s: %s",
		 bh_rpc_status_name(st), msg);
	return 0;
}

static int t_wrong_role(void)
{
	struct bh_rpc_client *cl = client(F.mtls_url, &F.agent_a, 3000);
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	ProtobufCMessage *resp = NULL;
	char msg[256];
	int st = bh_rpc_call(cl, &bulkhead__operator__descriptor, "ListTokens", &e.base, &resp,
			     5000, msg, sizeof(msg));

	bh_rpc_client_destroy(cl);
	T_ASSERT(!resp, "no response body on denial");
	T_ASSERT(st == S_DENIED && strstr(msg, "not authorised") && strstr(msg, "agent"),
		 "%s: %s", bh_rpc_status_name(st), msg);
	cl = client(F.mtls_url, &F.operator_, 3000);
	st = bh_rpc_call(cl, &bulkhead__operator__descriptor, "ListTokens", &e.base, &resp, 5000,
			 msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	T_ASSERT(st == S_OK, "operator: %s: %s", bh_rpc_status_name(st), msg);
	return 0;
}

static int t_no_client_cert(void)
{
	return refused(NULL, "no client certificate");
}

static int t_other_ca(void)
{
	return refused(&F.foreign, "certificate from another CA");
}

static int t_expired(void)
{
	return refused(&F.expired, "expired certificate");
}

static int t_not_yet_valid(void)
{
	return refused(&F.future, "not-yet-valid certificate");
}

static int t_revoked(void)
{
	return refused(&F.revoked, "revoked certificate");
}

static bool match_name(const struct bh_identity *id, void *arg)
{
	return strcmp(id->name, arg) == 0;
}

static int t_revocation_cuts_live_connection(void)
{
	struct bh_rpc_client *cl = client(F.mtls_url, &F.agent_b, 3000);
	char msg[256];
	int st, dropped;

	st = get_node(cl, "node-b", msg, sizeof(msg));
	T_ASSERT(st == S_OK, "before: %s", msg);
	dropped = bh_rpc_server_drop(F.srv, match_name, "node-b");
	T_ASSERT(dropped == 1, "dropped %d connections of node-b, want 1", dropped);
	/* the client sees the connection go; it reconnects (the certificate is still valid: the
	 * server only dropped it), so the drop itself is what we check, then the reconnect */
	for (int i = 0; i < 100 && bh_rpc_client_connected(cl); i++)
		usleep(10000);
	st = get_node(cl, "node-b", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_OK, "reconnect after drop: %s", msg);
	return 0;
}

static int t_plaintext_client(void)
{
	nng_socket s;
	nng_msg *m;
	char url[64];
	int rv;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", bh_rpc_server_port(F.srv, 0));
	T_ASSERT(nng_req0_open(&s) == 0, "socket");
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1500);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1500);
	nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	nng_msg_alloc(&m, 0);
	nng_msg_append(m, "hello", 5);
	rv = nng_sendmsg(s, m, 0);
	if (rv)
		nng_msg_free(m);
	else
		rv = nng_recvmsg(s, &m, 0);
	nng_close(s);
	T_ASSERT(rv == NNG_ETIMEDOUT, "plaintext client got %s, want no answer", nng_strerror(rv));
	return refused(&F.expired, "(server health after plaintext)") ;
}

static int t_garbage_and_truncated_handshake(void)
{
	uint8_t junk[4096];
	/* the start of a TLS ClientHello record, cut short */
	static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03,
					0x03, 0xde, 0xad, 0xbe, 0xef};

	srandom(3);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)random();
	T_ASSERT(raw_tcp(junk, sizeof(junk)) == 0, "garbage connection");
	T_ASSERT(raw_tcp(hello, sizeof(hello)) == 0, "truncated handshake connection");
	T_ASSERT(raw_tcp(NULL, 0) == 0, "empty connection");
	return refused(&F.expired, "(server health after garbage)");
}

static int t_bad_envelope_and_unknown_method(void)
{
	struct bh_tls_opts t = client_tls(&F.agent_a);
	nng_tls_config *cfg;
	struct bh_error err = {0};
	nng_socket s;
	nng_dialer d;
	nng_msg *m;
	Bulkhead__RpcReply *rep;
	Bulkhead__RpcRequest rq = BULKHEAD__RPC_REQUEST__INIT;
	int rv;

	T_ASSERT(bh_tls_config_create(&cfg, NNG_TLS_MODE_CLIENT, &t, &err) == 0, "%s", err.msg);
	nng_req0_open(&s);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	nng_dialer_create(&d, s, F.mtls_url);
	nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg);
	rv = nng_dialer_start(d, 0);
	T_ASSERT(rv == 0, "dial: %s", nng_strerror(rv));
	/* not an envelope at all */
	nng_msg_alloc(&m, 0);
	nng_msg_append(m, "\xff\xff\xff\xff garbage", 13);
	nng_sendmsg(s, m, 0);
	rv = nng_recvmsg(s, &m, 0);
	T_ASSERT(rv == 0, "no answer to garbage: %s", nng_strerror(rv));
	rep = bulkhead__rpc_reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	T_ASSERT(rep && rep->status == BULKHEAD__RPC_STATUS__RPC_INVALID_ARGUMENT &&
			 strstr(rep->message, "bad envelope"),
		 "garbage: %s", rep ? rep->message : "undecodable");
	bulkhead__rpc_reply__free_unpacked(rep, NULL);
	/* a valid envelope followed by an unknown field (field 99, varint) */
	rq.method = "/bulkhead.Agent/GetNode";
	rq.id = 6;
	nng_msg_alloc(&m, bulkhead__rpc_request__get_packed_size(&rq));
	bulkhead__rpc_request__pack(&rq, nng_msg_body(m));
	nng_msg_append(m, "\x98\x06\x01", 3);
	nng_sendmsg(s, m, 0);
	rv = nng_recvmsg(s, &m, 0);
	T_ASSERT(rv == 0, "no answer to unknown field");
	rep = bulkhead__rpc_reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	T_ASSERT(rep && rep->status == BULKHEAD__RPC_STATUS__RPC_INVALID_ARGUMENT,
		 "unknown field accepted: %s", rep ? rep->message : "undecodable");
	bulkhead__rpc_reply__free_unpacked(rep, NULL);
	/* an unknown method */
	rq.method = "/bulkhead.Agent/SelfDestruct";
	rq.id = 7;
	nng_msg_alloc(&m, bulkhead__rpc_request__get_packed_size(&rq));
	bulkhead__rpc_request__pack(&rq, nng_msg_body(m));
	nng_sendmsg(s, m, 0);
	rv = nng_recvmsg(s, &m, 0);
	T_ASSERT(rv == 0, "no answer to unknown method");
	rep = bulkhead__rpc_reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	T_ASSERT(rep && rep->id == 7 && rep->status == BULKHEAD__RPC_STATUS__RPC_UNIMPLEMENTED &&
			 strstr(rep->message, "unknown method"),
		 "unknown method: %s", rep ? rep->message : "undecodable");
	bulkhead__rpc_reply__free_unpacked(rep, NULL);
	/* a known method whose body is garbage */
	rq.method = "/bulkhead.Agent/GetNode";
	rq.body.data = (uint8_t *)"\x0a\xff\xff\xff\xff\x0f";
	rq.body.len = 6;
	nng_msg_alloc(&m, bulkhead__rpc_request__get_packed_size(&rq));
	bulkhead__rpc_request__pack(&rq, nng_msg_body(m));
	nng_sendmsg(s, m, 0);
	rv = nng_recvmsg(s, &m, 0);
	T_ASSERT(rv == 0, "no answer to bad body");
	rep = bulkhead__rpc_reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	T_ASSERT(rep && rep->status == BULKHEAD__RPC_STATUS__RPC_INVALID_ARGUMENT, "bad body: %s",
		 rep ? rep->message : "undecodable");
	bulkhead__rpc_reply__free_unpacked(rep, NULL);
	/* a zlib bomb: flags say compressed, the stream inflates past the 16 MiB limit */
	{
		size_t big = 20u << 20;
		uint8_t *zeros = calloc(1, big), *z;
		uLongf zl = compressBound(big);

		z = malloc(zl);
		compress2(z, &zl, zeros, big, 9);
		rq.flags = BULKHEAD__RPC_FLAG__RPC_FLAG_ZLIB;
		rq.body.data = z;
		rq.body.len = zl;
		nng_msg_alloc(&m, bulkhead__rpc_request__get_packed_size(&rq));
		bulkhead__rpc_request__pack(&rq, nng_msg_body(m));
		free(zeros);
		free(z);
	}
	nng_sendmsg(s, m, 0);
	rv = nng_recvmsg(s, &m, 0);
	nng_close(s);
	T_ASSERT(rv == 0, "no answer to a zlib bomb");
	rep = bulkhead__rpc_reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	T_ASSERT(rep && rep->status == BULKHEAD__RPC_STATUS__RPC_RESOURCE_EXHAUSTED &&
			 strstr(rep->message, "inflates past"),
		 "zlib bomb: %s", rep ? rep->message : "undecodable");
	bulkhead__rpc_reply__free_unpacked(rep, NULL);
	return 0;
}

static int t_oversized_message(void)
{
	struct bh_rpc_client *cl;
	Bulkhead__NodeRef r = BULKHEAD__NODE_REF__INIT;
	ProtobufCMessage *resp = NULL;
	char msg[256], *name = malloc(200 * 1024);
	int st;

	/* the small server takes 64 KiB; this request is 200 KiB of incompressible name */
	srandom(5);
	for (size_t i = 0; i < 200 * 1024 - 1; i++)
		name[i] = (char)('a' + random() % 26);
	name[200 * 1024 - 1] = '\0';
	r.name = name;
	cl = client(F.small_url, &F.agent_a, 3000);
	st = bh_rpc_call(cl, &bulkhead__agent__descriptor, "GetNode", &r.base, &resp, 2000, msg,
			 sizeof(msg));
	T_ASSERT(st == BULKHEAD__RPC_STATUS__RPC_RESOURCE_EXHAUSTED &&
			 strstr(msg, "exceeds the 65536-byte limit"),
		 "oversized request: %s (%s)", bh_rpc_status_name(st), msg);
	/* answered, not dropped: the same connection serves the next call */
	st = get_node(cl, "node-a", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_OK, "after oversized: %s", msg);
	/* a client refuses to send past its own limit, at once */
	{
		struct bh_tls_opts t = client_tls(&F.agent_a);
		struct bh_rpc_client_opts o = {.url = F.mtls_url, .tls = &t, .max_msg = 1024};
		struct bh_error err = {0};

		T_ASSERT(bh_rpc_client_create(&cl, &o, &err) == 0, "%s", err.msg);
		st = bh_rpc_call(cl, &bulkhead__agent__descriptor, "GetNode", &r.base, &resp, 2000,
				 msg, sizeof(msg));
		bh_rpc_client_destroy(cl);
		T_ASSERT(st == BULKHEAD__RPC_STATUS__RPC_RESOURCE_EXHAUSTED && strstr(msg, "limit"),
			 "local limit: %s (%s)", bh_rpc_status_name(st), msg);
	}
	free(name);
	return 0;
}

static int t_compressed_reply(void)
{
	struct bh_rpc_client *cl = client(F.mtls_url, &F.operator_, 3000);
	Bulkhead__NodeRef r = BULKHEAD__NODE_REF__INIT;
	Bulkhead__Node *n = NULL;
	char msg[256];
	int st;

	r.name = "big";
	st = bh_rpc_call(cl, &bulkhead__agent__descriptor, "GetNode", &r.base,
			 (ProtobufCMessage **)&n, 5000, msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_OK && n && strlen(n->labels) == 65536, "big reply: %s", msg);
	protobuf_c_message_free_unpacked(&n->base, NULL);
	return 0;
}

struct slow_arg {
	struct bh_rpc_client *cl;
	int status;
	uint64_t done_ns;
};

static void *slow_thread(void *arg)
{
	struct slow_arg *a = arg;
	Bulkhead__TokenRef r = BULKHEAD__TOKEN_REF__INIT;
	ProtobufCMessage *resp = NULL;
	char msg[128];

	r.id = "x";
	a->status = bh_rpc_call(a->cl, &bulkhead__operator__descriptor, "RevokeToken", &r.base,
				&resp, 10000, msg, sizeof(msg));
	a->done_ns = bh_now_mono_ns();
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return NULL;
}

static int t_concurrent_calls_one_connection(void)
{
	struct slow_arg a = {.cl = client(F.mtls_url, &F.operator_, 3000)};
	pthread_t th;
	char msg[256];
	uint64_t quick_done = 0;
	int st = S_OK;

	T_ASSERT(a.cl && get_node(a.cl, "x", msg, sizeof(msg)) == S_OK, "warm up: %s", msg);
	pthread_create(&th, NULL, slow_thread, &a);
	for (int i = 0; i < 10000 && !atomic_load(&F.slow_pending); i++)
		usleep(1000);
	/* the slow call is held by the server: 20 quick calls pass it on the same connection */
	for (int i = 0; i < 20 && st == S_OK; i++)
		st = get_node(a.cl, "x", msg, sizeof(msg));
	quick_done = bh_now_mono_ns();
	pthread_join(th, NULL);
	bh_rpc_client_destroy(a.cl);
	T_ASSERT(st == S_OK, "quick calls: %s", msg);
	T_ASSERT(a.status == S_OK, "slow call: %s", bh_rpc_status_name(a.status));
	T_ASSERT(quick_done < a.done_ns, "the quick calls waited for the slow one");
	return 0;
}

static int t_deadline(void)
{
	struct bh_rpc_client *cl = client(F.mtls_url, &F.operator_, 3000);
	Bulkhead__TokenRef r = BULKHEAD__TOKEN_REF__INIT;
	ProtobufCMessage *resp = NULL;
	char msg[256];
	int st;

	r.id = "x";
	st = bh_rpc_call(cl, &bulkhead__operator__descriptor, "RevokeToken", &r.base, &resp, 200,
			 msg, sizeof(msg));
	T_ASSERT(st == BULKHEAD__RPC_STATUS__RPC_DEADLINE_EXCEEDED, "%s: %s",
		 bh_rpc_status_name(st), msg);
	/* let the late reply happen: it goes nowhere, harmlessly */
	for (int i = 0; i < 1000 && atomic_load(&F.slow_pending); i++)
		usleep(10000);
	st = get_node(cl, "x", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_OK, "after a deadline: %s", msg);
	return 0;
}

static int t_ipc_root_is_operator(void)
{
	struct bh_rpc_client_opts o = {.url = F.ipc_url};
	struct bh_rpc_client *cl = NULL;
	struct bh_error err = {0};
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	ProtobufCMessage *resp = NULL;
	char msg[256];
	int st;

	T_ASSERT(bh_rpc_client_create(&cl, &o, &err) == 0, "%s", err.msg);
	st = bh_rpc_call(cl, &bulkhead__operator__descriptor, "ListTokens", &e.base, &resp, 5000,
			 msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	T_ASSERT(st == S_OK, "ipc: %s: %s", bh_rpc_status_name(st), msg);
	return 0;
}

static int t_enrollment_listener(void)
{
	struct bh_tls_opts t = client_tls(NULL);
	struct bh_rpc_client_opts o = {.url = F.enroll_url, .tls = &t, .expect_controller = true};
	struct bh_rpc_client *cl = NULL;
	struct bh_error err = {0};
	Bulkhead__Empty e = BULKHEAD__EMPTY__INIT;
	Bulkhead__CaResponse *ca = NULL;
	char msg[256];
	int st;

	T_ASSERT(bh_rpc_client_create(&cl, &o, &err) == 0, "%s", err.msg);
	st = bh_rpc_call(cl, &bulkhead__enrollment__descriptor, "GetCA", &e.base,
			 (ProtobufCMessage **)&ca, 5000, msg, sizeof(msg));
	T_ASSERT(st == S_OK && ca && strcmp(ca->ca_pem, F.ca) == 0, "GetCA: %s", msg);
	protobuf_c_message_free_unpacked(&ca->base, NULL);
	/* nothing else is served there */
	st = get_node(cl, "node-a", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_DENIED && strstr(msg, "unauthenticated"), "GetNode on enroll: %s: %s",
		 bh_rpc_status_name(st), msg);
	return 0;
}

static int t_client_checks_server(void)
{
	struct bh_tls_opts t = client_tls(&F.agent_a);
	struct bh_rpc_client_opts o = {.url = F.mtls_url, .tls = &t, .connect_wait_ms = 1500};
	struct bh_rpc_client *cl = NULL;
	struct bh_error err = {0};
	char msg[256];
	int st;

	/* the server's certificate does not carry the name dialled */
	t.server_name = "other.invalid";
	T_ASSERT(bh_rpc_client_create(&cl, &o, &err) == 0, "%s", err.msg);
	st = get_node(cl, "node-a", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_UNAVAILABLE, "wrong server name: %s", bh_rpc_status_name(st));
	/* a server whose CA we do not trust */
	t = client_tls(&F.agent_a);
	t.ca_pem = F.other_ca;
	T_ASSERT(bh_rpc_client_create(&cl, &o, &err) == 0, "%s", err.msg);
	st = get_node(cl, "node-a", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_UNAVAILABLE, "untrusted CA: %s", bh_rpc_status_name(st));
	return 0;
}

static int t_no_server_fails_fast(void)
{
	struct bh_tls_opts t = client_tls(&F.agent_a);
	struct bh_rpc_client_opts o = {.url = "tls+tcp://127.0.0.1:1", .tls = &t,
				       .connect_wait_ms = 300};
	struct bh_rpc_client *cl = NULL;
	struct bh_error err = {0};
	char msg[256];
	uint64_t t0 = bh_now_mono_ns();
	int st;

	T_ASSERT(bh_rpc_client_create(&cl, &o, &err) == 0, "%s", err.msg);
	st = get_node(cl, "node-a", msg, sizeof(msg));
	bh_rpc_client_destroy(cl);
	T_ASSERT(st == S_UNAVAILABLE && strstr(msg, "not connected"), "%s: %s",
		 bh_rpc_status_name(st), msg);
	/* bounded by connect_wait_ms, not by the 5 s call timeout (generous margin) */
	T_ASSERT(bh_now_mono_ns() - t0 < 4000000000ull, "took %llu ms",
		 (unsigned long long)((bh_now_mono_ns() - t0) / 1000000));
	return 0;
}

static const struct t_case cases[] = {
	{"agent reads its own node", t_agent_reads_own_node},
	{"agent asking for another node's data is denied", t_agent_other_node_denied},
	{"wrong role for the method is denied", t_wrong_role},
	{"no client certificate: refused at the handshake", t_no_client_cert},
	{"certificate from another CA: refused", t_other_ca},
	{"expired certificate: refused", t_expired},
	{"not-yet-valid certificate: refused", t_not_yet_valid},
	{"revoked certificate: refused", t_revoked},
	{"dropping a peer cuts its live connection", t_revocation_cuts_live_connection},
	{"plaintext client on the TLS port gets nothing", t_plaintext_client},
	{"garbage bytes and a truncated handshake", t_garbage_and_truncated_handshake},
	{"bad envelope, unknown method, bad body", t_bad_envelope_and_unknown_method},
	{"oversized message", t_oversized_message},
	{"large replies are compressed and arrive whole", t_compressed_reply},
	{"a held call does not block others on one connection", t_concurrent_calls_one_connection},
	{"deadline exceeded", t_deadline},
	{"local admin socket: root is operator", t_ipc_root_is_operator},
	{"enrollment listener serves only enrollment", t_enrollment_listener},
	{"the client verifies the server", t_client_checks_server},
	{"a call fails fast with no server", t_no_server_fails_fast},
};

int main(int argc, char **argv)
{
	struct bh_error err = {0};
	int rc;

	bh_log_init("test_rpc", getenv("BH_TEST_DEBUG") ? LOG_DEBUG : LOG_ERR);
	if (bh_tls_init(&err)) {
		fprintf(stderr, "test_rpc: FAIL: %s\n", err.msg);
		return 1;
	}
	if (fixture_up()) {
		fprintf(stderr, "test_rpc: FAIL: fixture\n");
		return 1;
	}
	rc = t_run(cases, BH_ARRAY_SIZE(cases), argc > 1 ? argv[1] : NULL);
	fixture_down();
	nng_fini();
	return rc;
}
