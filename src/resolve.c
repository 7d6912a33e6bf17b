/* SPDX-License-Identifier: MIT */
/*
 * src/resolve.c - asynchronous getaddrinfo: requests run on a small pool
 * of worker threads per loop (started on first use, joined when the loop
 * is freed), so name resolution never blocks the loop.
 *
 * A request is allocated per call and owned by the pool; the op is only
 * touched under the loop lock, so pier_cancel() can complete it at once
 * while the worker is still inside getaddrinfo (the late result is freed).
 */
#include <string.h>

#include "internal.h"

#define MAX_WORKERS 4

typedef struct request {
  struct request *next;
  pier_op *op;               /* NULL once canceled (under loop->lock) */
  char *node, *service;
  struct addrinfo hints;
  int has_hints;
} request;

struct pier__resolver {
  pier_loop *loop;
  pier__cond work;           /* signals queued requests (loop->lock) */
  request *head, *tail;
  size_t idle, nworkers;
  int quit;
  pier__thread workers[MAX_WORKERS];
};

static char *dup_str(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = pier__malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void request_free(request *r) {
  pier__free(r->node);
  pier__free(r->service);
  pier__free(r);
}

static int lookup(const char *node, const char *service,
                  const struct addrinfo *hints, struct addrinfo **out) {
  *out = NULL;
  return pier__gai_error(getaddrinfo(node, service, hints, out));
}

static void worker(void *arg) {
  struct pier__resolver *r = arg;
  pier_loop *loop = r->loop;
  pier__mutex_lock(&loop->lock);
  for (;;) {
    while (!r->head && !r->quit) {
      r->idle++;
      pier__cond_wait(&r->work, &loop->lock);
      r->idle--;
    }
    if (!r->head) break; /* quitting with nothing queued */
    request *q = r->head;
    r->head = q->next;
    if (!r->head) r->tail = NULL;
    if (!q->op) { /* canceled before it ran */
      request_free(q);
      continue;
    }
    pier__mutex_unlock(&loop->lock);
    struct addrinfo *ai;
    int rc = lookup(q->node, q->service, q->has_hints ? &q->hints : NULL, &ai);
    pier__mutex_lock(&loop->lock);
    pier_op *op = q->op;
    if (op) {
      op->addrinfo = ai;
      op->status = rc;
      pier__store(&op->pier__r.state, PIER_OPS_DONE);
      pier_opq_push(&loop->remote, op);
      loop->nremote++;
      loop->prov->loop_wake(loop);
    } else if (ai) {
      freeaddrinfo(ai);
    }
    request_free(q);
  }
  pier__mutex_unlock(&loop->lock);
}

/* Create the pool state on first use (core lock held). */
static struct pier__resolver *resolver_get(pier_loop *loop) {
  if (loop->resolver) return loop->resolver;
  struct pier__resolver *r = pier__calloc(1, sizeof *r);
  if (!r) return NULL;
  if (pier__cond_init(&r->work) != 0) {
    pier__free(r);
    return NULL;
  }
  r->loop = loop;
  loop->resolver = r;
  return r;
}

/* Queue q; start another worker if none is idle.  Under loop->lock. */
static int enqueue(struct pier__resolver *r, request *q) {
  if (r->idle == 0 && r->nworkers < MAX_WORKERS) {
    int rc = pier__thread_start(&r->workers[r->nworkers], worker, r);
    if (rc && r->nworkers == 0) return rc;
    if (rc == 0) r->nworkers++;
  }
  if (r->tail) r->tail->next = q; else r->head = q;
  r->tail = q;
  pier__cond_signal(&r->work);
  return 0;
}

int pier_resolve(pier_loop *loop, pier_op *op, const char *node,
                 const char *service, const struct addrinfo *hints,
                 pier_op_cb cb) {
  if (!loop || !op || (!node && !service))
    return pier__bad(__func__, "%s", !loop ? "loop is NULL" : !op ? "op is NULL"
                     : "node and service are both NULL");
  if (pier__load(&op->pier__r.state) != PIER_OPS_IDLE) return PIER_EBUSY;
  op->addrinfo = NULL;
  op->socket = NULL;
  op->bytes = 0;
  op->flags = 0;
  if (!cb) {
    op->status = lookup(node, service, hints, &op->addrinfo);
    return op->status;
  }
  int rc = pier__loop_usable(__func__, loop);
  if (rc) return rc;
  request *q = pier__calloc(1, sizeof *q);
  if (!q) return PIER_ENOMEM;
  q->node = dup_str(node);
  q->service = dup_str(service);
  if ((node && !q->node) || (service && !q->service)) {
    request_free(q);
    return PIER_ENOMEM;
  }
  if (hints) {
    q->hints = *hints;
    q->hints.ai_addr = NULL;
    q->hints.ai_canonname = NULL;
    q->hints.ai_next = NULL;
    q->has_hints = 1;
  }
  q->op = op;
  op->pier__r.type = PIER_OP_RESOLVE;
  op->pier__r.cb = cb;
  op->pier__r.ext = q;
  pier__lock(loop);
  struct pier__resolver *r = resolver_get(loop);
  rc = r ? 0 : PIER_ENOMEM;
  if (rc == 0) {
    pier__loop_op_started(loop, op);
    pier__mutex_lock(&loop->lock);
    rc = enqueue(r, q);
    pier__mutex_unlock(&loop->lock);
    if (rc) pier__loop_op_unstarted(loop, op);
  }
  pier__unlock(loop);
  if (rc) request_free(q);
  return rc;
}

int pier__resolve_cancel(pier_op *op) {
  pier_loop *loop = op->pier__r.loop;
  request *q = op->pier__r.ext;
  int rc = PIER_ENOENT;
  pier__mutex_lock(&loop->lock);
  if (pier__load(&op->pier__r.state) == PIER_OPS_PENDING && q && q->op == op) {
    q->op = NULL; /* the worker frees q and any late result */
    rc = 0;
  }
  pier__mutex_unlock(&loop->lock);
  if (rc == 0) pier_spi_complete(op, PIER_ECANCELED);
  return rc;
}

void pier__resolver_free(pier_loop *loop) {
  struct pier__resolver *r = loop->resolver;
  if (!r) return;
  pier__mutex_lock(&loop->lock);
  r->quit = 1;
  pier__cond_broadcast(&r->work);
  pier__mutex_unlock(&loop->lock);
  for (size_t i = 0; i < r->nworkers; i++) pier__thread_join(r->workers[i]);
  while (r->head) {
    request *q = r->head;
    r->head = q->next;
    request_free(q);
  }
  pier__cond_destroy(&r->work);
  pier__free(r);
  loop->resolver = NULL;
}

void pier_freeaddrinfo(struct addrinfo *ai) {
  if (ai) freeaddrinfo(ai);
}
