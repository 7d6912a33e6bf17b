/* SPDX-License-Identifier: MIT */
/*
 * src/layers/accepts.h - the listener side shared by pier's layers (msg,
 * tls): connections accepted eagerly on the lower listener, each opened
 * as a socket of the layer and prepared by it (a handshake) in parallel,
 * then presented to the application's accepts in the order they became
 * ready, with the condition function's ACCEPT, REJECT and DEFER
 * (DESIGN.md section 3.1).  Only public and SPI calls: a third-party layer
 * could carry a copy.
 *
 * Locking: every call with the loop's core lock held; the lower accept's
 * callback takes it itself.
 */
#ifndef PIER_LAYERS_ACCEPTS_H
#define PIER_LAYERS_ACCEPTS_H

#include <stddef.h>
#include <stdint.h>

#include "pier.h"
#include "pier/spi.h"

/* Connections being prepared at once per listener, by default
   (PIER_SO_HANDSHAKES_MAX).  When the table is full, a new caller evicts
   the oldest connection still in its handshake; once every one in it is
   ready (the application is not accepting), the OS backlog holds the
   rest. */
#define LACC_MAX_PENDING 64
#define LACC_MAX_PENDING_LIMIT 65536
/* First bytes an accept takes with it where the base provider can. */
#define LACC_FIRST 1024

typedef struct lacc_listener lacc_listener;

/* A connection of a listener, embedded in the layer's socket state. */
typedef struct lacc_conn {
  lacc_listener *l;          /* NULL once detached (presented or dropped) */
  struct lacc_conn *next, *prev, *next_ready;
  int ready;                 /* on the ready list */
  pier_socket *s;            /* the layer's socket */
} lacc_conn;

/* What the layer does at each step. */
typedef struct lacc_ops {
  /* up is a new socket of the layer over an accepted lower one: set up
     its state from the listener's and return its lacc_conn (s set), or
     NULL to refuse it (the helper closes up). */
  lacc_conn *(*adopt)(lacc_listener *l, pier_socket *up);
  /* c is on the listener's list: begin preparing it, with the first n
     bytes that came with the accept (n may be 0). */
  void (*start)(lacc_conn *c, const uint8_t *first, size_t n);
  /* op has a condition function: add the layer's part to info (the
     addresses are there), call it and return its verdict; or return -1
     having dropped c.  NULL: addresses only. */
  int (*ask)(lacc_conn *c, pier_op *op, pier_accept_info *info);
  /* ACCEPT: c is about to be handed to the application (answer the
     caller); 0, or an error and c is closed. */
  int (*admit)(lacc_conn *c);
  /* REJECT (any verdict but ACCEPT and DEFER): end c. */
  void (*refuse)(lacc_conn *c);
} lacc_ops;

struct lacc_listener {
  pier_socket *s, *lower;    /* the layer's listener and the one below */
  const pier_provider *layer;
  const lacc_ops *ops;
  int first;                 /* accept with first bytes (pier_accept_first) */
  int on, closing;
  pier_op aop;               /* the accept on the lower listener */
  uint8_t *abuf;             /* its first bytes (first) */
  int aop_busy, aop_failed;
  pier_opq acceptq;          /* the application's accepts */
  lacc_conn *pending, *pending_tail; /* every connection not presented
                                        yet, oldest first */
  lacc_conn *ready, *ready_tail; /* those ready, in the order they became so */
  size_t npending, nready;
  size_t max_pending;        /* PIER_SO_HANDSHAKES_MAX; 0: LACC_MAX_PENDING */
  unsigned long evicted;     /* handshakes evicted from a full table */
  int deferred;              /* head deferred: wait for a new accept */
  int presenting;            /* inside a condition function */
};

/* Start accepting on the lower listener; 0 or why it could not. */
int pier__lacc_listen(lacc_listener *l, pier_socket *s, pier_socket *lower,
                      const pier_provider *layer, const lacc_ops *ops,
                      int first);
/* The application's accept and its cancel. */
int pier__lacc_accept(lacc_listener *l, pier_op *op);
int pier__lacc_cancel(lacc_listener *l, pier_op *op);
/* The listener closes: its connections close, its accepts complete with
   PIER_ECANCELED.  pier__lacc_free once the lower socket is closed. */
void pier__lacc_close(lacc_listener *l);
void pier__lacc_free(lacc_listener *l);
/* c is ready: presented when an accept is there. */
void pier__lacc_ready(lacc_conn *c);
/* c leaves its listener's lists (no-op once detached). */
void pier__lacc_detach(lacc_conn *c);
/* The listener options kept here (PIER_SO_HANDSHAKES_MAX, and
   PIER_SO_SHED_COUNT, which adds the lower listener's); PIER_ENOPROTOOPT
   for any other name. */
int pier__lacc_getopt(lacc_listener *l, int name, int *value);
int pier__lacc_setopt(lacc_listener *l, int name, int value);

#endif
