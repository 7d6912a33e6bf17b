/* SPDX-License-Identifier: MIT */
/*
 * backends/iocp/provider.c - the Windows base provider: its table, the
 * loop on one I/O completion port (drained in batches with
 * GetQueuedCompletionStatusEx, woken with PostQueuedCompletionStatus),
 * socket calls, and the dispatch of completion packets.
 *
 * Section map
 *   1. loop: init, free, poll, wake
 *   2. sockets: open, associate, close
 *   3. synchronous socket calls
 *   4. operations: submit, cancel
 *   5. the provider table
 */
#include <string.h>

#include "iocp.h"

#ifndef FILE_SKIP_COMPLETION_PORT_ON_SUCCESS
#  define FILE_SKIP_COMPLETION_PORT_ON_SUCCESS 0x1
#  define FILE_SKIP_SET_EVENT_ON_HANDLE 0x2
#endif

#define BATCH 64

/* ------------------------------------------------------------------ */
/* 1. loop                                                             */
/* ------------------------------------------------------------------ */

static iocp_loop *iocp_loop_of(pier_loop *loop) {
  return (iocp_loop *)pier_spi_loop_state(loop);
}

/* Look up a Winsock extension function once, on a scratch socket. */
static int load_ext(SOCKET s, GUID guid, void *fn, size_t size) {
  DWORD bytes = 0;
  return WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid,
                  fn, (DWORD)size, &bytes, NULL, NULL) == 0;
}

static int iocp_loop_init(pier_loop *loop) {
  iocp_loop *il = iocp_loop_of(loop);
  il->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
  if (!il->port) return pier_spi_os_error((int)GetLastError());
  InitializeSRWLock(&il->block_lock);
  SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                        WSA_FLAG_OVERLAPPED);
  int ok = s != INVALID_SOCKET;
  GUID g_accept = WSAID_ACCEPTEX, g_connect = WSAID_CONNECTEX,
       g_addrs = WSAID_GETACCEPTEXSOCKADDRS;
  ok = ok && load_ext(s, g_accept, &il->acceptex, sizeof il->acceptex);
  ok = ok && load_ext(s, g_connect, &il->connectex, sizeof il->connectex);
  ok = ok && load_ext(s, g_addrs, &il->getaddrs, sizeof il->getaddrs);
  int err = ok ? 0 : WSAGetLastError();
  if (s != INVALID_SOCKET) closesocket(s);
  if (!ok) {
    CloseHandle(il->port);
    return err ? pier_spi_os_error(err) : PIER_EOPNOTSUPP;
  }
  return 0;
}

static void iocp_loop_free(pier_loop *loop) {
  iocp_loop *il = iocp_loop_of(loop);
  pier__iocp_block_free(il);
  CloseHandle(il->port);
}

static void iocp_loop_wake(pier_loop *loop) {
  iocp_loop *il = iocp_loop_of(loop);
  if (InterlockedExchange(&il->wake_pending, 1) == 0)
    PostQueuedCompletionStatus(il->port, 0, IOCP_KEY_WAKE, NULL);
}

/* One packet for an OVERLAPPED of ours. */
static void dispatch(iocp_ovl *h, DWORD bytes) {
  if (h->kind == IOCP_K_SLOT) {
    iocp_slot *slot = (iocp_slot *)h;
    iocp_sock *is = slot->listener;
    InterlockedDecrement(&is->inflight);
    DWORD got = 0, flags = 0;
    int err = 0;
    if (is->closing)
      err = WSA_OPERATION_ABORTED;
    else if (!WSAGetOverlappedResult(is->sock, &h->ov, &got, FALSE, &flags))
      err = WSAGetLastError();
    pier__iocp_slot_done(slot, err, got);
    pier__iocp_maybe_closed(is);
    return;
  }
  pier_op *op = iocp_op_of(h);
  iocp_sock *is = iocp_sock_of(op->socket);
  iocp_opx_of(op)->in_flight = 0;
  InterlockedDecrement(&is->inflight);
  DWORD flags = 0, got = bytes;
  int err = 0;
  if (is->closing) {
    err = WSA_OPERATION_ABORTED;
  } else if (!WSAGetOverlappedResult(is->sock, &h->ov, &got, FALSE, &flags)) {
    err = WSAGetLastError();
  }
  pier__iocp_op_done(is, op, got, err, flags);
  pier__iocp_maybe_closed(is);
}

static int iocp_loop_poll(pier_loop *loop, int timeout_ms) {
  iocp_loop *il = iocp_loop_of(loop);
  OVERLAPPED_ENTRY ent[BATCH];
  ULONG n = 0;
  DWORD timeout = timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms;
  if (!GetQueuedCompletionStatusEx(il->port, ent, BATCH, &n, timeout, FALSE)) {
    DWORD e = GetLastError();
    return e == WAIT_TIMEOUT ? 0 : pier_spi_os_error((int)e);
  }
  for (ULONG i = 0; i < n; i++) {
    ULONG_PTR key = ent[i].lpCompletionKey;
    if (key == IOCP_KEY_WAKE) {
      InterlockedExchange(&il->wake_pending, 0);
    } else if (key == IOCP_KEY_KICK) {
      iocp_sock *is = (iocp_sock *)(void *)ent[i].lpOverlapped;
      InterlockedExchange(&is->kick_posted, 0);
      InterlockedDecrement(&is->inflight);
      if (!is->closing) {
        pier__iocp_events_kicked(is);
        pier__iocp_run_accepts(is);
      }
      pier__iocp_maybe_closed(is);
    } else if (ent[i].lpOverlapped) {
      dispatch((iocp_ovl *)ent[i].lpOverlapped,
               ent[i].dwNumberOfBytesTransferred);
    }
  }
  return 0;
}

/* Ask the loop to run is's accepts (from any thread). */
void pier__iocp_post_kick(iocp_sock *is) {
  if (InterlockedExchange(&is->kick_posted, 1) != 0) return;
  InterlockedIncrement(&is->inflight);
  if (!PostQueuedCompletionStatus(is->il->port, 0, IOCP_KEY_KICK,
                                  (LPOVERLAPPED)(void *)is)) {
    InterlockedDecrement(&is->inflight);
    InterlockedExchange(&is->kick_posted, 0);
  }
}

/* ------------------------------------------------------------------ */
/* 2. sockets                                                          */
/* ------------------------------------------------------------------ */

int pier__iocp_error(iocp_sock *is, int err) {
  if (err == WSAECONNRESET || err == ERROR_NETNAME_DELETED) is->reset = 1;
  if (is->reset && (err == WSAESHUTDOWN || err == WSAENOTCONN ||
                    err == ERROR_NETNAME_DELETED))
    return PIER_ECONNRESET;
  return pier_spi_os_error(err);
}

/* Tie the socket to the loop's port; skip packets for instant success
   when the handle is a real file handle (IFS) and completion modes work.
   A copy whose file object is tied to another port already (a shared
   socket) runs evented instead, and leaves the file's modes alone: they
   are the source's too. */
int pier__iocp_associate(iocp_sock *is) {
  if (!CreateIoCompletionPort((HANDLE)is->sock, is->il->port, IOCP_KEY_SOCKET, 0)) {
    DWORD e = GetLastError();
    int rc = e == ERROR_INVALID_PARAMETER ? pier__iocp_ev_open(is)
                                          : pier_spi_os_error((int)e);
    if (rc) return rc;
  }
  u_long nb = 1;
  ioctlsocket(is->sock, FIONBIO, &nb); /* pier's blocking mode is its own */
  if (is->evented) return 0;
  WSAPROTOCOL_INFOW info;
  int len = sizeof info;
  if (getsockopt(is->sock, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&info, &len) == 0 &&
      (info.dwServiceFlags1 & XP1_IFS_HANDLES) &&
      SetFileCompletionNotificationModes((HANDLE)is->sock,
                                         FILE_SKIP_COMPLETION_PORT_ON_SUCCESS |
                                             FILE_SKIP_SET_EVENT_ON_HANDLE))
    is->skip_on_success = 1;
  return 0;
}

static int iocp_open(pier_socket *s, const pier_protocol_info *proto,
                     pier_os_socket h) {
  iocp_sock *is = iocp_sock_of(s);
  is->s = s;
  is->il = iocp_loop_of(pier_socket_loop(s));
  is->family = proto->family;
  is->type = proto->socktype;
  is->protocol = proto->protocol;
  is->preposted = PIER_SPI_PREPOSTED_DEFAULT;
  int adopted = h != INVALID_SOCKET;
  if (!adopted) {
    h = WSASocketW(proto->family, proto->socktype, proto->protocol, NULL, 0,
                   WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (h == INVALID_SOCKET) return pier_spi_os_error(WSAGetLastError());
  }
  is->sock = h;
  int rc = pier__iocp_associate(is);
  if (rc) {
    if (!adopted) closesocket(h);
    return rc;
  }
  if (adopted) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    is->bound = getsockname(h, (struct sockaddr *)&ss, &len) == 0;
    len = sizeof ss;
    is->connected = getpeername(h, (struct sockaddr *)&ss, &len) == 0;
  }
  pier_spi_set_handle(s, h);
  return 0;
}

void pier__iocp_maybe_closed(iocp_sock *is) {
  if (is->closing == 1 && !is->in_cond &&
      InterlockedCompareExchange(&is->inflight, 0, 0) == 0) {
    is->closing = 2;
    for (int i = 0; is->slots && i < is->nslots; i++)
      pier_spi_free(is->slots[i].first);
    pier_spi_free(is->slots);
    is->slots = NULL;
    pier__iocp_ev_close(is);
    pier_spi_closed(is->s);
  }
}

void pier__iocp_close_os(iocp_sock *is) {
  if (is->in_cond || is->sock == INVALID_SOCKET) return;
  /* Every overlapped call is aborted; each still comes back through the
     port (ERROR_OPERATION_ABORTED) and is delivered as PIER_ECANCELED
     before the socket's memory is released. */
  CancelIoEx((HANDLE)is->sock, NULL);
  if (closesocket(is->sock) != 0 && WSAGetLastError() == WSAEWOULDBLOCK) {
    u_long nb = 0; /* a linger on a non-blocking socket: let it block */
    ioctlsocket(is->sock, FIONBIO, &nb);
    closesocket(is->sock);
  }
  is->sock = INVALID_SOCKET;
  pier__iocp_maybe_closed(is);
}

static void iocp_close(pier_socket *s) {
  iocp_sock *is = iocp_sock_of(s);
  is->closing = 1;
  pier__iocp_events_close(is);
  pier__iocp_accept_close(is);
  pier__iocp_cancel_unissued(is);
  pier__iocp_close_os(is);
}

/* ------------------------------------------------------------------ */
/* 3. synchronous socket calls                                         */
/* ------------------------------------------------------------------ */

static int ws_rc(int rc) { return rc == 0 ? 0 : pier_spi_os_error(WSAGetLastError()); }

static int iocp_bind(pier_socket *s, const struct sockaddr *a, size_t len) {
  iocp_sock *is = iocp_sock_of(s);
  int rc = ws_rc(bind(is->sock, a, (int)len));
  if (rc == 0) is->bound = 1;
  return rc;
}

static int iocp_listen(pier_socket *s, int backlog) {
  return pier__iocp_listen(iocp_sock_of(s), backlog);
}

static int iocp_shutdown(pier_socket *s, int how) {
  int h = how == PIER_SHUT_RD ? SD_RECEIVE : how == PIER_SHUT_WR ? SD_SEND : SD_BOTH;
  return ws_rc(shutdown(iocp_sock_of(s)->sock, h));
}

static int iocp_sockname(pier_socket *s, int peer, struct sockaddr_storage *addr,
                         size_t *len) {
  int l = (int)(*len > sizeof *addr ? sizeof *addr : *len);
  SOCKET h = iocp_sock_of(s)->sock;
  int rc = peer ? getpeername(h, (struct sockaddr *)addr, &l)
                : getsockname(h, (struct sockaddr *)addr, &l);
  if (rc == 0) *len = (size_t)l;
  return ws_rc(rc);
}

/* pier's provider options: the AcceptEx count and zero-byte reads. */
static int *provider_opt(iocp_sock *is, int name) {
  if (name == PIER_SO_PREPOSTED_ACCEPTS) return &is->preposted;
  if (name == PIER_SO_ZERO_READ) return &is->zero_read;
  return NULL;
}

static int iocp_getsockopt(pier_socket *s, int level, int name, void *val,
                           size_t *len) {
  if (level == PIER_SOL_PROVIDER && name == PIER_SPI_OPT_INLINE_SUCCESS &&
      *len >= sizeof(int)) {
    *(int *)val = iocp_sock_of(s)->skip_on_success;
    *len = sizeof(int);
    return 0;
  }
  if (level == PIER_SOL_PROVIDER && name == PIER_SO_ACCEPT_FIRST &&
      *len >= sizeof(int)) {
    *(int *)val = iocp_sock_of(s)->first_ms;
    *len = sizeof(int);
    return 0;
  }
  if (level == PIER_SOL_PROVIDER && name == PIER_SO_SHED_COUNT &&
      *len >= sizeof(int)) {
    *(int *)val = 0; /* no socket to shed with: accept.c retries instead */
    *len = sizeof(int);
    return 0;
  }
  if (level == PIER_SOL_PROVIDER) return PIER_ENOPROTOOPT;
  iocp_sock *is = iocp_sock_of(s);
  int l = (int)*len;
  int rc = ws_rc(getsockopt(is->sock, level, name, (char *)val, &l));
  if (rc == 0) *len = (size_t)l;
  else if (rc == PIER_ENOPROTOOPT &&
           pier__iocp_keepalive_get(is, level, name, val, len))
    rc = 0; /* a timing Winsock lacks: what keepalive.c keeps */
  return rc;
}

static int iocp_setsockopt(pier_socket *s, int level, int name, const void *val,
                           size_t len) {
  if (level == PIER_SOL_PROVIDER && name == PIER_SO_ACCEPT_FIRST) {
    iocp_sock *is = iocp_sock_of(s);
    if (len != sizeof(int) || *(const int *)val < 0) return PIER_EINVAL;
    /* The mode is chosen at the first accept; the limit may change. */
    if (is->accept_mode != IOCP_ACCEPT_NONE && !is->first) return PIER_EBUSY;
    is->first_ms = *(const int *)val;
    return 0;
  }
  if (level == PIER_SOL_PROVIDER) {
    iocp_sock *is = iocp_sock_of(s);
    int *o = provider_opt(is, name);
    if (!o || len != sizeof(int)) return o ? PIER_EINVAL : PIER_ENOPROTOOPT;
    /* The count is fixed once the first AcceptEx calls are posted. */
    if (o == &is->preposted && is->accept_mode != IOCP_ACCEPT_NONE)
      return PIER_EBUSY;
    *o = *(const int *)val;
    return 0;
  }
  iocp_sock *is = iocp_sock_of(s);
  int rc = ws_rc(setsockopt(is->sock, level, name, (const char *)val, (int)len));
  if (rc == PIER_ENOPROTOOPT) /* keep-alive timings Winsock lacks */
    pier__iocp_keepalive_set(is, level, name, val, len, &rc);
  else if (rc == 0 && len == sizeof(int))
    pier__iocp_keepalive_switched(is, level, name, val);
  return rc;
}

static int iocp_ioctl(pier_socket *s, int cmd, void *arg) {
  SOCKET h = iocp_sock_of(s)->sock;
  u_long v = 0;
  if (cmd == PIER_FIONREAD) {
    if (ioctlsocket(h, FIONREAD, &v) != 0) return pier_spi_os_error(WSAGetLastError());
    *(size_t *)arg = v;
    return 0;
  }
  if (cmd == PIER_SIOCATMARK) {
    if (ioctlsocket(h, SIOCATMARK, &v) != 0) return pier_spi_os_error(WSAGetLastError());
    *(int *)arg = v != 0; /* Winsock: TRUE when no urgent data waits */
    return 0;
  }
  return PIER_EINVAL;
}

/* ------------------------------------------------------------------ */
/* 4. operations                                                       */
/* ------------------------------------------------------------------ */

static int iocp_submit(pier_socket *s, pier_op *op) {
  iocp_sock *is = iocp_sock_of(s);
  iocp_opx *x = iocp_opx_of(op);
  memset(x, 0, sizeof *x);
  x->h.kind = IOCP_K_OP;
  if (op->pier__r.type == PIER_OP_ACCEPT) return pier__iocp_accept_submit(is, op);
  return pier__iocp_start(is, op);
}

static int iocp_cancel(pier_socket *s, pier_op *op) {
  iocp_sock *is = iocp_sock_of(s);
  iocp_opx *x = iocp_opx_of(op);
  if (x->in_flight) {
    /* Completes through the port, aborted or (if it won the race) done. */
    CancelIoEx((HANDLE)is->sock, &x->h.ov);
    return 0;
  }
  if (op->pier__r.type == PIER_OP_ACCEPT) {
    pier_op *it = is->acceptq.head;
    while (it && it != op) it = it->pier__r.next;
    if (!it) return PIER_ENOENT;
    pier_opq_remove(&is->acceptq, op);
    pier_spi_complete(op, PIER_ECANCELED);
    return 0;
  }
  return pier__iocp_cancel_queued(is, op);
}

/* ------------------------------------------------------------------ */
/* 5. the provider table                                               */
/* ------------------------------------------------------------------ */

const pier_provider pier__provider_iocp = {
  PIER_SPI_VERSION,
  "iocp",
  PIER_PCAP_BASE | PIER_PCAP_IFS | PIER_PCAP_BLOCKING,
  sizeof(iocp_loop),
  sizeof(iocp_sock),
  NULL, /* probe: Winsock 2 is always there */
  iocp_loop_init,
  iocp_loop_free,
  iocp_loop_poll,
  iocp_loop_wake,
  iocp_open,
  iocp_close,
  iocp_bind,
  iocp_listen,
  iocp_shutdown,
  iocp_sockname,
  iocp_getsockopt,
  iocp_setsockopt,
  iocp_ioctl,
  iocp_submit,
  iocp_cancel,
  pier__iocp_execute,
  pier__iocp_cancel_blocking,
  pier__iocp_select_events,
};
