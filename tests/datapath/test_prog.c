// SPDX-License-Identifier: Apache-2.0
/*
 * BPF_PROG_TEST_RUN table tests of the datapath programs: every verdict path, through the real
 * programs and maps loaded into this kernel, with rule sets applied by agent/dataplane.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bulkhead/util.h"
#include "dptest.h"
#include "ruleset.h"
#include "tap.h"

#define IN  BH_DIR_INGRESS
#define OUT BH_DIR_EGRESS
#define OK_ TC_ACT_OK_
#define DROP TC_ACT_SHOT_

#define LOCAL4 "198.18.0.1"
#define LOCAL6 "fd00:b1::1"

/* The node's base rule set: one endpoint (lo, identity 1000), default deny both ways. */
static const char base_rules[] =
	"revision 1\n"
	"endpoint lo if=lo id=1000 ingress=deny:100 egress=deny:101\n"
	"ipcache 198.18.1.0/24 2000\n"		/* a CIDR peer */
	"ipcache 198.18.1.7/32 2001\n"		/* a workload inside it */
	"ipcache fd00:b1::/64 2100\n"
	"ipcache fd00:b1::7/128 2101\n"
	"rule 1000 ingress 2001 tcp/80 allow 20\n"	/* exact */
	"rule 1000 ingress 2001 udp allow 21\n"		/* any port of a protocol */
	"rule 1000 ingress any tcp/443 allow 22\n"	/* any peer */
	"rule 1000 ingress 2000 tcp/8000-8099 allow 23\n" /* CIDR peer, port range */
	"rule 1000 ingress any tcp/8050 deny 24\n"	/* a deny inside an allowed range */
	"rule 1000 ingress 2001 icmp/8 allow 25\n"
	"rule 1000 ingress 2101 tcp/22 allow 26\n"
	"rule 1000 ingress 2100 icmp6/128 allow 27\n"
	"rule 1000 ingress 2001 47 allow 28\n"		/* GRE, by protocol number */
	"rule 1000 egress 2001 tcp/9000 allow 29\n";

static struct dpt T;

static int setup(const char *rules, const struct agent_dp_opts *opts)
{
	struct bh_error err = {0};

	if (dpt_open(&T, "prog", opts))
		return -1;
	if (dpt_apply(&T, rules, &err)) {
		fprintf(stderr, "    apply: %s\n", err.msg);
		dpt_close(&T);
		return -1;
	}
	return 0;
}

static struct pkt_spec tcp4(const char *src, uint16_t dport, uint8_t flags)
{
	return (struct pkt_spec){.src = src, .dst = LOCAL4, .proto = 6, .sport = 40000,
				 .dport = dport, .tcp_flags = flags};
}

#define EXPECT(hook, spec, want)                                                                   \
	do {                                                                                       \
		struct pkt_spec s_ = (spec);                                                       \
		int r_ = dpt_run(&T, (hook), &s_);                                                 \
		if (r_ != (want)) {                                                                \
			dpt_close(&T);                                                             \
			T_FAIL("%s -> %s proto %u port %u: got %d, want %d", s_.src, s_.dst,       \
			       s_.proto, s_.dport, r_, (want));                                    \
		}                                                                                  \
	} while (0)

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			dpt_close(&T);                                                             \
			T_FAIL(__VA_ARGS__);                                                       \
		}                                                                                  \
	} while (0)

/* ---- policy lookups ------------------------------------------------------------------------ */

static int t_exact(void)
{
	uint64_t n;

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.7", 81, TCPF_SYN), DROP);
	EXPECT(IN, tcp4("198.18.1.8", 80, TCPF_SYN), DROP); /* same /24, other identity */
	n = dpt_flow_packets(&T, 20, BH_VERDICT_ALLOW);
	CHECK(n == 1, "rule 20 counted %llu packets, want 1", (unsigned long long)n);
	n = dpt_flow_packets(&T, 100, BH_VERDICT_DENY);
	CHECK(n == 0, "flows were drained: want 0, got %llu", (unsigned long long)n);
	dpt_close(&T);
	return 0;
}

static int t_port_wildcard(void)
{
	struct pkt_spec u = {.src = "198.18.1.7", .dst = LOCAL4, .proto = 17, .sport = 5000,
			     .dport = 5353};

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, u, OK_);
	u.dport = 1;
	EXPECT(IN, u, OK_);
	u.src = "198.18.1.9"; /* other identity: no udp rule */
	EXPECT(IN, u, DROP);
	CHECK(dpt_flow_packets(&T, 21, BH_VERDICT_ALLOW) == 2, "rule 21 should count 2");
	dpt_close(&T);
	return 0;
}

static int t_peer_wildcard(void)
{
	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, tcp4("198.18.9.9", 443, TCPF_SYN), OK_);  /* world */
	EXPECT(IN, tcp4("198.18.1.7", 443, TCPF_SYN), OK_);  /* a known identity too */
	EXPECT(IN, tcp4("198.18.9.9", 444, TCPF_SYN), DROP);
	CHECK(dpt_flow_packets(&T, 22, BH_VERDICT_ALLOW) == 2, "rule 22 should count 2");
	dpt_close(&T);
	return 0;
}

static int t_cidr_peer_and_range_edges(void)
{
	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, tcp4("198.18.1.50", 8000, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.50", 8099, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.50", 8049, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.50", 8051, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.50", 7999, TCPF_SYN), DROP);
	EXPECT(IN, tcp4("198.18.1.50", 8100, TCPF_SYN), DROP);
	EXPECT(IN, tcp4("198.18.2.50", 8000, TCPF_SYN), DROP); /* outside the CIDR: world */
	/* 198.18.1.7 has its own identity (longest prefix): the CIDR rule does not cover it */
	EXPECT(IN, tcp4("198.18.1.7", 8000, TCPF_SYN), DROP);
	CHECK(dpt_flow_packets(&T, 23, BH_VERDICT_ALLOW) == 4, "rule 23 should count 4");
	dpt_close(&T);
	return 0;
}

static int t_deny_wins(void)
{
	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, tcp4("198.18.1.50", 8050, TCPF_SYN), DROP);
	CHECK(dpt_flow_packets(&T, 24, BH_VERDICT_DENY) == 1, "deny rule 24 should name it");
	dpt_close(&T);
	return 0;
}

static int t_default_allow_without_policy(void)
{
	static const char rules[] = "revision 1\n"
				    "endpoint lo if=lo id=1000 ingress=allow:102 egress=allow:103\n";

	if (setup(rules, NULL))
		return 1;
	EXPECT(IN, tcp4("198.18.9.9", 81, TCPF_SYN), OK_);
	CHECK(dpt_flow_packets(&T, 102, BH_VERDICT_ALLOW) == 1,
	      "default allow should be reported as rule 102");
	dpt_close(&T);
	return 0;
}

static int t_observe_mode(void)
{
	uint64_t n;

	if (setup("revision 1\n"
		  "endpoint lo if=lo id=1000 mode=observe ingress=deny:100 egress=deny:101\n"
		  "ipcache 198.18.1.7/32 2001\n"
		  "rule 1000 ingress 2001 tcp/80 allow 20\n",
		  NULL))
		return 1;
	EXPECT(IN, tcp4("198.18.9.9", 81, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.9.9", 81, TCPF_ACK), OK_);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), OK_);
	n = dpt_flow_packets(&T, 100, BH_VERDICT_WOULD_DENY);
	CHECK(n == 2, "would-deny packets: got %llu, want 2", (unsigned long long)n);
	dpt_close(&T);
	return 0;
}

/* ---- protocols ----------------------------------------------------------------------------- */

static int t_ipv6(void)
{
	struct pkt_spec s = {.src = "fd00:b1::7", .dst = LOCAL6, .proto = 6, .sport = 40000,
			     .dport = 22, .tcp_flags = TCPF_SYN};
	struct pkt_spec e = {.src = "fd00:b1::8", .dst = LOCAL6, .proto = 58, .icmp_type = 128,
			     .sport = 77};

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, s, OK_);
	s.src = "fd00:b1::8";
	EXPECT(IN, s, DROP);
	EXPECT(IN, e, OK_);
	e.icmp_type = 129; /* an echo reply nobody asked for */
	e.sport = 78;
	EXPECT(IN, e, DROP);
	CHECK(dpt_flow_packets(&T, 26, BH_VERDICT_ALLOW) == 1, "rule 26 should count 1");
	dpt_close(&T);
	return 0;
}

static int t_icmp_echo_and_reply(void)
{
	struct pkt_spec req = {.src = "198.18.1.7", .dst = LOCAL4, .proto = 1, .icmp_type = 8,
			       .sport = 99};
	struct pkt_spec rep = {.src = LOCAL4, .dst = "198.18.1.7", .proto = 1, .icmp_type = 0,
			       .sport = 99};

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(OUT, rep, DROP); /* no request yet: egress is default deny */
	EXPECT(IN, req, OK_);
	EXPECT(OUT, rep, OK_); /* the reply, through conntrack */
	rep.sport = 100;       /* another identifier: another flow */
	EXPECT(OUT, rep, DROP);
	req.src = "198.18.1.8";
	EXPECT(IN, req, DROP);
	dpt_close(&T);
	return 0;
}

static int t_icmp_error_related(void)
{
	struct pkt_spec flow = tcp4("198.18.1.7", 80, TCPF_SYN);
	struct pkt_spec inner = {.src = "198.18.1.7", .dst = LOCAL4, .proto = 6, .sport = 40000,
				 .dport = 80};
	struct pkt_spec err = {.src = LOCAL4, .dst = "198.18.1.7", .proto = 1, .icmp_type = 3,
			       .inner = &inner};
	struct pkt_spec other_inner = inner, other = err;

	other_inner.dport = 81;
	other.inner = &other_inner;
	if (setup(base_rules, NULL))
		return 1;
	EXPECT(OUT, err, DROP); /* no flow yet */
	EXPECT(IN, flow, OK_);
	EXPECT(OUT, err, OK_);	 /* port unreachable about the allowed flow */
	EXPECT(OUT, other, DROP); /* about a flow that was never allowed */
	dpt_close(&T);
	return 0;
}

static int t_nd_always_passes(void)
{
	struct pkt_spec ns = {.src = "fd00:b1::8", .dst = LOCAL6, .proto = 58, .icmp_type = 135};
	struct pkt_spec mld = {.src = "fe80::1", .dst = "ff02::16", .proto = 58, .icmp_type = 143};

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, ns, OK_);
	ns.icmp_type = 136;
	EXPECT(OUT, ns, OK_);
	EXPECT(OUT, mld, OK_);
	CHECK(dpt_flow_packets(&T, BH_RULE_BUILTIN_ND, BH_VERDICT_ALLOW) == 3,
	      "ND/MLD should be reported as builtin rule %d", BH_RULE_BUILTIN_ND);
	dpt_close(&T);
	return 0;
}

static int t_conntrack_reply(void)
{
	struct pkt_spec synack = {.src = LOCAL4, .dst = "198.18.1.7", .proto = 6, .sport = 80,
				  .dport = 40000, .tcp_flags = TCPF_SYN | TCPF_ACK};

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(OUT, synack, DROP);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), OK_);
	EXPECT(OUT, synack, OK_);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_ACK), OK_);
	synack.dport = 40001; /* another client port: not that flow */
	EXPECT(OUT, synack, DROP);
	/* replies are counted on the flow they belong to */
	CHECK(dpt_flow_packets(&T, 20, BH_VERDICT_ALLOW) == 3, "flow of rule 20: 3 packets");
	dpt_close(&T);
	return 0;
}

static int t_egress_rule(void)
{
	struct pkt_spec out = {.src = LOCAL4, .dst = "198.18.1.7", .proto = 6, .sport = 40000,
			       .dport = 9000, .tcp_flags = TCPF_SYN};

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(OUT, out, OK_);
	out.dport = 9001;
	EXPECT(OUT, out, DROP);
	CHECK(dpt_flow_packets(&T, 101, BH_VERDICT_DENY) == 1, "egress default deny is rule 101");
	dpt_close(&T);
	return 0;
}

static int t_veth_attach_reverses_hooks(void)
{
	struct pkt_spec out = {.src = LOCAL4, .dst = "198.18.1.7", .proto = 6, .sport = 40000,
			       .dport = 9000, .tcp_flags = TCPF_SYN};

	if (setup("revision 1\n"
		  "endpoint lo if=lo id=1000 attach=veth ingress=deny:100 egress=deny:101\n"
		  "ipcache 198.18.1.7/32 2001\n"
		  "rule 1000 egress 2001 tcp/9000 allow 29\n",
		  NULL))
		return 1;
	/* host side of a veth: what the workload sends arrives on the tc ingress hook */
	EXPECT(IN, out, OK_);
	EXPECT(OUT, out, DROP);
	dpt_close(&T);
	return 0;
}

static int t_unknown_protocol(void)
{
	struct pkt_spec gre = {.src = "198.18.1.7", .dst = LOCAL4, .proto = 47, .payload = 20};

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, gre, OK_);
	gre.proto = 50; /* ESP: no rule */
	EXPECT(IN, gre, DROP);
	gre.proto = 47;
	gre.src = "198.18.1.8";
	EXPECT(IN, gre, DROP);
	CHECK(dpt_flow_packets(&T, 28, BH_VERDICT_ALLOW) == 1, "rule 28 should count 1");
	dpt_close(&T);
	return 0;
}

static int t_vlan_tag_is_no_bypass(void)
{
	struct pkt_spec s = tcp4("198.18.1.7", 81, TCPF_SYN);

	s.vlan = 1;
	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, s, DROP);
	s.dport = 80;
	EXPECT(IN, s, OK_);
	dpt_close(&T);
	return 0;
}

/* ---- fragments ----------------------------------------------------------------------------- */

static int t_fragments(void)
{
	struct pkt_spec first = {.src = "198.18.1.7", .dst = LOCAL4, .proto = 17, .sport = 5000,
				 .dport = 53, .payload = 64, .more_frags = 1, .frag_id = 4242};
	struct pkt_spec later = first;
	struct pkt_spec first6 = {.src = "fd00:b1::8", .dst = LOCAL6, .proto = 6, .sport = 4000,
				  .dport = 22, .payload = 64, .more_frags = 1, .frag_id = 77,
				  .tcp_flags = TCPF_SYN};
	struct pkt_spec later6 = first6;

	later.frag_off = 9;
	later.more_frags = 0;
	later6.frag_off = 9;
	later6.more_frags = 0;
	if (setup(base_rules, NULL))
		return 1;
	/* a later fragment before its first: under default deny it is dropped */
	EXPECT(IN, later, DROP);
	EXPECT(IN, first, OK_);
	EXPECT(IN, later, OK_); /* follows its first fragment */
	later.frag_id = 4243;	/* another datagram */
	EXPECT(IN, later, DROP);
	/* IPv6: the first fragment is denied (no rule for ::8 on tcp/22), so is the rest */
	EXPECT(IN, first6, DROP);
	EXPECT(IN, later6, DROP);
	first6.src = later6.src = "fd00:b1::7";
	EXPECT(IN, first6, OK_);
	EXPECT(IN, later6, OK_);
	CHECK(dpt_flow_packets(&T, BH_RULE_FRAG_UNKNOWN, BH_VERDICT_DENY) == 2,
	      "orphan fragments are reported as rule %d", BH_RULE_FRAG_UNKNOWN);
	dpt_close(&T);
	return 0;
}

/* ---- malformed input ----------------------------------------------------------------------- */

static int t_malformed(void)
{
	struct pkt_spec s = tcp4("198.18.1.7", 80, TCPF_SYN);
	uint8_t buf[PKT_MAX];
	size_t len;
	struct agent_dp_info info;

	if (setup(base_rules, NULL))
		return 1;
	len = pkt_build(buf, &s);
	/* IPv4 header longer than the packet (IHL 15 with 20 bytes present). BPF_PROG_TEST_RUN
	 * refuses frames shorter than a full IPv4 header, so IHL is how a short header gets here. */
	buf[14] = 0x4f;
	CHECK(dpt_run_raw(&T, IN, buf, 14 + 20) == DROP, "IPv4 header past the end must drop");
	buf[14] = 0x45;
	/* TCP header cut short: an allowed port must not pass without its header */
	buf[16] = 0, buf[17] = 20 + 6;
	CHECK(dpt_run_raw(&T, IN, buf, 14 + 20 + 6) == DROP, "truncated TCP header must drop");
	/* total length claims more than the packet holds */
	len = pkt_build(buf, &s);
	buf[16] = 0x05, buf[17] = 0xdc;
	CHECK(dpt_run_raw(&T, IN, buf, len) == DROP, "tot_len past the end must drop");
	/* IHL below 5 */
	len = pkt_build(buf, &s);
	buf[14] = 0x44;
	CHECK(dpt_run_raw(&T, IN, buf, len) == DROP, "ihl 4 must drop");
	/* IPv4 version field says 6 under an IPv4 ethertype */
	len = pkt_build(buf, &s);
	buf[14] = 0x65;
	CHECK(dpt_run_raw(&T, IN, buf, len) == DROP, "wrong version must drop");
	/* IPv6 with a chain of 9 hop-by-hop headers */
	{
		struct pkt_spec s6 = {.src = "fd00:b1::7", .dst = LOCAL6, .proto = 6, .dport = 22};
		uint8_t *ip;

		memset(buf, 0, sizeof(buf));
		len = pkt_build(buf, &s6);
		ip = buf + 14;
		ip[6] = 0; /* hop-by-hop */
		for (int i = 0; i < 9; i++) {
			uint8_t *h = buf + 14 + 40 + i * 8;

			h[0] = i == 8 ? 6 : 0;
			h[1] = 0;
		}
		len = 14 + 40 + 9 * 8 + 20;
		ip[4] = 0, ip[5] = (uint8_t)(9 * 8 + 20);
		CHECK(dpt_run_raw(&T, IN, buf, len) == DROP, "9 extension headers must drop");
		/* an extension header whose length runs past the packet */
		ip[5] = 8 + 20;
		buf[14 + 40] = 6;
		buf[14 + 40 + 1] = 200;
		CHECK(dpt_run_raw(&T, IN, buf, 14 + 40 + 8 + 20) == DROP,
		      "extension header past the end must drop");
	}
	/* ARP passes: not IP */
	memset(buf, 0, 60);
	buf[12] = 0x08, buf[13] = 0x06;
	CHECK(dpt_run_raw(&T, IN, buf, 60) == OK_, "ARP must pass");
	/* garbage of every length: never anything but pass or drop, never a crash */
	srandom(1);
	for (int i = 0; i < 2000; i++) {
		size_t n = 14 + 40 + (size_t)(random() % 200);
		int r;

		for (size_t j = 0; j < n; j++)
			buf[j] = (uint8_t)random();
		if (i % 2)
			buf[12] = 0x08, buf[13] = 0x00, buf[14] = (uint8_t)(0x45 + (i % 3));
		else
			buf[12] = 0x86, buf[13] = 0xdd, buf[14] = 0x60;
		r = dpt_run_raw(&T, i % 2 ? IN : OUT, buf, n);
		CHECK(r == OK_ || r == DROP, "garbage #%d: verdict %d", i, r);
	}
	CHECK(agent_dp_info(T.dp, &info) == 0 && info.stats[BH_STAT_MALFORMED] >= 6,
	      "malformed counter %llu, want >= 6",
	      (unsigned long long)info.stats[BH_STAT_MALFORMED]);
	CHECK(dpt_flow_packets(&T, BH_RULE_MALFORMED, BH_VERDICT_DENY) >= 6,
	      "malformed drops are reported as rule %d", BH_RULE_MALFORMED);
	dpt_close(&T);
	return 0;
}

/* ---- generations, conntrack re-evaluation ------------------------------------------------ */

static int t_revoke_cuts_established(void)
{
	struct bh_error err = {0};

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_ACK), OK_);
	/* an unrelated change flips too: the flow is re-decided and still allowed */
	CHECK(dpt_apply(&T, "delta 1 2\n+rule 1000 ingress 2001 tcp/81 allow 30\n", &err) == 0,
	      "delta: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_ACK), OK_);
	CHECK(dpt_apply(&T, "delta 2 3\n-rule 1000 ingress 2001 tcp/80 allow 20\n", &err) == 0,
	      "delta: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_ACK), DROP);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_ACK), DROP);
	dpt_flow_packets(&T, 0, 0); /* drain */
	CHECK(dpt_apply(&T, "delta 3 4\n+rule 1000 ingress 2001 tcp/80 allow 31\n", &err) == 0,
	      "delta: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_ACK), OK_);
	CHECK(dpt_flow_packets(&T, 31, BH_VERDICT_ALLOW) == 1, "re-allowed under rule 31");
	dpt_close(&T);
	return 0;
}

static int count_event(const struct bh_event *e, void *ctx)
{
	uint32_t *want = ctx;

	if (e->rule_id == want[0] && e->reason == (int32_t)want[1])
		want[2]++;
	return 0;
}

static int t_deny_events(void)
{
	uint32_t want[3] = {100, (uint32_t)BH_REASON_POLICY, 0};

	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, tcp4("198.18.9.9", 81, TCPF_SYN), DROP);
	EXPECT(IN, tcp4("198.18.9.9", 82, TCPF_SYN), DROP);
	for (int i = 0; i < 10 && want[2] < 2; i++)
		agent_dp_events_poll(T.dp, 100, count_event, want);
	CHECK(want[2] == 2, "deny events for rule 100: got %u, want 2", want[2]);
	dpt_close(&T);
	return 0;
}

static int t_event_rate_limit(void)
{
	struct agent_dp_opts o = {.events_per_sec = 5};
	struct agent_dp_info info;
	uint32_t want[3] = {100, (uint32_t)BH_REASON_POLICY, 0};

	if (setup(base_rules, &o))
		return 1;
	for (int i = 0; i < 50; i++)
		EXPECT(IN, tcp4("198.18.9.9", 81, TCPF_SYN), DROP);
	for (int i = 0; i < 5; i++)
		agent_dp_events_poll(T.dp, 50, count_event, want);
	CHECK(agent_dp_info(T.dp, &info) == 0, "info");
	/* 2 CPUs: at most a burst of 5 per CPU; every drop is either sent or counted as not */
	CHECK(want[2] <= 10 && want[2] >= 1, "events sent %u, want 1..10", want[2]);
	CHECK(info.stats[BH_STAT_EVENTS_SENT] + info.stats[BH_STAT_EVENTS_RATELIMITED] +
			      info.stats[BH_STAT_EVENTS_RINGBUF_FULL] ==
		      50,
	      "sent %llu + rate-limited %llu + ringbuf-full %llu != 50",
	      (unsigned long long)info.stats[BH_STAT_EVENTS_SENT],
	      (unsigned long long)info.stats[BH_STAT_EVENTS_RATELIMITED],
	      (unsigned long long)info.stats[BH_STAT_EVENTS_RINGBUF_FULL]);
	CHECK(dpt_flow_packets(&T, 100, BH_VERDICT_DENY) == 50, "all 50 drops counted in flows");
	dpt_close(&T);
	return 0;
}

/* ---- apply failures ------------------------------------------------------------------------ */

static int t_overflow_changes_nothing(void)
{
	struct agent_dp_opts o = {.policy_max = 8};
	struct bh_error err = {0};
	char delta[2048];
	size_t n = 0;
	int rc;

	if (setup("revision 1\n"
		  "endpoint lo if=lo id=1000 ingress=deny:100 egress=deny:101\n"
		  "ipcache 198.18.1.7/32 2001\n"
		  "rule 1000 ingress 2001 tcp/80 allow 20\n"
		  "rule 1000 ingress 2001 tcp/81 allow 21\n",
		  &o))
		return 1;
	n += (size_t)snprintf(delta + n, sizeof(delta) - n,
			      "delta 1 2\n-rule 1000 ingress 2001 tcp/80 allow 20\n");
	for (int i = 0; i < 10; i++)
		n += (size_t)snprintf(delta + n, sizeof(delta) - n,
				      "+rule 1000 ingress 2001 tcp/%d allow %d\n", 1000 + i, 40 + i);
	rc = dpt_apply(&T, delta, &err);
	CHECK(rc == -ENOSPC, "overflowing delta: rc %d (%s), want -ENOSPC", rc, err.msg);
	CHECK(strstr(err.msg, "full") && strstr(err.msg, "policy"), "message: %s", err.msg);
	CHECK(agent_dp_revision(T.dp) == 1, "revision moved to %llu",
	      (unsigned long long)agent_dp_revision(T.dp));
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), OK_);   /* the removal did not happen */
	EXPECT(IN, tcp4("198.18.1.7", 1000, TCPF_SYN), DROP); /* nor the additions */
	/* and the datapath still takes a delta that fits */
	err = (struct bh_error){0};
	CHECK(dpt_apply(&T, "delta 1 2\n+rule 1000 ingress 2001 tcp/1000 allow 40\n", &err) == 0,
	      "delta after failure: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 1000, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), OK_);
	dpt_close(&T);
	return 0;
}

static int t_bad_deltas_rejected(void)
{
	struct bh_error err = {0};
	int rc;

	if (setup(base_rules, NULL))
		return 1;
	rc = dpt_apply(&T, "delta 5 6\n+rule 1000 ingress 2001 tcp/1 allow 40\n", &err);
	CHECK(rc == -ESTALE && strstr(err.msg, "snapshot"), "stale delta: %d %s", rc, err.msg);
	err = (struct bh_error){0};
	rc = dpt_apply(&T, "delta 1 2\n-rule 1000 ingress 2001 tcp/1 allow 40\n", &err);
	CHECK(rc == -ENOENT, "removing a missing rule: %d %s", rc, err.msg);
	err = (struct bh_error){0};
	rc = dpt_apply(&T, "delta 1 2\n+rule 1000 ingress 2001 tcp/77 allow 41\n"
			   "+rule 1000 ingress 2001 tcp/80 allow 42\n",
		       &err);
	CHECK(rc == -EEXIST, "adding an existing key: %d %s", rc, err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 77, TCPF_SYN), DROP); /* first half rolled back */
	err = (struct bh_error){0};
	rc = dpt_apply(&T, "revision 9\nendpoint lo if=lo id=1000 ingress=deny:1 egress=deny:2\n"
			   "rule 1000 ingress any tcp/10-20 allow 50\n"
			   "rule 1000 ingress any tcp/16-19 allow 51\n",
		       &err);
	CHECK(rc == -EEXIST && strstr(err.msg, "overlaps"), "overlap: %d %s", rc, err.msg);
	err = (struct bh_error){0};
	rc = dpt_apply(&T, "revision 9\nendpoint x if=bh-no-such0 id=1000\n", &err);
	CHECK(rc == -ENODEV && strstr(err.msg, "bh-no-such0"), "missing if: %d %s", rc, err.msg);
	CHECK(agent_dp_revision(T.dp) == 1, "revision changed");
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), OK_);
	dpt_close(&T);
	return 0;
}

static int t_snapshot_replaces(void)
{
	struct bh_error err = {0};
	struct agent_dp_info info;

	if (setup(base_rules, NULL))
		return 1;
	CHECK(dpt_apply(&T, "revision 2\n"
			    "endpoint lo if=lo id=1000 ingress=deny:100 egress=deny:101\n"
			    "ipcache 198.18.1.7/32 2001\n"
			    "rule 1000 ingress 2001 tcp/81 allow 60\n",
			    &err) == 0,
	      "snapshot: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), DROP);
	EXPECT(IN, tcp4("198.18.1.7", 81, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.9.9", 443, TCPF_SYN), DROP);
	CHECK(agent_dp_info(T.dp, &info) == 0 && info.maps[AGENT_DP_POLICY].used == 1 &&
		      info.maps[AGENT_DP_IPCACHE].used == 1 && info.revision == 2 &&
		      info.standby_synced,
	      "fill after snapshot: policy %u ipcache %u rev %llu synced %d",
	      info.maps[AGENT_DP_POLICY].used, info.maps[AGENT_DP_IPCACHE].used,
	      (unsigned long long)info.revision, info.standby_synced);
	/* a delta right after a snapshot is O(delta) again and lands */
	CHECK(dpt_apply(&T, "delta 2 3\n+rule 1000 ingress 2001 tcp/82 allow 61\n", &err) == 0,
	      "delta: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 82, TCPF_SYN), OK_);
	dpt_close(&T);
	return 0;
}

static int t_reopen_keeps_enforcing(void)
{
	struct agent_dp_opts o = {0};
	struct bh_error err = {0};
	struct agent_dp *again = NULL;

	if (setup(base_rules, NULL))
		return 1;
	CHECK(dpt_apply(&T, "delta 1 7\n+rule 1000 ingress 2001 tcp/81 allow 30\n", &err) == 0,
	      "delta: %s", err.msg);
	/* the applying process goes away (close, not detach), another opens the pins */
	agent_dp_close(T.dp);
	T.dp = NULL;
	o.node = T.node;
	CHECK(agent_dp_open(&again, &o, &err) == 0, "re-open without loading: %s", err.msg);
	CHECK(agent_dp_revision(again) == 7, "re-opened revision %llu, want 7",
	      (unsigned long long)agent_dp_revision(again));
	agent_dp_close(again);
	o.load = true;
	CHECK(agent_dp_open(&T.dp, &o, &err) == 0, "re-open with programs: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 81, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.7", 82, TCPF_SYN), DROP);
	CHECK(dpt_apply(&T, "delta 7 8\n-rule 1000 ingress 2001 tcp/81 allow 30\n", &err) == 0,
	      "delta after re-open: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 81, TCPF_SYN), DROP);
	dpt_close(&T);
	return 0;
}


/* ---- found in review: each of these was a bug ---------------------------------------------- */

static int t_crash_before_settle_same_revision(void)
{
	struct agent_dp_opts o = {0};
	struct bh_error err = {0};
	Bulkhead__NodePolicy *np;
	Bulkhead__NodePolicyDelta *d;
	static const char v2[] = "revision 7\n"
				 "endpoint lo if=lo id=1000 ingress=deny:100 egress=deny:101\n"
				 "ipcache 198.18.1.7/32 2001\n"
				 "rule 1000 ingress 2001 tcp/81 allow 21\n";

	if (setup("revision 7\n"
		  "endpoint lo if=lo id=1000 ingress=deny:100 egress=deny:101\n"
		  "ipcache 198.18.1.7/32 2001\n"
		  "rule 1000 ingress 2001 tcp/80 allow 20\n",
		  NULL))
		return 1;
	/* the same revision number, other content, and the process dies before settling */
	CHECK(agent_ruleset_parse(v2, strlen(v2), "v2", &np, &d, &err) == 0, "%s", err.msg);
	CHECK(agent_dp_apply_snapshot(T.dp, np, &err) == 0, "%s", err.msg);
	agent_ruleset_free_policy(np);
	agent_dp_close(T.dp);
	o.node = T.node;
	o.load = true;
	CHECK(agent_dp_open(&T.dp, &o, &err) == 0, "re-open: %s", err.msg);
	CHECK(dpt_apply(&T, "delta 7 8\n+rule 1000 ingress 2001 tcp/82 allow 22\n", &err) == 0,
	      "delta: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), DROP);
	EXPECT(IN, tcp4("198.18.1.7", 81, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.7", 82, TCPF_SYN), OK_);
	/* and a flip back must show exactly revision 8 in the other generation too */
	CHECK(dpt_apply(&T, "delta 8 9\n-rule 1000 ingress 2001 tcp/82 allow 22\n", &err) == 0,
	      "delta: %s", err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), DROP);
	EXPECT(IN, tcp4("198.18.1.7", 81, TCPF_SYN), OK_);
	EXPECT(IN, tcp4("198.18.1.7", 82, TCPF_SYN), DROP);
	dpt_close(&T);
	return 0;
}

static int t_fragments_of_established_flow(void)
{
	struct pkt_spec whole = {.src = "198.18.1.7", .dst = LOCAL4, .proto = 17, .sport = 5000,
				 .dport = 53, .payload = 32};
	struct pkt_spec first = whole, later;
	struct pkt_spec reply_first = {.src = LOCAL4, .dst = "198.18.1.7", .proto = 17,
				       .sport = 53, .dport = 5000, .payload = 64, .more_frags = 1,
				       .frag_id = 900};
	struct pkt_spec reply_later = reply_first;

	first.more_frags = 1;
	first.frag_id = 901;
	first.payload = 64;
	later = first;
	later.frag_off = 9;
	later.more_frags = 0;
	reply_later.frag_off = 9;
	reply_later.more_frags = 0;
	if (setup(base_rules, NULL))
		return 1;
	EXPECT(IN, whole, OK_);		/* opens the flow */
	EXPECT(IN, first, OK_);		/* a fragmented datagram on it: conntrack */
	EXPECT(IN, later, OK_);
	EXPECT(OUT, reply_first, OK_);	/* a fragmented reply (egress is default deny) */
	EXPECT(OUT, reply_later, OK_);
	dpt_close(&T);
	return 0;
}

static int t_tiny_first_fragment(void)
{
	/* a TCP first fragment with only 8 bytes of TCP header: the flags are not in it */
	struct pkt_spec s = {.src = "198.18.1.7", .dst = LOCAL4, .proto = 6, .sport = 40000,
			     .dport = 80, .tcp_flags = TCPF_ACK, .more_frags = 1, .frag_id = 5};
	uint8_t buf[PKT_MAX];
	size_t len;

	if (setup(base_rules, NULL))
		return 1;
	len = pkt_build(buf, &s);
	/* cut the IP datagram to 20 + 8 bytes (the rest of the frame is padding) */
	buf[16] = 0, buf[17] = 28;
	CHECK(dpt_run_raw(&T, IN, buf, len) == DROP, "tiny first fragment must drop");
	dpt_close(&T);
	return 0;
}

static int t_icmp_errors_open_no_flow(void)
{
	struct pkt_spec unreach = {.src = "198.18.1.7", .dst = LOCAL4, .proto = 1, .icmp_type = 3};
	struct pkt_spec redirect = unreach, echo0 = unreach;

	redirect.icmp_type = 5;
	echo0.icmp_type = 8;
	echo0.src = "198.18.1.9"; /* no echo rule for this peer */
	echo0.sport = 0;
	if (setup("revision 1\n"
		  "endpoint lo if=lo id=1000 ingress=deny:100 egress=deny:101\n"
		  "ipcache 198.18.1.7/32 2001\n"
		  "rule 1000 ingress any icmp/3 allow 30\n",
		  NULL))
		return 1;
	EXPECT(IN, unreach, OK_); /* allowed by rule, about no flow */
	EXPECT(IN, redirect, DROP);
	EXPECT(IN, echo0, DROP);
	dpt_close(&T);
	return 0;
}

static int stop_after_one(const struct agent_dp_flow *f, void *ctx)
{
	(void)f;
	(*(int *)ctx)++;
	return 1;
}

static int t_drain_delivers_whole_batch(void)
{
	int seen = 0, n;

	if (setup(base_rules, NULL))
		return 1;
	for (int port = 81; port <= 85; port++)
		EXPECT(IN, tcp4("198.18.9.9", (uint16_t)port, TCPF_SYN), DROP);
	n = agent_dp_flows_drain(T.dp, stop_after_one, &seen);
	CHECK(n == 5 && seen == 5, "drained %d, delivered %d, want 5 and 5", n, seen);
	CHECK(agent_dp_flows_drain(T.dp, NULL, NULL) == 0, "drained twice");
	dpt_close(&T);
	return 0;
}

static int t_removal_must_match(void)
{
	struct bh_error err = {0};
	int rc;

	if (setup(base_rules, NULL))
		return 1;
	rc = dpt_apply(&T, "delta 1 2\n-rule 1000 ingress 2001 tcp/80 allow 99\n", &err);
	CHECK(rc == -ENOENT && strstr(err.msg, "stored as"), "rule id mismatch: %d %s", rc,
	      err.msg);
	err = (struct bh_error){0};
	rc = dpt_apply(&T, "delta 1 2\n-ipcache 198.18.1.7/32 2002\n", &err);
	CHECK(rc == -ENOENT, "ipcache identity mismatch: %d %s", rc, err.msg);
	EXPECT(IN, tcp4("198.18.1.7", 80, TCPF_SYN), OK_);
	dpt_close(&T);
	return 0;
}

static int t_one_writer_at_a_time(void)
{
	struct agent_dp_opts o = {.load = true};
	struct bh_error err = {0};
	struct agent_dp *second = NULL;
	int rc;

	if (setup(base_rules, NULL))
		return 1;
	o.node = T.node;
	rc = agent_dp_open(&second, &o, &err);
	if (rc == 0)
		agent_dp_close(second);
	CHECK(rc == -EBUSY && strstr(err.msg, "in use"), "second writer: %d %s", rc, err.msg);
	/* readers are welcome */
	o.load = false;
	err = (struct bh_error){0};
	CHECK(agent_dp_open(&second, &o, &err) == 0, "reader: %s", err.msg);
	agent_dp_close(second);
	dpt_close(&T);
	return 0;
}

static int t_eight_extension_headers(void)
{
	struct pkt_spec s6 = {.src = "fd00:b1::7", .dst = LOCAL6, .proto = 6, .dport = 22};
	uint8_t buf[PKT_MAX];
	uint8_t *ip = buf + 14;

	if (setup(base_rules, NULL))
		return 1;
	memset(buf, 0, sizeof(buf));
	pkt_build(buf, &s6);
	ip[6] = 0;
	for (int i = 0; i < 8; i++) {
		uint8_t *h = buf + 14 + 40 + i * 8;

		h[0] = i == 7 ? 6 : 60;
		h[1] = 0;
	}
	{
		uint8_t *tcp = buf + 14 + 40 + 8 * 8;

		memset(tcp, 0, 20);
		tcp[0] = 0x9c, tcp[1] = 0x40, tcp[3] = 22, tcp[12] = 0x50, tcp[13] = TCPF_SYN;
	}
	ip[4] = 0, ip[5] = 8 * 8 + 20;
	CHECK(dpt_run_raw(&T, IN, buf, 14 + 40 + 8 * 8 + 20) == OK_,
	      "8 extension headers then TCP/22 from an allowed peer must pass");
	dpt_close(&T);
	return 0;
}

static int t_ports_need_a_port_protocol(void)
{
	struct bh_error err = {0};
	int rc;

	if (setup(base_rules, NULL))
		return 1;
	rc = dpt_apply(&T, "delta 1 2\n+rule 1000 ingress 2001 47/5 allow 40\n", &err);
	CHECK(rc == -EINVAL && strstr(err.msg, "no ports"), "%d %s", rc, err.msg);
	dpt_close(&T);
	return 0;
}

static int t_event_rate_kept_across_reload(void)
{
	struct agent_dp_opts o = {.events_per_sec = 3};
	struct bh_error err = {0};
	struct agent_dp_info info;

	if (setup(base_rules, &o))
		return 1;
	agent_dp_close(T.dp);
	o = (struct agent_dp_opts){.node = T.node, .load = true};
	CHECK(agent_dp_open(&T.dp, &o, &err) == 0, "%s", err.msg);
	for (int i = 0; i < 40; i++)
		EXPECT(IN, tcp4("198.18.9.9", 81, TCPF_SYN), DROP);
	CHECK(agent_dp_info(T.dp, &info) == 0, "info");
	CHECK(info.stats[BH_STAT_EVENTS_SENT] <= 6, "%llu events sent: the rate of 3 was lost",
	      (unsigned long long)info.stats[BH_STAT_EVENTS_SENT]);
	dpt_close(&T);
	return 0;
}

static const struct t_case cases[] = {
	{"exact match", t_exact},
	{"any-port rule", t_port_wildcard},
	{"any-peer rule", t_peer_wildcard},
	{"CIDR peer and port-range edges", t_cidr_peer_and_range_edges},
	{"explicit deny wins over allow", t_deny_wins},
	{"no policy in a direction: default allow, named", t_default_allow_without_policy},
	{"observe mode passes and reports would-deny", t_observe_mode},
	{"IPv6", t_ipv6},
	{"ICMP echo by rule, reply by conntrack", t_icmp_echo_and_reply},
	{"ICMP error of an allowed flow passes, others drop", t_icmp_error_related},
	{"ICMPv6 neighbour discovery and MLD always pass", t_nd_always_passes},
	{"conntrack: replies pass without a rule", t_conntrack_reply},
	{"egress rules", t_egress_rule},
	{"veth attach: hooks reversed", t_veth_attach_reverses_hooks},
	{"unknown protocol by number", t_unknown_protocol},
	{"VLAN tag does not bypass policy", t_vlan_tag_is_no_bypass},
	{"fragments follow their first fragment", t_fragments},
	{"malformed and truncated packets drop, garbage never crashes", t_malformed},
	{"revoking a rule cuts an established flow", t_revoke_cuts_established},
	{"deny events carry rule id and reason", t_deny_events},
	{"deny events are rate-limited and counted", t_event_rate_limit},
	{"map overflow fails with nothing changed", t_overflow_changes_nothing},
	{"stale, mismatched and overlapping rule sets rejected", t_bad_deltas_rejected},
	{"snapshot replaces the rule set", t_snapshot_replaces},
	{"re-open keeps enforcing and continues", t_reopen_keeps_enforcing},
	{"crash before settle with a same-revision snapshot", t_crash_before_settle_same_revision},
	{"fragments of an established flow pass both ways", t_fragments_of_established_flow},
	{"a first fragment too small for its L4 header drops", t_tiny_first_fragment},
	{"ICMP errors open no flow", t_icmp_errors_open_no_flow},
	{"a drain stopped early still delivers its batch", t_drain_delivers_whole_batch},
	{"a removal must match the stored entry", t_removal_must_match},
	{"one writer per datapath", t_one_writer_at_a_time},
	{"eight IPv6 extension headers are fine", t_eight_extension_headers},
	{"ports only on protocols that have them", t_ports_need_a_port_protocol},
	{"the event rate survives a reload", t_event_rate_kept_across_reload},
};

int main(int argc, char **argv)
{
	dpt_init("test_prog");
	return t_run(cases, BH_ARRAY_SIZE(cases), argc > 1 ? argv[1] : NULL);
}
