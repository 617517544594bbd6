#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Bulkhead quickstart: a demo fleet in network namespaces. A controller, three nodes each running
# an agent enrolled with a join token, a three-tier policy (web -> api -> db, everything else
# denied) applied fleet-wide, proved with real traffic, then changed live.
#
#   deploy/quickstart.sh [up]   install packages, build into build/, bring the fleet up, prove it
#   deploy/quickstart.sh down   remove every namespace, pin, process and file the demo made
#
# As root on Debian bookworm. BH_BUILD_DIR overrides the build directory (default build/).
#
# Topology (deploy/fleet.sh): one bridge, and on it
#   bh-demo-client  198.18.10.10  fd00:b1::10   outside the inventory ("a client")
#   bh-demo-web     198.18.10.11  fd00:b1::11   node bh-demo-web, its agent protects web-1
#   bh-demo-api     198.18.10.12  fd00:b1::12   node bh-demo-api, its agent protects api-1
#   bh-demo-db      198.18.10.13  fd00:b1::13   node bh-demo-db,  its agent protects db-1
# The controller listens on 127.0.0.1; state, logs and configs live in /run/bh-demo.
#
# Exits non-zero if any expectation fails (the demo stays up to look at; `down` removes it).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
PREFIX=bh-demo
STATE=/run/$PREFIX
FLEET_FLOW_INTERVAL=2s # flows show up in `bulkhead flows` within seconds
BUILD=${BH_BUILD_DIR:-$TOP/build}
# shellcheck source=deploy/fleet.sh
. "$TOP/deploy/fleet.sh"

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
die() {
	printf 'quickstart: %s\n' "$*" >&2
	exit 1
}
show() { say "  \$ $*"; }

leftovers() {
	[ -n "$(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-")" ] || [ -e "$STATE" ] ||
		ls -d /sys/fs/bpf/bulkhead/"$PREFIX"-* >/dev/null 2>&1
}

install_packages() {
	local missing=() p
	# shellcheck source=deploy/packages.sh
	. "$TOP/deploy/packages.sh"
	bh_install_packages build || die "installing the build packages failed"
	for p in iputils-ping netcat-openbsd jq; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing Debian packages: ${missing[*]}"
		apt-get update -qq || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" || die "installing ${missing[*]} failed"
	fi
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs"
}

build() {
	cmake -S "$TOP" -B "$BUILD" >/dev/null || die "cmake configure failed"
	cmake --build "$BUILD" -j2 >/dev/null || die "build failed"
	for b in "$FLEET_CTL" "$FLEET_CLI" "$FLEET_AGENT"; do
		[ -x "$b" ] || die "build did not produce $b"
	done
	say "built $FLEET_CTL, $FLEET_CLI, $FLEET_AGENT"
}

failures=()
# probe FROM TO allowed|denied [4|6]
probe() {
	local from=$1 to=$2 want=$3 fam=${4:-4} label got
	label=$(printf '%-6s -> %s:%s' "$from" "$to" "${FLEET_PORT[$to]}")
	[ "$fam" = 6 ] && label="$label (IPv6)"
	printf '  %-30s ... ' "$label"
	got=$(fleet_tcp "$from" "$to" "$fam")
	if [ "$got" = "$want" ]; then
		say "$got (as expected)"
	else
		say "$got -- EXPECTED $want"
		failures+=("$label: $got, expected $want")
	fi
}

up() {
	local t
	[ "$(id -u)" -eq 0 ] || die "run as root: the demo creates network namespaces and loads BPF programs"
	say "Bulkhead quickstart: a controller and three agents segmenting web -> api -> db"

	step "packages (deploy/packages.sh) and build ($BUILD)"
	install_packages
	build

	if leftovers; then
		step "removing the previous demo"
		fleet_down
	fi
	mkdir -p "$STATE" && chmod 700 "$STATE"

	step "topology: a bridge, a client and three node namespaces"
	fleet_topology || die "creating the namespaces failed (see above)"
	for t in client $FLEET_TIERS; do
		say "$(printf '  %-16s %-14s %s' "$(fleet_ns "$t")" "${FLEET_ADDR4[$t]}" "${FLEET_ADDR6[$t]}")"
	done
	fleet_servers
	say "  servers: web tcp/80, api tcp/8080, db tcp/5432, client tcp/4444 (nc, logging to $STATE)"

	step "controller: a CA, a store, listening on 127.0.0.1"
	show "bulkhead-controller init --state-dir $STATE/controller"
	show "bulkhead-controller serve --state-dir $STATE/controller ..."
	fleet_controller_start || die "the controller did not start: $(tail -n 3 "$STATE/controller.log")"
	say "  agents on port $FLEET_APORT (mutual TLS), enrollment on port $FLEET_EPORT"

	step "agents: one join token, one enrollment per node, then 'bulkhead-agent run'"
	show "bulkhead token create --ttl 10m --uses 3"
	fleet_enroll || die "enrollment failed: $(tail -n 3 "$STATE/enroll.log")"
	for t in $FLEET_TIERS; do
		show "bulkhead-agent run --config $STATE/agent-$t.yaml"
		fleet_agent_start "$t"
	done
	fleet_wait_synced 30 || die "the agents did not come up: see $STATE/agent-*.log"
	fleet_cli get nodes | sed 's/^/  /'

	step "before any policy, everything reaches everything (agents start in observe mode)"
	probe client db allowed
	probe web db allowed

	step "policy: deploy/examples/fleet-demo.yaml, fleet-wide"
	show "bulkhead apply --wait -f deploy/examples/fleet-demo.yaml"
	fleet_cli apply --wait=30s -f "$TOP/deploy/examples/fleet-demo.yaml" | sed 's/^/  /' ||
		die "apply failed"

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
	probe db api denied

	step "why: the controller explains a verdict from the rule sets the agents enforce"
	show "bulkhead explain --from web-1 --to db-1 --port tcp/5432"
	fleet_cli explain --from web-1 --to db-1 --port tcp/5432 | sed 's/^/  /'

	step "live change: web may now call db:5432 (one policy, both ends)"
	cat >"$STATE/open-web-db.yaml" <<'EOF'
kind: Policy
name: web-to-db
selector: {matchLabels: {app: web}}
policyTypes: [Egress]
egress:
  - to: [{selector: {matchLabels: {app: db}}}]
    ports: [{protocol: TCP, port: 5432}]
---
kind: Policy
name: db-from-web
selector: {matchLabels: {app: db}}
ingress:
  - from: [{selector: {matchLabels: {app: web}}}]
    ports: [{protocol: TCP, port: 5432}]
EOF
	show "bulkhead apply --wait -f $STATE/open-web-db.yaml"
	fleet_cli apply --wait=30s -f "$STATE/open-web-db.yaml" | sed 's/^/  /' || die "apply failed"
	probe web db allowed
	probe api db allowed
	probe client db denied

	step "and closed again"
	show "bulkhead delete --wait policy web-to-db db-from-web"
	fleet_cli delete --wait=30s policy web-to-db db-from-web | sed 's/^/  /' || die "delete failed"
	probe web db denied
	probe api db allowed

	step "state"
	fleet_cli get nodes | sed 's/^/  /'
	fleet_cli revisions | sed 's/^/  /'

	step "flows: what the agents reported (they export every ${FLEET_FLOW_INTERVAL})"
	sleep 3 # the last probes' summaries are one export away
	show "bulkhead flows --verdict denied --since 10m"
	fleet_cli flows --verdict denied --since 10m | sed 's/^/  /'
	n=$(fleet_cli flows --verdict denied --since 10m -o json | jq '.flows | length')
	if [ "${n:-0}" -gt 0 ]; then
		say "  ($n denied flows, each with the node that saw it and the rule that decided it)"
	else
		say "  no denied flow reported -- EXPECTED the denied probes above"
		failures+=("bulkhead flows: no denied flows")
	fi
	show "bulkhead get policies        # HITS, LAST-HIT and UNUSED rules per policy"
	fleet_cli get policies | sed 's/^/  /'

	echo
	if [ ${#failures[@]} -gt 0 ]; then
		say "FAILED: ${#failures[@]} expectation(s) not met:"
		printf '  %s\n' "${failures[@]}"
		say "The demo is still up to look at; 'deploy/quickstart.sh down' removes it."
		exit 1
	fi
	say "All expectations met. The fleet keeps running; try for instance:"
	say "  export BULKHEAD_ADMIN_SOCKET=ipc://$STATE/controller/admin.sock"
	say "  $FLEET_CLI get workloads"
	say "  $FLEET_CLI describe workload api-1"
	say "  ip netns exec $(fleet_ns web) nc -zv -w 2 ${FLEET_ADDR4[db]} 5432"
	say "  $FLEET_AGENT status --config $STATE/agent-db.yaml"
	say "  $FLEET_CLI flows --follow"
	say "  curl -s http://127.0.0.1:$FLEET_MPORT/metrics    # the controller's Prometheus metrics"
	say "deploy/quickstart.sh down removes everything."
}

case "${1:-up}" in
up) up ;;
down)
	[ "$(id -u)" -eq 0 ] || die "run as root"
	fleet_down
	say "demo removed"
	;;
-h | --help) sed -n '4,21p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command \"$1\": want up or down" ;;
esac
