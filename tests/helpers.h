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

/* Suites, one constructor per file, registered in tests/main.c. */
Suite *suite_errors(void);
Suite *suite_loop(void);
Suite *suite_timer(void);
Suite *suite_post(void);
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
Suite *suite_alloc(void);

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

/* Loopback address of the family of proto with port 0 (for bind). */
void t_loopback(const char *proto, struct sockaddr_storage *addr, size_t *len);

/*
 * A connected pier pair over loopback: *server is the accepted side,
 * *client the connecting one.  Both overlapped-ready, blocking mode.
 */
void t_pair(pier_loop *loop, const char *proto, pier_socket **client,
            pier_socket **server);

/* A plain OS socket connected to addr (blocking), outside pier. */
pier_os_socket t_os_connect(const struct sockaddr_storage *addr, size_t len);
void t_os_close(pier_os_socket h);

/* Deterministic byte pattern: byte i of stream seed. */
void t_fill(void *buf, size_t len, uint64_t seed, size_t offset);
/* Index of the first byte differing from the pattern, or (size_t)-1. */
size_t t_verify(const void *buf, size_t len, uint64_t seed, size_t offset);

/* Milliseconds on a monotonic clock. */
uint64_t t_now_ms(void);
void t_sleep_ms(int ms);

/* Counting callbacks: op->data points at an int incremented on completion. */
void t_count_cb(pier_op *op, int status);

#endif
