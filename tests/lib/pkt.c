// SPDX-License-Identifier: Apache-2.0
#include <arpa/inet.h>
#include <string.h>

#include "pkt.h"

static size_t l4_build(uint8_t *p, const struct pkt_spec *s, int v6)
{
	size_t n = 0;

	switch (s->proto) {
	case 6:
		memset(p, 0, 20);
		p[0] = s->sport >> 8, p[1] = s->sport & 0xff;
		p[2] = s->dport >> 8, p[3] = s->dport & 0xff;
		p[12] = 5 << 4;
		p[13] = s->tcp_flags ? s->tcp_flags : TCPF_SYN;
		n = 20;
		break;
	case 17:
	case 132:
		memset(p, 0, 8);
		p[0] = s->sport >> 8, p[1] = s->sport & 0xff;
		p[2] = s->dport >> 8, p[3] = s->dport & 0xff;
		p[4] = (uint8_t)((8 + s->payload) >> 8), p[5] = (uint8_t)((8 + s->payload) & 0xff);
		n = 8;
		break;
	case 1:
	case 58:
		memset(p, 0, 8);
		p[0] = s->icmp_type;
		p[4] = s->sport >> 8, p[5] = s->sport & 0xff;
		n = 8;
		if (s->inner) {
			uint8_t tmp[PKT_MAX];
			size_t in = pkt_build(tmp, s->inner);

			/* quote the inner packet without its Ethernet header, at most 128 bytes */
			if (in > 14) {
				in -= 14;
				if (in > 128)
					in = 128;
				memcpy(p + 8, tmp + 14, in);
				n += in;
			}
		}
		break;
	default:
		break;
	}
	(void)v6;
	memset(p + n, 0xab, s->payload);
	return n + s->payload;
}

size_t pkt_build(uint8_t *buf, const struct pkt_spec *s)
{
	uint8_t src[16], dst[16];
	int v6 = strchr(s->src, ':') != NULL;
	size_t off = 12, l4len;

	if (inet_pton(v6 ? AF_INET6 : AF_INET, s->src, src) != 1 ||
	    inet_pton(v6 ? AF_INET6 : AF_INET, s->dst, dst) != 1)
		return 0;
	memset(buf, 0, PKT_MAX);
	memcpy(buf, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
	if (s->vlan) {
		buf[off++] = 0x81, buf[off++] = 0x00;
		buf[off++] = 0x00, buf[off++] = 0x07;
	}
	buf[off++] = v6 ? 0x86 : 0x08;
	buf[off++] = v6 ? 0xdd : 0x00;
	if (!v6) {
		uint8_t *ip = buf + off;
		uint16_t fo = (uint16_t)((s->frag_off & 0x1fff) | (s->more_frags ? 0x2000 : 0));

		ip[0] = 0x45;
		ip[4] = (uint8_t)(s->frag_id >> 8), ip[5] = (uint8_t)s->frag_id;
		ip[6] = (uint8_t)(fo >> 8), ip[7] = (uint8_t)fo;
		ip[8] = 64;
		ip[9] = s->proto;
		memcpy(ip + 12, src, 4);
		memcpy(ip + 16, dst, 4);
		if (s->frag_off)
			l4len = (memset(ip + 20, 0xcd, s->payload), s->payload);
		else
			l4len = l4_build(ip + 20, s, 0);
		ip[2] = (uint8_t)((20 + l4len) >> 8), ip[3] = (uint8_t)((20 + l4len) & 0xff);
		return off + 20 + l4len;
	}
	{
		uint8_t *ip = buf + off, *l4 = ip + 40;
		size_t ext = 0;

		ip[0] = 0x60;
		ip[6] = s->proto;
		ip[7] = 64;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
		if (s->frag_off || s->more_frags) {
			uint16_t fo = (uint16_t)((s->frag_off << 3) | (s->more_frags ? 1 : 0));

			ip[6] = 44;
			l4[0] = s->proto;
			l4[2] = (uint8_t)(fo >> 8), l4[3] = (uint8_t)fo;
			l4[4] = (uint8_t)(s->frag_id >> 24), l4[5] = (uint8_t)(s->frag_id >> 16);
			l4[6] = (uint8_t)(s->frag_id >> 8), l4[7] = (uint8_t)s->frag_id;
			ext = 8;
		}
		if (s->frag_off)
			l4len = (memset(l4 + ext, 0xcd, s->payload), s->payload);
		else
			l4len = l4_build(l4 + ext, s, 1);
		l4len += ext;
		ip[4] = (uint8_t)(l4len >> 8), ip[5] = (uint8_t)(l4len & 0xff);
		return off + 40 + l4len;
	}
}
