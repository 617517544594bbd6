// SPDX-License-Identifier: Apache-2.0
/*
 * The OpenSSL TLS engine for NNG. NNG owns the sockets and calls the engine to handshake,
 * encrypt and decrypt; the engine moves ciphertext through nng_tls_engine_send/recv with a BIO of
 * its own. After a handshake it keeps the identity from the peer certificate OpenSSL verified.
 *
 * How the identity reaches a pipe: NNG answers NNG_OPT_TLS_VERIFIED on a pipe by calling the
 * engine's verified() for that pipe's connection, synchronously on the caller's thread. verified()
 * leaves a pointer to its connection's identity in a thread-local; bh_tls_pipe_identity() asks
 * the option and copies the identity. No message field is ever trusted for who the peer is.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdbool.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/engine.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bulkhead/log.h"
#include "bulkhead/tls.h"

struct nng_tls_engine_config {
	SSL_CTX *ctx;
	nng_tls_mode mode;
	char *server_name;
	bool verify;
};

struct nng_tls_engine_conn {
	void *nng;	/* NNG's handle for nng_tls_engine_send/recv */
	bool server;	/* a server logs refused peers; a client leaves it to its caller */
	SSL *ssl;
	bool done;	/* handshake finished */
	bool verified;	/* the peer's certificate verified */
	struct bh_identity peer;
};

static BIO_METHOD *bio_method;

/* The last handshake failure in this process, for "why am I not connected" messages. */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_failure[200];
static uint64_t last_failure_at;

static void note_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note_failure(const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&last_lock);
	va_start(ap, fmt);
	vsnprintf(last_failure, sizeof(last_failure), fmt, ap);
	va_end(ap);
	last_failure_at = (uint64_t)ts.tv_sec;
	pthread_mutex_unlock(&last_lock);
}

int bh_tls_last_failure(char *buf, size_t len, unsigned int within_s)
{
	struct timespec ts;
	int found;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&last_lock);
	found = last_failure[0] && (uint64_t)ts.tv_sec - last_failure_at <= within_s;
	if (found)
		snprintf(buf, len, "%s", last_failure);
	pthread_mutex_unlock(&last_lock);
	return found ? 0 : -ENOENT;
}
/* verified() copies its connection's identity here (a copy, not a pointer: the connection may be
 * reaped as soon as NNG lets go of it) for bh_tls_pipe_identity() on the same thread. */
static _Thread_local struct bh_identity verified_id;
static _Thread_local bool verified_set;

/* Revoked serials, refused in the verify callback. Sorted for bsearch. */
static pthread_rwlock_t revoked_lock = PTHREAD_RWLOCK_INITIALIZER;
static char **revoked;
static size_t n_revoked;

int bh_nng_errno(int e)
{
	switch (e) {
	case 0:
		return 0;
	case NNG_EINTR:
		return -EINTR;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
		return -EINVAL;
	case NNG_EBUSY:
		return -EBUSY;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECLOSED:
		return -EPIPE;
	case NNG_EAGAIN:
		return -EAGAIN;
	case NNG_ENOTSUP:
		return -ENOTSUP;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_ESTATE:
		return -EPROTO;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_EPROTO:
		return -EPROTO;
	case NNG_EUNREACHABLE:
		return -EHOSTUNREACH;
	case NNG_EADDRINVAL:
		return -EADDRNOTAVAIL;
	case NNG_EPERM:
		return -EPERM;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	case NNG_ECONNABORTED:
		return -ECONNABORTED;
	case NNG_ECONNRESET:
		return -ECONNRESET;
	case NNG_ECANCELED:
		return -ECANCELED;
	case NNG_ENOFILES:
		return -EMFILE;
	case NNG_ENOSPC:
		return -ENOSPC;
	case NNG_EEXIST:
		return -EEXIST;
	case NNG_EREADONLY:
	case NNG_EWRITEONLY:
		return -EACCES;
	case NNG_ECRYPTO:
		return -EBADMSG;
	case NNG_EPEERAUTH:
		return -EACCES;
	case NNG_ENOARG:
	case NNG_EAMBIGUOUS:
	case NNG_EBADTYPE:
		return -EINVAL;
	case NNG_ECONNSHUT:
		return -ESHUTDOWN;
	default:
		return -EIO;
	}
}

/* The OpenSSL error queue as one line, cleared. */
static const char *ssl_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t off = 0;

	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0 && off + 2 < len) {
		if (off)
			buf[off++] = ';', buf[off++] = ' ', buf[off] = '\0';
		ERR_error_string_n(e, buf + off, len - off);
		off = strlen(buf);
	}
	return buf[0] ? buf : "no OpenSSL error recorded";
}

/* ---- the BIO between OpenSSL and NNG ------------------------------------------------------- */

static int bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
	struct nng_tls_engine_conn *c = BIO_get_data(b);
	size_t n = len;
	int rv;

	BIO_clear_retry_flags(b);
	rv = nng_tls_engine_send(c->nng, (const uint8_t *)data, &n);
	if (rv == NNG_EAGAIN) {
		BIO_set_retry_write(b);
		return 0;
	}
	if (rv != 0)
		return 0;
	*written = n;
	return 1;
}

static int bio_read(BIO *b, char *data, size_t len, size_t *readbytes)
{
	struct nng_tls_engine_conn *c = BIO_get_data(b);
	size_t n = len;
	int rv;

	BIO_clear_retry_flags(b);
	rv = nng_tls_engine_recv(c->nng, (uint8_t *)data, &n);
	if (rv == NNG_EAGAIN) {
		BIO_set_retry_read(b);
		return 0;
	}
	if (rv != 0 || n == 0)
		return 0;
	*readbytes = n;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b, (void)num, (void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

/* ---- verification -------------------------------------------------------------------------- */

static int serial_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Serials compare as lower-case hex without leading zeros (BN_bn2hex pads to whole bytes).
 * Normalises s in place and returns where it starts. */
static char *serial_normalise(char *s)
{
	for (char *p = s; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
	while (s[0] == '0' && s[1])
		s++;
	return s;
}

int bh_tls_set_revoked(const char *const *serials, size_t n)
{
	char **nr = n ? calloc(n, sizeof(*nr)) : NULL;
	char **old;
	size_t old_n;

	if (n && !nr)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char *norm = strdup(serials[i]);

		nr[i] = norm ? strdup(serial_normalise(norm)) : NULL;
		free(norm);
		if (!nr[i]) {
			while (i--)
				free(nr[i]);
			free(nr);
			return -ENOMEM;
		}
	}
	if (n)
		qsort(nr, n, sizeof(*nr), serial_cmp);
	pthread_rwlock_wrlock(&revoked_lock);
	old = revoked;
	old_n = n_revoked;
	revoked = nr;
	n_revoked = n;
	pthread_rwlock_unlock(&revoked_lock);
	for (size_t i = 0; i < old_n; i++)
		free(old[i]);
	free(old);
	return 0;
}

static bool serial_revoked(const ASN1_INTEGER *serial)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	bool found = false;

	if (hex) {
		char *key = serial_normalise(hex);

		pthread_rwlock_rdlock(&revoked_lock);
		found = n_revoked && bsearch(&key, revoked, n_revoked, sizeof(*revoked), serial_cmp);
		pthread_rwlock_unlock(&revoked_lock);
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return found;
}

static int verify_cb(int ok, X509_STORE_CTX *sctx)
{
	X509 *cert = X509_STORE_CTX_get_current_cert(sctx);

	if (ok && cert && X509_STORE_CTX_get_error_depth(sctx) == 0 &&
	    serial_revoked(X509_get0_serialNumber(cert))) {
		X509_STORE_CTX_set_error(sctx, X509_V_ERR_CERT_REVOKED);
		return 0;
	}
	return ok;
}

/* ---- config ops ---------------------------------------------------------------------------- */

static int cfg_init(struct nng_tls_engine_config *cfg, nng_tls_mode mode)
{
	cfg->mode = mode;
	cfg->ctx = SSL_CTX_new(mode == NNG_TLS_MODE_SERVER ? TLS_server_method()
							   : TLS_client_method());
	if (!cfg->ctx)
		return NNG_ENOMEM;
	/* TLS 1.3 only, P-256, ECDSA with SHA-256: one well-understood suite of choices. */
	SSL_CTX_set_min_proto_version(cfg->ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(cfg->ctx, TLS1_3_VERSION);
	SSL_CTX_set1_groups_list(cfg->ctx, "P-256");
	SSL_CTX_set1_sigalgs_list(cfg->ctx, "ECDSA+SHA256");
	SSL_CTX_set_options(cfg->ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(cfg->ctx, SSL_SESS_CACHE_OFF);
	/* NNG's defaults: a client verifies the server, a server does not ask for a certificate. */
	cfg->verify = mode == NNG_TLS_MODE_CLIENT;
	SSL_CTX_set_verify(cfg->ctx, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, verify_cb);
	return 0;
}

static void cfg_fini(struct nng_tls_engine_config *cfg)
{
	SSL_CTX_free(cfg->ctx);
	free(cfg->server_name);
}

static int cfg_server(struct nng_tls_engine_config *cfg, const char *name)
{
	char *dup = strdup(name);

	if (!dup)
		return NNG_ENOMEM;
	free(cfg->server_name);
	cfg->server_name = dup;
	return 0;
}

static int cfg_auth(struct nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
	int flags;

	switch (mode) {
	case NNG_TLS_AUTH_MODE_NONE:
		flags = SSL_VERIFY_NONE;
		break;
	case NNG_TLS_AUTH_MODE_OPTIONAL:
		flags = SSL_VERIFY_PEER;
		break;
	case NNG_TLS_AUTH_MODE_REQUIRED:
		flags = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		break;
	default:
		return NNG_EINVAL;
	}
	cfg->verify = mode != NNG_TLS_AUTH_MODE_NONE;
	SSL_CTX_set_verify(cfg->ctx, flags, verify_cb);
	return 0;
}

static int cfg_ca_chain(struct nng_tls_engine_config *cfg, const char *certs, const char *crl)
{
	X509_STORE *store = SSL_CTX_get_cert_store(cfg->ctx);
	BIO *bio = BIO_new_mem_buf(certs, -1);
	X509 *x;
	int n = 0;
	char e[256];

	if (!bio)
		return NNG_ENOMEM;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		X509_STORE_add_cert(store, x);
		X509_free(x);
		n++;
	}
	BIO_free(bio);
	ERR_clear_error();
	if (n == 0) {
		bh_log(LOG_ERR, "tls: no certificate in the CA chain");
		return NNG_EINVAL;
	}
	if (crl && *crl) {
		X509_CRL *c;

		bio = BIO_new_mem_buf(crl, -1);
		c = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		if (!c) {
			bh_log(LOG_ERR, "tls: bad CRL: %s", ssl_errors(e, sizeof(e)));
			return NNG_EINVAL;
		}
		X509_STORE_add_crl(store, c);
		X509_CRL_free(c);
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	return 0;
}

static int cfg_own_cert(struct nng_tls_engine_config *cfg, const char *cert, const char *key,
			const char *pass)
{
	BIO *bio = BIO_new_mem_buf(cert, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	EVP_PKEY *pk = NULL;
	int rv = NNG_EINVAL;
	char e[256];

	if (!x)
		goto out;
	if (SSL_CTX_use_certificate(cfg->ctx, x) != 1)
		goto out;
	/* the rest of the PEM is the chain to present */
	SSL_CTX_clear_chain_certs(cfg->ctx);
	for (X509 *extra; (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL;)
		SSL_CTX_add0_chain_cert(cfg->ctx, extra);
	ERR_clear_error();
	BIO_free(bio);
	bio = BIO_new_mem_buf(key, -1);
	pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)pass) : NULL;
	if (!pk || SSL_CTX_use_PrivateKey(cfg->ctx, pk) != 1 || SSL_CTX_check_private_key(cfg->ctx) != 1)
		goto out;
	rv = 0;
out:
	if (rv)
		bh_log(LOG_ERR, "tls: own certificate or key rejected: %s", ssl_errors(e, sizeof(e)));
	EVP_PKEY_free(pk);
	X509_free(x);
	BIO_free(bio);
	return rv;
}

static int cfg_version(struct nng_tls_engine_config *cfg, nng_tls_version min, nng_tls_version max)
{
	(void)cfg, (void)min;
	/* Only TLS 1.3 is offered; a range that excludes it cannot be served. */
	return max < NNG_TLS_1_3 ? NNG_ENOTSUP : 0;
}

/* ---- connection ops ------------------------------------------------------------------------ */

static int conn_init(struct nng_tls_engine_conn *c, void *nng, struct nng_tls_engine_config *cfg)
{
	BIO *bio;

	c->nng = nng;
	c->server = cfg->mode == NNG_TLS_MODE_SERVER;
	c->ssl = SSL_new(cfg->ctx);
	bio = BIO_new(bio_method);
	if (!c->ssl || !bio) {
		BIO_free(bio);
		return NNG_ENOMEM;
	}
	BIO_set_data(bio, c);
	BIO_set_init(bio, 1);
	SSL_set_bio(c->ssl, bio, bio);
	/* an idle connection (a held Watch) gives its read and write buffers back: about 11 KiB
	 * per agent on the controller (tests/bench/fanout.sh) */
	SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	if (cfg->mode == NNG_TLS_MODE_CLIENT) {
		SSL_set_connect_state(c->ssl);
		if (cfg->server_name && *cfg->server_name) {
			unsigned char ip[16];
			bool is_ip = inet_pton(AF_INET, cfg->server_name, ip) == 1 ||
				     inet_pton(AF_INET6, cfg->server_name, ip) == 1;
			X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);

			if (is_ip) {
				X509_VERIFY_PARAM_set1_ip_asc(vp, cfg->server_name);
			} else {
				SSL_set_tlsext_host_name(c->ssl, cfg->server_name);
				X509_VERIFY_PARAM_set1_host(vp, cfg->server_name, 0);
			}
		}
	} else {
		SSL_set_accept_state(c->ssl);
	}
	return 0;
}

static void conn_fini(struct nng_tls_engine_conn *c)
{
	SSL_free(c->ssl);
}

static void conn_close(struct nng_tls_engine_conn *c)
{
	if (c->done) {
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		/* a close_notify that cannot go out is not an error anyone will read: leave the
		 * thread's queue clean for the next connection it serves */
		ERR_clear_error();
	}
}

static void conn_peer(struct nng_tls_engine_conn *c)
{
	X509 *x = SSL_get0_peer_certificate(c->ssl);
	struct bh_error err = {0};
	BIO *mem;
	char *pem = NULL;
	long len;

	c->verified = x && SSL_get_verify_result(c->ssl) == X509_V_OK;
	if (!c->verified)
		return;
	mem = BIO_new(BIO_s_mem());
	if (!mem || PEM_write_bio_X509(mem, x) != 1) {
		c->verified = false;
		BIO_free(mem);
		return;
	}
	len = BIO_get_mem_data(mem, &pem);
	{
		char *s = malloc((size_t)len + 1);

		if (s) {
			memcpy(s, pem, (size_t)len);
			s[len] = '\0';
			if (bh_pki_identity(s, &c->peer, &err) < 0) {
				bh_log(LOG_WARNING, "tls: verified peer certificate unreadable: %s",
				       err.msg);
				c->verified = false;
			}
			free(s);
		} else {
			c->verified = false;
		}
	}
	BIO_free(mem);
}

static int ssl_result(struct nng_tls_engine_conn *c, int r, const char *what)
{
	char e[256];
	int code = SSL_get_error(c->ssl, r);

	switch (code) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return NNG_EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return NNG_ECLOSED;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return NNG_ECONNSHUT;
	default: {
		long vr = SSL_get_verify_result(c->ssl);

		if (!c->done && vr != X509_V_OK) {
			bh_log(c->server ? LOG_NOTICE : LOG_INFO, "tls: %s refused: peer certificate: %s", what,
			       X509_verify_cert_error_string(vr));
			note_failure("the peer's certificate was refused: %s",
				     X509_verify_cert_error_string(vr));
			ERR_clear_error();
			return NNG_EPEERAUTH;
		}
		ssl_errors(e, sizeof(e));
		bh_log(c->server ? LOG_NOTICE : LOG_INFO, "tls: %s failed: %s", what, e);
		/* "error:0A000414:SSL routines::sslv3 alert certificate revoked": keep the reason */
		note_failure("TLS %s failed: %s", what,
			     strrchr(e, ':') ? strrchr(e, ':') + 1 : e);
		return NNG_ECRYPTO;
	}
	}
}

/*
 * Every SSL_* call below starts from an empty error queue. SSL_get_error() looks at the calling
 * thread's whole queue: an entry left by another connection this NNG thread served earlier
 * (a failed handshake, a close_notify during init) would turn this connection's harmless
 * WANT_READ into a fatal error and reset a healthy connection.
 */
static int conn_handshake(struct nng_tls_engine_conn *c)
{
	int r;

	if (c->done)
		return 0;
	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r != 1)
		return ssl_result(c, r, "handshake");
	c->done = true;
	conn_peer(c);
	return 0;
}

static int conn_recv(struct nng_tls_engine_conn *c, uint8_t *buf, size_t *len)
{
	size_t n = 0;
	int r;

	ERR_clear_error();
	r = SSL_read_ex(c->ssl, buf, *len, &n);

	if (r != 1)
		return ssl_result(c, r, "receive");
	*len = n;
	return 0;
}

static int conn_send(struct nng_tls_engine_conn *c, const uint8_t *buf, size_t *len)
{
	size_t n = 0;
	int r;

	ERR_clear_error();
	r = SSL_write_ex(c->ssl, buf, *len, &n);

	if (r != 1)
		return ssl_result(c, r, "send");
	*len = n;
	return 0;
}

static bool conn_verified(struct nng_tls_engine_conn *c)
{
	verified_set = c->verified;
	if (c->verified)
		verified_id = c->peer;
	return c->verified;
}

static nng_tls_engine_config_ops config_ops = {
	.size = sizeof(struct nng_tls_engine_config),
	.init = cfg_init,
	.fini = cfg_fini,
	.server = cfg_server,
	.auth = cfg_auth,
	.ca_chain = cfg_ca_chain,
	.own_cert = cfg_own_cert,
	.version = cfg_version,
};

static nng_tls_engine_conn_ops conn_ops = {
	.size = sizeof(struct nng_tls_engine_conn),
	.init = conn_init,
	.fini = conn_fini,
	.close = conn_close,
	.handshake = conn_handshake,
	.recv = conn_recv,
	.send = conn_send,
	.verified = conn_verified,
};

static nng_tls_engine engine = {
	.version = NNG_TLS_ENGINE_VERSION,
	.config_ops = &config_ops,
	.conn_ops = &conn_ops,
	.name = "bulkhead-openssl",
	.description = "OpenSSL " OPENSSL_VERSION_STR " (TLS 1.3, P-256) for Bulkhead",
	.fips_mode = false,
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void do_init(void)
{
	nng_tls_config *probe = NULL;
	int rv;

	bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nng");
	if (!bio_method || !BIO_meth_set_write_ex(bio_method, bio_write) ||
	    !BIO_meth_set_read_ex(bio_method, bio_read) || !BIO_meth_set_ctrl(bio_method, bio_ctrl)) {
		init_rc = -ENOMEM;
		return;
	}
	/* NNG registers its built-in engine while it initialises itself: make that happen first
	 * (allocating a configuration does), so that ours replaces it for good. */
	if (nng_tls_config_alloc(&probe, NNG_TLS_MODE_CLIENT) == 0)
		nng_tls_config_free(probe);
	rv = nng_tls_engine_register(&engine);
	if (rv) {
		init_rc = bh_nng_errno(rv);
		return;
	}
	if (strcmp(nng_tls_engine_name(), engine.name) != 0)
		init_rc = -ENOTSUP;
}

int bh_tls_init(struct bh_error *err)
{
	pthread_once(&init_once, do_init);
	if (init_rc)
		return bh_error_set(err, init_rc, "registering the OpenSSL TLS engine with NNG: %s",
				    bh_strerror(init_rc));
	return 0;
}

/* ---- configurations and identities --------------------------------------------------------- */

int bh_tls_config_create(nng_tls_config **out, nng_tls_mode mode, const struct bh_tls_opts *o,
			 struct bh_error *err)
{
	nng_tls_config *cfg = NULL;
	int rv;

	rv = bh_tls_init(err);
	if (rv)
		return rv;
	rv = nng_tls_config_alloc(&cfg, mode);
	if (rv)
		return bh_error_set(err, bh_nng_errno(rv), "TLS configuration: %s",
				    nng_strerror(rv));
	if (o->ca_pem && (rv = nng_tls_config_ca_chain(cfg, o->ca_pem, NULL))) {
		bh_error_set(err, -EINVAL, "TLS: the CA certificate is not usable PEM");
		goto fail;
	}
	if (o->cert_pem && (rv = nng_tls_config_own_cert(cfg, o->cert_pem, o->key_pem, NULL))) {
		bh_error_set(err, -EINVAL,
			     "TLS: our certificate or key is not usable (or they do not match)");
		goto fail;
	}
	if (mode == NNG_TLS_MODE_SERVER) {
		rv = nng_tls_config_auth_mode(cfg, o->require_client_cert
							   ? NNG_TLS_AUTH_MODE_REQUIRED
							   : NNG_TLS_AUTH_MODE_NONE);
	} else {
		rv = nng_tls_config_auth_mode(cfg, o->verify_peer ? NNG_TLS_AUTH_MODE_REQUIRED
								  : NNG_TLS_AUTH_MODE_NONE);
		if (!rv && o->server_name)
			rv = nng_tls_config_server_name(cfg, o->server_name);
	}
	if (rv) {
		bh_error_set(err, bh_nng_errno(rv), "TLS configuration: %s", nng_strerror(rv));
		goto fail;
	}
	*out = cfg;
	return 0;
fail:
	nng_tls_config_free(cfg);
	return err && err->code ? err->code : -EINVAL;
}

int bh_tls_pipe_identity(nng_pipe p, struct bh_identity *id)
{
	bool v = false;

	verified_set = false;
	if (nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &v) != 0 || !v || !verified_set)
		return -ENOENT;
	*id = verified_id;
	verified_set = false;
	return 0;
}
