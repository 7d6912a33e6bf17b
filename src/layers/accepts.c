/* SPDX-License-Identifier: MIT */
/*
 * src/layers/accepts.c - the listener side shared by pier's layers
 * (accepts.h): eager lower accepts, the list of connections being
 * prepared, and their presentation to the application's accepts.
 */
#include <string.h>

#include "accepts.h"

static void start_accept(lacc_listener *l);

static void present(lacc_listener *l);

static size_t table_size(const lacc_listener *l) {
  return l->max_pending ? l->max_pending : LACC_MAX_PENDING;
}

/* c leaves the pending list (and the ready list). */
static void unlink_conn(lacc_listener *l, lacc_conn *c) {
  c->l = NULL;
  if (c->prev) c->prev->next = c->next;
  else l->pending = c->next;
  if (c->next) c->next->prev = c->prev;
  else l->pending_tail = c->prev;
  c->next = c->prev = NULL;
  if (c->ready) {
    lacc_conn *before = NULL;
    for (lacc_conn **q = &l->ready; *q; before = *q, q = &(*q)->next_ready) {
      if (*q == c) {
        *q = c->next_ready;
        if (l->ready_tail == c) l->ready_tail = before;
        break;
      }
    }
    c->ready = 0;
    l->nready--;
  }
  c->next_ready = NULL;
  l->npending--;
}

/* The table is full and a caller waits: the oldest connection still in
   its handshake makes room (a slow caller holds up nobody). */
static void evict_oldest(lacc_listener *l) {
  lacc_conn *c = l->pending;
  while (c && c->ready) c = c->next;
  if (!c) return;
  unlink_conn(l, c);
  l->evicted++;
  pier_spi_log(PIER_LOG_INFO,
               "%s: %lu handshake(s) evicted so far: the table of %lu is "
               "full and another caller waits",
               l->layer->name, l->evicted, (unsigned long)table_size(l));
  pier_close(c->s, NULL);
}

/* A new connection of the lower listener joins the table. */
static void adopt_lower(lacc_listener *l, pier_socket *lower, size_t nfirst) {
  pier_socket *up = NULL;
  lacc_conn *c = NULL;
  if (pier_spi_layer_open(l->layer, pier_socket_protocol(l->s), lower, l->s,
                          &up) != 0)
    pier_close(lower, NULL);
  else if (!(c = l->ops->adopt(l, up)))
    pier_close(up, NULL);
  if (!c) return;
  while (l->npending >= table_size(l) && l->npending > l->nready)
    evict_oldest(l);
  c->l = l;
  c->ready = 0;
  c->next = NULL;
  c->prev = l->pending_tail;
  if (l->pending_tail) l->pending_tail->next = c;
  else l->pending = c;
  l->pending_tail = c;
  l->npending++;
  l->ops->start(c, l->abuf, nfirst);
}

static void accepted(pier_op *aop, int status) {
  lacc_listener *l = aop->data;
  pier_loop *loop = pier_socket_loop(l->s);
  pier_spi_lock(loop);
  pier_socket *lower = status == 0 ? aop->accepted : NULL;
  if (l->closing || !l->on) {
    l->aop_busy = 0;
    if (lower) pier_close(lower, NULL);
  } else {
    /* A failed accept (out of descriptors or memory) is retried at once:
       the base provider has shed the callers waiting then, and its next
       accept waits for a new caller instead of failing again
       (doc/semantics.md, "Out of descriptors"). */
    if (status && status != PIER_ECANCELED)
      pier_spi_log(PIER_LOG_WARN, "%s: accept failed: %s", l->layer->name,
                   pier_strerror(status));
    else if (lower)
      adopt_lower(l, lower, aop->bytes);
    l->aop_busy = 0; /* aop and abuf are free again only now */
    if (status != PIER_ECANCELED) start_accept(l);
  }
  pier_spi_unlock(loop);
}

/* Accept on the lower listener unless it runs already or the table is
   full of connections ready for the application (its backpressure). */
static void start_accept(lacc_listener *l) {
  if (l->aop_busy || l->closing || !l->on ||
      (l->npending >= table_size(l) && l->nready >= l->npending))
    return;
  pier_op_init(&l->aop);
  l->aop.data = l;
  int rc;
  if (l->first) {
    if (!l->abuf && !(l->abuf = pier_spi_malloc(LACC_FIRST))) {
      l->aop_failed = PIER_ENOMEM;
      return;
    }
    rc = pier_accept_first(l->lower, &l->aop, l->abuf, LACC_FIRST, accepted);
  } else {
    rc = pier_accept(l->lower, &l->aop, NULL, NULL, accepted);
  }
  if (rc == 0) l->aop_busy = 1;
  else l->aop_failed = rc;
}

int pier__lacc_listen(lacc_listener *l, pier_socket *s, pier_socket *lower,
                      const pier_provider *layer, const lacc_ops *ops,
                      int first) {
  l->s = s;
  l->lower = lower;
  l->layer = layer;
  l->ops = ops;
  l->first = first;
  l->on = 1;
  start_accept(l);
  int rc = l->aop_failed;
  l->aop_failed = 0;
  return rc;
}

void pier__lacc_detach(lacc_conn *c) {
  lacc_listener *l = c->l;
  if (!l) return;
  unlink_conn(l, c);
  start_accept(l);
}

void pier__lacc_ready(lacc_conn *c) {
  lacc_listener *l = c->l;
  if (!l || c->ready) return;
  c->next_ready = NULL;
  c->ready = 1;
  l->nready++;
  if (l->ready_tail) l->ready_tail->next_ready = c;
  else l->ready = c;
  l->ready_tail = c;
  present(l);
}

int pier__lacc_accept(lacc_listener *l, pier_op *op) {
  if (!l->on)
    return pier_spi_bad_arg("pier_accept", "the socket is not listening");
  pier_opq_push(&l->acceptq, op);
  l->deferred = 0; /* a new accept: the deferred connection comes first */
  if (!l->aop_busy) {
    l->aop_failed = 0;
    start_accept(l);
  }
  present(l);
  return 0;
}

int pier__lacc_cancel(lacc_listener *l, pier_op *op) {
  pier_opq_remove(&l->acceptq, op);
  pier_spi_complete(op, PIER_ECANCELED);
  return 0;
}

void pier__lacc_close(lacc_listener *l) {
  l->closing = 1;
  while (l->pending) {
    lacc_conn *c = l->pending;
    pier__lacc_detach(c);
    pier_close(c->s, NULL);
  }
  pier_op *op;
  while ((op = pier_opq_pop(&l->acceptq)) != NULL)
    pier_spi_complete(op, PIER_ECANCELED);
}

int pier__lacc_getopt(lacc_listener *l, int name, int *value) {
  if (name == PIER_SO_HANDSHAKES_MAX) {
    *value = (int)table_size(l);
    return 0;
  }
  if (name != PIER_SO_SHED_COUNT) return PIER_ENOPROTOOPT;
  int below = 0;
  if (!l->on || pier_getsockopt(l->lower, PIER_SO_SHED_COUNT, &below) != 0)
    below = 0;
  unsigned long n = l->evicted + (unsigned long)below;
  *value = n > 0x7FFFFFFFul ? 0x7FFFFFFF : (int)n;
  return 0;
}

int pier__lacc_setopt(lacc_listener *l, int name, int value) {
  if (name == PIER_SO_SHED_COUNT)
    return pier_spi_bad_arg("pier_setsockopt", "PIER_SO_SHED_COUNT is read-only");
  if (name != PIER_SO_HANDSHAKES_MAX) return PIER_ENOPROTOOPT;
  if (value < 1 || value > LACC_MAX_PENDING_LIMIT)
    return pier_spi_bad_arg("pier_setsockopt", "PIER_SO_HANDSHAKES_MAX %d is "
                            "outside 1..%d", value, LACC_MAX_PENDING_LIMIT);
  l->max_pending = (size_t)value;
  start_accept(l); /* a larger table may take more at once */
  return 0;
}

void pier__lacc_free(lacc_listener *l) {
  pier_spi_free(l->abuf);
  l->abuf = NULL;
}

/* op's verdict on c: its condition function, with the addresses. */
static int ask(lacc_listener *l, lacc_conn *c, pier_op *op) {
  if (!op->pier__r.cond) return PIER_CF_ACCEPT;
  struct sockaddr_storage peer, local;
  size_t plen = sizeof peer, llen = sizeof local;
  memset(&peer, 0, sizeof peer);
  memset(&local, 0, sizeof local);
  pier_getpeername(c->s, &peer, &plen);
  pier_getsockname(c->s, &local, &llen);
  pier_accept_info info;
  memset(&info, 0, sizeof info);
  info.caller = (const struct sockaddr *)&peer;
  info.caller_len = plen;
  info.local = (const struct sockaddr *)&local;
  info.local_len = llen;
  l->presenting = 1;
  int verdict = l->ops->ask ? l->ops->ask(c, op, &info)
                            : op->pier__r.cond(&info, op->pier__r.cond_ctx);
  l->presenting = 0;
  return verdict;
}

static void present(lacc_listener *l) {
  while (!l->deferred && !l->presenting && !l->closing && l->ready &&
         !pier_opq_empty(&l->acceptq)) {
    pier_op *op = l->acceptq.head;
    lacc_conn *c = l->ready;
    int verdict = ask(l, c, op);
    /* The condition function may have closed the listener, cancelled the
       accept, or the layer dropped c: start over from what is left. */
    if (l->closing) return;
    if (verdict < 0 || c->l != l || l->acceptq.head != op || l->ready != c)
      continue;
    if (verdict == PIER_CF_DEFER) {
      l->deferred = 1;
      pier_opq_remove(&l->acceptq, op);
      pier_spi_complete(op, PIER_ETRYAGAIN);
      return;
    }
    pier__lacc_detach(c);
    if (verdict != PIER_CF_ACCEPT) {
      l->ops->refuse(c);
      continue;
    }
    if (l->ops->admit && l->ops->admit(c) != 0) {
      pier_close(c->s, NULL); /* a later connection gets the accept */
      continue;
    }
    pier_opq_remove(&l->acceptq, op);
    op->accepted = c->s;
    pier_spi_complete(op, 0);
  }
}
