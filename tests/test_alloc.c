/* SPDX-License-Identifier: MIT */
/*
 * tests/test_alloc.c - pier_set_allocator: a counting allocator sees the
 * allocations of loops, sockets, timers, posts and resolves, and every one
 * is freed once everything is closed and the loop freed; PIER_EBUSY while
 * a loop exists; PIER_EINVAL for a partial table; NULL restores malloc.
 * The allocator is process-wide state, and where Check cannot fork
 * (Windows) every test runs in one process: a checked fixture restores
 * the default allocator and zeroes the counters before and after each
 * test, also after a failed one.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

/* Counters; resolver threads may allocate too, hence atomics. */
static volatile long n_alloc, n_free, n_bad_free;

static void count_add(volatile long *c) { __sync_fetch_and_add(c, 1); }

static void *c_malloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (p) count_add(&n_alloc);
  return p;
}

static void *c_calloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (p) count_add(&n_alloc);
  return p;
}

/* realloc(NULL, n) allocates, realloc(p, 0) frees, else moves one block. */
static void *c_realloc(void *ptr, size_t size) {
  if (ptr == NULL) return c_malloc(size);
  if (size == 0) {
    free(ptr);
    count_add(&n_free);
    return NULL;
  }
  return realloc(ptr, size);
}

static void c_free(void *ptr) {
  if (ptr == NULL) return;
  count_add(&n_free);
  free(ptr);
}

static const pier_allocator counting = {c_malloc, c_realloc, c_calloc, c_free};

static void install_counting(void) {
  n_alloc = n_free = n_bad_free = 0;
  T_OK(pier_set_allocator(&counting));
}

/* Before and after each test: default allocator, counters at zero. */
static void alloc_reset(void) {
  int rc = pier_set_allocator(NULL);
  n_alloc = n_free = n_bad_free = 0;
  ck_assert_msg(rc == 0,
                "pier_set_allocator(NULL) returned %s: a loop is still "
                "alive (leaked by an earlier failed test?)",
                pier_err_name(rc));
}

static void alloc_teardown(void) { (void)pier_set_allocator(NULL); }

static void close_count_cb(pier_socket *s) {
  (*(int *)pier_socket_get_data(s))++;
}

static void close_wait(pier_loop *loop, pier_socket *s) {
  int closed = 0;
  pier_socket_set_data(s, &closed);
  T_OK(pier_close(s, close_count_cb));
  t_run_until(loop, &closed, 2000);
}

static void noop_timer_cb(pier_timer *t) { (void)t; }

START_TEST(loop_and_socket_allocate_through_the_allocator) {
  pier_loop *loop;
  pier_socket *s = NULL;
  long after_loop;
  install_counting();
  loop = t_loop_new();
  after_loop = n_alloc;
  ck_assert_int_gt(after_loop, 0);
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  ck_assert_int_gt(n_alloc, after_loop);
  close_wait(loop, s);
  t_loop_free(loop);
  ck_assert_int_eq(n_alloc, n_free);
  T_OK(pier_set_allocator(NULL));
}
END_TEST

/* A busy session: pair, I/O, timer, post, resolve, then close all. */
static void busy_session(void) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  pier_op sop, rop, pop, qop;
  pier_timer t;
  char buf[64];
  pier_buf sb = pier_buf_init("allocator", 9), rb = pier_buf_init(buf, 64);
  struct addrinfo h;
  int done = 0;
  t_pair(loop, "tcp6", &c, &s);
  memset(&sop, 0, sizeof sop);
  memset(&rop, 0, sizeof rop);
  memset(&pop, 0, sizeof pop);
  memset(&qop, 0, sizeof qop);
  sop.data = rop.data = pop.data = qop.data = &done;
  memset(&h, 0, sizeof h);
  h.ai_flags = AI_NUMERICHOST;
  T_OK(pier_recv(s, &rop, &rb, 1, 0, t_count_cb));
  T_OK(pier_send(c, &sop, &sb, 1, 0, t_count_cb));
  T_OK(pier_loop_post(loop, &pop, t_count_cb));
  T_OK(pier_resolve(loop, &qop, "::1", "80", &h, t_count_cb));
  T_OK(pier_timer_init(loop, &t));
  T_OK(pier_timer_start(&t, 5, 5, noop_timer_cb));
  t_run_until_count(loop, &done, 4, 5000);
  T_OK(qop.status);
  pier_freeaddrinfo(qop.addrinfo);
  T_OK(pier_timer_stop(&t));
  close_wait(loop, c);
  close_wait(loop, s);
  t_loop_free(loop);
}

START_TEST(every_allocation_is_freed_after_a_busy_session) {
  install_counting();
  busy_session();
  ck_assert_int_gt(n_alloc, 0);
  ck_assert_msg(n_alloc == n_free, "%ld allocations, %ld frees", n_alloc,
                n_free);
  T_OK(pier_set_allocator(NULL));
}
END_TEST

START_TEST(set_allocator_while_a_loop_exists_gives_ebusy) {
  pier_loop *loop = t_loop_new();
  T_ERR(pier_set_allocator(&counting), PIER_EBUSY);
  T_ERR(pier_set_allocator(NULL), PIER_EBUSY);
  T_OK(pier_loop_close(loop));
  T_ERR(pier_set_allocator(&counting), PIER_EBUSY); /* closed, not freed */
  n_alloc = n_free = 0;
  t_loop_free(loop);
  ck_assert_int_eq(n_free, 0); /* the refused table was not installed */
  T_OK(pier_set_allocator(&counting));
  T_OK(pier_set_allocator(NULL));
}
END_TEST

START_TEST(partial_table_gives_einval) {
  for (int missing = 0; missing < 4; missing++) {
    pier_allocator a = counting;
    switch (missing) {
      case 0: a.malloc_fn = NULL; break;
      case 1: a.realloc_fn = NULL; break;
      case 2: a.calloc_fn = NULL; break;
      default: a.free_fn = NULL; break;
    }
    T_ERR(pier_set_allocator(&a), PIER_EINVAL);
  }
  /* the refused tables were not installed */
  n_alloc = n_free = 0;
  t_loop_free(t_loop_new());
  ck_assert_int_eq(n_alloc, 0);
}
END_TEST

START_TEST(null_restores_the_default_allocator) {
  install_counting();
  t_loop_free(t_loop_new());
  ck_assert_int_gt(n_alloc, 0);
  T_OK(pier_set_allocator(NULL));
  n_alloc = n_free = 0;
  t_loop_free(t_loop_new());
  ck_assert_int_eq(n_alloc, 0);
  ck_assert_int_eq(n_free, 0);
}
END_TEST

START_TEST(table_is_copied) {
  pier_allocator a = counting;
  n_alloc = n_free = 0;
  T_OK(pier_set_allocator(&a));
  memset(&a, 0, sizeof a); /* pier must not read the caller's table again */
  t_loop_free(t_loop_new());
  ck_assert_int_gt(n_alloc, 0);
  ck_assert_int_eq(n_alloc, n_free);
  T_OK(pier_set_allocator(NULL));
}
END_TEST

Suite *suite_alloc(void) {
  Suite *s = suite_create("alloc");
  TCase *tc = tcase_create("alloc");
  tcase_set_timeout(tc, 20);
  tcase_add_checked_fixture(tc, alloc_reset, alloc_teardown);
  tcase_add_test(tc, loop_and_socket_allocate_through_the_allocator);
  tcase_add_test(tc, every_allocation_is_freed_after_a_busy_session);
  tcase_add_test(tc, set_allocator_while_a_loop_exists_gives_ebusy);
  tcase_add_test(tc, partial_table_gives_einval);
  tcase_add_test(tc, null_restores_the_default_allocator);
  tcase_add_test(tc, table_is_copied);
  suite_add_tcase(s, tc);
  return s;
}
