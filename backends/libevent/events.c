/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/events.c - network events (pier_event_select) from
 * readiness.
 *
 * The core says which events to report now (enabled); this file turns
 * libevent readiness into them:
 *   readable listener            -> ACCEPT
 *   readable datagram socket     -> READ
 *   readable stream socket       -> a one-byte MSG_PEEK decides: data is
 *                                   READ, end of stream CLOSE (0), an
 *                                   error CLOSE (that error)
 *   writable connected socket    -> WRITE
 *   urgent data (peeked every few milliseconds: libevent has no EV_PRI)
 *                                -> OOB
 * Watchers are level-triggered and armed only while an event they can
 * produce is enabled, so a recorded event (which the core then disables)
 * does not spin.  CLOSE is reported once, and only after the data before
 * it has been read (READ disabled with data waiting holds everything).
 * The watchers are allocated on first use.
 */
#include <errno.h>
#include <string.h>

#include "lev.h"

#define OOB_POLL_MS 5

struct lev_netev {
  struct event r, w, oob;
  unsigned enabled;          /* PIER_EV_* to report now */
  unsigned armed;            /* EV_READ / EV_WRITE / EV_TIMEOUT added */
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

/* Arm exactly the watchers that can produce an enabled event. */
static void rearm(lev_sock *ls) {
  static const struct timeval oob_tv = { 0, OOB_POLL_MS * 1000 };
  lev_netev *ne = ls->ne;
  unsigned en = ne->enabled;
  int want_r;
  if (ls->listening) want_r = (en & PIER_EV_ACCEPT) != 0;
  else if (ls->dgram) want_r = (en & PIER_EV_READ) != 0;
  else /* an unconnected stream socket reads as hung up: wait for a peer;
          with unread data only READ (re-enabled by a receive) can follow */
    want_r = !ne->closed && is_connected(ls) &&
             ((en & PIER_EV_READ) || ((en & PIER_EV_CLOSE) && !ne->unread));
  int want_w = (en & PIER_EV_WRITE) && !ls->listening &&
               (ls->dgram || is_connected(ls));
  int want_oob = (en & PIER_EV_OOB) && !ls->listening && !ls->dgram;
  lev_arm(&ne->r, &ne->armed, EV_READ, want_r, NULL);
  lev_arm(&ne->w, &ne->armed, EV_WRITE, want_w, NULL);
  lev_arm(&ne->oob, &ne->armed, EV_TIMEOUT, want_oob, &oob_tv);
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
  if (ne->enabled & PIER_EV_CLOSE) pier_spi_net_event(ls->s, PIER_EV_CLOSE, err);
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
  lev_sock *ls = arg;
  (void)fd;
  (void)what;
  if (ls->listening) pier_spi_net_event(ls->s, PIER_EV_ACCEPT, 0);
  else if (ls->dgram) pier_spi_net_event(ls->s, PIER_EV_READ, 0);
  else stream_readable(ls);
  if (ls->ne) rearm(ls);
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
  lev_sock *ls = arg;
  (void)fd;
  (void)what;
  pier_spi_net_event(ls->s, PIER_EV_WRITE, 0);
  if (ls->ne) rearm(ls);
}

static void on_oob_poll(evutil_socket_t fd, short what, void *arg) {
  lev_sock *ls = arg;
  (void)fd;
  (void)what;
  ls->ne->armed &= ~EV_TIMEOUT; /* one-shot timer */
  char c;
  if (sys_recv(ls->fd, &c, 1, MSG_OOB | MSG_PEEK) > 0)
    pier_spi_net_event(ls->s, PIER_EV_OOB, 0);
  if (ls->ne) rearm(ls);
}

int pier__lev_select_events(pier_socket *s, unsigned selected,
                            unsigned enabled) {
  lev_sock *ls = lev_sock_of(s);
  if (!selected) {
    pier__lev_events_free(ls);
    return 0;
  }
  if (!ls->ne) {
    lev_netev *ne = pier_spi_calloc(1, sizeof *ne);
    if (!ne) return PIER_ENOMEM;
    struct event_base *base = ls->ll->base;
    event_assign(&ne->r, base, ls->fd, EV_READ | EV_PERSIST, on_readable, ls);
    event_assign(&ne->w, base, ls->fd, EV_WRITE | EV_PERSIST, on_writable, ls);
    evtimer_assign(&ne->oob, base, on_oob_poll, ls);
    ls->ne = ne;
  }
  ls->ne->enabled = enabled;
  ls->ne->unread = 0; /* called after each receive: look again */
  rearm(ls);
  return 0;
}

void pier__lev_events_free(lev_sock *ls) {
  lev_netev *ne = ls->ne;
  if (!ne) return;
  event_del(&ne->r);
  event_del(&ne->w);
  event_del(&ne->oob);
  pier_spi_free(ne);
  ls->ne = NULL;
}
