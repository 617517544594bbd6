// SPDX-License-Identifier: Apache-2.0
/* bulkhead explain --from W|ADDR --to W|ADDR --port PROTO/PORT */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bulkhead/util.h"
#include "cli.h"

static const char usage[] =
	"usage: bulkhead explain --from WORKLOAD|ADDRESS --to WORKLOAD|ADDRESS\n"
	"                        --port PROTO/PORT | [--proto PROTO] --port PORT | --proto PROTO\n"
	"                        [-o text|json]\n"
	"\n"
	"Says what the policy now in force does to one packet, and why: the verdict on the first\n"
	"line, ALLOW, DENY, or OBSERVE (would deny, passes) when only a policy in observe mode\n"
	"would drop it; then the controller's explanation, the rules or defaults that decide it\n"
	"on the sending side (egress) and on the receiving side (ingress). The answer comes from\n"
	"the compiled rule sets, not from traffic.\n"
	"\n"
	"  --from, --to X       a workload name, or an IPv4 or IPv6 address (one outside the\n"
	"                       inventory is judged by the CIDR peers that contain it)\n"
	"  --port PROTO/PORT    tcp/5432, udp/53, sctp/3868, udplite/N, or for ICMP the message\n"
	"                       type: icmp/8 (echo request), icmpv6/128; a bare number is TCP\n"
	"  --proto PROTO        tcp, udp, sctp, udplite, icmp, icmpv6 or a protocol number 1-255,\n"
	"                       with --port PORT; alone for protocols without ports (--proto 47)\n"
	"  -o, --output FORMAT  text (default) or json ({verdict, explanation, from, to,\n"
	"                       protocol (a number), port})\n"
	"\n"
	"examples:\n"
	"  bulkhead explain --from api-1 --to db-1 --port tcp/5432\n"
	"  bulkhead explain --from 198.18.0.50 --to web-1 --proto tcp --port 443\n"
	"  bulkhead explain --from web-1 --to db-1 --port icmp/8\n"
	"\n"
	"exit status: 0 answered, whatever the verdict; 1 failure (unknown workload, no\n"
	"controller: the message says why); 2 usage error.\n";

/* A protocol name or number 1-255. 0 or -1. */
static int proto_parse(const char *s, size_t n, uint32_t *out)
{
	char buf[16];
	uint64_t v;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	/* any (0) is not a protocol a packet has */
	if (bh_ip_proto_number(buf, true) > 0) {
		*out = (uint32_t)bh_ip_proto_number(buf, true);
		return 0;
	}
	if (bh_parse_u64(buf, 255, &v) || v == 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/*
 * --port and --proto into a protocol and port (or ICMP type). 0, or 2 after saying what is
 * wrong.
 */
static int l4_parse(const char *port_arg, const char *proto_arg, uint32_t *proto, uint32_t *port)
{
	const char *num = port_arg;
	bool have_proto = false;
	uint64_t v;

	if (proto_arg) {
		if (proto_parse(proto_arg, strlen(proto_arg), proto)) {
			fprintf(stderr,
				"bulkhead explain: --proto \"%s\": want tcp, udp, sctp, "
				"udplite, icmp, icmpv6 or a number 1-255\n",
				proto_arg);
			return 2;
		}
		have_proto = true;
	}
	if (port_arg && strchr(port_arg, '/')) {
		uint32_t p;
		size_t n = strcspn(port_arg, "/");

		if (proto_parse(port_arg, n, &p)) {
			fprintf(stderr,
				"bulkhead explain: --port \"%s\": unknown protocol \"%.*s\" "
				"(tcp, udp, sctp, udplite, icmp, icmpv6 or 1-255)\n",
				port_arg, (int)n, port_arg);
			return 2;
		}
		if (have_proto && p != *proto) {
			fprintf(stderr,
				"bulkhead explain: --port \"%s\" and --proto \"%s\" "
				"disagree\n",
				port_arg, proto_arg);
			return 2;
		}
		*proto = p;
		have_proto = true;
		num = port_arg + n + 1;
	}
	if (port_arg && !strchr(port_arg, '/') && !proto_parse(port_arg, strlen(port_arg), proto) &&
	    (*port_arg < '0' || *port_arg > '9')) {
		fprintf(stderr, "bulkhead explain: --port \"%s\": give %s/%s\n", port_arg, port_arg,
			bh_ip_proto_is_icmp(*proto) ? "TYPE (the message type; icmp/8: echo request)" : "PORT");
		return 2;
	}
	if (!have_proto && !port_arg) {
		fprintf(stderr, "bulkhead explain: which packet? give --port PROTO/PORT (tcp/5432, "
				"icmp/8) or --proto PROTO\n");
		return 2;
	}
	if (!have_proto)
		*proto = 6; /* a bare port number: TCP, as in Kubernetes */
	if (!num) {
		if (bh_ip_proto_has_ports(*proto) || bh_ip_proto_is_icmp(*proto)) {
			fprintf(stderr, "bulkhead explain: --proto %s needs --port %s\n", proto_arg,
				bh_ip_proto_is_icmp(*proto) ? "TYPE (the ICMP message type, 8: echo request)"
						: "PORT");
			return 2;
		}
		*port = 0;
		return 0;
	}
	if (!bh_ip_proto_has_ports(*proto) && !bh_ip_proto_is_icmp(*proto)) {
		fprintf(stderr,
			"bulkhead explain: --port \"%s\": protocol %" PRIu32 " has no "
			"ports (give --proto alone)\n",
			port_arg, *proto);
		return 2;
	}
	if (bh_ip_proto_is_icmp(*proto)) {
		if (bh_parse_u64(num, 255, &v)) {
			fprintf(stderr,
				"bulkhead explain: --port \"%s\": want the ICMP message type "
				"0-255 (icmp/8 is echo request)\n",
				port_arg);
			return 2;
		}
	} else if (bh_parse_u64(num, 65535, &v) || v == 0) {
		fprintf(stderr, "bulkhead explain: --port \"%s\": want a port 1-65535\n", port_arg);
		return 2;
	}
	*port = (uint32_t)v;
	return 0;
}

/* "allow" -> ALLOW; "observe" spelled out. */
static void print_verdict(const char *v)
{
	if (strcasecmp(v, "observe") == 0) {
		puts("OBSERVE (would deny, passes)");
		return;
	}
	for (; *v; v++)
		putchar(toupper((unsigned char)*v));
	putchar('\n');
}

enum { OPT_FROM = 256, OPT_TO, OPT_PORT, OPT_PROTO };

int cmd_explain(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"from", required_argument, NULL, OPT_FROM},
		{"to", required_argument, NULL, OPT_TO},
		{"port", required_argument, NULL, OPT_PORT},
		{"proto", required_argument, NULL, OPT_PROTO},
		{"protocol", required_argument, NULL, OPT_PROTO},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	Bulkhead__ExplainRequest r = BULKHEAD__EXPLAIN_REQUEST__INIT;
	Bulkhead__ExplainResponse *resp = NULL;
	const char *port = NULL, *proto = NULL;
	int opt;

	r.from = r.to = NULL;
	optind = 0; /* glibc: start afresh, with permutation (options after operands) */
	while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_FROM:
			r.from = optarg;
			break;
		case OPT_TO:
			r.to = optarg;
			break;
		case OPT_PORT:
			port = optarg;
			break;
		case OPT_PROTO:
			proto = optarg;
			break;
		case 'o':
			if (cli_format_set(c, "explain", optarg, CLI_FMTS_TJ))
				return 2;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'bulkhead explain --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bulkhead explain: unexpected \"%s\" (use --from, --to, --port)\n",
			argv[optind]);
		return 2;
	}
	if (!r.from || !*r.from || !r.to || !*r.to) {
		fprintf(stderr, "bulkhead explain: give both --from and --to (a workload name or "
				"an address)\n");
		return 2;
	}
	if (l4_parse(port, proto, &r.protocol, &r.port))
		return 2;
	if (cli_connect(c) || cli_call(c, &bulkhead__operator__descriptor, "Explain", &r.base,
				       (ProtobufCMessage **)&resp))
		return 1;
	if (c->format == CLI_FORMAT_JSON) {
		fputs("{\"verdict\":", stdout);
		cli_json_str(stdout, resp->verdict);
		fputs(",\"explanation\":", stdout);
		cli_json_str(stdout, resp->explanation);
		fputs(",\"from\":", stdout);
		cli_json_str(stdout, r.from);
		fputs(",\"to\":", stdout);
		cli_json_str(stdout, r.to);
		printf(",\"protocol\":%" PRIu32 ",\"port\":%" PRIu32 "}\n", r.protocol, r.port);
	} else {
		print_verdict(resp->verdict);
		cli_print_text(resp->explanation);
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}
