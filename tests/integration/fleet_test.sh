#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The whole system end to end with real processes and real traffic: a controller, three agents
# (bulkhead-agent run) each protecting a node namespace, the fleet of deploy/fleet.sh.
#   apply -> enforced on every node (TCP both families, ICMP); edit -> changed; delete -> back;
#   an agent down while two revisions passed catches up; a controller restart loses nothing and
#   drops no allowed connection; an agent restart keeps enforcing throughout (allowed traffic
#   keeps passing, denied traffic never passes); an agent that cannot apply (a tiny map) says so,
#   the controller shows it, and the node keeps its revision.
#
#   fleet_test.sh BUILD_DIR
#
# Namespaces, pins, processes and files are unique to the run and removed on exit, even on
# failure. Needs root, BPF and network namespaces: fails naming what is missing.
set -u

BUILD=${1:-}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1${2:+ ($2)}"; failed=$((failed + 1)); }

missing=()
[ "$(id -u)" -eq 0 ] || missing+=("root (run as uid 0)")
[ -n "$BUILD" ] && [ -x "$BUILD/agent/bulkhead-agent" ] || missing+=("build dir with binaries (argument 1: '$BUILD')")
for tool in ip nc jq ping ss mountpoint; do command -v $tool >/dev/null || missing+=("$tool"); done
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf 2>/dev/null || missing+=("bpffs at /sys/fs/bpf (mount failed)")
fi
if [ ${#missing[@]} -gt 0 ]; then
	for m in "${missing[@]}"; do not_ok "prerequisite: $m"; done
	exit 1
fi

PREFIX=bhf$(printf '%x%03x' $$ $((RANDOM % 4096)))
STATE=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
# shellcheck source=deploy/fleet.sh
. "$TOP/deploy/fleet.sh"
watchdog=
loops=()
cleanup() {
	for p in "${loops[@]}"; do kill "$p" 2>/dev/null; done
	fleet_down
	[ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
}
trap cleanup EXIT
trap 'echo "not ok - interrupted"; exit 1' INT TERM
# CTest kills a test that overruns without letting it clean up: stop ourselves first.
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep 400 &
	s=$!
	wait $s && kill -TERM $$ 2>/dev/null
) &
watchdog=$!

expect() { # expect NAME FROM TO allowed|denied [4|6]
	local got
	got=$(fleet_tcp "$2" "$3" "${5:-4}")
	[ "$got" = "$4" ] && ok "$1" || not_ok "$1" "got $got"
}
# acked_all R: every node enforces its newest rule set, and the nodes that R changed acknowledged
# at least R (a node no revision since R touched keeps acknowledging an older one)
acked_all() {
	local n
	n=$(fleet_cli get nodes -o json 2>/dev/null | jq "[.[] | .enrollment |
		select(.revision_acked >= .revision_wanted and
		       (.revision_wanted < $1 or .revision_acked >= $1))] | length")
	[ "${n:-0}" -ge 3 ]
}
acked_node() { # acked_node TIER: the revision that node acknowledged
	fleet_cli get nodes -o json | jq ".[] | select(.name == \"$(fleet_node "$1")\") | .enrollment.revision_acked"
}
wait_for() { # wait_for SECONDS COMMAND...
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}
revision() { fleet_cli revisions -o json | jq -r '(.[] | select(.current) | .revision) // 0'; }
# loop_probe NAME FROM TO allowed|denied: probes continuously until killed; every probe whose
# outcome is not the wanted one is a line in STATE/loop.NAME.bad, every probe one in .all
loop_probe() {
	(
		FLEET_NC_WAIT=1 # a denied attempt costs a second, not three
		while :; do
			got=$(fleet_tcp "$2" "$3")
			echo "$got" >>"$STATE/loop.$1.all"
			[ "$got" = "$4" ] || echo "$got" >>"$STATE/loop.$1.bad"
		done
	) &
	loops+=($!)
}
loops_stop() {
	for p in "${loops[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	loops=()
}

# ---- bring the fleet up --------------------------------------------------------------------------
fleet_topology || { not_ok "topology"; exit 1; }
fleet_servers
fleet_controller_start || { not_ok "controller starts" "$(tail -n 3 "$STATE/controller.log")"; exit 1; }
fleet_enroll || { not_ok "enrollment" "$(tail -n 3 "$STATE/enroll.log")"; exit 1; }
# the db node's policy map holds 8 entries: enough for the example, not for a big policy
sed -i 's/^endpoints:/maps: {policy: 8}\nendpoints:/' "$STATE/agent-db.yaml"
for t in $FLEET_TIERS; do fleet_agent_start "$t"; done
if fleet_wait_synced 40; then ok "three agents enroll, report their endpoints and sync"; else
	not_ok "three agents enroll, report their endpoints and sync" "$(fleet_cli get nodes 2>&1 | tr '\n' ' ')"
	exit 1
fi
n=$(fleet_cli get workloads -o json | jq length)
[ "$n" = 3 ] && ok "the reported endpoints are the controller's workloads" ||
	not_ok "the reported endpoints are the controller's workloads" "$n"
expect "no policy yet: everything passes" web db allowed

# ---- apply: enforced on every node ----------------------------------------------------------------
out=$(fleet_cli apply --wait=30s -f "$TOP/deploy/examples/fleet-demo.yaml" 2>&1)
rc=$?
r1=$(revision)
if [ $rc = 0 ] && acked_all "$r1"; then ok "apply --wait returns once every node acknowledged"; else
	not_ok "apply --wait returns once every node acknowledged" "rc=$rc $out"
fi
expect "client -> web tcp/80: allowed" client web allowed
expect "client -> web tcp/80 over IPv6: allowed" client web allowed 6
expect "web -> api tcp/8080: allowed" web api allowed
expect "api -> db tcp/5432: allowed" api db allowed
expect "client -> api: denied" client api denied
expect "web -> db: denied" web db denied
expect "web -> db over IPv6: denied" web db denied 6
expect "db -> api: denied (db's egress)" db api denied
if ip netns exec "$(fleet_ns client)" ping -n -q -c 1 -w 2 "${FLEET_ADDR4[db]}" >/dev/null 2>&1; then
	not_ok "ping client -> db: denied"
else
	ok "ping client -> db: denied"
fi

# ---- edit, delete --------------------------------------------------------------------------------
sed 's/port: 5432/port: 5433/' "$TOP/deploy/examples/fleet-demo.yaml" >"$STATE/edit.yaml"
fleet_cli apply --wait=30s -f "$STATE/edit.yaml" >/dev/null 2>&1
expect "edit (db port 5432 -> 5433): api -> db:5432 now denied" api db denied
fleet_cli delete --wait=30s -f "$TOP/deploy/examples/fleet-demo.yaml" >/dev/null 2>&1
expect "delete: back to no policy, web -> db allowed" web db allowed
fleet_cli apply --wait=30s -f "$TOP/deploy/examples/fleet-demo.yaml" >/dev/null 2>&1

# ---- an agent down while two revisions passed catches up -----------------------------------------
fleet_agent_stop db
expect "agent stopped: its datapath keeps enforcing" web db denied
cat >"$STATE/open.yaml" <<'EOF'
kind: Policy
name: db-from-web
selector: {matchLabels: {app: db}}
ingress:
  - from: [{selector: {matchLabels: {app: web}}}]
    ports: [{protocol: TCP, port: 5432}]
---
kind: Policy
name: web-to-db
selector: {matchLabels: {app: web}}
policyTypes: [Egress]
egress:
  - to: [{selector: {matchLabels: {app: db}}}]
    ports: [{protocol: TCP, port: 5432}]
EOF
head -7 "$STATE/open.yaml" >"$STATE/open1.yaml"
fleet_cli apply -f "$STATE/open1.yaml" >/dev/null 2>&1
fleet_cli apply -f "$STATE/open.yaml" >/dev/null 2>&1
r2=$(revision)
expect "...meanwhile it still enforces the old revision" web db denied
fleet_agent_start db
if wait_for 30 acked_all "$r2" && [ "$(acked_node db)" = "$r2" ]; then
	ok "restarted two revisions behind, it catches up"
else
	not_ok "restarted two revisions behind, it catches up" "$(fleet_cli get nodes 2>&1 | tr '\n' ' ')"
fi
expect "...and enforces the newest: web -> db allowed" web db allowed

# ---- controller restart: nothing lost, no allowed connection dropped -------------------------------
loop_probe allowed web api allowed
sleep 1
fleet_controller_stop TERM
sleep 1
fleet_controller_start || not_ok "controller restarts"
wait_for 30 acked_all "$r2"
sleep 1
loops_stop
bad=$(cat "$STATE/loop.allowed.bad" 2>/dev/null | wc -l)
all=$(cat "$STATE/loop.allowed.all" 2>/dev/null | wc -l)
[ "$bad" = 0 ] && [ "$all" -gt 5 ] && ok "controller restart: $all allowed connections, none dropped" ||
	not_ok "controller restart: no allowed connection dropped" "$bad of $all failed"
[ "$(revision)" = "$r2" ] && [ "$(fleet_cli get policies -o json | jq length)" = 8 ] &&
	ok "controller restart: revision and policies intact" ||
	not_ok "controller restart: revision and policies intact" "rev $(revision), want $r2"
wait_for 30 acked_all "$r2" && ok "controller restart: every agent resynced" ||
	not_ok "controller restart: every agent resynced"

# ---- agent restart: enforcing throughout --------------------------------------------------------------
loop_probe pass web api allowed
loop_probe block client api denied
sleep 1
fleet_agent_stop api
sleep 2 # the datapath enforces alone for a while
fleet_agent_start api
wait_for 30 acked_all "$r2"
sleep 2
loops_stop
pb=$(cat "$STATE/loop.pass.bad" 2>/dev/null | wc -l)
pa=$(cat "$STATE/loop.pass.all" 2>/dev/null | wc -l)
bb=$(cat "$STATE/loop.block.bad" 2>/dev/null | wc -l)
ba=$(cat "$STATE/loop.block.all" 2>/dev/null | wc -l)
[ "$pb" = 0 ] && [ "$pa" -gt 3 ] && ok "agent restart: $pa allowed connections, none dropped" ||
	not_ok "agent restart: no allowed connection dropped" "$pb of $pa failed"
[ "$bb" = 0 ] && [ "$ba" -ge 3 ] && ok "agent restart: $ba denied attempts, none passed" ||
	not_ok "agent restart: no denied connection passed" "$bb of $ba passed"

# ---- an agent that cannot apply -------------------------------------------------------------------------
# 20 ports on db, none adjacent (adjacent ones merge into a range): more than its 8-entry map
{
	echo "kind: Policy"
	echo "name: db-many-ports"
	echo "selector: {matchLabels: {app: db}}"
	echo "ingress:"
	echo "  - from: [{selector: {matchLabels: {app: api}}}]"
	echo "    ports:"
	for p in $(seq 6000 2 6038); do echo "      - {protocol: TCP, port: $p}"; done
} >"$STATE/big.yaml"
out=$(fleet_cli apply --wait=10s -f "$STATE/big.yaml" 2>&1)
rc=$?
nodes=$(fleet_cli get nodes 2>&1)
if [ $rc = 1 ] && grep -q "$(fleet_node db)" <<<"$out" && grep -q "^$(fleet_node db) .*error.*full" <<<"$nodes"; then
	ok "an agent that cannot apply says so; apply --wait names it; get nodes shows the error"
else
	not_ok "an agent that cannot apply says so; apply --wait names it; get nodes shows the error" \
		"rc=$rc $out $(grep "$(fleet_node db)" <<<"$nodes")"
fi
expect "...and that node keeps enforcing its revision" web db allowed
acked=$(acked_node db)
[ "$acked" = "$r2" ] && ok "...and acknowledges the revision it kept ($r2)" ||
	not_ok "...and acknowledges the revision it kept" "acked $acked, want $r2"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
