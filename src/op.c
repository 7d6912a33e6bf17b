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
static int begin(pier_socket *s, pier_op *op, int type) {
  if (!s || !op) return PIER_EINVAL;
  if (pier__load(&op->pier__r.state) != PIER_OPS_IDLE) return PIER_EBUSY;
  int rc = pier__socket_usable(s);
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

/* Copy the caller's buffer array (inline for up to PIER_OP_INLINE_BUFS). */
static int take_bufs(pier_op *op, const pier_buf *bufs, size_t nbufs) {
  if (!bufs || nbufs == 0) return PIER_EINVAL;
  pier_buf *dst = op->pier__r.inline_bufs;
  if (nbufs > PIER_OP_INLINE_BUFS) {
    if (nbufs > (size_t)-1 / sizeof *dst) return PIER_EINVAL;
    dst = pier__malloc(nbufs * sizeof *dst);
    if (!dst) return PIER_ENOMEM;
  }
  memcpy(dst, bufs, nbufs * sizeof *dst);
  op->pier__r.bufs = dst;
  op->pier__r.nbufs = nbufs;
  return 0;
}

static int take_addr(pier_op *op, const struct sockaddr *addr, size_t len) {
  int rc = pier__addr_check(addr, len);
  if (rc) return rc;
  memcpy(&op->pier__r.addr, addr, len);
  op->pier__r.addr_len = len;
  return 0;
}

/* Run a blocking call in this thread. */
static int run_blocking(pier_socket *s, pier_op *op) {
  if (!s->prov->execute) return PIER_EOPNOTSUPP;
  op->pier__r.loop = NULL;
  op->pier__r.cb = NULL;
  op->status = PIER_EINPROGRESS;
  pier__store(&op->pier__r.state, PIER_OPS_PENDING);
  pier__socket_block_enter(s);
  int rc = s->prov->execute(s, op);
  pier__socket_block_leave(s);
  op->status = rc;
  release_bufs(op);
  pier__store(&op->pier__r.state, PIER_OPS_IDLE);
  return rc;
}

/* Start a checked op: overlapped with cb, blocking without. */
static int start(pier_socket *s, pier_op *op, pier_op_cb cb) {
  if (!cb) return run_blocking(s, op);
  op->pier__r.cb = cb;
  pier__loop_op_started(s->loop, op);
  int rc = s->prov->submit(s, op);
  if (rc) {
    pier__loop_op_unstarted(s->loop, op);
    release_bufs(op);
  }
  return rc;
}

void pier_spi_complete(pier_op *op, int status) {
  pier_loop *loop = op->pier__r.loop;
  op->status = status;
  pier__store(&op->pier__r.state, PIER_OPS_DONE);
  pier_opq_push(&loop->done, op);
}

size_t pier__ops_deliver(pier_loop *loop) {
  /* A snapshot: ops completing during these callbacks wait for the next
     pass, so an endless chain of instant completions cannot starve I/O. */
  pier_opq batch = loop->done;
  loop->done.head = loop->done.tail = NULL;
  size_t n = 0;
  pier_op *op;
  while ((op = pier_opq_pop(&batch)) != NULL) {
    pier_socket *s = op->socket;
    loop->pending--;
    if (s) s->pending--;
    release_bufs(op);
    pier_op_cb cb = op->pier__r.cb;
    int status = op->status;
    pier__store(&op->pier__r.state, PIER_OPS_IDLE);
    loop->in_callback++;
    cb(op, status);
    loop->in_callback--;
    n++;
  }
  return n;
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
  int rc = begin(l, op, PIER_OP_ACCEPT);
  if (rc) return rc;
  if (is_dgram(l)) return PIER_EOPNOTSUPP;
  if (!(l->flags & PIER__S_LISTENING)) return PIER_EINVAL;
  op->pier__r.cond = cond;
  op->pier__r.cond_ctx = cond_ctx;
  return start(l, op, cb);
}

int pier_connect(pier_socket *s, pier_op *op, const struct sockaddr *addr,
                 size_t addrlen, pier_connect_data *cdata, const pier_qos *qos,
                 pier_op_cb cb) {
  int rc = begin(s, op, PIER_OP_CONNECT);
  if (rc) return rc;
  if (s->flags & PIER__S_LISTENING) return PIER_EINVAL;
  if ((rc = take_addr(op, addr, addrlen)) != 0) return rc;
  if (cdata && !(s->proto->caps & PIER_CAP_CONNECT_DATA))
    return PIER_EOPNOTSUPP;
  if (qos && (rc = pier_set_qos(s, qos)) != 0) return rc;
  if (cdata) cdata->callee_len = 0;
  op->pier__r.cdata = cdata;
  op->pier__r.qos = qos;
  return start(s, op, cb);
}

static int begin_io(pier_socket *s, pier_op *op, int type, const pier_buf *bufs,
                    size_t nbufs, unsigned flags, unsigned allowed) {
  int rc = begin(s, op, type);
  if (rc) return rc;
  if (s->flags & PIER__S_LISTENING) return PIER_ENOTCONN;
  if (!bufs || nbufs == 0 || (flags & ~allowed)) return PIER_EINVAL;
  if ((flags & PIER_MSG_WAITALL) && is_dgram(s)) return PIER_EOPNOTSUPP;
  if ((flags & PIER_MSG_OOB) && !(s->proto->caps & PIER_CAP_EXPEDITED_DATA))
    return PIER_EOPNOTSUPP;
  op->pier__r.in_flags = flags;
  return 0;
}

int pier_recv(pier_socket *s, pier_op *op, const pier_buf *bufs, size_t nbufs,
              unsigned flags, pier_op_cb cb) {
  int rc = begin_io(s, op, PIER_OP_RECV, bufs, nbufs, flags, RECV_FLAGS);
  if (rc == 0) rc = take_bufs(op, bufs, nbufs);
  return rc ? rc : start(s, op, cb);
}

int pier_recvfrom(pier_socket *s, pier_op *op, const pier_buf *bufs,
                  size_t nbufs, unsigned flags, struct sockaddr_storage *from,
                  pier_op_cb cb) {
  int rc = begin_io(s, op, PIER_OP_RECVFROM, bufs, nbufs, flags, RECV_FLAGS);
  if (rc == 0) rc = take_bufs(op, bufs, nbufs);
  if (rc) return rc;
  op->pier__r.from = from;
  return start(s, op, cb);
}

int pier_send(pier_socket *s, pier_op *op, const pier_buf *bufs, size_t nbufs,
              unsigned flags, pier_op_cb cb) {
  int rc = begin_io(s, op, PIER_OP_SEND, bufs, nbufs, flags, PIER_MSG_OOB);
  if (rc == 0) rc = take_bufs(op, bufs, nbufs);
  return rc ? rc : start(s, op, cb);
}

int pier_sendto(pier_socket *s, pier_op *op, const pier_buf *bufs, size_t nbufs,
                unsigned flags, const struct sockaddr *addr, size_t addrlen,
                pier_op_cb cb) {
  int rc = begin_io(s, op, PIER_OP_SENDTO, bufs, nbufs, flags, PIER_MSG_OOB);
  if (rc == 0) rc = take_addr(op, addr, addrlen);
  if (rc == 0) rc = take_bufs(op, bufs, nbufs);
  return rc ? rc : start(s, op, cb);
}

/* ------------------------------------------------------------------ */
/* 3. cancel and results                                               */
/* ------------------------------------------------------------------ */

int pier_cancel(pier_op *op) {
  if (!op) return PIER_EINVAL;
  if (pier__load(&op->pier__r.state) != PIER_OPS_PENDING ||
      op->pier__r.loop == NULL)
    return PIER_ENOENT;
  if (op->pier__r.type == PIER_OP_RESOLVE) return pier__resolve_cancel(op);
  return op->socket->prov->cancel(op->socket, op);
}

int pier_cancel_blocking(pier_socket *s) {
  if (!s) return PIER_EINVAL;
  if (!s->prov->cancel_blocking) return PIER_EOPNOTSUPP;
  return s->prov->cancel_blocking(s);
}

static int finished(pier_op *op) {
  return pier__load(&op->pier__r.state) == PIER_OPS_IDLE;
}

/* Wait for op: run the loop here if nobody runs it, else sleep. */
static int wait_op(pier_op *op) {
  pier_loop *loop = op->pier__r.loop;
  if (!loop) return PIER_EINPROGRESS; /* a blocking call in another thread */
  while (!finished(op)) {
    pier__mutex_lock(&loop->lock);
    int running = loop->running;
    if (running && pier__thread_equal(loop->runner, pier__thread_self())) {
      pier__mutex_unlock(&loop->lock);
      return PIER_EDEADLK;
    }
    if (running) {
      while (loop->running && !finished(op))
        pier__cond_wait(&loop->changed, &loop->lock);
      pier__mutex_unlock(&loop->lock);
      continue;
    }
    pier__mutex_unlock(&loop->lock);
    int rc = pier_loop_run(loop, PIER_RUN_ONCE);
    if (rc < 0 && rc != PIER_EBUSY) return rc;
  }
  return 0;
}

int pier_op_result(pier_op *op, int wait, size_t *bytes, unsigned *flags) {
  if (!op) return PIER_EINVAL;
  if (!finished(op)) {
    if (!wait) return PIER_EINPROGRESS;
    int rc = wait_op(op);
    if (rc) return rc;
  }
  if (bytes) *bytes = op->bytes;
  if (flags) *flags = op->flags;
  return op->status;
}
