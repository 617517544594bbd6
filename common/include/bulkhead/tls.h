/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS for NNG, done by OpenSSL. Debian's NNG 1.5.2 is built with mbedTLS and cannot tell the
 * application who the peer of a pipe is; bh_tls_init() registers an OpenSSL-backed engine through
 * <nng/supplemental/tls/engine.h> instead, so that OpenSSL does every handshake (TLS 1.3 only,
 * ECDSA P-256) and the certificate it verified reaches the pipe: bh_tls_pipe_identity().
 */
#ifndef BULKHEAD_TLS_H
#define BULKHEAD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "bulkhead/error.h"
#include "bulkhead/pki.h"

/* Registers the engine. Call once, before any TLS socket is set up. Idempotent. */
int bh_tls_init(struct bh_error *err);

struct bh_tls_opts {
	const char *ca_pem;	 /* trust anchor (PEM); NULL with verify_peer false only */
	const char *cert_pem;	 /* our certificate (and chain), or NULL */
	const char *key_pem;	 /* its private key, or NULL */
	const char *server_name; /* client: the name or address the server's certificate must carry */
	bool verify_peer;	 /* client: verify the server (false only to fetch a CA to pin) */
	bool require_client_cert; /* server: mutual TLS */
};

/* Creates an NNG TLS configuration (server or client mode) backed by the OpenSSL engine. On
 * success the caller owns *out (nng_tls_config_free). */
int bh_tls_config_create(nng_tls_config **out, nng_tls_mode mode, const struct bh_tls_opts *o,
			 struct bh_error *err);

/* Replaces the set of revoked certificate serials (hex) refused at every later handshake. Thread
 * safe. Returns 0 or -ENOMEM. */
int bh_tls_set_revoked(const char *const *serials, size_t n);

/* The identity the engine verified on pipe p's connection. Returns 0, or -ENOENT if the pipe is
 * not TLS or its peer presented no verified certificate. Call from a pipe callback or any thread. */
int bh_tls_pipe_identity(nng_pipe p, struct bh_identity *id);

/* The last TLS handshake failure seen in this process within the last within_s seconds (what the
 * peer's alert or our verification said), for messages that explain a missing connection.
 * Returns 0, or -ENOENT if there was none. */
int bh_tls_last_failure(char *buf, size_t len, unsigned int within_s);

/* Maps an NNG error code to a negative errno (the one place this is done). */
int bh_nng_errno(int nng_err);

#endif
