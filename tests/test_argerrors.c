/* SPDX-License-Identifier: MIT */
/*
 * tests/test_argerrors.c - a call refused for a bad argument says why: it
 * returns PIER_EINVAL and hands the log hook, at PIER_LOG_DEBUG, one
 * message that names the public call and the argument ("pier_bind:
 * addrlen 4 is shorter than a sockaddr_in (16)").  Covered: socket_open
 * with the NULL pier_protocol_find gives for an unknown name, bind with a
 * short address, recv with a NULL-base buffer, setsockopt out of range,
 * loop_new with bad options, a timer with no callback, accept on a socket
 * that is not listening, getsockopt_raw with a short length on the msg
 * layer, TLS context calls with bad arguments (with OpenSSL); and that
 * calls that succeed log nothing.
 */
#ifdef HAVE_CONFIG_H
#  include "config.h"
#endif
#include "helpers.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pier/spi.h" /* PIER_SOL_PROVIDER */
#ifdef PIER_HAVE_OPENSSL
#  include "pier/tls.h"
#endif

/* ------------------------------------------------------------------ */
/* the hook: every DEBUG message of the test, the last one kept        */
/* ------------------------------------------------------------------ */

static struct {
  int count;      /* DEBUG messages since the last reset */
  char last[512]; /* the last of them */
} got;

static void hook(int level, const char *message, void *ctx) {
  (void)ctx;
  if (level != PIER_LOG_DEBUG) return;
  got.count++;
  snprintf(got.last, sizeof got.last, "%s", message);
}

static void hook_on(void) {
  memset(&got, 0, sizeof got);
  pier_set_log(hook, NULL);
}

static void hook_off(void) { pier_set_log(NULL, NULL); }

/* rc is PIER_EINVAL and exactly one message came, holding each of the
   NULL-terminated words (the call first, then the argument and why). */
static void expect_bad(int rc, const char *what, ...) {
  ck_assert_msg(rc == PIER_EINVAL, "%s returned %d (%s), expected EINVAL",
                what, rc, pier_err_name(rc));
  ck_assert_msg(got.count == 1, "%s: %d DEBUG messages, expected 1 (last: %s)",
                what, got.count, got.last);
  va_list ap;
  va_start(ap, what);
  for (const char *w; (w = va_arg(ap, const char *)) != NULL;)
    ck_assert_msg(strstr(got.last, w) != NULL,
                  "%s: message \"%s\" lacks \"%s\"", what, got.last, w);
  va_end(ap);
  got.count = 0;
  got.last[0] = '\0';
}

#define BAD(call, ...) expect_bad((call), #call, __VA_ARGS__, (char *)NULL)

/* ------------------------------------------------------------------ */
/* the tests                                                           */
/* ------------------------------------------------------------------ */

START_TEST(socket_open_names_the_null_proto_and_why) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  hook_on();
  BAD(pier_socket_open(loop, pier_protocol_find("tcp"), 0, &s),
      "pier_socket_open: ", "proto is NULL", "pier_protocol_find",
      "not in the catalog", "pier_protocols()");
  ck_assert_ptr_null(s);
  BAD(pier_socket_open(loop, pier_protocol_find("tcp4"), 0x80, &s),
      "pier_socket_open: ", "flags");
  pier_protocol_info copy = *pier_protocol_find("tcp4");
  BAD(pier_socket_open(loop, &copy, 0, &s), "pier_socket_open: ",
      "proto is not an entry of the catalog");
  hook_off();
  t_loop_free(loop);
}
END_TEST

START_TEST(bind_names_a_short_address) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  struct sockaddr_storage ss;
  size_t len;
  t_loopback("tcp4", &ss, &len);
  hook_on();
  BAD(pier_bind(s, T_SA(&ss), 4), "pier_bind: ", "addrlen 4",
      "sockaddr_in");
  BAD(pier_bind(s, NULL, len), "pier_bind: ", "addr is NULL");
  BAD(pier_bind(NULL, T_SA(&ss), len), "pier_bind: ", "socket", "NULL");
  hook_off();
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(recv_names_the_buffer_with_a_null_base) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  char a[8], b[8];
  pier_buf bufs[3] = {pier_buf_init(a, sizeof a), pier_buf_init(b, sizeof b),
                      pier_buf_init(NULL, 5)};
  pier_op op;
  pier_op_init(&op);
  hook_on();
  BAD(pier_recv(s, &op, bufs, 3, 0, NULL), "pier_recv: ",
      "bufs[2] has a NULL base and length 5");
  BAD(pier_send(c, &op, bufs, 0, 0, NULL), "pier_send: ", "nbufs is 0");
  BAD(pier_recv(s, &op, bufs, 2, 0x4000, NULL), "pier_recv: ", "flags 0x4000");
  hook_off();
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(setsockopt_names_the_option_and_its_range) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  hook_on();
  BAD(pier_setsockopt(s, PIER_SO_PREPOSTED_ACCEPTS, 0), "pier_setsockopt: ",
      "PIER_SO_PREPOSTED_ACCEPTS 0 is outside 1..256");
  BAD(pier_setsockopt(s, PIER_SO_TOS, 300), "pier_setsockopt: ",
      "PIER_SO_TOS 300 is outside 0..255");
  BAD(pier_setsockopt(s, PIER_SO_ERROR, 1), "pier_setsockopt: ",
      "PIER_SO_ERROR is read-only");
  BAD(pier_getsockopt(s, 12345, &(int){0}), "pier_getsockopt: ", "opt 12345");
  BAD(pier_getsockopt(s, PIER_SO_NODELAY, NULL), "pier_getsockopt: ",
      "value is NULL");
  hook_off();
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(loop_new_names_the_bad_option) {
  pier_loop *loop = NULL;
  pier_loop_options o;
  memset(&o, 0, sizeof o);
  o.size = 1;
  hook_on();
  BAD(pier_loop_new(&o, &loop), "pier_loop_new: ", "opts->size 1");
  o.size = sizeof o;
  o.threads = PIER_LOOP_MAX_THREADS + 1;
  BAD(pier_loop_new(&o, &loop), "pier_loop_new: ", "opts->threads 257",
      "0..256");
  BAD(pier_loop_new(NULL, NULL), "pier_loop_new: ", "out is NULL");
  BAD(pier_loop_run(NULL, PIER_RUN_NOWAIT), "pier_loop_run: ",
      "loop is NULL");
  hook_off();
  ck_assert_ptr_null(loop);
}
END_TEST

static void timer_cb(pier_timer *t) { (void)t; }

START_TEST(timer_names_the_missing_callback) {
  pier_loop *loop = t_loop_new();
  pier_timer t;
  T_OK(pier_timer_init(loop, &t));
  hook_on();
  BAD(pier_timer_start(&t, 10, 0, NULL), "pier_timer_start: ", "cb is NULL");
  BAD(pier_timer_init(loop, NULL), "pier_timer_init: ", "timer is NULL");
  hook_off();
  ck_assert_int_eq(pier_timer_active(&t), 0);
  T_OK(pier_timer_start(&t, 10, 0, timer_cb)); /* still usable */
  T_OK(pier_timer_stop(&t));
  t_loop_free(loop);
}
END_TEST

START_TEST(accept_names_a_socket_that_is_not_listening) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  pier_op op;
  pier_op_init(&op);
  hook_on();
  BAD(pier_accept(s, &op, NULL, NULL, NULL), "pier_accept: ",
      "listener is not listening", "pier_listen");
  BAD(pier_accept(s, NULL, NULL, NULL, NULL), "pier_accept: ", "op is NULL");
  hook_off();
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

/* A layer says which call and argument too (pier_spi_bad_arg). */
START_TEST(msg_layer_names_a_short_option_length) {
  const pier_protocol_info *msg = pier_protocol_find("msg4");
  ck_assert_ptr_nonnull(msg);
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  T_OK(pier_socket_open(loop, msg, 0, &s));
  char v[2];
  size_t len = sizeof v;
  hook_on();
  BAD(pier_getsockopt_raw(s, PIER_SOL_PROVIDER, PIER_SO_MAX_MESSAGE, v, &len),
      "pier_getsockopt_raw: ", "*len 2 is shorter than an int");
  hook_off();
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

#ifdef PIER_HAVE_OPENSSL
START_TEST(tls_context_calls_name_their_bad_arguments) {
  pier_tls_ctx *ctx = NULL;
  hook_on();
  BAD(pier_tls_ctx_new(7, &ctx), "pier_tls_ctx_new: ", "role 7");
  ck_assert_ptr_null(ctx);
  hook_off();
  T_OK(pier_tls_ctx_new(PIER_TLS_CLIENT, &ctx));
  const char *protos[] = {"h2", ""};
  hook_on();
  BAD(pier_tls_ctx_set_alpn(ctx, protos, 2), "pier_tls_ctx_set_alpn: ",
      "protos[1] is NULL or empty");
  BAD(pier_tls_ctx_set_verify(ctx, 99), "pier_tls_ctx_set_verify: ",
      "mode 99");
  BAD(pier_tls_ctx_load_ca_file(ctx, NULL), "pier_tls_ctx_load_ca_file: ",
      "file is NULL");
  /* Bad contents too: the message is the one pier_tls_ctx_error gives. */
  BAD(pier_tls_ctx_load_ca_mem(ctx, "junk", 4), "pier_tls_ctx_load_ca_mem: ");
  char why[256];
  pier_tls_ctx_error(ctx, why, sizeof why);
  BAD(pier_tls_ctx_load_ca_mem(ctx, "junk", 4), why);
  hook_off();
  pier_tls_ctx_free(ctx);
}
END_TEST
#endif

/* Logging is for refusals only: calls that succeed say nothing. */
START_TEST(calls_that_succeed_log_nothing) {
  hook_on();
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  T_OK(pier_setsockopt(s, PIER_SO_NODELAY, 1));
  int v = 0;
  T_OK(pier_getsockopt(s, PIER_SO_NODELAY, &v));
  char a[4] = "abc";
  pier_buf b = pier_buf_init(a, 3);
  pier_op op;
  pier_op_init(&op);
  T_OK(pier_send(c, &op, &b, 1, 0, NULL));
  T_OK(pier_recv(s, &op, &b, 1, PIER_MSG_WAITALL, NULL));
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
  ck_assert_msg(got.count == 0, "%d DEBUG messages, the last: %s", got.count,
                got.last);
  hook_off();
}
END_TEST

/* Without a hook a refusal is just the code. */
START_TEST(no_hook_still_refuses) {
  hook_off();
  pier_socket *s = NULL;
  T_ERR(pier_socket_open(NULL, NULL, 0, &s), PIER_EINVAL);
  T_ERR(pier_loop_run(NULL, PIER_RUN_ONCE), PIER_EINVAL);
  ck_assert_int_eq(got.count, 0);
}
END_TEST

Suite *suite_argerrors(void) {
  Suite *s = suite_create("argerrors");
  TCase *tc = tcase_create("argerrors");
  tcase_add_checked_fixture(tc, NULL, hook_off); /* also after a failure */
  tcase_add_test(tc, socket_open_names_the_null_proto_and_why);
  tcase_add_test(tc, bind_names_a_short_address);
  tcase_add_test(tc, recv_names_the_buffer_with_a_null_base);
  tcase_add_test(tc, setsockopt_names_the_option_and_its_range);
  tcase_add_test(tc, loop_new_names_the_bad_option);
  tcase_add_test(tc, timer_names_the_missing_callback);
  tcase_add_test(tc, accept_names_a_socket_that_is_not_listening);
  tcase_add_test(tc, msg_layer_names_a_short_option_length);
#ifdef PIER_HAVE_OPENSSL
  tcase_add_test(tc, tls_context_calls_name_their_bad_arguments);
#endif
  tcase_add_test(tc, calls_that_succeed_log_nothing);
  tcase_add_test(tc, no_hook_still_refuses);
  suite_add_tcase(s, tc);
  return s;
}
