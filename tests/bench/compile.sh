#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The compiler benchmark, run on demand (not part of CTest; no root, no network, about 20 s):
# builds bh_bench_compile in build-bench/ and prints
#   1  a full compile of 10,000 workloads on 100 nodes under 1,000 policies: time, peak memory,
#      rule set sizes (target <= 1 s);
#   2  one label change on one workload: the incremental update to the per-node rule sets
#      (target <= 10 ms) against the full recompile of the same change (the baseline), and the
#      size of the deltas the affected nodes would be sent.
#
#   tests/bench/compile.sh [-w WORKLOADS] [-n NODES] [-p POLICIES] [-r REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BH_BENCH_BUILD:-$PWD/build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target bh_bench_compile >/dev/null
exec "$build/tests/bench/bh_bench_compile" "$@"
