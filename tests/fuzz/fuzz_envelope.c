// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the bytes of one NNG message as the RPC layer receives them.
 *
 * Server side, as dispatch() in common/rpc_server.c does it: an RpcRequest envelope, its method
 * looked up over the three services, its body unpacked as that method's request with the
 * envelope's flags. Client side, as bh_rpc_call() does it: an RpcReply, its status named, its body
 * unpacked as every method's response type.
 *
 * Nothing may crash, leak or read out of bounds. A zlib body must stop at the receive limit: an
 * independent inflate of the same bytes says how far the body really inflates, and
 * bh_rpc_body_unpack() must refuse (-EMSGSIZE) exactly the bodies that inflate past the limit and
 * accept none that are not a complete zlib stream.
 */
#include <errno.h>
#include <string.h>

#include <zlib.h>

#include "rpc_types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum inflated { INFLATED_UNKNOWN, INFLATED_FITS, INFLATED_OVER, INFLATED_BAD };

/* How a zlib stream inflates, with no output kept: fits within max bytes, goes over, or is not a
 * complete stream. Bytes after the end of the stream are ignored, as bh_rpc_body_unpack() does. */
static enum inflated inflate_measure(const uint8_t *in, size_t len, size_t max)
{
	static uint8_t out[64 << 10];
	z_stream zs = {0};
	enum inflated v;
	size_t total = 0;
	int rc;

	if (inflateInit(&zs) != Z_OK)
		FUZZ_FAIL("inflateInit failed");
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	for (;;) {
		zs.next_out = out;
		zs.avail_out = sizeof(out);
		rc = inflate(&zs, Z_NO_FLUSH);
		total += sizeof(out) - zs.avail_out;
		if (total > max) {
			v = INFLATED_OVER;
			break;
		}
		if (rc == Z_STREAM_END) {
			v = INFLATED_FITS;
			break;
		}
		if (rc != Z_OK) { /* corrupt, or Z_BUF_ERROR: the input ended mid-stream */
			v = INFLATED_BAD;
			break;
		}
	}
	inflateEnd(&zs);
	return v;
}

/* Unpacks body as type d with flags, as the server (request) or the client (reply) does, and
 * checks the answer against what the bytes are. *inflated caches inflate_measure() over calls
 * with the same body. Returns bh_rpc_body_unpack()'s result. */
static int body_check(const ProtobufCMessageDescriptor *d, const ProtobufCBinaryData *body,
		      uint32_t flags, enum inflated *inflated)
{
	ProtobufCMessage *m = NULL;
	int rc = bh_rpc_body_unpack(d, body->data, body->len, flags, FUZZ_BODY_MAX, &m);

	if (rc == 0)
		protobuf_c_message_free_unpacked(m, NULL);
	if (rc != 0 && rc != -EINVAL && rc != -EMSGSIZE)
		FUZZ_FAIL("%s: bh_rpc_body_unpack returned %d", d->name, rc);
	if (flags & ~(uint32_t)BULKHEAD__RPC_FLAG__RPC_FLAG_ZLIB) {
		if (rc != -EINVAL)
			FUZZ_FAIL("%s: unknown flags %#x accepted (%d)", d->name, flags, rc);
		return rc;
	}
	if (!(flags & BULKHEAD__RPC_FLAG__RPC_FLAG_ZLIB)) {
		if (rc == -EMSGSIZE)
			FUZZ_FAIL("%s: -EMSGSIZE for a plain body", d->name);
		return rc;
	}
	if (*inflated == INFLATED_UNKNOWN)
		*inflated = inflate_measure(body->data, body->len, FUZZ_BODY_MAX);
	if (*inflated == INFLATED_OVER && rc != -EMSGSIZE)
		FUZZ_FAIL("%s: a body inflating past %u bytes gave %d, not -EMSGSIZE", d->name,
			  FUZZ_BODY_MAX, rc);
	if (*inflated == INFLATED_FITS && rc == -EMSGSIZE)
		FUZZ_FAIL("%s: a body inflating within %u bytes refused as too large", d->name,
			  FUZZ_BODY_MAX);
	if (*inflated == INFLATED_BAD && rc == 0)
		FUZZ_FAIL("%s: a body that is not a complete zlib stream accepted", d->name);
	return rc;
}

/* The server's side: dispatch() in common/rpc_server.c. */
static void request_check(const uint8_t *data, size_t size)
{
	const ProtobufCServiceDescriptor *svc = NULL;
	const ProtobufCMethodDescriptor *md;
	enum inflated inflated = INFLATED_UNKNOWN;
	Bulkhead__RpcRequest *rq;

	rq = bulkhead__rpc_request__unpack(NULL, size, data);
	if (!rq)
		return;
	md = bh_rpc_method_find(fuzz_services, rq->method, &svc);
	if (md) {
		if (!svc || md < svc->methods || md >= svc->methods + svc->n_methods)
			FUZZ_FAIL("\"%s\": the method is not one of its service's", rq->method);
		body_check(md->input, &rq->body, rq->flags, &inflated);
	}
	bulkhead__rpc_request__free_unpacked(rq, NULL);
}

/* The client's side: the end of bh_rpc_call() in common/rpc_client.c, for every method. */
static void reply_check(const uint8_t *data, size_t size)
{
	static const ProtobufCMessageDescriptor *types[64];
	static size_t n;
	enum inflated inflated = INFLATED_UNKNOWN;
	Bulkhead__RpcReply *rep;

	if (!n)
		n = fuzz_rpc_types(FUZZ_RESPONSES, types, sizeof(types) / sizeof(types[0]));
	rep = bulkhead__rpc_reply__unpack(NULL, size, data);
	if (!rep)
		return;
	if (!bh_rpc_status_name((int)rep->status)[0])
		FUZZ_FAIL("status %d has an empty name", (int)rep->status);
	for (size_t i = 0; i < n; i++) {
		/* The body inflates the same whatever the type: once past the limit, the other
		 * types would only inflate the same megabyte again. */
		if (body_check(types[i], &rep->body, rep->flags, &inflated) == -EMSGSIZE)
			break;
	}
	bulkhead__rpc_reply__free_unpacked(rep, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	request_check(data, size);
	reply_check(data, size);
	return 0;
}
