/* SPDX-License-Identifier: MIT */
/*
 * tests/test_post.c - pier_loop_post: delivery on the loop thread, never
 * inside the call; reuse from the callback; a blocked loop woken by a post
 * from another thread; 4 threads x 1000 posts delivered exactly once;
 * PIER_EBUSY for a pending op; PIER_EINVAL for NULL arguments.
 */
#include "helpers.h"

#include <pthread.h>
#include <string.h>

typedef struct posted {
  pthread_t loop_thread;
  int count;
  int status;
  int on_loop_thread;
} posted;

static void posted_cb(pier_op *op, int status) {
  posted *p = op->data;
  p->count++;
  p->status = status;
  p->on_loop_thread = pthread_equal(pthread_self(), p->loop_thread);
}

START_TEST(post_from_loop_thread_runs_cb_later_with_status_0) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  posted p = {pthread_self(), 0, -1, 0};
  memset(&op, 0, sizeof op);
  op.data = &p;
  T_OK(pier_loop_post(loop, &op, posted_cb));
  ck_assert_int_eq(p.count, 0); /* never from inside the call */
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(p.count, 1);
  ck_assert_int_eq(p.status, 0);
  ck_assert_int_eq(op.status, 0);
  ck_assert_ptr_eq(op.data, &p); /* pier never touches op->data */
  t_loop_free(loop);
}
END_TEST

START_TEST(posting_a_pending_op_gives_ebusy_and_delivers_once) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  int count = 0;
  memset(&op, 0, sizeof op);
  op.data = &count;
  T_OK(pier_loop_post(loop, &op, t_count_cb));
  T_ERR(pier_loop_post(loop, &op, t_count_cb), PIER_EBUSY);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(count, 1);
  T_OK(pier_loop_post(loop, &op, t_count_cb)); /* idle again: reusable */
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(count, 2);
  t_loop_free(loop);
}
END_TEST

START_TEST(post_with_null_arguments_gives_einval) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  int count = 0;
  memset(&op, 0, sizeof op);
  op.data = &count;
  T_ERR(pier_loop_post(NULL, &op, t_count_cb), PIER_EINVAL);
  T_ERR(pier_loop_post(loop, NULL, t_count_cb), PIER_EINVAL);
  T_ERR(pier_loop_post(loop, &op, NULL), PIER_EINVAL);
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_NOWAIT), 0);
  ck_assert_int_eq(count, 0);
  T_OK(pier_loop_post(loop, &op, t_count_cb)); /* op left idle */
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  ck_assert_int_eq(count, 1);
  t_loop_free(loop);
}
END_TEST

typedef struct chain { pier_loop *loop; int count; int rc; } chain;

static void chain_cb(pier_op *op, int status) {
  chain *c = op->data;
  (void)status;
  if (++c->count < 10) c->rc = pier_loop_post(c->loop, op, chain_cb);
}

START_TEST(op_can_be_reposted_from_its_own_callback) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  chain c = {loop, 0, 0};
  memset(&op, 0, sizeof op);
  op.data = &c;
  T_OK(pier_loop_post(loop, &op, chain_cb));
  ck_assert_int_eq(pier_loop_run(loop, PIER_RUN_DEFAULT), 0);
  T_OK(c.rc);
  ck_assert_int_eq(c.count, 10);
  t_loop_free(loop);
}
END_TEST

/* --- cross-thread ------------------------------------------------- */

typedef struct late_post { pier_loop *loop; pier_op *op; int rc; } late_post;

static void *late_post_thread(void *arg) {
  late_post *lp = arg;
  t_sleep_ms(100);
  lp->rc = pier_loop_post(lp->loop, lp->op, posted_cb);
  return NULL;
}

static void safety_cb(pier_timer *t) { (*(int *)t->data)++; }

START_TEST(post_from_thread_wakes_a_blocked_run_once) {
  pier_loop *loop = t_loop_new();
  pier_op op;
  pier_timer safety;
  pthread_t th;
  posted p = {pthread_self(), 0, -1, 0};
  late_post lp = {loop, &op, 1};
  int safety_fired = 0;
  uint64_t t0;
  memset(&op, 0, sizeof op);
  op.data = &p;
  T_OK(pier_timer_init(loop, &safety));
  safety.data = &safety_fired;
  T_OK(pier_timer_start(&safety, 3000, 0, safety_cb));
  t0 = t_now_ms();
  ck_assert_int_eq(pthread_create(&th, NULL, late_post_thread, &lp), 0);
  while (p.count == 0 && safety_fired == 0)
    ck_assert_int_ge(pier_loop_run(loop, PIER_RUN_ONCE), 0);
  pthread_join(th, NULL);
  T_OK(lp.rc);
  ck_assert_msg(p.count == 1, "post not delivered before the 3 s safety timer");
  ck_assert_uint_lt(t_now_ms() - t0, 2000);
  ck_assert_int_eq(p.on_loop_thread, 1);
  T_OK(pier_timer_stop(&safety));
  t_loop_free(loop);
}
END_TEST

#define NTHREADS 4
#define NPOSTS 1000

typedef struct storm {
  pier_loop *loop;
  pier_op ops[NTHREADS * NPOSTS];
  int counters[NTHREADS * NPOSTS];
  int total;
  int failures[NTHREADS];
} storm;

typedef struct storm_arg { storm *st; int index; } storm_arg;

/* Loop thread: one count per op, one total. */
static storm *the_storm;

static void storm_count_cb(pier_op *op, int status) {
  (void)status;
  (*(int *)op->data)++;
  the_storm->total++;
}

static void *storm_thread(void *arg) {
  storm_arg *a = arg;
  storm *st = a->st;
  for (int i = 0; i < NPOSTS; i++) {
    int k = a->index * NPOSTS + i;
    if (pier_loop_post(st->loop, &st->ops[k], storm_count_cb) != 0)
      st->failures[a->index]++;
  }
  return NULL;
}

START_TEST(four_threads_times_1000_posts_delivered_exactly_once) {
  static storm st;
  pthread_t th[NTHREADS];
  storm_arg args[NTHREADS];
  memset(&st, 0, sizeof st);
  the_storm = &st;
  st.loop = t_loop_new();
  for (int k = 0; k < NTHREADS * NPOSTS; k++) st.ops[k].data = &st.counters[k];
  T_OK(pier_loop_ref(st.loop));
  for (int i = 0; i < NTHREADS; i++) {
    args[i].st = &st;
    args[i].index = i;
    ck_assert_int_eq(pthread_create(&th[i], NULL, storm_thread, &args[i]), 0);
  }
  t_run_until_count(st.loop, &st.total, NTHREADS * NPOSTS, 10000);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  T_OK(pier_loop_unref(st.loop));
  ck_assert_int_eq(pier_loop_run(st.loop, PIER_RUN_NOWAIT), 0);
  for (int i = 0; i < NTHREADS; i++) ck_assert_int_eq(st.failures[i], 0);
  for (int k = 0; k < NTHREADS * NPOSTS; k++) {
    ck_assert_msg(st.counters[k] == 1, "op %d delivered %d times", k,
                  st.counters[k]);
    ck_assert_int_eq(st.ops[k].status, 0);
  }
  ck_assert_int_eq(st.total, NTHREADS * NPOSTS);
  t_loop_free(st.loop);
}
END_TEST

Suite *suite_post(void) {
  Suite *s = suite_create("post");
  TCase *tc = tcase_create("post");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, post_from_loop_thread_runs_cb_later_with_status_0);
  tcase_add_test(tc, posting_a_pending_op_gives_ebusy_and_delivers_once);
  tcase_add_test(tc, post_with_null_arguments_gives_einval);
  tcase_add_test(tc, op_can_be_reposted_from_its_own_callback);
  tcase_add_test(tc, post_from_thread_wakes_a_blocked_run_once);
  tcase_add_test(tc, four_threads_times_1000_posts_delivered_exactly_once);
  suite_add_tcase(s, tc);
  return s;
}
