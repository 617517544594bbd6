// SPDX-License-Identifier: Apache-2.0
/*
 * The RPC server: one NNG rep socket, any number of listeners, a pool of contexts.
 *
 * Each worker owns an nng_ctx and an aio. A received request is queued and the loop woken;
 * the loop decodes, authorises and calls the handler, which answers now or later (a long-poll
 * holds its call). Whenever a worker is held by a call, another starts receiving, so that
 * `receivers` contexts always wait for new requests; a worker whose reply is sent goes back to
 * receiving, or retires if there are enough receivers.
 *
 * Pipes: every new connection's identity is settled in the pipe callback (TLS: the verified
 * certificate; ipc: uid 0 only) and kept in a table by pipe id; a request's identity is the one
 * of the pipe it arrived on. The queue and the table are the only state NNG's threads touch,
 * each behind its own mutex.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/ipc/ipc.h>

#include "bulkhead/log.h"
#include "bulkhead/rpc.h"
#include "bulkhead/util.h"

#define MAX_LISTENERS 8
#define MAX_METHODS   64
/*
 * What NNG itself accepts on a connection: four times the limit. A request over the limit but
 * under this cap is read and answered RESOURCE_EXHAUSTED, and the connection stays; only past
 * the cap does NNG drop the connection unread. Besides being the clearer answer, this keeps
 * ordinary clients off NNG 1.5.2's pipe-teardown path mid-receive, where its reaper can
 * deadlock (nanomsg/nng#1543): seen here once in ~100 runs of test_rpc's oversized case.
 */
#define RPC_FRAME_CAP(limit) ((limit) * 4 + 1024)

struct method {
	const ProtobufCServiceDescriptor *svc;
	const ProtobufCMethodDescriptor *md;
	char full[128];
	uint32_t roles;
	bh_rpc_handler fn;
	void *arg;
};

struct peer {
	uint32_t pipe;
	struct bh_identity id;
	struct peer *next;
};

#define PEER_BUCKETS 1024

struct worker;

struct bh_rpc_call {
	struct worker *w;
	const struct method *m;
	struct bh_identity peer;
	uint64_t id;
	uint64_t deadline;
};

struct worker {
	struct bh_rpc_server *s;
	nng_ctx ctx;
	nng_aio *aio;
	nng_msg *req;	   /* received, waiting for the loop */
	bool sending;
	bool held;	   /* its call is not answered yet (set while the handler runs) */
	bool in_handler;   /* the handler is running: an answer now ends no long-poll */
	bool was_held;	   /* the reply being sent ends a held call */
	struct bh_rpc_call call;
	struct worker *qnext; /* received queue, or idle list */
	struct worker *anext; /* all workers */
};

struct bh_rpc_server {
	uv_loop_t *loop;
	uv_async_t wake;
	nng_socket sock;
	size_t max_msg;
	unsigned int receivers_target;

	struct {
		nng_listener l;
		enum bh_rpc_listen_kind kind;
	} listeners[MAX_LISTENERS];
	unsigned int n_listeners;

	struct method methods[MAX_METHODS];
	unsigned int n_methods;
	const ProtobufCServiceDescriptor *svcs[MAX_METHODS + 1];

	pthread_mutex_t qlock; /* received queue; workers list; receiving count */
	struct worker *qhead, *qtail;
	struct worker *all;
	struct worker *idle;	 /* workers parked after a held call, reused first */
	unsigned int receiving;
	bool closing;

	pthread_mutex_t plock; /* peers */
	struct peer *peers[PEER_BUCKETS];
	unsigned int n_peers;
};

/* ---- peers --------------------------------------------------------------------------------- */

static void peer_put(struct bh_rpc_server *s, uint32_t pipe, const struct bh_identity *id)
{
	struct peer *p = calloc(1, sizeof(*p));

	if (!p)
		return;
	p->pipe = pipe;
	p->id = *id;
	pthread_mutex_lock(&s->plock);
	p->next = s->peers[pipe % PEER_BUCKETS];
	s->peers[pipe % PEER_BUCKETS] = p;
	s->n_peers++;
	pthread_mutex_unlock(&s->plock);
}

static bool peer_get(struct bh_rpc_server *s, uint32_t pipe, struct bh_identity *id)
{
	bool found = false;

	pthread_mutex_lock(&s->plock);
	for (struct peer *p = s->peers[pipe % PEER_BUCKETS]; p; p = p->next) {
		if (p->pipe == pipe) {
			*id = p->id;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&s->plock);
	return found;
}

static void peer_del(struct bh_rpc_server *s, uint32_t pipe)
{
	pthread_mutex_lock(&s->plock);
	for (struct peer **pp = &s->peers[pipe % PEER_BUCKETS]; *pp; pp = &(*pp)->next) {
		if ((*pp)->pipe == pipe) {
			struct peer *dead = *pp;

			*pp = dead->next;
			free(dead);
			s->n_peers--;
			break;
		}
	}
	pthread_mutex_unlock(&s->plock);
}

static enum bh_rpc_listen_kind listener_kind(struct bh_rpc_server *s, nng_listener l, bool *found)
{
	for (unsigned int i = 0; i < s->n_listeners; i++) {
		if (nng_listener_id(s->listeners[i].l) == nng_listener_id(l)) {
			*found = true;
			return s->listeners[i].kind;
		}
	}
	*found = false;
	return BH_RPC_LISTEN_ENROLL;
}

/* Settles who the peer of a new pipe is, or closes it. NNG thread. */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct bh_rpc_server *s = arg;
	struct bh_identity id = {0};
	enum bh_rpc_listen_kind kind;
	bool found;
	nng_sockaddr sa;
	char addr[64] = "?";

	if (ev == NNG_PIPE_EV_REM_POST) {
		bh_log(LOG_DEBUG, "rpc: pipe %d gone", nng_pipe_id(p));
		peer_del(s, (uint32_t)nng_pipe_id(p));
		return;
	}
	if (ev != NNG_PIPE_EV_ADD_PRE)
		return;
	bh_log(LOG_DEBUG, "rpc: pipe %d arriving", nng_pipe_id(p));
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0 && sa.s_family == NNG_AF_INET)
		snprintf(addr, sizeof(addr), "%u.%u.%u.%u:%u",
			 ((uint8_t *)&sa.s_in.sa_addr)[0], ((uint8_t *)&sa.s_in.sa_addr)[1],
			 ((uint8_t *)&sa.s_in.sa_addr)[2], ((uint8_t *)&sa.s_in.sa_addr)[3],
			 ntohs(sa.s_in.sa_port));
	kind = listener_kind(s, nng_pipe_listener(p), &found);
	if (!found) {
		nng_pipe_close(p);
		return;
	}
	switch (kind) {
	case BH_RPC_LISTEN_MTLS:
		if (bh_tls_pipe_identity(p, &id) < 0 || id.role == BH_ROLE_NONE) {
			bh_log(LOG_NOTICE, "rpc: connection from %s has no verified identity: closed",
			       addr);
			nng_pipe_close(p);
			return;
		}
		break;
	case BH_RPC_LISTEN_ENROLL:
		id.role = BH_ROLE_NONE;
		snprintf(id.name, sizeof(id.name), "enrollment peer %s", addr);
		break;
	case BH_RPC_LISTEN_IPC: {
		uint64_t uid = UINT64_MAX;

		if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) != 0 || uid != 0) {
			bh_log(LOG_NOTICE, "rpc: local admin connection from uid %" PRIu64
					   " refused: root only",
			       uid);
			nng_pipe_close(p);
			return;
		}
		id.role = BH_ROLE_OPERATOR;
		snprintf(id.name, sizeof(id.name), "root");
		break;
	}
	}
	peer_put(s, (uint32_t)nng_pipe_id(p), &id);
	bh_log(LOG_DEBUG, "rpc: %s %s connected (pipe %d)", bh_role_name(id.role), id.name,
	       nng_pipe_id(p));
}

/* ---- workers ------------------------------------------------------------------------------- */

static void worker_cb(void *arg);

static struct worker *worker_new(struct bh_rpc_server *s)
{
	struct worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->s = s;
	if (nng_aio_alloc(&w->aio, worker_cb, w) != 0) {
		free(w);
		return NULL;
	}
	if (nng_ctx_open(&w->ctx, s->sock) != 0) {
		nng_aio_free(w->aio);
		free(w);
		return NULL;
	}
	w->call.w = w;
	return w;
}

/* Starts receiving; s->qlock held. */
static void worker_recv(struct worker *w)
{
	w->sending = false;
	w->held = false;
	w->s->receiving++;
	nng_ctx_recv(w->ctx, w->aio);
}

/* Adds receivers until the target is met, reusing parked workers first; s->qlock held. */
static void receivers_fill(struct bh_rpc_server *s)
{
	while (!s->closing && s->receiving < s->receivers_target) {
		struct worker *w = s->idle;

		if (w) {
			s->idle = w->qnext;
		} else {
			w = worker_new(s);
			if (!w) {
				bh_log(LOG_ERR, "rpc: cannot add a receiving context (out of memory?)");
				return;
			}
			w->anext = s->all;
			s->all = w;
		}
		worker_recv(w);
	}
}

/* NNG thread: a receive or a send finished. */
static void worker_cb(void *arg)
{
	struct worker *w = arg;
	struct bh_rpc_server *s = w->s;
	int rv = nng_aio_result(w->aio);

	pthread_mutex_lock(&s->qlock);
	if (w->sending) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(w->aio));
			nng_aio_set_msg(w->aio, NULL);
		}
		/* A worker that was held by a call was replaced by a new receiver meanwhile: park
		 * it if there are enough receivers. Otherwise back to receiving. */
		if (s->closing) {
			/* nothing */
		} else if (w->was_held && s->receiving >= s->receivers_target) {
			w->sending = false;
			w->qnext = s->idle;
			s->idle = w;
		} else {
			worker_recv(w);
		}
		pthread_mutex_unlock(&s->qlock);
		return;
	}
	s->receiving--;
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED && !s->closing)
			worker_recv(w);
		pthread_mutex_unlock(&s->qlock);
		return;
	}
	w->req = nng_aio_get_msg(w->aio);
	nng_aio_set_msg(w->aio, NULL);
	w->qnext = NULL;
	if (s->qtail)
		s->qtail->qnext = w;
	else
		s->qhead = w;
	s->qtail = w;
	pthread_mutex_unlock(&s->qlock);
	uv_async_send(&s->wake);
}

/* Loop thread: sends a reply envelope on the worker's context. */
static void worker_send(struct worker *w, uint64_t id, int status, const char *message,
			const uint8_t *body, size_t blen, uint32_t flags)
{
	Bulkhead__RpcReply rep = BULKHEAD__RPC_REPLY__INIT;
	nng_msg *msg = NULL;
	size_t n;

	rep.id = id;
	rep.status = (Bulkhead__RpcStatus)status;
	rep.message = (char *)(message ? message : "");
	rep.flags = flags;
	rep.body.data = (uint8_t *)body;
	rep.body.len = blen;
	n = bulkhead__rpc_reply__get_packed_size(&rep);
	if (nng_msg_alloc(&msg, n) != 0) {
		bh_log(LOG_ERR, "rpc: out of memory for a %zu-byte reply", n);
		/* answer nothing; the caller times out. Put the worker back to work. */
		pthread_mutex_lock(&w->s->qlock);
		worker_recv(w);
		pthread_mutex_unlock(&w->s->qlock);
		return;
	}
	bulkhead__rpc_reply__pack(&rep, nng_msg_body(msg));
	pthread_mutex_lock(&w->s->qlock);
	w->sending = true;
	w->was_held = w->held && !w->in_handler;
	w->held = false;
	pthread_mutex_unlock(&w->s->qlock);
	nng_aio_set_msg(w->aio, msg);
	nng_ctx_send(w->ctx, w->aio);
}

/* ---- dispatch (loop thread) ---------------------------------------------------------------- */

static const struct method *method_get(struct bh_rpc_server *s, const char *full)
{
	for (unsigned int i = 0; i < s->n_methods; i++)
		if (strcmp(s->methods[i].full, full) == 0)
			return &s->methods[i];
	return NULL;
}

static void dispatch(struct bh_rpc_server *s, struct worker *w)
{
	nng_msg *msg = w->req;
	Bulkhead__RpcRequest *rq;
	ProtobufCMessage *body = NULL;
	const struct method *m;
	struct bh_rpc_call *call = &w->call;
	char why[160];
	size_t limit;
	int rc;

	w->req = NULL;
	memset(call, 0, sizeof(*call));
	call->w = w;
	if (!peer_get(s, (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg)), &call->peer)) {
		/* the pipe went away between receive and now */
		nng_msg_free(msg);
		pthread_mutex_lock(&s->qlock);
		worker_recv(w);
		pthread_mutex_unlock(&s->qlock);
		return;
	}
	/* Over the limit but under the framing cap: answered, the connection stays (see
	 * RPC_FRAME_CAP). The id is not known without decoding, which is what we refuse to do. */
	limit = call->peer.role == BH_ROLE_NONE ? BH_RPC_MAX_MSG_ANON : s->max_msg;
	if (nng_msg_len(msg) > limit + 1024) {
		snprintf(why, sizeof(why), "request of %zu bytes exceeds the %zu-byte limit",
			 nng_msg_len(msg), limit);
		bh_log(LOG_NOTICE, "rpc: %s %s: %s", bh_role_name(call->peer.role),
		       call->peer.name, why);
		nng_msg_free(msg);
		worker_send(w, 0, BULKHEAD__RPC_STATUS__RPC_RESOURCE_EXHAUSTED, why, NULL, 0, 0);
		return;
	}
	rq = bulkhead__rpc_request__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	/* Unknown fields are kept by protobuf-c, one allocation each: a small message of many of
	 * them costs far more memory and time than its size. Nothing we speak has any. */
	if (rq && rq->base.n_unknown_fields) {
		bulkhead__rpc_request__free_unpacked(rq, NULL);
		rq = NULL;
	}
	if (!rq) {
		bh_log(LOG_NOTICE, "rpc: bad envelope from %s %s", bh_role_name(call->peer.role),
		       call->peer.name);
		worker_send(w, 0, BULKHEAD__RPC_STATUS__RPC_INVALID_ARGUMENT,
			    "bad envelope: not an RpcRequest", NULL, 0, 0);
		return;
	}
	call->id = rq->id;
	call->deadline = bh_now_mono_ns() / 1000000 +
			 (rq->timeout_ms ? rq->timeout_ms : BH_RPC_TIMEOUT_DEFAULT);
	/* A certificate that expired while its connection stayed up no longer speaks. */
	if (call->peer.role != BH_ROLE_NONE && call->peer.not_after &&
	    time(NULL) > call->peer.not_after) {
		worker_send(w, rq->id, BULKHEAD__RPC_STATUS__RPC_UNAUTHENTICATED,
			    "your certificate has expired: renew or enroll again", NULL, 0, 0);
		goto out;
	}
	m = method_get(s, rq->method);
	if (!m) {
		snprintf(why, sizeof(why), "unknown method \"%.100s\"", rq->method);
		worker_send(w, rq->id, BULKHEAD__RPC_STATUS__RPC_UNIMPLEMENTED, why, NULL, 0, 0);
		goto out;
	}
	call->m = m;
	if (!(m->roles & BH_RPC_ROLE(call->peer.role))) {
		snprintf(why, sizeof(why), "not authorised: %s is not for %s%s%s", m->full,
			 call->peer.role == BH_ROLE_NONE ? "unauthenticated peers"
							 : bh_role_name(call->peer.role),
			 call->peer.role == BH_ROLE_NONE ? "" : "s", "");
		bh_log(LOG_NOTICE, "rpc: %s %s called %s: permission denied",
		       bh_role_name(call->peer.role), call->peer.name, m->full);
		worker_send(w, rq->id, BULKHEAD__RPC_STATUS__RPC_PERMISSION_DENIED, why, NULL, 0, 0);
		goto out;
	}
	/* anonymous (enrollment) peers get a small inflate budget */
	rc = bh_rpc_body_unpack(m->md->input, rq->body.data, rq->body.len, rq->flags,
				call->peer.role == BH_ROLE_NONE ? BH_RPC_MAX_MSG_ANON : s->max_msg,
				&body);
	if (rc == 0 && body->n_unknown_fields) {
		protobuf_c_message_free_unpacked(body, NULL);
		body = NULL;
		rc = -EINVAL;
	}
	if (rc) {
		snprintf(why, sizeof(why), "%s: %s", m->full,
			 rc == -EMSGSIZE ? "request body inflates past the size limit"
					 : "request body is not a valid message");
		worker_send(w, rq->id,
			    rc == -EMSGSIZE ? BULKHEAD__RPC_STATUS__RPC_RESOURCE_EXHAUSTED
					    : BULKHEAD__RPC_STATUS__RPC_INVALID_ARGUMENT,
			    why, NULL, 0, 0);
		goto out;
	}
	pthread_mutex_lock(&s->qlock);
	w->held = true;
	w->in_handler = true;
	pthread_mutex_unlock(&s->qlock);
	m->fn(call, body, m->arg);
	protobuf_c_message_free_unpacked(body, NULL);
	/* A handler that keeps its call (a long-poll) keeps this context: start another receiver
	 * in its place. */
	pthread_mutex_lock(&s->qlock);
	w->in_handler = false;
	if (w->held)
		receivers_fill(s);
	pthread_mutex_unlock(&s->qlock);
out:
	bulkhead__rpc_request__free_unpacked(rq, NULL);
}

static void wake_cb(uv_async_t *h)
{
	struct bh_rpc_server *s = h->data;
	struct worker *w;

	for (;;) {
		pthread_mutex_lock(&s->qlock);
		w = s->qhead;
		if (w) {
			s->qhead = w->qnext;
			if (!s->qhead)
				s->qtail = NULL;
		}
		pthread_mutex_unlock(&s->qlock);
		if (!w)
			break;
		dispatch(s, w);
	}
}

void bh_rpc_reply(struct bh_rpc_call *call, int status, const ProtobufCMessage *resp,
		  const char *fmt, ...)
{
	struct worker *w = call->w;
	char message[512] = "";
	uint8_t *body = NULL;
	size_t blen = 0;
	uint32_t flags = 0;
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(message, sizeof(message), fmt, ap);
		va_end(ap);
	}
	if (status == BULKHEAD__RPC_STATUS__RPC_OK && resp) {
		if (bh_rpc_body_pack(resp, &body, &blen, &flags)) {
			status = BULKHEAD__RPC_STATUS__RPC_INTERNAL;
			snprintf(message, sizeof(message), "out of memory packing the reply");
		} else if (blen > w->s->max_msg) {
			free(body);
			body = NULL;
			blen = 0;
			flags = 0;
			status = BULKHEAD__RPC_STATUS__RPC_RESOURCE_EXHAUSTED;
			snprintf(message, sizeof(message), "reply larger than the %zu-byte limit",
				 w->s->max_msg);
		}
	}
	worker_send(w, call->id, status, message, body, blen, flags);
	free(body);
}

const struct bh_identity *bh_rpc_call_peer(const struct bh_rpc_call *call)
{
	return &call->peer;
}

const char *bh_rpc_call_method(const struct bh_rpc_call *call)
{
	return call->m ? call->m->full : "";
}

uint64_t bh_rpc_call_deadline(const struct bh_rpc_call *call)
{
	return call->deadline;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int bh_rpc_server_create(struct bh_rpc_server **out, const struct bh_rpc_server_opts *o,
			 struct bh_error *err)
{
	struct bh_rpc_server *s = calloc(1, sizeof(*s));
	int rv;

	if (!s)
		return bh_error_set(err, -ENOMEM, "out of memory");
	s->loop = o->loop;
	s->max_msg = o->max_msg ? o->max_msg : BH_RPC_MAX_MSG_DEFAULT;
	s->receivers_target = o->receivers ? o->receivers : 16;
	pthread_mutex_init(&s->qlock, NULL);
	pthread_mutex_init(&s->plock, NULL);
	rv = nng_rep0_open(&s->sock);
	if (rv) {
		bh_error_set(err, bh_nng_errno(rv), "opening the RPC socket: %s", nng_strerror(rv));
		goto fail;
	}
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, RPC_FRAME_CAP(s->max_msg));
	nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s);
	nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);
	if (uv_async_init(s->loop, &s->wake, wake_cb)) {
		nng_close(s->sock);
		bh_error_set(err, -ENOMEM, "uv_async_init failed");
		goto fail;
	}
	s->wake.data = s;
	*out = s;
	return 0;
fail:
	pthread_mutex_destroy(&s->qlock);
	pthread_mutex_destroy(&s->plock);
	free(s);
	return err ? err->code : -EIO;
}

int bh_rpc_server_register(struct bh_rpc_server *s, const ProtobufCServiceDescriptor *svc,
			   const char *method, uint32_t roles, bh_rpc_handler fn, void *arg)
{
	const ProtobufCMethodDescriptor *md =
		protobuf_c_service_descriptor_get_method_by_name(svc, method);
	struct method *m;

	if (!md || s->n_methods == MAX_METHODS)
		return -EINVAL;
	m = &s->methods[s->n_methods++];
	m->svc = svc;
	m->md = md;
	snprintf(m->full, sizeof(m->full), "/%s/%s", svc->name, md->name);
	m->roles = roles;
	m->fn = fn;
	m->arg = arg;
	return 0;
}

int bh_rpc_server_listen(struct bh_rpc_server *s, const char *url, enum bh_rpc_listen_kind kind,
			 const struct bh_tls_opts *tls, struct bh_error *err)
{
	nng_listener l;
	nng_tls_config *cfg = NULL;
	int rv;

	if (s->n_listeners == MAX_LISTENERS)
		return bh_error_set(err, -ENOSPC, "too many listeners");
	if ((kind == BH_RPC_LISTEN_IPC) != (strncmp(url, "ipc://", 6) == 0))
		return bh_error_set(err, -EINVAL, "%s: %s", url,
				    kind == BH_RPC_LISTEN_IPC ? "the admin socket must be ipc://"
							      : "want tls+tcp://HOST:PORT");
	rv = nng_listener_create(&l, s->sock, url);
	if (rv)
		return bh_error_set(err, bh_nng_errno(rv), "listening on %s: %s", url,
				    nng_strerror(rv));
	if (kind != BH_RPC_LISTEN_IPC) {
		struct bh_tls_opts o = *tls;

		o.require_client_cert = kind == BH_RPC_LISTEN_MTLS;
		rv = bh_tls_config_create(&cfg, NNG_TLS_MODE_SERVER, &o, err);
		if (rv) {
			nng_listener_close(l);
			return rv;
		}
		rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
		nng_tls_config_free(cfg);
	} else {
		rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0600);
	}
	/* enrollment peers are anyone: their messages are small, and so is what they may send */
	if (rv == 0 && kind == BH_RPC_LISTEN_ENROLL)
		rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, RPC_FRAME_CAP(BH_RPC_MAX_MSG_ANON));
	if (rv == 0) {
		s->listeners[s->n_listeners].l = l;
		s->listeners[s->n_listeners].kind = kind;
		s->n_listeners++;
		rv = nng_listener_start(l, 0);
		if (rv)
			s->n_listeners--;
	}
	if (rv) {
		nng_listener_close(l);
		return bh_error_set(err, bh_nng_errno(rv), "listening on %s: %s", url,
				    nng_strerror(rv));
	}
	pthread_mutex_lock(&s->qlock);
	receivers_fill(s);
	pthread_mutex_unlock(&s->qlock);
	bh_log(LOG_INFO, "rpc: listening on %s (%s)", url,
	       kind == BH_RPC_LISTEN_MTLS ? "mutual TLS" : kind == BH_RPC_LISTEN_ENROLL
							       ? "enrollment, server TLS"
							       : "local admin");
	return 0;
}

/* Pipes whose identity match() accepts; closes them if close. */
static int peers_matching(struct bh_rpc_server *s,
			  bool (*match)(const struct bh_identity *id, void *arg), void *arg,
			  bool close)
{
	uint32_t *pipes = NULL;
	unsigned int n = 0, cap = 0;

	pthread_mutex_lock(&s->plock);
	for (unsigned int b = 0; b < PEER_BUCKETS; b++) {
		for (struct peer *p = s->peers[b]; p; p = p->next) {
			if (!match(&p->id, arg))
				continue;
			if (!close) {
				n++;
				continue;
			}
			if (n == cap) {
				uint32_t *np = realloc(pipes, (cap ? cap * 2 : 16) * sizeof(*np));

				if (!np)
					break;
				pipes = np;
				cap = cap ? cap * 2 : 16;
			}
			pipes[n++] = p->pipe;
		}
	}
	pthread_mutex_unlock(&s->plock);
	/* closing outside the lock: the pipe callback takes it */
	for (unsigned int i = 0; close && i < n; i++) {
		nng_pipe p = NNG_PIPE_INITIALIZER;

		p.id = pipes[i];
		nng_pipe_close(p);
	}
	free(pipes);
	return (int)n;
}

int bh_rpc_server_drop(struct bh_rpc_server *s,
		       bool (*match)(const struct bh_identity *id, void *arg), void *arg)
{
	return peers_matching(s, match, arg, true);
}

int bh_rpc_server_count(struct bh_rpc_server *s,
			bool (*match)(const struct bh_identity *id, void *arg), void *arg)
{
	return peers_matching(s, match, arg, false);
}

int bh_rpc_server_port(struct bh_rpc_server *s, unsigned int i)
{
	int port = 0;

	if (i >= s->n_listeners ||
	    nng_listener_get_int(s->listeners[i].l, NNG_OPT_TCP_BOUND_PORT, &port) != 0)
		return 0;
	return port;
}

unsigned int bh_rpc_server_connections(struct bh_rpc_server *s)
{
	unsigned int n;

	pthread_mutex_lock(&s->plock);
	n = s->n_peers;
	pthread_mutex_unlock(&s->plock);
	return n;
}

static void wake_closed(uv_handle_t *h)
{
	struct bh_rpc_server *s = h->data;

	pthread_mutex_destroy(&s->qlock);
	pthread_mutex_destroy(&s->plock);
	free(s);
}

void bh_rpc_server_destroy(struct bh_rpc_server *s)
{
	struct worker *w, *next;

	if (!s)
		return;
	pthread_mutex_lock(&s->qlock);
	s->closing = true;
	pthread_mutex_unlock(&s->qlock);
	nng_close(s->sock);
	/* nng_close() has ended every context's operation: callbacks are done */
	for (w = s->all; w; w = next) {
		next = w->anext;
		nng_aio_stop(w->aio);
		nng_msg_free(w->req);
		nng_msg_free(nng_aio_get_msg(w->aio));
		nng_aio_free(w->aio);
		free(w);
	}
	for (unsigned int b = 0; b < PEER_BUCKETS; b++) {
		while (s->peers[b]) {
			struct peer *p = s->peers[b];

			s->peers[b] = p->next;
			free(p);
		}
	}
	uv_close((uv_handle_t *)&s->wake, wake_closed);
}
