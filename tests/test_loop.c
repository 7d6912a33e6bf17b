/* SPDX-License-Identifier: MIT */
/*
 * tests/test_loop.c - loops: create and free, provider selection
 * ($PIER_BACKEND, options, pier_providers), run modes, stop, ref/unref,
 * re-entrancy, pier_loop_free refusing while something is alive,
 * pier_loop_close, user data and the loop clock.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* create, free, providers                                             */
/* ------------------------------------------------------------------ */

START_TEST(loop_new_then_free_succeeds) {
  pier_loop *loop = NULL;
  T_OK(pier_loop_new(NULL, &loop));
  ck_assert_ptr_nonnull(loop);
  T_OK(pier_loop_free(loop));
}
END_TEST

START_TEST(backend_is_pier_backend_env_and_listed) {
  pier_loop *loop = t_loop_new();
  const char *name = pier_loop_backend(loop);
  const char *env = getenv("PIER_BACKEND");
  const char *names[32];
  size_t n = pier_providers(names, 32);
  int listed = 0;
  ck_assert_ptr_nonnull(name);
  if (env != NULL && *env != '\0') ck_assert_str_eq(name, env);
  for (size_t i = 0; i < n && i < 32; i++)
    if (strcmp(names[i], name) == 0) listed = 1;
  ck_assert_msg(listed, "backend \"%s\" missing from pier_providers()", name);
  t_loop_free(loop);
}
END_TEST

START_TEST(providers_counts_and_fills_up_to_cap) {
  const char *all[32], *one[2] = {NULL, "sentinel"};
  size_t n = pier_providers(NULL, 0);
  ck_assert_uint_ge(n, 1);
  ck_assert_uint_le(n, 32);
  ck_assert_uint_eq(pier_providers(all, 32), n);
  for (size_t i = 0; i < n; i++) {
    ck_assert_ptr_nonnull(all[i]);
    ck_assert_uint_gt(strlen(all[i]), 0);
    for (size_t j = 0; j < i; j++) ck_assert_str_ne(all[i], all[j]);
  }
  ck_assert_uint_eq(pier_providers(one, 1), n);
  ck_assert_str_eq(one[0], all[0]);
  ck_assert_str_eq(one[1], "sentinel");
}
END_TEST

START_TEST(provider_named_in_options_is_used) {
  pier_loop *probe = t_loop_new(), *loop = NULL;
  pier_loop_options opts;
  memset(&opts, 0, sizeof opts);
  opts.size = sizeof opts;
  opts.provider = pier_loop_backend(probe);
  T_OK(pier_loop_new(&opts, &loop));
  ck_assert_str_eq(pier_loop_backend(loop), opts.provider);
  t_loop_free(loop);
  t_loop_free(probe);
}
END_TEST

START_TEST(unknown_provider_gives_enoprovider) {
  pier_loop *loop = NULL;
  pier_loop_options opts;
  memset(&opts, 0, sizeof opts);
  opts.size = sizeof opts;
  opts.provider = "no-such-provider";
  T_ERR(pier_loop_new(&opts, &loop), PIER_ENOPROVIDER);
}
END_TEST

/* ------------------------------------------------------------------ */
/* run modes, stop, ref                                                */
/* ------------------------------------------------------------------ */

START_TEST(run_nowait_with_nothing_alive_returns_0) {
  pier_loop *loop = t_loop_new();
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  t_loop_free(loop);
}
END_TEST

START_TEST(run_default_with_nothing_alive_returns_0_at_once) {
  pier_loop *loop = t_loop_new();
  uint64_t t0 = t_now_ms();
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_uint_lt(t_now_ms() - t0, 1000);
  t_loop_free(loop);
}
END_TEST

static void count_timer_cb(pier_timer *t) { (*(int *)t->data)++; }

START_TEST(run_default_returns_when_last_timer_fired) {
  pier_loop *loop = t_loop_new();
  pier_timer t;
  int fired = 0;
  T_OK(pier_timer_init(loop, &t));
  t.data = &fired;
  T_OK(pier_timer_start(&t, 20, 0, count_timer_cb));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(fired, 1);
  t_loop_free(loop);
}
END_TEST

/* Timer payload: the loop and a counter. */
typedef struct tctx { pier_loop *loop; int fired; } tctx;

static void stop_timer_cb(pier_timer *t) {
  tctx *c = t->data;
  c->fired++;
  T_OK(pier_loop_stop(c->loop));
}

START_TEST(stop_from_timer_ends_default_run_kept_alive_by_ref) {
  pier_loop *loop = t_loop_new();
  pier_timer t;
  tctx c = {loop, 0};
  T_OK(pier_loop_ref(loop));
  T_OK(pier_timer_init(loop, &t));
  t.data = &c;
  T_OK(pier_timer_start(&t, 20, 0, stop_timer_cb));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 1);
  ck_assert_int_eq(c.fired, 1);
  T_OK(pier_loop_unref(loop));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  t_loop_free(loop);
}
END_TEST

static void *stop_thread(void *arg) {
  t_sleep_ms(50);
  pier_loop_stop(arg);
  return NULL;
}

START_TEST(stop_from_another_thread_wakes_and_ends_default_run) {
  pier_loop *loop = t_loop_new();
  pier_timer safety;
  pthread_t th;
  tctx c = {loop, 0};
  T_OK(pier_loop_ref(loop));
  T_OK(pier_timer_init(loop, &safety));
  safety.data = &c;
  T_OK(pier_timer_start(&safety, 3000, 0, stop_timer_cb));
  ck_assert_int_eq(pthread_create(&th, NULL, stop_thread, loop), 0);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 1);
  pthread_join(th, NULL);
  ck_assert_msg(c.fired == 0,
                "the run only ended when the 3 s safety timer fired");
  T_OK(pier_timer_stop(&safety));
  T_OK(pier_loop_unref(loop));
  t_loop_free(loop);
}
END_TEST

START_TEST(ref_keeps_loop_alive_unref_releases_it) {
  pier_loop *loop = t_loop_new();
  T_OK(pier_loop_ref(loop));
  T_OK(pier_loop_ref(loop));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 1);
  T_OK(pier_loop_unref(loop));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 1);
  T_OK(pier_loop_unref(loop));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  T_ERR(pier_loop_unref(loop), PIER_EINVAL);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  t_loop_free(loop);
}
END_TEST

START_TEST(bad_run_mode_gives_einval) {
  pier_loop *loop = t_loop_new();
  pier_timer t;
  int fired = 0;
  T_OK(pier_timer_init(loop, &t));
  t.data = &fired;
  T_OK(pier_timer_start(&t, 0, 0, count_timer_cb));
  T_ERR(pier_loop_run(loop, (pier_run_mode)42), PIER_EINVAL);
  T_ERR(pier_loop_run(loop, (pier_run_mode)-1), PIER_EINVAL);
  ck_assert_int_eq(fired, 0); /* refused runs ran nothing */
  t_run_until(loop, &fired, 2000);
  t_loop_free(loop);
}
END_TEST

typedef struct reentry { pier_loop *loop; int rc[3], fired; } reentry;

static void reenter_cb(pier_timer *t) {
  reentry *r = t->data;
  r->rc[0] = pier_loop_run(r->loop, PIER_RUN_NOWAIT);
  r->rc[1] = pier_loop_run(r->loop, PIER_RUN_ONCE);
  r->rc[2] = pier_loop_run(r->loop, PIER_RUN_DEFAULT);
  r->fired++;
}

START_TEST(run_from_inside_a_callback_gives_ebusy) {
  pier_loop *loop = t_loop_new();
  pier_timer t;
  reentry r = {loop, {1, 1, 1}, 0};
  T_OK(pier_timer_init(loop, &t));
  t.data = &r;
  T_OK(pier_timer_start(&t, 1, 0, reenter_cb));
  t_run_until(loop, &r.fired, 2000);
  for (int i = 0; i < 3; i++) T_ERR(r.rc[i], PIER_EBUSY);
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* free refuses while alive; close                                     */
/* ------------------------------------------------------------------ */

static void close_count_cb(pier_socket *s) {
  (*(int *)pier_socket_get_data(s))++;
}

START_TEST(free_refuses_while_socket_open_or_closing) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  int closed = 0;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  pier_socket_set_data(s, &closed);
  T_ERR(pier_loop_free(loop), PIER_EBUSY);
  T_OK(pier_close(s, close_count_cb));
  T_ERR(pier_loop_free(loop), PIER_EBUSY);
  t_run_until(loop, &closed, 2000);
  T_OK(pier_loop_free(loop));
}
END_TEST

START_TEST(free_refuses_while_timer_active) {
  pier_loop *loop = t_loop_new();
  pier_timer t;
  int fired = 0;
  T_OK(pier_timer_init(loop, &t));
  t.data = &fired;
  T_OK(pier_timer_start(&t, 10000, 0, count_timer_cb));
  T_ERR(pier_loop_free(loop), PIER_EBUSY);
  ck_assert_int_eq(pier_timer_active(&t), 1); /* the refusal freed nothing */
  T_OK(pier_timer_stop(&t));
  T_OK(pier_loop_free(loop));
}
END_TEST

START_TEST(free_refuses_while_post_undelivered) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  int delivered = 0;
  memset(&op, 0, sizeof op);
  op.data = &delivered;
  T_OK(pier_loop_post(loop, &op, t_count_cb));
  T_ERR(pier_loop_free(loop), PIER_EBUSY);
  t_run_until(loop, &delivered, 2000);
  ck_assert_int_eq(delivered, 1);
  T_OK(pier_loop_free(loop));
}
END_TEST

START_TEST(closed_loop_refuses_sockets_timers_posts) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  pier_timer t;
  pier_op op;
  int fired = 0;
  memset(&op, 0, sizeof op);
  op.data = &fired;
  T_OK(pier_timer_init(loop, &t));
  t.data = &fired;
  T_OK(pier_loop_close(loop));
  T_OK(pier_loop_close(loop)); /* idempotent */
  T_ERR(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s),
        PIER_ESHUTDOWN);
  ck_assert_ptr_null(s);
  T_ERR(pier_timer_start(&t, 1, 0, count_timer_cb), PIER_ESHUTDOWN);
  ck_assert_int_eq(pier_timer_active(&t), 0);
  T_ERR(pier_loop_post(loop, &op, t_count_cb), PIER_ESHUTDOWN);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  ck_assert_int_eq(fired, 0);
  T_OK(pier_loop_free(loop));
}
END_TEST

START_TEST(closed_loop_still_serves_open_sockets_until_closed) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  struct sockaddr_storage a;
  size_t len;
  int closed = 0;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  pier_socket_set_data(s, &closed);
  T_OK(pier_loop_close(loop));
  t_loopback("tcp4", &a, &len);
  T_OK(pier_bind(s, (struct sockaddr *)&a, len));
  T_OK(pier_listen(s, 4));
  T_OK(pier_close(s, close_count_cb));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(closed, 1);
  T_OK(pier_loop_free(loop));
}
END_TEST

/* ------------------------------------------------------------------ */
/* data, clock                                                         */
/* ------------------------------------------------------------------ */

START_TEST(set_data_then_get_data_returns_it) {
  pier_loop *loop = t_loop_new();
  int x;
  pier_loop_set_data(loop, &x);
  ck_assert_ptr_eq(pier_loop_get_data(loop), &x);
  pier_loop_set_data(loop, NULL);
  ck_assert_ptr_null(pier_loop_get_data(loop));
  t_loop_free(loop);
}
END_TEST

typedef struct clock_probe { pier_loop *loop; uint64_t at; int fired; } clock_probe;

static void clock_cb(pier_timer *t) {
  clock_probe *p = t->data;
  p->at = pier_loop_now(p->loop);
  p->fired++;
}

START_TEST(loop_now_advances_with_time) {
  pier_loop *loop = t_loop_new();
  pier_timer t;
  clock_probe p = {loop, 0, 0};
  uint64_t t0, t1;
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  t0 = pier_loop_now(loop);
  T_OK(pier_timer_init(loop, &t));
  t.data = &p;
  T_OK(pier_timer_start(&t, 50, 0, clock_cb));
  t_run_until(loop, &p.fired, 2000);
  ck_assert_uint_ge(p.at, t0 + 50);
  ck_assert_uint_ge(pier_loop_now(loop), p.at);
  t1 = p.at;
  t_sleep_ms(30);
  T_OK(pier_timer_start(&t, 0, 0, clock_cb));
  t_run_until_count(loop, &p.fired, 2, 2000);
  ck_assert_uint_ge(p.at, t1 + 30);
  t_loop_free(loop);
}
END_TEST

Suite *suite_loop(void) {
  Suite *s = suite_create("loop");
  TCase *tc = tcase_create("create");
  tcase_add_test(tc, loop_new_then_free_succeeds);
  tcase_add_test(tc, backend_is_pier_backend_env_and_listed);
  tcase_add_test(tc, providers_counts_and_fills_up_to_cap);
  tcase_add_test(tc, provider_named_in_options_is_used);
  tcase_add_test(tc, unknown_provider_gives_enoprovider);
  suite_add_tcase(s, tc);

  tc = tcase_create("run");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, run_nowait_with_nothing_alive_returns_0);
  tcase_add_test(tc, run_default_with_nothing_alive_returns_0_at_once);
  tcase_add_test(tc, run_default_returns_when_last_timer_fired);
  tcase_add_test(tc, stop_from_timer_ends_default_run_kept_alive_by_ref);
  tcase_add_test(tc, stop_from_another_thread_wakes_and_ends_default_run);
  tcase_add_test(tc, ref_keeps_loop_alive_unref_releases_it);
  tcase_add_test(tc, bad_run_mode_gives_einval);
  tcase_add_test(tc, run_from_inside_a_callback_gives_ebusy);
  suite_add_tcase(s, tc);

  tc = tcase_create("lifetime");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, free_refuses_while_socket_open_or_closing);
  tcase_add_test(tc, free_refuses_while_timer_active);
  tcase_add_test(tc, free_refuses_while_post_undelivered);
  tcase_add_test(tc, closed_loop_refuses_sockets_timers_posts);
  tcase_add_test(tc, closed_loop_still_serves_open_sockets_until_closed);
  tcase_add_test(tc, set_data_then_get_data_returns_it);
  tcase_add_test(tc, loop_now_advances_with_time);
  suite_add_tcase(s, tc);
  return s;
}
