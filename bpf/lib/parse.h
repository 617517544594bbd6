/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only) */
/*
 * Packet parsing: Ethernet (with up to two VLAN tags), IPv4, IPv6 with extension headers, and the
 * L4 headers whose ports matter (TCP, UDP, UDP-Lite, SCTP, ICMP, ICMPv6). Everything is read with
 * bpf_skb_load_bytes(), which works on non-linear skbs too and keeps the verifier's view simple:
 * each read either fills a stack buffer or fails, and a failed read means a truncated packet.
 */
#ifndef BULKHEAD_LIB_PARSE_H
#define BULKHEAD_LIB_PARSE_H

#define ETH_P_IP_BE	bpf_htons(0x0800)
#define ETH_P_IPV6_BE	bpf_htons(0x86DD)
#define ETH_P_8021Q_BE	bpf_htons(0x8100)
#define ETH_P_8021AD_BE bpf_htons(0x88A8)

#define IPPROTO_HOPOPTS_	0
#define IPPROTO_ICMP_		1
#define IPPROTO_TCP_		6
#define IPPROTO_UDP_		17
#define IPPROTO_ROUTING_	43
#define IPPROTO_FRAGMENT_	44
#define IPPROTO_AH_		51
#define IPPROTO_ICMPV6_		58
#define IPPROTO_NONE_		59
#define IPPROTO_DSTOPTS_	60
#define IPPROTO_SCTP_		132
#define IPPROTO_UDPLITE_	136

#define BH_MAX_VLAN	   2
#define BH_MAX_EXT_HEADERS 8

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

enum bh_parse_rc {
	BH_PARSE_OK = 0,
	BH_PARSE_NOT_IP = 1,	/* ARP and friends: not ours to judge */
	BH_PARSE_MALFORMED = -1,
};

enum bh_icmp_kind {
	BH_ICMP_NONE = 0,  /* not ICMP, or an ICMP message judged by policy on its type */
	BH_ICMP_ECHO,	   /* echo request/reply: tracked by identifier */
	BH_ICMP_ERROR,	   /* error about another packet: the inner tuple is parsed */
	BH_ICMP_ND,	   /* IPv6 neighbour discovery and MLD: always pass */
};

enum bh_frag_kind {
	BH_FRAG_NONE = 0,
	BH_FRAG_FIRST,	/* offset 0, more fragments follow: carries the L4 header */
	BH_FRAG_LATER,	/* offset > 0: no L4 header */
};

/* The inner tuple of an ICMP error (the packet the error is about). */
struct bh_inner {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct bh_pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 frag_id;
	__u16 sport;	/* host order; ICMP echo: identifier */
	__u16 dport;	/* host order; ICMP echo: identifier */
	__u16 port;	/* what policy matches: destination port, or ICMP type */
	__u8 family;	/* AF_INET (2) or AF_INET6 (10) */
	__u8 proto;
	__u8 tcp_flags;
	__u8 icmp_kind;	/* enum bh_icmp_kind */
	__u8 frag;	/* enum bh_frag_kind */
	__u8 pad;
	struct bh_inner inner;
};

struct bh_iphdr {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct bh_ipv6hdr {
	__u32 ver_tc_flow;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline bool bh_icmp4_is_error(__u8 type)
{
	/* destination unreachable, source quench, redirect, time exceeded, parameter problem */
	return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

static __always_inline bool bh_icmp6_is_error(__u8 type)
{
	/* destination unreachable, packet too big, time exceeded, parameter problem */
	return type >= 1 && type <= 4;
}

static __always_inline bool bh_proto_has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_ || proto == IPPROTO_SCTP_ ||
	       proto == IPPROTO_UDPLITE_;
}

/* Reads the tuple of the packet an ICMP error quotes. Errors quote at least the IP header and
 * 8 bytes of L4; a quote too short for the ports leaves them 0 (it then matches no flow). */
static __always_inline void bh_parse_inner(struct __sk_buff *skb, __u32 off, struct bh_pkt *p)
{
	__u16 ports[2];
	__u32 l4off;

	if (p->family == 2) {
		struct bh_iphdr ih;

		if (bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)) < 0)
			return;
		__builtin_memcpy(p->inner.saddr, ih.saddr, 4);
		__builtin_memcpy(p->inner.daddr, ih.daddr, 4);
		p->inner.proto = ih.protocol;
		l4off = off + (ih.ver_ihl & 0xf) * 4;
	} else {
		struct bh_ipv6hdr ih;

		if (bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)) < 0)
			return;
		__builtin_memcpy(p->inner.saddr, ih.saddr, 16);
		__builtin_memcpy(p->inner.daddr, ih.daddr, 16);
		p->inner.proto = ih.nexthdr;
		l4off = off + sizeof(ih);
	}
	if (bh_proto_has_ports(p->inner.proto)) {
		if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)) < 0)
			return;
		p->inner.sport = bpf_ntohs(ports[0]);
		p->inner.dport = bpf_ntohs(ports[1]);
	} else if (p->inner.proto == IPPROTO_ICMP_ || p->inner.proto == IPPROTO_ICMPV6_) {
		__u8 icmp[8];

		if (bpf_skb_load_bytes(skb, l4off, icmp, sizeof(icmp)) < 0)
			return;
		/* echo: tracked by identifier, as bh_parse_l4 does */
		p->inner.sport = p->inner.dport = ((__u16)icmp[4] << 8) | icmp[5];
	}
}

/* Parses the L4 header at off; the datagram ends at end. A header that does not fit inside the
 * datagram is malformed: reading it from what follows (Ethernet padding, another packet's bytes)
 * would let a tiny first fragment pass as something else (RFC 1858, 3128). */
static __always_inline int bh_parse_l4(struct __sk_buff *skb, __u32 off, __u32 end,
				       struct bh_pkt *p)
{
	__u32 need = p->proto == IPPROTO_TCP_ ? 20 : 8;

	if ((bh_proto_has_ports(p->proto) || p->proto == IPPROTO_ICMP_ ||
	     p->proto == IPPROTO_ICMPV6_) &&
	    off + need > end)
		return BH_PARSE_MALFORMED;
	if (p->proto == IPPROTO_TCP_) {
		__u8 tcp[14];

		if (bpf_skb_load_bytes(skb, off, tcp, sizeof(tcp)) < 0)
			return BH_PARSE_MALFORMED;
		p->sport = ((__u16)tcp[0] << 8) | tcp[1];
		p->dport = ((__u16)tcp[2] << 8) | tcp[3];
		p->tcp_flags = tcp[13];
		p->port = p->dport;
	} else if (bh_proto_has_ports(p->proto)) {
		__u8 ports[4];

		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			return BH_PARSE_MALFORMED;
		p->sport = ((__u16)ports[0] << 8) | ports[1];
		p->dport = ((__u16)ports[2] << 8) | ports[3];
		p->port = p->dport;
	} else if ((p->proto == IPPROTO_ICMP_ && p->family == 2) ||
		   (p->proto == IPPROTO_ICMPV6_ && p->family == 10)) {
		__u8 icmp[8];
		__u8 type;

		if (bpf_skb_load_bytes(skb, off, icmp, sizeof(icmp)) < 0)
			return BH_PARSE_MALFORMED;
		type = icmp[0];
		p->port = type;
		if (p->family == 2) {
			if (type == 8 || type == 0)
				p->icmp_kind = BH_ICMP_ECHO;
			else if (bh_icmp4_is_error(type))
				p->icmp_kind = BH_ICMP_ERROR;
		} else {
			if (type == 128 || type == 129)
				p->icmp_kind = BH_ICMP_ECHO;
			else if ((type >= 133 && type <= 137) || (type >= 130 && type <= 132) ||
				 type == 143)
				p->icmp_kind = BH_ICMP_ND; /* neighbour discovery and MLD */
			else if (bh_icmp6_is_error(type))
				p->icmp_kind = BH_ICMP_ERROR;
		}
		if (p->icmp_kind == BH_ICMP_ECHO)
			p->sport = p->dport = ((__u16)icmp[4] << 8) | icmp[5];
		else if (p->icmp_kind == BH_ICMP_ERROR)
			bh_parse_inner(skb, off + 8, p);
		else
			p->dport = type;
	}
	/* Any other protocol is matched by its number alone (ports stay 0). */
	return BH_PARSE_OK;
}

static __always_inline int bh_parse_ipv4(struct __sk_buff *skb, __u32 off, struct bh_pkt *p)
{
	struct bh_iphdr ip;
	__u32 ihl, frag;

	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
		return BH_PARSE_MALFORMED;
	ihl = (ip.ver_ihl & 0xf) * 4;
	if ((ip.ver_ihl >> 4) != 4 || ihl < sizeof(ip))
		return BH_PARSE_MALFORMED;
	/* tot_len 0 is how BIG TCP marks a GSO packet over 64 KiB: its length is the skb's. */
	if (ip.tot_len && (bpf_ntohs(ip.tot_len) < ihl || off + bpf_ntohs(ip.tot_len) > skb->len))
		return BH_PARSE_MALFORMED;
	if (off + ihl > skb->len)
		return BH_PARSE_MALFORMED;
	p->family = 2;
	p->proto = ip.protocol;
	__builtin_memcpy(p->saddr, ip.saddr, 4);
	__builtin_memcpy(p->daddr, ip.daddr, 4);
	frag = bpf_ntohs(ip.frag_off);
	if (frag & 0x1fff) {
		p->frag = BH_FRAG_LATER;
		p->frag_id = bpf_ntohs(ip.id);
		return BH_PARSE_OK;
	}
	if (frag & 0x2000) {
		p->frag = BH_FRAG_FIRST;
		p->frag_id = bpf_ntohs(ip.id);
	}
	return bh_parse_l4(skb, off + ihl, ip.tot_len ? off + bpf_ntohs(ip.tot_len) : skb->len, p);
}

static __always_inline int bh_parse_ipv6(struct __sk_buff *skb, __u32 off, struct bh_pkt *p)
{
	struct bh_ipv6hdr ip6;
	__u32 end;
	__u8 nh;

	if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0)
		return BH_PARSE_MALFORMED;
	if ((bpf_ntohl(ip6.ver_tc_flow) >> 28) != 6 ||
	    off + sizeof(ip6) + bpf_ntohs(ip6.payload_len) > skb->len)
		return BH_PARSE_MALFORMED;
	p->family = 10;
	__builtin_memcpy(p->saddr, ip6.saddr, 16);
	__builtin_memcpy(p->daddr, ip6.daddr, 16);
	nh = ip6.nexthdr;
	/* payload length 0: a jumbogram (or BIG TCP GSO packet), as long as the skb */
	end = ip6.payload_len ? off + sizeof(ip6) + bpf_ntohs(ip6.payload_len) : skb->len;
	off += sizeof(ip6);

	/* Walk the extension headers that may precede the L4 header: up to BH_MAX_EXT_HEADERS of
	 * them, then the L4 header. More is not a packet any stack sends: it is treated as
	 * malformed rather than guessed. */
	for (int i = 0; i <= BH_MAX_EXT_HEADERS; i++) {
		__u8 hdr[8];

		switch (nh) {
		case IPPROTO_HOPOPTS_:
		case IPPROTO_ROUTING_:
		case IPPROTO_DSTOPTS_:
			if (bpf_skb_load_bytes(skb, off, hdr, 2) < 0)
				return BH_PARSE_MALFORMED;
			nh = hdr[0];
			off += ((__u32)hdr[1] + 1) * 8;
			break;
		case IPPROTO_AH_:
			if (bpf_skb_load_bytes(skb, off, hdr, 2) < 0)
				return BH_PARSE_MALFORMED;
			nh = hdr[0];
			off += ((__u32)hdr[1] + 2) * 4;
			break;
		case IPPROTO_FRAGMENT_: {
			__u16 fo;

			if (bpf_skb_load_bytes(skb, off, hdr, 8) < 0)
				return BH_PARSE_MALFORMED;
			nh = hdr[0];
			fo = ((__u16)hdr[2] << 8) | hdr[3];
			p->frag_id = ((__u32)hdr[4] << 24) | ((__u32)hdr[5] << 16) |
				     ((__u32)hdr[6] << 8) | hdr[7];
			off += 8;
			if (fo & 0xfff8) {
				p->frag = BH_FRAG_LATER;
				p->proto = nh;
				return BH_PARSE_OK;
			}
			if (fo & 1)
				p->frag = BH_FRAG_FIRST;
			break;
		}
		default:
			p->proto = nh;
			return bh_parse_l4(skb, off, end, p);
		}
	}
	return BH_PARSE_MALFORMED;
}

/* Parses skb into p. Returns BH_PARSE_OK, BH_PARSE_NOT_IP, or BH_PARSE_MALFORMED for an IP
 * packet whose headers are truncated or inconsistent. */
static __always_inline int bh_parse(struct __sk_buff *skb, struct bh_pkt *p)
{
	__u16 proto;
	__u32 off = 12;

	if (bpf_skb_load_bytes(skb, off, &proto, sizeof(proto)) < 0)
		return BH_PARSE_NOT_IP;
	off += 2;
	for (int i = 0; i < BH_MAX_VLAN; i++) {
		if (proto != ETH_P_8021Q_BE && proto != ETH_P_8021AD_BE)
			break;
		if (bpf_skb_load_bytes(skb, off + 2, &proto, sizeof(proto)) < 0)
			return BH_PARSE_NOT_IP;
		off += 4;
	}
	if (proto == ETH_P_IP_BE)
		return bh_parse_ipv4(skb, off, p);
	if (proto == ETH_P_IPV6_BE)
		return bh_parse_ipv6(skb, off, p);
	return BH_PARSE_NOT_IP;
}

#endif
