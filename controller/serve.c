// SPDX-License-Identifier: Apache-2.0
/* bulkhead-controller serve: the daemon. One libuv loop owns the store and every handler. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bulkhead/log.h"
#include "bulkhead/metrics.h"
#include "bulkhead/pki.h"
#include "bulkhead/util.h"
#include "ctl.h"
#include "flows.h"
#include "serve.h"

static void on_signal(uv_signal_t *h, int sig)
{
	bh_log(LOG_NOTICE, "%s: shutting down", strsignal(sig));
	uv_stop(h->loop);
}

/* For ipc:///path sockets: make the directory (0700, root's) so the socket can be created. */
static void admin_dir(const char *url)
{
	char path[PATH_MAX];
	char *slash;

	if (strncmp(url, "ipc://", 6) != 0)
		return;
	snprintf(path, sizeof(path), "%s", url + 6);
	slash = strrchr(path, '/');
	if (!slash || slash == path)
		return;
	*slash = '\0';
	if (mkdir(path, 0700) == 0)
		bh_log(LOG_DEBUG, "created %s", path);
}

static int write_ports(struct ctl *c, int agent, int enroll, struct bh_error *err)
{
	char path[PATH_MAX], text[64];

	snprintf(path, sizeof(path), "%s/%s", c->dir, CTL_PORTS);
	snprintf(text, sizeof(text), "agent %d\nenroll %d\nmetrics %d\n", agent, enroll,
		 c->metrics ? bh_metrics_server_port(c->metrics) : 0);
	return bh_file_write_secret(path, text, strlen(text), true, err);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int ctl_serve(const struct ctl_serve_opts *o, struct bh_error *err)
{
	struct ctl c = {0};
	struct bh_rpc_server_opts so = {0};
	struct ctl_flows_opts fo = {0};
	struct bh_tls_opts tls = {0};
	char *srv_cert = NULL, *srv_key = NULL;
	uv_loop_t loop;
	uv_signal_t sig_term, sig_int;
	int rc, enroll_port = 0;
	unsigned int n = 0;

	snprintf(c.dir, sizeof(c.dir), "%s", o->dir);
	c.cert_lifetime_s = o->cert_lifetime_s ? o->cert_lifetime_s : CTL_DEFAULT_CERT_LIFE;
	uv_loop_init(&loop);
	c.loop = &loop;
	if ((rc = bh_tls_init(err)) || (rc = ctl_read(&c, CTL_CA_CERT, &c.ca_pem, err)) ||
	    (rc = ctl_read(&c, CTL_CA_KEY, &c.ca_key_pem, err)) ||
	    (rc = ctl_read(&c, CTL_SERVER_CERT, &srv_cert, err)) ||
	    (rc = ctl_read(&c, CTL_SERVER_KEY, &srv_key, err)) ||
	    (rc = bh_pki_fingerprint(c.ca_pem, c.ca_fp, err))) {
		if (rc == -ENOENT)
			bh_error_set(err, rc, "%s is not a controller state directory: run "
					      "'bulkhead-controller init --state-dir %s' first",
				     o->dir, o->dir);
		goto out;
	}
	rc = ctl_store_open(&c.store, o->dir, err);
	if (rc)
		goto out;
	rc = ctl_revocations_refresh(&c, err);
	if (rc)
		goto out;
	rc = ctl_policy_load(&c, err);
	if (rc)
		goto out;
	so.loop = &loop;
	so.max_msg = o->max_msg;
	rc = bh_rpc_server_create(&c.rpc, &so, err);
	if (rc)
		goto out;
	if ((rc = ctl_enroll_register(&c)) || (rc = ctl_api_register(&c)) ||
	    (rc = ctl_policy_register(&c)) || (rc = ctl_rollout_init(&c))) {
		bh_error_set(err, rc, "registering handlers");
		goto out;
	}
	fo.keep_s = (uint32_t)o->flow_keep_s;
	fo.minute_keep_s = (uint32_t)o->flow_minute_keep_s;
	if ((rc = ctl_flows_init(&c, &fo, err)))
		goto out;
	if ((rc = ctl_metrics_start(&c, o->metrics ? o->metrics : CTL_DEFAULT_METRICS,
				    o->metrics_public, o->metrics != NULL, err)))
		goto out;
	tls.ca_pem = c.ca_pem;
	tls.cert_pem = srv_cert;
	tls.key_pem = srv_key;
	rc = bh_rpc_server_listen(c.rpc, o->listen, BH_RPC_LISTEN_MTLS, &tls, err);
	if (rc)
		goto out;
	c.agent_port = bh_rpc_server_port(c.rpc, n++);
	if (o->enroll_listen && strcmp(o->enroll_listen, "none") != 0) {
		rc = bh_rpc_server_listen(c.rpc, o->enroll_listen, BH_RPC_LISTEN_ENROLL, &tls, err);
		if (rc)
			goto out;
		enroll_port = bh_rpc_server_port(c.rpc, n++);
	}
	if (o->admin && strcmp(o->admin, "none") != 0) {
		admin_dir(o->admin);
		rc = bh_rpc_server_listen(c.rpc, o->admin, BH_RPC_LISTEN_IPC, NULL, err);
		if (rc)
			goto out;
	}
	rc = write_ports(&c, c.agent_port, enroll_port, err);
	if (rc)
		goto out;
	uv_signal_init(&loop, &sig_term);
	uv_signal_init(&loop, &sig_int);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	bh_log(LOG_NOTICE, "controller serving from %s: agents on port %d, enrollment on port %d, "
			   "CA %s",
	       o->dir, c.agent_port, enroll_port, c.ca_fp);
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = 0;
out:
	ctl_metrics_stop(&c); /* first: a scrape reads everything below */
	bh_rpc_server_destroy(c.rpc);
	ctl_flows_fini(&c); /* before the loop closes its handles */
	uv_walk(&loop, close_walk, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	ctl_rollout_fini(&c);
	ctl_policy_unload(&c);
	ctl_store_close(c.store);
	free(c.ca_pem);
	free(c.ca_key_pem);
	free(srv_cert);
	free(srv_key);
	return rc;
}
