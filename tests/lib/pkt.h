/* SPDX-License-Identifier: Apache-2.0 */
/* Packet builders for BPF_PROG_TEST_RUN tests and benchmarks: Ethernet + IPv4/IPv6 + L4. */
#ifndef BH_TESTS_PKT_H
#define BH_TESTS_PKT_H

#include <stddef.h>
#include <stdint.h>

#define PKT_MAX 2048

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

struct pkt_spec {
	const char *src;	/* address literal, v4 or v6 (the family follows it) */
	const char *dst;
	uint8_t proto;		/* 6 tcp, 17 udp, 1 icmp, 58 icmpv6, anything else */
	uint16_t sport;		/* ICMP: echo identifier */
	uint16_t dport;
	uint8_t tcp_flags;	/* default SYN when 0 for TCP */
	uint8_t icmp_type;
	size_t payload;		/* bytes after the L4 header */
	uint16_t frag_off;	/* IPv4: fragment offset in 8-byte units; IPv6: same (adds a fragment header) */
	int more_frags;		/* MF / M flag */
	uint32_t frag_id;
	int vlan;		/* add one 802.1Q tag */
	/* ICMP error: the quoted inner packet */
	const struct pkt_spec *inner;
};

/* Builds the packet into buf (PKT_MAX bytes); returns its length, 0 on a bad spec. */
size_t pkt_build(uint8_t *buf, const struct pkt_spec *s);

#endif
