// SPDX-License-Identifier: Apache-2.0
/*
 * The RPC client: one NNG req socket with one dialer (which reconnects with exponential backoff),
 * one context per call so that calls overlap on the one connection. Calls are synchronous for
 * their caller and may come from any thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <openssl/rand.h>

#include "bulkhead/log.h"
#include "bulkhead/rpc.h"
#include "bulkhead/util.h"

struct bh_rpc_client {
	nng_socket sock;
	nng_dialer dialer;
	char url[256];
	size_t max_msg;
	uint32_t connect_wait_ms;
	bool expect_controller;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int pipes;
	uint64_t next_id;
	char last_error[160];
};

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct bh_rpc_client *c = arg;
	struct bh_identity id;

	if (ev == NNG_PIPE_EV_ADD_PRE) {
		if (c->expect_controller &&
		    (bh_tls_pipe_identity(p, &id) < 0 || id.role != BH_ROLE_CONTROLLER)) {
			bh_log(LOG_WARNING, "rpc: %s: the server's certificate is not a Bulkhead "
					    "controller's: disconnected",
			       c->url);
			pthread_mutex_lock(&c->lock);
			snprintf(c->last_error, sizeof(c->last_error),
				 "the server's certificate is not a controller's");
			pthread_mutex_unlock(&c->lock);
			nng_pipe_close(p);
		}
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		c->pipes++;
		c->last_error[0] = '\0';
	} else if (ev == NNG_PIPE_EV_REM_POST && c->pipes) {
		c->pipes--;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

int bh_rpc_client_create(struct bh_rpc_client **out, const struct bh_rpc_client_opts *o,
			 struct bh_error *err)
{
	struct bh_rpc_client *c = calloc(1, sizeof(*c));
	nng_tls_config *cfg = NULL;
	uint32_t min = o->reconnect_min_ms ? o->reconnect_min_ms : 100, jitter;
	int rv;

	if (!c)
		return bh_error_set(err, -ENOMEM, "out of memory");
	snprintf(c->url, sizeof(c->url), "%s", o->url);
	c->max_msg = o->max_msg ? o->max_msg : BH_RPC_MAX_MSG_DEFAULT;
	c->connect_wait_ms = o->connect_wait_ms ? o->connect_wait_ms : 3000;
	c->expect_controller = o->expect_controller;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	rv = nng_req0_open(&c->sock);
	if (rv) {
		bh_error_set(err, bh_nng_errno(rv), "opening the RPC socket: %s", nng_strerror(rv));
		goto fail_sync;
	}
	/* A request is sent once: a lost reply is the caller's timeout, never a second delivery. */
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->max_msg + 1024);
	/* Spread a fleet's reconnects: each client's backoff starts at min +-50%. */
	RAND_bytes((unsigned char *)&jitter, sizeof(jitter));
	min = min / 2 + jitter % (min + 1);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, (nng_duration)(min ? min : 1));
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT,
			  (nng_duration)(o->reconnect_max_ms ? o->reconnect_max_ms : 30000));
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_cb, c);
	rv = nng_dialer_create(&c->dialer, c->sock, o->url);
	if (rv) {
		bh_error_set(err, bh_nng_errno(rv), "%s: %s", o->url, nng_strerror(rv));
		goto fail;
	}
	nng_dialer_set_size(c->dialer, NNG_OPT_RECVMAXSZ, c->max_msg + 1024);
	if (strncmp(o->url, "tls+", 4) == 0) {
		if (!o->tls) {
			bh_error_set(err, -EINVAL, "%s: TLS settings missing", o->url);
			goto fail;
		}
		rv = bh_tls_config_create(&cfg, NNG_TLS_MODE_CLIENT, o->tls, err);
		if (rv)
			goto fail;
		rv = nng_dialer_set_ptr(c->dialer, NNG_OPT_TLS_CONFIG, cfg);
		nng_tls_config_free(cfg);
		if (rv) {
			bh_error_set(err, bh_nng_errno(rv), "%s: %s", o->url, nng_strerror(rv));
			goto fail;
		}
	}
	/* Non-blocking: the dialer keeps trying in the background; calls wait for it. */
	rv = nng_dialer_start(c->dialer, NNG_FLAG_NONBLOCK);
	if (rv) {
		bh_error_set(err, bh_nng_errno(rv), "%s: %s", o->url, nng_strerror(rv));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	nng_close(c->sock);
fail_sync:
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return err && err->code ? err->code : -EIO;
}

void bh_rpc_client_destroy(struct bh_rpc_client *c)
{
	if (!c)
		return;
	nng_close(c->sock);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

bool bh_rpc_client_connected(struct bh_rpc_client *c)
{
	bool up;

	pthread_mutex_lock(&c->lock);
	up = c->pipes > 0;
	pthread_mutex_unlock(&c->lock);
	return up;
}

static int say(char *msg, size_t len, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int say(char *msg, size_t len, int status, const char *fmt, ...)
{
	va_list ap;

	if (msg && len) {
		va_start(ap, fmt);
		vsnprintf(msg, len, fmt, ap);
		va_end(ap);
	}
	return status;
}

/* Waits until a connection is up or wait_ms passed; returns whether it is up. */
static bool wait_connected(struct bh_rpc_client *c, uint32_t wait_ms, char *why, size_t len)
{
	struct timespec ts;
	bool up;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->lock);
	while (c->pipes == 0 && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0)
		;
	up = c->pipes > 0;
	snprintf(why, len, "%s", c->last_error);
	pthread_mutex_unlock(&c->lock);
	if (!up && !why[0])
		bh_tls_last_failure(why, len, (wait_ms + 999) / 1000 + 1);
	return up;
}

int bh_rpc_call(struct bh_rpc_client *c, const ProtobufCServiceDescriptor *svc, const char *method,
		const ProtobufCMessage *req, ProtobufCMessage **resp, uint32_t timeout_ms,
		char *msg, size_t msglen)
{
	Bulkhead__RpcRequest rq = BULKHEAD__RPC_REQUEST__INIT;
	Bulkhead__RpcReply *rep = NULL;
	const ProtobufCMethodDescriptor *md;
	nng_ctx ctx;
	nng_aio *aio = NULL;
	nng_msg *m = NULL;
	uint8_t *body = NULL;
	size_t blen;
	uint32_t flags;
	char full[128], why[160];
	uint64_t t0 = bh_now_mono_ns();
	int rv, status;

	*resp = NULL;
	if (!timeout_ms)
		timeout_ms = BH_RPC_TIMEOUT_DEFAULT;
	md = protobuf_c_service_descriptor_get_method_by_name(svc, method);
	if (!md || req->descriptor != md->input)
		return say(msg, msglen, BULKHEAD__RPC_STATUS__RPC_INTERNAL,
			   "%s.%s: no such method or wrong request type", svc->name, method);
	snprintf(full, sizeof(full), "/%s/%s", svc->name, method);
	if (!wait_connected(c, c->connect_wait_ms < timeout_ms ? c->connect_wait_ms : timeout_ms,
			    why, sizeof(why)))
		return say(msg, msglen, BULKHEAD__RPC_STATUS__RPC_UNAVAILABLE,
			   "not connected to %s%s%s", c->url, why[0] ? ": " : "", why);
	if (bh_rpc_body_pack(req, &body, &blen, &flags))
		return say(msg, msglen, BULKHEAD__RPC_STATUS__RPC_INTERNAL, "out of memory");
	pthread_mutex_lock(&c->lock);
	rq.id = ++c->next_id;
	pthread_mutex_unlock(&c->lock);
	rq.method = full;
	rq.timeout_ms = timeout_ms;
	rq.flags = flags;
	rq.body.data = body;
	rq.body.len = blen;
	if (bulkhead__rpc_request__get_packed_size(&rq) > c->max_msg) {
		free(body);
		return say(msg, msglen, BULKHEAD__RPC_STATUS__RPC_RESOURCE_EXHAUSTED,
			   "%s: request of %zu bytes exceeds the %zu-byte limit", full, blen,
			   c->max_msg);
	}
	rv = nng_msg_alloc(&m, bulkhead__rpc_request__get_packed_size(&rq));
	if (rv) {
		free(body);
		return say(msg, msglen, BULKHEAD__RPC_STATUS__RPC_INTERNAL, "out of memory");
	}
	bulkhead__rpc_request__pack(&rq, nng_msg_body(m));
	free(body);
	rv = nng_ctx_open(&ctx, c->sock);
	if (rv == 0 && (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0)
		nng_ctx_close(ctx);
	if (rv) {
		nng_msg_free(m);
		return say(msg, msglen, BULKHEAD__RPC_STATUS__RPC_INTERNAL, "%s", nng_strerror(rv));
	}
	{
		uint64_t spent = (bh_now_mono_ns() - t0) / 1000000;

		nng_aio_set_timeout(aio, (nng_duration)(spent >= timeout_ms ? 1 : timeout_ms - spent));
	}
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	if (rv) {
		nng_msg_free(nng_aio_get_msg(aio));
		nng_aio_free(aio);
		nng_ctx_close(ctx);
		return say(msg, msglen,
			   rv == NNG_ETIMEDOUT ? BULKHEAD__RPC_STATUS__RPC_DEADLINE_EXCEEDED
					       : BULKHEAD__RPC_STATUS__RPC_UNAVAILABLE,
			   "%s: sending: %s", full, nng_strerror(rv));
	}
	{
		uint64_t spent = (bh_now_mono_ns() - t0) / 1000000;

		nng_aio_set_timeout(aio, (nng_duration)(spent >= timeout_ms ? 1 : timeout_ms - spent));
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	m = rv ? NULL : nng_aio_get_msg(aio);
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	if (rv)
		return say(msg, msglen,
			   rv == NNG_ETIMEDOUT ? BULKHEAD__RPC_STATUS__RPC_DEADLINE_EXCEEDED
					       : BULKHEAD__RPC_STATUS__RPC_UNAVAILABLE,
			   "%s: %s", full,
			   rv == NNG_ETIMEDOUT ? "no answer before the deadline" : nng_strerror(rv));
	rep = bulkhead__rpc_reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	if (!rep)
		return say(msg, msglen, BULKHEAD__RPC_STATUS__RPC_DATA_LOSS,
			   "%s: the answer is not an RpcReply", full);
	status = (int)rep->status;
	if (status != BULKHEAD__RPC_STATUS__RPC_OK) {
		say(msg, msglen, status, "%s", rep->message[0] ? rep->message
							      : bh_rpc_status_name(status));
	} else if ((rv = bh_rpc_body_unpack(md->output, rep->body.data, rep->body.len, rep->flags,
					    c->max_msg, resp))) {
		status = say(msg, msglen, BULKHEAD__RPC_STATUS__RPC_DATA_LOSS,
			     "%s: the answer's body is not a valid %s", full, md->output->name);
	} else if (msg && msglen) {
		msg[0] = '\0';
	}
	bulkhead__rpc_reply__free_unpacked(rep, NULL);
	return status;
}
