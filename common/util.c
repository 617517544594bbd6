// SPDX-License-Identifier: Apache-2.0
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bulkhead/util.h"

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bh_now_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t bh_now_boot_ns(void)
{
	return clock_ns(CLOCK_BOOTTIME);
}

uint64_t bh_mono_ns_to_unix_ns(uint64_t mono_ns)
{
	uint64_t now_real = clock_ns(CLOCK_REALTIME), now_mono = clock_ns(CLOCK_MONOTONIC);

	return mono_ns > now_mono ? now_real : now_real - (now_mono - mono_ns);
}

void bh_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

int bh_grow(void **v, size_t *cap, size_t want, size_t size)
{
	size_t nc;
	void *nv;

	if (want <= *cap)
		return 0;
	nc = *cap ? *cap * 2 : 16;
	while (nc < want)
		nc *= 2;
	nv = realloc(*v, nc * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = nc;
	return 0;
}

int bh_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int bh_parse_prefix(const char *s, uint8_t addr[16], int *alen, int *plen)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t len;

	if (n == 0 || n >= INET6_ADDRSTRLEN)
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1)
		*alen = 4;
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		*alen = 16;
	else
		return -EINVAL;
	if (!slash) {
		*plen = *alen * 8;
		return 0;
	}
	if (bh_parse_u64(slash + 1, (uint64_t)*alen * 8, &len))
		return -EINVAL;
	*plen = (int)len;
	return 0;
}

const char *bh_format_addr(const uint8_t *addr, int alen, char *buf, size_t len)
{
	if (!inet_ntop(alen == 4 ? AF_INET : AF_INET6, addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

int bh_read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *buf = NULL, *nbuf;
	ssize_t r;
	int err = 0;

	if (fd < 0)
		return -errno;
	buf = malloc(cap + 1);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (n == cap) {
			if (cap >= max) {
				err = -EFBIG;
				goto out;
			}
			cap = cap * 2 > max ? max : cap * 2;
			nbuf = realloc(buf, cap + 1);
			if (!nbuf) {
				err = -ENOMEM;
				goto out;
			}
			buf = nbuf;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	if (fd != STDIN_FILENO)
		close(fd);
	return err;
}

static const struct {
	const char *name;
	unsigned int number;
} ip_protos[] = {
	/* the first name of a number is the one written */
	{"any", 0},   {"icmp", 1},   {"tcp", 6},	{"udp", 17},
	{"icmp6", 58}, {"icmpv6", 58}, {"sctp", 132}, {"udplite", 136},
};

const char *bh_ip_proto_name(unsigned int proto, char *buf, size_t len)
{
	for (size_t i = 0; i < BH_ARRAY_SIZE(ip_protos); i++)
		if (ip_protos[i].number == proto)
			return ip_protos[i].name;
	snprintf(buf, len, "%u", proto);
	return buf;
}

int bh_ip_proto_number(const char *name, bool any_case)
{
	for (size_t i = 0; i < BH_ARRAY_SIZE(ip_protos); i++)
		if (!(any_case ? strcasecmp : strcmp)(name, ip_protos[i].name))
			return (int)ip_protos[i].number;
	return -1;
}

bool bh_ip_proto_has_ports(unsigned int proto)
{
	return proto == 6 || proto == 17 || proto == 132 || proto == 136;
}

bool bh_ip_proto_is_icmp(unsigned int proto)
{
	return proto == 1 || proto == 58;
}
