/* SPDX-License-Identifier: MIT */
/*
 * pier/errno.h - the one list of pier error codes.
 *
 * Every pier call that can fail returns 0 (or a non-negative count) on
 * success and a negative PIER_E* code on failure.  The codes are pier's own
 * numbers, identical on every platform; OS errors (errno, WSAGetLastError)
 * are translated into them in one place per platform.  The list only grows
 * at its end, so a code keeps its number across releases.
 *
 * Included by <pier.h>; it can also be included alone.
 */
#ifndef PIER_ERRNO_H
#define PIER_ERRNO_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * PIER_ERRNO_MAP(XX) calls XX(NAME, number, "message") once per code.
 * Applications may use it to build their own tables.
 */
#define PIER_ERRNO_MAP(XX)                                                   \
  XX(EINVAL,        1, "invalid argument")                                   \
  XX(ENOMEM,        2, "out of memory")                                      \
  XX(EBADF,         3, "socket is closed or closing")                        \
  XX(EBUSY,         4, "resource busy")                                      \
  XX(EALREADY,      5, "operation already in progress or done")              \
  XX(EINPROGRESS,   6, "operation in progress")                              \
  XX(ECANCELED,     7, "operation canceled")                                 \
  XX(ENOENT,        8, "no such entry")                                      \
  XX(EOPNOTSUPP,    9, "operation not supported by this protocol or provider") \
  XX(EWOULDBLOCK,  10, "operation would block")                              \
  XX(ETRYAGAIN,    11, "connection request deferred; accept again")          \
  XX(ENOTCONN,     12, "socket is not connected")                            \
  XX(EISCONN,      13, "socket is already connected")                        \
  XX(ECONNREFUSED, 14, "connection refused")                                 \
  XX(ECONNRESET,   15, "connection reset by peer")                           \
  XX(ECONNABORTED, 16, "connection aborted")                                 \
  XX(ETIMEDOUT,    17, "operation timed out")                                \
  XX(EADDRINUSE,   18, "address already in use")                             \
  XX(EADDRNOTAVAIL,19, "address not available")                              \
  XX(EAFNOSUPPORT, 20, "address family not supported")                       \
  XX(ENETUNREACH,  21, "network is unreachable")                             \
  XX(EHOSTUNREACH, 22, "host is unreachable")                                \
  XX(ENETDOWN,     23, "network is down")                                    \
  XX(EPIPE,        24, "connection shut down for sending")                   \
  XX(EMSGSIZE,     25, "message too long")                                   \
  XX(EACCES,       26, "permission denied")                                  \
  XX(EMFILE,       27, "too many open files")                                \
  XX(ENOBUFS,      28, "no buffer space available")                          \
  XX(ENOPROTOOPT,  29, "protocol option not available")                      \
  XX(ENOTSOCK,     30, "not a socket")                                       \
  XX(ESHUTDOWN,    31, "loop is closed")                                     \
  XX(EPROTO,       32, "protocol error")                                     \
  XX(EAI_NONAME,   33, "unknown host or service")                            \
  XX(EAI_AGAIN,    34, "temporary name resolution failure")                  \
  XX(EAI_FAIL,     35, "name resolution failed")                             \
  XX(EAI_FAMILY,   36, "address family not supported for name")              \
  XX(ENOPROVIDER,  37, "no such provider")                                   \
  XX(EIO,          38, "input/output error")                                 \
  XX(EDEADLK,      39, "waiting here would deadlock")                        \
  XX(EREFUSED,     40, "connection request rejected by the listener")        \
  XX(EUNKNOWN,     41, "unknown error")                                     \
  XX(ETLS_HANDSHAKE, 42, "TLS handshake failed")                            \
  XX(ETLS_VERIFY,  43, "TLS peer certificate verification failed")          \
  XX(ETLS_PROTOCOL, 44, "TLS protocol error")

/* pier_errno - the error codes, negative numbers (PIER_EINVAL == -1, and
   so on) with the messages of PIER_ERRNO_MAP (pier_strerror). */
enum pier_errno {
#define PIER__ERRNO_ENUM(name, num, msg) PIER_##name = -(num),
  PIER_ERRNO_MAP(PIER__ERRNO_ENUM)
#undef PIER__ERRNO_ENUM
  PIER__ERRNO_END = 0
};

/*
 * pier_strerror - a human-readable, static, English message for a code.
 * Returns "success" for 0 and "unknown error" for a code not in the
 * list; never NULL.
 * Errors: none.
 * Threads: any thread.
 */
const char *pier_strerror(int err);

/*
 * pier_err_name - the code's symbolic name without prefix ("EINVAL").
 * Returns "OK" for 0 and "UNKNOWN" for a code not in the list; never
 * NULL.
 * Errors: none.
 * Threads: any thread.
 */
const char *pier_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* PIER_ERRNO_H */
