#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Policy rollout as the controller serves it, with real processes over real mutual TLS on
# loopback: enrolled nodes report endpoints, then bh_fake_agent (the agent side of Watch/Ack,
# without a datapath) watches. A change wakes exactly the affected nodes' watches with a delta;
# unaffected watches stay held; a node that does not know what it holds gets a snapshot; Ack and
# `bulkhead apply --wait` (done, and timed out naming the node); a failed apply shows in
# `bulkhead get nodes`; after a controller restart watches resync.
#
#   rollout_test.sh BULKHEAD_CONTROLLER BULKHEAD BULKHEAD_AGENT BH_FAKE_AGENT
#
# Everything lives in one temp dir, removed on exit; processes started here are stopped by pid.
set -u

CTL=${1:-}
CLI=${2:-}
AGENT=${3:-}
FAKE=${4:-}
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1${2:+ ($2)}"; failed=$((failed + 1)); }

missing=()
for b in "$CTL" "$CLI" "$AGENT" "$FAKE"; do [ -n "$b" ] && [ -x "$b" ] || missing+=("binary '$b'"); done
if [ ${#missing[@]} -gt 0 ]; then
	for m in "${missing[@]}"; do not_ok "prerequisite: $m"; done
	exit 1
fi

T=$(mktemp -d /tmp/bh-rollout-test.XXXXXX)
CPID=
BG=()
cleanup() {
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "$CPID" ] && kill "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
export BULKHEAD_ADMIN_SOCKET=ipc://$T/ctl/admin.sock
APORT=0
EPORT=0
start_controller() {
	rm -f "$T/ctl/ports"
	"$CTL" serve --state-dir "$T/ctl" --listen "tls+tcp://127.0.0.1:$APORT" \
		--enroll-listen "tls+tcp://127.0.0.1:$EPORT" --admin "ipc://$T/ctl/admin.sock" \
		-v info >>"$T/controller.log" 2>&1 &
	CPID=$!
	for _ in $(seq 100); do
		[ -s "$T/ctl/ports" ] && [ -S "$T/ctl/admin.sock" ] && break
		sleep 0.1
	done
	APORT=$(awk '/^agent/ {print $2}' "$T/ctl/ports")
	EPORT=$(awk '/^enroll/ {print $2}' "$T/ctl/ports")
}
watch() { "$FAKE" "$T/$1" watch "${@:2}"; }
ack() { "$FAKE" "$T/$1" ack "${@:2}"; }
rev_of() { awk '{print $2}' <<<"$1"; }

"$CTL" init --state-dir "$T/ctl" >/dev/null 2>&1 || { not_ok "init"; exit 1; }
start_controller
[ -n "$APORT" ] || { not_ok "controller starts" "$(tail -3 "$T/controller.log")"; exit 1; }

TOK=$("$CLI" token create --ttl 10m --uses 3 2>/dev/null)
for n in n1 n2 n3; do
	"$AGENT" enroll --controller "127.0.0.1:$EPORT" --token "$TOK" --name "$n" \
		--state-dir "$T/$n" >/dev/null 2>&1 || not_ok "enroll $n"
done
"$AGENT" report --state-dir "$T/n1" --labels app=web web-1=veth-web1,198.18.1.10 >/dev/null 2>&1
"$AGENT" report --state-dir "$T/n2" --labels app=api api-1=veth-api1,198.18.2.10 >/dev/null 2>&1
"$AGENT" report --state-dir "$T/n3" --labels app=db db-1=veth-db1,198.18.3.10 >/dev/null 2>&1
cat >"$T/p.yaml" <<'EOF'
kind: Policy
name: api-from-web
selector: {matchLabels: {app: api}}
ingress:
  - from: [{selector: {matchLabels: {app: web}}}]
    ports: [{protocol: TCP, port: 8080}]
---
kind: Policy
name: db-from-api
selector: {matchLabels: {app: db}}
ingress:
  - from: [{selector: {matchLabels: {app: api}}}]
    ports: [{protocol: TCP, port: 5432}]
EOF
"$CLI" apply -f "$T/p.yaml" >/dev/null 2>&1 || not_ok "apply the policies"

# ---- first contact: a snapshot --------------------------------------------------------------------
out=$(watch n3 0 2000)
if [[ $out =~ ^revision\ [0-9]+\ snapshot\ 1\ 1\ 1$ ]]; then
	ok "a node's first watch gets a snapshot of its rule set ($out)"
else
	not_ok "a node's first watch gets a snapshot of its rule set" "$out"
fi
R=$(rev_of "$out")
for n in n1 n2 n3; do
	o=$(watch $n 0 2000)
	ack $n "$(rev_of "$o")" >/dev/null
done
out=$("$CLI" get nodes -o json 2>&1)
if [ "$(jq '[.[] | select(.enrollment.revision_acked == '"$R"')] | length' <<<"$out")" = 3 ]; then
	ok "get nodes shows every node acknowledged revision $R"
else
	not_ok "get nodes shows every node acknowledged revision $R" "$out"
fi

# ---- a change wakes exactly the affected watches ----------------------------------------------------
watch n3 "$R" 20000 >"$T/w3" 2>&1 &
W3=$!
BG+=($W3)
watch n1 "$R" 4000 >"$T/w1" 2>&1 &
W1=$!
BG+=($W1)
sleep 1
check_held=$(jobs -rp | grep -c "^$W3$")
sed 's/port: 5432/port: 5433/' "$T/p.yaml" >"$T/p2.yaml"
t0=$(date +%s%N)
"$CLI" apply -f "$T/p2.yaml" >/dev/null 2>&1
wait $W3
t1=$(date +%s%N)
out=$(cat "$T/w3")
if [ "$check_held" = 1 ] && [[ $out =~ ^revision\ [0-9]+\ delta\ $R\ \+0/-0\ \+0/-0\ \+1/-1$ ]]; then
	ok "the affected node's held watch wakes with a delta: $out ($(((t1 - t0) / 1000000)) ms)"
else
	not_ok "the affected node's held watch wakes with a delta" "held=$check_held $out"
fi
R2=$(rev_of "$out")
if kill -0 $W1 2>/dev/null; then ok "an unaffected node's watch stays held"; else
	not_ok "an unaffected node's watch stays held" "$(cat "$T/w1")"
fi
wait $W1
out=$(cat "$T/w1")
[ "$out" = "revision $R none" ] && ok "...and answers 'nothing new' when its wait ends" ||
	not_ok "...and answers 'nothing new' when its wait ends" "$out"

# ---- apply --wait --------------------------------------------------------------------------------
sed 's/port: 5433/port: 5434/' "$T/p.yaml" >"$T/p3.yaml"
"$CLI" apply --wait=15s -f "$T/p3.yaml" >"$T/apply.out" 2>&1 &
AP=$!
BG+=($AP)
out=$(watch n3 "$R2" 10000)
sleep 0.5
kill -0 $AP 2>/dev/null && still=1 || still=0
ack n3 "$(rev_of "$out")" >/dev/null
wait $AP
rc=$?
if [ $still = 1 ] && [ $rc = 0 ] && grep -q "^revision" "$T/apply.out"; then
	ok "apply --wait returns when the affected node acknowledged"
else
	not_ok "apply --wait returns when the affected node acknowledged" "still=$still rc=$rc $(cat "$T/apply.out")"
fi
R3=$(rev_of "$out")
sed 's/port: 8080/port: 8081/' "$T/p3.yaml" >"$T/p4.yaml"
out=$("$CLI" apply --wait=2s -f "$T/p4.yaml" 2>&1)
rc=$?
if [ $rc = 1 ] && grep -q "not acknowledged in time by 1 of 1 node: n2" <<<"$out"; then
	ok "apply --wait times out naming the node that did not acknowledge"
else
	not_ok "apply --wait times out naming the node that did not acknowledge" "rc=$rc $out"
fi

# ---- a failed apply -------------------------------------------------------------------------------
out=$(watch n2 "$R" 2000)
R4=$(rev_of "$out")
ack n2 "$R4" "policy map is full (1 entries)" "$R" >/dev/null
out=$("$CLI" get nodes 2>&1)
if grep -q "^n2 .*error.*policy map is full" <<<"$out"; then
	ok "a node's failed apply shows in get nodes, with the error"
else
	not_ok "a node's failed apply shows in get nodes, with the error" "$out"
fi
out=$(watch n2 "$R" 2000)
[[ $out =~ snapshot ]] && ok "after a failed apply the node's next watch gets a snapshot" ||
	not_ok "after a failed apply the node's next watch gets a snapshot" "$out"

# ---- controller restart: watches resync ------------------------------------------------------------
kill "$CPID" && wait "$CPID" 2>/dev/null
CPID=
start_controller
out=$(watch n3 "$R3" 3000)
if [[ $out =~ ^revision\ [0-9]+\ snapshot ]]; then
	ok "after a controller restart a node resyncs with a snapshot"
else
	not_ok "after a controller restart a node resyncs with a snapshot" "$out"
fi
ack n3 "$(rev_of "$out")" >/dev/null
out=$(watch n3 "$(rev_of "$out")" 1500)
[[ $out =~ none$ ]] && ok "...and then has nothing new" || not_ok "...and then has nothing new" "$out"
R5=$(rev_of "$out")
for i in 1 2 3 4; do
	watch n3 "$R5" 4000 >/dev/null 2>&1 &
	BG+=($!)
done
sleep 1
out=$(watch n3 "$R5" 4000 2>&1)
grep -q "already has 4 watches open" <<<"$out" && ok "a node cannot pile up held watches (5th refused)" ||
	not_ok "a node cannot pile up held watches (5th refused)" "$out"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
