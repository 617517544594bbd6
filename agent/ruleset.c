// SPDX-License-Identifier: Apache-2.0
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead/util.h"
#include "ruleset.h"

#define MAX_TOKENS 16
#define MAX_LINE   4096

struct parser {
	const char *name;
	unsigned int line;
	struct bh_error *err;
	Bulkhead__NodePolicy *np;
	Bulkhead__NodePolicyDelta *delta;
};

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parser *p, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return bh_error_set(p->err, -EINVAL, "%s:%u: %s", p->name, p->line, msg);
}

/* Appends item to a protobuf-c repeated field (array of pointers + count). */
static int push(void ***arr, size_t *n, void *item)
{
	void **na = realloc(*arr, (*n + 1) * sizeof(*na));

	if (!na)
		return -ENOMEM;
	na[*n] = item;
	*arr = na;
	(*n)++;
	return 0;
}

static int parse_u32(struct parser *p, const char *what, const char *s, uint32_t max,
		     uint32_t *out)
{
	uint64_t v;
	int rc = bh_parse_u64(s, max, &v);

	if (rc == -ERANGE)
		return fail(p, "%s %s out of range (0-%u)", what, s, max);
	if (rc)
		return fail(p, "%s \"%s\" is not a number", what, s);
	*out = (uint32_t)v;
	return 0;
}

static int parse_identity(struct parser *p, const char *what, const char *s, bool any_ok,
			  uint32_t *out)
{
	if (any_ok && strcmp(s, "any") == 0) {
		*out = 0;
		return 0;
	}
	if (parse_u32(p, what, s, UINT32_MAX, out))
		return -EINVAL;
	if (*out == 0)
		return fail(p, "%s must not be 0%s", what, any_ok ? " (write \"any\")" : "");
	return 0;
}

static int parse_verdict(struct parser *p, const char *s, Bulkhead__Verdict *out)
{
	if (strcmp(s, "allow") == 0)
		*out = BULKHEAD__VERDICT__VERDICT_ALLOW;
	else if (strcmp(s, "deny") == 0)
		*out = BULKHEAD__VERDICT__VERDICT_DENY;
	else
		return fail(p, "verdict \"%s\" is neither allow nor deny", s);
	return 0;
}

/* PROTO[/PORT[-END]] */
static int parse_l4(struct parser *p, const char *s, Bulkhead__Rule *r)
{
	char proto[32], *slash, *dash;
	size_t n = strcspn(s, "/");
	bool found = false;

	if (n >= sizeof(proto))
		return fail(p, "protocol \"%s\" unknown", s);
	memcpy(proto, s, n);
	proto[n] = '\0';
	if (bh_ip_proto_number(proto, false) >= 0) {
		r->protocol = (uint32_t)bh_ip_proto_number(proto, false);
		found = true;
	}
	if (!found && parse_u32(p, "protocol", proto, 255, &r->protocol))
		return -EINVAL;
	slash = strchr(s, '/');
	if (!slash)
		return 0;
	if (r->protocol == 0)
		return fail(p, "\"%s\": a port needs a protocol", s);
	dash = strchr(slash + 1, '-');
	if (dash) {
		char lo[16];
		size_t ln = (size_t)(dash - slash - 1);

		if (ln == 0 || ln >= sizeof(lo))
			return fail(p, "port range \"%s\" is malformed", slash + 1);
		memcpy(lo, slash + 1, ln);
		lo[ln] = '\0';
		if (parse_u32(p, "port", lo, 65535, &r->port) ||
		    parse_u32(p, "port", dash + 1, 65535, &r->end_port))
			return -EINVAL;
		if (r->end_port < r->port)
			return fail(p, "port range %u-%u has start > end", r->port, r->end_port);
		if (r->port == 0)
			return fail(p, "port range must start at 1 or above");
		return 0;
	}
	if (parse_u32(p, "port", slash + 1, 65535, &r->port))
		return -EINVAL;
	if (r->port == 0)
		return fail(p, "port 0: leave the port out to mean any port");
	return 0;
}

/* rule LOCAL DIR PEER PROTO[/PORT[-END]] VERDICT RULE_ID */
static int parse_rule(struct parser *p, char **tok, int ntok, Bulkhead__Rule **out)
{
	Bulkhead__Rule *r;

	if (ntok != 7)
		return fail(p, "rule wants 6 fields: LOCAL ingress|egress PEER|any PROTO[/PORT[-END]]"
			       " allow|deny RULE_ID");
	r = malloc(sizeof(*r));
	if (!r)
		return fail(p, "out of memory");
	bulkhead__rule__init(r);
	if (parse_identity(p, "local identity", tok[1], false, &r->local_identity))
		goto bad;
	if (strcmp(tok[2], "ingress") == 0)
		r->direction = BULKHEAD__DIRECTION__DIRECTION_INGRESS;
	else if (strcmp(tok[2], "egress") == 0)
		r->direction = BULKHEAD__DIRECTION__DIRECTION_EGRESS;
	else {
		fail(p, "direction \"%s\" is neither ingress nor egress", tok[2]);
		goto bad;
	}
	if (parse_identity(p, "peer identity", tok[3], true, &r->remote_identity) ||
	    parse_l4(p, tok[4], r) || parse_verdict(p, tok[5], &r->verdict) ||
	    parse_u32(p, "rule id", tok[6], UINT32_MAX, &r->rule_id))
		goto bad;
	if (r->rule_id <= 15) {
		fail(p, "rule id %u is reserved (ids 0-15 name datapath decisions)", r->rule_id);
		goto bad;
	}
	*out = r;
	return 0;
bad:
	free(r);
	return -EINVAL;
}

/* ipcache PREFIX IDENTITY */
static int parse_ipcache(struct parser *p, char **tok, int ntok, Bulkhead__IpcacheEntry **out)
{
	Bulkhead__IpcacheEntry *c;
	uint8_t addr[16];
	int alen, plen;
	uint32_t id;

	if (ntok != 3)
		return fail(p, "ipcache wants 2 fields: PREFIX IDENTITY");
	if (bh_parse_prefix(tok[1], addr, &alen, &plen))
		return fail(p, "\"%s\" is not an address or prefix", tok[1]);
	if (parse_identity(p, "identity", tok[2], false, &id))
		return -EINVAL;
	c = malloc(sizeof(*c));
	if (!c)
		return fail(p, "out of memory");
	bulkhead__ipcache_entry__init(c);
	c->prefix.data = malloc((size_t)alen);
	if (!c->prefix.data) {
		free(c);
		return fail(p, "out of memory");
	}
	memcpy(c->prefix.data, addr, (size_t)alen);
	c->prefix.len = (size_t)alen;
	c->prefix_len = (uint32_t)plen;
	c->identity = id;
	*out = c;
	return 0;
}

static Bulkhead__DirectionDefault *parse_default(struct parser *p, const char *key,
						 const char *s)
{
	Bulkhead__DirectionDefault *d;
	char verdict[16];
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);

	if (n >= sizeof(verdict)) {
		fail(p, "%s=\"%s\": want allow|deny[:RULE_ID]", key, s);
		return NULL;
	}
	d = malloc(sizeof(*d));
	if (!d) {
		fail(p, "out of memory");
		return NULL;
	}
	bulkhead__direction_default__init(d);
	memcpy(verdict, s, n);
	verdict[n] = '\0';
	if (parse_verdict(p, verdict, &d->verdict) ||
	    (colon && parse_u32(p, "rule id", colon + 1, UINT32_MAX, &d->rule_id))) {
		free(d);
		return NULL;
	}
	return d;
}

/* endpoint NAME if=IFNAME id=ID [mode=enforce|observe] [attach=host|veth] [ingress=V[:ID]]
 * [egress=V[:ID]]. A direction left out is allow, with rule id 0. */
static int parse_endpoint(struct parser *p, char **tok, int ntok, Bulkhead__Endpoint **out)
{
	Bulkhead__Endpoint *ep;
	bool have_id = false;

	if (ntok < 4)
		return fail(p, "endpoint wants NAME if=IFNAME id=IDENTITY [mode=...] [attach=...] "
			       "[ingress=allow|deny:RULE] [egress=allow|deny:RULE]");
	ep = malloc(sizeof(*ep));
	if (!ep)
		return fail(p, "out of memory");
	bulkhead__endpoint__init(ep);
	ep->name = strdup(tok[1]);
	ep->ifname = NULL;
	if (!ep->name)
		goto nomem;
	for (int i = 2; i < ntok; i++) {
		char *eq = strchr(tok[i], '=');
		const char *key = tok[i], *val;

		if (!eq) {
			fail(p, "endpoint: \"%s\" is not KEY=VALUE", tok[i]);
			goto bad;
		}
		*eq = '\0';
		val = eq + 1;
		if (strcmp(key, "if") == 0) {
			if (!*val || strlen(val) >= 16) {
				fail(p, "interface name \"%s\" is not 1-15 characters", val);
				goto bad;
			}
			free(ep->ifname);
			ep->ifname = strdup(val);
			if (!ep->ifname)
				goto nomem;
		} else if (strcmp(key, "id") == 0) {
			if (parse_identity(p, "identity", val, false, &ep->identity))
				goto bad;
			have_id = true;
		} else if (strcmp(key, "mode") == 0) {
			if (strcmp(val, "enforce") == 0)
				ep->mode = BULKHEAD__MODE__MODE_ENFORCE;
			else if (strcmp(val, "observe") == 0)
				ep->mode = BULKHEAD__MODE__MODE_OBSERVE;
			else {
				fail(p, "mode \"%s\" is neither enforce nor observe", val);
				goto bad;
			}
		} else if (strcmp(key, "attach") == 0) {
			if (strcmp(val, "host") == 0)
				ep->attach = BULKHEAD__ATTACH__ATTACH_HOST;
			else if (strcmp(val, "veth") == 0)
				ep->attach = BULKHEAD__ATTACH__ATTACH_VETH;
			else {
				fail(p, "attach \"%s\" is neither host nor veth", val);
				goto bad;
			}
		} else if (strcmp(key, "ingress") == 0 || strcmp(key, "egress") == 0) {
			Bulkhead__DirectionDefault **slot =
				key[0] == 'i' ? &ep->ingress : &ep->egress;

			bulkhead__direction_default__free_unpacked(*slot, NULL);
			*slot = parse_default(p, key, val);
			if (!*slot)
				goto bad;
		} else {
			fail(p, "endpoint: unknown key \"%s\"", key);
			goto bad;
		}
	}
	if (!ep->ifname) {
		fail(p, "endpoint %s: if=IFNAME is required", ep->name);
		goto bad;
	}
	if (!have_id) {
		fail(p, "endpoint %s: id=IDENTITY is required", ep->name);
		goto bad;
	}
	for (int d = 0; d < 2; d++) {
		Bulkhead__DirectionDefault **slot = d == 0 ? &ep->ingress : &ep->egress;

		if (*slot)
			continue;
		*slot = malloc(sizeof(**slot));
		if (!*slot)
			goto nomem;
		bulkhead__direction_default__init(*slot);
		(*slot)->verdict = BULKHEAD__VERDICT__VERDICT_ALLOW;
	}
	*out = ep;
	return 0;
nomem:
	fail(p, "out of memory");
bad:
	if (!ep->ifname)
		ep->ifname = strdup("");
	bulkhead__endpoint__free_unpacked(ep, NULL);
	return -EINVAL;
}

/* Handles one tokenised line. */
static int parse_line(struct parser *p, char **tok, int ntok)
{
	const char *kw = tok[0];
	int sign = 0;
	void *item = NULL;
	int rc;

	if (kw[0] == '+' || kw[0] == '-') {
		sign = kw[0] == '+' ? 1 : -1;
		kw++;
	}
	if (strcmp(kw, "revision") == 0 || strcmp(kw, "delta") == 0) {
		if (sign)
			return fail(p, "\"%s\" takes no +/- sign", kw);
		if (p->np || p->delta)
			return fail(p, "\"%s\" again: a file holds one rule set or one delta", kw);
		if (kw[0] == 'r') {
			p->np = malloc(sizeof(*p->np));
			if (!p->np)
				return fail(p, "out of memory");
			bulkhead__node_policy__init(p->np);
			if (ntok != 2)
				return fail(p, "revision wants one number");
			rc = bh_parse_u64(tok[1], UINT64_MAX, &p->np->revision);
			return rc ? fail(p, "revision \"%s\" is not a number", tok[1]) : 0;
		}
		p->delta = malloc(sizeof(*p->delta));
		if (!p->delta)
			return fail(p, "out of memory");
		bulkhead__node_policy_delta__init(p->delta);
		if (ntok != 3)
			return fail(p, "delta wants two numbers: FROM_REVISION TO_REVISION");
		if (bh_parse_u64(tok[1], UINT64_MAX, &p->delta->from_revision) ||
		    bh_parse_u64(tok[2], UINT64_MAX, &p->delta->to_revision))
			return fail(p, "delta revisions must be numbers");
		if (p->delta->to_revision <= p->delta->from_revision)
			return fail(p, "delta goes from %s to %s: the second must be greater",
				    tok[1], tok[2]);
		return 0;
	}
	if (!p->np && !p->delta)
		return fail(p, "the first line must be \"revision N\" or \"delta FROM TO\"");
	if (p->np && sign)
		return fail(p, "+/- lines belong in a delta, not in a rule set");
	if (p->delta && !sign)
		return fail(p, "a delta line starts with + (add) or - (remove)");

	if (strcmp(kw, "rule") == 0) {
		if (parse_rule(p, tok, ntok, (Bulkhead__Rule **)&item))
			return -EINVAL;
		rc = p->np	   ? push((void ***)&p->np->rules, &p->np->n_rules, item)
		     : sign > 0 ? push((void ***)&p->delta->rules_added, &p->delta->n_rules_added,
				       item)
				: push((void ***)&p->delta->rules_removed,
				       &p->delta->n_rules_removed, item);
		if (rc)
			bulkhead__rule__free_unpacked(item, NULL);
	} else if (strcmp(kw, "ipcache") == 0) {
		if (parse_ipcache(p, tok, ntok, (Bulkhead__IpcacheEntry **)&item))
			return -EINVAL;
		rc = p->np ? push((void ***)&p->np->ipcache, &p->np->n_ipcache, item)
		     : sign > 0
			     ? push((void ***)&p->delta->ipcache_added, &p->delta->n_ipcache_added,
				    item)
			     : push((void ***)&p->delta->ipcache_removed,
				    &p->delta->n_ipcache_removed, item);
		if (rc)
			bulkhead__ipcache_entry__free_unpacked(item, NULL);
	} else if (strcmp(kw, "endpoint") == 0) {
		if (parse_endpoint(p, tok, ntok, (Bulkhead__Endpoint **)&item))
			return -EINVAL;
		rc = p->np ? push((void ***)&p->np->endpoints, &p->np->n_endpoints, item)
		     : sign > 0 ? push((void ***)&p->delta->endpoints_added,
				       &p->delta->n_endpoints_added, item)
				: push((void ***)&p->delta->endpoints_removed,
				       &p->delta->n_endpoints_removed, item);
		if (rc)
			bulkhead__endpoint__free_unpacked(item, NULL);
	} else {
		return fail(p, "unknown keyword \"%s\" (want endpoint, ipcache or rule)", kw);
	}
	return rc ? fail(p, "out of memory") : 0;
}

int agent_ruleset_parse(const char *text, size_t len, const char *name, Bulkhead__NodePolicy **np,
			Bulkhead__NodePolicyDelta **delta, struct bh_error *err)
{
	struct parser p = {.name = name ? name : "-", .err = err};
	char line[MAX_LINE];
	size_t pos = 0;
	int rc = 0;

	*np = NULL;
	*delta = NULL;
	while (pos < len && rc == 0) {
		size_t end = pos, n;
		char *tok[MAX_TOKENS], *save = NULL, *t;
		int ntok = 0;

		while (end < len && text[end] != '\n')
			end++;
		n = end - pos;
		p.line++;
		if (n >= sizeof(line)) {
			rc = fail(&p, "line longer than %d bytes", MAX_LINE - 1);
			break;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos = end + 1;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)line[i];

			if (c == '#') {
				line[i] = '\0';
				break;
			}
			if (c == '\0' || (c < 0x20 && c != '\t' && c != '\r') || c >= 0x7f) {
				rc = fail(&p, "byte 0x%02x at column %zu: the text form is ASCII", c,
					  i + 1);
				break;
			}
		}
		if (rc)
			break;
		for (t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
			if (ntok == MAX_TOKENS) {
				rc = fail(&p, "more than %d fields", MAX_TOKENS);
				break;
			}
			tok[ntok++] = t;
		}
		if (rc || ntok == 0)
			continue;
		rc = parse_line(&p, tok, ntok);
	}
	if (rc == 0 && !p.np && !p.delta) {
		p.line = 0;
		rc = bh_error_set(err, -EINVAL, "%s: empty: no \"revision\" or \"delta\" line",
				  p.name);
	}
	if (rc) {
		agent_ruleset_free_policy(p.np);
		agent_ruleset_free_delta(p.delta);
		return -EINVAL;
	}
	*np = p.np;
	*delta = p.delta;
	return 0;
}

void agent_ruleset_free_policy(Bulkhead__NodePolicy *np)
{
	if (np)
		bulkhead__node_policy__free_unpacked(np, NULL);
}

void agent_ruleset_free_delta(Bulkhead__NodePolicyDelta *d)
{
	if (d)
		bulkhead__node_policy_delta__free_unpacked(d, NULL);
}
