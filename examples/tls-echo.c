/* SPDX-License-Identifier: MIT */
/*
 * examples/tls-echo.c - an echo server and client over TLS (pier's TLS
 * layer, <pier/tls.h>, on OpenSSL).
 *
 * What it shows
 *   - A TLS context per role: the server's certificate and key from PEM
 *     files; the client's trust (a CA file, or the system's store) with
 *     the server's name checked and sent as SNI - verification is on by
 *     default.
 *   - pier_tls_wrap over a plain TCP socket: the server wraps its
 *     listener, so pier_accept hands over connections whose handshake is
 *     done (handshakes run in parallel, with a timeout; a client that
 *     fails its handshake never reaches the application); the client
 *     wraps its socket before pier_connect, which completes once the
 *     server has been verified.
 *   - Then the same pier_recv / pier_send as on TCP.  pier_disconnect
 *     sends close_notify; a receive that completes with 0 bytes is the
 *     peer's close_notify.
 *   - Errors as pier_strerror's text plus OpenSSL's reason
 *     (pier_tls_error), e.g.
 *       tls-echo: connect: TLS peer certificate verification failed
 *                 (certificate verify failed: hostname mismatch)
 *   - Blocking input (standard input) fed into a loop from a thread of
 *     its own with pier_loop_post, one chunk at a time.
 *
 * How to run it
 *   tls-echo server -p PORT --cert FILE --key FILE [-h ADDRESS]
 *       serve an echo over TLS on ADDRESS (default 127.0.0.1) until
 *       stopped (Ctrl-C); each connection echoes what it receives, and
 *       answers the client's close_notify with its own.
 *   tls-echo client -h HOST -p PORT [--ca FILE] [--servername NAME]
 *       send standard input, write what comes back to standard output,
 *       and exit when the input has ended and the echo is complete.  The
 *       server's certificate must chain to FILE (default: the system's
 *       store) and name NAME (default HOST; an IP address is checked
 *       against the certificate's addresses).
 *   tls-echo --selftest
 *       a server and a client in this process, with a throwaway key and
 *       certificate made in memory: 1 MiB echoed and verified.
 *   tls-echo --help
 *       the options, their ranges and defaults (-h is the host here)
 *   PIER_BACKEND=name picks the provider.
 *
 *   A certificate to try it with (valid for localhost and 127.0.0.1):
 *     openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
 *       -nodes -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
 *       -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
 *   With OpenSSL's own tools on the other side:
 *     tls-echo server -p 4433 --cert cert.pem --key key.pem
 *     openssl s_client -connect 127.0.0.1:4433 -CAfile cert.pem \
 *       -servername localhost -verify_return_error    (type lines: echoed)
 *   and
 *     openssl s_server -accept 4433 -cert cert.pem -key key.pem -rev
 *     echo hello | tls-echo client -h localhost -p 4433 --ca cert.pem
 *                                                    (prints "olleh")
 *
 * Expected output of --selftest (port and cipher vary):
 *   tls-echo: pier 0.1.0 on provider libevent, listening on 127.0.0.1:40127
 *   tls-echo: connection 1: TLSv1.3 TLS_AES_256_GCM_SHA384 from 127.0.0.1
 *   tls-echo: connection 1: close_notify received, 1048576 bytes echoed
 *   tls-echo: selftest: 1048576 bytes echoed and verified: ok
 * (and on standard error, where the client always reports:
 *   tls-echo: connected, TLSv1.3 TLS_AES_256_GCM_SHA384, server CN=localhost)
 * and exit status 0 (1 on any failure; 2 for a bad command line, with a
 * message naming the argument).
 *
 * Build in the tree (make examples/tls-echo) or against an installed pier:
 *   cc tls-echo.c $(pkg-config --cflags --libs pier libssl) -lpthread \
 *     -o tls-echo
 */
/* getnameinfo and struct addrinfo's fields are POSIX: ask for them even
   under a strict -std=c99. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200112L
#endif
#include <pier.h>
#include <pier/tls.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* threads and a wake-up: pthreads on POSIX, the Win32 API on Windows  */
/* ------------------------------------------------------------------ */
#ifdef _WIN32
#  include <fcntl.h>
#  include <io.h>
#  include <windows.h>
typedef struct { CRITICAL_SECTION cs; CONDITION_VARIABLE cv; } gate_t;
static void gate_init(gate_t *g) {
  InitializeCriticalSection(&g->cs);
  InitializeConditionVariable(&g->cv);
}
static void gate_lock(gate_t *g) { EnterCriticalSection(&g->cs); }
static void gate_unlock(gate_t *g) { LeaveCriticalSection(&g->cs); }
static void gate_wait(gate_t *g) { SleepConditionVariableCS(&g->cv, &g->cs, INFINITE); }
static void gate_signal(gate_t *g) { WakeConditionVariable(&g->cv); }
static DWORD WINAPI reader_main(LPVOID arg);
static int reader_start(void *arg) {
  HANDLE t = CreateThread(NULL, 0, reader_main, arg, 0, NULL);
  if (!t) return -1;
  CloseHandle(t); /* detached: it may be blocked in a read at exit */
  return 0;
}
static long read_stdin(char *buf, size_t n) { return _read(0, buf, (unsigned)n); }
static void binary_stdio(void) {
  _setmode(_fileno(stdin), _O_BINARY);
  _setmode(_fileno(stdout), _O_BINARY);
}
#else
#  include <pthread.h>
#  include <unistd.h>
typedef struct { pthread_mutex_t m; pthread_cond_t c; } gate_t;
static void gate_init(gate_t *g) {
  pthread_mutex_init(&g->m, NULL);
  pthread_cond_init(&g->c, NULL);
}
static void gate_lock(gate_t *g) { pthread_mutex_lock(&g->m); }
static void gate_unlock(gate_t *g) { pthread_mutex_unlock(&g->m); }
static void gate_wait(gate_t *g) { pthread_cond_wait(&g->c, &g->m); }
static void gate_signal(gate_t *g) { pthread_cond_signal(&g->c); }
static void *reader_main(void *arg);
static int reader_start(void *arg) {
  pthread_t t;
  if (pthread_create(&t, NULL, reader_main, arg) != 0) return -1;
  pthread_detach(t); /* it may be blocked in a read at exit */
  return 0;
}
static long read_stdin(char *buf, size_t n) { return (long)read(0, buf, n); }
static void binary_stdio(void) {}
#endif

#define CHUNK 16384
#define SELFTEST_BYTES (1024 * 1024)
#define SELFTEST_MS 20000

/* Print what failed: pier's text, and OpenSSL's reason when the socket
   has one. */
static void report(const char *who, const char *what, pier_socket *s, int rc) {
  char why[256] = "";
  if (s && pier_tls_is_tls(s)) pier_tls_error(s, why, sizeof why);
  fprintf(stderr, "tls-echo: %s%s%s: %s%s%s%s\n", who ? who : "", who ? ": " : "",
          what, pier_strerror(rc), why[0] ? " (" : "", why, why[0] ? ")" : "");
}

/* The layer's own diagnostics (e.g. a client dropped during its
   handshake, with OpenSSL's reason). */
static void on_log(int level, const char *message, void *ctx) {
  (void)ctx;
  if (level <= PIER_LOG_INFO) fprintf(stderr, "tls-echo: %s\n", message);
}

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" */
static const char *session_text(pier_socket *s, char *buf, size_t cap) {
  char cipher[64] = "";
  int v = pier_tls_version(s);
  pier_tls_cipher(s, cipher, sizeof cipher);
  snprintf(buf, cap, "%s %s", v == PIER_TLS_1_3 ? "TLSv1.3"
                              : v == PIER_TLS_1_2 ? "TLSv1.2" : "TLS",
           cipher);
  return buf;
}

/* ------------------------------------------------------------------ */
/* the server                                                          */
/* ------------------------------------------------------------------ */

struct server {
  pier_loop *loop;
  pier_socket *listener;
  pier_op accept_op;
  int next_id, open, closing;
};

/* One connection: receive, send it back, receive ... */
struct conn {
  struct server *sv;
  pier_socket *sock;
  pier_op op;
  int id;
  size_t echoed;
  char buf[CHUNK];
};

static void conn_recv(struct conn *k);

static void conn_closed(pier_socket *s) {
  struct conn *k = pier_socket_get_data(s);
  k->sv->open--;
  free(k);
}

static void conn_end(struct conn *k) {
  pier_close(k->sock, conn_closed);
}

static void on_conn_disconnected(pier_op *op, int status) {
  struct conn *k = op->data;
  if (status) report(NULL, "disconnect", k->sock, status);
  conn_end(k);
}

static void on_conn_sent(pier_op *op, int status) {
  struct conn *k = op->data;
  if (status) {
    report(NULL, "send", k->sock, status);
    conn_end(k);
    return;
  }
  k->echoed += op->bytes;
  conn_recv(k);
}

static void on_conn_recv(pier_op *op, int status) {
  struct conn *k = op->data;
  int rc;
  if (status) {
    report(NULL, "receive", k->sock, status);
    conn_end(k);
    return;
  }
  if (op->bytes == 0) {
    /* The client's close_notify: answer with ours, then close. */
    printf("tls-echo: connection %d: close_notify received, %zu bytes "
           "echoed\n", k->id, k->echoed);
    rc = pier_disconnect(k->sock, &k->op, NULL, 0, on_conn_disconnected);
    if (rc) {
      report(NULL, "pier_disconnect", k->sock, rc);
      conn_end(k);
    }
    return;
  }
  pier_buf b = pier_buf_init(k->buf, op->bytes);
  rc = pier_send(k->sock, &k->op, &b, 1, 0, on_conn_sent);
  if (rc) {
    report(NULL, "pier_send", k->sock, rc);
    conn_end(k);
  }
}

static void conn_recv(struct conn *k) {
  pier_buf b = pier_buf_init(k->buf, sizeof k->buf);
  int rc = pier_recv(k->sock, &k->op, &b, 1, 0, on_conn_recv);
  if (rc) {
    report(NULL, "pier_recv", k->sock, rc);
    conn_end(k);
  }
}

static void start_accept(struct server *sv);

static void on_accept(pier_op *op, int status) {
  struct server *sv = op->data;
  if (status == PIER_ECANCELED || sv->closing) return;
  if (status) {
    report(NULL, "accept", sv->listener, status);
  } else {
    struct conn *k = calloc(1, sizeof *k);
    if (!k) {
      pier_close(op->accepted, NULL);
    } else {
      char text[128], addr[64] = "?";
      struct sockaddr_storage peer;
      size_t len = sizeof peer;
      k->sv = sv;
      k->sock = op->accepted;
      k->id = ++sv->next_id;
      k->op.data = k;
      sv->open++;
      pier_socket_set_data(k->sock, k);
      if (pier_getpeername(k->sock, &peer, &len) == 0)
        getnameinfo((struct sockaddr *)&peer, (socklen_t)len, addr,
                    sizeof addr, NULL, 0, NI_NUMERICHOST);
      printf("tls-echo: connection %d: %s from %s\n", k->id,
             session_text(k->sock, text, sizeof text), addr);
      conn_recv(k);
    }
  }
  start_accept(sv);
}

static void start_accept(struct server *sv) {
  sv->accept_op.data = sv;
  int rc = pier_accept(sv->listener, &sv->accept_op, NULL, NULL, on_accept);
  if (rc) report(NULL, "pier_accept", sv->listener, rc);
}

/* A TLS listener on addr. */
static int server_start(struct server *sv, pier_tls_ctx *ctx,
                        const struct sockaddr *addr, size_t len, int reuse) {
  pier_socket *tcp = NULL;
  const char *proto = addr->sa_family == AF_INET6 ? "tcp6" : "tcp4";
  int rc = pier_socket_open(sv->loop, pier_protocol_find(proto), 0, &tcp);
  if (rc == 0 && reuse) rc = pier_setsockopt(tcp, PIER_SO_REUSEADDR, 1);
  if (rc == 0) rc = pier_bind(tcp, addr, len);
  if (rc == 0) rc = pier_listen(tcp, 0);
  /* The listening socket becomes a TLS listener (it owns tcp now). */
  if (rc == 0) rc = pier_tls_wrap(ctx, tcp, NULL, &sv->listener);
  if (rc) {
    report(NULL, "listen", NULL, rc);
    if (tcp) pier_close(tcp, NULL);
    return rc;
  }
  start_accept(sv);
  return 0;
}

/* ------------------------------------------------------------------ */
/* the client                                                          */
/* ------------------------------------------------------------------ */

struct client {
  pier_loop *loop;
  pier_socket *sock;
  pier_op cop, rop, sop, post;
  char rbuf[CHUNK];
  int input_ended, failed, finished;
  size_t sent, received;
  /* standard input, from the reader thread */
  gate_t gate;
  int want;               /* the reader may read the next chunk */
  char in[CHUNK];
  long in_len;            /* what the reader got (0: the end, < 0 error) */
  /* the selftest's input and check */
  const unsigned char *mem;
  size_t mem_len;
};

static void client_finish(struct client *c, int failed) {
  if (c->finished) return;
  c->finished = 1;
  c->failed |= failed;
  pier_close(c->sock, NULL);
}

static void next_input(struct client *c);

static void on_client_disconnected(pier_op *op, int status) {
  struct client *c = op->data;
  if (status) {
    report(NULL, "disconnect", c->sock, status);
    client_finish(c, 1);
  }
}

static void on_client_sent(pier_op *op, int status) {
  struct client *c = op->data;
  if (status) {
    report(NULL, "send", c->sock, status);
    client_finish(c, 1);
    return;
  }
  c->sent += op->bytes;
  next_input(c);
}

/* Send n bytes at p, or, with n == 0, end the input: close_notify. */
static void client_send(struct client *c, const void *p, size_t n) {
  int rc;
  if (n == 0) {
    c->input_ended = 1;
    rc = pier_disconnect(c->sock, &c->sop, NULL, 0, on_client_disconnected);
  } else {
    pier_buf b = pier_buf_init((void *)p, n);
    rc = pier_send(c->sock, &c->sop, &b, 1, 0, on_client_sent);
  }
  if (rc) {
    report(NULL, n ? "pier_send" : "pier_disconnect", c->sock, rc);
    client_finish(c, 1);
  }
}

/* A chunk of standard input has arrived (posted by the reader). */
static void on_input(pier_op *op, int status) {
  struct client *c = op->data;
  (void)status;
  if (c->finished) return;
  if (c->in_len < 0) {
    fprintf(stderr, "tls-echo: reading standard input failed\n");
    client_finish(c, 1);
    return;
  }
  client_send(c, c->in, (size_t)c->in_len);
}

static void next_input(struct client *c) {
  if (c->mem) { /* the selftest: from memory */
    size_t n = c->mem_len - c->sent < CHUNK ? c->mem_len - c->sent : CHUNK;
    client_send(c, c->mem + c->sent, n);
    return;
  }
  gate_lock(&c->gate);
  c->want = 1;
  gate_signal(&c->gate);
  gate_unlock(&c->gate);
}

/* The reader thread: one chunk each time the loop asks for it. */
#ifdef _WIN32
static DWORD WINAPI reader_main(LPVOID arg)
#else
static void *reader_main(void *arg)
#endif
{
  struct client *c = arg;
  for (;;) {
    gate_lock(&c->gate);
    while (!c->want) gate_wait(&c->gate);
    c->want = 0;
    gate_unlock(&c->gate);
    c->in_len = read_stdin(c->in, sizeof c->in);
    pier_op_init(&c->post);
    c->post.data = c;
    if (pier_loop_post(c->loop, &c->post, on_input) != 0 || c->in_len <= 0)
      break;
  }
  return 0;
}

static void client_recv(struct client *c);

static void on_client_recv(pier_op *op, int status) {
  struct client *c = op->data;
  if (status) {
    report(NULL, "receive", c->sock, status);
    client_finish(c, 1);
    return;
  }
  if (op->bytes == 0) { /* the server's close_notify */
    if (!c->input_ended) fprintf(stderr, "tls-echo: the server ended the session\n");
    client_finish(c, !c->input_ended);
    return;
  }
  if (c->mem) {
    if (c->received + op->bytes > c->mem_len ||
        memcmp(c->rbuf, c->mem + c->received, op->bytes) != 0) {
      fprintf(stderr, "tls-echo: the echo differs after %zu bytes\n", c->received);
      client_finish(c, 1);
      return;
    }
  } else if (fwrite(c->rbuf, 1, op->bytes, stdout) != op->bytes ||
             fflush(stdout) != 0) {
    client_finish(c, 1);
    return;
  }
  c->received += op->bytes;
  client_recv(c);
}

static void client_recv(struct client *c) {
  pier_buf b = pier_buf_init(c->rbuf, sizeof c->rbuf);
  int rc = pier_recv(c->sock, &c->rop, &b, 1, 0, on_client_recv);
  if (rc) {
    report(NULL, "pier_recv", c->sock, rc);
    client_finish(c, 1);
  }
}

static void on_connected(pier_op *op, int status) {
  struct client *c = op->data;
  if (status) {
    report(NULL, "connect", c->sock, status);
    client_finish(c, 1);
    return;
  }
  char text[128], subject[256] = "";
  pier_tls_peer_subject(c->sock, subject, sizeof subject);
  fprintf(stderr, "tls-echo: connected, %s, server %s\n",
          session_text(c->sock, text, sizeof text), subject);
  client_recv(c);
  if (!c->mem && reader_start(c) != 0) {
    fprintf(stderr, "tls-echo: cannot start the reader thread\n");
    client_finish(c, 1);
    return;
  }
  next_input(c);
}

static int client_start(struct client *c, pier_tls_ctx *ctx,
                        const struct sockaddr *to, size_t len,
                        const char *name) {
  pier_socket *tcp = NULL;
  const char *proto = to->sa_family == AF_INET6 ? "tcp6" : "tcp4";
  int rc = pier_socket_open(c->loop, pier_protocol_find(proto), 0, &tcp);
  /* TLS over the TCP socket: connect, handshake and verification are
     one pier_connect. */
  if (rc == 0) rc = pier_tls_wrap(ctx, tcp, name, &c->sock);
  if (rc) {
    report(NULL, "socket", NULL, rc);
    if (tcp) pier_close(tcp, NULL);
    return rc;
  }
  c->cop.data = c->rop.data = c->sop.data = c;
  rc = pier_connect(c->sock, &c->cop, to, len, NULL, NULL, on_connected);
  if (rc) {
    report(NULL, "pier_connect", c->sock, rc);
    pier_close(c->sock, NULL);
  }
  return rc;
}

/* ------------------------------------------------------------------ */
/* the selftest's throwaway certificate                                */
/* ------------------------------------------------------------------ */

/* A P-256 key and a self-signed certificate for localhost / 127.0.0.1,
   valid for a day, as PEM in *cert and *key (free them). */
static int make_cert(char **cert, size_t *cert_len, char **key,
                     size_t *key_len) {
  EVP_PKEY *k = NULL;
  EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
  X509 *x = X509_new();
  int ok = kc && x && EVP_PKEY_keygen_init(kc) == 1 &&
           EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kc, NID_X9_62_prime256v1) == 1 &&
           EVP_PKEY_keygen(kc, &k) == 1;
  if (ok) {
    X509_NAME *n = X509_get_subject_name(x);
    X509V3_CTX v3;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
                                            "DNS:localhost,IP:127.0.0.1");
    ok = e && X509_add_ext(x, e, -1) == 1 && X509_sign(x, k, EVP_sha256()) > 0;
    X509_EXTENSION_free(e);
  }
  BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
  ok = ok && cb && kb && PEM_write_bio_X509(cb, x) == 1 &&
       PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL) == 1;
  if (ok) {
    char *p;
    *cert_len = (size_t)BIO_get_mem_data(cb, &p);
    *cert = malloc(*cert_len);
    if (*cert) memcpy(*cert, p, *cert_len);
    *key_len = (size_t)BIO_get_mem_data(kb, &p);
    *key = malloc(*key_len);
    if (*key) memcpy(*key, p, *key_len);
    ok = *cert && *key;
  }
  BIO_free(cb);
  BIO_free(kb);
  X509_free(x);
  EVP_PKEY_free(k);
  EVP_PKEY_CTX_free(kc);
  return ok ? 0 : -1;
}

static void on_selftest_deadline(pier_timer *t) {
  fprintf(stderr, "tls-echo: selftest did not finish in %d ms\n", SELFTEST_MS);
  *(int *)t->data = 1;
  pier_loop_stop(t->pier__t.loop);
}

static int selftest(pier_loop *loop) {
  char *cert = NULL, *key = NULL;
  size_t cert_len = 0, key_len = 0;
  pier_tls_ctx *sctx = NULL, *cctx = NULL;
  static struct server sv;
  static struct client c;
  int rc, timed_out = 0;
  pier_timer deadline;
  if (make_cert(&cert, &cert_len, &key, &key_len) != 0) {
    fprintf(stderr, "tls-echo: cannot make a certificate\n");
    return 1;
  }
  /* The server uses the certificate; the client trusts it (it is its
     own CA) and checks the name "localhost". */
  rc = pier_tls_ctx_new(PIER_TLS_SERVER, &sctx);
  if (rc == 0) rc = pier_tls_ctx_use_cert_mem(sctx, cert, cert_len, key, key_len);
  if (rc == 0) rc = pier_tls_ctx_new(PIER_TLS_CLIENT, &cctx);
  if (rc == 0) rc = pier_tls_ctx_load_ca_mem(cctx, cert, cert_len);
  free(cert);
  free(key);
  if (rc) {
    report(NULL, "TLS context", NULL, rc);
    return 1;
  }
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sv.loop = loop;
  if (server_start(&sv, sctx, (struct sockaddr *)&addr, sizeof addr, 0) != 0)
    return 1;
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  pier_getsockname(sv.listener, &ss, &len);
  printf("tls-echo: pier %s on provider %s, listening on 127.0.0.1:%u\n",
         pier_version_string(), pier_loop_backend(loop),
         ntohs(((struct sockaddr_in *)&ss)->sin_port));

  unsigned char *data = malloc(SELFTEST_BYTES);
  for (size_t i = 0; data && i < SELFTEST_BYTES; i++)
    data[i] = (unsigned char)(i * 7 + i / 251);
  c.loop = loop;
  c.mem = data;
  c.mem_len = SELFTEST_BYTES;
  pier_timer_init(loop, &deadline);
  deadline.data = &timed_out;
  pier_timer_start(&deadline, SELFTEST_MS, 0, on_selftest_deadline);
  if (!data || client_start(&c, cctx, (struct sockaddr *)&ss, len,
                            "localhost") != 0) {
    c.failed = 1;
  } else {
    while (!c.finished && !timed_out) pier_loop_run(loop, PIER_RUN_ONCE);
  }
  /* The client is done: the server's connection closes too, then the
     listener. */
  while (sv.open > 0 && !timed_out) pier_loop_run(loop, PIER_RUN_ONCE);
  sv.closing = 1;
  pier_close(sv.listener, NULL);
  pier_timer_stop(&deadline);
  pier_loop_run(loop, PIER_RUN_DEFAULT);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  free(data);
  int ok = !c.failed && !timed_out && c.sent == SELFTEST_BYTES &&
           c.received == SELFTEST_BYTES;
  printf("tls-echo: selftest: %zu bytes echoed and verified: %s\n",
         c.received, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* A usage error: name the argument and what is wrong; exit status 2. */
static void usage_error(const char *arg, const char *why) {
  fprintf(stderr, "tls-echo: %s: %s (tls-echo --help lists the options)\n", arg,
          why);
  exit(2);
}

/* The value after option argv[*i]; a usage error when there is none. */
static const char *value(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) usage_error(argv[*i], "needs a value");
  return argv[++*i];
}

/* S, the value of option OPT, as a whole number from LO to HI: digits
   only (no sign, spaces or trailing text), else a usage error. */
static long number(const char *opt, const char *s, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s < '0' || *s > '9' || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "tls-echo: %s %s: expected a whole number from %ld to %ld\n",
            opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *to) {
  fprintf(to,
    "usage: tls-echo server -p PORT --cert FILE --key FILE [-h ADDRESS]\n"
    "       tls-echo client -h HOST -p PORT [--ca FILE] [--servername NAME]\n"
    "       tls-echo --selftest | --help\n"
    "server: an echo over TLS, until stopped.\n"
    "  -p PORT            the port to listen on, 1 to 65535; required\n"
    "  --cert FILE        the certificate (PEM); required\n"
    "  --key FILE         its private key (PEM); required\n"
    "  -h ADDRESS         the address to listen on; default 127.0.0.1\n"
    "client: send standard input, write the echo to standard output.\n"
    "  -h HOST            the server's name or address; required\n"
    "  -p PORT            the server's port, 1 to 65535; required\n"
    "  --ca FILE          the CAs to verify the server with (PEM); default: "
    "the\n"
    "                     system's store\n"
    "  --servername NAME  the name the certificate must carry; default: "
    "HOST\n"
    "  --selftest         a server and a client in this process, 1 MiB "
    "echoed\n"
    "  --help             this text\n"
    "Environment: PIER_BACKEND=NAME picks the provider (libevent on POSIX, "
    "iocp on\n"
    "Windows; default: the first one that works here).\n");
}
/* The first address of host:port (pier_resolve, blocking form). */
static int resolve(pier_loop *loop, const char *host, const char *port,
                   struct sockaddr_storage *out, size_t *len) {
  pier_op op;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  pier_op_init(&op);
  int rc = pier_resolve(loop, &op, host, port, &hints, NULL);
  if (rc) {
    fprintf(stderr, "tls-echo: %s: %s\n", host, pier_strerror(rc));
    return rc;
  }
  memcpy(out, op.addrinfo->ai_addr, op.addrinfo->ai_addrlen);
  *len = op.addrinfo->ai_addrlen;
  pier_freeaddrinfo(op.addrinfo);
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = NULL, *host = NULL, *cert = NULL, *key = NULL,
             *ca = NULL, *name = NULL;
  char port[8] = ""; /* checked, then given to pier_resolve as text */
  int self = 0, rc;
  /* -h is the host (or address): only --help for help. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0) { usage(stdout); return 0; }
    if (strcmp(a, "--selftest") == 0) self = 1;
    else if (!mode && (strcmp(a, "server") == 0 || strcmp(a, "client") == 0))
      mode = a;
    else if (strcmp(a, "-h") == 0) host = value(argc, argv, &i);
    else if (strcmp(a, "-p") == 0)
      snprintf(port, sizeof port, "%ld",
               number(a, value(argc, argv, &i), 1, 65535));
    else if (strcmp(a, "--cert") == 0) cert = value(argc, argv, &i);
    else if (strcmp(a, "--key") == 0) key = value(argc, argv, &i);
    else if (strcmp(a, "--ca") == 0) ca = value(argc, argv, &i);
    else if (strcmp(a, "--servername") == 0) name = value(argc, argv, &i);
    else usage_error(a, "unknown option");
  }
  int server = mode && strcmp(mode, "server") == 0;
  if (!self) {
    if (!mode) usage_error("server, client or --selftest", "required");
    if (!port[0]) usage_error("-p PORT", "required");
    if (server && !cert) usage_error("--cert FILE", "required");
    if (server && !key) usage_error("--key FILE", "required");
    if (!server && !host) usage_error("-h HOST", "required");
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* A server reports the clients dropped during their handshake. */
  if (server || self) pier_set_log(on_log, NULL);
  pier_loop *loop = NULL;
  if ((rc = pier_loop_new(NULL, &loop)) != 0) {
    fprintf(stderr, "tls-echo: pier_loop_new: %s\n", pier_strerror(rc));
    return 1;
  }
  if (self) {
    rc = selftest(loop);
    pier_loop_free(loop);
    return rc;
  }

  char why[256];
  pier_tls_ctx *ctx = NULL;
  struct sockaddr_storage addr;
  size_t len = 0;
  rc = pier_tls_ctx_new(server ? PIER_TLS_SERVER : PIER_TLS_CLIENT, &ctx);
  if (rc == 0 && server) rc = pier_tls_ctx_use_cert_file(ctx, cert, key);
  if (rc == 0 && !server && ca) rc = pier_tls_ctx_load_ca_file(ctx, ca);
  if (rc) {
    pier_tls_ctx_error(ctx, why, sizeof why);
    fprintf(stderr, "tls-echo: %s: %s%s%s%s\n", server ? cert : ca,
            pier_strerror(rc), why[0] ? " (" : "", why, why[0] ? ")" : "");
    return 1;
  }
  if (resolve(loop, host ? host : "127.0.0.1", port, &addr, &len) != 0)
    return 1;

  if (server) {
    static struct server sv;
    sv.loop = loop;
    if (server_start(&sv, ctx, (struct sockaddr *)&addr, len, 1) != 0) return 1;
    printf("tls-echo: pier %s on provider %s, serving TLS on %s:%s\n",
           pier_version_string(), pier_loop_backend(loop),
           host ? host : "127.0.0.1", port);
    pier_loop_run(loop, PIER_RUN_DEFAULT); /* until stopped */
    return 0;
  }

  static struct client c;
  binary_stdio();
  c.loop = loop;
  gate_init(&c.gate);
  if (client_start(&c, ctx, (struct sockaddr *)&addr, len,
                   name ? name : host) != 0)
    return 1;
  while (!c.finished) pier_loop_run(loop, PIER_RUN_ONCE);
  /* The socket closes; a post from the reader may still be queued. */
  pier_loop_run(loop, PIER_RUN_NOWAIT);
  pier_tls_ctx_free(ctx);
  return c.failed ? 1 : 0;
}
