/* SPDX-License-Identifier: MIT */
/*
 * tests/kinds.c - listeners and clients of each kind (kinds.h).  TLS
 * uses one self-signed certificate for "localhost" / 127.0.0.1, made at
 * the first use in the process.
 */
#ifdef HAVE_CONFIG_H
#  include <config.h>
#endif
#include "kinds.h"

#include <string.h>

const char *t_kind_name(int kind) {
  static const char *const names[T_NKINDS] = { "tcp4", "msg4", "tls" };
  return names[kind];
}

#ifndef PIER_HAVE_OPENSSL

int t_kind_skip(int kind) { return kind == T_KIND_TLS; }

static pier_socket *tls_wrap(pier_socket *s, int server) {
  (void)server;
  ck_abort_msg("TLS is not built");
  return s;
}

#else /* PIER_HAVE_OPENSSL */

#include <pier/tls.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

int t_kind_skip(int kind) { (void)kind; return 0; }

static struct {
  char cert[4096], key[4096];
  size_t cert_len, key_len;
} pem;

static size_t bio_text(BIO *b, char *out, size_t cap) {
  char *p;
  long n = BIO_get_mem_data(b, &p);
  ck_assert(n > 0 && (size_t)n < cap);
  memcpy(out, p, (size_t)n);
  BIO_free(b);
  return (size_t)n;
}

static void make_pem(void) {
  if (pem.cert_len) return;
  EVP_PKEY *k = NULL;
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
  ck_assert_int_eq(EVP_PKEY_keygen_init(c), 1);
  ck_assert_int_eq(
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(c, NID_X9_62_prime256v1), 1);
  ck_assert_int_eq(EVP_PKEY_keygen(c, &k), 1);
  EVP_PKEY_CTX_free(c);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -86400L);
  X509_gmtime_adj(X509_getm_notAfter(x), 30 * 86400L);
  X509_set_pubkey(x, k);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
                                          "DNS:localhost,IP:127.0.0.1");
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  ck_assert_int_gt(X509_sign(x, k, EVP_sha256()), 0);
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  pem.cert_len = bio_text(b, pem.cert, sizeof pem.cert);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  pem.key_len = bio_text(b, pem.key, sizeof pem.key);
  X509_free(x);
  EVP_PKEY_free(k);
}

/* s wrapped in TLS: a server (listener) or a client of "localhost". */
static pier_socket *tls_wrap(pier_socket *s, int server) {
  pier_tls_ctx *ctx = NULL;
  pier_socket *t = NULL;
  make_pem();
  T_OK(pier_tls_ctx_new(server ? PIER_TLS_SERVER : PIER_TLS_CLIENT, &ctx));
  if (server)
    T_OK(pier_tls_ctx_use_cert_mem(ctx, pem.cert, pem.cert_len, pem.key,
                                   pem.key_len));
  else
    T_OK(pier_tls_ctx_load_ca_mem(ctx, pem.cert, pem.cert_len));
  T_OK(pier_tls_wrap(ctx, s, server ? NULL : "localhost", &t));
  pier_tls_ctx_free(ctx); /* the socket keeps its reference */
  return t;
}

#endif /* PIER_HAVE_OPENSSL */

pier_socket *t_kind_listener(pier_loop *loop, int kind,
                             struct sockaddr_storage *addr, size_t *len,
                             int backlog) {
  const char *proto = kind == T_KIND_MSG ? "msg4" : "tcp4";
  pier_socket *l = t_listener_backlog(loop, proto, addr, len, backlog);
  return kind == T_KIND_TLS ? tls_wrap(l, 1) : l;
}

pier_socket *t_kind_client(pier_loop *loop, int kind) {
  pier_socket *c = NULL;
  const char *proto = kind == T_KIND_MSG ? "msg4" : "tcp4";
  T_OK(pier_socket_open(loop, pier_protocol_find(proto), 0, &c));
  return kind == T_KIND_TLS ? tls_wrap(c, 0) : c;
}
