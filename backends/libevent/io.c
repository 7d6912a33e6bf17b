/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/io.c - one non-blocking attempt at a receive, send or
 * connect.  Shared by overlapped operations (provider.c) and blocking
 * calls (block.c), so an attempt leaves the readiness flags alone: the
 * caller knows whether it may change them (lev.h).  Scatter/gather goes
 * straight to recvmsg/sendmsg: a pier_buf array is laid out as an iovec
 * array.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "lev.h"

#ifndef MSG_NOSIGNAL
#  define MSG_NOSIGNAL 0 /* SO_NOSIGPIPE is set at open instead */
#endif
#ifndef IOV_MAX
#  define IOV_MAX 1024
#endif

typedef char pier_buf_is_iovec[(sizeof(pier_buf) == sizeof(struct iovec) &&
                                offsetof(pier_buf, base) ==
                                    offsetof(struct iovec, iov_base) &&
                                offsetof(pier_buf, len) ==
                                    offsetof(struct iovec, iov_len))
                                   ? 1 : -1];

int pier__lev_error(lev_sock *ls, int err) {
  if (err == ECONNRESET) ls->reset = 1;
  if (ls->reset && (err == EPIPE || err == ENOTCONN)) return PIER_ECONNRESET;
  /* Linux says EPIPE for a send on a stream that never connected. */
  if (err == EPIPE && !ls->connected) return PIER_ENOTCONN;
  return pier_spi_os_error(err);
}

static size_t total_len(const pier_op *op) {
  size_t t = 0;
  for (size_t i = 0; i < op->pier__r.nbufs; i++) t += op->pier__r.bufs[i].len;
  return t;
}

#define LEV_IOV_COPY 64

/*
 * Point msg at the part of the buffers after the first `done` bytes.  At
 * a buffer boundary the caller's array is used as is; inside a buffer the
 * next few entries are copied into tmp with the first one trimmed.
 */
static void window(const pier_op *op, size_t done, struct msghdr *msg,
                   struct iovec *tmp) {
  const pier_buf *b = op->pier__r.bufs;
  size_t n = op->pier__r.nbufs, i = 0;
  while (i < n && done >= b[i].len) done -= b[i++].len;
  memset(msg, 0, sizeof *msg);
  size_t cnt = n - i;
  if (cnt == 0) return;
  if (done == 0) {
    msg->msg_iov = (struct iovec *)(void *)(b + i);
  } else {
    if (cnt > LEV_IOV_COPY) cnt = LEV_IOV_COPY;
    memcpy(tmp, b + i, cnt * sizeof *tmp);
    tmp[0].iov_base = b[i].base + done;
    tmp[0].iov_len = b[i].len - done;
    msg->msg_iov = tmp;
  }
  msg->msg_iovlen = cnt > IOV_MAX ? IOV_MAX : cnt;
}

static int finish(pier_op *op, int status) {
  op->status = status;
  op->bytes = op->pier__r.progress;
  return LEV_DONE;
}

int pier__lev_try_recv(lev_sock *ls, pier_op *op) {
  unsigned in = op->pier__r.in_flags;
  int dgram = (pier_socket_protocol(ls->s)->caps & PIER_CAP_CONNECTIONLESS);
  int flags = ((in & PIER_MSG_PEEK) ? MSG_PEEK : 0) |
              ((in & PIER_MSG_OOB) ? MSG_OOB : 0);
  size_t want = total_len(op);
  for (;;) {
    struct msghdr msg;
    struct iovec tmp[LEV_IOV_COPY];
    window(op, op->pier__r.progress, &msg, tmp);
    struct sockaddr_storage junk;
    if (op->pier__r.type == PIER_OP_RECVFROM) {
      msg.msg_name = op->pier__r.from ? (void *)op->pier__r.from : (void *)&junk;
      msg.msg_namelen = sizeof junk;
    }
    ssize_t n = sys_recvmsg(ls->fd, &msg, flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return LEV_WAIT;
      if ((in & PIER_MSG_OOB) && errno == EINVAL) return LEV_WAIT; /* none yet */
      return finish(op, pier__lev_error(ls, errno));
    }
    op->pier__r.progress += (size_t)n;
    if (op->pier__r.type == PIER_OP_RECVFROM) op->addrlen = msg.msg_namelen;
    if (msg.msg_flags & MSG_TRUNC) op->flags |= PIER_MSG_TRUNC;
    if (in & PIER_MSG_OOB) op->flags |= PIER_MSG_OOB;
    if (n == 0 && !dgram && want > 0) /* end of stream */
      return finish(op, ls->reset ? PIER_ECONNRESET : 0);
    if ((in & PIER_MSG_WAITALL) && op->pier__r.progress < want &&
        !(in & PIER_MSG_PEEK))
      continue;
    return finish(op, 0);
  }
}

int pier__lev_try_send(lev_sock *ls, pier_op *op) {
  unsigned in = op->pier__r.in_flags;
  int dgram = (pier_socket_protocol(ls->s)->caps & PIER_CAP_CONNECTIONLESS);
  int flags = MSG_NOSIGNAL | ((in & PIER_MSG_OOB) ? MSG_OOB : 0);
  size_t want = total_len(op);
  for (;;) {
    struct msghdr msg;
    struct iovec tmp[LEV_IOV_COPY];
    window(op, op->pier__r.progress, &msg, tmp);
    if (op->pier__r.type == PIER_OP_SENDTO) {
      msg.msg_name = &op->pier__r.addr;
      msg.msg_namelen = (socklen_t)op->pier__r.addr_len;
    }
    if (!dgram && op->pier__r.progress == want) return finish(op, 0);
    ssize_t n = sys_sendmsg(ls->fd, &msg, flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return LEV_WAIT;
      return finish(op, pier__lev_error(ls, errno));
    }
    op->pier__r.progress += (size_t)n;
    if (dgram || op->pier__r.progress == want) return finish(op, 0);
  }
}

/*
 * A connect with first data (pier_connect_first): TCP Fast Open where
 * the kernel has TCP_FASTOPEN_CONNECT and allows it.  connect() then
 * returns at once and the first send carries the data in the SYN when the
 * kernel holds a cookie for the server; without one the kernel asks for a
 * cookie and the send says EINPROGRESS, the connection going on as any
 * other (the data is the caller's to send after).
 */
static int fast_open(lev_sock *ls, pier_op *op) {
#ifdef TCP_FASTOPEN_CONNECT
  int on = 1;
  if (op->pier__r.nbufs == 0 ||
      pier_socket_protocol(ls->s)->protocol != IPPROTO_TCP ||
      sys_setsockopt(ls->fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &on,
                     sizeof on) != 0)
    return 0;
  return 1;
#else
  (void)ls;
  (void)op;
  return 0;
#endif
}

static int first_send(lev_sock *ls, pier_op *op) {
  const pier_buf *b = &op->pier__r.bufs[0];
  for (;;) {
    ssize_t n = sys_send(ls->fd, b->base, b->len, MSG_NOSIGNAL);
    if (n >= 0) {
      op->pier__r.progress = (size_t)n;
      ls->connected = 1;
      return finish(op, 0);
    }
    if (errno == EINTR) continue;
    if (errno == EINPROGRESS || errno == EAGAIN || errno == EWOULDBLOCK) {
      ls->connecting = 1; /* no cookie yet: an ordinary handshake */
      return LEV_WAIT;
    }
    return finish(op, pier__lev_error(ls, errno));
  }
}

int pier__lev_connect_start(lev_sock *ls, pier_op *op) {
  const struct sockaddr *a = (const struct sockaddr *)&op->pier__r.addr;
  int tfo = fast_open(ls, op);
  for (;;) {
    if (sys_connect(ls->fd, a, (socklen_t)op->pier__r.addr_len) == 0) {
      if (tfo) return first_send(ls, op);
      ls->connected = 1;
      return finish(op, 0);
    }
    if (errno == EINTR) continue;
    if (errno == EINPROGRESS || errno == EAGAIN) {
      ls->connecting = 1;
      return LEV_WAIT;
    }
    return finish(op, pier__lev_error(ls, errno));
  }
}

int pier__lev_connect_finish(lev_sock *ls, pier_op *op) {
  int err = 0;
  socklen_t len = sizeof err;
  if (sys_getsockopt(ls->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err == EINPROGRESS || err == EALREADY) return LEV_WAIT;
  ls->connecting = 0;
  if (err == 0) ls->connected = 1;
  return finish(op, err ? pier__lev_error(ls, err) : 0);
}
