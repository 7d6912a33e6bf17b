/* SPDX-License-Identifier: MIT */
/*
 * tests/test_tls.c - the TLS layer (include/pier/tls.h): pier client and
 * server over every base provider, 8 MiB each way verified, TLS 1.2 and
 * 1.3, scatter/gather; real peers from the `openssl` command (Linux);
 * certificate verification failures; bad peers (plain text, a truncated
 * record, a close mid-handshake, silence); ALPN; resumption;
 * close_notify.  Certificates and keys are made here, in memory, with
 * OpenSSL's API (written to a temporary directory only for the openssl
 * command); none is committed.
 *
 * Section map
 *   1. certificates
 *   2. contexts, pairs, transfers
 *   3. pier with pier
 *   4. verification
 *   5. bad peers
 *   6. ALPN, resumption, close_notify, wrapping a connected socket
 *   7. the openssl command as the peer (POSIX)
 * Without OpenSSL (configure --without-openssl) the suite is empty.
 */
#ifdef HAVE_CONFIG_H
#  include <config.h>
#endif
#include "helpers.h"

#ifndef PIER_HAVE_OPENSSL

Suite *suite_tls(void) {
  Suite *s = suite_create("tls");
  suite_add_tcase(s, tcase_create("tls"));
  return s;
}

#else /* PIER_HAVE_OPENSSL */

#include <pier/tls.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#ifndef _WIN32
#  include <fcntl.h>
#  include <signal.h>
#  include <sys/stat.h>
#  include <sys/wait.h>
#  include <unistd.h>
#endif

#define MIB (1024 * 1024)
#define BULK (8 * MIB)

/* ------------------------------------------------------------------ */
/* 1. certificates                                                     */
/* ------------------------------------------------------------------ */

/* A key and certificate as PEM text. */
typedef struct pem {
  char *cert, *key;
  size_t cert_len, key_len;
} pem;

/* What the suite uses: a CA, a server for "localhost" / 127.0.0.1 / ::1,
   the same expired, a client, and a CA nobody trusts. */
static struct {
  int made;
  pem ca, server, expired, client, other_ca;
} certs;

static EVP_PKEY *new_key(void) {
  EVP_PKEY *k = NULL;
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(EVP_PKEY_keygen_init(c), 1);
  ck_assert_int_eq(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(c, NID_X9_62_prime256v1), 1);
  ck_assert_int_eq(EVP_PKEY_keygen(c, &k), 1);
  EVP_PKEY_CTX_free(c);
  return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  ck_assert_msg(e != NULL, "extension %s", value);
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

static void to_pem(X509 *x, EVP_PKEY *k, pem *out) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p;
  long n;
  PEM_write_bio_X509(b, x);
  n = BIO_get_mem_data(b, &p);
  out->cert = malloc((size_t)n + 1);
  memcpy(out->cert, p, (size_t)n);
  out->cert[n] = '\0';
  out->cert_len = (size_t)n;
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  n = BIO_get_mem_data(b, &p);
  out->key = malloc((size_t)n + 1);
  memcpy(out->key, p, (size_t)n);
  out->key[n] = '\0';
  out->key_len = (size_t)n;
  BIO_free(b);
}

/*
 * A certificate for cn with key k, signed by issuer/ikey (NULL: self),
 * valid from now + from_days to now + to_days; a CA when ca, else with
 * the subject alternative names san (may be NULL) and extended key usage
 * eku.
 */
static X509 *make_cert(const char *cn, EVP_PKEY *k, X509 *issuer,
                       EVP_PKEY *ikey, int ca, const char *san,
                       const char *eku, long from_days, long to_days) {
  static long serial = 1;
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400L);
  X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400L);
  X509_set_pubkey(x, k);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             (const unsigned char *)"pier tests", -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  X509 *iss = issuer ? issuer : x;
  if (ca) {
    add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, iss, NID_key_usage, "critical,digitalSignature");
    if (eku) add_ext(x, iss, NID_ext_key_usage, eku);
    if (san) add_ext(x, iss, NID_subject_alt_name, san);
  }
  add_ext(x, iss, NID_subject_key_identifier, "hash");
  ck_assert_int_gt(X509_sign(x, ikey ? ikey : k, EVP_sha256()), 0);
  return x;
}

static void make_certs(void) {
  if (certs.made) return;
  const char *san = "DNS:localhost,IP:127.0.0.1,IP:::1";
  EVP_PKEY *cak = new_key(), *sk = new_key(), *ek = new_key(),
           *ck = new_key(), *ok = new_key();
  X509 *ca = make_cert("pier test CA", cak, NULL, NULL, 1, NULL, NULL, -1, 30);
  X509 *srv = make_cert("localhost", sk, ca, cak, 0, san, "serverAuth", -1, 30);
  X509 *exp = make_cert("localhost", ek, ca, cak, 0, san, "serverAuth", -3, -1);
  X509 *cli = make_cert("pier client", ck, ca, cak, 0, NULL, "clientAuth",
                        -1, 30);
  X509 *oca = make_cert("another CA", ok, NULL, NULL, 1, NULL, NULL, -1, 30);
  to_pem(ca, cak, &certs.ca);
  to_pem(srv, sk, &certs.server);
  to_pem(exp, ek, &certs.expired);
  to_pem(cli, ck, &certs.client);
  to_pem(oca, ok, &certs.other_ca);
  X509 *all[] = { ca, srv, exp, cli, oca };
  EVP_PKEY *keys[] = { cak, sk, ek, ck, ok };
  for (int i = 0; i < 5; i++) {
    X509_free(all[i]);
    EVP_PKEY_free(keys[i]);
  }
  certs.made = 1;
}

/* ------------------------------------------------------------------ */
/* 2. contexts, pairs, transfers                                       */
/* ------------------------------------------------------------------ */

typedef struct rec { int count, status; size_t bytes; } rec;

static void rec_cb(pier_op *op, int status) {
  rec *r = op->data;
  r->count++;
  r->status = status;
  r->bytes = op->bytes;
}

typedef struct side { pier_op op; rec r; } side;

static void side_init(side *x) {
  memset(x, 0, sizeof *x);
  x->op.data = &x->r;
}

/* A server context with cert (certs.server unless given). */
static pier_tls_ctx *server_ctx(const pem *cert, int verify) {
  pier_tls_ctx *ctx = NULL;
  make_certs();
  if (!cert) cert = &certs.server;
  T_OK(pier_tls_ctx_new(PIER_TLS_SERVER, &ctx));
  T_OK(pier_tls_ctx_use_cert_mem(ctx, cert->cert, cert->cert_len, cert->key,
                                 cert->key_len));
  if (verify != PIER_TLS_VERIFY_NONE) {
    T_OK(pier_tls_ctx_load_ca_mem(ctx, certs.ca.cert, certs.ca.cert_len));
    T_OK(pier_tls_ctx_set_verify(ctx, verify));
  }
  return ctx;
}

/* A client context trusting ca (certs.ca unless given), with the client
   certificate when with_cert. */
static pier_tls_ctx *client_ctx(const pem *ca, int with_cert) {
  pier_tls_ctx *ctx = NULL;
  make_certs();
  if (!ca) ca = &certs.ca;
  T_OK(pier_tls_ctx_new(PIER_TLS_CLIENT, &ctx));
  T_OK(pier_tls_ctx_load_ca_mem(ctx, ca->cert, ca->cert_len));
  if (with_cert)
    T_OK(pier_tls_ctx_use_cert_mem(ctx, certs.client.cert,
                                   certs.client.cert_len, certs.client.key,
                                   certs.client.key_len));
  return ctx;
}

/* A TLS listener on loopback (tcp4), wrapped while listening. */
static pier_socket *tls_listener(pier_loop *loop, pier_tls_ctx *ctx,
                                 struct sockaddr_storage *addr, size_t *len) {
  pier_socket *l = t_listener(loop, "tcp4", addr, len), *tl = NULL;
  T_OK(pier_tls_wrap(ctx, l, NULL, &tl));
  return tl;
}

/* A TLS client socket (not connected). */
static pier_socket *tls_client(pier_loop *loop, pier_tls_ctx *ctx,
                               const char *name) {
  pier_socket *c = NULL, *tc = NULL;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &c));
  T_OK(pier_tls_wrap(ctx, c, name, &tc));
  return tc;
}

/* Connect a client of cctx to a listener of sctx: both must succeed. */
static void tls_pair(pier_loop *loop, pier_tls_ctx *cctx, pier_tls_ctx *sctx,
                     const char *name, pier_socket **client,
                     pier_socket **server) {
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = tls_listener(loop, sctx, &addr, &len);
  side a, c;
  side_init(&a);
  side_init(&c);
  *client = tls_client(loop, cctx, name);
  T_OK(pier_accept(l, &a.op, NULL, NULL, rec_cb));
  T_OK(pier_connect(*client, &c.op, T_SA(&addr), len, NULL, NULL, rec_cb));
  t_run_until(loop, &c.r.count, 5000);
  T_OK(c.r.status);
  t_run_until(loop, &a.r.count, 5000);
  T_OK(a.r.status);
  *server = a.op.accepted;
  ck_assert_ptr_nonnull(*server);
  ck_assert(pier_tls_is_tls(*server));
  T_OK(pier_close(l, NULL));
}

static void close_all(pier_loop *loop, pier_socket **list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (list[i]) T_OK(pier_close(list[i], NULL));
  t_loop_free(loop);
}

/* One direction of a transfer: total bytes of pattern seed sent with one
   gather send, then pier_disconnect; the other side receives them
   (scatter when asked) and then the end of the stream. */
typedef struct flow {
  pier_socket *s;
  side snd, rcv, disc;
  uint8_t *out;
  size_t total;
  uint64_t seed_out, seed_in;
  int scatter;
  uint8_t *in[3];
  size_t in_len[3];
  size_t got;
  int sent, ended, failed;
  char why[200];
  int *finished;
} flow;

static void flow_recv(flow *f);

static void flow_fail(flow *f, const char *what, int status) {
  if (!f->failed)
    snprintf(f->why, sizeof f->why, "%s: %s (got %zu)", what,
             pier_err_name(status), f->got);
  f->failed = 1;
  (*f->finished)++;
}

static void on_flow_disc(pier_op *op, int status) {
  flow *f = op->data;
  if (status) return flow_fail(f, "disconnect", status);
  f->sent = 1;
  if (f->ended) (*f->finished)++;
}

static void on_flow_send(pier_op *op, int status) {
  flow *f = op->data;
  if (status) return flow_fail(f, "send", status);
  if (op->bytes != f->total) return flow_fail(f, "send: short", 0);
  pier_op_init(&f->disc.op);
  f->disc.op.data = f;
  int rc = pier_disconnect(f->s, &f->disc.op, NULL, 0, on_flow_disc);
  if (rc) flow_fail(f, "pier_disconnect", rc);
}

static void on_flow_recv(pier_op *op, int status) {
  flow *f = op->data;
  if (status) return flow_fail(f, "recv", status);
  if (op->bytes == 0) {
    if (f->got != f->total) return flow_fail(f, "early end of stream", 0);
    f->ended = 1;
    if (f->sent) (*f->finished)++;
    return;
  }
  size_t left = op->bytes;
  for (int i = 0; i < 3 && left; i++) {
    size_t n = left < f->in_len[i] ? left : f->in_len[i];
    size_t bad = t_verify(f->in[i], n, f->seed_in, f->got);
    if (bad != (size_t)-1) return flow_fail(f, "data differs", 0);
    f->got += n;
    left -= n;
  }
  if (f->got > f->total) return flow_fail(f, "too much data", 0);
  flow_recv(f);
}

static void flow_recv(flow *f) {
  pier_buf b[3];
  size_t n = f->scatter ? 3 : 1;
  for (size_t i = 0; i < n; i++) b[i] = pier_buf_init(f->in[i], f->in_len[i]);
  pier_op_init(&f->rcv.op);
  f->rcv.op.data = f;
  int rc = pier_recv(f->s, &f->rcv.op, b, n, 0, on_flow_recv);
  if (rc) flow_fail(f, "pier_recv", rc);
}

static void flow_start(flow *f, pier_socket *s, size_t total, uint64_t out,
                       uint64_t in, int scatter, int *finished) {
  memset(f, 0, sizeof *f);
  f->s = s;
  f->total = total;
  f->seed_out = out;
  f->seed_in = in;
  f->scatter = scatter;
  f->finished = finished;
  f->out = malloc(total);
  t_fill(f->out, total, out, 0);
  static const size_t scat[3] = { 1, 4093, 61000 };
  for (int i = 0; i < 3; i++) {
    f->in_len[i] = scatter ? scat[i] : (i == 0 ? 65536 : 0);
    f->in[i] = malloc(f->in_len[i] ? f->in_len[i] : 1);
  }
  /* Gather: the pattern in four uneven pieces. */
  pier_buf b[4];
  size_t n = 1;
  if (scatter) {
    size_t cut[3] = { 7, total / 3, total / 3 + 1 };
    b[0] = pier_buf_init(f->out, cut[0]);
    b[1] = pier_buf_init(f->out + cut[0], cut[1] - cut[0]);
    b[2] = pier_buf_init(f->out + cut[1], cut[2] - cut[1]);
    b[3] = pier_buf_init(f->out + cut[2], total - cut[2]);
    n = 4;
  } else {
    b[0] = pier_buf_init(f->out, total);
  }
  f->snd.op.data = f;
  T_OK(pier_send(s, &f->snd.op, b, n, 0, on_flow_send));
  flow_recv(f);
}

static void flow_free(flow *f) {
  free(f->out);
  for (int i = 0; i < 3; i++) free(f->in[i]);
}

/* BULK bytes each way between a and b, verified, then close_notify. */
static void both_ways(pier_loop *loop, pier_socket *a, pier_socket *b,
                      int scatter) {
  int finished = 0;
  flow fa, fb;
  flow_start(&fa, a, BULK, 101, 202, scatter, &finished);
  flow_start(&fb, b, BULK, 202, 101, scatter, &finished);
  t_run_until_count(loop, &finished, 2, 60000);
  ck_assert_msg(!fa.failed, "a: %s", fa.why);
  ck_assert_msg(!fb.failed, "b: %s", fb.why);
  ck_assert_uint_eq(fa.got, BULK);
  ck_assert_uint_eq(fb.got, BULK);
  flow_free(&fa);
  flow_free(&fb);
}

/* Exchange one short message from a to b. */
static void hello(pier_loop *loop, pier_socket *a, pier_socket *b) {
  side s, r;
  char msg[] = "hello over tls", buf[64];
  side_init(&s);
  side_init(&r);
  pier_buf sb = pier_buf_init(msg, sizeof msg - 1);
  pier_buf rb = pier_buf_init(buf, sizeof buf);
  T_OK(pier_recv(b, &r.op, &rb, 1, 0, rec_cb));
  T_OK(pier_send(a, &s.op, &sb, 1, 0, rec_cb));
  t_run_until(loop, &r.r.count, 5000);
  T_OK(r.r.status);
  ck_assert_uint_eq(r.r.bytes, sizeof msg - 1);
  ck_assert_mem_eq(buf, msg, sizeof msg - 1);
  t_run_until(loop, &s.r.count, 5000);
  T_OK(s.r.status);
}

/* ------------------------------------------------------------------ */
/* 3. pier with pier                                                   */
/* ------------------------------------------------------------------ */

static const int versions[] = { PIER_TLS_1_3, PIER_TLS_1_2 };

/* 8 MiB each way, TLS 1.3 then 1.2 (the client's maximum). */
START_TEST(bulk_both_ways) {
  int v = versions[_i];
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  T_OK(pier_tls_ctx_set_versions(cctx, PIER_TLS_1_2, v));
  pier_socket *c, *s;
  tls_pair(loop, cctx, sctx, "localhost", &c, &s);
  ck_assert_int_eq(pier_tls_version(c), v);
  ck_assert_int_eq(pier_tls_version(s), v);
  char text[256];
  ck_assert_int_gt(pier_tls_cipher(c, text, sizeof text), 0);
  ck_assert_int_gt(pier_tls_peer_subject(c, text, sizeof text), 0);
  ck_assert_msg(strstr(text, "CN=localhost") != NULL, "subject %s", text);
  ck_assert_int_eq(pier_tls_peer_subject(s, text, sizeof text), 0);
  ck_assert_int_eq(pier_tls_error(c, text, sizeof text), 0);
  both_ways(loop, c, s, 0);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* Gather sends and scatter receives of odd sizes, both versions. */
START_TEST(scatter_gather) {
  int v = versions[_i];
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  T_OK(pier_tls_ctx_set_versions(sctx, PIER_TLS_1_2, v));
  pier_socket *c, *s;
  tls_pair(loop, cctx, sctx, NULL, &c, &s); /* no name: the address */
  ck_assert_int_eq(pier_tls_version(c), v);
  both_ways(loop, c, s, 1);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* Many small sends in a row complete in order, each whole; PEEK and
   WAITALL receives. */
START_TEST(small_sends_peek_waitall) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  pier_socket *c, *s;
  tls_pair(loop, cctx, sctx, "localhost", &c, &s);
  enum { N = 50 };
  side snd[N];
  uint8_t out[N * 10], in[N * 10];
  t_fill(out, sizeof out, 9, 0);
  for (int i = 0; i < N; i++) {
    side_init(&snd[i]);
    pier_buf b = pier_buf_init(out + i * 10, 10);
    T_OK(pier_send(c, &snd[i].op, &b, 1, 0, rec_cb));
  }
  side pk, all;
  side_init(&pk);
  side_init(&all);
  uint8_t peek[5];
  pier_buf pb = pier_buf_init(peek, sizeof peek);
  T_OK(pier_recv(s, &pk.op, &pb, 1, PIER_MSG_PEEK, rec_cb));
  t_run_until(loop, &pk.r.count, 5000);
  T_OK(pk.r.status);
  ck_assert_uint_eq(pk.r.bytes, 5);
  ck_assert_mem_eq(peek, out, 5);
  pier_buf ab = pier_buf_init(in, sizeof in);
  T_OK(pier_recv(s, &all.op, &ab, 1, PIER_MSG_WAITALL, rec_cb));
  t_run_until(loop, &all.r.count, 5000);
  T_OK(all.r.status);
  ck_assert_uint_eq(all.r.bytes, sizeof in);
  ck_assert_mem_eq(in, out, sizeof in);
  for (int i = 0; i < N; i++) {
    t_run_until(loop, &snd[i].r.count, 5000);
    T_OK(snd[i].r.status);
    ck_assert_uint_eq(snd[i].r.bytes, 10);
  }
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *list[] = { c, s };
  close_all(loop, list, 2);
}
END_TEST

/* Closing with operations pending cancels them; a context outlives its
   free while sockets use it, and is busy meanwhile. */
START_TEST(close_cancels_and_context_lives_on) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  pier_socket *c, *s;
  tls_pair(loop, cctx, sctx, "localhost", &c, &s);
  T_ERR(pier_tls_ctx_set_verify(cctx, PIER_TLS_VERIFY_NONE), PIER_EBUSY);
  pier_tls_ctx_free(cctx);
  pier_tls_ctx_free(sctx);
  side r;
  side_init(&r);
  char buf[16];
  pier_buf b = pier_buf_init(buf, sizeof buf);
  T_OK(pier_recv(c, &r.op, &b, 1, 0, rec_cb));
  T_OK(pier_close(c, NULL));
  t_run_until(loop, &r.r.count, 3000);
  T_ERR(r.r.status, PIER_ECANCELED);
  /* The peer sees the end of the stream without close_notify. */
  side_init(&r);
  T_OK(pier_recv(s, &r.op, &b, 1, 0, rec_cb));
  t_run_until(loop, &r.r.count, 3000);
  ck_assert_msg(r.r.status == PIER_ECONNRESET, "status %s",
                pier_err_name(r.r.status));
  pier_socket *all[] = { s };
  close_all(loop, all, 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. verification                                                     */
/* ------------------------------------------------------------------ */

static void on_timer(pier_timer *t) { *(int *)t->data = 1; }

/* Run the loop for ms. */
static void run_for(pier_loop *loop, int ms) {
  pier_timer t;
  int fired = 0;
  T_OK(pier_timer_init(loop, &t));
  t.data = &fired;
  T_OK(pier_timer_start(&t, (uint64_t)ms, 0, on_timer));
  t_run_until(loop, &fired, ms + 5000);
}

/* Run until the listener has recorded a failed handshake; its code. */
static int listener_failure(pier_loop *loop, pier_socket *l, char *text,
                            size_t cap) {
  for (int i = 0; i < 100; i++) {
    int code = pier_tls_error(l, text, cap);
    if (code) return code;
    run_for(loop, 20);
  }
  return 0;
}

/* A server the client must refuse: the connect fails with
   PIER_ETLS_VERIFY and why, no receive gets data, no accept completes. */
typedef struct bad_server {
  const char *name;        /* the client's server name */
  int untrusted;           /* the client trusts another CA */
  int expired;             /* the server's certificate has expired */
  const char *why;         /* in the error text */
} bad_server;

static const bad_server bad_servers[] = {
  { "wrong.example", 0, 0, "hostname mismatch" },
  { "localhost", 1, 0, "unable to get local issuer certificate" },
  { "localhost", 0, 1, "certificate has expired" },
  { "10.9.8.7", 0, 0, "IP address mismatch" },
  { NULL, 1, 0, "unable to get local issuer certificate" },
};

START_TEST(client_refuses_bad_servers) {
  const bad_server *b = &bad_servers[_i];
  pier_loop *loop = t_loop_new();
  make_certs();
  pier_tls_ctx *sctx = server_ctx(b->expired ? &certs.expired : NULL,
                                  PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(b->untrusted ? &certs.other_ca : NULL, 0);
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = tls_listener(loop, sctx, &addr, &len);
  pier_socket *c = tls_client(loop, cctx, b->name);
  side a, k;
  side_init(&a);
  side_init(&k);
  T_OK(pier_accept(l, &a.op, NULL, NULL, rec_cb));
  T_OK(pier_connect(c, &k.op, T_SA(&addr), len, NULL, NULL, rec_cb));
  t_run_until(loop, &k.r.count, 5000);
  T_ERR(k.r.status, PIER_ETLS_VERIFY);
  char text[256];
  T_ERR(pier_tls_error(c, text, sizeof text), PIER_ETLS_VERIFY);
  ck_assert_msg(strstr(text, b->why) != NULL, "error text \"%s\"", text);
  /* No data, now or later. */
  char buf[16];
  pier_buf rb = pier_buf_init(buf, sizeof buf);
  side r;
  side_init(&r);
  T_ERR(pier_recv(c, &r.op, &rb, 1, 0, rec_cb), PIER_ETLS_VERIFY);
  /* The server saw the client's alert; no accept completed. */
  ck_assert_int_ne(listener_failure(loop, l, text, sizeof text), 0);
  ck_assert_int_eq(a.r.count, 0);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, l };
  close_all(loop, all, 2);
}
END_TEST

/* Mutual TLS: a client with a certificate is accepted, and the server
   sees who it is. */
START_TEST(client_certificate_accepted) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_REQUIRE);
  pier_tls_ctx *cctx = client_ctx(NULL, 1);
  pier_socket *c, *s;
  tls_pair(loop, cctx, sctx, "localhost", &c, &s);
  char text[256];
  ck_assert_int_gt(pier_tls_peer_subject(s, text, sizeof text), 0);
  ck_assert_msg(strstr(text, "CN=pier client") != NULL, "subject %s", text);
  hello(loop, c, s);
  hello(loop, s, c);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* A client without the certificate the server requires: the server
   drops it (PIER_ETLS_VERIFY); the client learns it at connect (TLS 1.2:
   PIER_ETLS_HANDSHAKE, the alert does not say why) or, with TLS 1.3, at
   its first receive (PIER_ETLS_VERIFY); no data either way. */
START_TEST(missing_client_certificate) {
  int v = versions[_i];
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_REQUIRE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  T_OK(pier_tls_ctx_set_versions(cctx, PIER_TLS_1_2, v));
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = tls_listener(loop, sctx, &addr, &len);
  pier_socket *c = tls_client(loop, cctx, "localhost");
  side a, k, r;
  side_init(&a);
  side_init(&k);
  side_init(&r);
  T_OK(pier_accept(l, &a.op, NULL, NULL, rec_cb));
  T_OK(pier_connect(c, &k.op, T_SA(&addr), len, NULL, NULL, rec_cb));
  t_run_until(loop, &k.r.count, 5000);
  char text[256], buf[16];
  pier_buf rb = pier_buf_init(buf, sizeof buf);
  if (v == PIER_TLS_1_3) {
    T_OK(k.r.status);
    T_OK(pier_recv(c, &r.op, &rb, 1, 0, rec_cb));
    t_run_until(loop, &r.r.count, 5000);
    T_ERR(r.r.status, PIER_ETLS_VERIFY);
    ck_assert_uint_eq(r.r.bytes, 0);
  } else {
    T_ERR(k.r.status, PIER_ETLS_HANDSHAKE);
  }
  T_ERR(listener_failure(loop, l, text, sizeof text), PIER_ETLS_VERIFY);
  ck_assert_msg(strstr(text, "certificate") != NULL, "text \"%s\"", text);
  ck_assert_int_eq(a.r.count, 0);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, l };
  close_all(loop, all, 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 5. bad peers                                                        */
/* ------------------------------------------------------------------ */

/* Read a plain socket until the end of the stream or an error. */
static int drain_plain(pier_loop *loop, pier_socket *p) {
  char buf[512];
  for (int i = 0; i < 100; i++) {
    side r;
    side_init(&r);
    pier_buf b = pier_buf_init(buf, sizeof buf);
    T_OK(pier_recv(p, &r.op, &b, 1, 0, rec_cb));
    t_run_until(loop, &r.r.count, 5000);
    if (r.r.status || r.r.bytes == 0) return r.r.status;
  }
  return PIER_EIO;
}

/* A plain TCP socket connected to addr. */
static pier_socket *plain_client(pier_loop *loop,
                                 const struct sockaddr_storage *addr,
                                 size_t len) {
  pier_socket *p = NULL;
  side k;
  side_init(&k);
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &p));
  T_OK(pier_connect(p, &k.op, T_SA(addr), len, NULL, NULL, rec_cb));
  t_run_until(loop, &k.r.count, 5000);
  T_OK(k.r.status);
  return p;
}

static void plain_send(pier_loop *loop, pier_socket *p, const void *data,
                       size_t n) {
  side s;
  side_init(&s);
  pier_buf b = pier_buf_init((void *)data, n);
  T_OK(pier_send(p, &s.op, &b, 1, 0, rec_cb));
  t_run_until(loop, &s.r.count, 5000);
  T_OK(s.r.status);
}

/* The accept a listener has pending completes with a good client. */
static void good_client_served(pier_loop *loop, pier_tls_ctx *cctx,
                               const struct sockaddr_storage *addr,
                               size_t len, side *a, pier_socket **c) {
  side k;
  side_init(&k);
  *c = tls_client(loop, cctx, "localhost");
  T_OK(pier_connect(*c, &k.op, T_SA(addr), len, NULL, NULL, rec_cb));
  t_run_until(loop, &k.r.count, 5000);
  T_OK(k.r.status);
  t_run_until(loop, &a->r.count, 5000);
  T_OK(a->r.status);
  hello(loop, *c, a->op.accepted);
  hello(loop, a->op.accepted, *c);
}

/* The first bytes of a TLS ClientHello record, and no more. */
static const uint8_t hello_start[] = { 0x16, 0x03, 0x01, 0x00, 0xa0,
                                       0x01, 0x00, 0x00, 0x9c, 0x03, 0x03 };

/* Clients that are no TLS clients: plain text, a close in the middle of
   the ClientHello, silence past the handshake timeout.  Each is dropped
   with its error while a good client is served. */
START_TEST(server_drops_bad_clients) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = tls_listener(loop, sctx, &addr, &len), *c = NULL;
  T_OK(pier_setsockopt(l, PIER_SO_HANDSHAKE_TIMEOUT, 400));
  int v = 0;
  T_OK(pier_getsockopt(l, PIER_SO_HANDSHAKE_TIMEOUT, &v));
  ck_assert_int_eq(v, 400);
  side a;
  side_init(&a);
  T_OK(pier_accept(l, &a.op, NULL, NULL, rec_cb));
  char text[256];

  /* Plain text instead of a ClientHello. */
  pier_socket *p = plain_client(loop, &addr, len);
  static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  plain_send(loop, p, get, sizeof get - 1);
  drain_plain(loop, p);
  T_ERR(listener_failure(loop, l, text, sizeof text), PIER_ETLS_HANDSHAKE);
  T_OK(pier_close(p, NULL));

  /* A close in the middle of the ClientHello. */
  p = plain_client(loop, &addr, len);
  plain_send(loop, p, hello_start, sizeof hello_start);
  run_for(loop, 50);
  T_OK(pier_close(p, NULL));
  run_for(loop, 100);
  T_ERR(pier_tls_error(l, text, sizeof text), PIER_ETLS_HANDSHAKE);
  ck_assert_msg(strstr(text, "closed") != NULL, "text \"%s\"", text);

  /* Silence: dropped after the timeout, while a good client is served
     meanwhile. */
  uint64_t t0 = t_now_ms();
  p = plain_client(loop, &addr, len);
  good_client_served(loop, cctx, &addr, len, &a, &c);
  ck_assert_int_eq(a.r.count, 1);
  drain_plain(loop, p); /* the server closes it at the timeout */
  uint64_t took = t_now_ms() - t0;
  ck_assert_msg(took >= 350 && took < 5000, "dropped after %d ms", (int)took);
  T_ERR(pier_tls_error(l, text, sizeof text), PIER_ETIMEDOUT);
  /* The accepted socket took the listener's timeout. */
  T_OK(pier_getsockopt(a.op.accepted, PIER_SO_HANDSHAKE_TIMEOUT, &v));
  ck_assert_int_eq(v, 400);
  T_OK(pier_close(p, NULL));

  /* A listener closed with handshakes in progress lets them go. */
  p = plain_client(loop, &addr, len);
  run_for(loop, 50);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, a.op.accepted, l, p };
  close_all(loop, all, 4);
}
END_TEST

/* Servers that are no TLS servers: the client's connect fails. */
typedef struct bad_peer_server {
  pier_socket *l, *conn;
  side a, r, s;
  char buf[64];
  const char *reply;   /* answer to the ClientHello, then close; NULL:
                          close after the first bytes; "" say nothing */
} bad_peer_server;

static void bps_got(pier_op *op, int status) {
  bad_peer_server *b = op->data;
  b->r.r.count++;
  if (status || !b->reply) {
    pier_close(b->conn, NULL);
    b->conn = NULL;
  } else if (*b->reply) {
    pier_op_init(&b->s.op);
    b->s.op.data = &b->s.r;
    pier_buf sb = pier_buf_init((void *)b->reply, strlen(b->reply));
    pier_send(b->conn, &b->s.op, &sb, 1, 0, rec_cb);
  }
}

static void bps_accepted(pier_op *op, int status) {
  bad_peer_server *b = op->data;
  b->a.r.count++;
  if (status) return;
  b->conn = op->accepted;
  pier_op_init(&b->r.op);
  b->r.op.data = b;
  pier_buf rb = pier_buf_init(b->buf, sizeof b->buf);
  pier_recv(b->conn, &b->r.op, &rb, 1, 0, bps_got);
}

static const struct { const char *reply; int want; } bad_peer_cases[] = {
  { "HTTP/1.0 400 Bad Request\r\n\r\n", PIER_ETLS_HANDSHAKE },
  { NULL, PIER_ETLS_HANDSHAKE },
  { "", PIER_ETIMEDOUT },
};

START_TEST(client_fails_against_bad_servers) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  bad_peer_server b;
  memset(&b, 0, sizeof b);
  b.reply = bad_peer_cases[_i].reply;
  struct sockaddr_storage addr;
  size_t len;
  b.l = t_listener(loop, "tcp4", &addr, &len);
  b.a.op.data = &b;
  T_OK(pier_accept(b.l, &b.a.op, NULL, NULL, bps_accepted));
  pier_socket *c = tls_client(loop, cctx, "localhost");
  T_OK(pier_setsockopt(c, PIER_SO_HANDSHAKE_TIMEOUT, 300));
  side k;
  side_init(&k);
  uint64_t t0 = t_now_ms();
  T_OK(pier_connect(c, &k.op, T_SA(&addr), len, NULL, NULL, rec_cb));
  t_run_until(loop, &k.r.count, 5000);
  T_ERR(k.r.status, bad_peer_cases[_i].want);
  if (bad_peer_cases[_i].want == PIER_ETIMEDOUT)
    ck_assert_uint_ge(t_now_ms() - t0, 250);
  char text[256];
  T_ERR(pier_tls_error(c, text, sizeof text), bad_peer_cases[_i].want);
  ck_assert(text[0] != '\0');
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, b.l, b.conn };
  close_all(loop, all, 3);
}
END_TEST

/* A TLS client outside pier (OpenSSL on memory BIOs over a blocking OS
   socket, in a thread) that misbehaves after its handshake. */
enum { RAW_TRUNCATE, RAW_GARBAGE };

typedef struct raw_client {
  pier_os_socket h;
  int mode;
  int done, ok;
  char why[128];
} raw_client;

static int raw_flush(raw_client *r, BIO *w, size_t limit) {
  char buf[4096];
  int n;
  size_t sent = 0;
  while ((n = BIO_read(w, buf, sizeof buf)) > 0) {
    size_t take = (size_t)n;
    if (limit && sent + take > limit) take = limit - sent;
    if (take && t_os_send(r->h, buf, take) != (long)take) return -1;
    sent += take;
  }
  return 0;
}

static void raw_shut_wr(pier_os_socket h) {
#ifdef _WIN32
  shutdown(h, SD_SEND);
#else
  shutdown(h, SHUT_WR);
#endif
}

static void *raw_run(void *arg) {
  raw_client *r = arg;
  SSL_CTX *cx = SSL_CTX_new(TLS_client_method());
  SSL *ssl = SSL_new(cx);
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rb, wb);
  SSL_set_connect_state(ssl);
  char buf[4096];
  for (int i = 0; i < 50; i++) {
    int rc = SSL_do_handshake(ssl);
    if (raw_flush(r, wb, 0)) break;
    if (rc == 1) {
      r->ok = 1;
      break;
    }
    if (SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ) break;
    long n = t_os_recv(r->h, buf, sizeof buf);
    if (n <= 0) break;
    BIO_write(rb, buf, (int)n);
  }
  if (!r->ok) {
    snprintf(r->why, sizeof r->why, "raw client: handshake failed");
  } else if (r->mode == RAW_TRUNCATE) {
    SSL_write(ssl, "0123456789abcdef", 16);
    size_t whole = BIO_ctrl_pending(wb);
    raw_flush(r, wb, whole / 2); /* half a record */
  } else {
    static const uint8_t junk[] = { 0x17, 0x03, 0x03, 0x00, 0x20,
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
    t_os_send(r->h, junk, sizeof junk);
  }
  raw_shut_wr(r->h);
  while (t_os_recv(r->h, buf, sizeof buf) > 0) {
  }
  t_os_close(r->h);
  SSL_free(ssl);
  SSL_CTX_free(cx);
  T_FLAG_SET(&r->done, 1);
  return NULL;
}

/* After the handshake: half a record then the end of the stream
   (PIER_ETLS_PROTOCOL), a record that does not decrypt
   (PIER_ETLS_PROTOCOL); no data reaches the application. */
START_TEST(bad_records_after_the_handshake) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = tls_listener(loop, sctx, &addr, &len);
  side a;
  side_init(&a);
  T_OK(pier_accept(l, &a.op, NULL, NULL, rec_cb));
  raw_client r;
  memset(&r, 0, sizeof r);
  r.mode = _i == 0 ? RAW_TRUNCATE : RAW_GARBAGE;
  r.h = t_os_connect(&addr, len);
  ck_assert_int_eq(t_os_set_rcvtimeo(r.h, 5000), 0);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, raw_run, &r), 0);
  t_run_until(loop, &a.r.count, 5000);
  T_OK(a.r.status);
  pier_socket *s = a.op.accepted;
  char buf[64], text[256];
  side rc;
  side_init(&rc);
  pier_buf b = pier_buf_init(buf, sizeof buf);
  T_OK(pier_recv(s, &rc.op, &b, 1, 0, rec_cb));
  t_run_until(loop, &rc.r.count, 5000);
  T_ERR(rc.r.status, PIER_ETLS_PROTOCOL);
  ck_assert_uint_eq(rc.r.bytes, 0);
  T_ERR(pier_tls_error(s, text, sizeof text), PIER_ETLS_PROTOCOL);
  T_OK(pier_close(s, NULL));
  /* The raw client ends once it sees the close (its flag is atomic). */
  uint64_t end = t_now_ms() + 5000;
  while (!T_FLAG(&r.done) && t_now_ms() < end) {
    pier_loop_run(loop, PIER_RUN_NOWAIT);
    t_sleep_ms(5);
  }
  ck_assert_msg(T_FLAG(&r.done), "the raw client did not end");
  pthread_join(th, NULL);
  ck_assert_msg(r.ok, "%s", r.why);
  pier_tls_ctx_free(sctx);
  pier_socket *all[] = { l };
  close_all(loop, all, 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 6. ALPN, resumption, close_notify, connected sockets                */
/* ------------------------------------------------------------------ */

START_TEST(alpn_negotiation) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  static const char *const srv[] = { "h2", "http/1.1" };
  static const char *const cli[] = { "spdy/1", "http/1.1" };
  static const char *const none[] = { "x-other" };
  T_OK(pier_tls_ctx_set_alpn(sctx, srv, 2));
  T_OK(pier_tls_ctx_set_alpn(cctx, _i == 0 ? cli : none, _i == 0 ? 2 : 1));
  static const char *const empty[] = { "" };
  T_ERR(pier_tls_ctx_set_alpn(cctx, empty, 1), PIER_EINVAL);
  pier_socket *c, *s;
  tls_pair(loop, cctx, sctx, "localhost", &c, &s);
  char p1[32], p2[32];
  if (_i == 0) {
    ck_assert_int_eq(pier_tls_alpn(c, p1, sizeof p1), 8);
    ck_assert_int_eq(pier_tls_alpn(s, p2, sizeof p2), 8);
    ck_assert_str_eq(p1, "http/1.1");
    ck_assert_str_eq(p2, "http/1.1");
    T_ERR(pier_tls_alpn(c, p1, 4), PIER_EMSGSIZE);
  } else {
    ck_assert_int_eq(pier_tls_alpn(c, p1, sizeof p1), 0);
    ck_assert_int_eq(pier_tls_alpn(s, p2, sizeof p2), 0);
  }
  hello(loop, c, s);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* A second connection to the same server resumes the first one's
   session (TLS 1.3 tickets, TLS 1.2 tickets). */
START_TEST(session_resumption) {
  int v = versions[_i];
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  T_OK(pier_tls_ctx_set_versions(cctx, PIER_TLS_1_2, v));
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = tls_listener(loop, sctx, &addr, &len);
  pier_socket *c[2], *s[2];
  for (int i = 0; i < 2; i++) {
    side a, k;
    side_init(&a);
    side_init(&k);
    c[i] = tls_client(loop, cctx, "localhost");
    T_OK(pier_accept(l, &a.op, NULL, NULL, rec_cb));
    T_OK(pier_connect(c[i], &k.op, T_SA(&addr), len, NULL, NULL, rec_cb));
    t_run_until(loop, &k.r.count, 5000);
    T_OK(k.r.status);
    t_run_until(loop, &a.r.count, 5000);
    T_OK(a.r.status);
    s[i] = a.op.accepted;
    /* The client reads: TLS 1.3 tickets arrive before the data. */
    hello(loop, s[i], c[i]);
    ck_assert_int_eq(pier_tls_version(c[i]), v);
    ck_assert_int_eq(pier_tls_resumed(c[i]), i > 0);
    ck_assert_int_eq(pier_tls_resumed(s[i]), i > 0);
  }
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  T_ERR(pier_tls_ctx_set_resumption(cctx, 0), PIER_EBUSY);
  pier_socket *all[] = { c[0], s[0], c[1], s[1], l };
  close_all(loop, all, 5);
}
END_TEST

/* pier_disconnect sends close_notify after the data before it: the peer
   reads the data, then 0 bytes; the other direction goes on. */
START_TEST(disconnect_sends_close_notify) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  pier_socket *c, *s;
  tls_pair(loop, cctx, sctx, "localhost", &c, &s);
  side snd, d, r;
  side_init(&snd);
  side_init(&d);
  char msg[] = "last words", buf[64];
  pier_buf sb = pier_buf_init(msg, 10);
  T_OK(pier_send(c, &snd.op, &sb, 1, 0, rec_cb));
  T_OK(pier_disconnect(c, &d.op, NULL, 0, rec_cb));
  T_ERR(pier_send(c, &snd.op, &sb, 1, 0, rec_cb), PIER_EBUSY);
  side more;
  side_init(&more);
  T_ERR(pier_send(c, &more.op, &sb, 1, 0, rec_cb), PIER_ESHUTDOWN);
  T_ERR(pier_disconnect(c, &more.op, "x", 1, rec_cb), PIER_EOPNOTSUPP);
  size_t got = 0;
  for (;;) {
    side_init(&r);
    pier_buf rb = pier_buf_init(buf + got, sizeof buf - got);
    T_OK(pier_recv(s, &r.op, &rb, 1, 0, rec_cb));
    t_run_until(loop, &r.r.count, 5000);
    T_OK(r.r.status);
    if (r.r.bytes == 0) break;
    got += r.r.bytes;
  }
  ck_assert_uint_eq(got, 10);
  ck_assert_mem_eq(buf, msg, 10);
  t_run_until(loop, &d.r.count, 5000);
  T_OK(d.r.status);
  T_OK(snd.r.status);
  hello(loop, s, c);
  /* The server ends its side with pier_shutdown: close_notify too. */
  T_OK(pier_shutdown(s, PIER_SHUT_WR));
  side_init(&r);
  pier_buf rb = pier_buf_init(buf, sizeof buf);
  T_OK(pier_recv(c, &r.op, &rb, 1, 0, rec_cb));
  t_run_until(loop, &r.r.count, 5000);
  T_OK(r.r.status);
  ck_assert_uint_eq(r.r.bytes, 0);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* Wrapping connected sockets (STARTTLS): the handshake starts at once,
   a receive posted meanwhile waits for it, and a zero-byte send
   completes when it is done. */
START_TEST(wrap_connected_sockets) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  pier_socket *pc, *ps, *c, *s;
  t_pair(loop, "tcp4", &pc, &ps);
  T_OK(pier_tls_wrap(cctx, pc, "localhost", &c));
  T_OK(pier_tls_wrap(sctx, ps, NULL, &s));
  ck_assert_str_eq(pier_socket_protocol(c)->name, "tls4");
  side r, z;
  side_init(&r);
  side_init(&z);
  char buf[64], nothing[1];
  pier_buf rb = pier_buf_init(buf, sizeof buf);
  pier_buf zb = pier_buf_init(nothing, 0);
  T_OK(pier_recv(s, &r.op, &rb, 1, 0, rec_cb));
  T_OK(pier_send(c, &z.op, &zb, 1, 0, rec_cb));
  t_run_until(loop, &z.r.count, 5000);
  T_OK(z.r.status);
  ck_assert_int_eq(pier_tls_version(c), PIER_TLS_1_3);
  ck_assert_int_eq(r.r.count, 0);
  side snd;
  side_init(&snd);
  pier_buf sb = pier_buf_init("starttls", 8);
  T_OK(pier_send(c, &snd.op, &sb, 1, 0, rec_cb));
  t_run_until(loop, &r.r.count, 5000);
  T_OK(r.r.status);
  ck_assert_uint_eq(r.r.bytes, 8);
  ck_assert_mem_eq(buf, "starttls", 8);
  hello(loop, s, c);
  /* What cannot be wrapped. */
  pier_socket *u = NULL, *x = NULL;
  T_OK(pier_socket_open(loop, pier_protocol_find("udp4"), 0, &u));
  T_ERR(pier_tls_wrap(cctx, u, NULL, &x), PIER_EOPNOTSUPP);
  T_ERR(pier_tls_wrap(NULL, u, NULL, &x), PIER_EINVAL);
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = t_listener(loop, "tcp4", &addr, &len);
  T_ERR(pier_tls_wrap(cctx, l, NULL, &x), PIER_EINVAL);
  ck_assert(!pier_tls_is_tls(l));
  T_ERR(pier_tls_error(l, buf, sizeof buf), PIER_EINVAL);
  /* An unconnected socket wrapped, then bound and listening as TLS. */
  pier_socket *raw = NULL, *tl = NULL, *k2 = NULL;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &raw));
  T_OK(pier_tls_wrap(sctx, raw, NULL, &tl));
  struct sockaddr_storage lo;
  size_t lolen;
  t_loopback("tcp4", &lo, &lolen);
  T_OK(pier_bind(tl, T_SA(&lo), lolen));
  T_OK(pier_listen(tl, 8));
  len = sizeof addr;
  T_OK(pier_getsockname(tl, &addr, &len));
  side a2;
  side_init(&a2);
  T_OK(pier_accept(tl, &a2.op, NULL, NULL, rec_cb));
  good_client_served(loop, cctx, &addr, len, &a2, &k2);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, s, u, l, tl, k2, a2.op.accepted };
  close_all(loop, all, 7);
}
END_TEST

/* Blocking calls (no callback) on TLS sockets: the core runs them as
   overlapped operations it waits for, running the loop meanwhile. */
START_TEST(blocking_calls) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = tls_listener(loop, sctx, &addr, &len);
  pier_socket *c = tls_client(loop, cctx, "localhost");
  side a;
  side_init(&a);
  T_OK(pier_accept(l, &a.op, NULL, NULL, rec_cb));
  pier_op op;
  pier_op_init(&op);
  T_OK(pier_connect(c, &op, T_SA(&addr), len, NULL, NULL, NULL));
  ck_assert_int_eq(pier_tls_version(c), PIER_TLS_1_3);
  t_run_until(loop, &a.r.count, 5000);
  T_OK(a.r.status);
  pier_socket *s = a.op.accepted;
  side r;
  side_init(&r);
  char buf[32];
  pier_buf rb = pier_buf_init(buf, sizeof buf);
  T_OK(pier_recv(s, &r.op, &rb, 1, 0, rec_cb));
  pier_buf sb = pier_buf_init("blocking", 8);
  T_OK(pier_send(c, &op, &sb, 1, 0, NULL));
  ck_assert_uint_eq(op.bytes, 8);
  t_run_until(loop, &r.r.count, 5000);
  ck_assert_uint_eq(r.r.bytes, 8);
  side w;
  side_init(&w);
  pier_buf wb = pier_buf_init("back", 4);
  T_OK(pier_send(s, &w.op, &wb, 1, 0, rec_cb));
  T_OK(pier_recv(c, &op, &rb, 1, 0, NULL));
  ck_assert_uint_eq(op.bytes, 4);
  ck_assert_mem_eq(buf, "back", 4);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, s, l };
  close_all(loop, all, 3);
}
END_TEST

/* A connected socket wrapped against a silent peer: the handshake times
   out (the limit set after the wrap counts from then), and the receive
   waiting for it fails with PIER_ETIMEDOUT. */
START_TEST(connected_wrap_times_out) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  pier_socket *pc, *ps, *c;
  t_pair(loop, "tcp4", &pc, &ps);
  T_OK(pier_tls_wrap(cctx, pc, "localhost", &c));
  uint64_t t0 = t_now_ms();
  T_OK(pier_setsockopt(c, PIER_SO_HANDSHAKE_TIMEOUT, 200));
  side r;
  side_init(&r);
  char buf[16];
  pier_buf rb = pier_buf_init(buf, sizeof buf);
  T_OK(pier_recv(c, &r.op, &rb, 1, 0, rec_cb));
  t_run_until(loop, &r.r.count, 5000);
  T_ERR(r.r.status, PIER_ETIMEDOUT);
  uint64_t took = t_now_ms() - t0;
  ck_assert_msg(took >= 150 && took < 3000, "timed out after %d ms", (int)took);
  T_ERR(pier_tls_error(c, buf, sizeof buf), PIER_ETIMEDOUT);
  pier_tls_ctx_free(cctx);
  pier_socket *all[] = { c, ps };
  close_all(loop, all, 2);
}
END_TEST

/* Context calls: bad PEM, missing files, bad arguments. */
START_TEST(context_errors) {
  pier_tls_ctx *ctx = NULL;
  char text[256];
  make_certs();
  T_ERR(pier_tls_ctx_new(7, &ctx), PIER_EINVAL);
  T_OK(pier_tls_ctx_new(PIER_TLS_SERVER, &ctx));
  T_ERR(pier_tls_ctx_use_cert_mem(ctx, "junk", 4, "junk", 4), PIER_EINVAL);
  ck_assert_uint_gt(pier_tls_ctx_error(ctx, text, sizeof text), 0);
  /* A key that is not the certificate's. */
  T_ERR(pier_tls_ctx_use_cert_mem(ctx, certs.server.cert, certs.server.cert_len,
                                  certs.client.key, certs.client.key_len),
        PIER_EINVAL);
  T_ERR(pier_tls_ctx_use_cert_file(ctx, "/nonexistent/pier.pem", NULL),
        PIER_ENOENT);
  T_ERR(pier_tls_ctx_load_ca_file(ctx, "/nonexistent/ca.pem"), PIER_ENOENT);
  T_ERR(pier_tls_ctx_load_ca_mem(ctx, "junk", 4), PIER_EINVAL);
  T_ERR(pier_tls_ctx_set_verify(ctx, 9), PIER_EINVAL);
  T_ERR(pier_tls_ctx_set_versions(ctx, PIER_TLS_1_3, PIER_TLS_1_2), PIER_EINVAL);
  T_ERR(pier_tls_ctx_set_versions(ctx, 0x0301, 0), PIER_EINVAL);
  T_ERR(pier_tls_ctx_set_server_name(ctx, "x"), PIER_EINVAL); /* server */
  ck_assert_ptr_nonnull(pier_tls_ctx_native(ctx));
  pier_tls_ctx_free(ctx);
  pier_tls_ctx_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 7. the openssl command as the peer (POSIX)                          */
/* ------------------------------------------------------------------ */

#ifndef _WIN32

/* Is the openssl command there?  Runs `openssl version` once. */
static int have_openssl_cmd(void) {
  static int known = -1;
  if (known >= 0) return known;
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    execlp("openssl", "openssl", "version", (char *)NULL);
    _exit(127);
  }
  int st = 0;
  known = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
          WEXITSTATUS(st) == 0;
  if (!known)
    fprintf(stderr, "tls: no `openssl` command: the interoperability tests "
                    "with openssl s_server / s_client are skipped\n");
  return known;
}

/* The certificates as files, for the openssl command. */
typedef struct certdir {
  char dir[64], ca[96], cert[96], key[96], in[96], out[96], err[96];
} certdir;

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "cannot write %s", path);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

static void certdir_make(certdir *d) {
  make_certs();
  snprintf(d->dir, sizeof d->dir, "/tmp/pier-tls-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(d->dir));
  snprintf(d->ca, sizeof d->ca, "%s/ca.pem", d->dir);
  snprintf(d->cert, sizeof d->cert, "%s/server.pem", d->dir);
  snprintf(d->key, sizeof d->key, "%s/server.key", d->dir);
  snprintf(d->in, sizeof d->in, "%s/in", d->dir);
  snprintf(d->out, sizeof d->out, "%s/out", d->dir);
  snprintf(d->err, sizeof d->err, "%s/err", d->dir);
  write_file(d->ca, certs.ca.cert, certs.ca.cert_len);
  write_file(d->cert, certs.server.cert, certs.server.cert_len);
  write_file(d->key, certs.server.key, certs.server.key_len);
}

static void certdir_remove(certdir *d) {
  const char *files[] = { d->ca, d->cert, d->key, d->in, d->out, d->err };
  for (int i = 0; i < 6; i++) unlink(files[i]);
  rmdir(d->dir);
}

/* Start argv with stdin from in (NULL: /dev/null) and stdout, stderr to
   files. */
static pid_t spawn(char *const argv[], const char *in, const char *out,
                   const char *err) {
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int i = open(in ? in : "/dev/null", O_RDONLY);
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (i < 0 || o < 0 || e < 0) _exit(126);
    dup2(i, 0);
    dup2(o, 1);
    dup2(e, 2);
    setpgid(0, 0);
    execvp(argv[0], argv);
    _exit(127);
  }
  return pid;
}

/* Wait up to ms for pid (running loop meanwhile when given); its exit
   status, or -1 after killing it. */
static int reap(pid_t pid, int ms, pier_loop *loop) {
  uint64_t end = t_now_ms() + (uint64_t)ms;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (t_now_ms() > end) break;
    if (loop) pier_loop_run(loop, PIER_RUN_NOWAIT);
    t_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *n = 0;
    return NULL;
  }
  size_t cap = 1 << 16, len = 0;
  char *b = malloc(cap + 1);
  size_t got;
  while ((got = fread(b + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) b = realloc(b, (cap *= 2) + 1);
  }
  fclose(f);
  b[len] = '\0';
  *n = len;
  return b;
}

/* A free loopback port (bound, read, released). */
static int free_port(void) {
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  int h = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(h, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(getsockname(h, (struct sockaddr *)&a, &alen), 0);
  close(h);
  return ntohs(a.sin_port);
}

/* The 8 MiB for s_server -rev: lines of LINE - 1 letters and a newline;
   it answers each line reversed. */
#define LINE 1024

static void rev_lines(uint8_t *out, uint8_t *expect, size_t total) {
  t_fill(out, total, 77, 0);
  for (size_t at = 0; at < total; at += LINE) {
    for (size_t j = 0; j < LINE - 1; j++)
      out[at + j] = (uint8_t)('a' + out[at + j] % 26);
    out[at + LINE - 1] = '\n';
    for (size_t j = 0; j < LINE - 1; j++)
      expect[at + j] = out[at + LINE - 2 - j];
    expect[at + LINE - 1] = '\n';
  }
}

/* pier's client with `openssl s_server -rev`: 8 MiB of lines out, 8 MiB
   of reversed lines back, verified; TLS 1.3 and 1.2. */
START_TEST(openssl_s_server_peer) {
  if (!have_openssl_cmd()) return;
  int v = versions[_i];
  certdir d;
  certdir_make(&d);
  int port = free_port();
  char accept_arg[32];
  snprintf(accept_arg, sizeof accept_arg, "127.0.0.1:%d", port);
  char *argv[] = { "openssl", "s_server", "-accept", accept_arg, "-cert",
                   d.cert, "-key", d.key, "-rev", "-naccept", "1",
                   v == PIER_TLS_1_3 ? "-tls1_3" : "-tls1_2", NULL };
  pid_t pid = spawn(argv, NULL, d.out, d.err);
  /* Ready once it says ACCEPT. */
  int ready = 0;
  for (int i = 0; i < 500 && !ready; i++) {
    size_t n;
    char *o = slurp(d.out, &n);
    ready = o && strstr(o, "ACCEPT") != NULL;
    free(o);
    if (!ready) t_sleep_ms(10);
  }
  ck_assert_msg(ready, "openssl s_server did not start");

  pier_loop *loop = t_loop_new();
  pier_tls_ctx *cctx = NULL;
  T_OK(pier_tls_ctx_new(PIER_TLS_CLIENT, &cctx));
  T_OK(pier_tls_ctx_load_ca_file(cctx, d.ca));
  pier_socket *c = tls_client(loop, cctx, "localhost");
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((uint16_t)port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  side k, snd;
  side_init(&k);
  side_init(&snd);
  T_OK(pier_connect(c, &k.op, T_SA(&to), sizeof to, NULL, NULL, rec_cb));
  t_run_until(loop, &k.r.count, 5000);
  T_OK(k.r.status);
  ck_assert_int_eq(pier_tls_version(c), v);
  uint8_t *out = malloc(BULK), *expect = malloc(BULK), *in = malloc(65536);
  rev_lines(out, expect, BULK);
  pier_buf sb = pier_buf_init(out, BULK);
  T_OK(pier_send(c, &snd.op, &sb, 1, 0, rec_cb));
  size_t got = 0;
  while (got < BULK) {
    side r;
    side_init(&r);
    pier_buf rb = pier_buf_init(in, 65536);
    T_OK(pier_recv(c, &r.op, &rb, 1, 0, rec_cb));
    t_run_until(loop, &r.r.count, 20000);
    T_OK(r.r.status);
    ck_assert_uint_gt(r.r.bytes, 0);
    ck_assert_uint_le(got + r.r.bytes, BULK);
    ck_assert_msg(memcmp(in, expect + got, r.r.bytes) == 0,
                  "data differs after %zu bytes", got);
    got += r.r.bytes;
  }
  t_run_until(loop, &snd.r.count, 5000);
  T_OK(snd.r.status);
  ck_assert_uint_eq(snd.r.bytes, BULK);
  side dc;
  side_init(&dc);
  T_OK(pier_disconnect(c, &dc.op, NULL, 0, rec_cb));
  t_run_until(loop, &dc.r.count, 5000);
  T_OK(dc.r.status);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
  pier_tls_ctx_free(cctx);
  reap(pid, 5000, NULL);
  free(out);
  free(expect);
  free(in);
  certdir_remove(&d);
}
END_TEST

/* An echo server for s_client: receive, send back, until total bytes
   are back; then close_notify. */
typedef struct echo {
  pier_socket *s;
  side r, w, d;
  uint8_t buf[65536];
  size_t echoed, total;
  int done, failed;
} echo;

static void echo_read(echo *e);

static void echo_disc(pier_op *op, int status) {
  echo *e = op->data;
  e->failed |= status != 0;
  e->done = 1;
}

static void echo_sent(pier_op *op, int status) {
  echo *e = op->data;
  if (status) {
    e->failed = e->done = 1;
    return;
  }
  e->echoed += op->bytes;
  if (e->echoed < e->total) {
    echo_read(e);
    return;
  }
  pier_op_init(&e->d.op);
  e->d.op.data = e;
  if (pier_disconnect(e->s, &e->d.op, NULL, 0, echo_disc)) e->failed = e->done = 1;
}

static void echo_got(pier_op *op, int status) {
  echo *e = op->data;
  if (status || op->bytes == 0) {
    e->failed = e->done = 1;
    return;
  }
  pier_op_init(&e->w.op);
  e->w.op.data = e;
  pier_buf b = pier_buf_init(e->buf, op->bytes);
  if (pier_send(e->s, &e->w.op, &b, 1, 0, echo_sent)) e->failed = e->done = 1;
}

static void echo_read(echo *e) {
  pier_op_init(&e->r.op);
  e->r.op.data = e;
  pier_buf b = pier_buf_init(e->buf, sizeof e->buf);
  if (pier_recv(e->s, &e->r.op, &b, 1, 0, echo_got)) e->failed = e->done = 1;
}

/* pier's server with `openssl s_client`: 8 MiB in from its standard
   input, echoed, 8 MiB out to its standard output, verified; TLS 1.3
   and 1.2. */
START_TEST(openssl_s_client_peer) {
  if (!have_openssl_cmd()) return;
  int v = versions[_i];
  certdir d;
  certdir_make(&d);
  uint8_t *data = malloc(BULK);
  t_fill(data, BULK, 55, 0);
  write_file(d.in, data, BULK);
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = NULL;
  T_OK(pier_tls_ctx_new(PIER_TLS_SERVER, &sctx));
  T_OK(pier_tls_ctx_use_cert_file(sctx, d.cert, d.key));
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = tls_listener(loop, sctx, &addr, &len);
  char connect_arg[32];
  snprintf(connect_arg, sizeof connect_arg, "127.0.0.1:%d",
           ntohs(((struct sockaddr_in *)&addr)->sin_port));
  char *argv[] = { "openssl", "s_client", "-connect", connect_arg,
                   "-CAfile", d.ca, "-servername", "localhost",
                   "-verify_hostname", "localhost", "-verify_return_error",
                   "-quiet", "-nocommands",
                   v == PIER_TLS_1_3 ? "-tls1_3" : "-tls1_2", NULL };
  side a;
  side_init(&a);
  T_OK(pier_accept(l, &a.op, NULL, NULL, rec_cb));
  pid_t pid = spawn(argv, d.in, d.out, d.err);
  t_run_until(loop, &a.r.count, 10000);
  T_OK(a.r.status);
  echo e;
  memset(&e, 0, sizeof e);
  e.s = a.op.accepted;
  e.total = BULK;
  ck_assert_int_eq(pier_tls_version(e.s), v);
  echo_read(&e);
  t_run_until(loop, &e.done, 60000);
  ck_assert(!e.failed);
  int st = reap(pid, 10000, loop);
  size_t n;
  char *got = slurp(d.out, &n), *err = NULL;
  if (st != 0 || n != BULK) err = slurp(d.err, &n);
  ck_assert_msg(st == 0, "s_client exited with %d: %s", st, err ? err : "");
  ck_assert_msg(n == BULK, "s_client wrote %zu bytes: %s", n, err ? err : "");
  ck_assert_uint_eq(t_verify(got, BULK, 55, 0), (size_t)-1);
  free(got);
  free(err);
  free(data);
  pier_tls_ctx_free(sctx);
  pier_socket *all[] = { e.s, l };
  close_all(loop, all, 2);
  certdir_remove(&d);
}
END_TEST

#endif /* !_WIN32 */

/* SUITE */
/* Bad buffers are refused at the call, before OpenSSL sees them: a NULL
   base with a length, and a receive of 0 bytes (tests/test_buffers.c has
   the same rules on tcp4, msg4 and udp4). */
START_TEST(bad_buffers_are_einval_at_the_call) {
  pier_loop *loop = t_loop_new();
  pier_tls_ctx *sctx = server_ctx(NULL, PIER_TLS_VERIFY_NONE);
  pier_tls_ctx *cctx = client_ctx(NULL, 0);
  pier_socket *c, *s;
  tls_pair(loop, cctx, sctx, "localhost", &c, &s);
  side x;
  side_init(&x);
  char real[8];
  pier_buf bad[2] = { pier_buf_init(real, sizeof real),
                      pier_buf_init(NULL, 3) };
  pier_buf zero = pier_buf_init(real, 0);
  T_ERR(pier_send(c, &x.op, bad, 2, 0, rec_cb), PIER_EINVAL);
  T_ERR(pier_recv(s, &x.op, bad, 2, 0, rec_cb), PIER_EINVAL);
  T_ERR(pier_recv(s, &x.op, &zero, 1, 0, rec_cb), PIER_EINVAL);
  ck_assert_int_eq(x.r.count, 0);
  hello(loop, c, s); /* both sides still work */
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
  pier_tls_ctx_free(sctx);
  pier_tls_ctx_free(cctx);
}
END_TEST

Suite *suite_tls(void) {
  Suite *s = suite_create("tls");
  TCase *tc = tcase_create("tls");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, bulk_both_ways, 0, 2);
  tcase_add_loop_test(tc, scatter_gather, 0, 2);
  tcase_add_test(tc, small_sends_peek_waitall);
  tcase_add_test(tc, close_cancels_and_context_lives_on);
  tcase_add_loop_test(tc, client_refuses_bad_servers, 0,
                      (int)(sizeof bad_servers / sizeof bad_servers[0]));
  tcase_add_test(tc, client_certificate_accepted);
  tcase_add_loop_test(tc, missing_client_certificate, 0, 2);
  tcase_add_test(tc, server_drops_bad_clients);
  tcase_add_loop_test(tc, client_fails_against_bad_servers, 0, 3);
  tcase_add_loop_test(tc, bad_records_after_the_handshake, 0, 2);
  tcase_add_loop_test(tc, alpn_negotiation, 0, 2);
  tcase_add_loop_test(tc, session_resumption, 0, 2);
  tcase_add_test(tc, disconnect_sends_close_notify);
  tcase_add_test(tc, wrap_connected_sockets);
  tcase_add_test(tc, context_errors);
  tcase_add_test(tc, bad_buffers_are_einval_at_the_call);
  tcase_add_test(tc, blocking_calls);
  tcase_add_test(tc, connected_wrap_times_out);
#ifndef _WIN32
  tcase_add_loop_test(tc, openssl_s_server_peer, 0, 2);
  tcase_add_loop_test(tc, openssl_s_client_peer, 0, 2);
#else
  /* The openssl command is a Linux program: pier with pier only. */
#endif
  suite_add_tcase(s, tc);
  return s;
}

#endif /* PIER_HAVE_OPENSSL */
