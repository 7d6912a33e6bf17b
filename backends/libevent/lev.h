/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/lev.h - private state of the libevent provider.
 *
 * The provider turns readiness into completions: each socket keeps FIFO
 * queues of pending operations per direction; an operation is tried at
 * once when it is first in its queue, and otherwise (or when it would
 * block) waits for libevent to report the socket ready.
 *
 * Files: provider.c (table, loop, socket calls, dispatch), io.c (recv,
 * send, connect attempts), accept.c (conditional accept), block.c
 * (blocking calls and their cancellation), events.c (network events).
 */
#ifndef PIER_LEV_H
#define PIER_LEV_H

#include <pthread.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "pier.h"
#include "pier/spi.h"

typedef struct lev_waiter lev_waiter;
typedef struct lev_wake lev_wake;
typedef struct lev_netev lev_netev;

typedef struct lev_loop {
  struct event_base *base;
  struct event wake_ev;      /* readable when another thread wakes us */
  struct event timeout_ev;   /* bounds one loop_poll */
  int wake_rfd, wake_wfd;    /* eventfd (same fd twice) or a pipe */
  int wake_pending;          /* atomic: a wake byte is in flight */
  pthread_mutex_t block_lock; /* guards every socket's waiter list, wakes */
  lev_wake *wakes;           /* idle wake descriptors of blocking calls */
} lev_loop;

/* A listener's request between accept(2) and the condition's verdict;
   allocated at its first accept. */
typedef struct lev_request {
  int fd;                    /* a deferred request held at the head, or -1 */
  struct sockaddr_storage addr;
  socklen_t len;
} lev_request;

typedef struct lev_sock {
  pier_socket *s;
  lev_loop *ll;
  int fd;
  struct event ev;           /* one event for both directions (armed) */
  struct event *oobev;       /* urgent-data retry timer, at the first OOB recv */
  unsigned armed;            /* EV_READ / EV_WRITE watched, EV_TIMEOUT (oob) */
  int rready;                /* readable as far as we know: try recv at once */
  pier_opq rq;               /* accept, recv, recvfrom */
  pier_opq oobq;             /* recv with PIER_MSG_OOB */
  pier_opq wq;               /* connect, send, sendto */
  int reset;                 /* the peer reset the connection */
  int connected;             /* has had a peer (EPIPE vs ENOTCONN) */
  int connecting;            /* a connect is in progress */
  /* conditional accept: a deferred request held at the head */
  int held;                  /* deferred; wait for the next pier_accept */
  lev_request *req;          /* listeners only */
  lev_waiter *waiters;       /* blocking calls in progress (block_lock) */
  lev_netev *ne;             /* network event watchers, or NULL */
  int listening, dgram;
} lev_sock;

/* Add ev (watching bit, with timeout tv) or delete it, as want says,
   keeping the record of what is added in *armed. */
static inline void lev_arm(struct event *ev, unsigned *armed, unsigned bit,
                           int want, const struct timeval *tv) {
  if (want && !(*armed & bit)) {
    event_add(ev, tv);
    *armed |= bit;
  } else if (!want && (*armed & bit)) {
    event_del(ev);
    *armed &= ~bit;
  }
}

/* Result of one attempt at an operation. */
enum { LEV_WAIT = 0, LEV_DONE = 1 };

static inline lev_sock *lev_sock_of(pier_socket *s) {
  return (lev_sock *)pier_spi_socket_state(s);
}

/* io.c - each returns LEV_DONE with op->status set, or LEV_WAIT. */
int pier__lev_try_recv(lev_sock *ls, pier_op *op);
int pier__lev_try_send(lev_sock *ls, pier_op *op);
int pier__lev_connect_start(lev_sock *ls, pier_op *op);
int pier__lev_connect_finish(lev_sock *ls, pier_op *op);
/* errno of a failed call on ls, as a PIER_E* code, remembering resets. */
int pier__lev_error(lev_sock *ls, int err);

/* accept.c */
int pier__lev_try_accept(lev_sock *ls, pier_op *op);
void pier__lev_drop_deferred(lev_sock *ls);

/* events.c */
int pier__lev_select_events(pier_socket *s, unsigned selected,
                            unsigned enabled);
void pier__lev_events_free(lev_sock *ls);

/* block.c */
int pier__lev_execute(pier_socket *s, pier_op *op);
int pier__lev_cancel_blocking(pier_socket *s);
/* Close the loop's idle wake descriptors (every call has ended). */
void pier__lev_block_free(lev_loop *ll);

#endif
