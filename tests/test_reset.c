/* SPDX-License-Identifier: MIT */
/*
 * tests/test_reset.c - a peer that resets or closes: pending recvs and
 * sends complete with PIER_ECONNRESET, later sends fail with PIER_EPIPE or
 * PIER_ECONNRESET, and no SIGPIPE ever reaches the process (t_os_init(),
 * from tests/main.c, keeps SIGPIPE at its default action where there is
 * one, so one would kill the test).
 */
#include "helpers.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BIG (32u * 1024 * 1024)

typedef struct rec { int count, status; size_t bytes; } rec;

static void rec_cb(pier_op *op, int status) {
  rec *r = op->data;
  r->count++;
  r->status = status;
  r->bytes = op->bytes;
}

static void fired_cb(pier_timer *t) { *(volatile int *)t->data = 1; }

static void run_for(pier_loop *loop, int ms) {
  pier_timer t;
  volatile int fired = 0;
  memset(&t, 0, sizeof t);
  T_OK(pier_timer_init(loop, &t));
  t.data = (void *)&fired;
  T_OK(pier_timer_start(&t, (uint64_t)ms, 0, fired_cb));
  t_run_until(loop, &fired, ms + 5000);
}

/* Reset a pier socket: linger 0, then close. */
static void pier_reset(pier_socket *s) {
  T_OK(pier_setsockopt(s, PIER_SO_LINGER, 0));
  T_OK(pier_close(s, NULL));
}

/* Reset a plain OS socket: SO_LINGER {1, 0}, then close. */
static void os_reset(pier_os_socket h) {
  ck_assert_msg(t_os_setlinger0(h) == 0, "SO_LINGER: %s",
                t_os_strerror(t_os_errno()));
  ck_assert_int_eq(t_os_close(h), 0);
}

/* A pier server socket accepted from a plain OS client. */
static pier_socket *accept_os_client(pier_loop *loop, pier_os_socket *client) {
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &la, &llen);
  *client = t_os_connect(&la, llen);
  pier_op op;
  int done = 0;
  memset(&op, 0, sizeof op);
  op.data = &done;
  T_OK(pier_accept(l, &op, NULL, NULL, t_count_cb));
  t_run_until(loop, &done, 3000);
  T_OK(op.status);
  ck_assert_ptr_nonnull(op.accepted);
  T_OK(pier_close(l, NULL));
  return op.accepted;
}

static int is_pipe_or_reset(int rc) {
  return rc == PIER_EPIPE || rc == PIER_ECONNRESET;
}

/* ------------------------------------------------------------------ */

START_TEST(test_pier_peer_reset_fails_pending_recv_econnreset) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  char b[64];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op op;
  rec r;
  memset(&op, 0, sizeof op);
  memset(&r, 0, sizeof r);
  op.data = &r;
  T_OK(pier_recv(s, &op, &pb, 1, 0, rec_cb));
  run_for(loop, 10);
  ck_assert_int_eq(r.count, 0);
  pier_reset(c);
  t_run_until(loop, &r.count, 3000);
  ck_assert_int_eq(r.count, 1);
  T_ERR(r.status, PIER_ECONNRESET);
  run_for(loop, 20);
  ck_assert_int_eq(r.count, 1);
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(test_os_peer_reset_fails_pending_recv_econnreset) {
  pier_loop *loop = t_loop_new();
  pier_os_socket h;
  pier_socket *s = accept_os_client(loop, &h);
  char b[64];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op op;
  rec r;
  memset(&op, 0, sizeof op);
  memset(&r, 0, sizeof r);
  op.data = &r;
  T_OK(pier_recv(s, &op, &pb, 1, 0, rec_cb));
  run_for(loop, 10);
  os_reset(h);
  t_run_until(loop, &r.count, 3000);
  T_ERR(r.status, PIER_ECONNRESET);
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(test_peer_reset_fails_pending_large_send_econnreset) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  char *big = calloc(1, BIG);
  ck_assert_ptr_nonnull(big);
  pier_buf pb = pier_buf_init(big, BIG);
  pier_op op;
  rec r;
  memset(&op, 0, sizeof op);
  memset(&r, 0, sizeof r);
  op.data = &r;
  T_OK(pier_send(s, &op, &pb, 1, 0, rec_cb));
  run_for(loop, 100); /* fill both socket buffers */
  ck_assert_msg(r.count == 0, "32 MiB send completed (%s) with the peer "
                "not reading", pier_err_name(r.status));
  pier_reset(c);
  t_run_until(loop, &r.count, 5000);
  ck_assert_int_eq(r.count, 1);
  T_ERR(r.status, PIER_ECONNRESET);
  ck_assert_uint_lt(r.bytes, BIG);
  run_for(loop, 20);
  ck_assert_int_eq(r.count, 1);
  free(big);
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

/* The peer closed normally: sending goes on failing, without SIGPIPE. */
START_TEST(test_send_after_peer_close_errors_no_sigpipe) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  T_OK(pier_close(c, NULL));
  run_for(loop, 20);
  char buf[1024];
  memset(buf, 'x', sizeof buf);
  int err = 0, sends = 0;
  while (!err && sends < 100) {
    pier_buf pb = pier_buf_init(buf, sizeof buf);
    pier_op op;
    rec r;
    memset(&op, 0, sizeof op);
    memset(&r, 0, sizeof r);
    op.data = &r;
    T_OK(pier_send(s, &op, &pb, 1, 0, rec_cb));
    t_run_until(loop, &r.count, 3000);
    sends++;
    if (r.status) err = r.status;
    else run_for(loop, 10); /* let the peer's reset arrive */
  }
  ck_assert_msg(is_pipe_or_reset(err),
                "send to a closed peer: %d sends, last status %s", sends,
                pier_err_name(err));
  /* and again: still an error, still alive */
  pier_buf pb = pier_buf_init(buf, sizeof buf);
  pier_op op;
  rec r;
  memset(&op, 0, sizeof op);
  memset(&r, 0, sizeof r);
  op.data = &r;
  T_OK(pier_send(s, &op, &pb, 1, 0, rec_cb));
  t_run_until(loop, &r.count, 3000);
  ck_assert_msg(is_pipe_or_reset(r.status), "second send: %s",
                pier_err_name(r.status));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(test_blocking_send_to_reset_peer_errors_no_sigpipe) {
  pier_loop *loop = t_loop_new();
  pier_os_socket h;
  pier_socket *s = accept_os_client(loop, &h);
  os_reset(h);
  t_sleep_ms(50);
  char buf[1024];
  memset(buf, 'y', sizeof buf);
  int err = 0, sends = 0;
  while (!err && sends < 50) {
    pier_buf pb = pier_buf_init(buf, sizeof buf);
    pier_op op;
    memset(&op, 0, sizeof op);
    err = pier_send(s, &op, &pb, 1, 0, NULL);
    sends++;
    if (!err) t_sleep_ms(10);
  }
  ck_assert_msg(is_pipe_or_reset(err),
                "blocking send to a reset peer: %d sends, last %s", sends,
                pier_err_name(err));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

typedef struct resetter {
  pier_os_socket h;
  int delay_ms, rc;
  pier_socket *s;          /* the socket whose blocking send must end */
  volatile int send_done;  /* set by the test when the send returned */
  int had_to_cancel;       /* it did not end 5 s after the reset */
} resetter;

/*
 * In a thread: reset the OS client after delay_ms.  No Check assertions
 * here; results go to rs.  If the blocked send has not returned 5 s
 * later, interrupt it with pier_cancel_blocking so the test ends (and
 * fails) instead of hanging.
 */
static void *reset_later(void *arg) {
  resetter *rs = arg;
  t_sleep_ms(rs->delay_ms);
  rs->rc = t_os_setlinger0(rs->h);
  if (t_os_close(rs->h) != 0 && rs->rc == 0) rs->rc = -1;
  if (!t_wait_flag(&rs->send_done, 5000)) {
    rs->had_to_cancel = 1;
    while (!T_FLAG(&rs->send_done)) {
      pier_cancel_blocking(rs->s);
      t_sleep_ms(10);
    }
  }
  return NULL;
}

/* A blocked 32 MiB blocking send is ended by the peer's reset. */
START_TEST(test_blocked_blocking_send_ends_on_reset_no_sigpipe) {
  pier_loop *loop = t_loop_new();
  resetter rs;
  pier_socket *s = accept_os_client(loop, &rs.h);
  rs.delay_ms = 150;
  rs.rc = 0;
  rs.s = s;
  rs.send_done = 0;
  rs.had_to_cancel = 0;
  char *big = calloc(1, BIG);
  ck_assert_ptr_nonnull(big);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, reset_later, &rs), 0);
  pier_buf pb = pier_buf_init(big, BIG);
  pier_op op;
  memset(&op, 0, sizeof op);
  int rc = pier_send(s, &op, &pb, 1, 0, NULL);
  T_FLAG_SET(&rs.send_done, 1);
  pthread_join(th, NULL);
  ck_assert_msg(rs.rc == 0, "resetting the OS client failed");
  ck_assert_msg(!rs.had_to_cancel, "the blocked send did not end within "
                "5 s of the peer's reset (interrupted; returned %s)",
                pier_err_name(rc));
  ck_assert_msg(is_pipe_or_reset(rc), "blocked send after reset returned %s",
                pier_err_name(rc));
  ck_assert_uint_lt(op.bytes, BIG);
  free(big);
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

Suite *suite_reset(void) {
  Suite *s = suite_create("reset");
  TCase *tc = tcase_create("peer_reset");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_pier_peer_reset_fails_pending_recv_econnreset);
  tcase_add_test(tc, test_os_peer_reset_fails_pending_recv_econnreset);
  tcase_add_test(tc, test_peer_reset_fails_pending_large_send_econnreset);
  suite_add_tcase(s, tc);

  tc = tcase_create("no_sigpipe");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_send_after_peer_close_errors_no_sigpipe);
  tcase_add_test(tc, test_blocking_send_to_reset_peer_errors_no_sigpipe);
  tcase_add_test(tc, test_blocked_blocking_send_ends_on_reset_no_sigpipe);
  suite_add_tcase(s, tc);
  return s;
}
