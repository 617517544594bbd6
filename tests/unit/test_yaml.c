// SPDX-License-Identifier: Apache-2.0
/*
 * The policy model and its file format (controller/model.c, controller/yaml.c): every YAML example
 * in deploy/examples loads and round-trips (JSON and YAML give back a document whose JSON is
 * byte-equal), so does every ok-* seed of the fuzz corpus while every bad-* seed is refused; each
 * class of error names FILE:LINE:COLUMN and the field; limits; selectors (YAML and kubectl text),
 * label sets and prefixes.
 *
 * usage: test_yaml [FILTER]  (BH_SOURCE_DIR, a compile definition, locates the examples)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead/util.h"
#include "model.h"
#include "tap.h"

#ifndef BH_SOURCE_DIR
#error "BH_SOURCE_DIR (the source tree) must be defined"
#endif

#define FNAME "t.yaml"

static int load(const char *text, struct ctl_docset *s, struct bh_error *err)
{
	bh_error_clear(err);
	return ctl_yaml_load(FNAME, text, strlen(text), s, err);
}

/* Loads text, which must hold exactly one document, into *s. */
static int load_one(const char *text, struct ctl_docset *s)
{
	struct bh_error err = {0};

	if (load(text, s, &err)) {
		fprintf(stderr, "    load failed: %s\n    text: %s\n", err.msg, text);
		return 1;
	}
	if (s->n != 1) {
		fprintf(stderr, "    %zu documents, wanted 1\n", s->n);
		ctl_docset_free(s);
		return 1;
	}
	return 0;
}

/* The JSON of out (one document) loaded from text equals want. */
static int reload_same(const char *form, const char *text, const char *want)
{
	struct ctl_docset s;
	char *again;
	int ret = 1;

	if (load_one(text, &s)) {
		fprintf(stderr, "    (the %s form)\n", form);
		return 1;
	}
	again = ctl_doc_to_json(&s.v[0]);
	if (again && !strcmp(again, want))
		ret = 0;
	else
		fprintf(stderr,
			"    the %s form loads back differently:\n    %s\n    %s\n    from:\n%s\n",
			form, want, again ? again : "(NULL)", text);
	free(again);
	ctl_docset_free(&s);
	return ret;
}

/* d's JSON and YAML both load back into a document with byte-equal JSON. */
static int round_trip(const struct ctl_doc *d)
{
	char *json = ctl_doc_to_json(d), *yaml = ctl_doc_to_yaml(d);
	int ret = 1;

	if (!json || !yaml)
		fprintf(stderr, "    to_json/to_yaml failed\n");
	else
		ret = reload_same("JSON", json, json) || reload_same("YAML", yaml, json);
	free(json);
	free(yaml);
	return ret;
}

/* Loads a file; *s gets its documents. Returns 0, or 1 with err (if given) holding the cause. */
static int load_path(const char *path, struct ctl_docset *s, struct bh_error *err)
{
	struct bh_error e = {0};
	char *text = NULL;
	size_t len;
	int ret;

	if (!err)
		err = &e;
	ret = bh_read_file(path, 32u << 20, &text, &len);
	if (ret) {
		fprintf(stderr, "    %s: %s\n", path, bh_strerror(ret));
		return 1;
	}
	ret = ctl_yaml_load(path, text, len, s, err);
	free(text);
	return ret ? 1 : 0;
}

/* Calls fn on every file of dir whose name starts with prefix and ends with suffix. */
static int each_file(const char *dir, const char *prefix, const char *suffix,
		     int (*fn)(const char *path, const char *name), int *count)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort), failed = 0;

	if (n < 0) {
		fprintf(stderr, "    %s: %s\n", dir, strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		const char *nm = names[i]->d_name;
		size_t l = strlen(nm), sl = strlen(suffix);
		char path[4096];

		if (!strncmp(nm, prefix, strlen(prefix)) && l >= sl &&
		    !strcmp(nm + l - sl, suffix)) {
			snprintf(path, sizeof(path), "%s/%s", dir, nm);
			if (fn(path, nm))
				failed = 1;
			(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return failed;
}

/* ---- examples and corpus ---- */

static int file_loads_and_round_trips(const char *path, const char *name)
{
	struct bh_error err = {0};
	struct ctl_docset s;
	int ret = 0;

	if (load_path(path, &s, &err)) {
		fprintf(stderr, "    %s does not load: %s\n", name, err.msg);
		return 1;
	}
	for (size_t i = 0; i < s.n; i++) {
		if (round_trip(&s.v[i])) {
			fprintf(stderr, "    %s: document %zu (line %d) does not round-trip\n",
				name, i, s.v[i].line);
			ret = 1;
		}
	}
	ctl_docset_free(&s);
	return ret;
}

static int file_is_refused(const char *path, const char *name)
{
	struct bh_error err = {0};
	struct ctl_docset s = {(void *)1, 99};

	if (!load_path(path, &s, &err)) {
		fprintf(stderr, "    %s loads, but it is a bad-* seed\n", name);
		ctl_docset_free(&s);
		return 1;
	}
	if (s.v || s.n) {
		fprintf(stderr, "    %s: refused but out is not empty\n", name);
		return 1;
	}
	/* every message starts with the file name and a position */
	if (strncmp(err.msg, path, strlen(path)) || err.msg[strlen(path)] != ':') {
		fprintf(stderr, "    %s: message without FILE:LINE:COLUMN: %s\n", name, err.msg);
		return 1;
	}
	return 0;
}

static int t_examples(void)
{
	int n = 0, ret = each_file(BH_SOURCE_DIR "/deploy/examples", "", ".yaml",
				   file_loads_and_round_trips, &n);

	T_ASSERT(n >= 1, "no example found");
	return ret;
}

static int t_corpus(void)
{
	const char *dir = BH_SOURCE_DIR "/tests/fuzz/corpus/yaml";
	int ok = 0, bad = 0, ret;

	ret = each_file(dir, "ok-", "", file_loads_and_round_trips, &ok);
	ret |= each_file(dir, "bad-", "", file_is_refused, &bad);
	T_ASSERT(ok >= 3 && bad >= 10, "%d ok-* and %d bad-* seeds", ok, bad);
	return ret;
}

/* The three-tier example means what it says. */
static int t_three_tier(void)
{
	struct ctl_docset s;
	const struct ctl_policy *p = NULL;
	const struct ctl_workload *w = NULL;
	size_t policies = 0;

	T_ASSERT(!load_path(BH_SOURCE_DIR "/deploy/examples/three-tier.yaml", &s, NULL), "load");
	for (size_t i = 0; i < s.n; i++) {
		if (s.v[i].kind == CTL_KIND_POLICY)
			policies++;
		if (s.v[i].kind == CTL_KIND_POLICY && !strcmp(s.v[i].policy.name, "default-deny"))
			p = &s.v[i].policy;
		if (s.v[i].kind == CTL_KIND_WORKLOAD && !strcmp(s.v[i].workload.name, "db-1"))
			w = &s.v[i].workload;
	}
	if (!p || !w || policies != 7 || !ctl_selector_empty(&p->sel) || !p->isolates[0] ||
	    !p->isolates[1] || p->n_rules[0][0] || p->n_rules[1][0] || w->n_addrs != 2 ||
	    strcmp(ctl_labels_get(&w->labels, "app"), "db")) {
		ctl_docset_free(&s);
		T_FAIL("three-tier.yaml is not what it says");
	}
	ctl_docset_free(&s);
	return 0;
}

/* ---- loading what is valid ---- */

static const char full_policy[] = "kind: Policy\n"
				  "name: api-from-web\n"
				  "selector:\n"
				  "  matchLabels: {app: api}\n"
				  "  matchExpressions:\n"
				  "    - {key: env, operator: In, values: [staging, prod]}\n"
				  "mode: observe\n"
				  "ingress:\n"
				  "  - from:\n"
				  "      - selector: {matchLabels: {app: web}}\n"
				  "      - cidr: 198.18.0.0/16\n"
				  "        except: [198.18.5.0/24, 198.18.4.0/24]\n"
				  "    ports:\n"
				  "      - {protocol: TCP, port: 8080}\n"
				  "      - {protocol: tcp, port: 9000, endPort: 9100}\n"
				  "      - {protocol: icmp, type: 8}\n"
				  "      - {protocol: 47}\n"
				  "      - {port: 53}\n"
				  "      - {protocol: IcmPv6, type: 128}\n"
				  "      - {protocol: icmp}\n"
				  "      - {protocol: udp, port: 7, endPort: 7}\n"
				  "  - {}\n"
				  "deny:\n"
				  "  egress: [{to: [{cidr: \"fd00:b1::/64\"}]}]\n";

static int t_full_policy(void)
{
	struct ctl_docset s;
	const struct ctl_policy *p;
	const struct ctl_rule *r;
	const struct ctl_port *pt;
	char a[64], b[64];

	if (load_one(full_policy, &s))
		return 1;
	p = &s.v[0].policy;
	r = p->rules[CTL_INGRESS][CTL_ALLOW];
	pt = r[0].ports;
#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			ctl_docset_free(&s);                                                       \
			T_FAIL("not so: %s", #c);                                                  \
		}                                                                                  \
	} while (0)
	CHECK(s.v[0].kind == CTL_KIND_POLICY && s.v[0].line == 1);
	CHECK(!strcmp(p->name, "api-from-web") && p->mode == CTL_OBSERVE);
	CHECK(p->sel.match.n == 1 && p->sel.n_exprs == 1 && p->sel.exprs[0].n_values == 2);
	CHECK(!strcmp(p->sel.exprs[0].values[0], "prod")); /* sorted */
	CHECK(p->isolates[CTL_INGRESS] && !p->isolates[CTL_EGRESS]);
	CHECK(p->n_rules[CTL_INGRESS][CTL_ALLOW] == 2 && p->n_rules[CTL_EGRESS][CTL_ALLOW] == 0);
	CHECK(p->n_rules[CTL_INGRESS][CTL_DENY] == 0 && p->n_rules[CTL_EGRESS][CTL_DENY] == 1);
	CHECK(r[0].line == 9 && r[1].line == 22);
	CHECK(r[0].n_peers == 2 && r[0].peers[0].kind == CTL_PEER_SELECTOR);
	CHECK(r[0].peers[1].kind == CTL_PEER_CIDR && r[0].peers[1].n_except == 2);
	CHECK(!strcmp(ctl_prefix_format(&r[0].peers[1].except[0], a, sizeof(a)), "198.18.4.0/24"));
	CHECK(!strcmp(ctl_prefix_format(&r[0].peers[1].except[1], b, sizeof(b)), "198.18.5.0/24"));
	CHECK(r[0].n_ports == 8 && r[1].n_peers == 0 && r[1].n_ports == 0);
	CHECK(pt[0].proto == 6 && pt[0].port == 8080 && pt[0].end_port == 0);
	CHECK(pt[1].proto == 6 && pt[1].port == 9000 && pt[1].end_port == 9100);
	CHECK(pt[2].proto == 1 && pt[2].port == 8 && !pt[2].icmp_type_set);
	CHECK(pt[3].proto == 47 && pt[3].port == 0);
	CHECK(pt[4].proto == 6 && pt[4].port == 53); /* no protocol: TCP */
	CHECK(pt[5].proto == 58 && pt[5].port == 128 && !pt[5].icmp_type_set);
	CHECK(pt[6].proto == 1 && pt[6].port == 0 && !pt[6].icmp_type_set);
	CHECK(pt[7].proto == 17 && pt[7].port == 7 && pt[7].end_port == 0);
	CHECK(p->rules[CTL_EGRESS][CTL_DENY][0].line == 24);
#undef CHECK
	ctl_docset_free(&s);
	return 0;
}

/* policyTypes by default and given. */
static int t_policy_types(void)
{
	static const struct {
		const char *body;
		bool in, eg;
	} cases[] = {
		{"", true, false},
		{"ingress: []\n", true, false},
		{"egress: []\n", true, true},
		{"deny: {ingress: [{}]}\n", false, false},
		{"deny: {}\n", false, false},
		{"deny: {egress: [{}]}\negress: []\n", true, true},
		{"policyTypes: [Egress]\negress: []\n", false, true},
		{"policyTypes: [Egress]\n", false, true},
		{"policyTypes: []\ndeny: {ingress: [{}]}\n", false, false},
		{"policyTypes: [egress, ingress]\n", true, true},
	};

	for (size_t i = 0; i < BH_ARRAY_SIZE(cases); i++) {
		char text[512];
		struct ctl_docset s;
		bool in, eg;

		snprintf(text, sizeof(text), "kind: Policy\nname: p\nselector: {}\n%s",
			 cases[i].body);
		if (load_one(text, &s))
			return 1;
		in = s.v[0].policy.isolates[CTL_INGRESS];
		eg = s.v[0].policy.isolates[CTL_EGRESS];
		if (round_trip(&s.v[0]))
			in = !cases[i].in;
		ctl_docset_free(&s);
		T_ASSERT(in == cases[i].in && eg == cases[i].eg, "case %zu (%s): %d %d", i,
			 cases[i].body, in, eg);
	}
	return 0;
}

static int t_workload_node(void)
{
	struct ctl_docset s;
	struct bh_error err = {0};
	const struct ctl_workload *w;
	char a[64];
	int ok;

	T_ASSERT(!load("---\n---\nkind: Workload\nname: gw\nnode: node-a\ninterface: eth0\n"
		       "attach: host\naddresses: [\"fd00:b1::9/128\", 198.18.0.9/32, 198.18.0.1]\n"
		       "---\n# empty\n---\nkind: Node\nname: node-a\n",
		       &s, &err),
		 "%s", err.msg);
	T_ASSERT(s.n == 2, "%zu documents", s.n);
	w = &s.v[0].workload;
	ok = s.v[0].kind == CTL_KIND_WORKLOAD && s.v[0].line == 3 && w->attach_host &&
	     !strcmp(w->ifname, "eth0") && !strcmp(w->node, "node-a") && w->labels.n == 0 &&
	     w->n_addrs == 3 && w->addrs[0].len == 32 && w->addrs[2].len == 128 &&
	     !strcmp(ctl_prefix_format(&w->addrs[0], a, sizeof(a)), "198.18.0.1/32") &&
	     s.v[1].kind == CTL_KIND_NODE && !strcmp(ctl_doc_name(&s.v[1]), "node-a") &&
	     s.v[1].line == 12;
	ctl_docset_free(&s);
	T_ASSERT(ok, "not the workload and node written");
	return 0;
}

/* JSON (libyaml reads it as YAML) in, compact or not; and the exact canonical JSON out. */
static int t_canonical_json(void)
{
	static const char *const forms[] = {
		"{\"kind\":\"Policy\",\"name\":\"p\",\"selector\":{\"matchExpressions\":[{\"key\":"
		"\"b\",\"operator\":\"Exists\"},{\"key\":\"a\",\"operator\":\"NotIn\",\"values\":"
		"[\"y\",\"x\"]}],\"matchLabels\":{\"z\":\"1\",\"c\":\"2\"}},\"egress\":[{\"ports\":"
		"[{\"port\":443}],\"to\":[{\"except\":[\"198.18.1.0/24\",\"198.18.0.0/24\"],"
		"\"cidr\":\"198.18.0.0/16\"}]}]}",
		"kind: Policy\n"
		"egress:\n"
		"- to:\n"
		"  - cidr: 198.18.0.0/16\n"
		"    except:\n"
		"    - 198.18.0.0/24\n"
		"    - 198.18.1.0/24\n"
		"  ports: [{protocol: TCP, port: 443}]\n"
		"selector:\n"
		"  matchLabels: {c: '2', z: \"1\"}\n"
		"  matchExpressions:\n"
		"  - {operator: NotIn, key: a, values: [x, y]}\n"
		"  - {operator: exists, key: b}\n"
		"name: p\n"
		"mode: enforce\n"
		"policyTypes: [Ingress, Egress]\n",
	};
	static const char want[] =
		"{\"kind\": \"Policy\", \"name\": \"p\", \"selector\": {\"matchLabels\": {\"c\": "
		"\"2\", \"z\": \"1\"}, \"matchExpressions\": [{\"key\": \"a\", \"operator\": "
		"\"NotIn\", \"values\": [\"x\", \"y\"]}, {\"key\": \"b\", \"operator\": "
		"\"Exists\"}]}, "
		"\"mode\": \"enforce\", \"policyTypes\": [\"Ingress\", \"Egress\"], \"ingress\": "
		"[], "
		"\"egress\": [{\"to\": [{\"cidr\": \"198.18.0.0/16\", \"except\": "
		"[\"198.18.0.0/24\", "
		"\"198.18.1.0/24\"]}], \"ports\": [{\"protocol\": \"TCP\", \"port\": 443}]}]}";

	for (size_t i = 0; i < BH_ARRAY_SIZE(forms); i++)
		if (reload_same(i ? "YAML" : "compact JSON", forms[i], want))
			return 1;
	return 0;
}

static int t_yaml_output(void)
{
	static const char want[] = "kind: Workload\n"
				   "name: w\n"
				   "node: \"n\"\n" /* YAML 1.1 reads a plain n as false */
				   "interface: veth0\n"
				   "attach: veth\n"
				   "addresses: [\"198.18.0.1\"]\n"
				   "labels:\n"
				   "  app: web\n"
				   "  \"n\": \"\"\n"
				   "  v: \"1.0\"\n";
	struct ctl_docset s;
	char *y;
	int ok;

	if (load_one("kind: Workload\nname: w\nnode: n\ninterface: veth0\naddresses: [198.18.0.1]\n"
		     "labels: {v: '1.0', n: '', app: web}\n",
		     &s))
		return 1;
	y = ctl_doc_to_yaml(&s.v[0]);
	ok = y && !strcmp(y, want);
	if (!ok)
		fprintf(stderr, "    got:\n%s\n    want:\n%s\n", y ? y : "(NULL)", want);
	free(y);
	ctl_docset_free(&s);
	return ok ? 0 : 1;
}

/* ---- errors ---- */

struct err_case {
	const char *name;
	const char *text;
	const char *where; /* "t.yaml:LINE:COLUMN: FIELD: " the message starts with */
	const char *what;  /* in the message */
};

#define POL "kind: Policy\nname: p\nselector: {}\n" /* lines 1-3 */
#define WL  "kind: Workload\nname: w\nnode: n\ninterface: veth0\n"

static const struct err_case errors[] = {
	/* YAML itself */
	{"syntax: unclosed flow", "kind: Node\nname: a\nlabels: {x: [y}\n",
	 "t.yaml:3:15: labels.x: ", "YAML syntax: did not find expected ',' or ']'"},
	{"syntax: bad indentation", "kind: Node\nname: a\n  labels: {}\n",
	 "t.yaml:3:9: ", "YAML syntax: mapping values are not allowed"},
	{"syntax: not UTF-8", "kind: Node\nname: a\nlabels: {x: \xff}\n",
	 "t.yaml:3:13: ", "not valid text: invalid leading UTF-8 octet (byte 0xff)"},
	{"syntax: a tab", "kind: Node\n\tname: a\n", "t.yaml:2:1: ", "YAML syntax"},
	{"a document is a list", "[a, b]\n",
	 "t.yaml:1:1: (document): ", "a document is a map (kind: ..., name: ...), not a list"},
	{"a document is a string", "---\nhello\n", "t.yaml:2:1: (document): ", "not \"hello\""},
	{"alias (billion laughs)",
	 "kind: Node\nname: a\nlabels: {}\n---\nkind: Node\nname: b\nlabels:\n  x: &a y\n"
	 "  z: *a\n",
	 "t.yaml:8:6: labels.x: ", "anchors (&a) are refused"},
	{"alias alone", "kind: Node\nname: a\nlabels: *x\n",
	 "t.yaml:3:9: labels: ", "aliases (*x) are refused"},
	{"tag", "kind: Node\nname: !!str a\n",
	 "t.yaml:2:7: name: ", "tags (tag:yaml.org,2002:str) are refused"},
	{"NUL inside a string", "kind: Node\nname: \"a\\0b\"\n",
	 "t.yaml:2:7: name: ", "a NUL character"},
	/* kinds and documents */
	{"kind missing", "name: a\n", "t.yaml:1:1: kind: ", "missing: every document needs kind"},
	{"kind unknown", "kind: Pod\nname: a\n",
	 "t.yaml:1:7: kind: ", "unknown kind \"Pod\" (Policy, Workload or Node)"},
	{"kind is a list", "kind: [Node]\nname: a\n", "t.yaml:1:7: kind: ", "not a list"},
	{"kind missing in the second document", "kind: Node\nname: a\n---\nname: b\n",
	 "t.yaml:4:1: kind: ", "missing"},
	{"same kind and name twice",
	 "kind: Node\nname: a\n---\nkind: Workload\nname: a\nnode: a\n"
	 "interface: e\n---\nkind: Node\nname: a\n",
	 "t.yaml:10:7: name: ", "Node a is already defined at line 2"},
	/* keys */
	{"unknown key at the top", POL "spec: {}\n", "t.yaml:4:1: spec: ",
	 "unknown key \"spec\" (allowed here: kind, name, selector, mode, policyTypes, ingress, "
	 "egress, deny)"},
	{"unknown key in a rule", POL "ingress:\n  - form: []\n",
	 "t.yaml:5:5: ingress[0].form: ", "unknown key \"form\" (allowed here: from, ports)"},
	{"from in an egress rule", POL "egress: [{from: []}]\n",
	 "t.yaml:4:11: egress[0].from: ", "(allowed here: to, ports)"},
	{"unknown key in a workload", WL "ip: 198.18.0.1\n", "t.yaml:5:1: ip: ",
	 "allowed here: kind, name, node, interface, attach, addresses, labels"},
	{"duplicate key", POL "name: q\n", "t.yaml:4:1: name: ", "duplicate key (first at line 2)"},
	{"duplicate label key", "kind: Node\nname: a\nlabels:\n  x: a\n  x: b\n",
	 "t.yaml:5:3: labels.x: ", "duplicate key (first at line 4)"},
	{"a key that is a list", "kind: Node\nname: a\n? [x]\n: y\n",
	 "t.yaml:3:3: ", "a key must be a string, not a list"},
	/* missing */
	{"policy without name", "kind: Policy\nselector: {}\n",
	 "t.yaml:1:1: name: ", "missing (required here)"},
	{"policy without selector", "kind: Policy\nname: p\n", "t.yaml:1:1: selector: ", "missing"},
	{"workload without node", "kind: Workload\nname: w\ninterface: e\n",
	 "t.yaml:1:1: node: ", "missing"},
	{"workload without interface", "kind: Workload\nname: w\nnode: n\n",
	 "t.yaml:1:1: interface: ", "missing"},
	{"node without name", "kind: Node\nlabels: {}\n", "t.yaml:1:1: name: ", "missing"},
	{"expression without operator",
	 "kind: Policy\nname: p\nselector:\n  matchExpressions:\n"
	 "    - key: a\n",
	 "t.yaml:5:7: selector.matchExpressions[0].operator: ", "missing"},
	/* types */
	{"selector is a list", "kind: Policy\nname: p\nselector: []\n",
	 "t.yaml:3:11: selector: ", "a map is wanted, not a list"},
	{"ingress is a map", POL "ingress: {from: []}\n",
	 "t.yaml:4:10: ingress: ", "a list is wanted, not a map"},
	{"name is a map", "kind: Node\nname: {a: b}\n",
	 "t.yaml:2:7: name: ", "a string is wanted, not a map"},
	{"name is null", "kind: Node\nname:\n",
	 "t.yaml:2:6: name: ", "a string is wanted, not nothing (null)"},
	{"selector is null", "kind: Policy\nname: p\nselector: ~\n",
	 "t.yaml:3:11: selector: ", "a map is wanted, not nothing (null)"},
	{"port is a word", POL "ingress: [{ports: [{port: http}]}]\n",
	 "t.yaml:4:27: ingress[0].ports[0].port: ", "\"http\" is not a decimal number"},
	{"port is quoted", POL "ingress: [{ports: [{port: \"80\"}]}]\n",
	 "t.yaml:4:27: ingress[0].ports[0].port: ", "a number is wanted, not the quoted string"},
	{"port is negative", POL "ingress: [{ports: [{port: -1}]}]\n",
	 "t.yaml:4:27: ingress[0].ports[0].port: ", "not a decimal number"},
	{"label value is a list", "kind: Node\nname: a\nlabels: {x: [y]}\n",
	 "t.yaml:3:13: labels.x: ", "a string is wanted, not a list"},
	{"labels is a string", "kind: Node\nname: a\nlabels: x=y\n",
	 "t.yaml:3:9: labels: ", "a map is wanted, not \"x=y\""},
	/* names and labels */
	{"bad name", "kind: Node\nname: Web_1\n", "t.yaml:2:7: name: ", "bad name \"Web_1\""},
	{"name too long",
	 "kind: Node\nname: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	 "t.yaml:2:7: name: ", "1-63 characters"},
	{"bad node name", "kind: Workload\nname: w\nnode: Node-A\ninterface: e\n",
	 "t.yaml:3:7: node: ", "bad node name \"Node-A\""},
	{"bad label key", "kind: Node\nname: a\nlabels: {-x: y}\n",
	 "t.yaml:3:10: labels.-x: ", "bad label key \"-x\""},
	{"bad label value", "kind: Node\nname: a\nlabels: {x: a b}\n",
	 "t.yaml:3:13: labels.x: ", "bad label value \"a b\""},
	{"bad matchLabels value", "kind: Policy\nname: p\nselector: {matchLabels: {x: \"y.\"}}\n",
	 "t.yaml:3:29: selector.matchLabels.x: ", "bad label value"},
	/* selectors */
	{"operator unknown",
	 "kind: Policy\nname: p\nselector:\n  matchExpressions: [{key: a, "
	 "operator: Equals, values: [b]}]\n",
	 "t.yaml:4:41: selector.matchExpressions[0].operator: ",
	 "unknown operator \"Equals\" (In, NotIn, Exists or DoesNotExist)"},
	{"In without values",
	 "kind: Policy\nname: p\nselector:\n  matchExpressions: [{key: a, "
	 "operator: In}]\n",
	 "t.yaml:4:22: selector.matchExpressions[0].values: ", "In needs at least one value"},
	{"NotIn with no values",
	 "kind: Policy\nname: p\nselector:\n  matchExpressions: [{key: a, "
	 "operator: NotIn, values: []}]\n",
	 "t.yaml:4:56: selector.matchExpressions[0].values: ", "NotIn needs at least one value"},
	{"Exists with values",
	 "kind: Policy\nname: p\nselector:\n  matchExpressions: [{key: a, "
	 "operator: Exists, values: [b]}]\n",
	 "t.yaml:4:57: selector.matchExpressions[0].values: ", "Exists takes no values"},
	{"value twice",
	 "kind: Policy\nname: p\nselector:\n  matchExpressions: [{key: a, "
	 "operator: In, values: [b, c, b]}]\n",
	 "t.yaml:4:60: selector.matchExpressions[0].values[2]: ", "\"b\" is listed twice"},
	{"expression twice",
	 "kind: Policy\nname: p\nselector:\n  matchExpressions:\n"
	 "    - {key: a, operator: Exists}\n    - {operator: Exists, key: a}\n",
	 "t.yaml:6:7: selector.matchExpressions[1]: ", "the same expression as [0]"},
	/* ports */
	{"port 0", POL "ingress: [{ports: [{port: 0}]}]\n",
	 "t.yaml:4:27: ingress[0].ports[0].port: ", "0 is out of range 1..65535"},
	{"port 65536", POL "ingress: [{ports: [{port: 65536}]}]\n",
	 "t.yaml:4:27: ingress[0].ports[0].port: ", "65536 is out of range 1..65535"},
	{"port with many digits", POL "ingress: [{ports: [{port: 99999999999999999999}]}]\n",
	 "t.yaml:4:27: ingress[0].ports[0].port: ", "out of range 1..65535"},
	{"endPort below port", POL "ingress:\n  - ports:\n      - {port: 10, endPort: 5}\n",
	 "t.yaml:6:29: ingress[0].ports[0].endPort: ", "endPort 5 is below port 10"},
	{"endPort without port", POL "ingress:\n  - ports:\n      - {protocol: UDP, endPort: 5}\n",
	 "t.yaml:6:25: ingress[0].ports[0].endPort: ", "endPort needs port"},
	{"type on TCP", POL "egress: [{ports: [{protocol: TCP, type: 8}]}]\n",
	 "t.yaml:4:35: egress[0].ports[0].type: ", "only ICMP and ICMPv6 have a type, not TCP"},
	{"ICMP type 0", POL "egress: [{ports: [{protocol: icmp, type: 0}]}]\n",
	 "t.yaml:4:42: egress[0].ports[0].type: ", "type 0 (echo reply) cannot be named"},
	{"port on ICMP", POL "egress: [{ports: [{protocol: icmp, port: 8}]}]\n",
	 "t.yaml:4:36: egress[0].ports[0].port: ",
	 "ICMP has no ports (the message type is `type`)"},
	{"endPort on ICMPv6", POL "egress: [{ports: [{protocol: icmpv6, endPort: 8}]}]\n",
	 "t.yaml:4:38: egress[0].ports[0].endPort: ", "ICMPv6 has no ports"},
	{"port on GRE", POL "egress: [{ports: [{protocol: 47, port: 8}]}]\n",
	 "t.yaml:4:34: egress[0].ports[0].port: ", "protocol 47 has no ports"},
	{"type 256", POL "egress: [{ports: [{protocol: icmp, type: 256}]}]\n",
	 "t.yaml:4:42: egress[0].ports[0].type: ", "256 is out of range 0..255"},
	{"protocol unknown", POL "egress: [{ports: [{protocol: http}]}]\n",
	 "t.yaml:4:30: egress[0].ports[0].protocol: ", "unknown protocol \"http\""},
	{"protocol 0", POL "egress: [{ports: [{protocol: 0}]}]\n",
	 "t.yaml:4:30: egress[0].ports[0].protocol: ", "protocol 0 is out of range 1..255"},
	{"protocol 256", POL "egress: [{ports: [{protocol: 256}]}]\n",
	 "t.yaml:4:30: egress[0].ports[0].protocol: ", "out of range 1..255"},
	/* peers and CIDRs */
	{"CIDR with host bits", POL "ingress: [{from: [{cidr: 198.18.1.5/16}]}]\n",
	 "t.yaml:4:26: ingress[0].from[0].cidr: ",
	 "'198.18.1.5/16' has host bits set: the network is 198.18.0.0/16"},
	{"IPv6 CIDR with host bits", POL "ingress: [{from: [{cidr: \"fd00:b1::1/64\"}]}]\n",
	 "t.yaml:4:26: ingress[0].from[0].cidr: ", "the network is fd00:b1::/64"},
	{"CIDR length 33", POL "ingress: [{from: [{cidr: 198.18.0.0/33}]}]\n",
	 "t.yaml:4:26: ingress[0].from[0].cidr: ", "the prefix length is over 32"},
	{"CIDR not an address", POL "ingress: [{from: [{cidr: web}]}]\n",
	 "t.yaml:4:26: ingress[0].from[0].cidr: ", "'web' is not an IPv4 or IPv6 address"},
	{"CIDR length not a number", POL "ingress: [{from: [{cidr: 198.18.0.0/x}]}]\n",
	 "t.yaml:4:26: ingress[0].from[0].cidr: ", "not a decimal number"},
	{"except outside cidr",
	 POL "ingress:\n  - from:\n      - cidr: 198.18.0.0/16\n"
	     "        except: [198.18.0.0/24, 198.19.0.0/24]\n",
	 "t.yaml:7:33: ingress[0].from[0].except[1]: ",
	 "198.19.0.0/24 is not within cidr 198.18.0.0/16"},
	{"except equal to cidr",
	 POL "ingress: [{from: [{except: [198.18.0.0/16], cidr: "
	     "198.18.0.0/16}]}]\n",
	 "t.yaml:4:29: ingress[0].from[0].except[0]: ", "is not within cidr"},
	{"except twice",
	 POL "ingress: [{from: [{cidr: 198.18.0.0/16, except: [198.18.1.0/24, "
	     "198.18.1.0/24]}]}]\n",
	 "t.yaml:4:65: ingress[0].from[0].except[1]: ", "198.18.1.0/24 is listed twice"},
	{"families mixed",
	 POL "ingress: [{from: [{cidr: 198.18.0.0/16, except: "
	     "[\"fd00:b1::/64\"]}]}]\n",
	 "t.yaml:4:50: ingress[0].from[0].except[0]: ",
	 "families mixed: fd00:b1::/64 is IPv6, cidr 198.18.0.0/16 is IPv4"},
	{"except with a selector",
	 POL "ingress: [{from: [{selector: {}, except: [198.18.0.0/24]}]}]\n",
	 "t.yaml:4:34: ingress[0].from[0].except: ", "except goes with cidr"},
	{"selector and cidr in one peer",
	 POL "ingress: [{from: [{selector: {}, cidr: 198.18.0.0/16}]}]\n",
	 "t.yaml:4:34: ingress[0].from[0].cidr: ", "a selector or a cidr, not both"},
	{"empty peer", POL "ingress: [{from: [{}]}]\n",
	 "t.yaml:4:19: ingress[0].from[0]: ", "a peer needs selector or cidr"},
	/* policy fields */
	{"mode unknown", POL "mode: audit\n",
	 "t.yaml:4:7: mode: ", "unknown mode \"audit\" (enforce or observe)"},
	{"policyTypes unknown", POL "policyTypes: [Both]\n",
	 "t.yaml:4:15: policyTypes[0]: ", "\"Both\" is not a policy type"},
	{"policyTypes twice", POL "policyTypes: [Ingress, ingress]\n",
	 "t.yaml:4:24: policyTypes[1]: ", "Ingress is listed twice"},
	{"ingress rules that policyTypes leaves out", POL "policyTypes: [Egress]\ningress: []\n",
	 "t.yaml:5:1: ingress: ", "policyTypes leaves Ingress out"},
	{"egress rules that policyTypes leaves out", POL "egress: []\npolicyTypes: [Ingress]\n",
	 "t.yaml:4:1: egress: ", "policyTypes leaves Egress out"},
	{"deny of an unknown direction", POL "deny: {both: []}\n",
	 "t.yaml:4:8: deny.both: ", "(allowed here: ingress, egress)"},
	/* workloads */
	{"interface too long", "kind: Workload\nname: w\nnode: n\ninterface: veth-0123456789ab\n",
	 "t.yaml:4:12: interface: ", "bad interface name \"veth-0123456789ab\": 1-15"},
	{"interface with a slash", "kind: Workload\nname: w\nnode: n\ninterface: a/b\n",
	 "t.yaml:4:12: interface: ", "bad interface name"},
	{"interface ..", "kind: Workload\nname: w\nnode: n\ninterface: ..\n",
	 "t.yaml:4:12: interface: ", "bad interface name"},
	{"attach unknown", WL "attach: bridge\n",
	 "t.yaml:5:9: attach: ", "unknown attach \"bridge\" (veth or host)"},
	{"address is a network", WL "addresses: [198.18.0.0/24]\n",
	 "t.yaml:5:13: addresses[0]: ", "198.18.0.0/24 is a network"},
	{"address twice", WL "addresses: [198.18.0.1, 198.18.0.1/32]\n",
	 "t.yaml:5:25: addresses[1]: ", "198.18.0.1/32 is listed twice"},
	{"address with host bits in a prefix", WL "addresses: [198.18.0.1/24]\n",
	 "t.yaml:5:13: addresses[0]: ", "has host bits set"},
	/* the error is the first one, in a later document too */
	{"error in the third document",
	 "kind: Node\nname: a\n---\nkind: Node\nname: b\n---\n"
	 "kind: Node\nname: c\nlabels: {x: [1]}\n",
	 "t.yaml:9:13: labels.x: ", "a string is wanted"},
};

static int check_error(const struct err_case *c, const char *text, size_t len)
{
	struct ctl_docset s = {(void *)1, 99};
	struct bh_error err = {0};
	int ret = ctl_yaml_load(FNAME, text, len, &s, &err);

	if (ret == 0) {
		fprintf(stderr, "    %s: loaded\n", c->name);
		ctl_docset_free(&s);
		return 1;
	}
	if (s.v || s.n) {
		fprintf(stderr, "    %s: out not emptied\n", c->name);
		return 1;
	}
	if (ret != err.code || strncmp(err.msg, c->where, strlen(c->where)) ||
	    !strstr(err.msg, c->what)) {
		fprintf(stderr, "    %s:\n      got:  %s (%d)\n      want: %s... %s\n", c->name,
			err.msg, ret, c->where, c->what);
		return 1;
	}
	return 0;
}

static int t_errors(void)
{
	int failed = 0;

	for (size_t i = 0; i < BH_ARRAY_SIZE(errors); i++)
		failed |= check_error(&errors[i], errors[i].text, strlen(errors[i].text));
	return failed;
}

static int t_empty_and_huge(void)
{
	static const struct err_case none[] = {
		{"empty text", "", "t.yaml:1:1: (text): ", "no documents"},
		{"only a comment", "# nothing\n", "t.yaml:1:1: (text): ", "no documents"},
		{"only empty documents", "---\n---\n...\n", "t.yaml:1:1: (text): ", "no documents"},
	};
	struct err_case big = {"17 MiB", NULL,
			       "t.yaml:1:1: (text): ", "16777217 bytes, over the limit of 16 MiB"};
	size_t len = (16u << 20) + 1;
	char *text;
	int failed = 0;

	for (size_t i = 0; i < BH_ARRAY_SIZE(none); i++)
		failed |= check_error(&none[i], none[i].text, strlen(none[i].text));
	text = malloc(len);
	T_ASSERT(text, "malloc");
	memset(text, '#', len);
	failed |= check_error(&big, text, len);
	free(text);
	return failed;
}

/* 16 MiB exactly is allowed: a comment that long, then a document. */
static int t_at_the_size_limit(void)
{
	static const char doc[] = "\nkind: Node\nname: a\n";
	size_t len = 16u << 20;
	struct bh_error err = {0};
	struct ctl_docset s;
	char *text = malloc(len);
	int ret;

	T_ASSERT(text, "malloc");
	memset(text, '#', len);
	memcpy(text + len - strlen(doc), doc, strlen(doc));
	ret = ctl_yaml_load(FNAME, text, len, &s, &err);
	free(text);
	T_ASSERT(ret == 0 && s.n == 1, "%s", err.msg);
	ctl_docset_free(&s);
	return 0;
}

/* A node whose labels.x is `lists` lists nested in each other. */
static void nested(char *text, size_t len, int lists)
{
	int o = snprintf(text, len, "kind: Node\nname: a\nlabels: {x: ");

	for (int i = 0; i < lists; i++)
		text[o++] = '[';
	for (int i = 0; i < lists; i++)
		text[o++] = ']';
	snprintf(text + o, len - (size_t)o, "}\n");
}

static int t_nesting(void)
{
	char text[256], where[256];
	struct err_case c = {"33 levels", text, where, "nesting deeper than 32 levels"};
	struct ctl_docset s;
	struct bh_error err = {0};
	int o;

	/* the root map and labels make 2, then 31 lists: the 31st, at column 13 + 30, is level 33
	 */
	nested(text, sizeof(text), 31);
	o = snprintf(where, sizeof(where), "t.yaml:3:43: labels.x");
	for (int i = 0; i < 30; i++)
		o += snprintf(where + o, sizeof(where) - (size_t)o, "[0]");
	snprintf(where + o, sizeof(where) - (size_t)o, ": ");
	if (check_error(&c, text, strlen(text)))
		return 1;
	/* 32 levels pass the first pass, and fail as the wrong type */
	nested(text, sizeof(text), 30);
	T_ASSERT(load(text, &s, &err) && strstr(err.msg, "t.yaml:3:13: labels.x: a string is "
							 "wanted, not a list"),
		 "%s", err.msg);
	/* far deeper (libyaml itself has no limit) */
	{
		size_t n = 100000, len = n * 2 + 64;
		char *deep = malloc(len);

		T_ASSERT(deep, "malloc");
		o = snprintf(deep, len, "kind: Node\nname: a\nlabels: ");
		memset(deep + o, '[', n);
		memset(deep + o + n, ']', n);
		deep[o + 2 * n] = '\0';
		o = load(deep, &s, &err) && strstr(err.msg, "nesting deeper than 32 levels");
		free(deep);
		T_ASSERT(o, "%s", err.msg);
	}
	return 0;
}

/* prefix, then n items separated by ", " (each item: item, its '#' replaced by its number),
 * then suffix. malloc'd. */
static char *repeat(const char *prefix, const char *item, int n, const char *suffix)
{
	size_t cap = strlen(prefix) + strlen(suffix) + (size_t)n * (strlen(item) + 14) + 1, o;
	const char *hash = strchr(item, '#');
	int il = hash ? (int)(hash - item) : (int)strlen(item);
	char *s = malloc(cap);

	if (!s)
		return NULL;
	o = (size_t)snprintf(s, cap, "%s", prefix);
	for (int i = 0; i < n; i++) {
		o += (size_t)snprintf(s + o, cap - o, "%s%.*s", i ? ", " : "", il, item);
		if (hash)
			o += (size_t)snprintf(s + o, cap - o, "%d%s", i, hash + 1);
	}
	snprintf(s + o, cap - o, "%s", suffix);
	return s;
}

static int t_limits(void)
{
	static const struct {
		const char *prefix, *fmt, *suffix;
		int max;
		const char *field, *what;
	} cases[] = {
		{POL "ingress: [", "{}", "]\n", CTL_RULES_MAX, "ingress[256]",
		 "more than 256 rules"},
		{POL "deny: {egress: [", "{}", "]}\n", CTL_RULES_MAX, "deny.egress[256]",
		 "more than 256 rules"},
		{POL "ingress: [{from: [", "{selector: {}}", "]}]\n", CTL_PEERS_MAX,
		 "ingress[0].from[256]", "more than 256 peers"},
		{POL "ingress: [{ports: [", "{port: 1#}", "]}]\n", CTL_PORTS_MAX,
		 "ingress[0].ports[64]", "more than 64 ports"},
		{POL "ingress: [{from: [{cidr: 10.0.0.0/8, except: [", "10.#.0.0/16", "]}]}]\n",
		 CTL_EXCEPT_MAX, "ingress[0].from[0].except[64]", "more than 64 prefixes"},
		{"kind: Policy\nname: p\nselector: {matchExpressions: [{key: a, operator: In, "
		 "values: [",
		 "v#", "]}]}\n", CTL_VALUES_MAX, "selector.matchExpressions[0].values[64]",
		 "more than 64 values"},
		{"kind: Policy\nname: p\nselector: {matchExpressions: [",
		 "{key: k#, operator: Exists}", "]}\n", CTL_LABELS_MAX,
		 "selector.matchExpressions[64]", "more than 64 expressions"},
		{"kind: Node\nname: a\nlabels: {", "k#: v", "}\n", CTL_LABELS_MAX, "labels.k64",
		 "more than 64 labels"},
		{WL "addresses: [", "198.18.0.#", "]\n", CTL_ADDRS_MAX, "addresses[16]",
		 "more than 16 addresses"},
	};

	for (size_t i = 0; i < BH_ARRAY_SIZE(cases); i++) {
		char *at = repeat(cases[i].prefix, cases[i].fmt, cases[i].max, cases[i].suffix);
		char *over =
			repeat(cases[i].prefix, cases[i].fmt, cases[i].max + 1, cases[i].suffix);
		struct bh_error err = {0};
		struct ctl_docset s;
		int ok;

		T_ASSERT(at && over, "malloc");
		ok = load(at, &s, &err) == 0;
		if (ok) {
			ok = round_trip(&s.v[0]) == 0;
			ctl_docset_free(&s);
		} else {
			fprintf(stderr, "    at the limit: %s\n", err.msg);
		}
		free(at);
		if (ok) {
			ok = load(over, &s, &err) != 0 && strstr(err.msg, cases[i].field) &&
			     strstr(err.msg, cases[i].what);
			if (!ok)
				fprintf(stderr, "    over the limit: %s\n", err.msg);
		}
		free(over);
		T_ASSERT(ok, "limit case %zu (%s)", i, cases[i].what);
	}
	return 0;
}

/* The same document written differently gives the same JSON. */
static int t_equal_documents(void)
{
	static const char *const forms[][2] = {
		{"kind: Node\nname: a\nlabels: {b: '2', a: \"1\"}\n",
		 "{\"labels\": {\"a\": \"1\", \"b\": \"2\"}, \"name\": \"a\", \"kind\": \"Node\"}"},
		{"kind: Workload\nname: w\nnode: n\ninterface: e\naddresses: [\"fd00:b1::1\", "
		 "198.18.0.2/32, 198.18.0.1]\n",
		 "kind: Workload\nname: w\nnode: n\ninterface: e\nattach: veth\nlabels: {}\n"
		 "addresses: [198.18.0.1/32, 198.18.0.2, \"fd00:b1:0:0:0:0:0:1/128\"]\n"},
		{POL "ingress: [{ports: [{port: 80}, {protocol: 1}]}]\n",
		 POL "policyTypes: [Ingress]\nmode: enforce\ningress: [{from: [], ports: "
		     "[{protocol: tcp, port: 80, endPort: 80}, {protocol: ICMP}]}]\n"},
		{"kind: Policy\nname: p\nselector: {matchExpressions: [{key: b, operator: NotIn, "
		 "values: [y, x]}, {key: a, operator: DoesNotExist}]}\n",
		 "kind: Policy\nname: p\nselector: {matchLabels: {}, matchExpressions: [{key: a, "
		 "operator: doesnotexist, values: []}, {key: b, operator: NotIn, values: [x, "
		 "y]}]}\n"},
	};

	for (size_t i = 0; i < BH_ARRAY_SIZE(forms); i++) {
		struct ctl_docset a, b;
		char *ja, *jb;
		int same;

		if (load_one(forms[i][0], &a))
			return 1;
		if (load_one(forms[i][1], &b)) {
			ctl_docset_free(&a);
			return 1;
		}
		ja = ctl_doc_to_json(&a.v[0]);
		jb = ctl_doc_to_json(&b.v[0]);
		same = ja && jb && !strcmp(ja, jb);
		if (!same)
			fprintf(stderr, "    pair %zu:\n    %s\n    %s\n", i, ja, jb);
		free(ja);
		free(jb);
		ctl_docset_free(&a);
		ctl_docset_free(&b);
		if (!same)
			return 1;
	}
	return 0;
}

/* ---- selectors ---- */

static int t_selector_matches(void)
{
	static const struct {
		const char *sel, *labels;
		bool match;
	} cases[] = {
		{"", "", true},
		{"", "app=web", true},
		{"app=web", "app=web,env=prod", true},
		{"app=web", "app=api", false},
		{"app=web", "", false},
		{"app==web", "app=web", true},
		{"app!=web", "app=api", true},
		{"app!=web", "", true}, /* NotIn: absent matches, as in Kubernetes */
		{"app!=web", "app=web", false},
		{"env in (prod,staging)", "env=staging", true},
		{"env in (prod, staging)", "env=dev", false},
		{"env in (prod)", "", false},
		{"env notin (prod,staging)", "env=dev", true},
		{"env notin (prod,staging)", "", true},
		{"env notin (prod,staging)", "env=prod", false},
		{"env", "env=", true},
		{"env", "app=web", false},
		{"!env", "app=web", true},
		{"!env", "env=prod", false},
		{"app=web,!debug,env in (prod)", "app=web,env=prod", true},
		{"app=web,!debug,env in (prod)", "app=web,env=prod,debug=1", false},
		{"tier=", "tier=", true},
		{"tier=", "tier=a", false},
	};

	for (size_t i = 0; i < BH_ARRAY_SIZE(cases); i++) {
		struct ctl_selector s;
		struct ctl_labels l;
		struct bh_error err = {0};
		bool m;

		T_ASSERT(!ctl_selector_parse(cases[i].sel, &s, &err), "'%s': %s", cases[i].sel,
			 err.msg);
		T_ASSERT(!ctl_labels_parse(cases[i].labels, &l, &err), "'%s': %s", cases[i].labels,
			 err.msg);
		m = ctl_selector_matches(&s, &l);
		T_ASSERT(ctl_selector_empty(&s) == !*cases[i].sel, "'%s' empty?", cases[i].sel);
		ctl_selector_free(&s);
		ctl_labels_free(&l);
		T_ASSERT(m == cases[i].match, "'%s' on '%s': %d", cases[i].sel, cases[i].labels, m);
	}
	return 0;
}

/* A YAML selector: matchLabels AND every expression. */
static int t_selector_yaml_matches(void)
{
	static const struct {
		const char *labels;
		bool match;
	} cases[] = {
		{"app=api,env=prod", true},    {"app=api,env=dev", false},
		{"app=web,env=prod", false},   {"app=api,env=prod,debug=1", false},
		{"env=prod", false},	       {"app=api,env=staging,team=x", false},
		{"app=api,env=staging", true},
	};
	struct ctl_docset s;
	const struct ctl_selector *sel;

	if (load_one(
		    "kind: Policy\nname: p\nselector:\n  matchLabels: {app: api}\n"
		    "  matchExpressions:\n    - {key: env, operator: In, values: [prod, staging]}\n"
		    "    - {key: debug, operator: DoesNotExist}\n"
		    "    - {key: team, operator: NotIn, values: [x]}\n"
		    "    - {key: app, operator: Exists}\n",
		    &s))
		return 1;
	sel = &s.v[0].policy.sel;
	for (size_t i = 0; i < BH_ARRAY_SIZE(cases); i++) {
		struct ctl_labels l;
		struct bh_error err = {0};
		bool m;

		if (ctl_labels_parse(cases[i].labels, &l, &err)) {
			ctl_docset_free(&s);
			T_FAIL("%s", err.msg);
		}
		m = ctl_selector_matches(sel, &l);
		ctl_labels_free(&l);
		if (m != cases[i].match) {
			ctl_docset_free(&s);
			T_FAIL("on '%s': %d", cases[i].labels, m);
		}
	}
	ctl_docset_free(&s);
	return 0;
}

static int t_selector_text(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"", ""},
		{"  ", ""},
		{"app=web", "app=web"},
		{"app == web", "app=web"},
		{"env in (staging, prod), app=web", "app=web,env in (prod,staging)"},
		{"env notin (b,a)", "env notin (a,b)"},
		{"env notin (a)", "env!=a"},
		{"env in(a)", "env=a"},
		{"!debug,debug", "debug,!debug"},
		{" ! debug ", "!debug"},
		{"a.b/c-d_e=x.y", "a.b/c-d_e=x.y"},
		{"k=", "k="},
	};
	static const struct {
		const char *in, *what;
	} bad[] = {
		{"a in (b", "the values go in parentheses"},
		{"a in ()", "no values"},
		{"a=b=c", "bad value"},
		{"=b", "bad key"},
		{"a,,b", "an empty requirement"},
		{"a,", "an empty requirement"},
		{"a>1", "expected =, ==, !=, in (...) or notin (...)"},
		{"!a=b", "nothing may follow '!key'"},
		{"a in (b,b)", "value 'b' twice"},
		{"a=b,a=b", "is given twice"},
		{"a in b", "parentheses"},
		{"-a", "bad key"},
	};
	struct bh_error err = {0};

	for (size_t i = 0; i < BH_ARRAY_SIZE(cases); i++) {
		struct ctl_selector s, again;
		char *t, *t2;
		int ok;

		T_ASSERT(!ctl_selector_parse(cases[i].in, &s, &err), "'%s': %s", cases[i].in,
			 err.msg);
		t = ctl_selector_format(&s);
		T_ASSERT(t && !ctl_selector_parse(t, &again, &err), "'%s' back: %s", t, err.msg);
		t2 = ctl_selector_format(&again);
		ok = t && t2 && !strcmp(t, cases[i].out) && !strcmp(t, t2);
		if (!ok)
			fprintf(stderr, "    '%s' -> '%s' -> '%s', want '%s'\n", cases[i].in, t, t2,
				cases[i].out);
		free(t);
		free(t2);
		ctl_selector_free(&s);
		ctl_selector_free(&again);
		if (!ok)
			return 1;
	}
	for (size_t i = 0; i < BH_ARRAY_SIZE(bad); i++) {
		struct ctl_selector s = {.n_exprs = 7};

		bh_error_clear(&err);
		T_ASSERT(ctl_selector_parse(bad[i].in, &s, &err) == -EINVAL, "'%s' parsed",
			 bad[i].in);
		T_ASSERT(s.n_exprs == 0 && !s.exprs, "'%s': out not emptied", bad[i].in);
		T_ASSERT(strstr(err.msg, bad[i].what), "'%s': %s", bad[i].in, err.msg);
	}
	return 0;
}

/* matchLabels and an In expression that mean the same format the same. */
static int t_selector_format_merges(void)
{
	struct ctl_docset s;
	char *t;
	int ok;

	if (load_one("kind: Policy\nname: p\nselector:\n  matchLabels: {app: web, b: x}\n"
		     "  matchExpressions: [{key: app, operator: In, values: [web]},"
		     " {key: a, operator: In, values: [y, z]}]\n",
		     &s))
		return 1;
	t = ctl_selector_format(&s.v[0].policy.sel);
	ok = t && !strcmp(t, "a in (y,z),app=web,b=x");
	if (!ok)
		fprintf(stderr, "    got '%s'\n", t);
	free(t);
	ctl_docset_free(&s);
	return ok ? 0 : 1;
}

/* ---- labels ---- */

static int t_labels(void)
{
	static const struct {
		const char *in, *what;
	} bad[] = {
		{"a", "label 'a': no '='"},   {"a=1,a=2", "label 'a=2': key given twice"},
		{"a=1,", "label '': no '='"}, {",a=1", "no '='"},
		{" a=1", "bad key"},	      {"a=b c", "bad value"},
		{"a=b,=c", "bad key"},	      {"a=-b", "bad value"},
	};
	struct ctl_labels l, c = {0};
	struct bh_error err = {0};
	char *t;
	int ok;

	T_ASSERT(!ctl_labels_parse("", &l, &err) && l.n == 0 && !l.v, "empty");
	T_ASSERT(!ctl_labels_parse(NULL, &l, &err) && l.n == 0, "NULL");
	T_ASSERT(!ctl_labels_parse("zone=b,app=web,empty=,x.io/y=1.0", &l, &err), "%s", err.msg);
	t = ctl_labels_format(&l);
	ok = t && !strcmp(t, "app=web,empty=,x.io/y=1.0,zone=b");
	free(t);
	ok = ok && !strcmp(ctl_labels_get(&l, "zone"), "b") && !ctl_labels_get(&l, "zon") &&
	     !strcmp(ctl_labels_get(&l, "empty"), "");
	ok = ok && !ctl_labels_set(&l, "zone", "c") && !ctl_labels_set(&l, "b", "1") && l.n == 5 &&
	     !strcmp(l.v[1].key, "b") && !strcmp(ctl_labels_get(&l, "zone"), "c");
	ok = ok && !ctl_labels_copy(&c, &l);
	ctl_labels_free(&l);
	ctl_labels_free(&l); /* freeing twice is harmless */
	t = ok ? ctl_labels_format(&c) : NULL;
	ok = t && !strcmp(t, "app=web,b=1,empty=,x.io/y=1.0,zone=c");
	free(t);
	ctl_labels_free(&c);
	T_ASSERT(ok, "parse/format/get/set/copy");
	for (size_t i = 0; i < BH_ARRAY_SIZE(bad); i++) {
		bh_error_clear(&err);
		l = (struct ctl_labels){(void *)1, 3};
		T_ASSERT(ctl_labels_parse(bad[i].in, &l, &err) == -EINVAL, "'%s' parsed",
			 bad[i].in);
		T_ASSERT(!l.v && !l.n, "'%s': out not emptied", bad[i].in);
		T_ASSERT(strstr(err.msg, bad[i].what), "'%s': %s", bad[i].in, err.msg);
	}
	/* 128 labels parse (a host workload's: its node's and its own), 129 do not */
	t = repeat("", "k#=v", 2 * CTL_LABELS_MAX, "");
	T_ASSERT(t, "malloc");
	for (char *p = strchr(t, ' '); p; p = strchr(p, ' '))
		memmove(p, p + 1, strlen(p));
	ok = ctl_labels_parse(t, &l, &err) == 0 && l.n == 2 * CTL_LABELS_MAX;
	ctl_labels_free(&l);
	free(t);
	T_ASSERT(ok, "128 labels: %s", err.msg);
	t = repeat("", "k#=v", 2 * CTL_LABELS_MAX + 1, "");
	T_ASSERT(t, "malloc");
	for (char *p = strchr(t, ' '); p; p = strchr(p, ' '))
		memmove(p, p + 1, strlen(p)); /* repeat() separates with ", " */
	bh_error_clear(&err);
	ok = ctl_labels_parse(t, &l, &err) == -EINVAL && strstr(err.msg, "more than 128 labels");
	free(t);
	T_ASSERT(ok, "129 labels: %s", err.msg);
	return 0;
}

static int t_label_alphabets(void)
{
	char k63[64], k64[65];

	memset(k63, 'a', 63);
	k63[63] = '\0';
	memset(k64, 'a', 64);
	k64[64] = '\0';
	T_ASSERT(ctl_label_key_valid("a") && ctl_label_key_valid("A.b-c_d/e9") &&
			 ctl_label_key_valid(k63),
		 "valid keys");
	T_ASSERT(!ctl_label_key_valid("") && !ctl_label_key_valid("-a") &&
			 !ctl_label_key_valid("a.") && !ctl_label_key_valid("a b") &&
			 !ctl_label_key_valid("a=b") && !ctl_label_key_valid(k64) &&
			 !ctl_label_key_valid(NULL),
		 "bad keys");
	T_ASSERT(ctl_label_value_valid("") && ctl_label_value_valid("1.0") &&
			 ctl_label_value_valid(k63) && !ctl_label_value_valid(k64) &&
			 !ctl_label_value_valid("a,b"),
		 "values");
	T_ASSERT(ctl_name_valid("web-1") && ctl_name_valid("a") && ctl_name_valid("a.b_c") &&
			 ctl_name_valid(k63),
		 "valid names");
	T_ASSERT(!ctl_name_valid("") && !ctl_name_valid("Web") && !ctl_name_valid("-a") &&
			 !ctl_name_valid("a-") && !ctl_name_valid("a/b") && !ctl_name_valid(k64) &&
			 !ctl_name_valid(NULL),
		 "bad names");
	return 0;
}

/* ---- prefixes ---- */

static int t_prefix(void)
{
	static const struct {
		const char *in, *out;
		uint8_t family, len;
	} good[] = {
		{"198.18.0.0/15", "198.18.0.0/15", 4, 15},
		{"198.18.0.1", "198.18.0.1/32", 4, 32},
		{"0.0.0.0/0", "0.0.0.0/0", 4, 0},
		{"fd00:b1::/64", "fd00:b1::/64", 6, 64},
		{"fd00:b1:0::1", "fd00:b1::1/128", 6, 128},
		{"::/0", "::/0", 6, 0},
		{"::ffff:198.18.0.1/128", "::ffff:198.18.0.1/128", 6, 128},
	};
	static const struct {
		const char *in, *what;
	} bad[] = {
		{"198.18.0.1/15",
		 "'198.18.0.1/15' has host bits set: the network is 198.18.0.0/15"},
		{"fd00:b1::1/64", "the network is fd00:b1::/64"},
		{"198.18.0.0/33", "the prefix length is over 32 (IPv4)"},
		{"fd00::/129", "over 128 (IPv6)"},
		{"198.18.0.0/", "not a decimal number"},
		{"198.18.0.0/08", "not a decimal number"},
		{"198.18.0.0/-1", "not a decimal number"},
		{"198.18.0", "not an IPv4 or IPv6 address"},
		{"198.018.0.1", "not an IPv4 or IPv6 address"},
		{"", "not an IPv4 or IPv6 address"},
		{"/8", "not an IPv4 or IPv6 address"},
		{"fd00:b1::1%eth0", "not an IPv4 or IPv6 address"},
		{"web", "'web' is not"},
	};
	struct bh_error err = {0};
	struct ctl_prefix p;
	char buf[64];

	for (size_t i = 0; i < BH_ARRAY_SIZE(good); i++) {
		T_ASSERT(!ctl_prefix_parse(good[i].in, &p, &err), "'%s': %s", good[i].in, err.msg);
		T_ASSERT(p.family == good[i].family && p.len == good[i].len &&
				 !strcmp(ctl_prefix_format(&p, buf, sizeof(buf)), good[i].out),
			 "'%s' -> %u %u %s", good[i].in, p.family, p.len, buf);
	}
	for (size_t i = 0; i < BH_ARRAY_SIZE(bad); i++) {
		bh_error_clear(&err);
		T_ASSERT(ctl_prefix_parse(bad[i].in, &p, &err) == -EINVAL, "'%s' parsed",
			 bad[i].in);
		T_ASSERT(strstr(err.msg, bad[i].what), "'%s': %s", bad[i].in, err.msg);
	}
	return 0;
}

static int t_prefix_contains_cmp(void)
{
	static const struct {
		const char *outer, *inner;
		bool in;
	} cases[] = {
		{"198.18.0.0/15", "198.19.255.255", true},
		{"198.18.0.0/15", "198.18.0.0/15", true},
		{"198.18.0.0/15", "198.16.0.0/14", false},
		{"198.18.0.0/16", "198.19.0.0/24", false},
		{"0.0.0.0/0", "198.18.0.1", true},
		{"0.0.0.0/0", "::/0", false},
		{"fd00:b1::/64", "fd00:b1::5:1", true},
		{"fd00:b1::/64", "fd00:b2::1", false},
		{"198.18.0.0/31", "198.18.0.1", true},
		{"198.18.0.1/32", "198.18.0.1", true},
	};
	static const char *const order[] = {"0.0.0.0/0",     "198.18.0.0/15", "198.18.0.0/16",
					    "198.18.0.1/32", "::/0",	      "fd00:b1::/64"};
	struct bh_error err = {0};
	struct ctl_prefix a, b;

	for (size_t i = 0; i < BH_ARRAY_SIZE(cases); i++) {
		T_ASSERT(!ctl_prefix_parse(cases[i].outer, &a, &err) &&
				 !ctl_prefix_parse(cases[i].inner, &b, &err),
			 "%s", err.msg);
		T_ASSERT(ctl_prefix_contains(&a, &b) == cases[i].in, "%s in %s", cases[i].inner,
			 cases[i].outer);
	}
	for (size_t i = 0; i + 1 < BH_ARRAY_SIZE(order); i++) {
		T_ASSERT(!ctl_prefix_parse(order[i], &a, &err) &&
				 !ctl_prefix_parse(order[i + 1], &b, &err),
			 "%s", err.msg);
		T_ASSERT(ctl_prefix_cmp(&a, &b) < 0 && ctl_prefix_cmp(&b, &a) > 0 &&
				 ctl_prefix_cmp(&a, &a) == 0,
			 "%s < %s", order[i], order[i + 1]);
	}
	return 0;
}

static int t_kinds(void)
{
	T_ASSERT(!strcmp(ctl_kind_name(CTL_KIND_POLICY), "Policy") &&
			 !strcmp(ctl_kind_name(CTL_KIND_WORKLOAD), "Workload") &&
			 !strcmp(ctl_kind_name(CTL_KIND_NODE), "Node"),
		 "names");
	T_ASSERT(ctl_kind_parse("policy") == CTL_KIND_POLICY &&
			 ctl_kind_parse("Policies") == CTL_KIND_POLICY &&
			 ctl_kind_parse("WORKLOADS") == CTL_KIND_WORKLOAD &&
			 ctl_kind_parse("node") == CTL_KIND_NODE && ctl_kind_parse("pod") == -1 &&
			 ctl_kind_parse("") == -1 && ctl_kind_parse(NULL) == -1,
		 "parse");
	return 0;
}

static const struct t_case cases[] = {
	{"every deploy/examples/*.yaml loads and round-trips", t_examples},
	{"corpus: ok-* seeds load and round-trip, bad-* are refused", t_corpus},
	{"three-tier.yaml: seven policies, default deny both ways", t_three_tier},
	{"a policy with every field maps onto the model", t_full_policy},
	{"policyTypes: Kubernetes defaults, deny-only isolates nothing", t_policy_types},
	{"workload and node; empty documents are skipped", t_workload_node},
	{"canonical JSON: key order, sorting, defaults; JSON in", t_canonical_json},
	{"YAML out: block style, quoting", t_yaml_output},
	{"each error class: FILE:LINE:COLUMN: FIELD: cause, nothing returned", t_errors},
	{"empty text and text over 16 MiB refused", t_empty_and_huge},
	{"a text of exactly 16 MiB loads", t_at_the_size_limit},
	{"nesting deeper than 32 refused", t_nesting},
	{"every model.h limit: at it loads, over it refused", t_limits},
	{"equal documents written differently give byte-equal JSON", t_equal_documents},
	{"selector matching: In, NotIn, Exists, DoesNotExist, empty", t_selector_matches},
	{"a YAML selector: matchLabels and every expression", t_selector_yaml_matches},
	{"kubectl selector text: parse, canonical format, errors", t_selector_text},
	{"selector format merges matchLabels with equal In", t_selector_format_merges},
	{"label text: parse, format, get, set, copy, errors", t_labels},
	{"label key, value and name alphabets", t_label_alphabets},
	{"prefix parse and format; host bits name the network", t_prefix},
	{"prefix contains and order", t_prefix_contains_cmp},
	{"kind names", t_kinds},
};

int main(int argc, char **argv)
{
	return t_run(cases, BH_ARRAY_SIZE(cases), argc > 1 ? argv[1] : NULL);
}
