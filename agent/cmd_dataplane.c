// SPDX-License-Identifier: Apache-2.0
/* bulkhead-agent dataplane: apply a rule-set file, show state, drain flows, read deny events,
 * detach. The operator's (and the tests') handle on agent/dataplane.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bulkhead/log.h"
#include "bulkhead/util.h"
#include "cmd.h"
#include "dataplane.h"
#include "ruleset.h"

static const char usage_text[] =
	"usage: bulkhead-agent dataplane [OPTIONS] apply FILE\n"
	"       bulkhead-agent dataplane [OPTIONS] show [--json]\n"
	"       bulkhead-agent dataplane [OPTIONS] flows [--json]\n"
	"       bulkhead-agent dataplane [OPTIONS] events [--count N] [--timeout SECONDS] [--json]\n"
	"       bulkhead-agent dataplane [OPTIONS] detach\n"
	"\n"
	"Drives this node's eBPF datapath directly (the agent daemon does the same from the\n"
	"controller's deltas). Programs and maps are pinned under PIN_ROOT/NODE and keep enforcing\n"
	"after this command exits.\n"
	"\n"
	"  apply FILE   make FILE the enforcing rule set, atomically. FILE (or - for stdin) is a\n"
	"               rule set (\"revision N\" ...) or a delta (\"delta FROM TO\" ...) in the text\n"
	"               form of deploy/ruleset-format.md, or protobuf with --format. New endpoints'\n"
	"               interfaces get the tc programs; on any error nothing changes.\n"
	"  show         enforcing revision, map fill and kernel memory, datapath counters\n"
	"  flows        drain the per-flow counters and print them (each flow once)\n"
	"  events       print deny and would-deny events as they happen\n"
	"  detach       remove the programs from every interface and delete all pins\n"
	"\n"
	"options:\n"
	"  -n, --node NAME        node name: pins live in PIN_ROOT/NAME (default: the host name)\n"
	"      --pin-root DIR     default " AGENT_DP_PIN_ROOT "\n"
	"      --netns NAME       run in network namespace /run/netns/NAME (interfaces are\n"
	"                         looked up and attached there)\n"
	"      --format F         apply: text (default), pb-snapshot or pb-delta (protobuf\n"
	"                         NodePolicy / NodePolicyDelta)\n"
	"      --policy-max N     policy map entries per generation (first load; default 65536)\n"
	"      --ipcache-max N    ipcache prefixes per generation (default 65536)\n"
	"      --endpoints-max N  endpoints per generation (default 1024)\n"
	"      --ct-max N         conntrack entries (default 262144)\n"
	"      --flows-max N      flow counters between drains (default 65536)\n"
	"      --events-rate N    deny events per second per CPU (default 100)\n"
	"  -v, --log-level LEVEL  err, warning, notice (default), info or debug\n"
	"  -h, --help             this text\n"
	"\n"
	"exit status: 0 success, 1 failure (the message says why), 2 usage error\n";

struct dp_cli {
	struct agent_dp_opts o;
	const char *netns;
	const char *format;
	bool json;
	long count;
	long timeout_s;
	char hostname[256];
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bulkhead-agent dataplane: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'bulkhead-agent dataplane --help'.\n");
	return 2;
}

static int parse_size(const char *opt, const char *s, uint32_t *out)
{
	uint64_t v;

	if (bh_parse_u64(s, UINT32_MAX, &v) || v == 0) {
		fprintf(stderr, "bulkhead-agent dataplane: %s \"%s\": want a number from 1 to %u\n",
			opt, s, UINT32_MAX);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static int enter_netns(const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bulkhead-agent dataplane: network namespace %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (setns(fd, CLONE_NEWNET) < 0) {
		fprintf(stderr, "bulkhead-agent dataplane: entering %s: %s\n", path,
			strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static const char *verdict_name(unsigned int v)
{
	switch (v) {
	case BH_VERDICT_ALLOW:
		return "allow";
	case BH_VERDICT_DENY:
		return "deny";
	case BH_VERDICT_WOULD_DENY:
		return "would-deny";
	default:
		return "none";
	}
}

/* ---- apply --------------------------------------------------------------------------------- */

/* Reads and decodes a rule-set file. On success exactly one of *np / *delta is set. */
static int load_ruleset(struct dp_cli *c, const char *file, Bulkhead__NodePolicy **np,
			Bulkhead__NodePolicyDelta **delta)
{
	struct bh_error err = {0};
	char *buf = NULL;
	size_t len = 0;
	int rc;

	*np = NULL;
	*delta = NULL;
	rc = bh_read_file(file, AGENT_RULESET_MAX_BYTES, &buf, &len);
	if (rc) {
		fprintf(stderr, "bulkhead-agent dataplane: reading %s: %s\n", file,
			rc == -EFBIG ? "larger than 256 MiB" : bh_strerror(rc));
		return 1;
	}
	if (strcmp(c->format, "text") != 0 && len == 0) {
		/* an empty protobuf decodes as an empty rule set: never what anyone meant */
		bh_error_set(&err, -EINVAL, "%s: empty file", file);
	} else if (strcmp(c->format, "pb-snapshot") == 0) {
		*np = bulkhead__node_policy__unpack(NULL, len, (const uint8_t *)buf);
		if (!*np)
			bh_error_set(&err, -EINVAL, "%s: not a protobuf NodePolicy", file);
	} else if (strcmp(c->format, "pb-delta") == 0) {
		*delta = bulkhead__node_policy_delta__unpack(NULL, len, (const uint8_t *)buf);
		if (!*delta)
			bh_error_set(&err, -EINVAL, "%s: not a protobuf NodePolicyDelta", file);
	} else {
		agent_ruleset_parse(buf, len, file, np, delta, &err);
	}
	free(buf);
	if (err.code) {
		fprintf(stderr, "bulkhead-agent dataplane: %s\n", err.msg);
		return 1;
	}
	return 0;
}

static int do_apply(struct agent_dp *dp, Bulkhead__NodePolicy *np,
		    Bulkhead__NodePolicyDelta *delta)
{
	struct bh_error err = {0};

	if (np)
		agent_dp_apply_snapshot(dp, np, &err);
	else
		agent_dp_apply_delta(dp, delta, &err);
	if (err.code) {
		fprintf(stderr, "bulkhead-agent dataplane: apply failed, revision %" PRIu64
				" still enforcing: %s\n",
			agent_dp_revision(dp), err.msg);
		return 1;
	}
	printf("revision %" PRIu64 " enforcing\n", agent_dp_revision(dp));
	/* The new revision is enforcing either way; the standby catches up on the next apply. */
	if (agent_dp_settle(dp, &err))
		fprintf(stderr, "bulkhead-agent dataplane: warning: the standby generation did not "
				"catch up (%s); the next apply will resync it\n",
			err.msg);
	return 0;
}

/* ---- show ---------------------------------------------------------------------------------- */

static const char *const stat_names[BH_STAT_NR] = {
	[BH_STAT_EVENTS_SENT] = "events_sent",
	[BH_STAT_EVENTS_RATELIMITED] = "events_ratelimited",
	[BH_STAT_EVENTS_RINGBUF_FULL] = "events_ringbuf_full",
	[BH_STAT_FLOWS_FULL] = "flows_map_full",
	[BH_STAT_MALFORMED] = "malformed",
	[BH_STAT_UNMANAGED] = "unmanaged",
	[BH_STAT_CT_CREATE_FAILED] = "ct_create_failed",
};

static int do_show(struct agent_dp *dp, struct dp_cli *c)
{
	struct agent_dp_info info;
	int rc = agent_dp_info(dp, &info);

	if (rc) {
		fprintf(stderr, "bulkhead-agent dataplane: reading datapath state: %s\n",
			bh_strerror(rc));
		return 1;
	}
	if (c->json) {
		printf("{\"node\":\"%s\",\"revision\":%" PRIu64 ",\"epoch\":%" PRIu64
		       ",\"active_generation\":%u,\"standby_synced\":%s,\"maps\":{",
		       c->o.node, info.revision, info.epoch, info.active_gen,
		       info.standby_synced ? "true" : "false");
		for (int m = 0; m < AGENT_DP_NMAPS; m++)
			printf("%s\"%s\":{\"used\":%u,\"max\":%u,\"memlock\":%" PRIu64 "}",
			       m ? "," : "", info.maps[m].name, info.maps[m].used, info.maps[m].max,
			       info.maps[m].memlock);
		printf("},\"counters\":{");
		for (int s = 0; s < BH_STAT_NR; s++)
			printf("%s\"%s\":%" PRIu64, s ? "," : "", stat_names[s], info.stats[s]);
		printf("}}\n");
		return 0;
	}
	printf("node       %s\n", c->o.node);
	printf("revision   %" PRIu64 "\n", info.revision);
	printf("epoch      %" PRIu64 " (generation %u active, standby %s)\n", info.epoch,
	       info.active_gen, info.standby_synced ? "in sync" : "catching up");
	printf("\n%-10s %10s %10s %6s %12s\n", "MAP", "USED", "MAX", "FILL", "KERNEL-MEM");
	for (int m = 0; m < AGENT_DP_NMAPS; m++)
		printf("%-10s %10u %10u %5.1f%% %11.1fM\n", info.maps[m].name, info.maps[m].used,
		       info.maps[m].max,
		       info.maps[m].max ? 100.0 * info.maps[m].used / info.maps[m].max : 0.0,
		       info.maps[m].memlock / 1048576.0);
	printf("\n");
	for (int s = 0; s < BH_STAT_NR; s++)
		printf("%-22s %" PRIu64 "\n", stat_names[s], info.stats[s]);
	return 0;
}

/* ---- flows and events ---------------------------------------------------------------------- */

static int print_flow(const struct agent_dp_flow *f, void *ctx)
{
	const struct dp_cli *c = ctx;
	char pb[8], t1[32], t2[32];
	time_t first = (time_t)(bh_mono_ns_to_unix_ns(f->val.first_seen) / 1000000000ull);
	time_t last = (time_t)(bh_mono_ns_to_unix_ns(f->val.last_seen) / 1000000000ull);
	struct tm tm;

	if (c->json) {
		printf("{\"src\":%u,\"dst\":%u,\"proto\":%u,\"port\":%u,\"direction\":\"%s\","
		       "\"verdict\":\"%s\",\"rule\":%u,\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"first_seen\":%" PRIu64 ",\"last_seen\":%" PRIu64 "}\n",
		       f->key.src_id, f->key.dst_id, f->key.proto, f->key.port,
		       f->key.dir == BH_DIR_INGRESS ? "ingress" : "egress",
		       verdict_name(f->key.verdict), f->key.rule_id, (uint64_t)f->val.packets,
		       (uint64_t)f->val.bytes, bh_mono_ns_to_unix_ns(f->val.first_seen),
		       bh_mono_ns_to_unix_ns(f->val.last_seen));
		return 0;
	}
	strftime(t1, sizeof(t1), "%H:%M:%S", localtime_r(&first, &tm));
	strftime(t2, sizeof(t2), "%H:%M:%S", localtime_r(&last, &tm));
	printf("%-8u %-8u %-6s %-6u %-8s %-11s %-8u %10" PRIu64 " %12" PRIu64 " %s %s\n",
	       f->key.src_id, f->key.dst_id, bh_ip_proto_name(f->key.proto, pb, sizeof(pb)), f->key.port,
	       f->key.dir == BH_DIR_INGRESS ? "ingress" : "egress", verdict_name(f->key.verdict),
	       f->key.rule_id, (uint64_t)f->val.packets, (uint64_t)f->val.bytes, t1, t2);
	return 0;
}

static int do_flows(struct agent_dp *dp, struct dp_cli *c)
{
	int n;

	if (!c->json)
		printf("%-8s %-8s %-6s %-6s %-8s %-11s %-8s %10s %12s %-8s %s\n", "SRC", "DST",
		       "PROTO", "PORT", "DIR", "VERDICT", "RULE", "PACKETS", "BYTES", "FIRST",
		       "LAST");
	n = agent_dp_flows_drain(dp, print_flow, c);
	if (n < 0) {
		fprintf(stderr, "bulkhead-agent dataplane: draining flows: %s\n", bh_strerror(n));
		return 1;
	}
	return 0;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int print_event(const struct bh_event *e, void *ctx)
{
	const struct dp_cli *c = ctx;
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], pb[8], ifn[IF_NAMESIZE] = "?";
	int alen = e->family == 2 ? 4 : 16;

	if_indextoname(e->ifindex, ifn);
	bh_format_addr(e->saddr, alen, s, sizeof(s));
	bh_format_addr(e->daddr, alen, d, sizeof(d));
	if (c->json)
		printf("{\"ts\":%" PRIu64 ",\"ifname\":\"%s\",\"src\":\"%s\",\"sport\":%u,"
		       "\"dst\":\"%s\",\"dport\":%u,\"proto\":%u,\"direction\":\"%s\","
		       "\"verdict\":\"%s\",\"rule\":%u,\"local\":%u,\"remote\":%u,\"reason\":%d}\n",
		       bh_mono_ns_to_unix_ns(e->ts), ifn, s, e->sport, d, e->dport, e->proto,
		       e->dir == BH_DIR_INGRESS ? "ingress" : "egress", verdict_name(e->verdict),
		       e->rule_id, e->local_id, e->remote_id, e->reason);
	else
		printf("%s %s %s %s:%u -> %s:%u %s rule %u (local %u, remote %u, reason %d)\n",
		       verdict_name(e->verdict), ifn, e->dir == BH_DIR_INGRESS ? "ingress" : "egress",
		       s, e->sport, d, e->dport, bh_ip_proto_name(e->proto, pb, sizeof(pb)), e->rule_id,
		       e->local_id, e->remote_id, e->reason);
	fflush(stdout);
	return 0;
}

static int do_events(struct agent_dp *dp, struct dp_cli *c)
{
	uint64_t deadline = c->timeout_s > 0 ? bh_now_mono_ns() + (uint64_t)c->timeout_s * 1000000000ull
					     : 0;
	long seen = 0;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop && (c->count <= 0 || seen < c->count)) {
		int n = agent_dp_events_poll(dp, 200, print_event, c);

		if (n < 0) {
			fprintf(stderr, "bulkhead-agent dataplane: reading events: %s\n",
				bh_strerror(n));
			return 1;
		}
		seen += n;
		if (deadline && bh_now_mono_ns() > deadline)
			break;
	}
	return 0;
}

static void free_ruleset(Bulkhead__NodePolicy *np, Bulkhead__NodePolicyDelta *delta)
{
	if (np)
		bulkhead__node_policy__free_unpacked(np, NULL);
	if (delta)
		bulkhead__node_policy_delta__free_unpacked(delta, NULL);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

int cmd_dataplane(int argc, char **argv)
{
	enum {
		OPT_PIN_ROOT = 256, OPT_NETNS, OPT_FORMAT, OPT_POLICY_MAX, OPT_IPCACHE_MAX,
		OPT_ENDPOINTS_MAX, OPT_CT_MAX, OPT_FLOWS_MAX, OPT_EVENTS_RATE, OPT_JSON, OPT_COUNT,
		OPT_TIMEOUT,
	};
	static const struct option long_opts[] = {
		{"node", required_argument, NULL, 'n'},
		{"pin-root", required_argument, NULL, OPT_PIN_ROOT},
		{"netns", required_argument, NULL, OPT_NETNS},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"policy-max", required_argument, NULL, OPT_POLICY_MAX},
		{"ipcache-max", required_argument, NULL, OPT_IPCACHE_MAX},
		{"endpoints-max", required_argument, NULL, OPT_ENDPOINTS_MAX},
		{"ct-max", required_argument, NULL, OPT_CT_MAX},
		{"flows-max", required_argument, NULL, OPT_FLOWS_MAX},
		{"events-rate", required_argument, NULL, OPT_EVENTS_RATE},
		{"json", no_argument, NULL, OPT_JSON},
		{"count", required_argument, NULL, OPT_COUNT},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"log-level", required_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct dp_cli c = {.format = "text"};
	Bulkhead__NodePolicy *np = NULL;
	Bulkhead__NodePolicyDelta *delta = NULL;
	struct bh_error err = {0};
	struct agent_dp *dp = NULL;
	const char *verb;
	uint64_t v;
	int opt, rc, level;

	while ((opt = getopt_long(argc, argv, "+n:v:h", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			c.o.node = optarg;
			break;
		case OPT_PIN_ROOT:
			c.o.pin_root = optarg;
			break;
		case OPT_NETNS:
			c.netns = optarg;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "text") && strcmp(optarg, "pb-snapshot") &&
			    strcmp(optarg, "pb-delta"))
				return usage_error("--format \"%s\": want text, pb-snapshot or "
						   "pb-delta",
						   optarg);
			c.format = optarg;
			break;
		case OPT_POLICY_MAX:
			if (parse_size("--policy-max", optarg, &c.o.policy_max))
				return 2;
			break;
		case OPT_IPCACHE_MAX:
			if (parse_size("--ipcache-max", optarg, &c.o.ipcache_max))
				return 2;
			break;
		case OPT_ENDPOINTS_MAX:
			if (parse_size("--endpoints-max", optarg, &c.o.endpoints_max))
				return 2;
			break;
		case OPT_CT_MAX:
			if (parse_size("--ct-max", optarg, &c.o.ct_max))
				return 2;
			break;
		case OPT_FLOWS_MAX:
			if (parse_size("--flows-max", optarg, &c.o.flows_max))
				return 2;
			break;
		case OPT_EVENTS_RATE:
			if (parse_size("--events-rate", optarg, &c.o.events_per_sec))
				return 2;
			break;
		case OPT_JSON:
			c.json = true;
			break;
		case OPT_COUNT:
			if (bh_parse_u64(optarg, LONG_MAX, &v))
				return usage_error("--count \"%s\": want a number", optarg);
			c.count = (long)v;
			break;
		case OPT_TIMEOUT:
			if (bh_parse_u64(optarg, 86400, &v))
				return usage_error("--timeout \"%s\": want seconds", optarg);
			c.timeout_s = (long)v;
			break;
		case 'v':
			level = bh_log_level_parse(optarg);
			if (level < 0)
				return usage_error("--log-level \"%s\": want err, warning, notice, "
						   "info or debug",
						   optarg);
			bh_log_level = level;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs("Try 'bulkhead-agent dataplane --help'.\n", stderr);
			return 2;
		}
	}
	if (optind >= argc)
		return usage_error("%s", "missing action: apply, show, flows, events or detach");
	verb = argv[optind++];
	/* Options may also follow the action ("flows --json"). */
	while ((opt = getopt_long(argc, argv, "+n:v:h", long_opts, NULL)) != -1) {
		if (opt == OPT_JSON)
			c.json = true;
		else if (opt == OPT_COUNT && bh_parse_u64(optarg, LONG_MAX, &v) == 0)
			c.count = (long)v;
		else if (opt == OPT_TIMEOUT && bh_parse_u64(optarg, 86400, &v) == 0)
			c.timeout_s = (long)v;
		else if (opt == 'h') {
			fputs(usage_text, stdout);
			return 0;
		} else
			return usage_error("option not valid after the action: %s",
					   argv[optind - 1]);
	}
	if (strcmp(verb, "apply") == 0 && argc - optind != 1)
		return usage_error("%s", "apply wants one FILE (or - for stdin)");
	if (strcmp(verb, "apply") != 0 && argc - optind != 0)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (strcmp(verb, "apply") && strcmp(verb, "show") && strcmp(verb, "flows") &&
	    strcmp(verb, "events") && strcmp(verb, "detach"))
		return usage_error("unknown action \"%s\": want apply, show, flows, events or "
				   "detach",
				   verb);
	if (!c.o.node) {
		if (gethostname(c.hostname, sizeof(c.hostname) - 1) < 0)
			return usage_error("%s", "no --node and no host name");
		c.o.node = c.hostname;
	}
	if (c.netns && enter_netns(c.netns))
		return 1;
	bh_log_route_libbpf();
	c.o.load = strcmp(verb, "apply") == 0;
	/* a bad file changes nothing, not even which programs are loaded */
	if (c.o.load && load_ruleset(&c, argv[optind], &np, &delta))
		return 1;
	rc = agent_dp_open(&dp, &c.o, &err);
	if (rc) {
		if (strcmp(verb, "detach") == 0 && rc == -ENOENT) {
			printf("nothing to detach for node %s\n", c.o.node);
			return 0;
		}
		fprintf(stderr, "bulkhead-agent dataplane: %s\n", err.msg);
		free_ruleset(np, delta);
		return 1;
	}
	if (strcmp(verb, "apply") == 0)
		rc = do_apply(dp, np, delta);
	else if (strcmp(verb, "show") == 0)
		rc = do_show(dp, &c);
	else if (strcmp(verb, "flows") == 0)
		rc = do_flows(dp, &c);
	else if (strcmp(verb, "events") == 0)
		rc = do_events(dp, &c);
	else {
		rc = agent_dp_detach(dp, &err) ? 1 : 0;
		if (rc)
			fprintf(stderr, "bulkhead-agent dataplane: detach: %s\n", err.msg);
		else
			printf("detached node %s\n", c.o.node);
	}
	agent_dp_close(dp);
	free_ruleset(np, delta);
	return rc;
}
