/* SPDX-License-Identifier: MIT */
/*
 * src/timer.c - one-shot and repeating timers on a binary min-heap keyed
 * by (due time, start sequence), so timers due together fire in the order
 * they were started.
 *
 * A due timer is taken off the heap (a repeating one goes back at once
 * with its next due time) and its callback runs without the core lock.
 * With several threads serving the loop, a repeating timer whose callback
 * is still running elsewhere when it falls due again skips that tick.
 */
#include "internal.h"

#define NONE ((size_t)-1)

static int before(const pier_timer *a, const pier_timer *b) {
  if (a->pier__t.due != b->pier__t.due) return a->pier__t.due < b->pier__t.due;
  return a->pier__t.seq < b->pier__t.seq;
}

static void place(pier_loop *loop, size_t i, pier_timer *t) {
  loop->heap[i] = t;
  t->pier__t.index = i;
}

static void sift_up(pier_loop *loop, size_t i) {
  pier_timer *t = loop->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(t, loop->heap[parent])) break;
    place(loop, i, loop->heap[parent]);
    i = parent;
  }
  place(loop, i, t);
}

static void sift_down(pier_loop *loop, size_t i) {
  pier_timer *t = loop->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= loop->nheap) break;
    if (child + 1 < loop->nheap && before(loop->heap[child + 1], loop->heap[child]))
      child++;
    if (!before(loop->heap[child], t)) break;
    place(loop, i, loop->heap[child]);
    i = child;
  }
  place(loop, i, t);
}

static void heap_remove(pier_loop *loop, pier_timer *t) {
  size_t i = t->pier__t.index;
  t->pier__t.index = NONE;
  pier_timer *last = loop->heap[--loop->nheap];
  if (last == t) return;
  place(loop, i, last);
  sift_down(loop, i);
  sift_up(loop, last->pier__t.index);
}

static int heap_insert(pier_loop *loop, pier_timer *t) {
  if (loop->nheap == loop->capheap) {
    size_t cap = loop->capheap ? loop->capheap * 2 : 16;
    pier_timer **h = pier__realloc(loop->heap, cap * sizeof *h);
    if (!h) return PIER_ENOMEM;
    loop->heap = h;
    loop->capheap = cap;
  }
  place(loop, loop->nheap++, t);
  sift_up(loop, loop->nheap - 1);
  return 0;
}

int pier_timer_init(pier_loop *loop, pier_timer *t) {
  if (!loop || !t)
    return pier__bad(__func__, "%s is NULL", !loop ? "loop" : "timer");
  t->pier__t.loop = loop;
  t->pier__t.cb = NULL;
  t->pier__t.index = NONE;
  t->pier__t.due = t->pier__t.repeat = t->pier__t.seq = 0;
  return 0;
}

static int active(const pier_timer *t) { return t->pier__t.index != NONE; }

int pier_timer_active(const pier_timer *t) {
  if (!t || !t->pier__t.loop) return 0;
  pier__lock(t->pier__t.loop);
  int a = active(t);
  pier__unlock(t->pier__t.loop);
  return a;
}

int pier_timer_stop(pier_timer *t) {
  if (!t || !t->pier__t.loop)
    return pier__bad(__func__, "%s", !t ? "timer is NULL"
                     : "timer was never given to pier_timer_init");
  pier_loop *loop = t->pier__t.loop;
  pier__lock(loop);
  if (active(t)) heap_remove(loop, t);
  pier__unlock(loop);
  return 0;
}

int pier_timer_start(pier_timer *t, uint64_t timeout_ms, uint64_t repeat_ms,
                     pier_timer_cb cb) {
  if (!t || !t->pier__t.loop || !cb)
    return pier__bad(__func__, "%s", !t ? "timer is NULL"
                     : !t->pier__t.loop
                         ? "timer was never given to pier_timer_init"
                     : "cb is NULL");
  pier_loop *loop = t->pier__t.loop;
  int rc = pier__loop_usable(__func__, loop);
  if (rc) return rc;
  pier__lock(loop);
  if (active(t)) heap_remove(loop, t);
  t->pier__t.cb = cb;
  t->pier__t.due = pier__load(&loop->now) + timeout_ms;
  t->pier__t.repeat = repeat_ms;
  t->pier__t.seq = loop->timer_seq++;
  rc = heap_insert(loop, t);
  pier__unlock(loop);
  return rc;
}

/* A timer whose callback is running: a node on the runner's stack. */
struct pier__firing {
  pier_timer *timer;
  struct pier__firing *next;
};

static int is_firing(const pier_loop *loop, const pier_timer *t) {
  for (const struct pier__firing *f = loop->firing; f; f = f->next)
    if (f->timer == t) return 1;
  return 0;
}

int pier_spi_timer_firing(const pier_timer *t) {
  return t && t->pier__t.loop && is_firing(t->pier__t.loop, t);
}

static void rearm(pier_loop *loop, pier_timer *t, uint64_t now) {
  t->pier__t.due = now + t->pier__t.repeat;
  t->pier__t.seq = loop->timer_seq++;
  if (heap_insert(loop, t) != 0)
    pier_spi_log(PIER_LOG_ERROR, "timer: out of memory re-arming");
}

int pier__timer_fire_one(pier_loop *loop) {
  uint64_t now = pier__load(&loop->now);
  for (;;) {
    if (loop->nheap == 0) return 0;
    pier_timer *t = loop->heap[0];
    if (t->pier__t.due > now || t->pier__t.seq >= loop->timer_limit) return 0;
    heap_remove(loop, t);
    int busy = is_firing(loop, t);
    if (t->pier__t.repeat) rearm(loop, t, now);
    if (busy) continue; /* its last tick still runs on another thread */
    /* The timer may be stopped, restarted or freed by its callback: after
       it, only the stack node is touched. */
    struct pier__firing node = { t, loop->firing };
    loop->firing = &node;
    pier_timer_cb cb = t->pier__t.cb;
    loop->active++;
    pier__unlock(loop);
    cb(t);
    pier__lock(loop);
    loop->active--;
    struct pier__firing **link = &loop->firing;
    while (*link != &node) link = &(*link)->next;
    *link = node.next;
    return 1;
  }
}

int pier__timers_timeout(pier_loop *loop) {
  if (loop->nheap == 0) return -1;
  uint64_t due = loop->heap[0]->pier__t.due;
  uint64_t now = pier__hrtime_ms();
  if (due <= now) return 0;
  uint64_t d = due - now;
  return d > 0x7fffffff ? 0x7fffffff : (int)d;
}
