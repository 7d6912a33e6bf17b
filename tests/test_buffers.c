/* SPDX-License-Identifier: MIT */
/*
 * tests/test_buffers.c - bad buffers and sizes are refused at the call,
 * with nothing started, the same way on every protocol (tcp4, msg4,
 * udp4) and provider:
 *   - a pier_buf with a NULL base and a non-zero length: PIER_EINVAL;
 *   - a receive into buffers of 0 bytes in all: PIER_EINVAL;
 *   - a datagram of more than PIER_DGRAM_MAX_BUFS buffers: PIER_EMSGSIZE,
 *     nothing sent (never a truncated datagram);
 *   - a pier_connect whose QoS was applied but which could not start
 *     leaves the socket's QoS as it was;
 *   - pier_strerror(0) and pier_err_name(0) speak of success.
 * The TLS layer's share of the same rules is in tests/test_tls.c.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

static const char *const stream_protos[] = { "tcp4", "msg4" };

typedef struct pair {
  pier_loop *loop;
  pier_socket *c, *s;
} pair;

static void pair_open(pair *p, const char *proto) {
  p->loop = t_loop_new();
  t_pair(p->loop, proto, &p->c, &p->s);
}

static void pair_close(pair *p) {
  T_OK(pier_close(p->c, NULL));
  T_OK(pier_close(p->s, NULL));
  t_loop_free(p->loop);
}

/* The op was left idle and the pair still carries data: a real exchange. */
static void pair_still_works(pair *p, pier_op *op) {
  char out[] = "still", in[16];
  pier_buf ob = pier_buf_init(out, sizeof out);
  pier_buf ib = pier_buf_init(in, sizeof in);
  pier_op sop;
  int done = 0;
  memset(&sop, 0, sizeof sop);
  sop.data = &done;
  op->data = &done;
  T_OK(pier_recv(p->s, op, &ib, 1, 0, t_count_cb));
  T_OK(pier_send(p->c, &sop, &ob, 1, 0, t_count_cb));
  t_run_until_count(p->loop, &done, 2, 5000);
  T_OK(op->status);
  T_OK(sop.status);
  ck_assert_uint_eq(op->bytes, sizeof out);
  ck_assert_mem_eq(in, out, sizeof out);
}

START_TEST(null_base_with_a_length_is_einval_at_the_call) {
  pair p;
  pair_open(&p, stream_protos[_i]);
  char real[8];
  pier_buf bad[2] = { pier_buf_init(real, sizeof real),
                      pier_buf_init(NULL, 5) };
  pier_op op;
  memset(&op, 0, sizeof op);
  T_ERR(pier_recv(p.s, &op, bad, 2, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_send(p.c, &op, bad, 2, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_send(p.c, &op, &bad[1], 1, 0, t_count_cb), PIER_EINVAL);
  pair_still_works(&p, &op);
  pair_close(&p);
}
END_TEST

START_TEST(zero_length_receive_is_einval_on_every_stream_protocol) {
  pair p;
  pair_open(&p, stream_protos[_i]);
  char none[1];
  pier_buf zero[2] = { pier_buf_init(none, 0), pier_buf_init(NULL, 0) };
  pier_op op;
  memset(&op, 0, sizeof op);
  T_ERR(pier_recv(p.s, &op, zero, 1, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_recv(p.s, &op, zero, 2, 0, t_count_cb), PIER_EINVAL);
  T_ERR(pier_recv(p.s, &op, zero, 2, PIER_MSG_PEEK, t_count_cb), PIER_EINVAL);
  pair_still_works(&p, &op);
  pair_close(&p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* datagrams                                                           */
/* ------------------------------------------------------------------ */

typedef struct udp {
  pier_loop *loop;
  pier_socket *rx, *tx;
  struct sockaddr_storage to;
  size_t tolen;
} udp;

static void udp_open(udp *u) {
  u->loop = t_loop_new();
  const pier_protocol_info *p = pier_protocol_find("udp4");
  struct sockaddr_storage b;
  size_t blen;
  t_loopback("udp4", &b, &blen);
  T_OK(pier_socket_open(u->loop, p, 0, &u->rx));
  T_OK(pier_bind(u->rx, T_SA(&b), blen));
  u->tolen = sizeof u->to;
  T_OK(pier_getsockname(u->rx, &u->to, &u->tolen));
  T_OK(pier_socket_open(u->loop, p, 0, &u->tx));
}

static void udp_close(udp *u) {
  T_OK(pier_close(u->rx, NULL));
  T_OK(pier_close(u->tx, NULL));
  t_loop_free(u->loop);
}

START_TEST(datagram_of_too_many_buffers_is_emsgsize_and_nothing_sent) {
  udp u;
  udp_open(&u);
  size_t n = PIER_DGRAM_MAX_BUFS + 976; /* 2000, as the hostile test had */
  pier_buf *bufs = calloc(n, sizeof *bufs);
  char *bytes = malloc(n);
  ck_assert_ptr_nonnull(bufs);
  ck_assert_ptr_nonnull(bytes);
  for (size_t i = 0; i < n; i++) {
    bytes[i] = (char)('a' + i % 26);
    bufs[i] = pier_buf_init(bytes + i, 1);
  }
  pier_op op;
  int done = 0;
  memset(&op, 0, sizeof op);
  op.data = &done;
  T_ERR(pier_sendto(u.tx, &op, bufs, n, 0, T_SA(&u.to), u.tolen, t_count_cb),
        PIER_EMSGSIZE);
  /* At the limit the datagram goes whole. */
  size_t max = PIER_DGRAM_MAX_BUFS;
  T_OK(pier_sendto(u.tx, &op, bufs, max, 0, T_SA(&u.to), u.tolen, t_count_cb));
  char *in = malloc(n);
  pier_buf ib = pier_buf_init(in, n);
  pier_op rop;
  memset(&rop, 0, sizeof rop);
  rop.data = &done;
  T_OK(pier_recvfrom(u.rx, &rop, &ib, 1, 0, NULL, t_count_cb));
  t_run_until_count(u.loop, &done, 2, 5000);
  T_OK(op.status);
  ck_assert_uint_eq(op.bytes, max);
  T_OK(rop.status);
  ck_assert_uint_eq(rop.bytes, max); /* the refused datagram never came */
  ck_assert_mem_eq(in, bytes, max);
  free(in);
  free(bytes);
  free(bufs);
  udp_close(&u);
}
END_TEST

START_TEST(zero_length_receive_is_einval_on_a_datagram_socket) {
  udp u;
  udp_open(&u);
  char none[1];
  pier_buf zero = pier_buf_init(none, 0);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_ERR(pier_recvfrom(u.rx, &op, &zero, 1, 0, NULL, t_count_cb), PIER_EINVAL);
  T_ERR(pier_recv(u.rx, &op, &zero, 1, 0, t_count_cb), PIER_EINVAL);
  /* An empty datagram may still be sent, and arrives as one. */
  int done = 0;
  char in[4];
  pier_buf ib = pier_buf_init(in, sizeof in);
  pier_op sop;
  memset(&sop, 0, sizeof sop);
  sop.data = op.data = &done;
  T_OK(pier_recvfrom(u.rx, &op, &ib, 1, 0, NULL, t_count_cb));
  T_OK(pier_sendto(u.tx, &sop, &zero, 1, 0, T_SA(&u.to), u.tolen, t_count_cb));
  t_run_until_count(u.loop, &done, 2, 5000);
  T_OK(sop.status);
  T_OK(op.status);
  ck_assert_uint_eq(op.bytes, 0);
  udp_close(&u);
}
END_TEST

/* ------------------------------------------------------------------ */
/* a connect that does not start leaves the QoS as it was              */
/* ------------------------------------------------------------------ */

START_TEST(connect_that_cannot_start_keeps_the_old_qos) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *sv, *s;
  t_pair(loop, "tcp4", &c, &sv);
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  pier_qos before, after, voice;
  T_OK(pier_get_qos(s, &before));
  T_OK(pier_qos_by_name("voice", &voice));
  pier_op op;
  int done = 0;
  memset(&op, 0, sizeof op);
  op.data = &done;
  /* An IPv6 address for an IPv4 socket: refused at the call. */
  struct sockaddr_storage a6;
  size_t a6len;
  t_loopback("tcp6", &a6, &a6len);
  T_ERR(pier_connect(s, &op, T_SA(&a6), a6len, NULL, &voice, t_count_cb),
        PIER_EAFNOSUPPORT);
  T_OK(pier_get_qos(s, &after));
  ck_assert_int_eq(after.dscp, before.dscp);
  ck_assert_int_eq(after.priority, before.priority);
  /* A blocking connect to a port where nobody listens fails as a whole. */
  struct sockaddr_storage gone;
  size_t gonelen;
  pier_socket *l = t_listener(loop, "tcp4", &gone, &gonelen);
  T_OK(pier_close(l, NULL));
  for (int i = 0; i < 10; i++) pier_loop_run(loop, PIER_RUN_NOWAIT);
  int rc = pier_connect(s, &op, T_SA(&gone), gonelen, NULL, &voice, NULL);
  ck_assert_msg(rc < 0, "connect to a closed port gave %s", pier_err_name(rc));
  T_OK(pier_get_qos(s, &after));
  ck_assert_int_eq(after.dscp, before.dscp);
  ck_assert_int_eq(after.priority, before.priority);
  ck_assert_int_eq(done, 0); /* nothing started, nothing to complete */
  T_OK(pier_close(s, NULL));
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(sv, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(strerror_of_zero_says_success) {
  ck_assert_str_eq(pier_strerror(0), "success");
  ck_assert_str_eq(pier_err_name(0), "OK");
  ck_assert_str_eq(pier_err_name(PIER_EINVAL), "EINVAL");
}
END_TEST

Suite *suite_buffers(void) {
  Suite *s = suite_create("buffers");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, null_base_with_a_length_is_einval_at_the_call, 0, 2);
  tcase_add_loop_test(tc, zero_length_receive_is_einval_on_every_stream_protocol,
                      0, 2);
  tcase_add_test(tc, datagram_of_too_many_buffers_is_emsgsize_and_nothing_sent);
  tcase_add_test(tc, zero_length_receive_is_einval_on_a_datagram_socket);
  tcase_add_test(tc, connect_that_cannot_start_keeps_the_old_qos);
  tcase_add_test(tc, strerror_of_zero_says_success);
  suite_add_tcase(s, tc);
  return s;
}
