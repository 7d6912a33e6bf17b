/* SPDX-License-Identifier: MIT */
/*
 * src/layers/tls/context.c - TLS contexts (include/pier/tls.h section 1):
 * the SSL_CTX with pier's defaults, certificates and trust, verification,
 * ALPN, versions, the client session cache, and OpenSSL's error text.
 *
 * Section map
 *   1. error text
 *   2. create, reference, free
 *   3. certificates and trust
 *   4. policy: verification, name, ALPN, versions, resumption
 *   5. the session cache
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls.h"

/* ------------------------------------------------------------------ */
/* 1. error text                                                       */
/* ------------------------------------------------------------------ */

void pier__tls_copy(char *dst, size_t cap, const char *src) {
  if (!dst || cap == 0) return;
  size_t n = src ? strlen(src) : 0;
  if (n >= cap) n = cap - 1;
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
}

void pier__tls_err_text(char *buf, size_t cap, const char *fallback) {
  unsigned long e = ERR_get_error(); /* the first: the root cause */
  if (e == 0) {
    pier__tls_copy(buf, cap, fallback);
  } else {
    const char *r = ERR_reason_error_string(e);
    if (r) pier__tls_copy(buf, cap, r);
    else ERR_error_string_n(e, buf, cap);
  }
  ERR_clear_error();
}

static int ctx_fail(const char *fn, pier_tls_ctx *ctx, int code,
                    const char *fallback) {
  pier__tls_err_text(ctx->err, sizeof ctx->err, fallback);
  return code == PIER_EINVAL ? pier_spi_bad_arg(fn, "%s", ctx->err) : code;
}

size_t pier_tls_ctx_error(const pier_tls_ctx *ctx, char *buf, size_t cap) {
  const char *t = ctx ? ctx->err : "";
  pier__tls_copy(buf, cap, t);
  return strlen(t);
}

/* ------------------------------------------------------------------ */
/* 2. create, reference, free                                          */
/* ------------------------------------------------------------------ */

static int new_session(SSL *ssl, SSL_SESSION *sess);

/* PIER_EBUSY while sockets hold the context. */
static int busy(pier_tls_ctx *ctx) {
  CRYPTO_THREAD_write_lock(ctx->lock);
  int b = ctx->refs > 1;
  CRYPTO_THREAD_unlock(ctx->lock);
  return b ? PIER_EBUSY : 0;
}

int pier_tls_ctx_new(int role, pier_tls_ctx **out) {
  if (!out || (role != PIER_TLS_CLIENT && role != PIER_TLS_SERVER))
    return !out ? pier_spi_bad_arg(__func__, "out is NULL")
                : pier_spi_bad_arg(__func__, "role %d is not PIER_TLS_CLIENT "
                                   "or PIER_TLS_SERVER", role);
  *out = NULL;
  if (!OPENSSL_init_ssl(0, NULL)) return PIER_ENOMEM;
  /* Threads pier starts for a loop release OpenSSL's per-thread state as
     they end (static OpenSSL on Windows needs it; harmless elsewhere). */
  pier_spi_thread_exit_hook(OPENSSL_thread_stop);
  pier_tls_ctx *ctx = pier_spi_calloc(1, sizeof *ctx);
  if (!ctx) return PIER_ENOMEM;
  ctx->role = role;
  ctx->refs = 1;
  ctx->resumption = role == PIER_TLS_CLIENT;
  ctx->lock = CRYPTO_THREAD_lock_new();
  ctx->ssl = SSL_CTX_new(role == PIER_TLS_CLIENT ? TLS_client_method()
                                                 : TLS_server_method());
  if (!ctx->lock || !ctx->ssl) {
    if (ctx->ssl) SSL_CTX_free(ctx->ssl);
    if (ctx->lock) CRYPTO_THREAD_lock_free(ctx->lock);
    pier_spi_free(ctx);
    ERR_clear_error();
    return PIER_ENOMEM;
  }
  SSL_CTX *c = ctx->ssl;
  SSL_CTX_set_app_data(c, ctx);
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  /* A write repeated after WANT_READ may come from another buffer (the
     bytes are the same); SSL_read goes past records that carry no data
     (TLS 1.3 tickets) to the data behind them in the read BIO. */
  SSL_CTX_set_mode(c, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_AUTO_RETRY);
  if (role == PIER_TLS_CLIENT) {
    ctx->verify = PIER_TLS_VERIFY_PEER;
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    /* Sessions go to pier's cache, keyed by server (section 5). */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT |
                                          SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, new_session);
  } else {
    ctx->verify = PIER_TLS_VERIFY_NONE;
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    /* Needed for resumption once client certificates are verified. */
    static const unsigned char sid[] = "pier";
    SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
  }
  *out = ctx;
  return 0;
}

void pier__tls_ctx_ref(pier_tls_ctx *ctx) {
  CRYPTO_THREAD_write_lock(ctx->lock);
  ctx->refs++;
  CRYPTO_THREAD_unlock(ctx->lock);
}

void pier__tls_ctx_unref(pier_tls_ctx *ctx) {
  if (!ctx) return;
  CRYPTO_THREAD_write_lock(ctx->lock);
  int last = --ctx->refs == 0;
  CRYPTO_THREAD_unlock(ctx->lock);
  if (!last) return;
  for (size_t i = 0; i < TLS_SESSIONS; i++)
    if (ctx->sessions[i].sess) SSL_SESSION_free(ctx->sessions[i].sess);
  SSL_CTX_free(ctx->ssl);
  CRYPTO_THREAD_lock_free(ctx->lock);
  pier_spi_free(ctx->server_name);
  pier_spi_free(ctx->alpn);
  pier_spi_free(ctx);
}

void pier_tls_ctx_free(pier_tls_ctx *ctx) { pier__tls_ctx_unref(ctx); }

void *pier_tls_ctx_native(pier_tls_ctx *ctx) { return ctx ? ctx->ssl : NULL; }

void pier__tls_ctx_prepare(pier_tls_ctx *ctx) {
  CRYPTO_THREAD_write_lock(ctx->lock);
  if (ctx->role == PIER_TLS_CLIENT && !ctx->ca_loaded && !ctx->ca_auto) {
    ctx->ca_auto = 1;
    SSL_CTX_set_default_verify_paths(ctx->ssl);
    ERR_clear_error();
  }
  CRYPTO_THREAD_unlock(ctx->lock);
}

/* ------------------------------------------------------------------ */
/* 3. certificates and trust                                           */
/* ------------------------------------------------------------------ */

/* PIER_ENOENT when path names nothing, else 0 (OpenSSL then reads it). */
static int exists(const char *path) {
  BIO *b = BIO_new_file(path, "r");
  if (!b) return PIER_ENOENT;
  BIO_free(b);
  return 0;
}

int pier_tls_ctx_use_cert_file(pier_tls_ctx *ctx, const char *chain_file,
                               const char *key_file) {
  if (!ctx || !chain_file)
    return pier_spi_bad_arg(__func__, "%s is NULL",
                            !ctx ? "ctx" : "chain_file");
  int rc = busy(ctx);
  if (rc) return rc;
  if (!key_file) key_file = chain_file;
  ERR_clear_error();
  if (exists(chain_file) || exists(key_file))
    return ctx_fail(__func__, ctx, PIER_ENOENT, "no such file");
  if (SSL_CTX_use_certificate_chain_file(ctx->ssl, chain_file) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx->ssl, key_file, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx->ssl) != 1)
    return ctx_fail(__func__, ctx, PIER_EINVAL, "bad certificate or key");
  ctx->err[0] = '\0';
  return 0;
}

int pier_tls_ctx_use_cert_mem(pier_tls_ctx *ctx, const void *chain,
                              size_t len, const void *key, size_t key_len) {
  if (!ctx || !chain || !len || !key || !key_len || len > INT32_MAX ||
      key_len > INT32_MAX)
    return pier_spi_bad_arg(__func__, "%s", !ctx ? "ctx is NULL"
                            : !chain ? "chain is NULL" : !len ? "len is 0"
                            : !key ? "key is NULL" : !key_len ? "key_len is 0"
                            : "len or key_len is above INT32_MAX");
  int rc = busy(ctx);
  if (rc) return rc;
  ERR_clear_error();
  BIO *b = BIO_new_mem_buf(chain, (int)len);
  X509 *leaf = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
  rc = PIER_EINVAL;
  if (leaf && SSL_CTX_use_certificate(ctx->ssl, leaf) == 1) {
    SSL_CTX_clear_chain_certs(ctx->ssl);
    X509 *ca;
    rc = 0;
    while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
      if (SSL_CTX_add0_chain_cert(ctx->ssl, ca) != 1) {
        X509_free(ca);
        rc = PIER_EINVAL;
        break;
      }
    }
    ERR_clear_error(); /* the end of the PEM data */
  }
  X509_free(leaf);
  BIO_free(b);
  if (rc) return ctx_fail(__func__, ctx, rc, "bad certificate");
  b = BIO_new_mem_buf(key, (int)key_len);
  EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!pk || SSL_CTX_use_PrivateKey(ctx->ssl, pk) != 1 ||
      SSL_CTX_check_private_key(ctx->ssl) != 1) {
    EVP_PKEY_free(pk);
    return ctx_fail(__func__, ctx, PIER_EINVAL, "bad private key");
  }
  EVP_PKEY_free(pk);
  ctx->err[0] = '\0';
  return 0;
}

static int ca_loaded(pier_tls_ctx *ctx) {
  ctx->ca_loaded = 1;
  ctx->err[0] = '\0';
  return 0;
}

int pier_tls_ctx_load_ca_file(pier_tls_ctx *ctx, const char *file) {
  if (!ctx || !file)
    return pier_spi_bad_arg(__func__, "%s is NULL", !ctx ? "ctx" : "file");
  int rc = busy(ctx);
  if (rc) return rc;
  ERR_clear_error();
  if (exists(file)) return ctx_fail(__func__, ctx, PIER_ENOENT, "no such file");
  if (SSL_CTX_load_verify_locations(ctx->ssl, file, NULL) != 1)
    return ctx_fail(__func__, ctx, PIER_EINVAL, "no certificate in the file");
  return ca_loaded(ctx);
}

int pier_tls_ctx_load_ca_dir(pier_tls_ctx *ctx, const char *dir) {
  if (!ctx || !dir)
    return pier_spi_bad_arg(__func__, "%s is NULL", !ctx ? "ctx" : "dir");
  int rc = busy(ctx);
  if (rc) return rc;
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(ctx->ssl, NULL, dir) != 1)
    return ctx_fail(__func__, ctx, PIER_ENOENT, "cannot use the directory");
  return ca_loaded(ctx);
}

int pier_tls_ctx_load_ca_mem(pier_tls_ctx *ctx, const void *pem, size_t len) {
  if (!ctx || !pem || !len || len > INT32_MAX)
    return pier_spi_bad_arg(__func__, "%s", !ctx ? "ctx is NULL"
                            : !pem ? "pem is NULL" : !len ? "len is 0"
                            : "len is above INT32_MAX");
  int rc = busy(ctx);
  if (rc) return rc;
  ERR_clear_error();
  X509_STORE *store = SSL_CTX_get_cert_store(ctx->ssl);
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  int n = 0;
  X509 *x;
  while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    if (X509_STORE_add_cert(store, x) == 1) n++;
    X509_free(x);
  }
  BIO_free(b);
  if (n == 0)
    return ctx_fail(__func__, ctx, PIER_EINVAL, "no certificate in the data");
  ERR_clear_error();
  return ca_loaded(ctx);
}

int pier_tls_ctx_load_ca_system(pier_tls_ctx *ctx) {
  if (!ctx) return pier_spi_bad_arg(__func__, "ctx is NULL");
  int rc = busy(ctx);
  if (rc) return rc;
  ERR_clear_error();
  if (SSL_CTX_set_default_verify_paths(ctx->ssl) != 1)
    return ctx_fail(__func__, ctx, PIER_ENOENT, "no system trust store");
  return ca_loaded(ctx);
}

/* ------------------------------------------------------------------ */
/* 4. policy                                                           */
/* ------------------------------------------------------------------ */

int pier_tls_ctx_set_verify(pier_tls_ctx *ctx, int mode) {
  if (!ctx || mode < PIER_TLS_VERIFY_NONE || mode > PIER_TLS_VERIFY_REQUIRE)
    return !ctx ? pier_spi_bad_arg(__func__, "ctx is NULL")
                : pier_spi_bad_arg(__func__, "mode %d is not a "
                                   "PIER_TLS_VERIFY_* value", mode);
  int rc = busy(ctx);
  if (rc) return rc;
  int flags = SSL_VERIFY_NONE;
  if (mode != PIER_TLS_VERIFY_NONE) flags = SSL_VERIFY_PEER;
  if (mode == PIER_TLS_VERIFY_REQUIRE && ctx->role == PIER_TLS_SERVER)
    flags |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx->ssl, flags, NULL);
  ctx->verify = mode;
  return 0;
}

int pier_tls_ctx_set_server_name(pier_tls_ctx *ctx, const char *name) {
  if (!ctx || ctx->role != PIER_TLS_CLIENT)
    return pier_spi_bad_arg(__func__, "%s", !ctx ? "ctx is NULL"
                            : "ctx is not a PIER_TLS_CLIENT context");
  if (name && (!*name || strlen(name) > 255))
    return pier_spi_bad_arg(__func__, "name is %s",
                            !*name ? "empty" : "longer than 255 bytes");
  int rc = busy(ctx);
  if (rc) return rc;
  char *copy = NULL;
  if (name) {
    size_t n = strlen(name) + 1;
    if (!(copy = pier_spi_malloc(n))) return PIER_ENOMEM;
    memcpy(copy, name, n);
  }
  pier_spi_free(ctx->server_name);
  ctx->server_name = copy;
  return 0;
}

/* Server: the first of its protocols the client offers. */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg) {
  (void)ssl;
  pier_tls_ctx *ctx = arg;
  unsigned char *sel = NULL;
  if (ctx->alpn_len &&
      SSL_select_next_proto(&sel, outlen, ctx->alpn, (unsigned)ctx->alpn_len,
                            in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK; /* go on without ALPN */
}

int pier_tls_ctx_set_alpn(pier_tls_ctx *ctx, const char *const *protos,
                          size_t n) {
  if (!ctx || (n && !protos))
    return pier_spi_bad_arg(__func__, "%s", !ctx ? "ctx is NULL"
                            : "protos is NULL with a non-zero n");
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    size_t l = protos[i] ? strlen(protos[i]) : 0;
    if (l == 0 || l > 255)
      return pier_spi_bad_arg(__func__, "protos[%lu] is %s", (unsigned long)i,
                              l ? "longer than 255 bytes" : "NULL or empty");
    total += 1 + l;
  }
  if (total > 65535)
    return pier_spi_bad_arg(__func__,
                            "the protocol list takes %lu bytes, above 65535",
                            (unsigned long)total);
  int rc = busy(ctx);
  if (rc) return rc;
  unsigned char *wire = NULL;
  if (n) {
    if (!(wire = pier_spi_malloc(total))) return PIER_ENOMEM;
    unsigned char *p = wire;
    for (size_t i = 0; i < n; i++) {
      size_t l = strlen(protos[i]);
      *p++ = (unsigned char)l;
      memcpy(p, protos[i], l);
      p += l;
    }
  }
  if (ctx->role == PIER_TLS_CLIENT) {
    /* 0 is success for this one call of OpenSSL's. */
    if (SSL_CTX_set_alpn_protos(ctx->ssl, wire, (unsigned)total) != 0) {
      pier_spi_free(wire);
      return ctx_fail(__func__, ctx, PIER_ENOMEM, "cannot set ALPN");
    }
  } else {
    SSL_CTX_set_alpn_select_cb(ctx->ssl, n ? alpn_select : NULL, ctx);
  }
  pier_spi_free(ctx->alpn);
  ctx->alpn = wire;
  ctx->alpn_len = total;
  return 0;
}

static int version_ok(int v) {
  return v == PIER_TLS_ANY || v == PIER_TLS_1_2 || v == PIER_TLS_1_3;
}

int pier_tls_ctx_set_versions(pier_tls_ctx *ctx, int min_version,
                              int max_version) {
  if (!ctx || !version_ok(min_version) || !version_ok(max_version))
    return !ctx ? pier_spi_bad_arg(__func__, "ctx is NULL")
                : pier_spi_bad_arg(__func__, "%s_version is not PIER_TLS_ANY, "
                                   "PIER_TLS_1_2 or PIER_TLS_1_3",
                                   !version_ok(min_version) ? "min" : "max");
  if (min_version && max_version && min_version > max_version)
    return pier_spi_bad_arg(__func__, "min_version is above max_version");
  int rc = busy(ctx);
  if (rc) return rc;
  /* Never below TLS 1.2. */
  int lo = min_version ? min_version : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx->ssl, lo) != 1 ||
      SSL_CTX_set_max_proto_version(ctx->ssl, max_version) != 1)
    return ctx_fail(__func__, ctx, PIER_EINVAL, "version not supported");
  return 0;
}

int pier_tls_ctx_set_resumption(pier_tls_ctx *ctx, int on) {
  if (!ctx) return pier_spi_bad_arg(__func__, "ctx is NULL");
  int rc = busy(ctx);
  if (rc) return rc;
  if (ctx->role == PIER_TLS_SERVER) return 0; /* servers always offer it */
  ctx->resumption = on != 0;
  if (!on) {
    for (size_t i = 0; i < TLS_SESSIONS; i++) {
      if (ctx->sessions[i].sess) SSL_SESSION_free(ctx->sessions[i].sess);
      ctx->sessions[i].sess = NULL;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* 5. the session cache                                                */
/* ------------------------------------------------------------------ */

/* OpenSSL hands a client a new session (after the handshake in TLS 1.2,
   with each ticket in TLS 1.3): keep it under the socket's key.
   Returns 1: the reference is ours. */
static int new_session(SSL *ssl, SSL_SESSION *sess) {
  pier_tls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
  tls_sock *t = SSL_get_app_data(ssl);
  if (!ctx || !t || !t->key[0] || !ctx->resumption ||
      !SSL_SESSION_is_resumable(sess))
    return 0;
  CRYPTO_THREAD_write_lock(ctx->lock);
  tls_session *slot = NULL, *oldest = &ctx->sessions[0];
  for (size_t i = 0; i < TLS_SESSIONS; i++) {
    tls_session *e = &ctx->sessions[i];
    if (e->sess && strcmp(e->key, t->key) == 0) {
      slot = e;
      break;
    }
    if (!e->sess && (!slot)) slot = e;
    if (e->stamp < oldest->stamp) oldest = e;
  }
  if (!slot) slot = oldest;
  if (slot->sess) SSL_SESSION_free(slot->sess);
  slot->sess = sess;
  slot->stamp = ++ctx->clock;
  pier__tls_copy(slot->key, sizeof slot->key, t->key);
  CRYPTO_THREAD_unlock(ctx->lock);
  return 1;
}

SSL_SESSION *pier__tls_session_get(pier_tls_ctx *ctx, const char *key) {
  SSL_SESSION *s = NULL;
  if (!ctx->resumption || !key[0]) return NULL;
  CRYPTO_THREAD_write_lock(ctx->lock);
  for (size_t i = 0; i < TLS_SESSIONS; i++) {
    tls_session *e = &ctx->sessions[i];
    if (e->sess && strcmp(e->key, key) == 0) {
      s = e->sess;
      SSL_SESSION_up_ref(s);
      break;
    }
  }
  CRYPTO_THREAD_unlock(ctx->lock);
  return s;
}
