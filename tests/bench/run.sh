#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The datapath benchmark, run on demand (not part of CTest): builds bh_bench in build-bench/,
# measures, and prints one table in which every figure stands next to a baseline measured in the
# same run. As root; about 4 minutes on 2 cores.
#
#   tests/bench/run.sh [--quick]
#
#   1  ns per packet (BPF_PROG_TEST_RUN) against the empty tc program, 10 .. 1M policy entries,
#      1k and 100k ipcache prefixes; snapshot apply times against raw map writes
#   2  delta apply times against iptables-restore of the same rules
#   3  iperf3 through a veth pair: unfiltered, Bulkhead with 10k rules, iptables with 10k rules
#   4  kernel memory per policy entry (map memlock with N entries minus with none)
#
# --quick skips the 1M-entry rule set and shortens every measurement (for trying changes only).
# Everything it creates (network namespaces, veth, iptables rules, pins, iperf3 server) is
# removed on exit, failure or interruption. Addresses: 198.18.0.0/15 only.
#
# The RPC layer (calls/s, latency, mutual-TLS handshakes) has its own benchmark: tests/bench/rpc.sh
# (loopback only, no root, about 3 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
build=${BH_BENCH_BUILD:-$top/build-bench}

quick=0
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	*) echo "usage: tests/bench/run.sh [--quick]" >&2; exit 2 ;;
	esac
done
if [ "$(id -u)" -ne 0 ]; then
	echo "tests/bench/run.sh: run as root (BPF programs, network namespaces, iptables)" >&2
	exit 1
fi
for tool in cmake ip iptables-restore iperf3 jq column; do
	command -v "$tool" >/dev/null || { echo "tests/bench/run.sh: $tool is missing" >&2; exit 1; }
done

if [ $quick = 1 ]; then
	pkt_args=(--runs 3 --max-entries 100000)
	apply_reps=3 rounds=1 secs=2
else
	pkt_args=(--runs 9)
	apply_reps=7 rounds=7 secs=5
fi

run=$$
tmp=$(mktemp -d /tmp/bh-bench.XXXXXX)
rows=$tmp/rows
ns_ipt=bhb-ipt-$run ns_c=bhb-c-$run ns_s=bhb-s-$run
bench=$build/tests/bench/bh_bench

cleanup() {
	set +e
	if [ -s "$tmp/iperf3.pid" ]; then
		kill "$(cat "$tmp/iperf3.pid")" 2>/dev/null
	fi
	for ns in "$ns_ipt" "$ns_c" "$ns_s"; do
		[ -e "/run/netns/$ns" ] && ip netns del "$ns"
	done
	# bh_bench detaches its datapaths itself; this is for an interrupted run.
	rm -rf /sys/fs/bpf/bulkhead/bench-"$run"-* 2>/dev/null
	rmdir /sys/fs/bpf/bulkhead 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "== $*" >&2; }
row() { local IFS='|'; echo "ROW|$*" >>"$rows"; }

say "build ($build)"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target bh_bench >/dev/null

t_start=$(date +%s)

# ---- 1 + 4: ns per packet, snapshot apply, memory ------------------------------------------
say "1/3 ns per packet, snapshot apply, memory (BPF_PROG_TEST_RUN, private netns)"
"$bench" pkt --run-id "$run" "${pkt_args[@]}" | grep '^ROW|' >>"$rows"

# ---- 2: delta apply against iptables-restore -----------------------------------------------
say "2/3 delta apply against iptables-restore"
ip netns add "$ns_ipt"
"$bench" apply --run-id "$run" --ipt-netns "$ns_ipt" --reps "$apply_reps" |
	grep '^ROW|' >>"$rows"
ip netns del "$ns_ipt"

# ---- 3: throughput through a veth pair -----------------------------------------------------
say "3/3 throughput: iperf3 through a veth pair, $rounds round(s) of ${secs}s per setup"
client=198.18.0.1 server=198.18.0.2 port=5201
ip netns add "$ns_c"
ip netns add "$ns_s"
ip -n "$ns_c" link add bhb-c type veth peer name bhb-s netns "$ns_s"
ip -n "$ns_c" addr add "$client/24" dev bhb-c
ip -n "$ns_s" addr add "$server/24" dev bhb-s
for ns in "$ns_c" "$ns_s"; do
	ip -n "$ns" link set lo up
done
ip -n "$ns_c" link set bhb-c up
ip -n "$ns_s" link set bhb-s up
ip netns exec "$ns_s" iperf3 -s -D -B "$server" -p "$port" --pidfile "$tmp/iperf3.pid"
for _ in $(seq 50); do
	ip netns exec "$ns_s" ss -ltnH "sport = :$port" | grep -q . && break
	sleep 0.1
done

"$bench" ipt-rules --rules 10000 --port "$port" >"$tmp/ipt"
"$bench" ipt-rules --rules 10000 --port "$port" --established-first >"$tmp/ipt-est"
printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' \
	>"$tmp/ipt-empty"

client_iperf=(ip netns exec "$ns_c" iperf3 -c "$server" -p "$port" -P 1 -J)
gbps() { jq -r '.end.sum_received.bits_per_second / 1e9' "$1"; }
guard=("$bench" guard --run-id "$run" --netns "$ns_s" --ifname bhb-s --port "$port" --rules 10000)

# Enforcement check: with Bulkhead on, a SYN to a port no rule allows is dropped (the connect
# times out) where without it the server's kernel refuses at once.
probe="timeout 2 bash -c 'exec 3<>/dev/tcp/$server/5202' 2>/dev/null; [ \$? -eq 124 ]"
if ! "${guard[@]}" -- ip netns exec "$ns_c" bash -c \
	"$probe && iperf3 -c $server -p $port -t 1 >/dev/null" 2>"$tmp/guard.log"; then
	cat "$tmp/guard.log" >&2
	echo "tests/bench/run.sh: Bulkhead did not enforce on the veth: no throughput figures" >&2
	exit 1
fi

# iptables: the rule that matches is the last one; check that it is the one counting packets.
ipt_last_pkts() { ip netns exec "$ns_s" iptables -w -nvx -L INPUT | awk 'END { print $1 }'; }

"${client_iperf[@]}" -t 1 >/dev/null # warm-up
declare -a v_none v_bh v_ipt v_est r_bh r_bh_ipt r_ipt r_est
for r in $(seq "$rounds"); do
	"${client_iperf[@]}" -t "$secs" >"$tmp/none.json"
	v_none+=("$(gbps "$tmp/none.json")")

	"${guard[@]}" -- "${client_iperf[@]}" -t "$secs" >"$tmp/bh.json" 2>"$tmp/guard.log" ||
		{ cat "$tmp/guard.log" >&2; exit 1; }
	v_bh+=("$(gbps "$tmp/bh.json")")

	ip netns exec "$ns_s" iptables-restore <"$tmp/ipt"
	"${client_iperf[@]}" -t "$secs" >"$tmp/ipt.json"
	last=$(ipt_last_pkts)
	ip netns exec "$ns_s" iptables-restore <"$tmp/ipt-empty"
	if [ "$last" -lt 1000 ]; then
		echo "tests/bench/run.sh: iptables' last rule matched $last packets" >&2
		exit 1
	fi
	v_ipt+=("$(gbps "$tmp/ipt.json")")

	ip netns exec "$ns_s" iptables-restore <"$tmp/ipt-est"
	"${client_iperf[@]}" -t "$secs" >"$tmp/est.json"
	ip netns exec "$ns_s" iptables-restore <"$tmp/ipt-empty"
	v_est+=("$(gbps "$tmp/est.json")")
	# Ratios within the round: the machine's load drifts between rounds more than within one.
	r_bh+=("$(awk "BEGIN { print ${v_bh[-1]} / ${v_none[-1]} }")")
	r_bh_ipt+=("$(awk "BEGIN { print ${v_bh[-1]} / ${v_ipt[-1]} }")")
	r_ipt+=("$(awk "BEGIN { print ${v_ipt[-1]} / ${v_none[-1]} }")")
	r_est+=("$(awk "BEGIN { print ${v_est[-1]} / ${v_none[-1]} }")")
	say "   round $r: Gbit/s unfiltered $(printf %.2f "${v_none[-1]}")," \
	    "Bulkhead $(printf %.2f "${v_bh[-1]}"), iptables $(printf %.2f "${v_ipt[-1]}")," \
	    "iptables+established $(printf %.2f "${v_est[-1]}")"
done
kill "$(cat "$tmp/iperf3.pid")" 2>/dev/null || true
rm -f "$tmp/iperf3.pid"

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
	print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
none=$(median "${v_none[@]}") bh=$(median "${v_bh[@]}")
ipt=$(median "${v_ipt[@]}") est=$(median "${v_est[@]}")
q_bh=$(median "${r_bh[@]}") q_bh_ipt=$(median "${r_bh_ipt[@]}")
q_ipt=$(median "${r_ipt[@]}") q_est=$(median "${r_est[@]}")
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
ok_if() { awk "BEGIN { exit !($1) }" && echo ok || echo MISS; }
gb() { calc %.2f "$1"; }
stream="1 TCP stream, ${secs}s, median of $rounds rounds"
row "3 throughput" "unfiltered veth ($stream)" "$(gb "$none") Gbit/s" "(the baseline)" "1.00x" "-" "-"
row "3 throughput" "Bulkhead, 10k rules, allowed by one" "$(gb "$bh") Gbit/s" \
	"unfiltered $(gb "$none") Gbit/s" "$(calc %.3fx "$q_bh")" ">= 0.90x" "$(ok_if "$q_bh >= 0.90")"
row "3 throughput" "Bulkhead, 10k rules, allowed by one" "$(gb "$bh") Gbit/s" \
	"iptables 10k linear $(gb "$ipt") Gbit/s" "$(calc %.2fx "$q_bh_ipt")" "a multiple (>= 2x)" \
	"$(ok_if "$q_bh_ipt >= 2")"
row "3 throughput" "iptables, 10k rules linear INPUT, match last" "$(gb "$ipt") Gbit/s" \
	"unfiltered $(gb "$none") Gbit/s" "$(calc %.3fx "$q_ipt")" "-" "-"
row "3 throughput" "iptables, same + ESTABLISHED accept first" "$(gb "$est") Gbit/s" \
	"unfiltered $(gb "$none") Gbit/s" "$(calc %.3fx "$q_est")" "-" "-"
ip netns del "$ns_c"
ip netns del "$ns_s"

# ---- the table -----------------------------------------------------------------------------
t_total=$(($(date +%s) - t_start))
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$top" status --porcelain -- bpf agent common 2>/dev/null | grep -q . && echo "+dirty" || true)
echo
echo "Bulkhead datapath benchmark: commit $commit$dirty, kernel $(uname -r), $(nproc) CPUs" \
	"($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(date -u +%FT%TZ)," \
	"${t_total}s"
echo "iptables $(iptables --version | awk '{ print $2, $3 }'), rcu_expedited=$(cat /sys/kernel/rcu_expedited 2>/dev/null || echo ?)"
echo
{
	echo "section|case|value|baseline (same run)|ratio|target|result"
	sort -s -t'|' -k2,2 "$rows" | cut -d'|' -f2-
} | column -t -s '|'
misses=$(cut -d'|' -f8 "$rows" | grep -c '^MISS$' || true)
cat <<EOF

ns/pkt: median of ${pkt_args[1]} runs of BPF_PROG_TEST_RUN (1M repeats each, the kernel's average); each run
  visits every case and the empty program in turn. "parts": single operations the program does.
apply: medians of $apply_reps; iptables times run from fork to exit (process start shown on its own row).
throughput: ratios are medians of per-round ratios (each round runs every setup once).
memory: fdinfo memlock of both policy generations with N entries minus with none, after settle.
$misses target(s) missed
EOF
