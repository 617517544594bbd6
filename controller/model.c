// SPDX-License-Identifier: Apache-2.0
/*
 * The policy model (contract in model.h): label sets and their "k=v,k2=v2" text, selectors and
 * their kubectl text, address prefixes, kind names and the _free functions. The YAML form of the
 * documents is yaml.c's.
 *
 * Every _free function releases what the object owns, zeroes it and takes NULL, so that freeing
 * twice, or freeing a half-built object, is harmless.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bulkhead/util.h"
#include "model.h"

#define LABEL_KEY_RULE                                                                             \
	"a label key is 1-63 characters of A-Z a-z 0-9 - _ . /, beginning and ending with a "      \
	"letter or a digit"
#define LABEL_VAL_RULE                                                                             \
	"a label value is empty or 1-63 characters of A-Z a-z 0-9 - _ . /, beginning and ending "  \
	"with a letter or a digit"
/*
 * Labels in one label text. Twice CTL_LABELS_MAX: the text also carries identities, and a host
 * workload's identity is its node's labels with its own on top (compile.c).
 */
#define LABELS_TEXT_MAX (2 * CTL_LABELS_MAX)
/* matchExpressions of one selector; model.h has no constant of its own for them */
#define EXPRS_MAX CTL_LABELS_MAX

/* Text of a caller's string fit for a message: at most 48 characters, unprintable bytes as '?'. */
static const char *show(const char *s, size_t n, char *buf, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 4 < len; i++) {
		if (i == 48) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		buf[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	}
	buf[o] = '\0';
	return buf;
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* ---- labels ---------------------------------------------------------------------------------- */

/* [A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?, 1..max characters. */
static bool label_text_valid(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.' && s[i] != '/')
			return false;
	return true;
}

bool ctl_label_key_valid(const char *key)
{
	return key && label_text_valid(key, CTL_LABEL_KEY_MAX);
}

bool ctl_label_value_valid(const char *value)
{
	return value && (!*value || label_text_valid(value, CTL_LABEL_VAL_MAX));
}

bool ctl_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > CTL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool edge = i == 0 || i == n - 1;

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if (edge || (c != '-' && c != '.' && c != '_'))
			return false;
	}
	return true;
}

/* Index of key in l, or where it would go (*found false). */
static size_t labels_find(const struct ctl_labels *l, const char *key, bool *found)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->v[mid].key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

const char *ctl_labels_get(const struct ctl_labels *l, const char *key)
{
	bool found;
	size_t i;

	if (!l || !key)
		return NULL;
	i = labels_find(l, key, &found);
	return found ? l->v[i].value : NULL;
}

/* Validates nothing: callers check keys and values with ctl_label_*_valid first. */
int ctl_labels_set(struct ctl_labels *l, const char *key, const char *value)
{
	struct ctl_label *v;
	char *k = NULL, *val = strdup(value);
	bool found;
	size_t i = labels_find(l, key, &found);

	if (!val)
		return -ENOMEM;
	if (found) {
		free(l->v[i].value);
		l->v[i].value = val;
		return 0;
	}
	k = strdup(key);
	v = k ? realloc(l->v, (l->n + 1) * sizeof(*v)) : NULL;
	if (!v) {
		free(k);
		free(val);
		return -ENOMEM;
	}
	l->v = v;
	memmove(&v[i + 1], &v[i], (l->n - i) * sizeof(*v));
	v[i].key = k;
	v[i].value = val;
	l->n++;
	return 0;
}

/* dst is overwritten, not freed first: pass an empty set (what it held before is the caller's). */
int ctl_labels_copy(struct ctl_labels *dst, const struct ctl_labels *src)
{
	struct ctl_labels c = {0};

	if (src->n) {
		c.v = calloc(src->n, sizeof(*c.v));
		if (!c.v)
			return -ENOMEM;
	}
	for (; c.n < src->n; c.n++) {
		c.v[c.n].key = strdup(src->v[c.n].key);
		c.v[c.n].value = strdup(src->v[c.n].value);
		if (!c.v[c.n].key || !c.v[c.n].value) {
			c.n++; /* free the half-copied one too */
			ctl_labels_free(&c);
			return -ENOMEM;
		}
	}
	*dst = c;
	return 0;
}

void ctl_labels_free(struct ctl_labels *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Adds one "k=v" item of a label text to l. */
static int label_item_parse(const char *item, size_t n, struct ctl_labels *l, struct bh_error *err)
{
	char shown[64], *key = strndup(item, n), *val;
	int ret = -EINVAL;

	if (!key)
		return bh_error_set(err, -ENOMEM, "out of memory");
	show(item, n, shown, sizeof(shown));
	val = strchr(key, '=');
	if (!val) {
		bh_error_set(err, ret, "label '%s': no '=' (labels are key=value,key2=value2)",
			     shown);
		goto out;
	}
	*val++ = '\0';
	if (!ctl_label_key_valid(key))
		bh_error_set(err, ret, "label '%s': bad key: " LABEL_KEY_RULE, shown);
	else if (!ctl_label_value_valid(val))
		bh_error_set(err, ret, "label '%s': bad value: " LABEL_VAL_RULE, shown);
	else if (ctl_labels_get(l, key))
		bh_error_set(err, ret, "label '%s': key given twice", shown);
	else if (l->n >= LABELS_TEXT_MAX)
		bh_error_set(err, ret, "more than %d labels", LABELS_TEXT_MAX);
	else if ((ret = ctl_labels_set(l, key, val)) < 0)
		bh_error_set(err, ret, "out of memory");
out:
	free(key);
	return ret;
}

/* No spaces are allowed: "k=v, k2=v2" is refused (the key " k2" is not valid). */
int ctl_labels_parse(const char *text, struct ctl_labels *out, struct bh_error *err)
{
	struct ctl_labels l = {0};
	const char *p = text;

	out->v = NULL;
	out->n = 0;
	if (!text || !*text)
		return 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		int ret = label_item_parse(p, n, &l, err);

		if (ret < 0) {
			ctl_labels_free(&l);
			return ret;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	*out = l;
	return 0;
}

char *ctl_labels_format(const struct ctl_labels *l)
{
	size_t len = 1, o = 0;
	char *s;

	for (size_t i = 0; i < l->n; i++)
		len += strlen(l->v[i].key) + strlen(l->v[i].value) + 2;
	s = malloc(len);
	if (!s)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		o += (size_t)snprintf(s + o, len - o, "%s%s=%s", i ? "," : "", l->v[i].key,
				      l->v[i].value);
	s[o] = '\0';
	return s;
}

/* ---- selectors ------------------------------------------------------------------------------- */

static bool values_has(const struct ctl_sel_expr *e, const char *v)
{
	for (size_t i = 0; i < e->n_values; i++)
		if (!strcmp(e->values[i], v))
			return true;
	return false;
}

static bool expr_matches(const struct ctl_sel_expr *e, const struct ctl_labels *l)
{
	const char *v = ctl_labels_get(l, e->key);

	switch (e->op) {
	case CTL_SEL_IN:
		return v && values_has(e, v);
	case CTL_SEL_NOT_IN:
		return !v || !values_has(e, v);
	case CTL_SEL_EXISTS:
		return v != NULL;
	case CTL_SEL_DOES_NOT_EXIST:
		return v == NULL;
	}
	return false;
}

/* A NULL label set is the empty one. */
bool ctl_selector_matches(const struct ctl_selector *s, const struct ctl_labels *l)
{
	static const struct ctl_labels none;

	if (!l)
		l = &none;
	for (size_t i = 0; i < s->match.n; i++) {
		const char *v = ctl_labels_get(l, s->match.v[i].key);

		if (!v || strcmp(v, s->match.v[i].value))
			return false;
	}
	for (size_t i = 0; i < s->n_exprs; i++)
		if (!expr_matches(&s->exprs[i], l))
			return false;
	return true;
}

bool ctl_selector_empty(const struct ctl_selector *s)
{
	return s->match.n == 0 && s->n_exprs == 0;
}

static void expr_free(struct ctl_sel_expr *e)
{
	free(e->key);
	for (size_t i = 0; i < e->n_values; i++)
		free(e->values[i]);
	free(e->values);
	memset(e, 0, sizeof(*e));
}

void ctl_selector_free(struct ctl_selector *s)
{
	if (!s)
		return;
	ctl_labels_free(&s->match);
	for (size_t i = 0; i < s->n_exprs; i++)
		expr_free(&s->exprs[i]);
	free(s->exprs);
	s->exprs = NULL;
	s->n_exprs = 0;
}

int ctl_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ctl_sel_expr_cmp(const void *pa, const void *pb)
{
	const struct ctl_sel_expr *a = pa, *b = pb;
	int c = strcmp(a->key, b->key);

	if (c)
		return c;
	if (a->op != b->op)
		return a->op < b->op ? -1 : 1;
	for (size_t i = 0; i < a->n_values && i < b->n_values; i++) {
		c = strcmp(a->values[i], b->values[i]);
		if (c)
			return c;
	}
	return a->n_values < b->n_values ? -1 : a->n_values > b->n_values;
}

/* One requirement of the kubectl syntax into e (which the caller frees). */
static int sel_requirement_parse(const char *s, size_t n, struct ctl_sel_expr *e,
				 struct bh_error *err)
{
	char shown[64];
	const char *p = s, *end = s + n, *k0, *k1;
	size_t vcap = 0;

	show(s, n, shown, sizeof(shown));
	if (n == 0)
		return bh_error_set(err, -EINVAL, "selector: an empty requirement (two commas?)");
	if (*p == '!') {
		e->op = CTL_SEL_DOES_NOT_EXIST;
		for (p++; p < end && is_space(*p); p++)
			;
	}
	k0 = p;
	while (p < end && (is_alnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '/'))
		p++;
	k1 = p;
	e->key = strndup(k0, (size_t)(k1 - k0));
	if (!e->key)
		return bh_error_set(err, -ENOMEM, "out of memory");
	if (!ctl_label_key_valid(e->key))
		return bh_error_set(err, -EINVAL,
				    "selector requirement '%s': bad key: " LABEL_KEY_RULE, shown);
	while (p < end && is_space(*p))
		p++;
	if (e->op == CTL_SEL_DOES_NOT_EXIST || p == end) {
		if (p != end)
			return bh_error_set(err, -EINVAL,
					    "selector requirement '%s': nothing may follow '!key'",
					    shown);
		if (e->op != CTL_SEL_DOES_NOT_EXIST)
			e->op = CTL_SEL_EXISTS;
		return 0;
	}
	if (*p == '=' || (*p == '!' && p + 1 < end && p[1] == '=')) {
		/* key=value, key==value, key!=value: one value */
		e->op = *p == '!' ? CTL_SEL_NOT_IN : CTL_SEL_IN;
		p += *p == '!' ? 2 : (p + 1 < end && p[1] == '=' ? 2 : 1);
		while (p < end && is_space(*p))
			p++;
		e->values = malloc(sizeof(*e->values));
		if (!e->values || !(e->values[0] = strndup(p, (size_t)(end - p))))
			return bh_error_set(err, -ENOMEM, "out of memory");
		e->n_values = 1;
		if (!ctl_label_value_valid(e->values[0]))
			return bh_error_set(err, -EINVAL,
					    "selector requirement '%s': bad value: " LABEL_VAL_RULE,
					    shown);
		return 0;
	}
	if ((size_t)(end - p) > 2 && !strncmp(p, "in", 2) && (is_space(p[2]) || p[2] == '(')) {
		e->op = CTL_SEL_IN;
		p += 2;
	} else if ((size_t)(end - p) > 5 && !strncmp(p, "notin", 5) &&
		   (is_space(p[5]) || p[5] == '(')) {
		e->op = CTL_SEL_NOT_IN;
		p += 5;
	} else {
		return bh_error_set(err, -EINVAL,
				    "selector requirement '%s': expected =, ==, !=, in (...) or "
				    "notin (...) after the key",
				    shown);
	}
	while (p < end && is_space(*p))
		p++;
	if (p == end || *p != '(' || end[-1] != ')')
		return bh_error_set(err, -EINVAL,
				    "selector requirement '%s': the values go in parentheses: "
				    "key in (a,b)",
				    shown);
	p++;
	end--;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p)), *vend = comma ? comma : end;
		const char *v0 = p;
		char *v;

		while (v0 < vend && is_space(*v0))
			v0++;
		while (vend > v0 && is_space(vend[-1]))
			vend--;
		if (vend == v0 && !comma && e->n_values == 0)
			return bh_error_set(err, -EINVAL, "selector requirement '%s': no values",
					    shown);
		if (e->n_values >= CTL_VALUES_MAX)
			return bh_error_set(err, -EINVAL,
					    "selector requirement '%s': more than %d values", shown,
					    CTL_VALUES_MAX);
		if (e->n_values == vcap) {
			char **nv = realloc(e->values, (vcap ? 2 * vcap : 4) * sizeof(*nv));

			if (!nv)
				return bh_error_set(err, -ENOMEM, "out of memory");
			e->values = nv;
			vcap = vcap ? 2 * vcap : 4;
		}
		v = strndup(v0, (size_t)(vend - v0));
		if (!v)
			return bh_error_set(err, -ENOMEM, "out of memory");
		e->values[e->n_values++] = v;
		if (!ctl_label_value_valid(v))
			return bh_error_set(err, -EINVAL,
					    "selector requirement '%s': bad value: " LABEL_VAL_RULE,
					    shown);
		for (size_t i = 0; i + 1 < e->n_values; i++)
			if (!strcmp(e->values[i], v))
				return bh_error_set(err, -EINVAL,
						    "selector requirement '%s': value '%s' twice",
						    shown, v);
		if (!comma)
			break;
		p = comma + 1;
	}
	bh_sort(e->values, e->n_values, sizeof(*e->values), ctl_str_cmp);
	return 0;
}

int ctl_selector_parse(const char *text, struct ctl_selector *out, struct bh_error *err)
{
	struct ctl_selector s = {0};
	const char *p = text ? text : "";
	int ret = 0;

	memset(out, 0, sizeof(*out));
	while (*p && is_space(*p))
		p++;
	if (!*p)
		return 0;
	for (;;) {
		const char *q = p, *end;
		struct ctl_sel_expr *e;
		int depth = 0;

		for (; *q && (depth || *q != ','); q++) {
			if (*q == '(')
				depth++;
			else if (*q == ')' && depth)
				depth--;
		}
		end = q;
		while (p < end && is_space(*p))
			p++;
		while (end > p && is_space(end[-1]))
			end--;
		if (s.n_exprs >= EXPRS_MAX) {
			ret = bh_error_set(err, -EINVAL, "selector: more than %d requirements",
					   EXPRS_MAX);
			goto out;
		}
		e = realloc(s.exprs, (s.n_exprs + 1) * sizeof(*e));
		if (!e) {
			ret = bh_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		s.exprs = e;
		e = &s.exprs[s.n_exprs++];
		memset(e, 0, sizeof(*e));
		ret = sel_requirement_parse(p, (size_t)(end - p), e, err);
		if (ret < 0)
			goto out;
		for (size_t i = 0; i + 1 < s.n_exprs; i++) {
			if (!ctl_sel_expr_cmp(&s.exprs[i], e)) {
				char shown[64];

				ret = bh_error_set(
					err, -EINVAL, "selector requirement '%s' is given twice",
					show(p, (size_t)(end - p), shown, sizeof(shown)));
				goto out;
			}
		}
		if (!*q)
			break;
		p = q + 1;
	}
	bh_sort(s.exprs, s.n_exprs, sizeof(*s.exprs), ctl_sel_expr_cmp);
	*out = s;
	return 0;
out:
	ctl_selector_free(&s);
	return ret;
}

/* One requirement in the kubectl syntax, appended at s + *o (bounded by len). */
static void expr_format(const struct ctl_sel_expr *e, char *s, size_t len, size_t *o)
{
	const char *sep = *o ? "," : "";

	switch (e->op) {
	case CTL_SEL_EXISTS:
		*o += (size_t)snprintf(s + *o, len - *o, "%s%s", sep, e->key);
		return;
	case CTL_SEL_DOES_NOT_EXIST:
		*o += (size_t)snprintf(s + *o, len - *o, "%s!%s", sep, e->key);
		return;
	case CTL_SEL_IN:
	case CTL_SEL_NOT_IN:
		break;
	}
	if (e->n_values == 1) {
		*o += (size_t)snprintf(s + *o, len - *o, "%s%s%s%s", sep, e->key,
				       e->op == CTL_SEL_IN ? "=" : "!=", e->values[0]);
		return;
	}
	*o += (size_t)snprintf(s + *o, len - *o, "%s%s %s (", sep, e->key,
			       e->op == CTL_SEL_IN ? "in" : "notin");
	for (size_t i = 0; i < e->n_values; i++)
		*o += (size_t)snprintf(s + *o, len - *o, "%s%s", i ? "," : "", e->values[i]);
	*o += (size_t)snprintf(s + *o, len - *o, ")");
}

/*
 * matchLabels entries are written as the In-with-one-value requirements they mean ("k=v"), merged
 * with the expressions in their order, so that selectors meaning the same give the same text.
 */
char *ctl_selector_format(const struct ctl_selector *s)
{
	size_t n = s->match.n + s->n_exprs, len = 1, o = 0;
	struct ctl_sel_expr *all = calloc(n ? n : 1, sizeof(*all));
	char **one = calloc(s->match.n ? s->match.n : 1, sizeof(*one)), *text = NULL;

	if (!all || !one)
		goto out;
	for (size_t i = 0; i < s->match.n; i++) {
		one[i] = s->match.v[i].value;
		all[i].key = s->match.v[i].key;
		all[i].op = CTL_SEL_IN;
		all[i].values = &one[i];
		all[i].n_values = 1;
	}
	for (size_t i = 0; i < s->n_exprs; i++)
		all[s->match.n + i] = s->exprs[i]; /* shallow: nothing here is freed */
	bh_sort(all, n, sizeof(*all), ctl_sel_expr_cmp);
	for (size_t i = 0; i < n; i++) {
		len += strlen(all[i].key) + 12;
		for (size_t j = 0; j < all[i].n_values; j++)
			len += strlen(all[i].values[j]) + 1;
	}
	text = malloc(len);
	if (!text)
		goto out;
	text[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (i == 0 || ctl_sel_expr_cmp(&all[i - 1], &all[i]))
			expr_format(&all[i], text, len, &o);
out:
	free(all);
	free(one);
	return text;
}

/* ---- addresses ------------------------------------------------------------------------------- */

static unsigned prefix_bits(const struct ctl_prefix *p)
{
	return p->family == 4 ? 32 : 128;
}

/* Whether bit i (from the most significant of addr[0]) is set. */
static bool bit_at(const uint8_t *a, unsigned i)
{
	return a[i / 8] & (0x80u >> (i % 8));
}

int ctl_prefix_parse(const char *text, struct ctl_prefix *out, struct bh_error *err)
{
	char addr[64], shown[64], net[64];
	const char *slash = text ? strchr(text, '/') : NULL;
	size_t alen = text ? (slash ? (size_t)(slash - text) : strlen(text)) : 0;
	struct ctl_prefix p = {0};
	unsigned len;

	show(text ? text : "", text ? strlen(text) : 0, shown, sizeof(shown));
	if (alen == 0 || alen >= sizeof(addr))
		return bh_error_set(err, -EINVAL, "'%s' is not an IPv4 or IPv6 address or prefix",
				    shown);
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	p.family = strchr(addr, ':') ? 6 : 4;
	if (inet_pton(p.family == 4 ? AF_INET : AF_INET6, addr, p.addr) != 1)
		return bh_error_set(err, -EINVAL, "'%s' is not an IPv4 or IPv6 address or prefix",
				    shown);
	len = prefix_bits(&p);
	if (slash) {
		const char *d = slash + 1;
		size_t nd = strlen(d);

		if (nd == 0 || nd > 3 || strspn(d, "0123456789") != nd || (nd > 1 && d[0] == '0'))
			return bh_error_set(err, -EINVAL,
					    "'%s': the prefix length is not a decimal number",
					    shown);
		len = (unsigned)atoi(d);
		if (len > prefix_bits(&p))
			return bh_error_set(err, -EINVAL,
					    "'%s': the prefix length is over %u (IPv%u)", shown,
					    prefix_bits(&p), p.family);
	}
	p.len = (uint8_t)len;
	for (unsigned i = len; i < prefix_bits(&p); i++) {
		if (bit_at(p.addr, i)) {
			struct ctl_prefix n = p;

			for (unsigned j = len; j < prefix_bits(&n); j++)
				n.addr[j / 8] &= (uint8_t) ~(0x80u >> (j % 8));
			return bh_error_set(err, -EINVAL,
					    "'%s' has host bits set: the network is %s", shown,
					    ctl_prefix_format(&n, net, sizeof(net)));
		}
	}
	*out = p;
	return 0;
}

const char *ctl_prefix_format(const struct ctl_prefix *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(p->family == 4 ? AF_INET : AF_INET6, p->addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s/%u", a, p->len);
	return buf;
}

bool ctl_prefix_contains(const struct ctl_prefix *outer, const struct ctl_prefix *inner)
{
	if (outer->family != inner->family || inner->len < outer->len)
		return false;
	for (unsigned i = 0; i < outer->len; i++)
		if (bit_at(outer->addr, i) != bit_at(inner->addr, i))
			return false;
	return true;
}

/* IPv4 before IPv6, then by address, then shorter before longer. */
int ctl_prefix_cmp(const struct ctl_prefix *a, const struct ctl_prefix *b)
{
	int c;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	c = memcmp(a->addr, b->addr, sizeof(a->addr));
	if (c)
		return c < 0 ? -1 : 1;
	return a->len < b->len ? -1 : a->len > b->len;
}

/* ---- objects --------------------------------------------------------------------------------- */

static void rule_free(struct ctl_rule *r)
{
	for (size_t i = 0; i < r->n_peers; i++) {
		ctl_selector_free(&r->peers[i].sel);
		free(r->peers[i].except);
	}
	free(r->peers);
	free(r->ports);
	memset(r, 0, sizeof(*r));
}

void ctl_policy_free(struct ctl_policy *p)
{
	if (!p)
		return;
	free(p->name);
	ctl_selector_free(&p->sel);
	for (int d = 0; d < 2; d++) {
		for (int a = 0; a < 2; a++) {
			for (size_t i = 0; i < p->n_rules[d][a]; i++)
				rule_free(&p->rules[d][a][i]);
			free(p->rules[d][a]);
		}
	}
	memset(p, 0, sizeof(*p));
}

void ctl_workload_free(struct ctl_workload *w)
{
	if (!w)
		return;
	free(w->name);
	free(w->node);
	free(w->ifname);
	ctl_labels_free(&w->labels);
	free(w->addrs);
	memset(w, 0, sizeof(*w));
}

void ctl_node_spec_free(struct ctl_node_spec *n)
{
	if (!n)
		return;
	free(n->name);
	ctl_labels_free(&n->labels);
	memset(n, 0, sizeof(*n));
}

void ctl_doc_free(struct ctl_doc *d)
{
	if (!d)
		return;
	switch (d->kind) {
	case CTL_KIND_POLICY:
		ctl_policy_free(&d->policy);
		break;
	case CTL_KIND_WORKLOAD:
		ctl_workload_free(&d->workload);
		break;
	case CTL_KIND_NODE:
		ctl_node_spec_free(&d->node);
		break;
	}
}

void ctl_docset_free(struct ctl_docset *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		ctl_doc_free(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* ---- kinds ----------------------------------------------------------------------------------- */

static const struct {
	const char *name, *plural;
} kinds[] = {
	[CTL_KIND_POLICY] = {"Policy", "Policies"},
	[CTL_KIND_WORKLOAD] = {"Workload", "Workloads"},
	[CTL_KIND_NODE] = {"Node", "Nodes"},
};

const char *ctl_kind_name(enum ctl_kind k)
{
	return (unsigned)k < sizeof(kinds) / sizeof(kinds[0]) ? kinds[k].name : "?";
}

int ctl_kind_parse(const char *text)
{
	for (size_t i = 0; text && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcasecmp(text, kinds[i].name) || !strcasecmp(text, kinds[i].plural))
			return (int)i;
	return -1;
}

const char *ctl_doc_name(const struct ctl_doc *d)
{
	switch (d->kind) {
	case CTL_KIND_POLICY:
		return d->policy.name;
	case CTL_KIND_WORKLOAD:
		return d->workload.name;
	case CTL_KIND_NODE:
		return d->node.name;
	}
	return NULL;
}
