/* SPDX-License-Identifier: MIT */
/*
 * tests/test_reenter.c - a condition function that calls back into pier
 * (doc/semantics.md, "Re-entry from a condition function"): it closes its
 * listener, cancels the accept it decides or another one, starts another
 * accept, closes or sends on other sockets, stops the loop.  Every op
 * completes exactly once and nothing is used after it is freed (the ASan
 * build checks the second half).  Each case runs over tcp4, msg4 and TLS
 * listeners (tests/kinds.h), on every provider.
 */
#include "kinds.h"

#include <string.h>

/* What the condition function does at its first call, then its verdict. */
enum action {
  A_CLOSE_LISTENER,
  A_CANCEL_SELF,
  A_CANCEL_OTHER,
  A_START_ANOTHER,
  A_OTHER_SOCKETS,
  A_STOP_LOOP
};

typedef struct counted {
  pier_op op;
  int n, status; /* completions, the last one's status */
  pier_socket *accepted;
} counted;

typedef struct rx {
  pier_loop *loop;
  int kind;
  pier_socket *l;
  struct sockaddr_storage addr;
  size_t alen;
  enum action action;
  int verdict;
  int calls;         /* condition function calls */
  int lclosed;       /* the listener's close callback ran */
  counted a1, a2;    /* accepts on l */
  pier_socket *cl[2];
  counted c[2];      /* client connects */
  /* A_OTHER_SOCKETS: a pair; s has a receive pending, c sends */
  pier_socket *pc, *ps;
  counted precv, psend;
  char rbuf[4];
} rx;

static rx *cur;

static void counted_cb(pier_op *op, int status) {
  counted *c = op->data;
  c->n++;
  c->status = status;
  if (status == 0 && op->accepted) c->accepted = op->accepted;
}

static void lclosed_cb(pier_socket *s) {
  (void)s;
  cur->lclosed = 1;
}

static void counted_init(counted *c) {
  memset(c, 0, sizeof *c);
  c->op.data = c;
}

static int cond(pier_accept_info *info, void *ctx) {
  rx *x = ctx;
  (void)info;
  if (x->calls++ > 0) return PIER_CF_ACCEPT; /* a re-presented request */
  switch (x->action) {
  case A_CLOSE_LISTENER:
    T_OK(pier_close(x->l, lclosed_cb));
    break;
  case A_CANCEL_SELF:
    T_OK(pier_cancel(&x->a1.op));
    break;
  case A_CANCEL_OTHER:
    T_OK(pier_cancel(&x->a2.op));
    break;
  case A_START_ANOTHER:
    T_OK(pier_accept(x->l, &x->a2.op, NULL, NULL, counted_cb));
    break;
  case A_OTHER_SOCKETS: {
    static const char one[1] = { 'x' };
    pier_buf b = pier_buf_init((void *)one, 1);
    T_OK(pier_send(x->pc, &x->psend.op, &b, 1, 0, counted_cb));
    T_OK(pier_close(x->ps, NULL));
    x->ps = NULL;
    break;
  }
  case A_STOP_LOOP:
    T_OK(pier_loop_stop(x->loop));
    break;
  }
  return x->verdict;
}

static void connect_client(rx *x, int i) {
  counted_init(&x->c[i]);
  x->cl[i] = t_kind_client(x->loop, x->kind);
  T_OK(pier_connect(x->cl[i], &x->c[i].op, T_SA(&x->addr), x->alen, NULL,
                    NULL, counted_cb));
}

static void setup(rx *x, int kind, enum action action, int verdict) {
  memset(x, 0, sizeof *x);
  cur = x;
  x->kind = kind;
  x->action = action;
  x->verdict = verdict;
  x->loop = t_loop_new();
  x->l = t_kind_listener(x->loop, kind, &x->addr, &x->alen, 16);
  counted_init(&x->a1);
  counted_init(&x->a2);
  counted_init(&x->precv);
  counted_init(&x->psend);
}

/* Let anything still on its way arrive: a second completion would. */
static void settle(rx *x) {
  uint64_t end = t_now_ms() + 150;
  while (t_now_ms() < end) pier_loop_run(x->loop, PIER_RUN_NOWAIT);
}

static void teardown(rx *x) {
  settle(x);
  for (int i = 0; i < 2; i++)
    if (x->cl[i]) T_OK(pier_close(x->cl[i], NULL));
  if (x->a1.accepted) T_OK(pier_close(x->a1.accepted, NULL));
  if (x->a2.accepted) T_OK(pier_close(x->a2.accepted, NULL));
  if (x->pc) T_OK(pier_close(x->pc, NULL));
  if (x->ps) T_OK(pier_close(x->ps, NULL));
  if (x->action != A_CLOSE_LISTENER) T_OK(pier_close(x->l, NULL));
  t_loop_free(x->loop);
  cur = NULL;
}

static int skip(int kind) { return t_kind_skip(kind); }

static const int verdicts[] = { PIER_CF_ACCEPT, PIER_CF_REJECT, PIER_CF_DEFER };

/* The listener closed from its own condition function, whatever the
   verdict: the accept completes once, PIER_ECANCELED; the close ends. */
START_TEST(close_own_listener) {
  for (int k = 0; k < T_NKINDS; k++) {
    if (skip(k)) continue;
    for (int v = 0; v < 3; v++) {
      rx x;
      setup(&x, k, A_CLOSE_LISTENER, verdicts[v]);
      T_OK(pier_accept(x.l, &x.a1.op, cond, &x, counted_cb));
      connect_client(&x, 0);
      t_run_until(x.loop, &x.lclosed, 5000);
      settle(&x);
      ck_assert_msg(x.a1.n == 1 && x.a1.status == PIER_ECANCELED,
                    "%s verdict %d: accept completed %d times, last %s",
                    t_kind_name(k), verdicts[v], x.a1.n,
                    pier_err_name(x.a1.status));
      ck_assert_int_eq(x.calls, 1);
      teardown(&x);
    }
  }
}
END_TEST

/* The accept cancelled from its own condition function: it completes
   once, PIER_ECANCELED, whatever the verdict; the request is not lost but
   presented to the next accept. */
START_TEST(cancel_own_accept) {
  for (int k = 0; k < T_NKINDS; k++) {
    if (skip(k)) continue;
    for (int v = 0; v < 3; v++) {
      rx x;
      setup(&x, k, A_CANCEL_SELF, verdicts[v]);
      T_OK(pier_accept(x.l, &x.a1.op, cond, &x, counted_cb));
      connect_client(&x, 0);
      t_run_until(x.loop, &x.a1.n, 5000);
      settle(&x);
      ck_assert_msg(x.a1.n == 1 && x.a1.status == PIER_ECANCELED,
                    "%s verdict %d: accept completed %d times, last %s",
                    t_kind_name(k), verdicts[v], x.a1.n,
                    pier_err_name(x.a1.status));
      T_OK(pier_accept(x.l, &x.a2.op, cond, &x, counted_cb));
      t_run_until(x.loop, &x.a2.n, 5000);
      T_OK(x.a2.status);
      ck_assert_ptr_nonnull(x.a2.accepted);
      ck_assert_int_eq(x.calls, 2);
      t_run_until(x.loop, &x.c[0].n, 5000);
      T_OK(x.c[0].status);
      teardown(&x);
      ck_assert_int_eq(x.a2.n, 1);
    }
  }
}
END_TEST

/* Another pending accept cancelled: each completes once. */
START_TEST(cancel_other_accept) {
  for (int k = 0; k < T_NKINDS; k++) {
    if (skip(k)) continue;
    rx x;
    setup(&x, k, A_CANCEL_OTHER, PIER_CF_ACCEPT);
    T_OK(pier_accept(x.l, &x.a1.op, cond, &x, counted_cb));
    T_OK(pier_accept(x.l, &x.a2.op, cond, &x, counted_cb));
    connect_client(&x, 0);
    t_run_until(x.loop, &x.a1.n, 5000);
    t_run_until(x.loop, &x.a2.n, 5000);
    settle(&x);
    ck_assert_int_eq(x.a1.n, 1);
    T_OK(x.a1.status);
    ck_assert_int_eq(x.a2.n, 1);
    T_ERR(x.a2.status, PIER_ECANCELED);
    teardown(&x);
  }
}
END_TEST

/* Another accept started from the condition function waits for the next
   caller; the one decided completes with its socket. */
START_TEST(start_another_accept) {
  for (int k = 0; k < T_NKINDS; k++) {
    if (skip(k)) continue;
    rx x;
    setup(&x, k, A_START_ANOTHER, PIER_CF_ACCEPT);
    T_OK(pier_accept(x.l, &x.a1.op, cond, &x, counted_cb));
    connect_client(&x, 0);
    t_run_until(x.loop, &x.a1.n, 5000);
    T_OK(x.a1.status);
    settle(&x);
    ck_assert_int_eq(x.a2.n, 0);
    connect_client(&x, 1);
    t_run_until(x.loop, &x.a2.n, 5000);
    T_OK(x.a2.status);
    ck_assert_ptr_nonnull(x.a2.accepted);
    teardown(&x);
    ck_assert_int_eq(x.a1.n, 1);
    ck_assert_int_eq(x.a2.n, 1);
  }
}
END_TEST

/* A send on one socket and the close of another (with a receive
   pending) from the condition function: each op completes once. */
START_TEST(other_sockets) {
  for (int k = 0; k < T_NKINDS; k++) {
    if (skip(k)) continue;
    rx x;
    setup(&x, k, A_OTHER_SOCKETS, PIER_CF_ACCEPT);
    t_pair(x.loop, "tcp4", &x.pc, &x.ps);
    pier_buf b = pier_buf_init(x.rbuf, sizeof x.rbuf);
    T_OK(pier_recv(x.ps, &x.precv.op, &b, 1, 0, counted_cb));
    T_OK(pier_accept(x.l, &x.a1.op, cond, &x, counted_cb));
    connect_client(&x, 0);
    t_run_until(x.loop, &x.a1.n, 5000);
    T_OK(x.a1.status);
    t_run_until(x.loop, &x.psend.n, 5000);
    T_OK(x.psend.status);
    t_run_until(x.loop, &x.precv.n, 5000);
    teardown(&x);
    ck_assert_int_eq(x.a1.n, 1);
    ck_assert_int_eq(x.psend.n, 1);
    ck_assert_int_eq(x.precv.n, 1);
  }
}
END_TEST

/* pier_loop_stop from the condition function: the run returns, the
   accept completes once. */
START_TEST(stop_loop) {
  for (int k = 0; k < T_NKINDS; k++) {
    if (skip(k)) continue;
    rx x;
    setup(&x, k, A_STOP_LOOP, PIER_CF_ACCEPT);
    T_OK(pier_accept(x.l, &x.a1.op, cond, &x, counted_cb));
    connect_client(&x, 0);
    /* Runs until the condition function stops it (Check's timeout
       catches a run that never returns). */
    ck_assert_int_ge(pier_loop_run(x.loop, PIER_RUN_DEFAULT), 0);
    ck_assert_int_eq(x.calls, 1);
    t_run_until(x.loop, &x.a1.n, 5000);
    T_OK(x.a1.status);
    teardown(&x);
    ck_assert_int_eq(x.a1.n, 1);
  }
}
END_TEST

Suite *suite_reenter(void) {
  Suite *s = suite_create("reenter");
  TCase *tc = tcase_create("condition");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, close_own_listener);
  tcase_add_test(tc, cancel_own_accept);
  tcase_add_test(tc, cancel_other_accept);
  tcase_add_test(tc, start_another_accept);
  tcase_add_test(tc, other_sockets);
  tcase_add_test(tc, stop_loop);
  suite_add_tcase(s, tc);
  return s;
}
