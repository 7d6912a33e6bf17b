/* SPDX-License-Identifier: MIT */
/*
 * src/lock.c - the core lock of a loop, and which loops this thread runs.
 *
 * The core lock guards all of a loop's core state and every provider call
 * (providers are written single-threaded).  It is recursive within one
 * thread, so a condition function, which a provider calls with the lock
 * held, may call back into pier.
 *
 * The thread that polls the provider holds the lock for the whole poll:
 * a readiness provider such as libevent cannot release it between its
 * wait and its dispatch.  A thread that needs the lock meanwhile announces
 * itself in lock_wanted and wakes the poll; the poller, which sets polling
 * before it reads lock_wanted, polls without waiting when anyone waits.
 * Both sides use sequentially consistent operations, so at least one of
 * them sees the other: either the waiter wakes the poll or the poll does
 * not wait.
 */
#include "internal.h"

/* Its address identifies this thread. */
static PIER__TLS char self_marker;
#define SELF ((uintptr_t)&self_marker)

void pier__lock(pier_loop *loop) {
  if (__atomic_load_n(&loop->owner, __ATOMIC_RELAXED) == SELF) {
    loop->depth++;
    return;
  }
  if (!pier__mutex_trylock(&loop->core)) {
    pier__sc_add(&loop->lock_wanted, 1);
    if (pier__sc_load(&loop->polling)) loop->prov->loop_wake(loop);
    pier__mutex_lock(&loop->core);
    pier__sc_add(&loop->lock_wanted, -1);
  }
  __atomic_store_n(&loop->owner, SELF, __ATOMIC_RELAXED);
  loop->depth = 1;
}

int pier__lock_held(const pier_loop *loop) {
  return __atomic_load_n(&loop->owner, __ATOMIC_RELAXED) == SELF;
}

void pier__unlock(pier_loop *loop) {
  if (--loop->depth > 0) return;
  __atomic_store_n(&loop->owner, (uintptr_t)0, __ATOMIC_RELAXED);
  pier__mutex_unlock(&loop->core);
}

/*
 * A thread woken from a condition variable would retake the core lock
 * inside pthread_cond_wait, unannounced, and could sleep there for as long
 * as a poll lasts.  So waiting happens on the small lock, and the core
 * lock is retaken through pier__lock.  The count orders a signal against
 * a waiter that has dropped the core lock but not yet started to wait.
 */
void pier__event_wait(pier_loop *loop, pier__event *ev) {
  unsigned seq = pier__load(&ev->seq);
  ev->waiters++;
  int depth = loop->depth;
  loop->depth = 1;
  pier__unlock(loop);
  pier__mutex_lock(&loop->lock);
  while (pier__load(&ev->seq) == seq) pier__cond_wait(&ev->cond, &loop->lock);
  pier__mutex_unlock(&loop->lock);
  pier__lock(loop);
  loop->depth = depth;
  ev->waiters--;
}

void pier__event_signal(pier_loop *loop, pier__event *ev) {
  if (ev->waiters == 0) return;
  pier__fetch_add(&ev->seq, 1u);
  pier__mutex_lock(&loop->lock);
  pier__cond_broadcast(&ev->cond);
  pier__mutex_unlock(&loop->lock);
}

/* The loops this thread is running, innermost last (nested runs of
   different loops from callbacks are allowed). */
#define MAX_NESTED 8
static PIER__TLS pier_loop *running[MAX_NESTED];
static PIER__TLS int nrunning;

int pier__running_here(const pier_loop *loop) {
  for (int i = 0; i < nrunning; i++)
    if (running[i] == loop) return 1;
  return 0;
}

int pier__running_push(pier_loop *loop) {
  if (nrunning == MAX_NESTED) return PIER_EBUSY;
  running[nrunning++] = loop;
  return 0;
}

void pier__running_pop(void) {
  if (nrunning > 0) nrunning--;
}
