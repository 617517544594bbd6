#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The controller flow-ingestion benchmark, run on demand (not part of CTest): one real controller
# and K simulated agents (bh_bench_flows: enrolled nodes, each its own certificate and mutual-TLS
# connection, no datapath) sending Agent.ReportFlows as fast as the controller answers, on
# 127.0.0.1 only. It builds bh_bench_flows and the daemons in build-flowbench/ (or
# $BH_BENCH_BUILD), inits a controller in a temp dir, serves it (listeners on 127.0.0.1 port 0,
# the admin socket and the metrics on 127.0.0.1 port 0 in/for the temp dir), creates a join token
# for K nodes and lets bh_bench_flows enroll them and measure, in the same run:
#
#   transport  GetNode round trips (the RPC + TLS cost of a call); empty reports (a commit's
#              round trip)
#   fresh      reports of B summaries, every summary a new flow key (a new row in the store)
#   repeat     the same with each node's keys sliding over a pool of P (a few thousand flows per
#              node per minute: the aggregation case, rows updated)
#   decode     the same packed FlowReport batches unpacked + freed with protobuf-c on one thread
#
# (during fresh and repeat, a GetNode every 100 ms shows whether the loop still answers)
#
# and reports summaries stored per second, per core of controller CPU (utime + stime of the
# controller over the measured window), against decoding alone, with a verdict against the target
# (>= 200,000 summaries/s per core). It then checks that the controller stored what it said it
# stored: `bulkhead flows --stats` and flows.db itself (sqlite3) against the bench's own counts.
#
# As root (the admin socket takes uid 0 only). On 2 cores: --quick about 30 s, the default about
# 70 s (not counting a first build; the default's flows.db reaches about 170 MiB in the temp dir). A watchdog ends the run past its limit; the
# controller is stopped by pid and the temp dir removed on any exit.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
top=$PWD
build=${BH_BENCH_BUILD:-$top/build-flowbench}
me=tests/bench/flows.sh

usage() {
	cat <<EOF
usage: $me [--quick] [--agents K] [--batch B] [--pool P] [--depth D] [--secs S] [--perf]
       [--no-build]

  --quick      short windows (5 s measured per case) for trying changes; under 2 minutes
  --agents K   simulated agents, each its own node and connection (default 8)
  --batch B    summaries per report, 1-65536 (default 4096)
  --pool P     repeat case: distinct keys per node per minute, >= B (default 4096)
  --depth D    reports in flight per agent, 1-16 (default 1, as the agent sends them)
  --secs S     measured seconds per ingestion case (default 15; --quick 5)
  --perf       also profile the controller (perf record) over the fresh case, and print
               where its CPU went
  --no-build   use the binaries already in the build dir (a tree mid-edit does not build)
  --help       this text

Runs as root, on 127.0.0.1 only. Build dir: \$BH_BENCH_BUILD or build-flowbench/.
EOF
	exit "${1:-2}"
}
num() { [[ $2 =~ ^[0-9]+$ ]] || { echo "$me: $1 wants a number, not \"$2\"" >&2; exit 2; }; }

quick=0 perf=0 nobuild=0 agents=8 batch=4096 pool= depth=1 secs=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--perf) perf=1 ;;
	--no-build) nobuild=1 ;;
	--agents) [ $# -ge 2 ] || usage >&2; num "$1" "$2"; agents=$2; shift ;;
	--batch) [ $# -ge 2 ] || usage >&2; num "$1" "$2"; batch=$2; shift ;;
	--pool) [ $# -ge 2 ] || usage >&2; num "$1" "$2"; pool=$2; shift ;;
	--depth) [ $# -ge 2 ] || usage >&2; num "$1" "$2"; depth=$2; shift ;;
	--secs) [ $# -ge 2 ] || usage >&2; num "$1" "$2"; secs=$2; shift ;;
	-h | --help) usage 0 ;;
	*) echo "$me: unknown argument \"$1\"" >&2; usage >&2 ;;
	esac
	shift
done
pool=${pool:-$((batch > 4096 ? batch : 4096))}
if [ "$quick" = 1 ]; then
	secs=${secs:-5} warm=1 base=1.5 decode=1
else
	secs=${secs:-15} warm=2 base=3 decode=2
fi
[ "$agents" -ge 1 ] && [ "$agents" -le 256 ] || { echo "$me: --agents: 1-256" >&2; exit 2; }
[ "$batch" -ge 1 ] && [ "$batch" -le 65536 ] || { echo "$me: --batch: 1-65536" >&2; exit 2; }
[ "$pool" -ge "$batch" ] || { echo "$me: --pool must be at least --batch ($batch)" >&2; exit 2; }
[ "$depth" -ge 1 ] && [ "$depth" -le 16 ] || { echo "$me: --depth: 1-16" >&2; exit 2; }
[ "$secs" -ge 1 ] && [ "$secs" -le 120 ] || { echo "$me: --secs: 1-120" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$me: run as root (the admin socket takes uid 0 only)" >&2; exit 1; }
for tool in cmake column timeout; do
	command -v "$tool" >/dev/null || { echo "$me: $tool is missing" >&2; exit 1; }
done
if [ "$perf" = 1 ] && ! command -v perf >/dev/null; then
	echo "$me: --perf: perf is missing (apt-get install linux-perf)" >&2
	exit 1
fi
sqlite=$(command -v sqlite3 || true)
if others=$(pgrep -af 'bh_bench( |$)|bh_bench_rpc|bh_bench_fanout|bh_bench_flows'); then
	echo "$me: another benchmark is running; figures will be low:" >&2
	echo "$others" >&2
fi

say() { echo "== $*" >&2; }
T=$(mktemp -d /tmp/bh-bench-flows.XXXXXX)
CPID= BPID= WPID=
stop_controller() {
	[ -n "$CPID" ] || return 0
	kill "$CPID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$CPID" 2>/dev/null; then
		echo "$me: the controller did not stop within 10 s of SIGTERM: killed" >&2
		kill -9 "$CPID" 2>/dev/null
	fi
	wait "$CPID" 2>/dev/null
	CPID=
}
cleanup() {
	# BPID is timeout(1): it passes SIGTERM on to the bench
	[ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
	stop_controller
	[ -n "$WPID" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'echo "$me: interrupted" >&2; exit 130' INT TERM

CTL=$build/controller/bulkhead-controller
CLI=$build/controller/cli/bulkhead
BENCH=$build/tests/bench/bh_bench_flows
if [ "$nobuild" = 0 ]; then
	say "build ($build)"
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
	cmake --build "$build" -j2 --target bh_bench_flows bulkhead-controller bulkhead \
		bulkhead-agent >"$T/build.log" 2>&1 || { tail -20 "$T/build.log" >&2; exit 1; }
fi
for b in "$CTL" "$CLI" "$BENCH"; do
	[ -x "$b" ] || { echo "$me: $b is missing: build first (without --no-build)" >&2; exit 1; }
done

# The watchdog bounds everything after the build: the bench's own alarm comes first, then
# timeout(1) kills it, then this ends the script (and the EXIT trap cleans up).
if [ "$quick" = 1 ]; then alarm=$((60 + 2 * secs)); else alarm=$((150 + 4 * secs)); fi
limit=$((alarm + 40))
watchdog() {
	sleep "$1" &
	local sp=$!
	trap 'kill $sp 2>/dev/null; exit 0' TERM
	wait $sp
	echo "$me: watchdog: still running after $1 s: stopping" >&2
	kill -TERM $$
}
watchdog "$limit" &
WPID=$!

t_start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
say "controller in $T"
"$CTL" init --state-dir "$T/ctl" >"$T/controller.log" 2>&1 || {
	echo "$me: controller init failed:" >&2; tail -5 "$T/controller.log" >&2; exit 1; }
"$CTL" serve --state-dir "$T/ctl" --listen tls+tcp://127.0.0.1:0 \
	--enroll-listen tls+tcp://127.0.0.1:0 --admin "ipc://$T/ctl/admin.sock" \
	--metrics 127.0.0.1:0 >>"$T/controller.log" 2>&1 &
CPID=$!
for _ in $(seq 100); do
	[ -s "$T/ctl/ports" ] && [ -S "$T/ctl/admin.sock" ] && break
	sleep 0.1
done
EPORT=$(awk '/^enroll/ {print $2}' "$T/ctl/ports" 2>/dev/null)
MPORT=$(awk '/^metrics/ {print $2}' "$T/ctl/ports" 2>/dev/null)
export BULKHEAD_ADMIN_SOCKET=ipc://$T/ctl/admin.sock
TOK=$("$CLI" token create --ttl 1h --uses "$agents" 2>>"$T/controller.log")
if [ -z "$EPORT" ] || [ -z "$TOK" ] || ! kill -0 "$CPID" 2>/dev/null; then
	echo "$me: the controller did not start:" >&2
	tail -5 "$T/controller.log" >&2
	exit 1
fi

say "measuring: $agents agents x $depth in flight, $batch summaries per report, ${secs}s per case (progress below)"
perf_args=()
[ "$perf" = 1 ] && perf_args=(--perf-out "$T/perf.data")
timeout -s KILL $((alarm + 20)) "$BENCH" --dir "$T" --enroll "127.0.0.1:$EPORT" --token "$TOK" \
	--cli "$CLI" --ctl-pid "$CPID" --agents "$agents" --depth "$depth" --batch "$batch" \
	--pool "$pool" --warmup "$warm" --secs "$secs" --base-secs "$base" \
	--decode-secs "$decode" --metrics-port "${MPORT:-0}" --sqlite3 "$sqlite" \
	--alarm "$alarm" "${perf_args[@]}" >"$T/out" &
BPID=$!
wait "$BPID"
rc=$?
BPID=
failed=0
case $rc in
0) ;;
4) echo "NOTE|the bench stopped itself at its ${alarm} s limit (exit 4)" >>"$T/out"; failed=1 ;;
5) echo "NOTE|the result check FAILED: see the check rows" >>"$T/out"; failed=1 ;;
137) echo "NOTE|the bench was killed $((alarm + 20)) s after it began" >>"$T/out"; failed=1 ;;
*) echo "NOTE|the bench exited with $rc" >>"$T/out"; failed=1 ;;
esac
if ! kill -0 "$CPID" 2>/dev/null; then
	echo "NOTE|the controller had exited: $(tail -3 "$T/controller.log" | tr '\n' ' ')" >>"$T/out"
	failed=1
fi
# what the controller logged beyond its start (warnings about reports would show here)
grep -v -e 'controller serving' -e '^$' "$T/controller.log" | grep -i -e warn -e err | head -5 |
	sed 's/^/NOTE|controller log: /' >>"$T/out"
rpt=
if [ "$perf" = 1 ] && [ -s "$T/perf.data" ]; then
	rpt=$(perf report -i "$T/perf.data" --stdio --no-children --sort comm,dso,sym \
		--percent-limit 1 2>/dev/null | grep -v -e '^#' -e '^$' | head -30)
fi
say "stopping the controller"
stop_controller

t_total=$(($(date +%s) - t_start))
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$top" status --porcelain -- common controller proto 2>/dev/null | grep -q . && echo "+dirty" || true)
echo
echo "Bulkhead controller flow-ingestion benchmark: commit $commit$dirty, kernel $(uname -r)," \
	"$(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo))," \
	"$(date -u +%FT%TZ), ${t_total}s"
echo "load average before the run: $load0 (other work on the machine shares the CPUs)"
echo "NNG $(dpkg-query -W -f='${Version}' libnng1 2>/dev/null || echo ?)," \
	"SQLite $(dpkg-query -W -f='${Version}' libsqlite3-0 2>/dev/null || echo ?)," \
	"protobuf-c $(dpkg-query -W -f='${Version}' libprotobuf-c1 2>/dev/null || echo ?)," \
	"$(openssl version 2>/dev/null | awk '{ print $1, $2 }'); controller and simulated agents" \
	"on one machine sharing the CPUs, 127.0.0.1 only; $agents agents x $depth in flight," \
	"$batch summaries per report, repeat pool $pool keys, ${secs}s measured per case"
echo
{
	echo "section|case|value|baseline / detail|ratio|target|result"
	grep '^ROW|' "$T/out" | cut -d'|' -f2-
} | column -t -s '|'
echo
grep '^NOTE|' "$T/out" | cut -d'|' -f2- | fold -s -w 100 | sed 's/^/  /'
if [ -n "$rpt" ]; then
	echo
	echo "where the controller's CPU went in the fresh case (perf, self time >= 1%):"
	echo "$rpt" | sed 's/^/  /'
fi
echo
if grep -q '^VERDICT|' "$T/out"; then
	grep '^VERDICT|' "$T/out" | cut -d'|' -f2- | fold -s -w 100
else
	echo "VERDICT: none (the run did not finish; see the notes)"
	failed=1
fi
exit "$failed"
