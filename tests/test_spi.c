/* SPDX-License-Identifier: MIT */
/*
 * tests/test_spi.c - a third party's provider table (include/pier/spi.h):
 * registration refuses a table without a required slot, naming the slot
 * through the log hook; a table that leaves the optional slots NULL
 * registers, and every call that would use one answers PIER_EOPNOTSUPP
 * instead of crashing.
 */
#include "helpers.h"

#include <pier/spi.h>
#include <stdio.h>
#include <string.h>

/* A provider that can do almost nothing: the required slots only. */
static int nil_loop_init(pier_loop *loop) { (void)loop; return 0; }
static int nil_loop_poll(pier_loop *loop, int timeout_ms) {
  (void)loop;
  if (timeout_ms > 0) t_sleep_ms(timeout_ms < 10 ? timeout_ms : 10);
  return 0;
}
static void nil_loop_wake(pier_loop *loop) { (void)loop; }
static int nil_open(pier_socket *s, const pier_protocol_info *proto,
                    pier_os_socket h) {
  (void)s; (void)proto; (void)h;
  return 0;
}
static void nil_close(pier_socket *s) { pier_spi_closed(s); }
static int nil_submit(pier_socket *s, pier_op *op) {
  (void)s; (void)op;
  return PIER_EOPNOTSUPP;
}
static int nil_cancel(pier_socket *s, pier_op *op) {
  (void)s; (void)op;
  return PIER_ENOENT;
}

static pier_provider nil_table(const char *name) {
  pier_provider p;
  memset(&p, 0, sizeof p);
  p.version = 1;
  p.name = name;
  p.loop_init = nil_loop_init;
  p.loop_poll = nil_loop_poll;
  p.loop_wake = nil_loop_wake;
  p.open = nil_open;
  p.close = nil_close;
  p.submit = nil_submit;
  p.cancel = nil_cancel;
  return p;
}

static char logged[256];
static void log_hook(int level, const char *msg, void *ctx) {
  (void)level; (void)ctx;
  if (strstr(msg, "slot")) snprintf(logged, sizeof logged, "%s", msg);
}

START_TEST(table_without_a_required_slot_is_refused_by_name) {
  static pier_provider p;
  pier_set_log(log_hook, NULL);
  p = nil_table("spi-test-noopen");
  p.open = NULL;
  T_ERR(pier_spi_register(&p), PIER_EINVAL);
  ck_assert_msg(strstr(logged, "open") != NULL, "log said \"%s\"", logged);
  p = nil_table("spi-test-nopoll");
  p.loop_poll = NULL;
  T_ERR(pier_spi_register(&p), PIER_EINVAL);
  ck_assert_msg(strstr(logged, "loop_poll") != NULL, "log said \"%s\"", logged);
  p = nil_table("spi-test-future");
  p.version = PIER_SPI_VERSION + 1;
  T_ERR(pier_spi_register(&p), PIER_EINVAL);
  pier_set_log(NULL, NULL);
  /* None of them became a provider. */
  const char *names[32];
  size_t n = pier_providers(names, 32);
  for (size_t i = 0; i < n && i < 32; i++)
    ck_assert_msg(strncmp(names[i], "spi-test", 8) != 0, "%s registered",
                  names[i]);
}
END_TEST

static int closed;
static void count_closed(pier_socket *s) { (void)s; closed++; }
static void ev_cb(pier_socket *s, unsigned ev) { (void)s; (void)ev; }

START_TEST(optional_slots_left_null_answer_eopnotsupp) {
  static pier_provider p;
  p = nil_table("spi-test-nil");
  T_OK(pier_spi_register(&p));
  T_ERR(pier_spi_register(&p), PIER_EALREADY);
  pier_loop_options o;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.provider = "spi-test-nil";
  pier_loop *loop = NULL;
  T_OK(pier_loop_new(&o, &loop));
  ck_assert_str_eq(pier_loop_backend(loop), "spi-test-nil");
  pier_socket *s = NULL;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  struct sockaddr_storage a;
  size_t alen = sizeof a;
  t_loopback("tcp4", &a, &alen);
  T_ERR(pier_bind(s, T_SA(&a), alen), PIER_EOPNOTSUPP);
  T_ERR(pier_listen(s, 8), PIER_EOPNOTSUPP);
  T_ERR(pier_shutdown(s, PIER_SHUT_WR), PIER_EOPNOTSUPP);
  alen = sizeof a;
  T_ERR(pier_getsockname(s, &a, &alen), PIER_EOPNOTSUPP);
  alen = sizeof a;
  T_ERR(pier_getpeername(s, &a, &alen), PIER_EOPNOTSUPP);
  int v = 0;
  T_ERR(pier_setsockopt(s, PIER_SO_RCVBUF, 4096), PIER_EOPNOTSUPP);
  T_ERR(pier_getsockopt(s, PIER_SO_RCVBUF, &v), PIER_EOPNOTSUPP);
  T_ERR(pier_setsockopt(s, PIER_SO_ZERO_READ, 1), PIER_EOPNOTSUPP);
  T_ERR(pier_ioctl(s, PIER_FIONREAD, &v), PIER_EOPNOTSUPP);
  T_ERR(pier_event_select(s, PIER_EV_READ, ev_cb), PIER_EOPNOTSUPP);
  T_ERR(pier_cancel_blocking(s), PIER_EOPNOTSUPP);
  char buf[4];
  pier_buf b = pier_buf_init(buf, sizeof buf);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_ERR(pier_recv(s, &op, &b, 1, 0, NULL), PIER_EOPNOTSUPP); /* no execute */
  T_ERR(pier_recv(s, &op, &b, 1, 0, t_count_cb), PIER_EOPNOTSUPP);
  closed = 0;
  T_OK(pier_close(s, count_closed));
  t_run_until(loop, &closed, 2000);
  T_OK(pier_loop_free(loop)); /* loop_free NULL: nothing to release */
}
END_TEST

Suite *suite_spi(void) {
  Suite *s = suite_create("spi");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, table_without_a_required_slot_is_refused_by_name);
  tcase_add_test(tc, optional_slots_left_null_answer_eopnotsupp);
  suite_add_tcase(s, tc);
  return s;
}
