/* SPDX-License-Identifier: MIT */
/*
 * backends/iocp/block.c - blocking calls (an operation started with no
 * callback) and pier_cancel_blocking on Windows.
 *
 * The OS socket is always non-blocking (its completion port does the
 * overlapped work), so a blocking call makes non-overlapped attempts -
 * WSARecv/WSASend without an OVERLAPPED post nothing to the port - and
 * waits in select() between them, in short slices so that a cancel from
 * another thread (a flag under the loop's block_lock) ends it promptly.
 */
#include <string.h>

#include "iocp.h"

#define SLICE_MS 10

struct iocp_waiter {
  iocp_waiter *next;
  int canceled;
};

enum { WANT_READ = 1, WANT_WRITE = 2 };

static void waiter_link(iocp_sock *is, iocp_waiter *w, int add) {
  AcquireSRWLockExclusive(&is->il->block_lock);
  if (add) {
    w->next = is->waiters;
    is->waiters = w;
  } else {
    iocp_waiter **p = &is->waiters;
    while (*p && *p != w) p = &(*p)->next;
    if (*p) *p = w->next;
  }
  ReleaseSRWLockExclusive(&is->il->block_lock);
}

static int canceled(iocp_sock *is, iocp_waiter *w) {
  AcquireSRWLockExclusive(&is->il->block_lock);
  int c = w->canceled;
  ReleaseSRWLockExclusive(&is->il->block_lock);
  return c;
}

/* Wait until the socket may be ready for `want`, or the call is canceled. */
static int wait_ready(iocp_sock *is, iocp_waiter *w, int want) {
  for (;;) {
    if (canceled(is, w)) return PIER_ECANCELED;
    fd_set r, wr, ex;
    FD_ZERO(&r);
    FD_ZERO(&wr);
    FD_ZERO(&ex);
    if (want & WANT_READ) FD_SET(is->sock, &r);
    if (want & WANT_WRITE) FD_SET(is->sock, &wr);
    FD_SET(is->sock, &ex); /* failed connects and urgent data */
    struct timeval tv = { 0, SLICE_MS * 1000 };
    int n = select(0, &r, &wr, &ex, &tv);
    if (n < 0) return pier_spi_os_error(WSAGetLastError());
    if (n > 0) return 0;
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
  iocp_waiter w = { NULL, 0 };
  int linked = 0, started = 0, rc = 0;
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
    if (pier_spi_nonblocking(s)) {
      rc = PIER_EWOULDBLOCK;
      break;
    }
    if (!linked) {
      waiter_link(is, &w, 1);
      linked = 1;
    }
    if ((rc = wait_ready(is, &w, want)) != 0) break;
  }
  if (linked) waiter_link(is, &w, 0);
  if (op->pier__r.type == PIER_OP_CONNECT && rc != PIER_EWOULDBLOCK)
    is->connecting = 0;
  return rc;
}

int pier__iocp_cancel_blocking(pier_socket *s) {
  iocp_sock *is = iocp_sock_of(s);
  int found = 0;
  AcquireSRWLockExclusive(&is->il->block_lock);
  for (iocp_waiter *w = is->waiters; w; w = w->next) {
    w->canceled = 1;
    found = 1;
  }
  ReleaseSRWLockExclusive(&is->il->block_lock);
  return found ? 0 : PIER_ENOENT;
}
