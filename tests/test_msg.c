/* SPDX-License-Identifier: MIT */
/*
 * tests/test_msg.c - pier's layered protocols: connect-time data over its
 * handshake (tcp4+cd, tcp6+cd, msg4, msg6), the message protocol's
 * boundaries and PIER_MSG_PARTIAL, disconnect data, and what plain TCP
 * says it cannot do.
 *
 * Section map
 *   1. records, a connect-data exchange
 *   2. the catalog and plain TCP
 *   3. caller and callee data: accept, reject, defer
 *   4. messages: boundaries, partial receives, limits
 *   5. disconnect data, close, blocking calls
 * Bad peers (garbage, oversized lengths, silence) are in test_msgbad.c.
 */
#include "helpers.h"
#include <pier/spi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* 1. records                                                          */
/* ------------------------------------------------------------------ */

static const char *const cd_protos[] = { "tcp4+cd", "tcp6+cd", "msg4", "msg6" };

typedef struct rec { int count, status; size_t bytes; unsigned flags; } rec;

static void rec_cb(pier_op *op, int status) {
  rec *r = op->data;
  r->count++;
  r->status = status;
  r->bytes = op->bytes;
  r->flags = op->flags;
}

/* What a condition function saw, and what it answers. */
typedef struct verdicts {
  int calls;
  int answer[8];            /* PIER_CF_* for call i (ACCEPT past the end) */
  size_t seen_len[8];       /* caller data length of call i */
  uint8_t seen_first[8];    /* its first byte */
  int caller_ok, local_ok, qos_dscp;
  const uint8_t *reply;     /* callee data to write */
  size_t reply_len;
  size_t cap_seen;
} verdicts;

static int cond(pier_accept_info *info, void *ctx) {
  verdicts *v = ctx;
  int i = v->calls++;
  if (i < 8) {
    v->seen_len[i] = info->caller_data_len;
    v->seen_first[i] = info->caller_data_len
                           ? ((const uint8_t *)info->caller_data)[0] : 0;
  }
  v->caller_ok = info->caller && info->caller_len > 0 &&
                 info->caller->sa_family == info->local->sa_family;
  v->local_ok = info->local && info->local_len > 0;
  v->qos_dscp = info->qos ? info->qos->dscp : -1;
  v->cap_seen = info->callee_data_cap;
  if (v->reply_len && info->callee_data) {
    size_t n = v->reply_len < info->callee_data_cap ? v->reply_len
                                                    : info->callee_data_cap;
    memcpy(info->callee_data, v->reply, n);
    info->callee_data_len = n;
  }
  return i < 8 ? v->answer[i] : PIER_CF_ACCEPT;
}

typedef struct side {
  pier_op op;
  rec r;
} side;

static void start_accept(pier_socket *l, side *a, verdicts *v) {
  memset(a, 0, sizeof *a);
  a->op.data = &a->r;
  T_OK(pier_accept(l, &a->op, cond, v, rec_cb));
}

static void start_connect(pier_loop *loop, const char *proto, side *c,
                          pier_socket **s, const struct sockaddr_storage *to,
                          size_t tolen, pier_connect_data *cd,
                          const pier_qos *qos) {
  memset(c, 0, sizeof *c);
  c->op.data = &c->r;
  T_OK(pier_socket_open(loop, pier_protocol_find(proto), 0, s));
  T_OK(pier_connect(*s, &c->op, T_SA(to), tolen, cd, qos, rec_cb));
}

static void close_all(pier_loop *loop, pier_socket **list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (list[i]) T_OK(pier_close(list[i], NULL));
  t_loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* 2. the catalog and plain TCP                                        */
/* ------------------------------------------------------------------ */

START_TEST(catalog_says_what_each_entry_carries) {
  const pier_protocol_info *tcp = pier_protocol_find("tcp4");
  const pier_protocol_info *cd = pier_protocol_find("tcp4+cd");
  const pier_protocol_info *msg = pier_protocol_find("msg6");
  ck_assert_ptr_nonnull(tcp);
  ck_assert_ptr_nonnull(cd);
  ck_assert_ptr_nonnull(msg);
  ck_assert_uint_eq(tcp->caps & (PIER_CAP_CONNECT_DATA | PIER_CAP_DISCONNECT_DATA), 0);
  ck_assert_uint_ne(cd->caps & PIER_CAP_CONNECT_DATA, 0);
  ck_assert_uint_ne(cd->caps & PIER_CAP_STREAM, 0);
  ck_assert_uint_eq(cd->caps & PIER_CAP_DISCONNECT_DATA, 0);
  unsigned want = PIER_CAP_MESSAGE | PIER_CAP_CONNECT_DATA |
                  PIER_CAP_DISCONNECT_DATA | PIER_CAP_PARTIAL_MESSAGE |
                  PIER_CAP_GRACEFUL_CLOSE;
  ck_assert_uint_eq(msg->caps & want, want);
  ck_assert_uint_eq(msg->caps & PIER_CAP_STREAM, 0);
  ck_assert_uint_eq(msg->max_message, PIER_MESSAGE_MAX);
  ck_assert_int_eq(msg->family, AF_INET6);
}
END_TEST

START_TEST(plain_tcp_refuses_connect_and_disconnect_data) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_ERR(pier_disconnect(c, &op, "bye", 3, rec_cb), PIER_EOPNOTSUPP);
  char buf[8];
  size_t len = 0;
  T_ERR(pier_recv_disconnect(s, buf, sizeof buf, &len), PIER_EOPNOTSUPP);
  pier_socket *x;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &x));
  pier_connect_data cd = { "hi", 2, NULL, 0, 0 };
  struct sockaddr_storage a;
  size_t alen = sizeof a;
  T_OK(pier_getsockname(s, &a, &alen));
  T_ERR(pier_connect(x, &op, T_SA(&a), alen, &cd, NULL, rec_cb), PIER_EOPNOTSUPP);
  int v;
  T_ERR(pier_getsockopt(c, PIER_SO_MAX_MESSAGE, &v), PIER_ENOPROTOOPT);
  T_ERR(pier_setsockopt(c, PIER_SO_HANDSHAKE_TIMEOUT, 100), PIER_ENOPROTOOPT);
  pier_socket *all[] = { c, s, x };
  close_all(loop, all, 3);
}
END_TEST

/* pier_disconnect without data on plain TCP: a shutdown of sends that
   waits for the sends queued before it. */
START_TEST(plain_tcp_disconnect_follows_queued_sends) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  enum { N = 4, SZ = 256 * 1024 };
  uint8_t *out = malloc((size_t)N * SZ), *in = malloc((size_t)N * SZ + 1);
  t_fill(out, (size_t)N * SZ, 7, 0);
  side snd[N], d, r;
  for (int i = 0; i < N; i++) {
    memset(&snd[i], 0, sizeof snd[i]);
    snd[i].op.data = &snd[i].r;
    pier_buf b = pier_buf_init(out + (size_t)i * SZ, SZ);
    T_OK(pier_send(c, &snd[i].op, &b, 1, 0, rec_cb));
  }
  memset(&d, 0, sizeof d);
  d.op.data = &d.r;
  T_OK(pier_disconnect(c, &d.op, NULL, 0, rec_cb));
  size_t got = 0;
  for (;;) {
    memset(&r, 0, sizeof r);
    r.op.data = &r.r;
    pier_buf b = pier_buf_init(in + got, (size_t)N * SZ + 1 - got);
    T_OK(pier_recv(s, &r.op, &b, 1, 0, rec_cb));
    t_run_until(loop, &r.r.count, 5000);
    T_OK(r.r.status);
    if (r.r.bytes == 0) break;
    got += r.r.bytes;
  }
  ck_assert_uint_eq(got, (size_t)N * SZ);
  ck_assert_uint_eq(t_verify(in, got, 7, 0), (size_t)-1);
  t_run_until(loop, &d.r.count, 3000);
  T_OK(d.r.status);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(snd[i].r.count, 1);
    T_OK(snd[i].r.status);
  }
  /* The other direction still works. */
  side s2, r2;
  char msg[] = "after", back[8];
  memset(&s2, 0, sizeof s2);
  memset(&r2, 0, sizeof r2);
  s2.op.data = &s2.r;
  r2.op.data = &r2.r;
  pier_buf sb = pier_buf_init(msg, 5), rb = pier_buf_init(back, sizeof back);
  T_OK(pier_recv(c, &r2.op, &rb, 1, 0, rec_cb));
  T_OK(pier_send(s, &s2.op, &sb, 1, 0, rec_cb));
  t_run_until(loop, &r2.r.count, 3000);
  ck_assert_uint_eq(r2.r.bytes, 5);
  ck_assert_mem_eq(back, "after", 5);
  free(out);
  free(in);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 3. caller and callee data                                           */
/* ------------------------------------------------------------------ */

/* The largest caller and callee data both ways, the QoS asked for, then
   data both ways on the new connection. */
START_TEST(connect_data_round_trip) {
  const char *proto = cd_protos[_i];
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, proto, &addr, &alen), *c = NULL;
  uint8_t *caller = malloc(PIER_CONNECT_DATA_MAX);
  uint8_t *callee = malloc(PIER_CONNECT_DATA_MAX);
  uint8_t *reply = malloc(PIER_CONNECT_DATA_MAX);
  t_fill(caller, PIER_CONNECT_DATA_MAX, 11, 0);
  t_fill(reply, PIER_CONNECT_DATA_MAX, 12, 0);
  verdicts v;
  memset(&v, 0, sizeof v);
  v.reply = reply;
  v.reply_len = PIER_CONNECT_DATA_MAX;
  side a, k;
  start_accept(l, &a, &v);
  pier_connect_data cd = { caller, PIER_CONNECT_DATA_MAX, callee,
                           PIER_CONNECT_DATA_MAX, 0 };
  pier_qos q;
  T_OK(pier_qos_by_name("bulk", &q));
  start_connect(loop, proto, &k, &c, &addr, alen, &cd, NULL);
  (void)q;
  t_run_until(loop, &k.r.count, 5000);
  t_run_until(loop, &a.r.count, 5000);
  T_OK(k.r.status);
  T_OK(a.r.status);
  ck_assert_int_eq(v.calls, 1);
  ck_assert_uint_eq(v.seen_len[0], PIER_CONNECT_DATA_MAX);
  ck_assert_int_eq(v.caller_ok, 1);
  ck_assert_int_eq(v.local_ok, 1);
  ck_assert_uint_eq(v.cap_seen, PIER_CONNECT_DATA_MAX);
  ck_assert_uint_eq(cd.callee_len, PIER_CONNECT_DATA_MAX);
  ck_assert_uint_eq(t_verify(callee, cd.callee_len, 12, 0), (size_t)-1);
  pier_socket *s = a.op.accepted;
  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_eq(pier_socket_protocol(s), pier_protocol_find(proto));
  /* Data both ways. */
  char hello[] = "hello", world[] = "world!", b1[16], b2[16];
  side s1, s2, r1, r2;
  memset(&s1, 0, sizeof s1); memset(&s2, 0, sizeof s2);
  memset(&r1, 0, sizeof r1); memset(&r2, 0, sizeof r2);
  s1.op.data = &s1.r; s2.op.data = &s2.r; r1.op.data = &r1.r; r2.op.data = &r2.r;
  pier_buf bh = pier_buf_init(hello, 5), bw = pier_buf_init(world, 6);
  pier_buf rb1 = pier_buf_init(b1, sizeof b1), rb2 = pier_buf_init(b2, sizeof b2);
  T_OK(pier_recv(s, &r1.op, &rb1, 1, 0, rec_cb));
  T_OK(pier_recv(c, &r2.op, &rb2, 1, 0, rec_cb));
  T_OK(pier_send(c, &s1.op, &bh, 1, 0, rec_cb));
  T_OK(pier_send(s, &s2.op, &bw, 1, 0, rec_cb));
  t_run_until(loop, &r1.r.count, 3000);
  t_run_until(loop, &r2.r.count, 3000);
  t_run_until(loop, &s1.r.count, 3000);
  t_run_until(loop, &s2.r.count, 3000);
  ck_assert_uint_eq(r1.r.bytes, 5);
  ck_assert_mem_eq(b1, "hello", 5);
  ck_assert_uint_eq(r2.r.bytes, 6);
  ck_assert_mem_eq(b2, "world!", 6);
  ck_assert_uint_eq(s1.r.bytes, 5);
  free(caller);
  free(callee);
  free(reply);
  pier_socket *all[] = { l, c, s };
  close_all(loop, all, 3);
}
END_TEST

/* REJECT reaches the caller as PIER_EREFUSED; the listener goes on and
   the same accept takes the next caller. */
START_TEST(reject_is_told_apart_and_the_listener_goes_on) {
  const char *proto = cd_protos[_i];
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, proto, &addr, &alen), *c1, *c2;
  verdicts v;
  memset(&v, 0, sizeof v);
  v.answer[0] = PIER_CF_REJECT;
  side a, k1, k2;
  start_accept(l, &a, &v);
  uint8_t one = 1, two = 2;
  pier_connect_data cd1 = { &one, 1, NULL, 0, 0 }, cd2 = { &two, 1, NULL, 0, 0 };
  start_connect(loop, proto, &k1, &c1, &addr, alen, &cd1, NULL);
  t_run_until(loop, &k1.r.count, 5000);
  T_ERR(k1.r.status, PIER_EREFUSED);
  ck_assert_int_eq(a.r.count, 0);
  /* A refused socket is done: data calls say so. */
  char b[4];
  pier_buf rb = pier_buf_init(b, sizeof b);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_ERR(pier_recv(c1, &op, &rb, 1, 0, rec_cb), PIER_EREFUSED);
  start_connect(loop, proto, &k2, &c2, &addr, alen, &cd2, NULL);
  t_run_until(loop, &k2.r.count, 5000);
  t_run_until(loop, &a.r.count, 5000);
  T_OK(k2.r.status);
  T_OK(a.r.status);
  ck_assert_int_eq(v.calls, 2);
  ck_assert_uint_eq(v.seen_first[0], 1);
  ck_assert_uint_eq(v.seen_first[1], 2);
  pier_socket *all[] = { l, c1, c2, a.op.accepted };
  close_all(loop, all, 4);
}
END_TEST

/* DEFER: the accept completes with PIER_ETRYAGAIN, nothing else is
   accepted meanwhile, and the next accept is shown the same request
   first; the one behind it is not lost. */
START_TEST(defer_holds_the_request_at_the_head) {
  const char *proto = cd_protos[_i];
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, proto, &addr, &alen), *c1, *c2;
  verdicts v;
  memset(&v, 0, sizeof v);
  v.answer[0] = PIER_CF_DEFER;
  side a, k1, k2;
  start_accept(l, &a, &v);
  uint8_t one = 1, two = 2;
  pier_connect_data cd1 = { &one, 1, NULL, 0, 0 }, cd2 = { &two, 1, NULL, 0, 0 };
  start_connect(loop, proto, &k1, &c1, &addr, alen, &cd1, NULL);
  t_run_until(loop, &a.r.count, 5000);
  T_ERR(a.r.status, PIER_ETRYAGAIN);
  ck_assert_int_eq(v.calls, 1);
  /* A second caller arrives while the first is deferred. */
  start_connect(loop, proto, &k2, &c2, &addr, alen, &cd2, NULL);
  for (int i = 0; i < 20; i++) pier_loop_run(loop, PIER_RUN_NOWAIT);
  ck_assert_int_eq(k1.r.count, 0);
  ck_assert_int_eq(k2.r.count, 0);
  ck_assert_int_eq(v.calls, 1);
  start_accept(l, &a, &v);
  t_run_until(loop, &a.r.count, 5000);
  T_OK(a.r.status);
  ck_assert_int_eq(v.calls, 2);
  ck_assert_uint_eq(v.seen_first[1], 1); /* the deferred one again */
  pier_socket *s1 = a.op.accepted;
  t_run_until(loop, &k1.r.count, 5000);
  T_OK(k1.r.status);
  start_accept(l, &a, &v);
  t_run_until(loop, &a.r.count, 5000);
  T_OK(a.r.status);
  ck_assert_uint_eq(v.seen_first[2], 2);
  t_run_until(loop, &k2.r.count, 5000);
  T_OK(k2.r.status);
  pier_socket *all[] = { l, c1, c2, s1, a.op.accepted };
  close_all(loop, all, 5);
}
END_TEST

static void timer_flag(pier_timer *t) { *(int *)t->data = 1; }

/* Run the loop for ms milliseconds. */
static void run_for(pier_loop *loop, int ms) {
  pier_timer t;
  int fired = 0;
  T_OK(pier_timer_init(loop, &t));
  t.data = &fired;
  T_OK(pier_timer_start(&t, (uint64_t)ms, 0, timer_flag));
  t_run_until(loop, &fired, ms + 3000);
}

/* A deferred caller that gives up is dropped, never presented again. */
START_TEST(deferred_caller_that_leaves_is_dropped) {
  const char *proto = cd_protos[_i];
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, proto, &addr, &alen), *c1, *c2;
  verdicts v;
  memset(&v, 0, sizeof v);
  v.answer[0] = PIER_CF_DEFER;
  side a, k1, k2;
  start_accept(l, &a, &v);
  uint8_t one = 1, two = 2;
  pier_connect_data cd1 = { &one, 1, NULL, 0, 0 }, cd2 = { &two, 1, NULL, 0, 0 };
  start_connect(loop, proto, &k1, &c1, &addr, alen, &cd1, NULL);
  t_run_until(loop, &a.r.count, 5000);
  T_ERR(a.r.status, PIER_ETRYAGAIN);
  T_OK(pier_close(c1, NULL));
  t_run_until(loop, &k1.r.count, 3000);
  T_ERR(k1.r.status, PIER_ECANCELED);
  run_for(loop, 300);
  start_connect(loop, proto, &k2, &c2, &addr, alen, &cd2, NULL);
  start_accept(l, &a, &v);
  t_run_until(loop, &a.r.count, 5000);
  T_OK(a.r.status);
  ck_assert_int_eq(v.calls, 2);
  ck_assert_uint_eq(v.seen_first[1], 2);
  t_run_until(loop, &k2.r.count, 5000);
  T_OK(k2.r.status);
  pier_socket *all[] = { l, c2, a.op.accepted };
  close_all(loop, all, 3);
}
END_TEST

/* No condition function, no data: connect data protocols still connect. */
START_TEST(no_condition_no_data) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, cd_protos[_i], &c, &s);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* The QoS the caller asked for reaches the condition function. */
START_TEST(requested_qos_reaches_the_listener) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, "msg4", &addr, &alen), *c;
  verdicts v;
  memset(&v, 0, sizeof v);
  side a, k;
  start_accept(l, &a, &v);
  pier_qos q;
  T_OK(pier_qos_by_name("voice", &q));
  pier_socket *tmp;
  T_OK(pier_socket_open(loop, pier_protocol_find("msg4"), 0, &tmp));
  int settable = pier_set_qos(tmp, &q) == 0;
  T_OK(pier_close(tmp, NULL));
  start_connect(loop, "msg4", &k, &c, &addr, alen, NULL, settable ? &q : NULL);
  t_run_until(loop, &a.r.count, 5000);
  t_run_until(loop, &k.r.count, 5000);
  T_OK(a.r.status);
  T_OK(k.r.status);
  ck_assert_int_eq(v.qos_dscp, settable ? 46 : -1);
  pier_socket *all[] = { l, c, a.op.accepted };
  close_all(loop, all, 3);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. messages                                                         */
/* ------------------------------------------------------------------ */

static void send_msg(pier_socket *s, side *sd, const void *p, size_t n) {
  memset(sd, 0, sizeof *sd);
  sd->op.data = &sd->r;
  pier_buf b = pier_buf_init((void *)p, n);
  T_OK(pier_send(s, &sd->op, &b, 1, 0, rec_cb));
}

/* Receive one piece into nb scatter buffers of len each. */
static void recv_piece(pier_loop *loop, pier_socket *s, uint8_t *dst,
                       size_t nb, size_t len, rec *out) {
  side r;
  memset(&r, 0, sizeof r);
  r.op.data = &r.r;
  pier_buf b[4];
  for (size_t i = 0; i < nb; i++) b[i] = pier_buf_init(dst + i * len, len);
  T_OK(pier_recv(s, &r.op, b, nb, 0, rec_cb));
  t_run_until(loop, &r.r.count, 5000);
  *out = r.r;
}

/* Messages keep their boundaries: a receive never returns bytes of two
   messages; a message larger than the buffers comes in parts flagged
   PIER_MSG_PARTIAL, its last part without the flag. */
START_TEST(boundaries_and_partial_receives) {
  const char *proto = _i ? "msg6" : "msg4";
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, proto, &c, &s);
  static const size_t sizes[] = { 1, 30, 29, 31, 100, 70000, 3 };
  enum { N = sizeof sizes / sizeof sizes[0] };
  uint8_t *data[N];
  side snd[N];
  for (size_t i = 0; i < N; i++) {
    data[i] = malloc(sizes[i]);
    t_fill(data[i], sizes[i], 100 + i, 0);
    send_msg(c, &snd[i], data[i], sizes[i]);
  }
  /* Three buffers of 10 bytes: 30 at a time. */
  uint8_t got[30];
  for (size_t i = 0; i < N; i++) {
    size_t off = 0;
    for (;;) {
      rec r;
      recv_piece(loop, s, got, 3, 10, &r);
      T_OK(r.status);
      ck_assert_uint_gt(r.bytes, 0);
      ck_assert_uint_le(off + r.bytes, sizes[i]);
      ck_assert_uint_eq(t_verify(got, r.bytes, 100 + i, off), (size_t)-1);
      off += r.bytes;
      if (off < sizes[i]) {
        ck_assert_msg(r.flags & PIER_MSG_PARTIAL, "message %zu: part without PARTIAL", i);
        ck_assert_uint_eq(r.bytes, 30);
      } else {
        ck_assert_msg(!(r.flags & PIER_MSG_PARTIAL), "message %zu: last part flagged", i);
        break;
      }
    }
  }
  for (size_t i = 0; i < N; i++) {
    t_run_until(loop, &snd[i].r.count, 3000);
    T_OK(snd[i].r.status);
    ck_assert_uint_eq(snd[i].r.bytes, sizes[i]);
    free(data[i]);
  }
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* A gathered send is one message. */
START_TEST(gather_send_is_one_message) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "msg4", &c, &s);
  char a[] = "ab", b[] = "cde", d[] = "f";
  pier_buf g[3] = { pier_buf_init(a, 2), pier_buf_init(b, 3), pier_buf_init(d, 1) };
  side sd, sd2;
  memset(&sd, 0, sizeof sd);
  sd.op.data = &sd.r;
  T_OK(pier_send(c, &sd.op, g, 3, 0, rec_cb));
  send_msg(c, &sd2, "xyz", 3);
  uint8_t got[64];
  rec r;
  recv_piece(loop, s, got, 1, sizeof got, &r);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, 6);
  ck_assert_mem_eq(got, "abcdef", 6);
  recv_piece(loop, s, got, 1, sizeof got, &r);
  ck_assert_uint_eq(r.bytes, 3);
  ck_assert_mem_eq(got, "xyz", 3);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

START_TEST(message_size_limits) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "msg4", &c, &s);
  int v = 0;
  T_OK(pier_getsockopt(c, PIER_SO_MAX_MESSAGE, &v));
  ck_assert_int_eq(v, PIER_MESSAGE_DEFAULT_MAX);
  T_ERR(pier_setsockopt(c, PIER_SO_MAX_MESSAGE, 0), PIER_EINVAL);
  T_ERR(pier_setsockopt(c, PIER_SO_MAX_MESSAGE, -5), PIER_EINVAL);
  T_OK(pier_setsockopt(c, PIER_SO_MAX_MESSAGE, 100));
  T_OK(pier_getsockopt(c, PIER_SO_MAX_MESSAGE, &v));
  ck_assert_int_eq(v, 100);
  uint8_t big[200];
  memset(big, 'x', sizeof big);
  pier_op op;
  memset(&op, 0, sizeof op);
  pier_buf b = pier_buf_init(big, 101);
  T_ERR(pier_send(c, &op, &b, 1, 0, rec_cb), PIER_EMSGSIZE);
  b = pier_buf_init(big, 0);
  T_ERR(pier_send(c, &op, &b, 1, 0, rec_cb), PIER_EINVAL);
  /* The receiver's own limit: a longer message ends the connection. */
  T_OK(pier_setsockopt(s, PIER_SO_MAX_MESSAGE, 50));
  side sd;
  send_msg(c, &sd, big, 60);
  uint8_t got[200];
  rec r;
  recv_piece(loop, s, got, 1, sizeof got, &r);
  T_ERR(r.status, PIER_EMSGSIZE);
  ck_assert_uint_eq(r.bytes, 0);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 5. disconnect data, close, blocking calls                           */
/* ------------------------------------------------------------------ */

START_TEST(disconnect_data_reaches_the_peer) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, _i ? "msg6" : "msg4", &c, &s);
  char buf[16];
  size_t len = 99;
  T_ERR(pier_recv_disconnect(s, buf, sizeof buf, &len), PIER_ENOTCONN);
  side m1, d;
  send_msg(c, &m1, "last", 4);
  memset(&d, 0, sizeof d);
  d.op.data = &d.r;
  T_OK(pier_disconnect(c, &d.op, "goodbye", 7, rec_cb));
  pier_op x;
  memset(&x, 0, sizeof x);
  pier_buf xb = pier_buf_init(buf, 1);
  T_ERR(pier_send(c, &x, &xb, 1, 0, rec_cb), PIER_ESHUTDOWN);
  uint8_t got[16];
  rec r;
  recv_piece(loop, s, got, 1, sizeof got, &r);
  ck_assert_uint_eq(r.bytes, 4);
  recv_piece(loop, s, got, 1, sizeof got, &r);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, 0); /* end of stream */
  t_run_until(loop, &d.r.count, 3000);
  T_OK(d.r.status);
  /* The size alone, then the data, then a short buffer. */
  T_OK(pier_recv_disconnect(s, NULL, 0, &len));
  ck_assert_uint_eq(len, 7);
  T_OK(pier_recv_disconnect(s, buf, sizeof buf, &len));
  ck_assert_uint_eq(len, 7);
  ck_assert_mem_eq(buf, "goodbye", 7);
  memset(buf, 0, sizeof buf);
  T_OK(pier_recv_disconnect(s, buf, 3, &len));
  ck_assert_uint_eq(len, 7);
  ck_assert_mem_eq(buf, "goo", 3);
  /* Receives after the end keep saying so; the other way still works. */
  recv_piece(loop, s, got, 1, sizeof got, &r);
  ck_assert_uint_eq(r.bytes, 0);
  side back;
  send_msg(s, &back, "reply", 5);
  recv_piece(loop, c, got, 1, sizeof got, &r);
  ck_assert_uint_eq(r.bytes, 5);
  /* The server's own disconnect, without data. */
  memset(&d, 0, sizeof d);
  d.op.data = &d.r;
  T_OK(pier_disconnect(s, &d.op, NULL, 0, rec_cb));
  recv_piece(loop, c, got, 1, sizeof got, &r);
  ck_assert_uint_eq(r.bytes, 0);
  T_OK(pier_recv_disconnect(c, buf, sizeof buf, &len));
  ck_assert_uint_eq(len, 0);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

START_TEST(disconnect_data_limit) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "msg4", &c, &s);
  static char big[PIER_DISCONNECT_DATA_MAX + 1];
  pier_op op;
  memset(&op, 0, sizeof op);
  T_ERR(pier_disconnect(c, &op, big, sizeof big, rec_cb), PIER_EMSGSIZE);
  T_ERR(pier_disconnect(c, &op, NULL, 3, rec_cb), PIER_EINVAL);
  side d;
  memset(&d, 0, sizeof d);
  d.op.data = &d.r;
  T_OK(pier_disconnect(c, &d.op, big, PIER_DISCONNECT_DATA_MAX, rec_cb));
  uint8_t got[8];
  rec r;
  recv_piece(loop, s, got, 1, sizeof got, &r);
  ck_assert_uint_eq(r.bytes, 0);
  size_t len = 0;
  T_OK(pier_recv_disconnect(s, NULL, 0, &len));
  ck_assert_uint_eq(len, PIER_DISCONNECT_DATA_MAX);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* Closing completes every pending operation once, with PIER_ECANCELED. */
START_TEST(close_cancels_pending_operations) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *c, *s;
  t_pair(loop, cd_protos[_i], &c, &s);
  side r1, r2;
  uint8_t b1[8], b2[8];
  pier_buf rb1 = pier_buf_init(b1, 8), rb2 = pier_buf_init(b2, 8);
  memset(&r1, 0, sizeof r1);
  memset(&r2, 0, sizeof r2);
  r1.op.data = &r1.r;
  r2.op.data = &r2.r;
  T_OK(pier_recv(s, &r1.op, &rb1, 1, 0, rec_cb));
  T_OK(pier_recv(s, &r2.op, &rb2, 1, 0, rec_cb));
  /* A listener with an accept pending and a caller mid-handshake. */
  pier_socket *l = t_listener(loop, cd_protos[_i], &addr, &alen);
  verdicts v;
  memset(&v, 0, sizeof v);
  side a;
  start_accept(l, &a, &v);
  T_OK(pier_close(s, NULL));
  T_OK(pier_close(l, NULL));
  t_run_until(loop, &r1.r.count, 3000);
  t_run_until(loop, &r2.r.count, 3000);
  t_run_until(loop, &a.r.count, 3000);
  T_ERR(r1.r.status, PIER_ECANCELED);
  T_ERR(r2.r.status, PIER_ECANCELED);
  T_ERR(a.r.status, PIER_ECANCELED);
  for (int i = 0; i < 10; i++) pier_loop_run(loop, PIER_RUN_NOWAIT);
  ck_assert_int_eq(r1.r.count, 1);
  ck_assert_int_eq(r2.r.count, 1);
  ck_assert_int_eq(a.r.count, 1);
  pier_socket *all[] = { c };
  close_all(loop, all, 1);
}
END_TEST

/* pier_cancel of a receive and of a connect in its handshake. */
START_TEST(cancel_receive_and_connect) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "msg4", &c, &s);
  side r;
  uint8_t b[8];
  pier_buf rb = pier_buf_init(b, 8);
  memset(&r, 0, sizeof r);
  r.op.data = &r.r;
  T_OK(pier_recv(s, &r.op, &rb, 1, 0, rec_cb));
  T_OK(pier_cancel(&r.op));
  t_run_until(loop, &r.r.count, 3000);
  T_ERR(r.r.status, PIER_ECANCELED);
  T_ERR(pier_cancel(&r.op), PIER_ENOENT);
  /* The stream is intact: the next message arrives whole. */
  side m;
  send_msg(c, &m, "next", 4);
  rec got;
  recv_piece(loop, s, b, 1, sizeof b, &got);
  ck_assert_uint_eq(got.bytes, 4);
  ck_assert_mem_eq(b, "next", 4);
  /* A connect to a listener that never accepts: its handshake is
     pending until cancelled. */
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, "msg4", &addr, &alen), *k;
  side kc;
  start_connect(loop, "msg4", &kc, &k, &addr, alen, NULL, NULL);
  for (int i = 0; i < 20; i++) pier_loop_run(loop, PIER_RUN_NOWAIT);
  ck_assert_int_eq(kc.r.count, 0);
  T_OK(pier_cancel(&kc.op));
  t_run_until(loop, &kc.r.count, 3000);
  T_ERR(kc.r.status, PIER_ECANCELED);
  pier_socket *all[] = { c, s, l, k };
  close_all(loop, all, 4);
}
END_TEST

typedef struct blk { pier_socket *s; int rc; size_t bytes; char buf[16]; int done; } blk;

static void *blocking_recv(void *arg) {
  blk *b = arg;
  pier_op op;
  memset(&op, 0, sizeof op);
  pier_buf rb = pier_buf_init(b->buf, sizeof b->buf);
  b->rc = pier_recv(b->s, &op, &rb, 1, 0, NULL);
  b->bytes = op.bytes;
  T_FLAG_SET(&b->done, 1);
  return NULL;
}

/* Blocking-form calls on a layered socket: the calling thread waits (and
   runs the loop when no thread does); non-blocking mode says
   EOPNOTSUPP; from inside a callback EDEADLK. */
START_TEST(blocking_calls_on_layered_sockets) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "msg4", &c, &s);
  pier_op op;
  memset(&op, 0, sizeof op);
  char m[] = "blocking";
  pier_buf sb = pier_buf_init(m, 8);
  T_OK(pier_send(c, &op, &sb, 1, 0, NULL));
  ck_assert_uint_eq(op.bytes, 8);
  char buf[16];
  pier_buf rb = pier_buf_init(buf, sizeof buf);
  T_OK(pier_recv(s, &op, &rb, 1, 0, NULL));
  ck_assert_uint_eq(op.bytes, 8);
  ck_assert_mem_eq(buf, "blocking", 8);
  /* From another thread while this one runs the loop. */
  blk b;
  memset(&b, 0, sizeof b);
  b.s = s;
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, blocking_recv, &b), 0);
  side sd;
  send_msg(c, &sd, "thread", 6);
  while (!T_FLAG(&b.done)) pier_loop_run(loop, PIER_RUN_NOWAIT);
  pthread_join(t, NULL);
  T_OK(b.rc);
  ck_assert_uint_eq(b.bytes, 6);
  int on = 1;
  T_OK(pier_ioctl(s, PIER_FIONBIO, &on));
  T_ERR(pier_recv(s, &op, &rb, 1, 0, NULL), PIER_EOPNOTSUPP);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* What layered sockets cannot do, said plainly. */
START_TEST(layered_sockets_refuse_os_level_calls) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "msg4", &c, &s);
  pier_pollfd p = { c, PIER_POLLIN, 0 };
  T_ERR(pier_poll(&p, 1, 0), PIER_EOPNOTSUPP);
  pier_share sh;
  T_ERR(pier_socket_share(c, 1, &sh), PIER_EOPNOTSUPP);
  ck_assert(pier_socket_handle(c) != PIER_INVALID_SOCKET);
  T_OK(pier_setsockopt(c, PIER_SO_NODELAY, 1));
  int v = 0;
  T_OK(pier_getsockopt(c, PIER_SO_NODELAY, &v));
  ck_assert_int_eq(v, 1);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 6. first data with the connection                                   */
/* ------------------------------------------------------------------ */

/* pier_connect_first on a base provider: part of the data (all of it
   with ConnectEx, none without a Fast Open cookie) goes with the connect,
   the caller sends the rest, the peer gets every byte once. */
START_TEST(connect_first_sends_each_byte_once) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l = t_listener(loop, "tcp4", &addr, &alen), *c;
  side a, k, rest, r;
  memset(&a, 0, sizeof a);
  a.op.data = &a.r;
  T_OK(pier_accept(l, &a.op, NULL, NULL, rec_cb));
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &c));
  static const char first[] = "first data with the connect";
  size_t n = sizeof first - 1;
  memset(&k, 0, sizeof k);
  k.op.data = &k.r;
  T_OK(pier_connect_first(c, &k.op, T_SA(&addr), alen, first, n, rec_cb));
  t_run_until(loop, &k.r.count, 5000);
  T_OK(k.r.status);
  ck_assert_msg(k.r.bytes == 0 || k.r.bytes == n, "sent %zu of %zu with the "
                "connect", k.r.bytes, n);
  if (k.r.bytes < n) {
    memset(&rest, 0, sizeof rest);
    rest.op.data = &rest.r;
    pier_buf b = pier_buf_init((char *)first + k.r.bytes, n - k.r.bytes);
    T_OK(pier_send(c, &rest.op, &b, 1, 0, rec_cb));
  }
  t_run_until(loop, &a.r.count, 5000);
  T_OK(a.r.status);
  char got[64];
  memset(&r, 0, sizeof r);
  r.op.data = &r.r;
  pier_buf rb = pier_buf_init(got, n);
  T_OK(pier_recv(a.op.accepted, &r.op, &rb, 1, PIER_MSG_WAITALL, rec_cb));
  t_run_until(loop, &r.r.count, 5000);
  ck_assert_uint_eq(r.r.bytes, n);
  ck_assert_mem_eq(got, first, n);
  pier_op bad;
  memset(&bad, 0, sizeof bad);
  T_ERR(pier_connect_first(c, &bad, T_SA(&addr), alen, NULL, 3, rec_cb),
        PIER_EINVAL);
  pier_socket *all[] = { l, c, a.op.accepted };
  close_all(loop, all, 3);
}
END_TEST

/* pier_accept_first: where the provider waits for the first bytes
   with the accept (iocp: AcceptEx's receive buffer) they come with it;
   elsewhere the accept completes without them and a receive gets them. */
START_TEST(accept_first_brings_the_first_bytes) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage addr;
  size_t alen;
  pier_socket *l, *c;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &l));
  int ms = 5000;
  T_ERR(pier_setsockopt(l, PIER_SO_ACCEPT_FIRST, -1), PIER_EINVAL);
  int rc = pier_setsockopt(l, PIER_SO_ACCEPT_FIRST, ms);
  if (rc == 0) {
    int v = 0;
    T_OK(pier_getsockopt(l, PIER_SO_ACCEPT_FIRST, &v));
    ck_assert_int_eq(v, ms);
  }
  ck_assert_msg(rc == 0 || rc == PIER_ENOPROTOOPT, "%s", pier_err_name(rc));
  t_loopback("tcp4", &addr, &alen);
  T_OK(pier_bind(l, T_SA(&addr), alen));
  T_OK(pier_listen(l, 16));
  alen = sizeof addr;
  T_OK(pier_getsockname(l, &addr, &alen));
  char first[1024];
  side a, k, snd;
  memset(&a, 0, sizeof a);
  a.op.data = &a.r;
  T_OK(pier_accept_first(l, &a.op, first, sizeof first, rec_cb));
  start_connect(loop, "tcp4", &k, &c, &addr, alen, NULL, NULL);
  t_run_until(loop, &k.r.count, 5000);
  T_OK(k.r.status);
  send_msg(c, &snd, "first!", 6);
  t_run_until(loop, &a.r.count, 5000);
  T_OK(a.r.status);
  if (rc == 0) {
    ck_assert_uint_eq(a.r.bytes, 6);
    ck_assert_mem_eq(first, "first!", 6);
  } else {
    ck_assert_uint_eq(a.r.bytes, 0);
    uint8_t got[8];
    rec r;
    recv_piece(loop, a.op.accepted, got, 1, 6, &r);
    ck_assert_uint_eq(r.bytes, 6);
    ck_assert_mem_eq(got, "first!", 6);
  }
  pier_op bad;
  memset(&bad, 0, sizeof bad);
  T_ERR(pier_accept_first(l, &bad, NULL, 10, rec_cb), PIER_EINVAL);
  T_ERR(pier_accept_first(c, &bad, first, 10, rec_cb), PIER_EINVAL);
  pier_socket *all[] = { l, c, a.op.accepted };
  close_all(loop, all, 3);
}
END_TEST

#ifdef TCP_FASTOPEN_CONNECT
/* Linux: the caller of a connect-data protocol asks for TCP Fast Open
   (the kernel uses it when net.ipv4.tcp_fastopen and a cookie allow). */
START_TEST(fast_open_is_asked_for) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "msg4", &c, &s);
  int on = 0;
  size_t len = sizeof on;
  T_OK(pier_getsockopt_raw(c, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &on, &len));
  ck_assert_int_eq(on, 1);
  pier_socket *all[] = { c, s };
  close_all(loop, all, 2);
}
END_TEST
#endif

Suite *suite_msg(void) {
  Suite *s = suite_create("msg");
  TCase *tc = tcase_create("msg");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, catalog_says_what_each_entry_carries);
  tcase_add_test(tc, plain_tcp_refuses_connect_and_disconnect_data);
  tcase_add_test(tc, plain_tcp_disconnect_follows_queued_sends);
  tcase_add_loop_test(tc, connect_data_round_trip, 0, 4);
  tcase_add_loop_test(tc, reject_is_told_apart_and_the_listener_goes_on, 0, 4);
  tcase_add_loop_test(tc, defer_holds_the_request_at_the_head, 0, 4);
  tcase_add_loop_test(tc, deferred_caller_that_leaves_is_dropped, 0, 4);
  tcase_add_loop_test(tc, no_condition_no_data, 0, 4);
  tcase_add_test(tc, requested_qos_reaches_the_listener);
  tcase_add_loop_test(tc, boundaries_and_partial_receives, 0, 2);
  tcase_add_test(tc, gather_send_is_one_message);
  tcase_add_test(tc, message_size_limits);
  tcase_add_loop_test(tc, disconnect_data_reaches_the_peer, 0, 2);
  tcase_add_test(tc, disconnect_data_limit);
  tcase_add_loop_test(tc, close_cancels_pending_operations, 0, 4);
  tcase_add_test(tc, cancel_receive_and_connect);
  tcase_add_test(tc, blocking_calls_on_layered_sockets);
  tcase_add_test(tc, layered_sockets_refuse_os_level_calls);
  tcase_add_test(tc, connect_first_sends_each_byte_once);
  tcase_add_test(tc, accept_first_brings_the_first_bytes);
#ifdef TCP_FASTOPEN_CONNECT
  tcase_add_test(tc, fast_open_is_asked_for);
#endif
  suite_add_tcase(s, tc);
  return s;
}
