/* SPDX-License-Identifier: MIT */
/*
 * src/layers/msg/msg.h - private state of the message layer: pier's
 * connect-data handshake (catalog entries tcp4+cd, tcp6+cd) and, when the
 * entry keeps message boundaries, its framing (msg4, msg6).  A layered
 * provider: it includes only the public headers and works through the
 * public API on the lower socket.
 *
 * Locking: slots run with the core lock held; every callback of an
 * operation on the lower socket, and the handshake timer, takes it with
 * pier_spi_lock() first.
 */
#ifndef PIER_MSG_H
#define PIER_MSG_H

#include "pier.h"
#include "pier/spi.h"
#include "../accepts.h"
#include "../timer.h"
#include "wire.h"

/* Where a socket is in its life. */
enum msg_phase {
  MSG_IDLE = 0,    /* opened, not connected */
  MSG_LISTENING,   /* a listener */
  MSG_CONNECTING,  /* client: TCP connect in progress */
  MSG_ANSWER,      /* client: hello sent, waiting for the answer */
  MSG_HELLO,       /* accepted: reading the caller's hello */
  MSG_ASKING,      /* accepted: hello read, waiting for a condition */
  MSG_OPEN,        /* handshake done: data flows */
  MSG_FAILED       /* handshake failed: only close is left */
};

/* Receive buffer of a socket, allocated at its first receive. */
#define MSG_RBUF 16384

typedef struct msg_sock msg_sock;

/* A send on the lower socket carrying one upper op (message or data). */
typedef struct msg_send {
  pier_op low;
  pier_op *upper;       /* NULL for the layer's own sends */
  msg_sock *m;
  uint8_t hdr[WIRE_FRAME_SIZE];
  size_t wire_bytes;    /* what the lower send carries in all */
  uint8_t *own;         /* data the layer copied (handshake, disconnect) */
  int kind;             /* MSG_S_* */
  pier_buf bufs[1];     /* grows: header + the upper op's buffers */
} msg_send;

enum { MSG_S_DATA, MSG_S_HELLO, MSG_S_ANSWER, MSG_S_REJECT, MSG_S_DISC };

struct msg_sock {
  pier_socket *s, *lower;
  int framed;           /* message boundaries (msg4/msg6) */
  int phase;            /* MSG_* */
  int error;            /* why the socket failed (MSG_FAILED) */
  int max_message;      /* PIER_SO_MAX_MESSAGE */
  int timeout_ms;       /* PIER_SO_HANDSHAKE_TIMEOUT */
  int closing;

  /* receiving */
  uint8_t *rbuf;        /* MSG_RBUF bytes, or NULL */
  size_t rstart, rend;
  pier_op rop;          /* the one receive on the lower socket */
  int rop_busy, rop_direct; /* direct: into the head op's own buffers */
  pier_opq recvq;       /* upper receives, in order */
  wire_reader rd;
  int eof, rerr;        /* the lower stream ended / failed */
  uint8_t *ddata;       /* peer's disconnect data */
  size_t dlen, dgot;
  int disc_seen;        /* the peer's disconnect frame has arrived */

  /* sending */
  int wbroken;          /* a message went out in part: no more sends */
  int wshut;            /* pier_disconnect / shutdown done */

  /* connecting */
  pier_op cop;          /* the lower connect */
  pier_op *uconnect;    /* the upper connect, until it completes */
  uint8_t *hello;       /* client: the request to send (hello + data) */
  size_t hello_len;

  /* accepted, before the application has it */
  lacc_conn lc;             /* on its listener's lists (../accepts.h) */
  wire_hello req;           /* the caller's request */
  uint8_t *cdata;           /* its caller data (req.data_len bytes) */
  size_t cgot;

  /* a listener (../accepts.h) */
  lacc_listener lst;

  /* client: the answer being read */
  wire_answer ans;
  int have_ans, have_req;
  size_t ans_got;
  uint8_t *answer;      /* server: answer header + room for callee data */
  size_t answer_len;    /* callee data the condition function wrote */

  ltimer *timer;        /* the handshake timer (../timer.h) */
};

extern const pier_provider pier__layer_msg;

static inline msg_sock *msg_of(pier_socket *s) {
  return (msg_sock *)pier_spi_socket_state(s);
}

/* handshake.c */
int pier__msg_connect(msg_sock *m, pier_op *op);
/* The listener's steps for ../accepts.c. */
extern const lacc_ops pier__msg_accepts;
/* The hello (server) or answer (client) parser, fed by the receive path
   with what the buffer holds. */
void pier__msg_handshake_input(msg_sock *m);
/* The lower stream ended or failed during the handshake. */
void pier__msg_handshake_lost(msg_sock *m, int error);
/* The timer goes; the connect and the receives complete with status. */
void pier__msg_end_ops(msg_sock *m, int status);
/* The connection cannot go on: error for the connect and the receives. */
void pier__msg_fail(msg_sock *m, int error);
void pier__msg_timer_release(msg_sock *m);
/* A REJECT or UNSUPPORTED answer has gone out: drop the connection. */
void pier__msg_rejected(msg_sock *m);

/* io.c */
int pier__msg_recv(msg_sock *m, pier_op *op);
int pier__msg_send(msg_sock *m, pier_op *op);
int pier__msg_disconnect(msg_sock *m, pier_op *op);
/* Deliver what can be delivered and keep one lower receive going. */
void pier__msg_pump(msg_sock *m);
/* Start a receive on the lower socket into the buffer. */
void pier__msg_read(msg_sock *m);
/* Send bytes the layer owns, from offset off to len (the allocation is
   taken over: freed when sent). */
int pier__msg_send_own(msg_sock *m, uint8_t *bytes, size_t off, size_t len,
                       int kind);
void pier__msg_cancel_recvs(msg_sock *m, int status);

#endif
