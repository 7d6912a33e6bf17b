/* SPDX-License-Identifier: MIT */
/*
 * tests/test_qos.c - traffic classes by name and applied to sockets
 * (pier_qos_by_name, pier_set_qos, pier_get_qos, pier_connect's qos,
 * inheritance by accepted sockets), and on Linux the DSCP seen on the
 * wire by a receiver asking for IP_RECVTOS.  Where the OS does not let a
 * program set the DSCP (Windows, Wine), pier must say PIER_ENOPROTOOPT
 * and change nothing, as include/pier.h documents.
 */
#include "helpers.h"

#include <string.h>

#ifndef _WIN32
#  include <netinet/in.h>
#  include <sys/socket.h>
#  include <sys/uio.h>
#endif

static const struct { const char *name; int dscp; } rfc4594[] = {
  { "best-effort", 0 }, { "background", 8 }, { "bulk", 10 }, { "oam", 16 },
  { "low-latency", 18 }, { "broadcast-video", 24 }, { "streaming", 26 },
  { "realtime", 32 }, { "video", 34 }, { "signaling", 40 }, { "voice", 46 },
  { "control", 48 },
};
#define NCLASSES (int)(sizeof rfc4594 / sizeof rfc4594[0])

static const char *const socket_protos[] = { "tcp4", "tcp6", "udp4", "udp6" };

/* Whether pier can apply a DSCP on this kind of socket here. */
static int dscp_settable(const pier_protocol_info *p) {
  return t_os_has_option(p->family, p->socktype, PIER_SO_TOS);
}

START_TEST(names_map_to_rfc4594_dscps) {
  for (int i = 0; i < NCLASSES; i++) {
    pier_qos q = { -7, -7 };
    T_OK(pier_qos_by_name(rfc4594[i].name, &q));
    ck_assert_int_eq(q.dscp, rfc4594[i].dscp);
    ck_assert_int_ge(q.priority, 0);
    ck_assert_int_le(q.priority, 7);
  }
  const char *names[32];
  size_t n = pier_qos_names(names, 32);
  ck_assert_uint_eq(n, (size_t)NCLASSES);
  for (size_t i = 0; i < n; i++) {
    pier_qos q;
    T_OK(pier_qos_by_name(names[i], &q));
  }
  /* The priorities never go down as the classes get more urgent. */
  pier_qos bg, voice;
  T_OK(pier_qos_by_name("background", &bg));
  T_OK(pier_qos_by_name("voice", &voice));
  ck_assert_int_lt(bg.priority, voice.priority);
}
END_TEST

START_TEST(unknown_or_null_names_are_refused) {
  pier_qos q = { 5, 5 };
  T_ERR(pier_qos_by_name("gold", &q), PIER_ENOENT);
  T_ERR(pier_qos_by_name("", &q), PIER_ENOENT);
  T_ERR(pier_qos_by_name(NULL, &q), PIER_EINVAL);
  T_ERR(pier_qos_by_name("voice", NULL), PIER_EINVAL);
  ck_assert_int_eq(q.dscp, 5); /* untouched */
}
END_TEST

/* Set each class on each kind of socket and read it back. */
START_TEST(set_then_get_on_every_socket_kind) {
  const pier_protocol_info *p = pier_protocol_find(socket_protos[_i]);
  ck_assert_ptr_nonnull(p);
  pier_loop *loop = t_loop_new();
  pier_socket *s;
  T_OK(pier_socket_open(loop, p, 0, &s));
  pier_qos before, after;
  T_OK(pier_get_qos(s, &before));
  for (int i = 0; i < NCLASSES; i++) {
    pier_qos q;
    T_OK(pier_qos_by_name(rfc4594[i].name, &q));
    int rc = pier_set_qos(s, &q);
    if (!dscp_settable(p)) {
      T_ERR(rc, PIER_ENOPROTOOPT);
      T_OK(pier_get_qos(s, &after));
      ck_assert_int_eq(after.dscp, before.dscp); /* nothing changed */
      continue;
    }
    T_OK(rc);
    T_OK(pier_get_qos(s, &after));
    ck_assert_msg(after.dscp == q.dscp, "%s on %s: dscp %d, want %d",
                  rfc4594[i].name, p->name, after.dscp, q.dscp);
    int tos = -1;
    T_OK(pier_getsockopt(s, PIER_SO_TOS, &tos));
    ck_assert_int_eq(tos, q.dscp << 2); /* ECN bits clear */
    ck_assert(after.priority == q.priority || after.priority == -1);
  }
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

START_TEST(out_of_range_values_are_refused) {
  pier_loop *loop = t_loop_new();
  pier_socket *s;
  T_OK(pier_socket_open(loop, pier_protocol_find("udp4"), 0, &s));
  static const pier_qos bad[] = { { 64, 0 }, { -2, 0 }, { 10, 8 }, { 10, -2 } };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    T_ERR(pier_set_qos(s, &bad[i]), PIER_EINVAL);
  T_ERR(pier_set_qos(s, NULL), PIER_EINVAL);
  T_ERR(pier_get_qos(s, NULL), PIER_EINVAL);
  T_ERR(pier_set_qos(NULL, &bad[0]), PIER_EINVAL);
  /* dscp -1 and priority -1 leave each part alone */
  pier_qos none = { -1, -1 };
  T_OK(pier_set_qos(s, &none));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

static void count_cb(pier_op *op, int status) {
  int *n = op->data;
  ck_assert_int_eq(status, 0);
  (*n)++;
}

/* pier_connect(qos) applies it; the accepted side inherits the listener's. */
START_TEST(connect_applies_and_accept_inherits) {
  const pier_protocol_info *p = pier_protocol_find("tcp4");
  if (!dscp_settable(p)) {
    /* The connect must then fail at once, starting nothing. */
    pier_loop *loop = t_loop_new();
    pier_socket *c;
    struct sockaddr_storage la;
    size_t llen;
    pier_socket *l = t_listener(loop, "tcp4", &la, &llen);
    T_OK(pier_socket_open(loop, p, 0, &c));
    pier_qos voice;
    T_OK(pier_qos_by_name("voice", &voice));
    pier_op op;
    memset(&op, 0, sizeof op);
    T_ERR(pier_connect(c, &op, (struct sockaddr *)&la, llen, NULL, &voice,
                       count_cb), PIER_ENOPROTOOPT);
    T_ERR(pier_cancel(&op), PIER_ENOENT); /* nothing was started */
    T_OK(pier_close(c, NULL));
    T_OK(pier_close(l, NULL));
    t_loop_free(loop);
    return;
  }
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la;
  size_t llen;
  pier_socket *l = t_listener(loop, "tcp4", &la, &llen), *c;
  pier_qos bulk, video, got;
  T_OK(pier_qos_by_name("bulk", &bulk));
  T_OK(pier_qos_by_name("video", &video));
  T_OK(pier_set_qos(l, &bulk));
  T_OK(pier_socket_open(loop, p, 0, &c));
  pier_op aop, cop;
  int n = 0;
  memset(&aop, 0, sizeof aop);
  memset(&cop, 0, sizeof cop);
  aop.data = cop.data = &n;
  T_OK(pier_accept(l, &aop, NULL, NULL, count_cb));
  T_OK(pier_connect(c, &cop, (struct sockaddr *)&la, llen, NULL, &video,
                    count_cb));
  t_run_until_count(loop, &n, 2, 3000);
  T_OK(pier_get_qos(c, &got));
  ck_assert_int_eq(got.dscp, video.dscp);
  T_OK(pier_get_qos(aop.accepted, &got));
  ck_assert_int_eq(got.dscp, bulk.dscp);
  T_OK(pier_close(aop.accepted, NULL));
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(l, NULL));
  t_loop_free(loop);
}
END_TEST

#if !defined(_WIN32) && defined(IP_RECVTOS)
static void sent_cb(pier_op *op, int status) {
  ck_assert_int_eq(status, 0);
  (*(int *)op->data)++;
}

/* On the wire: a receiver asking for IP_RECVTOS sees the class's DSCP. */
START_TEST(datagrams_carry_the_dscp_on_the_wire) {
  pier_loop *loop = t_loop_new();
  int rx = socket(AF_INET, SOCK_DGRAM, 0);
  ck_assert_int_ge(rx, 0);
  struct sockaddr_storage ra;
  size_t rlen;
  t_loopback("udp4", &ra, &rlen);
  ck_assert_int_eq(bind(rx, (struct sockaddr *)&ra, (socklen_t)rlen), 0);
  socklen_t sl = sizeof ra;
  ck_assert_int_eq(getsockname(rx, (struct sockaddr *)&ra, &sl), 0);
  int on = 1;
  ck_assert_int_eq(setsockopt(rx, IPPROTO_IP, IP_RECVTOS, &on, sizeof on), 0);
  t_os_set_rcvtimeo(rx, 3000);

  pier_socket *tx;
  T_OK(pier_socket_open(loop, pier_protocol_find("udp4"), 0, &tx));
  pier_qos voice;
  T_OK(pier_qos_by_name("voice", &voice));
  T_OK(pier_set_qos(tx, &voice));
  char msg[] = "ef";
  pier_buf b = pier_buf_init(msg, sizeof msg);
  pier_op op;
  int sent = 0;
  memset(&op, 0, sizeof op);
  op.data = &sent;
  T_OK(pier_sendto(tx, &op, &b, 1, 0, (struct sockaddr *)&ra, sl, sent_cb));
  t_run_until(loop, &sent, 3000);

  char buf[16], ctl[128];
  struct iovec iov = { buf, sizeof buf };
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  ck_assert_int_eq(recvmsg(rx, &mh, 0), (int)sizeof msg);
  int tos = -1;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
    if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TOS)
      tos = *(unsigned char *)CMSG_DATA(cm);
  ck_assert_int_eq(tos, voice.dscp << 2); /* 0xb8: EF */
  t_os_close(rx);
  T_OK(pier_close(tx, NULL));
  t_loop_free(loop);
}
END_TEST
#endif

Suite *suite_qos(void) {
  Suite *s = suite_create("qos");
  TCase *tc = tcase_create("names");
  tcase_add_test(tc, names_map_to_rfc4594_dscps);
  tcase_add_test(tc, unknown_or_null_names_are_refused);
  suite_add_tcase(s, tc);

  tc = tcase_create("sockets");
  tcase_set_timeout(tc, 10);
  tcase_add_loop_test(tc, set_then_get_on_every_socket_kind, 0, 4);
  tcase_add_test(tc, out_of_range_values_are_refused);
  tcase_add_test(tc, connect_applies_and_accept_inherits);
#if !defined(_WIN32) && defined(IP_RECVTOS)
  tcase_add_test(tc, datagrams_carry_the_dscp_on_the_wire);
#endif
  suite_add_tcase(s, tc);
  return s;
}
