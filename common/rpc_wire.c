// SPDX-License-Identifier: Apache-2.0
/* The parts of the RPC wire both sides share: method lookup, body packing with zlib. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "bulkhead/rpc.h"

const ProtobufCMethodDescriptor *bh_rpc_method_find(const ProtobufCServiceDescriptor *const *svcs,
						    const char *full, const ProtobufCServiceDescriptor **svc)
{
	const char *slash;
	size_t n;

	if (!full || full[0] != '/')
		return NULL;
	slash = strchr(full + 1, '/');
	if (!slash)
		return NULL;
	n = (size_t)(slash - full - 1);
	for (; *svcs; svcs++) {
		if (strlen((*svcs)->name) != n || memcmp((*svcs)->name, full + 1, n) != 0)
			continue;
		const ProtobufCMethodDescriptor *md =
			protobuf_c_service_descriptor_get_method_by_name(*svcs, slash + 1);

		if (md) {
			if (svc)
				*svc = *svcs;
			return md;
		}
	}
	return NULL;
}

int bh_rpc_body_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len, uint32_t *flags)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *raw = malloc(n ? n : 1), *z;
	uLongf zlen;

	if (!raw)
		return -ENOMEM;
	protobuf_c_message_pack(m, raw);
	*flags = 0;
	if (n <= BH_RPC_COMPRESS_OVER) {
		*out = raw;
		*len = n;
		return 0;
	}
	/* Try a sample first: random or already-compressed bodies (keys, certificates, packed
	 * ids) do not shrink, and deflating 64 KiB only to throw it away costs milliseconds on
	 * the loop thread. */
	{
		uLongf slen = compressBound(BH_RPC_COMPRESS_OVER);
		uint8_t *sample = malloc(slen);
		int ok = sample && compress2(sample, &slen, raw, BH_RPC_COMPRESS_OVER,
					     Z_BEST_SPEED) == Z_OK;

		free(sample);
		if (!ok || slen > BH_RPC_COMPRESS_OVER * 9 / 10) {
			*out = raw;
			*len = n;
			return 0;
		}
	}
	zlen = compressBound((uLong)n);
	z = malloc(zlen);
	if (z && compress2(z, &zlen, raw, (uLong)n, Z_BEST_SPEED) == Z_OK && zlen < n) {
		free(raw);
		*out = z;
		*len = zlen;
		*flags = BULKHEAD__RPC_FLAG__RPC_FLAG_ZLIB;
		return 0;
	}
	free(z);
	*out = raw;
	*len = n;
	return 0;
}

/* Inflates at most max bytes; -EMSGSIZE past that, -EINVAL on a corrupt stream. */
static int inflate_bounded(const uint8_t *in, size_t len, size_t max, uint8_t **out,
			   size_t *outlen)
{
	z_stream zs = {0};
	size_t cap = len * 4 < 4096 ? 4096 : len * 4, n = 0;
	uint8_t *buf;
	int rc, err = 0;

	if (cap > max)
		cap = max;
	buf = malloc(cap ? cap : 1);
	if (!buf || inflateInit(&zs) != Z_OK) {
		free(buf);
		return -ENOMEM;
	}
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	for (;;) {
		if (n == cap) {
			uint8_t *nb;

			if (cap >= max) {
				err = -EMSGSIZE;
				break;
			}
			cap = cap * 2 > max ? max : cap * 2;
			nb = realloc(buf, cap);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			buf = nb;
		}
		zs.next_out = buf + n;
		zs.avail_out = (uInt)(cap - n);
		rc = inflate(&zs, Z_NO_FLUSH);
		n = cap - zs.avail_out;
		if (rc == Z_STREAM_END)
			break;
		if (rc != Z_OK && !(rc == Z_BUF_ERROR && zs.avail_out == 0)) {
			err = -EINVAL;
			break;
		}
		if (zs.avail_in == 0 && zs.avail_out != 0) {
			err = -EINVAL; /* truncated stream */
			break;
		}
	}
	inflateEnd(&zs);
	if (err) {
		free(buf);
		return err;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

int bh_rpc_body_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
		       uint32_t flags, size_t max, ProtobufCMessage **out)
{
	uint8_t *plain = NULL;
	size_t plen = len;
	int rc;

	if (flags & ~(uint32_t)BULKHEAD__RPC_FLAG__RPC_FLAG_ZLIB)
		return -EINVAL;
	if (flags & BULKHEAD__RPC_FLAG__RPC_FLAG_ZLIB) {
		rc = inflate_bounded(buf, len, max, &plain, &plen);
		if (rc)
			return rc;
		buf = plain;
	}
	*out = protobuf_c_message_unpack(d, NULL, plen, buf);
	free(plain);
	return *out ? 0 : -EINVAL;
}

const char *bh_rpc_status_name(int status)
{
	static const char *const names[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
		"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
		"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
		"UNAUTHENTICATED",
	};

	return status >= 0 && (size_t)status < sizeof(names) / sizeof(names[0]) ? names[status]
										 : "UNKNOWN";
}
