/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent daemon (`bulkhead-agent run`): keeps this node's datapath enforcing the rule set the
 * controller wants, over a Watch long-poll, and says how it is doing on a status socket.
 *
 * Status socket: a unix stream socket (mode 0600) at the configuration's status-socket. A client
 * connects and reads "KEY VALUE\n" lines until the daemon closes the connection (it sends nothing).
 * Keys: version, pid, node, controller, connection (connected | retrying | never), since (Unix
 * time of the last connection change, 0: never), connection_error, revision (enforcing),
 * revision_acked (last the controller acknowledged receiving), first_start (observe | enforce |
 * no: whether the local first-start rule set is what enforces), last_answer (Unix time of the
 * last Watch answer, 0: never), last_error, last_error_at, endpoints (configured), applies,
 * apply_failures, deny_events, would_deny_events, and one "map NAME USED MAX" line per map.
 * `bulkhead-agent status` prints them for people (or as they are, with --raw).
 */
#ifndef AGENT_DAEMON_H
#define AGENT_DAEMON_H

#include "config.h"

/*
 * Runs the daemon with cfg (taken over: freed by the daemon) until SIGTERM or SIGINT, which leave
 * the datapath attached and enforcing. log_level >= 0 overrides the configuration's (also across
 * SIGHUP reloads). Returns the process exit status: 0 after a signal, 1 when it could not start
 * (the log says why).
 */
int agent_daemon_run(struct agent_config *cfg, int log_level);

#endif
