/* SPDX-License-Identifier: Apache-2.0 */
/* The bulkhead CLI: shared connection handling and output; one file per subcommand family. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bulkhead/rpc.h"

/* What -o asks for. Each command says which it prints (a mask of CLI_FMT()). */
enum cli_format { CLI_FORMAT_TABLE, CLI_FORMAT_JSON, CLI_FORMAT_YAML };
#define CLI_FMT(f)   ((unsigned int)1 << (f))
#define CLI_FMTS_TJ  (CLI_FMT(CLI_FORMAT_TABLE) | CLI_FMT(CLI_FORMAT_JSON))
#define CLI_FMTS_ALL (CLI_FMTS_TJ | CLI_FMT(CLI_FORMAT_YAML))

struct cli {
	const char *admin_socket; /* ipc:// URL or path */
	const char *controller;	  /* tls+tcp://HOST:PORT */
	const char *cert, *key, *ca;
	enum cli_format format;
	bool json; /* format == CLI_FORMAT_JSON (for token and node, which know table and json) */
	unsigned int timeout_ms;
	struct bh_rpc_client *client;
};

/* ---- conn.c ---------------------------------------------------------------------------------- */

/* Connects as the configuration says (flags, then $BULKHEAD_CONFIG or ~/.config/bulkhead/config,
 * then the local admin socket). Prints why on failure. */
int cli_connect(struct cli *c);

/* Calls an Operator or Agent method; prints the error on failure. Returns 0 or 1. */
int cli_call(struct cli *c, const ProtobufCServiceDescriptor *svc, const char *method,
	     const ProtobufCMessage *req, ProtobufCMessage **resp);

/* Accepts what may follow a list command: nothing, or -o/--output table|json. */
bool cli_list_args(struct cli *c, int argc, char **argv);

/* "2026-11-25 13:04:05" in local time. */
const char *cli_time(long long t, char *buf, size_t len);

/* ---- output.c -------------------------------------------------------------------------------- */

/*
 * Sets c->format (and c->json) from an -o value. allowed is a mask of CLI_FMT(); cmd names the
 * command in the message. Returns 0, or 2 (the usage exit status) after saying on stderr what
 * the command accepts.
 */
int cli_format_set(struct cli *c, const char *cmd, const char *value, unsigned int allowed);

/* A table printed with aligned columns: a header row, then rows of the same number of cells. */
struct cli_table;

/* headers: ncols (1-16) strings, kept by pointer (string literals). NULL with errno set on
 * failure. */
struct cli_table *cli_table_create(size_t ncols, const char *const *headers);
/* Adds a row of the table's ncols cells (copied; NULL prints "-", control characters '?').
 * 0 or -ENOMEM. */
int cli_table_add(struct cli_table *t, const char *const *cells);
/* Prints the header and rows on f, each column as wide as its widest cell. Can't fail. */
void cli_table_print(const struct cli_table *t, FILE *f);
/* Takes NULL. */
void cli_table_destroy(struct cli_table *t);
/* Ends a table: prints it on stdout when it has rows, else the line empty on stderr, and
 * destroys it. A NULL t (a failed create or add) says "out of memory" and returns 1; else 0. */
int cli_table_finish(struct cli_table *t, size_t rows, const char *empty);

/* Writes text on stdout, adding a newline if it lacks one (nothing for NULL or ""). */
void cli_print_text(const char *text);

/* ---- json.c ---------------------------------------------------------------------------------- */

/*
 * Writes s as a JSON string, quotes included: '"', '\\' and control characters escaped, valid
 * UTF-8 passed through, each byte of invalid UTF-8 written as U+FFFD. NULL writes "". Can't fail
 * (stdio errors show at fflush/ferror).
 */
void cli_json_str(FILE *f, const char *s);
/* The same for n bytes of s (NUL bytes become \u0000). */
void cli_json_strn(FILE *f, const char *s, size_t n);
/*
 * Copies the string value of key at the top level of the JSON object text into buf (len bytes,
 * NUL-terminated, escapes decoded). Returns 0; -ENOENT when the key is absent or its value is not
 * a string; -EINVAL when text is not a JSON object; -ENOSPC when buf is too small.
 */
int cli_json_get_str(const char *text, const char *key, char *buf, size_t len);

/* ---- shared by the subcommands --------------------------------------------------------------- */

/* "Policy", "Workload" or "Node" for policy|policies|po|pol, workload|workloads|wl,
 * node|nodes|no (any case); NULL for anything else. */
const char *cli_kind_parse(const char *text);

/*
 * Prints what Apply, Delete or Rollback answered: a line per object change ("policy/x created"),
 * "revision N" or "no change", then with diff each node's rule-set lines ("+ ..." / "- ...");
 * with c->format JSON, one JSON object instead. Returns 0.
 */
int cli_print_apply(struct cli *c, const Bulkhead__ApplyResponse *r, bool dry_run, bool diff);

/* The newest limit revisions: a table (the current one marked), or JSON. 0 or 1 (said why). */
int cli_revisions_print(struct cli *c, uint32_t limit);

/* A node's compiled rule set in the agent's text form (deploy/ruleset-format.md), or JSON.
 * 0 or 1 (said why). */
int cli_ruleset_print(struct cli *c, const char *node);

/* ---- the subcommands (argv[0]: the command's name; they return the exit status) -------------- */

int cmd_token(struct cli *c, int argc, char **argv);
int cmd_node(struct cli *c, int argc, char **argv);
int cmd_apply(struct cli *c, int argc, char **argv);
int cmd_delete(struct cli *c, int argc, char **argv);
int cmd_diff(struct cli *c, int argc, char **argv);
int cmd_get(struct cli *c, int argc, char **argv);
int cmd_describe(struct cli *c, int argc, char **argv);
int cmd_revisions(struct cli *c, int argc, char **argv);
int cmd_rollback(struct cli *c, int argc, char **argv);
int cmd_explain(struct cli *c, int argc, char **argv);
int cmd_ruleset(struct cli *c, int argc, char **argv);
int cmd_flows(struct cli *c, int argc, char **argv);

#endif
