/* SPDX-License-Identifier: MIT */
/*
 * tests/test_fairness.c - delivery order of completions (DESIGN.md §3.4):
 * a completion that is ready runs after at most the callbacks that were
 * ready before it, whatever their kind.
 *
 *   - an accepted socket that is already waiting for delivery when its
 *     accept callback runs is delivered once, and everything queued behind
 *     it still runs (the ready list stays whole), with one thread and with
 *     four;
 *   - posts that re-post themselves do not keep a datagram, a timer or a
 *     close callback from running.
 */
#include "helpers.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* an accepted socket on the ready list while its accept callback runs */
/* ------------------------------------------------------------------ */

#define NPOSTS 300

typedef struct busy_case {
  pier_socket *listener, *accepted;
  int posts, accepts, accept_status, events, closes;
  int events_during_accept; /* the accepted socket's callback overlapped */
  int in_accept;
} busy_case;

static busy_case *the_case; /* event callbacks get only the socket */

static void busy_events(pier_socket *s, unsigned ev) {
  (void)ev;
  busy_case *c = the_case;
  if (s == c->listener) return;
  /* Not before the accept callback that hands the socket over has
     returned, nor while it runs. */
  if (T_FLAG(&c->in_accept) || T_FLAG(&c->accepts) == 0)
    T_FLAG_SET(&c->events_during_accept, 1);
  __atomic_add_fetch(&c->events, 1, __ATOMIC_SEQ_CST);
}

static void busy_accepted(pier_op *op, int status) {
  busy_case *c = op->data;
  T_FLAG_SET(&c->in_accept, 1);
  c->accept_status = status;
  c->accepted = op->accepted;
  t_sleep_ms(20); /* give another runner the chance to overlap */
  T_FLAG_SET(&c->in_accept, 0);
  __atomic_add_fetch(&c->accepts, 1, __ATOMIC_SEQ_CST);
}

static void busy_post(pier_op *op, int status) {
  busy_case *c = op->data;
  (void)status;
  __atomic_add_fetch(&c->posts, 1, __ATOMIC_SEQ_CST);
}

static void busy_closed(pier_socket *s) {
  (void)s;
  __atomic_add_fetch(&the_case->closes, 1, __ATOMIC_SEQ_CST);
}

static void accepted_socket_busy(unsigned threads) {
  pier_loop *loop = t_loop_threads(threads);
  static busy_case c;
  memset(&c, 0, sizeof c);
  the_case = &c;
  struct sockaddr_storage addr;
  size_t len;
  c.listener = t_listener(loop, "tcp4", &addr, &len);
  int rc = pier_event_select(c.listener, PIER_EV_ACCEPT | PIER_EV_WRITE,
                             busy_events);
  if (rc == PIER_EOPNOTSUPP) { /* a provider without network events */
    pier_close(c.listener, NULL);
    t_loop_free(loop);
    return;
  }
  T_OK(rc);
  static pier_op posts[NPOSTS];
  memset(posts, 0, sizeof posts);
  for (int i = 0; i < NPOSTS; i++) {
    posts[i].data = &c;
    T_OK(pier_loop_post(loop, &posts[i], busy_post));
  }
  pier_op acc;
  memset(&acc, 0, sizeof acc);
  acc.data = &c;
  T_OK(pier_accept(c.listener, &acc, NULL, NULL, busy_accepted));
  pier_os_socket peer = t_os_connect(&addr, len);
  t_run_until(loop, &c.accepts, 5000);
  T_OK(c.accept_status);
  ck_assert_ptr_nonnull(c.accepted);
  /* The accepted socket inherited WRITE: its event callback runs once,
     never while the accept callback that handed it over still runs. */
  t_run_until(loop, &c.events, 5000);
  t_run_until_count(loop, &c.posts, NPOSTS, 5000);
  ck_assert_int_eq(T_FLAG(&c.events_during_accept), 0);
  T_OK(pier_close(c.accepted, busy_closed));
  T_OK(pier_close(c.listener, busy_closed));
  t_run_until_count(loop, &c.closes, 2, 5000);
  ck_assert_int_eq(T_FLAG(&c.posts), NPOSTS);
  ck_assert_int_eq(T_FLAG(&c.accepts), 1);
  ck_assert_int_eq(T_FLAG(&c.events), 1);
  t_os_close(peer);
  T_OK(pier_loop_free(loop));
}

START_TEST(accepted_socket_waiting_behind_posts_is_delivered_once) {
  accepted_socket_busy(1);
}
END_TEST

START_TEST(accepted_socket_waiting_behind_posts_with_four_threads) {
  accepted_socket_busy(4);
}
END_TEST

/* ------------------------------------------------------------------ */
/* posts that re-post themselves                                       */
/* ------------------------------------------------------------------ */

#define NSPIN 200
#define SPIN_LIMIT 2000000 /* post callbacks: the test fails beyond this */

typedef struct spin {
  pier_loop *loop;
  int stop;       /* set once the awaited callback has run */
  long calls;     /* post callbacks so far */
  long calls_at;  /* ... when the awaited callback ran */
  int done;       /* the awaited callback ran */
  int status;
} spin;

static void spin_cb(pier_op *op, int status) {
  spin *sp = op->data;
  (void)status;
  sp->calls++;
  if (!sp->stop && sp->calls < SPIN_LIMIT)
    ck_assert_int_eq(pier_loop_post(sp->loop, op, spin_cb), 0);
}

static void spin_start(spin *sp, pier_op *ops) {
  for (int i = 0; i < NSPIN; i++) {
    memset(&ops[i], 0, sizeof ops[i]);
    ops[i].data = sp;
    T_OK(pier_loop_post(sp->loop, &ops[i], spin_cb));
  }
}

static void spin_awaited(spin *sp, int status) {
  sp->done = 1;
  sp->status = status;
  sp->calls_at = sp->calls;
  sp->stop = 1;
}

/* Run until the awaited callback ran and the posts died out; the awaited
   callback must have come before a few rounds of the posts. */
static void spin_finish(spin *sp) {
  uint64_t end = t_now_ms() + 10000;
  while (!sp->done && sp->calls < SPIN_LIMIT && t_now_ms() < end)
    pier_loop_run(sp->loop, PIER_RUN_ONCE);
  ck_assert_msg(sp->done, "the awaited callback never ran: %ld post callbacks "
                "ran instead", sp->calls);
  ck_assert_msg(sp->calls_at < 20 * NSPIN, "the awaited callback waited "
                "behind %ld post callbacks", sp->calls_at);
  while (pier_loop_run(sp->loop, PIER_RUN_NOWAIT) > 0 && sp->calls < SPIN_LIMIT)
    ;
}

static void spin_recv_cb(pier_op *op, int status) {
  spin_awaited(op->data, status);
}

START_TEST(reposting_posts_do_not_starve_a_datagram) {
  static spin sp;
  static pier_op ops[NSPIN];
  memset(&sp, 0, sizeof sp);
  sp.loop = t_loop_new();
  const pier_protocol_info *p = pier_protocol_find("udp4");
  ck_assert_ptr_nonnull(p);
  struct sockaddr_storage b, to;
  size_t blen, tolen = sizeof to;
  t_loopback("udp4", &b, &blen);
  pier_socket *rx, *tx;
  T_OK(pier_socket_open(sp.loop, p, 0, &rx));
  T_OK(pier_bind(rx, T_SA(&b), blen));
  T_OK(pier_getsockname(rx, &to, &tolen));
  T_OK(pier_socket_open(sp.loop, p, 0, &tx));
  char in[16], out[] = "fair";
  pier_buf ib = pier_buf_init(in, sizeof in);
  pier_buf ob = pier_buf_init(out, sizeof out);
  pier_op rop, sop;
  memset(&rop, 0, sizeof rop);
  memset(&sop, 0, sizeof sop);
  rop.data = &sp;
  int sent = 0;
  sop.data = &sent;
  spin_start(&sp, ops);
  T_OK(pier_recvfrom(rx, &rop, &ib, 1, 0, NULL, spin_recv_cb));
  T_OK(pier_sendto(tx, &sop, &ob, 1, 0, T_SA(&to), tolen, t_count_cb));
  spin_finish(&sp);
  T_OK(sp.status);
  ck_assert_uint_eq(rop.bytes, sizeof out);
  ck_assert_int_eq(sent, 1);
  T_OK(pier_close(rx, NULL));
  T_OK(pier_close(tx, NULL));
  t_loop_free(sp.loop);
}
END_TEST

static spin *timer_spin;
static void spin_timer_cb(pier_timer *t) {
  (void)t;
  spin_awaited(timer_spin, 0);
}

START_TEST(reposting_posts_do_not_starve_a_timer) {
  static spin sp;
  static pier_op ops[NSPIN];
  memset(&sp, 0, sizeof sp);
  sp.loop = t_loop_new();
  timer_spin = &sp;
  pier_timer t;
  T_OK(pier_timer_init(sp.loop, &t));
  T_OK(pier_timer_start(&t, 5, 0, spin_timer_cb));
  spin_start(&sp, ops);
  t_sleep_ms(10); /* due before the first poll */
  spin_finish(&sp);
  t_loop_free(sp.loop);
}
END_TEST

static spin *close_spin;
static void spin_closed(pier_socket *s) {
  (void)s;
  spin_awaited(close_spin, 0);
}

START_TEST(reposting_posts_do_not_starve_a_close_callback) {
  static spin sp;
  static pier_op ops[NSPIN];
  memset(&sp, 0, sizeof sp);
  sp.loop = t_loop_new();
  close_spin = &sp;
  struct sockaddr_storage addr;
  size_t len;
  pier_socket *l = t_listener(sp.loop, "tcp4", &addr, &len);
  spin_start(&sp, ops);
  T_OK(pier_close(l, spin_closed));
  spin_finish(&sp);
  t_loop_free(sp.loop);
}
END_TEST

Suite *suite_fairness(void) {
  Suite *s = suite_create("fairness");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, accepted_socket_waiting_behind_posts_is_delivered_once);
  tcase_add_test(tc, accepted_socket_waiting_behind_posts_with_four_threads);
  tcase_add_test(tc, reposting_posts_do_not_starve_a_datagram);
  tcase_add_test(tc, reposting_posts_do_not_starve_a_timer);
  tcase_add_test(tc, reposting_posts_do_not_starve_a_close_callback);
  suite_add_tcase(s, tc);
  return s;
}
