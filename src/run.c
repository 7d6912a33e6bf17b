/* SPDX-License-Identifier: MIT */
/*
 * src/run.c - pier_loop_run: one thread, or several, serving a loop.
 *
 * Every runner repeats one step: run one ready callback - a due timer, a
 * completion, a close callback - with the core lock released around it;
 * when none is ready, poll the provider.  One runner at a time holds the
 * poll role; it keeps polling until its polls have produced work, then
 * hands the role back and wakes the runners parked on `work`, which share
 * the callbacks out.  A runner that finds no work while the role is taken
 * parks on `work` (src/lock.c: a parked runner does not hold up polls).
 *
 * Completions of one socket never run concurrently: a socket is on the
 * ready list at most once, and off it (BUSY) while its callback runs.
 * Every BUDGET callbacks a runner polls without waiting, so a chain of
 * completions that finish at once cannot starve the network.
 *
 * Section map
 *   1. one poll, the poll role
 *   2. serving
 *   3. pier_loop_run and its helper threads
 */
#include <string.h>

#include "internal.h"

#define BUDGET 64 /* callbacks between two polls while work keeps coming */

/* ------------------------------------------------------------------ */
/* 1. one poll, the poll role                                          */
/* ------------------------------------------------------------------ */

static int has_work(pier_loop *loop) {
  if (pier__op_ready(loop)) return 1;
  if (loop->closing && pier__sockets_reapable(loop)) return 1;
  if (loop->nheap == 0) return 0;
  const pier_timer *t = loop->heap[0];
  return t->pier__t.due <= pier__load(&loop->now) &&
         t->pier__t.seq < loop->timer_limit;
}

/* Poll the provider once (core lock held throughout). */
static void poll_once(pier_loop *loop, int nowait) {
  pier__sc_store(&loop->polling, 1);
  /* After publishing `polling`: a thread that wants the lock either saw
     it and wakes this poll, or is seen here and the poll does not wait. */
  int timeout = 0;
  if (!nowait && !pier__sc_load(&loop->lock_wanted) &&
      !pier__load(&loop->stop) && !has_work(loop))
    timeout = pier__timers_timeout(loop);
  loop->timer_mark = loop->ready_seq;
  int rc = loop->prov->loop_poll(loop, timeout);
  pier__sc_store(&loop->polling, 0);
  if (rc < 0) pier_spi_log(PIER_LOG_ERROR, "loop_poll: %s", pier_strerror(rc));
  pier__store(&loop->now, pier__hrtime_ms());
  loop->timer_limit = loop->timer_seq; /* timers started so far may fire */
  pier__loop_drain_remote(loop);
}

/* Let the threads waiting for the core lock have it. */
static void yield_core(pier_loop *loop) {
  pier__unlock(loop);
  pier__thread_yield();
  pier__lock(loop);
}

static int done_polling(pier_loop *loop) {
  return has_work(loop) || pier__load(&loop->stop) || !pier__loop_alive(loop);
}

/* Hold the poll role until a poll has produced work (DEFAULT mode), or
   for one poll (the others). */
static void poll_role(pier_loop *loop, pier_run_mode mode, int nowait) {
  loop->poller_busy = 1;
  for (;;) {
    poll_once(loop, nowait || mode == PIER_RUN_NOWAIT);
    if (mode != PIER_RUN_DEFAULT || done_polling(loop)) break;
    if (pier__sc_load(&loop->lock_wanted)) {
      yield_core(loop);
      if (done_polling(loop)) break;
    }
    nowait = 0;
  }
  loop->poller_busy = 0;
  pier__event_signal(loop, &loop->work);
}

/* ------------------------------------------------------------------ */
/* 2. serving                                                          */
/* ------------------------------------------------------------------ */

/* Fairly: completions that were ready before the last poll began, then
   the timers it found due, then one close callback, then the rest. */
static int deliver_one(pier_loop *loop) {
  return pier__op_deliver_one(loop, 1) || pier__timer_fire_one(loop) ||
         pier__socket_reap_one(loop) || pier__op_deliver_one(loop, 0);
}

/* Serve loop in mode until stopped or idle; returns whether it is alive.
   Core lock held (once) on entry and exit. */
static int serve(pier_loop *loop, pier_run_mode mode) {
  int polled = 0;
  unsigned budget = 0;
  for (;;) {
    if (pier__load(&loop->stop)) break;
    if (budget < BUDGET && deliver_one(loop)) {
      budget++;
      continue;
    }
    if (budget >= BUDGET) { /* work keeps coming: look at the network */
      if (polled && mode != PIER_RUN_DEFAULT) break;
      if (!loop->poller_busy) {
        poll_role(loop, mode, 1);
        polled = 1;
      }
      budget = 0;
      continue;
    }
    if (!pier__loop_alive(loop) || (polled && mode != PIER_RUN_DEFAULT)) break;
    if (loop->poller_busy) { /* another runner polls: wait for its work */
      if (mode == PIER_RUN_NOWAIT) break;
      pier__event_wait(loop, &loop->work);
      if (mode == PIER_RUN_ONCE) polled = 1;
      continue;
    }
    /* Nothing is ready: a DEFAULT run may wait at once (poll_once still
       does not wait while work is queued); ONCE must not wait after it
       has run callbacks. */
    poll_role(loop, mode, mode != PIER_RUN_DEFAULT && budget > 0);
    polled = 1;
    budget = 0;
  }
  return pier__loop_alive(loop);
}

/* ------------------------------------------------------------------ */
/* 3. pier_loop_run                                                    */
/* ------------------------------------------------------------------ */

static int run_as(pier_loop *loop, pier_run_mode mode, int lead);

/* Hooks for the end of a helper thread (pier_spi_thread_exit_hook). */
#define MAX_EXIT_HOOKS 8
static void (*exit_hooks[MAX_EXIT_HOOKS])(void);
static pier__mutex hooks_lock = PIER__MUTEX_INIT;

int pier_spi_thread_exit_hook(void (*fn)(void)) {
  if (!fn) return pier__bad(__func__, "fn is NULL");
  int rc = PIER_ENOMEM;
  pier__mutex_lock(&hooks_lock);
  for (size_t i = 0; i < MAX_EXIT_HOOKS; i++) {
    if (exit_hooks[i] == fn) { rc = 0; break; }
    if (!exit_hooks[i]) { exit_hooks[i] = fn; rc = 0; break; }
  }
  pier__mutex_unlock(&hooks_lock);
  return rc;
}

static void helper_main(void *arg) {
  run_as(arg, PIER_RUN_DEFAULT, 0);
  void (*hooks[MAX_EXIT_HOOKS])(void);
  pier__mutex_lock(&hooks_lock);
  memcpy(hooks, exit_hooks, sizeof hooks);
  pier__mutex_unlock(&hooks_lock);
  for (size_t i = 0; i < MAX_EXIT_HOOKS && hooks[i]; i++) hooks[i]();
}

/* Start the loop's extra threads (core lock held); returns them. */
static pier__thread *start_helpers(pier_loop *loop, unsigned *n) {
  *n = 0;
  pier__thread *t = pier__calloc(loop->threads - 1, sizeof *t);
  if (!t) {
    pier_spi_log(PIER_LOG_WARN, "loop threads: out of memory, running alone");
    return NULL;
  }
  for (unsigned i = 0; i + 1 < loop->threads; i++) {
    int rc = pier__thread_start(&t[*n], helper_main, loop);
    if (rc == 0) (*n)++;
    else pier_spi_log(PIER_LOG_WARN, "loop thread %u: %s", i, pier_strerror(rc));
  }
  loop->helpers_on = 1;
  return t;
}

static int run_as(pier_loop *loop, pier_run_mode mode, int lead) {
  if (pier__running_here(loop)) return PIER_EBUSY; /* from its own callback */
  pier__lock(loop);
  if ((loop->nrunners > 0 && loop->threads <= 1) || pier__running_push(loop)) {
    pier__unlock(loop);
    return PIER_EBUSY;
  }
  if (loop->nrunners++ == 0) {
    pier__store(&loop->now, pier__hrtime_ms());
    loop->timer_limit = loop->timer_seq;
  }
  pier__thread *helpers = NULL;
  unsigned nhelpers = 0;
  if (lead && mode == PIER_RUN_DEFAULT && loop->threads > 1 && !loop->helpers_on)
    helpers = start_helpers(loop, &nhelpers);

  int alive = serve(loop, mode);

  if (helpers) {
    pier__unlock(loop);
    for (unsigned i = 0; i < nhelpers; i++) pier__thread_join(helpers[i]);
    pier__free(helpers);
    pier__lock(loop);
    loop->helpers_on = 0;
    alive = pier__loop_alive(loop);
  }
  pier__running_pop();
  if (--loop->nrunners == 0) pier__store(&loop->stop, 0);
  pier__event_signal(loop, &loop->work);
  pier__event_signal(loop, &loop->changed);
  pier__unlock(loop);
  return alive;
}

int pier_loop_run(pier_loop *loop, pier_run_mode mode) {
  if (!loop) return pier__bad(__func__, "loop is NULL");
  if (mode != PIER_RUN_DEFAULT && mode != PIER_RUN_ONCE &&
      mode != PIER_RUN_NOWAIT)
    return pier__bad(__func__, "mode %d is not PIER_RUN_DEFAULT, "
                     "PIER_RUN_ONCE or PIER_RUN_NOWAIT", (int)mode);
  return run_as(loop, mode, 1);
}
