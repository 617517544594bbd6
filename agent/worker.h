/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A worker thread for the agent daemon's blocking calls (the RPC client is synchronous, and a
 * Watch long-poll holds its caller for up to half a minute).
 *
 * The loop thread posts a job; the worker runs job->run() (the blocking part, touching nothing
 * but the job) and hands the job back: job->done() then runs on the loop thread, which owns
 * everything else. This module holds the only lock of the daemon, around its two queues; neither
 * callback runs under it.
 */
#ifndef AGENT_WORKER_H
#define AGENT_WORKER_H

#include <uv.h>

#include "bulkhead/error.h"

struct agent_job {
	void (*run)(struct agent_job *j);  /* worker thread */
	void (*done)(struct agent_job *j); /* loop thread; may free the job */
	struct agent_job *next;		   /* the worker's */
};

struct agent_worker;

/*
 * Starts a worker thread that hands finished jobs to loop. The thread is created with the calling
 * thread's namespaces (the daemon starts its workers before it enters a datapath netns, so that
 * RPC keeps dialling from the original one). Loop thread. On success *out is set.
 */
int agent_worker_create(struct agent_worker **out, uv_loop_t *loop, struct bh_error *err);

/* Queues j; jobs run one at a time in the order posted. The worker owns j until done() runs.
 * Loop thread. Never fails. */
void agent_worker_post(struct agent_worker *w, struct agent_job *j);

/*
 * Stops the worker: waits for the thread if it is idle, otherwise leaves it to finish its job on
 * its own and never hands that job back (a long-poll cannot be interrupted; the caller is about to
 * exit). Closes the loop handle. Loop thread. Takes NULL.
 */
void agent_worker_destroy(struct agent_worker *w);

#endif
