/* SPDX-License-Identifier: MIT */
/*
 * backends/iocp/block.c - blocking calls (an operation started with no
 * callback) and pier_cancel_blocking on Windows.
 *
 * The OS socket is always non-blocking (its completion port does the
 * overlapped work), so a blocking call makes non-overlapped attempts -
 * WSARecv/WSASend without an OVERLAPPED post nothing to the port - and
 * waits in select() between them, for the socket and for a wake socket
 * of its own, with no timeout.  The core cancels calls (pier_close too) by
 * moving the socket's cancel sequence on, which the call reads before each
 * wait (pier_spi_block_canceled); cancel_blocking then sends one datagram
 * to the wake socket of every waiter linked on the socket, so a cancel
 * that lands between that check and select() ends the select at once.  A
 * call links itself before its first attempt, so no cancel can fall
 * between its start and its waits.
 *
 * A wake socket is a UDP socket bound to loopback that the canceler sends
 * to (WSAEventSelect is not used: a socket has one registration, which
 * pier_event_select and WSAAccept listeners own).  They come from a pool
 * in the loop: one is opened only when the pool is empty, and all are
 * closed by pier_loop_free - a loop keeps one per call that waited at the
 * same time as others, and a blocking call opens nothing.  The loop's
 * block_lock guards the waiter lists and the pool.
 */
#include <string.h>

#include "iocp.h"

struct iocp_wake {
  iocp_wake *next;           /* the loop's pool */
  SOCKET sock;               /* UDP, bound to loopback, non-blocking */
  struct sockaddr_storage addr;
  int addrlen;
};

struct iocp_waiter {
  iocp_waiter *next;
  iocp_wake *wake;           /* selected with the socket */
  int signaled;              /* under block_lock: a datagram was sent */
};

enum { WANT_READ = 1, WANT_WRITE = 2 };

/* ------------------------------------------------------------------ */
/* wake sockets                                                        */
/* ------------------------------------------------------------------ */

/* A UDP socket bound to the loopback address of family, in k. */
static int wake_bind(iocp_wake *k, int family) {
  k->sock = WSASocketW(family, SOCK_DGRAM, IPPROTO_UDP, NULL, 0,
                       WSA_FLAG_NO_HANDLE_INHERIT);
  if (k->sock == INVALID_SOCKET) return WSAGetLastError();
  memset(&k->addr, 0, sizeof k->addr);
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&k->addr;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&k->addr;
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
  }
  u_long on = 1;
  k->addrlen = sizeof k->addr;
  if (bind(k->sock, (struct sockaddr *)&k->addr,
           family == AF_INET ? (int)sizeof(struct sockaddr_in)
                             : (int)sizeof(struct sockaddr_in6)) != 0 ||
      getsockname(k->sock, (struct sockaddr *)&k->addr, &k->addrlen) != 0 ||
      ioctlsocket(k->sock, FIONBIO, &on) != 0) {
    int err = WSAGetLastError();
    closesocket(k->sock);
    return err;
  }
  return 0;
}

static int wake_new(iocp_wake **out) {
  iocp_wake *k = pier_spi_malloc(sizeof *k);
  if (!k) return PIER_ENOMEM;
  int err = wake_bind(k, AF_INET);
  if (err) err = wake_bind(k, AF_INET6); /* a host without IPv4 loopback */
  if (err) {
    pier_spi_free(k);
    return pier_spi_os_error(err);
  }
  *out = k;
  return 0;
}

static void wake_signal(iocp_wake *k) {
  sendto(k->sock, "c", 1, 0, (struct sockaddr *)&k->addr, k->addrlen);
}

static void wake_drain(iocp_wake *k) {
  char buf[16];
  while (recv(k->sock, buf, sizeof buf, 0) >= 0) {
  }
}

void pier__iocp_block_free(iocp_loop *il) {
  while (il->wakes) {
    iocp_wake *k = il->wakes;
    il->wakes = k->next;
    closesocket(k->sock);
    pier_spi_free(k);
  }
}

/* ------------------------------------------------------------------ */
/* waiters                                                             */
/* ------------------------------------------------------------------ */

/* Take a wake socket and link w on is, before the first attempt. */
static int waiter_begin(iocp_sock *is, iocp_waiter *w) {
  iocp_loop *il = is->il;
  AcquireSRWLockExclusive(&il->block_lock);
  iocp_wake *k = il->wakes;
  if (k) il->wakes = k->next;
  ReleaseSRWLockExclusive(&il->block_lock);
  if (!k) {
    int rc = wake_new(&k);
    if (rc) return rc;
  }
  w->wake = k;
  w->signaled = 0;
  AcquireSRWLockExclusive(&il->block_lock);
  w->next = is->waiters;
  is->waiters = w;
  ReleaseSRWLockExclusive(&il->block_lock);
  return 0;
}

/* Unlink w and give its wake socket back, emptied. */
static void waiter_end(iocp_sock *is, iocp_waiter *w) {
  iocp_loop *il = is->il;
  AcquireSRWLockExclusive(&il->block_lock);
  iocp_waiter **p = &is->waiters;
  while (*p != w) p = &(*p)->next;
  *p = w->next;
  int signaled = w->signaled; /* no cancel sends to it from now on */
  ReleaseSRWLockExclusive(&il->block_lock);
  if (signaled) wake_drain(w->wake);
  AcquireSRWLockExclusive(&il->block_lock);
  w->wake->next = il->wakes;
  il->wakes = w->wake;
  ReleaseSRWLockExclusive(&il->block_lock);
}

/* Wait until the socket may be ready for `want`, or the call is canceled. */
static int wait_ready(iocp_sock *is, iocp_waiter *w, int want) {
  for (;;) {
    if (pier_spi_block_canceled(is->s)) return PIER_ECANCELED;
    fd_set r, wr, ex;
    FD_ZERO(&r);
    FD_ZERO(&wr);
    FD_ZERO(&ex);
    if (want & WANT_READ) FD_SET(is->sock, &r);
    if (want & WANT_WRITE) FD_SET(is->sock, &wr);
    FD_SET(is->sock, &ex); /* failed connects and urgent data */
    FD_SET(w->wake->sock, &r);
    if (select(0, &r, &wr, &ex, NULL) < 0)
      return pier_spi_os_error(WSAGetLastError());
    if (FD_ISSET(is->sock, &r) || FD_ISSET(is->sock, &wr) ||
        FD_ISSET(is->sock, &ex))
      return 0;
    wake_drain(w->wake); /* then look at the cancel */
  }
}

static int would_block(int err) { return err == WSAEWOULDBLOCK || err == WSAEINPROGRESS; }

static size_t total(const pier_op *op) {
  size_t t = 0;
  for (size_t i = 0; i < op->pier__r.nbufs; i++) t += op->pier__r.bufs[i].len;
  return t;
}

/* One non-overlapped attempt at a transfer of the op's remaining bytes. */
static int try_io(iocp_sock *is, pier_op *op, int *want) {
  unsigned in = op->pier__r.in_flags;
  int type = op->pier__r.type, rc;
  int recv = type == PIER_OP_RECV || type == PIER_OP_RECVFROM;
  /* Rebuild the window past what is already done. */
  WSABUF local[64];
  size_t done = op->pier__r.progress, i = 0, n = 0;
  while (i < op->pier__r.nbufs && done >= op->pier__r.bufs[i].len)
    done -= op->pier__r.bufs[i++].len;
  for (; i < op->pier__r.nbufs && n < 64; i++, n++) {
    local[n].buf = op->pier__r.bufs[i].base + (n == 0 ? done : 0);
    local[n].len = op->pier__r.bufs[i].len - (ULONG)(n == 0 ? done : 0);
  }
  DWORD bytes = 0, flags = ((in & PIER_MSG_PEEK) ? MSG_PEEK : 0) |
                           ((in & PIER_MSG_OOB) ? MSG_OOB : 0);
  INT fromlen = (INT)sizeof(struct sockaddr_storage);
  struct sockaddr *peer = (struct sockaddr *)&op->pier__r.addr;
  *want = recv ? WANT_READ : WANT_WRITE;
  if (type == PIER_OP_RECV)
    rc = WSARecv(is->sock, local, (DWORD)n, &bytes, &flags, NULL, NULL);
  else if (type == PIER_OP_RECVFROM)
    rc = WSARecvFrom(is->sock, local, (DWORD)n, &bytes, &flags,
                     op->pier__r.from ? (struct sockaddr *)op->pier__r.from : peer,
                     &fromlen, NULL, NULL);
  else if (type == PIER_OP_SEND)
    rc = WSASend(is->sock, local, (DWORD)n, &bytes, flags & MSG_OOB, NULL, NULL);
  else
    rc = WSASendTo(is->sock, local, (DWORD)n, &bytes, flags & MSG_OOB, peer,
                   (int)op->pier__r.addr_len, NULL, NULL);
  int err = rc == 0 ? 0 : WSAGetLastError();
  if (would_block(err)) return 1;
  int dgram = is->type == SOCK_DGRAM;
  if (err == WSAEMSGSIZE && dgram && recv) {
    op->flags |= PIER_MSG_TRUNC;
    bytes = (DWORD)(total(op) - op->pier__r.progress);
    err = 0;
  }
  if (err) {
    op->status = pier__iocp_error(is, err);
    return 0;
  }
  op->pier__r.progress += bytes;
  op->bytes = op->pier__r.progress;
  if (type == PIER_OP_RECVFROM) op->addrlen = (size_t)fromlen;
  if (recv && (in & PIER_MSG_OOB)) op->flags |= PIER_MSG_OOB;
  op->status = 0;
  if (dgram || (recv && bytes == 0)) return 0;
  if (recv && !((in & PIER_MSG_WAITALL) && !(in & PIER_MSG_PEEK))) return 0;
  return op->pier__r.progress < total(op) ? 2 : 0; /* 2: more, at once */
}

static int try_accept(iocp_sock *is, pier_op *op) {
  struct sockaddr_storage a;
  int alen = sizeof a;
  SOCKET ns = WSAAccept(is->sock, (struct sockaddr *)&a, &alen,
                        op->pier__r.cond ? pier__iocp_condition : NULL,
                        (DWORD_PTR)op);
  if (ns == INVALID_SOCKET) {
    int err = WSAGetLastError();
    if (would_block(err)) return 1;
    if (err == WSAECONNREFUSED || err == WSAECONNRESET || err == WSAECONNABORTED)
      return 2; /* rejected: look again */
    op->status = err == WSATRY_AGAIN ? PIER_ETRYAGAIN : pier_spi_os_error(err);
    return 0;
  }
  WSAEventSelect(ns, NULL, 0);
  pier_socket *out;
  op->status = pier_spi_accepted(is->s, ns, &out);
  if (op->status) closesocket(ns);
  else op->accepted = out;
  return 0;
}

static int connect_state(iocp_sock *is, pier_op *op, int *started) {
  if (!*started) {
    *started = 1;
    if (is->connecting) {
      op->status = PIER_EALREADY;
      return 0;
    }
    if (connect(is->sock, (struct sockaddr *)&op->pier__r.addr,
                (int)op->pier__r.addr_len) == 0) {
      is->connected = 1;
      op->status = 0;
      return 0;
    }
    int err = WSAGetLastError();
    if (!would_block(err)) {
      op->status = pier_spi_os_error(err);
      return 0;
    }
    is->connecting = 1;
    return 1;
  }
  int err = 0, len = sizeof err;
  getsockopt(is->sock, SOL_SOCKET, SO_ERROR, (char *)&err, &len);
  struct sockaddr_storage peer;
  int plen = sizeof peer;
  if (!err && getpeername(is->sock, (struct sockaddr *)&peer, &plen) != 0)
    return 1; /* not yet */
  is->connecting = 0;
  if (!err) is->connected = 1;
  op->status = err ? pier_spi_os_error(err) : 0;
  return 0;
}

int pier__iocp_execute(pier_socket *s, pier_op *op) {
  iocp_sock *is = iocp_sock_of(s);
  iocp_waiter w;
  int wait = !pier_spi_nonblocking(s), started = 0, rc = 0;
  if (wait && (rc = waiter_begin(is, &w)) != 0) return rc;
  for (;;) {
    int want = WANT_READ, again;
    if (op->pier__r.type == PIER_OP_ACCEPT) again = try_accept(is, op);
    else if (op->pier__r.type == PIER_OP_CONNECT) {
      want = WANT_WRITE;
      again = connect_state(is, op, &started);
    } else again = try_io(is, op, &want);
    if (again == 0) {
      rc = op->status;
      break;
    }
    if (again == 2) continue;
    if (!wait) {
      rc = PIER_EWOULDBLOCK;
      break;
    }
    if ((rc = wait_ready(is, &w, want)) != 0) break;
  }
  if (wait) waiter_end(is, &w);
  if (op->pier__r.type == PIER_OP_CONNECT && rc != PIER_EWOULDBLOCK)
    is->connecting = 0;
  return rc;
}

int pier__iocp_cancel_blocking(pier_socket *s) {
  iocp_sock *is = iocp_sock_of(s);
  AcquireSRWLockExclusive(&is->il->block_lock);
  for (iocp_waiter *w = is->waiters; w; w = w->next) {
    if (w->signaled) continue;
    w->signaled = 1;
    wake_signal(w->wake);
  }
  ReleaseSRWLockExclusive(&is->il->block_lock);
  return 0;
}
