/* SPDX-License-Identifier: MIT */
/*
 * src/layers/tls/tls.h - private state of the TLS layer (include/pier/tls.h):
 * contexts, and the per-socket state of a layered provider that runs
 * OpenSSL on memory BIOs over a lower pier socket.  It includes only the
 * public headers and OpenSSL's.
 *
 * Data path: encrypted input comes from one pier_recv at a time on the
 * lower socket into rbuf and is written into the read BIO; encrypted
 * output that OpenSSL writes into the write BIO goes out through one
 * pier_send at a time from sbuf, in order.  An upper send is encrypted
 * while the write BIO holds less than TLS_HIGH_WATER bytes, and completes
 * once the lower sends have carried every byte up to the mark the write
 * BIO's counter had when its last record was written.
 *
 * Locking: slots run with the core lock held; every callback of an
 * operation on the lower socket, and the handshake timer, takes it with
 * pier_spi_lock() first.  A context has its own lock (the session cache,
 * the reference count): it may be shared across loops.
 */
#ifndef PIER_TLS_LAYER_H
#define PIER_TLS_LAYER_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "pier.h"
#include "pier/spi.h"
#include "pier/tls.h"
#include "../accepts.h"
#include "../timer.h"

/* ------------------------------------------------------------------ */
/* contexts                                                            */
/* ------------------------------------------------------------------ */

#define TLS_SESSIONS 64     /* client session cache entries per context */
#define TLS_KEY_MAX 320     /* "name@family:port:address" */
#define TLS_TEXT_MAX 256    /* error texts */

typedef struct tls_session {
  char key[TLS_KEY_MAX];
  SSL_SESSION *sess;       /* NULL: a free entry */
  uint64_t stamp;          /* last stored, for replacement */
} tls_session;

struct pier_tls_ctx {
  SSL_CTX *ssl;
  int role;                /* PIER_TLS_CLIENT / PIER_TLS_SERVER */
  int verify;              /* PIER_TLS_VERIFY_* */
  int resumption;
  int ca_loaded;           /* a CA was loaded: no automatic system store */
  int ca_auto;             /* the system store was loaded automatically */
  char *server_name;
  unsigned char *alpn;     /* wire format: length-prefixed names */
  size_t alpn_len;
  void *lock;              /* CRYPTO_RWLOCK: refs, sessions, ca_auto */
  int refs;
  uint64_t clock;
  tls_session sessions[TLS_SESSIONS];
  char err[TLS_TEXT_MAX];
};

/* ------------------------------------------------------------------ */
/* sockets                                                             */
/* ------------------------------------------------------------------ */

enum tls_phase {
  TLS_IDLE = 0,     /* wrapped, not connected */
  TLS_LISTENING,    /* a listener */
  TLS_CONNECTING,   /* client: lower connect in progress */
  TLS_HANDSHAKE,    /* the handshake runs */
  TLS_OPEN,         /* data flows */
  TLS_FAILED        /* the session failed: only close is left */
};

#define TLS_RBUF (32 * 1024)     /* lower receive buffer */
#define TLS_SBUF (64 * 1024)     /* lower send buffer */
#define TLS_HIGH_WATER (64 * 1024) /* encrypted bytes queued before the
                                      next upper send is encrypted */
#define TLS_RECORD 16384         /* plaintext per record */

typedef struct tls_sock tls_sock;


struct tls_sock {
  pier_socket *s, *lower;
  pier_tls_ctx *ctx;
  SSL *ssl;                /* from the start of the handshake */
  BIO *rbio, *wbio;        /* owned by ssl */
  int phase;               /* TLS_* */
  int error;               /* why it failed (TLS_FAILED), for new ops */
  int last_error;          /* pier_tls_error: code ... */
  char text[TLS_TEXT_MAX]; /* ... and OpenSSL's reason */
  int timeout_ms;          /* PIER_SO_HANDSHAKE_TIMEOUT */
  int closing;
  char *server_name;       /* client: SNI and name to verify, or NULL */
  char key[TLS_KEY_MAX];   /* client: session cache key ("" none) */

  /* the lower receive */
  uint8_t *rbuf;
  pier_op rop;
  int rop_busy;
  int eof, rerr;           /* the lower stream ended / failed */
  int close_notify;        /* the peer's close_notify has arrived */
  int rfail;               /* a TLS receive error (sticky) */
  pier_opq recvq;          /* upper receives, in order */

  /* the lower send */
  uint8_t *sbuf;
  pier_op sop;
  int sop_busy;
  size_t sop_len;
  uint64_t sent;           /* encrypted bytes the lower sends carried */
  int werr;                /* a lower send failed (sticky) */
  pier_opq sendq;          /* upper sends not yet wholly encrypted */
  pier_opq sentq;          /* encrypted, waiting for their mark */
  const uint8_t *wptr;     /* a write to repeat after WANT_READ */
  size_t wlen;
  uint8_t *stage;          /* gathers small buffers into one record */
  int wshut;               /* close_notify written: no more sends */
  int shut_wr;             /* shut down lower sends once drained */
  int shut_rdwr;           /* shut down the lower socket once drained */
  int drop;                /* close this socket once drained */

  /* connecting */
  pier_op cop;
  pier_op *uconnect;       /* the upper connect, until it completes */

  /* accepted, before the application has it */
  lacc_conn lc;            /* on its listener's lists (../accepts.h) */

  /* a listener (../accepts.h) */
  lacc_listener lst;
  int lower_listening;     /* wrapped while listening already */

  ltimer *timer;           /* the handshake timer (../timer.h) */
};

extern const pier_provider pier__layer_tls;
/* The listener's steps for ../accepts.c (handshake.c). */
extern const lacc_ops pier__tls_accepts;

static inline tls_sock *tls_of(pier_socket *s) {
  return (tls_sock *)pier_spi_socket_state(s);
}

/* context.c */
void pier__tls_ctx_ref(pier_tls_ctx *ctx);
void pier__tls_ctx_unref(pier_tls_ctx *ctx);
/* Before the first wrap of a client context: the system store when no
   CA was loaded. */
void pier__tls_ctx_prepare(pier_tls_ctx *ctx);
/* The client session cache: the session for key (a reference the
   caller frees with SSL_SESSION_free), or NULL. */
SSL_SESSION *pier__tls_session_get(pier_tls_ctx *ctx, const char *key);
/* OpenSSL's error queue as text into buf (and clear it). */
void pier__tls_err_text(char *buf, size_t cap, const char *fallback);
/* Copy text into a fixed buffer, cut if need be. */
void pier__tls_copy(char *dst, size_t cap, const char *src);

/* handshake.c */
int pier__tls_connect(tls_sock *t, pier_op *op);
/* Start the handshake over a connected lower socket (client or server
   by the context's role). */
int pier__tls_start(tls_sock *t);
void pier__tls_handshake_step(tls_sock *t);
void pier__tls_timer_release(tls_sock *t);
/* PIER_SO_HANDSHAKE_TIMEOUT changed: a handshake under way gets the new
   limit, counted from now. */
int pier__tls_timer_restart(tls_sock *t);
/* The session cannot go on: error for every operation, alert out, then
   the lower socket shut down. */
void pier__tls_fail(tls_sock *t, int error);
/* The PIER_E* code for an OpenSSL failure (SSL_get_error result err),
   with its text recorded on t. */
int pier__tls_map_error(tls_sock *t, int err, int handshake);
/* Record a failure (code and text) on t. */
void pier__tls_note(tls_sock *t, int code, const char *text);

/* io.c */
int pier__tls_recv(tls_sock *t, pier_op *op);
int pier__tls_send(tls_sock *t, pier_op *op);
int pier__tls_disconnect(tls_sock *t, pier_op *op);
int pier__tls_shutdown(tls_sock *t, int how);
/* Move everything that can move: handshake, receives, sends, output,
   and keep one lower receive going while input is needed. */
void pier__tls_pump(tls_sock *t);
/* Complete every upper receive and send with status. */
void pier__tls_fail_ops(tls_sock *t, int status);
/* Cancel one upper receive or send (the cancel slot). */
int pier__tls_cancel_io(tls_sock *t, pier_op *op);

#endif
