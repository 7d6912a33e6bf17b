/* SPDX-License-Identifier: MIT */
/*
 * src/internal.h - the core's private structures and helpers.  Never
 * included by providers (they see only include/pier.h and pier/spi.h).
 *
 * Section map
 *   1. allocation, logging, errors
 *   2. the loop
 *   3. the socket
 *   4. operations and timers
 *   5. the provider registry
 */
#ifndef PIER_INTERNAL_H
#define PIER_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

#include "pier.h"
#include "pier/spi.h"
#include "thread.h"

/* 1. allocation, logging, errors ------------------------------------ */

void *pier__malloc(size_t n);
void *pier__calloc(size_t count, size_t n);
void *pier__realloc(void *p, size_t n);
void pier__free(void *p);
/* A call refused for a bad argument or state: logs "fn: why" at DEBUG
   through the log hook (formatted only when a hook is set) and returns
   PIER_EINVAL, so each site stays `return pier__bad(__func__, ...)`. */
int pier__bad(const char *fn, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
/* Loops alive in the process; the allocator may change only at zero. */
void pier__process_ref(void);
void pier__process_unref(void);
int pier__process_busy(void);

/* getaddrinfo error -> PIER_E* (os_posix.c / os_win.c). */
int pier__gai_error(int gai);
/* Per-platform process setup (WSAStartup); refcounted by the caller. */
int pier__os_init(void);
void pier__os_cleanup(void);

/* 2. the loop ------------------------------------------------------- */

struct pier__resolver;

/* Something runners wait for (src/lock.c): a condition on the small lock
   and a count of signals; waiting drops the core lock and retakes it as
   any other taker does, so that it interrupts a poll. */
typedef struct pier__event {
  pier__cond cond;
  unsigned seq;              /* atomic: bumped by each signal */
  size_t waiters;            /* under core */
} pier__event;

/*
 * Threading.  Every field below "core" is guarded by the core lock
 * (pier__lock, src/lock.c), which any thread may take; callbacks run
 * without it.  One thread at a time polls the provider, holding the core
 * lock for the whole poll; a thread that wants the lock meanwhile wakes
 * the poll (lock_wanted/polling handshake).  Fields under "cross-thread"
 * use the small `lock`, which is never held while taking the core lock.
 */
struct pier_loop {
  const pier_provider *prov;
  void *prov_state;
  void *data;
  uint64_t now;              /* atomic: written under core */
  unsigned threads;          /* threads that serve pier_loop_run (>= 1) */

  /* core */
  pier__mutex core;
  uintptr_t owner;           /* atomic: marker of the holding thread */
  int depth;                 /* recursion of the holder */
  int lock_wanted;           /* atomic: threads waiting for core */
  int polling;               /* atomic: a thread is inside loop_poll */
  pier__event work;          /* runners wait here while another polls */
  pier__event changed;       /* signalled after each delivered callback */
  size_t nrunners;           /* threads inside pier_loop_run */
  size_t active;             /* callbacks running right now */
  int poller_busy;           /* a runner holds the poll role */
  int helpers_on;            /* pier_loop_run started the extra threads */
  int stop;                  /* atomic; cleared when the last runner leaves */

  /* Delivery is in the order things became ready: every socketless op
     (post, resolve) and every entry of a socket on the ready list takes
     the next ready_seq, and the smaller of the two heads runs first;
     timers found due by a poll rank after what was ready before it. */
  pier_opq done;             /* completed socketless ops (posts, resolves) */
  pier_socket *ready, *ready_tail; /* sockets with completions to deliver */
  uint64_t ready_seq;        /* last sequence number handed out */
  uint64_t timer_mark;       /* ready_seq when the last poll began */
  size_t pending;            /* ops started and not yet delivered */
  size_t nsockets;           /* sockets open or closing */
  pier_socket *closing;      /* sockets whose close callback is due */

  pier_timer **heap;         /* timer min-heap on (due, seq) */
  size_t nheap, capheap;
  uint64_t timer_seq;
  uint64_t timer_limit;      /* timers started from here on wait a poll */
  struct pier__firing *firing; /* timers whose callbacks are running */

  /* cross-thread: under lock */
  pier__mutex lock;
  pier_opq remote;           /* posts and worker completions */
  size_t nremote;
  long refs;
  int closed;

  struct pier__resolver *resolver;
};

/* The core lock (src/lock.c): recursive within a thread. */
void pier__lock(pier_loop *loop);
void pier__unlock(pier_loop *loop);
/* Wait for ev to be signalled (core lock held once; held on return). */
void pier__event_wait(pier_loop *loop, pier__event *ev);
/* Wake every waiter of ev (core lock held). */
void pier__event_signal(pier_loop *loop, pier__event *ev);
/* 1 if this thread holds loop's core lock (inside a slot, or a condition
   function a slot called). */
int pier__lock_held(const pier_loop *loop);
/* 1 if this thread is inside pier_loop_run(loop). */
int pier__running_here(const pier_loop *loop);
/* This thread starts (PIER_EBUSY if nested too deep) / stops running a
   loop. */
int pier__running_push(pier_loop *loop);
void pier__running_pop(void);

/* Queue op as completed from another thread and wake the loop. */
void pier__loop_remote_complete(pier_loop *loop, pier_op *op, int status);
/* Queue a completed op for its callback (core lock held). */
void pier__enqueue_done(pier_loop *loop, pier_op *op);
/* Account for an op that is now pending on the loop. */
void pier__loop_op_started(pier_loop *loop, pier_op *op);
/* Undo pier__loop_op_started for an op the provider refused. */
void pier__loop_op_unstarted(pier_loop *loop, pier_op *op);
/* Check a loop accepts new work: 0, PIER_EINVAL or PIER_ESHUTDOWN. */
int pier__loop_usable(const char *fn, pier_loop *loop);
/* Move ops completed by other threads onto the done queues (core held). */
void pier__loop_drain_remote(pier_loop *loop);
/* 1 while anything keeps the loop alive (core held). */
int pier__loop_alive(pier_loop *loop);

/* timers (timer.c) */
/* Fire one due timer started before timer_limit, the core lock released
   around its callback; returns 1 if one fired. */
int pier__timer_fire_one(pier_loop *loop);
/* Milliseconds until the next timer, or -1 if none. */
int pier__timers_timeout(pier_loop *loop);

/* resolver (resolve.c) */
void pier__resolver_free(pier_loop *loop);
int pier__resolve_cancel(pier_op *op);

/* 3. the socket ----------------------------------------------------- */

enum {
  PIER__S_LISTENING = 1u << 0,
  PIER__S_CLOSING = 1u << 1,
  PIER__S_NONBLOCK = 1u << 2,
  PIER__S_PROV_CLOSED = 1u << 3,
  PIER__S_PROV_CLOSING = 1u << 4,    /* provider close() has been called */
  PIER__S_READY = 1u << 5,           /* on the loop's ready list */
  PIER__S_BUSY = 1u << 6             /* a callback of it is running */
};

struct pier_socket {
  pier_loop *loop;
  const pier_provider *prov;
  const pier_protocol_info *proto;
  pier_os_socket handle;
  void *data;
  void *state;               /* provider private, prov->socket_size bytes */
  unsigned flags;            /* PIER__S_* (atomic: read without the lock) */
  size_t pending;            /* ops started and not yet delivered */
  pier_opq done;             /* completed, callbacks not yet run */
  pier_socket *next_ready;   /* the loop's ready list */
  uint64_t ready_seq;        /* when it joined the ready list */
  int blocked;               /* blocking calls in progress (atomic; socket.c) */
  unsigned cancel_seq;       /* pier_cancel_blocking/pier_close count (atomic) */
  pier_close_cb close_cb;
  pier_socket *next_closing;
  pier_qos qos;              /* last pier_set_qos, inherited by accepts */
  int has_qos;
  int preposted, zero_read;  /* PIER_SO_PREPOSTED_ACCEPTS, PIER_SO_ZERO_READ */
  struct pier__netev *netev; /* pier_event_select state, or NULL */
  pier_socket *lower;        /* layered sockets: the socket below */
};

/* network events (netevents.c), core lock held */
typedef int (*pier_select_fn)(pier_socket *s, unsigned selected,
                              unsigned enabled);
/* The application called ev's re-enabling function. */
void pier__netev_reenable(pier_socket *s, unsigned ev);
/* A connect on s finished with status. */
void pier__netev_connected(pier_socket *s, int status);
void pier__netev_free(pier_socket *s);
/* An accepted socket takes its listener's selection, as in Winsock; what
   it records is held until pier__netev_release, when the application has
   been handed the socket (its accept callback returned, or its blocking
   accept), so that no event callback comes first. */
void pier__netev_inherit(pier_socket *listener, pier_socket *s);
void pier__netev_release(pier_socket *s);

/* Allocate a socket object (and its provider state) and call open();
   lower is the socket below a layer's (NULL for a base provider). */
int pier__socket_create(pier_loop *loop, const pier_provider *prov,
                        const pier_protocol_info *proto, pier_os_socket h,
                        pier_socket *lower, unsigned flags, pier_socket **out);
/* Run a blocking-form call on a layered socket as an overlapped one and
   wait for it (op.c). */
int pier__layer_blocking(pier_socket *s, pier_op *op);
/* Marks a send that pier_disconnect started on a base provider: when it
   completes the core shuts the socket's sends down (op.c). */
extern char pier__disconnect_mark;
/* Run the close callback of one socket whose operations have all been
   delivered, the core lock released around it; returns 1 if one ran. */
int pier__socket_reap_one(pier_loop *loop);
/* 1 if pier__socket_reap_one has work (core held). */
int pier__sockets_reapable(pier_loop *loop);
/* Atomic flag helpers. */
#define PIER__SFLAGS(s) pier__load(&(s)->flags)
#define PIER__SSET(s, f) pier__fetch_or(&(s)->flags, (unsigned)(f))
#define PIER__SCLEAR(s, f) pier__fetch_and(&(s)->flags, ~(unsigned)(f))
/* The provider's option slots, under the core lock (sockopt.c). */
int pier__prov_setsockopt(pier_socket *s, int level, int name, const void *v,
                          size_t len);
int pier__prov_getsockopt(pier_socket *s, int level, int name, void *v,
                          size_t *len);
/* A socket's QoS as it was before a pier_connect applied one, so that a
   connect that cannot start leaves it unchanged (qos.c). */
typedef struct pier__qos_saved {
  pier_qos os;               /* what the OS had (pier_get_qos) */
  pier_qos qos;              /* s->qos */
  int has_qos;
} pier__qos_saved;
int pier__qos_save(pier_socket *s, pier__qos_saved *out);
void pier__qos_restore(pier_socket *s, const pier__qos_saved *saved);
/* Give an accepted socket the listener's QoS, if it has one (qos.c). */
void pier__qos_inherit(pier_socket *listener, pier_socket *s);
/* 0 if addr/len is a whole address of its family, else PIER_EINVAL
   (logged as a bad argument of fn, as are the two checks below). */
int pier__addr_check(const char *fn, const struct sockaddr *addr, size_t len);
/* A blocking call in progress in this thread (socket.c): canceled once
   s->cancel_seq has moved on from seq. */
typedef struct pier__block {
  pier_socket *s;
  unsigned seq;
  struct pier__block *outer; /* the call this thread made it from, or NULL */
} pier__block;
/* Bracket a blocking call, before its first attempt: a close waits for
   the last one to leave.  enter: 0, or PIER_EBADF if s is closing. */
int pier__socket_block_enter(pier_socket *s, pier__block *b);
void pier__socket_block_leave(pier_socket *s, pier__block *b);
/* pier_cancel_blocking: cancel every blocking call in progress on s. */
int pier__socket_cancel_blocking(pier_socket *s);
/* 0 if s can take a new call, else PIER_EINVAL or PIER_EBADF. */
int pier__socket_usable(const char *fn, const pier_socket *s);

/* 4. operations ------------------------------------------------------ */

/* Run one completion callback (a socketless op, or the next op of the
   first ready socket, whichever became ready first), the core lock
   released around it; returns 1 if one ran.  With before_poll, only a
   completion that became ready before the last poll began is taken (the
   timers that poll found due rank after those, before the rest). */
int pier__op_deliver_one(pier_loop *loop, int before_poll);
/* 1 if a completion is waiting (core held). */
int pier__op_ready(const pier_loop *loop);

/* 5. the provider registry ----------------------------------------- */

/* The first of the socket slots every provider and layer must fill (open,
   close, submit, cancel) that p leaves NULL, or NULL.  The other socket
   slots are optional: a NULL one makes its call answer PIER_EOPNOTSUPP. */
const char *pier__missing_socket_slot(const pier_provider *p);

/* The provider to use: by name, else $PIER_BACKEND, else the first fit. */
int pier__provider_select(const char *name, const pier_provider **out);

/* Catalog entry for an OS family/type, or NULL. */
const pier_protocol_info *pier__protocol_for(int family, int socktype);

#define PIER__CONTAINER(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
