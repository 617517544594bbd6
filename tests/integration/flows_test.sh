#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Flow summaries end to end with real processes and real traffic, on the fleet of deploy/fleet.sh
# (a controller and three agents in network namespaces, flow export every second):
#   allowed, denied and observe-mode (would-deny) pings show in `bulkhead flows` with the right
#   verdict, rule, policy and exactly the packets sent; deny events carry the addresses; the
#   controller down for a while: flows made meanwhile arrive after it is back; a spool too small:
#   the drop count is exact; hostile reports (another node's name, absurd counts, huge batches,
#   stale or future times) are refused or clamped and store nothing for the wrong node; rule hits
#   in `get policies`; restart keeps the history.
#
#   flows_test.sh BUILD_DIR
#
# Namespaces, pins, processes and files are unique to the run and removed on exit, even on
# failure. Needs root, BPF and network namespaces: fails naming what is missing.
set -u

BUILD=${1:-}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
FAKE=${BUILD:-.}/tests/integration/bh_fake_agent
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1${2:+ ($2)}"; failed=$((failed + 1)); }
check() { # check NAME COMMAND...: ok when the command succeeds
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

missing=()
[ "$(id -u)" -eq 0 ] || missing+=("root (run as uid 0)")
[ -n "$BUILD" ] && [ -x "$BUILD/agent/bulkhead-agent" ] || missing+=("build dir with binaries (argument 1: '$BUILD')")
[ -x "$FAKE" ] || missing+=("$FAKE")
for tool in ip nc jq ping ss mountpoint curl; do command -v $tool >/dev/null || missing+=("$tool"); done
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf 2>/dev/null || missing+=("bpffs at /sys/fs/bpf (mount failed)")
fi
if [ ${#missing[@]} -gt 0 ]; then
	for m in "${missing[@]}"; do not_ok "prerequisite: $m"; done
	exit 1
fi

PREFIX=bhw$(printf '%x%03x' $$ $((RANDOM % 4096)))
FLEET_FLOW_INTERVAL=1s
STATE=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
# shellcheck source=deploy/fleet.sh
. "$TOP/deploy/fleet.sh"
watchdog=
cleanup() {
	if [ "$failed" -gt 0 ]; then # what the daemons said, for the failure's reader
		for f in controller.log agent-web.log agent-api.log; do
			echo "# ---- $f (last 25 lines)"
			tail -n 25 "$STATE/$f" 2>/dev/null | sed 's/^/# /'
		done
	fi
	[ -n "${BH_KEEP:-}" ] || fleet_down
	[ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
}
trap cleanup EXIT
trap 'echo "not ok - interrupted"; exit 1' INT TERM
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep 280 &
	s=$!
	wait $s && kill -TERM $$ 2>/dev/null
) &
watchdog=$!

wait_for() { # wait_for SECONDS COMMAND...
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.3
	done
}
# wait_eq SECONDS WANT COMMAND...: until COMMAND prints WANT (run again each time)
wait_eq() {
	local end=$((SECONDS + $1)) want=$2
	shift 2
	until [ "$("$@")" = "$want" ]; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.3
	done
}
# flows JQ ARGS...: the flows the controller has (bulkhead flows ARGS -o json), through jq
flows() {
	local q=$1
	shift
	fleet_cli flows -o json "$@" 2>/dev/null | jq -r "$q"
}
# packets NODE VERDICT PROTO PORT DIR: packets of that flow key that NODE reported
packets() {
	flows "[.flows[] | select(.node == \"$(fleet_node "$1")\" and .verdict == \"$2\" and
		.protocol == \"$3\" and .port == $4 and .direction == \"$5\") | .packets] | add // 0"
}
status() { # status TIER KEY: a value of that agent's status
	"$FLEET_AGENT" status --socket "$STATE/agent-$1.sock" --raw 2>/dev/null | awk -v k="$2" '$1 == k {print $2}'
}
ping_n() { # ping_n FROM TO COUNT: COUNT echo requests, 0.2 s apart, each waiting 1 s at most
	ip netns exec "$(fleet_ns "$1")" ping -n -q -c "$3" -i 0.2 -W 1 "${FLEET_ADDR4[$2]}" >/dev/null 2>&1
}

# ---- the fleet, exporting flows every second -----------------------------------------------------
fleet_topology || { not_ok "topology"; exit 1; }
fleet_controller_start || { not_ok "controller starts" "$(tail -n 3 "$STATE/controller.log")"; exit 1; }
fleet_enroll || { not_ok "enrollment" "$(tail -n 3 "$STATE/enroll.log")"; exit 1; }
for t in $FLEET_TIERS; do fleet_agent_start "$t"; done
fleet_wait_synced 40 || { not_ok "three agents sync" "$(fleet_cli get nodes 2>&1 | tr '\n' ' ')"; exit 1; }

cat >"$STATE/policy.yaml" <<'EOF'
kind: Policy
name: web-from-clients
selector: {matchLabels: {app: web}}
ingress:
  - from: [{cidr: 198.18.10.0/24}]
    ports: [{protocol: TCP, port: 80}, {protocol: ICMP, type: 8}]
---
kind: Policy
name: api-guard
selector: {matchLabels: {app: api}}
ingress:
  - from: [{selector: {matchLabels: {app: web}}}]
    ports: [{protocol: TCP, port: 8080}]
deny:
  ingress:
    - from: [{cidr: 198.18.10.0/24}]
      ports: [{protocol: ICMP}]
---
kind: Policy
name: db-trial
mode: observe
selector: {matchLabels: {app: db}}
ingress:
  - from: [{selector: {matchLabels: {app: api}}}]
    ports: [{protocol: TCP, port: 5432}]
EOF
out=$(fleet_cli apply --wait=30s -f "$STATE/policy.yaml" 2>&1) || { not_ok "apply" "$out"; exit 1; }

# ---- allowed, denied, would-deny: exact packets, rule and policy ---------------------------------
ping_n client web 3 && ok "client pings web (allowed)" || not_ok "client pings web (allowed)"
ping_n client api 2 && not_ok "client cannot ping api (denied)" || ok "client cannot ping api (denied)"
ping_n api db 4 && ok "api pings db (observe: would-deny, passes)" || not_ok "api pings db (observe: passes)"

if wait_eq 20 6 packets web allowed icmp 8 ingress; then
	ok "allowed: web's node reports 6 packets (3 requests, 3 replies) of icmp/8, ingress"
else
	not_ok "allowed: 6 packets at web" "got $(packets web allowed icmp 8 ingress)"
fi
row=$(flows "[.flows[] | select(.node == \"$(fleet_node web)\" and .verdict == \"allowed\" and .protocol == \"icmp\")][0]")
[ "$(jq -r .policy <<<"$row")" = web-from-clients ] && [ "$(jq -r .src <<<"$row")" = 198.18.10.0/24 ] &&
	[ "$(jq -r .dst <<<"$row")" = web-1 ] && grep -q "ingress allow rule" <<<"$(jq -r .rule <<<"$row")" &&
	ok "allowed: named src 198.18.10.0/24, dst web-1, policy web-from-clients, its allow rule" ||
	not_ok "allowed: named src, dst, policy and rule" "$row"

if wait_eq 20 2 packets api denied icmp 8 ingress; then
	ok "denied: api's node reports exactly the 2 echo requests"
else
	not_ok "denied: 2 packets at api" "got $(packets api denied icmp 8 ingress)"
fi
row=$(flows "[.flows[] | select(.verdict == \"denied\")][0]" --verdict denied)
[ "$(jq -r .policy <<<"$row")" = api-guard ] && grep -q "deny" <<<"$(jq -r .rule <<<"$row")" &&
	ok "denied: decided by policy api-guard's deny rule ($(jq -r .rule <<<"$row"))" ||
	not_ok "denied: policy api-guard's deny rule" "$row"

if wait_eq 20 8 packets db would-deny icmp 8 ingress; then
	ok "observe: db's node reports 8 would-deny packets (they passed: 4 requests, 4 replies)"
else
	not_ok "observe: 8 would-deny packets at db" "got $(packets db would-deny icmp 8 ingress)"
fi
wait_eq 10 8 packets api allowed icmp 8 egress &&
	ok "...and api's node the same flow leaving it, allowed (api's egress is open)" ||
	not_ok "api's egress: 8 allowed packets" "got $(packets api allowed icmp 8 egress)"
row=$(flows "[.flows[] | select(.verdict == \"would-deny\")][0]")
[ "$(jq -r .src <<<"$row")" = api-1 ] && [ "$(jq -r .dst <<<"$row")" = db-1 ] &&
	grep -q "default deny" <<<"$(jq -r .rule <<<"$row")" &&
	ok "observe: api-1 -> db-1 would be dropped by db's default deny" ||
	not_ok "observe: named and ruled" "$row"

# filters
n=$(flows '.flows | length' --policy api-guard)
m=$(flows '[.flows[] | select(.policy != "api-guard")] | length' --policy api-guard)
[ "$n" -ge 1 ] && [ "$m" = 0 ] && ok "--policy api-guard: only its flows ($n)" || not_ok "--policy filter" "$n rows, $m foreign"
n=$(flows '[.flows[] | select(.src != "api-1")] | length' --from api-1)
m=$(flows '.flows | length' --from app=api)
[ "$n" = 0 ] && [ "$m" -ge 2 ] && ok "--from api-1 and -l app=api select api's flows" || not_ok "--from filter" "$n foreign, $m rows"
n=$(flows '.flows | length' --to db-1 --port icmp/8 --verdict would-deny)
[ "$n" = 1 ] && ok "--to db-1 --port icmp/8 --verdict would-deny: one row" || not_ok "--to/--port/--verdict" "$n rows"
out=$(fleet_cli flows --from no-such-workload 2>&1)
[ $? = 1 ] && grep -q "no-such-workload" <<<"$out" && ok "an unknown workload is an error naming it" ||
	not_ok "an unknown workload is an error" "$out"
fleet_cli flows --verdict maybe >/dev/null 2>&1
[ $? = 2 ] && ok "a bad --verdict is a usage error" || not_ok "a bad --verdict is a usage error"
out=$(fleet_cli flows --to db-1 2>&1)
grep -q "^LAST-SEEN" <<<"$out" && grep -q "would-deny" <<<"$out" && ok "table output" || not_ok "table output" "$out"

# --follow: flows as reports arrive
fleet_cli flows --follow -o json --to web-1 --port icmp/8 >"$STATE/follow.out" 2>&1 &
follow_pid=$!
sleep 1
ping_n client web 2
# the history's row (6 packets), then the new ping's 4 packets (in one row, or two when a drain
# fell between them)
if wait_eq 15 10 eval 'jq -s "map(.packets) | add" "$STATE/follow.out" 2>/dev/null'; then
	ok "flows --follow prints the new ping's flow (4 packets) as its report arrives"
else
	not_ok "flows --follow" "$(head -c 400 "$STATE/follow.out")"
fi
kill "$follow_pid" 2>/dev/null
wait "$follow_pid" 2>/dev/null
n=$(jq -s 'length' "$STATE/follow.out" 2>/dev/null)
[ "${n:-0}" -ge 2 ] && ok "...one JSON object per line (history first: $n lines)" || not_ok "follow output is JSON lines" "$n"

# deny events: addresses and ports
ev=$(flows "[.events[] | select(.verdict == \"denied\" and .src_address == \"${FLEET_ADDR4[client]}\" and
	.dst_address == \"${FLEET_ADDR4[api]}\")] | length" --events)
[ "${ev:-0}" -ge 2 ] && ok "deny events: the 2 denied pings with their addresses" || not_ok "deny events" "$ev"

# ---- the controller away: flows made meanwhile arrive when it is back ------------------------------
fleet_controller_stop TERM
ping_n client web 5
sleep 3 # drained into the agent's spool, which cannot send
spooled=$(status web flow_summaries_spooled)
[ "${spooled:-0}" -ge 1 ] && ok "controller down: web's agent spools ($spooled summaries)" || not_ok "agent spools" "$spooled"
fleet_controller_start || not_ok "controller restarts"
if wait_eq 30 20 packets web allowed icmp 8 ingress; then
	ok "controller back: the 10 packets made meanwhile arrive (20 in all)"
else
	not_ok "controller back: 20 packets" "got $(packets web allowed icmp 8 ingress)"
fi
[ "$(packets api denied icmp 8 ingress)" = 2 ] && ok "controller restart: the history is kept" ||
	not_ok "controller restart: history kept"

# ---- a spool too small: the drop count is exact ---------------------------------------------------
fleet_agent_stop api
sed -i 's/^flow-export: .*/flow-export: {interval: 1s, spool: 2}/' "$STATE/agent-api.yaml"
fleet_agent_start api
fleet_wait_synced 30 >/dev/null
wait_eq 10 0 status api flow_summaries_spooled
fleet_controller_stop TERM
for p in 7001 7002 7003 7004 7005 7006; do # six flows the spool cannot all keep
	echo x | ip netns exec "$(fleet_ns client)" nc -w 1 "${FLEET_ADDR4[api]}" $p >/dev/null 2>&1
done
sleep 3
drained=$(status api flow_summaries_drained)
dropped=$(status api flow_summaries_dropped)
[ "${dropped:-0}" -ge 4 ] && ok "spool of 2: $dropped of $drained summaries dropped" || not_ok "spool drops" "dropped $dropped of $drained"
fleet_controller_start || not_ok "controller restarts"
wait_eq 30 0 status api flow_summaries_spooled
snap=$("$FLEET_AGENT" status --socket "$STATE/agent-api.sock" --raw 2>/dev/null) # one moment
sent=$(awk '$1 == "flow_summaries_sent" {print $2}' <<<"$snap")
dropped=$(awk '$1 == "flow_summaries_dropped" {print $2}' <<<"$snap")
drained=$(awk '$1 == "flow_summaries_drained" {print $2}' <<<"$snap")
spooled=$(awk '$1 == "flow_summaries_spooled" {print $2}' <<<"$snap")
[ $((sent + dropped + spooled)) = "$drained" ] && ok "agent: sent $sent + dropped $dropped + waiting $spooled = drained $drained" ||
	not_ok "agent accounting" "sent $sent dropped $dropped drained $drained"
wait_eq 10 "$dropped" flows "[.nodes[] | select(.node == \"$(fleet_node api)\") | .summaries_dropped] | .[0]" --stats
st=$(flows "[.nodes[] | select(.node == \"$(fleet_node api)\")][0]" --stats)
[ "$(jq -r .summaries_dropped <<<"$st")" = "$dropped" ] &&
	ok "the controller shows the exact drop count ($dropped) for node api" ||
	not_ok "the controller's drop count" "$st vs $dropped"

# ---- hostile reports ------------------------------------------------------------------------------
web=$(fleet_node web)
out=$("$FAKE" "$STATE/agent-web" flows 3 "node=$(fleet_node api)" src=779 2>&1)
grep -q PERMISSION_DENIED <<<"$out" && grep -q "may not report for node $(fleet_node api)" <<<"$out" &&
	ok "a report naming another node is refused" || not_ok "a report naming another node is refused" "$out"
grep -q "node $web sent a report for node $(fleet_node api): refused" "$STATE/controller.log" &&
	ok "...with a log line naming both" || not_ok "...with a log line"
n=$(flows '[.flows[] | select(.src_identity == 779)] | length')
[ "$n" = 0 ] && ok "...and nothing of it is stored, for that node or any" || not_ok "nothing stored for the other node" "$n rows"
out=$("$FAKE" "$STATE/agent-web" flows 70000 2>&1)
grep -q INVALID_ARGUMENT <<<"$out" && ok "a batch of 70,000 summaries is refused" || not_ok "huge batch refused" "$out"
out=$("$FAKE" "$STATE/agent-web" flows 2 packets=99999999999999999 bytes=1 src=777 2>&1)
grep -q "stored 2 clamped 2 rejected 0" <<<"$out" && ok "absurd packet counts are clamped" || not_ok "absurd counts clamped" "$out"
out=$("$FAKE" "$STATE/agent-web" flows 2 packets=0 2>&1)
grep -q "stored 0 clamped 0 rejected 2" <<<"$out" && ok "summaries of no packets are rejected" || not_ok "zero packets rejected" "$out"
out=$("$FAKE" "$STATE/agent-web" flows 1 age=99999999 2>&1)
grep -q "stored 0 clamped 0 rejected 1" <<<"$out" && ok "a summary older than the retention is rejected" || not_ok "stale rejected" "$out"
out=$("$FAKE" "$STATE/agent-web" flows 1 future=86400 src=778 2>&1)
grep -q "stored 1 clamped 1" <<<"$out" && ok "a summary from the future is clamped to now" || not_ok "future clamped" "$out"
out=$("$FAKE" "$STATE/agent-web" flows 1 verdict=9 2>&1)
grep -q "rejected 1" <<<"$out" && ok "an unknown verdict is rejected" || not_ok "bad verdict rejected" "$out"
grep -q "flows: node $web: report of 2 summaries: 2 stored, 2 of them clamped (first: packet count over 1e12)" "$STATE/controller.log" &&
	ok "clamping is logged once per report, with the reason" || not_ok "clamping logged"
n=$(flows "[.flows[] | select(.src_identity == 777) | .packets] | add" --node "$web")
[ "$n" = $((2 * 1000000000000)) ] && ok "stored clamped: 1e12 packets each" || not_ok "clamped value stored" "$n"
last=$(flows "[.flows[] | select(.src_identity == 778) | .last_seen_ms][0]" --node "$web")
now=$(($(date +%s) * 1000))
[ -n "$last" ] && [ "$last" -le $((now + 1000)) ] && ok "stored future: last seen now, not tomorrow" || not_ok "future stored as now" "$last vs $now"

# counts that would overflow: 10,000 summaries of one key at the packet cap, in two minutes
"$FAKE" "$STATE/agent-web" flows 10000 same=1 packets=1000000000000 bytes=99999999999999999 src=781 >/dev/null 2>&1
"$FAKE" "$STATE/agent-web" flows 10000 same=1 packets=1000000000000 bytes=99999999999999999 src=781 age=120 >/dev/null 2>&1
n=$(flows "[.flows[] | select(.src_identity == 781) | .packets] | add" --node "$web")
fleet_cli flows >/dev/null 2>&1 && [ "$n" = 18014398509481984 ] &&
	ok "a key repeated past any sane count saturates at 2^53 a row; queries still work" ||
	not_ok "saturating counts" "$n; $(fleet_cli flows 2>&1 | head -2)"

# ---- rule hits --------------------------------------------------------------------------------------
h=$(fleet_cli get policies --hits -o json 2>&1)
rule() { jq -r ".[] | select(.policy == \"$1\") | .rules[] | select(.rule == \"$2\") | .$3" <<<"$h"; }
[ "$(rule web-from-clients "ingress allow rule 0" packets)" = 20 ] &&
	ok "get policies --hits: web-from-clients' allow rule decided the 20 ping packets" ||
	not_ok "rule hits: web-from-clients" "$h"
[ "$(rule api-guard "ingress deny rule 0" packets)" = 2 ] && [ "$(rule api-guard "ingress allow rule 0" unused)" = true ] &&
	ok "api-guard: its deny rule hit 2 packets; its allow rule (web -> api) is marked unused" ||
	not_ok "rule hits: api-guard" "$h"
out=$(fleet_cli get policies 2>&1)
grep -q "^api-guard .* 2 .* 1/2 " <<<"$out" && ok "get policies: HITS and UNUSED columns (api-guard: 2 packets, 1/2 unused)" ||
	not_ok "get policies columns" "$out"
out=$(fleet_cli get policies --hits 2>&1)
grep -q "^db-trial .*ingress allow rule 0 .*unused" <<<"$out" && ok "get policies --hits table: db-trial's rule unused" ||
	not_ok "--hits table" "$out"

# ---- metrics --------------------------------------------------------------------------------------
v() { awk -v k="$1" '$1 == k {print $2}' <<<"$m"; }
connected() { curl -sf "http://127.0.0.1:$FLEET_MPORT/metrics" | awk '$1 == "bulkhead_controller_nodes_connected" {print $2}'; }
wait_eq 60 3 connected # the agents reconnect after the restarts above (backing off)
wait_eq 30 0 status web flow_summaries_spooled
m=$(curl -sf "http://127.0.0.1:$FLEET_MPORT/metrics")
[ "$(v 'bulkhead_controller_nodes_connected')" = 3 ] && [ "$(v 'bulkhead_controller_nodes_behind')" = 0 ] &&
	[ "$(v 'bulkhead_controller_flow_summaries_total{outcome="stored"}')" -gt 0 ] &&
	[ "$(v 'bulkhead_controller_flow_summaries_total{outcome="rejected"}')" = 4 ] &&
	[ "$(v 'bulkhead_controller_store_bytes{db="flows"}')" -gt 0 ] &&
	ok "controller metrics: nodes connected and behind, summaries stored and rejected, store size" ||
	not_ok "controller metrics" "$(grep -v '^#' <<<"$m" | tr '\n' ' ')"
m=$(ip netns exec "$(fleet_ns web)" curl -sf http://127.0.0.1:9465/metrics)
[ "$(v 'bulkhead_agent_revision')" = "$(fleet_cli revisions -o json | jq '.[] | select(.current) | .revision')" ] &&
	[ "$(v 'bulkhead_agent_packets_total{verdict="allowed"}')" -ge 20 ] &&
	[ "$(v 'bulkhead_agent_connected')" = 1 ] && grep -q '^bulkhead_agent_map_entries{map="policy"}' <<<"$m" &&
	grep -q '^bulkhead_agent_datapath_events_lost_total{reason="rate-limit"}' <<<"$m" &&
	ok "agent metrics (in the node's namespace): revision, packets by verdict, maps, events lost" ||
	not_ok "agent metrics" "$(grep -v '^#' <<<"$m" | tr '\n' ' ')"
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FLEET_MPORT/other" | grep -q 404 &&
	ok "metrics: other paths are 404" || not_ok "metrics: other paths are 404"

# ---- the daemons' logs: no sanitizer report (in the ASan build), no crash ---------------------------
fleet_controller_stop TERM
for t in $FLEET_TIERS; do fleet_agent_stop "$t"; done
bad=$(grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$STATE"/*.log 2>/dev/null)
[ -z "$bad" ] && ok "no sanitizer report in the controller's and agents' logs" ||
	not_ok "sanitizer reports" "$(grep -h -A5 "ERROR: \|runtime error:" $bad | head -20 | tr '\n' ' ')"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
