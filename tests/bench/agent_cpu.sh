#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The agent CPU benchmark, run on demand (not part of CTest): what does `bulkhead-agent run` cost
# a node that sees 10,000 new flows a second? (issue 6: "under 5% of one core"). One node of the
# namespaced fleet of deploy/fleet.sh (a controller on 127.0.0.1, node web with its agent and
# real datapath on eth0, attach=host) and the client namespace, from which bh_bench_flowgen sends
# UDP at a steady rate, every packet a new 5-tuple, allowed by policy:
#
#   conns  new connections: 4 sources x 4 destination ports (udp/5000-5003, all in one CIDR
#          peer, 198.18.10.0/24), the source port rotating: a conntrack insert per packet,
#          counted on 4 flow keys. The agent drains 4 summaries per interval.
#   keys   new flow keys: 4 sources, each its own identity (a /32 CIDR peer per source) x 25,000
#          destination ports (udp/20000-44999): 100,000 keys visited once per 10 s sweep, so
#          every packet counts on a key the agent has not drained yet. The agent drains
#          rate x interval summaries (10,000 a second) and reports them all.
#
# Each traffic runs against the same agent restarted three ways: flow export off (interval 0:
# the baseline, the agent's cost without export), every 10 s (the default) and every 1 s. The
# figure is the agent's utime + stime (/proc/PID/stat, all threads; the kernel's side of its map
# syscalls included; beside it the threads' schedstat, finer than the 10 ms tick) over a window
# of --window seconds. Keys every 10 s: the window starts halfway between two drains, after a
# warm-up that makes the two drains before it all keys traffic: it holds exactly window/10 full
# drains. Every 1 s it holds window drains +-1. Beside the CPU:
# the generator's achieved rate (and its slowest whole second), the agent's drained / sent /
# dropped summaries (its status, read just before and after the window), the controller's
# stored summaries for the node (bulkhead flows --stats) and its CPU, so that the figures show
# the flows were exported; then the verdict on the issue's target at the default interval.
#
#   tests/bench/agent_cpu.sh [--quick] [--window S] [--rate N] [--flows-map N] [--perf]
#                            [--budget S]
#
#   --quick        10 s windows: under 2 minutes (default 30 s windows: about 4 minutes), the
#                  build not counted
#   --window S     seconds measured per traffic and setting (at least 10: one 10 s drain)
#   --rate N       new flows a second (default 10000; the keys traffic has 100,000 keys: above
#                  10,000/s a key comes back within 10 s)
#   --flows-map N  the datapath's flow counter map (maps: flows, default here 262144): the
#                  agent's default, 65536, cannot hold 10 s of 10,000 new keys a second
#   --perf         also `perf record` the agent in the export windows of keys traffic and print
#                  where its time goes (sampling costs the agent a little: figures rise)
#   --budget S     stop after S seconds, the build not counted (default 330; --quick 140)
#
# As root; builds into build-agentbench/ (or $BH_BENCH_BUILD). Namespaces bha-XXXX-{hub,client,
# web}, addresses 198.18.10.0/24 (fleet.sh's, plus the generator's sources .50-.53 and
# .100-.103 on the client), the controller on 127.0.0.1. Everything it creates (agent,
# controller, generator and perf by pid, the namespaces, the pins /sys/fs/bpf/bulkhead/bha-XXXX-web,
# the temp dir) is removed on exit, failure or Ctrl-C, and it stops itself past --budget.
# A status call (bulkhead-agent status) walks the conntrack and flow maps, an entry a syscall: a
# second of the agent's loop with full maps. It is made only outside the windows, never with
# export off, and its cost is printed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
top=$PWD
build=${BH_BENCH_BUILD:-$top/build-agentbench}
me=tests/bench/agent_cpu.sh

usage_text="usage: $me [--quick] [--window S] [--rate N] [--flows-map N] [--perf] [--budget S]
Agent CPU at N new flows a second (default 10000): new connections and new flow keys, flow export
off / every 10 s / every 1 s. As root. --quick: 10 s windows, under 2 minutes."
usage() { echo "$usage_text" >&2; exit 2; }
quick=0 window='' rate=10000 flows_map=262144 perf=0 budget=''
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--window) [ $# -ge 2 ] || usage; window=$2; shift ;;
	--rate) [ $# -ge 2 ] || usage; rate=$2; shift ;;
	--flows-map) [ $# -ge 2 ] || usage; flows_map=$2; shift ;;
	--budget) [ $# -ge 2 ] || usage; budget=$2; shift ;;
	--perf) perf=1 ;;
	-h | --help) echo "$usage_text"; sed -n '3,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) usage ;;
	esac
	shift
done
window=${window:-$([ $quick = 1 ] && echo 10 || echo 30)}
budget=${budget:-$([ $quick = 1 ] && echo 140 || echo 330)}
for v in "$window" "$rate" "$flows_map" "$budget"; do [[ $v =~ ^[0-9]+$ ]] || usage; done
[ "$window" -ge 10 ] && [ "$rate" -ge 1 ] && [ "$flows_map" -ge 1024 ] || usage
[ "$(id -u)" = 0 ] || { echo "$me: run as root (BPF, namespaces)" >&2; exit 1; }
for tool in cmake ip jq awk setsid column timeout; do
	command -v "$tool" >/dev/null || { echo "$me: $tool is missing" >&2; exit 1; }
done
if [ $perf = 1 ] && ! command -v perf >/dev/null; then
	echo "$me: --perf: perf is not installed; going on without it" >&2
	perf=0
fi
if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf || { echo "$me: no bpffs at /sys/fs/bpf" >&2; exit 1; }
fi
if others=$(pgrep -af 'bh_bench|bulkhead-agent run|bulkhead-controller serve'); then
	echo "$me: other Bulkhead processes are running; figures will suffer:" >&2
	echo "$others" | sed 's/^/   /' >&2
fi

say() { echo "== [$((SECONDS - t_run))s] $*" >&2; }
t_run=$SECONDS
die() { echo "$me: $*" >&2; exit 1; }
# nap S: sleep, interruptible by the watchdog's TERM (a foreground sleep would delay the trap)
nap() { sleep "$1" & wait $!; }

PREFIX=bha-$(printf '%04x' $(((RANDOM << 1 ^ $$) & 0xffff)))
STATE=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
BUILD=$build
FLEET_FLOW_INTERVAL=10s
# shellcheck source=deploy/fleet.sh
. "$top/deploy/fleet.sh"
FLEET_TIERS=web # one node: the agent measured, and nothing else of Bulkhead on the CPUs
GEN=$build/tests/bench/bh_bench_flowgen
node=$(fleet_node web)
nsweb=$(fleet_ns web)
nsclient=$(fleet_ns client)
DST=${FLEET_ADDR4[web]}
CONN_SRC=198.18.10.50,198.18.10.51,198.18.10.52,198.18.10.53
KEY_SRC=198.18.10.100,198.18.10.101,198.18.10.102,198.18.10.103
CONN_PORTS=5000-5003
KEY_PORTS=20000-44999

WPID='' GPID='' PPID_PERF=''
cleanup() {
	set +e
	trap - INT TERM
	[ -n "$WPID" ] && kill "$WPID" 2>/dev/null
	[ -n "$PPID_PERF" ] && kill "$PPID_PERF" 2>/dev/null
	[ -n "$GPID" ] && kill "$GPID" 2>/dev/null
	# agent, controller, what runs in the namespaces, the pins, the namespaces, STATE
	fleet_down >/dev/null 2>&1
	[ -n "$PPID_PERF" ] && wait "$PPID_PERF" 2>/dev/null
	rm -rf "$STATE"
}
trap cleanup EXIT
trap 'echo "$me: interrupted" >&2; exit 130' INT TERM

say "build ($build)"
# bounded on its own (a build from scratch takes minutes here); the budget is the benchmark's
timeout 1200 cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
	die "cmake failed"
timeout 1200 cmake --build "$build" -j2 --target bulkhead-controller bulkhead bulkhead-agent \
	bh_bench_flowgen >"$STATE/build.log" 2>&1 || die "build failed: $(tail -n 5 "$STATE/build.log")"
# bounded: past the budget the script stops itself (the EXIT trap cleans up)
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep "$budget" &
	s=$!
	wait $s && echo "$me: over the budget of ${budget}s: stopping" >&2 && kill -TERM $$ 2>/dev/null
) &
WPID=$!
t_start=$SECONDS
hz=$(getconf CLK_TCK)

# ---- the node ------------------------------------------------------------------------------------
say "fleet: controller on 127.0.0.1, node $node with its agent, client $nsclient"
fleet_topology || die "topology"
for a in ${CONN_SRC//,/ } ${KEY_SRC//,/ }; do
	ip -n "$nsclient" addr add "$a/24" dev eth0 || die "client address $a"
done
fleet_controller_start || die "controller: $(tail -n 3 "$STATE/controller.log")"
fleet_enroll || die "enrollment: $(tail -n 3 "$STATE/enroll.log")"
yaml=$STATE/agent-web.yaml
# an export interval (rewritten per setting), and a flow map that holds an interval of new keys
grep -q '^flow-export:' "$yaml" || sed -i 's/^endpoints:/flow-export: {interval: 10s}\nendpoints:/' "$yaml"
sed -i "s/^endpoints:/maps: {flows: $flows_map}\nendpoints:/" "$yaml"

synced() {
	[ "$(fleet_cli get nodes -o json 2>/dev/null | jq --arg n "$node" '[.[] | select(.name == $n and
		.enrollment != null and .enrollment.revision_acked > 0 and
		.enrollment.revision_acked >= .enrollment.revision_wanted)] | length')" = 1 ]
}
wait_for() { # wait_for SECONDS COMMAND...
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}
# connected N: the agent's log says "connected to" more than N times (its status would say so
# too, at the cost of a walk over full maps)
connected() { [ "$(grep -c ': connected to ' "$STATE/agent-web.log" 2>/dev/null)" -gt "$1" ]; }
agent_pid() { cat "$STATE/agent-web.pid"; }
# agent_restart INTERVAL: the agent again with that flow-export interval, the counters its
# predecessor left in the map drained away (they belong to no window), connected and in sync
agent_restart() {
	local before
	before=$(grep -c ': connected to ' "$STATE/agent-web.log" 2>/dev/null)
	fleet_agent_stop web
	sed -i "s/^flow-export: .*/flow-export: {interval: $1}/" "$yaml"
	"$FLEET_AGENT" dataplane -n "$node" --netns "$nsweb" flows >/dev/null 2>&1
	fleet_agent_start web
	# its flow timer starts once the datapath is loaded: a few hundred ms (see until_mid_interval)
	t_agent=$(awk "BEGIN { print $(date +%s.%N) + 0.3 }")
	wait_for 30 connected "${before:-0}" || die "the agent did not connect: $(tail -n 3 "$STATE/agent-web.log")"
	wait_for 30 synced || die "the agent did not sync"
}

fleet_agent_start web
wait_for 40 synced || die "the agent did not sync: $(tail -n 3 "$STATE/agent-web.log")"
cat >"$STATE/policy.yaml" <<EOF
kind: Policy
name: flowgen
selector: {matchLabels: {app: web}}
ingress:
  - from: [{cidr: 198.18.10.0/24}]
    ports: [{protocol: UDP, port: ${CONN_PORTS%-*}, endPort: ${CONN_PORTS#*-}}]
  - from: [$(for a in ${KEY_SRC//,/ }; do printf '{cidr: %s/32}, ' "$a"; done | sed 's/, $//')]
    ports: [{protocol: UDP, port: ${KEY_PORTS%-*}, endPort: ${KEY_PORTS#*-}}]
EOF
out=$(fleet_cli apply --wait=30s -f "$STATE/policy.yaml" 2>&1) || die "apply: $out"
wait_for 20 synced || die "the agent did not acknowledge the policy"
t_setup=$((SECONDS - t_start))

# ---- measuring -----------------------------------------------------------------------------------
ticks() { # ticks PID: utime + stime, all threads, in clock ticks
	sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}
oncpu() { # oncpu PID: ns on a CPU, summed over the live threads (schedstat: finer than ticks)
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ n += $1 } END { printf "%.0f", n }'
}
ctl_stats() { # the controller's reporting figures for the node: summaries reports not_counted
	fleet_cli flows --stats --since 1m --limit 1 -o json 2>/dev/null | jq -r --arg n "$node" \
		'[.nodes[] | select(.node == $n)][0] // {} |
		"\(.summaries // 0) \(.reports // 0) \(.kernel_flows_not_counted // 0)"'
}
agent_counters() { # drained sent dropped spooled
	"$FLEET_AGENT" status --socket "$STATE/agent-web.sock" --raw 2>/dev/null | awk '
		$1 == "flow_summaries_drained" { d = $2 } $1 == "flow_summaries_sent" { s = $2 }
		$1 == "flow_summaries_dropped" { x = $2 } $1 == "flow_summaries_spooled" { p = $2 }
		END { print d + 0, s + 0, x + 0, p + 0 }'
}
# until_mid_interval EVERY: sleeps until halfway between two of the agent's drains (its flow timer
# repeats every EVERY seconds from its start, t_agent): a window that starts there and spans whole
# intervals holds exactly one drain per interval, each at least EVERY/2 away from its edges
until_mid_interval() {
	nap "$(awk -v now="$(date +%s.%N)" -v t0="$t_agent" -v i="$1" 'BEGIN {
		f = (now - t0) / i - int((now - t0) / i)
		w = (0.5 - f) * i
		printf "%.3f", w < 0 ? w + i : w }')"
}
: >"$STATE/rows"
# measure SETTING TRAFFIC WARMUP EVERY: one window, a row in STATE/rows. The traffic runs WARMUP
# seconds, then (EVERY > 0: export every EVERY s) until halfway between two drains, before it.
measure() {
	local set=$1 traffic=$2 warm=$3 every=$4 src ports apid cpid t0 t1 a0 a1 c0 c1 s0 s1 g
	local ts0 ts1 sa0 sa1 sw=0 n0 n1
	if [ "$traffic" = conns ]; then src=$CONN_SRC ports=$CONN_PORTS; else src=$KEY_SRC ports=$KEY_PORTS; fi
	apid=$(agent_pid)
	cpid=$(cat "$STATE/controller.pid")
	say "   $traffic: $rate/s, ${warm}s of warm-up$([ "$every" = 10 ] && [ "$traffic" = keys ] &&
		echo " and on to the middle of an interval"), ${window}s measured"
	g=$STATE/gen-$set-$traffic.out
	# stopped (SIGTERM: it prints its figures) when the window ends
	ip netns exec "$nsclient" "$GEN" --dst "$DST" --src "$src" --ports "$ports" --rate "$rate" \
		--seconds "$(awk "BEGIN { print int($warm + $every + $window + 10) }")" >"$g" 2>"$g.err" &
	GPID=$!
	nap "$warm"
	# Keys every 10 s: the window starts halfway between two drains (the status call just before
	# it takes a second or so: far from either). Connections: a drain of a few keys costs little,
	# a window of W s holds W/10 drains, rarely one more. Every 1 s a status call delays a drain,
	# which shifts the timer: no alignment, a window of W s holds W drains +-1.
	[ "$every" = 10 ] && [ "$traffic" = keys ] && until_mid_interval "$every"
	kill -0 "$GPID" 2>/dev/null || die "the generator stopped: $(cat "$g.err")"
	# The counters just before and after the window, the CPU figures inside: the status call's
	# own cost (it walks the maps) stays out. Export off: nothing to count, no status call.
	s0='0 0 0 0 0 0 0' s1=$s0 ts0=0 ts1=0
	if [ "$every" != 0 ]; then
		ts0=$(date +%s.%N) sa0=$(ticks "$apid")
		read -r s0 < <(echo "$(agent_counters) $(ctl_stats)")
		sa1=$(ticks "$apid")
		sw=$(awk "BEGIN { printf \"%.0f\", 1000 * ($(date +%s.%N) - $ts0) }")
	fi
	if [ $perf = 1 ] && [ "$set" != off ] && [ "$traffic" = keys ]; then
		# attached before the window, stopped (SIGINT) at its end: the status call after it
		# stays out. User stacks by DWARF: the build keeps no frame pointers.
		perf record -F 1999 --call-graph dwarf,16384 -p "$apid" -o "$STATE/perf-$set.data" \
			>/dev/null 2>"$STATE/perf-$set.log" &
		PPID_PERF=$!
		nap 0.5
	fi
	t0=$(date +%s.%N) a0=$(ticks "$apid") c0=$(ticks "$cpid") n0=$(oncpu "$apid")
	nap "$window"
	t1=$(date +%s.%N) a1=$(ticks "$apid") c1=$(ticks "$cpid") n1=$(oncpu "$apid")
	if [ -n "$PPID_PERF" ]; then
		kill -INT "$PPID_PERF" 2>/dev/null
		wait "$PPID_PERF"
		PPID_PERF=''
	fi
	if [ "$every" != 0 ]; then
		ts1=$(date +%s.%N)
		read -r s1 < <(echo "$(agent_counters) $(ctl_stats)")
	fi
	kill -TERM "$GPID" 2>/dev/null
	wait "$GPID"
	GPID=''
	kill -0 "$apid" 2>/dev/null || die "the agent exited: $(tail -n 3 "$STATE/agent-web.log")"
	[ -n "$a0" ] && [ -n "$a1" ] || die "no CPU figures for the agent (pid $apid)"
	# A row: 1 set 2 traffic 3 window_s 4 agent_ticks 5 ctl_ticks; the generator's 6 rate
	# 7 slowest_1s 8 errors 9 behind 10 cpu/s; the counters' changes from just before to just after
	# the window: agent 11 drained 12 sent 13 dropped 14 spooled (at the end), controller
	# 15 stored 16 reports 17 not_counted; 18 agent RSS KiB; 19 the drains between the two counter
	# readings x interval (s: what to divide the counts by); 20 a status call: agent ticks, 21 ms;
	# 22 the agent's ns on a CPU (schedstat)
	awk -v set="$set" -v tr="$traffic" -v secs="$(awk "BEGIN { print $t1 - $t0 }")" \
		-v a=$((a1 - a0)) -v c=$((c1 - c0)) -v s0="$s0" -v s1="$s1" -v rss="$(awk \
		'/^VmRSS/ { print $2 }' "/proc/$apid/status")" -v span="$(awk -v i="$every" \
		"BEGIN { n = i > 0 ? int(($ts1 - $ts0) / i + 0.5) : 0; print (n < 1 ? 1 : n) * i }")" \
		-v st=$((${sa1:-0} - ${sa0:-0})) -v sw="$sw" -v ns=$((n1 - n0)) '
		$1 == "rate" { r = $2 } $1 == "min_1s" { m = $2 } $1 == "errors" { e = $2 }
		$1 == "behind" { b = $2 } $1 == "cpu" { gc = $2 } $1 == "seconds" { gs = $2 }
		END {
			n = split(s0, x)
			split(s1, y)
			for (i = 1; i <= n; i++)
				d[i] = y[i] - x[i]
			print set, tr, secs, a, c, r, m, e, b, (gs > 0 ? gc / gs : 0), d[1], d[2], d[3],
				y[4], d[5], d[6], d[7], rss, span, st, sw, ns
		}' "$g" >>"$STATE/rows"
	awk -v hz="$hz" 'END {
		printf "      agent %.2f%% of a core over %.1f s; generator %d/s", 100 * $4 / hz / $3, $3, $6
		if ($19 > 0)
			printf "; in %d s of drains the agent drained %d summaries, sent %d, dropped %d; " \
				"the controller stored %d in %d reports", $19, $11, $12, $13, $15, $16
		printf "\n" }' "$STATE/rows" >&2
}

# Settings: flow export off (the baseline), every 10 s (the default), every 1 s. New keys need
# their warm-up: the drains before the window must find only keys traffic (the reports of the one
# just before are still being sent in it), and the controller should have seen every key once
# (it stores a new key slower than a known one, and the agent waits for it).
for set in off 10s 1s; do
	case $set in
	off) every=0 ;;
	10s) every=10 ;;
	1s) every=1 ;;
	esac
	warm_keys=$(awk -v i="$every" 'BEGIN { w = 1.5 * i; print (w < 2 ? 2 : w) }')
	say "flow export: $([ $set = off ] && echo "off (interval 0), the baseline" || echo "every $set")"
	agent_restart "$every"
	measure "$set" conns 1 "$every"
	measure "$set" keys "$warm_keys" "$every"
done
say "checks: what the controller stored"
# none denied; and on one port of the keys range, a row per source identity
denied=$(fleet_cli flows --node "$node" --verdict denied --since 10m --limit 10 -o json 2>/dev/null |
	jq '.flows | length')
idrows=$(fleet_cli flows --node "$node" --port "udp/${KEY_PORTS%-*}" --since 10m --limit 100 -o json \
	2>/dev/null | jq -r '[.flows[] | select(.verdict == "allowed") | .src] | unique | join(" ")')
t_total=$((SECONDS - t_start))

# ---- figures -------------------------------------------------------------------------------------
# row fields: see measure(). Counts per second are over the drains between the counter readings.
cpu() { # cpu SET TRAFFIC: the agent's % of one core
	awk -v s="$1" -v t="$2" -v hz="$hz" '$1 == s && $2 == t { printf "%.2f", 100 * $4 / hz / $3 }' \
		"$STATE/rows"
}
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo
echo "Bulkhead agent CPU benchmark: commit $commit$(git -C "$top" diff --quiet HEAD -- agent bpf \
	2>/dev/null || echo " (agent/bpf modified)"), kernel $(uname -r), $(nproc) CPUs, $(date -u \
	+%FT%TZ), ${t_total}s (setup ${t_setup}s)"
echo "one node (agent + datapath on eth0, attach=host), generator in the client namespace:" \
	"$rate new UDP flows/s nominal, ${window}s windows; flow map $flows_map entries, spool default"
echo "  conns: new 5-tuples on 4 flow keys (4 sources in one CIDR peer x udp/$CONN_PORTS)"
echo "  keys:  new flow keys, 4 identities (/32 CIDR peers) x udp/$KEY_PORTS: 100,000 keys a sweep"
echo
{
	echo "export|traffic|gen flows/s|slowest 1s|agent %core|vs off|(schedstat)|ctl %core|drained/s|sent/s|dropped|ctl stored/s|not counted|agent RSS MiB"
	awk -v hz="$hz" '$1 == "off" { base[$2] = 100 * $4 / hz / $3 } {
		pc = 100 * $4 / hz / $3
		vs = $1 == "off" ? "-" : sprintf("%+.2f", pc - base[$2])
		sp = $19 > 0 ? $19 : 1
		printf "%s|%s|%.0f|%d|%.2f|%s|%.3f|%.1f|%.0f|%.0f|%d|%.0f|%d|%.1f\n",
			$1 == "off" ? "off" : "every " $1, $2, $6, $7, pc, vs, $22 / 1e7 / $3,
			100 * $5 / hz / $3, $11 / sp, $12 / sp, $13, $15 / sp, $17, $18 / 1024 }' "$STATE/rows"
} | column -t -s '|'
echo
# attributable to export (over the baseline), per summary, and ratios
awk -v hz="$hz" '{ k = $1 "/" $2; pc[k] = 100 * $4 / hz / $3; sums[k] = $19 > 0 ? $11 / $19 : 0 } END {
	for (i = 1; i <= 2; i++) {
		s = i == 1 ? "10s" : "1s"
		for (j = 1; j <= 2; j++) {
			t = j == 1 ? "conns" : "keys"
			k = s "/" t
			if (!(k in pc))
				continue
			d = pc[k] - pc["off/" t]
			printf "export every %-3s %-5s: %.2f%% of a core, %.0f%% of the 5%% budget; %+.2f%% over " \
				"export off", s, t, pc[k], 20 * pc[k], d
			if (sums[k] >= 100)
				printf " = %.1f us per summary drained and sent (%.0f/s)", 1e4 * d / sums[k],
					sums[k]
			printf "\n"
		}
		if (pc[s "/conns"] > 0)
			printf "  new keys cost %.1fx new connections at the same rate\n",
				pc[s "/keys"] / pc[s "/conns"]
	}
	if (pc["10s/keys"] > 0)
		printf "export every 1 s costs %.2fx every 10 s (keys)\n", pc["1s/keys"] / pc["10s/keys"]
}' "$STATE/rows"
awk -v hz="$hz" '$19 > 0 { n++; t += $20; w += $21 } END { if (n) printf "a status call (bulkhead-agent " \
	"status) took %.0f ms and %.0f ms of the agent'"'"'s CPU on average (it walks the conntrack and flow " \
	"maps)\n", w / n, 1000 * t / hz / n }' "$STATE/rows"
awk '$8 > 0 || $9 > 0 { printf "generator: %s/%s had %d failed sends, fell behind %d times\n", $1, $2, $8, $9 }
	{ g += $10; n++ } END { if (n) printf "generator: %.0f%% of a core on average (its packets'"'"' way " \
		"through veth, bridge and datapath runs in its context)\n", 100 * g / n }' "$STATE/rows"
awk '$1 != "off" && ($13 > 0 || $17 > 0) { printf "warning: export every %s, %s: %d summaries dropped by " \
	"the agent, %d new flows the datapath could not count (flow map full)\n", $1, $2, $13, $17 }' "$STATE/rows"
echo "the controller's flows for $node: denied ${denied:-?} (want 0); allowed on" \
	"udp/${KEY_PORTS%-*} from: ${idrows:-none} (want the 4 /32 peers)"
if [ $perf = 1 ]; then
	for f in "$STATE"/perf-*.data; do
		[ -e "$f" ] || continue
		s=${f##*/perf-}
		echo
		echo "where the agent's time goes, export every ${s%.data}, keys traffic (perf):"
		echo "  self time, by function:"
		perf report -i "$f" --stdio --no-children --sort dso,sym -g none --percent-limit 1.5 \
			2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 20 | sed 's/^/  /'
		echo "  with what they call (children), the agent's own functions:"
		perf report -i "$f" --stdio --children --sort dso,sym -g none --percent-limit 3 \
			2>/dev/null | grep -v '^#' | grep -v '^$' | grep -v '\[k\]' | head -n 25 | sed 's/^/  /'
	done
fi
echo
c10=$(cpu 10s conns) k10=$(cpu 10s keys) c1=$(cpu 1s conns) k1=$(cpu 1s keys)
worst=$(awk "BEGIN { print ($c10 > $k10 ? $c10 : $k10) }")
echo "at 1 s export: conns ${c1}%, keys ${k1}% of one core" \
	"($(awk "BEGIN { print ($c1 < 5 && $k1 < 5 ? \"under\" : \"over\") }") 5%)"
echo "agent CPU at $rate new flows/s < 5% of one core (default export interval 10 s, worst of conns" \
	"${c10}% and keys ${k10}%): $(awk "BEGIN { print ($worst < 5 ? \"MET\" : \"MISS\") }")"
