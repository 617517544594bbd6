// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <limits.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bulkhead/log.h"
#include "bulkhead/util.h"
#include "dataplane.h"
#include "bulkhead_bpf.skel.h"

#define BPF_FS_MAGIC 0xcafe4a11

#define DEF_POLICY_MAX	  65536
#define DEF_IPCACHE_MAX	  65536
#define DEF_ENDPOINTS_MAX 1024
#define DEF_CT_MAX	  262144
#define DEF_FLOWS_MAX	  65536
#define DEF_EVENTS_PER_S  100

#define TC_HANDLE   0xb0b
#define TC_PRIORITY 1

/* The three generational maps, in the order of enum agent_dp_map. */
#define NGEN_MAPS 3

static const char *const map_names[AGENT_DP_NMAPS] = {
	"policy", "ipcache", "endpoints", "conntrack", "flows",
};

static const char *const pin_names[] = {
	"bh_state", "bh_gen_config", "bh_policy", "bh_ipcache", "bh_endpoints", "bh_ct",
	"bh_frag", "bh_flows", "bh_events", "bh_ratelimit", "bh_stats", "bh_attached",
};

enum pending_kind {
	PENDING_NONE = 0,	/* standby equals active */
	PENDING_REPLAY,		/* standby lacks exactly the ops in dp->pending */
	PENDING_RESYNC,		/* standby content unknown: diff it against active */
};

/* One map entry: a key and value of one of the generational maps. */
struct dp_entry {
	/* aligned: they are read through the map layouts' structs (bpf/bulkhead.h) */
	_Alignas(8) uint8_t key[24];
	_Alignas(8) uint8_t val[16];
	uint8_t map; /* AGENT_DP_POLICY .. AGENT_DP_ENDPOINTS */
	uint8_t del; /* as an op: 1 = remove, 0 = add */
};

struct dp_vec {
	struct dp_entry *v;
	size_t n, cap;
};

struct agent_dp {
	char dir[PATH_MAX];
	int lock_fd; /* the pin directory, flock()ed exclusively by a writing handle */
	struct bulkhead_bpf *skel; /* NULL when opened without load */
	int fd_state, fd_gen_config, fd_outer[NGEN_MAPS], fd_inner[NGEN_MAPS][BH_GENERATIONS];
	int fd_ct, fd_frag, fd_flows, fd_events, fd_ratelimit, fd_stats, fd_attached;
	int prog_fd[2];
	struct bh_state *state; /* mmap of bh_state */
	struct bh_gen_config cfg[BH_GENERATIONS];
	enum pending_kind pending_kind;
	struct dp_vec pending;
	bool need_barrier;
	struct ring_buffer *rb;
	int (*ev_cb)(const struct bh_event *e, void *ctx);
	void *ev_ctx;
};

static const size_t key_size[NGEN_MAPS] = {
	sizeof(struct bh_policy_key), sizeof(struct bh_ipcache_key), sizeof(__u32),
};
static const size_t val_size[NGEN_MAPS] = {
	sizeof(struct bh_policy_val), sizeof(struct bh_ipcache_val), sizeof(struct bh_endpoint_val),
};

/* ---- small helpers ------------------------------------------------------------------------- */

static int vec_push(struct dp_vec *vec, const struct dp_entry *e)
{
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 64;
		struct dp_entry *nv = realloc(vec->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		vec->v = nv;
		vec->cap = cap;
	}
	vec->v[vec->n++] = *e;
	return 0;
}

static void vec_free(struct dp_vec *vec)
{
	free(vec->v);
	vec->v = NULL;
	vec->n = vec->cap = 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct dp_entry *x = a, *y = b;

	if (x->map != y->map)
		return x->map < y->map ? -1 : 1;
	return memcmp(x->key, y->key, key_size[x->map]);
}

static const char *dir_name(unsigned int dir)
{
	return dir == BH_DIR_INGRESS ? "ingress" : "egress";
}

/* Describes an entry for error messages. */
static const char *entry_str(const struct dp_entry *e, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	switch (e->map) {
	case AGENT_DP_POLICY: {
		const struct bh_policy_key *k = (const void *)e->key;
		const struct bh_policy_val *v = (const void *)e->val;

		snprintf(buf, len, "%s rule %u (local %u, %s, peer %u, proto %u port %u/%u)",
			 k->deny ? "deny" : "allow", v->rule_id, k->local_id, dir_name(k->dir),
			 k->remote_id, k->l4 >> 16, k->l4 & 0xffff, k->plen);
		break;
	}
	case AGENT_DP_IPCACHE: {
		const struct bh_ipcache_key *k = (const void *)e->key;
		const struct bh_ipcache_val *v = (const void *)e->val;

		snprintf(buf, len, "ipcache %s/%u -> identity %u",
			 bh_format_addr(k->addr, k->family == 2 ? 4 : 16, a, sizeof(a)),
			 k->prefixlen - 32, v->identity);
		break;
	}
	default: {
		const __u32 *ifindex = (const void *)e->key;
		const struct bh_endpoint_val *v = (const void *)e->val;
		char name[IF_NAMESIZE] = "?";

		if_indextoname(*ifindex, name);
		snprintf(buf, len, "endpoint on %s (ifindex %u, identity %u)", name, *ifindex,
			 v->identity);
	}
	}
	return buf;
}

/* ---- rule set -> map entries --------------------------------------------------------------- */

int agent_dp_range_prefixes(uint8_t proto, uint16_t lo, uint16_t hi, uint32_t *values,
			    uint8_t *plens, int max)
{
	uint32_t cur = lo, end = hi;
	int n = 0;

	/* Greedy cover by aligned power-of-two blocks: the minimal prefix set, <= 2*16-2 blocks. */
	while (cur <= end) {
		int bits = 0;

		while (bits < 16 && (cur & ((1u << (bits + 1)) - 1)) == 0 &&
		       cur + (1u << (bits + 1)) - 1 <= end)
			bits++;
		if (n < max) {
			values[n] = ((uint32_t)proto << 16) | cur;
			plens[n] = (uint8_t)(BH_L4_PLEN_MAX - bits);
		}
		n++;
		cur += 1u << bits;
	}
	return n;
}

static int verdict_from_pb(Bulkhead__Verdict v)
{
	return v == BULKHEAD__VERDICT__VERDICT_ALLOW  ? BH_VERDICT_ALLOW
	       : v == BULKHEAD__VERDICT__VERDICT_DENY ? BH_VERDICT_DENY
						      : -1;
}

static int rule_entries(const Bulkhead__Rule *r, bool del, struct dp_vec *out,
			struct bh_error *err)
{
	uint32_t values[32];
	uint8_t plens[32];
	int verdict = verdict_from_pb(r->verdict), n;
	uint32_t hi = r->end_port ? r->end_port : r->port;

	if (verdict < 0)
		return bh_error_set(err, -EINVAL, "rule %u: verdict must be allow or deny",
				    r->rule_id);
	if (r->rule_id <= BH_RULE_RESERVED_MAX)
		return bh_error_set(err, -EINVAL, "rule %u: ids up to %u are reserved",
				    r->rule_id, BH_RULE_RESERVED_MAX);
	if (r->local_identity == BH_ID_ANY)
		return bh_error_set(err, -EINVAL, "rule %u: local identity must not be 0",
				    r->rule_id);
	if (r->direction != BULKHEAD__DIRECTION__DIRECTION_INGRESS &&
	    r->direction != BULKHEAD__DIRECTION__DIRECTION_EGRESS)
		return bh_error_set(err, -EINVAL, "rule %u: bad direction %d", r->rule_id,
				    r->direction);
	if (r->protocol > 255)
		return bh_error_set(err, -EINVAL, "rule %u: protocol %u out of range 0-255",
				    r->rule_id, r->protocol);
	if (r->port > 65535 || r->end_port > 65535)
		return bh_error_set(err, -EINVAL, "rule %u: port out of range 0-65535", r->rule_id);
	if (r->end_port && r->end_port < r->port)
		return bh_error_set(err, -EINVAL, "rule %u: port range %u-%u has start > end",
				    r->rule_id, r->port, r->end_port);
	if (r->protocol == 0 && (r->port || r->end_port))
		return bh_error_set(err, -EINVAL, "rule %u: a port needs a protocol", r->rule_id);
	/* Only these carry a port (or, for ICMP, a type) the datapath reads: a port on any other
	 * protocol could never match. */
	if ((r->port || r->end_port) && r->protocol != 6 && r->protocol != 17 &&
	    r->protocol != 132 && r->protocol != 136 && r->protocol != 1 && r->protocol != 58)
		return bh_error_set(err, -EINVAL,
				    "rule %u: protocol %u has no ports: leave the port out",
				    r->rule_id, r->protocol);

	if (r->protocol == 0) {
		values[0] = 0;
		plens[0] = 0;
		n = 1;
	} else if (r->port == 0 && r->end_port == 0) {
		values[0] = r->protocol << 16;
		plens[0] = BH_L4_PLEN_PROTO;
		n = 1;
	} else {
		n = agent_dp_range_prefixes((uint8_t)r->protocol, (uint16_t)r->port, (uint16_t)hi,
					    values, plens, 32);
	}
	for (int i = 0; i < n; i++) {
		struct dp_entry e = {.map = AGENT_DP_POLICY, .del = del};
		struct bh_policy_key *k = (void *)e.key;
		struct bh_policy_val *v = (void *)e.val;

		k->local_id = r->local_identity;
		k->remote_id = r->remote_identity;
		k->dir = (uint8_t)r->direction;
		k->deny = verdict == BH_VERDICT_DENY;
		k->plen = plens[i];
		k->l4 = values[i] & bh_l4_mask(plens[i]);
		v->rule_id = r->rule_id;
		if (vec_push(out, &e))
			return bh_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static int ipcache_entry(const Bulkhead__IpcacheEntry *c, bool del, struct dp_vec *out,
			 struct bh_error *err)
{
	struct dp_entry e = {.map = AGENT_DP_IPCACHE, .del = del};
	struct bh_ipcache_key *k = (void *)e.key;
	struct bh_ipcache_val *v = (void *)e.val;
	size_t alen = c->prefix.len;

	if (alen != 4 && alen != 16)
		return bh_error_set(err, -EINVAL, "ipcache entry: address of %zu bytes (want 4 or 16)",
				    alen);
	if (c->prefix_len > alen * 8)
		return bh_error_set(err, -EINVAL, "ipcache entry: prefix length %u too long",
				    c->prefix_len);
	if (c->identity == BH_ID_ANY)
		return bh_error_set(err, -EINVAL, "ipcache entry: identity must not be 0");
	k->family = alen == 4 ? 2 : 10;
	k->prefixlen = 32 + c->prefix_len;
	/* Host bits past the prefix are cleared: the trie would ignore them anyway, and a key must
	 * have one spelling so that removals find it. */
	for (size_t i = 0; i < alen; i++) {
		int keep = (int)c->prefix_len - (int)i * 8;

		k->addr[i] = keep >= 8 ? c->prefix.data[i]
			     : keep <= 0 ? 0
					 : (uint8_t)(c->prefix.data[i] & (0xff << (8 - keep)));
	}
	v->identity = c->identity;
	return vec_push(out, &e) ? bh_error_set(err, -ENOMEM, "out of memory") : 0;
}

/* The ifindex of an endpoint to remove whose interface may be gone: an attached ifindex whose
 * interface no longer exists and that holds this identity in the active generation. */
static int lost_ifindex(struct agent_dp *dp, uint32_t identity, __u32 *out)
{
	int fd = dp->fd_inner[AGENT_DP_ENDPOINTS][dp->state->epoch & 1];
	__u32 key, *prev = NULL, found = 0;
	struct bh_endpoint_val v;
	char name[IF_NAMESIZE];
	int n = 0;

	while (bpf_map_get_next_key(fd, prev, &key) == 0) {
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v) == 0 && v.identity == identity &&
		    !if_indextoname(key, name)) {
			found = key;
			n++;
		}
	}
	if (n != 1)
		return -ENODEV;
	*out = found;
	return 0;
}

/* The ARPHRD_* link type of an interface in the current network namespace, or -1. */
static int if_hwtype(const char *ifname)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), hw = -1;

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0)
		hw = ifr.ifr_hwaddr.sa_family;
	close(fd);
	return hw;
}

static int endpoint_entry(struct agent_dp *dp, const Bulkhead__Endpoint *ep, bool del,
			  struct dp_vec *out, struct bh_error *err)
{
	struct dp_entry e = {.map = AGENT_DP_ENDPOINTS, .del = del};
	__u32 *ifindex = (void *)e.key;
	struct bh_endpoint_val *v = (void *)e.val;
	const Bulkhead__DirectionDefault *defs[2] = {ep->ingress, ep->egress};
	const char *name = ep->name && *ep->name ? ep->name : ep->ifname;

	if (!ep->ifname || !*ep->ifname)
		return bh_error_set(err, -EINVAL, "endpoint %s: no interface", name);
	if (ep->identity == BH_ID_ANY)
		return bh_error_set(err, -EINVAL, "endpoint %s: identity must not be 0", name);
	*ifindex = if_nametoindex(ep->ifname);
	if (!*ifindex && (!del || lost_ifindex(dp, ep->identity, ifindex)))
		return bh_error_set(err, -ENODEV, "endpoint %s: interface %s not found", name,
				    ep->ifname);
	if (!del) {
		int hw = if_hwtype(ep->ifname);

		/* The programs parse from an Ethernet header (loopback has a zeroed one). On a
		 * device without one (tun, WireGuard, ipip) every packet would look like non-IP
		 * and pass: refuse rather than protect nothing. */
		if (hw != ARPHRD_ETHER && hw != ARPHRD_LOOPBACK)
			return bh_error_set(err, -EPROTONOSUPPORT,
					    "endpoint %s: interface %s is not an Ethernet device "
					    "(link type %d): not supported",
					    name, ep->ifname, hw);
	}
	v->identity = ep->identity;
	v->mode = ep->mode == BULKHEAD__MODE__MODE_OBSERVE ? BH_MODE_OBSERVE : BH_MODE_ENFORCE;
	v->flags = ep->attach == BULKHEAD__ATTACH__ATTACH_VETH ? BH_EP_F_VETH : 0;
	for (int d = 0; d < 2; d++) {
		int verdict = defs[d] ? verdict_from_pb(defs[d]->verdict) : -1;

		if (verdict < 0)
			return bh_error_set(err, -EINVAL,
					    "endpoint %s: no default verdict for %s (say allow or "
					    "deny, with its rule id)",
					    name, dir_name(d));
		v->default_verdict[d] = (uint8_t)verdict;
		v->default_rule[d] = defs[d]->rule_id;
	}
	return vec_push(out, &e) ? bh_error_set(err, -ENOMEM, "out of memory") : 0;
}

/* ---- reading and diffing generations ------------------------------------------------------- */

/* Appends every entry of generation gen to out. */
static int read_gen(struct agent_dp *dp, unsigned int gen, struct dp_vec *out)
{
	for (int m = 0; m < NGEN_MAPS; m++) {
		int fd = dp->fd_inner[m][gen];
		uint8_t key[24], next[24];
		void *prev = NULL;

		while (bpf_map_get_next_key(fd, prev, next) == 0) {
			struct dp_entry e = {.map = (uint8_t)m};

			memcpy(e.key, next, key_size[m]);
			memcpy(key, next, key_size[m]);
			prev = key;
			if (bpf_map_lookup_elem(fd, e.key, e.val) < 0) {
				if (errno == ENOENT)
					continue;
				return -errno;
			}
			if (vec_push(out, &e))
				return -ENOMEM;
		}
		if (errno != ENOENT)
			return -errno;
	}
	bh_sort(out->v, out->n, sizeof(*out->v), entry_cmp);
	return 0;
}

/* Ops that turn sorted `from` into sorted `to`: removals first, then additions. */
static int diff_entries(const struct dp_vec *from, const struct dp_vec *to, struct dp_vec *ops)
{
	size_t i = 0, j = 0;
	struct dp_vec adds = {0};
	int err = 0;

	while (i < from->n || j < to->n) {
		int c = i == from->n ? 1 : j == to->n ? -1 : entry_cmp(&from->v[i], &to->v[j]);
		struct dp_entry e;

		if (c < 0) {
			e = from->v[i++];
			e.del = 1;
			err = vec_push(ops, &e);
		} else if (c > 0) {
			e = to->v[j++];
			e.del = 0;
			err = vec_push(&adds, &e);
		} else {
			if (memcmp(from->v[i].val, to->v[j].val, val_size[from->v[i].map])) {
				e = from->v[i];
				e.del = 1;
				err = vec_push(ops, &e);
				e = to->v[j];
				e.del = 0;
				err = err ?: vec_push(&adds, &e);
			}
			i++;
			j++;
		}
		if (err)
			goto out;
	}
	for (size_t k = 0; k < adds.n && !err; k++)
		err = vec_push(ops, &adds.v[k]);
out:
	vec_free(&adds);
	return err;
}

/* ---- writing a generation ------------------------------------------------------------------ */

static void cfg_account(struct bh_gen_config *cfg, const struct dp_entry *e, int delta)
{
	if (e->map == AGENT_DP_POLICY) {
		const struct bh_policy_key *k = (const void *)e->key;
		__u32 *count = &cfg->plen_count[k->dir & 1][k->deny & 1][k->plen];

		*count += (__u32)delta;
		if (*count)
			cfg->plen_mask[k->dir & 1][k->deny & 1] |= 1u << k->plen;
		else
			cfg->plen_mask[k->dir & 1][k->deny & 1] &= ~(1u << k->plen);
		cfg->n_policy += (__u32)delta;
	} else if (e->map == AGENT_DP_IPCACHE) {
		cfg->n_ipcache += (__u32)delta;
	} else {
		cfg->n_endpoints += (__u32)delta;
	}
}

static int write_cfg(struct agent_dp *dp, unsigned int gen)
{
	__u32 key = gen;

	return bpf_map_update_elem(dp->fd_gen_config, &key, &dp->cfg[gen], BPF_ANY) ? -errno : 0;
}

/* The standby generation's content is unknown: say so in the pinned config too, so that a
 * process that dies before the resync leaves the next one resyncing. */
static void mark_resync(struct agent_dp *dp, unsigned int gen)
{
	dp->pending_kind = PENDING_RESYNC;
	dp->cfg[gen].dirty = 1;
	write_cfg(dp, gen);
}

/* Writes one op into generation gen; on success records its inverse in undo (if given). */
static int write_op(struct agent_dp *dp, unsigned int gen, const struct dp_entry *op,
		    struct dp_vec *undo, struct bh_error *err)
{
	int fd = dp->fd_inner[op->map][gen];
	struct dp_entry inv = *op;
	uint32_t max;
	char what[160];
	struct bpf_map_info info = {0};
	__u32 ilen = sizeof(info);

	if (op->del) {
		if (bpf_map_lookup_elem(fd, op->key, inv.val) < 0)
			return bh_error_set(err, -ENOENT,
					    "%s is not in the rule set: the delta does not match "
					    "the enforcing revision",
					    entry_str(op, what, sizeof(what)));
		/* the entry to remove must be the one stored, not just its key */
		if (memcmp(inv.val, op->val, val_size[op->map]) != 0) {
			char have[160];

			return bh_error_set(err, -ENOENT,
					    "%s is stored as %s: the delta does not match the "
					    "enforcing revision",
					    entry_str(op, what, sizeof(what)),
					    entry_str(&inv, have, sizeof(have)));
		}
		if (bpf_map_delete_elem(fd, op->key) < 0)
			return bh_error_set(err, -errno, "removing %s: %s",
					    entry_str(op, what, sizeof(what)), strerror(errno));
		cfg_account(&dp->cfg[gen], op, -1);
		inv.del = 0;
	} else {
		if (bpf_map_update_elem(fd, op->key, op->val, BPF_NOEXIST) < 0) {
			int e = errno;

			if (e == EEXIST)
				return bh_error_set(err, -EEXIST,
						    "%s overlaps an entry already in the rule set "
						    "(same key)",
						    entry_str(op, what, sizeof(what)));
			if (e == E2BIG || e == ENOSPC || e == ENOMEM) {
				bpf_obj_get_info_by_fd(fd, &info, &ilen);
				max = info.max_entries;
				return bh_error_set(err, -ENOSPC,
						    "%s map is full (%u entries) adding %s: raise "
						    "its size (maps: %s in the agent's "
						    "configuration, --%s-max for the dataplane "
						    "command)",
						    map_names[op->map], max,
						    entry_str(op, what, sizeof(what)),
						    map_names[op->map], map_names[op->map]);
			}
			return bh_error_set(err, -e, "adding %s: %s",
					    entry_str(op, what, sizeof(what)), strerror(e));
		}
		cfg_account(&dp->cfg[gen], op, +1);
		inv.del = 1;
	}
	if (undo && vec_push(undo, &inv)) {
		/* Could not record how to undo: undo this one now and report. */
		write_op(dp, gen, &inv, NULL, NULL);
		return bh_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Writes ops into gen; on failure undoes what it wrote, so gen is as before, and returns the
 * error. If even the undo fails, gen is left marked dirty and will be resynced. */
static int write_ops(struct agent_dp *dp, unsigned int gen, const struct dp_vec *ops,
		     struct bh_error *err)
{
	struct dp_vec undo = {0};
	struct bh_gen_config saved = dp->cfg[gen];
	int rc = 0;

	dp->cfg[gen].dirty = 1;
	rc = write_cfg(dp, gen);
	if (rc) {
		dp->cfg[gen] = saved;
		return bh_error_set(err, rc, "marking generation %u dirty: %s", gen,
				    bh_strerror(rc));
	}
	for (size_t i = 0; i < ops->n; i++) {
		rc = write_op(dp, gen, &ops->v[i], &undo, err);
		if (rc)
			break;
	}
	if (rc) {
		bool clean = true;

		for (size_t i = undo.n; i-- > 0;)
			if (write_op(dp, gen, &undo.v[i], NULL, NULL))
				clean = false;
		dp->cfg[gen] = saved;
		dp->cfg[gen].dirty = 0;
		write_cfg(dp, gen);
		if (!clean) {
			bh_log(LOG_WARNING, "undo of a failed write left generation %u inconsistent;"
					    " it will be resynced",
			       gen);
			mark_resync(dp, gen);
		}
	}
	vec_free(&undo);
	return rc;
}

/* Waits until no BPF program can still be reading the generation that was active before the last
 * flip. Updating a map-in-map slot returns only after an RCU grace period (the kernel waits for
 * running programs there), so re-storing a slot's own inner map is the barrier. */
static int rcu_barrier(struct agent_dp *dp)
{
	__u32 key = 0, fd = (__u32)dp->fd_inner[AGENT_DP_POLICY][0];

	if (!dp->need_barrier)
		return 0;
	if (bpf_map_update_elem(dp->fd_outer[AGENT_DP_POLICY], &key, &fd, BPF_ANY) < 0)
		return -errno;
	dp->need_barrier = false;
	return 0;
}

static int resync_standby(struct agent_dp *dp, struct bh_error *err)
{
	unsigned int active = dp->state->epoch & 1, standby = !active;
	struct dp_vec a = {0}, s = {0}, ops = {0};
	int rc;

	rc = read_gen(dp, active, &a);
	rc = rc ?: read_gen(dp, standby, &s);
	rc = rc ?: diff_entries(&s, &a, &ops);
	if (rc) {
		bh_error_set(err, rc, "reading the generations to resync: %s", bh_strerror(rc));
		goto out;
	}
	/* Counts come from the diff itself; start from the standby's true content. */
	memset(&dp->cfg[standby], 0, sizeof(dp->cfg[standby]));
	for (size_t i = 0; i < s.n; i++)
		cfg_account(&dp->cfg[standby], &s.v[i], +1);
	rc = write_ops(dp, standby, &ops, err);
	if (rc)
		goto out;
	dp->cfg[standby].revision = dp->cfg[active].revision;
	dp->cfg[standby].stamp = dp->cfg[active].stamp;
	dp->cfg[standby].dirty = 0;
	rc = write_cfg(dp, standby);
	if (rc)
		bh_error_set(err, rc, "writing generation config: %s", bh_strerror(rc));
	bh_log(LOG_INFO, "resynced standby generation %u (%zu changes) to revision %llu", standby,
	       ops.n, (unsigned long long)dp->cfg[active].revision);
out:
	vec_free(&a);
	vec_free(&s);
	vec_free(&ops);
	return rc;
}

int agent_dp_settle(struct agent_dp *dp, struct bh_error *err)
{
	unsigned int standby = !(dp->state->epoch & 1);
	int rc;

	if (dp->pending_kind == PENDING_NONE)
		return 0;
	rc = rcu_barrier(dp);
	if (rc)
		return bh_error_set(err, rc, "RCU barrier (map-in-map update): %s", bh_strerror(rc));
	if (dp->pending_kind == PENDING_REPLAY) {
		rc = write_ops(dp, standby, &dp->pending, NULL);
		if (rc == 0) {
			dp->cfg[standby].revision = dp->cfg[!standby].revision;
			dp->cfg[standby].stamp = dp->cfg[!standby].stamp;
			dp->cfg[standby].dirty = 0;
			rc = write_cfg(dp, standby);
		}
		if (rc) {
			bh_log(LOG_WARNING, "replay onto standby generation failed (%s): resyncing",
			       bh_strerror(rc));
			mark_resync(dp, standby);
		}
	}
	if (dp->pending_kind == PENDING_RESYNC) {
		rc = resync_standby(dp, err);
		if (rc)
			return rc;
	}
	dp->pending_kind = PENDING_NONE;
	vec_free(&dp->pending);
	return 0;
}

/* ---- attaching ----------------------------------------------------------------------------- */

static int tc_attach(struct agent_dp *dp, __u32 ifindex, struct bh_error *err)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex,
			    .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	__u32 flags = 0, old;
	int rc;

	if (!dp->skel)
		return bh_error_set(err, -EPERM, "datapath opened without programs");
	rc = bpf_tc_hook_create(&hook);
	if (rc == 0)
		flags |= BH_ATT_F_OWN_CLSACT;
	else if (rc != -EEXIST)
		return bh_error_set(err, rc, "creating clsact qdisc on ifindex %u: %s", ifindex,
				    bh_strerror(rc));
	if (bpf_map_lookup_elem(dp->fd_attached, &ifindex, &old) == 0)
		flags |= old;
	if (bpf_map_update_elem(dp->fd_attached, &ifindex, &flags, BPF_ANY) < 0)
		return bh_error_set(err, -errno, "recording attachment: %s", strerror(errno));
	for (int h = 0; h < 2; h++) {
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, o, .handle = TC_HANDLE, .priority = TC_PRIORITY,
				    .prog_fd = dp->prog_fd[h], .flags = BPF_TC_F_REPLACE);

		hook.attach_point = h == BH_DIR_INGRESS ? BPF_TC_INGRESS : BPF_TC_EGRESS;
		rc = bpf_tc_attach(&hook, &o);
		if (rc)
			return bh_error_set(err, rc, "attaching %s program to ifindex %u: %s",
					    dir_name(h), ifindex, bh_strerror(rc));
	}
	return 0;
}

static void tc_detach(struct agent_dp *dp, __u32 ifindex)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex);
	__u32 flags = 0;

	for (int h = 0; h < 2; h++) {
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, o, .handle = TC_HANDLE, .priority = TC_PRIORITY);

		hook.attach_point = h == BH_DIR_INGRESS ? BPF_TC_INGRESS : BPF_TC_EGRESS;
		bpf_tc_detach(&hook, &o);
	}
	if (bpf_map_lookup_elem(dp->fd_attached, &ifindex, &flags) == 0 &&
	    (flags & BH_ATT_F_OWN_CLSACT)) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
	}
	bpf_map_delete_elem(dp->fd_attached, &ifindex);
}

/* ---- applying ------------------------------------------------------------------------------ */

/* True if ops re-add an endpoint on ifindex after removing it. */
static bool ops_add_endpoint(const struct dp_vec *ops, __u32 ifindex)
{
	for (size_t i = 0; i < ops->n; i++)
		if (ops->v[i].map == AGENT_DP_ENDPOINTS && !ops->v[i].del &&
		    *(const __u32 *)ops->v[i].key == ifindex)
			return true;
	return false;
}

static int apply_ops(struct agent_dp *dp, struct dp_vec *ops, uint64_t revision,
		     struct bh_error *err)
{
	unsigned int active = dp->state->epoch & 1, standby = !active;
	uint64_t t0 = bh_now_mono_ns();
	int rc;

	if (!dp->skel)
		return bh_error_set(err, -EPERM, "datapath opened without programs: cannot apply");
	rc = write_ops(dp, standby, ops, err);
	if (rc)
		return rc;
	/* New endpoints get their programs before the flip: until then the programs find no
	 * endpoint for the interface in the active generation and let traffic pass as before. */
	for (size_t i = 0; i < ops->n; i++) {
		if (ops->v[i].map != AGENT_DP_ENDPOINTS || ops->v[i].del)
			continue;
		rc = tc_attach(dp, *(__u32 *)ops->v[i].key, err);
		if (rc)
			goto undo;
	}
	dp->cfg[standby].revision = revision;
	dp->cfg[standby].stamp = dp->state->epoch + 1;
	dp->cfg[standby].dirty = 0;
	rc = write_cfg(dp, standby);
	if (rc) {
		bh_error_set(err, rc, "writing generation config: %s", bh_strerror(rc));
		goto undo;
	}

	/* The flip: one atomic store. Programs read epoch once per packet. */
	__atomic_store_n(&dp->state->epoch, dp->state->epoch + 1, __ATOMIC_SEQ_CST);

	for (size_t i = 0; i < ops->n; i++) {
		__u32 ifindex = *(__u32 *)ops->v[i].key;

		if (ops->v[i].map == AGENT_DP_ENDPOINTS && ops->v[i].del &&
		    !ops_add_endpoint(ops, ifindex))
			tc_detach(dp, ifindex);
	}
	vec_free(&dp->pending);
	dp->pending = *ops;
	memset(ops, 0, sizeof(*ops));
	dp->pending_kind = PENDING_REPLAY;
	dp->need_barrier = true;
	bh_log(LOG_INFO, "revision %llu enforcing (%zu map changes, %.3f ms)",
	       (unsigned long long)revision, dp->pending.n, (bh_now_mono_ns() - t0) / 1e6);
	return 0;

undo : {
	/* Put the standby generation back as it was. Attachments made above stay: the programs
	 * let traffic of interfaces without an active endpoint pass. */
	struct dp_vec inv = {0};
	struct bh_error ignore = {0};

	bool lost = false;

	for (size_t i = ops->n; i-- > 0 && !lost;) {
		struct dp_entry e = ops->v[i];

		e.del = !e.del;
		/* re-adding a removed entry: it is the one the op removed (removals match values) */
		if (vec_push(&inv, &e))
			lost = true;
	}
	if (lost || write_ops(dp, standby, &inv, &ignore)) {
		mark_resync(dp, standby);
	} else {
		dp->cfg[standby].revision = dp->cfg[active].revision;
		dp->cfg[standby].stamp = dp->cfg[active].stamp;
		dp->cfg[standby].dirty = 0;
		write_cfg(dp, standby);
	}
	vec_free(&inv);
	return rc;
}
}

uint64_t agent_dp_revision(const struct agent_dp *dp)
{
	return dp->cfg[dp->state->epoch & 1].revision;
}

int agent_dp_apply_snapshot(struct agent_dp *dp, const Bulkhead__NodePolicy *np,
			    struct bh_error *err)
{
	struct dp_vec want = {0}, have = {0}, ops = {0};
	char a[160], b[160];
	int rc;

	for (size_t i = 0; i < np->n_endpoints; i++)
		if ((rc = endpoint_entry(dp, np->endpoints[i], false, &want, err)))
			goto out;
	for (size_t i = 0; i < np->n_ipcache; i++)
		if ((rc = ipcache_entry(np->ipcache[i], false, &want, err)))
			goto out;
	for (size_t i = 0; i < np->n_rules; i++)
		if ((rc = rule_entries(np->rules[i], false, &want, err)))
			goto out;
	bh_sort(want.v, want.n, sizeof(*want.v), entry_cmp);
	for (size_t i = 1; i < want.n; i++) {
		if (entry_cmp(&want.v[i - 1], &want.v[i]) == 0) {
			rc = bh_error_set(err, -EEXIST, "%s overlaps %s",
					  entry_str(&want.v[i], a, sizeof(a)),
					  entry_str(&want.v[i - 1], b, sizeof(b)));
			goto out;
		}
	}
	rc = agent_dp_settle(dp, err);
	if (rc)
		goto out;
	rc = read_gen(dp, dp->state->epoch & 1, &have);
	if (rc) {
		bh_error_set(err, rc, "reading the enforcing rule set: %s", bh_strerror(rc));
		goto out;
	}
	rc = diff_entries(&have, &want, &ops);
	if (rc) {
		bh_error_set(err, rc, "out of memory");
		goto out;
	}
	if (ops.n == 0 && np->revision == agent_dp_revision(dp))
		goto out;
	rc = apply_ops(dp, &ops, np->revision, err);
out:
	vec_free(&want);
	vec_free(&have);
	vec_free(&ops);
	return rc;
}

int agent_dp_apply_delta(struct agent_dp *dp, const Bulkhead__NodePolicyDelta *d,
			 struct bh_error *err)
{
	struct dp_vec ops = {0}, adds = {0};
	uint64_t have = agent_dp_revision(dp);
	int rc = 0;

	if (d->from_revision != have)
		return bh_error_set(err, -ESTALE,
				    "delta from revision %llu does not apply: revision %llu is "
				    "enforcing (a snapshot is needed)",
				    (unsigned long long)d->from_revision, (unsigned long long)have);
	if (d->to_revision <= d->from_revision)
		return bh_error_set(err, -EINVAL, "delta goes from revision %llu to %llu: not forward",
				    (unsigned long long)d->from_revision,
				    (unsigned long long)d->to_revision);
	for (size_t i = 0; i < d->n_rules_removed && !rc; i++)
		rc = rule_entries(d->rules_removed[i], true, &ops, err);
	for (size_t i = 0; i < d->n_ipcache_removed && !rc; i++)
		rc = ipcache_entry(d->ipcache_removed[i], true, &ops, err);
	for (size_t i = 0; i < d->n_endpoints_removed && !rc; i++)
		rc = endpoint_entry(dp, d->endpoints_removed[i], true, &ops, err);
	for (size_t i = 0; i < d->n_endpoints_added && !rc; i++)
		rc = endpoint_entry(dp, d->endpoints_added[i], false, &adds, err);
	for (size_t i = 0; i < d->n_ipcache_added && !rc; i++)
		rc = ipcache_entry(d->ipcache_added[i], false, &adds, err);
	for (size_t i = 0; i < d->n_rules_added && !rc; i++)
		rc = rule_entries(d->rules_added[i], false, &adds, err);
	for (size_t i = 0; i < adds.n && !rc; i++)
		if (vec_push(&ops, &adds.v[i]))
			rc = bh_error_set(err, -ENOMEM, "out of memory");
	rc = rc ?: agent_dp_settle(dp, err);
	rc = rc ?: apply_ops(dp, &ops, d->to_revision, err);
	vec_free(&ops);
	vec_free(&adds);
	return rc;
}

/* ---- open / close -------------------------------------------------------------------------- */

static int ensure_bpffs(const char *root, struct bh_error *err)
{
	struct statfs st;

	if (strncmp(root, "/sys/fs/bpf", 11) != 0)
		return 0;
	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") < 0)
		return bh_error_set(err, -errno,
				    "bpffs is not mounted at /sys/fs/bpf and mounting it failed: %s",
				    strerror(errno));
	bh_log(LOG_NOTICE, "mounted bpffs at /sys/fs/bpf");
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int pin_fd(const struct agent_dp *dp, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dp->dir, name);
	return bpf_obj_get(path);
}

/* Size of an existing pinned map, or 0 if there is none. */
static uint32_t pinned_max(const struct agent_dp *dp, const char *name)
{
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);
	int fd = pin_fd(dp, name);
	uint32_t max = 0;

	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		max = info.max_entries;
	close(fd);
	return max;
}

static int load_programs(struct agent_dp *dp, const struct agent_dp_opts *o, struct bh_error *err)
{
	DECLARE_LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = dp->dir);
	uint32_t ct = pinned_max(dp, "bh_ct"), flows = pinned_max(dp, "bh_flows");
	char path[PATH_MAX];
	int rc;

	dp->skel = bulkhead_bpf__open_opts(&oo);
	if (!dp->skel)
		return bh_error_set(err, -errno, "opening the BPF object: %s", strerror(errno));
	if (ct && o->ct_max && ct != o->ct_max)
		bh_log(LOG_NOTICE, "conntrack map is pinned with %u entries: keeping that size", ct);
	if (flows && o->flows_max && flows != o->flows_max)
		bh_log(LOG_NOTICE, "flows map is pinned with %u entries: keeping that size", flows);
	bpf_map__set_max_entries(dp->skel->maps.bh_ct, ct ?: o->ct_max ?: DEF_CT_MAX);
	bpf_map__set_max_entries(dp->skel->maps.bh_flows, flows ?: o->flows_max ?: DEF_FLOWS_MAX);
	rc = bulkhead_bpf__load(dp->skel);
	if (rc)
		return bh_error_set(err, rc,
				    "loading the BPF programs failed (%s): the kernel needs BPF "
				    "map-in-map, LPM trie, ring buffer and tc (clsact) support; "
				    "run with --log-level debug for the verifier log",
				    bh_strerror(rc));
	for (int h = 0; h < 2; h++) {
		struct bpf_program *prog = h == BH_DIR_INGRESS ? dp->skel->progs.bh_tc_ingress
							       : dp->skel->progs.bh_tc_egress;

		snprintf(path, sizeof(path), "%s/prog_%s", dp->dir, dir_name(h));
		unlink(path);
		rc = bpf_program__pin(prog, path);
		if (rc)
			return bh_error_set(err, rc, "pinning %s: %s", path, bh_strerror(rc));
		dp->prog_fd[h] = bpf_program__fd(prog);
	}
	return 0;
}

static int open_inner_maps(struct agent_dp *dp, const struct agent_dp_opts *o,
			   struct bh_error *err)
{
	static const enum bpf_map_type types[NGEN_MAPS] = {
		BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LPM_TRIE, BPF_MAP_TYPE_HASH,
	};
	/* No preallocation: kernel memory follows the rule set, not the configured maximum (a
	 * failed allocation during an apply is an apply error like any other, and rolls back). */
	uint32_t sizes[NGEN_MAPS] = {
		o->policy_max ?: DEF_POLICY_MAX,
		o->ipcache_max ?: DEF_IPCACHE_MAX,
		o->endpoints_max ?: DEF_ENDPOINTS_MAX,
	};

	for (int m = 0; m < NGEN_MAPS; m++) {
		for (__u32 g = 0; g < BH_GENERATIONS; g++) {
			DECLARE_LIBBPF_OPTS(bpf_map_create_opts, mo);
			char name[16];
			__u32 id;
			int fd;

			if (bpf_map_lookup_elem(dp->fd_outer[m], &g, &id) == 0) {
				fd = bpf_map_get_fd_by_id(id);
				if (fd < 0)
					return bh_error_set(err, -errno,
							    "opening %s generation %u: %s",
							    map_names[m], g, strerror(errno));
				dp->fd_inner[m][g] = fd;
				continue;
			}
			if (!dp->skel)
				return bh_error_set(err, -ENOENT,
						    "%s generation %u is missing from %s: the "
						    "datapath was never set up completely",
						    map_names[m], g, dp->dir);
			mo.map_flags = BPF_F_NO_PREALLOC;
			snprintf(name, sizeof(name), "bh_%.6s_g%u", map_names[m], g);
			fd = bpf_map_create(types[m], name, (__u32)key_size[m], (__u32)val_size[m],
					    sizes[m], &mo);
			if (fd < 0)
				return bh_error_set(err, -errno,
						    "creating %s map of %u entries: %s",
						    map_names[m], sizes[m], strerror(errno));
			dp->fd_inner[m][g] = fd;
			if (bpf_map_update_elem(dp->fd_outer[m], &g, &fd, BPF_ANY) < 0)
				return bh_error_set(err, -errno, "installing %s generation %u: %s",
						    map_names[m], g, strerror(errno));
		}
	}
	return 0;
}

static int open_pinned_maps(struct agent_dp *dp, struct bh_error *err)
{
	int *fds[] = {
		&dp->fd_state, &dp->fd_gen_config, &dp->fd_outer[AGENT_DP_POLICY],
		&dp->fd_outer[AGENT_DP_IPCACHE], &dp->fd_outer[AGENT_DP_ENDPOINTS], &dp->fd_ct,
		&dp->fd_frag, &dp->fd_flows, &dp->fd_events, &dp->fd_ratelimit, &dp->fd_stats,
		&dp->fd_attached,
	};

	for (size_t i = 0; i < BH_ARRAY_SIZE(fds); i++) {
		*fds[i] = pin_fd(dp, pin_names[i]);
		if (*fds[i] < 0)
			return bh_error_set(err, -errno == -ENOENT ? -ENOENT : -errno,
					    "no datapath at %s (%s/%s: %s)%s", dp->dir, dp->dir,
					    pin_names[i], strerror(errno),
					    errno == ENOENT ? ": apply a rule set first" : "");
	}
	return 0;
}

int agent_dp_open(struct agent_dp **out, const struct agent_dp_opts *o, struct bh_error *err)
{
	const char *root = o->pin_root ? o->pin_root : AGENT_DP_PIN_ROOT;
	struct agent_dp *dp;
	long page = sysconf(_SC_PAGESIZE);
	int rc;

	if (!o->node || !*o->node || strchr(o->node, '/') || strcmp(o->node, ".") == 0 ||
	    strcmp(o->node, "..") == 0)
		return bh_error_set(err, -EINVAL, "bad node name \"%s\"", o->node ? o->node : "");
	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return bh_error_set(err, -ENOMEM, "out of memory");
	dp->lock_fd = -1;
	dp->fd_state = dp->fd_gen_config = dp->fd_ct = dp->fd_frag = dp->fd_flows = -1;
	dp->fd_events = dp->fd_ratelimit = dp->fd_stats = dp->fd_attached = -1;
	dp->prog_fd[0] = dp->prog_fd[1] = -1;
	for (int m = 0; m < NGEN_MAPS; m++)
		dp->fd_outer[m] = dp->fd_inner[m][0] = dp->fd_inner[m][1] = -1;
	snprintf(dp->dir, sizeof(dp->dir), "%s/%s", root, o->node);

	rc = ensure_bpffs(root, err);
	if (rc)
		goto fail;
	if (o->load) {
		rc = mkdir_p(dp->dir, 0700);
		if (rc) {
			bh_error_set(err, rc, "creating %s: %s", dp->dir, bh_strerror(rc));
			goto fail;
		}
		/* One writer per node: another's cached view of the generations would go stale. */
		dp->lock_fd = open(dp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dp->lock_fd < 0 || flock(dp->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			rc = bh_error_set(err, errno == EWOULDBLOCK ? -EBUSY : -errno,
					  "the datapath of node %s is in use by another process "
					  "(%s): only one may change it at a time",
					  o->node, strerror(errno));
			goto fail;
		}
		rc = load_programs(dp, o, err);
		if (rc)
			goto fail;
	}
	rc = open_pinned_maps(dp, err);
	if (rc)
		goto fail;
	rc = open_inner_maps(dp, o, err);
	if (rc)
		goto fail;
	dp->state = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, dp->fd_state, 0);
	if (dp->state == MAP_FAILED) {
		dp->state = NULL;
		rc = bh_error_set(err, -errno, "mapping the state map: %s", strerror(errno));
		goto fail;
	}
	for (__u32 g = 0; g < BH_GENERATIONS; g++) {
		if (bpf_map_lookup_elem(dp->fd_gen_config, &g, &dp->cfg[g]) < 0) {
			rc = bh_error_set(err, -errno, "reading generation config: %s",
					  strerror(errno));
			goto fail;
		}
	}
	{
		unsigned int a = dp->state->epoch & 1;

		dp->need_barrier = true;
		if (dp->cfg[!a].dirty || dp->cfg[!a].stamp != dp->cfg[a].stamp ||
		    dp->cfg[!a].revision != dp->cfg[a].revision)
			dp->pending_kind = PENDING_RESYNC;
		/* the event rate lives in the state map: set on first use, or when asked */
		if (o->events_per_sec || (dp->state->epoch == 0 && !dp->state->events_per_sec))
			__atomic_store_n(&dp->state->events_per_sec,
					 o->events_per_sec ?: DEF_EVENTS_PER_S, __ATOMIC_RELAXED);
	}
	/* Switch every attached interface to the programs just loaded. */
	if (dp->skel) {
		__u32 key, *prev = NULL;

		while (bpf_map_get_next_key(dp->fd_attached, prev, &key) == 0) {
			struct bh_error e2 = {0};
			char name[IF_NAMESIZE];

			prev = &key;
			if (!if_indextoname(key, name))
				continue;
			if (tc_attach(dp, key, &e2))
				bh_log(LOG_WARNING, "re-attaching %s: %s", name, e2.msg);
		}
	}
	bh_log(LOG_DEBUG, "datapath %s open, revision %llu (epoch %llu)", dp->dir,
	       (unsigned long long)agent_dp_revision(dp), (unsigned long long)dp->state->epoch);
	*out = dp;
	return 0;
fail:
	agent_dp_close(dp);
	return rc;
}

void agent_dp_close(struct agent_dp *dp)
{
	if (!dp)
		return;
	ring_buffer__free(dp->rb);
	if (dp->state)
		munmap(dp->state, (size_t)sysconf(_SC_PAGESIZE));
	for (int m = 0; m < NGEN_MAPS; m++) {
		for (int g = 0; g < BH_GENERATIONS; g++)
			if (dp->fd_inner[m][g] >= 0)
				close(dp->fd_inner[m][g]);
		if (dp->fd_outer[m] >= 0)
			close(dp->fd_outer[m]);
	}
	int own[] = {dp->fd_state,  dp->fd_gen_config, dp->fd_ct,    dp->fd_frag,    dp->fd_flows,
		     dp->fd_events, dp->fd_ratelimit,  dp->fd_stats, dp->fd_attached};
	for (size_t i = 0; i < BH_ARRAY_SIZE(own); i++)
		if (own[i] >= 0)
			close(own[i]);
	bulkhead_bpf__destroy(dp->skel);
	if (dp->lock_fd >= 0)
		close(dp->lock_fd);
	vec_free(&dp->pending);
	free(dp);
}

int agent_dp_prog_fd(const struct agent_dp *dp, int hook)
{
	return dp->prog_fd[hook & 1];
}

/* ---- inspection ---------------------------------------------------------------------------- */

static uint64_t fd_memlock(int fd)
{
	char path[64], line[128];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %llu", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Entries in a hash map, a key at a time (what every kernel can do; one syscall per entry). */
static uint32_t count_keys_slow(int fd, size_t ksize)
{
	uint8_t key[64], next[64];
	void *prev = NULL;
	uint32_t n = 0;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, ksize);
		prev = key;
		n++;
	}
	return n;
}

/*
 * Entries in a hash map, read in batches of 4096 (a status request or a metrics scrape must not
 * cost one syscall per entry: a full 262,144-entry conntrack took ~1 s of the loop that way).
 * vsize: the value size as the syscall copies it (per-CPU maps: rounded to 8, times the CPUs).
 */
static uint32_t count_keys(int fd, size_t ksize, size_t vsize)
{
	enum { BATCH = 4096 };
	void *keys = malloc(BATCH * ksize), *vals = malloc(BATCH * vsize);
	__u32 in = 0, out = 0, n = 0;
	bool first = true;
	int rc;

	if (!keys || !vals)
		goto slow;
	for (;;) {
		__u32 count = BATCH;

		rc = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, vals, &count, NULL);
		if (rc < 0 && errno != ENOENT)
			goto slow; /* no batch support, or a bucket larger than the buffer */
		n += count;
		if (rc < 0)
			break; /* ENOENT: that was the last batch */
		first = false;
		in = out;
	}
	free(keys);
	free(vals);
	return n;
slow:
	free(keys);
	free(vals);
	return count_keys_slow(fd, ksize);
}

static uint32_t map_max(int fd)
{
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.max_entries : 0;
}

int agent_dp_info(struct agent_dp *dp, struct agent_dp_info *info)
{
	unsigned int a = dp->state->epoch & 1;
	int ncpu = libbpf_num_possible_cpus();

	memset(info, 0, sizeof(*info));
	info->epoch = dp->state->epoch;
	info->active_gen = a;
	info->revision = dp->cfg[a].revision;
	info->standby_synced = dp->pending_kind == PENDING_NONE;
	for (int m = 0; m < AGENT_DP_NMAPS; m++)
		info->maps[m].name = map_names[m];
	info->maps[AGENT_DP_POLICY].used = dp->cfg[a].n_policy;
	info->maps[AGENT_DP_IPCACHE].used = dp->cfg[a].n_ipcache;
	info->maps[AGENT_DP_ENDPOINTS].used = dp->cfg[a].n_endpoints;
	for (int m = 0; m < NGEN_MAPS; m++) {
		info->maps[m].max = map_max(dp->fd_inner[m][a]);
		info->maps[m].memlock = fd_memlock(dp->fd_inner[m][0]) +
					fd_memlock(dp->fd_inner[m][1]);
	}
	info->maps[AGENT_DP_CT].used =
		count_keys(dp->fd_ct, sizeof(struct bh_ct_key), sizeof(struct bh_ct_val));
	info->maps[AGENT_DP_CT].max = map_max(dp->fd_ct);
	info->maps[AGENT_DP_CT].memlock = fd_memlock(dp->fd_ct);
	info->maps[AGENT_DP_FLOWS].used =
		count_keys(dp->fd_flows, sizeof(struct bh_flow_key),
			   sizeof(struct bh_flow_val) * (size_t)(ncpu > 0 ? ncpu : 1));
	info->maps[AGENT_DP_FLOWS].max = map_max(dp->fd_flows);
	info->maps[AGENT_DP_FLOWS].memlock = fd_memlock(dp->fd_flows);
	return agent_dp_stats(dp, info->stats);
}

int agent_dp_stats(struct agent_dp *dp, uint64_t stats[BH_STAT_NR])
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;

	memset(stats, 0, sizeof(uint64_t) * BH_STAT_NR);
	if (ncpu <= 0)
		return ncpu;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (__u32 i = 0; i < BH_STAT_NR; i++) {
		if (bpf_map_lookup_elem(dp->fd_stats, &i, vals) < 0)
			continue;
		for (int c = 0; c < ncpu; c++)
			stats[i] += vals[c];
	}
	free(vals);
	return 0;
}

/* ---- flows and events ---------------------------------------------------------------------- */

static void flow_sum(struct agent_dp_flow *f, const struct bh_flow_val *percpu, int ncpu)
{
	memset(&f->val, 0, sizeof(f->val));
	for (int c = 0; c < ncpu; c++) {
		const struct bh_flow_val *v = &percpu[c];

		if (!v->packets)
			continue;
		f->val.packets += v->packets;
		f->val.bytes += v->bytes;
		if (v->first_seen && (!f->val.first_seen || v->first_seen < f->val.first_seen))
			f->val.first_seen = v->first_seen;
		if (v->last_seen > f->val.last_seen)
			f->val.last_seen = v->last_seen;
	}
}

int agent_dp_flows_drain(struct agent_dp *dp, int (*cb)(const struct agent_dp_flow *f, void *ctx),
			 void *ctx)
{
	enum { BATCH = 4096 }; /* a full map in few syscalls */
	int ncpu = libbpf_num_possible_cpus(), rc = 0, total = 0;
	struct bh_flow_key *keys = NULL;
	struct bh_flow_val *vals = NULL;
	__u32 in_batch = 0, out_batch = 0;
	bool first = true, done = false;

	if (ncpu <= 0)
		return ncpu;
	keys = calloc(BATCH, sizeof(*keys));
	vals = calloc((size_t)BATCH * (size_t)ncpu, sizeof(*vals));
	if (!keys || !vals) {
		rc = -ENOMEM;
		goto out;
	}
	while (!done) {
		__u32 count = BATCH;

		rc = bpf_map_lookup_and_delete_batch(dp->fd_flows, first ? NULL : &in_batch,
						     &out_batch, keys, vals, &count, NULL);
		if (rc < 0 && errno != ENOENT) {
			rc = -errno;
			goto out;
		}
		done = rc < 0; /* ENOENT: this was the last batch */
		rc = 0;
		first = false;
		in_batch = out_batch;
		/* the kernel deleted the whole batch already: every flow in it is delivered, and a
		 * callback that wants to stop stops the next batch */
		for (__u32 i = 0; i < count; i++) {
			struct agent_dp_flow f = {.key = keys[i]};

			flow_sum(&f, &vals[(size_t)i * (size_t)ncpu], ncpu);
			total++;
			if (cb && cb(&f, ctx))
				done = true;
		}
	}
	rc = total;
out:
	free(keys);
	free(vals);
	return rc;
}

static int rb_handler(void *ctx, void *data, size_t len)
{
	struct agent_dp *dp = ctx;

	if (len < sizeof(struct bh_event))
		return 0;
	return dp->ev_cb ? dp->ev_cb(data, dp->ev_ctx) : 0;
}

static int events_setup(struct agent_dp *dp)
{
	if (dp->rb)
		return 0;
	dp->rb = ring_buffer__new(dp->fd_events, rb_handler, dp, NULL);
	return dp->rb ? 0 : -errno;
}

int agent_dp_events_poll(struct agent_dp *dp, int timeout_ms,
			 int (*cb)(const struct bh_event *e, void *ctx), void *ctx)
{
	int rc = events_setup(dp);

	if (rc)
		return rc;
	dp->ev_cb = cb;
	dp->ev_ctx = ctx;
	rc = ring_buffer__poll(dp->rb, timeout_ms);
	return rc == -EINTR ? 0 : rc;
}

int agent_dp_events_fd(struct agent_dp *dp)
{
	int rc = events_setup(dp);

	return rc ? rc : ring_buffer__epoll_fd(dp->rb);
}

/* ---- teardown ------------------------------------------------------------------------------ */

int agent_dp_detach(struct agent_dp *dp, struct bh_error *err)
{
	char path[PATH_MAX];
	int rc = 0;

	/* Every attached interface: keys collected first, since detaching deletes them. */
	{
		__u32 keys[4096], *prev = NULL;
		size_t n = 0;

		while (n < BH_ARRAY_SIZE(keys) &&
		       bpf_map_get_next_key(dp->fd_attached, prev, &keys[n]) == 0) {
			prev = &keys[n];
			n++;
		}
		for (size_t i = 0; i < n; i++)
			tc_detach(dp, keys[i]);
	}
	for (size_t i = 0; i < BH_ARRAY_SIZE(pin_names); i++) {
		snprintf(path, sizeof(path), "%s/%s", dp->dir, pin_names[i]);
		if (unlink(path) < 0 && errno != ENOENT)
			rc = bh_error_set(err, -errno, "removing %s: %s", path, strerror(errno));
	}
	for (int h = 0; h < 2; h++) {
		snprintf(path, sizeof(path), "%s/prog_%s", dp->dir, dir_name(h));
		if (unlink(path) < 0 && errno != ENOENT)
			rc = bh_error_set(err, -errno, "removing %s: %s", path, strerror(errno));
	}
	if (rmdir(dp->dir) < 0 && errno != ENOENT)
		rc = bh_error_set(err, -errno, "removing %s: %s", dp->dir, strerror(errno));
	/* The parent is shared by all nodes: remove it only when this was the last one. */
	snprintf(path, sizeof(path), "%s", dp->dir);
	char *slash = strrchr(path, '/');
	if (slash) {
		*slash = '\0';
		rmdir(path);
	}
	bh_log(LOG_INFO, "datapath %s detached and removed", dp->dir);
	return rc;
}
