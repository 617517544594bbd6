// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulkhead/log.h"
#include "bulkhead/util.h"
#include "cli.h"

#define DEFAULT_ADMIN "ipc:///run/bulkhead/controller.sock"

static char *cfg_values[5];

/* Reads "key = value" lines of the config file into the settings not given as flags. */
static void read_config(struct cli *c)
{
	char path[4096], *text = NULL, *line, *save = NULL;
	const char *file = getenv("BULKHEAD_CONFIG"), *home = getenv("HOME");
	size_t len;

	if (!file) {
		if (!home)
			return;
		snprintf(path, sizeof(path), "%s/.config/bulkhead/config", home);
		file = path;
	}
	if (bh_read_file(file, 65536, &text, &len))
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char key[32], val[4096];
		static const char *const keys[] = {"admin-socket", "controller", "cert", "key", "ca"};
		const char **slots[] = {&c->admin_socket, &c->controller, &c->cert, &c->key, &c->ca};

		if (line[0] == '#' || sscanf(line, " %31[a-z-] = %4095s", key, val) != 2)
			continue;
		for (size_t i = 0; i < BH_ARRAY_SIZE(keys); i++) {
			if (strcmp(key, keys[i]) == 0 && !*slots[i]) {
				free(cfg_values[i]);
				cfg_values[i] = strdup(val);
				*slots[i] = cfg_values[i];
			}
		}
	}
	free(text);
}

int cli_connect(struct cli *c)
{
	struct bh_rpc_client_opts o = {.connect_wait_ms = 3000};
	struct bh_tls_opts tls = {0};
	struct bh_error err = {0};
	char url[4200], *cert = NULL, *key = NULL, *ca = NULL;
	size_t len;
	int rc = 1;

	if (!c->admin_socket && !c->controller)
		read_config(c);
	if (c->controller) {
		if (!c->cert || !c->key || !c->ca) {
			fprintf(stderr, "bulkhead: --controller needs --cert, --key and --ca (an "
					"operator certificate and the controller's CA)\n");
			return 1;
		}
		if (bh_read_file(c->cert, 1 << 20, &cert, &len) ||
		    bh_read_file(c->key, 1 << 20, &key, &len) ||
		    bh_read_file(c->ca, 1 << 20, &ca, &len)) {
			fprintf(stderr, "bulkhead: cannot read %s, %s or %s\n", c->cert, c->key,
				c->ca);
			goto out;
		}
		tls.ca_pem = ca;
		tls.cert_pem = cert;
		tls.key_pem = key;
		tls.verify_peer = true;
		/* the host part of tls+tcp://HOST:PORT is what the controller's certificate names */
		{
			static char host[256];
			const char *h = strstr(c->controller, "://");

			h = h ? h + 3 : c->controller;
			snprintf(host, sizeof(host), "%s", h[0] == '[' ? h + 1 : h);
			*strchrnul(host, h[0] == '[' ? ']' : ':') = '\0';
			tls.server_name = host;
		}
		o.url = c->controller;
		o.tls = &tls;
		o.expect_controller = true;
	} else {
		const char *s = c->admin_socket ? c->admin_socket : DEFAULT_ADMIN;

		snprintf(url, sizeof(url), "%s%s", strncmp(s, "ipc://", 6) ? "ipc://" : "", s);
		o.url = url;
	}
	if (bh_tls_init(&err) || bh_rpc_client_create(&c->client, &o, &err)) {
		fprintf(stderr, "bulkhead: %s\n", err.msg);
		goto out;
	}
	rc = 0;
out:
	free(cert);
	free(key);
	free(ca);
	return rc;
}

int cli_call(struct cli *c, const ProtobufCServiceDescriptor *svc, const char *method,
	     const ProtobufCMessage *req, ProtobufCMessage **resp)
{
	char msg[512];
	int st = bh_rpc_call(c->client, svc, method, req, resp, c->timeout_ms ? c->timeout_ms : 10000,
			     msg, sizeof(msg));

	if (st == BULKHEAD__RPC_STATUS__RPC_OK)
		return 0;
	fprintf(stderr, "bulkhead: %s%s\n", msg,
		st == BULKHEAD__RPC_STATUS__RPC_UNAVAILABLE
			? " (is the controller running? as root, the local admin socket is "
			  "used; elsewhere give --controller with an operator certificate)"
			: "");
	return 1;
}

const char *cli_time(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t) {
		snprintf(buf, len, "-");
		return buf;
	}
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
	return buf;
}

bool cli_list_args(struct cli *c, int argc, char **argv)
{
	if (argc == 2)
		return true;
	if (argc == 4 && (!strcmp(argv[2], "-o") || !strcmp(argv[2], "--output")) &&
	    (!strcmp(argv[3], "json") || !strcmp(argv[3], "table"))) {
		c->json = !strcmp(argv[3], "json");
		return true;
	}
	return false;
}
