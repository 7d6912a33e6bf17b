/* SPDX-License-Identifier: MIT */
/*
 * backends/iocp/iocp.h - private state of the Windows provider, built
 * directly on Winsock 2 and I/O completion ports.
 *
 * Every overlapped call carries an OVERLAPPED that starts an iocp_ovl
 * header (the OVERLAPPED, then what it belongs to).  Operations keep it in
 * op->pier__r.prov; pre-posted AcceptEx slots in the listener's slot
 * array.  A socket's private state (and so its slots) lives until every
 * OVERLAPPED the OS holds has been dequeued from the port: close cancels,
 * then waits for the count of those in flight to reach zero before it
 * reports pier_spi_closed() - never freeing memory the kernel may write.
 *
 * Files: provider.c (table, loop, sockets, completion dispatch), io.c
 * (WSARecv/WSASend/WSARecvFrom/WSASendTo, ConnectEx), accept.c (AcceptEx
 * slots and WSAAccept with condition functions), block.c (blocking calls
 * and pier_cancel_blocking), evented.c (sockets that cannot be tied to the
 * loop's port: shared copies, whose OVERLAPPEDs signal events instead).
 */
#ifndef PIER_IOCP_H
#define PIER_IOCP_H

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include "pier.h"
#include "pier/spi.h"

/* Completion keys that are not sockets. */
#define IOCP_KEY_WAKE ((ULONG_PTR)1)   /* pier_loop_post / stop: no OVERLAPPED */
#define IOCP_KEY_KICK ((ULONG_PTR)2)   /* run a listener's accepts; ov = socket */
#define IOCP_KEY_SOCKET ((ULONG_PTR)3) /* an OVERLAPPED of ours */

enum iocp_kind { IOCP_K_OP = 1, IOCP_K_SLOT = 2 };

/* The head of every OVERLAPPED pier hands to the OS. */
typedef struct iocp_ovl {
  OVERLAPPED ov;
  int kind;                /* IOCP_K_* */
} iocp_ovl;

/* The provider's part of an operation, in op->pier__r.prov. */
typedef struct iocp_opx {
  iocp_ovl h;
  DWORD flags;             /* WSARecv flags, in and out */
  INT fromlen;             /* WSARecvFrom address length */
  int in_flight;           /* the OS holds h.ov */
  unsigned skip;           /* whole buffers already transferred */
  int zero;                /* the pending call is a zero-byte read */
  int issued;              /* handed to Winsock (head of its queue) */
} iocp_opx;

typedef struct iocp_sock iocp_sock;

/* A pre-posted AcceptEx. */
typedef struct iocp_slot {
  iocp_ovl h;
  iocp_sock *listener;
  SOCKET as;               /* the socket AcceptEx fills */
  int state;               /* IOCP_SLOT_* */
  struct iocp_slot *next;  /* ready FIFO */
  struct sockaddr_storage local, remote;
  int local_len, remote_len;
  char addrbuf[2 * (sizeof(struct sockaddr_storage) + 16)];
  char *first;             /* accept-first: IOCP_FIRST_LEN + addresses;
                              NULL: a plain slot */
  DWORD nfirst;            /* the caller's first bytes received */
  int killed;              /* closed for silence: post again quietly */
} iocp_slot;

/* Accept-first listeners (PIER_SO_ACCEPT_FIRST): the first bytes an
   AcceptEx waits for, and the slots such a listener keeps posted, each
   able to hold a silent caller until the silence limit.  IOCP_PLAIN_SLOTS
   more take no first bytes: they complete at the connection, so callers
   that hold every first-bytes slot silent never stop the listener (the
   layer above bounds its handshakes itself). */
#define IOCP_FIRST_LEN 1024
#define IOCP_FIRST_SLOTS 64
#define IOCP_PLAIN_SLOTS 16

enum { IOCP_SLOT_IDLE = 0, IOCP_SLOT_POSTED, IOCP_SLOT_READY };
enum { IOCP_ACCEPT_NONE = 0, IOCP_ACCEPT_EX, IOCP_ACCEPT_WSA };

typedef struct iocp_loop {
  HANDLE port;
  LONG wake_pending;       /* a wake packet is queued */
  SRWLOCK block_lock;      /* every socket's waiter list, wakes */
  struct iocp_wake *wakes; /* idle wake sockets of blocking calls */
  LPFN_ACCEPTEX acceptex;
  LPFN_CONNECTEX connectex;
  LPFN_GETACCEPTEXSOCKADDRS getaddrs;
} iocp_loop;

typedef struct iocp_waiter iocp_waiter;
typedef struct iocp_wake iocp_wake;
typedef struct iocp_netev iocp_netev;

/* One direction of an evented socket (evented.c): its OVERLAPPEDs carry
   `event`, and a thread-pool wait on it posts them to the loop's port. */
enum { IOCP_DIR_R = 0, IOCP_DIR_W = 1 }; /* connects count as W */
typedef struct iocp_evw {
  iocp_sock *is;
  HANDLE event, wait;
  OVERLAPPED *volatile cur; /* the call its next signal completes, or NULL */
} iocp_evw;

struct iocp_sock {
  pier_socket *s;
  iocp_loop *il;
  SOCKET sock;
  int family, type, protocol;
  LONG inflight;           /* OVERLAPPEDs and kicks the port still owes us */
  int closing;
  int skip_on_success;     /* FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set */
  int bound, connected, connecting, reset;
  /* Receives and sends wait in order; only each queue's head is with
     Winsock, so completions (inline or through the port) and re-issued
     remainders (WAITALL, partial sends) keep the order ops were started. */
  pier_opq rq, wq;
  int pumping_r, pumping_w;
  /* accept */
  int accept_mode;         /* IOCP_ACCEPT_* */
  int conditional;         /* SO_CONDITIONAL_ACCEPT is on */
  int preposted;           /* AcceptEx slots to keep posted */
  int zero_read;           /* PIER_SO_ZERO_READ */
  int nslots;
  iocp_slot *slots;
  iocp_slot *ready_head, *ready_tail;
  pier_opq acceptq;        /* accept ops waiting for a request */
  int held;                /* deferred: wait for the next pier_accept */
  int in_cond;             /* inside a condition function: a close leaves
                              the OS socket (and slots) until it returns */
  int first_ms;            /* PIER_SO_ACCEPT_FIRST, or 0 */
  int first;               /* slots take first bytes (accept-first mode) */
  HANDLE first_timer;      /* looks for silent callers each second */
  HANDLE retry_timer;      /* out of sockets: the next try (accept.c) */
  LONG retry_fired;        /* retry_timer has fired (set by its thread) */
  HANDLE accept_event, accept_wait;
  LONG kick_posted;
  iocp_waiter *waiters;    /* blocking calls in progress (block_lock) */
  iocp_netev *ne;          /* pier_event_select state (events.c), or NULL */
  int ka_idle, ka_intvl;   /* keep-alive timings set through keepalive.c (s) */
  int evented;             /* not tied to the port: see evented.c */
  iocp_evw ev[2];          /* IOCP_DIR_R, IOCP_DIR_W when evented */
};

#define IOCP_MAX_PREPOSTED 256

static inline iocp_sock *iocp_sock_of(pier_socket *s) {
  return (iocp_sock *)pier_spi_socket_state(s);
}

static inline iocp_opx *iocp_opx_of(pier_op *op) {
  return (iocp_opx *)(void *)&op->pier__r.prov;
}

static inline pier_op *iocp_op_of(iocp_ovl *h) {
  return (pier_op *)((char *)h - offsetof(pier_op, pier__r.prov));
}

/* provider.c */
int pier__iocp_associate(iocp_sock *is);
void pier__iocp_maybe_closed(iocp_sock *is);
/* The OS side of a close: done once no condition function runs. */
void pier__iocp_close_os(iocp_sock *is);
int pier__iocp_error(iocp_sock *is, int err);
void pier__iocp_post_kick(iocp_sock *is);

/* io.c */
int pier__iocp_start(iocp_sock *is, pier_op *op);
int pier__iocp_cancel_queued(iocp_sock *is, pier_op *op);
void pier__iocp_cancel_unissued(iocp_sock *is);
void pier__iocp_op_done(iocp_sock *is, pier_op *op, DWORD bytes, int err,
                        DWORD flags);

/* accept.c */
int pier__iocp_accept_submit(iocp_sock *is, pier_op *op);
void pier__iocp_run_accepts(iocp_sock *is);
void pier__iocp_slot_done(iocp_slot *slot, int err, DWORD bytes);
void pier__iocp_accept_close(iocp_sock *is);
int pier__iocp_listen(iocp_sock *is, int backlog);
int CALLBACK pier__iocp_condition(LPWSABUF caller_id, LPWSABUF caller_data,
                                  LPQOS sqos, LPQOS gqos, LPWSABUF callee_id,
                                  LPWSABUF callee_data, GROUP *g,
                                  DWORD_PTR ctx);

/* evented.c */
int pier__iocp_ev_open(iocp_sock *is);
void pier__iocp_ev_close(iocp_sock *is);
void pier__iocp_ev_arm(iocp_sock *is, int dir, OVERLAPPED *ov);
int pier__iocp_owed(iocp_sock *is, int dir, OVERLAPPED *ov, int ok, int err);

/* events.c */
int pier__iocp_select_events(pier_socket *s, unsigned selected,
                             unsigned enabled);
int pier__iocp_events_sync(iocp_sock *is);
void pier__iocp_events_kicked(iocp_sock *is);
void pier__iocp_events_close(iocp_sock *is);

/* keepalive.c - each returns 1 if it handled the option */
int pier__iocp_keepalive_set(iocp_sock *is, int level, int name,
                             const void *val, size_t len, int *rc);
int pier__iocp_keepalive_get(iocp_sock *is, int level, int name, void *val,
                             size_t *len);
void pier__iocp_keepalive_switched(iocp_sock *is, int level, int name,
                                   const void *val);

/* block.c */
int pier__iocp_execute(pier_socket *s, pier_op *op);
int pier__iocp_cancel_blocking(pier_socket *s);
/* Close the loop's idle wake sockets (every call has ended). */
void pier__iocp_block_free(iocp_loop *il);

#endif
