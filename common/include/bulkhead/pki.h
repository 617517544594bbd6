/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PKI with OpenSSL: EC P-256 keys, the controller's CA, certificate signing requests, issued
 * certificates that carry a Bulkhead identity, CA fingerprints for pinning, and CRLs.
 *
 * A Bulkhead identity lives in the certificate subject: CN = name (node name, operator name, or
 * "controller"), OU = role ("agent", "operator" or "controller"), O = "bulkhead". Certificates
 * the CA issues ignore whatever subject a CSR asks for: the CA writes the identity it decided.
 *
 * All PEM strings are NUL-terminated and malloc'd; the caller frees them with free(). Functions
 * return 0 or a negative errno and fill err (may be NULL) with a message naming the cause;
 * OpenSSL's error queue is turned into that message in one place and cleared.
 */
#ifndef BULKHEAD_PKI_H
#define BULKHEAD_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bulkhead/error.h"

enum bh_role {
	BH_ROLE_NONE = 0, /* no verified certificate (enrollment) */
	BH_ROLE_AGENT = 1,
	BH_ROLE_OPERATOR = 2,
	BH_ROLE_CONTROLLER = 3,
};

#define BH_NAME_MAX 64 /* longest node / operator name, bytes */

/* Who a verified certificate says its holder is. */
struct bh_identity {
	enum bh_role role;
	char name[BH_NAME_MAX + 1];
	char serial[41];   /* certificate serial, lower-case hex, no leading zeros */
	time_t not_before;
	time_t not_after;
};

/* "agent", "operator", "controller", "none". Never fails. */
const char *bh_role_name(enum bh_role role);
/* Inverse of bh_role_name(); BH_ROLE_NONE for anything else. */
enum bh_role bh_role_parse(const char *name);

/* A name is 1..BH_NAME_MAX of [a-z0-9.-], starting and ending alphanumeric. */
bool bh_name_valid(const char *name);

/* Generates an EC P-256 private key as unencrypted PKCS#8 PEM. */
int bh_pki_key_generate(char **key_pem, struct bh_error *err);

/* Creates a self-signed CA certificate for key_pem (CN = common_name, valid for days days,
 * basicConstraints CA:TRUE, keyUsage keyCertSign+cRLSign). */
int bh_pki_ca_create(const char *key_pem, const char *common_name, unsigned int days,
		     char **cert_pem, struct bh_error *err);

/* Creates a CSR for key_pem with subject CN = name (the CA decides the rest). */
int bh_pki_csr_create(const char *key_pem, const char *name, char **csr_pem,
		      struct bh_error *err);

/* What the CA puts into a certificate it issues. */
struct bh_issue {
	enum bh_role role;
	const char *name;	     /* CN */
	unsigned int lifetime_s;     /* validity from now (not_before is now - 5 minutes of skew) */
	const char *const *dns;	     /* subjectAltName DNS names, NULL-terminated (may be NULL) */
	const char *const *ips;	     /* subjectAltName IP addresses (v4/v6 literals), NULL-terminated */
	bool server;		     /* extendedKeyUsage serverAuth (else clientAuth only) */
	time_t not_before_override;  /* tests: non-zero sets not_before exactly */
	time_t not_after_override;   /* tests: non-zero sets not_after exactly */
};

/*
 * Signs csr_pem with the CA (ca_cert_pem, ca_key_pem) after checking the CSR's own signature and
 * that its key is EC P-256. Returns the certificate PEM and its serial (random 128-bit, hex as in
 * struct bh_identity) in serial_out (41 bytes). The CSR's requested subject is ignored.
 */
int bh_pki_issue(const char *ca_cert_pem, const char *ca_key_pem, const char *csr_pem,
		 const struct bh_issue *what, char **cert_pem, char serial_out[41],
		 struct bh_error *err);

/* Same, for a key the CA holds itself (the controller's server cert, the first operator). */
int bh_pki_issue_for_key(const char *ca_cert_pem, const char *ca_key_pem, const char *key_pem,
			 const struct bh_issue *what, char **cert_pem, char serial_out[41],
			 struct bh_error *err);

/* SHA-256 of the certificate's DER, as "sha256:" + 64 lower-case hex digits. out: 72 bytes. */
int bh_pki_fingerprint(const char *cert_pem, char out[72], struct bh_error *err);

/* SHA-256 of the public key (DER SubjectPublicKeyInfo) in a certificate, a CSR or a private key
 * PEM, as "sha256:<hex>". Identifies a node's key across its certificates. out: 72 bytes. */
int bh_pki_key_fingerprint(const char *pem, char out[72], struct bh_error *err);

/* Reads identity fields from a certificate (no verification). */
int bh_pki_identity(const char *cert_pem, struct bh_identity *id, struct bh_error *err);

/* Verifies cert_pem against ca_cert_pem at time now (0: the current time): signature chain,
 * validity window, and that its serial is not in the NULL-terminated revoked list. Fills id on
 * success. Errors: -EKEYEXPIRED (expired or not yet valid), -EKEYREVOKED, -EBADMSG (bad PEM),
 * -EACCES (not signed by this CA). */
int bh_pki_verify(const char *ca_cert_pem, const char *cert_pem, const char *const *revoked,
		  time_t now, struct bh_identity *id, struct bh_error *err);

/* True if key_pem is the private key of cert_pem. */
bool bh_pki_key_matches(const char *key_pem, const char *cert_pem);

/* Creates a CRL signed by the CA listing the revoked serials (hex), valid for days days. */
int bh_pki_crl_create(const char *ca_cert_pem, const char *ca_key_pem,
		      const char *const *revoked_serials, size_t n, unsigned int days,
		      char **crl_pem, struct bh_error *err);

/* Writes data to path atomically (temp file + rename) with mode 0600. Refuses to replace an
 * existing file unless overwrite (-EEXIST). */
int bh_file_write_secret(const char *path, const char *data, size_t len, bool overwrite,
			 struct bh_error *err);

#endif
