/* SPDX-License-Identifier: MIT */
/*
 * tests/test_io.c - scatter/gather stream I/O on a connected pair.
 *
 * Section map
 *   1. pairs (t_pair) and completion records
 *   2. scatter receive, gather send
 *   3. PEEK, WAITALL, partial receives, end of stream
 *   4. ordering of several pending operations
 *   5. out-of-band data (tcp)
 *   6. blocking-form send / recv from other threads
 *
 * Most tests loop over the protocols tcp4, tcp6 and local (_i), those of
 * them that the platform's catalog has (no local on Windows).
 */
#include "helpers.h"
#include <pier/spi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* 1. pairs and records                                                */
/* ------------------------------------------------------------------ */

static const char *const wanted[] = { "tcp4", "tcp6", "local" };
static const char *protos[3]; /* the wanted ones in the catalog */
static int nprotos;           /* how many; set by suite_io() */

typedef struct rec {
  int count;      /* callbacks run */
  int status;
  size_t bytes;
  unsigned flags;
  int order;      /* completion order among all ops, 1-based */
} rec;

static volatile int g_done;

static void rec_cb(pier_op *op, int status) {
  rec *r = op->data;
  r->count++;
  r->status = status;
  r->bytes = op->bytes;
  r->flags = op->flags;
  r->order = ++g_done;
}

/* A pair for protos[i]; returns 0 if the protocol is not available. */
static int mk_pair(pier_loop *loop, int i, pier_socket **c, pier_socket **s) {
  if (i >= nprotos || !pier_protocol_find(protos[i])) return 0;
  t_pair(loop, protos[i], c, s);
  ck_assert_ptr_nonnull(*c);
  ck_assert_ptr_nonnull(*s);
  return 1;
}

static void start_recv(pier_socket *s, pier_op *op, rec *r, pier_buf *b,
                       size_t n, unsigned flags) {
  memset(op, 0, sizeof *op);
  memset(r, 0, sizeof *r);
  op->data = r;
  T_OK(pier_recv(s, op, b, n, flags, rec_cb));
  ck_assert_int_eq(r->count, 0);
}

static void start_send(pier_socket *s, pier_op *op, rec *r, pier_buf *b,
                       size_t n, unsigned flags) {
  memset(op, 0, sizeof *op);
  memset(r, 0, sizeof *r);
  op->data = r;
  T_OK(pier_send(s, op, b, n, flags, rec_cb));
  ck_assert_int_eq(r->count, 0);
}

/* Send len bytes of stream seed (from offset) and wait for completion. */
static void send_all(pier_loop *loop, pier_socket *s, uint64_t seed,
                     size_t offset, size_t len) {
  char *buf = malloc(len);
  ck_assert_ptr_nonnull(buf);
  t_fill(buf, len, seed, offset);
  pier_buf b = pier_buf_init(buf, len);
  pier_op op;
  rec r;
  start_send(s, &op, &r, &b, 1, 0);
  t_run_until(loop, &r.count, 5000);
  ck_assert_int_eq(r.count, 1);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, len);
  free(buf);
}

/* Receive exactly len bytes and check them against stream seed. */
static void recv_verify(pier_loop *loop, pier_socket *s, uint64_t seed,
                        size_t offset, size_t len) {
  char *buf = malloc(len);
  ck_assert_ptr_nonnull(buf);
  size_t got = 0;
  while (got < len) {
    pier_buf b = pier_buf_init(buf + got, len - got);
    pier_op op;
    rec r;
    start_recv(s, &op, &r, &b, 1, 0);
    t_run_until(loop, &r.count, 5000);
    T_OK(r.status);
    ck_assert_msg(r.bytes > 0, "unexpected end of stream after %zu of %zu",
                  got, len);
    ck_assert_uint_le(r.bytes, len - got);
    got += r.bytes;
  }
  ck_assert_uint_eq(t_verify(buf, len, seed, offset), (size_t)-1);
  free(buf);
}

static void close_pair(pier_loop *loop, pier_socket *c, pier_socket *s) {
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* 2. scatter / gather                                                 */
/* ------------------------------------------------------------------ */

START_TEST(test_scatter_recv_fills_1_7_4096_in_order) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  static char b1[1], b2[7], b3[4096];
  memset(b1, 0, sizeof b1);
  memset(b2, 0, sizeof b2);
  memset(b3, 0, sizeof b3);
  pier_buf bufs[3] = { pier_buf_init(b1, 1), pier_buf_init(b2, 7),
                       pier_buf_init(b3, 4096) };
  pier_op op;
  rec r;
  start_recv(s, &op, &r, bufs, 3, PIER_MSG_WAITALL);
  send_all(loop, c, 11, 0, 4104);
  t_run_until(loop, &r.count, 5000);
  ck_assert_int_eq(r.count, 1);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, 4104);
  ck_assert_uint_eq(t_verify(b1, 1, 11, 0), (size_t)-1);
  ck_assert_uint_eq(t_verify(b2, 7, 11, 1), (size_t)-1);
  ck_assert_uint_eq(t_verify(b3, 4096, 11, 8), (size_t)-1);
  close_pair(loop, c, s);
}
END_TEST

START_TEST(test_gather_send_5_buffers_arrive_in_order) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  static const size_t sizes[5] = { 1, 300, 65536, 17, 4000 };
  size_t total = 0;
  for (int k = 0; k < 5; k++) total += sizes[k];
  char *all = malloc(total);
  ck_assert_ptr_nonnull(all);
  t_fill(all, total, 22, 0);
  /* five separate allocations so the array really gathers */
  char *parts[5];
  pier_buf bufs[5];
  size_t off = 0;
  for (int k = 0; k < 5; k++) {
    parts[k] = malloc(sizes[k]);
    memcpy(parts[k], all + off, sizes[k]);
    bufs[k] = pier_buf_init(parts[k], sizes[k]);
    off += sizes[k];
  }
  pier_op op;
  rec r;
  start_send(c, &op, &r, bufs, 5, 0);
  recv_verify(loop, s, 22, 0, total);
  t_run_until(loop, &r.count, 5000);
  ck_assert_int_eq(r.count, 1);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, total);
  for (int k = 0; k < 5; k++) free(parts[k]);
  free(all);
  close_pair(loop, c, s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 3. PEEK, WAITALL, partial receives, end of stream                   */
/* ------------------------------------------------------------------ */

START_TEST(test_peek_leaves_data_in_place) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  send_all(loop, c, 33, 0, 50);
  char pk[100], rd[100];
  memset(pk, 0, sizeof pk);
  memset(rd, 0, sizeof rd);
  pier_buf b = pier_buf_init(pk, sizeof pk);
  pier_op op;
  rec r;
  start_recv(s, &op, &r, &b, 1, PIER_MSG_PEEK);
  t_run_until(loop, &r.count, 3000);
  T_OK(r.status);
  ck_assert_uint_gt(r.bytes, 0);
  ck_assert_uint_le(r.bytes, 50);
  size_t peeked = r.bytes;
  ck_assert_uint_eq(t_verify(pk, peeked, 33, 0), (size_t)-1);

  /* a second PEEK sees the same bytes again */
  char pk2[100];
  b = pier_buf_init(pk2, peeked);
  start_recv(s, &op, &r, &b, 1, PIER_MSG_PEEK);
  t_run_until(loop, &r.count, 3000);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, peeked);
  ck_assert_int_eq(memcmp(pk, pk2, peeked), 0);

  /* a normal recv returns the same bytes */
  b = pier_buf_init(rd, peeked);
  start_recv(s, &op, &r, &b, 1, PIER_MSG_WAITALL);
  t_run_until(loop, &r.count, 3000);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, peeked);
  ck_assert_int_eq(memcmp(pk, rd, peeked), 0);
  /* and the rest follows */
  if (peeked < 50) recv_verify(loop, s, 33, peeked, 50 - peeked);
  close_pair(loop, c, s);
}
END_TEST

/* WAITALL across pieces sent from timers 30 ms apart. */
/*
 * Data already waiting: a receive can succeed the moment it is started
 * (on IOCP with skip-on-success it completes without the port).  It must
 * still complete from the loop, once, and in submission order with
 * receives started before and after it.
 */
static volatile int g_recv_order; /* receive completions only */

static void recv_order_cb(pier_op *op, int status) {
  rec *r = op->data;
  r->count++;
  r->status = status;
  r->bytes = op->bytes;
  r->order = ++g_recv_order;
}

static void start_recv_ordered(pier_socket *s, pier_op *op, rec *r,
                               pier_buf *b) {
  memset(op, 0, sizeof *op);
  memset(r, 0, sizeof *r);
  op->data = r;
  T_OK(pier_recv(s, op, b, 1, PIER_MSG_WAITALL, recv_order_cb));
  ck_assert_int_eq(r->count, 0); /* never inside the starting call */
}

START_TEST(test_receives_with_data_waiting_complete_in_order) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) return;
  int inl = -1;
  size_t ilen = sizeof inl;
  T_OK(pier_getsockopt_raw(s, PIER_SOL_PROVIDER, PIER_SPI_OPT_INLINE_SUCCESS,
                           &inl, &ilen));
  ck_assert(inl == 0 || inl == 1);
  enum { N = 4, SZ = 100 };
  static char in[N][SZ];
  pier_op op[N];
  rec r[N];
  pier_buf b[N];
  g_recv_order = 0;
  /* The first receive waits with nothing there. */
  b[0] = pier_buf_init(in[0], SZ);
  start_recv_ordered(s, &op[0], &r[0], &b[0]);
  send_all(loop, c, 42, 0, N * SZ);
  size_t ready = 0;
  for (int k = 0; k < 200 && ready < (N - 1) * SZ; k++) {
    T_OK(pier_ioctl(s, PIER_FIONREAD, &ready));
    if (ready < (N - 1) * SZ) t_sleep_ms(5);
  }
  /* The others find their data there already. */
  for (int i = 1; i < N; i++) {
    b[i] = pier_buf_init(in[i], SZ);
    start_recv_ordered(s, &op[i], &r[i], &b[i]);
  }
  t_run_until_count(loop, &g_recv_order, N, 3000);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(r[i].count, 1);
    T_OK(r[i].status);
    ck_assert_uint_eq(r[i].bytes, SZ);
    ck_assert_int_eq(r[i].order, i + 1);
    ck_assert_uint_eq(t_verify(in[i], SZ, 42, (size_t)i * SZ), (size_t)-1);
  }
  close_pair(loop, c, s);
}
END_TEST

typedef struct piece_state {
  pier_socket *c;
  rec *recv_rec;
  int fired;
  int early;          /* the WAITALL recv completed before the last piece */
  char data[4000];
  pier_op op[4];
  rec r[4];
  pier_buf b[4];
} piece_state;

static void piece_timer_cb(pier_timer *t) {
  piece_state *ps = t->data;
  int k = ps->fired++;
  if (ps->recv_rec->count) ps->early = 1;
  ps->b[k] = pier_buf_init(ps->data + k * 1000, 1000);
  memset(&ps->op[k], 0, sizeof ps->op[k]);
  memset(&ps->r[k], 0, sizeof ps->r[k]);
  ps->op[k].data = &ps->r[k];
  int rc = pier_send(ps->c, &ps->op[k], &ps->b[k], 1, 0, rec_cb);
  ck_assert_int_eq(rc, 0);
  if (ps->fired == 4) pier_timer_stop(t);
}

START_TEST(test_waitall_fills_all_buffers_across_timed_pieces) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  static char b1[1500], b2[2500];
  pier_buf bufs[2] = { pier_buf_init(b1, sizeof b1),
                       pier_buf_init(b2, sizeof b2) };
  pier_op op;
  rec r;
  start_recv(s, &op, &r, bufs, 2, PIER_MSG_WAITALL);

  static piece_state ps;
  memset(&ps, 0, sizeof ps);
  ps.c = c;
  ps.recv_rec = &r;
  t_fill(ps.data, sizeof ps.data, 44, 0);
  pier_timer t;
  memset(&t, 0, sizeof t);
  T_OK(pier_timer_init(loop, &t));
  t.data = &ps;
  T_OK(pier_timer_start(&t, 30, 30, piece_timer_cb));
  t_run_until(loop, &r.count, 5000);
  ck_assert_int_eq(r.count, 1);
  ck_assert_int_eq(ps.fired, 4);
  ck_assert_msg(!ps.early, "WAITALL recv completed before all pieces arrived");
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, 4000);
  ck_assert_uint_eq(t_verify(b1, sizeof b1, 44, 0), (size_t)-1);
  ck_assert_uint_eq(t_verify(b2, sizeof b2, 44, sizeof b1), (size_t)-1);
  pier_timer_stop(&t);
  close_pair(loop, c, s);
}
END_TEST

START_TEST(test_recv_without_waitall_completes_with_what_is_there) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  static char b1[2048], b2[2048];
  pier_buf bufs[2] = { pier_buf_init(b1, sizeof b1),
                       pier_buf_init(b2, sizeof b2) };
  pier_op op;
  rec r;
  start_recv(s, &op, &r, bufs, 2, 0);
  send_all(loop, c, 55, 0, 10);
  t_run_until(loop, &r.count, 3000);
  ck_assert_int_eq(r.count, 1);
  T_OK(r.status);
  ck_assert_uint_gt(r.bytes, 0);
  ck_assert_uint_le(r.bytes, 10);
  ck_assert_uint_eq(t_verify(b1, r.bytes, 55, 0), (size_t)-1);
  if (r.bytes < 10) recv_verify(loop, s, 55, r.bytes, 10 - r.bytes);
  close_pair(loop, c, s);
}
END_TEST

START_TEST(test_peer_shutdown_wr_ends_pending_recv_with_0_bytes) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  char b[64];
  pier_buf pb = pier_buf_init(b, sizeof b);
  pier_op op;
  rec r;
  start_recv(s, &op, &r, &pb, 1, 0);
  /* let the recv really be pending before the FIN */
  pier_loop_run(loop, PIER_RUN_NOWAIT);
  ck_assert_int_eq(r.count, 0);
  T_OK(pier_shutdown(c, PIER_SHUT_WR));
  t_run_until(loop, &r.count, 3000);
  ck_assert_int_eq(r.count, 1);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.bytes, 0);
  /* data after data-then-FIN: the other direction still works */
  send_all(loop, s, 56, 0, 20);
  recv_verify(loop, c, 56, 0, 20);
  close_pair(loop, c, s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. ordering                                                         */
/* ------------------------------------------------------------------ */

START_TEST(test_pending_recvs_complete_in_submission_order) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  enum { N = 4, LEN = 100 };
  static char bufs[N][LEN];
  pier_buf pb[N];
  pier_op op[N];
  rec r[N];
  g_done = 0;
  for (int k = 0; k < N; k++) {
    pb[k] = pier_buf_init(bufs[k], LEN);
    start_recv(s, &op[k], &r[k], &pb[k], 1, PIER_MSG_WAITALL);
  }
  send_all(loop, c, 66, 0, N * LEN);
  t_run_until_count(loop, &g_done, N + 1, 5000); /* + the send */
  for (int k = 0; k < N; k++) {
    ck_assert_int_eq(r[k].count, 1);
    T_OK(r[k].status);
    ck_assert_uint_eq(r[k].bytes, LEN);
    ck_assert_msg(t_verify(bufs[k], LEN, 66, (size_t)k * LEN) == (size_t)-1,
                  "recv %d got bytes out of order", k);
    if (k) ck_assert_int_lt(r[k - 1].order, r[k].order);
  }
  close_pair(loop, c, s);
}
END_TEST

/* Without WAITALL: each send of 100 bytes goes to the oldest pending recv. */
START_TEST(test_pending_recvs_take_data_oldest_first) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  static char bufs[3][256];
  pier_buf pb[3];
  pier_op op[3];
  rec r[3];
  for (int k = 0; k < 3; k++) {
    pb[k] = pier_buf_init(bufs[k], sizeof bufs[k]);
    start_recv(s, &op[k], &r[k], &pb[k], 1, 0);
  }
  send_all(loop, c, 67, 0, 100);
  t_run_until(loop, &r[0].count, 3000);
  T_OK(r[0].status);
  size_t got = r[0].bytes;
  ck_assert_uint_gt(got, 0);
  ck_assert_uint_eq(t_verify(bufs[0], got, 67, 0), (size_t)-1);
  if (got == 100) {
    ck_assert_int_eq(r[1].count, 0);
    ck_assert_int_eq(r[2].count, 0);
  }
  send_all(loop, c, 67, 100, 100);
  t_run_until(loop, &r[1].count, 3000);
  T_OK(r[1].status);
  ck_assert_uint_eq(t_verify(bufs[1], r[1].bytes, 67, got), (size_t)-1);
  ck_assert_int_lt(r[0].order, r[1].order);
  close_pair(loop, c, s);
}
END_TEST

START_TEST(test_pending_sends_deliver_in_order) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  enum { N = 6, LEN = 96 * 1024 };
  char *data = malloc((size_t)N * LEN);
  ck_assert_ptr_nonnull(data);
  t_fill(data, (size_t)N * LEN, 77, 0);
  pier_buf pb[N];
  pier_op op[N];
  rec r[N];
  g_done = 0;
  for (int k = 0; k < N; k++) {
    pb[k] = pier_buf_init(data + (size_t)k * LEN, LEN);
    start_send(c, &op[k], &r[k], &pb[k], 1, 0);
  }
  recv_verify(loop, s, 77, 0, (size_t)N * LEN);
  for (int k = 0; k < N; k++) {
    t_run_until(loop, &r[k].count, 3000);
    ck_assert_int_eq(r[k].count, 1);
    T_OK(r[k].status);
    ck_assert_uint_eq(r[k].bytes, LEN);
    if (k) ck_assert_int_lt(r[k - 1].order, r[k].order);
  }
  free(data);
  close_pair(loop, c, s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 5. out-of-band data                                                 */
/* ------------------------------------------------------------------ */

START_TEST(test_oob_byte_received_with_oob_flag) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  send_all(loop, c, 88, 0, 10);
  char urgent = '!';
  pier_buf ub = pier_buf_init(&urgent, 1);
  pier_op sop;
  rec sr;
  start_send(c, &sop, &sr, &ub, 1, PIER_MSG_OOB);
  t_run_until(loop, &sr.count, 3000);
  T_OK(sr.status);
  ck_assert_uint_eq(sr.bytes, 1);
  t_sleep_ms(20); /* loopback delivery */

  char ob[4] = { 0, 0, 0, 0 };
  pier_buf obb = pier_buf_init(ob, sizeof ob);
  pier_op rop;
  rec rr;
  start_recv(s, &rop, &rr, &obb, 1, PIER_MSG_OOB);
  t_run_until(loop, &rr.count, 3000);
  ck_assert_int_eq(rr.count, 1);
  T_OK(rr.status);
  ck_assert_uint_eq(rr.bytes, 1);
  ck_assert_int_eq(ob[0], '!');
  ck_assert_msg(rr.flags & PIER_MSG_OOB, "op->flags 0x%x lacks PIER_MSG_OOB",
                rr.flags);

  /* normal data intact, the urgent byte not in it */
  recv_verify(loop, s, 88, 0, 10);
  send_all(loop, c, 89, 0, 5);
  recv_verify(loop, s, 89, 0, 5);
  close_pair(loop, c, s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 6. blocking form from other threads                                 */
/* ------------------------------------------------------------------ */

#define BLK_LEN (256 * 1024)

typedef struct blk_job {
  pier_socket *s;
  uint64_t seed;
  size_t len;
  int rc;           /* first failure, or 0 */
  size_t done;      /* bytes moved */
  volatile int finished;
  char *buf;
} blk_job;

static void *blk_sender(void *arg) {
  blk_job *j = arg;
  size_t off = 0;
  while (off < j->len) {
    size_t n = j->len - off < 40000 ? j->len - off : 40000;
    pier_buf b = pier_buf_init(j->buf + off, n);
    pier_op op;
    memset(&op, 0, sizeof op);
    int rc = pier_send(j->s, &op, &b, 1, 0, NULL);
    if (rc != 0) { j->rc = rc; break; }
    if (op.bytes != n) { j->rc = PIER_EIO; break; }
    off += op.bytes;
  }
  j->done = off;
  T_FLAG_SET(&j->finished, 1);
  return NULL;
}

static void *blk_receiver(void *arg) {
  blk_job *j = arg;
  size_t off = 0;
  while (off < j->len) {
    pier_buf b = pier_buf_init(j->buf + off, j->len - off);
    pier_op op;
    memset(&op, 0, sizeof op);
    int rc = pier_recv(j->s, &op, &b, 1, 0, NULL);
    if (rc != 0) { j->rc = rc; break; }
    if (op.bytes == 0) { j->rc = PIER_ECONNRESET; break; }
    off += op.bytes;
  }
  j->done = off;
  T_FLAG_SET(&j->finished, 1);
  return NULL;
}

static void wait_jobs(blk_job *a, blk_job *b, int timeout_ms) {
  uint64_t until = t_now_ms() + (uint64_t)timeout_ms;
  while (!(T_FLAG(&a->finished) && T_FLAG(&b->finished)) && t_now_ms() < until)
    t_sleep_ms(5);
  if (!T_FLAG(&a->finished)) pier_cancel_blocking(a->s);
  if (!T_FLAG(&b->finished)) pier_cancel_blocking(b->s);
}

/*
 * Join the four threads; one that pier_cancel_blocking did not end within
 * 5 s is left running, detached (the jobs are static), and the test fails
 * rather than hang.
 */
static void join_jobs(pthread_t *th, blk_job **jobs, int n) {
  int stuck = 0;
  for (int k = 0; k < n; k++) {
    if (!t_wait_flag(&jobs[k]->finished, 5000)) {
      pier_cancel_blocking(jobs[k]->s);
      if (!t_wait_flag(&jobs[k]->finished, 1000)) {
        pthread_detach(th[k]);
        stuck++;
        continue;
      }
    }
    pthread_join(th[k], NULL);
  }
  ck_assert_msg(stuck == 0, "%d blocking thread(s) still blocked after "
                "pier_cancel_blocking; left running", stuck);
}

START_TEST(test_blocking_send_recv_from_threads) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  static blk_job tx[2], rx[2]; /* static: outlives a stuck thread */
  pier_socket *from[2] = { c, s }, *to[2] = { s, c };
  pthread_t th[4];
  blk_job *jobs[4] = { &rx[0], &tx[0], &rx[1], &tx[1] }; /* as th[] */
  for (int d = 0; d < 2; d++) {
    memset(&tx[d], 0, sizeof tx[d]);
    memset(&rx[d], 0, sizeof rx[d]);
    tx[d].s = from[d];
    rx[d].s = to[d];
    tx[d].len = rx[d].len = BLK_LEN;
    tx[d].seed = rx[d].seed = 90 + (uint64_t)d;
    tx[d].buf = malloc(BLK_LEN);
    rx[d].buf = malloc(BLK_LEN);
    t_fill(tx[d].buf, BLK_LEN, tx[d].seed, 0);
  }
  /* both directions at once, four threads; the loop is not run */
  for (int d = 0; d < 2; d++) {
    ck_assert_int_eq(pthread_create(&th[2 * d], NULL, blk_receiver, &rx[d]), 0);
    ck_assert_int_eq(pthread_create(&th[2 * d + 1], NULL, blk_sender, &tx[d]),
                     0);
  }
  wait_jobs(&tx[0], &rx[0], 10000);
  wait_jobs(&tx[1], &rx[1], 10000);
  join_jobs(th, jobs, 4);
  for (int d = 0; d < 2; d++) {
    ck_assert_msg(tx[d].rc == 0, "blocking send (dir %d) returned %s", d,
                  pier_err_name(tx[d].rc));
    ck_assert_msg(rx[d].rc == 0, "blocking recv (dir %d) returned %s", d,
                  pier_err_name(rx[d].rc));
    ck_assert_uint_eq(tx[d].done, BLK_LEN);
    ck_assert_uint_eq(rx[d].done, BLK_LEN);
    ck_assert_uint_eq(t_verify(rx[d].buf, BLK_LEN, rx[d].seed, 0), (size_t)-1);
    free(tx[d].buf);
    free(rx[d].buf);
  }
  close_pair(loop, c, s);
}
END_TEST

/* Blocking recv with scatter: fills buffers in order, results in op. */
START_TEST(test_blocking_scatter_recv_results_in_op) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  if (!mk_pair(loop, _i, &c, &s)) { t_loop_free(loop); return; }
  char out[30];
  t_fill(out, sizeof out, 95, 0);
  pier_buf ob = pier_buf_init(out, sizeof out);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_send(c, &op, &ob, 1, 0, NULL));
  ck_assert_uint_eq(op.bytes, sizeof out);
  T_OK(op.status);
  char a[10], b[20];
  pier_buf ib[2] = { pier_buf_init(a, sizeof a), pier_buf_init(b, sizeof b) };
  memset(&op, 0, sizeof op);
  T_OK(pier_recv(s, &op, ib, 2, PIER_MSG_WAITALL, NULL));
  ck_assert_uint_eq(op.bytes, 30);
  ck_assert_uint_eq(t_verify(a, sizeof a, 95, 0), (size_t)-1);
  ck_assert_uint_eq(t_verify(b, sizeof b, 95, 10), (size_t)-1);
  close_pair(loop, c, s);
}
END_TEST

Suite *suite_io(void) {
  Suite *s = suite_create("io");
  TCase *tc;
  const char *tcp[2];
  nprotos = t_protos_available(wanted, 3, protos);

  tc = tcase_create("scatter_gather");
  tcase_set_timeout(tc, 20);
  tcase_add_loop_test(tc, test_scatter_recv_fills_1_7_4096_in_order, 0, nprotos);
  tcase_add_loop_test(tc, test_gather_send_5_buffers_arrive_in_order, 0, nprotos);
  suite_add_tcase(s, tc);

  tc = tcase_create("recv_flags_and_eof");
  tcase_set_timeout(tc, 20);
  tcase_add_loop_test(tc, test_peek_leaves_data_in_place, 0, nprotos);
  tcase_add_loop_test(tc, test_waitall_fills_all_buffers_across_timed_pieces, 0,
                      nprotos);
  tcase_add_loop_test(tc, test_recv_without_waitall_completes_with_what_is_there,
                      0, nprotos);
  tcase_add_loop_test(tc, test_peer_shutdown_wr_ends_pending_recv_with_0_bytes,
                      0, nprotos);
  suite_add_tcase(s, tc);

  tc = tcase_create("ordering");
  tcase_set_timeout(tc, 20);
  tcase_add_loop_test(tc, test_pending_recvs_complete_in_submission_order, 0,
                      nprotos);
  tcase_add_loop_test(tc, test_pending_recvs_take_data_oldest_first, 0, nprotos);
  tcase_add_loop_test(tc, test_pending_sends_deliver_in_order, 0, nprotos);
  tcase_add_loop_test(tc, test_receives_with_data_waiting_complete_in_order, 0,
                      nprotos);
  suite_add_tcase(s, tc);

  tc = tcase_create("oob");
  tcase_set_timeout(tc, 20);
  /* tcp only: the available ones of tcp4, tcp6 come first in protos[] */
  tcase_add_loop_test(tc, test_oob_byte_received_with_oob_flag, 0,
                      t_protos_available(wanted, 2, tcp));
  suite_add_tcase(s, tc);

  tc = tcase_create("blocking_form");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, test_blocking_send_recv_from_threads, 0, nprotos);
  tcase_add_loop_test(tc, test_blocking_scatter_recv_results_in_op, 0, nprotos);
  suite_add_tcase(s, tc);
  return s;
}
