/* SPDX-License-Identifier: MIT */
/*
 * tests/helpers.h - shared helpers of the Check suites.
 *
 * Every suite runs once per provider: the provider comes from
 * $PIER_BACKEND (tests/run-providers.sh sets it), so tests create loops
 * with t_loop_new() and never name a provider themselves.
 */
#ifndef PIER_TESTS_HELPERS_H
#define PIER_TESTS_HELPERS_H

#include <check.h>
#include <pier.h>
#include <stdint.h>
/* What tests use beyond <pier.h>: inet_pton, ntohl, TCP_NODELAY.  On
   Windows <pier.h> has them already (winsock2.h, ws2tcpip.h). */
#ifndef _WIN32
#  include <arpa/inet.h>
#  include <netinet/tcp.h>
#endif

/*
 * Suites are built through these wrappers of Check's calls, so that
 * tests/main.c knows every suite, test case and test by name: it lists
 * them (pier-tests --list) and runs only those named on its command line.
 * Test files keep calling suite_create, tcase_create, tcase_add_test,
 * tcase_add_loop_test and suite_add_tcase as usual.
 */
Suite *t_suite_create(const char *name);
TCase *t_tcase_create(const char *name);
void t_tcase_add_test(TCase *tc, const TTest *tt, int sig, int exit_value,
                      int start, int end);
void t_suite_add_tcase(Suite *s, TCase *tc);
#define suite_create(name) t_suite_create(name)
#define tcase_create(name) t_tcase_create(name)
#define _tcase_add_test(tc, tt, sig, exit_value, start, end) \
  t_tcase_add_test((tc), (tt), (sig), (exit_value), (start), (end))
#define suite_add_tcase(s, tc) t_suite_add_tcase((s), (tc))

/* Suites, one constructor per file, registered in tests/main.c. */
Suite *suite_errors(void);
Suite *suite_loop(void);
Suite *suite_timer(void);
Suite *suite_post(void);
Suite *suite_fairness(void);
Suite *suite_buffers(void);
Suite *suite_spi(void);
Suite *suite_chaos(void);
Suite *suite_protocol(void);
Suite *suite_socket(void);
Suite *suite_sockopt(void);
Suite *suite_accept(void);
Suite *suite_io(void);
Suite *suite_udp(void);
Suite *suite_stream(void);
Suite *suite_cancel(void);
Suite *suite_reset(void);
Suite *suite_badinput(void);
Suite *suite_blocking(void);
Suite *suite_resolve(void);
Suite *suite_qos(void);
Suite *suite_multicast(void);
Suite *suite_poll(void);
Suite *suite_alloc(void);
Suite *suite_threads(void);
Suite *suite_netevents(void);
Suite *suite_oshandle(void);
Suite *suite_edges(void);
Suite *suite_share(void);
Suite *suite_msg(void);
Suite *suite_msgbad(void);
Suite *suite_tls(void);
Suite *suite_reenter(void);
Suite *suite_slowcallers(void);
Suite *suite_emfile(void);
Suite *suite_syscalls(void); /* where the libevent provider is built */
Suite *suite_argerrors(void);
Suite *suite_fault(void);

/*
 * The child process of the share suite: `pier-tests --child NAME ARGS...`
 * runs it (tests/main.c, before Check starts) and exits with its result.
 */
int t_share_child(int argc, char **argv);

/* Assert a pier call returned 0, printing the code's name otherwise. */
#define T_OK(expr)                                                        \
  do {                                                                    \
    int t_rc_ = (expr);                                                   \
    ck_assert_msg(t_rc_ == 0, "%s returned %d (%s)", #expr, t_rc_,        \
                  pier_err_name(t_rc_));                                  \
  } while (0)

/* Assert a pier call returned exactly code. */
#define T_ERR(expr, code)                                                 \
  do {                                                                    \
    int t_rc_ = (expr);                                                   \
    ck_assert_msg(t_rc_ == (code), "%s returned %d (%s), expected %s",    \
                  #expr, t_rc_, pier_err_name(t_rc_), pier_err_name(code)); \
  } while (0)

/* A loop on the provider under test ($PIER_BACKEND). */
pier_loop *t_loop_new(void);
/* The same, served by n threads (pier_loop_options.threads). */
pier_loop *t_loop_threads(unsigned n);

/* Run the loop until everything the test closed is gone, then free it
   (tests close their own sockets; fails the test after 2 s). */
void t_loop_free(pier_loop *loop);

/*
 * Run the loop (PIER_RUN_ONCE steps) until *flag becomes non-zero; fails
 * the test after timeout_ms.
 */
void t_run_until(pier_loop *loop, volatile int *flag, int timeout_ms);

/* Run the loop until *count >= target, failing after timeout_ms. */
void t_run_until_count(pier_loop *loop, volatile int *count, int target,
                       int timeout_ms);

/*
 * A listening pier socket of catalog entry proto ("tcp4", "tcp6") bound
 * to loopback port 0; addr and len receive its address.
 */
pier_socket *t_listener(pier_loop *loop, const char *proto,
                        struct sockaddr_storage *addr, size_t *len);

/* The same with a chosen listen backlog (many connects at once). */
pier_socket *t_listener_backlog(pier_loop *loop, const char *proto,
                                struct sockaddr_storage *addr, size_t *len,
                                int backlog);

#define T_SA(p) ((struct sockaddr *)(p))

/* Same address?  IP: family, address and port; other families: the same
   alen bytes (0: never equal). */
int t_addr_eq(const struct sockaddr *a, size_t alen, const struct sockaddr *b,
              size_t blen);

/* Loopback address of the family of proto with port 0 (for bind). */
void t_loopback(const char *proto, struct sockaddr_storage *addr, size_t *len);

/*
 * A connected pier pair over loopback: *server is the accepted side,
 * *client the connecting one.  Both overlapped-ready, blocking mode.
 */
void t_pair(pier_loop *loop, const char *proto, pier_socket **client,
            pier_socket **server);

/*
 * Plain OS sockets, outside pier.  The tests call these instead of the
 * POSIX or Winsock functions, so that no test needs an #ifdef _WIN32:
 * each is the BSD call on POSIX and its Winsock twin on Windows.
 */

/*
 * Process set-up, once, from main() before any test: WSAStartup on
 * Windows (tests create OS sockets before any pier loop exists); SIGPIPE
 * left at its default action where it exists, so a stray one kills the
 * test and is reported (pier must never raise it).
 */
void t_os_init(void);

/* A plain OS socket connected to addr (blocking), outside pier. */
pier_os_socket t_os_connect(const struct sockaddr_storage *addr, size_t len);
/* close() / closesocket(); 0 on success. */
int t_os_close(pier_os_socket h);
/* The last socket error of this thread: errno / WSAGetLastError(). */
int t_os_errno(void);
/* A message for a t_os_errno() code (static buffer on Windows). */
const char *t_os_strerror(int err);
/* recv() / send() on a plain OS socket: bytes, or -1 and t_os_errno(). */
long t_os_recv(pier_os_socket h, void *buf, size_t len);
long t_os_send(pier_os_socket h, const void *buf, size_t len);
/*
 * The file calls on a socket handle: read() / write() on POSIX, ReadFile()
 * / WriteFile() on Windows.  Work on pier's own handles (non-blocking on
 * POSIX, overlapped and tied to the loop's completion port on Windows) and
 * behave like one blocking call: they wait, at most 5 s each time nothing
 * moves, until some bytes are transferred.  Return the bytes (0: end of
 * stream), or -1 and t_os_errno() (ETIMEDOUT / WSAETIMEDOUT after 5 s).
 * On Windows the completion never reaches pier's port (see helpers.c).
 */
long t_os_read(pier_os_socket h, void *buf, size_t len);
long t_os_write(pier_os_socket h, const void *buf, size_t len);
/* Bound a blocking recv() on h to ms (SO_RCVTIMEO); 0 on success. */
int t_os_set_rcvtimeo(pier_os_socket h, int ms);
/* SO_LINGER {on, 0}: the next close resets the connection; 0 on success.
   Safe from any thread (asserts nothing). */
int t_os_setlinger0(pier_os_socket h);
/*
 * Is t_os_errno() code err one that ends a connection the peer refused,
 * reset or aborted, or that was shut down (ECONNRESET, ECONNREFUSED,
 * ECONNABORTED, EPIPE / WSAESHUTDOWN)?
 */
int t_os_err_is_conn_lost(int err);
/*
 * Does the OS itself take portable option opt (PIER_SO_KEEPIDLE,
 * PIER_SO_KEEPINTVL, PIER_SO_KEEPCNT, PIER_SO_TOS) on a plain socket of
 * that family and type?  pier answers PIER_ENOPROTOOPT for an option the
 * OS lacks (Wine, for one, has no TCP keep-alive timing options and no
 * IPV6_TCLASS), so the tests ask the OS first, outside pier.
 */
int t_os_has_option(int family, int type, int opt);
/* Is h (a socket, or a t_os_nonsocket handle) still an open handle? */
int t_os_handle_is_open(pier_os_socket h);
/*
 * An open OS handle that is no socket, as a pier_os_socket: a pipe's read
 * end on POSIX, an event object on Windows.  Close with
 * t_os_nonsocket_close().
 */
pier_os_socket t_os_nonsocket_open(void);
void t_os_nonsocket_close(pier_os_socket h);

/*
 * The names of wish[0..n) that this platform's catalog has, in order,
 * into out[]; returns how many.  Suites use it for the range of a loop
 * test over protocols, so that an entry the platform lacks ("local" on
 * Windows) is neither run nor counted as a passed check.
 */
int t_protos_available(const char *const *wish, int n, const char **out);

/* Wait (sleeping, no loop run) until *flag is non-zero; 1 if it became
   non-zero within timeout_ms, else 0. */
int t_wait_flag(volatile int *flag, int timeout_ms);
/* Flags shared with the test's own threads: atomic, so that
   ThreadSanitizer builds see the ordering. */
#define T_FLAG_SET(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define T_FLAG(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)

/* Deterministic byte pattern: byte i of stream seed. */
void t_fill(void *buf, size_t len, uint64_t seed, size_t offset);
/* Index of the first byte differing from the pattern, or (size_t)-1. */
size_t t_verify(const void *buf, size_t len, uint64_t seed, size_t offset);

/* 1 when running under Wine (its ntdll exports wine_get_version). */
int t_under_wine(void);

/* Milliseconds on a monotonic clock. */
uint64_t t_now_ms(void);
void t_sleep_ms(int ms);

/* Counting callbacks: op->data points at an int incremented on completion. */
void t_count_cb(pier_op *op, int status);

#endif
