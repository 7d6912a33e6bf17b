/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/provider.c - the POSIX base provider on libevent's
 * event_base: its table, the loop (poll, wake), socket calls, and the
 * dispatch that turns readiness into completions.
 *
 * Section map
 *   1. loop: init, free, poll, wake
 *   2. dispatch: queues, arming, readiness callbacks
 *   3. operations: submit, cancel
 *   4. sockets: open, close, bind, listen, shutdown, names, options
 *   5. the provider table
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

static void on_timeout(evutil_socket_t fd, short what, void *arg) {}

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
  ll->reserve_fd = -1;
  pier__lev_reserve_take(ll);
  return 0;
}

static void lev_loop_free(pier_loop *loop) {
  lev_loop *ll = lev_loop_of(loop);
  event_del(&ll->wake_ev);
  event_del(&ll->timeout_ev);
  event_base_free(ll->base);
  wake_close(ll);
  pier__lev_reserve_drop(ll);
  pier__lev_block_free(ll);
  pthread_mutex_destroy(&ll->block_lock);
}

static int lev_loop_poll(pier_loop *loop, int timeout_ms) {
  lev_loop *ll = lev_loop_of(loop);
  int flags = EVLOOP_ONCE;
  if (timeout_ms == 0) {
    flags = EVLOOP_NONBLOCK;
  } else if (timeout_ms > 0) {
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    evtimer_add(&ll->timeout_ev, &tv);
  }
  int rc = event_base_loop(ll->base, flags);
  if (timeout_ms > 0) evtimer_del(&ll->timeout_ev);
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

#define OOB_RETRY_MS 5

static int is_read(const pier_op *op) {
  int t = op->pier__r.type;
  return t == PIER_OP_ACCEPT || t == PIER_OP_RECV || t == PIER_OP_RECVFROM;
}

static pier_opq *queue_of(lev_sock *ls, const pier_op *op) {
  if (!is_read(op)) return &ls->wq;
  return (op->pier__r.in_flags & PIER_MSG_OOB) ? &ls->oobq : &ls->rq;
}

static void on_io(evutil_socket_t fd, short what, void *arg);

/*
 * The socket's one event watches the directions in ls->armed; a change
 * re-assigns it (one struct event per socket instead of two: 128 bytes).
 * It is deleted first whenever it was added, and never re-assigned while
 * an event_active() of it may be queued (lev_submit activates it after
 * arming).
 */
static void arm_io(lev_sock *ls, unsigned bit, int want) {
  unsigned cur = ls->armed & (EV_READ | EV_WRITE);
  unsigned next = want ? (cur | bit) : (cur & ~bit);
  if (next == cur) return;
  if (cur) event_del(&ls->ev);
  if (next) {
    event_assign(&ls->ev, ls->ll->base, ls->fd, (short)(next | EV_PERSIST),
                 on_io, ls);
    event_add(&ls->ev, NULL);
  }
  ls->armed = (ls->armed & ~(unsigned)(EV_READ | EV_WRITE)) | next;
}

/*
 * Watch the directions that have work waiting.  Reading stays watched
 * when its queue empties (the next receive usually follows from the
 * callback, and re-adding costs two epoll_ctl calls a message); on_read
 * stops watching when readiness finds nothing waiting.  A held listener
 * must not be watched at all.
 */
static void rearm(lev_sock *ls) {
  static const struct timeval oob_tv = { 0, OOB_RETRY_MS * 1000 };
  int want_r = !pier_opq_empty(&ls->rq) && !ls->held;
  if (want_r || ls->held) arm_io(ls, EV_READ, want_r);
  arm_io(ls, EV_WRITE, !pier_opq_empty(&ls->wq));
  /* Urgent data does not make a socket readable: poll for it gently. */
  if (ls->oobev)
    lev_arm(ls->oobev, &ls->armed, EV_TIMEOUT, !pier_opq_empty(&ls->oobq),
            &oob_tv);
}

static int attempt(lev_sock *ls, pier_op *op) {
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

/* Complete the ops at the head of q for as long as they can finish. */
static void run_queue(lev_sock *ls, pier_opq *q) {
  pier_op *op;
  while ((op = q->head) != NULL) {
    if (op->pier__r.type == PIER_OP_ACCEPT && ls->held) break;
    int r = attempt(ls, op);
    if (r == LEV_WAIT) break;
    if (r == LEV_GONE) continue;
    pier_opq_remove(q, op);
    pier_spi_complete(op, op->status);
  }
}

static void on_read(lev_sock *ls) {
  ls->rready = 1;
  if (pier_opq_empty(&ls->rq)) { /* nobody waits for it: stop watching */
    arm_io(ls, EV_READ, 0);
    return;
  }
  run_queue(ls, &ls->rq);
  rearm(ls);
}

static void on_write(lev_sock *ls) {
  run_queue(ls, &ls->wq);
  rearm(ls);
}

static void on_io(evutil_socket_t fd, short what, void *arg) {
  lev_sock *ls = arg;
  (void)fd;
  if (what & EV_READ) on_read(ls);
  if ((what & EV_WRITE) && (ls->armed & EV_WRITE)) on_write(ls);
}

static void on_oob(evutil_socket_t fd, short what, void *arg) {
  lev_sock *ls = arg;
  ls->armed &= ~EV_TIMEOUT; /* a one-shot timer has expired */
  run_queue(ls, &ls->oobq);
  rearm(ls);
}

/* ------------------------------------------------------------------ */
/* 3. operations                                                       */
/* ------------------------------------------------------------------ */

static void on_oob(evutil_socket_t fd, short what, void *arg);

/* The urgent-data retry timer, made at the first OOB receive. */
static struct event *oob_timer(lev_sock *ls) {
  struct event *ev = pier_spi_malloc(sizeof *ev);
  if (ev) evtimer_assign(ev, ls->ll->base, on_oob, ls);
  return ev;
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
    break;
  case PIER_OP_ACCEPT:
    /* The application accepts again: release a held (deferred) request
       and let the loop present it; the condition function never runs
       inside pier_accept itself. */
    ls->held = 0;
    pier_opq_push(q, op);
    rearm(ls); /* before activating: arming may re-assign the event */
    if (ls->req && ls->req->fd >= 0) event_active(&ls->ev, EV_READ, 1);
    return 0;
  default:
    /* Try at once when nothing is ahead of it (the common fast path) -
       a receive only while the socket may still hold data. */
    if (q == &ls->oobq && !ls->oobev && !(ls->oobev = oob_timer(ls)))
      return PIER_ENOMEM;
    if (pier_opq_empty(q) && q != &ls->oobq && (q != &ls->rq || ls->rready) &&
        attempt(ls, op) == LEV_DONE) {
      pier_spi_complete(op, op->status);
      return 0;
    }
    pier_opq_push(q, op);
    break;
  }
  rearm(ls);
  return 0;
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
  rearm(ls);
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
  /* Assigned now so that event_active() and event_del() are always valid. */
  event_assign(&ls->ev, ll->base, fd, EV_READ | EV_PERSIST, on_io, ls);
  pier_spi_set_handle(s, fd);
  return 0;
}

static void lev_close(pier_socket *s) {
  lev_sock *ls = lev_sock_of(s);
  cancel_all(&ls->rq);
  cancel_all(&ls->oobq);
  cancel_all(&ls->wq);
  arm_io(ls, EV_READ, 0);
  arm_io(ls, EV_WRITE, 0);
  if (ls->oobev) {
    lev_arm(ls->oobev, &ls->armed, EV_TIMEOUT, 0, NULL);
    pier_spi_free(ls->oobev);
    ls->oobev = NULL;
  }
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
