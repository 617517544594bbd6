#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The controller's policy state end to end with real processes: bulkhead-controller serve on a
# real SQLite store, the bulkhead CLI over the local admin socket. apply / get / describe /
# explain / diff / delete / revisions / rollback, bad files changing nothing, identities stable
# across a restart, and crash consistency: kill -9 during a stream of applies loses no
# acknowledged revision and leaves none half-applied.
#
#   policy_test.sh BULKHEAD_CONTROLLER BULKHEAD EXAMPLES_DIR
#
# Everything lives in one temp dir, removed on exit; the controller (started here) is stopped by
# its pid. Prints "ok - NAME" / "not ok - NAME"; exits 1 if any failed.
set -u

CTL=${1:-}
CLI=${2:-}
EX=${3:-}
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1${2:+ ($2)}"; failed=$((failed + 1)); }
check() { # check NAME COMMAND...: passes when the command succeeds
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

missing=()
for b in "$CTL" "$CLI"; do [ -n "$b" ] && [ -x "$b" ] || missing+=("binary '$b'"); done
[ -f "$EX/three-tier.yaml" ] || missing+=("$EX/three-tier.yaml")
command -v jq >/dev/null || missing+=("jq")
if [ ${#missing[@]} -gt 0 ]; then
	for m in "${missing[@]}"; do not_ok "prerequisite: $m"; done
	exit 1
fi

T=$(mktemp -d /tmp/bh-policy-test.XXXXXX)
CPID=
WPID=
cleanup() {
	[ -n "$WPID" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
	[ -n "$CPID" ] && kill "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
export BULKHEAD_ADMIN_SOCKET=ipc://$T/ctl/admin.sock

start_controller() {
	rm -f "$T/ctl/ports"
	"$CTL" serve --state-dir "$T/ctl" --listen "tls+tcp://127.0.0.1:0" --enroll-listen none \
		--admin "ipc://$T/ctl/admin.sock" -v info >>"$T/controller.log" 2>&1 &
	CPID=$!
	for _ in $(seq 100); do
		[ -s "$T/ctl/ports" ] && [ -S "$T/ctl/admin.sock" ] && return 0
		kill -0 "$CPID" 2>/dev/null || break
		sleep 0.1
	done
	echo "controller did not start:" >&2
	tail -5 "$T/controller.log" >&2
	return 1
}
stop_controller() { # stop_controller [SIGNAL]
	kill -"${1:-TERM}" "$CPID" 2>/dev/null
	wait "$CPID" 2>/dev/null
	CPID=
}
bh() { "$CLI" "$@"; }
verdict() { # verdict FROM TO PORT: the first line of explain
	bh explain --from "$1" --to "$2" --port "$3" 2>&1 | head -1
}
revision() { bh revisions -o json | jq -r '(.[] | select(.current) | .revision) // 0' 2>/dev/null; }

"$CTL" init --state-dir "$T/ctl" >"$T/init.log" 2>&1 || { not_ok "init" "$(tail -3 "$T/init.log")"; exit 1; }
start_controller || { not_ok "controller starts"; exit 1; }

# ---- apply, idempotence ----------------------------------------------------------------------
out=$(bh apply -f "$EX/three-tier.yaml" 2>&1)
if [ $? -eq 0 ] && grep -q "policy/default-deny created" <<<"$out" &&
	grep -q "workload/db-1 created" <<<"$out"; then
	ok "apply the three-tier example"
else
	not_ok "apply the three-tier example" "$out"
fi
out=$(bh apply -f "$EX/three-tier.yaml" 2>&1)
if grep -q "policy/default-deny unchanged" <<<"$out" && ! grep -q "created\|configured" <<<"$out"; then
	ok "applying the same file again changes nothing"
else
	not_ok "applying the same file again changes nothing" "$out"
fi

# ---- reading ---------------------------------------------------------------------------------
n=$(bh get workloads -o json | jq length)
check "get workloads lists the three" test "$n" = 3
n=$(bh get policies -o json | jq length)
check "get policies lists the seven" test "$n" = 7
out=$(bh get workloads -l app=db -o json | jq -r '.[].name')
check "get -l selects by label" test "$out" = db-1
ids=$(bh get identities -o json)
n=$(jq '[.[] | select(.workloads > 0)] | length' <<<"$ids")
check "three label sets, three identities in use" test "$n" = 3
out=$(bh describe workload api-1 2>&1)
if grep -q "api-from-web" <<<"$out" && grep -q "api-to-db" <<<"$out" &&
	grep -q "default-deny" <<<"$out" && grep -qi "tcp/8080" <<<"$out"; then
	ok "describe shows the policies and the compiled rules"
else
	not_ok "describe shows the policies and the compiled rules" "$out"
fi

# ---- explain: the verdicts come from the compiled rule sets --------------------------------------
check "explain web -> api tcp/8080: allow" test "$(verdict web-1 api-1 tcp/8080)" = ALLOW
check "explain web -> api tcp/8081: deny" test "$(verdict web-1 api-1 tcp/8081)" = DENY
check "explain web -> db tcp/5432: deny (web's egress)" test "$(verdict web-1 db-1 tcp/5432)" = DENY
check "explain api -> db tcp/5432: allow" test "$(verdict api-1 db-1 tcp/5432)" = ALLOW
check "explain client -> web tcp/443: allow" test "$(verdict 198.18.100.5 web-1 tcp/443)" = ALLOW
check "explain quarantined client -> web: deny (except)" \
	test "$(verdict 198.18.100.70 web-1 tcp/443)" = DENY
check "explain db -> web: deny (explicit deny)" test "$(verdict db-1 web-1 tcp/443)" = DENY
out=$(bh explain --from api-1 --to db-1 --port tcp/5432 2>&1)
check "explain names the policy that decides" grep -q "db-from-api" <<<"$out"

# ---- bad input changes nothing ---------------------------------------------------------------
rev0=$(revision)
printf 'kind: Policy\nname: broken\nselector: {}\ningress:\n  - ports:\n      - {protocol: tcp, port: 70000}\n' >"$T/bad.yaml"
out=$(bh apply -f "$T/bad.yaml" 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "bad.yaml:6:" <<<"$out" && grep -q "port" <<<"$out"; then
	ok "a port out of range: refused with file:line and the field"
else
	not_ok "a port out of range: refused with file:line and the field" "rc=$rc $out"
fi
cp "$EX/three-tier.yaml" "$T/two.yaml"
printf -- '---\nkind: Policy\nname: fine\nselector: {}\n---\nkind: Nope\nname: x\n' >>"$T/two.yaml"
out=$(bh apply -f "$T/two.yaml" 2>&1)
[ $? -ne 0 ] && grep -qi "kind" <<<"$out" && [ "$(bh get policies -o json | jq length)" = 7 ]
check "a file with one bad document changes nothing" test $? = 0
printf 'kind: Workload\nname: thief\nnode: node-a\ninterface: veth-x\naddresses: [198.18.2.10]\n' >"$T/thief.yaml"
out=$(bh apply -f "$T/thief.yaml" 2>&1)
if [ $? -ne 0 ] && grep -q "db-1" <<<"$out"; then
	ok "a workload taking another's address is refused"
else
	not_ok "a workload taking another's address is refused" "$out"
fi
check "the revision did not move" test "$(revision)" = "$rev0"

# ---- diff, then the same change applied --------------------------------------------------------
bh ruleset node-b | grep -v '^revision' | sort >"$T/nodeb.before"
rev_before_edit=$(revision)
sed 's/port: 5432}/port: 5433}/' "$EX/three-tier.yaml" >"$T/edit.yaml"
out=$(bh diff -f "$T/edit.yaml" 2>&1)
rc=$?
if [ $rc -eq 1 ] && grep -q "node node-b\|node-b" <<<"$out" && grep -q "^ *+.*5433" <<<"$out" &&
	grep -q "^ *-.*5432" <<<"$out"; then
	ok "diff shows the rules added and removed per node, exit 1"
else
	not_ok "diff shows the rules added and removed per node, exit 1" "rc=$rc $out"
fi
check "diff changed nothing" test "$(verdict api-1 db-1 tcp/5432)" = ALLOW
bh apply -f "$T/edit.yaml" >/dev/null 2>&1
check "apply of the edit: 5432 now denied" test "$(verdict api-1 db-1 tcp/5432)" = DENY
check "apply of the edit: 5433 now allowed" test "$(verdict api-1 db-1 tcp/5433)" = ALLOW
out=$(bh diff -f "$T/edit.yaml" 2>&1)
check "diff of what is applied: no difference, exit 0" test $? = 0
rev_edit=$(revision)
# the delta a node holding the old revision is sent turns its rule set into the current one
bh ruleset node-b --since "$rev_before_edit" >"$T/delta" 2>&1
bh ruleset node-b | grep -v '^revision' | sort >"$T/nodeb.after"
sed -n 's/^-//p' "$T/delta" | sort >"$T/del"
sed -n 's/^+//p' "$T/delta" | sort >"$T/add"
comm -23 "$T/nodeb.before" "$T/del" | sort -m - "$T/add" | sort >"$T/nodeb.patched"
if head -1 "$T/delta" | grep -q "^delta $rev_before_edit $rev_edit\$" && [ -s "$T/add" ] &&
	[ -z "$(comm -13 "$T/nodeb.before" "$T/del")" ] && cmp -s "$T/nodeb.patched" "$T/nodeb.after"; then
	ok "ruleset --since: the delta from an earlier revision turns it into the current one"
else
	not_ok "ruleset --since: the delta from an earlier revision turns it into the current one" \
		"$(head -5 "$T/delta" | tr '\n' ' ')"
fi

# ---- delete, revisions, rollback ---------------------------------------------------------------
bh delete policy db-never-web >/dev/null 2>&1
check "delete: the explicit deny is gone" test "$(bh get policies -o json | jq length)" = 6
out=$(bh delete policy no-such-policy 2>&1)
check "delete of what does not exist fails and says so" grep -q "no-such-policy" <<<"$out"
n=$(bh revisions -o json | jq length)
check "revisions lists every change" test "$n" -ge 3
bh rollback "$rev_edit" >/dev/null 2>&1
check "rollback brings the deleted policy back" test "$(bh get policies -o json | jq length)" = 7
bh rollback 1 >/dev/null 2>&1
check "rollback to revision 1: 5432 allowed again" test "$(verdict api-1 db-1 tcp/5432)" = ALLOW
check "rollback made a new revision" test "$(revision)" -gt "$rev_edit"

# ---- restart keeps everything, identities stable -------------------------------------------------
before=$(bh get identities -o json | jq -c '[.[] | [.id, .labels]]')
ruleset_before=$(bh ruleset node-a)
wl_before=$(bh get workloads -o json | jq -c 'map(.name)')
rev_before=$(revision)
stop_controller TERM
start_controller || not_ok "controller restarts"
after=$(bh get identities -o json | jq -c '[.[] | [.id, .labels]]')
check "identities (label sets and CIDRs) are the same numbers after a restart" test "$before" = "$after"
check "a revision's rule set is the same after a restart" test "$ruleset_before" = "$(bh ruleset node-a)"
check "objects and revision survive a restart" \
	test "$(bh get workloads -o json | jq -c 'map(.name)')" = "$wl_before" -a "$(revision)" = "$rev_before"

# ---- kill -9 during a stream of applies ----------------------------------------------------------
# Each apply relabels web-1 with a counter; every acknowledged one is logged. After kill -9 and a
# restart, the newest acknowledged value (or a later one, in flight when killed) is there, every
# acknowledged revision is listed, and every workload is whole.
: >"$T/acked"
(
	for i in $(seq 1 400); do
		cat >"$T/w.yaml" <<EOF
kind: Workload
name: web-1
node: node-a
interface: veth-web1
addresses: [198.18.1.10, "fd00:b1::1:10"]
labels: {app: web, tier: front, env: prod, build: b$i}
EOF
		if out=$("$CLI" --timeout 2 apply -f "$T/w.yaml" 2>/dev/null); then
			r=$(sed -n 's/^revision \([0-9]*\).*/\1/p' <<<"$out")
			echo "$i $r" >>"$T/acked"
		else
			break # the controller is gone
		fi
	done
) &
WPID=$!
for _ in $(seq 100); do [ "$(wc -l <"$T/acked")" -ge 20 ] && break; sleep 0.1; done
stop_controller KILL
wait "$WPID" 2>/dev/null
WPID=
last=$(tail -1 "$T/acked")
last_i=${last%% *}
last_rev=${last##* }
start_controller || not_ok "controller restarts after kill -9"
got=$(bh get workloads web-1 -o json | jq -r '.[0].labels.build // empty' | sed -n 's/^b//p')
if [ -n "$last_i" ] && [ -n "$got" ] && [ "$got" -ge "$last_i" ]; then
	ok "kill -9: the last acknowledged apply (b$last_i) survived (found b$got)"
else
	not_ok "kill -9: the last acknowledged apply survived" "acked b$last_i, found '$got'"
fi
if [ -n "$last_rev" ] && [ "$(revision)" -ge "$last_rev" ]; then
	ok "kill -9: no acknowledged revision lost ($last_rev acknowledged, $(revision) stored)"
else
	not_ok "kill -9: no acknowledged revision lost" "acked $last_rev, stored $(revision)"
fi
check "kill -9: every workload is whole" test "$(bh get workloads -o json | jq '[.[] | select(.node and .labels and (.addresses | length) == 2)] | length')" = 3
check "kill -9: verdicts unchanged" test "$(verdict web-1 api-1 tcp/8080)" = ALLOW

stop_controller TERM
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
