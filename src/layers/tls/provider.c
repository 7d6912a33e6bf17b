/* SPDX-License-Identifier: MIT */
/*
 * src/layers/tls/provider.c - the TLS layer's provider table and its
 * public entry points: pier_tls_wrap, open and close over the lower
 * socket, the calls passed down (bind, listen, names, options), the
 * dispatch of operations to handshake.c and io.c, and what a TLS socket
 * tells (include/pier/tls.h section 3).
 *
 * Section map
 *   1. catalog entries
 *   2. the provider's slots
 *   3. the table
 *   4. pier_tls_wrap
 *   5. what a TLS socket tells
 */
#include <string.h>

#include <openssl/x509.h>

#include "tls.h"

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#  define SSL_get1_peer_certificate SSL_get_peer_certificate
#endif

/* ------------------------------------------------------------------ */
/* 1. catalog entries (not registered: a TLS socket needs a context)   */
/* ------------------------------------------------------------------ */

#define TLS_CAPS (PIER_CAP_STREAM | PIER_CAP_GRACEFUL_CLOSE | PIER_CAP_QOS)

static const pier_protocol_info tls_entries[] = {
  { "tls4", "TLS over a TCP/IPv4 stream", AF_INET, SOCK_STREAM, IPPROTO_TCP,
    TLS_CAPS, 0 },
  { "tls6", "TLS over a TCP/IPv6 stream", AF_INET6, SOCK_STREAM, IPPROTO_TCP,
    TLS_CAPS, 0 },
#ifdef AF_UNIX
  { "tls-local", "TLS over a local stream", AF_UNIX, SOCK_STREAM, 0,
    PIER_CAP_STREAM | PIER_CAP_GRACEFUL_CLOSE, 0 },
#endif
};

#define TLS_NENTRIES (sizeof tls_entries / sizeof tls_entries[0])

static int is_entry(const pier_protocol_info *p) {
  for (size_t i = 0; i < TLS_NENTRIES; i++)
    if (p == &tls_entries[i]) return 1;
  return 0;
}

/* ------------------------------------------------------------------ */
/* 2. slots                                                            */
/* ------------------------------------------------------------------ */

static int tls_open(pier_socket *s, const pier_protocol_info *proto,
                    pier_os_socket handle) {
  tls_sock *t = tls_of(s);
  pier_socket *lower = pier_spi_lower(s);
  (void)proto;
  if (!lower || handle != PIER_INVALID_SOCKET)
    return pier_spi_bad_arg("pier_spi_layer_open", "%s",
                            !lower ? "the TLS layer needs a lower socket"
                            : "the TLS layer takes no OS handle");
  t->s = s;
  t->lower = lower;
  t->timeout_ms = PIER_HANDSHAKE_TIMEOUT_DEFAULT;
  pier_socket_set_data(lower, t);
  pier_spi_set_handle(s, pier_socket_handle(lower));
  return 0;
}

static void lower_closed(pier_socket *lower) {
  tls_sock *t = pier_socket_get_data(lower);
  pier_loop *loop = pier_socket_loop(t->s);
  pier_spi_lock(loop);
  /* Every lower operation has been delivered: no OS call can still be
     writing into these buffers or reading from them. */
  pier_spi_free(t->rbuf);
  pier_spi_free(t->sbuf);
  pier_spi_free(t->stage);
  pier_spi_free(t->server_name);
  t->rbuf = t->sbuf = t->stage = NULL;
  t->server_name = NULL;
  if (t->ssl) SSL_free(t->ssl); /* and its BIOs */
  t->ssl = NULL;
  pier__tls_ctx_unref(t->ctx);
  t->ctx = NULL;
  pier__lacc_free(&t->lst);
  pier_spi_closed(t->s);
  pier_spi_unlock(loop);
}

static void tls_close(pier_socket *s) {
  tls_sock *t = tls_of(s);
  t->closing = 1;
  pier__tls_timer_release(t);
  if (t->uconnect) {
    pier_op *op = t->uconnect;
    t->uconnect = NULL;
    pier_spi_complete(op, PIER_ECANCELED);
  }
  pier__tls_fail_ops(t, PIER_ECANCELED);
  if (t->phase == TLS_LISTENING) pier__lacc_close(&t->lst);
  pier__lacc_detach(&t->lc);
  /* Lower operations still pending complete with PIER_ECANCELED first;
     their callbacks see t->closing. */
  pier_close(t->lower, lower_closed);
}

static int tls_bind(pier_socket *s, const struct sockaddr *a, size_t len) {
  return pier_bind(tls_of(s)->lower, a, len);
}

static int tls_listen(pier_socket *s, int backlog) {
  tls_sock *t = tls_of(s);
  if (t->phase != TLS_IDLE && t->phase != TLS_LISTENING) return PIER_EISCONN;
  if (!t->ctx || t->ctx->role != PIER_TLS_SERVER)
    return pier_spi_bad_arg("pier_listen",
                            "s has no server TLS context (pier_tls_ctx_new "
                            "with PIER_TLS_SERVER)");
  int rc = t->lower_listening ? 0 : pier_listen(t->lower, backlog);
  if (rc == 0 && t->phase == TLS_IDLE) {
    t->phase = TLS_LISTENING;
    rc = pier__lacc_listen(&t->lst, s, t->lower, &pier__layer_tls,
                           &pier__tls_accepts, 0);
  }
  return rc;
}

static int tls_shutdown(pier_socket *s, int how) {
  return pier__tls_shutdown(tls_of(s), how);
}

static int tls_sockname(pier_socket *s, int peer, struct sockaddr_storage *a,
                        size_t *len) {
  tls_sock *t = tls_of(s);
  return peer ? pier_getpeername(t->lower, a, len)
              : pier_getsockname(t->lower, a, len);
}

static int tls_getsockopt(pier_socket *s, int level, int name, void *val,
                          size_t *len) {
  tls_sock *t = tls_of(s);
  if (level != PIER_SOL_PROVIDER)
    return pier_getsockopt_raw(t->lower, level, name, val, len);
  if (name == PIER_SPI_OPT_DISCONNECT_DATA) return PIER_ENOPROTOOPT;
  if (*len < sizeof(int))
    return pier_spi_bad_arg("pier_getsockopt_raw",
                            "*len %lu is shorter than an int",
                            (unsigned long)*len);
  int rc = pier__lacc_getopt(&t->lst, name, val);
  if (rc != PIER_ENOPROTOOPT) {
    if (rc == 0) *len = sizeof(int);
    return rc;
  }
  if (name == PIER_SO_HANDSHAKE_TIMEOUT) *(int *)val = t->timeout_ms;
  else if (name == PIER_SPI_OPT_INLINE_SUCCESS) *(int *)val = 0;
  else return PIER_ENOPROTOOPT;
  *len = sizeof(int);
  return 0;
}

static int tls_setsockopt(pier_socket *s, int level, int name, const void *val,
                          size_t len) {
  tls_sock *t = tls_of(s);
  if (level != PIER_SOL_PROVIDER)
    return pier_setsockopt_raw(t->lower, level, name, val, len);
  if (len != sizeof(int))
    return pier_spi_bad_arg("pier_setsockopt_raw", "len %lu is not sizeof(int)",
                            (unsigned long)len);
  int v = *(const int *)val;
  int rc = pier__lacc_setopt(&t->lst, name, v);
  if (rc != PIER_ENOPROTOOPT) return rc;
  if (name == PIER_SO_HANDSHAKE_TIMEOUT) {
    t->timeout_ms = v;
    return pier__tls_timer_restart(t);
  }
  if (name == PIER_SO_PREPOSTED_ACCEPTS || name == PIER_SO_ZERO_READ)
    return pier_setsockopt(t->lower, name, v);
  return PIER_ENOPROTOOPT;
}

static int tls_ioctl(pier_socket *s, int cmd, void *arg) {
  tls_sock *t = tls_of(s);
  if (cmd == PIER_SIOCATMARK) {
    *(int *)arg = 1; /* no urgent data over TLS */
    return 0;
  }
  if (cmd != PIER_FIONREAD)
    return pier_spi_bad_arg("pier_ioctl",
                            "cmd %d is not PIER_FIONREAD or PIER_SIOCATMARK",
                            cmd);
  /* Decrypted bytes ready now (encrypted ones are not known to be data). */
  *(size_t *)arg = t->ssl && t->phase == TLS_OPEN
                       ? (size_t)SSL_pending(t->ssl) : 0;
  return 0;
}

static int tls_submit(pier_socket *s, pier_op *op) {
  tls_sock *t = tls_of(s);
  switch (op->pier__r.type) {
  case PIER_OP_CONNECT: return pier__tls_connect(t, op);
  case PIER_OP_ACCEPT:
    return t->phase == TLS_LISTENING ? pier__lacc_accept(&t->lst, op)
                                     : pier_spi_bad_arg(
                                         "pier_accept", "listener is not listening");
  case PIER_OP_RECV:
  case PIER_OP_RECVFROM: return pier__tls_recv(t, op);
  case PIER_OP_SEND: return pier__tls_send(t, op);
  case PIER_OP_DISCONNECT:
    if (op->pier__r.nbufs && op->pier__r.bufs[0].len) return PIER_EOPNOTSUPP;
    return pier__tls_disconnect(t, op);
  default: return PIER_EOPNOTSUPP;
  }
}

static int tls_cancel(pier_socket *s, pier_op *op) {
  tls_sock *t = tls_of(s);
  switch (op->pier__r.type) {
  case PIER_OP_CONNECT:
    if (t->uconnect != op) return PIER_ENOENT;
    t->uconnect = NULL;
    pier__tls_note(t, PIER_ECANCELED, "the connect was cancelled");
    pier__tls_fail(t, PIER_ECANCELED);
    pier_spi_complete(op, PIER_ECANCELED);
    pier__tls_pump(t);
    return 0;
  case PIER_OP_ACCEPT:
    return pier__lacc_cancel(&t->lst, op);
  default:
    return pier__tls_cancel_io(t, op);
  }
}

/* ------------------------------------------------------------------ */
/* 3. the table                                                        */
/* ------------------------------------------------------------------ */

const pier_provider pier__layer_tls = {
  PIER_SPI_VERSION,
  "tls",
  PIER_PCAP_LAYER | PIER_PCAP_DISCONNECT,
  0,
  sizeof(tls_sock),
  NULL, /* probe, loop_init, loop_free, loop_poll, loop_wake: a layer */
  NULL, /* runs on its lower socket's loop and has none of its own */
  NULL,
  NULL,
  NULL,
  tls_open,
  tls_close,
  tls_bind,
  tls_listen,
  tls_shutdown,
  tls_sockname,
  tls_getsockopt,
  tls_setsockopt,
  tls_ioctl,
  tls_submit,
  tls_cancel,
  NULL, /* execute: the core waits on overlapped ops */
  NULL,
  NULL, /* select_events */
};

/* ------------------------------------------------------------------ */
/* 4. pier_tls_wrap                                                    */
/* ------------------------------------------------------------------ */

static const pier_protocol_info *entry_for(int family) {
  for (size_t i = 0; i < TLS_NENTRIES; i++)
    if (tls_entries[i].family == family) return &tls_entries[i];
  return NULL;
}

/* 1 if lower is listening already. */
static int listening(pier_socket *lower) {
  int v = 0;
  size_t len = sizeof v;
  return pier_getsockopt_raw(lower, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0
             && v != 0;
}

/* 1 if lower is connected. */
static int connected_now(pier_socket *lower) {
  struct sockaddr_storage a;
  size_t len = sizeof a;
  return pier_getpeername(lower, &a, &len) == 0;
}

int pier_tls_wrap(pier_tls_ctx *ctx, pier_socket *lower,
                  const char *server_name, pier_socket **out) {
  if (!ctx || !lower || !out)
    return pier_spi_bad_arg(__func__, "%s is NULL",
                            !ctx ? "ctx" : !lower ? "lower" : "out");
  *out = NULL;
  const pier_protocol_info *lp = pier_socket_protocol(lower);
  if (!lp) return PIER_EBADF;
  if ((lp->caps & PIER_CAP_CONNECTIONLESS) || lp->socktype != SOCK_STREAM)
    return PIER_EOPNOTSUPP;
  const pier_protocol_info *proto = entry_for(lp->family);
  if (!proto) return PIER_EOPNOTSUPP;
  if (server_name && (!*server_name || strlen(server_name) > 255))
    return pier_spi_bad_arg(__func__, "server_name is %s",
                            !*server_name ? "empty" : "longer than 255 bytes");
  int is_listening = listening(lower);
  int is_connected = !is_listening && connected_now(lower);
  if (is_listening && ctx->role != PIER_TLS_SERVER)
    return pier_spi_bad_arg(__func__, "lower is listening but ctx is not a "
                            "PIER_TLS_SERVER context");
  char *name = NULL;
  if (server_name) {
    size_t n = strlen(server_name) + 1;
    if (!(name = pier_spi_malloc(n))) return PIER_ENOMEM;
    memcpy(name, server_name, n);
  }
  pier__tls_ctx_prepare(ctx);
  pier_socket *s = NULL;
  int rc = pier_spi_layer_open(&pier__layer_tls, proto, lower, NULL, &s);
  if (rc) {
    pier_spi_free(name);
    return rc;
  }
  pier_loop *loop = pier_socket_loop(s);
  pier_spi_lock(loop);
  tls_sock *t = tls_of(s);
  pier__tls_ctx_ref(ctx);
  t->ctx = ctx;
  t->server_name = name;
  t->lower_listening = is_listening;
  if (is_connected) {
    /* A failure to start is the session's: its operations report it. */
    rc = pier__tls_start(t);
    if (rc) {
      pier__tls_note(t, rc, pier_strerror(rc));
      pier__tls_fail(t, rc);
    }
    pier__tls_pump(t);
  }
  pier_spi_unlock(loop);
  /* A listening socket: a TLS listener at once (the core records it as
     listening; the lower socket is not asked to listen again). */
  if (is_listening && (rc = pier_listen(s, 0)) != 0) {
    pier_close(s, NULL); /* lower goes with it */
    return rc;
  }
  *out = s;
  return 0;
}

int pier_tls_is_tls(const pier_socket *s) {
  return s && is_entry(pier_socket_protocol(s));
}

/* ------------------------------------------------------------------ */
/* 5. what a TLS socket tells                                          */
/* ------------------------------------------------------------------ */

/* t of a TLS socket with the core lock taken, or NULL. */
static tls_sock *enter(pier_socket *s) {
  if (!pier_tls_is_tls(s)) return NULL;
  pier_spi_lock(pier_socket_loop(s));
  return tls_of(s);
}

static void leave(pier_socket *s) { pier_spi_unlock(pier_socket_loop(s)); }

static int put_text(const char *fn, const char *text, size_t n, char *buf,
                    size_t cap) {
  if (!buf || cap == 0)
    return pier_spi_bad_arg(fn, "%s", !buf ? "buf is NULL" : "cap is 0");
  if (n >= cap) {
    buf[0] = '\0';
    return PIER_EMSGSIZE;
  }
  if (n) memcpy(buf, text, n);
  buf[n] = '\0';
  return (int)n;
}

int pier_tls_error(pier_socket *s, char *buf, size_t cap) {
  tls_sock *t = enter(s);
  if (!t) return pier_spi_bad_arg(__func__, "s is NULL or not a TLS socket");
  int code = t->last_error;
  pier__tls_copy(buf, cap, code ? t->text : "");
  leave(s);
  return code;
}

static int opened(const tls_sock *t) {
  return t->ssl && t->phase == TLS_OPEN;
}

int pier_tls_alpn(pier_socket *s, char *buf, size_t cap) {
  tls_sock *t = enter(s);
  if (!t) return pier_spi_bad_arg(__func__, "s is NULL or not a TLS socket");
  const unsigned char *p = NULL;
  unsigned n = 0;
  if (opened(t)) SSL_get0_alpn_selected(t->ssl, &p, &n);
  int rc = put_text(__func__, (const char *)p, p ? n : 0, buf, cap);
  leave(s);
  return rc;
}

int pier_tls_resumed(pier_socket *s) {
  tls_sock *t = enter(s);
  if (!t) return pier_spi_bad_arg(__func__, "s is NULL or not a TLS socket");
  int r = opened(t) && SSL_session_reused(t->ssl) == 1;
  leave(s);
  return r;
}

int pier_tls_version(pier_socket *s) {
  tls_sock *t = enter(s);
  if (!t) return pier_spi_bad_arg(__func__, "s is NULL or not a TLS socket");
  int v = opened(t) ? SSL_version(t->ssl) : 0;
  leave(s);
  return v;
}

int pier_tls_cipher(pier_socket *s, char *buf, size_t cap) {
  tls_sock *t = enter(s);
  if (!t) return pier_spi_bad_arg(__func__, "s is NULL or not a TLS socket");
  const char *name = opened(t) ? SSL_get_cipher_name(t->ssl) : NULL;
  if (name && strcmp(name, "(NONE)") == 0) name = NULL;
  int rc = put_text(__func__, name ? name : "", name ? strlen(name) : 0, buf,
                    cap);
  leave(s);
  return rc;
}

int pier_tls_peer_subject(pier_socket *s, char *buf, size_t cap) {
  tls_sock *t = enter(s);
  if (!t) return pier_spi_bad_arg(__func__, "s is NULL or not a TLS socket");
  int rc = put_text(__func__, "", 0, buf, cap);
  X509 *peer = opened(t) ? SSL_get1_peer_certificate(t->ssl) : NULL;
  if (peer && rc >= 0) {
    BIO *b = BIO_new(BIO_s_mem());
    if (b && X509_NAME_print_ex(b, X509_get_subject_name(peer), 0,
                                XN_FLAG_RFC2253) >= 0) {
      char *data = NULL;
      long n = BIO_get_mem_data(b, &data);
      rc = put_text(__func__, data, n > 0 ? (size_t)n : 0, buf, cap);
    }
    BIO_free(b);
  }
  X509_free(peer);
  leave(s);
  return rc;
}

void *pier_tls_native(pier_socket *s) {
  tls_sock *t = enter(s);
  if (!t) return NULL;
  void *p = t->ssl;
  leave(s);
  return p;
}
