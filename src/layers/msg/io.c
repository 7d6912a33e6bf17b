/* SPDX-License-Identifier: MIT */
/*
 * src/layers/msg/io.c - data once the handshake is done: receives (framed:
 * one message per receive, PIER_MSG_PARTIAL when the buffers are smaller;
 * plain: the stream), sends (a frame header gathered in front of the
 * caller's buffers), and pier_disconnect with disconnect data.
 *
 * Section map
 *   1. the lower receive and the buffer
 *   2. delivering to receives
 *   3. sends and disconnect
 */
#include <string.h>

#include "msg.h"

/* ------------------------------------------------------------------ */
/* 1. the lower receive                                                */
/* ------------------------------------------------------------------ */

static size_t op_room(const pier_op *op) {
  size_t t = 0;
  for (size_t i = 0; i < op->pier__r.nbufs; i++) t += op->pier__r.bufs[i].len;
  return t;
}

/* Copy n bytes into op's buffers after the op->bytes already there. */
static void op_fill(pier_op *op, const uint8_t *p, size_t n) {
  size_t skip = op->bytes;
  for (size_t i = 0; i < op->pier__r.nbufs && n; i++) {
    pier_buf *b = &op->pier__r.bufs[i];
    if (skip >= b->len) {
      skip -= b->len;
      continue;
    }
    size_t take = b->len - skip;
    if (take > n) take = n;
    memcpy(b->base + skip, p, take);
    p += take;
    n -= take;
    op->bytes += take;
    skip = 0;
  }
}

static void on_read(pier_op *rop, int status);

void pier__msg_read(msg_sock *m) {
  if (m->rop_busy || m->closing || m->eof || m->rerr ||
      m->phase == MSG_FAILED)
    return;
  if (!m->rbuf && !(m->rbuf = pier_spi_malloc(MSG_RBUF))) {
    m->rerr = PIER_ENOMEM;
    return;
  }
  if (m->rstart == m->rend) m->rstart = m->rend = 0;
  if (m->rend == MSG_RBUF) {
    if (m->rstart == 0) return; /* full: the receives make room */
    memmove(m->rbuf, m->rbuf + m->rstart, m->rend - m->rstart);
    m->rend -= m->rstart;
    m->rstart = 0;
  }
  pier_op_init(&m->rop);
  m->rop.data = m;
  pier_buf b = pier_buf_init(m->rbuf + m->rend, MSG_RBUF - m->rend);
  int rc = pier_recv(m->lower, &m->rop, &b, 1, 0, on_read);
  if (rc) m->rerr = rc;
  else m->rop_busy = 1;
}

/* A plain stream with nothing buffered reads straight into the head
   receive's own buffers. */
static void read_direct(msg_sock *m, pier_op *op) {
  pier_op_init(&m->rop);
  m->rop.data = m;
  unsigned flags = op->pier__r.in_flags & (PIER_MSG_PEEK | PIER_MSG_WAITALL);
  int rc = pier_recv(m->lower, &m->rop, op->pier__r.bufs, op->pier__r.nbufs,
                     flags, on_read);
  if (rc) {
    m->rerr = rc;
    return;
  }
  m->rop_busy = 1;
  m->rop_direct = 1;
}

static void on_read(pier_op *rop, int status) {
  msg_sock *m = rop->data;
  pier_loop *loop = pier_socket_loop(m->s);
  pier_spi_lock(loop);
  m->rop_busy = 0;
  if (m->rop_direct) {
    m->rop_direct = 0;
    pier_op *op = pier_opq_pop(&m->recvq);
    if (op) {
      op->bytes = rop->bytes;
      op->flags = rop->flags;
      if (status == 0 && rop->bytes == 0) m->eof = 1;
      pier_spi_complete(op, status);
    }
  } else if (m->closing || m->phase == MSG_FAILED) {
    /* nothing more to do with what came */
  } else if (status) {
    m->rerr = status;
  } else if (rop->bytes == 0) {
    m->eof = 1;
  } else {
    m->rend += rop->bytes;
  }
  if (!m->closing && (m->phase == MSG_HELLO || m->phase == MSG_ANSWER))
    pier__msg_handshake_input(m);
  /* Until the answer, reading goes on: a caller waiting for its request
     to be decided (deferred, say) that goes away is dropped, not
     presented. */
  if (!m->closing && (m->phase == MSG_HELLO || m->phase == MSG_ANSWER ||
                      m->phase == MSG_ASKING)) {
    if (m->rerr || m->eof)
      pier__msg_handshake_lost(m, m->rerr ? m->rerr : PIER_ECONNABORTED);
    else
      pier__msg_read(m);
  }
  if (!m->closing) pier__msg_pump(m);
  pier_spi_unlock(loop);
}

/* ------------------------------------------------------------------ */
/* 2. delivering                                                       */
/* ------------------------------------------------------------------ */

void pier__msg_cancel_recvs(msg_sock *m, int status) {
  pier_op *op;
  while ((op = pier_opq_pop(&m->recvq)) != NULL) {
    if (m->rop_direct && !m->recvq.head) m->rop_direct = 0;
    pier_spi_complete(op, status);
  }
  m->rop_direct = 0;
}

static void done(msg_sock *m, int status) {
  pier_op *op = pier_opq_pop(&m->recvq);
  pier_spi_complete(op, status);
}

/* One step for a framed stream: 1 if it made progress. */
static int framed_step(msg_sock *m, pier_op *op) {
  size_t avail = m->rend - m->rstart;
  /* After the peer's disconnect (whole) nothing more is read: the end of
     the stream is what the receives report from then on. */
  if (avail == 0 || m->rerr || (m->disc_seen && m->dgot == m->dlen)) return 0;
  wire_event ev;
  const uint8_t *p = m->rbuf + m->rstart;
  size_t used = pier__wire_read(&m->rd, p, avail, op_room(op) - op->bytes, &ev);
  m->rstart += used;
  switch (ev.type) {
  case WIRE_EV_DATA:
    op_fill(op, p + ev.off, ev.len);
    if (ev.end) {
      done(m, 0);
    } else if (op->bytes == op_room(op)) {
      op->flags |= PIER_MSG_PARTIAL;
      done(m, 0);
    }
    return 1;
  case WIRE_EV_DISC:
    m->disc_seen = 1;
    m->dlen = ev.len;
    if (ev.len && !(m->ddata = pier_spi_malloc(ev.len))) {
      m->rerr = PIER_ENOMEM;
      return 1;
    }
    return 1;
  case WIRE_EV_DISC_DATA:
    memcpy(m->ddata + m->dgot, p + ev.off, ev.len);
    m->dgot += ev.len;
    return 1;
  case WIRE_EV_ERROR:
    m->rerr = ev.error;
    pier_spi_log(PIER_LOG_INFO, "msg: bad frame from the peer: %s",
                 pier_strerror(ev.error));
    pier_shutdown(m->lower, PIER_SHUT_RDWR);
    return 1;
  default:
    return used > 0;
  }
}

void pier__msg_pump(msg_sock *m) {
  while (!pier_opq_empty(&m->recvq) && m->phase == MSG_OPEN && !m->rop_direct) {
    pier_op *op = m->recvq.head;
    size_t avail = m->rend - m->rstart;
    if (!m->framed && avail) {
      size_t n = op_room(op);
      if (n > avail) n = avail;
      op_fill(op, m->rbuf + m->rstart, n);
      m->rstart += n;
      done(m, 0);
      continue;
    }
    if (m->framed && framed_step(m, op)) continue;
    if (m->rerr) {
      done(m, m->rerr);
      continue;
    }
    int ended = m->framed ? (m->disc_seen && m->dgot == m->dlen) : 0;
    if (m->eof && m->framed && !ended && !pier__wire_reader_at_boundary(&m->rd)) {
      m->rerr = PIER_ECONNABORTED; /* the stream ended inside a frame */
      continue;
    }
    if (ended || m->eof) {
      done(m, 0); /* end of stream: bytes 0 */
      continue;
    }
    if (m->rop_busy) return;
    if (!m->framed && m->rstart == m->rend) read_direct(m, op);
    else pier__msg_read(m);
    if (!m->rop_busy && !m->rerr) return; /* the buffer is full */
    if (!m->rop_busy) continue; /* rerr: delivered above */
    return;
  }
}

int pier__msg_recv(msg_sock *m, pier_op *op) {
  if (m->phase != MSG_OPEN)
    return m->phase == MSG_FAILED ? m->error : PIER_ENOTCONN;
  if (m->framed && (op->pier__r.in_flags & PIER_MSG_PEEK))
    return PIER_EOPNOTSUPP;
  if (m->framed && op_room(op) == 0)
    return pier_spi_bad_arg("pier_recv", "the buffers hold 0 bytes");
  pier_opq_push(&m->recvq, op);
  pier__msg_pump(m);
  return 0;
}

/* ------------------------------------------------------------------ */
/* 3. sends and disconnect                                             */
/* ------------------------------------------------------------------ */

static void on_sent(pier_op *low, int status) {
  msg_send *w = low->data;
  msg_sock *m = w->m;
  pier_loop *loop = pier_socket_loop(m->s);
  pier_spi_lock(loop);
  pier_op *up = w->upper;
  switch (w->kind) {
  case MSG_S_DATA:
    if (status && m->framed && low->bytes > 0 && low->bytes < w->wire_bytes)
      m->wbroken = 1; /* part of a message went out: framing is lost */
    if (up) {
      size_t hdr = m->framed ? WIRE_FRAME_SIZE : 0;
      up->bytes = low->bytes > hdr ? low->bytes - hdr : 0;
      up->pier__r.ext = NULL;
      pier_spi_complete(up, status);
    }
    break;
  case MSG_S_HELLO:
    if (status && !m->closing && m->phase == MSG_ANSWER)
      pier__msg_fail(m, status);
    break;
  case MSG_S_REJECT:
    pier__msg_rejected(m);
    break;
  case MSG_S_DISC:
    if (status == 0 && m->framed && !m->closing)
      status = pier_shutdown(m->lower, PIER_SHUT_WR);
    if (up) {
      up->pier__r.ext = NULL;
      pier_spi_complete(up, status);
    }
    break;
  default:
    break;
  }
  pier_spi_free(w->own);
  pier_spi_free(w);
  pier_spi_unlock(loop);
}

static msg_send *send_new(msg_sock *m, size_t nbufs, int kind) {
  msg_send *w = pier_spi_calloc(1, sizeof *w + nbufs * sizeof(pier_buf));
  if (!w) return NULL;
  w->m = m;
  w->kind = kind;
  w->low.data = w;
  return w;
}

static int send_go(msg_sock *m, msg_send *w, size_t nbufs) {
  for (size_t i = 0; i < nbufs; i++) w->wire_bytes += w->bufs[i].len;
  int rc = pier_send(m->lower, &w->low, w->bufs, nbufs, 0, on_sent);
  if (rc) {
    pier_spi_free(w->own);
    pier_spi_free(w);
    return rc;
  }
  if (w->upper) w->upper->pier__r.ext = w;
  return 0;
}

int pier__msg_send_own(msg_sock *m, uint8_t *bytes, size_t off, size_t len,
                       int kind) {
  msg_send *w = send_new(m, 1, kind);
  if (!w) {
    pier_spi_free(bytes);
    return PIER_ENOMEM;
  }
  w->own = bytes;
  w->bufs[0] = pier_buf_init(bytes + off, len - off);
  return send_go(m, w, 1);
}

static int send_check(msg_sock *m) {
  if (m->phase != MSG_OPEN)
    return m->phase == MSG_FAILED ? m->error : PIER_ENOTCONN;
  if (m->wshut) return PIER_ESHUTDOWN;
  if (m->wbroken) return PIER_ECONNABORTED;
  return 0;
}

int pier__msg_send(msg_sock *m, pier_op *op) {
  int rc = send_check(m);
  if (rc) return rc;
  size_t total = op_room(op), n = op->pier__r.nbufs;
  if (m->framed && total == 0)
    return pier_spi_bad_arg("pier_send",
                            "a message of 0 bytes (the msg protocol frames at "
                            "least 1)");
  if (m->framed && total > (size_t)m->max_message) return PIER_EMSGSIZE;
  size_t hdr = m->framed ? 1 : 0;
  msg_send *w = send_new(m, n + hdr, MSG_S_DATA);
  if (!w) return PIER_ENOMEM;
  w->upper = op;
  if (hdr) {
    pier__wire_frame_encode(w->hdr, WIRE_F_DATA, (uint32_t)total);
    w->bufs[0] = pier_buf_init(w->hdr, WIRE_FRAME_SIZE);
  }
  memcpy(w->bufs + hdr, op->pier__r.bufs, n * sizeof(pier_buf));
  return send_go(m, w, n + hdr);
}

int pier__msg_disconnect(msg_sock *m, pier_op *op) {
  int rc = send_check(m);
  if (rc) return rc;
  size_t len = op->pier__r.nbufs ? op->pier__r.bufs[0].len : 0;
  msg_send *w = send_new(m, 1, MSG_S_DISC);
  if (!w) return PIER_ENOMEM;
  w->upper = op;
  if (!m->framed) {
    /* A plain stream: the lower socket's own disconnect (after its
       queued sends). */
    rc = pier_disconnect(m->lower, &w->low, NULL, 0, on_sent);
    if (rc) {
      pier_spi_free(w);
      return rc;
    }
    op->pier__r.ext = w;
      m->wshut = 1;
    return 0;
  }
  if (!(w->own = pier_spi_malloc(WIRE_FRAME_SIZE + len))) {
    pier_spi_free(w);
    return PIER_ENOMEM;
  }
  pier__wire_frame_encode(w->own, WIRE_F_DISCONNECT, (uint32_t)len);
  if (len) memcpy(w->own + WIRE_FRAME_SIZE, op->pier__r.bufs[0].base, len);
  w->bufs[0] = pier_buf_init(w->own, WIRE_FRAME_SIZE + len);
  rc = send_go(m, w, 1);
  if (rc == 0) m->wshut = 1;
  return rc;
}
