// SPDX-License-Identifier: Apache-2.0
/*
 * The agent daemon's configuration file (YAML, read with libyaml's document API so that every
 * node carries its line) and the enrollment's agent.conf. Every refusal names the file, the line
 * and the bad value, and says what would be accepted.
 */
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <yaml.h>

#include "bulkhead/log.h"
#include "bulkhead/token.h"
#include "bulkhead/util.h"
#include "config.h"
#include "enroll.h"

#define NAME_MAX_LEN 63 /* workload names and label keys/values: the controller's limits */
#define CONFIG_MAX   (4u << 20)

struct parse {
	const char *path;
	yaml_document_t *doc;
	struct agent_config *c;
	struct bh_error *err;
};

static int fail(struct parse *p, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records "PATH:LINE: message" and returns -EINVAL. */
static int fail(struct parse *p, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n)
		return bh_error_set(p->err, -EINVAL, "%s:%zu: %s", p->path, n->start_mark.line + 1,
				    msg);
	return bh_error_set(p->err, -EINVAL, "%s: %s", p->path, msg);
}

static const char *kind_name(const yaml_node_t *n)
{
	return n->type == YAML_MAPPING_NODE    ? "a mapping"
	       : n->type == YAML_SEQUENCE_NODE ? "a list"
					       : "a single value";
}

/* The scalar's text, or NULL (with the error recorded) if n is not a scalar or holds a NUL. */
static const char *scalar(struct parse *p, const yaml_node_t *n, const char *what)
{
	if (n->type != YAML_SCALAR_NODE) {
		fail(p, n, "%s: want a single value, not %s", what, kind_name(n));
		return NULL;
	}
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length) {
		fail(p, n, "%s: the value contains a NUL byte", what);
		return NULL;
	}
	return (const char *)n->data.scalar.value;
}

/* A plain (unquoted) empty or null scalar: "key:" with nothing after it. */
static bool is_null(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (!*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
		!strcmp(v, "NULL"));
}

static int str_value(struct parse *p, const yaml_node_t *n, const char *key, char **out)
{
	const char *v = scalar(p, n, key);
	char *copy;

	if (!v)
		return -EINVAL;
	copy = strdup(is_null(n) ? "" : v);
	if (!copy)
		return bh_error_set(p->err, -ENOMEM, "out of memory");
	free(*out);
	*out = copy;
	return 0;
}

/* [a-z0-9]([-a-z0-9._]*[a-z0-9])?, at most 63: the controller's object names. */
static bool object_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
			continue;
		if (i == 0 || i == n - 1 || (ch != '-' && ch != '.' && ch != '_'))
			return false;
	}
	return true;
}

/* Label keys and values: [A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?, at most 63 (values may also
 * be empty). */
static bool label_text_ok(const char *s, bool empty_ok)
{
	size_t n = strlen(s);

	if (n == 0)
		return empty_ok;
	if (n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');

		if (alnum)
			continue;
		if (i == 0 || i == n - 1 || (ch != '-' && ch != '_' && ch != '.' && ch != '/'))
			return false;
	}
	return true;
}

/* Calls fn for every key/value of the mapping n, refusing keys seen twice. */
static int each_pair(struct parse *p, const yaml_node_t *n, const char *what,
		     int (*fn)(struct parse *p, const char *key, const yaml_node_t *k,
			       const yaml_node_t *v, void *arg),
		     void *arg)
{
	if (n->type != YAML_MAPPING_NODE)
		return fail(p, n, "%s: want a mapping (key: value lines), not %s", what,
			    kind_name(n));
	for (yaml_node_pair_t *a = n->data.mapping.pairs.start; a < n->data.mapping.pairs.top;
	     a++) {
		const yaml_node_t *k = yaml_document_get_node(p->doc, a->key);
		const yaml_node_t *v = yaml_document_get_node(p->doc, a->value);
		const char *key = scalar(p, k, "key");
		int rc;

		if (!key)
			return -EINVAL;
		for (yaml_node_pair_t *b = n->data.mapping.pairs.start; b < a; b++) {
			const yaml_node_t *k2 = yaml_document_get_node(p->doc, b->key);

			if (k2->type == YAML_SCALAR_NODE &&
			    !strcmp((const char *)k2->data.scalar.value, key))
				return fail(p, k, "%s: \"%s\" given twice (first on line %zu)",
					    what, key, k2->start_mark.line + 1);
		}
		if ((rc = fn(p, key, k, v, arg)))
			return rc;
	}
	return 0;
}

/* ---- endpoints ------------------------------------------------------------------------------ */

static int label_pair(struct parse *p, const char *key, const yaml_node_t *k, const yaml_node_t *v,
		      void *arg)
{
	struct agent_endpoint_cfg *e = arg;
	const char *val = scalar(p, v, "label value");
	size_t len = strlen(e->labels), need;
	char *grown;

	if (!val)
		return -EINVAL;
	if (is_null(v))
		val = "";
	if (!label_text_ok(key, false))
		return fail(p, k,
			    "endpoint %s: label key \"%s\": want 1-63 of [A-Za-z0-9-_./], "
			    "starting and ending with a letter or digit",
			    e->name ? e->name : "?", key);
	if (!label_text_ok(val, true))
		return fail(p, v,
			    "endpoint %s: label %s: value \"%s\": want up to 63 of "
			    "[A-Za-z0-9-_./], starting and ending with a letter or digit",
			    e->name ? e->name : "?", key, val);
	need = len + (len ? 1 : 0) + strlen(key) + 1 + strlen(val) + 1;
	grown = realloc(e->labels, need);
	if (!grown)
		return bh_error_set(p->err, -ENOMEM, "out of memory");
	e->labels = grown;
	snprintf(e->labels + len, need - len, "%s%s=%s", len ? "," : "", key, val);
	return 0;
}

static int endpoint_pair(struct parse *p, const char *key, const yaml_node_t *k,
			 const yaml_node_t *v, void *arg)
{
	struct agent_endpoint_cfg *e = arg;
	const char *s;

	if (!strcmp(key, "name")) {
		if (str_value(p, v, key, &e->name))
			return -EINVAL;
		if (!object_name_ok(e->name))
			return fail(p, v,
				    "endpoint name \"%s\": want 1-63 of [a-z0-9-._], starting "
				    "and ending with a letter or digit",
				    e->name);
	} else if (!strcmp(key, "interface")) {
		if (str_value(p, v, key, &e->ifname))
			return -EINVAL;
		if (!e->ifname[0] || strlen(e->ifname) >= IF_NAMESIZE || strchr(e->ifname, '/') ||
		    strpbrk(e->ifname, " \t:") || !strcmp(e->ifname, ".") ||
		    !strcmp(e->ifname, ".."))
			return fail(p, v,
				    "interface \"%s\": not a valid interface name (1-%d "
				    "characters, no '/', ':' or spaces)",
				    e->ifname, IF_NAMESIZE - 1);
	} else if (!strcmp(key, "attach")) {
		if (!(s = scalar(p, v, key)))
			return -EINVAL;
		if (strcmp(s, "veth") && strcmp(s, "host"))
			return fail(p, v,
				    "attach \"%s\": want veth (the host side of a workload's "
				    "veth) or host (this node's own interface)",
				    s);
		e->host = !strcmp(s, "host");
	} else if (!strcmp(key, "addresses")) {
		if (v->type != YAML_SEQUENCE_NODE)
			return fail(p, v,
				    "addresses: want a list ([198.18.1.10, \"fd00:b1::1:10\"]),"
				    " not %s",
				    kind_name(v));
		for (yaml_node_item_t *i = v->data.sequence.items.start;
		     i < v->data.sequence.items.top; i++) {
			const yaml_node_t *a = yaml_document_get_node(p->doc, *i);
			uint8_t addr[16];
			int alen, plen;

			if (!(s = scalar(p, a, "address")))
				return -EINVAL;
			if (strchr(s, '/') || bh_parse_prefix(s, addr, &alen, &plen))
				return fail(p, a,
					    "address \"%s\": want one IPv4 or IPv6 address "
					    "(no prefix length)",
					    s);
			if (e->n_addrs == AGENT_EP_ADDRS_MAX)
				return fail(p, a, "more than %d addresses on one endpoint",
					    AGENT_EP_ADDRS_MAX);
			if (!(e->addrs[e->n_addrs] = strdup(s)))
				return bh_error_set(p->err, -ENOMEM, "out of memory");
			e->n_addrs++;
		}
	} else if (!strcmp(key, "labels")) {
		if (is_null(v))
			return 0;
		if (v->type == YAML_MAPPING_NODE &&
		    v->data.mapping.pairs.top - v->data.mapping.pairs.start > AGENT_EP_LABELS_MAX)
			return fail(p, v, "more than %d labels", AGENT_EP_LABELS_MAX);
		return each_pair(p, v, "labels", label_pair, e);
	} else {
		return fail(p, k,
			    "unknown endpoint key \"%s\" (want name, interface, attach, "
			    "addresses, labels)",
			    key);
	}
	return 0;
}

static int parse_endpoints(struct parse *p, const yaml_node_t *v)
{
	struct agent_config *c = p->c;
	size_t n;
	int rc;

	if (is_null(v))
		return 0; /* "endpoints:" with nothing: none */
	if (v->type != YAML_SEQUENCE_NODE)
		return fail(p, v,
			    "endpoints: want a list (lines starting with \"- name: ...\"), not "
			    "%s",
			    kind_name(v));
	n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > AGENT_EPS_MAX)
		return fail(p, v, "%zu endpoints: at most %d", n, AGENT_EPS_MAX);
	c->eps = calloc(n ? n : 1, sizeof(*c->eps));
	if (!c->eps)
		return bh_error_set(p->err, -ENOMEM, "out of memory");
	for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top;
	     i++) {
		const yaml_node_t *en = yaml_document_get_node(p->doc, *i);
		struct agent_endpoint_cfg *e = &c->eps[c->n_eps++];

		e->line = (unsigned int)en->start_mark.line + 1;
		e->labels = strdup("");
		e->addrs = calloc(AGENT_EP_ADDRS_MAX, sizeof(char *));
		if (!e->labels || !e->addrs)
			return bh_error_set(p->err, -ENOMEM, "out of memory");
		if ((rc = each_pair(p, en, "endpoint", endpoint_pair, e)))
			return rc;
		if (!e->name)
			return fail(p, en, "endpoint without a name");
		if (!e->ifname)
			return fail(p, en, "endpoint %s: no interface", e->name);
		if (!e->n_addrs)
			return fail(p, en, "endpoint %s: no addresses (want at least one)",
				    e->name);
		for (size_t j = 0; j + 1 < c->n_eps; j++) {
			if (!strcmp(c->eps[j].name, e->name))
				return fail(p, en, "endpoint %s declared twice (first on line %u)",
					    e->name, c->eps[j].line);
			if (!strcmp(c->eps[j].ifname, e->ifname))
				return fail(p, en, "endpoints %s and %s both on interface %s",
					    c->eps[j].name, e->name, e->ifname);
		}
	}
	return 0;
}

/* ---- maps ----------------------------------------------------------------------------------- */

static int map_pair(struct parse *p, const char *key, const yaml_node_t *k, const yaml_node_t *v,
		    void *arg)
{
	struct agent_config *c = p->c;
	const struct {
		const char *name;
		uint32_t *dst;
	} sizes[] = {
		{"policy", &c->policy_max},	  {"ipcache", &c->ipcache_max},
		{"endpoints", &c->endpoints_max}, {"conntrack", &c->ct_max},
		{"flows", &c->flows_max},	  {"events-per-second", &c->events_per_sec},
	};
	const char *s;
	uint64_t n;

	for (size_t i = 0; i < BH_ARRAY_SIZE(sizes); i++) {
		if (strcmp(key, sizes[i].name))
			continue;
		if (!(s = scalar(p, v, key)))
			return -EINVAL;
		if (bh_parse_u64(s, UINT32_MAX, &n) || n == 0)
			return fail(p, v, "maps: %s \"%s\": want a number from 1 to %u", key, s,
				    UINT32_MAX);
		*sizes[i].dst = (uint32_t)n;
		return 0;
	}
	return fail(p, k,
		    "unknown map \"%s\" (want policy, ipcache, endpoints, conntrack, flows, "
		    "events-per-second)",
		    key);
}

/* ---- flow export ---------------------------------------------------------------------------- */

static int flow_pair(struct parse *p, const char *key, const yaml_node_t *k, const yaml_node_t *v,
		     void *arg)
{
	struct agent_config *c = p->c;
	const char *s;
	unsigned long secs;
	uint64_t n;

	(void)arg;
	if (!(s = scalar(p, v, key)))
		return -EINVAL;
	if (!strcmp(key, "interval")) {
		if (bh_parse_duration(s, &secs) || secs > 3600)
			return fail(p, v,
				    "flow-export: interval \"%s\": want a duration up to 1h (10s, "
				    "1m), or 0 to export nothing",
				    s);
		c->flow_interval_s = (uint32_t)secs;
		c->flow_export_off = secs == 0;
	} else if (!strcmp(key, "spool")) {
		if (bh_parse_u64(s, 10000000, &n) || n == 0)
			return fail(p, v, "flow-export: spool \"%s\": want a number of summaries "
					  "from 1 to 10000000", s);
		c->flow_spool = (uint32_t)n;
	} else if (!strcmp(key, "events")) {
		if (bh_parse_u64(s, 1000000, &n))
			return fail(p, v, "flow-export: events \"%s\": want a number of deny events "
					  "from 0 to 1000000", s);
		c->flow_events = (uint32_t)n;
		c->flow_events_set = true;
	} else {
		return fail(p, k, "flow-export: unknown key \"%s\" (want interval, spool, events)",
			    key);
	}
	return 0;
}

/* ---- top level ------------------------------------------------------------------------------ */

static int top_pair(struct parse *p, const char *key, const yaml_node_t *k, const yaml_node_t *v,
		    void *arg)
{
	struct agent_config *c = p->c;
	const char *s;

	if (!strcmp(key, "state-dir")) {
		if (str_value(p, v, key, &c->state_dir))
			return -EINVAL;
		if (c->state_dir[0] != '/')
			return fail(p, v, "state-dir \"%s\": want an absolute path", c->state_dir);
	} else if (!strcmp(key, "netns")) {
		if (str_value(p, v, key, &c->netns))
			return -EINVAL;
		if (strchr(c->netns, '/') || !strcmp(c->netns, ".") || !strcmp(c->netns, "..") ||
		    strlen(c->netns) > 200)
			return fail(p, v,
				    "netns \"%s\": want the name of a namespace under "
				    "/run/netns (as `ip netns` shows it), or \"\"",
				    c->netns);
	} else if (!strcmp(key, "first-start")) {
		if (!(s = scalar(p, v, key)))
			return -EINVAL;
		if (strcmp(s, "observe") && strcmp(s, "enforce"))
			return fail(p, v,
				    "first-start \"%s\": want observe (traffic passes until the "
				    "controller's policy arrives) or enforce (denied until "
				    "then)",
				    s);
		c->first_enforce = !strcmp(s, "enforce");
	} else if (!strcmp(key, "status-socket")) {
		if (str_value(p, v, key, &c->status_socket))
			return -EINVAL;
		if (c->status_socket[0] != '/' ||
		    strlen(c->status_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return fail(p, v,
				    "status-socket \"%s\": want an absolute path of at most "
				    "%zu characters",
				    c->status_socket,
				    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	} else if (!strcmp(key, "log-level")) {
		if (!(s = scalar(p, v, key)))
			return -EINVAL;
		if ((c->log_level = bh_log_level_parse(s)) < 0)
			return fail(p, v,
				    "log-level \"%s\": want err, warning, notice, info or "
				    "debug",
				    s);
	} else if (!strcmp(key, "endpoints")) {
		return parse_endpoints(p, v);
	} else if (!strcmp(key, "maps")) {
		return is_null(v) ? 0 : each_pair(p, v, "maps", map_pair, NULL);
	} else if (!strcmp(key, "metrics")) {
		if (str_value(p, v, key, &c->metrics))
			return -EINVAL;
		if (!c->metrics[0])
			return fail(p, v, "metrics: want HOST:PORT (127.0.0.1:9465) or none");
	} else if (!strcmp(key, "metrics-public")) {
		if (!(s = scalar(p, v, key)))
			return -EINVAL;
		if (strcmp(s, "true") && strcmp(s, "false"))
			return fail(p, v, "metrics-public \"%s\": want true or false", s);
		c->metrics_public = !strcmp(s, "true");
	} else if (!strcmp(key, "flow-export")) {
		return is_null(v) ? 0 : each_pair(p, v, "flow-export", flow_pair, NULL);
	} else {
		return fail(p, k,
			    "unknown key \"%s\" (want state-dir, netns, first-start, "
			    "status-socket, log-level, endpoints, maps, flow-export, metrics, "
			    "metrics-public)",
			    key);
	}
	return 0;
}

int agent_config_load(const char *path, struct agent_config **out, struct bh_error *err)
{
	struct agent_config *c = calloc(1, sizeof(*c));
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	struct parse p = {.path = path, .doc = &doc, .c = c, .err = err};
	char *text = NULL;
	size_t len;
	bool parser_ok = false, doc_ok = false;
	yaml_node_t *root;
	int rc;

	if (!c)
		return bh_error_set(err, -ENOMEM, "out of memory");
	c->log_level = -1;
	rc = bh_read_file(path, CONFIG_MAX, &text, &len);
	if (rc) {
		bh_error_set(err, rc, "%s: %s", path,
			     rc == -EFBIG ? "larger than 4 MiB" : bh_strerror(rc));
		goto out;
	}
	if (!(c->path = strdup(path)) || !yaml_parser_initialize(&parser)) {
		rc = bh_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = bh_error_set(err, -EINVAL, "%s:%zu:%zu: %s%s%s", path,
				  parser.problem_mark.line + 1, parser.problem_mark.column + 1,
				  parser.problem ? parser.problem : "not YAML",
				  parser.context ? " " : "", parser.context ? parser.context : "");
		goto out;
	}
	doc_ok = true;
	root = yaml_document_get_root_node(&doc);
	if (root) {
		if (is_null(root))
			root = NULL; /* a file of comments only: every default */
		else if ((rc = each_pair(&p, root, "the configuration", top_pair, NULL)))
			goto out;
	}
	if (yaml_parser_load(&parser, &extra)) {
		bool more = yaml_document_get_root_node(&extra) != NULL;
		size_t line = extra.start_mark.line + 1;

		yaml_document_delete(&extra);
		if (more) {
			rc = bh_error_set(err, -EINVAL, "%s:%zu: a second YAML document: want one",
					  path, line);
			goto out;
		}
	}
	if ((!c->state_dir && !(c->state_dir = strdup(AGENT_STATE_DIR_DEFAULT))) ||
	    (!c->netns && !(c->netns = strdup(""))) ||
	    (!c->status_socket && !(c->status_socket = strdup(AGENT_STATUS_DEFAULT)))) {
		rc = bh_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (!c->eps && !(c->eps = calloc(1, sizeof(*c->eps)))) {
		rc = bh_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	*out = c;
	c = NULL;
	rc = 0;
out:
	if (doc_ok)
		yaml_document_delete(&doc);
	if (parser_ok)
		yaml_parser_delete(&parser);
	free(text);
	agent_config_free(c);
	return rc;
}

void agent_config_free(struct agent_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_eps; i++) {
		struct agent_endpoint_cfg *e = &c->eps[i];

		free(e->name);
		free(e->ifname);
		for (size_t j = 0; j < e->n_addrs; j++)
			free(e->addrs[j]);
		free(e->addrs);
		free(e->labels);
	}
	free(c->eps);
	free(c->path);
	free(c->state_dir);
	free(c->netns);
	free(c->status_socket);
	free(c->metrics);
	free(c);
}

/* ---- agent.conf ----------------------------------------------------------------------------- */

int agent_identity_load(const char *dir, struct agent_identity *id, struct bh_error *err)
{
	char path[4096], *text = NULL, *line, *save = NULL;
	size_t len;
	int rc;

	memset(id, 0, sizeof(*id));
	snprintf(path, sizeof(path), "%s/%s", dir, AGENT_CONF);
	rc = bh_read_file(path, 1 << 16, &text, &len);
	if (rc)
		return bh_error_set(err, rc, "%s: %s%s", path, bh_strerror(rc),
				    rc == -ENOENT
					    ? ": this node is not enrolled (run bulkhead-agent "
					      "enroll first, with the same state directory)"
					    : "");
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "name ", 5))
			snprintf(id->node, sizeof(id->node), "%s", line + 5);
		else if (!strncmp(line, "controller ", 11))
			snprintf(id->controller, sizeof(id->controller), "%s", line + 11);
	}
	free(text);
	if (!id->node[0] || !id->controller[0])
		return bh_error_set(err, -EINVAL, "%s: no %s line: enroll this node again", path,
				    id->node[0] ? "controller" : "name");
	/* HOST:PORT or [V6]:PORT, read as agent_client() reads it (a bare IPv6 address has no
	 * port: 7443) so that what the daemon says is what the client dials */
	{
		const char *s = id->controller, *colon = strrchr(s, ':');
		uint64_t port = 7443;

		if (s[0] == '[') {
			const char *end = strchr(s, ']');

			if (!end)
				return bh_error_set(err, -EINVAL,
						    "%s: controller \"%s\": want "
						    "HOST:PORT",
						    path, s);
			snprintf(id->host, sizeof(id->host), "%.*s", (int)(end - s - 1), s + 1);
			colon = end[1] == ':' ? end + 1 : NULL;
		} else {
			if (colon && strchr(s, ':') != colon)
				colon = NULL;
			snprintf(id->host, sizeof(id->host), "%.*s",
				 colon ? (int)(colon - s) : (int)strlen(s), s);
		}
		if ((colon && (bh_parse_u64(colon + 1, 65535, &port) || port == 0)) || !id->host[0])
			return bh_error_set(err, -EINVAL, "%s: controller \"%s\": want HOST:PORT",
					    path, s);
		id->port = (uint16_t)port;
	}
	return 0;
}
