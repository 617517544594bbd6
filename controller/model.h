/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy model in memory: labels, selectors, policies, workloads and node labels, as the YAML
 * loader (yaml.c) produces them and the compiler (compile.c) consumes them. Documented for
 * operators in deploy/policy-format.md.
 *
 * Ownership: every object owns its strings and arrays (malloc'd); the _free functions release
 * them and take NULL. Objects are plain data: nothing here touches the store or the network.
 */
#ifndef CTL_MODEL_H
#define CTL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bulkhead/error.h"

#define CTL_NAME_MAX	   63  /* object names: [a-z0-9]([-a-z0-9._]*[a-z0-9])?, <= 63 chars */
#define CTL_LABEL_KEY_MAX  63  /* label keys: [A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])? */
#define CTL_LABEL_VAL_MAX  63  /* label values: "" or the same alphabet as keys */
#define CTL_LABELS_MAX	   64  /* labels on one object */
#define CTL_RULES_MAX	   256 /* rules in one direction of one policy */
#define CTL_PEERS_MAX	   256 /* peers of one rule */
#define CTL_PORTS_MAX	   64  /* ports of one rule */
#define CTL_EXCEPT_MAX	   64  /* except prefixes of one CIDR peer */
#define CTL_VALUES_MAX	   64  /* values of one selector expression */
#define CTL_ADDRS_MAX	   16  /* addresses of one workload */

/* ---- labels ---------------------------------------------------------------------------------- */

struct ctl_label {
	char *key;
	char *value;
};

/* A label set: sorted by key, keys unique. */
struct ctl_labels {
	struct ctl_label *v;
	size_t n;
};

/* Parses "k=v,k2=v2" (empty string: no labels) into a sorted set. Errors name the bad label. */
int ctl_labels_parse(const char *text, struct ctl_labels *out, struct bh_error *err);
/* Canonical text "k=v,k2=v2" (sorted); malloc'd, NULL on ENOMEM. Equal sets give equal text. */
char *ctl_labels_format(const struct ctl_labels *l);
/* The value of key, or NULL when absent. */
const char *ctl_labels_get(const struct ctl_labels *l, const char *key);
/* Sets (adds or replaces) key=value, keeping the set sorted. 0 or -ENOMEM. */
int ctl_labels_set(struct ctl_labels *l, const char *key, const char *value);
/* Deep copy. 0 or -ENOMEM (dst untouched on failure). */
int ctl_labels_copy(struct ctl_labels *dst, const struct ctl_labels *src);
void ctl_labels_free(struct ctl_labels *l);
/* Checks one key / value against the alphabets above. */
bool ctl_label_key_valid(const char *key);
bool ctl_label_value_valid(const char *value);
bool ctl_name_valid(const char *name);

/* ---- selectors ------------------------------------------------------------------------------- */

enum ctl_sel_op {
	CTL_SEL_IN,	      /* key's value is one of values */
	CTL_SEL_NOT_IN,	      /* key absent, or its value is none of values (Kubernetes) */
	CTL_SEL_EXISTS,	      /* key present, any value */
	CTL_SEL_DOES_NOT_EXIST, /* key absent */
};

struct ctl_sel_expr {
	char *key;
	enum ctl_sel_op op;
	char **values; /* sorted, unique; empty for EXISTS / DOES_NOT_EXIST */
	size_t n_values;
};

/* matchLabels AND every matchExpression. An empty selector selects every workload. */
struct ctl_selector {
	struct ctl_labels match;
	struct ctl_sel_expr *exprs; /* sorted by (key, op, values) so equal selectors compare equal */
	size_t n_exprs;
};

/* The order of a selector's expressions: key, then operator, then the (sorted) values (qsort
 * takes it as is); and of its value strings. */
int ctl_sel_expr_cmp(const void *a, const void *b);
int ctl_str_cmp(const void *a, const void *b);

bool ctl_selector_matches(const struct ctl_selector *s, const struct ctl_labels *l);
bool ctl_selector_empty(const struct ctl_selector *s);
/*
 * Parses a kubectl-style selector: "app=web,env!=prod,tier in (a,b),tier notin (c),key,!key"
 * ("=" and "==" are In with one value, "!=" is NotIn with one value). Empty text: the empty
 * selector.
 */
int ctl_selector_parse(const char *text, struct ctl_selector *out, struct bh_error *err);
/* The same syntax back, canonical; malloc'd, NULL on ENOMEM. */
char *ctl_selector_format(const struct ctl_selector *s);
void ctl_selector_free(struct ctl_selector *s);

/* ---- addresses ------------------------------------------------------------------------------- */

/* An IPv4 or IPv6 prefix; host bits are zero (the loader refuses a CIDR with host bits set). */
struct ctl_prefix {
	uint8_t family; /* 4 or 6 */
	uint8_t len;	/* 0..32 or 0..128 */
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes, the rest zero */
};

/* "198.18.0.0/15", "fd00:b1::/64"; a bare address is a full-length prefix. Refuses host bits. */
int ctl_prefix_parse(const char *text, struct ctl_prefix *out, struct bh_error *err);
/* Writes "addr/len" into buf (at least 50 bytes). */
const char *ctl_prefix_format(const struct ctl_prefix *p, char *buf, size_t len);
/* Whether inner lies within outer (same family, inner->len >= outer->len, bits agree). */
bool ctl_prefix_contains(const struct ctl_prefix *outer, const struct ctl_prefix *inner);
int ctl_prefix_cmp(const struct ctl_prefix *a, const struct ctl_prefix *b);

/* ---- policies -------------------------------------------------------------------------------- */

enum ctl_dir { CTL_INGRESS = 0, CTL_EGRESS = 1 };
enum ctl_action { CTL_ALLOW = 0, CTL_DENY = 1 };
enum ctl_mode { CTL_ENFORCE = 0, CTL_OBSERVE = 1 };

enum ctl_peer_kind {
	CTL_PEER_SELECTOR, /* workloads whose labels match */
	CTL_PEER_CIDR,	   /* addresses outside the inventory within cidr, minus except */
};

struct ctl_peer {
	enum ctl_peer_kind kind;
	struct ctl_selector sel;   /* CTL_PEER_SELECTOR */
	struct ctl_prefix cidr;	   /* CTL_PEER_CIDR */
	struct ctl_prefix *except; /* CTL_PEER_CIDR: each within cidr, sorted */
	size_t n_except;
};

/* Protocol numbers as in IP: 0 any, 1 icmp, 6 tcp, 17 udp, 58 icmpv6, 132 sctp, others by number. */
struct ctl_port {
	uint8_t proto;	   /* 0: any protocol (then port and end_port are 0) */
	uint16_t port;	   /* 0: any port; ICMP/ICMPv6: the message type (0 with proto icmp: any) */
	uint16_t end_port; /* 0: the single port; else the range [port, end_port], end >= port */
	bool icmp_type_set; /* ICMP type 0 (echo reply) given explicitly */
};

/* One rule: (any of peers) x (any of ports). */
struct ctl_rule {
	struct ctl_peer *peers; /* n_peers == 0: every peer, inside the inventory or not */
	size_t n_peers;
	struct ctl_port *ports; /* n_ports == 0: every protocol and port */
	size_t n_ports;
	int line;		/* where it was written, for messages (0 if unknown) */
};

struct ctl_policy {
	char *name;
	struct ctl_selector sel; /* the workloads it applies to */
	enum ctl_mode mode;
	/*
	 * isolates[dir]: the policy makes the workloads it selects default-deny in dir (Kubernetes
	 * policyTypes). Given explicitly, or by default: ingress always unless the policy has
	 * only deny rules, egress when it has an egress section.
	 */
	bool isolates[2];
	struct ctl_rule *rules[2][2]; /* [enum ctl_dir][enum ctl_action], in file order */
	size_t n_rules[2][2];
};

void ctl_policy_free(struct ctl_policy *p);

/* ---- inventory ------------------------------------------------------------------------------- */

/*
 * A workload: an endpoint on a node, enforced on interface ifname of that node. attach_host: the
 * node's host itself (ifname is its own interface; the workload's labels are the node's labels,
 * with the workload's own on top); otherwise ifname is the host side of a local veth whose other
 * end is the workload. YAML: `attach: host|veth` (default veth).
 */
struct ctl_workload {
	char *name;
	char *node;
	char *ifname;
	bool attach_host;
	struct ctl_labels labels;
	struct ctl_prefix *addrs; /* full-length prefixes */
	size_t n_addrs;
};

void ctl_workload_free(struct ctl_workload *w);

/* Labels an operator gives a node (they apply to the node's host workload). */
struct ctl_node_spec {
	char *name;
	struct ctl_labels labels;
};

void ctl_node_spec_free(struct ctl_node_spec *n);

/* ---- documents ------------------------------------------------------------------------------- */

enum ctl_kind { CTL_KIND_POLICY, CTL_KIND_WORKLOAD, CTL_KIND_NODE };

struct ctl_doc {
	enum ctl_kind kind;
	int line; /* first line of the document in its file */
	union {
		struct ctl_policy policy;
		struct ctl_workload workload;
		struct ctl_node_spec node;
	};
};

struct ctl_docset {
	struct ctl_doc *v;
	size_t n;
};

/* "Policy", "Workload", "Node"; ctl_kind_parse is case-insensitive and takes plurals, -1 if none. */
const char *ctl_kind_name(enum ctl_kind k);
int ctl_kind_parse(const char *text);
/* The name of a document's object. */
const char *ctl_doc_name(const struct ctl_doc *d);

/*
 * Loads every document of one YAML (or JSON) text. fname is used in messages only. On any error
 * nothing is returned (out is left empty) and err says "FILE:LINE:COLUMN: FIELD: what is wrong".
 * Two documents of the same kind and name in one text are an error.
 */
int ctl_yaml_load(const char *fname, const char *text, size_t len, struct ctl_docset *out,
		  struct bh_error *err);
/*
 * The canonical form of one document: JSON (valid YAML) with keys in a fixed order, defaults
 * written out, lists sorted where order has no meaning. Loading it gives an equal document;
 * equal documents give byte-equal text. malloc'd; NULL on ENOMEM.
 */
char *ctl_doc_to_json(const struct ctl_doc *d);
/* The same document as YAML for people (`bulkhead get -o yaml`). malloc'd; NULL on ENOMEM. */
char *ctl_doc_to_yaml(const struct ctl_doc *d);
void ctl_doc_free(struct ctl_doc *d);
void ctl_docset_free(struct ctl_docset *s);

#endif
