/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/block.c - blocking calls (an operation started with
 * no callback) and pier_cancel_blocking.
 *
 * A blocking call makes the same non-blocking attempts as an overlapped
 * operation and, when one would block, waits in poll() for the socket and
 * for a wake-up pipe of its own.  pier_cancel_blocking() marks every
 * registered waiter canceled and writes to its pipe.  The waiter list is
 * guarded by the loop's block_lock since cancel comes from other threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "lev.h"

struct lev_waiter {
  lev_waiter *next;
  int fds[2];   /* fds[0] is polled, fds[1] written by cancel */
  int canceled; /* under block_lock */
};

static int waiter_open(lev_waiter *w) {
  w->next = NULL;
  w->canceled = 0;
  if (pipe(w->fds) != 0) return pier_spi_os_error(errno);
  for (int i = 0; i < 2; i++) {
    fcntl(w->fds[i], F_SETFD, FD_CLOEXEC);
    fcntl(w->fds[i], F_SETFL, O_NONBLOCK);
  }
  return 0;
}

static void waiter_close(lev_waiter *w) {
  close(w->fds[0]);
  close(w->fds[1]);
}

static void waiter_link(lev_sock *ls, lev_waiter *w, int add) {
  pthread_mutex_lock(&ls->ll->block_lock);
  if (add) {
    w->next = ls->waiters;
    ls->waiters = w;
  } else {
    lev_waiter **p = &ls->waiters;
    while (*p && *p != w) p = &(*p)->next;
    if (*p) *p = w->next;
  }
  pthread_mutex_unlock(&ls->ll->block_lock);
}

/* Wait until fd has events, or the call is canceled. */
static int wait_ready(lev_sock *ls, lev_waiter *w, short events) {
  for (;;) {
    struct pollfd p[2] = { { ls->fd, events, 0 }, { w->fds[0], POLLIN, 0 } };
    int n = poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return pier_spi_os_error(errno);
    pthread_mutex_lock(&ls->ll->block_lock);
    int canceled = w->canceled;
    pthread_mutex_unlock(&ls->ll->block_lock);
    if (canceled) return PIER_ECANCELED;
    if (p[0].revents & POLLNVAL) return PIER_EBADF;
    if (p[0].revents) return 0;
  }
}

/* One attempt at op; LEV_DONE or LEV_WAIT with the event to wait for. */
static int attempt(lev_sock *ls, pier_op *op, int *started, short *events) {
  switch (op->pier__r.type) {
  case PIER_OP_ACCEPT: *events = POLLIN; return pier__lev_try_accept(ls, op);
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
  int have_waiter = 0, started = 0, rc;
  for (;;) {
    short events = 0;
    if (attempt(ls, op, &started, &events) == LEV_DONE) {
      rc = op->status;
      break;
    }
    if (pier_spi_nonblocking(s)) {
      /* A connect goes on in the background, as in Winsock. */
      rc = PIER_EWOULDBLOCK;
      break;
    }
    if (!have_waiter) {
      if ((rc = waiter_open(&w)) != 0) break;
      waiter_link(ls, &w, 1);
      have_waiter = 1;
    }
    if ((rc = wait_ready(ls, &w, events)) != 0) break;
  }
  if (have_waiter) {
    waiter_link(ls, &w, 0);
    waiter_close(&w);
  }
  if (op->pier__r.type == PIER_OP_CONNECT && rc != PIER_EWOULDBLOCK)
    ls->connecting = 0;
  return rc;
}

int pier__lev_cancel_blocking(pier_socket *s) {
  lev_sock *ls = lev_sock_of(s);
  int found = 0;
  pthread_mutex_lock(&ls->ll->block_lock);
  for (lev_waiter *w = ls->waiters; w; w = w->next) {
    w->canceled = 1;
    ssize_t r = write(w->fds[1], "c", 1);
    (void)r;
    found = 1;
  }
  pthread_mutex_unlock(&ls->ll->block_lock);
  return found ? 0 : PIER_ENOENT;
}
