/* SPDX-License-Identifier: MIT */
/*
 * tests/test_msgbad.c - pier's handshake and framing against bad peers
 * (doc/protocol.md): each gets a clear error and a closed connection,
 * never a hang, an unbounded allocation or a blocked listener.
 *
 * Section map
 *   1. a listener served by a loop thread, raw OS callers
 *   2. bad callers against a pier listener
 *   3. bad listeners against a pier caller (a plain tcp4 socket plays one)
 *   4. bad frames after the handshake
 */
#include "helpers.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* 1. a served listener                                                */
/* ------------------------------------------------------------------ */

typedef struct served {
  pier_loop *loop;
  pier_socket *l;
  struct sockaddr_storage addr;
  size_t alen;
  pier_op aop;
  int calls;       /* condition function calls (atomic) */
  int accepted;    /* accepts completed with a socket (atomic) */
  pier_socket *last;
  pthread_t th;
} served;

static int count_cond(pier_accept_info *info, void *ctx) {
  (void)info;
  served *sv = ctx;
  __atomic_add_fetch(&sv->calls, 1, __ATOMIC_SEQ_CST);
  return PIER_CF_ACCEPT;
}

static void served_accepted(pier_op *op, int status) {
  served *sv = op->data;
  if (status != 0) return;
  if (sv->last) pier_close(sv->last, NULL);
  sv->last = op->accepted;
  __atomic_add_fetch(&sv->accepted, 1, __ATOMIC_SEQ_CST);
  pier_accept(sv->l, &sv->aop, count_cond, sv, served_accepted);
}

static void *serve(void *arg) {
  served *sv = arg;
  pier_loop_run(sv->loop, PIER_RUN_DEFAULT);
  return NULL;
}

/* A msg4 listener with a handshake timeout, served by a thread. */
static void served_start(served *sv, const char *proto, int timeout_ms) {
  memset(sv, 0, sizeof *sv);
  sv->loop = t_loop_new();
  sv->l = t_listener(sv->loop, proto, &sv->addr, &sv->alen);
  T_OK(pier_setsockopt(sv->l, PIER_SO_HANDSHAKE_TIMEOUT, timeout_ms));
  sv->aop.data = sv;
  T_OK(pier_accept(sv->l, &sv->aop, count_cond, sv, served_accepted));
  ck_assert_int_eq(pthread_create(&sv->th, NULL, serve, sv), 0);
}

static void served_stop(served *sv) {
  T_OK(pier_loop_stop(sv->loop));
  pthread_join(sv->th, NULL);
  if (sv->last) T_OK(pier_close(sv->last, NULL));
  T_OK(pier_close(sv->l, NULL));
  t_loop_free(sv->loop);
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* A connect request: version, flags, caller data length, callee room. */
static void hello(uint8_t out[20], unsigned version, unsigned flags,
                  uint32_t data_len, uint32_t callee_max) {
  memset(out, 0, 20);
  memcpy(out, "PIER", 4);
  out[4] = (uint8_t)version;
  out[5] = 1;
  out[6] = (uint8_t)(flags >> 8);
  out[7] = (uint8_t)flags;
  put32(out + 8, data_len);
  put32(out + 12, callee_max);
  out[16] = out[17] = 0xFF;
}

/* Read until the listener closes; returns the bytes received (at most
   cap kept), -1 if the connection stayed open for wait_ms. */
static long until_closed(pier_os_socket h, uint8_t *keep, size_t cap,
                         int wait_ms) {
  ck_assert_int_eq(t_os_set_rcvtimeo(h, wait_ms), 0);
  long total = 0;
  for (;;) {
    uint8_t b[256];
    long n = t_os_recv(h, b, sizeof b);
    if (n == 0) return total;
    if (n < 0) return t_os_err_is_conn_lost(t_os_errno()) ? total : -1;
    for (long i = 0; i < n; i++)
      if ((size_t)(total + i) < cap) keep[total + i] = b[i];
    total += n;
  }
}

static pier_os_socket os_caller(served *sv) {
  pier_os_socket h = t_os_connect(&sv->addr, sv->alen);
  ck_assert(h != PIER_INVALID_SOCKET);
  return h;
}

/* ------------------------------------------------------------------ */
/* 2. bad callers                                                      */
/* ------------------------------------------------------------------ */

START_TEST(garbage_instead_of_a_request_is_dropped) {
  served sv;
  served_start(&sv, "msg4", 5000);
  pier_os_socket h = os_caller(&sv);
  const char junk[] = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
  ck_assert_int_eq(t_os_send(h, junk, sizeof junk - 1), (long)sizeof junk - 1);
  ck_assert_int_eq(until_closed(h, NULL, 0, 3000), 0);
  t_os_close(h);
  ck_assert_int_eq(T_FLAG(&sv.calls), 0);
  served_stop(&sv);
}
END_TEST

START_TEST(oversized_lengths_are_dropped) {
  served sv;
  served_start(&sv, "msg4", 5000);
  static const uint32_t lens[][2] = { { 0x00100000u, 0 }, { 0xFFFFFFFFu, 0 },
                                      { 0, 65537 }, { 65537, 65537 } };
  for (size_t i = 0; i < 4; i++) {
    pier_os_socket h = os_caller(&sv);
    uint8_t b[20];
    hello(b, 1, 1, lens[i][0], lens[i][1]);
    ck_assert_int_eq(t_os_send(h, b, sizeof b), 20);
    ck_assert_int_eq(until_closed(h, NULL, 0, 3000), 0);
    t_os_close(h);
  }
  ck_assert_int_eq(T_FLAG(&sv.calls), 0);
  served_stop(&sv);
}
END_TEST

/* A version or flags this side does not speak: the UNSUPPORTED answer,
   then the close. */
START_TEST(wrong_version_gets_unsupported) {
  served sv;
  served_start(&sv, "msg4", 5000);
  static const unsigned cases[][2] = { { 2, 1 }, { 0, 1 }, { 1, 0 }, { 1, 3 } };
  for (size_t i = 0; i < 4; i++) {
    pier_os_socket h = os_caller(&sv);
    uint8_t b[20], got[32];
    hello(b, cases[i][0], cases[i][1], 0, 0);
    ck_assert_int_eq(t_os_send(h, b, sizeof b), 20);
    ck_assert_int_eq(until_closed(h, got, sizeof got, 3000), 16);
    ck_assert_mem_eq(got, "PIER", 4);
    ck_assert_int_eq(got[4], 1); /* the version this side speaks */
    ck_assert_int_eq(got[5], 4); /* UNSUPPORTED */
    t_os_close(h);
  }
  ck_assert_int_eq(T_FLAG(&sv.calls), 0);
  served_stop(&sv);
}
END_TEST

/* Half a request, then silence: the timeout drops it; a good caller
   meanwhile is accepted at once. */
START_TEST(half_a_request_times_out_without_blocking_others) {
  served sv;
  served_start(&sv, "msg4", 600);
  pier_os_socket h = os_caller(&sv);
  uint8_t b[20];
  hello(b, 1, 1, 100, 0);
  ck_assert_int_eq(t_os_send(h, b, 10), 10);
  /* A silent caller too. */
  pier_os_socket quiet = os_caller(&sv);
  /* A good caller, on its own loop. */
  pier_loop *loop = t_loop_new();
  pier_socket *c;
  pier_op op;
  memset(&op, 0, sizeof op);
  int done = 0;
  op.data = &done;
  T_OK(pier_socket_open(loop, pier_protocol_find("msg4"), 0, &c));
  T_OK(pier_connect(c, &op, T_SA(&sv.addr), sv.alen, NULL, NULL, t_count_cb));
  t_run_until(loop, &done, 400); /* well before the timeout */
  T_OK(op.status);
  ck_assert_int_eq(until_closed(h, NULL, 0, 3000), 0);
  ck_assert_int_eq(until_closed(quiet, NULL, 0, 3000), 0);
  t_os_close(h);
  t_os_close(quiet);
  ck_assert_int_eq(T_FLAG(&sv.calls), 1);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
  served_stop(&sv);
}
END_TEST

/* More silent callers than a listener reads at once: each is dropped on
   time and a good caller still gets through. */
START_TEST(many_silent_callers_are_bounded) {
  served sv;
  served_start(&sv, "msg4", 500);
  enum { N = 80 };
  pier_os_socket h[N];
  for (int i = 0; i < N; i++) h[i] = os_caller(&sv);
  pier_loop *loop = t_loop_new();
  pier_socket *c;
  pier_op op;
  memset(&op, 0, sizeof op);
  int done = 0;
  op.data = &done;
  T_OK(pier_socket_open(loop, pier_protocol_find("msg4"), 0, &c));
  T_OK(pier_setsockopt(c, PIER_SO_HANDSHAKE_TIMEOUT, 5000));
  T_OK(pier_connect(c, &op, T_SA(&sv.addr), sv.alen, NULL, NULL, t_count_cb));
  t_run_until(loop, &done, 5000);
  T_OK(op.status);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(until_closed(h[i], NULL, 0, 5000), 0);
    t_os_close(h[i]);
  }
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
  served_stop(&sv);
}
END_TEST

/* A caller of the other protocol (stream with connect data against a
   message listener) is told, not served. */
START_TEST(protocol_mismatch_is_refused) {
  served sv;
  served_start(&sv, "msg4", 5000);
  pier_loop *loop = t_loop_new();
  pier_socket *c;
  pier_op op;
  memset(&op, 0, sizeof op);
  int done = 0;
  op.data = &done;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4+cd"), 0, &c));
  T_OK(pier_connect(c, &op, T_SA(&sv.addr), sv.alen, NULL, NULL, t_count_cb));
  t_run_until(loop, &done, 3000);
  T_ERR(op.status, PIER_EPROTO);
  T_OK(pier_close(c, NULL));
  t_loop_free(loop);
  ck_assert_int_eq(T_FLAG(&sv.calls), 0);
  served_stop(&sv);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 3. bad listeners                                                    */
/* ------------------------------------------------------------------ */

typedef struct fake {
  pier_loop *loop;
  pier_socket *l, *peer, *c; /* fake listener, its accepted socket, caller */
  pier_op aop, cop, rop, sop;
  int accepted, connected, got, sent;
  uint8_t in[256];
  struct sockaddr_storage addr;
  size_t alen;
} fake;

/* A plain tcp4 listener that takes the caller's request (20 bytes). */
static void fake_start(fake *f, const char *proto, int timeout_ms,
                       pier_connect_data *cd) {
  memset(f, 0, sizeof *f);
  f->loop = t_loop_new();
  f->l = t_listener(f->loop, "tcp4", &f->addr, &f->alen);
  f->aop.data = &f->accepted;
  T_OK(pier_accept(f->l, &f->aop, NULL, NULL, t_count_cb));
  T_OK(pier_socket_open(f->loop, pier_protocol_find(proto), 0, &f->c));
  T_OK(pier_setsockopt(f->c, PIER_SO_HANDSHAKE_TIMEOUT, timeout_ms));
  f->cop.data = &f->connected;
  T_OK(pier_connect(f->c, &f->cop, T_SA(&f->addr), f->alen, cd, NULL,
                    t_count_cb));
  t_run_until(f->loop, &f->accepted, 3000);
  T_OK(f->aop.status);
  f->peer = f->aop.accepted;
  pier_buf b = pier_buf_init(f->in, 20);
  f->rop.data = &f->got;
  T_OK(pier_recv(f->peer, &f->rop, &b, 1, PIER_MSG_WAITALL, t_count_cb));
  t_run_until(f->loop, &f->got, 3000);
  ck_assert_uint_eq(f->rop.bytes, 20);
  ck_assert_mem_eq(f->in, "PIER", 4);
}

static void fake_send(fake *f, const void *p, size_t n) {
  pier_buf b = pier_buf_init((void *)p, n);
  f->sent = 0;
  f->sop.data = &f->sent;
  T_OK(pier_send(f->peer, &f->sop, &b, 1, 0, t_count_cb));
  t_run_until(f->loop, &f->sent, 3000);
}

static void fake_stop(fake *f) {
  T_OK(pier_close(f->c, NULL));
  if (f->peer) T_OK(pier_close(f->peer, NULL));
  T_OK(pier_close(f->l, NULL));
  t_loop_free(f->loop);
}

static void answer(uint8_t out[16], unsigned type, uint32_t len) {
  memset(out, 0, 16);
  memcpy(out, "PIER", 4);
  out[4] = 1;
  out[5] = (uint8_t)type;
  put32(out + 8, len);
}

START_TEST(garbage_answer_is_a_protocol_error) {
  fake f;
  fake_start(&f, "msg4", 5000, NULL);
  fake_send(&f, "HTTP/1.1 400 Bad Request\r\n\r\n", 28);
  t_run_until(f.loop, &f.connected, 3000);
  T_ERR(f.cop.status, PIER_EPROTO);
  fake_stop(&f);
}
END_TEST

START_TEST(answer_longer_than_the_room_is_refused) {
  uint8_t room[8];
  pier_connect_data cd = { "x", 1, room, sizeof room, 0 };
  fake f;
  fake_start(&f, "tcp4+cd", 5000, &cd);
  ck_assert_int_eq(f.in[15], 8); /* the room it announced */
  uint8_t a[16 + 9];
  answer(a, 2, 9);
  memset(a + 16, 'y', 9);
  fake_send(&f, a, sizeof a);
  t_run_until(f.loop, &f.connected, 3000);
  T_ERR(f.cop.status, PIER_EPROTO);
  ck_assert_uint_eq(cd.callee_len, 0);
  fake_stop(&f);
}
END_TEST

START_TEST(silent_listener_times_out) {
  fake f;
  fake_start(&f, "msg4", 300, NULL);
  t_run_until(f.loop, &f.connected, 3000);
  T_ERR(f.cop.status, PIER_ETIMEDOUT);
  fake_stop(&f);
}
END_TEST

START_TEST(listener_closing_mid_answer_aborts) {
  fake f;
  fake_start(&f, "msg4", 5000, NULL);
  uint8_t a[16];
  answer(a, 2, 0);
  fake_send(&f, a, 9); /* half an answer */
  T_OK(pier_close(f.peer, NULL));
  f.peer = NULL;
  t_run_until(f.loop, &f.connected, 3000);
  ck_assert_msg(f.cop.status == PIER_ECONNABORTED ||
                f.cop.status == PIER_ECONNRESET,
                "status %s", pier_err_name(f.cop.status));
  fake_stop(&f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. bad frames                                                       */
/* ------------------------------------------------------------------ */

/* After an accepted handshake the fake sends frame bytes; the caller's
   receive reports want. */
static void bad_frame(const uint8_t *frame, size_t n, int close_after,
                      int want) {
  fake f;
  fake_start(&f, "msg4", 5000, NULL);
  uint8_t a[16];
  answer(a, 2, 0);
  fake_send(&f, a, sizeof a);
  t_run_until(f.loop, &f.connected, 3000);
  T_OK(f.cop.status);
  fake_send(&f, frame, n);
  if (close_after) {
    T_OK(pier_close(f.peer, NULL));
    f.peer = NULL;
  }
  uint8_t buf[64];
  pier_buf b = pier_buf_init(buf, sizeof buf);
  pier_op op;
  memset(&op, 0, sizeof op);
  int done = 0;
  op.data = &done;
  T_OK(pier_recv(f.c, &op, &b, 1, 0, t_count_cb));
  t_run_until(f.loop, &done, 3000);
  T_ERR(op.status, want);
  fake_stop(&f);
}

START_TEST(bad_frames_are_errors) {
  static const uint8_t unknown_type[] = { 9, 0, 0, 0, 1, 'x' };
  static const uint8_t empty_msg[] = { 1, 0, 0, 0, 0 };
  static const uint8_t huge_disc[] = { 2, 0, 2, 0, 0 };
  static const uint8_t cut[] = { 1, 0, 0, 0, 10, 'a', 'b' };
  static const uint8_t after_disc[] = { 2, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'z' };
  switch (_i) {
  case 0: bad_frame(unknown_type, sizeof unknown_type, 0, PIER_EPROTO); break;
  case 1: bad_frame(empty_msg, sizeof empty_msg, 0, PIER_EPROTO); break;
  case 2: bad_frame(huge_disc, sizeof huge_disc, 0, PIER_EMSGSIZE); break;
  case 3: bad_frame(cut, sizeof cut, 1, PIER_ECONNABORTED); break;
  default: {
    /* Disconnect frame, then data: the end of stream comes first. */
    fake f;
    fake_start(&f, "msg4", 5000, NULL);
    uint8_t a[16];
    answer(a, 2, 0);
    fake_send(&f, a, sizeof a);
    t_run_until(f.loop, &f.connected, 3000);
    fake_send(&f, after_disc, sizeof after_disc);
    uint8_t buf[8];
    pier_buf b = pier_buf_init(buf, sizeof buf);
    pier_op op;
    memset(&op, 0, sizeof op);
    int done = 0;
    op.data = &done;
    T_OK(pier_recv(f.c, &op, &b, 1, 0, t_count_cb));
    t_run_until(f.loop, &done, 3000);
    T_OK(op.status);
    ck_assert_uint_eq(op.bytes, 0);
    fake_stop(&f);
  }
  }
}
END_TEST

Suite *suite_msgbad(void) {
  Suite *s = suite_create("msgbad");
  TCase *tc = tcase_create("msgbad");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, garbage_instead_of_a_request_is_dropped);
  tcase_add_test(tc, oversized_lengths_are_dropped);
  tcase_add_test(tc, wrong_version_gets_unsupported);
  tcase_add_test(tc, half_a_request_times_out_without_blocking_others);
  tcase_add_test(tc, many_silent_callers_are_bounded);
  tcase_add_test(tc, protocol_mismatch_is_refused);
  tcase_add_test(tc, garbage_answer_is_a_protocol_error);
  tcase_add_test(tc, answer_longer_than_the_room_is_refused);
  tcase_add_test(tc, silent_listener_times_out);
  tcase_add_test(tc, listener_closing_mid_answer_aborts);
  tcase_add_loop_test(tc, bad_frames_are_errors, 0, 5);
  suite_add_tcase(s, tc);
  return s;
}
