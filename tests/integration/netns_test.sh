#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Namespaced topology test with real traffic: the datapath as built, driven through the CLI.
#
#   netns_test.sh BULKHEAD_AGENT BH_PROBE
#
# Topology (every name unique per run, everything removed on exit, even on failure):
#
#   ns A (client)                         ns B (server, protected)
#   198.18.1.1  id 1001  ---- link 1 ---- 198.18.1.2  endpoint b,  id 1002, enforce
#   198.18.1.3  id 1005                   fd00:b1::2
#   198.18.1.4  (not in the ipcache: world)
#   fd00:b1::1  id 1001, fd00:b1::3 id 1005
#   198.18.2.1  id 1001  ---- link 2 ---- 198.18.2.2  endpoint b2, id 1003, observe
#
# Endpoint b denies by default in both directions, so every reply that comes back proves that
# conntrack let it through. Prints "ok - NAME" / "not ok - NAME" per case; exits 1 if any failed.
# No timing is asserted: allowed probes get generous timeouts (they return as soon as the answer
# arrives), denied ones a fixed wait.
set -u

CLI=${1:-}
PROBE=${2:-}
T_PASS=6000  # ms an allowed probe may take
T_BLOCK=2000 # ms a denied probe waits for an answer that must not come

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1${2:+ ($2)}"; failed=$((failed + 1)); }
# check NAME COMMAND...: ok when the command succeeds
check() {
	local name=$1
	shift
	if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$(echo "$out" | tail -n 3 | tr '\n' ' ')"; fi
}

# ---- prerequisites: a missing one fails the test, naming it -----------------------------------

missing=()
[ "$(id -u)" -eq 0 ] || missing+=("root (run as uid 0)")
[ -n "$CLI" ] && [ -x "$CLI" ] || missing+=("bulkhead-agent binary (argument 1: '$CLI')")
[ -n "$PROBE" ] && [ -x "$PROBE" ] || missing+=("bh_probe binary (argument 2: '$PROBE')")
for tool in ip tc ping awk mountpoint taskset; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf 2>/dev/null || missing+=("bpffs at /sys/fs/bpf (mount failed)")
fi
if [ ${#missing[@]} -gt 0 ]; then
	for m in "${missing[@]}"; do not_ok "prerequisite: $m"; done
	exit 1
fi

# ---- names and cleanup ------------------------------------------------------------------------

sfx=$(printf '%x%04x' $$ $((RANDOM % 65536)))
NS_A=bhit-$sfx-a
NS_B=bhit-$sfx-b
VA=ba$sfx # link 1, A side
VB=bb$sfx # link 1, B side (endpoint b)
VA2=bc$sfx # link 2, A side
VB2=bd$sfx # link 2, B side (endpoint b2)
NODE=bhit-$sfx
PINS=/sys/fs/bpf/bulkhead/$NODE
pin_root_existed=0
[ -d /sys/fs/bpf/bulkhead ] && pin_root_existed=1
TMP=$(mktemp -d "/tmp/bhit-$sfx.XXXXXX")
pids=()
watchdog=

cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	# detach removes the pins (and the pin root once empty); by hand only if it failed.
	if [ -e "$PINS" ]; then
		"$CLI" dataplane -n "$NODE" --netns "$NS_B" detach >/dev/null 2>&1
		if [ -e "$PINS" ]; then
			rm -rf "$PINS"
			[ $pin_root_existed -eq 1 ] || rmdir /sys/fs/bpf/bulkhead 2>/dev/null
		fi
	fi
	# Whatever still runs in our namespaces (probes of an interrupted batch) is ours alone.
	for p in $(ip netns pids "$NS_A" 2>/dev/null) $(ip netns pids "$NS_B" 2>/dev/null); do
		kill "$p" 2>/dev/null
	done
	ip netns del "$NS_A" 2>/dev/null
	ip netns del "$NS_B" 2>/dev/null
	rm -rf "$TMP"
	if [ -n "$watchdog" ]; then
		kill "$watchdog" 2>/dev/null
		wait "$watchdog" 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'echo "not ok - interrupted"; exit 1' INT TERM

# CTest kills a test that overruns without letting it clean up: stop ourselves first.
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep 120 &
	s=$!
	wait $s && kill -TERM $$ 2>/dev/null
) &
watchdog=$!

in_A() { ip netns exec "$NS_A" "$@"; }
in_B() { ip netns exec "$NS_B" "$@"; }
dp() { "$CLI" dataplane -n "$NODE" --netns "$NS_B" "$@"; }

# Polls COMMAND... every 0.1 s for up to SECONDS; succeeds as soon as it does.
poll() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}

# ---- batches of probes, run concurrently ------------------------------------------------------

# expect NAME pass|block COMMAND-STRING: queue a probe. pass: exit 0 (an answer came back);
# block: exit 1 (no answer; any other status is a broken set-up and fails the case).
b_name=()
b_want=()
b_cmd=()
expect() { b_name+=("$1"); b_want+=("$2"); b_cmd+=("$3"); }
run_batch() {
	local i rc bp=()
	for i in "${!b_cmd[@]}"; do
		eval "${b_cmd[$i]}" >"$TMP/probe.$i" 2>&1 &
		bp[i]=$!
	done
	for i in "${!b_cmd[@]}"; do
		wait "${bp[$i]}"
		rc=$?
		if { [ "${b_want[$i]}" = pass ] && [ $rc -eq 0 ]; } ||
			{ [ "${b_want[$i]}" = block ] && [ $rc -eq 1 ]; }; then
			ok "${b_name[$i]}"
		else
			not_ok "${b_name[$i]}" "wanted ${b_want[$i]}, exit $rc: $(tail -n 2 "$TMP/probe.$i" | tr '\n' ' ')"
		fi
	done
	b_name=()
	b_want=()
	b_cmd=()
}

# tcp_pass|tcp_block|udp_pass|udp_block|ping_pass|ping_block SIDE SRC DST [PORT] [OPTIONS]:
# the command string of a probe from namespace SIDE (A or B), source address SRC.
tcp_pass() { echo "in_$1 $PROBE tcp -t $T_PASS -s $2 $3 $4"; }
tcp_block() { echo "in_$1 $PROBE tcp -t $T_BLOCK -s $2 $3 $4"; }
udp_pass() { echo "in_$1 $PROBE udp -t $T_PASS -s $2 $3 $4 ${5:-}"; }
udp_block() { echo "in_$1 $PROBE udp -t $T_BLOCK -s $2 $3 $4 ${5:-}"; }
ping_pass() { echo "in_$1 ping -n -q -c 1 -w $((T_PASS / 1000)) -I $2 $3 ${4:-}"; }
ping_block() { echo "in_$1 ping -n -q -c 1 -w $((T_BLOCK / 1000)) -I $2 $3 ${4:-}"; }

# ---- flows ------------------------------------------------------------------------------------

FLOWS=$TMP/flows.json
drain_flows() { dp flows --json >>"$FLOWS"; }
reset_flows() { drain_flows && : >"$FLOWS"; }
# flow_packets PATTERN...: packets summed over the drained flows whose JSON holds every PATTERN
flow_packets() {
	awk -v pats="$*" 'BEGIN { n = split(pats, p, " ") }
		{ for (i = 1; i <= n; i++) if (index($0, p[i]) == 0) next
		  if (match($0, /"packets":[0-9]+/)) s += substr($0, RSTART + 10, RLENGTH - 10) }
		END { print s + 0 }' "$FLOWS"
}
# flows_reach N PATTERN...: drains until the matching flows count at least N packets (5 s max)
flows_reach() {
	local want=$1 end=$((SECONDS + 5))
	shift
	while :; do
		drain_flows || return 1
		[ "$(flow_packets "$@")" -ge "$want" ] && return 0
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}
# flow_field FIELD PATTERN...: smallest FIELD of the drained flows matching every PATTERN (or 0)
flow_field() {
	local field=$1
	shift
	awk -v f="\"$field\":" -v pats="$*" 'BEGIN { n = split(pats, p, " ") }
		{ for (i = 1; i <= n; i++) if (index($0, p[i]) == 0) next
		  s = substr($0, index($0, f) + length(f)); v = s + 0
		  if (!seen || v < min) min = v; seen = 1 }
		END { printf "%.0f\n", seen ? min : 0 }' "$FLOWS"
}
# check_flow NAME N PATTERN...: the matching flows count exactly N packets
check_flow() {
	local name=$1 want=$2 got
	shift 2
	flows_reach "$want" "$@"
	got=$(flow_packets "$@")
	if [ "$got" -eq "$want" ]; then
		ok "$name"
	else
		not_ok "$name" "$got packets, want $want; flows: $(tr '\n' ' ' <"$FLOWS" | head -c 600)"
	fi
}

# ---- topology ---------------------------------------------------------------------------------

setup() {
	ip netns add "$NS_A" && ip netns add "$NS_B" &&
		ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up &&
		ip -n "$NS_A" link add "$VA" type veth peer name "$VB" netns "$NS_B" &&
		ip -n "$NS_A" link add "$VA2" type veth peer name "$VB2" netns "$NS_B" &&
		ip -n "$NS_A" addr add 198.18.1.1/24 dev "$VA" &&
		ip -n "$NS_A" addr add 198.18.1.3/24 dev "$VA" &&
		ip -n "$NS_A" addr add 198.18.1.4/24 dev "$VA" &&
		ip -n "$NS_A" addr add fd00:b1::1/64 dev "$VA" nodad &&
		ip -n "$NS_A" addr add fd00:b1::3/64 dev "$VA" nodad &&
		ip -n "$NS_A" addr add 198.18.2.1/24 dev "$VA2" &&
		ip -n "$NS_B" addr add 198.18.1.2/24 dev "$VB" &&
		ip -n "$NS_B" addr add fd00:b1::2/64 dev "$VB" nodad &&
		ip -n "$NS_B" addr add 198.18.2.2/24 dev "$VB2" &&
		ip -n "$NS_A" link set "$VA" up && ip -n "$NS_A" link set "$VA2" up &&
		ip -n "$NS_B" link set "$VB" up && ip -n "$NS_B" link set "$VB2" up
}
if ! setup >"$TMP/setup.log" 2>&1; then
	not_ok "prerequisite: network namespaces and veth pairs" "$(tail -n 2 "$TMP/setup.log" | tr '\n' ' ')"
	exit 1
fi

# The first and last CPU this test may run on (for the two-CPU flow case below).
read -r cpu_first cpu_last < <(awk '/^Cpus_allowed_list/ {
	n = split($2, r, ","); split(r[1], a, "-"); m = split(r[n], b, "-"); print a[1], b[m] }' \
	/proc/self/status)
# Servers. B: the protected workload (udp/5002 pinned to the last CPU). A: targets for B's own
# (egress) connections. Started as plain commands (ip netns exec and taskset exec the probe), so
# that $! is the server's own pid.
ip netns exec "$NS_B" taskset -c "$cpu_last" "$PROBE" serve udp:5002 >"$TMP/serve-b2" 2>&1 &
pids+=($!)
ip netns exec "$NS_B" "$PROBE" serve tcp:7000 tcp:7999 tcp:8000 tcp:8050 tcp:8100 tcp:8101 \
	udp:4999 udp:5000 udp:5010 udp:5011 sink:6000 sink:6001 >"$TMP/serve-b" 2>&1 &
pids+=($!)
ip netns exec "$NS_A" "$PROBE" serve tcp:9000 tcp:9001 >"$TMP/serve-a" 2>&1 &
pids+=($!)
if ! poll 10 grep -q ready "$TMP/serve-b" || ! poll 10 grep -q ready "$TMP/serve-a" ||
	! poll 10 grep -q ready "$TMP/serve-b2"; then
	not_ok "servers listening" "$(cat "$TMP"/serve-* | tr '\n' ' ')"
	exit 1
fi

# Before any policy, every path works (so a later "blocked" is the policy, not the topology).
expect "topology: v4 link 1 without policy" pass "$(ping_pass A 198.18.1.1 198.18.1.2)"
expect "topology: v6 link 1 without policy" pass "$(ping_pass A fd00:b1::1 fd00:b1::2)"
expect "topology: v4 link 2 without policy" pass "$(ping_pass A 198.18.2.1 198.18.2.2)"
expect "topology: tcp/7999 without policy" pass "$(tcp_pass A 198.18.1.1 198.18.1.2 7999)"
expect "topology: udp/5011 v6 without policy" pass "$(udp_pass A fd00:b1::1 fd00:b1::2 5011)"
run_batch
if [ $failed -gt 0 ]; then
	echo "# the topology itself does not carry traffic: stopping"
	exit 1
fi

# ---- rule set ---------------------------------------------------------------------------------

cat >"$TMP/rev1" <<EOF
revision 1
endpoint b if=$VB id=1002 ingress=deny:100 egress=deny:101
endpoint b2 if=$VB2 id=1003 mode=observe ingress=deny:110 egress=deny:111
ipcache 198.18.1.1/32 1001
ipcache 198.18.2.1/32 1001
ipcache fd00:b1::1/128 1001
ipcache 198.18.1.3/32 1005
ipcache fd00:b1::3/128 1005
rule 1002 ingress 1001 icmp/8 allow 20
rule 1002 ingress 1001 icmp6/128 allow 21
rule 1002 ingress 1001 tcp/8000-8100 allow 22
rule 1002 ingress any tcp/8050 deny 27
rule 1002 ingress 1001 udp/5000-5010 allow 23
rule 1002 ingress 1001 udp/6000 allow 24
rule 1002 ingress 1001 tcp/7000 allow 25
rule 1002 egress 1001 tcp/9000 allow 26
rule 1003 ingress 1001 udp/5000 allow 30
EOF
check "apply revision 1 (attaches to $VB and $VB2)" dp apply "$TMP/rev1"
check "tc filters attached on ingress and egress" \
	bash -c "[ -n \"\$(ip netns exec $NS_B tc filter show dev $VB ingress)\" ] &&
		 [ -n \"\$(ip netns exec $NS_B tc filter show dev $VB egress)\" ]"

# ---- allowed and denied, both families, both directions ---------------------------------------

for fam in 4 6; do
	if [ $fam = 4 ]; then
		a=198.18.1.1 o=198.18.1.3 b=198.18.1.2
	else
		a=fd00:b1::1 o=fd00:b1::3 b=fd00:b1::2
	fi
	expect "v$fam: icmp echo allowed (reply passes egress default-deny via conntrack)" pass \
		"$(ping_pass A $a $b)"
	expect "v$fam: tcp/8000 allowed (first port of 8000-8100)" pass "$(tcp_pass A $a $b 8000)"
	expect "v$fam: tcp/8100 allowed (last port of 8000-8100)" pass "$(tcp_pass A $a $b 8100)"
	expect "v$fam: tcp/7999 denied (one below the range)" block "$(tcp_block A $a $b 7999)"
	expect "v$fam: tcp/8101 denied (one above the range)" block "$(tcp_block A $a $b 8101)"
	expect "v$fam: tcp/8050 denied (explicit deny wins inside an allowed range)" block \
		"$(tcp_block A $a $b 8050)"
	expect "v$fam: udp/5000 allowed (first port of 5000-5010, echo back via conntrack)" pass \
		"$(udp_pass A $a $b 5000)"
	expect "v$fam: udp/5010 allowed (last port of 5000-5010)" pass "$(udp_pass A $a $b 5010)"
	expect "v$fam: udp/4999 denied (one below the range)" block "$(udp_block A $a $b 4999)"
	expect "v$fam: udp/5011 denied (one above the range)" block "$(udp_block A $a $b 5011)"
	expect "v$fam: icmp echo from another identity (1005) denied" block "$(ping_block A $o $b)"
	expect "v$fam: tcp/8000 from another identity (1005) denied" block "$(tcp_block A $o $b 8000)"
	expect "v$fam: udp/5000 from another identity (1005) denied" block "$(udp_block A $o $b 5000)"
	expect "v$fam: egress tcp/9000 allowed (reply passes ingress default-deny via conntrack)" \
		pass "$(tcp_pass B $b $a 9000)"
	expect "v$fam: egress tcp/9001 denied (egress default deny)" block "$(tcp_block B $b $a 9001)"
	expect "v$fam: egress icmp echo denied (egress default deny)" block "$(ping_block B $b $a)"
done
expect "v4: tcp/8000 from an address outside the ipcache (world) denied" block \
	"$(tcp_block A 198.18.1.4 198.18.1.2 8000)"

# Fragments: MTU 1500, so these leave A (and their echoes leave B) in fragments. The first
# fragment is judged by policy; the later ones follow it.
expect "v4 fragments: ping -s 3000 allowed (icmp echo rule)" pass \
	"$(ping_pass A 198.18.1.1 198.18.1.2 "-s 3000 -M dont")"
expect "v4 fragments: udp 3000 bytes to allowed udp/5000 echoed whole" pass \
	"$(udp_pass A 198.18.1.1 198.18.1.2 5000 "-z 3000")"
expect "v4 fragments: udp 3000 bytes to denied udp/5011 dropped" block \
	"$(udp_block A 198.18.1.1 198.18.1.2 5011 "-z 3000")"
expect "v4 fragments: ping -s 3000 from another identity denied" block \
	"$(ping_block A 198.18.1.3 198.18.1.2 "-s 3000 -M dont")"
expect "v6 fragments: ping -s 3000 allowed (icmp6 echo rule)" pass \
	"$(ping_pass A fd00:b1::1 fd00:b1::2 "-s 3000")"
expect "v6 fragments: udp 3000 bytes to allowed udp/5000 echoed whole" pass \
	"$(udp_pass A fd00:b1::1 fd00:b1::2 5000 "-z 3000")"
expect "v6 fragments: udp 3000 bytes to denied udp/5011 dropped" block \
	"$(udp_block A fd00:b1::1 fd00:b1::2 5011 "-z 3000")"
run_batch

# The probes above that were denied by endpoint b's default raised deny events.
dp events --timeout 2 --json >"$TMP/events" 2>&1
check "events: the denied SYN to tcp/8101 reported as deny by default rule 100" \
	grep -q '"dport":8101,"proto":6,"direction":"ingress","verdict":"deny","rule":100' \
	"$TMP/events"

# ---- revocation cuts established connections --------------------------------------------------

GO=$TMP/go
in_A "$PROBE" hold -t 3000 -s 198.18.1.1 198.18.1.2 7000 "$GO" >"$TMP/hold-7000-v4" 2>&1 &
h1=$!
in_A "$PROBE" hold -t 3000 -s fd00:b1::1 fd00:b1::2 7000 "$GO" >"$TMP/hold-7000-v6" 2>&1 &
h2=$!
in_A "$PROBE" hold -t "$T_PASS" -s 198.18.1.1 198.18.1.2 8000 "$GO" >"$TMP/hold-8000" 2>&1 &
h3=$!
if poll 10 grep -q established "$TMP/hold-7000-v4" && poll 10 grep -q established "$TMP/hold-7000-v6" &&
	poll 10 grep -q established "$TMP/hold-8000"; then
	ok "revoke: connections to tcp/7000 (v4, v6) and tcp/8000 established under revision 1"
else
	not_ok "revoke: connections to tcp/7000 (v4, v6) and tcp/8000 established under revision 1" \
		"$(cat "$TMP"/hold-* | tr '\n' ' ')"
fi
cat >"$TMP/delta2" <<EOF
delta 1 2
-rule 1002 ingress 1001 tcp/7000 allow 25
EOF
check "revoke: apply delta 1 -> 2 removing the tcp/7000 allow" dp apply "$TMP/delta2"
touch "$GO"
wait $h1
rc1=$?
wait $h2
rc2=$?
wait $h3
rc3=$?
if [ $rc1 -eq 1 ] && grep -q '^cut' "$TMP/hold-7000-v4"; then
	ok "revoke: v4 established tcp/7000 cut: data sent after the delta does not arrive"
else
	not_ok "revoke: v4 established tcp/7000 cut: data sent after the delta does not arrive" \
		"exit $rc1: $(tr '\n' ' ' <"$TMP/hold-7000-v4")"
fi
if [ $rc2 -eq 1 ] && grep -q '^cut' "$TMP/hold-7000-v6"; then
	ok "revoke: v6 established tcp/7000 cut: data sent after the delta does not arrive"
else
	not_ok "revoke: v6 established tcp/7000 cut: data sent after the delta does not arrive" \
		"exit $rc2: $(tr '\n' ' ' <"$TMP/hold-7000-v6")"
fi
if [ $rc3 -eq 0 ] && grep -q '^delivered' "$TMP/hold-8000"; then
	ok "revoke: established tcp/8000 (still allowed) keeps working across the change"
else
	not_ok "revoke: established tcp/8000 (still allowed) keeps working across the change" \
		"exit $rc3: $(tr '\n' ' ' <"$TMP/hold-8000")"
fi
expect "revoke: a new tcp/7000 connection is denied under revision 2" block \
	"$(tcp_block A 198.18.1.1 198.18.1.2 7000)"
run_batch

# ---- observe mode -----------------------------------------------------------------------------

check "observe: drain flows before the probes" reset_flows
expect "observe: tcp/7999 to the observing endpoint passes (no rule allows it)" pass \
	"$(tcp_pass A 198.18.2.1 198.18.2.2 7999)"
expect "observe: udp/5011 to the observing endpoint passes, echo comes back" pass \
	"$(udp_pass A 198.18.2.1 198.18.2.2 5011)"
expect "observe: icmp echo to the observing endpoint passes" pass \
	"$(ping_pass A 198.18.2.1 198.18.2.2)"
run_batch
check "observe: 5 datagrams to udp/6001 sent" in_A "$PROBE" send -n 5 -s 198.18.2.1 198.18.2.2 6001
check_flow "observe: flows report udp/6001 as would-deny, default rule 110, packets == 5" 5 \
	'"src":1001,"dst":1003,"proto":17,"port":6001,"direction":"ingress","verdict":"would-deny","rule":110,'
# Replies are counted on the flow they answer: the echo exchanges count both ways.
check "observe: flows report the udp/5011 echo as would-deny, rule 110" flows_reach 1 \
	'"src":1001,"dst":1003,"proto":17,"port":5011,"direction":"ingress","verdict":"would-deny","rule":110,'
check "observe: flows report the tcp/7999 connection as would-deny, rule 110" flows_reach 1 \
	'"src":1001,"dst":1003,"proto":6,"port":7999,"direction":"ingress","verdict":"would-deny","rule":110,'

# ---- flows: exact counts for a controlled probe -----------------------------------------------

check "flows: drain before the probe" reset_flows
check "flows: 7 datagrams to allowed udp/6000 (v4) sent" \
	in_A "$PROBE" send -n 7 -s 198.18.1.1 198.18.1.2 6000
check_flow "flows: udp/6000 v4 counted as allow by rule 24, packets == 7" 7 \
	'"src":1001,"dst":1002,"proto":17,"port":6000,"direction":"ingress","verdict":"allow","rule":24,'
check "flows: 4 datagrams to not-allowed udp/6001 sent" \
	in_A "$PROBE" send -n 4 -s 198.18.1.1 198.18.1.2 6001
check_flow "flows: udp/6001 counted as deny by default rule 100, packets == 4" 4 \
	'"src":1001,"dst":1002,"proto":17,"port":6001,"direction":"ingress","verdict":"deny","rule":100,'
check "flows: drain before the v6 probe" reset_flows
check "flows: 3 datagrams to allowed udp/6000 (v6) sent" \
	in_A "$PROBE" send -n 3 -s fd00:b1::1 fd00:b1::2 6000
check_flow "flows: udp/6000 v6 counted as allow by rule 24, packets == 3" 3 \
	'"src":1001,"dst":1002,"proto":17,"port":6000,"direction":"ingress","verdict":"allow","rule":24,'
# Fragments, counted: 3000 bytes of UDP leave A as 3 IPv4 fragments. Two datagrams on one socket
# (one flow): every fragment of both must follow its first fragment, none may be dropped as a
# fragment whose first was never seen (rule 3).
check "flows: drain before the fragment probe" reset_flows
check "flows: 2 datagrams of 3000 bytes to allowed udp/6000 (v4) sent from one socket" \
	in_A "$PROBE" send -n 2 -z 3000 -s 198.18.1.1 198.18.1.2 6000
check_flow "flows: all 6 fragments counted as allow by rule 24" 6 \
	'"src":1001,"dst":1002,"proto":17,"port":6000,"direction":"ingress","verdict":"allow","rule":24,'
n=$(flow_packets '"direction":"ingress","verdict":"deny","rule":3,')
if [ "$n" -eq 0 ]; then
	ok "flows: no fragment of the second datagram dropped as unknown (rule 3)"
else
	not_ok "flows: no fragment of the second datagram dropped as unknown (rule 3)" \
		"$n dropped; flows: $(tr '\n' ' ' <"$FLOWS" | head -c 600)"
fi

# A flow whose request and reply are counted on different CPUs (client pinned to the first,
# the echo server to the last): first_seen must still be the flow's first packet, not 0.
if [ "$cpu_first" != "$cpu_last" ]; then
	check "flows: drain before the two-CPU probe" reset_flows
	t0=$(date +%s%N)
	check "flows: udp/5002 echo with request and reply on different CPUs" \
		in_A taskset -c "$cpu_first" "$PROBE" udp -t $T_PASS -s 198.18.1.1 198.18.1.2 5002
	pat='"src":1001,"dst":1002,"proto":17,"port":5002,"direction":"ingress","verdict":"allow","rule":23,'
	flows_reach 2 "$pat"
	first=$(flow_field first_seen "$pat")
	last=$(flow_field last_seen "$pat")
	if [ "$first" -ge $((t0 - 1000000000)) ] && [ "$last" -ge "$first" ]; then
		ok "flows: first_seen of a flow counted on two CPUs is not before the probe"
	else
		not_ok "flows: first_seen of a flow counted on two CPUs is not before the probe" \
			"probe started at $t0 ns, first_seen $first, last_seen $last"
	fi
else
	ok "flows: first_seen of a flow counted on two CPUs (one CPU here: not provoked)"
fi
check "flows: a drained counter is not reported again" \
	bash -c "[ -z \"\$('$CLI' dataplane -n '$NODE' --netns '$NS_B' flows --json | grep '\"port\":6000,')\" ]"

# ---- restart: no process holds the datapath, it keeps enforcing -------------------------------

# Every CLI call above was its own process and has exited; nothing of ours runs but the servers.
expect "restart: with no agent process, tcp/8000 still allowed" pass \
	"$(tcp_pass A 198.18.1.1 198.18.1.2 8000)"
expect "restart: with no agent process, tcp/8101 still denied" block \
	"$(tcp_block A 198.18.1.1 198.18.1.2 8101)"
run_batch
check "restart: a new process's show --json reports revision 2" \
	bash -c "'$CLI' dataplane -n '$NODE' --netns '$NS_B' show --json | grep -q '\"revision\":2,'"

# ---- detach removes everything ----------------------------------------------------------------

check "detach: succeeds" dp detach
check "detach: no tc filter left on $VB and $VB2 (ingress and egress)" bash -c "
	for d in $VB $VB2; do for h in ingress egress; do
		[ -z \"\$(ip netns exec $NS_B tc filter show dev \$d \$h 2>/dev/null)\" ] || exit 1
	done; done"
check "detach: pin directory $PINS is gone" test ! -e "$PINS"
expect "detach: tcp/8101 is no longer filtered" pass "$(tcp_pass A 198.18.1.1 198.18.1.2 8101)"
run_batch

echo "# $passed passed, $failed failed"
[ $failed -eq 0 ]
