/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/block.c - blocking calls (an operation started with
 * no callback) and pier_cancel_blocking.
 *
 * A blocking call makes the same non-blocking attempts as an overlapped
 * operation and, when one would block, waits in poll() for the socket and
 * for a wake descriptor of its own.  The core cancels calls (pier_close
 * too) by moving the socket's cancel sequence on, which the call reads
 * before each wait (pier_spi_block_canceled); cancel_blocking then writes
 * once to the wake descriptor of every waiter linked on the socket, so a
 * cancel that lands between that check and poll() ends the poll at once.
 * A call links itself before its first attempt, so no cancel can fall
 * between its start and its waits.
 *
 * Wake descriptors (an eventfd on Linux, else a pipe) come from a pool in
 * the loop: one is opened only when the pool is empty, and all are closed
 * by pier_loop_free - a loop keeps one per call that waited at the same
 * time as others, and a blocking call opens nothing.  The loop's
 * block_lock guards the waiter lists and the pool.
 *
 * Accept attempts run under the core lock, as the loop's own accepts do:
 * blocking accepts from several threads and overlapped ones on the same
 * listener take turns on its provider state (accept.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef __linux__
#  include <sys/eventfd.h>
#endif

#include "lev.h"

struct lev_wake {
  lev_wake *next;            /* the loop's pool */
  int rfd, wfd;              /* eventfd (same fd twice) or a pipe */
};

struct lev_waiter {
  lev_waiter *next;
  lev_wake *wake;            /* polled with the socket */
  int signaled;              /* under block_lock: wake has been written to */
};

/* ------------------------------------------------------------------ */
/* wake descriptors                                                    */
/* ------------------------------------------------------------------ */

static int wake_new(lev_wake **out) {
  lev_wake *k = pier_spi_malloc(sizeof *k);
  if (!k) return PIER_ENOMEM;
#ifdef __linux__
  k->rfd = k->wfd = sys_eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (k->rfd >= 0) {
    *out = k;
    return 0;
  }
#endif
  int p[2];
  if (sys_pipe(p) != 0) {
    int rc = pier_spi_os_error(errno);
    pier_spi_free(k);
    return rc;
  }
  for (int i = 0; i < 2; i++) {
    sys_fcntl(p[i], F_SETFD, FD_CLOEXEC);
    sys_fcntl(p[i], F_SETFL, O_NONBLOCK);
  }
  k->rfd = p[0];
  k->wfd = p[1];
  *out = k;
  return 0;
}

static void wake_signal(lev_wake *k) {
  uint64_t one = 1;
  ssize_t r = sys_write(k->wfd, &one, k->wfd == k->rfd ? sizeof one : 1);
  (void)r;
}

static void wake_drain(lev_wake *k) {
  uint64_t buf;
  while (sys_read(k->rfd, &buf, sizeof buf) > 0) {
  }
}

void pier__lev_block_free(lev_loop *ll) {
  while (ll->wakes) {
    lev_wake *k = ll->wakes;
    ll->wakes = k->next;
    sys_close(k->rfd);
    if (k->wfd != k->rfd) sys_close(k->wfd);
    pier_spi_free(k);
  }
}

/* ------------------------------------------------------------------ */
/* waiters                                                             */
/* ------------------------------------------------------------------ */

/* Take a wake descriptor and link w on ls, before the first attempt. */
static int waiter_begin(lev_sock *ls, lev_waiter *w) {
  lev_loop *ll = ls->ll;
  pthread_mutex_lock(&ll->block_lock);
  lev_wake *k = ll->wakes;
  if (k) ll->wakes = k->next;
  pthread_mutex_unlock(&ll->block_lock);
  if (!k) {
    int rc = wake_new(&k);
    if (rc) return rc;
  }
  w->wake = k;
  w->signaled = 0;
  pthread_mutex_lock(&ll->block_lock);
  w->next = ls->waiters;
  ls->waiters = w;
  pthread_mutex_unlock(&ll->block_lock);
  return 0;
}

/* Unlink w and give its wake descriptor back, emptied. */
static void waiter_end(lev_sock *ls, lev_waiter *w) {
  lev_loop *ll = ls->ll;
  pthread_mutex_lock(&ll->block_lock);
  lev_waiter **p = &ls->waiters;
  while (*p != w) p = &(*p)->next;
  *p = w->next;
  int signaled = w->signaled; /* no cancel writes to it from now on */
  pthread_mutex_unlock(&ll->block_lock);
  if (signaled) wake_drain(w->wake);
  pthread_mutex_lock(&ll->block_lock);
  w->wake->next = ll->wakes;
  ll->wakes = w->wake;
  pthread_mutex_unlock(&ll->block_lock);
}

/* Wait until fd has events, or the call is canceled. */
static int wait_ready(lev_sock *ls, lev_waiter *w, short events) {
  for (;;) {
    if (pier_spi_block_canceled(ls->s)) return PIER_ECANCELED;
    struct pollfd p[2] = { { ls->fd, events, 0 }, { w->wake->rfd, POLLIN, 0 } };
    int n = sys_poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return pier_spi_os_error(errno);
    if (p[0].revents & POLLNVAL) return PIER_EBADF;
    if (p[0].revents) return 0;
    if (p[1].revents) wake_drain(w->wake); /* then look at the cancel */
  }
}

/* ------------------------------------------------------------------ */
/* attempts                                                            */
/* ------------------------------------------------------------------ */

static int try_accept(lev_sock *ls, pier_op *op) {
  pier_loop *loop = pier_socket_loop(ls->s);
  pier_spi_lock(loop);
  int rc = pier__lev_try_accept(ls, op);
  pier_spi_unlock(loop);
  return rc;
}

/* One attempt at op; LEV_DONE or LEV_WAIT with the event to wait for. */
static int attempt(lev_sock *ls, pier_op *op, int *started, short *events) {
  switch (op->pier__r.type) {
  case PIER_OP_ACCEPT: *events = POLLIN; return try_accept(ls, op);
  case PIER_OP_RECV:
  case PIER_OP_RECVFROM:
    *events = (op->pier__r.in_flags & PIER_MSG_OOB) ? POLLPRI : POLLIN;
    return pier__lev_try_recv(ls, op);
  case PIER_OP_SEND:
  case PIER_OP_SENDTO: *events = POLLOUT; return pier__lev_try_send(ls, op);
  case PIER_OP_CONNECT:
    *events = POLLOUT;
    if (*started) return pier__lev_connect_finish(ls, op);
    *started = 1;
    if (ls->connecting) {
      op->status = PIER_EALREADY;
      return LEV_DONE;
    }
    return pier__lev_connect_start(ls, op);
  default:
    op->status = PIER_EINVAL;
    return LEV_DONE;
  }
}

int pier__lev_execute(pier_socket *s, pier_op *op) {
  lev_sock *ls = lev_sock_of(s);
  lev_waiter w;
  int wait = !pier_spi_nonblocking(s), started = 0, rc;
  if (wait && (rc = waiter_begin(ls, &w)) != 0) return rc;
  for (;;) {
    short events = 0;
    if (attempt(ls, op, &started, &events) == LEV_DONE) {
      rc = op->status;
      break;
    }
    if (!wait) {
      /* A connect goes on in the background, as in Winsock. */
      rc = PIER_EWOULDBLOCK;
      break;
    }
    if ((rc = wait_ready(ls, &w, events)) != 0) break;
  }
  if (wait) waiter_end(ls, &w);
  if (op->pier__r.type == PIER_OP_CONNECT && rc != PIER_EWOULDBLOCK)
    ls->connecting = 0;
  return rc;
}

int pier__lev_cancel_blocking(pier_socket *s) {
  lev_sock *ls = lev_sock_of(s);
  pthread_mutex_lock(&ls->ll->block_lock);
  for (lev_waiter *w = ls->waiters; w; w = w->next) {
    if (w->signaled) continue;
    w->signaled = 1;
    wake_signal(w->wake);
  }
  pthread_mutex_unlock(&ls->ll->block_lock);
  return 0;
}
