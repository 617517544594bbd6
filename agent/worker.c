// SPDX-License-Identifier: Apache-2.0
/* The agent daemon's worker threads: see worker.h. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

struct agent_worker {
	uv_async_t async; /* wakes the loop to hand finished jobs back */
	pthread_t thread;
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	struct agent_job *todo, **todo_tail;
	struct agent_job *finished, **finished_tail;
	bool busy; /* the thread is running a job */
	bool stop;
};

static void *worker_main(void *arg)
{
	struct agent_worker *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct agent_job *j;

		while (!w->todo && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->stop)
			break;
		j = w->todo;
		w->todo = j->next;
		if (!w->todo)
			w->todo_tail = &w->todo;
		w->busy = true;
		pthread_mutex_unlock(&w->lock);

		j->run(j);

		pthread_mutex_lock(&w->lock);
		w->busy = false;
		if (w->stop)
			break; /* abandoned: the loop is gone, and so is whoever would free j */
		j->next = NULL;
		*w->finished_tail = j;
		w->finished_tail = &j->next;
		uv_async_send(&w->async); /* under the lock: destroy cannot close it meanwhile */
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Loop thread: hands back every finished job (async sends coalesce, so drain them all). */
static void on_async(uv_async_t *a)
{
	struct agent_worker *w = a->data;
	struct agent_job *list;

	pthread_mutex_lock(&w->lock);
	list = w->finished;
	w->finished = NULL;
	w->finished_tail = &w->finished;
	pthread_mutex_unlock(&w->lock);
	while (list) {
		struct agent_job *next = list->next;

		list->done(list);
		list = next;
	}
}

int agent_worker_create(struct agent_worker **out, uv_loop_t *loop, struct bh_error *err)
{
	struct agent_worker *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return bh_error_set(err, -ENOMEM, "out of memory");
	w->todo_tail = &w->todo;
	w->finished_tail = &w->finished;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	rc = uv_async_init(loop, &w->async, on_async);
	if (rc) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return bh_error_set(err, rc, "creating a loop wake-up: %s", uv_strerror(rc));
	}
	w->async.data = w;
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc) {
		/* the handle is closed by the loop; the struct is then leaked rather than freed
		 * under a pending close (this only happens when the process is about to give up) */
		uv_close((uv_handle_t *)&w->async, NULL);
		return bh_error_set(err, -rc, "starting a worker thread: %s", strerror(rc));
	}
	*out = w;
	return 0;
}

void agent_worker_post(struct agent_worker *w, struct agent_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&w->lock);
	*w->todo_tail = j;
	w->todo_tail = &j->next;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void free_after_close(uv_handle_t *h)
{
	struct agent_worker *w = h->data;

	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

void agent_worker_destroy(struct agent_worker *w)
{
	bool busy;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	busy = w->busy;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (busy) {
		/* It is inside a blocking call that cannot be cut short. It will see stop, hand
		 * nothing back and return; the struct (and its queued jobs) stays allocated for it.
		 */
		pthread_detach(w->thread);
		uv_close((uv_handle_t *)&w->async, NULL);
		return;
	}
	pthread_join(w->thread, NULL);
	/* jobs never run are dropped with the struct: their owner is exiting */
	uv_close((uv_handle_t *)&w->async, free_after_close);
}
