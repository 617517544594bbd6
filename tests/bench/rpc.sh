#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The RPC benchmark, run on demand (not part of CTest): builds bh_bench_rpc in build-rpcbench/,
# measures on loopback (127.0.0.1) only, and prints one table in which every figure stands next
# to a baseline measured in the same run. No root needed; about 3 minutes on 2 cores.
#
#   tests/bench/rpc.sh [--quick]
#
#   1  calls/s and p50/p99 latency of bh_rpc_call() over tls+tcp:// with mutual TLS, 512 B and
#      64 KiB random (incompressible) bodies, 1 caller and N callers on one connection, against
#      raw NNG req/rep over plain tcp://; raw NNG over tls+tcp:// (no RPC layer) beside it
#   2  full mutual-TLS handshakes: fresh bh_rpc_client connections until each has answered one
#      call, and agents reconnecting after the server dropped them, against plain tcp://
#
# --quick shortens every measurement (for trying changes only). The program stops by itself: its
# loops are bounded, a wave of connections has a deadline, and an alarm ends a wedged run.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
build=${BH_BENCH_BUILD:-$top/build-rpcbench}

args=()
for a in "$@"; do
	case $a in
	--quick) args=(--rounds 1 --secs 0.5 --hs-rounds 1 --agents 250) ;;
	*) echo "usage: tests/bench/rpc.sh [--quick]" >&2; exit 2 ;;
	esac
done
for tool in cmake column; do
	command -v "$tool" >/dev/null || { echo "tests/bench/rpc.sh: $tool is missing" >&2; exit 1; }
done
if others=$(pgrep -af 'bh_bench( |$)|bh_bench_rpc'); then
	echo "tests/bench/rpc.sh: another benchmark is running; figures will be low:" >&2
	echo "$others" >&2
fi

tmp=$(mktemp -d /tmp/bh-bench-rpc.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
say() { echo "== $*" >&2; }

say "build ($build)"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target bh_bench_rpc >/dev/null

say "measuring (loopback; progress below)"
t_start=$(date +%s)
rc=0
"$build/tests/bench/bh_bench_rpc" "${args[@]}" >"$tmp/out" || rc=$?
t_total=$(($(date +%s) - t_start))
grep '^ROW|' "$tmp/out" | cut -d'|' -f2- >"$tmp/rows" || true
grep '^NOTE|' "$tmp/out" | cut -d'|' -f2- >"$tmp/notes" || true

commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$top" status --porcelain -- common proto 2>/dev/null | grep -q . && echo "+dirty" || true)
echo
echo "Bulkhead RPC benchmark: commit $commit$dirty, kernel $(uname -r), $(nproc) CPUs" \
	"($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(date -u +%FT%TZ)," \
	"${t_total}s"
echo "NNG $(dpkg-query -W -f='${Version}' libnng1 2>/dev/null || echo ?)," \
	"$(openssl version 2>/dev/null | awk '{ print $1, $2 }'), server and clients in one" \
	"process sharing the CPUs, 127.0.0.1 only"
echo
{
	echo "section|case|value|baseline (same run)|ratio|target|result"
	cat "$tmp/rows"
} | column -t -s '|'
echo
fold -s -w 100 "$tmp/notes" | sed 's/^/  /'
misses=$(cut -d'|' -f7 "$tmp/rows" | grep -c '^MISS$' || true)
echo
echo "$misses target(s) missed"
if [ "$rc" -ne 0 ]; then
	echo "tests/bench/rpc.sh: bh_bench_rpc exited with $rc (3: a wave of connections stalled)" >&2
	exit "$rc"
fi
