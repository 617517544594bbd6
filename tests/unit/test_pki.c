// SPDX-License-Identifier: Apache-2.0
/*
 * The PKI module (runs under ASan/UBSan/LSan): keys, the CA, CSRs and what the CA makes of them,
 * verification outcomes, fingerprints, CRLs and the 0600 atomic writer. Certificates are read
 * back with OpenSSL itself, so the tests check what a TLS peer would see, not what pki.c claims.
 */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bulkhead/pki.h"
#include "bulkhead/util.h"
#include "tap.h"

/* ---------------------------------------------------------------- fixture */

/* Strings the cases allocate are kept here and freed after the run, so a failing assertion
 * (which returns early) leaks nothing that LeakSanitizer would report on top of the failure. */
static char *owned[512];
static size_t n_owned;

static char *own(char *p)
{
	if (p && n_owned < BH_ARRAY_SIZE(owned))
		owned[n_owned++] = p;
	return p;
}

/* Two CAs with the same name: "another CA" must be told apart by key, not by name. */
static char *ca_key, *ca_cert, *ca2_key, *ca2_cert;

static const struct bh_issue agent_node1 = {
	.role = BH_ROLE_AGENT,
	.name = "node1",
	.lifetime_s = 3600,
};

static char *key_new(void)
{
	char *k = NULL;

	if (bh_pki_key_generate(&k, NULL))
		return NULL;
	return own(k);
}

/* A CSR for a fresh key; *key_out receives that key. */
static char *csr_new(const char *name, char **key_out)
{
	char *csr = NULL, *key = key_new();

	if (!key || bh_pki_csr_create(key, name, &csr, NULL))
		return NULL;
	if (key_out)
		*key_out = key;
	return own(csr);
}

/* Issues what for a fresh key by CSR; serial gets the serial. */
static char *cert_new(const struct bh_issue *what, char serial[41], char **key_out)
{
	char *csr = csr_new(what->name, key_out), *cert = NULL;

	if (!csr || bh_pki_issue(ca_cert, ca_key, csr, what, &cert, serial, NULL))
		return NULL;
	return own(cert);
}

static X509 *x509_parse(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return x;
}

static char *req_pem(X509_REQ *req)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *s = NULL;
	long len;

	if (bio && PEM_write_bio_X509_REQ(bio, req) && (len = BIO_get_mem_data(bio, &data)) > 0 &&
	    (s = malloc((size_t)len + 1))) {
		memcpy(s, data, (size_t)len);
		s[len] = '\0';
	}
	BIO_free(bio);
	return own(s);
}

/* A CSR made by hand, for what csr_create() refuses to make: key of any type, any subject,
 * optionally asking for CA:TRUE. */
static char *req_by_hand(EVP_PKEY *key, const char *ou, const char *cn, bool ask_ca)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *n = X509_REQ_get_subject_name(req);
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	char *pem = NULL;

	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"bulkhead", -1, -1,
				   0);
	if (ou)
		X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_ASC, (const unsigned char *)ou, -1, -1,
					   0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_REQ_set_pubkey(req, key);
	if (ask_ca) {
		exts = sk_X509_EXTENSION_new_null();
		ext = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
		sk_X509_EXTENSION_push(exts, ext);
		X509_REQ_add_extensions(req, exts);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	if (X509_REQ_sign(req, key, EVP_sha256()) > 0)
		pem = req_pem(req);
	X509_REQ_free(req);
	return pem;
}

/* ---------------------------------------------------------------- names */

static int t_role_names(void)
{
	for (int r = BH_ROLE_NONE; r <= BH_ROLE_CONTROLLER; r++)
		T_ASSERT((int)bh_role_parse(bh_role_name((enum bh_role)r)) == r,
			 "role %d round trip", r);
	T_ASSERT(strcmp(bh_role_name(BH_ROLE_OPERATOR), "operator") == 0, "operator");
	T_ASSERT(strcmp(bh_role_name((enum bh_role)42), "none") == 0, "out of range");
	T_ASSERT(bh_role_parse("Agent") == BH_ROLE_NONE, "case matters");
	T_ASSERT(bh_role_parse(NULL) == BH_ROLE_NONE && bh_role_parse("") == BH_ROLE_NONE, "empty");
	return 0;
}

static int t_name_valid(void)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{"node1", true},
		{"a", true},
		{"9", true},
		{"web-01.dc2", true},
		{"0123456789012345678901234567890123456789012345678901234567890123", true},
		{"01234567890123456789012345678901234567890123456789012345678901234", false},
		{"", false},
		{"-node", false},
		{"node-", false},
		{".node", false},
		{"node.", false},
		{"Node1", false},
		{"node_1", false},
		{"node 1", false},
		{"nöde", false},
		{"a/b", false},
	};

	T_ASSERT(!bh_name_valid(NULL), "NULL");
	for (size_t i = 0; i < BH_ARRAY_SIZE(cases); i++)
		T_ASSERT(bh_name_valid(cases[i].name) == cases[i].ok, "\"%s\" should be %s",
			 cases[i].name, cases[i].ok ? "valid" : "invalid");
	return 0;
}

/* ---------------------------------------------------------------- keys and the CA */

static int t_key_generate_p256(void)
{
	char *k1 = key_new(), *k2 = key_new(), group[64] = "";
	BIO *bio;
	EVP_PKEY *pk;
	size_t glen;
	bool ec, p256;

	T_ASSERT(k1 && k2, "key generation");
	T_ASSERT(strncmp(k1, "-----BEGIN PRIVATE KEY-----\n", 28) == 0, "PKCS#8 PEM: %.40s", k1);
	T_ASSERT(strcmp(k1, k2) != 0, "two keys differ");
	bio = BIO_new_mem_buf(k1, -1);
	pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	T_ASSERT(pk, "OpenSSL reads the key back");
	ec = EVP_PKEY_is_a(pk, "EC");
	p256 = EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) &&
	       strcmp(group, "prime256v1") == 0;
	EVP_PKEY_free(pk);
	T_ASSERT(ec && p256, "EC P-256, got group \"%s\"", group);
	return 0;
}

static int t_ca_self_signed(void)
{
	X509 *x = x509_parse(ca_cert);
	struct bh_identity id;
	struct bh_error err = {0};
	int issued, verified, is_ca, pathlen;
	uint32_t ku;

	T_ASSERT(x, "CA PEM parses");
	issued = X509_check_issued(x, x);
	verified = X509_verify(x, X509_get0_pubkey(x));
	is_ca = X509_check_ca(x);
	ku = X509_get_key_usage(x);
	pathlen = (int)X509_get_pathlen(x);
	X509_free(x);
	T_ASSERT(issued == X509_V_OK, "self-issued: %s", X509_verify_cert_error_string(issued));
	T_ASSERT(verified == 1, "self-signature verifies");
	T_ASSERT(is_ca == 1, "basicConstraints CA:TRUE (X509_check_ca %d)", is_ca);
	T_ASSERT(pathlen == 0, "pathlen 0, got %d", pathlen);
	T_ASSERT((ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN),
		 "keyCertSign+cRLSign, usage 0x%x", ku);
	T_ASSERT(bh_pki_key_matches(ca_key, ca_cert), "CA key matches CA cert");
	T_ASSERT(bh_pki_verify(ca_cert, ca_cert, NULL, 0, &id, &err) == 0, "CA verifies: %s",
		 err.msg);
	T_ASSERT(strcmp(id.name, "Bulkhead CA") == 0, "CN %s", id.name);
	T_ASSERT(id.role == BH_ROLE_NONE, "a CA has no role");
	T_ASSERT(id.not_after - id.not_before >= 3650 * 86400, "ten years");
	return 0;
}

static int t_ca_create_rejects(void)
{
	struct bh_error err = {0};
	char *pem = NULL;

	T_ASSERT(bh_pki_ca_create(ca_key, "CA", 0, &pem, &err) == -EINVAL, "0 days");
	T_ASSERT(strstr(err.msg, "0 days"), "message names the value: %s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(bh_pki_ca_create(ca_key, "", 10, &pem, &err) == -EINVAL, "empty name");
	bh_error_clear(&err);
	T_ASSERT(bh_pki_ca_create("not a key", "CA", 10, &pem, &err) == -EBADMSG, "garbage key");
	T_ASSERT(strstr(err.msg, "CA key"), "message names the input: %s", err.msg);
	T_ASSERT(!pem, "no output on failure");
	return 0;
}

/* ---------------------------------------------------------------- issuing */

static int t_issue_identity(void)
{
	char serial[41] = "", *key = NULL, *cert = cert_new(&agent_node1, serial, &key);
	struct bh_identity id;
	struct bh_error err = {0};
	time_t now = time(NULL);
	X509 *x, *ca;
	long version;
	int sig_nid, issuer_cmp, ca_flag;
	uint32_t ku, xku;
	bool aki_ok;

	T_ASSERT(cert, "CSR -> certificate");
	T_ASSERT(bh_pki_identity(cert, &id, &err) == 0, "%s", err.msg);
	T_ASSERT(id.role == BH_ROLE_AGENT, "role %s", bh_role_name(id.role));
	T_ASSERT(strcmp(id.name, "node1") == 0, "name %s", id.name);
	T_ASSERT(strcmp(id.serial, serial) == 0, "serial %s vs %s", id.serial, serial);
	T_ASSERT(strlen(serial) >= 1 && strlen(serial) <= 32 && serial[0] != '0' &&
			 strspn(serial, "0123456789abcdef") == strlen(serial),
		 "128-bit lower-case hex without leading zeros: %s", serial);
	T_ASSERT(id.not_before >= now - 300 - 5 && id.not_before <= now - 300 + 5,
		 "not_before is now - 5 min: %lld vs %lld", (long long)id.not_before,
		 (long long)now);
	T_ASSERT(id.not_after - id.not_before == 3600 + 300, "lifetime from now: %lld",
		 (long long)(id.not_after - id.not_before));
	T_ASSERT(bh_pki_key_matches(key, cert), "certificate carries the CSR's key");

	x = x509_parse(cert);
	ca = x509_parse(ca_cert);
	T_ASSERT(x && ca, "parse");
	version = X509_get_version(x);
	sig_nid = X509_get_signature_nid(x);
	issuer_cmp = X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca));
	ca_flag = X509_check_ca(x);
	ku = X509_get_key_usage(x);
	xku = X509_get_extended_key_usage(x);
	aki_ok = X509_get0_authority_key_id(x) && X509_get0_subject_key_id(x) &&
		 ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
				       X509_get0_subject_key_id(ca)) == 0;
	X509_free(ca);
	X509_free(x);
	T_ASSERT(version == X509_VERSION_3, "X509v3");
	T_ASSERT(sig_nid == NID_ecdsa_with_SHA256, "ecdsa-with-SHA256, got %s",
		 OBJ_nid2sn(sig_nid));
	T_ASSERT(issuer_cmp == 0, "issuer is the CA subject");
	T_ASSERT(ca_flag == 0, "CA:FALSE");
	T_ASSERT(ku == KU_DIGITAL_SIGNATURE, "keyUsage digitalSignature only: 0x%x", ku);
	T_ASSERT(xku == XKU_SSL_CLIENT, "clientAuth only: 0x%x", xku);
	T_ASSERT(aki_ok, "subjectKeyIdentifier present, authorityKeyIdentifier = CA's");
	return 0;
}

static int t_issue_serials_differ(void)
{
	char s1[41], s2[41];

	T_ASSERT(cert_new(&agent_node1, s1, NULL) && cert_new(&agent_node1, s2, NULL), "issue");
	T_ASSERT(strcmp(s1, s2) != 0, "random serials: %s twice", s1);
	return 0;
}

static int t_issue_server_san(void)
{
	static const char *const dns[] = {"controller", "ctl.example.org", NULL};
	static const char *const ips[] = {"198.18.0.1", "fd00:b1::1", NULL};
	static const unsigned char v4[4] = {198, 18, 0, 1};
	static const unsigned char v6[16] = {0xfd, 0x00, 0x00, 0xb1, [15] = 1};
	const struct bh_issue what = {
		.role = BH_ROLE_CONTROLLER,
		.name = "controller",
		.lifetime_s = 86400,
		.dns = dns,
		.ips = ips,
		.server = true,
	};
	char serial[41], *cert = cert_new(&what, serial, NULL);
	GENERAL_NAMES *names;
	X509 *x;
	int n, ndns = 0, nip = 0, crit = -1;
	uint32_t xku;
	bool ok = true;

	T_ASSERT(cert, "issue");
	x = x509_parse(cert);
	T_ASSERT(x, "parse");
	xku = X509_get_extended_key_usage(x);
	names = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	X509_free(x);
	T_ASSERT(xku == (XKU_SSL_SERVER | XKU_SSL_CLIENT), "serverAuth+clientAuth: 0x%x", xku);
	T_ASSERT(names, "subjectAltName present (crit %d)", crit);
	n = sk_GENERAL_NAME_num(names);
	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		int type;
		const ASN1_STRING *s = GENERAL_NAME_get0_value(gn, &type);
		const unsigned char *d = ASN1_STRING_get0_data(s);
		int len = ASN1_STRING_length(s);

		if (type == GEN_DNS) {
			ok &= ndns < 2 && len == (int)strlen(dns[ndns]) &&
			      memcmp(d, dns[ndns], (size_t)len) == 0;
			ndns++;
		} else if (type == GEN_IPADD) {
			ok &= (nip == 0 && len == 4 && memcmp(d, v4, 4) == 0) ||
			      (nip == 1 && len == 16 && memcmp(d, v6, 16) == 0);
			nip++;
		} else {
			ok = false;
		}
	}
	GENERAL_NAMES_free(names);
	T_ASSERT(n == 4 && ndns == 2 && nip == 2 && ok, "DNS and IP entries in order (%d names)",
		 n);
	return 0;
}

static int t_issue_client_no_san(void)
{
	char serial[41], *cert = cert_new(&agent_node1, serial, NULL);
	X509 *x;
	int loc;

	T_ASSERT(cert, "issue");
	x = x509_parse(cert);
	T_ASSERT(x, "parse");
	loc = X509_get_ext_by_NID(x, NID_subject_alt_name, -1);
	X509_free(x);
	T_ASSERT(loc < 0, "no subjectAltName when none was asked for");
	return 0;
}

static int t_issue_bad_san(void)
{
	static const char *const inject[] = {"a.example,IP:0.0.0.0", NULL};
	static const char *const notip[] = {"198.18.0.300", NULL};
	struct bh_issue what = agent_node1;
	struct bh_error err = {0};
	char *csr = csr_new("node1", NULL), *cert = NULL, serial[41];

	T_ASSERT(csr, "CSR");
	what.dns = inject;
	T_ASSERT(bh_pki_issue(ca_cert, ca_key, csr, &what, &cert, serial, &err) == -EINVAL,
		 "a DNS value cannot smuggle a second entry");
	T_ASSERT(strstr(err.msg, "a.example,IP:0.0.0.0"), "names the value: %s", err.msg);
	bh_error_clear(&err);
	what.dns = NULL;
	what.ips = notip;
	T_ASSERT(bh_pki_issue(ca_cert, ca_key, csr, &what, &cert, serial, &err) == -EINVAL,
		 "bad IP literal");
	T_ASSERT(strstr(err.msg, "198.18.0.300"), "names the value: %s", err.msg);
	T_ASSERT(!cert, "no output on failure");
	return 0;
}

static int t_issue_forged_subject(void)
{
	char *key = key_new(), *csr, *cert = NULL, serial[41];
	struct bh_identity id;
	struct bh_error err = {0};
	BIO *bio;
	EVP_PKEY *pk;
	X509 *x;
	int is_ca;

	T_ASSERT(key, "key");
	bio = BIO_new_mem_buf(key, -1);
	pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	T_ASSERT(pk, "parse key");
	/* Asks to be the controller, and a CA on top. */
	csr = req_by_hand(pk, "controller", "controller", true);
	EVP_PKEY_free(pk);
	T_ASSERT(csr, "forged CSR");
	T_ASSERT(bh_pki_issue(ca_cert, ca_key, csr, &agent_node1, &cert, serial, &err) == 0, "%s",
		 err.msg);
	own(cert);
	T_ASSERT(bh_pki_identity(cert, &id, &err) == 0, "%s", err.msg);
	T_ASSERT(id.role == BH_ROLE_AGENT && strcmp(id.name, "node1") == 0,
		 "CA-chosen identity, got %s/%s", bh_role_name(id.role), id.name);
	x = x509_parse(cert);
	T_ASSERT(x, "parse");
	is_ca = X509_check_ca(x);
	X509_free(x);
	T_ASSERT(is_ca == 0, "requested extensions are ignored: still CA:FALSE");
	return 0;
}

static int t_issue_csr_bad_signature(void)
{
	char *csr = csr_new("victim", NULL), *cert = NULL, serial[41], *p;
	struct bh_error err = {0};
	unsigned char *der = NULL;
	X509_REQ *req;
	BIO *bio;
	int len;

	T_ASSERT(csr, "CSR");
	bio = BIO_new_mem_buf(csr, -1);
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	BIO_free(bio);
	T_ASSERT(req, "parse CSR");
	len = i2d_X509_REQ(req, &der);
	X509_REQ_free(req);
	T_ASSERT(len > 0, "DER");
	/* Tamper with the signed part: another name in the subject, the same signature. */
	p = memmem(der, (size_t)len, "victim", 6);
	if (p)
		memcpy(p, "victor", 6);
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio(bio, "CERTIFICATE REQUEST", "", der, len);
	OPENSSL_free(der);
	T_ASSERT(p, "found the CN in the DER");
	{
		char *data, *s;
		long n = BIO_get_mem_data(bio, &data);

		s = own(strndup(data, (size_t)n));
		BIO_free(bio);
		T_ASSERT(s, "PEM");
		csr = s;
	}
	T_ASSERT(bh_pki_issue(ca_cert, ca_key, csr, &agent_node1, &cert, serial, &err) == -EBADMSG,
		 "tampered CSR rejected: %s", err.msg);
	T_ASSERT(strstr(err.msg, "signature"), "message says why: %s", err.msg);
	T_ASSERT(!cert, "no output on failure");
	T_ASSERT(ERR_peek_error() == 0, "OpenSSL error queue left empty");
	return 0;
}

static int t_issue_rejects_non_p256(void)
{
	static const struct {
		const char *type, *param, *says;
	} keys[] = {
		{"RSA", NULL, "RSA"},
		{"EC", "P-384", "secp384r1"},
	};
	struct bh_error err = {0};

	for (size_t i = 0; i < BH_ARRAY_SIZE(keys); i++) {
		EVP_PKEY *pk = keys[i].param ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", keys[i].param)
					     : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		char *csr, *cert = NULL, serial[41];
		int r;

		T_ASSERT(pk, "%s key", keys[i].type);
		csr = req_by_hand(pk, NULL, "node1", false);
		EVP_PKEY_free(pk);
		T_ASSERT(csr, "CSR");
		bh_error_clear(&err);
		r = bh_pki_issue(ca_cert, ca_key, csr, &agent_node1, &cert, serial, &err);
		T_ASSERT(r == -EKEYREJECTED, "%s rejected, got %d (%s)", keys[i].says, r, err.msg);
		T_ASSERT(strstr(err.msg, keys[i].says), "message names the key: %s", err.msg);
		T_ASSERT(!cert, "no output on failure");
	}
	return 0;
}

static int t_issue_for_key(void)
{
	static const char *const ips[] = {"127.0.0.1", NULL};
	const struct bh_issue what = {
		.role = BH_ROLE_CONTROLLER,
		.name = "controller",
		.lifetime_s = 600,
		.ips = ips,
		.server = true,
	};
	char *key = key_new(), *cert = NULL, serial[41];
	struct bh_identity id;
	struct bh_error err = {0};

	T_ASSERT(key, "key");
	T_ASSERT(bh_pki_issue_for_key(ca_cert, ca_key, key, &what, &cert, serial, &err) == 0, "%s",
		 err.msg);
	own(cert);
	T_ASSERT(bh_pki_key_matches(key, cert), "certificate for that key");
	T_ASSERT(bh_pki_verify(ca_cert, cert, NULL, 0, &id, &err) == 0, "%s", err.msg);
	T_ASSERT(id.role == BH_ROLE_CONTROLLER && strcmp(id.serial, serial) == 0, "identity");
	return 0;
}

static int t_issue_rejects_request(void)
{
	char *csr = csr_new("node1", NULL), *cert = NULL, serial[41];
	struct bh_issue what = agent_node1;
	struct bh_error err = {0};

	T_ASSERT(csr, "CSR");
	what.role = BH_ROLE_NONE;
	T_ASSERT(bh_pki_issue(ca_cert, ca_key, csr, &what, &cert, serial, &err) == -EINVAL,
		 "role none");
	what = agent_node1;
	what.name = "Node_1";
	bh_error_clear(&err);
	T_ASSERT(bh_pki_issue(ca_cert, ca_key, csr, &what, &cert, serial, &err) == -EINVAL,
		 "bad name");
	T_ASSERT(strstr(err.msg, "Node_1"), "names the value: %s", err.msg);
	what = agent_node1;
	what.lifetime_s = 0;
	T_ASSERT(bh_pki_issue(ca_cert, ca_key, csr, &what, &cert, serial, NULL) == -EINVAL,
		 "zero lifetime");
	bh_error_clear(&err);
	T_ASSERT(bh_pki_issue(ca_cert, ca2_key, csr, &agent_node1, &cert, serial, &err) == -EINVAL,
		 "CA key of another CA");
	T_ASSERT(strstr(err.msg, "CA key"), "%s", err.msg);
	T_ASSERT(bh_pki_issue(ca_cert, ca_key, "garbage", &agent_node1, &cert, serial, NULL) ==
			 -EBADMSG,
		 "garbage CSR");
	T_ASSERT(bh_pki_csr_create(ca_key, "No Good", &csr, NULL) == -EINVAL, "CSR with bad name");
	T_ASSERT(!cert, "no output on failure");
	return 0;
}

/* ---------------------------------------------------------------- verification */

static int t_verify_good(void)
{
	char serial[41], *cert = cert_new(&agent_node1, serial, NULL);
	static const char *const others[] = {"1", "deadbeef", NULL};
	struct bh_identity id;
	struct bh_error err = {0};

	T_ASSERT(cert, "issue");
	T_ASSERT(bh_pki_verify(ca_cert, cert, NULL, 0, &id, &err) == 0, "%s", err.msg);
	T_ASSERT(id.role == BH_ROLE_AGENT && strcmp(id.name, "node1") == 0 &&
			 strcmp(id.serial, serial) == 0,
		 "identity %s/%s/%s", bh_role_name(id.role), id.name, id.serial);
	T_ASSERT(bh_pki_verify(ca_cert, cert, others, 0, NULL, &err) == 0,
		 "other serials revoked: %s", err.msg);
	T_ASSERT(bh_pki_verify(ca_cert, cert, NULL, time(NULL) + 1800, NULL, &err) == 0,
		 "explicit time inside the window: %s", err.msg);
	T_ASSERT(err.code == 0 && err.msg[0] == '\0', "err untouched on success");
	return 0;
}

static int t_verify_expired(void)
{
	time_t now = time(NULL);
	struct bh_issue what = agent_node1;
	struct bh_error err = {0};
	char serial[41], *cert;

	/* Inside the CA's own window (it starts 5 minutes before the fixture ran). */
	what.not_before_override = now - 200;
	what.not_after_override = now - 100;
	cert = cert_new(&what, serial, NULL);
	T_ASSERT(cert, "issue");
	T_ASSERT(bh_pki_verify(ca_cert, cert, NULL, 0, NULL, &err) == -EKEYEXPIRED, "%s", err.msg);
	T_ASSERT(strstr(err.msg, "expired"), "%s", err.msg);
	bh_error_clear(&err);
	T_ASSERT(bh_pki_verify(ca_cert, cert, NULL, now - 150, NULL, &err) == 0,
		 "valid at a time inside its window: %s", err.msg);
	return 0;
}

static int t_verify_not_yet_valid(void)
{
	time_t now = time(NULL);
	struct bh_issue what = agent_node1;
	struct bh_error err = {0};
	struct bh_identity id;
	char serial[41], *cert;

	what.not_before_override = now + 3600;
	what.not_after_override = now + 7200;
	cert = cert_new(&what, serial, NULL);
	T_ASSERT(cert, "issue");
	T_ASSERT(bh_pki_identity(cert, &id, NULL) == 0 && id.not_before == now + 3600 &&
			 id.not_after == now + 7200,
		 "overrides are exact");
	T_ASSERT(bh_pki_verify(ca_cert, cert, NULL, 0, NULL, &err) == -EKEYEXPIRED, "%s", err.msg);
	T_ASSERT(strstr(err.msg, "not yet valid"), "%s", err.msg);
	return 0;
}

static int t_verify_other_ca(void)
{
	char serial[41], *cert = cert_new(&agent_node1, serial, NULL);
	struct bh_error err = {0};
	struct bh_identity id = {.role = BH_ROLE_OPERATOR};

	T_ASSERT(cert, "issue");
	T_ASSERT(bh_pki_verify(ca2_cert, cert, NULL, 0, &id, &err) == -EACCES,
		 "another CA of the same name: %s", err.msg);
	T_ASSERT(id.role == BH_ROLE_OPERATOR, "id untouched on failure");
	bh_error_clear(&err);
	T_ASSERT(bh_pki_verify(ca2_cert, ca_cert, NULL, 0, NULL, &err) == -EACCES,
		 "the other CA's certificate: %s", err.msg);
	return 0;
}

static int t_verify_revoked(void)
{
	char serial[41], upper[41], *cert = cert_new(&agent_node1, serial, NULL);
	const char *list[] = {"abc", serial, NULL}, *list_upper[] = {upper, NULL};
	static const char *const bad[] = {"xyz", NULL};
	struct bh_error err = {0};

	T_ASSERT(cert, "issue");
	T_ASSERT(bh_pki_verify(ca_cert, cert, list, 0, NULL, &err) == -EKEYREVOKED, "%s", err.msg);
	T_ASSERT(strstr(err.msg, serial), "message names the serial: %s", err.msg);
	for (size_t i = 0; i <= strlen(serial); i++)
		upper[i] = (char)toupper((unsigned char)serial[i]);
	T_ASSERT(bh_pki_verify(ca_cert, cert, list_upper, 0, NULL, NULL) == -EKEYREVOKED,
		 "serials compare as numbers, not strings");
	bh_error_clear(&err);
	T_ASSERT(bh_pki_verify(ca_cert, cert, bad, 0, NULL, &err) == -EINVAL,
		 "an unreadable revoked entry fails closed");
	T_ASSERT(strstr(err.msg, "xyz"), "%s", err.msg);
	return 0;
}

static int t_verify_garbage_pem(void)
{
	char serial[41], *cert = cert_new(&agent_node1, serial, NULL), *trunc;
	struct bh_error err = {0};

	T_ASSERT(cert, "issue");
	T_ASSERT(bh_pki_verify(ca_cert,
			       "-----BEGIN CERTIFICATE-----\nAAAA\n-----END "
			       "CERTIFICATE-----\n",
			       NULL, 0, NULL, &err) == -EBADMSG,
		 "garbage cert");
	T_ASSERT(err.msg[0], "a message");
	T_ASSERT(bh_pki_verify("hello", cert, NULL, 0, NULL, NULL) == -EBADMSG, "garbage CA");
	trunc = own(strndup(cert, strlen(cert) / 2));
	T_ASSERT(trunc, "strndup");
	T_ASSERT(bh_pki_verify(ca_cert, trunc, NULL, 0, NULL, NULL) == -EBADMSG, "truncated");
	T_ASSERT(bh_pki_verify(ca_cert, "", NULL, 0, NULL, NULL) == -EBADMSG, "empty");
	T_ASSERT(bh_pki_identity("", &(struct bh_identity){0}, NULL) == -EBADMSG, "identity");
	T_ASSERT(ERR_peek_error() == 0, "OpenSSL error queue left empty");
	return 0;
}

/* ---------------------------------------------------------------- fingerprints and keys */

static int t_fingerprint(void)
{
	char f1[72], f1b[72], f2[72], want[72] = "sha256:";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct bh_error err = {0};
	X509 *x = x509_parse(ca_cert);

	T_ASSERT(x, "parse");
	X509_digest(x, EVP_sha256(), md, &mdlen);
	X509_free(x);
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(want + 7 + 2 * i, 3, "%02x", md[i]);
	T_ASSERT(bh_pki_fingerprint(ca_cert, f1, &err) == 0, "%s", err.msg);
	T_ASSERT(bh_pki_fingerprint(ca_cert, f1b, &err) == 0, "%s", err.msg);
	T_ASSERT(bh_pki_fingerprint(ca2_cert, f2, &err) == 0, "%s", err.msg);
	T_ASSERT(strlen(f1) == 71, "sha256: + 64 hex: %s", f1);
	T_ASSERT(strcmp(f1, want) == 0, "SHA-256 of the DER: %s vs %s", f1, want);
	T_ASSERT(strcmp(f1, f1b) == 0, "stable");
	T_ASSERT(strcmp(f1, f2) != 0, "differs between CAs of the same name");
	T_ASSERT(bh_pki_fingerprint("nope", f1, &err) == -EBADMSG, "garbage");
	return 0;
}

static int t_key_matches(void)
{
	char *key = NULL, serial[41], *cert = cert_new(&agent_node1, serial, &key);

	T_ASSERT(cert, "issue");
	T_ASSERT(bh_pki_key_matches(key, cert), "own key");
	T_ASSERT(!bh_pki_key_matches(ca_key, cert), "the CA's key is not the holder's");
	T_ASSERT(!bh_pki_key_matches(ca2_key, ca_cert), "other CA key");
	T_ASSERT(!bh_pki_key_matches("x", cert) && !bh_pki_key_matches(key, "x"), "garbage");
	T_ASSERT(!bh_pki_key_matches(NULL, NULL), "NULL");
	T_ASSERT(ERR_peek_error() == 0, "OpenSSL error queue left empty");
	return 0;
}

/* ---------------------------------------------------------------- CRL */

static X509_CRL *crl_parse(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509_CRL *crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return crl;
}

static bool crl_has(X509_CRL *crl, const char *hex)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai;
	X509_REVOKED *rev = NULL;
	int found;

	BN_hex2bn(&bn, hex);
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	found = X509_CRL_get0_by_serial(crl, &rev, ai);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return found == 1 && rev;
}

static int t_crl_create(void)
{
	char s1[41], s2[41], *crl_pem = NULL;
	const char *serials[2] = {s1, s2};
	struct bh_error err = {0};
	X509_CRL *crl;
	X509 *ca;
	bool has1, has2, has_other;
	int n, sig, issuer_cmp;
	long version;

	T_ASSERT(cert_new(&agent_node1, s1, NULL) && cert_new(&agent_node1, s2, NULL), "issue");
	T_ASSERT(bh_pki_crl_create(ca_cert, ca_key, serials, 2, 7, &crl_pem, &err) == 0, "%s",
		 err.msg);
	own(crl_pem);
	crl = crl_parse(crl_pem);
	ca = x509_parse(ca_cert);
	T_ASSERT(crl && ca, "PEM_read_bio_X509_CRL");
	has1 = crl_has(crl, s1);
	has2 = crl_has(crl, s2);
	has_other = crl_has(crl, "123456");
	n = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl));
	sig = X509_CRL_verify(crl, X509_get0_pubkey(ca));
	issuer_cmp = X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca));
	version = X509_CRL_get_version(crl);
	X509_free(ca);
	X509_CRL_free(crl);
	T_ASSERT(has1 && has2, "both serials listed");
	T_ASSERT(!has_other && n == 2, "nothing else (%d entries)", n);
	T_ASSERT(sig == 1, "signed by the CA");
	T_ASSERT(issuer_cmp == 0, "issuer is the CA");
	T_ASSERT(version == X509_CRL_VERSION_2, "v2 CRL");
	return 0;
}

static int t_crl_empty_and_bad(void)
{
	static const char *const bad[] = {"12-34"};
	char *crl_pem = NULL;
	struct bh_error err = {0};
	X509_CRL *crl;
	int n;

	T_ASSERT(bh_pki_crl_create(ca_cert, ca_key, NULL, 0, 1, &crl_pem, &err) == 0, "%s",
		 err.msg);
	own(crl_pem);
	crl = crl_parse(crl_pem);
	T_ASSERT(crl, "parse");
	n = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl));
	X509_CRL_free(crl);
	T_ASSERT(n <= 0, "no entries (%d)", n);
	crl_pem = NULL;
	T_ASSERT(bh_pki_crl_create(ca_cert, ca_key, bad, 1, 1, &crl_pem, &err) == -EINVAL,
		 "bad serial");
	T_ASSERT(strstr(err.msg, "12-34"), "%s", err.msg);
	T_ASSERT(bh_pki_crl_create(ca_cert, ca2_key, NULL, 0, 1, &crl_pem, NULL) == -EINVAL,
		 "key of another CA");
	T_ASSERT(!crl_pem, "no output on failure");
	return 0;
}

/* ---------------------------------------------------------------- secret files */

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int check_file(const char *path, const char *want)
{
	char *got = NULL;
	size_t len = 0;
	struct stat st;
	int same;

	if (stat(path, &st) || (st.st_mode & 07777) != 0600) {
		fprintf(stderr, "    %s: mode %o\n", path, (unsigned int)(st.st_mode & 07777));
		return 1;
	}
	if (bh_read_file(path, 1 << 16, &got, &len))
		return 1;
	same = len == strlen(want) && memcmp(got, want, len) == 0;
	free(got);
	return same ? 0 : 1;
}

static int secret_cases(const char *dir)
{
	char path[4096], nodir[4096];
	struct bh_error err = {0};
	mode_t old;

	snprintf(path, sizeof(path), "%s/node.key", dir);
	snprintf(nodir, sizeof(nodir), "%s/missing/node.key", dir);
	/* A permissive umask must not leak into the mode. */
	old = umask(0);
	T_ASSERT(bh_file_write_secret(path, "first\n", 6, false, &err) == 0, "%s", err.msg);
	umask(old);
	T_ASSERT(check_file(path, "first\n") == 0, "0600 with the data");
	T_ASSERT(bh_file_write_secret(path, "second\n", 7, false, &err) == -EEXIST,
		 "refuses to overwrite");
	T_ASSERT(strstr(err.msg, "node.key"), "message names the file: %s", err.msg);
	T_ASSERT(check_file(path, "first\n") == 0, "left untouched");
	bh_error_clear(&err);
	T_ASSERT(bh_file_write_secret(path, "second\n", 7, true, &err) == 0, "%s", err.msg);
	T_ASSERT(check_file(path, "second\n") == 0, "replaced, still 0600");
	T_ASSERT(chmod(path, 0644) == 0, "chmod");
	T_ASSERT(bh_file_write_secret(path, "", 0, true, &err) == 0, "%s", err.msg);
	T_ASSERT(check_file(path, "") == 0, "empty file, back to 0600");
	T_ASSERT(count_entries(dir) == 1, "no temporary files left behind");
	T_ASSERT(bh_file_write_secret(nodir, "x", 1, false, &err) == -ENOENT, "missing directory");
	T_ASSERT(count_entries(dir) == 1, "still one file");
	return 0;
}

static int t_file_write_secret(void)
{
	char dir[] = "/tmp/bh-test-pki.XXXXXX", path[4096];
	int r;

	T_ASSERT(mkdtemp(dir), "mkdtemp");
	r = secret_cases(dir);
	snprintf(path, sizeof(path), "%s/node.key", dir);
	unlink(path);
	if (rmdir(dir))
		T_FAIL("cannot remove %s: %s", dir, strerror(errno));
	return r;
}

/* ---------------------------------------------------------------- runner */

static const struct t_case cases[] = {
	{"role names round trip", t_role_names},
	{"name validity", t_name_valid},
	{"key generation makes EC P-256 PKCS#8", t_key_generate_p256},
	{"CA is self-signed, a CA, and verifies", t_ca_self_signed},
	{"CA creation rejects bad input", t_ca_create_rejects},
	{"CSR -> issue -> identity", t_issue_identity},
	{"serials are random", t_issue_serials_differ},
	{"server cert carries SAN DNS and IP", t_issue_server_san},
	{"client cert without SAN", t_issue_client_no_san},
	{"SAN values are checked", t_issue_bad_san},
	{"forged CSR subject gets the CA-chosen identity", t_issue_forged_subject},
	{"tampered CSR signature rejected", t_issue_csr_bad_signature},
	{"RSA and P-384 CSRs rejected", t_issue_rejects_non_p256},
	{"issue for a key the CA holds", t_issue_for_key},
	{"issue rejects bad requests", t_issue_rejects_request},
	{"verify: good", t_verify_good},
	{"verify: expired", t_verify_expired},
	{"verify: not yet valid", t_verify_not_yet_valid},
	{"verify: another CA", t_verify_other_ca},
	{"verify: revoked serial", t_verify_revoked},
	{"verify: garbage PEM", t_verify_garbage_pem},
	{"fingerprint stable and per CA", t_fingerprint},
	{"key matches certificate", t_key_matches},
	{"CRL lists the serials", t_crl_create},
	{"CRL empty, bad serial, wrong key", t_crl_empty_and_bad},
	{"secret file: 0600, no overwrite unless asked", t_file_write_secret},
};

static int fixture_create(void)
{
	struct bh_error err = {0};
	char *p = NULL;

	if (!(ca_key = key_new()) || !(ca2_key = key_new()))
		return 1;
	if (bh_pki_ca_create(ca_key, "Bulkhead CA", 3650, &p, &err))
		goto fail;
	ca_cert = own(p);
	if (bh_pki_ca_create(ca2_key, "Bulkhead CA", 3650, &p, &err))
		goto fail;
	ca2_cert = own(p);
	return 0;
fail:
	fprintf(stderr, "fixture: %s\n", err.msg);
	return 1;
}

int main(int argc, char **argv)
{
	int r = fixture_create() ? 1
				 : t_run(cases, BH_ARRAY_SIZE(cases), argc > 1 ? argv[1] : NULL);

	for (size_t i = 0; i < n_owned; i++)
		free(owned[i]);
	return r;
}
