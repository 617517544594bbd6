#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The fan-out benchmark, run on demand (not part of CTest): one real controller and N simulated
# agents (bh_bench_fanout: the agent's real protocol and client over real mutual TLS, no
# datapath), on 127.0.0.1 only. For each N it builds bh_bench_fanout and the daemons in
# build-fanout/, inits a controller in a temp dir, serves it (listeners on 127.0.0.1 port 0, the
# admin socket in the temp dir), creates a join token for N nodes and lets bh_bench_fanout enroll,
# connect and start the agents, then measure:
#
#   memory    controller RSS per connected, watching agent (target <= 50 KiB), and the bench's own
#   fan-out   `bulkhead apply` of a change to every agent -> the last Ack (p50/p99/max per agent),
#             the same with `apply --wait`, and a change to one tenth of them (tier=t3): exactly
#             those watches wake
#   baseline  N sequential Watch round trips answered at once, on the same clients, same run
#
#   tests/bench/fanout.sh [--quick] [--budget S] [N...]    (default N: 1000 then 10000)
#
# As root (the admin socket takes uid 0 only). --quick: N = 200, for trying changes. Each N is
# bounded: the bench stops itself after --budget seconds (default 240 + 0.07 N) and is killed 30 s
# later if it has not; the controller is stopped by pid, and the temp dir removed, on any exit.
# On 2 cores 1,000 agents take about 4 minutes and 10,000 about 12 (enrollment and the endpoint
# reports are most of it; each measurement first waits for the 30 s watch expiries to pass).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
top=$PWD
build=${BH_BENCH_BUILD:-$top/build-fanout}

usage() { echo "usage: tests/bench/fanout.sh [--quick] [--budget SECONDS] [N...]" >&2; exit 2; }
ns=()
budget=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) ns=(200) ;;
	--budget) [ $# -ge 2 ] || usage; budget=$2; shift ;;
	[0-9]*) ns+=("$1") ;;
	*) usage ;;
	esac
	shift
done
[ ${#ns[@]} -gt 0 ] || ns=(1000 10000)
for n in "${ns[@]}"; do [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 10 ] || usage; done
[ "$(id -u)" = 0 ] || { echo "tests/bench/fanout.sh: run as root (the admin socket takes uid 0 only)" >&2; exit 1; }
for tool in cmake column timeout; do
	command -v "$tool" >/dev/null || { echo "tests/bench/fanout.sh: $tool is missing" >&2; exit 1; }
done
if others=$(pgrep -af 'bh_bench( |$)|bh_bench_rpc|bh_bench_fanout'); then
	echo "tests/bench/fanout.sh: another benchmark is running; figures will be low:" >&2
	echo "$others" >&2
fi

say() { echo "== $*" >&2; }
T=$(mktemp -d /tmp/bh-bench-fanout.XXXXXX)
CPID=
BPID=
# stops what this script started, by pid; a controller that does not stop on SIGTERM within 15 s
# (NNG closing thousands of connections at once) is killed
stop_controller() {
	[ -n "$CPID" ] || return 0
	kill "$CPID" 2>/dev/null
	for _ in $(seq 150); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$CPID" 2>/dev/null; then
		echo "NOTE|the controller did not stop within 15 s of SIGTERM: killed" >>"$T/notes"
		kill -9 "$CPID" 2>/dev/null
	fi
	wait "$CPID" 2>/dev/null
	CPID=
}
cleanup() {
	# BPID is timeout(1): it passes SIGTERM on to the bench
	[ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
	stop_controller
	rm -rf "$T"
}
trap cleanup EXIT
trap 'echo "tests/bench/fanout.sh: interrupted" >&2; exit 130' INT TERM

say "build ($build)"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build "$build" -j2 --target bh_bench_fanout bulkhead-controller bulkhead >/dev/null || exit 1
CTL=$build/controller/bulkhead-controller
CLI=$build/controller/cli/bulkhead
BENCH=$build/tests/bench/bh_bench_fanout

# What bounds N besides memory: descriptors (each agent is one socket in the bench and one in
# the controller), threads (one per agent in the bench), memory maps (a stack and its guard page
# per thread), ephemeral ports (one per agent, plus two per enrollment in TIME_WAIT).
hard=$(ulimit -Hn)
ulimit -n "$hard" 2>/dev/null
read -r plo phi </proc/sys/net/ipv4/ip_local_port_range
limits="fd limit $(ulimit -n), threads-max $(cat /proc/sys/kernel/threads-max), pid_max"
limits+=" $(cat /proc/sys/kernel/pid_max), max_map_count $(cat /proc/sys/vm/max_map_count),"
limits+=" nproc $(ulimit -u), ephemeral ports $((phi - plo + 1)),"
limits+=" tcp_tw_reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"
: >"$T/rows"
: >"$T/notes"
echo "NOTE|limits: $limits" >>"$T/notes"
failed=0
t_start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)

for n in "${ns[@]}"; do
	b=${budget:-$((240 + n * 7 / 100))}
	d=$T/n$n
	mkdir -p "$d"
	if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((n + 1024)) ]; then
		echo "NOTE|$n agents: skipped: they need $((n + 1024)) file descriptors, the hard limit is $hard" >>"$T/notes"
		failed=1
		continue
	fi
	for lim in /proc/sys/kernel/threads-max /proc/sys/kernel/pid_max /proc/sys/vm/max_map_count; do
		[ "$(cat $lim)" -ge $((2 * n + 1000)) ] ||
			echo "NOTE|$n agents: $lim is $(cat $lim): not every agent thread may start" >>"$T/notes"
	done
	say "$n agents: controller in $d (budget ${b}s)"
	"$CTL" init --state-dir "$d/ctl" >/dev/null 2>&1 || { echo "NOTE|$n agents: controller init failed" >>"$T/notes"; failed=1; continue; }
	"$CTL" serve --state-dir "$d/ctl" --listen tls+tcp://127.0.0.1:0 \
		--enroll-listen tls+tcp://127.0.0.1:0 --admin "ipc://$d/ctl/admin.sock" \
		>>"$d/controller.log" 2>&1 &
	CPID=$!
	for _ in $(seq 100); do
		[ -s "$d/ctl/ports" ] && [ -S "$d/ctl/admin.sock" ] && break
		sleep 0.1
	done
	EPORT=$(awk '/^enroll/ {print $2}' "$d/ctl/ports" 2>/dev/null)
	export BULKHEAD_ADMIN_SOCKET=ipc://$d/ctl/admin.sock
	TOK=$("$CLI" token create --ttl 2h --uses "$n" 2>>"$d/controller.log")
	if [ -z "$EPORT" ] || [ -z "$TOK" ]; then
		echo "NOTE|$n agents: the controller did not start: $(tail -3 "$d/controller.log" | tr '\n' ' ')" >>"$T/notes"
		failed=1
		stop_controller
		continue
	fi
	say "$n agents: measuring (progress below)"
	timeout -s KILL $((b + 30)) "$BENCH" --dir "$d" --agents "$n" --enroll "127.0.0.1:$EPORT" \
		--token "$TOK" --cli "$CLI" --ctl-pid "$CPID" --alarm "$b" >"$d/out" &
	BPID=$!
	wait "$BPID"
	rc=$?
	BPID=
	grep '^ROW|' "$d/out" | cut -d'|' -f2- >>"$T/rows"
	grep '^NOTE|' "$d/out" | sed "s/^NOTE|/NOTE|$n agents: /" >>"$T/notes"
	case $rc in
	0) ;;
	3) echo "NOTE|$n agents: the bench stopped at a stall (exit 3)" >>"$T/notes" ;;
	4) echo "NOTE|$n agents: the bench stopped itself at its ${b} s limit (exit 4)" >>"$T/notes" ;;
	137) echo "NOTE|$n agents: the bench was killed $((b + 30)) s after it began" >>"$T/notes" ;;
	*) echo "NOTE|$n agents: the bench exited with $rc" >>"$T/notes" ;;
	esac
	[ "$rc" = 0 ] || failed=1
	if ! kill -0 "$CPID" 2>/dev/null; then
		echo "NOTE|$n agents: the controller had exited: $(tail -3 "$d/controller.log" | tr '\n' ' ')" >>"$T/notes"
		failed=1
	fi
	say "$n agents: stopping the controller"
	stop_controller
	rm -rf "$d"
done

t_total=$(($(date +%s) - t_start))
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$top" status --porcelain -- common controller agent proto 2>/dev/null | grep -q . && echo "+dirty" || true)
echo
echo "Bulkhead fan-out benchmark: commit $commit$dirty, kernel $(uname -r), $(nproc) CPUs" \
	"($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(date -u +%FT%TZ)," \
	"${t_total}s"
echo "load average before the run: $load0 (other work on the machine shares the CPUs)"
echo "NNG $(dpkg-query -W -f='${Version}' libnng1 2>/dev/null || echo ?)," \
	"$(openssl version 2>/dev/null | awk '{ print $1, $2 }'), controller and simulated agents" \
	"on one machine sharing the CPUs, 127.0.0.1 only"
echo
{
	echo "agents|case|value|baseline / detail|ratio|target|result"
	cat "$T/rows"
} | column -t -s '|'
echo
cut -d'|' -f2- "$T/notes" | fold -s -w 100 | sed 's/^/  /'
misses=$(cut -d'|' -f7 "$T/rows" | grep -c '^MISS$' || true)
echo
echo "$misses target(s) missed"
exit "$failed"
