/* SPDX-License-Identifier: MIT */
/*
 * tests/test_timer.c - timers: firing order by timeout and, for equal
 * timeouts, by start order; repeating timers; restart; stop (also of an
 * inactive timer and from another timer's callback); pier_timer_active;
 * no early firing; callbacks never run inside pier_timer_start.
 */
#include "helpers.h"

#include <string.h>

#define MAXT 8

/* Shared record of which timer fired when. */
typedef struct record {
  pier_loop *loop;
  int order[64];
  int n;
} record;

typedef struct ttimer {
  pier_timer t;
  record *rec;
  int id;
  int fired;
  int stop_after;  /* repeating: stop itself after this many firings */
  int active_in_cb; /* pier_timer_active() seen inside the callback */
  pier_timer *victim; /* stopped by this one's callback */
} ttimer;

static void record_cb(pier_timer *t) {
  ttimer *tt = t->data;
  tt->fired++;
  tt->active_in_cb = pier_timer_active(t);
  if (tt->rec->n < 64) tt->rec->order[tt->rec->n++] = tt->id;
  if (tt->stop_after && tt->fired == tt->stop_after) T_OK(pier_timer_stop(t));
  if (tt->victim) T_OK(pier_timer_stop(tt->victim));
}

static void tt_init(pier_loop *loop, ttimer *tt, record *rec, int id) {
  memset(tt, 0, sizeof *tt);
  T_OK(pier_timer_init(loop, &tt->t));
  tt->t.data = tt;
  tt->rec = rec;
  tt->id = id;
}

START_TEST(one_shot_timers_fire_in_timeout_order) {
  static const uint64_t timeouts[5] = {50, 10, 40, 20, 30};
  static const int expect[5] = {1, 3, 4, 2, 0};
  pier_loop *loop = t_loop_new();
  record rec = {loop, {0}, 0};
  ttimer tt[5];
  for (int i = 0; i < 5; i++) {
    tt_init(loop, &tt[i], &rec, i);
    T_OK(pier_timer_start(&tt[i].t, timeouts[i], 0, record_cb));
  }
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(rec.n, 5);
  for (int i = 0; i < 5; i++) ck_assert_int_eq(rec.order[i], expect[i]);
  t_loop_free(loop);
}
END_TEST

START_TEST(equal_timeouts_fire_in_start_order) {
  static const int starts[MAXT] = {3, 0, 7, 5, 1, 6, 2, 4};
  pier_loop *loop = t_loop_new();
  record rec = {loop, {0}, 0};
  ttimer tt[MAXT];
  for (int i = 0; i < MAXT; i++) tt_init(loop, &tt[i], &rec, i);
  for (int i = 0; i < MAXT; i++)
    T_OK(pier_timer_start(&tt[starts[i]].t, 20, 0, record_cb));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(rec.n, MAXT);
  for (int i = 0; i < MAXT; i++) ck_assert_int_eq(rec.order[i], starts[i]);
  t_loop_free(loop);
}
END_TEST

START_TEST(repeating_timer_fires_n_times_then_stops_in_callback) {
  pier_loop *loop = t_loop_new();
  record rec = {loop, {0}, 0};
  ttimer tt;
  tt_init(loop, &tt, &rec, 0);
  tt.stop_after = 5;
  T_OK(pier_timer_start(&tt.t, 5, 5, record_cb));
  ck_assert_int_eq(pier_timer_active(&tt.t), 1);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(tt.fired, 5);
  ck_assert_int_eq(tt.active_in_cb, 1); /* repeating: still active in cb */
  ck_assert_int_eq(pier_timer_active(&tt.t), 0);
  t_loop_free(loop);
}
END_TEST

START_TEST(restart_replaces_the_timeout_of_an_active_timer) {
  pier_loop *loop = t_loop_new();
  record rec = {loop, {0}, 0};
  ttimer tt;
  uint64_t t0 = t_now_ms();
  tt_init(loop, &tt, &rec, 0);
  T_OK(pier_timer_start(&tt.t, 5000, 0, record_cb));
  T_OK(pier_timer_start(&tt.t, 20, 0, record_cb));
  ck_assert_int_eq(pier_timer_active(&tt.t), 1);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(tt.fired, 1);
  ck_assert_uint_lt(t_now_ms() - t0, 2000);
  t_loop_free(loop);
}
END_TEST

START_TEST(restart_turns_repeating_timer_into_one_shot) {
  pier_loop *loop = t_loop_new();
  record rec = {loop, {0}, 0};
  ttimer tt;
  tt_init(loop, &tt, &rec, 0);
  T_OK(pier_timer_start(&tt.t, 5, 5, record_cb));
  T_OK(pier_timer_start(&tt.t, 10, 0, record_cb));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(tt.fired, 1);
  t_loop_free(loop);
}
END_TEST

START_TEST(stop_inactive_timer_is_a_noop) {
  pier_loop *loop = t_loop_new();
  record rec = {loop, {0}, 0};
  ttimer tt;
  tt_init(loop, &tt, &rec, 0);
  T_OK(pier_timer_stop(&tt.t));
  ck_assert_int_eq(pier_timer_active(&tt.t), 0);
  T_OK(pier_timer_start(&tt.t, 10, 0, record_cb));
  T_OK(pier_timer_stop(&tt.t));
  T_OK(pier_timer_stop(&tt.t));
  ck_assert_int_eq(pier_timer_active(&tt.t), 0);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(tt.fired, 0);
  t_loop_free(loop);
}
END_TEST

START_TEST(active_reports_started_until_fired_or_stopped) {
  pier_loop *loop = t_loop_new();
  record rec = {loop, {0}, 0};
  ttimer tt;
  tt_init(loop, &tt, &rec, 0);
  ck_assert_int_eq(pier_timer_active(&tt.t), 0);
  T_OK(pier_timer_start(&tt.t, 10, 0, record_cb));
  ck_assert_int_eq(pier_timer_active(&tt.t), 1);
  t_run_until(loop, &tt.fired, 2000);
  ck_assert_int_eq(pier_timer_active(&tt.t), 0); /* one-shot: done */
  t_loop_free(loop);
}
END_TEST

START_TEST(stopped_from_another_callback_never_fires) {
  pier_loop *loop = t_loop_new();
  record rec = {loop, {0}, 0};
  ttimer a, b;
  tt_init(loop, &a, &rec, 0);
  tt_init(loop, &b, &rec, 1);
  a.victim = &b.t;
  T_OK(pier_timer_start(&a.t, 10, 0, record_cb));
  T_OK(pier_timer_start(&b.t, 40, 0, record_cb));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(a.fired, 1);
  ck_assert_int_eq(b.fired, 0);
  t_loop_free(loop);
}
END_TEST

START_TEST(zero_timeout_fires_from_run_not_from_start) {
  pier_loop *loop = t_loop_new();
  record rec = {loop, {0}, 0};
  ttimer tt;
  tt_init(loop, &tt, &rec, 0);
  T_OK(pier_timer_start(&tt.t, 0, 0, record_cb));
  ck_assert_int_eq(tt.fired, 0);
  t_run_until(loop, &tt.fired, 2000);
  ck_assert_int_eq(tt.fired, 1);
  t_loop_free(loop);
}
END_TEST

typedef struct when { pier_loop *loop; uint64_t loop_at, wall_at; int fired; } when;

static void when_cb(pier_timer *t) {
  when *w = t->data;
  w->loop_at = pier_loop_now(w->loop);
  w->wall_at = t_now_ms();
  w->fired++;
}

START_TEST(timer_never_fires_before_its_timeout) {
  static const uint64_t timeouts[] = {1, 15, 60, 120};
  pier_loop *loop = t_loop_new();
  for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
    pier_timer t;
    when w = {loop, 0, 0, 0};
    uint64_t wall0 = t_now_ms(), loop0;
    ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
    loop0 = pier_loop_now(loop);
    T_OK(pier_timer_init(loop, &t));
    t.data = &w;
    T_OK(pier_timer_start(&t, timeouts[i], 0, when_cb));
    ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
    ck_assert_int_eq(w.fired, 1);
    ck_assert_msg(w.loop_at >= loop0 + timeouts[i],
                  "timeout %d ms fired after %d ms of loop time",
                  (int)timeouts[i], (int)(w.loop_at - loop0));
    ck_assert_msg(w.wall_at + 1 >= wall0 + timeouts[i],
                  "timeout %d ms fired after %d ms of wall time",
                  (int)timeouts[i], (int)(w.wall_at - wall0));
  }
  t_loop_free(loop);
}
END_TEST

Suite *suite_timer(void) {
  Suite *s = suite_create("timer");
  TCase *tc = tcase_create("timer");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, one_shot_timers_fire_in_timeout_order);
  tcase_add_test(tc, equal_timeouts_fire_in_start_order);
  tcase_add_test(tc, repeating_timer_fires_n_times_then_stops_in_callback);
  tcase_add_test(tc, restart_replaces_the_timeout_of_an_active_timer);
  tcase_add_test(tc, restart_turns_repeating_timer_into_one_shot);
  tcase_add_test(tc, stop_inactive_timer_is_a_noop);
  tcase_add_test(tc, active_reports_started_until_fired_or_stopped);
  tcase_add_test(tc, stopped_from_another_callback_never_fires);
  tcase_add_test(tc, zero_timeout_fires_from_run_not_from_start);
  tcase_add_test(tc, timer_never_fires_before_its_timeout);
  suite_add_tcase(s, tc);
  return s;
}
