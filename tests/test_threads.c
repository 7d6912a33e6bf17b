/* SPDX-License-Identifier: MIT */
/*
 * tests/test_threads.c - several threads serving one loop
 * (pier_loop_options.threads, or application threads calling
 * pier_loop_run together), as an I/O completion port is served.
 *
 * The stress test moves 64 KiB each way over 200 loopback connections
 * with 8 threads, two receives and two sends in flight per socket, and
 * checks that:
 *   - every byte arrives, in order (CRC of each stream as delivered,
 *     against the sender's pattern);
 *   - callbacks of one socket never overlap (a per-socket entry counter)
 *     and the close callback comes after the last of them;
 *   - every operation started completes exactly once (a live flag per op,
 *     global started / completed counters);
 *   - more than one thread ran callbacks.
 * Callbacks run on loop threads, where Check's assertions must not be
 * used: they record problems, and the test thread asserts afterwards.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include <pier/spi.h>

#define NTHREADS 8
#define MAXCONN 200
#define STREAM (64 * 1024)
#define RBUF 3000
#define TBUF 8192
#define HDR 8 /* each stream starts with its 8-byte seed */

/* ------------------------------------------------------------------ */
/* CRC-32 (IEEE), table-driven                                          */
/* ------------------------------------------------------------------ */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n) {
  crc = ~crc;
  while (n--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* Byte range [off, off+len) of the stream of seed. */
static void stream_fill(unsigned char *buf, size_t len, uint64_t seed,
                        size_t off) {
  for (size_t i = 0; i < len; i++) {
    size_t p = off + i;
    if (p < HDR) buf[i] = (unsigned char)(seed >> (8 * p));
    else t_fill(buf + i, 1, seed, p - HDR);
  }
}

static uint32_t stream_crc(uint64_t seed, size_t total) {
  unsigned char buf[4096];
  uint32_t crc = 0;
  for (size_t off = 0; off < total; off += sizeof buf) {
    size_t n = total - off < sizeof buf ? total - off : sizeof buf;
    stream_fill(buf, n, seed, off);
    crc = crc_update(crc, buf, n);
  }
  return crc;
}

/* ------------------------------------------------------------------ */
/* the exchange                                                        */
/* ------------------------------------------------------------------ */

typedef struct stress stress;
typedef struct side side;

typedef struct xop {
  pier_op op;
  side *sd;
  int live;                  /* atomic: started and not yet completed */
  unsigned char buf[TBUF];
} xop;

struct side {
  stress *st;
  pier_socket *s;
  uint64_t seed;             /* of the stream this side sends */
  size_t posted, sent, recvd;
  uint32_t crc;              /* of the bytes received, in delivery order */
  unsigned char hdr[HDR];    /* the peer's seed, as received */
  int in_cb;                 /* atomic: callbacks of this socket running */
  int closing;
  xop rx[2], tx[2];
};

struct stress {
  pier_loop *loop;
  int nconn;
  size_t bytes;              /* each way per connection */
  pier_socket *listener;
  xop acc[4];
  int accepted, accepts_live; /* listener callbacks only */
  side *sides;               /* nconn clients, then nconn accepted */
  pier_timer guard;          /* stops a run that takes too long */
  int timed_out;
  int started, completed;    /* atomic: ops */
  int overlaps;              /* atomic: a socket's callbacks overlapped */
  int doubles;               /* atomic: an op completed twice */
  int errors;                /* atomic: unexpected statuses */
  int closes;                /* atomic: close callbacks */
  int closed_early;          /* atomic: close callback with ops live */
  char first_error[160];
  pthread_mutex_t mu;        /* first_error, threads */
  pthread_t threads[64];
  int nthreads_seen;
};

static void note_error(stress *st, const char *what, int status) {
  __atomic_fetch_add(&st->errors, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_lock(&st->mu);
  if (!st->first_error[0])
    snprintf(st->first_error, sizeof st->first_error, "%s: %d (%s)", what,
             status, pier_err_name(status));
  pthread_mutex_unlock(&st->mu);
}

static void note_thread(stress *st) {
  pthread_t me = pthread_self();
  pthread_mutex_lock(&st->mu);
  int known = 0;
  for (int i = 0; i < st->nthreads_seen; i++)
    if (pthread_equal(st->threads[i], me)) known = 1;
  if (!known && st->nthreads_seen < 64) st->threads[st->nthreads_seen++] = me;
  pthread_mutex_unlock(&st->mu);
}

static void op_start(stress *st, xop *x) {
  __atomic_store_n(&x->live, 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&st->started, 1, __ATOMIC_SEQ_CST);
}

/* A callback begins: count the op's completion and watch for overlap. */
static void cb_enter(side *sd, xop *x) {
  stress *st = sd->st;
  if (__atomic_fetch_add(&sd->in_cb, 1, __ATOMIC_SEQ_CST) != 0)
    __atomic_fetch_add(&st->overlaps, 1, __ATOMIC_SEQ_CST);
  if (x) {
    if (__atomic_exchange_n(&x->live, 0, __ATOMIC_SEQ_CST) != 1)
      __atomic_fetch_add(&st->doubles, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&st->completed, 1, __ATOMIC_SEQ_CST);
  }
  note_thread(st);
}

static void cb_leave(side *sd) {
  __atomic_fetch_sub(&sd->in_cb, 1, __ATOMIC_SEQ_CST);
}

static void on_close(pier_socket *s) {
  side *sd = pier_socket_get_data(s);
  stress *st = sd->st;
  cb_enter(sd, NULL);
  for (int i = 0; i < 2; i++)
    if (__atomic_load_n(&sd->rx[i].live, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&sd->tx[i].live, __ATOMIC_SEQ_CST))
      __atomic_fetch_add(&st->closed_early, 1, __ATOMIC_SEQ_CST);
  cb_leave(sd);
  int n = __atomic_add_fetch(&st->closes, 1, __ATOMIC_SEQ_CST);
  if (n == 2 * st->nconn) pier_timer_stop(&st->guard);
}

static void maybe_close(side *sd) {
  if (sd->closing || sd->sent < sd->st->bytes || sd->recvd < sd->st->bytes)
    return;
  sd->closing = 1;
  int rc = pier_close(sd->s, on_close);
  if (rc) note_error(sd->st, "pier_close", rc);
}

static void on_send(pier_op *op, int status);
static void on_recv(pier_op *op, int status);

/* Keep both sends busy until the stream is all posted. */
static void pump_send(side *sd) {
  stress *st = sd->st;
  for (int i = 0; i < 2 && sd->posted < st->bytes; i++) {
    xop *x = &sd->tx[i];
    if (__atomic_load_n(&x->live, __ATOMIC_SEQ_CST)) continue;
    /* Chunk sizes vary so that sends and receives never line up. */
    size_t len = 1 + (sd->posted * 7919 + (size_t)sd->seed) % TBUF;
    if (len > st->bytes - sd->posted) len = st->bytes - sd->posted;
    stream_fill(x->buf, len, sd->seed, sd->posted);
    pier_buf b = pier_buf_init(x->buf, len);
    op_start(st, x);
    int rc = pier_send(sd->s, &x->op, &b, 1, 0, on_send);
    if (rc) {
      __atomic_store_n(&x->live, 0, __ATOMIC_SEQ_CST);
      __atomic_fetch_sub(&st->started, 1, __ATOMIC_SEQ_CST);
      note_error(st, "pier_send", rc);
      return;
    }
    sd->posted += len;
  }
}

static void post_recv(side *sd, xop *x) {
  pier_buf b = pier_buf_init(x->buf, RBUF);
  op_start(sd->st, x);
  int rc = pier_recv(sd->s, &x->op, &b, 1, 0, on_recv);
  if (rc) {
    __atomic_store_n(&x->live, 0, __ATOMIC_SEQ_CST);
    __atomic_fetch_sub(&sd->st->started, 1, __ATOMIC_SEQ_CST);
    note_error(sd->st, "pier_recv", rc);
  }
}

static void on_send(pier_op *op, int status) {
  xop *x = (xop *)op;
  side *sd = x->sd;
  cb_enter(sd, x);
  if (status == 0) {
    sd->sent += op->bytes;
    if (!sd->closing) pump_send(sd);
    maybe_close(sd);
  } else if (!(status == PIER_ECANCELED && sd->closing)) {
    note_error(sd->st, "send", status);
  }
  cb_leave(sd);
}

static void on_recv(pier_op *op, int status) {
  xop *x = (xop *)op;
  side *sd = x->sd;
  cb_enter(sd, x);
  if (status == 0 && op->bytes > 0) {
    size_t n = op->bytes;
    for (size_t i = 0; i < n && sd->recvd + i < HDR; i++)
      sd->hdr[sd->recvd + i] = x->buf[i];
    sd->crc = crc_update(sd->crc, x->buf, n);
    sd->recvd += n;
    if (sd->recvd > sd->st->bytes) note_error(sd->st, "received too much", 0);
    if (!sd->closing && sd->recvd < sd->st->bytes) post_recv(sd, x);
    maybe_close(sd);
  } else if (status == 0) {
    /* end of stream: the peer has all it wanted and closed first */
    if (sd->recvd < sd->st->bytes) note_error(sd->st, "early EOF", 0);
  } else if (!(status == PIER_ECANCELED && sd->closing)) {
    note_error(sd->st, "recv", status);
  }
  cb_leave(sd);
}

static void begin_io(side *sd) {
  pier_socket_set_data(sd->s, sd);
  post_recv(sd, &sd->rx[0]);
  post_recv(sd, &sd->rx[1]);
  pump_send(sd);
}

static void on_connect(pier_op *op, int status) {
  xop *x = (xop *)op;
  side *sd = x->sd;
  cb_enter(sd, x);
  if (status) note_error(sd->st, "connect", status);
  else begin_io(sd);
  cb_leave(sd);
}

static side listener_side; /* for its callbacks' overlap check only */

static void post_accept(stress *st, xop *x);

static void on_accept(pier_op *op, int status) {
  xop *x = (xop *)op;
  stress *st = x->sd->st;
  cb_enter(x->sd, x);
  st->accepts_live--;
  if (status == 0) {
    side *sd = &st->sides[st->nconn + st->accepted];
    sd->s = op->accepted;
    st->accepted++;
    begin_io(sd);
    if (st->accepted + st->accepts_live < st->nconn) post_accept(st, x);
    if (st->accepted == st->nconn) pier_close(st->listener, NULL);
  } else if (status != PIER_ECANCELED) {
    note_error(st, "accept", status);
  }
  cb_leave(x->sd);
}

static void post_accept(stress *st, xop *x) {
  op_start(st, x);
  st->accepts_live++;
  int rc = pier_accept(st->listener, &x->op, NULL, NULL, on_accept);
  if (rc) {
    __atomic_store_n(&x->live, 0, __ATOMIC_SEQ_CST);
    __atomic_fetch_sub(&st->started, 1, __ATOMIC_SEQ_CST);
    st->accepts_live--;
    note_error(st, "pier_accept", rc);
  }
}

static void on_guard(pier_timer *t) {
  stress *st = t->data;
  st->timed_out = 1;
  pier_loop_stop(st->loop);
}

/* Set everything up on loop and start the connects and accepts. */
static stress *stress_new(pier_loop *loop, int nconn, size_t bytes) {
  pthread_once(&crc_once, crc_init);
  stress *st = calloc(1, sizeof *st);
  ck_assert_ptr_nonnull(st);
  st->sides = calloc((size_t)nconn * 2, sizeof *st->sides);
  ck_assert_ptr_nonnull(st->sides);
  st->loop = loop;
  st->nconn = nconn;
  st->bytes = bytes;
  pthread_mutex_init(&st->mu, NULL);
  listener_side.st = st;
  listener_side.in_cb = 0;

  struct sockaddr_storage addr;
  size_t alen;
  /* Room for every connect at once: an overflowing queue makes Linux
     answer with SYN cookies, and the late connections are reset. */
  st->listener = t_listener_backlog(loop, "tcp4", &addr, &alen, 2 * nconn);
  for (int i = 0; i < 4; i++) {
    st->acc[i].sd = &listener_side;
    post_accept(st, &st->acc[i]);
  }
  const pier_protocol_info *tcp4 = pier_protocol_find("tcp4");
  for (int i = 0; i < 2 * nconn; i++) {
    side *sd = &st->sides[i];
    sd->st = st;
    sd->seed = (i < nconn ? 1000u : 500000u) + (uint64_t)i;
    for (int k = 0; k < 2; k++) sd->rx[k].sd = sd->tx[k].sd = sd;
  }
  for (int i = 0; i < nconn; i++) {
    side *sd = &st->sides[i];
    T_OK(pier_socket_open(loop, tcp4, 0, &sd->s));
    pier_socket_set_data(sd->s, sd);
    op_start(st, &sd->tx[0]);
    T_OK(pier_connect(sd->s, &sd->tx[0].op, (struct sockaddr *)&addr, alen,
                      NULL, NULL, on_connect));
  }
  T_OK(pier_timer_init(loop, &st->guard));
  st->guard.data = st;
  T_OK(pier_timer_start(&st->guard, 60000, 0, on_guard));
  return st;
}

/* Assert everything the exchange promised, then release it. */
static void stress_check(stress *st, int want_threads) {
  ck_assert_msg(!st->timed_out, "the exchange did not finish in 60 s "
                "(%d of %d sockets closed)", st->closes, 2 * st->nconn);
  ck_assert_msg(st->errors == 0, "%d errors, first: %s", st->errors,
                st->first_error);
  ck_assert_int_eq(st->overlaps, 0);
  ck_assert_int_eq(st->doubles, 0);
  ck_assert_int_eq(st->closed_early, 0);
  ck_assert_int_eq(st->closes, 2 * st->nconn);
  ck_assert_int_eq(st->accepted, st->nconn);
  ck_assert_int_eq(st->started, st->completed);

  /* Every stream arrived whole and in order, each exactly once. */
  uint32_t client_crc = 0, server_crc = 0;
  char *seen = calloc((size_t)st->nconn * 2, 1);
  for (int i = 0; i < 2 * st->nconn; i++) {
    side *sd = &st->sides[i];
    ck_assert_uint_eq(sd->sent, st->bytes);
    ck_assert_uint_eq(sd->recvd, st->bytes);
    uint64_t peer = 0;
    for (int k = 0; k < HDR; k++) peer |= (uint64_t)sd->hdr[k] << (8 * k);
    int from_client = peer >= 1000 && peer < 1000u + (uint64_t)st->nconn;
    int from_server = peer >= 500000u + (uint64_t)st->nconn &&
                      peer < 500000u + 2u * (uint64_t)st->nconn;
    ck_assert_msg(i < st->nconn ? from_server : from_client,
                  "side %d got the stream of seed %llu", i,
                  (unsigned long long)peer);
    int idx = from_client ? (int)(peer - 1000) : (int)(peer - 500000);
    ck_assert_msg(!seen[idx], "stream %d arrived twice", idx);
    seen[idx] = 1;
    ck_assert_msg(sd->crc == stream_crc(peer, st->bytes),
                  "side %d: CRC of the stream from seed %llu differs", i,
                  (unsigned long long)peer);
    if (i < st->nconn) client_crc ^= sd->crc; else server_crc ^= sd->crc;
  }
  free(seen);
  if (want_threads > 1)
    ck_assert_msg(st->nthreads_seen >= 2,
                  "callbacks ran on %d thread(s) of %d", st->nthreads_seen,
                  want_threads);
  pthread_mutex_destroy(&st->mu);
  free(st->sides);
  free(st);
}

/* ------------------------------------------------------------------ */
/* tests                                                               */
/* ------------------------------------------------------------------ */

/* The stress test: 8 threads, 200 connections, 64 KiB each way. */
START_TEST(stress_8_threads) {
  pier_loop *loop = t_loop_threads(NTHREADS);
  stress *st = stress_new(loop, MAXCONN, STREAM);
  int rc = pier_loop_run(loop, PIER_RUN_DEFAULT);
  ck_assert_msg(rc == 0, "pier_loop_run returned %d (%s)", rc,
                pier_err_name(rc));
  stress_check(st, NTHREADS);
  t_loop_free(loop);
}
END_TEST

typedef struct runner_arg { pier_loop *loop; int rc; } runner_arg;

static void *runner(void *p) {
  runner_arg *a = p;
  a->rc = pier_loop_run(a->loop, PIER_RUN_DEFAULT);
  return NULL;
}

/* Application threads calling pier_loop_run together serve one loop. */
START_TEST(app_threads_run_together) {
  pier_loop *loop = t_loop_threads(4);
  stress *st = stress_new(loop, 40, 16 * 1024);
  pthread_t th[3];
  runner_arg args[3];
  for (int i = 0; i < 3; i++) {
    args[i].loop = loop;
    args[i].rc = -1;
    ck_assert_int_eq(pthread_create(&th[i], NULL, runner, &args[i]), 0);
  }
  /* No extra threads from the loop: the application brings them. */
  runner_arg mine = { loop, -1 };
  runner(&mine);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  ck_assert_int_eq(mine.rc, 0);
  for (int i = 0; i < 3; i++)
    ck_assert_msg(args[i].rc == 0 || args[i].rc == PIER_EBUSY,
                  "runner %d returned %d", i, args[i].rc);
  stress_check(st, 1);
  t_loop_free(loop);
}
END_TEST

/* A repeating timer slower than its period never overlaps itself, and
   one-shot timers each fire once, on whatever thread. */
typedef struct tick {
  pier_timer t;
  int in_cb, overlaps, fired, limit;
} tick;

static void on_slow_tick(pier_timer *t) {
  tick *k = (tick *)t;
  if (__atomic_fetch_add(&k->in_cb, 1, __ATOMIC_SEQ_CST) != 0)
    __atomic_fetch_add(&k->overlaps, 1, __ATOMIC_SEQ_CST);
  t_sleep_ms(4); /* longer than its 1 ms period */
  int n = __atomic_add_fetch(&k->fired, 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_sub(&k->in_cb, 1, __ATOMIC_SEQ_CST);
  if (n == k->limit) pier_timer_stop(t);
}

static void on_once(pier_timer *t) {
  tick *k = (tick *)t;
  __atomic_add_fetch(&k->fired, 1, __ATOMIC_SEQ_CST);
}

START_TEST(timers_on_many_threads) {
  pier_loop *loop = t_loop_threads(4);
  tick slow;
  memset(&slow, 0, sizeof slow);
  slow.limit = 10;
  T_OK(pier_timer_init(loop, &slow.t));
  T_OK(pier_timer_start(&slow.t, 1, 1, on_slow_tick));
  static tick once[64];
  memset(once, 0, sizeof once);
  for (int i = 0; i < 64; i++) {
    T_OK(pier_timer_init(loop, &once[i].t));
    T_OK(pier_timer_start(&once[i].t, (uint64_t)(i % 8), 0, on_once));
  }
  T_OK(pier_loop_run(loop, PIER_RUN_DEFAULT));
  ck_assert_int_eq(slow.overlaps, 0);
  ck_assert_int_eq(slow.fired, 10);
  for (int i = 0; i < 64; i++) ck_assert_int_eq(once[i].fired, 1);
  t_loop_free(loop);
}
END_TEST

/* A thread that does not run the loop starts, waits for and cancels
   operations while loop threads serve it. */
typedef struct foreign {
  pier_loop *loop;
  pier_socket *a, *b;
  int done, failures;
  char why[128];
} foreign;

static void quiet_cb(pier_op *op, int status) {
  (void)op;
  (void)status;
}

static void *foreign_main(void *p) {
  foreign *f = p;
  char out[1000], in[1000];
  for (int round = 0; round < 50 && !f->failures; round++) {
    pier_op s, r, never;
    pier_op_init(&s);
    pier_op_init(&r);
    pier_op_init(&never);
    t_fill(out, sizeof out, 7, (size_t)round * sizeof out);
    pier_buf bo = pier_buf_init(out, sizeof out);
    pier_buf bi = pier_buf_init(in, sizeof in);
    int rc = pier_recv(f->b, &r, &bi, 1, PIER_MSG_WAITALL, quiet_cb);
    if (rc == 0) rc = pier_send(f->a, &s, &bo, 1, 0, quiet_cb);
    if (rc == 0) rc = pier_op_result(&s, 1, NULL, NULL);
    size_t got = 0;
    if (rc == 0) rc = pier_op_result(&r, 1, &got, NULL);
    /* and one that can only end by cancellation */
    char one;
    pier_buf b1 = pier_buf_init(&one, 1);
    if (rc == 0) rc = pier_recv(f->a, &never, &b1, 1, 0, quiet_cb);
    if (rc == 0) rc = pier_cancel(&never);
    if (rc == 0) {
      rc = pier_op_result(&never, 1, NULL, NULL);
      if (rc == PIER_ECANCELED) rc = 0;
      else if (rc == 0) rc = PIER_EPROTO; /* it cannot have data */
    }
    if (rc == 0 && (got != sizeof in ||
                    t_verify(in, sizeof in, 7, (size_t)round * sizeof in) !=
                        (size_t)-1))
      rc = PIER_EPROTO;
    if (rc) {
      f->failures++;
      snprintf(f->why, sizeof f->why, "round %d: %d (%s)", round, rc,
               pier_err_name(rc));
    }
  }
  __atomic_store_n(&f->done, 1, __ATOMIC_SEQ_CST);
  pier_loop_unref(f->loop);
  return NULL;
}

START_TEST(calls_from_a_foreign_thread) {
  pier_loop *loop = t_loop_threads(3);
  foreign f;
  memset(&f, 0, sizeof f);
  f.loop = loop;
  t_pair(loop, "tcp4", &f.a, &f.b);
  T_OK(pier_loop_ref(loop)); /* alive until the foreign thread is done */
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, foreign_main, &f), 0);
  T_OK(pier_loop_run(loop, PIER_RUN_DEFAULT));
  pthread_join(th, NULL);
  ck_assert_msg(f.done && f.failures == 0, "%s", f.why);
  T_OK(pier_close(f.a, NULL));
  T_OK(pier_close(f.b, NULL));
  t_loop_free(loop);
}
END_TEST

/* pier_loop_stop ends every thread's run; the helper threads are joined. */
static void stop_cb(pier_op *op, int status) {
  (void)status;
  pier_loop_stop(op->data);
}

START_TEST(stop_ends_all_threads) {
  pier_loop *loop = t_loop_threads(4);
  T_OK(pier_loop_ref(loop));
  pier_op post;
  pier_op_init(&post);
  post.data = loop;
  T_OK(pier_loop_post(loop, &post, stop_cb));
  T_ERR(pier_loop_run(loop, PIER_RUN_DEFAULT), 1); /* still referenced */
  T_OK(pier_loop_unref(loop));
  T_OK(pier_loop_run(loop, PIER_RUN_DEFAULT));
  t_loop_free(loop);
}
END_TEST

static int exit_calls;
static void count_exit(void) { __atomic_add_fetch(&exit_calls, 1, __ATOMIC_SEQ_CST); }

/* Threads pier starts call the exit hooks as they end; hooks are kept
   once each. */
START_TEST(exit_hooks_run_in_helper_threads) {
  T_ERR(pier_spi_thread_exit_hook(NULL), PIER_EINVAL);
  T_OK(pier_spi_thread_exit_hook(count_exit));
  T_OK(pier_spi_thread_exit_hook(count_exit));
  __atomic_store_n(&exit_calls, 0, __ATOMIC_SEQ_CST);
  pier_loop *loop = t_loop_threads(4);
  pier_op post;
  pier_op_init(&post);
  post.data = loop;
  T_OK(pier_loop_post(loop, &post, stop_cb));
  T_OK(pier_loop_run(loop, PIER_RUN_DEFAULT));
  ck_assert_int_eq(__atomic_load_n(&exit_calls, __ATOMIC_SEQ_CST), 3);
  t_loop_free(loop);
}
END_TEST

/* A loop made for one thread keeps refusing a second runner. */
START_TEST(bad_thread_counts) {
  pier_loop_options o;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.threads = PIER_LOOP_MAX_THREADS + 1;
  pier_loop *loop = NULL;
  T_ERR(pier_loop_new(&o, &loop), PIER_EINVAL);
  ck_assert_ptr_null(loop);
  /* An options struct from before `threads` existed means one thread. */
  o.size = offsetof(pier_loop_options, threads);
  T_OK(pier_loop_new(&o, &loop));
  t_loop_free(loop);
}
END_TEST

Suite *suite_threads(void) {
  Suite *s = suite_create("threads");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, stress_8_threads);
  tcase_add_test(tc, app_threads_run_together);
  tcase_add_test(tc, timers_on_many_threads);
  tcase_add_test(tc, calls_from_a_foreign_thread);
  tcase_add_test(tc, stop_ends_all_threads);
  tcase_add_test(tc, exit_hooks_run_in_helper_threads);
  tcase_add_test(tc, bad_thread_counts);
  suite_add_tcase(s, tc);
  return s;
}
