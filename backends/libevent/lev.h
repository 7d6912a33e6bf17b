/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/lev.h - private state of the libevent provider.
 *
 * The provider turns readiness into completions: each socket keeps FIFO
 * queues of pending operations per direction; an operation is tried at
 * once when it is first in its queue, and otherwise (or when it would
 * block) waits for libevent to report the socket ready.
 *
 * Readiness, the way Go's netpoller keeps it: each socket is registered
 * once, at open, for its whole life, edge-triggered for both directions
 * (EV_ET | EV_PERSIST), so steady state makes no epoll_ctl.  An edge sets
 * rready; a receive or accept that meets EAGAIN clears it, and the next
 * edge sets it again.  Edges are never lost while the socket is
 * registered, whoever reads the descriptor (a blocking call, read() on
 * the OS handle, another process sharing it): rready can only be wrong
 * by being set when nothing is there, which costs one EAGAIN.  Only the
 * loop's own attempts (under the core lock) change it - never a blocking
 * call, which may race with an edge.  Sends are tried at once whenever
 * nothing is queued before them.  Urgent data (events.c) is watched on
 * Linux through a second epoll set for EPOLLPRI, which libevent 2.1
 * cannot ask for.
 *
 * Files: provider.c (table, loop, socket calls, dispatch), io.c (recv,
 * send, connect attempts), accept.c (conditional accept), block.c
 * (blocking calls and their cancellation), events.c (network events),
 * syscalls.c (the replaceable system call table).
 */
#ifndef PIER_LEV_H
#define PIER_LEV_H

#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

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
  struct event timeout_ev;   /* bounds loop_poll; left set between polls */
  int64_t timeout_due;       /* when timeout_ev fires (ms, monotonic), or 0 */
  int wake_rfd, wake_wfd;    /* eventfd (same fd twice) or a pipe */
  int wake_pending;          /* atomic: a wake byte is in flight */
  pthread_mutex_t block_lock; /* guards every socket's waiter list, wakes */
  lev_wake *wakes;           /* idle wake descriptors of blocking calls */
  int reserve_fd;            /* held back for shedding (accept.c), or -1 */
#ifdef __linux__
  int pri_fd;                /* epoll set of sockets watched for urgent
                                data (EPOLLPRI), made on first use, or -1 */
  struct event pri_ev;       /* readable when one of them has some */
#endif
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
  struct event ev;           /* both directions, edge-triggered, added
                                from open to close */
  int rready;                /* maybe readable: try recv/accept at once */
#ifdef __linux__
  int urgent;                /* in the loop's pri_fd set (events.c) */
#else
  struct event *urgent;      /* urgent-data polling timer (events.c) */
#endif
  pier_opq rq;               /* accept, recv, recvfrom */
  pier_opq oobq;             /* recv with PIER_MSG_OOB */
  pier_opq wq;               /* connect, send, sendto */
  int reset;                 /* the peer reset the connection */
  int connected;             /* has had a peer (EPIPE vs ENOTCONN) */
  int connecting;            /* a connect is in progress */
  /* conditional accept: a deferred request held at the head */
  int held;                  /* deferred; wait for the next pier_accept */
  lev_request *req;          /* listeners only */
  unsigned long shed;        /* callers shed out of descriptors */
  lev_waiter *waiters;       /* blocking calls in progress (block_lock) */
  lev_netev *ne;             /* network event watchers, or NULL */
  int listening, dgram;
} lev_sock;

/*
 * syscalls.c - the provider's system calls go through one table that
 * pier_spi_syscall_set() may change (pier/spi.h section 5): sys_NAME is
 * the entry NAME, called like the OS's NAME.  Every system call of the
 * provider goes through it.
 */
enum {
  LEV_SYS_SOCKET, LEV_SYS_CLOSE, LEV_SYS_BIND, LEV_SYS_LISTEN,
  LEV_SYS_SHUTDOWN, LEV_SYS_CONNECT, LEV_SYS_RECV, LEV_SYS_SEND,
  LEV_SYS_RECVMSG, LEV_SYS_SENDMSG, LEV_SYS_GETSOCKOPT, LEV_SYS_SETSOCKOPT,
  LEV_SYS_GETSOCKNAME, LEV_SYS_GETPEERNAME, LEV_SYS_FCNTL, LEV_SYS_IOCTL,
  LEV_SYS_READ, LEV_SYS_WRITE, LEV_SYS_PIPE, LEV_SYS_ACCEPT, LEV_SYS_OPEN,
  LEV_SYS_POLL,
#ifdef SOCK_NONBLOCK
  LEV_SYS_ACCEPT4,
#endif
#ifdef __linux__
  LEV_SYS_EVENTFD,
#endif
  LEV_SYS_COUNT
};
typedef struct lev_syscall {
  const char *name;          /* as pier_spi_syscall_set() knows it */
  pier_syscall_fn os;        /* the OS's own */
  pier_syscall_fn cur;       /* the one called (atomic) */
} lev_syscall;
extern lev_syscall pier__lev_syscalls[LEV_SYS_COUNT];

static inline pier_syscall_fn lev_sys(int i) {
  return __atomic_load_n(&pier__lev_syscalls[i].cur, __ATOMIC_ACQUIRE);
}

#define sys_socket ((int (*)(int, int, int))lev_sys(LEV_SYS_SOCKET))
#define sys_close ((int (*)(int))lev_sys(LEV_SYS_CLOSE))
#define sys_bind \
  ((int (*)(int, const struct sockaddr *, socklen_t))lev_sys(LEV_SYS_BIND))
#define sys_listen ((int (*)(int, int))lev_sys(LEV_SYS_LISTEN))
#define sys_shutdown ((int (*)(int, int))lev_sys(LEV_SYS_SHUTDOWN))
#define sys_connect \
  ((int (*)(int, const struct sockaddr *, socklen_t))lev_sys(LEV_SYS_CONNECT))
#define sys_recv ((ssize_t (*)(int, void *, size_t, int))lev_sys(LEV_SYS_RECV))
#define sys_send \
  ((ssize_t (*)(int, const void *, size_t, int))lev_sys(LEV_SYS_SEND))
#define sys_recvmsg \
  ((ssize_t (*)(int, struct msghdr *, int))lev_sys(LEV_SYS_RECVMSG))
#define sys_sendmsg \
  ((ssize_t (*)(int, const struct msghdr *, int))lev_sys(LEV_SYS_SENDMSG))
#define sys_getsockopt \
  ((int (*)(int, int, int, void *, socklen_t *))lev_sys(LEV_SYS_GETSOCKOPT))
#define sys_setsockopt                                              \
  ((int (*)(int, int, int, const void *, socklen_t))lev_sys(        \
      LEV_SYS_SETSOCKOPT))
#define sys_getsockname                                             \
  ((int (*)(int, struct sockaddr *, socklen_t *))lev_sys(           \
      LEV_SYS_GETSOCKNAME))
#define sys_getpeername                                             \
  ((int (*)(int, struct sockaddr *, socklen_t *))lev_sys(           \
      LEV_SYS_GETPEERNAME))
#define sys_fcntl ((int (*)(int, int, ...))lev_sys(LEV_SYS_FCNTL))
#define sys_ioctl ((int (*)(int, unsigned long, ...))lev_sys(LEV_SYS_IOCTL))
#define sys_read ((ssize_t (*)(int, void *, size_t))lev_sys(LEV_SYS_READ))
#define sys_write \
  ((ssize_t (*)(int, const void *, size_t))lev_sys(LEV_SYS_WRITE))
#define sys_pipe ((int (*)(int[2]))lev_sys(LEV_SYS_PIPE))
#define sys_eventfd ((int (*)(unsigned int, int))lev_sys(LEV_SYS_EVENTFD))
#define sys_accept \
  ((int (*)(int, struct sockaddr *, socklen_t *))lev_sys(LEV_SYS_ACCEPT))
#define sys_accept4                                                 \
  ((int (*)(int, struct sockaddr *, socklen_t *, int))lev_sys(      \
      LEV_SYS_ACCEPT4))
#define sys_open ((int (*)(const char *, int, ...))lev_sys(LEV_SYS_OPEN))
#define sys_poll ((int (*)(struct pollfd *, nfds_t, int))lev_sys(LEV_SYS_POLL))

/* Result of one attempt at an operation.  LEV_GONE: a condition function
   completed the op itself (cancel, close); leave it alone. */
enum { LEV_WAIT = 0, LEV_DONE = 1, LEV_GONE = 2 };

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
/* The loop's reserve descriptor: taken at loop init and after each shed. */
void pier__lev_reserve_take(lev_loop *ll);
void pier__lev_reserve_drop(lev_loop *ll);

/* provider.c: urgent data may have arrived; run the OOB receives. */
void pier__lev_urgent_ops(lev_sock *ls);

/* events.c */
int pier__lev_select_events(pier_socket *s, unsigned selected,
                            unsigned enabled);
void pier__lev_events_free(lev_sock *ls);
/* An edge (EV_READ / EV_WRITE) of the socket's event, for its watchers. */
void pier__lev_events_edge(lev_sock *ls, short what);
/* Watch ls for urgent data (for its life), calling pier__lev_urgent_ops
   and the OOB watcher when some arrives; 0 or a PIER_E* code. */
int pier__lev_urgent_watch(lev_sock *ls);
/* Stop watching ls (before its descriptor is closed). */
void pier__lev_urgent_unwatch(lev_sock *ls);
/* Release the loop's urgent-data watching. */
void pier__lev_urgent_free(lev_loop *ll);

/* block.c */
int pier__lev_execute(pier_socket *s, pier_op *op);
int pier__lev_cancel_blocking(pier_socket *s);
/* Close the loop's idle wake descriptors (every call has ended). */
void pier__lev_block_free(lev_loop *ll);

#endif
