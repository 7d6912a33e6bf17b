/* SPDX-License-Identifier: MIT */
/*
 * tests/test_stream.c - 8 MiB each way over one connection at the same
 * time, every send and recv op with a random (seeded, printed) number of
 * buffers (1..16) of random sizes (1..64 KiB), several ops in flight per
 * direction, verified byte for byte; each sender then shuts down its
 * sending side, every pending recv ends with end of stream, and both
 * sockets are closed.
 *
 * The seed is printed; set PIER_TEST_SEED to replay a run.
 */
#include "helpers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STREAM_LEN (8u * 1024 * 1024)
#define MAX_BUFS 16
#define MAX_BUF (64 * 1024)
#define INFLIGHT 4

static const char *const wanted[] = { "tcp4", "local" };
static const char *protos[2]; /* the wanted ones in the catalog */

typedef struct dir_state dir_state;

typedef struct slot {
  pier_op op;
  pier_buf bufs[MAX_BUFS];
  size_t nbufs;
  size_t len;        /* bytes this op covers (send) or can hold (recv) */
  size_t offset;     /* send: stream offset of this op's first byte */
  int seq;           /* submission number within its direction */
  char *scratch;     /* recv: MAX_BUFS * MAX_BUF bytes */
  dir_state *dir;
  int finished;
} slot;

struct dir_state {
  pier_socket *tx, *rx;
  uint64_t seed;          /* byte pattern of this direction */
  char *src;              /* STREAM_LEN bytes of pattern */
  size_t submitted;       /* send: bytes handed to sends */
  size_t recvd;           /* recv: bytes verified so far */
  int send_seq, send_done_seq;
  int recv_seq, recv_done_seq;
  int send_finished;      /* send slots finished */
  int eofs;               /* recv slots ended with end of stream */
  slot snd[INFLIGHT], rcv[INFLIGHT];
};

static struct {
  uint64_t rng;
  volatile int finished;  /* slots finished, both directions */
  char err[256];
} g;

static uint64_t rnd(void) {
  /* xorshift64* */
  g.rng ^= g.rng >> 12;
  g.rng ^= g.rng << 25;
  g.rng ^= g.rng >> 27;
  return g.rng * 2685821657736338717ull;
}

static size_t rnd_range(size_t lo, size_t hi) {
  return lo + (size_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* Record the first failure (a PIER_E* code) and stop the wait. */
static void fail_rc(const char *what, int rc) {
  if (!g.err[0])
    snprintf(g.err, sizeof g.err, "%s: %d (%s)", what, rc, pier_err_name(rc));
  g.finished = 1000;
}

/* Record the first failure (a number) and stop the wait. */
static void fail_val(const char *what, unsigned long long v) {
  if (!g.err[0]) snprintf(g.err, sizeof g.err, "%s: %llu", what, v);
  g.finished = 1000;
}

static void slot_finish(slot *sl) {
  sl->finished = 1;
  g.finished++;
}

static void send_cb(pier_op *op, int status);
static void recv_cb(pier_op *op, int status);

/* Start the next send of a slot, or finish it when the stream is done. */
static void send_next(slot *sl) {
  dir_state *d = sl->dir;
  if (d->submitted == STREAM_LEN) {
    slot_finish(sl);
    if (++d->send_finished == INFLIGHT) {
      int rc = pier_shutdown(d->tx, PIER_SHUT_WR);
      if (rc) fail_rc("pier_shutdown(WR)", rc);
    }
    return;
  }
  size_t want = rnd_range(1, MAX_BUFS);
  sl->nbufs = 0;
  sl->len = 0;
  sl->offset = d->submitted;
  while (sl->nbufs < want && d->submitted < STREAM_LEN) {
    size_t n = rnd_range(1, MAX_BUF);
    if (n > STREAM_LEN - d->submitted) n = STREAM_LEN - d->submitted;
    sl->bufs[sl->nbufs++] = pier_buf_init(d->src + d->submitted, n);
    d->submitted += n;
    sl->len += n;
  }
  sl->seq = d->send_seq++;
  sl->op.data = sl;
  int rc = pier_send(d->tx, &sl->op, sl->bufs, sl->nbufs, 0, send_cb);
  if (rc) fail_rc("pier_send", rc);
}

static void send_cb(pier_op *op, int status) {
  slot *sl = op->data;
  dir_state *d = sl->dir;
  typedef unsigned long long ull;
  if (status) {
    fail_rc("send completed with", status);
    return;
  }
  if (op->bytes != sl->len) {
    fail_val("send: bytes != requested, bytes", (ull)op->bytes);
    return;
  }
  if (sl->seq != d->send_done_seq) {
    fail_val("send completed out of order, seq", (ull)sl->seq);
    return;
  }
  d->send_done_seq++;
  send_next(sl);
}

static void recv_next(slot *sl) {
  dir_state *d = sl->dir;
  size_t n = rnd_range(1, MAX_BUFS);
  sl->nbufs = n;
  sl->len = 0;
  for (size_t k = 0; k < n; k++) {
    size_t sz = rnd_range(1, MAX_BUF);
    sl->bufs[k] = pier_buf_init(sl->scratch + k * MAX_BUF, sz);
    sl->len += sz;
  }
  sl->seq = d->recv_seq++;
  sl->op.data = sl;
  int rc = pier_recv(d->rx, &sl->op, sl->bufs, sl->nbufs, 0, recv_cb);
  if (rc) fail_rc("pier_recv", rc);
}

static void recv_cb(pier_op *op, int status) {
  slot *sl = op->data;
  dir_state *d = sl->dir;
  typedef unsigned long long ull;
  if (status) {
    fail_rc("recv completed with", status);
    return;
  }
  if (sl->seq != d->recv_done_seq) {
    fail_val("recv completed out of order, seq", (ull)sl->seq);
    return;
  }
  d->recv_done_seq++;
  if (op->bytes == 0) { /* end of stream */
    if (d->recvd != STREAM_LEN) {
      fail_val("early end of stream at offset", (ull)d->recvd);
      return;
    }
    d->eofs++;
    slot_finish(sl);
    return;
  }
  if (op->bytes > sl->len) {
    fail_val("recv: bytes > capacity, bytes", (ull)op->bytes);
    return;
  }
  if (d->recvd + op->bytes > STREAM_LEN) {
    fail_val("recv: more bytes than sent, bytes", (ull)op->bytes);
    return;
  }
  /* the bytes fill the buffers in order */
  size_t left = op->bytes;
  for (size_t k = 0; k < sl->nbufs && left; k++) {
    size_t n = sl->bufs[k].len < left ? sl->bufs[k].len : left;
    size_t bad = t_verify(sl->bufs[k].base, n, d->seed, d->recvd);
    if (bad != (size_t)-1) {
      fail_val("byte mismatch at stream offset", (ull)(d->recvd + bad));
      return;
    }
    d->recvd += n;
    left -= n;
  }
  recv_next(sl);
}

static void close_cb(pier_socket *s) {
  int *n = pier_socket_get_data(s);
  (*n)++;
}

START_TEST(test_8mib_each_way_random_scatter_gather) {
  const char *proto = protos[_i];
  if (!pier_protocol_find(proto)) return;
  uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)_i << 32);
  const char *env = getenv("PIER_TEST_SEED");
  if (env && *env) seed = strtoull(env, NULL, 0);
  printf("stream %s: seed %llu (PIER_TEST_SEED to replay)\n", proto,
         (unsigned long long)seed);
  fflush(stdout);
  memset(&g, 0, sizeof g);
  g.rng = seed ? seed : 1;

  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, proto, &c, &s);

  static dir_state dirs[2];
  memset(dirs, 0, sizeof dirs);
  dirs[0].tx = c;
  dirs[0].rx = s;
  dirs[1].tx = s;
  dirs[1].rx = c;
  for (int k = 0; k < 2; k++) {
    dir_state *d = &dirs[k];
    d->seed = seed * 2 + (uint64_t)k;
    d->src = malloc(STREAM_LEN);
    ck_assert_ptr_nonnull(d->src);
    t_fill(d->src, STREAM_LEN, d->seed, 0);
    for (int j = 0; j < INFLIGHT; j++) {
      d->snd[j].dir = d;
      d->rcv[j].dir = d;
      d->rcv[j].scratch = malloc((size_t)MAX_BUFS * MAX_BUF);
      ck_assert_ptr_nonnull(d->rcv[j].scratch);
    }
  }
  for (int j = 0; j < INFLIGHT; j++)
    for (int k = 0; k < 2; k++) {
      recv_next(&dirs[k].rcv[j]);
      send_next(&dirs[k].snd[j]);
    }
  ck_assert_msg(!g.err[0], "%s", g.err);

  t_run_until_count(loop, &g.finished, 4 * INFLIGHT, 55000);
  ck_assert_msg(!g.err[0], "seed %llu: %s", (unsigned long long)seed, g.err);
  for (int k = 0; k < 2; k++) {
    dir_state *d = &dirs[k];
    ck_assert_uint_eq(d->submitted, STREAM_LEN);
    ck_assert_uint_eq(d->recvd, STREAM_LEN);
    ck_assert_int_eq(d->send_done_seq, d->send_seq);
    ck_assert_int_eq(d->recv_done_seq, d->recv_seq);
    ck_assert_int_eq(d->eofs, INFLIGHT);
    ck_assert_int_eq(d->send_finished, INFLIGHT);
  }

  int closed = 0;
  pier_socket_set_data(c, &closed);
  pier_socket_set_data(s, &closed);
  T_OK(pier_close(c, close_cb));
  T_OK(pier_close(s, close_cb));
  t_run_until_count(loop, &closed, 2, 3000);
  ck_assert_int_eq(closed, 2);
  t_loop_free(loop);
  for (int k = 0; k < 2; k++) {
    free(dirs[k].src);
    for (int j = 0; j < INFLIGHT; j++) free(dirs[k].rcv[j].scratch);
  }
}
END_TEST

Suite *suite_stream(void) {
  Suite *s = suite_create("stream");
  TCase *tc = tcase_create("bidirectional_8mib_random_scatter_gather");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_8mib_each_way_random_scatter_gather, 0,
                      t_protos_available(wanted, 2, protos));
  suite_add_tcase(s, tc);
  return s;
}
