/* SPDX-License-Identifier: MIT */
/*
 * tests/test_netevents.c - network event notification
 * (pier_event_select / pier_enum_network_events, WSPEventSelect), and
 * the re-enabling rules as Winsock documents them:
 *   READ    again only after a receive;
 *   WRITE   when a connect succeeds, then only after a send that would
 *           have blocked, once there is room again;
 *   ACCEPT  again only after an accept;
 *   CONNECT once, with the connect's status;
 *   CLOSE   once, after the data before it has been read, with 0 for an
 *           orderly close and PIER_ECONNRESET for a reset;
 *   OOB     again only after a receive of urgent data.
 * Each test selects events, provokes them over loopback, and reads the
 * record with pier_enum_network_events.
 */
#include <string.h>

#include "helpers.h"

/* The callback counts its calls; the record stays for enum to read. */
typedef struct watch {
  int calls;
  unsigned last;
} watch;

static watch *watch_of(pier_socket *s) { return pier_socket_get_data(s); }

static void on_events(pier_socket *s, unsigned events) {
  watch *w = watch_of(s);
  w->calls++;
  w->last = events;
}

static void select_on(pier_socket *s, watch *w, unsigned mask) {
  memset(w, 0, sizeof *w);
  pier_socket_set_data(s, w);
  T_OK(pier_event_select(s, mask, on_events));
}

static void tick(pier_timer *t) { (void)t; }

/* Run the loop for ms (a timer keeps PIER_RUN_ONCE from blocking). */
static void run_for(pier_loop *loop, int ms) {
  uint64_t until = t_now_ms() + (uint64_t)ms;
  pier_timer t;
  T_OK(pier_timer_init(loop, &t));
  while (t_now_ms() < until) {
    T_OK(pier_timer_start(&t, 5, 0, tick));
    pier_loop_run(loop, PIER_RUN_ONCE);
  }
  pier_timer_stop(&t);
}

/* Run until the record of s holds want (all bits), then read and clear it;
   fails after 3 s. */
static pier_net_events wait_events(pier_loop *loop, pier_socket *s,
                                   unsigned want) {
  pier_net_events got, all;
  memset(&all, 0, sizeof all);
  uint64_t until = t_now_ms() + 3000;
  for (;;) {
    T_OK(pier_enum_network_events(s, &got));
    for (int i = 0; i < PIER_EV_COUNT; i++)
      if (got.events & (1u << i)) all.errors[i] = got.errors[i];
    all.events |= got.events;
    if ((all.events & want) == want) return all;
    ck_assert_msg(t_now_ms() < until, "events 0x%x recorded, 0x%x expected",
                  all.events, want);
    run_for(loop, 5);
  }
}

/* Nothing new is recorded on s for ms. */
static void expect_quiet(pier_loop *loop, pier_socket *s, int ms,
                         const char *why) {
  run_for(loop, ms);
  pier_net_events got;
  T_OK(pier_enum_network_events(s, &got));
  ck_assert_msg(got.events == 0, "%s: events 0x%x recorded", why, got.events);
}

static void send_all(pier_socket *s, const void *buf, size_t len) {
  pier_op op;
  memset(&op, 0, sizeof op);
  pier_buf b = pier_buf_init((void *)buf, len);
  T_OK(pier_send(s, &op, &b, 1, 0, NULL)); /* blocking form */
  ck_assert_uint_eq(op.bytes, len);
}

static size_t recv_some(pier_socket *s, void *buf, size_t len, unsigned flags) {
  pier_op op;
  memset(&op, 0, sizeof op);
  pier_buf b = pier_buf_init(buf, len);
  T_OK(pier_recv(s, &op, &b, 1, flags, NULL));
  return op.bytes;
}

/* ------------------------------------------------------------------ */

START_TEST(read_again_only_after_a_receive) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  watch w;
  select_on(s, &w, PIER_EV_READ | PIER_EV_CLOSE);
  expect_quiet(loop, s, 30, "no data yet");

  char out[20], in[8];
  t_fill(out, sizeof out, 1, 0);
  send_all(c, out, 10);
  pier_net_events ev = wait_events(loop, s, PIER_EV_READ);
  ck_assert_uint_eq(ev.events, PIER_EV_READ);
  ck_assert_int_eq(ev.errors[PIER_EV_READ_BIT], 0);
  ck_assert_int_ge(w.calls, 1);

  /* More data, no receive: READ stays disabled. */
  send_all(c, out + 10, 10);
  expect_quiet(loop, s, 50, "READ recorded again without a receive");

  /* A receive re-enables it; data remains, so it is recorded again. */
  ck_assert_uint_eq(recv_some(s, in, sizeof in, 0), sizeof in);
  ck_assert_uint_eq(t_verify(in, sizeof in, 1, 0), (size_t)-1);
  ev = wait_events(loop, s, PIER_EV_READ);
  ck_assert_uint_eq(ev.events, PIER_EV_READ);

  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(connect_then_write_then_only_after_wouldblock) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, "tcp4", &addr, &alen);
  pier_socket *c;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), PIER_SOCK_NONBLOCK,
                        &c));
  watch w;
  select_on(c, &w, PIER_EV_CONNECT | PIER_EV_WRITE | PIER_EV_READ);
  expect_quiet(loop, c, 30, "an unconnected socket");

  pier_op cop, aop;
  int cdone = 0, adone = 0;
  memset(&cop, 0, sizeof cop);
  memset(&aop, 0, sizeof aop);
  cop.data = &cdone;
  aop.data = &adone;
  T_OK(pier_accept(l, &aop, NULL, NULL, t_count_cb));
  T_OK(pier_connect(c, &cop, (struct sockaddr *)&addr, alen, NULL, NULL,
                    t_count_cb));
  pier_net_events ev =
      wait_events(loop, c, PIER_EV_CONNECT | PIER_EV_WRITE);
  ck_assert_int_eq(ev.errors[PIER_EV_CONNECT_BIT], 0);
  t_run_until(loop, &adone, 3000);
  t_run_until(loop, &cdone, 3000);
  pier_socket *s = aop.accepted;
  ck_assert_ptr_nonnull(s);

  /* Sends that succeed do not record WRITE again. */
  char buf[4096];
  t_fill(buf, sizeof buf, 2, 0);
  send_all(c, buf, sizeof buf);
  expect_quiet(loop, c, 50, "WRITE after a send that did not block");

  /* Fill the connection until a send would block (bounded: 64 MiB). */
  pier_op op;
  size_t sent = 0;
  int rc = 0;
  while (sent < 64u * 1024 * 1024) {
    memset(&op, 0, sizeof op);
    pier_buf b = pier_buf_init(buf, sizeof buf);
    rc = pier_send(c, &op, &b, 1, 0, NULL);
    if (rc) break;
    sent += op.bytes;
  }
  ck_assert_msg(rc == PIER_EWOULDBLOCK, "send returned %s after %zu bytes",
                pier_err_name(rc), sent);
  expect_quiet(loop, c, 30, "WRITE while the connection is full");

  /* The peer drains it: room again, WRITE is recorded. */
  size_t drained = 0;
  T_OK(pier_ioctl(s, PIER_FIONBIO, &(int){1}));
  uint64_t until = t_now_ms() + 5000;
  pier_net_events got;
  memset(&got, 0, sizeof got);
  while (!(got.events & PIER_EV_WRITE) && t_now_ms() < until) {
    memset(&op, 0, sizeof op);
    pier_buf b = pier_buf_init(buf, sizeof buf);
    if (pier_recv(s, &op, &b, 1, 0, NULL) == 0) drained += op.bytes;
    else run_for(loop, 2);
    T_OK(pier_enum_network_events(c, &got));
  }
  ck_assert_msg(got.events & PIER_EV_WRITE,
                "no WRITE after the peer drained %zu bytes", drained);
  ck_assert_int_eq(got.errors[PIER_EV_WRITE_BIT], 0);

  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(connect_refused_reports_its_error) {
  pier_loop *loop = t_loop_new();
  /* A port with no listener: bind one, note it, close it. */
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, "tcp4", &addr, &alen);
  T_OK(pier_close(l, NULL));
  run_for(loop, 10);

  pier_socket *c;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &c));
  watch w;
  select_on(c, &w, PIER_EV_CONNECT | PIER_EV_WRITE);
  pier_op cop;
  int done = 0;
  memset(&cop, 0, sizeof cop);
  cop.data = &done;
  T_OK(pier_connect(c, &cop, (struct sockaddr *)&addr, alen, NULL, NULL,
                    t_count_cb));
  pier_net_events ev = wait_events(loop, c, PIER_EV_CONNECT);
  ck_assert_msg(ev.errors[PIER_EV_CONNECT_BIT] == PIER_ECONNREFUSED,
                "CONNECT error %s", pier_err_name(ev.errors[PIER_EV_CONNECT_BIT]));
  ck_assert_msg(!(ev.events & PIER_EV_WRITE), "WRITE after a failed connect");
  t_run_until(loop, &done, 3000);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(accept_again_only_after_an_accept) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, "tcp4", &addr, &alen);
  watch w;
  select_on(l, &w, PIER_EV_ACCEPT);
  expect_quiet(loop, l, 30, "no connection yet");

  pier_os_socket a = t_os_connect(&addr, alen);
  pier_os_socket b = t_os_connect(&addr, alen);
  wait_events(loop, l, PIER_EV_ACCEPT);
  expect_quiet(loop, l, 50, "ACCEPT again without an accept");

  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_accept(l, &op, NULL, NULL, NULL)); /* the first */
  pier_socket *s1 = op.accepted;
  wait_events(loop, l, PIER_EV_ACCEPT);      /* the second still waits */
  memset(&op, 0, sizeof op);
  T_OK(pier_accept(l, &op, NULL, NULL, NULL));
  pier_socket *s2 = op.accepted;
  expect_quiet(loop, l, 50, "ACCEPT with nothing waiting");

  t_os_close(a);
  t_os_close(b);
  T_OK(pier_close(s1, NULL));
  T_OK(pier_close(s2, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(close_once_after_the_data) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  watch w;
  select_on(s, &w, PIER_EV_READ | PIER_EV_CLOSE);
  char out[100], in[100];
  t_fill(out, sizeof out, 3, 0);
  send_all(c, out, sizeof out);
  T_OK(pier_shutdown(c, PIER_SHUT_WR));

  pier_net_events ev = wait_events(loop, s, PIER_EV_READ);
  ck_assert_msg(!(ev.events & PIER_EV_CLOSE), "CLOSE before the data was read");
  expect_quiet(loop, s, 50, "CLOSE with data unread");

  size_t got = 0;
  while (got < sizeof in) got += recv_some(s, in + got, sizeof in - got, 0);
  ck_assert_uint_eq(t_verify(in, sizeof in, 3, 0), (size_t)-1);
  ev = wait_events(loop, s, PIER_EV_CLOSE);
  ck_assert_int_eq(ev.errors[PIER_EV_CLOSE_BIT], 0);
  ck_assert_uint_eq(recv_some(s, in, sizeof in, 0), 0); /* end of stream */
  expect_quiet(loop, s, 50, "CLOSE twice");

  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(close_after_reset_says_so) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, "tcp4", &addr, &alen);
  pier_os_socket h = t_os_connect(&addr, alen);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_accept(l, &op, NULL, NULL, NULL));
  pier_socket *s = op.accepted;
  watch w;
  select_on(s, &w, PIER_EV_CLOSE);
  ck_assert_int_eq(t_os_setlinger0(h), 0);
  t_os_close(h); /* a reset */
  pier_net_events ev = wait_events(loop, s, PIER_EV_CLOSE);
  int err = ev.errors[PIER_EV_CLOSE_BIT];
  /* Wine records FD_CLOSE after a reset with no error, and by then its
     socket no longer holds the reset either (doc/providers.md). */
  if (!(t_under_wine() && err == 0))
    ck_assert_msg(err == PIER_ECONNRESET || err == PIER_ECONNABORTED,
                  "CLOSE error %d (%s)", err, pier_err_name(err));
  T_OK(pier_close(s, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(oob_again_only_after_an_oob_receive) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  watch w;
  select_on(s, &w, PIER_EV_OOB);
  pier_op op;
  memset(&op, 0, sizeof op);
  char u = 'U', got = 0;
  pier_buf b = pier_buf_init(&u, 1);
  T_OK(pier_send(c, &op, &b, 1, PIER_MSG_OOB, NULL));
  wait_events(loop, s, PIER_EV_OOB);
  expect_quiet(loop, s, 50, "OOB again without an urgent receive");
  ck_assert_uint_eq(recv_some(s, &got, 1, PIER_MSG_OOB), 1);
  ck_assert_int_eq(got, 'U');
  memset(&op, 0, sizeof op);
  u = 'V';
  T_OK(pier_send(c, &op, &b, 1, PIER_MSG_OOB, NULL));
  wait_events(loop, s, PIER_EV_OOB);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(udp_read) {
  pier_loop *loop = t_loop_new();
  const pier_protocol_info *udp = pier_protocol_find("udp4");
  pier_socket *a, *b;
  T_OK(pier_socket_open(loop, udp, 0, &a));
  T_OK(pier_socket_open(loop, udp, 0, &b));
  struct sockaddr_storage addr;
  size_t alen;
  t_loopback("udp4", &addr, &alen);
  T_OK(pier_bind(a, (struct sockaddr *)&addr, alen));
  alen = sizeof addr;
  T_OK(pier_getsockname(a, &addr, &alen));
  watch w;
  select_on(a, &w, PIER_EV_READ);
  pier_op op;
  memset(&op, 0, sizeof op);
  char d[32];
  t_fill(d, sizeof d, 4, 0);
  pier_buf buf = pier_buf_init(d, sizeof d);
  T_OK(pier_sendto(b, &op, &buf, 1, 0, (struct sockaddr *)&addr, alen, NULL));
  wait_events(loop, a, PIER_EV_READ);
  T_OK(pier_close(a, NULL));
  T_OK(pier_close(b, NULL));
  t_loop_free(loop);
}
END_TEST

/* An accepted socket takes its listener's selection (Winsock's rule). */
START_TEST(accepted_socket_inherits_selection) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, "tcp4", &addr, &alen);
  watch w;
  select_on(l, &w, PIER_EV_ACCEPT | PIER_EV_READ | PIER_EV_WRITE);
  pier_os_socket h = t_os_connect(&addr, alen);
  wait_events(loop, l, PIER_EV_ACCEPT);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_accept(l, &op, NULL, NULL, NULL));
  pier_socket *s = op.accepted;
  watch ws;
  memset(&ws, 0, sizeof ws);
  pier_socket_set_data(s, &ws); /* the inherited callback finds this */
  wait_events(loop, s, PIER_EV_WRITE);    /* it can send */
  char out[8] = "inherit";
  ck_assert_int_eq(t_os_send(h, out, sizeof out), (long)sizeof out);
  wait_events(loop, s, PIER_EV_READ);
  ck_assert_int_ge(ws.calls, 1);
  t_os_close(h);
  T_OK(pier_close(s, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/* Replacing, stopping, bad input, and no callback after close. */
START_TEST(select_rules_and_bad_input) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  watch w;
  pier_net_events ev;
  T_ERR(pier_event_select(NULL, PIER_EV_READ, on_events), PIER_EINVAL);
  T_ERR(pier_event_select(s, 0x40, on_events), PIER_EINVAL);
  T_ERR(pier_event_select(s, PIER_EV_READ, NULL), PIER_EINVAL);
  T_ERR(pier_enum_network_events(s, NULL), PIER_EINVAL);
  T_ERR(pier_enum_network_events(NULL, &ev), PIER_EINVAL);
  T_OK(pier_enum_network_events(s, &ev)); /* never selected: empty */
  ck_assert_uint_eq(ev.events, 0);

  /* Selection 0 stops recording. */
  select_on(s, &w, PIER_EV_READ);
  T_OK(pier_event_select(s, 0, NULL));
  char out[4] = "abcd";
  send_all(c, out, sizeof out);
  expect_quiet(loop, s, 50, "recorded after selecting nothing");
  ck_assert_int_eq(w.calls, 0);

  /* A new selection sees the data already waiting. */
  select_on(s, &w, PIER_EV_READ);
  wait_events(loop, s, PIER_EV_READ);

  /* No callback after pier_close; the socket refuses new selections. */
  send_all(c, out, sizeof out);
  T_OK(pier_event_select(s, PIER_EV_READ | PIER_EV_CLOSE, on_events));
  T_OK(pier_close(s, NULL));
  int calls = w.calls;
  T_ERR(pier_event_select(s, PIER_EV_READ, on_events), PIER_EBADF);
  T_ERR(pier_enum_network_events(s, &ev), PIER_EBADF);
  run_for(loop, 30);
  ck_assert_int_eq(w.calls, calls);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
}
END_TEST

Suite *suite_netevents(void) {
  Suite *s = suite_create("netevents");
  TCase *tc = tcase_create("rules");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, read_again_only_after_a_receive);
  tcase_add_test(tc, connect_then_write_then_only_after_wouldblock);
  tcase_add_test(tc, connect_refused_reports_its_error);
  tcase_add_test(tc, accept_again_only_after_an_accept);
  tcase_add_test(tc, close_once_after_the_data);
  tcase_add_test(tc, close_after_reset_says_so);
  tcase_add_test(tc, oob_again_only_after_an_oob_receive);
  tcase_add_test(tc, udp_read);
  tcase_add_test(tc, accepted_socket_inherits_selection);
  tcase_add_test(tc, select_rules_and_bad_input);
  suite_add_tcase(s, tc);
  return s;
}
