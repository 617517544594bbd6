#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The one test command. As root on a fresh Debian bookworm machine: installs the Debian packages
# Bulkhead needs, builds, and runs every test (ctest). The parsers of untrusted input also run in
# a second build under AddressSanitizer and UndefinedBehaviorSanitizer, and their libFuzzer targets
# (built with clang) each fuzz for a bounded time.
#
#   tests/run.sh            everything
#   tests/run.sh -R REGEX   only the tests whose name matches (both builds)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

if [ "$(id -u)" -ne 0 ]; then
	echo "tests/run.sh: run as root: the datapath tests load BPF programs and create network" \
	     "namespaces" >&2
	exit 1
fi

# shellcheck source=deploy/packages.sh
. deploy/packages.sh
bh_install_packages test

jobs=${BH_JOBS:-2}
echo "== build (RelWithDebInfo) =="
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$jobs"

echo "== build (ASan + UBSan) =="
cmake -S "$top" -B "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug -DBH_SANITIZE=ON >/dev/null
cmake --build "$top/build-asan" -j"$jobs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== build (libFuzzer targets, clang) =="
CC=clang cmake -S "$top" -B "$top/build-fuzz" -DCMAKE_BUILD_TYPE=Debug -DBH_FUZZ=ON >/dev/null
cmake --build "$top/build-fuzz" -j"$jobs" --target fuzz_ruleset fuzz_envelope fuzz_messages fuzz_yaml

status=0
echo "== libFuzzer, 15 s per target =="
ctest --test-dir "$top/build-fuzz" --output-on-failure -L fuzz "$@" || status=1
echo "== tests under ASan + UBSan (wire, PKI and decoders of untrusted input) =="
ctest --test-dir "$top/build-asan" --output-on-failure -L asan "$@" || status=1
echo "== all tests =="
ctest --test-dir "$top/build" --output-on-failure "$@" || status=1
exit $status
