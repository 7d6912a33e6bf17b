/* SPDX-License-Identifier: MIT */
/*
 * backends/iocp/io.c - overlapped receives, sends and connects.
 *
 * The WSABUF array handed to Winsock is the op's own copy of the caller's
 * pier_buf array (laid out as WSABUF).  A receive with PIER_MSG_WAITALL
 * that came back short, or a stream send Winsock took only in part, is
 * issued again for the rest: whole buffers already done are skipped
 * (x->skip) and the first remaining one is trimmed in place.
 */
#include <string.h>

#include "iocp.h"

typedef char pier_buf_is_wsabuf[(sizeof(pier_buf) == sizeof(WSABUF) &&
                                 offsetof(pier_buf, base) == offsetof(WSABUF, buf) &&
                                 offsetof(pier_buf, len) == offsetof(WSABUF, len))
                                    ? 1 : -1];
typedef char iocp_opx_fits[sizeof(iocp_opx) <= sizeof(((pier_op *)0)->pier__r.prov)
                               ? 1 : -1];

#ifndef SO_UPDATE_CONNECT_CONTEXT
#  define SO_UPDATE_CONNECT_CONTEXT 0x7010
#endif

static int is_dgram(iocp_sock *is) { return is->type == SOCK_DGRAM; }

static size_t remaining(const pier_op *op, unsigned skip) {
  size_t t = 0;
  for (size_t i = skip; i < op->pier__r.nbufs; i++) t += op->pier__r.bufs[i].len;
  return t;
}

/* Drop `bytes` from the front of the op's remaining buffers. */
static void advance(pier_op *op, iocp_opx *x, size_t bytes) {
  pier_buf *b = op->pier__r.bufs;
  while (bytes > 0 && x->skip < op->pier__r.nbufs) {
    if (bytes >= b[x->skip].len) {
      bytes -= b[x->skip].len;
      x->skip++;
    } else {
      b[x->skip].base += bytes;
      b[x->skip].len -= (unsigned long)bytes;
      bytes = 0;
    }
  }
}

static int is_read(const pier_op *op) {
  return op->pier__r.type == PIER_OP_RECV || op->pier__r.type == PIER_OP_RECVFROM;
}

static pier_opq *queue_of(iocp_sock *is, const pier_op *op) {
  if (op->pier__r.type == PIER_OP_CONNECT) return NULL;
  return is_read(op) ? &is->rq : &is->wq;
}

static void issue(iocp_sock *is, pier_op *op);

/* Hand the queue's head to Winsock, and the next when one completes at
   once; re-entered from those completions, the outer call goes on.  On a
   closing socket the ops Winsock never saw complete canceled instead, in
   order, once the head (if it was issued) has come back. */
static void pump(iocp_sock *is, pier_opq *q) {
  int *busy = q == &is->rq ? &is->pumping_r : &is->pumping_w;
  if (*busy) return;
  *busy = 1;
  while (q->head && !iocp_opx_of(q->head)->issued) {
    pier_op *op = q->head;
    if (is->closing) {
      pier_opq_remove(q, op);
      pier_spi_complete(op, PIER_ECANCELED);
      continue;
    }
    iocp_opx_of(op)->issued = 1;
    issue(is, op);
  }
  *busy = 0;
}

static void finish(iocp_sock *is, pier_op *op, int status) {
  op->bytes = op->pier__r.progress;
  pier_opq *q = queue_of(is, op);
  if (q) pier_opq_remove(q, op);
  pier_spi_complete(op, status);
  if (q) pump(is, q);
}

static void took_back(iocp_sock *is, iocp_opx *x) {
  x->in_flight = 0;
  InterlockedDecrement(&is->inflight);
}

/* Hand one WSARecv/WSARecvFrom/WSASend/WSASendTo to Winsock. */
static void issue(iocp_sock *is, pier_op *op) {
  iocp_opx *x = iocp_opx_of(op);
  memset(&x->h.ov, 0, sizeof x->h.ov);
  WSABUF *b = (WSABUF *)(void *)(op->pier__r.bufs + x->skip);
  DWORD n = (DWORD)(op->pier__r.nbufs - x->skip), bytes = 0;
  unsigned in = op->pier__r.in_flags;
  struct sockaddr *to = (struct sockaddr *)&op->pier__r.addr;
  int rc, dir = is_read(op) ? IOCP_DIR_R : IOCP_DIR_W;
  x->in_flight = 1;
  InterlockedIncrement(&is->inflight);
  pier__iocp_ev_arm(is, dir, &x->h.ov);
  switch (op->pier__r.type) {
  case PIER_OP_RECV:
  case PIER_OP_RECVFROM:
    x->flags = ((in & PIER_MSG_PEEK) ? MSG_PEEK : 0) | ((in & PIER_MSG_OOB) ? MSG_OOB : 0);
    x->zero = op->pier__r.type == PIER_OP_RECV && is->zero_read && x->flags == 0;
    if (x->zero) { /* wait for data without handing Winsock a buffer */
      static char none;
      WSABUF empty = { 0, &none };
      rc = WSARecv(is->sock, &empty, 1, &bytes, &x->flags, &x->h.ov, NULL);
    } else if (op->pier__r.type == PIER_OP_RECV) {
      rc = WSARecv(is->sock, b, n, &bytes, &x->flags, &x->h.ov, NULL);
    } else {
      struct sockaddr *from = op->pier__r.from ? (struct sockaddr *)op->pier__r.from : to;
      x->fromlen = (INT)sizeof(struct sockaddr_storage);
      rc = WSARecvFrom(is->sock, b, n, &bytes, &x->flags, from, &x->fromlen,
                       &x->h.ov, NULL);
    }
    break;
  default: /* PIER_OP_SEND, PIER_OP_SENDTO */
    x->flags = (in & PIER_MSG_OOB) ? MSG_OOB : 0;
    if (op->pier__r.type == PIER_OP_SEND)
      rc = WSASend(is->sock, b, n, &bytes, x->flags, &x->h.ov, NULL);
    else
      rc = WSASendTo(is->sock, b, n, &bytes, x->flags, to,
                     (int)op->pier__r.addr_len, &x->h.ov, NULL);
    break;
  }
  int err = rc == 0 ? 0 : WSAGetLastError();
  if (pier__iocp_owed(is, dir, &x->h.ov, rc == 0, err)) return; /* a packet */
  /* Done or failed at once, and no packet will come for it. */
  took_back(is, x);
  pier__iocp_op_done(is, op, bytes, err, x->flags);
}

static int bind_any(iocp_sock *is) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  ss.ss_family = (ADDRESS_FAMILY)is->family;
  int len = is->family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                   : (int)sizeof(struct sockaddr_in);
  if (bind(is->sock, (struct sockaddr *)&ss, len) != 0)
    return pier_spi_os_error(WSAGetLastError());
  is->bound = 1;
  return 0;
}

static int start_connect(iocp_sock *is, pier_op *op) {
  const struct sockaddr *a = (const struct sockaddr *)&op->pier__r.addr;
  int alen = (int)op->pier__r.addr_len;
  if (is->connecting) return PIER_EALREADY;
  if (is_dgram(is)) { /* a UDP connect only sets the default peer */
    int rc = connect(is->sock, a, alen);
    finish(is, op, rc == 0 ? 0 : pier_spi_os_error(WSAGetLastError()));
    return 0;
  }
  if (is->connected) return PIER_EISCONN;
  if (!is->bound) {
    int rc = bind_any(is);
    if (rc) return rc;
  }
  iocp_opx *x = iocp_opx_of(op);
  memset(&x->h.ov, 0, sizeof x->h.ov);
  x->in_flight = 1;
  is->connecting = 1;
  InterlockedIncrement(&is->inflight);
  pier__iocp_ev_arm(is, IOCP_DIR_W, &x->h.ov);
  /* First data (pier_connect_first) rides in ConnectEx's send buffer,
     in the SYN where Windows has TCP Fast Open (asked for here; refused
     quietly elsewhere, Wine included). */
  void *first = NULL;
  DWORD nfirst = 0;
  if (op->pier__r.nbufs) {
    first = op->pier__r.bufs[0].base;
    nfirst = (DWORD)op->pier__r.bufs[0].len;
#ifdef TCP_FASTOPEN
    DWORD on = 1;
    setsockopt(is->sock, IPPROTO_TCP, TCP_FASTOPEN, (const char *)&on, sizeof on);
#endif
  }
  BOOL ok = is->il->connectex(is->sock, a, alen, first, nfirst, NULL,
                              &x->h.ov);
  int err = ok ? 0 : WSAGetLastError();
  if (pier__iocp_owed(is, IOCP_DIR_W, &x->h.ov, ok, err)) return 0;
  took_back(is, x);
  pier__iocp_op_done(is, op, 0, err, 0);
  return 0;
}

int pier__iocp_start(iocp_sock *is, pier_op *op) {
  if (op->pier__r.type == PIER_OP_CONNECT) return start_connect(is, op);
  if (!is_dgram(is) && !is->connected) {
    /* Winsock (and Wine) differ on what they say here; pier says this. */
    pier_spi_complete(op, PIER_ENOTCONN);
    return 0;
  }
  pier_opq *q = queue_of(is, op);
  pier_opq_push(q, op);
  pump(is, q);
  return 0;
}

/* A queued op Winsock has not seen yet: complete it canceled. */
int pier__iocp_cancel_queued(iocp_sock *is, pier_op *op) {
  pier_opq *q = queue_of(is, op);
  if (!q || iocp_opx_of(op)->issued) return PIER_ENOENT;
  pier_op *it = q->head;
  while (it && it != op) it = it->pier__r.next;
  if (!it) return PIER_ENOENT;
  pier_opq_remove(q, op);
  pier_spi_complete(op, PIER_ECANCELED);
  return 0;
}

/* On close: queues whose head Winsock never saw are canceled now; the
   others follow their head when it comes back aborted. */
void pier__iocp_cancel_unissued(iocp_sock *is) {
  pump(is, &is->rq);
  pump(is, &is->wq);
}

/* A zero-byte read came back: now take the data without waiting.
   Returns 1 when the op was issued again (nothing there after all). */
static int after_zero_read(iocp_sock *is, pier_op *op, DWORD *bytes, int *err,
                           DWORD *flags) {
  iocp_opx *x = iocp_opx_of(op);
  x->zero = 0;
  if (*err) return 0;
  WSABUF *b = (WSABUF *)(void *)(op->pier__r.bufs + x->skip);
  *flags = 0;
  if (WSARecv(is->sock, b, (DWORD)(op->pier__r.nbufs - x->skip), bytes, flags,
              NULL, NULL) == 0)
    return 0;
  *err = WSAGetLastError();
  if (*err != WSAEWOULDBLOCK) return 0;
  issue(is, op);
  return 1;
}

static void recv_done(iocp_sock *is, pier_op *op, DWORD bytes, int err,
                      DWORD flags) {
  iocp_opx *x = iocp_opx_of(op);
  unsigned in = op->pier__r.in_flags;
  if (x->zero && after_zero_read(is, op, &bytes, &err, &flags)) return;
  if (err == WSAEMSGSIZE && is_dgram(is)) { /* the rest of it is lost */
    op->flags |= PIER_MSG_TRUNC;
    bytes = (DWORD)remaining(op, x->skip);
    err = 0;
  }
  if (err) {
    finish(is, op, pier__iocp_error(is, err));
    return;
  }
  if (op->pier__r.type == PIER_OP_RECVFROM) op->addrlen = (size_t)x->fromlen;
  if (flags & MSG_PARTIAL) op->flags |= PIER_MSG_PARTIAL;
  if (in & PIER_MSG_OOB) op->flags |= PIER_MSG_OOB;
  size_t left = remaining(op, x->skip);
  op->pier__r.progress += bytes;
  if (bytes == 0 && !is_dgram(is) && left > 0) { /* end of stream */
    finish(is, op, is->reset ? PIER_ECONNRESET : 0);
    return;
  }
  if ((in & PIER_MSG_WAITALL) && !(in & PIER_MSG_PEEK) && bytes < left) {
    advance(op, x, bytes);
    issue(is, op);
    return;
  }
  finish(is, op, 0);
}

static void send_done(iocp_sock *is, pier_op *op, DWORD bytes, int err) {
  iocp_opx *x = iocp_opx_of(op);
  if (err) {
    finish(is, op, pier__iocp_error(is, err));
    return;
  }
  size_t left = remaining(op, x->skip);
  op->pier__r.progress += bytes;
  if (!is_dgram(is) && bytes < left && bytes > 0) {
    advance(op, x, bytes);
    issue(is, op);
    return;
  }
  finish(is, op, 0);
}

void pier__iocp_op_done(iocp_sock *is, pier_op *op, DWORD bytes, int err,
                        DWORD flags) {
  switch (op->pier__r.type) {
  case PIER_OP_RECV:
  case PIER_OP_RECVFROM: recv_done(is, op, bytes, err, flags); break;
  case PIER_OP_SEND:
  case PIER_OP_SENDTO: send_done(is, op, bytes, err); break;
  case PIER_OP_CONNECT:
    is->connecting = 0;
    if (!err) {
      setsockopt(is->sock, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0);
      is->connected = 1;
      op->pier__r.progress = bytes; /* first data sent with it */
    }
    finish(is, op, err ? pier__iocp_error(is, err) : 0);
    break;
  default:
    finish(is, op, PIER_EINVAL);
    break;
  }
}
