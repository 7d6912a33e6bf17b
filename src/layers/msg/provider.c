/* SPDX-License-Identifier: MIT */
/*
 * src/layers/msg/provider.c - the message layer's provider table: open and
 * close over the lower socket, the calls it passes down (bind, listen,
 * names, options), and the dispatch of operations to handshake.c and
 * io.c.
 */
#include <string.h>
#ifndef _WIN32
#  include <netinet/in.h>
#  include <netinet/tcp.h>
#endif

#include "msg.h"

static int msg_open(pier_socket *s, const pier_protocol_info *proto,
                    pier_os_socket handle) {
  msg_sock *m = msg_of(s);
  pier_socket *lower = pier_spi_lower(s);
  if (!lower || handle != PIER_INVALID_SOCKET)
    return pier_spi_bad_arg("pier_spi_layer_open", "%s",
                            !lower ? "the msg layer needs a lower socket"
                            : "the msg layer takes no OS handle");
  m->s = s;
  m->lower = lower;
  m->framed = (proto->caps & PIER_CAP_MESSAGE) != 0;
  m->max_message = PIER_MESSAGE_DEFAULT_MAX;
  m->timeout_ms = PIER_HANDSHAKE_TIMEOUT_DEFAULT;
  pier__wire_reader_init(&m->rd, (uint64_t)m->max_message);
  pier_socket_set_data(lower, m);
  pier_spi_set_handle(s, pier_socket_handle(lower));
  return 0;
}

static void lower_closed(pier_socket *lower) {
  msg_sock *m = pier_socket_get_data(lower);
  pier_loop *loop = pier_socket_loop(m->s);
  pier_spi_lock(loop);
  /* Every lower operation has been delivered: no OS call can still be
     writing into these buffers. */
  pier_spi_free(m->rbuf);
  pier_spi_free(m->hello);
  pier_spi_free(m->cdata);
  pier_spi_free(m->ddata);
  pier_spi_free(m->answer);
  pier__lacc_free(&m->lst);
  m->rbuf = m->hello = m->cdata = m->ddata = m->answer = NULL;
  pier_spi_closed(m->s);
  pier_spi_unlock(loop);
}

static void msg_close(pier_socket *s) {
  msg_sock *m = msg_of(s);
  m->closing = 1;
  pier__msg_end_ops(m, PIER_ECANCELED);
  if (m->phase == MSG_LISTENING) pier__lacc_close(&m->lst);
  pier__lacc_detach(&m->lc);
  /* Lower operations still pending complete with PIER_ECANCELED first,
     and their callbacks see m->closing. */
  pier_close(m->lower, lower_closed);
}

static int msg_bind(pier_socket *s, const struct sockaddr *a, size_t len) {
  return pier_bind(msg_of(s)->lower, a, len);
}

static int msg_listen(pier_socket *s, int backlog) {
  msg_sock *m = msg_of(s);
  if (m->phase != MSG_IDLE && m->phase != MSG_LISTENING) return PIER_EISCONN;
#ifdef TCP_FASTOPEN
  /* Requests may come in the SYN (TCP Fast Open) where the OS allows it;
     a refusal changes nothing. */
#  ifdef _WIN32
  int tfo = 1;
#  else
  int tfo = LACC_MAX_PENDING;
#  endif
  pier_setsockopt_raw(m->lower, IPPROTO_TCP, TCP_FASTOPEN, &tfo, sizeof tfo);
#endif
  /* Where the base provider can, the request comes with the accept
     (AcceptEx's receive buffer); callers silent past the handshake
     timeout are dropped there. */
  pier_setsockopt(m->lower, PIER_SO_ACCEPT_FIRST, m->timeout_ms);
  int rc = pier_listen(m->lower, backlog);
  if (rc == 0 && m->phase == MSG_IDLE) {
    m->phase = MSG_LISTENING;
    rc = pier__lacc_listen(&m->lst, s, m->lower, &pier__layer_msg,
                           &pier__msg_accepts, 1);
  }
  return rc;
}

static int msg_shutdown(pier_socket *s, int how) {
  msg_sock *m = msg_of(s);
  if (how != PIER_SHUT_RD) m->wshut = 1;
  return pier_shutdown(m->lower, how);
}

static int msg_sockname(pier_socket *s, int peer, struct sockaddr_storage *a,
                        size_t *len) {
  msg_sock *m = msg_of(s);
  return peer ? pier_getpeername(m->lower, a, len)
              : pier_getsockname(m->lower, a, len);
}

static int get_disconnect(msg_sock *m, void *val, size_t *len) {
  if (!m->framed) return PIER_ENOPROTOOPT;
  if (!m->disc_seen || m->dgot < m->dlen) return PIER_ENOTCONN;
  size_t n = m->dlen < *len ? m->dlen : *len;
  if (n) memcpy(val, m->ddata, n);
  *len = m->dlen;
  return 0;
}

static int msg_getsockopt(pier_socket *s, int level, int name, void *val,
                          size_t *len) {
  msg_sock *m = msg_of(s);
  if (level != PIER_SOL_PROVIDER)
    return pier_getsockopt_raw(m->lower, level, name, val, len);
  if (name == PIER_SPI_OPT_DISCONNECT_DATA) return get_disconnect(m, val, len);
  if (*len < sizeof(int))
    return pier_spi_bad_arg("pier_getsockopt_raw",
                            "*len %lu is shorter than an int",
                            (unsigned long)*len);
  int rc = pier__lacc_getopt(&m->lst, name, val);
  if (rc != PIER_ENOPROTOOPT) {
    if (rc == 0) *len = sizeof(int);
    return rc;
  }
  if (name == PIER_SO_MAX_MESSAGE && m->framed) *(int *)val = m->max_message;
  else if (name == PIER_SO_HANDSHAKE_TIMEOUT) *(int *)val = m->timeout_ms;
  else if (name == PIER_SPI_OPT_INLINE_SUCCESS) *(int *)val = 0;
  else return PIER_ENOPROTOOPT;
  *len = sizeof(int);
  return 0;
}

static int msg_setsockopt(pier_socket *s, int level, int name, const void *val,
                          size_t len) {
  msg_sock *m = msg_of(s);
  if (level != PIER_SOL_PROVIDER)
    return pier_setsockopt_raw(m->lower, level, name, val, len);
  if (len != sizeof(int))
    return pier_spi_bad_arg("pier_setsockopt_raw", "len %lu is not sizeof(int)",
                            (unsigned long)len);
  int v = *(const int *)val;
  int rc = pier__lacc_setopt(&m->lst, name, v);
  if (rc != PIER_ENOPROTOOPT) return rc;
  if (name == PIER_SO_MAX_MESSAGE && m->framed) {
    m->max_message = v;
    m->rd.max = (uint64_t)v;
    return 0;
  }
  if (name == PIER_SO_HANDSHAKE_TIMEOUT) {
    m->timeout_ms = v;
    if (m->phase == MSG_LISTENING) /* silent callers held by the base */
      pier_setsockopt(m->lower, PIER_SO_ACCEPT_FIRST, v);
    return 0;
  }
  if (name == PIER_SO_PREPOSTED_ACCEPTS || name == PIER_SO_ZERO_READ)
    return pier_setsockopt(m->lower, name, v);
  return PIER_ENOPROTOOPT;
}

static int msg_ioctl(pier_socket *s, int cmd, void *arg) {
  msg_sock *m = msg_of(s);
  if (cmd == PIER_SIOCATMARK) {
    *(int *)arg = 1; /* no urgent data on these protocols */
    return 0;
  }
  if (cmd != PIER_FIONREAD)
    return pier_spi_bad_arg("pier_ioctl",
                            "cmd %d is not PIER_FIONREAD or PIER_SIOCATMARK",
                            cmd);
  size_t buffered = m->rend - m->rstart, below = 0;
  if (m->framed) {
    /* The part of the current message this side already holds. */
    size_t left = m->rd.in_frame && m->rd.type == WIRE_F_DATA
                      ? (size_t)m->rd.left : 0;
    *(size_t *)arg = buffered < left ? buffered : left;
    return 0;
  }
  int rc = pier_ioctl(m->lower, PIER_FIONREAD, &below);
  if (rc == 0) *(size_t *)arg = buffered + below;
  return rc;
}

static int msg_submit(pier_socket *s, pier_op *op) {
  msg_sock *m = msg_of(s);
  switch (op->pier__r.type) {
  case PIER_OP_CONNECT: return pier__msg_connect(m, op);
  case PIER_OP_ACCEPT:
    return m->phase == MSG_LISTENING ? pier__lacc_accept(&m->lst, op)
                                     : pier_spi_bad_arg(
                                         "pier_accept", "listener is not listening");
  case PIER_OP_RECV:
  case PIER_OP_RECVFROM: return pier__msg_recv(m, op);
  case PIER_OP_SEND: return pier__msg_send(m, op);
  case PIER_OP_DISCONNECT: return pier__msg_disconnect(m, op);
  default: return PIER_EOPNOTSUPP;
  }
}

static int msg_cancel(pier_socket *s, pier_op *op) {
  msg_sock *m = msg_of(s);
  switch (op->pier__r.type) {
  case PIER_OP_CONNECT:
    if (m->uconnect != op) return PIER_ENOENT;
    /* The lower connect or handshake goes on being cancelled below;
       its callback finds no upper op to complete. */
    m->uconnect = NULL;
    pier__msg_fail(m, PIER_ECANCELED);
    pier_spi_complete(op, PIER_ECANCELED);
    return 0;
  case PIER_OP_ACCEPT: return pier__lacc_cancel(&m->lst, op);
  case PIER_OP_RECV:
  case PIER_OP_RECVFROM:
    if (m->rop_direct && m->recvq.head == op) {
      /* Its buffers are under the lower receive: that one goes first. */
      pier_cancel(&m->rop);
      return 0;
    }
    pier_opq_remove(&m->recvq, op);
    /* A message begun in it is handed over rather than lost. */
    if (op->bytes) {
      op->flags |= PIER_MSG_PARTIAL;
      pier_spi_complete(op, 0);
    } else {
      pier_spi_complete(op, PIER_ECANCELED);
    }
    return 0;
  default: {
    msg_send *w = op->pier__r.ext;
    if (!w) return PIER_ENOENT;
    return pier_cancel(&w->low) == 0 ? 0 : PIER_ENOENT;
  }
  }
}

const pier_provider pier__layer_msg = {
  PIER_SPI_VERSION,
  "msg",
  PIER_PCAP_LAYER | PIER_PCAP_DISCONNECT,
  0,
  sizeof(msg_sock),
  NULL, /* probe, loop_init, loop_free, loop_poll, loop_wake: a layer */
  NULL, /* runs on its lower socket's loop and has none of its own */
  NULL,
  NULL,
  NULL,
  msg_open,
  msg_close,
  msg_bind,
  msg_listen,
  msg_shutdown,
  msg_sockname,
  msg_getsockopt,
  msg_setsockopt,
  msg_ioctl,
  msg_submit,
  msg_cancel,
  NULL, /* execute: the core waits on overlapped ops */
  NULL,
  NULL, /* select_events */
};
