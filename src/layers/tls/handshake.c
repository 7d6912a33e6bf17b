/* SPDX-License-Identifier: MIT */
/*
 * src/layers/tls/handshake.c - the TLS handshake: the timer, OpenSSL's
 * failures as PIER_E* codes, the client's connect, the start of a
 * session over a connected socket, and the listener: lower connections
 * accepted eagerly, their handshakes run in parallel, and the finished
 * ones handed to pier_accept in order.
 *
 * Section map
 *   1. the timer
 *   2. failures
 *   3. starting a session; the handshake step
 *   4. client: connect
 *   5. server: handshakes of accepted connections (the listener's side
 *      common to the layers - eager accepts, the order of presentation,
 *      DEFER - is ../accepts.c)
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls.h"

static void server_drop(tls_sock *t, int error);

static tls_sock *listener_of(const lacc_listener *l) {
  return (tls_sock *)(void *)((char *)l - offsetof(tls_sock, lst));
}

/* ------------------------------------------------------------------ */
/* 1. the timer                                                        */
/* ------------------------------------------------------------------ */

static void timed_out(void *owner) {
  tls_sock *t = owner;
  if (t->phase != TLS_CONNECTING && t->phase != TLS_HANDSHAKE) return;
  pier__tls_note(t, PIER_ETIMEDOUT, "the TLS handshake timed out");
  if (t->lc.l) server_drop(t, PIER_ETIMEDOUT);
  else pier__tls_fail(t, PIER_ETIMEDOUT);
  pier__tls_pump(t); /* the alert out, then the close or shutdown */
}

static int timer_start(tls_sock *t) {
  return pier__ltimer_start(&t->timer, pier_socket_loop(t->s),
                            (uint64_t)t->timeout_ms, timed_out, t);
}

int pier__tls_timer_restart(tls_sock *t) {
  if (!t->timer || !t->timer->armed || t->phase != TLS_HANDSHAKE) return 0;
  return timer_start(t);
}

void pier__tls_timer_release(tls_sock *t) { pier__ltimer_release(&t->timer); }

/* ------------------------------------------------------------------ */
/* 2. failures                                                         */
/* ------------------------------------------------------------------ */

void pier__tls_note(tls_sock *t, int code, const char *text) {
  t->last_error = code;
  pier__tls_copy(t->text, sizeof t->text, text);
  /* A connection of a listener: the listener tells it too. */
  if (t->lc.l) {
    tls_sock *l = listener_of(t->lc.l);
    l->last_error = code;
    pier__tls_copy(l->text, sizeof l->text, text);
  }
}

/* Alerts that say the peer refused a certificate (ours, or none). */
static int certificate_alert(int reason) {
  switch (reason - SSL_AD_REASON_OFFSET) {
  case SSL_AD_BAD_CERTIFICATE:
  case SSL_AD_UNSUPPORTED_CERTIFICATE:
  case SSL_AD_CERTIFICATE_REVOKED:
  case SSL_AD_CERTIFICATE_EXPIRED:
  case SSL_AD_CERTIFICATE_UNKNOWN:
  case SSL_AD_UNKNOWN_CA:
#ifdef SSL_AD_CERTIFICATE_REQUIRED
  case SSL_AD_CERTIFICATE_REQUIRED:
#endif
    return 1;
  default:
    return 0;
  }
}

int pier__tls_map_error(tls_sock *t, int err, int handshake) {
  char text[TLS_TEXT_MAX];
  unsigned long e = ERR_peek_error();
  int reason = ERR_GET_REASON(e);
  int lib_ssl = ERR_GET_LIB(e) == ERR_LIB_SSL;
  long vr = t->ssl ? SSL_get_verify_result(t->ssl) : X509_V_OK;
  int code = handshake ? PIER_ETLS_HANDSHAKE : PIER_ETLS_PROTOCOL;
  if (lib_ssl && reason == SSL_R_CERTIFICATE_VERIFY_FAILED) code = PIER_ETLS_VERIFY;
  else if (lib_ssl && reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
    code = PIER_ETLS_VERIFY;
  else if (lib_ssl && certificate_alert(reason)) code = PIER_ETLS_VERIFY;
  pier__tls_err_text(text, sizeof text,
                     err == SSL_ERROR_ZERO_RETURN
                         ? "the peer closed the session during the handshake"
                         : "TLS failure");
  if (code == PIER_ETLS_VERIFY && vr != X509_V_OK) {
    size_t n = strlen(text);
    const char *why = X509_verify_cert_error_string(vr);
    if (n + 2 < sizeof text) {
      text[n] = ':';
      text[n + 1] = ' ';
      pier__tls_copy(text + n + 2, sizeof text - n - 2, why);
    }
  }
  pier__tls_note(t, code, text);
  return code;
}

void pier__tls_fail(tls_sock *t, int error) {
  if (t->phase == TLS_FAILED) return;
  t->phase = TLS_FAILED;
  t->error = error;
  if (t->last_error == 0) pier__tls_note(t, error, pier_strerror(error));
  pier__tls_timer_release(t);
  if (t->uconnect) {
    pier_op *op = t->uconnect;
    t->uconnect = NULL;
    pier_spi_complete(op, error);
  }
  pier__tls_fail_ops(t, error);
  pier_cancel(&t->cop);
  /* An alert OpenSSL wrote goes out first; then the peer learns it: the
     connection is shut down both ways (io.c, when the output is out). */
  t->shut_rdwr = 1;
}

/* ------------------------------------------------------------------ */
/* 3. starting a session                                               */
/* ------------------------------------------------------------------ */

/* The cache key of a client session: the name and the peer's address. */
static void make_key(tls_sock *t, const char *name,
                     const struct sockaddr_storage *peer, size_t plen) {
  static const char hex[] = "0123456789abcdef";
  char *p = t->key, *end = t->key + sizeof t->key - 1;
  if (name) {
    size_t n = strlen(name);
    if (n > 255) n = 255;
    memcpy(p, name, n);
    p += n;
  }
  *p++ = '@';
  const uint8_t *b = (const uint8_t *)peer;
  for (size_t i = 0; i < plen && p + 2 <= end; i++) {
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 15];
  }
  *p = '\0';
}

/* Client: SNI, the name or address to verify, a session to resume. */
static int client_setup(tls_sock *t) {
  const char *name = t->server_name ? t->server_name : t->ctx->server_name;
  struct sockaddr_storage peer;
  size_t plen = sizeof peer;
  memset(&peer, 0, sizeof peer);
  if (pier_getpeername(t->lower, &peer, &plen) != 0) plen = 0;
  X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
  ASN1_OCTET_STRING *ip = name ? a2i_IPADDRESS(name) : NULL;
  if (ip) {
    ASN1_OCTET_STRING_free(ip);
    if (t->ctx->verify != PIER_TLS_VERIFY_NONE &&
        X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1)
      return PIER_EINVAL;
  } else if (name) {
    ERR_clear_error();
    if (SSL_set_tlsext_host_name(t->ssl, name) != 1)
      return pier_spi_bad_arg("TLS client setup", "server name \"%s\" is not "
                              "a host name OpenSSL takes", name);
    X509_VERIFY_PARAM_set_hostflags(param,
                                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (t->ctx->verify != PIER_TLS_VERIFY_NONE &&
        SSL_set1_host(t->ssl, name) != 1)
      return PIER_EINVAL;
  } else if (t->ctx->verify != PIER_TLS_VERIFY_NONE && plen) {
    /* No name: the certificate must name the address connected to. */
    const struct sockaddr *sa = (const struct sockaddr *)&peer;
    if (sa->sa_family == AF_INET) {
      const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
      X509_VERIFY_PARAM_set1_ip(param, (const unsigned char *)&in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
      const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
      X509_VERIFY_PARAM_set1_ip(param, (const unsigned char *)&in6->sin6_addr,
                                16);
    }
  }
  make_key(t, name, &peer, plen);
  SSL_SESSION *sess = pier__tls_session_get(t->ctx, t->key);
  if (sess) {
    SSL_set_session(t->ssl, sess);
    SSL_SESSION_free(sess);
  }
  ERR_clear_error();
  return 0;
}

int pier__tls_start(tls_sock *t) {
  ERR_clear_error();
  t->ssl = SSL_new(t->ctx->ssl);
  BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
  if (!t->ssl || !r || !w) {
    BIO_free(r);
    BIO_free(w);
    ERR_clear_error();
    return PIER_ENOMEM;
  }
  /* An empty read BIO asks for more (WANT_READ); the end of the lower
     stream is handled by the layer (io.c), never by OpenSSL. */
  BIO_set_mem_eof_return(r, -1);
  SSL_set_bio(t->ssl, r, w);
  t->rbio = r;
  t->wbio = w;
  SSL_set_app_data(t->ssl, t);
  int server = t->ctx->role == PIER_TLS_SERVER;
  if (server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    int rc = client_setup(t);
    if (rc) return rc;
  }
  int rc = timer_start(t);
  if (rc) return rc;
  t->phase = TLS_HANDSHAKE;
  return 0;
}

static void handshake_done(tls_sock *t) {
  pier__tls_timer_release(t);
  t->phase = TLS_OPEN;
  if (t->lc.l) {
    pier__lacc_ready(&t->lc);
    return;
  }
  if (t->uconnect) {
    pier_op *op = t->uconnect;
    t->uconnect = NULL;
    pier_spi_complete(op, 0);
  }
}

void pier__tls_handshake_step(tls_sock *t) {
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    handshake_done(t);
    return;
  }
  int err = SSL_get_error(t->ssl, r);
  int code;
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    /* More input will come - unless the peer closed or reset the
       connection in the middle of it, or our part of it could not be
       sent (then the peer never answers: no waiting for the timer). */
    int lower = t->rerr ? t->rerr : t->werr;
    if (!lower && !t->eof) return;
    code = PIER_ETLS_HANDSHAKE;
    if (t->eof && !lower)
      pier__tls_note(t, code, "the peer closed the connection during the "
                              "TLS handshake");
    else if (lower == PIER_ECONNRESET || lower == PIER_ECONNABORTED ||
             lower == PIER_EPIPE)
      pier__tls_note(t, code, "the peer reset the connection during the "
                              "TLS handshake");
    else
      pier__tls_note(t, code = lower, pier_strerror(lower));
  } else {
    code = pier__tls_map_error(t, err, 1);
  }
  pier_spi_log(PIER_LOG_INFO, "tls: handshake failed: %s (%s)",
               pier_strerror(code), t->text);
  if (t->lc.l) server_drop(t, code);
  else pier__tls_fail(t, code);
}

/* ------------------------------------------------------------------ */
/* 4. client: connect                                                  */
/* ------------------------------------------------------------------ */

static void connected(pier_op *cop, int status) {
  tls_sock *t = cop->data;
  pier_loop *loop = pier_socket_loop(t->s);
  pier_spi_lock(loop);
  if (!t->closing && t->phase == TLS_CONNECTING) {
    int rc = status ? status : pier__tls_start(t);
    if (rc) {
      pier__tls_note(t, rc, pier_strerror(rc));
      pier__tls_fail(t, rc);
    }
    pier__tls_pump(t);
  }
  pier_spi_unlock(loop);
}

int pier__tls_connect(tls_sock *t, pier_op *op) {
  switch (t->phase) {
  case TLS_IDLE: break;
  case TLS_CONNECTING:
  case TLS_HANDSHAKE: return PIER_EALREADY;
  case TLS_OPEN: return PIER_EISCONN;
  case TLS_FAILED: return t->error;
  default: return PIER_EINVAL;
  }
  pier_op_init(&t->cop);
  t->cop.data = t;
  /* The QoS is on the lower socket already (the option slots). */
  int rc = pier_connect(t->lower, &t->cop,
                        (const struct sockaddr *)&op->pier__r.addr,
                        op->pier__r.addr_len, NULL, NULL, connected);
  if (rc) return rc;
  t->uconnect = op;
  t->phase = TLS_CONNECTING;
  return 0;
}

/* ------------------------------------------------------------------ */
/* 5. server: handshakes of accepted connections (../accepts.c)        */
/* ------------------------------------------------------------------ */

static tls_sock *conn_of(lacc_conn *c) {
  return (tls_sock *)(void *)((char *)c - offsetof(tls_sock, lc));
}

static lacc_conn *adopt(lacc_listener *ll, pier_socket *up) {
  tls_sock *l = listener_of(ll), *t = tls_of(up);
  pier__tls_ctx_ref(l->ctx);
  t->ctx = l->ctx;
  t->timeout_ms = l->timeout_ms;
  t->lc.s = up;
  return &t->lc;
}

static void start(lacc_conn *c, const uint8_t *first, size_t n) {
  (void)first;
  (void)n; /* the listener takes no first bytes */
  tls_sock *t = conn_of(c);
  int rc = pier__tls_start(t);
  if (rc) server_drop(t, rc);
  pier__tls_pump(t);
}

/* REJECT: the connection closes (its handshake is done: no alert). */
static void reject(lacc_conn *c) { pier_close(c->s, NULL); }

const lacc_ops pier__tls_accepts = { adopt, start, NULL, NULL, reject };

/* A connection whose handshake failed: the application never saw it.
   The alert OpenSSL wrote goes out, then the socket closes (io.c). */
static void server_drop(tls_sock *t, int error) {
  if (t->last_error == 0) pier__tls_note(t, error, pier_strerror(error));
  pier_spi_log(PIER_LOG_INFO, "tls: a connection was dropped: %s (%s)",
               pier_strerror(error), t->text);
  t->phase = TLS_FAILED;
  t->error = error;
  pier__lacc_detach(&t->lc);
  pier__tls_timer_release(t);
  t->drop = 1;
}
