/*
 * src/timer.c - one-shot and repeating timers on a binary min-heap keyed
 * by (due time, start sequence), so timers due together fire in the order
 * they were started.
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
  if (!loop || !t) return PIER_EINVAL;
  t->pier__t.loop = loop;
  t->pier__t.cb = NULL;
  t->pier__t.index = NONE;
  t->pier__t.due = t->pier__t.repeat = t->pier__t.seq = 0;
  return 0;
}

int pier_timer_active(const pier_timer *t) {
  return t && t->pier__t.loop && t->pier__t.index != NONE;
}

int pier_timer_stop(pier_timer *t) {
  if (!t || !t->pier__t.loop) return PIER_EINVAL;
  if (pier_timer_active(t)) heap_remove(t->pier__t.loop, t);
  return 0;
}

int pier_timer_start(pier_timer *t, uint64_t timeout_ms, uint64_t repeat_ms,
                     pier_timer_cb cb) {
  if (!t || !t->pier__t.loop || !cb) return PIER_EINVAL;
  pier_loop *loop = t->pier__t.loop;
  int rc = pier__loop_usable(loop);
  if (rc) return rc;
  if (pier_timer_active(t)) heap_remove(loop, t);
  t->pier__t.cb = cb;
  t->pier__t.due = loop->now + timeout_ms;
  t->pier__t.repeat = repeat_ms;
  t->pier__t.seq = loop->timer_seq++;
  return heap_insert(loop, t);
}

size_t pier__timers_run(pier_loop *loop) {
  size_t fired = 0;
  /* Timers started by callbacks during this pass wait for the next one. */
  uint64_t limit = loop->timer_seq;
  while (loop->nheap > 0) {
    pier_timer *t = loop->heap[0];
    if (t->pier__t.due > loop->now || t->pier__t.seq >= limit) break;
    heap_remove(loop, t);
    if (t->pier__t.repeat) {
      t->pier__t.due = loop->now + t->pier__t.repeat;
      t->pier__t.seq = loop->timer_seq++;
      if (heap_insert(loop, t) != 0)
        pier_spi_log(PIER_LOG_ERROR, "timer: out of memory re-arming");
    }
    loop->in_callback++;
    t->pier__t.cb(t);
    loop->in_callback--;
    fired++;
  }
  return fired;
}

int pier__timers_timeout(pier_loop *loop) {
  if (loop->nheap == 0) return -1;
  uint64_t due = loop->heap[0]->pier__t.due;
  uint64_t now = pier__hrtime_ms();
  if (due <= now) return 0;
  uint64_t d = due - now;
  return d > 0x7fffffff ? 0x7fffffff : (int)d;
}
