/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Join tokens: "bh1.<id>.<secret>.<ca>" where id is 16 hex digits (public, names the token in
 * lists), secret 32 hex digits (128 random bits; the controller stores only its SHA-256), and ca
 * the 64 hex digits of the controller CA's SHA-256 fingerprint, which the agent pins on first
 * contact (as kubeadm's discovery hash).
 */
#ifndef BULKHEAD_TOKEN_H
#define BULKHEAD_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "bulkhead/error.h"

#define BH_TOKEN_ID_LEN	    16
#define BH_TOKEN_SECRET_LEN 32

struct bh_token {
	char id[BH_TOKEN_ID_LEN + 1];
	char secret[BH_TOKEN_SECRET_LEN + 1];
	char ca_fingerprint[72]; /* "sha256:<64 hex>" */
};

/* Makes a new random token for a CA fingerprint ("sha256:..."). */
int bh_token_generate(struct bh_token *t, const char *ca_fingerprint, struct bh_error *err);

/* Formats t as its printable string (out: at least 128 bytes). */
void bh_token_format(const struct bh_token *t, char *out, size_t len);

/* Parses a printable token; -EINVAL with a message saying what is wrong. */
int bh_token_parse(const char *s, struct bh_token *t, struct bh_error *err);

/* SHA-256 of the secret as 64 lower-case hex digits (out: 65 bytes). */
void bh_token_secret_hash(const char *secret, char out[65]);

/* Parses "30s", "15m", "1h", "7d" or plain seconds into seconds; -EINVAL otherwise. */
int bh_parse_duration(const char *s, unsigned long *seconds);

#endif
