// SPDX-License-Identifier: Apache-2.0
/*
 * The agent daemon: one libuv loop that owns the datapath and every piece of mutable state, and
 * two worker threads that make the blocking calls to the controller.
 *
 * Threads. The RPC client is synchronous and a Watch holds its caller for up to 30 s, so calls run
 * on workers (worker.c): the loop builds a job (request and all), a worker makes the call and
 * hands the job back, and the job's done() runs on the loop, which applies what came back to the
 * datapath and decides what to send next. Nothing but the job crosses threads, so the daemon's
 * code takes no locks (worker.c's queue has the only one). One worker carries the long-poll
 * (Watch), the other the short calls (ReportEndpoints, Ack, Renew, the connection hello), so that
 * a SIGHUP's report or a renewal does not wait behind a held Watch.
 *
 * Network namespaces. With `netns:` the loop thread enters the namespace (interfaces are looked up
 * and programs attached there) after the workers started: they, and the NNG threads the first
 * call creates on them, stay in the original namespace, so the controller is dialled from where
 * the node's own address lives (in the tests, 127.0.0.1 of the host).
 *
 * Fail-static: whatever happens to the controller, the datapath keeps the last rule set that
 * applied (pinned maps outlive the process too); calls that cannot reach it are retried with
 * exponential backoff and jitter, and every reconnection reports the endpoints again and resyncs
 * with a Watch from the enforcing revision.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <uv.h>

#include "bulkhead/log.h"
#include "bulkhead/metrics.h"
#include "bulkhead/pki.h"
#include "bulkhead/rpc.h"
#include "bulkhead/util.h"
#include "daemon.h"
#include "dataplane.h"
#include "enroll.h"
#include "flowexport.h"
#include "worker.h"

#define ST(x) BULKHEAD__RPC_STATUS__RPC_##x

#define WATCH_WAIT_MS	30000 /* how long the controller may hold a Watch */
#define WATCH_SLACK_MS	15000 /* on top of that before the call gives up */
#define CALL_TIMEOUT_MS 15000 /* every other call */
#define BACKOFF_MIN_MS	500   /* controller unreachable: first retry after ~0.5 s ... */
#define BACKOFF_MAX_MS	30000 /* ... doubling up to 30 s */
#define HOLD_MIN_MS	1000  /* a rule set that did not apply: watch again after 1 s ... */
#define HOLD_MAX_MS	30000 /* ... doubling up to 30 s */
#define RENEW_CHECK_MS	60000 /* look at the certificate at least this often */
#define SETTLE_AFTER_MS 100   /* bring the standby generation up to date once idle */
#define FAST_EMPTY_MS	1000  /* an empty Watch answer sooner than this was not a long-poll */
#define PROBE_MS	250   /* backing off: how often to look whether the connection is back */
#define FLOW_HOLD_MS	5000  /* the controller could not take flows now: try again after */

/*
 * The first-start rule set (before the controller has said anything) uses numbers the controller
 * never hands out: identities below BH_ID_USER_MIN that bpf/bulkhead.h does not reserve, and rule
 * ids between the datapath's (<= 15) and the controller's (16, 17, >= 256). The first rule set from
 * the controller replaces all of it.
 */
#define FIRST_ID_VETH	      255
#define FIRST_ID_HOST	      254 /* host interfaces: may keep talking to the controller */
#define FIRST_RULE_DEFAULT    250
#define FIRST_RULE_CONTROLLER 251
#define FIRST_CTL_ADDRS_MAX   8

enum conn_state { CONN_NEVER, CONN_UP, CONN_DOWN };

/* A configuration shared by the daemon and the report jobs built from it (loop thread only). */
struct cfgref {
	struct agent_config *c;
	unsigned int refs;
};

struct daemon {
	uv_loop_t loop;
	struct cfgref *cfg;
	int log_level_override;
	char state_dir[PATH_MAX]; /* fixed at start: the workers read it */
	char status_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct agent_identity id;
	bool loop_ok;
	struct agent_dp *dp;
	struct agent_worker *watcher, *unary, *flows_w;
	struct bh_rpc_client *client;

	/* what the conversation with the controller needs next */
	bool client_stale; /* renewed certificate: reconnect with it once no call uses the client */
	bool watch_busy, unary_busy, flows_busy;
	bool need_hello;    /* (re)connected: report (or say hello) before the first Watch */
	bool need_report;   /* the endpoints to report again (SIGHUP) */
	bool reported_any;  /* a non-empty list went out: an empty one now means "none left" */
	bool need_snapshot; /* a delta did not match: the next Watch asks for everything */
	bool renew_wanted;
	bool renew_failed; /* the last renewal failed: look again sooner */
	struct {
		bool want;
		uint64_t revision, enforcing;
		char error[512];
	} ack;

	/* connection */
	enum conn_state conn;
	bool ever_connected;
	time_t conn_since;
	char conn_error[512];
	uint32_t backoff_ms;
	uv_timer_t retry_timer; /* armed: nothing goes to the controller until it fires */
	bool retry_armed;
	uv_timer_t probe_timer; /* while armed: has the client's connection come back? */

	/* applying */
	uv_timer_t hold_timer; /* armed: no Watch until it fires (after a refused rule set) */
	bool hold_armed;
	uint32_t hold_ms;
	uint64_t refused_revision; /* last refused, to log a repeated refusal once */
	char refused_msg[512];
	char watch_refused[512]; /* the same for a Watch the controller refuses */
	char first_start;	 /* 'o' observe, 'e' enforce, 0: the controller's rule set */
	uint64_t revision_acked;
	time_t last_answer;
	char last_error[512];
	time_t last_error_at;
	uint64_t applies, apply_failures;
	double apply_ms_last, apply_ms_sum; /* successful applies */
	uv_timer_t settle_timer;

	/* first-start exception: this node's own connection to its controller */
	Bulkhead__IpcacheEntry ctl_ipc[FIRST_CTL_ADDRS_MAX];
	uint8_t ctl_addr[FIRST_CTL_ADDRS_MAX][16];
	size_t n_ctl_addrs;

	/* flow export */
	struct agent_flowx *flowx;
	uv_timer_t flow_timer;	    /* every flow-export interval: drain the counters */
	uv_timer_t flow_hold_timer; /* armed: no ReportFlows until it fires */
	bool flow_hold;
	time_t last_flow_report;
	char flow_error[256];

	/* the rest of the loop */
	uv_poll_t events_poll;
	uint64_t denies, would_denies;
	uv_timer_t renew_timer;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_pipe_t status_srv;
	struct bh_metrics_server *metrics;
	int notify_fd; /* systemd's NOTIFY_SOCKET, -1 without */
	struct sockaddr_un notify_addr;
	socklen_t notify_len;
	bool stopping;
};

static void kick(struct daemon *d);

/* ---- small helpers -------------------------------------------------------------------------- */

static struct cfgref *cfg_hold(struct cfgref *r)
{
	r->refs++;
	return r;
}

static void cfg_drop(struct cfgref *r)
{
	if (r && --r->refs == 0) {
		agent_config_free(r->c);
		free(r);
	}
}

static uint64_t now_ms(void)
{
	return bh_now_mono_ns() / 1000000;
}

/* d with +-50% jitter: a fleet that lost its controller together does not come back together. */
static uint32_t jitter(uint32_t d)
{
	return d / 2 + (uint32_t)(random() % (d + 1));
}

static void set_error(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct daemon *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->last_error, sizeof(d->last_error), fmt, ap);
	va_end(ap);
	d->last_error_at = time(NULL);
}

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, if systemd gave one. */
static void notify_open(struct daemon *d)
{
	const char *p = getenv("NOTIFY_SOCKET");

	d->notify_fd = -1;
	if (!p || (p[0] != '/' && p[0] != '@') || strlen(p) >= sizeof(d->notify_addr.sun_path))
		return;
	/* made before entering a netns: an abstract address is looked up in the socket's netns */
	d->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	d->notify_addr.sun_family = AF_UNIX;
	memcpy(d->notify_addr.sun_path, p, strlen(p));
	if (p[0] == '@')
		d->notify_addr.sun_path[0] = '\0';
	d->notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(p));
}

static void notify(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void notify(struct daemon *d, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (d->notify_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		sendto(d->notify_fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1,
		       MSG_NOSIGNAL, (struct sockaddr *)&d->notify_addr, d->notify_len);
}

static uint64_t revision(struct daemon *d)
{
	return agent_dp_revision(d->dp);
}

/* ---- the first-start rule set --------------------------------------------------------------- */

/* Resolves the controller's address, for the first-start exception (before entering a netns:
 * resolution uses the node's own network). */
static void controller_addrs_resolve(struct daemon *d)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc;

	d->n_ctl_addrs = 0;
	rc = getaddrinfo(d->id.host, NULL, &hints, &res);
	if (rc) {
		bh_log(LOG_WARNING,
		       "resolving the controller %s: %s: a first start in enforce mode "
		       "will not except the connection to it",
		       d->id.host, gai_strerror(rc));
		return;
	}
	for (struct addrinfo *a = res; a && d->n_ctl_addrs < FIRST_CTL_ADDRS_MAX; a = a->ai_next) {
		Bulkhead__IpcacheEntry *e = &d->ctl_ipc[d->n_ctl_addrs];
		uint8_t *addr = d->ctl_addr[d->n_ctl_addrs];
		size_t alen;
		bool dup = false;

		if (a->ai_family == AF_INET) {
			memcpy(addr, &((struct sockaddr_in *)a->ai_addr)->sin_addr, 4);
			alen = 4;
		} else if (a->ai_family == AF_INET6) {
			memcpy(addr, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, 16);
			alen = 16;
		} else {
			continue;
		}
		for (size_t i = 0; i < d->n_ctl_addrs; i++)
			dup |= d->ctl_ipc[i].prefix.len == alen &&
			       !memcmp(d->ctl_addr[i], addr, alen);
		if (dup)
			continue;
		bulkhead__ipcache_entry__init(e);
		e->prefix.data = addr;
		e->prefix.len = alen;
		e->prefix_len = (uint32_t)alen * 8;
		e->identity = BH_ID_CONTROLLER;
		d->n_ctl_addrs++;
	}
	freeaddrinfo(res);
}

/*
 * Applies what the configured endpoints do before the controller has sent anything: observe
 * (every endpoint known to the datapath, default allow: traffic passes and is counted) or enforce
 * (default deny both ways: fail closed, except a host interface's connection to the controller,
 * without which the node could never learn its policy). Expressed as a revision-0 snapshot, so the
 * first snapshot from the controller replaces it whole, and a delta from revision 0 would not
 * match it (the daemon then asks for a snapshot). Only while the datapath enforces revision 0.
 */
static void first_start_apply(struct daemon *d)
{
	const struct agent_config *c = d->cfg->c;
	Bulkhead__NodePolicy np = BULKHEAD__NODE_POLICY__INIT;
	Bulkhead__DirectionDefault def = BULKHEAD__DIRECTION_DEFAULT__INIT;
	Bulkhead__Rule rule = BULKHEAD__RULE__INIT, *rulep[1] = {&rule};
	Bulkhead__IpcacheEntry *ipcp[FIRST_CTL_ADDRS_MAX];
	Bulkhead__Endpoint *eps = calloc(c->n_eps + 1, sizeof(*eps));
	Bulkhead__Endpoint **epp = calloc(c->n_eps + 1, sizeof(*epp));
	struct bh_error err = {0};
	char missing[256] = "";
	bool host = false, except;
	int rc;

	if (revision(d) != 0)
		goto out;
	if (!eps || !epp) {
		bh_log(LOG_ERR, "first start: out of memory");
		goto out;
	}
	def.verdict = c->first_enforce ? BULKHEAD__VERDICT__VERDICT_DENY
				       : BULKHEAD__VERDICT__VERDICT_ALLOW;
	def.rule_id = FIRST_RULE_DEFAULT;
	for (size_t i = 0; i < c->n_eps; i++) {
		const struct agent_endpoint_cfg *ec = &c->eps[i];
		Bulkhead__Endpoint *e = &eps[np.n_endpoints];

		/* one missing interface must not leave the others unprotected */
		if (!if_nametoindex(ec->ifname)) {
			size_t n = strlen(missing);

			snprintf(missing + n, sizeof(missing) - n, "%s%s (%s)", n ? ", " : "",
				 ec->name, ec->ifname);
			continue;
		}
		bulkhead__endpoint__init(e);
		e->name = ec->name;
		e->ifname = ec->ifname;
		e->identity = ec->host ? FIRST_ID_HOST : FIRST_ID_VETH;
		e->mode = c->first_enforce ? BULKHEAD__MODE__MODE_ENFORCE
					   : BULKHEAD__MODE__MODE_OBSERVE;
		e->attach =
			ec->host ? BULKHEAD__ATTACH__ATTACH_HOST : BULKHEAD__ATTACH__ATTACH_VETH;
		e->ingress = &def;
		e->egress = &def;
		host |= ec->host;
		epp[np.n_endpoints++] = e;
	}
	np.endpoints = epp;
	except = c->first_enforce && host && d->n_ctl_addrs > 0;
	if (except) {
		for (size_t i = 0; i < d->n_ctl_addrs; i++)
			ipcp[i] = &d->ctl_ipc[i];
		np.ipcache = ipcp;
		np.n_ipcache = d->n_ctl_addrs;
		rule.local_identity = FIRST_ID_HOST;
		rule.remote_identity = BH_ID_CONTROLLER;
		rule.direction = BULKHEAD__DIRECTION__DIRECTION_EGRESS;
		rule.protocol = IPPROTO_TCP;
		rule.port = d->id.port;
		rule.verdict = BULKHEAD__VERDICT__VERDICT_ALLOW;
		rule.rule_id = FIRST_RULE_CONTROLLER;
		np.rules = rulep;
		np.n_rules = 1;
	}
	if (missing[0])
		bh_log(LOG_WARNING,
		       "first start: interface not found for %s: not protected until "
		       "it exists and the controller's rule set names it",
		       missing);
	rc = agent_dp_apply_snapshot(d->dp, &np, &err);
	if (rc) {
		bh_log(LOG_ERR,
		       "first start: the local rule set did not apply: %s; nothing is "
		       "enforced until the controller's rule set arrives",
		       err.msg);
		set_error(d, "first start: %s", err.msg);
		goto out;
	}
	d->first_start = !np.n_endpoints ? 0 : c->first_enforce ? 'e' : 'o';
	if (!np.n_endpoints)
		bh_log(LOG_NOTICE, "first start: no rule set from the controller yet, and no "
				   "endpoint to protect until it arrives");
	else if (!c->first_enforce)
		bh_log(LOG_NOTICE,
		       "first start: no rule set from the controller yet: %zu "
		       "endpoint%s in observe mode (traffic passes and is counted) until "
		       "it arrives",
		       np.n_endpoints, np.n_endpoints == 1 ? "" : "s");
	else
		bh_log(LOG_NOTICE,
		       "first start: no rule set from the controller yet: %zu "
		       "endpoint%s fail closed (all traffic denied%s) until it arrives",
		       np.n_endpoints, np.n_endpoints == 1 ? "" : "s",
		       except ? ", except this node's connection to the controller" : "");
out:
	free(eps);
	free(epp);
}

/* ---- jobs: the calls to the controller ------------------------------------------------------ */

enum job_kind { JOB_CLIENT, JOB_HELLO, JOB_REPORT, JOB_WATCH, JOB_ACK, JOB_RENEW, JOB_FLOWS };

static const char *const job_names[] = {
	[JOB_CLIENT] = "connecting", [JOB_HELLO] = "GetNode", [JOB_REPORT] = "ReportEndpoints",
	[JOB_WATCH] = "Watch",	     [JOB_ACK] = "Ack",	      [JOB_RENEW] = "Renew",
	[JOB_FLOWS] = "ReportFlows",
};

struct rpc_job {
	struct agent_job base;
	struct daemon *d; /* done() only */
	enum job_kind kind;
	struct bh_rpc_client *client; /* to call with; JOB_CLIENT: the one made */
	const char *state_dir;
	struct cfgref *cfg; /* JOB_REPORT: what the report points into */
	union {
		Bulkhead__NodeRef hello;
		Bulkhead__EndpointReport report;
		Bulkhead__WatchRequest watch;
		Bulkhead__AckRequest ack;
	} rq;
	struct agent_flowx_report flows; /* JOB_FLOWS */
	Bulkhead__ReportedEndpoint *eps;
	Bulkhead__ReportedEndpoint **epp;
	char text[512];

	/* results, for done() */
	int status; /* RPC status */
	char msg[512];
	ProtobufCMessage *resp;
	uint64_t took_ms;
};

/* Worker thread: the blocking call. Touches nothing but the job. */
static void job_run(struct agent_job *aj)
{
	struct rpc_job *j = (struct rpc_job *)aj;
	const ProtobufCServiceDescriptor *svc = &bulkhead__agent__descriptor;
	struct bh_error err = {0};
	uint64_t t0 = now_ms();
	int rc;

	switch (j->kind) {
	case JOB_CLIENT:
		j->client = NULL;
		rc = agent_client(j->state_dir, &j->client, &err);
		j->status = rc ? ST(UNAVAILABLE) : ST(OK);
		snprintf(j->msg, sizeof(j->msg), "%s", err.msg);
		break;
	case JOB_RENEW:
		rc = agent_renew(j->state_dir, j->client, &err);
		j->status = !rc ? ST(OK) : rc == -ECONNREFUSED ? ST(UNAVAILABLE) : ST(UNKNOWN);
		snprintf(j->msg, sizeof(j->msg), "%s", err.msg);
		break;
	case JOB_HELLO:
		j->status = bh_rpc_call(j->client, svc, "GetNode", &j->rq.hello.base, &j->resp,
					CALL_TIMEOUT_MS, j->msg, sizeof(j->msg));
		break;
	case JOB_REPORT:
		j->status = bh_rpc_call(j->client, svc, "ReportEndpoints", &j->rq.report.base,
					&j->resp, CALL_TIMEOUT_MS, j->msg, sizeof(j->msg));
		break;
	case JOB_WATCH:
		j->status =
			bh_rpc_call(j->client, svc, "Watch", &j->rq.watch.base, &j->resp,
				    j->rq.watch.wait_ms + WATCH_SLACK_MS, j->msg, sizeof(j->msg));
		break;
	case JOB_ACK:
		j->status = bh_rpc_call(j->client, svc, "Ack", &j->rq.ack.base, &j->resp,
					CALL_TIMEOUT_MS, j->msg, sizeof(j->msg));
		break;
	case JOB_FLOWS:
		j->status = bh_rpc_call(j->client, svc, "ReportFlows", &j->flows.msg.base,
					&j->resp, CALL_TIMEOUT_MS, j->msg, sizeof(j->msg));
		break;
	}
	j->took_ms = now_ms() - t0;
}

static void job_done(struct agent_job *aj);

static struct rpc_job *job_new(struct daemon *d, enum job_kind kind)
{
	struct rpc_job *j = calloc(1, sizeof(*j));

	if (!j) {
		bh_log(LOG_ERR, "out of memory");
		return NULL;
	}
	j->base.run = job_run;
	j->base.done = job_done;
	j->d = d;
	j->kind = kind;
	j->client = d->client;
	j->state_dir = d->state_dir;
	return j;
}

static void job_free(struct rpc_job *j)
{
	if (j->resp)
		protobuf_c_message_free_unpacked(j->resp, NULL);
	cfg_drop(j->cfg);
	agent_flowx_report_release(&j->flows);
	free(j->eps);
	free(j->epp);
	free(j);
}

/* Each worker makes one call at a time: the Watch (held long), flow reports (held until the
 * controller has stored them), and every other call. */
static void job_post(struct daemon *d, struct rpc_job *j)
{
	if (j->kind == JOB_WATCH) {
		d->watch_busy = true;
		agent_worker_post(d->watcher, &j->base);
	} else if (j->kind == JOB_FLOWS) {
		d->flows_busy = true;
		agent_worker_post(d->flows_w, &j->base);
	} else {
		d->unary_busy = true;
		agent_worker_post(d->unary, &j->base);
	}
}

/* The whole endpoint list of the configuration, complete: the controller removes the node's
 * workloads it does not list. */
static struct rpc_job *report_job(struct daemon *d)
{
	const struct agent_config *c = d->cfg->c;
	struct rpc_job *j = job_new(d, JOB_REPORT);

	if (!j)
		return NULL;
	j->eps = calloc(c->n_eps + 1, sizeof(*j->eps));
	j->epp = calloc(c->n_eps + 1, sizeof(*j->epp));
	if (!j->eps || !j->epp) {
		bh_log(LOG_ERR, "out of memory");
		job_free(j);
		return NULL;
	}
	j->cfg = cfg_hold(d->cfg);
	bulkhead__endpoint_report__init(&j->rq.report);
	for (size_t i = 0; i < c->n_eps; i++) {
		Bulkhead__ReportedEndpoint *e = &j->eps[i];

		bulkhead__reported_endpoint__init(e);
		e->name = c->eps[i].name;
		e->ifname = c->eps[i].ifname;
		e->attach = c->eps[i].host ? BULKHEAD__ATTACH__ATTACH_HOST
					   : BULKHEAD__ATTACH__ATTACH_VETH;
		e->addresses = c->eps[i].addrs;
		e->n_addresses = c->eps[i].n_addrs;
		e->labels = c->eps[i].labels;
		j->epp[i] = e;
	}
	j->rq.report.endpoints = j->epp;
	j->rq.report.n_endpoints = c->n_eps;
	j->rq.report.complete = true;
	return j;
}

/* ---- connection state ----------------------------------------------------------------------- */

static bool transport_failure(int status)
{
	return status == ST(UNAVAILABLE) || status == ST(DEADLINE_EXCEEDED);
}

static void on_retry_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;

	d->retry_armed = false;
	uv_timer_stop(&d->probe_timer);
	kick(d);
}

/* The client redials on its own: once it has a connection again, waiting out the rest of a
 * long backoff only delays the resync. */
static void on_probe_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;

	if (d->retry_armed && d->client && !d->client_stale && bh_rpc_client_connected(d->client)) {
		bh_log(LOG_DEBUG, "the connection is back: retrying now");
		uv_timer_stop(&d->retry_timer);
		on_retry_timer(&d->retry_timer);
	}
}

/* A call could not reach the controller: keep enforcing, say so once, retry with backoff. */
static void conn_failed(struct daemon *d, const char *what, const char *msg)
{
	if (d->conn != CONN_DOWN) {
		bh_log(LOG_WARNING,
		       "controller %s unreachable: %s; enforcing revision %" PRIu64 "%s; retrying",
		       d->id.controller, msg, revision(d),
		       d->first_start == 'o'   ? " (first start: observe)"
		       : d->first_start == 'e' ? " (first start: enforce)"
					       : "");
		d->conn = CONN_DOWN;
		d->conn_since = time(NULL);
		notify(d, "STATUS=controller unreachable; enforcing revision %" PRIu64,
		       revision(d));
	} else if (strcmp(msg, d->conn_error)) {
		bh_log(LOG_INFO, "controller %s still unreachable (%s): %s", d->id.controller, what,
		       msg);
	} else {
		bh_log(LOG_DEBUG, "controller %s still unreachable (%s): %s", d->id.controller,
		       what, msg);
	}
	snprintf(d->conn_error, sizeof(d->conn_error), "%s", msg);
	set_error(d, "controller unreachable: %s", msg);
	d->need_hello = true; /* a new connection: report again, then resync */
	if (!d->retry_armed) {
		uint32_t delay = jitter(d->backoff_ms);

		bh_log(LOG_DEBUG, "next attempt in %u ms", delay);
		uv_timer_start(&d->retry_timer, on_retry_timer, delay, 0);
		if (delay > PROBE_MS)
			uv_timer_start(&d->probe_timer, on_probe_timer, PROBE_MS, PROBE_MS);
		d->retry_armed = true;
		d->backoff_ms =
			d->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d->backoff_ms * 2;
	}
}

/* The controller answered (whatever it said). */
static void conn_ok(struct daemon *d)
{
	if (d->conn != CONN_UP) {
		if (d->conn == CONN_DOWN)
			bh_log(LOG_NOTICE,
			       "connected to %s as %s%s after %lds; enforcing "
			       "revision %" PRIu64 ", resyncing",
			       d->id.controller, d->id.node, d->ever_connected ? " again" : "",
			       (long)(time(NULL) - d->conn_since), revision(d));
		else
			bh_log(LOG_NOTICE, "connected to %s as %s; enforcing revision %" PRIu64,
			       d->id.controller, d->id.node, revision(d));
		d->conn = CONN_UP;
		d->ever_connected = true;
		d->conn_since = time(NULL);
		notify(d, "STATUS=connected to %s; enforcing revision %" PRIu64, d->id.controller,
		       revision(d));
	}
	d->conn_error[0] = '\0';
	d->backoff_ms = BACKOFF_MIN_MS;
}

/* ---- applying what a Watch brought ---------------------------------------------------------- */

static void on_hold_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;

	d->hold_armed = false;
	kick(d);
}

/* No Watch for a while: what it would bring right now cannot apply (or it was not a long-poll). */
static void hold_watch(struct daemon *d)
{
	if (d->hold_armed)
		return;
	uv_timer_start(&d->hold_timer, on_hold_timer, jitter(d->hold_ms), 0);
	d->hold_armed = true;
	d->hold_ms = d->hold_ms * 2 > HOLD_MAX_MS ? HOLD_MAX_MS : d->hold_ms * 2;
}

static void on_settle_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;
	struct bh_error err = {0};

	if (agent_dp_settle(d->dp, &err))
		bh_log(LOG_WARNING,
		       "the standby generation did not catch up (%s); the next apply "
		       "resyncs it",
		       err.msg);
}

static void ack_set(struct daemon *d, uint64_t rev, const char *error)
{
	d->ack.want = true;
	d->ack.revision = rev;
	d->ack.enforcing = revision(d);
	snprintf(d->ack.error, sizeof(d->ack.error), "%s", error ? error : "");
}

static void watch_apply(struct daemon *d, const Bulkhead__WatchResponse *w, bool asked_snapshot)
{
	const Bulkhead__NodePolicy *np = w->snapshot;
	const Bulkhead__NodePolicyDelta *dl = w->delta;
	uint64_t before = revision(d), target = np ? np->revision : dl->to_revision, t0;
	struct bh_error err = {0};
	char what[160];
	double ms;
	int rc;

	t0 = bh_now_mono_ns();
	rc = np ? agent_dp_apply_snapshot(d->dp, np, &err) : agent_dp_apply_delta(d->dp, dl, &err);
	ms = (double)(bh_now_mono_ns() - t0) / 1e6;
	if (rc == 0) {
		if (np)
			snprintf(what, sizeof(what),
				 "snapshot: %zu rules, %zu ipcache, %zu endpoints", np->n_rules,
				 np->n_ipcache, np->n_endpoints);
		else
			snprintf(what, sizeof(what),
				 "delta: +%zu -%zu rules, +%zu -%zu ipcache, "
				 "+%zu -%zu endpoints",
				 dl->n_rules_added, dl->n_rules_removed, dl->n_ipcache_added,
				 dl->n_ipcache_removed, dl->n_endpoints_added,
				 dl->n_endpoints_removed);
		bh_log(LOG_NOTICE, "revision %" PRIu64 " applied (%s) in %.1f ms%s", target, what,
		       ms, d->first_start ? "; the first-start rule set is gone" : "");
		d->first_start = 0;
		d->applies++;
		d->apply_ms_last = ms;
		d->apply_ms_sum += ms;
		d->need_snapshot = false;
		d->hold_ms = HOLD_MIN_MS;
		d->refused_revision = 0;
		d->refused_msg[0] = '\0';
		ack_set(d, target, NULL);
		notify(d, "STATUS=connected to %s; enforcing revision %" PRIu64, d->id.controller,
		       target);
		uv_timer_start(&d->settle_timer, on_settle_timer, SETTLE_AFTER_MS, 0);
		return;
	}
	/* A delta that does not fit what is enforced (another revision, entries missing or
	 * already there): the datapath is fine, the delta is not for it. Ask for a snapshot. */
	if (dl && !asked_snapshot && (rc == -ESTALE || rc == -ENOENT || rc == -EEXIST)) {
		bh_log(LOG_INFO,
		       "revision %" PRIu64 ": the delta from %" PRIu64 " does not match "
		       "what is enforced (%s); asking for a snapshot",
		       target, dl->from_revision, err.msg);
		d->need_snapshot = true;
		return;
	}
	d->apply_failures++;
	if (target != d->refused_revision || strcmp(err.msg, d->refused_msg))
		bh_log(LOG_WARNING, "revision %" PRIu64 " refused: %s; still enforcing %" PRIu64,
		       target, err.msg, before);
	else
		bh_log(LOG_DEBUG, "revision %" PRIu64 " refused again: %s", target, err.msg);
	d->refused_revision = target;
	snprintf(d->refused_msg, sizeof(d->refused_msg), "%s", err.msg);
	set_error(d, "revision %" PRIu64 " refused: %s", target, err.msg);
	d->need_snapshot = false; /* the controller sends a snapshot after a failed Ack anyway */
	ack_set(d, target, err.msg);
	hold_watch(d);
}

/* ---- certificate renewal -------------------------------------------------------------------- */

/*
 * When to look at the certificate next: at its renewal point (two thirds of its lifetime, as
 * agent_renew_due() says), and at least every minute (someone may replace it, renewals fail and
 * are retried). A renewal is only possible before it expires: the controller refuses an expired
 * certificate on every call.
 */
static uint64_t renew_next_ms(struct daemon *d)
{
	char path[PATH_MAX + 16], *pem = NULL;
	struct bh_identity id;
	size_t len;
	time_t now = time(NULL), due;
	uint64_t ms = RENEW_CHECK_MS;

	snprintf(path, sizeof(path), "%s/%s", d->state_dir, AGENT_CERT);
	if (bh_read_file(path, 1 << 20, &pem, &len) == 0 && bh_pki_identity(pem, &id, NULL) == 0) {
		due = id.not_before + (id.not_after - id.not_before) * 2 / 3;
		if (d->renew_failed && id.not_after > now)
			due = now + (id.not_after - now) / 10; /* retry well before it expires */
		if (due > now && (uint64_t)(due - now) * 1000 < ms)
			ms = (uint64_t)(due - now) * 1000;
	}
	free(pem);
	return ms < 1000 ? 1000 : ms;
}

static void on_renew_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;

	if (!d->renew_wanted && agent_renew_due(d->state_dir)) {
		bh_log(LOG_INFO, "certificate past two thirds of its lifetime: renewing");
		d->renew_wanted = true;
		kick(d);
		return; /* done_renew() schedules the next look */
	}
	uv_timer_start(&d->renew_timer, on_renew_timer, renew_next_ms(d), 0);
}

/* ---- job completions (loop thread) ---------------------------------------------------------- */

static void done_client(struct daemon *d, struct rpc_job *j)
{
	if (j->status != ST(OK)) {
		conn_failed(d, "connecting", j->msg);
		return;
	}
	bh_rpc_client_destroy(d->client); /* no call uses it: kick() waited for that */
	d->client = j->client;
	d->client_stale = false;
	d->need_hello = true;
}

static void done_hello(struct daemon *d, struct rpc_job *j)
{
	const Bulkhead__Node *n = (const Bulkhead__Node *)j->resp;

	if (j->status == ST(OK) && n->revoked)
		bh_log(LOG_ERR,
		       "the controller says node %s is revoked: it will refuse this "
		       "node's calls; enforcing revision %" PRIu64,
		       d->id.node, revision(d));
	else if (j->status != ST(OK))
		bh_log(LOG_WARNING, "the controller answered GetNode with %s: %s",
		       bh_rpc_status_name(j->status), j->msg);
	d->need_hello = false;
}

static void done_report(struct daemon *d, struct rpc_job *j)
{
	const Bulkhead__ApplyResponse *r = (const Bulkhead__ApplyResponse *)j->resp;
	size_t changed = 0;

	d->need_hello = false;
	if (j->status == ST(OK))
		d->reported_any = j->rq.report.n_endpoints > 0;
	if (j->status != ST(OK)) {
		/* the configuration is what is wrong: reporting again will not help until it is
		 * fixed (SIGHUP), and the node's policy still comes through Watch */
		bh_log(LOG_ERR,
		       "the controller refused this node's endpoints (%s): %s; fix %s "
		       "and reload (SIGHUP)",
		       bh_rpc_status_name(j->status), j->msg, d->cfg->c->path);
		set_error(d, "endpoints refused: %s", j->msg);
		return;
	}
	for (size_t i = 0; i < r->n_changes; i++)
		changed += strcmp(r->changes[i]->action, "unchanged") != 0;
	if (r->revision)
		bh_log(LOG_NOTICE, "reported %zu endpoint%s: revision %" PRIu64 " (%zu changed)",
		       j->rq.report.n_endpoints, j->rq.report.n_endpoints == 1 ? "" : "s",
		       r->revision, changed);
	else
		bh_log(LOG_INFO, "reported %zu endpoint%s: the controller already had them",
		       j->rq.report.n_endpoints, j->rq.report.n_endpoints == 1 ? "" : "s");
	for (size_t i = 0; i < r->n_changes; i++)
		if (strcmp(r->changes[i]->action, "unchanged"))
			bh_log(LOG_INFO, "workload/%s %s", r->changes[i]->name,
			       r->changes[i]->action);
}

static void done_watch(struct daemon *d, struct rpc_job *j)
{
	const Bulkhead__WatchResponse *w = (const Bulkhead__WatchResponse *)j->resp;

	if (j->status != ST(OK)) {
		/* the controller answered but will not serve the watch: keep asking, slowly */
		if (strcmp(j->msg, d->watch_refused))
			bh_log(LOG_ERR,
			       "the controller refuses Watch (%s): %s; enforcing revision "
			       "%" PRIu64 "; retrying",
			       bh_rpc_status_name(j->status), j->msg, revision(d));
		snprintf(d->watch_refused, sizeof(d->watch_refused), "%s", j->msg);
		set_error(d, "Watch refused: %s", j->msg);
		hold_watch(d);
		return;
	}
	d->last_answer = time(NULL);
	d->watch_refused[0] = '\0';
	if (w->snapshot || w->delta) {
		watch_apply(d, w, j->rq.watch.snapshot);
		return;
	}
	bh_log(LOG_DEBUG, "Watch: nothing new after %" PRIu64 " ms (revision %" PRIu64 ")",
	       j->took_ms, w->revision);
	if (j->took_ms < FAST_EMPTY_MS)
		hold_watch(d); /* not a long-poll: do not spin */
	else
		d->hold_ms = HOLD_MIN_MS;
}

static void done_ack(struct daemon *d, struct rpc_job *j)
{
	if (j->status != ST(OK)) {
		bh_log(LOG_WARNING,
		       "the controller refused the acknowledgement of revision %" PRIu64
		       " (%s): %s",
		       j->rq.ack.revision, bh_rpc_status_name(j->status), j->msg);
	} else if (!j->rq.ack.error[0]) {
		d->revision_acked = j->rq.ack.revision;
		bh_log(LOG_DEBUG, "revision %" PRIu64 " acknowledged", j->rq.ack.revision);
	}
	/* a newer outcome may have been recorded while this one was on its way */
	if (d->ack.revision == j->rq.ack.revision && !strcmp(d->ack.error, j->text))
		d->ack.want = false;
}

static void done_renew(struct daemon *d, struct rpc_job *j)
{
	d->renew_wanted = false;
	d->renew_failed = j->status != ST(OK);
	uv_timer_start(&d->renew_timer, on_renew_timer, renew_next_ms(d), 0);
	if (j->status != ST(OK)) {
		bh_log(LOG_WARNING, "certificate renewal failed: %s; trying again in %" PRIu64 " s",
		       j->msg, renew_next_ms(d) / 1000);
		set_error(d, "certificate renewal: %s", j->msg);
		return;
	}
	/* agent_renew() logged it; the connection is re-made with the new certificate as soon
	 * as no call uses the current one */
	d->client_stale = true;
}

static void on_flow_hold_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;

	d->flow_hold = false;
	kick(d);
}

static void done_flows(struct daemon *d, struct rpc_job *j)
{
	const Bulkhead__FlowReportResponse *r = (const Bulkhead__FlowReportResponse *)j->resp;
	const Bulkhead__FlowReport *m = &j->flows.msg;

	if (j->status == ST(OK)) {
		agent_flowx_done(d->flowx, &j->flows, false);
		d->last_flow_report = time(NULL);
		d->flow_error[0] = '\0';
		bh_log(LOG_DEBUG, "reported %zu flow summaries and %zu deny events: %u stored, %u "
				  "clamped, %u rejected",
		       m->n_flows, m->n_events, r->stored, r->clamped, r->rejected);
		return;
	}
	if (j->status == ST(INVALID_ARGUMENT) || j->status == ST(PERMISSION_DENIED) ||
	    j->status == ST(UNIMPLEMENTED)) {
		/* sending the same report again would be refused again */
		agent_flowx_done(d->flowx, &j->flows, true);
		bh_log(LOG_ERR, "the controller refused %zu flow summaries (%s): %s; dropped",
		       m->n_flows, bh_rpc_status_name(j->status), j->msg);
	} else {
		/* busy, or its store failed: they stay in the spool for the next try */
		bh_log(strcmp(j->msg, d->flow_error) ? LOG_WARNING : LOG_DEBUG,
		       "the controller could not take %zu flow summaries (%s): %s; kept, trying "
		       "again in %d s",
		       m->n_flows, bh_rpc_status_name(j->status), j->msg, FLOW_HOLD_MS / 1000);
	}
	snprintf(d->flow_error, sizeof(d->flow_error), "%s", j->msg);
	set_error(d, "ReportFlows: %s", j->msg);
	d->flow_hold = true;
	uv_timer_start(&d->flow_hold_timer, on_flow_hold_timer, jitter(FLOW_HOLD_MS), 0);
}

static void job_done(struct agent_job *aj)
{
	struct rpc_job *j = (struct rpc_job *)aj;
	struct daemon *d = j->d;

	if (j->kind == JOB_WATCH)
		d->watch_busy = false;
	else if (j->kind == JOB_FLOWS)
		d->flows_busy = false;
	else
		d->unary_busy = false;
	if (d->stopping)
		goto out;
	bh_log(LOG_DEBUG, "%s: %s in %" PRIu64 " ms%s%s", job_names[j->kind],
	       bh_rpc_status_name(j->status), j->took_ms, j->msg[0] ? ": " : "", j->msg);
	if (j->kind == JOB_CLIENT) {
		done_client(d, j);
		goto out;
	}
	/* a flow report that timed out says the flow store is slow, not that the controller is
	 * gone: it only holds flow reports back (done_flows), never the policy watch */
	if (transport_failure(j->status) && j->kind != JOB_RENEW &&
	    !(j->kind == JOB_FLOWS && j->status == ST(DEADLINE_EXCEEDED))) {
		conn_failed(d, job_names[j->kind], j->msg);
		goto out;
	}
	if (j->kind != JOB_RENEW && !(j->kind == JOB_FLOWS && transport_failure(j->status)))
		conn_ok(d);
	switch (j->kind) {
	case JOB_HELLO:
		done_hello(d, j);
		break;
	case JOB_REPORT:
		done_report(d, j);
		break;
	case JOB_WATCH:
		done_watch(d, j);
		break;
	case JOB_ACK:
		done_ack(d, j);
		break;
	case JOB_RENEW:
		done_renew(d, j);
		break;
	case JOB_FLOWS:
		done_flows(d, j);
		break;
	case JOB_CLIENT:
		break;
	}
out:
	job_free(j);
	kick(d);
}

/*
 * Decides what goes to the controller next. Called after anything changed; sends at most one call
 * per worker. Order on a (re)connection: the client, the endpoint report (or a hello), pending
 * acknowledgement, then the Watch; renewals ride the short-call worker whenever it is free.
 */
static void kick(struct daemon *d)
{
	struct rpc_job *j;

	if (d->stopping || d->retry_armed)
		return;
	if (!d->client || d->client_stale) {
		/* the client is replaced only when no call is using it */
		if (!d->unary_busy && !d->watch_busy && !d->flows_busy &&
		    (j = job_new(d, JOB_CLIENT)))
			job_post(d, j);
		return;
	}
	if (!d->unary_busy) {
		j = NULL;
		if (d->need_hello || d->need_report) {
			d->need_report = false;
			/* No endpoints in the file: the node's workloads are the operator's, unless
			 * this process reported some that the file no longer lists. */
			if (d->cfg->c->n_eps || d->reported_any) {
				j = report_job(d);
			} else if (d->need_hello && (j = job_new(d, JOB_HELLO))) {
				/* nothing to report: still learn at once whether it answers */
				snprintf(j->text, sizeof(j->text), "%s", d->id.node);
				bulkhead__node_ref__init(&j->rq.hello);
				j->rq.hello.name = j->text;
			}
		} else if (d->ack.want && (j = job_new(d, JOB_ACK))) {
			bulkhead__ack_request__init(&j->rq.ack);
			snprintf(j->text, sizeof(j->text), "%s", d->ack.error);
			j->rq.ack.revision = d->ack.revision;
			j->rq.ack.error = j->text;
			j->rq.ack.enforcing = d->ack.enforcing;
		} else if (d->renew_wanted) {
			j = job_new(d, JOB_RENEW);
		}
		if (j)
			job_post(d, j);
	}
	if (d->flowx && !d->flows_busy && !d->flow_hold && !d->need_hello &&
	    (j = job_new(d, JOB_FLOWS))) {
		uint64_t kstats[BH_STAT_NR];
		int n;

		if (agent_dp_stats(d->dp, kstats))
			memset(kstats, 0, sizeof(kstats));
		n = agent_flowx_report(d->flowx, &j->flows, kstats);
		if (n > 0)
			job_post(d, j);
		else
			job_free(j);
	}
	if (!d->watch_busy && !d->need_hello && !d->ack.want && !d->hold_armed &&
	    (j = job_new(d, JOB_WATCH))) {
		bulkhead__watch_request__init(&j->rq.watch);
		j->rq.watch.revision = revision(d);
		j->rq.watch.wait_ms = WATCH_WAIT_MS;
		j->rq.watch.snapshot = d->need_snapshot;
		job_post(d, j);
	}
}

/* ---- deny events ---------------------------------------------------------------------------- */

static int on_event(const struct bh_event *e, void *ctx)
{
	struct daemon *d = ctx;
	char s[INET6_ADDRSTRLEN], t[INET6_ADDRSTRLEN], ifn[IF_NAMESIZE] = "?";
	int alen = e->family == 2 ? 4 : 16;

	if (e->verdict == BH_VERDICT_WOULD_DENY)
		d->would_denies++;
	else
		d->denies++;
	if (d->flowx)
		agent_flowx_event(d->flowx, e);
	if (bh_log_level < LOG_DEBUG)
		return 0;
	if_indextoname(e->ifindex, ifn);
	bh_format_addr(e->saddr, alen, s, sizeof(s));
	bh_format_addr(e->daddr, alen, t, sizeof(t));
	bh_log(LOG_DEBUG, "%s %s %s %s:%u -> %s:%u proto %u rule %u (local %u, remote %u)",
	       e->verdict == BH_VERDICT_WOULD_DENY ? "would-deny" : "deny", ifn,
	       e->dir == BH_DIR_INGRESS ? "ingress" : "egress", s, e->sport, t, e->dport, e->proto,
	       e->rule_id, e->local_id, e->remote_id);
	return 0;
}

static void on_events_readable(uv_poll_t *p, int status, int events)
{
	struct daemon *d = p->data;
	int n;

	if (status < 0) {
		bh_log(LOG_WARNING, "deny events: %s; no longer read", uv_strerror(status));
		uv_poll_stop(p);
		return;
	}
	n = agent_dp_events_poll(d->dp, 0, on_event, d);
	if (n < 0)
		bh_log(LOG_WARNING, "reading deny events: %s", bh_strerror(n));
}

/* ---- flow export ---------------------------------------------------------------------------- */

static void on_flow_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;
	int n;

	/* deny events first: what is waiting in the ring buffer belongs to this interval */
	agent_dp_events_poll(d->dp, 0, on_event, d);
	n = agent_flowx_drain(d->flowx, d->dp, revision(d));
	if (n < 0)
		bh_log(LOG_WARNING, "reading the flow counters: %s", bh_strerror(n));
	kick(d);
}

/* ---- metrics ------------------------------------------------------------------------------- */

static void metric(struct bh_metrics_buf *b, const char *name, enum bh_metric_type t,
		   const char *help, uint64_t v)
{
	bh_metrics_family(b, name, t, help);
	bh_metrics_sample_u64(b, NULL, 0, v);
}

static void metrics_render(struct bh_metrics_buf *b, void *ctx)
{
	static const char *const verdicts[] = {NULL, "allowed", "denied", "would-deny"};
	struct daemon *d = ctx;
	struct agent_dp_info info;
	struct agent_flowx_counters fc = {0};

	if (d->flowx)
		agent_flowx_counters(d->flowx, &fc);
	metric(b, "bulkhead_agent_revision", BH_METRIC_GAUGE,
	       "The policy revision the datapath enforces.", revision(d));
	metric(b, "bulkhead_agent_connected", BH_METRIC_GAUGE,
	       "1 while the controller answers, 0 while retrying or never connected.",
	       d->conn == CONN_UP);
	metric(b, "bulkhead_agent_applies_total", BH_METRIC_COUNTER,
	       "Rule sets (snapshots and deltas) applied.", d->applies);
	metric(b, "bulkhead_agent_apply_failures_total", BH_METRIC_COUNTER,
	       "Rule sets that could not be applied (the previous one kept enforcing).",
	       d->apply_failures);
	bh_metrics_family(b, "bulkhead_agent_apply_seconds", BH_METRIC_GAUGE,
			  "How long the last successful apply took, up to the atomic flip.");
	bh_metrics_sample_double(b, NULL, 0, d->apply_ms_last / 1000.0);
	bh_metrics_family(b, "bulkhead_agent_apply_seconds_sum", BH_METRIC_COUNTER,
			  "Time spent in successful applies (with applies_total: the mean).");
	bh_metrics_sample_double(b, NULL, 0, d->apply_ms_sum / 1000.0);
	bh_metrics_family(b, "bulkhead_agent_packets_total", BH_METRIC_COUNTER,
			  "Packets the datapath counted, by verdict (as of the last flow export).");
	for (int v = 1; v < 4; v++)
		bh_metrics_sample_u64(b, BH_METRIC_LABELS({"verdict", verdicts[v]}), fc.packets[v]);
	bh_metrics_family(b, "bulkhead_agent_bytes_total", BH_METRIC_COUNTER,
			  "Bytes the datapath counted, by verdict (as of the last flow export).");
	for (int v = 1; v < 4; v++)
		bh_metrics_sample_u64(b, BH_METRIC_LABELS({"verdict", verdicts[v]}), fc.bytes[v]);
	bh_metrics_family(b, "bulkhead_agent_deny_events_total", BH_METRIC_COUNTER,
			  "Deny events read from the datapath, by verdict.");
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"verdict", "denied"}), d->denies);
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"verdict", "would-deny"}), d->would_denies);
	bh_metrics_family(b, "bulkhead_agent_flow_summaries_total", BH_METRIC_COUNTER,
			  "Flow summaries read from the datapath, and what became of them.");
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"outcome", "drained"}), fc.drained);
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"outcome", "sent"}), fc.sent);
	bh_metrics_sample_u64(b, BH_METRIC_LABELS({"outcome", "dropped"}), fc.dropped);
	metric(b, "bulkhead_agent_flow_summaries_spooled", BH_METRIC_GAUGE,
	       "Flow summaries waiting for the controller.", fc.spooled);
	metric(b, "bulkhead_agent_events_dropped_total", BH_METRIC_COUNTER,
	       "Deny events the agent's spool had to drop.", fc.events_dropped);
	if (agent_dp_info(d->dp, &info) == 0) {
		bh_metrics_family(b, "bulkhead_agent_datapath_events_lost_total", BH_METRIC_COUNTER,
				  "Deny events the datapath did not send, by reason.");
		bh_metrics_sample_u64(b, BH_METRIC_LABELS({"reason", "rate-limit"}),
				      info.stats[BH_STAT_EVENTS_RATELIMITED]);
		bh_metrics_sample_u64(b, BH_METRIC_LABELS({"reason", "ring-full"}),
				      info.stats[BH_STAT_EVENTS_RINGBUF_FULL]);
		metric(b, "bulkhead_agent_datapath_flows_not_counted_total", BH_METRIC_COUNTER,
		       "New flows the datapath could not count: its flow map was full.",
		       info.stats[BH_STAT_FLOWS_FULL]);
		bh_metrics_family(b, "bulkhead_agent_map_entries", BH_METRIC_GAUGE,
				  "Entries in each datapath map (the enforcing generation).");
		for (int m = 0; m < AGENT_DP_NMAPS; m++)
			bh_metrics_sample_u64(b, BH_METRIC_LABELS({"map", info.maps[m].name}),
					      info.maps[m].used);
		bh_metrics_family(b, "bulkhead_agent_map_capacity", BH_METRIC_GAUGE,
				  "Capacity of each datapath map.");
		for (int m = 0; m < AGENT_DP_NMAPS; m++)
			bh_metrics_sample_u64(b, BH_METRIC_LABELS({"map", info.maps[m].name}),
					      info.maps[m].max);
	}
}

static int metrics_start(struct daemon *d, struct bh_error *err)
{
	const struct agent_config *c = d->cfg->c;
	const char *listen = c->metrics ? c->metrics : AGENT_METRICS_DEFAULT;
	struct bh_error e = {0};
	int rc;

	if (!strcmp(listen, "none"))
		return 0;
	rc = bh_metrics_server_start(&d->loop, listen, c->metrics_public ? BH_METRICS_ALLOW_PUBLIC : 0,
				     metrics_render, d, &d->metrics, &e);
	if (rc && c->metrics)
		return bh_error_set(err, rc, "metrics: %s", e.msg);
	if (rc)
		bh_log(LOG_WARNING, "metrics: %s; serving none (set metrics: in %s)", e.msg,
		       c->path);
	else
		bh_log(LOG_INFO, "metrics on http://%s/metrics%s%s", listen,
		       c->netns[0] ? " in netns " : "", c->netns);
	return 0;
}

/* ---- status socket -------------------------------------------------------------------------- */

struct status_conn {
	uv_pipe_t pipe;
	uv_write_t wr;
	char *buf;
};

static void status_closed(uv_handle_t *h)
{
	struct status_conn *s = h->data;

	free(s->buf);
	free(s);
}

static void status_written(uv_write_t *w, int status)
{
	struct status_conn *s = w->data;

	uv_close((uv_handle_t *)&s->pipe, status_closed);
}

static char *status_text(struct daemon *d, size_t *len)
{
	static const char *const conn_names[] = {"never", "connected", "retrying"};
	struct agent_dp_info info;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	fprintf(f, "version %s\npid %d\nnode %s\ncontroller %s\n", BULKHEAD_VERSION, (int)getpid(),
		d->id.node, d->id.controller);
	fprintf(f, "connection %s\nsince %lld\nconnection_error %s\n", conn_names[d->conn],
		(long long)d->conn_since, d->conn_error);
	fprintf(f, "revision %" PRIu64 "\nrevision_acked %" PRIu64 "\nfirst_start %s\n",
		revision(d), d->revision_acked,
		d->first_start == 'o'	? "observe"
		: d->first_start == 'e' ? "enforce"
					: "no");
	fprintf(f, "last_answer %lld\nlast_error %s\nlast_error_at %lld\n",
		(long long)d->last_answer, d->last_error, (long long)d->last_error_at);
	fprintf(f, "endpoints %zu\napplies %" PRIu64 "\napply_failures %" PRIu64 "\n",
		d->cfg->c->n_eps, d->applies, d->apply_failures);
	fprintf(f, "deny_events %" PRIu64 "\nwould_deny_events %" PRIu64 "\n", d->denies,
		d->would_denies);
	if (d->flowx) {
		struct agent_flowx_counters fc;

		agent_flowx_counters(d->flowx, &fc);
		fprintf(f,
			"flow_summaries_drained %" PRIu64 "\nflow_summaries_sent %" PRIu64
			"\nflow_summaries_dropped %" PRIu64 "\nflow_summaries_spooled %" PRIu64
			"\nflow_events_sent %" PRIu64 "\nflow_events_dropped %" PRIu64
			"\nflow_reports %" PRIu64 "\nlast_flow_report %lld\n",
			fc.drained, fc.sent, fc.dropped, fc.spooled, fc.events_sent,
			fc.events_dropped, fc.reports, (long long)d->last_flow_report);
	}
	if (agent_dp_info(d->dp, &info) == 0)
		for (int m = 0; m < AGENT_DP_NMAPS; m++)
			fprintf(f, "map %s %u %u\n", info.maps[m].name, info.maps[m].used,
				info.maps[m].max);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void on_status_conn(uv_stream_t *srv, int status)
{
	struct daemon *d = srv->data;
	struct status_conn *s;
	uv_buf_t b;
	size_t len = 0;

	if (status < 0)
		return;
	s = calloc(1, sizeof(*s));
	if (!s)
		return;
	uv_pipe_init(&d->loop, &s->pipe, 0);
	s->pipe.data = s;
	s->wr.data = s;
	if (uv_accept(srv, (uv_stream_t *)&s->pipe) || !(s->buf = status_text(d, &len))) {
		uv_close((uv_handle_t *)&s->pipe, status_closed);
		return;
	}
	b = uv_buf_init(s->buf, (unsigned int)len);
	if (uv_write(&s->wr, (uv_stream_t *)&s->pipe, &b, 1, status_written))
		uv_close((uv_handle_t *)&s->pipe, status_closed);
}

/* Listens on path, after making sure no running daemon answers there (a stale socket of a daemon
 * that died is replaced). Mode 0600: status is for root. */
static int status_listen(struct daemon *d, const char *path, struct bh_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)], *slash;
	struct stat st;
	mode_t old;
	int fd, rc;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return bh_error_set(err, -EEXIST,
					    "status socket %s: exists and is not a "
					    "socket",
					    path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		rc = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (fd >= 0)
			close(fd);
		if (rc)
			return bh_error_set(err, -EADDRINUSE,
					    "status socket %s: another "
					    "bulkhead-agent answers there (give "
					    "each its own status-socket)",
					    path);
		unlink(path);
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return bh_error_set(err, -errno, "status socket directory %s: %s", dir,
					    strerror(errno));
	}
	uv_pipe_init(&d->loop, &d->status_srv, 0);
	d->status_srv.data = d;
	old = umask(0177);
	rc = uv_pipe_bind(&d->status_srv, path);
	umask(old);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&d->status_srv, 16, on_status_conn);
	if (rc)
		return bh_error_set(err, rc, "status socket %s: %s", path, uv_strerror(rc));
	snprintf(d->status_path, sizeof(d->status_path), "%s", path);
	return 0;
}

/* ---- signals and timers --------------------------------------------------------------------- */

static void on_stop_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;

	if (d->stopping)
		return;
	d->stopping = true;
	bh_log(LOG_NOTICE, "%s: stopping; the datapath stays attached, enforcing revision %" PRIu64,
	       signum == SIGTERM ? "SIGTERM" : "SIGINT", revision(d));
	notify(d, "STOPPING=1");
	uv_stop(&d->loop);
}

static bool endpoints_equal(const struct agent_config *a, const struct agent_config *b)
{
	if (a->n_eps != b->n_eps)
		return false;
	for (size_t i = 0; i < a->n_eps; i++) {
		const struct agent_endpoint_cfg *x = &a->eps[i], *y = &b->eps[i];

		if (strcmp(x->name, y->name) || strcmp(x->ifname, y->ifname) ||
		    x->host != y->host || strcmp(x->labels, y->labels) || x->n_addrs != y->n_addrs)
			return false;
		for (size_t k = 0; k < x->n_addrs; k++)
			if (strcmp(x->addrs[k], y->addrs[k]))
				return false;
	}
	return true;
}

static void on_hup(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	const struct agent_config *old = d->cfg->c;
	struct agent_config *c = NULL;
	struct cfgref *r;
	struct bh_error err = {0};
	char later[160] = "";
	bool eps_changed, first_changed;

	if (agent_config_load(old->path, &c, &err)) {
		bh_log(LOG_ERR, "SIGHUP: %s; keeping the running configuration", err.msg);
		set_error(d, "reload: %s", err.msg);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		agent_config_free(c);
		bh_log(LOG_ERR, "SIGHUP: out of memory; keeping the running configuration");
		return;
	}
	r->c = c;
	r->refs = 1;
#define LATER(cond, name)                                                                          \
	do {                                                                                       \
		if (cond)                                                                          \
			snprintf(later + strlen(later), sizeof(later) - strlen(later), "%s%s",     \
				 later[0] ? ", " : "", name);                                      \
	} while (0)
	LATER(strcmp(c->state_dir, old->state_dir), "state-dir");
	LATER(strcmp(c->netns, old->netns), "netns");
	LATER(strcmp(c->status_socket, old->status_socket), "status-socket");
	LATER(c->policy_max != old->policy_max || c->ipcache_max != old->ipcache_max ||
		      c->endpoints_max != old->endpoints_max || c->ct_max != old->ct_max ||
		      c->flows_max != old->flows_max || c->events_per_sec != old->events_per_sec,
	      "maps");
#undef LATER
	if (later[0])
		bh_log(LOG_WARNING, "SIGHUP: %s changed: takes effect at the next start", later);
	eps_changed = !endpoints_equal(old, c);
	first_changed = c->first_enforce != old->first_enforce;
	if (d->log_level_override < 0)
		bh_log_level = c->log_level >= 0 ? c->log_level : LOG_NOTICE;
	cfg_drop(d->cfg);
	d->cfg = r;
	bh_log(LOG_NOTICE, "configuration reloaded from %s: %zu endpoint%s%s; reporting them",
	       c->path, c->n_eps, c->n_eps == 1 ? "" : "s", eps_changed ? " (changed)" : "");
	if (revision(d) == 0 && (eps_changed || first_changed))
		first_start_apply(d);
	d->need_report = true;
	kick(d);
}

/* ---- start and stop ------------------------------------------------------------------------- */

static int enter_netns(const char *name, struct bh_error *err)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bh_error_set(err, -errno, "network namespace %s: %s", path, strerror(errno));
	/* this thread only: the workers stay where they are */
	if (setns(fd, CLONE_NEWNET) < 0) {
		int e = errno;

		close(fd);
		return bh_error_set(err, -e, "entering network namespace %s: %s", path,
				    strerror(e));
	}
	close(fd);
	return 0;
}

static int dp_open(struct daemon *d, struct bh_error *err)
{
	const struct agent_config *c = d->cfg->c;
	struct agent_dp_opts o = {
		.node = d->id.node,
		.load = true,
		.policy_max = c->policy_max,
		.ipcache_max = c->ipcache_max,
		.endpoints_max = c->endpoints_max,
		.ct_max = c->ct_max,
		.flows_max = c->flows_max,
		.events_per_sec = c->events_per_sec,
	};

	bh_log_route_libbpf();
	return agent_dp_open(&d->dp, &o, err);
}

static int start(struct daemon *d, struct bh_error *err)
{
	const struct agent_config *c = d->cfg->c;
	int rc, fd;

	if ((rc = agent_identity_load(c->state_dir, &d->id, err)))
		return rc;
	bh_log(LOG_NOTICE, "bulkhead-agent %s starting: node %s, controller %s, config %s%s%s",
	       BULKHEAD_VERSION, d->id.node, d->id.controller, c->path,
	       c->netns[0] ? ", datapath in netns " : "", c->netns);
	if ((rc = uv_loop_init(&d->loop)))
		return bh_error_set(err, rc, "event loop: %s", uv_strerror(rc));
	d->loop_ok = true;
	notify_open(d);
	if (c->first_enforce)
		controller_addrs_resolve(d);
	/* before the datapath: a daemon already answering there means a mistake in the setup, and
	 * nothing of this node's should change because of it. Requests wait for uv_run(). */
	if ((rc = status_listen(d, c->status_socket, err)))
		return rc;
	/* workers first: they must live in the original network namespace (see the top) */
	if ((rc = agent_worker_create(&d->watcher, &d->loop, err)) ||
	    (rc = agent_worker_create(&d->unary, &d->loop, err)) ||
	    (rc = agent_worker_create(&d->flows_w, &d->loop, err)))
		return rc;
	/* NNG starts its threads on first use, and they dial the controller: they must start in
	 * this namespace, not in the datapath's (where the metrics server, the first NNG user on
	 * this thread, would otherwise start them) */
	(void)nng_tls_engine_name();
	if (c->netns[0] && (rc = enter_netns(c->netns, err)))
		return rc;
	if ((rc = dp_open(d, err)))
		return rc;
	if (revision(d))
		bh_log(LOG_NOTICE,
		       "datapath %s/%s open: enforcing revision %" PRIu64 " from before this start",
		       AGENT_DP_PIN_ROOT, d->id.node, revision(d));
	else
		first_start_apply(d);
	/* in the datapath's namespace: its loopback is the node's */
	if ((rc = metrics_start(d, err)))
		return rc;

	uv_timer_init(&d->loop, &d->retry_timer);
	uv_timer_init(&d->loop, &d->hold_timer);
	uv_timer_init(&d->loop, &d->settle_timer);
	uv_timer_init(&d->loop, &d->renew_timer);
	uv_timer_init(&d->loop, &d->probe_timer);
	d->retry_timer.data = d->hold_timer.data = d->settle_timer.data = d->renew_timer.data = d;
	d->probe_timer.data = d;
	uv_timer_start(&d->renew_timer, on_renew_timer, renew_next_ms(d), 0);
	uv_timer_init(&d->loop, &d->flow_timer);
	uv_timer_init(&d->loop, &d->flow_hold_timer);
	d->flow_timer.data = d->flow_hold_timer.data = d;
	if (!c->flow_export_off) {
		uint32_t every = c->flow_interval_s ? c->flow_interval_s : AGENT_FLOW_INTERVAL_DEFAULT;

		if (agent_flowx_create(&d->flowx,
				       c->flow_spool ? c->flow_spool : AGENT_FLOW_SPOOL_DEFAULT,
				       c->flow_events_set ? c->flow_events
							  : AGENT_FLOW_EVENTS_DEFAULT))
			return bh_error_set(err, -ENOMEM, "out of memory");
		uv_timer_start(&d->flow_timer, on_flow_timer, (uint64_t)every * 1000,
			       (uint64_t)every * 1000);
		bh_log(LOG_INFO, "flow export every %u s, spool of %u summaries (in memory)", every,
		       c->flow_spool ? c->flow_spool : AGENT_FLOW_SPOOL_DEFAULT);
	} else {
		bh_log(LOG_NOTICE, "flow export off (flow-export: interval 0)");
	}
	uv_signal_init(&d->loop, &d->sig_term);
	uv_signal_init(&d->loop, &d->sig_int);
	uv_signal_init(&d->loop, &d->sig_hup);
	d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
	uv_signal_start(&d->sig_term, on_stop_signal, SIGTERM);
	uv_signal_start(&d->sig_int, on_stop_signal, SIGINT);
	uv_signal_start(&d->sig_hup, on_hup, SIGHUP);

	fd = agent_dp_events_fd(d->dp);
	if (fd < 0) {
		bh_log(LOG_WARNING, "deny events unavailable: %s", bh_strerror(fd));
	} else if ((rc = uv_poll_init(&d->loop, &d->events_poll, fd)) == 0) {
		d->events_poll.data = d;
		uv_poll_start(&d->events_poll, UV_READABLE, on_events_readable);
	} else {
		bh_log(LOG_WARNING, "deny events unavailable: %s", uv_strerror(rc));
	}
	bh_log(LOG_NOTICE, "ready: enforcing revision %" PRIu64 "; status on %s", revision(d),
	       d->status_path);
	notify(d, "READY=1\nSTATUS=enforcing revision %" PRIu64 "; connecting to %s", revision(d),
	       d->id.controller);
	kick(d);
	return 0;
}

static void close_cb_none(uv_handle_t *h)
{
	(void)h;
}

static void close_handle(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, close_cb_none);
}

int agent_daemon_run(struct agent_config *cfg, int log_level)
{
	struct daemon *d = calloc(1, sizeof(*d));
	struct bh_error err = {0};
	bool busy;
	int rc;

	if (!d || !(d->cfg = calloc(1, sizeof(*d->cfg)))) {
		bh_log(LOG_ERR, "out of memory");
		agent_config_free(cfg);
		free(d);
		return 1;
	}
	d->cfg->c = cfg;
	d->cfg->refs = 1;
	d->log_level_override = log_level;
	d->backoff_ms = BACKOFF_MIN_MS;
	d->hold_ms = HOLD_MIN_MS;
	d->notify_fd = -1;
	snprintf(d->state_dir, sizeof(d->state_dir), "%s", cfg->state_dir);
	bh_log_level = log_level >= 0	     ? log_level
		       : cfg->log_level >= 0 ? cfg->log_level
					     : LOG_NOTICE;
	srandom((unsigned int)(getpid() ^ bh_now_mono_ns()));
	signal(SIGPIPE, SIG_IGN);

	rc = start(d, &err);
	if (rc) {
		bh_log(LOG_ERR, "%s", err.msg);
		/* whatever is already attached keeps enforcing: nothing to undo. No call was made
		 * yet (kick() is start's last step), so the workers are idle. */
		agent_dp_close(d->dp);
		if (d->status_path[0])
			unlink(d->status_path);
		agent_worker_destroy(d->watcher);
		agent_worker_destroy(d->unary);
		agent_worker_destroy(d->flows_w);
		bh_metrics_server_stop(d->metrics);
		if (d->loop_ok) {
			uv_walk(&d->loop, close_handle, NULL);
			uv_run(&d->loop, UV_RUN_DEFAULT);
			uv_loop_close(&d->loop);
		}
		agent_flowx_destroy(d->flowx);
		if (d->notify_fd >= 0)
			close(d->notify_fd);
		cfg_drop(d->cfg);
		free(d);
		return 1;
	}
	uv_run(&d->loop, UV_RUN_DEFAULT);

	/* stopping: the datapath stays pinned and attached; only this process goes away */
	busy = d->watch_busy || d->unary_busy || d->flows_busy;
	if (d->status_path[0])
		unlink(d->status_path);
	bh_metrics_server_stop(d->metrics); /* a scrape reads the datapath */
	d->metrics = NULL;
	agent_dp_close(d->dp);
	agent_worker_destroy(d->watcher);
	agent_worker_destroy(d->unary);
	agent_worker_destroy(d->flows_w);
	bh_log(LOG_NOTICE, "stopped");
	if (busy) {
		/* A worker is inside a call that cannot be cut short (a Watch is held up to 30 s)
		 * and still uses the client, NNG and OpenSSL: exit() would run their atexit
		 * teardown under it. Nothing else is left to release. */
		fflush(NULL);
		_exit(0);
	}
	bh_rpc_client_destroy(d->client);
	uv_walk(&d->loop, close_handle, NULL);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	uv_loop_close(&d->loop);
	agent_flowx_destroy(d->flowx);
	if (d->notify_fd >= 0)
		close(d->notify_fd);
	cfg_drop(d->cfg);
	free(d);
	return 0;
}
