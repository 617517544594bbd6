#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The propagation benchmark, run on demand (not part of CTest): how long after `bulkhead apply`
# returns does every node enforce the change? A real controller on loopback and N real agents
# (`bulkhead-agent run`), each protecting its own node namespace's eth0 (attach=host, labels
# app=svc, idx=I) with a real datapath, on one bridge with a client namespace outside the
# inventory. A listener runs on tcp/7000 in every node; bh_bench_propagation, in the client,
# sends a fresh TCP connection attempt to every node every --interval-ms and runs the `bulkhead
# apply` itself, so the apply's start and return and every node's first packet under the new
# verdict are on one clock.
#
#   setup     default-deny ingress for app=svc, and a policy letting the client reach tcp/7001
#             (applied with --wait: every node acknowledged)
#   rounds    `bulkhead apply` (no --wait) of the same policy on tcp/7000 (allow), then back on
#             tcp/7001 (deny), alternating: per node, the first SYN-ACK after the allow, or the
#             first SYN left unanswered after the deny, minus the moment the command returned
#             (and minus the moment it started). Fresh connections only.
#   --wait    two more rounds with `bulkhead apply --wait`: when it returns, against the last
#             node's first packet under the new verdict; and whether any node still showed the
#             old verdict to an attempt made after it returned (there must be none)
#   baseline  (same run) one node without agent or controller, its rule set changed by
#             `bulkhead-agent dataplane apply` of a one-line delta, probed the same way
#
#   tests/bench/propagation.sh [--quick] [--rounds R] [--interval-ms MS] [--connect] [--budget S] [N]
#
# N nodes (default 100, at most 1000: one bridge takes 1024 ports). --rounds: no-wait rounds
# (default 6, even). --quick: N=5, 2 rounds. As root; builds into build-prop/ (or
# $BH_BENCH_BUILD). Node namespaces are bhp-XXXX-n001..., addresses 198.18.(I/250).(I%250+1)/15,
# the client 198.19.255.1, the baseline node 198.19.255.2. Everything it creates (agents and
# controller by pid, the listener, namespaces, pins /sys/fs/bpf/bulkhead/bhp-XXXX-*, the temp
# dir) is removed on exit, failure or Ctrl-C, and it stops itself after --budget seconds (default
# 300 + 6 s per node). Running it under `setsid` keeps it out of other jobs' process groups.
#
# The prober: the attempts are bare SYNs from a raw socket (the node's kernel answers SYN-ACK, the
# client's resets it), half the CPU of full non-blocking connects (--connect), and the prober runs
# SCHED_FIFO so that the processes it watches cannot delay its attempts and clock readings. An
# attempt still costs 20-25 us of CPU here (its whole path through two namespaces, a bridge
# and the datapath), and on 2 CPUs the prober competes with the agents it measures: the interval
# is 2 ms up to 40 nodes, N/20 ms past that (5 ms at 100 nodes: 20,000 SYNs a second, a third
# to half of one CPU). At 2 ms for 100 nodes it took three quarters of a CPU and the propagation
# it measured slowed (p50 from the apply's start 146 ms, against 98-120 ms at 5 ms).
# The agents' deny events are limited to 10/s per CPU (default 100): each dropped SYN would
# raise one, and in this VM an event's wakeup (irq_work: an APIC write) costs more than the SYN.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
top=$PWD
build=${BH_BENCH_BUILD:-$top/build-prop}

usage() {
	echo "usage: tests/bench/propagation.sh [--quick] [--rounds R] [--interval-ms MS] [--connect]" \
		"[--budget S] [N]" >&2
	exit 2
}
N=100 rounds=6 interval='' budget='' mode=--syn
while [ $# -gt 0 ]; do
	case $1 in
	--quick) N=5 rounds=2 ;;
	--rounds) [ $# -ge 2 ] || usage; rounds=$2; shift ;;
	--interval-ms) [ $# -ge 2 ] || usage; interval=$2; shift ;;
	--budget) [ $# -ge 2 ] || usage; budget=$2; shift ;;
	--connect) mode= ;;
	[0-9]*) N=$1 ;;
	*) usage ;;
	esac
	shift
done
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 1000 ] || usage
[[ $rounds =~ ^[0-9]+$ ]] && [ "$rounds" -ge 2 ] && [ $((rounds % 2)) = 0 ] || usage
# the prober's share of the machine stays bounded (see the top)
interval=${interval:-$(awk "BEGIN { print ($N <= 40) ? 2 : $N / 20 }")}
[[ $interval =~ ^[0-9.]+$ ]] || usage
budget=${budget:-$((300 + 6 * N))}
[[ $budget =~ ^[0-9]+$ ]] || usage
[ "$(id -u)" = 0 ] || { echo "tests/bench/propagation.sh: run as root (BPF, namespaces)" >&2; exit 1; }
for tool in cmake ip bridge jq awk setsid; do
	command -v "$tool" >/dev/null || { echo "tests/bench/propagation.sh: $tool is missing" >&2; exit 1; }
done
if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf || { echo "tests/bench/propagation.sh: no bpffs" >&2; exit 1; }
fi
if others=$(pgrep -af 'bh_bench|bulkhead-agent run|bulkhead-controller serve'); then
	echo "tests/bench/propagation.sh: other Bulkhead processes are running; figures will suffer:" >&2
	echo "$others" >&2
fi

say() { echo "== $*" >&2; }
die() { echo "tests/bench/propagation.sh: $*" >&2; exit 1; }

P=bhp-$(printf '%04x' $(((RANDOM << 1 ^ $$) & 0xffff)))
T=$(mktemp -d /tmp/bh-bench-prop.XXXXXX)
PORT=7000
CLIENT=198.19.255.1 BASE=198.19.255.2
hub=$P-hub client=$P-client basens=$P-base
CTL=$build/controller/bulkhead-controller
CLI=$build/controller/cli/bulkhead
AGENT=$build/agent/bulkhead-agent
PROBE=$build/tests/bench/bh_bench_propagation
export BULKHEAD_ADMIN_SOCKET=ipc://$T/controller/admin.sock
node() { printf '%s-n%03d' "$P" "$1"; }
addr() { echo "198.18.$(($1 / 250)).$(($1 % 250 + 1))"; }

CPID='' SPID='' WPID=''
declare -a APID=()
cleanup() {
	set +e
	trap - INT TERM
	[ -n "$WPID" ] && kill "$WPID" 2>/dev/null
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null
	# agents: SIGTERM (they leave their datapath enforcing), then what is left is killed
	for p in "${APID[@]}"; do kill "$p" 2>/dev/null; done
	for _ in $(seq 100); do
		alive=0
		for p in "${APID[@]}"; do kill -0 "$p" 2>/dev/null && alive=1 && break; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${APID[@]}"; do kill -9 "$p" 2>/dev/null; done
	if [ -n "$CPID" ]; then
		kill "$CPID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$CPID" 2>/dev/null
	fi
	# datapaths: detached while their namespace exists, then the pins go
	for d in /sys/fs/bpf/bulkhead/"$P"-*; do
		[ -e "$d" ] || continue
		n=${d##*/}
		[ -e "/run/netns/$n" ] && "$AGENT" dataplane -n "$n" --netns "$n" detach >/dev/null 2>&1
		rm -rf "$d"
	done
	rmdir /sys/fs/bpf/bulkhead 2>/dev/null
	for n in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$P-"); do
		for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$n"
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'echo "tests/bench/propagation.sh: interrupted" >&2; exit 130' INT TERM
# bounded: past the budget the script stops itself (the EXIT trap cleans up)
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep "$budget" &
	s=$!
	wait $s && echo "tests/bench/propagation.sh: over the budget of ${budget}s: stopping" >&2 &&
		kill -TERM $$ 2>/dev/null
) &
WPID=$!

say "build ($build)"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || die "cmake failed"
cmake --build "$build" -j2 --target bulkhead-controller bulkhead bulkhead-agent bh_bench_propagation \
	>/dev/null || die "build failed"
t_start=$(date +%s)
avail() { awk '/^MemAvailable/ { print $2 }' /proc/meminfo; }
mem0=$(avail)

# ---- topology ---------------------------------------------------------------------------------
say "topology: $N node namespaces, a client and a baseline node on one bridge ($P-*)"
ip netns add "$hub" || die "ip netns add"
ip -n "$hub" link set lo up
ip -n "$hub" link add br0 type bridge || die "bridge"
ip -n "$hub" link set br0 up
# Fixed MAC addresses, permanent neighbour entries both ways between the client and every node,
# and static forwarding entries on the bridge: no ARP broadcast (copied to every port: with 500
# nodes, 2.5 ms of CPU each) and no unknown-unicast flooding during a measurement.
mac() { printf '02:00:c6:%02x:%02x:%02x' $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
CMAC=$(mac 0x13ff01)
# plug NSNAME VETH ADDRESS MAC
plug() {
	ip netns add "$1" || return 1
	ip -n "$1" link set lo up
	ip -n "$hub" link add "$2" type veth peer name eth0 netns "$1" address "$4" || return 1
	ip -n "$hub" link set "$2" master br0 up
	ip -n "$1" addr add "$3/15" dev eth0
	ip -n "$1" link set eth0 up
	bridge -n "$hub" fdb replace "$4" dev "$2" master static
	echo "neigh replace $3 lladdr $4 dev eth0 nud permanent" >>"$T/client-neigh"
	[ "$4" = "$CMAC" ] || ip -n "$1" neigh replace "$CLIENT" lladdr "$CMAC" dev eth0 nud permanent
}
: >"$T/client-neigh"
plug "$client" vclient "$CLIENT" "$CMAC" || die "client namespace"
plug "$basens" vbase "$BASE" "$(mac 0x13ff02)" || die "baseline namespace"
: >"$T/targets"
for i in $(seq "$N"); do
	plug "$(node "$i")" "v$i" "$(addr "$i")" "$(mac $((0x120000 + i)))" || die "node namespace $i"
	echo "$(node "$i") $(addr "$i")" >>"$T/targets"
done
grep -v " $CMAC " "$T/client-neigh" | ip -n "$client" -batch - || die "the client's neighbour entries"
echo "$basens $BASE" >"$T/targets-base"
# every node answers on tcp/7000 (one listener process, a socket in each namespace)
: >"$T/serve.out"
mapfile -t nodes_ns < <(awk '{ print $1 }' "$T/targets")
setsid "$PROBE" serve --port "$PORT" --max-seconds "$budget" "$basens" "${nodes_ns[@]}" \
	</dev/null >"$T/serve.out" 2>"$T/serve.log" &
SPID=$!
for _ in $(seq 100); do grep -q ready "$T/serve.out" && break; sleep 0.1; done
grep -q ready "$T/serve.out" || die "listeners: $(cat "$T/serve.log")"

# ---- controller, enrollment, agents ------------------------------------------------------------
say "controller on 127.0.0.1, $N agents enrolled and started"
"$CTL" init --state-dir "$T/controller" --address 127.0.0.1 >"$T/controller-init.log" 2>&1 ||
	die "controller init: $(tail -n 3 "$T/controller-init.log")"
setsid "$CTL" serve --state-dir "$T/controller" --listen tls+tcp://127.0.0.1:0 \
	--enroll-listen tls+tcp://127.0.0.1:0 --admin "$BULKHEAD_ADMIN_SOCKET" -v notice \
	</dev/null >"$T/controller.log" 2>&1 &
CPID=$!
for _ in $(seq 100); do
	[ -s "$T/controller/ports" ] && [ -S "$T/controller/admin.sock" ] && break
	kill -0 "$CPID" 2>/dev/null || break
	sleep 0.1
done
[ -s "$T/controller/ports" ] || die "controller: $(tail -n 3 "$T/controller.log")"
eport=$(awk '/^enroll/ { print $2 }' "$T/controller/ports")
tok=$("$CLI" token create --ttl 30m --uses "$N" 2>/dev/null) || die "token create"
mkdir -p "$T/agents"
t0=$(date +%s.%N)
for i in $(seq "$N"); do
	n=$(node "$i")
	"$AGENT" enroll --controller "127.0.0.1:$eport" --token "$tok" --name "$n" \
		--state-dir "$T/agents/$n" >>"$T/enroll.log" 2>&1 || die "enroll $n: $(tail -n 2 "$T/enroll.log")"
	# small maps: 100 datapaths with the default sizes would pin a few GiB of kernel memory;
	# deny events at 10/s per CPU (see the top)
	cat >"$T/agents/$n.yaml" <<EOF
state-dir: $T/agents/$n
netns: $n
first-start: observe
status-socket: $T/agents/$n.sock
log-level: notice
maps: {policy: 1024, ipcache: 1024, endpoints: 16, conntrack: 16384, flows: 4096,
       events-per-second: 10}
endpoints:
  - name: svc-$(printf %03d "$i")
    interface: eth0
    attach: host
    addresses: [$(addr "$i")]
    labels: {app: svc, idx: "$i"}
EOF
done
t_enroll=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
t0=$(date +%s.%N)
for i in $(seq "$N"); do
	n=$(node "$i")
	setsid "$AGENT" run --config "$T/agents/$n.yaml" </dev/null >"$T/agents/$n.log" 2>&1 &
	APID+=($!)
done
# every agent connected and reported its endpoint
acked_all() { # acked_all MIN_REVISION: every node enforces its newest rule set, at least MIN
	local k
	k=$("$CLI" get nodes -o json 2>/dev/null | jq "[.[] | .enrollment | select(. != null and
		.revision_acked >= .revision_wanted and .revision_acked >= $1)] | length")
	[ "${k:-0}" -ge "$N" ]
}
end=$((SECONDS + 60 + N))
until [ "$("$CLI" get workloads -o json 2>/dev/null | jq length)" = "$N" ] && acked_all 1; do
	[ $SECONDS -lt $end ] ||
		die "agents did not all report and sync; their last words: $(tail -qn 1 "$T"/agents/*.log |
			sed 's/^[^:]*: //' | sort | uniq -c | sort -rn | head -3)"
	for p in "${APID[@]}"; do
		kill -0 "$p" 2>/dev/null || die "an agent exited ($T/agents: look there)"
	done
	sleep 0.5
done
t_agents=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
say "   enrolled in ${t_enroll}s; started, reported and synced in ${t_agents}s"
# what the fleet costs: memory the machine no longer has, and the agents' own share of it
mem_fleet=$((mem0 - $(avail)))
rss=0
for p in "${APID[@]}"; do
	rss=$((rss + $(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)))
done

# ---- policies ---------------------------------------------------------------------------------
cat >"$T/isolate.yaml" <<'EOF'
kind: Policy
name: svc-isolated
selector: {matchLabels: {app: svc}}
policyTypes: [Ingress]
ingress: []
EOF
toggle() { # toggle PORT: the client may reach app=svc on tcp/PORT
	cat <<EOF
kind: Policy
name: svc-from-client
selector: {matchLabels: {app: svc}}
ingress:
  - from: [{cidr: $CLIENT/32}]
    ports: [{protocol: TCP, port: $1}]
EOF
}
toggle "$PORT" >"$T/allow.yaml"
toggle $((PORT + 1)) >"$T/deny.yaml"
revision() { "$CLI" revisions -o json | jq -r '(.[] | select(.current) | .revision) // 0'; }
say "setup: app=svc default-deny ingress, client -> tcp/$((PORT + 1)) only (apply --wait)"
"$CLI" apply --wait=120s -f "$T/isolate.yaml" -f "$T/deny.yaml" >"$T/setup.log" 2>&1 ||
	die "setup apply: $(cat "$T/setup.log")"
acked_all "$(revision)" || die "setup: not every node acknowledged"

# the baseline node: the same datapath, driven by hand
bl=("$AGENT" dataplane -n "$basens" --netns "$basens" --policy-max 1024 --ipcache-max 1024
	--endpoints-max 16 --ct-max 16384 --flows-max 4096 --events-rate 10)
cat >"$T/base-1.txt" <<EOF
revision 1
endpoint svc-base if=eth0 id=300 mode=enforce attach=host ingress=deny:100
ipcache $CLIENT/32 301
rule 300 ingress 301 tcp/$((PORT + 1)) allow 17
EOF
"${bl[@]}" apply "$T/base-1.txt" >"$T/base.log" 2>&1 || die "baseline datapath: $(cat "$T/base.log")"

# ---- rounds -------------------------------------------------------------------------------------
probe=("$PROBE" probe --netns "$client" --port "$PORT" --interval-ms "$interval" --timeout-ms 100
	--settle-ms 400 --max-ms 30000 --rt ${mode:+"$mode"})
# round NAME allow|deny TARGETS COMMAND...: one measured change; per-node lines in $T/NAME.out
round() {
	local name=$1 dir=$2 targets=$3 rc
	shift 3
	"${probe[@]}" --to "$dir" --targets "$targets" --cmd-log "$T/$name.cmd" -- "$@" \
		>"$T/$name.out" 2>"$T/$name.err"
	rc=$?
	[ $rc = 0 ] || die "round $name: $(cat "$T/$name.err")"
	awk -v r="$name" '$1 == "cmd" && $3 != 0 { print "round " r ": the command failed"; exit 1 }' \
		"$T/$name.out" || die "$(cat "$T/$name.cmd")"
	awk -v r="$name" -v d="$dir" '$1 == "node" { printf "%s %s %s\n", r, d, $0 }' "$T/$name.out" \
		>>"$T/nodes"
	awk -v r="$name" '$1 == "cmd" { printf "%s %s\n", r, $2; ran = $2 } $1 == "probe" {
		printf "   command ran %.1f ms; probe: %d attempts in %.1f s (%.0f/s), %.0f%% of a CPU\n",
			ran / 1e3, $2, $3, $2 / $3, 100 * $4 / $3 > "/dev/stderr"
		printf "%s %.0f %.3f\n", r, $2 / $3, $4 / $3 >> "'"$T/rates"'" }' "$T/$name.out" >>"$T/cmds"
}
settled() { # after a round: every agent acknowledged
	local end=$((SECONDS + 30)) r
	r=$(revision)
	until acked_all "$r"; do
		[ $SECONDS -lt $end ] || die "not every node acknowledged revision $r"
		sleep 0.2
	done
	sleep 0.5
}
: >"$T/nodes"
: >"$T/cmds"
dirs=(allow deny)
for r in $(seq "$rounds"); do
	d=${dirs[$(((r - 1) % 2))]}
	say "round $r/$rounds: bulkhead apply ($d), $N nodes"
	round "fleet-$r" "$d" "$T/targets" "$CLI" apply -f "$T/$d.yaml"
	settled
done
for r in 1 2; do
	d=${dirs[$(((r - 1) % 2))]}
	say "--wait round $r/2: bulkhead apply --wait ($d), $N nodes"
	round "wait-$r" "$d" "$T/targets" "$CLI" apply --wait=60s -f "$T/$d.yaml"
	settled
done
brounds=$((rounds < 10 ? 10 : rounds))
for r in $(seq "$brounds"); do
	d=${dirs[$(((r - 1) % 2))]}
	if [ "$d" = allow ]; then s=+; else s=-; fi
	printf 'delta %d %d\n%srule 300 ingress 301 tcp/%d allow 18\n' "$r" $((r + 1)) "$s" "$PORT" \
		>"$T/base-delta-$r.txt"
	say "baseline round $r/$brounds: bulkhead-agent dataplane apply of a one-line delta ($d)"
	round "base-$r" "$d" "$T/targets-base" "${bl[@]}" apply "$T/base-delta-$r.txt"
	sleep 0.3
done

# ---- figures ------------------------------------------------------------------------------------
t_total=$(($(date +%s) - t_start))
# stats FILTER FIELD: n, p50, p99, max of column FIELD of $T/nodes lines matching FILTER (awk);
# "-" (never flipped) counts as infinite
stats() {
	awk "$1"' { print $'"$2"' }' "$T/nodes" | awk '$1 == "-" { $1 = 1e12 } { print $1 }' | sort -g |
		awk '{ v[NR] = $1 } END {
			if (!NR) { print "0 - - - -"; exit }
			i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
			f = "%.1f"
			printf "%d " f " " f " " f " " f "\n", NR, v[1] / 1e3, v[i50] / 1e3, v[i99] / 1e3, v[NR] / 1e3 }' |
		sed 's/1000000000.0/never/g'
}
# columns of $T/nodes: round dir "node" name addr from_return from_exec res anomalies errors attempts
# last_old
never=$(awk '$1 ~ /^(fleet|wait)-/ && $6 == "-"' "$T/nodes" | wc -l)
anom=$(awk '$1 ~ /^fleet-/ { a += $9 } END { print a + 0 }' "$T/nodes")
errs=$(awk '{ e += $10 } END { print e + 0 }' "$T/nodes")
read -r fa_n _ fa_50 fa_99 fa_max < <(stats '$1 ~ /^fleet-/ && $2 == "allow"' 6)
read -r fd_n _ fd_50 fd_99 fd_max < <(stats '$1 ~ /^fleet-/ && $2 == "deny"' 6)
read -r f_n _ f_50 f_99 f_max < <(stats '$1 ~ /^fleet-/' 6)
read -r fe_n _ fe_50 fe_99 fe_max < <(stats '$1 ~ /^fleet-/' 7)
read -r b_n _ b_50 b_99 b_max < <(stats '$1 ~ /^base-/' 6)
read -r be_n _ be_50 be_99 be_max < <(stats '$1 ~ /^base-/' 7)
res=$(awk '$1 ~ /^fleet-/ && $8 != "-" { print $8 }' "$T/nodes" | sort -g |
	awk '{ v[NR] = $1 } END { printf "%.1f", NR ? v[int(NR / 2) + 1] / 1e3 : 0 }')
ret=$(awk '$1 ~ /^fleet-/ { print $2 }' "$T/cmds" | sort -g |
	awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1e3 }')
bret=$(awk '$1 ~ /^base-/ { print $2 }' "$T/cmds" | sort -g |
	awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1e3 }')
# --wait: its run time, and the last node's first packet under the new verdict, from its start
wait_rows=$(for r in 1 2; do
	w=$(awk -v r="wait-$r" '$1 == r { printf "%.1f", $2 / 1e3 }' "$T/cmds")
	last=$(awk -v r="wait-$r" '$1 == r { print ($7 == "-" ? 1e12 : $7) }' "$T/nodes" | sort -g | tail -n 1)
	# provably not yet enforcing when --wait returned: an attempt sent after the return still
	# saw the old verdict
	after=$(awk -v r="wait-$r" '$1 == r && ($12 == "-" || $12 > 0)' "$T/nodes" | wc -l)
	printf '%s|%s|%.1f|%s\n' "${dirs[$((r - 1))]}" "$w" "$(awk "BEGIN { print $last / 1e3 }")" "$after"
done)
# what the agents say an apply of these deltas took (their log: "revision R applied (delta) in X ms")
agent_apply=$(cat "$T"/agents/*.log | sed -n 's/.*applied (delta[^)]*) in \([0-9.]*\) ms.*/\1/p' |
	sort -g | awk '{ v[NR] = $1 } END { if (!NR) { printf "none logged"; exit }
		printf "p50 %.1f ms, max %.1f ms (%d applies)", v[int((NR + 1) / 2)], v[NR], NR }')
rate=$(awk '$1 ~ /^(fleet|wait)-/ { print $2 }' "$T/rates" | sort -g |
	awk '{ v[NR] = $1 } END { printf "%.0f", v[int((NR + 1) / 2)] }')
pcpu=$(awk '$1 ~ /^(fleet|wait)-/ { print $3 }' "$T/rates" | sort -g |
	awk '{ v[NR] = $1 } END { printf "%.0f", 100 * v[int((NR + 1) / 2)] }')
# the local apply is in force when it returns: an old verdict seen by an attempt made after that
# is a fault (or, with the first new-verdict packet late too, a loaded machine delaying replies)
base_late=$(awk '$1 ~ /^base-/ && ($12 == "-" || $12 > 0)' "$T/nodes" | wc -l)
ratio=$(awk "BEGIN { printf \"%.1fx\", $fe_50 / ($be_50 > 0 ? $be_50 : 0.001) }")
ok99=$(awk "BEGIN { print ($f_99 <= 250 && \"$f_99\" != \"never\") ? \"ok\" : \"MISS\" }")
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo
echo "Bulkhead propagation benchmark: commit $commit, kernel $(uname -r), $(nproc) CPUs," \
	"$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(date -u +%FT%TZ), ${t_total}s"
echo "$N nodes (namespaces, each with its agent and datapath), 1 controller; a fresh TCP" \
	"$([ -n "$mode" ] && echo "SYN (raw socket)" || echo "connect") per node every ${interval} ms" \
	"(attempt timeout 100 ms); $rounds rounds without --wait (allow/deny alternating), 2 with" \
	"--wait, $brounds baseline rounds"
echo
{
	echo "measure|n|p50 ms|p99 ms|max ms|target"
	echo "apply returned -> node enforces (all)|$f_n|$f_50|$f_99|$f_max|p99 <= 250 ms: $ok99"
	echo "  allow (first SYN-ACK)|$fa_n|$fa_50|$fa_99|$fa_max|"
	echo "  deny (first SYN unanswered)|$fd_n|$fd_50|$fd_99|$fd_max|"
	echo "apply started -> node enforces|$fe_n|$fe_50|$fe_99|$fe_max|"
	echo "baseline: dataplane apply started -> enforces|$be_n|$be_50|$be_99|$be_max|"
	echo "baseline: dataplane apply returned -> enforces|$b_n|$b_50|$b_99|$b_max|"
} | column -t -s '|'
echo
echo "ratio, apply started -> enforces, p50: fleet $fe_50 ms / baseline $be_50 ms = $ratio"
echo "bulkhead apply (no --wait) ran ${ret} ms (median); bulkhead-agent dataplane apply ran ${bret} ms;" \
	"baseline rounds with an old verdict after it returned: $base_late"
while IFS='|' read -r d w last after; do
	echo "apply --wait ($d): returned after $w ms; the last node enforced $last ms after the start;" \
		"nodes still on the old verdict after it returned: $after"
done <<<"$wait_rows"
echo "agents' own delta applies: $agent_apply"
echo "probe: $rate attempts/s sustained (median over the fleet rounds; nominal" \
	"$(awk "BEGIN { printf \"%.0f\", $N * 1000 / $interval }")/s), using $pcpu% of a CPU (SCHED_FIFO)"
echo "resolution (gap between the last old-verdict and first new-verdict attempt): median $res ms;" \
	"never flipped: $never; anomalies (non-monotone outcomes): $anom; connect errors: $errs"
echo "setup: enrollment of $N agents ${t_enroll}s; start to all synced ${t_agents}s; memory:" \
	"$((mem_fleet / 1024)) MiB for the whole fleet ($((mem_fleet / N)) KiB per node), agents' RSS" \
	"$((rss / N)) KiB each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
