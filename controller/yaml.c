// SPDX-License-Identifier: Apache-2.0
/*
 * The policy file format (deploy/policy-format.md) to and from the model (contract in model.h).
 *
 * Loading reads libyaml's events in two passes. The first sees the text as YAML only: syntax, the
 * refusals that protect the loader (aliases and anchors, so no billion laughs; tags; nesting
 * deeper than DEPTH_MAX; NUL characters inside strings) and each document's kind. The second reads
 * every document against its kind's schema, straight from the events into the model: no tree is
 * built, so memory follows what the model keeps, and the first unexpected key, type or value stops
 * the load with its position. Every message is "FILE:LINE:COLUMN: FIELD: what is wrong", FIELD
 * being the path in the document ("ingress[0].ports[1].endPort").
 *
 * Writing goes through one small emitter with two styles (canonical JSON on one line, block YAML
 * for people), so that the two forms cannot disagree on what they contain.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "bulkhead/util.h"
#include "model.h"

#define TEXT_MAX   (16u << 20)	  /* bytes of one text */
#define DEPTH_MAX  32		  /* nested lists and maps */
#define EXPRS_MAX  CTL_LABELS_MAX /* matchExpressions of one selector (model.h has none) */
#define PATH_LEN   256		  /* FIELD in messages; longer paths are cut */
#define SHOW_LEN   64		  /* a value quoted in a message */
#define IFNAME_MAX 15		  /* IFNAMSIZ - 1 */

#define NAME_RULE                                                                                  \
	"a name is 1-63 characters of a-z 0-9 - . _, beginning and ending with a letter or a "     \
	"digit"
#define LABEL_KEY_RULE                                                                             \
	"a label key is 1-63 characters of A-Z a-z 0-9 - _ . /, beginning and ending with a "      \
	"letter or a digit"
#define LABEL_VAL_RULE                                                                             \
	"a label value is empty or 1-63 characters of A-Z a-z 0-9 - _ . /, beginning and ending "  \
	"with a letter or a digit"

/* IP protocols with a name in the format; the first spelling is the canonical one. */
static const struct {
	uint8_t num;
	const char *name;
} protos[] = {
	{6, "TCP"},  {17, "UDP"},    {132, "SCTP"}, {136, "UDPLite"},
	{1, "ICMP"}, {58, "ICMPv6"}, {58, "ICMP6"},
};

/* The canonical name of a protocol, or NULL if it goes by number. */
static const char *proto_name(uint8_t p)
{
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		if (protos[i].num == p)
			return protos[i].name;
	return NULL;
}

static const char *const op_names[] = {
	[CTL_SEL_IN] = "In",
	[CTL_SEL_NOT_IN] = "NotIn",
	[CTL_SEL_EXISTS] = "Exists",
	[CTL_SEL_DOES_NOT_EXIST] = "DoesNotExist",
};

/* Text of the input fit for a message: cut at 48 characters, unprintable bytes as '?'. */
static const char *show(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; s[i] && o + 4 < len; i++) {
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

/* ==== loading ================================================================================= */

struct ld {
	yaml_parser_t p;
	bool parser_ready;
	yaml_event_t ev; /* the current event */
	bool have_ev;
	const char *fname;
	const char *text;
	size_t len;
	struct bh_error *err;
	char path[PATH_LEN]; /* where the current event is, "" at a document's top */
	size_t plen;
	yaml_mark_t name_mark; /* of the last `name:` value read (duplicate check) */
};

/* ---- messages ---- */

__attribute__((format(printf, 5, 0))) static int
vfail(struct ld *l, int code, yaml_mark_t m, const char *field, const char *fmt, va_list ap)
{
	char msg[400];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	return bh_error_set(l->err, code, "%s:%zu:%zu: %s: %s", l->fname, m.line + 1, m.column + 1,
			    field, msg);
}

/* Fails at m with field named explicitly. Returns code. */
__attribute__((format(printf, 5, 6))) static int fail_field(struct ld *l, int code, yaml_mark_t m,
							    const char *field, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vfail(l, code, m, field, fmt, ap);
	va_end(ap);
	return ret;
}

/* Fails (-EINVAL) at m, the field being the current path. */
__attribute__((format(printf, 3, 4))) static int fail(struct ld *l, yaml_mark_t m, const char *fmt,
						      ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vfail(l, -EINVAL, m, l->plen ? l->path : "(document)", fmt, ap);
	va_end(ap);
	return ret;
}

static int nomem(struct ld *l)
{
	return fail_field(l, -ENOMEM, l->ev.start_mark, l->plen ? l->path : "(document)",
			  "out of memory");
}

/* ---- the path of the current node ---- */

static void path_pop(struct ld *l, size_t to)
{
	l->plen = to;
	l->path[to] = '\0';
}

/* Appends ".key" (or "key" at the top) and returns the length to pop back to. */
static size_t path_key(struct ld *l, const char *key)
{
	size_t old = l->plen;
	char shown[SHOW_LEN];
	int n = snprintf(l->path + l->plen, sizeof(l->path) - l->plen, "%s%s", l->plen ? "." : "",
			 show(key, shown, sizeof(shown)));

	l->plen += n < 0 ? 0 : (size_t)n;
	if (l->plen >= sizeof(l->path))
		l->plen = sizeof(l->path) - 1;
	return old;
}

/* Appends "[i]" and returns the length to pop back to. */
static size_t path_index(struct ld *l, size_t i)
{
	size_t old = l->plen;
	int n = snprintf(l->path + l->plen, sizeof(l->path) - l->plen, "[%zu]", i);

	l->plen += n < 0 ? 0 : (size_t)n;
	if (l->plen >= sizeof(l->path))
		l->plen = sizeof(l->path) - 1;
	return old;
}

/* ---- events ---- */

/* The line and column of a byte offset (libyaml's reader errors give only the offset). */
static yaml_mark_t mark_at(const struct ld *l, size_t off)
{
	yaml_mark_t m = {0};

	for (size_t i = 0; i < off && i < l->len; i++) {
		if (l->text[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	return m;
}

static int syntax_error(struct ld *l)
{
	yaml_parser_t *p = &l->p;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return fail_field(l, -ENOMEM, p->mark, l->plen ? l->path : "(document)",
				  "out of memory");
	case YAML_READER_ERROR:
		if (p->problem_value >= 0)
			return fail(l, mark_at(l, p->problem_offset),
				    "not valid text: %s (byte 0x%02x)", p->problem,
				    (unsigned)p->problem_value & 0xff);
		return fail(l, mark_at(l, p->problem_offset), "not valid text: %s", p->problem);
	default:
		break;
	}
	if (p->context)
		return fail(l, p->problem_mark, "YAML syntax: %s (%s at line %zu, column %zu)",
			    p->problem ? p->problem : "error", p->context, p->context_mark.line + 1,
			    p->context_mark.column + 1);
	return fail(l, p->problem_mark, "YAML syntax: %s", p->problem ? p->problem : "error");
}

static void parser_fini(struct ld *l)
{
	if (l->have_ev)
		yaml_event_delete(&l->ev);
	l->have_ev = false;
	if (l->parser_ready)
		yaml_parser_delete(&l->p);
	l->parser_ready = false;
}

static int parser_init(struct ld *l)
{
	parser_fini(l);
	if (!yaml_parser_initialize(&l->p))
		return fail_field(l, -ENOMEM, (yaml_mark_t){0}, "(text)", "out of memory");
	l->parser_ready = true;
	yaml_parser_set_input_string(&l->p, (const unsigned char *)l->text, l->len);
	path_pop(l, 0);
	return 0;
}

/* Makes the next event the current one. */
static int ev_next(struct ld *l)
{
	if (l->have_ev)
		yaml_event_delete(&l->ev);
	l->have_ev = false;
	if (!yaml_parser_parse(&l->p, &l->ev))
		return syntax_error(l);
	l->have_ev = true;
	return 0;
}

/* Whether e is YAML's null: an empty or ~/null plain scalar. */
static bool ev_is_null(const yaml_event_t *e)
{
	const char *v;

	if (e->type != YAML_SCALAR_EVENT || e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)e->data.scalar.value;
	return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

/* What the current event is, for "a map is wanted, not ..." */
static const char *ev_what(const struct ld *l, char *buf, size_t len)
{
	char shown[SHOW_LEN];

	switch (l->ev.type) {
	case YAML_MAPPING_START_EVENT:
		return "a map";
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_ALIAS_EVENT:
		return "an alias";
	case YAML_SCALAR_EVENT:
		if (ev_is_null(&l->ev))
			return "nothing (null)";
		snprintf(buf, len, "\"%s\"",
			 show((const char *)l->ev.data.scalar.value, shown, sizeof(shown)));
		return buf;
	default:
		return "nothing";
	}
}

/* ---- pass 1: YAML only ---- */

struct frame {
	bool map;
	size_t count;	    /* children so far (a map's keys and values both count) */
	size_t before;	    /* path length to pop back to at its end */
	char key[SHOW_LEN]; /* a map's last key */
};

/* The node event that starts a document's top node, or any node below it. */
static int scan_node(struct ld *l, struct frame *fr, int *depth, int *kind, bool *nonempty)
{
	const yaml_event_t *e = &l->ev;
	const yaml_char_t *anchor = NULL, *tag = NULL;
	size_t before = l->plen;
	bool kind_value = false;
	char what[SHOW_LEN + 4];

	if (*depth == 0) {
		if (ev_is_null(e))
			return 0; /* an empty document: skipped */
		if (e->type != YAML_MAPPING_START_EVENT)
			return fail(l, e->start_mark,
				    "a document is a map (kind: ..., name: ...), not %s",
				    ev_what(l, what, sizeof(what)));
		*nonempty = true;
	} else {
		struct frame *f = &fr[*depth - 1];

		if (!f->map) {
			path_index(l, f->count);
		} else if (f->count % 2 == 0) {
			/* a key: remembered for its value's path (complex keys fail in pass 2) */
			if (e->type == YAML_SCALAR_EVENT)
				show((const char *)e->data.scalar.value, f->key, sizeof(f->key));
			else
				snprintf(f->key, sizeof(f->key), "?");
		} else {
			path_key(l, f->key);
			kind_value = *depth == 1 && !strcmp(f->key, "kind");
		}
		f->count++;
	}
	switch (e->type) {
	case YAML_ALIAS_EVENT:
		return fail(l, e->start_mark,
			    "aliases (*%s) are refused, and so are anchors: write the value out",
			    show((const char *)e->data.alias.anchor, what, sizeof(what)));
	case YAML_SCALAR_EVENT:
		anchor = e->data.scalar.anchor;
		tag = e->data.scalar.tag;
		if (strlen((const char *)e->data.scalar.value) != e->data.scalar.length)
			return fail(l, e->start_mark, "a NUL character (\\0) inside a string");
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = e->data.sequence_start.anchor;
		tag = e->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = e->data.mapping_start.anchor;
		tag = e->data.mapping_start.tag;
		break;
	default:
		break;
	}
	if (anchor)
		return fail(l, e->start_mark,
			    "anchors (&%s) are refused, and so are aliases: write the value out",
			    show((const char *)anchor, what, sizeof(what)));
	if (tag)
		return fail(l, e->start_mark, "tags (%s) are refused",
			    show((const char *)tag, what, sizeof(what)));
	if (kind_value) {
		const char *v = (const char *)e->data.scalar.value;

		if (e->type != YAML_SCALAR_EVENT || ev_is_null(e))
			return fail(l, e->start_mark,
				    "a string is wanted (Policy, Workload or Node), not %s",
				    ev_what(l, what, sizeof(what)));
		*kind = !strcmp(v, "Policy")	 ? CTL_KIND_POLICY
			: !strcmp(v, "Workload") ? CTL_KIND_WORKLOAD
			: !strcmp(v, "Node")	 ? CTL_KIND_NODE
						 : -1;
		if (*kind < 0)
			return fail(l, e->start_mark,
				    "unknown kind \"%s\" (Policy, Workload or Node)",
				    show(v, what, sizeof(what)));
	}
	if (e->type == YAML_SCALAR_EVENT) {
		path_pop(l, before);
		return 0;
	}
	if (*depth >= DEPTH_MAX)
		return fail(l, e->start_mark, "nesting deeper than %d levels", DEPTH_MAX);
	fr[*depth] = (struct frame){.map = e->type == YAML_MAPPING_START_EVENT, .before = before};
	(*depth)++;
	return 0;
}

/*
 * Pass 1 over the whole text: YAML syntax and the refusals (see the top of the file). On success
 * *kinds (malloc'd) holds the kind of each non-empty document, *n of them.
 */
static int scan(struct ld *l, uint8_t **kinds, size_t *n)
{
	struct frame fr[DEPTH_MAX];
	int depth = 0, kind = -1, ret;
	bool nonempty = false;
	yaml_mark_t root = {0};
	size_t cap = 0;

	*kinds = NULL;
	*n = 0;
	ret = parser_init(l);
	for (; ret == 0; ret = ev_next(l)) {
		if (!l->have_ev)
			continue;
		switch (l->ev.type) {
		case YAML_STREAM_END_EVENT:
			return 0;
		case YAML_DOCUMENT_START_EVENT:
			depth = 0;
			kind = -1;
			nonempty = false;
			path_pop(l, 0);
			break;
		case YAML_DOCUMENT_END_EVENT:
			if (!nonempty)
				break;
			if (kind < 0)
				return fail_field(l, -EINVAL, root, "kind",
						  "missing: every document needs kind: Policy, "
						  "Workload or Node");
			if (*n == cap) {
				uint8_t *k = realloc(*kinds, cap ? 2 * cap : 16);

				if (!k)
					return nomem(l);
				*kinds = k;
				cap = cap ? 2 * cap : 16;
			}
			(*kinds)[(*n)++] = (uint8_t)kind;
			break;
		case YAML_ALIAS_EVENT:
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (depth == 0)
				root = l->ev.start_mark;
			ret = scan_node(l, fr, &depth, &kind, &nonempty);
			if (ret < 0)
				return ret;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				path_pop(l, fr[--depth].before);
			break;
		default:
			break;
		}
	}
	return ret;
}

/* ---- pass 2: values ---- */

static int want_map(struct ld *l)
{
	char what[SHOW_LEN + 4];

	if (l->ev.type == YAML_MAPPING_START_EVENT)
		return 0;
	return fail(l, l->ev.start_mark, "a map is wanted, not %s", ev_what(l, what, sizeof(what)));
}

static int want_seq(struct ld *l)
{
	char what[SHOW_LEN + 4];

	if (l->ev.type == YAML_SEQUENCE_START_EVENT)
		return 0;
	return fail(l, l->ev.start_mark, "a list is wanted, not %s",
		    ev_what(l, what, sizeof(what)));
}

/* A string (any scalar but null). *s points into the event: valid until the next ev_next. */
static int want_str(struct ld *l, const char **s)
{
	char what[SHOW_LEN + 4];

	if (l->ev.type != YAML_SCALAR_EVENT || ev_is_null(&l->ev))
		return fail(l, l->ev.start_mark, "a string is wanted, not %s",
			    ev_what(l, what, sizeof(what)));
	*s = (const char *)l->ev.data.scalar.value;
	return 0;
}

/* An unquoted decimal number (no sign, no leading zero) from lo to hi. */
static int want_num(struct ld *l, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char what[SHOW_LEN + 4];
	const char *v;
	size_t n;

	if (l->ev.type != YAML_SCALAR_EVENT || ev_is_null(&l->ev))
		return fail(l, l->ev.start_mark, "a number is wanted, not %s",
			    ev_what(l, what, sizeof(what)));
	v = (const char *)l->ev.data.scalar.value;
	n = strlen(v);
	if (l->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return fail(l, l->ev.start_mark, "a number is wanted, not the quoted string %s",
			    ev_what(l, what, sizeof(what)));
	if (strspn(v, "0123456789") != n || (n > 1 && v[0] == '0'))
		return fail(l, l->ev.start_mark, "%s is not a decimal number",
			    ev_what(l, what, sizeof(what)));
	*out = n > 9 ? hi + 1 : strtoul(v, NULL, 10);
	if (*out < lo || *out > hi)
		return fail(l, l->ev.start_mark, "%s is out of range %lu..%lu", v, lo, hi);
	return 0;
}

/* Advances to the next item of the list being read: 1 with the current event on the item, 0 at
 * the list's end. */
static int seq_next(struct ld *l)
{
	int ret = ev_next(l);

	if (ret < 0)
		return ret;
	return l->ev.type != YAML_SEQUENCE_END_EVENT;
}

/*
 * Room for one more element in an array of n elements of size sz (capacity: 4, then doubling at
 * each power of two). Returns the array (maybe moved), or NULL on ENOMEM with v untouched.
 */
static void *grow(void *v, size_t n, size_t sz)
{
	if (n != 0 && (n < 4 || (n & (n - 1))))
		return v;
	return realloc(v, (n ? 2 * n : 4) * sz);
}

/* A map with a fixed set of keys, being read. */
#define MAP_KEYS_MAX 8
struct mapr {
	const char *const *keys;
	size_t nkeys;
	unsigned seen; /* bit per key */
	yaml_mark_t start, kmark[MAP_KEYS_MAX], vmark[MAP_KEYS_MAX];
	size_t base; /* path length of the map itself */
};

static bool has(const struct mapr *m, size_t k)
{
	return m->seen & (1u << k);
}

static int map_begin(struct ld *l, struct mapr *m, const char *const *keys, size_t nkeys)
{
	int ret = want_map(l);

	if (ret < 0)
		return ret;
	memset(m, 0, sizeof(*m));
	m->keys = keys;
	m->nkeys = nkeys;
	m->start = l->ev.start_mark;
	m->base = l->plen;
	return 0;
}

/*
 * Advances to the next key of the map: 1 with *k its index in keys[], the path extended by it and
 * the current event on its value; 0 at the end of the map (the path back at the map's). Unknown
 * and duplicate keys are errors.
 */
static int map_next(struct ld *l, struct mapr *m, size_t *k)
{
	char what[SHOW_LEN + 4], allowed[256];
	const char *key;
	yaml_mark_t km;
	size_t o = 0;
	int ret;

	path_pop(l, m->base);
	ret = ev_next(l);
	if (ret < 0)
		return ret;
	if (l->ev.type == YAML_MAPPING_END_EVENT)
		return 0;
	km = l->ev.start_mark;
	if (l->ev.type != YAML_SCALAR_EVENT || ev_is_null(&l->ev))
		return fail(l, km, "a key must be a string, not %s",
			    ev_what(l, what, sizeof(what)));
	key = (const char *)l->ev.data.scalar.value;
	path_key(l, key);
	for (*k = 0; *k < m->nkeys; (*k)++)
		if (!strcmp(key, m->keys[*k]))
			break;
	if (*k == m->nkeys) {
		for (size_t i = 0; i < m->nkeys; i++)
			o += (size_t)snprintf(allowed + o, sizeof(allowed) - o, "%s%s",
					      i ? ", " : "", m->keys[i]);
		return fail(l, km, "unknown key \"%s\" (allowed here: %s)",
			    show(key, what, sizeof(what)), allowed);
	}
	if (has(m, *k))
		return fail(l, km, "duplicate key (first at line %zu)", m->kmark[*k].line + 1);
	m->seen |= 1u << *k;
	m->kmark[*k] = km;
	ret = ev_next(l);
	if (ret < 0)
		return ret;
	m->vmark[*k] = l->ev.start_mark;
	return 1;
}

/* Fails at mark with the path of key k of map m as the field. */
__attribute__((format(printf, 5, 6))) static int fail_key(struct ld *l, struct mapr *m, size_t k,
							  yaml_mark_t mark, const char *fmt, ...)
{
	va_list ap;
	int ret;

	path_pop(l, m->base);
	path_key(l, m->keys[k]);
	va_start(ap, fmt);
	ret = vfail(l, -EINVAL, mark, l->path, fmt, ap);
	va_end(ap);
	return ret;
}

static int map_require(struct ld *l, struct mapr *m, size_t k)
{
	if (has(m, k))
		return 0;
	return fail_key(l, m, k, m->start, "missing (required here)");
}

/* ---- pieces ---- */

static int read_name(struct ld *l, char **out, const char *what)
{
	char shown[SHOW_LEN];
	const char *s;
	int ret = want_str(l, &s);

	if (ret < 0)
		return ret;
	if (!ctl_name_valid(s))
		return fail(l, l->ev.start_mark, "bad %s \"%s\": " NAME_RULE, what,
			    show(s, shown, sizeof(shown)));
	*out = strdup(s);
	return *out ? 0 : nomem(l);
}

/* A map of labels into out (empty). */
static int read_labels(struct ld *l, struct ctl_labels *out)
{
	struct {
		char key[CTL_LABEL_KEY_MAX + 1];
		size_t line;
	} seen[CTL_LABELS_MAX];
	char shown[SHOW_LEN], what[SHOW_LEN + 4];
	size_t base = l->plen;
	const char *s;
	int ret = want_map(l);

	while (ret == 0) {
		char key[CTL_LABEL_KEY_MAX + 1];
		yaml_mark_t km;

		path_pop(l, base);
		ret = ev_next(l);
		if (ret < 0 || l->ev.type == YAML_MAPPING_END_EVENT)
			break;
		km = l->ev.start_mark;
		if (l->ev.type != YAML_SCALAR_EVENT || ev_is_null(&l->ev))
			return fail(l, km, "a label key must be a string, not %s",
				    ev_what(l, what, sizeof(what)));
		s = (const char *)l->ev.data.scalar.value;
		path_key(l, s);
		if (!ctl_label_key_valid(s))
			return fail(l, km, "bad label key \"%s\": " LABEL_KEY_RULE,
				    show(s, shown, sizeof(shown)));
		for (size_t i = 0; i < out->n; i++)
			if (!strcmp(seen[i].key, s))
				return fail(l, km, "duplicate key (first at line %zu)",
					    seen[i].line);
		if (out->n >= CTL_LABELS_MAX)
			return fail(l, km, "more than %d labels", CTL_LABELS_MAX);
		snprintf(key, sizeof(key), "%s", s);
		ret = ev_next(l);
		if (ret == 0)
			ret = want_str(l, &s);
		if (ret < 0)
			return ret;
		if (!ctl_label_value_valid(s))
			return fail(l, l->ev.start_mark, "bad label value \"%s\": " LABEL_VAL_RULE,
				    show(s, shown, sizeof(shown)));
		snprintf(seen[out->n].key, sizeof(seen[out->n].key), "%s", key);
		seen[out->n].line = km.line + 1;
		if (ctl_labels_set(out, key, s) < 0)
			return nomem(l);
	}
	path_pop(l, base);
	return ret;
}

enum { E_KEY, E_OPERATOR, E_VALUES };
static const char *const expr_keys[] = {"key", "operator", "values"};

static int read_expr_values(struct ld *l, struct ctl_sel_expr *e)
{
	char shown[SHOW_LEN];
	size_t base = l->plen;
	const char *s;
	int ret = want_seq(l);

	while (ret == 0 && (ret = seq_next(l)) > 0) {
		char **v;

		path_pop(l, base);
		path_index(l, e->n_values);
		ret = want_str(l, &s);
		if (ret < 0)
			return ret;
		if (e->n_values >= CTL_VALUES_MAX)
			return fail(l, l->ev.start_mark, "more than %d values", CTL_VALUES_MAX);
		if (!ctl_label_value_valid(s))
			return fail(l, l->ev.start_mark, "bad value \"%s\": " LABEL_VAL_RULE,
				    show(s, shown, sizeof(shown)));
		for (size_t i = 0; i < e->n_values; i++)
			if (!strcmp(e->values[i], s))
				return fail(l, l->ev.start_mark, "\"%s\" is listed twice", s);
		v = grow(e->values, e->n_values, sizeof(*v));
		if (!v)
			return nomem(l);
		e->values = v;
		v[e->n_values] = strdup(s);
		if (!v[e->n_values])
			return nomem(l);
		e->n_values++;
		ret = 0;
	}
	path_pop(l, base);
	return ret;
}

static int read_expr(struct ld *l, struct ctl_sel_expr *e)
{
	char shown[SHOW_LEN];
	struct mapr m;
	const char *s;
	size_t k;
	int ret = map_begin(l, &m, expr_keys, 3);

	while (ret == 0 && (ret = map_next(l, &m, &k)) > 0) {
		switch (k) {
		case E_KEY:
			ret = want_str(l, &s);
			if (ret < 0)
				return ret;
			if (!ctl_label_key_valid(s))
				return fail(l, l->ev.start_mark,
					    "bad label key \"%s\": " LABEL_KEY_RULE,
					    show(s, shown, sizeof(shown)));
			e->key = strdup(s);
			if (!e->key)
				return nomem(l);
			break;
		case E_OPERATOR:
			ret = want_str(l, &s);
			if (ret < 0)
				return ret;
			for (e->op = CTL_SEL_IN; e->op <= CTL_SEL_DOES_NOT_EXIST; e->op++)
				if (!strcasecmp(s, op_names[e->op]))
					break;
			if (e->op > CTL_SEL_DOES_NOT_EXIST)
				return fail(l, l->ev.start_mark,
					    "unknown operator \"%s\" (In, NotIn, Exists or "
					    "DoesNotExist)",
					    show(s, shown, sizeof(shown)));
			break;
		case E_VALUES:
			ret = read_expr_values(l, e);
			break;
		}
		if (ret > 0)
			ret = 0;
	}
	if (ret < 0)
		return ret;
	if ((ret = map_require(l, &m, E_KEY)) || (ret = map_require(l, &m, E_OPERATOR)))
		return ret;
	if ((e->op == CTL_SEL_IN || e->op == CTL_SEL_NOT_IN) && e->n_values == 0)
		return fail_key(l, &m, E_VALUES, has(&m, E_VALUES) ? m.vmark[E_VALUES] : m.start,
				"%s needs at least one value", op_names[e->op]);
	if ((e->op == CTL_SEL_EXISTS || e->op == CTL_SEL_DOES_NOT_EXIST) && e->n_values)
		return fail_key(l, &m, E_VALUES, m.vmark[E_VALUES], "%s takes no values",
				op_names[e->op]);
	bh_sort(e->values, e->n_values, sizeof(*e->values), ctl_str_cmp);
	return 0;
}

static int read_exprs(struct ld *l, struct ctl_selector *s)
{
	yaml_mark_t marks[EXPRS_MAX];
	size_t base = l->plen;
	int ret = want_seq(l);

	while (ret == 0 && (ret = seq_next(l)) > 0) {
		struct ctl_sel_expr *e;
		size_t i = s->n_exprs;

		path_pop(l, base);
		path_index(l, i);
		if (i >= EXPRS_MAX)
			return fail(l, l->ev.start_mark, "more than %d expressions", EXPRS_MAX);
		e = grow(s->exprs, i, sizeof(*e));
		if (!e)
			return nomem(l);
		s->exprs = e;
		e = &s->exprs[s->n_exprs++];
		memset(e, 0, sizeof(*e));
		marks[i] = l->ev.start_mark;
		ret = read_expr(l, e);
		if (ret < 0)
			return ret;
		for (size_t j = 0; j < i; j++)
			if (!ctl_sel_expr_cmp(&s->exprs[j], e))
				return fail(l, marks[i], "the same expression as [%zu]", j);
	}
	path_pop(l, base);
	if (ret < 0)
		return ret;
	bh_sort(s->exprs, s->n_exprs, sizeof(*s->exprs), ctl_sel_expr_cmp);
	return 0;
}

static const char *const selector_keys[] = {"matchLabels", "matchExpressions"};

static int read_selector(struct ld *l, struct ctl_selector *s)
{
	struct mapr m;
	size_t k;
	int ret = map_begin(l, &m, selector_keys, 2);

	while (ret == 0 && (ret = map_next(l, &m, &k)) > 0)
		ret = k == 0 ? read_labels(l, &s->match) : read_exprs(l, s);
	return ret;
}

static int read_prefix(struct ld *l, struct ctl_prefix *p)
{
	struct bh_error e = {0};
	const char *s;
	int ret = want_str(l, &s);

	if (ret < 0)
		return ret;
	if (ctl_prefix_parse(s, p, &e) < 0)
		return fail(l, l->ev.start_mark, "%s", e.msg);
	return 0;
}

static int prefix_qcmp(const void *a, const void *b)
{
	return ctl_prefix_cmp(a, b);
}

enum { PE_SELECTOR, PE_CIDR, PE_EXCEPT };
static const char *const peer_keys[] = {"selector", "cidr", "except"};

static int read_except(struct ld *l, struct ctl_peer *p, yaml_mark_t *marks)
{
	size_t base = l->plen;
	int ret = want_seq(l);

	while (ret == 0 && (ret = seq_next(l)) > 0) {
		struct ctl_prefix *e;

		path_pop(l, base);
		path_index(l, p->n_except);
		if (p->n_except >= CTL_EXCEPT_MAX)
			return fail(l, l->ev.start_mark, "more than %d prefixes", CTL_EXCEPT_MAX);
		e = grow(p->except, p->n_except, sizeof(*e));
		if (!e)
			return nomem(l);
		p->except = e;
		marks[p->n_except] = l->ev.start_mark;
		ret = read_prefix(l, &p->except[p->n_except]);
		if (ret < 0)
			return ret;
		p->n_except++;
	}
	path_pop(l, base);
	return ret;
}

/* The except prefixes against cidr, once both are read (in either order). */
static int check_except(struct ld *l, struct mapr *m, struct ctl_peer *p, const yaml_mark_t *marks)
{
	char a[64], b[64];

	for (size_t i = 0; i < p->n_except; i++) {
		const struct ctl_prefix *e = &p->except[i];

		path_pop(l, m->base);
		path_key(l, "except");
		path_index(l, i);
		ctl_prefix_format(e, a, sizeof(a));
		ctl_prefix_format(&p->cidr, b, sizeof(b));
		if (e->family != p->cidr.family)
			return fail(l, marks[i], "families mixed: %s is IPv%u, cidr %s is IPv%u", a,
				    e->family, b, p->cidr.family);
		if (!ctl_prefix_contains(&p->cidr, e) || e->len == p->cidr.len)
			return fail(l, marks[i],
				    "%s is not within cidr %s (an except is a part of it)", a, b);
		for (size_t j = 0; j < i; j++)
			if (!ctl_prefix_cmp(&p->except[j], e))
				return fail(l, marks[i], "%s is listed twice", a);
	}
	path_pop(l, m->base);
	bh_sort(p->except, p->n_except, sizeof(*p->except), prefix_qcmp);
	return 0;
}

static int read_peer(struct ld *l, struct ctl_peer *p)
{
	yaml_mark_t marks[CTL_EXCEPT_MAX];
	struct mapr m;
	size_t k;
	int ret = map_begin(l, &m, peer_keys, 3);

	while (ret == 0 && (ret = map_next(l, &m, &k)) > 0) {
		if (k == PE_SELECTOR)
			ret = read_selector(l, &p->sel);
		else if (k == PE_CIDR)
			ret = read_prefix(l, &p->cidr);
		else
			ret = read_except(l, p, marks);
	}
	if (ret < 0)
		return ret;
	if (has(&m, PE_SELECTOR) && has(&m, PE_CIDR))
		return fail_key(l, &m, PE_CIDR, m.kmark[PE_CIDR],
				"a peer is a selector or a cidr, not both (write two peers)");
	if (!has(&m, PE_SELECTOR) && !has(&m, PE_CIDR))
		return fail(l, m.start, "a peer needs selector or cidr");
	if (has(&m, PE_SELECTOR)) {
		p->kind = CTL_PEER_SELECTOR;
		if (has(&m, PE_EXCEPT))
			return fail_key(l, &m, PE_EXCEPT, m.kmark[PE_EXCEPT],
					"except goes with cidr, not with selector");
		return 0;
	}
	p->kind = CTL_PEER_CIDR;
	return check_except(l, &m, p, marks);
}

enum { PO_PROTOCOL, PO_PORT, PO_END_PORT, PO_TYPE };
static const char *const port_keys[] = {"protocol", "port", "endPort", "type"};

static int read_protocol(struct ld *l, uint8_t *proto)
{
	char shown[SHOW_LEN];
	const char *s;
	int ret = want_str(l, &s);

	if (ret < 0)
		return ret;
	if (*s && strspn(s, "0123456789") == strlen(s)) {
		unsigned long n = strlen(s) > 3 ? 256 : strtoul(s, NULL, 10);

		if (n < 1 || n > 255)
			return fail(l, l->ev.start_mark, "protocol %s is out of range 1..255",
				    show(s, shown, sizeof(shown)));
		*proto = (uint8_t)n;
		return 0;
	}
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		if (!strcasecmp(s, protos[i].name)) {
			*proto = protos[i].num;
			return 0;
		}
	}
	return fail(l, l->ev.start_mark,
		    "unknown protocol \"%s\" (TCP, UDP, SCTP, UDPLite, ICMP, ICMPv6 or a number "
		    "1..255)",
		    show(s, shown, sizeof(shown)));
}

static int read_port(struct ld *l, struct ctl_port *pt)
{
	unsigned long port = 0, end = 0, type = 0;
	char pname[16];
	struct mapr m;
	size_t k;
	int ret = map_begin(l, &m, port_keys, 4);

	pt->proto = 6; /* TCP unless told otherwise, as in Kubernetes */
	while (ret == 0 && (ret = map_next(l, &m, &k)) > 0) {
		if (k == PO_PROTOCOL)
			ret = read_protocol(l, &pt->proto);
		else if (k == PO_PORT)
			ret = want_num(l, 1, 65535, &port);
		else if (k == PO_END_PORT)
			ret = want_num(l, 1, 65535, &end);
		else
			ret = want_num(l, 0, 255, &type);
	}
	if (ret < 0)
		return ret;
	if (proto_name(pt->proto))
		snprintf(pname, sizeof(pname), "%s", proto_name(pt->proto));
	else
		snprintf(pname, sizeof(pname), "%u", pt->proto);
	for (size_t i = PO_PORT; i <= PO_END_PORT; i++) {
		if (!has(&m, i) || bh_ip_proto_has_ports(pt->proto))
			continue;
		if (bh_ip_proto_is_icmp(pt->proto))
			return fail_key(l, &m, i, m.kmark[i],
					"%s has no ports (the message type is `type`)", pname);
		return fail_key(l, &m, i, m.kmark[i],
				"protocol %s has no ports (only TCP, UDP, SCTP and UDPLite do)",
				pname);
	}
	if (has(&m, PO_END_PORT) && !has(&m, PO_PORT))
		return fail_key(l, &m, PO_END_PORT, m.kmark[PO_END_PORT],
				"endPort needs port (the start of the range)");
	if (has(&m, PO_END_PORT) && end < port)
		return fail_key(l, &m, PO_END_PORT, m.vmark[PO_END_PORT],
				"endPort %lu is below port %lu", end, port);
	if (has(&m, PO_TYPE) && !bh_ip_proto_is_icmp(pt->proto))
		return fail_key(l, &m, PO_TYPE, m.kmark[PO_TYPE],
				"only ICMP and ICMPv6 have a type, not %s", pname);
	/* the datapath keys an ICMP type like a port, and port 0 means "any": type 0 could only
	 * ever widen into every type. Echo replies need no rule (connection tracking). */
	if (has(&m, PO_TYPE) && type == 0)
		return fail_key(l, &m, PO_TYPE, m.vmark[PO_TYPE],
				"type 0 (echo reply) cannot be named: replies to an allowed echo "
				"request pass by connection tracking; leave type out for every type");
	if (bh_ip_proto_is_icmp(pt->proto)) {
		pt->port = (uint16_t)type;
		pt->icmp_type_set = has(&m, PO_TYPE) && type == 0;
	} else {
		pt->port = (uint16_t)port;
		pt->end_port = end > port ? (uint16_t)end : 0; /* endPort == port: one port */
	}
	return 0;
}

static const char *const rule_keys[2][2] = {{"from", "ports"}, {"to", "ports"}};

static int read_rule(struct ld *l, struct ctl_rule *r, enum ctl_dir dir)
{
	struct mapr m;
	size_t k, base;
	int ret = map_begin(l, &m, rule_keys[dir], 2);

	if (ret < 0)
		return ret;
	r->line = (int)m.start.line + 1;
	while (ret == 0 && (ret = map_next(l, &m, &k)) > 0) {
		base = l->plen;
		ret = want_seq(l);
		while (ret == 0 && k == 0 && (ret = seq_next(l)) > 0) {
			struct ctl_peer *p;

			path_pop(l, base);
			path_index(l, r->n_peers);
			if (r->n_peers >= CTL_PEERS_MAX)
				return fail(l, l->ev.start_mark, "more than %d peers",
					    CTL_PEERS_MAX);
			p = grow(r->peers, r->n_peers, sizeof(*p));
			if (!p)
				return nomem(l);
			r->peers = p;
			p = &r->peers[r->n_peers++];
			memset(p, 0, sizeof(*p));
			ret = read_peer(l, p);
		}
		while (ret == 0 && k == 1 && (ret = seq_next(l)) > 0) {
			struct ctl_port *p;

			path_pop(l, base);
			path_index(l, r->n_ports);
			if (r->n_ports >= CTL_PORTS_MAX)
				return fail(l, l->ev.start_mark, "more than %d ports",
					    CTL_PORTS_MAX);
			p = grow(r->ports, r->n_ports, sizeof(*p));
			if (!p)
				return nomem(l);
			r->ports = p;
			p = &r->ports[r->n_ports++];
			memset(p, 0, sizeof(*p));
			ret = read_port(l, p);
		}
	}
	return ret;
}

/* A list of rules into p->rules[dir][act]. */
static int read_rules(struct ld *l, struct ctl_policy *p, enum ctl_dir dir, enum ctl_action act)
{
	size_t base = l->plen, *n = &p->n_rules[dir][act];
	int ret = want_seq(l);

	while (ret == 0 && (ret = seq_next(l)) > 0) {
		struct ctl_rule *r;

		path_pop(l, base);
		path_index(l, *n);
		if (*n >= CTL_RULES_MAX)
			return fail(l, l->ev.start_mark, "more than %d rules", CTL_RULES_MAX);
		r = grow(p->rules[dir][act], *n, sizeof(*r));
		if (!r)
			return nomem(l);
		p->rules[dir][act] = r;
		r = &r[(*n)++];
		memset(r, 0, sizeof(*r));
		ret = read_rule(l, r, dir);
	}
	path_pop(l, base);
	return ret;
}

static const char *const deny_keys[] = {"ingress", "egress"};

static int read_deny(struct ld *l, struct ctl_policy *p)
{
	struct mapr m;
	size_t k;
	int ret = map_begin(l, &m, deny_keys, 2);

	while (ret == 0 && (ret = map_next(l, &m, &k)) > 0)
		ret = read_rules(l, p, k == 0 ? CTL_INGRESS : CTL_EGRESS, CTL_DENY);
	return ret;
}

static int read_policy_types(struct ld *l, bool types[2])
{
	static const char *const names[] = {"Ingress", "Egress"};
	char shown[SHOW_LEN];
	size_t base = l->plen, i = 0;
	const char *s;
	int ret = want_seq(l);

	for (; ret == 0 && (ret = seq_next(l)) > 0; i++) {
		int d;

		path_pop(l, base);
		path_index(l, i);
		ret = want_str(l, &s);
		if (ret < 0)
			return ret;
		d = !strcasecmp(s, names[0]) ? 0 : !strcasecmp(s, names[1]) ? 1 : -1;
		if (d < 0)
			return fail(l, l->ev.start_mark,
				    "\"%s\" is not a policy type (Ingress or "
				    "Egress)",
				    show(s, shown, sizeof(shown)));
		if (types[d])
			return fail(l, l->ev.start_mark, "%s is listed twice", names[d]);
		types[d] = true;
		ret = 0;
	}
	path_pop(l, base);
	return ret;
}

enum { P_KIND, P_NAME, P_SELECTOR, P_MODE, P_TYPES, P_INGRESS, P_EGRESS, P_DENY };
static const char *const policy_keys[] = {"kind",	 "name",    "selector", "mode",
					  "policyTypes", "ingress", "egress",	"deny"};

static int read_policy(struct ld *l, struct ctl_policy *p)
{
	bool types[2] = {false, false};
	char shown[SHOW_LEN];
	struct mapr m;
	const char *s;
	size_t k;
	int ret = map_begin(l, &m, policy_keys, 8);

	while (ret == 0 && (ret = map_next(l, &m, &k)) > 0) {
		switch (k) {
		case P_KIND: /* checked by the first pass */
			ret = 0;
			break;
		case P_NAME:
			l->name_mark = l->ev.start_mark;
			ret = read_name(l, &p->name, "name");
			break;
		case P_SELECTOR:
			ret = read_selector(l, &p->sel);
			break;
		case P_MODE:
			ret = want_str(l, &s);
			if (ret < 0)
				break;
			if (!strcmp(s, "enforce"))
				p->mode = CTL_ENFORCE;
			else if (!strcmp(s, "observe"))
				p->mode = CTL_OBSERVE;
			else
				ret = fail(l, l->ev.start_mark,
					   "unknown mode \"%s\" (enforce or observe)",
					   show(s, shown, sizeof(shown)));
			break;
		case P_TYPES:
			ret = read_policy_types(l, types);
			break;
		case P_INGRESS:
		case P_EGRESS:
			ret = read_rules(l, p, k == P_INGRESS ? CTL_INGRESS : CTL_EGRESS,
					 CTL_ALLOW);
			break;
		case P_DENY:
			ret = read_deny(l, p);
			break;
		}
	}
	if (ret < 0)
		return ret;
	if ((ret = map_require(l, &m, P_NAME)) || (ret = map_require(l, &m, P_SELECTOR)))
		return ret;
	if (!has(&m, P_TYPES)) {
		/* Kubernetes' default, except that a policy of deny rules alone isolates nothing */
		p->isolates[CTL_INGRESS] =
			has(&m, P_INGRESS) || has(&m, P_EGRESS) || !has(&m, P_DENY);
		p->isolates[CTL_EGRESS] = has(&m, P_EGRESS);
		return 0;
	}
	p->isolates[CTL_INGRESS] = types[CTL_INGRESS];
	p->isolates[CTL_EGRESS] = types[CTL_EGRESS];
	/* Kubernetes ignores such rules silently; an operator who wrote them meant something */
	if (has(&m, P_INGRESS) && !types[CTL_INGRESS])
		return fail_key(l, &m, P_INGRESS, m.kmark[P_INGRESS],
				"policyTypes leaves Ingress out, so these rules would never apply "
				"(add Ingress to policyTypes, or remove ingress)");
	if (has(&m, P_EGRESS) && !types[CTL_EGRESS])
		return fail_key(l, &m, P_EGRESS, m.kmark[P_EGRESS],
				"policyTypes leaves Egress out, so these rules would never apply "
				"(add Egress to policyTypes, or remove egress)");
	return 0;
}

/* Linux's dev_valid_name(), restricted to printable ASCII. */
static bool ifname_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > IFNAME_MAX || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '/' || s[i] == ':')
			return false;
	return true;
}

static int read_addresses(struct ld *l, struct ctl_workload *w)
{
	size_t base = l->plen;
	char a[64];
	int ret = want_seq(l);

	while (ret == 0 && (ret = seq_next(l)) > 0) {
		struct ctl_prefix *p;

		path_pop(l, base);
		path_index(l, w->n_addrs);
		if (w->n_addrs >= CTL_ADDRS_MAX)
			return fail(l, l->ev.start_mark, "more than %d addresses", CTL_ADDRS_MAX);
		p = grow(w->addrs, w->n_addrs, sizeof(*p));
		if (!p)
			return nomem(l);
		w->addrs = p;
		p = &w->addrs[w->n_addrs];
		ret = read_prefix(l, p);
		if (ret < 0)
			return ret;
		ctl_prefix_format(p, a, sizeof(a));
		if (p->len != (p->family == 4 ? 32 : 128))
			return fail(l, l->ev.start_mark,
				    "%s is a network: a workload address is one address (or a "
				    "/32, /128)",
				    a);
		for (size_t i = 0; i < w->n_addrs; i++)
			if (!ctl_prefix_cmp(&w->addrs[i], p))
				return fail(l, l->ev.start_mark, "%s is listed twice", a);
		w->n_addrs++;
	}
	path_pop(l, base);
	if (ret == 0 && w->n_addrs > 1)
		qsort(w->addrs, w->n_addrs, sizeof(*w->addrs), prefix_qcmp);
	return ret;
}

enum { W_KIND, W_NAME, W_NODE, W_IFNAME, W_ATTACH, W_ADDRS, W_LABELS };
static const char *const workload_keys[] = {"kind",   "name",	   "node",  "interface",
					    "attach", "addresses", "labels"};

static int read_workload(struct ld *l, struct ctl_workload *w)
{
	char shown[SHOW_LEN];
	struct mapr m;
	const char *s;
	size_t k;
	int ret = map_begin(l, &m, workload_keys, 7);

	while (ret == 0 && (ret = map_next(l, &m, &k)) > 0) {
		switch (k) {
		case W_KIND:
			ret = 0;
			break;
		case W_NAME:
			l->name_mark = l->ev.start_mark;
			ret = read_name(l, &w->name, "name");
			break;
		case W_NODE:
			ret = read_name(l, &w->node, "node name");
			break;
		case W_IFNAME:
			ret = want_str(l, &s);
			if (ret < 0)
				break;
			if (!ifname_valid(s))
				ret = fail(l, l->ev.start_mark,
					   "bad interface name \"%s\": 1-15 printable characters, "
					   "no '/', ':' or space, not . or ..",
					   show(s, shown, sizeof(shown)));
			else if (!(w->ifname = strdup(s)))
				ret = nomem(l);
			break;
		case W_ATTACH:
			ret = want_str(l, &s);
			if (ret < 0)
				break;
			if (!strcmp(s, "host") || !strcmp(s, "veth"))
				w->attach_host = !strcmp(s, "host");
			else
				ret = fail(l, l->ev.start_mark,
					   "unknown attach \"%s\" (veth or host)",
					   show(s, shown, sizeof(shown)));
			break;
		case W_ADDRS:
			ret = read_addresses(l, w);
			break;
		case W_LABELS:
			ret = read_labels(l, &w->labels);
			break;
		}
	}
	if (ret < 0)
		return ret;
	if ((ret = map_require(l, &m, W_NAME)) || (ret = map_require(l, &m, W_NODE)) ||
	    (ret = map_require(l, &m, W_IFNAME)))
		return ret;
	return 0;
}

static const char *const node_keys[] = {"kind", "name", "labels"};

static int read_node(struct ld *l, struct ctl_node_spec *n)
{
	struct mapr m;
	size_t k;
	int ret = map_begin(l, &m, node_keys, 3);

	while (ret == 0 && (ret = map_next(l, &m, &k)) > 0) {
		if (k == 1) {
			l->name_mark = l->ev.start_mark;
			ret = read_name(l, &n->name, "name");
		} else if (k == 2) {
			ret = read_labels(l, &n->labels);
		} else {
			ret = 0;
		}
	}
	if (ret < 0)
		return ret;
	return map_require(l, &m, 1);
}

/* Pass 2: every non-empty document (kinds[i] from pass 1) into set, name marks into nmarks. */
static int load_docs(struct ld *l, const uint8_t *kinds, size_t nk, struct ctl_docset *set,
		     yaml_mark_t *nmarks)
{
	int ret = parser_init(l);

	while (ret == 0 && (ret = ev_next(l)) == 0 && l->ev.type != YAML_STREAM_END_EVENT) {
		struct ctl_doc *d;

		if (l->ev.type != YAML_DOCUMENT_START_EVENT)
			continue;
		ret = ev_next(l);
		if (ret < 0)
			break;
		if (l->ev.type != YAML_MAPPING_START_EVENT)
			continue; /* empty: pass 1 refused anything else */
		if (set->n >= nk) /* cannot happen: the same text as pass 1 */
			return fail(l, l->ev.start_mark, "documents changed between passes");
		d = &set->v[set->n++];
		memset(d, 0, sizeof(*d));
		d->kind = (enum ctl_kind)kinds[set->n - 1];
		d->line = (int)l->ev.start_mark.line + 1;
		path_pop(l, 0);
		switch (d->kind) {
		case CTL_KIND_POLICY:
			ret = read_policy(l, &d->policy);
			break;
		case CTL_KIND_WORKLOAD:
			ret = read_workload(l, &d->workload);
			break;
		case CTL_KIND_NODE:
			ret = read_node(l, &d->node);
			break;
		}
		nmarks[set->n - 1] = l->name_mark;
	}
	return ret;
}

struct doc_key {
	int kind;
	const char *name;
	size_t i;
};

static int doc_key_cmp(const void *a, const void *b)
{
	const struct doc_key *x = a, *y = b;
	int c = x->kind - y->kind;

	if (!c)
		c = strcmp(x->name, y->name);
	if (!c)
		c = x->i < y->i ? -1 : x->i > y->i;
	return c;
}

/* Two documents of one kind and name: the later one (in the text) is the error. */
static int check_unique(struct ld *l, const struct ctl_docset *s, const yaml_mark_t *nmarks)
{
	struct doc_key *k = malloc((s->n ? s->n : 1) * sizeof(*k));
	size_t dup = SIZE_MAX, first = 0;

	if (!k)
		return fail_field(l, -ENOMEM, (yaml_mark_t){0}, "(text)", "out of memory");
	for (size_t i = 0; i < s->n; i++)
		k[i] = (struct doc_key){s->v[i].kind, ctl_doc_name(&s->v[i]), i};
	bh_sort(k, s->n, sizeof(*k), doc_key_cmp);
	for (size_t i = 1; i < s->n; i++) {
		if (k[i].kind == k[i - 1].kind && !strcmp(k[i].name, k[i - 1].name) &&
		    k[i].i < dup) {
			dup = k[i].i;
			first = k[i - 1].i;
		}
	}
	free(k);
	if (dup == SIZE_MAX)
		return 0;
	return fail_field(l, -EINVAL, nmarks[dup], "name", "%s %s is already defined at line %zu",
			  ctl_kind_name(s->v[dup].kind), ctl_doc_name(&s->v[dup]),
			  nmarks[first].line + 1);
}

int ctl_yaml_load(const char *fname, const char *text, size_t len, struct ctl_docset *out,
		  struct bh_error *err)
{
	struct ld l = {.fname = fname ? fname : "(text)",
		       .text = text ? text : "",
		       .len = len,
		       .err = err};
	struct ctl_docset set = {0};
	yaml_mark_t *nmarks = NULL;
	uint8_t *kinds = NULL;
	size_t nk = 0;
	int ret;

	out->v = NULL;
	out->n = 0;
	if (!text)
		l.len = 0;
	if (l.len > TEXT_MAX)
		return fail_field(&l, -EFBIG, (yaml_mark_t){0}, "(text)",
				  "%zu bytes, over the limit of %u MiB", len, TEXT_MAX >> 20);
	ret = scan(&l, &kinds, &nk);
	if (ret == 0 && nk == 0)
		ret = fail_field(&l, -EINVAL, (yaml_mark_t){0}, "(text)", "no documents");
	if (ret < 0)
		goto out;
	set.v = calloc(nk, sizeof(*set.v));
	nmarks = calloc(nk, sizeof(*nmarks));
	if (!set.v || !nmarks) {
		ret = fail_field(&l, -ENOMEM, (yaml_mark_t){0}, "(text)", "out of memory");
		goto out;
	}
	ret = load_docs(&l, kinds, nk, &set, nmarks);
	if (ret == 0)
		ret = check_unique(&l, &set, nmarks);
out:
	parser_fini(&l);
	free(kinds);
	free(nmarks);
	if (ret < 0)
		ctl_docset_free(&set);
	else
		*out = set;
	return ret;
}

/* ==== writing ================================================================================= */

/* An open map or list of the emitter. */
struct em_frame {
	bool map, flow;
	bool inline_first; /* YAML: the first key goes on the current line (after "- ") */
	bool after_key;	   /* YAML: opened as a key's value */
	size_t n;	   /* keys or items written */
	unsigned indent;   /* YAML: column of its keys or of its items' "- " */
};

/* One emitter, two styles: JSON on one line, or block YAML (flow lists where asked). */
struct em {
	char *s;
	size_t len, cap;
	bool oom;
	bool yaml;
	int depth;
	struct em_frame st[16];
};

static void em_raw(struct em *e, const char *s, size_t n)
{
	if (e->oom)
		return;
	if (e->len + n + 1 > e->cap) {
		size_t cap = e->cap ? e->cap : 256;
		char *p;

		while (cap < e->len + n + 1)
			cap *= 2;
		p = realloc(e->s, cap);
		if (!p) {
			e->oom = true;
			return;
		}
		e->s = p;
		e->cap = cap;
	}
	memcpy(e->s + e->len, s, n);
	e->len += n;
	e->s[e->len] = '\0';
}

static void em_puts(struct em *e, const char *s)
{
	em_raw(e, s, strlen(s));
}

static void em_newline(struct em *e, unsigned indent)
{
	static const char spaces[] = "                                                            "
				     "                                        ";

	if (e->len)
		em_puts(e, "\n");
	em_raw(e, spaces, indent < sizeof(spaces) - 1 ? indent : sizeof(spaces) - 1);
}

/* A JSON string (also a YAML double-quoted one). */
static void em_quoted(struct em *e, const char *s)
{
	em_puts(e, "\"");
	for (; *s; s++) {
		char esc[8];

		if (*s == '"' || *s == '\\') {
			esc[0] = '\\';
			esc[1] = *s;
			em_raw(e, esc, 2);
		} else if ((unsigned char)*s < 0x20 || *s == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned char)*s);
			em_puts(e, esc);
		} else {
			em_raw(e, s, 1);
		}
	}
	em_puts(e, "\"");
}

/* Whether s can be a plain YAML scalar that every YAML reader takes as this string. */
static bool yaml_plain_ok(const char *s)
{
	static const char *const reserved[] = {"y",   "n",    "yes",   "no",  "on",
					       "off", "true", "false", "null"};

	/* an IPv4 network: no YAML number or date has a '/' */
	if (*s >= '0' && *s <= '9' && strchr(s, '/') && strspn(s, "0123456789./") == strlen(s))
		return true;
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '/'))
			return false;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (!strcasecmp(s, reserved[i]))
			return false;
	return true;
}

enum em_pos { POS_ROOT, POS_AFTER_KEY, POS_BLOCK_ITEM, POS_FLOW_ITEM };

/* Writes what goes before the next value and says where it is. */
static enum em_pos em_value_pos(struct em *e)
{
	if (!e->depth)
		return POS_ROOT;
	if (e->st[e->depth - 1].map)
		return POS_AFTER_KEY;
	if (!e->yaml || e->st[e->depth - 1].flow) {
		if (e->st[e->depth - 1].n++)
			em_puts(e, ", ");
		return POS_FLOW_ITEM;
	}
	em_newline(e, e->st[e->depth - 1].indent);
	em_puts(e, "- ");
	e->st[e->depth - 1].n++;
	return POS_BLOCK_ITEM;
}

static void em_scalar(struct em *e, const char *text, bool quote)
{
	if (em_value_pos(e) == POS_AFTER_KEY && e->yaml)
		em_puts(e, " ");
	if (quote && !(e->yaml && yaml_plain_ok(text)))
		em_quoted(e, text);
	else
		em_puts(e, text);
}

static void em_str(struct em *e, const char *s)
{
	em_scalar(e, s, true);
}

static void em_num(struct em *e, unsigned long n)
{
	char b[24];

	snprintf(b, sizeof(b), "%lu", n);
	em_scalar(e, b, false);
}

static void em_key(struct em *e, const char *k)
{
	struct em_frame *top = &e->st[e->depth - 1];

	if (!e->yaml) {
		if (top->n)
			em_puts(e, ", ");
		em_quoted(e, k);
		em_puts(e, ": ");
	} else {
		if (top->n || !top->inline_first)
			em_newline(e, top->indent);
		if (yaml_plain_ok(k))
			em_puts(e, k);
		else
			em_quoted(e, k);
		em_puts(e, ":");
	}
	top->n++;
}

/* Opens a map, or a list (flow: [a, b] in YAML too). */
static void em_open(struct em *e, bool map, bool flow)
{
	unsigned pi = e->depth ? e->st[e->depth - 1].indent : 0;
	enum em_pos pos = em_value_pos(e);
	struct em_frame f = {.map = map, .flow = flow || pos == POS_FLOW_ITEM};

	if (e->depth >= (int)(sizeof(e->st) / sizeof(e->st[0]))) {
		e->oom = true; /* deeper than any document goes */
		return;
	}
	if (!e->yaml) {
		em_puts(e, map ? "{" : "[");
	} else if (f.flow) {
		em_puts(e, pos == POS_AFTER_KEY ? (map ? " {" : " [") : (map ? "{" : "["));
	} else if (pos == POS_ROOT) {
		f.inline_first = true;
	} else if (pos == POS_AFTER_KEY) {
		f.indent = pi + 2;
		f.after_key = true;
	} else { /* a block list's item: "- " is written, the first key follows on this line */
		f.indent = pi + 2;
		f.inline_first = true;
	}
	e->st[e->depth++] = f;
}

static void em_close(struct em *e)
{
	struct em_frame f;

	if (!e->depth)
		return;
	f = e->st[--e->depth];
	if (!e->yaml || f.flow)
		em_puts(e, f.map ? "}" : "]");
	else if (f.n == 0)
		em_puts(e, f.after_key ? (f.map ? " {}" : " []") : (f.map ? "{}" : "[]"));
}

/* ---- documents ---- */

static void put_labels(struct em *e, const char *key, const struct ctl_labels *l)
{
	em_key(e, key);
	em_open(e, true, false);
	for (size_t i = 0; i < l->n; i++) {
		em_key(e, l->v[i].key);
		em_str(e, l->v[i].value);
	}
	em_close(e);
}

static void put_selector(struct em *e, const char *key, const struct ctl_selector *s)
{
	em_key(e, key);
	em_open(e, true, false);
	if (s->match.n)
		put_labels(e, "matchLabels", &s->match);
	if (s->n_exprs) {
		em_key(e, "matchExpressions");
		em_open(e, false, false);
		for (size_t i = 0; i < s->n_exprs; i++) {
			const struct ctl_sel_expr *x = &s->exprs[i];

			em_open(e, true, false);
			em_key(e, "key");
			em_str(e, x->key);
			em_key(e, "operator");
			em_str(e, op_names[x->op]);
			if (x->n_values) {
				em_key(e, "values");
				em_open(e, false, true);
				for (size_t j = 0; j < x->n_values; j++)
					em_str(e, x->values[j]);
				em_close(e);
			}
			em_close(e);
		}
		em_close(e);
	}
	em_close(e);
}

static void put_port(struct em *e, const struct ctl_port *p)
{
	em_open(e, true, false);
	if (p->proto) { /* 0 (any) never comes from a file: a port entry has a protocol */
		em_key(e, "protocol");
		if (proto_name(p->proto))
			em_str(e, proto_name(p->proto));
		else
			em_num(e, p->proto);
	}
	if (bh_ip_proto_is_icmp(p->proto) && (p->port || p->icmp_type_set)) {
		em_key(e, "type");
		em_num(e, p->port);
	} else if (!bh_ip_proto_is_icmp(p->proto) && p->port) {
		em_key(e, "port");
		em_num(e, p->port);
		if (p->end_port) {
			em_key(e, "endPort");
			em_num(e, p->end_port);
		}
	}
	em_close(e);
}

static void put_rules(struct em *e, const char *key, const struct ctl_rule *r, size_t n,
		      enum ctl_dir dir)
{
	char buf[64];

	em_key(e, key);
	em_open(e, false, false);
	for (size_t i = 0; i < n; i++) {
		em_open(e, true, false);
		if (r[i].n_peers) {
			em_key(e, dir == CTL_INGRESS ? "from" : "to");
			em_open(e, false, false);
			for (size_t j = 0; j < r[i].n_peers; j++) {
				const struct ctl_peer *p = &r[i].peers[j];

				em_open(e, true, false);
				if (p->kind == CTL_PEER_SELECTOR) {
					put_selector(e, "selector", &p->sel);
				} else {
					em_key(e, "cidr");
					em_str(e, ctl_prefix_format(&p->cidr, buf, sizeof(buf)));
					if (p->n_except) {
						em_key(e, "except");
						em_open(e, false, true);
						for (size_t k = 0; k < p->n_except; k++)
							em_str(e,
							       ctl_prefix_format(&p->except[k], buf,
										 sizeof(buf)));
						em_close(e);
					}
				}
				em_close(e);
			}
			em_close(e);
		}
		if (r[i].n_ports) {
			em_key(e, "ports");
			em_open(e, false, false);
			for (size_t j = 0; j < r[i].n_ports; j++)
				put_port(e, &r[i].ports[j]);
			em_close(e);
		}
		em_close(e);
	}
	em_close(e);
}

static void put_policy(struct em *e, const struct ctl_policy *p)
{
	const char *dirs[2] = {"ingress", "egress"};

	em_key(e, "name");
	em_str(e, p->name);
	put_selector(e, "selector", &p->sel);
	em_key(e, "mode");
	em_str(e, p->mode == CTL_OBSERVE ? "observe" : "enforce");
	em_key(e, "policyTypes");
	em_open(e, false, true);
	if (p->isolates[CTL_INGRESS])
		em_str(e, "Ingress");
	if (p->isolates[CTL_EGRESS])
		em_str(e, "Egress");
	em_close(e);
	for (int d = 0; d < 2; d++)
		if (p->isolates[d] || p->n_rules[d][CTL_ALLOW])
			put_rules(e, dirs[d], p->rules[d][CTL_ALLOW], p->n_rules[d][CTL_ALLOW],
				  (enum ctl_dir)d);
	if (p->n_rules[CTL_INGRESS][CTL_DENY] || p->n_rules[CTL_EGRESS][CTL_DENY]) {
		em_key(e, "deny");
		em_open(e, true, false);
		for (int d = 0; d < 2; d++)
			if (p->n_rules[d][CTL_DENY])
				put_rules(e, dirs[d], p->rules[d][CTL_DENY],
					  p->n_rules[d][CTL_DENY], (enum ctl_dir)d);
		em_close(e);
	}
}

static void put_workload(struct em *e, const struct ctl_workload *w)
{
	char buf[64];

	em_key(e, "name");
	em_str(e, w->name);
	em_key(e, "node");
	em_str(e, w->node);
	em_key(e, "interface");
	em_str(e, w->ifname);
	em_key(e, "attach");
	em_str(e, w->attach_host ? "host" : "veth");
	em_key(e, "addresses");
	em_open(e, false, true);
	for (size_t i = 0; i < w->n_addrs; i++) {
		/* a full-length prefix is written as the bare address */
		char *slash;

		ctl_prefix_format(&w->addrs[i], buf, sizeof(buf));
		slash = strchr(buf, '/');
		if (slash)
			*slash = '\0';
		em_str(e, buf);
	}
	em_close(e);
	put_labels(e, "labels", &w->labels);
}

static char *put_doc(const struct ctl_doc *d, bool yaml)
{
	struct em e = {.yaml = yaml};

	em_open(&e, true, false);
	em_key(&e, "kind");
	em_str(&e, ctl_kind_name(d->kind));
	switch (d->kind) {
	case CTL_KIND_POLICY:
		put_policy(&e, &d->policy);
		break;
	case CTL_KIND_WORKLOAD:
		put_workload(&e, &d->workload);
		break;
	case CTL_KIND_NODE:
		em_key(&e, "name");
		em_str(&e, d->node.name);
		put_labels(&e, "labels", &d->node.labels);
		break;
	}
	em_close(&e);
	if (yaml)
		em_puts(&e, "\n");
	if (e.oom) {
		free(e.s);
		return NULL;
	}
	return e.s;
}

/*
 * Key order: kind, name, then the kind's fields in the order of the format's documentation.
 * Written out even at their default: mode, policyTypes, attach, addresses and labels (even when
 * empty); selector parts, from/to, ports, except and deny only when not empty.
 */
char *ctl_doc_to_json(const struct ctl_doc *d)
{
	return put_doc(d, false);
}

char *ctl_doc_to_yaml(const struct ctl_doc *d)
{
	return put_doc(d, true);
}
