# SPDX-License-Identifier: Apache-2.0
# Debian bookworm packages Bulkhead needs, shared by tests/run.sh and deploy/quickstart.sh.
# Source this file, then call bh_install_packages build|test.

BH_PKGS_BUILD="build-essential cmake pkg-config clang llvm libbpf-dev libelf-dev zlib1g-dev
bpftool libnng-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev libuv1-dev libsqlite3-dev
libyaml-dev iproute2"
# Tests and benchmarks also drive real traffic, compare against iptables, and need clang's
# sanitizer and libFuzzer runtimes.
BH_PKGS_TEST="$BH_PKGS_BUILD iptables iperf3 netcat-openbsd iputils-ping libclang-rt-14-dev
procps jq curl"

bh_install_packages()
{
	local want missing=()
	case "$1" in
	build) want=$BH_PKGS_BUILD ;;
	*) want=$BH_PKGS_TEST ;;
	esac
	for p in $want; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
