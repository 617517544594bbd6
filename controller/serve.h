/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CTL_SERVE_H
#define CTL_SERVE_H

#include <stddef.h>

#include "bulkhead/error.h"

struct ctl_serve_opts {
	const char *dir;
	const char *listen;	   /* agents and operators, mutual TLS */
	const char *enroll_listen; /* enrollment, server TLS; "none" to disable */
	const char *admin;	   /* local admin socket (ipc://); "none" to disable */
	unsigned long cert_lifetime_s;
	size_t max_msg;
	unsigned long flow_keep_s;	 /* hour buckets and deny events (0: 7 days) */
	unsigned long flow_minute_keep_s; /* minute buckets (0: 6 hours) */
	const char *metrics;		  /* HOST:PORT, "none"; NULL: the default */
	bool metrics_public;		  /* allow a non-loopback metrics address */
};

/* Runs the controller until SIGTERM/SIGINT. Returns 0 after a clean stop. */
int ctl_serve(const struct ctl_serve_opts *o, struct bh_error *err);

#endif
