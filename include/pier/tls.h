/* SPDX-License-Identifier: MIT */
/*
 * pier/tls.h - TLS over any pier stream socket, on OpenSSL (1.1.1 or
 * later).  The TLS layer is a layered provider (<pier/spi.h>): it keeps
 * OpenSSL on memory BIOs and moves the encrypted bytes with pier_recv /
 * pier_send on the socket below, so it runs unchanged over every base
 * provider (libevent, iocp, ...).  The layer is built when configure
 * finds OpenSSL; a pier built --without-openssl installs this header but
 * has none of these functions (`pkg-config --print-requires-private pier`
 * lists libssl when it has them).
 *
 * Section map
 *   1. contexts: role, certificates, trust, verification, ALPN, versions
 *   2. wrapping a socket: client, listener, connected socket
 *   3. what a TLS socket tells: errors, ALPN, resumption, version, peer
 *
 * The model
 *   A context (pier_tls_ctx) holds what many connections share: the role
 *   (client or server), the certificate chain and key, the trusted CAs,
 *   the verification policy, ALPN, the protocol versions, and a client's
 *   session cache.  Configure it first, then wrap sockets with it; a
 *   context is not changed while sockets use it (the calls of section 1
 *   then return PIER_EBUSY).  It may be shared by sockets of several
 *   loops and threads.
 *
 *   pier_tls_wrap(ctx, lower, name, &tls) puts TLS over a pier socket;
 *   the new socket owns lower from then on (pier_close(tls) closes both).
 *   What happens next depends on lower:
 *     - not connected (opened, perhaps bound): the TLS socket is used
 *       like any stream socket.  A client context: pier_connect(tls, ...)
 *       connects below, runs the handshake, verifies the server, and
 *       completes only then.  A server context: pier_listen(tls) and
 *       pier_accept(tls, ...).
 *     - listening (server context): tls is a TLS listener at once.
 *     - connected (STARTTLS, an accepted plain socket): the handshake
 *       starts at once, in the context's role.  Receives and sends wait
 *       behind it and fail with its error if it fails; a pier_send of
 *       zero bytes (one empty buffer) completes when the handshake is
 *       done: the explicit way to wait for it.  Its timeout counts from
 *       the wrap; setting PIER_SO_HANDSHAKE_TIMEOUT while it runs starts
 *       the new limit from then.
 *   Receives and sends started while a client's connect is in progress
 *   wait for the handshake too.
 *
 *   A TLS listener accepts connections below eagerly (up to 64 at once
 *   with their handshakes in progress; the OS backlog holds the others)
 *   and runs their handshakes in parallel, each bounded by
 *   PIER_SO_HANDSHAKE_TIMEOUT (milliseconds, default
 *   PIER_HANDSHAKE_TIMEOUT_DEFAULT; accepted sockets take the listener's).
 *   pier_accept completes with connections whose handshake - and
 *   verification of the client's certificate, when asked for - has
 *   succeeded, in the order they succeeded; a condition function is
 *   asked then (caller and local address; no connect data), and REJECT
 *   closes that TLS connection.  A client that fails its handshake,
 *   sends garbage or nothing is dropped, never seen by pier_accept, and
 *   never holds up the others; pier_tls_error(listener, ...) tells why
 *   the last one failed.
 *
 *   Data: pier_recv and pier_send work as on TCP, scatter/gather
 *   included; PIER_MSG_PEEK and PIER_MSG_WAITALL work, PIER_MSG_OOB is
 *   PIER_EOPNOTSUPP.  A send completes when every byte of it has been
 *   encrypted and the records carrying it accepted by the socket below;
 *   a large send is cut into records of at most 16 KiB.  A receive
 *   never returns data before the handshake (with verification) has
 *   succeeded.  pier_disconnect(tls, op, NULL, 0, cb) sends close_notify
 *   after everything sent before it, then shuts down sends below; the
 *   peer's receive then completes with 0 bytes.  pier_shutdown(tls,
 *   PIER_SHUT_WR) does the same without waiting.  Receiving close_notify
 *   ends the stream: the receive completes with 0 bytes.
 *
 * Errors of TLS sockets (operation status)
 *   PIER_ETLS_HANDSHAKE  the handshake failed: no common version or
 *                        cipher, a peer that does not speak TLS (plain
 *                        bytes, an HTTP request), a malformed message,
 *                        or the peer closed or reset the connection in
 *                        the middle of the handshake.
 *   PIER_ETLS_VERIFY     the peer's certificate was refused: wrong host
 *                        name or address, an untrusted or unknown CA,
 *                        expired or not yet valid, a server requiring a
 *                        client certificate the client did not send, or
 *                        the peer refused ours (a certificate alert from
 *                        it).  A client whose certificate the server
 *                        refuses or misses learns it late: with TLS 1.3
 *                        the server checks it after the client's
 *                        handshake has finished, so the client's connect
 *                        succeeds and its first receive fails with
 *                        PIER_ETLS_VERIFY; with TLS 1.2 the server's
 *                        alert for a missing certificate is a plain
 *                        handshake failure, so the client's connect
 *                        fails with PIER_ETLS_HANDSHAKE.  The server side
 *                        always records PIER_ETLS_VERIFY.
 *   PIER_ETLS_PROTOCOL   after the handshake: a bad record (bad MAC,
 *                        garbage), a fatal alert, or the stream ended in
 *                        the middle of a record.
 *   PIER_ECONNRESET      after the handshake, the stream ended without
 *                        close_notify (possible truncation), or the
 *                        connection below was reset.
 *   PIER_ETIMEDOUT       the handshake took longer than
 *                        PIER_SO_HANDSHAKE_TIMEOUT.
 *   Errors of the socket below (PIER_ECONNREFUSED, ...) come through as
 *   they are.  pier_tls_error() gives OpenSSL's reason text.
 *
 * Threads: the calls of section 1 may be made from any thread while the
 * context is not in use.  The calls of sections 2 and 3 follow the rules
 * of <pier.h> for their socket.
 */
#ifndef PIER_TLS_H
#define PIER_TLS_H

#include "../pier.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* 1. contexts                                                         */
/* ------------------------------------------------------------------ */

/* pier_tls_ctx - a TLS context: what many connections share (see
   pier_tls(3)); opaque, made by pier_tls_ctx_new. */
typedef struct pier_tls_ctx pier_tls_ctx;

/* pier_tls_role - the role of a context. */
enum pier_tls_role { PIER_TLS_CLIENT = 0, PIER_TLS_SERVER = 1 };

/* pier_tls_version - protocol versions (pier_tls_ctx_set_versions). */
enum pier_tls_version {
  PIER_TLS_ANY = 0,   /* no bound: OpenSSL's own limit */
  PIER_TLS_1_2 = 0x0303,
  PIER_TLS_1_3 = 0x0304
};

/* pier_tls_verify - peer verification (pier_tls_ctx_set_verify). */
enum pier_tls_verify {
  PIER_TLS_VERIFY_NONE = 0,   /* accept any peer certificate, or none;
                                 the default of a server context */
  PIER_TLS_VERIFY_PEER = 1,   /* client: verify the server's chain and
                                 name (the default); server: ask for a
                                 client certificate and verify it if one
                                 is sent */
  PIER_TLS_VERIFY_REQUIRE = 2 /* server: a client without a valid
                                 certificate fails its handshake (mutual
                                 TLS); client: as PIER_TLS_VERIFY_PEER */
};

/*
 * pier_tls_ctx_new - a context for role (PIER_TLS_CLIENT or
 * PIER_TLS_SERVER) with pier's defaults: TLS 1.2 at least, no
 * renegotiation, compression off; a client verifies the server
 * (PIER_TLS_VERIFY_PEER) against the system's trust store unless a CA is
 * loaded, checks its name and sends SNI, and resumes sessions; a server
 * needs a certificate and key before its first handshake.  Initialises
 * OpenSSL once per process.  Returns 0 and *out (released with
 * pier_tls_ctx_free).
 * Errors: PIER_EINVAL (bad role, NULL out), PIER_ENOMEM (also when
 * OpenSSL cannot make the context; pier_tls_ctx_error does not apply).
 * Threads: any thread.
 */
int pier_tls_ctx_new(int role, pier_tls_ctx **out);

/*
 * pier_tls_ctx_free - let go of the context.  Sockets wrapped with it
 * keep their own reference: it is released with the last of them.  NULL
 * is a no-op.
 * Errors: none.
 * Threads: any thread.
 */
void pier_tls_ctx_free(pier_tls_ctx *ctx);

/*
 * pier_tls_ctx_use_cert_file - the certificate chain (PEM: the leaf
 * first, then intermediates) and its private key (PEM, unencrypted) from
 * files; key_file NULL: the key is in chain_file too.  Replaces an
 * earlier one.  A server needs one; a client sends it when the server
 * asks (mutual TLS).  pier_tls_ctx_error() tells OpenSSL's reason for a
 * failure.
 * Errors: PIER_EINVAL (NULL ctx or chain_file, a file that is not PEM, a
 * key that does not match the certificate), PIER_ENOENT (no such file),
 * PIER_EBUSY (the context is in use).
 * Threads: any thread, while no socket uses the context.
 */
int pier_tls_ctx_use_cert_file(pier_tls_ctx *ctx, const char *chain_file,
                               const char *key_file);

/*
 * pier_tls_ctx_use_cert_mem - the same from memory: chain (PEM, len
 * bytes) and key (PEM, key_len bytes).  The bytes are copied.
 * Errors: PIER_EINVAL (NULL ctx or chain, bytes that are not PEM, a key
 * that does not match the certificate), PIER_EBUSY (the context is in
 * use), PIER_ENOMEM.
 * Threads: any thread, while no socket uses the context.
 */
int pier_tls_ctx_use_cert_mem(pier_tls_ctx *ctx, const void *chain,
                              size_t len, const void *key, size_t key_len);

/*
 * pier_tls_ctx_load_ca_file / _dir / _mem / _system - add trusted CA
 * certificates: a PEM file of one or more, a directory hashed by
 * `openssl rehash` (looked up at verification time), PEM bytes in memory
 * (copied), or the system's default store (OpenSSL's default paths: on
 * Debian /etc/ssl/certs; on Windows OPENSSLDIR, not the Windows
 * certificate store - load a file there).  They add up.  A client
 * context that has loaded none of them uses the system's store.
 * Errors: PIER_EINVAL (NULL arguments, not PEM, no certificate in it),
 * PIER_ENOENT (no such file or directory), PIER_EBUSY (the context is in
 * use).
 * Threads: any thread, while no socket uses the context.
 */
int pier_tls_ctx_load_ca_file(pier_tls_ctx *ctx, const char *file);
int pier_tls_ctx_load_ca_dir(pier_tls_ctx *ctx, const char *dir);
int pier_tls_ctx_load_ca_mem(pier_tls_ctx *ctx, const void *pem, size_t len);
int pier_tls_ctx_load_ca_system(pier_tls_ctx *ctx);

/*
 * pier_tls_ctx_set_verify - the verification policy (PIER_TLS_VERIFY_*).
 * A server asking for client certificates verifies them against the CAs
 * loaded into it.
 * Errors: PIER_EINVAL (NULL ctx, unknown mode), PIER_EBUSY (the context
 * is in use).
 * Threads: any thread, while no socket uses the context.
 */
int pier_tls_ctx_set_verify(pier_tls_ctx *ctx, int mode);

/*
 * pier_tls_ctx_set_server_name - client: the name sent as SNI and
 * checked against the server's certificate for every socket wrapped
 * with this context that names none itself (pier_tls_wrap's name).  An
 * IP address literal is checked against the certificate's IP addresses
 * and sends no SNI.  NULL clears it: then a client with neither checks
 * the address it connected to.  The string is copied.
 * Errors: PIER_EINVAL (NULL ctx, a server context, an empty or overlong
 * name), PIER_EBUSY (the context is in use), PIER_ENOMEM.
 * Threads: any thread, while no socket uses the context.
 */
int pier_tls_ctx_set_server_name(pier_tls_ctx *ctx, const char *name);

/*
 * pier_tls_ctx_set_alpn - application protocols (ALPN), most preferred
 * first, each 1..255 bytes ("h2", "http/1.1").  A client offers them; a
 * server picks the first of its own the client offers, and goes on
 * without ALPN when there is none in common (read the result with
 * pier_tls_alpn).  n 0 clears the list.  The strings are copied.
 * Errors: PIER_EINVAL (NULL ctx, a name empty or too long, NULL list
 * with n), PIER_EBUSY (the context is in use), PIER_ENOMEM.
 * Threads: any thread, while no socket uses the context.
 */
int pier_tls_ctx_set_alpn(pier_tls_ctx *ctx, const char *const *protos,
                          size_t n);

/*
 * pier_tls_ctx_set_versions - the lowest and highest protocol versions
 * (PIER_TLS_1_2, PIER_TLS_1_3, or PIER_TLS_ANY for no bound).  The
 * default is PIER_TLS_1_2 .. PIER_TLS_ANY; versions below TLS 1.2 are
 * not offered.
 * Errors: PIER_EINVAL (NULL ctx, unknown version, min > max), PIER_EBUSY
 * (the context is in use).
 * Threads: any thread, while no socket uses the context.
 */
int pier_tls_ctx_set_versions(pier_tls_ctx *ctx, int min_version,
                              int max_version);

/*
 * pier_tls_ctx_set_resumption - client: keep the sessions servers hand
 * out (at most 64, the latest per server name and address) and offer the
 * one of the same server at the next connect, so that the handshake is
 * abbreviated (pier_tls_resumed tells).  On by default (on 1 / off 0);
 * off also clears the cache.  A server always offers resumption
 * (tickets).
 * Errors: PIER_EINVAL (NULL ctx), PIER_EBUSY (the context is in use).
 * Threads: any thread, while no socket uses the context.
 */
int pier_tls_ctx_set_resumption(pier_tls_ctx *ctx, int on);

/*
 * pier_tls_ctx_error - OpenSSL's reason for the last failed call of
 * section 1 on ctx, into buf (cap bytes, always terminated); "" when
 * none failed.  Returns the length of the whole text (which may be more
 * than cap - 1: it was cut).
 * Errors: none.
 * Threads: any thread, while no other thread changes the context.
 */
size_t pier_tls_ctx_error(const pier_tls_ctx *ctx, char *buf, size_t cap);

/*
 * pier_tls_ctx_native - the OpenSSL SSL_CTX * underneath, for settings
 * this header does not cover (cipher lists, curves, key logging).  Owned
 * by ctx; change it only while the context is not in use.  NULL for a
 * NULL ctx.
 * Errors: none.
 * Threads: any thread, while no socket uses the context.
 */
void *pier_tls_ctx_native(pier_tls_ctx *ctx);

/* ------------------------------------------------------------------ */
/* 2. wrapping a socket                                                */
/* ------------------------------------------------------------------ */

/*
 * pier_tls_wrap - put TLS over lower, a stream socket (tcp4, tcp6, local
 * or a layered stream) that has no operation pending, as described at
 * the top: unconnected, listening (server context) or connected.  The
 * new socket (catalog entry "tls4", "tls6" or "tls-local" by lower's
 * family; these entries are not in pier_protocols()) is in lower's mode
 * on lower's loop, and holds a reference to ctx.  server_name (client;
 * may be NULL: the context's, see pier_tls_ctx_set_server_name) is the
 * name sent as SNI and verified; it is copied.  On success *out owns
 * lower (do not use lower any more; pier_close(*out) closes both); on
 * failure lower is left as it was, the caller's - except when a
 * listening lower cannot start accepting (out of memory or descriptors):
 * then it is closed.  A session that cannot start over a connected lower
 * (out of memory) fails its first operations with the error.
 * Errors: PIER_EINVAL (NULL ctx, lower or out; a server_name empty or
 * over 255 bytes; a client context on a listening socket),
 * PIER_EOPNOTSUPP (a connectionless socket), PIER_EBADF (lower is
 * closing), PIER_ENOMEM, PIER_EMFILE (a listening lower cannot start
 * accepting).
 * Status: (of the operations on the new socket) the errors of TLS
 * sockets listed in pier_tls(3): PIER_ETLS_HANDSHAKE, PIER_ETLS_VERIFY,
 * PIER_ETLS_PROTOCOL, PIER_ECONNRESET, PIER_ETIMEDOUT.
 */
int pier_tls_wrap(pier_tls_ctx *ctx, pier_socket *lower,
                  const char *server_name, pier_socket **out);

/*
 * pier_tls_is_tls - 1 if s is a TLS socket made by pier_tls_wrap (or
 * accepted on one), else 0 (also for NULL).
 * Errors: none.
 * Threads: any thread.
 */
int pier_tls_is_tls(const pier_socket *s);

/* ------------------------------------------------------------------ */
/* 3. what a TLS socket tells                                          */
/* ------------------------------------------------------------------ */

/*
 * pier_tls_error - the last TLS failure on s: returns its PIER_E* code
 * (0 when there was none) and writes OpenSSL's reason into buf (cap
 * bytes, always terminated; buf may be NULL with cap 0), e.g.
 * "certificate verify failed: hostname mismatch".  On a TLS listener it
 * is the failure of the last connection dropped during its handshake.
 * Errors: PIER_EINVAL (NULL s, or a socket that is not TLS).
 */
int pier_tls_error(pier_socket *s, char *buf, size_t cap);

/*
 * pier_tls_alpn - the application protocol negotiated on s, copied into
 * buf (cap bytes, terminated).  Returns its length, 0 when none was
 * negotiated (or the handshake has not finished), PIER_EMSGSIZE when it
 * does not fit, PIER_EINVAL for a socket that is not TLS.
 * Errors: PIER_EMSGSIZE (the name does not fit in cap bytes), PIER_EINVAL
 * (NULL s or buf, a socket that is not TLS).
 */
int pier_tls_alpn(pier_socket *s, char *buf, size_t cap);

/*
 * pier_tls_resumed - 1 when s's handshake resumed an earlier session
 * (abbreviated handshake), 0 when it was a full one or has not finished,
 * PIER_EINVAL for a socket that is not TLS.
 * Errors: PIER_EINVAL (NULL s, a socket that is not TLS).
 */
int pier_tls_resumed(pier_socket *s);

/*
 * pier_tls_version - the negotiated protocol version (PIER_TLS_1_2,
 * PIER_TLS_1_3, or another TLS version number) once the handshake has
 * finished, 0 before, PIER_EINVAL for a socket that is not TLS.
 * Errors: PIER_EINVAL (NULL s, a socket that is not TLS).
 */
int pier_tls_version(pier_socket *s);

/*
 * pier_tls_cipher - the negotiated cipher suite's name (OpenSSL's, e.g.
 * "TLS_AES_256_GCM_SHA384") into buf (cap bytes, terminated).  Returns
 * its length, 0 before the handshake has finished.
 * Errors: PIER_EMSGSIZE (the name does not fit in cap bytes), PIER_EINVAL
 * (NULL s or buf, a socket that is not TLS).
 */
int pier_tls_cipher(pier_socket *s, char *buf, size_t cap);

/*
 * pier_tls_peer_subject - the subject of the peer's certificate in
 * OpenSSL's one-line RFC 2253 form ("CN=localhost,O=pier") into buf (cap
 * bytes, terminated).  Returns its length, 0 when the peer sent no
 * certificate (or the handshake has not finished).
 * Errors: PIER_EMSGSIZE (the subject does not fit in cap bytes),
 * PIER_EINVAL (NULL s or buf, a socket that is not TLS), PIER_ENOMEM.
 */
int pier_tls_peer_subject(pier_socket *s, char *buf, size_t cap);

/*
 * pier_tls_native - the OpenSSL SSL * of s, for what this header does
 * not cover; owned by s (valid until its close callback).  Only from
 * s's callbacks or while no thread runs its loop.  NULL for a socket
 * that is not TLS.
 * Errors: none.
 * Threads: s's callbacks, or any thread while no thread runs its loop.
 */
void *pier_tls_native(pier_socket *s);

#ifdef __cplusplus
}
#endif

#endif /* PIER_TLS_H */
