/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC-like RPC over NNG req/rep with contexts.
 *
 * A call is an RpcRequest envelope {method, id, timeout, flags, body} answered by an RpcReply
 * {id, status, message, flags, body}; bodies over BH_RPC_COMPRESS_OVER bytes are zlib-compressed.
 * Methods are those of the services in proto/bulkhead.proto: "/bulkhead.Operator/CreateToken".
 * The server decodes and checks generically from protoc-c's service descriptors, so a handler
 * receives a typed, already-validated message, and the identity (role + name) that TLS verified
 * on the connection the call came over.
 *
 * Threads: the server's handlers run on the daemon's libuv loop. NNG's threads only queue
 * received messages and wake the loop with uv_async_send(); the loop drains the whole queue.
 */
#ifndef BULKHEAD_RPC_H
#define BULKHEAD_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "bulkhead.pb-c.h"
#include "bulkhead/error.h"
#include "bulkhead/pki.h"
#include "bulkhead/tls.h"

#define BH_RPC_MAX_MSG_DEFAULT	 (16u << 20) /* receive size limit on every socket */
#define BH_RPC_MAX_MSG_ANON	 (64u << 10) /* the same for unauthenticated (enrollment) peers */
#define BH_RPC_COMPRESS_OVER	 4096	     /* bodies larger than this are compressed */
#define BH_RPC_TIMEOUT_DEFAULT	 30000	     /* ms, when a caller gives none */

/* Role bits for bh_rpc_server_register(). */
#define BH_RPC_ROLE(r) (1u << (r))
#define BH_RPC_ROLES_NONE	BH_RPC_ROLE(BH_ROLE_NONE)
#define BH_RPC_ROLES_AGENT	BH_RPC_ROLE(BH_ROLE_AGENT)
#define BH_RPC_ROLES_OPERATOR	BH_RPC_ROLE(BH_ROLE_OPERATOR)

/* ---- wire helpers (also what the fuzz targets exercise) ----------------------------------- */

/* Finds "/package.Service/Method" among services (NULL-terminated). Returns the method and sets
 * *svc, or NULL. */
const ProtobufCMethodDescriptor *bh_rpc_method_find(const ProtobufCServiceDescriptor *const *svcs,
						    const char *full_name,
						    const ProtobufCServiceDescriptor **svc);

/* Packs m, zlib-compressing it when over BH_RPC_COMPRESS_OVER and smaller for it. On success the
 * caller owns *out (free()). */
int bh_rpc_body_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len, uint32_t *flags);

/* Unpacks a body of type d (decompressing if flags say so, never past max bytes). On success the
 * caller owns *out (protobuf_c_message_free_unpacked). -EINVAL bad body, -EMSGSIZE too large. */
int bh_rpc_body_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
		       uint32_t flags, size_t max, ProtobufCMessage **out);

/* Name of a status ("PERMISSION_DENIED"). Never fails. */
const char *bh_rpc_status_name(int status);

/* ---- server -------------------------------------------------------------------------------- */

struct bh_rpc_server;
struct bh_rpc_call;

/* Called on the loop thread. req is valid until the handler returns; the handler (now or later,
 * on the loop thread) answers with bh_rpc_reply() exactly once. */
typedef void (*bh_rpc_handler)(struct bh_rpc_call *call, const ProtobufCMessage *req, void *arg);

struct bh_rpc_server_opts {
	uv_loop_t *loop;
	size_t max_msg;		/* default BH_RPC_MAX_MSG_DEFAULT */
	unsigned int receivers; /* contexts waiting for a request at any time (default 16) */
};

enum bh_rpc_listen_kind {
	BH_RPC_LISTEN_MTLS,   /* tls+tcp://, client certificate required: peers are agents/operators */
	BH_RPC_LISTEN_ENROLL, /* tls+tcp://, server authentication only: peers have role NONE */
	BH_RPC_LISTEN_IPC,    /* ipc://, socket mode 0600, peers must be uid 0: role operator */
};

int bh_rpc_server_create(struct bh_rpc_server **out, const struct bh_rpc_server_opts *o,
			 struct bh_error *err);

/* Serves method of svc with fn for callers whose role is in roles (BH_RPC_ROLE bits). */
int bh_rpc_server_register(struct bh_rpc_server *s, const ProtobufCServiceDescriptor *svc,
			   const char *method, uint32_t roles, bh_rpc_handler fn, void *arg);

/* Starts listening on url. tls is required for the TLS kinds (its CA verifies clients). */
int bh_rpc_server_listen(struct bh_rpc_server *s, const char *url, enum bh_rpc_listen_kind kind,
			 const struct bh_tls_opts *tls, struct bh_error *err);

/* The TCP port listener number i (in bh_rpc_server_listen() order) is bound to: how a test or a
 * daemon started on port 0 learns its port. 0 if unknown. */
int bh_rpc_server_port(struct bh_rpc_server *s, unsigned int i);

/* Closes every connection whose verified identity match() accepts (certificate revocation).
 * Returns how many were closed. Any thread. */
int bh_rpc_server_drop(struct bh_rpc_server *s,
		       bool (*match)(const struct bh_identity *id, void *arg), void *arg);

/* How many open connections have an identity match() accepts (any thread). */
int bh_rpc_server_count(struct bh_rpc_server *s,
			bool (*match)(const struct bh_identity *id, void *arg), void *arg);

/* Number of open connections (any thread). */
unsigned int bh_rpc_server_connections(struct bh_rpc_server *s);

/* Stops serving: closes the socket, answers nothing more, frees everything. Loop thread. Takes
 * NULL. Calls still held by handlers must not be used afterwards. */
void bh_rpc_server_destroy(struct bh_rpc_server *s);

/* Answers a call: status RPC_OK with resp, or another status with a message (printf format). Frees
 * the call. Loop thread. */
void bh_rpc_reply(struct bh_rpc_call *call, int status, const ProtobufCMessage *resp,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The identity verified on the connection the call came over. */
const struct bh_identity *bh_rpc_call_peer(const struct bh_rpc_call *call);

/* The method's full name. */
const char *bh_rpc_call_method(const struct bh_rpc_call *call);

/* Monotonic time (ms) after which the caller has given up. */
uint64_t bh_rpc_call_deadline(const struct bh_rpc_call *call);

/* ---- client -------------------------------------------------------------------------------- */

struct bh_rpc_client;

struct bh_rpc_client_opts {
	const char *url;	      /* tls+tcp://HOST:PORT or ipc:///path */
	const struct bh_tls_opts *tls; /* for tls+tcp:// */
	bool expect_controller;	      /* refuse a server whose certificate is not a controller's */
	size_t max_msg;		      /* default BH_RPC_MAX_MSG_DEFAULT */
	uint32_t reconnect_min_ms;    /* default 100, with +-50% jitter per client */
	uint32_t reconnect_max_ms;    /* default 30000 */
	uint32_t connect_wait_ms;     /* how long a call waits for a connection (default 3000) */
};

int bh_rpc_client_create(struct bh_rpc_client **out, const struct bh_rpc_client_opts *o,
			 struct bh_error *err);
void bh_rpc_client_destroy(struct bh_rpc_client *c);
bool bh_rpc_client_connected(struct bh_rpc_client *c);

/*
 * Calls method of svc with req and waits up to timeout_ms (0: BH_RPC_TIMEOUT_DEFAULT). Any thread;
 * several calls may be in flight at once on one connection. Returns the RPC status: RPC_OK with
 * *resp set (caller frees it with protobuf_c_message_free_unpacked), or another status with a
 * message in msg (msglen bytes): the server's, or UNAVAILABLE / DEADLINE_EXCEEDED /
 * RESOURCE_EXHAUSTED / INTERNAL from the client side.
 */
int bh_rpc_call(struct bh_rpc_client *c, const ProtobufCServiceDescriptor *svc, const char *method,
		const ProtobufCMessage *req, ProtobufCMessage **resp, uint32_t timeout_ms,
		char *msg, size_t msglen);

#endif
