// SPDX-License-Identifier: Apache-2.0
/* bulkhead-controller init: the CA, the controller's own certificate, the first operator's, the
 * store and an empty CRL, in a fresh state directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bulkhead/log.h"
#include "bulkhead/pki.h"
#include "bulkhead/util.h"
#include "ctl.h"

int ctl_read(const struct ctl *c, const char *name, char **out, struct bh_error *err)
{
	char path[PATH_MAX];
	size_t len;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	rc = bh_read_file(path, 1 << 20, out, &len);
	if (rc)
		return bh_error_set(err, rc, "reading %s: %s", path, bh_strerror(rc));
	return 0;
}

static int put(const char *dir, const char *name, const char *data, bool force,
	       struct bh_error *err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return bh_file_write_secret(path, data, strlen(data), force, err);
}

int ctl_init_state(const struct ctl_init_opts *o, struct bh_error *err)
{
	static const char *const default_names[] = {"localhost", NULL};
	static const char *const default_addrs[] = {"127.0.0.1", "::1", NULL};
	char *ca_key = NULL, *ca = NULL, *srv_key = NULL, *srv = NULL, *adm_key = NULL, *adm = NULL;
	char *crl = NULL, serial[41], host[256] = "", path[PATH_MAX], fp[72];
	const char *names[34];
	size_t nn = 0;
	struct ctl_store *st = NULL;
	struct stat sb;
	int rc;

	if (mkdir(o->dir, 0700) < 0 && errno != EEXIST)
		return bh_error_set(err, -errno, "creating %s: %s", o->dir, strerror(errno));
	chmod(o->dir, 0700);
	snprintf(path, sizeof(path), "%s/%s", o->dir, CTL_CA_KEY);
	if (!o->force && stat(path, &sb) == 0)
		return bh_error_set(err, -EEXIST,
				    "%s already holds a controller (%s exists): refusing to replace "
				    "its CA; use --force to start over (every agent must enroll again)",
				    o->dir, path);
	/* the controller's names: what was asked, else this host's name and localhost */
	for (const char *const *n = o->names ? o->names : default_names; *n && nn < 32; n++)
		names[nn++] = *n;
	if (!o->names && gethostname(host, sizeof(host) - 1) == 0 && bh_name_valid(host))
		names[nn++] = host;
	names[nn] = NULL;

	struct bh_issue srv_what = {.role = BH_ROLE_CONTROLLER, .name = "controller",
				    .lifetime_s = (o->server_days ? o->server_days : 365) * 86400u,
				    .dns = names, .ips = o->addresses ? o->addresses : default_addrs,
				    .server = true};
	struct bh_issue adm_what = {.role = BH_ROLE_OPERATOR, .name = "admin",
				    .lifetime_s = 365u * 86400u};

	if ((rc = bh_pki_key_generate(&ca_key, err)) ||
	    (rc = bh_pki_ca_create(ca_key, "Bulkhead CA", o->ca_days ? o->ca_days : 3650, &ca,
				   err)) ||
	    (rc = bh_pki_key_generate(&srv_key, err)) ||
	    (rc = bh_pki_issue_for_key(ca, ca_key, srv_key, &srv_what, &srv, serial, err)) ||
	    (rc = bh_pki_key_generate(&adm_key, err)) ||
	    (rc = bh_pki_issue_for_key(ca, ca_key, adm_key, &adm_what, &adm, serial, err)) ||
	    (rc = bh_pki_crl_create(ca, ca_key, NULL, 0, 30, &crl, err)))
		goto out;
	if (o->force) {
		/* starting over: the old store's nodes and certificates belong to the old CA */
		static const char *const old[] = {"bulkhead.db", "bulkhead.db-wal", "bulkhead.db-shm"};

		for (size_t i = 0; i < BH_ARRAY_SIZE(old); i++) {
			snprintf(path, sizeof(path), "%s/%s", o->dir, old[i]);
			unlink(path);
		}
	}
	if ((rc = put(o->dir, CTL_CA_KEY, ca_key, o->force, err)) ||
	    (rc = put(o->dir, CTL_CA_CERT, ca, o->force, err)) ||
	    (rc = put(o->dir, CTL_SERVER_KEY, srv_key, o->force, err)) ||
	    (rc = put(o->dir, CTL_SERVER_CERT, srv, o->force, err)) ||
	    (rc = put(o->dir, CTL_ADMIN_KEY, adm_key, o->force, err)) ||
	    (rc = put(o->dir, CTL_ADMIN_CERT, adm, o->force, err)) ||
	    (rc = put(o->dir, CTL_CRL, crl, true, err)))
		goto out;
	rc = ctl_store_open(&st, o->dir, err);
	if (rc)
		goto out;
	rc = ctl_store_cert_add(st, serial, "admin", "operator", time(NULL) + 365 * 86400, err);
	if (rc)
		goto out;
	bh_pki_fingerprint(ca, fp, NULL);
	printf("controller state created in %s\n"
	       "  CA          %s/%s (fingerprint %s)\n"
	       "  controller  %s/%s (names:",
	       o->dir, o->dir, CTL_CA_CERT, fp, o->dir, CTL_SERVER_CERT);
	for (size_t i = 0; names[i]; i++)
		printf(" %s", names[i]);
	for (const char *const *a = o->addresses ? o->addresses : default_addrs; *a; a++)
		printf(" %s", *a);
	printf(")\n  operator    %s/%s (admin)\n", o->dir, CTL_ADMIN_CERT);
out:
	ctl_store_close(st);
	free(ca_key), free(ca), free(srv_key), free(srv), free(adm_key), free(adm), free(crl);
	return rc;
}
