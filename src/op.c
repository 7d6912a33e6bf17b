/* SPDX-License-Identifier: MIT */
/*
 * src/op.c - operations: argument checks, starting an op overlapped
 * (provider submit) or blocking (provider execute), delivering
 * completions to callbacks, cancel, and pier_op_result.
 *
 * Section map
 *   1. lifecycle: begin, start, deliver
 *   2. the public operation calls
 *   3. cancel and results
 */
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------ */
/* 1. lifecycle                                                        */
/* ------------------------------------------------------------------ */

void pier_op_init(pier_op *op) {
  if (op) memset(op, 0, sizeof *op);
}

static void release_bufs(pier_op *op) {
  if (op->pier__r.bufs && op->pier__r.bufs != op->pier__r.inline_bufs)
    pier__free(op->pier__r.bufs);
  op->pier__r.bufs = NULL;
  op->pier__r.nbufs = 0;
}

/* Check the op and socket and reset the op's results. */
static int begin(const char *fn, pier_socket *s, pier_op *op, int type) {
  if (!s || !op)
    return pier__bad(fn, "%s is NULL",
                     !s ? "the socket (first argument)" : "op");
  if (pier__load(&op->pier__r.state) != PIER_OPS_IDLE) return PIER_EBUSY;
  int rc = pier__socket_usable(fn, s);
  if (rc) return rc;
  op->status = 0;
  op->flags = 0;
  op->bytes = 0;
  op->accepted = NULL;
  op->addrlen = 0;
  op->socket = s;
  op->pier__r.type = type;
  op->pier__r.in_flags = 0;
  op->pier__r.bufs = NULL;
  op->pier__r.nbufs = 0;
  op->pier__r.from = NULL;
  op->pier__r.cond = NULL;
  op->pier__r.cond_ctx = NULL;
  op->pier__r.cdata = NULL;
  op->pier__r.qos = NULL;
  op->pier__r.addr_len = 0;
  op->pier__r.progress = 0;
  op->pier__r.ext = NULL;
  return 0;
}

/* Check a buffer array: no NULL base under a non-zero length, a total
   that fits a size_t; its total in *total. */
static int check_bufs(const char *fn, const pier_buf *bufs, size_t nbufs,
                      size_t *total) {
  size_t sum = 0;
  if (!bufs || nbufs == 0)
    return pier__bad(fn, "%s", !bufs ? "bufs is NULL" : "nbufs is 0");
  for (size_t i = 0; i < nbufs; i++) {
    if (!bufs[i].base && bufs[i].len)
      return pier__bad(fn, "bufs[%lu] has a NULL base and length %lu",
                       (unsigned long)i, (unsigned long)bufs[i].len);
    if (bufs[i].len > (size_t)-1 - sum)
      return pier__bad(fn, "bufs[%lu] makes the total length overflow a size_t",
                       (unsigned long)i);
    sum += bufs[i].len;
  }
  *total = sum;
  return 0;
}

/* Copy the caller's buffer array (inline for up to PIER_OP_INLINE_BUFS). */
static int take_bufs(const char *fn, pier_op *op, const pier_buf *bufs,
                     size_t nbufs) {
  pier_buf *dst = op->pier__r.inline_bufs;
  if (nbufs > PIER_OP_INLINE_BUFS) {
    if (nbufs > (size_t)-1 / sizeof *dst)
      return pier__bad(fn, "nbufs %lu is too many to copy",
                       (unsigned long)nbufs);
    dst = pier__malloc(nbufs * sizeof *dst);
    if (!dst) return PIER_ENOMEM;
  }
  memcpy(dst, bufs, nbufs * sizeof *dst);
  op->pier__r.bufs = dst;
  op->pier__r.nbufs = nbufs;
  return 0;
}

static int take_addr(const char *fn, pier_op *op, const struct sockaddr *addr,
                     size_t len) {
  int rc = pier__addr_check(fn, addr, len);
  if (rc) return rc;
  /* An IPv4 socket reaches only IPv4 addresses (an IPv6 one may take an
     IPv4 address where the OS maps it). */
  int family = op->socket->proto->family;
  if (family == AF_INET && addr->sa_family != AF_INET) return PIER_EAFNOSUPPORT;
  if (family == AF_INET6 && addr->sa_family != AF_INET6 &&
      addr->sa_family != AF_INET)
    return PIER_EAFNOSUPPORT;
  memcpy(&op->pier__r.addr, addr, len);
  op->pier__r.addr_len = len;
  return 0;
}

/* Network events: the call re-enables some (core lock held). */
static void reenable_events(pier_socket *s, const pier_op *op) {
  if (!s->netev) return;
  switch (op->pier__r.type) {
  case PIER_OP_RECV:
  case PIER_OP_RECVFROM:
    pier__netev_reenable(s, (op->pier__r.in_flags & PIER_MSG_OOB)
                                ? PIER_EV_OOB : PIER_EV_READ);
    break;
  case PIER_OP_ACCEPT: pier__netev_reenable(s, PIER_EV_ACCEPT); break;
  default: break;
  }
}

/* ... and its outcome records or re-enables others (core lock held). */
static void outcome_events(pier_socket *s, const pier_op *op, int status) {
  if (!s->netev) return;
  int type = op->pier__r.type;
  /* A non-blocking connect that "would block" goes on in the background,
     where no operation reports its end: it records no CONNECT. */
  if (type == PIER_OP_CONNECT && status != PIER_ECANCELED &&
      status != PIER_EWOULDBLOCK)
    pier__netev_connected(s, status);
  if ((type == PIER_OP_SEND || type == PIER_OP_SENDTO) &&
      status == PIER_EWOULDBLOCK)
    pier__netev_reenable(s, PIER_EV_WRITE);
}

char pier__disconnect_mark;

/* A send started by pier_disconnect has drained what went before it: now
   the sends can be shut down. */
static int disconnect_sent(pier_op *op, int status) {
  op->pier__r.ext = NULL;
  if (status) return status;
  const pier_provider *prov = op->socket->prov;
  return prov->shutdown ? prov->shutdown(op->socket, PIER_SHUT_WR)
                        : PIER_EOPNOTSUPP;
}

/* 1 if a blocking call on s would wait where nothing could run s's loop
   meanwhile, which the call may need: holding the loop's lock (in a
   condition function), or inside one of its callbacks while no other
   thread serves it. */
static int would_deadlock(pier_socket *s) {
  if (PIER__SFLAGS(s) & PIER__S_NONBLOCK) return 0;
  if (pier__lock_held(s->loop)) return 1;
  if (!pier__running_here(s->loop)) return 0;
  pier__lock(s->loop);
  int alone = s->loop->nrunners <= 1;
  pier__unlock(s->loop);
  return alone;
}

/* Run a blocking call in this thread. */
static int run_blocking(pier_socket *s, pier_op *op) {
  if (!s->prov->execute)
    return (s->prov->caps & PIER_PCAP_LAYER) ? pier__layer_blocking(s, op)
                                             : PIER_EOPNOTSUPP;
  pier__block b;
  int rc = would_deadlock(s) ? PIER_EDEADLK : pier__socket_block_enter(s, &b);
  if (rc) { /* nothing started */
    op->status = rc;
    release_bufs(op);
    return rc;
  }
  op->pier__r.loop = NULL;
  op->pier__r.cb = NULL;
  op->status = PIER_EINPROGRESS;
  pier__store(&op->pier__r.state, PIER_OPS_PENDING);
  /* Only sockets that selected network events need the core lock here
     (which would interrupt a poll in progress). */
  int events = pier__load(&s->netev) != NULL;
  if (events) {
    pier__lock(s->loop);
    reenable_events(s, op);
    pier__unlock(s->loop);
  }
  rc = s->prov->execute(s, op);
  if (op->pier__r.ext == &pier__disconnect_mark) {
    pier__lock(s->loop);
    rc = disconnect_sent(op, rc);
    pier__unlock(s->loop);
  }
  pier__socket_block_leave(s, &b);
  if (events || (op->pier__r.type == PIER_OP_ACCEPT && rc == 0)) {
    pier__lock(s->loop);
    if (events) outcome_events(s, op, rc);
    if (op->pier__r.type == PIER_OP_ACCEPT && rc == 0 && op->accepted)
      pier__netev_release(op->accepted); /* the caller has it now */
    pier__unlock(s->loop);
  }
  op->status = rc;
  release_bufs(op);
  pier__store(&op->pier__r.state, PIER_OPS_IDLE);
  return rc;
}

/* Start a checked op: overlapped with cb, blocking without. */
static int start(pier_socket *s, pier_op *op, pier_op_cb cb) {
  if (!cb) return run_blocking(s, op);
  pier_loop *loop = s->loop;
  pier__lock(loop);
  int rc = pier__socket_usable(__func__, s); /* a close from another thread */
  if (rc == 0) {
    reenable_events(s, op);
    op->pier__r.cb = cb;
    pier__loop_op_started(loop, op);
    rc = s->prov->submit(s, op);
    if (rc) pier__loop_op_unstarted(loop, op);
  }
  pier__unlock(loop);
  if (rc) release_bufs(op);
  return rc;
}

/* Sockets with completions wait on the loop's ready list, one entry per
   socket (READY).  A socket whose callback is running (BUSY) is not
   delivered from: if it is found on the list it is dropped from it, and
   unbusy puts it back at the end. */
static void ready_push(pier_loop *loop, pier_socket *s) {
  PIER__SSET(s, PIER__S_READY);
  s->next_ready = NULL;
  s->ready_seq = ++loop->ready_seq;
  if (loop->ready_tail) loop->ready_tail->next_ready = s;
  else loop->ready = s;
  loop->ready_tail = s;
}

static pier_socket *ready_pop(pier_loop *loop) {
  pier_socket *s = loop->ready;
  loop->ready = s->next_ready;
  if (!loop->ready) loop->ready_tail = NULL;
  s->next_ready = NULL;
  PIER__SCLEAR(s, PIER__S_READY);
  return s;
}

void pier__enqueue_done(pier_loop *loop, pier_op *op) {
  pier_socket *s = op->socket;
  if (!s) {
    op->pier__r.seq = ++loop->ready_seq;
    pier_opq_push(&loop->done, op);
    return;
  }
  pier_opq_push(&s->done, op);
  if (!(PIER__SFLAGS(s) & (PIER__S_READY | PIER__S_BUSY))) ready_push(loop, s);
}

void pier_spi_complete(pier_op *op, int status) {
  if (op->pier__r.ext == &pier__disconnect_mark)
    status = disconnect_sent(op, status);
  if (op->socket) outcome_events(op->socket, op, status);
  op->status = status;
  pier__store(&op->pier__r.state, PIER_OPS_DONE);
  pier__enqueue_done(op->pier__r.loop, op);
}

static void unbusy(pier_loop *loop, pier_socket *s) {
  PIER__SCLEAR(s, PIER__S_BUSY);
  if (!(PIER__SFLAGS(s) & PIER__S_READY) && !pier_opq_empty(&s->done))
    ready_push(loop, s);
}

int pier__op_ready(const pier_loop *loop) {
  return loop->ready || !pier_opq_empty(&loop->done);
}

/* The next op to deliver, taken off its queue, or NULL; *sp is set to its
   socket (which is then BUSY), or NULL for a socketless op.  Ops that
   became ready after `limit` are left alone. */
static pier_op *next_op(pier_loop *loop, uint64_t limit, pier_socket **sp) {
  for (;;) {
    pier_op *lop = loop->done.head;
    pier_socket *s = loop->ready;
    if (s && (PIER__SFLAGS(s) & PIER__S_BUSY)) {
      ready_pop(loop); /* its callback runs: unbusy lists it again */
      continue;
    }
    uint64_t lseq = lop ? lop->pier__r.seq : UINT64_MAX;
    uint64_t sseq = s ? s->ready_seq : UINT64_MAX;
    if (lseq <= sseq) {
      if (!lop || lseq > limit) return NULL;
      *sp = NULL;
      return pier_opq_pop(&loop->done);
    }
    if (sseq > limit) return NULL;
    ready_pop(loop);
    PIER__SSET(s, PIER__S_BUSY);
    s->pending--;
    *sp = s;
    return pier_opq_pop(&s->done);
  }
}

int pier__op_deliver_one(pier_loop *loop, int before_poll) {
  pier_socket *s = NULL;
  pier_op *op = next_op(loop, before_poll ? loop->timer_mark : UINT64_MAX, &s);
  if (!op) return 0;
  loop->pending--;
  release_bufs(op);
  /* An accepted socket's own callbacks wait until the accept callback has
     returned, so that it can set the socket up before they run. */
  pier_socket *acc = NULL;
  if (op->pier__r.type == PIER_OP_ACCEPT && op->status == 0 && op->accepted) {
    acc = op->accepted;
    PIER__SSET(acc, PIER__S_BUSY);
  }
  pier_op_cb cb = op->pier__r.cb;
  int status = op->status;
  pier__store(&op->pier__r.state, PIER_OPS_IDLE);
  loop->active++;
  pier__unlock(loop);
  cb(op, status);
  pier__lock(loop);
  loop->active--;
  if (s) unbusy(loop, s);
  if (acc) {
    pier__netev_release(acc);
    unbusy(loop, acc);
  }
  pier__event_signal(loop, &loop->changed);
  return 1;
}

/* ------------------------------------------------------------------ */
/* 2. the public operation calls                                       */
/* ------------------------------------------------------------------ */

#define RECV_FLAGS (PIER_MSG_PEEK | PIER_MSG_OOB | PIER_MSG_WAITALL)

static int is_dgram(const pier_socket *s) {
  return (s->proto->caps & PIER_CAP_CONNECTIONLESS) != 0;
}

int pier_accept(pier_socket *l, pier_op *op, pier_condition_fn cond,
                void *cond_ctx, pier_op_cb cb) {
  int rc = begin(__func__, l, op, PIER_OP_ACCEPT);
  if (rc) return rc;
  if (is_dgram(l)) return PIER_EOPNOTSUPP;
  if (!(PIER__SFLAGS(l) & PIER__S_LISTENING))
    return pier__bad(__func__,
                     "listener is not listening (call pier_listen first)");
  op->pier__r.cond = cond;
  op->pier__r.cond_ctx = cond_ctx;
  return start(l, op, cb);
}

int pier_accept_first(pier_socket *l, pier_op *op, void *buf, size_t len,
                          pier_op_cb cb) {
  int rc = begin(__func__, l, op, PIER_OP_ACCEPT);
  if (rc) return rc;
  if (!cb || !buf || !len || is_dgram(l))
    return pier__bad(__func__, "%s",
                     !cb ? "cb is NULL (there is no blocking form)"
                     : !buf ? "buf is NULL" : !len ? "len is 0"
                     : "listener is a datagram socket");
  if (!(PIER__SFLAGS(l) & PIER__S_LISTENING))
    return pier__bad(__func__,
                     "listener is not listening (call pier_listen first)");
  pier_buf *b = &op->pier__r.inline_bufs[0];
  *b = pier_buf_init(buf, len);
  op->pier__r.bufs = b;
  op->pier__r.nbufs = 1;
  return start(l, op, cb);
}

int pier_connect_first(pier_socket *s, pier_op *op,
                           const struct sockaddr *addr, size_t addrlen,
                           const void *first, size_t len, pier_op_cb cb) {
  int rc = begin(__func__, s, op, PIER_OP_CONNECT);
  if (rc) return rc;
  if (!cb || (len && !first) || is_dgram(s))
    return pier__bad(__func__, "%s",
                     !cb ? "cb is NULL (there is no blocking form)"
                     : !is_dgram(s) ? "first is NULL with a non-zero len"
                     : "s is a datagram socket");
  if (PIER__SFLAGS(s) & PIER__S_LISTENING)
    return pier__bad(__func__, "s is listening");
  if ((rc = take_addr(__func__, op, addr, addrlen)) != 0) return rc;
  if (len) {
    pier_buf *b = &op->pier__r.inline_bufs[0];
    *b = pier_buf_init((void *)(uintptr_t)first, len);
    op->pier__r.bufs = b;
    op->pier__r.nbufs = 1;
  }
  return start(s, op, cb);
}

int pier_connect(pier_socket *s, pier_op *op, const struct sockaddr *addr,
                 size_t addrlen, pier_connect_data *cdata, const pier_qos *qos,
                 pier_op_cb cb) {
  int rc = begin(__func__, s, op, PIER_OP_CONNECT);
  if (rc) return rc;
  if (PIER__SFLAGS(s) & PIER__S_LISTENING)
    return pier__bad(__func__, "s is listening");
  if ((rc = take_addr(__func__, op, addr, addrlen)) != 0) return rc;
  if (cdata && !(s->proto->caps & PIER_CAP_CONNECT_DATA))
    return PIER_EOPNOTSUPP;
  /* The QoS applies before the connect starts (the first packet carries
     it) and is taken back if the connect does not start. */
  pier__qos_saved saved;
  if (qos && (rc = pier__qos_save(s, &saved)) != 0) return rc;
  if (qos && (rc = pier_set_qos(s, qos)) != 0) return rc;
  if (cdata) cdata->callee_len = 0;
  op->pier__r.cdata = cdata;
  op->pier__r.qos = qos;
  rc = start(s, op, cb);
  if (qos && rc && rc != PIER_EWOULDBLOCK && rc != PIER_EALREADY)
    pier__qos_restore(s, &saved);
  return rc;
}

static int begin_io(const char *fn, pier_socket *s, pier_op *op, int type,
                    const pier_buf *bufs, size_t nbufs, unsigned flags,
                    unsigned allowed) {
  int rc = begin(fn, s, op, type);
  if (rc) return rc;
  if (PIER__SFLAGS(s) & PIER__S_LISTENING) return PIER_ENOTCONN;
  size_t total = 0;
  if ((rc = check_bufs(fn, bufs, nbufs, &total)) != 0 || (flags & ~allowed))
    return rc ? rc : pier__bad(fn, "flags 0x%x has bits outside 0x%x", flags,
                               allowed);
  int receive = type == PIER_OP_RECV || type == PIER_OP_RECVFROM;
  if (receive && total == 0)
    return pier__bad(fn, "the buffers hold 0 bytes"); /* see pier_buf */
  /* A datagram goes whole or not at all: never cut at the OS's limit. */
  if (!receive && is_dgram(s) && nbufs > PIER_DGRAM_MAX_BUFS)
    return PIER_EMSGSIZE;
  if ((flags & PIER_MSG_WAITALL) && is_dgram(s)) return PIER_EOPNOTSUPP;
  if ((flags & PIER_MSG_OOB) && !(s->proto->caps & PIER_CAP_EXPEDITED_DATA))
    return PIER_EOPNOTSUPP;
  op->pier__r.in_flags = flags;
  return 0;
}

int pier_recv(pier_socket *s, pier_op *op, const pier_buf *bufs, size_t nbufs,
              unsigned flags, pier_op_cb cb) {
  int rc = begin_io(__func__, s, op, PIER_OP_RECV, bufs, nbufs, flags,
                    RECV_FLAGS);
  if (rc == 0) rc = take_bufs(__func__, op, bufs, nbufs);
  return rc ? rc : start(s, op, cb);
}

int pier_recvfrom(pier_socket *s, pier_op *op, const pier_buf *bufs,
                  size_t nbufs, unsigned flags, struct sockaddr_storage *from,
                  pier_op_cb cb) {
  int rc = begin_io(__func__, s, op, PIER_OP_RECVFROM, bufs, nbufs, flags,
                    RECV_FLAGS);
  if (rc == 0) rc = take_bufs(__func__, op, bufs, nbufs);
  if (rc) return rc;
  op->pier__r.from = from;
  return start(s, op, cb);
}

int pier_send(pier_socket *s, pier_op *op, const pier_buf *bufs, size_t nbufs,
              unsigned flags, pier_op_cb cb) {
  int rc = begin_io(__func__, s, op, PIER_OP_SEND, bufs, nbufs, flags,
                    PIER_MSG_OOB);
  if (rc == 0) rc = take_bufs(__func__, op, bufs, nbufs);
  return rc ? rc : start(s, op, cb);
}

int pier_sendto(pier_socket *s, pier_op *op, const pier_buf *bufs, size_t nbufs,
                unsigned flags, const struct sockaddr *addr, size_t addrlen,
                pier_op_cb cb) {
  int rc = begin_io(__func__, s, op, PIER_OP_SENDTO, bufs, nbufs, flags,
                    PIER_MSG_OOB);
  if (rc == 0) rc = take_addr(__func__, op, addr, addrlen);
  if (rc == 0) rc = take_bufs(__func__, op, bufs, nbufs);
  return rc ? rc : start(s, op, cb);
}

int pier_disconnect(pier_socket *s, pier_op *op, const void *data, size_t len,
                    pier_op_cb cb) {
  int rc = begin(__func__, s, op, PIER_OP_DISCONNECT);
  if (rc) return rc;
  if (is_dgram(s)) return PIER_EOPNOTSUPP;
  if (PIER__SFLAGS(s) & PIER__S_LISTENING) return PIER_ENOTCONN;
  if (len && !data)
    return pier__bad(__func__, "data is NULL with len %lu", (unsigned long)len);
  if (len && !(s->proto->caps & PIER_CAP_DISCONNECT_DATA))
    return PIER_EOPNOTSUPP;
  if (len > PIER_DISCONNECT_DATA_MAX) return PIER_EMSGSIZE;
  pier_buf *b = &op->pier__r.inline_bufs[0];
  *b = pier_buf_init((void *)(uintptr_t)data, len);
  op->pier__r.bufs = b;
  op->pier__r.nbufs = 1;
  if (s->prov->version < 3 || !(s->prov->caps & PIER_PCAP_DISCONNECT)) {
    /* A base provider: an empty send queued behind the others, then a
       shutdown of sends when it completes (disconnect_sent). */
    op->pier__r.type = PIER_OP_SEND;
    op->pier__r.ext = &pier__disconnect_mark;
  }
  return start(s, op, cb);
}

/* ------------------------------------------------------------------ */
/* 3. cancel and results                                               */
/* ------------------------------------------------------------------ */

int pier_cancel(pier_op *op) {
  if (!op) return pier__bad(__func__, "op is NULL");
  pier_loop *loop = op->pier__r.loop;
  if (pier__load(&op->pier__r.state) != PIER_OPS_PENDING || loop == NULL)
    return PIER_ENOENT;
  pier__lock(loop);
  int rc = PIER_ENOENT; /* it may have completed meanwhile */
  if (pier__load(&op->pier__r.state) == PIER_OPS_PENDING)
    rc = op->pier__r.type == PIER_OP_RESOLVE
             ? pier__resolve_cancel(op)
             : op->socket->prov->cancel(op->socket, op);
  pier__unlock(loop);
  return rc;
}

int pier_cancel_blocking(pier_socket *s) {
  if (!s) return pier__bad(__func__, "the socket (first argument) is NULL");
  if (!s->prov->cancel_blocking) return PIER_EOPNOTSUPP;
  return pier__socket_cancel_blocking(s);
}

static int finished(pier_op *op) {
  return pier__load(&op->pier__r.state) == PIER_OPS_IDLE;
}

/* Wait for op: run the loop here if nobody runs it, else sleep. */
static int wait_op(pier_op *op) {
  pier_loop *loop = op->pier__r.loop;
  if (!loop) return PIER_EINPROGRESS; /* a blocking call in another thread */
  if (pier__running_here(loop)) return PIER_EDEADLK;
  while (!finished(op)) {
    pier__lock(loop);
    int running = loop->nrunners > 0;
    while (loop->nrunners > 0 && !finished(op))
      pier__event_wait(loop, &loop->changed);
    pier__unlock(loop);
    if (running) continue;
    int rc = pier_loop_run(loop, PIER_RUN_ONCE);
    if (rc < 0 && rc != PIER_EBUSY) return rc;
  }
  return 0;
}

int pier_op_result(pier_op *op, int wait, size_t *bytes, unsigned *flags) {
  if (!op) return pier__bad(__func__, "op is NULL");
  if (!finished(op)) {
    if (!wait) return PIER_EINPROGRESS;
    int rc = wait_op(op);
    if (rc) return rc;
  }
  if (bytes) *bytes = op->bytes;
  if (flags) *flags = op->flags;
  return op->status;
}

/* The callback of a blocking-form call run overlapped: the waiter looks
   at the op itself. */
static void blocking_done(pier_op *op, int status) {
  (void)op;
  (void)status;
}

int pier__layer_blocking(pier_socket *s, pier_op *op) {
  if (PIER__SFLAGS(s) & PIER__S_NONBLOCK) return PIER_EOPNOTSUPP;
  if (pier__running_here(s->loop)) return PIER_EDEADLK;
  int rc = start(s, op, blocking_done);
  if (rc == 0) rc = wait_op(op);
  return rc ? rc : op->status;
}
