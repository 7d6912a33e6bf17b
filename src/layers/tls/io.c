/* SPDX-License-Identifier: MIT */
/*
 * src/layers/tls/io.c - moving bytes: the lower receive feeding the read
 * BIO, the write BIO drained by lower sends (in order, one at a time),
 * upper receives (SSL_read into the caller's buffers, scatter), upper
 * sends (SSL_write of records of at most TLS_RECORD bytes, gathering
 * small buffers; complete once their records are sent), close_notify
 * (pier_disconnect, shutdown), and the pump that drives it all.
 *
 * Nothing spins: OpenSSL's WANT_READ leaves a lower receive pending and
 * the pump runs again when it completes; WANT_WRITE cannot happen on a
 * memory BIO, and upper sends stop being encrypted while the write BIO
 * holds TLS_HIGH_WATER bytes, until the lower sends have drained it.  A
 * write repeated after WANT_READ repeats the same bytes (t->wptr/wlen).
 *
 * Section map
 *   1. the lower receive
 *   2. output: the lower send, and what follows a drain
 *   3. receives
 *   4. sends, disconnect, shutdown
 *   5. the pump
 */
#include <string.h>

#include <openssl/err.h>

#include "tls.h"

/* ------------------------------------------------------------------ */
/* 1. the lower receive                                                */
/* ------------------------------------------------------------------ */

static void on_read(pier_op *rop, int status) {
  tls_sock *t = rop->data;
  pier_loop *loop = pier_socket_loop(t->s);
  pier_spi_lock(loop);
  t->rop_busy = 0;
  if (!t->closing) {
    if (status) {
      t->rerr = status;
    } else if (rop->bytes == 0) {
      t->eof = 1;
    } else if (t->ssl &&
               BIO_write(t->rbio, t->rbuf, (int)rop->bytes) != (int)rop->bytes) {
      t->rerr = PIER_ENOMEM;
    }
    pier__tls_pump(t);
  }
  pier_spi_unlock(loop);
}

static void read_lower(tls_sock *t) {
  if (t->rop_busy || t->closing || t->eof || t->rerr) return;
  if (!t->rbuf && !(t->rbuf = pier_spi_malloc(TLS_RBUF))) {
    t->rerr = PIER_ENOMEM;
    return;
  }
  pier_op_init(&t->rop);
  t->rop.data = t;
  pier_buf b = pier_buf_init(t->rbuf, TLS_RBUF);
  int rc = pier_recv(t->lower, &t->rop, &b, 1, 0, on_read);
  if (rc) t->rerr = rc;
  else t->rop_busy = 1;
}

/* ------------------------------------------------------------------ */
/* 2. output                                                           */
/* ------------------------------------------------------------------ */

static size_t out_pending(const tls_sock *t) {
  return t->ssl ? BIO_ctrl_pending(t->wbio) : 0;
}

/* Complete the sends whose records have all been sent. */
static void sends_done(tls_sock *t) {
  pier_op *op;
  while ((op = t->sentq.head) != NULL &&
         (uint64_t)op->pier__r.prov.u[0] <= t->sent) {
    pier_opq_remove(&t->sentq, op);
    int status = 0;
    if (op->pier__r.type == PIER_OP_DISCONNECT) {
      status = pier_shutdown(t->lower, PIER_SHUT_WR);
    } else {
      op->bytes = op->pier__r.progress;
    }
    pier_spi_complete(op, status);
  }
}

static void fail_queue(pier_opq *q, int status) {
  pier_op *op;
  while ((op = pier_opq_pop(q)) != NULL) pier_spi_complete(op, status);
}

/* Every send not yet complete ends with status. */
static void fail_sends(tls_sock *t, int status) {
  t->wlen = 0;
  fail_queue(&t->sendq, status);
  fail_queue(&t->sentq, status);
}

static void on_sent(pier_op *sop, int status) {
  tls_sock *t = sop->data;
  pier_loop *loop = pier_socket_loop(t->s);
  pier_spi_lock(loop);
  t->sop_busy = 0;
  if (!t->closing) {
    if (status == 0) {
      t->sent += t->sop_len;
      sends_done(t);
    } else if (!t->werr) {
      t->werr = status;
      fail_sends(t, status);
    }
    pier__tls_pump(t);
  }
  pier_spi_unlock(loop);
}

/* Start the next lower send, or, with the output drained, what waits
   for that: a shutdown of the lower socket, or the drop of a failed
   connection.  Returns 1 if the socket was closed here. */
static int flush(tls_sock *t) {
  if (t->sop_busy || t->closing) return 0;
  size_t n = out_pending(t);
  if (n && t->werr) {
    (void)BIO_reset(t->wbio); /* nowhere to go */
    n = 0;
  }
  if (n) {
    if (!t->sbuf && !(t->sbuf = pier_spi_malloc(TLS_SBUF))) {
      t->werr = PIER_ENOMEM;
      return flush(t);
    }
    if (n > TLS_SBUF) n = TLS_SBUF;
    int got = BIO_read(t->wbio, t->sbuf, (int)n);
    if (got <= 0) return 0;
    pier_op_init(&t->sop);
    t->sop.data = t;
    pier_buf b = pier_buf_init(t->sbuf, (size_t)got);
    int rc = pier_send(t->lower, &t->sop, &b, 1, 0, on_sent);
    if (rc == 0) {
      t->sop_busy = 1;
      t->sop_len = (size_t)got;
      return 0;
    }
    t->werr = rc;
    fail_sends(t, rc);
  }
  /* Drained. */
  if (t->drop) {
    t->drop = 0;
    pier_close(t->s, NULL);
    return 1;
  }
  if (t->shut_rdwr) {
    t->shut_rdwr = t->shut_wr = 0;
    pier_shutdown(t->lower, PIER_SHUT_RDWR);
  } else if (t->shut_wr) {
    t->shut_wr = 0;
    pier_shutdown(t->lower, PIER_SHUT_WR);
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* 3. receives                                                         */
/* ------------------------------------------------------------------ */

static size_t op_room(const pier_op *op) {
  size_t n = 0;
  for (size_t i = 0; i < op->pier__r.nbufs; i++) n += op->pier__r.bufs[i].len;
  return n;
}

void pier__tls_fail_ops(tls_sock *t, int status) {
  fail_queue(&t->recvq, status);
  fail_sends(t, status);
}

static void recv_done(tls_sock *t, int status) {
  pier_op *op = pier_opq_pop(&t->recvq);
  pier_spi_complete(op, status);
}

/* What a receive sees when OpenSSL wants more and the stream has ended. */
static int ended(tls_sock *t) {
  if (t->rerr) {
    pier__tls_note(t, t->rerr, pier_strerror(t->rerr));
    return t->rerr;
  }
  if (BIO_ctrl_pending(t->rbio) > 0 || SSL_has_pending(t->ssl)) {
    pier__tls_note(t, PIER_ETLS_PROTOCOL,
                   "the stream ended inside a TLS record");
    return PIER_ETLS_PROTOCOL;
  }
  pier__tls_note(t, PIER_ECONNRESET,
                 "the peer closed the connection without close_notify");
  return PIER_ECONNRESET;
}

/* SSL_read into op's buffers from op->bytes on.  Returns 1 when OpenSSL
   wants more input, 0 when it stopped otherwise (full, close_notify,
   failure: t->rfail). */
static int read_into(tls_sock *t, pier_op *op) {
  size_t skip = op->bytes;
  for (size_t i = 0; i < op->pier__r.nbufs; i++) {
    pier_buf *b = &op->pier__r.bufs[i];
    if (skip >= b->len) {
      skip -= b->len;
      continue;
    }
    while (skip < b->len) {
      size_t want = b->len - skip;
      if (want > INT32_MAX) want = INT32_MAX;
      ERR_clear_error();
      int r = SSL_read(t->ssl, b->base + skip, (int)want);
      if (r > 0) {
        op->bytes += (size_t)r;
        skip += (size_t)r;
        continue;
      }
      int err = SSL_get_error(t->ssl, r);
      if (err == SSL_ERROR_WANT_READ) {
        /* Records without data (tickets, key updates) were taken: read
           on while the read BIO still holds input. */
        if (BIO_ctrl_pending(t->rbio) > 0) continue;
        return 1;
      }
      if (err == SSL_ERROR_ZERO_RETURN) {
        t->close_notify = 1;
        return 0;
      }
      t->rfail = pier__tls_map_error(t, err, 0);
      return 0;
    }
    skip = 0;
  }
  return 0;
}

static int peek_into(tls_sock *t, pier_op *op) {
  size_t room = op_room(op);
  if (room > TLS_RECORD) room = TLS_RECORD;
  uint8_t *tmp = op->pier__r.nbufs == 1 ? (uint8_t *)op->pier__r.bufs[0].base
                                        : pier_spi_malloc(room ? room : 1);
  if (!tmp) {
    t->rfail = PIER_ENOMEM;
    return 0;
  }
  ERR_clear_error();
  int r = SSL_peek(t->ssl, tmp, (int)room);
  int more = 0;
  if (r > 0) {
    size_t left = (size_t)r;
    const uint8_t *p = tmp;
    for (size_t i = 0; i < op->pier__r.nbufs && left; i++) {
      pier_buf *b = &op->pier__r.bufs[i];
      size_t n = b->len < left ? b->len : left;
      if (p != (const uint8_t *)b->base) memmove(b->base, p, n);
      p += n;
      left -= n;
    }
    op->bytes = (size_t)r;
  } else {
    int err = SSL_get_error(t->ssl, r);
    if (err == SSL_ERROR_WANT_READ) more = 1;
    else if (err == SSL_ERROR_ZERO_RETURN) t->close_notify = 1;
    else t->rfail = pier__tls_map_error(t, err, 0);
  }
  if (tmp != (uint8_t *)op->pier__r.bufs[0].base) pier_spi_free(tmp);
  return more;
}

/* Deliver to the receives what can be delivered; 1 if the head one waits
   for input. */
static int recv_pump(tls_sock *t) {
  while (!pier_opq_empty(&t->recvq)) {
    pier_op *op = t->recvq.head;
    unsigned in = op->pier__r.in_flags;
    size_t room = op_room(op);
    if (t->rfail) {
      recv_done(t, op->bytes ? 0 : t->rfail);
      continue;
    }
    if (t->close_notify || room == 0 || op->bytes == room) {
      recv_done(t, 0); /* at the end of the stream: bytes 0 */
      continue;
    }
    int more = (in & PIER_MSG_PEEK) ? peek_into(t, op) : read_into(t, op);
    if (op->bytes == room || (op->bytes && !(in & PIER_MSG_WAITALL))) {
      recv_done(t, 0);
      continue;
    }
    if (!more) continue; /* close_notify or a failure: see above */
    if (t->eof || t->rerr) {
      t->rfail = ended(t);
      continue;
    }
    return 1;
  }
  return 0;
}

int pier__tls_recv(tls_sock *t, pier_op *op) {
  switch (t->phase) {
  case TLS_CONNECTING: /* it waits for the handshake */
  case TLS_HANDSHAKE:
  case TLS_OPEN:
    break;
  case TLS_FAILED: return t->error;
  default: return PIER_ENOTCONN;
  }
  pier_opq_push(&t->recvq, op);
  pier__tls_pump(t);
  return 0;
}

/* ------------------------------------------------------------------ */
/* 4. sends                                                            */
/* ------------------------------------------------------------------ */

/* The next piece of op to encrypt: at most TLS_RECORD bytes, straight
   from its buffer, or gathered from several small ones into stage. */
static int next_piece(tls_sock *t, pier_op *op) {
  size_t skip = op->pier__r.progress, i = 0;
  while (i < op->pier__r.nbufs && skip >= op->pier__r.bufs[i].len)
    skip -= op->pier__r.bufs[i++].len;
  if (i == op->pier__r.nbufs) return 0;
  pier_buf *b = &op->pier__r.bufs[i];
  size_t here = b->len - skip;
  if (here >= TLS_RECORD || i + 1 == op->pier__r.nbufs) {
    t->wptr = (const uint8_t *)b->base + skip;
    t->wlen = here < TLS_RECORD ? here : TLS_RECORD;
    return 0;
  }
  if (!t->stage && !(t->stage = pier_spi_malloc(TLS_RECORD)))
    return PIER_ENOMEM;
  size_t n = 0;
  for (; i < op->pier__r.nbufs && n < TLS_RECORD; i++, skip = 0) {
    b = &op->pier__r.bufs[i];
    size_t take = b->len - skip;
    if (take > TLS_RECORD - n) take = TLS_RECORD - n;
    memcpy(t->stage + n, b->base + skip, take);
    n += take;
  }
  t->wptr = t->stage;
  t->wlen = n;
  return 0;
}

/* The head send is wholly encrypted: it waits for its mark. */
static void send_encrypted(tls_sock *t, pier_op *op) {
  pier_opq_remove(&t->sendq, op);
  op->pier__r.prov.u[0] = (unsigned long long)BIO_number_written(t->wbio);
  pier_opq_push(&t->sentq, op);
}

/* Encrypt the queued sends while the output is below the high water
   mark; 1 if OpenSSL wants input first. */
static int send_pump(tls_sock *t) {
  while (!pier_opq_empty(&t->sendq) && out_pending(t) < TLS_HIGH_WATER) {
    pier_op *op = t->sendq.head;
    if (op->pier__r.type == PIER_OP_DISCONNECT) {
      ERR_clear_error();
      SSL_shutdown(t->ssl); /* writes close_notify; never waits */
      ERR_clear_error();
      t->wshut = 1;
      send_encrypted(t, op);
      continue;
    }
    if (t->wlen == 0) {
      int rc = next_piece(t, op);
      if (rc) {
        pier_opq_remove(&t->sendq, op);
        pier_spi_complete(op, rc);
        continue;
      }
      if (t->wlen == 0) { /* all of it (or nothing: a zero-byte send) */
        send_encrypted(t, op);
        continue;
      }
    }
    ERR_clear_error();
    int r = SSL_write(t->ssl, t->wptr, (int)t->wlen);
    if (r > 0) {
      op->pier__r.progress += (size_t)r;
      t->wlen = 0;
      continue;
    }
    int err = SSL_get_error(t->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 1;
    int code = pier__tls_map_error(t, err, 0);
    t->werr = code;
    fail_sends(t, code);
  }
  return 0;
}

static int send_check(tls_sock *t) {
  switch (t->phase) {
  case TLS_CONNECTING:
  case TLS_HANDSHAKE:
  case TLS_OPEN:
    break;
  case TLS_FAILED: return t->error;
  default: return PIER_ENOTCONN;
  }
  if (t->wshut) return PIER_ESHUTDOWN;
  if (t->werr) return t->werr;
  return 0;
}

int pier__tls_send(tls_sock *t, pier_op *op) {
  int rc = send_check(t);
  if (rc) return rc;
  pier_opq_push(&t->sendq, op);
  pier__tls_pump(t);
  return 0;
}

int pier__tls_disconnect(tls_sock *t, pier_op *op) {
  int rc = send_check(t);
  if (rc) return rc;
  if (t->phase != TLS_OPEN && t->phase != TLS_HANDSHAKE) return PIER_ENOTCONN;
  t->wshut = 1; /* no sends after it */
  pier_opq_push(&t->sendq, op);
  pier__tls_pump(t);
  return 0;
}

int pier__tls_shutdown(tls_sock *t, int how) {
  int rc = 0;
  if (how != PIER_SHUT_RD && t->phase == TLS_OPEN && !t->wshut) {
    /* close_notify now (sends not yet encrypted end with
       PIER_ESHUTDOWN), then the lower sends end once it is out. */
    t->wshut = 1;
    t->wlen = 0;
    fail_queue(&t->sendq, PIER_ESHUTDOWN);
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    t->shut_wr = 1;
    pier__tls_pump(t);
  } else if (how != PIER_SHUT_RD) {
    t->wshut = 1;
    rc = pier_shutdown(t->lower, PIER_SHUT_WR);
  }
  if (how != PIER_SHUT_WR) {
    int r2 = pier_shutdown(t->lower, PIER_SHUT_RD);
    if (!rc) rc = r2;
  }
  return rc;
}

int pier__tls_cancel_io(tls_sock *t, pier_op *op) {
  pier_opq *q = NULL;
  for (pier_op *o = t->recvq.head; o && !q; o = o->pier__r.next)
    if (o == op) q = &t->recvq;
  for (pier_op *o = t->sendq.head; o && !q; o = o->pier__r.next)
    if (o == op) q = &t->sendq;
  for (pier_op *o = t->sentq.head; o && !q; o = o->pier__r.next)
    if (o == op) q = &t->sentq;
  if (!q) return PIER_ENOENT;
  if (q == &t->recvq) {
    pier_opq_remove(q, op);
    /* Data already taken from the session is handed over, not lost. */
    pier_spi_complete(op, op->bytes ? 0 : PIER_ECANCELED);
    return 0;
  }
  if (q == &t->sendq && op->pier__r.progress == 0 &&
      !(t->sendq.head == op && t->wlen)) {
    pier_opq_remove(q, op);
    pier_spi_complete(op, PIER_ECANCELED);
    return 0;
  }
  /* Part of it is in the session's record stream already: it goes on
     (completing on its own), as a TCP send the kernel holds would. */
  return PIER_ENOENT;
}

/* ------------------------------------------------------------------ */
/* 5. the pump                                                         */
/* ------------------------------------------------------------------ */

void pier__tls_pump(tls_sock *t) {
  if (t->closing) return;
  int need = 0;
  if (t->phase == TLS_HANDSHAKE) {
    pier__tls_handshake_step(t);
    need = t->phase == TLS_HANDSHAKE;
  }
  if (t->phase == TLS_OPEN) {
    need |= recv_pump(t);
    need |= send_pump(t);
    sends_done(t);
  } else if (t->phase == TLS_FAILED) {
    pier__tls_fail_ops(t, t->error);
  }
  if (flush(t)) return; /* closed */
  if (need && t->phase != TLS_FAILED) read_lower(t);
  /* A lower receive that could not start ends what waits for it. */
  if (need && !t->rop_busy && t->rerr && t->phase != TLS_FAILED) {
    if (t->phase == TLS_HANDSHAKE) {
      pier__tls_handshake_step(t);
      flush(t);
    } else if (t->phase == TLS_OPEN && !t->rfail) {
      t->rfail = t->rerr;
      recv_pump(t);
    }
  }
}
