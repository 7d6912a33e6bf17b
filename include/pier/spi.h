/* SPDX-License-Identifier: MIT */
/*
 * pier/spi.h - the provider interface: what a base provider (an OS event
 * mechanism) or a layered provider implements, and the core services it
 * may call.  Providers include only <pier.h> and this header.
 *
 * Section map
 *   1. the provider table (versioned, grows only at its end)
 *   2. core services for providers
 *   3. operation queue helpers
 *   4. layered providers
 *   5. replaceable system calls (fault injection)
 *
 * Threading: every slot is called with the loop's core lock held, so a
 * provider sees one call at a time per loop and needs no locks of its own
 * for loop and socket state - even when several threads serve the loop
 * (the caller may be any of them).  loop_poll is also called with it held,
 * for the whole wait: the core wakes the poll (loop_wake) when another
 * thread needs the lock.  The exceptions run without the lock: loop_wake
 * (any thread), execute (the blocked caller's thread) and cancel_blocking
 * (any thread).  Condition functions called from a slot run with the lock
 * held; the lock is recursive, so they may call back into pier.
 */
#ifndef PIER_SPI_H
#define PIER_SPI_H

#include "../pier.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* 1. the provider table                                               */
/* ------------------------------------------------------------------ */

#define PIER_SPI_VERSION 3

/* Provider capability flags (pier_provider.caps). */
enum pier_provider_caps {
  PIER_PCAP_BASE    = 1u << 0, /* owns OS sockets (not a layer) */
  PIER_PCAP_IFS     = 1u << 1, /* handles work with read/write (XP1_IFS_HANDLES) */
  PIER_PCAP_BLOCKING = 1u << 2, /* implements execute/cancel_blocking */
  PIER_PCAP_LAYER   = 1u << 3, /* a layered provider over a lower pier
                                  socket (section 4) */
  PIER_PCAP_DISCONNECT = 1u << 4 /* takes PIER_OP_DISCONNECT through submit
                                    (else the core shuts sends down) */
};

/*
 * The option level of pier's own provider options.  The setsockopt slot
 * receives level PIER_SOL_PROVIDER with PIER_SO_PREPOSTED_ACCEPTS or
 * PIER_SO_ZERO_READ as name and an int value: a provider that uses them
 * keeps its copy, one without the mechanism returns 0, and either may
 * refuse (PIER_EBUSY once the value can no longer change).  The core keeps
 * the values and answers pier_getsockopt itself.  PIER_SO_ACCEPT_FIRST,
 * PIER_SO_MAX_MESSAGE and PIER_SO_HANDSHAKE_TIMEOUT come the same way to
 * both slots, set and get; a provider without them answers
 * PIER_ENOPROTOOPT.  The buffer of pier_accept_first and
 * pier_connect_first is op->pier__r.bufs[0] of the PIER_OP_ACCEPT or
 * PIER_OP_CONNECT (nbufs 0: none).
 */
#define PIER_SOL_PROVIDER 0x70696572 /* "pier" */

/* Accepts kept posted on a listener until told otherwise. */
#define PIER_SPI_PREPOSTED_DEFAULT 4

/*
 * Read-only provider facts at level PIER_SOL_PROVIDER (through
 * pier_getsockopt_raw); a provider without the mechanism answers 0.
 * PIER_SPI_OPT_INLINE_SUCCESS: 1 when an overlapped call that succeeds at
 * once completes without a trip through the OS completion queue (IOCP
 * skip-on-success on IFS handles).
 */
#define PIER_SPI_OPT_INLINE_SUCCESS 0x100

/*
 * PIER_SPI_OPT_DISCONNECT_DATA: the getsockopt slot at level
 * PIER_SOL_PROVIDER copies the peer's disconnect data into val (at most
 * *len bytes; val may be NULL with *len 0) and sets *len to its whole
 * size, for pier_recv_disconnect; PIER_ENOTCONN while none has arrived,
 * PIER_ENOPROTOOPT from a provider without disconnect data.
 */
#define PIER_SPI_OPT_DISCONNECT_DATA 0x101

/* pier__r.state values of an operation. */
enum pier_op_state {
  PIER_OPS_IDLE = 0,  /* never started, or its callback has run */
  PIER_OPS_PENDING,   /* submitted to the provider */
  PIER_OPS_DONE       /* completed, callback not yet run */
};

typedef struct pier_provider {
  int version;          /* PIER_SPI_VERSION the table was written for */
  const char *name;     /* "libevent", "iocp", ... */
  unsigned caps;        /* PIER_PCAP_* */
  size_t loop_size;     /* bytes of private state per loop (zeroed) */
  size_t socket_size;   /* bytes of private state per socket (zeroed) */

  /* version 1 ---------------------------------------------------------- */

  /* probe: 0 if usable on this machine, else a PIER_E* code. NULL: usable. */
  int (*probe)(void);

  /* loop_init / loop_free: set up and release the loop's private state. */
  int (*loop_init)(pier_loop *loop);
  void (*loop_free)(pier_loop *loop);

  /*
   * loop_poll: wait up to timeout_ms (-1: no limit, 0: do not wait) for
   * OS events or loop_wake, and turn them into pier_spi_complete() calls.
   */
  int (*loop_poll)(pier_loop *loop, int timeout_ms);

  /* loop_wake: make a waiting loop_poll return.  Any thread. */
  void (*loop_wake)(pier_loop *loop);

  /*
   * open: create the OS socket for proto, or with handle !=
   * PIER_INVALID_SOCKET take that one (adopt, accepted sockets).  Store it
   * with pier_spi_set_handle().  On failure leave nothing behind.
   */
  int (*open)(pier_socket *s, const pier_protocol_info *proto,
              pier_os_socket handle);

  /*
   * close: complete every pending operation with PIER_ECANCELED, release
   * the OS socket, then call pier_spi_closed(s) (now or later).
   */
  void (*close)(pier_socket *s);

  /* The slots from here to ioctl are optional: NULL gives PIER_EOPNOTSUPP. */
  int (*bind)(pier_socket *s, const struct sockaddr *addr, size_t len);
  int (*listen)(pier_socket *s, int backlog);
  int (*shutdown)(pier_socket *s, int how);
  /* sockname: the local (peer == 0) or remote (peer == 1) address. */
  int (*sockname)(pier_socket *s, int peer, struct sockaddr_storage *addr,
                  size_t *len);
  int (*getsockopt)(pier_socket *s, int level, int name, void *val,
                    size_t *len);
  int (*setsockopt)(pier_socket *s, int level, int name, const void *val,
                    size_t len);
  /* ioctl: PIER_FIONREAD and PIER_SIOCATMARK (FIONBIO is the core's). */
  int (*ioctl)(pier_socket *s, int cmd, void *arg);

  /*
   * submit: start an overlapped operation (type in op->pier__r.type).
   * Return 0 and later call pier_spi_complete() exactly once, or return a
   * negative code having started nothing.
   */
  int (*submit)(pier_socket *s, pier_op *op);

  /*
   * cancel: op is pending on s; make it complete with PIER_ECANCELED
   * (pier_spi_complete now or later).  Return 0, or PIER_ENOENT if it is
   * no longer the provider's.
   */
  int (*cancel)(pier_socket *s, pier_op *op);

  /*
   * execute: run op as a blocking call in the calling thread and return
   * its status (results in op).  If pier_spi_nonblocking(s), never wait:
   * return PIER_EWOULDBLOCK.  Before each wait, once the call can be woken
   * by cancel_blocking, look at pier_spi_block_canceled(s) and return
   * PIER_ECANCELED if it says so.  NULL when the provider has no blocking
   * calls.
   */
  int (*execute)(pier_socket *s, pier_op *op);

  /*
   * cancel_blocking: wake the execute() calls that wait on s, so that they
   * look at pier_spi_block_canceled() again (the core has canceled them:
   * pier_cancel_blocking or pier_close).  Any thread; the return value is
   * not used.
   */
  int (*cancel_blocking)(pier_socket *s);

  /* version 2 ---------------------------------------------------------- */

  /*
   * select_events: watch s for the network events PIER_EV_READ, WRITE,
   * OOB, ACCEPT and CLOSE and report each with pier_spi_net_event().
   * selected is what the application chose (pier_event_select); enabled
   * the part of it the core wants reported now - an event it has recorded
   * stays out of enabled until the application re-enables it, and the
   * core calls again on every change.  A provider whose OS re-enables
   * events itself (Winsock's WSAEventSelect) may watch `selected` and
   * report more: the core drops what is not enabled.  CONNECT is the
   * core's (from the connect's completion).  selected 0: stop and release
   * what watching used.  NULL (or a version 1 table): PIER_EOPNOTSUPP.
   */
  int (*select_events)(pier_socket *s, unsigned selected, unsigned enabled);
} pier_provider;

/* ------------------------------------------------------------------ */
/* 2. core services                                                    */
/* ------------------------------------------------------------------ */

/*
 * pier_spi_register - add a provider after the built-in ones.  The table
 * must stay valid for the life of the process.  Required slots:
 * loop_init, loop_poll, loop_wake, open, close, submit and cancel; every
 * other slot may be NULL, and the call that would use it then returns
 * PIER_EOPNOTSUPP (loop_free NULL: nothing to release).  Returns 0,
 * PIER_EINVAL for a version this core does not know or a required slot
 * left NULL (the log hook names it), PIER_EALREADY for a known name,
 * PIER_ENOMEM when the registry is full.
 */
int pier_spi_register(const pier_provider *p);

/* Private state allocated by the core from loop_size / socket_size. */
void *pier_spi_loop_state(pier_loop *loop);
void *pier_spi_socket_state(pier_socket *s);

/*
 * pier_spi_malloc / pier_spi_calloc / pier_spi_free - memory through the
 * application's allocator (pier_set_allocator); providers use nothing else.
 */
void *pier_spi_malloc(size_t size);
void *pier_spi_calloc(size_t count, size_t size);
void pier_spi_free(void *ptr);

/* pier_spi_set_handle - record the socket's OS handle. */
void pier_spi_set_handle(pier_socket *s, pier_os_socket h);

/* pier_spi_nonblocking - 1 if the socket is in non-blocking mode. */
int pier_spi_nonblocking(const pier_socket *s);

/*
 * pier_spi_block_canceled - 1 if the blocking call on s that the calling
 * thread is in (an execute() slot) has been canceled by
 * pier_cancel_blocking or pier_close since it began, whenever that was;
 * 0 otherwise.  From execute, in the blocked thread, without the lock.
 */
int pier_spi_block_canceled(const pier_socket *s);

/*
 * pier_spi_complete - op has finished with status (0 or PIER_E*); its
 * results (op->bytes, flags, accepted, addrlen) are set.  Queues the
 * callback for the loop.  The op must no longer be on a provider queue.
 * From inside a slot (core lock held).
 */
void pier_spi_complete(pier_op *op, int status);

/*
 * pier_spi_net_event - the network event ev (one PIER_EV_* bit) happened
 * on s with error (0 or PIER_E*).  From inside a slot (core lock held).
 */
void pier_spi_net_event(pier_socket *s, unsigned ev, int error);

/* pier_spi_closed - the provider has released the socket (after close). */
void pier_spi_closed(pier_socket *s);

/*
 * pier_spi_accepted - wrap an OS socket the provider accepted on listener
 * into a new pier socket with the listener's loop, provider, protocol and
 * mode (open() is called with the handle); it also takes the listener's
 * QoS and network-event selection.  Callable from a slot and from execute
 * (it takes the core lock itself).  On failure the handle is still the
 * provider's to close.
 */
int pier_spi_accepted(pier_socket *listener, pier_os_socket h,
                      pier_socket **out);

/*
 * pier_spi_os_error - translate an OS error number (errno on POSIX,
 * WSAGetLastError()/GetLastError() on Windows) into a PIER_E* code.
 */
int pier_spi_os_error(int oserr);

/* pier_spi_log - send a diagnostic to the application's log hook. */
void pier_spi_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;

/*
 * pier_spi_bad_arg - refuse a call for a bad argument: sends "fn: why" (why
 * formatted as printf does) to the log hook at PIER_LOG_DEBUG, and returns
 * PIER_EINVAL.  Nothing is formatted when no hook is set, so a provider may
 * use it on every argument check: `return pier_spi_bad_arg("pier_recv",
 * "bufs[%lu] has a NULL base and length %lu", i, len);` (no %zu: the
 * Windows C library may lack it).  fn names the public call the
 * application made.  Any thread.
 */
int pier_spi_bad_arg(const char *fn, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;

/* ------------------------------------------------------------------ */
/* 3. operation queues                                                 */
/* ------------------------------------------------------------------ */

/* A FIFO of operations linked through op->pier__r.next/prev. */
typedef struct pier_opq { pier_op *head, *tail; } pier_opq;

static inline int pier_opq_empty(const pier_opq *q) { return q->head == NULL; }

static inline void pier_opq_push(pier_opq *q, pier_op *op) {
  op->pier__r.next = NULL;
  op->pier__r.prev = q->tail;
  if (q->tail) q->tail->pier__r.next = op; else q->head = op;
  q->tail = op;
}

static inline void pier_opq_remove(pier_opq *q, pier_op *op) {
  if (op->pier__r.prev) op->pier__r.prev->pier__r.next = op->pier__r.next;
  else q->head = op->pier__r.next;
  if (op->pier__r.next) op->pier__r.next->pier__r.prev = op->pier__r.prev;
  else q->tail = op->pier__r.prev;
  op->pier__r.next = op->pier__r.prev = NULL;
}

static inline pier_op *pier_opq_pop(pier_opq *q) {
  pier_op *op = q->head;
  if (op) pier_opq_remove(q, op);
  return op;
}


/* ------------------------------------------------------------------ */
/* 4. layered providers                                                */
/* ------------------------------------------------------------------ */

/*
 * A layered provider (caps PIER_PCAP_LAYER, version >= 3) implements the
 * table above over a lower pier socket instead of an OS socket, using the
 * public API on it (pier_recv, pier_send, pier_connect, ...).  Its open
 * slot is called with handle PIER_INVALID_SOCKET and pier_spi_lower(s)
 * already set; from then on the layer owns the lower socket and closes it
 * (pier_close) in its close slot, calling pier_spi_closed(s) once the
 * lower socket's close callback has run.  probe and the loop slots
 * (loop_init, loop_free, loop_poll, loop_wake) are never called for a
 * layer - it runs on the loop of its lower socket: a layer leaves them
 * NULL and loop_size 0.
 *
 * Callbacks of operations the layer started on the lower socket run like
 * any application callback, without the core lock: the layer takes it
 * with pier_spi_lock() before it touches its state or calls
 * pier_spi_complete(), so that its slots and its callbacks never overlap,
 * whatever the number of threads serving the loop.
 *
 * Blocking-form calls (no callback) on a layered socket are run by the
 * core as overlapped operations it waits for; in non-blocking mode they
 * return PIER_EOPNOTSUPP, and from inside a callback of the same loop
 * PIER_EDEADLK.
 */

/* pier_spi_lower - the socket below a layered socket, NULL for a base one. */
pier_socket *pier_spi_lower(const pier_socket *s);

/*
 * pier_spi_layer_open - put layer over lower: a new pier socket on lower's
 * loop, in lower's mode, for catalog entry proto (any entry, also one that
 * is not in the catalog: its pointer must stay valid while the socket
 * lives), whose open slot runs with pier_spi_lower() set.  With listener
 * != NULL the new socket is a connection accepted on that layered listener
 * (it takes the listener's QoS and event selection; layer and proto must
 * be the listener's).  On success *out owns lower; on failure lower is
 * left as it was, the caller's.  Takes the core lock itself.
 */
int pier_spi_layer_open(const pier_provider *layer,
                        const pier_protocol_info *proto, pier_socket *lower,
                        pier_socket *listener, pier_socket **out);

/*
 * pier_spi_lock / pier_spi_unlock - the loop's core lock, for a layer's
 * callbacks and timers, and for an execute() slot that touches state its
 * other slots share (recursive: also fine where it is already held).
 */
void pier_spi_lock(pier_loop *loop);
void pier_spi_unlock(pier_loop *loop);

/*
 * pier_spi_thread_exit_hook - have fn called by every thread pier starts
 * to serve a loop (pier_loop_options.threads) just before it exits, for a
 * library that keeps per-thread state (OpenSSL's OPENSSL_thread_stop).
 * Registering the same fn again is a no-op.  PIER_ENOMEM past 8 hooks,
 * PIER_EINVAL for NULL.  Any thread.
 */
int pier_spi_thread_exit_hook(void (*fn)(void));

/*
 * pier_spi_timer_firing - 1 while t's callback runs (or is about to) on
 * some thread.  A layer whose state holds a timer keeps that state alive
 * (delays pier_spi_closed) until the callback has finished with it.  Core
 * lock held.
 */
int pier_spi_timer_firing(const pier_timer *t);

/*
 * pier_spi_register_protocol - add a layered catalog entry: pier_socket_open
 * on entry opens a socket of the catalog entry named base (itself base or
 * layered) on the same loop, then puts layer over it.  PIER_EALREADY for
 * a known name, PIER_ENOENT for an unknown base, PIER_EINVAL for a layer
 * that is not one, PIER_ENOMEM when the catalog is full.  The entry is copied into the catalog (sockets report
 * the copy).  Register before opening loops: the catalog is not guarded
 * against calls racing with this one.
 */
int pier_spi_register_protocol(const pier_protocol_info *entry,
                               const pier_provider *layer, const char *base);

/*
 * pier_spi_protocol_layer - the layer of a catalog entry and the entry it
 * runs over, or 0 for a base entry; PIER_EINVAL for NULL.
 */
int pier_spi_protocol_layer(const pier_protocol_info *entry,
                            const pier_provider **layer,
                            const pier_protocol_info **base);

/* ------------------------------------------------------------------ */
/* 5. replaceable system calls                                         */
/* ------------------------------------------------------------------ */

/*
 * A base provider makes its system calls through one table of named
 * entries (SQLite's aSyscall and xSetSystemCall), so that tests and a
 * fault-injection layer can put a function of their own in place of any
 * of them: fail with EINTR or EAGAIN, transfer fewer bytes, reset.  An
 * entry holds a function of the OS call's own type (recvmsg's for
 * "recvmsg"), cast to pier_syscall_fn; the replacement is called exactly
 * where the OS call would be, errno included.  The table is the process's:
 * a change applies to every loop, from the provider's next call on.
 *
 * Where: the libevent provider ("socket", "close", "bind", "listen",
 * "shutdown", "connect", "recv", "send", "recvmsg", "sendmsg",
 * "getsockopt", "setsockopt", "getsockname", "getpeername", "fcntl",
 * "ioctl", "read", "write", "pipe", "accept", "open" (its reserve
 * descriptor), "poll" (blocking calls), "accept4" where the OS has it and,
 * on Linux, "eventfd": every system call it makes itself; libevent's
 * own, such as epoll_wait, are not in the table).
 * These functions exist only in builds with that provider
 * (PIER_HAVE_LIBEVENT is 1 in <pier/features.h>).
 */
typedef void (*pier_syscall_fn)(void);

/*
 * pier_spi_syscall_set - make fn the entry called name; NULL restores the
 * OS's own.  The entry it replaces goes to *old when old is not NULL.
 * With name NULL every entry is restored (fn and old are ignored).
 * Returns 0, or PIER_ENOENT for a name no entry has.  Safe from any
 * thread; a call already under way finishes with the entry it started
 * with.
 */
int pier_spi_syscall_set(const char *name, pier_syscall_fn fn,
                         pier_syscall_fn *old);

/* pier_spi_syscall_get - the entry called name now, or NULL if none is. */
pier_syscall_fn pier_spi_syscall_get(const char *name);

/*
 * pier_spi_syscall_next - the name of the entry after the one called
 * name (NULL: the first entry); NULL after the last or for a name no
 * entry has.  The names are static strings.
 */
const char *pier_spi_syscall_next(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* PIER_SPI_H */
