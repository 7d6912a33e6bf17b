/* SPDX-License-Identifier: MIT */
/*
 * tests/test_edges.c - readiness that is reported once per change (the
 * libevent provider registers each socket once, edge-triggered) must
 * never leave an operation waiting for news that will not come.
 *
 *   - bytes left behind by a read() on the OS handle, after the loop saw
 *     them arrive with no receive pending, are received at once;
 *   - a receive posted after read() took everything waits, and completes
 *     with the next bytes, round after round;
 *   - an urgent (OOB) receive waits quietly - the loop is not woken
 *     while nothing arrives - and completes when the urgent byte does;
 *     the same for the OOB network event;
 *   - a poll bounded by a far deadline, woken by I/O whose callback starts
 *     a nearer timer, ends in time for the nearer one.
 *
 * Every provider runs them: they are semantics, not implementation.
 */
#include "helpers.h"

#include <pthread.h>
#include <string.h>

static void settle(pier_loop *loop) {
  for (int i = 0; i < 3; i++) {
    t_sleep_ms(20); /* loopback delivery */
    pier_loop_run(loop, PIER_RUN_NOWAIT);
  }
}

/* Write len bytes of text on the OS handle of s. */
static void os_send(pier_socket *s, const char *text) {
  size_t len = strlen(text);
  long n = t_os_send(pier_socket_handle(s), text, len);
  ck_assert_msg(n == (long)len, "send: %ld of %zu (%s)", n, len,
                t_os_strerror(t_os_errno()));
}

typedef struct got {
  int done, status;
  size_t bytes;
  unsigned flags;
  char buf[64];
} got;

static void got_cb(pier_op *op, int status) {
  got *g = op->data;
  g->status = status;
  g->bytes = op->bytes;
  g->flags = op->flags;
  g->done = 1;
}

static void start_recv(pier_socket *s, pier_op *op, got *g, pier_buf *b,
                       unsigned flags) {
  memset(op, 0, sizeof *op);
  memset(g, 0, sizeof *g);
  *b = pier_buf_init(g->buf, sizeof g->buf - 1);
  op->data = g;
  T_OK(pier_recv(s, op, b, 1, flags, got_cb));
}

static void expect(pier_loop *loop, got *g, const char *text) {
  t_run_until(loop, &g->done, 3000);
  T_OK(g->status);
  ck_assert_uint_eq(g->bytes, strlen(text));
  ck_assert_str_eq(g->buf, text);
}

START_TEST(bytes_left_by_an_os_read_are_received_at_once) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  os_send(c, "0123456789");
  settle(loop); /* the arrival is seen with no receive pending */
  char head[4];
  ck_assert_int_eq(t_os_read(pier_socket_handle(s), head, sizeof head), 4);
  pier_op op;
  pier_buf b;
  got g;
  start_recv(s, &op, &g, &b, 0);
  expect(loop, &g, "456789");
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(receive_after_an_os_read_took_all_waits_for_the_next_bytes) {
  static const char *const rounds[] = { "abc", "defgh", "i", "jklmnopq" };
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  for (int i = 0; i < 4; i++) {
    char junk[32];
    os_send(c, "taken by read()");
    settle(loop);
    long n = t_os_read(pier_socket_handle(s), junk, sizeof junk);
    ck_assert_int_eq(n, (long)strlen("taken by read()"));
    pier_op op;
    pier_buf b;
    got g;
    start_recv(s, &op, &g, &b, 0);
    settle(loop);
    ck_assert_msg(!g.done, "round %d: receive completed with nothing sent "
                  "(status %s, %zu bytes)", i, pier_err_name(g.status),
                  g.bytes);
    os_send(c, rounds[i]);
    expect(loop, &g, rounds[i]);
  }
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

static void fired_cb(pier_timer *t) { *(int *)t->data = 1; }

/* Run the loop one poll at a time until *flag (or 1000 wakes); how many. */
static int wakes_until(pier_loop *loop, volatile int *flag) {
  int wakes = 0;
  while (!*flag && wakes < 1000) {
    pier_loop_run(loop, PIER_RUN_ONCE);
    wakes++;
  }
  return wakes;
}

START_TEST(oob_receive_waits_quietly_and_completes_on_the_urgent_byte) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  pier_op rop;
  pier_buf rb;
  got g;
  start_recv(s, &rop, &g, &rb, PIER_MSG_OOB);
  settle(loop);
  ck_assert_int_eq(g.done, 0);
  /* Nothing arrives for 300 ms: the loop sleeps until its timer. */
  pier_timer t;
  int fired = 0;
  T_OK(pier_timer_init(loop, &t));
  t.data = &fired;
  T_OK(pier_timer_start(&t, 300, 0, fired_cb));
  int wakes = wakes_until(loop, &fired);
  ck_assert_msg(wakes <= 5, "the loop woke %d times in 300 ms with only an "
                "urgent receive waiting", wakes);
  /* The urgent byte, then ordinary data, which stays whole. */
  char bang = '!';
  pier_buf sb = pier_buf_init(&bang, 1);
  pier_op sop;
  got sg;
  memset(&sop, 0, sizeof sop);
  memset(&sg, 0, sizeof sg);
  sop.data = &sg;
  T_OK(pier_send(c, &sop, &sb, 1, PIER_MSG_OOB, got_cb));
  uint64_t t0 = t_now_ms();
  t_run_until(loop, &g.done, 3000);
  uint64_t took = t_now_ms() - t0;
  ck_assert_msg(took < 1000, "the urgent byte took %llu ms",
                (unsigned long long)took);
  T_OK(g.status);
  ck_assert_uint_eq(g.bytes, 1);
  ck_assert_int_eq(g.buf[0], '!');
  ck_assert_msg(g.flags & PIER_MSG_OOB, "flags 0x%x lack PIER_MSG_OOB",
                g.flags);
  t_run_until(loop, &sg.done, 3000);
  T_OK(sg.status);
  pier_op op;
  pier_buf b;
  got d;
  start_recv(s, &op, &d, &b, 0);
  os_send(c, "after");
  expect(loop, &d, "after");
  pier_timer_stop(&t);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

static unsigned oob_events;

static void oob_event_cb(pier_socket *s, unsigned events) {
  (void)s;
  oob_events |= events;
}

START_TEST(oob_event_waits_quietly_and_comes_with_the_urgent_byte) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  oob_events = 0;
  T_OK(pier_event_select(s, PIER_EV_OOB, oob_event_cb));
  pier_loop_ref(loop);
  settle(loop);
  ck_assert_uint_eq(oob_events, 0);
  pier_timer t;
  int fired = 0;
  T_OK(pier_timer_init(loop, &t));
  t.data = &fired;
  T_OK(pier_timer_start(&t, 300, 0, fired_cb));
  int wakes = wakes_until(loop, &fired);
  ck_assert_msg(wakes <= 5, "the loop woke %d times in 300 ms with only an "
                "OOB event selected", wakes);
  char bang = '!';
  pier_buf sb = pier_buf_init(&bang, 1);
  pier_op sop;
  got sg;
  memset(&sop, 0, sizeof sop);
  memset(&sg, 0, sizeof sg);
  sop.data = &sg;
  T_OK(pier_send(c, &sop, &sb, 1, PIER_MSG_OOB, got_cb));
  uint64_t t0 = t_now_ms();
  while (!(oob_events & PIER_EV_OOB) && t_now_ms() - t0 < 3000)
    pier_loop_run(loop, PIER_RUN_ONCE);
  ck_assert_msg(oob_events & PIER_EV_OOB, "no OOB event in 3 s");
  ck_assert_msg(t_now_ms() - t0 < 1000, "the OOB event took %llu ms",
                (unsigned long long)(t_now_ms() - t0));
  t_run_until(loop, &sg.done, 3000);
  pier_loop_unref(loop);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

/* ---- a nearer deadline after a later one ---- */

typedef struct deadlines {
  pier_socket *sender;
  pier_timer soon;
  int soon_fired, late_fired;
  uint64_t started, soon_at;
} deadlines;

static deadlines nr;

static void *send_later(void *arg) {
  (void)arg;
  t_sleep_ms(50);
  os_send(nr.sender, "x");
  return NULL;
}

static void soon_cb(pier_timer *t) {
  (void)t;
  nr.soon_at = t_now_ms();
  nr.soon_fired = 1;
}

static void late_cb(pier_timer *t) {
  (void)t;
  nr.late_fired = 1;
}

/* The receive completes while the loop waits for the late timer: start
   the nearer one from its callback. */
static void woke_cb(pier_op *op, int status) {
  got_cb(op, status);
  T_OK(pier_timer_start(&nr.soon, 100, 0, soon_cb));
  nr.started = t_now_ms();
}

START_TEST(nearer_timer_started_during_a_long_poll_fires_on_time) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  memset(&nr, 0, sizeof nr);
  nr.sender = c;
  pier_timer late;
  T_OK(pier_timer_init(loop, &late));
  T_OK(pier_timer_init(loop, &nr.soon));
  T_OK(pier_timer_start(&late, 3000, 0, late_cb));
  pier_op op;
  got g;
  pier_buf b;
  memset(&op, 0, sizeof op);
  memset(&g, 0, sizeof g);
  b = pier_buf_init(g.buf, sizeof g.buf - 1);
  op.data = &g;
  T_OK(pier_recv(s, &op, &b, 1, 0, woke_cb));
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, send_later, NULL), 0);
  wakes_until(loop, &nr.soon_fired); /* no ticking timer of t_run_until */
  pthread_join(th, NULL);
  ck_assert_msg(!nr.late_fired, "the 3 s timer fired first");
  ck_assert_msg(nr.soon_at - nr.started < 1000, "a 100 ms timer took %llu ms",
                (unsigned long long)(nr.soon_at - nr.started));
  T_OK(pier_timer_stop(&late));
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

Suite *suite_edges(void) {
  Suite *s = suite_create("edges");
  TCase *tc = tcase_create("oshandle");
  tcase_add_test(tc, bytes_left_by_an_os_read_are_received_at_once);
  tcase_add_test(tc,
                 receive_after_an_os_read_took_all_waits_for_the_next_bytes);
  suite_add_tcase(s, tc);
  tc = tcase_create("urgent");
  tcase_add_test(tc,
                 oob_receive_waits_quietly_and_completes_on_the_urgent_byte);
  tcase_add_test(tc, oob_event_waits_quietly_and_comes_with_the_urgent_byte);
  suite_add_tcase(s, tc);
  tc = tcase_create("timeout");
  tcase_add_test(tc, nearer_timer_started_during_a_long_poll_fires_on_time);
  suite_add_tcase(s, tc);
  return s;
}
