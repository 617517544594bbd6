#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Bulkhead quickstart: a three-tier app in network namespaces, enforced by the eBPF datapath and
# proved with real traffic. For now the datapath alone, driven by `bulkhead-agent dataplane`; the
# controller and agents join this demo when they land.
#
#   deploy/quickstart.sh [up]   install packages, build into build/, bring the demo up, prove it
#   deploy/quickstart.sh down   remove every namespace, pin, process and file the demo made
#
# As root on Debian bookworm. BH_BUILD_DIR overrides the build directory (default build/).
#
# Topology: one "node" (namespace bh-demo-net, a bridge) with a workload namespace per tier,
# each joined to the bridge by a veth. The node's datapath protects the host side of each
# workload's veth (attach=veth), as it would protect containers on a real host.
#
#   bh-demo-client 198.18.10.10  fd00:b1::10   (no policy: "anyone")
#   bh-demo-web    198.18.10.11  fd00:b1::11   identity 1001
#   bh-demo-api    198.18.10.12  fd00:b1::12   identity 1002
#   bh-demo-db     198.18.10.13  fd00:b1::13   identity 1003
#
# Exits non-zero if any expectation fails (the demo stays up to look at; `down` removes it).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
PREFIX=bh-demo
NET_NS=$PREFIX-net
NODE=$PREFIX-node
STATE=/run/$PREFIX
PINS=/sys/fs/bpf/bulkhead/$NODE
TIERS="client web api db"
BUILD=${BH_BUILD_DIR:-$TOP/build}
CLI=$BUILD/agent/bulkhead-agent

declare -A ADDR4=([client]=198.18.10.10 [web]=198.18.10.11 [api]=198.18.10.12 [db]=198.18.10.13)
declare -A ADDR6=([client]=fd00:b1::10 [web]=fd00:b1::11 [api]=fd00:b1::12 [db]=fd00:b1::13)
declare -A ID=([web]=1001 [api]=1002 [db]=1003)
declare -A PORT=([client]=4444 [web]=80 [api]=8080 [db]=5432)

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
die() {
	printf 'quickstart: %s\n' "$*" >&2
	exit 1
}

ns() { echo "$PREFIX-$1"; }
dp() { "$CLI" dataplane -n "$NODE" --netns "$NET_NS" "$@"; }

# ---- down -------------------------------------------------------------------------------------

demo_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-" || true; }

leftovers() { [ -n "$(demo_namespaces)" ] || [ -e "$PINS" ] || [ -e "$STATE" ]; }

down() {
	local n p cli=$CLI
	[ -f "$STATE/cli" ] && cli=$(cat "$STATE/cli")
	# The datapath first, while its namespace still exists: detach removes the tc filters and
	# every pin. Without a CLI to do it, removing the pins by hand is enough, since the
	# interfaces carrying the filters go away with the namespace.
	if [ -e "$PINS" ]; then
		if [ -x "$cli" ] && ip netns list | grep -q "^$NET_NS\b"; then
			"$cli" dataplane -n "$NODE" --netns "$NET_NS" detach >/dev/null 2>&1
		fi
		[ -e "$PINS" ] && rm -rf "$PINS"
		rmdir /sys/fs/bpf/bulkhead 2>/dev/null
	fi
	# Every process still running inside a demo namespace (the servers) is the demo's.
	for n in $(demo_namespaces); do
		for p in $(ip netns pids "$n" 2>/dev/null); do kill "$p" 2>/dev/null; done
	done
	for n in $(demo_namespaces); do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			[ -z "$(ip netns pids "$n" 2>/dev/null)" ] && break
			sleep 0.2
		done
		for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$n" || say "quickstart: could not delete namespace $n"
	done
	rm -rf "$STATE"
}

# ---- up: prerequisites and build --------------------------------------------------------------

install_packages() {
	local missing=() p
	# shellcheck source=deploy/packages.sh
	. "$TOP/deploy/packages.sh"
	bh_install_packages build || die "installing the build packages failed"
	for p in iputils-ping netcat-openbsd; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing Debian packages: ${missing[*]}"
		apt-get update -qq || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" || die "installing ${missing[*]} failed"
	fi
}

build() {
	cmake -S "$TOP" -B "$BUILD" >/dev/null || die "cmake configure failed"
	cmake --build "$BUILD" -j2 >/dev/null || die "build failed"
	[ -x "$CLI" ] || die "build did not produce $CLI"
	say "built $CLI"
}

# ---- up: topology -----------------------------------------------------------------------------

topology() {
	local t n
	ip netns add "$NET_NS" || return 1
	ip -n "$NET_NS" link set lo up
	ip -n "$NET_NS" link add br0 type bridge || return 1
	ip -n "$NET_NS" link set br0 up
	for t in $TIERS; do
		n=$(ns "$t")
		ip netns add "$n" || return 1
		ip -n "$n" link set lo up
		# eth0 inside the workload, v-TIER on the node, enslaved to the bridge
		ip -n "$NET_NS" link add "v-$t" type veth peer name eth0 netns "$n" || return 1
		ip -n "$NET_NS" link set "v-$t" master br0 up
		ip -n "$n" addr add "${ADDR4[$t]}/24" dev eth0
		ip -n "$n" addr add "${ADDR6[$t]}/64" dev eth0 nodad
		ip -n "$n" link set eth0 up
		say "$(printf '  %-16s %-14s %-13s %s' "$n" "${ADDR4[$t]}" "${ADDR6[$t]}" \
			"${ID[$t]:+identity ${ID[$t]}}")"
	done
}

# Listeners per tier (IPv4 and IPv6: nc listens on one family), logging what they receive, so a
# check can see its message arrive. Started detached: the demo keeps running after this script
# exits, until `down`.
servers() {
	local t f
	for t in $TIERS; do
		for f in 4 6; do
			setsid ip netns exec "$(ns "$t")" nc -"$f" -d -k -l "${PORT[$t]}" \
				</dev/null >>"$STATE/$t.log" 2>&1 &
		done
	done
	for t in $TIERS; do
		for _ in $(seq 50); do
			[ "$(ip netns exec "$(ns "$t")" ss -Htln "sport = :${PORT[$t]}" | wc -l)" -ge 2 ] &&
				break
			sleep 0.1
		done
	done
}

# ---- up: policy -------------------------------------------------------------------------------

ruleset() {
	cat <<EOF
# Bulkhead quickstart: node $NODE, one endpoint per workload (host side of its veth).
revision 1
endpoint web if=v-web id=${ID[web]} attach=veth ingress=deny:100 egress=deny:101
endpoint api if=v-api id=${ID[api]} attach=veth ingress=deny:102 egress=deny:103
endpoint db  if=v-db  id=${ID[db]} attach=veth ingress=deny:104 egress=deny:105
ipcache ${ADDR4[web]}/32 ${ID[web]}
ipcache ${ADDR4[api]}/32 ${ID[api]}
ipcache ${ADDR4[db]}/32 ${ID[db]}
ipcache ${ADDR6[web]}/128 ${ID[web]}
ipcache ${ADDR6[api]}/128 ${ID[api]}
ipcache ${ADDR6[db]}/128 ${ID[db]}
# web accepts tcp/80 from anyone, and may call the api
rule ${ID[web]} ingress any tcp/80 allow 20
rule ${ID[web]} egress ${ID[api]} tcp/8080 allow 21
# api accepts tcp/8080 only from web, and may call the database
rule ${ID[api]} ingress ${ID[web]} tcp/8080 allow 22
rule ${ID[api]} egress ${ID[db]} tcp/5432 allow 23
# db accepts tcp/5432 only from api, and calls nobody
rule ${ID[db]} ingress ${ID[api]} tcp/5432 allow 24
EOF
}

delta_open_web_db() {
	cat <<EOF
# Opens web -> db:5432: db accepts it, and web may send it.
delta 1 2
+rule ${ID[db]} ingress ${ID[web]} tcp/5432 allow 30
+rule ${ID[web]} egress ${ID[db]} tcp/5432 allow 31
EOF
}

# ---- up: proof --------------------------------------------------------------------------------

failures=()
seq_no=0

# probe FROM TO allowed|denied [4|6]: a TCP connection from FROM to TO's port carrying one line;
# allowed means the line arrived in TO's server log, denied that the connection never opened.
probe() {
	local from=$1 to=$2 want=$3 fam=${4:-4} dst msg label got rc err
	if [ "$fam" = 6 ]; then dst=${ADDR6[$to]}; else dst=${ADDR4[$to]}; fi
	seq_no=$((seq_no + 1))
	msg="hello $seq_no from $from"
	label=$(printf '%-6s -> %s:%s' "$from" "$to" "${PORT[$to]}")
	[ "$fam" = 6 ] && label="$label (IPv6)"
	printf '  %-30s ... ' "$label"
	# A policy drop leaves the SYN unanswered: nc times out. Anything else (refused, no
	# route) is a broken demo, not a denial.
	err=$(echo "$msg" | ip netns exec "$(ns "$from")" nc -v -N -w 3 "$dst" "${PORT[$to]}" \
		2>&1 >/dev/null)
	rc=$?
	if [ $rc -eq 0 ]; then
		for _ in $(seq 30); do
			grep -qx "$msg" "$STATE/$to.log" && break
			sleep 0.1
		done
		grep -qx "$msg" "$STATE/$to.log" && got=allowed || got="connected, but the data never arrived"
	elif echo "$err" | grep -q "timed out"; then
		got=denied
	else
		got="error: $(echo "$err" | tail -n 1)"
	fi
	if [ "$got" = "$want" ]; then
		say "$got (as expected)"
	else
		say "$got -- EXPECTED $want"
		failures+=("$label: $got, expected $want")
	fi
}

# ping_probe FROM TO allowed|denied: ICMP echo
ping_probe() {
	local from=$1 to=$2 want=$3 got label
	label=$(printf '%-6s -> %s (ping)' "$from" "$to")
	printf '  %-30s ... ' "$label"
	if ip netns exec "$(ns "$from")" ping -n -q -c 1 -w 2 "${ADDR4[$to]}" >/dev/null 2>&1; then
		got=allowed
	else
		got=denied
	fi
	if [ "$got" = "$want" ]; then
		say "$got (as expected)"
	else
		say "$got -- EXPECTED $want"
		failures+=("$label: $got, expected $want")
	fi
}

up() {
	[ "$(id -u)" -eq 0 ] || die "run as root: the demo creates network namespaces and loads BPF programs"
	say "Bulkhead quickstart: a three-tier app (web, api, db) segmented by the eBPF datapath"

	step "packages (deploy/packages.sh) and build ($BUILD)"
	install_packages
	build

	if leftovers; then
		step "removing the previous demo"
		down
	fi

	step "topology: node namespace $NET_NS (bridge br0), one namespace per workload"
	mkdir -p "$STATE" && chmod 700 "$STATE"
	echo "$CLI" >"$STATE/cli"
	topology || die "creating the topology failed (see the messages above)"
	servers
	say "  servers: web tcp/80, api tcp/8080, db tcp/5432, client tcp/4444 (nc, logging to $STATE)"

	step "before any policy, everything reaches everything"
	probe client db allowed
	probe web db allowed

	step "policy: node $NODE, revision 1"
	say "  web accepts tcp/80 from anyone          (and may call api:8080)"
	say "  api accepts tcp/8080 only from web      (and may call db:5432)"
	say "  db  accepts tcp/5432 only from api      (and calls nobody)"
	say "  everything else is denied, in both directions"
	ruleset >"$STATE/ruleset-rev1.txt"
	say "  \$ bulkhead-agent dataplane -n $NODE --netns $NET_NS apply $STATE/ruleset-rev1.txt"
	dp apply "$STATE/ruleset-rev1.txt" | sed 's/^/  /' || die "apply failed"
	dp flows >/dev/null # start the flow table from here

	step "proving it with real traffic"
	probe client web allowed
	probe client web allowed 6
	probe web api allowed
	probe api db allowed
	probe client api denied
	probe client db denied
	probe web db denied
	probe web db denied 6
	probe api web denied
	probe db client denied
	probe db api denied
	ping_probe client db denied
	ping_probe web api denied

	step "flows: what the datapath counted (identity 2 = world; IPv6 neighbour discovery left out)"
	# Drained: each flow is reported once. Rule 1 is neighbour discovery, which always passes.
	dp flows | awk 'NR == 1 || $7 != 1' | sed 's/^/  /'

	step "live change: open web -> db:5432 (delta 1 -> 2, applied atomically)"
	delta_open_web_db >"$STATE/delta-rev2.txt"
	sed -n 's/^+/  +/p' "$STATE/delta-rev2.txt"
	dp apply "$STATE/delta-rev2.txt" | sed 's/^/  /' || die "apply of the delta failed"
	probe web db allowed
	probe web db allowed 6
	probe api db allowed
	probe client db denied
	probe db web denied

	step "state"
	dp show | sed -n '1,3p' | sed 's/^/  /'

	echo
	if [ ${#failures[@]} -gt 0 ]; then
		say "FAILED: ${#failures[@]} expectation(s) not met:"
		printf '  %s\n' "${failures[@]}"
		say "The demo is still up to look at; 'deploy/quickstart.sh down' removes it."
		exit 1
	fi
	say "All expectations met. The demo keeps running; try for instance:"
	say "  ip netns exec $(ns web) nc -zv -w 2 ${ADDR4[db]} 5432"
	say "  $CLI dataplane -n $NODE --netns $NET_NS flows"
	say "  $CLI dataplane -n $NODE --netns $NET_NS events --timeout 10"
	say "deploy/quickstart.sh down removes everything."
}

case "${1:-up}" in
up) up ;;
down)
	[ "$(id -u)" -eq 0 ] || die "run as root"
	down
	say "demo removed"
	;;
-h | --help) sed -n '4,21p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command \"$1\": want up or down" ;;
esac
