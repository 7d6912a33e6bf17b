/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/events.c - network events (pier_event_select) from
 * readiness, and the watching of urgent data.
 *
 * The core says which events to report now (enabled); this file turns
 * the socket's edges (provider.c's one edge-triggered event) into them:
 *   readable listener            -> ACCEPT
 *   readable datagram socket     -> READ
 *   readable stream socket       -> a one-byte MSG_PEEK decides: data is
 *                                   READ, end of stream CLOSE (0), an
 *                                   error CLOSE (that error)
 *   writable connected socket    -> WRITE
 *   urgent data                  -> OOB
 * Edges come once per change, and an event the core has disabled is not
 * reported when its edge comes; so whenever the core enables an event
 * again (or asks to look again after a receive), one poll() of the
 * descriptor, run from the loop, reports what is already true.  CLOSE is
 * reported once, and only after the data before it has been read (READ
 * disabled with data waiting holds everything).  The record is allocated
 * on first use.
 *
 * Urgent data does not make a socket readable (poll says POLLPRI), and
 * libevent 2.1 cannot wait for POLLPRI.  On Linux the sockets that wait
 * for urgent data are put, once each, in a second epoll set of the loop's
 * own (EPOLLPRI | EPOLLET), whose descriptor libevent watches for reading;
 * elsewhere they are peeked every few milliseconds while they wait.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#  include <sys/epoll.h>
#endif

#include "lev.h"

struct lev_netev {
  struct event check;        /* runs look_again() from the loop */
  unsigned enabled;          /* PIER_EV_* to report now */
  int closed;                /* CLOSE has been reported */
  int unread;                /* data seen while READ was disabled */
};

static int is_connected(lev_sock *ls) {
  if (!ls->connected) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    ls->connected =
        sys_getpeername(ls->fd, (struct sockaddr *)&peer, &len) == 0;
  }
  return ls->connected;
}

/* A stream socket is readable: data, end of stream, or an error. */
static void stream_readable(lev_sock *ls) {
  lev_netev *ne = ls->ne;
  char c;
  ssize_t n = sys_recv(ls->fd, &c, 1, MSG_PEEK);
  if (n > 0) {
    if (ne->enabled & PIER_EV_READ) pier_spi_net_event(ls->s, PIER_EV_READ, 0);
    else ne->unread = 1; /* CLOSE waits until it has been read */
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  ne->closed = 1;
  int err = n == 0 ? 0 : pier__lev_error(ls, errno);
  if (ne->enabled & PIER_EV_CLOSE)
    pier_spi_net_event(ls->s, PIER_EV_CLOSE, err);
}

static void readable(lev_sock *ls) {
  lev_netev *ne = ls->ne;
  unsigned en = ne->enabled;
  if (ls->listening) {
    if (en & PIER_EV_ACCEPT) pier_spi_net_event(ls->s, PIER_EV_ACCEPT, 0);
  } else if (ls->dgram) {
    if (en & PIER_EV_READ) pier_spi_net_event(ls->s, PIER_EV_READ, 0);
  } else if (!ne->closed &&
             ((en & PIER_EV_READ) || ((en & PIER_EV_CLOSE) && !ne->unread)) &&
             is_connected(ls)) {
    /* an unconnected stream socket reads as hung up: wait for a peer;
       with unread data only READ (enabled again by a receive) can follow */
    stream_readable(ls);
  }
}

static void writable(lev_sock *ls) {
  if ((ls->ne->enabled & PIER_EV_WRITE) && !ls->listening &&
      (ls->dgram || is_connected(ls)))
    pier_spi_net_event(ls->s, PIER_EV_WRITE, 0);
}

/* Urgent data may be waiting: OOB if a peek finds some. */
static void urgent(lev_sock *ls) {
  char c;
  if ((ls->ne->enabled & PIER_EV_OOB) &&
      sys_recv(ls->fd, &c, 1, MSG_OOB | MSG_PEEK) > 0)
    pier_spi_net_event(ls->s, PIER_EV_OOB, 0);
}

void pier__lev_events_edge(lev_sock *ls, short what) {
  if (what & EV_READ) readable(ls);
  if ((what & EV_WRITE) && ls->ne) writable(ls);
}

/* Report what is true now of the enabled events (each report may make
   the core disable events or drop the record). */
static void look_again(evutil_socket_t fd, short what, void *arg) {
  lev_sock *ls = arg;
  (void)fd;
  (void)what;
  struct pollfd p = { ls->fd, POLLIN | POLLOUT | POLLPRI, 0 };
  if (poll(&p, 1, 0) <= 0) return;
  if (p.revents & (POLLIN | POLLHUP | POLLERR)) readable(ls);
  if ((p.revents & (POLLOUT | POLLERR)) && ls->ne) writable(ls);
  if ((p.revents & POLLPRI) && ls->ne) urgent(ls);
}

int pier__lev_select_events(pier_socket *s, unsigned selected,
                            unsigned enabled) {
  lev_sock *ls = lev_sock_of(s);
  if (!selected) {
    pier__lev_events_free(ls);
    return 0;
  }
  if ((selected & PIER_EV_OOB) && !ls->listening && !ls->dgram) {
    int rc = pier__lev_urgent_watch(ls);
    if (rc) return rc;
  }
  if (!ls->ne) {
    lev_netev *ne = pier_spi_calloc(1, sizeof *ne);
    if (!ne) return PIER_ENOMEM;
    event_assign(&ne->check, ls->ll->base, -1, 0, look_again, ls);
    ls->ne = ne;
  }
  lev_netev *ne = ls->ne;
  /* Events enabled again, or the same ones (a receive: look again), are
     checked now; a report that only disables needs nothing. */
  int look = (enabled & ~ne->enabled) || enabled == ne->enabled;
  ne->enabled = enabled;
  ne->unread = 0;
  if (look && enabled) event_active(&ne->check, EV_READ, 1);
  return 0;
}

void pier__lev_events_free(lev_sock *ls) {
  lev_netev *ne = ls->ne;
  if (!ne) return;
  event_del(&ne->check); /* also drops a look_again() still queued */
  pier_spi_free(ne);
  ls->ne = NULL;
}

/* ------------------------------------------------------------------ */
/* urgent data                                                         */
/* ------------------------------------------------------------------ */

/* Urgent data may have arrived on ls: OOB receives, then the OOB event. */
static void urgent_arrived(lev_sock *ls) {
  pier__lev_urgent_ops(ls);
  if (ls->ne && ls->fd >= 0) urgent(ls);
}

#ifdef __linux__

/* Some socket of the set has urgent data: take them one at a time (each
   may close others, which leaves the set). */
static void on_pri(evutil_socket_t fd, short what, void *arg) {
  struct epoll_event e;
  (void)what;
  (void)arg;
  for (int i = 0; i < 64 && epoll_wait(fd, &e, 1, 0) == 1; i++)
    urgent_arrived(e.data.ptr);
}

static int pri_open(lev_loop *ll) {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return pier_spi_os_error(errno);
  event_assign(&ll->pri_ev, ll->base, fd, EV_READ | EV_PERSIST, on_pri, NULL);
  if (event_add(&ll->pri_ev, NULL) != 0) {
    close(fd);
    return PIER_EIO;
  }
  ll->pri_fd = fd;
  return 0;
}

int pier__lev_urgent_watch(lev_sock *ls) {
  lev_loop *ll = ls->ll;
  if (ls->urgent) return 0;
  int rc = ll->pri_fd < 0 ? pri_open(ll) : 0;
  if (rc) return rc;
  struct epoll_event e;
  memset(&e, 0, sizeof e);
  e.events = EPOLLPRI | EPOLLET;
  e.data.ptr = ls;
  if (epoll_ctl(ll->pri_fd, EPOLL_CTL_ADD, ls->fd, &e) != 0)
    return pier_spi_os_error(errno);
  ls->urgent = 1;
  return 0;
}

void pier__lev_urgent_unwatch(lev_sock *ls) {
  if (!ls->urgent) return;
  epoll_ctl(ls->ll->pri_fd, EPOLL_CTL_DEL, ls->fd, NULL);
  ls->urgent = 0;
}

void pier__lev_urgent_free(lev_loop *ll) {
  if (ll->pri_fd < 0) return;
  event_del(&ll->pri_ev);
  close(ll->pri_fd);
  ll->pri_fd = -1;
}

#else /* no EPOLLPRI: peek every few milliseconds while it is wanted */

#define URGENT_POLL_MS 5

static int urgent_wanted(lev_sock *ls) {
  return !pier_opq_empty(&ls->oobq) ||
         (ls->ne && (ls->ne->enabled & PIER_EV_OOB));
}

static void on_urgent_timer(evutil_socket_t fd, short what, void *arg) {
  static const struct timeval tv = { 0, URGENT_POLL_MS * 1000 };
  lev_sock *ls = arg;
  (void)fd;
  (void)what;
  urgent_arrived(ls);
  if (ls->fd >= 0 && urgent_wanted(ls)) evtimer_add(ls->urgent, &tv);
}

int pier__lev_urgent_watch(lev_sock *ls) {
  static const struct timeval tv = { 0, URGENT_POLL_MS * 1000 };
  if (!ls->urgent) {
    if (!(ls->urgent = pier_spi_malloc(sizeof *ls->urgent)))
      return PIER_ENOMEM;
    evtimer_assign(ls->urgent, ls->ll->base, on_urgent_timer, ls);
  }
  if (!evtimer_pending(ls->urgent, NULL)) evtimer_add(ls->urgent, &tv);
  return 0;
}

void pier__lev_urgent_unwatch(lev_sock *ls) {
  if (!ls->urgent) return;
  event_del(ls->urgent);
  pier_spi_free(ls->urgent);
  ls->urgent = NULL;
}

void pier__lev_urgent_free(lev_loop *ll) { (void)ll; }

#endif
