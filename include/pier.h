/* SPDX-License-Identifier: MIT */
/*
 * pier.h - the one public header of pier, a portable completion-based
 * networking SDK modelled on the Winsock 2 service-provider interface.
 *
 * Section map
 *   1. version, platform types, buffers
 *   2. process-wide settings: allocator, log hook
 *   3. loops: create, run, stop, post, timers
 *   4. the protocol catalog
 *   5. sockets: open, adopt, bind, listen, options, close
 *   6. operations: accept (with a condition function), connect, recv,
 *      recvfrom, send, sendto, cancel, result, name resolution
 *   7. network events: pier_event_select, pier_enum_network_events
 *   8. synchronous multiplexing: pier_poll
 *   9. sharing a socket with another process: pier_share_send / _recv,
 *      pier_socket_share / pier_socket_from_share
 *
 * Conventions
 *   - Every call returns 0 (or a documented non-negative value) on success
 *     and a negative PIER_E* code (<pier/errno.h>) on failure.  A call that
 *     fails on its arguments changes nothing and runs no callback.
 *   - Handles (pier_loop, pier_socket) are opaque.  Operations (pier_op) and
 *     timers (pier_timer) are owned by the caller, who keeps them alive and
 *     untouched from the start of the operation until its callback has run;
 *     starting one allocates nothing on the hot path.
 *   - Threads: a loop and its sockets belong to the thread that runs the
 *     loop.  The calls documented "any thread" may be made from elsewhere.
 *     A loop created with several threads (pier_loop_options.threads) is
 *     served by all of them, and then every call may come from any thread.
 *   - Completion: every started operation completes exactly once - success,
 *     error, or PIER_ECANCELED after pier_cancel() or pier_close() - and its
 *     callback always runs from pier_loop_run(), never from inside the call
 *     that started it.  Completions of one socket run one at a time and in
 *     order per direction; an accepted socket's first callbacks wait until
 *     the accept callback that handed it over has returned.
 *   - No call ever raises SIGPIPE.
 */
#ifndef PIER_H
#define PIER_H

#include <stddef.h>
#include <stdint.h>

#ifdef _WIN32
#  include <winsock2.h>
#  include <ws2tcpip.h>
#else
#  include <sys/types.h>
#  include <sys/socket.h>
#  include <netinet/in.h>
#  include <netdb.h>
#endif

#include "pier/errno.h"
#include "pier/features.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* 1. version, platform types, buffers                                 */
/* ------------------------------------------------------------------ */

/*
 * The version this header belongs to, and what its library was built
 * with, are in <pier/features.h> (included above): PIER_VERSION_MAJOR,
 * _MINOR, _PATCH, PIER_VERSION_STRING, and PIER_HAVE_TLS,
 * PIER_HAVE_LIBEVENT, PIER_HAVE_IOCP, PIER_HAVE_URING (0 or 1).
 */

/* The version as one number, (major << 16) | (minor << 8) | patch, for
 * preprocessor tests (PIER_VERSION_HEX >= 0x000100: 0.1.0 or later) and
 * to compare with pier_version(). */
#define PIER_VERSION_HEX \
  ((PIER_VERSION_MAJOR << 16) | (PIER_VERSION_MINOR << 8) | PIER_VERSION_PATCH)

/*
 * pier_version - the version of the library actually linked, as
 * PIER_VERSION_HEX computes it; it differs from the PIER_VERSION_HEX a
 * program was compiled with when the program runs against another pier
 * than the headers it was built with.
 * Errors: none.
 * Threads: any thread.
 */
unsigned pier_version(void);
/*
 * pier_version_string - the version of the library actually linked, as
 * "major.minor.patch" (PIER_VERSION_STRING of its build).  The string is
 * static: never freed, valid for the life of the process.
 * Errors: none.
 * Threads: any thread.
 */
const char *pier_version_string(void);

/* pier_os_socket - the OS socket handle: a file descriptor on POSIX, a
   SOCKET on Windows; PIER_INVALID_SOCKET is none. */
#ifdef _WIN32
typedef SOCKET pier_os_socket;
#  define PIER_INVALID_SOCKET INVALID_SOCKET
#else
typedef int pier_os_socket;
#  define PIER_INVALID_SOCKET (-1)
#endif

/*
 * pier_buf - one element of a scatter/gather array.  Laid out like the
 * platform's own (struct iovec on POSIX, WSABUF on Windows) so providers
 * hand arrays to the OS without copying.  Build one with pier_buf_init().
 */
#ifdef _WIN32
typedef struct pier_buf { unsigned long len; char *base; } pier_buf;
#else
typedef struct pier_buf { char *base; size_t len; } pier_buf;
#endif

/*
 * pier_buf_init - a pier_buf for len bytes at base (an inline function).
 * The memory stays the caller's.
 * Errors: none.
 * Threads: any thread.
 */
static inline pier_buf pier_buf_init(void *base, size_t len) {
  pier_buf b;
  b.base = (char *)base;
  b.len = len;
  return b;
}

/*
 * pier_loop / pier_socket - opaque handles: a loop (pier_loop_new), where
 * completions are delivered, and a socket (pier_socket_open) of a loop.
 * pier_op and pier_timer are declared here and defined below: the caller
 * allocates them.
 */
typedef struct pier_loop pier_loop;
typedef struct pier_socket pier_socket;
typedef struct pier_op pier_op;
typedef struct pier_timer pier_timer;

/* ------------------------------------------------------------------ */
/* 2. process-wide settings                                            */
/* ------------------------------------------------------------------ */

/* pier_allocator - the allocator every pier allocation goes through
   (pier_set_allocator). */
typedef struct pier_allocator {
  void *(*malloc_fn)(size_t size);
  void *(*realloc_fn)(void *ptr, size_t size);
  void *(*calloc_fn)(size_t count, size_t size);
  void (*free_fn)(void *ptr);
} pier_allocator;

/*
 * pier_set_allocator - replace the allocator; NULL restores malloc & co.
 * All four functions must be set.  The table is copied.
 * Errors: PIER_EBUSY (a loop exists: memory from one allocator must go
 * back to the same one), PIER_EINVAL (a function of the table is NULL).
 * Threads: any thread, while no loop exists.
 */
int pier_set_allocator(const pier_allocator *a);

/*
 * pier_log_level / pier_log_fn - the levels of pier's diagnostics, and
 * the hook that receives them (pier_set_log): level, a message without a
 * newline (valid during the call), and the ctx given to pier_set_log.
 */
enum pier_log_level { PIER_LOG_ERROR = 0, PIER_LOG_WARN, PIER_LOG_INFO, PIER_LOG_DEBUG };
typedef void (*pier_log_fn)(int level, const char *message, void *ctx);

/*
 * pier_set_log - pier prints nothing; it hands diagnostics to fn instead
 * (NULL: discard them, the default).
 * Errors: none.
 * Threads: any thread; fn may be called from any thread that runs pier
 * code, so it must be thread-safe.
 */
void pier_set_log(pier_log_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* 3. loops                                                            */
/* ------------------------------------------------------------------ */

/* pier_loop_options - how pier_loop_new makes a loop; zero it, then set
   size to sizeof(pier_loop_options). */
typedef struct pier_loop_options {
  size_t size;          /* sizeof(pier_loop_options): lets the struct grow */
  const char *provider; /* provider name; NULL: $PIER_BACKEND, else the
                           first usable provider in priority order */
  unsigned flags;       /* reserved, 0 */
  unsigned threads;     /* threads serving the loop; 0 or 1: one (see below) */
} pier_loop_options;

/* The most threads one loop takes (pier_loop_options.threads). */
#define PIER_LOOP_MAX_THREADS 256

/*
 * pier_loop_new - create a loop on a provider.  opts may be NULL.
 *
 * Threads: with opts->threads <= 1 one thread at a time runs the loop.
 * With threads = N > 1 the loop is served the way an I/O completion port
 * is: pier_loop_run(loop, PIER_RUN_DEFAULT) starts N - 1 more threads that
 * run it alongside the caller (and joins them before it returns), and any
 * other thread may call pier_loop_run() too.  Callbacks then run on any of
 * these threads, but completions (and the close callback) of one socket
 * still run one at a time and in order per direction; a repeating timer
 * never runs concurrently with itself.  Every call on sockets, timers and
 * the loop may then be made from any thread.
 *
 * Returns 0 and *out; the caller owns the loop and releases it with
 * pier_loop_free().
 * Errors: PIER_ENOPROVIDER (the named provider, or $PIER_BACKEND's, is
 * unknown or unusable here), PIER_EINVAL (NULL out, opts->size too
 * small, threads > PIER_LOOP_MAX_THREADS), PIER_ENOMEM, PIER_EMFILE (no
 * descriptor for the provider's wake-up), PIER_EUNKNOWN (another OS
 * error from the provider).
 * Threads: any thread.
 */
int pier_loop_new(const pier_loop_options *opts, pier_loop **out);

/*
 * pier_loop_close - refuse new sockets, timers and posts from now on
 * (PIER_ESHUTDOWN); sockets already open can still be used and closed, and
 * pier_loop_run() still runs so their close callbacks can complete.
 * Idempotent.
 * Errors: PIER_EINVAL (NULL loop).
 * Threads: any thread.
 */
int pier_loop_close(pier_loop *loop);

/*
 * pier_loop_free - release the loop, and the process-wide state with the
 * last loop.  Nothing is freed while sockets are open or closing, timers
 * are active, or posts are undelivered: close them and run the loop until
 * their callbacks have run first.
 * Errors: PIER_EINVAL (NULL loop), PIER_EBUSY (sockets, timers or posts
 * left; nothing was freed).
 * Threads: any thread, while no thread runs the loop.
 */
int pier_loop_free(pier_loop *loop);

/* pier_run_mode - how long pier_loop_run runs. */
typedef enum pier_run_mode {
  PIER_RUN_DEFAULT = 0, /* until pier_loop_stop() or nothing is alive */
  PIER_RUN_ONCE,        /* wait for at least one event, process, return */
  PIER_RUN_NOWAIT       /* process what is ready, never wait */
} pier_run_mode;

/*
 * pier_loop_run - wait for I/O, timers and posts and run their callbacks.
 * The loop is alive while operations are pending, timers active, sockets
 * closing, posts undelivered, or pier_loop_ref() references held.
 * pier_event_select() keeps nothing alive: hold pier_loop_ref() while
 * waiting for network events alone.
 * Returns 1 if the loop is still alive, 0 if not.
 * Errors: PIER_EINVAL (NULL loop, unknown mode), PIER_EBUSY (called from
 * inside one of the loop's own callbacks, or, on a loop created with one
 * thread, while another thread runs it).
 * Threads: the thread that owns the loop; on a loop created with several
 * threads, any number of threads at once.
 */
int pier_loop_run(pier_loop *loop, pier_run_mode mode);

/*
 * pier_loop_stop - make pier_loop_run() return after the current
 * iteration, even while the loop is alive.  Called while the loop is not
 * running, it makes the next pier_loop_run() return at once.
 * Errors: PIER_EINVAL (NULL loop).
 * Threads: any thread.
 */
int pier_loop_stop(pier_loop *loop);

/*
 * pier_loop_ref / pier_loop_unref - hold the loop alive with nothing else
 * pending (a server waiting for pier_loop_post() from workers, a socket
 * waiting for pier_event_select() events).  Counted.
 * Errors: PIER_EINVAL (NULL loop; unref without a ref).
 * Threads: any thread.
 */
int pier_loop_ref(pier_loop *loop);
int pier_loop_unref(pier_loop *loop);

/*
 * pier_loop_backend - the name of the provider the loop runs on
 * ("libevent", "iocp"); a static string, NULL for a NULL loop.
 * Errors: none.
 * Threads: any thread.
 */
const char *pier_loop_backend(const pier_loop *loop);

/*
 * pier_loop_now - the loop's cached monotonic clock, in milliseconds,
 * updated once per loop iteration (timers count from it).  0 for NULL.
 * Errors: none.
 * Threads: any thread.
 */
uint64_t pier_loop_now(const pier_loop *loop);

/*
 * pier_loop_set_data / pier_loop_get_data - one pointer for the
 * application, kept with the loop (NULL at first; get returns NULL for a
 * NULL loop, set ignores one).
 * Errors: none.
 * Threads: any thread; pier does not order a set with gets in other
 * threads.
 */
void pier_loop_set_data(pier_loop *loop, void *data);
void *pier_loop_get_data(const pier_loop *loop);

/*
 * pier_providers - names of the providers compiled in (and registered),
 * in priority order.  Fills up to cap names (static strings) into names,
 * which may be NULL when cap is 0, and returns the total count.
 * Errors: none.
 * Threads: any thread.
 */
size_t pier_providers(const char **names, size_t cap);

/* pier_op_cb - the callback of an operation: op->status equals status.
   The op is idle again when it runs, and may be reused from it. */
typedef void (*pier_op_cb)(pier_op *op, int status);

/*
 * pier_loop_post - the PostQueuedCompletionStatus of pier: queue op so
 * that cb(op, 0) runs on the loop's thread.  Allocates nothing; op->data
 * carries the payload.  A post keeps the loop alive until delivered.
 * Errors: PIER_EINVAL (NULL loop, op or cb), PIER_EBUSY (op is pending),
 * PIER_ESHUTDOWN (after pier_loop_close()).
 * Threads: any thread.
 */
int pier_loop_post(pier_loop *loop, pier_op *op, pier_op_cb cb);

/* --- timers --- */
/* pier_timer_cb - a timer's callback (pier_timer_start). */
typedef void (*pier_timer_cb)(pier_timer *timer);

/* pier_timer - a caller-owned timer (pier_timer_init); data is the
   application's, fields named pier__* are private. */
struct pier_timer {
  void *data; /* the application's */
  struct {
    pier_loop *loop;
    pier_timer_cb cb;
    uint64_t due, repeat, seq;
    size_t index; /* position in the loop's heap, or (size_t)-1 */
  } pier__t;
};

/*
 * pier_timer_init - bind an inactive timer to a loop; call once first.
 * Errors: PIER_EINVAL (NULL loop or timer).
 */
int pier_timer_init(pier_loop *loop, pier_timer *timer);

/*
 * pier_timer_start - fire cb after timeout_ms, then every repeat_ms if
 * repeat_ms > 0.  Restarts an active timer.  Timers due at the same time
 * fire in the order they were started.  An active timer keeps the loop
 * alive: stop a repeating one where the work it serves ends.
 * Errors: PIER_EINVAL (NULL timer or cb, a timer never initialised),
 * PIER_ESHUTDOWN (the loop is closed), PIER_ENOMEM.
 */
int pier_timer_start(pier_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms,
                     pier_timer_cb cb);

/*
 * pier_timer_stop - stop a timer; its callback will not run (again).
 * Stopping an inactive one is a no-op.  The timer may be started again.
 * Errors: PIER_EINVAL (NULL timer, a timer never initialised).
 */
int pier_timer_stop(pier_timer *timer);

/*
 * pier_timer_active - 1 if the timer is started and not yet stopped (a
 * one-shot timer that has fired is not), else 0.
 * Errors: none.
 */
int pier_timer_active(const pier_timer *timer);

/* ------------------------------------------------------------------ */
/* 4. the protocol catalog                                             */
/* ------------------------------------------------------------------ */

/* pier_protocol_caps - capability flags of a protocol entry
   (WSAPROTOCOL_INFO's XP1_*). */
enum pier_protocol_caps {
  PIER_CAP_STREAM          = 1u << 0,  /* byte stream */
  PIER_CAP_MESSAGE         = 1u << 1,  /* message boundaries kept */
  PIER_CAP_CONNECTIONLESS  = 1u << 2,  /* datagrams, no connection */
  PIER_CAP_CONNECT_DATA    = 1u << 3,  /* user data at connect time */
  PIER_CAP_DISCONNECT_DATA = 1u << 4,  /* user data at disconnect */
  PIER_CAP_PARTIAL_MESSAGE = 1u << 5,  /* receives may return MSG_PARTIAL */
  PIER_CAP_GRACEFUL_CLOSE  = 1u << 6,  /* orderly release (shutdown) */
  PIER_CAP_EXPEDITED_DATA  = 1u << 7,  /* out-of-band data */
  PIER_CAP_MULTIPOINT      = 1u << 8,  /* multicast groups */
  PIER_CAP_QOS             = 1u << 9,  /* traffic classes */
  PIER_CAP_BROADCAST       = 1u << 10  /* broadcast datagrams */
};

/* pier_protocol_info - an entry of the protocol catalog (pier_protocols,
   pier_protocol_find); entries are static. */
typedef struct pier_protocol_info {
  const char *name;        /* "tcp4", "tcp6", "udp4", "udp6", "local" */
  const char *description; /* one line for people */
  int family;              /* AF_INET, AF_INET6, AF_UNIX */
  int socktype;            /* SOCK_STREAM, SOCK_DGRAM */
  int protocol;            /* IPPROTO_TCP, IPPROTO_UDP, 0 */
  unsigned caps;           /* PIER_CAP_* */
  size_t max_message;      /* largest message for message protocols, else 0 */
} pier_protocol_info;

/*
 * pier_protocols - the catalog: *list points at a static array of the
 * entries this platform supports (list may be NULL to count them);
 * returns their count.
 * Errors: none.
 * Threads: any thread.
 */
size_t pier_protocols(const pier_protocol_info **list);

/*
 * pier_protocol_find - the catalog entry of that name, or NULL when no
 * entry has it: "tcp" is no name (the entries are "tcp4", "tcp6", "udp4",
 * "udp6", "local" where the OS has AF_UNIX, "tcp4+cd", "tcp6+cd", "msg4",
 * "msg6", as pier_protocols() lists them for this platform; names are
 * case-sensitive; an entry of a third-party layer exists once
 * pier_spi_register_protocol() added it).  Check the result:
 * pier_socket_open() answers a NULL proto with PIER_EINVAL, and says so
 * at PIER_LOG_DEBUG through the log hook ("pier_socket_open: proto is
 * NULL ...").  The entry lives as long as the process.
 * Errors: none (NULL as above).
 * Threads: any thread.
 */
const pier_protocol_info *pier_protocol_find(const char *name);

/* ------------------------------------------------------------------ */
/* 5. sockets                                                          */
/* ------------------------------------------------------------------ */

/* pier_socket_flags - flags of pier_socket_open and the calls like it. */
enum pier_socket_flags {
  PIER_SOCK_NONBLOCK = 1u << 0 /* start in non-blocking mode (FIONBIO) */
};

/*
 * pier_socket_open - create a socket for a catalog entry on the loop's
 * provider.  Sockets start in blocking mode, as in Winsock: an operation
 * started without a callback blocks (see section 6); overlapped operations
 * work in either mode.  Returns 0 and *out, the caller's to release with
 * pier_close().
 * Errors: PIER_EINVAL (NULL loop, proto or out, unknown flags, a proto
 * that is not an entry of pier_protocols() - such as the NULL
 * pier_protocol_find() returns for an unknown name), PIER_ESHUTDOWN (the
 * loop is closed), PIER_ENOMEM, PIER_EMFILE (out of descriptors),
 * PIER_EAFNOSUPPORT (the OS lacks the family, e.g. no IPv6), PIER_EACCES,
 * PIER_ENOBUFS.
 */
int pier_socket_open(pier_loop *loop, const pier_protocol_info *proto,
                     unsigned flags, pier_socket **out);

/*
 * pier_socket_adopt - take an OS socket created elsewhere; its catalog
 * entry is found from its family and type, and a socket that is already
 * listening takes pier_accept() at once.  On success pier owns the handle
 * and closes it in pier_close(); on failure the caller keeps it.
 * Errors: PIER_EINVAL (NULL loop or out, PIER_INVALID_SOCKET, unknown
 * flags), PIER_ESHUTDOWN (the loop is closed), PIER_ENOTSOCK (the handle
 * is no socket), PIER_EAFNOSUPPORT (no catalog entry for its family and
 * type), PIER_ENOMEM.
 */
int pier_socket_adopt(pier_loop *loop, pier_os_socket handle, unsigned flags,
                      pier_socket **out);

/*
 * pier_socket_handle - the OS handle (read()/write() or ReadFile/WriteFile
 * work on it); still owned by pier, valid until the close callback.
 * PIER_INVALID_SOCKET for NULL.
 * Errors: none.
 * Threads: any thread.
 */
pier_os_socket pier_socket_handle(const pier_socket *s);

/*
 * pier_socket_protocol - the catalog entry the socket was opened for
 * (static); NULL for NULL.
 * Errors: none.
 * Threads: any thread.
 */
const pier_protocol_info *pier_socket_protocol(const pier_socket *s);
/*
 * pier_socket_loop - the loop the socket belongs to; NULL for NULL.
 * Errors: none.
 * Threads: any thread.
 */
pier_loop *pier_socket_loop(const pier_socket *s);
/*
 * pier_socket_set_data / pier_socket_get_data - one pointer for the
 * application, kept with the socket: the state of a connection, found
 * again in every callback of the socket (NULL at first; get returns NULL
 * for a NULL socket, set ignores one).  An accepted socket starts with
 * NULL; set it in the accept callback, before its own callbacks run.
 * Errors: none.
 */
void pier_socket_set_data(pier_socket *s, void *data);
void *pier_socket_get_data(const pier_socket *s);

/*
 * pier_bind - bind to a local address (IPv4, IPv6, or AF_UNIX path);
 * port 0 lets the OS choose (pier_getsockname tells which).
 * Errors: PIER_EINVAL (NULL s or addr, addrlen too small or too large for
 * its family, already bound), PIER_EBADF (s is closing),
 * PIER_EADDRINUSE, PIER_EADDRNOTAVAIL (no such local address),
 * PIER_EAFNOSUPPORT (addr's family is not the socket's), PIER_EACCES (a
 * privileged port, or the path's directory).
 */
int pier_bind(pier_socket *s, const struct sockaddr *addr, size_t addrlen);

/*
 * pier_listen - start listening; backlog <= 0 means the OS maximum.
 * An unbound socket is bound to an address the OS picks.
 * Errors: PIER_EINVAL (NULL s; s is connected), PIER_EBADF (s is
 * closing), PIER_EOPNOTSUPP (a connectionless protocol), PIER_EADDRINUSE
 * (the port was taken meanwhile).
 */
int pier_listen(pier_socket *s, int backlog);

/* pier_close_cb - the close callback (pier_close): s is still valid
   during the call, and freed after it. */
typedef void (*pier_close_cb)(pier_socket *s);
/*
 * pier_close - close the socket.  Every pending operation completes with
 * PIER_ECANCELED first, then cb (may be NULL) runs, then the socket is
 * freed; never use s after cb.  A socket is always safe to close, also
 * after a failed call.  A linger set with PIER_SO_LINGER is honoured by
 * the OS.  A closing socket keeps the loop alive until cb has run.
 * Errors: PIER_EINVAL (NULL s), PIER_EALREADY (s is already closing;
 * the first close's callback runs, not this one's).
 */
int pier_close(pier_socket *s, pier_close_cb cb);

/* pier_shutdown_how - what pier_shutdown disables. */
enum pier_shutdown_how { PIER_SHUT_RD = 0, PIER_SHUT_WR = 1, PIER_SHUT_RDWR = 2 };
/*
 * pier_shutdown - disable receives, sends or both (WSPShutdown).
 * PIER_SHUT_WR is the graceful half-close: the peer's receives end (0
 * bytes) once it has read what was sent before, and this side can still
 * receive.
 * Errors: PIER_EINVAL (NULL s, unknown how), PIER_EBADF (s is closing),
 * PIER_ENOTCONN (s is not connected).
 */
int pier_shutdown(pier_socket *s, int how);

/*
 * pier_getsockname / pier_getpeername - the local / remote address.
 * *len is the size of *addr in, the address length out.
 * Errors: PIER_EINVAL (NULL s, addr or len, *len 0), PIER_EBADF (s is
 * closing), PIER_ENOTCONN (getpeername: not connected).
 */
int pier_getsockname(pier_socket *s, struct sockaddr_storage *addr, size_t *len);
int pier_getpeername(pier_socket *s, struct sockaddr_storage *addr, size_t *len);

/* pier_sockopt - portable socket options (pier_setsockopt); every
   value is an int. */
enum pier_sockopt {
  PIER_SO_NODELAY = 1,  /* TCP_NODELAY, 0/1 */
  PIER_SO_KEEPALIVE,    /* SO_KEEPALIVE, 0/1 */
  PIER_SO_KEEPIDLE,     /* seconds idle before the first probe */
  PIER_SO_KEEPINTVL,    /* seconds between probes */
  PIER_SO_KEEPCNT,      /* probes before the connection drops */
  PIER_SO_RCVBUF,       /* receive buffer, bytes */
  PIER_SO_SNDBUF,       /* send buffer, bytes */
  PIER_SO_LINGER,       /* seconds to linger on close; -1 turns it off */
  PIER_SO_REUSEADDR,    /* 0/1 */
  PIER_SO_REUSEPORT,    /* 0/1 (PIER_ENOPROTOOPT where the OS has none) */
  PIER_SO_V6ONLY,       /* IPV6_V6ONLY, 0/1; 0 makes a dual-stack socket */
  PIER_SO_BROADCAST,    /* 0/1 */
  PIER_SO_TOS,          /* IP_TOS or IPV6_TCLASS by family, 0..255 */
  PIER_SO_ERROR,        /* read only: pending error as a PIER_E* code */
  PIER_SO_TYPE,         /* read only: SOCK_STREAM / SOCK_DGRAM */
  PIER_SO_OOBINLINE,    /* 0/1 */
  /* Provider tuning; every provider accepts them and reads them back,
     those without the mechanism simply have nothing to tune. */
  PIER_SO_PREPOSTED_ACCEPTS, /* listener, set before the first accept:
                                accepts kept posted (IOCP AcceptEx),
                                1..256, default 4 */
  PIER_SO_ZERO_READ,    /* 0/1: a pending receive first waits with a
                           zero-byte read, so an idle connection keeps no
                           buffer locked in the kernel (IOCP) */
  PIER_SO_MULTICAST_LOOP, /* 0/1: this host's members get what it sends */
  PIER_SO_MULTICAST_HOPS, /* TTL / hop limit of multicast sent, 0..255 */
  /* Layered protocols (PIER_ENOPROTOOPT on the others). */
  PIER_SO_MAX_MESSAGE,  /* message protocols: largest message this socket
                           sends or takes, 1..PIER_MESSAGE_MAX, default
                           PIER_MESSAGE_DEFAULT_MAX; accepted sockets take
                           the listener's */
  PIER_SO_HANDSHAKE_TIMEOUT, /* milliseconds a connect-time handshake may
                           take (connect data, TLS), 1..3600000, default
                           PIER_HANDSHAKE_TIMEOUT_DEFAULT; accepted sockets
                           take the listener's */
  PIER_SO_ACCEPT_FIRST, /* listener, set before pier_listen: milliseconds,
                           0 (off, default)..3600000; see
                           pier_accept_first.  PIER_ENOPROTOOPT where the
                           provider has no such accept (libevent) */
  PIER_SO_HANDSHAKES_MAX, /* listener of a layered protocol (msg, +cd,
                           TLS): connections in their handshake at once,
                           1..65536, default 64.  When the table is full
                           and another caller waits, the oldest connection
                           still in its handshake is closed (logged at
                           INFO, counted in PIER_SO_SHED_COUNT), so a slow
                           caller holds up nobody; each costs at most one
                           handshake's buffers (doc/semantics.md) */
  PIER_SO_SHED_COUNT    /* listener, read only: callers dropped unserved
                           to keep the listener going - shed while the
                           process was out of descriptors (each saw a
                           reset) plus, on a layered listener, handshakes
                           evicted from a full table; see
                           doc/semantics.md, "Out of descriptors" */
};

/* Limits of pier's layered protocols (doc/protocol.md). */
#define PIER_CONNECT_DATA_MAX 65536          /* caller or callee data, bytes */
#define PIER_DISCONNECT_DATA_MAX 65536       /* disconnect data, bytes */
#define PIER_MESSAGE_MAX 0x40000000          /* 1 GiB */
#define PIER_MESSAGE_DEFAULT_MAX (16 * 1024 * 1024)
#define PIER_HANDSHAKE_TIMEOUT_DEFAULT 10000 /* milliseconds */

/*
 * pier_setsockopt / pier_getsockopt - a portable option.  Returns
 * PIER_ENOPROTOOPT for an option this OS or protocol lacks (PIER_SO_NODELAY
 * on UDP), PIER_EINVAL for a number that is no PIER_SO_* option, a value
 * out of range (negative sizes or times, TOS outside 0..255), setting a
 * read-only option, or a NULL value pointer.  PIER_SO_LINGER reads -1
 * while off.
 * Errors: PIER_EINVAL (NULL s or value, not a PIER_SO_* option, a value
 * out of range, setting a read-only option), PIER_EBADF (s is closing),
 * PIER_ENOPROTOOPT (an option this OS, provider or protocol lacks).
 */
int pier_setsockopt(pier_socket *s, int opt, int value);
int pier_getsockopt(pier_socket *s, int opt, int *value);

/*
 * pier_setsockopt_raw / pier_getsockopt_raw - pass-through to the OS
 * setsockopt/getsockopt with its own level and name.  For get, *len is the
 * buffer size in and the value size out.
 * Errors: PIER_EINVAL (NULL s, val or len, a zero length, or the OS's
 * EINVAL), PIER_EBADF (s is closing), PIER_ENOPROTOOPT (the OS does not
 * know level and name).
 */
int pier_setsockopt_raw(pier_socket *s, int level, int name, const void *val,
                        size_t len);
int pier_getsockopt_raw(pier_socket *s, int level, int name, void *val,
                        size_t *len);

/* pier_group - a multicast group to join or leave (WSPJoinLeaf for
   datagrams). */
typedef struct pier_group {
  const struct sockaddr *group;  /* the group: 224/4 or ff00::/8 */
  size_t group_len;
  const struct sockaddr *source; /* source-specific; NULL: any source */
  size_t source_len;
  const struct sockaddr *iface;  /* IPv4: the interface's address; NULL */
  size_t iface_len;
  unsigned iface_index;          /* interface index; 0: the default one */
} pier_group;

/*
 * pier_join_group / pier_leave_group - start or stop receiving a group's
 * datagrams on a datagram socket (bound, usually to the wildcard address
 * and the group's port).  Source-specific where the OS has it.
 * Errors: PIER_EINVAL (NULL, not a multicast address; leaving a group
 * never joined, on some OSes), PIER_EBADF (s is closing),
 * PIER_EOPNOTSUPP (not a protocol with PIER_CAP_MULTIPOINT, or
 * source-specific joins this OS lacks), PIER_EAFNOSUPPORT (group and
 * socket families differ), PIER_EADDRNOTAVAIL (leaving a group never
 * joined; no such interface), PIER_EADDRINUSE (joined already),
 * PIER_ENOBUFS (the OS's limit of groups).
 */
int pier_join_group(pier_socket *s, const pier_group *g);
int pier_leave_group(pier_socket *s, const pier_group *g);

/*
 * pier_set_multicast_if - the interface multicast is sent from: by
 * address (IPv4) or by index (iface NULL; IPv4 where the OS has it, IPv6).
 * Errors: PIER_EINVAL (NULL s; an iface address that is not IPv4, or on
 * an IPv6 socket), PIER_EBADF (s is closing), PIER_EOPNOTSUPP (not a
 * protocol with PIER_CAP_MULTIPOINT; an index on IPv4 where the OS takes
 * none), PIER_EADDRNOTAVAIL (no such interface).
 */
int pier_set_multicast_if(pier_socket *s, const struct sockaddr *iface,
                          size_t iface_len, unsigned index);

/* pier_ioctl_cmd - portable ioctl commands for pier_ioctl(). */
enum pier_ioctl_cmd {
  PIER_FIONBIO = 1,   /* arg: int*, non-zero sets non-blocking mode */
  PIER_FIONREAD,      /* arg: size_t*, out: bytes ready to receive */
  PIER_SIOCATMARK     /* arg: int*, out: 1 if no urgent data is pending */
};
/*
 * pier_ioctl - one of PIER_FIONBIO (set or clear non-blocking mode, for
 * the blocking form of operations), PIER_FIONREAD (bytes ready to
 * receive), PIER_SIOCATMARK (no urgent data pending).
 * Errors: PIER_EINVAL (NULL s or arg, unknown cmd), PIER_EBADF (s is
 * closing), PIER_EOPNOTSUPP (the provider cannot answer FIONREAD or
 * SIOCATMARK).
 */
int pier_ioctl(pier_socket *s, int cmd, void *arg);

/* ------------------------------------------------------------------ */
/* 6. operations                                                       */
/* ------------------------------------------------------------------ */

/* pier_msg_flags - flags in and out of receive and send operations. */
enum pier_msg_flags {
  PIER_MSG_PEEK    = 1u << 0, /* in: look, leave the data queued */
  PIER_MSG_OOB     = 1u << 1, /* in: urgent data; out: the data is urgent */
  PIER_MSG_WAITALL = 1u << 2, /* in: complete only when every buffer is
                                 full, at end of stream, or on error */
  PIER_MSG_PARTIAL = 1u << 3, /* out: more of this message follows */
  PIER_MSG_TRUNC   = 1u << 4  /* out: datagram was larger than the
                                 buffers; the rest is lost */
};

/* pier_cf - what a condition function answers (WSAAccept's CF_*). */
enum pier_cf { PIER_CF_ACCEPT = 0, PIER_CF_REJECT = 1, PIER_CF_DEFER = 2 };

/* pier_qos - a traffic class (pier_qos_by_name, pier_set_qos). */
typedef struct pier_qos {
  int dscp;     /* DiffServ code point 0..63, or -1 for none */
  int priority; /* 0 (lowest) .. 7, or -1 for none */
} pier_qos;

/*
 * pier_qos_by_name - the traffic class of a name (WSPGetQOSByName), with
 * DSCP values from RFC 4594 and a queueing priority:
 *   "best-effort" DF 0 / 0     "background" CS1 8 / 1   "bulk" AF11 10 / 2
 *   "oam" CS2 16 / 4           "low-latency" AF21 18 / 4
 *   "broadcast-video" CS3 24 / 5   "streaming" AF31 26 / 5
 *   "realtime" CS4 32 / 5      "video" AF41 34 / 5      "signaling" CS5 40 / 6
 *   "voice" EF 46 / 6          "control" CS6 48 / 6
 * Returns 0 and *out.
 * Errors: PIER_ENOENT (an unknown name), PIER_EINVAL (NULL name or out).
 * Threads: any thread.
 */
int pier_qos_by_name(const char *name, pier_qos *out);

/*
 * pier_qos_names - the names pier_qos_by_name knows (static strings):
 * fills up to cap of them into names (NULL when cap is 0) and returns
 * their total count.
 * Errors: none.
 * Threads: any thread.
 */
size_t pier_qos_names(const char **names, size_t cap);

/*
 * pier_set_qos - apply a traffic class to a socket: the DSCP goes into
 * IP_TOS (IPv4) or IPV6_TCLASS (IPv6) with the ECN bits clear; the
 * priority into the OS's queueing priority where it has one (Linux
 * SO_PRIORITY; ignored elsewhere).  Sockets accepted on a listener inherit
 * its class; pier_connect(qos) applies one before connecting.
 * Errors: PIER_EINVAL (NULL s or qos, values out of range), PIER_EBADF
 * (s is closing), PIER_ENOPROTOOPT (the OS does not let a program set the
 * DSCP: Windows without qWAVE, Wine; nothing changed), PIER_EACCES (a
 * priority the OS reserves to privileged programs).
 */
int pier_set_qos(pier_socket *s, const pier_qos *qos);

/*
 * pier_get_qos - the class in effect: dscp from the socket's TOS/traffic
 * class (-1 where the OS keeps none for it), priority from the OS or -1
 * where it has none.
 * Errors: PIER_EINVAL (NULL s or out), PIER_EBADF (s is closing).
 */
int pier_get_qos(pier_socket *s, pier_qos *out);

/* pier_accept_info - what a condition function learns about a pending
   connection request, and where it may answer with callee data. */
typedef struct pier_accept_info {
  const struct sockaddr *caller; /* the caller's address */
  size_t caller_len;
  const struct sockaddr *local;  /* the address it connected to */
  size_t local_len;
  const void *caller_data;       /* connect data, protocols with
                                    PIER_CAP_CONNECT_DATA; else NULL */
  size_t caller_data_len;
  const pier_qos *qos;           /* requested QoS, or NULL */
  void *callee_data;             /* buffer for the answer, or NULL */
  size_t callee_data_cap;        /* its size */
  size_t callee_data_len;        /* out: bytes of answer written */
} pier_accept_info;

/*
 * pier_condition_fn - a condition function decides a pending connection
 * request: return PIER_CF_ACCEPT, PIER_CF_REJECT or PIER_CF_DEFER.  It
 * runs on the loop thread (or the blocked thread) and must not block; ctx
 * is the cond_ctx given to pier_accept.
 */
typedef int (*pier_condition_fn)(pier_accept_info *info, void *ctx);

/* pier_connect_data - data exchanged at connect time (protocols with
   PIER_CAP_CONNECT_DATA). */
typedef struct pier_connect_data {
  const void *caller;  /* sent with the connect request */
  size_t caller_len;
  void *callee;        /* buffer for the listener's answer */
  size_t callee_cap;
  size_t callee_len;   /* out: bytes of answer received */
} pier_connect_data;

/* pier_op_type - the kinds of operation (private to pier and providers). */
enum pier_op_type {
  PIER_OP_NONE = 0, PIER_OP_ACCEPT, PIER_OP_CONNECT, PIER_OP_RECV,
  PIER_OP_RECVFROM, PIER_OP_SEND, PIER_OP_SENDTO, PIER_OP_POST,
  PIER_OP_RESOLVE, PIER_OP_DISCONNECT
};

#define PIER_OP_INLINE_BUFS 4

/*
 * PIER_DGRAM_MAX_BUFS - the rules for an operation's buffers.  A
 * pier_buf with a NULL base must have len 0, else the call returns
 * PIER_EINVAL and starts nothing.  A receive needs room for at least one
 * byte: buffers that hold 0 bytes in all give PIER_EINVAL on every
 * protocol and provider (a completion with 0 bytes always means the end
 * of the stream; to learn that data is waiting without a buffer, select
 * PIER_EV_READ).  A send of 0 bytes completes at once on a stream and
 * sends an empty datagram on a datagram socket.  A datagram is sent whole
 * or not at all: more than PIER_DGRAM_MAX_BUFS buffers in one datagram
 * send give PIER_EMSGSIZE at the call.
 */
#define PIER_DGRAM_MAX_BUFS 1024

/*
 * pier_op - an operation: the OVERLAPPED of pier.  Zero it (or
 * pier_op_init) before first use; reuse it once its callback has run
 * (also from inside that callback).  Public fields are results, valid
 * when the callback runs.
 * The pier__r part is private to pier and its providers (<pier/spi.h>).
 */
struct pier_op {
  void *data;              /* the application's; pier never touches it */
  int status;              /* 0, a PIER_E* code, or PIER_EINPROGRESS */
  unsigned flags;          /* PIER_MSG_* out flags */
  size_t bytes;            /* bytes transferred */
  pier_socket *socket;     /* the socket the operation ran on */
  pier_socket *accepted;   /* accept: the new socket, owned by the app */
  size_t addrlen;          /* recvfrom: length of the sender's address */
  struct addrinfo *addrinfo; /* resolve: result, free with pier_freeaddrinfo */
  struct {
    int type, state;
    unsigned in_flags;
    pier_op_cb cb;
    pier_loop *loop;
    pier_buf *bufs;
    size_t nbufs;
    pier_buf inline_bufs[PIER_OP_INLINE_BUFS];
    struct sockaddr_storage addr; /* connect / sendto target */
    size_t addr_len;
    struct sockaddr_storage *from; /* recvfrom: caller's storage */
    pier_condition_fn cond;
    void *cond_ctx;
    pier_connect_data *cdata;
    const pier_qos *qos;
    pier_op *next, *prev;
    void *ext;            /* resolve request, layer state */
    size_t progress;      /* provider: bytes done so far */
    unsigned long long seq; /* core: when it became ready to deliver */
    union { void *p[8]; unsigned long long u[8]; } prov; /* base provider */
  } pier__r;
};

/*
 * pier_op_init - reset an idle op to the zero state (as memset would);
 * NULL is a no-op.  Never on a pending op.
 * Errors: none.
 */
void pier_op_init(pier_op *op);

/*
 * Starting operations.  Common rules:
 *   - op must be idle (PIER_EBUSY if it is pending).
 *   - With cb != NULL the operation is overlapped: the call returns 0 and
 *     cb(op, status) runs later from pier_loop_run(), exactly once.
 *   - With cb == NULL the call is a blocking call, as in Winsock: it
 *     returns when done with the same status, the results in op, and can
 *     be made from any thread; on a socket in non-blocking mode it returns
 *     PIER_EWOULDBLOCK when it would have to wait.  pier_cancel_blocking()
 *     and pier_close() interrupt it with PIER_ECANCELED, whenever they
 *     land once the call has begun (a call that begins after pier_close
 *     returns PIER_EBADF).  In blocking mode, made from inside a
 *     callback of s's loop while no other thread serves that loop, or
 *     from a condition function that runs with that loop's lock held (an
 *     overlapped accept's always does), it returns PIER_EDEADLK at once
 *     and starts nothing: waiting there would stop the loop it may need.
 *     A blocking wait costs no CPU and opens no descriptor.
 *   - buffer arrays are copied; the memory they point to must stay valid
 *     until completion.
 */

/*
 * pier_accept - take the next connection request on a listening socket.
 * cond (may be NULL: accept all) decides it; see pier_condition_fn.
 * ACCEPT: op->accepted is a new socket with the listener's protocol and
 * mode, owned by the application.  REJECT: the caller is refused (or
 * reset where the OS completed the handshake already), the listener goes
 * on and this accept waits for the next request.  DEFER: the operation
 * completes with PIER_ETRYAGAIN; the request stays at the head of the
 * queue and no accept completes until pier_accept() is called again, when
 * the same request is presented first.
 * Rules: starting operations, above.
 * Errors: PIER_EINVAL (NULL listener or op, not listening; a listener
 * that takes pier_accept_first only), PIER_EBUSY (op is pending),
 * PIER_EBADF (the listener is closing), PIER_EOPNOTSUPP
 * (connectionless).
 * Status: PIER_ETRYAGAIN (the condition function DEFERred the request),
 * PIER_ECANCELED (pier_cancel, pier_cancel_blocking, or the listener
 * closed), PIER_EWOULDBLOCK (blocking form on a non-blocking listener
 * with no request waiting), PIER_EMFILE (out of descriptors; pending
 * requests are shed, the accept goes on once descriptors come back),
 * PIER_ENOMEM, PIER_ECONNABORTED (a request that went away before it was
 * accepted, where the OS reports it).
 * Threads: overlapped, from the loop's thread (any thread on a loop with
 * several threads); blocking (cb NULL), from any thread.
 */
int pier_accept(pier_socket *listener, pier_op *op, pier_condition_fn cond,
                void *cond_ctx, pier_op_cb cb);

/*
 * pier_connect - connect to addr.  A qos (may be NULL) is applied first as
 * by pier_set_qos; if it cannot be, the call fails with that error and
 * starts nothing.  In blocking form on a socket in
 * non-blocking mode it returns PIER_EWOULDBLOCK and the connection goes
 * on in the background (a second connect then returns PIER_EALREADY).
 * cdata (protocols with
 * PIER_CAP_CONNECT_DATA, else must be NULL or PIER_EOPNOTSUPP) carries
 * caller data out and the callee's answer back; qos may be NULL.
 * A refused connection completes with PIER_ECONNREFUSED, a rejection by
 * a pier listener's condition function with PIER_EREFUSED where the
 * protocol can tell them apart.
 * Rules: starting operations, above.
 * Errors: PIER_EINVAL (NULL s, op or addr, a bad addrlen, a listening
 * socket), PIER_EBUSY (op is pending), PIER_EBADF (s is closing),
 * PIER_EOPNOTSUPP (cdata on a protocol without PIER_CAP_CONNECT_DATA),
 * PIER_EALREADY (a connect is in progress), PIER_EISCONN (connected
 * already), the errors of pier_set_qos for qos.
 * Status: PIER_ECONNREFUSED, PIER_EREFUSED (a pier listener's condition
 * function rejected it), PIER_ETIMEDOUT (no answer; or the connect-data
 * handshake took longer than PIER_SO_HANDSHAKE_TIMEOUT), PIER_ENETUNREACH,
 * PIER_EHOSTUNREACH, PIER_EADDRNOTAVAIL, PIER_ECONNRESET, PIER_EPROTO (a
 * peer that does not speak the protocol's handshake), PIER_ECANCELED
 * (pier_cancel, pier_cancel_blocking, or s closed), PIER_EWOULDBLOCK
 * (blocking form on a non-blocking socket: the connect goes on), the TLS
 * errors of pier_tls(3) on a TLS socket.
 * Threads: overlapped, from the loop's thread (any thread on a loop with
 * several threads); blocking (cb NULL), from any thread.
 */
int pier_connect(pier_socket *s, pier_op *op, const struct sockaddr *addr,
                 size_t addrlen, pier_connect_data *cdata, const pier_qos *qos,
                 pier_op_cb cb);

/*
 * pier_accept_first - AcceptEx with a receive buffer: pier_accept (no
 * condition function, overlapped only) that also takes the caller's first
 * bytes into buf (len >= 1 bytes, valid until completion), op->bytes
 * saying how many.  On a listener where PIER_SO_ACCEPT_FIRST is set
 * (iocp) the accept completes only once the caller has sent something;
 * callers that stay connected and silent longer than its value are
 * closed and never reach the application.  A protocol whose server
 * speaks first must not use it.  Elsewhere it completes as pier_accept
 * does, with op->bytes 0, the data then read with pier_recv.  Bytes past
 * len (at most 1024 are taken with the accept) wait for pier_recv.
 * Once a listener with PIER_SO_ACCEPT_FIRST has started taking first
 * bytes (its first accept was this one), every accept on it must be
 * pier_accept_first: a pier_accept there, with or without a condition
 * function, returns PIER_EINVAL, as it would lose the bytes.
 * Errors: PIER_EINVAL (NULL listener, op, buf or cb, len 0, not
 * listening, a connectionless protocol), PIER_EBUSY (op is pending),
 * PIER_EBADF (the listener is closing).
 * Status: as pier_accept (but never PIER_ETRYAGAIN or PIER_EWOULDBLOCK).
 * Threads: from the loop's thread (any thread on a loop with several
 * threads).
 */
int pier_accept_first(pier_socket *listener, pier_op *op, void *buf,
                      size_t len, pier_op_cb cb);

/*
 * pier_connect_first - ConnectEx with a send buffer: pier_connect
 * (overlapped only, no connect data) that sends first (len bytes, valid
 * until completion) with the connection where the OS can: in ConnectEx's
 * send buffer on Windows (in the SYN with TCP Fast Open where Windows has
 * it), in the SYN with TCP Fast Open on Linux when the kernel allows it
 * and holds a cookie for the server.  It completes like pier_connect, with
 * op->bytes the part of first that went out: all of it, or 0 where
 * nothing could be sent that way - the caller sends the rest with
 * pier_send.  With Fast Open the connect may complete before the server
 * has answered; a refusal then shows in the next operation.
 * Errors: PIER_EINVAL (NULL s, op, addr or cb; NULL first with len > 0;
 * a bad addrlen; a listening or connectionless socket), PIER_EBUSY (op
 * is pending), PIER_EBADF (s is closing), PIER_EALREADY, PIER_EISCONN.
 * Status: as pier_connect.
 * Threads: from the loop's thread (any thread on a loop with several
 * threads).
 */
int pier_connect_first(pier_socket *s, pier_op *op, const struct sockaddr *addr,
                       size_t addrlen, const void *first, size_t len,
                       pier_op_cb cb);

/*
 * pier_recv - receive into nbufs buffers, filled in order (scatter).
 * flags: PIER_MSG_PEEK, PIER_MSG_OOB, PIER_MSG_WAITALL.  Completes with
 * bytes > 0, or bytes == 0 and status 0 at the end of the stream.
 * op->flags reports PIER_MSG_PARTIAL / PIER_MSG_TRUNC / PIER_MSG_OOB.
 * Rules: starting operations, above.
 * Errors: PIER_EINVAL (NULL s, op or bufs, nbufs 0, unknown flags),
 * PIER_EBUSY (op is pending), PIER_EBADF (s is closing), PIER_ENOTCONN
 * (a listening socket), PIER_EOPNOTSUPP (PIER_MSG_WAITALL on a datagram
 * protocol, PIER_MSG_OOB on one without PIER_CAP_EXPEDITED_DATA),
 * PIER_ENOMEM (more than PIER_OP_INLINE_BUFS buffers and no memory for
 * the copy of the array).
 * Status: PIER_ECONNRESET, PIER_ENOTCONN (not connected),
 * PIER_ETIMEDOUT (keep-alive gave up), PIER_ECANCELED (pier_cancel,
 * pier_cancel_blocking, or s closed), PIER_EWOULDBLOCK (blocking form on
 * a non-blocking socket with nothing to receive), PIER_EMSGSIZE (a
 * message protocol's message over PIER_SO_MAX_MESSAGE), PIER_EPROTO (a
 * peer that breaks pier's message framing), the TLS errors of
 * pier_tls(3) on a TLS socket.
 * Threads: overlapped, from the loop's thread (any thread on a loop with
 * several threads); blocking (cb NULL), from any thread.
 */
int pier_recv(pier_socket *s, pier_op *op, const pier_buf *bufs, size_t nbufs,
              unsigned flags, pier_op_cb cb);

/*
 * pier_recvfrom - pier_recv that also stores the sender's address in
 * *from (caller-owned, valid until completion; may be NULL) and its
 * length in op->addrlen.  A datagram larger than the buffers completes
 * with status 0, the buffers full and PIER_MSG_TRUNC set.
 * Rules: starting operations, above.
 * Errors: PIER_EINVAL (NULL s, op or bufs, nbufs 0, unknown flags),
 * PIER_EBUSY (op is pending), PIER_EBADF (s is closing), PIER_ENOTCONN
 * (a listening socket), PIER_EOPNOTSUPP (PIER_MSG_WAITALL on a datagram
 * protocol, PIER_MSG_OOB on one without PIER_CAP_EXPEDITED_DATA),
 * PIER_ENOMEM (more than PIER_OP_INLINE_BUFS buffers and no memory for
 * the copy of the array).
 * Status: as pier_recv; on datagram sockets PIER_ECONNREFUSED where the
 * OS reports an ICMP port unreachable for an earlier send.
 * Threads: overlapped, from the loop's thread (any thread on a loop with
 * several threads); blocking (cb NULL), from any thread.
 */
int pier_recvfrom(pier_socket *s, pier_op *op, const pier_buf *bufs,
                  size_t nbufs, unsigned flags, struct sockaddr_storage *from,
                  pier_op_cb cb);

/*
 * pier_send - send nbufs buffers in order (gather).  Completes when every
 * byte has been accepted by the transport; a partial send is never
 * reported, the rest is sent by pier.  flags: PIER_MSG_OOB.
 * Rules: starting operations, above.
 * Errors: PIER_EINVAL (NULL s, op or bufs, nbufs 0, unknown flags),
 * PIER_EBUSY (op is pending), PIER_EBADF (s is closing), PIER_ENOTCONN
 * (a listening socket), PIER_EOPNOTSUPP (PIER_MSG_WAITALL on a datagram
 * protocol, PIER_MSG_OOB on one without PIER_CAP_EXPEDITED_DATA),
 * PIER_ENOMEM (more than PIER_OP_INLINE_BUFS buffers and no memory for
 * the copy of the array).
 * Status: PIER_EPIPE (sends were shut down), PIER_ECONNRESET,
 * PIER_ENOTCONN, PIER_ETIMEDOUT, PIER_ECANCELED (pier_cancel,
 * pier_cancel_blocking, or s closed), PIER_EWOULDBLOCK (blocking form on
 * a non-blocking socket whose send buffer is full), PIER_EMSGSIZE (a
 * datagram or message over the protocol's limit), PIER_ENOBUFS, the TLS
 * errors of pier_tls(3) on a TLS socket.
 * Threads: overlapped, from the loop's thread (any thread on a loop with
 * several threads); blocking (cb NULL), from any thread.
 */
int pier_send(pier_socket *s, pier_op *op, const pier_buf *bufs, size_t nbufs,
              unsigned flags, pier_op_cb cb);

/*
 * pier_sendto - pier_send of one datagram to addr (connectionless
 * protocols).
 * Rules: starting operations, above.
 * Errors: PIER_EINVAL (NULL s, op or bufs, nbufs 0, unknown flags, NULL
 * addr or a bad addrlen),
 * PIER_EBUSY (op is pending), PIER_EBADF (s is closing), PIER_ENOTCONN
 * (a listening socket), PIER_EOPNOTSUPP (PIER_MSG_WAITALL on a datagram
 * protocol, PIER_MSG_OOB on one without PIER_CAP_EXPEDITED_DATA),
 * PIER_ENOMEM (more than PIER_OP_INLINE_BUFS buffers and no memory for
 * the copy of the array).
 * Status: PIER_EMSGSIZE (larger than a datagram can be),
 * PIER_ENETUNREACH, PIER_EHOSTUNREACH, PIER_EACCES (a broadcast address
 * without PIER_SO_BROADCAST), PIER_EAFNOSUPPORT (addr's family is not the
 * socket's), PIER_ENOBUFS, PIER_ECANCELED, PIER_EWOULDBLOCK.
 * Threads: overlapped, from the loop's thread (any thread on a loop with
 * several threads); blocking (cb NULL), from any thread.
 */
int pier_sendto(pier_socket *s, pier_op *op, const pier_buf *bufs, size_t nbufs,
                unsigned flags, const struct sockaddr *addr, size_t addrlen,
                pier_op_cb cb);

/*
 * pier_disconnect - graceful close of the sending side (WSASendDisconnect):
 * completes once everything sent before it has gone out, then the peer's
 * receives end (bytes 0) after the data before it.  data/len (len up to
 * PIER_DISCONNECT_DATA_MAX) travel with it on protocols with
 * PIER_CAP_DISCONNECT_DATA, where the peer reads them with
 * pier_recv_disconnect; elsewhere len must be 0 (else PIER_EOPNOTSUPP,
 * nothing done) and it is a shutdown of sends that also ends a layer's
 * session (a TLS close_notify).  data is copied.  Receives go on working
 * until the peer closes too.
 * Rules: starting operations, above.
 * Errors: PIER_EINVAL (NULL s or op, NULL data with len > 0), PIER_EBUSY
 * (op is pending), PIER_EBADF (s is closing), PIER_ENOTCONN (a listening
 * socket), PIER_EOPNOTSUPP (connectionless, or data the protocol cannot
 * carry), PIER_EMSGSIZE (len over PIER_DISCONNECT_DATA_MAX).
 * Status: PIER_ENOTCONN (not connected), PIER_ECONNRESET, PIER_EPIPE
 * (sends were shut down already), PIER_ECANCELED, PIER_EWOULDBLOCK.
 * Threads: overlapped, from the loop's thread (any thread on a loop with
 * several threads); blocking (cb NULL), from any thread.
 */
int pier_disconnect(pier_socket *s, pier_op *op, const void *data, size_t len,
                    pier_op_cb cb);

/*
 * pier_recv_disconnect - the disconnect data the peer sent with its
 * pier_disconnect (WSARecvDisconnect), copied into buf (cap bytes; a
 * longer one is cut, *len says how much there was).  Available once a
 * receive has seen the end of the stream.  PIER_ENOTCONN before the
 * peer's disconnect has arrived, PIER_EOPNOTSUPP on protocols without
 * PIER_CAP_DISCONNECT_DATA, PIER_EINVAL for NULL len (buf may be NULL
 * with cap 0 to ask the size).
 * Errors: PIER_EINVAL (NULL s or len, NULL buf with cap > 0), PIER_EBADF
 * (s is closing), PIER_ENOTCONN (the peer's disconnect has not arrived),
 * PIER_EOPNOTSUPP (a protocol without PIER_CAP_DISCONNECT_DATA).
 */
int pier_recv_disconnect(pier_socket *s, void *buf, size_t cap, size_t *len);

/*
 * pier_cancel - cancel one pending overlapped operation: it completes
 * with PIER_ECANCELED (unless it completes first on its own; either way,
 * exactly once).  Returns PIER_ENOENT if op is not pending - never
 * started, already completed (even if its callback has not run yet), or
 * a blocking call (use pier_cancel_blocking).
 * Errors: PIER_EINVAL (NULL op), PIER_ENOENT (op is not pending).
 * Threads: any thread.
 */
int pier_cancel(pier_op *op);

/*
 * pier_cancel_blocking - interrupt every blocking call (cb == NULL) in
 * progress on s, waiting or not yet: each returns PIER_ECANCELED (or its
 * result, if it completes without waiting again).  Also from a condition
 * function inside the call.  A call that begins afterwards is not
 * affected.
 * Errors: PIER_EINVAL (NULL s), PIER_ENOENT (no call was in progress),
 * PIER_EOPNOTSUPP (the provider has no blocking calls).
 * Threads: any thread.
 */
int pier_cancel_blocking(pier_socket *s);

/*
 * pier_op_result - the WSAGetOverlappedResult of pier.  Returns the op's
 * status and fills *bytes and *flags (either may be NULL).  If the op is
 * still pending: with wait == 0 returns PIER_EINPROGRESS; otherwise waits
 * for it - by running the loop (PIER_RUN_ONCE steps) when no thread is
 * running it, so the op's callback, and any other that is due, runs
 * inside this call; by sleeping until the loop's thread has run the
 * callback otherwise.  From inside a callback of the same loop waiting
 * returns PIER_EDEADLK.
 * Errors: the op's own status once it has completed (0 or its PIER_E*
 * code), and: PIER_EINVAL (NULL op), PIER_EINPROGRESS (pending, and wait
 * is 0; or a blocking call running in another thread), PIER_EDEADLK
 * (waiting from a callback of the op's own loop).
 * Threads: any thread.
 */
int pier_op_result(pier_op *op, int wait, size_t *bytes, unsigned *flags);

/*
 * pier_resolve - asynchronous getaddrinfo on a worker thread; the loop is
 * never blocked.  node and service may not both be NULL.  On success
 * op->addrinfo holds the list, owned by the application
 * (pier_freeaddrinfo).  cb == NULL resolves in the calling thread.
 * pier_cancel() works on it.
 * Errors: PIER_EINVAL (NULL loop or op, node and service both NULL),
 * PIER_EBUSY (op is pending), PIER_ESHUTDOWN (the loop is closed),
 * PIER_ENOMEM.
 * Status: PIER_EAI_NONAME (unknown host or service), PIER_EAI_AGAIN
 * (temporary failure: try later), PIER_EAI_FAIL, PIER_EAI_FAMILY (no
 * address of the family hints asks for), PIER_ENOMEM, PIER_ECANCELED
 * (pier_cancel).
 * Threads: overlapped, from the loop's thread (any thread on a loop with
 * several threads); blocking (cb NULL), from any thread.
 */
int pier_resolve(pier_loop *loop, pier_op *op, const char *node,
                 const char *service, const struct addrinfo *hints,
                 pier_op_cb cb);

/*
 * pier_freeaddrinfo - release a list from pier_resolve(); NULL is a no-op.
 * Errors: none.
 * Threads: any thread.
 */
void pier_freeaddrinfo(struct addrinfo *ai);

/* ------------------------------------------------------------------ */
/* 7. network events (WSPEventSelect, WSPEnumNetworkEvents)            */
/* ------------------------------------------------------------------ */

/* pier_net_event - network events (pier_event_select); PIER_EV_*_BIT is
   each one's index in pier_net_events.errors. */
enum pier_net_event {
  PIER_EV_READ = 1u << 0,    /* data to receive */
  PIER_EV_WRITE = 1u << 1,   /* a send can be made */
  PIER_EV_OOB = 1u << 2,     /* urgent (out-of-band) data to receive */
  PIER_EV_ACCEPT = 1u << 3,  /* a connection is waiting on a listener */
  PIER_EV_CONNECT = 1u << 4, /* a connect finished (its status in errors) */
  PIER_EV_CLOSE = 1u << 5    /* the peer closed (0) or reset the connection */
};
#define PIER_EV_ALL 0x3fu
#define PIER_EV_COUNT 6
enum {
  PIER_EV_READ_BIT = 0, PIER_EV_WRITE_BIT, PIER_EV_OOB_BIT,
  PIER_EV_ACCEPT_BIT, PIER_EV_CONNECT_BIT, PIER_EV_CLOSE_BIT
};

/* pier_net_events - what pier_enum_network_events() reports. */
typedef struct pier_net_events {
  unsigned events;             /* PIER_EV_* recorded since the last call */
  int errors[PIER_EV_COUNT];   /* per event (PIER_EV_*_BIT): 0 or PIER_E* */
} pier_net_events;

/* pier_event_cb - called when new events have been recorded; events is
   the record so far (pier_enum_network_events reads and clears it). */
typedef void (*pier_event_cb)(pier_socket *s, unsigned events);

/*
 * pier_event_select - record the network events in mask (PIER_EV_*) as
 * they happen on s, and call cb on the loop when the record gains events
 * (the event object of WSAEventSelect).  Replaces any earlier selection
 * and clears the record; mask 0 stops.  Conditions that already hold are
 * recorded at once (data waiting, a connected socket that can send).
 *
 * Each event is recorded once and then not again until re-enabled, as in
 * Winsock: READ by a receive (pier_recv / pier_recvfrom), OOB by a
 * receive with PIER_MSG_OOB, ACCEPT by pier_accept, WRITE by a send that
 * returned PIER_EWOULDBLOCK; CONNECT (when a connect started with a
 * callback, or a blocking one, finishes, with its status - a connect
 * that returned PIER_EWOULDBLOCK on a non-blocking socket is not
 * reported) and CLOSE (once the data before it has been read; 0 for an
 * orderly close, PIER_ECONNRESET for a reset) are recorded once.  WRITE is
 * also recorded when a connect succeeds.
 *
 * A socket accepted on s takes s's selection and callback (as Winsock's
 * accepted sockets take the listener's WSAEventSelect), with WRITE
 * recorded once it can send; select again on it to change that.
 *
 * cb runs from pier_loop_run() like a completion of s, never concurrently
 * with s's other callbacks, and not after pier_close(s).
 *
 * A selection does not keep the loop alive: pier_loop_run() returns when
 * nothing else is pending, events or not.  Hold pier_loop_ref() while
 * waiting for events alone, and pier_loop_unref() when done.
 * Errors: PIER_EINVAL (NULL s, unknown bits in mask, a mask without cb),
 * PIER_EBADF (s is closing), PIER_EOPNOTSUPP (the provider cannot watch
 * sockets; on Windows, a socket taken from another process), PIER_ENOMEM.
 */
int pier_event_select(pier_socket *s, unsigned mask, pier_event_cb cb);

/*
 * pier_enum_network_events - copy the events recorded on s into *out,
 * with one error code per event, and clear the record (WSAEnumNetwork-
 * Events).  out->events is 0 when nothing was recorded.
 * Errors: PIER_EINVAL (NULL s or out), PIER_EBADF (s is closing).
 */
int pier_enum_network_events(pier_socket *s, pier_net_events *out);

/* ------------------------------------------------------------------ */
/* 8. synchronous multiplexing (WSPSelect, WSAPoll)                    */
/* ------------------------------------------------------------------ */

/* pier_poll_events - what pier_poll watches and reports. */
enum pier_poll_events {
  PIER_POLLIN = 1u << 0,   /* data to receive, a connection to accept, or
                              the end of the stream */
  PIER_POLLOUT = 1u << 1,  /* a send would not block; a connect finished */
  PIER_POLLPRI = 1u << 2,  /* urgent (OOB) data */
  PIER_POLLHUP = 1u << 3,  /* out only: the connection is closed or reset */
  PIER_POLLERR = 1u << 4   /* out only: an error is pending (PIER_SO_ERROR) */
};

/* pier_pollfd - one socket of pier_poll. */
typedef struct pier_pollfd {
  pier_socket *socket;
  unsigned events;   /* PIER_POLLIN | PIER_POLLOUT | PIER_POLLPRI */
  unsigned revents;  /* out: what is ready, HUP and ERR always reported */
} pier_pollfd;

/*
 * pier_poll - wait until one of n sockets is ready, or timeout_ms passes
 * (-1: no limit, 0: just look).  Needs no running loop: it asks the OS
 * (poll, WSAPoll) about the sockets' handles, so use it on sockets with
 * no overlapped operations pending (those would race for the same data).
 * Returns how many entries have revents set (0 on timeout).
 * Errors: PIER_EINVAL (NULL or empty fds, timeout_ms below -1, NULL or
 * closing sockets, unknown event bits), PIER_EOPNOTSUPP (a socket of a
 * layered protocol: its layer holds data the OS does not see; use
 * overlapped operations), PIER_ENOMEM (many sockets and no memory for
 * the OS's array).
 * Threads: any thread.
 */
int pier_poll(pier_pollfd *fds, size_t n, int timeout_ms);

/* ------------------------------------------------------------------ */
/* 9. sharing a socket with another process (WSPDuplicateSocket)       */
/* ------------------------------------------------------------------ */

/*
 * A listening or connected socket handed to another process keeps working
 * there, on a loop of that process: it accepts on the shared listener, or
 * carries on the connection's I/O.  Both processes may go on using their
 * socket - two processes accepting on one listener share its incoming
 * connections, each taken by one of them - and the source may close its
 * socket once the target has its copy; the connection lives on until the
 * last copy is closed.
 *
 * Two ways, the same on every OS:
 *   - pier_share_send / pier_share_recv: one call on each side of a
 *     channel the two processes already share.  Works wherever sockets can
 *     be shared at all.
 *   - pier_socket_share / pier_socket_from_share: a pier_share (plain
 *     bytes) that the application carries itself (a pipe, a file, shared
 *     memory, a command line).
 * Windows: WSADuplicateSocketW and its WSAPROTOCOL_INFOW.  POSIX: the
 * descriptor itself, as SCM_RIGHTS ancillary data over an AF_UNIX channel,
 * or taken from the source process with pidfd_getfd (Linux 5.6 and later,
 * where the target may ptrace the source: same user and a Yama
 * ptrace_scope that allows it, or CAP_SYS_PTRACE).
 *
 * Rules: the source keeps its socket open until the target has taken its
 * copy (pier_share_send waits for that; with pier_socket_share the
 * application arranges it); a pier_share serves once, in the process it
 * was made for.  On Windows the target's copy is created the moment the
 * share is made, so a share never taken leaves a handle behind in the
 * target until it exits (as with WSADuplicateSocket).  On Windows a copy
 * cannot watch network events (pier_event_select answers PIER_EOPNOTSUPP):
 * WSAEventSelect registrations belong to the socket, not to a copy, so
 * its own would replace the source's.
 */

/* PIER_SHARE_SIZE - the size of a pier_share. */
#define PIER_SHARE_SIZE 1024

/*
 * pier_share - a socket described for one other process: fixed size,
 * plain bytes, copied and carried as they are.  Bytes 0-3 are "PSHR"
 * and bytes 4-5 the format version (little-endian, 1); the rest is
 * pier's (the socket's kind and listening state, the source and target
 * process ids, then the OS's own description), guarded by a checksum.
 */
typedef struct pier_share {
  unsigned char bytes[PIER_SHARE_SIZE];
} pier_share;

/*
 * pier_socket_share - describe s for process pid in *out (WSPDuplicate-
 * Socket).  Windows: WSADuplicateSocketW for pid.  POSIX: s's descriptor
 * number and this process's id, for pidfd_getfd; nothing is checked until
 * the target takes it.  s stays the caller's, unchanged; keep it open
 * until the target has its copy.
 * Errors: PIER_EINVAL (NULL s or out, pid 0; Windows: no process pid),
 * PIER_EBADF (s is closing), PIER_EOPNOTSUPP (a layered socket: its
 * session state cannot travel), PIER_EACCES (Windows: the target process
 * may not be opened).
 * Threads: any thread.
 */
int pier_socket_share(pier_socket *s, unsigned long pid, pier_share *out);

/*
 * pier_socket_from_share - the target's side: a new pier socket on loop
 * for the socket sh describes, listening if the source was, in blocking
 * or non-blocking mode by flags (PIER_SOCK_NONBLOCK) like
 * pier_socket_open.  On success the caller owns *out (pier_close).
 * Windows: WSASocketW(FROM_PROTOCOL_INFO) overlapped.  POSIX: pidfd_open
 * and pidfd_getfd on the source.  On an error nothing is created.
 * Errors: PIER_EINVAL (NULL arguments, unknown flags, bytes that are no
 * pier_share - corrupted, unknown version, another OS - or a share made
 * for another process), PIER_ESHUTDOWN (the loop is closed),
 * PIER_EOPNOTSUPP (POSIX without pidfd_getfd: not Linux, Linux < 5.6, or
 * a sandbox that hides the call), PIER_EACCES (the OS refuses: the target
 * may not ptrace the source - Yama ptrace_scope, another user, a seccomp
 * policy; use pier_share_send / pier_share_recv), PIER_ENOENT (the source
 * process has exited), PIER_EBADF (the source has closed the socket: its
 * descriptor is gone or now names something else), PIER_EAFNOSUPPORT (no
 * catalog entry for the socket's kind here), PIER_EMFILE, PIER_ENOMEM.
 * Threads: any thread.
 */
int pier_socket_from_share(pier_loop *loop, const pier_share *sh,
                           unsigned flags, pier_socket **out);

/*
 * pier_share_send - hand s to process pid over channel, a connected
 * stream socket the two processes share (POSIX: AF_UNIX, as from
 * socketpair(); Windows: any, e.g. loopback TCP), and wait for the
 * target's answer.  The PIER_SHARE_SIZE bytes of pier_socket_share(s,
 * pid) are written to channel - on POSIX with s's descriptor attached as
 * SCM_RIGHTS - and pier_share_recv in the target answers with one byte
 * once it has its copy.  After 0, s may be closed; the target's socket
 * lives on.  channel stays the caller's and may be blocking or not;
 * timeout_ms bounds the whole exchange (-1: no limit).
 * Returns 0 when the target has its copy, else the target's error (a
 * negative PIER_E* code its pier_share_recv returned, e.g. PIER_EINVAL
 * for a share made for another process) or one of the errors below.
 * After PIER_ETIMEDOUT or PIER_ECONNRESET the target may or may not have
 * its copy, and the channel is out of step: close it.
 * Errors: PIER_EINVAL (NULL s, PIER_INVALID_SOCKET as channel, pid 0,
 * timeout_ms below -1), PIER_EBADF
 * (s is closing), PIER_EOPNOTSUPP (POSIX: the channel is not AF_UNIX; a
 * layered socket), PIER_ETIMEDOUT (no answer within timeout_ms),
 * PIER_ECONNRESET (the channel closed before the answer), PIER_EPIPE (the
 * channel is shut down), and any error of the target's pier_share_recv.
 * Threads: any thread; blocks the calling thread until the answer.
 */
int pier_share_send(pier_os_socket channel, pier_socket *s, unsigned long pid,
                    int timeout_ms);

/*
 * pier_share_recv - the target's side of pier_share_send: read one share
 * from channel, create the socket as pier_socket_from_share does (on POSIX
 * from the attached descriptor), and answer the sender with the result.
 * On success the caller owns *out.  timeout_ms bounds the wait (-1: no
 * limit).  Descriptors that arrive with a refused share are closed;
 * nothing is left behind.
 * Errors: PIER_EINVAL (NULL loop or out, PIER_INVALID_SOCKET as channel,
 * unknown flags, timeout_ms below -1; a share that is no pier_share or
 * was made for another process), PIER_ESHUTDOWN (the loop is closed),
 * PIER_EOPNOTSUPP (POSIX without pidfd_getfd, where the share carries no
 * descriptor), PIER_EACCES (the OS refuses the copy), PIER_ENOENT (the
 * source process has exited), PIER_EBADF (the source closed the socket),
 * PIER_EAFNOSUPPORT (no catalog entry for the socket's kind here),
 * PIER_EMFILE, PIER_ENOMEM, PIER_ETIMEDOUT (nothing came in time),
 * PIER_ECONNRESET (the channel closed early), PIER_EPROTO (POSIX: a share
 * arrived with no descriptor).
 * Threads: any thread; blocks the calling thread until a share comes.
 */
int pier_share_recv(pier_loop *loop, pier_os_socket channel, unsigned flags,
                    int timeout_ms, pier_socket **out);

#ifdef __cplusplus
}
#endif

#endif /* PIER_H */
