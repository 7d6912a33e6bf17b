/*
 * src/internal.h - the core's private structures and helpers.  Never
 * included by providers (they see only include/pier.h and pier/spi.h).
 *
 * Section map
 *   1. allocation, logging, errors
 *   2. the loop
 *   3. the socket
 *   4. operations and timers
 *   5. the provider registry
 */
#ifndef PIER_INTERNAL_H
#define PIER_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

#include "pier.h"
#include "pier/spi.h"
#include "thread.h"

/* 1. allocation, logging, errors ------------------------------------ */

void *pier__malloc(size_t n);
void *pier__calloc(size_t count, size_t n);
void *pier__realloc(void *p, size_t n);
void pier__free(void *p);
/* Loops alive in the process; the allocator may change only at zero. */
void pier__process_ref(void);
void pier__process_unref(void);
int pier__process_busy(void);

/* getaddrinfo error -> PIER_E* (os_posix.c / os_win.c). */
int pier__gai_error(int gai);
/* Per-platform process setup (WSAStartup); refcounted by the caller. */
int pier__os_init(void);
void pier__os_cleanup(void);

/* 2. the loop ------------------------------------------------------- */

struct pier__resolver;

struct pier_loop {
  const pier_provider *prov;
  void *prov_state;
  void *data;
  uint64_t now;

  pier_opq done;             /* completed ops waiting for their callback */
  size_t pending;            /* ops started and not yet delivered */
  size_t nsockets;           /* sockets open or closing */
  pier_socket *closing;      /* sockets whose close callback is due */

  pier_timer **heap;         /* timer min-heap on (due, seq) */
  size_t nheap, capheap;
  uint64_t timer_seq;

  /* touched from other threads: under lock */
  pier__mutex lock;
  pier__cond changed;        /* broadcast after each delivery pass */
  pier_opq remote;           /* posts and worker completions */
  size_t nremote;
  long refs;
  int closed;

  int stop;                  /* atomic */
  int running;               /* a thread is inside pier_loop_run (lock) */
  pier__thread_id runner;
  int in_callback;

  struct pier__resolver *resolver;
};

/* Queue op as completed from another thread and wake the loop. */
void pier__loop_remote_complete(pier_loop *loop, pier_op *op, int status);
/* Account for an op that is now pending on the loop. */
void pier__loop_op_started(pier_loop *loop, pier_op *op);
/* Undo pier__loop_op_started for an op the provider refused. */
void pier__loop_op_unstarted(pier_loop *loop, pier_op *op);
int pier__loop_alive(pier_loop *loop);
/* Check a loop accepts new work: 0, PIER_EINVAL or PIER_ESHUTDOWN. */
int pier__loop_usable(pier_loop *loop);

/* timers (timer.c) */
/* Fire due timers; returns how many fired. */
size_t pier__timers_run(pier_loop *loop);
/* Milliseconds until the next timer, or -1 if none. */
int pier__timers_timeout(pier_loop *loop);

/* resolver (resolve.c) */
void pier__resolver_free(pier_loop *loop);
int pier__resolve_cancel(pier_op *op);

/* 3. the socket ----------------------------------------------------- */

enum {
  PIER__S_LISTENING = 1u << 0,
  PIER__S_CLOSING = 1u << 1,
  PIER__S_NONBLOCK = 1u << 2,
  PIER__S_PROV_CLOSED = 1u << 3,
  PIER__S_PROV_CLOSING = 1u << 4     /* provider close() has been called */
};

struct pier_socket {
  pier_loop *loop;
  const pier_provider *prov;
  const pier_protocol_info *proto;
  pier_os_socket handle;
  void *data;
  void *state;               /* provider private, prov->socket_size bytes */
  unsigned flags;            /* PIER__S_* */
  size_t pending;            /* ops started and not yet delivered */
  int blocked;               /* blocking calls in progress (atomic) */
  pier_close_cb close_cb;
  pier_socket *next_closing;
  pier_qos qos;              /* last pier_set_qos, inherited by accepts */
  int has_qos;
  int preposted, zero_read;  /* PIER_SO_PREPOSTED_ACCEPTS, PIER_SO_ZERO_READ */
};

/* Allocate a socket object (and its provider state) and call open(). */
int pier__socket_create(pier_loop *loop, const pier_provider *prov,
                        const pier_protocol_info *proto, pier_os_socket h,
                        unsigned flags, pier_socket **out);
/* Run close callbacks of sockets whose operations have all been
   delivered; returns how many ran. */
size_t pier__sockets_reap(pier_loop *loop);
/* Give an accepted socket the listener's QoS, if it has one (qos.c). */
void pier__qos_inherit(pier_socket *listener, pier_socket *s);
/* 0 if addr/len is a whole address of its family, else PIER_EINVAL. */
int pier__addr_check(const struct sockaddr *addr, size_t len);
/* Bracket a blocking call; a close waits for the last one to leave. */
void pier__socket_block_enter(pier_socket *s);
void pier__socket_block_leave(pier_socket *s);
/* 0 if s can take a new call, else PIER_EINVAL or PIER_EBADF. */
int pier__socket_usable(const pier_socket *s);

/* 4. operations ------------------------------------------------------ */

/* Deliver completed ops (a snapshot of the queue); returns the count. */
size_t pier__ops_deliver(pier_loop *loop);

/* 5. the provider registry ----------------------------------------- */

/* The provider to use: by name, else $PIER_BACKEND, else the first fit. */
int pier__provider_select(const char *name, const pier_provider **out);

/* Catalog entry for an OS family/type, or NULL. */
const pier_protocol_info *pier__protocol_for(int family, int socktype);

#define PIER__CONTAINER(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
