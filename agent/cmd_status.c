// SPDX-License-Identifier: Apache-2.0
/* bulkhead-agent status: asks the running daemon (its status socket, daemon.h) how it is doing. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"

#define STATUS_TIMEOUT_MS 10000 /* the daemon answers between two loop callbacks */
#define STATUS_MAX	  (64u << 10)

static const char status_usage[] =
	"usage: bulkhead-agent status [--config FILE | --socket PATH] [--raw]\n"
	"\n"
	"Asks the running agent daemon how it is doing: node, enforced and acknowledged\n"
	"revision, connection to the controller (connected, retrying since when, or never),\n"
	"the last error, when the last Watch answer came, map fill and deny events.\n"
	"\n"
	"  --config FILE   the daemon's configuration, for its status-socket (default\n"
	"                  " AGENT_CONFIG_DEFAULT ")\n"
	"  --socket PATH   ask this socket instead\n"
	"  --raw           print the daemon's KEY VALUE lines as they are (for scripts)\n"
	"  -h, --help      this text\n"
	"\n"
	"exit status: 0 the daemon runs and is connected to its controller, 1 it does not run\n"
	"or is not connected (the output says which), 2 usage error\n";

/* Reads everything the daemon sends on path into a NUL-terminated malloc'd buffer. */
static int fetch(const char *path, char **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	int fd, rc = 0;

	if (!buf)
		return -ENOMEM;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		free(buf);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, STATUS_TIMEOUT_MS) == 0) {
			rc = -ETIMEDOUT;
			goto out;
		}
		if (len + 1 == cap) {
			char *g = cap >= STATUS_MAX ? NULL : realloc(buf, cap * 2);

			if (!g) {
				rc = -EFBIG;
				goto out;
			}
			buf = g;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* The value of KEY in the daemon's lines ("" when absent), copied into out. */
static const char *get(const char *text, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);

	out[0] = '\0';
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, key, kl) && l[kl] == ' ') {
			const char *end = strchr(l, '\n');

			snprintf(out, len, "%.*s", (int)((end ? end : l + strlen(l)) - l - kl - 1),
				 l + kl + 1);
			break;
		}
	}
	return out;
}

/* "12:00:03 (5m ago)" for a Unix time; "never" for 0. */
static const char *when(const char *unix_s, char *out, size_t len)
{
	long long t = strtoll(unix_s, NULL, 10);
	long long ago = (long long)time(NULL) - t;
	char clock[32];
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0)
		return snprintf(out, len, "never"), out;
	strftime(clock, sizeof(clock), "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
	if (ago < 120)
		snprintf(out, len, "%s (%llds ago)", clock, ago);
	else if (ago < 7200)
		snprintf(out, len, "%s (%lldm ago)", clock, ago / 60);
	else
		snprintf(out, len, "%s (%lldh ago)", clock, ago / 3600);
	return out;
}

static void print_human(const char *text)
{
	char v[600], a[600], w[64];

	printf("node          %s (pid %s)\n", get(text, "node", v, sizeof(v)),
	       get(text, "pid", a, sizeof(a)));
	get(text, "connection", v, sizeof(v));
	printf("controller    %s: ", get(text, "controller", a, sizeof(a)));
	if (!strcmp(v, "connected"))
		printf("connected since %s\n",
		       when(get(text, "since", a, sizeof(a)), w, sizeof(w)));
	else if (!strcmp(v, "retrying"))
		printf("unreachable, retrying since %s: %s\n",
		       when(get(text, "since", a, sizeof(a)), w, sizeof(w)),
		       get(text, "connection_error", v, sizeof(v)));
	else
		printf("never connected yet\n");
	printf("revision      %s enforcing", get(text, "revision", v, sizeof(v)));
	printf(", %s acknowledged", get(text, "revision_acked", v, sizeof(v)));
	get(text, "first_start", v, sizeof(v));
	if (strcmp(v, "no"))
		printf(" (first start, nothing from the controller yet: %s)", v);
	printf("\n");
	printf("last answer   %s\n", when(get(text, "last_answer", v, sizeof(v)), w, sizeof(w)));
	get(text, "last_error", v, sizeof(v));
	if (v[0])
		printf("last error    %s, at %s\n", v,
		       when(get(text, "last_error_at", a, sizeof(a)), w, sizeof(w)));
	else
		printf("last error    none\n");
	printf("endpoints     %s configured\n", get(text, "endpoints", v, sizeof(v)));
	printf("applies       %s", get(text, "applies", v, sizeof(v)));
	printf(", %s refused\n", get(text, "apply_failures", v, sizeof(v)));
	printf("events        %s denied", get(text, "deny_events", v, sizeof(v)));
	printf(", %s would-deny (observe) since start\n",
	       get(text, "would_deny_events", v, sizeof(v)));
	if (get(text, "flow_summaries_drained", v, sizeof(v))[0]) {
		printf("flows         %s summaries read, %s stored by the controller", v,
		       get(text, "flow_summaries_sent", a, sizeof(a)));
		printf(", %s dropped", get(text, "flow_summaries_dropped", v, sizeof(v)));
		printf(", %s waiting\n", get(text, "flow_summaries_spooled", v, sizeof(v)));
		printf("flow report   last at %s\n",
		       when(get(text, "last_flow_report", v, sizeof(v)), w, sizeof(w)));
	} else {
		printf("flows         not exported (flow-export: interval 0)\n");
	}
	printf("\n%-10s %10s %10s %6s\n", "MAP", "USED", "MAX", "FILL");
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char name[32];
		unsigned int used, max;

		if (sscanf(l, "map %31s %u %u", name, &used, &max) == 3)
			printf("%-10s %10u %10u %5.1f%%\n", name, used, max,
			       max ? 100.0 * used / max : 0.0);
	}
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"socket", required_argument, NULL, 's'},
		{"raw", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *config = AGENT_CONFIG_DEFAULT, *sock = NULL;
	struct agent_config *c = NULL;
	struct bh_error err = {0};
	bool raw = false;
	char *text = NULL, conn[32];
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'r':
			raw = true;
			break;
		case 'h':
			fputs(status_usage, stdout);
			return 0;
		default:
			fputs("Try 'bulkhead-agent status --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bulkhead-agent status: unexpected argument \"%s\"\n",
			argv[optind]);
		return 2;
	}
	if (!sock) {
		if (agent_config_load(config, &c, &err)) {
			fprintf(stderr, "bulkhead-agent status: %s\n", err.msg);
			return 1;
		}
		sock = c->status_socket;
	}
	rc = fetch(sock, &text);
	if (rc) {
		fprintf(stderr, "bulkhead-agent status: no daemon answers on %s: %s\n", sock,
			rc == -ENOENT || rc == -ECONNREFUSED ? "it is not running"
			: rc == -EACCES			     ? "permission denied (run as root)"
							     : strerror(-rc));
		agent_config_free(c);
		return 1;
	}
	if (raw)
		fputs(text, stdout);
	else
		print_human(text);
	get(text, "connection", conn, sizeof(conn));
	free(text);
	agent_config_free(c);
	return strcmp(conn, "connected") ? 1 : 0;
}
