// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only)
/* The empty tc program: baseline for the datapath benchmarks. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int bh_tc_empty(struct __sk_buff *skb)
{
	(void)skb;
	return TC_ACT_OK;
}
