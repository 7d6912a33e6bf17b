/* SPDX-License-Identifier: MIT */
/*
 * src/layers/msg/handshake.c - pier's connect-time handshake
 * (doc/protocol.md): the client's request and the answer it waits for,
 * the listener's accepts, the reading of each caller's request with a
 * timeout, and the presentation of whole requests to the application's
 * condition function (accept, reject, defer).
 *
 * Section map
 *   1. the timer
 *   2. client: connect, request, answer
 *   3. server: requests read on accepted connections
 *   4. server: the decision on a request
 * The listener's side common to the layers (eager accepts, the order of
 * presentation, DEFER) is ../accepts.c.
 */
#include <string.h>

#include "msg.h"

/* ------------------------------------------------------------------ */
/* 1. the timer                                                        */
/* ------------------------------------------------------------------ */

static void server_drop(msg_sock *m, int error);

static void timed_out(void *owner) {
  msg_sock *m = owner;
  if (m->phase == MSG_HELLO)
    server_drop(m, PIER_ETIMEDOUT);
  else if (m->phase == MSG_ANSWER || m->phase == MSG_CONNECTING)
    pier__msg_fail(m, PIER_ETIMEDOUT);
}

static int timer_start(msg_sock *m) {
  return pier__ltimer_start(&m->timer, pier_socket_loop(m->s),
                            (uint64_t)m->timeout_ms, timed_out, m);
}

void pier__msg_timer_release(msg_sock *m) { pier__ltimer_release(&m->timer); }

/* ------------------------------------------------------------------ */
/* 2. client                                                           */
/* ------------------------------------------------------------------ */

void pier__msg_end_ops(msg_sock *m, int status) {
  pier__msg_timer_release(m);
  if (m->uconnect) {
    pier_op *op = m->uconnect;
    m->uconnect = NULL;
    pier_spi_complete(op, status);
  }
  pier__msg_cancel_recvs(m, status);
}

void pier__msg_fail(msg_sock *m, int error) {
  if (m->phase == MSG_FAILED) return;
  m->phase = MSG_FAILED;
  m->error = error;
  pier__msg_end_ops(m, error);
  pier_cancel(&m->cop);
  if (m->rop_busy) pier_cancel(&m->rop);
  /* The peer learns it at once: the connection is closed both ways. */
  pier_shutdown(m->lower, PIER_SHUT_RDWR);
}

static void connected(pier_op *cop, int status) {
  msg_sock *m = cop->data;
  pier_loop *loop = pier_socket_loop(m->s);
  pier_spi_lock(loop);
  if (!m->closing && m->phase == MSG_CONNECTING) {
    if (status) {
      pier__msg_fail(m, status);
    } else {
      /* What did not ride with the connection (TCP Fast Open, ConnectEx)
         goes now. */
      m->phase = MSG_ANSWER;
      uint8_t *hello = m->hello;
      size_t sent = cop->bytes < m->hello_len ? cop->bytes : m->hello_len;
      int rc = 0;
      m->hello = NULL;
      if (sent < m->hello_len)
        rc = pier__msg_send_own(m, hello, sent, m->hello_len, MSG_S_HELLO);
      else
        pier_spi_free(hello);
      if (rc == 0) rc = timer_start(m);
      if (rc) pier__msg_fail(m, rc);
      else pier__msg_read(m);
    }
  }
  pier_spi_unlock(loop);
}

int pier__msg_connect(msg_sock *m, pier_op *op) {
  switch (m->phase) {
  case MSG_IDLE: break;
  case MSG_CONNECTING:
  case MSG_ANSWER: return PIER_EALREADY;
  case MSG_OPEN: return PIER_EISCONN;
  case MSG_FAILED: return PIER_ESHUTDOWN;
  default: return PIER_EINVAL;
  }
  const pier_connect_data *cd = op->pier__r.cdata;
  size_t clen = cd ? cd->caller_len : 0;
  if (clen > WIRE_DATA_MAX) return PIER_EMSGSIZE;
  if (clen && !cd->caller)
    return pier_spi_bad_arg("pier_connect", "cdata->caller is NULL with "
                            "caller_len %lu", (unsigned long)clen);
  if (cd && cd->callee_cap && !cd->callee)
    return pier_spi_bad_arg("pier_connect", "cdata->callee is NULL with "
                            "callee_cap %lu", (unsigned long)cd->callee_cap);
  uint8_t *hello = pier_spi_malloc(WIRE_HELLO_SIZE + clen);
  if (!hello) return PIER_ENOMEM;
  const pier_qos *q = op->pier__r.qos;
  wire_hello h;
  memset(&h, 0, sizeof h);
  h.version = WIRE_VERSION;
  h.flags = m->framed ? WIRE_HELLO_FRAMED : 0;
  h.data_len = (uint32_t)clen;
  h.callee_max = cd ? (uint32_t)(cd->callee_cap < WIRE_DATA_MAX
                                     ? cd->callee_cap : WIRE_DATA_MAX) : 0;
  h.dscp = q && q->dscp >= 0 ? (unsigned)q->dscp : WIRE_NO_QOS;
  h.priority = q && q->priority >= 0 ? (unsigned)q->priority : WIRE_NO_QOS;
  pier__wire_hello_encode(hello, &h);
  if (clen) memcpy(hello + WIRE_HELLO_SIZE, cd->caller, clen);
  pier_op_init(&m->cop);
  m->cop.data = m;
  /* The QoS is on the lower socket already (pier_connect applied it
     through the option slots); the request carries it to the listener. */
  int rc = pier_connect_first(m->lower, &m->cop,
                                  (const struct sockaddr *)&op->pier__r.addr,
                                  op->pier__r.addr_len, hello,
                                  WIRE_HELLO_SIZE + clen, connected);
  if (rc) {
    pier_spi_free(hello);
    return rc;
  }
  m->hello = hello;
  m->hello_len = WIRE_HELLO_SIZE + clen;
  m->uconnect = op;
  m->phase = MSG_CONNECTING;
  return 0;
}

/* The answer: its fixed part, then callee data straight into the
   caller's buffer. */
static void answer_input(msg_sock *m) {
  const uint8_t *p = m->rbuf + m->rstart;
  size_t avail = m->rend - m->rstart;
  if (!m->have_ans) {
    int rc = pier__wire_answer_decode(p, avail, &m->ans);
    if (rc < 0) {
      pier__msg_fail(m, rc);
      return;
    }
    if (rc == 1) return;
    m->rstart += WIRE_ANSWER_SIZE;
    p += WIRE_ANSWER_SIZE;
    avail -= WIRE_ANSWER_SIZE;
    m->have_ans = 1;
    if (m->ans.version != WIRE_VERSION || m->ans.type == WIRE_UNSUPPORTED) {
      pier__msg_fail(m, PIER_EPROTO);
      return;
    }
    if (m->ans.type == WIRE_REJECT) {
      pier__msg_fail(m, PIER_EREFUSED);
      return;
    }
    pier_connect_data *cd = m->uconnect ? m->uconnect->pier__r.cdata : NULL;
    size_t room = cd ? (cd->callee_cap < WIRE_DATA_MAX ? cd->callee_cap
                                                       : WIRE_DATA_MAX) : 0;
    if (m->ans.data_len > room) { /* more than the request allowed */
      pier__msg_fail(m, PIER_EPROTO);
      return;
    }
  }
  size_t want = m->ans.data_len - m->ans_got;
  size_t take = avail < want ? avail : want;
  pier_connect_data *cd = m->uconnect ? m->uconnect->pier__r.cdata : NULL;
  if (take && cd) memcpy((uint8_t *)cd->callee + m->ans_got, p, take);
  m->ans_got += take;
  m->rstart += take;
  if (m->ans_got < m->ans.data_len) return;
  pier__msg_timer_release(m);
  m->phase = MSG_OPEN;
  if (cd) cd->callee_len = m->ans.data_len;
  pier_op *op = m->uconnect;
  m->uconnect = NULL;
  if (op) pier_spi_complete(op, 0);
}

/* ------------------------------------------------------------------ */
/* 3. server: requests read on accepted connections (../accepts.c)     */
/* ------------------------------------------------------------------ */

static msg_sock *listener_of(const lacc_listener *l) {
  return (msg_sock *)(void *)((char *)l - offsetof(msg_sock, lst));
}

static msg_sock *conn_of(lacc_conn *c) {
  return (msg_sock *)(void *)((char *)c - offsetof(msg_sock, lc));
}

static lacc_conn *adopt(lacc_listener *ll, pier_socket *up) {
  msg_sock *l = listener_of(ll), *m = msg_of(up);
  m->phase = MSG_HELLO;
  m->max_message = l->max_message;
  m->rd.max = (uint64_t)l->max_message;
  m->timeout_ms = l->timeout_ms;
  m->lc.s = up;
  return &m->lc;
}

/* The request may have come with the accept (AcceptEx): parse it now. */
static void start(lacc_conn *c, const uint8_t *first, size_t n) {
  msg_sock *m = conn_of(c);
  if (n && (m->rbuf = pier_spi_malloc(MSG_RBUF)) != NULL) {
    memcpy(m->rbuf, first, n);
    m->rend = n;
  }
  int rc = n && !m->rbuf ? PIER_ENOMEM : timer_start(m);
  if (rc) {
    server_drop(m, rc);
    return;
  }
  if (n) pier__msg_handshake_input(m);
  if (!m->closing && (m->phase == MSG_HELLO || m->phase == MSG_ASKING))
    pier__msg_read(m);
}

/* A caller that never becomes a connection: its socket is the layer's,
   the application never saw it. */
static void server_drop(msg_sock *m, int error) {
  pier_spi_log(PIER_LOG_INFO, "msg: a connection request was dropped: %s",
               pier_strerror(error));
  m->phase = MSG_FAILED;
  m->error = error;
  pier__lacc_detach(&m->lc);
  pier__msg_timer_release(m);
  pier_close(m->s, NULL);
}

void pier__msg_rejected(msg_sock *m) {
  if (!m->closing) pier_close(m->s, NULL);
}

/* Answer with type and no data, then close. */
static void refuse(msg_sock *m, unsigned type) {
  pier__lacc_detach(&m->lc);
  pier__msg_timer_release(m);
  m->phase = MSG_FAILED;
  uint8_t *b = pier_spi_malloc(WIRE_ANSWER_SIZE);
  wire_answer a = { WIRE_VERSION, type, 0 };
  if (b) pier__wire_answer_encode(b, &a);
  if (!b || pier__msg_send_own(m, b, 0, WIRE_ANSWER_SIZE, MSG_S_REJECT) != 0)
    pier_close(m->s, NULL);
}

/* Room m->cdata has once n bytes have come: it grows with what the caller
   sends (doubling from CDATA_FIRST), not with what it announces, so a
   caller that announces much and sends little costs little
   (doc/semantics.md, "Handshake bounds"). */
#define CDATA_FIRST 4096
static size_t cdata_cap(const msg_sock *m, size_t n) {
  if (n == 0) return 0;
  size_t cap = CDATA_FIRST;
  while (cap < n) cap *= 2;
  return cap < m->req.data_len ? cap : m->req.data_len;
}

/* Make room in m->cdata for need bytes; 0 or PIER_ENOMEM. */
static int cdata_room(msg_sock *m, size_t need) {
  size_t have = m->cdata ? cdata_cap(m, m->cgot) : 0;
  if (need <= have) return 0;
  uint8_t *b = pier_spi_malloc(cdata_cap(m, need));
  if (!b) return PIER_ENOMEM;
  if (m->cgot) memcpy(b, m->cdata, m->cgot);
  pier_spi_free(m->cdata);
  m->cdata = b;
  return 0;
}

static void hello_input(msg_sock *m) {
  const uint8_t *p = m->rbuf + m->rstart;
  size_t avail = m->rend - m->rstart;
  if (!m->have_req) {
    int rc = pier__wire_hello_decode(p, avail, &m->req);
    if (rc < 0) {
      server_drop(m, rc);
      return;
    }
    if (rc == 1) return;
    m->rstart += WIRE_HELLO_SIZE;
    p += WIRE_HELLO_SIZE;
    avail -= WIRE_HELLO_SIZE;
    m->have_req = 1;
    int framed = (m->req.flags & WIRE_HELLO_FRAMED) != 0;
    if (m->req.version != WIRE_VERSION ||
        (m->req.flags & ~WIRE_HELLO_FRAMED) || framed != m->framed) {
      refuse(m, WIRE_UNSUPPORTED);
      return;
    }
  }
  size_t want = m->req.data_len - m->cgot;
  size_t take = avail < want ? avail : want;
  if (take && cdata_room(m, m->cgot + take) != 0) {
    server_drop(m, PIER_ENOMEM);
    return;
  }
  if (take) memcpy(m->cdata + m->cgot, p, take);
  m->cgot += take;
  m->rstart += take;
  if (m->cgot < m->req.data_len) return;
  pier__msg_timer_release(m);
  m->phase = MSG_ASKING;
  pier__lacc_ready(&m->lc);
}

void pier__msg_handshake_input(msg_sock *m) {
  if (m->phase == MSG_HELLO) hello_input(m);
  else if (m->phase == MSG_ANSWER) answer_input(m);
}

void pier__msg_handshake_lost(msg_sock *m, int error) {
  if (m->phase == MSG_HELLO || m->phase == MSG_ASKING) server_drop(m, error);
  else pier__msg_fail(m, error);
}

/* ------------------------------------------------------------------ */
/* 4. server: the decision on a request                                */
/* ------------------------------------------------------------------ */

/* The condition function sees the caller data, the QoS asked for and
   the room for an answer; returns -1 having dropped the caller. */
static int ask(lacc_conn *c, pier_op *op, pier_accept_info *info) {
  msg_sock *r = conn_of(c);
  if (!r->answer &&
      !(r->answer = pier_spi_malloc(WIRE_ANSWER_SIZE + r->req.callee_max))) {
    server_drop(r, PIER_ENOMEM);
    return -1;
  }
  pier_qos q = { r->req.dscp == WIRE_NO_QOS ? -1 : (int)r->req.dscp,
                 r->req.priority == WIRE_NO_QOS ? -1 : (int)r->req.priority };
  info->caller_data = r->req.data_len ? r->cdata : NULL;
  info->caller_data_len = r->req.data_len;
  info->qos = (q.dscp >= 0 || q.priority >= 0) ? &q : NULL;
  info->callee_data = r->req.callee_max ? r->answer + WIRE_ANSWER_SIZE : NULL;
  info->callee_data_cap = r->req.callee_max;
  int verdict = op->pier__r.cond(info, op->pier__r.cond_ctx);
  r->answer_len = info->callee_data_len <= info->callee_data_cap
                      ? info->callee_data_len : info->callee_data_cap;
  return verdict;
}

/* ACCEPT: the answer, with the callee data, goes out first. */
static int admit(lacc_conn *c) {
  msg_sock *r = conn_of(c);
  if (!r->answer && !(r->answer = pier_spi_malloc(WIRE_ANSWER_SIZE))) {
    r->phase = MSG_FAILED;
    return PIER_ENOMEM;
  }
  wire_answer a = { WIRE_VERSION, WIRE_ACCEPT, (uint32_t)r->answer_len };
  pier__wire_answer_encode(r->answer, &a);
  uint8_t *b = r->answer;
  r->answer = NULL;
  pier_spi_free(r->cdata);
  r->cdata = NULL;
  int rc = pier__msg_send_own(r, b, 0, WIRE_ANSWER_SIZE + r->answer_len,
                              MSG_S_ANSWER);
  r->phase = rc ? MSG_FAILED : MSG_OPEN;
  return rc;
}

static void reject(lacc_conn *c) { refuse(conn_of(c), WIRE_REJECT); }

const lacc_ops pier__msg_accepts = { adopt, start, ask, admit, reject };
