/* SPDX-License-Identifier: MIT */
/*
 * tests/test_socket.c - socket basics: bind/listen/getsockname on IPv4,
 * IPv6, dual-stack and AF_UNIX; getpeername against the other side;
 * pier_socket_adopt of socket() handles and of OS-accepted ones;
 * shutdown(WR) seen as end of stream; close callback once and
 * PIER_EALREADY on a second close; pier_ioctl FIONREAD and FIONBIO.
 */
#include "helpers.h"

#include <stdio.h>
#include <string.h>
#ifndef _WIN32
/* Only the AF_UNIX test, which Windows does not run (see suite_socket). */
#  include <sys/un.h>
#  include <unistd.h>
#endif

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static unsigned port_of(const struct sockaddr_storage *a) {
  if (a->ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)a)->sin_port);
  return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

/* Same family, address and port (IPv4 / IPv6). */
static void assert_same_addr(const struct sockaddr_storage *a,
                             const struct sockaddr_storage *b) {
  ck_assert_int_eq(a->ss_family, b->ss_family);
  ck_assert_uint_eq(port_of(a), port_of(b));
  if (a->ss_family == AF_INET) {
    ck_assert_uint_eq(((const struct sockaddr_in *)a)->sin_addr.s_addr,
                      ((const struct sockaddr_in *)b)->sin_addr.s_addr);
  } else {
    ck_assert_int_eq(memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                            &((const struct sockaddr_in6 *)b)->sin6_addr, 16),
                     0);
  }
}

static void close_count_cb(pier_socket *s) {
  (*(int *)pier_socket_get_data(s))++;
}

static void close_wait(pier_loop *loop, pier_socket *s) {
  int closed = 0;
  pier_socket_set_data(s, &closed);
  T_OK(pier_close(s, close_count_cb));
  t_run_until(loop, &closed, 2000);
}

/* Overlapped receive into buf; returns bytes, status in *status. */
static size_t recv_wait(pier_loop *loop, pier_socket *s, void *buf, size_t cap,
                        int *status) {
  pier_op op;
  int done = 0;
  pier_buf b = pier_buf_init(buf, cap);
  memset(&op, 0, sizeof op);
  op.data = &done;
  T_OK(pier_recv(s, &op, &b, 1, 0, t_count_cb));
  t_run_until(loop, &done, 3000);
  *status = op.status;
  return op.bytes;
}

static void send_wait(pier_loop *loop, pier_socket *s, const void *buf,
                      size_t len) {
  pier_op op;
  int done = 0;
  pier_buf b = pier_buf_init((void *)buf, len);
  memset(&op, 0, sizeof op);
  op.data = &done;
  T_OK(pier_send(s, &op, &b, 1, 0, t_count_cb));
  t_run_until(loop, &done, 3000);
  T_OK(op.status);
  ck_assert_uint_eq(op.bytes, len);
}

/* Accept one connection on l (overlapped, accept-all). */
static pier_socket *accept_wait(pier_loop *loop, pier_socket *l) {
  pier_op op;
  int done = 0;
  memset(&op, 0, sizeof op);
  op.data = &done;
  T_OK(pier_accept(l, &op, NULL, NULL, t_count_cb));
  t_run_until(loop, &done, 3000);
  T_OK(op.status);
  ck_assert_ptr_nonnull(op.accepted);
  return op.accepted;
}

/* Bound a plain recv() on an OS socket to 2 s. */
static void os_recv_timeout(pier_os_socket h) {
  ck_assert_msg(t_os_set_rcvtimeo(h, 2000) == 0, "SO_RCVTIMEO: %s",
                t_os_strerror(t_os_errno()));
}

/* ------------------------------------------------------------------ */
/* bind, listen, names                                                 */
/* ------------------------------------------------------------------ */

/* A listener on proto accepts an OS client whose name it reports. */
static void listen_and_accept_os_client(const char *proto) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage la, ca, peer;
  size_t llen, plen = sizeof peer;
  socklen_t clen = sizeof ca;
  pier_socket *l = t_listener(loop, proto, &la, &llen);
  pier_os_socket c = t_os_connect(&la, llen);
  pier_socket *s = accept_wait(loop, l);
  ck_assert_int_eq(getsockname(c, (struct sockaddr *)&ca, &clen), 0);
  T_OK(pier_getpeername(s, &peer, &plen));
  ck_assert_uint_eq(plen, clen);
  assert_same_addr(&peer, &ca);
  t_os_close(c);
  close_wait(loop, s);
  close_wait(loop, l);
  t_loop_free(loop);
}

START_TEST(bind_listen_getsockname_ipv4) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage a;
  size_t len;
  pier_socket *l = t_listener(loop, "tcp4", &a, &len);
  const struct sockaddr_in *sin = (const struct sockaddr_in *)&a;
  ck_assert_int_eq(a.ss_family, AF_INET);
  ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
  ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
  ck_assert_uint_ne(port_of(&a), 0);
  close_wait(loop, l);
  t_loop_free(loop);
  listen_and_accept_os_client("tcp4");
}
END_TEST

START_TEST(bind_listen_getsockname_ipv6) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_storage a;
  size_t len;
  pier_socket *l = t_listener(loop, "tcp6", &a, &len);
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a;
  ck_assert_int_eq(a.ss_family, AF_INET6);
  ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
  ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
  ck_assert_uint_ne(port_of(&a), 0);
  close_wait(loop, l);
  t_loop_free(loop);
  listen_and_accept_os_client("tcp6");
}
END_TEST

START_TEST(dual_stack_tcp6_accepts_ipv4_client) {
  pier_loop *loop = t_loop_new();
  pier_socket *l = NULL, *s;
  struct sockaddr_in6 b6;
  struct sockaddr_storage la, v4, peer, ca;
  size_t llen = sizeof la, plen = sizeof peer;
  socklen_t clen = sizeof ca;
  int v6only = -1;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp6"), 0, &l));
  T_OK(pier_setsockopt(l, PIER_SO_V6ONLY, 0));
  T_OK(pier_getsockopt(l, PIER_SO_V6ONLY, &v6only));
  ck_assert_int_eq(v6only, 0);
  /* ::ffff:127.0.0.1 - dual-stack, yet loopback only */
  memset(&b6, 0, sizeof b6);
  b6.sin6_family = AF_INET6;
  ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:127.0.0.1", &b6.sin6_addr), 1);
  T_OK(pier_bind(l, (struct sockaddr *)&b6, sizeof b6));
  T_OK(pier_listen(l, 16));
  T_OK(pier_getsockname(l, &la, &llen));
  memset(&v4, 0, sizeof v4);
  ((struct sockaddr_in *)&v4)->sin_family = AF_INET;
  ((struct sockaddr_in *)&v4)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ((struct sockaddr_in *)&v4)->sin_port = htons((uint16_t)port_of(&la));
  pier_os_socket c = t_os_connect(&v4, sizeof(struct sockaddr_in));
  s = accept_wait(loop, l);
  ck_assert_int_eq(getsockname(c, (struct sockaddr *)&ca, &clen), 0);
  T_OK(pier_getpeername(s, &peer, &plen));
  ck_assert_uint_eq(port_of(&peer), port_of(&ca));
  if (peer.ss_family == AF_INET6) {
    const struct in6_addr *p6 = &((struct sockaddr_in6 *)&peer)->sin6_addr;
    ck_assert(IN6_IS_ADDR_V4MAPPED(p6));
    ck_assert_int_eq(memcmp(&p6->s6_addr[12], "\x7f\0\0\x01", 4), 0);
  } else {
    assert_same_addr(&peer, &ca);
  }
  t_os_close(c);
  close_wait(loop, s);
  close_wait(loop, l);
  t_loop_free(loop);
}
END_TEST

/* POSIX only: the Windows catalog has no "local" entry (see suite_socket). */
#ifndef _WIN32
START_TEST(af_unix_bind_listen_getsockname_and_accept) {
  pier_loop *loop = t_loop_new();
  pier_socket *l = NULL, *s;
  struct sockaddr_un sun;
  struct sockaddr_storage a;
  size_t len = sizeof a;
  pier_os_socket c;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof sun.sun_path, "/tmp/pier-test-%ld.sock",
           (long)getpid());
  unlink(sun.sun_path);
  T_OK(pier_socket_open(loop, pier_protocol_find("local"), 0, &l));
  T_OK(pier_bind(l, (struct sockaddr *)&sun, sizeof sun));
  T_OK(pier_listen(l, 8));
  T_OK(pier_getsockname(l, &a, &len));
  ck_assert_int_eq(a.ss_family, AF_UNIX);
  ck_assert_str_eq(((struct sockaddr_un *)&a)->sun_path, sun.sun_path);
  c = t_os_connect(&a, len);
  os_recv_timeout(c);
  s = accept_wait(loop, l);
  ck_assert_ptr_eq(pier_socket_protocol(s), pier_protocol_find("local"));
  send_wait(loop, s, "unix", 4);
  {
    char buf[8];
    ck_assert_int_eq((int)t_os_recv(c, buf, sizeof buf), 4);
    ck_assert_int_eq(memcmp(buf, "unix", 4), 0);
  }
  t_os_close(c);
  close_wait(loop, s);
  close_wait(loop, l);
  unlink(sun.sun_path);
  t_loop_free(loop);
}
END_TEST
#endif

static const char *const pair_protos[] = {"tcp4", "tcp6"};

START_TEST(getpeername_matches_the_other_sides_sockname) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  struct sockaddr_storage cn, cp, sn, sp;
  size_t l1 = sizeof cn, l2 = sizeof cp, l3 = sizeof sn, l4 = sizeof sp;
  t_pair(loop, pair_protos[_i], &c, &s);
  T_OK(pier_getsockname(c, &cn, &l1));
  T_OK(pier_getpeername(c, &cp, &l2));
  T_OK(pier_getsockname(s, &sn, &l3));
  T_OK(pier_getpeername(s, &sp, &l4));
  ck_assert_uint_eq(l1, l4);
  ck_assert_uint_eq(l2, l3);
  assert_same_addr(&cn, &sp);
  assert_same_addr(&cp, &sn);
  close_wait(loop, c);
  close_wait(loop, s);
  t_loop_free(loop);
}
END_TEST

START_TEST(getpeername_on_unconnected_socket_gives_enotconn) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  struct sockaddr_storage a;
  size_t len = sizeof a;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  T_ERR(pier_getpeername(s, &a, &len), PIER_ENOTCONN);
  close_wait(loop, s);
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* adopt                                                               */
/* ------------------------------------------------------------------ */

typedef struct adopt_case { const char *name; int family, type; } adopt_case;
static const adopt_case adopt_cases[] = {
  {"tcp4", AF_INET, SOCK_STREAM},
  {"tcp6", AF_INET6, SOCK_STREAM},
  {"udp4", AF_INET, SOCK_DGRAM},
  {"udp6", AF_INET6, SOCK_DGRAM},
};

START_TEST(adopt_finds_catalog_entry_and_closes_handle) {
  const adopt_case *ac = &adopt_cases[_i];
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  struct sockaddr_storage a, got;
  size_t len, glen = sizeof got;
  pier_os_socket h = socket(ac->family, ac->type, 0);
  ck_assert(h != PIER_INVALID_SOCKET);
  T_OK(pier_socket_adopt(loop, h, 0, &s));
  ck_assert_ptr_eq(pier_socket_protocol(s), pier_protocol_find(ac->name));
  ck_assert(pier_socket_handle(s) == h);
  t_loopback(ac->name, &a, &len);
  T_OK(pier_bind(s, (struct sockaddr *)&a, len));
  T_OK(pier_getsockname(s, &got, &glen));
  ck_assert_int_eq(got.ss_family, ac->family);
  ck_assert_uint_ne(port_of(&got), 0);
  close_wait(loop, s);
  ck_assert_msg(!t_os_handle_is_open(h),
                "pier_close left the adopted handle %lld open", (long long)h);
  t_loop_free(loop);
}
END_TEST

START_TEST(adopt_os_accepted_socket_sends_and_receives) {
  pier_loop *loop = t_loop_new();
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  pier_os_socket l = socket(AF_INET, SOCK_STREAM, 0), c, h;
  pier_socket *s = NULL;
  char buf[16];
  int status = -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(l, 4), 0);
  ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
  c = t_os_connect((struct sockaddr_storage *)&a, sizeof a);
  os_recv_timeout(c);
  h = accept(l, NULL, NULL);
  ck_assert(h != PIER_INVALID_SOCKET);
  T_OK(pier_socket_adopt(loop, h, 0, &s));
  ck_assert_ptr_eq(pier_socket_protocol(s), pier_protocol_find("tcp4"));
  send_wait(loop, s, "adopted", 7);
  ck_assert_int_eq((int)t_os_recv(c, buf, sizeof buf), 7);
  ck_assert_int_eq(memcmp(buf, "adopted", 7), 0);
  ck_assert_int_eq((int)t_os_send(c, "back", 4), 4);
  ck_assert_uint_eq(recv_wait(loop, s, buf, sizeof buf, &status), 4);
  T_OK(status);
  ck_assert_int_eq(memcmp(buf, "back", 4), 0);
  close_wait(loop, s);
  t_os_close(c);
  t_os_close(l);
  t_loop_free(loop);
}
END_TEST

/* A pipe (POSIX) or an event handle (Windows): no socket. */
START_TEST(adopt_of_non_socket_fails_and_caller_keeps_it) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  pier_os_socket h = t_os_nonsocket_open();
  int rc = pier_socket_adopt(loop, h, 0, &s);
  ck_assert_msg(rc < 0, "adopting a non-socket handle returned %d", rc);
  ck_assert_ptr_null(s);
  ck_assert(t_os_handle_is_open(h));
  t_os_nonsocket_close(h);
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* shutdown, close                                                     */
/* ------------------------------------------------------------------ */

START_TEST(shutdown_wr_gives_peer_end_of_stream) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  char buf[16];
  int status = -1;
  t_pair(loop, "tcp4", &c, &s);
  send_wait(loop, c, "last", 4);
  T_OK(pier_shutdown(c, PIER_SHUT_WR));
  ck_assert_uint_eq(recv_wait(loop, s, buf, sizeof buf, &status), 4);
  T_OK(status);
  ck_assert_uint_eq(recv_wait(loop, s, buf, sizeof buf, &status), 0);
  T_OK(status);
  /* the other direction still works */
  send_wait(loop, s, "reply", 5);
  ck_assert_uint_eq(recv_wait(loop, c, buf, sizeof buf, &status), 5);
  T_OK(status);
  close_wait(loop, c);
  close_wait(loop, s);
  t_loop_free(loop);
}
END_TEST

typedef struct close_probe { pier_socket *seen; int count; } close_probe;

static void close_probe_cb(pier_socket *s) {
  close_probe *p = pier_socket_get_data(s);
  p->seen = s;
  p->count++;
}

START_TEST(close_callback_runs_once_with_the_socket) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  close_probe p = {NULL, 0};
  t_pair(loop, "tcp4", &c, &s);
  pier_socket_set_data(c, &p);
  T_OK(pier_close(c, close_probe_cb));
  ck_assert_int_eq(p.count, 0); /* never from inside pier_close */
  t_run_until(loop, &p.count, 2000);
  for (int i = 0; i < 5; i++) pier_loop_run(loop, PIER_RUN_NOWAIT);
  ck_assert_int_eq(p.count, 1);
  ck_assert_ptr_eq(p.seen, c);
  close_wait(loop, s);
  t_loop_free(loop);
}
END_TEST

START_TEST(close_twice_gives_ealready) {
  pier_loop *loop = t_loop_new();
  pier_socket *s = NULL;
  close_probe p = {NULL, 0};
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), 0, &s));
  pier_socket_set_data(s, &p);
  T_OK(pier_close(s, close_probe_cb));
  T_ERR(pier_close(s, close_probe_cb), PIER_EALREADY);
  t_run_until(loop, &p.count, 2000);
  for (int i = 0; i < 5; i++) pier_loop_run(loop, PIER_RUN_NOWAIT);
  ck_assert_int_eq(p.count, 1);
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* ioctl                                                               */
/* ------------------------------------------------------------------ */

START_TEST(fionread_reports_bytes_the_peer_sent) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  size_t ready = 12345;
  uint64_t deadline;
  t_pair(loop, "tcp4", &c, &s);
  T_OK(pier_ioctl(s, PIER_FIONREAD, &ready));
  ck_assert_uint_eq(ready, 0);
  send_wait(loop, c, "0123456789", 10);
  deadline = t_now_ms() + 2000;
  do {
    pier_loop_run(loop, PIER_RUN_NOWAIT);
    T_OK(pier_ioctl(s, PIER_FIONREAD, &ready));
    if (ready == 10) break;
    t_sleep_ms(5);
  } while (t_now_ms() < deadline);
  ck_assert_uint_eq(ready, 10);
  close_wait(loop, c);
  close_wait(loop, s);
  t_loop_free(loop);
}
END_TEST

START_TEST(fionbio_toggles_blocking_form_to_ewouldblock_and_back) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  pier_op op;
  char buf[16];
  pier_buf b = pier_buf_init(buf, sizeof buf);
  int on = 1, off = 0;
  t_pair(loop, "tcp4", &c, &s);
  memset(&op, 0, sizeof op);
  T_OK(pier_ioctl(s, PIER_FIONBIO, &on));
  T_ERR(pier_recv(s, &op, &b, 1, 0, NULL), PIER_EWOULDBLOCK);
  T_OK(pier_ioctl(s, PIER_FIONBIO, &off));
  send_wait(loop, c, "block", 5);
  memset(&op, 0, sizeof op);
  T_OK(pier_recv(s, &op, &b, 1, 0, NULL)); /* blocking: data is coming */
  ck_assert_uint_eq(op.bytes, 5);
  ck_assert_int_eq(memcmp(buf, "block", 5), 0);
  close_wait(loop, c);
  close_wait(loop, s);
  t_loop_free(loop);
}
END_TEST

START_TEST(nonblock_flag_at_open_gives_ewouldblock_on_accepted) {
  pier_loop *loop = t_loop_new();
  pier_socket *l = NULL, *s;
  struct sockaddr_storage a;
  size_t len;
  pier_op op;
  char buf[8];
  pier_buf b = pier_buf_init(buf, sizeof buf);
  pier_os_socket c;
  T_OK(pier_socket_open(loop, pier_protocol_find("tcp4"), PIER_SOCK_NONBLOCK,
                        &l));
  t_loopback("tcp4", &a, &len);
  T_OK(pier_bind(l, (struct sockaddr *)&a, len));
  T_OK(pier_listen(l, 4));
  len = sizeof a;
  T_OK(pier_getsockname(l, &a, &len));
  c = t_os_connect(&a, len);
  s = accept_wait(loop, l); /* inherits the listener's mode */
  memset(&op, 0, sizeof op);
  T_ERR(pier_recv(s, &op, &b, 1, 0, NULL), PIER_EWOULDBLOCK);
  t_os_close(c);
  close_wait(loop, s);
  close_wait(loop, l);
  t_loop_free(loop);
}
END_TEST

Suite *suite_socket(void) {
  Suite *s = suite_create("socket");
  TCase *tc = tcase_create("names");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, bind_listen_getsockname_ipv4);
  tcase_add_test(tc, bind_listen_getsockname_ipv6);
  tcase_add_test(tc, dual_stack_tcp6_accepts_ipv4_client);
#ifndef _WIN32
  /* Not on Windows: AF_UNIX sockets are recent in Winsock, Wine has
     none, and the iocp catalog has no "local" entry. */
  tcase_add_test(tc, af_unix_bind_listen_getsockname_and_accept);
#endif
  tcase_add_loop_test(tc, getpeername_matches_the_other_sides_sockname, 0, 2);
  tcase_add_test(tc, getpeername_on_unconnected_socket_gives_enotconn);
  suite_add_tcase(s, tc);

  tc = tcase_create("adopt");
  tcase_set_timeout(tc, 10);
  tcase_add_loop_test(tc, adopt_finds_catalog_entry_and_closes_handle, 0, 4);
  tcase_add_test(tc, adopt_os_accepted_socket_sends_and_receives);
  tcase_add_test(tc, adopt_of_non_socket_fails_and_caller_keeps_it);
  suite_add_tcase(s, tc);

  tc = tcase_create("close");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, shutdown_wr_gives_peer_end_of_stream);
  tcase_add_test(tc, close_callback_runs_once_with_the_socket);
  tcase_add_test(tc, close_twice_gives_ealready);
  suite_add_tcase(s, tc);

  tc = tcase_create("ioctl");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, fionread_reports_bytes_the_peer_sent);
  tcase_add_test(tc, fionbio_toggles_blocking_form_to_ewouldblock_and_back);
  tcase_add_test(tc, nonblock_flag_at_open_gives_ewouldblock_on_accepted);
  suite_add_tcase(s, tc);
  return s;
}
