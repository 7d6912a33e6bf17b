/* SPDX-License-Identifier: MIT */
/*
 * src/loop.c - the loop: creation and release, liveness, stop,
 * references, and completions arriving from other threads (posts and
 * resolver workers).  The run algorithm is in src/run.c.
 *
 * Section map
 *   1. create / close / free
 *   2. liveness and remote completions
 *   3. cross-thread: post, remote completion, stop, ref
 *   4. small accessors
 */
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------ */
/* 1. create / close / free                                            */
/* ------------------------------------------------------------------ */

#define LOOP_ALIGN 16
#define ROUND_UP(n) (((n) + LOOP_ALIGN - 1) & ~(size_t)(LOOP_ALIGN - 1))

int pier_loop_new(const pier_loop_options *opts, pier_loop **out) {
  if (!out) return pier__bad(__func__, "out is NULL");
  *out = NULL;
  if (opts && opts->size < offsetof(pier_loop_options, flags))
    return pier__bad(__func__, "opts->size %lu is too small (set it to "
                     "sizeof(pier_loop_options))", (unsigned long)opts->size);
  unsigned threads = 1;
  if (opts && opts->size >= offsetof(pier_loop_options, threads) +
                                sizeof opts->threads && opts->threads > 0)
    threads = opts->threads;
  if (threads > PIER_LOOP_MAX_THREADS)
    return pier__bad(__func__, "opts->threads %u is outside 0..%d", threads,
                     PIER_LOOP_MAX_THREADS);
  const pier_provider *prov;
  int rc = pier__provider_select(opts ? opts->provider : NULL, &prov);
  if (rc) return rc;

  pier_loop *loop = pier__calloc(1, ROUND_UP(sizeof *loop) + prov->loop_size);
  if (!loop) return PIER_ENOMEM;
  loop->prov = prov;
  loop->prov_state = (char *)loop + ROUND_UP(sizeof *loop);
  loop->now = pier__hrtime_ms();
  loop->threads = threads;
  if ((rc = pier__os_init()) != 0) goto fail_os;
  if ((rc = pier__mutex_init(&loop->lock)) != 0) goto fail_mutex;
  if ((rc = pier__mutex_init(&loop->core)) != 0) goto fail_core;
  if ((rc = pier__cond_init(&loop->changed.cond)) != 0) goto fail_changed;
  if ((rc = pier__cond_init(&loop->work.cond)) != 0) goto fail_work;
  if ((rc = prov->loop_init(loop)) != 0) goto fail_prov;
  pier__process_ref();
  *out = loop;
  return 0;

fail_prov:
  pier__cond_destroy(&loop->work.cond);
fail_work:
  pier__cond_destroy(&loop->changed.cond);
fail_changed:
  pier__mutex_destroy(&loop->core);
fail_core:
  pier__mutex_destroy(&loop->lock);
fail_mutex:
  pier__os_cleanup();
fail_os:
  pier__free(loop);
  return rc;
}

int pier_loop_close(pier_loop *loop) {
  if (!loop) return pier__bad(__func__, "loop is NULL");
  pier__mutex_lock(&loop->lock);
  loop->closed = 1;
  pier__mutex_unlock(&loop->lock);
  return 0;
}

int pier_loop_free(pier_loop *loop) {
  if (!loop) return pier__bad(__func__, "loop is NULL");
  pier__lock(loop);
  int busy = loop->nrunners || loop->nsockets || loop->nheap ||
             loop->pending || loop->active || loop->ready ||
             !pier_opq_empty(&loop->done);
  pier__mutex_lock(&loop->lock);
  busy = busy || loop->nremote > 0;
  pier__mutex_unlock(&loop->lock);
  pier__unlock(loop);
  if (busy) return PIER_EBUSY;
  pier__resolver_free(loop);
  if (loop->prov->loop_free) loop->prov->loop_free(loop);
  pier__cond_destroy(&loop->work.cond);
  pier__cond_destroy(&loop->changed.cond);
  pier__mutex_destroy(&loop->core);
  pier__mutex_destroy(&loop->lock);
  pier__free(loop->heap);
  pier__free(loop);
  pier__os_cleanup();
  pier__process_unref();
  return 0;
}

int pier__loop_usable(const char *fn, pier_loop *loop) {
  if (!loop) return pier__bad(fn, "loop is NULL");
  pier__mutex_lock(&loop->lock);
  int closed = loop->closed;
  pier__mutex_unlock(&loop->lock);
  return closed ? PIER_ESHUTDOWN : 0;
}

/* ------------------------------------------------------------------ */
/* 2. liveness and remote completions                                  */
/* ------------------------------------------------------------------ */

void pier__loop_drain_remote(pier_loop *loop) {
  pier__mutex_lock(&loop->lock);
  pier_op *op;
  while ((op = pier_opq_pop(&loop->remote)) != NULL) {
    if (op->pier__r.type == PIER_OP_POST) loop->pending++; /* uncounted */
    pier__enqueue_done(loop, op);
  }
  loop->nremote = 0;
  pier__mutex_unlock(&loop->lock);
}

int pier__loop_alive(pier_loop *loop) {
  if (loop->pending || loop->nheap || loop->closing || loop->active ||
      loop->ready || !pier_opq_empty(&loop->done))
    return 1;
  pier__mutex_lock(&loop->lock);
  int alive = loop->nremote > 0 || loop->refs > 0;
  pier__mutex_unlock(&loop->lock);
  return alive;
}

/* ------------------------------------------------------------------ */
/* 3. cross-thread                                                     */
/* ------------------------------------------------------------------ */

int pier_loop_stop(pier_loop *loop) {
  if (!loop) return pier__bad(__func__, "loop is NULL");
  pier__store(&loop->stop, 1);
  loop->prov->loop_wake(loop);
  return 0;
}

int pier_loop_ref(pier_loop *loop) {
  if (!loop) return pier__bad(__func__, "loop is NULL");
  pier__mutex_lock(&loop->lock);
  loop->refs++;
  pier__mutex_unlock(&loop->lock);
  return 0;
}

int pier_loop_unref(pier_loop *loop) {
  if (!loop) return pier__bad(__func__, "loop is NULL");
  pier__mutex_lock(&loop->lock);
  int rc = loop->refs > 0 ? 0 : PIER_EINVAL;
  if (rc == 0) loop->refs--;
  pier__mutex_unlock(&loop->lock);
  if (rc == 0) loop->prov->loop_wake(loop);
  return rc ? pier__bad(__func__, "the loop has no reference left (more "
                        "unrefs than pier_loop_ref calls)") : 0;
}

static void remote_push(pier_loop *loop, pier_op *op, int status) {
  op->status = status;
  pier__store(&op->pier__r.state, PIER_OPS_DONE);
  pier_opq_push(&loop->remote, op);
  loop->nremote++;
}

int pier_loop_post(pier_loop *loop, pier_op *op, pier_op_cb cb) {
  if (!loop || !op || !cb)
    return pier__bad(__func__, "%s is NULL",
                     !loop ? "loop" : !op ? "op" : "cb");
  pier__mutex_lock(&loop->lock);
  int rc = loop->closed ? PIER_ESHUTDOWN
           : op->pier__r.state != PIER_OPS_IDLE ? PIER_EBUSY : 0;
  if (rc == 0) {
    op->pier__r.type = PIER_OP_POST;
    op->pier__r.cb = cb;
    op->pier__r.loop = loop;
    op->socket = NULL;
    op->bytes = 0;
    op->flags = 0;
    remote_push(loop, op, 0);
  }
  pier__mutex_unlock(&loop->lock);
  if (rc == 0) loop->prov->loop_wake(loop);
  return rc;
}

void pier__loop_remote_complete(pier_loop *loop, pier_op *op, int status) {
  pier__mutex_lock(&loop->lock);
  /* The op was counted as pending when started; delivery uncounts it. */
  remote_push(loop, op, status);
  pier__mutex_unlock(&loop->lock);
  loop->prov->loop_wake(loop);
}

void pier__loop_op_started(pier_loop *loop, pier_op *op) {
  pier__store(&op->pier__r.state, PIER_OPS_PENDING);
  op->pier__r.loop = loop;
  op->status = PIER_EINPROGRESS;
  loop->pending++;
  if (op->socket) op->socket->pending++;
}

void pier__loop_op_unstarted(pier_loop *loop, pier_op *op) {
  pier__store(&op->pier__r.state, PIER_OPS_IDLE);
  loop->pending--;
  if (op->socket) op->socket->pending--;
}

/* ------------------------------------------------------------------ */
/* 4. accessors                                                        */
/* ------------------------------------------------------------------ */

const char *pier_loop_backend(const pier_loop *loop) {
  return loop ? loop->prov->name : NULL;
}

uint64_t pier_loop_now(const pier_loop *loop) {
  return loop ? pier__load(&loop->now) : 0;
}

void pier_loop_set_data(pier_loop *loop, void *data) {
  if (loop) loop->data = data;
}

void *pier_loop_get_data(const pier_loop *loop) {
  return loop ? loop->data : NULL;
}

void *pier_spi_loop_state(pier_loop *loop) { return loop->prov_state; }
