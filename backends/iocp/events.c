/* SPDX-License-Identifier: MIT */
/*
 * backends/iocp/events.c - network events (pier_event_select) through
 * Winsock's own WSAEventSelect / WSAEnumNetworkEvents.
 *
 * Winsock records the events and re-enables them itself (a WSARecv
 * re-enables FD_READ, and so on), so the provider selects what the
 * application selected and reports what WSAEnumNetworkEvents returns; the
 * core drops what it has not re-enabled.  The event object is auto-reset,
 * and a thread-pool wait on it posts the socket's kick packet, so the
 * events are read on the loop, under the core lock.
 *
 * One WSAEventSelect registration exists per socket.  A listener that
 * accepts through WSAAccept (accept.c) has one for FD_ACCEPT on its
 * accept_event; while it does, the application's events join that
 * registration.  A shared copy of a socket (evented.c) must not register
 * at all - the registration belongs to the socket, not the copy - so it
 * refuses with PIER_EOPNOTSUPP.
 */
#include "iocp.h"

struct iocp_netev {
  HANDLE event, wait;        /* ours, when accept.c has none */
  unsigned selected;         /* PIER_EV_* */
};

static const struct { unsigned ev; long fd; int bit; } map[] = {
  { PIER_EV_READ, FD_READ, FD_READ_BIT },
  { PIER_EV_WRITE, FD_WRITE, FD_WRITE_BIT },
  { PIER_EV_OOB, FD_OOB, FD_OOB_BIT },
  { PIER_EV_ACCEPT, FD_ACCEPT, FD_ACCEPT_BIT },
  { PIER_EV_CLOSE, FD_CLOSE, FD_CLOSE_BIT },
};
#define NMAP (sizeof map / sizeof map[0])

static long fd_mask(unsigned ev) {
  long m = 0;
  for (size_t i = 0; i < NMAP; i++)
    if (ev & map[i].ev) m |= map[i].fd;
  return m;
}

static void CALLBACK on_signal(PVOID ctx, BOOLEAN timed_out) {
  (void)timed_out;
  pier__iocp_post_kick((iocp_sock *)ctx);
}

/* Does accept.c hold the socket's registration (FD_ACCEPT)? */
static int accept_owns(const iocp_sock *is) {
  return is->accept_event != NULL && !is->evented;
}

static void drop_own_event(iocp_netev *ne) {
  if (ne->wait) UnregisterWaitEx(ne->wait, INVALID_HANDLE_VALUE); /* waits */
  if (ne->event) CloseHandle(ne->event);
  ne->wait = ne->event = NULL;
}

/* Register what is wanted now: the application's events, plus FD_ACCEPT
   on accept.c's event while it has one. */
int pier__iocp_events_sync(iocp_sock *is) {
  iocp_netev *ne = is->ne;
  if (!ne) return 0;
  long mask = fd_mask(ne->selected);
  if (accept_owns(is)) {
    drop_own_event(ne);
    return WSAEventSelect(is->sock, is->accept_event, mask | FD_ACCEPT) == 0
               ? 0 : pier_spi_os_error(WSAGetLastError());
  }
  if (mask == 0) {
    WSAEventSelect(is->sock, NULL, 0);
    drop_own_event(ne);
    return 0;
  }
  if (!ne->event) {
    ne->event = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (!ne->event) return pier_spi_os_error((int)GetLastError());
    if (!RegisterWaitForSingleObject(&ne->wait, ne->event, on_signal, is,
                                     INFINITE, WT_EXECUTEINWAITTHREAD)) {
      int err = (int)GetLastError();
      CloseHandle(ne->event);
      ne->event = ne->wait = NULL;
      return pier_spi_os_error(err);
    }
  }
  return WSAEventSelect(is->sock, ne->event, mask) == 0
             ? 0 : pier_spi_os_error(WSAGetLastError());
}

int pier__iocp_select_events(pier_socket *s, unsigned selected,
                             unsigned enabled) {
  iocp_sock *is = iocp_sock_of(s);
  (void)enabled; /* Winsock re-enables by itself */
  if (is->evented) return PIER_EOPNOTSUPP;
  if (!is->ne) {
    if (!selected) return 0;
    is->ne = pier_spi_calloc(1, sizeof *is->ne);
    if (!is->ne) return PIER_ENOMEM;
  }
  if (is->ne->selected == selected && (is->ne->event || accept_owns(is)))
    return 0; /* only the core's enabled set changed */
  is->ne->selected = selected;
  int rc = pier__iocp_events_sync(is);
  if (selected == 0) pier__iocp_events_close(is);
  return rc;
}

/* FD_CLOSE with no error: Wine reports a reset that way too, so ask the
   socket (it is non-blocking): a reset one fails its receives. */
static int close_error(iocp_sock *is) {
  char c;
  if (recv(is->sock, &c, 1, MSG_PEEK) != SOCKET_ERROR) return 0;
  int err = WSAGetLastError();
  return err == WSAEWOULDBLOCK ? 0 : pier__iocp_error(is, err);
}

/* The socket's kick: report what Winsock recorded (loop, core lock). */
void pier__iocp_events_kicked(iocp_sock *is) {
  iocp_netev *ne = is->ne;
  if (!ne || !ne->selected || is->closing) return;
  HANDLE ev = accept_owns(is) ? is->accept_event : ne->event;
  WSANETWORKEVENTS got;
  if (!ev || WSAEnumNetworkEvents(is->sock, ev, &got) != 0) return;
  for (size_t i = 0; i < NMAP; i++) {
    if (!(got.lNetworkEvents & map[i].fd) || !(ne->selected & map[i].ev))
      continue;
    int err = got.iErrorCode[map[i].bit];
    if (err) err = pier__iocp_error(is, err);
    else if (map[i].ev == PIER_EV_CLOSE) err = close_error(is);
    pier_spi_net_event(is->s, map[i].ev, err);
  }
  /* An accept-owned registration also serves accept.c: it runs after. */
}

void pier__iocp_events_close(iocp_sock *is) {
  if (!is->ne) return;
  drop_own_event(is->ne);
  pier_spi_free(is->ne);
  is->ne = NULL;
}
