/* SPDX-License-Identifier: MIT */
/*
 * tests/test_udp.c - datagrams: pier_sendto / pier_recvfrom on udp4 and
 * udp6 over loopback, sender addresses, scatter/gather, truncation,
 * message boundaries, connected UDP with pier_send / pier_recv.
 *
 * Every test loops over udp4 and udp6 (_i).
 */
#include "helpers.h"
#include <string.h>

static const char *const protos[] = { "udp4", "udp6" };

typedef struct rec {
  int count, status;
  size_t bytes, addrlen;
  unsigned flags;
} rec;

static void rec_cb(pier_op *op, int status) {
  rec *r = op->data;
  r->count++;
  r->status = status;
  r->bytes = op->bytes;
  r->flags = op->flags;
  r->addrlen = op->addrlen;
}

typedef struct udp_end {
  pier_socket *s;
  struct sockaddr_storage addr;
  size_t len;
} udp_end;

/* A socket of protos[i] bound to loopback port 0; 0 if unavailable. */
static int udp_open(pier_loop *loop, int i, udp_end *e) {
  const pier_protocol_info *p = pier_protocol_find(protos[i]);
  if (!p) return 0;
  ck_assert_int_eq(p->socktype, SOCK_DGRAM);
  struct sockaddr_storage b;
  size_t blen;
  t_loopback(protos[i], &b, &blen);
  T_OK(pier_socket_open(loop, p, 0, &e->s));
  T_OK(pier_bind(e->s, (struct sockaddr *)&b, blen));
  e->len = sizeof e->addr;
  T_OK(pier_getsockname(e->s, &e->addr, &e->len));
  return 1;
}

static void sendto_wait(pier_loop *loop, udp_end *from, udp_end *to,
                        pier_buf *b, size_t n, size_t expect) {
  pier_op op;
  rec r;
  memset(&op, 0, sizeof op);
  memset(&r, 0, sizeof r);
  op.data = &r;
  T_OK(pier_sendto(from->s, &op, b, n, 0, (struct sockaddr *)&to->addr,
                   to->len, rec_cb));
  ck_assert_int_eq(r.count, 0);
  t_run_until(loop, &r.count, 3000);
  ck_assert_int_eq(r.count, 1);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, expect);
}

static void start_recvfrom(udp_end *e, pier_op *op, rec *r, pier_buf *b,
                           size_t n, struct sockaddr_storage *from) {
  memset(op, 0, sizeof *op);
  memset(r, 0, sizeof *r);
  op->data = r;
  if (from) memset(from, 0, sizeof *from);
  T_OK(pier_recvfrom(e->s, op, b, n, 0, from, rec_cb));
  ck_assert_int_eq(r->count, 0);
}

static void close2(pier_loop *loop, udp_end *a, udp_end *b) {
  T_OK(pier_close(a->s, NULL));
  T_OK(pier_close(b->s, NULL));
  t_loop_free(loop);
}

START_TEST(test_recvfrom_reports_sender_address) {
  pier_loop *loop = t_loop_new();
  udp_end a, b;
  if (!udp_open(loop, _i, &a)) { t_loop_free(loop); return; }
  ck_assert_int_eq(udp_open(loop, _i, &b), 1);

  char in[64], out[20];
  t_fill(out, sizeof out, 1, 0);
  pier_buf ib = pier_buf_init(in, sizeof in), ob = pier_buf_init(out, sizeof out);
  pier_op op;
  rec r;
  struct sockaddr_storage from;
  start_recvfrom(&b, &op, &r, &ib, 1, &from);
  sendto_wait(loop, &a, &b, &ob, 1, sizeof out);
  t_run_until(loop, &r.count, 3000);
  ck_assert_int_eq(r.count, 1);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, sizeof out);
  ck_assert_uint_eq(t_verify(in, sizeof out, 1, 0), (size_t)-1);
  ck_assert_uint_eq(r.addrlen, a.len);
  ck_assert_msg(t_addr_eq(T_SA(&from), 0, T_SA(&a.addr), 0),
                "recvfrom: sender address differs from the sender's "
                "getsockname (family %d vs %d)", from.ss_family,
                a.addr.ss_family);
  ck_assert_int_eq(r.flags & PIER_MSG_TRUNC, 0);

  /* and back the other way, with from == NULL allowed */
  start_recvfrom(&a, &op, &r, &ib, 1, NULL);
  sendto_wait(loop, &b, &a, &ob, 1, sizeof out);
  t_run_until(loop, &r.count, 3000);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, sizeof out);
  close2(loop, &a, &b);
}
END_TEST

START_TEST(test_scatter_recvfrom_gather_sendto_3_buffers) {
  pier_loop *loop = t_loop_new();
  udp_end a, b;
  if (!udp_open(loop, _i, &a)) { t_loop_free(loop); return; }
  ck_assert_int_eq(udp_open(loop, _i, &b), 1);

  /* gather: three pieces become one datagram of 30 bytes */
  char all[30];
  t_fill(all, sizeof all, 2, 0);
  pier_buf ob[3] = { pier_buf_init(all, 4), pier_buf_init(all + 4, 11),
                     pier_buf_init(all + 15, 15) };
  char x[5], y[10], z[100];
  memset(z, 0, sizeof z);
  pier_buf ib[3] = { pier_buf_init(x, sizeof x), pier_buf_init(y, sizeof y),
                     pier_buf_init(z, sizeof z) };
  pier_op op;
  rec r;
  struct sockaddr_storage from;
  start_recvfrom(&b, &op, &r, ib, 3, &from);
  sendto_wait(loop, &a, &b, ob, 3, 30);
  t_run_until(loop, &r.count, 3000);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, 30);
  ck_assert_uint_eq(t_verify(x, 5, 2, 0), (size_t)-1);
  ck_assert_uint_eq(t_verify(y, 10, 2, 5), (size_t)-1);
  ck_assert_uint_eq(t_verify(z, 15, 2, 15), (size_t)-1);
  ck_assert_int_eq(r.flags & PIER_MSG_TRUNC, 0);
  ck_assert(t_addr_eq(T_SA(&from), 0, T_SA(&a.addr), 0));
  close2(loop, &a, &b);
}
END_TEST

START_TEST(test_datagram_larger_than_buffers_sets_trunc) {
  pier_loop *loop = t_loop_new();
  udp_end a, b;
  if (!udp_open(loop, _i, &a)) { t_loop_free(loop); return; }
  ck_assert_int_eq(udp_open(loop, _i, &b), 1);
  char out[100];
  t_fill(out, sizeof out, 3, 0);
  pier_buf ob = pier_buf_init(out, sizeof out);
  char x[10], y[20], z[30];
  pier_buf ib[3] = { pier_buf_init(x, sizeof x), pier_buf_init(y, sizeof y),
                     pier_buf_init(z, sizeof z) };
  pier_op op;
  rec r;
  struct sockaddr_storage from;
  start_recvfrom(&b, &op, &r, ib, 3, &from);
  sendto_wait(loop, &a, &b, &ob, 1, sizeof out);
  t_run_until(loop, &r.count, 3000);
  ck_assert_int_eq(r.count, 1);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.bytes, 60);
  ck_assert_msg(r.flags & PIER_MSG_TRUNC, "op->flags 0x%x lacks PIER_MSG_TRUNC",
                r.flags);
  ck_assert_uint_eq(t_verify(x, 10, 3, 0), (size_t)-1);
  ck_assert_uint_eq(t_verify(y, 20, 3, 10), (size_t)-1);
  ck_assert_uint_eq(t_verify(z, 30, 3, 30), (size_t)-1);

  /* the rest is lost: the next datagram is a new one, without TRUNC */
  char out2[8];
  t_fill(out2, sizeof out2, 4, 0);
  pier_buf ob2 = pier_buf_init(out2, sizeof out2);
  char big[256];
  pier_buf bb = pier_buf_init(big, sizeof big);
  start_recvfrom(&b, &op, &r, &bb, 1, &from);
  sendto_wait(loop, &a, &b, &ob2, 1, sizeof out2);
  t_run_until(loop, &r.count, 3000);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, sizeof out2);
  ck_assert_uint_eq(t_verify(big, sizeof out2, 4, 0), (size_t)-1);
  ck_assert_int_eq(r.flags & PIER_MSG_TRUNC, 0);
  close2(loop, &a, &b);
}
END_TEST

START_TEST(test_two_datagrams_two_completions) {
  pier_loop *loop = t_loop_new();
  udp_end a, b;
  if (!udp_open(loop, _i, &a)) { t_loop_free(loop); return; }
  ck_assert_int_eq(udp_open(loop, _i, &b), 1);
  char d1[50], d2[70];
  t_fill(d1, sizeof d1, 5, 0);
  t_fill(d2, sizeof d2, 6, 0);
  pier_buf o1 = pier_buf_init(d1, sizeof d1), o2 = pier_buf_init(d2, sizeof d2);
  sendto_wait(loop, &a, &b, &o1, 1, sizeof d1);
  sendto_wait(loop, &a, &b, &o2, 1, sizeof d2);

  char i1[1000], i2[1000];
  pier_buf b1 = pier_buf_init(i1, sizeof i1), b2 = pier_buf_init(i2, sizeof i2);
  pier_op op1, op2;
  rec r1, r2;
  struct sockaddr_storage f1, f2;
  start_recvfrom(&b, &op1, &r1, &b1, 1, &f1);
  start_recvfrom(&b, &op2, &r2, &b2, 1, &f2);
  t_run_until(loop, &r2.count, 3000);
  t_run_until(loop, &r1.count, 3000);
  T_OK(r1.status);
  T_OK(r2.status);
  ck_assert_uint_eq(r1.bytes, sizeof d1);
  ck_assert_uint_eq(r2.bytes, sizeof d2);
  ck_assert_uint_eq(t_verify(i1, sizeof d1, 5, 0), (size_t)-1);
  ck_assert_uint_eq(t_verify(i2, sizeof d2, 6, 0), (size_t)-1);
  ck_assert(t_addr_eq(T_SA(&f1), 0, T_SA(&a.addr), 0));
  ck_assert(t_addr_eq(T_SA(&f2), 0, T_SA(&a.addr), 0));
  close2(loop, &a, &b);
}
END_TEST

static void connect_wait(pier_loop *loop, udp_end *e, udp_end *to) {
  pier_op op;
  rec r;
  memset(&op, 0, sizeof op);
  memset(&r, 0, sizeof r);
  op.data = &r;
  T_OK(pier_connect(e->s, &op, (struct sockaddr *)&to->addr, to->len, NULL,
                    NULL, rec_cb));
  t_run_until(loop, &r.count, 3000);
  ck_assert_int_eq(r.count, 1);
  T_OK(r.status);
}

START_TEST(test_connected_udp_send_recv) {
  pier_loop *loop = t_loop_new();
  udp_end a, b;
  if (!udp_open(loop, _i, &a)) { t_loop_free(loop); return; }
  ck_assert_int_eq(udp_open(loop, _i, &b), 1);
  connect_wait(loop, &a, &b);
  connect_wait(loop, &b, &a);

  struct sockaddr_storage peer;
  size_t plen = sizeof peer;
  T_OK(pier_getpeername(a.s, &peer, &plen));
  ck_assert(t_addr_eq(T_SA(&peer), 0, T_SA(&b.addr), 0));

  for (int dir = 0; dir < 2; dir++) {
    udp_end *from = dir ? &b : &a, *to = dir ? &a : &b;
    char out[33], in[64];
    t_fill(out, sizeof out, 10 + (uint64_t)dir, 0);
    pier_buf ob = pier_buf_init(out, sizeof out), ib = pier_buf_init(in, sizeof in);
    pier_op sop, rop;
    rec sr, rr;
    memset(&sop, 0, sizeof sop);
    memset(&rop, 0, sizeof rop);
    memset(&sr, 0, sizeof sr);
    memset(&rr, 0, sizeof rr);
    sop.data = &sr;
    rop.data = &rr;
    T_OK(pier_recv(to->s, &rop, &ib, 1, 0, rec_cb));
    T_OK(pier_send(from->s, &sop, &ob, 1, 0, rec_cb));
    t_run_until(loop, &sr.count, 3000);
    t_run_until(loop, &rr.count, 3000);
    T_OK(sr.status);
    ck_assert_uint_eq(sr.bytes, sizeof out);
    T_OK(rr.status);
    ck_assert_uint_eq(rr.bytes, sizeof out);
    ck_assert_uint_eq(t_verify(in, sizeof out, 10 + (uint64_t)dir, 0),
                      (size_t)-1);
  }
  close2(loop, &a, &b);
}
END_TEST

Suite *suite_udp(void) {
  Suite *s = suite_create("udp");
  TCase *tc = tcase_create("datagrams");
  tcase_set_timeout(tc, 15);
  tcase_add_loop_test(tc, test_recvfrom_reports_sender_address, 0, 2);
  tcase_add_loop_test(tc, test_scatter_recvfrom_gather_sendto_3_buffers, 0, 2);
  tcase_add_loop_test(tc, test_datagram_larger_than_buffers_sets_trunc, 0, 2);
  tcase_add_loop_test(tc, test_two_datagrams_two_completions, 0, 2);
  suite_add_tcase(s, tc);
  tc = tcase_create("connected");
  tcase_set_timeout(tc, 15);
  tcase_add_loop_test(tc, test_connected_udp_send_recv, 0, 2);
  suite_add_tcase(s, tc);
  return s;
}
