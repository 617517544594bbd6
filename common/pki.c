// SPDX-License-Identifier: Apache-2.0
/*
 * PKI with OpenSSL 3: EC P-256 keys, the CA, CSRs, issued certificates carrying a Bulkhead
 * identity, fingerprints, verification against the CA with a revoked-serial list, CRLs, and the
 * atomic 0600 file writer for keys and certificates. Contracts are in bulkhead/pki.h.
 *
 * Only OpenSSL 3 APIs (EVP_PKEY, X509*, X509_STORE_CTX); no deprecated EC_KEY. OpenSSL's error
 * queue is turned into a bh_error message in one place, pki_fail(), which also clears it: every
 * public function leaves the thread's queue empty, because a stale entry would be blamed on the
 * next TLS call (SSL_get_error() reads the same queue).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bulkhead/pki.h"

#define CLOCK_SKEW_S   300	  /* issued not_before is backdated up to this much */
#define SERIAL_BITS    128	  /* random serial size */
#define SERIAL_HEX_MAX 40	  /* RFC 5280: serials are at most 20 octets */
#define DAYS_MAX       36500u	  /* a century: anything longer is a typo */
#define DNS_NAME_MAX   253	  /* longest DNS name in a subjectAltName */
#define SUBJECT_O      "bulkhead" /* subject O of every Bulkhead certificate */

/* ---------------------------------------------------------------- errors */

/*
 * The one place OpenSSL's error queue becomes a message: formats the caller's cause, appends the
 * earliest queued OpenSSL error (the root cause; later entries are the callers that gave up), and
 * empties the queue. An allocation failure anywhere in the queue turns code into -ENOMEM. Returns
 * the code, like bh_error_set().
 */
static int pki_fail(struct bh_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int pki_fail(struct bh_error *err, int code, const char *fmt, ...)
{
	char cause[256], ossl[256] = "";
	unsigned long e, first = 0;
	va_list ap;

	while ((e = ERR_get_error()) != 0) {
		if (!first)
			first = e;
		if (!ERR_SYSTEM_ERROR(e) && ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
			code = -ENOMEM;
	}
	if (first)
		ERR_error_string_n(first, ossl, sizeof(ossl));
	va_start(ap, fmt);
	vsnprintf(cause, sizeof(cause), fmt, ap);
	va_end(ap);
	if (first)
		return bh_error_set(err, code, "%s: %s", cause, ossl);
	return bh_error_set(err, code, "%s", cause);
}

/* ---------------------------------------------------------------- names and roles */

static const char *const role_names[] = {
	[BH_ROLE_NONE] = "none",
	[BH_ROLE_AGENT] = "agent",
	[BH_ROLE_OPERATOR] = "operator",
	[BH_ROLE_CONTROLLER] = "controller",
};

const char *bh_role_name(enum bh_role role)
{
	if ((unsigned int)role >= sizeof(role_names) / sizeof(role_names[0]))
		return "none";
	return role_names[role];
}

enum bh_role bh_role_parse(const char *name)
{
	if (!name)
		return BH_ROLE_NONE;
	for (unsigned int r = BH_ROLE_AGENT; r <= BH_ROLE_CONTROLLER; r++)
		if (strcmp(name, role_names[r]) == 0)
			return (enum bh_role)r;
	return BH_ROLE_NONE;
}

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool bh_name_valid(const char *name)
{
	size_t len;

	if (!name)
		return false;
	len = strnlen(name, BH_NAME_MAX + 1);
	if (len == 0 || len > BH_NAME_MAX)
		return false;
	if (!lower_alnum(name[0]) || !lower_alnum(name[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!lower_alnum(name[i]) && name[i] != '.' && name[i] != '-')
			return false;
	return true;
}

/* A subjectAltName DNS entry: 1..253 of [A-Za-z0-9.-], not starting with '.' or '-'. */
static bool dns_name_valid(const char *name)
{
	size_t len = strnlen(name, DNS_NAME_MAX + 1);

	if (len == 0 || len > DNS_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '.' && name[i] != '-')
			return false;
	return true;
}

/* ---------------------------------------------------------------- PEM in and out */

/* Never prompts on a terminal for an encrypted key: our keys are unencrypted, anything else
 * fails to load. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static BIO *pem_bio(const char *pem)
{
	return BIO_new_mem_buf(pem, -1);
}

static int load_key(const char *pem, const char *what, EVP_PKEY **out, struct bh_error *err)
{
	BIO *bio;

	if (!pem)
		return bh_error_set(err, -EINVAL, "%s: no PEM given", what);
	bio = pem_bio(pem);
	if (!bio)
		return pki_fail(err, -ENOMEM, "%s: cannot read PEM", what);
	*out = PEM_read_bio_PrivateKey_ex(bio, NULL, no_password, NULL, NULL, NULL);
	BIO_free(bio);
	if (!*out)
		return pki_fail(err, -EBADMSG, "%s is not a PEM private key", what);
	return 0;
}

static int load_cert(const char *pem, const char *what, X509 **out, struct bh_error *err)
{
	BIO *bio;

	if (!pem)
		return bh_error_set(err, -EINVAL, "%s: no PEM given", what);
	bio = pem_bio(pem);
	if (!bio)
		return pki_fail(err, -ENOMEM, "%s: cannot read PEM", what);
	*out = PEM_read_bio_X509(bio, NULL, no_password, NULL);
	BIO_free(bio);
	if (!*out)
		return pki_fail(err, -EBADMSG, "%s is not a PEM certificate", what);
	return 0;
}

static int load_csr(const char *pem, X509_REQ **out, struct bh_error *err)
{
	BIO *bio;

	if (!pem)
		return bh_error_set(err, -EINVAL, "CSR: no PEM given");
	bio = pem_bio(pem);
	if (!bio)
		return pki_fail(err, -ENOMEM, "CSR: cannot read PEM");
	*out = PEM_read_bio_X509_REQ(bio, NULL, no_password, NULL);
	BIO_free(bio);
	if (!*out)
		return pki_fail(err, -EBADMSG, "CSR is not a PEM certificate request");
	return 0;
}

/* Copies what bio holds into a malloc'd NUL-terminated string the caller owns. */
static int bio_to_string(BIO *bio, char **out, struct bh_error *err)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	char *s;

	if (len <= 0)
		return pki_fail(err, -EIO, "PEM encoding produced nothing");
	s = malloc((size_t)len + 1);
	if (!s)
		return bh_error_set(err, -ENOMEM, "out of memory for %ld bytes of PEM", len);
	memcpy(s, data, (size_t)len);
	s[len] = '\0';
	*out = s;
	return 0;
}

/* The PEM writers differ only in what they write; this runs one into a string. */
enum pem_kind { PEM_KEY, PEM_CERT, PEM_CSR, PEM_CRL };

static int pem_encode(enum pem_kind kind, void *obj, char **out, struct bh_error *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int ok = 0, r;

	if (!bio)
		return pki_fail(err, -ENOMEM, "cannot allocate a memory BIO");
	switch (kind) {
	case PEM_KEY: /* PKCS#8, unencrypted ("BEGIN PRIVATE KEY") */
		ok = PEM_write_bio_PrivateKey(bio, obj, NULL, NULL, 0, NULL, NULL);
		break;
	case PEM_CERT:
		ok = PEM_write_bio_X509(bio, obj);
		break;
	case PEM_CSR:
		ok = PEM_write_bio_X509_REQ(bio, obj);
		break;
	case PEM_CRL:
		ok = PEM_write_bio_X509_CRL(bio, obj);
		break;
	}
	if (!ok) {
		BIO_free(bio);
		return pki_fail(err, -EIO, "cannot PEM-encode");
	}
	r = bio_to_string(bio, out, err);
	BIO_free(bio);
	return r;
}

/* ---------------------------------------------------------------- keys */

/* 0 if pkey is an EC key on P-256; else -EKEYREJECTED naming what it is. */
static int check_p256(EVP_PKEY *pkey, const char *what, struct bh_error *err)
{
	char group[64] = "";
	size_t glen = 0;
	const char *type = EVP_PKEY_get0_type_name(pkey);

	if (!EVP_PKEY_is_a(pkey, "EC")) {
		ERR_clear_error();
		return bh_error_set(err, -EKEYREJECTED, "%s is %s-%d, not EC P-256", what,
				    type ? type : "an unknown key type", EVP_PKEY_get_bits(pkey));
	}
	if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) ||
	    OBJ_sn2nid(group) != NID_X9_62_prime256v1) {
		ERR_clear_error();
		return bh_error_set(err, -EKEYREJECTED, "%s is EC on curve \"%s\", not P-256", what,
				    group[0] ? group : "explicit parameters");
	}
	return 0;
}

int bh_pki_key_generate(char **key_pem, struct bh_error *err)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	int r;

	if (!pkey)
		return pki_fail(err, -EIO, "cannot generate an EC P-256 key");
	r = pem_encode(PEM_KEY, pkey, key_pem, err);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return r;
}

bool bh_pki_key_matches(const char *key_pem, const char *cert_pem)
{
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	bool match = false;

	if (load_key(key_pem, "key", &pkey, NULL) ||
	    load_cert(cert_pem, "certificate", &cert, NULL))
		goto out;
	match = X509_check_private_key(cert, pkey) == 1;
out:
	X509_free(cert);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return match;
}

/* ---------------------------------------------------------------- serials and times */

/* A random positive serial of SERIAL_BITS bits, never zero. */
static int serial_random(ASN1_INTEGER **out, struct bh_error *err)
{
	BIGNUM *bn = BN_new();
	int r = 0;

	if (!bn)
		return pki_fail(err, -ENOMEM, "cannot allocate a serial");
	do {
		if (!BN_rand(bn, SERIAL_BITS, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY)) {
			r = pki_fail(err, -EIO, "cannot draw a random serial");
			goto out;
		}
	} while (BN_is_zero(bn));
	*out = BN_to_ASN1_INTEGER(bn, NULL);
	if (!*out)
		r = pki_fail(err, -ENOMEM, "cannot encode a serial");
out:
	BN_free(bn);
	return r;
}

/* Formats serial as lower-case hex without leading zeros into out (41 bytes). */
static int serial_hex(const ASN1_INTEGER *serial, char out[SERIAL_HEX_MAX + 1],
		      struct bh_error *err)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *hex = NULL;
	int r = 0;

	if (!bn || !(hex = BN_bn2hex(bn))) {
		r = pki_fail(err, -ENOMEM, "cannot format a serial");
		goto out;
	}
	if (hex[0] == '-' || strlen(hex) > SERIAL_HEX_MAX) {
		r = bh_error_set(err, -EBADMSG,
				 "certificate serial %s is negative or longer than 20 octets", hex);
		goto out;
	}
	for (char *p = hex; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	/* BN_bn2hex() pads to whole bytes ("0a1b"); the contract says no leading zeros. */
	{
		const char *p = hex;

		while (p[0] == '0' && p[1])
			p++;
		memcpy(out, p, strlen(p) + 1);
	}
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return r;
}

/* Parses a serial as written by serial_hex() (any case, leading zeros tolerated). */
static int serial_parse(const char *hex, BIGNUM **out, struct bh_error *err)
{
	size_t len = hex ? strnlen(hex, SERIAL_HEX_MAX + 1) : 0;

	if (len == 0 || len > SERIAL_HEX_MAX)
		goto bad;
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)hex[i]))
			goto bad;
	*out = NULL;
	if (BN_hex2bn(out, hex) != (int)len) {
		BN_free(*out);
		return pki_fail(err, -ENOMEM, "cannot parse serial %s", hex);
	}
	return 0;
bad:
	return bh_error_set(err, -EINVAL, "serial \"%.48s\" is not 1..40 hex digits",
			    hex ? hex : "(null)");
}

static int asn1_time_to_unix(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -EBADMSG;
	*out = timegm(&tm);
	return 0;
}

/* Sets the validity window of x. */
static int set_validity(X509 *x, time_t not_before, time_t not_after, struct bh_error *err)
{
	if (!ASN1_TIME_set(X509_getm_notBefore(x), not_before) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), not_after))
		return pki_fail(err, -EINVAL, "cannot encode validity %lld..%lld",
				(long long)not_before, (long long)not_after);
	return 0;
}

/* ---------------------------------------------------------------- certificates */

/* Appends entry=value (UTF-8) to name. */
static int name_add(X509_NAME *name, const char *entry, const char *value, struct bh_error *err)
{
	if (!X509_NAME_add_entry_by_txt(name, entry, MBSTRING_UTF8, (const unsigned char *)value,
					-1, -1, 0))
		return pki_fail(err, -EINVAL, "cannot set subject %s=\"%s\"", entry, value);
	return 0;
}

/* Adds the extension nid with an OpenSSL config value. ctx names issuer and subject. Values are
 * constants of this file only: nothing from a request ever goes through the config parser. */
static int ext_add(X509 *x, X509V3_CTX *ctx, int nid, const char *value, struct bh_error *err)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	int ok;

	if (!ext)
		return pki_fail(err, -EINVAL, "cannot build extension %s=%s", OBJ_nid2sn(nid),
				value);
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ok)
		return pki_fail(err, -ENOMEM, "cannot add extension %s", OBJ_nid2sn(nid));
	return 0;
}

/* Builds subjectAltName from what->dns and what->ips directly as GENERAL_NAMEs, so that a value
 * like "a,IP:0.0.0.0" is rejected rather than parsed as two entries. */
static int san_add(X509 *x, const struct bh_issue *what, struct bh_error *err)
{
	GENERAL_NAMES *names = NULL;
	GENERAL_NAME *gn = NULL;
	int r = 0;

	if ((!what->dns || !what->dns[0]) && (!what->ips || !what->ips[0]))
		return 0;
	names = sk_GENERAL_NAME_new_null();
	if (!names)
		return pki_fail(err, -ENOMEM, "cannot allocate subjectAltName");
	for (size_t i = 0; what->dns && what->dns[i]; i++) {
		ASN1_IA5STRING *s;

		if (!dns_name_valid(what->dns[i])) {
			r = bh_error_set(err, -EINVAL,
					 "subjectAltName DNS \"%.64s\" is not a host name",
					 what->dns[i]);
			goto out;
		}
		gn = GENERAL_NAME_new();
		s = ASN1_IA5STRING_new();
		if (!gn || !s || !ASN1_STRING_set(s, what->dns[i], -1)) {
			ASN1_IA5STRING_free(s);
			r = pki_fail(err, -ENOMEM, "cannot build subjectAltName DNS");
			goto out;
		}
		GENERAL_NAME_set0_value(gn, GEN_DNS, s);
		if (!sk_GENERAL_NAME_push(names, gn)) {
			r = pki_fail(err, -ENOMEM, "cannot build subjectAltName");
			goto out;
		}
		gn = NULL;
	}
	for (size_t i = 0; what->ips && what->ips[i]; i++) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(what->ips[i]);

		if (!ip) {
			ERR_clear_error();
			r = bh_error_set(
				err, -EINVAL,
				"subjectAltName IP \"%.64s\" is not an IPv4 or IPv6 address",
				what->ips[i]);
			goto out;
		}
		gn = GENERAL_NAME_new();
		if (!gn) {
			ASN1_OCTET_STRING_free(ip);
			r = pki_fail(err, -ENOMEM, "cannot build subjectAltName IP");
			goto out;
		}
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		if (!sk_GENERAL_NAME_push(names, gn)) {
			r = pki_fail(err, -ENOMEM, "cannot build subjectAltName");
			goto out;
		}
		gn = NULL;
	}
	if (!X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT))
		r = pki_fail(err, -ENOMEM, "cannot add subjectAltName");
out:
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(names);
	return r;
}

/* Loads the CA certificate and key and checks that they belong together. */
static int load_ca(const char *ca_cert_pem, const char *ca_key_pem, X509 **ca, EVP_PKEY **key,
		   struct bh_error *err)
{
	int r;

	*ca = NULL;
	*key = NULL;
	r = load_cert(ca_cert_pem, "CA certificate", ca, err);
	if (!r)
		r = load_key(ca_key_pem, "CA key", key, err);
	if (!r && X509_check_private_key(*ca, *key) != 1)
		r = pki_fail(err, -EINVAL, "CA key is not the key of the CA certificate");
	if (r) {
		X509_free(*ca);
		EVP_PKEY_free(*key);
		*ca = NULL;
		*key = NULL;
	}
	return r;
}

int bh_pki_ca_create(const char *key_pem, const char *common_name, unsigned int days,
		     char **cert_pem, struct bh_error *err)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	ASN1_INTEGER *serial = NULL;
	X509_NAME *name;
	X509V3_CTX ctx;
	time_t now = time(NULL);
	int r;

	if (!common_name || !*common_name || strlen(common_name) > BH_NAME_MAX)
		return bh_error_set(err, -EINVAL, "CA name \"%.80s\" must be 1..%d bytes",
				    common_name ? common_name : "(null)", BH_NAME_MAX);
	if (days == 0 || days > DAYS_MAX)
		return bh_error_set(err, -EINVAL, "CA validity of %u days is not in 1..%u", days,
				    DAYS_MAX);
	r = load_key(key_pem, "CA key", &key, err);
	if (r)
		goto out;
	r = check_p256(key, "CA key", err);
	if (r)
		goto out;
	x = X509_new();
	if (!x) {
		r = pki_fail(err, -ENOMEM, "cannot allocate a certificate");
		goto out;
	}
	r = serial_random(&serial, err);
	if (r)
		goto out;
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_serialNumber(x, serial) ||
	    !X509_set_pubkey(x, key)) {
		r = pki_fail(err, -ENOMEM, "cannot fill the CA certificate");
		goto out;
	}
	r = set_validity(x, now - CLOCK_SKEW_S, now + (time_t)days * 86400, err);
	if (r)
		goto out;
	name = X509_get_subject_name(x);
	if ((r = name_add(name, "O", SUBJECT_O, err)) ||
	    (r = name_add(name, "CN", common_name, err)))
		goto out;
	if (!X509_set_issuer_name(x, name)) {
		r = pki_fail(err, -ENOMEM, "cannot set the CA issuer");
		goto out;
	}
	/* pathlen:0: this CA signs end-entity certificates only, never another CA. The subject key
	 * id must exist before the authority key id, which a self-signed certificate copies. */
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((r = ext_add(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err)) ||
	    (r = ext_add(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", err)) ||
	    (r = ext_add(x, &ctx, NID_subject_key_identifier, "hash", err)) ||
	    (r = ext_add(x, &ctx, NID_authority_key_identifier, "keyid:always", err)))
		goto out;
	if (X509_sign(x, key, EVP_sha256()) <= 0) {
		r = pki_fail(err, -EIO, "cannot sign the CA certificate");
		goto out;
	}
	r = pem_encode(PEM_CERT, x, cert_pem, err);
out:
	ASN1_INTEGER_free(serial);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}

int bh_pki_csr_create(const char *key_pem, const char *name, char **csr_pem, struct bh_error *err)
{
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	int r;

	if (!bh_name_valid(name))
		return bh_error_set(err, -EINVAL,
				    "name \"%.80s\" is not 1..%d of [a-z0-9.-] starting and ending "
				    "alphanumeric",
				    name ? name : "(null)", BH_NAME_MAX);
	r = load_key(key_pem, "key", &key, err);
	if (r)
		goto out;
	r = check_p256(key, "key", err);
	if (r)
		goto out;
	req = X509_REQ_new();
	if (!req) {
		r = pki_fail(err, -ENOMEM, "cannot allocate a CSR");
		goto out;
	}
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_pubkey(req, key)) {
		r = pki_fail(err, -ENOMEM, "cannot fill the CSR");
		goto out;
	}
	r = name_add(X509_REQ_get_subject_name(req), "CN", name, err);
	if (r)
		goto out;
	if (X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		r = pki_fail(err, -EIO, "cannot sign the CSR");
		goto out;
	}
	r = pem_encode(PEM_CSR, req, csr_pem, err);
out:
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}

static int issue_check(const struct bh_issue *what, struct bh_error *err)
{
	if (!what)
		return bh_error_set(err, -EINVAL, "nothing to issue (what is NULL)");
	if (what->role != BH_ROLE_AGENT && what->role != BH_ROLE_OPERATOR &&
	    what->role != BH_ROLE_CONTROLLER)
		return bh_error_set(err, -EINVAL, "role %d is not agent, operator or controller",
				    (int)what->role);
	if (!bh_name_valid(what->name))
		return bh_error_set(err, -EINVAL,
				    "name \"%.80s\" is not 1..%d of [a-z0-9.-] starting and ending "
				    "alphanumeric",
				    what->name ? what->name : "(null)", BH_NAME_MAX);
	if (what->lifetime_s == 0 && !what->not_after_override)
		return bh_error_set(err, -EINVAL, "certificate lifetime is 0 seconds");
	return 0;
}

/*
 * Issues a certificate for pub (a P-256 public key, already checked) with the identity and
 * extensions of what, signed by ca / ca_key. The request, if any, contributes nothing but pub.
 */
static int issue_cert(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *pub, const struct bh_issue *what,
		      char **cert_pem, char serial_out[41], struct bh_error *err)
{
	X509 *x = X509_new();
	ASN1_INTEGER *serial = NULL;
	X509_NAME *name;
	X509V3_CTX ctx;
	time_t now = time(NULL), nb, na;
	char hex[SERIAL_HEX_MAX + 1];
	char *pem = NULL;
	int r;

	if (!x)
		return pki_fail(err, -ENOMEM, "cannot allocate a certificate");
	/* Backdated for clock skew, but by no more than a tenth of the lifetime: a holder renews
	 * after two thirds of not_after - not_before, and that must stay two thirds of the life
	 * the CA meant even for a certificate of seconds. */
	nb = what->not_before_override
		     ? what->not_before_override
		     : now - (what->lifetime_s / 10 < CLOCK_SKEW_S ? (time_t)(what->lifetime_s / 10)
								   : CLOCK_SKEW_S);
	na = what->not_after_override ? what->not_after_override : now + (time_t)what->lifetime_s;
	if (na <= nb) {
		r = bh_error_set(err, -EINVAL,
				 "certificate would end (%lld) before it starts (%lld)",
				 (long long)na, (long long)nb);
		goto out;
	}
	r = serial_random(&serial, err);
	if (r)
		goto out;
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_serialNumber(x, serial) ||
	    !X509_set_pubkey(x, pub) || !X509_set_issuer_name(x, X509_get_subject_name(ca))) {
		r = pki_fail(err, -ENOMEM, "cannot fill the certificate");
		goto out;
	}
	r = set_validity(x, nb, na, err);
	if (r)
		goto out;
	name = X509_get_subject_name(x);
	if ((r = name_add(name, "O", SUBJECT_O, err)) ||
	    (r = name_add(name, "OU", bh_role_name(what->role), err)) ||
	    (r = name_add(name, "CN", what->name, err)))
		goto out;
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	if ((r = ext_add(x, &ctx, NID_basic_constraints, "critical,CA:FALSE", err)) ||
	    (r = ext_add(x, &ctx, NID_key_usage, "critical,digitalSignature", err)) ||
	    (r = ext_add(x, &ctx, NID_ext_key_usage,
			 what->server ? "serverAuth,clientAuth" : "clientAuth", err)) ||
	    (r = ext_add(x, &ctx, NID_subject_key_identifier, "hash", err)) ||
	    (r = ext_add(x, &ctx, NID_authority_key_identifier, "keyid:always", err)) ||
	    (r = san_add(x, what, err)))
		goto out;
	if (X509_sign(x, ca_key, EVP_sha256()) <= 0) {
		r = pki_fail(err, -EIO, "cannot sign the certificate for %s", what->name);
		goto out;
	}
	r = serial_hex(serial, hex, err);
	if (r)
		goto out;
	r = pem_encode(PEM_CERT, x, &pem, err);
	if (r)
		goto out;
	*cert_pem = pem;
	if (serial_out)
		memcpy(serial_out, hex, sizeof(hex));
out:
	ASN1_INTEGER_free(serial);
	X509_free(x);
	return r;
}

int bh_pki_issue(const char *ca_cert_pem, const char *ca_key_pem, const char *csr_pem,
		 const struct bh_issue *what, char **cert_pem, char serial_out[41],
		 struct bh_error *err)
{
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL, *pub;
	X509_REQ *req = NULL;
	int r, v;

	r = issue_check(what, err);
	if (r)
		return r;
	r = load_ca(ca_cert_pem, ca_key_pem, &ca, &ca_key, err);
	if (r)
		goto out;
	r = load_csr(csr_pem, &req, err);
	if (r)
		goto out;
	pub = X509_REQ_get0_pubkey(req);
	if (!pub) {
		r = pki_fail(err, -EBADMSG, "CSR carries no usable public key");
		goto out;
	}
	/* Proof of possession: whoever sent the CSR holds the key it names. */
	v = X509_REQ_verify(req, pub);
	if (v != 1) {
		r = pki_fail(err, -EBADMSG, "CSR signature does not verify");
		goto out;
	}
	r = check_p256(pub, "CSR key", err);
	if (r)
		goto out;
	r = issue_cert(ca, ca_key, pub, what, cert_pem, serial_out, err);
out:
	X509_REQ_free(req);
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	ERR_clear_error();
	return r;
}

int bh_pki_issue_for_key(const char *ca_cert_pem, const char *ca_key_pem, const char *key_pem,
			 const struct bh_issue *what, char **cert_pem, char serial_out[41],
			 struct bh_error *err)
{
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL, *key = NULL;
	int r;

	r = issue_check(what, err);
	if (r)
		return r;
	r = load_ca(ca_cert_pem, ca_key_pem, &ca, &ca_key, err);
	if (r)
		goto out;
	r = load_key(key_pem, "key", &key, err);
	if (r)
		goto out;
	r = check_p256(key, "key", err);
	if (r)
		goto out;
	r = issue_cert(ca, ca_key, key, what, cert_pem, serial_out, err);
out:
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	ERR_clear_error();
	return r;
}

/* ---------------------------------------------------------------- reading certificates */

/* "sha256:" + hex of SHA-256(der) into out (72 bytes). */
static int sha256_hex(const unsigned char *der, size_t len, char out[72], struct bh_error *err)
{
	static const char hexd[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return pki_fail(err, -EIO, "cannot compute SHA-256");
	memcpy(out, "sha256:", 7);
	for (unsigned int i = 0; i < mdlen; i++) {
		out[7 + 2 * i] = hexd[md[i] >> 4];
		out[7 + 2 * i + 1] = hexd[md[i] & 0xf];
	}
	out[7 + 2 * mdlen] = '\0';
	return 0;
}

int bh_pki_fingerprint(const char *cert_pem, char out[72], struct bh_error *err)
{
	unsigned char *der = NULL;
	X509 *x = NULL;
	int r, len;

	r = load_cert(cert_pem, "certificate", &x, err);
	if (r)
		goto out;
	len = i2d_X509(x, &der);
	if (len <= 0) {
		r = pki_fail(err, -EBADMSG, "cannot DER-encode the certificate");
		goto out;
	}
	r = sha256_hex(der, (size_t)len, out, err);
out:
	OPENSSL_free(der);
	X509_free(x);
	ERR_clear_error();
	return r;
}

int bh_pki_key_fingerprint(const char *pem, char out[72], struct bh_error *err)
{
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	X509_REQ *req = NULL;
	unsigned char *der = NULL;
	int r, len;

	if (pem && strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----")) {
		r = load_csr(pem, &req, err);
		if (r == 0 && !(pk = X509_REQ_get_pubkey(req)))
			r = pki_fail(err, -EBADMSG, "CSR without a public key");
	} else if (pem && strstr(pem, "-----BEGIN CERTIFICATE-----")) {
		r = load_cert(pem, "certificate", &x, err);
		if (r == 0 && !(pk = X509_get_pubkey(x)))
			r = pki_fail(err, -EBADMSG, "certificate without a public key");
	} else {
		r = load_key(pem, "key", &pk, err);
	}
	if (r)
		goto out;
	len = i2d_PUBKEY(pk, &der);
	if (len <= 0) {
		r = pki_fail(err, -EBADMSG, "cannot DER-encode the public key");
		goto out;
	}
	r = sha256_hex(der, (size_t)len, out, err);
out:
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	X509_REQ_free(req);
	X509_free(x);
	ERR_clear_error();
	return r;
}

/*
 * Copies the single entry nid of name into buf (size bytes, NUL-terminated) as UTF-8. Returns 0,
 * -ENOENT if there is none, or -EBADMSG if it repeats, holds a NUL or does not fit: an identity
 * must be unambiguous.
 */
static int name_get(const X509_NAME *name, int nid, char *buf, size_t size)
{
	int idx = X509_NAME_get_index_by_NID(name, nid, -1);
	unsigned char *utf8 = NULL;
	int len;

	if (idx < 0)
		return -ENOENT;
	if (X509_NAME_get_index_by_NID(name, nid, idx) >= 0)
		return -EBADMSG;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
	if (len < 0)
		return -EBADMSG;
	if ((size_t)len >= size || strlen((char *)utf8) != (size_t)len) {
		OPENSSL_free(utf8);
		return -EBADMSG;
	}
	memcpy(buf, utf8, (size_t)len + 1);
	OPENSSL_free(utf8);
	return 0;
}

/* Fills id from x. The role is only believed when the subject also says O=bulkhead. */
static int identity_of(X509 *x, struct bh_identity *id, struct bh_error *err)
{
	const X509_NAME *subj = X509_get_subject_name(x);
	char o[32] = "", ou[32] = "";
	int r;

	memset(id, 0, sizeof(*id));
	r = name_get(subj, NID_commonName, id->name, sizeof(id->name));
	if (r == -ENOENT)
		return bh_error_set(err, -EBADMSG, "certificate subject has no CN");
	if (r)
		return bh_error_set(err, -EBADMSG,
				    "certificate CN is repeated, not text, or longer than %d bytes",
				    BH_NAME_MAX);
	if (name_get(subj, NID_organizationName, o, sizeof(o)) == 0 && strcmp(o, SUBJECT_O) == 0 &&
	    name_get(subj, NID_organizationalUnitName, ou, sizeof(ou)) == 0)
		id->role = bh_role_parse(ou);
	r = serial_hex(X509_get0_serialNumber(x), id->serial, err);
	if (r)
		return r;
	if (asn1_time_to_unix(X509_get0_notBefore(x), &id->not_before) ||
	    asn1_time_to_unix(X509_get0_notAfter(x), &id->not_after))
		return pki_fail(err, -EBADMSG, "certificate validity is not a valid time");
	return 0;
}

int bh_pki_identity(const char *cert_pem, struct bh_identity *id, struct bh_error *err)
{
	X509 *x = NULL;
	int r;

	if (!id)
		return bh_error_set(err, -EINVAL, "no identity to fill");
	r = load_cert(cert_pem, "certificate", &x, err);
	if (!r)
		r = identity_of(x, id, err);
	X509_free(x);
	ERR_clear_error();
	return r;
}

/* 1 if x's serial is in the NULL-terminated revoked list, 0 if not, negative on a bad entry. */
static int serial_revoked(X509 *x, const char *const *revoked, struct bh_error *err)
{
	BIGNUM *mine = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL), *bn;
	int r = 0;

	if (!mine)
		return pki_fail(err, -ENOMEM, "cannot read the certificate serial");
	for (size_t i = 0; revoked && revoked[i] && r == 0; i++) {
		r = serial_parse(revoked[i], &bn, err);
		if (r)
			break;
		if (BN_cmp(mine, bn) == 0)
			r = 1;
		BN_free(bn);
	}
	BN_free(mine);
	return r;
}

int bh_pki_verify(const char *ca_cert_pem, const char *cert_pem, const char *const *revoked,
		  time_t now, struct bh_identity *id, struct bh_error *err)
{
	X509 *ca = NULL, *x = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	struct bh_identity tmp;
	int r, verr, depth, is_revoked;

	r = load_cert(ca_cert_pem, "CA certificate", &ca, err);
	if (r)
		goto out;
	r = load_cert(cert_pem, "certificate", &x, err);
	if (r)
		goto out;
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (!store || !ctx || !X509_STORE_add_cert(store, ca) ||
	    !X509_STORE_CTX_init(ctx, store, x, NULL)) {
		r = pki_fail(err, -ENOMEM, "cannot set up certificate verification");
		goto out;
	}
	/* Strict: RFC 5280 shape checks on the whole chain (what we issue passes them). */
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
	if (now)
		X509_STORE_CTX_set_time(ctx, 0, now);
	if (X509_verify_cert(ctx) != 1) {
		verr = X509_STORE_CTX_get_error(ctx);
		depth = X509_STORE_CTX_get_error_depth(ctx);
		ERR_clear_error(); /* the reason is verr, not the queue */
		if (verr == X509_V_ERR_CERT_HAS_EXPIRED || verr == X509_V_ERR_CERT_NOT_YET_VALID)
			r = bh_error_set(err, -EKEYEXPIRED, "%s: %s",
					 depth ? "CA certificate" : "certificate",
					 X509_verify_cert_error_string(verr));
		else
			r = bh_error_set(err, -EACCES, "certificate not accepted by this CA: %s",
					 X509_verify_cert_error_string(verr));
		goto out;
	}
	is_revoked = serial_revoked(x, revoked, err);
	if (is_revoked < 0) {
		r = is_revoked;
		goto out;
	}
	r = identity_of(x, &tmp, err);
	if (r)
		goto out;
	if (is_revoked) {
		r = bh_error_set(err, -EKEYREVOKED, "certificate %s (serial %s) is revoked",
				 tmp.name, tmp.serial);
		goto out;
	}
	if (id)
		*id = tmp;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(x);
	X509_free(ca);
	ERR_clear_error();
	return r;
}

/* ---------------------------------------------------------------- CRL */

int bh_pki_crl_create(const char *ca_cert_pem, const char *ca_key_pem,
		      const char *const *revoked_serials, size_t n, unsigned int days,
		      char **crl_pem, struct bh_error *err)
{
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	X509_CRL *crl = NULL;
	X509_REVOKED *rev = NULL;
	ASN1_TIME *t_now = NULL, *t_next = NULL;
	ASN1_INTEGER *num = NULL;
	BIGNUM *bn = NULL;
	X509V3_CTX ctx;
	X509_EXTENSION *ext = NULL;
	time_t now = time(NULL);
	int r;

	if (days == 0 || days > DAYS_MAX)
		return bh_error_set(err, -EINVAL, "CRL validity of %u days is not in 1..%u", days,
				    DAYS_MAX);
	if (n && !revoked_serials)
		return bh_error_set(err, -EINVAL, "%zu revoked serials but no list", n);
	r = load_ca(ca_cert_pem, ca_key_pem, &ca, &ca_key, err);
	if (r)
		goto out;
	crl = X509_CRL_new();
	t_now = ASN1_TIME_set(NULL, now);
	t_next = ASN1_TIME_set(NULL, now + (time_t)days * 86400);
	if (!crl || !t_now || !t_next || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
	    !X509_CRL_set1_lastUpdate(crl, t_now) || !X509_CRL_set1_nextUpdate(crl, t_next)) {
		r = pki_fail(err, -ENOMEM, "cannot fill the CRL");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ASN1_INTEGER *serial;

		r = serial_parse(revoked_serials[i], &bn, err);
		if (r)
			goto out;
		rev = X509_REVOKED_new();
		serial = BN_to_ASN1_INTEGER(bn, NULL);
		if (!rev || !serial || !X509_REVOKED_set_serialNumber(rev, serial) ||
		    !X509_REVOKED_set_revocationDate(rev, t_now)) {
			ASN1_INTEGER_free(serial);
			r = pki_fail(err, -ENOMEM, "cannot add serial %s to the CRL",
				     revoked_serials[i]);
			goto out;
		}
		ASN1_INTEGER_free(serial);
		BN_free(bn);
		bn = NULL;
		if (!X509_CRL_add0_revoked(crl, rev)) {
			r = pki_fail(err, -ENOMEM, "cannot add serial %s to the CRL",
				     revoked_serials[i]);
			goto out;
		}
		rev = NULL;
	}
	X509_CRL_sort(crl);
	/* crlNumber must increase from one CRL to the next (RFC 5280 5.2.3); the creation time
	 * does, without keeping state here. */
	num = ASN1_INTEGER_new();
	if (!num || !ASN1_INTEGER_set_int64(num, (int64_t)now) ||
	    !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, X509V3_ADD_DEFAULT)) {
		r = pki_fail(err, -ENOMEM, "cannot add the CRL number");
		goto out;
	}
	X509V3_set_ctx(&ctx, ca, NULL, NULL, crl, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
	if (!ext || !X509_CRL_add_ext(crl, ext, -1)) {
		r = pki_fail(err, -EINVAL, "cannot add the CRL authority key id");
		goto out;
	}
	if (X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0) {
		r = pki_fail(err, -EIO, "cannot sign the CRL");
		goto out;
	}
	r = pem_encode(PEM_CRL, crl, crl_pem, err);
out:
	X509_EXTENSION_free(ext);
	ASN1_INTEGER_free(num);
	BN_free(bn);
	X509_REVOKED_free(rev);
	ASN1_TIME_free(t_next);
	ASN1_TIME_free(t_now);
	X509_CRL_free(crl);
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	ERR_clear_error();
	return r;
}

/* ---------------------------------------------------------------- secret files */

static int write_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t w = write(fd, data, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Moves tmp to path; without overwrite, atomically refuses an existing path (-EEXIST). */
static int move_into_place(const char *tmp, const char *path, bool overwrite)
{
	if (overwrite)
		return rename(tmp, path) ? -errno : 0;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A file system without RENAME_NOREPLACE: link() refuses an existing name just as well. */
	if (link(tmp, path))
		return -errno;
	unlink(tmp);
	return 0;
}

int bh_file_write_secret(const char *path, const char *data, size_t len, bool overwrite,
			 struct bh_error *err)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	const char *slash, *base;
	unsigned char rnd[6];
	struct stat st;
	int fd = -1, dfd, r = 0;
	bool created = false;

	if (!path || !*path || (len && !data))
		return bh_error_set(err, -EINVAL, "nothing to write (path or data missing)");
	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	if (!*base)
		return bh_error_set(err, -EISDIR, "%s names a directory, not a file", path);
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return bh_error_set(err, -ENAMETOOLONG, "path %.64s... is too long", path);
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	/* Fail early without writing; move_into_place() still refuses atomically on a race. */
	if (!overwrite && lstat(path, &st) == 0)
		return bh_error_set(err, -EEXIST, "%s exists; not replacing it", path);

	for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return pki_fail(err, -EIO, "cannot draw a temporary file name");
		if (snprintf(tmp, sizeof(tmp), "%s/.%s.%02x%02x%02x%02x%02x%02x.tmp", dir, base,
			     rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]) >= (int)sizeof(tmp))
			return bh_error_set(err, -ENAMETOOLONG, "path %.64s... is too long", path);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno != EEXIST) {
			r = -errno;
			return bh_error_set(err, r, "cannot create %s: %s", tmp, strerror(-r));
		}
	}
	if (fd < 0)
		return bh_error_set(err, -EEXIST, "cannot create a temporary file beside %s", path);
	created = true;
	/* The umask may have taken bits away; 0600 exactly is the contract. */
	if (fchmod(fd, 0600) || (r = write_all(fd, data, len)) || fsync(fd)) {
		r = r ? r : -errno;
		bh_error_set(err, r, "cannot write %s: %s", tmp, strerror(-r));
		goto out;
	}
	r = close(fd) ? -errno : 0;
	fd = -1;
	if (r) {
		bh_error_set(err, r, "cannot write %s: %s", tmp, strerror(-r));
		goto out;
	}
	r = move_into_place(tmp, path, overwrite);
	if (r) {
		if (r == -EEXIST)
			bh_error_set(err, r, "%s exists; not replacing it", path);
		else
			bh_error_set(err, r, "cannot rename %s to %s: %s", tmp, path, strerror(-r));
		goto out;
	}
	created = false;
	/* The rename itself is only durable once the directory is. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd)) {
		r = -errno;
		bh_error_set(err, r, "cannot sync directory %s: %s", dir, strerror(-r));
	}
	if (dfd >= 0)
		close(dfd);
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	return r;
}
