/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/provider.c - the POSIX base provider on libevent's
 * event_base: its table, the loop (poll, wake), socket calls, and the
 * dispatch that turns readiness into completions.
 *
 * Section map
 *   1. loop: init, free, poll, wake
 *   2. dispatch: queues, readiness flags, edges
 *   3. operations: submit, cancel
 *   4. sockets: open, close, bind, listen, shutdown, names, options
 *   5. the provider table
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#  include <sys/eventfd.h>
#endif

#include "lev.h"

/* ------------------------------------------------------------------ */
/* 1. loop                                                             */
/* ------------------------------------------------------------------ */

static lev_loop *lev_loop_of(pier_loop *loop) {
  return (lev_loop *)pier_spi_loop_state(loop);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  lev_loop *ll = arg;
  char buf[64];
  while (sys_read(fd, buf, sizeof buf) > 0) {
  }
  /* Cleared after draining: a waker that saw the flag set is seen by the
     core's checks that follow this poll. */
  __atomic_store_n(&ll->wake_pending, 0, __ATOMIC_RELEASE);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  lev_loop *ll = arg;
  (void)fd;
  (void)what;
  ll->timeout_due = 0;
}

static int wake_open(lev_loop *ll) {
#ifdef __linux__
  int fd = sys_eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd >= 0) {
    ll->wake_rfd = ll->wake_wfd = fd;
    return 0;
  }
#endif
  int p[2];
  if (sys_pipe(p) != 0) return pier_spi_os_error(errno);
  for (int i = 0; i < 2; i++) {
    sys_fcntl(p[i], F_SETFD, FD_CLOEXEC);
    sys_fcntl(p[i], F_SETFL, O_NONBLOCK);
  }
  ll->wake_rfd = p[0];
  ll->wake_wfd = p[1];
  return 0;
}

static void wake_close(lev_loop *ll) {
  sys_close(ll->wake_rfd);
  if (ll->wake_wfd != ll->wake_rfd) sys_close(ll->wake_wfd);
}

static int lev_loop_init(pier_loop *loop) {
  lev_loop *ll = lev_loop_of(loop);
  struct event_config *cfg = event_config_new();
  if (!cfg) return PIER_ENOMEM;
  /* Every use of the base is under the loop's core lock (pier/spi.h). */
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  /* Sockets are registered edge-triggered (lev.h): epoll or kqueue, never
     a level-only method (poll, select), where a writable socket would
     wake every poll - whatever EVENT_NOEPOLL and the like say. */
  event_config_require_features(cfg, EV_FEATURE_ET);
  event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV);
  ll->base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (!ll->base) return PIER_ENOMEM;
  int rc = wake_open(ll);
  if (rc) {
    event_base_free(ll->base);
    return rc;
  }
  if (pthread_mutex_init(&ll->block_lock, NULL) != 0) {
    wake_close(ll);
    event_base_free(ll->base);
    return PIER_ENOMEM;
  }
  event_assign(&ll->wake_ev, ll->base, ll->wake_rfd, EV_READ | EV_PERSIST,
               on_wake, ll);
  event_add(&ll->wake_ev, NULL);
  evtimer_assign(&ll->timeout_ev, ll->base, on_timeout, ll);
  ll->timeout_due = 0;
  ll->reserve_fd = -1;
#ifdef __linux__
  ll->pri_fd = -1;
#endif
  pier__lev_reserve_take(ll);
  return 0;
}

static void lev_loop_free(pier_loop *loop) {
  lev_loop *ll = lev_loop_of(loop);
  event_del(&ll->wake_ev);
  event_del(&ll->timeout_ev);
  pier__lev_urgent_free(ll);
  event_base_free(ll->base);
  wake_close(ll);
  pier__lev_reserve_drop(ll);
  pier__lev_block_free(ll);
  pthread_mutex_destroy(&ll->block_lock);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Make sure the poll returns within timeout_ms.  The timer stays set
 * between polls and is moved only when this poll must end sooner than it
 * fires; a timer that fires earlier than needed ends the poll early, and
 * the core polls again for the rest (pier's timers, not this one, say
 * when callbacks run).  So a loop whose next deadline does not change
 * adds no libevent timer per poll.
 */
static void bound_poll(lev_loop *ll, int timeout_ms) {
  int64_t due = now_ms() + timeout_ms;
  if (ll->timeout_due && ll->timeout_due <= due) return;
  struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
  evtimer_add(&ll->timeout_ev, &tv);
  ll->timeout_due = due;
}

static int lev_loop_poll(pier_loop *loop, int timeout_ms) {
  lev_loop *ll = lev_loop_of(loop);
  int flags = EVLOOP_ONCE;
  if (timeout_ms == 0) flags = EVLOOP_NONBLOCK;
  else if (timeout_ms > 0) bound_poll(ll, timeout_ms);
  int rc = event_base_loop(ll->base, flags);
  return rc < 0 ? PIER_EIO : 0;
}

static void lev_loop_wake(pier_loop *loop) {
  lev_loop *ll = lev_loop_of(loop);
  if (__atomic_exchange_n(&ll->wake_pending, 1, __ATOMIC_ACQ_REL)) return;
  uint64_t one = 1;
  ssize_t r =
      sys_write(ll->wake_wfd, &one, ll->wake_wfd == ll->wake_rfd ? 8 : 1);
  (void)r;
}

/* ------------------------------------------------------------------ */
/* 2. dispatch                                                         */
/* ------------------------------------------------------------------ */

static int is_read(const pier_op *op) {
  int t = op->pier__r.type;
  return t == PIER_OP_ACCEPT || t == PIER_OP_RECV || t == PIER_OP_RECVFROM;
}

static pier_opq *queue_of(lev_sock *ls, const pier_op *op) {
  if (!is_read(op)) return &ls->wq;
  return (op->pier__r.in_flags & PIER_MSG_OOB) ? &ls->oobq : &ls->rq;
}

static int attempt_op(lev_sock *ls, pier_op *op) {
  switch (op->pier__r.type) {
  case PIER_OP_ACCEPT: return pier__lev_try_accept(ls, op);
  case PIER_OP_RECV:
  case PIER_OP_RECVFROM: return pier__lev_try_recv(ls, op);
  case PIER_OP_SEND:
  case PIER_OP_SENDTO: return pier__lev_try_send(ls, op);
  case PIER_OP_CONNECT: return pier__lev_connect_finish(ls, op);
  default:
    op->status = PIER_EINVAL;
    return LEV_DONE;
  }
}

/* Is every system call the OS's own?  A replaced one (a fault layer, a
   test) may say EAGAIN of a socket that is ready, after which no edge
   comes: its answers are checked with poll(). */
static int os_calls(void) {
  for (int i = 0; i < LEV_SYS_COUNT; i++)
    if (lev_sys(i) != pier__lev_syscalls[i].os) return 0;
  return 1;
}

/* op waits for an edge (what) that may never come: if the socket is
   ready after all, run the queue again from the loop. */
static void recheck(lev_sock *ls, short what) {
  struct pollfd p = { ls->fd, what == EV_READ ? POLLIN : POLLOUT, 0 };
  if (poll(&p, 1, 0) == 1) event_active(&ls->ev, what, 1);
}

/* The listener shed its backlog out of descriptors: the next accept waits
   for a new caller (accept(2) says EMFILE at once, backlog or not). */
static int shed(const pier_op *op) {
  return op->pier__r.type == PIER_OP_ACCEPT && op->status == PIER_EMFILE;
}

/* One attempt at op, the head of q: a receive or accept that would block
   has found the socket empty, so it waits for the next edge. */
static int attempt(lev_sock *ls, pier_opq *q, pier_op *op) {
  int r = attempt_op(ls, op);
  if (q == &ls->rq && (r == LEV_WAIT || (r == LEV_DONE && shed(op))))
    ls->rready = 0;
  if (r == LEV_WAIT && q != &ls->oobq && !os_calls())
    recheck(ls, q == &ls->rq ? EV_READ : EV_WRITE);
  return r;
}

/* Complete the ops at the head of q for as long as they can finish. */
static void run_queue(lev_sock *ls, pier_opq *q) {
  pier_op *op;
  while ((op = q->head) != NULL) {
    if (op->pier__r.type == PIER_OP_ACCEPT && ls->held) break;
    if (q == &ls->rq && !ls->rready) break;
    int r = attempt(ls, q, op);
    if (r == LEV_WAIT) break;
    if (r == LEV_GONE) continue;
    pier_opq_remove(q, op);
    pier_spi_complete(op, op->status);
  }
}

void pier__lev_urgent_ops(lev_sock *ls) { run_queue(ls, &ls->oobq); }

/*
 * An edge: the socket has become readable or writable (or hung up, which
 * libevent reports as both), or lev_submit has activated it.  A condition
 * function run by an accept may close the socket (fd -1).
 */
static void on_io(evutil_socket_t fd, short what, void *arg) {
  lev_sock *ls = arg;
  (void)fd;
  if (what & EV_READ) {
    ls->rready = 1;
    run_queue(ls, &ls->rq);
  }
  if ((what & EV_WRITE) && ls->fd >= 0) run_queue(ls, &ls->wq);
  if (ls->ne && ls->fd >= 0) pier__lev_events_edge(ls, what);
}

/* ------------------------------------------------------------------ */
/* 3. operations                                                       */
/* ------------------------------------------------------------------ */

/* An accept: the loop runs it (the condition function never runs inside
   pier_accept itself) when a request may be waiting - a deferred one, or
   one the socket's edge announced. */
static void submit_accept(lev_sock *ls, pier_op *op) {
  /* The application accepts again: release a held (deferred) request. */
  ls->held = 0;
  pier_opq_push(&ls->rq, op);
  if (ls->req && ls->req->fd >= 0) ls->rready = 1;
  if (ls->rready) event_active(&ls->ev, EV_READ, 1);
}

static int lev_submit(pier_socket *s, pier_op *op) {
  lev_sock *ls = lev_sock_of(s);
  pier_opq *q = queue_of(ls, op);
  switch (op->pier__r.type) {
  case PIER_OP_CONNECT:
    if (ls->connecting) return PIER_EALREADY;
    if (pier__lev_connect_start(ls, op) == LEV_DONE) {
      pier_spi_complete(op, op->status);
      return 0;
    }
    pier_opq_push(q, op);
    return 0;
  case PIER_OP_ACCEPT:
    submit_accept(ls, op);
    return 0;
  default:
    if (q == &ls->oobq) {
      int rc = pier__lev_urgent_watch(ls);
      if (rc) return rc;
    }
    /* First in its queue: try at once (a receive only while the socket
       may hold data). */
    if (pier_opq_empty(q) && (q != &ls->rq || ls->rready) &&
        attempt(ls, q, op) == LEV_DONE) {
      pier_spi_complete(op, op->status);
      return 0;
    }
    pier_opq_push(q, op);
    return 0;
  }
}

static int lev_cancel(pier_socket *s, pier_op *op) {
  lev_sock *ls = lev_sock_of(s);
  pier_opq *q = queue_of(ls, op);
  pier_op *it = q->head;
  while (it && it != op) it = it->pier__r.next;
  if (!it) return PIER_ENOENT;
  pier_opq_remove(q, op);
  if (op->pier__r.type == PIER_OP_CONNECT) ls->connecting = 0;
  op->bytes = op->pier__r.progress;
  pier_spi_complete(op, PIER_ECANCELED);
  return 0;
}

static void cancel_all(pier_opq *q) {
  pier_op *op;
  while ((op = pier_opq_pop(q)) != NULL) {
    op->bytes = op->pier__r.progress;
    pier_spi_complete(op, PIER_ECANCELED);
  }
}

/* ------------------------------------------------------------------ */
/* 4. sockets                                                          */
/* ------------------------------------------------------------------ */

static int lev_open(pier_socket *s, const pier_protocol_info *proto,
                    pier_os_socket h) {
  lev_sock *ls = lev_sock_of(s);
  lev_loop *ll = lev_loop_of(pier_socket_loop(s));
  int fd = h;
  if (fd < 0) {
#ifdef SOCK_NONBLOCK
    fd = sys_socket(proto->family,
                    proto->socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    proto->protocol);
#else
    fd = sys_socket(proto->family, proto->socktype, proto->protocol);
#endif
    if (fd < 0) return pier_spi_os_error(errno);
  }
  /* The OS socket is always non-blocking; pier's blocking mode is ours. */
  int fl = sys_fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) sys_fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  sys_fcntl(fd, F_SETFD, FD_CLOEXEC);
#ifdef SO_NOSIGPIPE
  int one = 1;
  sys_setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  ls->s = s;
  ls->ll = ll;
  ls->fd = fd;
  ls->rready = 1;
  ls->dgram = proto->socktype == SOCK_DGRAM;
  if (h >= 0) { /* accepted or adopted: connected if it has a peer */
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    ls->connected =
        sys_getpeername(fd, (struct sockaddr *)&peer, &plen) == 0;
    int on = 0;
    socklen_t olen = sizeof on;
    ls->listening =
        sys_getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) == 0 && on;
  }
  /* Registered once, for the socket's life (lev.h). */
  event_assign(&ls->ev, ll->base, fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST,
               on_io, ls);
  if (event_add(&ls->ev, NULL) != 0) {
    int rc = errno ? pier_spi_os_error(errno) : PIER_EIO;
    if (h < 0) sys_close(fd);
    ls->fd = -1;
    return rc;
  }
  pier_spi_set_handle(s, fd);
  return 0;
}

static void lev_close(pier_socket *s) {
  lev_sock *ls = lev_sock_of(s);
  cancel_all(&ls->rq);
  cancel_all(&ls->oobq);
  cancel_all(&ls->wq);
  pier__lev_urgent_unwatch(ls);
  event_del(&ls->ev); /* also drops an event_active() still queued */
  pier__lev_events_free(ls);
  pier__lev_drop_deferred(ls);
  sys_close(ls->fd);
  ls->fd = -1;
  pier_spi_closed(s);
}

static int os_rc(int rc) { return rc == 0 ? 0 : pier_spi_os_error(errno); }

static int lev_bind(pier_socket *s, const struct sockaddr *a, size_t len) {
  return os_rc(sys_bind(lev_sock_of(s)->fd, a, (socklen_t)len));
}

static int lev_listen(pier_socket *s, int backlog) {
  lev_sock *ls = lev_sock_of(s);
  int rc = os_rc(sys_listen(ls->fd, backlog));
  if (rc == 0) ls->listening = 1;
  return rc;
}

static int lev_shutdown(pier_socket *s, int how) {
  int h = how == PIER_SHUT_RD ? SHUT_RD : how == PIER_SHUT_WR ? SHUT_WR : SHUT_RDWR;
  return os_rc(sys_shutdown(lev_sock_of(s)->fd, h));
}

static int lev_sockname(pier_socket *s, int peer, struct sockaddr_storage *addr,
                        size_t *len) {
  socklen_t l = (socklen_t)(*len > sizeof *addr ? sizeof *addr : *len);
  int fd = lev_sock_of(s)->fd;
  int rc = peer ? sys_getpeername(fd, (struct sockaddr *)addr, &l)
                : sys_getsockname(fd, (struct sockaddr *)addr, &l);
  if (rc == 0) *len = l;
  return os_rc(rc);
}

static int lev_getsockopt(pier_socket *s, int level, int name, void *val,
                          size_t *len) {
  if (level == PIER_SOL_PROVIDER && name == PIER_SPI_OPT_INLINE_SUCCESS &&
      *len >= sizeof(int)) {
    *(int *)val = 0; /* readiness: nothing is queued to skip */
    *len = sizeof(int);
    return 0;
  }
  if (level == PIER_SOL_PROVIDER && name == PIER_SO_SHED_COUNT &&
      *len >= sizeof(int)) {
    unsigned long n = lev_sock_of(s)->shed;
    *(int *)val = n > 0x7FFFFFFFul ? 0x7FFFFFFF : (int)n;
    *len = sizeof(int);
    return 0;
  }
  if (level == PIER_SOL_PROVIDER) return PIER_ENOPROTOOPT;
  socklen_t l = (socklen_t)*len;
  int rc = sys_getsockopt(lev_sock_of(s)->fd, level, name, val, &l);
  if (rc == 0) *len = l;
  return os_rc(rc);
}

static int lev_setsockopt(pier_socket *s, int level, int name, const void *val,
                          size_t len) {
  /* Readiness needs no pre-posted accepts or zero-byte reads. */
  if (level == PIER_SOL_PROVIDER)
    return name == PIER_SO_PREPOSTED_ACCEPTS || name == PIER_SO_ZERO_READ
               ? 0 : PIER_ENOPROTOOPT;
  return os_rc(
      sys_setsockopt(lev_sock_of(s)->fd, level, name, val, (socklen_t)len));
}

static int lev_ioctl(pier_socket *s, int cmd, void *arg) {
  int fd = lev_sock_of(s)->fd;
  if (cmd == PIER_FIONREAD) {
    int n = 0;
    if (sys_ioctl(fd, FIONREAD, &n) != 0) return pier_spi_os_error(errno);
    *(size_t *)arg = n > 0 ? (size_t)n : 0;
    return 0;
  }
  if (cmd == PIER_SIOCATMARK) {
    /* Winsock's meaning: 1 when no urgent data is waiting. */
    char c;
    ssize_t n = sys_recv(fd, &c, 1, MSG_OOB | MSG_PEEK);
    *(int *)arg = n <= 0;
    return 0;
  }
  return PIER_EINVAL;
}

/* ------------------------------------------------------------------ */
/* 5. the provider table                                               */
/* ------------------------------------------------------------------ */

const pier_provider pier__provider_libevent = {
  PIER_SPI_VERSION,
  "libevent",
  PIER_PCAP_BASE | PIER_PCAP_IFS | PIER_PCAP_BLOCKING,
  sizeof(lev_loop),
  sizeof(lev_sock),
  NULL, /* probe: always usable where it is built */
  lev_loop_init,
  lev_loop_free,
  lev_loop_poll,
  lev_loop_wake,
  lev_open,
  lev_close,
  lev_bind,
  lev_listen,
  lev_shutdown,
  lev_sockname,
  lev_getsockopt,
  lev_setsockopt,
  lev_ioctl,
  lev_submit,
  lev_cancel,
  pier__lev_execute,
  pier__lev_cancel_blocking,
  pier__lev_select_events,
};
