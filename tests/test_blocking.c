/* SPDX-License-Identifier: MIT */
/*
 * tests/test_blocking.c - the blocking form (cb == NULL), as in Winsock:
 * sockets start in blocking mode; connect, accept, send and recv block in
 * a plain thread with no loop running; pier_cancel_blocking interrupts a
 * blocked recv or accept with PIER_ECANCELED and the socket goes on
 * working; in non-blocking mode the blocking form answers
 * PIER_EWOULDBLOCK.  A cancel or a close is never lost, whenever it lands
 * (even before the call's first attempt, from its own condition
 * function), and a close during a blocking call completes; two threads
 * may block in accept on one listener; a blocking call from a callback of
 * a loop that no other thread serves, or from a condition function (under
 * the loop's lock), answers PIER_EDEADLK; a blocking wait opens no
 * descriptor.
 */
#include "helpers.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#  include <dirent.h>
#endif

typedef struct job {
  pier_socket *s;       /* socket the thread blocks on */
  pier_socket *peer;    /* other end, for the full exchange */
  struct sockaddr_storage addr;
  size_t addrlen;
  int rc[8];            /* results of the thread's calls, in order */
  size_t bytes[8];
  pier_socket *accepted;
  char buf[256];
  volatile int started, finished;
} job;

/*
 * Wait for a thread (no loop run); on timeout interrupt it and fail.  A
 * thread that pier_cancel_blocking cannot end within 5 s more is left
 * running, detached (its job is static), so that the test still ends.
 */
static void join_bounded(pthread_t th, job *j, pier_socket *a, pier_socket *b,
                         int timeout_ms) {
  int late = !t_wait_flag(&j->finished, timeout_ms);
  uint64_t until = t_now_ms() + 5000;
  while (!T_FLAG(&j->finished) && t_now_ms() < until) {
    if (a) pier_cancel_blocking(a);
    if (b) pier_cancel_blocking(b);
    t_sleep_ms(5);
  }
  if (!T_FLAG(&j->finished)) {
    pthread_detach(th);
    ck_abort_msg("blocking thread did not finish in %d ms, nor in 5 s of "
                 "pier_cancel_blocking after that; left running",
                 timeout_ms);
  }
  pthread_join(th, NULL);
  ck_assert_msg(!late, "blocking thread did not finish in %d ms", timeout_ms);
}

/* Retry pier_cancel_blocking until a call is blocked (bounded). */
static void cancel_when_blocked(pier_socket *s, job *j) {
  int rc = PIER_ENOENT, tries = 0;
  uint64_t until = t_now_ms() + 3000;
  while (t_now_ms() < until) {
    rc = pier_cancel_blocking(s);
    tries++;
    if (rc != PIER_ENOENT || T_FLAG(&j->finished)) break;
    t_sleep_ms(3);
  }
  ck_assert_msg(rc == 0, "pier_cancel_blocking returned %s after %d tries",
                pier_err_name(rc), tries);
}

/* ------------------------------------------------------------------ */

/*
 * In a plain thread: connect to a pier listener, accept, then
 * client -> server and server -> client, all with cb == NULL.
 */
static void *exchange_thread(void *arg) {
  job *j = arg;
  pier_op op;
  T_FLAG_SET(&j->started, 1);
  memset(&op, 0, sizeof op);
  j->rc[0] = pier_connect(j->peer, &op, (struct sockaddr *)&j->addr,
                          j->addrlen, NULL, NULL, NULL);
  memset(&op, 0, sizeof op);
  j->rc[1] = pier_accept(j->s, &op, NULL, NULL, NULL);
  j->accepted = op.accepted;
  if (j->rc[0] || j->rc[1] || !j->accepted) goto out;

  char out[100];
  t_fill(out, sizeof out, 7, 0);
  pier_buf b = pier_buf_init(out, sizeof out);
  memset(&op, 0, sizeof op);
  j->rc[2] = pier_send(j->peer, &op, &b, 1, 0, NULL);
  j->bytes[2] = op.bytes;

  b = pier_buf_init(j->buf, sizeof out);
  memset(&op, 0, sizeof op);
  j->rc[3] = pier_recv(j->accepted, &op, &b, 1, PIER_MSG_WAITALL, NULL);
  j->bytes[3] = op.bytes;

  t_fill(out, sizeof out, 8, 0);
  b = pier_buf_init(out, sizeof out);
  memset(&op, 0, sizeof op);
  j->rc[4] = pier_send(j->accepted, &op, &b, 1, 0, NULL);
  j->bytes[4] = op.bytes;

  b = pier_buf_init(j->buf + 100, sizeof out);
  memset(&op, 0, sizeof op);
  j->rc[5] = pier_recv(j->peer, &op, &b, 1, PIER_MSG_WAITALL, NULL);
  j->bytes[5] = op.bytes;
out:
  T_FLAG_SET(&j->finished, 1);
  return NULL;
}

START_TEST(test_blocking_connect_accept_send_recv_in_thread) {
  pier_loop *loop = t_loop_new();
  static job j;
  memset(&j, 0, sizeof j);
  j.s = t_listener(loop, "tcp4", &j.addr, &j.addrlen);
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &j.peer));
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, exchange_thread, &j), 0);
  join_bounded(th, &j, j.s, j.peer, 10000);
  T_OK(j.rc[0]);
  T_OK(j.rc[1]);
  ck_assert_ptr_nonnull(j.accepted);
  T_OK(j.rc[2]);
  ck_assert_uint_eq(j.bytes[2], 100);
  T_OK(j.rc[3]);
  ck_assert_uint_eq(j.bytes[3], 100);
  ck_assert_uint_eq(t_verify(j.buf, 100, 7, 0), (size_t)-1);
  T_OK(j.rc[4]);
  ck_assert_uint_eq(j.bytes[4], 100);
  T_OK(j.rc[5]);
  ck_assert_uint_eq(j.bytes[5], 100);
  ck_assert_uint_eq(t_verify(j.buf + 100, 100, 8, 0), (size_t)-1);

  struct sockaddr_storage peer, local;
  size_t plen = sizeof peer, llen = sizeof local;
  T_OK(pier_getpeername(j.accepted, &peer, &plen));
  T_OK(pier_getsockname(j.peer, &local, &llen));
  ck_assert_uint_eq(plen, llen);
  ck_assert_int_eq(memcmp(&peer, &local, plen), 0);

  T_OK(pier_close(j.accepted, NULL));
  T_OK(pier_close(j.peer, NULL));
  T_OK(pier_close(j.s, NULL));
  t_loop_free(loop);
}
END_TEST

static void close_count_cb(pier_socket *s) {
  (*(int *)pier_socket_get_data(s))++;
}

/* A blocking connect to a port nobody listens on is refused. */
START_TEST(test_blocking_connect_refused) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &la, &llen);
  int closed = 0;
  pier_socket_set_data(l, &closed);
  T_OK(pier_close(l, close_count_cb));
  t_run_until(loop, &closed, 3000);
  pier_socket *c;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &c));
  pier_op op;
  memset(&op, 0, sizeof op);
  T_ERR(pier_connect(c, &op, (struct sockaddr *)&la, llen, NULL, NULL, NULL),
        PIER_ECONNREFUSED);
  ck_assert_int_eq(op.status, PIER_ECONNREFUSED);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */

static void *recv_twice_thread(void *arg) {
  job *j = arg;
  pier_op op;
  pier_buf b = pier_buf_init(j->buf, 64);
  memset(&op, 0, sizeof op);
  T_FLAG_SET(&j->started, 1);
  T_FLAG_SET(&j->rc[0], pier_recv(j->s, &op, &b, 1, 0, NULL));
  j->bytes[0] = op.bytes;
  /* after the cancellation the socket still works */
  memset(&op, 0, sizeof op);
  j->rc[1] = pier_recv(j->s, &op, &b, 1, PIER_MSG_WAITALL, NULL);
  j->bytes[1] = op.bytes;
  T_FLAG_SET(&j->finished, 1);
  return NULL;
}

START_TEST(test_cancel_blocking_interrupts_recv_socket_still_works) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  static job j;
  memset(&j, 0, sizeof j);
  j.s = s;
  T_ERR(pier_cancel_blocking(s), PIER_ENOENT); /* nothing blocked yet */
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, recv_twice_thread, &j), 0);
  cancel_when_blocked(s, &j);

  /* the first recv returned ECANCELED; the second is (or will be) blocked */
  uint64_t until = t_now_ms() + 3000;
  while (T_FLAG(&j.rc[0]) == 0 && !T_FLAG(&j.finished) && t_now_ms() < until)
    t_sleep_ms(2);
  t_sleep_ms(30);
  ck_assert_int_eq(T_FLAG(&j.finished), 0);
  char out[64];
  t_fill(out, sizeof out, 9, 0);
  pier_buf b = pier_buf_init(out, sizeof out);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_send(c, &op, &b, 1, 0, NULL));
  join_bounded(th, &j, s, NULL, 5000);
  T_ERR(j.rc[0], PIER_ECANCELED);
  T_OK(j.rc[1]);
  ck_assert_uint_eq(j.bytes[1], 64);
  ck_assert_uint_eq(t_verify(j.buf, 64, 9, 0), (size_t)-1);
  T_ERR(pier_cancel_blocking(s), PIER_ENOENT);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

static void *accept_thread(void *arg) {
  job *j = arg;
  pier_op op;
  memset(&op, 0, sizeof op);
  T_FLAG_SET(&j->started, 1);
  j->rc[0] = pier_accept(j->s, &op, NULL, NULL, NULL);
  j->accepted = op.accepted;
  T_FLAG_SET(&j->finished, 1);
  return NULL;
}

START_TEST(test_cancel_blocking_interrupts_accept_listener_still_works) {
  pier_loop *loop = t_loop_new();
  static job j;
  memset(&j, 0, sizeof j);
  j.s = t_listener(loop, "tcp4", &j.addr, &j.addrlen);
  T_ERR(pier_cancel_blocking(j.s), PIER_ENOENT);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, accept_thread, &j), 0);
  cancel_when_blocked(j.s, &j);
  join_bounded(th, &j, j.s, NULL, 3000);
  T_ERR(j.rc[0], PIER_ECANCELED);
  ck_assert_ptr_null(j.accepted);

  /* the listener still accepts */
  pier_os_socket h = t_os_connect(&j.addr, j.addrlen);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_accept(j.s, &op, NULL, NULL, NULL));
  ck_assert_ptr_nonnull(op.accepted);
  t_os_close(h);
  T_OK(pier_close(op.accepted, NULL));
  T_OK(pier_close(j.s, NULL));
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */

START_TEST(test_nonblocking_mode_blocking_form_returns_ewouldblock) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  int on = 1, off = 0;
  T_OK(pier_ioctl(s, PIER_FIONBIO, &on));
  char b[32];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op op;
  memset(&op, 0, sizeof op);
  uint64_t t0 = t_now_ms();
  T_ERR(pier_recv(s, &op, &pb, 1, 0, NULL), PIER_EWOULDBLOCK);
  ck_assert_uint_lt(t_now_ms() - t0, 1000);

  /* with data there, the non-blocking call returns it at once */
  char out[10];
  t_fill(out, sizeof out, 12, 0);
  pier_buf ob = pier_buf_init(out, sizeof out);
  memset(&op, 0, sizeof op);
  T_OK(pier_send(c, &op, &ob, 1, 0, NULL));
  size_t got = 0;
  uint64_t until = t_now_ms() + 2000;
  while (got < sizeof out && t_now_ms() < until) {
    pier_buf rb = pier_buf_init(b + got, sizeof out - got);
    memset(&op, 0, sizeof op);
    int rc = pier_recv(s, &op, &rb, 1, 0, NULL);
    if (rc == PIER_EWOULDBLOCK) { t_sleep_ms(2); continue; }
    T_OK(rc);
    got += op.bytes;
  }
  ck_assert_uint_eq(got, sizeof out);
  ck_assert_uint_eq(t_verify(b, sizeof out, 12, 0), (size_t)-1);

  /* back to blocking mode: a blocking recv waits for data again */
  T_OK(pier_ioctl(s, PIER_FIONBIO, &off));
  memset(&op, 0, sizeof op);
  T_OK(pier_send(c, &op, &ob, 1, 0, NULL));
  pier_buf rb = pier_buf_init(b, sizeof out);
  memset(&op, 0, sizeof op);
  T_OK(pier_recv(s, &op, &rb, 1, PIER_MSG_WAITALL, NULL));
  ck_assert_uint_eq(op.bytes, sizeof out);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(test_nonblocking_listener_accept_returns_ewouldblock) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &la, &llen);
  int on = 1;
  T_OK(pier_ioctl(l, PIER_FIONBIO, &on));
  pier_op op;
  memset(&op, 0, sizeof op);
  T_ERR(pier_accept(l, &op, NULL, NULL, NULL), PIER_EWOULDBLOCK);
  ck_assert_ptr_null(op.accepted);
  pier_os_socket h = t_os_connect(&la, llen);
  pier_socket *acc = NULL;
  uint64_t until = t_now_ms() + 2000;
  while (!acc && t_now_ms() < until) {
    memset(&op, 0, sizeof op);
    int rc = pier_accept(l, &op, NULL, NULL, NULL);
    if (rc == PIER_EWOULDBLOCK) { t_sleep_ms(2); continue; }
    T_OK(rc);
    acc = op.accepted;
  }
  ck_assert_ptr_nonnull(acc);
  /* the accepted socket inherits the listener's (non-blocking) mode */
  char b[8];
  pier_buf pb = pier_buf_init(b, sizeof b);
  memset(&op, 0, sizeof op);
  T_ERR(pier_recv(acc, &op, &pb, 1, 0, NULL), PIER_EWOULDBLOCK);
  t_os_close(h);
  T_OK(pier_close(acc, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* cancels and closes that land early                                  */
/* ------------------------------------------------------------------ */

/*
 * A condition function runs inside the blocking accept, before its first
 * wait: a cancel or close it makes must still end the call.  It rejects
 * the caller, so the accept goes on to wait for the next one.
 */
typedef struct early {
  pier_socket *l;
  int close;         /* close the listener instead of canceling */
  int cancel_rc;     /* what pier_cancel_blocking / pier_close answered */
  int closed;        /* close callback ran */
  job j;
} early;

static void early_close_cb(pier_socket *s) {
  T_FLAG_SET(&((early *)pier_socket_get_data(s))->closed, 1);
}

static int cancel_in_condition(pier_accept_info *info, void *ctx) {
  (void)info;
  early *e = ctx;
  e->cancel_rc = e->close ? pier_close(e->l, early_close_cb)
                          : pier_cancel_blocking(e->l);
  return PIER_CF_REJECT;
}

static void *early_accept_thread(void *arg) {
  early *e = arg;
  pier_op op;
  memset(&op, 0, sizeof op);
  e->j.rc[0] = pier_accept(e->l, &op, cancel_in_condition, e, NULL);
  e->j.accepted = op.accepted;
  T_FLAG_SET(&e->j.finished, 1);
  return NULL;
}

static void run_early(int close) {
  pier_loop *loop = t_loop_new();
  static early e;
  memset(&e, 0, sizeof e);
  e.close = close;
  e.l = t_listener(loop, "tcp4", &e.j.addr, &e.j.addrlen);
  pier_socket_set_data(e.l, &e);
  /* The caller waits in the backlog: the first attempt finds it. */
  pier_os_socket h = t_os_connect(&e.j.addr, e.j.addrlen);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, early_accept_thread, &e), 0);
  join_bounded(th, &e.j, e.l, NULL, 3000);
  T_OK(e.cancel_rc);
  T_ERR(e.j.rc[0], PIER_ECANCELED);
  ck_assert_ptr_null(e.j.accepted);
  t_os_close(h);
  if (close) t_run_until(loop, &e.closed, 3000);
  else T_OK(pier_close(e.l, NULL));
  t_loop_free(loop);
}

START_TEST(test_cancel_blocking_from_condition_before_first_wait) {
  run_early(0);
}
END_TEST

START_TEST(test_close_from_condition_before_first_wait_completes) {
  run_early(1);
}
END_TEST

/*
 * Many rounds of a thread starting a blocking recv while the main thread
 * cancels (retrying until a call is in progress) or closes the socket,
 * a few microseconds after the thread set off: the recv must end with
 * PIER_ECANCELED (or PIER_EBADF when the close came first) and the close
 * complete, every round.
 */
static void *race_recv_thread(void *arg) {
  job *j = arg;
  char b[16];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_FLAG_SET(&j->started, 1);
  j->rc[0] = pier_recv(j->s, &op, &pb, 1, 0, NULL);
  T_FLAG_SET(&j->finished, 1);
  return NULL;
}

/* A busy wait of about n loop turns. */
static void spin(int n) {
  for (volatile int i = 0; i < n; i++) {
  }
}

static void run_race(int close) {
  pier_loop *loop = t_loop_new();
  static job j;
  int rounds = 0, canceled = 0, closed_first = 0;
  uint64_t until = t_now_ms() + 6000;
  srand(12);
  while (rounds < 150 && t_now_ms() < until) {
    pier_socket *c, *s;
    t_pair(loop, "tcp4", &c, &s);
    memset(&j, 0, sizeof j);
    j.s = s;
    int closed = 0;
    pier_socket_set_data(s, &closed);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, race_recv_thread, &j), 0);
    while (!T_FLAG(&j.started)) {
    }
    spin(rand() % 4000);
    if (close) {
      T_OK(pier_close(s, close_count_cb));
    } else {
      uint64_t give_up = t_now_ms() + 2000;
      while (pier_cancel_blocking(s) == PIER_ENOENT && t_now_ms() < give_up) {
      }
    }
    ck_assert_msg(t_wait_flag(&j.finished, 2000),
                  "round %d: the blocking recv was not interrupted", rounds);
    pthread_join(th, NULL);
    if (j.rc[0] == PIER_EBADF && close) closed_first++;
    else T_ERR(j.rc[0], PIER_ECANCELED);
    canceled += j.rc[0] == PIER_ECANCELED;
    if (close) t_run_until(loop, &closed, 2000);
    else T_OK(pier_close(s, NULL));
    T_OK(pier_close(c, NULL));
    rounds++;
  }
  ck_assert_int_ge(rounds, 20);
  ck_assert_int_gt(canceled, 0);
  (void)closed_first;
  t_loop_free(loop);
}

START_TEST(test_cancel_racing_start_of_blocking_recv) { run_race(0); }
END_TEST

START_TEST(test_close_racing_start_of_blocking_recv) { run_race(1); }
END_TEST

/* A close while a thread waits in a blocking recv: both complete. */
START_TEST(test_close_during_blocking_recv_completes) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  static job j;
  memset(&j, 0, sizeof j);
  j.s = s;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, race_recv_thread, &j), 0);
  ck_assert(t_wait_flag(&j.started, 2000));
  t_sleep_ms(50); /* let it wait */
  int closed = 0;
  pier_socket_set_data(s, &closed);
  T_OK(pier_close(s, close_count_cb));
  t_run_until(loop, &closed, 3000);
  ck_assert(t_wait_flag(&j.finished, 1000));
  pthread_join(th, NULL);
  T_ERR(j.rc[0], PIER_ECANCELED);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* two threads in blocking accept on one listener                      */
/* ------------------------------------------------------------------ */

#define TWO_N 60

typedef struct two {
  pier_socket *l;
  struct sockaddr_storage addr;
  size_t addrlen;
  pthread_mutex_t mu;
  pier_socket *acc[TWO_N + 8];
  int naccepted;     /* under mu */
  int conds;         /* condition calls (atomic) */
  int rc[2];         /* how each thread's last accept ended */
  volatile int finished[2];
} two;

static int count_condition(pier_accept_info *info, void *ctx) {
  (void)info;
  __atomic_fetch_add(&((two *)ctx)->conds, 1, __ATOMIC_SEQ_CST);
  return PIER_CF_ACCEPT;
}

typedef struct two_arg { two *t; int me; } two_arg;

static void *two_accept_thread(void *arg) {
  two *t = ((two_arg *)arg)->t;
  int me = ((two_arg *)arg)->me;
  for (;;) {
    pier_op op;
    memset(&op, 0, sizeof op);
    int rc = pier_accept(t->l, &op, count_condition, t, NULL);
    if (rc) {
      t->rc[me] = rc;
      break;
    }
    pthread_mutex_lock(&t->mu);
    if (t->naccepted < TWO_N + 8) t->acc[t->naccepted++] = op.accepted;
    pthread_mutex_unlock(&t->mu);
  }
  T_FLAG_SET(&t->finished[me], 1);
  return NULL;
}

static int two_count(two *t) {
  pthread_mutex_lock(&t->mu);
  int n = t->naccepted;
  pthread_mutex_unlock(&t->mu);
  return n;
}

START_TEST(test_two_threads_blocking_accept_one_listener) {
  pier_loop *loop = t_loop_new();
  static two t;
  memset(&t, 0, sizeof t);
  pthread_mutex_init(&t.mu, NULL);
  t.l = t_listener_backlog(loop, "tcp4", &t.addr, &t.addrlen, TWO_N);
  pthread_t th[2];
  static two_arg args[2];
  for (int i = 0; i < 2; i++) {
    args[i].t = &t;
    args[i].me = i;
    ck_assert_int_eq(pthread_create(&th[i], NULL, two_accept_thread, &args[i]),
                     0);
  }
  pier_os_socket h[TWO_N];
  for (int i = 0; i < TWO_N; i++) h[i] = t_os_connect(&t.addr, t.addrlen);
  uint64_t until = t_now_ms() + 5000;
  while (two_count(&t) < TWO_N && t_now_ms() < until) t_sleep_ms(2);
  ck_assert_int_eq(two_count(&t), TWO_N);
  /* both still wait for more: cancel them */
  until = t_now_ms() + 3000;
  while ((T_FLAG(&t.finished[0]) != 1 || T_FLAG(&t.finished[1]) != 1) &&
         t_now_ms() < until) {
    pier_cancel_blocking(t.l);
    t_sleep_ms(2);
  }
  ck_assert_int_eq(T_FLAG(&t.finished[0]), 1);
  ck_assert_int_eq(T_FLAG(&t.finished[1]), 1);
  pthread_join(th[0], NULL);
  pthread_join(th[1], NULL);
  T_ERR(t.rc[0], PIER_ECANCELED);
  T_ERR(t.rc[1], PIER_ECANCELED);
  ck_assert_int_eq(__atomic_load_n(&t.conds, __ATOMIC_SEQ_CST), TWO_N);
  for (int i = 0; i < TWO_N; i++) {
    ck_assert_ptr_nonnull(t.acc[i]);
    for (int k = 0; k < i; k++) ck_assert_ptr_ne(t.acc[i], t.acc[k]);
    T_OK(pier_close(t.acc[i], NULL));
    t_os_close(h[i]);
  }
  T_OK(pier_close(t.l, NULL));
  t_loop_free(loop);
  pthread_mutex_destroy(&t.mu);
}
END_TEST

/* ------------------------------------------------------------------ */
/* from a callback of a loop served by one thread                      */
/* ------------------------------------------------------------------ */

typedef struct deadlock {
  pier_socket *s, *l, *nb;
  int rc_recv, rc_accept, rc_nb;
  int done;
} deadlock;

static void deadlock_cb(pier_op *op, int status) {
  (void)status;
  deadlock *d = op->data;
  char b[8];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op bop;
  memset(&bop, 0, sizeof bop);
  d->rc_recv = pier_recv(d->s, &bop, &pb, 1, 0, NULL);
  memset(&bop, 0, sizeof bop);
  d->rc_accept = pier_accept(d->l, &bop, NULL, NULL, NULL);
  memset(&bop, 0, sizeof bop);
  d->rc_nb = pier_recv(d->nb, &bop, &pb, 1, 0, NULL); /* never waits */
  T_FLAG_SET(&d->done, 1);
}

/* Before the fix the calls hang: interrupt them after 2 s so the test
   fails instead. */
static void *deadlock_watchdog(void *arg) {
  deadlock *d = arg;
  if (!t_wait_flag(&d->done, 2000)) {
    for (int i = 0; i < 1000 && !T_FLAG(&d->done); i++) {
      pier_cancel_blocking(d->s);
      pier_cancel_blocking(d->l);
      t_sleep_ms(5);
    }
  }
  return NULL;
}

START_TEST(test_blocking_call_in_callback_one_thread_loop_edeadlk) {
  pier_loop *loop = t_loop_new();
  static deadlock d;
  memset(&d, 0, sizeof d);
  pier_socket *c, *c2;
  t_pair(loop, "tcp4", &c, &d.s);
  t_pair(loop, "tcp4", &c2, &d.nb);
  int on = 1;
  T_OK(pier_ioctl(d.nb, PIER_FIONBIO, &on));
  struct sockaddr_storage la;
  size_t llen;
  d.l = t_listener(loop, "tcp4", &la, &llen);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, deadlock_watchdog, &d), 0);
  pier_op post;
  memset(&post, 0, sizeof post);
  post.data = &d;
  T_OK(pier_loop_post(loop, &post, deadlock_cb));
  t_run_until(loop, &d.done, 10000);
  pthread_join(th, NULL);
  T_ERR(d.rc_recv, PIER_EDEADLK);
  T_ERR(d.rc_accept, PIER_EDEADLK);
  T_ERR(d.rc_nb, PIER_EWOULDBLOCK);
  /* outside the callback the same calls block as before */
  char out[4] = "abc";
  pier_buf ob = pier_buf_init(out, sizeof out);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_send(c, &op, &ob, 1, 0, NULL));
  char in[4];
  pier_buf ib = pier_buf_init(in, sizeof in);
  memset(&op, 0, sizeof op);
  T_OK(pier_recv(d.s, &op, &ib, 1, PIER_MSG_WAITALL, NULL));
  ck_assert_uint_eq(op.bytes, sizeof in);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(c2, NULL));
  T_OK(pier_close(d.s, NULL));
  T_OK(pier_close(d.nb, NULL));
  T_OK(pier_close(d.l, NULL));
  t_loop_free(loop);
}
END_TEST

/*
 * With a second thread serving the loop, the same call from a callback
 * waits and completes.  The helper thread may not have started when the
 * callback first runs (PIER_EDEADLK then): it posts itself again.
 */
typedef struct served {
  pier_socket *s;
  int rc, tries;
} served;

static void served_cb(pier_op *op, int status) {
  (void)status;
  served *v = op->data;
  char b[4];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op bop;
  memset(&bop, 0, sizeof bop);
  v->rc = pier_recv(v->s, &bop, &pb, 1, PIER_MSG_WAITALL, NULL);
  if (v->rc == PIER_EDEADLK && ++v->tries < 400) {
    t_sleep_ms(5);
    pier_loop_post(pier_socket_loop(v->s), op, served_cb);
  }
}

START_TEST(test_blocking_call_in_callback_other_thread_serves) {
  pier_loop_options o;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.threads = 2;
  pier_loop *loop = NULL;
  T_OK(pier_loop_new(&o, &loop));
  static served v;
  memset(&v, 0, sizeof v);
  pier_socket *c;
  t_pair(loop, "tcp4", &c, &v.s);
  char out[4] = "abc";
  pier_buf ob = pier_buf_init(out, sizeof out);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_send(c, &op, &ob, 1, 0, NULL));
  pier_op post;
  memset(&post, 0, sizeof post);
  post.data = &v;
  T_OK(pier_loop_post(loop, &post, served_cb));
  T_OK(pier_loop_run(loop, PIER_RUN_DEFAULT));
  T_OK(v.rc);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(v.s, NULL));
  t_loop_free(loop);
}
END_TEST

/*
 * A condition function runs with the loop's lock held: a blocking call
 * made there answers PIER_EDEADLK even while another thread serves the
 * loop, since waiting would stop every thread that needs the lock.  The
 * caller connects from a timer, once both threads are up.
 */
typedef struct in_cond {
  pier_socket *s, *l;
  struct sockaddr_storage addr;
  size_t addrlen;
  pier_os_socket h;
  int rc, done, accepted;
} in_cond;

static int blocking_condition(pier_accept_info *info, void *ctx) {
  (void)info;
  in_cond *k = ctx;
  char b[4];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op bop;
  memset(&bop, 0, sizeof bop);
  k->rc = pier_recv(k->s, &bop, &pb, 1, 0, NULL);
  T_FLAG_SET(&k->done, 1);
  return PIER_CF_ACCEPT;
}

static void in_cond_accepted(pier_op *op, int status) {
  in_cond *k = op->data;
  if (status == 0) pier_close(op->accepted, NULL);
  k->accepted = status == 0 ? 1 : -1;
}

static void in_cond_connect(pier_timer *tm) {
  in_cond *k = tm->data;
  k->h = t_os_connect(&k->addr, k->addrlen);
}

static void *in_cond_watchdog(void *arg) {
  in_cond *k = arg;
  if (!t_wait_flag(&k->done, 3000))
    for (int i = 0; i < 1000 && !T_FLAG(&k->done); i++) {
      pier_cancel_blocking(k->s);
      t_sleep_ms(5);
    }
  return NULL;
}

START_TEST(test_blocking_call_in_condition_edeadlk) {
  pier_loop_options o;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.threads = 2;
  pier_loop *loop = NULL;
  T_OK(pier_loop_new(&o, &loop));
  static in_cond k;
  memset(&k, 0, sizeof k);
  pier_socket *c;
  t_pair(loop, "tcp4", &c, &k.s);
  k.l = t_listener(loop, "tcp4", &k.addr, &k.addrlen);
  pier_op aop;
  memset(&aop, 0, sizeof aop);
  aop.data = &k;
  T_OK(pier_accept(k.l, &aop, blocking_condition, &k, in_cond_accepted));
  pier_timer tm;
  T_OK(pier_timer_init(loop, &tm));
  tm.data = &k;
  T_OK(pier_timer_start(&tm, 200, 0, in_cond_connect));
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, in_cond_watchdog, &k), 0);
  T_OK(pier_loop_run(loop, PIER_RUN_DEFAULT));
  pthread_join(th, NULL);
  T_ERR(k.rc, PIER_EDEADLK);
  ck_assert_int_eq(k.accepted, 1);
  t_os_close(k.h);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(k.s, NULL));
  T_OK(pier_close(k.l, NULL));
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* what a wait costs                                                   */
/* ------------------------------------------------------------------ */

#ifdef __linux__
static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

/* Wait in a blocking recv in a thread, count descriptors meanwhile, then
   cancel it; returns the count. */
static int fds_during_wait(pier_socket *s) {
  static job j;
  memset(&j, 0, sizeof j);
  j.s = s;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, race_recv_thread, &j), 0);
  ck_assert(t_wait_flag(&j.started, 2000));
  t_sleep_ms(20); /* it waits in poll() by now (or soon: see the rounds) */
  int n = open_fds();
  cancel_when_blocked(s, &j);
  join_bounded(th, &j, s, NULL, 3000);
  T_ERR(j.rc[0], PIER_ECANCELED);
  return n;
}

/* Blocking waits open no descriptor: the count while one waits stays
   what it was once the loop has its first wake descriptor. */
START_TEST(test_blocking_wait_opens_no_descriptor) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  fds_during_wait(s); /* the loop's first blocking wait */
  int before = open_fds();
  ck_assert_int_gt(before, 0);
  for (int i = 0; i < 15; i++) {
    int during = fds_during_wait(s);
    ck_assert_msg(during == before,
                  "round %d: %d descriptors open during a wait, %d before",
                  i, during, before);
  }
  ck_assert_int_eq(open_fds(), before);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST
#endif


Suite *suite_blocking(void) {
  Suite *s = suite_create("blocking");
  TCase *tc = tcase_create("blocking_calls");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_blocking_connect_accept_send_recv_in_thread);
  tcase_add_test(tc, test_blocking_connect_refused);
  suite_add_tcase(s, tc);

  tc = tcase_create("cancel_blocking");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_cancel_blocking_interrupts_recv_socket_still_works);
  tcase_add_test(tc, test_cancel_blocking_interrupts_accept_listener_still_works);
  tcase_add_test(tc, test_cancel_blocking_from_condition_before_first_wait);
  tcase_add_test(tc, test_close_from_condition_before_first_wait_completes);
  tcase_add_test(tc, test_cancel_racing_start_of_blocking_recv);
  tcase_add_test(tc, test_close_racing_start_of_blocking_recv);
  tcase_add_test(tc, test_close_during_blocking_recv_completes);
  tcase_add_test(tc, test_two_threads_blocking_accept_one_listener);
  suite_add_tcase(s, tc);

  tc = tcase_create("loop_thread");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_blocking_call_in_callback_one_thread_loop_edeadlk);
  tcase_add_test(tc, test_blocking_call_in_callback_other_thread_serves);
  tcase_add_test(tc, test_blocking_call_in_condition_edeadlk);
#ifdef __linux__
  tcase_add_test(tc, test_blocking_wait_opens_no_descriptor);
#endif
  suite_add_tcase(s, tc);

  tc = tcase_create("nonblocking_mode");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_nonblocking_mode_blocking_form_returns_ewouldblock);
  tcase_add_test(tc, test_nonblocking_listener_accept_returns_ewouldblock);
  suite_add_tcase(s, tc);
  return s;
}
