/* SPDX-License-Identifier: MIT */
/*
 * tests/test_cancel.c - every operation completes exactly once: after
 * pier_cancel, after pier_close (before the close callback), never a
 * second time; restarting from inside a callback; pier_op_result.
 *
 * Section map
 *   1. records, helpers
 *   2. pier_cancel of one op among several
 *   3. pier_close with pending recvs / accepts
 *   4. cancel after completion, chains, pier_op_result, connect
 */
#include "helpers.h"
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* 1. records                                                          */
/* ------------------------------------------------------------------ */

typedef struct rec {
  int count, status;
  size_t bytes;
  int order;
} rec;

/* Every completion and close callback, in the order they ran. */
static struct {
  volatile int n;
  int log[64];          /* op index, or -1 for the close callback */
  volatile int closes;
} g;

typedef struct tagged { rec r; int index; } tagged;

static void rec_cb(pier_op *op, int status) {
  rec *r = op->data;
  r->count++;
  r->status = status;
  r->bytes = op->bytes;
  r->order = ++g.n;
}

static void tagged_cb(pier_op *op, int status) {
  tagged *t = op->data;
  t->r.count++;
  t->r.status = status;
  t->r.order = g.n;
  if (g.n < 64) g.log[g.n] = t->index;
  g.n++;
}

static void close_cb(pier_socket *s) {
  (void)s;
  if (g.n < 64) g.log[g.n] = -1;
  g.n++;
  g.closes++;
}

static void fired_cb(pier_timer *t) { *(volatile int *)t->data = 1; }

/* Run the loop for about ms milliseconds. */
static void run_for(pier_loop *loop, int ms) {
  pier_timer t;
  volatile int fired = 0;
  memset(&t, 0, sizeof t);
  T_OK(pier_timer_init(loop, &t));
  t.data = (void *)&fired;
  T_OK(pier_timer_start(&t, (uint64_t)ms, 0, fired_cb));
  t_run_until(loop, &fired, ms + 5000);
}

static void start_recv(pier_socket *s, pier_op *op, rec *r, pier_buf *b) {
  memset(op, 0, sizeof *op);
  memset(r, 0, sizeof *r);
  op->data = r;
  T_OK(pier_recv(s, op, b, 1, 0, rec_cb));
  ck_assert_int_eq(r->count, 0);
}

/* Blocking-form send of len bytes of pattern seed (sockets are blocking). */
static void bsend(pier_socket *s, uint64_t seed, size_t off, size_t len) {
  char buf[512];
  ck_assert_uint_le(len, sizeof buf);
  t_fill(buf, len, seed, off);
  pier_buf b = pier_buf_init(buf, len);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_send(s, &op, &b, 1, 0, NULL));
  ck_assert_uint_eq(op.bytes, len);
}

/* ------------------------------------------------------------------ */
/* 2. cancel one of three                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_cancel_middle_of_three_recvs_others_unaffected) {
  memset(&g, 0, sizeof g);
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  char b[3][100];
  pier_buf pb[3];
  pier_op op[3];
  rec r[3];
  for (int k = 0; k < 3; k++) {
    pb[k] = pier_buf_init(b[k], sizeof b[k]);
    start_recv(s, &op[k], &r[k], &pb[k]);
  }
  T_OK(pier_cancel(&op[1]));
  ck_assert_int_eq(r[1].count, 0); /* not from inside pier_cancel */
  t_run_until(loop, &r[1].count, 3000);
  ck_assert_int_eq(r[1].count, 1);
  T_ERR(r[1].status, PIER_ECANCELED);
  ck_assert_int_eq(op[1].status, PIER_ECANCELED);
  ck_assert_int_eq(r[0].count, 0);
  ck_assert_int_eq(r[2].count, 0);
  T_ERR(pier_cancel(&op[1]), PIER_ENOENT);

  bsend(c, 1, 0, 50);
  t_run_until(loop, &r[0].count, 3000);
  T_OK(r[0].status);
  ck_assert_uint_eq(r[0].bytes, 50);
  ck_assert_uint_eq(t_verify(b[0], 50, 1, 0), (size_t)-1);

  /* the third waits for more data */
  run_for(loop, 100);
  ck_assert_int_eq(r[2].count, 0);
  bsend(c, 1, 50, 30);
  t_run_until(loop, &r[2].count, 3000);
  T_OK(r[2].status);
  ck_assert_uint_eq(r[2].bytes, 30);
  ck_assert_uint_eq(t_verify(b[2], 30, 1, 50), (size_t)-1);

  run_for(loop, 30);
  for (int k = 0; k < 3; k++) ck_assert_int_eq(r[k].count, 1);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 3. close with pending operations                                    */
/* ------------------------------------------------------------------ */

#define NPEND 10

static void assert_all_canceled_before_close(tagged *t, int n) {
  ck_assert_int_eq(g.closes, 1);
  ck_assert_int_eq(g.n, n + 1);
  for (int k = 0; k < n; k++) {
    ck_assert_msg(t[k].r.count == 1, "op %d completed %d times", k,
                  t[k].r.count);
    ck_assert_msg(t[k].r.status == PIER_ECANCELED,
                  "op %d completed with %s, expected ECANCELED", k,
                  pier_err_name(t[k].r.status));
  }
  for (int k = 0; k < n; k++)
    ck_assert_msg(g.log[k] >= 0,
                  "close callback ran at position %d of %d, before op "
                  "callbacks", k, n + 1);
  ck_assert_int_eq(g.log[n], -1);
}

START_TEST(test_close_completes_10_pending_recvs_before_close_cb) {
  memset(&g, 0, sizeof g);
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  static char b[NPEND][16];
  pier_buf pb[NPEND];
  pier_op op[NPEND];
  tagged t[NPEND];
  for (int k = 0; k < NPEND; k++) {
    memset(&op[k], 0, sizeof op[k]);
    memset(&t[k], 0, sizeof t[k]);
    t[k].index = k;
    op[k].data = &t[k];
    pb[k] = pier_buf_init(b[k], sizeof b[k]);
    T_OK(pier_recv(s, &op[k], &pb[k], 1, 0, tagged_cb));
  }
  T_OK(pier_close(s, close_cb));
  ck_assert_int_eq(g.n, 0); /* nothing from inside pier_close */
  T_ERR(pier_close(s, close_cb), PIER_EALREADY);
  t_run_until(loop, &g.closes, 3000);
  run_for(loop, 50);
  assert_all_canceled_before_close(t, NPEND);
  /* submission order is kept for the cancellations too */
  for (int k = 1; k < NPEND; k++) ck_assert_int_lt(t[k - 1].r.order, t[k].r.order);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(test_close_completes_10_pending_accepts_before_close_cb) {
  memset(&g, 0, sizeof g);
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &la, &llen);
  pier_op op[NPEND];
  tagged t[NPEND];
  for (int k = 0; k < NPEND; k++) {
    memset(&op[k], 0, sizeof op[k]);
    memset(&t[k], 0, sizeof t[k]);
    t[k].index = k;
    op[k].data = &t[k];
    T_OK(pier_accept(l, &op[k], NULL, NULL, tagged_cb));
  }
  run_for(loop, 20);
  ck_assert_int_eq(g.n, 0);
  T_OK(pier_close(l, close_cb));
  ck_assert_int_eq(g.n, 0);
  t_run_until(loop, &g.closes, 3000);
  run_for(loop, 50);
  assert_all_canceled_before_close(t, NPEND);
  for (int k = 0; k < NPEND; k++) ck_assert_ptr_null(op[k].accepted);
  t_loop_free(loop);
}
END_TEST

/* Mixed: recvs and sends that cannot finish (peer not reading). */
START_TEST(test_close_completes_pending_recvs_and_sends) {
  memset(&g, 0, sizeof g);
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  enum { NR = 5, NS = 5, BIG = 32 * 1024 * 1024 }; /* more than loopback buffers */
  static char rb[NR][16];
  char *big = calloc(1, BIG);
  ck_assert_ptr_nonnull(big);
  pier_buf pb[NR + NS];
  pier_op op[NR + NS];
  tagged t[NR + NS];
  for (int k = 0; k < NR + NS; k++) {
    memset(&op[k], 0, sizeof op[k]);
    memset(&t[k], 0, sizeof t[k]);
    t[k].index = k;
    op[k].data = &t[k];
    if (k < NR) {
      pb[k] = pier_buf_init(rb[k], sizeof rb[k]);
      T_OK(pier_recv(s, &op[k], &pb[k], 1, 0, tagged_cb));
    } else {
      pb[k] = pier_buf_init(big, BIG);
      T_OK(pier_send(s, &op[k], &pb[k], 1, 0, tagged_cb));
    }
  }
  run_for(loop, 50); /* fill the socket buffers */
  ck_assert_int_eq(g.n, 0);
  T_OK(pier_close(s, close_cb));
  t_run_until(loop, &g.closes, 3000);
  run_for(loop, 50);
  ck_assert_int_eq(g.closes, 1);
  ck_assert_int_eq(g.n, NR + NS + 1);
  ck_assert_int_eq(g.log[NR + NS], -1);
  for (int k = 0; k < NR + NS; k++) {
    ck_assert_int_eq(t[k].r.count, 1);
    /* a send may have been fully accepted before the close */
    if (k < NR || t[k].r.status != 0)
      T_ERR(t[k].r.status, PIER_ECANCELED);
  }
  free(big);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. after completion, chains, pier_op_result, connect                */
/* ------------------------------------------------------------------ */

START_TEST(test_cancel_after_completion_is_enoent_no_second_cb) {
  memset(&g, 0, sizeof g);
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  pier_op never;
  memset(&never, 0, sizeof never);
  T_ERR(pier_cancel(&never), PIER_ENOENT);

  char b[32];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op op;
  rec r;
  start_recv(s, &op, &r, &pb);
  bsend(c, 3, 0, 8);
  t_run_until(loop, &r.count, 3000);
  T_OK(r.status);
  T_ERR(pier_cancel(&op), PIER_ENOENT);
  run_for(loop, 50);
  ck_assert_int_eq(r.count, 1);
  ck_assert_int_eq(op.status, 0);
  ck_assert_uint_eq(op.bytes, 8);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

typedef struct chain {
  pier_socket *s;
  char byte;
  pier_buf b;
  int completions;
  int bad;            /* first wrong completion + 1 */
  volatile int done;
} chain;

static void chain_cb(pier_op *op, int status) {
  chain *ch = op->data;
  int k = ch->completions++;
  if (!ch->bad && (status != 0 || op->bytes != 1 ||
                   t_verify(&ch->byte, 1, 4, (size_t)k) != (size_t)-1))
    ch->bad = k + 1;
  if (ch->completions == 100 || ch->bad) {
    ch->done = 1;
    return;
  }
  ch->b = pier_buf_init(&ch->byte, 1);
  if (pier_recv(ch->s, op, &ch->b, 1, 0, chain_cb) != 0) {
    ch->bad = k + 1;
    ch->done = 1;
  }
}

START_TEST(test_chain_of_100_recvs_restarted_in_callback) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  chain ch;
  memset(&ch, 0, sizeof ch);
  ch.s = s;
  ch.b = pier_buf_init(&ch.byte, 1);
  pier_op op;
  memset(&op, 0, sizeof op);
  op.data = &ch;
  T_OK(pier_recv(s, &op, &ch.b, 1, 0, chain_cb));
  bsend(c, 4, 0, 100);
  t_run_until(loop, &ch.done, 5000);
  ck_assert_msg(!ch.bad, "completion %d was wrong", ch.bad);
  ck_assert_int_eq(ch.completions, 100);
  run_for(loop, 30);
  ck_assert_int_eq(ch.completions, 100);
  T_ERR(pier_cancel(&op), PIER_ENOENT);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

/* pier_op_result from inside a callback must not wait. */
typedef struct deadlk { pier_op *pending; int rc; volatile int ran; } deadlk;

static void deadlk_cb(pier_op *op, int status) {
  deadlk *d = op->data;
  (void)status;
  d->rc = pier_op_result(d->pending, 1, NULL, NULL);
  d->ran = 1;
}

START_TEST(test_op_result_poll_wait_and_after) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  char b[64];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op op;
  rec r;
  start_recv(s, &op, &r, &pb);
  size_t bytes = 12345;
  unsigned flags = 0;
  T_ERR(pier_op_result(&op, 0, &bytes, &flags), PIER_EINPROGRESS);
  T_ERR(pier_op_result(&op, 0, NULL, NULL), PIER_EINPROGRESS);

  /* waiting from inside a callback of the same loop: EDEADLK */
  pier_op pop;
  deadlk d;
  memset(&pop, 0, sizeof pop);
  memset(&d, 0, sizeof d);
  d.pending = &op;
  pop.data = &d;
  T_OK(pier_loop_post(loop, &pop, deadlk_cb));
  t_run_until(loop, &d.ran, 3000);
  T_ERR(d.rc, PIER_EDEADLK);
  ck_assert_int_eq(r.count, 0);

  bsend(c, 5, 0, 20);
  /* wait = 1 on the loop thread, outside callbacks: drives the loop */
  bytes = 0;
  flags = 0xffff;
  T_OK(pier_op_result(&op, 1, &bytes, &flags));
  ck_assert_uint_eq(bytes, 20);
  ck_assert_int_eq(flags & (PIER_MSG_TRUNC | PIER_MSG_OOB), 0);
  ck_assert_uint_eq(t_verify(b, 20, 5, 0), (size_t)-1);
  /* the callback ran, once (it may run inside pier_op_result's loop run,
     or on the next loop run) */
  run_for(loop, 20);
  ck_assert_int_eq(r.count, 1);
  T_OK(r.status);
  /* after completion: same results, wait or not */
  bytes = 0;
  T_OK(pier_op_result(&op, 0, &bytes, NULL));
  ck_assert_uint_eq(bytes, 20);
  bytes = 0;
  T_OK(pier_op_result(&op, 1, &bytes, &flags));
  ck_assert_uint_eq(bytes, 20);

  /* a canceled op reports ECANCELED */
  start_recv(s, &op, &r, &pb);
  T_OK(pier_cancel(&op));
  T_ERR(pier_op_result(&op, 1, NULL, NULL), PIER_ECANCELED);
  run_for(loop, 20);
  ck_assert_int_eq(r.count, 1);
  T_ERR(r.status, PIER_ECANCELED);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(test_cancel_connect_in_progress_completes_once) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &la, &llen);
  const pier_protocol_info *p = pier_protocol_find("tcp4");
  int canceled = 0, connected = 0;
  for (int round = 0; round < 20; round++) {
    pier_socket *c;
    T_OK(pier_socket_open(loop, p, 0, &c));
    pier_op op;
    rec r;
    memset(&op, 0, sizeof op);
    memset(&r, 0, sizeof r);
    op.data = &r;
    T_OK(pier_connect(c, &op, (struct sockaddr *)&la, llen, NULL, NULL,
                      rec_cb));
    int rc = pier_cancel(&op);
    ck_assert_msg(rc == 0 || rc == PIER_ENOENT,
                  "pier_cancel(connect) returned %s", pier_err_name(rc));
    ck_assert_int_eq(r.count, 0);
    t_run_until(loop, &r.count, 3000);
    run_for(loop, 20);
    ck_assert_int_eq(r.count, 1);
    ck_assert_msg(r.status == 0 || r.status == PIER_ECANCELED,
                  "canceled connect completed with %s",
                  pier_err_name(r.status));
    if (r.status == 0) connected++;
    else canceled++;
    T_OK(pier_close(c, NULL));
    run_for(loop, 5);
  }
  ck_assert_int_eq(canceled + connected, 20);
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

Suite *suite_cancel(void) {
  Suite *s = suite_create("cancel");
  TCase *tc;

  tc = tcase_create("cancel_one");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, test_cancel_middle_of_three_recvs_others_unaffected);
  tcase_add_test(tc, test_cancel_after_completion_is_enoent_no_second_cb);
  tcase_add_test(tc, test_cancel_connect_in_progress_completes_once);
  suite_add_tcase(s, tc);

  tc = tcase_create("close_cancels_pending");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, test_close_completes_10_pending_recvs_before_close_cb);
  tcase_add_test(tc, test_close_completes_10_pending_accepts_before_close_cb);
  tcase_add_test(tc, test_close_completes_pending_recvs_and_sends);
  suite_add_tcase(s, tc);

  tc = tcase_create("chains_and_results");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, test_chain_of_100_recvs_restarted_in_callback);
  tcase_add_test(tc, test_op_result_poll_wait_and_after);
  suite_add_tcase(s, tc);
  return s;
}
