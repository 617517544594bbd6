#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Enrollment end to end with real processes on loopback: bulkhead-controller init/serve, the
# bulkhead CLI (tokens, nodes) over the local admin socket, and bulkhead-agent enroll / renew /
# check over real TLS. Join-token abuse, pinning, races, renewal across an expiry boundary and
# revocation of a live connection.
#
#   enroll_test.sh BULKHEAD_CONTROLLER BULKHEAD BULKHEAD_AGENT
#
# Everything lives in one temp dir, removed on exit; the controller (started here) is stopped by
# its pid. Prints "ok - NAME" / "not ok - NAME"; exits 1 if any failed.
set -u

CTL=${1:-}
CLI=${2:-}
AGENT=${3:-}
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1${2:+ ($2)}"; failed=$((failed + 1)); }

missing=()
for b in "$CTL" "$CLI" "$AGENT"; do
	[ -n "$b" ] && [ -x "$b" ] || missing+=("binary '$b'")
done
for tool in openssl awk stat; do command -v $tool >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
	for m in "${missing[@]}"; do not_ok "prerequisite: $m"; done
	exit 1
fi

T=$(mktemp -d /tmp/bh-enroll-test.XXXXXX)
CPID=
cleanup() {
	[ -n "$CPID" ] && kill "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null
	[ -n "${WPID:-}" ] && kill "$WPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
export BULKHEAD_ADMIN_SOCKET=$T/ctl/admin.sock
LIFE=20 # seconds an agent certificate lives in this test

APORT=0
EPORT=0
start_controller() {
	# port 0 the first time; the same ports after a restart (agents keep their address)
	"$CTL" serve --state-dir "$T/ctl" --listen "tls+tcp://127.0.0.1:$APORT" \
		--enroll-listen "tls+tcp://127.0.0.1:$EPORT" --admin "ipc://$T/ctl/admin.sock" \
		--cert-lifetime ${LIFE}s -v info >>"$T/controller.log" 2>&1 &
	CPID=$!
	for _ in $(seq 100); do
		[ -s "$T/ctl/ports" ] && [ -S "$T/ctl/admin.sock" ] && break
		sleep 0.1
	done
	EPORT=$(awk '/^enroll/ {print $2}' "$T/ctl/ports")
	APORT=$(awk '/^agent/ {print $2}' "$T/ctl/ports")
}

# expect_fail NAME PATTERN COMMAND...: the command fails and says PATTERN
expect_fail() {
	local name=$1 pat=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		not_ok "$name" "succeeded: $out"
	elif echo "$out" | grep -qi -- "$pat"; then
		ok "$name"
	else
		not_ok "$name" "$(echo "$out" | tail -n 2 | tr '\n' ' ')"
	fi
}

# ---- init ---------------------------------------------------------------------------------------

if "$CTL" init --state-dir "$T/ctl" >"$T/init.out" 2>&1; then ok "init creates a controller"; else
	not_ok "init creates a controller" "$(cat "$T/init.out")"
	exit 1
fi
modes=$(stat -c '%a %n' "$T/ctl"/* | awk '$1 != "600"')
[ "$(stat -c %a "$T/ctl")" = 700 ] && [ -z "$modes" ] && ok "state files are 0600 in a 0700 directory" ||
	not_ok "state files are 0600 in a 0700 directory" "$modes"
before=$(sha256sum "$T/ctl/ca.key")
expect_fail "init refuses to replace a CA without --force" "already holds a controller" \
	"$CTL" init --state-dir "$T/ctl"
[ "$before" = "$(sha256sum "$T/ctl/ca.key")" ] && ok "the CA key was left alone" ||
	not_ok "the CA key was left alone"
openssl x509 -in "$T/ctl/controller.crt" -noout -ext subjectAltName 2>/dev/null | grep -q 127.0.0.1 &&
	ok "controller certificate names 127.0.0.1" || not_ok "controller certificate names 127.0.0.1"

start_controller
[ -n "$EPORT" ] && ok "controller serves (enrollment port $EPORT)" ||
	{ not_ok "controller serves" "$(tail -n 5 "$T/controller.log")"; exit 1; }

token() { "$CLI" token create "$@" 2>/dev/null; }
enroll() { "$AGENT" enroll --controller "127.0.0.1:$EPORT" --state-dir "$@"; }

# ---- enrollment ---------------------------------------------------------------------------------

TOK=$(token --ttl 10m --labels env=test)
[[ $TOK == bh1.* ]] && ok "token create prints a token" || not_ok "token create prints a token" "$TOK"
if out=$(enroll "$T/a1" --token "$TOK" --name node-1 2>&1); then ok "enroll with a token"; else
	not_ok "enroll with a token" "$out"
fi
modes=$(stat -c '%a %n' "$T/a1"/* | awk '$1 != "600"')
[ -z "$modes" ] && [ -f "$T/a1/node.key" ] && ok "agent key and certificate are 0600" ||
	not_ok "agent key and certificate are 0600" "$modes"
openssl x509 -in "$T/a1/node.crt" -noout -subject | grep -q "OU = agent, CN = node-1" &&
	ok "certificate says agent node-1" || not_ok "certificate says agent node-1"
out=$(enroll "$T/a1" --token "$TOK" --name node-1 2>&1) && echo "$out" | grep -q "already enrolled" &&
	ok "enrolling again with the same key is harmless" ||
	not_ok "enrolling again with the same key is harmless" "$out"
"$AGENT" check --state-dir "$T/a1" >/dev/null 2>&1 && ok "agent reaches the controller over mutual TLS" ||
	not_ok "agent reaches the controller over mutual TLS"
"$CLI" node list | grep -q "^node-1 .*env=test" && ok "node list shows the node with its labels" ||
	not_ok "node list shows the node with its labels" "$("$CLI" node list 2>&1)"

# ---- join tokens --------------------------------------------------------------------------------

expect_fail "replay of a used single-use token" "used up" enroll "$T/a2" --token "$TOK" --name node-2
T1=$(token --ttl 1s)
sleep 2.2
expect_fail "expired token" "expired" enroll "$T/a3" --token "$T1" --name node-3
T2=$(token --ttl 10m)
id=$(echo "$T2" | cut -d. -f2)
"$CLI" token revoke "$id" >/dev/null
expect_fail "revoked token" "revoked" enroll "$T/a4" --token "$T2" --name node-4
T3=$(token --ttl 10m)
bad=$(echo "$T3" | awk -F. '{s=$3; c=substr(s,1,1); c=(c=="0")?"1":"0"; print $1"."$2"."c substr(s,2)"."$4}')
expect_fail "wrong secret" "secret" enroll "$T/a5" --token "$bad" --name node-5
pin=$(echo "$T3" | awk -F. '{s=$4; c=substr(s,1,1); c=(c=="0")?"1":"0"; print $1"."$2"."$3"."c substr(s,2)}')
expect_fail "agent refuses a controller whose CA does not match the pin" "token pins" \
	enroll "$T/a6" --token "$pin" --name node-6
[ ! -f "$T/a6/node.crt" ] && ok "nothing was sent to the unpinned controller" ||
	not_ok "nothing was sent to the unpinned controller"
expect_fail "garbage token" "malformed" enroll "$T/a7" --token "bh1.nope" --name node-7
expect_fail "bad node name" "node name" enroll "$T/a8" --token "$T3" --name "Node_8"
TM=$(token --ttl 10m --uses 3)
ok_count=0
for n in 10 11 12 13; do enroll "$T/m$n" --token "$TM" --name "node-$n" >/dev/null 2>&1 && ok_count=$((ok_count + 1)); done
[ $ok_count = 3 ] && ok "a 3-use token enrolls exactly 3 nodes" || not_ok "a 3-use token enrolls exactly 3 nodes" "$ok_count"
"$CLI" token list | grep -q "$(echo "$TM" | cut -d. -f2) .* 0 .*used-up" && ok "token list shows it used up" ||
	not_ok "token list shows it used up" "$("$CLI" token list 2>&1)"

# two enrollments racing for one name, each with its own key and token
R1=$(token --ttl 10m)
R2=$(token --ttl 10m)
enroll "$T/r1" --token "$R1" --name racer >"$T/r1.out" 2>&1 &
p1=$!
enroll "$T/r2" --token "$R2" --name racer >"$T/r2.out" 2>&1 &
p2=$!
wait $p1; s1=$?
wait $p2; s2=$?
if [ $((s1 + s2)) -eq 1 ] && grep -q "another key" "$T/r1.out" "$T/r2.out"; then
	ok "two enrollments racing for one name: exactly one wins"
else
	not_ok "two enrollments racing for one name: exactly one wins" "$s1 $s2 $(cat "$T/r1.out" "$T/r2.out" | tr '\n' ' ')"
fi

# ---- renewal across an expiry boundary -----------------------------------------------------------

TR=$(token --ttl 10m)
enroll "$T/rn" --token "$TR" --name renewer >/dev/null 2>&1
cp -r "$T/rn" "$T/rn-old"
out=$("$AGENT" renew --state-dir "$T/rn" 2>&1)
echo "$out" | grep -q "not due" && ok "renewal is not due before two thirds of the lifetime" ||
	not_ok "renewal is not due before two thirds of the lifetime" "$out"
start=$(date +%s)
until "$AGENT" renew --state-dir "$T/rn" 2>&1 | grep -q "renewed"; do
	[ $(($(date +%s) - start)) -gt $((LIFE + 5)) ] && break
	sleep 0.5
done
old_end=$(openssl x509 -in "$T/rn-old/node.crt" -noout -enddate | cut -d= -f2)
new_end=$(openssl x509 -in "$T/rn/node.crt" -noout -enddate | cut -d= -f2)
if [ "$(date -d "$new_end" +%s)" -gt "$(date -d "$old_end" +%s)" ] &&
	[ "$(date +%s)" -lt "$(date -d "$old_end" +%s)" ]; then
	ok "renewed after two thirds, before the old certificate expired (no gap)"
else
	not_ok "renewed after two thirds, before the old certificate expired" "old $old_end new $new_end now $(date)"
fi
# wait past the old certificate's end
while [ "$(date +%s)" -le "$(date -d "$old_end" +%s)" ]; do sleep 0.5; done
sleep 1
"$AGENT" check --state-dir "$T/rn" >/dev/null 2>&1 && ok "the renewed certificate works after the old one expired" ||
	not_ok "the renewed certificate works after the old one expired"
expect_fail "the expired certificate is refused" "expired\|not connected" \
	"$AGENT" check --state-dir "$T/rn-old"

# ---- revocation -----------------------------------------------------------------------------------

TV=$(token --ttl 10m)
enroll "$T/rv" --token "$TV" --name victim >/dev/null 2>&1
"$AGENT" check --state-dir "$T/rv" --repeat 600 --interval-ms 100 >"$T/watch.out" 2>&1 &
WPID=$!
for _ in $(seq 100); do grep -q "^ok" "$T/watch.out" && break; sleep 0.1; done
"$CLI" node list -o json | grep -q '"name":"victim","connected":true' &&
	ok "node list shows the live connection" || not_ok "node list shows the live connection" "$("$CLI" node list 2>&1)"
"$CLI" node revoke victim >/dev/null
for _ in $(seq 100); do kill -0 $WPID 2>/dev/null || break; sleep 0.1; done
if ! kill -0 $WPID 2>/dev/null; then
	wait $WPID; ws=$?
	[ $ws -ne 0 ] && ok "revocation cuts the live connection" || not_ok "revocation cuts the live connection" "exit $ws"
else
	kill $WPID
	not_ok "revocation cuts the live connection" "still connected"
fi
WPID=
expect_fail "a revoked node cannot reconnect" "revoked" "$AGENT" check --state-dir "$T/rv"
grep -q "certificate revoked" "$T/controller.log" && ok "the controller says why it refused" ||
	not_ok "the controller says why it refused"
"$CLI" node list -o json | grep -q '"name":"victim","connected":false.*"revoked":true' &&
	ok "node list shows it revoked and gone" || not_ok "node list shows it revoked and gone"
openssl crl -in "$T/ctl/crl.pem" -noout -text 2>/dev/null | grep -qi "serial number" &&
	ok "the CRL lists the revoked certificate" || not_ok "the CRL lists the revoked certificate"

# a node may call itself "admin"; revoking it must not revoke the operator certificate "admin"
TA=$(token --ttl 10m)
enroll "$T/adm" --token "$TA" --name admin >/dev/null 2>&1
"$CLI" node revoke admin >/dev/null 2>&1
out=$("$CLI" --controller "tls+tcp://127.0.0.1:$APORT" --cert "$T/ctl/admin.crt" \
	--key "$T/ctl/admin.key" --ca "$T/ctl/ca.crt" node list 2>&1) &&
	ok "remote operator (mutual TLS) survives revoking a node named like it" ||
	not_ok "remote operator (mutual TLS) survives revoking a node named like it" "$out"

# ---- agents report their endpoints ------------------------------------------------------------------

report() { "$AGENT" report --state-dir "$@"; }
# a fresh node (certificates in this test live 20 s): its token gives it env=edge
TR=$(token --ttl 10m --labels env=edge)
enroll "$T/ar" --token "$TR" --name node-1r >/dev/null 2>&1
out=$(report "$T/ar" --labels app=web node-1r=eth0,198.18.0.11,host web-7=veth-web7,198.18.1.77,fd00:b1::1:77 2>&1)
if grep -q "workload/web-7 created" <<<"$out" && grep -q "^revision" <<<"$out"; then
	ok "an agent reports its endpoints: they become workloads of its node"
else
	not_ok "an agent reports its endpoints: they become workloads of its node" "$out"
fi
out=$("$CLI" describe workload node-1r 2>&1)
grep -q "env=edge" <<<"$out" && ok "the node's host workload carries the join token's labels" ||
	not_ok "the node's host workload carries the join token's labels" "$out"
out=$("$CLI" get workloads 2>&1)
grep -q "^web-7 *node-1r .*app=web" <<<"$out" && ok "get workloads lists the reported endpoint" ||
	not_ok "get workloads lists the reported endpoint" "$out"
TX=$(token --ttl 10m)
enroll "$T/ax" --token "$TX" --name node-x >/dev/null 2>&1
expect_fail "another node cannot report a workload that is not its own" "belongs to node node-1r" \
	report "$T/ax" web-7=veth-x,198.18.9.9
expect_fail "a reported endpoint with a prefix for an address is refused" "not an address" \
	report "$T/ax" db-9=veth-db9,198.18.9.0/24
out=$(report "$T/ar" --complete node-1r=eth0,198.18.0.11,host 2>&1)
grep -q "workload/web-7 deleted" <<<"$out" && ! "$CLI" get workloads 2>&1 | grep -q "^web-7 " &&
	ok "a complete report removes the node's endpoints it does not list" ||
	not_ok "a complete report removes the node's endpoints it does not list" "$out"
"$CLI" revisions 2>&1 | grep -q "agent node-1r" && ok "revisions name the agent that reported" ||
	not_ok "revisions name the agent that reported" "$("$CLI" revisions 2>&1 | head -3)"

# ---- restart keeps everything ---------------------------------------------------------------------

TS=$(token --ttl 10m)
enroll "$T/sv" --token "$TS" --name survivor >/dev/null 2>&1
kill "$CPID" && wait "$CPID" 2>/dev/null
CPID=
rm -f "$T/ctl/ports"
start_controller
out=$("$AGENT" check --state-dir "$T/sv" 2>&1) && ok "after a restart the node still connects" ||
	not_ok "after a restart the node still connects" "$out $(tail -3 $T/controller.log)"
expect_fail "after a restart the revoked node is still refused" "not connected" \
	"$AGENT" check --state-dir "$T/rv"
tail -n 20 "$T/controller.log" | grep -q "certificate revoked" &&
	ok "...because its certificate is revoked" ||
	not_ok "...because its certificate is revoked" "$(tail -n 3 "$T/controller.log" | tr '\n' ' ')"
expect_fail "after a restart the used token is still used" "used up" enroll "$T/a9" --token "$TOK" --name node-9

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
