/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent daemon's configuration: the YAML file `bulkhead-agent run` reads (deploy/agent.yaml
 * is the annotated example), and the enrollment's agent.conf in the state directory (which node
 * this is and where its controller listens).
 */
#ifndef AGENT_CONFIG_H
#define AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bulkhead/error.h"

#define AGENT_CONFIG_DEFAULT	"/etc/bulkhead/agent.yaml"
#define AGENT_STATE_DIR_DEFAULT "/var/lib/bulkhead"
#define AGENT_STATUS_DEFAULT	"/run/bulkhead/agent.sock"
#define AGENT_EP_ADDRS_MAX	16   /* addresses of one endpoint (the controller's limit) */
#define AGENT_EP_LABELS_MAX	64   /* labels of one endpoint */
#define AGENT_EPS_MAX		4096 /* endpoints of one node (one report) */
#define AGENT_METRICS_DEFAULT	    "127.0.0.1:9465" /* in the datapath's namespace */
#define AGENT_FLOW_INTERVAL_DEFAULT 10	   /* s between two exports of the flow counters */
#define AGENT_FLOW_SPOOL_DEFAULT    262144 /* summaries kept: 4 drains of a default flow map */
#define AGENT_FLOW_EVENTS_DEFAULT   1000   /* deny events kept likewise */

/* One endpoint the node protects (`endpoints:` in the file). */
struct agent_endpoint_cfg {
	char *name;
	char *ifname;
	bool host;    /* attach: host (the node's own interface); false: veth */
	char **addrs; /* "198.18.1.10", "fd00:b1::1:10" */
	size_t n_addrs;
	char *labels;	   /* "k=v,..." ("" when none) */
	unsigned int line; /* where it is declared, for messages */
};

struct agent_config {
	char *path; /* the file it came from */
	char *state_dir;
	char *netns;	    /* "" or a name under /run/netns */
	bool first_enforce; /* first-start: enforce (fail-closed); false: observe */
	char *status_socket;
	int log_level; /* syslog level, -1 when the file does not say */
	struct agent_endpoint_cfg *eps;
	size_t n_eps;
	/* maps: sizes for a first load of the datapath (0: the datapath's default) */
	uint32_t policy_max, ipcache_max, endpoints_max, ct_max, flows_max, events_per_sec;
	/* flow-export: every flow_interval_s the flow counters go into a spool of at most
	 * flow_spool summaries (and flow_events deny events) that ReportFlows empties */
	uint32_t flow_interval_s; /* 0 with flow_export_off: none; else default 10 */
	bool flow_export_off;
	uint32_t flow_spool;	  /* 0: AGENT_FLOW_SPOOL_DEFAULT */
	uint32_t flow_events;
	bool flow_events_set;	  /* else AGENT_FLOW_EVENTS_DEFAULT */
	char *metrics;		  /* HOST:PORT of /metrics, "none"; NULL: AGENT_METRICS_DEFAULT */
	bool metrics_public;	  /* a non-loopback metrics address is allowed */
};

/*
 * Reads and checks the configuration file at path. On success *out is set (the caller frees it
 * with agent_config_free()) and 0 returned; on failure a negative errno is returned and err says
 * "FILE:LINE: what is wrong" (unknown keys, bad values, duplicates), *out untouched.
 */
int agent_config_load(const char *path, struct agent_config **out, struct bh_error *err);

/* Frees a configuration. Takes NULL. */
void agent_config_free(struct agent_config *c);

/* The enrollment's view of this node, from STATE_DIR/agent.conf. */
struct agent_identity {
	char node[80];	      /* the node name in its certificate */
	char controller[300]; /* HOST:PORT of the controller's mutual-TLS listener */
	char host[256];	      /* HOST of it, without brackets */
	uint16_t port;
};

/* Reads STATE_DIR/agent.conf into id. Returns 0, or a negative errno with err saying why (not
 * enrolled, unreadable). */
int agent_identity_load(const char *state_dir, struct agent_identity *id, struct bh_error *err);

#endif
