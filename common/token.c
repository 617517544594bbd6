// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "bulkhead/token.h"

static const char hexd[] = "0123456789abcdef";

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexd[in[i] >> 4];
		out[2 * i + 1] = hexd[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(hexd, s[i]))
			return false;
	return true;
}

int bh_token_generate(struct bh_token *t, const char *ca_fingerprint, struct bh_error *err)
{
	unsigned char id[BH_TOKEN_ID_LEN / 2], secret[BH_TOKEN_SECRET_LEN / 2];

	if (RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1)
		return bh_error_set(err, -EIO, "no randomness for a token");
	hex(id, sizeof(id), t->id);
	hex(secret, sizeof(secret), t->secret);
	snprintf(t->ca_fingerprint, sizeof(t->ca_fingerprint), "%s", ca_fingerprint);
	return 0;
}

void bh_token_format(const struct bh_token *t, char *out, size_t len)
{
	const char *fp = strncmp(t->ca_fingerprint, "sha256:", 7) == 0 ? t->ca_fingerprint + 7
								      : t->ca_fingerprint;

	snprintf(out, len, "bh1.%s.%s.%s", t->id, t->secret, fp);
}

int bh_token_parse(const char *s, struct bh_token *t, struct bh_error *err)
{
	size_t n = s ? strlen(s) : 0;

	/* bh1. + 16 + . + 32 + . + 64 */
	if (n != 4 + BH_TOKEN_ID_LEN + 1 + BH_TOKEN_SECRET_LEN + 1 + 64 || strncmp(s, "bh1.", 4) ||
	    s[4 + BH_TOKEN_ID_LEN] != '.' || s[4 + BH_TOKEN_ID_LEN + 1 + BH_TOKEN_SECRET_LEN] != '.')
		return bh_error_set(err, -EINVAL,
				    "malformed join token: want bh1.<16 hex>.<32 hex>.<64 hex> as "
				    "'bulkhead token create' printed it");
	if (!is_hex(s + 4, BH_TOKEN_ID_LEN) ||
	    !is_hex(s + 4 + BH_TOKEN_ID_LEN + 1, BH_TOKEN_SECRET_LEN) ||
	    !is_hex(s + 4 + BH_TOKEN_ID_LEN + 1 + BH_TOKEN_SECRET_LEN + 1, 64))
		return bh_error_set(err, -EINVAL, "malformed join token: not lower-case hex");
	memcpy(t->id, s + 4, BH_TOKEN_ID_LEN);
	t->id[BH_TOKEN_ID_LEN] = '\0';
	memcpy(t->secret, s + 4 + BH_TOKEN_ID_LEN + 1, BH_TOKEN_SECRET_LEN);
	t->secret[BH_TOKEN_SECRET_LEN] = '\0';
	snprintf(t->ca_fingerprint, sizeof(t->ca_fingerprint), "sha256:%s",
		 s + 4 + BH_TOKEN_ID_LEN + 1 + BH_TOKEN_SECRET_LEN + 1);
	return 0;
}

void bh_token_secret_hash(const char *secret, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(secret, strlen(secret), md, &mdlen, EVP_sha256(), NULL);
	hex(md, 32, out);
}

int bh_parse_duration(const char *s, unsigned long *seconds)
{
	char *end;
	unsigned long v, mul = 1;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end) {
		switch (*end) {
		case 's':
			mul = 1;
			break;
		case 'm':
			mul = 60;
			break;
		case 'h':
			mul = 3600;
			break;
		case 'd':
			mul = 86400;
			break;
		default:
			return -EINVAL;
		}
		if (end[1])
			return -EINVAL;
	}
	if (v > 100ul * 365 * 86400 / mul)
		return -ERANGE;
	*seconds = v * mul;
	return 0;
}
