# SPDX-License-Identifier: Apache-2.0
# A demo fleet in network namespaces, shared by deploy/quickstart.sh and the end-to-end tests:
# a controller on loopback, and three "nodes" (namespaces on one bridge) each running an agent
# that protects the node's own interface (attach=host), plus a client namespace outside the
# inventory. Source this file after setting:
#
#   PREFIX   namespace and node name prefix (unique per run in tests)
#   STATE    directory for the controller, the agents, logs and pid files (created)
#   BUILD    the build directory holding the binaries
#   FLEET_FLOW_INTERVAL  optional: the agents' flow-export interval (default 10s)
#
# Addresses (198.18.0.0/15 and fd00:b1::/64 only):
#   ${PREFIX}-hub     bridge br0
#   ${PREFIX}-client  198.18.10.10  fd00:b1::10   no agent: outside the inventory
#   ${PREFIX}-web     198.18.10.11  fd00:b1::11   node ${PREFIX}-web, workload web-1 (app=web)
#   ${PREFIX}-api     198.18.10.12  fd00:b1::12   node ${PREFIX}-api, workload api-1 (app=api)
#   ${PREFIX}-db      198.18.10.13  fd00:b1::13   node ${PREFIX}-db,  workload db-1  (app=db)

FLEET_TIERS="web api db"
declare -A FLEET_ADDR4=([client]=198.18.10.10 [web]=198.18.10.11 [api]=198.18.10.12 [db]=198.18.10.13)
declare -A FLEET_ADDR6=([client]=fd00:b1::10 [web]=fd00:b1::11 [api]=fd00:b1::12 [db]=fd00:b1::13)
declare -A FLEET_PORT=([client]=4444 [web]=80 [api]=8080 [db]=5432)
FLEET_CTL=$BUILD/controller/bulkhead-controller
FLEET_CLI=$BUILD/controller/cli/bulkhead
FLEET_AGENT=$BUILD/agent/bulkhead-agent

fleet_ns() { echo "$PREFIX-$1"; }
fleet_node() { echo "$PREFIX-$1"; }
fleet_cli() { BULKHEAD_ADMIN_SOCKET=ipc://$STATE/controller/admin.sock "$FLEET_CLI" "$@"; }

# The namespaces: a bridge in the hub, every other namespace on it by a veth (eth0 inside).
fleet_topology() {
	local t n hub
	hub=$(fleet_ns hub)
	ip netns add "$hub" || return 1
	ip -n "$hub" link set lo up
	ip -n "$hub" link add br0 type bridge || return 1
	ip -n "$hub" link set br0 up
	for t in client $FLEET_TIERS; do
		n=$(fleet_ns "$t")
		ip netns add "$n" || return 1
		ip -n "$n" link set lo up
		ip -n "$hub" link add "v-$t" type veth peer name eth0 netns "$n" || return 1
		ip -n "$hub" link set "v-$t" master br0 up
		ip -n "$n" addr add "${FLEET_ADDR4[$t]}/24" dev eth0
		ip -n "$n" addr add "${FLEET_ADDR6[$t]}/64" dev eth0 nodad
		ip -n "$n" link set eth0 up
	done
}

# The controller on loopback: ports chosen by the kernel, written to STATE/controller/ports.
fleet_controller_start() {
	local d=$STATE/controller
	if [ ! -f "$d/ca.crt" ]; then
		"$FLEET_CTL" init --state-dir "$d" --address 127.0.0.1 >"$STATE/controller-init.log" 2>&1 ||
			return 1
	fi
	rm -f "$d/ports"
	setsid "$FLEET_CTL" serve --state-dir "$d" --listen "tls+tcp://127.0.0.1:${FLEET_APORT:-0}" \
		--enroll-listen "tls+tcp://127.0.0.1:${FLEET_EPORT:-0}" --admin "ipc://$d/admin.sock" \
		--metrics "127.0.0.1:${FLEET_MPORT:-0}" \
		-v info </dev/null >>"$STATE/controller.log" 2>&1 &
	echo $! >"$STATE/controller.pid"
	for _ in $(seq 100); do
		[ -s "$d/ports" ] && [ -S "$d/admin.sock" ] && break
		kill -0 "$(cat "$STATE/controller.pid")" 2>/dev/null || return 1
		sleep 0.1
	done
	[ -s "$d/ports" ] || return 1
	# the same ports after a restart: agents keep their address
	FLEET_APORT=$(awk '/^agent/ {print $2}' "$d/ports")
	FLEET_EPORT=$(awk '/^enroll/ {print $2}' "$d/ports")
	FLEET_MPORT=$(awk '/^metrics/ {print $2}' "$d/ports")
}

fleet_controller_stop() { # fleet_controller_stop [SIGNAL]
	local pid
	pid=$(cat "$STATE/controller.pid" 2>/dev/null) || return 0
	kill -"${1:-TERM}" "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	rm -f "$STATE/controller.pid"
}

# Enrolls an agent per node with one join token, and writes its configuration.
fleet_enroll() {
	local t tok
	tok=$(fleet_cli token create --ttl 10m --uses 3 2>/dev/null) || return 1
	for t in $FLEET_TIERS; do
		"$FLEET_AGENT" enroll --controller "127.0.0.1:$FLEET_EPORT" --token "$tok" \
			--name "$(fleet_node "$t")" --state-dir "$STATE/agent-$t" \
			>>"$STATE/enroll.log" 2>&1 || return 1
		cat >"$STATE/agent-$t.yaml" <<EOF
# bulkhead-agent run --config $STATE/agent-$t.yaml
state-dir: $STATE/agent-$t
netns: $(fleet_ns "$t")
first-start: observe
status-socket: $STATE/agent-$t.sock
flow-export: {interval: ${FLEET_FLOW_INTERVAL:-10s}}
endpoints:
  - name: $t-1
    interface: eth0
    attach: host
    addresses: [${FLEET_ADDR4[$t]}, "${FLEET_ADDR6[$t]}"]
    labels: {app: $t}
EOF
	done
}

fleet_agent_start() { # fleet_agent_start TIER
	setsid "$FLEET_AGENT" run --config "$STATE/agent-$1.yaml" </dev/null \
		>>"$STATE/agent-$1.log" 2>&1 &
	echo $! >"$STATE/agent-$1.pid"
}

fleet_agent_stop() { # fleet_agent_stop TIER [SIGNAL]: the datapath stays, enforcing
	local pid
	pid=$(cat "$STATE/agent-$1.pid" 2>/dev/null) || return 0
	kill -"${2:-TERM}" "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	rm -f "$STATE/agent-$1.pid"
}

# Waits until every node acknowledged the controller's newest revision (SECONDS at most).
fleet_wait_synced() {
	local end=$((SECONDS + ${1:-30})) want
	while [ $SECONDS -lt $end ]; do
		want=$(fleet_cli get nodes -o json 2>/dev/null | jq '[.[] | select(.enrollment != null and
			.enrollment.revision_acked > 0 and .enrollment.revision_acked >= .enrollment.revision_wanted)] | length')
		[ "${want:-0}" -ge 3 ] && return 0
		sleep 0.2
	done
	return 1
}

# Listeners in every namespace (both families), logging what they receive, detached.
fleet_servers() {
	local t f
	for t in client $FLEET_TIERS; do
		for f in 4 6; do
			setsid ip netns exec "$(fleet_ns "$t")" nc -"$f" -d -k -l "${FLEET_PORT[$t]}" \
				</dev/null >>"$STATE/$t.log" 2>&1 &
		done
	done
	for t in client $FLEET_TIERS; do
		for _ in $(seq 50); do
			[ "$(ip netns exec "$(fleet_ns "$t")" ss -Htln "sport = :${FLEET_PORT[$t]}" |
				wc -l)" -ge 2 ] && break
			sleep 0.1
		done
	done
}

# fleet_tcp FROM TO [4|6]: "allowed" (the line arrived), "denied" (no connection), or an error.
# A denial is a connection that did not open within FLEET_NC_WAIT seconds (default 3).
fleet_seq=0
fleet_tcp() {
	local from=$1 to=$2 fam=${3:-4} dst msg err rc
	if [ "$fam" = 6 ]; then dst=${FLEET_ADDR6[$to]}; else dst=${FLEET_ADDR4[$to]}; fi
	fleet_seq=$((fleet_seq + 1))
	msg="hello $fleet_seq from $from $$"
	err=$(echo "$msg" | ip netns exec "$(fleet_ns "$from")" nc -v -N -w "${FLEET_NC_WAIT:-3}" "$dst" \
		"${FLEET_PORT[$to]}" 2>&1 >/dev/null)
	rc=$?
	if [ $rc -eq 0 ]; then
		for _ in $(seq 30); do
			grep -qx "$msg" "$STATE/$to.log" && { echo allowed; return; }
			sleep 0.1
		done
		echo "connected, but the data never arrived"
	elif echo "$err" | grep -q "timed out"; then
		echo denied
	else
		echo "error: $(echo "$err" | tail -n 1)"
	fi
}

# Removes every namespace, process, pin and file of the fleet with this PREFIX and STATE.
fleet_down() {
	local t n p
	for t in $FLEET_TIERS; do fleet_agent_stop "$t"; done
	fleet_controller_stop
	# the agents leave their datapath enforcing on exit: detach it while the namespace exists
	for t in $FLEET_TIERS; do
		n=$(fleet_node "$t")
		if [ -e "/sys/fs/bpf/bulkhead/$n" ]; then
			"$FLEET_AGENT" dataplane -n "$n" --netns "$(fleet_ns "$t")" detach >/dev/null 2>&1
			rm -rf "/sys/fs/bpf/bulkhead/$n"
		fi
	done
	rmdir /sys/fs/bpf/bulkhead 2>/dev/null
	for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-"); do
		for p in $(ip netns pids "$n" 2>/dev/null); do kill "$p" 2>/dev/null; done
	done
	for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-"); do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			[ -z "$(ip netns pids "$n" 2>/dev/null)" ] && break
			sleep 0.2
		done
		for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$n"
	done
	rm -rf "$STATE"
}
