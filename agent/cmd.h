/* SPDX-License-Identifier: Apache-2.0 */
/* Subcommands of bulkhead-agent, one file each, dispatched from the table in main.c. */
#ifndef AGENT_CMD_H
#define AGENT_CMD_H

/* Each returns the process exit status: 0 success, 1 failure, 2 usage error. */
int cmd_dataplane(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
int cmd_renew(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif
