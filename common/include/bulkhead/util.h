/* SPDX-License-Identifier: Apache-2.0 */
#ifndef BULKHEAD_UTIL_H
#define BULKHEAD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BH_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Makes room for want elements of size bytes in *v (capacity *cap, doubling from 16). Returns 0,
 * or -ENOMEM with *v and *cap untouched. */
int bh_grow(void **v, size_t *cap, size_t want, size_t size);
/* qsort() that takes an empty array (qsort(NULL, 0, ...) is undefined behaviour). */
void bh_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
/* Appends item to the growable array arr of n elements: 0, or -ENOMEM (arr unchanged). */
#define BH_PUSH(arr, n, cap, item)                                                                \
	(bh_grow((void **)&(arr), &(cap), (n) + 1, sizeof(*(arr))) ? -ENOMEM                      \
								      : ((arr)[(n)++] = (item), 0))

/* Monotonic and boot-time clocks in nanoseconds. Never fail. */
uint64_t bh_now_mono_ns(void);
uint64_t bh_now_boot_ns(void);

/* Converts a CLOCK_MONOTONIC timestamp in ns (what the BPF programs record, from the coarse
 * clock) to Unix epoch ns. */
uint64_t bh_mono_ns_to_unix_ns(uint64_t mono_ns);

/*
 * Parses an address with optional "/len" ("198.18.0.0/15", "fd00:b1::1"). On success fills addr
 * (4 or 16 bytes, network order), *alen (4 or 16) and *plen (the full length if none was given) and
 * returns 0; returns -EINVAL on anything else.
 */
int bh_parse_prefix(const char *s, uint8_t addr[16], int *alen, int *plen);

/* Formats an address of alen bytes (4 or 16) into buf (at least 46 bytes). Returns buf. */
const char *bh_format_addr(const uint8_t *addr, int alen, char *buf, size_t len);

/*
 * IP protocol names as every Bulkhead text form writes them: any (0), icmp, tcp, udp, icmp6,
 * sctp, udplite; other numbers as decimal (into buf, at least 4 bytes). Never fails.
 */
const char *bh_ip_proto_name(unsigned int proto, char *buf, size_t len);
/* The number of a protocol name (icmpv6 too), in any case when any_case; -1 if none. Numbers
 * are the caller's to parse. */
int bh_ip_proto_number(const char *name, bool any_case);

/* Whether the datapath reads a port for the protocol (TCP, UDP, SCTP, UDP-Lite), or an ICMP
 * message type in its place (ICMP, ICMPv6). */
bool bh_ip_proto_has_ports(unsigned int proto);
bool bh_ip_proto_is_icmp(unsigned int proto);

/* Parses an unsigned decimal in [0, max]. Returns 0 or -EINVAL / -ERANGE. */
int bh_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Reads a whole file (at most max bytes) into a malloc'd, NUL-terminated buffer. On success the
 * caller owns *out and 0 is returned; on failure a negative errno (-EFBIG past max). "-" reads
 * stdin. */
int bh_read_file(const char *path, size_t max, char **out, size_t *len);

#endif
