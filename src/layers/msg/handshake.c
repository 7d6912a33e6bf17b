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
 *   3. server: accepting, reading requests
 *   4. server: presenting requests to accepts
 */
#include <string.h>

#include "msg.h"

/* ------------------------------------------------------------------ */
/* 1. the timer                                                        */
/* ------------------------------------------------------------------ */

static void server_drop(msg_sock *m, int error);

static void timed_out(pier_timer *t) {
  msg_timer *mt = (msg_timer *)t;
  pier_loop *loop = t->pier__t.loop;
  pier_spi_lock(loop);
  mt->armed = 0;
  msg_sock *m = mt->m;
  if (!m) { /* the socket let go while this call was on its way */
    pier_spi_free(mt);
  } else if (m->phase == MSG_HELLO) {
    server_drop(m, PIER_ETIMEDOUT);
  } else if (m->phase == MSG_ANSWER || m->phase == MSG_CONNECTING) {
    pier__msg_fail(m, PIER_ETIMEDOUT);
  }
  pier_spi_unlock(loop);
}

static int timer_start(msg_sock *m) {
  if (!m->timer) {
    msg_timer *mt = pier_spi_calloc(1, sizeof *mt);
    if (!mt) return PIER_ENOMEM;
    int rc = pier_timer_init(pier_socket_loop(m->s), &mt->t);
    if (rc) {
      pier_spi_free(mt);
      return rc;
    }
    mt->m = m;
    m->timer = mt;
  }
  m->timer->armed = 1;
  return pier_timer_start(&m->timer->t, (uint64_t)m->timeout_ms, 0, timed_out);
}

void pier__msg_timer_release(msg_sock *m) {
  msg_timer *mt = m->timer;
  if (!mt) return;
  m->timer = NULL;
  pier_timer_stop(&mt->t);
  if (mt->armed && pier_spi_timer_firing(&mt->t))
    mt->m = NULL; /* its callback frees it */
  else
    pier_spi_free(mt);
}

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
  if (clen && !cd->caller) return PIER_EINVAL;
  if (cd && cd->callee_cap && !cd->callee) return PIER_EINVAL;
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
/* 3. server: accepting, reading requests                              */
/* ------------------------------------------------------------------ */

static void present(msg_sock *l);

static void start_accept(msg_sock *l);

static void accepted(pier_op *aop, int status) {
  msg_sock *l = aop->data;
  pier_loop *loop = pier_socket_loop(l->s);
  pier_spi_lock(loop);
  l->aop_busy = 0;
  pier_socket *lower = status == 0 ? aop->accepted : NULL;
  if (l->closing || l->phase != MSG_LISTENING) {
    if (lower) pier_close(lower, NULL);
    pier_spi_unlock(loop);
    return;
  }
  if (status) {
    /* Out of descriptors or memory: try again at the next accept rather
       than spin here. */
    if (status != PIER_ECANCELED) {
      l->aop_failed = status;
      pier_spi_log(PIER_LOG_WARN, "msg: accept failed: %s",
                   pier_strerror(status));
    }
    pier_spi_unlock(loop);
    return;
  }
  pier_socket *up = NULL;
  int rc = pier_spi_layer_open(&pier__layer_msg, pier_socket_protocol(l->s),
                               lower, l->s, &up);
  if (rc) {
    pier_close(lower, NULL);
  } else {
    msg_sock *m = msg_of(up);
    m->phase = MSG_HELLO;
    m->max_message = l->max_message;
    m->rd.max = (uint64_t)l->max_message;
    m->timeout_ms = l->timeout_ms;
    m->listener = l;
    m->next = l->pending;
    if (l->pending) l->pending->prev = m;
    l->pending = m;
    l->npending++;
    size_t first = aop->bytes;
    if (first && (m->rbuf = pier_spi_malloc(MSG_RBUF)) != NULL) {
      memcpy(m->rbuf, l->abuf, first); /* came with the accept */
      m->rend = first;
    }
    if ((rc = first && !m->rbuf ? PIER_ENOMEM : timer_start(m)) != 0) {
      server_drop(m, rc);
    } else {
      if (first) pier__msg_handshake_input(m);
      if (!m->closing && (m->phase == MSG_HELLO || m->phase == MSG_ASKING))
        pier__msg_read(m);
    }
  }
  start_accept(l);
  pier_spi_unlock(loop);
}

static void start_accept(msg_sock *l) {
  if (l->aop_busy || l->closing || l->phase != MSG_LISTENING ||
      l->npending >= MSG_MAX_PENDING)
    return;
  if (!l->abuf && !(l->abuf = pier_spi_malloc(MSG_ABUF))) {
    l->aop_failed = PIER_ENOMEM;
    return;
  }
  pier_op_init(&l->aop);
  l->aop.data = l;
  int rc = pier_accept_first(l->lower, &l->aop, l->abuf, MSG_ABUF,
                                 accepted);
  if (rc == 0) l->aop_busy = 1;
  else l->aop_failed = rc;
}

int pier__msg_listen_start(msg_sock *l) {
  start_accept(l);
  int rc = l->aop_failed;
  l->aop_failed = 0;
  return rc;
}

/* Take m off its listener's lists (it fails, is rejected, or is handed
   to the application). */
void pier__msg_detach(msg_sock *m) {
  msg_sock *l = m->listener;
  if (!l) return;
  m->listener = NULL;
  if (m->prev) m->prev->next = m->next;
  else l->pending = m->next;
  if (m->next) m->next->prev = m->prev;
  m->next = m->prev = NULL;
  for (msg_sock **q = &l->ready; *q; q = &(*q)->next_ready) {
    if (*q == m) {
      *q = m->next_ready;
      if (l->ready_tail == m) {
        l->ready_tail = NULL;
        for (msg_sock *r = l->ready; r; r = r->next_ready) l->ready_tail = r;
      }
      break;
    }
  }
  m->next_ready = NULL;
  l->npending--;
  start_accept(l);
}

/* A caller that never becomes a connection: its socket is the layer's,
   the application never saw it. */
static void server_drop(msg_sock *m, int error) {
  pier_spi_log(PIER_LOG_INFO, "msg: a connection request was dropped: %s",
               pier_strerror(error));
  m->phase = MSG_FAILED;
  m->error = error;
  pier__msg_detach(m);
  pier__msg_timer_release(m);
  pier_close(m->s, NULL);
}

void pier__msg_rejected(msg_sock *m) {
  if (!m->closing) pier_close(m->s, NULL);
}

/* Answer with type and no data, then close. */
static void refuse(msg_sock *m, unsigned type) {
  pier__msg_detach(m);
  pier__msg_timer_release(m);
  m->phase = MSG_FAILED;
  uint8_t *b = pier_spi_malloc(WIRE_ANSWER_SIZE);
  wire_answer a = { WIRE_VERSION, type, 0 };
  if (b) pier__wire_answer_encode(b, &a);
  if (!b || pier__msg_send_own(m, b, 0, WIRE_ANSWER_SIZE, MSG_S_REJECT) != 0)
    pier_close(m->s, NULL);
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
    if (m->req.data_len && !(m->cdata = pier_spi_malloc(m->req.data_len))) {
      server_drop(m, PIER_ENOMEM);
      return;
    }
  }
  size_t want = m->req.data_len - m->cgot;
  size_t take = avail < want ? avail : want;
  if (take) memcpy(m->cdata + m->cgot, p, take);
  m->cgot += take;
  m->rstart += take;
  if (m->cgot < m->req.data_len) return;
  pier__msg_timer_release(m);
  m->phase = MSG_ASKING;
  msg_sock *l = m->listener;
  if (l->ready_tail) l->ready_tail->next_ready = m;
  else l->ready = m;
  l->ready_tail = m;
  present(l);
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
/* 4. server: presenting requests                                      */
/* ------------------------------------------------------------------ */

int pier__msg_accept(msg_sock *l, pier_op *op) {
  if (l->phase != MSG_LISTENING) return PIER_EINVAL;
  pier_opq_push(&l->acceptq, op);
  l->deferred = 0; /* a new accept: the deferred request comes first */
  if (!l->aop_busy) {
    l->aop_failed = 0;
    start_accept(l);
  }
  present(l);
  return 0;
}

void pier__msg_listener_close(msg_sock *l) {
  while (l->pending) {
    msg_sock *r = l->pending;
    pier__msg_detach(r);
    pier_close(r->s, NULL);
  }
  pier_op *op;
  while ((op = pier_opq_pop(&l->acceptq)) != NULL)
    pier_spi_complete(op, PIER_ECANCELED);
}

/* Ask op's condition function about r; returns its verdict. */
static int ask(msg_sock *l, msg_sock *r, pier_op *op) {
  if (!op->pier__r.cond) return PIER_CF_ACCEPT;
  struct sockaddr_storage peer, local;
  size_t plen = sizeof peer, llen = sizeof local;
  memset(&peer, 0, sizeof peer);
  memset(&local, 0, sizeof local);
  pier_getpeername(r->lower, &peer, &plen);
  pier_getsockname(r->lower, &local, &llen);
  pier_qos q = { r->req.dscp == WIRE_NO_QOS ? -1 : (int)r->req.dscp,
                 r->req.priority == WIRE_NO_QOS ? -1 : (int)r->req.priority };
  pier_accept_info info;
  memset(&info, 0, sizeof info);
  info.caller = (const struct sockaddr *)&peer;
  info.caller_len = plen;
  info.local = (const struct sockaddr *)&local;
  info.local_len = llen;
  info.caller_data = r->req.data_len ? r->cdata : NULL;
  info.caller_data_len = r->req.data_len;
  info.qos = (q.dscp >= 0 || q.priority >= 0) ? &q : NULL;
  info.callee_data = r->req.callee_max ? r->answer + WIRE_ANSWER_SIZE : NULL;
  info.callee_data_cap = r->req.callee_max;
  l->presenting = 1;
  int verdict = op->pier__r.cond(&info, op->pier__r.cond_ctx);
  l->presenting = 0;
  r->answer_len = info.callee_data_len <= info.callee_data_cap
                      ? info.callee_data_len : info.callee_data_cap;
  return verdict;
}

static void present(msg_sock *l) {
  while (!l->deferred && !l->presenting && !l->closing && l->ready &&
         !pier_opq_empty(&l->acceptq)) {
    pier_op *op = l->acceptq.head;
    msg_sock *r = l->ready;
    if (!r->answer &&
        !(r->answer = pier_spi_malloc(WIRE_ANSWER_SIZE + r->req.callee_max))) {
      server_drop(r, PIER_ENOMEM);
      continue;
    }
    int verdict = ask(l, r, op);
    /* The condition function may have closed the listener or cancelled
       the accept: start over from what is left. */
    if (l->closing || r->listener != l) return;
    if (l->acceptq.head != op || l->ready != r) continue;
    if (verdict == PIER_CF_DEFER) {
      l->deferred = 1;
      pier_opq_remove(&l->acceptq, op);
      pier_spi_complete(op, PIER_ETRYAGAIN);
      return;
    }
    if (verdict != PIER_CF_ACCEPT) {
      refuse(r, WIRE_REJECT);
      continue;
    }
    pier__msg_detach(r);
    wire_answer a = { WIRE_VERSION, WIRE_ACCEPT, (uint32_t)r->answer_len };
    pier__wire_answer_encode(r->answer, &a);
    uint8_t *b = r->answer;
    r->answer = NULL;
    pier_spi_free(r->cdata);
    r->cdata = NULL;
    pier_opq_remove(&l->acceptq, op);
    int rc = pier__msg_send_own(r, b, 0, WIRE_ANSWER_SIZE + r->answer_len,
                                MSG_S_ANSWER);
    if (rc) {
      r->phase = MSG_FAILED;
      pier_close(r->s, NULL);
      pier_opq_push(&l->acceptq, op); /* a later request gets it */
      continue;
    }
    r->phase = MSG_OPEN;
    op->accepted = r->s;
    pier_spi_complete(op, 0);
  }
}
