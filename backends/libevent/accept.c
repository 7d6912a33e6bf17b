/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/accept.c - conditional accept on POSIX (DESIGN.md
 * section 3.1).  POSIX has no way to decide before the handshake, so the
 * request is accepted from the kernel first and then put to the
 * condition function:
 *   ACCEPT  the descriptor becomes a new pier socket;
 *   REJECT  it is closed with SO_LINGER {1, 0}, so the caller sees a reset,
 *           and the same operation goes on to the next request;
 *   DEFER   it is kept at the head (req->fd), the listener is held
 *           (no accept completes, the read event is disarmed) until the
 *           application calls pier_accept again, which presents it first.
 * Out of descriptors (EMFILE, ENFILE), the callers waiting in the backlog
 * are shed: the loop's reserve descriptor is let go, each caller is
 * accepted and reset, the reserve is taken again.  The accept fails with
 * PIER_EMFILE, and the next one waits for a new caller instead of failing
 * at once on the same backlog (a level-triggered listener would otherwise
 * spin).
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "lev.h"

static void reset_close(int fd) {
  struct linger l;
  l.l_onoff = 1;
  l.l_linger = 0;
  sys_setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  sys_close(fd);
}

void pier__lev_reserve_take(lev_loop *ll) {
  if (ll->reserve_fd < 0)
    ll->reserve_fd = sys_open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void pier__lev_reserve_drop(lev_loop *ll) {
  if (ll->reserve_fd >= 0) sys_close(ll->reserve_fd);
  ll->reserve_fd = -1;
}

/* Reset every caller waiting on the listener, with the descriptor the
   reserve gives back; returns how many. */
static unsigned shed_waiting(lev_sock *ls) {
  unsigned n = 0;
  pier__lev_reserve_drop(ls->ll);
  for (;;) {
#ifdef SOCK_NONBLOCK
    int fd = sys_accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC);
#else
    int fd = sys_accept(ls->fd, NULL, NULL);
#endif
    if (fd >= 0) {
      reset_close(fd);
      n++;
    } else if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO) {
      break;
    }
  }
  pier__lev_reserve_take(ls->ll);
  return n;
}

/* accept(2) failed for lack of descriptors: shed, report, count. */
static int out_of_descriptors(lev_sock *ls, int err) {
  unsigned n = shed_waiting(ls);
  ls->shed += n;
  if (ls->ll->reserve_fd < 0)
    pier_spi_log(PIER_LOG_ERROR, "listener %d: out of descriptors and no "
                 "reserve left to shed with", ls->fd);
  else
    pier_spi_log(PIER_LOG_WARN, "listener %d: out of descriptors: shed %u "
                 "waiting caller(s) (%lu so far)", ls->fd, n, ls->shed);
  return pier_spi_os_error(err);
}

void pier__lev_drop_deferred(lev_sock *ls) {
  if (ls->req) {
    if (ls->req->fd >= 0) reset_close(ls->req->fd);
    pier_spi_free(ls->req);
    ls->req = NULL;
  }
  ls->held = 0;
}

/* The next request: the deferred one, else one from the kernel.
   LEV_DONE with *fd, LEV_WAIT, or a negative error. */
static int next_request(lev_sock *ls, int *fd) {
  lev_request *r = ls->req;
  if (!r) {
    if (!(r = ls->req = pier_spi_malloc(sizeof *r))) return PIER_ENOMEM;
    r->fd = -1;
  }
  if (r->fd >= 0) {
    *fd = r->fd;
    return LEV_DONE;
  }
  for (;;) {
    r->len = sizeof r->addr;
    struct sockaddr *a = (struct sockaddr *)&r->addr;
#ifdef SOCK_NONBLOCK
    int nfd = sys_accept4(ls->fd, a, &r->len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int nfd = sys_accept(ls->fd, a, &r->len);
#endif
    if (nfd >= 0) {
      *fd = nfd;
      return LEV_DONE;
    }
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return LEV_WAIT;
    if (errno == EMFILE || errno == ENFILE)
      return out_of_descriptors(ls, errno);
    return pier__lev_error(ls, errno);
  }
}

/* The condition's verdict on the request fd from caller (len bytes).
   The caller owns fd and the address: the condition function may close
   the listener, which frees ls->req. */
static int decide(pier_op *op, int fd, const struct sockaddr_storage *caller,
                  socklen_t len) {
  if (!op->pier__r.cond) return PIER_CF_ACCEPT;
  struct sockaddr_storage local;
  socklen_t llen = sizeof local;
  memset(&local, 0, sizeof local);
  sys_getsockname(fd, (struct sockaddr *)&local, &llen);
  pier_accept_info info;
  memset(&info, 0, sizeof info);
  info.caller = (const struct sockaddr *)caller;
  info.caller_len = len;
  info.local = (const struct sockaddr *)&local;
  info.local_len = llen;
  int cf = op->pier__r.cond(&info, op->pier__r.cond_ctx);
  if (cf != PIER_CF_ACCEPT && cf != PIER_CF_DEFER && cf != PIER_CF_REJECT) {
    pier_spi_log(PIER_LOG_WARN, "condition function returned %d; rejecting", cf);
    cf = PIER_CF_REJECT;
  }
  return cf;
}

/* Wrap an accepted descriptor as the op's new socket. */
static int take(lev_sock *ls, pier_op *op, int fd) {
#ifndef SOCK_NONBLOCK
  sys_fcntl(fd, F_SETFL, sys_fcntl(fd, F_GETFL) | O_NONBLOCK);
  sys_fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  pier_socket *ns;
  int rc = pier_spi_accepted(ls->s, fd, &ns);
  if (rc) {
    reset_close(fd);
    op->status = rc;
    return LEV_DONE;
  }
  op->accepted = ns;
  op->status = 0;
  return LEV_DONE;
}

static int still_pending(const pier_op *op) {
  return __atomic_load_n(&op->pier__r.state, __ATOMIC_ACQUIRE) ==
         PIER_OPS_PENDING;
}

/*
 * After a condition function, which may have re-entered pier (doc/
 * semantics.md, "Re-entry from a condition function"): LEV_WAIT to go on
 * with its verdict, else what try_accept returns.  The listener closed:
 * the request is reset; op, which the close completed, is not touched
 * again (a blocking op, which no close completes, ends PIER_ECANCELED).
 * op completed meanwhile (cancelled): the verdict is void and the request
 * stays at the head for the next accept.
 */
static int after_condition(lev_sock *ls, pier_op *op, int fd) {
  int pending = still_pending(op);
  if (ls->fd < 0) {
    reset_close(fd);
    op->status = PIER_ECANCELED;
    return pending ? LEV_DONE : LEV_GONE;
  }
  if (pending) return LEV_WAIT;
  ls->req->fd = fd;
  return LEV_GONE;
}

int pier__lev_try_accept(lev_sock *ls, pier_op *op) {
  for (;;) {
    int fd = -1;
    int rc = next_request(ls, &fd);
    if (rc == LEV_WAIT) return LEV_WAIT;
    if (rc < 0) {
      op->status = rc;
      return LEV_DONE;
    }
    /* The request is ours, not the listener's, while it is decided. */
    struct sockaddr_storage caller = ls->req->addr;
    socklen_t clen = ls->req->len;
    ls->req->fd = -1;
    int cf = decide(op, fd, &caller, clen);
    if (op->pier__r.cond && (rc = after_condition(ls, op, fd)) != LEV_WAIT)
      return rc;
    switch (cf) {
    case PIER_CF_ACCEPT:
      return take(ls, op, fd);
    case PIER_CF_DEFER:
      ls->req->fd = fd;
      ls->held = 1;
      op->status = PIER_ETRYAGAIN;
      return LEV_DONE;
    default: /* PIER_CF_REJECT: refuse it and look at the next one */
      reset_close(fd);
      break;
    }
  }
}
